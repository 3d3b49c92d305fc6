"""Tests of plateletpd.model.expressions: the whitelisted formula language of model files,
and (at the end) how the code generator emits powers whose exponent is a parameter.

Sources of the numbers used below:
- "hand-computed": arithmetic shown next to the number, with VALUES below.
- "test input": made-up values that only need to be internally consistent.
- the powers section lists its own (IEEE 754, C99 Annex F, glibc).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import plateletpd
from plateletpd.errors import ExpressionError, ModelFileError
from plateletpd.model.expressions import EXACT_POWERS, parse_expression
from plateletpd.numerics import vectormath
from plateletpd.numerics.jit import njit, plain_python
from plateletpd.numerics.kernels import compile_kernel, hoisted_parameters

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
    ("cos(0) + sin(0) + cos(x - x) * sin(y - y)", 1.0),  # 1 + 0 + 1 x 0
    ("sin(x) ** 2 + cos(x) ** 2", 1.0),                  # the identity, at x = 3
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


# ------------------------------------------- powers whose exponent is a parameter
# Sources of the numbers below:
# - "IEEE 754": x * x, 1 / x and sqrt(x) are correctly rounded (one rounding each);
# - "C99 Annex F": pow's special values (pow(x, 0) = 1 even for NaN; pow(-0, 1/2) = +0 and
#   pow(-inf, 1/2) = +inf where sqrt gives -0 and NaN; pow(+-0, -1) = +-inf; a negative
#   base with a non-integer exponent gives NaN);
# - "glibc": pow is within 1 ulp (the manual's table of known maximum errors), so a
#   correctly rounded form is within 1 ulp of it;
# - "test input": bases and exponents chosen to reach every branch; 2.5 and 1.7 are
#   ordinary exponents that must take the C library's (or vectormath's) pow.

LANES = 16  # plateletpd.model.codegen.LANES
EXACT = sorted(EXACT_POWERS)  # 2, 1/2, 1, -1, 0
ORDINARY = [2.5, 1.7]  # test input
#: IEEE 754 / C99 Annex F special values, a subnormal, values whose square overflows or
#: underflows, negative bases (test input)
SPECIAL_BASES = [0.0, -0.0, 1.0, -1.0, 8.0, -8.0, 2.5e-310, -2.5e-310, 1e-200, 1e200,
                 -1e200, math.inf, -math.inf, math.nan]


@njit(error_model="numpy")
def _libm_power(x, g):
    return math.pow(x, g)


@njit(error_model="numpy")
def _scalar_power(x, g):
    return vectormath.scalar_power(x, g)


def same_bits(a: float, b: float) -> bool:
    """Equal including the sign of zero; NaN equals NaN."""
    return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) ==
                                                math.copysign(1, b))


@pytest.mark.parametrize("g", EXACT + ORDINARY)
def test_scalar_power_gives_the_c_library_pow_at_special_values(g):
    """vectormath.scalar_power, the one-subject kernels' power with a parameter exponent:
    at zeros of both signs, infinities, NaN, subnormals, overflow and negative bases it
    gives the C library's pow bit for bit, sign of zero included (C99 Annex F; sqrt(-0)
    is -0 and sqrt(-inf) NaN, which square_root_power mends)."""
    for x in SPECIAL_BASES:
        assert same_bits(_scalar_power(x, g), _libm_power(x, g)), (x, g)


@pytest.mark.parametrize("g", EXACT)
def test_exact_forms_are_within_1_ulp_of_pow_over_the_whole_range(g):
    """x * x, sqrt(x), 1 / x are correctly rounded (IEEE 754) and glibc's pow is within
    1 ulp of the exact value, so within 1 ulp of each other (measured on this host:
    identical on these 20,000 bases and on 400,000 more); ordinary exponents go to pow
    itself: identical. Bases log-uniform over e^-340..e^340 (squares stay finite and
    normal) and uniform on 0..10 (test input)."""
    rng = np.random.default_rng(17)
    x = np.concatenate([np.exp(rng.uniform(-340, 340, 10_000)), rng.uniform(0, 10, 10_000)])
    ours = np.array([_scalar_power(v, g) for v in x])
    libm = np.array([_libm_power(v, g) for v in x])
    assert np.all(np.abs(ours - libm) <= np.spacing(np.abs(libm)))
    for h in ORDINARY:
        assert all(_scalar_power(v, h) == _libm_power(v, h) for v in x[:500])


@njit(error_model="numpy")
def _cube(x):
    return vectormath.cube(x)


def test_lane_cube_is_within_2_ulp_of_pow_and_keeps_its_special_values():
    """vectormath.cube, rhs_lanes' pow(x, 3) for an exponent parameter declared at 3:
    x * x * x rounds twice, so its relative error is at most about 2**-52 (2 ulp) where
    the cube is normal (glibc's pow: within 1 ulp); bases log-uniform over e^-230..e^230
    (cubes normal) and uniform on -10..10 (test input). At zeros, infinities, NaN,
    overflow, underflow and negative bases it gives pow's value bit for bit (an odd power
    keeps the sign). Its alternative in the lanes, vector_power, is bounded by
    4 ulp x (1 + |3 log x|) (tests/test_vectormath.py): never tighter than 4 ulp."""
    rng = np.random.default_rng(23)
    x = np.concatenate([np.exp(rng.uniform(-230, 230, 20_000)), rng.uniform(-10, 10, 20_000)])
    ours = np.array([_cube(v) for v in x])
    libm = np.array([_libm_power(v, 3.0) for v in x])
    assert np.all(np.abs(ours - libm) <= 2 * np.spacing(np.abs(libm)))
    # mostly the same bits: a real cube, not an estimate (measured when written: 74% equal,
    # the rest 1 ulp apart; a bound of 50% and 2 ulp leaves room for another libm)
    assert np.mean(ours == libm) > 0.5
    for v in [0.0, -0.0, 1.0, -1.0, -8.0, 1e-200, -1e-200, 1e200, -1e200, math.inf,
              -math.inf, math.nan]:
        assert same_bits(_cube(v), _libm_power(v, 3.0)), v
    with np.errstate(all="ignore"):  # NUMBA_DISABLE_JIT=1: the same values as Python
        assert plain_python(vectormath.cube)(np.float64(-1e200)) == -math.inf


def test_plain_python_exact_forms_give_nan_and_inf_instead_of_raising():
    """NUMBA_DISABLE_JIT=1 runs these as Python on numpy scalars: a negative base's square
    root is NaN and 1 / 0 is inf (C99 Annex F), as compiled, not ValueError or
    ZeroDivisionError."""
    with np.errstate(all="ignore"):
        assert math.isnan(plain_python(vectormath.square_root_power)(np.float64(-8.0)))
        assert plain_python(vectormath.reciprocal)(np.float64(0.0)) == math.inf
        assert plain_python(vectormath.reciprocal)(-0.0) == -math.inf
        for x in SPECIAL_BASES:
            for g in EXACT:
                assert same_bits(plain_python(vectormath.scalar_power)(np.float64(x), g),
                                 _libm_power(x, g)), (x, g)


POWER_MODEL = """
[model]
name = "parameter_exponent"
description = "powers whose exponent is a parameter (test fixture)"
time_unit = "h"

[parameters]
n = {{ value = {n}, unit = "1", lower = -4, upper = 4, source = "test fixture" }}
k = {{ value = 0.01, unit = "1/h", lower = 0, source = "test fixture" }}

[states.a]
unit = "mg"
initial = "3"
[states.b]
unit = "mg"
initial = "50"

[odes]
a = "{a}"
b = "{b}"

[outputs.a]
expression = "a"
unit = "mg"
[outputs.b]
expression = "b"
unit = "mg"
"""


def power_model(n=2.0, a="-(a ** n)", b="-(b ** (1 / n))"):
    with warnings.catch_warnings():  # k or n unused in some variants: intended
        warnings.simplefilter("ignore", plateletpd.ModelWarning)
        return plateletpd.parse_model(POWER_MODEL.format(n=n, a=a, b=b), path="power.toml")


def test_generated_powers_take_the_fast_path_only_for_parameter_exponents():
    """One-subject kernels: scalar_power for an exponent that reads parameters only,
    math.pow for one that reads a state, the exact form for a literal exponent of 1/2.
    rhs_lanes: one loop variant where the exact-powers test holds (square, square root) and
    one with vector_power; the test is the last uniform condition, after the switches."""
    model = power_model(a="-(a ** n) - a ** b", b="-(b ** (1 / n)) + 0 * b ** 0.5")
    source = model.source
    hoisted = source.split("def rhs_hoisted(")[1].split("\ndef ")[0]
    assert "scalar_power(s_a, p_n)" in hoisted
    assert "scalar_power(s_b, (1.0 / p_n))" in hoisted
    assert "math.pow(s_a, s_b)" in hoisted  # an exponent that reads a state
    assert "square_root_power(s_b)" in hoisted  # literal 0.5
    lanes = source.split("def rhs_lanes(")[1].split("\ndef ")[0]
    fast, slow = lanes.split("    else:")
    assert "square(s_a)" in fast and "square_root_power(s_b)" in fast
    assert "vector_power(s_a, p_n)" in slow and "vector_power(s_b, (1.0 / p_n))" in slow
    assert "vector_power(s_a, s_b)" in fast and "vector_power(s_a, s_b)" in slow
    kernel = compile_kernel(model)
    assert (kernel.N_UNIFORM, kernel.N_UNIFORM_SWITCHES) == (1, 0)
    out = np.empty(1)
    q = hoisted_parameters(model, model.parameter_vector({"n": 2.0}))
    kernel.uniform_conditions(q, out)
    assert out[0] == 1.0
    kernel.uniform_conditions(hoisted_parameters(model, model.parameter_vector({"n": 2.5})), out)
    assert out[0] == 0.0
    # declared at an ordinary exponent: no exact-powers test, no variants
    assert compile_kernel(power_model(n=2.5)).N_UNIFORM == 0


def lanes_rhs(model, n_values, y):
    """rhs_lanes and rhs_hoisted of LANES subjects with exponents n_values and states y
    (LANES x 2); q as the lock-step integrator builds it (the exact-powers test is the
    group's minimum in lane 0)."""
    kernel = compile_kernel(model)
    rows = np.array([hoisted_parameters(model, model.parameter_vector({"n": n}))
                     for n in n_values])
    tests = np.empty((LANES, kernel.N_UNIFORM))
    for lane in range(LANES):
        kernel.uniform_conditions(rows[lane], tests[lane])
    tests[0] = tests.min(axis=0)
    q = np.ascontiguousarray(np.hstack([rows, tests]).T).ravel()
    lanes = np.empty(2 * LANES)
    kernel.rhs_lanes(0.0, np.ascontiguousarray(y.T).ravel(), q, lanes)
    scalar = np.empty((LANES, 2))
    for lane in range(LANES):
        kernel.rhs_hoisted(0.0, y[lane].copy(), rows[lane].copy(), scalar[lane])
    return lanes.reshape(2, LANES).T, scalar


@pytest.mark.parametrize("declared", [2.0, 0.5, -1.0, 1.0])
def test_lane_and_scalar_kernels_give_pow_for_exact_and_ordinary_exponents(declared):
    """dy/dt = -(a ** n), -(b ** (1/n)) in both kernels, all lanes at the declared
    exponent (the exact forms: within 1 ulp of math.pow, glibc; lanes and scalar the same
    bits) and all at an ordinary exponent 2.5 (vector_power in the lanes: within its
    bound, 4 ulp x (1 + |g log x|) < 1e-13 here, tests/test_vectormath.py; math.pow in the
    scalar kernel: the same bits)."""
    model = power_model(n=declared)
    rng = np.random.default_rng(3)
    y = np.exp(rng.uniform(-5, 5, (LANES, 2)))  # test input
    for n, exact in ((declared, True), (2.5, False)):
        lanes, scalar = lanes_rhs(model, [n] * LANES, y)
        libm = -np.array([[_libm_power(a, n), _libm_power(b, 1.0 / n)] for a, b in y])
        if exact:
            assert np.all(np.abs(scalar - libm) <= np.spacing(np.abs(libm)))
            np.testing.assert_array_equal(lanes, scalar)
        else:
            np.testing.assert_array_equal(scalar, libm)
            np.testing.assert_allclose(lanes, libm, rtol=1e-13)


def test_an_exponent_declared_at_3_is_a_cube_in_the_lanes_and_pow_in_one_subject():
    """dy/dt = -(a ** n), -(b ** (1/n)) with n declared 3 (the marrow reserve's exhaustion
    exponent): rhs_lanes writes a ** n as cube(a) in the variant where the test holds
    (within 2 ulp of math.pow) and keeps vector_power for b ** (1/3) (within its bound);
    the one-subject kernel calls scalar_power, which is the C library's pow for 3 bit for
    bit, so one-subject results (fits, trials) are what they were. At n = 2.5 the lanes
    take vector_power for both."""
    model = power_model(n=3.0)
    lanes_source = model.source.split("def rhs_lanes(")[1].split("\ndef ")[0]
    fast, slow = lanes_source.split("    else:")
    assert "cube(s_a)" in fast and "cube(" not in slow
    assert "vector_power(s_b, (1.0 / p_n))" in fast
    y = np.exp(np.random.default_rng(5).uniform(-5, 5, (LANES, 2)))  # test input
    for n in (3.0, 2.5):
        lanes, scalar = lanes_rhs(model, [n] * LANES, y)
        libm = -np.array([[_libm_power(a, n), _libm_power(b, 1.0 / n)] for a, b in y])
        np.testing.assert_array_equal(scalar, libm)
        bound = 2 * np.spacing(np.abs(libm[:, 0])) if n == 3.0 else 1e-13 * np.abs(libm[:, 0])
        assert np.all(np.abs(lanes[:, 0] - libm[:, 0]) <= bound)
        np.testing.assert_allclose(lanes[:, 1], libm[:, 1], rtol=1e-13)


def test_a_group_with_one_ordinary_exponent_takes_pow_for_every_lane():
    """The integrator takes the exact-powers test's minimum over a group: one lane at
    n = 2.5 among fifteen at n = 2 sends the whole group to vector_power, which is right
    for every lane (within its bound, tests/test_vectormath.py)."""
    model = power_model(n=2.0)
    y = np.exp(np.random.default_rng(4).uniform(-5, 5, (LANES, 2)))  # test input
    n_values = [2.0] * (LANES - 1) + [2.5]
    lanes, scalar = lanes_rhs(model, n_values, y)
    np.testing.assert_allclose(lanes, scalar, rtol=1e-13)


@pytest.mark.parametrize("execution", ["subjects", "lockstep"])
def test_exponent_parameter_2_gives_the_trajectories_of_x_times_x(execution):
    """A model whose exponent parameter is 2 against the same model with the powers
    written as a product and a square root: the same trajectories (required to 1e-12
    relative; the operations are the same, so measured identical), in the one-subject
    kernels and in lock step; at n = 2.5 against the literal exponent 2.5 (math.pow or
    vector_power in both)."""
    solver = plateletpd.DormandPrince853(rtol=1e-8, atol=1e-10)
    k = np.linspace(0.005, 0.05, 20)  # test input: 20 subjects, a full group and a partial one
    times = np.linspace(0, 2, 25)  # days (48 h: b = (sqrt(50) - k t / 2)^2 stays positive)
    for n, literal_a, literal_b in ((2.0, "-k * (a * a)", "-k * sqrt(b)"),
                                    (2.5, "-k * a ** 2.5", "-k * b ** (1 / 2.5)")):
        runs = []
        for model in (power_model(n=2.0, a="-k * a ** n", b="-k * b ** (1 / n)"),
                      power_model(n=2.0, a=literal_a, b=literal_b)):
            batch = plateletpd.simulate_batch(model, times=times, params={"k": k, "n": n},
                                              solver=solver, execution=execution)
            assert np.all(batch.status == plateletpd.Status.SUCCESS)
            runs.append(np.stack([batch.output("a"), batch.output("b")]))
        np.testing.assert_allclose(runs[0], runs[1], rtol=1e-12, atol=0)


def test_a_mixed_group_stays_in_lock_step_and_meets_the_closed_form():
    """Exponents 2 and 2.5 in one group: no fallback to one subject at a time (the group
    shares its counters) and every subject meets the closed form of a' = -k a^n,
    a = (a0^(1-n) + (n-1) k t)^(1/(1-n)) (hand-derived: separable), to 10 x rtol."""
    model = power_model(n=2.0, a="-k * a ** n", b="-k * b")
    n = np.where(np.arange(LANES) % 2 == 0, 2.0, 2.5)  # test input
    times = np.linspace(0, 2, 25)  # days; the model's time unit is h
    rtol = 1e-8
    batch = plateletpd.simulate_batch(
        model, times=times, params={"n": n, "k": np.full(LANES, 0.01)},
        solver=plateletpd.DormandPrince853(rtol=rtol, atol=1e-12), execution="lockstep")
    assert np.all(batch.counters == batch.counters[0])
    hours = 24 * times
    exact = (3.0 ** (1 - n[:, None]) + (n[:, None] - 1) * 0.01 * hours) ** (1 / (1 - n[:, None]))
    np.testing.assert_allclose(batch.output("a"), exact, rtol=10 * rtol)


def test_exact_powers_without_jit_give_the_compiled_results(tmp_path):
    """NUMBA_DISABLE_JIT=1 (plain Python on numpy scalars) gives the compiled results for
    an exact exponent (2) and an ordinary one (2.5): the same IEEE operations (DOPRI5 in
    both; 1e-12 relative as tests/test_failures.py)."""
    path = tmp_path / "power.toml"
    path.write_text(POWER_MODEL.format(n=2.0, a="-k * a ** n", b="-k * b ** (1 / n)"))
    script = (f"import json, numpy as np, plateletpd as pp\n"
              f"m = pp.load_model({str(path)!r})\n"
              "r = pp.simulate_batch(m, times=np.linspace(0, 2, 9), params={'n': [2.0, 2.5]})\n"
              "print(json.dumps(np.stack([r.output('a'), r.output('b')]).tolist()))\n")
    results = []
    for disable in ("0", "1"):
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              check=False, env={**os.environ, "NUMBA_DISABLE_JIT": disable}, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        results.append(np.array(json.loads(done.stdout.strip().splitlines()[-1])))
    assert np.all(np.isfinite(results[0]))
    np.testing.assert_allclose(results[1], results[0], rtol=1e-12)


def test_the_exact_powers_test_is_left_out_beyond_eight_loop_variants():
    """Three model switches already make 8 loop variants (MAX_UNIFORM_VARIANTS): the
    exact-powers test would double them, so rhs_lanes keeps vector_power; the one-subject
    kernels still take scalar_power. With two switches it is added (8 variants)."""
    for switches, expected in ((3, 0), (2, 1)):
        tests = " + ".join(f"(1 if k > {j} else 0)" for j in range(switches))
        model = power_model(a=f"-(a ** n) * (1 + {tests})")
        source = model.source
        lanes = source.split("def rhs_lanes(")[1].split("\ndef ")[0]
        assert f"N_UNIFORM = {switches + expected}" in source
        assert f"N_UNIFORM_SWITCHES = {switches}" in source
        assert ("square(s_a)" in lanes) == bool(expected)
        assert lanes.count("for lane in range(LANES)") == 2 ** (switches + expected)
        assert "scalar_power(s_a, p_n)" in source.split("def rhs_hoisted(")[1]
