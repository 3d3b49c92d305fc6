"""Prediction intervals calibrated on a model's validation record: how much wider a new
study's 95% prediction intervals must be to hold the published values they have been
found to miss.

A model's prediction interval for a new study (``plateletpd trial --uncertainty fit``; the
validation suite's intervals are the same kind: virtual studies of the published size with
parameters drawn from the fit) covers only what the model knows it does not know: the
patients' spread, the study's draw from the between-study spread, the fit's parameter
uncertainty. It leaves out what the model gets wrong (its structure, an unstated
definition, a population unlike the calibration studies'). The validation record measures
that: rows no fit was made to (``not fitted`` and ``held out``) fall outside their 95%
intervals more often than 5% of the time.

Each such row's **standardised error** is how far the published value lies from the
model's median in units of the interval's half on that side,

    e = (observed - median) / (high - median)   if observed >= median,
    e = (median - observed) / (median - low)    otherwise,

so ``e <= 1`` is inside. The **widening factor** k is the split-conformal quantile of these
errors (Vovk, Gammerman and Shafer 2005, Algorithmic Learning in a Random World; Lei, G'Sell,
Rinaldo, Tibshirani and Wasserman 2018, J Am Stat Assoc 113:1094): the ceil((n + 1) x
0.95)-th smallest of the n errors. If a new row's error is exchangeable with the recorded
ones, the interval median - k (median - low) to median + k (high - median) holds it with
probability at least 95%. k is never taken below 1 (the record can show the model's
intervals too narrow; narrowing them would claim a precision the model does not have), and
it is infinite when fewer than 19 rows are recorded (no finite quantile exists).

Rows of one study share its virtual studies and its patients, so they are not
exchangeable one by one. :func:`leave_one_study_out` therefore tests the rule as a user
meets it: each study's rows against the factor computed from every other study's rows.
Comparison rows (a published difference between arms, read from a P value that is often a
bound) are left out, as the track record leaves them out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

#: the roles whose rows test a prediction: rows no fit was made to (the roles of
#: plateletpd.study.validation; validation_results.TESTING_ROLES is this tuple)
TESTING_ROLES = ("not fitted", "held out")

#: the coverage the calibrated intervals aim at (the model's own intervals are 95%)
LEVEL = 0.95

#: words of an endpoint's name that make it a share of patients in percent (0-100): the
#: arm summary's ``*_pct`` columns, ``response_%``, a proportion
PERCENT_WORDS = ("_pct", "%", "proportion")
#: words of an endpoint's name that make it never negative: counts, days, doses, areas
NON_NEGATIVE_WORDS = ("nadir", "peak", "plt", "day", "platelets", "transfusions", "doses",
                      "cycle", "auc", "total", "intensity", "holds", "count")
#: words that make it a change or a difference, which may be negative: never bounded
SIGNED_WORDS = ("change", "difference", "delta")


def standardised_errors(observed, median, low, high) -> np.ndarray:
    """Each row's distance from the median in units of its interval's half on the
    observed value's side (module docstring); 0 where the observed value is the median,
    inf where that half has no width and the value lies beyond it, NaN where a number is
    missing."""
    observed, median, low, high = (np.asarray(x, dtype=float) for x in
                                   (observed, median, low, high))
    above = observed >= median
    distance = np.where(above, observed - median, median - observed)
    half = np.where(above, high - median, median - low)
    with np.errstate(divide="ignore", invalid="ignore"):
        errors = np.where(distance == 0, 0.0, distance / np.where(half > 0, half, 0.0))
    errors = np.where((distance > 0) & ~(half > 0), np.inf, errors)
    missing = ~(np.isfinite(observed) & np.isfinite(median) & np.isfinite(low)
                & np.isfinite(high))
    return np.where(missing, np.nan, errors)


def conformal_factor(errors, level: float = LEVEL) -> float:
    """The split-conformal widening factor of ``errors`` (module docstring): the
    ceil((n + 1) level)-th smallest, at least 1; inf when n is too small for it. NaN
    errors are left out."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"conformal_factor: level must lie between 0 and 1 (a coverage "
                         f"such as 0.95), got {level!r}")
    values = np.sort(np.asarray(errors, dtype=float))
    values = values[~np.isnan(values)]
    rank = math.ceil((values.size + 1) * level)
    if rank > values.size:
        return math.inf
    return max(float(values[rank - 1]), 1.0)


def widen(median, low, high, factor: float, lower_bound: float = -math.inf,
          upper_bound: float = math.inf) -> tuple[np.ndarray, np.ndarray]:
    """The interval median - factor (median - low) to median + factor (high - median),
    clipped to the endpoint's range (``lower_bound``, ``upper_bound``)."""
    median, low, high = (np.asarray(x, dtype=float) for x in (median, low, high))
    new_low = np.clip(median - factor * (median - low), lower_bound, upper_bound)
    new_high = np.clip(median + factor * (high - median), lower_bound, upper_bound)
    if math.isinf(factor):  # inf x 0 is NaN: an interval of no width stays a point
        new_low = np.where(median == low, median, lower_bound)
        new_high = np.where(median == high, median, upper_bound)
    return new_low, new_high


def endpoint_range(endpoint: str) -> tuple[float, float]:
    """(lowest, highest) value an endpoint can take, read from its name: 0-100 for a share
    of patients in percent, 0 and above for a count, days, doses or an area, unbounded for a
    change, a difference, or a name this list does not know (a trial's own endpoint)."""
    name = str(endpoint).lower()
    if any(word in name for word in SIGNED_WORDS):
        return -math.inf, math.inf
    if any(word in name for word in PERCENT_WORDS):
        return 0.0, 100.0
    if any(word in name for word in NON_NEGATIVE_WORDS):
        return 0.0, math.inf
    return -math.inf, math.inf


def whole_range_lines(widened: pd.DataFrame, endpoints) -> list:
    """The ``line`` of each row of :func:`widened_rows`'s table whose calibrated interval
    covers its endpoint's whole bounded range (0-100 for a share): "inside" there cannot
    fail, so it says nothing about the model (a user test, 2026-12-07, counted such rows as
    passes)."""
    lines = []
    for line, endpoint, low, high in zip(widened["line"], endpoints,
                                         widened["calibrated_low"], widened["calibrated_high"]):
        bottom, top = endpoint_range(endpoint)
        if math.isfinite(top) and low <= bottom + 1e-9 and high >= top - 1e-9:
            lines.append(line)
    return lines


def floor_lines(widened: pd.DataFrame, table: pd.DataFrame) -> list:
    """The ``line`` of each row of a check's ``table`` that lies inside its calibrated
    interval (:func:`widened_rows`'s ``widened``) only because the widening reached its
    endpoint's floor (0 for a count, days or a share) below a published value under the
    model's own interval: such a row cannot fail downward, so "inside" says little (a
    user test, 2026-12-07: a mean nadir of 20 inside [0, 172.5] around a prediction of
    57)."""
    lines = []
    for row, low, inside in zip(table.itertuples(), widened["calibrated_low"],
                                widened["inside_calibrated"]):
        bottom = endpoint_range(row.endpoint)[0]
        if inside and math.isfinite(bottom) and low <= bottom + 1e-9 \
                and row.observed < row.interval_low:
            lines.append(row.line)
    return lines


def prediction_rows(table: pd.DataFrame, roles=TESTING_ROLES) -> pd.DataFrame:
    """The rows of a validation table that test a prediction (``roles``: by default the
    rows no fit was made to), without comparison rows (``versus`` set), with their
    standardised ``error``."""
    missing = [column for column in ("trial", "role", "observed", "predicted",
                                     "interval_low", "interval_high")
               if column not in table]
    if missing:
        raise ValueError(f"a validation table needs the columns {', '.join(missing)} to "
                         f"calibrate its intervals; it has {', '.join(map(str, table.columns))}"
                         f" (write it with plateletpd validate --out)")
    rows = table[table["role"].isin(roles)]
    if "versus" in rows:
        rows = rows[~rows["versus"].map(lambda v: isinstance(v, str) and v != "")]
    rows = rows.copy()
    rows["error"] = standardised_errors(rows["observed"], rows["predicted"],
                                        rows["interval_low"], rows["interval_high"])
    return rows[~rows["error"].isna()]


@dataclass(frozen=True)
class StudyHeldOut:
    """One study's rows against the factor computed from every other study's rows."""

    study: str
    rows: int
    factor: float
    inside_before: int
    inside_after: int


@dataclass(frozen=True)
class IntervalCalibration:
    """What a validation record says about a model's 95% prediction intervals for a new
    study: ``factor`` (the widening, :func:`conformal_factor`), from ``rows`` rows of
    ``studies`` studies (``roles``), of which ``inside`` lie inside their interval as
    recorded; ``held_out_by_study``: :func:`leave_one_study_out`."""

    factor: float
    rows: int
    studies: int
    inside: int
    roles: tuple[str, ...]
    level: float
    held_out_by_study: tuple[StudyHeldOut, ...]
    factor_interval: tuple[float, float] = (math.nan, math.nan)

    @property
    def coverage_before(self) -> float:
        """Share of rows inside the model's own intervals, each study's rows judged
        against the others' factor: the same rows as :attr:`coverage_after`."""
        total = sum(s.rows for s in self.held_out_by_study)
        return sum(s.inside_before for s in self.held_out_by_study) / total \
            if total else math.nan

    @property
    def coverage_after(self) -> float:
        """Share of rows inside the widened intervals when each study's factor is
        computed without it (leave one study out): what a new study can expect."""
        total = sum(s.rows for s in self.held_out_by_study)
        return sum(s.inside_after for s in self.held_out_by_study) / total \
            if total else math.nan

    @property
    def calibrated(self) -> bool:
        """Whether the record gives a finite widening factor (19 or more rows)."""
        return math.isfinite(self.factor)

    def text(self) -> str:
        """One paragraph for a report."""
        if not self.rows:
            return ("The validation record has no row no fit was made to: the prediction "
                    "intervals cannot be calibrated on it.")
        found = (f"{self.inside} of {self.rows} rows no fit was made to ({self.studies} "
                 f"studies; comparison rows left out) lie inside their 95% prediction "
                 f"intervals")
        if not self.calibrated:
            return (f"Calibration on the validation record: {found}; with fewer than "
                    f"{minimum_rows(self.level)} such rows no widening can be computed that "
                    f"holds {100 * self.level:.0f}% of them, so the intervals are given "
                    f"as the model makes them.")
        study_by_study = (
            f" Judged study by study, each against the factor of the other studies, "
            f"{100 * self.coverage_before:.0f}% of the rows lie inside the model's own "
            f"intervals and {100 * self.coverage_after:.0f}% inside the widened ones."
            if all(math.isfinite(s.factor) for s in self.held_out_by_study) else
            " (Too few rows to judge the factor study by study.)")
        low, high = self.factor_interval
        uncertain = (f"; {low:.2f} to {high:.2f} over the studies resampled, a bootstrap "
                     f"95% interval" if math.isfinite(low) and math.isfinite(high) else "")
        return (f"Calibration on the validation record: {found}; to hold "
                f"{100 * self.level:.0f}% of them the intervals must be "
                f"{self.factor:.2f} times as wide on each side of the median "
                f"(split-conformal quantile of the standardised errors{uncertain})."
                f"{study_by_study}")


def minimum_rows(level: float = LEVEL) -> int:
    """The fewest rows for which :func:`conformal_factor` is finite at ``level``: the
    smallest n with ceil((n + 1) level) <= n (19 at 0.95)."""
    n = 1
    while math.ceil((n + 1) * level) > n:
        n += 1
    return n


def leave_one_study_out(rows: pd.DataFrame, level: float = LEVEL) -> tuple[StudyHeldOut, ...]:
    """Each study's (``trial``'s) rows against the factor of every other study's rows:
    the calibration's own out-of-study test."""
    found = []
    for study in dict.fromkeys(rows["trial"]):
        own = (rows["trial"] == study).to_numpy()
        factor = conformal_factor(rows["error"].to_numpy()[~own], level)
        errors = rows["error"].to_numpy()[own]
        found.append(StudyHeldOut(str(study), int(own.sum()), factor,
                                  int((errors <= 1.0).sum()), int((errors <= factor).sum())))
    return tuple(found)


#: study bootstrap of the factor: resamples and seed (fixed, so a record gives one interval)
BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED = 2000, 20261207


def factor_interval(rows: pd.DataFrame, level: float = LEVEL,
                    resamples: int = BOOTSTRAP_RESAMPLES,
                    seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """95% interval of the widening factor over the studies resampled with replacement (a
    study's rows kept together, as they err together): how far the factor itself is known
    from this many studies. (nan, nan) with fewer than two studies."""
    groups = [group["error"].to_numpy() for _, group in rows.groupby("trial", sort=True)]
    if len(groups) < 2:
        return math.nan, math.nan
    generator = np.random.default_rng(seed)
    factors = np.array([conformal_factor(np.concatenate(
        [groups[i] for i in generator.integers(0, len(groups), len(groups))]), level)
        for _ in range(resamples)])
    # a resample of too few rows has no factor (inf): between two such the percentile's
    # interpolation would be inf - inf (numpy warned on every ITP trial, a user test of
    # 2026-12-07); that bound is then inf, and finite resamples are interpolated as before
    with np.errstate(invalid="ignore"):
        low, high = np.percentile(factors, [2.5, 97.5])
    return tuple(math.inf if np.isnan(bound) else float(bound) for bound in (low, high))


def calibrate_intervals(table: pd.DataFrame, roles=TESTING_ROLES,
                        level: float = LEVEL) -> IntervalCalibration:
    """The widening factor of a validation ``table``'s prediction intervals (module
    docstring), from its rows in ``roles``, with its leave-one-study-out test and its
    study-bootstrap interval."""
    rows = prediction_rows(table, roles)
    errors = rows["error"].to_numpy()
    return IntervalCalibration(
        factor=conformal_factor(errors, level) if len(rows) else math.inf,
        rows=len(rows), studies=int(rows["trial"].nunique()),
        inside=int((errors <= 1.0).sum()), roles=tuple(roles), level=level,
        held_out_by_study=leave_one_study_out(rows, level),
        factor_interval=factor_interval(rows, level) if len(rows) else (math.nan, math.nan))


def calibrated_columns(intervals: pd.DataFrame, factor: float) -> pd.DataFrame:
    """``intervals`` (:func:`plateletpd.study.uncertainty.intervals`: per arm and endpoint
    the prediction median and 95% interval) with ``calibrated_low`` and
    ``calibrated_high``: the prediction interval widened by ``factor``, clipped to the
    endpoint's range (:func:`endpoint_range`)."""
    table = intervals.copy()
    table["calibrated_low"], table["calibrated_high"] = widen_by_endpoint(
        table["endpoint"], table["prediction_median"], table["prediction_low"],
        table["prediction_high"], factor)
    return table


def widen_by_endpoint(endpoints, median, low, high, factor: float
                      ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`widen` row by row, each row clipped to its endpoint's range
    (:func:`endpoint_range`): the widened (low, high) of a table's intervals."""
    ranges = np.array([endpoint_range(e) for e in endpoints], dtype=float).reshape(-1, 2)
    return widen(median, low, high, factor, ranges[:, 0], ranges[:, 1])


@dataclass(frozen=True)
class CheckAgainstRecord:
    """A predictive check's rows (``rows`` of them, comparison rows left out) against their
    prediction intervals widened by ``factor``, the record's factor computed without the
    checked trial's own rows (``left_out`` of them): ``inside`` before, ``inside_widened``
    after."""

    factor: float
    rows: int
    inside: int
    inside_widened: int
    left_out: int
    #: one row per checked row (its ``line``) with ``calibrated_low``, ``calibrated_high``
    #: and ``inside_calibrated``; comparison rows and rows without an interval: NaN / None
    table: pd.DataFrame | None = None

    def text(self) -> str:
        if not math.isfinite(self.factor):
            return ("the validation record has too few rows to widen the intervals "
                    "(fewer than 19 rows no fit was made to)")
        without = (f", computed without this trial's {self.left_out} recorded rows"
                   if self.left_out else "")
        # the model's own count first: a user test (2026-12-07) read "6 of 8 inside" as the
        # headline where 3 were, the rest through intervals such as [0, 172.5]
        return (f"{self.inside} of {self.rows} rows lie inside their prediction intervals "
                f"as the model makes them, {self.inside_widened} of {self.rows} widened by "
                f"the validation record's factor {self.factor:.2f}{without} "
                f"(docs/trial_files.md, 'Intervals calibrated on the validation record')")


def check_against_record(check_table: pd.DataFrame, record_table: pd.DataFrame,
                         trial: str, level: float = LEVEL) -> CheckAgainstRecord:
    """A check's rows (``check_table``: :func:`plateletpd.study.check.check_trial`'s
    table, made with parameters drawn from the fit) against intervals widened by the
    record's factor computed without the rows of trial ``trial``, so that a study the
    record holds is not judged by a factor it helped set."""
    rows = prediction_rows(record_table)
    own = (rows["trial"] == trial).to_numpy()
    factor = conformal_factor(rows["error"].to_numpy()[~own], level)
    checked = check_table.assign(role="held out", trial=trial)  # a check's table has neither
    checked = prediction_rows(checked, ("held out",))
    errors = checked["error"].to_numpy()
    return CheckAgainstRecord(factor, len(checked), int((errors <= 1.0).sum()),
                              int((errors <= factor).sum()), int(own.sum()),
                              widened_rows(check_table, checked.index, factor))


def widened_rows(check_table: pd.DataFrame, tested, factor: float) -> pd.DataFrame:
    """``line``, ``calibrated_low``, ``calibrated_high`` and ``inside_calibrated`` of each
    row of a check's table: the prediction interval widened by ``factor`` and clipped to
    the endpoint's range (:func:`endpoint_range`) on the rows ``tested`` (index labels:
    rows with an interval, comparisons left out), NaN and None on the others. An infinite
    factor (too few recorded rows) widens nothing: every row NaN / None."""
    low = np.full(len(check_table), np.nan)
    high = np.full(len(check_table), np.nan)
    inside = np.full(len(check_table), None, dtype=object)
    rows = check_table.index.isin(tested) & math.isfinite(factor)
    if rows.any():
        chosen = check_table[rows]
        endpoints = chosen["endpoint"] if "endpoint" in chosen else [""] * len(chosen)
        low[rows], high[rows] = widen_by_endpoint(
            endpoints, chosen["predicted"], chosen["interval_low"], chosen["interval_high"],
            factor)
        observed = chosen["observed"].to_numpy(float)
        inside[rows] = [bool(a <= o <= b) for a, o, b in zip(low[rows], observed, high[rows])]
    return pd.DataFrame({"line": check_table["line"].to_numpy() if "line" in check_table
                         else np.arange(len(check_table)), "calibrated_low": low,
                         "calibrated_high": high, "inside_calibrated": inside})
