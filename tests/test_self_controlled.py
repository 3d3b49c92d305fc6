"""Self-controlled studies whose control is the previous, selecting cycle (``data_cycle``):
per-cycle days below a level and AUC, the rows a check and a fit read from a cycle, and the
errors for files that cannot say it.

Properties that could fail: the per-cycle readings against hand values on a course whose
counts are a known function of time (exact for a linear count), the paired design's shared
first cycle, regression to the mean after a cycle selected on its depth, and a check's rows
equal to the patient table's own cycle columns.
"""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import plateletpd as pp

from helpers import assert_named, changed
from plateletpd.study.check import arm_row_reader, check_trial
from plateletpd.study.cycles import ChemotherapyCourse, CourseResult
from plateletpd.study.trial import TrialSpecError, load_trial_spec, run_trial

ROOT = Path(__file__).resolve().parents[1]
NSCLC = ROOT / "trials" / "nsclc_rhtpo_2011.toml"
TEXT = NSCLC.read_text()


def linear_course(cycle_days=(0.0, 21.0)):
    """Two 21-day cycles, counts 10 x t (t in days) on the course's 6-a-day grid."""
    course = ChemotherapyCourse(cycles=2, cycle_days=21.0, follow_up_days=21.0)
    times = np.arange(0, 42 * 6 + 1) / 6.0
    platelets = np.vstack([10.0 * times, 10.0 * times])
    days = np.array([cycle_days, (0.0, np.nan)])
    return CourseResult(course=course, times=times, platelets=platelets,
                        status=np.zeros(2, int), cycle_day=days, delay=np.zeros((2, 2)),
                        dose=np.ones((2, 2)), abandoned=np.zeros(2, bool), events={})


def test_days_below_and_auc_of_a_cycle_on_a_linear_count():
    result = linear_course()
    # cycle 1 (days 0-21): 10 t < 50 for t < 5, i.e. the 30 grid points 0, 1/6, ..., 29/6
    assert result.days_below(1, 50)[0] == pytest.approx(5.0)
    assert result.days_below(1, 100)[0] == pytest.approx(10.0)
    # cycle 2 starts at day 21 (count 210): never below 100 in its window
    assert result.days_below(2, 100)[0] == 0.0
    # the area of 10 t over days 0-21 is 5 x 21^2 = 2205 (trapezoids are exact on a line)
    assert result.auc(1)[0] == pytest.approx(2205.0)
    # over days 21-42: 5 x (42^2 - 21^2) = 6615
    assert result.auc(2)[0] == pytest.approx(6615.0)
    # the second patient was never given cycle 2: NaN, not zero
    assert math.isnan(result.days_below(2, 100)[1]) and math.isnan(result.auc(2)[1])
    assert math.isnan(result.nadir(2)[1])
    # and its cycle 1 runs to the end of follow-up (no next cycle): below 100 for 10 days
    assert result.days_below(1, 100)[1] == pytest.approx(10.0)


def test_a_cycles_recovery_peak_is_read_after_its_nadir():
    # a V-shaped cycle: 300 - 25 t down to 50 on day 10, then 50 + 10 (t - 10); the day-0
    # count (300) is the window's highest but comes before the nadir: a study's "maximal
    # platelet count" of a cycle is its recovery peak (Bai 2004, data/out_of_sample.csv)
    result = linear_course()
    t = result.times
    v_shape = np.where(t < 10, 300 - 25 * t, 50 + 10 * (t - 10))
    result.platelets[:] = v_shape
    last = t[t < 21][-1]  # cycle 1's window ends where cycle 2 starts (day 21)
    assert result.readings(1)["peak"][0] == pytest.approx(50 + 10 * (last - 10))
    assert result.readings(1)["nadir"][0] == pytest.approx(50.0)
    # the patient never given cycle 2 reads cycle 1 to the end of follow-up (day 42)
    assert result.readings(1)["peak"][1] == pytest.approx(50 + 10 * (42 - 10))
    assert math.isnan(result.readings(2)["peak"][1])


def test_a_cycle_still_falling_at_its_windows_end_has_no_recovery_peak():
    # a user test (2026-12-04): with a 7-day follow-up after the last cycle every patient's
    # "recovery peak" equalled its nadir (the count was still falling). A count falling
    # through the whole window (300 - 5 t) has no peak; one that turns up has one
    result = linear_course()
    t = result.times
    result.platelets[0] = 300 - 5 * t            # falling to the end of cycle 1 (day 21)
    result.platelets[1] = np.where(t < 5, 300 - 40 * t, 100 + 2 * (t - 5))
    readings = result.readings(1)
    assert math.isnan(readings["peak"][0]) and readings["nadir"][0] > 0
    assert readings["peak"][1] == pytest.approx(100 + 2 * (42 - 5))  # to its follow-up


def test_the_last_cycle_is_read_to_the_patients_own_follow_up_not_the_grid_end():
    # the output grid runs to the latest day ANY patient of the course can be followed to
    # (delays of up to give_up_after_days before each later cycle): here day 70, while a
    # patient given cycle 2 on day 21 is followed 21 days after it (follow_up_days), to day
    # 42. Counts 10 t keep rising, so a window that ran to the grid's end would read day
    # 70's 700 as the cycle's recovery peak (the bug: Bai 2004's last cycle was read up to
    # day 49 of a 21-day cycle)
    result = linear_course()
    times = np.arange(0, 70 * 6 + 1) / 6.0
    result = CourseResult(course=result.course, times=times,
                          platelets=np.vstack([10.0 * times, 10.0 * times]),
                          status=result.status, cycle_day=result.cycle_day,
                          delay=result.delay, dose=result.dose, abandoned=result.abandoned,
                          events={})
    last = times[times < 42][-1]
    assert result.readings(2)["peak"][0] == pytest.approx(10 * last)
    # the area over the patient's own days 21-42 is unchanged by the longer grid: 6615
    assert result.auc(2)[0] == pytest.approx(6615.0)
    # the patient never given cycle 2 (no next cycle, not the course's last): cycle 1 is
    # read over the whole grid, as before
    assert result.readings(1)["peak"][1] == pytest.approx(700.0)


@pytest.fixture(scope="module")
def nsclc():
    return run_trial(load_trial_spec(NSCLC, subjects=150))


def arm(result, name):
    return result.subjects[result.subjects.arm == name].set_index("patient")


def test_the_paired_arms_share_the_selecting_cycle(nsclc):
    control = arm(nsclc, "control cycle (previous cycle)")
    treated = arm(nsclc, "prophylactic rhTPO cycle")
    assert list(control.index) == list(treated.index) and len(control) > 0
    for column in ("cycle1_nadir", "cycle1_days_below_100", "cycle1_auc_21_days"):
        np.testing.assert_allclose(control[column], treated[column], rtol=1e-9)
    # enrolled on the file's rule: a cycle-1 nadir below 50 (the abstract's "severe")
    assert (control.cycle1_nadir < 50).all()


def test_the_cycle_after_a_selecting_cycle_regresses_without_treatment(nsclc):
    # Patients chosen for a deep cycle 1 have, untreated, a shallower cycle 2 on average:
    # the cycle's own exposure (between-cycle CV 30%, Hansson 2010) was part of why they
    # were chosen (regression to the mean; Barnett et al. Int J Epidemiol 2005;34:215).
    # This is why the previous cycle cannot stand for an unselected control.
    control = arm(nsclc, "control cycle (previous cycle)")
    rise = control.cycle2_nadir - control.cycle1_nadir   # paired, the same patients
    standard_error = rise.std() / np.sqrt(len(rise))
    assert rise.mean() > 3 * standard_error > 0          # well beyond sampling noise
    # and rhTPO in cycle 2 raises that cycle's nadir further (same patients)
    treated = arm(nsclc, "prophylactic rhTPO cycle")
    assert treated.cycle2_nadir.mean() > control.cycle2_nadir.mean()


def test_a_check_reads_each_arm_from_its_own_cycle(nsclc):
    rows = pd.read_csv(ROOT / "data" / "cit_summary.csv")
    rows = rows[rows.study == "nsclc_rhtpo_2011"]
    expected = {("control cycle (previous cycle)", "nadir_plt"): "cycle1_nadir",
                ("control cycle (previous cycle)", "duration_thrombocytopenia_days"):
                    "cycle1_days_below_100",
                ("control cycle (previous cycle)", "plt_auc_day0_21"): "cycle1_auc_21_days",
                ("prophylactic rhTPO cycle", "nadir_plt"): "cycle2_nadir",
                ("prophylactic rhTPO cycle", "duration_thrombocytopenia_days"):
                    "cycle2_days_below_100",
                ("prophylactic rhTPO cycle", "plt_auc_day0_21"): "cycle2_auc_21_days"}
    for row in rows.itertuples():
        reader = arm_row_reader(nsclc.spec, row, row.arm)
        table = arm(nsclc, row.arm)
        column = expected[(row.arm, row.endpoint)]
        assert reader(table) == pytest.approx(table[column].mean()), (row.arm, row.endpoint)
    # the duration rows state no level ("not stated in abstract"): the file's data_level
    assert rows.threshold[rows.endpoint == "duration_thrombocytopenia_days"].str.contains(
        "not stated").all()


def test_a_data_cycle_arm_refuses_rows_it_cannot_read_from_a_cycle(nsclc):
    row = next(pd.DataFrame([{"study": "s", "arm": "control cycle (previous cycle)",
                              "endpoint": "response_proportion", "threshold": "",
                              "day": math.nan, "statistic": "percent"}]).itertuples())
    message = arm_row_reader(nsclc.spec, row, "control cycle (previous cycle)")
    assert isinstance(message, str)
    assert "data_cycle = 1" in message and "response_proportion" in message


def test_the_check_of_the_bundled_file_runs_every_row():
    result = check_trial(load_trial_spec(NSCLC, subjects=120),
                         ROOT / "data" / "cit_summary.csv", replicates=2)
    assert len(result.table) == 6 and result.table.predicted.notna().all()


def test_a_cycles_row_is_read_over_the_first_n_patients_given_that_cycle(tmp_path):
    # a self-controlled study's cycle-2 rows describe the patients given cycle 2 (a CIT user
    # test, 2026-12-04: virtual studies of "32" were read over the 29-31 of the first 32
    # enrolled who were given cycle 2). Replicate 0 rerun as its own trial: the check's
    # value of each row is the mean over the first n patients of its trial arm given the
    # row's cycle, and check_replicates.csv records that size
    from dataclasses import replace

    import plateletpd as pp
    from plateletpd.study.uncertainty import _replicate_spec

    # a course that gives cycle 2 only at PLT >= 180 within a week of its day: some enrolled
    # patients are never given it
    text = TEXT.replace("delay_below = 100\n", "delay_below = 180\n").replace(
        "give_up_after_days = 28\n", "give_up_after_days = 7\n")
    path = tmp_path / "strict.toml"
    path.write_text(text)
    spec = load_trial_spec(path, subjects=80)
    result = check_trial(spec, ROOT / "data" / "cit_summary.csv", replicates=2)
    patients = pp.run_trial(replace(spec, seed=_replicate_spec(spec, 0, None)[0])).subjects
    cycles = spec.extra["data_cycles"]
    treated = patients[patients.arm == "prophylactic rhTPO cycle"].head(24)
    assert 0 < np.isfinite(treated.cycle2_day).sum() < 24  # the case under test
    first = result.replicates[result.replicates.replicate == 0].set_index("line")
    for row in result.table.itertuples():
        if row.endpoint != "nadir_plt":
            continue
        cycle = cycles[row.trial_arm]
        arm = patients[patients.arm == row.trial_arm]
        given = arm[np.isfinite(arm[f"cycle{cycle}_day"])].head(int(row.n))
        assert first.loc[row.line, "value"] == pytest.approx(
            given[f"cycle{cycle}_nadir"].mean(), rel=1e-12)
        assert first.loc[row.line, "virtual_n"] == len(given) >= row.virtual_n


CASES = [
    # data_cycle after the last cycle
    ("data_cycle = 2\n", "data_cycle = 3\n", "data_cycle = 3",
     ["data_cycle 3 is after the last cycle", "cycles = 2"]),
    # data_cycle without a data arm to read
    ('data_arm = "prophylactic rhTPO cycle"\n', "", 'data_cycle = 2',
     ["data_cycle says how the arm's data rows are read", "data_arm"]),
    # a level the per-cycle columns do not count
    ("data_level = 100\n\n[[arms]]", "data_level = 30\n\n[[arms]]", "data_level = 30",
     ["data_level", "20, 50, 75 or 100"]),
]


@pytest.mark.parametrize("old, new, marker, phrases", CASES)
def test_bad_self_controlled_files_are_named_with_the_fix(tmp_path, old, new, marker, phrases):
    assert_named(changed(TEXT, old, new), tmp_path / "self.toml", load_trial_spec,
                 TrialSpecError, marker, phrases)


def test_data_cycle_needs_a_course(tmp_path):
    start, end = TEXT.index("[chemotherapy]"), TEXT.index("[response]")
    text = TEXT[:start] + TEXT[end:]
    text = text.replace('[[eligibility]]', '').replace('rule = "nadir_below"       # "severe '
                                                       'thrombocytopenia in the last '
                                                       'chemotherapy cycle"\n', '')
    text = text.replace("below = 50\ncycle = 1\n", "")
    text = text.replace('support = ["rhTPO 300 U/kg d2,4,6,9"]\nsupport_cycles = [2]\n', '')
    path = tmp_path / "nocourse.toml"
    path.write_text(text)
    with pytest.raises(TrialSpecError) as error:
        load_trial_spec(path)
    assert "data_cycle reads the data rows from one cycle of a chemotherapy course" in \
        str(error.value)


def test_a_fits_trial_arms_read_the_cycles_as_the_check_does_and_survive_pickling():
    # the fit's [[trials]] path (inference.trial_arms) reads the same six rows from the same
    # cycles; a problem sent to Dask workers is pickled, its readers rebuilt per arm
    import pickle

    from plateletpd.inference.trial_arms import TrialArms
    from plateletpd.io.outcomes import load_outcomes

    spec = load_trial_spec(NSCLC, subjects=120)
    data = load_outcomes(ROOT / "data" / "cit_summary.csv")
    arms = TrialArms.create(NSCLC, spec.model, data, subjects_per_arm=120)
    assert sorted(arms.rows.line) == [11, 12, 13, 14, 15, 16]
    values = {name: spec.model.parameters[name].value for name in
              ("chemotherapy_sensitivity",)}
    predicted = arms.predict(values)
    again = pickle.loads(pickle.dumps(arms)).predict(values)
    pd.testing.assert_frame_equal(predicted, again)
    # the rhTPO cycle (cycle 2, support) has a higher nadir than the selecting cycle 1
    nadir = predicted[predicted.endpoint == "nadir_plt"].set_index("arm").predicted
    assert nadir["prophylactic rhTPO cycle"] > nadir["control cycle (previous cycle)"]


def test_data_level_gives_an_unstated_duration_row_its_level_outside_a_cycle_too(nsclc):
    # a duration row whose threshold names no level ("not stated in abstract", as NSCLC
    # 2011's) is refused as ambiguous without data_level, and read at the arm's level with it
    from plateletpd.study.check import row_reader

    row = next(pd.DataFrame([{"study": "s", "arm": "a",
                              "endpoint": "duration_thrombocytopenia_days",
                              "threshold": "not stated in abstract", "day": math.nan,
                              "statistic": "mean"}]).itertuples())
    response = nsclc.spec.response
    assert "names no count level" in row_reader(row, response)
    table = arm(nsclc, "control cycle (previous cycle)")
    reader = row_reader(row, response, level=50.0)
    assert reader(table) == pytest.approx(table.days_below_50.mean())
    # a level the whole-follow-up columns do not count is named with the fix
    message = row_reader(row, response, level=100.0)
    assert "outside a data_cycle arm the trial counts days below 20 or 50" in message


def test_a_peak_row_of_a_data_cycle_arm_reads_that_cycles_recovery_peak(nsclc):
    row = next(pd.DataFrame([{"study": "s", "arm": "prophylactic rhTPO cycle",
                              "endpoint": "peak_plt", "threshold": "", "day": math.nan,
                              "statistic": "mean"}]).itertuples())
    reader = arm_row_reader(nsclc.spec, row, "prophylactic rhTPO cycle")
    table = arm(nsclc, "prophylactic rhTPO cycle")
    assert reader(table) == pytest.approx(table.cycle2_peak.mean())
    # the recovery peak is at or above the nadir and at most the cycle's highest count
    given = table.cycle2_nadir.notna()  # a patient whose cycle 2 never came reads NaN
    assert given.any() and table.cycle2_peak[~given].isna().all()
    assert (table.cycle2_peak[given] >= table.cycle2_nadir[given]).all()


def test_the_trial_command_prints_each_cycles_nadir_and_peak_for_a_course(tmp_path, capsys):
    # a crossover's endpoints are per cycle (Bai 2004: the nadir and maximal count of each
    # cycle); the response from day 0 that the arm table prints is not one of them, so the
    # command prints the per-cycle means too, the values of summary.csv
    from plateletpd.cli import main

    out = tmp_path / "bai"
    assert main(["trial", "bai2004_rhtpo_crossover", "--n", "20", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "per cycle (mean of the patients given it):" in printed
    summary = pd.read_csv(out / "summary.csv").set_index("arm")
    cycles = printed.split("per cycle (mean of the patients given it):")[1]
    for arm in summary.index:
        line = next(row for row in cycles.splitlines() if row.startswith(arm + " ")
                    and "mean" not in row and len(row.split()) == len(arm.split()) + 5)
        values = [float(v) for v in line.split()[len(arm.split()):]]
        assert values[-1] == pytest.approx(summary.loc[arm, "mean_cycle2_peak"], abs=0.05)
        assert values[-2] == pytest.approx(summary.loc[arm, "mean_cycle2_nadir"], abs=0.05)


def test_a_duration_row_that_states_its_level_is_read_at_it_not_at_data_level(nsclc):
    # a user test (2026-12-04): with data_level = 100 a row "PLT <75" was read as days
    # below 100 without a word. The row's own level comes first; data_level stands in only
    # for a row that names none (NSCLC 2011's "not stated in abstract", above)
    row = next(pd.DataFrame([{"study": "s", "arm": "control cycle (previous cycle)",
                              "endpoint": "duration_thrombocytopenia_days",
                              "threshold": "PLT <75", "day": math.nan,
                              "statistic": "mean"}]).itertuples())
    table = arm(nsclc, "control cycle (previous cycle)")
    assert nsclc.spec.extra["data_levels"]["control cycle (previous cycle)"] == 100
    reader = arm_row_reader(nsclc.spec, row, "control cycle (previous cycle)")
    assert reader(table) == pytest.approx(table.cycle1_days_below_75.mean())
    assert table.cycle1_days_below_75.mean() < table.cycle1_days_below_100.mean()
    assert "cycle1_days_below_75" in reader.reading


def test_one_arm_read_for_two_cycles_equals_the_paired_arms(tmp_path):
    # a user test (2026-12-04): a self-controlled study whose drug is given in both cycles
    # needed two identical arms (one per data_cycle), simulated twice. data_cycles reads
    # one arm's data arms from their own cycles. NSCLC 2011's design as one arm with the
    # rhTPO support in cycle 2: its cycle 1 is the paired file's control arm (the same
    # patients, nothing given before cycle 2), its cycle 2 the rhTPO arm, so the check's
    # table is the paired file's, row for row
    text = NSCLC.read_text()
    start = text.index("[[arms]]\nname = \"control cycle (previous cycle)\"")
    end = text.index("[[arms]]\nname = \"prophylactic rhTPO cycle\"")
    one = (text[:start] + text[end:]).replace(
        'reference_arm = "control cycle (previous cycle)"', "").replace(
        'data_arm = "prophylactic rhTPO cycle"\ndata_cycle = 2',
        'data_arm = ["control cycle (previous cycle)", "prophylactic rhTPO cycle"]\n'
        'data_cycles = { "control cycle (previous cycle)" = 1, "prophylactic rhTPO cycle" = 2 }')
    assert one.splitlines().count("[[arms]]") == 1 and "data_cycles" in one
    path = tmp_path / "one_arm.toml"
    path.write_text(one)
    data = ROOT / "data" / "cit_summary.csv"
    paired = check_trial(load_trial_spec(NSCLC, subjects=150), data, replicates=2).table
    single = check_trial(load_trial_spec(path, subjects=150), data, replicates=2).table
    columns = ["line", "arm", "observed", "predicted", "interval_low", "interval_high",
               "virtual_n"]
    pd.testing.assert_frame_equal(single[columns].sort_values("line").reset_index(drop=True),
                                  paired[columns].sort_values("line").reset_index(drop=True))
    bad = one.replace('"prophylactic rhTPO cycle" = 2 }', '"prophylactic rhTPO" = 2 }')
    path.write_text(bad)
    with pytest.raises(pp.PlateletPDError, match="data_cycles names 'prophylactic rhTPO'"):
        load_trial_spec(path)


def test_a_cycles_recovery_day_is_timed_from_its_first_day_back_to_the_level_after_its_nadir():
    # a user test (2026-12-04): Xiao 2016 reports each cycle's "recovery time" (19.4 against
    # 13.4 days) and check refused it ("a cycle's time to a level is not computed"). The
    # V-shaped cycle: 300 - 25 t down to 50 on day 10, then 50 + 10 (t - 10): back to 100
    # on day 15, to 75 on day 12.5; never below 50 (its nadir is 50): no value at 50
    result = linear_course()
    t = result.times
    result.platelets[:] = np.where(t < 10, 300 - 25 * t, 50 + 10 * (t - 10))
    readings = result.readings(1, recovery=(50, 75, 100))
    assert readings[("recovery", 100)][0] == pytest.approx(15.0)
    assert readings[("recovery", 75)][0] == pytest.approx(12.5)
    assert math.isnan(readings[("recovery", 50)][0])
    # cycle 2 starts on day 21 at 160 and rises: it never fell below 100
    assert math.isnan(result.readings(2, recovery=(100,))[("recovery", 100)][0])
    # a count still below the level when the cycle's window ends has not recovered (NaN)
    result.platelets[:] = np.where(t < 10, 300 - 25 * t, 50 + 1 * (t - 10))
    assert math.isnan(result.readings(1, recovery=(100,))[("recovery", 100)][0])


def test_a_data_cycle_arm_reads_a_recovery_time_row_and_refuses_an_untimed_level(nsclc):
    row = next(pd.DataFrame([{"study": "s", "arm": "control cycle (previous cycle)",
                              "endpoint": "time_to_threshold_days", "threshold": "PLT >=100",
                              "day": math.nan, "statistic": "mean"}]).itertuples())
    table = arm(nsclc, "control cycle (previous cycle)")
    reader = arm_row_reader(nsclc.spec, row, "control cycle (previous cycle)")
    assert reader(table) == pytest.approx(np.nanmean(table.cycle1_recovery_day_100))
    assert (table.cycle1_recovery_day_100.dropna() > 0).all()
    other = next(pd.DataFrame([{**row._asdict(), "threshold": "PLT >=150"}]).itertuples())
    assert "times recovery to 50, 75, 100" in arm_row_reader(
        nsclc.spec, other, "control cycle (previous cycle)")
