"""Simulate a treatment arm for a virtual cohort: chemotherapy, entry rule, daily treatment
with a stop rule.

Each virtual patient receives the arm's chemotherapy at time 0. Treatment starts
``start_delay`` days after the patient's platelet count first crosses below ``entry_below``
(the crossing time is interpolated, so it moves smoothly with the parameters; the default
delay of one day stands for "treated from the next morning"); without an entry threshold
everyone starts ``start_delay`` days after time 0. With ``entry_day`` the count is judged on
that cycle day only (for example "PLT < 100 on day 21", a cycle delayed by thrombocytopenia)
and patients below the threshold then are enrolled on that day. An empty ``chemotherapy``
gives none. The treatment doses are given
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
from typing import Sequence

import numpy as np

from plateletpd.dosing.schedules import EventSchedule, expand

from plateletpd.dosing.regimens import as_regimen
from plateletpd.errors import PlateletPDError
from plateletpd.model.definition import Model
from plateletpd.simulation.simulate import _integrate
from plateletpd.numerics.solvers import DormandPrince5, Status

PLATELETS = "platelets"
#: logistic width (x10^9/L) of the smooth stop rule used in fits
STOP_WIDTH = 2.0
#: days from the count that triggers a rescue transfusion to the transfusion (2 h)
RESCUE_DELAY = 2.0 / 24.0


def logistic(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


@dataclass(frozen=True)
class Titration:
    """At the morning of treatment day ``day`` (0 = first dose), a count below ``below``
    changes one drug's daily dose to ``dose`` (e.g. "hetrombopag 15 mg") from that day on."""

    day: int
    below: float
    dose: str


@dataclass(frozen=True)
class Rescue:
    """A visit with a count below ``below`` triggers ``dose`` (a platelet transfusion), at
    most ``max_per_patient`` times."""

    below: float
    dose: str = "platelet_transfusion 1 dose"
    max_per_patient: int = 10


@dataclass(frozen=True)
class ArmDesign:
    """How one arm treats its patients (see the module text for the rules)."""

    name: str
    chemotherapy: str = "chemotherapy 1 dose d1"  # "" for none (healthy volunteers)
    treatment: tuple[str, ...] = ()          # doses given each treatment day, e.g. "rhTPO 15000 U"
    entry_below: float | None = 75.0         # x10^9/L; None: everyone starts at start_delay
    entry_day: float | None = None           # judge entry on this cycle day only (days)
    start_delay: float = 1.0                 # days after the entry crossing
    stop_at: float | None = 100.0            # x10^9/L
    stop_rise: float | None = None           # x10^9/L above the count at entry
    max_days: int = 14
    follow_up_days: float = 35.0
    points_per_day: int = 24
    smooth_stop: bool = False                # fitting: doses weighted by P(not yet stopped)
    titrations: tuple[Titration, ...] = ()
    rescue: Rescue | None = None

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
        for rule in self.titrations:
            if not (isinstance(rule.day, int) and 0 < rule.day < max(self.max_days, 1)):
                problems.append(f"a titration day must be a whole treatment day within "
                                f"1..{self.max_days - 1}, got {rule.day!r}")
        if self.rescue is not None and not self.rescue.below > 0:
            problems.append(f"rescue below must be a positive count, got {self.rescue.below}")
        if self.smooth_stop and (self.titrations or self.rescue):
            problems.append("smooth_stop (fitting) does not combine with titration or rescue")
        if problems:
            raise PlateletPDError(f"arm {self.name!r}: " + "; ".join(problems))
        object.__setattr__(self, "treatment", tuple(self.treatment))
        object.__setattr__(self, "titrations", tuple(self.titrations))


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


def values_at(times: np.ndarray, courses: np.ndarray, when, outside: float | None = None
              ) -> np.ndarray:
    """Each course (a row on the uniform grid ``times``) linearly interpolated at its own
    time(s): ``when`` has one entry or one row per course. Outside the grid the end values
    are used (as :func:`numpy.interp`), or ``outside`` when it is given."""
    courses = np.atleast_2d(courses)
    when = np.asarray(when, dtype=float)
    flat = when.reshape(len(courses), -1)
    position = (flat - times[0]) / (times[1] - times[0])
    left = np.clip(np.floor(position).astype(np.int64), 0, len(times) - 2)
    fraction = np.clip(position - left, 0.0, 1.0)
    rows = np.arange(len(courses))[:, None]
    values = courses[rows, left] * (1.0 - fraction) + courses[rows, left + 1] * fraction
    if outside is not None:
        values = np.where((flat < times[0]) | (flat > times[-1]), outside, values)
    return values.reshape(when.shape)


def auc(times: np.ndarray, courses: np.ndarray, start: np.ndarray, length: float,
        points: int = 505) -> np.ndarray:
    """Area under each course from its ``start`` over ``length`` days (trapezoids)."""
    grid = np.asarray(start, dtype=float)[:, None] + np.linspace(0.0, length, points)[None, :]
    return np.trapezoid(values_at(times, courses, grid), dx=length / (points - 1), axis=1)


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


def simulate_treatment_arm(model: Model, design: ArmDesign, parameter_vectors: np.ndarray,
                           solver=None) -> ArmResult:
    """Enrol the cohort whose parameter vectors are the rows of ``parameter_vectors`` (see
    :meth:`Model.parameter_vector`) and treat it under ``design``'s rules."""
    vectors = parameter_vectors
    solver = solver or DormandPrince5(rtol=1e-6, atol=1e-6)
    n_grid = int(round(design.follow_up_days * design.points_per_day))
    times = np.arange(n_grid + 1) / design.points_per_day
    index = model.output_names.index(PLATELETS)
    offset = len(model.parameters)
    covariates = {c: vectors[:, offset + i] for i, c in enumerate(model.covariate_names)}

    chemotherapy = expand(as_regimen(design.chemotherapy), model.dose_targets)
    untreated = _integrate(model, chemotherapy, vectors,
                           _per_subject(chemotherapy.amounts(covariates), len(vectors)),
                           times, solver, False)
    platelets = untreated.outputs[:, :, index]
    if design.entry_below is None:
        entry = np.zeros(len(vectors))
    elif design.entry_day is not None:  # e.g. "PLT < 100 on day 21: next cycle delayed"
        below = values_at(times, platelets, np.full(len(platelets), design.entry_day)) \
            < design.entry_below
        entry = np.where(below, design.entry_day, np.nan)
    else:
        entry = crossing_time(times, platelets, design.entry_below)
    eligible = np.flatnonzero(np.isfinite(entry) & (untreated.status == Status.SUCCESS))
    entry, start = entry[eligible], entry[eligible] + design.start_delay
    vectors = vectors[eligible]
    covariates = {k: v[eligible] for k, v in covariates.items()}
    nothing_to_give = (not design.treatment or design.max_days == 0) and not design.rescue
    if nothing_to_give or eligible.size == 0:
        return ArmResult(design, times, platelets[eligible], eligible, entry, start,
                         np.zeros(eligible.size, dtype=int), untreated.status[eligible],
                         len(untreated.status), {"rescues": np.zeros(eligible.size),
                                                 "titrated": np.zeros(eligible.size, bool)})

    if design.smooth_stop:
        return _smooth_arm(model, design, vectors, covariates, chemotherapy, times, index,
                           solver, eligible, entry, start, len(untreated.status))
    return _ruled_arm(model, design, vectors, covariates, chemotherapy, times, index,
                      solver, eligible, entry, start, len(untreated.status))


def _course(model: Model, doses: Sequence[str], days: np.ndarray) -> EventSchedule:
    """Each dose text given at each of ``days`` (relative times, days), drug-major order."""
    if not len(doses):
        return expand(as_regimen(None), model.dose_targets)
    times = ",".join(str(float(d)) for d in days)
    return expand(as_regimen(" + ".join(f"{dose} t={times}" for dose in doses)),
                  model.dose_targets)


def _titration_ratios(model: Model, design: ArmDesign) -> list[tuple[int, float, int, float]]:
    """(day, below, drug index in the treatment, new/old amount) for each titration rule."""
    resolved = []
    for rule in design.titrations:
        new = _course(model, [rule.dose], np.zeros(1))
        matches = [j for j, dose in enumerate(design.treatment)
                   if _course(model, [dose], np.zeros(1)).target[0] == new.target[0]]
        if not matches:
            raise PlateletPDError(f"arm {design.name!r}: titration dose {rule.dose!r} is not "
                                  f"one of the arm's drugs ({', '.join(design.treatment)})")
        old = _course(model, [design.treatment[matches[0]]], np.zeros(1))
        if old.scale_covariate != new.scale_covariate:
            raise PlateletPDError(f"arm {design.name!r}: titration {rule.dose!r} must use the "
                                  f"same kind of unit as {design.treatment[matches[0]]!r}")
        resolved.append((rule.day, rule.below, matches[0],
                         float(new.amount_per_scale[0] / old.amount_per_scale[0])))
    return resolved


def _ruled_arm(model, design, vectors, covariates, chemotherapy, times, index, solver,
               eligible, entry, start, screened) -> ArmResult:
    """Visit-driven rules (stop, titration, rescue), solved by re-simulation.

    A decision at a visit depends only on the counts up to that visit. Each pass simulates
    the current plan, re-derives every decision from the counts it produced, and adopts the
    new decisions from the earliest visit where they differ; that visit moves later with
    every pass, so the loop ends with a plan consistent with its own trajectory.
    """
    n, days = len(vectors), design.max_days
    visits = int(math.ceil(design.follow_up_days))
    drugs = len(design.treatment)
    rescue_doses = [design.rescue.dose] if design.rescue else []
    # a transfusion follows the count that triggers it by RESCUE_DELAY, more than one output
    # step, so the interpolated count at a visit is always the count before it
    delay = max(RESCUE_DELAY, 1.5 / design.points_per_day)
    schedule = chemotherapy.concatenate(_course(model, design.treatment, np.arange(days))) \
        .concatenate(_course(model, rescue_doses, np.arange(visits) + delay))
    n_chemotherapy, n_course = chemotherapy.n_events, drugs * days
    relative = np.arange(schedule.n_events) >= n_chemotherapy
    event_times = np.where(relative[None, :], schedule.time[None, :] + start[:, None],
                           schedule.time[None, :])
    base = _per_subject(schedule.amounts(covariates), n)
    visit_times = start[:, None] + np.arange(visits)[None, :]
    inside = visit_times <= times[-1]
    ratios = _titration_ratios(model, design)
    plan_dose = np.ones((n, days, drugs))
    plan_rescue = np.zeros((n, visits if design.rescue else 0))

    courses = np.empty((n, times.size))
    status = np.empty(n, dtype=np.int64)
    counts = np.empty((n, visits))

    def simulate(rows):
        """Re-simulate the patients in ``rows`` under the current plan."""
        m = rows.size
        factors = np.concatenate([np.ones((m, n_chemotherapy)),
                                  plan_dose[rows].transpose(0, 2, 1).reshape(m, n_course),
                                  plan_rescue[rows]], axis=1)
        result = _integrate(model, schedule, vectors[rows], base[rows] * factors, times,
                            solver, False, event_times[rows])
        courses[rows] = result.outputs[:, :, index]
        status[rows] = result.status
        counts[rows] = values_at(times, courses[rows], visit_times[rows])

    def decide():
        dose = np.ones((n, days, drugs))
        for day, below, drug, ratio in ratios:
            dose[counts[:, day] < below, day:, drug] *= ratio
        stop = np.zeros((n, days), dtype=bool)
        if design.stop_at is not None:
            stop |= counts[:, :days] >= design.stop_at
        if design.stop_rise is not None:
            stop |= counts[:, :days] - counts[:, :1] >= design.stop_rise
        stop[:, 0] = False  # the first dose is always given
        stopped = np.where(stop.any(axis=1), np.argmax(stop, axis=1), days)
        dose[np.arange(days)[None, :] >= stopped[:, None]] = 0.0
        rescue = np.zeros((n, plan_rescue.shape[1]))
        if design.rescue:
            need = (counts < design.rescue.below) & inside
            rescue = (need & (np.cumsum(need, axis=1) <= design.rescue.max_per_patient)) * 1.0
        return dose, rescue

    pending = np.arange(n)
    for _ in range(visits + days + 2):
        simulate(pending)
        new_dose, new_rescue = decide()
        differs = np.zeros((n, visits), dtype=bool)
        differs[:, :days] = np.any(new_dose != plan_dose, axis=2)
        if design.rescue:
            differs |= new_rescue != plan_rescue
        changed = np.flatnonzero(differs.any(axis=1))
        if changed.size == 0:
            break
        first = np.argmax(differs[changed], axis=1)
        for subject, visit in zip(changed, first):
            plan_dose[subject, visit:] = new_dose[subject, visit:]
            if design.rescue:
                plan_rescue[subject, visit:] = new_rescue[subject, visit:]
        pending = changed
    doses_given = np.sum(np.any(plan_dose > 0, axis=2), axis=1)
    return ArmResult(design, times, courses, eligible, entry, start, doses_given, status,
                     screened,
                     {"rescues": plan_rescue.sum(axis=1) if design.rescue else np.zeros(n),
                      "titrated": _titrated(plan_dose, ratios)})


def _titrated(plan_dose: np.ndarray, ratios) -> np.ndarray:
    """Patients whose dose was changed by a titration rule (not only stopped)."""
    if not ratios:
        return np.zeros(plan_dose.shape[0], dtype=bool)
    return np.any((plan_dose != 1.0) & (plan_dose != 0.0), axis=(1, 2))


def _smooth_arm(model, design, vectors, covariates, chemotherapy, times, index, solver,
                eligible, entry, start, screened) -> ArmResult:
    """Fitting: the stop rule as a probability (see the module text), in two passes."""
    days = np.arange(design.max_days)
    course = _course(model, design.treatment, days)
    schedule = chemotherapy.concatenate(course)
    is_treatment = np.arange(schedule.n_events) >= chemotherapy.n_events
    event_times = np.where(is_treatment[None, :], schedule.time[None, :] + start[:, None],
                           schedule.time[None, :])
    amounts = _per_subject(schedule.amounts(covariates), len(vectors))
    full = _integrate(model, schedule, vectors, amounts, times, solver, False, event_times)
    treated = full.outputs[:, :, index]

    # stop rule from the morning counts of the full course
    dose_day = np.round(schedule.time[is_treatment]).astype(int)  # day within the course
    mornings = start[:, None] + days[None, :]
    morning_counts = values_at(times, treated, mornings)
    entry_count = values_at(times, treated, entry)
    # each morning the patient stops with a logistic probability in the count (width
    # STOP_WIDTH); a dose is weighted by the probability of not having stopped before it,
    # so the arm changes smoothly with the parameters (an optimiser needs that)
    go_on = np.ones_like(morning_counts)
    if design.stop_at is not None:
        go_on *= logistic((design.stop_at - morning_counts) / STOP_WIDTH)
    if design.stop_rise is not None:
        go_on *= logistic((design.stop_rise - morning_counts + entry_count[:, None])
                          / STOP_WIDTH)
    go_on[:, 0] = 1.0
    weight = np.cumprod(go_on, axis=1)
    stopped = weight.sum(axis=1)
    amounts[:, is_treatment] *= weight[:, dose_day]
    final = _integrate(model, schedule, vectors, amounts, times, solver, False, event_times)
    return ArmResult(design, times, final.outputs[:, :, index], eligible, entry, start,
                     stopped, final.status, screened)
