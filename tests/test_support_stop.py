"""Support doses within a chemotherapy cycle that stop at a count (`support_stop_at`): the
rhIL-11 crossovers gave the drug "for 7 to 14 days or until the platelet count reached >=
300" (Chu 2003, PMID 12839693) or "for 14 consecutive days or continuing until platelet
count was > 400" (PMID 12478901), which fixed-schedule support could not say.

Properties that could fail: a stop level no count reaches changes nothing (bit for bit); a
patient who stops had every earlier morning of the support window below the level and that
morning at or above it; the course up to the stop is the one with every dose (a later dose
cannot change an earlier count) and lower after it; bad keys are refused with the fix.
"""

import numpy as np
import pytest

import plateletpd as pp
from plateletpd.errors import PlateletPDError
from plateletpd.study.cohort import ArmDesign, values_at
from plateletpd.study.cycles import ChemotherapyCourse, simulate_course_arm

MODEL_PATH = "models/cit_marrow_reserve.toml"
SUPPORT = ("rhTPO 300 U/kg qd d2-15",)   # Bai 2004's rhTPO cycle (trials/bai2004_...toml)


def support_arm(cycle=2, delay_below=100, sensitivities=(1.0, 2.0, 3.0, 4.0, 5.0),
                support=SUPPORT, **stop):
    """Two 21-day cycles with ``support`` (default SUPPORT) in ``cycle``, for patients at
    the typical values but chemotherapy_sensitivity (per dose, from mild to deep), 65 kg;
    ``stop``: the arm's support_stop_at / support_stop_after_fall (or other support keys)."""
    model = pp.load_model(MODEL_PATH)
    course = ChemotherapyCourse(regimen="chemotherapy 1 dose", cycle_days=21, cycles=2,
                                delay_below=delay_below, follow_up_days=21)
    vectors = np.tile(model.parameter_vector(None, {"body_weight": 65.0}),
                      (len(sensitivities), 1))
    vectors[:, list(model.parameters).index("chemotherapy_sensitivity")] = sensitivities
    design = ArmDesign(name="support arm", entry_below=None, support=support,
                       support_cycles=(cycle,), **stop)
    return simulate_course_arm(model, design, course, vectors, support=support,
                               support_cycles=(cycle,))


@pytest.fixture(scope="module")
def runs():
    return {"all": support_arm(), "never reached": support_arm(support_stop_at=1e6),
            "stop 200": support_arm(support_stop_at=200.0)}


def test_a_level_no_count_reaches_changes_nothing(runs):
    np.testing.assert_array_equal(runs["never reached"].platelets, runs["all"].platelets)


def test_a_patient_stops_on_the_first_morning_at_or_above_the_level(runs):
    full, stopped = runs["all"], runs["stop 200"]
    course = full.extra["course"]
    start = course.cycle_day[:, 1]              # cycle 2's first day
    mornings = start[:, None] + np.arange(1, 15)[None, :]   # support days 2-15 (offsets 1-14)
    counts = values_at(full.times, full.platelets, mornings)
    reached = counts >= 200
    assert reached.any(axis=1).sum() >= 2 and (~reached.any(axis=1)).sum() >= 1
    for patient in range(len(start)):
        row = stopped.platelets[patient]
        if not reached[patient].any():   # never at 200 within the window: every dose given
            np.testing.assert_array_equal(row, full.platelets[patient])
            continue
        stop = mornings[patient, np.argmax(reached[patient])]
        before = full.times <= stop + 1e-9
        # the counts up to the stop morning are those with every dose (causality) ...
        np.testing.assert_allclose(row[before], full.platelets[patient][before],
                                   rtol=1e-6)  # the solver tolerance
        # ... and lower afterwards, for a patient who still had doses to come
        if stop < mornings[patient, -1]:
            assert np.nanmax(row[~before]) < np.nanmax(full.platelets[patient][~before])


def test_a_cycle_before_the_last_stops_too_without_delay_rules():
    # without delay rules the course places every cycle in one last pass: the support of
    # cycle 1 (of 2) must still stop (each cycle judged in order)
    def arm(**stop):
        return support_arm(cycle=1, delay_below=None, sensitivities=(1.0, 2.0, 3.0), **stop)

    full, stopped = arm(), arm(support_stop_at=200.0)
    mornings = np.arange(1, 15, dtype=float)   # cycle 1 starts on day 0
    counts = values_at(full.times, full.platelets, np.tile(mornings, (3, 1)))
    reached = counts >= 200
    assert reached.any(axis=1).any()
    for patient in np.flatnonzero(reached.any(axis=1)):
        stop = mornings[np.argmax(reached[patient])]
        before = full.times <= stop + 1e-9
        np.testing.assert_allclose(stopped.platelets[patient][before],
                                   full.platelets[patient][before],
                                   rtol=1e-6)  # the solver tolerance
        if stop < mornings[-1]:
            assert not np.allclose(stopped.platelets[patient][~before],
                                   full.platelets[patient][~before])


def test_a_stop_after_a_fall_waits_for_a_morning_below_the_level(runs):
    # "until the count has recovered to 100" (a common rhTPO rule): cycle 2 is given at PLT
    # >= 100 (the delay rule), so a plain stop at 100 stops on the first support morning,
    # while the stop after a fall waits for a morning below 100 and then one at or above it
    full = runs["all"]
    plain = support_arm(support_stop_at=100.0)
    recovery = support_arm(support_stop_at=100.0, support_stop_after_fall=True)
    start = full.extra["course"].cycle_day[:, 1]
    mornings = start[:, None] + np.arange(1, 15)[None, :]
    counts = values_at(full.times, full.platelets, mornings)
    recovered = 0
    for patient in range(len(start)):
        assert counts[patient, 0] >= 100   # every patient starts cycle 2 at 100 or more
        # the plain stop: no support at all, as if untreated after the first morning
        below = counts[patient] < 100
        if not below.any():        # never below 100: the stop after a fall never comes
            np.testing.assert_array_equal(recovery.platelets[patient],
                                          full.platelets[patient])
            continue
        first_below = np.argmax(below)
        after = np.flatnonzero(~below & (np.arange(14) > first_below))
        if after.size == 0:        # below until the support ends: every dose given
            np.testing.assert_array_equal(recovery.platelets[patient],
                                          full.platelets[patient])
            continue
        stop = mornings[patient, after[0]]
        before = full.times <= stop + 1e-9
        np.testing.assert_allclose(recovery.platelets[patient][before],
                                   full.platelets[patient][before], rtol=1e-6)
        recovered += 1
    # the deeper patients (damage 4 and 5 per dose) fall below 100 and come back within
    # the support days: the rule under test acted
    assert recovered >= 1
    # the plain stop at 100 gives none of the support: lower counts than the recovery rule
    assert np.nanmax(plain.platelets) < np.nanmax(recovery.platelets)


def test_support_min_days_gives_the_first_doses_whatever_the_count_and_counts_them(runs):
    # "7 to 14 days or until PLT >= 100" (a CIT user test, 2026-12-04; Chu 2003's rhIL-11
    # "7 to 14 days"): with support_min_days = 7 the stop never comes on the first 7 support
    # mornings. Cycle 2 is given at PLT >= 100 (the delay rule), so a plain stop at 100
    # stops every patient on the first support morning (no dose: support_doses 0, as
    # counted by the course), while with support_min_days = 7 each stops on the 8th
    # morning at the earliest (7 doses), here on the 8th itself where the count is still at
    # or above 100 then; support_doses counts exactly the doses given (14 without a stop)
    assert runs["all"].extra["course"].support_doses.tolist() == [14] * 5
    plain = support_arm(support_stop_at=100.0)
    assert plain.extra["course"].support_doses.tolist() == [0] * 5
    floor = support_arm(support_stop_at=100.0, support_min_days=7)
    doses = floor.extra["course"].support_doses
    full = runs["all"]
    start = full.extra["course"].cycle_day[:, 1]
    mornings = start[:, None] + np.arange(1, 15)[None, :]
    counts = values_at(full.times, full.platelets, mornings)
    for patient in range(len(start)):
        later = np.flatnonzero(counts[patient, 7:] >= 100)
        expected = 14 if later.size == 0 else 7 + later[0]
        assert doses[patient] == expected, (patient, doses[patient], counts[patient])
    assert doses.min() >= 7


@pytest.mark.parametrize("keys, message", [
    ({"support": SUPPORT, "support_cycles": (2,), "support_min_days": 7},
     "support_min_days qualifies support_stop_at"),
    ({"support": SUPPORT, "support_cycles": (2,), "min_days": 7, "max_days": 14},
     "min_days applies to the treatment doses"),
    ({"support_stop_at": 300.0}, "support_stop_at stops support doses"),
    ({"support": SUPPORT, "support_cycles": (2,), "support_stop_at": -5.0},
     "support_stop_at must be a positive count"),
    ({"support": SUPPORT, "support_cycles": (2,), "support_stop_after_fall": True},
     "support_stop_after_fall qualifies support_stop_at"),
])
def test_bad_support_stops_are_refused_with_the_fix(keys, message):
    with pytest.raises(PlateletPDError, match=message):
        ArmDesign(name="arm", entry_below=None, **keys)


def _chu_with(tmp_path, line):
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "trials" /
            "chu2003_rhil11_crossover.toml").read_text()
    assert text.count("support_stop_at = 300\n") == 1   # the bundled file's stop
    text = text.replace("support_stop_at = 300\n", f"{line}\n", 1)
    path = tmp_path / "chu_stop.toml"
    path.write_text(text)
    return path


def test_a_trial_file_states_the_stop_for_its_support_arm(tmp_path):
    from plateletpd.study.trial import load_trial_spec

    # Chu 2003: "7 to 14 days or until the platelet count reached >= 300" (the bundled
    # file); another level written in its place is the one read
    from plateletpd.study.trial import bundled_trial

    bundled = load_trial_spec(bundled_trial("chu2003_rhil11_crossover"))
    assert [arm.support_stop_at for arm in bundled.arms] == [None, 300.0]
    spec = load_trial_spec(_chu_with(tmp_path, "support_stop_at = 250"))
    assert [arm.support_stop_at for arm in spec.arms] == [None, 250.0]
    spec = load_trial_spec(_chu_with(tmp_path, "support_stop_at = false"))
    assert [arm.support_stop_at for arm in spec.arms] == [None, None]


def test_a_trial_files_bad_stop_names_the_key(tmp_path):
    from plateletpd.study.trial import TrialSpecError, load_trial_spec

    with pytest.raises(TrialSpecError, match="support_stop_at"):
        load_trial_spec(_chu_with(tmp_path, 'support_stop_at = "high"'))


def test_a_stop_without_support_doses_is_refused_naming_the_arm_once(tmp_path, capsys):
    # the file's arm without its support keys: exit status 2, the arm named once (it was
    # named twice, by the arm's check and again by the file's)
    from plateletpd.cli import main

    path = _chu_with(tmp_path, "support_stop_at = 300")
    text = path.read_text().replace('support = ["rhIL-11 25 ug/kg qd d2-15"]\n'
                                    'support_cycles = [2]\n', "", 1)
    assert "support_cycles" not in text.split("[[arms]]")[2]
    path.write_text(text)
    assert main(["trial", str(path), "--out", str(tmp_path / "out"), "--n", "5"]) == 2
    error = capsys.readouterr().err
    assert "support_stop_at stops support doses: give them with support" in error
    assert error.count("arm 'rhIL-11 cycle'") == 1
    assert not (tmp_path / "out").exists()
