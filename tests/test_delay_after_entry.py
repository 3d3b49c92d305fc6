"""Two delay levels in one course (`[chemotherapy] delay_below_after_entry`): RECITE 2026
(romiplostim, NCT03362177; trials/recite2026_romiplostim.toml) enrolled patients whose
count was below 75 on a due day, when practice held cycles at 75, and on study gave
chemotherapy at PLT >= 100; a user test could write only one of the two levels.

Properties that could fail: the screening (no one enrolled) never judges the on-study
level; an on-study level equal to the first changes nothing (bit for bit); every cycle
judged before a patient's enrolment is the screening's, and every cycle given on or after
it was given at a count at or above the on-study level, as read on the course; bad input is
refused with the fix; a trial file states it and the report says it.
"""

import numpy as np
import pytest

import plateletpd as pp
from plateletpd.errors import PlateletPDError
from plateletpd.study.cohort import ArmDesign, values_at
from plateletpd.study.cycles import ChemotherapyCourse, HistoryRule, simulate_course_arm

BEFORE, ON_STUDY = 75.0, 100.0   # RECITE's levels (trials/recite2026_romiplostim.toml)
# typical patients but the kill per dose: mild to deep, so that some are enrolled in
# cycle 1, some cycles are held and some given
DEPTHS = np.linspace(1.5, 5.5, 9)


def setting(after=None):
    """The model, four 21-day cycles held below 75 (below ``after`` from enrolment),
    re-checked every 3 days, and the DEPTHS patients at the typical values, 65 kg."""
    model = pp.load_model("models/cit_marrow_reserve.toml")
    course = ChemotherapyCourse(regimen="chemotherapy 1 dose", cycle_days=21, cycles=4,
                                delay_below=BEFORE, delay_below_after_entry=after,
                                recheck_every_days=3, follow_up_days=21)
    vectors = np.tile(model.parameter_vector(None, {"body_weight": 65.0}), (DEPTHS.size, 1))
    vectors[:, list(model.parameters).index("chemotherapy_sensitivity")] = DEPTHS
    return model, course, vectors


def arm(after=None):
    model, course, vectors = setting(after)
    # enrolled at cycle 1's nadir below 100 (grade 1 CIT or worse), untreated on study:
    # the course alone decides the later cycles
    rules = (HistoryRule("nadir_below", below=100.0, cycle=1),)
    design = ArmDesign(name="arm", entry_below=None, judged_on_course=True, max_days=0)
    return simulate_course_arm(model, design, course, vectors, rules)


@pytest.fixture(scope="module")
def runs():
    return {"one": arm(), "same": arm(after=BEFORE), "two": arm(after=ON_STUDY)}


def test_an_equal_on_study_level_changes_nothing(runs):
    np.testing.assert_array_equal(runs["same"].platelets, runs["one"].platelets)
    np.testing.assert_array_equal(runs["same"].extra["course"].cycle_day,
                                  runs["one"].extra["course"].cycle_day)


def test_the_screening_never_judges_the_on_study_level(runs):
    np.testing.assert_array_equal(runs["two"].extra["screening_course"].cycle_day,
                                  runs["one"].extra["screening_course"].cycle_day)


def test_cycles_from_enrolment_wait_for_the_on_study_level(runs):
    one, two = runs["one"], runs["two"]
    assert two.n >= 4   # the rule under test acts on several patients
    days_one = one.extra["course"].cycle_day
    days_two = two.extra["course"].cycle_day
    course = two.extra["course"]
    changed = 0
    for row in range(two.n):
        entry = two.entry_time[row]
        for c in range(1, 4):
            planned = days_two[row, c - 1] + 21.0
            if not np.isfinite(planned):
                break
            if planned < entry - 1e-9:   # judged before enrolment: the screening's rule
                assert days_two[row, c] == days_one[row, c]
                continue
            if np.isfinite(days_two[row, c]):   # given on study: at >= 100 that morning
                count = values_at(course.times, course.platelets[row:row + 1],
                                  np.array([[days_two[row, c]]]))[0, 0]
                assert count >= ON_STUDY - 1e-9
                # ... and not at an earlier re-check (counts every 3 days from the plan)
                earlier = np.arange(planned, days_two[row, c] - 1e-9, 3.0)
                if earlier.size:
                    before = values_at(course.times, course.platelets[row:row + 1],
                                       earlier[None, :])[0]
                    assert np.all(before < ON_STUDY)
        changed += not np.array_equal(np.nan_to_num(days_two[row], nan=-1),
                                      np.nan_to_num(days_one[row], nan=-1))
    # the stricter level held at least one patient's cycle longer than 75 did
    assert changed >= 1
    held_longer = np.nansum(course.delay[:, 1:][np.isfinite(course.delay[:, 1:])])
    held_before = np.nansum(one.extra["course"].delay[:, 1:][
        np.isfinite(one.extra["course"].delay[:, 1:])])
    assert held_longer > held_before


@pytest.mark.parametrize("keys, message", [
    ({"delay_below_after_entry": 100.0}, "give delay_below too"),
    ({"delay_below": 75.0, "delay_below_after_entry": -1.0},
     "delay_below_after_entry must be a positive count"),
])
def test_bad_on_study_levels_are_refused_with_the_fix(keys, message):
    with pytest.raises(PlateletPDError, match=message):
        ChemotherapyCourse(**keys)


def test_a_trial_file_states_it_and_the_report_says_it(tmp_path, capsys):
    from pathlib import Path

    from plateletpd.cli import main
    from plateletpd.study.trial import load_trial_spec

    text = (Path(__file__).resolve().parents[1] / "trials" /
            "recite2026_romiplostim.toml").read_text()
    line = "\ndelay_below = 100 "   # the blind file's single level (a comment follows)
    assert text.count(line) == 1
    path = tmp_path / "recite_two_levels.toml"
    path.write_text(text.replace(line, "\ndelay_below = 75\ndelay_below_after_entry = 100 ",
                                 1))
    course = load_trial_spec(path).extra["course"]
    assert (course.delay_below, course.delay_below_after_entry) == (75.0, 100.0)
    assert main(["trial", str(path), "--out", str(tmp_path / "out"), "--n", "30",
                 "--seed", "1"]) == 0
    report = (tmp_path / "out" / "report.md").read_text()
    assert "a cycle waits while PLT < 75 (from enrolment: PLT < 100)" in report
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace(line, "\ndelay_below_after_entry = 100\n"
                                "delay_below = false ", 1))
    assert main(["trial", str(bad), "--out", str(tmp_path / "bad_out"), "--n", "5"]) == 2
    assert "give delay_below too" in capsys.readouterr().err
    assert not (tmp_path / "bad_out").exists()


def test_staged_passes_judge_the_on_study_level_as_unstaged_ones():
    # the staged passes read a pass's first re-check before running on: with two levels the
    # first stage must judge each patient's own level, so the decisions and courses are
    # the unstaged passes' bit for bit (enrolment days placed mid-course, some before and
    # some after a cycle's planned day)
    from plateletpd.study.cycles import simulate_course

    model, course, vectors = setting(ON_STUDY)
    entry = np.linspace(10.0, 50.0, DEPTHS.size)
    results = [simulate_course(model, course, vectors, entry=entry, staged_passes=staged)
               for staged in (False, True)]
    for name in ("platelets", "cycle_day", "delay", "dose", "abandoned"):
        assert np.array_equal(getattr(results[0], name), getattr(results[1], name),
                              equal_nan=True)
    # the on-study level acted: without enrolment days (one level) some cycle differs
    one = simulate_course(model, course, vectors)
    assert not np.array_equal(one.cycle_day, results[1].cycle_day, equal_nan=True)
