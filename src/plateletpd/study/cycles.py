"""Chemotherapy given in cycles, with the delay and dose-reduction rules of the planned
cycle day, and eligibility judged on the simulated history.

Cycle 1 is given on day 0. Cycle k+1 is planned ``cycle_days`` (cycle k's own length where
the course lists one per cycle) after the day cycle k was actually given. With
``delay_below``, the count is judged on the planned day (or on the
planned cycle's day ``judged_on_day``: a cycle whose chemotherapy follows some days of
support is judged on the chemotherapy's day, as a protocol judges it): at or above
the level the cycle is given; below it the cycle waits and the count is judged again every
``recheck_every_days``; the cycle is given on the first re-check at or above the level, and
when no re-check within ``give_up_after_days`` of the planned day is, chemotherapy is
abandoned (no further cycles). A cycle given after a delay gets ``reduce_after_delay_pct``
less than the cycle before it, so reductions compound (two delayed cycles at 20%: 0.8, then
0.64 of the full dose). A dose on a day comes after that day's count.

A cycle is *late* (not on time, counted among the delayed cycles, and followed by the dose
reduction) when it is given after a delay; with ``late_from_days`` only when the delay is at
least that many days, as CIT trials define their endpoint ("no delay >= 4 days", Al-Samkari
2022, Qin 2024: ``late_from_days = 4``): a cycle held a day or two and then given is on time.
Its re-checks must then come more often than it (``recheck_every_days`` below
``late_from_days``), or every delay would be late and the setting would do nothing.

The cumulative effect of cycles is the model's; this module only runs them. A decision on a
planned day depends only on the counts before it, so one integration per cycle suffices:
pass k simulates every patient still on chemotherapy with cycles 1..k placed, and the counts
of that pass decide cycle k+1 (a later dose cannot change an earlier count). A pass runs in
two stages: every patient to the first re-check of the next cycle, then only those still
below the level on to the last re-check (the same decisions and courses, bit for bit, as one
stage to the last re-check; with 63 days of re-checks about a third less time).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from plateletpd.dosing.regimens import as_regimen
from plateletpd.dosing.schedules import EventSchedule, expand
from plateletpd.errors import PlateletPDError
from plateletpd.model.definition import Model
from plateletpd.numerics.solvers import DormandPrince5, Status
from plateletpd.simulation.simulate import _integrate
from plateletpd.study.cohort import (
    PLATELETS,
    ArmDesign,
    ArmResult,
    auc,
    decision_log,
    in_band,
    own_schedule,
    resolve_treatment,
    treat_by_rules,
    treatment_records,
    values_at,
)
# the levels the trial times recovery to (per cycle: ``cycle{c}_recovery_day_{L}``)
from plateletpd.study.endpoints import RECOVERY_LEVELS

#: event kinds of a course's event log
CYCLE_EVENTS = ("delayed", "dose reduced", "resumed", "abandoned")


@functools.lru_cache(maxsize=256)
def _first_day(regimen: str) -> float:
    """The first dose's day of a regimen text, in days from its day 1 (0 for "d1" or no
    day; 0 where the text cannot be read: the course's own check names it)."""
    try:
        doses = as_regimen(regimen).doses
    except PlateletPDError:
        return 0.0
    return float(min((min(dose.times) for dose in doses if dose.times), default=0.0))


def _positive(value, zero_ok: bool = False) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and (value >= 0 if zero_ok else value > 0))


@dataclass(frozen=True)
class ChemotherapyCourse:
    """A chemotherapy course: ``regimen`` (one cycle's doses, days counted from the cycle's
    first day, e.g. "chemotherapy 1 dose") every ``cycle_days`` for ``cycles`` cycles, with
    the planned-day rules of the module text; ``follow_up_days`` after the last cycle.

    ``cycle_days`` and ``regimen`` may instead list one value per cycle: a course whose
    cycles differ in length or in regimen ("four cycles every 14 days, then four every 21",
    ``cycle_days = [14, 14, 14, 14, 21, 21, 21, 21]``). Cycle k+1 is then planned
    ``cycle_days[k]`` after the day cycle k was given, and the last entry is the last
    cycle's planned length (its share of the planned span)."""

    regimen: str | tuple[str, ...] = "chemotherapy 1 dose"
    cycle_days: float | tuple[float, ...] = 21.0
    cycles: int = 4
    delay_below: float | None = None        # 10^9/L; None: cycles given as planned
    # from each patient's enrolment on, re-checks judge this level instead (a trial's own
    # rule, "chemotherapy given at PLT >= 100 on study" where practice held at 75 before)
    delay_below_after_entry: float | None = None
    recheck_every_days: float = 7.0
    give_up_after_days: float = 28.0
    reduce_after_delay_pct: float = 0.0
    # a delay of at least this many days makes a cycle late (None: any delay does)
    late_from_days: float | None = None
    follow_up_days: float = 21.0
    # the cycle day whose count decides whether the cycle is given (1: its first day)
    judged_on_day: float = 1.0
    # output grid: 6 a day (4-hourly); a course is months long and the grid, not the
    # integration, dominates the cost (24 a day took 3.3x as long for a nadir 0.01% lower)
    points_per_day: int = 6

    def __post_init__(self):
        for label in ("regimen", "cycle_days"):  # a file's list: one value per cycle
            if isinstance(getattr(self, label), list):
                object.__setattr__(self, label, tuple(getattr(self, label)))
        problems = []
        whole = (isinstance(self.cycles, int) and not isinstance(self.cycles, bool)
                 and 1 <= self.cycles <= 100)
        if not whole:
            problems.append(f"cycles must be a whole number from 1 to 100, got {self.cycles!r}")
        if isinstance(self.regimen, tuple):
            if not (self.regimen and all(isinstance(text, str) and text.strip()
                                         for text in self.regimen)):
                problems.append(f"regimen must be a dose text such as \"chemotherapy 1 "
                                f"dose\", or a list of one per cycle, got {list(self.regimen)!r}")
            elif whole and len(self.regimen) != self.cycles:
                problems.append(f"regimen lists {len(self.regimen)} cycles' doses but cycles "
                                f"= {self.cycles}: give one dose text per cycle (e.g. "
                                f"{self.cycles} entries), or one text for every cycle")
        elif not (isinstance(self.regimen, str) and self.regimen.strip()):
            problems.append(f"regimen must be a dose text such as \"chemotherapy 1 dose\", "
                            f"got {self.regimen!r}")
        if isinstance(self.cycle_days, tuple):
            if not (self.cycle_days and all(_positive(days) for days in self.cycle_days)):
                problems.append(f"cycle_days must be a positive number of days, or a list of "
                                f"one positive number per cycle (e.g. [14, 14, 21, 21]), got "
                                f"{list(self.cycle_days)!r}")
            elif whole and len(self.cycle_days) != self.cycles:
                problems.append(f"cycle_days lists {len(self.cycle_days)} cycle lengths but "
                                f"cycles = {self.cycles}: give one length per cycle (the "
                                f"last is the last cycle's planned length), or one number "
                                f"for every cycle")
        elif not _positive(self.cycle_days):
            problems.append(f"cycle_days must be a positive number of days, got "
                            f"{self.cycle_days!r}")
        for label in ("recheck_every_days", "give_up_after_days", "follow_up_days"):
            if not _positive(getattr(self, label)):
                problems.append(f"{label} must be a positive number of days, got "
                                f"{getattr(self, label)!r}")
        if self.delay_below is not None and not _positive(self.delay_below):
            problems.append(f"delay_below must be a positive count (10^9/L) or absent, got "
                            f"{self.delay_below!r}")
        if self.delay_below_after_entry is not None:
            if not _positive(self.delay_below_after_entry):
                problems.append(f"delay_below_after_entry must be a positive count (10^9/L) "
                                f"or absent, got {self.delay_below_after_entry!r}")
            elif self.delay_below is None:
                problems.append("delay_below_after_entry replaces delay_below from each "
                                "patient's enrolment: give delay_below too, the level "
                                "cycles were held at before it (e.g. delay_below = 75, "
                                "delay_below_after_entry = 100)")
        shortest = self._shortest()
        if not (_positive(self.judged_on_day) and 1.0 <= self.judged_on_day
                and (shortest is None or self.judged_on_day <= shortest)):
            problems.append(f"judged_on_day must be a cycle day from 1 to cycle_days "
                            f"({'the shortest, ' if isinstance(self.cycle_days, tuple) else ''}"
                            f"{shortest if shortest is not None else self.cycle_days!r}), got "
                            f"{self.judged_on_day!r}; e.g. 6 for a cycle whose chemotherapy "
                            f"is on day 6")
        if not (_positive(self.reduce_after_delay_pct, zero_ok=True)
                and self.reduce_after_delay_pct < 100):
            problems.append(f"reduce_after_delay_pct must be a percentage from 0 to below "
                            f"100, got {self.reduce_after_delay_pct!r}")
        if self.late_from_days is not None:
            if not _positive(self.late_from_days):
                problems.append(f"late_from_days must be a positive number of days (a delay "
                                f"of at least this many days makes a cycle late), or absent, "
                                f"got {self.late_from_days!r}")
            elif (self.delay_below is not None and _positive(self.recheck_every_days)
                  and self.recheck_every_days >= self.late_from_days):
                problems.append(f"late_from_days = {self.late_from_days:g} does nothing with "
                                f"recheck_every_days = {self.recheck_every_days:g}: every "
                                f"delay is at least one re-check long, so every delay is "
                                f"late; re-check more often (e.g. recheck_every_days = "
                                f"{max(1, math.ceil(self.late_from_days) - 1)}) or remove "
                                f"late_from_days")
        # settings that act only through the delay rule: without one they would be ignored
        if self.delay_below is None:
            idle = [f"{label} = {getattr(self, label)!r}" for label, default
                    in (("judged_on_day", 1.0), ("reduce_after_delay_pct", 0.0),
                        ("late_from_days", None))
                    if _positive(getattr(self, label), zero_ok=True)
                    and getattr(self, label) != default]
            if idle:
                verb = "act" if len(idle) > 1 else "acts"
                problems.append(f"{' and '.join(idle)} {verb} only when a cycle can be held, "
                                f"and no delay_below is set; add delay_below (e.g. 100, "
                                f"the count a cycle waits for) or remove "
                                f"{'them' if len(idle) > 1 else 'it'}")
        if problems:
            raise PlateletPDError("[chemotherapy] " + "; ".join(problems)
                                  + " (see docs/trial_files.md, Cycles)")

    def _shortest(self) -> float | None:
        """The shortest valid cycle length (None when a length is invalid)."""
        days = self.cycle_days if isinstance(self.cycle_days, tuple) else (self.cycle_days,)
        return min(days) if days and all(_positive(d) for d in days) else None

    @property
    def lengths(self) -> np.ndarray:
        """Each cycle's planned length (days; one per cycle): cycle k+1 is planned this
        many days after cycle k was given."""
        if isinstance(self.cycle_days, tuple):
            return np.asarray(self.cycle_days, dtype=float)
        return np.full(self.cycles, float(self.cycle_days))

    def length(self, cycle: int) -> float:
        """The planned length of cycle ``cycle`` (0-based), days."""
        if isinstance(self.cycle_days, tuple):
            return float(self.cycle_days[cycle])
        return self.cycle_days

    @property
    def regimens(self) -> tuple[str, ...]:
        """Each cycle's regimen (one dose text per cycle)."""
        if isinstance(self.regimen, tuple):
            return self.regimen
        return (self.regimen,) * self.cycles

    @property
    def regimen_text(self) -> str:
        """One dose text holding every cycle's doses: the regimen, or the distinct
        regimens of a per-cycle list joined with " + " (the drugs the course gives, as an
        arm's chemotherapy names them)."""
        if isinstance(self.regimen, str):
            return self.regimen
        return " + ".join(dict.fromkeys(self.regimen))

    def first_cycles(self, cycles: int, **changes) -> "ChemotherapyCourse":
        """The course cut to its first ``cycles`` cycles (their lengths and regimens), with
        ``changes`` to its other settings."""
        cut = {label: getattr(self, label)[:cycles] for label in ("regimen", "cycle_days")
               if isinstance(getattr(self, label), tuple)}
        return replace(self, cycles=cycles, **cut, **changes)

    def describe(self) -> str:
        """The course in words: "`chemotherapy 1 dose` every 21 days, 4 cycles", or per
        cycle where the lengths or regimens differ."""
        if isinstance(self.regimen, str) and not isinstance(self.cycle_days, tuple):
            return f"`{self.regimen}` every {self.cycle_days:g} days, {self.cycles} cycles"
        runs = []  # consecutive cycles alike in regimen and length
        for k, (regimen, days) in enumerate(zip(self.regimens, self.lengths)):
            if runs and runs[-1][2:] == [regimen, days]:
                runs[-1][1] = k + 1
            else:
                runs.append([k + 1, k + 1, regimen, days])
        parts = [f"cycle{'s' if a != b else ''} {a}{f'-{b}' if a != b else ''}: "
                 f"`{regimen}`, {days:g}-day cycle{'s' if a != b else ''}"
                 for a, b, regimen, days in runs]
        return f"{self.cycles} cycles ({'; '.join(parts)})"

    @property
    def offsets(self) -> np.ndarray:
        """Each cycle's first chemotherapy day, in days from the cycle's first day (0 for a
        regimen on its day 1; 5 for "chemotherapy 1 dose d6", a cycle begun five days
        before its chemotherapy so that a drug can be given first): a cycle's readings (its
        nadir, days below, recovery, transfusions) run from its chemotherapy to the next
        cycle's, so the days before are not counted in them."""
        return np.array([_first_day(text) for text in self.regimens])

    def late(self, delay: np.ndarray) -> np.ndarray:
        """Which delays (days; inf: never given) make a cycle late: any positive delay, or
        with ``late_from_days`` one of at least that many days."""
        delay = np.asarray(delay, dtype=float)
        if self.late_from_days is None:
            return delay > 0
        return delay >= self.late_from_days

    @property
    def checks(self) -> np.ndarray:
        """Days after the planned day on which the count is judged."""
        return np.arange(math.floor(self.give_up_after_days / self.recheck_every_days
                                    + 1e-9) + 1) * self.recheck_every_days

    @property
    def judged_after(self) -> float:
        """Days from a cycle's first day to the day its count is judged."""
        return self.judged_on_day - 1.0

    @property
    def horizon(self) -> float:
        """The last day any patient can be followed to."""
        wait = self.checks[-1] if self.delay_below is not None else 0.0
        if isinstance(self.cycle_days, tuple):
            return (float(np.sum(self.lengths[:-1])) + (self.cycles - 1) * wait
                    + self.follow_up_days + float(self.offsets[-1]))
        # the last cycle is followed follow_up_days from its chemotherapy
        return (self.cycles - 1) * (self.cycle_days + wait) + self.follow_up_days \
            + float(self.offsets[-1])


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
    # support dose events given to each patient over the course (None: no support)
    support_doses: np.ndarray | None = None
    # cycles in which each patient was given at least one support dose (None: no support)
    supported_cycles: np.ndarray | None = None

    @property
    def failed(self) -> np.ndarray:
        """Patients whose simulation failed: no cycle after the failure, never eligible."""
        return self.status != Status.SUCCESS

    @property
    def cycles_given(self) -> np.ndarray:
        return np.sum(np.isfinite(self.cycle_day), axis=1)

    def window_days(self, cycle: int) -> tuple[np.ndarray, np.ndarray]:
        """Each patient's day of cycle ``cycle``'s chemotherapy (1-based; its first day
        plus :attr:`ChemotherapyCourse.offsets`; NaN: not given) and the day its window
        ends: the next cycle's chemotherapy, or the end of follow-up (see :meth:`_window`;
        inf when the next cycle was never given). A cycle begun before its chemotherapy (a
        drug given first, "chemotherapy 1 dose d6") is read from its chemotherapy: before
        2026-12-07 its window began on its first day, and its nadir and days below counted
        the previous cycle's tail (a user test)."""
        course = self.course
        offsets = course.offsets
        start = self.cycle_day[:, cycle - 1] + offsets[cycle - 1]
        end = self.cycle_day[:, cycle] + offsets[cycle] if cycle < course.cycles else \
            start + course.follow_up_days
        # an abandoned course's last cycle: followed off chemotherapy for the course's
        # follow_up_days after the day it was abandoned (the next cycle's planned day plus
        # give_up_after_days), not to the end of a grid whose length depends on the number
        # of cycles planned
        last = np.isnan(end) & np.isfinite(start) & self.abandoned
        if last.any():
            end = np.where(last, start + course.length(cycle - 1) + course.give_up_after_days
                           + course.follow_up_days, end)
        return start, np.where(np.isfinite(end), end, np.inf)

    def treated_cycle(self, day0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each patient's cycle in which ``day0`` (days from cycle 1; the first treatment
        morning) falls: its first day (the latest cycle given on or before day 0) and the
        next cycle's first day (inf: none given after day 0). A patient enrolled while a
        cycle is held is in the cycle before it (the one whose count holds it)."""
        day0 = np.asarray(day0, dtype=float)[:, None] + 1e-9
        days = self.cycle_day
        with np.errstate(invalid="ignore"):
            begin = np.where(np.isfinite(days) & (days <= day0), days, -np.inf).max(axis=1)
            end = np.where(np.isfinite(days) & (days > day0), days, np.inf).min(axis=1)
        return begin, end

    def _window(self, cycle: int) -> tuple[np.ndarray, np.ndarray]:
        """Each patient's day of cycle ``cycle``'s chemotherapy (1-based; NaN: not given;
        :meth:`window_days`) and the mask of output times from that day to the next
        cycle's chemotherapy (or the end of follow-up).

        The last cycle given ends at the patient's own end of follow-up, the course's
        ``follow_up_days`` after its chemotherapy: the output grid runs on to the latest
        day any patient of the course can be followed to (its delays), and a reading past
        a patient's own follow-up (a recovery peak on day 40 of a 21-day follow-up) is not
        one the study made. The last cycle of an abandoned course (no next cycle given) ends
        the course's ``follow_up_days`` after the day it was abandoned (its next cycle's
        planned day plus ``give_up_after_days``): such a patient is followed off
        chemotherapy for as long as after a last cycle, whatever the number of cycles
        planned (before 2026-12-04 to the grid's end, which grows with that number)."""
        start, end = self.window_days(cycle)
        inside = (self.times[None, :] >= start[:, None]) & (self.times[None, :] < end[:, None])
        return start, inside

    def readings(self, cycle: int, levels=(), recovery=()) -> dict:
        """From one pass over cycle ``cycle``'s window (1-based; to the next cycle or the
        end of follow-up): each patient's ``"nadir"``, ``"peak"`` (the highest count from
        the nadir to the window's end: the cycle's recovery peak) and, per level in
        ``levels``, the days
        with the count below it (on the output grid, as the trial's ``days_below_50``);
        per level in ``recovery``, under ``("recovery", level)``, the days from the cycle's
        chemotherapy to the first count at or above the level after the nadir, for a patient
        whose count fell below it (NaN for the others, and where it did not recover within
        the window); NaN where that cycle was not given."""
        start, inside = self._window(cycle)
        given = np.isfinite(start)
        masked = np.where(inside, self.platelets, np.inf)
        step = self.times[1] - self.times[0] if len(self.times) > 1 else 0.0
        out = {"nadir": np.where(given, masked.min(axis=1), np.nan)}
        # the recovery peak: the highest count from the nadir to the window's end; none
        # (NaN) when the lowest count is the window's last, still falling: no recovery
        # was seen (a user test: a 7-day follow-up reported the nadir as its "peak")
        lowest = masked.argmin(axis=1)
        last = len(self.times) - 1 - np.argmax(inside[:, ::-1], axis=1)
        after = inside & (np.arange(len(self.times)) >= lowest[:, None])
        peak = np.where(after, self.platelets, -np.inf).max(axis=1)
        out["peak"] = np.where(given & (lowest < last), peak, np.nan)
        for level in levels:
            out[level] = np.where(given, np.sum(masked < level, axis=1) * step, np.nan)
        for level in recovery:
            back = after & (self.platelets >= level)
            first = np.argmax(back, axis=1)
            fell = given & (out["nadir"] < level) & back.any(axis=1)
            with np.errstate(invalid="ignore"):
                out[("recovery", level)] = np.where(fell, self.times[first] - start, np.nan)
        return out

    def nadir(self, cycle: int) -> np.ndarray:
        """Each patient's lowest count from cycle ``cycle`` (1-based) to the next cycle
        (or the end of follow-up); NaN where that cycle was not given."""
        return self.readings(cycle)["nadir"]

    def days_below(self, cycle: int, level: float) -> np.ndarray:
        """Each patient's days with the count below ``level`` from cycle ``cycle`` to the
        next cycle (or the end of follow-up); NaN where that cycle was not given."""
        return self.readings(cycle, (level,))[level]

    def auc(self, cycle: int, days: float = 21.0) -> np.ndarray:
        """Each patient's area under the count (10^9/L x day) over ``days`` from the
        chemotherapy of cycle ``cycle`` (:meth:`window_days`; trapezoids; a
        self-controlled study's "AUC day 0-21" of a cycle); NaN where that cycle was not
        given or follow-up ends earlier."""
        start = self.window_days(cycle)[0]  # from the cycle's chemotherapy
        # at the output grid's own resolution: trapezoids on the grid's points (cycles start
        # on it), four times fewer than auc's default
        points = int(round(days * self.course.points_per_day)) + 1
        area = auc(self.times, self.platelets, np.nan_to_num(start, nan=0.0), days,
                   points=points)
        return np.where(np.isfinite(start), area, np.nan)


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


@dataclass(frozen=True)
class CycleBlock:
    """Every cycle's doses as one schedule: the course's regimen in each cycle and, in the
    cycles listed in ``support_cycles`` (1-based), the supportive doses ``support`` (days
    counted from that cycle's first day, as the regimen's). Per event: its cycle (0-based),
    its time from the cycle's first day, and whether it is chemotherapy (which delays
    reduce and between-cycle variability scales) or support (given in full)."""

    schedule: EventSchedule
    cycle: np.ndarray
    offset: np.ndarray
    chemotherapy: np.ndarray
    # support doses of a cycle stop after the first morning count at or above this (None:
    # every support dose is given); judged on the counts of the pass that places the cycle
    stop_at: float | None = None
    # only once the count has been below stop_at on an earlier support morning ("until the
    # count has recovered": a cycle that starts above the level is not stopped at once)
    stop_after_fall: bool = False
    # the stop never comes on a cycle's first min_days support mornings ("7 to 14 days or
    # until PLT >= 100": at least 7 doses)
    min_days: int = 0
    # support doses of a cycle start on the first support morning whose count is below this
    # ("rhTPO when PLT < 75 after chemotherapy"; None: from the first support day)
    start_below: float | None = None
    # with start_below: at most this many days of support doses from the start (0: no cap)
    max_days: int = 0

    @property
    def adaptive(self) -> bool:
        """Whether a cycle's support doses depend on its own counts (a start or a stop)."""
        return self.stop_at is not None or self.start_below is not None

    @classmethod
    def build(cls, model: Model, course: ChemotherapyCourse, support: tuple[str, ...] = (),
              support_cycles: tuple[int, ...] = (), stop_at: float | None = None,
              stop_after_fall: bool = False, min_days: int = 0,
              start_below: float | None = None, max_days: int = 0) -> CycleBlock:
        regimens = {text: expand(as_regimen(text), model.dose_targets)
                    for text in dict.fromkeys(course.regimens)}
        extra = expand(as_regimen(" + ".join(support)), model.dose_targets) if support \
            else None
        parts, cycle, chemo = [], [], []
        for k, regimen in enumerate(course.regimens):
            given = [(regimens[regimen], True)] + (
                [(extra, False)] if extra is not None and k + 1 in support_cycles else [])
            for part, is_chemotherapy in given:
                parts.append(part)
                cycle += [k] * part.n_events
                chemo += [is_chemotherapy] * part.n_events
        schedule = parts[0]
        for part in parts[1:]:
            schedule = schedule.concatenate(part)
        return cls(schedule, np.asarray(cycle, dtype=np.int64), schedule.time.copy(),
                   np.asarray(chemo, dtype=bool), stop_at, stop_after_fall, min_days,
                   start_below, max_days)

    def plan(self, day: np.ndarray, dose: np.ndarray, exposure: np.ndarray,
             never: float, stop: np.ndarray | None = None,
             begin: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Each patient's event times (days from cycle 1) and dose factors, given the day
        each cycle is given (NaN: not (yet) given: its events move to ``never`` with factor
        0), the chemotherapy dose fraction and the between-cycle exposure factor.
        ``stop`` (patients x cycles, days from cycle 1; inf: none): the support doses of a
        cycle at or after its stop time are not given (factor 0). ``begin`` (patients x
        cycles, days from cycle 1; inf: not started, -inf: from the first support day): the
        support doses of a cycle before its start are not given, nor, with ``max_days``,
        those ``max_days`` days or more after it."""
        given = np.isfinite(day[:, self.cycle])
        times = np.where(given, day[:, self.cycle] + self.offset[None, :], never)
        chemotherapy = np.nan_to_num(dose[:, self.cycle]) * exposure[:, self.cycle]
        factors = np.where(self.chemotherapy[None, :], chemotherapy, 1.0)
        support = ~self.chemotherapy[None, :]
        if stop is not None:
            stopped = support & (times >= stop[:, self.cycle] - 1e-9)
            factors = np.where(stopped, 0.0, factors)
        if begin is not None:
            start = begin[:, self.cycle]
            left = times < start - 1e-9
            if self.max_days:
                left |= times >= start + self.max_days - 1e-9
            factors = np.where(support & left, 0.0, factors)
        return times, np.where(given, factors, 0.0)

    def _mornings(self, cycle: int, day: np.ndarray) -> np.ndarray | None:
        """The support mornings of ``cycle`` (0-based) for patients whose cycle was given on
        ``day``: every whole day from its first support day to its last (days from cycle 1,
        patients x mornings); None when the cycle has no support doses."""
        support = ~self.chemotherapy & (self.cycle == cycle)
        if not support.any():
            return None
        first = math.floor(self.offset[support].min() + 1e-9)
        last = self.offset[support].max()
        mornings = np.arange(first, math.floor(last + 1e-9) + 1, dtype=float)
        return day[:, None] + mornings[None, :]

    def support_starts(self, cycle: int, day: np.ndarray, times: np.ndarray,
                       courses: np.ndarray) -> np.ndarray:
        """With ``start_below``, each patient's start time of the support doses of
        ``cycle`` (0-based): the first morning, from the cycle's first support day to its
        last, whose count is below ``start_below`` (days from cycle 1; inf: never below, no
        support in the cycle), read from ``courses`` simulated without the cycle's support.
        A dose on a day comes after that day's count, so that day's dose is the first given;
        the counts up to the start do not depend on the doses from it."""
        starts = np.full(len(day), np.inf)
        when = self._mornings(cycle, day)
        if self.start_below is None or when is None:
            return starts
        below = np.nan_to_num(values_at(times, courses, when), nan=np.inf) < self.start_below
        hit = below.any(axis=1)
        starts[hit] = when[hit, np.argmax(below[hit], axis=1)]
        return starts

    def support_stops(self, cycle: int, day: np.ndarray, times: np.ndarray,
                      courses: np.ndarray, begin: np.ndarray | None = None) -> np.ndarray:
        """With ``stop_at``, each patient's stop time of the support doses of ``cycle``
        (0-based): the first morning, from the cycle's first support day (or from the
        patient's start ``begin``, days from cycle 1, with ``start_below``) to its last,
        whose count is at or above ``stop_at`` (days from cycle 1; inf: no stop), read from
        ``courses`` (patients x ``times``) simulated with every support dose from the start;
        with ``stop_after_fall``, the first such morning after one below it (a recovery);
        never one of the first ``min_days`` mornings from the first support day or the
        start. A dose on a day comes after that day's count, so that day's dose is the first
        not given; the counts up to the stop do not depend on the doses after it."""
        stops = np.full(len(day), np.inf)
        when = self._mornings(cycle, day)
        if self.stop_at is None or when is None:
            return stops
        counts = values_at(times, courses, when)
        begin = np.full(len(day), -np.inf) if begin is None else np.asarray(begin, float)
        on = when >= begin[:, None] - 1e-9    # the mornings from the start
        reached = on & (np.nan_to_num(counts, nan=-np.inf) >= self.stop_at)
        if self.stop_after_fall:  # a morning below the level must come first
            below = on & (np.nan_to_num(counts, nan=np.inf) < self.stop_at)
            fallen = np.concatenate([np.zeros((len(day), 1), dtype=bool),
                                     np.logical_or.accumulate(below, axis=1)[:, :-1]], axis=1)
            reached &= fallen
        # the first min_days mornings from the start are always dosed
        reached &= np.cumsum(on, axis=1) > self.min_days
        hit = reached.any(axis=1)
        stops[hit] = when[hit, np.argmax(reached[hit], axis=1)]
        return stops


def course_times(course: ChemotherapyCourse, extra_days: float = 0.0) -> np.ndarray:
    """The output grid of a course (days from cycle 1), ``extra_days`` beyond its horizon."""
    return np.arange(round((course.horizon + extra_days) * course.points_per_day) + 1) \
        / course.points_per_day


def simulate_course(model: Model, course: ChemotherapyCourse, parameter_vectors: np.ndarray,
                    solver=None, *, block: CycleBlock | None = None,
                    exposure: np.ndarray | None = None, times: np.ndarray | None = None,
                    treat=None, observe=None, staged_passes: bool = True,
                    entry: np.ndarray | None = None) -> CourseResult:
    """Run ``course`` for the patients whose parameter vectors are the rows of
    ``parameter_vectors`` (see the module text for the rules).

    ``block`` (default: the regimen alone) adds supportive doses to chosen cycles;
    ``exposure`` (patients x cycles, default 1) scales each cycle's chemotherapy (between-
    cycle variability); ``times`` is the output grid (default :func:`course_times`).
    ``treat(rows, event_times, factors, grid)``, when given, simulates the patients
    ``rows`` with the block's doses at those times and factors plus their own treatment on
    the output ``grid`` (a leading part of ``times``), returning (platelet courses,
    statuses): the arms of a trial with a study treatment from entry.
    ``observe(rows, cycle, counts)``, when given, turns the true counts at the re-checks of
    ``cycle`` (0-based; patients ``rows`` x checks) into measured ones for the delay rule.
    ``staged_passes=False`` runs every pass before the last to its latest re-check for every
    patient (the unstaged passes: the same decisions at more cost; for comparison).
    ``entry`` (days from cycle 1, one per patient; default: none enrolled): with the
    course's ``delay_below_after_entry``, a re-check on or after a patient's enrolment day
    judges that level instead of ``delay_below``.
    """
    vectors = np.asarray(parameter_vectors, dtype=float)
    n, cycles = len(vectors), course.cycles
    solver = solver or DormandPrince5(rtol=1e-6, atol=1e-6)
    times = course_times(course) if times is None else times
    block = block or CycleBlock.build(model, course)
    exposure = np.ones((n, cycles)) if exposure is None else exposure
    offset = len(model.parameters)
    covariates = {c: vectors[:, offset + i] for i, c in enumerate(model.covariate_names)}
    base = np.array(np.broadcast_to(np.asarray(block.schedule.amounts(covariates),
                                               dtype=float), (n, block.schedule.n_events)))
    index = model.output_names.index(PLATELETS)

    def integrate(rows, event_times, factors, grid):
        result = _integrate(model, block.schedule, vectors[rows], base[rows] * factors,
                            grid, solver, False, event_times)
        return result.outputs[:, :, index], result.status

    treat = treat or integrate

    def levels(rows, when):
        # the level each re-check (days from cycle 1, rows x checks) judges
        if course.delay_below_after_entry is None or entry is None:
            return course.delay_below
        return np.where(when >= np.asarray(entry, dtype=float)[rows, None] - 1e-9,
                        course.delay_below_after_entry, course.delay_below)

    day = np.full((n, cycles), np.nan)
    day[:, 0] = 0.0
    delay = np.zeros((n, cycles))
    dose = np.ones((n, cycles))
    abandoned = np.zeros(n, dtype=bool)
    stop = np.full((n, cycles), np.inf)  # support stops (days from cycle 1; inf: none)
    # support starts (days from cycle 1): with start_below none until a cycle is judged
    # (inf), else from the first support day (-inf)
    begin = np.full((n, cycles), -np.inf if block.start_below is None else np.inf)
    judged = np.zeros(cycles, dtype=bool)  # cycles whose support starts and stops are settled
    courses = np.empty((n, times.size))
    status = np.empty(n, dtype=np.int64)
    reached = np.zeros(n, dtype=np.int64)  # grid points each patient's last run covered
    log = []
    reduce = 1.0 - course.reduce_after_delay_pct / 100.0
    for k in range(cycles):
        rows = np.flatnonzero(np.isfinite(day[:, k]))  # still on chemotherapy
        if rows.size == 0:
            break
        last = k + 1 == cycles
        if not last and course.delay_below is None:  # nothing to judge: cycles as planned
            day[rows, k + 1] = day[rows, k] + course.length(k)
            dose[rows, k + 1] = dose[rows, k]
            continue

        def run(rows, grid):
            event_times, factors = block.plan(day[rows], dose[rows], exposure[rows],
                                              times[-1] + 1.0, stop[rows], begin[rows])
            courses[rows, :grid.size], status[rows] = treat(rows, event_times, factors, grid)
            courses[rows, grid.size:] = np.nan

        def settle_support(rows, grid):
            # a cycle's support doses start on the first morning below start_below (judged
            # on this pass's counts, run without the cycle's support: the patients who start
            # run again with the doses from that morning) and stop after the first morning
            # at or above stop_at (judged on the counts with the doses: the patients who
            # stop run again without the later ones), cycle by cycle (without delay rules
            # the last pass places every cycle); a later dose cannot change an earlier count
            if not block.adaptive or rows.size == 0:
                return
            for c in np.flatnonzero(~judged[:k + 1]):
                judged[c] = True
                placed = rows[np.isfinite(day[rows, c])]
                if block.start_below is not None:
                    starts = block.support_starts(c, day[placed, c], times, courses[placed])
                    placed = placed[np.isfinite(starts)]
                    begin[placed, c] = starts[np.isfinite(starts)]
                    if placed.size:
                        run(placed, grid)
                stops = block.support_stops(c, day[placed, c], times, courses[placed],
                                            begin[placed, c])
                stopped = placed[np.isfinite(stops)]
                if stopped.size:
                    stop[stopped, c] = stops[np.isfinite(stops)]
                    run(stopped, grid)

        # a pass before the last needs the counts only up to the re-check that decides
        # each patient: a later dose cannot change an earlier count. Without support stops
        # or starts (judged on a pass's whole grid) it is staged: every patient first runs to its own
        # first re-check (grouped by the day cycle k was given), and only those below the
        # level then run on to the last re-check. Patients whose chemotherapy ends in this
        # pass (abandoned, failed) are run again to the end of follow-up below.
        staged = staged_passes and not last and not block.adaptive \
            and course.checks.size > 1
        first_read = None  # the first stage's (measured) count at the first re-check
        if last:
            run(rows, times)
            settle_support(rows, times)
            reached[rows] = times.size
        elif staged:
            for given in np.unique(day[rows, k]):
                group = rows[day[rows, k] == given]
                grid = times[:_pass_cut(course, times, day[group, k], k, 0)]
                run(group, grid)
                reached[group] = grid.size
            settled = rows[status[rows] == Status.SUCCESS]
            checked_on = day[settled, k] + course.length(k) + course.judged_after \
                + course.checks[0]
            first = values_at(times, courses[settled], checked_on)
            if observe is not None:  # the same draw as the check's in the full table
                first = observe(settled, k + 1, np.column_stack(
                    [first, np.full((settled.size, course.checks.size - 1), np.nan)]))[:, 0]
            first_read = np.full(n, np.nan)
            first_read[settled] = first
            late = settled[~(first >= np.ravel(levels(settled, checked_on[:, None])))]
            if late.size:
                grid = times[:_pass_cut(course, times, day[late, k], k, -1)]
                run(late, grid)
                reached[late] = grid.size
        else:
            grid = times[:_pass_cut(course, times, day[rows, k], k, -1)]
            run(rows, grid)
            settle_support(rows, grid)
            reached[rows] = grid.size
        screened = rows
        rows = rows[status[rows] == Status.SUCCESS]  # a failed patient is flagged, not judged
        if last or rows.size == 0:
            again = screened[reached[screened] < times.size]
            if again.size:
                run(again, times)
            break
        planned = day[rows, k] + course.length(k)
        # judged on the planned cycle's day judged_on_day; the cycle starts that many days
        # before the count that lets it go (its support before that day is not in the
        # judged count: this pass has not placed it)
        when = planned[:, None] + course.judged_after + course.checks[None, :]
        counts = values_at(times, courses[rows], when)
        if observe is not None:
            counts = observe(rows, k + 1, counts)
        if first_read is not None:  # the first re-check as the first stage read it
            counts[:, 0] = first_read[rows]
        fine = counts >= levels(rows, when)
        first = np.argmax(fine, axis=1)
        ok = fine[np.arange(rows.size), first]
        held = ok & (first > 0)  # given after a delay
        day[rows[ok], k + 1] = when[ok, first[ok]] - course.judged_after
        delay[rows, k + 1] = np.where(ok, course.checks[first], np.inf)
        late = ok & course.late(delay[rows, k + 1])  # a delay the course counts (reduced)
        dose[rows, k + 1] = dose[rows, k] * np.where(late, reduce, 1.0)
        abandoned[rows[~ok]] = True
        delay[rows[~ok], k + 1:] = np.inf  # never given: delayed without end
        ending = np.union1d(np.setdiff1d(screened, rows), rows[~ok])
        ending = ending[reached[ending] < times.size]
        if ending.size:
            run(ending, times)
            reached[ending] = times.size
        for kind, mask, days, value in (
                ("delayed", ~ok | (first > 0), planned, delay[rows, k + 1]),
                ("dose reduced", late & (reduce < 1.0), day[rows, k + 1], dose[rows, k + 1]),
                ("resumed", held, day[rows, k + 1], delay[rows, k + 1]),
                ("abandoned", ~ok, planned + course.give_up_after_days, np.inf)):
            if mask.any():
                log.append((rows[mask], np.asarray(days)[mask], CYCLE_EVENTS.index(kind),
                            k + 2, np.broadcast_to(value, mask.shape)[mask]))
    dose[~np.isfinite(day)] = np.nan
    support = ~block.chemotherapy
    given = supported = None
    if support.any():  # the support doses each patient was given, after every start and stop
        _, factors = block.plan(day, np.nan_to_num(dose, nan=1.0), exposure, times[-1] + 1.0,
                                stop, begin)
        dosed = (factors > 0) & support[None, :]
        given = np.sum(dosed, axis=1)
        supported = np.stack([(dosed & (block.cycle == c)[None, :]).any(axis=1)
                              for c in range(cycles)], axis=1).sum(axis=1)
    return CourseResult(course, times, courses, status, day, delay, dose, abandoned,
                        _events(log), given, supported)


def _pass_cut(course: ChemotherapyCourse, times: np.ndarray, given: np.ndarray,
              cycle: int, check: int) -> int:
    """Grid points a pass needs to read re-check ``check`` (an index into the course's
    checks) of the next cycle for patients whose current cycle ``cycle`` (0-based) was given
    on days ``given``: two beyond it, as :func:`values_at` interpolates towards the next
    point."""
    return min(times.size, int(np.searchsorted(
        times, np.max(given) + course.length(cycle) + course.judged_after
        + course.checks[check],
        side="right")) + 2)


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
HISTORY_RULES = ("below_on_cycle_day", "below_for_days", "delayed_at_least", "nadir_below",
                 "fell_by_pct")


@dataclass(frozen=True)
class HistoryRule:
    """One eligibility rule judged on a patient's simulated course:

    * ``below_on_cycle_day``: the count on day ``day`` of cycle ``cycle`` (counted from the
      day that cycle was given) is below ``below``;
    * ``below_for_days``: the count stays below ``below`` for at least ``days`` days in a
      row (on the course's output grid), anywhere in the course, or with ``cycle`` within
      that cycle: from its first day to the next cycle's (a held next cycle extends it; the
      last cycle: to the course's follow-up after it);
    * ``delayed_at_least``: cycle ``cycle`` was delayed by at least ``days`` days (a cycle
      never given because chemotherapy was abandoned counts as delayed without end);
    * ``nadir_below``: cycle ``cycle``'s nadir (see :meth:`CourseResult.nadir`) is below
      ``below``; with ``every_days``, a routine count of that cycle (on cycle days
      ``every_days``, 2 ``every_days``, ... after its chemotherapy) is below ``below``
      ("PLT < 75 at a routine count"), and the patient is enrolled on that count's day;
      with ``at_least``, the nadir must also be at or above it ("grade II-III": a nadir
      from 25 to below 75), which is known only once the cycle is over, so the rule is
      settled at the end of that cycle's window (the next cycle's day);
    * ``fell_by_pct``: in cycle ``cycle`` the count fell by more than ``pct`` percent of
      its count on the day of that cycle's chemotherapy (before the dose): below
      ``(1 - pct / 100)`` times it, "a fall of more than 40% within 3 days of
      chemotherapy" (a user test's sarcoma study, 2026-12-07); with ``days``, within that
      many days of the chemotherapy; with ``every_days``, at a routine count
      (``every_days``, 2 ``every_days``, ... days after it); the patient is enrolled on the
      first such point.

    A patient is eligible when every rule holds; with ``group`` names, when the rules
    without a group and every rule of at least one group hold ("PLT < 100 and a nadir below
    50 in the previous cycle, or PLT < 75": two groups), enrolled on the earliest day a
    group is settled. ``cycle`` unset is cycle 1, except for ``below_for_days`` (anywhere).
    """

    rule: str
    below: float | None = None
    days: float | None = None
    day: float | None = None
    cycle: int | None = None
    group: str = ""
    every_days: float | None = None
    at_least: float | None = None
    pct: float | None = None

    @property
    def judged_cycle(self) -> int:
        """The cycle the rule judges (1 when unset)."""
        return 1 if self.cycle is None else self.cycle

    def problems(self, course: ChemotherapyCourse) -> list[str]:
        needs = {"below_on_cycle_day": ("below", "day"), "below_for_days": ("below", "days"),
                 "delayed_at_least": ("days",), "nadir_below": ("below",),
                 "fell_by_pct": ("pct",)}
        if self.rule not in needs:
            return [(f"rule must be one of {', '.join(map(repr, HISTORY_RULES))}, got "
                     f"{self.rule!r}")]
        problems = [f"a {self.rule} rule needs {key} (a positive number)"
                    for key in needs[self.rule]
                    if not _positive(getattr(self, key), zero_ok=key == "day")]
        if self.rule == "fell_by_pct":
            problems += self._fall_problems()
        elif self.pct is not None:
            problems.append(f"pct (a fall from the count on the cycle's chemotherapy day) is "
                            f"for fell_by_pct rules, not {self.rule}: remove it")
        if not (isinstance(self.judged_cycle, int)
                and 1 <= self.judged_cycle <= course.cycles):
            problems.append(f"cycle must be a whole number from 1 to {course.cycles} (the "
                            f"course's cycles), got {self.cycle!r}")
        if self.every_days is not None:
            steps = self.every_days * course.points_per_day
            if self.rule not in ("nadir_below", "fell_by_pct"):
                problems.append(f"every_days (routine counts) is for nadir_below and "
                                f"fell_by_pct rules, not {self.rule}: remove it")
            elif not (_positive(self.every_days) and abs(steps - round(steps)) < 1e-9):
                problems.append(f"every_days must be a positive multiple of the course's "
                                f"output step (1/{course.points_per_day:g} day), got "
                                f"{self.every_days!r}")
        if self.at_least is not None:
            if self.rule != "nadir_below" or self.every_days is not None:
                problems.append(f"at_least (a nadir from at_least to below) is for "
                                f"nadir_below rules without every_days, not {self.rule}"
                                f"{' with every_days' if self.every_days is not None else ''}"
                                f": remove it")
            elif not (_positive(self.at_least, zero_ok=True) and self.below is not None
                      and self.at_least < self.below):
                problems.append(f"at_least must be a count (10^9/L) below below = "
                                f"{self.below!r}, got {self.at_least!r}")
        if self.rule == "delayed_at_least" and self.judged_cycle == 1:
            problems.append("cycle 1 is never delayed; name a later cycle (cycle = 2 is "
                            "the cycle after the first)")
        return problems

    def _fall_problems(self) -> list[str]:
        """A fall rule's own keys: ``pct`` below 100 (a fall of 100% or more is never seen),
        ``days`` optional, no level of its own."""
        problems = []
        if _positive(self.pct) and self.pct >= 100:
            problems.append(f"pct must be a percentage below 100 (a fall of 40% is pct = "
                            f"40), got {self.pct!r}")
        given = [key for key in ("below", "day", "at_least") if getattr(self, key) is not None]
        if given:
            problems.append(f"a fell_by_pct rule judges the fall from the count on the "
                            f"cycle's chemotherapy day, so it takes pct (and days, every_days, "
                            f"cycle), not {', '.join(given)}: remove "
                            f"{'it' if len(given) == 1 else 'them'}, or add a second rule "
                            f"for a level")
        return problems

    def holds(self, result: CourseResult) -> np.ndarray:
        """Which patients of ``result`` meet the rule."""
        c = self.judged_cycle - 1
        if self.rule == "below_on_cycle_day":
            start = result.cycle_day[:, c]
            count = values_at(result.times, result.platelets,
                              np.where(np.isfinite(start), start + self.day, 0.0))
            return np.isfinite(start) & (count < self.below)
        if self.rule == "below_for_days":
            return _longest_run(self._below(result)) \
                / result.course.points_per_day >= self.days - 1e-9
        if self.rule == "delayed_at_least":
            return result.delay[:, c] >= self.days
        if self.rule == "fell_by_pct":
            return self._fallen(result).any(axis=1)
        if self.every_days is not None:
            return self._routine_below(result).any(axis=1)
        nadir = result.nadir(self.judged_cycle)
        if self.at_least is not None:
            return (nadir < self.below) & (nadir >= self.at_least)
        return nadir < self.below

    def _since(self, result: CourseResult) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The judged cycle's window (:meth:`CourseResult._window`: its chemotherapy day,
        the mask of its grid points) and each grid point's distance from that day in grid
        steps."""
        start, inside = result._window(self.judged_cycle)
        since = np.rint((result.times[None, :] - np.nan_to_num(start, nan=0.0)[:, None])
                        * result.course.points_per_day).astype(np.int64)
        return start, inside, since

    def _routine(self, since: np.ndarray, points_per_day: int) -> np.ndarray:
        """The grid points after the window's start that are routine counts (every
        ``every_days``)."""
        steps = int(round(self.every_days * points_per_day))
        return (since > 0) & (since % steps == 0)

    def _routine_below(self, result: CourseResult) -> np.ndarray:
        """The grid points of the judged cycle's routine counts (every ``every_days`` from
        its chemotherapy, within its window) with the count below ``below``."""
        _, inside, since = self._since(result)
        return inside & self._routine(since, result.course.points_per_day) \
            & (result.platelets < self.below)

    def _fall_points(self, result: CourseResult) -> tuple[np.ndarray, np.ndarray]:
        """The grid points a fall rule judges (the judged cycle's window after its
        chemotherapy day, within ``days`` of it, at its routine counts with ``every_days``)
        and each patient's count on that day (NaN: the cycle was not given)."""
        start, inside, since = self._since(result)
        given = np.isfinite(start)
        first = values_at(result.times, result.platelets, np.where(given, start, 0.0))
        judged = inside & given[:, None] & (since > 0)
        if self.days is not None:
            judged &= since <= math.floor(self.days * result.course.points_per_day + 1e-9)
        if self.every_days is not None:
            judged &= self._routine(since, result.course.points_per_day)
        return judged, np.where(given, first, np.nan)

    def _fallen(self, result: CourseResult) -> np.ndarray:
        """The judged points (:meth:`_fall_points`) where the count is below
        ``1 - pct / 100`` times the count on the cycle's chemotherapy day."""
        judged, first = self._fall_points(result)
        with np.errstate(invalid="ignore"):
            return judged & (result.platelets < ((1.0 - self.pct / 100.0) * first)[:, None])

    def largest_fall(self, result: CourseResult) -> np.ndarray:
        """Each patient's largest fall over the judged points, in percent of the count on
        the cycle's chemotherapy day (NaN: the cycle was not given): what a fall rule that
        enrols nobody could have asked for."""
        judged, first = self._fall_points(result)
        lowest = np.where(judged, result.platelets, np.inf).min(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            fall = 100.0 * (1.0 - lowest / first)
        return np.where(np.isfinite(fall), fall, np.nan)

    def _below(self, result: CourseResult) -> np.ndarray:
        """The grid points with the count below ``below``: anywhere, or with ``cycle``
        within that cycle's window (:meth:`CourseResult._window`; none if not given)."""
        below = result.platelets < self.below
        if self.cycle is None:
            return below
        return below & result._window(self.cycle)[1]


    def known_at(self, result: CourseResult) -> np.ndarray:
        """The day (from cycle 1) each patient's rule is settled: the cycle day judged
        (``below_on_cycle_day``), the end of the first run of ``days`` days below
        (``below_for_days``), the planned day plus ``days`` (``delayed_at_least``), the first
        count below within the cycle (``nadir_below``); NaN where the rule does not hold.
        A patient is enrolled when every rule is settled (the latest of these days)."""
        c, holds = self.judged_cycle - 1, self.holds(result)
        if self.rule == "below_on_cycle_day":
            day = result.cycle_day[:, c] + self.day
        elif self.rule == "below_for_days":
            steps = int(math.ceil(self.days * result.course.points_per_day - 1e-9))
            run = _run_lengths(self._below(result))
            reached = run >= steps
            first = np.argmax(reached, axis=1)
            day = np.where(reached.any(axis=1), result.times[first], np.nan)
        elif self.rule == "delayed_at_least":
            day = result.cycle_day[:, c - 1] + result.course.length(c - 1) \
                + result.course.judged_after + self.days
        elif self.rule == "fell_by_pct":
            fallen = self._fallen(result)
            day = np.where(fallen.any(axis=1), result.times[np.argmax(fallen, axis=1)], np.nan)
        elif self.every_days is not None:
            below = self._routine_below(result)
            day = np.where(below.any(axis=1), result.times[np.argmax(below, axis=1)], np.nan)
        elif self.at_least is not None:  # the whole cycle's nadir: known at its end
            end = result.window_days(self.judged_cycle)[1]
            day = np.where(np.isfinite(end), end, np.nan)
        else:  # the first count below from the cycle's chemotherapy (its window's start)
            start = result.window_days(self.judged_cycle)[0]
            after = np.where(np.isfinite(start), start, np.inf)
            below = (result.platelets < self.below) & (result.times[None, :] >= after[:, None])
            first = np.argmax(below, axis=1)
            day = np.where(below.any(axis=1), result.times[first], np.nan)
        return np.where(holds, day, np.nan)


def _run_lengths(mask: np.ndarray) -> np.ndarray:
    """Per row and point, how many grid steps the run of True values ending there spans
    (0 at a lone True point or a False one)."""
    run = np.zeros(mask.shape, dtype=np.int64)
    current = np.full(len(mask), -1, dtype=np.int64)
    for j in range(mask.shape[1]):
        current = np.where(mask[:, j], current + 1, -1)
        run[:, j] = np.maximum(current, 0)
    return run


def rule_groups(rules: tuple[HistoryRule, ...]) -> tuple[tuple, dict]:
    """The rules without a group (every one must hold) and the groups by name (one must
    hold in full)."""
    common = tuple(rule for rule in rules if not rule.group)
    groups: dict = {}
    for rule in rules:
        if rule.group:
            groups.setdefault(rule.group, []).append(rule)
    return common, {name: tuple(members) for name, members in groups.items()}


def entry_days(result: CourseResult, rules: tuple[HistoryRule, ...]) -> np.ndarray:
    """Each patient's day of enrolment (from cycle 1): when the last of ``rules`` is
    settled (:meth:`HistoryRule.known_at`); with groups, the earliest day on which the
    common rules and every rule of one group are settled; day 0 without rules; NaN when not
    eligible."""
    common, groups = rule_groups(rules)
    day = np.zeros(len(result.status))
    for rule in common:
        day = np.maximum(day, rule.known_at(result))  # NaN (not eligible) propagates
    if groups:
        earliest = np.full(len(day), np.inf)
        for members in groups.values():
            settled = np.zeros(len(day))
            for rule in members:
                settled = np.maximum(settled, rule.known_at(result))
            earliest = np.fmin(earliest, settled)  # a group that does not hold is NaN
        day = np.maximum(day, np.where(np.isfinite(earliest), earliest, np.nan))
    return np.where(result.failed, np.nan, day)


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
    common, groups = rule_groups(rules)
    eligible = ~result.failed
    counts = []

    def count(rule, meets, remaining):
        counts.append({"rule": describe(rule), "meets": int(meets.sum()),
                       "remaining": int(remaining.sum()), "screened": len(eligible),
                       "failed": int(result.failed.sum())})
        if rule.rule == "fell_by_pct":  # how far the screened fell: a rule nobody meets
            falls = rule.largest_fall(result)[~result.failed]
            if np.isfinite(falls).any():
                counts[-1]["largest_fall_pct"] = float(np.nanmax(falls))

    for rule in common:
        meets = rule.holds(result) & ~result.failed
        eligible &= meets
        count(rule, meets, eligible)
    if groups:  # "remaining": the common rules and this group's rules so far
        any_group = np.zeros(len(eligible), dtype=bool)
        for members in groups.values():
            remaining = eligible.copy()
            for rule in members:
                meets = rule.holds(result) & ~result.failed
                remaining &= meets
                count(rule, meets, remaining)
            any_group |= remaining
        eligible = any_group
    return np.flatnonzero(eligible), counts


def describe(rule: HistoryRule) -> str:
    """A rule in words, for summaries and reports."""
    group = f" (group {rule.group})" if rule.group else ""
    if rule.rule == "below_on_cycle_day":
        return f"PLT < {rule.below:g} on day {rule.day:g} of cycle {rule.judged_cycle}{group}"
    if rule.rule == "below_for_days":
        where = "" if rule.cycle is None else f" in cycle {rule.cycle}"
        return f"PLT < {rule.below:g} for >= {rule.days:g} days{where}{group}"
    if rule.rule == "delayed_at_least":
        return f"cycle {rule.judged_cycle} delayed >= {rule.days:g} days{group}"
    if rule.rule == "fell_by_pct":
        within = "" if rule.days is None else f" within {rule.days:g} days"
        routine = "" if rule.every_days is None else \
            f" at a routine count (every {rule.every_days:g} days)"
        return (f"PLT fell by more than {rule.pct:g}% of its count on the chemotherapy day of "
                f"cycle {rule.judged_cycle}{within}{routine}{group}")
    if rule.every_days is not None:
        return (f"PLT < {rule.below:g} at a routine count (every {rule.every_days:g} days) "
                f"in cycle {rule.judged_cycle}{group}")
    if rule.at_least is not None:
        return (f"cycle {rule.judged_cycle} nadir from {rule.at_least:g} to below "
                f"{rule.below:g}{group}")
    return f"cycle {rule.judged_cycle} nadir < {rule.below:g}{group}"


def simulate_course_arm(model: Model, design: ArmDesign, course: ChemotherapyCourse,
                        parameter_vectors: np.ndarray, rules: tuple[HistoryRule, ...] = (),
                        *, support: tuple[str, ...] = (), support_cycles: tuple[int, ...] = (),
                        exposure: np.ndarray | None = None, solver=None, measure=None,
                        measure_checks=None, rescue_below=None) -> ArmResult:
    """One trial arm on a chemotherapy course.

    1. *Screening*: every patient runs the course without study treatment; ``rules``
       (eligibility on the simulated history) select the enrolled, each enrolled on the day
       its last rule is settled (:func:`entry_days`; day 0 without rules).
    2. *Treatment*: the enrolled run the course again with the arm's ``support`` doses in the
       cycles ``support_cycles`` (days counted from each cycle's first day) and the arm's
       ``design.treatment`` from ``design.start_delay`` days after enrolment under its
       stop, dose and rescue rules (:mod:`plateletpd.study.cohort`); the course's delay
       rules judge the treated counts, so support can bring a cycle forward.

    ``exposure`` (patients x cycles) scales each cycle's chemotherapy (between-cycle
    variability). ``measure`` (see :func:`plateletpd.study.cohort.simulate_treatment_arm`)
    measures the visits of the enrolled; ``measure_checks(patients)`` (rows of
    ``parameter_vectors``) gives the ``observe`` of :func:`simulate_course` for the delay
    rule's re-checks, in screening and in treatment. The result's times are days from cycle 1; ``extra["course"]`` is the
    treated course (:class:`CourseResult`), ``extra["screening"]`` the screening counts
    (:func:`screen`)."""
    vectors = np.asarray(parameter_vectors, dtype=float)
    # one subject at a time (unlike lock step, independent of which patients share a
    # chunk, so a seed's result does not depend on the chunk size); DOPRI5 rather than DOP853:
    # with a dose every day each segment is short, and DOP853's 12 stages cost more there
    solver = solver or DormandPrince5(rtol=1e-6, atol=1e-6)
    n = len(vectors)
    exposure = np.ones((n, course.cycles)) if exposure is None else np.asarray(exposure)
    design = replace(design, points_per_day=course.points_per_day)  # the rescue delay's grid
    checks = None if measure_checks is None else measure_checks(np.arange(n))
    screening = simulate_course(model, course, vectors, solver, exposure=exposure,
                                observe=checks)
    eligible, counts = screen(screening, rules)
    entry = entry_days(screening, rules)[eligible]
    if design.entry_between is not None:  # "started at PLT 25-50": the enrolment day's count
        low, high = design.entry_between
        kept = in_band(screening.times, screening.platelets[eligible], entry,
                       design.entry_between)
        meets = np.zeros(n, dtype=bool)
        meets[eligible[kept]] = True
        eligible, entry = eligible[kept], entry[kept]
        counts = [*counts, {"rule": f"PLT {low:g} to below {high:g} on the enrolment day",
                            "meets": int(meets.sum()), "remaining": int(meets.sum()),
                            "screened": n, "failed": int(screening.failed.sum())}]
    start = entry + design.start_delay
    vectors, exposure = vectors[eligible], exposure[eligible]
    # the grid runs to the latest day ANY patient can be followed to (enrolment is judged
    # within the course's horizon), not to this chunk's latest: endpoints read to the grid's
    # end (the recovery peak, the last cycle's nadir, the censoring of days_to_next_cycle)
    # must not depend on which patients share a chunk
    times = course_times(course, design.start_delay + design.follow_up_days)
    block = CycleBlock.build(model, course, support, support_cycles,
                             design.support_stop_at if support else None,
                             design.support_stop_after_fall, design.support_min_days,
                             design.support_start_below if support else None,
                             design.support_max_days)
    offset = len(model.parameters)
    covariates = {c: vectors[:, offset + i] for i, c in enumerate(model.covariate_names)}
    index = model.output_names.index(PLATELETS)
    passes: list = []
    observe = measure(np.arange(len(eligible))) if measure and len(eligible) else None
    gives = eligible.size > 0 and (bool(design.rescue) or (bool(design.treatment) and (
        design.max_days > 0 or any(map(own_schedule, design.treatment)))))

    def treat(rows, event_times, factors, grid):
        seen = None if observe is None else (
            lambda values, days, subset=None, rows=rows: observe(
                values, days, rows if subset is None else rows[subset]))
        stop_by = None
        if design.stop_at_next_cycle:  # the first chemotherapy given after the start
            later = block.chemotherapy[None, :] & (factors > 0) \
                & (event_times > start[rows][:, None] + 1e-9)
            stop_by = np.where(later, event_times, np.inf).min(axis=1)
        arm = treat_by_rules(model, design, vectors[rows], {k: v[rows] for k, v in
                                                        covariates.items()},
                         block.schedule, grid, index, solver, eligible[rows], entry[rows],
                         start[rows], n, seen, chemotherapy_times=event_times,
                         chemotherapy_factors=factors, rescue_until=times[-1],
                         stop_by=stop_by, rescue_below=None if rescue_below is None
                         else rescue_below[eligible[rows]])
        passes.append((rows, arm))
        return arm.platelets, arm.status

    result = simulate_course(model, course, vectors, solver, block=block, exposure=exposure,
                             times=times, treat=treat if gives else None, entry=entry,
                             observe=None if checks is None else (
                                 lambda rows, cycle, counts: checks(eligible[rows], cycle,
                                                                    counts)))
    if gives:
        records = _merged(passes, len(eligible))
    else:  # nobody treated (none enrolled in this chunk, or an arm without doses or rescue)
        treatment = resolve_treatment(model, design)
        none_given = np.zeros((len(eligible), len(treatment.entry)))  # every planned dose 0
        records = {"doses_given": np.zeros(len(eligible), dtype=int),
                   "rescues": np.zeros(len(eligible)),
                   "rescue_times": np.full((len(eligible), 0), np.nan),
                   **treatment_records(treatment, none_given, decision_log(treatment, []),
                                       len(eligible))}
        # as an enrolled patient never treated gets it (:func:`_merged`)
        records["dose_intensity"] = np.full(len(eligible), np.nan)
    doses_given = records.pop("doses_given")
    return ArmResult(design, times, result.platelets, eligible, entry, start, doses_given,
                     result.status, n, {**records, "course": result, "screening": counts,
                                        "screening_course": screening})


def next_cycle_delay(result: CourseResult, entry: np.ndarray) -> np.ndarray:
    """Each patient's delay (days beyond its planned day) of the next cycle at enrolment:
    the first cycle after the first not yet given on the enrolment day (given on or after
    it, or never: a held cycle is this one); 0 on time, inf never given (abandoned); NaN
    when every cycle was given before enrolment ("median delay of the next cycle", a CIT
    endpoint)."""
    n, cycles = result.cycle_day.shape
    out = np.full(n, np.nan)
    open_ = np.ones(n, dtype=bool)
    for c in range(1, cycles):
        day = result.cycle_day[:, c]
        due = open_ & (~np.isfinite(day) | (day >= entry - 1e-9))
        out[due] = result.delay[due, c]
        open_ &= ~due
    return out


def _merged(passes: list, n: int) -> dict:
    """The treatment records of each patient's last pass (:func:`simulate_course_arm`: a
    pass per cycle re-simulates the patients still on chemotherapy)."""
    final = np.full(n, -1)
    for number, (rows, _) in enumerate(passes):
        final[rows] = number
    first_arm = passes[0][1]
    merged = {"doses_given": np.zeros(n, dtype=int), "rescues": np.zeros(n),
              "rescue_times": np.full((n, first_arm.extra["rescue_times"].shape[1]), np.nan),
              "titrated": np.zeros(n, dtype=bool), "holds": np.zeros(n, dtype=int),
              "dose_changes": np.zeros(n, dtype=int), "stop_day": np.full(n, np.nan),
              "dose_intensity": np.full(n, np.nan),
              "dose_amounts": np.zeros((n, first_arm.extra["dose_amounts"].shape[1])),
              "total_dose": {key: np.zeros(n) for key in first_arm.extra["total_dose"]},
              "dose_days": first_arm.extra["dose_days"],
              "dose_drugs": first_arm.extra["dose_drugs"]}
    logs = []
    for number, (rows, arm) in enumerate(passes):
        own = final[rows] == number
        target = rows[own]
        merged["doses_given"][target] = arm.doses_given[own]
        for key in ("rescues", "rescue_times", "titrated", "holds", "dose_changes",
                    "stop_day", "dose_intensity", "dose_amounts"):
            merged[key][target] = arm.extra[key][own]
        for key, values in arm.extra["total_dose"].items():
            merged["total_dose"][key][target] = values[own]
        log = arm.extra["events"]
        keep = own[log["patient"]] if len(log["patient"]) else np.zeros(0, dtype=bool)
        logs.append({k: (rows[v[keep]] if k == "patient" else v[keep]) for k, v in
                     log.items()})
    events = {k: np.concatenate([log[k] for log in logs]) for k in logs[0]}
    order = np.lexsort((events["day"], events["patient"]))
    merged["events"] = {k: v[order] for k, v in events.items()}
    return merged


#: count levels (10^9/L) of the per-cycle days-below columns: the CIT grades' limits and the
#: usual transfusion trigger (a self-controlled study's "duration of thrombocytopenia" or
#: "days below 20" in a cycle, read with data_cycle; Vadhan-Raj 2000 reports days below 20)
CYCLE_LEVELS = (20, 50, 75, 100)

#: (column, unit, description) of the per-patient course columns of a trial on a
#: chemotherapy course (``{c}``: each cycle number); flags are 0/1
COURSE_COLUMNS = (
    ("cycles_given", "cycles", "chemotherapy cycles given"),
    ("abandoned", "flag", "chemotherapy abandoned: a cycle still delayed at give_up_after_days"),
    ("delayed_cycles", "cycles", "cycles given late (a delay of at least late_from_days, "
     "default any) or never given after a delay"),
    ("dose_reduced", "flag", "a cycle was given at a reduced dose"),
    ("relative_dose_intensity", "fraction", "chemotherapy dose intensity delivered over the "
     "planned course, relative to the plan: (sum of the cycles' dose fractions / cycles "
     "planned) x (planned span / actual span), the planned span the cycles' planned "
     "lengths summed (cycles x cycle_days), the actual from cycle 1 to the last cycle given "
     "plus that cycle's planned length, never below the planned "
     "(a cycle not given counts as dose 0; 1: every cycle on time at full dose)"),
    ("all_cycles_on_time", "flag", "every planned cycle given on time (on its planned day, "
     "or less than late_from_days after it)"),
    ("chemotherapy_resumed", "flag", "a cycle was given after enrolment"),
    ("later_cycles_on_time", "flag", "chemotherapy resumed after enrolment, then every later "
     "cycle of the course given on time and none abandoned: no further thrombocytopenic "
     "delay (\"no CIT episode after resuming\"); false when it never resumed"),
    ("days_to_next_cycle", "days", "days from enrolment to the next cycle given (censored at "
     "the end of follow-up when none: see chemotherapy_resumed)"),
    ("course_nadir", "x10^9/L", "lowest count over the whole course, every cycle from cycle "
     "1 (before enrolment too; nadir is the treated cycle's)"),
    ("treated_cycle", "cycle", "the cycle in which treatment started (the latest given on or "
     "before the first treatment morning; a patient enrolled while a cycle is held: the "
     "cycle before it)"),
    ("support_doses", "doses", "support doses given over the course (each drug's dose on "
     "each day counts one; none after a support stop, none in a cycle not given; 0 without "
     "support)"),
    ("supported_cycles", "cycles", "cycles in which at least one support dose was given (a "
     "support arm with support_start_below: the cycles whose count fell below it on a "
     "support morning; 0 without support)"),
    ("next_cycle_delay_days", "days", "delay of the next cycle at enrolment (the first not yet "
     "given on the enrolment day: a held cycle is this one), days beyond its planned day: "
     "0 on time, inf never given (abandoned); empty when every cycle was given before"),
    ("cycle{c}_day", "days", "day cycle {c} was given, from cycle 1 (empty: never)"),
    ("cycle{c}_delay_days", "days", "cycle {c}'s delay (inf: never given after a delay)"),
    ("cycle{c}_dose", "fraction", "cycle {c}'s chemotherapy dose as a fraction of the full "
     "dose"),
    ("cycle{c}_nadir", "x10^9/L", "lowest count from cycle {c} to the next cycle (after the "
     "last cycle: to the patient's end of follow-up)"),
    ("cycle{c}_peak", "x10^9/L", "highest count from cycle {c}'s nadir to the next cycle or "
     "the patient's end of follow-up (the cycle's recovery peak; empty when the lowest count "
     "is the window's last: still falling, no recovery seen)"),
    ("cycle{c}_on_time", "flag", "cycle {c} given on time (on its planned day, or less than "
     "late_from_days after it)"),
    ("cycle{c}_transfused", "flag", "a rescue transfusion from cycle {c}'s day to the next "
     "cycle's (after the last cycle: to the patient's end of follow-up, as cycle {c}_nadir); "
     "0 when cycle {c} was not given"),
    *((f"cycle{{c}}_days_below_{level}", "days", f"days with the count below {level} from "
       f"cycle {{c}} to the next cycle (the course's output grid)") for level in CYCLE_LEVELS),
    *((f"cycle{{c}}_recovery_day_{level}", "days", f"days from cycle {{c}}'s first day to the "
       f"first count at or above {level} after the cycle's nadir, for a patient whose count "
       f"fell below {level} in the cycle (empty for the others, and when the count was not "
       f"back by the next cycle or the end of follow-up): a self-controlled study's "
       f"'recovery time'") for level in RECOVERY_LEVELS),
    ("cycle{c}_auc_21_days", "x10^9/L x day", "area under the count over 21 days from "
     "cycle {c}'s first day (empty: not given, or follow-up ends earlier)"))


#: flags counted from enrolment: the j-th cycle given after it (j = 1 .. cycles - 1)
AFTER_ENTRY_COLUMN = ("after_entry_cycle{j}_on_time", "flag",
                      "of the cycles given after enrolment, number {j} was on time (on its "
                      "planned day, or less than late_from_days after it); false when fewer "
                      "than {j} were given after enrolment")


def course_columns(cycles: int) -> list[tuple[str, str, str]]:
    """:data:`COURSE_COLUMNS` with ``{c}`` expanded for ``cycles`` cycles, in the order of
    :func:`course_endpoints` (patients.csv): the course-wide columns, cycle by cycle, then
    the cycles counted from enrolment (:data:`AFTER_ENTRY_COLUMN`)."""
    per_cycle = [column for column in COURSE_COLUMNS if "{c}" in column[0]]
    rows = [column for column in COURSE_COLUMNS if "{c}" not in column[0]]
    for c in range(1, cycles + 1):
        rows += [tuple(text.format(c=c) for text in column) for column in per_cycle]
    for j in range(1, cycles):
        rows.append(tuple(text.format(j=j) for text in AFTER_ENTRY_COLUMN))
    return rows


def relative_dose_intensity(result: CourseResult) -> np.ndarray:
    """Per patient, the chemotherapy dose intensity delivered over the planned course
    relative to the planned one (Hryniuk's dose intensity, over the planned course):
    ``(sum of dose fractions / cycles) x planned span / max(actual span, planned span)``,
    the planned span the cycles' planned lengths summed (``cycles x cycle_days``), the
    actual one from cycle 1 to the last cycle given plus that cycle's planned length.
    Delays lower it through the span, reductions through the doses, cycles never given
    (abandoned) through the doses (0), and stopping early never raises it (the span is at
    least the planned one)."""
    course = result.course
    given = np.isfinite(result.cycle_day)
    doses = np.where(given, np.nan_to_num(result.dose, nan=1.0), 0.0)
    last = np.where(given, result.cycle_day, -np.inf).max(axis=1)
    if isinstance(course.cycle_days, tuple):  # each cycle's own planned length
        planned = float(np.sum(course.lengths))
        index = np.where(given, np.arange(course.cycles)[None, :], -1).max(axis=1)
        length = course.lengths[np.maximum(index, 0)]
    else:
        planned = course.cycles * course.cycle_days
        length = course.cycle_days
    span = np.maximum(last - result.cycle_day[:, 0] + length, planned)
    return doses.sum(axis=1) / course.cycles * planned / span


def course_endpoints(arm: ArmResult) -> dict:
    """The per-patient course columns (:data:`COURSE_COLUMNS`) of an arm from
    :func:`simulate_course_arm`."""
    result: CourseResult = arm.extra["course"]
    cycles = result.course.cycles
    given = np.isfinite(result.cycle_day)
    late = result.course.late(result.delay[:, 1:])
    reduced = np.nan_to_num(result.dose, nan=1.0) < 1.0
    after = np.where(given & (result.cycle_day > arm.entry_time[:, None] + 1e-9),
                     result.cycle_day, np.inf).min(axis=1)
    resumed = np.isfinite(after)
    columns = {"cycles_given": result.cycles_given, "abandoned": result.abandoned,
               "delayed_cycles": late.sum(axis=1), "dose_reduced": reduced.any(axis=1),
               "relative_dose_intensity": relative_dose_intensity(result),
               "all_cycles_on_time": given.all(axis=1) & ~late.any(axis=1),
               "chemotherapy_resumed": resumed,
               "later_cycles_on_time": resumed,   # set below, after the cycles
               "days_to_next_cycle": np.where(resumed, after, result.times[-1])
               - arm.entry_time,
               "course_nadir": result.platelets.min(axis=1),
               "treated_cycle": np.sum(given & (result.cycle_day
                                                <= arm.start_time[:, None] + 1e-9), axis=1),
               "support_doses": (np.zeros(arm.n, dtype=int) if result.support_doses is None
                                 else result.support_doses),
               "supported_cycles": (np.zeros(arm.n, dtype=int)
                                    if result.supported_cycles is None
                                    else result.supported_cycles),
               "next_cycle_delay_days": next_cycle_delay(result, arm.entry_time)}
    rescue_times = np.asarray(arm.extra.get("rescue_times", np.full((arm.n, 0), np.nan)))
    for c in range(1, cycles + 1):
        readings = result.readings(c, CYCLE_LEVELS, RECOVERY_LEVELS)  # one pass
        begin, end = result.window_days(c)  # the window of the cycle's other readings
        with np.errstate(invalid="ignore"):
            rescued = (rescue_times >= begin[:, None]) & (rescue_times < end[:, None])
        columns.update({f"cycle{c}_day": result.cycle_day[:, c - 1],
                        f"cycle{c}_delay_days": result.delay[:, c - 1],
                        f"cycle{c}_dose": result.dose[:, c - 1],
                        f"cycle{c}_nadir": readings["nadir"],
                        f"cycle{c}_peak": readings["peak"],
                        f"cycle{c}_on_time": given[:, c - 1]
                        & ~result.course.late(result.delay[:, c - 1]),
                        f"cycle{c}_transfused": rescued.any(axis=1) & given[:, c - 1],
                        **{f"cycle{c}_days_below_{level}": readings[level]
                           for level in CYCLE_LEVELS},
                        **{f"cycle{c}_recovery_day_{level}": readings[("recovery", level)]
                           for level in RECOVERY_LEVELS},
                        f"cycle{c}_auc_21_days": result.auc(c)})
    # cycles counted from enrolment ("the two cycles after resumption on schedule"): the
    # j-th cycle given after the entry day, in order of the day given
    after_entry = given & (result.cycle_day > arm.entry_time[:, None] + 1e-9)
    on_time = given & ~result.course.late(result.delay)
    rank = np.cumsum(after_entry, axis=1)  # 1 at the first cycle after entry, 2 at the next
    for j in range(1, cycles):
        columns[f"after_entry_cycle{j}_on_time"] = (after_entry & (rank == j)
                                                    & on_time).any(axis=1)
    # every cycle after the resumed one on time and none abandoned (Wilkins 2022's "no CIT
    # episode" over a year of romiplostim; a user test listed 16 flags by hand)
    late_later = (after_entry & (rank >= 2) & ~on_time).any(axis=1)
    columns["later_cycles_on_time"] = resumed & ~result.abandoned & ~late_later
    return columns
