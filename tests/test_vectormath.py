"""plateletpd.numerics.vectormath: the vectorisable power, exponential and logarithm of rhs_lanes.

References: the C library's pow/exp/log called through numba (``math.pow`` etc. compile to
them), which are correctly rounded or within 1 ulp; special values as C99 Annex F defines
pow. Error bounds are in ulp of the result (2**-52 relative); the measured worst cases on
these samples are in the comments, the bounds leave about a factor 1.5-2.
"""

import math
from decimal import Decimal, getcontext

import numba
import numpy as np
import pytest

import plateletpd as pp
from plateletpd.numerics import vectormath
from plateletpd.numerics.jit import plain_python

ULP = 2.0 ** -52


def _elementwise(power, exponential, logarithm):
    """A compiled loop applying one of the three functions (0 power, 1 exp, 2 log)."""
    @numba.njit(error_model="numpy")
    def run(function_id, x, g, out):
        for i in range(x.size):
            if function_id == 0:
                out[i] = power(x[i], g[i])
            elif function_id == 1:
                out[i] = exponential(x[i])
            else:
                out[i] = logarithm(x[i])
    return run


_ours = _elementwise(vectormath.power, vectormath.exponential, vectormath.logarithm)
_libm = _elementwise(math.pow, math.exp, math.log)


def both(function_id, x, g=None):
    x = np.ascontiguousarray(x, dtype=float)
    g = np.zeros_like(x) if g is None else np.ascontiguousarray(g, dtype=float)
    ours, libm = np.empty_like(x), np.empty_like(x)
    _ours(function_id, x, g, ours)
    _libm(function_id, x, g, libm)
    return ours, libm


def test_split_ln2_carries_ln2_and_its_head_multiplies_exactly():
    """ln 2 = head + tail to ~1e-26 (Decimal's ln at 40 digits), and the head's low 21
    mantissa bits are zero (32 significant bits), so n * head is exact for the
    |n| <= 1076 (11 bits) that exponential uses."""
    getcontext().prec = 40
    error = Decimal(vectormath.LN2_HEAD) + Decimal(vectormath.LN2_TAIL) - Decimal(2).ln()
    assert abs(error) < Decimal("1e-25")
    assert np.float64(vectormath.LN2_HEAD).view(np.int64) & (2 ** 21 - 1) == 0
    assert vectormath.ROUNDING_SHIFT == 1.5 * 2.0 ** 52
    assert vectormath.SQRT2 == math.sqrt(2.0)
    assert vectormath.INVERSE_LN2 == 1.0 / math.log(2.0)


def test_exponential_within_3_ulp_of_the_c_library_over_its_whole_range():
    """Normal results: relative error <= 3 ulp (measured 2.0); results in the subnormal
    range (y < -708.4) within two of the smallest subnormal (gradual underflow)."""
    rng = np.random.default_rng(1)
    y = np.concatenate([rng.uniform(-745.5, 709.78, 200_000), rng.uniform(-1, 1, 50_000),
                        [0.0, -0.0, 709.78, -708.39, -745.13, 1e-300, -1e-300]])
    ours, libm = both(1, y)
    normal = libm >= 2.2250738585072014e-308
    assert np.max(np.abs(ours[normal] / libm[normal] - 1.0)) <= 3 * ULP
    assert np.max(np.abs(ours[~normal] - libm[~normal])) <= 2 * 5e-324


def test_logarithm_within_3_ulp_of_the_c_library_including_subnormals_and_near_one():
    """Relative error <= 3 ulp (measured 1.5) over 1e-320 .. 1e308 and next to 1, where
    log x is small and an absolute-error method would lose every digit."""
    rng = np.random.default_rng(2)
    x = np.concatenate([np.exp(rng.uniform(-736, 709, 200_000)),
                        1.0 + rng.uniform(-1e-3, 1e-3, 50_000),
                        1.0 + rng.uniform(-0.5, 0.5, 50_000),
                        [np.nextafter(1.0, 2.0), np.nextafter(1.0, 0.0), 5e-324, 1e-310,
                         2.2250738585072014e-308, 1.7976931348623157e308, math.sqrt(2.0)]])
    x = x[x != 1.0]
    ours, libm = both(2, x)
    assert np.max(np.abs(ours / libm - 1.0)) <= 3 * ULP


def test_power_within_its_bound_of_the_c_library():
    """Relative error <= 4 ulp x (1 + |g log x|) (measured 2.0): base and exponent ranges
    of the models' feedback and Hill terms, and a wide sweep."""
    rng = np.random.default_rng(3)
    x = np.concatenate([np.exp(rng.uniform(-12, 12, 200_000)), rng.uniform(0.2, 5, 100_000)])
    g = np.concatenate([rng.uniform(-4, 4, 200_000), rng.uniform(0.0, 2.0, 100_000)])
    ours, libm = both(0, x, g)
    bound = 4 * ULP * (1.0 + np.abs(g * np.log(x)))
    assert np.all(np.abs(ours / libm - 1.0) <= bound)


SPECIAL = [0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 3.0, -3.0, 2.5, -2.5, math.inf,
           -math.inf, math.nan, 1e-310, -1e-310, 1e300, -1e300, 7.0, -7.0]


def test_power_special_values_follow_c99_annex_f():
    """Every pair from a table of zeros of both signs, +-1, +-inf, NaN, subnormals, odd and
    even integers and non-integers: NaN where the C library gives NaN, the same sign, the
    same zeros and infinities, and finite results within the bound above."""
    x, g = (a.ravel() for a in np.meshgrid(SPECIAL, SPECIAL))
    ours, libm = both(0, x, g)
    assert np.array_equal(np.isnan(ours), np.isnan(libm))
    ok = ~np.isnan(libm)
    assert np.array_equal(np.signbit(ours[ok]), np.signbit(libm[ok]))
    assert np.array_equal(np.isinf(ours[ok]), np.isinf(libm[ok]))
    assert np.array_equal(ours[ok] == 0.0, libm[ok] == 0.0)
    finite = ok & np.isfinite(libm) & (libm != 0.0)
    with np.errstate(all="ignore"):
        amplification = np.abs(g[finite] * np.log(np.abs(x[finite])))
    bound = 4 * ULP * (1.0 + np.nan_to_num(amplification, nan=0.0))  # 0 * log 0: pow 1
    assert np.all(np.abs(ours[finite] / libm[finite] - 1.0) <= bound)


def test_exponential_and_logarithm_special_values():
    """exp: inf, 0, NaN, 1 at inf, -inf, NaN, 0; log: -inf at +-0, NaN below 0 and at NaN,
    inf at inf (the C library's values)."""
    y = np.array([math.inf, -math.inf, math.nan, 0.0, -0.0, 710.0, -746.0, 1000.0])
    ours, libm = both(1, y)
    np.testing.assert_array_equal(ours, libm)
    x = np.array([0.0, -0.0, -1.0, -math.inf, math.nan, math.inf, 1.0])
    ours, libm = both(2, x)
    np.testing.assert_array_equal(ours, libm)


def test_plain_python_gives_the_same_bits():
    """With NUMBA_DISABLE_JIT=1 the functions run as Python on numpy scalars: the same
    arithmetic, so the same results bit for bit as the compiled code (no fused
    multiply-adds in either here)."""
    rng = np.random.default_rng(4)
    x, g = np.exp(rng.uniform(-20, 20, 200)), rng.uniform(-3, 3, 200)
    compiled, _ = both(0, x, g)
    python = [plain_python(vectormath.power)(a, b) for a, b in zip(x, g)]
    np.testing.assert_array_equal(compiled, python)
    compiled, _ = both(2, x)
    np.testing.assert_array_equal(compiled, [plain_python(vectormath.logarithm)(a) for a in x])


@pytest.mark.parametrize("name", ["friberg_platelets", "cit_thrombopoiesis"])
def test_only_the_loop_over_subjects_uses_the_vectorised_power(name):
    """rhs_lanes (one loop over a group's subjects) takes vector_power; the one-subject
    right-hand sides keep the C library's pow (their powers have a parameter exponent, so
    through scalar_power, which calls math.pow for every exponent but 2, 1/2, 1, -1, 0)."""
    source = pp.load_model(name).source
    lanes = source.split("def rhs_lanes(")[1].split("\ndef ")[0]
    hoisted = source.split("def rhs_hoisted(")[1].split("\ndef ")[0]
    assert "vector_power(" in lanes and "math.pow(" not in lanes
    assert "scalar_power(" in hoisted and "vector_power(" not in hoisted


def test_lockstep_integrates_exp_log_and_power_of_states_to_their_closed_forms():
    """End to end through the generated rhs_lanes: a model whose right-hand side is
    exp(log(state)) and state ** exponent (tests/models/vector_functions.toml), 18 subjects
    (a full and a partial group) with different rates and exponents, against the closed
    forms, within DOP853's allowance on closed forms (3, test_integrator.allowed)."""
    from conftest import TEST_MODELS
    from test_integrator import scaled_error

    model = pp.load_model(TEST_MODELS / "vector_functions.toml")
    assert "vector_exp(vector_log(" in model.source.split("def rhs_lanes(")[1]
    rates, exponents = np.linspace(0.02, 0.12, 18), np.linspace(0.2, 0.8, 18)
    hours = np.linspace(0.0, 48.0, 97)
    rtol, atol = 1e-8, 1e-10
    batch = pp.simulate_batch(model, None, times=hours / 24,
                              params={"rate": rates, "exponent": exponents},
                              solver=pp.DormandPrince853(rtol=rtol, atol=atol),
                              execution="lockstep")
    assert np.all(batch.status == pp.Status.SUCCESS)
    assert np.all(batch.counters[:16] == batch.counters[0])  # the first group ran in lock step
    for subject, (rate, e) in enumerate(zip(rates, exponents)):
        decay = 100.0 * np.exp(-rate * hours)
        root = (100.0 ** (1 - e) - (1 - e) * rate * hours) ** (1 / (1 - e))
        assert scaled_error(batch.output("decay")[subject], decay, rtol, atol) < 3.0, subject
        assert scaled_error(batch.output("root")[subject], root, rtol, atol) < 3.0, subject


def test_positive_power_is_power_bit_for_bit_on_a_base_that_is_never_negative():
    """vectormath.positive_power drops power's negative-base selects; on what the code
    generator lets it see (+0, positive, subnormal, +inf or NaN bases: codegen._positive)
    it must give power's bits for every exponent, the special ones (0, +-1, 2, 3, 0.5,
    +-inf, NaN, huge and tiny) included; compiled as rhs_lanes compiles them (a loop)."""
    @numba.njit(error_model="numpy")
    def run(x, g, ours, theirs):
        for i in range(x.size):
            ours[i] = vectormath.positive_power(x[i], g[i])
            theirs[i] = vectormath.power(x[i], g[i])

    rng = np.random.default_rng(8)
    bases = np.concatenate([np.exp(rng.uniform(-745, 709, 4000)), rng.uniform(0, 3, 1000),
                            [0.0, 1.0, 5e-324, 2.2e-308, math.inf, math.nan, 1e300]])
    exponents = np.concatenate([rng.normal(0, 3, 30), [0.0, 1.0, -1.0, 2.0, 3.0, 0.5, 0.3,
                                                       -0.3, math.inf, -math.inf, math.nan,
                                                       1e-300, 700.0]])
    x, g = (a.ravel() for a in np.meshgrid(bases, exponents))
    ours, theirs = np.empty_like(x), np.empty_like(x)
    run(x, g, ours, theirs)
    assert np.array_equal(ours.view(np.int64)[~np.isnan(theirs)],
                          theirs.view(np.int64)[~np.isnan(theirs)])
    assert np.array_equal(np.isnan(ours), np.isnan(theirs))
