"""Support doses that start in each cycle when the count falls (`support_start_below`,
`support_max_days`): the CIT studies give rhIL-11 or rhTPO "from PLT < 75, for 7-14 days
or to PLT >= 100" (gi_rhil11 in data/cit_summary.csv: rhIL-11 25 ug/kg/d), and user tests
asked for that treatment restarted in every cycle of a course, which support from a fixed
cycle day could not say.

Properties that could fail: a level every support morning is below starts on the first
support day (the same course as plain support, bit for bit); a level no count falls below
gives no support dose; a patient starts on the first support morning below the level, its
counts up to the start are those without support (a later dose cannot change an earlier
count) and higher after it; the cap and the stop count from the start; each of several
cycles starts on its own counts; bad keys are refused with the fix.
"""

import numpy as np
import pandas as pd
import pytest

import plateletpd as pp
from plateletpd.errors import PlateletPDError
from plateletpd.study.cohort import ArmDesign, values_at
from plateletpd.study.cycles import ChemotherapyCourse, simulate_course_arm

from test_support_stop import SUPPORT, support_arm

# the sensitivities (kill per dose) of support_arm's five patients: from mild (never
# below 75 in cycle 2) to deep (below 75 within the support days)
DEPTHS = (1.0, 2.0, 3.0, 4.0, 5.0)
LEVEL = 75.0   # "from PLT < 75" (gi_rhil11, data/cit_summary.csv)


def _mornings(arm):
    """Cycle 2's support mornings (offsets 1-14 of SUPPORT's d2-15), days from cycle 1."""
    start = arm.extra["course"].cycle_day[:, 1]
    return start[:, None] + np.arange(1, 15)[None, :]


@pytest.fixture(scope="module")
def runs():
    return {"all": support_arm(sensitivities=DEPTHS),
            "none": support_arm(sensitivities=DEPTHS, support_start_below=1e-6),
            "start": support_arm(sensitivities=DEPTHS, support_start_below=LEVEL),
            "capped": support_arm(sensitivities=DEPTHS, support_start_below=LEVEL,
                                  support_max_days=3)}


def test_a_level_every_morning_is_below_is_plain_support_bit_for_bit(runs):
    always = support_arm(sensitivities=DEPTHS, support_start_below=1e6)
    np.testing.assert_array_equal(always.platelets, runs["all"].platelets)
    assert always.extra["course"].support_doses.tolist() == [14] * 5


def test_a_level_no_count_falls_below_gives_no_support_dose(runs):
    course = runs["none"].extra["course"]
    assert course.support_doses.tolist() == [0] * 5
    assert course.supported_cycles.tolist() == [0] * 5
    # with every support dose the cycle-2 counts are higher: the support acts when given
    later = runs["all"].times > runs["all"].extra["course"].cycle_day[:, 1].min() + 3
    assert np.all(np.nanmax(runs["all"].platelets[:, later], axis=1)
                  > np.nanmax(runs["none"].platelets[:, later], axis=1))


def test_support_starts_on_the_first_morning_below_and_not_before(runs):
    untreated, started = runs["none"], runs["start"]
    counts = values_at(untreated.times, untreated.platelets, _mornings(untreated))
    below = counts < LEVEL
    # the rule under test acts on some patients and not on others
    assert below.any(axis=1).sum() >= 2 and (~below.any(axis=1)).sum() >= 2
    doses = started.extra["course"].support_doses
    for patient in range(len(DEPTHS)):
        if not below[patient].any():   # never below 75 on a support morning: no support
            np.testing.assert_array_equal(started.platelets[patient],
                                          untreated.platelets[patient])
            assert doses[patient] == 0
            continue
        first = int(np.argmax(below[patient]))
        start = _mornings(untreated)[patient, first]
        # every dose from that morning to the last support day (no stop, no cap)
        assert doses[patient] == 14 - first
        before = started.times <= start + 1e-9
        np.testing.assert_allclose(started.platelets[patient][before],
                                   untreated.platelets[patient][before],
                                   rtol=1e-6)  # the solver tolerance
        assert np.nanmax(started.platelets[patient][~before]) \
            > np.nanmax(untreated.platelets[patient][~before])
    assert started.extra["course"].supported_cycles.tolist() == \
        below.any(axis=1).astype(int).tolist()


def test_the_cap_counts_from_the_start(runs):
    started, capped = runs["start"], runs["capped"]
    full = started.extra["course"].support_doses
    assert full.max() > 3   # the cap binds on someone
    assert capped.extra["course"].support_doses.tolist() == np.minimum(full, 3).tolist()


def test_the_stop_is_judged_from_the_start():
    # "from PLT < 75 until PLT >= 100": the stop at 100 is judged only from the start (a
    # stop judged from the first support day would stop at once: cycle 2 is given at
    # PLT >= 100 by the delay rule). Support days 2-20 leave room for the recovery.
    window = ("rhTPO 300 U/kg qd d2-20",)
    started = support_arm(sensitivities=DEPTHS, support=window, support_start_below=LEVEL)
    stopped = support_arm(sensitivities=DEPTHS, support=window, support_start_below=LEVEL,
                          support_stop_at=100.0)
    mornings = started.extra["course"].cycle_day[:, 1][:, None] + np.arange(1, 20)[None, :]
    counts = values_at(started.times, started.platelets, mornings)
    begun = started.extra["course"].support_doses
    doses = stopped.extra["course"].support_doses
    stops = 0
    for patient in range(len(DEPTHS)):
        if begun[patient] == 0:
            assert doses[patient] == 0
            continue
        first = 19 - begun[patient]   # the start's index among the mornings
        back = np.flatnonzero(counts[patient, first:] >= 100.0)
        assert doses[patient] == (begun[patient] if back.size == 0 else back[0])
        assert doses[patient] > 0
        stops += back.size > 0
    assert stops >= 1   # the stop acted on someone


def test_each_cycle_starts_on_its_own_counts():
    # support in cycles 1 and 2 without delay rules: one last pass places both cycles, and
    # each must be judged on its own counts in order (cycle 2's on counts after cycle 1's
    # support)
    def arm(**keys):
        model = pp.load_model("models/cit_marrow_reserve.toml")
        course = ChemotherapyCourse(regimen="chemotherapy 1 dose", cycle_days=21, cycles=2,
                                    delay_below=None, follow_up_days=21)
        vectors = np.tile(model.parameter_vector(None, {"body_weight": 65.0}), (3, 1))
        vectors[:, list(model.parameters).index("chemotherapy_sensitivity")] = \
            (2.0, 4.0, 6.0)
        design = ArmDesign(name="support arm", entry_below=None, support=SUPPORT,
                        support_cycles=(1, 2), **keys)
        return simulate_course_arm(model, design, course, vectors, support=SUPPORT,
                                   support_cycles=(1, 2))

    untreated = arm(support_start_below=1e-6)
    started = arm(support_start_below=LEVEL)
    first = np.tile(np.arange(1, 15, dtype=float), (3, 1))   # cycle 1 from day 0
    below = values_at(untreated.times, untreated.platelets, first) < LEVEL
    assert below.any()
    doses = started.extra["course"].support_doses
    cycles = started.extra["course"].supported_cycles
    for patient in range(3):
        if below[patient].any():   # cycle 1's start, from the counts without support
            start = first[patient, np.argmax(below[patient])]
            before = started.times <= start + 1e-9
            np.testing.assert_allclose(started.platelets[patient][before],
                                       untreated.platelets[patient][before], rtol=1e-6)
        # cycle 2 (day 21) judged on the counts with cycle 1's support
        second = 21.0 + np.arange(1, 15, dtype=float)
        below2 = values_at(started.times, started.platelets[patient:patient + 1],
                           second[None, :])[0] < LEVEL
        assert cycles[patient] == int(below[patient].any()) + int(below2.any())


@pytest.mark.parametrize("keys, message", [
    ({"support_start_below": 75.0}, "support_start_below starts support doses"),
    ({"support": SUPPORT, "support_cycles": (2,), "support_start_below": -1.0},
     "support_start_below must be a positive count"),
    ({"support": SUPPORT, "support_cycles": (2,), "support_start_below": 75.0,
      "support_stop_at": 50.0}, "must be above support_start_below"),
    ({"support": SUPPORT, "support_cycles": (2,), "support_max_days": 14},
     "support_max_days counts from a start on the count"),
    ({"support": SUPPORT, "support_cycles": (2,), "support_start_below": 75.0,
      "support_max_days": 2.5}, "support_max_days must be a whole number"),
    ({"support": SUPPORT, "support_cycles": (2,), "support_start_below": 75.0,
      "support_stop_at": 100.0, "support_min_days": 10, "support_max_days": 7},
     "cannot exceed support_max_days"),
])
def test_bad_support_starts_are_refused_with_the_fix(keys, message):
    with pytest.raises(PlateletPDError, match=message):
        ArmDesign(name="arm", entry_below=None, **keys)


def test_a_trial_file_states_the_start_and_a_bad_one_exits_2(tmp_path, capsys):
    from pathlib import Path

    from plateletpd.cli import main
    from plateletpd.study.trial import load_trial_spec

    # the bundled Chu 2003 crossover's rhIL-11 cycle, given from PLT < 75 for at most 10
    # days instead of from a fixed day
    text = (Path(__file__).resolve().parents[1] / "trials" /
            "chu2003_rhil11_crossover.toml").read_text()
    assert text.count("support_stop_at = 300\n") == 1
    path = tmp_path / "chu_start.toml"
    path.write_text(text.replace("support_stop_at = 300\n", "support_stop_at = 300\n"
                                 "support_start_below = 75\nsupport_max_days = 10\n", 1))
    spec = load_trial_spec(path)
    assert [(arm.support_start_below, arm.support_max_days) for arm in spec.arms] == \
        [(None, 0), (75.0, 10)]
    # run: the report states the rule, patients.csv has the doses and supported cycles
    assert main(["trial", str(path), "--out", str(tmp_path / "run"), "--n", "30"]) == 0
    report = (tmp_path / "run" / "report.md").read_text()
    assert ("- Support, rhIL-11 cycle: `rhIL-11 25 ug/kg qd d2-15` in cycle 2; from the "
            "first support morning below 75; stopped at the first morning at or above 300; "
            "at most 10 days: mean") in report
    patients = pd.read_csv(tmp_path / "run" / "patients.csv")
    supported = patients[patients["arm"] == "rhIL-11 cycle"]
    assert supported["support_doses"].between(0, 10).all()
    assert ((supported["support_doses"] > 0) == (supported["supported_cycles"] > 0)).all()
    assert (supported["support_doses"] > 0).any() and (supported["support_doses"] == 0).any()
    capsys.readouterr()
    path.write_text(text.replace("support_stop_at = 300\n", "support_stop_at = 300\n"
                                 "support_start_below = 400\n", 1))
    assert main(["trial", str(path), "--out", str(tmp_path / "out"), "--n", "5"]) == 2
    error = capsys.readouterr().err
    assert "support_stop_at (300) must be above support_start_below (400)" in error
    assert not (tmp_path / "out").exists()
