"""A model's recorded validation, read into trial reports: every prediction says how far
its model has been found to hold.

``plateletpd validate SUITE --out DIR`` (:mod:`plateletpd.study.validation`) writes
``validation.csv`` and ``provenance.json``; kept as ``validation/results/MODEL.csv`` and
``MODEL.provenance.json`` (bundled in the wheel), they are the record this module reads.
:func:`validation_report_lines` gives a trial report's section: rows inside their 95%
prediction intervals by role (calibration, not fitted, held out; never pooled), the
held-out rows that fall outside, and whether the trial's model (file and parameter values,
by its hash) is the one the record was made with; given the trial's arms, also each arm's
track record (:func:`track_record`): how the model has done on published arms that gave
the same drugs, and which way it erred."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from plateletpd.io.files import bundled_folder
# TESTING_ROLES: the roles whose rows test a prediction, rows no fit was made to
from plateletpd.study.interval_calibration import (TESTING_ROLES, calibrate_intervals,
                                                   standardised_errors)

#: the roles a check's rows may play for the fit, in the order they are reported
#: (plateletpd.study.validation: calibration, not fitted, held out)
ROLES = ("calibration", "not fitted", "held out")

#: which way an endpoint's values point: +1 where a higher value means more platelets (a
#: count, a nadir, a peak, an area, a share of responders), -1 where it means fewer (days
#: below a threshold, days to reach one, a chemotherapy delay, an incidence: every
#: incidence in the bundled data counts an event of thrombocytopenia, a transfusion or a
#: delay), 0 for timing alone (days to the nadir or the peak). An endpoint not listed is
#: left out of a track record's direction (its rows still count as inside or outside).
COUNT_DIRECTION = {
    "plt_count": 1, "plt_change_from_baseline": 1, "plt_percent_change": 1, "nadir_plt": 1,
    "peak_plt": 1, "plt_auc_day0_21": 1, "response_proportion": 1,
    "cumulative_response_proportion": 1,
    "duration_below_days": -1, "duration_thrombocytopenia_days": -1,
    "time_to_threshold_days": -1, "chemotherapy_delay_days": -1, "incidence_proportion": -1,
    "time_to_rise_onset_days": 0, "time_to_peak_days": 0}


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


#: a check's or validation folder's spread rows (written only when there are some)
SPREAD_FILE = "spread.csv"


def spread_path(record: str | Path) -> Path:
    """Where a record's spread rows are kept: ``spread.csv`` in a validation folder, or
    ``MODEL.spread.csv`` beside a kept ``MODEL.csv``."""
    record = Path(record)
    return record / SPREAD_FILE if record.is_dir() else record.with_name(
        f"{record.stem}.{SPREAD_FILE}")


def recorded_spread(stem: str, folder: Path | None = None) -> pd.DataFrame:
    """The spread rows kept beside a record (``STEM.spread.csv``: each mean row published
    with an SD, :func:`plateletpd.study.check.spread_rows`); empty when there are none."""
    folder = bundled_folder("validation") / "results" if folder is None else Path(folder)
    path = spread_path(folder / f"{stem}.csv")
    return pd.read_csv(path) if path.is_file() else pd.DataFrame()


def spread_counts(spread: pd.DataFrame) -> list[tuple[str, str, int, int, int]]:
    """(statistic, role, rows, inside their 95% interval, published value above the
    virtual studies' median) for each statistic (sd, then cv) and role with spread rows."""
    counts = []
    for statistic in ("sd", "cv"):
        for role in ROLES:
            rows = spread[(spread.statistic == statistic) & (spread.role == role)] \
                if len(spread) else spread
            if len(rows):
                counts.append((statistic, role, len(rows), int(rows.inside.astype(bool).sum()),
                               int((rows.observed_percentile > 50).sum())))
    return counts


def spread_text(spread: pd.DataFrame) -> str:
    """By statistic (the SD, then the CV) and role: the published spreads inside their
    intervals and those above the virtual studies' median, e.g. "SD: held out 8/17 inside,
    12/17 above"."""
    parts: dict[str, list[str]] = {}
    for statistic, role, rows, inside, above in spread_counts(spread):
        parts.setdefault(statistic.upper(), []).append(
            f"{role} {inside}/{rows} inside, {above}/{rows} above")
    return "; ".join(f"{label}: " + ", ".join(items) for label, items in parts.items())


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


@dataclass(frozen=True)
class TrackRecord:
    """How a model has done on recorded published arms that gave ``drugs``
    (:func:`track_record`). ``rows``: the matching rows of the validation table, with
    ``count_side_percentile`` (the observed percentile among the row's virtual studies,
    turned so that a higher value means more platelets: :data:`COUNT_DIRECTION`; NaN for
    timing endpoints); ``unmatched``: rows of the chosen roles whose arm's drugs could not
    be read (their trial file missing or changed)."""

    drugs: frozenset[str]
    rows: pd.DataFrame
    unmatched: int

    @property
    def studies(self) -> list[str]:
        return list(dict.fromkeys(self.rows["trial"]))

    @property
    def inside(self) -> int:
        return int(self.rows["inside"].map(lambda v: str(v).strip().lower() == "true").sum())

    @property
    def directional(self) -> pd.Series:
        return self.rows["count_side_percentile"].dropna()

    @property
    def optimistic(self) -> int:
        """Rows whose published value lies below the model's median on the count scale:
        the model predicted more platelets (or fewer days below, fewer events) than seen."""
        return int((self.directional < 50).sum())

    @property
    def pessimistic(self) -> int:
        return int((self.directional > 50).sum())

    @property
    def sign_test_p(self) -> float:
        """Two-sided sign test of optimistic against pessimistic rows (ties left out): the
        chance of a split at least this uneven if the model erred either way alike. Rows of
        one study share its virtual studies and its patients, so they are not independent:
        read it as a screen, not a test of the model."""
        from scipy.stats import binomtest

        total = self.optimistic + self.pessimistic
        return 1.0 if total == 0 else float(binomtest(self.optimistic, total).pvalue)


def track_record(table: pd.DataFrame, drugs,
                 arm_drugs: dict[tuple[str, str], frozenset[str]],
                 roles=TESTING_ROLES) -> TrackRecord:
    """The rows of a validation ``table`` whose arm gave exactly ``drugs`` (a set of drug
    names as regimens write them, compared without case; empty: untreated, placebo and
    observation arms), among ``roles`` (by default the rows no fit used). ``arm_drugs``:
    each recorded arm's drugs, ``(trial name, arm name) -> drugs``
    (:func:`plateletpd.study.trial.record_arm_drugs` reads them from the record's trial
    files); a row of an arm not in it is counted as unmatched. Comparison rows (``versus``
    set: a published finding between two arms or against baseline, read as a test
    statistic from a P value that is often only a bound, "P < 0.05") are left out: the
    track record is of the arms' own values."""
    wanted = frozenset(str(d).lower() for d in drugs)
    lowered = {key: frozenset(d.lower() for d in value) for key, value in arm_drugs.items()}
    rows = table[table["role"].isin(roles)]
    keys = list(zip(rows["trial"], rows["trial_arm"]))
    known = np.array([key in lowered for key in keys], dtype=bool)
    same = np.array([lowered.get(key) == wanted for key in keys], dtype=bool)
    if "versus" in rows:  # a comparison's statistic, often a bound ("P < 0.05"): left out
        same &= ~np.array([isinstance(v, str) and v != "" for v in rows["versus"]],
                          dtype=bool)
    chosen = rows[same].copy()
    direction = chosen["endpoint"].map(COUNT_DIRECTION)
    percentile = pd.to_numeric(chosen["observed_percentile"], errors="coerce") \
        if "observed_percentile" in chosen else pd.Series(np.nan, index=chosen.index)
    chosen["count_side_percentile"] = np.where(
        direction > 0, percentile, np.where(direction < 0, 100.0 - percentile, np.nan))
    return TrackRecord(frozenset(drugs), chosen, int((~known).sum()))


def track_record_table(table: pd.DataFrame,
                       arm_drugs: dict[tuple[str, str], frozenset[str]],
                       roles=TESTING_ROLES) -> pd.DataFrame:
    """:func:`track_record` of every set of drugs the recorded arms gave, one row each
    (fewest drugs first): ``drugs``, ``rows``, ``studies``, ``inside``, ``below_50`` and
    ``above_50`` (rows on either side of the model's median on the count scale),
    ``median_count_side``, ``sign_test_p`` and ``largest_error`` (the worst miss, in
    half-widths of the 95% interval: above 1 is outside); a set with no row in ``roles`` is left
    out. What the model card's "Track record by drug" shows, for any record."""
    keys = set(zip(table["trial"], table["trial_arm"]))
    sets = sorted({drugs for key, drugs in arm_drugs.items() if key in keys},
                  key=lambda d: (len(d), sorted(x.lower() for x in d)))
    rows = []
    for drugs in sets:
        found = track_record(table, drugs, arm_drugs, roles)
        if found.rows.empty:
            continue
        rows.append({"drugs": _drug_text(drugs), "rows": len(found.rows),
                     "studies": len(found.studies), "inside": found.inside,
                     "below_50": found.optimistic, "above_50": found.pessimistic,
                     "median_count_side": found.directional.median(),
                     "sign_test_p": found.sign_test_p,
                     "largest_error": _largest_error(found.rows)})
    return pd.DataFrame(rows, columns=["drugs", "rows", "studies", "inside", "below_50",
                                       "above_50", "median_count_side", "sign_test_p",
                                       "largest_error"])


def _largest_error(rows: pd.DataFrame) -> float:
    """The largest standardised error of ``rows`` (the published value's distance from the
    model's median in half-widths of its 95% interval on that side:
    :func:`plateletpd.study.interval_calibration.standardised_errors`; above 1 is outside);
    NaN when the rows lack the interval columns or are empty."""
    needed = ("observed", "predicted", "interval_low", "interval_high")
    if rows.empty or not all(column in rows for column in needed):
        return math.nan
    errors = standardised_errors(*(rows[column] for column in needed))
    errors = errors[~np.isnan(errors)]
    return float(errors.max()) if errors.size else math.nan


def model_track_record(model, arm_drugs: Callable[[dict], dict], fit: str | None = None,
                       folder: Path | None = None) -> tuple[pd.DataFrame, str] | None:
    """(:func:`track_record_table`, a sentence saying which record) for ``model`` on
    ``fit`` (None: its default fit; a fit without a record of its own falls back to the
    default fit's, said so), or None without any record."""
    recorded, stem, another = record_for(model, fit, folder)
    if recorded is None:
        return None
    table, record = recorded
    on = f" on fit {record['fit']}" if record.get("fit") else ""
    said = (f"validation record of {model.name}{on} (`validation/results/{stem}.csv`, "
            f"{record.get('created', '?')}"
            + (f"; fit {fit} has no record of its own" if another else "") + ")")
    return track_record_table(table, arm_drugs(record)), said


def _drug_text(drugs) -> str:
    return " + ".join(sorted(drugs, key=str.lower)) if drugs else "no drug"


def track_record_lines(table: pd.DataFrame, arms,
                       arm_drugs: dict[tuple[str, str], frozenset[str]],
                       by_study: bool = True, trial_name: str | None = None) -> list[str]:
    """Markdown lines: for each arm (objects with ``name`` and ``drugs``: a trial's
    :class:`~plateletpd.study.cohort.ArmDesign`), its :func:`track_record` on the rows no
    fit used, and which way the model erred there; ``by_study``: each study's rows'
    count-side percentiles too; ``trial_name``: the trial's own (its rows among them are
    said to be); ``arm_drugs``: as for :func:`track_record`."""
    lines = ["### This trial's arms against the record", "",
             ("For each arm, the recorded rows of published arms that gave the same drugs "
              "at any dose (only rows no fit was made to: not fitted and held out; not the "
              "comparisons between arms, whose P values are often bounds). Each observed "
              "value is placed among its "
              "virtual studies on the count scale: its percentile where a higher value "
              "means more platelets (counts, nadirs, peaks, responders), 100 minus it for "
              "days below a threshold, delays and incidences of thrombocytopenia, "
              "transfusion or delay. Below 50 the published arm did worse than the "
              "model's median, so the model was too optimistic for it; an unbiased model "
              "puts about as many rows above 50 as below. Rows of one study are not "
              "independent."), ""]
    for arm in arms:
        found = track_record(table, arm.drugs, arm_drugs)
        head = f"- **{arm.name}** ({_drug_text(arm.drugs)}): "
        if found.rows.empty:
            lines.append(head + "no recorded row of an arm with these drugs; the model "
                         "has not been tested on such an arm.")
            continue
        directional = found.directional
        lean = ""
        if len(directional):
            # in words (an ITP user test, 2026-12-07, could not read "below 50 on the
            # count scale" of shares): below 50 = the model promised more than was seen
            lean = (f"; the model more optimistic than published (more platelets, fewer "
                    f"days below or events; count-side percentile below 50) in "
                    f"{found.optimistic} of {len(directional)} (median percentile "
                    f"{directional.median():.0f}")
            p_value = found.sign_test_p
            lean += f"; sign test p = {p_value:.2g})"
            if p_value < 0.05:
                way = "optimistic" if found.optimistic > found.pessimistic else "pessimistic"
                lean += f": the model has been too {way} for such arms"
        studies = f" ({', '.join(found.studies)})" if not by_study else ""
        detail = ""
        if by_study:
            detail = " By study, each row's count-side percentile: " + "; ".join(
                f"{trial} " + ", ".join("-" if math.isnan(v) else f"{v:.0f}"
                                        for v in group["count_side_percentile"])
                for trial, group in found.rows.groupby("trial", sort=False)) + "."
        lines.append(head + f"{len(found.rows)} rows of {len(found.studies)} "
                     f"{'study' if len(found.studies) == 1 else 'studies'}{studies}, "
                     f"{found.inside} inside their 95% intervals{lean}.{detail}"
                     + (" This trial's own published rows are among them."
                        if trial_name in found.studies else ""))
    return lines + [""]


def track_record_text(model, arms, arm_drugs: Callable[[dict], dict],
                      fit: str | None = None, folder: Path | None = None,
                      trial_name: str | None = None) -> list[str]:
    """One line per arm for a terminal: :func:`track_record_lines` of the record a trial
    report reads (the fit's own when one is kept), without the explanation; ``arm_drugs``:
    the record's arms' drugs from its provenance (as
    :func:`plateletpd.study.trial.record_arm_drugs`); [] without a record of ``model``."""
    recorded = record_for(model, fit, folder)[0]
    if recorded is None:
        return []
    table, record = recorded
    return [line[2:].replace("**", "")
            for line in track_record_lines(table, arms, arm_drugs(record), by_study=False,
                                           trial_name=trial_name)
            if line.startswith("- ")]


def record_for(model, fit: str | None = None, folder: Path | None = None):
    """The validation record a report of ``model`` on ``fit`` (None: its default fit)
    reads: ((table, provenance) or None, file stem, whether it is another fit's record,
    the default fit's, because ``fit`` has none of its own)."""
    if fit is not None:
        on_fit = recorded_validation_on_fit(model.name, fit, folder)
        if on_fit is not None:
            return on_fit[:2], on_fit[2], False
    recorded = recorded_validation(model.name, folder)
    return recorded, model.name, fit is not None and recorded is not None


def validation_report_lines(model, folder: Path | None = None,
                            fit: str | None = None, arms=(),
                            trial_name: str | None = None,
                            arm_drugs: Callable[[dict], dict] | None = None) -> list[str]:
    """A trial report's section on ``model``'s recorded validation (Markdown lines).

    ``fit``: the fit the trial ran on when it is not the model's default one (a bundled
    variant fit's name, a folder): the record made on that fit (``validate --fit``) when
    one is kept, else the default fit's record, said to be of another fit. ``arms``: the
    trial's arms (``name`` and ``drugs``), each given its track record
    (:func:`track_record_lines`; ``trial_name``: the trial's own; ``arm_drugs``: the
    record's arms' drugs from its provenance, as :func:`plateletpd.study.trial.
    record_arm_drugs`, required with ``arms``)."""
    if arms and arm_drugs is None:
        raise TypeError("validation_report_lines: arms need arm_drugs, the reader of the "
                        "record's arms' drugs (plateletpd.study.trial.record_arm_drugs)")
    heading = ["## How far this model has been found to hold", ""]
    recorded, stem, another = record_for(model, fit, folder)
    other_fit = [(f"This trial ran on fit {fit}, which has no recorded validation; "
                  f"the record below is of {model.name}'s default fit (run "
                  f"`plateletpd validate --fit {fit}` for its own)."), ""] if another else []
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
    # how much wider a new study's prediction intervals must be (trial --uncertainty fit)
    calibration = calibrate_intervals(table)
    lines += [calibration.text() + (
        " A trial run with `--uncertainty fit` gives its prediction intervals widened so "
        "(uncertainty.csv, calibrated_low and calibrated_high)." if calibration.calibrated
        else ""), ""]
    spread = recorded_spread(stem, folder)
    if len(spread):  # the virtual population's variability, which the means cannot show
        lines += [(
            f"Between-patient spread: each mean published with an SD, that SD (and the SD "
            f"over the mean, the CV) against those of the same virtual studies "
            f"(`validation/results/{stem}.spread.csv`), inside the 95% interval and above "
            f"the virtual studies' median (above: the study's patients differed more than "
            f"the virtual ones), by role: {spread_text(spread)}."), ""]
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
    if arms:
        lines += track_record_lines(table, arms, arm_drugs(record), trial_name=trial_name)
    lines += [(f"Every row: `validation/results/{stem}.csv`; what the model gets "
               f"wrong and why: its model card."), ""]
    return lines
