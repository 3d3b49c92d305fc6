"""Virtual trials: reproducibility across thread counts, visit-based endpoints, spec errors."""

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import changed, one_cycle, with_one_and_two_threads

import plateletpd as pp
from plateletpd.study import trial as trial_module
from plateletpd.study.cohort import ArmDesign, ArmResult
from plateletpd.study.trial import (
    TrialSpecError,
    arm_table,
    bundled_trial,
    load_trial_spec,
    patient_endpoints,
    run_trial,
    trial_provenance,
    write_trial,
)

SPEC = bundled_trial("yuan2025")


def test_same_seed_gives_the_same_trial_with_one_or_two_threads():
    spec = load_trial_spec(SPEC, subjects=40, seed=5)
    one, two = with_one_and_two_threads(lambda: run_trial(spec).subjects)
    assert one.equals(two)
    other = run_trial(load_trial_spec(SPEC, subjects=40, seed=6)).subjects
    assert not one.equals(other)


def test_visit_based_endpoints_on_a_constructed_course():
    # one patient: count 60 at the start of treatment (t = 10 d), rising 10 per day
    times = np.arange(0, 40 * 24 + 1) / 24
    course = np.clip(60 + 10 * (times - 10), 5, None)
    arm = ArmResult(ArmDesign("x"), times, course[None, :], np.array([0]), np.array([9.0]),
                    np.array([10.0]), np.array([5]), np.array([0]), 1)
    row = patient_endpoints(arm, {"threshold": 100, "rise": 50, "by_day": 14}, 1.0).iloc[0]
    # hand-computed: 75 reached at visit day 2 (80), 100 at day 4; a rise of 50 at day 5;
    # the first visit meeting either rule is day 4
    assert row.days_to_75 == 2 and row.reached_75
    assert row.days_to_100 == 4 and row.reached_100
    assert row.responder and row.response_day == 4
    assert row.plt_day_7 == pytest.approx(130.0)
    # with visits every 3 days, 100 is first seen on day 6
    sparse = patient_endpoints(arm, {"threshold": 100, "rise": None, "by_day": 14}, 3.0)
    assert sparse.iloc[0].days_to_100 == 6
    # by_day 3: not yet a responder (count 90 on day 3)
    early = patient_endpoints(arm, {"threshold": 100, "rise": None, "by_day": 3}, 1.0)
    assert not early.iloc[0].responder


def test_trial_outputs_and_arm_table(tmp_path):
    result = run_trial(load_trial_spec(SPEC, subjects=30, seed=1))
    table = arm_table(result)
    assert list(table.index) == [a.name for a in result.spec.arms]
    for name, row in result.summary.iterrows():
        assert row["response_pct_lower"] <= row["response_pct"] <= row["response_pct_upper"]
    # the enrolled baseline a publication reports (an ITP user test, 2026-12-04, found no
    # baseline in the printed table): the mean of the patients' counts at the start
    for name, group in result.subjects.groupby("arm"):
        assert table.loc[name, "mean PLT at start"] == pytest.approx(
            round(group.platelets_at_start.mean(), 1))
    written = write_trial(result, tmp_path / "out")
    assert all(p.exists() for p in written)
    assert not list((tmp_path / "out").glob("*.part"))
    assert "## Differences from untreated" in (tmp_path / "out" / "report.md").read_text()


def test_relative_rise_and_all_rules_together_on_constructed_courses():
    # two patients from the start of treatment (t = 10 d), counts hand-set, rising 5 per
    # day: patient 0 from 20 (IWG ITP: PLT >= 30 and a doubling, Rodeghiero 2009 Blood
    # 113:2386), patient 1 from 40 (already above 30 at day 0)
    times = np.arange(0, 40 * 24 + 1) / 24
    courses = np.stack([np.clip(start + 5 * (times - 10), 5, None) for start in (20, 40)])
    arm = ArmResult(ArmDesign("x"), times, courses, np.array([0, 1]), np.array([9.0, 9.0]),
                    np.array([10.0, 10.0]), np.array([5, 5]), np.array([0, 0]), 2)
    iwg = {"threshold": 30, "rise_fold": 2, "combine": "all", "by_day": 14}
    rows = patient_endpoints(arm, iwg, 1.0)
    # hand-computed: patient 0 is at 30 on day 2 but doubles (40) on day 4; patient 1
    # doubles (80) on day 8: with a rise asked for, being above 30 at day 0 does not exclude
    assert rows.response_day.tolist() == [4, 8] and rows.responder.all()
    # "any": patient 0 meets 30 on day 2; patient 1, above 30 at day 0, never responds
    either = patient_endpoints(arm, {**iwg, "combine": "any"}, 1.0)
    assert either.responder.tolist() == [True, False] and either.response_day.iloc[0] == 2
    # a doubling alone (no threshold): days 4 and 8; by day 6 only patient 0
    fold = patient_endpoints(arm, {"rise_fold": 2, "by_day": 6}, 1.0)
    assert fold.responder.tolist() == [True, False]


def test_a_response_tier_is_judged_by_by_day_at_its_own_level():
    # tiered responses (a CIT user test, 2026-12-04: "response PLT > 30, complete response
    # PLT > 100" needed a composite over the whole follow-up): also_thresholds = [100]
    # judges 100 over the response's window. Constructed counts rising 5 a day from the
    # start (t = 10 d): from 20, at 30 on day 2 and 100 on day 16; from 60, at 100 on day 8;
    # from 110, above 100 at day 0 (never a tier responder, as the main rule)
    from plateletpd.study.trial import response_extras

    times = np.arange(0, 40 * 24 + 1) / 24
    courses = np.stack([np.clip(start + 5 * (times - 10), 5, None) for start in (20, 60, 110)])
    arm = ArmResult(ArmDesign("x"), times, courses, np.array([0, 1, 2]),
                    np.array([9.0] * 3), np.array([10.0] * 3), np.array([5] * 3),
                    np.array([0] * 3), 3)
    rule = {"threshold": 30, "by_day": 14, "also_thresholds": [100]}
    rows = patient_endpoints(arm, rule, 1.0)
    assert rows.responder.tolist() == [True, False, False]  # 60 and 110: above 30 at day 0
    assert rows.responder_at_100.tolist() == [False, True, False]
    longer = patient_endpoints(arm, {**rule, "by_day": 16}, 1.0)
    assert longer.responder_at_100.tolist() == [True, True, False]
    assert [c[0] for c in response_extras(rule)] == ["responder_at_100"]


def test_a_check_reads_a_tier_row_and_refuses_a_level_the_trial_does_not_judge():
    from plateletpd.study.check import CheckError, check_trial

    spec = pp.TrialSpec.create(seed=2, subjects_per_arm=30, arms=[
        {"name": "untreated", "data_arm": "control"}],
        response={"threshold": 50, "by_day": 14, "also_thresholds": [100]})
    row = {"study": "s", "arm": "control", "regimen": "none", "n": "20", "population": "p",
           "day0": "start of treatment", "endpoint": "response_proportion",
           "threshold": "PLT >=100", "day": "", "statistic": "percent", "value": "40",
           "spread_type": "", "spread": "", "source": "constructed for this test"}
    result = check_trial(spec, pd.DataFrame([row]), study="s", replicates=2)
    assert result.table.reading.tolist() == ["responded at 100 by day 14 (also_thresholds)"]
    first = result.replicates[result.replicates.replicate == 0].value.iloc[0]
    from dataclasses import replace

    from plateletpd.study.uncertainty import _replicate_spec
    trial = pp.run_trial(replace(spec, seed=_replicate_spec(spec, 0, None)[0]))
    patients = trial.subjects
    assert first == pytest.approx(100 * patients.head(20).responder_at_100.mean())
    # the summary and the printed table give the tier with its interval
    assert trial.summary.loc["untreated", "responder_at_100_pct"] == pytest.approx(
        100 * patients.responder_at_100.mean())
    assert "PLT>=100 by day 14 % [95% CI]" in arm_table(trial)
    with pytest.raises(CheckError, match=r"add also_thresholds = \[75\]"):
        check_trial(spec, pd.DataFrame([{**row, "threshold": "PLT >=75"}]), study="s",
                    replicates=2)


@pytest.mark.parametrize("change, message", [
    (('treatment = ["rhTPO 15000 U"]', 'treatment = ["rhTPO 15000 U"]\ndoze = 3'),
     "[arms #2]: unknown field 'doze'"),
    (('seed = 20261121', 'seed = -4'), "seed must be"),
    (('name = "hetrombopag 7.5 mg"\ntreatment = ["hetrombopag 7.5 mg"]',
      'name = "hetrombopag 7.5 mg"\ntreatment = ["hetrombopag -7.5 mg"]'),
     "amount"),  # the arm's treatment line, not its [[arms]] header
    (('visit_every_days = 1 ', 'visit_evry_days = 1 '), "did you mean 'visit_every_days'"),
    (('reference_arm = "untreated"', 'reference_arm = "placebo"'), "is not an arm"),
    (('cv = { chemotherapy_sensitivity', 'cv = { chemo_sensitivity'),
     "cannot vary 'chemo_sensitivity'"),
])
def test_invalid_trial_files_name_the_line(tmp_path, change, message):
    text = SPEC.read_text()
    assert change[0] in text
    path = tmp_path / "trial.toml"
    bad = text.replace(*change, 1)
    path.write_text(bad)
    with pytest.raises(TrialSpecError) as error:
        load_trial_spec(path)
    # the line of the changed text (its last line when the change adds one)
    marker = change[1].split("\n")[-1]
    line = bad[:bad.index(marker)].count("\n") + 1
    assert f"{path}, line {line} " in str(error.value) and message in str(error.value)
    assert message in str(error.value)


def test_the_documented_example_trial_file_is_valid(tmp_path):
    docs = Path(__file__).resolve().parents[1] / "docs" / "trial_files.md"
    example = docs.read_text().split("```toml\n")[1].split("```")[0]
    (tmp_path / "example.toml").write_text(example)
    spec = load_trial_spec(tmp_path / "example.toml")
    assert [a.name for a in spec.arms] == ["5 mg", "7.5 mg", "7.5 mg, to 15 mg if < 50 on day 7",
                                           "15 mg"]
    assert spec.arms[2].titrations[0].day == 7 and spec.arms[2].rescue.below == 20
    # the example omits rise: an omitted rule is absent, not a default (issue 16 item 5)
    assert spec.visit_every_days == 3 and spec.response["rise"] is None
    assert spec.response["threshold"] == 100


def test_composite_response_and_fixed_start(tmp_path):
    text = SPEC.read_text().replace("by_day = 14", "by_day = 14\nlater_day = 21\n"
                                    "later_at_least = 400")
    (tmp_path / "composite.toml").write_text(text)
    plain = run_trial(load_trial_spec(SPEC, subjects=40, seed=2)).subjects
    strict = run_trial(load_trial_spec(tmp_path / "composite.toml", subjects=40,
                                       seed=2)).subjects
    # the composite can only remove responders: those without PLT >= 400 on day 21
    assert not np.any(strict.responder & ~plain.responder)
    assert strict.responder.sum() < plain.responder.sum()
    # the file's one-cycle form (an entry level instead of the course's eligibility)
    fixed = one_cycle(SPEC.read_text()).replace("entry_below = 75", "entry_below = false").replace(
        "start_delay = 1 ", "start_delay = 5 ")
    (tmp_path / "fixed.toml").write_text(fixed)
    result = run_trial(load_trial_spec(tmp_path / "fixed.toml", subjects=20, seed=2))
    assert np.allclose(result.subjects.start_day, 5.0)  # everyone, from day 5 of the cycle
    assert (result.summary.enrolled == 20).all()


def test_replicates_repeat_the_trial_with_derived_seeds(tmp_path):
    from plateletpd.study.trial import run_replicates

    text = SPEC.read_text().replace("seed = 20261121", "seed = 20261121\nreplicates = 2")
    (tmp_path / "replicated.toml").write_text(text)
    table = run_replicates(load_trial_spec(tmp_path / "replicated.toml", subjects=20))
    assert len(table) == 2 * 5 and table.seed.nunique() == 2  # 5 arms in trials/yuan2025
    first = table[table.replicate == 0].set_index("arm")["response_pct"]
    second = table[table.replicate == 1].set_index("arm")["response_pct"]
    assert not first.equals(second)  # independent patients in each replicate


def test_any_patient_is_re_simulated_alone_from_seed_and_index():
    from plateletpd.study.trial import patient

    spec = load_trial_spec(SPEC, subjects=60, seed=9)
    result = run_trial(spec)
    table = result.subjects[result.subjects.arm == "rhTPO 15000 U"]
    row = table.iloc[17]
    values, alone = patient(spec, "rhTPO 15000 U", int(row.patient))
    assert alone.n == 1
    assert alone.start_time[0] == pytest.approx(row.start_day, rel=1e-12)
    # the whole course's lowest count (the trial's `nadir` is the treated cycle's)
    assert alone.platelets[0].min() == pytest.approx(row.course_nadir, rel=1e-9)
    with pytest.raises(TrialSpecError, match="did you mean 'rhTPO 15000 U'"):
        patient(spec, "rhTPO 1500 U", 0)


def test_enrolment_judged_on_a_fixed_cycle_day(tmp_path):
    # "chemotherapy delayed by thrombocytopenia": PLT < 100 on day 21 of the cycle
    text = one_cycle(SPEC.read_text()).replace("entry_below = 75 ",
                                               "entry_below = 100\nentry_day = 21 ")
    (tmp_path / "delayed.toml").write_text(text)
    result = run_trial(load_trial_spec(tmp_path / "delayed.toml", subjects=60, seed=4))
    enrolled = result.subjects
    assert np.allclose(enrolled.enrolment_day, 21.0)
    untreated = result.summary.loc["untreated"]
    assert 0 < untreated.enrolled < untreated.screened  # only the slow recoverers qualify


def test_enrolment_at_routine_counts_is_the_first_count_below_after_the_crossing(tmp_path):
    # "PLT < 75 at a routine count" (a clinic counts every few days; a user test,
    # 2026-12-04, found entry at the hourly crossing too early on the way down): with counts
    # every 3 days from day 3, each patient enrols on the first such day whose count is
    # below 75. The same patients (same seed) cross below 75 at a time c (the design
    # without screening); since the count falls through the crossing (and the count at a
    # routine day is judged on the same course), the routine entry is a multiple of 3 in
    # [c, c + 3) for every patient whose count stays below 75 for 3 days, and never before c
    text = one_cycle(SPEC.read_text())
    (tmp_path / "crossing.toml").write_text(text)
    (tmp_path / "routine.toml").write_text(text.replace(
        "entry_below = 75 ", "entry_below = 75\nscreen_every_days = 3\nscreen_from_day = 3 "))
    crossing = run_trial(load_trial_spec(tmp_path / "crossing.toml", subjects=80, seed=4))
    routine = run_trial(load_trial_spec(tmp_path / "routine.toml", subjects=80, seed=4))
    by_crossing = crossing.subjects.set_index(["arm", "patient"]).enrolment_day
    by_routine = routine.subjects.set_index(["arm", "patient"]).enrolment_day
    assert np.allclose(by_routine % 3.0, 0.0) and by_routine.min() >= 3.0
    both = by_routine.index.intersection(by_crossing.index)
    assert len(both) > 0.8 * len(by_crossing)  # few dip below 75 for under 3 days only
    gap = by_routine[both] - by_crossing[both]
    assert gap.min() >= 0.0 and gap.max() < 3.0 + 1e-9
    assert gap.mean() > 0.5  # entry later on average: about half an interval (1.5 days)
    # the first dose follows the routine entry by start_delay (1 day) as after a crossing
    starts = routine.subjects.start_day - routine.subjects.enrolment_day
    assert np.allclose(starts, 1.0)


def test_endpoints_from_entry_do_not_depend_on_an_untreated_arms_start_delay(tmp_path):
    # a sweep user test (2026-12-04): with day 0 at the first dose, an untreated arm
    # "responded" 67.9% with start_delay 1 and 79.4% with 3 (a later, higher part of the
    # recovery, a lower baseline for the rise rule), so later starts looked better. With
    # [response] day0 = "entry" every endpoint counts from enrolment: an untreated arm's
    # patients (no dose, the same patients) have identical endpoints whatever the delay,
    # and a response day from entry is the one from the first dose plus the delay
    text = one_cycle(SPEC.read_text()).replace("[response]", '[response]\nday0 = "entry"')
    runs = {}
    for delay in (1, 3):
        path = tmp_path / f"delay{delay}.toml"
        path.write_text(text.replace("start_delay = 1 ", f"start_delay = {delay} "))
        result = run_trial(load_trial_spec(path, subjects=60, seed=4))
        runs[delay] = result.subjects[result.subjects.arm == "untreated"].reset_index(
            drop=True)
    for column in ("responder", "response_day", "days_to_100", "plt_day_14"):
        pd.testing.assert_series_equal(runs[1][column], runs[3][column])
    first_dose = run_trial(load_trial_spec(
        _write(tmp_path / "first.toml", one_cycle(SPEC.read_text())), subjects=60, seed=4))
    untreated = first_dose.subjects[first_dose.subjects.arm == "untreated"].reset_index(
        drop=True)
    both = untreated.reached_100.astype(bool) & runs[1].reached_100.astype(bool)
    assert both.sum() > 10
    # visits are daily from entry, or from entry + 1 at the first dose: the same grid
    # shifted by one day, so the day PLT >= 100 is first seen shifts by exactly one
    np.testing.assert_allclose(runs[1].days_to_100[both], untreated.days_to_100[both] + 1)
    # and the report says where day 0 is (a fitting user test found it saying "the first
    # treatment morning" for such a trial)
    from plateletpd.study.trial import write_trial

    write_trial(result, tmp_path / "out")
    report = (tmp_path / "out" / "report.md").read_text()
    assert "Day 0 is the enrolment day" in report
    assert "Day 0 is the first treatment morning" not in report


def _write(path, text):
    path.write_text(text)
    return path


def test_routine_counts_are_refused_with_a_fixed_day_or_without_a_level(tmp_path):
    text = one_cycle(SPEC.read_text())
    for extra, fragment in (("entry_day = 21\nscreen_every_days = 3", "give one of them"),
                            ("screen_from_day = 3", "give screen_every_days too"),
                            ("screen_every_days = 0", "screen_every_days")):
        (tmp_path / "bad.toml").write_text(text.replace("entry_below = 75 ",
                                                        f"entry_below = 75\n{extra} "))
        with pytest.raises(TrialSpecError, match=fragment):
            load_trial_spec(tmp_path / "bad.toml", subjects=10)


def test_the_arm_table_counts_enrolled_patients_already_at_the_threshold(tmp_path):
    # a CIT user test (2026-12-04): enrolled on the planned day at PLT < 100, treated from
    # the next morning, a third of the patients were at 100 or more at day 0 and counted as
    # non-responders, which only report.md's screening table showed; the printed table now
    # gives their number when there are any
    text = one_cycle(SPEC.read_text()).replace("entry_below = 75 ",
                                               "entry_below = 100\nentry_day = 21 ")
    (tmp_path / "delayed.toml").write_text(text)
    result = run_trial(load_trial_spec(tmp_path / "delayed.toml", subjects=60, seed=4))
    table = arm_table(result)
    column = "already >= 100 at day 0 (non-responders)"
    counts = result.subjects.groupby("arm").at_threshold_at_start.sum()
    assert counts.sum() > 0
    for arm, count in counts.items():
        assert table.loc[arm, column] == count


def test_command_line_overrides_are_blamed_on_the_command_line():
    with pytest.raises(TrialSpecError, match=r"\(--n\) must be a positive integer") as error:
        load_trial_spec(SPEC, subjects=0)
    assert "line" not in str(error.value)


# ---------------------------------------------------------------- between-patient variability
NO_CV_TRIAL = """
[trial]
name = "hetrombopag_cit"
model = "cit_marrow_reserve"
seed = 3
subjects_per_arm = 150
[enrolment]
entry_below = 75
[response]
threshold = 100
by_day = 14
[[arms]]
name = "placebo"
[[arms]]
name = "hetrombopag"
treatment = ["hetrombopag 7.5 mg"]
"""


def test_a_trial_without_cvs_gets_the_variability_its_fit_was_made_with(tmp_path):
    import tomllib

    from plateletpd.model.library import bundled_fits_dir

    path = tmp_path / "trial.toml"
    path.write_text(NO_CV_TRIAL)
    spec = load_trial_spec(path)
    # the default CIT model and its bundled fit; the fit's configuration states its CVs
    assert spec.model.name == "cit_marrow_reserve"
    config = tomllib.loads((bundled_fits_dir() / "cit_marrow_reserve_calibration"
                            / "config.toml").read_text())["population"]
    assert set(spec.variability.names) == set(config["cv"])
    transforms = config.get("transforms", {})
    assert dict(zip(spec.variability.names, spec.variability.transforms)) == {
        name: transforms.get(name, "lognormal") for name in config["cv"]}
    assert "CVs from the fit's [population]" in spec.parameters_from
    # with that spread the patients differ: a response rate strictly between 0 and 100%
    # (without it every patient is the typical one and each arm is 0% or 100%)
    result = run_trial(spec)
    assert all(0 < pct < 100 for pct in result.summary.response_pct)


def test_an_explicit_empty_cv_means_alike_patients_and_a_trial_without_any_warns(tmp_path):
    from plateletpd.study.trial import NoVariabilityWarning

    path = tmp_path / "trial.toml"
    path.write_text(NO_CV_TRIAL.replace("[enrolment]", "[population]\ncv = {}\n[enrolment]"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", NoVariabilityWarning)
        assert load_trial_spec(path).variability.names == ()
    path.write_text(NO_CV_TRIAL.replace('seed = 3', 'seed = 3\nfit = "none"'))
    with pytest.warns(NoVariabilityWarning, match=r"\[population\] cv"):
        assert load_trial_spec(path).variability.names == ()


def test_the_warnings_of_a_trial_run_are_in_its_report_and_provenance(tmp_path):
    # an ITP user test (2026-12-04): a run warned that every patient was alike, but its
    # report.md did not say so, and read later the 100% [98.5, 100] looked like a result
    import json

    from plateletpd.cli import main
    from plateletpd.study.trial import NoVariabilityWarning

    path = tmp_path / "trial.toml"
    path.write_text(NO_CV_TRIAL.replace('seed = 3', 'seed = 3\nfit = "none"'))
    with pytest.warns(NoVariabilityWarning):
        assert main(["trial", str(path), "--n", "10", "--out", str(tmp_path / "out")]) == 0
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## Warnings given by the run" in report
    assert "NoVariabilityWarning" in report and "[population] cv is absent" in report
    record = json.loads((tmp_path / "out" / "provenance.json").read_text())
    assert any("NoVariabilityWarning" in text for text in record["warnings"])
    # a run without warnings has no such section and an empty list
    path.write_text(NO_CV_TRIAL)
    assert main(["trial", str(path), "--n", "10", "--out", str(tmp_path / "quiet")]) == 0
    assert "## Warnings" not in (tmp_path / "quiet" / "report.md").read_text()
    assert json.loads((tmp_path / "quiet" / "provenance.json").read_text())["warnings"] == []


def test_a_fit_folder_with_an_unreadable_configuration_is_a_clear_error(tmp_path):
    import shutil

    from plateletpd.model.library import bundled_fits_dir

    fit = tmp_path / "fit"
    shutil.copytree(bundled_fits_dir() / "cit_marrow_reserve_calibration", fit)
    (fit / "config.toml").write_text("[population\ncv = {")  # broken TOML
    path = tmp_path / "trial.toml"
    path.write_text(NO_CV_TRIAL.replace("seed = 3", f'seed = 3\nfit = "{fit}"'))
    with pytest.raises(TrialSpecError, match=r"\[trial\] fit.*not a readable fit configuration"):
        load_trial_spec(path)


def test_a_relative_model_path_is_read_from_the_trial_files_folder(tmp_path, monkeypatch):
    # a trial file next to its own copy of a model file (models/mine.toml) must load that
    # copy whatever directory the command is run from, as a fit configuration's paths are
    # read from the configuration's folder; a bundled name stays a bundled name
    from plateletpd.model.definition import load_model

    (tmp_path / "models").mkdir()
    copy = tmp_path / "models" / "mine.toml"
    copy.write_text(load_model("cit_marrow_reserve").text + "\n# my copy\n")
    (tmp_path / "study").mkdir()
    path = tmp_path / "study" / "trial.toml"
    path.write_text(NO_CV_TRIAL.replace('model = "cit_marrow_reserve"',
                                        'model = "../models/mine.toml"\nfit = "none"'))
    elsewhere = tmp_path / "elsewhere" / "deeper"  # where ../models/mine.toml is not
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    spec = load_trial_spec(path)
    assert spec.model.text == copy.read_text()
    assert Path(spec.model.path).resolve() == copy.resolve()
    # a path that is not there is named as the trial file's folder sees it
    path.write_text(NO_CV_TRIAL.replace('model = "cit_marrow_reserve"',
                                        'model = "../models/absent.toml"'))
    with pytest.raises(TrialSpecError, match=r"\[trial\] model.*study/\.\./models/absent"
                       r".*read from the trial file's folder"):
        load_trial_spec(path)


def test_the_dropped_patients_warning_says_where_the_cvs_came_from():
    # a user test (2026-12-04): the warning told a user who had set no CVs to "lower the
    # CVs under [population] cv"; with the fit's CVs it now says they are the fit's
    from plateletpd.study.trial import TrialSpec, _cohort, _dropped

    arms = [{"name": "untreated"}]
    response = {"threshold": 100, "by_day": 14}
    inherited = TrialSpec.create(seed=1, subjects_per_arm=4, arms=arms, response=response)
    own = TrialSpec.create(seed=1, subjects_per_arm=4, arms=arms, response=response,
                              population={"cv": {"chemotherapy_sensitivity": 0.3}})
    assert inherited.extra["cv_from_fit"] and not own.extra["cv_from_fit"]
    for spec, phrase in ((inherited, "the CVs are the fit's"),
                         (own, "lower the CVs under [population] cv")):
        matrix = _cohort(spec, 0)
        names = list(spec.model.parameters)
        matrix[0, names.index("reserve_regeneration_rate")] = 5.0  # above its bound 0.5
        valid = np.arange(len(matrix)) > 0
        text = _dropped(spec, spec.arms[0], matrix, valid)
        assert phrase in text and "reserve_regeneration_rate outside" in text


def test_an_arm_may_enrol_at_its_own_count_in_a_one_cycle_trial(tmp_path):
    # groups defined by the count at the start of treatment (Yang 2024: rhTPO started at
    # PLT 25-50 or <= 25): an arm's entry_below replaces [enrolment] entry_below; patients
    # enrol as their count falls through the arm's level, so they start between levels
    text = one_cycle(SPEC.read_text()).replace(
        'name = "rhTPO 15000 U"', 'name = "rhTPO 15000 U"\nentry_below = 25', 1)
    (tmp_path / "levels.toml").write_text(text)
    result = run_trial(load_trial_spec(tmp_path / "levels.toml", subjects=60, seed=4))
    s = result.subjects
    low = s[s.arm == "rhTPO 15000 U"]
    others = s[s.arm != "rhTPO 15000 U"]
    # the crossing is judged on the true hourly course; the day-0 visit is measured with
    # the model's platelet error and a day later (start_delay 1), so compare the arms' means
    assert len(low) and low.platelets_at_start.mean() < 25
    assert 50 < others.platelets_at_start.mean() < 75
    # the arm's patients cross 25 later in their fall than the others cross 75
    assert low.enrolment_day.median() > others.enrolment_day.median()


def test_response_rates_by_more_days_than_by_day(tmp_path):
    # "53.4% by day 5, 82.8% by day 11, 96.6% by day 18" (a user test's avatrombopag
    # cohort) needed data rows or patients.csv: also_by_days gives each day's flag and rate
    text = SPEC.read_text().replace("by_day = 14", "by_day = 14\nalso_by_days = [5, 14, 21]",
                                    1)
    (tmp_path / "days.toml").write_text(text)
    result = run_trial(load_trial_spec(tmp_path / "days.toml", subjects=40, seed=5))
    s = result.subjects
    # the same rule as responder: by day 14 it IS the responder flag
    assert np.array_equal(s.responder_by_day_14.astype(bool), s.responder.astype(bool))
    for day in (5, 21):
        expected = s.response_day.to_numpy() <= day   # first responding visit by that day
        assert np.array_equal(s[f"responder_by_day_{day}"].astype(bool), expected)
    early, late = s.responder_by_day_5.astype(bool), s.responder_by_day_21.astype(bool)
    assert (early <= late).all() and early.sum() < late.sum()
    summary = result.summary
    for name, table in s.groupby("arm"):
        assert summary.loc[name, "responder_by_day_5_pct"] == pytest.approx(
            100 * table.responder_by_day_5.mean())
    text = text.replace("also_by_days = [5, 14, 21]", "also_by_days = [5, 90]")
    (tmp_path / "late.toml").write_text(text)
    with pytest.raises(TrialSpecError, match=r"also_by_days.*day 90 is after the follow-up"):
        load_trial_spec(tmp_path / "late.toml")


def test_sustained_response_counts_the_share_of_visits_with_a_response(tmp_path):
    # Mei 2021 (J Hematol Oncol 14:37, Table 2) reports "responded at >= 75% of assessments"
    # (weekly visits, 8 weeks) beside "responded at least once"; a patient whose count dips
    # below 50 at two of the eight weekly visits met the rule at 6 of 8 = 75% exactly
    times = np.arange(0, 60 * 24 + 1) / 24
    at_visit = {0: 13, 7: 60, 14: 40, 21: 60, 28: 60, 35: 60, 42: 40, 49: 60, 56: 60}
    course = np.array([at_visit[7 * min(int(t // 7), 8)] for t in times], dtype=float)
    arm = ArmResult(ArmDesign("x"), times, course[None, :], np.array([0]), np.array([0.0]),
                    np.array([0.0]), np.array([5]), np.array([0]), 1)
    response = {"threshold": 50, "rise": None, "by_day": 56}

    def sustained(**rule):
        return bool(patient_endpoints(arm, {**response, **rule}, 7.0).iloc[0]
                    .sustained_responder)
    assert sustained(sustained_share=0.75)           # 6 of 8
    assert not sustained(sustained_share=0.8)        # 6 of 8 < 80%
    # a window: days 28-56 hold 4 responses in 5 visits (80%); days 35-42 one in two
    assert sustained(sustained_share=0.8, sustained_from_day=28)
    assert not sustained(sustained_share=0.75, sustained_from_day=35, sustained_to_day=42)
    # the trial file: flag, summary percentage and dictionary; bad windows refused
    text = SPEC.read_text().replace("by_day = 14", "by_day = 14\nsustained_share = 0.5", 1)
    (tmp_path / "sustained.toml").write_text(text)
    result = run_trial(load_trial_spec(tmp_path / "sustained.toml", subjects=30, seed=5))
    s = result.subjects
    assert (s.sustained_responder.astype(bool) <= s.responder.astype(bool)).all()
    for name, table in s.groupby("arm"):
        assert result.summary.loc[name, "sustained_responder_pct"] == pytest.approx(
            100 * table.sustained_responder.mean())
    for extra, message in (("sustained_from_day = 7", "needs sustained_share"),
                           ("sustained_share = 0.5\nsustained_to_day = 400",
                            r"sustained_to_day must be a number in \(0, 42\]"),
                           ("sustained_share = 0",
                            r"sustained_share must be a number in \(0, 1\]"),
                           ("sustained_share = 0.5\nsustained_from_day = 13.2\n"
                            "sustained_to_day = 13.8", "no visit")):
        bad = SPEC.read_text().replace("by_day = 14", "by_day = 14\n" + extra, 1)
        (tmp_path / "bad.toml").write_text(bad)
        with pytest.raises(TrialSpecError, match=message):
            load_trial_spec(tmp_path / "bad.toml")


def test_a_follow_up_shorter_than_the_response_window_is_warned_not_silent(tmp_path):
    # a user test (2026-12-04): without a course, follow_up_days counts from the
    # chemotherapy; treatment from day 7 with a 14-day follow-up and by_day 14 left every
    # day-14 count empty and the response judged over 7 days, without a word
    import plateletpd as pp
    from plateletpd.study.trial import ShortFollowUpWarning

    def spec(follow_up):
        return pp.TrialSpec.create(seed=3, subjects_per_arm=20, follow_up_days=follow_up,
                                   enrolment={"entry_below": False, "start_delay": 7},
                                   arms=[{"name": "untreated"}],
                                   response={"threshold": 100, "by_day": 14})
    with pytest.warns(ShortFollowUpWarning, match=r"20 of 20 .* at least 21"):
        result = run_trial(spec(14))
    assert result.subjects.plt_day_14.isna().all()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ShortFollowUpWarning)
        assert run_trial(spec(21)).subjects.plt_day_14.notna().all()


def test_stop_after_fall_waits_for_a_count_below_the_level_before_stopping(tmp_path):
    # a user test (2026-12-04): rhIL-11 from a fixed day after chemotherapy "until PLT >=
    # 80 after the nadir" could not be written: stop_at stops at once while the count is
    # still high (the median patient got 1 of 10 doses). With stop_after_fall the drug
    # stops at the first morning at or above 80 after one below it
    import plateletpd as pp

    def arm(**stop):
        spec = pp.TrialSpec.create(
            seed=4, subjects_per_arm=40, follow_up_days=35,
            population={"covariates": {"body_weight": 65}},  # the dose is per kg
            enrolment={"entry_below": False, "start_delay": 3},
            arms=[{"name": "rhIL-11", "treatment": ["rhIL-11 50 ug/kg"], "max_days": 14,
                   "stop_at": 80, **stop}], response={"threshold": 100, "by_day": 14})
        return run_trial(spec).subjects
    plain, after = arm(), arm(stop_after_fall=True)
    high = plain.platelets_at_start >= 80
    assert high.mean() > 0.5
    # plain stop_at: a patient at or above 80 on day 1 stops after the first dose
    assert (plain.treatment_doses[high] == 1).mean() > 0.9
    # after a fall: more doses, and a patient stops only once the count came back to 80
    # after being below it (or never fell below 80: treated to max_days)
    assert after.treatment_doses.median() > plain.treatment_doses.median()
    fell = after.nadir < 80
    assert (after.treatment_doses[~fell] == 14).all()
    assert (fell & (after.treatment_doses < 14)).any()   # some stopped on recovering
    with pytest.raises(TrialSpecError, match="stop_after_fall qualifies stop_at"):
        pp.TrialSpec.create(seed=4, subjects_per_arm=5, arms=[
            {"name": "x", "treatment": ["rhIL-11 50 ug/kg"], "stop_at": False,
             "stop_after_fall": True}])


def test_durations_and_loss_of_response_on_a_constructed_course():
    # Mei 2021 Table 2 reports the maximum continuous and the total duration of response,
    # and Mei 2022 (J Thromb Haemost, stage 3) the time from the start of tapering to the
    # first relapse; a user test (2026-12-04) could compute neither. Weekly counts 60, 40,
    # 60, 60, 60, 40, 60, 60 on days 7-56 (threshold 50): the longest run is days 21-35
    # (3 visits, 21 days), the total 6 visits (42 days); from day 7 (60, at or above 50)
    # the first visit below 50 is day 14: lost after 7 days
    times = np.arange(0, 60 * 24 + 1) / 24
    at_visit = {0: 13, 7: 60, 14: 40, 21: 60, 28: 60, 35: 60, 42: 40, 49: 60, 56: 60}
    course = np.array([at_visit[7 * min(int(t // 7), 8)] for t in times], dtype=float)
    arm = ArmResult(ArmDesign("x"), times, course[None, :], np.array([0]), np.array([0.0]),
                    np.array([0.0]), np.array([5]), np.array([0]), 1)

    def row(**response):
        return patient_endpoints(arm, {"threshold": 50, "rise": None, "by_day": 56,
                                       **response}, 7.0).iloc[0]
    durations = row(durations=True)
    assert durations.longest_response_days == 21 and durations.total_response_days == 42
    lost = row(loss_below=50, loss_from_day=7)
    assert lost.lost_response == 1 and lost.days_to_loss == 7
    kept = row(loss_below=50, loss_from_day=49)   # 60 on day 56: not lost, censored there
    assert kept.lost_response == 0 and kept.days_to_loss == 7
    below = row(loss_below=50, loss_from_day=14)  # 40 on day 14: not a responder then
    assert np.isnan(below.lost_response) and np.isnan(below.days_to_loss)


def test_loss_of_response_after_stopping_the_drug_is_summarised(tmp_path):
    # the ITP model off hetrombopag after 8 weeks: every patient at or above 30 on day 56
    # falls below it again (the drug's effect is the only lift in chronic ITP: the model's
    # untreated state is the patient's own, with the destruction's fluctuation off: it
    # would let a patient at a low point of its destruction stay above 30), and the
    # summary's Kaplan-Meier median is that of the per-patient days
    from plateletpd.study.statistics import kaplan_meier

    text = """
[trial]
name = "off"
model = "itp_thrombopoiesis"
fit = "default"
seed = 1
subjects_per_arm = 60
follow_up_days = 112
visit_every_days = 7
[population]
typical = { platelets_baseline = 13.0, destruction_fluctuation_sd = 0 }
cv = { platelets_baseline = 0.8, immune_destruction = 0.8 }
covariates = { itp_duration_months = 36 }
[enrolment]
chemotherapy = ""
entry_below = 30
start_delay = 0
[response]
threshold = 50
by_day = 56
durations = true
loss_below = 30
loss_from_day = 56
[[arms]]
name = "8 weeks"
treatment = ["hetrombopag 5 mg"]
stop_at = false
max_days = 56
"""
    (tmp_path / "off.toml").write_text(text)
    result = run_trial(load_trial_spec(tmp_path / "off.toml"))
    s = result.subjects
    judged = s.lost_response.notna()
    assert judged.sum() > 10 and (s.lost_response[judged] == 1).all()
    curve = kaplan_meier(s.days_to_loss[judged], s.lost_response[judged] > 0)
    assert result.summary.iloc[0].median_days_to_loss == curve.median()
    assert np.isnan(s.longest_response_days[~s.responder.astype(bool)]).all()
    with pytest.raises(TrialSpecError, match="needs both loss_below"):
        (tmp_path / "bad.toml").write_text(text.replace("loss_from_day = 56\n", ""))
        load_trial_spec(tmp_path / "bad.toml")


def test_min_days_gives_the_first_doses_whatever_the_stop_rule(tmp_path):
    # "avatrombopag for 5-10 days" (a user test's cohort): at least 5 doses, then the stop
    # rule. With a stop at 60 most of the arm would stop within days of starting below 75
    base = one_cycle(SPEC.read_text())
    arm = base.index('name = "rhTPO 15000 U"')
    low_stop = base[:arm] + base[arm:].replace("stop_at = 100\nstop_rise = 50",
                                               "stop_at = 60", 1)
    at_least = low_stop.replace("stop_at = 60", "stop_at = 60\nmin_days = 5", 1)
    doses = {}
    for name, text in (("plain", low_stop), ("min5", at_least)):
        (tmp_path / f"{name}.toml").write_text(text)
        result = run_trial(load_trial_spec(tmp_path / f"{name}.toml", subjects=60, seed=3))
        s = result.subjects
        doses[name] = s[s.arm == "rhTPO 15000 U"].treatment_doses.to_numpy()
    assert (doses["plain"] < 5).any()                 # the stop rule alone stops earlier
    assert (doses["min5"] >= 5).all()                 # every patient gets the first five
    assert (doses["min5"] >= doses["plain"]).all()
    bad = low_stop.replace("stop_at = 60", "stop_at = 60\nmin_days = 20", 1)
    (tmp_path / "bad.toml").write_text(bad)
    with pytest.raises(TrialSpecError, match=r"min_days must be a whole number of days from "
                                             r"0 to max_days \(14\), got 20"):
        load_trial_spec(tmp_path / "bad.toml")


def test_a_relative_fit_folder_is_read_from_the_trial_files_folder(tmp_path, monkeypatch):
    # a fitting user test (2026-12-04): fit = "out3" beside the trial file failed when the
    # command ran from another directory ("no fit at 'out3'"), while model paths are read
    # from the trial file's folder; a folder that is not there is still looked for as given
    import shutil

    from plateletpd.model.library import bundled_fits_dir

    study = tmp_path / "study"
    study.mkdir()
    shutil.copytree(bundled_fits_dir() / "cit_marrow_reserve_calibration", study / "myfit")
    path = study / "trial.toml"
    path.write_text(NO_CV_TRIAL.replace("seed = 3", 'seed = 3\nfit = "myfit"'))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    spec = load_trial_spec(path)
    assert spec.parameters_from.startswith(f"fit {study / 'myfit'}"), spec.parameters_from
    path.write_text(NO_CV_TRIAL.replace("seed = 3", 'seed = 3\nfit = "nofit"'))
    with pytest.raises(TrialSpecError, match="no fit at 'nofit'"):
        load_trial_spec(path)


def test_a_trial_can_be_loaded_with_another_response_rule_and_a_bad_one_is_named(capsys):
    # Mei 2021 Table 2 reports the IWG response (PLT >= 30 and a doubling) beside the
    # phase III's PLT >= 50; a trial judges one rule, so the same file is checked with the
    # other (plateletpd check --response, a validation check's response)
    from plateletpd.cli import main

    path = bundled_trial("itp_phase3")
    iwg = load_trial_spec(path, response={"threshold": 30, "rise_fold": 2, "combine": "all"})
    plain = load_trial_spec(path)
    assert (iwg.response["threshold"], iwg.response["rise_fold"], iwg.response["combine"]) \
        == (30, 2, "all")
    assert plain.response["threshold"] == 50 and not plain.response.get("rise_fold")
    assert iwg.response["by_day"] == plain.response["by_day"]   # the rest is the file's
    with pytest.raises(TrialSpecError, match=r"\[response\] combine must be one of"):
        load_trial_spec(path, response={"combine": "both"})
    assert main(["check", "itp_phase3", "--data", "data/itp_summary.csv",
                 "--response", "threshold"]) == 2
    assert "--response expects KEY=VALUE" in capsys.readouterr().err


def test_an_entry_band_in_a_trial_file_groups_patients_by_the_count_that_enrolled_them(
        tmp_path):
    # Yang 2024's groups (a user test, 2026-12-04): [enrolment] entry_between applies to
    # every arm, an arm's own replaces it; without routine counts the band is refused with
    # the fix, blamed on the file
    text = one_cycle(SPEC.read_text())
    (tmp_path / "crossing.toml").write_text(text.replace(
        "entry_below = 75 ", "entry_below = 75\nentry_between = [0, 40] "))
    with pytest.raises(TrialSpecError, match="screen_every_days") as error:
        load_trial_spec(tmp_path / "crossing.toml", subjects=10)
    assert "crossing.toml" in str(error.value)
    routine = text.replace("entry_below = 75 ", "entry_below = 75\nscreen_every_days = 7\n"
                           "entry_between = [0, 40] ")
    routine = changed(routine, 'name = "untreated"', 'name = "untreated"\n'
                      'entry_between = [40, 75]')
    (tmp_path / "routine.toml").write_text(routine)
    spec = load_trial_spec(tmp_path / "routine.toml", subjects=80, seed=4)
    assert {arm.name: arm.entry_between for arm in spec.arms}["untreated"] == (40.0, 75.0)
    assert all(arm.entry_between == (0.0, 40.0) for arm in spec.arms
               if arm.name != "untreated")
    result = run_trial(spec)
    # enrolled at the first weekly count below 75 (treated the next morning), in the band
    for design in spec.arms:
        table = result.subjects[result.subjects.arm == design.name]
        assert len(table) and np.allclose(table.enrolment_day % 7.0, 0.0)
        low, high = design.entry_between
        assert table.platelets_at_enrolment.between(low, high - 1e-9).all()
        assert (table.platelets_at_enrolment < 75.0).all()


def test_a_two_trigger_rescue_transfuses_each_patient_at_their_own_level(tmp_path,
                                                                         monkeypatch):
    # two user tests (2026-12-04, 2026-12-05) wanted the usual protocol "transfuse below 10,
    # or below 20 with fever or bleeding" (Triulzi 2020 Hematology Am Soc Hematol Educ
    # Program 2020:518: a threshold < 10 in stable patients, higher with fever, sepsis or
    # bleeding). A share of patients (drawn from the seed) gets the higher trigger. A rescue
    # acts only on its own patient, so each patient's course equals the one-trigger run at
    # that patient's level: the rule is exactly the two one-level rules, patient by patient
    text = one_cycle(SPEC.read_text()).replace('chemotherapy = "chemotherapy 1 dose d1"',
                                               'chemotherapy = "chemotherapy 1.8 dose d1"')
    text = text.replace("rescue = { below = 10 }", "rescue = { RESCUE }")
    runs = {}
    for name, rule in (("low", "below = 10"), ("high", "below = 20"),
                       ("two", "below = 10, at_risk_below = 20, at_risk_share = 0.3")):
        path = _write(tmp_path / f"{name}.toml", text.replace("RESCUE", rule))
        runs[name] = run_trial(load_trial_spec(path, subjects=80, seed=4)).subjects
    two = runs["two"]
    assert set(two.transfusion_trigger.unique()) == {10.0, 20.0}
    assert runs["low"].transfusion_trigger.isna().all()
    share = (two.transfusion_trigger == 20).mean()
    assert 0.15 < share < 0.45  # 0.3 of the patients, binomial spread over ~250 enrolled
    columns = ["transfusions", "nadir", "days_below_20", "plt_day_14", "responder"]
    for level, name in ((10.0, "low"), (20.0, "high")):
        mine = two.transfusion_trigger == level
        pd.testing.assert_frame_equal(two.loc[mine, columns].reset_index(drop=True),
                                      runs[name].loc[mine, columns].reset_index(drop=True))
    assert runs["high"].transfusions.sum() > runs["low"].transfusions.sum() > 0
    # the same patients are at risk whatever the chunk size
    monkeypatch.setattr(trial_module, "CHUNK", 7)
    chunked = run_trial(load_trial_spec(tmp_path / "two.toml", subjects=80, seed=4)).subjects
    assert chunked.transfusion_trigger.equals(two.transfusion_trigger)


def test_a_two_trigger_rescue_needs_both_keys_and_a_higher_level(tmp_path):
    text = one_cycle(SPEC.read_text())
    for rule, fragment in (("below = 10, at_risk_below = 20", "go together"),
                           ("below = 10, at_risk_below = 5, at_risk_share = 0.2",
                            "must be above below"),
                           ("below = 10, at_risk_below = 20, at_risk_share = 1.5",
                            "at_risk_share")):
        path = _write(tmp_path / "bad.toml", text.replace("rescue = { below = 10 }",
                                                          f"rescue = {{ {rule} }}", 1))
        with pytest.raises(TrialSpecError, match=fragment):
            load_trial_spec(path, subjects=10)


def test_the_median_count_on_treatment_is_read_from_the_visits_the_doses_span(tmp_path):
    # Al-Samkari 2021 (a user test, 2026-12-04/05): response = "median platelet count on
    # treatment >= 75 and >= 30 above baseline". Replayed here from the patients' own kept
    # courses: daily visits, doses every morning until a stop at PLT >= 100 (the Yuan file's
    # rule), so the window is day 1 to the visit after the last dose; untreated: NaN
    text = one_cycle(SPEC.read_text())
    result = run_trial(load_trial_spec(_write(tmp_path / "t.toml", text), subjects=40,
                                       seed=4))
    s = result.subjects
    assert s.loc[s.arm == "untreated", "median_plt_on_treatment"].isna().all()
    treated = s[s.arm == "rhTPO 15000 U"].reset_index(drop=True)
    days, curves = result.curves["rhTPO 15000 U"]
    checked = 0
    for row, curve in zip(treated.itertuples(), curves):
        doses = int(row.treatment_doses)  # daily from day 0: the last dose on day doses-1
        visits = np.arange(1, doses + 1)
        expected = np.median(np.interp(visits, days, curve))
        assert row.median_plt_on_treatment == pytest.approx(expected, rel=1e-6)
        checked += 1
    assert checked > 10


def test_a_trials_record_names_the_exact_fit_values_by_their_hash(tmp_path):
    # a user test (2026-12-05): the record said fit "default" and the fit's name, which a
    # rewritten fit folder keeps; the hash of its params.json tells two fits apart
    import hashlib
    import shutil

    from plateletpd.model.library import bundled_fits_dir

    spec = load_trial_spec(SPEC, subjects=10)
    record = trial_provenance(spec)
    bundled = bundled_fits_dir() / "cit_marrow_reserve_calibration" / "params.json"
    assert record["fit_sha256"] == hashlib.sha256(bundled.read_bytes()).hexdigest()
    folder = tmp_path / "myfit"
    shutil.copytree(bundled.parent, folder)
    (folder / "params.json").write_text(bundled.read_text() + "\n")
    text = SPEC.read_text().replace('fit = "default"', f'fit = "{folder.as_posix()}"', 1)
    other = trial_provenance(load_trial_spec(_write(tmp_path / "t.toml", text), subjects=10))
    assert other["fit_sha256"] != record["fit_sha256"]
    none = SPEC.read_text().replace('fit = "default"', 'fit = "none"', 1)
    assert trial_provenance(load_trial_spec(_write(tmp_path / "n.toml", none),
                                            subjects=10))["fit_sha256"] is None


VERSUS_TRIAL = """
[trial]
name = "groups_by_entry_count"
seed = 4
subjects_per_arm = 120
[enrolment]
chemotherapy = "chemotherapy 1.4 dose d1"
entry_below = 75
screen_every_days = 7
[response]
threshold = 100
by_day = 14
[[arms]]
name = "untreated at < 40"
entry_between = [0, 40]
[[arms]]
name = "rhTPO at < 40"
treatment = ["rhTPO 15000 U"]
entry_between = [0, 40]
VERSUS_LOW
[[arms]]
name = "untreated at 40-75"
entry_between = [40, 75]
[[arms]]
name = "rhTPO at 40-75"
treatment = ["rhTPO 15000 U"]
entry_between = [40, 75]
versus = "untreated at 40-75"
"""


def test_an_arm_is_compared_with_its_own_versus_arm(tmp_path):
    # a user test (2026-12-05, Yang 2024's groups by the count at the start): each treated
    # group belongs beside its own untreated group, not beside the first arm of the file.
    # differences.csv pairs each arm with its versus arm, else the trial's reference
    path = _write(tmp_path / "groups.toml",
                  VERSUS_TRIAL.replace("VERSUS_LOW", 'versus = "untreated at < 40"'))
    result = run_trial(load_trial_spec(path))
    pairs = dict(zip(result.differences.arm, result.differences.versus))
    assert pairs == {"rhTPO at < 40": "untreated at < 40",
                     "untreated at 40-75": "untreated at < 40",   # the reference (first arm)
                     "rhTPO at 40-75": "untreated at 40-75"}
    subjects = result.subjects
    for row in result.differences.itertuples():
        expected = 100.0 * (subjects[subjects.arm == row.arm].responder.mean()
                            - subjects[subjects.arm == row.versus].responder.mean())
        assert row.response_difference_pct_points == pytest.approx(expected)
    write_trial(result, tmp_path / "out")
    assert "each arm against its versus arm" in (tmp_path / "out" / "report.md").read_text()
    for versus, fragment in (('versus = "untreated at <40"', "is not an arm"),
                             ('versus = "rhTPO at < 40"', "names the arm itself")):
        bad = _write(tmp_path / "bad.toml", VERSUS_TRIAL.replace("VERSUS_LOW", versus))
        with pytest.raises(TrialSpecError, match=fragment) as error:
            load_trial_spec(bad)
        assert "versus" in str(error.value)


def test_differences_compare_the_nadir_visit_counts_and_transfusions(tmp_path):
    # a user test (2026-12-05, Zhu 2021's abstract compares nadir, day-5/7/10 counts and
    # transfusions between arms): differences.csv gives each, recomputed here from the
    # patients (mean difference with a Welch interval; share transfused, Wald)
    text = VERSUS_TRIAL.replace("VERSUS_LOW", "").replace(
        "by_day = 14", "by_day = 14\nat_visits = [5, 10]").replace(
        'name = "untreated at < 40"', 'name = "untreated at < 40"\nrescue = { below = 20 }')
    result = run_trial(load_trial_spec(_write(tmp_path / "t.toml", text)))
    subjects, differences = result.subjects, result.differences.set_index("arm")
    base = subjects[subjects.arm == "untreated at < 40"]
    arm = subjects[subjects.arm == "rhTPO at < 40"]
    row = differences.loc["rhTPO at < 40"]
    for column in ("nadir", "plt_day_5", "plt_day_10"):
        one, zero = arm[column].dropna(), base[column].dropna()
        assert row[f"{column}_difference"] == pytest.approx(one.mean() - zero.mean())
        # 1.959964: the normal 97.5th percentile (study/statistics.py Z95), Welch's interval
        half = 1.959964 * math.sqrt(one.var() / len(one) + zero.var() / len(zero))
        assert row[f"{column}_difference_upper"] - row[f"{column}_difference"] == \
            pytest.approx(half, rel=1e-4)
    shares = (arm.transfusions > 0).mean() - (base.transfusions > 0).mean()
    assert row["transfusions_share_difference_pct_points"] == pytest.approx(100 * shares)
    assert (base.transfusions > 0).any()  # the rule transfused someone: not a 0 - 0
    dictionary = pp.write_trial(result, tmp_path / "out") and pd.read_csv(
        tmp_path / "out" / "data_dictionary.csv", keep_default_na=False)
    listed = set(dictionary.column[dictionary.file == "differences.csv"])
    assert {"nadir_difference", "plt_day_5_difference",
            "transfusions_share_difference_pct_points"} <= listed
