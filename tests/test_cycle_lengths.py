"""Courses whose cycles differ in length or regimen (study/cycles.py): ``cycle_days`` and
``regimen`` written as one value per cycle, as dose-dense and sequential regimens are
published ("four cycles every 14 days, then four every 21"; two user tests asked for it,
models/cit_marrow_reserve.md, the oxaliplatin thesis of the fifty-fifth session).

Properties that could fail: a list of equal values is the scalar course bit for bit; each
cycle is planned its own length after the day the previous one was given (replayed with
plain loops from the final courses, as tests/test_cycles.py replays the delay rule); each
cycle's regimen is the one listed (an independent integration of one patient's doses as a
plain regimen text); the relative dose intensity of hand-computed courses; the horizon;
errors that name the fix; a trial file end to end (its report and the cycle-length warning).
"""

import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
# tests/test_cycles.py's course (issue 16's example: delay while PLT < 100, weekly
# re-checks, give up after 28 days, 20% less after a delay) at its depth of 1.55 doses, on
# its 40 virtual patients of the Yuan 2025 trial; the cycle-length test's file writer
from test_cycle_length_warning import _written
from test_cycles import COURSE, cohort, replay_delay_rule, run  # noqa: F401 (cohort: a fixture)

from plateletpd.cli import main
from plateletpd.dosing.regimens import as_regimen
from plateletpd.dosing.schedules import expand
from plateletpd.errors import PlateletPDError
from plateletpd.numerics.solvers import DormandPrince5
from plateletpd.simulation.simulate import _integrate
from plateletpd.study.cycles import (
    ChemotherapyCourse,
    CourseResult,
    relative_dose_intensity,
    simulate_course,
)
from plateletpd.study.trial import CycleLengthWarning, load_trial_spec

ROOT = Path(__file__).resolve().parents[1]
DOSE = 1.55
assert COURSE.regimen == f"chemotherapy {DOSE} dose"
# a dose-dense start, then the usual interval (the shape of AC every 14 days followed by a
# taxane every 21; the lengths are the test's, no study's)
LENGTHS = [14.0, 14.0, 21.0, 21.0]


def test_lists_of_equal_values_are_the_scalar_course_bit_for_bit(cohort):
    scalar = run(cohort, COURSE)
    listed = run(cohort, replace(COURSE, cycle_days=[21] * 4,
                                 regimen=[f"chemotherapy {DOSE} dose"] * 4))
    assert np.isfinite(scalar.delay[:, 1:]).any() and (scalar.delay[:, 1:] > 0).any()
    for name in ("platelets", "cycle_day", "delay", "dose", "abandoned"):
        np.testing.assert_array_equal(getattr(listed, name), getattr(scalar, name))
    np.testing.assert_array_equal(relative_dose_intensity(listed),
                                  relative_dose_intensity(scalar))
    assert listed.course.horizon == scalar.course.horizon


def test_each_cycle_is_planned_its_own_length_after_the_previous_one(cohort):
    course = replace(COURSE, cycle_days=LENGTHS)
    result = run(cohort, course)
    # replayed with plain loops (tests/test_cycles.py): not vacuous, some 14-day cycles held
    assert replay_delay_rule(result, LENGTHS) > 0
    # without a delay rule, the cycles fall on the cumulative lengths: 0, 14, 28, 49
    planned = run(cohort, replace(course, delay_below=None, reduce_after_delay_pct=0))
    np.testing.assert_array_equal(planned.cycle_day,
                                  np.tile([0.0, 14.0, 28.0, 49.0], (40, 1)))


def test_each_cycle_gets_its_listed_regimen(cohort):
    model, vectors = cohort
    regimens = [f"chemotherapy {DOSE} dose", "chemotherapy 0.5 dose",
                f"chemotherapy {DOSE} dose", "chemotherapy 0.5 dose"]
    course = ChemotherapyCourse(regimen=regimens, cycle_days=LENGTHS, cycles=4)
    result = simulate_course(model, course, vectors)
    # an independent replay of one patient: its cycles as one plain regimen text
    text = " + ".join(f"{regimen} t={day:g}" for regimen, day in zip(regimens, [0, 14, 28, 49]))
    schedule = expand(as_regimen(text), model.dose_targets)
    index = model.output_names.index("platelets")
    for patient in (0, 17):
        replay = _integrate(model, schedule, vectors[patient:patient + 1],
                            schedule.amounts({})[None, :], result.times,
                            DormandPrince5(rtol=1e-6, atol=1e-6), False)
        np.testing.assert_allclose(replay.outputs[0, :, index], result.platelets[patient],
                                   rtol=1e-5, atol=1e-4)
    # against the same course at the full dose in every cycle, the half-dose cycles are
    # milder in every patient and the first cycle is the same (the model's kill grows
    # with the dose: a property, not a number)
    full = simulate_course(model, replace(course, regimen=f"chemotherapy {DOSE} dose"),
                           vectors)
    assert np.all(result.platelets[:, result.times < 14] ==
                  full.platelets[:, full.times < 14])
    assert np.all(result.nadir(2) > full.nadir(2)) and np.all(result.nadir(4) > full.nadir(4))


def test_relative_dose_intensity_with_cycles_of_their_own_lengths():
    # Hryniuk 1984 (J Clin Oncol 2:1281), over the planned course 14 + 14 + 21 + 21 = 70
    # days; hand-computed
    course = replace(COURSE, cycle_days=LENGTHS)
    nan = np.nan
    days = np.array([[0, 14, 28, 49],        # as planned: 1
                     [0, 21, 35, 56],        # cycle 2 held 7 days: 70 / 77
                     [0, 14, 28, 56],        # cycle 4 held 7 days: 70 / 77
                     [0, 14, nan, nan]])     # abandoned after 2: 2 of 4 doses, span 70
    doses = np.array([[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1], [1, 1, nan, nan]])
    constructed = CourseResult(course, np.zeros(1), np.zeros((4, 1)), np.zeros(4), days,
                               np.zeros((4, 4)), doses, np.zeros(4, bool), {})
    np.testing.assert_allclose(relative_dose_intensity(constructed),
                               [1.0, 70 / 77, 70 / 77, 0.5], rtol=1e-12)


def test_the_horizon_and_the_first_cycles_of_a_listed_course():
    course = replace(COURSE, cycle_days=LENGTHS)
    # 14 + 14 + 21 days between the cycles, up to 28 days' wait before each of the last
    # three, and 21 days' follow-up after the last
    assert course.horizon == 14 + 14 + 21 + 3 * 28 + 21
    cut = course.first_cycles(2, follow_up_days=30.0)
    assert (cut.cycles, cut.cycle_days, cut.follow_up_days) == (2, (14.0, 14.0), 30.0)
    assert "cycles 1-2: `chemotherapy 1.55 dose`, 14-day cycles; cycles 3-4" in \
        course.describe()


@pytest.mark.parametrize("keywords, message", [
    ({"cycle_days": [14, 21]}, "cycle_days lists 2 cycle lengths but cycles = 4"),
    ({"cycle_days": [14, 14, 0, 21]}, "one positive number per cycle"),
    ({"cycle_days": []}, "one positive number per cycle"),
    ({"regimen": ["chemotherapy 1 dose"] * 3}, "regimen lists 3 cycles' doses but cycles = 4"),
    ({"regimen": ["chemotherapy 1 dose", "", "x", "y"]}, "a list of one per cycle"),
    ({"cycle_days": [7, 21, 21, 21], "judged_on_day": 10},
     "judged_on_day must be a cycle day from 1 to cycle_days (the shortest, 7"),
])
def test_a_bad_list_is_a_clear_error(keywords, message):
    with pytest.raises(PlateletPDError, match="cycle"):
        replace(COURSE, **keywords)
    with pytest.raises(PlateletPDError) as caught:
        replace(COURSE, **keywords)
    assert message in str(caught.value)


def test_a_trial_file_with_cycle_lengths_runs_reports_and_warns(tmp_path):
    path = _written(tmp_path, "[14, 14, 21, 21]")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spec = load_trial_spec(path, subjects=60)
    # the bundled fit's course studies are given every 21 or 28 days
    # (tests/test_cycle_length_warning.py): the 14-day cycles are outside
    message = [str(w.message) for w in caught if issubclass(w.category, CycleLengthWarning)]
    assert len(message) == 1 and "cycle_days = 14 (the list's 14-day cycles)" in message[0]
    assert spec.extra["course"].cycle_days == (14.0, 14.0, 21.0, 21.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CycleLengthWarning)
        assert main(["trial", str(path), "--out", str(tmp_path / "run"), "--n", "60"]) == 0
    patients = pd.read_csv(tmp_path / "run" / "patients.csv")
    given = patients.dropna(subset=["cycle4_day"])
    assert len(given) > 0
    # each cycle comes its own planned length, plus its delay, after the previous one
    np.testing.assert_array_equal(given["cycle2_day"] - given["cycle1_day"],
                                  14.0 + given["cycle2_delay_days"])
    np.testing.assert_array_equal(given["cycle3_day"] - given["cycle2_day"],
                                  14.0 + given["cycle3_delay_days"])
    np.testing.assert_array_equal(given["cycle4_day"] - given["cycle3_day"],
                                  21.0 + given["cycle4_delay_days"])
    assert (given["cycle4_delay_days"] == 0).any()
    assert "cycles 1-2: `chemotherapy 1 dose`, 14-day cycles; cycles 3-4: " \
        "`chemotherapy 1 dose`, 21-day cycles" in (tmp_path / "run" / "report.md").read_text()
    # a list of the wrong length is refused at load, naming the key and the fix
    with pytest.raises(PlateletPDError, match="cycle_days lists 3 cycle lengths but cycles "
                                              "= 4: give one length per cycle"):
        load_trial_spec(_written(tmp_path, "[14, 14, 21]"))
    # a per-cycle regimen's unreadable dose text is named by its cycle, at the course
    text = path.read_text()
    assert text.count('\nregimen = "chemotherapy 1 dose"') == 1
    path.write_text(text.replace('\nregimen = "chemotherapy 1 dose"', '\nregimen = ['
                                 '"chemotherapy 1 dose", "chemotherapy 0.8 dose", '
                                 '"chemotherapy 1 dose", "chemo"]', 1))
    with pytest.raises(PlateletPDError, match=r"\[chemotherapy\] regimen: cycle 4's dose "
                                              r"text: cannot read dose 'chemo'"):
        load_trial_spec(path)
