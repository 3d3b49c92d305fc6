"""A dosing sweep under the fit's uncertainty: which cell is best, and by how much.

``plateletpd sweep ... --uncertainty fit --replicates R`` runs the whole sweep ``R`` times,
each time as a new study: the model parameters drawn from the fit's uncertainty (and a new
study's random effects) exactly as replicate ``r`` of ``plateletpd trial --uncertainty
fit`` draws them, and the replicate's patients (its own seed). Within a replicate every
cell treats the same patients under the same parameters (common random numbers), so the
difference between two cells in one replicate is their dosing alone; across replicates it
carries what the published data leave uncertain and the sampling of a study of the trial's
size. Per cell (and arm):

* the endpoint's median and 95% interval across replicates;
* the probability that the cell is the best of all swept rows (the share of replicates in
  which it has the best endpoint; ties share the replicate), ``better`` saying whether a
  higher or a lower value is better;
* its paired difference from the reference row (the row with the best median), median and
  95% interval over replicates, and the probability that it beats the reference.

A replicate in which some cell enrols nobody (a drawn study too mild for the eligibility
rule) is left out of every row, and said so, as ``trial --uncertainty fit`` leaves out such
a study; a replicate whose endpoint is undefined in some row (NaN: e.g. nobody reached the
level it times) is left out of the ranking and the differences, and counted.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from plateletpd.errors import PlateletPDError
from plateletpd.study.trial import NobodyEnrolledError, TrialSpec

BETTER = ("higher", "lower")
#: the ranking table's columns after the grid's and ``arm``/``regimen`` (data dictionary)
RANKING_COLUMNS = {
    "replicates": ("", "replicate studies whose endpoint is defined in every row (the "
                       "ranking's and the differences' denominator)"),
    "median": ("as the endpoint", "median of the endpoint over the replicate studies"),
    "low": ("as the endpoint", "2.5th percentile over the replicate studies"),
    "high": ("as the endpoint", "97.5th percentile over the replicate studies"),
    "probability_best": ("1", "share of the replicate studies in which this row has the "
                              "best endpoint of all rows (ties share the study)"),
    "reference": ("", "True for the reference row: the best median"),
    "difference_median": ("as the endpoint", "median over the replicate studies of this "
                                             "row's endpoint minus the reference row's, "
                                             "the same study (paired)"),
    "difference_low": ("as the endpoint", "2.5th percentile of the paired difference"),
    "difference_high": ("as the endpoint", "97.5th percentile of the paired difference"),
    "probability_better": ("1", "share of the replicate studies in which this row is "
                                "better than the reference row (ties count half)"),
}


class SweepUncertaintyError(PlateletPDError):
    """A sweep under uncertainty that cannot run as asked."""


@dataclass(frozen=True)
class SweepUncertainty:
    """``replicates``: one row per replicate, cell and arm (the sweep's columns with
    ``replicate`` and ``seed``); ``ranking``: one row per cell and arm
    (:data:`RANKING_COLUMNS`); ``notes``: what was left out and how to read it."""

    replicates: pd.DataFrame
    ranking: pd.DataFrame
    endpoint: str
    better: str
    notes: tuple[str, ...]

    def dictionary(self, grid: dict) -> pd.DataFrame:
        """The columns of ``sweep_ranking.csv`` (``ranking_dictionary.csv``)."""
        return ranking_dictionary(grid, self.endpoint)


def check_ranking(replicates: int, better: str = "higher") -> None:
    """Refuse a ranking that cannot be made, before any study runs: fewer than 2 replicate
    studies, or a direction other than higher or lower."""
    if better not in BETTER:
        raise SweepUncertaintyError(f"better must be 'higher' or 'lower' (--better), got "
                                    f"{better!r}")
    if not isinstance(replicates, (int, np.integer)) or isinstance(replicates, bool) \
            or replicates < 2:
        raise SweepUncertaintyError(f"a sweep under uncertainty needs at least 2 replicate "
                                    f"studies to rank its cells, got --replicates "
                                    f"{replicates!r}; use 20 or more (200 for 95% intervals)")


def rank_rows(replicates: pd.DataFrame, grid: Sequence[str], endpoint: str,
              better: str = "higher") -> tuple[pd.DataFrame, int]:
    """The ranking table of a replicate table (columns: the grid's, ``arm``, ``regimen``,
    ``replicate`` and ``endpoint``) and how many replicates were left out because the
    endpoint is undefined in some row."""
    check_ranking(2, better)
    keys = [*grid, "arm", "regimen"]
    rows = replicates[keys].drop_duplicates().reset_index(drop=True)
    column = {key: i for i, key in enumerate(rows.itertuples(index=False, name=None))}
    studies = sorted(replicates.replicate.unique())
    line = {study: i for i, study in enumerate(studies)}
    values = np.full((len(studies), len(rows)), np.nan)          # replicates x rows
    for study, key, value in zip(replicates.replicate,
                                 replicates[keys].itertuples(index=False, name=None),
                                 replicates[endpoint]):
        values[line[study], column[key]] = value
    defined = np.isfinite(values).all(axis=1)
    left_out = int((~defined).sum())
    values = values[defined]
    if values.shape[0] == 0:
        raise SweepUncertaintyError(
            f"the endpoint {endpoint!r} is undefined (NaN) in some row of every replicate "
            f"study, so no row can be ranked; choose an endpoint every cell defines (e.g. "
            f"response_pct) or more patients (--n)")
    signed = values if better == "higher" else -values
    best = signed.max(axis=1, keepdims=True)
    winners = signed == best
    probability_best = (winners / winners.sum(axis=1, keepdims=True)).mean(axis=0)
    medians = np.median(values, axis=0)
    reference = int(np.argmax(medians if better == "higher" else -medians))
    differences = values - values[:, [reference]]
    ahead = np.sign(signed - signed[:, [reference]])
    table = rows.copy()
    table["replicates"] = values.shape[0]
    table["median"] = medians
    table["low"] = np.percentile(values, 2.5, axis=0)
    table["high"] = np.percentile(values, 97.5, axis=0)
    table["probability_best"] = probability_best
    table["reference"] = np.arange(len(rows)) == reference
    table["difference_median"] = np.median(differences, axis=0)
    table["difference_low"] = np.percentile(differences, 2.5, axis=0)
    table["difference_high"] = np.percentile(differences, 97.5, axis=0)
    table["probability_better"] = ((ahead > 0) + 0.5 * (ahead == 0)).mean(axis=0)
    return table, left_out


def run_sweep_uncertainty(spec: TrialSpec, grid: dict, arms: Sequence[str] | None = None,
                          replicates: int = 20, endpoint: str = "response_pct",
                          better: str = "higher", progress: bool = False
                          ) -> SweepUncertainty:
    """The sweep ``replicates`` times as new studies drawn from the fit (module docstring)."""
    from plateletpd.study.sweep import run_sweep
    from plateletpd.study.uncertainty import TrialUncertainty, _replicate_spec

    check_ranking(replicates, better)
    uncertainty = TrialUncertainty.for_trial(spec)
    frames, empty = [], []
    with warnings.catch_warnings(record=True) as caught:  # one line, not one per study
        warnings.simplefilter("always")
        for replicate in range(replicates):
            seed, _, _, trial = _replicate_spec(spec, replicate, uncertainty)
            try:
                table = run_sweep(trial, grid, arms, endpoint=endpoint)
            except NobodyEnrolledError as error:
                empty.append((replicate, error))
                continue
            table.insert(0, "replicate", replicate)
            table.insert(1, "seed", seed)
            frames.append(table)
            if progress:
                print(f"  replicate {replicate + 1}/{replicates} (drawn parameters)",
                      flush=True)
    if caught:
        warnings.warn(f"{len(caught)} warning(s) in {replicates} replicate sweeps; the first: "
                      f"{caught[0].message}", caught[0].category, stacklevel=2)
    if not frames:
        raise NobodyEnrolledError(f"every one of the {replicates} replicate studies drawn "
                                  f"from the fit enrolled nobody in some cell; the first: "
                                  f"{empty[0][1]}")
    table = pd.concat(frames, ignore_index=True)
    ranking, undefined = rank_rows(table, list(grid), endpoint, better)
    notes = list(uncertainty.notes)
    notes.append(f"{replicates} replicate studies, each a new study drawn from fit "
                 f"{uncertainty.fit!r} with its own patients (replicate r draws what "
                 f"`plateletpd trial --uncertainty fit` draws for its replicate r); within a "
                 f"study every cell treats the same patients under the same parameters, so "
                 f"the differences are paired; {better} {endpoint} is better")
    if empty:
        notes.append(f"{len(empty)} replicate studies enrolled nobody in some cell and are "
                     f"left out of every row (replicate "
                     f"{', '.join(str(r) for r, _ in empty)})")
    if undefined:
        notes.append(f"{undefined} replicate studies left out of the ranking and the "
                     f"differences: {endpoint} is undefined in some row of them")
    if ranking.replicates.iloc[0] < 40:
        notes.append(f"with {ranking.replicates.iloc[0]} replicate studies the 95% intervals "
                     f"are close to the extreme studies and each probability moves in steps "
                     f"of about {1 / ranking.replicates.iloc[0]:.2g}: use 200 or more for "
                     f"decisions")
    return SweepUncertainty(table, ranking, endpoint, better, tuple(notes))


def ranking_dictionary(grid: dict, endpoint: str) -> pd.DataFrame:
    """The columns of ``sweep_ranking.csv``."""
    from plateletpd.study.sweep import DIMENSION_TEXT

    rows = [(name, *DIMENSION_TEXT[name.split(":")[0]]) for name in grid]
    rows += [("arm", "", "the arm's name"), ("regimen", "", "the cell's treatment doses")]
    rows += [(name, unit.replace("as the endpoint", f"as {endpoint}"), text)
             for name, (unit, text) in RANKING_COLUMNS.items()]
    return pd.DataFrame(rows, columns=["column", "unit", "description"])
