"""Incidence rows (issue 17): the share of patients with a count below a level, or with a
delayed, dose-reduced or abandoned cycle, within a cycle, cycles a-b or the whole course,
read from a trial's patient table as `plateletpd check` and a fit's [[trials]] read every
row. The rule is checked on a constructed course (window edges: a count on the day the next
cycle is given belongs to that cycle) and against the trajectories and event log of a
simulated course; ambiguous rows are refused with the reason."""

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import plateletpd as pp
from plateletpd.study.check import CheckError, check_trial, row_reader
from plateletpd.study.cohort import ArmDesign
from plateletpd.study.cycles import (ChemotherapyCourse, CourseResult, patient_table,
                                     simulate_course_arm)
from plateletpd.study.endpoints import parse_cycles, parse_incidence
from plateletpd.study.trial import load_trial_spec, patient_endpoints

RESPONSE = {"threshold": 100.0, "rise": None, "by_day": 21.0}
ROOT = Path(__file__).resolve().parents[1]
NHLB = ROOT / "trials" / "nhlb_chop.toml"
DATA = ROOT / "data" / "cit_summary.csv"


def row(threshold, endpoint="incidence_proportion", statistic="percent", day=math.nan):
    return SimpleNamespace(endpoint=endpoint, threshold=threshold, statistic=statistic,
                           day=day, n=math.nan)


# ---------------------------------------------------------------- the threshold texts
@pytest.mark.parametrize("text, level, events, window", [
    # data/cit_summary.csv, the incidence rows' texts as published
    ("PLT <50", 50.0, (), None),                                           # lines 74, 75
    ("grade 4 thrombocytopenia, cycles 1-2", 25.0, (), (1, 2)),            # line 76
    ("grade 4 thrombocytopenia, cycle 6", 25.0, (), (6, 6)),               # line 77
    ("grade 3/4 thrombocytopenia (PLT<50), <=6 cycles", 50.0, (), (1, 6)),  # lines 51-54
    ("chemo delay/reduction/missed dose due to thrombocytopenia", None,
     ("delayed", "reduced", "abandoned"), None),                           # lines 55-58
    ("chemo dose reduction/delay for any reason, cycles 3-6", None,
     ("delayed", "reduced"), (3, 6)),                                      # lines 65, 66
    # CTCAE v3-v5 / WHO grades: grade 3 is 25 to < 50, grade 4 < 25
    ("grade 3-4 thrombocytopenia", 50.0, (), None),
    ("grade >=3, cycles 2 to 4", 50.0, (), (2, 4)),
    ("chemotherapy abandoned", None, ("abandoned",), None),
    # "PLT <=50" as Chinese abstracts write it (a CIT user test, 2026-12-04: refused as
    # naming no level); the count is continuous, so <= 50 is the event < 50
    ("PLT <=50", 50.0, (), None),
    ("PLT \u226450, cycles 1-2", 50.0, (), (1, 2)),
    ("PLT <=25, <=6 cycles", 25.0, (), (1, 6)),
])
def test_threshold_texts_name_the_level_events_and_cycles(text, level, events, window):
    event = parse_incidence(text)
    assert event.level == level and event.events == events
    assert (None if event.first is None else (event.first, event.last)) == window


@pytest.mark.parametrize("text, reason", [
    ("grade 3 thrombocytopenia", "ambiguous"),          # exactly 3, or 3 or worse?
    ("grade 1", "ambiguous"),
    ("grade 4 (PLT <50)", "more than one level"),
    ("PLT <50 or a delay", "both a platelet level and a chemotherapy course event"),
    ("cycle 2 and cycle 4, PLT <25", "more than one cycle window"),
    ("PLT <25, cycles 4-2", "1 <= a <= b"),
    ("thrombocytopenia", "names no event"),
    ("", "names its event in threshold"),
])
def test_ambiguous_threshold_texts_are_refused_with_the_reason(text, reason):
    message = parse_incidence(text)
    assert isinstance(message, str) and reason in message


def test_rows_the_trial_cannot_read_say_why():
    course = ChemotherapyCourse(cycles=4)
    # a window beyond the course
    assert "course has 4 cycles" in row_reader(row("grade 4, cycle 6"), RESPONSE, course)
    # cycles or course events without a course
    assert "[chemotherapy] course" in row_reader(row("PLT <25, cycles 1-2"), RESPONSE)
    assert "[chemotherapy] course" in row_reader(row("dose delay"), RESPONSE)
    # a day instead of cycles; a count statistic; cycle 1 cannot be delayed
    assert "not to a day" in row_reader(row("PLT <50", day=28.0), RESPONSE, course)
    assert "percent or proportion" in row_reader(row("PLT <50", statistic="count"),
                                                 RESPONSE, course)
    assert "never delayed" in row_reader(row("delay, cycle 1"), RESPONSE, course)
    # Winer 2017 line 49: a recovery time whose level the abstract does not give
    reason = row_reader(row("recovery from nadir (definition not in abstract)",
                            endpoint="time_to_threshold_days", statistic="mean"), RESPONSE)
    assert "names no count level: ambiguous" in reason
    assert parse_cycles("mean nadir across cycles 2-6") == (2, 6)
    assert parse_cycles("PLT <50") is None


# ---------------------------------------------------------------- a constructed course
def constructed_course() -> CourseResult:
    """Four 21-day cycles, one point a day. Patient 0 dips to 20 on day 42, the day cycle 3
    is given (so in cycle 3, not 2); patient 1 dips on day 41, the last day of cycle 2;
    patient 2 never dips, its cycle 2 was delayed 7 days and reduced to 0.8, and its cycle
    4 never given (abandoned after waiting). Patient 0's cycle 4 is delayed 7 days."""
    course = ChemotherapyCourse(cycles=4, cycle_days=21, delay_below=100,
                                give_up_after_days=28, follow_up_days=21, points_per_day=1)
    times = np.arange(0.0, 120.0)
    platelets = np.full((3, times.size), 200.0)
    platelets[0, 42] = 20.0
    platelets[1, 41] = 20.0
    cycle_day = np.array([[0, 21, 42, 70], [0, 21, 42, 63], [0, 28, 49, np.nan]])
    delay = np.array([[0, 0, 0, 7], [0, 0, 0, 0], [0, 7, 0, np.inf]], dtype=float)
    dose = np.array([[1, 1, 1, 1], [1, 1, 1, 1], [1, 0.8, 0.8, np.nan]])
    return CourseResult(course, times, platelets, np.zeros(3, dtype=np.int64), cycle_day,
                        delay, dose, np.array([False, False, True]), {})


@pytest.mark.parametrize("text, share", [
    ("grade 4, cycle 2", 1 / 3),        # patient 1 only (day 41 < day 42)
    ("grade 4, cycle 3", 1 / 3),        # patient 0 only (day 42 is cycle 3's)
    ("grade 4, cycles 1-2", 1 / 3),
    ("grade 4, cycles 2-3", 2 / 3),
    ("grade 4, cycle 4", 0.0),          # of the two patients given cycle 4
    ("PLT <20.5, cycles 3-4", 1 / 3),
    ("PLT <20", 0.0),                   # below, not at
    ("delay, cycles 3-4", 2 / 3),       # patient 0's cycle 4, and patient 2's, never
                                        # given: delayed without end (as the course logs it)
    ("abandoned, cycles 3-4", 1 / 3),   # patient 2
    ("delay, cycle 3", 0.0),
    ("dose reduction, cycles 3-4", 0.0),  # patient 2 carries its cycle-2 reduction: not new
    ("dose reduction, cycle 2", 1 / 3),
    ("delay/reduction/missed dose", 2 / 3),  # the whole course: patients 0 and 2
])
def test_the_window_edges_on_a_constructed_course(text, share):
    table = patient_table(constructed_course()).assign(course_nadir=[20.0, 20.0, 200.0])
    reader = row_reader(row(text, statistic="proportion"), RESPONSE,
                        constructed_course().course)
    assert reader(table) == pytest.approx(share, abs=1e-12)


def test_the_denominator_is_the_patients_the_window_applies_to():
    table = patient_table(constructed_course()).assign(course_nadir=[20.0, 20.0, 200.0])
    course = constructed_course().course
    # cycle 4 was given to patients 0 and 1: patient 1 dipped in cycle 2 only, so 0 of 2;
    # make patient 1 dip in cycle 4 too: 1 of 2 (50%), not 1 of 3
    table.loc[1, "cycle4_nadir"] = 10.0
    assert row_reader(row("grade 4, cycle 4"), RESPONSE, course)(table) == 50.0
    # a nadir row over cycles: each patient's mean of its cycles' nadirs, then the mean
    nadir = row_reader(row("mean nadir across cycles 3-4", endpoint="nadir_plt",
                           statistic="mean"), RESPONSE, course)
    expected = np.mean([np.mean([20.0, 200.0]), np.mean([200.0, 10.0]), 200.0])
    assert nadir(table) == pytest.approx(expected)
    # and check.csv's reading says what was averaged (a user test saw "nadir_plt (mean)")
    assert nadir.reading == ("mean over the patients given cycle 3 of each patient's mean "
                             "of the nadirs of cycles 3-4 given")
    # "the lowest count over cycles 3-4": each patient's lowest nadir, then the mean
    lowest = row_reader(row("lowest count over cycles 3-4", endpoint="nadir_plt",
                            statistic="mean"), RESPONSE, course)
    assert lowest(table) == pytest.approx(np.mean([20.0, 10.0, 200.0]))
    assert "each patient's lowest of the nadirs of cycles 3-4" in lowest.reading


# ---------------------------------------------------------------- a simulated course
@pytest.fixture(scope="module")
def simulated():
    """60 patients of cit_marrow_reserve (model file values; the between-patient CVs of
    models/cit_marrow_reserve.md) on four 21-day cycles of 1.2 units held while PLT < 100
    (a dose at which delays, reductions and grade 4 counts all occur)."""
    model = pp.load_model("cit_marrow_reserve")
    variability = pp.Variability.from_cv({"chemotherapy_sensitivity": 0.3,
                                          "platelets_baseline": 0.17})
    base = model.parameter_vector(None, {"body_weight": 65.0})
    vectors = pp.cohort_matrix(model, base, variability, variability.eta(60, 5))
    course = ChemotherapyCourse(regimen="chemotherapy 1.2 dose", cycle_days=21, cycles=4,
                                delay_below=100, recheck_every_days=7, give_up_after_days=14,
                                reduce_after_delay_pct=20, follow_up_days=21)
    arm = simulate_course_arm(model, ArmDesign(name="chemotherapy only", entry_below=None),
                              course, vectors)
    table = patient_endpoints(arm, RESPONSE, 1.0)
    return course, arm.extra["course"], table


@pytest.mark.parametrize("level, first, last", [(25, 1, 2), (50, 3, 3), (50, 2, 4),
                                                (50, 4, 4), (50, None, None)])
def test_a_count_share_equals_the_share_computed_from_the_trajectories(simulated, level,
                                                                       first, last):
    course, result, table = simulated
    text = f"PLT <{level}" + ("" if first is None else f", cycles {first}-{last}")
    read = row_reader(row(text, statistic="proportion"), RESPONSE, course)(table)
    # directly: from the day cycle `first` was given to the day cycle `last` + 1 was
    # (never given: the end of follow-up), any point of the trajectory below the level
    if first is None:
        direct = np.mean(np.nanmin(result.platelets, axis=1) < level)
    else:
        start = result.cycle_day[:, first - 1]
        end = result.cycle_day[:, last] if last < course.cycles else np.full(len(start),
                                                                             np.inf)
        end = np.where(np.isfinite(end), end, np.inf)
        inside = (result.times >= start[:, None]) & (result.times < end[:, None])
        below = (np.where(inside, result.platelets, np.inf) < level).any(axis=1)
        given = np.isfinite(start)
        direct = np.mean(below[given])
    assert read == pytest.approx(direct, abs=1e-12)


def test_a_course_event_share_equals_the_share_in_the_event_log(simulated):
    course, result, table = simulated
    events = pd.DataFrame(result.events)
    assert {"delayed", "dose reduced"} <= set(events.event)  # the rule has work to do
    for first, last in ((2, 4), (3, 4), (2, 2)):
        read = row_reader(row(f"chemotherapy delay, dose reduction or discontinuation, "
                              f"cycles {first}-{last}", statistic="proportion"),
                          RESPONSE, course)(table)
        # directly: the patients on chemotherapy when cycle `first` was due (cycle
        # first - 1 given) with a "delayed", "dose reduced" or "abandoned" entry for a
        # cycle of the window in the course's event log
        due = np.flatnonzero(np.isfinite(result.cycle_day[:, first - 2]))
        logged = set(events.patient[events.cycle.between(first, last)])
        direct = np.mean([patient in logged for patient in due])
        assert read == pytest.approx(direct, abs=1e-12)


# ---------------------------------------------------------------- through plateletpd check
def test_check_reads_the_bundled_trials_rows_and_refuses_a_double_mapping(tmp_path):
    spec = load_trial_spec(NHLB)
    # both rows are computed from the file's two arms (no refusal), over 135 patients
    # (a short run: 2 replicates of 20 screened patients each, so fewer than n enrolled:
    # each virtual study screens more until it has them, or the note says to raise --n)
    result = check_trial(load_trial_spec(NHLB, subjects=20),
                         DATA, replicates=2)
    assert result.table.line.tolist() == [76, 77]
    assert result.table.predicted.notna().all()
    assert any("screened more" in note or "raise --n" in note for note in result.notes)
    # two trial arms mapped to one data arm: refused, naming both
    with pytest.raises(CheckError, match="mapped from more than one trial arm"):
        check_trial(spec, DATA, replicates=2,
                    arm_map={"CHOP-21, cycle 6": "CHOP/CHOEP, cycles 1-2",
                             "CHOP-21, cycles 1-2": "CHOP/CHOEP, cycles 1-2"})
    with pytest.raises(CheckError, match="lines 5 are not rows of study"):
        check_trial(spec, DATA, replicates=2, lines=[5, 76])


def test_check_refuses_an_ambiguous_incidence_row_naming_its_line(tmp_path):
    spec = load_trial_spec(NHLB)
    data = pd.read_csv(DATA)
    chosen = data[data.study == "nhlb_chop_cumulative_thrombocytopenia"].copy()
    chosen.loc[chosen.index[1], "threshold"] = "grade 3 thrombocytopenia, cycle 6"
    chosen.to_csv(tmp_path / "rows.csv", index=False)
    with pytest.raises(CheckError) as error:
        check_trial(spec, tmp_path / "rows.csv", replicates=2)
    assert "line 3" in str(error.value) and "ambiguous" in str(error.value)


def test_a_count_compared_at_a_day_is_read_at_the_visit_the_trial_judges():
    # carboplatin label (cit_summary.csv line 73): "By day 28, 90% of patients have platelet
    # counts above 100": read at the day-28 visit when [response] judges 100 there
    table = pd.DataFrame({"plt_at_least_100_day_28": [True, True, False, True],
                          "response_day": [np.nan] * 4, "responder": [False] * 4})
    label = row("PLT >100", endpoint="cumulative_response_proportion", day=28.0)
    at_visit = {**RESPONSE, "at_visits": [28.0], "at_visit_levels": [100.0]}
    assert row_reader(label, at_visit)(table) == 75.0
    # without the visit judged: the trial's response rule, as before
    assert row_reader(label, RESPONSE)(table) == 0.0


def test_the_check_command_takes_lines_and_refuses_malformed_ones(tmp_path, capsys):
    from plateletpd.cli import main

    # --lines 77 checks cit_summary.csv line 77 alone (the NHL-B cycle-6 row)
    out = tmp_path / "check"
    assert main(["check", str(NHLB), "--data", str(DATA), "--n", "20", "--replicates", "2",
                 "--lines", "77", "--only-mapped-arms", "--out", str(out)]) == 0
    table = pd.read_csv(out / "check.csv")
    assert table.line.tolist() == [77]
    for text in ("7x", "9-3", "0"):
        assert main(["check", str(NHLB), "--data", str(DATA), "--lines", text]) == 2
        assert "--lines" in capsys.readouterr().err
    # a line that is not the study's: the engine's error, exit status 2
    assert main(["check", str(NHLB), "--data", str(DATA), "--n", "20", "--replicates", "2",
                 "--lines", "5,76-77"]) == 2
    assert "lines 5 are not rows of study" in capsys.readouterr().err


# ---------------------------------------------------------------- transfusions (user test)
def _transfusion_table():
    """Five patients of a 3-cycle course: patient 4 never given cycle 2; transfusions in
    cycle 1 (patient 0), cycle 2 (patients 1 and 2) and cycle 3 (patient 2)."""
    return pd.DataFrame({
        "cycle1_day": [0.0] * 5, "cycle2_day": [21, 21, 28, 21, np.nan],
        "cycle3_day": [42, 42, 49, 42, np.nan],
        "cycle1_transfused": [True, False, False, False, True],
        "cycle2_transfused": [False, True, True, False, False],
        "cycle3_transfused": [False, False, True, False, False],
        "cycle2_nadir": [60.0, 20.0, 45.0, 80.0, np.nan],
        "transfusions": [1, 1, 2, 0, 1]})


def test_transfusion_incidence_rows_are_read_from_the_rescue_records():
    # a user test (2026-12-04) was refused "platelet transfusion, cycle 1" ("names no event
    # the trial can count") though the trial keeps cycle{c}_transfused (Vadhan-Raj 2000:
    # 75% transfused in cycle 1, 25% in cycle 2)
    course = ChemotherapyCourse(regimen="chemotherapy 1 dose", cycle_days=21, cycles=3)
    table = _transfusion_table()
    read = lambda text: row_reader(row(text), RESPONSE, course)(table)  # noqa: E731
    assert read("platelet transfusion") == pytest.approx(80.0)            # 4 of 5, any time
    assert read("platelet transfusion, cycle 2") == pytest.approx(50.0)   # 2 of the 4 given
    assert read("platelet transfusions, cycles 2-3") == pytest.approx(50.0)
    assert parse_incidence("platelet transfusion, PLT <10").startswith("it names a "
                                                                        "transfusion")
    # an arm whose rows describe cycle 2 (data_cycle): its incidence rows read that cycle
    cycle_two = lambda text: row_reader(row(text), RESPONSE, course, cycle=2)  # noqa: E731
    assert cycle_two("platelet transfusion")(table) == pytest.approx(50.0)
    assert cycle_two("PLT <50")(table) == pytest.approx(50.0)             # 20 and 45 of 4
    assert "data_cycle" in cycle_two("PLT <50, cycle 3")
    assert "not one cycle's" in cycle_two("chemotherapy delay")
