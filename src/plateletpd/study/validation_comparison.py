"""Two validation records side by side: is a candidate model or fit better on what it never
saw than the one it would replace?

``plateletpd compare RECORD RECORD`` (:func:`compare_validations`): each record is a folder
written by ``plateletpd validate --out`` or a kept ``MODEL.csv`` with
``MODEL.provenance.json`` beside it (:func:`plateletpd.study.validation.load_validation_record`).
Rows are matched by trial, data file, data line, data arm and endpoint; per role (never
pooled) the comparison gives the rows inside their 95% prediction intervals, the rows in the
central half of their virtual studies and the median observed percentile under each record,
then every row that came inside or went outside, and each matched row's two predictions.
A row whose observed value differs between the records (another data version) is refused:
the two records would not be judged on the same evidence. A row whose role differs (a
candidate that fits a row the other held out) is counted under the second record's role,
and the report names each such row with both roles."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from plateletpd.study.validation import ValidationSuiteError, load_validation_record
from plateletpd.study.interval_calibration import IntervalCalibration, calibrate_intervals
from plateletpd.study.validation_results import ROLES, inside_by_role

#: the columns that name a row of a validation table across records (check numbers may
#: differ between versions of a suite)
ROW_KEY = ("trial", "data", "line", "arm", "endpoint")
_PER_RECORD = ("role", "predicted", "interval_low", "interval_high", "inside",
               "observed_percentile")


@dataclass(frozen=True)
class ValidationComparison:
    """``summary``: per role, rows and, for each record (suffixes ``_first``, ``_second``),
    rows inside, rows in the central half and the median observed percentile, over the rows
    both records hold. ``rows``: every matched row with both predictions, intervals and
    ``change`` ("came inside", "went outside" or ""). ``only_first`` / ``only_second``: rows
    one record has and the other does not. ``labels``: the records as given."""

    summary: pd.DataFrame
    rows: pd.DataFrame
    only_first: pd.DataFrame
    only_second: pd.DataFrame
    labels: tuple[str, str]
    provenance: tuple[dict, dict]
    calibrations: tuple[IntervalCalibration, IntervalCalibration] | None = None

    @property
    def moved(self) -> pd.DataFrame:
        """The matched rows that came inside or went outside their intervals."""
        return self.rows[self.rows.change != ""]

    @property
    def role_changed(self) -> pd.DataFrame:
        """The matched rows whose role differs between the records (counted under the
        second record's role, ``role``; the first's is ``role_first``)."""
        return self.rows[self.rows.role != self.rows.role_first]


def compare_validations(first: str | Path, second: str | Path) -> ValidationComparison:
    """Compare two validation records (see the module's docstring); a clear
    :class:`ValidationSuiteError` when a record cannot be read, lacks a column, shares no
    row with the other, or gives a shared row another observed value."""
    tables, records = [], []
    for path in (first, second):
        table, record = load_validation_record(path)
        missing = [c for c in (*ROW_KEY, "observed", *_PER_RECORD) if c not in table]
        if missing:
            raise ValidationSuiteError(f"{path}: a validation record needs the columns "
                                       f"{', '.join(missing)}; write it again with plateletpd "
                                       f"validate --out")
        duplicated = table.duplicated(list(ROW_KEY))
        if duplicated.any():
            row = table[duplicated].iloc[0]
            raise ValidationSuiteError(
                f"{path}: the row {_name(row)} appears more than once; a record holds each "
                f"data row once")
        tables.append(table)
        records.append(record)
    both = tables[0].merge(tables[1], on=list(ROW_KEY), how="inner",
                           suffixes=("_first", "_second"))
    if both.empty:
        raise ValidationSuiteError(f"{first} and {second} share no row (matched by "
                                   f"{', '.join(ROW_KEY)}): they validate different studies")
    differs = ~np.isclose(both.observed_first, both.observed_second, rtol=1e-9, atol=0.0,
                          equal_nan=True)
    if differs.any():
        row = both[differs].iloc[0]
        raise ValidationSuiteError(
            f"{_name(row)}: observed {row.observed_first:g} in {first} but "
            f"{row.observed_second:g} in {second} ({int(differs.sum())} row(s) differ): the "
            f"records were made on different data; validate both on the same data files")
    both = both.rename(columns={"observed_first": "observed"}).drop(columns="observed_second")
    # a row with no prediction (inside empty) counts as not inside
    inside = both.inside_first.eq(True), both.inside_second.eq(True)
    both["change"] = np.select([~inside[0] & inside[1], inside[0] & ~inside[1]],
                               ["came inside", "went outside"], "")
    # a row's role is the second record's (the candidate's suite) where they differ; the
    # first's is kept (role_first) and the report lists those rows
    both["role"] = both.role_second
    summaries = []
    for suffix in ("first", "second"):
        part = both[["role", "inside_" + suffix, "observed_percentile_" + suffix]].rename(
            columns={"inside_" + suffix: "inside",
                     "observed_percentile_" + suffix: "observed_percentile"})
        summaries.append(inside_by_role(part).set_index("role")[
            ["rows", "inside", "central", "median_percentile"]])
    summary = summaries[0].merge(summaries[1].drop(columns="rows"), left_index=True,
                                 right_index=True, suffixes=("_first", "_second"))
    summary = summary.reset_index()
    keys = list(ROW_KEY)
    only = [table.merge(both[keys], on=keys, how="left", indicator=True)
            .query("_merge == 'left_only'").drop(columns="_merge") for table in tables]
    columns = ["role", "role_first", *keys, "observed",
               *[f"{c}_{s}" for s in ("first", "second") for c in
                 ("predicted", "interval_low", "interval_high", "inside",
                  "observed_percentile")], "change"]
    order = {role: i for i, role in enumerate(ROLES)}
    rows = both[columns].sort_values(["role", "trial", "line"],
                                     key=lambda c: c.map(order) if c.name == "role" else c,
                                     kind="stable").reset_index(drop=True)
    # each record's interval widening over the rows both hold (the same rows, comparable)
    calibrations = tuple(calibrate_intervals(
        both.rename(columns={f"{c}_{suffix}": c for c in
                             ("predicted", "interval_low", "interval_high", "versus")}))
        for suffix in ("first", "second"))
    return ValidationComparison(summary, rows, only[0], only[1], (str(first), str(second)),
                                (records[0], records[1]), calibrations)


def _name(row) -> str:
    return (f"trial {row['trial']}, {row['data']} line {row['line']} ({row['arm']}, "
            f"{row['endpoint']})")


def _describe(record: dict) -> str:
    """What a record was made with, from its provenance: when, on which parameters (the
    checks' distinct sources) and how many replicate studies with which uncertainty."""
    checks = record.get("checks") or []
    sources = sorted({str(run.get("parameters_from", "?")).split(";")[0] for run in checks
                      if isinstance(run, dict)})
    parts = [f"created {record.get('created', '?')}"]
    if record.get("fit"):
        parts.append(f"--fit {record['fit']}")
    if sources:
        parts.append("parameters: " + "; ".join(sources))
    if record.get("replicates"):
        parts.append(f"{record['replicates']} replicate studies per check, uncertainty "
                     f"{record.get('uncertainty', '?')!r}")
    return ", ".join(parts)


def comparison_markdown(comparison: ValidationComparison) -> str:
    """The comparison as a report: the records, the summary per role, the rows that moved,
    the rows only one record holds, and every matched row's two predictions."""
    first, second = comparison.labels
    lines = ["# Two validation records compared", "",
             f"- first: `{first}` ({_describe(comparison.provenance[0])})",
             f"- second: `{second}` ({_describe(comparison.provenance[1])})", "",
             "Over the rows both records hold, per role (never pooled). Inside: the observed "
             "value lies in the 95% prediction interval; central half: in the middle half of "
             "the virtual studies (about half of the rows if the intervals are honest); "
             "median observed percentile: about 50 if the model is not biased one way. "
             f"{_noise_note(comparison.provenance)}", "",
             "| role | rows | inside, first | inside, second | central half, first | "
             "central half, second | median percentile, first | median percentile, second |",
             "|---|---|---|---|---|---|---|---|"]
    for row in comparison.summary.itertuples():
        lines.append(f"| {row.role} | {int(row.rows)} | {int(row.inside_first)} | "
                     f"{int(row.inside_second)} | {int(row.central_first)} | "
                     f"{int(row.central_second)} | {row.median_percentile_first:.0f} | "
                     f"{row.median_percentile_second:.0f} |")
    if comparison.calibrations is not None:
        first_found, second_found = comparison.calibrations

        def said(found: IntervalCalibration) -> str:
            if not found.calibrated:
                return f"too few rows ({found.rows})"
            return (f"**{found.factor:.2f}** ({found.inside} of {found.rows} rows inside as "
                    f"made; {100 * found.coverage_after:.0f}% inside the widened intervals, "
                    f"each study left out)")

        lines += ["", "How much wider each record's 95% intervals must be to hold 95% of the "
                  "published values no fit was made to, over the rows both hold "
                  "(split-conformal; study/interval_calibration.py): first "
                  f"{said(first_found)}, second {said(second_found)}. Lower is better only "
                  "with the central-half counts above: intervals can need no widening "
                  "because they are too wide."]
    table = ("| role | trial | line | arm | endpoint | observed | first: predicted [95%] | "
             "second: predicted [95%] |")
    rule = "|---|---|---|---|---|---|---|---|"

    def row_line(row) -> str:
        return (f"| {row.role} | {row.trial} | {row.line} | {row.arm} | {row.endpoint} | "
                f"{row.observed:.4g} | {_cell(row, 'first')} | {_cell(row, 'second')} |")

    for change in ("came inside", "went outside"):
        moved = comparison.rows[comparison.rows.change == change]
        lines += ["", f"## Rows that {change} under the second record ({len(moved)})", ""]
        lines += [table, rule, *map(row_line, moved.itertuples())] if len(moved) else \
            ["(none)"]
    changed = comparison.role_changed
    if len(changed):
        lines += ["", f"Rows whose role differs between the records ({len(changed)}), "
                  f"counted above under the second record's role: "
                  + "; ".join(f"{_name(row)}: {row.role_first} in the first, {row.role} in "
                              f"the second" for _, row in changed.iterrows())]
    for label, only in (("first", comparison.only_first), ("second", comparison.only_second)):
        if len(only):
            lines += ["", f"Rows only the {label} record holds ({len(only)}): "
                      + "; ".join(_name(row) for _, row in only.iterrows())]
    lines += ["", "## Every matched row", "", table, rule,
              *map(row_line, comparison.rows.itertuples())]
    return "\n".join(lines) + "\n"


def _noise_note(records: tuple[dict, dict]) -> str:
    """How far a row's inside-or-not can move by chance: the interval's ends rest on the
    most extreme of each check's replicate studies."""
    counts = sorted({int(r["replicates"]) for r in records
                     if isinstance(r.get("replicates"), (int, float))})
    size = " and ".join(map(str, counts)) if counts else "a few dozen"
    return (f"With {size} replicate studies per check, each 95% interval end rests on its one "
            f"or two most extreme studies, so a row near an end can come inside or go "
            f"outside between two records of the same model by chance: weigh a difference "
            f"of a few rows against that (records with more --replicates tell them apart), "
            f"and read the median percentiles and the predictions themselves beside the "
            f"counts.")


def _cell(row, suffix: str) -> str:
    inside = getattr(row, f"inside_{suffix}")
    text = (f"{getattr(row, f'predicted_{suffix}'):.4g} "
            f"[{getattr(row, f'interval_low_{suffix}'):.4g}, "
            f"{getattr(row, f'interval_high_{suffix}'):.4g}]")
    return text if inside else f"**{text}**"


def write_comparison(comparison: ValidationComparison, folder: str | Path) -> list[Path]:
    """``comparison.csv`` (every matched row), ``comparison.md`` and ``provenance.json``
    (both records' provenance), as one folder that appears whole or not at all."""
    from plateletpd.io.files import atomic_folder, atomic_write, write_json, write_text
    from plateletpd.io.provenance import provenance

    names = ("comparison.csv", "comparison.md", "provenance.json")
    with atomic_folder(folder) as staging:
        atomic_write(staging / names[0], lambda p: comparison.rows.to_csv(p, index=False))
        write_text(staging / names[1], comparison_markdown(comparison))
        write_json(staging / names[2], provenance(
            None, compared={"first": {"record": comparison.labels[0],
                                      "provenance": comparison.provenance[0]},
                            "second": {"record": comparison.labels[1],
                                       "provenance": comparison.provenance[1]}}))
    return [Path(folder) / name for name in names]
