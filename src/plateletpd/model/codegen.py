"""Generate kernel source from a validated :class:`~plateletpd.model.definition.Model`.

Names become array indices once, here. The kernel reads parameters and covariates from one
vector ``p`` (parameters first, then covariates, in file order) and states from ``y``; every
formula is re-emitted from its checked syntax tree by :mod:`plateletpd.model.expressions`.

Generated functions (numba ``@njit``; see ``Model.source``):

* ``rhs(t, y, p, dydt)``: the right-hand side, written into ``dydt``;
* ``initial(p, y0)``: the initial state;
* ``outputs(t, y, p, out)``: the recorded outputs;
* ``dose_modifiers(p, bioavailability, lag)``: per-target bioavailability and lag;
* ``rhs_lanes(t, y, q, dydt)``: the right-hand side of ``LANES`` subjects at once, as one
  vectorisable loop over subjects (for the lock-step integrator), with one loop variant per
  outcome of the model's parameter-only switches and of its exact-powers test
  (``uniform_conditions``, ``N_UNIFORM``, ``N_UNIFORM_SWITCHES``; :class:`_UniformTests`);
  its powers, ``exp`` and ``log`` are :mod:`plateletpd.numerics.vectormath`'s (plain arithmetic that
  vectorises, where the C library's functions would stay one scalar call per subject), and
  multiply-adds may fuse (``fastmath=CONTRACT``); the same loops once more, one function per
  variant (``rhs_lanes_v0``, ...; ``N_LANE_VARIANTS``), for the generic lock-step driver,
  which compiles only those a cohort uses;

A power whose exponent reads parameters only (not states or time) takes an exact cheaper
form when the exponent is 2, 1/2, 1, -1 or 0 (``x * x``, a square root, ``x``, ``1 / x``,
1; within 1 ulp of ``pow``): by branches in ``vectormath.scalar_power`` in the one-subject
functions, by the exact-powers loop variant in ``rhs_lanes``. ``rhs_lanes`` also writes an
exponent of 3 as ``x * x * x`` (within 2 ulp; its alternative there, ``vector_power``, has a
wider bound); the one-subject functions keep ``pow`` for it. The C source keeps ``pow``.

:func:`idle_states` finds, for a set of dosed states, the states that stay exactly zero
(a drug the batch does not give); the lock-step stage passes leave them out
(:func:`active_ranges`; ``integrator.lockstep_source``). The generated kernel module is the
same for every batch: nothing in it depends on the regimen. :func:`folded_lane_source`
writes, apart, one loop variant of ``rhs_lanes`` for a set of idle states, with their terms
folded away (:func:`_fold`), which the generic lock-step driver runs. ``rhs_lanes`` writes a
power whose base is never negative (:func:`_positive`) as ``positive_power``.

The integrator (:func:`plateletpd.numerics.integrator.template`), the lock-step stage passes
for this model's state count and the batch drivers (``solve_batch_<method>``,
``solve_batch_lanes``) are appended to this source by
:func:`plateletpd.numerics.kernels.kernel_module_source`; they call the functions above as
module globals.

Glossary of prefixes in generated code: ``p_`` parameter or covariate, ``s_`` state,
``d_`` derived quantity.
"""

from __future__ import annotations

import ast
import math
from typing import Callable, Iterable

# Annotations name plateletpd.model.definition.Model as a string: that module imports this one
# (Model.source), so importing it here, even for type checking, would make a cycle.

from plateletpd.errors import ExpressionError
from plateletpd.model.expressions import (LANE_POWERS, TIME, Expression, exact_power_source,
                                          lane_power_source, parse_expression)




class _Names:
    """Maps model names to generated local names and records which ones an emitter read."""

    def __init__(self, model: "Model"):
        self.kinds = {}
        for i, name in enumerate([*model.parameters, *model.covariates]):
            self.kinds[name] = ("p_", "p", i)
        for i, state in enumerate(model.states):
            self.kinds[state.name] = ("s_", "y", i)
        for name, _ in model.derived:
            self.kinds[name] = ("d_", None, None)
        self.derived = dict(model.derived)
        self.order = [name for name, _ in model.derived]
        self.parameter_only = {*model.parameters, *model.covariates, *constant_derived(model)}

    def power(self, node: ast.BinOp, base: str, exponent: str) -> str | None:
        """The one-subject kernels' ``**`` (see :func:`_parameter_power`)."""
        return _parameter_power(node, base, exponent, self.parameter_only)

    def py(self, expression: Expression, rename: Callable[[str], str] | None = None) -> str:
        """Python source of a one-subject kernel's formula."""
        return expression.to_python(rename or self.local, power=self.power)

    def local(self, name: str) -> str:
        return "t" if name == TIME else self.kinds[name][0] + name

    def closure(self, expressions: Iterable[Expression]) -> tuple[set[str], list[str]]:
        """Names read (directly or through derived quantities), and derived ones in order."""
        pending, read = [e.names for e in expressions], set()
        while pending:
            for name in pending.pop():
                if name not in read:
                    read.add(name)
                    if name in self.derived:
                        pending.append(self.derived[name].names)
        return read, [name for name in self.order if name in read]

    def prologue(self, expressions: Iterable[Expression], indent: str = "    ",
                 emit=None, declare: str = "", end: str = "") -> list[str]:
        """Lines that unpack the parameters/states read and compute the derived ones."""
        read, derived = self.closure(list(expressions))
        lines = []
        for name in sorted(read, key=lambda n: (self.kinds.get(n, ("", "", -1))[1] or "",
                                                self.kinds.get(n, ("", "", -1))[2] or 0)):
            prefix, array, index = self.kinds.get(name, (None, None, None))
            if array is not None:
                lines.append(f"{indent}{declare}{prefix}{name} = {array}[{index}]{end}")
        for name in derived:
            code = (emit or self.py)(self.derived[name])
            lines.append(f"{indent}{declare}d_{name} = {code}{end}")
        return lines


def comment_text(text: object) -> str:
    """Free text (a unit, a description, a model name) as an inert literal for a comment.

    Model files are data, never code: the text is written as Python's ``ascii()`` literal
    (quotes, backslashes, line breaks, the Unicode line and paragraph separators and every
    other non-ASCII character escaped), so it cannot end a Python comment; ``*/`` is broken
    up so it cannot end a C comment either."""
    return ascii(str(text)).replace("*/", "*\\/")


def _glossary(model: "Model") -> list[str]:
    lines = ["# glossary (index: name unit description; free text as escaped literals)"]
    for i, p in enumerate(model.parameters.values()):
        lines.append(f"#   p[{i}] {p.name} {comment_text(p.unit)} {comment_text(p.description)}")
    offset = len(model.parameters)
    for i, c in enumerate(model.covariates.values()):
        lines.append(f"#   p[{offset + i}] {c.name} {comment_text(c.unit)} covariate: "
                     f"{comment_text(c.description)}")
    for i, s in enumerate(model.states):
        lines.append(f"#   y[{i}] {s.name} {comment_text(s.unit)} {comment_text(s.description)}")
    return lines


#: Modules a generated kernel may import, and the only statement kinds its top level may hold.
_KERNEL_IMPORTS = frozenset({"math", "numpy", "plateletpd.numerics.jit",
                             "plateletpd.numerics.vectormath"})


def check_generated(source: str) -> str:
    """Refuse generated kernel source whose top level is not the generator's own shape.

    A second line of defence behind :func:`comment_text` and the expression whitelist: the
    module may only import :data:`_KERNEL_IMPORTS`, assign constants and define functions
    decorated with ``njit``; any other statement (an ``import os``, a call) means text from
    an input reached the source, and the kernel is never loaded."""
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [node.module or ""]
        elif isinstance(node, ast.Assign):
            modules = []
            if any(isinstance(n, (ast.Call, ast.Lambda, ast.NamedExpr))
                   for n in ast.walk(node.value)) and not _allowed_call(node.value):
                raise _generated_error(node)
        elif isinstance(node, ast.FunctionDef):
            modules = []
            if not node.decorator_list or not all(
                    isinstance(d, ast.Call) and isinstance(d.func, ast.Name)
                    and d.func.id == "njit" for d in node.decorator_list):
                raise _generated_error(node)
        else:
            raise _generated_error(node)
        if any(module not in _KERNEL_IMPORTS for module in modules):
            raise _generated_error(node)
    return source


def _allowed_call(value: ast.AST) -> bool:
    """Top-level calls the generator makes: array constants, square roots and re-jitting
    a kernel's Python function (``njit(...)(getattr(f, 'py_func', f))``)."""
    for node in ast.walk(value):
        if isinstance(node, ast.Call):
            decorator = isinstance(node.func, ast.Call) and ast.unparse(node.func.func) == "njit"
            if not decorator and ast.unparse(node.func) not in {
                    "np.array", "np.ascontiguousarray", "math.sqrt", "getattr", "njit"}:
                return False
        elif isinstance(node, (ast.Lambda, ast.NamedExpr)):
            return False
    return True


def _generated_error(node: ast.AST) -> ExpressionError:
    return ExpressionError(
        f"refusing to load a generated kernel: line {getattr(node, 'lineno', '?')} is not "
        f"generator output ({ast.unparse(node)[:80]!r}). Text from an input reached the "
        "source; please report this as a security bug.")


def constant_derived(model: "Model") -> list[str]:
    """Derived quantities that depend on parameters and covariates only (not on states or t).

    The integrator computes them once per subject (``constants``) instead of at every
    right-hand-side call, as mrgsolve's ``$MAIN`` does; in file (dependency) order."""
    dynamic: set[str] = {TIME, *(s.name for s in model.states)}
    out = []
    for name, expression in model.derived:
        if expression.names & dynamic:
            dynamic.add(name)
        else:
            out.append(name)
    return out


def _reads(node: ast.expr) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _literal_value(node: ast.expr) -> float | None:
    """The value of a formula that reads no name (``1 / 2``), or None."""
    return None if _reads(node) else _value_of(node, {})


def _parameter_power(node: ast.BinOp, base: str, exponent: str,
                     parameter_only: set[str]) -> str | None:
    """A one-subject kernel's ``base ** exponent`` whose exponent reads parameters,
    covariates and parameter-only quantities only: ``scalar_power`` (vectormath), which
    takes the exponents 2, 1/2, 1, -1 and 0 apart by branches (predictable: the exponent is
    the same at every call) and calls ``math.pow`` otherwise; with a literal exponent, the
    exact form itself or ``math.pow``. An exponent that reads states or time keeps
    ``math.pow`` (None)."""
    literal = _literal_value(node.right)
    if literal is not None:
        return exact_power_source(base, literal)
    if _reads(node.right) <= parameter_only:
        return f"scalar_power({base}, {exponent})"
    return None


def idle_states(model: "Model", dosed: Iterable[int]) -> tuple[int, ...]:
    """States that stay exactly zero in a simulation where only the states ``dosed``
    receive doses (boluses or infusions): the largest set Z of undosed states whose initial
    value is zero and whose right-hand side is zero whenever every state of Z is zero
    (in increasing index order). A drug that is not given in a batch (CIT's romiplostim and
    eltrombopag compartments when a regimen gives neither) is such a set: the lock-step
    integrator leaves those states out of its stage passes (``solve_group``'s ``active``
    ranges) and runs its right-hand side folded for them (:func:`folded_lane_source`),
    which changes no number (tests/test_idle_states.py, tests/test_folded_lanes.py).

    Decided by the same folding the lock-step right-hand side is written with
    (:func:`_fold`: Z read as 0, the exact identities), so a state is idle exactly when its
    folded derivative is the number 0: a zero constant, a state of Z, sums, differences,
    ``min``/``max``/``abs``/``sqrt`` of zeros, a product with a zero factor, a quotient with
    a zero numerator, a conditional whose test on numbers decides the branch taken (or
    whose two branches are the same number). Parameters are never taken as zero; nor is a
    power (``0 ** 0`` is 1). A product or quotient with a zero side is zero only while the
    other side is finite: where it is not (``0 * inf``, ``0 / 0``), the state's derivative
    is NaN in the full integration; the lock-step integrator computes the error estimates
    of every state, so such a step fails as it would without the skipping (and the group
    is integrated again one subject at a time; ``integrator.lockstep_source`` says which
    stages the estimates weigh)."""
    dosed = {int(i) for i in dosed}
    known = _folded_derived(model, {})
    zero = {i for i, state in enumerate(model.states)
            if i not in dosed and _number(_fold(state.initial.tree, known)) == 0.0}
    while True:
        known = _folded_derived(model, {model.states[i].name: 0.0 for i in zero})
        kept = {i for i in zero if _number(_fold(model.states[i].ode.tree, known)) == 0.0}
        if kept == zero:
            return tuple(sorted(zero))
        zero = kept


def _folded_derived(model: "Model", known: dict[str, float]) -> dict[str, float]:
    """``known`` (state names read as these numbers) with every derived quantity that
    :func:`_fold` makes a number added, in the model file's (dependency) order."""
    known = dict(known)
    for name, expression in model.derived:
        value = _number(_fold(expression.tree, known))
        if value is not None:
            known[name] = value
    return known


def active_ranges(n_states: int, idle: Iterable[int]) -> "np.ndarray":
    """The states not in ``idle`` as ``[start, end)`` pairs of state indices, flat (int64):
    what the lock-step integrator's stage passes loop over."""
    import numpy as np

    idle = set(idle)
    pairs: list[int] = []
    for i in range(n_states):
        if i in idle:
            continue
        if pairs and pairs[-1] == i:
            pairs[-1] = i + 1
        else:
            pairs += [i, i + 1]
    return np.array(pairs, dtype=np.int64)


#: Binary operations on two numbers, as the generated code computes them (IEEE double).
_ARITHMETIC = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b,
               ast.Mult: lambda a, b: a * b, ast.Div: lambda a, b: a / b}
_COMPARISONS = {ast.Lt: lambda a, b: a < b, ast.LtE: lambda a, b: a <= b,
                ast.Gt: lambda a, b: a > b, ast.GtE: lambda a, b: a >= b,
                ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b}


def _number(node: ast.expr) -> float | None:
    return float(node.value) if isinstance(node, ast.Constant) else None


def _fold(node: ast.expr, known: dict[str, float]) -> ast.expr:
    """``node`` with the names of ``known`` replaced by their values and simplified by
    identities that hold exactly in floating point for finite operands: ``x + 0``,
    ``x - 0``, ``x * 1``, ``x / 1`` are ``x``; ``0 * x``, ``0 / x``, ``sqrt(0)``, ``abs(0)``
    are 0; arithmetic, ``min`` and ``max`` of numbers are computed (a non-finite result is
    left as written); a conditional whose test compares numbers is its branch. The folded
    formula differs from the original only where an operand it drops is not finite
    (``0 * inf`` is NaN, folded 0) or a divisor it drops is zero at run time (``0 / x``
    with x = 0), and in the sign of a zero; a literal ``0 / 0`` is kept. Subtrees that
    change nothing are returned as they are (so the generator's switch and power keys,
    ``ast.dump``, still
    match). Nothing here evaluates text: the tree is the model file's checked formula."""
    if isinstance(node, ast.Name):
        return ast.Constant(known[node.id]) if node.id in known else node
    if isinstance(node, ast.UnaryOp):
        operand = _fold(node.operand, known)
        value = _number(operand)
        if value is not None and isinstance(node.op, (ast.USub, ast.UAdd)):
            return ast.Constant(-value if isinstance(node.op, ast.USub) else value)
        return node if operand is node.operand else ast.UnaryOp(op=node.op, operand=operand)
    if isinstance(node, ast.BinOp):
        left, right = _fold(node.left, known), _fold(node.right, known)
        a, b, op = _number(left), _number(right), type(node.op)
        if a is not None and b is not None and op in _ARITHMETIC and not (
                op is ast.Div and b == 0.0):
            value = _ARITHMETIC[op](a, b)
            if math.isfinite(value):
                return ast.Constant(value)
        if op in (ast.Add, ast.Sub) and b == 0.0:
            return left
        if op is ast.Add and a == 0.0:
            return right
        if op is ast.Sub and a == 0.0:
            return ast.UnaryOp(op=ast.USub(), operand=right)
        if op is ast.Mult and (a == 0.0 or b == 0.0) or op is ast.Div and a == 0.0 \
                and b != 0.0:  # 0 / 0 is NaN: kept
            return ast.Constant(0.0)
        if op is ast.Mult and a == 1.0:
            return right
        if op in (ast.Mult, ast.Div) and b == 1.0:
            return left
        if left is node.left and right is node.right:
            return node
        return ast.BinOp(left=left, op=node.op, right=right)
    if isinstance(node, ast.IfExp):
        test = _fold(node.test, known)
        if isinstance(test, ast.Constant):
            return _fold(node.body if test.value else node.orelse, known)
        body, orelse = _fold(node.body, known), _fold(node.orelse, known)
        if _number(body) is not None and _number(body) == _number(orelse):
            return body  # either branch: the same number (up to the sign of a zero)
        if test is node.test and body is node.body and orelse is node.orelse:
            return node
        return ast.IfExp(test=test, body=body, orelse=orelse)
    if isinstance(node, ast.Compare):
        parts = [_fold(part, known) for part in (node.left, *node.comparators)]
        values = [_number(part) for part in parts]
        if None not in values:
            return ast.Constant(all(_COMPARISONS[type(op)](x, y) for op, x, y in zip(
                node.ops, values, values[1:])))
        if all(new is old for new, old in zip(parts, (node.left, *node.comparators))):
            return node
        return ast.Compare(left=parts[0], ops=node.ops, comparators=parts[1:])
    if isinstance(node, ast.Call):
        args = [_fold(a, known) for a in node.args]
        values = [_number(a) for a in args]
        name = node.func.id
        if name in ("sqrt", "abs") and values[0] == 0.0:
            return ast.Constant(0.0)
        if name in ("min", "max") and None not in values:
            return ast.Constant((min if name == "min" else max)(values))
        if all(new is old for new, old in zip(args, node.args)):
            return node
        return ast.Call(func=node.func, args=args, keywords=[])
    if isinstance(node, ast.BoolOp):
        values = [_fold(v, known) for v in node.values]
        if all(new is old for new, old in zip(values, node.values)):
            return node
        return ast.BoolOp(op=node.op, values=values)
    return node


def _positive(node: ast.expr, derived: dict, positive: set[str], depth: int = 0) -> bool:
    """Whether formula ``node`` is never negative nor -0 (it may be +0, +inf or NaN):
    a positive number, a name in ``positive`` (parameters and covariates whose lower
    bound is above 0: values outside the bounds are refused before a run), a derived
    quantity whose formula is such, ``max`` with such an argument, ``exp``, a sum,
    product or quotient of such. ``rhs_lanes`` then writes a power of it as
    ``vectormath.positive_power``, which is ``vector_power`` without the selects for a
    negative base (the same result bit for bit on such a base)."""
    if depth > 50:
        return False
    if isinstance(node, ast.Constant):
        return float(node.value) > 0.0
    if isinstance(node, ast.Name):
        if node.id in positive:
            return True
        return node.id in derived and _positive(derived[node.id].tree, derived, positive,
                                                depth + 1)
    if isinstance(node, ast.Call):
        if node.func.id == "exp":
            return True
        if node.func.id == "max":
            return any(_positive(a, derived, positive, depth + 1) for a in node.args)
        return False
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult, ast.Div)):
        return _positive(node.left, derived, positive, depth + 1) and _positive(
            node.right, derived, positive, depth + 1)
    return False


def _folded(expression: Expression, known: dict[str, float]) -> Expression:
    """:func:`_fold` of a checked expression, as an expression (its names recomputed)."""
    tree = _fold(expression.tree, known)
    if tree is expression.tree:
        return expression
    calls = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and id(n) not in calls}
    return Expression(ast.unparse(tree), tree, frozenset(names))


class _Hoisting:
    """How the integrator's right-hand side is split: constants once, the rest per call.

    ``q`` (Python) or ``parms`` (C) holds the parameter vector ``p`` followed by
    :func:`constant_derived`'s values. Dynamic derived quantities read once are inlined where
    they are read, so a quantity used only in one branch of ``a if c else b`` is computed
    only when that branch is taken."""

    def __init__(self, model: "Model", names: _Names, odes: list[Expression] | None = None):
        self.names = names
        n_p = len(model.parameters) + len(model.covariates)
        self.constants = constant_derived(model)
        self.slot = {name: n_p + j for j, name in enumerate(self.constants)}
        self.odes = odes if odes is not None else [s.ode for s in model.states]
        self.read, self.derived = names.closure(self.odes)
        dynamic = [d for d in self.derived if d not in self.slot]
        uses = {d: 0 for d in dynamic}
        for expression in [*self.odes, *(names.derived[d] for d in dynamic)]:
            for name in expression.names:
                if name in uses:
                    uses[name] += 1
        self.inlined = {d for d, n in uses.items() if n == 1}

    def _inputs(self, expressions) -> list[str]:
        read, _ = self.names.closure(list(expressions))
        return sorted(read - set(self.names.derived) - {TIME},
                      key=lambda n: (self.names.kinds[n][1], self.names.kinds[n][2]))

    def constant_lines(self, code, vector: str, declare: str = "", end: str = "") -> list[str]:
        """Compute every constant from the parameters in ``vector`` and store it there."""
        names = self.names
        lines = [f"    {declare}p_{name} = {vector}[{names.kinds[name][2]}]{end}"
                 for name in self._inputs(names.derived[c] for c in self.constants)]
        for name in self.constants:
            lines.append(f"    {declare}d_{name} = {code(names.derived[name], names.local)}{end}")
            lines.append(f"    {vector}[{self.slot[name]}] = d_{name}{end}")
        return lines

    def rhs_lines(self, code, vector: str, declare: str = "", end: str = "",
                  subscript: Callable[[str, int], str] | None = None,
                  ) -> tuple[list[str], Callable[[str], str]]:
        """Unpack states and parameters, read constants, compute the dynamic quantities.

        ``subscript(array, index)`` writes an element read (default ``array[index]``)."""
        names = self.names
        subscript = subscript or (lambda array, index: f"{array}[{index}]")

        def local(name: str) -> str:
            if name in self.inlined:
                return "(" + code(names.derived[name], local) + ")"
            return names.local(name)

        lines = []
        for name in self._inputs(self.odes):
            prefix, array, index = names.kinds[name]
            source = subscript(vector if array == "p" else array, index)
            lines.append(f"    {declare}{prefix}{name} = {source}{end}")
        for name in self.derived:
            if name in self.slot:
                lines.append(f"    {declare}d_{name} = {subscript(vector, self.slot[name])}{end}")
            elif name not in self.inlined:
                lines.append(f"    {declare}d_{name} = {code(names.derived[name], local)}{end}")
        return lines, local


def _hoisted_rhs(model: "Model", names: _Names) -> list[str]:
    """``constants(q)`` and ``rhs_hoisted(t, y, q, dydt)``: the integrator's right-hand side
    (see :class:`_Hoisting`)."""
    hoist = _Hoisting(model, names)
    py = lambda e, rename: names.py(e, rename)  # noqa: E731
    body = ["", "@njit(**KERNEL_OPTIONS)", "def constants(q):",
            *(hoist.constant_lines(py, "q") or ["    pass"]),
            "", "", "@njit(**KERNEL_OPTIONS)", "def rhs_hoisted(t, y, q, dydt):"]
    prologue, local = hoist.rhs_lines(py, "q")
    body += prologue
    body += [f"    dydt[{i}] = {names.py(s.ode, local)}" for i, s in enumerate(model.states)]
    body += ["", "", "# the same function, compiled into each caller (the integrator's stages)",
             "rhs_inline = njit(inline=\"always\", **KERNEL_OPTIONS)(",
             "    getattr(rhs_hoisted, \"py_func\", rhs_hoisted))"]
    return body


#: Subjects integrated together by the lock-step integrator (``rhs_lanes``): 16 doubles are
#: two AVX-512 or four AVX2 registers. The lane loop needs a trip count known at compile
#: time (so LLVM can prove the lane-major accesses independent and vectorise it) that is
#: too long to be unrolled away (numba leaves LLVM's straight-line SLP vectoriser off):
#: on the CIT model 8 lanes stay scalar, 16 and 32 vectorise (13 and 13 ns per subject and
#: call against 49 ns for the scalar right-hand side; benchmarks/README.md).
LANES = 16


#: At most this many parameter-only ``if`` tests become group-uniform in ``rhs_lanes``
#: (each doubles the number of loop variants generated).
MAX_UNIFORM_TESTS = 3

#: The exact-powers test (:class:`_UniformTests`) is added only while the loop variants stay
#: at most this many (each variant is a copy of the loop to compile: CIT's lock-step kernel
#: took 27.7 s to compile with 2 variants and 38.2 s with 4); with three switches the
#: powers keep ``vector_power`` in ``rhs_lanes``.
MAX_UNIFORM_VARIANTS = 8

#: The key of the exact-powers test among :class:`_UniformTests`'s (``ast.dump`` keys of
#: the ``if`` tests start with a node name, so it cannot collide).
_POWERS = "exact powers"


class _UniformTests:
    """The tests that ``rhs_lanes`` takes as one value for a group of subjects.

    *Switches*: the ``a if test else b`` tests of a model's right-hand side that read
    parameters, covariates and parameter-only quantities only (model switches such as CIT's
    ``feedback_mode``). A vectorised loop cannot branch per lane, so LLVM computes both
    sides for every lane and selects: a costly side that is never taken (CIT's Friberg power
    term, two scalar ``pow`` calls per subject) is paid for at every call. ``rhs_lanes``
    therefore takes such a test as one value for the whole group and has one loop per
    outcome, each holding only its own side; the lock-step integrator checks that every
    subject of a group agrees and otherwise integrates the group one subject at a time.

    *Exact powers*: a ``base ** exponent`` whose exponent reads parameters only and whose
    value at the model's declared parameter values is one of ``LANE_POWERS`` (2, 1/2, 1,
    -1, 0 and 3: CIT's ceiling sharpness n = 2 in ``x ** n`` and ``y ** (1 / n)``, the
    marrow reserve's exhaustion exponent 3 in ``reserve ** e``; the cube only here, where
    the alternative is ``vector_power``'s exp(g log x), less accurate). One test,
    last, that every such exponent has its declared value; the loop variant where it holds
    writes each power in its cheaper form (``x * x``, a square root, ``x * x * x``), the other keeps
    ``vector_power``. A group takes the exact forms only if every subject's test holds
    (the integrator takes the test's minimum over the group: both variants are right for
    every subject, so a group never falls back to one subject at a time for it)."""

    def __init__(self, model: "Model", hoist: _Hoisting):
        self.hoist = hoist
        self.allowed = {*model.parameters, *model.covariates, *hoist.constants}
        self.positive = {name for name, entry in [*model.parameters.items(),
                                                  *model.covariates.items()]
                         if entry.lower is not None and entry.lower > 0}
        self.declared = _declared_values(model, hoist)
        self.tests: dict[str, ast.expr] = {}
        self.powers: dict[str, tuple[ast.expr, float]] = {}  # exponent key -> tree, value
        self.outcome: dict[str, bool] | None = None  # the variant being emitted
        dynamic = [hoist.names.derived[d] for d in hoist.derived if d not in hoist.slot]
        for expression in [*hoist.odes, *dynamic]:
            expression.to_python(lambda name: name, condition=self.condition,
                                 power=self.power)
        self.switches = len(self.tests)
        if 2 ** (self.switches + 1) > MAX_UNIFORM_VARIANTS:
            self.powers.clear()
        if self.powers:
            checks = [ast.Compare(left=tree, ops=[ast.Eq()], comparators=[ast.Constant(value)])
                      for tree, value in self.powers.values()]
            self.tests[_POWERS] = checks[0] if len(checks) == 1 else \
                ast.BoolOp(op=ast.And(), values=checks)
        self.outcome = None

    def condition(self, test: ast.expr) -> str | None:
        if not _reads(test) <= self.allowed:
            return None
        key = ast.dump(test)
        if self.outcome is None:  # discovery pass
            if len(self.tests) < MAX_UNIFORM_TESTS:
                self.tests.setdefault(key, test)
            return None
        return None if key not in self.outcome else repr(self.outcome[key])

    def power(self, node: ast.BinOp, base: str, exponent: str) -> str | None:
        """``rhs_lanes``' ``**``: the exact form of a literal exponent; of a parameter
        exponent in the variant where the exact-powers test holds; else ``vector_power``."""
        special = self._cheaper_power(node, base)
        if special is None and self.outcome is not None and _positive(
                node.left, self.hoist.names.derived, self.positive):
            return f"positive_power({base}, {exponent})"
        return special

    def _cheaper_power(self, node: ast.BinOp, base: str) -> str | None:
        literal = _literal_value(node.right)
        if literal is not None:
            return exact_power_source(base, literal)
        if not _reads(node.right) <= self.allowed:
            return None
        key = ast.dump(node.right)
        if self.outcome is None:  # discovery pass
            value = _value_of(node.right, self.declared)
            if value is not None and value in LANE_POWERS:
                self.powers.setdefault(key, (node.right, value))
            return None
        if key in self.powers and self.outcome.get(_POWERS):
            return lane_power_source(base, self.powers[key][1])
        return None

    def variants(self) -> list[dict[str, bool]]:
        keys = list(self.tests)
        return [{key: bool(bits >> i & 1) for i, key in enumerate(keys)}
                for bits in range(2 ** len(keys) - 1, -1, -1)]

    def source(self) -> list[str]:
        """``uniform_conditions(q, out)``: each test of one subject (``q`` as for
        ``rhs_hoisted``), 1.0 or 0.0: the switches, then the exact-powers test."""
        names, hoist = self.hoist.names, self.hoist

        def subscript(name: str) -> str:
            return f"q[{hoist.slot[name] if name in hoist.slot else names.kinds[name][2]}]"

        lines = ["", "", "@njit(**KERNEL_OPTIONS)", "def uniform_conditions(q, out):"]
        for k, test in enumerate(self.tests.values()):
            code = Expression(ast.unparse(test), test, frozenset()).to_python(subscript)
            lines.append(f"    out[{k}] = 1.0 if {code} else 0.0")
        return lines + ([] if self.tests else ["    pass"])


def _declared_values(model: "Model", hoist: _Hoisting) -> dict[str, float]:
    """Parameters, covariates with a default and parameter-only quantities at the model's
    declared values (a quantity that cannot be computed there is left out)."""
    values = {name: float(p.value) for name, p in model.parameters.items()}
    values.update({name: float(c.default) for name, c in model.covariates.items()
                   if c.default is not None})
    for name in hoist.constants:
        value = _value_of(hoist.names.derived[name].tree, values)
        if value is not None:
            values[name] = value
    return values


def _value_of(tree: ast.expr, values: dict[str, float]) -> float | None:
    try:
        value = Expression(ast.unparse(tree), tree, frozenset()).evaluate(values)
    except (KeyError, ArithmeticError, ValueError, TypeError):
        return None
    return value if math.isfinite(value) else None


def _lane_loop(hoist: _Hoisting, uniform: "_UniformTests", outcome: dict[str, bool]
               ) -> list[str]:
    """One loop variant of ``rhs_lanes``: the loop over lanes for the tests' ``outcome``,
    on ``hoist``'s right-hand sides (the model's own, or :func:`folded_lane_source`'s)."""
    uniform.outcome = outcome
    try:
        code = lambda e, rename: e.to_python(  # noqa: E731
            rename, condition=uniform.condition, vector=True, power=uniform.power)
        prologue, local = hoist.rhs_lines(
            code, "q", subscript=lambda array, index: f"{array}[{index * LANES} + lane]")
        return ["for lane in range(LANES):", *prologue,
                *(f"    dydt[{i * LANES} + lane] = {code(ode, local)}"
                  for i, ode in enumerate(hoist.odes))]
    finally:
        uniform.outcome = None


def _lane_rhs(model: "Model", names: _Names) -> list[str]:
    """``rhs_lanes(t, y, q, dydt)``: :func:`_hoisted_rhs`'s right-hand side for ``LANES``
    subjects at once, on lane-major flat arrays (element ``[i * LANES + lane]`` is row ``i``
    of subject ``lane``), written as one loop over lanes for LLVM to vectorise.

    ``q`` holds each subject's parameters and parameter-only quantities, then the values of
    :class:`_UniformTests` (``uniform_conditions``): the loop variant is chosen by the first
    subject's, so the switches must agree across the group, and the exact-powers test
    (after ``N_UNIFORM_SWITCHES`` switches) must be the group's minimum there."""
    hoist = _Hoisting(model, names)
    uniform = _UniformTests(model, hoist)
    n_q = len(model.parameters) + len(model.covariates) + len(hoist.constants)
    keys = list(uniform.tests)
    # rhs_lanes: one loop per variant in one function (a model's own lock-step driver: its
    # loops inlined, measured 9-15% faster than calling a function per variant); then the
    # same loops once more, one function each, rhs_lanes_v{v} (v as in
    # _UniformTests.variants: the variant of outcome bits b is 2 ** K - 1 - b), so that the
    # generic lock-step driver compiles only the variants a cohort's groups use
    # (numerics.kernels._lane_variants): the same text, so the same numbers
    loops = [_lane_loop(hoist, uniform, outcome) for outcome in uniform.variants()]
    body = ["", "", "@njit(fastmath=CONTRACT, **KERNEL_OPTIONS)",
            "def rhs_lanes(t, y, q, dydt):"]
    body += [f"    u_{k} = q[{(n_q + k) * LANES}] != 0.0" for k in range(len(keys))]
    for v, (outcome, loop) in enumerate(zip(uniform.variants(), loops)):
        indent = "    "
        if keys:
            test = " and ".join(f"{'' if outcome[key] else 'not '}u_{k}"
                                for k, key in enumerate(keys))
            last = v == 2 ** len(keys) - 1
            body.append("    else:" if last else f"    {'elif' if v else 'if'} {test}:")
            indent = "        "
        body += [indent + line for line in loop]
    for v, loop in enumerate(loops):
        body += ["", "", "@njit(fastmath=CONTRACT, **KERNEL_OPTIONS)",
                 f"def rhs_lanes_v{v}(t, y, q, dydt):", *("    " + line for line in loop)]
    body += uniform.source()
    body += ["", "", f"N_UNIFORM = {len(uniform.tests)}",
             f"N_UNIFORM_SWITCHES = {uniform.switches}",
             f"N_LANE_VARIANTS = {2 ** len(keys)}"]
    return body


def folded_lane_source(model: "Model", variant: int, idle: Iterable[int]) -> str:
    """Source of a kernel module holding ``rhs_lanes_folded(t, y, q, dydt)``: loop variant
    ``variant`` of the model's ``rhs_lanes`` (``rhs_lanes_v{variant}``, the same arguments)
    for a batch in which the states ``idle`` stay zero (:func:`idle_states`: a drug the
    batch does not give), with those states read as 0 and every term they make zero or
    constant folded away (:func:`_fold`): a drug's concentration, occupancy and binding,
    romiplostim's square root, the conditional on its total. Their derivatives are written
    as 0. The generic lock-step driver calls it in place of the variant
    (``numerics.kernels._lane_parameters``). The arithmetic left is the variant's, in the
    same order, so a lock-step cohort gives the same numbers (tests/test_cold_start.py;
    where a dropped operand is not finite, see :func:`_fold`). The module depends on the
    batch's idle states, so it is generated and compiled per set of given drugs (about a
    second each for the CIT models), cached on disk as kernels are."""
    idle = sorted({int(i) for i in idle})
    names = _Names(model)
    base = _Hoisting(model, names)
    uniform = _UniformTests(model, base)
    outcome = uniform.variants()[variant]
    known = _folded_derived(model, {model.states[i].name: 0.0 for i in idle})
    folded_names = _Names(model)
    for name in (d for d in base.derived if d not in base.slot):  # the dynamic ones
        if name in known:
            del folded_names.derived[name]  # a number now: written where it is read
        else:
            folded_names.derived[name] = _folded(names.derived[name], known)
    odes = [parse_expression(0.0) if i in idle else _folded(state.ode, known)
            for i, state in enumerate(model.states)]
    hoist = _Hoisting(model, folded_names, odes)
    lines = [f"# plateletpd folded lock-step right-hand side for model "
             f"{comment_text(model.name)}: loop variant {int(variant)}, idle states "
             f"{', '.join(str(i) for i in idle) or 'none'}",
             "# generated from the model file; do not edit: edit the model file instead.",
             "from plateletpd.numerics.jit import math  # numpy semantics without JIT",
             "import numpy as np",
             "from plateletpd.numerics.jit import njit, CONTRACT, KERNEL_OPTIONS",
             "from plateletpd.numerics.vectormath import power as vector_power, "
             "exponential as vector_exp, logarithm as vector_log",
             "from plateletpd.numerics.vectormath import square, square_root_power, "
             "reciprocal, cube, positive_power",
             "",
             f"LANES = {LANES}",
             "", "",
             "@njit(fastmath=CONTRACT, **KERNEL_OPTIONS)",
             "def rhs_lanes_folded(t, y, q, dydt):",
             *("    " + line for line in _lane_loop(hoist, uniform, outcome))]
    return check_generated("\n".join(lines) + "\n")


def kernel_source(model: "Model") -> str:
    """Python source of the model's numba kernel module."""
    names = _Names(model)
    py = names.py
    lines = [f"# plateletpd kernel for model {comment_text(model.name)} "
             f"(time unit: {model.time_unit})",
             "# generated from the model file; do not edit: edit the model file instead.",
             *_glossary(model),
             "from plateletpd.numerics.jit import math  # numpy semantics without JIT: never raises",
             "import numpy as np",
             "from plateletpd.numerics.jit import njit, prange, CONTRACT, KERNEL_OPTIONS",
             "from plateletpd.numerics.vectormath import power as vector_power, "
             "exponential as vector_exp, logarithm as vector_log",
             "from plateletpd.numerics.vectormath import scalar_power, square, "
             "square_root_power, reciprocal, cube, positive_power",
             "",
             f"N_STATES = {len(model.states)}",
             f"N_PARAMETERS = {len(model.parameters) + len(model.covariates)}",
             f"N_OUTPUTS = {len(model.outputs)}",
             f"N_DOSE_TARGETS = {len(model.dose_targets)}",
             f"N_CONSTANTS = {len(constant_derived(model))}",
             f"LANES = {LANES}",
             ""]

    def function(signature: str, expressions: list[Expression], body: list[str]) -> None:
        lines.extend(["", "@njit(**KERNEL_OPTIONS)", f"def {signature}:",
                      *names.prologue(expressions), *(body or ["    pass"])])

    function("rhs(t, y, p, dydt)", [s.ode for s in model.states],
             [f"    dydt[{i}] = {py(s.ode)}" for i, s in enumerate(model.states)])
    lines.extend(_hoisted_rhs(model, names))
    lines.extend(_lane_rhs(model, names))
    function("initial(p, y0)", [s.initial for s in model.states],
             [f"    y0[{i}] = {py(s.initial)}" for i, s in enumerate(model.states)])
    function("outputs(t, y, p, out)", [o.expression for o in model.outputs],
             [f"    out[{i}] = {py(o.expression)}" for i, o in enumerate(model.outputs)])
    modifiers = [e for m in model.dose_modifiers for e in (m.bioavailability, m.lag)]
    function("dose_modifiers(p, bioavailability, lag)", modifiers,
             [line for i, m in enumerate(model.dose_modifiers) for line in (
                 f"    bioavailability[{i}] = {py(m.bioavailability)}",
                 f"    lag[{i}] = {py(m.lag)}")])
    return check_generated("\n".join(lines) + "\n")


def desolve_c_source(model: "Model") -> str:
    """C source for R's deSolve compiled-code interface (``initmod`` and ``derivs``).

    Parameters (then covariates) are passed in ``parms`` in the order of
    ``model.parameter_names + model.covariate_names``. Zero-order infusions are carried as
    one extra state per dose target (after the model's states) whose value is the current
    input rate: deSolve events add to or subtract from it. Outputs are returned through
    ``yout`` when ``nout`` equals the number of outputs.

    Every ``**`` but a small literal integer stays the C library's ``pow`` here: the exact
    forms the Python kernels take for an exponent of 2, 1/2, 1, -1 or 0 that reads
    parameters only (``scalar_power``, ``rhs_lanes``' exact-powers variant) agree with it
    within 1 ulp (glibc), so this peer gives the same numbers to that rounding but is not
    made faster that way.
    """
    names = _Names(model)
    c = lambda e: e.to_c(lambda n: "(*t)" if n == TIME else names.local(n))  # noqa: E731
    n_states, n_targets = len(model.states), len(model.dose_targets)
    n_par = len(model.parameters) + len(model.covariates)
    hoist = _Hoisting(model, names)
    to_c = lambda e, rename: e.to_c(  # noqa: E731
        lambda n: "(*t)" if n == TIME else rename(n))
    n_slots = n_par + len(hoist.constants)
    lines = [f"/* plateletpd: deSolve right-hand side for model {comment_text(model.name)}",
             f"   (time unit: {model.time_unit}). Generated from the model file; do not edit.",
             f"   States y[0..{n_states - 1}] then {n_targets} infusion-rate states.",
             f"   parms[{n_par}..] hold the parameter-only derived quantities, computed once",
             "   per solve in initmod. */",
             "#include <math.h>",
             f"static double parms[{max(n_slots, 1)}];",
             "",
             "void initmod(void (* odeparms)(int *, double *))",
             "{",
             f"    int N = {n_par};",
             "    odeparms(&N, parms);",
             *hoist.constant_lines(to_c, "parms", declare="const double ", end=";"),
             "}",
             "",
             "void derivs(int *neq, double *t, double *y, double *ydot, double *yout, int *ip)",
             "{"]
    prologue, local = hoist.rhs_lines(to_c, "parms", declare="const double ", end=";")
    lines += prologue
    lines += [f"    ydot[{i}] = {to_c(s.ode, local)};" for i, s in enumerate(model.states)]
    for k, target in enumerate(model.dose_targets):
        lines += [f"    ydot[{target.state_index}] += y[{n_states + k}];  /* {target.name} */",
                  f"    ydot[{n_states + k}] = 0.0;"]
    lines.append(f"    if (ip[0] >= {len(model.outputs)}) {{")
    lines += ["        const double *p = parms;",
              *("    " + line for line in names.prologue(
                  [o.expression for o in model.outputs], emit=c, declare="const double ",
                  end=";"))]
    lines += [f"        yout[{i}] = {c(o.expression)};" for i, o in enumerate(model.outputs)]
    lines += ["    }", "}", ""]
    return "\n".join(lines)
