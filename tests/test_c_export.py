"""Tests of Model.c_source(): the C right-hand side for R's deSolve, compiled with gcc.

Each model's C source is compiled to a shared library and called through ctypes the way
deSolve calls it: ``initmod(odeparms)`` with a callback that fills the parameter array, then
``derivs(neq, t, y, ydot, yout, ip)``. Its derivatives and outputs must equal those of the
generated Python kernel (``python_rhs(model)`` and the plain-Python ``outputs``).

Sources of the numbers used below:
- "test fixture": values of the model text written in this module (made up).
- "test input": random states, rates and times, only needing to be positive.
- rtol 1e-12: both sides evaluate the same formulas in the same order with the same libm,
  so they agree to rounding (the brief's tolerance).
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import plateletpd
from plateletpd.numerics.jit import plain_python
from plateletpd.numerics.kernels import compile_kernel, python_rhs

TEST_MODELS = Path(__file__).parent / "models"
RTOL = 1e-12  # see the module docstring
N_POINTS = 8  # random (t, y, rate) points per model, test input

#: Every construct of the formula language, two covariates (one with a default, one unread)
#: and three dose targets, two of them into the same state.
FEATURES = """\
[model]
name = "c_features"
description = "every formula construct, for the C export"
time_unit = "h"

[parameters]
ka = { value = 1.3, unit = "1/h", lower = 0, source = "test fixture" }
ke = { value = 0.2, unit = "1/h", lower = 0, source = "test fixture" }
volume = { value = 12.0, unit = "L", lower = 0.1, source = "test fixture" }
emax = { value = 0.8, unit = "1", lower = 0, upper = 1, source = "test fixture" }
ec50 = { value = 2.5, unit = "mg/L", lower = 0.01, source = "test fixture" }
hill = { value = 1.7, unit = "1", lower = 0.1, upper = 5, source = "test fixture" }
t_switch = { value = 5.0, unit = "h", lower = 0, source = "test fixture" }
kout = { value = 0.05, unit = "1/h", lower = 0, source = "test fixture" }
baseline = { value = 200.0, unit = "10^9/L", lower = 1, source = "test fixture" }

[covariates.body_weight]
unit = "kg"
description = "body weight (allometric volume)"
default = 70
lower = 1
upper = 400

[covariates.age]
unit = "year"
description = "age, read by no formula"
lower = 0
upper = 130

[states.gut]
unit = "mg"
[states.central]
unit = "mg"
[states.response]
unit = "10^9/L"
initial = "baseline"

[derived]
effect = "emax * conc ** hill / (ec50 ** hill + conc ** hill)"
conc = "central / (volume * (body_weight / 70) ** 0.75)"
switch = "1 if t > t_switch and conc >= 0 else 0"
clip = "min(conc, ec50, 10) + max(conc, 0.1, abs(-0.2))"
smooth = "sqrt(clip) + log(1 + conc) + log10(1 + conc) + exp(-conc)"

[odes]
gut = "-ka * gut"
central = "ka * gut - ke * central - 1e-3 * central ** 2 + -(+0.0)"
response = \"\"\"kout * baseline * (1 - effect * switch) - kout * response \
+ 1e-3 * smooth * (not conc < 0) - 1e-6 * response ** 3 \
+ (0.5 if 0 <= conc < 100 or t < 0 else 0.25) * (response < baseline)\"\"\"

[outputs.concentration]
expression = "conc"
unit = "mg/L"
[outputs.response]
expression = "response"
unit = "10^9/L"
[outputs.mixed]
expression = "effect * 100 + t ** 2 - max(gut, central) / min(volume, 50)"
unit = "1"

[doses.oral]
state = "gut"
amount_unit = "mg"
routes = ["bolus", "infusion"]
[doses.iv]
state = "central"
amount_unit = "mg"
routes = ["bolus", "infusion"]
[doses.iv_second]
state = "central"
amount_unit = "mg"
routes = ["infusion"]
"""


def model_sources():
    """(id, loader) for every bundled model, every test model and FEATURES."""
    sources = [(name, lambda name=name: plateletpd.load_model(name))
               for name in sorted(plateletpd.list_models())]
    sources += [(path.stem, lambda path=path: plateletpd.load_model(path))
                for path in sorted(TEST_MODELS.glob("*.toml"))]
    sources.append(("c_features", lambda: plateletpd.parse_model(FEATURES, "c_features.toml")))
    return sources


SOURCES = model_sources()

ODEPARMS = ctypes.CFUNCTYPE(None, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_double))
DOUBLES = ctypes.POINTER(ctypes.c_double)
INTS = ctypes.POINTER(ctypes.c_int)


class DeSolveLibrary:
    """A model's C source compiled with gcc and called the way deSolve calls it."""

    def __init__(self, model, folder: Path):
        gcc = shutil.which("gcc")
        if gcc is None:
            pytest.skip("gcc is not installed")
        source = folder / f"{model.name}.c"
        library = folder / "lib.so"
        source.write_text(model.c_source())
        build = subprocess.run([gcc, "-O2", "-shared", "-fPIC", "-o", str(library),
                                str(source), "-lm"], capture_output=True, text=True)
        assert build.returncode == 0, f"gcc failed:\n{build.stderr}\n{model.c_source()}"
        self.lib = ctypes.CDLL(str(library))
        self.lib.initmod.argtypes = [ODEPARMS]
        self.lib.initmod.restype = None
        self.lib.derivs.argtypes = [INTS, DOUBLES, DOUBLES, DOUBLES, DOUBLES, INTS]
        self.lib.derivs.restype = None
        self.n_states = len(model.states)
        self.n_equations = self.n_states + len(model.dose_targets)
        self.n_outputs = len(model.outputs)

    def initmod(self, p: np.ndarray) -> int:
        """Pass ``p`` through deSolve's odeparms callback; return the N that C announced."""
        announced = []

        def odeparms(n, parms):
            announced.append(n[0])
            for i in range(n[0]):
                parms[i] = float(p[i])

        self.lib.initmod(ODEPARMS(odeparms))
        assert len(announced) == 1, "initmod must call odeparms exactly once"
        return announced[0]

    def derivs(self, t: float, y: np.ndarray, nout: int) -> tuple[np.ndarray, np.ndarray]:
        """ydot and yout at (t, y); yout starts as NaN so unwritten entries show."""
        y = np.ascontiguousarray(y, dtype=np.float64)
        assert y.size == self.n_equations
        ydot = np.full(self.n_equations, np.nan)
        yout = np.full(max(self.n_outputs, 1), np.nan)
        pointer = lambda a: a.ctypes.data_as(DOUBLES)  # noqa: E731
        self.lib.derivs(ctypes.byref(ctypes.c_int(self.n_equations)),
                        ctypes.byref(ctypes.c_double(t)), pointer(y), pointer(ydot),
                        pointer(yout), (ctypes.c_int * 2)(nout, 0))
        return ydot, yout[:self.n_outputs]


@pytest.fixture(scope="module", params=SOURCES, ids=[name for name, _ in SOURCES])
def compiled(request, tmp_path_factory):
    model = request.param[1]()
    return model, DeSolveLibrary(model, tmp_path_factory.mktemp(model.name))


def parameter_vectors(model, rng) -> list[np.ndarray]:
    """The typical values, and values moved by up to 20% inside the bounds (test input)."""
    moved = {p.name: float(np.clip(p.value * rng.uniform(0.8, 1.2), p.lower, p.upper))
             for p in model.parameters.values()}
    return [model.parameter_vector(), model.parameter_vector(moved)]


def random_points(model, rng):
    """(t, y with rate states, rates per model state) at positive random values."""
    n_states, n_targets = len(model.states), len(model.dose_targets)
    for _ in range(N_POINTS):
        t = rng.uniform(0.1, 20.0)
        y = rng.uniform(0.1, 300.0, n_states + n_targets)  # test input
        rate = np.zeros(n_states)
        for k, target in enumerate(model.dose_targets):
            rate[target.state_index] += y[n_states + k]
        yield t, y, rate


def test_initmod_announces_the_parameter_count(compiled):
    model, library = compiled
    p = model.parameter_vector()
    assert library.initmod(p) == len(model.parameter_names) + len(model.covariate_names)
    assert len(p) == len(model.parameter_names) + len(model.covariate_names)


def test_derivs_match_the_python_kernel(compiled):
    model, library = compiled
    rhs = python_rhs(model)
    n_states = len(model.states)
    rng = np.random.default_rng(20240601)  # fixed seed, test input
    for p in parameter_vectors(model, rng):
        library.initmod(p)
        for t, y, rate in random_points(model, rng):
            ydot, _ = library.derivs(t, y, nout=0)
            expected = rhs(t, y[:n_states], p, rate)
            np.testing.assert_allclose(ydot[:n_states], expected, rtol=RTOL, atol=0,
                                       err_msg=f"{model.name} at t={t}")
            # the infusion-rate states are constant between deSolve events
            assert np.all(ydot[n_states:] == 0.0)


def test_rates_enter_their_target_states(compiled):
    model, library = compiled
    n_states = len(model.states)
    rng = np.random.default_rng(7)  # fixed seed, test input
    library.initmod(model.parameter_vector())
    t, y, _ = next(random_points(model, rng))
    without = y.copy()
    without[n_states:] = 0.0
    ydot_without, _ = library.derivs(t, without, nout=0)
    ydot, _ = library.derivs(t, y, nout=0)
    expected_increase = np.zeros(n_states)
    for k, target in enumerate(model.dose_targets):
        expected_increase[target.state_index] += y[n_states + k]
    np.testing.assert_allclose(ydot[:n_states] - ydot_without[:n_states], expected_increase,
                               rtol=1e-9, atol=1e-9 * np.abs(ydot_without[:n_states]).max())


def test_outputs_match_the_python_kernel(compiled):
    model, library = compiled
    outputs = plain_python(compile_kernel(model).outputs)
    n_states, n_outputs = len(model.states), len(model.outputs)
    rng = np.random.default_rng(99)  # fixed seed, test input
    for p in parameter_vectors(model, rng):
        library.initmod(p)
        for t, y, _ in random_points(model, rng):
            _, yout = library.derivs(t, y, nout=n_outputs)
            expected = np.empty(n_outputs)
            outputs(t, y[:n_states], p, expected)
            np.testing.assert_allclose(yout, expected, rtol=RTOL, atol=0,
                                       err_msg=f"{model.name} at t={t}")


def test_outputs_are_not_written_when_deSolve_asks_for_none(compiled):
    model, library = compiled
    library.initmod(model.parameter_vector())
    t, y, _ = next(random_points(model, np.random.default_rng(3)))  # test input
    _, yout = library.derivs(t, y, nout=0)
    assert np.all(np.isnan(yout))  # the NaN the buffer was filled with


def test_new_parameters_replace_the_old_ones(compiled):
    # deSolve calls initmod again for each run: the second call's values must be used
    model, library = compiled
    if not model.parameters:
        pytest.skip("model without parameters")
    rng = np.random.default_rng(11)  # fixed seed, test input
    typical, moved = parameter_vectors(model, rng)
    t, y, rate = next(random_points(model, rng))
    n_states = len(model.states)
    library.initmod(typical)
    library.initmod(moved)
    ydot, _ = library.derivs(t, y, nout=0)
    np.testing.assert_allclose(ydot[:n_states], python_rhs(model)(t, y[:n_states], moved, rate),
                               rtol=RTOL, atol=0)


def test_features_model_exercises_every_construct():
    # guards the FEATURES fixture: it must keep using what the C emitter has to translate
    source = plateletpd.parse_model(FEATURES, "c_features.toml").c_source()
    for construct in ("pow(", "fmin(fmin(", "fmax(fmax(", "fabs(", "sqrt(", "log(", "log10(",
                      "exp(", " ? ", " && ", " || ", "(!", "(*t)", "<=", "ydot[1] += y[4]",
                      "ydot[1] += y[5]", "ydot[0] += y[3]"):
        assert construct in source, construct
