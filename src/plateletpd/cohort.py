"""Simulate a treatment arm for a virtual cohort: chemotherapy, entry rule, daily treatment
with a stop rule.

Each virtual patient receives the arm's chemotherapy at time 0. Treatment starts
``start_delay`` days after the patient's platelet count first crosses below ``entry_below``
(the crossing time is interpolated, so it moves smoothly with the parameters; the default
delay of one day stands for "treated from the next morning"); without an entry threshold
everyone starts ``start_delay`` days after time 0. An empty ``chemotherapy`` gives none. The treatment doses are given
once daily for at most ``max_days`` days and stop after the first morning count at or above
``stop_at`` (or a rise of at least ``stop_rise`` over the count at entry). A patient whose
count never crosses the entry threshold is not eligible and is left out of the arm.

Two integrations per arm, both batched over subjects: (1) chemotherapy alone, which gives
each patient's entry time; (2) chemotherapy plus the full course of daily doses at each
patient's own times. A dose cannot change the counts before it, so the morning counts of
pass 2 decide the stop day exactly; doses after it are set to zero (the trajectory after
the stop is therefore that of a third pass, done by the same call on the doses kept).

For fitting, ``smooth_stop`` replaces the hard rule by a probability: each morning a patient
stops with a logistic probability of width :data:`STOP_WIDTH` around the stop count, and
each dose is weighted by the probability of not having stopped before it. The hard rule
makes the number of doses jump as parameters move, which leaves steps in the objective.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .dosing import as_regimen, expand
from .errors import PlateletPDError
from .model import Model
from .simulate import _integrate
from .solvers import DormandPrince5, Status

PLATELETS = "platelets"
#: logistic width (x10^9/L) of the smooth stop rule used in fits
STOP_WIDTH = 2.0


def _logistic(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


@dataclass(frozen=True)
class ArmDesign:
    """How one arm treats its patients (see the module text for the rules)."""

    name: str
    chemotherapy: str = "chemotherapy 1 dose d1"  # "" for none (healthy volunteers)
    treatment: tuple[str, ...] = ()          # doses given each treatment day, e.g. "rhTPO 15000 U"
    entry_below: float | None = 75.0         # x10^9/L; None: everyone starts at start_delay
    start_delay: float = 1.0                 # days after the entry crossing
    stop_at: float | None = 100.0            # x10^9/L
    stop_rise: float | None = None           # x10^9/L above the count at entry
    max_days: int = 14
    follow_up_days: float = 35.0
    points_per_day: int = 24
    smooth_stop: bool = False                # fitting: doses weighted by P(not yet stopped)

    def __post_init__(self):
        problems = []
        if not self.name:
            problems.append("an arm needs a name")
        if not (isinstance(self.max_days, int) and 0 <= self.max_days <= 365):
            problems.append(f"max_days must be a whole number of days, got {self.max_days!r}")
        for label in ("start_delay", "follow_up_days") + (
                ("entry_below",) if self.entry_below is not None else ()):
            value = getattr(self, label)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                problems.append(f"{label} must be a number >= 0, got {value!r}")
        for label in ("stop_at", "stop_rise"):
            value = getattr(self, label)
            if value is not None and not (isinstance(value, (int, float)) and value > 0):
                problems.append(f"{label} must be a positive number or absent, got {value!r}")
        if problems:
            raise PlateletPDError(f"arm {self.name!r}: " + "; ".join(problems))
        object.__setattr__(self, "treatment", tuple(self.treatment))


@dataclass(frozen=True)
class ArmResult:
    """Platelet courses of an arm's eligible patients on an hourly grid (days)."""

    design: ArmDesign
    times: np.ndarray
    platelets: np.ndarray          # (eligible subjects, times)
    subjects: np.ndarray           # indices into the cohort of the eligible subjects
    entry_time: np.ndarray         # crossing below entry_below (days)
    start_time: np.ndarray         # first treatment dose (days); entry + delay
    doses_given: np.ndarray        # treatment days actually dosed
    status: np.ndarray             # integration status per eligible subject
    n_screened: int
    extra: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return self.platelets.shape[0]


def crossing_time(times: np.ndarray, values: np.ndarray, level: float,
                  after: np.ndarray | None = None, upward: bool = False) -> np.ndarray:
    """First time each row crosses ``level`` (downwards, or upwards), linearly interpolated.

    ``after`` (per row, optional) ignores earlier times. Rows that never cross give NaN.
    """
    values = np.atleast_2d(values)
    inside = values >= level if upward else values < level
    if after is not None:
        inside &= times[None, :] >= np.asarray(after)[:, None]
    first = np.argmax(inside, axis=1)
    found = inside[np.arange(len(values)), first]
    result = np.full(len(values), np.nan)
    rows = np.flatnonzero(found)
    j = first[rows]
    at_start = j == 0
    result[rows[at_start]] = times[0]
    rows, j = rows[~at_start], j[~at_start]
    y0, y1 = values[rows, j - 1], values[rows, j]
    fraction = np.clip((level - y0) / np.where(y1 != y0, y1 - y0, 1.0), 0.0, 1.0)
    result[rows] = times[j - 1] + fraction * (times[j] - times[j - 1])
    if after is not None:
        result[rows] = np.maximum(result[rows], np.asarray(after)[rows])
    return result


def _per_subject(amounts: np.ndarray, n: int) -> np.ndarray:
    """Amounts as a writable (subjects, events) array (one row is shared by all)."""
    amounts = np.asarray(amounts, dtype=float)
    return np.array(np.broadcast_to(amounts, (n, amounts.shape[-1])))


def simulate_arm(model: Model, design: ArmDesign, parameters: np.ndarray,
                 solver=None) -> ArmResult:
    """Simulate ``design`` for the cohort whose parameter vectors are the rows of
    ``parameters`` (see :meth:`Model.parameter_vector`)."""
    solver = solver or DormandPrince5(rtol=1e-6, atol=1e-6)
    n_grid = int(round(design.follow_up_days * design.points_per_day))
    times = np.arange(n_grid + 1) / design.points_per_day
    index = model.output_names.index(PLATELETS)
    offset = len(model.parameters)
    covariates = {c: parameters[:, offset + i] for i, c in enumerate(model.covariate_names)}

    chemotherapy = expand(as_regimen(design.chemotherapy), model.dose_targets)
    untreated = _integrate(model, chemotherapy, parameters,
                           _per_subject(chemotherapy.amounts(covariates), len(parameters)),
                           times, solver, False)
    platelets = untreated.outputs[:, :, index]
    entry = np.zeros(len(parameters)) if design.entry_below is None else \
        crossing_time(times, platelets, design.entry_below)
    eligible = np.flatnonzero(np.isfinite(entry) & (untreated.status == Status.SUCCESS))
    entry, start = entry[eligible], entry[eligible] + design.start_delay
    parameters = parameters[eligible]
    covariates = {k: v[eligible] for k, v in covariates.items()}
    if not design.treatment or design.max_days == 0 or eligible.size == 0:
        return ArmResult(design, times, platelets[eligible], eligible, entry, start,
                         np.zeros(eligible.size, dtype=int), untreated.status[eligible],
                         len(untreated.status))

    # full course: every treatment drug on each of max_days days, at per-subject times
    days = np.arange(design.max_days)
    course = expand(as_regimen(" + ".join(
        f"{dose} t=" + ",".join(str(float(d)) for d in days) for dose in design.treatment)),
        model.dose_targets)
    schedule = chemotherapy.concatenate(course)
    is_treatment = np.arange(schedule.n_events) >= chemotherapy.n_events
    event_times = np.where(is_treatment[None, :], schedule.time[None, :] + start[:, None],
                           schedule.time[None, :])
    amounts = _per_subject(schedule.amounts(covariates), len(parameters))
    full = _integrate(model, schedule, parameters, amounts, times, solver, False, event_times)
    treated = full.outputs[:, :, index]

    # stop rule from the morning counts of the full course
    dose_day = np.round(schedule.time[is_treatment]).astype(int)  # day within the course
    mornings = start[:, None] + days[None, :]
    morning_counts = np.array([np.interp(m, times, row) for m, row in zip(mornings, treated)])
    entry_count = np.array([np.interp(e, times, row) for e, row in zip(entry, treated)])
    stop = np.zeros_like(morning_counts, dtype=bool)
    if design.stop_at is not None:
        stop |= morning_counts >= design.stop_at
    if design.stop_rise is not None:
        stop |= morning_counts - entry_count[:, None] >= design.stop_rise
    stop[:, 0] = False  # the first dose is always given
    if design.smooth_stop:
        # each morning the patient stops with a logistic probability in the count (width
        # STOP_WIDTH); a dose is weighted by the probability of not having stopped before it,
        # so the arm changes smoothly with the parameters (an optimiser needs that)
        go_on = np.ones_like(morning_counts)
        if design.stop_at is not None:
            go_on *= _logistic((design.stop_at - morning_counts) / STOP_WIDTH)
        if design.stop_rise is not None:
            go_on *= _logistic((design.stop_rise - morning_counts + entry_count[:, None])
                               / STOP_WIDTH)
        go_on[:, 0] = 1.0
        weight = np.cumprod(go_on, axis=1)
        stopped = weight.sum(axis=1)
        amounts[:, is_treatment] *= weight[:, dose_day]
    else:
        stopped = np.where(stop.any(axis=1), np.argmax(stop, axis=1), design.max_days)
        amounts[:, is_treatment] *= dose_day[None, :] < stopped[:, None]
    final = _integrate(model, schedule, parameters, amounts, times, solver, False, event_times)
    return ArmResult(design, times, final.outputs[:, :, index], eligible, entry, start,
                     stopped, final.status, len(untreated.status))
