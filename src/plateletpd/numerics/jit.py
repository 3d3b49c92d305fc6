"""The one place that imports numba: the decorator and options of every compiled function.

Generated kernel modules, the integrator template and the vector maths import ``njit``,
``prange``, ``KERNEL_OPTIONS``, ``CONTRACT`` and ``math`` from here, so switching numba off
(``NUMBA_DISABLE_JIT=1``: everything runs as plain Python, slow but debuggable) or changing
an option happens once.
"""

from __future__ import annotations

import math as _math
from types import ModuleType

import numba
import numpy as np
from numba import njit, prange  # noqa: F401  (re-exported to generated code)

#: numba's version: part of every kernel's cache key.
NUMBA_VERSION = numba.__version__

#: Options of every generated and integrator function. ``error_model="numpy"``: division by
#: zero gives inf/nan (caught as a non-finite status) instead of raising inside a kernel.
KERNEL_OPTIONS = {"cache": True, "error_model": "numpy", "nogil": True}

#: ``fastmath`` of the vectorised passes over subjects (lock-step stages, ``rhs_lanes``): LLVM
#: may fuse a multiply and an add into one FMA (one rounding instead of two); no other
#: fast-math licence (no reassociation; NaN and inf are kept).
CONTRACT = {"contract"}



def _numpy_math() -> ModuleType:
    """The ``math`` module with the model formulas' functions (``exp log log10 sqrt pow``)
    under numpy semantics: NaN or inf instead of ValueError or OverflowError, as numba's
    compiled code gives them (run under ``numpy.errstate``, quietly)."""
    module = ModuleType("math", "math with numpy semantics (NUMBA_DISABLE_JIT=1)")
    module.__dict__.update({k: v for k, v in vars(_math).items() if not k.startswith("_")})
    for name, function in {"exp": np.exp, "log": np.log, "log10": np.log10, "sqrt": np.sqrt,
                           "pow": np.power}.items():
        setattr(module, name, lambda *args, _function=function: _function(
            *(np.float64(a) for a in args)))
    return module


#: What generated kernel modules import as ``math``: the standard module when numba compiles
#: them; without JIT (``NUMBA_DISABLE_JIT=1``, plain Python) its numpy-semantics twin, so a
#: model formula's log of a negative number, square root of a negative number, or overflowing
#: exp gives the same NaN or inf, hence the same per-subject status, instead of raising.
math = _math if not numba.config.DISABLE_JIT else _numpy_math()



def quiet(function):
    """Without JIT, ``function`` (a generated model function writing its last argument, an
    array) with a math error that numpy semantics do not cover (a float division by zero
    between literals, ``1 / max(x, 0)``) giving NaN in that array instead of raising, so the
    subject gets the same non-finite status as compiled code (inf there). With JIT,
    ``function`` itself (compiled code never raises: ``error_model="numpy"``)."""
    if not numba.config.DISABLE_JIT:
        return function

    def quiet_function(*args):
        try:
            return function(*args)
        except (ArithmeticError, ValueError):
            args[-1][:] = np.nan

    return quiet_function


def plain_python(function):
    """The pure-Python function behind a numba dispatcher (itself when JIT is disabled)."""
    return getattr(function, "py_func", function)


def jit_disabled() -> bool:
    """True when ``NUMBA_DISABLE_JIT`` is set: kernels run as plain Python."""
    return bool(numba.config.DISABLE_JIT)
