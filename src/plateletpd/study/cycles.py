"""Chemotherapy given in cycles, with the delay and dose-reduction rules of the planned
cycle day, and eligibility judged on the simulated history.

Cycle 1 is given on day 0. Cycle k+1 is planned ``cycle_days`` after the day cycle k was
actually given. With ``delay_below``, the count is judged on the planned day: at or above
the level the cycle is given; below it the cycle waits and the count is judged again every
``recheck_every_days``; the cycle is given on the first re-check at or above the level, and
when no re-check within ``give_up_after_days`` of the planned day is, chemotherapy is
abandoned (no further cycles). A cycle given after a delay gets ``reduce_after_delay_pct``
less than the cycle before it, so reductions compound (two delayed cycles at 20%: 0.8, then
0.64 of the full dose). A dose on a day comes after that day's count.

The cumulative effect of cycles is the model's; this module only runs them. A decision on a
planned day depends only on the counts before it, so one integration per cycle suffices:
pass k simulates every patient still on chemotherapy with cycles 1..k placed, and the counts
of that pass decide cycle k+1 (a later dose cannot change an earlier count).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from plateletpd.dosing.regimens import as_regimen
from plateletpd.dosing.schedules import expand
from plateletpd.errors import PlateletPDError
from plateletpd.model.definition import Model
from plateletpd.numerics.solvers import DormandPrince5, Status
from plateletpd.simulation.simulate import _integrate
from plateletpd.study.cohort import PLATELETS, values_at

#: event kinds of a course's event log
CYCLE_EVENTS = ("delayed", "dose reduced", "resumed", "abandoned")


def _positive(value, zero_ok: bool = False) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and (value >= 0 if zero_ok else value > 0))


@dataclass(frozen=True)
class ChemotherapyCourse:
    """A chemotherapy course: ``regimen`` (one cycle's doses, days counted from the cycle's
    first day, e.g. "chemotherapy 1 dose") every ``cycle_days`` for ``cycles`` cycles, with
    the planned-day rules of the module text; ``follow_up_days`` after the last cycle."""

    regimen: str = "chemotherapy 1 dose"
    cycle_days: float = 21.0
    cycles: int = 4
    delay_below: float | None = None        # 10^9/L; None: cycles given as planned
    recheck_every_days: float = 7.0
    give_up_after_days: float = 28.0
    reduce_after_delay_pct: float = 0.0
    follow_up_days: float = 21.0
    points_per_day: int = 24

    def __post_init__(self):
        problems = []
        if not (isinstance(self.regimen, str) and self.regimen.strip()):
            problems.append(f"regimen must be a dose text such as \"chemotherapy 1 dose\", "
                            f"got {self.regimen!r}")
        if not (isinstance(self.cycles, int) and not isinstance(self.cycles, bool)
                and 1 <= self.cycles <= 100):
            problems.append(f"cycles must be a whole number from 1 to 100, got {self.cycles!r}")
        for label in ("cycle_days", "recheck_every_days", "give_up_after_days",
                      "follow_up_days"):
            if not _positive(getattr(self, label)):
                problems.append(f"{label} must be a positive number of days, got "
                                f"{getattr(self, label)!r}")
        if self.delay_below is not None and not _positive(self.delay_below):
            problems.append(f"delay_below must be a positive count (10^9/L) or absent, got "
                            f"{self.delay_below!r}")
        if not (_positive(self.reduce_after_delay_pct, zero_ok=True)
                and self.reduce_after_delay_pct < 100):
            problems.append(f"reduce_after_delay_pct must be a percentage from 0 to below "
                            f"100, got {self.reduce_after_delay_pct!r}")
        if problems:
            raise PlateletPDError("[chemotherapy] " + "; ".join(problems)
                                  + " (see docs/trial_files.md, Cycles)")

    @property
    def checks(self) -> np.ndarray:
        """Days after the planned day on which the count is judged."""
        return np.arange(math.floor(self.give_up_after_days / self.recheck_every_days
                                    + 1e-9) + 1) * self.recheck_every_days

    @property
    def horizon(self) -> float:
        """The last day any patient can be followed to."""
        wait = self.checks[-1] if self.delay_below is not None else 0.0
        return (self.cycles - 1) * (self.cycle_days + wait) + self.follow_up_days


@dataclass(frozen=True)
class CourseResult:
    """Every patient's course: ``platelets`` on ``times`` (days from cycle 1), the day each
    cycle was given (``cycle_day``, NaN: not given), its delay (days) and dose (fraction of
    the full dose), whether chemotherapy was abandoned, and the event log (``events``:
    patient, day, event, cycle, value; value is the delay for "delayed", the new dose fraction
    for "dose reduced")."""

    course: ChemotherapyCourse
    times: np.ndarray
    platelets: np.ndarray
    status: np.ndarray
    cycle_day: np.ndarray
    delay: np.ndarray
    dose: np.ndarray
    abandoned: np.ndarray
    events: dict

    @property
    def failed(self) -> np.ndarray:
        """Patients whose simulation failed: no cycle after the failure, never eligible."""
        return self.status != Status.SUCCESS

    @property
    def cycles_given(self) -> np.ndarray:
        return np.sum(np.isfinite(self.cycle_day), axis=1)

    def nadir(self, cycle: int) -> np.ndarray:
        """Each patient's lowest count from cycle ``cycle`` (1-based) to the next cycle
        (or the end of follow-up); NaN where that cycle was not given."""
        start = self.cycle_day[:, cycle - 1]
        end = self.cycle_day[:, cycle] if cycle < self.course.cycles else \
            np.full(len(start), np.inf)
        end = np.where(np.isfinite(end), end, np.inf)
        inside = (self.times[None, :] >= start[:, None]) & (self.times[None, :] < end[:, None])
        lowest = np.where(inside, self.platelets, np.inf).min(axis=1)
        return np.where(np.isfinite(start), lowest, np.nan)


def patient_table(result: CourseResult) -> pd.DataFrame:
    """One row per patient: cycles given, abandoned, failed, and per cycle c the day it was
    given (``cycle{c}_day``, NaN: never), its delay (``cycle{c}_delay_days``, inf: never
    given after a delay), its dose fraction (``cycle{c}_dose``) and nadir
    (``cycle{c}_nadir``, 10^9/L)."""
    columns = {"cycles_given": result.cycles_given, "abandoned": result.abandoned,
               "failed": result.failed}
    for c in range(1, result.course.cycles + 1):
        columns.update({f"cycle{c}_day": result.cycle_day[:, c - 1],
                        f"cycle{c}_delay_days": result.delay[:, c - 1],
                        f"cycle{c}_dose": result.dose[:, c - 1],
                        f"cycle{c}_nadir": result.nadir(c)})
    return pd.DataFrame(columns).rename_axis("patient")


def event_table(result: CourseResult) -> pd.DataFrame:
    """The event log as a table (patient, day, event, cycle, value); see
    :class:`CourseResult`."""
    return pd.DataFrame(result.events)


def simulate_course(model: Model, course: ChemotherapyCourse, parameter_vectors: np.ndarray,
                    solver=None) -> CourseResult:
    """Run ``course`` for the patients whose parameter vectors are the rows of
    ``parameter_vectors`` (see the module text for the rules)."""
    vectors = np.asarray(parameter_vectors, dtype=float)
    n, cycles = len(vectors), course.cycles
    solver = solver or DormandPrince5(rtol=1e-6, atol=1e-6)
    times = np.arange(round(course.horizon * course.points_per_day) + 1) \
        / course.points_per_day
    regimen = as_regimen(course.regimen)
    one = expand(regimen, model.dose_targets)
    schedule = one
    for _ in range(cycles - 1):
        schedule = schedule.concatenate(one)
    per_cycle = one.n_events
    offset = len(model.parameters)
    covariates = {c: vectors[:, offset + i] for i, c in enumerate(model.covariate_names)}
    base = np.array(np.broadcast_to(np.asarray(schedule.amounts(covariates), dtype=float),
                                    (n, schedule.n_events)))
    index = model.output_names.index(PLATELETS)
    day = np.full((n, cycles), np.nan)
    day[:, 0] = 0.0
    delay = np.zeros((n, cycles))
    dose = np.ones((n, cycles))
    abandoned = np.zeros(n, dtype=bool)
    courses = np.empty((n, times.size))
    status = np.empty(n, dtype=np.int64)
    log = []
    reduce = 1.0 - course.reduce_after_delay_pct / 100.0
    for k in range(cycles):
        rows = np.flatnonzero(np.isfinite(day[:, k]))  # still on chemotherapy
        if rows.size == 0:
            break
        given = np.isfinite(day[rows])
        event_times = np.repeat(np.where(given, day[rows], times[-1] + 1.0), per_cycle,
                                axis=1) + np.tile(one.time, cycles)[None, :]
        amounts = base[rows] * np.repeat(np.where(given, dose[rows], 0.0), per_cycle, axis=1)
        result = _integrate(model, schedule, vectors[rows], amounts, times, solver, False,
                            event_times)
        courses[rows] = result.outputs[:, :, index]
        status[rows] = result.status
        rows = rows[result.status == Status.SUCCESS]  # a failed patient is flagged, not judged
        if k + 1 == cycles or rows.size == 0:
            break
        planned = day[rows, k] + course.cycle_days
        if course.delay_below is None:
            day[rows, k + 1] = planned
            dose[rows, k + 1] = dose[rows, k]
            continue
        when = planned[:, None] + course.checks[None, :]
        fine = values_at(times, courses[rows], when) >= course.delay_below
        first = np.argmax(fine, axis=1)
        ok = fine[np.arange(rows.size), first]
        late = ok & (first > 0)
        day[rows[ok], k + 1] = when[ok, first[ok]]
        delay[rows, k + 1] = np.where(ok, course.checks[first], np.inf)
        dose[rows, k + 1] = dose[rows, k] * np.where(late, reduce, 1.0)
        abandoned[rows[~ok]] = True
        delay[rows[~ok], k + 1:] = np.inf  # never given: delayed without end
        for kind, mask, days, value in (
                ("delayed", ~ok | (first > 0), planned, delay[rows, k + 1]),
                ("dose reduced", late & (reduce < 1.0), day[rows, k + 1], dose[rows, k + 1]),
                ("resumed", late, day[rows, k + 1], delay[rows, k + 1]),
                ("abandoned", ~ok, planned + course.give_up_after_days, np.inf)):
            if mask.any():
                log.append((rows[mask], np.asarray(days)[mask], CYCLE_EVENTS.index(kind),
                            k + 2, np.broadcast_to(value, mask.shape)[mask]))
    dose[~np.isfinite(day)] = np.nan
    return CourseResult(course, times, courses, status, day, delay, dose, abandoned,
                        _events(log))


def _events(log: list) -> dict:
    """The log as columns sorted by patient, then day, then event kind."""
    if not log:
        return {"patient": np.zeros(0, np.int64), "day": np.zeros(0),
                "event": np.zeros(0, str), "cycle": np.zeros(0, np.int64),
                "value": np.zeros(0)}
    counts = [len(entry[0]) for entry in log]
    patient = np.concatenate([entry[0] for entry in log])
    day = np.concatenate([entry[1] for entry in log])
    kind = np.repeat([entry[2] for entry in log], counts)
    cycle = np.repeat([entry[3] for entry in log], counts)
    value = np.concatenate([entry[4] for entry in log]).astype(float)
    order = np.lexsort((kind, day, patient))
    return {"patient": patient[order], "day": day[order],
            "event": np.array(CYCLE_EVENTS)[kind[order]], "cycle": cycle[order],
            "value": value[order]}


#: the kinds of eligibility rule on the simulated history (see :class:`HistoryRule`)
HISTORY_RULES = ("below_on_cycle_day", "below_for_days", "delayed_at_least", "nadir_below")


@dataclass(frozen=True)
class HistoryRule:
    """One eligibility rule judged on a patient's simulated course:

    * ``below_on_cycle_day``: the count on day ``day`` of cycle ``cycle`` (counted from the
      day that cycle was given) is below ``below``;
    * ``below_for_days``: the count stays below ``below`` for at least ``days`` days in a
      row (on the course's output grid), anywhere in the course;
    * ``delayed_at_least``: cycle ``cycle`` was delayed by at least ``days`` days (a cycle
      never given because chemotherapy was abandoned counts as delayed without end);
    * ``nadir_below``: cycle ``cycle``'s nadir (see :meth:`CourseResult.nadir`) is below
      ``below``.

    A patient is eligible when every rule holds."""

    rule: str
    below: float | None = None
    days: float | None = None
    day: float | None = None
    cycle: int = 1

    def problems(self, course: ChemotherapyCourse) -> list[str]:
        needs = {"below_on_cycle_day": ("below", "day"), "below_for_days": ("below", "days"),
                 "delayed_at_least": ("days",), "nadir_below": ("below",)}
        if self.rule not in needs:
            return [(f"rule must be one of {', '.join(map(repr, HISTORY_RULES))}, got "
                     f"{self.rule!r}")]
        problems = [f"a {self.rule} rule needs {key} (a positive number)"
                    for key in needs[self.rule]
                    if not _positive(getattr(self, key), zero_ok=key == "day")]
        if not (isinstance(self.cycle, int) and 1 <= self.cycle <= course.cycles):
            problems.append(f"cycle must be a whole number from 1 to {course.cycles} (the "
                            f"course's cycles), got {self.cycle!r}")
        if self.rule == "delayed_at_least" and self.cycle == 1:
            problems.append("cycle 1 is never delayed; name a later cycle (cycle = 2 is "
                            "the cycle after the first)")
        return problems

    def holds(self, result: CourseResult) -> np.ndarray:
        """Which patients of ``result`` meet the rule."""
        c = self.cycle - 1
        if self.rule == "below_on_cycle_day":
            start = result.cycle_day[:, c]
            count = values_at(result.times, result.platelets,
                              np.where(np.isfinite(start), start + self.day, 0.0))
            return np.isfinite(start) & (count < self.below)
        if self.rule == "below_for_days":
            return _longest_run(result.platelets < self.below) \
                / result.course.points_per_day >= self.days - 1e-9
        if self.rule == "delayed_at_least":
            return result.delay[:, c] >= self.days
        return result.nadir(self.cycle) < self.below


def _longest_run(mask: np.ndarray) -> np.ndarray:
    """Per row, the longest run of consecutive True values, in grid steps between its ends
    (a run of one point has length 0)."""
    padded = np.pad(mask, ((0, 0), (1, 1))).astype(np.int8)
    edges = np.diff(padded, axis=1)
    longest = np.zeros(len(mask))
    for row in range(len(mask)):
        starts, ends = np.flatnonzero(edges[row] == 1), np.flatnonzero(edges[row] == -1)
        if starts.size:
            longest[row] = np.max(ends - starts) - 1
    return longest


def screen(result: CourseResult, rules: tuple[HistoryRule, ...]) -> tuple[np.ndarray, list]:
    """The patients meeting every rule, and the screening counts: one row per rule (its
    text, how many patients meet it alone, how many remain after it and the rules before
    it, how many were screened and how many of those failed to simulate: a failed patient
    meets no rule)."""
    for number, rule in enumerate(rules, start=1):
        problems = rule.problems(result.course)
        if problems:
            raise PlateletPDError(f"eligibility rule {number}: " + "; ".join(problems))
    eligible = ~result.failed
    counts = []
    for rule in rules:
        meets = rule.holds(result) & ~result.failed
        eligible &= meets
        counts.append({"rule": describe(rule), "meets": int(meets.sum()),
                       "remaining": int(eligible.sum()), "screened": len(eligible),
                       "failed": int(result.failed.sum())})
    return np.flatnonzero(eligible), counts


def describe(rule: HistoryRule) -> str:
    """A rule in words, for summaries and reports."""
    if rule.rule == "below_on_cycle_day":
        return f"PLT < {rule.below:g} on day {rule.day:g} of cycle {rule.cycle}"
    if rule.rule == "below_for_days":
        return f"PLT < {rule.below:g} for >= {rule.days:g} days"
    if rule.rule == "delayed_at_least":
        return f"cycle {rule.cycle} delayed >= {rule.days:g} days"
    return f"cycle {rule.cycle} nadir < {rule.below:g}"
