"""Anchoring a regimen's depth to its published incidence of a low count.

A trial's ``chemotherapy 1 dose`` is one standard cycle at the fitted typical damage, and a
new regimen is milder or harsher than the calibration studies' (single-agent carboplatin
gives PLT < 50 in about a quarter of patients, CHOP rarely grade 4). Where the regimen's
incidence of a low count in its first cycle is published (a label's grade 3-4 rate, a
natural-history series), ``[population] anchor`` in a trial file solves the typical value of
one model parameter (by default ``chemotherapy_sensitivity``) so that the same share of the
trial's own virtual patients, given the regimen and nothing else, falls below the level
within the first cycle. The drugs, the recovery and everything else are then predicted, not
fitted: the anchor uses the regimen's incidence, not the trial's outcome (a trial whose
outcome *is* that incidence cannot be predicted this way; the report says what was
anchored).

How: the anchoring cohort is ``subjects`` patients drawn with the trial's between-patient
variability from a stream of its own (the trial seed and :data:`ANCHOR_STREAM`); every
patient's value of the parameter is scaled by one factor (for a lognormally varied or an
unvaried parameter this is the same as scaling its typical value); each patient's nadir
over ``within_days`` after the regimen decides; the share is non-decreasing in a damage
parameter, so the factor is found by bisection on its logarithm between the parameter's
bounds. The answer is deterministic for a seed. A trial on a ``[chemotherapy]`` course with
``between_cycle_cv`` gives each anchoring patient's first cycle an exposure factor drawn
as the trial's (log-normal, median 1), through the course's own simulation, so the anchored
share is that of the trial's untreated first cycle. With ``cycles = N`` the share is over
the course's first N cycles given with its own delay rules (a label's incidence over a
whole course), each with its exposure factor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from plateletpd.errors import PlateletPDError
from plateletpd.population.variability import Variability, cohort_matrix

#: the seed stream of the anchoring cohort (arms use 0, 1, ...; replicates 10_000 + r;
#: parameter draws 20_000 + r)
ANCHOR_STREAM = 30_000
#: the bisection stops when the factor is known to 0.1% (the log bracket below 1e-3)
LOG_TOLERANCE = 1e-3


class AnchorError(PlateletPDError):
    """An anchor that cannot be met or is malformed."""


@dataclass(frozen=True)
class Anchor:
    """``[population] anchor``: the share (``percent``) of untreated patients whose count
    falls below ``nadir_below`` within ``within_days`` of the regimen, and its ``source``."""

    nadir_below: float
    percent: float
    source: str
    parameter: str = "chemotherapy_sensitivity"
    within_days: float = 28.0
    subjects: int = 500
    #: the incidence is over the first ``cycles`` cycles of the trial's course, given with
    #: its own delay rules (1: the first cycle; a label's or trial's incidence over a whole
    #: course is published this way); ``within_days`` is then the window after the last
    cycles: int = 1


@dataclass(frozen=True)
class AnchorResult:
    """The solved typical value and what the anchoring cohort gave with it."""

    anchor: Anchor
    regimen: str
    typical_before: float
    typical: float
    percent: float
    valid: int
    between_cycle_cv: float = 0.0

    def sentence(self) -> str:
        a = self.anchor
        exposure = (f" (each given with the course's between-cycle exposure CV "
                    f"{self.between_cycle_cv:g})" if self.between_cycle_cv else "")
        when = (f"within {a.within_days:g} days of {self.regimen!r}" if a.cycles == 1 else
                f"over the first {a.cycles} cycles of {self.regimen!r} (the course's delay "
                f"rules; {a.within_days:g} days after the last)")
        return (f"{a.parameter} anchored to {self.typical:.4g} (from {self.typical_before:.4g}) "
                f"so that {self.percent:.1f}% of {self.valid} untreated virtual patients"
                f"{exposure} fall below {a.nadir_below:g} {when} (target {a.percent:g}%: "
                f"{a.source})")

    def record(self) -> dict:
        a = self.anchor
        return {"parameter": a.parameter, "nadir_below": a.nadir_below,
                "target_percent": a.percent, "within_days": a.within_days,
                "subjects": a.subjects, "cycles": a.cycles, "source": a.source,
                "regimen": self.regimen,
                "typical_before": self.typical_before, "typical": self.typical,
                "achieved_percent": self.percent, "valid_patients": self.valid,
                "between_cycle_cv": self.between_cycle_cv}


def solve_anchor(model, variability: Variability, covariates: dict, cohort_seed: int,
                 regimen: str, anchor: Anchor, course=None,
                 between_cycle_cv: float = 0.0) -> AnchorResult:
    """The typical value of ``anchor.parameter`` that meets ``anchor`` (module text);
    ``cohort_seed`` draws the anchoring cohort (a trial passes its seed's
    :data:`ANCHOR_STREAM`). ``course``: the trial's
    :class:`~plateletpd.study.cycles.ChemotherapyCourse`, with its ``between_cycle_cv``
    the anchoring cohort then shares: each patient's first cycle is given with an exposure
    factor drawn as the trial's (log-normal, median 1), so the anchored share is the share
    the trial's own untreated first cycle has, not that of a cohort without it."""
    from plateletpd.simulation.simulate import simulate_batch

    if anchor.parameter not in model.parameters:
        raise AnchorError(f"anchor parameter {anchor.parameter!r} is not a parameter of "
                          f"{model.name}")
    if anchor.parameter in variability.names and \
            variability.transforms[variability.names.index(anchor.parameter)] != "lognormal":
        raise AnchorError(f"anchor parameter {anchor.parameter!r} is varied with a "
                          f"non-lognormal transform: scaling each patient's value is then "
                          f"not scaling the typical value; vary it lognormally or anchor "
                          f"another parameter")
    if "platelets" not in model.output_names:
        raise AnchorError(f"{model.name} has no platelets output to anchor a nadir on")
    if anchor.cycles > 1 and course is None:
        raise AnchorError(f"an anchor over {anchor.cycles} cycles needs the trial's "
                          f"[chemotherapy] course (its cycle length and delay rules); add "
                          f"one, or anchor on the first cycle (cycles = 1)")
    names = model.parameter_names
    column = names.index(anchor.parameter)
    base = model.parameter_vector({}, covariates)
    typical = float(base[column])
    if not typical > 0:
        raise AnchorError(f"anchor parameter {anchor.parameter!r} has typical value "
                          f"{typical:g}: a multiplicative anchor needs a positive one")
    eta = (variability.eta(anchor.subjects, cohort_seed)
           if variability.width else np.zeros((anchor.subjects, 0)))
    matrix = cohort_matrix(model, base, variability, eta)
    varied_covariates = [c for c in model.covariate_names if c in variability.names]
    times = np.arange(0.0, anchor.within_days * 24.0 + 1.0) / 24.0  # hourly, in days
    bounds = model.parameters[anchor.parameter]

    cv = between_cycle_cv if course is not None else 0.0
    if anchor.cycles > 1:  # the course's first cycles, with its delay rules
        first_cycle = _course_nadirs(model, course, anchor, cohort_seed, cv)
    else:
        first_cycle = _first_cycle_nadirs(model, course, times, cohort_seed,
                                          anchor.subjects, cv) if cv else None

    def share(factor: float) -> tuple[float, int]:
        scaled = matrix[:, column] * factor
        if first_cycle is not None:  # the course's first cycle with its exposure factors
            nadir, ok = first_cycle(np.column_stack([matrix[:, :column], scaled,
                                                     matrix[:, column + 1:]]))
        else:
            params = {name: matrix[:, i] for i, name in enumerate(names)}
            params[anchor.parameter] = scaled
            given = dict(covariates)
            given.update({c: matrix[:, len(names) + model.covariate_names.index(c)]
                          for c in varied_covariates})
            result = simulate_batch(model, regimen, times=times, params=params,
                                    covariates=given, n=anchor.subjects)
            ok = result.success
            # a patient outside the parameter's bounds is not simulated (INVALID_INPUT)
            nadir = np.nanmin(np.asarray(result["platelets"])[ok], axis=1)
        return (100.0 * float(np.mean(nadir < anchor.nadir_below)) if ok.any()
                else math.nan), int(ok.sum())

    low = math.log(max(bounds.lower, typical * 1e-6) / typical)
    high = math.log(bounds.upper / typical) if math.isfinite(bounds.upper) else \
        math.log(1e3)
    at_low, at_high = share(math.exp(low))[0], share(math.exp(high))[0]
    if not (at_low <= anchor.percent <= at_high):
        when = (f"within {anchor.within_days:g} days of {regimen!r}" if anchor.cycles == 1
                else f"over the first {anchor.cycles} cycles of {regimen!r}")
        raise AnchorError(
            f"anchor: {anchor.percent:g}% below {anchor.nadir_below:g} {when} cannot be "
            f"reached by "
            f"{anchor.parameter} within its bounds [{math.exp(low) * typical:.4g}, "
            f"{math.exp(high) * typical:.4g}] (model file): there the untreated share is "
            f"{at_low:.1f}% to {at_high:.1f}%; check the level, the percent or the regimen's "
            f"dose")
    while high - low > LOG_TOLERANCE:  # the smallest factor whose share reaches the target
        middle = 0.5 * (low + high)
        if share(math.exp(middle))[0] >= anchor.percent:
            high = middle
        else:
            low = middle
    factor = math.exp(high)
    percent, valid = share(factor)
    return AnchorResult(anchor, regimen, typical, typical * factor, percent, valid, cv)


def _first_cycle_nadirs(model, course, times: np.ndarray, cohort_seed: int, subjects: int,
                        cv: float):
    """A function of the anchoring cohort's parameter vectors giving each valid patient's
    nadir over ``times`` after a course's first cycle given with a between-cycle exposure
    factor (log-normal, median 1, coefficient of variation ``cv``: the trial's
    ``between_cycle_cv``), drawn once from the cohort's own stream, and the valid mask."""
    one = course.first_cycles(1, delay_below=None, reduce_after_delay_pct=0.0,
                              late_from_days=None, judged_on_day=1.0,
                              follow_up_days=float(times[-1]))
    return _nadirs_on(model, one, _exposure(cohort_seed, 2, subjects, 1, cv), times)


def _course_nadirs(model, course, anchor: Anchor, cohort_seed: int, cv: float):
    """As :func:`_first_cycle_nadirs`, over the first ``anchor.cycles`` cycles of
    ``course`` given with its own rules (delays, re-checks, reductions, abandonment) and a
    window of ``anchor.within_days`` after the last: each valid patient's nadir from the
    first cycle's first day to the window's end. Each cycle's exposure factor is drawn as the
    trial's (log-normal, median 1, CV ``cv``; all 1 without one), from the cohort's own
    stream."""
    several = course.first_cycles(anchor.cycles, follow_up_days=float(anchor.within_days))
    return _nadirs_on(model, several, _exposure(cohort_seed, 3, anchor.subjects,
                                                anchor.cycles, cv))


def _exposure(cohort_seed: int, stream: int, subjects: int, cycles: int,
              cv: float) -> np.ndarray:
    """Each anchoring patient's exposure factor per cycle: log-normal, median 1, CV ``cv``
    (all 1 at 0), from the cohort's own stream ``stream``."""
    omega = math.sqrt(math.log1p(cv * cv))
    return np.exp(omega * np.random.default_rng([cohort_seed, stream]).standard_normal(
        (subjects, cycles)))


def _nadirs_on(model, course, exposure: np.ndarray, times: np.ndarray | None = None):
    """The function of parameter vectors both anchors use: ``course`` run for the patients
    within the model's bounds (the others are not valid), each patient's nadir over the
    whole output grid (``times``, default the course's), and the valid mask."""
    from plateletpd.study.cycles import simulate_course

    lower = np.array([e.lower for e in (*model.parameters.values(),
                                        *model.covariates.values())])
    upper = np.array([e.upper for e in (*model.parameters.values(),
                                        *model.covariates.values())])

    def nadirs(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        valid = np.all((vectors >= lower) & (vectors <= upper), axis=1)
        result = simulate_course(model, course, vectors[valid], exposure=exposure[valid],
                                 times=times)
        ok = np.zeros(len(vectors), dtype=bool)
        ok[np.flatnonzero(valid)[~result.failed]] = True
        return np.nanmin(result.platelets[~result.failed], axis=1), ok
    return nadirs
