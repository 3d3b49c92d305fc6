"""Fit model parameters to published arm-level outcomes with lmfit.

A fit configuration (TOML, see ``fits/cit_calibration/config.toml``) names the model, the
outcome data, the parameters to vary (bounds, fixed values or lmfit ``expr``), optional
log-normal priors, the virtual population and, for each study arm, how it was treated
(:class:`~plateletpd.study.cohort.ArmDesign`) and which rows it answers.

For every objective evaluation each arm is simulated for the same virtual patients (common
random numbers: the random effects are drawn once from the seed), its endpoints are
summarised like the publication's, and the residuals are ``(predicted - observed) / SE``
(standard errors from :mod:`plateletpd.io.outcomes`). A prior adds
``(log value - log mean) / sd_log``. lmfit carries bounds and the transforms it needs; the
model only ever sees plain values.

Study-level random effects (``[study_effects.NAME]``): a model parameter whose typical
value differs between studies (a population's chemotherapy damage, its marrow reserve) is
not given a hand-made value per study. Study ``s`` gets ``NAME = typical x exp(sd x u_s)``
with ``u_s ~ N(0, 1)`` (its own fit parameter) and the between-study SD of log NAME, ``sd``,
estimated with them. The objective is the Laplace approximation of the marginal likelihood
over the study effects (empirical Bayes): ``chi-square + sum u_s^2 + sum log(1 + sd^2 H_s)``,
where ``H_s`` is the curvature of the chi-square in study ``s``'s log value (Gauss-Newton,
by finite differences; updated between rounds). Without the log term the joint optimum
would push ``sd`` to its bound; with it ``sd`` is a proper (marginal) estimate. A new study
draws its value from the fitted distribution (``params.json`` ``study_effects``).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from plateletpd.inference.trial_arms import TrialArms, with_spread_standard_errors
from plateletpd.model.library import BETWEEN_CYCLE_PARAMETER
from plateletpd.numerics.kernels import many_batches
from plateletpd.study.check import (SPREAD_STATISTIC, between_patient_kurtosis, reducer,
                                    spread_rows)
from plateletpd.study.cohort import ArmDesign, simulate_treatment_arm
from plateletpd.study.statistics import sample_sd_standard_error
from plateletpd.study.endpoints import DAY0, ResponseRule, subject_values, summarise
from plateletpd.errors import PlateletPDError, closest
from plateletpd.io.display import html_table, short_repr
from plateletpd.io.files import atomic_folder, atomic_write, write_json, write_text
from plateletpd.io.schema import Document, Field, Ref, Table, number_table
from plateletpd.io.provenance import provenance
from plateletpd.model.definition import Model, load_model
from plateletpd.io.outcomes import bundled_outcomes_path, load_outcomes, require_usable
from plateletpd.population.variability import (Variability, cohort_matrix, cv_of_eta_sd,
                                               eta_scales, eta_sd, model_transforms)
from plateletpd.simulation.simulate import _valid_rows

#: chi-square rise that bounds a 95% profile-likelihood interval (chi2 quantile, 1 df)
PROFILE_LEVEL = 3.841


class FitConfigError(PlateletPDError):
    """A fit configuration that cannot be used; the message names the file and the entry."""


@dataclass(frozen=True)
class ArmSpec:
    """One study arm of a fit: its design, day 0, response rule and data rows."""

    study: str
    arm: str
    design: ArmDesign
    day0: str
    response: ResponseRule
    rows: pd.DataFrame
    default_threshold: float = 100.0
    params: dict = field(default_factory=dict)  # arm-specific fixed values (e.g. dose intensity)
    regimens: str = "one"  # "several": the study pooled regimens (FitProblem.patient_cvs)


#: guards the bookkeeping of every FitProblem's arm memory (not the simulations)
_CACHE_LOCK = threading.Lock()


@dataclass(repr=False)
class FitProblem:
    """Everything an objective evaluation needs, built once: from a fit configuration
    (:func:`load_fit_config`) or in code (:meth:`FitProblem.create`)."""

    model: Model
    arms: list[ArmSpec]
    parameters: Any  # lmfit.Parameters
    priors: dict[str, tuple[float, float]]
    variability: Variability
    eta: np.ndarray
    config: dict
    config_path: Path
    data_path: Path
    seed: int
    evaluations: int = 0
    # study-level random effects: model parameter -> {"spread": fit parameter of the
    # between-study SD of its log, "effects": study -> fit parameter of u_s}
    study_effects: dict = field(default_factory=dict)
    curvature: dict = field(default_factory=dict)  # (parameter, study) -> H_s
    # [[trials]] entries: arms run through the trial language (inference/trial_arms.py)
    trials: list[TrialArms] = field(default_factory=list)
    progress_every: float | None = None  # seconds between progress lines (None: silent)
    _started: float = field(default=0.0, repr=False)
    _last_report: float = field(default=0.0, repr=False)
    best: float = math.inf
    # each arm's last predicted rows by its inputs (see _cached): an evaluation re-simulates
    # only the arms whose inputs changed, so a study effect's Jacobian column costs its own
    # study's arms, not the whole fit
    _arm_cache: dict = field(default_factory=dict, init=False, repr=False)
    simulations: int = field(default=0, init=False, repr=False)  # arms simulated (cost)
    restart: dict = field(default_factory=dict, init=False, repr=False)  # see run_fit
    # a profile refit below the optimum by no more than [fit] restart_margin (no restart)
    within_margin: dict = field(default_factory=dict, init=False, repr=False)
    # [fit] start_from: the earlier record the start values came from (_start_from)
    start_from: dict | None = field(default=None, init=False, repr=False)
    # data line -> why its residual may lie beyond LARGE_RESIDUAL SE ([residual_reasons])
    residual_reasons: dict = field(default_factory=dict)
    # between-patient CVs the fit estimates ([between_patient.NAME]): varied quantity ->
    # its fit parameter (NAME_between_patient_cv)
    between_patient: dict = field(default_factory=dict)
    # [between_cycle]: the fit parameter of the between-cycle CV of every [[trials]]
    # entry's course (each cycle's exposure within a patient), or None (the files' own)
    between_cycle: str | None = None

    @classmethod
    def create(cls, model: Model | str, arms: list[ArmSpec], parameters: dict, *, seed: int,
               subjects: int = 200, variability: Variability | None = None,
               priors: dict[str, tuple[float, float]] | None = None,
               data: str | Path | None = None,
               study_effects: dict[str, dict] | None = None,
               trials: list[TrialArms] | None = None,
               residual_reasons: dict[int, str] | None = None,
               between_patient: dict[str, dict] | None = None,
               between_cycle: dict | None = None) -> "FitProblem":
        """A fit built in code: ``arms`` as :class:`ArmSpec` (rows: the arm's outcome rows),
        ``parameters`` name -> start value or ``{"value", "lower", "upper", "vary"}``
        (bounds default to the model file's), ``priors`` name -> (mean, cv) log-normal;
        the random effects are drawn from ``seed`` as in a configuration's fit.
        ``study_effects``: parameter -> the keys of ``[study_effects.NAME]`` (``studies``,
        ``spread``, ``spread_upper``, ``vary_spread``, ``effect_bound``; defaults as there).
        ``trials``: arms run through the trial language (:meth:`TrialArms.create`).
        ``residual_reasons``: data line -> why its residual may lie beyond
        :data:`LARGE_RESIDUAL` SE (``[residual_reasons]``). ``between_patient``: varied
        quantity -> the keys of ``[between_patient.NAME]`` (``value``, ``lower``, ``upper``,
        ``vary``; defaults as there): its CV estimated with the parameters.
        ``between_cycle``: the keys of ``[between_cycle]`` (``value``, ``lower``, ``upper``,
        ``vary``; defaults as there): the trials' between-cycle CV as a fit parameter."""
        import lmfit

        model = load_model(model) if isinstance(model, str) else model
        variability = (variability or Variability.from_cv({})).including_model_draws(model)
        fitted = lmfit.Parameters()
        for name, entry in parameters.items():
            entry = entry if isinstance(entry, dict) else {"value": entry}
            if name not in model.parameters:
                raise FitConfigError(f"{model.name} has no parameter {name!r}"
                                     f"{closest(name, model.parameters)}")
            declared = model.parameters[name]
            fitted.add(name, value=entry.get("value", declared.value),
                       min=entry.get("lower", declared.lower),
                       max=entry.get("upper", declared.upper), vary=entry.get("vary", True))
        defaults = {"studies": None, "spread": 0.3, "spread_upper": 2.0, "vary_spread": True,
                    "effect_bound": 4.0, "start": {}}

        def fail(where, message):
            return FitConfigError(f"fit built in code: {'.'.join(map(str, where))}: {message}")

        trials = list(trials or [])
        effects = _study_effects({name: {**defaults, **entry} for name, entry in
                                  (study_effects or {}).items()}, fitted,
                                 [*arms, *trials], model, fail)
        between = _between_patient({name: {"value": None, "lower": 0.01, "upper": 2.0,
                                           "vary": True, **entry}
                                    for name, entry in (between_patient or {}).items()},
                                   fitted, variability, trials, fail)
        cycle = _between_cycle({**BETWEEN_CYCLE_DEFAULTS, **between_cycle}, fitted, trials,
                               fail) if between_cycle is not None else None
        _check_pooled_regimens([*(("arms", i, a) for i, a in enumerate(arms)),
                                *(("trials", i, t) for i, t in enumerate(trials))],
                               effects, variability, fail)
        return cls(model, list(arms), fitted,
                   {k: (m, math.sqrt(math.log1p(cv ** 2))) for k, (m, cv) in
                    (priors or {}).items()}, variability,
                   variability.eta(subjects, seed), {"fit": {"name": "fit built in code"}},
                   Path("fit built in code"), Path(data or bundled_outcomes_path()), seed,
                   study_effects=effects, trials=trials, between_patient=between,
                   between_cycle=cycle, residual_reasons=_residual_reasons(
                       {str(k): v for k, v in (residual_reasons or {}).items()},
                       [*arms, *trials], fail))

    def __repr__(self) -> str:
        return short_repr("FitProblem", self._summary_items())

    def _summary_items(self) -> list[tuple[str, object]]:
        varied = [name for name, p in self.parameters.items() if p.vary]
        return [("model", self.model.name), ("arms", len(self.arms)),
                *([("trial_arms", ", ".join(f"{t.spec.name}: " + ", ".join(
                    t.spec.arms[i].name for i in t.arms) for t in self.trials))]
                  if self.trials else []),
                ("data_rows", sum(len(arm.rows) for arm in [*self.arms, *self.trials])),
                ("varied", ", ".join(varied) or "none"), ("subjects", self.eta.shape[0]),
                ("seed", self.seed)]

    def _repr_html_(self) -> str:
        return html_table("Fit problem", self._summary_items(),
                          [(a.study, a.arm, a.day0, ", ".join(sorted(set(a.rows.endpoint))))
                           for a in self.arms] +
                          [(t.study, arm, f"trial {t.spec.name}",
                            ", ".join(sorted(set(t.rows.endpoint[t.rows.arm == arm]))))
                           for t in self.trials for arm in t.mapping],
                          ("study", "arm", "day 0", "endpoints"))

    # ------------------------------------------------------------------ simulation
    def cohort_matrix(self, values: dict[str, float], arm_params: dict,
                      cvs: dict[str, float] | None = None) -> np.ndarray:
        """Parameter vectors of the virtual patients (CRN: the same eta every time).

        ``arm_params`` maps model parameters or covariates to a number (fixed for the arm) or
        to the name of a fit parameter (a study-level value, e.g. a population's typical
        chemotherapy sensitivity). ``cvs``: varied quantity -> the between-patient CV to
        draw with instead of [population]'s (:meth:`patient_cvs`; default: the estimated
        ones).
        """
        model = self.model
        arm_params = {k: values[v] if isinstance(v, str) else v for k, v in arm_params.items()}
        base = model.parameter_vector({**{k: v for k, v in values.items()
                                          if k in model.parameters},
                                       **{k: v for k, v in arm_params.items()
                                          if k in model.parameters}},
                                      {k: v for k, v in arm_params.items()
                                       if k in model.covariates})
        cvs = self.between_patient_cvs(values) if cvs is None else cvs
        eta = self.eta * eta_scales(self.variability, cvs) if cvs else self.eta
        matrix = cohort_matrix(model, base, self.variability, eta)  # CVs rescale the effects
        return matrix[_valid_rows(model, matrix)]

    def between_patient_cvs(self, values: dict) -> dict[str, float]:
        """Varied quantity -> the between-patient CV at ``values`` (estimated ones only)."""
        return {name: values[parameter] for name, parameter in self.between_patient.items()}

    def patient_cvs(self, values: dict, spec: ArmSpec | TrialArms) -> dict[str, float]:
        """Varied quantity -> the between-patient CV ``spec``'s patients have at ``values``
        where it is not the CV their random effects were drawn with: the estimated CVs
        ([between_patient]) and, where the study pooled regimens (``regimens =
        "several"``), each quantity with a study effect here at its CV with the fit's
        current between-study SD s of its log added: sd_log^2 = log(1 + CV^2) + s^2, as a
        trial file's [population] regimens = "several" adds a finished fit's (the same
        standard normals, rescaled: common random numbers). A trial's quantity widened
        at load by its own fit's SD but with no study effect in this fit is narrowed back."""
        cvs = self.between_patient_cvs(values)
        if spec.regimens != "several":
            return cvs
        widened = spec.widened_by if isinstance(spec, TrialArms) else {}
        for name in dict.fromkeys([*self.study_effects, *widened]):
            base = eta_sd(cvs[name], "lognormal") if name in cvs \
                else self.one_regimen_sd(spec, name)
            spread = values[self.study_effects[name]["spread"]] \
                if name in self.study_effects else 0.0
            cvs[name] = cv_of_eta_sd(math.hypot(base, spread), "lognormal")
        return cvs

    def one_regimen_sd(self, spec: ArmSpec | TrialArms, name: str) -> float:
        """The SD of ``name``'s random effect in ``spec``'s patients as drawn, less any
        widening for pooled regimens made when its trial file was loaded: the spread one
        regimen's patients have (before a CV the fit estimates replaces it)."""
        if isinstance(spec, ArmSpec):
            return self.variability.sd(name)
        drawn, widened = spec.spec.variability.sd(name), spec.widened_by.get(name, 0.0)
        return math.sqrt(max(drawn ** 2 - widened ** 2, 0.0))

    def predict(self, values: dict[str, float]) -> pd.DataFrame:
        """Every data row with its prediction."""
        frames = [self._cached(values, spec) for spec in [*self.arms, *self.trials]]
        table = pd.concat(frames, ignore_index=True)
        table["residual"] = (table.predicted - table.observed) / table.standard_error
        return table

    #: inputs remembered per arm beyond one per varied parameter: a Jacobian adds at most
    #: one per column and its base point must outlive them all (least recently used goes)
    CACHED_INPUTS = 2

    def _cached(self, values: dict, spec: ArmSpec | TrialArms) -> pd.DataFrame:
        """``spec``'s predicted rows, simulated only if its inputs are not among those of
        its last evaluations (:data:`CACHED_INPUTS` more than the varied parameters).

        The inputs are everything its rows depend on: the model parameters' values, the
        arm's own values (its study's effects resolved, its fixed values) and its cohort
        (random effects, model and variability, compared by identity: a resized cohort is
        another object). The same inputs give the same rows bit for bit (common random
        numbers), so this changes no result, only the cost."""
        model = self.model
        own = {k: values[v] if isinstance(v, str) else v
               for k, v in self.arm_values(values, spec).items()}
        inputs = (tuple(sorted((k, v) for k, v in values.items() if k in model.parameters)),
                  tuple(sorted(own.items())),
                  tuple(sorted(self.patient_cvs(values, spec).items())),
                  self.between_cycle_cv(values))
        cohort = (model, self.variability, self.eta) if isinstance(spec, ArmSpec) \
            else (model, spec)
        with _CACHE_LOCK:  # a worker's threads may share one problem (profile refits)
            entries = self._arm_cache.setdefault(id(spec), [spec, []])  # spec kept: id stays
            for index, (known, kept_cohort, frame) in enumerate(entries[1]):
                if known == inputs and all(a is b for a, b in zip(kept_cohort, cohort)):
                    entries[1].append(entries[1].pop(index))  # most recently used last
                    return frame
        frame = self._arm_rows(values, spec) if isinstance(spec, ArmSpec) \
            else self._trial_rows(values, spec)
        kept = self.CACHED_INPUTS + sum(p.vary for p in self.parameters.values())
        with _CACHE_LOCK:
            self.simulations += 1
            entries[1] = [*entries[1], (inputs, cohort, frame)][-kept:]
        return frame

    def _arm_rows(self, values: dict, spec: ArmSpec) -> pd.DataFrame:
        """An ``[[arms]]`` entry's rows predicted (its cohort simulated)."""
        result = simulate_treatment_arm(self.model, spec.design,
                                        self.cohort_matrix(values, self.arm_values(
                                            values, spec), self.patient_cvs(values, spec)))
        rows = spec.rows.copy()
        predicted, eligible, shape = [], [], []
        for row in rows.itertuples():
            per_subject = subject_values(
                result, row.endpoint, row.threshold, row.day, spec.day0, spec.response,
                spec.default_threshold)
            spread = row.statistic == SPREAD_STATISTIC
            predicted.append(reducer(row.statistic)(per_subject) if spread
                             else summarise(per_subject, row.statistic))
            shape.append(between_patient_kurtosis(per_subject) if spread else math.nan)
            eligible.append(result.n)
        rows["predicted"] = predicted
        rows["virtual_patients"] = eligible
        rows["eligible_fraction"] = result.n / max(result.n_screened, 1)
        return with_spread_standard_errors(rows, shape)

    def _trial_rows(self, values: dict, trial: TrialArms) -> pd.DataFrame:
        """A [[trials]] entry's rows predicted: the fit's model parameters, its study's
        study effects and the entry's params replace the trial's typical values."""
        model = self.model
        own = {k: values[v] if isinstance(v, str) else v
               for k, v in self.arm_values(values, trial).items()}
        return trial.predict({**{k: v for k, v in values.items() if k in model.parameters},
                              **{k: v for k, v in own.items() if k in model.parameters}},
                             {k: v for k, v in own.items() if k in model.covariates},
                             cv=self.patient_cvs(values, trial),
                             between_cycle_cv=self.between_cycle_cv(values))

    def between_cycle_cv(self, values: dict) -> float | None:
        """The between-cycle CV of the trials' courses at ``values`` ([between_cycle]), or
        None where the fit leaves each trial file's own."""
        return None if self.between_cycle is None else float(values[self.between_cycle])

    def arm_values(self, values: dict, spec: ArmSpec | TrialArms) -> dict:
        """The arm's own values: its study's value of each study-level parameter
        (typical x exp(sd x u_study)), then the arm's fixed values and mappings (which win)."""
        own = {}
        for name, effect in self.study_effects.items():
            if spec.study in effect["effects"]:
                own[name] = values[name] * math.exp(values[effect["spread"]]
                                                    * values[effect["effects"][spec.study]])
        return {**own, **spec.params}

    def study_values(self, values: dict) -> dict:
        """parameter -> study -> that study's value (the fitted study effects)."""
        return {name: {study: values[name] * math.exp(values[effect["spread"]] * values[u])
                       for study, u in effect["effects"].items()}
                for name, effect in self.study_effects.items()}

    def unpredicted_rows(self, values: dict) -> list[str]:
        """The data rows without a finite prediction at ``values`` ("line 31 (study, arm,
        endpoint)"): no eligible virtual patient, or a failed integration."""
        table = self.predict(values)
        return [f"line {int(r.line)} ({r.study}, {r.arm}, {r.endpoint})"
                for r in table[~np.isfinite(table.residual)].itertuples()]

    def residuals(self, parameters) -> np.ndarray:
        """lmfit objective: weighted data residuals, prior penalties, then for each study
        effect its N(0, 1) penalty u_s and its Laplace term sqrt(log(1 + sd^2 H_s))."""
        self.evaluations += 1
        values = parameters.valuesdict()
        table = self.predict(values)
        residual = table["residual"].to_numpy()
        missing = [int(line) for line in table.line[~np.isfinite(residual)]]
        # a non-finite prediction (no eligible patient, a failed integration) is a large
        # finite residual so that the optimiser backs away instead of stopping
        residual = np.where(np.isfinite(residual), residual, UNPREDICTED_RESIDUAL)
        penalties = [(math.log(max(values[name], 1e-300)) - math.log(mean)) / sd
                     for name, (mean, sd) in self.priors.items()]
        for name, effect in self.study_effects.items():
            spread = values[effect["spread"]]
            for study, u in effect["effects"].items():
                penalties.append(values[u])
                penalties.append(math.sqrt(math.log1p(
                    spread ** 2 * self.curvature.get((name, study), 0.0))))
        total = np.concatenate([residual, penalties])
        self._progress(float(np.sum(total ** 2)), missing)
        self._last = (self._state(values), total)  # the Jacobian's base point, if it is this
        return total

    def _state(self, values: dict) -> tuple:
        """What the residuals depend on: the values, the cohorts (the objects themselves,
        compared by identity in :meth:`same_state`) and the curvature."""
        return (values, self.eta, tuple(self.trials), tuple(sorted(self.curvature.items())))

    def same_state(self, state: tuple, values: dict) -> bool:
        """Whether residuals computed in ``state`` are those at ``values`` now."""
        known, eta, trials, curvature = state
        return (known == values and eta is self.eta and len(trials) == len(self.trials)
                and all(a is b for a, b in zip(trials, self.trials))
                and curvature == tuple(sorted(self.curvature.items())))

    def _progress(self, objective: float, missing: list[int] = ()) -> None:
        """One line every ``progress_every`` seconds: evaluations, objective, best, time,
        and the data lines without a prediction at this evaluation (a fitting user test,
        2026-12-07, read "objective 2.0001e+06" with nothing to say it was two such rows)."""
        now = time.perf_counter()
        if not self._started:
            self._started = self._last_report = now
        self.best = min(self.best, objective)
        if self.progress_every is not None and (self.evaluations == 1 or
                                                now - self._last_report >= self.progress_every):
            self._last_report = now
            print(f"fit: evaluation {self.evaluations}, objective {objective:.5g} (best "
                  f"{self.best:.5g}), {now - self._started:.0f} s"
                  + (f"; line{'s' if len(missing) > 1 else ''} "
                     f"{', '.join(map(str, missing))} without a prediction here (no virtual "
                     f"patient reaches the row's level or enrols, or the integration "
                     f"failed), each counted as {UNPREDICTED_RESIDUAL:g} standard errors"
                     if missing else ""), flush=True)

    def update_curvature(self, values: dict, step: float = 0.05) -> dict:
        """H_s for every study effect: the Gauss-Newton curvature sum(J^2) of the study's
        data residuals in its log value, J by a forward difference of ``step`` in the log
        (the study's arms re-simulated once each). Stored and returned."""
        for name, effect in self.study_effects.items():
            for study, u in effect["effects"].items():
                arms = [spec for spec in [*self.arms, *self.trials] if spec.study == study]
                base = self._arm_residuals(values, arms)
                shifted = dict(values)
                spread = values[effect["spread"]]
                if spread > 0:
                    shifted[u] = values[u] + step / spread
                else:  # sd 0: shift the study alone through the typical value
                    shifted[name] = values[name] * math.exp(step)
                jacobian = (self._arm_residuals(shifted, arms) - base) / step
                self.curvature[(name, study)] = float(np.nansum(jacobian ** 2))
        return dict(self.curvature)

    def _arm_residuals(self, values: dict, arms: list) -> np.ndarray:
        """The residuals of ``arms`` alone (ArmSpec and TrialArms entries)."""
        before = self.arms, self.trials
        self.arms = [a for a in arms if isinstance(a, ArmSpec)]
        self.trials = [a for a in arms if isinstance(a, TrialArms)]
        try:
            residual = self.predict(values)["residual"].to_numpy()
        finally:
            self.arms, self.trials = before
        return residual


# ====================================================================== configuration
#: The fit configuration's schema: every table, key, type, range and default.
_NOT_FALSE = dict(may_be_false=True)
FIT_SCHEMA = Table({
    "fit": Table({
        "name": Field("text"), "description": Field("text", default=""),
        "model": Field("text", required=True,
                       fix="name the model to fit, e.g. model = \"cit_thrombopoiesis\""),
        "data": Field("text", default="bundled"),
        "seed": Field(required=True, low=0.0, low_included=True, whole=True,
                      what="a non-negative integer (fits are reproducible)"),
        "subjects": Field(whole=True, default=200), "method": Field("text",
                                                                     default="least_squares"),
        "max_evaluations": Field(whole=True, default=400),
        # relative finite-difference step of least_squares; larger than the Monte Carlo
        # granularity of trial arms (patients entering or leaving by eligibility)
        "difference_step": Field(default=1e-3, high=0.5,
                                 what="a relative step in (0, 0.5], e.g. 0.001 (or 0.03 "
                                      "with [[trials]] entries)"),
        "profile": Field("list", item=Field("text"), default=[],
                         what="a list of parameter names"),
        "profile_points": Field(whole=True, default=7, low=2.0),
        # how far each side of the optimum a profile reaches, in standard errors (60% of
        # the value each side x span / 3 without one)
        "profile_span": Field(default=3.0, what="a number of standard errors above 0, e.g. 5"),
        # evaluations per profile refit (each starts on the linearised profile path) and in
        # the final minimisation at larger cohorts (0: max_evaluations); never above
        # max_evaluations (so --max-evaluations caps every phase)
        "profile_evaluations": Field(whole=True, default=60, low=1.0, low_included=True,
                                     what="a whole number of evaluations per profile "
                                          "refit, at least 1, e.g. 15"),
        # how a profile refit minimises: lmfit's least_squares (a Jacobian of its own at the
        # start, then its steps) or Gauss-Newton steps with the Jacobian at the optimum, taken
        # once for every profile and updated by Broyden's secant rule (no Jacobian per
        # refit; _broyden_refit)
        "profile_refit": Field("text", default="least_squares",
                               choices=("least_squares", "broyden")),
        # how far below the optimum (chi-square) a profile refit must reach for the fit to
        # minimise again from it: above the objective's jumps at the fit's sizes
        # (inference/roughness.py; docs/fitting.md, "Is the objective smooth enough?")
        "restart_margin": Field(default=0.5, low=0.0, low_included=True,
                                what="a chi-square difference of 0 or more, e.g. 0.5 "
                                     "(the default) or 3 where the objective is rough"),
        # start values from an earlier fit's params.json (a warm start, as a refit after a
        # change to the data or the code): every varied parameter found there starts at
        # its value there; the others at their value under [parameters]
        # a fit whose values every parameter takes where this configuration gives none (the
        # fixed ones, and the start of the varied ones): "default" (the model's bundled fit)
        "base": Field("text", default="", what='"default" (the model\'s bundled fit), or a '
                                               'fit name or folder'),
        "start_from": Field("text", default="",
                            what="the path of an earlier fit's params.json, relative to "
                                 "this file, e.g. \"params.json\""),
        # each fitted mean row published with an SD gives a second residual: the
        # between-patient SD of its per-patient values against the published SD
        # (fit_spread_rows; docs/fitting.md, "Published SDs as residuals")
        "spread_rows": Field("boolean", default=False),
        "final_evaluations": Field(whole=True, default=0, low=0.0, low_included=True,
                                   what="0 (as max_evaluations) or a whole number of "
                                        "evaluations, e.g. 20"),
        # after the fit: every row re-predicted at the optimum with this many cohorts from
        # other seeds; the SD across them (Monte Carlo error) in predictions.csv, report.md
        "monte_carlo_replicates": Field(whole=True, default=0, low=0.0, low_included=True,
                                        what="0 (off) or a whole number of cohorts, at "
                                             "least 2, e.g. 20"),
        # a last minimisation from the optimum with this many virtual patients per [[arms]]
        # entry (the first `subjects` of them are the fit's own): the reported optimum, its
        # rows and standard errors are at this size; profiles stay at `subjects`
        "final_subjects": Field(whole=True, default=0, low=0.0, low_included=True,
                                what="0 (off) or a whole number of virtual patients per "
                                     "arm at least [fit] subjects, e.g. 1000")},
        required=True),
    "population": Table({"cv": number_table(), "correlations": number_table(-1.0, 1.0),
                         "transforms": Table(names=Field("text"))},
                        hint="; a mixture ([[population.mixture]]) belongs in a trial "
                             "file, which a [[trials]] entry reads with its groups"),
    "parameters": Table(names=Table({
        "value": Field(low=None), "vary": Field("boolean", default=True),
        "lower": Field(low=None), "upper": Field(low=None), "expr": Field("text"),
        "like": Field("text"), "unit": Field("text")})),
    "priors": Table(names=Table({
        "mean": Field(required=True, fix="a log-normal prior needs mean > 0 and cv > 0"),
        "cv": Field(required=True, fix="a log-normal prior needs mean > 0 and cv > 0"),
        "source": Field("text")})),
    "study_effects": Table(names=Table({
        "studies": Field("list", item=Field("text"), nonempty=True,
                         what="a list of study ids from the [[arms]] entries"),
        "spread": Field(default=0.3, low_included=True, high=5.0, unit="SD of log",
                        what="a between-study SD of the log value from 0 to 5"),
        "spread_upper": Field(default=2.0, high=5.0, unit="SD of log"),
        "vary_spread": Field("boolean", default=True),
        "effect_bound": Field(default=4.0, high=10.0,
                              what="a bound on the standardised study effects, e.g. 4"),
        # where each study's u starts (default 0, the typical study): a warm start
        "start": number_table(-10.0, 10.0)})),
    # between-patient CVs estimated with the other parameters (common random numbers: each
    # evaluation rescales the random effects drawn once, never redraws them)
    "between_patient": Table(names=Table({
        "value": Field(what="a start CV above 0 (default: the [population] cv)"),
        "lower": Field(default=0.01, what="a lower bound above 0 for the CV, e.g. 0.01"),
        "upper": Field(default=2.0, high=10.0,
                       what="an upper bound for the CV from above 0 to 10, e.g. 2"),
        "vary": Field("boolean", default=True)})),
    # the between-cycle CV of every [[trials]] entry's course (each cycle's exposure within
    # a patient) as one fit parameter, between_cycle_cv, in place of the files' own
    "between_cycle": Table({
        "value": Field(low_included=True, high=2.0,
                       what="a start CV from 0 to 2 (default: the trials' own, if one)"),
        "lower": Field(default=0.0, low_included=True, high=2.0,
                       what="a lower bound from 0 to 2 for the CV, e.g. 0"),
        "upper": Field(default=1.0, high=2.0,
                       what="an upper bound above 0, at most 2, for the CV, e.g. 1"),
        "vary": Field("boolean", default=True)}),
    "arms": Table({
        "study": Field("text", required=True), "arm": Field("text", required=True),
        "label": Field("text"), "chemotherapy": Field("text", default="chemotherapy 1 dose d1"),
        "treatment": Field("list", item=Field("text"), default=[]),
        "entry_below": Field(default=75.0, **_NOT_FALSE),
        "start_delay": Field(default=1.0, low_included=True),
        "stop_at": Field(default=100.0, **_NOT_FALSE),
        "stop_rise": Field(default=False, **_NOT_FALSE),
        "max_days": Field(default=14, whole=True, low_included=True),
        "follow_up_days": Field(default=35.0),
        "day0": Field("text", default="treatment_start", choices=DAY0),
        "response": Table({
            "threshold": Field(default=100.0, **_NOT_FALSE),
            "rise": Field(default=50.0, **_NOT_FALSE),
            "by_day": Field(default=14.0, high=Ref("follow_up_days"),
                            fix="the response is judged within follow_up_days ({high:g})")}),
        "endpoints": Field("list", item=Field("text")),
        "lines": Field("list", item=Field(whole=True, low=None)),
        "default_threshold": Field(default=100.0),
        # "several": the study pooled regimens (or cancers): its patients' study-level
        # quantities also vary by the fit's current between-study SD (as a trial file's
        # [population] regimens; docs/fitting.md)
        "regimens": Field("text", default="one", choices=("one", "several")),
        "params": Table(names=Field("formula", low=None,
                                    what="a number or the name of a fit parameter"))},
        many=True),
    # why a row's residual lies beyond LARGE_RESIDUAL standard errors at the optimum (issue
    # 17: none without a written reason): data line -> the reason, printed in report.md
    "residual_reasons": Table(names=Field("text", what="the reason, as text")),
    # arms run through the trial language (inference/trial_arms.py, docs/fitting.md)
    "trials": Table({
        "file": Field("text", required=True,
                      fix="name the trial file relative to this configuration, e.g. "
                          "file = \"../../trials/persistent_cit_rct.toml\", or a bundled "
                          "trial's name"),
        "arms": Field("list", item=Field("text"), nonempty=True,
                      what="a list of the trial's arm names, e.g. [\"placebo\"]"),
        "subjects_per_arm": Field(whole=True, what="a positive whole number of patients "
                                                   "screened per arm"),
        # screened per arm in the last minimisation and the Monte Carlo error (0: off);
        # the fit's rounds and profiles run at subjects_per_arm
        "final_subjects_per_arm": Field(whole=True, default=0, low=0.0, low_included=True,
                                        what="0 (off) or a whole number of patients "
                                             "screened per arm, at least subjects_per_arm"),
        "seed": Field(whole=True, low=0.0, low_included=True,
                      what="a non-negative integer (the trial's patients)"),
        "study": Field("text"),
        # the count level below which the study counted days, for rows that state none
        # (replaces every arm's data_level of the trial file: an unstated definition read
        # another way, as [[arms]] default_threshold does)
        "data_level": Field(unit="10^9/L", what="20, 50, 75 or 100 (x10^9/L)"),
        "arm_map": Table(names=Field("names", what="the data arm a trial arm stands for, or a "
                                                     "list of them")),
        "endpoints": Field("list", item=Field("text")),
        "lines": Field("list", item=Field(whole=True, low=None)),
        "params": Table(names=Field("formula", low=None,
                                    what="a number or the name of a fit parameter"))},
        many=True)})


def _unit_key(unit: str) -> str:
    """A unit as compared (spaces and case aside: "ng/mL" = "ng/ml", "1 / h" = "1/h")."""
    return "".join(str(unit).split()).lower()


def load_fit_config(path: str | Path) -> FitProblem:
    """Read and validate a fit configuration against :data:`FIT_SCHEMA`; build its lmfit
    Parameters and arms. Errors name the file, the line and the entry, and say what was
    expected and what was given."""
    import lmfit

    path = Path(path)
    document = Document.read(path, FitConfigError, "fit configuration")
    checked = document.check(FIT_SCHEMA)
    fit, fail = checked["fit"], document.fail
    try:
        model = load_model(fit["model"] if not fit["model"].endswith(".toml")
                           else path.parent / fit["model"])
    except PlateletPDError as error:
        raise fail(("fit", "model"), str(error)) from None
    if fit["base"]:
        from plateletpd.model.library import fitted_values

        try:
            name, values = fitted_values(model.name, fit["base"])
        except PlateletPDError as error:
            raise fail(("fit", "base"), str(error)) from None
        if name is None:
            raise fail(("fit", "base"), f"{model.name} has no bundled fit; name a fit folder")
        model = model.with_parameters(values)
    data_path = bundled_outcomes_path() if fit["data"] == "bundled" \
        else (path.parent / fit["data"]).resolve()
    data = load_outcomes(data_path)

    parameters = lmfit.Parameters()
    for name, entry in checked["parameters"].items():
        where = ("parameters", name)
        # a study-level parameter is not in the model: it stands in for one ("like") in
        # the arms that map to it
        declared_name = entry["like"] or name
        if declared_name not in model.parameters:
            raise fail(where, f"{model.name} has no parameter {declared_name!r}"
                              f"{closest(declared_name, model.parameters)}; a study-level "
                              f"parameter names the model parameter it stands for with like = "
                              f"\"NAME\" (e.g. like = \"chemotherapy_sensitivity\")")
        declared = model.parameters[declared_name]
        if entry["unit"] is not None and _unit_key(entry["unit"]) != _unit_key(declared.unit):
            # a value, bounds and unit given in another unit would run as if in the model's
            # (a user test, 2026-12-05: het_ec50 0.0145 "ug/mL" ran 1000 times too potent)
            raise fail((*where, "unit"), f"{declared_name} is in {declared.unit!r} in "
                       f"{model.name} (the model file's unit), not {entry['unit']!r}: "
                       f"write value, lower and upper in {declared.unit}, and unit = "
                       f"\"{declared.unit}\" or no unit (the configuration converts nothing)")
        lower, upper, value = (declared.lower if entry["lower"] is None else entry["lower"],
                               declared.upper if entry["upper"] is None else entry["upper"],
                               declared.value if entry["value"] is None else entry["value"])
        if not lower < upper:
            raise fail(where, f"bounds [{lower}, {upper}] are not lower < upper: give the "
                              f"lower bound first")
        if lower < declared.lower or upper > declared.upper:
            raise fail(where, f"bounds [{lower}, {upper}] go beyond the model file's "
                              f"[{declared.lower}, {declared.upper}] for {declared_name}: "
                              f"keep them within it")
        if not lower <= value <= upper:
            origin = "" if entry["value"] is not None else (
                " (no value given: the model file's" + (", or the base fit's" if
                                                        fit["base"] else "") + ")")
            raise fail((*where, "value"), f"start value {value}{origin} is outside [{lower}, "
                                          f"{upper}]: give a value inside the bounds")
        parameters.add(name, value=value, min=lower, max=upper,
                       vary=entry["vary"] and entry["expr"] is None, expr=entry["expr"])
        parameters[name].user_data = {"unit": declared.unit, "source": declared.source}

    priors = {}
    for name, entry in checked["priors"].items():
        if name not in parameters:
            raise fail(("priors", name), f"a prior needs the parameter under [parameters]"
                                         f"{closest(name, list(parameters))}")
        priors[name] = (entry["mean"], math.sqrt(math.log1p(entry["cv"] ** 2)))

    population = checked["population"]
    try:
        variability = Variability.from_cv(population["cv"],
                                          {tuple(k.split("~")): v for k, v in
                                           population["correlations"].items()},
                                          model_transforms(model, population["transforms"]))
    except PlateletPDError as error:
        raise fail(("population",), str(error)) from None
    for name in variability.names:
        if name not in model.parameters and name not in model.covariates:
            raise fail(("population", "cv"), f"cannot vary {name!r}: not a parameter or "
                       f"covariate{closest(name, model.parameter_names)}")
    variability = variability.including_model_draws(model)
    eta = variability.eta(fit["subjects"], fit["seed"])

    arms = [_arm(entry, data, ("arms", index), fail, fit["spread_rows"])
            for index, entry in enumerate(checked["arms"])]
    if arms and "cv" not in (document.data.get("population") or {}):
        # a fitting user test (2026-12-07): without [population] every [[arms]] patient was
        # the typical one, subjects = 200 changed nothing, and base = "default" was read as
        # bringing the bundled fit's CVs too (it brings its values only)
        from plateletpd.study.trial import NoVariabilityWarning

        warnings.warn(
            f"{document.path}: no between-patient variability in the [[arms]] entries: "
            f"[population] cv is absent, so every virtual patient is the typical one "
            f"(subjects = {fit['subjects']} adds nothing) and an arm's share of responders "
            f"is 0% or 100%; [fit] base brings the base fit's parameter values, not its "
            f"CVs: copy its [population] table (a bundled fit's is in "
            f"fits/<name>/config.toml) or state the CVs, or write cv = {{}} to mean none",
            NoVariabilityWarning, stacklevel=2)
    trials = [_trial_arms(entry, path, model, data, str(data_path), ("trials", index), fail,
                          variability, fit["spread_rows"])
              for index, entry in enumerate(checked["trials"])]
    if not arms and not trials:
        raise fail(("arms",), "a fit needs at least one [[arms]] or [[trials]] entry")
    _no_row_twice(arms, trials, fail)
    for index, spec in enumerate(arms):
        require_usable(spec.rows, str(data_path))
    for kind, entries in (("arms", arms), ("trials", trials)):
        for index, spec in enumerate(entries):
            for key, value in spec.params.items():
                where = (kind, index, "params", key)
                if key not in model.parameters and key not in model.covariates:
                    raise fail(where, f"{model.name} has no parameter or covariate "
                               f"{key!r}{closest(key, model.parameters)}")
                if isinstance(value, str) and value not in parameters:
                    raise fail(where, f"maps to {value!r}, which is not under "
                               f"[parameters]{closest(value, parameters)}")
    study_effects = _study_effects(checked["study_effects"], parameters, [*arms, *trials],
                                   model, fail)
    between = _between_patient(checked["between_patient"], parameters, variability, trials,
                               fail)
    cycle = _between_cycle(checked["between_cycle"], parameters, trials, fail) \
        if "between_cycle" in document.data else None
    _check_pooled_regimens([*(("arms", i, a) for i, a in enumerate(arms)),
                            *(("trials", i, t) for i, t in enumerate(trials))],
                           study_effects, variability, fail)
    for trial in trials:  # the trial's own typical values the fit replaces (reported)
        trial.overridden = tuple(name for name in trial.typical if name in parameters or
                                 name in trial.params or name in study_effects)
    for number, trial in enumerate(trials):  # an arm's own value would hide the fit's
        for index in trial.arms:
            design = trial.spec.arms[index]
            clash = [name for name, _ in design.typical
                     if name in parameters or name in study_effects]
            if clash:
                raise fail(("trials", number), f"trial arm {design.name!r} of "
                           f"{trial.source} states its own typical {clash[0]} ([[arms]] "
                           f"typical), which this fit sets: the arm would keep its value "
                           f"whatever the fit's; remove it from the arm, or leave the arm "
                           f"out of the fit (arms = [...])")
    reasons = _residual_reasons(checked["residual_reasons"], [*arms, *trials], fail)
    start = _start_from(fit["start_from"], path, parameters, fail) if fit["start_from"] \
        else None
    problem = FitProblem(model, arms, parameters, priors, variability, eta, document.data,
                         path, data_path, fit["seed"], study_effects=study_effects,
                         trials=trials, residual_reasons=reasons, between_patient=between,
                         between_cycle=cycle)
    problem.start_from = start
    return problem


def _start_from(text: str, path: Path, parameters, fail) -> dict:
    """``[fit] start_from``: every varied parameter of ``parameters`` (study effects and
    spreads included) named in the earlier fit's record (its ``params.json``) starts at the
    value recorded there. Returns what the fit's record says of it: the file, its SHA-256,
    the parameters started from it and those that kept their configured start."""
    record_path = (path.parent / text).resolve()
    where = ("fit", "start_from")
    try:
        raw = record_path.read_bytes()
        record = json.loads(raw)
        values = {name: entry["value"] for name, entry in record["parameters"].items()}
    except OSError as error:
        raise fail(where, f"cannot read {record_path}: {error.strerror or error}; give the "
                          f"path of an earlier fit's params.json, relative to this file") \
            from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise fail(where, f"{record_path} is not a fit record: expected a params.json "
                          f"written by plateletpd fit (a \"parameters\" table with a "
                          f"\"value\" for each parameter)") from None
    started, kept = [], []
    for name, parameter in parameters.items():
        if not parameter.vary:
            continue
        value = values.get(name)
        if value is None:
            kept.append(name)
            continue
        if not (isinstance(value, (int, float)) and math.isfinite(value)):
            raise fail(where, f"{record_path} gives {name} = {value!r}, not a finite number")
        if not parameter.min <= value <= parameter.max:
            raise fail(where, f"{record_path} gives {name} = {value:g}, outside this "
                              f"configuration's bounds [{parameter.min:g}, "
                              f"{parameter.max:g}]; widen them under [parameters] or "
                              f"start from another record")
        parameter.set(value=float(value))
        started.append(name)
    if not started:
        raise fail(where, f"{record_path} names none of this configuration's varied "
                          f"parameters ({', '.join(n for n, q in parameters.items() if q.vary)})"
                          f": it is the record of another fit")
    return {"file": text, "sha256": hashlib.sha256(raw).hexdigest(), "started": started,
            "kept": kept}


def values_from_record(problem: FitProblem, record: str | Path) -> dict:
    """Set ``problem``'s varied parameters to the values of an earlier fit's ``params.json``
    (as ``[fit] start_from`` does; a path relative to the working directory); a missing
    file, a non-record, a value outside the bounds or a record naming none of them is a
    clear error. Returns what ``start_from`` records of it."""
    def fail(where, message):
        return FitConfigError(f"{record}: " + message.replace(
            "relative to this file", "relative to the working directory"))
    return _start_from(str(record), Path.cwd() / "values", problem.parameters, fail)


#: a residual (predicted - observed) / SE beyond this many standard errors needs a written
#: reason in the configuration's [residual_reasons] (issue 17 item 3); the report lists them
LARGE_RESIDUAL = 3.0


def _residual_reasons(entries: dict, specs: list, fail) -> dict[int | str, str]:
    """``[residual_reasons]`` as :func:`residual_key` -> reason: each key the line number of
    a row this fit uses, or "LINE sd" for the residual of its published SD (a reason for a
    row the fit does not use would explain nothing)."""
    fitted = {residual_key(row) for spec in specs for row in spec.rows.itertuples()}
    reasons = {}
    for key, text in entries.items():
        where = ("residual_reasons", key)
        parsed = int(key) if key.isdigit() else " ".join(key.split())
        if parsed not in fitted:
            shown = ", ".join(map(str, sorted(fitted, key=lambda k: (int(str(k).split()[0]),
                                                                     str(k)))))
            raise fail(where, f"{key!r} is not the line of a data row this fit uses; the "
                              f"rows fitted are lines {shown} (write the line number as a "
                              f"quoted key, e.g. \"15\" = \"the reason\", or \"15 sd\" for "
                              f"the residual of its published SD)")
        if not text.strip():
            raise fail(where, "the reason is empty: say why this row's residual may be large")
        reasons[parsed] = text.strip()
    return reasons


def large_residuals(table: pd.DataFrame, reasons: dict[int | str, str]) -> list[dict]:
    """The rows whose residual lies beyond :data:`LARGE_RESIDUAL` standard errors, each
    with its written reason (None where the configuration gives none), largest first."""
    large = table[table.residual.abs() > LARGE_RESIDUAL]
    large = large.reindex(large.residual.abs().sort_values(ascending=False).index)
    return [{"line": int(r.line), "study": r.study, "arm": r.arm,
             "endpoint": r.endpoint + (" (between-patient SD)" if getattr(
                 r, "statistic", None) == SPREAD_STATISTIC else ""),
             "residual": float(r.residual), "reason": reasons.get(residual_key(r))}
            for r in large.itertuples()]


def _large_residual_lines(rows: list[dict]) -> list[str]:
    """The report's section on the rows beyond LARGE_RESIDUAL SE (:func:`large_residuals`),
    each with its reason."""
    head = [f"## Residuals beyond {LARGE_RESIDUAL:g} standard errors", ""]
    if not rows:
        return [*head, f"None: every row lies within {LARGE_RESIDUAL:g} SE.", ""]
    missing = [r["line"] for r in rows if r["reason"] is None]
    lines = [*head, f"{len(rows)} row(s); the reasons are the configuration's "
                    f"[residual_reasons]" + (
                        f"; **{len(missing)} without a written reason** (lines "
                        f"{', '.join(map(str, missing))}: add one, or look for the error)"
                        if missing else "") + ".", ""]
    for r in rows:
        lines.append(f"- line {r['line']} ({r['study']}, {r['arm']}, {r['endpoint']}): "
                     f"{r['residual']:+.2f} SE. "
                     + (r["reason"] if r["reason"] is not None
                        else "**No written reason.**"))
    return [*lines, ""]


def _no_row_twice(arms: list[ArmSpec], trials: list[TrialArms], fail) -> None:
    """A data row a [[trials]] entry fits may not be fitted by another entry too (it would
    count twice in the objective)."""
    fitted = {}
    for index, spec in enumerate(arms):
        for line in spec.rows.line:
            fitted.setdefault(int(line), f"[arms #{index + 1}]")
    for index, trial in enumerate(trials):
        twice = [int(line) for line in trial.rows.line if int(line) in fitted]
        if twice:
            raise fail(("trials", index), f"data line(s) {', '.join(map(str, twice))} are "
                       f"fitted by {fitted[twice[0]]} already: each row may count once; leave "
                       f"them out of one entry (endpoints = [...] or lines = [...])",
                       table=True)
        for line in trial.rows.line:
            fitted[int(line)] = f"[trials #{index + 1}]"


def _trial_arms(entry: dict, path: Path, model: Model, data: pd.DataFrame, source: str,
                where: tuple, fail, variability: Variability | None = None,
                spread: bool = False) -> TrialArms:
    """One checked [[trials]] entry: the trial file (relative to the configuration, or a
    bundled trial's name) and its arms, rows and patients (inference/trial_arms.py); a trial
    file stating no [population] cv runs with the fit's ``variability``."""
    file = entry["file"]
    trial = (path.parent / file) if file.endswith(".toml") else file
    return TrialArms.create(
        trial, model, data, arms=entry["arms"], subjects_per_arm=entry["subjects_per_arm"],
        seed=entry["seed"], study=entry["study"], arm_map=entry["arm_map"] or None,
        endpoints=entry["endpoints"], lines=entry["lines"], params=entry["params"],
        final_subjects_per_arm=entry["final_subjects_per_arm"], data_source=source,
        data_level=entry["data_level"],
        fail=lambda key, message: fail((*where, *key), message), variability=variability,
        spread_rows=fit_spread_rows if spread else None)


def study_effect_names(parameter: str, study: str) -> tuple[str, str]:
    """The fit-parameter names of a study effect: (between-study SD, the study's u)."""
    slug = re.sub(r"\W+", "_", study).strip("_")
    return f"{parameter}_between_study_sd", f"{parameter}_effect_{slug}"


def _study_effects(entries: dict, parameters, arms: list[ArmSpec], model: Model,
                   fail) -> dict:
    """Adds the between-study SD and one standardised effect per study to ``parameters``
    for every [study_effects.NAME]; returns FitProblem.study_effects."""
    effects = {}
    known = sorted({spec.study for spec in arms})
    for name, entry in entries.items():
        where = ("study_effects", name)
        if name not in model.parameters:
            raise fail(where, f"{model.name} has no parameter {name!r}"
                              f"{closest(name, model.parameters)}")
        if name not in parameters:
            raise fail(where, f"a study effect needs the typical value of {name} under "
                              f"[parameters] (varied or fixed)")
        if parameters[name].min <= 0:
            raise fail(where, f"{name} varies on the log scale between studies: its lower "
                              f"bound must be above 0, got {parameters[name].min}")
        studies = entry["studies"] or known
        for study in studies:
            if study not in known:
                raise fail((*where, "studies"), f"no [[arms]] entry has study {study!r}"
                                                f"{closest(study, known)} (nor is it a "
                                                f"[[trials]] entry's data study)")
        if not 0 <= entry["spread"] <= entry["spread_upper"]:
            raise fail((*where, "spread"), f"start {entry['spread']} must lie in [0, "
                                           f"spread_upper = {entry['spread_upper']}]")
        spread_name = study_effect_names(name, studies[0])[0]
        parameters.add(spread_name, value=entry["spread"], min=0.0, max=entry["spread_upper"],
                       vary=entry["vary_spread"])
        parameters[spread_name].user_data = {"unit": "SD of log",
                                             "source": f"between-study spread of {name}"}
        bound = entry["effect_bound"]
        starts = entry.get("start") or {}
        for study, value in starts.items():
            if study not in studies:
                raise fail((*where, "start", study), f"{study!r} is not one of this effect's "
                                                     f"studies{closest(study, studies)}")
            if not -bound <= value <= bound:
                raise fail((*where, "start", study), f"start {value} must lie within "
                                                     f"+/- effect_bound = {bound}")
        names = {}
        for study in studies:
            u = study_effect_names(name, study)[1]
            parameters.add(u, value=float(starts.get(study, 0.0)), min=-bound, max=bound,
                           vary=True)
            parameters[u].user_data = {"unit": "SD", "source": f"standardised effect of "
                                                                  f"study {study} on {name}"}
            names[study] = u
        effects[name] = {"spread": spread_name, "effects": names}
    return effects


def _check_pooled_regimens(specs: list, effects: dict, variability: Variability,
                           fail) -> None:
    """Every arm or trial that pools regimens (``regimens = "several"``) can be widened by
    the fit's between-study SDs (:meth:`FitProblem.patient_cvs`): the fit has study
    effects, and each quantity with one varies log-normally between the arm's patients,
    uncorrelated with the others (a rescaled column keeps its correlations, not the
    covariances the trial language keeps when it adds the spread)."""
    for kind, index, spec in specs:
        if spec.regimens != "several":
            continue
        where = (kind, index, "regimens") if kind == "arms" else (kind, index, "file")
        what = (f"the [[arms]] entry {spec.study} / {spec.arm}" if kind == "arms" else
                f"the trial {spec.source} ([population] regimens = \"several\")")
        if not effects:
            raise fail(where, f"{what} pools regimens: its patients' study-level quantities "
                              f"vary by the fit's between-study SD too, but this fit has no "
                              f"[study_effects]; add one (e.g. [study_effects."
                              f"chemotherapy_sensitivity]) or write regimens = \"one\"")
        drawn = variability if kind == "arms" else spec.spec.variability
        for name in effects:
            position = drawn.names.index(name) if name in drawn.names else None
            if position is None or drawn.sd(name) <= 0 or \
                    drawn.transforms[position] != "lognormal":
                source = "[population] cv" if kind == "arms" or spec.spec.extra.get(
                    "cv_from_fit") else f"the trial file's [population] cv"
                raise fail(where, f"{what} pools regimens, so its patients' {name} varies by "
                                  f"the fit's between-study SD added to its between-patient "
                                  f"spread; the random effects are drawn once and rescaled, so "
                                  f"{name} must vary log-normally with a CV above 0 in "
                                  f"{source}; give it one, or write regimens = \"one\"")
            others = np.delete(drawn.covariance[position], position)
            if np.any(others != 0):
                raise fail(where, f"{what} pools regimens, but {name} is correlated with "
                                  f"another quantity in its population: widening by "
                                  f"rescaling would keep the correlation instead of the "
                                  f"covariance; drop the correlation or write regimens = "
                                  f"\"one\"")


def between_patient_name(quantity: str) -> str:
    """The fit-parameter name of an estimated between-patient CV."""
    return f"{quantity}_between_patient_cv"


def _between_patient(entries: dict, parameters, variability: Variability,
                     trials: list, fail) -> dict:
    """Adds one fit parameter per [between_patient.NAME] (its CV, bounds and start) to
    ``parameters``; returns FitProblem.between_patient. The quantity must already vary in
    the fit's [population] and in every [[trials]] entry's trial (random effects are drawn
    once, with those CVs, and rescaled at each evaluation)."""
    between = {}
    for name, entry in entries.items():
        where = ("between_patient", name)
        if name not in variability.names:
            raise fail(where, f"{name!r} does not vary in [population] cv"
                              f"{closest(name, variability.names)}: give it a CV there (the "
                              f"start value; its random effects are drawn with it)")
        index = variability.names.index(name)
        drawn = variability.sd(name)
        if drawn <= 0:
            raise fail(where, f"its [population] cv is 0: random effects drawn with no spread "
                              f"cannot be rescaled; give a CV above 0 there")
        for trial in trials:
            if trial.spec.variability.sd(name) <= 0:
                raise fail(where, f"the trial {trial.source} does not vary {name!r} in its "
                                  f"[population] cv: a CV the fit estimates applies to every "
                                  f"arm, so give the trial a CV above 0 for it there, or "
                                  f"leave out its [population] cv to run it with this fit's")
        transform = variability.transforms[index]
        start = cv_of_eta_sd(drawn, transform) if entry["value"] is None else entry["value"]
        _check_start_and_bounds(start, entry["lower"], entry["upper"], where, fail)
        lower, upper = entry["lower"], entry["upper"]
        parameter = between_patient_name(name)
        if parameter in parameters:
            raise fail(where, f"{parameter} is already a fit parameter")
        parameters.add(parameter, value=start, min=lower, max=upper, vary=entry["vary"])
        parameters[parameter].user_data = {
            "unit": "CV" if transform == "lognormal" else "SD of eta",
            "source": f"between-patient variability of {name} ({transform})"}
        between[name] = parameter
    return between


def _check_start_and_bounds(start: float, lower: float, upper: float, where: tuple,
                            fail) -> None:
    """A CV's bounds must be lower < upper and its start inside them ([between_patient.NAME],
    [between_cycle])."""
    if not lower < upper:
        raise fail(where, f"bounds [{lower:g}, {upper:g}] are not lower < upper")
    if not lower <= start <= upper:
        raise fail((*where, "value"), f"start CV {start:g} is outside [{lower:g}, {upper:g}]: "
                                      f"widen the bounds or give value = ... inside them")


#: the defaults of [between_cycle] (its fit parameter: model.library.BETWEEN_CYCLE_PARAMETER)
BETWEEN_CYCLE_DEFAULTS = {"value": None, "lower": 0.0, "upper": 1.0, "vary": True}


def _between_cycle(entry: dict, parameters, trials: list, fail) -> str:
    """Adds the fit parameter ``between_cycle_cv`` ([between_cycle]: its start, bounds and
    whether it varies) to ``parameters``; returns its name (FitProblem.between_cycle). It
    replaces the between-cycle CV of every [[trials]] entry with a chemotherapy course; a
    fit with none is refused. The start defaults to the trials' own CV where they agree."""
    where = ("between_cycle",)
    courses = [trial for trial in trials if trial.has_course]
    if not courses:
        raise fail(where, "no [[trials]] entry gives a chemotherapy course ([chemotherapy] "
                          "cycles in its trial file): a between-cycle CV varies the exposure "
                          "of each cycle of a course; remove [between_cycle] or fit a course "
                          "trial")
    own = sorted({float(t.spec.extra.get("between_cycle_cv", 0.0)) for t in courses})
    start = entry["value"]
    if start is None:
        if len(own) > 1:
            raise fail((*where, "value"), f"the course trials state different between-cycle "
                                          f"CVs ({', '.join(f'{v:g}' for v in own)}): give "
                                          f"the start, value = ...")
        start = own[0]
    _check_start_and_bounds(start, entry["lower"], entry["upper"], where, fail)
    lower, upper = entry["lower"], entry["upper"]
    if BETWEEN_CYCLE_PARAMETER in parameters:
        raise fail(where, f"{BETWEEN_CYCLE_PARAMETER} is already a fit parameter")
    parameters.add(BETWEEN_CYCLE_PARAMETER, value=start, min=lower, max=upper,
                   vary=entry["vary"])
    parameters[BETWEEN_CYCLE_PARAMETER].user_data = {
        "unit": "CV", "source": "between-cycle variability of each cycle's chemotherapy "
                                "exposure within a patient (the course trials' "
                                "between_cycle_cv)"}
    return BETWEEN_CYCLE_PARAMETER


def fit_spread_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The residual rows a fit adds for ``rows``' published between-patient SDs
    (``[fit] spread_rows``): for each ``mean`` row whose spread is an SD
    (:func:`plateletpd.study.check.spread_rows`, statistic ``sd``) and whose ``n`` is at
    least 2, a row with that SD as ``observed``. Its standard error is that of a sample SD
    of ``n`` values shaped like the arm's simulated ones
    (:func:`sample_sd_standard_error` with their kurtosis), set at each evaluation; the
    table holds the normal-data value, SD / sqrt(2 (n - 1)). The row keeps its mean row's
    line."""
    derived = spread_rows(rows)
    derived = derived[derived.statistic == SPREAD_STATISTIC].drop(columns="row_index")
    n = pd.to_numeric(derived.n, errors="coerce").to_numpy(float)
    derived = derived[np.isfinite(n) & (n >= 2)].copy()
    n = pd.to_numeric(derived.n, errors="coerce").to_numpy(float)
    sd = derived.value.to_numpy(float)
    derived["observed"] = sd
    derived["standard_error"] = sample_sd_standard_error(sd, n)
    derived["standard_error_basis"] = [
        f"a published between-patient SD ({value:g}, n {int(size)}): SE of a sample SD of "
        f"{int(size)} values with the kurtosis k of the arm's simulated ones, "
        f"SD / 2 x sqrt((k - 1) / n + 2 / (n (n - 1))) (SD / sqrt(2 (n - 1)) at k = 3)"
        for value, size in zip(sd, n)]
    return derived.reset_index(drop=True)


def residual_key(row) -> int | str:
    """A fitted row's key among the reasons of ``[residual_reasons]``: its data line, or
    "LINE sd" for the residual of its published between-patient SD
    (:func:`fit_spread_rows`)."""
    spread = getattr(row, "statistic", None) == SPREAD_STATISTIC
    return f"{int(row.line)} sd" if spread else int(row.line)


def _arm(entry: dict, data: pd.DataFrame, where: tuple, fail,
         spread: bool = False) -> ArmSpec:
    """One checked [[arms]] entry with its data rows and design (and, with ``spread``,
    the rows of its published between-patient SDs: :func:`fit_spread_rows`)."""
    study, arm = entry["study"], entry["arm"]
    rows = data[(data.study == study) & (data.arm == arm)]
    if rows.empty:
        known = sorted(set(data.study + " / " + data.arm))
        raise fail(where, f"no data rows for study {study!r} arm {arm!r}"
                          f"{closest(f'{study} / {arm}', known)}")
    if entry["endpoints"] is not None:
        rows = rows[rows.endpoint.isin(entry["endpoints"])]
    if entry["lines"] is not None:
        rows = rows[rows.line.isin(entry["lines"])]
    if rows.empty:
        raise fail(where, "the endpoints/lines filters leave no data rows")
    from plateletpd.study.endpoints import ENDPOINTS as REGISTRY

    unpredictable = rows[[REGISTRY[e].definition is None for e in rows.endpoint]]
    if len(unpredictable):
        # an [[arms]] entry simulates one arm without a course or rescue rules: endpoints
        # such as incidence_proportion (a course's events, transfusions) are read by a
        # [[trials]] entry from a trial file, not here
        lines = ", ".join(map(str, unpredictable.line))
        raise fail(where, f"line(s) {lines} ({', '.join(dict.fromkeys(unpredictable.endpoint))})"
                          f": an [[arms]] entry cannot predict that endpoint; fit those rows "
                          f"through a [[trials]] entry (a trial file; docs/fitting.md), or "
                          f"leave them out with endpoints = [...] or lines = [...]")
    try:
        design = ArmDesign(
            name=entry["label"] or f"{study}/{arm}", chemotherapy=entry["chemotherapy"],
            treatment=tuple(entry["treatment"]), entry_below=entry["entry_below"],
            start_delay=entry["start_delay"], stop_at=entry["stop_at"],
            stop_rise=entry["stop_rise"], max_days=entry["max_days"],
            follow_up_days=entry["follow_up_days"], smooth_stop=True)
        response_rule = ResponseRule(**entry["response"])
    except PlateletPDError as error:
        raise fail(where, str(error)) from None
    _check_response_levels(rows, response_rule, where, fail)
    if spread:
        rows = pd.concat([rows, fit_spread_rows(rows)], ignore_index=True)
    return ArmSpec(study, arm, design, entry["day0"], response_rule,
                   rows.reset_index(drop=True), entry["default_threshold"],
                   dict(entry["params"]), entry["regimens"])


def _check_response_levels(rows: pd.DataFrame, rule: ResponseRule, where: tuple,
                           fail) -> None:
    """Refuse a response row whose threshold names a count level other than the entry's
    response rule: the row would be read by the rule and its own level ignored (a user
    test: a row at 75 gave the chi-square of the row at 100). A threshold naming no level
    ("study-defined response") is read by the rule, as before."""
    from plateletpd.study.endpoints import stated_level

    for row in rows.itertuples():
        if row.endpoint not in ("response_proportion", "cumulative_response_proportion"):
            continue
        level = stated_level(row.threshold)
        if level is not None and level != rule.threshold:
            raise fail(where, f"line {row.line}: its response level {level:g} is not "
                              f"the entry's response rule (threshold "
                              f"{rule.threshold if rule.threshold is not None else 'none'}); "
                              f"set response = {{ threshold = {level:g}, ... }} in this "
                              f"[[arms]] entry, or give the row's level its own entry")


# ====================================================================== running and reporting
class FitRun(NamedTuple):
    """What :func:`run_fit` returns (unpacks as ``problem, result, predictions``):
    ``problem`` the :class:`FitProblem` (its ``predict(values)`` gives every row at any
    values), ``result`` lmfit's ``MinimizerResult`` at the reported optimum (``params``
    with values, standard errors and correlations; ``chisqr``), ``predictions`` every data
    row with its prediction and residual (predictions.csv)."""

    problem: "FitProblem"
    result: object
    predictions: pd.DataFrame

    @property
    def values(self) -> dict[str, float]:
        """Every fit parameter's value at the reported optimum."""
        return dict(self.result.params.valuesdict())

    def __repr__(self) -> str:
        varied = [p for p in self.result.params.values() if p.vary]
        estimates = ", ".join(
            f"{p.name} {p.value:.4g}" + (f" +/- {p.stderr:.2g}" if p.stderr else "")
            for p in varied[:6]) + (f", ... ({len(varied)} varied)" if len(varied) > 6 else "")
        state = "NOT CONVERGED (stopped at its evaluation cap)" if stopped_at_cap(self.result) \
            else "converged" if getattr(self.result, "success", True) else \
            f"stopped: {getattr(self.result, 'message', 'not converged')}"
        return (f"FitRun({self.problem.model.name}: {estimates}; chi-square "
                f"{float(self.result.chisqr):.4g} on {len(self.predictions)} rows; {state})")


@many_batches
def run_fit(config_path: str | Path, out: str | Path | None = None, method: str | None = None,
            max_evaluations: int | None = None, verbose: bool = True,
            profile_parameters: bool = True, client=None, progress_every: float = 10.0,
            monte_carlo_replicates: int | None = None):
    """Fit, profile the parameters listed under ``[fit] profile``, then write params.json,
    report.md, fit.png (and profiles.png) to ``out`` (if given). ``client``: a Dask client
    on which the profile refits run (:mod:`plateletpd.study.distributed`; same values).
    ``max_evaluations`` caps every minimisation: the fit (each round with study effects),
    a restart from a profile refit, each profile refit (``[fit] profile_evaluations``,
    default 60, if lower) and the final minimisation (``[fit] final_evaluations``, if
    set and lower). ``verbose``: a progress line (evaluations, objective, elapsed
    time) every ``progress_every`` seconds and at each phase. ``monte_carlo_replicates``
    (default: ``[fit] monte_carlo_replicates``; 0: none): after the fit, the Monte Carlo
    error of every row (:func:`monte_carlo_error`), written beside the predictions."""
    import lmfit

    problem = load_fit_config(config_path)
    if verbose and problem.start_from:
        print(f"fit: {len(problem.start_from['started'])} varied parameters start from "
              f"{problem.start_from['file']}", flush=True)
    fit_options = problem.config.get("fit", {})
    replicates = fit_options.get("monte_carlo_replicates", 0) \
        if monte_carlo_replicates is None else monte_carlo_replicates
    if replicates == 1 or not isinstance(replicates, int) or replicates < 0:
        raise FitConfigError(f"{config_path}: monte_carlo_replicates must be 0 (off) or a "
                             f"whole number of at least 2 (an SD needs two cohorts), got "
                             f"{replicates!r}")
    final_subjects = fit_options.get("final_subjects", 0)
    if final_subjects and final_subjects < problem.eta.shape[0]:
        raise FitConfigError(f"{config_path}: final_subjects ({final_subjects}) must be 0 "
                             f"(off) or at least [fit] subjects ({problem.eta.shape[0]}): "
                             f"the last minimisation refines the optimum with more "
                             f"virtual patients, not fewer")
    method = method or fit_options.get("method", "least_squares")
    max_evaluations = max_evaluations or fit_options.get("max_evaluations", 400)
    if not any(p.vary for p in problem.parameters.values()):
        raise FitConfigError(f"{config_path}: no parameter varies; set vary = true for one")
    varied = [name for name, p in problem.parameters.items() if p.vary]
    for name in (fit_options.get("profile", []) if profile_parameters else []):
        # checked before the minimisation, not after it (a user lost a fit to a typo)
        if name not in varied:
            why = ("is fixed (vary = false)" if name in problem.parameters else
                   "is not a parameter of this fit")
            raise FitConfigError(f"{config_path}: [fit] profile names {name!r}, which {why}"
                                 f"{closest(name, varied)}; profile the varied parameters: "
                                 f"{', '.join(varied)}")
    if verbose and out is None:
        print("fit: no --out given: the fit runs but nothing is written", flush=True)
    problem.progress_every = progress_every if verbose else None
    options = {"max_nfev": max_evaluations}
    # with study effects: the curvature H_s at the start, a fit, H_s again at that optimum,
    # a second fit from it (each capped at max_evaluations)
    rounds = 2 if problem.study_effects else 1
    parameters = problem.parameters
    for round_number in range(rounds):
        problem.best = math.inf  # the objective changes with the curvature: best per round
        if problem.study_effects:
            problem.update_curvature(parameters.valuesdict())
            if verbose:
                print(f"fit: round {round_number + 1} of {rounds}, study-effect curvature "
                      + ", ".join(f"{s}: {h:.3g}" for (_, s), h in problem.curvature.items()),
                      flush=True)
        # residuals are already divided by the published standard errors (absolute
        # weights), so the covariance is not rescaled by the reduced chi-square
        result = minimise(problem, parameters, method, options)
        _settle_spreads(problem, result, verbose)
        parameters = result.params
    if not result.errorbars:
        # as after a restart and the final minimisation: without this a fit stopped at
        # its cap reported no standard errors where a worse one with a restart did (a
        # fitting user test, 2026-12-05); the note says they are an unfinished fit's
        _covariance_at_optimum(problem, result, difference_step(problem), verbose)
    profiled = fit_options.get("profile", []) if profile_parameters else []
    profiles = _profiles(problem, result, profiled, fit_options, max_evaluations, client,
                         verbose)
    if profiles:
        before = result
        result = _restart_from_profiles(problem, result, profiles, method, options, verbose,
                                        fit_options.get("restart_margin", RESTART_MARGIN))
        if result is not before:
            # the profiles were taken around an optimum the fit has left: again around the
            # one it reports (once: a second restart is not made, the report says so)
            if verbose:
                print("fit: the profiles again, around the restarted optimum", flush=True)
            profiles = _profiles(problem, result, profiled, fit_options, max_evaluations,
                                 client, verbose)
            problem.restart["profiled_again"] = True
            problem.restart["below_again"] = _profiles_below_their_optimum(
                profiles, fit_options.get("restart_margin", RESTART_MARGIN))
    larger_trials = any(t.final_subjects_per_arm > t.spec.subjects_per_arm
                        for t in problem.trials)
    if (final_subjects and final_subjects > problem.eta.shape[0]) or larger_trials:
        final = min(fit_options.get("final_evaluations", 0) or max_evaluations,
                    max_evaluations)
        result = _refine(problem, result, max(final_subjects, problem.eta.shape[0]),
                         method, {**options, "max_nfev": final}, verbose)
    # the configuration's start (not a restart's or the final minimisation's): what "never
    # left its start" is judged against (a fitting user test, 2026-12-04: the note named a
    # parameter that had moved from 4.30 to 4.36, measured from the restart's start)
    result.configured_start = {name: p.value for name, p in problem.parameters.items()
                               if p.vary}
    if verbose and stopped_at_cap(result):
        print(f"fit: NOT CONVERGED: the minimisation stopped at its evaluation cap "
              f"({result.nfev} evaluations) before converging; raise --max-evaluations (or "
              f"[fit] max_evaluations). The estimates and standard errors are those of an "
              f"unfinished fit", flush=True)
    table = problem.predict(result.params.valuesdict())
    if replicates:
        if verbose:
            print(f"fit: Monte Carlo error, {replicates} cohorts from other seeds at the "
                  f"optimum", flush=True)
        table = monte_carlo_error(problem, result.params.valuesdict(), replicates, table)
    if out is not None:
        write_fit(problem, result, table, Path(out), profiles)
    if verbose:
        print(lmfit.fit_report(result, show_correl=False))
        for note in identifiability(result, profiles):  # what the report says, on screen
            print(f"note: {note}", flush=True)
    return FitRun(problem, result, table)


def _profiles(problem: FitProblem, result, names: list, fit_options: dict,
              max_evaluations: int, client, verbose: bool) -> dict:
    """The profile of every parameter in ``names`` around ``result``'s optimum
    (``[fit] profile_points``, ``profile_evaluations`` capped by ``max_evaluations``,
    ``profile_refit``)."""
    profiles = {}
    evaluations = min(fit_options.get("profile_evaluations", 60), max_evaluations)
    broyden = fit_options.get("profile_refit", "least_squares") == "broyden"
    jacobian = optimum_jacobian(problem, result, verbose) if names and broyden else None
    for name in names:
        problem.best = math.inf
        if verbose:
            print(f"fit: profile of {name} ({fit_options.get('profile_points', 7)} "
                  f"{'Broyden ' if broyden else ''}refits, each at most {evaluations} "
                  f"evaluations)", flush=True)
        profiles[name] = profile(problem, result, name, fit_options.get("profile_points", 7),
                                 span=fit_options.get("profile_span", 3.0),
                                 client=client, max_evaluations=evaluations,
                                 jacobian=jacobian)
    return profiles


#: the default of ``[fit] restart_margin``: how much lower than the optimum (chi-square) a
#: profile refit must reach for the fit to minimise again from it. It should exceed the
#: objective's jumps at the fit's sizes (hard enrolment rules make rows jump:
#: :func:`plateletpd.inference.roughness.objective_roughness` measures them) to restart only
#: from drops larger than the jumps (a drop within them may still lead lower: docs/fitting.md)
RESTART_MARGIN = 0.5


def _restart_from_profiles(problem: FitProblem, result, profiles: dict, method: str,
                           options: dict, verbose: bool, margin: float = RESTART_MARGIN):
    """Minimise again from the lowest profile refit when it beat the optimum by more than
    ``margin`` (``[fit] restart_margin``): the rounds stopped short (their evaluation cap)
    or in a local minimum, and a refit with one parameter held found lower ground. Every
    parameter is free again; the better of the two minima is kept and the restart is
    recorded on ``problem.restart`` (params.json and the report say so). A refit below the
    optimum by no more than ``margin`` is recorded on ``problem.within_margin`` and the
    optimum kept."""
    name, info = min(profiles.items(), key=lambda item: min(item[1]["chi_square"]))
    lowest = min(info["chi_square"])
    if lowest < result.chisqr and not lowest < result.chisqr - margin:
        problem.within_margin = {"profile": name, "profile_chi_square": float(lowest),
                                 "optimum_chi_square": float(result.chisqr),
                                 "restart_margin": float(margin)}
    if not lowest < result.chisqr - margin or "lowest_values" not in info:
        return result
    start = result.params.copy()
    for key, value in info["lowest_values"].items():
        if key in start and start[key].vary:
            start[key].set(value=value)
    if verbose:
        print(f"fit: the profile of {name} reached chi-square {lowest:.6g}, below the "
              f"optimum's {result.chisqr:.6g}: minimising again from there", flush=True)
    problem.best = math.inf
    restarted = minimise(problem, start, method, options)
    _settle_spreads(problem, restarted, verbose)
    problem.restart = {"profile": name, "profile_chi_square": lowest,
                       "restart_margin": float(margin),
                       "optimum_chi_square_before": float(result.chisqr),
                       "optimum_chi_square_after": float(restarted.chisqr),
                       "kept": "restart" if restarted.chisqr < result.chisqr else "optimum"}
    if restarted.chisqr < result.chisqr:
        if not restarted.errorbars:
            _covariance_at_optimum(problem, restarted, difference_step(problem), verbose)
        return restarted
    return result


def _profiles_below_their_optimum(profiles: dict, margin: float = RESTART_MARGIN) -> str | None:
    """After the profiles were taken again around a restarted optimum: the name of one
    whose refit still went more than ``margin`` below it (no second restart)."""
    for name, info in profiles.items():
        if min(info["chi_square"]) < info["optimum_chi_square"] - margin:
            return name
    return None


def _refine(problem: FitProblem, result, subjects: int, method: str, options: dict,
            verbose: bool):
    """A last minimisation from ``result``'s optimum with ``subjects`` virtual patients per
    ``[[arms]]`` entry and each ``[[trials]]`` entry's ``final_subjects_per_arm`` screened
    per arm (the fit's patients and more from the same seeds: the first ones are the fit's
    own), so that the reported optimum and rows carry a small Monte Carlo error (issue 17:
    at least 1,000 per arm at the optimum). ``problem`` keeps the larger cohorts: the rows,
    Monte Carlo error and record written after it are at this size."""
    if subjects != problem.eta.shape[0]:
        problem.eta = problem.variability.eta(subjects, problem.seed)
    problem.trials = [trial.resized(trial.final_subjects_per_arm)
                      if trial.final_subjects_per_arm > trial.spec.subjects_per_arm else trial
                      for trial in problem.trials]
    problem.best = math.inf
    if problem.study_effects:
        problem.update_curvature(result.params.valuesdict())
    if verbose:
        print(f"fit: final minimisation with {subjects} virtual patients per arm"
              + "".join(f", {t.spec.name} {t.spec.subjects_per_arm} screened per arm"
                        for t in problem.trials) + ", from the optimum", flush=True)
    start = result.params.copy()
    rebalance_study_spreads(problem, start, verbose)  # the curvature at this size
    refined = minimise(problem, start, method, options)
    if not refined.errorbars:
        _covariance_at_optimum(problem, refined, difference_step(problem), verbose)
    _settle_spreads(problem, refined, verbose)
    return refined


def spread_objective(deltas: np.ndarray, curvature: np.ndarray, spread: float) -> float:
    """The study-effect part of the objective at between-study SD ``spread`` for studies
    whose log values differ from the typical one by ``deltas`` (= sd x u): sum (delta /
    sd)^2 + sum log(1 + sd^2 H_s), the N(0, 1) penalties and Laplace terms of
    :meth:`FitProblem.residuals` (squared). The data residuals depend on the deltas only."""
    return float(np.sum((deltas / spread) ** 2) + np.sum(np.log1p(spread ** 2 * curvature)))


def rebalance_study_spreads(problem: FitProblem, params, verbose: bool = False) -> float:
    """Move every varied between-study SD to its optimum along the curve that keeps each
    study's value (typical x exp(sd x u)) fixed: sd* minimises :func:`spread_objective`
    for the fitted deltas, and each u becomes delta / sd*. The data residuals are unchanged
    (no simulation), only the study-effect penalties fall. Needed because the optimiser
    moves sd and the u's as separate coordinates: a change of sd alone moves every study,
    so along the valley where the deltas stay put it takes many small steps and stops
    short (the bundled fit of 2026-12-02 01:40 UTC reported 0.212 where this curve's
    optimum for its own deltas is 0.37). The u's stay within their bounds. Returns the fall
    of the objective (0 if nothing moved); ``params`` is changed in place.

    Where a study pools regimens (``regimens = "several"``: :meth:`FitProblem.patient_cvs`)
    the SD also widens its patients, so the data residuals do depend on it: the move is
    then judged by the whole objective, evaluated before and after (only the pooled arms
    are simulated again: the others' inputs are unchanged), kept only if that falls, and
    the fall returned is the objective's."""
    from scipy.optimize import minimize_scalar

    pooled = any(getattr(spec, "regimens", "one") == "several"  # a problem-like object
                 for spec in [*getattr(problem, "arms", ()), *getattr(problem, "trials", ())])
    fall = 0.0
    for name, effect in problem.study_effects.items():
        spread = params[effect["spread"]]
        effects = [params[u] for u in effect["effects"].values()]
        if not (spread.vary and spread.value > 0 and all(u.vary for u in effects)):
            continue
        deltas = np.array([spread.value * u.value for u in effects])
        curvature = np.array([problem.curvature.get((name, study), 0.0)
                              for study in effect["effects"]])
        # each u = delta / sd must stay inside its bounds: sd >= |delta| / bound
        lowest = max([spread.min, 1e-9] + [abs(d) / max(-u.min if d < 0 else u.max, 1e-12)
                                           for d, u in zip(deltas, effects)])
        if not lowest < spread.max:
            continue
        best = minimize_scalar(lambda sd: spread_objective(deltas, curvature, sd),
                               bounds=(lowest, spread.max), method="bounded",
                               options={"xatol": 1e-7})
        before = spread_objective(deltas, curvature, spread.value)
        after = spread_objective(deltas, curvature, float(best.x))
        if not after < before - 1e-9:
            continue
        kept = {p.name: p.value for p in [spread, *effects]}
        if pooled:
            before = float(np.sum(problem.residuals(params) ** 2))
        old_spread = spread.value
        spread.value = float(best.x)
        for delta, u in zip(deltas, effects):
            u.value = float(np.clip(delta / spread.value, u.min, u.max))
        if pooled:
            after = float(np.sum(problem.residuals(params) ** 2))
            if not after < before - 1e-9:  # the pooled studies' data pay more than it saves
                for key, value in kept.items():
                    params[key].value = value
                continue
        if verbose:
            print(f"fit: {effect['spread']} {old_spread:.4g} -> {spread.value:.4g} with "
                  f"every study's value kept (objective {before - after:.4g} lower"
                  f"{', the pooled studies simulated again' if pooled else ''})", flush=True)
        fall += before - after
    if fall:
        params.update_constraints()
    return fall


def _settle_spreads(problem: FitProblem, result, verbose: bool) -> None:
    """After a minimisation: :func:`rebalance_study_spreads` on ``result``; its chi-square
    falls by what the penalties lost, and its covariance is carried to the new point
    (:func:`carry_covariance`), so the standard errors and the profiles' starting path
    belong to the reported values."""
    old = {name: result.params[name].value for name in result.var_names or []}
    fall = rebalance_study_spreads(problem, result.params, verbose)
    if not fall:
        return
    result.chisqr = float(result.chisqr) - fall
    result.redchi = result.chisqr / max(int(result.nfree), 1)
    if getattr(result, "ndata", 0) and result.chisqr > 0:  # as lmfit computes them
        penalty = result.ndata * math.log(result.chisqr / result.ndata)
        result.aic = penalty + 2 * result.nvarys
        result.bic = penalty + math.log(result.ndata) * result.nvarys
    covariance = getattr(result, "covar", None)
    names = list(result.var_names or [])
    if covariance is None or len(names) != covariance.shape[0]:
        return
    new = {name: result.params[name].value for name in names}
    covariance = carry_covariance(problem, old, new, names, covariance)
    if covariance is None:  # not positive definite: a Jacobian at the new point instead
        result.covar, result.errorbars = None, False
        for name in names:
            result.params[name].stderr = None
        _covariance_at_optimum(problem, result, difference_step(problem), verbose)
        if result.errorbars:
            result.covariance_note = ("covariance from a Jacobian recomputed after the "
                                      "between-study SD's move (the carried one was not "
                                      "positive definite)")
        return
    _set_covariance(result, names, covariance)
    note = ("the between-study SD then moved to its optimum with every study's value kept; "
            "the covariance carried there exactly (Gauss-Newton: the data part of the "
            "information in the studies' log values, the penalties' part recomputed)")
    previous = getattr(result, "covariance_note", None)
    result.covariance_note = f"{previous}; {note}" if previous else note


def _study_value_map(problem: FitProblem, values: dict, names: list) -> np.ndarray:
    """d(theta, delta) / d(names) at ``values``: every varied parameter but the study effects
    and their SDs as itself, each study's delta_s = sd x u_s (d/d sd = u_s, d/d u_s = sd)."""
    rows = []
    grouped = set()
    for name, effect in problem.study_effects.items():
        if effect["spread"] in names and all(u in names for u in effect["effects"].values()):
            grouped.update([effect["spread"], *effect["effects"].values()])
            for u in effect["effects"].values():
                row = np.zeros(len(names))
                row[names.index(effect["spread"])] = values[u]
                row[names.index(u)] = values[effect["spread"]]
                rows.append(row)
    for i, name in enumerate(names):
        if name not in grouped:
            row = np.zeros(len(names))
            row[i] = 1.0
            rows.append(row)
    return np.array(rows)


def _penalty_information(problem: FitProblem, values: dict, names: list) -> np.ndarray:
    """J'J of the study-effect residuals of :meth:`FitProblem.residuals` (u_s, and the
    Laplace term sqrt(log(1 + sd^2 H_s))) with respect to ``names``, at ``values``."""
    rows = []
    for name, effect in problem.study_effects.items():
        spread_name = effect["spread"]
        sd = values.get(spread_name, 0.0)
        for study, u in effect["effects"].items():
            if u in names:
                row = np.zeros(len(names))
                row[names.index(u)] = 1.0
                rows.append(row)
            curvature = problem.curvature.get((name, study), 0.0)
            term = math.log1p(sd ** 2 * curvature)
            if spread_name in names and term > 0:
                row = np.zeros(len(names))
                row[names.index(spread_name)] = (sd * curvature / (1 + sd ** 2 * curvature)
                                                 / math.sqrt(term))
                rows.append(row)
    jacobian = np.array(rows) if rows else np.zeros((0, len(names)))
    return jacobian.T @ jacobian


def carry_covariance(problem: FitProblem, old: dict, new: dict, names: list,
                     covariance: np.ndarray) -> np.ndarray | None:
    """The Gauss-Newton covariance at ``new`` from the one at ``old``, two points with the
    same typical values and study values (a move of :func:`rebalance_study_spreads`). The
    data residuals depend on (theta, delta) only, so their information there is the same at
    both points: it is recovered from the old information minus the old penalties' part,
    mapped back through d(theta, delta)/d(theta, sd, u) (a full-row-rank map: its right
    inverse), carried forward through the new map, and the new penalties' part added. Exact
    for the Gauss-Newton information (tests/test_study_spread.py compares it with a
    Jacobian computed at the new point). None if the result is not positive definite."""
    try:
        information = np.linalg.inv(covariance) - _penalty_information(problem, old, names)
        before = _study_value_map(problem, old, names)
        right = before.T @ np.linalg.inv(before @ before.T)
        data = right.T @ information @ right
        after = _study_value_map(problem, new, names)
        information = after.T @ data @ after + _penalty_information(problem, new, names)
        carried = np.linalg.inv(information)
        carried = (carried + carried.T) / 2
        np.linalg.cholesky(carried)
    except np.linalg.LinAlgError:
        return None
    return carried


def _set_covariance(result, names: list, covariance: np.ndarray) -> None:
    """``result.covar`` and every varied parameter's stderr and correlations from it."""
    error = np.sqrt(np.diag(covariance))
    for i, name in enumerate(names):
        result.params[name].stderr = float(error[i])
        result.params[name].correl = {other: float(covariance[i, j] / (error[i] * error[j]))
                                      for j, other in enumerate(names) if j != i}
    result.covar, result.errorbars = covariance, True


def _covariance_at_optimum(problem: FitProblem, result, step: float, verbose: bool) -> None:
    """When a minimisation left no covariance (lmfit: no error bars, because its last
    Jacobian was rank-deficient, or because its evaluation cap stopped it and the result
    was moved to the lowest point evaluated), the covariance (J'J)^-1 from a forward-
    difference Jacobian at the reported optimum with the fit's relative step (residuals are
    already in standard errors, so it is not rescaled); nothing is set if that one is
    singular too. Sets each varied parameter's stderr and correlations, ``result.covar``
    and ``result.errorbars``."""
    params = result.params
    names = [name for name, p in params.items() if p.vary]
    # the optimiser's last Jacobian when it was taken at this point (a minimisation stopped
    # by its cap after a Jacobian whose base stayed the lowest point): no evaluation
    jacobian = remembered_jacobian(problem, params, step)
    how = "the optimiser's last Jacobian, taken at the optimum"
    if jacobian is None:
        jacobian = forward_jacobian(problem, params, step)
        how = "a Jacobian recomputed at the optimum"
    singular = np.linalg.svd(jacobian, compute_uv=False)
    if singular.min() <= 1e-10 * singular.max():
        return
    _set_covariance(result, names, np.linalg.inv(jacobian.T @ jacobian))
    why = ("the minimisation stopped at its evaluation cap and reports its lowest point, "
           "not an optimum: they describe an unfinished fit"
           if getattr(result, "aborted", False) else
           "the optimiser's last Jacobian was rank-deficient")
    result.covariance_note = f"covariance from {how} ({why})"
    if verbose:
        print(f"fit: {result.covariance_note}", flush=True)


#: a row's Monte Carlo SD is "small against the data" below this fraction of its standard
#: error (issue 17: "a shown Monte Carlo SE under a fifth of each row's SE")
MONTE_CARLO_LIMIT = 0.2
#: or the row is predicted from at least this many virtual patients (issue 17: "at least
#: 1,000 virtual patients per arm at the optimum")
MONTE_CARLO_SUBJECTS = 1000


def monte_carlo_seed(seed: int, replicate: int) -> int:
    """The seed of Monte Carlo cohort ``replicate`` (1, 2, ...) of a fit or trial seeded
    ``seed``: a stream of its own (SeedSequence), never the seed itself."""
    return int(np.random.SeedSequence([int(seed), 0x4D43, int(replicate)]).generate_state(1)[0])


def monte_carlo_error(problem: FitProblem, values: dict, replicates: int,
                      table: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every row's Monte Carlo error at the parameter ``values`` (the optimum): the rows are
    predicted again with ``replicates`` cohorts of the same sizes drawn from other seeds
    (``[[arms]]`` entries: the fit's random effects from :func:`monte_carlo_seed` of the
    fit seed; ``[[trials]]`` entries: the trial's patients, between-cycle exposure and
    measurement error from :func:`monte_carlo_seed` of the trial seed), and the sample
    SD (n - 1) of the predictions across them is the row's ``monte_carlo_sd`` (on the fit's
    scale, proportions as fractions); ``monte_carlo_sd_per_se`` is it over the row's
    standard error. The fitted cohort itself is not among them (its prediction is
    ``predicted``). ``table``: the optimum's :meth:`FitProblem.predict` (computed if
    absent); returned with the two columns added."""
    if not isinstance(replicates, int) or replicates < 2:
        raise FitConfigError(f"Monte Carlo error needs at least 2 cohorts, got "
                             f"{replicates!r}")
    table = problem.predict(values) if table is None else table
    subjects = problem.eta.shape[0]
    runs = []
    for replicate in range(1, replicates + 1):
        other = replace(problem, eta=problem.variability.eta(
            subjects, monte_carlo_seed(problem.seed, replicate)),
            trials=[trial.reseeded(monte_carlo_seed(trial.spec.seed, replicate))
                    for trial in problem.trials])
        predicted = other.predict(values)
        if len(predicted) != len(table) or not (predicted.line.to_numpy()
                                                == table.line.to_numpy()).all():
            raise PlateletPDError("Monte Carlo error: the rows of a re-prediction differ "
                                  "from the fit's (an internal error: please report it)")
        runs.append(predicted.predicted.to_numpy(float))
    runs = np.array(runs)
    table = table.copy()
    table["monte_carlo_sd"] = np.nanstd(runs, axis=0, ddof=1)
    table["monte_carlo_sd_per_se"] = table.monte_carlo_sd / table.standard_error
    table.attrs["monte_carlo_replicates"] = replicates
    return table


def monte_carlo_short(table: pd.DataFrame) -> pd.DataFrame:
    """The rows whose Monte Carlo error is not small against the data: a Monte Carlo SD of
    at least one fifth of the row's standard error from fewer than
    :data:`MONTE_CARLO_SUBJECTS` virtual patients (issue 17 asks for one or the other)."""
    ratio = table.monte_carlo_sd_per_se.to_numpy(float)
    patients = pd.to_numeric(table.virtual_patients, errors="coerce").to_numpy(float)
    return table[~(ratio < MONTE_CARLO_LIMIT) & ~(patients >= MONTE_CARLO_SUBJECTS)]


def monte_carlo_sentence(table: pd.DataFrame) -> str:
    """Whether every row's Monte Carlo SD is under one fifth of its standard error, and
    whether the rows above it are predicted from at least 1,000 virtual patients."""
    ratio = table.monte_carlo_sd_per_se.to_numpy(float)
    worst = int(np.nanargmax(ratio)) if np.isfinite(ratio).any() else 0
    over = table[~(ratio < MONTE_CARLO_LIMIT)]
    largest = (f"largest {ratio[worst]:.3g}, line {table.line.iloc[worst]} "
               f"({table.study.iloc[worst]}, {table.arm.iloc[worst]})")
    if over.empty:
        return (f"Every row's Monte Carlo SD is under one fifth of its standard error "
                f"({largest}).")
    sentence = (f"{len(over)} of {len(table)} rows have a Monte Carlo SD of at least one "
                f"fifth of their standard error (lines {', '.join(map(str, over.line))}; "
                f"{largest})")
    short = monte_carlo_short(table)
    if short.empty:
        return (f"{sentence}; each of them is predicted from at least "
                f"{MONTE_CARLO_SUBJECTS:,} virtual patients.")
    return (f"{sentence}; lines {', '.join(map(str, short.line))} from fewer than "
            f"{MONTE_CARLO_SUBJECTS:,} virtual patients: raise [fit] subjects ([[arms]]) or "
            f"subjects_per_arm ([[trials]]) for them.")


def difference_step(problem: FitProblem) -> float:
    """The relative finite-difference step of least_squares: ``[fit] difference_step``
    (default 0.001). Trial arms enrol by eligibility on the simulated history, so their rows
    move in small jumps as patients enter or leave: a step well above those (0.02-0.05)
    gives derivatives of the trend instead of the jumps (docs/fitting.md)."""
    return float(problem.config.get("fit", {}).get("difference_step", 1e-3))


#: the largest finite-difference step of a study effect u_s (a standard normal deviate)
STUDY_EFFECT_STEP_LIMIT = 0.5


def difference_steps(problem: FitProblem, params, step: float) -> dict[str, float]:
    """The forward-difference step of every varied parameter, in its own units.

    An ordinary parameter moves by ``step`` times its value (``step`` itself at 0). A study
    effect u_s is a standard normal deviate centred on 0, where a step relative to its value
    vanishes (scipy's least_squares then falls back to 1.5e-8, and a study whose rows are
    shares of a finite cohort never moves from 0): it moves by ``step / sd``, so that its
    study's value ``typical x exp(sd x u_s)`` changes by the same relative ``step`` as a
    typical value does (at most 0.5; 0.5 while sd is 0). A step that would cross the upper
    bound is taken downwards."""
    spreads = {u: effect["spread"] for effect in problem.study_effects.values()
               for u in effect["effects"].values()}
    steps = {}
    for name, parameter in params.items():
        if not parameter.vary:
            continue
        value = parameter.value
        if name in spreads:
            spread = params[spreads[name]].value
            h = min(step / spread, STUDY_EFFECT_STEP_LIMIT) if spread > 0 \
                else STUDY_EFFECT_STEP_LIMIT
        else:
            h = step * abs(value) if value != 0 else step
        if parameter.max is not None and value + h > parameter.max:
            h = -h
        steps[name] = h
    return steps


def forward_jacobian(problem: FitProblem, params, step: float, base=None,
                     count=None, objective=None) -> np.ndarray:
    """The Jacobian of :meth:`FitProblem.residuals` at ``params`` by forward differences with
    :func:`difference_steps` (residuals x varied parameters, in lmfit's order). ``base``: the
    residuals at ``params`` when known; ``count``: called once per evaluation (a cap);
    ``objective``: what evaluates the residuals (default ``problem.residuals``; a
    minimisation passes its :class:`_Lowest`, so that the Jacobian's points count among
    the points it evaluated)."""
    objective = objective or problem.residuals
    last = getattr(problem, "_last", None)
    if base is None and last is not None and problem.same_state(last[0], params.valuesdict()):
        base = last[1]  # least_squares asks for the Jacobian where it has just evaluated
    if base is None:
        if count is not None:
            count()
        base = objective(params)
    columns = []
    steps = difference_steps(problem, params, step)
    for name, h in steps.items():
        if count is not None:
            count()
        shifted = params.copy()
        shifted[name].set(value=params[name].value + h)
        columns.append((objective(shifted) - base) / h)
    matrix = np.array(columns).T if columns else np.empty((len(base), 0))
    # remembered with where it was taken: Broyden profile refits reuse the optimiser's
    # last Jacobian when it was taken at the optimum (optimum_jacobian)
    problem._last_jacobian = (problem._state(params.valuesdict()), list(steps), matrix, step)
    return matrix


def remembered_jacobian(problem: FitProblem, params, step: float) -> np.ndarray | None:
    """The last Jacobian :func:`forward_jacobian` took, if it was taken at ``params`` (same
    values, cohorts and curvature) with the relative step ``step``; else None. Taking it
    again would repeat the same evaluations and give the same matrix."""
    last = getattr(problem, "_last_jacobian", None)
    if last is None or last[3] != step or last[1] != [n for n, p in params.items() if p.vary]:
        return None
    return last[2] if problem.same_state(last[0], params.valuesdict()) else None


class _Lowest:
    """The objective lmfit minimises (``problem.residuals``), remembering the lowest point
    it was called at, the Jacobian's points included: an aborted minimisation ends wherever
    its last call was, often a trial step the optimiser was about to reject."""

    def __init__(self, problem: FitProblem):
        self.problem, self.chi_square, self.values = problem, math.inf, None

    def __call__(self, params):
        residual = self.problem.residuals(params)
        chi_square = float(np.sum(residual ** 2))
        if chi_square < self.chi_square:
            self.chi_square, self.values = chi_square, params.valuesdict()
        return residual


def minimise(problem: FitProblem, parameters, method: str, options: dict):
    """One lmfit minimisation of ``problem`` from ``parameters`` (``options``: lmfit's, with
    ``max_nfev``; least_squares gets :func:`least_squares_options`). When the evaluation
    cap stops it, the result is moved to the lowest point evaluated (lmfit reports the
    last one), and its message says so."""
    import lmfit

    lowest = _Lowest(problem)
    minimizer = lmfit.Minimizer(lowest, parameters, scale_covar=False)
    result = minimizer.minimize(method=method, **method_options(problem, minimizer, method,
                                                                options))
    if getattr(result, "aborted", False) and lowest.values is not None \
            and lowest.chi_square < float(result.chisqr):
        for name, value in lowest.values.items():
            if result.params[name].vary:
                result.params[name].value = value
        result.params.update_constraints()
        result.residual = problem.residuals(result.params)  # remembered: no simulation
        result.chisqr = float(np.sum(result.residual ** 2))
        result.redchi = result.chisqr / max(int(result.nfree), 1)
        # no covariance from an aborted minimisation, and none of another point: the
        # phases that need one recompute it at this point (_covariance_at_optimum)
        result.covar, result.errorbars = None, False
        for name in result.var_names:
            result.params[name].stderr = None
        result.message = (f"{result.message} (the lowest point evaluated is reported, "
                          f"not the last)")
    return result


def method_options(problem: FitProblem, minimizer, method: str, options: dict) -> dict:
    """``options`` for ``minimizer.minimize(method=...)``: least_squares gets
    :func:`least_squares_options` (our Jacobian), other lmfit methods ``options`` as given."""
    if method != "least_squares":
        return options
    return {**options, **least_squares_options(problem, minimizer, options["max_nfev"])}


def least_squares_options(problem: FitProblem, minimizer, max_evaluations: int) -> dict:
    """lmfit ``least_squares`` options: the evaluation cap and a Jacobian by
    :func:`forward_jacobian` whose evaluations count against the same cap (lmfit counts
    only its own residual calls)."""
    from lmfit.minimizer import AbortFitException

    step = difference_step(problem)

    def count():
        minimizer.result.nfev += 1
        if minimizer.result.nfev > max_evaluations:
            # as lmfit's own cap does (its result then has a message and no success)
            minimizer.result.aborted, minimizer.result.success = True, False
            minimizer.result.message = (f"Fit aborted: number of function evaluations > "
                                        f"{max_evaluations}")
            raise AbortFitException(f"fit aborted: more than {max_evaluations} evaluations")

    def jacobian(params, *args, **kws):
        # through the minimisation's objective (a _Lowest in minimise): a Jacobian's point
        # below every other evaluated one is reported when the cap stops the minimisation
        return forward_jacobian(problem, params, step, count=count,
                                objective=minimizer.userfcn)

    return {"max_nfev": max_evaluations, "Dfun": jacobian}


def _profile_refit(problem: FitProblem, parameters, name: str, value: float,
                   max_evaluations: int = 60, start: dict | None = None,
                   jacobian: tuple | None = None):
    """The chi-square of a refit with ``name`` fixed at ``value`` (one profile point), and
    every fit parameter's value there. ``start``: values of the other parameters to start
    from (default: ``parameters``'). ``jacobian``: ``(names, matrix)`` at the optimum for a
    Broyden refit (:func:`_broyden_refit`); without it lmfit's least_squares."""
    trial = parameters.copy()
    for key, begin in (start or {}).items():
        if key in trial and trial[key].vary and key != name:
            trial[key].set(value=begin)
    trial[name].set(value=value, vary=False)
    if jacobian is not None:
        return _broyden_refit(problem, trial, jacobian, max_evaluations)
    refit = minimise(problem, trial, "least_squares", {"max_nfev": max_evaluations})
    # as after every minimisation (_settle_spreads): a varied between-study SD to its
    # optimum with every study's value kept (no simulation)
    fall = rebalance_study_spreads(problem, refit.params)
    return float(refit.chisqr) - fall, \
        {k: float(v) for k, v in refit.params.valuesdict().items()}


def _broyden_refit(problem: FitProblem, trial, jacobian: tuple, max_evaluations: int):
    """A profile refit by Gauss-Newton steps from the Jacobian taken at the optimum, kept
    current by Broyden's rank-one secant update after every evaluation (no new Jacobian):
    from ``trial`` (the profiled parameter fixed, the others on the linearised profile
    path) each step solves the linearised problem min |J dx + r| in the varied parameters,
    inside their bounds (scipy's ``lsq_linear``). A step that does not lower the chi-square
    is rejected and the next one, from the updated Jacobian, is at most half as long.
    ``max_evaluations`` counts every evaluation, the start's included. Returns the lowest
    chi-square of the points it accepted, each after its between-study SDs are moved to
    their optimum with every study's value kept (``settled``), and every parameter's value
    there, as :func:`_profile_refit`.

    Near the optimum the profile path bends little, so the optimum's Jacobian predicts a
    refit's first step nearly as well as a fresh one; a refit then costs a few evaluations
    instead of a Jacobian (one evaluation per varied parameter) and its steps. Without the
    update (the plain chord method) the steps stall where the optimum's Jacobian stops
    pointing downhill, short of the profile's minimum. tests/test_profile_refits.py
    compares the refits with least_squares ones run to convergence."""
    from scipy.optimize import lsq_linear

    names, matrix = jacobian
    free = [k for k, key in enumerate(names) if key in trial and trial[key].vary]
    columns, keys = np.array(matrix[:, free], dtype=float), [names[k] for k in free]
    lower = np.array([trial[key].min for key in keys], dtype=float)
    upper = np.array([trial[key].max for key in keys], dtype=float)
    position = np.array([trial[key].value for key in keys], dtype=float)

    def evaluate(values: np.ndarray):
        for key, value in zip(keys, values):
            trial[key].set(value=float(value))
        residual = problem.residuals(trial)
        return residual, float(np.sum(residual ** 2))

    def settled(chi_square: float) -> tuple[float, dict]:
        """The chi-square and values after the step the refit cannot take in a few
        evaluations (sd and the study effects move as separate coordinates along a curved
        valley): a varied between-study SD to its optimum with every study's value kept,
        no simulation (as _settle_spreads after a minimisation)."""
        moved = trial.copy()
        fall = rebalance_study_spreads(problem, moved)
        return chi_square - fall, moved.valuesdict()

    residual, chi_square = evaluate(position)
    best = settled(chi_square)
    longest = math.inf  # the longest step allowed (scaled): halved at each rejection
    scale = np.maximum(np.abs(position), 1e-3)
    for _ in range(max_evaluations - 1):
        if not keys or not np.all(np.isfinite(residual)):
            break
        span_low, span_high = lower - position, upper - position
        open_ = span_high > span_low
        step = np.zeros(len(keys))
        if open_.any():
            step[open_] = lsq_linear(columns[:, open_], -residual,
                                     bounds=(span_low[open_], span_high[open_]),
                                     method="bvls").x
        length = float(np.linalg.norm(step / scale))
        if not length > 0:
            break
        if length > longest:
            step *= longest / length
            length = longest
        candidate = np.clip(position + step, lower, upper)
        moved = candidate - position
        if not np.any(moved):  # a step lost to rounding at a bound: nothing left to try
            break
        new_residual, new_chi_square = evaluate(candidate)
        if not np.all(np.isfinite(new_residual)):
            longest = length / 2
            continue
        # Broyden: the Jacobian now reproduces the change just seen along the step taken
        columns += np.outer(new_residual - residual - columns @ moved, moved) / (moved @ moved)
        if new_chi_square < chi_square:
            position, residual, chi_square = candidate, new_residual, new_chi_square
            best = min(best, settled(chi_square), key=lambda pair: pair[0])
        else:
            longest = length / 2
    return best[0], {k: float(v) for k, v in best[1].items()}


def optimum_jacobian(problem: FitProblem, result, verbose: bool = False) -> tuple:
    """``(names, matrix)``: the Jacobian of the residuals at ``result``'s optimum for Broyden
    profile refits. The optimiser's last Jacobian when it was taken there (least_squares
    takes one at every point it accepts), else one by forward differences (one evaluation
    per varied parameter)."""
    names = [name for name, p in result.params.items() if p.vary]
    matrix = remembered_jacobian(problem, result.params, difference_step(problem))
    if matrix is not None:
        if verbose:
            print("fit: Broyden profile refits from the optimiser's last Jacobian (taken at "
                  "the optimum)", flush=True)
        return names, matrix
    if verbose:
        print("fit: the Jacobian at the optimum for the Broyden profile refits", flush=True)
    return names, forward_jacobian(problem, result.params, difference_step(problem))


def profile_start(result, name: str, value: float, problem: FitProblem | None = None) -> dict:
    """Where a profile refit at ``name = value`` starts: the other parameters moved along
    the linearised profile path, x_k + C_kj / C_jj (value - x_j) with C the covariance at
    the optimum (the conditional mean of a Gaussian), kept inside their bounds. Without a
    covariance: the optimum. A refit from there needs fewer evaluations than one from the
    optimum when parameters are correlated. For a between-study SD (``problem`` given) the
    study effects start at u_s = sd x u_s / value instead: every study's value as at the
    optimum, so the refit starts on the valley the linear path only approximates."""
    spread_of = {effect["spread"]: effect for effect in
                 (problem.study_effects.values() if problem is not None else [])}
    if name in spread_of and value > 0:
        start = profile_start(result, name, value)
        for u in spread_of[name]["effects"].values():
            parameter = result.params[u]
            if parameter.vary:
                moved = result.params[name].value * parameter.value / value
                start[u] = float(np.clip(moved, parameter.min, parameter.max))
        return start
    covariance, names = getattr(result, "covar", None), list(result.var_names or [])
    if covariance is None or name not in names:
        return {}
    j = names.index(name)
    if not covariance[j, j] > 0:
        return {}
    shift = value - result.params[name].value
    start = {}
    for k, other in enumerate(names):
        if other == name:
            continue
        parameter = result.params[other]
        moved = parameter.value + covariance[k, j] / covariance[j, j] * shift
        if not np.isfinite(moved):
            continue
        span = parameter.max - parameter.min if np.isfinite(parameter.max - parameter.min) \
            else abs(parameter.value) + 1.0
        margin = 1e-6 * span
        start[other] = float(np.clip(moved, parameter.min + margin, parameter.max - margin))
    return start


#: the residual a row without a finite prediction gets (FitProblem.residuals): large, so
#: the optimiser backs away; a chi-square at or above its square had such a row
UNPREDICTED_RESIDUAL = 1e3


def profile(problem: FitProblem, result, name: str, points: int = 7,
            span: float = 3.0, client=None, max_evaluations: int = 60,
            jacobian: tuple | None = None) -> dict:
    """Profile likelihood of ``name``: fixed on a grid of +/- ``span`` standard errors (or
    +/- 60% without one) around the optimum, the other parameters refitted at each point.
    The 95% interval is where the chi-square stays within 3.84 of its minimum; an end that
    the grid does not reach is reported as open (None). The refits are independent (each
    starts on the linearised profile path, :func:`profile_start`): with a Dask ``client``
    they run on its workers, same values. ``jacobian`` (:func:`optimum_jacobian`): Broyden
    refits (:func:`_broyden_refit`) instead of least_squares."""
    from plateletpd.study.distributed import Shared, map_chunks

    if name not in result.params or not result.params[name].vary:
        raise FitConfigError(f"profile: {name!r} is not a varied parameter of this fit")
    best = result.params[name]
    step = best.stderr if best.stderr and np.isfinite(best.stderr) else 0.2 * abs(best.value)
    grid = np.unique(np.clip(best.value + np.linspace(-span, span, points) * step,
                             best.min, best.max))
    refits = map_chunks(_profile_refit, [
        (Shared("problem"), result.params, name, float(value), max_evaluations,
         profile_start(result, name, float(value), problem), jacobian)
        for value in grid], client,
        label=f"profile refits of {name}", shared={"problem": problem})
    chi_square = np.array([chi for chi, _ in refits])
    # a point where a row had no prediction carries the placeholder residual, not the
    # data's verdict: name its rows (one more evaluation, only there) and never
    # interpolate an interval end against it (a fitting user test, 2026-12-05, read an
    # interval whose lower end was the optimum, set by such a point)
    unpredicted = {}
    for i in np.flatnonzero(chi_square >= UNPREDICTED_RESIDUAL ** 2):
        rows = problem.unpredicted_rows(refits[i][1])
        if rows:
            unpredicted[float(grid[i])] = rows
    usable = np.array([float(value) not in unpredicted for value in grid])
    level = min(chi_square[usable].min() if usable.any() else np.inf,
                float(result.chisqr)) + PROFILE_LEVEL
    inside = np.flatnonzero((chi_square <= level) & usable)

    def crossing(outside: int, inner: int) -> float | None:
        """Where the chi-square crosses ``level`` between two grid points (linear); None
        where the outer point had a row without a prediction."""
        if not usable[outside]:
            return None
        rise = chi_square[outside] - chi_square[inner]
        fraction = (level - chi_square[inner]) / rise if rise > 0 else 0.5
        return float(grid[inner] + fraction * (grid[outside] - grid[inner]))

    first, last = (inside[0], inside[-1]) if inside.size else (0, len(grid) - 1)
    low = None if first == 0 else crossing(first - 1, first)   # None: open below the grid
    high = None if last == len(grid) - 1 else crossing(last + 1, last)
    # the optimum and chi-square the profile was taken around: with [fit] final_subjects or
    # final_subjects_per_arm the reported optimum is at larger cohorts, where the objective
    # differs by Monte Carlo error, so a profile is compared with its own optimum only
    return {"grid": grid.tolist(), "chi_square": chi_square.tolist(),
            "ci95": [low, high], "optimum": float(best.value),
            "optimum_chi_square": float(result.chisqr),
            # grid value -> the rows it could not predict (its chi-square is no verdict)
            "unpredicted": {str(value): rows for value, rows in unpredicted.items()},
            # every fit parameter at the lowest refit (a restart point: run_fit)
            "lowest_values": refits[int(np.argmin(chi_square))][1]}


def stopped_at_cap(result) -> bool:
    """Whether the minimisation ended at its evaluation cap, not at convergence."""
    message = str(getattr(result, "message", "")).lower()
    return not getattr(result, "success", True) and "evaluations" in message


def identifiability(result, profiles: dict | None = None) -> list[str]:
    """Plain statements about parameters the data do not pin down."""
    notes = []
    varied = [p for p in result.params.values() if p.vary]
    if not result.errorbars:
        if stopped_at_cap(result):
            notes.append(f"The covariance matrix was not estimated: the fit stopped at its "
                         f"evaluation cap ({result.nfev} evaluations) before converging, so "
                         f"this is not (yet) a statement about the data; raise "
                         f"--max-evaluations and fit again.")
            return notes + _profile_notes(result, profiles)
        start = getattr(result, "configured_start", None) or \
            getattr(result, "init_values", {}) or {}
        still = [p.name for p in varied if p.name in start and p.value == start[p.name]]
        notes.append("The covariance matrix could not be estimated (singular Jacobian at the "
                     "optimum): at least one varied parameter is not identifiable from these "
                     "data; fix it or add data that inform it." + (
                         f" Never moved from its start value: {', '.join(still)} (the rows "
                         f"may not depend on it)." if still else ""))
        return notes + _profile_notes(result, profiles)
    if getattr(result, "covariance_note", None):
        notes.append(f"Standard errors: {result.covariance_note}.")
    # a misfit the standard errors do not carry (they are not scaled by the reduced
    # chi-square: they assume the model and the rows' errors right; a fitting user test)
    redchi = getattr(result, "redchi", None)
    if redchi is not None and math.isfinite(redchi) and redchi > 4.0:
        notes.append(f"Reduced chi-square {redchi:.3g}: the rows lie {math.sqrt(redchi):.2g} "
                     f"times further from the model than their standard errors allow, on "
                     f"average. The standard errors and intervals here assume the model is "
                     f"right and are not scaled for this misfit; multiplying them by "
                     f"{math.sqrt(redchi):.2g} is a rough allowance. Read the largest "
                     f"residuals first: a misfit this size often means the model's structure "
                     f"cannot give these data, which no parameter value fixes.")
    # an estimate on a bound: the data want more (or less) than the bounds allow, and its
    # standard error and interval describe the bound, not the data (a fitting user test)
    for parameter in varied:
        span = parameter.max - parameter.min
        for side, edge in (("lower", parameter.min), ("upper", parameter.max)):
            if math.isfinite(span) and abs(parameter.value - edge) <= 0.002 * span:
                notes.append(f"{parameter.name}: estimated at its {side} bound ({edge:g}): the "
                             f"rows want {'less' if side == 'lower' else 'more'} than the bounds "
                             f"allow, so its standard error and interval describe the bound; "
                             f"if the bound is the model's limit (a fraction at most 1), the "
                             f"model cannot give what these rows show.")
            elif math.isfinite(edge) and parameter.stderr is not None \
                    and math.isfinite(parameter.stderr) and parameter.stderr > 0 \
                    and abs(parameter.value - edge) < parameter.stderr:
                # near a bound, within one standard error of it (a fitting user test,
                # 2026-12-07: 4.93 +/- 1.66 under a bound of 5 was not flagged)
                notes.append(f"{parameter.name}: {parameter.value:.4g} lies within one "
                             f"standard error ({parameter.stderr:.3g}) of its {side} bound "
                             f"({edge:g}): a symmetric interval would cross it, so read its "
                             f"profile (the data may not bound it on that side).")
    # no move from the start: a rough objective the finite differences cannot see through,
    # or rows that do not depend on it (a fitting user test: an optimum reported at its
    # start, chi-square 298.7, where 90.2 was reachable)
    start = getattr(result, "configured_start", None) or \
        getattr(result, "init_values", {}) or {}
    still = [p.name for p in varied if p.name in start and start[p.name] and
             abs(p.value - start[p.name]) <= 1e-3 * abs(start[p.name])]
    if still:
        notes.append(f"Within 0.1% of their start values: {', '.join(still)}. Either the "
                     f"start was the optimum or the minimiser did not move (an objective "
                     f"rough at the difference step: raise [fit] difference_step, profile "
                     f"them, or start elsewhere to see whether the optimum holds).")
    for parameter in varied:
        if parameter.stderr is not None and abs(parameter.value) <= 1e-9 * max(
                1.0, parameter.stderr):
            # at zero a relative error means nothing (it printed as 3e19%); a standardised
            # study effect whose SE is its N(0, 1) prior's has no information from its rows
            prior = ("_effect_" in parameter.name and abs(parameter.stderr - 1.0) < 0.05)
            notes.append(f"{parameter.name}: estimated at 0 with standard error "
                         f"{parameter.stderr:.3g}" + (
                             ", its N(0, 1) prior's: the study's rows did not move it (a "
                             "row read from an enrolled share moves in steps the difference "
                             "step may not resolve)" if prior else "") + ".")
            continue
        relative = parameter.stderr / abs(parameter.value) if parameter.value else math.inf
        if relative > 0.5:
            notes.append(f"{parameter.name}: relative standard error {relative:.0%}; the data "
                         f"determine it poorly.")
    for parameter in varied:
        for other, rho in (parameter.correl or {}).items():
            if parameter.name < other and abs(rho) > 0.9:
                notes.append(f"{parameter.name} and {other} are correlated ({rho:+.2f}): the "
                             f"data inform a combination of them, not each one.")
    notes += _profile_notes(result, profiles)
    return notes or ["Every varied parameter has a relative standard error below 50% and no "
                     "pair is correlated beyond 0.9."]


def _profile_notes(result, profiles: dict | None) -> list[str]:
    """What each profile says about its interval: a refit below the optimum, an open end, an
    end interpolated across a jump (said of an unconverged fit too: a fitting user test,
    2026-12-04, read an interval [5.38, 5.53] interpolated across a rise of 197)."""
    notes = []
    for name, info in (profiles or {}).items():
        reference = info.get("optimum_chi_square", result.chisqr)
        if min(info["chi_square"]) < reference - 1e-6:
            lowest = min(info["chi_square"])
            notes.append(f"{name}: a profile refit reached a lower chi-square "
                         f"({lowest:.6g}) than the optimum it was taken around "
                         f"({reference:.6g}; {reference - lowest:.2g} lower); the optimum is "
                         f"not unique or the objective is rough near it: treat the "
                         f"standard errors with caution.")
        open_ends = [end for end, edge in zip(("lower", "upper"), info["ci95"]) if edge is None]
        chi = np.asarray(info["chi_square"], dtype=float)
        parameter = result.params.get(name)
        unpredicted = info.get("unpredicted") or {}
        for value, rows in unpredicted.items():
            notes.append(f"{name}: at {name} = {float(value):.4g} the fit could not predict "
                         f"{'; '.join(rows)} (no eligible virtual patient, or a failed "
                         f"integration), so that profile point carries a placeholder, not the "
                         f"data's verdict; the interval does not reach past it (an end there "
                         f"is reported open). Narrow [fit] profile_span, or bound {name} "
                         f"where the rows can be predicted.")
        if unpredicted:  # the placeholder's jumps below are not the grid's coarseness
            chi = np.where([v in {float(u) for u in unpredicted} for v in info["grid"]],
                           np.nan, chi)
        if open_ends:
            rise = float(np.nanmax(chi) - min(np.nanmin(chi), reference)) \
            if np.isfinite(chi).any() else 0.0
            within_bounds = parameter is None or (
                info["grid"][0] > parameter.min and info["grid"][-1] < parameter.max)
            notes.append(f"{name}: the 95% profile-likelihood interval has no "
                         f"{' and no '.join(open_ends)} end within the profiled range: the "
                         f"data do not bound it there" + (
                             f"; the grid ({info['grid'][0]:.4g} to {info['grid'][-1]:.4g}) "
                             f"rose only {rise:.2g} in chi-square (3.84 bounds it), so it "
                             f"may simply be too narrow: the standard error that set it "
                             f"understates the uncertainty; widen it with [fit] "
                             f"profile_span (standard errors each side)"
                             if within_bounds and parameter is not None and
                             parameter.stderr else "") + ".")
        # an interval end interpolated across a jump far larger than 3.84 is not located
        level = min(np.nanmin(chi) if np.isfinite(chi).any() else np.inf, reference) \
            + PROFILE_LEVEL
        jumps = [abs(b - a) for a, b in zip(chi[:-1], chi[1:])
                 if np.isfinite(a) and np.isfinite(b) and min(a, b) <= level < max(a, b)]
        if jumps and max(jumps) > 4 * PROFILE_LEVEL:
            notes.append(f"{name}: an end of the 95% profile interval is interpolated between "
                         f"grid points whose chi-square differs by {max(jumps):.3g} (the "
                         f"interval needs 3.84): the grid is too coarse there to locate it; "
                         f"treat the interval as rough, or profile with more "
                         f"profile_points or a narrower profile_span.")
    return notes


def write_fit(problem: FitProblem, result, table: pd.DataFrame, folder: Path,
              profiles: dict | None = None) -> None:
    """params.json, report.md, fit.png (and profiles.png), predictions.csv: one folder that
    appears whole or not at all (:func:`plateletpd.io.files.atomic_folder`)."""
    profiles = profiles or {}
    large = large_residuals(table, problem.residual_reasons)  # params.json and report.md
    pooled = pooled_regimens_record(problem, result)
    parameters = {}
    for name, p in result.params.items():
        parameters[name] = {"value": p.value, "stderr": p.stderr, "lower": p.min,
                            "upper": p.max, "vary": p.vary, "expr": p.expr,
                            "unit": (p.user_data or {}).get("unit"),
                            "correlations": p.correl or {}}
    record = provenance(
        problem.model, seed=problem.seed, config=str(problem.config_path),
        data={"path": str(problem.data_path),
              "sha256": hashlib.sha256(problem.data_path.read_bytes()).hexdigest()},
        subjects=int(problem.eta.shape[0]))
    # every model parameter as the fit's model had it at the optimum: the varied ones'
    # estimates over the base fit's (or the file's) values, so a trial naming this folder
    # runs the model the fit was made with (a user test: a fit with base = "default" gave
    # trials the file's values for everything it did not vary)
    model_values = {name: float(parameter.value)
                    for name, parameter in problem.model.parameters.items()}
    model_values.update({name: float(p.value) for name, p in result.params.items()
                         if name in model_values})
    with atomic_folder(folder) as staging:
        write_json(staging / "params.json", {
            "parameters": parameters,
            "model_values": model_values,
            **({"base": problem.config.get("fit", {}).get("base"),
                # which fit "default" named, and its exact record (a fitting user test,
                # 2026-12-07: "default" alone does not say which values it brought)
                "base_fit": _base_fit_record(problem)}
               if problem.config.get("fit", {}).get("base") else {}),
            "objective": {"chi_square": float(result.chisqr), "reduced_chi_square":
                          float(result.redchi), "data_points": int(result.ndata),
                          "varied": int(result.nvarys), "evaluations": int(result.nfev),
                          "method": result.method, "success": bool(result.success),
                          "message": str(getattr(result, "message", ""))},
            "identifiability": identifiability(result, profiles),
            # the log-normal priors the objective carried (a fitting user test, 2026-12-07,
            # found them only in the copied configuration)
            **({"priors": _prior_record(problem)} if problem.priors else {}),
            "profiles": profiles,
            **({"restart": problem.restart} if problem.restart else {}),
            **({"profile_below_optimum_within_margin": problem.within_margin}
               if problem.within_margin and not problem.restart else {}),
            **({"start_from": problem.start_from} if problem.start_from else {}),
            "study_effects": study_effect_record(problem, result),
            **({"between_patient": between_patient_record(problem, result)}
               if problem.between_patient else {}),
            **({"pooled_regimens": pooled} if pooled else {}),
            "large_residuals": large,
            **({"trials": [trial.record() for trial in problem.trials]}
               if problem.trials else {}),
            **({"monte_carlo": {
                "replicates": int(table.attrs.get("monte_carlo_replicates", 0)),
                "largest_sd_per_se": float(np.nanmax(table.monte_carlo_sd_per_se)),
                "every_row_under_one_fifth": bool(
                    (table.monte_carlo_sd_per_se < MONTE_CARLO_LIMIT).all()),
                "rows_short": [int(line) for line in monte_carlo_short(table).line],
                "sentence": monte_carlo_sentence(table)}}
               if "monte_carlo_sd" in table else {}),
            "provenance": record})
        write_text(staging / "report.md", _report(problem, result, table, record, profiles,
                                                  large))
        _figure(table, staging / "fit.png")
        if profiles:
            _profile_figure(profiles, staging / "profiles.png")
        atomic_write(staging / "predictions.csv", lambda p: table.to_csv(p, index=False))
        # the configuration beside the record, as the bundled fits keep it: its [population]
        # is the between-patient variability trials naming this folder inherit
        write_text(staging / "config.toml", _configuration_text(problem))


def _configuration_text(problem: FitProblem) -> str:
    """The fit's configuration file as written, or for a fit built in code its
    ``[population]`` (the CVs of its virtual patients; read as data by
    :func:`plateletpd.model.library.fit_population`)."""
    path = problem.config_path
    if path is not None and Path(path).is_file():
        return Path(path).read_text(encoding="utf-8")
    variability = problem.variability
    cv = {name: cv_of_eta_sd(float(np.sqrt(variance)), transform) for name, transform, variance
          in zip(variability.names, variability.transforms, np.diag(variability.covariance))}
    items = ", ".join(f"{name} = {value!r}" for name, value in cv.items())
    transforms = ", ".join(f'{name} = "{transform}"' for name, transform
                           in zip(variability.names, variability.transforms))
    return ("# the between-patient variability of a fit built in code (FitProblem.create)\n"
            f"[population]\ncv = {{ {items} }}\ntransforms = {{ {transforms} }}\n")


def between_patient_record(problem: FitProblem, result) -> dict:
    """Per estimated between-patient CV: its fit parameter, value, standard error and
    transform, as params.json keeps them (and :func:`plateletpd.model.library.fit_population`
    hands them on to trials that take the fit's variability)."""
    record = {}
    for name, parameter in problem.between_patient.items():
        fitted = result.params[parameter]
        index = problem.variability.names.index(name)
        record[name] = {"parameter": parameter, "cv": float(fitted.value),
                        "stderr": None if fitted.stderr is None else float(fitted.stderr),
                        "varied": bool(fitted.vary),
                        "transform": problem.variability.transforms[index]}
    return record


def _between_patient_lines(problem: FitProblem, result) -> list[str]:
    if not problem.between_patient:
        return []
    lines = ["## Between-patient variability estimated", "",
             "Each CV was estimated with the other parameters on the same virtual patients "
             "(their random effects drawn once with the [population] CV and rescaled at each "
             "evaluation: common random numbers). Trials that take this fit's variability "
             "(no [population] cv of their own) use these values.", "",
             "| quantity | CV | stderr | start ([population] cv) | transform |",
             "|---|---|---|---|---|"]
    for name, entry in between_patient_record(problem, result).items():
        start = problem.config.get("population", {}).get("cv", {}).get(name)
        lines.append(f"| {name} | {_fmt(entry['cv'])} | {_fmt(entry['stderr'])} | "
                     f"{_fmt(start) if isinstance(start, (int, float)) else 'n/a'} | "
                     f"{entry['transform']} |")
    return lines + [""]


def pooled_regimens_record(problem: FitProblem, result) -> dict:
    """Per arm or trial that pools regimens ("study / arm", or "trial TRIAL"): each
    quantity's between-patient CV there at the optimum, with the between-study SD added
    (:meth:`FitProblem.patient_cvs`), beside the CV without it."""
    values = result.params.valuesdict()
    record = {}
    for spec in [*problem.arms, *problem.trials]:
        if spec.regimens != "several":
            continue
        label = f"{spec.study} / {spec.arm}" if isinstance(spec, ArmSpec) \
            else f"trial {spec.spec.name}"
        plain = problem.between_patient_cvs(values)
        widened = spec.widened_by if isinstance(spec, TrialArms) else {}
        record[label] = {
            name: {"cv_one_regimen": float(plain[name]) if name in plain else cv_of_eta_sd(
                       problem.one_regimen_sd(spec, name), "lognormal"),
                   "cv_several_regimens": float(cv),
                   "between_study_sd": float(values[problem.study_effects[name]["spread"]])
                   if name in problem.study_effects else 0.0}
            for name, cv in problem.patient_cvs(values, spec).items()
            if name in problem.study_effects or name in widened}
    return record


def _pooled_regimens_lines(problem: FitProblem, result) -> list[str]:
    record = pooled_regimens_record(problem, result)
    if not record:
        return []
    lines = ["## Studies that pooled regimens", "",
             "Their patients' study-level quantities vary by the fit's between-study SD of "
             "the log added to the between-patient spread (regimens = \"several\"; "
             "docs/fitting.md), at its current value in every evaluation:", "",
             "| arms | quantity | CV, one regimen | between-study SD | CV, several |",
             "|---|---|---|---|---|"]
    for label, entries in record.items():
        for name, entry in entries.items():
            lines.append(f"| {label} | {name} | {_fmt(entry['cv_one_regimen'])} | "
                         f"{_fmt(entry['between_study_sd'])} | "
                         f"{_fmt(entry['cv_several_regimens'])} |")
    return lines + [""]


def study_effect_record(problem: FitProblem, result) -> dict:
    """Per study-level parameter: the typical value, the between-study SD of its log (with
    standard errors), each study's value and curvature, and how a new study draws its own."""
    values, record = result.params.valuesdict(), {}
    for name, studies in problem.study_values(values).items():
        spread = result.params[problem.study_effects[name]["spread"]]
        record[name] = {
            "typical": values[name], "typical_stderr": result.params[name].stderr,
            "between_study_sd": spread.value, "between_study_sd_stderr": spread.stderr,
            "studies": studies,
            "curvature": {s: problem.curvature.get((name, s)) for s in studies},
            "new_study": (f"{name} = typical x exp(between_study_sd x z), z ~ N(0, 1), "
                          f"unless the study's value is fixed")}
    return record


def _study_effect_lines(problem: FitProblem, result) -> list[str]:
    if not problem.study_effects:
        return []
    lines = ["## Study effects", "",
             ("Each study's value = typical x exp(SD x u), u ~ N(0, 1) estimated with the SD "
              "(Laplace-approximate marginal likelihood); a new study draws its value from "
              "this distribution."), "",
             "| parameter | typical | between-study SD of log | study | value | u |",
             "|---|---|---|---|---|---|"]
    values = result.params.valuesdict()
    for name, studies in problem.study_values(values).items():
        effect = problem.study_effects[name]
        spread = result.params[effect["spread"]]
        sd = f"{spread.value:.3g}" + (f" +/- {spread.stderr:.2g}" if spread.stderr else "")
        for study, value in studies.items():
            lines.append(f"| {name} | {values[name]:.4g} | {sd} | {study} | {value:.4g} | "
                         f"{values[effect['effects'][study]]:+.2f} |")
    return [*lines, ""]


def _trial_lines(problem: FitProblem) -> list[str]:
    """The report's section on [[trials]] entries: what ran, and every row of their
    studies that is not in the fit, with the reason."""
    if not problem.trials:
        return []
    lines = ["## Trial arms", "",
             ("Arms run through the trial language (their course, eligibility and visits); "
              "their rows are read as `plateletpd check` reads them, over every enrolled "
              "virtual patient, at the fit's parameter values (which replace the trial's "
              "typical values), with the trial's seed fixed (common random numbers)."), "",
             "| trial | file | study | trial arm -> data arm | screened per arm | seed | "
             "rows used (lines) |", "|---|---|---|---|---|---|---|"]
    for trial in problem.trials:
        arms = ", ".join(f"{t} -> {d}" for d, t in trial.mapping.items())
        lines.append(f"| {trial.spec.name} | `{trial.source}` | {trial.study} | {arms} | "
                     f"{trial.spec.subjects_per_arm}"
                     + (f" (fit and profiles: {trial.fit_subjects_per_arm})"
                        if trial.fit_subjects_per_arm not in (0, trial.spec.subjects_per_arm)
                        else "") + f" | {trial.spec.seed} | "
                     f"{', '.join(map(str, trial.rows.line))} |")
    for trial in problem.trials:
        if trial.overridden:
            lines += ["", f"{trial.spec.name}: the fit's values replace the trial's own "
                          f"typical " + ", ".join(f"{name} = {trial.typical[name]:g}"
                                                  for name in trial.overridden) + "."]
        level = trial.spec.extra.get("data_level_of_entry")
        if level is not None:
            lines += ["", f"{trial.spec.name}: rows that state no count level are read below "
                          f"{level:g} x10^9/L (the entry's data_level, in place of the trial "
                          f"file's)."]
        if len(trial.unused):
            lines += ["", f"Rows of study {trial.study} not in the fit:", "",
                      *[f"- line {r.line} ({r.arm}, {r.endpoint}): {r.reason}"
                        for r in trial.unused.itertuples()]]
    return [*lines, ""]


def _monte_carlo_lines(problem: FitProblem, table: pd.DataFrame) -> list[str]:
    """The report's section on the Monte Carlo error of the rows (when computed)."""
    if "monte_carlo_sd" not in table:
        return []
    replicates = table.attrs.get("monte_carlo_replicates", "?")
    return ["## Monte Carlo error", "",
            (f"Every row predicted again at the optimum with {replicates} cohorts of the same "
             f"sizes from other seeds ([[arms]]: the fit's random effects; [[trials]]: the "
             f"trial's patients, between-cycle exposure and measurement error); MC SD = "
             f"the SD of those predictions (the fit's scale, proportions as fractions), "
             f"against the row's standard error (SE)."), "",
            monte_carlo_sentence(table), "",
            "| line | study | arm | endpoint | threshold | day | virtual patients | predicted | "
            "MC SD | SE | MC SD / SE |", "|---|---|---|---|---|---|---|---|---|---|---|",
            *[f"| {r.line} | {r.study} | {r.arm} | {r.endpoint} | {r.threshold or ''} | "
              f"{'' if pd.isna(r.day) else f'{r.day:g}'} | {r.virtual_patients} | "
              f"{r.predicted:.4g} | {r.monte_carlo_sd:.3g} | {r.standard_error:.3g} | "
              f"{r.monte_carlo_sd_per_se:.3g} |" for r in table.itertuples()], ""]


def _base_fit_record(problem) -> dict:
    """The fit ``[fit] base`` named: its name (a bundled fit for "default") and the SHA-256
    of its ``params.json``."""
    from plateletpd.model.library import chosen_fit, fit_record_hash

    name = chosen_fit(problem.model.name, problem.config["fit"]["base"])
    return {"name": None if name is None else str(name),
            "params_sha256": None if name is None else fit_record_hash(name)}


def _prior_record(problem) -> dict:
    """Each prior as written: mean, CV and source (``[priors]`` of the configuration)."""
    written = problem.config.get("priors", {}) or {}
    return {name: {"mean": float(written.get(name, {}).get("mean", math.nan)),
                   "cv": float(written.get(name, {}).get("cv", math.nan)),
                   **({"source": str(written[name]["source"])}
                      if written.get(name, {}).get("source") else {})}
            for name in problem.priors}


def _report(problem, result, table, record, profiles, large: list[dict]) -> str:
    rows = table[["line", "study", "arm", "endpoint", "threshold", "day", "statistic",
                  "observed", "predicted", "standard_error", "residual",
                  *(["monte_carlo_sd", "monte_carlo_sd_per_se"] if "monte_carlo_sd" in table
                    else [])]]
    parameter_rows = ["| parameter | value | stderr | unit | bounds | varied |",
                      "|---|---|---|---|---|---|"]
    for name, p in result.params.items():
        stderr = f"{p.stderr:.3g}" if p.stderr is not None else "n/a"
        parameter_rows.append(f"| {name} | {p.value:.4g} | {stderr} | "
                              f"{(p.user_data or {}).get('unit', '')} | "
                              f"[{p.min:g}, {p.max:g}] | {'yes' if p.vary else 'no'} |")
    fit_subjects = problem.config.get("fit", {}).get("subjects", problem.eta.shape[0])
    return "\n".join([
        f"# Fit report: {problem.config.get('fit', {}).get('name', problem.config_path.stem)}",
        "", *([f"**Not converged**: the minimisation stopped at its evaluation cap "
               f"({result.nfev} evaluations) before converging ({result.message}); raise "
               f"--max-evaluations (or [fit] max_evaluations) and fit again. Everything "
               f"below is of an unfinished fit.", ""] if stopped_at_cap(result) else []),
        str(problem.config.get("fit", {}).get("description", "")), "",
        *([f"Every parameter this configuration does not set takes its value in fit "
           f"`{problem.config['fit']['base']}` ([fit] base).", ""]
          if problem.config.get("fit", {}).get("base") else []),
        f"Model `{problem.model.name}` (hash {problem.model.hash[:12]}), data "
        f"`{problem.data_path.name}` (sha256 {record['data']['sha256'][:12]}), "
        + (f"{problem.eta.shape[0]} virtual patients per arm"
           + (f" (the fit at {fit_subjects}, then a final minimisation at "
              f"{problem.eta.shape[0]}; profiles at {fit_subjects})"
              if fit_subjects != problem.eta.shape[0] else "") + ", "
           if problem.arms else "")
        + ("trial arms as listed under Trial arms, " if problem.trials else "")
        + f"seed {problem.seed}, method "
        f"{result.method}, {result.nfev} evaluations, chi-square {result.chisqr:.3g} on "
        f"{result.ndata} residuals ({result.nvarys} varied parameters"
        + (f"; {len(table)} data rows"
           + (f", {len(problem.priors)} prior{'s' if len(problem.priors) > 1 else ''}"
              if problem.priors else "")
           + (", the study effects' terms" if problem.study_effects else "")
           if problem.priors or problem.study_effects else "") + ").", "",
        *([f"Priors (log-normal, each a residual of the objective): "
           + "; ".join(f"{name}: mean {entry['mean']:g}, CV {entry['cv']:g}"
                       + (f" ({entry['source']})" if entry.get("source") else "")
                       for name, entry in _prior_record(problem).items()), ""]
          if problem.priors else []),
        *_start_lines(problem),
        "## Parameters", "", *parameter_rows, "",
        *_study_effect_lines(problem, result),
        *_between_patient_lines(problem, result),
        *_pooled_regimens_lines(problem, result),
        *_trial_lines(problem),
        *_monte_carlo_lines(problem, table),
        "## What the data identify", "",
        *[f"- {n}" for n in identifiability(result, profiles)], "",
        *(["Profile likelihood (95%: chi-square within 3.84 of its minimum; None = open "
           "within the profiled range; " + _profile_method(problem) + "):", "",
           *[f"- {name}: optimum {info['optimum']:.4g}, 95% interval "
             f"[{_fmt(info['ci95'][0])}, {_fmt(info['ci95'][1])}]"
             + (f" (the final minimisation moved it to {result.params[name].value:.4g})"
                if name in result.params and abs(result.params[name].value - info["optimum"])
                > 1e-9 * max(1.0, abs(info["optimum"])) else "")
             for name, info in profiles.items()], "", *_restart_lines(problem),
           *_profile_size_note(problem, result, profiles),
           "![profiles](profiles.png)", ""]
          if profiles else []),
        *_large_residual_lines(large),
        "## Every data row", "",
        "Residual = (predicted - observed) / standard error; proportions as fractions.", "",
        "```", rows.to_string(index=False, float_format=lambda v: f"{v:.4g}"), "```", "",
        "![observed against predicted](fit.png)", ""])


def _profile_method(problem: FitProblem) -> str:
    """How the profile refits minimised (``[fit] profile_refit``), for the report."""
    fit = problem.config.get("fit", {})
    evaluations = fit.get("profile_evaluations", 60)
    if fit.get("profile_refit", "least_squares") == "broyden":
        return (f"each refit at most {evaluations} evaluations of Gauss-Newton steps from "
                f"the Jacobian at the optimum with Broyden updates, then the between-study "
                f"SD to its optimum with every study's value kept")
    return f"each refit lmfit's least_squares, at most {evaluations} evaluations"


def _start_lines(problem: FitProblem) -> list[str]:
    """The report's sentence on ``[fit] start_from`` (a warm start from an earlier fit)."""
    start = problem.start_from
    if not start:
        return []
    kept = (f"; {', '.join(start['kept'])} started at the configuration's values"
            if start["kept"] else "")
    return [f"Started from the earlier fit `{start['file']}` (sha256 {start['sha256'][:12]}):"
            f" {len(start['started'])} varied parameters at its values{kept}.", ""]


def _restart_lines(problem: FitProblem) -> list[str]:
    """The report's sentence on a restart from a profile refit (:func:`_restart_from_profiles`)."""
    restart = problem.restart
    within = problem.within_margin
    if not restart and within:
        return [f"A profile refit of {within['profile']} reached chi-square "
                f"{within['profile_chi_square']:.6g}, "
                f"{within['optimum_chi_square'] - within['profile_chi_square']:.3g} below "
                f"the optimum's {within['optimum_chi_square']:.6g}: no more than "
                f"restart_margin = {within['restart_margin']:g}, so the fit did not minimise "
                f"again (the margin is set above the objective's jumps at the fit's "
                f"sizes; docs/fitting.md, \"Is the objective smooth enough?\").", ""]
    if not restart:
        return []
    kept = ("kept: the profiles below were taken again around it"
            if restart.get("profiled_again") else
            "kept: the profiles were taken around the earlier optimum"
            if restart["kept"] == "restart" else "not kept: the earlier optimum stayed lower")
    return [f"A profile refit of {restart['profile']} reached chi-square "
            f"{restart['profile_chi_square']:.6g}, below the optimum's "
            f"{restart['optimum_chi_square_before']:.6g}: the fit minimised again from it, "
            f"every parameter free, to {restart['optimum_chi_square_after']:.6g} ({kept}).",
            *([f"A refit of the profile of {restart['below_again']} taken again went more "
               f"than {restart.get('restart_margin', RESTART_MARGIN):g} below the restarted "
               f"optimum as well; the fit does not "
               f"restart twice, so the reported optimum may not be the minimum."]
              if restart.get("below_again") else []),
            ""]


def _fmt(value) -> str:
    return "open" if value is None else f"{value:.4g}"


def _profile_size_note(problem: FitProblem, result, profiles: dict) -> list[str]:
    """With a final minimisation at larger cohorts, the report says that the profiles were
    taken at the fit's cohort sizes around that size's optimum: their width carries over,
    their location differs from the reported optimum by the Monte Carlo difference."""
    fit_subjects = problem.config.get("fit", {}).get("subjects", problem.eta.shape[0])
    resized = [t for t in problem.trials if t.fit_subjects_per_arm
               and t.fit_subjects_per_arm != t.spec.subjects_per_arm]
    if fit_subjects == problem.eta.shape[0] and not resized:
        return []
    sizes = ", ".join([f"{fit_subjects} virtual patients per [[arms]] entry"]
                      + [f"{t.spec.name} {t.fit_subjects_per_arm} screened per arm"
                         for t in resized])
    reference = next(iter(profiles.values())).get("optimum_chi_square", math.nan)
    return [f"The profiles were taken at the fit's cohort sizes ({sizes}) around that size's "
            f"optimum (chi-square {reference:.4g}); the reported optimum (chi-square "
            f"{result.chisqr:.4g}) is the final minimisation's at the larger cohorts. An "
            f"interval's width carries over; where the final minimisation moved a parameter "
            f"(said above), its interval at the larger cohorts is shifted by about that move.",
            ""]


def _profile_figure(profiles: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(profiles), figsize=(4 * len(profiles), 3.4),
                                squeeze=False)
    for axis, (name, info) in zip(axes[0], profiles.items()):
        chi_square = np.asarray(info["chi_square"])
        axis.plot(info["grid"], chi_square - chi_square.min(), "o-")
        axis.axhline(PROFILE_LEVEL, color="grey", ls="--", lw=0.8)
        axis.axvline(info["optimum"], color="grey", lw=0.8)
        axis.set_xlabel(name)
        axis.set_ylabel("chi-square - minimum")
        axis.grid(alpha=0.3)
    figure.tight_layout()
    atomic_write(path, lambda p: figure.savefig(p, dpi=110, format="png"))
    plt.close(figure)


def _figure(table: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = {"proportion": table.statistic.isin(["percent", "count", "proportion"])}
    kinds["count or time"] = ~kinds["proportion"]
    figure, axes = plt.subplots(1, 2, figsize=(11, 5))
    for axis, (kind, mask) in zip(axes, kinds.items()):
        part = table[mask]
        for (study, arm), group in part.groupby(["study", "arm"]):
            axis.errorbar(group.observed, group.predicted, xerr=1.96 * group.standard_error,
                          fmt="o", ms=5, capsize=2, label=f"{study}: {arm}")
        if len(part):
            low = float(min(part.observed.min(), part.predicted.min()))
            high = float(max(part.observed.max(), part.predicted.max()))
            axis.plot([low, high], [low, high], color="grey", lw=0.8)
            axis.set_xscale("log" if kind != "proportion" and low > 0 else "linear")
            axis.set_yscale(axis.get_xscale())
        axis.set_xlabel("observed (95% interval from the standard error)")
        axis.set_ylabel("predicted")
        axis.set_title(kind)
        axis.grid(alpha=0.3)
        if len(part):
            axis.legend(fontsize=6.5)
    figure.tight_layout()
    atomic_write(path, lambda p: figure.savefig(p, dpi=120, format="png"))
    plt.close(figure)
