"""NONMEM-style event tables (ID, TIME, AMT, CMT, EVID, II, ADDL, RATE, SS): written from a
regimen, read back into one regimen per subject (steady-state records kept apart for the
simulator, see :mod:`plateletpd.simulation.event_tables`)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from plateletpd.io.files import atomic_write
from plateletpd.errors import RegimenError, ResourceLimitError, closest
from plateletpd.limits import check_events
from plateletpd.dosing.targets import DoseTarget, TOLERANCE, finite_float
from plateletpd.dosing.regimens import Dose, Regimen
from plateletpd.dosing.schedules import expand, target_lookup


_TIME_UNITS = {"d": 1, "day": 1, "days": 1, "h": 24, "hour": 24, "hours": 24}


# ----------------------------------------------------------------------------- event tables

EVENT_COLUMNS = ("ID", "TIME", "AMT", "CMT", "EVID", "II", "ADDL", "RATE")


def _per_day(time_unit: str) -> int:
    key = str(time_unit).strip().lower()
    if key not in _TIME_UNITS:
        raise RegimenError(f"time_unit must be 'day' or 'h'; given {time_unit!r}")
    return _TIME_UNITS[key]


def _check_states(targets: Sequence[DoseTarget], state_names: Sequence[str]) -> None:
    for target in targets:
        index = target.state_index
        actual = state_names[index] if index < len(state_names) else "(no such state)"
        if actual != target.state:
            raise RegimenError(f"dose target {target.name} enters state {target.state!r} at index {index}, "
                               f"but state_names[{index}] is {actual!r}; pass the state names of the model "
                               f"the dose targets were read from")


def to_event_table(regimen: Regimen | Dose | str, targets: Sequence[DoseTarget], state_names: Sequence[str],
                   covariates: Mapping[str, float] | None = None, subject_id: int = 1,
                   time_unit: str = "day") -> pd.DataFrame:
    """One subject's regimen as a NONMEM-style event table (one row per dose).

    Columns ID, TIME (days, or hours with ``time_unit="h"``), AMT (state units, covariates
    applied), CMT (1-based state index), EVID=1, II=0, ADDL=0, RATE (AMT per time unit for
    an infusion, 0 for a bolus).
    """
    per_day = _per_day(time_unit)
    targets, state_names = tuple(targets), tuple(state_names)
    _check_states(targets, state_names)
    schedule = expand(regimen, targets)
    amounts = schedule.amounts(covariates)
    if amounts.ndim != 1:
        raise RegimenError("to_event_table writes one subject: give one value per covariate (e.g. "
                           "{'body_weight': 70}), and call it once per subject with subject_id=...")
    duration = schedule.duration * per_day
    ones = np.ones(schedule.n_events, dtype=np.int64)
    return pd.DataFrame({
        "ID": ones * int(subject_id), "TIME": schedule.time * per_day, "AMT": amounts,
        "CMT": schedule.state + 1, "EVID": ones, "II": np.zeros(schedule.n_events),
        "ADDL": ones * 0,
        "RATE": np.divide(amounts, duration, out=np.zeros_like(amounts), where=duration > 0),
    }, columns=list(EVENT_COLUMNS))


def load_table(source: str | os.PathLike | pd.DataFrame) -> tuple[pd.DataFrame, str | None]:
    if isinstance(source, pd.DataFrame):
        return source, None
    try:
        return pd.read_csv(source, dtype=str, keep_default_na=False, skipinitialspace=True), str(source)
    except FileNotFoundError:
        raise RegimenError(f"event table {str(source)!r} not found; give the path of a CSV file with "
                           f"columns {', '.join(EVENT_COLUMNS)}") from None
    except (OSError, ValueError) as error:
        raise RegimenError(f"cannot read event table {str(source)!r} as CSV: {error}") from None


def _cell(row: Mapping, column: str) -> object:
    """The cell's value, or None when it is missing ('', '.', NaN, absent column)."""
    value = row.get(column)
    if isinstance(value, str):
        value = value.strip()
    missing = value is None or (isinstance(value, str) and value in ("", ".")) or \
        (isinstance(value, float) and math.isnan(value))
    return None if missing else value


def _number_cell(row: Mapping, column: str, where: str, default: float | None = None,
                 whole: bool = False) -> float:
    value = _cell(row, column)
    if value is None:
        if default is None:
            raise RegimenError(f"{where}, column {column}: value missing; a dose record needs a number here")
        return default
    number = finite_float(value)
    if number is None or number < 0 or (whole and not number.is_integer()):
        kind = "a whole number >= 0" if whole else "a finite number >= 0"
        raise RegimenError(f"{where}, column {column}: expected {kind}, given {value!r}")
    return number


def _state_of(value: object, state_names: Sequence[str], where: str) -> int:
    """0-based state index from a CMT cell (1-based number or state name)."""
    if value is None:
        raise RegimenError(f"{where}, column CMT: value missing; give the dosed state's 1-based number "
                           f"or name")
    number = finite_float(value)
    if number is None:
        names = {name.lower(): index for index, name in enumerate(state_names)}
        if str(value).lower() in names:
            return names[str(value).lower()]
        hint = closest(str(value), state_names)
        raise RegimenError(f"{where}, column CMT: unknown compartment {value!r}{hint}; give a state name "
                           f"or its 1-based number")
    if not number.is_integer() or not 1 <= number <= len(state_names):
        raise RegimenError(f"{where}, column CMT: compartment {value!r} does not exist; the model's states "
                           f"are numbered 1 to {len(state_names)}")
    return int(number) - 1


@dataclass(frozen=True)
class SteadyState:
    """A NONMEM ``SS=1`` dose record: at ``time`` (days) the system is reset to the periodic
    steady state reached by giving ``dose`` every ``interval`` days, taken just before a dose
    (the record's own dose, and its ADDL doses, then follow as ordinary doses).

    Attributes:
        dose: one administration at t=0: drug, amount, unit, route and infusion duration.
        interval: the dosing interval II, days (> 0, and not shorter than an infusion).
        time: the record's TIME, days.
    """

    dose: Dose
    interval: float
    time: float


@dataclass(frozen=True)
class SubjectEvents:
    """One subject's doses from an event table, and its ``SS=1`` reset if it has one."""

    regimen: Regimen
    steady_state: SteadyState | None = None


def _time_unit_note(time_unit: object) -> str:
    return (f"(this table's TIME and II are read in {time_unit!r} and RATE is per {time_unit!r}: "
            f"time_unit={time_unit!r}; pass time_unit='h' or 'day', or --time-unit, to change it)")


def _dose_from_row(row: Mapping, where: str, dosable: Mapping[int, DoseTarget],
                   state_names: Sequence[str], per_day: int,
                   events_before: int) -> tuple[Dose, SteadyState | None]:
    state = _state_of(_cell(row, "CMT"), state_names, where)
    if state not in dosable:
        listing = ", ".join(f"{index + 1} ({state_names[index]}: {target.name})"
                            for index, target in sorted(dosable.items())) or "none"
        raise RegimenError(f"{where}, column CMT: state {state + 1} ({state_names[state]!r}) has no dose "
                           f"target; dosable compartments: {listing}")
    target = dosable[state]
    time, amount = _number_cell(row, "TIME", where), _number_cell(row, "AMT", where)
    if amount == 0:
        raise RegimenError(f"{where}, column AMT: a dose record (EVID 1) needs AMT > 0, given 0; give "
                           f"the amount, or make the row an observation (EVID 0). Steady-state "
                           f"constant infusions (AMT 0 with RATE and SS=1) are not supported")
    interval = _number_cell(row, "II", where, 0.0)
    additional = _number_cell(row, "ADDL", where, 0.0, whole=True)
    if additional > 0 and interval <= 0:
        raise RegimenError(f"{where}: ADDL={additional:g} additional doses need an interval II > 0")
    rate = finite_float(_cell(row, "RATE") or 0)
    if rate in (-1, -2):
        raise RegimenError(f"{where}, column RATE: modelled rate/duration not supported; give RATE "
                           f"explicitly (amount per time unit, 0 for a bolus)")
    if rate is None or rate < 0:
        raise RegimenError(f"{where}, column RATE: expected a number >= 0, given {_cell(row, 'RATE')!r}")
    if rate > 0 and "infusion" not in target.routes:
        raise RegimenError(f"{where}, column RATE: RATE={rate:g} asks for an infusion, but {target.name} "
                           f"(state {target.state!r}) accepts {', '.join(target.routes)} only; give "
                           f"RATE 0 (or leave it empty) for a bolus, or dose a target that takes "
                           f"infusions")
    steady = _number_cell(row, "SS", where, 0.0, whole=True)
    if steady == 2:
        raise RegimenError(f"{where}, column SS: SS=2 (steady state added to the current state by "
                           f"superposition) is not supported: superposition holds only for linear "
                           f"models and these models are nonlinear. Use SS=1 (reset to steady state), "
                           f"or give the earlier doses explicitly with II and ADDL")
    if steady not in (0, 1):
        raise RegimenError(f"{where}, column SS: expected 0 (no steady state) or 1 (reset to steady "
                           f"state); given {_cell(row, 'SS')!r}")
    check_events(events_before + additional + 1, f"{where} (ADDL={additional:g})")
    times = (time + interval * np.arange(int(additional) + 1)) / per_day
    route, duration = ("infusion", amount / rate / per_day) if rate > 0 else ("bolus", 0.0)
    try:
        dose = Dose(target.name, amount, target.amount_unit, tuple(times), route, duration)
    except RegimenError as error:
        raise RegimenError(f"{where}: {error}") from None
    if not steady:
        return dose, None
    if interval <= 0:
        raise RegimenError(f"{where}, column II: SS=1 needs the dosing interval II > 0; given "
                           f"{interval:g}. Steady state under a constant infusion (II 0) is not "
                           f"supported")
    if duration * per_day > interval:
        raise RegimenError(f"{where}: SS=1 with an infusion of AMT/RATE = {duration * per_day:g} "
                           f"longer than II = {interval:g}: the infusions would overlap; shorten the "
                           f"infusion or lengthen II")
    unit_dose = Dose(target.name, amount, target.amount_unit, (0.0,), route, duration)
    return dose, SteadyState(unit_dose, interval / per_day, time / per_day)


def read_event_subjects(source: str | os.PathLike | pd.DataFrame, targets: Sequence[DoseTarget],
                        state_names: Sequence[str], time_unit: str | None = None
                        ) -> dict[int, SubjectEvents]:
    """Read a NONMEM-style event table into one :class:`SubjectEvents` per subject ID.

    ``time_unit`` ('day' or 'h'; no default) is the unit of TIME and II, and RATE is amount
    per that unit. ``source`` is a CSV path or a DataFrame; column names are case-insensitive.
    TIME, AMT and CMT are required; ID (default 1), EVID (default: 1 where AMT > 0), II,
    ADDL, RATE and SS are optional. See docs/event_tables.md for the semantics and for what
    each unsupported case says: EVID 0 and 2 rows are observations and must not carry an
    amount; a dose needs AMT > 0; RATE > 0 (an infusion of AMT/RATE) needs a target that takes
    infusions; ADDL/II are expanded (at most :data:`plateletpd.limits.MAX_EVENTS_PER_SUBJECT`
    events per subject, checked before expanding); SS=1 with II > 0 is a reset to periodic
    steady state (one SS=1 record per subject, with no dose before it); SS=2 is refused.
    CMT is a 1-based state number or a state name. Rows with the same drug, amount, route
    and duration are merged into one dose. When several targets share a state, the first is
    used.

    Raises:
        RegimenError: naming the row (1-based data row; the file line too), the column and
            the time unit the table was read in.
        ResourceLimitError: ADDL would expand past the event limit (estimate and limit).
    """
    if time_unit is None:
        raise RegimenError("an event table needs its time unit: pass time_unit='h' (hours) or 'day' "
                           "(days), the unit of TIME and II (RATE is amount per that unit); there is "
                           "no default because NONMEM tables are usually in hours and models here "
                           "in days")
    per_day = _per_day(time_unit)
    try:
        return _read_subjects(source, tuple(targets), tuple(state_names), per_day)
    except (RegimenError, ResourceLimitError) as error:
        raise type(error)(f"{error} {_time_unit_note(time_unit)}") from None


def _read_subjects(source, targets: tuple[DoseTarget, ...], state_names: tuple[str, ...],
                   per_day: int) -> dict[int, SubjectEvents]:
    table, path = load_table(source)
    table = table.rename(columns=lambda name: str(name).strip().upper())
    missing = [column for column in ("TIME", "AMT", "CMT") if column not in table.columns]
    if missing or table.columns.duplicated().any():
        raise RegimenError(f"event table {path or '(DataFrame)'}: needs columns TIME, AMT and CMT once "
                           f"each (case-insensitive); missing {missing}, given {list(table.columns)}")
    target_lookup(targets)  # validates the targets
    dosable = {target.state_index: target for target in reversed(targets)}
    groups: dict[int, dict[tuple, list[float]]] = {}
    steady: dict[int, list[tuple[str, SteadyState]]] = {}
    for number, row in enumerate(table.to_dict("records"), start=1):
        where = f"row {number}" + (f" (line {number + 1} of {path})" if path else "")
        subject = int(_number_cell(row, "ID", where, 1.0, whole=True))
        doses = groups.setdefault(subject, {})
        evid = (_number_cell(row, "EVID", where, whole=True) if "EVID" in table.columns
                else float(_number_cell(row, "AMT", where, 0.0) > 0))
        if evid in (3, 4):
            raise RegimenError(f"{where}, column EVID: EVID {evid:g} (reset) is not supported; simulate "
                               f"the parts before and after the reset separately")
        if evid not in (0, 1, 2):
            raise RegimenError(f"{where}, column EVID: expected 0 (observation), 1 (dose) or 2 (other); "
                               f"given {evid:g}")
        if evid != 1:
            amount = _number_cell(row, "AMT", where, 0.0)
            if amount > 0:
                kind = "observation" if evid == 0 else "other event"
                raise RegimenError(f"{where}, column AMT: EVID {evid:g} ({kind}) with AMT {amount:g}: "
                                   f"the dose would be lost. Give EVID 1 for a dose, or AMT 0 (or "
                                   f"'.') for an observation")
            continue
        before = sum(map(len, doses.values()))
        dose, reset = _dose_from_row(row, where, dosable, state_names, per_day, before)
        if reset is not None:
            steady.setdefault(subject, []).append((where, reset))
        key = (dose.drug, dose.amount, dose.unit, dose.route, dose.duration)
        doses.setdefault(key, []).extend(dose.times)
    resets = {subject: _one_reset(records, groups[subject]) for subject, records in steady.items()}
    return {subject: SubjectEvents(Regimen(tuple(Dose(drug, amount, unit, tuple(times), route, duration)
                                                 for (drug, amount, unit, route, duration), times
                                                 in doses.items())), resets.get(subject))
            for subject, doses in groups.items()}


def _one_reset(records: list[tuple[str, SteadyState]], doses: Mapping[tuple, list[float]]) -> SteadyState:
    """The subject's single SS=1 reset; refuse a second one or a dose before it."""
    (where, reset), *others = records
    if others:
        raise RegimenError(f"{others[0][0]}, column SS: a second SS=1 record for this subject ({where} "
                           f"is the first); NONMEM's SS=1 resets the whole system, so a second one "
                           f"would discard the first. Give one SS=1 record per subject")
    earlier = min((t for times in doses.values() for t in times if t < reset.time - TOLERANCE),
                  default=None)
    if earlier is not None:
        raise RegimenError(f"{where}, column SS: a dose at TIME {earlier:g} d comes before this SS=1 "
                           f"record at {reset.time:g} d (times in days here); SS=1 resets the system "
                           f"and would discard it. Remove the earlier doses or the SS flag")
    return reset


def read_event_table(source: str | os.PathLike | pd.DataFrame, targets: Sequence[DoseTarget],
                     state_names: Sequence[str], time_unit: str | None = None) -> dict[int, Regimen]:
    """Read a NONMEM-style event table into one :class:`Regimen` per subject ID.

    As :func:`read_event_subjects` (``time_unit`` 'day' or 'h' is required), for tables
    without steady-state records: a regimen cannot hold an SS=1 reset, so such a table is
    refused with a pointer to :func:`plateletpd.simulate_event_table`, which simulates it.
    """
    subjects = read_event_subjects(source, targets, state_names, time_unit)
    for subject, events in subjects.items():
        if events.steady_state is not None:
            raise RegimenError(f"subject {subject} has an SS=1 record (reset to steady state), which a "
                               f"Regimen cannot hold; simulate the table with plateletpd."
                               f"simulate_event_table(model, table, time_unit=...) or "
                               f"'plateletpd simulate MODEL --events TABLE.csv', which integrate to "
                               f"steady state")
    return {subject: events.regimen for subject, events in subjects.items()}


def _write_atomic(table: pd.DataFrame, path: Path) -> None:
    if not path.parent.is_dir():
        raise RegimenError(f"cannot write {str(path)!r}: folder {str(path.parent)!r} does not exist; "
                           f"create it first")
    atomic_write(path, lambda temporary: table.to_csv(temporary, index=False))


def write_event_table(source: pd.DataFrame | Regimen | Dose | str | Mapping[int, Regimen],
                      path: str | os.PathLike, targets: Sequence[DoseTarget] | None = None,
                      state_names: Sequence[str] | None = None, *,
                      covariates: Mapping[str, float] | None = None, subject_id: int = 1,
                      time_unit: str = "day") -> Path:
    """Write an event table as CSV, atomically (temporary file in the same folder, then replace).

    ``source`` is a table (from :func:`to_event_table`), a regimen (needs ``targets`` and
    ``state_names``; written as ``subject_id``), or a mapping subject ID -> regimen (as returned
    by :func:`read_event_table`; the same ``covariates`` apply to every subject). Returns the path.
    """
    if isinstance(source, pd.DataFrame):
        table = source
    else:
        if targets is None or state_names is None:
            raise RegimenError("to write a regimen, pass the model's dose targets and state names: "
                               "write_event_table(regimen, path, targets, state_names)")
        regimens = source if isinstance(source, Mapping) else {subject_id: source}
        frames = [to_event_table(regimen, targets, state_names, covariates, subject, time_unit)
                  for subject, regimen in regimens.items()]
        table = pd.concat(frames, ignore_index=True) if frames else \
            to_event_table(Regimen(), targets, state_names, time_unit=time_unit)
    path = Path(path)
    _write_atomic(table, path)
    return path
