"""The endpoint registry: every platelet endpoint declared once, used by trials, fits, sweeps
and benchmarks.

An :class:`Endpoint` has a name, a unit, a description, its exact definition and, where an
optimiser needs one, a smooth version for fitting. Definitions compute one value per
subject from :class:`Courses` (each subject's platelet course on a uniform grid, its day 0
and the measurement's settings). :data:`ENDPOINTS` holds them by name; :func:`register` adds
one, and it then appears in:

* trials (``in_trials``): a column of the per-patient table, and with ``summary = "mean"`` a
  mean with its 95% interval in the arm summary, hence in sweeps;
* fits (``in_data``): outcome rows may name it (:mod:`plateletpd.io.outcomes` checks rows
  against the same registry) and :func:`subject_values` predicts it;
* benchmarks (``benchmarks/million.py`` reduces each chunk with registry endpoints).

Fit endpoints (the outcome table's) are measured from the row's day 0 (``treatment_start``,
``entry`` or ``chemotherapy``) on the hourly grid: crossing times are interpolated and the
response has a smooth version, a logistic indicator of width :data:`RESPONSE_WIDTH` around
the threshold, so that arm-level predictions change smoothly with the parameters (with hard
thresholds a proportion over a fixed virtual cohort is a step function). A time to a
threshold never reached is censored at the end of follow-up. Trial endpoints are read as a
clinician reads them: at visits every ``visit_every`` days from the start of treatment.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable, Mapping

import numpy as np

from plateletpd.errors import PlateletPDError, closest
from plateletpd.io import outcomes
from plateletpd.study.cohort import ArmResult, auc, crossing_time, logistic, values_at

#: logistic width (x10^9/L) of the smooth response indicator; 2 means a count 4 above the
#: threshold counts as 0.88 of a responder
RESPONSE_WIDTH = 2.0
DAY0 = ("treatment_start", "entry", "chemotherapy")
#: what an endpoint's values are: the kinds an outcome row may name (io.outcomes.STATISTICS)
#: and, for trial tables only, flags, numbers of doses and status codes
KINDS = ("count", "time", "proportion", "percent_change", "auc", "flag", "number", "code")


@dataclass(frozen=True)
class ResponseRule:
    """A responder reaches ``threshold`` or rises by ``rise`` over day 0 within ``by_day``."""

    threshold: float | None = 100.0
    rise: float | None = 50.0
    by_day: float = 14.0

    def __post_init__(self):
        if self.threshold is None and self.rise is None:
            raise PlateletPDError("a response rule needs a threshold, a rise, or both")


@dataclass
class Courses:
    """What endpoints are computed from: platelet courses (subjects x ``times``, a uniform
    grid in days), each subject's day 0 and the measurement's settings (``level`` and
    ``low`` for thresholds, ``day`` for counts at a day, ``rule`` for fitted responses;
    ``response`` and ``visit_every`` for a trial's visit endpoints; ``arm`` for the
    treatment's own records: doses, transfusions, statuses)."""

    times: np.ndarray
    counts: np.ndarray
    day0: np.ndarray
    level: float = 100.0
    low: float | None = None
    day: float | None = None
    rule: ResponseRule = field(default_factory=ResponseRule)
    response: Mapping | None = None
    visit_every: float = 1.0
    arm: ArmResult | None = None
    observe: Callable | None = None  # (counts, days from day 0) -> measured counts
    # a trial arm on a [chemotherapy] course: each patient's treated cycle, from the first
    # day of the cycle in which day 0 falls to the next cycle's first day (inf: none given
    # after it); None: the whole grid (one chemotherapy, or an outcome row's own window)
    cycle_window: tuple[np.ndarray, np.ndarray] | None = None
    # a trial arm on a course: days each patient is followed from day 0 ([trial]
    # follow_up_days; the course's grid runs on to its own horizon); None: to the grid's end
    follow_up: float | None = None

    @classmethod
    def for_row(cls, arm: ArmResult, threshold=None, day=None, day0: str = "treatment_start",
                rule: ResponseRule | None = None, default_threshold: float = 100.0
                ) -> "Courses":
        """An arm measured as an outcome row states it (``threshold`` text, ``day``, day 0)."""
        if day0 not in DAY0:
            raise PlateletPDError(f"day0 must be one of {', '.join(DAY0)}, got {day0!r}")
        start = {"treatment_start": arm.start_time, "entry": arm.entry_time,
                 "chemotherapy": np.zeros(arm.n)}[day0]
        low, level = parse_threshold(threshold) if threshold is not None else (None, None)
        return cls(arm.times, arm.platelets, start, default_threshold if level is None
                   else level, low, day, rule or ResponseRule(), arm=arm)

    @classmethod
    def for_trial(cls, arm: ArmResult, response: Mapping, visit_every: float,
                  observe=None) -> "Courses":
        """An arm measured at visits every ``visit_every`` days from the start of treatment;
        ``observe`` maps the true counts at the visits to measured ones (None: true)."""
        course = arm.extra.get("course")
        # day 0: the first treatment morning, or enrolment ([response] day0 = "entry")
        day0 = arm.entry_time if response.get("day0") == "entry" else arm.start_time
        if course is None:
            return cls(arm.times, arm.platelets, day0, response=response,
                       visit_every=visit_every, arm=arm, observe=observe)
        begin, end = course.treated_cycle(arm.start_time)
        follow_up = float(arm.design.follow_up_days)
        return cls(arm.times, arm.platelets, day0, response=response,
                   visit_every=visit_every, arm=arm, observe=observe,
                   cycle_window=(begin, np.minimum(end, arm.start_time + follow_up + 1e-9)),
                   follow_up=follow_up + (float(arm.design.start_delay)
                                          if response.get("day0") == "entry" else 0.0))

    def at(self, when) -> np.ndarray:
        """Each subject's count at its own time(s) ``when`` (linear interpolation); NaN
        after the end of its follow-up (not the last simulated count)."""
        return values_at(self.times, self.counts, when, outside=np.nan)

    def after(self, start: np.ndarray) -> np.ndarray:
        """Mask (subjects x times) of the grid at or after each subject's ``start``."""
        return self.times[None, :] >= start[:, None]

    @cached_property
    def in_cycle(self) -> np.ndarray | None:
        """Mask (subjects x times) of the treated cycle (:attr:`cycle_window`); None
        without one (the whole grid: nothing to mask, nothing allocated)."""
        if self.cycle_window is None:
            return None
        begin, end = self.cycle_window
        return self.after(begin) & (self.times[None, :] < end[:, None])

    def within_cycle(self, mask: np.ndarray) -> np.ndarray:
        """``mask`` restricted to the treated cycle (unchanged without one)."""
        return mask if self.in_cycle is None else mask & self.in_cycle

    def cycle_counts(self, fill: float) -> np.ndarray:
        """The counts within the treated cycle, ``fill`` outside it."""
        return self.counts if self.in_cycle is None else \
            np.where(self.in_cycle, self.counts, fill)

    @cached_property
    def masked(self) -> np.ndarray:
        """Counts from day 0 on (infinite before), within the treated cycle."""
        return np.where(self.within_cycle(self.after(self.day0)), self.counts, np.inf)

    @cached_property
    def nadir_time(self) -> np.ndarray:
        return self.times[np.argmin(self.masked, axis=1)]

    @cached_property
    def recovering(self) -> np.ndarray:
        """Counts from the nadir on (minus infinity before), within the treated cycle."""
        return np.where(self.within_cycle(self.after(self.nadir_time)), self.counts,
                        -np.inf)

    # ---------------------------------------------------------------- trial visits
    @cached_property
    def last_visit(self) -> np.ndarray:
        last = np.floor((self.times[-1] - self.day0) / self.visit_every)
        if self.follow_up is not None:  # the trial's follow-up ends before the grid does
            last = np.minimum(last, math.floor(self.follow_up / self.visit_every + 1e-9))
        return last.astype(np.int64)

    @cached_property
    def visit_days(self) -> np.ndarray:
        return np.arange(max(int(self.last_visit.max(initial=0)), 0) + 1) * self.visit_every

    @cached_property
    def valid_visits(self) -> np.ndarray:
        return np.arange(self.visit_days.size)[None, :] <= self.last_visit[:, None]

    @cached_property
    def visits(self) -> np.ndarray:
        # visits after a patient's follow-up carry its last count: valid_visits masks them
        # (and the measurement draws stay aligned with the visit grid)
        counts = values_at(self.times, self.counts,
                           self.day0[:, None] + self.visit_days[None, :])
        return counts if self.observe is None else self.observe(counts, self.visit_days)

    def measured(self, day: float) -> np.ndarray:
        """The count ``day`` days after day 0: as measured at that visit when visits observe
        counts with error (``observe``) and ``day`` is a visit day, else the true count; NaN
        for a patient whose follow-up ends before it."""
        visit = day / self.visit_every
        if self.observe is None or visit != round(visit) or visit >= self.visit_days.size:
            return self.at(self.day0 + day)
        return np.where(self.valid_visits[:, round(visit)], self.visits[:, round(visit)],
                        np.nan)

    # The day-0 convention (docs/trial_files.md), the same for every trial endpoint: the
    # day-0 visit (the first treatment morning, before its dose) is the baseline; responses
    # and recoveries are counted at visits from day 1 on; a patient already at or above a
    # level at day 0 cannot reach it (not a responder, no time to that level).
    @cached_property
    def baseline(self) -> np.ndarray:
        """The count at the day-0 visit."""
        return self.visits[:, 0]

    @cached_property
    def after_baseline(self) -> np.ndarray:
        """Visits from day 1 on, within the follow-up (subjects x visits)."""
        return self.valid_visits & (self.visit_days > 0)[None, :]

    @cached_property
    def at_threshold_at_start(self) -> np.ndarray:
        """Patients at or above the response threshold at day 0 (never responders)."""
        threshold = self.response.get("threshold")
        return self.baseline >= (np.inf if threshold is None else threshold)

    @cached_property
    def responded(self) -> np.ndarray:
        """Visits from day 1 on meeting the trial's response rule (subjects x visits)."""
        response, visits = self.response, self.visits
        rules = []
        if response.get("threshold") is not None:
            rules.append(visits >= response["threshold"])
        if response.get("rise") is not None:
            rules.append(visits - self.baseline[:, None] >= response["rise"])
        if response.get("rise_fold") is not None:  # relative: k x the day-0 count
            rules.append(visits >= response["rise_fold"] * self.baseline[:, None])
        # "any" (the default): one rule qualifies; "all": every stated rule at one visit
        combine = np.logical_and if response.get("combine") == "all" else np.logical_or
        responded = np.zeros_like(self.valid_visits)
        if rules:
            responded = combine.reduce(rules)
        if response.get("later_day") is not None:  # composite: and a later count
            later = self.measured(response["later_day"])
            responded &= (later >= response["later_at_least"])[:, None]
        # a patient at or above the threshold at day 0 would meet it at once: never a
        # responder, unless "all" also asks for a rise (then the rise decides)
        relative = response.get("rise") is not None or response.get("rise_fold") is not None
        excluded = self.at_threshold_at_start
        if response.get("combine") == "all" and relative:
            excluded = np.zeros_like(excluded)
        return responded & self.after_baseline & ~excluded[:, None]

    def reached(self, level: float) -> np.ndarray:
        """Visits from day 1 on with the count at or above ``level``, for patients below
        ``level`` at day 0."""
        return (self.visits >= level) & self.after_baseline & \
            (self.baseline < level)[:, None]


Definition = Callable[[Courses], np.ndarray]


@dataclass(frozen=True)
class Endpoint:
    """One endpoint: what it is, how it is computed exactly and (optionally) smoothly.

    ``in_data``: outcome rows may name it; ``needs_day``/``needs_threshold`` say what such
    a row must give. ``in_trials``: a column of a trial's per-patient table; ``summary``
    ("mean" or None): how the arm summary reports it. ``definition`` None: no simulation
    rule (the data may hold it, a fit cannot use it).
    """

    name: str
    unit: str
    description: str
    kind: str
    definition: Definition | None
    smooth: Definition | None = None
    needs_day: bool = False
    needs_threshold: bool = False
    in_data: bool = False
    in_trials: bool = False
    summary: str | None = None

    def __post_init__(self):
        if not (isinstance(self.name, str) and self.name.isidentifier()):
            raise PlateletPDError(f"an endpoint name must be a Python identifier such as "
                                  f"'plt_day_10', got {self.name!r}")
        if self.kind not in KINDS:
            raise PlateletPDError(f"endpoint {self.name}: kind must be one of "
                                  f"{', '.join(KINDS)}, got {self.kind!r}"
                                  f"{closest(str(self.kind), KINDS)}")
        if self.summary not in (None, "mean"):
            raise PlateletPDError(f"endpoint {self.name}: summary must be 'mean' or None, "
                                  f"got {self.summary!r}")
        if self.in_data and self.kind not in outcomes.STATISTICS:
            raise PlateletPDError(f"endpoint {self.name}: an outcome row's endpoint is one of "
                                  f"the kinds {', '.join(outcomes.STATISTICS)}, got "
                                  f"{self.kind!r}")

    def values(self, courses: Courses, smooth: bool = False) -> np.ndarray:
        """One value per subject (NaN where undefined); ``smooth`` uses the fitting version
        where there is one."""
        definition = self.smooth if smooth and self.smooth is not None else self.definition
        if definition is None:
            raise PlateletPDError(f"no simulation rule for endpoint {self.name!r}; the data "
                                  f"may hold it, but a fit or a trial cannot predict it")
        return definition(courses)


#: every endpoint by name, in registration order (the order of trial table columns)
ENDPOINTS: dict[str, Endpoint] = {}


def register(endpoint: Endpoint) -> Endpoint:
    """Add ``endpoint`` to the registry (and to the outcome rows' vocabulary if in_data)."""
    if endpoint.name in ENDPOINTS or endpoint.name == "patient":
        raise PlateletPDError(f"an endpoint named {endpoint.name!r} is already registered; "
                              f"choose another name or unregister it first")
    ENDPOINTS[endpoint.name] = endpoint
    if endpoint.in_data:
        outcomes.ENDPOINTS[endpoint.name] = endpoint
    return endpoint


def unregister(name: str) -> Endpoint:
    """Remove an endpoint (a temporary one, e.g. in a test) from the registry."""
    outcomes.ENDPOINTS.pop(name, None)
    return ENDPOINTS.pop(get_endpoint(name).name)


def get_endpoint(name: str) -> Endpoint:
    """The registered endpoint ``name``; a clear error names the close ones."""
    if name not in ENDPOINTS:
        raise PlateletPDError(f"no endpoint {name!r}{closest(str(name), ENDPOINTS)}; known: "
                              f"{', '.join(ENDPOINTS)}")
    return ENDPOINTS[name]


def trial_endpoints() -> list[Endpoint]:
    """The endpoints of a trial's per-patient table, in column order."""
    return [e for e in ENDPOINTS.values() if e.in_trials]


def parse_threshold(text) -> tuple[float | None, float | None]:
    """``"100"`` -> (None, 100); ``"from <=50 to >=100"`` -> (50, 100); other text -> (None, None)."""
    text = str(text).strip()
    match = re.fullmatch(r"from\s*<=?\s*([\d.]+)\s*to\s*>=?\s*([\d.]+)", text)
    if match:
        return float(match.group(1)), float(match.group(2))
    try:
        return None, float(text)
    except ValueError:
        return None, None


def stated_level(text) -> float | None:
    """The one count level a threshold text states with an optional comparison: ``"75"``,
    ``"PLT <75"``, ``"<=75"``, ``"PLT >=100"``, ``"\u2265100"``, ``"below 75"`` -> the number;
    any other text (empty, a range, "not stated in abstract") -> None. Which side the
    comparison takes is the endpoint's (days below a level, a response at a level)."""
    text = "" if text is None or (isinstance(text, float) and math.isnan(text)) \
        else str(text).strip()
    match = re.fullmatch(r"(?:PLT\s*)?(?:[<>]=?|[\u2264\u2265]|below|under|above)?\s*"
                         r"(\d+(?:\.\d+)?)(?:\s*x?\s*10\^?9\s*/\s*L)?", text,
                         flags=re.IGNORECASE)
    return float(match.group(1)) if match else None


#: thrombocytopenia grades as platelet levels (x10^9/L): "grade 4" is a count below 25,
#: "grade 3/4" below 50 (WHO and NCI CTCAE v3-v5: grade 3 is 25 to <50, grade 4 <25); a
#: lone "grade 3", "grade 2" or "grade 1" is refused (exactly that grade, or that grade or
#: worse? and grade 1's lower limit of normal is the laboratory's): write the level
GRADE_LEVELS = {"4": 25.0, "3/4": 50.0, "3-4": 50.0, "3 or 4": 50.0, ">=3": 50.0,
                "2-4": 75.0, "2/3/4": 75.0, ">=2": 75.0}
#: words of a threshold text naming a chemotherapy course event, and the event each names
COURSE_EVENT_WORDS = (("delay", "delayed"), ("postpone", "delayed"),
                      ("reduc", "reduced"), ("missed", "abandoned"),
                      ("abandon", "abandoned"), ("discontinu", "abandoned"))


@dataclass(frozen=True)
class IncidenceEvent:
    """What an ``incidence_proportion`` row counts, read from its threshold text
    (:func:`parse_incidence`): a count below ``level`` (x10^9/L) or the course ``events``
    (``delayed``, ``reduced``, ``abandoned``) or a platelet ``transfusion`` (the arm's
    rescue rule gives them), within cycles ``first``..``last`` (None:
    the whole course). ``caveats``: where the model's course is narrower than the
    row's event (every delay of the course is for the platelet count; no dose within a
    cycle is ever omitted), so the prediction is a lower bound."""

    level: float | None = None
    events: tuple[str, ...] = ()
    transfusion: bool = False   # a rescue platelet transfusion (the trial's rescue rule)
    first: int | None = None
    last: int | None = None
    caveats: tuple[str, ...] = ()
    from_start: bool = False    # from the start of the study treatment (day 0) on
    # first..last are study cycles: counted among the cycles given after enrolment
    on_study: bool = False

    @property
    def window(self) -> str:
        if self.on_study:
            return (f"study cycle {self.first}" if self.first == self.last else
                    f"study cycles {self.first}-{self.last}") + " (counted after enrolment)"
        if self.from_start:
            return "from the start of treatment"
        if self.first is None:
            return "the whole course"
        return f"cycle {self.first}" if self.first == self.last else \
            f"cycles {self.first}-{self.last}"


def parse_cycles(text) -> tuple[int, int] | None | str:
    """The cycle window a threshold text names: "cycle 6" -> (6, 6), "cycles 3-6" ->
    (3, 6), "<=6 cycles" (or "up to 6 cycles", "first 6 cycles") -> (1, 6); None when it
    names no cycle; a reason (text) when the window is malformed."""
    text = str(text or "").lower()
    ranges = re.findall(r"cycles?\s*(\d+)\s*(?:-|\u2013|to|through)\s*(\d+)", text)
    up_to = re.findall(r"(?:<=|\u2264|up to|first|within)\s*(\d+)\s*cycles", text)
    single = re.findall(r"cycle\s*(\d+)(?!\s*(?:-|\u2013|to|through)\s*\d)", text)
    windows = [(int(a), int(b)) for a, b in ranges] + [(1, int(b)) for b in up_to] + \
        [(int(c), int(c)) for c in single]
    if not windows:
        return None
    if len(set(windows)) > 1:
        return f"it names more than one cycle window ({', '.join(map(str, windows))})"
    first, last = windows[0]
    if not 1 <= first <= last:
        return (f"its cycle window {first}-{last} is not 'cycles a-b' with 1 <= a <= b; "
                f"write e.g. 'cycles 3-6'")
    return first, last


#: words of an incidence row counted from the start of the study treatment (enrolment),
#: not over the whole course: "during treatment", "after enrolment", "on study"
FROM_START = (r"(after|from|since)\s+(the\s+)?(start|beginning)\s+of\s+(the\s+)?"
              r"(study\s+)?treatment|(after|from|since)\s+(enrolment|enrollment|entry|"
              r"randomi[sz]ation)|during\s+(the\s+)?(study\s+)?treatment|on\s+(study|"
              r"treatment|trial)")


def on_study(text) -> bool:
    """Whether a threshold text counts its cycles from enrolment ("cycles 1-3 after
    enrolment", "on-study cycles 2-3"): the words of :data:`FROM_START`, or "study
    cycle(s)"."""
    lowered = str(text or "").lower().replace("-", " ")
    return bool(re.search(FROM_START, lowered) or re.search(r"\bstudy\s+cycles?\b", lowered))


def study_cycles(table, first: int, last: int, cycles: int) -> np.ndarray:
    """Per patient of a course trial's patient ``table``, the cycle numbers (1-based; 0:
    not given) of its study cycles ``first``..``last``: the j-th cycle given after the
    enrolment day (``enrolment_day``; a cycle given on that day is not after it), as the
    ``after_entry_cycle{j}_on_time`` flags count them."""
    entry = table["enrolment_day"].to_numpy(float)
    days = np.column_stack([table[f"cycle{c}_day"].to_numpy(float)
                            for c in range(1, cycles + 1)])
    with np.errstate(invalid="ignore"):
        after = np.isfinite(days) & (days > entry[:, None] + 1e-9)
    rank = np.cumsum(after, axis=1)
    out = np.zeros((len(table), last - first + 1), dtype=int)
    for j in range(first, last + 1):
        hit = after & (rank == j)
        out[:, j - first] = np.where(hit.any(axis=1), np.argmax(hit, axis=1) + 1, 0)
    return out


def study_cycle_values(table, column: str, numbers: np.ndarray) -> np.ndarray:
    """``cycle{c}_{column}`` of each patient's cycles ``numbers`` (from
    :func:`study_cycles`; NaN where 0: not given)."""
    values = np.full(numbers.shape, np.nan)
    for c in np.unique(numbers[numbers > 0]):
        where = numbers == c
        source = table[f"cycle{c}_{column}"].to_numpy(float)
        values[where] = np.broadcast_to(source[:, None], numbers.shape)[where]
    return values


def parse_incidence(text) -> IncidenceEvent | str:
    """The event an ``incidence_proportion`` row's threshold text names (data/README.md,
    "incidence_proportion"), or why it cannot be read without guessing. A count: "PLT <50"
    (or "<50", "PLT<50", "PLT <=50", "PLT ≤50") or a grade ("grade 4": <25, "grade 3/4": <50; :data:`GRADE_LEVELS`);
    a course event: a delay, a dose reduction, a missed dose or abandoned chemotherapy
    (:data:`COURSE_EVENT_WORDS`); the cycles: "cycle 6", "cycles 1-2", "<=6 cycles", none
    for the whole course. A text naming both a count and a course event, a grade and a
    different level, or neither, is refused."""
    original = str(text or "").strip()
    lowered = original.lower()
    if not lowered:
        return "an incidence row names its event in threshold (e.g. 'PLT <50, cycles 1-6')"
    window = parse_cycles(lowered)
    if isinstance(window, str):
        return window
    # "PLT <50" or "PLT <=50" (a continuous count is never exactly 50: the same event);
    # not "<=6 cycles", a window
    explicit = re.findall(r"(?:plt|platelets?|count)?\s*(?:<=?|\u2264)\s*([\d.]+)(?![\d.])"
                          r"(?!\s*cycles?)", lowered)
    levels = {float(v) for v in explicit}
    grades = re.findall(r"grades?\s*(>=\s*[1-4]|\u2265\s*[1-4]|[1-4]\s*(?:/\s*[1-4]\s*)+|"
                        r"[1-4]\s*(?:-|\u2013|or|to)\s*[1-4]|[1-4])", lowered)
    for grade in grades:
        key = re.sub(r"\s+", "", grade).replace("\u2265", ">=").replace("\u2013", "-")
        key = {"3or4": "3 or 4", "3to4": "3-4", "2to4": "2-4"}.get(key, key)
        if key not in GRADE_LEVELS:
            return (f"grade {grade.strip()!r} is ambiguous (exactly that grade, or that grade "
                    f"or worse; grade 1 ends at the laboratory's normal limit): write the "
                    f"level, e.g. 'PLT <50', or 'grade 3/4' / 'grade 4'")
        levels.add(GRADE_LEVELS[key])
    events = tuple(dict.fromkeys(event for word, event in COURSE_EVENT_WORDS
                                 if word in lowered))
    transfusion = "transfus" in lowered
    if transfusion and (levels or events):
        return ("it names a transfusion and a platelet level or a course event: one row, "
                "one event")
    from_start = on_study(lowered)
    if transfusion:
        first, last = window if window else (None, None)
        return IncidenceEvent(transfusion=True, first=first, last=last,
                              on_study=from_start and window is not None)
    if levels and events:
        return ("it names both a platelet level and a chemotherapy course event: one row, "
                "one event")
    if len(levels) > 1:
        return (f"it names more than one level ({', '.join(f'{v:g}' for v in sorted(levels))}"
                f"): a grade and a different 'PLT <X'; give one")
    if not levels and not events:
        return ("its threshold names no event the trial can count: a level ('PLT <50', "
                "'grade 3/4', 'grade 4'), a course event (delay, dose reduction, missed "
                "dose, abandoned) or a platelet transfusion")
    if from_start and events:
        return ("it names a course event counted from enrolment: write the endpoint as a "
                "[[composite]] of the after_entry_cycle{j}_on_time flags (the j-th cycle "
                "given after enrolment on time) and give it data_threshold "
                "(docs/trial_files.md, Cycles counted from enrolment)")
    if from_start and window:  # "PLT <50, cycles 1-3 after enrolment": study cycles
        return IncidenceEvent(level=min(levels), first=window[0], last=window[1],
                              on_study=True)
    if from_start:
        if not levels:
            return "from the start of treatment the trial counts a level ('PLT <50')"
        return IncidenceEvent(level=min(levels), from_start=True)
    caveats = []
    if events:
        if "any reason" in lowered or "neutro" in lowered:
            caveats.append("the course delays and reduces cycles for the platelet count only "
                           "(not for other reasons)")
        if "missed" in lowered:
            caveats.append("the course never omits a dose within a cycle (a missed dose is "
                           "read as chemotherapy abandoned)")
    first, last = window if window else (None, None)
    return IncidenceEvent(level=min(levels) if levels else None, events=events,
                          first=first, last=last, caveats=tuple(caveats))


def subject_values(arm: ArmResult, endpoint: str, threshold=None, day=None,
                   day0: str = "treatment_start", rule: ResponseRule | None = None,
                   default_threshold: float = 100.0, smooth: bool = True) -> np.ndarray:
    """One value per eligible subject (NaN where undefined) for the outcome row's
    ``endpoint`` (smooth versions by default: this is what fits predict)."""
    courses = Courses.for_row(arm, threshold, day, day0, rule, default_threshold)
    if endpoint not in ENDPOINTS:
        raise PlateletPDError(f"no simulation rule for endpoint {endpoint!r}")
    return ENDPOINTS[endpoint].values(courses, smooth)


def summarise(values: np.ndarray, statistic: str) -> float:
    """Arm-level prediction on the data's fitting scale (proportions as fractions)."""
    values = values[np.isfinite(values)]
    if values.size == 0:
        return math.nan
    if statistic == "median":
        return float(np.median(values))
    return float(np.mean(values))  # mean, and percent/count/proportion as a fraction


# ====================================================================== outcome-row endpoints
def _time_to_threshold(c: Courses) -> np.ndarray:
    end = c.times[-1]
    if c.low is not None:  # "from <= low to >= level": both crossings measured
        start = crossing_time(c.times, c.counts, c.low, after=np.zeros(len(c.counts)))
        reached = crossing_time(c.times, c.counts, c.level, after=c.nadir_time, upward=True)
        return np.where(np.isnan(reached), end, reached) - start
    reached = crossing_time(c.times, c.counts, c.level, after=np.maximum(c.day0, c.nadir_time),
                            upward=True)
    return np.where(np.isnan(reached), end, reached) - c.day0


def _duration_below(c: Courses) -> np.ndarray:
    down = crossing_time(c.times, c.counts, c.level, after=c.day0)
    up = crossing_time(c.times, c.counts, c.level, after=c.nadir_time, upward=True)
    return np.where(np.isnan(down), 0.0, np.where(np.isnan(up), c.times[-1], up) - down)


def _recovery_days(c: Courses) -> np.ndarray:
    """From the nadir to the level (NaN for a nadir on the last time: no recovery seen)."""
    days = crossing_time(c.times, c.counts, c.level, after=c.nadir_time, upward=True) \
        - c.nadir_time
    return np.where(c.nadir_time < c.times[-1], days, np.nan)


def _response(c: Courses, indicator: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Best count within ``by_day`` (the row's day, else the rule's) against the rule."""
    rule = c.rule
    by_day = float(c.day) if c.day is not None and not math.isnan(c.day) else rule.by_day
    window = c.after(c.day0) & (c.times[None, :] <= (c.day0 + by_day)[:, None])
    best = np.where(window, c.counts, -np.inf).max(axis=1)
    indicators = []
    if rule.threshold is not None:
        indicators.append(indicator(best - rule.threshold))
    if rule.rise is not None:
        indicators.append(indicator(best - c.at(c.day0) - rule.rise))
    return np.maximum.reduce(indicators)


def _smooth_response(c: Courses) -> np.ndarray:
    return _response(c, lambda margin: logistic(margin / RESPONSE_WIDTH))


def _hard_response(c: Courses) -> np.ndarray:
    return _response(c, lambda margin: (margin >= 0).astype(float))


_COUNT, _DAYS = "x10^9/L", "days"
_DATA = [
    ("plt_count", _COUNT, "platelet count at a day", "count",
     lambda c: c.at(c.day0 + c.day), dict(needs_day=True)),
    ("plt_change_from_baseline", _COUNT, "platelet count at a day minus baseline", "count",
     lambda c: c.at(c.day0 + c.day) - c.at(c.day0), dict(needs_day=True)),
    ("plt_percent_change", "%", "percent change of the count from baseline at a day",
     "percent_change", lambda c: 100.0 * (c.at(c.day0 + c.day) / c.at(c.day0) - 1.0),
     dict(needs_day=True)),
    ("nadir_plt", _COUNT, "lowest platelet count from day 0", "count",
     lambda c: c.masked.min(axis=1), {}),
    ("peak_plt", _COUNT, "highest platelet count during recovery (from the nadir)", "count",
     lambda c: c.recovering.max(axis=1), {}),
    ("plt_auc_day0_21", "x10^9/L x day", "platelet count area under the curve, day 0-21",
     "auc", lambda c: auc(c.times, c.counts, c.day0, 21.0), {}),
    ("time_to_threshold_days", _DAYS, "days from day 0 to a count at or above the threshold "
     "after the nadir (censored at the end of follow-up)", "time", _time_to_threshold, {}),
    ("duration_below_days", _DAYS, "days with the count below the threshold", "time",
     _duration_below, {}),
    ("duration_thrombocytopenia_days", _DAYS, "days of thrombocytopenia (threshold as "
     "stated)", "time", _duration_below, {}),
    ("time_to_rise_onset_days", _DAYS, "days from day 0 until the count starts rising "
     "(the nadir)", "time", lambda c: c.nadir_time - c.day0, {}),
    ("time_to_peak_days", _DAYS, "days from day 0 to the peak count", "time",
     lambda c: c.times[np.argmax(c.recovering, axis=1)] - c.day0, {}),
    ("response_proportion", "fraction", "proportion of responders (rule in threshold/fit "
     "configuration)", "proportion", _hard_response, dict(smooth=_smooth_response)),
    ("cumulative_response_proportion", "fraction", "proportion responded by a day",
     "proportion", _hard_response, dict(smooth=_smooth_response, needs_day=True)),
    ("chemotherapy_delay_days", _DAYS, "delay of the next chemotherapy cycle due after "
     "enrolment, days beyond its planned day (a trial on a [chemotherapy] course: "
     "next_cycle_delay_days; a course abandoned: never given, counted as the longest)",
     "time", None, {}),
    ("incidence_proportion", "fraction", "proportion of patients in whom the event named in "
     "threshold happened (e.g. grade 3/4 thrombocytopenia, a chemotherapy delay)",
     "proportion", None, dict(needs_threshold=True)),
]
for _name, _unit, _text, _kind, _definition, _options in _DATA:
    register(Endpoint(_name, _unit, _text, _kind, _definition, in_data=True, **_options))
register(Endpoint("recovery_days", _DAYS, "days from the nadir to a count at or above the "
                  "threshold (NaN if never reached: not censored)", "time", _recovery_days))


# ====================================================================== trial endpoints
def _arm_record(key: str, dtype, default) -> Definition:
    """A per-patient record the arm simulation kept (``ArmResult.extra``)."""
    return lambda c: np.asarray(c.arm.extra.get(key, np.full(c.arm.n, default)), dtype)


def _days_below(level: float) -> Definition:
    return lambda c: np.sum(c.within_cycle(c.counts < level), axis=1) \
        * (c.times[1] - c.times[0])


def _peak_within(days: float) -> Definition:
    """Highest count from the nadir to ``days`` after the start of treatment, the nadir
    taken in that window too (the "peak during treatment" of CIT studies whose courses
    last up to 14 days); NaN for a patient whose follow-up ends before the window does."""
    def peak(c: Courses) -> np.ndarray:
        end = c.day0 + days
        inside = c.after(c.day0) & (c.times[None, :] <= end[:, None])
        nadir_time = c.times[np.argmin(np.where(inside, c.counts, np.inf), axis=1)]
        recovering = np.where(inside & c.after(nadir_time), c.counts, -np.inf)
        return np.where(end <= c.times[-1], recovering.max(axis=1), np.nan)
    return peak


def _days_to(level: float) -> Definition:
    def days(c: Courses) -> np.ndarray:
        reached = c.reached(level)
        censored = np.where(c.baseline < level, c.visit_days[np.maximum(c.last_visit, 0)],
                            np.nan)  # already at the level at day 0: no time to it
        return np.where(reached.any(axis=1), c.visit_days[np.argmax(reached, axis=1)],
                        censored)
    return days


def _from_50_to_100(c: Courses) -> np.ndarray:
    """Days from the first count at or below 50 in the cycle (the treated cycle on a
    course; before day 0 too) to the first count at or above 100 after it and after the
    nadir, on the hourly grid; a patient not back at 100 within the cycle and the
    follow-up counts to their end (as a fit reads "from <=50 to >=100"); NaN for one never
    at or below 50."""
    below = c.within_cycle(c.counts <= 50.0)
    down = c.times[np.argmax(below, axis=1)]
    nadir = c.times[np.argmin(c.cycle_counts(np.inf), axis=1)]
    end = np.full(len(c.counts), c.times[-1])
    if c.follow_up is not None:
        end = np.minimum(end, c.day0 + c.follow_up)
    if c.cycle_window is not None:
        end = np.minimum(end, c.cycle_window[1])
    up = c.within_cycle(c.after(np.maximum(down, nadir)) & (c.counts >= 100.0)) & \
        (c.times[None, :] <= end[:, None])
    reached = np.where(up.any(axis=1), c.times[np.argmax(up, axis=1)], end)
    return np.where(below.any(axis=1), reached - down, np.nan)


#: the counts below which a trial counts days over its follow-up (days_below_{level}); a
#: course's cycles record more (study.cycles.CYCLE_LEVELS)
BELOW_LEVELS = (20, 50)
_TRIAL = [
    ("enrolment_day", _DAYS, "day the patient was enrolled (the count crossed below "
     "entry_below, or an eligibility rule was settled), in days from the chemotherapy (on a "
     "course: from cycle 1's first day)", "time", lambda c: c.arm.entry_time, None),
    ("start_day", _DAYS, "day 0 of the endpoints (the first treatment morning; the "
     "enrolment day with [response] day0 = \"entry\"), counted as enrolment_day", "time",
     lambda c: c.day0, None),
    # the count that enrolled the patient, which [enrolment] entry_between judges (the
    # groups of "rhTPO started at PLT <= 25 / 25-50 / 50-75"); platelets_at_start is the
    # first treatment morning's, start_delay later
    ("platelets_at_enrolment", _COUNT, "count on the enrolment day (the count the entry "
     "rule and entry_between judge)", "count",
     lambda c: values_at(c.arm.times, c.arm.platelets, c.arm.entry_time), None),
    ("treatment_doses", "doses", "treatment days dosed", "number",
     lambda c: np.asarray(c.arm.doses_given, float), "mean"),
    # summarised as a mean: the enrolled population's baseline, which a publication's
    # baseline table reports (Soff 2019: mean 62 at entry) and a trial file should match
    ("platelets_at_start", _COUNT, "count at the start of treatment (the day-0 visit: the "
     "baseline)", "count", lambda c: c.baseline, "mean"),
    ("at_threshold_at_start", "", "count already at or above the response threshold at day "
     "0 (never a responder)", "flag", lambda c: c.at_threshold_at_start, None),
    ("responder", "", "a visit on days 1 to by_day meeting the response rule (not a patient "
     "at or above the threshold at day 0)", "flag",
     lambda c: np.any(c.responded & (c.visit_days <= c.response["by_day"])[None, :], axis=1),
     None),
    ("response_day", _DAYS, "first visit from day 1 meeting the response rule (NaN if "
     "none)", "time",
     lambda c: np.where(c.responded.any(axis=1),
                        c.visit_days[np.argmax(c.responded, axis=1)], np.nan), None),
    # on a [chemotherapy] course "the cycle" is the treated one (Courses.cycle_window), not
    # the whole course: an earlier cycle's nadir, before enrolment, is not the treated
    # cycle's (course_nadir, a course column, is the whole course's)
    ("nadir", _COUNT, "lowest count over the cycle (hourly grid; on a chemotherapy course "
     "the treated cycle: from the first day of the cycle in which treatment starts to the "
     "next cycle's first day)", "count",
     lambda c: c.cycle_counts(np.inf).min(axis=1), "mean"),
    # the recovery peak (self-controlled rhTPO studies report it: heme_rhtpo_selfcontrol)
    ("peak", _COUNT, "highest count from the nadir to the end of follow-up (hourly grid; on "
     "a chemotherapy course the nadir from day 0, both within the treated cycle and the "
     "trial's follow-up)",
     "count", lambda c: c.recovering.max(axis=1), "mean"),
    # the peak during a treatment window (a study's "peak during treatment"; Chen 2025)
    ("peak_14_days", _COUNT, "highest count from the nadir to 14 days after the start of "
     "treatment, the nadir taken in that window (hourly grid; NaN if follow-up ends "
     "earlier)", "count", _peak_within(14.0), "mean"),
    ("peak_21_days", _COUNT, "highest count from the nadir to 21 days after the start of "
     "treatment, the nadir taken in that window (hourly grid; NaN if follow-up ends "
     "earlier)", "count", _peak_within(21.0), "mean"),
    # "grade 3/4 thrombocytopenia during the study treatment" (an incidence row read from
    # enrolment: on a course, the cycles before it are not the study's)
    ("nadir_after_start", _COUNT, "lowest count from the start of treatment (day 0) to the "
     "end of follow-up, through every later cycle of a course (hourly grid)", "count",
     lambda c: np.where(c.after(c.day0) & np.isfinite(c.counts), c.counts,
                        np.inf).min(axis=1), "mean"),
    *[(f"days_below_{_below}", _DAYS, f"days with the count below {_below} over the cycle "
       "(hourly grid; on a chemotherapy course the treated cycle, as nadir)", "time",
       _days_below(_below), "mean") for _below in BELOW_LEVELS],
    # "time from <=50 to >=100" (a published recovery time: the GI-cancer rhIL-11 study
    # a user test wrote, 8.9 against 12.9 days)
    ("days_from_50_to_100", _DAYS, "days from the first count <= 50 in the cycle (before day "
     "0 too; on a course the treated cycle) to the first count >= 100 after it and its "
     "nadir (hourly grid; not back at 100: counted to the end of the cycle or follow-up; "
     "NaN if never <= 50)", "time", _from_50_to_100, "mean"),
    ("plt_day_7", _COUNT, "count 7 days after the start of treatment (NaN if "
     "follow-up ends earlier)", "count",
     lambda c: c.measured(7), "mean"),
    ("plt_day_14", _COUNT, "count 14 days after the start of treatment (NaN if "
     "follow-up ends earlier)", "count",
     lambda c: c.measured(14), "mean"),
    # week 3: persistent-CIT trials judge correction and report counts there (Soff 2019)
    ("plt_day_21", _COUNT, "count 21 days after the start of treatment (NaN if "
     "follow-up ends earlier)", "count",
     lambda c: c.measured(21), "mean"),
    ("auc_21_days", "x10^9/L x day", "area under the count over 21 days from the start",
     "auc", lambda c: auc(c.times, c.counts, c.day0, 21.0), None),
    ("transfusions", "transfusions", "rescue platelet transfusions given", "number",
     _arm_record("rescues", int, 0), "mean"),
    # a two-trigger rescue rule (rescue at_risk_below): the patient's own level
    ("transfusion_trigger", _COUNT, "count below which a visit triggers a rescue "
     "transfusion for this patient (NaN: no two-trigger rule)", "count",
     _arm_record("rescue_below", float, np.nan), None),
    ("titrated", "", "a titration rule changed the dose", "flag",
     _arm_record("titrated", bool, False), None),
    ("dose_holds", "holds", "times a dose rule held the treatment", "number",
     _arm_record("holds", int, 0), "mean"),
    ("dose_changes", "changes", "dose increases, decreases and titrations by dose rules",
     "number", _arm_record("dose_changes", int, 0), "mean"),
    ("treatment_stop_day", _DAYS, "visit at which a stop rule ended treatment (NaN: never)",
     "time", _arm_record("stop_day", float, math.nan), None),
    ("dose_intensity", "", "treatment given as a fraction of the planned doses at their "
     "starting amounts (planned: every dose to max_days, so a stop at recovery lowers it; "
     "NaN: none planned)", "number",
     _arm_record("dose_intensity", float, math.nan), "mean"),
    # "median platelet count on treatment" (Al-Samkari 2021's romiplostim response: >= 75
    # and >= 30 above baseline; a user test, 2026-12-05)
    ("median_plt_on_treatment", _COUNT, "median of the visit counts from day 1 to the "
     "first visit after the last treatment dose given (NaN: no dose given)", "count",
     lambda c: _median_on_treatment(c), "mean"),
    ("status", "", "integration status (0 = SUCCESS; see plateletpd.Status)", "code",
     lambda c: np.asarray(c.arm.status, int), None),
]


def _median_on_treatment(c) -> np.ndarray:
    """Each patient's median visit count (as measured, when visits measure) over the days
    on treatment: visits from day 1 to the first visit after the last dose given (the
    visit that judged it), within the follow-up. NaN for a patient given no dose."""
    amounts = c.arm.extra.get("dose_amounts")
    n = len(c.day0)
    if amounts is None or np.size(amounts) == 0:
        return np.full(n, np.nan)
    days = np.asarray(c.arm.extra["dose_days"], dtype=float)
    given = np.asarray(amounts) > 0
    last = np.where(given.any(axis=1), np.where(given, days[None, :], -np.inf).max(axis=1),
                    np.nan)
    end = (np.floor(last / c.visit_every + 1e-9) + 1) * c.visit_every
    window = c.after_baseline & (c.visit_days[None, :] <= end[:, None] + 1e-9)
    values = np.where(window, c.visits, np.nan)
    has = window.any(axis=1)
    out = np.full(n, np.nan)
    out[has] = np.nanmedian(values[has], axis=1)
    return out
#: the counts a trial times the first visit at or above (days_to_{level}, reached_{level});
#: 50 is ITP's usual response level (time to PLT >= 50), 75 and 100 CIT's recovery levels
RECOVERY_LEVELS = (50, 75, 100)
for _level in RECOVERY_LEVELS:
    _TRIAL += [(f"days_to_{_level}", _DAYS, f"first visit from day 1 with PLT >= {_level} "
                f"(censored at the last visit; NaN if already >= {_level} at day 0)", "time",
                _days_to(_level), None),
               (f"reached_{_level}", "", f"a visit from day 1 with PLT >= {_level}, for a "
                f"patient below {_level} at day 0", "flag",
                lambda c, level=_level: c.reached(level).any(axis=1), None)]
for _name, _unit, _text, _kind, _definition, _summary in _TRIAL:
    register(Endpoint(_name, _unit, _text, _kind, _definition, in_trials=True,
                      summary=_summary))
