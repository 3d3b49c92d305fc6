"""Simulate a treatment arm for a virtual cohort: chemotherapy, entry rule, daily treatment
with a stop rule.

Each virtual patient receives the arm's chemotherapy at time 0. Treatment starts
``start_delay`` days after the patient's platelet count first crosses below ``entry_below``
(the crossing time is interpolated, so it moves smoothly with the parameters; the default
delay of one day stands for "treated from the next morning"); without an entry threshold
everyone starts ``start_delay`` days after time 0. With ``entry_day`` the count is judged on
that cycle day only (for example "PLT < 100 on day 21", a cycle delayed by thrombocytopenia)
and patients below the threshold then are enrolled on that day. With ``screen_every_days``
the count is judged at routine counts (every ``screen_every_days`` from ``screen_from_day``)
and a patient is enrolled at the first below the threshold, as a clinic finds it, rather
than at the crossing itself. An empty ``chemotherapy``
gives none. The treatment doses are given
once daily for at most ``max_days`` days and stop after the first morning count at or above
``stop_at`` (or a rise of at least ``stop_rise`` over the count at entry). A patient whose
count never crosses the entry threshold is not eligible and is left out of the arm.

Two integrations per arm, both batched over subjects: (1) chemotherapy alone, which gives
each patient's entry time; (2) chemotherapy plus the full course of daily doses at each
patient's own times. A dose cannot change the counts before it, so the morning counts of
pass 2 decide the stop day exactly; doses after it are set to zero (the trajectory after
the stop is therefore that of a third pass, done by the same call on the doses kept).

Dose rules (:class:`DoseRule`: stop, hold, resume, increase, decrease) are judged at the
visits every ``visit_every_days`` from the start of treatment, in the order written, on the
count at each visit, and act from the next dose; ``stop_at``, ``stop_rise`` and
:class:`Titration` are rules of the same engine judged each treatment morning
(:func:`resolve_treatment`, :func:`_decide`). A treatment dose with its own days
("rhTPO 15000 U d2,4,6,9") is given on those days counted from the start of treatment; a
bare dose each day for ``max_days`` days. Each drug's doses are planned separately (a
two-drug arm's rules act on the right drug's events).

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

from plateletpd.dosing.schedules import EventSchedule, expand, target_lookup

from plateletpd.dosing.regimens import as_regimen
from plateletpd.errors import PlateletPDError, RegimenError, closest
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
    most ``max_per_patient`` times. ``at_risk_below`` and ``at_risk_share``: a share of the
    patients (those with fever, bleeding or another risk, the usual two-trigger protocol
    "below 10, or below 20 with risk") is transfused below the higher level instead; which
    patients is drawn from the trial's seed (``study.trial._rescue_levels``)."""

    below: float
    dose: str = "platelet_transfusion 1 dose"
    max_per_patient: int = 10
    at_risk_below: float | None = None
    at_risk_share: float | None = None

    def problems(self) -> list[str]:
        problems = [] if self.below > 0 else [
            f"rescue below must be a positive count, got {self.below}"]
        if (self.at_risk_below is None) != (self.at_risk_share is None):
            problems.append("rescue at_risk_below and at_risk_share go together: the level "
                            "and the share of patients transfused at it, e.g. { below = 10, "
                            "at_risk_below = 20, at_risk_share = 0.25 }")
        elif self.at_risk_below is not None:
            if not self.at_risk_below > self.below:
                problems.append(f"rescue at_risk_below ({self.at_risk_below:g}) must be above "
                                f"below ({self.below:g}): the patients at risk are "
                                f"transfused earlier")
            if not 0 < self.at_risk_share <= 1:
                problems.append(f"rescue at_risk_share must be a share of patients in (0, 1], "
                                f"got {self.at_risk_share!r}")
        return problems

    def levels(self, uniforms: np.ndarray) -> np.ndarray:
        """Each patient's trigger from a uniform draw per patient."""
        if self.at_risk_below is None:
            return np.full(len(uniforms), float(self.below))
        return np.where(uniforms < self.at_risk_share, self.at_risk_below, self.below)


#: what a dose rule compares: "above" is at or above its level, "below" is under it
WHEN = ("above", "below")
#: what a dose rule does (see :class:`DoseRule`)
ACTIONS = ("stop", "hold", "resume", "increase", "decrease")


@dataclass(frozen=True)
class DoseRule:
    """Judged at every visit (every ``visit_every_days`` from the start of treatment) on the
    count then: when it is ``above`` (at or above) or ``below`` ``level``, ``action`` acts
    from the next dose on (a dose at the visit's own time comes after the count):

    * ``stop``: ``drug`` (every drug when empty) is stopped for good;
    * ``hold``: ``drug`` (or every drug) is paused until a ``resume`` rule fires;
    * ``resume``: a held drug (or every held drug) is given again at its current dose;
    * ``increase`` / ``decrease``: ``drug``'s dose moves by ``step`` (e.g. "2.5 mg"), never
      above ``maximum`` (required for increase) nor below ``minimum`` (default one step).

    Rules are applied in the order written, so a later rule sees the state an earlier one
    left at the same visit. The day-0 visit (the baseline, before the first dose) is judged
    too; ``from_day`` (days from day 0) leaves the visits before it out ("the dose may be
    raised after 2 weeks": ``from_day = 14``; ``from_day = 7``: not at baseline) and
    ``to_day`` those after it ("titrated until week 24, then tapered": ``to_day = 168``)."""

    when: str
    level: float
    action: str
    drug: str = ""
    step: str = ""
    minimum: str = ""
    maximum: str = ""
    from_day: float = 0.0
    to_day: float | None = None   # the last visit day judged (None: to the end)

    def problems(self) -> list[str]:
        """What is wrong with the rule, as sentences (empty when it is sound)."""
        problems = []
        if self.when not in WHEN:
            problems.append(f"when must be one of {', '.join(map(repr, WHEN))}, got "
                            f"{self.when!r}")
        if self.action not in ACTIONS:
            problems.append(f"action must be one of {', '.join(map(repr, ACTIONS))}, got "
                            f"{self.action!r}")
        if not (isinstance(self.level, (int, float)) and math.isfinite(self.level)
                and self.level > 0):
            problems.append(f"level must be a positive count (x10^9/L), got {self.level!r}")
        if not (isinstance(self.from_day, (int, float)) and math.isfinite(self.from_day)
                and self.from_day >= 0):
            problems.append(f"from_day must be a number of days >= 0, got {self.from_day!r}")
        elif self.to_day is not None and not (
                isinstance(self.to_day, (int, float)) and self.to_day >= self.from_day):
            problems.append(f"to_day must be a number of days at or after from_day "
                            f"({self.from_day:g}), got {self.to_day!r}")
        stepping = self.action in ("increase", "decrease")
        if stepping and not (self.drug and self.step):
            problems.append(f"an {self.action} rule needs drug and step, e.g. {{ when = "
                            f"\"below\", level = 50, action = \"increase\", drug = "
                            f"\"hetrombopag\", step = \"2.5 mg\", max = \"7.5 mg\" }}")
        if self.action == "increase" and not self.maximum:
            problems.append("an increase rule needs max, the highest dose (e.g. max = "
                            "\"7.5 mg\")")
        extra = [key for key, value in (("step", self.step), ("min", self.minimum),
                                        ("max", self.maximum)) if value]
        if extra and not stepping and self.action in ACTIONS:
            problems.append(f"{', '.join(extra)} only apply to increase and decrease rules; "
                            f"remove them from the {self.action} rule")
        return problems


@dataclass(frozen=True)
class ArmDesign:
    """How one arm treats its patients (see the module text for the rules)."""

    name: str
    chemotherapy: str = "chemotherapy 1 dose d1"  # "" for none (healthy volunteers)
    treatment: tuple[str, ...] = ()          # doses given each treatment day, e.g. "rhTPO 15000 U"
    entry_below: float | None = 75.0         # x10^9/L; None: everyone starts at start_delay
    entry_day: float | None = None           # judge entry on this cycle day only (days)
    entry_between: tuple[float, float] | None = None  # enrol only a count at entry in [a, b)
    screen_every_days: float | None = None   # judge entry at routine counts this far apart
    screen_from_day: float | None = None     # ... the first of them (default: one interval)
    start_delay: float = 1.0                 # days after the entry crossing
    stop_at: float | None = 100.0            # x10^9/L
    stop_rise: float | None = None           # x10^9/L above the count at entry
    stop_after_fall: bool = False            # stop_at only after a morning below it
    max_days: int = 14
    min_days: int = 0                        # treatment days given whatever the stop rules
    follow_up_days: float = 35.0
    points_per_day: int = 24
    smooth_stop: bool = False                # fitting: doses weighted by P(not yet stopped)
    titrations: tuple[Titration, ...] = ()
    rescue: Rescue | None = None
    rules: tuple[DoseRule, ...] = ()          # judged at visits every visit_every_days
    visit_every_days: float = 1.0
    # chemotherapy courses (plateletpd.study.cycles): doses given with the cycles listed
    support: tuple[str, ...] = ()             # days counted from each cycle's first day
    support_cycles: tuple[int, ...] = ()      # 1-based cycles that get the support doses
    support_stop_at: float | None = None      # a cycle's support stops at this count (10^9/L)
    support_stop_after_fall: bool = False     # ... only after a support morning below it
    support_min_days: int = 0                 # ... never in a cycle's first support days
    support_start_below: float | None = None  # a cycle's support starts below this count
    support_max_days: int = 0                 # ... for at most this many days (0: no cap)
    stop_at_next_cycle: bool = False          # a course: no treatment dose from the next cycle
    judged_on_course: bool = False            # a course's rules enrol (entry_between then
    #                                           reads the count on the enrolment day)
    # this arm's patients' own typical values, (name, value) pairs: a population that
    # differs by arm (a non-randomised study's groups; trial.py applies them to the cohort)
    typical: tuple[tuple[str, float], ...] = ()

    def __post_init__(self):
        problems = []
        if not self.name:
            problems.append("an arm needs a name")
        if not (isinstance(self.max_days, int) and 0 <= self.max_days <= 365):
            problems.append(f"max_days must be a whole number of days, got {self.max_days!r}")
        elif not (isinstance(self.min_days, int) and 0 <= self.min_days <= self.max_days):
            problems.append(f"min_days must be a whole number of days from 0 to max_days "
                            f"({self.max_days}), got {self.min_days!r}")
        for label in ("start_delay", "follow_up_days") + (
                ("entry_below",) if self.entry_below is not None else ()):
            value = getattr(self, label)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                problems.append(f"{label} must be a number >= 0, got {value!r}")
        for label in ("stop_at", "stop_rise"):
            value = getattr(self, label)
            if value is not None and not (isinstance(value, (int, float)) and value > 0):
                problems.append(f"{label} must be a positive number or absent, got {value!r}")
        if self.stop_after_fall and self.stop_at is None:
            problems.append("stop_after_fall qualifies stop_at: give the level too, e.g. "
                            "stop_at = 100")
        if self.screen_every_days is not None:
            if not (isinstance(self.screen_every_days, (int, float))
                    and math.isfinite(self.screen_every_days) and self.screen_every_days > 0):
                problems.append(f"screen_every_days must be a positive number of days, got "
                                f"{self.screen_every_days!r}")
            elif self.entry_day is not None:
                problems.append("entry_day judges one day, screen_every_days a series of "
                                "routine counts: give one of them")
            elif self.entry_below is None:
                problems.append("screen_every_days judges entry_below at routine counts: "
                                "give entry_below too, or remove screen_every_days")
            elif self.screen_days().size == 0:
                problems.append(f"no routine count from screen_from_day = "
                                f"{self.screen_from_day:g} falls within follow_up_days = "
                                f"{self.follow_up_days:g}")
        elif self.screen_from_day is not None:
            problems.append("screen_from_day is the first of the routine counts: give "
                            "screen_every_days too (e.g. 3 for counts every third day)")
        problems += self._entry_band_problems()
        for rule in self.titrations:
            if not (isinstance(rule.day, int) and 0 < rule.day < max(self.max_days, 1)):
                problems.append(f"a titration day must be a whole treatment day within "
                                f"1..{self.max_days - 1}, got {rule.day!r}")
        if self.rescue is not None:
            problems += self.rescue.problems()
        for number, rule in enumerate(self.rules, start=1):
            problems += [f"dose rule {number}: {problem}" for problem in rule.problems()]
        if not (isinstance(self.visit_every_days, (int, float))
                and math.isfinite(self.visit_every_days) and self.visit_every_days > 0):
            problems.append(f"visit_every_days must be a positive number of days, got "
                            f"{self.visit_every_days!r}")
        if self.smooth_stop and (self.titrations or self.rescue or self.rules):
            problems.append("smooth_stop (fitting) does not combine with titration, rescue "
                            "or dose rules")
        if bool(self.support) != bool(self.support_cycles):
            problems.append("support doses and support_cycles go together: list the doses "
                            "(e.g. support = [\"hetrombopag 7.5 mg qd d2-11\"]) and the "
                            "cycles that get them (e.g. support_cycles = [2, 3, 4])")
        if self.support_stop_at is not None and not (
                isinstance(self.support_stop_at, (int, float))
                and math.isfinite(self.support_stop_at) and self.support_stop_at > 0):
            problems.append(f"support_stop_at must be a positive count or absent, got "
                            f"{self.support_stop_at!r}")
        if self.support_stop_after_fall and self.support_stop_at is None:
            problems.append("support_stop_after_fall qualifies support_stop_at: give the "
                            "level too, e.g. support_stop_at = 100")
        if not (isinstance(self.support_min_days, int) and self.support_min_days >= 0):
            problems.append(f"support_min_days must be a whole number of days >= 0, got "
                            f"{self.support_min_days!r}")
        elif self.support_min_days and self.support_stop_at is None:
            problems.append("support_min_days qualifies support_stop_at (\"7 to 14 days or "
                            "until PLT >= 100\": support_min_days = 7, support_stop_at = 100)"
                            ": give the level too")
        if self.min_days and not self.treatment and self.support:
            problems.append("min_days applies to the treatment doses and the arm has none; "
                            "support doses are given on their own days: for \"at least 7 "
                            "days of support\" write support_min_days = 7 with "
                            "support_stop_at")
        if self.support_stop_at is not None and not self.support:
            problems.append("support_stop_at stops support doses: give them with support "
                            "and support_cycles, or remove support_stop_at")
        if self.support_start_below is not None:
            if not (isinstance(self.support_start_below, (int, float))
                    and not isinstance(self.support_start_below, bool)
                    and math.isfinite(self.support_start_below)
                    and self.support_start_below > 0):
                problems.append(f"support_start_below must be a positive count or absent, "
                                f"got {self.support_start_below!r}")
            elif not self.support:
                problems.append("support_start_below starts support doses: give them with "
                                "support (the days they may be given, e.g. [\"rhTPO 300 "
                                "U/kg qd d2-21\"]) and support_cycles, or remove "
                                "support_start_below")
            elif (self.support_stop_at is not None
                  and self.support_stop_at <= self.support_start_below):
                problems.append(f"support_stop_at ({self.support_stop_at:g}) must be above "
                                f"support_start_below ({self.support_start_below:g}): support "
                                f"starts below one level and stops at a higher one (\"when "
                                f"PLT < 75, until PLT >= 100\")")
        if not (isinstance(self.support_max_days, int) and not isinstance(
                self.support_max_days, bool) and self.support_max_days >= 0):
            problems.append(f"support_max_days must be a whole number of days >= 0, got "
                            f"{self.support_max_days!r}")
        elif self.support_max_days and self.support_start_below is None:
            problems.append("support_max_days counts from a start on the count (\"at most 14 "
                            "days from PLT < 75\": support_start_below = 75, "
                            "support_max_days = 14); with support from a fixed day, give "
                            "the days in the support doses (e.g. d2-15)")
        elif self.support_max_days and self.support_min_days > self.support_max_days:
            problems.append(f"support_min_days ({self.support_min_days}) cannot exceed "
                            f"support_max_days ({self.support_max_days})")
        if any(not isinstance(c, int) or isinstance(c, bool) or c < 1
               for c in self.support_cycles):
            problems.append(f"support_cycles must be whole cycle numbers from 1, got "
                            f"{list(self.support_cycles)!r}")
        if self.smooth_stop and any(own_schedule(t) or per_day(t) for t in self.treatment):
            problems.append("smooth_stop (fitting) needs one dose a day: give each treatment "
                            "dose without days or a frequency, e.g. \"rhTPO 15000 U\"")
        if problems:
            raise PlateletPDError(f"arm {self.name!r}: " + "; ".join(problems))
        object.__setattr__(self, "treatment", tuple(self.treatment))
        if self.entry_between is not None:
            object.__setattr__(self, "entry_between", tuple(map(float, self.entry_between)))
        object.__setattr__(self, "titrations", tuple(self.titrations))
        object.__setattr__(self, "rules", tuple(self.rules))
        object.__setattr__(self, "support", tuple(self.support))
        object.__setattr__(self, "support_cycles", tuple(self.support_cycles))

    def _entry_band_problems(self) -> list[str]:
        """``entry_between = (low, high)``: the count that enrols a patient lies in [low,
        high), the groups of "rhTPO started at PLT <= 25 / 25-50 / 50-75" among patients
        all enrolled by one rule. A course's rules set the enrolment day (its count is read
        from the screening course); one cycle judges the count that enrols, which must then
        be a routine count or an ``entry_day`` count (at the crossing it is entry_below)."""
        band = self.entry_between
        if band is None:
            return []
        example = ("e.g. entry_between = [25, 50] for \"PLT 25-50 at the start\" among "
                   "patients enrolled at a count below 75")
        if not (isinstance(band, (tuple, list)) and len(band) == 2 and all(
                isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
                for x in band) and 0 <= band[0] < band[1]):
            return [f"entry_between must be two counts, the lower first (10^9/L), {example}; "
                    f"got {band!r}"]
        if self.judged_on_course:
            return []
        if self.entry_below is None:
            return [f"entry_between groups patients by the count that enrolled them, and this "
                    f"arm has no entry rule (entry_below = false): give entry_below too, "
                    f"{example}"]
        if band[0] >= self.entry_below:
            return [f"entry_between starts at {band[0]:g}, but every count at entry is below "
                    f"entry_below ({self.entry_below:g}): nobody could enrol"]
        if self.entry_day is None and self.screen_every_days is None:
            return [f"entry_between groups patients by the count that enrolled them, and "
                    f"without routine counts a patient enrols at the moment the count crosses "
                    f"entry_below, so every count at entry is {self.entry_below:g}: give "
                    f"[enrolment] screen_every_days (e.g. 3: a patient first found at 20 on "
                    f"the way down is in the group [0, 25]) or entry_day"]
        return []

    @property
    def drugs(self) -> frozenset[str]:
        """The drugs the arm gives, by the names its regimens use (treatment, support and
        titration doses; not its chemotherapy nor its rescue transfusion): the empty set
        for an untreated, placebo or observation arm. What a validation record's rows are
        matched on (:func:`plateletpd.study.validation_results.track_record`)."""
        texts = [*(text if per_day(text) is None else f"{text} d1" for text in self.treatment),
                 *self.support, *(f"{rule.dose} d1" for rule in self.titrations)]
        given = {dose.drug for text in texts for dose in as_regimen(text)}
        chemotherapy = {dose.drug for dose in as_regimen(self.chemotherapy)} \
            if self.chemotherapy else set()
        return frozenset(given - chemotherapy)

    def screen_days(self) -> np.ndarray:
        """The days after chemotherapy of the routine counts that judge entry
        (``screen_every_days`` apart from ``screen_from_day``, within the follow-up)."""
        every = self.screen_every_days
        first = every if self.screen_from_day is None else self.screen_from_day
        return np.arange(first, self.follow_up_days + 1e-9, every)


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
    if len(courses) == 0:  # an arm nobody entered: nothing to read
        return np.empty(when.shape)
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
    """Area under each course from its ``start`` over ``length`` days (trapezoids); NaN for
    a course that ends before ``start + length`` (a truncated area is not that area)."""
    grid = np.asarray(start, dtype=float)[:, None] + np.linspace(0.0, length, points)[None, :]
    return np.trapezoid(values_at(times, courses, grid, outside=np.nan),
                        dx=length / (points - 1), axis=1)


def in_band(times: np.ndarray, courses: np.ndarray, when: np.ndarray,
            band: tuple[float, float]) -> np.ndarray:
    """Whether each course's count at its own time ``when`` (NaN: never) lies in
    [band[0], band[1])."""
    found = np.isfinite(when)
    count = values_at(times, courses, np.where(found, when, times[0]))
    return found & (count >= band[0]) & (count < band[1])


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


def first_count_below(times: np.ndarray, platelets: np.ndarray, days: np.ndarray,
                      level: float) -> np.ndarray:
    """Per patient (rows of ``platelets`` on ``times``), the first of ``days`` whose count
    is below ``level`` (NaN where none is)."""
    days = np.asarray(days, dtype=float)
    counts = values_at(times, platelets, np.tile(days, (len(platelets), 1)))
    below = counts.reshape(len(platelets), len(days)) < level
    found = below.any(axis=1)
    return np.where(found, days[np.argmax(below, axis=1)], np.nan)


def _per_subject(amounts: np.ndarray, n: int) -> np.ndarray:
    """Amounts as a writable (subjects, events) array (one row is shared by all)."""
    amounts = np.asarray(amounts, dtype=float)
    return np.array(np.broadcast_to(amounts, (n, amounts.shape[-1])))


def simulate_treatment_arm(model: Model, design: ArmDesign, parameter_vectors: np.ndarray,
                           solver=None, measure=None, rescue_below=None) -> ArmResult:
    """Enrol the cohort whose parameter vectors are the rows of ``parameter_vectors`` (see
    :meth:`Model.parameter_vector`) and treat it under ``design``'s rules. ``measure``
    (optional) gives, for the enrolled rows, the function that turns their true counts at
    days from the start of treatment into measured ones: dose rules then judge those."""
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
    elif design.screen_every_days is not None:  # "PLT < 75 at a routine count"
        entry = first_count_below(times, platelets, design.screen_days(), design.entry_below)
    else:
        entry = crossing_time(times, platelets, design.entry_below)
    if design.entry_between is not None:  # "started at PLT 25-50": the count that enrols
        entry = np.where(in_band(times, platelets, entry, design.entry_between), entry, np.nan)
    eligible = np.flatnonzero(np.isfinite(entry) & (untreated.status == Status.SUCCESS))
    entry, start = entry[eligible], entry[eligible] + design.start_delay
    vectors = vectors[eligible]
    covariates = {k: v[eligible] for k, v in covariates.items()}
    nothing_to_give = not design.rescue and (design.max_days == 0 or not design.treatment) \
        and not any(map(own_schedule, design.treatment))
    if nothing_to_give or eligible.size == 0:
        treatment = resolve_treatment(model, design)
        return ArmResult(design, times, platelets[eligible], eligible, entry, start,
                         np.zeros(eligible.size, dtype=int), untreated.status[eligible],
                         len(untreated.status), {"rescues": np.zeros(eligible.size), **treatment_records(
                             treatment, np.zeros((eligible.size, treatment.schedule.n_events)),
                             decision_log(treatment, []), eligible.size)})

    if design.smooth_stop:
        return _smooth_arm(model, design, vectors, covariates, chemotherapy, times, index,
                           solver, eligible, entry, start, len(untreated.status))
    return treat_by_rules(model, design, vectors, covariates, chemotherapy, times, index,
                      solver, eligible, entry, start, len(untreated.status),
                      measure(eligible) if measure else None,
                      rescue_below=None if rescue_below is None else rescue_below[eligible])


def _course(model: Model, doses: Sequence[str], days: np.ndarray) -> EventSchedule:
    """Each dose text given at each of ``days`` (relative times, days), drug-major order."""
    if not len(doses):
        return expand(as_regimen(None), model.dose_targets)
    times = ",".join(str(float(d)) for d in days)
    return expand(as_regimen(" + ".join(f"{dose} t={times}" for dose in doses)),
                  model.dose_targets)


def per_day(text: str) -> tuple[str, tuple[float, ...]] | None:
    """A treatment dose with a frequency and no days ("rhIL-11 2 mg q12h", "... bid"):
    (the dose without its frequency, the times within each treatment day), given on every
    treatment day; None for any other text. A user test (2026-12-05) followed the parser's
    hint to "q12h x2", an own schedule of 2 doses in all, and got 4 mg where 14 days of
    twice-daily doses were meant."""
    try:
        as_regimen(text)
        return None  # a bare dose, or one with its own days or count
    except RegimenError:
        pass
    try:
        as_regimen(f"{text} t=0")
        return None  # a bare dose
    except RegimenError:
        pass
    try:
        regimen = as_regimen(f"{text} d1")
    except RegimenError:
        return None
    if len(regimen) != 1:
        return None
    dose = regimen.doses[0]
    if dose.route != "bolus" or dose.duration or len(dose.times) < 2 \
            or max(dose.times) >= 1.0:
        return None
    bare = f"{dose.drug} {dose.amount:.17g} {dose.unit}"
    as_regimen(f"{bare} t=0")  # the bare dose must read back
    return bare, tuple(float(t) for t in dose.times)


def own_schedule(text: str) -> bool:
    """Whether a treatment dose says its own days ("rhTPO 15000 U d2,4,6,9", counted from
    the start of treatment); a bare dose ("rhTPO 15000 U") is given each treatment day for
    ``max_days`` days, a dose with a frequency and no days ("rhIL-11 2 mg q12h") that often
    on each treatment day (:func:`per_day`). A text that cannot be read raises its
    :class:`RegimenError`."""
    if per_day(text) is not None:
        return False
    try:
        as_regimen(f"{text} t=0")
        return False
    except RegimenError:
        as_regimen(text)
        return True


@dataclass(frozen=True)
class _Rule:
    """A rule resolved against the arm's treatment: judged at the decision points ``at``
    (a mask over :attr:`Treatment.grid`) on the count (or its rise over the count at the
    start), acting on treatment entry ``drug`` (-1: every entry)."""

    action: str                 # stop, hold, resume, increase, decrease, set (titration)
    at: np.ndarray
    level: float
    above: bool                 # at or above ``level`` (else below it)
    drug: int = -1
    ratio: float = 1.0          # set: new dose / starting dose
    steps: tuple[int, int] = (0, 0)  # increase/decrease: fewest and most steps from the start
    rise: bool = False          # stop_rise: the level is a rise over the count at the start
    visit: bool = False         # judged only at visits inside the follow-up
    # stop_after_fall: fires only after a morning (``watch``) with the count below the level
    watch: np.ndarray | None = None


@dataclass(frozen=True)
class Treatment:
    """An arm's treatment resolved against a model: its dose events (``schedule``, times
    from the start of treatment, grouped by treatment entry: ``entry`` of each event), each
    entry's drug, nominal amount and unit, its dose step as a fraction of the starting dose,
    the decision points (``grid``, days from the start of treatment) and the rules."""

    schedule: EventSchedule
    entry: np.ndarray
    drugs: tuple[str, ...]
    amounts: np.ndarray
    units: tuple[str, ...]
    step: np.ndarray
    grid: np.ndarray
    rules: tuple[_Rule, ...]


def resolve_treatment(model: Model, design: ArmDesign) -> Treatment:
    """The arm's doses and rules checked against ``model`` (drugs known, a rule's drug one
    of the arm's, steps and bounds in the same kind of unit as the dose): an error names the
    arm, the rule and the fix."""
    def fail(message: str) -> PlateletPDError:
        return PlateletPDError(f"arm {design.name!r}: {message}")

    parts, entry, doses = [], [], []
    for j, text in enumerate(design.treatment):
        daily = per_day(text)
        regimen = as_regimen(f"{daily[0]} t=0" if daily else text)
        if len(regimen) != 1:
            raise fail(f"one dose per treatment entry, got {text!r}; write each drug as its "
                       f"own entry, e.g. [\"hetrombopag 7.5 mg\", \"rhTPO 15000 U\"]")
        doses.append(regimen.doses[0])
        own = daily is None and own_schedule(text)
        if own and design.min_days and max(regimen.doses[0].times) < design.min_days - 1:
            raise fail(f"min_days = {design.min_days} treatment days, but {text!r} gives its "
                       f"own doses, the last on day {max(regimen.doses[0].times):g} from the "
                       f"start (a count such as x2 counts doses, not days); for a dose "
                       f"several times on each treatment day write it without days or a "
                       f"count, e.g. \"{regimen.doses[0].drug} {regimen.doses[0].amount:g} "
                       f"{regimen.doses[0].unit} q12h\"")
        if own or design.max_days:
            days = np.arange(design.max_days, dtype=float)
            parts.append(expand(regimen, model.dose_targets) if own else
                         _course(model, [daily[0]], (days[:, None] + np.asarray(daily[1])[
                             None, :]).ravel()) if daily else
                         _course(model, [text], days))
            entry += [j] * parts[-1].n_events
    schedule = parts[0] if parts else _course(model, [], np.zeros(0))
    for part in parts[1:]:
        schedule = schedule.concatenate(part)
    targets = [expand(f"{text} t=0", model.dose_targets) for text in
               (f"{d.drug} {d.amount:.17g} {d.unit}" for d in doses)]
    lookup = target_lookup(model.dose_targets)
    step = np.zeros(len(doses))

    def entry_of(drug: str, what: str) -> int:
        """The treatment entry giving ``drug`` (a name or alias of its dose target)."""
        target = lookup.get(drug.strip().lower())
        matches = [j for j, t in enumerate(targets) if t.target[0] == target]
        if not matches:
            names = ", ".join(d.drug for d in doses) or "none"
            raise fail(f"{what} names drug {drug!r}, which is not one of the arm's treatment "
                       f"drugs ({names}){closest(drug, [d.drug for d in doses])}")
        return matches[0]

    def ratio(j: int, amount: str, what: str) -> float:
        """``amount`` ("2.5 mg") of entry ``j``'s drug as a fraction of its starting dose."""
        try:
            other = expand(f"{doses[j].drug} {amount} t=0", model.dose_targets)
        except RegimenError as error:
            raise fail(f"{what} {amount!r} is not an amount such as \"2.5 mg\": {error}") \
                from None
        if other.scale_covariate != targets[j].scale_covariate:
            raise fail(f"{what} {amount!r} must use the same kind of unit as "
                       f"{design.treatment[j]!r}")
        return float(other.amount_per_scale[0] / targets[j].amount_per_scale[0])

    last = int(math.ceil(schedule.time.max())) if schedule.n_events else -1
    mornings = np.arange(last + 1, dtype=float)  # stop_at, stop_rise and titration days
    visits = np.arange(int(math.floor(last / design.visit_every_days)) + 1) \
        * design.visit_every_days if design.rules and last >= 0 else np.zeros(0)
    visits = visits[visits <= schedule.time.max()] if visits.size else visits  # before a dose
    grid = np.unique(np.concatenate([mornings, visits]))
    on_morning = np.isin(grid, mornings) & (grid >= 1)  # the first dose is always given
    rules = []
    for rule in design.titrations:
        new = _dose_of(rule.dose)
        j = entry_of(new.drug, f"titration dose {rule.dose!r}")
        rules.append(_Rule("set", grid == rule.day, rule.below, False, j,
                           ratio=ratio(j, f"{new.amount:.17g} {new.unit}", "titration dose")))
    # the first min_days doses are given whatever the count ("treated for 5-10 days")
    may_stop = on_morning & (grid >= design.min_days)
    for level, rise in ((design.stop_at, False), (design.stop_rise, True)):
        if level is not None:
            # stop_after_fall: "until the count has recovered to 100" for a treatment
            # started while the count is still high (a fixed day after chemotherapy)
            watch = np.isin(grid, mornings) if design.stop_after_fall and not rise else None
            rules.append(_Rule("stop", may_stop, level, True, rise=rise, watch=watch))
    at_visit = np.isin(grid, visits)
    for number, rule in enumerate(design.rules, start=1):
        what = f"dose rule {number} ({rule.action})"
        j = entry_of(rule.drug, what) if rule.drug else -1
        steps = (0, 0)
        if rule.action in ("increase", "decrease"):
            size = ratio(j, rule.step, f"{what}: step")
            if step[j] and step[j] != size:
                raise fail(f"{what}: a drug's dose moves by one step size; give every "
                           f"increase and decrease rule of {rule.drug!r} the same step")
            if any(r.action == "set" and r.drug == j for r in rules):
                raise fail(f"{what}: {rule.drug!r} also has a titration (a dose set on a "
                           f"treatment day); a dose moves either by titration or by increase "
                           f"and decrease rules: write the titration as an increase rule "
                           f"with from_day (e.g. {{ when = \"below\", level = 50, action = "
                           f"\"increase\", drug = {rule.drug!r}, step = ..., max = ..., "
                           f"from_day = 14 }}) or drop the decrease rule")
            step[j] = size
            low = ratio(j, rule.minimum, f"{what}: min") if rule.minimum else size
            high = ratio(j, rule.maximum, f"{what}: max") if rule.maximum else math.inf
            if not low - 1e-9 <= 1.0 <= high + 1e-9:
                raise fail(f"{what}: the starting dose {design.treatment[j]!r} must lie within "
                           f"min..max ({rule.minimum or rule.step} to "
                           f"{rule.maximum or 'no maximum'}); change min or max")
            off = [(name, bound) for name, bound, given in (
                ("min", low, rule.minimum or rule.step), ("max", high, rule.maximum))
                if given and math.isfinite(bound)
                and abs((bound - 1.0) / size - round((bound - 1.0) / size)) > 1e-6]
            if off:
                name, bound = off[0]
                reach = 1.0 + size * (math.floor((bound - 1.0) / size + 1e-9) if name == "max"
                                      else math.ceil((bound - 1.0) / size - 1e-9))
                start = doses[j].amount
                raise fail(f"{what}: the starting dose {design.treatment[j]!r} is not a whole "
                           f"number of {rule.step} steps from {name} "
                           f"{rule.maximum if name == 'max' else rule.minimum or rule.step}, "
                           f"so the dose could "
                           f"{'rise no higher' if name == 'max' else 'fall no lower'} than "
                           f"{reach * start:g} {doses[j].unit}; "
                           f"give a step that divides both distances (e.g. half of "
                           f"{rule.step}) or a starting dose on the steps")
            steps = (int(math.ceil((low - 1.0) / size - 1e-9)),
                     int(math.floor((high - 1.0) / size + 1e-9)) if high < math.inf
                     else 10 ** 9)
        window = (grid >= rule.from_day - 1e-9) & (
            grid <= (math.inf if rule.to_day is None else rule.to_day) + 1e-9)
        rules.append(_Rule(rule.action, at_visit & window, rule.level,
                           rule.when == "above", j, steps=steps, visit=True))
    return Treatment(schedule, np.asarray(entry, dtype=np.int64),
                     tuple(d.drug for d in doses), np.array([d.amount for d in doses]),
                     tuple(d.unit for d in doses), step, grid, tuple(rules))


def _dose_of(text: str):
    """The one dose of a dose text."""
    return as_regimen(text).doses[0]


#: event kinds of the per-patient event log (ArmResult.extra["events"])
EVENTS = ("stop", "hold", "resume", "increase", "decrease", "titrate")


def _decide(treatment: Treatment, counts: np.ndarray, start_count: np.ndarray,
            inside: np.ndarray) -> tuple[np.ndarray, dict]:
    """Every patient's rules applied visit by visit (in the order written) to the counts at
    the decision points: the factor (dose / starting dose) of each dose event and the log of
    decisions that changed something (patient, day, event, drug entry, new dose)."""
    n, drugs = counts.shape[0], len(treatment.drugs)
    stopped = np.zeros((n, drugs), dtype=bool)
    held = np.zeros((n, drugs), dtype=bool)
    steps = np.zeros((n, drugs), dtype=np.int64)
    setting = np.ones((n, drugs))
    factors = np.ones((n, treatment.grid.size + 1, drugs))  # column 0: before any decision
    log = []
    fallen = {number: np.zeros(n, dtype=bool) for number, rule in enumerate(treatment.rules)
              if rule.watch is not None}
    for point in range(treatment.grid.size):
        for number, rule in enumerate(treatment.rules):
            if rule.watch is not None:  # a morning below the level must come first
                was = fallen[number].copy()
                if rule.watch[point]:
                    fallen[number] |= counts[:, point] < rule.level
            if not rule.at[point]:
                continue
            value = counts[:, point] - (start_count if rule.rise else 0.0)
            fire = value >= rule.level if rule.above else value < rule.level
            if rule.watch is not None:
                fire &= was
            if rule.visit:
                fire &= inside[:, point]
            for j in range(drugs) if rule.drug < 0 else (rule.drug,):
                going = fire & ~stopped[:, j]
                if rule.action == "stop":
                    stopped[going, j] = True
                elif rule.action in ("hold", "resume"):
                    going &= held[:, j] == (rule.action == "resume")
                    held[going, j] = rule.action == "hold"
                elif rule.action == "set":
                    setting[going, j] = rule.ratio
                else:
                    move = 1 if rule.action == "increase" else -1
                    going &= (steps[:, j] + move >= rule.steps[0]) if move < 0 else \
                        (steps[:, j] + move <= rule.steps[1])
                    steps[going, j] += move
                rows = np.flatnonzero(going)
                if rows.size:
                    kind = "titrate" if rule.action == "set" else rule.action
                    log.append((rows, point, EVENTS.index(kind), j,
                                setting[rows, j] + steps[rows, j] * treatment.step[j]))
        factors[:, point + 1] = np.where(stopped | held, 0.0,
                                         setting + steps * treatment.step[None, :])
    governing = np.searchsorted(treatment.grid, treatment.schedule.time, side="right")
    return factors[:, governing, treatment.entry], decision_log(treatment, log)


def decision_log(treatment: Treatment, log: list) -> dict:
    """The decisions as columns: patient (row in the arm), day (from the start of
    treatment), event (see :data:`EVENTS`), drug, and the drug's dose after it (NaN for a
    stop, hold or resume), in the unit of its treatment entry."""
    if not log:
        return {"patient": np.zeros(0, np.int64), "day": np.zeros(0), "event": np.zeros(0, str),
                "drug": np.zeros(0, str), "dose": np.zeros(0)}
    rows = np.concatenate([entry[0] for entry in log])
    repeat = [len(entry[0]) for entry in log]
    point = np.repeat([entry[1] for entry in log], repeat)
    kind = np.repeat([entry[2] for entry in log], repeat)
    drug = np.repeat([entry[3] for entry in log], repeat)
    dose = np.concatenate([entry[4] for entry in log]) * treatment.amounts[drug]
    dose[np.isin(kind, [0, 1, 2])] = np.nan
    order = np.lexsort((point, rows))
    return {"patient": rows[order], "day": treatment.grid[point[order]],
            "event": np.array(EVENTS)[kind[order]],
            "drug": np.array(treatment.drugs, dtype=object)[drug[order]].astype(str),
            "dose": dose[order]}


def treat_by_rules(model, design, vectors, covariates, chemotherapy, times, index, solver,
               eligible, entry, start, screened, observe=None, chemotherapy_times=None,
               chemotherapy_factors=None, rescue_until=None, stop_by=None,
               rescue_below=None) -> ArmResult:
    """Visit-driven rules (dose rules, stop, titration, rescue), solved by re-simulation.

    A decision at a visit depends only on the counts up to that visit. Each pass simulates
    the current plan, re-derives every decision from the counts it produced, and adopts the
    new decisions from the earliest dose where they differ; that time moves later with
    every pass, so the loop ends with a plan consistent with its own trajectory.

    ``chemotherapy_times`` and ``chemotherapy_factors`` (patients x chemotherapy events,
    optional) give each patient's own chemotherapy times (days from time 0) and dose
    factors (0 skips a dose): the cycles of :mod:`plateletpd.study.cycles`.

    Rescue visits run daily from the first treatment morning for ``design.follow_up_days``,
    or, with ``rescue_until`` (days from time 0: the end of a course's follow-up), until
    then: a rescue rule is a standing order for the whole study, not only for the
    treatment's follow-up. The number of visits depends on ``rescue_until`` alone (not on
    which patients share a chunk); a visit after a patient's grid is not judged, and a
    visit without a transfusion costs the integrator nothing (a dose of zero is no event).

    ``stop_by`` (days from time 0, per patient; inf: none): no treatment dose at or after it
    (``stop_at_next_cycle``: the next chemotherapy cycle's day).
    """
    n = len(vectors)
    treatment = resolve_treatment(model, design)
    visits = int(math.ceil(design.follow_up_days))
    if design.rescue and rescue_until is not None:  # visit k on start + k, start >= 0
        visits = max(visits, int(math.ceil(rescue_until)) + 1)
    rescue_doses = [design.rescue.dose] if design.rescue else []
    # a transfusion follows the count that triggers it by RESCUE_DELAY, more than one output
    # step, so the interpolated count at a visit is always the count before it
    delay = max(RESCUE_DELAY, 1.5 / design.points_per_day)
    rescue_times = np.arange(visits if design.rescue else 0) + delay
    schedule = chemotherapy.concatenate(treatment.schedule) \
        .concatenate(_course(model, rescue_doses, np.arange(visits) + delay))
    n_chemotherapy = chemotherapy.n_events
    relative = np.arange(schedule.n_events) >= n_chemotherapy
    event_times = np.where(relative[None, :], schedule.time[None, :] + start[:, None],
                           schedule.time[None, :])
    if chemotherapy_times is not None:
        event_times[:, :n_chemotherapy] = chemotherapy_times
    chemotherapy_factors = np.ones((n, n_chemotherapy)) if chemotherapy_factors is None \
        else np.asarray(chemotherapy_factors, dtype=float)
    base = _per_subject(schedule.amounts(covariates), n)
    column_times = np.concatenate([treatment.schedule.time, rescue_times])
    n_doses = treatment.schedule.n_events
    visit_times = start[:, None] + np.arange(visits)[None, :]
    inside = visit_times <= times[-1]
    decision_times = start[:, None] + treatment.grid[None, :]
    plan = np.concatenate([np.ones((n, n_doses)), np.zeros((n, rescue_times.size))], axis=1)
    if stop_by is not None:
        plan[:, :n_doses] = np.where(
            event_times[:, n_chemotherapy:n_chemotherapy + n_doses]
            >= np.asarray(stop_by, dtype=float)[:, None] - 1e-9, 0.0, 1.0)

    courses = np.empty((n, times.size))
    status = np.empty(n, dtype=np.int64)
    counts = np.empty((n, visits))
    decision_counts = np.empty((n, treatment.grid.size))
    start_count = np.empty(n)

    def simulate(rows):
        """Re-simulate the patients in ``rows`` under the current plan."""
        factors = np.concatenate([chemotherapy_factors[rows], plan[rows]], axis=1)
        result = _integrate(model, schedule, vectors[rows], base[rows] * factors, times,
                            solver, False, event_times[rows])
        courses[rows] = result.outputs[:, :, index]
        status[rows] = result.status
        counts[rows] = seen(values_at(times, courses[rows], visit_times[rows]),
                            np.arange(visits), rows)
        decision_counts[rows] = seen(values_at(times, courses[rows], decision_times[rows]),
                                     treatment.grid, rows)
        start_count[rows] = seen(values_at(times, courses[rows], start[rows])[:, None],
                                 np.zeros(1), rows)[:, 0]

    def seen(values, days, rows):
        """The counts the rules judge: measured when ``observe`` is given."""
        return values if observe is None else observe(values, days, rows)

    dose_times = event_times[:, n_chemotherapy:n_chemotherapy + treatment.schedule.n_events]
    capped = np.zeros(dose_times.shape, dtype=bool) if stop_by is None else \
        dose_times >= np.asarray(stop_by, dtype=float)[:, None] - 1e-9

    def decide():
        doses, log = _decide(treatment, decision_counts, start_count,
                             decision_times <= times[-1])
        doses = np.where(capped, 0.0, doses)  # stop_by: none from the next cycle on
        if not design.rescue:
            return doses, log
        # each patient's own trigger (a two-trigger rule), else the rule's one level
        level = design.rescue.below if rescue_below is None else rescue_below[:, None]
        need = (counts < level) & inside
        rescue = (need & (np.cumsum(need, axis=1) <= design.rescue.max_per_patient)) * 1.0
        return np.concatenate([doses, rescue], axis=1), log

    pending = np.arange(n)
    for _ in range(treatment.grid.size + visits + 2):
        simulate(pending)
        new, log = decide()
        differs = new != plan
        changed = np.flatnonzero(differs.any(axis=1))
        if changed.size == 0:
            break
        first = np.where(differs[changed], column_times[None, :], np.inf).min(axis=1)
        adopt = column_times[None, :] >= first[:, None]
        plan[changed] = np.where(adopt, new[changed], plan[changed])
        pending = changed
    doses = plan[:, :n_doses]
    dose_days, which = np.unique(treatment.schedule.time, return_inverse=True)
    dosed = (doses > 0) @ (which[:, None] == np.arange(dose_days.size)[None, :])
    rescued = plan[:, n_doses:] > 0
    records = treatment_records(treatment, doses, log, n)
    if stop_by is not None:  # stopped by the next cycle: its day (from the first dose)
        cut = capped.any(axis=1) & np.isfinite(stop_by)
        records["stop_day"] = np.where(cut, np.fmin(records["stop_day"],
                                                    np.asarray(stop_by) - start),
                                       records["stop_day"])
    return ArmResult(design, times, courses, eligible, entry, start,
                     np.sum(dosed > 0, axis=1), status, screened,
                     {"rescues": rescued.sum(axis=1) if design.rescue else np.zeros(n),
                      # each rescue's time (days from time 0; NaN: none at that visit)
                      "rescue_times": np.where(rescued, start[:, None] + rescue_times[None, :],
                                               np.nan),
                      **records})


def treatment_records(treatment: Treatment, doses: np.ndarray, log: dict, n: int) -> dict:
    """Per-patient records of the dose rules: whether a titration or step changed a dose,
    holds, dose changes, the day treatment stopped (NaN: never), the total dose of each drug
    (in its treatment entry's unit), every planned dose (``dose_days`` from the start of
    treatment, ``dose_drugs``, ``dose_amounts`` given per patient, 0 when not given) and the
    event log."""
    def per_patient(kinds) -> np.ndarray:
        return np.bincount(log["patient"][np.isin(log["event"], kinds)], minlength=n)

    stops = log["event"] == "stop"
    stop_day = np.full(n, np.nan)
    np.fmin.at(stop_day, log["patient"][stops], log["day"][stops])
    totals: dict = {}
    for j, (drug, unit) in enumerate(zip(treatment.drugs, treatment.units)):
        key = f"{drug} ({unit})"
        given = doses[:, treatment.entry == j].sum(axis=1) * treatment.amounts[j]
        totals[key] = totals.get(key, 0.0) + given
    return {"titrated": np.any((doses != 1.0) & (doses != 0.0), axis=1),
            "holds": per_patient(["hold"]),
            "dose_changes": per_patient(["increase", "decrease", "titrate"]),
            "stop_day": stop_day, "total_dose": totals, "events": log,
            "dose_intensity": doses.mean(axis=1) if doses.shape[1] else np.full(n, np.nan),
            "dose_days": treatment.schedule.time,
            "dose_drugs": np.array(treatment.drugs, dtype=object)[treatment.entry].astype(str),
            "dose_amounts": doses * treatment.amounts[treatment.entry]}


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
    if design.stop_after_fall:
        raise PlateletPDError(f"arm {design.name!r}: stop_after_fall is a trial file's rule; "
                              f"a fit configuration's arms stop at stop_at from the first "
                              f"morning (fit such an arm through a trial file, [[trials]])")
    if design.stop_at is not None:
        go_on *= logistic((design.stop_at - morning_counts) / STOP_WIDTH)
    if design.stop_rise is not None:
        go_on *= logistic((design.stop_rise - morning_counts + entry_count[:, None])
                          / STOP_WIDTH)
    go_on[:, :max(1, design.min_days)] = 1.0  # the first dose, and the first min_days
    weight = np.cumprod(go_on, axis=1)
    stopped = weight.sum(axis=1)
    amounts[:, is_treatment] *= weight[:, dose_day]
    final = _integrate(model, schedule, vectors, amounts, times, solver, False, event_times)
    return ArmResult(design, times, final.outputs[:, :, index], eligible, entry, start,
                     stopped, final.status, screened)
