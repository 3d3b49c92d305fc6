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
from numba import carray as _carray, cfunc as _cfunc, types as _types
from numba.core import event as _event
from numba.extending import intrinsic as _intrinsic

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
    """The ``math`` module with the model formulas' functions (``exp log log10 sqrt cos sin pow``)
    under numpy semantics: NaN or inf instead of ValueError or OverflowError, as numba's
    compiled code gives them (run under ``numpy.errstate``, quietly)."""
    module = ModuleType("math", "math with numpy semantics (NUMBA_DISABLE_JIT=1)")
    module.__dict__.update({k: v for k, v in vars(_math).items() if not k.startswith("_")})
    for name, function in {"exp": np.exp, "log": np.log, "log10": np.log10, "sqrt": np.sqrt,
                           "cos": np.cos, "sin": np.sin, "pow": np.power}.items():
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
            if not report["announced"] and report["stream"] is not None \
                    and not _internal(event):
                report["announced"] = True
                print(f"plateletpd: compiling {report['what']} (first run; cached on disk "
                      "for later runs) ...", file=report["stream"], flush=True)

    def on_end(self, event):
        report = getattr(self.local, "report", None)
        if report is None:
            return
        report["depth"] -= 1
        if report["depth"] == 0:
            name = "numba internals" if _internal(event) else \
                event.data["dispatcher"].py_func.__name__
            seconds = time.perf_counter() - report["began"]
            report["functions"][name] = report["functions"].get(name, 0.0) + seconds


def _internal(event) -> bool:
    """True for numba's own helper functions (an overload's ``impl``: the generic
    integrator's C wrappers compile one in every process, in about 0.1 s), which alone are
    not worth a report."""
    return (getattr(event.data["dispatcher"].py_func, "__module__", None) or "").startswith(
        "numba")


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
    report = {"what": what, "stream": stream, "depth": 0, "began": 0.0, "functions": {},
              "announced": False}
    if outer is not None:  # nested: the outer block reports
        yield report["functions"]
        return
    _LISTENER.local.report = report
    try:
        yield report["functions"]
    finally:
        _LISTENER.local.report = None
        functions = report["functions"]
        if report["announced"]:
            listed = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in functions.items())
            print(f"plateletpd: compiled {what} in {sum(functions.values()):.1f} s "
                  f"({listed})", file=stream, flush=True)


# ---------------------------------------------------------------- model functions by address
#: The one C signature of a model function called through a pointer by the generic integrator
#: (:func:`plateletpd.numerics.kernels.generic_module_source`): ``void f(double t, double *a,
#: double *b, double *c)``; what the three arrays are depends on the function
#: (:func:`model_pointers`).
MODEL_FUNCTION_SIGNATURE = _types.void(_types.float64, _types.CPointer(_types.float64),
                                       _types.CPointer(_types.float64),
                                       _types.CPointer(_types.float64))


@_intrinsic
def call_model(typing_context, address, t, a, b, c):
    """Call the compiled model function at ``address`` (an integer) with the time ``t`` and
    the data addresses ``a``, ``b``, ``c`` of three float64 arrays (``array.ctypes.data``).

    An address is a run-time value, so code calling it is model-independent and numba can
    cache it on disk (a compiled function passed as an argument could not be cached)."""
    signature = _types.void(address, t, a, b, c)

    def codegen(context, builder, signature, arguments):
        from llvmlite import ir

        double = ir.DoubleType()
        pointer = double.as_pointer()
        function_type = ir.FunctionType(ir.VoidType(), [double, pointer, pointer, pointer])
        address, t, a, b, c = arguments
        function = builder.inttoptr(address, function_type.as_pointer())
        builder.call(function, [t, builder.inttoptr(a, pointer), builder.inttoptr(b, pointer),
                                builder.inttoptr(c, pointer)])
        return context.get_dummy_value()

    return signature, codegen


def model_pointers(kernel: ModuleType, n_states: int, n_vector: int, n_outputs: int,
                   n_targets: int) -> list:
    """C-callable wrappers (numba ``cfunc``, :data:`MODEL_FUNCTION_SIGNATURE`) of a kernel
    module's compiled model functions, in the order the generic integrator reads their
    addresses: ``rhs_hoisted(t, y, q, dydt)``, ``constants(q)``, ``initial(q, y0)``,
    ``outputs(t, y, q, out)``, ``dose_modifiers(q, bioavailability, lag)``. ``n_vector`` is
    the length of the parameter vector they receive (parameters, covariates, parameter-only
    quantities and these addresses). Each wrapper compiles in well under a second; the
    model functions it calls are the kernel's own (compiled once, cached on disk)."""
    rhs, constants, initial = kernel.rhs_hoisted, kernel.constants, kernel.initial
    outputs, dose_modifiers = kernel.outputs, kernel.dose_modifiers
    n, m, k = n_states, max(n_outputs, 1), max(n_targets, 1)
    options = {"error_model": "numpy"}

    @_cfunc(MODEL_FUNCTION_SIGNATURE, **options)
    def rhs_pointer(t, y, q, dydt):
        rhs(t, _carray(y, (n,)), _carray(q, (n_vector,)), _carray(dydt, (n,)))

    @_cfunc(MODEL_FUNCTION_SIGNATURE, **options)
    def constants_pointer(t, q, unused_b, unused_c):
        constants(_carray(q, (n_vector,)))

    @_cfunc(MODEL_FUNCTION_SIGNATURE, **options)
    def initial_pointer(t, q, y0, unused_c):
        initial(_carray(q, (n_vector,)), _carray(y0, (n,)))

    @_cfunc(MODEL_FUNCTION_SIGNATURE, **options)
    def outputs_pointer(t, y, q, out):
        outputs(t, _carray(y, (n,)), _carray(q, (n_vector,)), _carray(out, (m,)))

    @_cfunc(MODEL_FUNCTION_SIGNATURE, **options)
    def dose_modifiers_pointer(t, q, bioavailability, lag):
        dose_modifiers(_carray(q, (n_vector,)), _carray(bioavailability, (k,)),
                       _carray(lag, (k,)))

    return [rhs_pointer, constants_pointer, initial_pointer, outputs_pointer,
            dose_modifiers_pointer]


def uniform_pointer(kernel: ModuleType, n_vector: int):
    """C-callable wrapper of a kernel module's ``uniform_conditions(q, out)`` (one subject's
    vector of ``n_vector`` values; ``out``: its ``N_UNIFORM`` group-uniform tests), for the
    generic lock-step driver and its look at a cohort's loop variants."""
    uniform_conditions = kernel.uniform_conditions
    n_uniform = max(kernel.N_UNIFORM, 1)

    @_cfunc(MODEL_FUNCTION_SIGNATURE, error_model="numpy")
    def uniform_conditions_pointer(t, q, out, unused_c):
        uniform_conditions(_carray(q, (n_vector,)), _carray(out, (n_uniform,)))

    return uniform_conditions_pointer


def lane_variant_pointer(kernel: ModuleType, variant: int, n_vector: int, n_slots: int,
                         function=None):
    """C-callable wrapper of one loop variant of a kernel module's vectorised right-hand side,
    ``rhs_lanes_v{variant}(t, y, q, dydt)``, on a group's lane-major arrays (``q``:
    ``n_vector - n_slots`` rows and the model's ``N_UNIFORM`` test rows of ``LANES`` values,
    then the ``n_slots`` addresses). Building it compiles that variant alone (seconds for the
    CIT model), so only the variants a lock-step cohort's groups use are built. ``function``:
    a compiled function of the same arguments to wrap instead (the variant with a batch's
    idle states folded away, ``plateletpd.model.codegen.folded_lane_source``)."""
    rhs = getattr(kernel, f"rhs_lanes_v{variant}") if function is None else function
    width = kernel.N_STATES * kernel.LANES
    n_q = (n_vector - n_slots + kernel.N_UNIFORM) * kernel.LANES + n_slots

    @_cfunc(MODEL_FUNCTION_SIGNATURE, error_model="numpy")
    def rhs_lanes_pointer(t, y, q, dydt):
        rhs(t, _carray(y, (width,)), _carray(q, (n_q,)), _carray(dydt, (width,)))

    return rhs_lanes_pointer
