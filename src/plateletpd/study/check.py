"""Predictive check for summary data: a trial's endpoints against a published study's rows.

Like a visual predictive check with individual data, but for the arm-level numbers a
publication gives: :func:`check_trial` runs ``replicates`` trials (at the fit's point
estimates, or with parameters drawn from its uncertainty: :mod:`plateletpd.study.uncertainty`)
and, for every row of the chosen study in an outcome table (the format of
``data/cit_summary.csv``, :mod:`plateletpd.io.outcomes`), computes the row's statistic in
each replicate over a virtual study of the row's size (the first ``n`` patients the trial
arm enrolled, all of them where ``n`` is not given or more than enrolled). The table gives
the observed value, the predicted median, the 95% prediction interval, whether the observed
value lies inside, and the percentile of the observed value among the replicates.

Trial arms map to the data's arms by ``data_arm`` in their ``[[arms]]`` entry (or
``arm_map``; where neither pairs any arm, arms of the same name are paired); the study is
``[trial] data_study`` (or ``study``). Values are on the data's
scale (a ``percent`` row in percent). What a row may ask of a trial (the trial's endpoints
are read at its visits, from the start of treatment, as a trial judges them):

* ``response_proportion``, ``cumulative_response_proportion``: the trial's response rule
  (``[response]``), by ``by_day`` or by the row's day; a numeric threshold in the row must
  be the rule's;
* ``time_to_threshold_days`` at 75 or 100 (mean: of the days to the first visit at or above,
  censored at the last visit; median: Kaplan-Meier);
* ``nadir_plt``, ``peak_plt`` (the highest count from the nadir to the end of follow-up),
  ``plt_auc_day0_21``, ``plt_count`` on day 7, 14 or 21 or a day of ``[response]
  at_visits`` (or day 0: the count at the start of treatment, a baseline table's row),
  ``duration_below_days``
  and ``duration_thrombocytopenia_days`` below 20 or 50; ``nadir_plt`` over cycles ("mean
  nadir across cycles 2-6": each patient's mean of those cycles' nadirs);
* ``incidence_proportion``: the share of patients with a count below a level, or with a
  delayed, dose-reduced or abandoned cycle, in a cycle, cycles a-b or the whole course of a
  ``[chemotherapy]`` course, as the row's threshold text says (:func:`incidence_reader`;
  :func:`plateletpd.study.endpoints.parse_incidence`);
* a response row whose threshold is a count compared at its day ("PLT >100" by day 28) is
  read at that visit when the trial judges the level there (``[response] at_visits``).

Any other row of the study is refused, every such row named at once, with the reason (an
ambiguous threshold text is refused, never guessed).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd

from plateletpd.errors import PlateletPDError, closest
from plateletpd.io.display import short_repr
from plateletpd.io.files import atomic_folder, atomic_write, write_json
from plateletpd.io.outcomes import BASELINE, bundled_outcomes_path, load_outcomes
from plateletpd.io.provenance import provenance
from plateletpd.study.cycles import CYCLE_LEVELS
from plateletpd.study.endpoints import (BELOW_LEVELS, RECOVERY_LEVELS, IncidenceEvent,
                                        on_study, parse_cycles, parse_incidence,
                                        parse_threshold, stated_level, study_cycle_values,
                                        study_cycles)
from plateletpd.study.statistics import kaplan_meier
from plateletpd.study.trial import (TrialSpec, data_cycle, load_trial_spec, visit_count_days,
                                   visit_levels, with_arms)
from plateletpd.study.uncertainty import (
    PERCENTILES,
    TrialUncertainty,
    UncertaintyError,
    finish_figure,
    replicate_trials,
)
from plateletpd.study.validation_results import SPREAD_FILE

#: replicate trials a check runs when neither the call nor the trial file says
DEFAULT_REPLICATES = 100
#: the statistic of a spread row: the between-patient standard deviation of a row's
#: per-patient values (:func:`spread_rows`)
SPREAD_STATISTIC = "sd"
#: and of its coefficient of variation, the SD over the mean: the spread on the scale of the
#: mean, so a row whose mean the model misses is not read as a spread misfit for it alone
CV_STATISTIC = "cv"
#: and of the shape of its per-patient values, their kurtosis (fourth central moment over
#: the squared variance; 3 for normal values): how precise a published sample SD is
#: depends on it (a fit's standard error of a published SD, docs/fitting.md)
KURTOSIS_STATISTIC = "kurtosis"


def levels_text(levels) -> str:
    """Count levels as a message writes them: (20, 50, 75, 100) -> '20, 50, 75 or 100'."""
    return ", ".join(map(str, levels[:-1])) + f" or {levels[-1]}" if len(levels) > 1 \
        else str(levels[0])


#: what the trial can compute, for messages
COMPUTABLE = ("response_proportion and cumulative_response_proportion (the trial's response "
              "rule, \"PLT >=X at least once\", the IWG \"PLT >=30 and >=2x baseline\" when "
              "the trial states it, or \"PLT >=X at the week\" with [response] at_visits), "
              f"time_to_threshold_days ({levels_text(RECOVERY_LEVELS)}), nadir_plt, peak_plt "
              "(from the nadir to the "
              "end of follow-up), plt_auc_day0_21, "
              "response_proportion of a sustained response (\"PLT >=50 at >=75% of "
              "assessments\", with [response] sustained_share), "
              "plt_count (day 0, 7, 14 or 21, or a day of [response] at_visits; day 0: the "
              "count at the start of treatment), "
              "duration_below_days and "
              f"duration_thrombocytopenia_days ({levels_text(BELOW_LEVELS)}; in an arm with "
              f"data_cycle, the cycle's days below {levels_text(CYCLE_LEVELS)}), nadir_plt "
              "over cycles "
              "(\"mean nadir across cycles 2-6\"), incidence_proportion (a count below a "
              "level, or a delayed, reduced or abandoned cycle, in a cycle, cycles a-b or "
              "the whole course), chemotherapy_delay_days (the next cycle due after "
              "enrolment, on a course with a delay rule)")


class CheckError(PlateletPDError):
    """A predictive check that cannot be made as asked (study, arms, rows)."""


Reader = Callable[[pd.DataFrame], float]


@dataclass(frozen=True, repr=False)
class CheckResult:
    """``table``: one row per data row (observed, predicted, interval, inside);
    ``replicates``: each data row's value in each replicate trial; ``notes``;
    ``spread``: one row per mean row whose published spread is an SD, comparing that
    between-patient SD with the SDs of the virtual studies (statistic ``sd``; the same
    columns as ``table``; empty when no row gives an SD: :func:`spread_rows`)."""

    spec: TrialSpec
    study: str
    table: pd.DataFrame
    replicates: pd.DataFrame
    notes: tuple[str, ...]
    spread: pd.DataFrame = field(default_factory=pd.DataFrame)

    def __repr__(self) -> str:
        return short_repr("CheckResult", [
            ("trial", self.spec.name), ("study", self.study), ("rows", len(self.table)),
            ("inside", f"{int(self.table.inside.sum())}/{len(self.table)}")])

    def plot(self, path: str | Path | None = None):
        """Observed values against the 95% prediction intervals, one panel per endpoint."""
        return plot_check(self.table, path)


@dataclass(frozen=True)
class SelectedRows:
    """The data rows a check compares (``rows``, each data arm's trial arm in ``mapping``)
    and those it leaves out, with why: not among ``lines`` (``outside``), an unmapped data
    arm (``skipped``), trial and data arms that did not pair (``unmatched``)."""

    rows: pd.DataFrame
    mapping: dict
    study: str
    source: str
    outside: pd.DataFrame
    skipped: pd.DataFrame
    unmatched: list


def selected_rows(spec: TrialSpec, data, study: str | None = None,
                  arm_map: Mapping[str, str | Sequence[str]] | None = None,
                  only_mapped: bool = False, lines: list[int] | None = None) -> SelectedRows:
    """The rows :func:`check_trial` compares, chosen as it chooses them and without
    simulating (a validation suite checks each check's role against its fit's rows before
    running any: :func:`plateletpd.study.validation.validate`)."""
    if isinstance(data, (str, Path)) and not Path(data).exists() and \
            bundled_outcomes_path(str(data)).is_file():
        data = bundled_outcomes_path(str(data))  # "cit_summary.csv", "itp_summary.csv", ...
    rows = load_outcomes(data)
    source = str(data) if not isinstance(data, pd.DataFrame) else "the data table"
    study = study or spec.extra.get("data_study")
    studies = list(dict.fromkeys(rows.study))
    if not study:
        raise CheckError(f"name the study to check against: --study NAME (or [trial] "
                         f"data_study); studies in {source}: {', '.join(studies)}")
    if study not in studies:
        raise CheckError(f"no study {study!r} in {source}{closest(study, studies)}; studies "
                         f"there: {', '.join(studies)}")
    rows = _counts_as_percent(rows[rows.study == study].reset_index(drop=True))
    outside = rows.iloc[:0]
    # the pairing is judged on every row of the study (a mapped arm may have no row among
    # the lines asked for)
    unmatched: list = []
    # a comparison row's versus arm is read too, though it may have no row of its own
    compared = rows[(rows.comparison != "") & (rows.versus != BASELINE)]
    mapping = arm_mapping(spec, pd.concat([rows, compared.assign(arm=compared.versus)],
                                          ignore_index=True), study, source, arm_map,
                          only_mapped or lines is not None,
                          unmatched if only_mapped else None, by_name=True)
    if lines is not None:
        unknown = sorted(set(lines) - set(rows.line))
        if unknown:
            raise CheckError(f"lines {', '.join(map(str, unknown))} are not rows of study "
                             f"{study} in {source}; its lines: "
                             f"{', '.join(map(str, rows.line))}")
        outside = rows[~rows.line.isin(list(lines))]
        rows = rows[rows.line.isin(list(lines))].reset_index(drop=True)
        unmapped = rows[~rows.arm.isin(list(mapping))]
        if len(unmapped) and not only_mapped:
            raise CheckError(f"line(s) {', '.join(map(str, unmapped.line))} of study {study} "
                             f"belong to data arm(s) no trial arm is mapped to: "
                             f"{', '.join(map(repr, dict.fromkeys(unmapped.arm)))}; map "
                             f"them (data_arm, --arm-map) or leave those lines out")
    versus_unmapped = rows[(rows.comparison != "") & rows.arm.isin(list(mapping))
                           & ~rows.versus.isin([*mapping, BASELINE])]
    if len(versus_unmapped):
        raise CheckError(f"line(s) {', '.join(map(str, versus_unmapped.line))} of study "
                         f"{study} compare with data arm(s) no trial arm is mapped to: "
                         f"{', '.join(map(repr, dict.fromkeys(versus_unmapped.versus)))}; "
                         f"map them too (data_arm, --arm-map) or leave those lines out")
    skipped = rows[~rows.arm.isin(list(mapping))]
    rows = rows[rows.arm.isin(list(mapping))].reset_index(drop=True)
    return SelectedRows(rows, mapping, study, source, outside, skipped, unmatched)


def trial_fit_rows(spec: TrialSpec) -> tuple[str, set] | None:
    """(the fit's name, the rows it was made to) for the fit ``spec`` runs on
    (:func:`plateletpd.model.library.fitted_rows`); None when it runs on no fit or the fit
    folder keeps no rows."""
    from plateletpd.model.library import chosen_fit, fit_name, fitted_rows

    choice = spec.extra.get("fit")
    chosen = None if choice is None else chosen_fit(spec.model.name, choice)
    fitted = None if chosen is None else fitted_rows(chosen)
    return None if fitted is None else (fit_name(chosen), fitted)


def row_keys(rows: pd.DataFrame) -> list[tuple[str, str, str, int]]:
    """Each data row as (study, arm, endpoint, line), the key of a fit's rows."""
    return [(row.study, row.arm, row.endpoint, int(row.line)) for row in rows.itertuples()]


def fitted_rows_note(spec: TrialSpec, rows: pd.DataFrame) -> list[str]:
    """A note naming the compared rows that the trial's own fit was made to (its fit
    folder's predictions.csv): there agreement shows the fit, not a prediction. Empty when
    the trial runs on no fit, the folder keeps no rows, or none is among them."""
    found = trial_fit_rows(spec)
    lines = [str(key[3]) for key in row_keys(rows) if found and key in found[1]]
    if not lines:
        return []
    return [f"line(s) {', '.join(lines)} are rows the fit {found[0]} was made to "
            f"(calibration rows): agreement there shows the fit, not a prediction"]


def check_trial(spec: TrialSpec, data, study: str | None = None,
                arm_map: Mapping[str, str | Sequence[str]] | None = None,
                replicates: int | None = None,
                uncertainty: str | None = None, progress: bool = False,
                only_mapped: bool = False, client=None,
                lines: list[int] | None = None, screen_fewer: bool = True) -> CheckResult:
    """Compare ``spec``'s endpoints with the rows of ``study`` in ``data`` (an outcome CSV
    path or table); see the module text. Every data arm must be mapped to a trial arm,
    unless ``only_mapped``: then the rows of unmapped data arms are left out, and a note
    names them (a trial that simulates only some of a study's arms). ``lines``: check only
    these lines of the study (a study whose subgroups share one data arm, such as Winer
    2017's placebo rows of two chemotherapy groups: one check per subgroup, each with its
    trial arm mapped through ``arm_map``); the others are left out with a note. An
    ``arm_map`` value may be a list: one trial arm read for several data arms.
    ``client``: a Dask client on which the replicate trials run (study/distributed.py; the
    same results). ``screen_fewer`` (default): when every row states its n, the replicates
    after the first screen only about as many patients as the rows need (the same table:
    a replicate whose rows fall short runs again with the file's number); False screens the
    file's number in every replicate."""
    if isinstance(spec, (str, Path)):  # a trial file's path or a bundled trial's name
        spec = load_trial_spec(spec)
    chosen = selected_rows(spec, data, study, arm_map, only_mapped, lines)
    rows, mapping, study, source = chosen.rows, chosen.mapping, chosen.study, chosen.source
    outside, skipped, unmatched = chosen.outside, chosen.skipped, chosen.unmatched
    read = {mapping[arm] for arm in rows.arm} | {
        mapping[arm] for arm in rows.versus[(rows.comparison != "")
                                            & (rows.versus != BASELINE)]}
    if len(read) < len(spec.arms):
        # only the arms the rows read are simulated, each with its own patients (an ITP
        # user test: --only-mapped-arms ran the unmapped arm too, 2.6 times the time)
        spec = with_arms(spec, read)
    readers = _readers(spec, rows, source, mapping)
    # each mean row whose spread is a published SD is also compared as a between-patient
    # SD, over the same virtual patients (no more simulation)
    with_sd = spread_rows(rows)
    spread_readers = [arm_row_reader(spec, row, mapping[row.arm])
                      for row in with_sd.itertuples()]
    readable = np.array([not isinstance(reader, str) for reader in spread_readers], bool)
    # a row whose SD cannot be read is named once (its SD and CV rows fail alike)
    spread_notes = list(dict.fromkeys(
        f"line {row.line} ({row.arm}): its SD is not compared ({reader})"
        for row, reader in zip(with_sd.itertuples(), spread_readers)
        if isinstance(reader, str)))
    with_sd = with_sd[readable].reset_index(drop=True)
    spread_readers = [reader for reader in spread_readers if not isinstance(reader, str)]
    spread_of = {}  # a row's position in rows -> its spread rows' positions in with_sd
    for position, index in enumerate(with_sd.row_index):
        spread_of.setdefault(int(index), []).append(position)
    versus_readers = {index: _baseline_reader(row) if row.versus == BASELINE else
                      arm_row_reader(spec, row._replace(arm=row.versus), mapping[row.versus])
                      for index, row in enumerate(rows.itertuples()) if row.comparison}
    own_sizes = {arm: int(n) for arm, n in rows[rows.comparison == ""].groupby("arm")
                 .n.max().items() if math.isfinite(n)}
    # the compared arm's size: the row's versus_n, else the largest n of that arm's own
    # rows, else (an arm with no row of its own) the row's own n, as a study of two arms of
    # about one size (a user test, 2026-12-05: the whole virtual arm made the test too strong)
    versus_sizes = {index: (int(row.versus_n) if math.isfinite(row.versus_n) else
                            own_sizes.get(row.versus, int(row.n) if math.isfinite(row.n)
                                          else None))
                    for index, row in enumerate(rows.itertuples()) if row.comparison
                    and row.versus != BASELINE}
    versus_used = {index: None for index in versus_sizes}
    replicates = replicates if replicates is not None else (
        spec.extra.get("replicates", 1) if spec.extra.get("replicates", 1) > 1
        else DEFAULT_REPLICATES)
    arm_values = {index: np.full((replicates, 2), math.nan) for index in versus_readers}
    spread_values = np.full((len(with_sd), replicates), math.nan)
    uncertainty = uncertainty or spec.extra.get("uncertainty", "none")
    if uncertainty not in ("none", "fit"):
        raise UncertaintyError(f"uncertainty must be 'none' or 'fit', got {uncertainty!r}")
    drawn = TrialUncertainty.for_trial(spec) if uncertainty == "fit" else None
    values = np.full((len(rows), replicates), math.nan)
    sizes = np.zeros(len(rows), int)
    every_size = np.zeros((len(rows), replicates), int)  # each virtual study's size
    ran = np.zeros(replicates, dtype=bool)  # the replicates kept (not left out)
    unobserved = np.zeros(len(rows), int)  # patients a day-bound count row cannot see
    bound = [_day_bound_column(row) for row in rows.itertuples()]
    first, used = True, 0  # a replicate that enrolled nobody is left out (replicate_trials)
    needed = {mapping[arm]: int(n) for arm, n in rows.groupby("arm").n.max().items()
              if math.isfinite(n)}  # each trial arm: the largest study size read from it
    differences = {index: np.full(replicates, math.nan) for index in versus_readers}
    # design = "paired": every arm treats the same patients, so a comparison of two arms
    # is paired (a blind user test, 2026-12-08: a crossover's P was judged as two groups')
    paired_design = spec.extra.get("design") == "paired"
    recruited = 0
    # after the first replicate, screen only about as many as the rows need (a user test,
    # 2026-12-04: 100 replicates screened 300 patients each for rows of 12, 8.7 minutes);
    # a replicate whose rows then fall short runs again with the file's number, so every
    # row is read over the same first patients as without this (tested)
    screened = [0]
    exact = rows.n.notna().all() and screen_fewer
    for replicate, _, _, _, result in replicate_trials(spec, replicates, drawn, progress,
                                                       client, screened):
        if result.spec.subjects_per_arm < spec.subjects_per_arm and not _rows_filled(
                result, rows, mapping, spec):
            result = _rerun(result, spec.subjects_per_arm, client)
        # a study recruits until it has its patients: so does each virtual study, with the
        # fit's point estimates too (a user test, 2026-12-04: only drawn studies did)
        result, more = recruit_to_size(result, needed, client)
        if first and exact and client is None:
            screened[0] = _enough_screened(result, rows, mapping, spec)
        recruited += more
        subjects = result.subjects
        for index, row in rows.iterrows():
            # a row about one cycle of a self-controlled study describes the patients given
            # that cycle: its virtual study is the first n of them
            arm = _row_patients(subjects, spec, mapping[row.arm], row.arm, row.threshold)
            size = len(arm) if not math.isfinite(row.n) else min(int(row.n), len(arm))
            sizes[index] = size if first else min(sizes[index], size)
            every_size[index, replicate] = size
            ran[replicate] = True
            if index in versus_readers:  # a comparison: z of the difference
                generator = np.random.default_rng([spec.seed, replicate,
                                                   _comparison_key(row), COMPARISON_STREAM])
                if row.versus == BASELINE:  # the same patients: a paired bootstrap
                    other = None
                else:
                    other = _row_patients(subjects, spec, mapping[row.versus], row.versus,
                                          row.threshold)
                    wanted = versus_sizes[index] or len(other)
                    other = other.iloc[:min(wanted, len(other))]
                    used_before = versus_used[index]
                    versus_used[index] = len(other) if used_before is None else \
                        min(used_before, len(other))
                first_n = arm.iloc[:size]
                same = row.versus != BASELINE and (
                    mapping[row.versus] == mapping[row.arm] or paired_design)
                if same and mapping[row.versus] != mapping[row.arm]:
                    # two arms of a paired design: the same virtual patients (by their
                    # patient number), resampled together as the crossover's paired test
                    first_n, other = first_n.set_index("patient"), other.set_index("patient")
                (values[index, replicate], differences[index][replicate],
                 arm_values[index][replicate]) = comparison_z(
                    readers[index], versus_readers[index], first_n, other, generator,
                    same_patients=same)
                if row.comparison == "difference":  # its size is read, not a z
                    values[index, replicate] = differences[index][replicate]
            else:
                values[index, replicate] = readers[index](arm.iloc[:size])
            for position in spread_of.get(index, ()):
                spread_values[position, replicate] = spread_readers[position](arm.iloc[:size])
            if bound[index] is not None and bound[index] in arm:
                unobserved[index] += int(arm[bound[index]].iloc[:size].isna().sum())
        first, used = False, used + 1
    _refuse_rows_follow_up_cannot_see(rows, values, bound, sizes)
    table = _table(rows, mapping, values, sizes, ran)
    table["reading"] = [getattr(reader, "reading", f"{row.endpoint} ({row.statistic})")
                        for reader, row in zip(readers, rows.itertuples())]
    comparison_notes = []
    for index, row in enumerate(rows.itertuples()):
        if index not in versus_readers:
            continue
        same = row.versus != BASELINE and (mapping[row.versus] == mapping[row.arm]
                                           or paired_design)
        # the other side's reading where it differs (a self-controlled study's cycle 1
        # against cycle 2: a user test, 2026-12-07, read only "cycle2_nadir")
        other = getattr(versus_readers[index], "reading", None)
        against = f" against {other}" if other and other != table.reading[index] else ""
        table.loc[index, "reading"] = (("the difference " if row.comparison == "difference"
                                        else "z of the difference ")
                                       + f"{row.arm} - {row.versus} in "
                                       f"{table.reading[index]}{against} ("
                                       + (("paired bootstrap over the same patients, "
                                           + ("one trial arm read twice"
                                              if mapping[row.versus] == mapping[row.arm]
                                              else "two arms of a paired design"))
                                          if same else
                                          "bootstrap standard error within each virtual "
                                          "study") + "); observed: "
                                       + (f"0, no difference at P {row.value:g}"
                                          if row.comparison == "no_difference" else
                                          f"the published difference {row.value:g}"
                                          if row.comparison == "difference" else
                                          f"the z of the published two-sided P "
                                          f"{row.value:g}, signed by the stated direction"))
        undefined = int(np.sum(ran & ~np.isfinite(values[index])))
        if undefined:
            comparison_notes.append(
                f"line {row.line} ({row.arm} vs {row.versus}): the difference has no "
                f"standard error in {undefined} of {int(ran.sum())} virtual studies (its "
                f"reading is undefined in most bootstrap resamples: too few patients with a "
                f"value, e.g. none or one or two reaching the level it times); they count as "
                f"not finding the published result"
                + ("; in most studies it cannot be read at all: read this row as untested, "
                   "choose a reading every patient has" if undefined > ran.sum() / 2 else ""))
        finite = differences[index][np.isfinite(differences[index])]
        low, middle, high = np.percentile(finite, PERCENTILES) if finite.size else \
            [math.nan] * 3
        first, second = np.nanmedian(arm_values[index], axis=0) \
            if np.isfinite(arm_values[index]).any() else (math.nan, math.nan)
        pairs = arm_values[index][np.isfinite(arm_values[index]).all(axis=1)]
        if finite.size and np.all(finite == 0) and pairs.size and np.ptp(pairs) == 0:
            # a user test, 2026-12-07: "no difference in transfusions" with a trigger no
            # virtual patient reached was inside in every replicate
            comparison_notes.append(
                f"line {row.line} ({row.arm} vs {row.versus}): both read {pairs[0, 0]:.3g} "
                f"in every virtual study, so this comparison cannot fail here (a share of 0: "
                f"no virtual patient had the event, e.g. a transfusion trigger never "
                f"reached); it tests nothing")
        against = "its count at the start of treatment" if row.versus == BASELINE else (
            f"{row.versus} ({versus_used[index]} patients"
            + ("" if math.isfinite(row.versus_n) or row.versus in own_sizes else
               ", as many as the compared arm: give versus_n for the published size")
            + ")")
        if row.comparison == "difference":
            comparison_notes.append(
                f"line {row.line} ({row.arm} vs {row.versus}, {row.endpoint} "
                f"{row.statistic}, published difference {row.value:g}): {row.arm} "
                f"({sizes[index]} patients) against {against}: medians {first:.3g} against "
                f"{second:.3g}, the difference {middle:.3g} [{low:.3g}, {high:.3g}] (median "
                f"and 95% interval over the replicates)")
            continue
        comparison_notes.append(
            f"line {row.line} ({row.arm} vs {row.versus}, {row.endpoint} {row.statistic}, "
            f"published {row.comparison.replace('_', ' ')}"
            + (f" at P <= {row.value:g}" if row.comparison != "no_difference" else
               f" at P > {row.value:g}") + f"): {row.arm} ({sizes[index]} patients) against "
            f"{against}: a virtual study finds it in "
            f"{table.chance_of_finding[index]:.1f}% of the replicates (consistent when at "
            f"least 2.5%); medians {first:.3g} against {second:.3g}, the difference "
            f"{middle:.3g} [{low:.3g}, {high:.3g}] (median and 95% interval over the "
            f"replicates)")
    if (rows.comparison.isin(["higher", "lower", "no_difference"])).any():
        comparison_notes.append(
            "comparison rows: a published direction at P < 0.05 is 'inside' whenever the "
            "model gives a study of its size at least a 2.5% chance of finding it, which "
            "says little; the chance itself (chance_of_finding) is what to read, and a "
            "finding the model makes likely is the stronger agreement")
    parameters = "parameters drawn from the fit" if drawn else "the fit's point estimates"
    notes = [f"{replicates} replicate trials ({parameters}); each row's statistic over the "
             f"first n patients its trial arm enrolled"]
    if recruited:
        notes.append(f"{recruited} replicate studies enrolled fewer virtual patients than "
                     f"the study had and screened more, as a study recruits until its size "
                     f"(the same first patients)")
    if used < replicates:
        notes.append(f"{replicates - used} of {replicates} replicate studies (parameters "
                     f"drawn from the fit) enrolled nobody in some arm and are left out: the "
                     f"intervals are over the {used} that enrol, as the published study did")
    if drawn:
        notes += list(drawn.notes)
    notes += fitted_rows_note(spec, rows)
    notes += [f"trial arm {trial_arm!r} not checked: its data arm {data_arm!r} has no row of "
              f"study {study} in {source}" for trial_arm, data_arm in unmatched]
    notes += [f"line {row.line} ({row.arm}): read as {reading}"
              for row, reading in zip(rows.itertuples(), table.reading)
              if "was not parsed" in reading or "a cumulative row read at" in reading]
    for row in rows.itertuples():
        event = parse_incidence(row.threshold) if row.endpoint == "incidence_proportion" \
            else None
        if isinstance(event, IncidenceEvent) and event.caveats:
            notes.append(f"line {row.line} ({row.arm}): the prediction is a lower bound: "
                         + "; ".join(event.caveats))
    notes += comparison_notes
    if len(outside):
        notes.append("lines of the study not asked for, left out: "
                     + ", ".join(map(str, outside.line)))
    if len(skipped):
        notes.append("rows of data arms no trial arm is mapped to, left out: " + "; ".join(
            f"{arm!r} (line {', '.join(map(str, skipped.line[skipped.arm == arm]))})"
            for arm in dict.fromkeys(skipped.arm)))
    unsized = table[~np.isfinite(table.n.to_numpy(float))]
    if len(unsized):
        # a study of unknown size: each virtual study is the whole enrolled arm, so the
        # interval is that of a study of that size, narrower than a small study's would be
        notes.append("no n (the study's size) for " + ", ".join(
            f"line {r.line} ({r.arm})" for r in unsized.itertuples())
            + ": each virtual study there is the trial arm's whole enrolled cohort ("
            + ", ".join(f"{r.virtual_n}" for r in unsized.itertuples())
            + " patients), so its interval is for a study of that size; give the "
              "published n in the data file's n column for an interval of the study's size")
    short = table[table.virtual_n < table.n]
    if len(short):  # one entry per data arm, with the spread of sizes over the replicates
        spread = {}
        for r in short.itertuples():
            counts = every_size[r.Index, ran]
            spread.setdefault(r.arm, (r.n, counts.min(), float(np.median(counts)),
                                      int(np.sum(counts < r.n))))
        notes.append("virtual studies smaller than the published one: " + "; ".join(
            f"{arm} (n {n:g}): {few} of {int(ran.sum())} replicates enrolled fewer, the "
            f"smallest {low} patients (median {median:g})"
            for arm, (n, low, median, few) in spread.items())
            + f"; each screened up to {RECRUIT_LIMIT} times --n before it stopped; raise --n "
              "(screened per "
              "arm) when the design enrols few; with parameters drawn from the fit a "
              "mild virtual study may enrol few at any --n")
    for row, missing in zip(rows.itertuples(), unobserved):
        if missing:
            notes.append(f"line {row.line} ({row.arm}, {row.endpoint} day {row.day:g}): "
                         f"{missing} of the virtual patients (over all replicates) were "
                         f"followed for less than {row.day:g} days after their start and "
                         f"are left out of it; raise [trial] follow_up_days to see them all")
    long = pd.DataFrame(values, columns=range(replicates)).assign(line=rows.line).melt(
        id_vars="line", var_name="replicate", value_name="value")
    long["virtual_n"] = pd.DataFrame(every_size, columns=range(replicates)).assign(
        line=rows.line).melt(id_vars="line", var_name="replicate", value_name="n")["n"]
    spread_table = _spread_table(with_sd, mapping, spread_values, sizes, readers)
    if len(spread_table):
        notes.append(SPREAD_NOTE)
    notes += spread_notes
    wide = wide_interval_lines(table)
    if wide:
        notes.append(f"line{'s' if len(wide) > 1 else ''} {', '.join(map(str, wide))}: the "
                     f"95% interval spans at least {WIDE_SHARE:.0%} of the share's possible "
                     f"range (0-100%), so 'inside' there says little (a user test, "
                     f"2026-12-07, read such rows as passes); the virtual studies disagree "
                     f"that much (their size, or with --uncertainty fit the fit's "
                     f"parameter and between-study uncertainty): read the predicted value "
                     f"and the observed percentile")
    return CheckResult(spec, study, table, long, tuple(notes), spread_table)


#: a share's 95% interval at least this part of 0-100% wide is named as saying little
WIDE_SHARE = 0.75


def wide_interval_lines(table: pd.DataFrame) -> list:
    """The ``line`` of each row of a check table, a share in percent (not a comparison),
    whose 95% interval spans at least :data:`WIDE_SHARE` of 0-100%."""
    lines = []
    for row in table.itertuples():
        comparison = getattr(row, "comparison", "")
        compared = isinstance(comparison, str) and bool(comparison)
        width = row.interval_high - row.interval_low
        if row.statistic == "percent" and not compared and width >= 100 * WIDE_SHARE - 1e-9:
            lines.append(row.line)
    return lines


#: what a check's spread rows are (in its notes when it has any)
SPREAD_NOTE = ("spread rows (spread.csv): each mean row published with an SD is compared as "
               "a between-patient SD too, the SD of the row's per-patient values over each "
               "virtual study of the row's size (statistic sd; observed: the published SD), "
               "and as their coefficient of variation, SD over mean (statistic cv; "
               "observed: the published SD over the published mean); a published spread "
               "above the interval says the virtual patients are too alike (the model's "
               "between-patient variability too small, or the study's patients more "
               "varied), below it too different; read the cv where the model misses the "
               "mean itself")


def spread_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``rows`` (an outcome table, :func:`~plateletpd.io.outcomes.load_outcomes`)
    whose between-patient spread a check compares: ``mean`` rows of one arm (not
    comparisons) whose ``spread_type`` is ``SD`` with a positive spread. Each gives two
    rows: statistic ``sd`` with that SD as its value, then, where the published mean is
    positive, statistic ``cv`` with the SD over the mean; ``row_index`` is the row's
    position in ``rows``."""
    if not len(rows):
        return rows.iloc[:0].assign(row_index=pd.Series(dtype=int))
    spread = pd.to_numeric(rows.spread, errors="coerce")
    chosen = (rows.statistic == "mean") & (rows.spread_type.astype(str) == "SD") & \
        (spread > 0) & (rows.comparison.astype(str) == "")
    picked = rows.reset_index(drop=True)[chosen.to_numpy()]
    sd = spread[chosen].to_numpy(float)
    base = picked.assign(row_index=picked.index, spread_type="", spread="")
    as_sd = base.assign(statistic=SPREAD_STATISTIC, value=sd)
    as_cv = base.assign(statistic=CV_STATISTIC, value=sd / base.value.to_numpy(float))
    as_cv = as_cv[base.value.to_numpy(float) > 0]
    both = pd.concat([as_sd, as_cv]).sort_values("row_index", kind="stable")
    return both.reset_index(drop=True)


def _spread_table(spread: pd.DataFrame, mapping: dict, values: np.ndarray,
                  sizes: np.ndarray, readers: Sequence[Reader]) -> pd.DataFrame:
    """The check's table for its spread rows (:func:`spread_rows`; ``values``: one row of
    replicate values each): the same columns as the rows' table, with the reading of the
    mean row whose spread it is."""
    if not len(spread):
        return pd.DataFrame()
    order = spread.row_index.to_numpy(int)
    table = _table(spread.drop(columns="row_index"), mapping, values, sizes[order])
    table["reading"] = [
        f"between-patient {'SD' if statistic == SPREAD_STATISTIC else 'CV (SD / mean)'} of "
        f"the values of: {getattr(readers[index], 'reading', '')}"
        for statistic, index in zip(spread.statistic, order)]
    return table


#: at most this many times the trial's screened patients when a drawn study recruits to size
RECRUIT_LIMIT = 8


def _row_patients(subjects: pd.DataFrame, spec: TrialSpec, trial_arm: str, data_arm: str,
                  threshold=None) -> pd.DataFrame:
    """The patients a row of ``data_arm`` is read over, in enrolment order: the trial arm's,
    or, for a row about one cycle of a course, those given that cycle; for a row a
    composite judged ``among`` some patients answers (its ``threshold`` text is the
    composite's ``data_threshold``), those it is judged among: a published "48% of the 88
    patients given the study cycle" is a virtual study of 88 such patients."""
    arm = subjects[subjects.arm == trial_arm]
    cycle = data_cycle(spec, trial_arm, data_arm)
    if cycle is not None and f"cycle{cycle}_day" in arm:
        arm = arm[np.isfinite(arm[f"cycle{cycle}_day"].to_numpy(float))]
    answering = answering_composite(spec.extra.get("composites", ()), threshold)
    if answering is not None and (answering.get("among") or answering.get("among_none")) \
            and answering["name"] in arm:
        arm = arm[np.isfinite(arm[answering["name"]].to_numpy(float))]
    return arm


def answering_composite(composites, threshold) -> dict | None:
    """The ``[[composite]]`` entry that answers the data rows with this ``threshold`` text
    (its ``data_threshold``), or None."""
    text = str(threshold or "").strip()
    return next((c for c in composites if text and c.get("data_threshold")
                 and c["data_threshold"].strip() == text), None)


def _rows_filled(result, rows: pd.DataFrame, mapping, spec: TrialSpec) -> bool:
    """Whether every row of ``rows`` has its n patients in ``result``."""
    return all(len(_row_patients(result.subjects, spec, mapping[row.arm], row.arm,
                                 row.threshold)) >= row.n for row in rows.itertuples())


def _enough_screened(result, rows: pd.DataFrame, mapping, spec: TrialSpec) -> int:
    """Patients to screen per arm so that each row likely has its n (half as many again as
    the first replicate's share suggests, and 20 more), at most the file's number; 0 (the
    file's) when a row had fewer than its n in ``result``."""
    screened = result.spec.subjects_per_arm
    share = 0.0
    for row in rows.itertuples():
        have = len(_row_patients(result.subjects, spec, mapping[row.arm], row.arm,
                                 row.threshold))
        if have < row.n:
            return 0
        share = max(share, row.n / have)
    fewer = math.ceil(screened * share * 1.5) + 20
    return fewer if fewer < spec.subjects_per_arm else 0


def _rerun(result, screened: int, client=None):
    """``result``'s replicate trial again with ``screened`` patients per arm."""
    from dataclasses import replace

    from plateletpd.study.trial import run_trial

    larger = replace(result.spec, subjects_per_arm=screened)
    if client is None:
        return run_trial(larger)
    from plateletpd.study.distributed import run_trials

    return run_trials([larger], client)[0]


def recruit_to_size(result, needed: Mapping[str, int], client=None):
    """``(result, 1)`` rerun with more patients screened per arm when an arm enrolled fewer
    than ``needed`` (trial arm -> the study's size), else ``(result, 0)``.

    A published study recruits until it has its patients; a virtual study whose drawn
    damage is mild (a new study drawn from the between-study spread) enrols fewer of the
    screened, and its rows would otherwise be read over a few patients, widening the
    interval for a reason the study did not have. The rerun keeps the seed, so its first
    patients are the same; it screens in proportion to the shortfall (with a fifth more for
    luck), at most :data:`RECRUIT_LIMIT` times the trial's number, and may still fall short
    (the check's note on sizes then says so). ``client``: a Dask client, on which the
    rerun's chunks run as the replicates' did (:mod:`plateletpd.study.distributed`; the
    same result as a local rerun)."""
    from dataclasses import replace

    from plateletpd.study.trial import run_trial

    enrolled = result.subjects.groupby("arm").size()
    shortfall = max((n / max(int(enrolled.get(arm, 0)), 1) for arm, n in needed.items()
                     if int(enrolled.get(arm, 0)) < n), default=1.0)
    screened = result.spec.subjects_per_arm
    more = min(math.ceil(screened * shortfall * 1.2), RECRUIT_LIMIT * screened)
    if shortfall <= 1.0 or more <= screened:
        return result, 0
    larger = replace(result.spec, subjects_per_arm=more)
    if client is None:
        return run_trial(larger), 1
    from plateletpd.study.distributed import run_trials

    return run_trials([larger], client)[0], 1


def arm_mapping(spec: TrialSpec, rows: pd.DataFrame, study: str, source: str,
                arm_map: Mapping[str, str | Sequence[str]] | None, only_mapped: bool = False,
                unmatched: list | None = None, by_name: bool = False) -> dict[str, str]:
    """Data arm -> trial arm, from the trial file's ``data_arm`` keys and ``arm_map``
    (``rows``: the study's rows). A trial arm may stand for several data arms (a list: an
    observation arm's own rows and the entry baseline of all enrolled patients, read from
    one simulation); a data arm is read from one trial arm. Also the mapping of a fit's
    ``[[trials]]`` entries (:mod:`plateletpd.inference.trial_arms`), so a fit and a check
    pair the same arms.

    ``by_name`` (a check): where neither the trial file nor ``arm_map`` pairs any arm, each
    trial arm is paired with the data arm of the same name (letter case and surrounding
    spaces aside), as a user who named the arms as the publication did expects; a fit
    pairs only what its configuration says."""
    names = [arm.name for arm in spec.arms]
    if by_name and not arm_map and not spec.extra.get("data_arms"):
        data_names = {str(arm).strip().casefold(): arm for arm in dict.fromkeys(rows.arm)}
        arm_map = {name: data_names[name.strip().casefold()] for name in names
                   if name.strip().casefold() in data_names}
    for trial_arm in arm_map or {}:
        if trial_arm not in names:
            raise CheckError(f"arm map: {trial_arm!r} is not an arm of the trial"
                             f"{closest(trial_arm, names)}; arms: {', '.join(names)}")
    for trial_arm, data in (arm_map or {}).items():
        listed = _names(data)
        if len(set(listed)) != len(listed):
            raise CheckError(f"arm map: trial arm {trial_arm!r} names a data arm twice "
                             f"({', '.join(map(repr, listed))}); give each data arm once")
    # arm_map replaces the trial file's pairing of the data arms it names
    mapped = [(trial_arm, data_arm) for trial_arm, data in (arm_map or {}).items()
              for data_arm in _names(data)]
    remapped = {data_arm for _, data_arm in mapped}
    pairs = [(trial_arm, data_arm) for trial_arm, data in
             spec.extra.get("data_arms", {}).items() for data_arm in _names(data)
             if data_arm not in remapped and trial_arm not in (arm_map or {})] + mapped
    given_to = [data_arm for _, data_arm in pairs]
    twice = [data_arm for data_arm in dict.fromkeys(given_to) if given_to.count(data_arm) > 1]
    if twice:
        arms = ", ".join(t for t, d in pairs if d == twice[0])
        raise CheckError(f"data arm {twice[0]!r} of study {study} is mapped from more than "
                         f"one trial arm ({arms}); "
                         f"a data arm's rows are read from one trial arm: map the others "
                         f"elsewhere, or check them one at a time (arm map, lines)")
    data_arms = list(dict.fromkeys(rows.arm))
    if only_mapped and unmatched is not None:
        # a data file with rows of some arms only (a user's own rows): a trial arm whose
        # data arm has none is left out (named in ``unmatched``), unless its name is close
        # to one that has rows (a typo)
        absent = [(t, d) for t, d in pairs if d not in data_arms and not closest(d, data_arms)]
        pairs = [pair for pair in pairs if pair not in absent]
        unmatched += absent
    for trial_arm, data_arm in pairs:
        if data_arm not in data_arms:
            raise CheckError(f"trial arm {trial_arm!r} is mapped to data arm {data_arm!r}, "
                             f"which has no row of study {study} in {source}"
                             f"{closest(data_arm, data_arms)}; its arms: "
                             f"{', '.join(data_arms)}")
    mapping = {data_arm: trial_arm for trial_arm, data_arm in pairs}
    missing = [arm for arm in data_arms if arm not in mapping]
    if only_mapped and not mapping:
        raise CheckError(f"no trial arm is mapped to a data arm of study {study}; its arms: "
                         f"{', '.join(data_arms)}; add data_arm to an [[arms]] entry or "
                         f"--arm-map 'TRIAL ARM={data_arms[0]}'")
    if missing and not only_mapped:
        lines = {arm: ", ".join(map(str, rows.line[rows.arm == arm])) for arm in missing}
        raise CheckError(
            f"study {study} in {source} has rows of arm(s) no trial arm is mapped to: "
            + "; ".join(f"{arm!r} (line {lines[arm]})" for arm in missing)
            + f"; add data_arm = \"{missing[0]}\" to the matching [[arms]] entry, or map it "
              f"(--arm-map 'TRIAL ARM={missing[0]}'; Python: arm_map={{'TRIAL ARM': "
              f"'{missing[0]}'}}), or check only the mapped arms (--only-mapped-arms; "
              f"Python: only_mapped=True)")
    return mapping


def _names(data: str | Sequence[str]) -> list[str]:
    """A ``data_arm`` or ``arm_map`` value: one data arm or a list of them."""
    return [data] if isinstance(data, str) else list(data)


def _readers(spec: TrialSpec, rows: pd.DataFrame, source: str,
             mapping: Mapping[str, str]) -> list[Reader]:
    """How each row's statistic is read from its trial arm's patient table (``mapping``:
    data arm -> trial arm); every row the trial cannot compute is named in one error."""
    readers, problems = [], []
    for row in rows.itertuples():
        reader = arm_row_reader(spec, row, mapping[row.arm])
        if isinstance(reader, str):
            problems.append(f"  line {row.line} ({row.arm}, {row.endpoint}, threshold "
                            f"{row.threshold or '-'}, day {'-' if math.isnan(row.day) else f'{row.day:g}'}): {reader}")
        readers.append(reader)
    if problems:
        raise CheckError(f"{source}: the trial cannot compute {len(problems)} row(s) of "
                         f"study {rows.study.iloc[0]}:\n" + "\n".join(problems) +
                         f"\nit computes {COMPUTABLE}; remove those rows from the data "
                         f"given, or check a study whose rows it can compute")
    return readers


def arm_row_reader(spec: TrialSpec, row, trial_arm: str) -> Reader | str:
    """:func:`row_reader` for a row read from trial arm ``trial_arm``, with that arm's
    ``data_cycle`` and ``data_level`` (docs/trial_files.md): the reader a check and a fit's
    trial arms use."""
    return row_reader(row, spec.response, spec.extra.get("course"),
                      spec.extra.get("composites", ()),
                      cycle=data_cycle(spec, trial_arm, getattr(row, "arm", None)),
                      level=spec.extra.get("data_levels", {}).get(trial_arm))


#: the endpoints a data_cycle arm reads from its cycle
CYCLE_ENDPOINTS = ("nadir_plt", "peak_plt", "duration_thrombocytopenia_days",
                   "duration_below_days", "plt_auc_day0_21")


def _cycle_reader(row, cycle: int, level: float | None) -> Reader | str:
    """A row of an arm whose data describe cycle ``cycle`` (``data_cycle``): its nadir, its
    recovery peak (the highest count after that nadir), its days below a level (the row's,
    else the arm's ``data_level``) or its AUC over days 0-21, among the patients given that
    cycle."""
    if row.endpoint == "incidence_proportion":  # within the arm's cycle
        event = parse_incidence(row.threshold)
        if isinstance(event, str):
            return event
        if event.first is not None and (event.first, event.last) != (cycle, cycle):
            return (f"it names {event.window}, but the arm's data describe cycle {cycle} "
                    f"(data_cycle): leave the cycles out of the threshold or name cycle "
                    f"{cycle}")
        if event.events:
            return (f"a course event ({', '.join(event.events)}) is not one cycle's: read it "
                    f"from an arm without data_cycle (threshold naming its cycles)")
        if event.from_start:
            return ("a count from the start of treatment is not one cycle's: read it from an "
                    "arm without data_cycle")
        scale = _scale(row.statistic)
        if scale is None:
            return (f"statistic {row.statistic!r}: an incidence is read as a percent or "
                    f"proportion")
        if event.transfusion:
            return _reads(lambda t: scale * _flag_share(t, "transfused", cycle, cycle),
                          f"a rescue transfusion in cycle {cycle} (cycle{cycle}_transfused), "
                          f"among the patients given it")
        return _reads(lambda t: scale * _count_share(t, event.level, cycle, cycle),
                      f"a count below {event.level:g} in cycle {cycle}, among the patients "
                      f"given it")
    if row.endpoint == "time_to_threshold_days":
        # a self-controlled study's "recovery time" of a cycle (Xiao 2016: 19.4 against
        # 13.4 days): from the cycle's chemotherapy back to the level after its nadir
        stated = stated_level(row.threshold)
        stated = stated if stated is not None else level
        if stated not in RECOVERY_LEVELS:
            return (f"a cycle's time to recover to {row.threshold or level!r}: the trial "
                    f"times recovery to {', '.join(map(str, RECOVERY_LEVELS))} (the row's "
                    f"threshold, e.g. 'PLT >=100', or the arm's data_level)")
        if row.statistic not in SUMMARIES or not math.isnan(row.day):
            return (f"a cycle's time to {stated:g} is read as a mean or median without a "
                    f"day")
        column = f"cycle{cycle}_recovery_day_{int(stated)}"
        return _column_statistic(row.statistic, column, (
            f"{row.statistic} of {column} (cycle {cycle}: days from its first day back to "
            f"{stated:g}, over the patients whose count fell below {stated:g} and recovered "
            f"within the cycle)"))
    if row.endpoint not in CYCLE_ENDPOINTS:
        return (f"the arm's data_cycle = {cycle} reads {', '.join(CYCLE_ENDPOINTS)}, "
                f"time_to_threshold_days (the cycle's recovery) and incidence_proportion "
                f"from cycle {cycle}, not {row.endpoint}; map this data arm to an arm "
                f"without data_cycle")
    if row.statistic not in SUMMARIES:
        return (f"statistic {row.statistic!r}: a cycle's {row.endpoint} is read as a mean "
                f"or median")
    if not math.isnan(row.day):
        return (f"a cycle's {row.endpoint} is read over the cycle (the AUC over its days "
                f"0-21): leave the row's day empty")
    column = {"nadir_plt": f"cycle{cycle}_nadir", "peak_plt": f"cycle{cycle}_peak",
              "plt_auc_day0_21": f"cycle{cycle}_auc_21_days"}.get(row.endpoint)
    if column is None:
        # the row's own level ("PLT <75") first; the arm's data_level only for a row that
        # states none (a user test: a "PLT <75" row was read below the arm's 100)
        stated = stated_level(row.threshold)
        stated = stated if stated is not None else level
        if stated is None:
            return (f"its threshold {str(row.threshold or '')!r} names no count level: add "
                    f"data_level = {levels_text(CYCLE_LEVELS)} to the arm (the level the "
                    "study counted "
                    f"below)")
        if stated not in CYCLE_LEVELS:
            return (f"days below {stated:g} in a cycle: the trial counts days below "
                    f"{', '.join(map(str, CYCLE_LEVELS))}")
        column = f"cycle{cycle}_days_below_{int(stated)}"
    return _column_statistic(row.statistic, column, f"{row.statistic} of {column} (cycle "
                                                    f"{cycle})")


#: the summaries of a per-patient value a row may ask: its mean or median, and "sd", the
#: between-patient standard deviation that a check derives from a mean row whose spread is
#: an SD (:func:`spread_rows`), never a statistic of the data file
SUMMARIES = ("mean", "median", SPREAD_STATISTIC, CV_STATISTIC, KURTOSIS_STATISTIC)


def _between_patient_sd(values) -> float:
    """The sample standard deviation (n - 1) of the finite values; NaN below two."""
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    return float(np.std(values, ddof=1)) if values.size > 1 else math.nan


def _between_patient_cv(values) -> float:
    """The sample SD of the finite values over their mean; NaN below two or at a mean of
    0 or below."""
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    mean = float(np.mean(values)) if values.size else math.nan
    return _between_patient_sd(values) / mean if mean > 0 else math.nan


def between_patient_kurtosis(values) -> float:
    """The kurtosis of the finite values, m4 / m2^2 (3 for normal values, 1.8 for uniform,
    9 for exponential); NaN below four values or without spread."""
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    if values.size < 4:
        return math.nan
    centred = values - values.mean()
    m2 = float(np.mean(centred ** 2))
    return float(np.mean(centred ** 4)) / (m2 * m2) if m2 > 0 else math.nan


def reducer(statistic: str) -> Callable[[np.ndarray], float]:
    """How a row's per-patient values become its statistic: median, SD, CV, kurtosis or
    mean."""
    return {"median": np.nanmedian, SPREAD_STATISTIC: _between_patient_sd,
            CV_STATISTIC: _between_patient_cv,
            KURTOSIS_STATISTIC: between_patient_kurtosis}.get(statistic, np.nanmean)


def _column_statistic(statistic: str, column: str, reading: str) -> Reader:
    """The mean (or median) of a patient-table column over the patients with a value."""
    reduce = reducer(statistic)
    return _reads(lambda t: float(reduce(t[column].to_numpy(float))) if len(t) and
                  np.isfinite(t[column].to_numpy(float)).any() else math.nan, reading)


def row_reader(row, response: Mapping, course=None, composites=(), cycle: int | None = None,
               level: float | None = None) -> Reader | str:
    """A function of an arm's patient table giving the row's statistic on the data's
    scale (a ``percent`` row in percent), or why there is none. ``row``: one outcome row
    (a named tuple of :func:`plateletpd.io.outcomes.load_outcomes`' table); ``response``:
    the trial's ``[response]``; ``course``: the trial's ``[chemotherapy]`` course
    (:class:`~plateletpd.study.cycles.ChemotherapyCourse`, None without one), for rows
    that name cycles; ``composites``: the trial's ``[[composite]]`` entries, one of which
    answers the response rows whose threshold text is its ``data_threshold``. A fit's trial
    arms read their rows with it too. ``cycle``: the arm's ``data_cycle`` (the rows
    describe that cycle of the course); ``level``: its ``data_level`` (the count level of a
    duration row whose threshold names none)."""
    if cycle is not None:
        return _cycle_reader(row, cycle, level)
    endpoint, statistic, day = row.endpoint, row.statistic, row.day
    answering = answering_composite(composites, row.threshold)
    composite = None if answering is None else answering["name"]
    if composite is not None:
        scale = {"percent": 100.0, "proportion": 1.0}.get(statistic)
        if endpoint != "response_proportion" or scale is None or not math.isnan(day):
            return (f"the composite {composite!r} answers response_proportion rows given as "
                    f"percent or proportion without a day, not {endpoint} ({statistic}"
                    f"{'' if math.isnan(day) else f', day {day:g}'})")
        # over the patients it is judged among (a composite's `among`: empty for others)
        return _reads(lambda t: scale * float(np.nanmean(t[composite].to_numpy(float)))
                      if np.isfinite(t[composite].to_numpy(float)).any() else math.nan,
                      f"the composite {composite!r}")
    if endpoint == "incidence_proportion":
        return incidence_reader(row, course)
    if endpoint == "chemotherapy_delay_days":
        return _delay_reader(row, course)
    if endpoint == "nadir_plt" and parse_cycles(row.threshold) is not None:
        return _cycle_nadir_reader(row, course)
    default_level = level
    low, level = parse_threshold(row.threshold) if row.threshold else (None, None)
    if endpoint == "time_to_threshold_days" and level is None and low is None and \
            AMONG_RESPONDERS.search(str(row.threshold or "")):  # "PLT >=50 among responders"
        level = stated_level(AMONG_RESPONDERS.split(str(row.threshold))[0].strip(" ,;("))
    if endpoint in ("duration_below_days", "duration_thrombocytopenia_days"):
        stated = stated_level(row.threshold)   # "PLT <50": the row's own level
        if stated is not None:
            low, level = None, stated
        elif level is None and low is None and default_level is not None:
            level = default_level   # the arm's data_level: the study's unstated level
    sustained = re.fullmatch(r"(?:PLT\s*)?>=\s*([\d.]+)(?:\s+and\s+(?:a\s+)?rise\s*(?:of\s*)?"
                             r">=\s*([\d.]+))?\s+at\s*>=\s*([\d.]+)\s*%\s+of\s+"
                             r"(?:the\s+)?(?:\w+\s+)?(?:visits|assessments)",
                             str(row.threshold or "").strip(), flags=re.IGNORECASE)
    if sustained and endpoint == "response_proportion":
        # "PLT >=50 at >=75% of assessments" (Mei 2021 Table 2), "PLT >=75 and rise >=30 at
        # >=50% of visits" (a romiplostim CIT response): the sustained response, whose rule
        # must be the trial's whole rule (a user test, 2026-12-04: a rule with a rise was
        # read as the response by day, and one without as the trial's rule with a rise)
        scale = {"percent": 100.0, "proportion": 1.0}.get(statistic)
        level, share = float(sustained.group(1)), float(sustained.group(3)) / 100.0
        rise = float(sustained.group(2)) if sustained.group(2) else None
        if scale is None:
            return f"a {statistic} of responders needs n: give it as percent or proportion"
        stated = f"PLT >= {level:g}" + (f" and a rise >= {rise:g}" if rise else "")
        same_rule = (response.get("threshold") == level
                     and (response.get("rise") or None) == rise
                     and not response.get("rise_fold")
                     and (rise is None or response.get("combine", "any") == "all"))
        if not same_rule or response.get("sustained_share") is None \
                or abs(response["sustained_share"] - share) > 1e-9:
            return (f"a sustained response ({stated} at >= {100 * share:g}% of the visits) is "
                    f"not the trial's: set [response] threshold = {level:g}, "
                    + (f"rise = {rise:g}, combine = \"all\", " if rise else
                       "no rise or rise_fold, ")
                    + f"sustained_share = {share:g}")
        return _reads(lambda t: scale * float(np.mean(t.sustained_responder)) if len(t)
                      else math.nan, f"sustained responders ({stated} at >= "
                      f"{100 * share:g}% of the visits)")
    # "PLT >=50 at least once" (Mei 2021 Table 2's "responded at least once within 8
    # weeks"): a visit at or above the level by the row's day (or by_day), never a count at
    # one visit; "PLT >=30 and >=2x baseline" (the IWG response): the trial's rule must be it
    once = re.fullmatch(r"(?:PLT\s*)?>=\s*([\d.]+)\s+(?:at\s+least\s+once|at\s+any\s+visit|ever)",
                        str(row.threshold or "").strip(), flags=re.IGNORECASE)
    iwg = re.fullmatch(r"(?:PLT\s*)?>=\s*([\d.]+)\s+and\s+>=\s*([\d.]+)\s*(?:x|times)\s*"
                       r"(?:the\s+)?baseline(?:\s+at\s+least\s+once)?",
                       str(row.threshold or "").strip(), flags=re.IGNORECASE)
    if (once or iwg) and endpoint in ("response_proportion", "cumulative_response_proportion"):
        scale = {"percent": 100.0, "proportion": 1.0}.get(statistic)
        if scale is None:
            return f"a {statistic} of responders needs n: give it as percent or proportion"
        by = response.get("by_day", 14) if math.isnan(day) else day
        if by > response.get("by_day", 14) + 1e-9:
            return (f"responders by day {by:g}: the trial judges its response by day "
                    f"{response.get('by_day', 14):g}; set [response] by_day = {by:g}")
        if iwg:
            level, fold = float(iwg.group(1)), float(iwg.group(2))
            if (response.get("threshold") != level or response.get("rise_fold") != fold
                    or response.get("combine", "any") != "all" or response.get("rise")):
                return (f"the response 'PLT >= {level:g} and >= {fold:g}x baseline' is not the "
                        f"trial's rule: set [response] threshold = {level:g}, rise_fold = "
                        f"{fold:g}, combine = \"all\" (a trial judges one response rule: "
                        f"check these rows alone with --response threshold={level:g} "
                        f"--response rise_fold={fold:g} --response combine=all, or a "
                        f"validation check's response)")
            what = f"PLT >= {level:g} and >= {fold:g}x baseline (the trial's rule)"
        else:
            level = float(once.group(1))
            if response.get("rise") or response.get("rise_fold"):
                # "PLT >=50 at least once" is the level alone; a rule with a rise counts
                # patients the row does not (as a sustained row's whole rule, above)
                return (f"a response at {level:g} at least once is the level alone, but the "
                        f"trial's rule has a rise: remove rise and rise_fold from [response] "
                        f"(or check with --response rise=false)")
            if response.get("threshold") != level:
                tiers = response.get("also_thresholds") or []
                if level not in tiers or abs(by - response.get("by_day", 14)) > 1e-9:
                    return (f"a response at {level:g} at least once is not the trial's rule "
                            f"(threshold {response.get('threshold')}): set [response] "
                            f"threshold = {level:g}")
                column = f"responder_at_{level:g}"
                return _reads(lambda t: scale * float(np.mean(t[column])) if len(t)
                              else math.nan, f"responded at {level:g} at least once by day "
                              f"{by:g} (also_thresholds)")
            what = f"responded at {level:g} at least once"
        return _reads(lambda t: scale * float(np.mean(t.response_day <= by)) if len(t)
                      else math.nan, f"{what} by day {by:g}")
    # "PLT >=50 at the week" (the row's day), "at week 8", "at the week-8 visit", "at day
    # 56": the count at that visit
    at_visit = re.fullmatch(r"(?:PLT\s*)?>=\s*([\d.]+)\s+at\s+(?:the\s+)?(week|visit|day)"
                            r"(?:[\s-]*([\d.]+))?(?:\s+visit)?",
                            str(row.threshold or "").strip(), flags=re.IGNORECASE)
    if at_visit and at_visit.group(3):
        unit, number = at_visit.group(2).lower(), float(at_visit.group(3))
        if unit == "visit":
            return (f"'visit {number:g}' does not say which day: write 'at the week' or "
                    f"'at week N' (or 'at day N') with the row's day")
        stated = 7.0 * number if unit == "week" else number
        if math.isnan(day):
            day = stated
        elif abs(day - stated) > 1e-9:
            return (f"its threshold names day {stated:g} ({at_visit.group(2)} {number:g}) "
                    f"but its day is {day:g}: make them agree")
    # "PLT >100" by day 28 (the carboplatin label): a count compared at a day; read at that
    # visit when the trial judges the level there ([response] at_visits, at_visit_levels)
    compared = re.fullmatch(r"PLT\s*>=?\s*([\d.]+)", str(row.threshold or "").strip())
    if compared and endpoint in ("response_proportion", "cumulative_response_proportion") \
            and not math.isnan(day) and f"plt_at_least_{float(compared.group(1)):g}_day_" \
            f"{day:g}" in (c for _, _, c in visit_levels(response)):
        at_visit = compared
    if at_visit and (endpoint == "response_proportion" or at_visit is compared):
        scale = {"percent": 100.0, "proportion": 1.0}.get(statistic)
        level = float(at_visit.group(1))
        column = f"plt_at_least_{level:g}_day_{day:g}"
        if scale is None or math.isnan(day):
            return "a count at a visit needs its day and a percent or proportion"
        if day == 0:  # a baseline table's share ("79.3% had PLT >= 50 at baseline")
            return _reads(lambda t: scale * float(np.mean(t.platelets_at_start >= level))
                          if len(t) else math.nan, f"the count at the start of treatment "
                          f"(day 0) at least {level:g}")
        if column not in (c for _, _, c in visit_levels(response)):
            return (f"the count at the visit of day {day:g} is not judged: add "
                    f"at_visits = [{day:g}] and at_visit_levels = [{level:g}] to [response]")
        cumulative = "" if endpoint == "response_proportion" else (
            f" (a cumulative row read at the visit, as the trial judges {level:g} there; "
            f"for a response at any visit by day {day:g} write 'PLT >={level:g} at least "
            f"once')")
        return _reads(lambda t: scale * float(np.mean(t[column])) if len(t) else math.nan,
                      f"the count at the day-{day:g} visit at least {level:g}{cumulative}")
    if endpoint in ("response_proportion", "cumulative_response_proportion"):
        if level is None and low is None and compared:  # "PLT >=100", "PLT >100"
            level = float(compared.group(1))
        tiers = response.get("also_thresholds") or []
        if level is not None and level != response.get("threshold") and level in tiers:
            # a tier of the response ("complete response PLT >= 100"): by by_day
            scale = _scale(statistic)
            column = f"responder_at_{level:g}"
            if scale is None:
                return f"a {statistic} of responders needs n: give it as percent or proportion"
            if not math.isnan(day) and abs(day - response["by_day"]) > 1e-9:
                return (f"a response at {level:g} (also_thresholds) is judged by by_day = "
                        f"{response['by_day']:g}, not day {day:g}: leave the row's day empty "
                        f"or set by_day = {day:g}")
            return _reads(lambda t: scale * float(np.mean(t[column])) if len(t)
                          else math.nan, f"responded at {level:g} by day "
                          f"{response['by_day']:g} (also_thresholds)")
        if level is not None and level != response.get("threshold"):
            return (f"its response threshold {level:g} is not the trial's rule "
                    f"(threshold {response.get('threshold')}); change [response], or add "
                    f"also_thresholds = [{level:g}] to judge that level too")
        scale = {"percent": 100.0, "proportion": 1.0}.get(statistic)
        if scale is None:
            return f"a {statistic} of responders needs n: give it as percent or proportion"
        unread = "" if not row.threshold or level is not None or low is not None else (
            f"; its threshold text {str(row.threshold)!r} was not parsed: check that the "
            f"study counted this")
        if math.isnan(day):
            return _reads(lambda t: scale * float(np.mean(t.responder)) if len(t)
                          else math.nan, f"responded by day {response.get('by_day', 14):g} "
                          f"(the trial's response rule){unread}")
        return _reads(lambda t: scale * float(np.mean(t.response_day <= day)) if len(t)
                      else math.nan, f"responded by day {day:g} (the trial's response "
                      f"rule){unread}")
    if statistic not in SUMMARIES:
        return f"statistic {statistic!r}: a check reads means and medians of this endpoint"
    if endpoint == "peak_plt" and not math.isnan(day) and day not in (14, 21):
        return (f"a peak by day {day:g}: the trial reads the peak from the nadir to the end "
                f"of follow-up, or to 14 or 21 days after the start of treatment (a row's "
                f"day 14 or 21); set [trial] follow_up_days to the study's window and leave "
                f"the row's day empty")
    column = _column(endpoint, low, level, day)
    if endpoint in ("plt_change_from_baseline", "plt_percent_change"):
        return _change_reader(endpoint, statistic, day, response)
    if endpoint == "plt_count" and column is None and not math.isnan(day):
        counted = dict(visit_count_days(response))
        if day not in counted:
            return (f"the count on day {day:g} is not recorded: add at_visits = [{day:g}] to "
                    f"[response] (the trial records the counts on days 7, 14 and 21 and on "
                    f"its at_visits days)")
        column = counted[day]
    if column is None and row.threshold and low is None and level is None and \
            endpoint in ("time_to_threshold_days", "duration_below_days",
                         "duration_thrombocytopenia_days"):
        levels = levels_text(RECOVERY_LEVELS if endpoint.startswith("time") else
                             BELOW_LEVELS)
        return (f"its threshold {str(row.threshold)!r} names no count level: ambiguous "
                f"(the trial reads levels {levels}); a row that states its level can be "
                f"read")
    if column is None and default_level is not None and level == default_level and \
            endpoint in ("duration_below_days", "duration_thrombocytopenia_days"):
        return (f"days below {level:g} (the arm's data_level) over the whole follow-up: "
                f"outside a data_cycle arm the trial counts days below "
                f"{levels_text(BELOW_LEVELS)}; set "
                f"data_level = 50, or read the row from a cycle with data_cycle")
    if column is None and level is None and not row.threshold and \
            endpoint in ("duration_below_days", "duration_thrombocytopenia_days"):
        return ("days below which count? the row states no level and its arm no data_level: "
                "give the row a threshold (\"PLT <50\"), or the arm data_level = "
                f"{levels_text(BELOW_LEVELS)} ({levels_text(CYCLE_LEVELS)} for a row "
                "read from a cycle, data_cycle; a fit's [[trials]] entry can set data_level "
                "too)")
    if column is None and endpoint == "time_to_threshold_days" and low is not None:
        return (f"a time from <={low:g} to >={level:g}: the trial times from <=50 to >=100 "
                f"(days_from_50_to_100) and from day 0 to 50, 75 or 100 (days_to_*)")
    if column is None:
        return "the trial's patient table has no such endpoint"
    if endpoint == "time_to_threshold_days" and low is None and AMONG_RESPONDERS.search(
            str(row.threshold or "")):
        # "median time to response 27.5 days, among responders" (a user test, 2026-12-05):
        # over the patients who reached the level, not Kaplan-Meier over all enrolled
        level, reduce = int(level), reducer(statistic)

        def among(t):
            reached = t[f"reached_{level}"].to_numpy(float) == 1
            return float(reduce(t[f"days_to_{level}"].to_numpy(float)[reached])) \
                if reached.any() else math.nan
        return _reads(among, f"{statistic} of days_to_{level} among the patients who "
                             f"reached {level}")
    if endpoint == "time_to_threshold_days" and statistic == "median" and low is None:
        level = int(level)
        return _reads(lambda t: kaplan_meier(t[f"days_to_{level}"],
                                             t[f"reached_{level}"]).median(),
                      f"Kaplan-Meier median of days_to_{level}")
    reduce = reducer(statistic)
    # a count row's threshold text that states no level is not read ("during treatment" on
    # a nadir row, a user test of 2026-12-07, was taken silently as the trial's nadir): say
    # so in the reading and the notes, as a response row's unparsed text is
    unread = "" if not str(row.threshold or "").strip() or level is not None or \
        low is not None or endpoint not in ("nadir_plt", "peak_plt", "plt_count") else (
            f"; its threshold text {str(row.threshold)!r} was not parsed: the trial's "
            f"{column} is read whatever it says; check that the study measured that (a "
            f"nadir over several cycles: 'cycles 2-6'; a count on a day: the row's day)")
    return _reads(lambda t: float(reduce(t[column].to_numpy(float))) if len(t) else math.nan,
                  f"{statistic} of {column}{unread}")


#: a time row read among the patients who reached the level ("..., among responders")
AMONG_RESPONDERS = re.compile(r"\b(among|in) (the )?(responders|those who (reached|responded))",
                              re.IGNORECASE)


def _change_reader(endpoint: str, statistic: str, day: float, response: dict
                   ) -> Reader | str:
    """A change of the count from the baseline (the day-0 visit) to a day of treatment,
    per patient, then its mean or median ("mean PLT change by day 7 +70"; a user test,
    2026-12-05): the count on a recorded day (7, 14, 21 and the [response] at_visits days)
    minus ``platelets_at_start``, or that as a percentage of it."""
    if math.isnan(day) or day <= 0:
        return ("a change from baseline names the day it is read on (days from the start of "
                "treatment, e.g. 7): give the row's day")
    counted = {7.0: "plt_day_7", 14.0: "plt_day_14", 21.0: "plt_day_21",
               **dict(visit_count_days(response))}
    if day not in counted:
        return (f"the count on day {day:g} is not recorded: add at_visits = [{day:g}] to "
                f"[response] (the trial records the counts on days 7, 14 and 21 and on its "
                f"at_visits days)")
    at, percent = counted[day], endpoint == "plt_percent_change"
    reduce = reducer(statistic)

    def read(t):
        if not len(t):
            return math.nan
        base = t["platelets_at_start"].to_numpy(float)
        change = t[at].to_numpy(float) - base
        return float(reduce(100.0 * change / base if percent else change))
    return _reads(read, f"{statistic} of {at} - platelets_at_start"
                  + (" (% of platelets_at_start)" if percent else ""))


def _reads(reader: Reader, text: str) -> Reader:
    """``reader`` with the words of what it reads (``check.csv``'s ``reading``)."""
    reader.reading = text
    return reader


def _delay_reader(row, course=None) -> Reader | str:
    """A ``chemotherapy_delay_days`` row ("median delay of the next cycle 10 days"): the
    median or mean of ``next_cycle_delay_days`` over the patients with a cycle due after
    enrolment; a course abandoned counts as the longest delay in a median (inf) and is
    left out of a mean (named in the reading)."""
    if course is None:
        return ("a chemotherapy delay needs the trial's [chemotherapy] course with a delay "
                "rule (delay_below; docs/trial_files.md, Chemotherapy cycles)")
    if course.delay_below is None:
        return ("the trial's course has no delay rule, so no cycle is ever delayed: set "
                "[chemotherapy] delay_below (the count a cycle waits for)")
    if row.statistic not in SUMMARIES:
        return f"statistic {row.statistic!r}: a delay is read as a mean or median"
    column = "next_cycle_delay_days"
    if row.statistic == "median":
        return _reads(lambda t: float(np.median(t[column].dropna().to_numpy(float)))
                      if t[column].notna().any() else math.nan,
                      f"median of {column} (a course abandoned: the longest)")
    # a mean (or a spread row's SD or CV) over the finite delays: an abandoned course
    # (inf) is left out
    reduce = reducer(row.statistic)
    return _reads(lambda t: float(reduce(t[column].to_numpy(float)[np.isfinite(
        t[column].to_numpy(float))])) if np.isfinite(t[column].to_numpy(float)).any()
        else math.nan, f"{row.statistic} of {column} among the patients given that cycle")


def _counts_as_percent(rows: pd.DataFrame) -> pd.DataFrame:
    """A proportion endpoint given as a count of patients ("35 of 57 reached PLT >= 50")
    read as its percentage of n, as :func:`plateletpd.io.outcomes.load_outcomes` reads it
    for a fit (every reader compares percentages or proportions)."""
    from plateletpd.study.endpoints import ENDPOINTS

    counted = rows.statistic.eq("count") & rows.endpoint.map(
        lambda name: name in ENDPOINTS and ENDPOINTS[name].kind == "proportion") & \
        rows.n.gt(0)
    if counted.any():
        rows = rows.copy()
        rows["value"] = rows.value.astype(float)
        rows.loc[counted, "value"] = 100.0 * rows.value[counted] / rows.n[counted]
        rows.loc[counted, "statistic"] = "percent"
    return rows


def _scale(statistic: str) -> float | None:
    return {"percent": 100.0, "proportion": 1.0}.get(statistic)


def incidence_reader(row, course=None) -> Reader | str:
    """An ``incidence_proportion`` row's reader (data/README.md): the share of the arm's
    patients in whom the event its threshold text names (:func:`parse_incidence`) happened.

    * A count below a level within cycles a..b: among the patients given cycle a, those
      with a count below the level from cycle a's day to cycle b+1's (``cycle{c}_nadir``,
      on the course's output grid); within one cycle: among those given it. Without
      cycles: every patient, the lowest count of the whole simulated course
      (``course_nadir`` on a course; ``nadir``, the one cycle, without one).
    * A course event (a delayed, dose-reduced or abandoned cycle) within cycles a..b:
      among the patients on chemotherapy when cycle a was due (cycle a-1 given), those
      with cycle c in a..b delayed (late: ``cycle{c}_delay_days`` > 0, or at least the
      course's ``late_from_days``; infinite: abandoned) or given at a lower dose than cycle
      c-1; without cycles, the whole course.
    """
    scale = _scale(row.statistic)
    if scale is None:
        return (f"statistic {row.statistic!r}: an incidence is read as a percent or "
                f"proportion")
    if not math.isnan(row.day):
        return ("an incidence row counts within cycles, not to a day: leave day empty and "
                "name the cycles in threshold (e.g. 'PLT <50, cycles 1-6')")
    event = parse_incidence(row.threshold)
    if isinstance(event, str):
        return event
    cycles = None if course is None else course.cycles
    if (event.first is not None or event.events) and cycles is None:
        return (f"{'a course event' if event.events else event.window} needs the trial's "
                f"[chemotherapy] course (docs/trial_files.md, Chemotherapy cycles)")
    if event.last is not None and event.last > cycles:
        return (f"it asks about {event.window}, but the trial's course has {cycles} "
                f"cycle{'s' if cycles != 1 else ''}: set [chemotherapy] cycles = "
                f"{event.last} or more")
    if event.on_study:  # "PLT <50, cycles 1-3 after enrolment": cycles counted on study
        column = "transfused" if event.transfusion else "nadir"
        return _reads(lambda t: scale * _study_share(t, column, event, cycles),
                      f"among the patients given study cycle {event.first} (the cycles given "
                      f"after enrolment), {'a rescue transfusion' if event.transfusion else f'a count below {event.level:g}'} "
                      f"in {event.window}")
    if event.transfusion:  # rescue transfusions (the arm's rescue rule gives them)
        if event.first is None:
            return _reads(lambda t: scale * float(np.mean(
                t["transfusions"].to_numpy(float) > 0)) if len(t) else math.nan,
                "a rescue transfusion at any time (transfusions > 0), among every enrolled "
                "patient")
        return _reads(lambda t: scale * _flag_share(t, "transfused", event.first, event.last),
                      f"a rescue transfusion in {event.window} (cycle{{c}}_transfused), "
                      f"among the patients given cycle {event.first}")
    if event.events:
        first, last = event.first or 1, event.last or cycles
        if last < 2:
            return "cycle 1 is given on day 0: it is never delayed or reduced"
        return lambda t: scale * _course_event_share(t, event, max(first, 2), last, course)
    if event.from_start:  # "PLT <50 during treatment": from day 0 through follow-up
        return _reads(lambda t: scale * float(np.mean(
            t["nadir_after_start"].to_numpy(float) < event.level)) if len(t) else math.nan,
            f"a count below {event.level:g} from the start of treatment to the end of "
            f"follow-up (nadir_after_start)")
    if event.first is None:
        column = "nadir" if course is None else "course_nadir"
        return _reads(lambda t: scale * float(np.mean(t[column].to_numpy(float) < event.level))
                      if len(t) else math.nan,
                      f"a count below {event.level:g} over the whole "
                      f"{'cycle' if course is None else 'course'} ({column}), among every "
                      f"enrolled patient")
    return _reads(lambda t: scale * _count_share(t, event.level, event.first, event.last),
                  f"a count below {event.level:g} in {event.window} (cycle{{c}}_nadir), among "
                  f"the patients given cycle {event.first}")


def _study_share(table: pd.DataFrame, column: str, event, cycles: int) -> float:
    """Among the patients given study cycle ``event.first`` (the cycles given after
    enrolment, :func:`study_cycles`), the share with a rescue transfusion (``column``
    "transfused") or a count below ``event.level`` (``column`` "nadir") in study cycles
    ``event.first``..``event.last`` (NaN when nobody was given study cycle ``first``)."""
    if not len(table):
        return math.nan
    numbers = study_cycles(table, event.first, event.last, cycles)
    values = study_cycle_values(table, column, numbers)
    given = numbers[:, 0] > 0
    if column == "transfused":
        hit = np.nan_to_num(values, nan=0.0).astype(bool).any(axis=1)
    else:
        hit = (np.nan_to_num(values, nan=np.inf) < event.level).any(axis=1)
    return float(np.mean(hit[given])) if given.any() else math.nan


def _flag_share(table: pd.DataFrame, flag: str, first: int, last: int) -> float:
    """Among the patients given cycle ``first``, the share with ``cycle{c}_{flag}`` in a
    cycle ``first``..``last`` (NaN when nobody was given cycle ``first``)."""
    given = np.isfinite(table[f"cycle{first}_day"].to_numpy(float))
    hit = np.zeros(len(table), dtype=bool)
    for c in range(first, last + 1):
        hit |= table[f"cycle{c}_{flag}"].to_numpy().astype(bool)
    return float(np.mean(hit[given])) if given.any() else math.nan


def _count_share(table: pd.DataFrame, level: float, first: int, last: int) -> float:
    """Among the patients given cycle ``first``, the share with a count below ``level`` in
    cycles ``first``..``last`` (NaN when nobody was given cycle ``first``)."""
    given = np.isfinite(table[f"cycle{first}_day"].to_numpy(float))
    below = np.zeros(len(table), dtype=bool)
    for c in range(first, last + 1):
        below |= np.nan_to_num(table[f"cycle{c}_nadir"].to_numpy(float), nan=np.inf) < level
    return float(np.mean(below[given])) if given.any() else math.nan


def _course_event_share(table: pd.DataFrame, event: IncidenceEvent, first: int,
                        last: int, course=None) -> float:
    """Among the patients on chemotherapy when cycle ``first`` was due, the share with a
    cycle in ``first``..``last`` delayed (late, as ``course`` counts it), reduced or
    abandoned (as ``event.events`` says)."""
    due = np.isfinite(table[f"cycle{first - 1}_day"].to_numpy(float))
    happened = np.zeros(len(table), dtype=bool)
    for c in range(first, last + 1):
        before = np.isfinite(table[f"cycle{c - 1}_day"].to_numpy(float))
        delay = table[f"cycle{c}_delay_days"].to_numpy(float)
        if "delayed" in event.events:
            happened |= before & (course.late(delay) if course is not None else delay > 0)
        if "abandoned" in event.events:
            happened |= before & np.isinf(delay)
        if "reduced" in event.events:
            dose = table[f"cycle{c}_dose"].to_numpy(float)
            happened |= np.isfinite(table[f"cycle{c}_day"].to_numpy(float)) & \
                (dose < table[f"cycle{c - 1}_dose"].to_numpy(float))
    return float(np.mean(happened[due])) if due.any() else math.nan


def _cycle_nadir_reader(row, course=None) -> Reader | str:
    """A ``nadir_plt`` row over cycles ("mean nadir across cycles 2-6", Winer 2015): each
    patient's mean of the nadirs of the cycles a..b given, then the row's mean or median
    over the patients given cycle a. "lowest" (or "minimum") in the text ("lowest count over
    cycles 3-5") takes each patient's lowest of those nadirs instead of their mean."""
    window = parse_cycles(row.threshold)
    if isinstance(window, str):
        return window
    if row.statistic not in SUMMARIES:
        return f"statistic {row.statistic!r}: a check reads means and medians of nadirs"
    first, last = window
    if course is None or last > course.cycles:
        return (f"it asks about cycles {first}-{last}: the trial needs a [chemotherapy] "
                f"course of at least {last} cycles")
    reduce = reducer(row.statistic)
    study = on_study(row.threshold)   # cycles counted after enrolment
    # "the lowest count in periods 1-3" is each patient's lowest nadir, not the mean of
    # them (a user test, 2026-12-07, could not write it)
    lowest = re.search(r"\b(lowest|minimum|min)\b", str(row.threshold).lower()) is not None
    per = np.nanmin if lowest else np.nanmean

    def read(table: pd.DataFrame) -> float:
        if study:
            if not len(table):
                return math.nan
            numbers = study_cycles(table, first, last, course.cycles)
            nadirs = study_cycle_values(table, "nadir", numbers)
            given = numbers[:, 0] > 0
        else:
            nadirs = table[[f"cycle{c}_nadir" for c in range(first, last + 1)]].to_numpy(
                float)
            given = np.isfinite(nadirs).any(axis=1)
        if not given.any():
            return math.nan
        per_patient = per(nadirs[given], axis=1)
        return float(reduce(per_patient))
    # check.csv's reading says what was averaged (a user test, 2026-12-07, saw only
    # "nadir_plt (mean)")
    kind = "study cycle" if study else "cycle"
    return _reads(read, f"{row.statistic} over the patients given {kind} {first} of each "
                        f"patient's {'lowest' if lowest else 'mean'} of the nadirs of "
                        f"{kind}s {first}-{last} given"
                        + (" (the cycles given after enrolment)" if study else ""))


def _day_bound_column(row) -> str | None:
    """The patient-table column of a count row bound to a day after the start of treatment
    (a count at a day, a peak within a window), whose value is missing for a patient
    followed for less than that; None for other rows."""
    if row.endpoint in ("plt_count", "peak_plt") and not math.isnan(row.day):
        column = _column(row.endpoint, None, None, row.day)
        if column is None and row.endpoint == "plt_count":  # an at_visits day's count
            column = f"plt_day_{row.day:g}"
        return column
    return None


def _refuse_rows_follow_up_cannot_see(rows, values, bound, sizes) -> None:
    """A day-bound count row (``bound``: its patient-table column) with no value in any
    replicate, because no virtual patient was followed long enough, would be a silent NaN:
    refuse it, naming the fix."""
    blind = [row for row, column, row_values, size in zip(rows.itertuples(), bound, values,
                                                          sizes)
             if column is not None and size > 0 and not np.isfinite(row_values).any()]
    if blind:
        raise CheckError(
            "no virtual patient was followed long enough for "
            + "; ".join(f"line {row.line} ({row.arm}, {row.endpoint} day {row.day:g})"
                        for row in blind)
            + ": the trial's follow-up ends earlier after the start of treatment; raise "
              "[trial] follow_up_days (without a [chemotherapy] course it counts from the "
              "chemotherapy, not from the start of treatment)")


def _column(endpoint: str, low, level, day) -> str | None:
    """The patient-table column answering an endpoint at a threshold or day, if any."""
    if endpoint == "time_to_threshold_days" and low is None and level in RECOVERY_LEVELS:
        return f"days_to_{int(level)}"
    if endpoint == "time_to_threshold_days" and (low, level) == (50, 100):
        return "days_from_50_to_100"
    if endpoint in ("duration_below_days", "duration_thrombocytopenia_days") and \
            level in BELOW_LEVELS:
        return f"days_below_{int(level)}"
    if endpoint == "plt_count" and day in (0, 7, 14, 21):  # day 0: a baseline table's row
        return f"plt_day_{int(day)}" if day else "platelets_at_start"
    if endpoint == "peak_plt" and day in (14, 21):
        return f"peak_{int(day)}_days"
    return {"nadir_plt": "nadir", "peak_plt": "peak",
            "plt_auc_day0_21": "auc_21_days"}.get(endpoint)


def _table(rows: pd.DataFrame, mapping: dict, values: np.ndarray,
           sizes: np.ndarray, ran: np.ndarray | None = None) -> pd.DataFrame:
    """The check's table. ``ran``: the replicate studies kept (those left out because an
    arm enrolled nobody are not studies): a comparison row's chance of finding the published
    result counts a kept study whose difference is undefined (no z: too few patients with
    a value) as not finding it, since the published study did compute it."""
    finite = [v[np.isfinite(v)] for v in values]
    low, middle, high = np.array([np.percentile(v, PERCENTILES) if v.size else
                                  [math.nan] * 3 for v in finite]).T
    observed = rows.value.to_numpy(float).copy()
    # a published share is compared as the count of n it stands for; a difference of
    # shares (percentage points) as published
    compared = np.array([o if getattr(r, "comparison", "") == "difference" else
                         _as_count(o, r.statistic, r.n) for o, r in
                         zip(observed, rows.itertuples())])
    inside = (compared >= low) & (compared <= high)
    chance = np.full(len(rows), math.nan)
    for i, row in enumerate(rows.itertuples()):
        if not row.comparison or row.comparison == "difference":
            continue  # a value, or a difference's size: inside its interval or not
        # the published finding as a z: at least z_P in its direction (a P reported as
        # exact is read as "at least as significant", the weaker claim), or within +/- z_P
        critical = NORMAL.inv_cdf(1.0 - row.value / 2.0)
        z = finite[i]
        found = {"higher": z >= critical, "lower": z <= -critical,
                 "no_difference": np.abs(z) < critical}[row.comparison]
        studies = int(ran.sum()) if ran is not None else z.size
        chance[i] = 100.0 * float(np.sum(found)) / studies if z.size and studies else \
            math.nan
        observed[i] = compared[i] = {"higher": critical, "lower": -critical,
                                     "no_difference": 0.0}[row.comparison]
        inside[i] = chance[i] >= 2.5  # not in the model's outer 2.5% of findings
    below = [float(np.mean(v < o)) * 100 if v.size else math.nan
             for v, o in zip(finite, compared)]
    table = pd.DataFrame({
        "line": rows.line, "study": rows.study, "arm": rows.arm,
        "trial_arm": [mapping[a] for a in rows.arm], "endpoint": rows.endpoint,
        "threshold": rows.threshold, "day": rows.day, "statistic": rows.statistic,
        "n": rows.n, "virtual_n": sizes, "observed": observed, "predicted": middle,
        "interval_low": low, "interval_high": high,
        "inside": inside, "observed_percentile": below})
    if (rows.comparison != "").any():
        # comparison rows (data/README.md): the arm compared with, the published direction,
        # and how often a virtual study of this size finds it (percent); only where a row
        # compares (a check's table, and the validation records built on it, keep their
        # columns otherwise)
        table["versus"], table["comparison"] = rows.versus, rows.comparison
        table["chance_of_finding"] = chance
    return table


#: the columns a check's table has only where it has comparison rows (:func:`_check_table`)
COMPARISON_COLUMNS = ("versus", "comparison", "chance_of_finding")


#: the stream of a comparison row's bootstrap (seeded by the trial seed, the replicate and
#: what the row compares, :func:`_comparison_key`)
COMPARISON_STREAM = 0xC0A7
#: bootstrap resamples of each arm for a comparison row's standard error
COMPARISON_RESAMPLES = 60
NORMAL = NormalDist()
#: the z of a difference between two arms without spread (every bootstrap the same)
DECISIVE_Z = 1e6


def _comparison_key(row) -> int:
    """A comparison row's bootstrap stream: what it compares (arms, endpoint, threshold, day,
    statistic), not its line, so two rows comparing the same thing (a published "higher"
    and its opposite) see the same virtual studies' z."""
    import zlib

    text = "|".join(str(v) for v in (row.arm, row.versus, row.endpoint, row.threshold,
                                      row.day, row.statistic))
    return zlib.crc32(text.encode())


def comparison_z(read: Reader, read_versus: Reader, arm: pd.DataFrame,
                 versus: pd.DataFrame | None, generator: np.random.Generator,
                 same_patients: bool = False) -> tuple[float, float, tuple[float, float]]:
    """(z, difference, (arm's value, versus's value)) of a comparison row in one virtual
    study: the difference of the row's statistic between ``arm`` and ``versus`` (each read
    by its reader: any statistic a check reads, a mean, a median, a Kaplan-Meier median or
    a proportion) over its standard error from :data:`COMPARISON_RESAMPLES` bootstrap
    resamples of each arm's patients, as the study's own test would judge it at its size.
    ``versus`` None: against the same patients (``versus = baseline``), one resample of
    them for both readings (the paired test). ``same_patients``: ``arm`` and ``versus`` are
    two readings of one trial arm's patients (a self-controlled study's two cycles, its
    data arms mapped to one trial arm), or two arms of a ``design = "paired"`` trial indexed
    by patient number, so one resample of those patients (by their rows' labels: a patient
    in both tables is drawn into both at once) serves both readings, as
    the study's paired test does (a user test, 2026-12-07: Vadhan-Raj 2000's P values
    between cycle 1 and cycle 2 were judged as if from two groups). NaN where either arm
    has no value."""
    paired = versus is None  # against the same patients' baseline
    versus = arm if paired else versus
    first, second = read(arm), read_versus(versus)
    difference = first - second
    if not (math.isfinite(first) and math.isfinite(second)) or not len(arm) or \
            not len(versus):
        return math.nan, math.nan, (first, second)

    def variance_of(one_draw) -> float:  # over COMPARISON_RESAMPLES bootstrap readings
        draws = np.asarray([one_draw() for _ in range(COMPARISON_RESAMPLES)], dtype=float)
        draws = draws[np.isfinite(draws)]
        # a reading undefined in most resamples rests on a handful of patients (a mean
        # time to 100 when one or two patients reach it: a user test, 2026-12-08, read a
        # "decisive" z of -10^6 from one patient per arm): no standard error, no z
        if draws.size < COMPARISON_RESAMPLES / 2:
            return math.nan
        variance = float(np.var(draws, ddof=1)) if draws.size > 1 else math.nan
        if variance == 0.0 and draws.size < COMPARISON_RESAMPLES:
            return math.nan  # one patient's value in every resample that has one: no spread
            # to judge by, not a decisive split (a 0% against 100% is defined in every one)
        return variance

    def spread(table: pd.DataFrame, reader) -> float:
        return variance_of(lambda: reader(
            table.iloc[generator.integers(0, len(table), len(table))]))

    if paired:  # one resample of the patients for both readings: the change's spread
        variance = spread(arm, lambda t: read(t) - read_versus(t))
    elif same_patients:  # two readings of one arm's patients: resample them together
        labels = arm.index.union(versus.index)

        def joint() -> float:
            drawn = labels[generator.integers(0, len(labels), len(labels))]
            return read(arm.loc[drawn[drawn.isin(arm.index)]]) \
                - read_versus(versus.loc[drawn[drawn.isin(versus.index)]])

        variance = variance_of(joint)
    else:
        variance = spread(arm, read) + spread(versus, read_versus)
    error = math.sqrt(variance) if math.isfinite(variance) else math.nan
    if not math.isfinite(error):
        return math.nan, difference, (first, second)
    if error == 0.0:
        # no spread in either arm (0% against 100%): as decisive as a test can be
        return (0.0 if difference == 0 else math.copysign(DECISIVE_Z, difference)), \
            difference, (first, second)
    return difference / error, difference, (first, second)


def _baseline_reader(row) -> Reader:
    """A ``versus = baseline`` row's other side: the mean (or median) count at the start of
    treatment of the same patients."""
    return _column_statistic(row.statistic, "platelets_at_start",
                             f"{row.statistic} of platelets_at_start")


def _as_count(value: float, statistic: str, n: float) -> float:
    """A published percent or proportion of ``n`` patients as the whole number of patients
    it stands for (94.4% of 36 is 34 patients, 94.44%): the virtual studies' rates are
    counts over ``n`` too, so a rate rounded in print is compared with what it rounds."""
    scale = {"percent": 100.0, "proportion": 1.0}.get(statistic)
    if scale is None or not math.isfinite(n) or n < 1:
        return value
    return scale * round(value / scale * n) / n


def plot_check(table: pd.DataFrame, path: str | Path | None = None):
    """One panel per endpoint (threshold, day): the 95% prediction interval and predicted
    median per data arm, and the observed value (a dot inside, a red cross outside)."""
    import matplotlib

    if path is not None:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    versus = table["versus"] if "versus" in table else pd.Series("", table.index)
    panels = [f"{e}{_detail('threshold', t)}{_detail('day', d)} ({s})"
              + (f": z against {v}" if v else "") for e, t, d, s, v in
              zip(table.endpoint, table.threshold, table.day, table.statistic, versus)]
    titles = list(dict.fromkeys(panels))
    figure, axes = plt.subplots(1, len(titles), figsize=(max(4.0, 1.1 * table.arm.nunique())
                                                          * len(titles), 4.2), squeeze=False)
    for axis, title in zip(axes[0], titles):
        rows = table[[panel == title for panel in panels]].reset_index(drop=True)
        x = np.arange(len(rows))
        axis.vlines(x, rows.interval_low, rows.interval_high, color="tab:blue", lw=6,
                    alpha=0.4, label="95% prediction interval")
        axis.plot(x, rows.predicted, "_", color="tab:blue", ms=16, label="predicted median")
        comparison = rows["comparison"] if "comparison" in rows else \
            pd.Series("", rows.index)
        for inside, style in ((True, dict(marker="o", color="black")),
                              (False, dict(marker="x", color="red", ms=9))):
            chosen = (rows.inside == inside) & comparison.isin(["", "difference"])
            axis.plot(x[chosen], rows.observed[chosen], ls="none",
                      label="observed" + ("" if inside else " (outside)"), **style)
        # a comparison's published z is a bound ("at least", "at most", "within"): a
        # triangle pointing the claim's way, an open diamond for "no difference"
        for kind, marker in (("higher", "^"), ("lower", "v"), ("no_difference", "D")):
            for inside, colour in ((True, "black"), (False, "red")):
                chosen = (comparison == kind) & (rows.inside == inside)
                if chosen.any():
                    axis.plot(x[chosen], rows.observed[chosen], ls="none", marker=marker,
                              color=colour, mfc="none" if kind == "no_difference" else colour,
                              label=f"published z ({kind.replace('_', ' ')})"
                              + ("" if inside else ", outside"))
        axis.set_xticks(x, rows.arm, rotation=20, ha="right", fontsize=8)
        axis.set_title(title, fontsize=9)
        axis.grid(alpha=0.3, axis="y")
    axes[0][0].legend(fontsize=7)
    figure.suptitle(f"Predictive check: {', '.join(dict.fromkeys(table.study))}",
                    fontsize=10)
    return finish_figure(figure, path, plt)


def _detail(label: str, value) -> str:
    """", day 14" for a short threshold or day; "" for none or a long text."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or \
            str(value) in ("", "nan") or len(str(value)) > 20:
        return ""
    return f", {label} {value:g}" if isinstance(value, float) else f", {label} {value}"


def write_check(result: CheckResult, folder: str | Path) -> list[Path]:
    """``check.csv``, ``check_replicates.csv``, ``check.png`` and ``provenance.json`` as one
    folder that appears whole or not at all."""
    spec = result.spec
    names = ("check.csv", "check_replicates.csv", "check.png", "provenance.json")
    with atomic_folder(folder) as staging:
        atomic_write(staging / names[0], lambda p: result.table.to_csv(p, index=False))
        atomic_write(staging / names[1], lambda p: result.replicates.to_csv(p, index=False))
        plot_check(result.table, staging / names[2])
        if len(result.spread):
            atomic_write(staging / SPREAD_FILE, lambda p: result.spread.to_csv(p, index=False))
        write_json(staging / names[3], provenance(
            spec.model, seed=spec.seed, trial=spec.path, study=result.study,
            parameters_from=spec.parameters_from, subjects_per_arm=spec.subjects_per_arm,
            notes=list(result.notes)))
    return [Path(folder) / name for name in names] + (
        [Path(folder) / SPREAD_FILE] if len(result.spread) else [])


