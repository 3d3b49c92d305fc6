"""Trial-language arms of a fit: a fit configuration's ``[[trials]]`` entries.

A fit ``[[arms]]`` entry is one chemotherapy, an entry count and daily doses
(:class:`~plateletpd.study.cohort.ArmDesign`); it cannot run a course of cycles with delay
rules or enrol patients by their simulated history. A trial file can
(:mod:`plateletpd.study.cycles`), and ``plateletpd check`` already pairs a trial's arms with a
study's rows (:mod:`plateletpd.study.check`). A ``[[trials]]`` entry puts those rows into the
fit by the same pairing:

* the trial's arms run by the trial language (:func:`plateletpd.study.trial.trial_chunk`:
  its population CVs, covariates, course, eligibility, dose rules, visits, response rule),
  for its own virtual patients (the trial's seed, or the entry's: drawn once, so every
  evaluation sees the same patients: common random numbers);
* the typical values are the fit's model file's, then the trial's own ``[population]
  typical``, then the fit's current values and the trial study's study effects (which win);
  the trial's ``fit`` key is not used (the fit being run supplies the parameters);
* each row of the trial's ``data_study`` whose data arm is mapped to an arm run (the
  trial file's ``data_arm``, or the entry's ``arm_map``) is read from the arm's patient
  table by :func:`plateletpd.study.check.arm_row_reader`, over every enrolled patient (the
  expected value of the study's statistic; the study's own sampling error is in its
  standard error), on the scale of the fit's data (proportions as fractions);
* the rows of the study not used are kept with the reason (another data arm, an endpoint
  the trial cannot compute, a filter, no usable standard error) for the fit's report.

Nothing here reads a file or compiles a kernel during an evaluation: the trial file, the
data and the random effects are read and drawn once, when the configuration is loaded.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from plateletpd.errors import PlateletPDError, closest
from plateletpd.model.definition import Model
from plateletpd.population.variability import Variability, cohort_matrix, eta_scales
from plateletpd.simulation.simulate import _valid_rows
from plateletpd.study.check import (KURTOSIS_STATISTIC, SPREAD_STATISTIC, arm_mapping,
                                    arm_row_reader)
from plateletpd.study.cycles import CYCLE_LEVELS
from plateletpd.study.statistics import sample_sd_standard_error
from plateletpd.study.trial import (CHUNK, TrialSpec, _arm_seed, arm_typical_vector, bundled_trial,
                                    load_trial_spec, relative_days, trial_chunk)

#: a row's statistic as the trial check reads it, divided by this, is on the fit's scale
#: (io.outcomes keeps proportions as fractions)
_DATA_SCALE = {"percent": 100.0}


class TrialArmsError(PlateletPDError):
    """A ``[[trials]]`` entry that cannot be used (the fit configuration names it)."""


Fail = Callable[[tuple, str], Exception]


class UnusedRowWarning(UserWarning):
    """A data row of a fitted study that its trial file cannot compute: the fit leaves it
    out (report.md lists every row left out and why)."""


@dataclass(repr=False)
class TrialArms:
    """One ``[[trials]]`` entry, built once: the trial (its model the fit's), the arms run,
    their random effects, the study's rows used (with their readers) and those not used
    (with the reason). :meth:`predict` is one objective evaluation's part for it."""

    spec: TrialSpec
    study: str
    arms: tuple[int, ...]          # indices of the trial's arms run
    mapping: dict                  # data arm -> trial arm
    rows: pd.DataFrame             # rows used: the outcome table's columns + trial, trial_arm
    readers: list                  # row -> function of an arm's patient table
    unused: pd.DataFrame           # line, arm, endpoint, reason
    typical: dict                  # the trial's own [population] typical values
    eta: dict                      # arm index -> random effects (patients x varied)
    source: str                    # the trial file, for messages and provenance
    sha256: str = ""
    params: dict = field(default_factory=dict)  # model parameter -> number or fit parameter
    overridden: tuple = ()         # trial typical values the fit's parameters replace
    final_subjects_per_arm: int = 0  # screened per arm in the fit's last minimisation (0: same)
    fit_subjects_per_arm: int = 0    # after resized(): those the fit's rounds and profiles used
    # [population] regimens = "several": quantity -> the between-study SD its drawn random
    # effects were widened by at load (the trial's own fit's; empty where the trial runs
    # with the fit's [population]); the running fit widens by its own (FitProblem.patient_cvs)
    widened_by: dict = field(default_factory=dict)

    @property
    def regimens(self) -> str:
        """"several" where the trial file pools regimens ([population] regimens), else "one"."""
        return "several" if self.spec.extra.get("pooled_regimens") else "one"

    def __repr__(self) -> str:
        return (f"TrialArms(trial={self.spec.name!r}, study={self.study!r}, arms="
                f"{[self.spec.arms[i].name for i in self.arms]}, rows={len(self.rows)}, "
                f"not_used={len(self.unused)}, subjects_per_arm={self.spec.subjects_per_arm}, "
                f"seed={self.spec.seed})")

    def __getstate__(self) -> dict:
        """Pickled without the readers (local functions): a fit problem travels to Dask
        workers for profile refits, and plain pickle cannot carry them."""
        return {**self.__dict__, "readers": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.readers = [arm_row_reader(self.spec, row, row.trial_arm)
                        for row in self.rows.itertuples()]

    @classmethod
    def create(cls, trial: TrialSpec | str | Path, model: Model, data: pd.DataFrame,
               *, arms: list[str] | None = None, subjects_per_arm: int | None = None,
               seed: int | None = None, study: str | None = None,
               arm_map: Mapping[str, str | list[str]] | None = None,
               endpoints: list[str] | None = None,
               lines: list[int] | None = None, params: Mapping | None = None,
               final_subjects_per_arm: int = 0, data_level: float | None = None,
               data_source: str = "the fit's data", fail: Fail | None = None,
               variability: Variability | None = None,
               spread_rows: Callable[[pd.DataFrame], pd.DataFrame] | None = None
               ) -> "TrialArms":
        """Trial arms of a fit of ``model`` to ``data`` (an outcome table,
        :func:`plateletpd.io.outcomes.load_outcomes`): ``trial`` a spec, a trial file or a
        bundled trial's name; ``arms`` the trial arms to run (default: those mapped to a
        data arm); ``final_subjects_per_arm`` (0: off) the patients screened per arm in the
        fit's last minimisation and its Monte Carlo error (:meth:`resized`);
        ``data_level`` (default: the trial file's) the count level below which the study
        counted days, for every arm's rows that state none (an arm's ``data_level``);
        ``variability`` the fit's ``[population]``, which a trial file stating no
        ``[population] cv`` runs with (instead of the CVs of the fit its file names); the
        other keywords as the ``[[trials]]`` keys (docs: fitting). ``fail``
        turns (key path, message) into the error to raise (a configuration names its file
        and line); by default a :class:`TrialArmsError`. ``spread_rows``: a function of the
        rows used giving rows to fit as well (``[fit] spread_rows``: their published
        between-patient SDs, :func:`plateletpd.inference.fitting.fit_spread_rows`), read
        from the same arms."""
        fail = fail or (lambda where, message: TrialArmsError(
            f"trial arms{' ' + '.'.join(map(str, where)) if where else ''}: {message}"))
        spec = _trial(trial, fail)
        source = str(spec.path)
        if spec.model.name != model.name:
            raise fail(("file",), f"the trial simulates model {spec.model.name!r} "
                       f"({spec.model.path}), but the fit's model is {model.name!r} "
                       f"({model.path}); a fit's trial arms must simulate the fitted model: "
                       f"use a trial file with model = \"{model.path}\" or fit "
                       f"{spec.model.name}")
        if spec.model.text != model.text:
            raise fail(("file",), f"the trial's model file {spec.model.path} and the fit's "
                       f"{model.path} both define {model.name!r} but differ in content; a "
                       f"fit's trial arms must simulate the fitted model: give the trial "
                       f"model = \"{model.path}\" or the fit the trial's model file")
        if subjects_per_arm is not None or seed is not None:
            spec = replace(spec, subjects_per_arm=spec.subjects_per_arm
                           if subjects_per_arm is None else int(subjects_per_arm),
                           seed=spec.seed if seed is None else int(seed))
        if data_level is not None:
            if float(data_level) not in CYCLE_LEVELS:
                raise fail(("data_level",), f"the level below which the study counted days "
                           f"must be one of {', '.join(map(str, CYCLE_LEVELS))} x10^9/L "
                           f"(the levels a course records), got {data_level!r}")
            spec = replace(spec, extra={**spec.extra, "data_level_of_entry": float(data_level),
                                        "data_levels": {arm.name: float(data_level)
                                                        for arm in spec.arms}})
        final = int(final_subjects_per_arm or 0)
        if final and final < spec.subjects_per_arm:
            given = "" if subjects_per_arm is not None else ", the trial file's"
            raise fail(("final_subjects_per_arm",), f"{final} is below subjects_per_arm "
                       f"({spec.subjects_per_arm}{given}); give 0 (off) or at least "
                       f"{spec.subjects_per_arm}: the last minimisation refines the optimum "
                       f"with more patients, not fewer")
        typical = {name: spec.model.parameters[name].value
                   for name in spec.extra.get("typical", ())}
        spec = replace(spec, model=model)  # the fit's model object: its kernel, its values
        widened = dict(spec.extra.get("pooled_regimens") or {})
        if variability is not None and spec.extra.get("cv_from_fit"):
            spec = replace(spec, variability=variability)  # the running fit's [population]
            widened = {}
        study = study or spec.extra.get("data_study")
        studies = list(dict.fromkeys(data.study))
        if not study:
            raise fail(("study",), f"the trial {source} names no data study: add [trial] "
                       f"data_study there, or study = \"NAME\" here; studies in "
                       f"{data_source}: {', '.join(studies)}")
        if study not in studies:
            raise fail(("study",), f"no study {study!r} in {data_source}"
                       f"{closest(study, studies)}; studies there: {', '.join(studies)}")
        rows = data[data.study == study].reset_index(drop=True)
        names = [a.name for a in spec.arms]
        for name in arms or ():
            if name not in names:
                raise fail(("arms",), f"{name!r} is not an arm of the trial {source}"
                           f"{closest(name, names)}; its arms: {', '.join(names)}")
        try:
            mapping = arm_mapping(spec, rows, study, data_source, arm_map, only_mapped=True)
        except PlateletPDError as error:
            raise fail(("arm_map",) if arm_map else ("file",), f"{error}; map a trial arm "
                       f"to a data arm with data_arm in the trial file or arm_map = "
                       f"{{ \"TRIAL ARM\" = \"DATA ARM\" }} here") from None
        chosen = list(dict.fromkeys(arms)) if arms else \
            [n for n in names if n in mapping.values()]
        unmapped = [name for name in chosen if name not in mapping.values()]
        if unmapped:
            raise fail(("arms",), f"trial arm {unmapped[0]!r} is not mapped to a data arm of "
                       f"study {study} (arms there: {', '.join(dict.fromkeys(rows.arm))}); "
                       f"add data_arm = \"...\" to its [[arms]] entry in {source}, or "
                       f"arm_map = {{ \"{unmapped[0]}\" = \"DATA ARM\" }} here")
        every = mapping
        mapping = {data_arm: trial_arm for data_arm, trial_arm in every.items()
                   if trial_arm in chosen}
        used, readers, unused = _rows(spec, rows, mapping, every, endpoints, lines)
        if spread_rows is not None and not used.empty:
            extra = spread_rows(used.drop(columns=["trial", "trial_arm"]))
            extra["trial"], extra["trial_arm"] = spec.name, \
                [mapping[arm] for arm in extra.arm]
            extra_readers = [arm_row_reader(spec, row, row.trial_arm)
                             for row in extra.itertuples()]
            keep = np.array([not isinstance(reader, str) for reader in extra_readers], bool)
            used = pd.concat([used, extra.loc[keep]], ignore_index=True)
            readers += [reader for reader, kept in zip(extra_readers, keep) if kept]
            unused = pd.concat([unused, pd.DataFrame(
                [{"line": row.line, "arm": row.arm, "endpoint": row.endpoint,
                  "reason": f"its published SD: the trial cannot compute it: {reader}"}
                 for row, reader in zip(extra.itertuples(), extra_readers)
                 if isinstance(reader, str)], columns=unused.columns)], ignore_index=True)
        if used.empty:
            raise fail(("file",), f"no row of study {study} in {data_source} can be fitted "
                       f"through trial arms {', '.join(map(repr, chosen))}: " + "; ".join(
                           f"line {r.line}: {r.reason}" for r in unused.itertuples()))
        cannot = unused[unused.reason.str.contains("the trial cannot compute it")]
        if len(cannot):
            # said at load, not only in report.md (a fitting user test, 2026-12-07, missed a
            # row dropped silently): a row of the study the fit will not use
            import warnings

            warnings.warn(f"{source}: the fit leaves out line"
                          f"{'s' if len(cannot) > 1 else ''} "
                          + "; ".join(f"{r.line} ({r.arm}, {r.endpoint}): {r.reason}"
                                      for r in cannot.itertuples())
                          + " (report.md lists every row left out)", UnusedRowWarning,
                          stacklevel=2)
        indices = tuple(names.index(name) for name in chosen)
        eta = _random_effects(spec, indices)
        digest = hashlib.sha256(Path(source).read_bytes()).hexdigest() \
            if Path(source).is_file() else ""
        return cls(spec, study, indices, mapping, used, readers, unused, typical, eta,
                   source, digest, dict(params or {}), final_subjects_per_arm=final,
                   widened_by=widened)

    def reseeded(self, seed: int) -> "TrialArms":
        """The same entry with the trial's patients drawn from ``seed`` (random effects,
        between-cycle exposure and measurement error: every stream the trial seed keys):
        another cohort of the same size, for the Monte Carlo error of a fit's rows
        (:func:`plateletpd.inference.fitting.monte_carlo_error`)."""
        spec = replace(self.spec, seed=int(seed))
        return replace(self, spec=spec, eta=_random_effects(spec, self.arms))

    def resized(self, subjects_per_arm: int) -> "TrialArms":
        """The same entry with ``subjects_per_arm`` patients screened per arm, from the same
        seed: the patients of the smaller entry are the first ones of the larger (random
        effects are drawn in patient order), so the fit's last minimisation refines its
        optimum on a superset of the patients it was found with."""
        spec = replace(self.spec, subjects_per_arm=int(subjects_per_arm))
        return replace(self, spec=spec, eta=_random_effects(spec, self.arms),
                       fit_subjects_per_arm=self.fit_subjects_per_arm
                       or self.spec.subjects_per_arm)

    # ------------------------------------------------------------------ evaluation
    def patient_tables(self, values: Mapping[str, float],
                       covariates: Mapping[str, float] | None = None,
                       cv: Mapping[str, float] | None = None,
                       between_cycle_cv: float | None = None) -> tuple[dict, dict]:
        """Each arm run's patient table (trial arm name -> the enrolled patients' table, as
        ``plateletpd trial`` writes patients.csv) and its enrolled share of the screened,
        for the arguments of :meth:`predict`."""
        spec, model = self.with_between_cycle_cv(between_cycle_cv), self.spec.model
        base = model.parameter_vector({**self.typical, **values},
                                      {**spec.covariates, **(covariates or {})})
        relative = relative_days(spec)
        scales = eta_scales(spec.variability, cv) if cv else None
        tables, fractions = {}, {}
        for index in self.arms:
            eta = self.eta[index] if scales is None else self.eta[index] * scales
            table, screened = _arm_table(spec, index, base, eta, relative)
            name = spec.arms[index].name
            tables[name] = table
            fractions[name] = len(table) / max(screened, 1)
        return tables, fractions

    @property
    def has_course(self) -> bool:
        """Whether the trial gives a chemotherapy course ([chemotherapy] cycles), whose
        cycles' exposure a between-cycle CV varies."""
        return self.spec.extra.get("course") is not None

    def with_between_cycle_cv(self, value: float | None) -> TrialSpec:
        """The trial with each cycle's exposure varying within a patient by ``value`` (a
        fit's ``between_cycle_cv``) in place of its file's ``between_cycle_cv``; the trial
        itself for None or a trial without a course. The exposures stay the same standard
        normal draws per patient and cycle, scaled by the new log-SD (common random
        numbers: smooth in ``value``)."""
        if value is None or not self.has_course:
            return self.spec
        return replace(self.spec, extra={**self.spec.extra, "between_cycle_cv": float(value)})

    def predict(self, values: Mapping[str, float],
                covariates: Mapping[str, float] | None = None,
                cv: Mapping[str, float] | None = None,
                between_cycle_cv: float | None = None) -> pd.DataFrame:
        """The rows used with ``predicted`` (the fit's scale), ``virtual_patients`` (the
        arm's enrolled patients) and ``eligible_fraction`` (enrolled / screened), for the
        model parameter ``values`` (the fit's, with this study's study effects and the
        entry's params): they replace the trial's typical values; ``covariates`` replace
        the trial's fixed covariates; ``cv`` (varied quantity -> between-patient CV, a fit's
        estimated ones) replaces the trial's CVs by rescaling its patients' random effects.
        ``between_cycle_cv`` (a fit's) replaces the course's between-cycle CV
        (:meth:`with_between_cycle_cv`). A published-SD row's ``standard_error`` is set for
        the kurtosis of its per-patient values (:func:`with_spread_standard_errors`)."""
        tables, fractions = self.patient_tables(values, covariates, cv, between_cycle_cv)
        rows = self.rows.copy()
        predicted, shape = [], []
        for row, reader in zip(rows.itertuples(), self.readers):
            table = tables[row.trial_arm]
            value = reader(table) if len(table) else math.nan
            predicted.append(value / _DATA_SCALE.get(row.statistic, 1.0))
            shape.append(self._kurtosis(row, table))
        rows["predicted"] = predicted
        rows["virtual_patients"] = [len(tables[arm]) for arm in rows.trial_arm]
        rows["eligible_fraction"] = [fractions[arm] for arm in rows.trial_arm]
        return with_spread_standard_errors(rows, shape)

    def _kurtosis(self, row, table: pd.DataFrame) -> float:
        """The kurtosis of a published-SD row's per-patient values in its arm's patient
        ``table`` (read as the row's SD is, with the kurtosis as the statistic); NaN for
        another row."""
        if row.statistic != SPREAD_STATISTIC or not len(table):
            return math.nan
        reader = arm_row_reader(self.spec, row._replace(statistic=KURTOSIS_STATISTIC),
                                row.trial_arm)
        return math.nan if isinstance(reader, str) else float(reader(table))

    def data_arms(self) -> dict:
        """Trial arm -> its data arm, or the list of them where it stands for several."""
        arms: dict = {}
        for data, trial in self.mapping.items():
            arms.setdefault(trial, []).append(data)
        return {trial: data[0] if len(data) == 1 else data for trial, data in arms.items()}

    def record(self) -> dict:
        """What params.json keeps of the entry: the trial, its hash, the arms, the seed,
        the rows used and those not used with the reason."""
        return {"trial": self.spec.name, "file": self.source, "sha256": self.sha256,
                "study": self.study, "arms": [self.spec.arms[i].name for i in self.arms],
                "data_arms": self.data_arms(),
                "seed": self.spec.seed, "subjects_per_arm": self.spec.subjects_per_arm,
                "final_subjects_per_arm": self.final_subjects_per_arm,
                "fit_subjects_per_arm": self.fit_subjects_per_arm or self.spec.subjects_per_arm,
                "trial_typical_values": self.typical,
                "regimens": self.regimens,
                "data_levels": dict(self.spec.extra.get("data_levels") or {}),
                "replaced_by_the_fit": list(self.overridden),
                "rows_used": [int(line) for line in self.rows.line],
                "rows_not_used": [{"line": int(r.line), "arm": r.arm, "endpoint": r.endpoint,
                                   "reason": r.reason} for r in self.unused.itertuples()]}


def _random_effects(spec: TrialSpec, indices) -> dict:
    """Arm index -> the random effects of its patients, drawn as
    :func:`plateletpd.study.trial._cohort` draws them (the trial seed and the arm's
    position; the first arm's stream for every arm of a paired design)."""
    paired = spec.extra.get("design") == "paired"
    eta = {}
    for index in indices:
        size, stream = spec.subjects_per_arm, _arm_seed(spec.seed, 0 if paired else index)
        eta[index] = spec.variability.eta(size, stream) if spec.variability.width \
            else np.zeros((size, 0))
    return eta


def _trial(trial, fail: Fail) -> TrialSpec:
    """The trial spec of ``trial`` (a spec, a path, or a bundled trial's name)."""
    if isinstance(trial, TrialSpec):
        return trial
    text = str(trial)
    if text.endswith(".toml") and not Path(text).is_file():
        raise fail(("file",), f"no trial file {text} (give a path relative to the fit "
                   f"configuration, or a bundled trial's name such as "
                   f"\"persistent_cit_rct\"); fix the path")
    try:
        return load_trial_spec(text if text.endswith(".toml") else bundled_trial(text))
    except PlateletPDError as error:
        raise fail(("file",), str(error)) from None


def _rows(spec: TrialSpec, rows: pd.DataFrame, mapping: dict, every: dict,
          endpoints: list[str] | None, lines: list[int] | None):
    """The study's rows split into those used (with their readers) and those not (with
    the reason); ``mapping``: data arm -> trial arm run, ``every``: also those not run."""
    used, readers, unused = [], [], []
    names = [arm.name for arm in spec.arms]
    for position, row in enumerate(rows.itertuples()):
        reason = None
        if row.arm in every and row.arm not in mapping:
            reason = (f"data arm {row.arm!r} belongs to trial arm {every[row.arm]!r}, "
                      f"which this entry's arms leave out")
        elif row.arm not in mapping:
            reason = (f"data arm {row.arm!r} is not mapped to a trial arm run here "
                      f"(mapped: {', '.join(f'{t} -> {d}' for d, t in mapping.items())}; "
                      f"trial arms: {', '.join(names)})")
        elif endpoints is not None and row.endpoint not in endpoints:
            reason = f"endpoint {row.endpoint} is not in endpoints = {list(endpoints)}"
        elif lines is not None and row.line not in lines:
            reason = f"line {row.line} is not in lines = {list(lines)}"
        elif not math.isfinite(row.standard_error):
            reason = f"no standard error: {row.standard_error_basis}"
        else:
            reader = arm_row_reader(spec, row, mapping[row.arm])
            if isinstance(reader, str):
                reason = f"the trial cannot compute it: {reader}"
            else:
                used.append(position)
                readers.append(reader)
        if reason is not None:
            unused.append({"line": row.line, "arm": row.arm, "endpoint": row.endpoint,
                           "reason": reason})
    table = rows.iloc[used].reset_index(drop=True)
    table["trial"] = spec.name
    table["trial_arm"] = [mapping[arm] for arm in table.arm]
    return table, readers, pd.DataFrame(unused, columns=["line", "arm", "endpoint",
                                                         "reason"])


def _arm_table(spec: TrialSpec, index: int, base: np.ndarray, eta: np.ndarray,
               relative: np.ndarray) -> tuple[pd.DataFrame, int]:
    """Arm ``index``'s patient table (as :func:`plateletpd.study.trial.run_trial` builds it,
    chunk by chunk) for the typical parameter vector ``base``, and the patients screened
    (drawn, those outside the model's bounds included). Nobody enrolled: an empty table."""
    model = spec.model
    matrix = cohort_matrix(model, arm_typical_vector(spec, index, base), spec.variability, eta)
    valid = _valid_rows(model, matrix)
    tables = []
    for first in range(0, len(matrix), CHUNK):
        rows = np.arange(first, min(first + CHUNK, len(matrix)))
        chosen = rows[valid[rows]]
        _, _, table, _ = trial_chunk(spec, index, (matrix[chosen], chosen), 0, relative)
        if table is not None:
            tables.append(table)
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    if tables:
        table.insert(0, "arm", spec.arms[index].name)
    return table, len(matrix)


def with_spread_standard_errors(rows: pd.DataFrame, kurtosis) -> pd.DataFrame:
    """``rows`` (predicted, one evaluation's) with each published-SD row's standard error
    set for the kurtosis of its simulated per-patient values (``kurtosis``: one value per
    row, NaN for the others): :func:`sample_sd_standard_error`."""
    kurtosis = np.asarray(kurtosis, float)
    spread = (rows.statistic == SPREAD_STATISTIC).to_numpy() & np.isfinite(kurtosis)
    if spread.any():
        rows = rows.copy()
        rows.loc[spread, "standard_error"] = sample_sd_standard_error(
            rows.observed.to_numpy(float)[spread],
            pd.to_numeric(rows.n, errors="coerce").to_numpy(float)[spread], kurtosis[spread])
    return rows
