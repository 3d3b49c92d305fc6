"""Predictive check for summary data (issue 16 item 8): a trial's endpoints against a
study's rows of an outcome CSV, with prediction intervals; clear errors for what cannot be
compared."""

import math

import numpy as np
import pandas as pd
import pytest

from helpers import two_arm_trial

import plateletpd as pp
from plateletpd.cli import main
from plateletpd.io.outcomes import bundled_outcomes_path
from plateletpd.study.check import CheckError, _as_count, check_trial

DATA = bundled_outcomes_path()


def test_check_of_the_bundled_yuan_trial_against_its_rows(tmp_path, capsys):
    out = tmp_path / "check"
    # 80 screened: the file enrols in cycle 2 below 75 (about 60% of patients with the fit of
    # 2026-12-01 20:52 UTC, 80% with that of 14:40 UTC), and the hetrombopag and
    # combination studies need 37 and 36 enrolled
    code = main(["check", "yuan2025", "--data", str(DATA), "--study", "yuan2025", "--n", "80",
                 "--replicates", "3", "--out", str(out)])
    assert code == 0
    table = pd.read_csv(out / "check.csv")
    # data/cit_summary.csv lines 2-5: Yuan 2025's four arms, response rates in percent
    assert table.line.tolist() == [2, 3, 4, 5]
    assert table.arm.tolist() == ["rhTPO", "hetrombopag", "hetrombopag+rhTPO", "rhIL-11"]
    assert table.trial_arm.tolist() == ["rhTPO 15000 U", "hetrombopag 7.5 mg",
                                        "hetrombopag + rhTPO", "rhIL-11 25 ug/kg"]
    assert table.observed.tolist() == [70.3, 70.3, 94.4, 66.0]
    assert (table.interval_low <= table.predicted).all()
    assert (table.predicted <= table.interval_high).all()
    assert ((table.interval_low >= 0) & (table.interval_high <= 100)).all()
    # virtual studies of the published size where enough patients enrolled (n 37, 36)
    assert table.virtual_n.iloc[1] == 37 and table.virtual_n.iloc[2] == 36
    assert (out / "check.png").is_file() and (out / "manifest.json").is_file()
    printed = capsys.readouterr().out
    assert "hetrombopag+rhTPO" in printed
    # how each row was read is printed, as check.csv's reading column says it
    for line, reading in zip(table.line, table.reading):
        assert f"  line {line}: {reading}" in printed


def test_an_unknown_study_exits_2_with_a_clear_message(capsys):
    code = main(["check", "yuan2025", "--data", str(DATA), "--study", "yuan2026",
                 "--n", "10", "--replicates", "2"])
    assert code == 2
    err = capsys.readouterr().err
    assert "no study 'yuan2026'" in err and "did you mean 'yuan2025'" in err
    assert "Traceback" not in err


def _one_arm_trial(**extra):
    return pp.TrialSpec.create(seed=2, subjects_per_arm=30, arms=[
        {"name": "untreated", "data_arm": "control"}], response={"threshold": 100,
                                                                "by_day": 14}, **extra)


def _row(**values):
    row = {"study": "s", "arm": "control", "regimen": "none", "n": "20", "population": "p",
           "day0": "start of treatment", "endpoint": "nadir_plt", "threshold": "", "day": "",
           "statistic": "mean", "value": "30", "spread_type": "", "spread": "",
           "source": "constructed for this test"}
    return {**row, **values}


def test_rows_the_trial_cannot_compute_are_refused_all_at_once():
    data = pd.DataFrame([_row(), _row(endpoint="time_to_peak_days"),
                         _row(endpoint="plt_count", day="10")])
    with pytest.raises(CheckError) as error:
        check_trial(_one_arm_trial(), data, study="s", replicates=2)
    text = str(error.value)
    # lines 3 and 4 of the table (header = line 1); line 2 (nadir) is computable
    assert "2 row(s)" in text and "line 3 (control, time_to_peak_days" in text
    assert "line 4 (control, plt_count" in text and "line 2 " not in text


def test_a_recovery_peak_row_is_read_from_the_trials_patients():
    # peak_plt (heme_rhtpo_selfcontrol, cit_summary.csv lines 19 and 22, report it): each
    # patient's highest count from the nadir to the end of follow-up, averaged over the
    # row's first n = 20 patients; replicate 0 rerun as a trial of its own (its seed as
    # study.uncertainty derives it) must give the same mean from the patient table
    from dataclasses import replace

    from plateletpd.study.uncertainty import _replicate_spec

    spec = _one_arm_trial()
    data = pd.DataFrame([_row(), _row(endpoint="peak_plt", value="180")])
    result = check_trial(spec, data, study="s", replicates=2)
    first = result.replicates[result.replicates.replicate == 0].set_index("line").value
    seed = _replicate_spec(spec, 0, None)[0]
    patients = pp.run_trial(replace(spec, seed=seed)).subjects
    patients = patients[patients.arm == "untreated"].head(20)
    assert first[3] == pytest.approx(patients.peak.mean(), rel=1e-12)
    assert first[2] == pytest.approx(patients.nadir.mean(), rel=1e-12)
    assert (patients.peak > patients.nadir).all()


def test_a_count_row_on_an_at_visits_day_is_read_from_that_visits_count():
    # a user test (2026-12-04): counts reported on day 28 (or 10) could not be checked, the
    # trial recorded days 7, 14 and 21 only. A constructed course (60 at the start, +10 a
    # day) has 160 at the day-10 visit; a trial with at_visits = [10] records plt_day_10,
    # and a check's plt_count row on day 10 is its mean over the row's first n patients
    # (replicate 0 rerun as its own trial, as the peak test above)
    from dataclasses import replace

    from plateletpd.study.cohort import ArmDesign, ArmResult
    from plateletpd.study.trial import patient_endpoints
    from plateletpd.study.uncertainty import _replicate_spec

    times = np.arange(0, 40 * 24 + 1) / 24
    course = np.clip(60 + 10 * (times - 10), 5, None)
    arm = ArmResult(ArmDesign("x"), times, course[None, :], np.array([0]), np.array([9.0]),
                    np.array([10.0]), np.array([5]), np.array([0]), 1)
    row = patient_endpoints(arm, {"threshold": 100, "rise": None, "by_day": 14,
                                  "at_visits": [10]}, 1.0).iloc[0]
    assert row.plt_day_10 == pytest.approx(160.0)
    spec = pp.TrialSpec.create(seed=2, subjects_per_arm=30, arms=[
        {"name": "untreated", "data_arm": "control"}], response={
            "threshold": 100, "by_day": 14, "at_visits": [10]})
    data = pd.DataFrame([_row(endpoint="plt_count", day="10", value="90")])
    result = check_trial(spec, data, study="s", replicates=2)
    first = result.replicates[result.replicates.replicate == 0].set_index("line").value
    patients = pp.run_trial(replace(spec, seed=_replicate_spec(spec, 0, None)[0])).subjects
    assert first[2] == pytest.approx(patients.head(20).plt_day_10.mean(), rel=1e-12)
    # without the day among at_visits the row is refused with that fix
    with pytest.raises(CheckError, match=r"add at_visits = \[10\]"):
        check_trial(_one_arm_trial(), data, study="s", replicates=2)


def test_a_sustained_response_row_is_read_from_the_sustained_flag():
    # Mei 2021 (J Hematol Oncol 14:37) Table 2 reports "responded at >= 75% of assessments"
    # (32.7% of 168 on HETROM-2.5); written as a data row it is read from the trial's
    # sustained_responder over the row's first n patients, and refused with the fix when
    # the trial states another share
    from dataclasses import replace

    from plateletpd.study.trial import bundled_trial, load_trial_spec
    from plateletpd.study.uncertainty import _replicate_spec

    spec = load_trial_spec(bundled_trial("itp_phase3"), subjects=30)
    row = _row(arm="HETROM-2.5", endpoint="response_proportion", n="20",
               threshold="PLT >=50 at >=75% of assessments", statistic="percent",
               value="32.7")
    data = pd.DataFrame([row])
    result = check_trial(spec, data, study="s", replicates=2, arm_map={"HETROM-2.5":
                                                                       "HETROM-2.5"})
    first = result.replicates[result.replicates.replicate == 0].set_index("line").value
    patients = pp.run_trial(replace(spec, seed=_replicate_spec(spec, 0, None)[0])).subjects
    arm = patients[patients.arm == "HETROM-2.5"].head(20)
    assert first[2] == pytest.approx(100 * arm.sustained_responder.mean(), rel=1e-12)
    other = pd.DataFrame([{**row, "threshold": "PLT >=50 at >=50% of assessments"}])
    with pytest.raises(CheckError, match="sustained_share = 0.5"):
        check_trial(spec, other, study="s", replicates=2, arm_map={"HETROM-2.5":
                                                                   "HETROM-2.5"})


def test_a_peak_row_with_a_day_is_refused_with_what_to_do():
    # the trial's peak runs to the end of follow-up; a "peak by day 28" row would be read
    # over another window without a word, so it is refused and the fix is named
    data = pd.DataFrame([_row(endpoint="peak_plt", day="28", value="180")])
    with pytest.raises(CheckError, match=r"peak by day 28.*follow_up_days.*leave the row's"):
        check_trial(_one_arm_trial(), data, study="s", replicates=2)


def test_a_data_arm_without_a_trial_arm_is_named():
    data = pd.DataFrame([_row(), _row(arm="rhTPO")])
    with pytest.raises(CheckError, match=r"'rhTPO' \(line 3\).*data_arm = \"rhTPO\""):
        check_trial(_one_arm_trial(), data, study="s", replicates=2)
    with pytest.raises(CheckError, match="'placebo' is not an arm of the trial"):
        check_trial(_one_arm_trial(), data, study="s", arm_map={"placebo": "x"},
                    replicates=2)


def test_only_the_mapped_arms_are_checked_when_asked_and_the_rest_is_named():
    data = pd.DataFrame([_row(), _row(arm="rhTPO"), _row(arm="rhTPO", value="40")])
    with pytest.raises(CheckError, match="--only-mapped-arms"):
        check_trial(_one_arm_trial(), data, study="s", replicates=2)
    result = check_trial(_one_arm_trial(), data, study="s", replicates=2, only_mapped=True)
    assert result.table.arm.tolist() == ["control"]  # the rhTPO rows (lines 3, 4) left out
    assert any("'rhTPO' (line 3, 4)" in note for note in result.notes)
    with pytest.raises(CheckError, match="no trial arm is mapped"):
        check_trial(pp.TrialSpec.create(seed=2, subjects_per_arm=30,
                                        arms=[{"name": "untreated"}],
                                        response={"threshold": 100, "by_day": 14}),
                    data, study="s", replicates=2, only_mapped=True)


def test_a_study_must_be_named():
    with pytest.raises(CheckError, match="name the study"):
        check_trial(_one_arm_trial(), pd.DataFrame([_row()]), replicates=2)


def test_observed_far_outside_is_flagged_and_its_percentile_is_an_extreme():
    # a nadir of 500 x10^9/L after chemotherapy cannot come out of this cohort (baseline
    # 237: Harker 2000, model file); a nadir of 0 is below every virtual patient's
    data = pd.DataFrame([_row(value="500"), _row(value="0", statistic="median")])
    result = check_trial(_one_arm_trial(), data, study="s", replicates=3)
    assert result.table.inside.tolist() == [False, False]
    assert result.table.observed_percentile.tolist() == [100.0, 0.0]
    assert (result.table.virtual_n == 20).all()  # the row's n, fewer than enrolled


def test_published_rates_compare_as_the_counts_they_round():
    # data/cit_summary.csv line 4: 94.4% of 36 patients is 34 of 36 = 94.44%
    assert _as_count(94.4, "percent", 36) == pytest.approx(100 * 34 / 36)
    assert _as_count(0.703, "proportion", 64) == pytest.approx(45 / 64)  # line 2
    assert _as_count(30.0, "mean", 20) == 30.0  # means are not counts
    assert _as_count(70.3, "percent", math.nan) == 70.3  # n unknown: as printed


def test_a_peak_during_treatment_is_read_over_its_window_only():
    # Chen 2025 (cit_summary.csv, chen2025 rows) reports a "peak" without its window;
    # many CIT studies mean the treatment course (up to 14 days, parameters.md: usual
    # Chinese CIT course). Constructed courses on a 1-hour grid, day 0 = day 2: patient 0
    # falls to 40 on day 6, rises to 130 on day 16 (= day 0 + 14) and to 250 by day 30;
    # patient 1 falls until day 30 (its window's peak is its count at day 16: it never
    # recovers inside the window); patient 2's follow-up ends before its window does
    from plateletpd.study.endpoints import ENDPOINTS, Courses

    times = np.arange(0, 30 + 1e-9, 1 / 24)
    rising = np.interp(times, [0, 6, 16, 30], [90, 40, 130, 250])
    falling = np.interp(times, [0, 30], [90, 10])
    courses = Courses(times, np.vstack([rising, falling, rising]), np.array([2.0, 2.0, 20.0]))
    within = ENDPOINTS["peak_14_days"].definition(courses)
    whole = ENDPOINTS["peak"].definition(courses)
    assert within[0] == pytest.approx(130.0) and whole[0] == pytest.approx(250.0)
    assert within[1] == pytest.approx(np.interp(16.0, [0, 30], [90, 10]))
    assert np.isnan(within[2])
    assert ENDPOINTS["peak_21_days"].definition(courses)[0] == pytest.approx(
        np.interp(23.0, [16, 30], [130, 250]))


def test_a_peak_row_of_day_14_is_read_from_the_window_column():
    data = pd.DataFrame([_row(endpoint="peak_plt", day="14", value="120")])
    result = check_trial(_one_arm_trial(), data, study="s", replicates=2)
    assert result.table.day.tolist() == [14]
    assert np.isfinite(result.table.predicted).all()


def test_a_composite_answers_the_response_rows_whose_threshold_it_names():
    # Qin 2024 (cit_summary.csv, qin2024_hetrombopag_cit_phase2) counts "treatment
    # responders" over two cycles: a trial composite answers those rows when its
    # data_threshold is the rows' threshold text; replicate 0 rerun as a trial of its own
    # must give the share of the composite flag among the row's first n = 20 patients
    from dataclasses import replace

    from plateletpd.study.uncertainty import _replicate_spec

    text = "responded and not transfused (constructed)"
    composite = [{"name": "kept_up", "all": ["responder"], "none": ["transfused"],
                  "data_threshold": text}]
    spec = _one_arm_trial(composite=composite)
    data = pd.DataFrame([_row(endpoint="response_proportion", statistic="percent",
                              threshold=text, value="40"),
                         _row(endpoint="response_proportion", statistic="percent",
                              value="40")])
    result = check_trial(spec, data, study="s", replicates=2)
    first = result.replicates[result.replicates.replicate == 0].set_index("line").value
    seed = _replicate_spec(spec, 0, None)[0]
    patients = pp.run_trial(replace(spec, seed=seed)).subjects
    patients = patients[patients.arm == "untreated"].head(20)
    assert first[2] == pytest.approx(100 * patients.kept_up.mean(), rel=1e-12)
    assert first[3] == pytest.approx(100 * patients.responder.mean(), rel=1e-12)
    # a composite answers the proportion over the whole trial: a row by a day is refused
    # with the reason (the composite's flags have no day)
    data = pd.DataFrame([_row(endpoint="response_proportion", statistic="percent",
                              threshold=text, day="7", value="40")])
    with pytest.raises(CheckError, match="composite 'kept_up' answers response_proportion"):
        check_trial(spec, data, study="s", replicates=2)


def test_a_day_bound_row_the_follow_up_cannot_see_is_refused_not_a_silent_nan():
    # a peak within 14 days of the start (Chen 2025 read over its treatment course) in a
    # trial simulated only 10 days after chemotherapy: no patient's window is complete
    spec = pp.TrialSpec.create(seed=2, subjects_per_arm=30, follow_up_days=10, arms=[
        {"name": "untreated", "data_arm": "control"}], response={"threshold": 100,
                                                                "by_day": 7})
    data = pd.DataFrame([_row(endpoint="peak_plt", day="14", value="120")])
    with pytest.raises(CheckError, match=r"line 2 \(control, peak_plt day 14\).*raise "
                                         r"\[trial\] follow_up_days"):
        check_trial(spec, data, study="s", replicates=2)
    # 24 days after chemotherapy: the patients who started late lack part of the window;
    # the row is read from the others and a note says how many were left out
    spec = pp.TrialSpec.create(seed=2, subjects_per_arm=30, follow_up_days=24, arms=[
        {"name": "untreated", "data_arm": "control"}], response={"threshold": 100,
                                                                "by_day": 7})
    result = check_trial(spec, data, study="s", replicates=2)
    assert np.isfinite(result.table.predicted).all()
    assert any("followed for less than 14 days after their start" in note
               for note in result.notes)


def test_a_count_at_a_day_after_the_follow_up_is_missing_not_the_last_count():
    # 10 days simulated after chemotherapy, treatment from about day 9: the count 14 days
    # after the start was read as the last simulated count (clamped interpolation); it is
    # missing, and a row asking for it is refused with the fix
    spec = pp.TrialSpec.create(seed=2, subjects_per_arm=30, follow_up_days=10, arms=[
        {"name": "untreated", "data_arm": "control"}], response={"threshold": 100,
                                                                "by_day": 7})
    patients = pp.run_trial(spec).subjects
    late = patients.start_day + 14 > 10
    assert late.all() and patients.plt_day_14.isna().all()
    # the same with counts measured at visits (cit_marrow_reserve declares its error): a
    # visit after a patient's follow-up is not a measurement either; 16.5 days after
    # chemotherapy, the day-7 visit exists for the early starters only
    measured = pp.TrialSpec.create(seed=2, subjects_per_arm=60, follow_up_days=16.5,
                                   measurement_error=True, arms=[{"name": "untreated"}],
                                   response={"threshold": 100, "by_day": 7})
    patients = pp.run_trial(measured).subjects
    late = patients.start_day + 7 > 16.5
    assert late.any() and (~late).any()
    np.testing.assert_array_equal(patients.plt_day_7.isna(), late)
    data = pd.DataFrame([_row(endpoint="plt_count", day="14", value="120")])
    with pytest.raises(CheckError, match=r"plt_count day 14.*follow_up_days"):
        check_trial(spec, data, study="s", replicates=2)


def test_two_composites_answering_the_same_rows_are_refused():
    text = "responded and not transfused (constructed)"
    composite = [{"name": name, "all": ["responder"], "data_threshold": text}
                 for name in ("first", "second")]
    from plateletpd.study.trial import TrialSpecError

    with pytest.raises(TrialSpecError, match=r"composite 'first' answers the rows with "
                                             r"this threshold text already"):
        _one_arm_trial(composite=composite)


def _mild_trial(damage: float, subjects: int = 20):
    """Untreated patients enrolled below 30: at a mild damage few of the 20 screened enrol
    (sizes for a fast test, not from a study)."""
    return pp.TrialSpec.create(seed=3, model="cit_thrombopoiesis", subjects_per_arm=subjects,
                               arms=[{"name": "untreated"}], enrolment={"entry_below": 30},
                               population={"cv": {"chemotherapy_sensitivity": 0.3},
                                           "typical": {"chemotherapy_sensitivity": damage}},
                               response={"threshold": 100, "by_day": 14})


def test_a_drawn_study_short_of_its_size_recruits_more_with_the_same_first_patients():
    # a published study recruits until it has its n; a virtual one drawn mild must too, or
    # its rows are read over a few patients (a wider interval the study did not have)
    from plateletpd.study.check import RECRUIT_LIMIT, recruit_to_size
    from plateletpd.study.trial import run_trial

    short = run_trial(_mild_trial(5.0))
    assert len(short.subjects) < 20  # this seed and damage: 7 of 20 enrol
    grown, reran = recruit_to_size(short, {"untreated": 20})
    assert reran == 1 and len(grown.subjects) >= 20
    assert grown.spec.subjects_per_arm > short.spec.subjects_per_arm
    # the same seed: every patient enrolled before is enrolled again with the same endpoints
    again = grown.subjects[grown.subjects.patient.isin(short.subjects.patient)]
    pd.testing.assert_frame_equal(again.reset_index(drop=True),
                                  short.subjects.reset_index(drop=True))
    # enough already: the same result, no rerun
    assert recruit_to_size(grown, {"untreated": 20}) == (grown, 0)
    # a shortfall beyond reach stops at the limit (the check's note on sizes says the rest)
    capped, _ = recruit_to_size(short, {"untreated": 10_000})
    assert capped.spec.subjects_per_arm == RECRUIT_LIMIT * 20


def test_a_study_at_the_fits_point_estimates_recruits_to_its_size_too():
    # a CIT user test (2026-12-04): with --uncertainty fit a short replicate screened more,
    # with the point estimates it was only noted ("raise --n"); now both recruit. The same
    # mild trial (7 of 20 screened enrol) checked against a row of n 20: every virtual study
    # has its 20 patients and a note says how many replicates screened more
    data = pd.DataFrame([_row(n="20")])
    result = check_trial(_mild_trial(5.0), data, study="s", replicates=2,
                         arm_map={"untreated": "control"})
    assert result.table.virtual_n.tolist() == [20]
    assert (result.replicates.virtual_n == 20).all()
    assert any("2 replicate studies enrolled fewer" in note for note in result.notes)


def test_a_baseline_count_row_is_read_from_the_count_at_the_start_of_treatment():
    # a publication's baseline table (Soff 2019: mean 62 x10^9/L at entry, cit_summary.csv
    # soff2019_romiplostim_cit, arm "all enrolled", plt_count on day 0) is compared with
    # the enrolled virtual patients' count on the first treatment morning: in this trial
    # they enrol when the count falls below 75 (TrialSpec's entry_below) and are still
    # falling a day later, so every virtual study's mean is below 75, and it equals the
    # mean of the patients' own platelets_at_start in the trial's summary
    spec = _one_arm_trial()
    assert spec.arms[0].entry_below == 75
    data = pd.DataFrame([_row(endpoint="plt_count", day="0", value="62")])
    result = check_trial(spec, data, study="s", replicates=3)
    assert result.table.day.tolist() == [0]
    values = result.replicates.value.to_numpy(float)
    assert np.isfinite(values).all() and (values < 75).all() and (values > 0).all()
    trial = pp.run_trial(spec)
    row = trial.summary.loc["untreated"]
    assert row.mean_platelets_at_start == pytest.approx(trial.subjects.platelets_at_start.mean())
    assert row.mean_platelets_at_start_lower < row.mean_platelets_at_start < \
        row.mean_platelets_at_start_upper


def test_a_row_without_n_is_read_over_the_whole_arm_and_a_note_says_so():
    # a user test (2026-12-04): a row with an empty n was compared against studies of the
    # trial arm's whole enrolled cohort, intervals far narrower than a small study's, with
    # no word of it. The note names the line, the virtual study size and the fix
    spec = _one_arm_trial()
    data = pd.DataFrame([_row(n="", value="30"), _row(value="30")])
    result = check_trial(spec, data, study="s", replicates=2)
    whole, sized = result.table.virtual_n.tolist()
    assert sized == 20 and whole > sized   # the row with n reads 20 patients, the other all
    note = next(note for note in result.notes if note.startswith("no n"))
    assert "line 2 (control)" in note and f"({whole} patients)" in note
    assert "line 3" not in note and "n column" in note


def test_a_composite_judged_among_some_patients_is_read_over_them_only():
    # a composite with `among` is empty (NaN) outside the patients it is judged among; a
    # response row it answers is the share among them (3 of 4 here), not over everyone
    from plateletpd.study.check import row_reader

    row = pd.Series({"endpoint": "response_proportion", "statistic": "percent",
                     "threshold": "kept up, among those resumed", "day": math.nan})
    composite = {"name": "kept_up", "data_threshold": "kept up, among those resumed"}
    reader = row_reader(row, {"threshold": 100, "by_day": 14}, None,
                        composites=(composite,))
    table = pd.DataFrame({"kept_up": [1.0, 1.0, 0.0, 1.0, np.nan, np.nan]})
    assert reader(table) == pytest.approx(75.0)
    assert math.isnan(reader(table.iloc[4:]))


def test_a_count_at_a_week_is_read_at_that_visit_however_the_row_phrases_it():
    # a user test (2026-12-04): "PLT >=50 at week 8" and "PLT ≥50" (a typeset sign) were
    # read as "responded at least once by day 56", "PLT >=50 at the week" as the count at
    # the day-56 visit, with nothing in check.csv saying which. Now the phrasings of one
    # endpoint give the same value in every replicate, check.csv's `reading` names it, a
    # week that contradicts the row's day is refused, and an unparsed text is noted
    from plateletpd.study.trial import bundled_trial, load_trial_spec

    spec = load_trial_spec(bundled_trial("itp_phase3"), subjects=30)
    texts = ["PLT >=50 at the week", "PLT \u226550 at week 8", "PLT >=50 at the week-8 visit",
             "PLT >= 50 at day 56", "PLT \u226550"]
    rows = [_row(arm="HETROM-5", endpoint="response_proportion", n="20", threshold=text,
                 day="56", statistic="percent", value="64.3") for text in texts]
    rows.append(_row(arm="HETROM-5", endpoint="response_proportion", n="20",
                     threshold="PLT >=50 after 8 weeks", day="56", statistic="percent",
                     value="84.5"))
    result = check_trial(spec, pd.DataFrame(rows), study="s", replicates=2,
                         arm_map={"HETROM-5": "HETROM-5"})
    values = result.replicates.pivot(index="replicate", columns="line", values="value")
    for line in range(3, 2 + len(texts)):
        np.testing.assert_array_equal(values[line], values[2])
    assert set(result.table.reading[:len(texts)]) == {
        "the count at the day-56 visit at least 50"}
    # "after 8 weeks" is not a phrase the check knows: read by the trial's rule, and said
    assert "was not parsed" in result.table.reading.iloc[-1]
    assert any("line 7" in note and "after 8 weeks" in note for note in result.notes)
    wrong = pd.DataFrame([{**rows[1], "threshold": "PLT >=50 at week 4"}])
    with pytest.raises(CheckError, match="names day 28.*its day is 56"):
        check_trial(spec, wrong, study="s", replicates=2, arm_map={"HETROM-5": "HETROM-5"})


def test_only_mapped_arms_leaves_out_a_trial_arm_whose_data_arm_has_no_rows():
    # a user test (2026-12-04): a user's own rows for the drug arms only; the trial file's
    # placebo arm names data_arm = "placebo", and --only-mapped-arms still failed on it. It
    # is now left out with a note; a name close to an arm with rows (a typo) still fails
    data = pd.DataFrame([_row()])
    spec = pp.TrialSpec.create(seed=2, subjects_per_arm=30, arms=[
        {"name": "untreated", "data_arm": "control"},
        {"name": "other", "data_arm": "placebo"}], response={"threshold": 100, "by_day": 14})
    with pytest.raises(CheckError, match="'placebo', which has no row"):
        check_trial(spec, data, study="s", replicates=2)
    result = check_trial(spec, data, study="s", replicates=2, only_mapped=True)
    assert result.table.arm.tolist() == ["control"]
    assert any("'other' not checked" in note for note in result.notes)
    typo = pp.TrialSpec.create(seed=2, subjects_per_arm=30, arms=[
        {"name": "untreated", "data_arm": "contrl"}], response={"threshold": 100, "by_day": 14})
    with pytest.raises(CheckError, match="did you mean 'control'"):
        check_trial(typo, data, study="s", replicates=2, only_mapped=True)


def test_a_baseline_share_at_a_level_is_read_from_the_count_at_the_start():
    # a CIT user test (2026-12-04): "79.3% had PLT >= 50 at baseline" (day 0) was refused
    # with the advice "add at_visits = [0]", which the trial file then refused. It is read
    # from platelets_at_start, as a baseline count row is
    from dataclasses import replace

    from plateletpd.study.uncertainty import _replicate_spec

    spec = _one_arm_trial()
    data = pd.DataFrame([_row(endpoint="response_proportion", threshold="PLT >=50 at day 0",
                              day="0", statistic="percent", value="79.3")])
    result = check_trial(spec, data, study="s", replicates=2)
    first = result.replicates[result.replicates.replicate == 0].value.iloc[0]
    patients = pp.run_trial(replace(spec, seed=_replicate_spec(spec, 0, None)[0])).subjects
    assert first == pytest.approx(100 * np.mean(patients.head(20).platelets_at_start >= 50))
    assert result.table.reading.iloc[0] == "the count at the start of treatment (day 0) at least 50"


def test_a_count_of_patients_is_read_as_its_share_of_n():
    # a user test (2026-12-04): "35 of 57 had PLT >= 50 at week 10" written as statistic
    # count (as data/cit_summary.csv's ITP rows are) was refused with "a count at a visit
    # needs its day and a percent or proportion" though the row had its day. A count of n
    # is its percentage: the same observed value and the same predictions as 61.4%
    from plateletpd.study.trial import bundled_trial, load_trial_spec

    spec = load_trial_spec(bundled_trial("itp_phase3"), subjects=30)
    as_count = _row(arm="HETROM-5", endpoint="response_proportion", n="57",
                    threshold="PLT >=50 at the week", day="56", statistic="count", value="35")
    as_percent = {**as_count, "statistic": "percent", "value": repr(100 * 35 / 57)}
    results = [check_trial(spec, pd.DataFrame([row]), study="s", replicates=2,
                           arm_map={"HETROM-5": "HETROM-5"}).table
               for row in (as_count, as_percent)]
    assert results[0].observed.iloc[0] == pytest.approx(100 * 35 / 57)
    pd.testing.assert_frame_equal(results[0], results[1])


@pytest.mark.parametrize("measurement_error", [False, True])
def test_an_arm_no_row_reads_is_not_simulated_and_the_others_keep_their_patients(
        monkeypatch, measurement_error):
    # an ITP user test (2026-12-04): --only-mapped-arms still simulated the unmapped arm
    # (4 min against 1.5 min). Now only the arms the rows read run, each with the random
    # streams of its position in the file, so the table is the one the whole trial gives.
    # The unmapped arm comes first: the mapped one is the file's second
    import plateletpd.study.check as check

    data = pd.DataFrame([_row(endpoint="nadir_plt"),
                         _row(endpoint="response_proportion", statistic="percent",
                              value="60", threshold="", n="20")])
    spec = pp.TrialSpec.create(seed=7, subjects_per_arm=30, arms=[
        {"name": "other", "data_arm": "placebo"},
        {"name": "untreated", "data_arm": "control"}], response={"threshold": 100,
                                                                 "by_day": 14},
        population={"cv": {"chemotherapy_sensitivity": 0.3},
                    "covariates": {"body_weight": 65}}, measurement_error=measurement_error)
    simulated = []
    original = check.replicate_trials

    def recording(spec, *args, **kwargs):
        simulated.append([design.name for design in spec.arms])
        return original(spec, *args, **kwargs)
    monkeypatch.setattr(check, "replicate_trials", recording)
    kept = check_trial(spec, data, study="s", replicates=2, only_mapped=True)
    assert simulated[-1] == ["untreated"]
    monkeypatch.setattr(check, "with_arms", lambda spec, names: spec)  # the old way
    whole = check_trial(spec, data, study="s", replicates=2, only_mapped=True)
    assert simulated[-1] == ["other", "untreated"]
    pd.testing.assert_frame_equal(kept.table, whole.table)
    pd.testing.assert_frame_equal(kept.replicates, whole.replicates)


def test_the_note_on_short_virtual_studies_says_how_many_and_what_to_do():
    # a CIT user test (2026-12-04) could not read "virtual studies of 20-58 (smallest-
    # median) patients ... (raise --n)". A study of 10,000 cannot be reached from 20
    # screened (recruiting stops at 8 times --n): the note says how many replicates were
    # short, the smallest and median sizes, and the limit
    from plateletpd.study.check import RECRUIT_LIMIT

    data = pd.DataFrame([_row(arm="untreated", n="10000")])
    result = check_trial(_mild_trial(5.0), data, study="s", replicates=2,
                         arm_map={"untreated": "untreated"})
    note = next(note for note in result.notes if note.startswith("virtual studies smaller"))
    size = int(result.table.virtual_n.iloc[0])
    assert size < 10000
    assert f"untreated (n 10000): 2 of 2 replicates enrolled fewer, the smallest {size} " \
        f"patients" in note
    assert f"screened up to {RECRUIT_LIMIT} times --n" in note


def test_arms_named_as_the_datas_are_paired_when_nothing_pairs_them():
    # the ITP phase III file names its arms as Mei 2021 does (HETROM-2.5, HETROM-5,
    # placebo) but has no data_arm: check refused it, asking for a mapping a user expects
    # by name (2026-12-04). Pairing by name happens only when neither the file nor the
    # command pairs any arm; otherwise an unpaired data arm is still an error
    from plateletpd.study.check import arm_mapping

    spec = pp.TrialSpec.create(seed=2, subjects_per_arm=30, arms=[
        {"name": "Placebo "}, {"name": "rhTPO"}], response={"threshold": 100, "by_day": 14})
    rows = pd.DataFrame({"arm": ["placebo", "rhTPO", "rhTPO"], "line": [2, 3, 4]})
    assert arm_mapping(spec, rows, "s", "data.csv", None, by_name=True) == {
        "placebo": "Placebo ", "rhTPO": "rhTPO"}
    with pytest.raises(CheckError, match="no trial arm is mapped"):
        arm_mapping(spec, rows, "s", "data.csv", None)  # a fit pairs only what it is told
    paired = pp.TrialSpec.create(seed=2, subjects_per_arm=30, arms=[
        {"name": "placebo", "data_arm": "rhTPO"}, {"name": "rhTPO"}],
        response={"threshold": 100, "by_day": 14})
    with pytest.raises(CheckError, match="'placebo' \\(line 2\\)"):
        arm_mapping(paired, rows, "s", "data.csv", None, by_name=True)


def test_replicates_screen_only_what_their_rows_need_and_give_the_same_table(monkeypatch):
    # a CIT user test (2026-12-04): 100 replicates of a 300-screened trial for rows of n 12
    # took 8.7 minutes. After the first replicate a check screens about as many as the rows
    # need; every patient's draws depend on its index only, so the same first patients are
    # read and the table is the same as screening the file's number every time
    from plateletpd.study import uncertainty

    screened = []
    real = uncertainty.run_trial

    def counting(spec):
        screened.append(spec.subjects_per_arm)
        return real(spec)

    monkeypatch.setattr(uncertainty, "run_trial", counting)
    data = pd.DataFrame([_row(n="4"), _row(n="4", endpoint="peak_plt", value="200")])
    trial = _mild_trial(8.0, subjects=120)
    fewer = check_trial(trial, data, study="s", replicates=4, arm_map={"untreated": "control"})
    assert screened[0] == 120 and max(screened[1:]) < 120, screened
    screened.clear()
    every = check_trial(trial, data, study="s", replicates=4,
                        arm_map={"untreated": "control"}, screen_fewer=False)
    assert screened == [120] * 4
    pd.testing.assert_frame_equal(fewer.table, every.table)
    pd.testing.assert_frame_equal(fewer.replicates, every.replicates)


def test_a_change_from_baseline_row_is_read_per_patient_from_the_recorded_counts():
    # a user test (2026-12-05): "mean PLT change by day 7 +70" (rhIL-11 in leukaemia) was
    # refused although the registry lists plt_change_from_baseline for data rows. Read per
    # patient as the day's recorded count minus platelets_at_start, then averaged over the
    # row's first n patients (replicate 0 rerun as its own trial, as above); a percent
    # change is that over the baseline; a day the trial does not record is refused
    from dataclasses import replace

    from plateletpd.study.uncertainty import _replicate_spec

    spec = _one_arm_trial()
    data = pd.DataFrame([_row(endpoint="plt_change_from_baseline", day="7", value="70"),
                         _row(endpoint="plt_percent_change", day="14", value="100",
                              statistic="median")])
    result = check_trial(spec, data, study="s", replicates=2)
    first = result.replicates[result.replicates.replicate == 0].set_index("line").value
    patients = pp.run_trial(replace(spec, seed=_replicate_spec(spec, 0, None)[0])).subjects
    head = patients.head(20)
    assert first[2] == pytest.approx((head.plt_day_7 - head.platelets_at_start).mean(),
                                     rel=1e-12)
    percent = 100 * (head.plt_day_14 - head.platelets_at_start) / head.platelets_at_start
    assert first[3] == pytest.approx(percent.median(), rel=1e-12)
    refused = pd.DataFrame([_row(endpoint="plt_change_from_baseline", day="10",
                                 value="70")])
    with pytest.raises(CheckError, match=r"add at_visits = \[10\]"):
        check_trial(spec, refused, study="s", replicates=2)


def test_a_time_row_among_responders_is_read_over_the_patients_who_reached_the_level():
    # a user test (2026-12-05): "median time to response 27.5 days (among responders)" was
    # read as a Kaplan-Meier median over every enrolled patient. A row whose threshold says
    # "among responders" is read over those who reached the level (replicate 0 rerun)
    from dataclasses import replace

    from plateletpd.study.uncertainty import _replicate_spec

    spec = _one_arm_trial(follow_up_days=22)  # some patients do not reach 100 within it
    data = pd.DataFrame([
        _row(endpoint="time_to_threshold_days", threshold="PLT >=100 among responders",
             statistic="mean", value="8"),
        _row(endpoint="time_to_threshold_days", threshold="100",
             statistic="median", value="8")])
    result = check_trial(spec, data, study="s", replicates=2)
    first = result.replicates[result.replicates.replicate == 0].set_index("line").value
    head = pp.run_trial(replace(spec, seed=_replicate_spec(spec, 0, None)[0])).subjects.head(20)
    reached = head[head.reached_100.astype(bool)]
    assert 0 < len(reached) < len(head)  # the restriction matters here
    assert first[2] == pytest.approx(reached.days_to_100.mean(), rel=1e-12)
    assert "among the patients who reached 100" in result.table.reading.iloc[0]
    # without it, a median time is the Kaplan-Meier median over every enrolled patient
    assert "Kaplan-Meier" in result.table.reading.iloc[1]


# ------------------------------------------------------- comparison rows (direction and P)
COMPARISON_HEADER = ("study,arm,regimen,n,population,day0,endpoint,threshold,day,statistic,"
                     "value,spread_type,spread,source,versus,comparison\n")


def comparison_rows(*rows: str) -> str:
    """Rows given as "arm,...,spread,versus,comparison"; the source goes before versus."""
    lines = []
    for row in rows:
        head, versus, comparison = row.rsplit(",", 2)
        lines.append(f"cmp,{head},illustrative rows of the test (not a publication),"
                     f"{versus},{comparison}\n")
    return COMPARISON_HEADER + "".join(lines)


def test_comparison_rows_load_and_bad_ones_are_named(tmp_path):
    # a user test (2026-12-05, Zhu 2021 Front Oncol 11:701539): the abstract gives only
    # "higher than the control, P = .041"; such a row is a comparison, read by check only
    from plateletpd.io.outcomes import OutcomeDataError, load_outcomes, require_usable

    good = tmp_path / "good.csv"
    good.write_text(comparison_rows(
        "rhTPO,rhTPO,50,CIT,start,plt_count,,7,mean,0.005,,,untreated,higher",
        "rhTPO,rhTPO,50,CIT,start,nadir_plt,,,mean,0.05,,,untreated,no_difference"))
    rows = load_outcomes(good)
    assert rows.comparison.tolist() == ["higher", "no_difference"]
    assert rows.versus.tolist() == ["untreated", "untreated"]
    assert rows.observed.tolist() == [0.005, 0.05] and rows.standard_error.isna().all()
    with pytest.raises(OutcomeDataError, match="read by plateletpd check, not fitted"):
        require_usable(rows)
    bad = tmp_path / "bad.csv"
    bad.write_text(comparison_rows(
        "rhTPO,rhTPO,50,CIT,start,nadir_plt,,,mean,0.05,,,,higher",
        "rhTPO,rhTPO,50,CIT,start,nadir_plt,,,mean,1.5,,,untreated,higher",
        "rhTPO,rhTPO,50,CIT,start,nadir_plt,,,mean,0.05,,,untreated,better",
        "rhTPO,rhTPO,50,CIT,start,nadir_plt,,,mean,0.05,,,rhTPO,higher"))
    with pytest.raises(OutcomeDataError) as error:
        load_outcomes(bad)
    assert [(line, column) for line, column, _ in error.value.problems] == [
        (2, "versus"), (3, "value"), (4, "comparison"), (5, "versus")]
    assert "two-sided P" in str(error.value) and "compares arm 'rhTPO' with itself" in \
        str(error.value)
    baseline = tmp_path / "baseline.csv"
    baseline.write_text(comparison_rows(
        "rhTPO,rhTPO,50,CIT,start,plt_count,,14,mean,0.05,,,baseline,higher",
        "rhTPO,rhTPO,50,CIT,start,nadir_plt,,,mean,0.05,,,baseline,higher"))
    with pytest.raises(OutcomeDataError) as error:
        load_outcomes(baseline)
    assert [(line, column) for line, column, _ in error.value.problems] == [(3, "versus")]
    assert "a plt_count row with its day" in str(error.value)
    # a user test (2026-12-07, Mo 2021: "similar platelet nadir (P=0.878)") wrote the
    # published P of a no-difference row; its value is the level judged at (data/README.md)
    published = tmp_path / "published_p.csv"
    published.write_text(comparison_rows(
        "rhTPO,rhTPO,50,CIT,start,nadir_plt,,,mean,0.878,,,untreated,no_difference",
        "rhTPO,rhTPO,50,CIT,start,nadir_plt,,,mean,0.1,,,untreated,no_difference"))
    with pytest.raises(OutcomeDataError) as error:
        load_outcomes(published)
    assert [(line, column) for line, column, _ in error.value.problems] == [(2, "value")]
    assert "not the published P; got 0.878: write 0.05" in str(error.value)


def test_the_bootstrap_z_of_a_mean_difference_agrees_with_welchs():
    # comparison_z's standard error is a bootstrap within the virtual study; for a mean it
    # must agree with Welch's sqrt(s1^2/n1 + s2^2/n2) (analytic): within 15% over 60
    # resamples (the bootstrap SE's own relative error is about 1/sqrt(2 x 60) = 9%)
    from plateletpd.study.check import comparison_z

    rng = np.random.default_rng(3)
    first = pd.DataFrame({"nadir": rng.normal(60.0, 20.0, 50)})
    second = pd.DataFrame({"nadir": rng.normal(45.0, 25.0, 40)})

    def read(table):
        return float(table.nadir.mean())

    z, difference, (one, two) = comparison_z(read, read, first, second,
                                             np.random.default_rng(1))
    assert (one, two) == (pytest.approx(first.nadir.mean()), pytest.approx(second.nadir.mean()))
    welch = (first.nadir.mean() - second.nadir.mean()) / math.sqrt(
        first.nadir.var() / 50 + second.nadir.var() / 40)
    assert difference == pytest.approx(first.nadir.mean() - second.nadir.mean())
    assert z == pytest.approx(welch, rel=0.15)


def test_a_check_reads_a_comparison_as_the_chance_a_study_of_its_size_finds_it(tmp_path):
    # rhTPO 15000 U daily from entry (PLT < 75) raises the day-14 count far above an
    # untreated arm's in this model (about +100, tests/test_cit_science.py's Yuan design
    # day-14 means): "higher, P = 0.001" in 50 against 50 must be found in most virtual
    # studies and read as consistent; the opposite claim never, and read as outside
    trial = two_arm_trial(tmp_path / "t.toml", seed=2, subjects=90,
                          trial_keys='data_study = "cmp"')
    data = tmp_path / "d.csv"
    data.write_text(comparison_rows(
        "rhTPO,rhTPO,50,CIT,start,plt_count,,14,mean,0.001,,,untreated,higher",
        "rhTPO,rhTPO,50,CIT,start,plt_count,,14,mean,0.001,,,untreated,lower",
        "untreated,none,50,CIT,start,nadir_plt,,,mean,0.05,,,rhTPO,no_difference"))
    result = check_trial(pp.load_trial_spec(trial), data, replicates=12)
    table = result.table.set_index("line")
    assert table.chance_of_finding[2] > 80 and table.inside[2]
    assert table.chance_of_finding[3] == 0 and not table.inside[3]
    assert table.observed[2] == pytest.approx(3.2905, abs=1e-3)  # z of a two-sided 0.001
    assert table.observed[3] == pytest.approx(-3.2905, abs=1e-3)
    assert table.predicted[2] > 3.29 > table.interval_low[2] - 10  # a z, not a count
    assert 0 <= table.chance_of_finding[4] <= 100
    assert any("line 2 (rhTPO vs untreated, plt_count mean, published higher at P <= "
               "0.001): rhTPO (50 patients) against untreated (50 patients" in note
               for note in result.notes)
    assert "z of the difference rhTPO - untreated" in table.reading[2]


def test_a_paired_comparison_with_baseline_agrees_with_the_paired_t():
    # versus = baseline ("higher than before treatment, P < 0.05", a user test 2026-12-05):
    # one bootstrap of the patients for both readings, so the standard error is that of the
    # per-patient change, sqrt(var(change) / n) (the paired t's, analytic), within 15%, and
    # far below the unpaired one when the counts are correlated
    from plateletpd.study.check import comparison_z

    rng = np.random.default_rng(5)
    start = rng.normal(40.0, 15.0, 43)
    table = pd.DataFrame({"platelets_at_start": start,
                          "plt_day_14": start + rng.normal(30.0, 10.0, 43)})

    def day14(t):
        return float(t.plt_day_14.mean())

    def baseline(t):
        return float(t.platelets_at_start.mean())

    z, difference, _ = comparison_z(day14, baseline, table, None, np.random.default_rng(2))
    change = table.plt_day_14 - table.platelets_at_start
    assert difference == pytest.approx(change.mean())
    assert z == pytest.approx(change.mean() / (change.std() / math.sqrt(43)), rel=0.15)
    unpaired, _, _ = comparison_z(day14, baseline, table, table, np.random.default_rng(2))
    assert z > 1.5 * unpaired


def test_a_comparison_uses_the_published_size_of_the_arm_compared_with(tmp_path):
    # a user test (2026-12-05): an arm compared with had no row of its own and was read
    # whole (all its enrolled virtual patients), a stronger test than the study's. Now
    # versus_n, else the row's own n; the note says which
    trial = two_arm_trial(tmp_path / "t.toml", seed=2, subjects=90,
                          trial_keys='data_study = "cmp"')
    header = COMPARISON_HEADER.strip() + ",versus_n\n"
    source = "illustrative rows of the test (not a publication)"
    data = tmp_path / "d.csv"
    data.write_text(header
                    + f"cmp,rhTPO,rhTPO,20,CIT,start,plt_count,,14,mean,0.05,,,{source},"
                      f"untreated,higher,\n"
                    + f"cmp,rhTPO,rhTPO,20,CIT,start,plt_count,,7,mean,0.05,,,{source},"
                      f"untreated,higher,12\n"
                    + f"cmp,rhTPO,rhTPO,20,CIT,start,plt_count,,14,mean,0.05,,,{source},"
                      f"baseline,higher,\n")
    trial.write_text(trial.read_text().replace("[enrolment]", "replicates = 3\n[enrolment]"))
    # replicates from the trial file (the call gives none, as the CLI without --replicates)
    result = check_trial(pp.load_trial_spec(trial), data)
    assert (result.replicates.groupby("line").replicate.nunique() == 3).all()
    notes = [note for note in result.notes if note.startswith("line ")]
    assert "rhTPO (20 patients) against untreated (20 patients, as many as the compared " \
           "arm: give versus_n" in notes[0]
    assert "against untreated (12 patients)" in notes[1]
    assert "against its count at the start of treatment" in notes[2]
    assert result.table.chance_of_finding.notna().all()


def test_a_nadir_row_with_a_threshold_text_that_states_nothing_is_noted_not_read_silently():
    # a user test (2026-12-07) gave a nadir_plt row the threshold "during treatment": it was
    # read as the trial's nadir with nothing saying the text was ignored. The value is the
    # same as without the text (the trial's nadir), and the reading and the notes say so
    data = pd.DataFrame([_row(), _row(threshold="during treatment")])
    result = check_trial(_one_arm_trial(), data, study="s", replicates=2)
    values = result.replicates.pivot(index="replicate", columns="line", values="value")
    np.testing.assert_array_equal(values[2], values[3])
    assert "was not parsed" not in result.table.reading.iloc[0]
    assert "'during treatment' was not parsed" in result.table.reading.iloc[1]
    assert any("line 3" in note and "during treatment" in note for note in result.notes)
