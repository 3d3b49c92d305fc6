"""An independent reference solution with :func:`scipy.integrate.solve_ivp`.

Used by tests and benchmarks to check the numba integrators: it shares only the model's
plain-Python right-hand side (:meth:`Model.python_rhs`) and the dose schedule, and
integrates piecewise between dose times with scipy's Radau (or any solve_ivp method).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from scipy.integrate import solve_ivp

from plateletpd.dosing.schedules import expand
from plateletpd.numerics.jit import plain_python
from plateletpd.numerics.kernels import compile_kernel, initial_state, python_rhs
from plateletpd.model.definition import Model, load_model
from plateletpd.simulation.simulate import RegimenLike, as_regimen, output_times


def reference_solution(model: Model | str, regimen: RegimenLike = None, *,
                       days: float | None = None, times: Sequence[float] | None = None,
                       params: Mapping[str, float] | None = None,
                       covariates: Mapping[str, float] | None = None, method: str = "Radau",
                       rtol: float = 1e-10, atol: float = 1e-12) -> dict[str, np.ndarray]:
    """Outputs (name -> array over the output times) from scipy's ``solve_ivp``."""
    model = load_model(model)
    grid = output_times(days, times)
    p = model.parameter_vector(params, covariates)
    offset = len(model.parameters)
    covariate_values = {c: p[offset + i] for i, c in enumerate(model.covariate_names)}
    schedule = expand(as_regimen(regimen), model.dose_targets, covariate_values)
    amounts = np.atleast_2d(schedule.amounts(covariate_values))[0]
    kernel = compile_kernel(model)
    n_targets = len(model.dose_targets)
    bioavailability, lag = np.ones(max(n_targets, 1)), np.zeros(max(n_targets, 1))
    if n_targets:
        plain_python(kernel.dose_modifiers)(p, bioavailability, lag)
    scale = 1.0 / model.days_per_time_unit
    # breakpoints in model time: (time, state, bolus amount, rate change)
    events = []
    for time, target, state, amount, duration in zip(
            schedule.time * scale, schedule.target, schedule.state, amounts,
            schedule.duration * scale):
        start, dose = time + lag[target], amount * bioavailability[target]
        if duration > 0:
            events += [(start, state, 0.0, dose / duration),
                       (start + duration, state, 0.0, -dose / duration)]
        else:
            events.append((start, state, dose, 0.0))
    events.sort(key=lambda e: e[0])
    t_out = grid * scale
    rhs = python_rhs(model)
    outputs_function = plain_python(kernel.outputs)
    y = initial_state(model, p)
    rate = np.zeros(len(model.states))
    result = np.full((t_out.size, len(model.outputs)), np.nan)
    t, i_event = 0.0, 0
    breakpoints = sorted({e[0] for e in events if e[0] < t_out[-1]} | {t_out[-1]})
    for stop in [0.0] + breakpoints:
        while i_event < len(events) and events[i_event][0] <= t:
            _, state, bolus, change = events[i_event]
            y[state] += bolus
            rate[state] += change
            i_event += 1
        inside = (t_out >= t) & (t_out < stop) if stop > t else (t_out == t)
        if stop > t:
            solution = solve_ivp(rhs, (t, stop), y, method=method, rtol=rtol, atol=atol,
                                 args=(p, rate.copy()), dense_output=True)
            if not solution.success:
                raise RuntimeError(f"reference solver failed: {solution.message}")
            for j in np.flatnonzero(inside):
                outputs_function(t_out[j], solution.sol(t_out[j]), p, result[j])
            y = solution.y[:, -1].copy()
            t = stop
        else:
            for j in np.flatnonzero(inside):
                outputs_function(t_out[j], y, p, result[j])
    while i_event < len(events) and events[i_event][0] <= t:  # doses at the last time
        _, state, bolus, change = events[i_event]
        y[state] += bolus
        i_event += 1
    outputs_function(t_out[-1], y, p, result[-1])
    return {name: result[:, k] for k, name in enumerate(model.output_names)}
