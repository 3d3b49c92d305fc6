"""Simulate NONMEM-style event tables: every subject of a table in one batch, with ``SS=1``.

:func:`simulate_event_table` reads a table (:func:`plateletpd.dosing.regimens.read_event_subjects`;
docs/event_tables.md gives the semantics), gives each subject its own regimen and integrates
the subjects whose schedules have the same structure (which target and state each event
doses, and each infusion's duration, in order) in one call of the compiled batch solver; only
dose times and amounts differ between them. Subject IDs are kept in the result
(``provenance["subject_ids"]``, and the ``subject`` column of ``to_dataframe``).

Steady state (``SS=1``, NONMEM's reset): at the record's time the subject's state is replaced
by the periodic steady state of its dose given every ``II``, sampled at a nominal dose time
(before that dose). It is found by integrating that course with the same solver from the
model's initial state, for 64, then 256, 1024... intervals, until the state at the start of
an interval changes between the last two intervals by no more than the solver's absolute
tolerance plus :data:`STEADY_STATE_TOLERANCE` times its size (at most
:data:`STEADY_STATE_MAX_INTERVALS` intervals, else a clear error). Lag and bioavailability act
in that course as in any dose. The compiled solver starts every subject at its initial state,
so the reset enters it as one bolus per state at the record's time carrying the difference
between the steady state and the state there. Limits (each refused with a clear error): the
model's equations must not read time ``t`` (its steady state would depend on when dosing
began), the lag must be shorter than ``II`` and an infusion must end (lag + duration) within
``II``, and the dose target's bioavailability must be > 0.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from plateletpd.dosing.regimens import Dose, Regimen

from plateletpd.dosing.schedules import EventSchedule, expand

from plateletpd.dosing.event_tables import (SteadyState, SubjectEvents, load_table, read_event_subjects)
from plateletpd.errors import PlateletPDError, SimulationInputError
from plateletpd.model.expressions import TIME
from plateletpd.io.provenance import provenance
from plateletpd.model.definition import Model, load_model
from plateletpd.simulation.results import BatchResult
from plateletpd.simulation.simulate import (_check_solver, _columns, _given_covariates, _integrate, _scatter,
                       _subject_count, _subject_matrix, output_times)
from plateletpd.numerics.solvers import Status, Solver

__all__ = ["simulate_event_table", "STEADY_STATE_TOLERANCE", "STEADY_STATE_MAX_INTERVALS"]

#: Relative change of the state at the start of a dosing interval, between the last two
#: intervals, below which a course is at steady state (the solver's atol is added).
STEADY_STATE_TOLERANCE = 1e-9
#: Most dosing intervals integrated to reach steady state.
STEADY_STATE_MAX_INTERVALS = 16_384
_FIRST_INTERVALS = 64

_Events = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # time, target,
# state, amount, duration: one subject's dose events (days, state units)


def simulate_event_table(model: Model | str, table: str | os.PathLike | pd.DataFrame, *,
                         time_unit: str | None = None, days: float | None = None,
                         times: Sequence[float] | None = None,
                         params: Mapping[str, Any] | pd.DataFrame | None = None,
                         covariates: Mapping[str, Any] | pd.DataFrame | None = None,
                         solver: Solver | None = None,
                         keep_states: bool = False) -> BatchResult:
    """Simulate every subject of a NONMEM-style event table, one regimen per subject.

    Args:
        model: a :class:`Model`, a bundled model name or a model-file path.
        table: CSV path or DataFrame with TIME, AMT, CMT and optionally ID, EVID, II, ADDL,
            RATE, SS, and one column per model covariate (e.g. BODY_WEIGHT, constant within
            a subject).
        time_unit: unit of the table's TIME and II ('day' or 'h'; RATE is per that unit).
            Default: the model's time unit, stated in every error message.
        days / times: output duration (hourly grid) or output times, in days (as
            :func:`plateletpd.simulate`).
        params / covariates: scalars shared by all subjects, or one value per subject in
            ascending ID order. A per-kg or per-m2 dose needs its covariate given here or as
            a table column: a model's default body weight is never used for a dose.

    Returns:
        A :class:`BatchResult`, subjects in ascending ID order; ``provenance["subject_ids"]``
        holds the IDs. A subject whose integration fails is flagged in ``status``.
    """
    model = load_model(model)
    unit = model.time_unit if time_unit is None else time_unit
    subjects = read_event_subjects(table, model.dose_targets, model.state_names, unit)
    ids = sorted(subjects)
    grid = output_times(days, times)
    params = _columns(params)
    covariates = {**_columns(covariates), **_table_covariates(model, table, ids, covariates)}
    n = _subject_count(len(ids), params, covariates)
    matrix, valid = _subject_matrix(model, params, covariates, n, grid, keep_states)
    given = _given_covariates(model, matrix, covariates)
    solver = _check_solver(solver)
    events: list[_Events | None] = [None] * n
    for i in np.flatnonzero(valid):
        try:
            events[i] = _subject_events(model, subjects[ids[i]], {k: v[i] for k, v in given.items()})
        except PlateletPDError as error:
            raise type(error)(f"subject ID {ids[i]}: {error}") from None
    status = np.full(n, Status.SUCCESS, dtype=np.int64)
    resets = [i for i in np.flatnonzero(valid) if subjects[ids[i]].steady_state is not None]
    if resets:
        _check_steady_state_model(model)
        reset_events = [events[i] for i in resets]
        status[resets] = _add_resets(model, [subjects[ids[i]].steady_state for i in resets],
                                     reset_events, matrix[resets], solver, [ids[i] for i in resets])
        for i, subject_events in zip(resets, reset_events):
            events[i] = subject_events
    run = valid & (status == Status.SUCCESS)
    batch = _integrate_groups(model, [events[i] for i in np.flatnonzero(run)], matrix[run], grid,
                              solver, keep_states)
    result = _scatter(batch, run, provenance(
        model, events=str(table) if not isinstance(table, pd.DataFrame) else "(DataFrame)",
        time_unit=unit, subject_ids=[int(i) for i in ids], solver=solver.describe(),
        n_subjects=n, varied=sorted({**params, **covariates}),
        steady_state_tolerance=STEADY_STATE_TOLERANCE if resets else None))
    result.status[valid & ~run] = status[valid & ~run]
    return result


def _table_covariates(model: Model, table, ids: list[int], given) -> dict[str, np.ndarray]:
    """Covariate columns of the table (named like the model's covariates), one value per ID."""
    frame, _ = load_table(table)
    frame = frame.rename(columns=lambda name: str(name).strip().lower())
    found = {}
    for name in model.covariate_names:
        if name.lower() not in frame.columns:
            continue
        if name in (given if given is not None else {}):
            raise SimulationInputError(f"covariate {name!r} is both a column of the event table and "
                                       f"an argument; give it once")
        column = pd.to_numeric(frame[name.lower()].replace({".": None, "": None}), errors="coerce")
        subject = pd.to_numeric(frame["id"], errors="coerce") if "id" in frame.columns else 1
        values = pd.DataFrame({"id": subject, "value": column}).dropna().groupby("id")["value"]
        constant = values.nunique() <= 1
        if not constant.all() or set(values.first().index) != set(ids):
            bad = [i for i in ids if i not in values.first().index or not constant.get(i, True)]
            raise SimulationInputError(f"event table column {name.upper()}: expected one number per "
                                       f"subject (constant within an ID); subject ID(s) {bad[:5]} "
                                       f"have none or several")
        found[name] = values.first().reindex(ids).to_numpy(dtype=float)
    return found


def _subject_events(model: Model, subject: SubjectEvents, covariates: Mapping[str, float]) -> _Events:
    schedule = expand(subject.regimen, model.dose_targets)
    return (schedule.time, schedule.target, schedule.state,
            np.asarray(schedule.amounts(covariates), dtype=float), schedule.duration)


def _integrate_groups(model: Model, events: list[_Events], matrix: np.ndarray, grid: np.ndarray,
                      solver: Solver, keep_states: bool) -> BatchResult:
    """Integrate subjects with their own events: one solver call per schedule structure."""
    n = len(events)
    groups: dict[bytes, list[int]] = {}
    for i, (_, target, state, _, duration) in enumerate(events):
        key = b"|".join(np.ascontiguousarray(a).tobytes() for a in (target, state, duration))
        groups.setdefault(key, []).append(i)
    outputs = np.full((n, grid.size, len(model.outputs)), np.nan)
    states = np.full((n, grid.size if keep_states else 0, len(model.states)), np.nan)
    status = np.zeros(n, dtype=np.int64)
    counters = np.zeros((n, 4), dtype=np.int64)
    details: dict[int, str] = {}
    for rows in groups.values():
        time, target, state, _, duration = events[rows[0]]
        schedule = EventSchedule(time, target, state, np.zeros(time.size), ("",) * time.size,
                                 duration)
        batch = _integrate(model, schedule, matrix[rows],
                           np.array([events[i][3] for i in rows]).reshape(len(rows), -1), grid,
                           solver, keep_states,
                           np.array([events[i][0] for i in rows]).reshape(len(rows), -1))
        outputs[rows], status[rows], counters[rows] = batch.outputs, batch.status, batch.counters
        details.update({rows[i]: text for i, text in batch.details.items()})
        if keep_states:
            states[rows] = batch.states
    return BatchResult(times=grid, output_names=tuple(model.output_names), outputs=outputs,
                       state_names=tuple(model.state_names),
                       states=states if keep_states else None, units=model.units,
                       status=status, counters=counters, details=details)


# ----------------------------------------------------------------------------- steady state


def _check_steady_state_model(model: Model) -> None:
    reads_time = [state.name for state in model.states if TIME in state.ode.names] + \
        [name for name, expression in model.derived if TIME in expression.names]
    if reads_time:
        raise SimulationInputError(
            f"SS=1 (steady state) is not supported for {model.name}: its equations read time "
            f"{TIME!r} ({', '.join(reads_time)}), so a periodic steady state depends on when dosing "
            f"began. Give the earlier doses explicitly with II and ADDL instead")


def _modifiers(model: Model, row: np.ndarray, target: int) -> tuple[float, float]:
    """(bioavailability, lag in model time units) of one dose target for one subject."""
    values = dict(zip(model.parameter_names + model.covariate_names, row.tolist()))
    modifier = model.dose_modifiers[target]
    return modifier.bioavailability.evaluate(values), modifier.lag.evaluate(values)


def _add_resets(model: Model, resets: list[SteadyState], events: list[_Events],
                matrix: np.ndarray, solver: Solver, ids: list[int]) -> np.ndarray:
    """Append each subject's SS=1 reset (one bolus per state) to its events; return statuses
    (a subject whose steady-state course failed keeps that failure and is not run)."""
    scale = model.days_per_time_unit
    modifiers = []
    for reset, row, subject in zip(resets, matrix, ids):
        target = expand(Regimen((reset.dose,)), model.dose_targets).target[0]
        availability, lag = _modifiers(model, row, target)
        end = lag * scale + reset.dose.duration
        if not availability > 0 or not (end < reset.interval if reset.dose.duration == 0
                                        else end <= reset.interval):
            raise SimulationInputError(
                f"subject ID {subject}: SS=1 with II = {reset.interval:g} d needs the dose's "
                f"bioavailability > 0 (it is {availability:g}) and its lag "
                f"({lag * scale:g} d){' plus infusion duration' if reset.dose.duration else ''} "
                f"{'within' if reset.dose.duration else 'shorter than'} II, so that each dose has "
                f"entered before the next; give the doses explicitly with II and ADDL instead")
        modifiers.append((target, availability, lag * scale))
    steady, status = _steady_states(model, resets, matrix, solver, ids)
    before = _undosed_states(model, [reset.time for reset in resets], matrix, solver)
    for i, (reset, (target, availability, lag)) in enumerate(zip(resets, modifiers)):
        count = len(model.states)
        added = (np.full(count, reset.time - lag), np.full(count, target, dtype=np.int64),
                 np.arange(count), (steady[i] - before[i]) / availability, np.zeros(count))
        events[i] = tuple(np.concatenate([old, new]) for old, new in zip(events[i], added))
    return status


def _undosed_states(model: Model, reset_times: list[float], matrix: np.ndarray,
                    solver: Solver) -> np.ndarray:
    """Each subject's state at its reset time with no dose before it (none is allowed)."""
    result = np.empty((len(reset_times), len(model.states)))
    empty = expand(Regimen(), model.dose_targets)
    for time in set(reset_times):
        rows = [i for i, t in enumerate(reset_times) if t == time]
        batch = _integrate(model, empty, matrix[rows], np.zeros((len(rows), 0)),
                           np.array([time]), solver, True)
        result[rows] = batch.states[:, -1]
    return result


def _steady_states(model: Model, resets: list[SteadyState], matrix: np.ndarray,
                   solver: Solver, ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Periodic steady state before a dose, per subject, and each course's status."""
    steady = np.full((len(resets), len(model.states)), np.nan)
    status = np.full(len(resets), Status.SUCCESS, dtype=np.int64)
    groups: dict[tuple, list[int]] = {}
    for i, reset in enumerate(resets):
        key = (reset.dose.drug, reset.dose.route, reset.dose.duration, reset.interval)
        groups.setdefault(key, []).append(i)
    atol = solver.atol_vector(len(model.states))
    for (drug, route, duration, interval), rows in groups.items():
        intervals, pending = _FIRST_INTERVALS, rows
        while pending:
            dose = Dose(drug, 1.0, resets[pending[0]].dose.unit,
                        tuple(interval * np.arange(intervals)), route, duration)
            schedule = expand(Regimen((dose,)), model.dose_targets)
            amounts = np.outer([resets[i].dose.amount for i in pending], schedule.amounts())
            grid = interval * np.arange(intervals - 2, intervals + 1)
            batch = _integrate(model, schedule, matrix[pending], amounts, grid, solver, True)
            states = batch.states
            change = np.abs(states[:, 1] - states[:, 0]) / (atol + STEADY_STATE_TOLERANCE
                                                            * np.abs(states[:, 1]))
            done = (batch.status != Status.SUCCESS) | np.all(change <= 1.0, axis=1)
            for j, i in enumerate(pending):
                if done[j]:
                    steady[i], status[i] = states[j, -1], batch.status[j]
            pending = [i for j, i in enumerate(pending) if not done[j]]
            if pending and intervals * 4 > STEADY_STATE_MAX_INTERVALS:
                worst = float(np.max(change[~done]))
                raise SimulationInputError(
                    f"SS=1: subject ID(s) {[ids[i] for i in pending][:5]} did not reach steady "
                    f"state within {intervals:,} dosing intervals of {interval:g} d (the state at "
                    f"the start of an interval still changes by {worst:.3g} times the tolerance "
                    f"atol + {STEADY_STATE_TOLERANCE:g} x |state|); the system may accumulate "
                    f"without bound. Give the doses explicitly with II and ADDL instead")
            intervals *= 4
    return steady, status
