"""Validation suites: many predictive checks in one run, kept apart by what the fit saw.

A suite file (TOML; the bundled one is ``validation/cit_marrow_reserve.toml``) lists
checks. Each is a trial (a bundled trial's name or a file) against its study's rows in a
published-outcome table (the format of ``data/cit_summary.csv``), with the **role** those
rows play for the fit the trial uses:

* ``calibration``: the fit was made to them (agreement shows the fit, not a prediction);
* ``not fitted``: in the project's data, left out of every fit (a prediction, though the
  people who built the model have seen them);
* ``held out``: kept out of every fit on purpose, the rows of ``data/out_of_sample.csv``
  (the honest test of a prediction for a new study).

:func:`validate` runs every check through :func:`plateletpd.study.check.check_trial`
(replicate virtual studies of each row's size, optionally with the fit's parameter and
between-study uncertainty) and returns one table, every data row with its check, role,
observed value, prediction interval and whether it lies inside, and a summary per role.
The roles are never pooled: a model that matches its calibration rows and misses its
held-out ones is shown as such. The checks' spread rows (a mean's published SD against the
virtual studies' between-patient SDs, :func:`plateletpd.study.check.spread_rows`) are kept
apart in ``ValidationResult.spread`` (``spread.csv``), never counted with the rows.

Suite file::

    [suite]
    name = "cit_marrow_reserve"
    replicates = 40            # virtual studies per check (default 40)
    uncertainty = "fit"        # "fit": parameters and study effects drawn; "none"

    [[checks]]
    trial = "rpth2023_hetrombopag_rhtpo"     # a bundled trial, or a path (from this file)
    data = "out_of_sample.csv"               # a path (from this file) or a bundled table
    role = "held out"
    # optional: lines = [2, 3], only_mapped_arms = true, arm_map = { "trial arm" = "data arm" },
    #           response = { threshold = 30, rise_fold = 2, combine = "all" } (the file's
    #           [response] keys replaced: the same trial judged by another rule),
    #           screened = 600 (patients screened per arm, instead of the file's), note = "..."

A check's rows depend only on its trial, data, seed, replicates and uncertainty, so after a
change to one trial file only its check needs running again: ``validate(suite, checks=(21,))``
runs check 21 alone and :func:`merge_validation` puts its rows, run record and notes into an
earlier record in place of the old ones (``plateletpd validate --check 21 --update RECORD
--out DIR``). A record whose other checks were made with another model (hash), suite,
replicate count or uncertainty is refused: it would no longer be one statement about one
model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from plateletpd.errors import PlateletPDError
from plateletpd.io.display import short_repr
from plateletpd.io.files import atomic_folder, atomic_write, write_json, write_text
from plateletpd.io.outcomes import bundled_outcomes_path
from plateletpd.io.provenance import provenance
from plateletpd.io.schema import Document, Field, Table
from plateletpd.numerics.kernels import many_batches
from plateletpd.study.interval_calibration import calibrate_intervals
from plateletpd.study.validation_results import (ROLES, SPREAD_FILE, inside_by_role,
                                                   spread_counts, spread_path)



class ValidationSuiteError(PlateletPDError):
    """A validation suite file that cannot be run as written."""


SUITE_SCHEMA = Table({
    "suite": Table({
        "name": Field("text", required=True),
        "description": Field("text", default=""),
        "replicates": Field(whole=True, default=40, low=2.0, low_included=True,
                            what="a whole number of at least 2 replicate studies per "
                                 "check, e.g. 40"),
        "uncertainty": Field("text", default="fit", choices=("fit", "none"))},
        required=True),
    "checks": Table({
        "trial": Field("text", required=True,
                       what="a bundled trial's name or a trial file's path"),
        "data": Field("text", required=True,
                      what="an outcome table: a path from the suite file, or a bundled "
                           "table such as \"out_of_sample.csv\""),
        "role": Field("text", required=True, choices=ROLES),
        "lines": Field("list", item=Field(whole=True, low=1.0, low_included=True),
                       nonempty=True, what="lines of the data file, e.g. [41, 43]"),
        "only_mapped_arms": Field("boolean", default=False),
        "arm_map": Table(names=Field("names")),
        "screened": Field(whole=True, default=0, low=0.0, low_included=True,
                          what="0 (the trial file's) or patients screened per arm"),
        # keys replacing the trial file's [response] (load_trial_spec's response): the same
        # trial judged by another rule, e.g. the IWG ITP response
        "response": Table(names=Field("value")),   # checked as the trial file's [response]
        "note": Field("text", default=""),
        # a calibration check whose rows calibrated the model outside the fit's own
        # minimisation (e.g. a grid over two parameters before it): where, in words
        "fitted_elsewhere": Field("text", default="",
                                  what="where the rows were fitted, when not by the fit "
                                       "itself (its predictions.csv does not list them)")},
        many=True, required=True, nonempty=True,
        what="[[checks]] tables, each with trial, data and role"),
})


@dataclass(frozen=True)
class ValidationCheck:
    """One check of a suite (a trial against its study's rows, in one role)."""

    trial: Path
    data: Path
    role: str
    lines: tuple[int, ...] | None = None
    only_mapped_arms: bool = False
    arm_map: tuple[tuple[str, "str | tuple[str, ...]"], ...] = ()
    screened: int = 0
    note: str = ""
    response: tuple[tuple[str, object], ...] = ()   # keys replacing the file's [response]
    fitted_elsewhere: str = ""   # a calibration check's rows fitted outside the fit's rows


@dataclass(frozen=True)
class ValidationSuite:
    """A parsed suite file: its ``checks`` and how many replicate studies each runs."""

    name: str
    description: str
    replicates: int
    uncertainty: str
    checks: tuple[ValidationCheck, ...]
    path: str = ""

    def __repr__(self) -> str:
        return short_repr("ValidationSuite", [("name", self.name),
                                              ("checks", len(self.checks)),
                                              ("replicates", self.replicates)])


@dataclass(frozen=True)
class ValidationResult:
    """``table``: every data row of every check (check, trial, study, role, line, arm,
    endpoint, observed, predicted, interval, inside, observed percentile); ``summary``:
    per role, the rows checked and how many lie inside; ``notes`` from the checks."""

    suite: ValidationSuite
    table: pd.DataFrame
    summary: pd.DataFrame
    notes: tuple[str, ...]
    runs: tuple[dict, ...] = ()  # per check: trial, model and its hash, seed, data, role
    # the checks' spread rows (plateletpd.study.check.spread_rows: each mean row published
    # with an SD, that between-patient SD against the virtual studies'), with check, trial,
    # role and data as in ``table``; kept apart from ``table`` and its summary: a spread
    # row tests the between-patient variability, not a published outcome
    spread: pd.DataFrame = field(default_factory=pd.DataFrame)

    def __repr__(self) -> str:
        inside = ", ".join(f"{row.role}: {int(row.inside)}/{int(row.rows)}"
                           for row in self.summary.itertuples())
        return short_repr("ValidationResult", [("suite", self.suite.name),
                                               ("inside", f"[{inside}]")])


def bundled_suite(name: str) -> Path:
    """Path of a bundled validation suite (validation/NAME.toml in the source tree or the
    wheel)."""
    from plateletpd.io.files import bundled_toml

    return bundled_toml("validation", name, "validation suite", ValidationSuiteError)


def load_suite(path: str | Path) -> ValidationSuite:
    """Read and check a suite file; every trial and data table it names must exist."""
    from plateletpd.study.trial import TrialSpecError, bundled_trial

    path = Path(path)
    if not path.exists() and path.suffix != ".toml":
        path = bundled_suite(str(path))
    document = Document.read(path, ValidationSuiteError, "validation suite")
    checked = document.check(SUITE_SCHEMA)
    checks = []
    for index, entry in enumerate(checked["checks"]):
        trial = path.parent / entry["trial"]
        if not trial.is_file():
            try:
                trial = bundled_trial(entry["trial"])
            except TrialSpecError as error:
                raise document.fail(("checks", index, "trial"), str(error)) from None
        data = path.parent / entry["data"]
        if not data.is_file():
            data = bundled_outcomes_path(entry["data"])
            if not data.is_file():
                raise document.fail(("checks", index, "data"), (
                    f"no file {entry['data']!r} next to the suite nor among the bundled "
                    f"outcome tables (cit_summary.csv, out_of_sample.csv)"))
        checks.append(ValidationCheck(
            trial, data, entry["role"],
            tuple(entry["lines"]) if entry.get("lines") else None,
            entry["only_mapped_arms"], tuple(
                (trial_arm, data if isinstance(data, str) else tuple(data))
                for trial_arm, data in (entry.get("arm_map") or {}).items()),
            entry["screened"], entry["note"],
            tuple((entry.get("response") or {}).items()), entry["fitted_elsewhere"]))
    suite = checked["suite"]
    return ValidationSuite(suite["name"], suite["description"], suite["replicates"],
                           suite["uncertainty"], tuple(checks), str(path))


@many_batches
def validate(suite: ValidationSuite, replicates: int | None = None,
             uncertainty: str | None = None, roles: tuple[str, ...] | None = None,
             progress: bool = False, checks: tuple[int, ...] | None = None,
             fit: str | None = None) -> ValidationResult:
    """Run the suite's checks (only those of ``roles``, and only the check numbers
    ``checks``, 1-based in the suite's order, when given); ``replicates`` and
    ``uncertainty`` replace the suite's; ``fit`` replaces every trial file's ``[trial] fit``
    (:func:`plateletpd.study.trial.load_trial_spec`). One failing check stops the run with its trial
    named: a suite is a statement about a model, not a best effort."""
    import sys

    from plateletpd.study.check import check_trial
    from plateletpd.study.trial import load_trial_spec

    if roles is not None:
        unknown = sorted(set(roles) - set(ROLES))
        if unknown:
            raise ValidationSuiteError(f"unknown role(s) {unknown}: the roles are "
                                       f"{', '.join(map(repr, ROLES))}")
    replicates = suite.replicates if replicates is None else replicates
    uncertainty = suite.uncertainty if uncertainty is None else uncertainty
    if isinstance(replicates, bool) or not isinstance(replicates, int) or replicates < 2:
        raise ValidationSuiteError(f"replicates must be a whole number of at least 2 (each "
                                   f"row's interval comes from replicate studies; 40 or more "
                                   f"for stable 95% intervals), got {replicates!r}")
    if uncertainty not in ("none", "fit"):
        raise ValidationSuiteError(f"uncertainty must be 'none' (the fit's point estimates) "
                                   f"or 'fit' (parameters and study effects drawn from the "
                                   f"fit), got {uncertainty!r}")
    if checks is not None:
        wrong = [n for n in checks if isinstance(n, bool) or not isinstance(n, int)
                 or not 1 <= n <= len(suite.checks)]
        if wrong or not checks:
            raise ValidationSuiteError(f"checks must be check numbers of {suite.name}, from 1 "
                                       f"to {len(suite.checks)} (its checks in file order), "
                                       f"got {list(checks) if checks else 'none'}")
    chosen = [(i, c) for i, c in enumerate(suite.checks, 1)
              if (roles is None or c.role in roles) and (checks is None or i in checks)]
    if not chosen:
        raise ValidationSuiteError(f"no check of {suite.name} has the role(s) {roles}")
    specs = {number: load_trial_spec(check.trial, response=dict(check.response) or None,
                                     fit=fit) for number, check in chosen}
    # every role against the rows its fit was made to, before any check runs (a check
    # called "not fitted" on calibration rows passed unseen, 2026-12-07)
    for number, check in chosen:
        check_role(suite, number, check, specs[number], chosen_for_all=fit is not None)
    tables, spreads, notes, runs, started = [], [], [], [], time.perf_counter()
    for number, check in chosen:
        spec = specs[number]
        if check.screened:
            spec = replace(spec, subjects_per_arm=check.screened)
        if progress:
            print(f"check {number}/{len(suite.checks)} ({check.role}): {spec.name} against "
                  f"{check.data.name}, {time.perf_counter() - started:.0f} s", file=sys.stderr,
                  flush=True)
        try:
            result = check_trial(spec, check.data, arm_map=dict(check.arm_map) or None,
                                 replicates=replicates, uncertainty=uncertainty,
                                 only_mapped=check.only_mapped_arms,
                                 lines=list(check.lines) if check.lines else None)
        except PlateletPDError as error:
            raise ValidationSuiteError(f"{suite.path or suite.name}, check {number} "
                                       f"({check.trial.name}): {error}") from error
        # the suite's own note on the check first (what a reader must know to weigh it)
        fitted = [f"calibration rows fitted outside the fit's minimisation: "
                  f"{check.fitted_elsewhere}"] if check.fitted_elsewhere else []
        notes.extend(f"check {number} ({spec.name}): {n}"
                     for n in ([check.note] if check.note else []) + fitted
                     + list(result.notes))
        runs.append({"check": number, "trial": spec.name, "file": str(check.trial),
                     "model": spec.model.name, "model_hash": spec.model.hash,
                     "parameters_from": spec.parameters_from, "seed": spec.seed,
                     "screened_per_arm": spec.subjects_per_arm, "data": str(check.data),
                     "role": check.role, "lines": list(check.lines or []),
                     "note": check.note, "response": dict(check.response),
                     "file_sha256": _sha256(check.trial),
                     "data_sha256": _sha256(check.data)})
        tables.append(result.table.assign(check=number, trial=spec.name, role=check.role,
                                          data=check.data.name))
        if len(result.spread):
            spreads.append(result.spread.assign(check=number, trial=spec.name,
                                                role=check.role, data=check.data.name))
    table = _checks_first(pd.concat(tables, ignore_index=True))
    spread = _checks_first(pd.concat(spreads, ignore_index=True)) if spreads else \
        pd.DataFrame()
    return ValidationResult(suite, table, inside_by_role(table), tuple(notes), tuple(runs),
                            spread)


def check_role(suite: ValidationSuite, number: int, check: ValidationCheck, spec,
               chosen_for_all: bool = False) -> None:
    """Refuse a check whose role contradicts its trial's fit: a "calibration" check must
    read only rows the fit was made to, a "not fitted" or "held out" one none of them (the
    fit folder's ``predictions.csv``: :func:`plateletpd.model.library.fitted_rows`). A fit
    folder that keeps no rows is not checked, nor a trial on no fit read as not fitted or
    held out; a calibration check whose own trial file runs on no fit is refused, unless
    ``chosen_for_all`` (the run chose the fit for every check, as ``validate --fit none``
    does to see the model file's values on the suite: the roles then stay the suite's)."""
    from plateletpd.model.library import chosen_fit
    from plateletpd.study.check import row_keys, selected_rows, trial_fit_rows

    where = f"{suite.path or suite.name}, check {number} ({check.trial.name})"
    if check.fitted_elsewhere and check.role != "calibration":
        raise ValidationSuiteError(
            f"{where} has the role {check.role!r} and says its rows were fitted elsewhere "
            f"(fitted_elsewhere = {check.fitted_elsewhere!r}): rows that were fitted are "
            f"calibration rows; give the check the role 'calibration' or drop the key")
    choice = spec.extra.get("fit")
    if choice is None or chosen_fit(spec.model.name, choice) is None:
        if check.role == "calibration" and not chosen_for_all:
            raise ValidationSuiteError(
                f"{where} has the role 'calibration' but its trial runs on no fit (the "
                f"model file's values), so no row was fitted: name the fit in the trial's "
                f"[trial] fit, or give the check the role 'not fitted' or 'held out'")
        return
    found = trial_fit_rows(spec)
    if found is None:
        return
    name, fitted = found
    try:
        rows = selected_rows(spec, check.data, None, dict(check.arm_map) or None,
                             check.only_mapped_arms,
                             list(check.lines) if check.lines else None).rows
    except PlateletPDError as error:
        raise ValidationSuiteError(f"{where}: {error}") from error
    keys = row_keys(rows)
    used = [key for key in keys if key in fitted]
    if check.role == "calibration" and len(used) < len(keys) and not check.fitted_elsewhere:
        unused = [key[3] for key in keys if key not in fitted]
        raise ValidationSuiteError(
            f"{where} has the role 'calibration' but line(s) {', '.join(map(str, unused))} "
            f"of study {keys[0][0]} are not rows the fit {name} was made to (its "
            f"predictions.csv): give the check the role 'not fitted' (rows no fit uses) "
            f"or 'held out' (data/out_of_sample.csv), keep only the fitted lines "
            f"(lines = [...]), or, for rows fitted outside the fit's minimisation, say where "
            f"(fitted_elsewhere = \"...\")")
    if check.role != "calibration" and used:
        raise ValidationSuiteError(
            f"{where} has the role {check.role!r} but line(s) "
            f"{', '.join(str(key[3]) for key in used)} of study {used[0][0]} are rows the "
            f"fit {name} was made to (its predictions.csv lists them): give the check the "
            f"role 'calibration', or leave those lines out (lines = [...])")


def _checks_first(table: pd.DataFrame) -> pd.DataFrame:
    """A record's columns in their order: the check and the row first."""
    first = ["check", "trial", "role", "data", "line", "study", "arm", "endpoint"]
    return table[first + [c for c in table.columns if c not in first]]


def load_spread_record(path: str | Path) -> pd.DataFrame:
    """The spread rows of an earlier record (:func:`load_validation_record`'s ``path``):
    a folder's ``spread.csv`` or ``MODEL.spread.csv`` beside a kept ``MODEL.csv``
    (:func:`~plateletpd.study.validation_results.spread_path`); empty when the record has
    none (made before checks compared spreads, 2026-12-06, or with no mean row published
    with an SD)."""
    found = spread_path(path)
    if not found.is_file():
        return pd.DataFrame()
    try:
        return pd.read_csv(found)
    except (ValueError, OSError) as error:
        raise ValidationSuiteError(f"{found}: not a readable spread record ({error})") \
            from None


def _sha256(path: Path) -> str | None:
    """The file's sha256 (None when it cannot be read)."""
    import hashlib

    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def load_validation_record(path: str | Path) -> tuple[pd.DataFrame, dict]:
    """An earlier record: a folder written by :func:`write_validation` (``validation.csv``
    and ``provenance.json``) or a kept record ``MODEL.csv`` with ``MODEL.provenance.json``
    beside it (``validation/results/``)."""
    import json

    path = Path(path)
    if path.is_dir():
        table_path, record_path = path / "validation.csv", path / "provenance.json"
    else:
        table_path, record_path = path, path.with_name(path.stem + ".provenance.json")
    missing = [str(p) for p in (table_path, record_path) if not p.is_file()]
    if missing:
        raise ValidationSuiteError(f"no validation record at {path}: {', '.join(missing)} "
                                   f"missing; give a folder written by plateletpd validate "
                                   f"--out, or a kept MODEL.csv with MODEL.provenance.json "
                                   f"beside it")
    try:
        return pd.read_csv(table_path), json.loads(record_path.read_text())
    except (ValueError, OSError) as error:
        raise ValidationSuiteError(f"{path}: not a readable validation record ({error})") \
            from None


def check_record(record: tuple[pd.DataFrame, dict], suite: ValidationSuite, rerun: set[int],
                 hashes: set[str], replicates: int, uncertainty: str,
                 fit: str | None = None) -> None:
    """Refuse to merge checks ``rerun`` (made with model ``hashes``) into ``record`` when it
    was made with another suite, replicate count, uncertainty or fit (``--fit``: a record
    without one ran each trial file's own), when a kept check's model
    differs, or when a kept check's trial or data file changed since (by sha256, where
    recorded). Cheap: the command calls it before running any check."""
    provenance_record = record[1]
    problems = []
    suite_file = Path(str(provenance_record.get("suite", ""))).name
    if suite_file != Path(suite.path).name:
        problems.append(f"suite {suite_file or '?'} (this run: {Path(suite.path).name})")
    for key, value in (("replicates", replicates), ("uncertainty", uncertainty),
                       ("fit", fit)):
        if provenance_record.get(key) != value:
            problems.append(f"{key} {provenance_record.get(key)!r} (this run: {value!r})")
    kept = [run for run in provenance_record.get("checks", []) if run["check"] not in rerun]
    # each kept check against the model its trial gives now: trials of one suite may set
    # their own typical values (the ITP suite's baselines of 9, 13 and 15), so one hash for
    # the whole record would refuse every merge (the first ITP --update, 2026-12-04)
    from plateletpd.study.trial import load_trial_spec

    other = []
    for run in kept:
        number = run["check"]
        if 1 <= number <= len(suite.checks):
            check = suite.checks[number - 1]
            now = load_trial_spec(check.trial, response=dict(check.response) or None,
                                  fit=fit).model.hash
        else:  # a check the suite no longer has: compared with the re-run ones, as before
            now = next(iter(hashes), "")
        if run["model_hash"][:12] != now[:12]:
            other.append(f"{run['model_hash'][:12]} (check {number}; now {now[:12]})")
    if other:
        problems.append(f"model hash {', '.join(other)} in the checks kept")
    if problems:
        raise ValidationSuiteError(
            "the record was made with " + "; ".join(problems) + ": merged, it would no "
            "longer be one statement about one model; run every check (no --check)")
    # a kept check whose trial or data file changed since the record is stale (records made
    # before the files' sha256 were kept cannot be checked this way)
    stale = [f"check {run['check']} ({Path(run[name]).name})" for run in kept
             for key, name in (("file_sha256", "file"), ("data_sha256", "data"))
             if run.get(key) and _sha256(Path(run[name])) != run[key]]
    if stale:
        raise ValidationSuiteError(
            f"the files of {', '.join(stale)} changed since the record was made: its rows "
            f"no longer describe them; re-run those checks too (--check)")


def merge_validation(record: tuple[pd.DataFrame, dict], result: ValidationResult,
                     replicates: int, uncertainty: str, fit: str | None = None,
                     spread: pd.DataFrame | None = None) -> ValidationResult:
    """``record`` (:func:`load_validation_record`) with the checks ``result`` ran put in
    place of the record's own: their rows, run records and notes; every other check kept as
    recorded; ``spread``: the record's spread rows (:func:`load_spread_record`), merged the
    same way. Refused when the record was made with another suite, replicate count or
    uncertainty, when a kept check's model (hash) differs from the re-run ones', or when a
    kept check's trial or data file changed since the record (by sha256, where recorded)."""
    table, provenance_record = record
    rerun = {run["check"] for run in result.runs}
    check_record(record, result.suite, rerun, {run["model_hash"] for run in result.runs},
                 replicates, uncertainty, fit)
    kept = [run for run in provenance_record.get("checks", []) if run["check"] not in rerun]
    from plateletpd.study.check import COMPARISON_COLUMNS

    # the comparison columns exist only where some check has comparison rows: a record
    # without them merges with a re-run that has them (and the reverse). A record made before
    # checks said how they read each row (the `reading` column, 2026-12-05) keeps its rows
    # without it. Any other column that differs means another version made the record
    optional = set(COMPARISON_COLUMNS) | ({"reading"} - set(table.columns))

    def own(columns) -> list:
        return [c for c in columns if c not in optional]
    if own(table.columns) != own(result.table.columns):
        lacks = [c for c in own(result.table.columns) if c not in table.columns]
        extra = [c for c in own(table.columns) if c not in result.table.columns]
        raise ValidationSuiteError(
            f"the record's columns differ from this run's (made by another version): "
            + "; ".join(part for part in (
                f"the record lacks {', '.join(lacks)}" if lacks else "",
                f"it has {', '.join(extra)}, which this run does not" if extra else "",
                "" if lacks or extra else "the same columns in another order") if part)
            + "; run every check")
    merged = pd.concat([table[~table.check.isin(rerun)], result.table], ignore_index=True)
    merged = merged.sort_values("check", kind="stable").reset_index(drop=True)
    comparisons = [c for c in COMPARISON_COLUMNS if c in merged.columns]
    if comparisons and merged[comparisons].isna().all().all():
        merged = merged.drop(columns=comparisons)  # as a run without comparison rows
    else:
        merged = merged[[c for c in merged.columns if c not in COMPARISON_COLUMNS]
                        + comparisons]  # as a full run orders them
    runs = sorted(kept + list(result.runs), key=lambda run: run["check"])

    def number(note: str) -> int:
        head = note.split(" ", 2)
        return int(head[1]) if head[0] == "check" and head[1].isdigit() else 0
    notes = [n for n in provenance_record.get("notes", []) if number(n) not in rerun]
    notes = sorted(notes + list(result.notes), key=number)
    spread = spread if spread is not None else pd.DataFrame()
    kept_spread = spread[~spread.check.isin(rerun)] if len(spread) else spread
    parts = [part for part in (kept_spread, result.spread) if len(part)]
    merged_spread = pd.concat(parts, ignore_index=True).sort_values(
        "check", kind="stable").reset_index(drop=True) if parts else pd.DataFrame()
    return ValidationResult(result.suite, merged, inside_by_role(merged), tuple(notes),
                            tuple(runs), merged_spread)


def validation_markdown(result: ValidationResult) -> str:
    """The result as a report: the summary per role, then every row by role."""
    # which values the checks ran on (a suite's description names its trial files' own fit;
    # --fit runs them on another): each distinct source with its number of checks
    sources = pd.Series([str(run.get("parameters_from", "?")).split(";")[0]
                         for run in result.runs]).value_counts(sort=False)
    used = "; ".join(f"{source} ({count} check{'s' if count > 1 else ''})"
                     for source, count in sources.items())
    lines = [f"# Validation suite {result.suite.name}", "",
             result.suite.description or "", "", f"Parameters: {used}.", "",
             "![observed percentiles](validation.png)", "",
             "| role | rows | inside the 95% prediction interval | in the central half of "
             "its virtual studies (about half if the intervals are honest) | median observed "
             "percentile |", "|---|---|---|---|---|"]
    for row in result.summary.itertuples():
        lines.append(f"| {row.role} | {int(row.rows)} | {int(row.inside)} "
                     f"({row.inside_pct:.0f}%) | {int(row.central)} ({row.central_pct:.0f}%) "
                     f"| {row.median_percentile:.0f} |")
    # how much wider a new study's intervals must be to hold what these rows miss
    lines += ["", calibrate_intervals(result.table).text()]
    for role in result.summary.role:
        header = ("| check | trial | line | arm | endpoint | observed | predicted | "
                  "95% interval | inside |")
        lines += ["", f"## {role}", "", header, "|---|---|---|---|---|---|---|---|---|"]
        for row in result.table[result.table.role == role].itertuples():
            lines.append(f"| {row.check} | {row.trial} | {row.line} | {row.arm} | "
                         f"{row.endpoint} | {row.observed:.4g} | {row.predicted:.4g} | "
                         f"[{row.interval_low:.4g}, {row.interval_high:.4g}] | "
                         f"{'yes' if row.inside else '**no**'} |")
    lines += spread_markdown(result.spread)
    if result.notes:
        lines += ["", "Notes:", ""] + [f"- {note}" for note in result.notes]
    return "\n".join(lines) + "\n"


def spread_markdown(spread: pd.DataFrame) -> list[str]:
    """The report's section on the between-patient spread (``spread.csv``): each mean row
    published with an SD, that SD against the SDs of the virtual studies, and how many
    published SDs lie above the virtual studies' median (too alike virtual patients), by
    role. No lines without spread rows."""
    if not len(spread):
        return []
    lines = ["", "## Between-patient spread", "",
             "Each mean row published with an SD, that SD against the SDs of the same "
             "virtual studies (spread.csv; not in the counts above: these rows test the "
             "virtual population's between-patient variability, not a published outcome). "
             "A published SD above the median says the virtual patients are more alike "
             "than the study's.", "",
             "The CV (SD over mean) reads the spread on the scale of the mean, so a row "
             "whose mean the model misses is not a spread misfit for that alone.", "",
             "| statistic | role | rows | inside | published spread above the median |",
             "|---|---|---|---|---|"]
    lines += [f"| {statistic} | {role} | {rows} | {inside} | {above} |"
              for statistic, role, rows, inside, above in spread_counts(spread)]
    lines += ["", "| check | trial | line | arm | endpoint | statistic | published | "
                  "predicted | 95% interval | inside |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for row in spread.itertuples():
        lines.append(f"| {row.check} | {row.trial} | {row.line} | {row.arm} | "
                     f"{row.endpoint} | {row.statistic} | {row.observed:.4g} | "
                     f"{row.predicted:.4g} | [{row.interval_low:.4g}, "
                     f"{row.interval_high:.4g}] | {'yes' if row.inside else '**no**'} |")
    return lines


def plot_validation(table: pd.DataFrame, path: str | Path | None = None):
    """Where each observed value falls among its replicate studies (its percentile), by
    role: a model whose prediction intervals are honest puts about 95% of the rows inside
    the shaded 2.5-97.5 band, spread evenly; rows piled at 0 or 100 are predicted wrongly
    in one direction. A red cross marks a row outside its interval."""
    import matplotlib

    if path is not None:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from plateletpd.study.uncertainty import finish_figure

    roles = [r for r in ROLES if r in set(table.role)]
    figure, axis = plt.subplots(figsize=(2.2 + 1.6 * len(roles), 4.2))
    axis.axhspan(2.5, 97.5, color="tab:blue", alpha=0.12, label="95% prediction interval")
    jitter = np.random.default_rng(0)  # fixed: the same table gives the same figure
    for position, role in enumerate(roles):
        rows = table[table.role == role]
        x = position + jitter.uniform(-0.25, 0.25, len(rows))
        inside = rows.inside.astype(bool).to_numpy()
        axis.plot(x[inside], rows.observed_percentile[inside], "o", color="black", ms=4,
                  label="observed" if position == 0 else None)
        axis.plot(x[~inside], rows.observed_percentile[~inside], "x", color="red", ms=7,
                  label="observed, outside" if position == 0 else None)
        axis.text(position, 103, f"{int(inside.sum())}/{len(rows)} inside", ha="center",
                  fontsize=8)
    axis.set_xticks(range(len(roles)), roles)
    axis.set_xlim(-0.6, len(roles) - 0.4)
    axis.set_ylim(-5, 110)
    axis.set_ylabel("observed percentile among replicate studies")
    axis.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3)
    axis.grid(alpha=0.3, axis="y")
    return finish_figure(figure, path, plt)


def write_validation(result: ValidationResult, folder: str | Path,
                     replicates: int, uncertainty: str, **extra) -> list[Path]:
    """``validation.csv``, ``validation.md``, ``validation.png`` and ``provenance.json``
    as one folder that appears whole or not at all; ``extra``: more provenance fields (a
    merged record's re-run checks and the record it started from)."""
    names = ("validation.csv", "validation.md", "validation.png", "provenance.json")
    with atomic_folder(folder) as staging:
        atomic_write(staging / names[0], lambda p: result.table.to_csv(p, index=False))
        write_text(staging / names[1], validation_markdown(result))
        plot_validation(result.table, staging / names[2])
        if len(result.spread):
            atomic_write(staging / SPREAD_FILE,
                         lambda p: result.spread.to_csv(p, index=False))
        write_json(staging / names[3], provenance(
            None, suite=result.suite.path, replicates=replicates, uncertainty=uncertainty,
            checks=list(result.runs), notes=list(result.notes), **extra))
    return [Path(folder) / name for name in names] + (
        [Path(folder) / SPREAD_FILE] if len(result.spread) else [])
