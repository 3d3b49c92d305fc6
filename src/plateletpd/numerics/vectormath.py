"""Power, exponential and logarithm that LLVM can vectorise across subjects.

Why this exists. ``rhs_lanes`` evaluates a model for a group of subjects as one loop over
lanes, which LLVM turns into SIMD code. A call to the C library's ``pow``, ``exp`` or ``log``
inside that loop stays a scalar call per lane: numba's LLVM has no vector maths library here
(the PyPI llvmlite carries no Intel SVML, and LLVM's ``-vector-library`` option does not
reach numba's pass pipeline: tried, the optimised IR keeps ``llvm.pow.v8f64``, which the
back end splits into 8 scalar calls). The Friberg feedback
``(circ0 / circ) ** gamma`` alone was more than half of a Friberg group step. These functions
are plain floating-point and integer arithmetic on each lane's bits, with selects instead of
branches, so the loop around them vectorises (8 lanes per AVX-512 register).

Method (textbook argument reduction; every coefficient is an exact series term):

* ``logarithm(x)``: write x = m * 2**e with m in [sqrt(1/2), sqrt(2)) from the bits
  (subnormals first scaled by 2**54); log m = 2 atanh(s) with s = (m - 1) / (m + 1),
  |s| <= 0.172, summed as the series 2 s (1 + s**2/3 + s**4/5 + ... + s**22/23), whose
  first omitted term is below 2e-20 relative; log x = e ln 2 + log m.
* ``exponential(y)``: y = n ln 2 + r with n the nearest integer (rounded by adding
  1.5 * 2**52) and |r| <= ln(2)/2 (ln 2 split into a head whose product with n is exact and
  a tail); exp r by its Taylor series to r**13/13! (remainder below 5e-18 relative); the
  result scaled by 2**n as two factors 2**(n//2) and 2**(n - n//2) built from exponent
  bits, so overflow to inf and gradual underflow to subnormals and 0 happen in the last
  multiplication as in IEEE arithmetic.
* ``power(x, g)``: exp(g log |x|), then the special cases of C99 Annex F (``pow(x, 0) = 1``,
  ``pow(1, g) = 1``, ``pow(-1, +-inf) = 1``, odd/even integer powers of negative numbers
  and of -0, NaN for a negative base with a non-integer exponent) as selects.

Polynomials are evaluated in Estrin's scheme (a shallow tree instead of Horner's chain of
dependent steps): latency, not arithmetic, limits a 16-lane loop; 5.3 -> 4.6 ns per power
(libm: 10.5 ns), measured with fused multiply-adds as ``rhs_lanes`` compiles it.

Accuracy (measured in ``tests/test_vectormath.py`` against the C library through numba):
``exponential`` and ``logarithm`` within 3 ulp; ``power`` within (1 + |g log x|) * 4 ulp
relative, the error of log x being multiplied by g, as for any pow computed through exp
and log (the C library's pow is within 1 ulp). That is below 1e-14 relative wherever
|g log x| < 10, far below the tolerances an ODE solver is run at. The one-subject
right-hand side keeps the C library's functions, so a lock-step group and the same
subjects integrated one at a time agree to the integration tolerance, not to the last bit.

``NUMBA_DISABLE_JIT=1``: the functions run as plain Python on numpy scalars.
"""

from __future__ import annotations

import math

import numpy as np

from plateletpd.numerics.jit import KERNEL_OPTIONS, njit
from plateletpd.numerics.jit import math as kernel_math

#: ln 2 as head + tail: the head's low 21 mantissa bits are zero (32 significant bits), so
#: n * LN2_HEAD is exact for |n| < 2**21; together they carry ln 2 to about 1e-26
#: (checked in tests/test_vectormath.py).
LN2_HEAD = 6.93147180369123816490e-01
LN2_TAIL = 1.90821492927058770002e-10
INVERSE_LN2 = 1.4426950408889634  # 1 / ln 2, rounded
ROUNDING_SHIFT = 6755399441055744.0  # 1.5 * 2**52: adding it rounds to the nearest integer
SQRT2 = 1.4142135623730951
SMALLEST_NORMAL = 2.2250738585072014e-308
TWO_TO_54 = 18014398509481984.0
#: exp(y) overflows above 709.79 and underflows to 0 below -745.14; clamping y to
#: [-746, 710] keeps n in range for the two scale factors and changes no result.
EXP_LOWER, EXP_UPPER = -746.0, 710.0

_OPTIONS = {**KERNEL_OPTIONS, "inline": "always"}


@njit(**_OPTIONS)
def float_to_bits(value):
    """The 64 bits of a float64 as an int64 (a reinterpretation, not a conversion)."""
    return np.float64(value).view(np.int64)


@njit(**_OPTIONS)
def bits_to_float(bits):
    """The float64 whose 64 bits are the int64 ``bits``."""
    return np.int64(bits).view(np.float64)


@njit(**_OPTIONS)
def logarithm(x):
    """Natural logarithm of a float64, vectorisable; log(0) = -inf, log(inf) = inf,
    NaN for negative x and NaN."""
    small = x < SMALLEST_NORMAL
    scaled = x * TWO_TO_54 if small else x
    bits = float_to_bits(scaled)
    # unbiased exponent k - 1023 as a float without an int-to-float conversion:
    # the float with bits 0x433... | k is 2**52 + k exactly
    exponent = bits_to_float(0x4330000000000000 | (bits >> 52)) - 4503599627371519.0
    mantissa = bits_to_float((bits & 0x000FFFFFFFFFFFFF) | 0x3FF0000000000000)  # [1, 2)
    high = mantissa > SQRT2
    mantissa = 0.5 * mantissa if high else mantissa
    exponent = exponent + 1.0 if high else exponent
    exponent = exponent - 54.0 if small else exponent
    s = (mantissa - 1.0) / (mantissa + 1.0)
    z = s * s
    z2 = z * z
    z4 = z2 * z2
    series = (((1.0 / 3 + z * (1.0 / 5)) + z2 * (1.0 / 7 + z * (1.0 / 9)))
              + z4 * ((1.0 / 11 + z * (1.0 / 13)) + z2 * (1.0 / 15 + z * (1.0 / 17)))
              + (z4 * z4) * ((1.0 / 19 + z * (1.0 / 21)) + z2 * (1.0 / 23)))
    log_mantissa = 2.0 * s + (2.0 * s) * z * series
    result = exponent * LN2_HEAD + (log_mantissa + exponent * LN2_TAIL)
    result = -math.inf if x == 0.0 else result
    result = math.nan if x < 0.0 else result
    return result if x < math.inf else x  # inf stays inf, NaN stays NaN


@njit(**_OPTIONS)
def exponential(y):
    """e**y of a float64, vectorisable; overflows to inf, underflows to subnormals and 0."""
    clamped = EXP_UPPER if y > EXP_UPPER else y
    clamped = EXP_LOWER if clamped < EXP_LOWER else clamped
    shifted = clamped * INVERSE_LN2 + ROUNDING_SHIFT
    n = shifted - ROUNDING_SHIFT
    r = (clamped - n * LN2_HEAD) - n * LN2_TAIL
    r2 = r * r
    r4 = r2 * r2
    series = (((1.0 + r) + r2 * (1.0 / 2 + r * (1.0 / 6)))
              + r4 * ((1.0 / 24 + r * (1.0 / 120)) + r2 * (1.0 / 720 + r * (1.0 / 5040)))
              + (r4 * r4) * (((1.0 / 40320 + r * (1.0 / 362880))
                              + r2 * (1.0 / 3628800 + r * (1.0 / 39916800)))
                             + r4 * (1.0 / 479001600 + r * (1.0 / 6227020800))))
    whole = float_to_bits(shifted) - float_to_bits(ROUNDING_SHIFT)  # n as an integer
    half = whole >> 1
    result = series * bits_to_float((half + 1023) << 52) \
        * bits_to_float((whole - half + 1023) << 52)
    return y if y != y else result


@njit(**_OPTIONS)
def power(x, g):
    """x**g (C99 pow semantics, never complex), vectorisable."""
    magnitude = abs(x)
    result = exponential(g * logarithm(magnitude))
    result = 1.0 if (magnitude == 1.0 and abs(g) == math.inf) else result
    if float_to_bits(x) < 0:  # sign bit set: negative, -0.0 or -inf
        if np.floor(g) == g:  # an integer exponent (or +-inf, an even one)
            half = 0.5 * g
            result = -result if half != np.floor(half) else result
        elif magnitude != 0.0 and magnitude != math.inf:
            result = math.nan
    result = 1.0 if g == 0.0 else result
    return 1.0 if x == 1.0 else result


@njit(**_OPTIONS)
def positive_power(x, g):
    """:func:`power` of a base the code generator has shown is never negative nor -0
    (``plateletpd.model.codegen._positive``: ``max(..., 0.01)``, a parameter bounded above
    0, ``exp``), without :func:`power`'s selects for a negative base: on such a base (+0,
    positive, +inf or NaN) the same result bit for bit (tests/test_vectormath.py). About 5%
    of the marrow-reserve model's lock-step time, where ``production_factor **
    mk_yield_share`` is such a power."""
    result = exponential(g * logarithm(x))
    result = 1.0 if g == 0.0 else result
    return 1.0 if x == 1.0 else result  # pow(1, g) = 1 even for an infinite or NaN g


# ------------------------------------------------- powers with an exact cheaper form
#: Exponents whose power has a cheaper form that is exact or correctly rounded, hence
#: within 1 ulp of the C library's ``pow`` (which glibc documents as within 1 ulp; measured
#: identical on every tested value, tests/test_expressions.py), with the same C99 Annex F
#: special values: pow(x, 0) = 1 (even for NaN), pow(x, 1) = x, pow(x, 2) = x * x (one
#: rounding), pow(x, 0.5) = sqrt(x) (IEEE 754: correctly rounded) but for -0 and -inf,
#: pow(x, -1) = 1 / x (one rounding). A third power or a reciprocal square root takes two
#: roundings (up to 2 ulp from the correctly rounded value), so they are not here. The code
#: generator (:mod:`plateletpd.model.codegen`) emits these forms for a power whose exponent
#: depends on parameters only: :func:`scalar_power` in the one-subject kernels, and in
#: ``rhs_lanes`` a loop variant per group that writes the form in place of
#: :func:`power` (:func:`exact_power_source`).
EXACT_EXPONENTS = (2.0, 0.5, 1.0, -1.0, 0.0)

#: Exponents with a cheaper form in the lock-step kernels (``rhs_lanes``): those of
#: :data:`EXACT_EXPONENTS`, and 3 (:func:`cube`: two roundings, within 2 ulp of the exact
#: value). There the alternative is :func:`power`, exp(g log x) with a bound of
#: 4 ulp x (1 + |g log x|) (tests/test_vectormath.py), so the cube is the more accurate of
#: the two as well as the cheaper. The one-subject kernels keep the C library's ``pow`` for
#: it (:func:`scalar_power`), so their results, and every fit and trial run through them,
#: do not change.
LANE_EXPONENTS = (*EXACT_EXPONENTS, 3.0)


@njit(**_OPTIONS)
def square(x):
    """pow(x, 2): x * x, correctly rounded; -0, +-inf and NaN as pow gives them."""
    return x * x


@njit(**_OPTIONS)
def cube(x):
    """pow(x, 3) in the lock-step kernels only (see :data:`LANE_EXPONENTS`): x * x * x, two
    roundings, so within 2 ulp of the exact cube where it is normal (glibc's pow: within
    1 ulp); +-0, +-inf and NaN as pow gives them (the sign of an odd power kept)."""
    return x * x * x


@njit(**_OPTIONS)
def square_root_power(x):
    """pow(x, 0.5) from the correctly rounded square root: C99 pow gives +0 for -0 (sqrt
    gives -0: -0 + 0 is +0 in round-to-nearest) and +inf for -inf (sqrt gives NaN); a
    negative base gives NaN in both. ``np.sqrt`` so that without JIT a negative base gives
    NaN instead of raising."""
    root = np.sqrt(x + 0.0)
    return math.inf if x == -math.inf else root


@njit(**_OPTIONS)
def reciprocal(x):
    """pow(x, -1): 1 / x, correctly rounded (+-0 -> +-inf, +-inf -> +-0). A numpy float
    numerator, so that without JIT 1 / 0 gives inf as compiled code does."""
    return np.float64(1.0) / x


@njit(**_OPTIONS)
def scalar_power(x, g):
    """pow(x, g) for one subject, with the exponents of :data:`EXACT_EXPONENTS` taken
    apart by branches (well predicted: g is the same at every call of a subject's right-
    hand side) and every other exponent left to the C library's ``pow``, so the result is
    ``math.pow``'s to the last bit (``kernel_math``: numpy semantics without JIT)."""
    if g == 2.0:
        return square(x)
    if g == 0.5:
        return square_root_power(x)
    if g == 1.0:
        return x
    if g == -1.0:
        return reciprocal(x)
    if g == 0.0:
        return 1.0
    return kernel_math.pow(x, g)


def source_digest() -> str:
    """Hash of this file: the generated kernel modules carry it, so that a change here
    recompiles them (numba's cache only watches the file a function is defined in)."""
    import hashlib
    from pathlib import Path

    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
