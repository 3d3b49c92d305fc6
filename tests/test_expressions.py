"""Tests of plateletpd.model.expressions: the whitelisted formula language of model files.

Sources of the numbers used below:
- "hand-computed": arithmetic shown next to the number, with VALUES below.
- "test input": made-up values that only need to be internally consistent.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import plateletpd
from plateletpd.errors import ExpressionError, ModelFileError
from plateletpd.model.expressions import parse_expression

VALUES = {"x": 3.0, "y": 2.0, "z": 4.0}  # test input


def identity(name: str) -> str:
    return name


def run_python(expression, values=VALUES) -> float:
    """Evaluate the Python source emitted by ``to_python`` (inside the test only)."""
    code = compile(expression.to_python(identity), "<emitted>", "eval")
    return float(eval(code, {"math": math}, dict(values)))  # noqa: S307 - test of emitted text


# (formula, expected value with VALUES x=3, y=2, z=4): all hand-computed
EVALUATE_CASES = [
    ("1 + 2 * 3 - 4 / 8", 6.5),  # 1 + 6 - 0.5
    ("2 ** 3 ** 2", 512.0),  # right-associative: 2 ** 9
    ("-x ** 2", -9.0),  # unary minus binds looser than **: -(3 * 3)
    ("+x - -y", 5.0),  # 3 + 2
    ("(x + y) * (x - y)", 5.0),  # 5 * 1
    ("x ** 2 + y ** 3 + z ** 4", 9.0 + 8.0 + 256.0),  # 3^2 + 2^3 + 4^4
    ("z ** 0.5", 2.0),  # sqrt(4)
    ("z ** 5", 1024.0),  # 4^5
    ("x < y", 0.0),  # 3 < 2 is false
    ("x >= y", 1.0),  # 3 >= 2
    ("x == 3", 1.0),
    ("x != 3", 0.0),
    ("1 < x < 5", 1.0),  # chained: 1 < 3 and 3 < 5
    ("1 < x < 2", 0.0),  # chained: 1 < 3 but not 3 < 2
    ("y < x <= 3 != z", 1.0),  # 2 < 3, 3 <= 3, 3 != 4
    ("x > y > z", 0.0),  # 3 > 2 but not 2 > 4
    ("x >= 3 and y > 2", 0.0),  # true and false
    ("x >= 3 or y > 2", 1.0),  # true or false
    ("not x > 3", 1.0),  # not false
    ("x if x > y else y", 3.0),
    ("10 if x < 0 else 20", 20.0),
    ("x if y > z else (y if z > x else z)", 2.0),  # nested: 2 > 4 false, 4 > 3 true -> y
    ("exp(0) + log(1) + log10(1000) + sqrt(16) + abs(-2.5)", 10.5),  # 1 + 0 + 3 + 4 + 2.5
    ("log(exp(2))", 2.0),
    ("min(x, y, 1)", 1.0),  # three arguments
    ("max(x, y, 1)", 3.0),  # three arguments
    ("min(z, x)", 3.0),
    ("max(y, z, x, 0.5)", 4.0),  # four arguments
    ("(x > y) * 10 + (x < y) * 100", 10.0),  # comparison results are 1 and 0
]


@pytest.mark.parametrize("text, expected", EVALUATE_CASES)
def test_evaluate_gives_hand_computed_values(text, expected):
    assert parse_expression(text).evaluate(VALUES) == pytest.approx(expected, rel=1e-15)


@pytest.mark.parametrize("text, expected", EVALUATE_CASES)
def test_emitted_python_matches_evaluate(text, expected):
    expression = parse_expression(text)
    assert run_python(expression) == pytest.approx(expression.evaluate(VALUES), rel=1e-15)


# logical operators give 1.0/0.0 in every backend (as C's && and ||), never an operand
@pytest.mark.parametrize("text", ["x and y", "0 or y"])
def test_emitted_boolean_operators_give_truth_values(text):
    expression = parse_expression(text)
    assert expression.evaluate(VALUES) == 1.0  # hand-computed: both operands are truthy
    assert run_python(expression) == expression.evaluate(VALUES)


def test_names_lists_every_name_read_and_no_function():
    expression = parse_expression("k * exp(-t / tau) if t > lag else max(a, b, 0)")
    assert expression.names == {"k", "t", "tau", "lag", "a", "b"}


def test_numbers_are_accepted_as_formulas():
    assert parse_expression(2).evaluate({}) == 2.0  # test input
    assert parse_expression(0.25).to_python(identity) == "0.25"  # test input


@pytest.mark.parametrize("text, emitted", [
    ("x ** 2", "(x * x)"),
    ("x ** 3", "(x * x * x)"),
    ("x ** 4", "(x * x * x * x)"),
    ("x ** 2.0", "(x * x)"),
    ("(x + y) ** 2", "((x + y) * (x + y))"),
])
def test_small_integer_powers_become_products(text, emitted):
    assert parse_expression(text).to_python(identity) == emitted


@pytest.mark.parametrize("text", ["x ** 5", "x ** 0.5", "x ** y", "x ** -2", "x ** 0"])
def test_other_powers_use_math_pow(text):
    expression = parse_expression(text)
    assert expression.to_python(identity).startswith("math.pow(")
    assert "**" not in expression.to_python(identity)
    assert run_python(expression) == pytest.approx(expression.evaluate(VALUES), rel=1e-15)


@pytest.mark.parametrize("text, emitted", [
    ("x ** y", "vector_power(x, y)"),
    ("exp(x) + log(y)", "(vector_exp(x) + vector_log(y))"),
    ("x ** 2", "(x * x)"),  # small integer powers stay products
    ("sqrt(x) + log10(y)", "(math.sqrt(x) + math.log10(y))"),  # no vector twin: C library
])
def test_vector_emitter_uses_the_vectorisable_functions(text, emitted):
    """The emitter of loops over subjects (rhs_lanes) swaps pow, exp and log for
    plateletpd.numerics.vectormath's; the default emitter keeps the C library's."""
    expression = parse_expression(text)
    assert expression.to_python(identity, vector=True) == emitted
    assert "vector_" not in expression.to_python(identity)


@pytest.mark.parametrize("text", ["(-8) ** (1 / 3)", "(x - 10) ** 0.5"])
def test_negative_base_fractional_power_raises_instead_of_going_complex(text):
    expression = parse_expression(text)
    with pytest.raises(ValueError, match="math domain error"):
        expression.evaluate(VALUES)
    with pytest.raises(ValueError, match="math domain error"):
        run_python(expression)


def test_negative_base_integer_power_is_real():
    expression = parse_expression("(-8) ** 2")
    assert expression.evaluate({}) == 64.0  # hand-computed: (-8) * (-8)
    assert run_python(expression, {}) == 64.0  # hand-computed


def test_emitters_rename_every_name():
    expression = parse_expression("k * x + t")
    assert expression.to_python(lambda n: f"p_{n}") == "((p_k * p_x) + p_t)"
    assert expression.to_c(lambda n: f"p_{n}") == "((p_k * p_x) + p_t)"


def test_overflowing_literal_is_refused():
    # 1e999 overflows a double; emitting it would write the undefined name 'inf'
    with pytest.raises(ExpressionError, match="too large") as info:
        parse_expression("1e999 * x")
    assert "1e999" in str(info.value)


# ---------------------------------------------------------------------------- refusals
# (formula, fragments the message must contain: what is refused and the offending text)
REFUSALS = [
    ("__import__('os')", ["a call to anything but exp/log", "__import__('os')"]),
    ("__import__('os').system('ls')", ["a call to anything but", "system"]),
    ("os.system", ["Attribute", "'os.system'"]),
    ("x.real", ["Attribute", "'x.real'"]),
    ("x.__class__", ["Attribute", "x.__class__"]),
    ("x[0]", ["Subscript", "'x[0]'"]),
    ("lambda: 1", ["Lambda", "lambda: 1"]),
    ("lambda x: x", ["Lambda", "lambda x: x"]),
    ("[x for x in y]", ["ListComp", "[x for x in y]"]),
    ("(x for x in y)", ["GeneratorExp"]),
    ("'abc'", ["the constant 'abc'"]),
    ("True", ["the constant True"]),
    ("None", ["the constant None"]),
    ("x + False", ["the constant False"]),
    ("max(a, b=1)", ["a keyword argument", "max(a, b=1)"]),
    ("eval('1')", ["a call to anything but", "eval('1')"]),
    ("open('f')", ["a call to anything but", "open('f')"]),
    ("getattr(x, 'real')", ["a call to anything but", "getattr(x, 'real')"]),
    ("x(1)", ["a call to anything but", "x(1)"]),
    ("__class__", ["a name starting with an underscore", "'__class__'"]),
    ("_x + 1", ["a name starting with an underscore", "'_x'"]),
    ("exp + 1", ["the function name 'exp' used as a value"]),
    ("max(*a)", ["a starred argument", "max(*a)"]),
    ("min(x, *a)", ["a starred argument", "min(x, *a)"]),
    ("exp(1, 2)", ["exp() takes 1 argument(s), 2 given", "exp(1, 2)"]),
    ("sqrt()", ["sqrt() takes 1 argument(s), 0 given"]),
    ("min(1)", ["min() takes two or more argument(s), 1 given", "min(1)"]),
    ("max(x)", ["max() takes two or more argument(s), 1 given"]),
    ("(x := 1)", ["NamedExpr", "x := 1"]),
    ("f'{x}'", ["JoinedStr", "f'{x}'"]),
    ("x in y", ["Compare", "x in y"]),
    ("x is y", ["Compare", "x is y"]),
    ("x // y", ["BinOp", "x // y"]),
    ("x % y", ["BinOp", "x % y"]),
    ("~x", ["UnaryOp", "~x"]),
    ("(x, y)", ["Tuple"]),
    ("{x: 1}", ["Dict"]),
    ("x; import os", ["not a valid formula"]),
    ("import os", ["not a valid formula", "import os"]),
    ("x +", ["not a valid formula"]),
    ("", ["the formula is empty"]),
    ("   ", ["the formula is empty"]),
]


@pytest.mark.parametrize("text, fragments", REFUSALS, ids=[t or "empty" for t, _ in REFUSALS])
def test_refused_constructs_raise_expression_error_naming_them(text, fragments):
    with pytest.raises(ExpressionError) as caught:
        parse_expression(text)
    for fragment in fragments:
        assert fragment in str(caught.value)


@pytest.mark.parametrize("value, fragment", [
    (True, "boolean True"), (None, "got NoneType"), (["x"], "got list")])
def test_non_formula_values_are_refused(value, fragment):
    with pytest.raises(ExpressionError, match=fragment):
        parse_expression(value)


def test_expression_error_is_a_package_value_error():
    assert issubclass(ExpressionError, plateletpd.PlateletPDError)
    assert issubclass(ExpressionError, ValueError)


# --------------------------------------------------------- a model file cannot run code
MODEL_TEMPLATE = """
[model]
name = "payload"
description = "a model file carrying a payload"
time_unit = "h"

[parameters]
k = {{ value = 0.1, unit = "1/h", source = "test fixture" }}

[states.x]
unit = "mg"
initial = {initial}

[derived]
kx = {derived}

[odes]
x = {ode}

[outputs.y]
expression = {output}
unit = "mg"

[doses.drug]
state = "x"
amount_unit = "mg"
lag = {lag}
"""
SAFE = {"initial": '"0"', "derived": '"k * x"', "ode": '"-kx"', "output": '"x"', "lag": '"0"'}


def payloads(marker) -> list[str]:
    return [f"__import__('os').system('touch {marker}')",
            f"open('{marker}', 'w')",
            f"eval(\\\"open('{marker}', 'w')\\\")",
            f"k.__class__.__init__.__globals__['os'].system('touch {marker}')"]


@pytest.mark.parametrize("slot", sorted(SAFE))
@pytest.mark.parametrize("payload_index", range(4))
def test_model_file_payload_is_refused_and_never_runs(tmp_path, slot, payload_index):
    marker = tmp_path / "pwned"
    payload = payloads(marker)[payload_index]
    text = MODEL_TEMPLATE.format(**{**SAFE, slot: f'"{payload}"'})
    with pytest.raises(ModelFileError) as caught:
        plateletpd.parse_model(text, path="payload.toml")
    assert "payload.toml" in str(caught.value)
    assert "is not allowed in a model formula" in str(caught.value)
    assert not marker.exists()


def test_model_file_ode_payload_from_the_brief():
    # the brief's exact ODE; /tmp/pwned must not exist before for the check to mean anything
    marker = Path("/tmp/pwned")
    if marker.exists():
        pytest.skip("/tmp/pwned already exists; the payload tests above use fresh folders")
    ode = "__import__('os').system('touch /tmp/pwned')"
    with pytest.raises(ModelFileError) as caught:
        plateletpd.parse_model(MODEL_TEMPLATE.format(**{**SAFE, "ode": f'"{ode}"'}),
                               path="payload.toml")
    for fragment in ("payload.toml", "[odes.x]", ode):
        assert fragment in str(caught.value)
    assert not marker.exists()


def test_payload_template_is_valid_without_payload():
    # guards the tests above: the template itself parses, so the errors come from payloads
    model = plateletpd.parse_model(MODEL_TEMPLATE.format(**SAFE), path="payload.toml")
    assert model.state_names == ["x"]
