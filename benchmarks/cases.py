"""Benchmark cases: model, regimen, output times, and the dose events every peer replays."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

import plateletpd as pp
from plateletpd.dosing.schedules import expand
from plateletpd.numerics.jit import plain_python
from plateletpd.numerics.kernels import compile_kernel, hoisted_parameters, initial_state
from plateletpd.simulation.reference import reference_solution

DAYS = 28
OUTPUT_DAYS = np.arange(DAYS + 1, dtype=float)  # daily, 0..28
REFERENCE_RTOL, REFERENCE_ATOL = 1e-10, 1e-12
TARGET_ERROR = 1e-6  # each engine's tolerance is chosen to reach this where it can

#: (model, short label, regimen text). The first two are the --quick run's (the Friberg
#: model and the default CIT model); cit_marrow_reserve and cit_thrombopoiesis share a
#: regimen so that their costs are compared in the same run (issue 17 item 6: the new
#: model's cohort cost within 1.5 times the earlier model's, measured side by side)
CASES = [
    ("friberg_platelets", "mono", "cytotoxic 100 mg qd d1-14"),
    ("cit_marrow_reserve", "mono", "chemotherapy 1 dose d1 + hetrombopag 7.5 mg qd d9-22"),
    ("cit_thrombopoiesis", "mono", "chemotherapy 1 dose d1 + hetrombopag 7.5 mg qd d9-22"),
    ("cit_thrombopoiesis", "combination",
     "chemotherapy 1 dose d1 + hetrombopag 7.5 mg qd d9-22 + rhTPO 15000 U qd d9-22"),
]

#: log-normal inter-individual variability (omega = SD of log) per model, illustrative
VARIABILITY = {
    "friberg_platelets": {"circ0": 0.3, "mean_transit_time": 0.2, "slope": 0.4},
    "cit_thrombopoiesis": {"platelets_baseline": 0.3, "mk_transit_time": 0.2,
                           "chemotherapy_sensitivity": 0.3},
    # the between-patient CVs of models/cit_marrow_reserve.md (tests/test_cit_science.py),
    # at the model file's values (not the bundled fit's: the harness times the model file)
    "cit_marrow_reserve": {"chemotherapy_sensitivity": 0.3, "platelets_baseline": 0.17,
                           "reserve_regeneration_rate": 2.0, "reserve_cycling_fraction": 0.5},
}


@dataclass
class Case:
    model_name: str
    label: str
    regimen: str
    model: object = field(repr=False)
    p: np.ndarray = field(repr=False)
    y0: np.ndarray = field(repr=False)
    t_out: np.ndarray = field(repr=False)          # model time (h)
    event_time: np.ndarray = field(repr=False)     # model time, sorted
    event_state: np.ndarray = field(repr=False)
    event_amount: np.ndarray = field(repr=False)   # after bioavailability
    bounds: np.ndarray = field(repr=False)         # segment boundaries (0, doses, end)
    platelet_index: int = 0
    reference: np.ndarray | None = field(default=None, repr=False)
    cache: dict = field(default_factory=dict, repr=False)   # per-case engine setup
    shared: dict = field(default_factory=dict, repr=False)  # per-model, shared by cases
    last_counters: object = None
    output_days: np.ndarray = field(default_factory=lambda: OUTPUT_DAYS.copy(), repr=False)

    @property
    def q(self) -> np.ndarray:
        """``p`` plus the parameter-only derived quantities, for ``kernel.rhs_hoisted``: the
        numba peers get the same once-per-subject hoisting plateletpd's integrator uses."""
        if "q" not in self.cache:
            self.cache["q"] = hoisted_parameters(self.model, self.p)
        return self.cache["q"]

    @property
    def n_states(self) -> int:
        return len(self.model.states)

    def platelets(self, states: np.ndarray) -> np.ndarray:
        """Platelet output at every output time from the states there (n_times, n_states)."""
        outputs = compile_kernel(self.model).outputs
        out = np.empty(len(self.model.outputs))
        result = np.empty(self.t_out.size)
        for j in range(self.t_out.size):
            outputs(float(self.t_out[j]), np.ascontiguousarray(states[j]), self.p, out)
            result[j] = out[self.platelet_index]
        return result

    def error(self, platelets: np.ndarray) -> float:
        return float(np.max(np.abs(np.asarray(platelets) / self.reference - 1.0)))


def dose_events(model, regimen: str, p: np.ndarray):
    """(times in model units, states, amounts x bioavailability) of bolus doses, with lags."""
    offset = len(model.parameters)
    covariates = {c: p[offset + i] for i, c in enumerate(model.covariate_names)}
    schedule = expand(pp.Regimen.parse(regimen), model.dose_targets, covariates)
    if np.any(schedule.duration > 0):
        raise ValueError("the benchmark peers replay bolus doses only")
    amounts = np.atleast_2d(schedule.amounts(covariates))[0]
    n_targets = max(len(model.dose_targets), 1)
    bioavailability, lag = np.ones(n_targets), np.zeros(n_targets)
    if model.dose_targets:
        plain_python(compile_kernel(model).dose_modifiers)(p, bioavailability, lag)
    scale = 1.0 / model.days_per_time_unit
    time = schedule.time * scale + lag[schedule.target]
    amount = amounts * bioavailability[schedule.target]
    order = np.argsort(time, kind="stable")
    return time[order], schedule.state[order].astype(np.int64), amount[order]


def make_case(model_name: str, label: str, regimen: str, p: np.ndarray | None = None,
              with_reference: bool = True) -> Case:
    model = pp.load_model(model_name)
    p = model.parameter_vector() if p is None else np.asarray(p, dtype=float)
    t_out = OUTPUT_DAYS / model.days_per_time_unit
    ev_t, ev_s, ev_a = dose_events(model, regimen, p)
    end = t_out[-1]
    bounds = np.unique(np.concatenate([[0.0], ev_t[(ev_t > 0) & (ev_t < end)], [end]]))
    case = Case(model_name, label, regimen, model, p, initial_state(model, p), t_out, ev_t,
                ev_s, ev_a, bounds, platelet_index=model.output_names.index("platelets"))
    if with_reference:
        case.reference = reference_platelets(case, p)
    return case


def reference_platelets(case: Case, p: np.ndarray) -> np.ndarray:
    names = case.model.parameter_names
    params = {n: float(v) for n, v in zip(names, p[:len(names)])}
    covariates = {c: float(p[len(names) + i]) for i, c in enumerate(case.model.covariate_names)
                  if np.isfinite(p[len(names) + i])}
    ref = reference_solution(case.model, case.regimen, times=OUTPUT_DAYS, params=params,
                             covariates=covariates or None, method="Radau",
                             rtol=REFERENCE_RTOL, atol=REFERENCE_ATOL)
    return np.asarray(ref["platelets"], dtype=float)


def cohort_parameters(model, n: int, seed: int = 2024) -> dict[str, np.ndarray]:
    """Log-normal variability on the model's VARIABILITY parameters, clipped to bounds.

    Rows are drawn in order, so the first k subjects are the same for every n."""
    omegas = VARIABILITY[model.name]
    eta = np.random.default_rng(seed).standard_normal((n, len(omegas)))
    out = {}
    for k, (name, omega) in enumerate(omegas.items()):
        par = model.parameters[name]
        out[name] = np.clip(par.value * np.exp(omega * eta[:, k]), par.lower, par.upper)
    return out
