"""Trial outputs (issue 16 items 5, 9, 10): the day-0 convention on constructed courses,
analysis-ready tables with a data dictionary, figures that mark the design, clear failures,
and the README's Python examples run as written."""

import math
import re
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from helpers import one_cycle, two_arm_trial

import plateletpd as pp
from plateletpd.study.cohort import ArmDesign, ArmResult
from plateletpd.study.sweep import (
    parse_grid,
    run_sweep,
    sweep_dictionary,
    sweep_figures,
)
from plateletpd.study.trial import (
    DroppedPatientsWarning,
    TrialSpecError,
    _summarise,
    arm_table,
    bundled_trial,
    data_dictionary,
    load_trial_spec,
    patient_endpoints,
    run_trial,
    trial_figures,
    write_trial,
)

matplotlib.use("Agg")
ROOT = Path(__file__).resolve().parents[1]
RULE = {"threshold": 100, "rise": 50, "by_day": 14}  # the Chinese CIT definition (yuan2025)


def constructed_arm(*day0_counts: float) -> ArmResult:
    """One patient per entry: treatment starts at t = 10 d with that count at day 0, and the
    count rises by exactly 10 x10^9/L per day from then on (a straight line, so every visit
    value can be written down by hand)."""
    times = np.arange(0, 40 * 24 + 1) / 24
    courses = np.array([np.clip(c + 10 * (times - 10), 5, None) for c in day0_counts])
    n = len(day0_counts)
    return ArmResult(ArmDesign("x"), times, courses, np.arange(n), np.full(n, 9.0),
                     np.full(n, 10.0), np.full(n, 5), np.zeros(n, int), n)


# ---------------------------------------------------------------------- day 0 (item 5)
def test_a_patient_already_above_the_threshold_at_day_0_is_not_a_responder():
    # course A: 120 at day 0 (already >= 100 and >= 75), 130 on day 1, ... 170 on day 5.
    # course B: 72 at day 0, 82 on day 1 (first >= 75), 92 on day 2, 102 on day 3 (first
    # >= 100, so the first visit meeting "PLT >= 100 or a rise >= 50"; the rise reaches 50
    # only on day 5, at 122).
    table = patient_endpoints(constructed_arm(120.0, 72.0), RULE, 1.0)
    a, b = table.iloc[0], table.iloc[1]
    assert a.platelets_at_start == pytest.approx(120.0)
    assert a.at_threshold_at_start and not a.responder and math.isnan(a.response_day)
    # already at both levels at day 0: no time to reach them (left out of Kaplan-Meier)
    assert math.isnan(a.days_to_100) and not a.reached_100
    assert math.isnan(a.days_to_75) and not a.reached_75
    assert not b.at_threshold_at_start and b.responder and b.response_day == 3
    assert b.days_to_75 == 1 and b.days_to_100 == 3 and b.reached_100
    # the arm: 1 responder of 2 enrolled (A counts in the denominator, in its own column);
    # the Kaplan-Meier median of days to 100 comes from B alone: day 3
    row = _summarise("x", table.assign(arm="x"), screened=2, invalid=0)
    assert row["at_threshold_at_start"] == 1 and row["response_pct"] == 50.0
    assert row["median_days_to_100"] == 3.0 and row["median_days_to_75"] == 1.0


def test_day_0_never_counts_and_a_rise_alone_has_no_threshold_column():
    # rise-only rule: A (120 at day 0) is not "at the threshold" (there is none) and
    # responds when the count is 50 above day 0: 170 on day 5; B (72) on day 5 too (122)
    rise_only = patient_endpoints(constructed_arm(120.0, 72.0),
                                  {"threshold": None, "rise": 50, "by_day": 14}, 1.0)
    assert not rise_only.at_threshold_at_start.any()
    assert list(rise_only.response_day) == [5, 5] and rise_only.responder.all()
    # threshold 80: B (72 at day 0) is below it and reaches it at day 1 (82); a course at
    # exactly 80 at day 0 is "at or above" and so not a responder, although day 0 meets the
    # rule: day 0 is the baseline, never a response
    table = patient_endpoints(constructed_arm(72.0, 80.0),
                              {"threshold": 80, "rise": None, "by_day": 14}, 1.0)
    assert list(table.response_day[:1]) == [1] and table.responder.iloc[0]
    assert table.at_threshold_at_start.iloc[1] and not table.responder.iloc[1]


def test_response_by_day_14_is_judged_on_visits_1_to_14():
    # 20 at day 0, +10 a day: 90 on day 7, 100 on day 8 (20 + 8 x 10). Threshold rule only
    # (a rise of 50 would be met on day 5). With by_day = 7 it is not a responder; its
    # first visit meeting the rule (day 8) and its time to 100 are still reported
    table = patient_endpoints(constructed_arm(20.0), {"threshold": 100, "rise": None,
                                                      "by_day": 7}, 1.0)
    assert not table.responder.iloc[0] and table.response_day.iloc[0] == 8
    assert table.days_to_100.iloc[0] == 8


# ---------------------------------------------------------------------- outputs (item 9)
@pytest.fixture(scope="module")
def small_trial():
    spec = load_trial_spec(bundled_trial("yuan2025"), subjects=30, seed=11)
    from dataclasses import replace

    return run_trial(replace(spec, arms=spec.arms[:2]))  # untreated and rhTPO: quick


def test_tables_are_numeric_and_every_column_is_in_the_data_dictionary(small_trial,
                                                                        tmp_path):
    written = write_trial(small_trial, tmp_path / "out")
    folder = tmp_path / "out"
    assert folder / "data_dictionary.csv" in written
    dictionary = pd.read_csv(folder / "data_dictionary.csv", keep_default_na=False)
    for name in ("patients.csv", "summary.csv", "differences.csv"):
        table = pd.read_csv(folder / name)
        described = list(dictionary[dictionary.file == name].column)
        assert described == list(table.columns), name  # every column, in order, once
        text = [c for c in table.columns if not pd.api.types.is_numeric_dtype(table[c])
                and not pd.api.types.is_bool_dtype(table[c])]
        assert set(text) <= {"arm", "versus"}, (name, text)  # no "[17, 18]" strings
    assert (dictionary.description.str.len() > 10).all()
    units = dict(zip(dictionary.column, dictionary.unit))
    assert units["response_pct"] == "%" and units["mean_plt_day_14"] == "x10^9/L"
    assert units["median_days_to_100_upper"] == "days"
    assert units["response_difference_pct_points"] == "percentage points"
    summary = pd.read_csv(folder / "summary.csv", index_col="arm")
    for stem in ("response_pct", "median_days_to_100", "mean_nadir"):
        assert (summary[f"{stem}_lower"] <= summary[stem]).all()
        assert (summary[stem] <= summary[f"{stem}_upper"]).all()
    # the printed table keeps its text intervals, built from the same numbers
    row = summary.iloc[1]
    assert arm_table(small_trial).iloc[1]["response % [95% CI]"] == \
        f"{row.response_pct:.1f} [{row.response_pct_lower:.1f}, {row.response_pct_upper:.1f}]"
    report = (folder / "report.md").read_text()
    assert "## Screening" in report and "data_dictionary.csv" in report
    # under the arm table: what its intervals leave out (study.trial.interval_note)
    arms = report.split("## Arms")[1].split("## Differences")[0]
    assert "95% CI (arms and differences): the sampling interval" in arms
    assert list(data_dictionary(replicates=True).file.unique())[-1] == "replicates.csv"


def test_figures_mark_the_chemotherapy_day_thresholds_and_response_window(small_trial):
    import matplotlib.pyplot as plt

    figures = trial_figures(small_trial)
    try:
        axis = figures["trajectories.png"].axes[0]
        labels = axis.get_legend_handles_labels()[1]
        # trials/yuan2025.toml enrols in cycle 2 (a course): its chemotherapy line is the
        # treated cycle's, days before the first treatment morning; entry is its rule
        s = small_trial.subjects
        before = (s.start_day - s.cycle2_day).median()
        assert f"treated cycle's chemotherapy: median day {-before:.1f}" in " ".join(labels)
        assert "response threshold: PLT >= 100" in labels
        assert "entry: cycle 2 nadir < 75" in labels
        assert "response window: visits on days 1 to 14" in labels
        assert "day 0" in axis.get_xlabel()
        # the median is drawn only on days when >= 80% of the arm's patients are followed
        # (a user test, 2026-12-05: the median of the few left jumped at the end)
        lines = {line.get_label(): line for line in axis.lines}
        for name, (_, matrix) in small_trial.curves.items():
            followed = np.isfinite(matrix).mean(axis=0) >= 0.8
            drawn = np.isfinite(np.asarray(lines[name].get_ydata(), float))
            assert np.array_equal(drawn, followed & np.isfinite(matrix).any(axis=0))
        # responders-by-day at by_day equals the summary's response rate (the same rule)
        by_day = figures["response_by_day.png"].axes[0]
        for line, (name, row) in zip(by_day.lines, small_trial.summary.iterrows()):
            assert line.get_label() == name
            assert line.get_ydata()[14] == pytest.approx(row.response_pct)
    finally:
        for figure in figures.values():
            plt.close(figure)


def test_a_course_trials_figure_names_its_eligibility_and_spans_its_follow_up():
    # a user test (2026-12-04): a course trial's trajectory plot said "entry: PLT < 75" (an
    # unused default) for a trial enrolling on other rules, stopped 29 days after the start
    # of a 42-day follow-up and printed "median day -0.0"
    import matplotlib.pyplot as plt

    result = pp.run_trial(load_trial_spec(bundled_trial("prophylaxis_cycles"), subjects=30))
    figures = trial_figures(result)
    try:
        axis = figures["trajectories.png"].axes[0]
        labels = " | ".join(axis.get_legend_handles_labels()[1])
        assert "entry: cycle 1 nadir < 75" in labels and "entry: PLT < 75" not in labels
        assert "-0.0" not in labels and "treated cycle's chemotherapy: median day" in labels
        # the file enrols at cycle 1's first count below 75, treated that day: the cycle
        # began a median of start_day days before
        assert f"median day {-result.subjects.start_day.median():.1f}" in labels
        assert axis.get_xlim()[1] >= result.spec.follow_up_days
    finally:
        for figure in figures.values():
            plt.close(figure)


def test_sweep_heatmaps_name_the_swept_dose_and_units(tmp_path):
    import matplotlib.pyplot as plt

    spec = load_trial_spec(bundled_trial("yuan2025"), subjects=15, seed=2)
    grid = parse_grid(["dose=5,7.5", "start_delay=0,1"])
    table = run_sweep(spec, grid, ["hetrombopag 7.5 mg"])
    figure = sweep_figures(table, grid, "response_pct")["hetrombopag 7.5 mg"]
    try:
        axis, colorbar = figure.axes
        assert axis.get_xlabel() == "hetrombopag daily dose (mg)"
        assert axis.get_ylabel() == "start delay: days from entry to the first dose (days)"
        assert colorbar.get_ylabel() == "response_pct (%)"
    finally:
        plt.close(figure)
    assert list(sweep_dictionary(grid, spec).column) == list(table.columns)
    # a sweep whose first cell is the drug's 0 (no hetrombopag in its regimen) still names
    # the dose and its unit from the other cells (a sweep user test, 2026-12-07, read
    # "dose:hetrombopag: daily dose (the unit of the arm's regimen)")
    zero = parse_grid(["dose:hetrombopag=0,5"])
    figure = sweep_figures(run_sweep(spec, zero, ["hetrombopag + rhTPO"]), zero,
                           "response_pct")["hetrombopag + rhTPO"]
    try:
        assert figure.axes[0].get_xlabel() == "hetrombopag daily dose (mg)"
    finally:
        plt.close(figure)
    # the sweep's record says what a reader needs to reproduce it (a user test,
    # 2026-12-04: no fit, no number of patients, no day 0, no arm)
    import json

    from plateletpd.study.sweep import write_sweep

    write_sweep(table, spec, grid, "response_pct", tmp_path / "sweep")
    record = json.loads((tmp_path / "sweep" / "provenance.json").read_text())
    assert record["subjects_per_arm"] == 15 and record["arms"] == ["hetrombopag 7.5 mg"]
    assert record["parameters_from"] and "day0" in record["design"]["response"]
    assert not any(isinstance(v, str) and v.startswith("[") for v in table.to_numpy().ravel())


# ---------------------------------------------------------------------- failures (item 10)
def test_an_arm_that_enrols_nobody_names_the_rule_and_the_numbers(tmp_path):
    # no chemotherapy: counts stay near baseline (250 typical), nobody falls below 75
    text = one_cycle(bundled_trial("yuan2025").read_text()).replace(
        'chemotherapy = "chemotherapy 1 dose d1"', 'chemotherapy = ""')
    (tmp_path / "none.toml").write_text(text)
    with pytest.raises(TrialSpecError) as error:
        run_trial(load_trial_spec(tmp_path / "none.toml", subjects=12, seed=1))
    message = str(error.value)
    assert "arm 'untreated' enrolled none of the 12 virtual patients screened" in message
    assert "entry_below = 75" in message and "raise entry_below" in message


def test_dropped_patients_are_counted_and_warned_about(tmp_path):
    # a CV of 0.6 on chemotherapy_sensitivity (typical 10.88) draws some values above the
    # model's bound of 25 (models/cit_thrombopoiesis.toml): those patients are dropped (the
    # Yuan trial as written for that model, tests/data)
    fixture = Path(__file__).parent / "data" / "yuan2025_cit_thrombopoiesis.toml"
    text = fixture.read_text().replace(
        "cv = { chemotherapy_sensitivity = 0.30", "cv = { chemotherapy_sensitivity = 0.60")
    (tmp_path / "wide.toml").write_text(text)
    spec = load_trial_spec(tmp_path / "wide.toml", subjects=40, seed=5)
    from dataclasses import replace

    from plateletpd.study.trial import _cohort

    spec = replace(spec, arms=spec.arms[:1])
    column = spec.model.parameter_names.index("chemotherapy_sensitivity")
    expected = int(np.sum(_cohort(spec, 0)[:, column] > 25.0))
    assert expected > 0  # seed 5 draws some; otherwise the test would prove nothing
    with pytest.warns(DroppedPatientsWarning, match=rf"{expected} of 40 drawn virtual "
                      r"patients dropped.*chemotherapy_sensitivity outside \[0, 25\]"):
        result = run_trial(spec)
    assert result.summary.invalid_parameters.iloc[0] == expected
    assert result.summary.screened.iloc[0] == 40
    write_trial(result, tmp_path / "out")
    report = (tmp_path / "out" / "report.md").read_text()
    screening = report.split("## Screening")[1].split("## Arms")[0]
    assert re.search(rf"untreated\s+40\s+{expected}\s+", screening)


# ---------------------------------------------------------------------- README (item 10)
def readme_python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)


def test_the_readme_python_examples_run_as_written(tmp_path, monkeypatch):
    # the blocks form one session (the second uses the first's `pp`); files go to tmp_path
    blocks = readme_python_blocks()
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    assert (tmp_path / "platelets.png").exists() and (tmp_path / "bands.png").exists()
    result = namespace["result"]
    assert isinstance(result, pp.TrialResult)
    assert list(result.summary.index) == ["untreated", "rhTPO"]


def test_an_arm_above_the_typical_baseline_is_flagged_in_the_report(tmp_path):
    # issue 17's plausibility bound: no arm's mean count on day 14 above 300 x10^9/L (1.2 x
    # a typical baseline of 250) unless a source shows it. A fixed 14-day course of both
    # c-Mpl agonists from entry (no stop rule) rebounds far above it; no treatment does
    # not (sizes for a fast test, not from a study)
    from plateletpd.study.trial import REBOUND_FACTOR, rebound_flags

    spec = pp.TrialSpec.create(
        seed=4, model="cit_marrow_reserve", subjects_per_arm=30,
        population={"cv": {"chemotherapy_sensitivity": 0.3}},
        enrolment={"entry_below": 75}, response=RULE,
        arms=[{"name": "untreated"},
              {"name": "both", "treatment": ["hetrombopag 7.5 mg", "rhTPO 15000 U"],
               "max_days": 14, "stop_at": False}])
    result = run_trial(spec)
    flags = rebound_flags(result)
    baseline = 250.0  # the model file's platelets_baseline (no population override here)
    high = result.summary[["mean_plt_day_7", "mean_plt_day_14"]].max(axis=1)
    flagged = {arm for arm in result.summary.index if any(f"arm {arm!r}" in f for f in flags)}
    assert flagged == set(high[high > REBOUND_FACTOR * baseline].index) == {"both"}
    write_trial(result, tmp_path / "out")
    report = (tmp_path / "out" / "report.md").read_text()
    assert "Plausibility" in report and "times the population's typical baseline" in report


def test_an_itp_arm_rising_above_its_disease_baseline_is_not_flagged_as_a_rebound():
    # a user test (2026-12-04): every hetrombopag ITP arm was flagged "a rebound above
    # baseline that published trials rarely show" for a day-7 mean of 35 against the ITP
    # model's baseline of 13: the rise is the drug's intended effect; no chemotherapy, no flag
    from plateletpd.study.trial import REBOUND_FACTOR, rebound_flags

    result = run_trial(load_trial_spec(bundled_trial("itp_phase3"), subjects=30))
    model = result.spec.model
    baseline = float(model.parameter_vector({}, dict(result.spec.covariates))[
        model.parameter_names.index("platelets_baseline")])
    assert (result.summary.mean_plt_day_14 > REBOUND_FACTOR * baseline).any()  # it rises
    assert rebound_flags(result) == []


def test_the_arm_table_shows_the_trials_own_response_endpoints_and_unreached_medians():
    # a user test (2026-12-04): the sustained response and the counts at chosen visits were
    # only in summary.csv, and a median no arm reached printed "nan [nan, nan]"; the ITP
    # phase III file states a sustained response and the count on day 56, and its counts
    # never reach 100 in most patients (median days to 100 not reached)
    from plateletpd.study.trial import arm_table

    result = run_trial(load_trial_spec(bundled_trial("itp_phase3"), subjects=30))
    table = arm_table(result)
    sustained = "sustained % (>= 75% of visits)"
    assert sustained in table and "PLT>=50 on day 56 % [95% CI]" in table
    for arm, row in result.summary.iterrows():
        assert table.loc[arm, sustained].startswith(f"{row.sustained_responder_pct:.1f} [")
    assert (table["median days to PLT>=100 [95% CI]"] == "not reached").any()
    assert not table.astype(str).apply(lambda c: c.str.contains("nan")).any().any()
    # the count at the visit has its interval too (a user test found it bare), and a
    # median whose interval's upper end no curve reaches says so, not "-"
    # and the visit's mean count (a user test, 2026-12-05, found it only in summary.csv)
    assert (table["mean PLT day 56"] == result.summary.mean_plt_day_56.round(1)).all()
    visit = table["PLT>=50 on day 56 % [95% CI]"]
    for arm, row in result.summary.iterrows():
        assert visit[arm] == (f"{row.plt_at_least_50_day_56_pct:.1f} "
                              f"[{row.plt_at_least_50_day_56_pct_lower:.1f}, "
                              f"{row.plt_at_least_50_day_56_pct_upper:.1f}]")
    from plateletpd.study.trial import _with_interval

    median = pd.DataFrame({"m": [84.0], "m_lower": [42.0], "m_upper": [np.inf]})
    assert _with_interval(median, "m", 0) == ["84 [42, not reached]"]
    assert "transfused %" not in table   # no rescue in the ITP trial


def test_progress_in_a_log_is_about_twenty_lines_and_every_update_on_a_terminal():
    # a CIT user test (2026-12-04): a check of 200 replicates wrote 200 progress lines to
    # its log; in a log (not a terminal) about 20 are shown, the first and the last always
    import io

    from plateletpd.io.display import progress_due

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    log = [done for done in range(1, 201) if progress_due(done, 200, io.StringIO())]
    assert 20 <= len(log) <= 22 and log[0] == 1 and log[-1] == 200
    assert all(progress_due(done, 200, Terminal()) for done in range(1, 201))
    assert [d for d in range(1, 4) if progress_due(d, 3, io.StringIO())] == [1, 2, 3]


def test_each_patient_has_the_total_of_each_drug_given_and_the_summary_its_mean():
    # a sweep user test (2026-12-04): trial outputs gave no total drug per patient (only a
    # dose intensity relative to the start), which titration trials need. The phase III
    # file's arms titrate; its patients' totals must equal the sum of the doses they were
    # given (the patient's dose records), 0 on placebo, and the summary gives their mean
    from plateletpd.study.trial import bundled_trial, load_trial_spec, run_trial

    spec = load_trial_spec(bundled_trial("itp_phase3"), subjects=30)
    result = run_trial(spec)
    table = result.subjects
    assert "total_hetrombopag_mg" in table
    assert (table[table.arm == "placebo"].total_hetrombopag_mg == 0).all()
    treated = table[table.arm == "HETROM-5"]
    # trials/itp_phase3.toml: 56 days of follow-up, doses stepped within 2.5-7.5 mg, so at
    # most 56 daily doses of 7.5 mg and at least the doses given x 2.5 mg
    assert (treated.total_hetrombopag_mg <= 56 * 7.5 + 1e-9).all()
    assert (treated.total_hetrombopag_mg >= 2.5 * treated.treatment_doses - 1e-9).all()
    # with the dose intensity (mean factor of the 5 mg start over the planned doses)
    np.testing.assert_allclose(treated.total_hetrombopag_mg,
                               5.0 * treated.dose_intensity * 56, rtol=1e-9)
    assert result.summary.loc["HETROM-5", "mean_total_hetrombopag_mg"] == pytest.approx(
        treated.total_hetrombopag_mg.mean())


def test_a_composite_among_the_patients_without_a_flag_is_the_conditional_share():
    # an ITP user test (2026-12-04): "of 15 non-responders on 2.5 mg at week 4, 6 of 11
    # escalated responded at week 8 or 12" had to be computed by hand from patients.csv.
    # among_none judges a composite among the patients without the flags: here the share
    # at >= 50 on day 84 among those below 50 on day 28, checked against the per-patient
    # visit flags it is made of
    from plateletpd.errors import PlateletPDError

    def spec(composite):
        return pp.TrialSpec.create(
            model="itp_thrombopoiesis", fit="default", seed=8, subjects_per_arm=60,
            follow_up_days=84, visit_every_days=7,
            population={"covariates": {"body_weight": 62, "itp_duration_months": 24}},
            enrolment={"chemotherapy": "", "entry_below": 30, "entry_day": 0,
                       "start_delay": 0},
            response={"threshold": 50, "by_day": 84, "at_visits": [28, 84]},
            arms=[{"name": "2.5 mg", "treatment": ["hetrombopag 2.5 mg"], "stop_at": False,
                   "max_days": 84}], composite=composite)

    patients = run_trial(spec([{"name": "late", "all": ["plt_at_least_50_day_84"],
                                "among_none": ["plt_at_least_50_day_28"]}])).subjects
    early = patients.plt_at_least_50_day_28.astype(bool)
    assert 0 < early.sum() < len(patients)     # both groups present
    assert patients.late[early].isna().all()   # left out: responders at week 4
    expected = patients.plt_at_least_50_day_84[~early].astype(float)
    pd.testing.assert_series_equal(patients.late[~early], expected, check_names=False)
    with pytest.raises(PlateletPDError, match="did you mean 'plt_at_least_50_day_28'"):
        spec([{"name": "late", "all": ["responder"], "among_none": ["plt_at_least_50_day_27"]}])


def test_time_from_50_to_100_on_a_constructed_course():
    # a user test (2026-12-04): the README lists "from <=50 to >=100" as a time a fit
    # reads, and a GI-cancer rhIL-11 study reports it (8.9 against 12.9 days), but a trial
    # had no such column, so check refused the row. A V-shaped course: 120 on day 0 falling
    # 10 a day to 20 on day 10, then rising 10 a day: <= 50 from day 7, >= 100 on day 18
    from plateletpd.study.endpoints import ENDPOINTS, Courses

    times = np.arange(0, 30 * 24 + 1) / 24
    counts = np.where(times <= 10, 120 - 10 * times, 20 + 10 * (times - 10))
    never = np.full_like(times, 80.0)         # never <= 50: no value
    late = np.where(times <= 10, 120 - 10 * times, 20 + 1 * (times - 10))  # not back by 30
    courses = Courses(times, np.vstack([counts, never, late]), np.array([5.0, 5.0, 5.0]))
    values = ENDPOINTS["days_from_50_to_100"].values(courses)
    assert values[0] == pytest.approx(18 - 7)
    assert np.isnan(values[1])
    assert values[2] == pytest.approx(30 - 7)   # counted to the end, as a fit reads it
    # and check reads a "from <=50 to >=100" row from it
    from plateletpd.study.check import row_reader

    row = next(pd.DataFrame([{"study": "s", "arm": "a", "endpoint": "time_to_threshold_days",
                              "threshold": "from <=50 to >=100", "day": math.nan,
                              "statistic": "mean"}]).itertuples())
    reader = row_reader(row, {"threshold": 100, "by_day": 14})
    table = pd.DataFrame({"days_from_50_to_100": values})
    assert reader(table) == pytest.approx(np.nanmean(values))
    other = next(pd.DataFrame([{**row._asdict(), "threshold": "from <=20 to >=100"}]
                              ).itertuples())
    assert "the trial times from <=50 to >=100" in row_reader(other, {"threshold": 100})


def _outcome_row(**fields):
    base = {"study": "s", "arm": "a", "endpoint": "response_proportion", "threshold": "",
            "day": math.nan, "statistic": "percent"}
    return next(pd.DataFrame([{**base, **fields}]).itertuples())


def test_a_response_at_least_once_is_read_from_the_first_responding_visit_not_one_count():
    # the helper writing the ITP out-of-sample rows (2026-12-04) coded Mei 2021 Table 2's
    # "responded at least once within 8 weeks" (84.5%) as cumulative_response_proportion
    # "PLT >=50" day 56, and check read it as the count AT the week-8 visit (the primary
    # endpoint's column, 58.9%) without a word. Four constructed patients: two respond and
    # stay, one responds on day 14 and is below 50 at week 8, one never responds
    from plateletpd.study.check import row_reader

    response = {"threshold": 50, "by_day": 56, "at_visits": [56]}
    table = pd.DataFrame({"response_day": [7.0, 28.0, 14.0, math.nan],
                          "plt_at_least_50_day_56": [1.0, 1.0, 0.0, 0.0]})
    once = row_reader(_outcome_row(endpoint="cumulative_response_proportion",
                                   threshold="PLT >=50 at least once", day=56.0), response)
    assert once(table) == pytest.approx(75.0) and "at least once" in once.reading
    at_week = row_reader(_outcome_row(threshold="PLT >=50 at the week", day=56.0), response)
    assert at_week(table) == pytest.approx(50.0)
    by_day_20 = row_reader(_outcome_row(endpoint="cumulative_response_proportion",
                                        threshold="PLT >=50 at least once", day=20.0),
                           response)
    assert by_day_20(table) == pytest.approx(50.0)   # days 7 and 14
    # a plain "PLT >=50" cumulative row is still read at the visit the trial judges (the
    # carboplatin label's "by day 28, 90% above 100"), and the reading says so
    plain = row_reader(_outcome_row(endpoint="cumulative_response_proportion",
                                    threshold="PLT >=50", day=56.0), response)
    assert plain(table) == pytest.approx(50.0)
    assert "write 'PLT >=50 at least once'" in plain.reading
    # a rule with a rise counts patients the level alone does not: refused with the fix
    assert "remove rise" in row_reader(_outcome_row(
        endpoint="cumulative_response_proportion", threshold="PLT >=50 at least once",
        day=56.0), {**response, "rise": 30})
    # another level than the trial's rule is refused with the fix
    assert "set [response] threshold = 30" in row_reader(
        _outcome_row(endpoint="cumulative_response_proportion",
                     threshold="PLT >=30 at least once", day=56.0), response)


def test_the_iwg_response_row_is_read_from_the_trials_rule_only_when_the_trial_states_it():
    # "PLT >=30 and >=2x baseline" (Mei 2021 Table 2; Rodeghiero 2009) had been read as the
    # trial's PLT >= 50 rule with a note; it is that rule or a refusal naming the fix
    from plateletpd.study.check import row_reader

    row = _outcome_row(endpoint="cumulative_response_proportion",
                       threshold="PLT >=30 and >=2x baseline", day=56.0)
    refused = row_reader(row, {"threshold": 50, "by_day": 56})
    assert isinstance(refused, str)
    assert 'rise_fold = 2, combine = "all"' in refused
    iwg = {"threshold": 30, "rise_fold": 2, "combine": "all", "by_day": 56}
    reader = row_reader(row, iwg)
    table = pd.DataFrame({"response_day": [7.0, math.nan, 60.0]})
    assert reader(table) == pytest.approx(100 / 3)
    assert isinstance(row_reader(row, {**iwg, "combine": "any"}), str)


def test_an_arm_whose_recovery_peak_overshoots_is_flagged_even_when_its_day_14_mean_is_not():
    # a user test (2026-12-04): rhTPO 15,000 U until PLT >= 100 had a mean recovery peak of
    # 333 (23% of patients above 400) and no flag, its day-7 and day-14 means being below
    # 1.2 x baseline (300). Three arms of one trial given constructed means: a peak alone
    # above 300, a day-14 mean above it (one flag, not two), none above it
    from dataclasses import replace

    from plateletpd.study.trial import rebound_flags

    spec = pp.TrialSpec.create(
        seed=5, model="cit_marrow_reserve", subjects_per_arm=20,
        enrolment={"entry_below": 75}, response=RULE,
        arms=[{"name": "peak only"}, {"name": "day 14"}, {"name": "none"}])
    result = run_trial(spec)
    summary = result.summary.copy()
    summary["mean_plt_day_7"] = [150.0, 250.0, 150.0]
    summary["mean_plt_day_14"] = [250.0, 320.0, 250.0]
    summary["mean_peak"] = [350.0, 400.0, 290.0]   # the model file's baseline is 250
    flags = rebound_flags(replace(result, summary=summary))
    assert len(flags) == 2
    assert flags[0].startswith("arm 'peak only': mean recovery peak 350")
    assert flags[1].startswith("arm 'day 14': mean count on treatment day 14 320")
    # on a course, a later cycle's recovery peak too (a prophylaxis user test: a cycle-3
    # mean peak of 419 on weekly romiplostim passed unflagged)
    summary["mean_cycle3_peak"] = [200.0, 200.0, 419.0]
    flags = rebound_flags(replace(result, summary=summary))
    assert flags[-1].startswith("arm 'none': mean recovery peak 419")
    # the record names the fit as the trial does (a Python-API user test)
    assert result.provenance["fit"] == spec.extra.get("fit")


def test_a_mean_that_cannot_be_negative_has_no_negative_interval_end():
    # a user test (2026-12-04): mean transfusions 0.0099 [-0.0019, 0.022]
    from plateletpd.study.trial import Z95, _mean_interval

    counts = np.array([0.0] * 99 + [1.0])
    half = Z95 * counts.std(ddof=1) / math.sqrt(counts.size)
    assert counts.mean() - half < 0          # the normal approximation goes below 0
    assert _mean_interval(counts, counts.mean(), half) == (0.0, counts.mean() + half)
    signed = counts - 0.5                     # a difference may be negative: kept
    assert _mean_interval(signed, signed.mean(), half)[0] == signed.mean() - half


def test_a_trial_whose_arms_treat_nobody_from_entry_needs_no_response_rule(tmp_path):
    # a user test (2026-12-04): a course with supportive doses only (a self-controlled
    # prophylaxis study) had to state a [response] rule, and the printed table then showed a
    # meaningless "response 0.0" with "already >= 100 at day 0: 300 (non-responders)".
    # Without treated arms the rule may be left out, and the table leaves its columns out;
    # a treated arm still needs one (tests/test_input_validation.py)
    from plateletpd.study.trial import arm_table

    text = bundled_trial("crossover_support").read_text()
    start = text.index("[response]")
    end = text.index("[[arms]]", start)
    path = tmp_path / "support_only.toml"
    path.write_text(text[:start] + text[end:])
    result = run_trial(load_trial_spec(path, subjects=20))
    table = arm_table(result)
    assert not [c for c in table.columns if "response" in c or "already" in c], table.columns
    assert "mean PLT day 14" in table.columns


def test_an_incidence_during_treatment_is_counted_from_day_0_not_over_the_whole_course():
    # "grade 3/4 thrombocytopenia during the study treatment": on a course whose patients
    # enrol in cycle 2, the whole course's nadir (course_nadir) counts cycle 1's too, before
    # the study began. Constructed: a count of 40 on day 3 (before treatment, day 0 = day
    # 10), then 60 at its lowest after day 10; another patient at 45 after day 10
    from plateletpd.study.check import row_reader
    from plateletpd.study.endpoints import ENDPOINTS, Courses

    times = np.arange(0, 30 * 24 + 1) / 24
    first = np.where(times < 10, np.maximum(40.0, 250 - 70 * times), 60 + 5 * (times - 10))
    second = np.where(times < 10, 200.0, 45 + 5 * (times - 10))
    courses = Courses(times, np.vstack([first, second]), np.array([10.0, 10.0]))
    values = ENDPOINTS["nadir_after_start"].values(courses)
    assert values == pytest.approx([60.0, 45.0])
    row = _outcome_row(endpoint="incidence_proportion", threshold="grade 3/4 during treatment")
    reader = row_reader(row, {"threshold": 100, "by_day": 14})
    table = pd.DataFrame({"nadir_after_start": values, "nadir": [40.0, 45.0],
                          "course_nadir": [40.0, 45.0]})
    assert reader(table) == pytest.approx(50.0)   # the second patient only
    assert "from the start of treatment" in reader.reading
    whole = row_reader(_outcome_row(endpoint="incidence_proportion", threshold="grade 3/4"),
                       {"threshold": 100, "by_day": 14})
    assert whole(table) == pytest.approx(100.0)   # both, cycle 1's 40 included
    assert isinstance(row_reader(_outcome_row(endpoint="incidence_proportion",
                                              threshold="PLT <50, cycle 2, during treatment"),
                                 {"threshold": 100, "by_day": 14}), str)


def test_a_sustained_response_row_must_state_the_trials_whole_rule():
    # a persistent-CIT user test (2026-12-04): Al-Samkari 2021's "PLT >= 75 and >= 30 above
    # baseline" response, written "PLT >=75 and rise >=30 at >=50% of visits", was read as the
    # response by day with a note; a row without the rise, against that trial, would have
    # been read from the rule with the rise. Each is read only when it is the trial's rule
    from plateletpd.study.check import row_reader

    with_rise = {"threshold": 75, "rise": 30, "combine": "all", "by_day": 84,
                 "sustained_share": 0.5}
    table = pd.DataFrame({"sustained_responder": [1.0, 0.0, 1.0, 1.0]})
    row = _outcome_row(threshold="PLT >=75 and rise >=30 at >=50% of visits")
    reader = row_reader(row, with_rise)
    assert reader(table) == pytest.approx(75.0) and "a rise >= 30" in reader.reading
    plain = _outcome_row(threshold="PLT >=75 at >=50% of visits")
    assert "no rise or rise_fold" in row_reader(plain, with_rise)
    assert 'rise = 30, combine = "all"' in row_reader(row, {**with_rise, "combine": "any"})
    assert row_reader(plain, {"threshold": 75, "by_day": 84, "sustained_share": 0.5})(
        table) == pytest.approx(75.0)


def test_a_few_patients_in_the_tails_of_the_fits_spread_get_the_short_warning():
    # a user test (2026-12-05) read the long warning (lower the CVs, check the bounds) for
    # 9 of 2,000 patients of the fit's own spread and went looking for a mistake; at most
    # SMALL_DROPPED_SHARE of an arm with the fit's CVs is the expected tail and gets the
    # short form, more (or CVs the user set) the full advice
    from plateletpd.study.trial import SMALL_DROPPED_SHARE, _cohort, _dropped

    spec = load_trial_spec(ROOT / "trials" / "soff2019_romiplostim.toml", subjects=200)
    assert spec.extra["cv_from_fit"]  # the file sets no [population] cv
    column = spec.model.parameter_names.index("chemotherapy_sensitivity")
    matrix = np.tile(_cohort(spec, 0)[:1], (200, 1))
    for dropped in (1, int(SMALL_DROPPED_SHARE * 200)):
        valid = np.arange(200) >= dropped
        matrix[~valid, column] = 99.0  # above the bound of 25
        message = _dropped(spec, spec.arms[0], matrix, valid)
        assert f"{dropped} of 200 drawn virtual patients" in message
        assert "tails of the fit's spread" in message and "lower the CVs" not in message
        assert "chemotherapy_sensitivity outside [0, 25]" in message
    valid = np.arange(200) >= 3 * int(SMALL_DROPPED_SHARE * 200)
    matrix[~valid, column] = 99.0
    message = _dropped(spec, spec.arms[0], matrix, valid)
    assert "a few patients in the tails of a wide spread are expected" in message


def test_replicate_power_is_the_share_of_intervals_excluding_zero():
    # a trial's power from its replicate trials: each replicate's differences.csv interval
    # either excludes 0 (significant at two-sided 5%) or not; three replicates, known ones
    from plateletpd.study.trial import replicate_power

    def replicate(lower, upper, value):
        return pd.DataFrame({"arm": ["drug"], "versus": ["control"],
                             "response_difference_pct_points": [value],
                             "response_difference_pct_points_lower": [lower],
                             "response_difference_pct_points_upper": [upper]})

    power = replicate_power([replicate(2.0, 30.0, 16.0), replicate(-5.0, 25.0, 10.0),
                             replicate(-40.0, -1.0, -20.0)])
    row = power.iloc[0]
    assert (row.arm, row.versus, row.quantity) == ("drug", "control",
                                                   "response_difference_pct_points")
    assert row.replicates == 3
    assert row.higher_pct == pytest.approx(100 / 3) and row.lower_pct == pytest.approx(100 / 3)
    assert row.power_pct == pytest.approx(200 / 3)
    assert row.mean_difference == pytest.approx(2.0)
    assert replicate_power([]).empty


def test_a_trial_with_replicates_writes_its_power(tmp_path, capsys):
    # `plateletpd trial --replicates N`: power.csv, every quantity of differences.csv for
    # each arm against its reference, and the main ones printed
    from plateletpd.cli import main

    trial = two_arm_trial(tmp_path / "t.toml", seed=3, subjects=40, trial_keys="replicates = 4")
    assert main(["trial", str(trial), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "power: replicate trials of this size" in out
    # each arm's track record on published arms of its drugs (test_track_record.py)
    assert "track record on published arms" in out and "\n  rhTPO (rhTPO): " in out
    assert "### This trial's arms against the record" in (tmp_path / "out" /
                                                          "report.md").read_text()
    power = pd.read_csv(tmp_path / "out" / "power.csv")
    assert set(power.arm) == {"rhTPO"} and set(power.versus) == {"untreated"}
    assert {"response_difference_pct_points", "plt_day_14_difference",
            "nadir_difference"} <= set(power.quantity)
    assert (power.replicates == 4).all()
    assert np.allclose(power.power_pct, power.higher_pct + power.lower_pct)
    assert power.power_pct.between(0, 100).all()
    dictionary = pd.read_csv(tmp_path / "out" / "data_dictionary.csv", keep_default_na=False)
    assert set(dictionary.column[dictionary.file == "power.csv"]) >= {"power_pct",
                                                                     "quantity"}


def test_the_arm_tables_intervals_say_what_they_leave_out():
    """At the point estimates (the default) the arm table's 95% intervals are sampling
    intervals; the note says so, gives the fit's between-study spread of the parameter the
    trial leaves free (read from the fit record, not from this test), and points to the
    prediction intervals; a trial that fixes that parameter, or runs without a fit, or draws
    the fit's uncertainty itself, says so or needs no note."""
    import dataclasses
    import json

    from plateletpd.model.library import bundled_fits_dir
    from plateletpd.study.trial import interval_note

    spec = load_trial_spec("yuan2025")  # default fit, damage left to the fit (its header)
    record = json.loads((bundled_fits_dir() / "cit_marrow_reserve_calibration"
                         / "params.json").read_text())
    sd = record["study_effects"]["chemotherapy_sensitivity"]["between_study_sd"]
    note = interval_note(spec)
    assert note.startswith("95% CI (arms and differences): the sampling interval")
    assert f"between-study SD of its log {sd:.2f}" in note
    assert f"factor of about {math.exp(1.96 * sd):.1f}" in note
    assert "--uncertainty fit --replicates 200" in note
    fixed = dataclasses.replace(spec, extra={**spec.extra,
                                             "typical": ("chemotherapy_sensitivity",)})
    assert "between-study" not in interval_note(fixed)
    assert "fit's parameter uncertainty" in interval_note(fixed)
    assert "no fit" in interval_note(load_trial_spec("yuan2025", fit="none"))
    drawn = dataclasses.replace(spec, extra={**spec.extra, "uncertainty": "fit"})
    assert interval_note(drawn) is None


def test_a_sweep_says_what_its_cells_leave_out(capsys):
    # a sweep's cells run at the fit's point estimates: the command line says which
    # uncertainty that leaves out, with the default fit's between-study SD (from its record)
    import json

    from plateletpd.cli import main
    from plateletpd.model.library import bundled_fits_dir

    record = json.loads((bundled_fits_dir() / "cit_marrow_reserve_calibration"
                         / "params.json").read_text())
    sd = record["study_effects"]["chemotherapy_sensitivity"]["between_study_sd"]
    assert main(["sweep", "yuan2025", "--grid", "dose=5", "--n", "10"]) == 0
    err = capsys.readouterr().err
    assert "every cell is at the fit's point estimates: it leaves out the fit's parameter " \
           "uncertainty" in err
    assert f"between-study SD of its log {sd:.2f}" in err
