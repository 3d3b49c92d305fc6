"""The model files' expression language: parsed with :mod:`ast` against a whitelist.

An expression is a Python-syntax formula over numbers and names with

* arithmetic ``+ - * / **``, unary ``-``/``+``,
* comparisons ``< <= > >= == !=``, ``and``, ``or``, ``not``,
* a conditional ``a if condition else b``,
* calls to :data:`FUNCTIONS` only (``exp log log10 sqrt cos sin abs min max``).

Nothing else parses: no attribute access, subscripts, imports, lambdas, comprehensions,
keyword arguments, strings or dunder names. A model file therefore cannot run code: the
expression is never passed to ``eval``; it is re-emitted as source text by the two emitters
below (Python for numba and scipy, C for R's deSolve), name by name, from the checked tree.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass
from typing import Callable, Mapping

from plateletpd.errors import ExpressionError, closest

#: Whitelisted functions: name -> (number of arguments or None for 2+, Python source, C source)
FUNCTIONS: dict[str, tuple[int | None, str, str]] = {
    "exp": (1, "math.exp", "exp"),
    "log": (1, "math.log", "log"),
    "log10": (1, "math.log10", "log10"),
    "sqrt": (1, "math.sqrt", "sqrt"),
    # periodic terms of a time course (a fluctuating rate written as a sum of cosines and
    # sines of t with per-patient coefficients: models/itp_thrombopoiesis.toml)
    "cos": (1, "math.cos", "cos"),
    "sin": (1, "math.sin", "sin"),
    "abs": (1, "abs", "fabs"),
    "min": (None, "min", "fmin"),
    "max": (None, "max", "fmax"),
}

#: Names the ``vector=True`` Python emitter uses instead of the C library's pow, exp and log
#: (the generated kernel module imports them from :mod:`plateletpd.numerics.vectormath`).
VECTOR_FUNCTIONS = {"**": "vector_power", "exp": "vector_exp", "log": "vector_log"}

#: Powers with an exact cheaper form (``plateletpd.numerics.vectormath.EXACT_EXPONENTS``,
#: where the functions are defined and why they are within 1 ulp of ``pow``): exponent ->
#: source template of ``base ** exponent``. The code generator emits them for a power whose
#: exponent reads parameters only (:mod:`plateletpd.model.codegen`).
EXACT_POWERS = {2.0: "square({})", 0.5: "square_root_power({})", 1.0: "({})",
                -1.0: "reciprocal({})", 0.0: "1.0"}


#: The lock-step kernels' cheaper powers (``plateletpd.numerics.vectormath.LANE_EXPONENTS``):
#: :data:`EXACT_POWERS` and the cube, which replaces an exp(g log x) there.
LANE_POWERS = {**EXACT_POWERS, 3.0: "cube({})"}


def lane_power_source(base: str, exponent: float) -> str | None:
    """Source of ``base ** exponent`` in ``rhs_lanes``' cheaper form (:data:`LANE_POWERS`),
    or None. ``base`` is emitted source; the exponent is a number computed by the generator,
    never text from an input."""
    template = LANE_POWERS.get(float(exponent))
    return None if template is None else template.format(base)


def exact_power_source(base: str, exponent: float) -> str | None:
    """Source of ``base ** exponent`` in its exact cheaper form, or None for an exponent
    not in :data:`EXACT_POWERS`. ``base`` is emitted source; the exponent is a number
    computed by the generator, never text from an input."""
    template = EXACT_POWERS.get(float(exponent))
    return None if template is None else template.format(base)


#: Resource guards, checked before the recursive checker and emitters run: a formula's
#: length in characters and its syntax tree's nesting depth (an operator, call or
#: parenthesised term is one level). The bundled models' longest formula has 189
#: characters and 12 levels; the limits leave room for hand-written models while keeping
#: the recursive emitters far from Python's recursion limit (1000).
MAX_FORMULA_LENGTH = 20_000
MAX_FORMULA_DEPTH = 200

#: The name of model time inside expressions.
TIME = "t"

_BINARY = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}
_COMPARE = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==",
            ast.NotEq: "!="}


@dataclass(frozen=True)
class Expression:
    """A checked expression: its text, its tree and the names it reads."""

    text: str
    tree: ast.expr
    names: frozenset[str]

    def to_python(self, rename: Callable[[str], str],
                  condition: Callable[[ast.expr], str | None] | None = None,
                  vector: bool = False,
                  power: Callable[[ast.BinOp, str, str], str | None] | None = None) -> str:
        """Python source (numba-compatible), with every name passed through ``rename``.

        ``condition(test)``, if given, may replace the test of an ``a if test else b`` with
        its own source; ``"True"`` or ``"False"`` keeps only that side, None keeps the test
        as written. ``vector=True`` emits ``**``, ``exp`` and ``log`` as the vectorisable
        functions of :mod:`plateletpd.numerics.vectormath` (``VECTOR_FUNCTIONS``: for loops over
        subjects) instead of the C library's. ``power(node, base, exponent)``, if given, may
        replace a ``**`` that is not a small integer power (given its node and the emitted
        source of its two sides) with its own source; None keeps the default."""
        return _python(self.tree, rename, condition, vector, power)

    def to_c(self, rename: Callable[[str], str]) -> str:
        """C source, with every name passed through ``rename``."""
        return _c(self.tree, rename)

    def evaluate(self, values: Mapping[str, float]) -> float:
        """Evaluate in plain Python from a mapping of names to numbers (no ``eval``)."""
        return float(_evaluate(self.tree, values))


def parse_expression(text: str | int | float) -> Expression:
    """Parse and check ``text``; raise :class:`ExpressionError` naming what is not allowed."""
    if isinstance(text, bool):
        raise ExpressionError(f"expected a number or a formula, got the boolean {text!r}")
    if isinstance(text, (int, float)):
        text = repr(float(text))
    if not isinstance(text, str):
        raise ExpressionError(f"expected a formula as a string, got {type(text).__name__}")
    if not text.strip():
        raise ExpressionError("the formula is empty; write a number or an expression such as "
                              "'rate * (level - platelets)'")
    if len(text) > MAX_FORMULA_LENGTH:
        raise ExpressionError(
            f"a formula of {len(text):,} characters is longer than the limit of "
            f"{MAX_FORMULA_LENGTH:,} ({text[:40]!r}...); split it into derived quantities")
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as exc:
        raise ExpressionError(f"not a valid formula ({exc.msg}): {_short(text)}") from None
    except (RecursionError, MemoryError):
        raise _too_deep(text, "deeper than Python's parser allows") from None
    depth = _depth(tree)
    if depth > MAX_FORMULA_DEPTH:
        raise _too_deep(text, f"{depth} or more levels deep")
    names: set[str] = set()
    _check(tree, text, names)
    return Expression(text=text.strip(), tree=tree, names=frozenset(names))


def _short(text: str) -> str:
    return repr(text) if len(text) <= 200 else f"{text[:100]!r}...({len(text):,} characters)"


def _depth(tree: ast.AST) -> int:
    """Nesting depth of a syntax tree, counted without recursion (any depth is safe)."""
    deepest, pending = 0, [(tree, 1)]
    while pending:
        node, level = pending.pop()
        deepest = max(deepest, level)
        if level <= MAX_FORMULA_DEPTH:  # deeper than the limit: enough is known
            pending.extend((child, level + 1) for child in ast.iter_child_nodes(node))
    return deepest


def _too_deep(text: str, depth: str) -> ExpressionError:
    return ExpressionError(
        f"the formula nests {depth}; the limit is {MAX_FORMULA_DEPTH} levels "
        f"({_short(text)}); split it into derived quantities")


def _refuse(node: ast.AST, text: str, what: str) -> ExpressionError:
    segment = ast.get_source_segment(text.strip(), node) or text
    return ExpressionError(
        f"{what} is not allowed in a model formula: {segment!r}. Formulas may use numbers, "
        f"names, + - * / **, comparisons, and/or/not, 'a if condition else b' and the "
        f"functions {', '.join(FUNCTIONS)}.")


def _check(node: ast.AST, text: str, names: set[str]) -> None:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise _refuse(node, text, f"the constant {node.value!r}")
        if not math.isfinite(float(node.value)):
            raise _refuse(node, text, "a number too large to represent")
    elif isinstance(node, ast.Name):
        if node.id.startswith("_"):
            raise _refuse(node, text, "a name starting with an underscore")
        if node.id in FUNCTIONS:
            raise _refuse(node, text, f"the function name {node.id!r} used as a value")
        names.add(node.id)
    elif isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        _check(node.left, text, names)
        _check(node.right, text, names)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd, ast.Not)):
        _check(node.operand, text, names)
    elif isinstance(node, ast.BoolOp):
        for value in node.values:
            _check(value, text, names)
    elif isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
        for part in (node.left, *node.comparators):
            _check(part, text, names)
    elif isinstance(node, ast.IfExp):
        for part in (node.test, node.body, node.orelse):
            _check(part, text, names)
    elif isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            raise _refuse(node, text, "a call to anything but " + "/".join(FUNCTIONS))
        if node.keywords:
            raise _refuse(node, text, "a keyword argument")
        arity = FUNCTIONS[node.func.id][0]
        given = len(node.args)
        if any(isinstance(a, ast.Starred) for a in node.args):
            raise _refuse(node, text, "a starred argument")
        if (arity is not None and given != arity) or (arity is None and given < 2):
            expected = arity if arity is not None else "two or more"
            raise ExpressionError(f"{node.func.id}() takes {expected} argument(s), "
                                  f"{given} given in {text!r}")
        for arg in node.args:
            _check(arg, text, names)
    else:
        raise _refuse(node, text, type(node).__name__)


ALL_SYMBOLS = f"parameters, covariates, states, derived quantities and {TIME!r} (time)"


def check_names(expression: Expression, known: Mapping[str, object] | set[str],
                where: str, allowed: str = ALL_SYMBOLS) -> None:
    """Raise :class:`ExpressionError` if ``expression`` reads a name not in ``known``.

    ``allowed`` says in words which kinds of symbol may appear here.
    """
    for name in sorted(expression.names):
        if name not in known:
            raise ExpressionError(f"unknown symbol {name!r} in {where}{closest(name, known)}; "
                                  f"this formula may use {allowed}")


# ---------------------------------------------------------------------------- emitters
def _python(node: ast.AST, rename: Callable[[str], str],
            condition: Callable[[ast.expr], str | None] | None = None,
            vector: bool = False,
            power: Callable[[ast.BinOp, str, str], str | None] | None = None) -> str:
    def emit(child: ast.AST) -> str:
        return _python(child, rename, condition, vector, power)

    if isinstance(node, ast.Constant):
        return repr(float(node.value))
    if isinstance(node, ast.Name):
        return rename(node.id)
    if isinstance(node, ast.BinOp):
        left, right = emit(node.left), emit(node.right)
        if isinstance(node.op, ast.Pow):
            return _python_power(node, left, right, vector, power)
        return f"({left} {_BINARY[type(node.op)]} {right})"
    # logical operators give 1.0 or 0.0, as in C (Python's and/or would return an operand)
    if isinstance(node, ast.UnaryOp):
        operand = emit(node.operand)
        return f"(0.0 if {operand} else 1.0)" if isinstance(node.op, ast.Not) else \
            f"({'-' if isinstance(node.op, ast.USub) else '+'}{operand})"
    if isinstance(node, ast.BoolOp):
        joiner = " and " if isinstance(node.op, ast.And) else " or "
        return "(1.0 if (" + joiner.join(emit(v) for v in node.values) + ") else 0.0)"
    if isinstance(node, ast.Compare):
        return "(" + _chain(node, emit, " and ") + ")"
    if isinstance(node, ast.IfExp):
        test = (condition(node.test) if condition else None) or emit(node.test)
        if test in ("True", "False"):
            return emit(node.body if test == "True" else node.orelse)
        return f"({emit(node.body)} if {test} else {emit(node.orelse)})"
    if isinstance(node, ast.Call):
        args = ", ".join(emit(a) for a in node.args)
        name = node.func.id
        function = VECTOR_FUNCTIONS[name] if vector and name in VECTOR_FUNCTIONS \
            else FUNCTIONS[name][1]
        return f"{function}({args})"
    raise ExpressionError(f"cannot emit {ast.dump(node)}")  # unreachable after _check


def _python_power(node: ast.BinOp, left: str, right: str, vector: bool = False,
                  power: Callable[[ast.BinOp, str, str], str | None] | None = None) -> str:
    # small integer powers become products (exact, fast); everything else goes through
    # the caller's ``power`` (the generator's fast paths for parameter exponents) or
    # math.pow (or its vectorisable twin), which never returns a complex number (Python's
    # ** would for (-8)**(1/3)).
    exponent = node.right
    if is_product_power(node):
        product = "(" + " * ".join([left] * int(abs(exponent.value))) + ")"
        return product if exponent.value > 0 else f"(1.0 / {product})"
    special = power(node, left, right) if power else None
    if special is not None:
        return special
    return f"{VECTOR_FUNCTIONS['**'] if vector else 'math.pow'}({left}, {right})"


def is_product_power(node: ast.BinOp) -> bool:
    """Whether the emitters write this ``**`` as a product: a literal integer exponent
    from -4 to 4 but 0."""
    exponent = node.right
    return isinstance(exponent, ast.Constant) and float(exponent.value).is_integer() \
        and 1 <= abs(exponent.value) <= 4


def _chain(node: ast.Compare, emit: Callable[[ast.AST], str], joiner: str) -> str:
    parts, left = [], node.left
    for op, right in zip(node.ops, node.comparators):
        parts.append(f"({emit(left)} {_COMPARE[type(op)]} {emit(right)})")
        left = right
    return joiner.join(parts)


def _c(node: ast.AST, rename: Callable[[str], str]) -> str:
    if isinstance(node, ast.Constant):
        return repr(float(node.value))
    if isinstance(node, ast.Name):
        return rename(node.id)
    if isinstance(node, ast.BinOp):
        left, right = _c(node.left, rename), _c(node.right, rename)
        if isinstance(node.op, ast.Pow):
            return f"pow({left}, {right})"
        return f"({left} {_BINARY[type(node.op)]} {right})"
    if isinstance(node, ast.UnaryOp):
        symbol = {ast.USub: "-", ast.UAdd: "+", ast.Not: "!"}[type(node.op)]
        return f"({symbol}{_c(node.operand, rename)})"
    if isinstance(node, ast.BoolOp):
        joiner = " && " if isinstance(node.op, ast.And) else " || "
        return "(" + joiner.join(_c(v, rename) for v in node.values) + ")"
    if isinstance(node, ast.Compare):
        return "(" + _chain(node, lambda n: _c(n, rename), " && ") + ")"
    if isinstance(node, ast.IfExp):
        return (f"({_c(node.test, rename)} ? {_c(node.body, rename)} : "
                f"{_c(node.orelse, rename)})")
    if isinstance(node, ast.Call):
        function = FUNCTIONS[node.func.id][2]
        args = [_c(a, rename) for a in node.args]
        result = args[0]
        if function in ("fmin", "fmax"):  # C's fmin/fmax take two arguments: fold
            for arg in args[1:]:
                result = f"{function}({result}, {arg})"
            return result
        return f"{function}({', '.join(args)})"
    raise ExpressionError(f"cannot emit {ast.dump(node)}")


_OPERATORS: dict[type, Callable] = {
    ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b, ast.Pow: math.pow,
    ast.Lt: lambda a, b: a < b, ast.LtE: lambda a, b: a <= b, ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b, ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b,
}


_EVALUATE_FUNCTIONS = {"exp": math.exp, "log": math.log, "log10": math.log10, "sqrt": math.sqrt,
                       "cos": math.cos, "sin": math.sin, "abs": abs, "min": min, "max": max}


def _evaluate(node: ast.AST, values: Mapping[str, float]):
    if isinstance(node, ast.Constant):
        return float(node.value)
    if isinstance(node, ast.Name):
        return values[node.id]
    if isinstance(node, ast.BinOp):
        return _OPERATORS[type(node.op)](_evaluate(node.left, values),
                                         _evaluate(node.right, values))
    if isinstance(node, ast.UnaryOp):
        operand = _evaluate(node.operand, values)
        return float(not operand) if isinstance(node.op, ast.Not) else \
            (-operand if isinstance(node.op, ast.USub) else operand)
    if isinstance(node, ast.BoolOp):
        results = [_evaluate(v, values) for v in node.values]
        return float(all(results) if isinstance(node.op, ast.And) else any(results))
    if isinstance(node, ast.Compare):
        left, ok = _evaluate(node.left, values), True
        for op, comparator in zip(node.ops, node.comparators):
            right = _evaluate(comparator, values)
            ok = ok and _OPERATORS[type(op)](left, right)
            left = right
        return ok
    if isinstance(node, ast.IfExp):
        return _evaluate(node.body if _evaluate(node.test, values) else node.orelse, values)
    if isinstance(node, ast.Call):
        args = [_evaluate(a, values) for a in node.args]
        return _EVALUATE_FUNCTIONS[node.func.id](*args)
    raise ExpressionError(f"cannot evaluate {ast.dump(node)}")
