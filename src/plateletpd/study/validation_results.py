"""A model's recorded validation, read into trial reports: every prediction says how far
its model has been found to hold.

``plateletpd validate SUITE --out DIR`` (:mod:`plateletpd.study.validation`) writes
``validation.csv`` and ``provenance.json``; kept as ``validation/results/MODEL.csv`` and
``MODEL.provenance.json`` (bundled in the wheel), they are the record this module reads.
:func:`validation_report_lines` gives a trial report's section: rows inside their 95%
prediction intervals by role (calibration, not fitted, held out; never pooled), the
held-out rows that fall outside, and whether the trial's model (file and parameter values,
by its hash) is the one the record was made with."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from plateletpd.io.files import bundled_folder

#: the roles a check's rows may play for the fit, in the order they are reported
#: (plateletpd.study.validation: calibration, not fitted, held out)
ROLES = ("calibration", "not fitted", "held out")


def inside_by_role(table: pd.DataFrame) -> pd.DataFrame:
    """Per role present in a validation table (``role``, ``inside`` per row): rows,
    rows inside their 95% prediction interval and that share in percent, in
    :data:`ROLES` order. The roles are never pooled.

    With ``observed_percentile`` (each observed value's percentile among its replicate
    studies) also ``central`` and ``central_pct``: the rows whose observed value lies in
    the central half of its replicate studies (percentile 25-75), and
    ``median_percentile``. Coverage of the 95% interval alone cannot tell honest intervals
    from intervals too wide to be wrong; honest ones put about half of the rows in the
    central half, too wide ones many more, and a model biased one way puts the median
    percentile far from 50 (a probability-integral-transform check, as in a visual
    predictive check)."""
    rows = table.assign(central=table.observed_percentile.between(25, 75)) \
        if "observed_percentile" in table else table
    aggregates = {"rows": ("inside", "size"), "inside": ("inside", "sum")}
    if "observed_percentile" in table:
        aggregates.update(central=("central", "sum"),
                          median_percentile=("observed_percentile", "median"))
    counts = (rows.groupby("role", sort=False).agg(**aggregates)
              .reindex([r for r in ROLES if r in set(table.role)]).reset_index())
    counts["inside_pct"] = 100.0 * counts.inside / counts.rows
    if "observed_percentile" in table:
        counts["central_pct"] = 100.0 * counts.central / counts.rows
    return counts


def inside_text(table: pd.DataFrame) -> str:
    """``"calibration 5/7, not fitted 14/25, held out 1/6"`` (:func:`inside_by_role`)."""
    return ", ".join(f"{row.role} {int(row.inside)}/{int(row.rows)}"
                     for row in inside_by_role(table).itertuples())


def recorded_validation(model_name: str,
                        folder: Path | None = None) -> tuple[pd.DataFrame, dict] | None:
    """(table, provenance) of the recorded validation of ``model_name``, or None."""
    folder = bundled_folder("validation") / "results" if folder is None else Path(folder)
    table_path = folder / f"{model_name}.csv"
    record_path = folder / f"{model_name}.provenance.json"
    if not (table_path.is_file() and record_path.is_file()):
        return None
    return pd.read_csv(table_path), json.loads(record_path.read_text())


def recorded_validation_on_fit(model_name: str, fit: str,
                                folder: Path | None = None) -> tuple[pd.DataFrame, dict, str] | None:
    """(table, provenance, file stem) of a record made with ``validate --fit FIT`` on
    ``model_name``'s trials (its provenance's ``fit`` is ``fit``), or None: the records of a
    model's variant fits are kept beside its own as ``MODEL_<variant>.csv``."""
    from plateletpd.model.library import fit_name

    folder = bundled_folder("validation") / "results" if folder is None else Path(folder)
    for record_path in sorted(folder.glob(f"{model_name}*.provenance.json")):
        stem = record_path.name[:-len(".provenance.json")]
        try:
            found = recorded_validation(stem, folder)
        except (OSError, ValueError):
            continue
        recorded_fit = found[1].get("fit") if found is not None else None
        if recorded_fit is not None and fit_name(recorded_fit) == fit_name(fit) and all(
                run.get("model") == model_name for run in found[1].get("checks", [])):
            return (*found, stem)
    return None


def validation_report_lines(model, folder: Path | None = None,
                            fit: str | None = None) -> list[str]:
    """A trial report's section on ``model``'s recorded validation (Markdown lines).

    ``fit``: the fit the trial ran on when it is not the model's default one (a bundled
    variant fit's name, a folder): the record made on that fit (``validate --fit``) when
    one is kept, else the default fit's record, said to be of another fit."""
    heading = ["## How far this model has been found to hold", ""]
    stem, other_fit = model.name, []
    recorded = None
    if fit is not None:
        on_fit = recorded_validation_on_fit(model.name, fit, folder)
        if on_fit is not None:
            recorded, stem = on_fit[:2], on_fit[2]
        else:
            other_fit = [(f"This trial ran on fit {fit}, which has no recorded validation; "
                          f"the record below is of {model.name}'s default fit (run "
                          f"`plateletpd validate --fit {fit}` for its own)."), ""]
    if recorded is None:
        recorded = recorded_validation(model.name, folder)
    if recorded is None:
        return heading + [(f"No recorded validation of {model.name}: run `plateletpd "
                           f"validate` with a suite of its published studies."), ""]
    table, record = recorded
    on = f" on fit {record['fit']}" if record.get("fit") else ""
    lines = heading + other_fit + [(
        f"Recorded validation of {model.name}{on} ({record.get('created', '?')}; suite "
        f"`validation/{Path(str(record.get('suite', '?'))).name}`, "
        f"{record.get('replicates', '?')} virtual studies of "
        f"each row's size per check, uncertainty {record.get('uncertainty', '?')!r}): rows "
        f"inside their 95% prediction interval, by role: {inside_text(table)}. Only the "
        f"held-out rows (trials no fit saw) test a prediction for a new study."), ""]
    if "observed_percentile" in table:  # coverage alone cannot see intervals too wide
        summary = inside_by_role(table)
        lines += [(
            "Whether the intervals are honest rather than merely wide: rows whose observed "
            "value lies in the central half of its virtual studies (about half if the "
            "intervals are honest, many more if they are too wide), and the median "
            "observed percentile (about 50 unless the model errs one way): " + ", ".join(
                f"{row.role} {int(row.central)}/{int(row.rows)}, median percentile "
                f"{row.median_percentile:.0f}" for row in summary.itertuples()) + "."), ""]
    caveats = [f"- {c.get('trial', '?')}: {c['note']}" for c in record.get("checks", [])
               if c.get("role") == "held out" and c.get("note")]
    if caveats:  # what the suite says a held-out row can and cannot show
        lines += ["Notes on held-out checks:", "", *caveats, ""]
    missed = table[(table.role == "held out") & ~table.inside.astype(bool)]
    if len(missed):
        lines += ["Held-out rows outside their interval:", ""]
        lines += [f"- {row.trial}, {row.arm}, {row.endpoint}: observed {row.observed:.4g}, "
                  f"predicted {row.predicted:.4g} [{row.interval_low:.4g}, "
                  f"{row.interval_high:.4g}]" for row in missed.itertuples()]
        lines.append("")
    validated = {c.get("model_hash") for c in record.get("checks", [])
                 if c.get("model") == model.name}
    if model.hash not in validated:
        lines += [(f"This trial's model (hash {model.hash[:12]}) is not the one validated: "
                   f"its file or parameter values differ from those of the record, which "
                   f"describes the model as the suite ran it."), ""]
    lines += [(f"Every row: `validation/results/{stem}.csv`; what the model gets "
               f"wrong and why: its model card."), ""]
    return lines
