"""Parameter uncertainty: replicate trials whose model parameters are drawn from a fit's
uncertainty, so that each endpoint gets a prediction interval beside its sampling interval.

A trial run at the fit's point estimates varies only its patients (between-patient
variability): repeated with new patients, its endpoints spread over a *sampling interval*.
The parameters themselves are known only as well as the fit's data allow; a *prediction
interval* carries that too. :func:`run_uncertainty` runs ``replicates`` trials twice with the
same patient seeds (common random numbers): once at the point estimates (sampling) and once
with the parameters drawn anew for each replicate (prediction), and reports the 2.5th, 50th
and 97.5th percentiles of every arm-summary endpoint across replicates.

How the parameters are drawn (:class:`ParameterDistribution`, from ``params.json``):

* jointly, as correlated standard normals ``z`` from the fit's correlation matrix; each
  varied parameter is ``estimate + standard_error * z`` (the fit's covariance, a
  multivariate normal; the bundled fit's covariance is not rescaled by the reduced
  chi-square, :func:`plateletpd.inference.fitting.run_fit`);
* except where the fit stored a *one-sided* profile likelihood (a 95% interval open at one
  end: the data do not bound the parameter there, and a symmetric normal misstates both
  sides). There ``z`` is mapped through the profile's signed root deviance
  ``r(theta) = sign(theta - estimate) * sqrt(chi2(theta) - chi2_min)`` (approximately
  standard normal; Bates DM, Watts DG, Nonlinear Regression Analysis, Wiley 1988, ch. 6):
  ``theta = r^-1(z)``, linear between the profiled points and extended along the last
  segment beyond them (an assumption: the data say nothing there). For a quadratic profile
  this is exactly the normal draw. A profile that is rough (a refit found a lower
  chi-square) or not monotone on a side is not used; the covariance is, with a note.
* a draw outside the bounds (the fit's and the model file's) is redrawn whole, never
  clipped; the redraws are counted per parameter and reported.

Study-level parameters (a fit parameter standing for a model parameter in one study's arms,
e.g. ``yuan_chemotherapy_sensitivity``) are drawn jointly with the rest; a trial uses one
through ``[population] study_parameters = { model_parameter = "fit_parameter" }``. A fit
holds such a parameter as a fixed effect of one study, not as a distribution over studies,
so a *new* study's effect cannot be drawn from it; a trial of a new population uses the
model-level values and their uncertainty, which leaves out between-study variation (the
notes say so). A fit with study-level random effects (``[study_effects.NAME]`` in its
configuration; ``study_effects`` in ``params.json``) holds the distribution over studies:
then each replicate is a new study, ``NAME = typical x exp(SD x z)`` with the typical value
and the between-study SD taken from that replicate's fit draw and ``z`` standard normal.
Parameters a trial fixes in ``[population] typical`` stay fixed.

What the prediction interval leaves out is what the model gets wrong. Where the model has
a validation record, the intervals are also given widened by the factor the record's rows no
fit was made to call for (:mod:`plateletpd.study.interval_calibration`: the split-conformal
quantile of their standardised errors, tested study by study), as ``calibrated_low`` and
``calibrated_high``; the notes give the factor and its out-of-study coverage.

Seeds: replicate ``r`` simulates patients from the seed :func:`run_replicates` gives it and
draws its parameters from a generator seeded by the trial seed and ``r`` alone, so replicate
``r`` is the same whatever the number of replicates or threads.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from plateletpd.errors import PlateletPDError, closest
from plateletpd.io.display import progress as show_progress
from plateletpd.io.display import progress_due, progress_end, short_repr
from plateletpd.io.files import atomic_write, write_text
from plateletpd.study.interval_calibration import calibrated_columns
from plateletpd.study.trial import (NobodyEnrolledError, TrialResult, TrialSpec, _arm_seed,
                                    record_interval_calibration, run_trial)


class UncertaintyError(PlateletPDError):
    """Parameter uncertainty that cannot be drawn (no fit, no covariance, bad mapping)."""


class EmptyReplicateWarning(UserWarning):
    """Replicate trials with drawn parameters in which an arm enrolled nobody, left out."""


#: a draw is refused after this many redraws per accepted draw (the bounds hold almost none
#: of the distribution's mass)
MAX_REDRAWS_PER_DRAW = 1000
#: the offset of replicate seeds for parameter draws (patients use 10_000 + replicate)
_DRAW_STREAM = 20_000
#: the percentiles an interval spans, and its centre
PERCENTILES = (2.5, 50.0, 97.5)
#: arm-summary columns that describe the trial's size, not an endpoint
_NOT_ENDPOINTS = ("screened", "enrolled", "invalid_parameters", "replicate", "seed")
_INTERVAL_ENDS = ("_lower", "_upper", "_low", "_high")


@dataclass(frozen=True, repr=False)
class ParameterDistribution:
    """Joint uncertainty of named parameters: estimates, standard errors, correlations,
    bounds, and for some parameters a profile-likelihood map (``profiles``: name ->
    (signed roots, values), both increasing) used instead of the normal margin."""

    names: tuple[str, ...]
    estimate: np.ndarray
    standard_error: np.ndarray
    correlation: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    profiles: Mapping[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def __post_init__(self):
        k = len(self.names)
        shapes = [np.shape(a) for a in (self.estimate, self.standard_error, self.lower,
                                        self.upper)]
        if any(shape != (k,) for shape in shapes) or np.shape(self.correlation) != (k, k):
            raise UncertaintyError(f"a parameter distribution of {k} parameters needs {k} "
                                   f"estimates, standard errors and bounds and a {k}x{k} "
                                   f"correlation matrix; got shapes {shapes} and "
                                   f"{np.shape(self.correlation)}")
        bad = [n for n, s in zip(self.names, self.standard_error)
               if not (math.isfinite(s) and s > 0)]
        if bad:
            raise UncertaintyError(f"standard errors must be positive numbers; not so for "
                                   f"{', '.join(bad)}")
        if not np.allclose(self.correlation, self.correlation.T, atol=1e-8) or \
                np.linalg.eigvalsh(self.correlation).min() <= 1e-10:
            raise UncertaintyError(
                f"the correlation matrix of {', '.join(self.names)} is not a valid "
                f"(symmetric, positive definite) correlation matrix: smallest eigenvalue "
                f"{np.linalg.eigvalsh((self.correlation + self.correlation.T) / 2).min():.3g};"
                f" the fit's covariance is degenerate: fix a parameter the data do not "
                f"inform and refit")

    @classmethod
    def from_covariance(cls, names, estimate, covariance, lower=None,
                        upper=None) -> ParameterDistribution:
        """A multivariate normal (optionally truncated to ``lower``/``upper``)."""
        covariance = np.asarray(covariance, float)
        standard_error = np.sqrt(np.diag(covariance))
        k = len(names)
        return cls(tuple(names), np.asarray(estimate, float), standard_error,
                   covariance / np.outer(standard_error, standard_error),
                   np.full(k, -np.inf) if lower is None else np.asarray(lower, float),
                   np.full(k, np.inf) if upper is None else np.asarray(upper, float))

    @classmethod
    def from_fit(cls, record: dict, source: str, held=()
                 ) -> tuple[ParameterDistribution, list[str]]:
        """The varied parameters of a fit record (``params.json``) and notes on each choice;
        ``held``: parameters the trial holds at its own value (``[population] typical``, an
        anchor), still in the distribution (they are correlated with the rest) but left out
        of the notes on what is drawn (a user test, 2026-12-07, read both "drawn from the
        covariance" and "held" for one parameter)."""
        entries = {name: entry for name, entry in record["parameters"].items()
                   if entry.get("vary") and entry.get("expr") is None}
        if not entries:
            raise UncertaintyError(f"fit {source} varies no parameter: there is no "
                                   f"uncertainty to draw")
        missing = [n for n, e in entries.items()
                   if not isinstance(e.get("stderr"), (int, float)) or
                   not math.isfinite(e["stderr"]) or e["stderr"] <= 0]
        if missing:
            raise UncertaintyError(
                f"fit {source} has no standard error for {', '.join(missing)}: its covariance "
                f"could not be estimated (see the identifiability section of its report.md);"
                f" fix those parameters and refit, or run the trial without uncertainty")
        names = tuple(entries)
        correlation = np.eye(len(names))
        for i, a in enumerate(names):
            for j, b in enumerate(names):
                if i != j:
                    correlation[i, j] = 0.5 * (entries[a].get("correlations", {}).get(b, 0.0)
                                               + entries[b].get("correlations", {}).get(a, 0.0))
        notes, profiles = [], {}
        optimum = float(record.get("objective", {}).get("chi_square", math.nan))
        for name, info in record.get("profiles", {}).items():
            if name in entries:
                knots, note = _profile_knots(name, info, optimum)
                # a fitted study's own effect is drawn with the rest but a replicate is a
                # new study, so its profile is no news to the reader (a user test,
                # 2026-12-05, wondered whether other studies' effects applied to theirs)
                if "_effect_" not in name and name not in held:
                    notes.append(note)
                if knots is not None:
                    profiles[name] = knots
        covariance_only = [n for n in names if n not in profiles]
        # the fitted studies' own effects are drawn jointly (they are correlated with the
        # typical value) but a replicate is a new study: named once, not one by one
        own_effects = [n for n in covariance_only if "_effect_" in n]
        listed = [n for n in covariance_only if "_effect_" not in n and n not in held]
        if covariance_only:
            notes.insert(0, f"drawn from the covariance (multivariate normal): "
                            f"{', '.join(listed) or 'nothing else'}" + (
                                f"; with them the {len(own_effects)} fitted studies' own "
                                f"effects (correlated with the typical value; none applies "
                                f"to this trial, a new study)" if own_effects else ""))
        values = [[entries[n][key] for n in names] for key in ("value", "stderr")]
        bounds = [[_bound(entries[n].get(key), default) for n in names]
                  for key, default in (("lower", -np.inf), ("upper", np.inf))]
        return cls(names, *map(np.asarray, values), correlation, *map(np.asarray, bounds),
                   profiles), notes

    @property
    def covariance(self) -> np.ndarray:
        """The covariance of the normal draws (standard errors and correlations)."""
        return self.correlation * np.outer(self.standard_error, self.standard_error)

    def values(self, z: np.ndarray) -> np.ndarray:
        """Parameter values for correlated standard normals ``z`` (draws x parameters)."""
        values = self.estimate + self.standard_error * z
        for name, (roots, grid) in self.profiles.items():
            i = self.names.index(name)
            values[:, i] = _extrapolated(z[:, i], roots, grid)
        return values

    def draw(self, generator: np.random.Generator, size: int = 1
             ) -> tuple[np.ndarray, dict[str, int]]:
        """``size`` draws inside the bounds (draws x parameters) and, per parameter, how many
        rejected draws lay outside its bounds. A whole draw is redrawn when any parameter
        leaves its bounds, so the correlations hold within them."""
        factor = np.linalg.cholesky(self.correlation)
        accepted, outside, attempts = [], np.zeros(len(self.names), int), 0
        while sum(len(a) for a in accepted) < size:
            need = size - sum(len(a) for a in accepted)
            values = self.values(generator.standard_normal((need, len(self.names)))
                                 @ factor.T)
            out = (values < self.lower) | (values > self.upper)
            inside = ~out.any(axis=1)
            accepted.append(values[inside])
            outside += out[~inside].sum(axis=0)
            attempts += need
            if attempts > MAX_REDRAWS_PER_DRAW * size:
                raise UncertaintyError(
                    f"fewer than 1 in {MAX_REDRAWS_PER_DRAW} parameter draws fall inside the "
                    f"bounds (outside: " + ", ".join(f"{n} {c}" for n, c in
                                                     zip(self.names, outside) if c) +
                    "); the fit's uncertainty is far wider than its bounds: check the fit")
        return np.concatenate(accepted)[:size], {n: int(c) for n, c in
                                                 zip(self.names, outside) if c}

    def with_bounds(self, lower: Mapping[str, float], upper: Mapping[str, float]
                    ) -> ParameterDistribution:
        """The same distribution with bounds narrowed to ``lower``/``upper`` where given."""
        return replace(self, lower=np.maximum(self.lower, [lower.get(n, -np.inf)
                                                            for n in self.names]),
                       upper=np.minimum(self.upper, [upper.get(n, np.inf)
                                                     for n in self.names]))

    def __repr__(self) -> str:
        return short_repr("ParameterDistribution", [
            ("parameters", ", ".join(self.names)),
            ("profile-based", ", ".join(self.profiles) or "none")])


def _bound(value, default: float) -> float:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) \
        else default


def _profile_knots(name: str, info: dict, optimum: float):
    """(signed roots, values) of a usable one-sided profile, or None; and a note saying
    which draw the parameter gets and why."""
    grid, chi_square = np.asarray(info["grid"], float), np.asarray(info["chi_square"], float)
    estimate, open_ends = float(info["optimum"]), [e is None for e in info["ci95"]]
    if sum(open_ends) != 1:
        what = "open at both ends" if all(open_ends) else "closed at both ends"
        return None, (f"{name}: its profile is {what}; drawn from the covariance")
    delta = chi_square - optimum
    side = np.sign(grid - estimate)
    usable = math.isfinite(optimum) and delta.min() > -1e-6 and \
        (side < 0).any() and (side > 0).any()
    roots = side * np.sqrt(np.clip(delta, 0.0, None))
    keep = side != 0
    roots, values = np.append(roots[keep], 0.0), np.append(grid[keep], estimate)
    order = np.argsort(values)
    roots, values = roots[order], values[order]
    if not usable or np.any(np.diff(roots) <= 0):
        return None, (f"{name}: its profile is one-sided but rough or not monotone (a refit "
                      f"at or below the optimum's chi-square); drawn from the covariance")
    return (roots, values), (f"{name}: drawn through its one-sided profile likelihood "
                             f"(signed root deviance), extended linearly beyond the profiled "
                             f"range [{values[0]:.4g}, {values[-1]:.4g}]")


def _extrapolated(x: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Piecewise-linear interpolation, continued along the end segments beyond ``xs``."""
    y = np.interp(x, xs, ys)
    below, above = x < xs[0], x > xs[-1]
    y[below] = ys[0] + (x[below] - xs[0]) * (ys[1] - ys[0]) / (xs[1] - xs[0])
    y[above] = ys[-1] + (x[above] - xs[-1]) * (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
    return y


# ====================================================================== trials
@dataclass(frozen=True)
class TrialUncertainty:
    """How a trial's model parameters follow a fit's draws: ``applies`` maps each model
    parameter to the fit parameter whose draw it takes; ``notes`` say what was done."""

    fit: str
    distribution: ParameterDistribution
    applies: dict[str, str]
    notes: tuple[str, ...]
    # fit parameter with study-level random effects -> the fit parameter of its
    # between-study SD: each replicate is a new study, drawn as typical x exp(SD x z)
    new_study: dict[str, str] = field(default_factory=dict)
    # the model file's bounds of each new-study parameter (a study's value may leave the
    # range the fit searched for the typical value, not the range the model can simulate)
    study_bounds: dict[str, tuple[float, float]] = field(default_factory=dict)

    @classmethod
    def for_trial(cls, spec: TrialSpec) -> TrialUncertainty:
        """The uncertainty of the fit ``spec`` takes its parameters from."""
        from plateletpd.model.library import (BETWEEN_CYCLE_PARAMETER, chosen_fit,
                                              load_fit_record)

        model, extra = spec.model, spec.extra
        choice = extra.get("fit", "default")
        name = chosen_fit(model.name, choice)
        if name is None:
            raise UncertaintyError(f"{spec.path}: uncertainty = \"fit\" draws the parameters "
                                   f"from a fit's uncertainty, but the trial uses no fit "
                                   f"([trial] fit = {choice!r}, model {model.name}); name a "
                                   f"fit, or set uncertainty = \"none\"")
        record = load_fit_record(name)
        if record["provenance"]["model"]["name"] != model.name:
            raise UncertaintyError(f"{spec.path}: fit {name} is of model "
                                   f"{record['provenance']['model']['name']!r}, not "
                                   f"{model.name!r}")
        study = dict(extra.get("study_parameters", {}))
        typical = set(extra.get("typical", ())) - set(study)
        held_sd_names = {f"{p}_between_study_sd" for p in (record.get("study_effects") or {})
                         if p in typical}
        distribution, notes = ParameterDistribution.from_fit(record, name,
                                                             held=typical | held_sd_names)
        fitted = distribution.names
        for target, source in study.items():
            if target not in model.parameters:
                raise UncertaintyError(
                    f"{spec.path}: [population] study_parameters: {target!r} is not a "
                    f"parameter of {model.name}{closest(target, model.parameter_names)}")
            if source not in fitted or source in model.parameters:
                study_level = [n for n in fitted if n not in model.parameters]
                raise UncertaintyError(
                    f"{spec.path}: [population] study_parameters {target} = {source!r}: not a "
                    f"study-level parameter varied by fit {name}{closest(source, study_level)}"
                    f"; its study-level parameters: {', '.join(study_level) or 'none'}")
        applies = {n: n for n in fitted if n in model.parameters and n not in typical
                   and n not in study}
        applies.update(study)
        held = [n for n in fitted if n in model.parameters and n in typical]
        if held:
            notes.append(f"held at the trial's [population] typical value or anchor (no "
                         f"uncertainty): "
                         f"{', '.join(held)}")
        effects = record.get("study_effects") or {}
        new_study = {p: f"{p}_between_study_sd" for p in effects
                     if p in applies and f"{p}_between_study_sd" in fitted}
        for parameter, sd in new_study.items():
            notes.append(f"each replicate is a new study: {parameter} = typical x "
                         f"exp(between-study SD x z), z ~ N(0, 1), with the typical value "
                         f"and the SD ({sd}) drawn from the fit (fit {name}: SD "
                         f"{effects[parameter]['between_study_sd']:.3g}); fix it in "
                         f"[population] typical to leave out between-study variation")
        # the between-study SD of a parameter the trial holds: not drawn, and not a fixed
        # effect of one study either (the note below said so, a user test found it wrong)
        held_sds = held_sd_names & set(fitted)
        if held_sds:
            notes.append(f"not drawn, as the trial holds their parameter at its own value: "
                         f"{', '.join(sorted(held_sds))} (the replicates leave out "
                         f"between-study variation of that parameter; [population] regimens "
                         f"= \"several\" still adds the estimated SD to the patients' spread)")
        effect_names = {f"{p}_effect_{study}" for p in effects
                        for study in effects[p].get("studies", {})}
        between = {entry.get("parameter") for entry in
                   (record.get("between_patient") or {}).values()}
        if between & set(fitted):
            estimated = ", ".join(sorted(between & set(fitted)))
            notes.append(f"between-patient CV(s) estimated by fit {name} ({estimated}): "
                         + ("this trial takes them at their estimates (it states no "
                            "[population] cv); their uncertainty is not drawn"
                            if extra.get("cv_from_fit") else
                            "not used: this trial's own [population] cv wins; leave it out "
                            "to take the fit's"))
        if BETWEEN_CYCLE_PARAMETER in fitted:  # [between_cycle]: see docs/fitting.md
            notes.append(f"between-cycle CV of exposure estimated by fit {name}: "
                         + ("this trial takes it at its estimate (its course states no "
                            "between_cycle_cv); its uncertainty is not drawn"
                            if extra.get("between_cycle_from_fit") else
                            "not used: this trial's own between_cycle_cv (or none, without "
                            "a course) wins; leave it out of [chemotherapy] to take the "
                            "fit's"))
        unused = [n for n in fitted if n not in model.parameters and n not in study.values()
                  and n not in new_study.values() and n not in effect_names
                  and n not in held_sds and n not in between
                  and n != BETWEEN_CYCLE_PARAMETER]
        if unused:
            notes.append(
                f"fit {name}'s study-level parameter(s) {', '.join(unused)} are fixed effects "
                f"of one study each and the fit stores no between-study distribution, so a "
                f"new study's effect cannot be drawn; this trial uses the model-level values "
                f"and their uncertainty, which leaves out between-study variation "
                f"([population] study_parameters maps a study's parameter into a trial of "
                f"that study)")
        for target, source in study.items():
            notes.append(f"{target} takes the draws of the study-level {source}")
        lower, upper = {}, {}
        study_bounds = {}
        for target, source in applies.items():
            declared = model.parameters[target]
            lower[source] = max(lower.get(source, -np.inf), declared.lower)
            upper[source] = min(upper.get(source, np.inf), declared.upper)
            if source in new_study:  # the model file's bounds alone, not the fit's
                low, high = study_bounds.get(source, (-np.inf, np.inf))
                study_bounds[source] = (max(low, declared.lower), min(high, declared.upper))
        return cls(name, distribution.with_bounds(lower, upper), applies, tuple(notes),
                   new_study, study_bounds)

    def replicate(self, seed: int, replicate: int) -> tuple[dict[str, float], dict[str, int]]:
        """Replicate ``replicate``'s drawn fit parameters and the redraws it needed."""
        generator = np.random.default_rng(_arm_seed(seed, _DRAW_STREAM + replicate))
        values, outside = self.distribution.draw(generator, 1)
        drawn = dict(zip(self.distribution.names, values[0].tolist()))
        for parameter, sd in self.new_study.items():  # this replicate's study
            # a study value outside the model file's bounds is redrawn, never clipped (as
            # every draw)
            low, high = self.study_bounds.get(parameter, (-np.inf, np.inf))
            for _ in range(MAX_REDRAWS_PER_DRAW):
                z = generator.standard_normal()
                value = drawn[parameter] * math.exp(abs(drawn[sd]) * z)
                if low <= value <= high:
                    break
                outside[parameter] = outside.get(parameter, 0) + 1
            else:
                raise UncertaintyError(
                    f"fewer than 1 in {MAX_REDRAWS_PER_DRAW} new studies drawn from "
                    f"{parameter} = {drawn[parameter]:.4g} x exp(SD {abs(drawn[sd]):.3g} x z) "
                    f"fall inside its bounds [{low:g}, {high:g}]: check the fit")
            drawn[parameter] = value
        return drawn, outside


def replicate_trials(spec: TrialSpec, replicates: int, uncertainty: TrialUncertainty | None
                     = None, progress: bool = False, client=None, screened: list | None = None
                     ) -> Iterator[tuple[int, int, dict, dict, TrialResult]]:
    """(replicate, patient seed, drawn fit parameters, redraws per parameter, result) for
    each replicate trial; patient seeds as :func:`plateletpd.study.trial.run_replicates`.
    ``client``: a Dask client on which all replicates' chunks run at once
    (:mod:`plateletpd.study.distributed`; the same results).

    With parameters drawn from a fit (``uncertainty``), a replicate in which an arm enrols
    nobody is a possible draw (a study whose drawn damage is too mild for its eligibility
    rule) and is left out, with an :class:`EmptyReplicateWarning`: the replicates yielded
    are the studies that enrol, as the published one did. If every replicate is empty, or
    the point estimates enrol nobody (the design itself cannot enrol), the
    :class:`~plateletpd.study.trial.NobodyEnrolledError` is raised.

    ``screened`` (run here, not on a client): a one-element list the caller may set between
    replicates to screen fewer patients per arm than the trial file in the replicates after
    it (a check whose rows need few); every patient's draws depend on its index only, so
    the first patients are the same. A replicate that then enrols nobody runs again with
    the file's number; the caller reruns one that enrols too few for its rows."""
    import warnings

    _check_replicates(replicates)
    empty: list[tuple[int, NobodyEnrolledError]] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if client is None:
            results = _replicates(spec, replicates, uncertainty, progress, screened)
        else:
            results = _distributed_replicates(spec, replicates, uncertainty, progress,
                                              client)
        for replicate, seed, drawn, outside, result in results:
            if not isinstance(result, NobodyEnrolledError):
                yield replicate, seed, drawn, outside, result
            elif uncertainty is None:
                raise result
            else:
                empty.append((replicate, result))
    if len(empty) == replicates:
        raise NobodyEnrolledError(f"every one of the {replicates} replicate trials with "
                                  f"parameters drawn from the fit enrolled nobody in some "
                                  f"arm; the first: {empty[0][1]}")
    if caught:  # one line for all replicates, not one per replicate
        warnings.warn(f"{len(caught)} warning(s) in {replicates} replicate trials; the first: "
                      f"{caught[0].message}", caught[0].category, stacklevel=2)
    if empty:
        warnings.warn(
            f"{len(empty)} of {replicates} replicate trials with parameters drawn from the "
            f"fit enrolled nobody in some arm and are left out (replicate "
            f"{', '.join(str(r) for r, _ in empty)}; the first: {empty[0][1]}); the "
            f"intervals are those of the studies that enrol, as the published one did",
            EmptyReplicateWarning, stacklevel=2)
    if progress:
        progress_end()


def _replicates(spec, replicates, uncertainty, progress, screened=None):
    for replicate in range(replicates):
        seed, drawn, outside, trial = _replicate_spec(spec, replicate, uncertainty)
        if progress and progress_due(replicate + 1, replicates):
            kind = "drawn parameters" if uncertainty else "point estimates"
            show_progress(f"  replicate {replicate + 1}/{replicates} ({kind})")
        result = None
        if screened and 0 < screened[0] < trial.subjects_per_arm:
            try:
                result = run_trial(replace(trial, subjects_per_arm=screened[0]))
            except NobodyEnrolledError:
                result = None  # the file's number decides, as without the hint
        if result is None:
            try:
                result = run_trial(trial)
            except NobodyEnrolledError as error:
                result = error
        yield replicate, seed, drawn, outside, result


def _replicate_spec(spec, replicate, uncertainty):
    """Replicate ``replicate``'s patient seed, drawn parameters, redraws and trial."""
    seed = _arm_seed(spec.seed, 10_000 + replicate)
    model, drawn, outside = spec.model, {}, {}
    if uncertainty is not None:
        drawn, outside = uncertainty.replicate(spec.seed, replicate)
        model = model.with_parameters({target: drawn[source] for target, source in
                                       uncertainty.applies.items()})
    return seed, drawn, outside, replace(spec, seed=seed, model=model)


def _distributed_replicates(spec, replicates, uncertainty, progress, client):
    from plateletpd.study.distributed import run_trials

    drawn = [_replicate_spec(spec, replicate, uncertainty) for replicate in range(replicates)]
    results = run_trials([trial for *_, trial in drawn], client, progress=progress,
                         label="replicate trials", empty="error")
    for replicate, ((seed, values, outside, _), result) in enumerate(zip(drawn, results)):
        yield replicate, seed, values, outside, result


def _check_replicates(replicates) -> None:
    if not isinstance(replicates, (int, np.integer)) or isinstance(replicates, bool) or \
            replicates < 2:
        raise UncertaintyError(f"intervals across replicate trials need at least 2 "
                               f"replicates (200 or more for stable 95% intervals), got "
                               f"{replicates!r}; set [trial] replicates or --replicates")


@dataclass(frozen=True, repr=False)
class UncertaintyResult:
    """Replicate trials at the point estimates and with drawn parameters: ``replicates``
    (one arm-summary row per replicate, arm and ``parameters``: "point estimate" or
    "drawn"), ``draws`` (the drawn fit parameters and redraws per replicate), ``intervals``
    (per arm and endpoint: sampling and prediction medians and 95% intervals), ``notes``."""

    spec: TrialSpec
    replicates: pd.DataFrame
    draws: pd.DataFrame
    intervals: pd.DataFrame
    notes: tuple[str, ...]
    redraws: dict[str, int]

    def __repr__(self) -> str:
        return short_repr("UncertaintyResult", [
            ("trial", self.spec.name), ("replicates", int(self.draws.shape[0])),
            ("redrawn", sum(self.redraws.values()))])

    def plot(self, path: str | Path | None = None, endpoints: list[str] | None = None):
        """Sampling and prediction intervals side by side, one panel per endpoint."""
        return plot_intervals(self.intervals, path, endpoints)


def run_uncertainty(spec: TrialSpec, replicates: int | None = None,
                    progress: bool = False, client=None) -> UncertaintyResult:
    """``replicates`` trials at the point estimates and as many with parameters drawn from
    the fit's uncertainty (same patient seeds); intervals across replicates. ``client``: a
    Dask client to run them on (the same results)."""
    replicates = spec.extra.get("replicates", 1) if replicates is None else replicates
    _check_replicates(replicates)
    uncertainty = TrialUncertainty.for_trial(spec)
    frames, draws, redraws = [], [], {}
    for kind, source in (("point estimate", None), ("drawn", uncertainty)):
        for replicate, seed, drawn, outside, result in replicate_trials(
                spec, replicates, source, progress, client):
            summary = result.summary.reset_index()
            summary.insert(0, "replicate", replicate)
            summary.insert(1, "seed", seed)
            summary.insert(2, "parameters", kind)
            frames.append(summary)
            if source is not None:
                draws.append({"replicate": replicate, "redraws": sum(outside.values()),
                              **drawn})
                for name, count in outside.items():
                    redraws[name] = redraws.get(name, 0) + count
    table = pd.concat(frames, ignore_index=True)
    notes = list(uncertainty.notes)
    notes.append(f"{replicates} replicates; draws outside the bounds redrawn: "
                 f"{sum(redraws.values())}" + (" (" + ", ".join(
                     f"{n} {c}" for n, c in redraws.items()) + ")" if redraws else ""))
    if replicates < 40:
        notes.append(f"with {replicates} replicates the 95% intervals are close to the "
                     f"extreme replicates, not estimates of the 2.5th and 97.5th percentiles;"
                     f" use 200 or more")
    found = intervals(table)
    calibration = record_interval_calibration(spec)
    if calibration is None:
        notes.append("no validation record of this model: the prediction intervals are not "
                     "calibrated on published studies (plateletpd validate)")
    elif not calibration.calibrated:
        notes.append(calibration.text())
    else:
        found = calibrated_columns(found, calibration.factor)
        notes.append(calibration.text() + " uncertainty.csv gives the widened intervals as "
                     "calibrated_low and calibrated_high (docs/trial_files.md, 'Intervals "
                     "calibrated on the validation record'). The factor was measured on "
                     "intervals of virtual studies the size of the published ones: for a "
                     "study of n patients per arm, run the trial with that n (--n), or the "
                     "widened interval is too narrow for it.")
    return UncertaintyResult(spec, table, pd.DataFrame(draws), found, tuple(notes),
                             redraws)


def endpoint_columns(summary: pd.DataFrame) -> list[str]:
    """The arm-summary columns that are endpoints: real numbers, not an interval's ends
    (``*_lower``, ``*_upper``, ``*_ci*``) and not counts of patients (whole numbers)."""
    return [c for c in summary.columns if c not in _NOT_ENDPOINTS and "_ci" not in c
            and not c.endswith(_INTERVAL_ENDS) and pd.api.types.is_float_dtype(summary[c])]


def intervals(table: pd.DataFrame) -> pd.DataFrame:
    """Per arm and endpoint: median and 95% interval across replicates, at the point
    estimates (sampling) and with drawn parameters (prediction)."""
    rows = []
    for arm, group in table.groupby("arm", sort=False):
        for endpoint in endpoint_columns(table.drop(columns=["parameters", "arm"])):
            row = {"arm": arm, "endpoint": endpoint}
            for kind, prefix in (("point estimate", "sampling"), ("drawn", "prediction")):
                values = group.loc[group.parameters == kind, endpoint].to_numpy(float)
                values = values[np.isfinite(values)]
                low, middle, high = np.percentile(values, PERCENTILES) if values.size \
                    else (math.nan,) * 3
                row.update({f"{prefix}_median": middle, f"{prefix}_low": low,
                            f"{prefix}_high": high})
            rows.append(row)
    return pd.DataFrame(rows)


#: the endpoints plotted by default (where the arm summary has them)
PLOTTED = ("response_pct", "response_%", "median_days_to_100", "mean_nadir",
           "mean_plt_day_14")


def plot_intervals(table: pd.DataFrame, path: str | Path | None = None,
                   endpoints: list[str] | None = None):
    """One panel per endpoint, arms down the side: the sampling interval (thin, dark) and
    the prediction interval (thick, light) with their medians, and where the table has it
    the prediction interval widened by the validation record (thin, grey). Written to
    ``path`` if given; the figure is returned."""
    import matplotlib

    if path is not None:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    available = list(dict.fromkeys(table.endpoint))
    chosen = endpoints or [e for e in PLOTTED if e in available] or available[:4]
    unknown = [e for e in chosen if e not in available]
    if unknown:
        raise UncertaintyError(f"cannot plot {', '.join(map(repr, unknown))}: not an endpoint "
                               f"of this trial{closest(unknown[0], available)}; endpoints: "
                               f"{', '.join(available)}")
    figure, axes = plt.subplots(1, len(chosen), figsize=(3.6 * len(chosen), 0.5 *
                                table.arm.nunique() + 1.6), sharey=True, squeeze=False)
    for axis, endpoint in zip(axes[0], chosen):
        rows = table[table.endpoint == endpoint].reset_index(drop=True)
        y = np.arange(len(rows))
        if "calibrated_low" in rows:  # widened by the validation record: thin, grey, under
            axis.hlines(y + 0.12, rows.calibrated_low, rows.calibrated_high, color="grey",
                        lw=1, label="prediction widened by the validation record")
        for offset, prefix, style in ((0.12, "prediction", dict(color="tab:orange", lw=6,
                                                                 alpha=0.5)),
                                      (-0.12, "sampling", dict(color="tab:blue", lw=2))):
            axis.hlines(y + offset, rows[f"{prefix}_low"], rows[f"{prefix}_high"],
                        label=f"{prefix} interval", **style)
            axis.plot(rows[f"{prefix}_median"], y + offset, "|", color="black", ms=10)
        axis.set_yticks(y, rows.arm)
        axis.set_title(endpoint, fontsize=9)
        axis.grid(alpha=0.3, axis="x")
    axes[0][0].invert_yaxis()
    axes[0][-1].legend(fontsize=7, loc="best")
    figure.suptitle("95% intervals across replicate trials: sampling (point estimates) and "
                    "prediction (parameters drawn from the fit)", fontsize=9)
    return finish_figure(figure, path, plt)


def finish_figure(figure, path: str | Path | None, plt):
    """Lay out ``figure``; if ``path`` is given, write it there atomically (the format from
    the suffix) and close it. The figure is returned."""
    figure.tight_layout()
    if path is not None:
        atomic_write(Path(path), lambda p: figure.savefig(p, dpi=110, format=Path(path)
                                                          .suffix.lstrip(".") or "png"))
        plt.close(figure)
    return figure


def write_uncertainty(result: UncertaintyResult, folder: Path) -> list[Path]:
    """``uncertainty.csv`` (intervals), ``uncertainty_replicates.csv``, ``draws.csv``,
    ``uncertainty.png`` and ``uncertainty.md`` (the notes) into ``folder`` (a trial output
    folder being written: call inside its :func:`plateletpd.io.files.atomic_folder`)."""
    folder = Path(folder)
    files = {"uncertainty.csv": result.intervals,
             "uncertainty_replicates.csv": result.replicates, "draws.csv": result.draws}
    for name, table in files.items():
        atomic_write(folder / name, lambda p, t=table: t.to_csv(p, index=False))
    plot_intervals(result.intervals, folder / "uncertainty.png")
    write_text(folder / "uncertainty.md", "\n".join(
        ["# Parameter uncertainty", "", *(f"- {note}" for note in result.notes), "",
         "![sampling and prediction intervals](uncertainty.png)", ""]))
    return [folder / name for name in (*files, "uncertainty.png", "uncertainty.md")]


def with_overrides(spec: TrialSpec, **extra) -> TrialSpec:
    """``spec`` with trial-file keys read by this module and :mod:`plateletpd.study.check`
    (``replicates``, ``uncertainty``, ...); None leaves a key as the file has it."""
    return replace(spec, extra={**spec.extra, **{k: v for k, v in extra.items()
                                                 if v is not None}})
