"""The simulation entry points: :func:`simulate` (one subject) and :func:`simulate_batch`.

Both validate everything once, here, then hand plain arrays to the compiled kernel:

    model file -> Model -> generated kernel -> integrator -> simulate -> results

A subject whose integration fails gets a non-success :class:`~plateletpd.numerics.solvers.Status` in
the result (and NaN outputs from the failure on); other subjects are unaffected.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from plateletpd.dosing.regimens import Dose, Regimen, as_regimen

from plateletpd.dosing.schedules import EventSchedule, expand
from plateletpd.errors import ParameterError, SimulationInputError, SimulationWarning
from plateletpd.numerics.failures import failure_message, flag_non_finite_outputs
from plateletpd.limits import check_subjects
from plateletpd.io.provenance import provenance
from plateletpd.model.codegen import active_ranges, idle_states
from plateletpd.model.definition import Model, load_model
from plateletpd.simulation.results import BatchResult, SimulationResult
from plateletpd.numerics.solvers import DormandPrince5, Solver, Status, resolve_execution, solver_names
from plateletpd.numerics.kernels import compile_kernel, integrate

#: Output points per day when only ``days`` is given.
POINTS_PER_DAY = 24

RegimenLike = Regimen | Dose | str | None


def output_times(days: float | None = None, times: Sequence[float] | None = None) -> np.ndarray:
    """Validated output times in days: ``times`` as given, or an hourly grid over ``days``."""
    if (days is None) == (times is None):
        raise SimulationInputError("give exactly one of days= (a duration: hourly outputs "
                                   "from 0) or times= (output times in days)")
    if days is not None:
        if isinstance(days, bool) or not isinstance(days, (int, float, np.number)) \
                or not math.isfinite(days) or days <= 0:
            raise SimulationInputError(f"days must be a positive number, got {days!r}")
        return np.arange(int(round(days * POINTS_PER_DAY)) + 1) / POINTS_PER_DAY
    try:
        grid = np.asarray(times, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise SimulationInputError(f"times must be numbers (days), got {times!r}") from None
    if grid.size == 0:
        raise SimulationInputError("times is empty; give at least one output time in days")
    if not np.all(np.isfinite(grid)) or np.any(grid < 0):
        raise SimulationInputError("times must be finite and >= 0 (days since the start, "
                                   f"when the model is at its initial state); got {grid}")
    if np.any(np.diff(grid) <= 0):
        raise SimulationInputError("times must be strictly increasing; sort them and remove "
                                   "duplicates (numpy.unique does both)")
    return grid


def with_fit(model: Model, fit: str | None) -> tuple[Model, str | None]:
    """``model`` with the values of ``fit`` (``"default"``: its bundled fit; a bundled fit's
    name or a fit folder; :func:`plateletpd.model.library.fitted_values`) and the fit's
    name; ``(model, None)`` when ``fit`` is None."""
    if fit is None:
        return model, None
    from plateletpd.errors import PlateletPDError
    from plateletpd.model.library import fitted_values

    try:
        name, values = fitted_values(model.name, fit)
    except PlateletPDError as error:
        raise SimulationInputError(f"fit={fit!r}: {error}") from None
    if name is None:
        raise SimulationInputError(
            f"fit={fit!r}: model {model.name!r} has no bundled fit; give a fit folder "
            f"(holding params.json) or fit=None for the model file's values")
    return model.with_parameters(values), name


def _fit_field(name: str | None) -> dict:
    """The record of the fit a simulation ran on: its name and its params.json's SHA-256."""
    if name is None:
        return {}
    from plateletpd.model.library import fit_record_hash

    return {"fit": name, "fit_sha256": fit_record_hash(name)}


def simulate(model: Model | str, regimen: RegimenLike = None, *, days: float | None = None,
             times: Sequence[float] | None = None, params: Mapping[str, float] | None = None,
             covariates: Mapping[str, float] | None = None,
             solver: Solver | None = None, keep_states: bool = True,
             fit: str | None = None) -> SimulationResult:
    """Simulate one subject.

    Args:
        model: a :class:`Model`, a bundled model name or a model-file path. Its values are
            the model file's (literature priors) unless ``fit`` is given.
        regimen: a :class:`Regimen`, :class:`Dose`, text (``"rhTPO 300 U/kg qd d1-14"``)
            or None. Day 1 of a regimen starts at time 0.
        days / times: output duration (hourly grid) or explicit output times, in days.
        params: parameter values replacing the model's typical values (names are checked).
        covariates: per-subject covariates (body weight, baseline count...).
        solver: a :class:`~plateletpd.numerics.solvers.Solver` (default
            :class:`DormandPrince5`; :class:`Rosenbrock23` for stiff models).
        keep_states: also return every state's time course.
        fit: ``"default"`` (the model's bundled fit, the values ``plateletpd simulate`` and
            trial files with ``fit = "default"`` use), a bundled fit's name or a fit folder:
            its fitted values replace the file's before ``params``; None (the default): the
            model file's values. The provenance names it.

    A failed integration does not raise: the result's ``status`` says what happened (and a
    :class:`SimulationWarning` is issued).
    """
    model, fit_name = with_fit(load_model(model), fit)
    regimen_text = regimen.strip() if isinstance(regimen, str) else None
    regimen = as_regimen(regimen)
    grid = output_times(days, times)
    vector = model.parameter_vector(params, covariates)
    covariate_values = _covariate_values(model, vector)
    schedule = expand(regimen, model.dose_targets)
    amounts = np.atleast_2d(schedule.amounts(
        _given_covariates(model, vector[None, :], covariates or {})))
    solver = _check_solver(solver)
    batch = _integrate(model, schedule, vector[None, :], amounts, grid, solver, keep_states)
    record = provenance(model, regimen=regimen_text or str(regimen), solver=solver.describe(),
                        parameters=dict(zip(model.parameter_names, vector.tolist())),
                        covariates={k: v for k, v in covariate_values.items()
                                    if not math.isnan(v)}, **_fit_field(fit_name))
    result = SimulationResult(**{**batch.__dict__, "provenance": record})
    if not result.ok:
        warnings.warn(f"{model.name}: {result.status_code.name}: {result.message}",
                      SimulationWarning, stacklevel=2)
    return result


def simulate_batch(model: Model | str, regimen: RegimenLike = None, *,
                   days: float | None = None, times: Sequence[float] | None = None,
                   params: Mapping[str, Any] | pd.DataFrame | None = None,
                   covariates: Mapping[str, Any] | pd.DataFrame | None = None,
                   n: int | None = None, solver: Solver | None = None,
                   keep_states: bool = False, execution: str | None = None,
                   fit: str | None = None) -> BatchResult:
    """Simulate many subjects on one regimen, in parallel over subjects.

    ``fit``: as for :func:`simulate` (``"default"``: the model's bundled fit; None: the model
    file's values).

    ``params`` and ``covariates`` map names to one value per subject (arrays or DataFrame
    columns; scalars are shared). Parameters not given take the model's typical value.
    A subject with a non-finite or out-of-bounds value is flagged ``INVALID_INPUT`` and not
    integrated; the others run.

    ``execution``: ``"subjects"`` (the default: each subject on its own) or ``"lockstep"``
    (groups of 16 subjects sharing one step size, vectorised; DormandPrince853 only; see
    :data:`plateletpd.numerics.solvers.EXECUTIONS`). The method and its tolerances are the
    solver's; this only chooses how the batch is run.
    """
    model, fit_name = with_fit(load_model(model), fit)
    regimen = as_regimen(regimen)
    grid = output_times(days, times)
    params, covariates = _columns(params), _columns(covariates)
    n = _subject_count(n, params, covariates)
    matrix, valid = _subject_matrix(model, params, covariates, n, grid, keep_states)
    schedule = expand(regimen, model.dose_targets)
    amounts = np.broadcast_to(schedule.amounts(_given_covariates(model, matrix, covariates)),
                              (n, schedule.n_events))
    solver = _check_solver(solver)
    execution = resolve_execution(solver, execution)
    batch = _integrate(model, schedule, matrix[valid], np.ascontiguousarray(amounts[valid]),
                       grid, solver, keep_states, execution=execution)
    record = provenance(model, regimen=str(regimen), **_fit_field(fit_name),
                        solver={**solver.describe(), "execution": execution}, n_subjects=n,
                        varied=sorted({**params, **covariates}))
    return _scatter(batch, valid, record)


def _subject_matrix(model: Model, params: Mapping[str, Any], covariates: Mapping[str, Any],
                    n: int, grid: np.ndarray, keep_states: bool) -> tuple[np.ndarray, np.ndarray]:
    """(values, valid): one row of parameters then covariates per subject (typical values
    where not given) and the mask of subjects whose values are finite and in bounds."""
    model.check_parameter_names(params)
    model.check_covariate_names(covariates)
    missing = [c for c in model.required_covariates if c not in covariates]
    if missing:
        raise ParameterError(f"{model.name} needs covariate(s) {', '.join(missing)} for every "
                             f"subject; pass covariates={{'{missing[0]}': [...]}}")
    typical = [p.value for p in model.parameters.values()] + [
        math.nan if c.default is None else c.default for c in model.covariates.values()]
    check_subjects(n, 8.0 * (len(typical) + len(grid) * (
        len(model.outputs) + (len(model.states) if keep_states else 0)) * 2),
        "simulate_batch (parameters, outputs and their copies)")
    matrix = np.tile(np.asarray(typical, dtype=np.float64), (n, 1))
    names = model.parameter_names + model.covariate_names
    for name, values in {**params, **covariates}.items():
        matrix[:, names.index(name)] = np.broadcast_to(np.asarray(values, dtype=float), (n,))
    return matrix, _valid_rows(model, matrix)


def _given_covariates(model: Model, matrix: np.ndarray, given: Mapping[str, Any]) -> dict:
    """The covariates the caller gave, per subject: only these scale per-kg or per-m2 doses
    (a model's default body weight is never used silently for a dose)."""
    offset = len(model.parameters)
    return {name: matrix[:, offset + model.covariate_names.index(name)] for name in given}


def _scatter(batch: BatchResult, valid: np.ndarray, record: dict) -> BatchResult:
    """A result for every subject from the integrated ``valid`` ones (others INVALID_INPUT)."""
    n = valid.size

    def full(values: np.ndarray | None, fill) -> np.ndarray | None:
        if values is None:
            return None
        array = np.full((n, *values.shape[1:]), fill, dtype=values.dtype)
        array[valid] = values
        return array

    return BatchResult(times=batch.times, output_names=batch.output_names,
                       outputs=full(batch.outputs, np.nan), state_names=batch.state_names,
                       states=full(batch.states, np.nan), units=batch.units,
                       status=full(batch.status, Status.INVALID_INPUT),
                       counters=full(batch.counters, 0), provenance=record,
                       details={int(np.flatnonzero(valid)[i]): text
                                for i, text in batch.details.items()})


# ------------------------------------------------------------------------------ internals
def _check_solver(solver) -> Solver:
    solver = DormandPrince5() if solver is None else solver
    if not isinstance(solver, Solver):
        raise SimulationInputError(f"solver must be one of "
                                   f"{', '.join(name + '(...)' for name in solver_names())}, "
                                   f"got {solver!r}")
    return solver


def _covariate_values(model: Model, vector: np.ndarray) -> dict[str, float]:
    offset = len(model.parameters)
    return {name: float(vector[offset + i]) for i, name in enumerate(model.covariate_names)}


def _columns(values) -> dict[str, Any]:
    if values is None:
        return {}
    if isinstance(values, pd.DataFrame):
        return {str(c): values[c].to_numpy(dtype=float) for c in values.columns}
    return dict(values)


def _subject_count(n, *tables) -> int:
    sizes = {np.size(v) for table in tables for v in table.values() if np.ndim(v) > 0}
    if n is not None:
        sizes.add(int(n))
    sizes.discard(1)
    if len(sizes) > 1:
        raise SimulationInputError(f"per-subject values have different lengths {sorted(sizes)};"
                                   f" give one value per subject (or a scalar) everywhere")
    count = sizes.pop() if sizes else 1
    if count < 1:
        raise SimulationInputError("there must be at least one subject")
    return count


def _valid_rows(model: Model, matrix: np.ndarray) -> np.ndarray:
    """Subjects whose values are finite and inside bounds (unread covariates may be NaN)."""
    entries = [*model.parameters.values(), *model.covariates.values()]
    lower = np.array([e.lower for e in entries])
    upper = np.array([e.upper for e in entries])
    optional = np.array([e.name in model.covariates and e.name not in model.required_covariates
                         for e in entries])
    ok = np.isfinite(matrix) & (matrix >= lower) & (matrix <= upper)
    return np.all(ok | (optional & np.isnan(matrix)), axis=1)


#: (model source, dosed states) -> the lock-step kernel's active ranges (few per model).
_ACTIVE: dict[tuple[str, frozenset[int]], np.ndarray] = {}


def _active_states(model: Model, dosed_states: np.ndarray) -> np.ndarray:
    """The states the lock-step stage passes compute when doses enter ``dosed_states``:
    all but the idle ones (:func:`plateletpd.model.codegen.idle_states`)."""
    dosed = frozenset(int(i) for i in np.asarray(dosed_states).ravel())
    key = (model.source, dosed)
    ranges = _ACTIVE.get(key)
    if ranges is None:
        if len(_ACTIVE) > 256:
            _ACTIVE.clear()
        ranges = _ACTIVE[key] = active_ranges(len(model.states), idle_states(model, dosed))
    return ranges


def _integrate(model: Model, schedule: EventSchedule, matrix: np.ndarray, amounts: np.ndarray,
               grid: np.ndarray, solver: Solver, keep_states: bool,
               event_times: np.ndarray | None = None,
               execution: str | None = None) -> BatchResult:
    """Run the compiled batch solver on validated arrays.

    ``execution``: see :func:`simulate_batch` (None: the solver's deprecated ``lockstep``
    flag decides).

    ``amounts`` and the optional ``event_times`` (days) are per subject, shape
    (subjects, events): subjects may share a schedule's structure (which drug enters which
    state, in which order) yet differ in when and how much (an amount of 0 skips a dose).
    """
    kernel = compile_kernel(model)
    n = matrix.shape[0]
    if event_times is None:
        event_times = np.broadcast_to(schedule.time, (n, schedule.n_events))
    scale = 1.0 / model.days_per_time_unit  # days -> model time
    n_states = len(model.states)
    outputs = np.empty((n, grid.size, len(model.outputs)))
    states = np.empty((n, grid.size if keep_states else 0, n_states))
    status = np.empty(n, dtype=np.int64)
    counters = np.zeros((n, 4), dtype=np.int64)
    failure = np.full((n, 1 + n_states), np.nan)  # where each failed subject stopped
    lockstep = resolve_execution(solver, execution) == "lockstep"
    with np.errstate(all="ignore"):  # NUMBA_DISABLE_JIT=1: NaN and inf as numba gives
        # compiles (on first use) only the entry point this call needs
        integrate(kernel, solver.method_code, lockstep, model.name,
                np.ascontiguousarray(matrix, dtype=np.float64),
                np.ascontiguousarray(np.reshape(event_times, (n, schedule.n_events)) * scale,
                                     dtype=np.float64),
                np.ascontiguousarray(schedule.target, dtype=np.int64),
                np.ascontiguousarray(schedule.state, dtype=np.int64),
                np.ascontiguousarray(amounts.reshape(n, schedule.n_events), dtype=np.float64),
                np.ascontiguousarray(schedule.duration * scale, dtype=np.float64),
                np.ascontiguousarray(grid * scale), float(solver.rtol),
                solver.atol_vector(n_states), float(solver.max_step * scale),
                int(solver.max_steps), float(solver.restart_growth), outputs, states, status,
                counters, failure,
                active=_active_states(model, schedule.state) if lockstep else None,
                model=model)
    details = {int(i): failure_message(model, status[i], matrix[i], failure[i])
               for i in np.flatnonzero(status != Status.SUCCESS)}
    flag_non_finite_outputs(model, grid, outputs, states if keep_states else None, status,
                            details)
    return BatchResult(times=grid, output_names=tuple(model.output_names), outputs=outputs,
                       state_names=tuple(model.state_names),
                       states=states if keep_states else None, units=model.units,
                       status=status, counters=counters, details=details)
