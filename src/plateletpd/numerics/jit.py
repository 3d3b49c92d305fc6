"""The one place that imports numba: the decorator and options of every compiled function.

Generated kernel modules, the integrator template and the vector maths import ``njit``,
``prange``, ``KERNEL_OPTIONS``, ``CONTRACT`` and ``math`` from here, so switching numba off
(``NUMBA_DISABLE_JIT=1``: everything runs as plain Python, slow but debuggable) or changing
an option happens once.
"""

from __future__ import annotations

import contextlib
import math as _math
import os
import sys
import threading
import time
from types import ModuleType

import numba
import numpy as np
from numba import njit, prange  # noqa: F401  (re-exported to generated code)
from numba.core import event as _event

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


class _CompileListener(_event.Listener):
    """Times numba's compilations (``numba:compile`` events: a real compilation, never a
    load from the disk cache) inside :func:`compile_report`, in the thread that asked."""

    def __init__(self):
        self.local = threading.local()

    def on_start(self, event):
        report = getattr(self.local, "report", None)
        if report is None:
            return
        report["depth"] += 1
        if report["depth"] == 1:
            report["began"] = time.perf_counter()
            if not report["functions"] and report["stream"] is not None:
                print(f"plateletpd: compiling {report['what']} (the first run of this "
                      "kernel; later runs load it from the disk cache) ...",
                      file=report["stream"], flush=True)

    def on_end(self, event):
        report = getattr(self.local, "report", None)
        if report is None:
            return
        report["depth"] -= 1
        if report["depth"] == 0:
            name = event.data["dispatcher"].py_func.__name__
            seconds = time.perf_counter() - report["began"]
            report["functions"][name] = report["functions"].get(name, 0.0) + seconds


_LISTENER = _CompileListener()
_event.register("numba:compile", _LISTENER)


@contextlib.contextmanager
def compile_report(what: str, stream=None):
    """Say on ``stream`` (standard error by default) what numba compiles inside this block
    and for how long: one line when the first compilation starts
    (``plateletpd: compiling <what> ...``), one when the block ends
    (``plateletpd: compiled <what> in 8.2 s (solve_subject_dopri5 8.2 s)``: each function
    the block called that had to be compiled, with the wall seconds of its compilation,
    callees included). Nothing is printed when everything came from the disk cache, and
    nothing at all with ``PLATELETPD_REPORT_COMPILES=0``. Yields the dict of compiled
    functions and seconds (empty on a warm cache), printed or not."""
    quiet = os.environ.get("PLATELETPD_REPORT_COMPILES", "1").strip() in {"0", "no", "false"}
    stream = None if quiet else (stream or sys.stderr)
    outer = getattr(_LISTENER.local, "report", None)
    report = {"what": what, "stream": stream, "depth": 0, "began": 0.0, "functions": {}}
    if outer is not None:  # nested: the outer block reports
        yield report["functions"]
        return
    _LISTENER.local.report = report
    try:
        yield report["functions"]
    finally:
        _LISTENER.local.report = None
        functions = report["functions"]
        if functions and stream is not None:
            listed = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in functions.items())
            print(f"plateletpd: compiled {what} in {sum(functions.values()):.1f} s "
                  f"({listed})", file=stream, flush=True)
