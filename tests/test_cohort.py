"""Arm simulation: entry rule, stop rule and crossing times on constructed cases."""

import numpy as np
import pytest

import plateletpd as pp
import plateletpd.study.cohort
from plateletpd.study.cohort import ArmDesign, crossing_time, simulate_treatment_arm


def test_crossing_time_is_interpolated_exactly_on_a_line():
    times = np.arange(0.0, 10.0)
    falling = 100.0 - 10.0 * times            # crosses 75 at t = 2.5 (hand-computed)
    rising = 10.0 * times                     # crosses 42 at t = 4.2
    assert crossing_time(times, falling, 75.0)[0] == pytest.approx(2.5)
    assert crossing_time(times, rising, 42.0, upward=True)[0] == pytest.approx(4.2)
    assert np.isnan(crossing_time(times, falling + 1000, 75.0)[0])  # never crosses
    # 'after' skips the early part: rising crosses 42 at 4.2, but not before 6 -> 6
    assert crossing_time(times, rising, 42.0, after=np.array([6.0]), upward=True)[0] == 6.0


@pytest.fixture(scope="module")
def cohort():
    model = pp.load_model("cit_thrombopoiesis")
    sensitivity = np.array([2.0, 4.0, 5.5, 7.0, 9.0])  # from no CIT to grade 4 (model card)
    matrix = np.tile(model.parameter_vector(), (sensitivity.size, 1))
    matrix[:, model.parameter_names.index("chemotherapy_sensitivity")] = sensitivity
    return model, matrix


def test_entry_is_where_the_count_crosses_below_the_threshold(cohort):
    model, matrix = cohort
    arm = simulate_treatment_arm(model, ArmDesign("untreated"), matrix)
    # sensitivity 2 never goes below 75 (nadir > 150 in the model card): not eligible
    assert list(arm.subjects) == [1, 2, 3, 4] and arm.n_screened == 5
    for row, entry in zip(arm.platelets, arm.entry_time):
        assert np.interp(entry, arm.times, row) == pytest.approx(75.0, abs=0.5)
        assert np.all(row[arm.times < entry - 1 / 24] > 75.0)
    assert np.allclose(arm.start_time, arm.entry_time + 1.0)  # next-morning rule


def test_stop_rule_acts_at_the_first_morning_count_at_or_above_100(cohort):
    model, matrix = cohort
    design = ArmDesign("rhTPO", treatment=("rhTPO 15000 U",), stop_at=100.0, max_days=14)
    arm = simulate_treatment_arm(model, design, matrix)
    for row, start, doses in zip(arm.platelets, arm.start_time, arm.doses_given):
        mornings = np.interp(start + np.arange(design.max_days), arm.times, row)
        assert np.all(mornings[1:doses] < 100.0)       # dosed while below 100
        if doses < design.max_days:
            assert mornings[doses] >= 100.0             # stopped on the first >= 100
    assert np.all((arm.doses_given >= 1) & (arm.doses_given <= 14))


def test_treatment_after_the_stop_changes_nothing_before_it(cohort):
    # a dose at time t cannot change the counts before t: the stopped arm equals the full
    # course up to the stop
    model, matrix = cohort
    full = simulate_treatment_arm(model, ArmDesign("full", treatment=("rhTPO 15000 U",), stop_at=None),
                        matrix)
    stopped = simulate_treatment_arm(model, ArmDesign("stop", treatment=("rhTPO 15000 U",)), matrix)
    for a, b, start, doses in zip(full.platelets, stopped.platelets, stopped.start_time,
                                  stopped.doses_given):
        before = stopped.times <= start + doses - 1 + 1e-9
        np.testing.assert_allclose(a[before], b[before], rtol=1e-9)


def test_smooth_stop_weights_doses_between_zero_and_one(cohort):
    model, matrix = cohort
    hard = simulate_treatment_arm(model, ArmDesign("h", treatment=("rhTPO 15000 U",)), matrix)
    smooth = simulate_treatment_arm(model, ArmDesign("s", treatment=("rhTPO 15000 U",),
                                           smooth_stop=True), matrix)
    # the logistic stop has a width of 2 x10^9/L (cohort.STOP_WIDTH) while a recovering count
    # rises by well over 10 x10^9/L a day, so the stop probability switches within one
    # morning: the expected number of doses differs from the hard count by under half a dose
    # (measured: at most 0.08)
    assert np.all(np.abs(smooth.doses_given - hard.doses_given) < 0.5)
    assert np.all((smooth.doses_given >= 1) & (smooth.doses_given <= 14))


def test_bad_arm_designs_are_refused():
    with pytest.raises(pp.PlateletPDError, match="max_days must be a whole number"):
        ArmDesign("x", max_days=2.5)
    with pytest.raises(pp.PlateletPDError, match="stop_at must be a positive number"):
        ArmDesign("x", stop_at=-1)


def test_titration_acts_at_its_visit_and_matches_an_explicit_regimen(cohort):
    # hetrombopag 7.5 mg raised to 15 mg if the count is below 50 on treatment day 5
    model, matrix = cohort
    rule = pp.study.cohort.Titration(day=5, below=50.0, dose="hetrombopag 15 mg")
    design = ArmDesign("titrated", treatment=("hetrombopag 7.5 mg",), titrations=(rule,))
    arm = simulate_treatment_arm(model, design, matrix)
    for i in range(arm.n):
        start, doses = arm.start_time[i], int(arm.doses_given[i])
        morning = np.interp(start + np.arange(15), arm.times, arm.platelets[i])
        expect = morning[5] < 50.0 and doses > 5
        assert bool(arm.extra["titrated"][i]) == expect
        # independent check: the same doses written as an explicit regimen
        days = np.arange(doses)
        low = ",".join(str(float(start + d)) for d in days if not (expect and d >= 5))
        high = ",".join(str(float(start + d)) for d in days if expect and d >= 5)
        regimen = "chemotherapy 1 dose d1 + hetrombopag 7.5 mg t=" + low + (
            " + hetrombopag 15 mg t=" + high if high else "")
        explicit = pp.simulate(model, regimen, times=arm.times,
                               params=dict(zip(model.parameter_names,
                                               matrix[arm.subjects[i]][:len(
                                                   model.parameter_names)])),
                               solver=pp.DormandPrince5(rtol=1e-6, atol=1e-6))
        np.testing.assert_allclose(arm.platelets[i], explicit["platelets"], rtol=1e-6)
    assert arm.extra["titrated"].any() and not arm.extra["titrated"].all()


def test_rescue_transfuses_at_the_visits_below_its_threshold(cohort):
    model, matrix = cohort
    rescue = pp.study.cohort.Rescue(below=15.0)
    arm = simulate_treatment_arm(model, ArmDesign("rescued", rescue=rescue), matrix)
    increment = model.parameters["transfusion_increment"].value  # model file: 30
    for i in range(arm.n):
        visits = arm.start_time[i] + np.arange(int(arm.times[-1] - arm.start_time[i]) + 1)
        counts = np.interp(visits, arm.times, arm.platelets[i])
        # every visit's count (taken before any transfusion that day) is >= 15 unless that
        # visit triggered one; the number of transfusions equals the visits below 15
        assert np.sum(counts < 15.0) == arm.extra["rescues"][i]
        # a transfusion raises the count by the increment 2 h after the count; one hour later
        # the rest of the course has moved the count by far less than 20% of the increment
        # (platelet survival 205 h: about 0.5% of the count lost per hour)
        for v in visits[counts < 15.0]:
            after = np.interp(v + 3 / 24, arm.times, arm.platelets[i])
            assert after - np.interp(v, arm.times, arm.platelets[i]) > 0.8 * increment
    assert arm.extra["rescues"].sum() > 0  # the deep-CIT patients (sensitivity 9) need some


def test_values_at_matches_numpy_interp_and_auc_a_closed_form():
    from plateletpd.study.cohort import auc, values_at

    times = np.arange(0, 10 * 24 + 1) / 24  # the hourly grid of an arm
    rng = np.random.default_rng(1)
    courses = rng.uniform(5, 300, size=(4, times.size))
    when = np.array([[0.0, 3.3, 9.99, 12.0], [-1.0, 0.5, 5.0, 10.0],
                     [2.25, 2.5, 7.1, 8.0], [1e-9, 4.0, 6.6, 9.5]])
    expected = np.array([np.interp(w, times, c) for w, c in zip(when, courses)])
    np.testing.assert_allclose(values_at(times, courses, when), expected, rtol=1e-12)
    assert np.isnan(values_at(times, courses, when, outside=np.nan)[1, 0])  # before t=0
    # a line 10 + 20 t from t=2 over 5 days: area = 5*10 + 20*(7^2 - 2^2)/2 = 500
    line = 10 + 20 * times
    assert auc(times, line[None, :], np.array([2.0]), 5.0)[0] == pytest.approx(500.0)


def test_an_arm_design_keeps_its_sequences_as_tuples_and_its_routine_count_days():
    # a review of 2026-12-04 found screen_days() written inside __post_init__, leaving the
    # conversion of lists to tuples (a frozen design's fields) unreachable: lists given
    # stay lists no more, and the routine counts lie within the follow-up
    from plateletpd.study.cohort import ArmDesign

    design = ArmDesign("x", treatment=["hetrombopag 7.5 mg"], support=["rhTPO 15000 U d2"],
                       support_cycles=[2], screen_every_days=3.0, follow_up_days=10.0)
    assert isinstance(design.treatment, tuple) and isinstance(design.support, tuple)
    assert isinstance(design.support_cycles, tuple)
    assert design.screen_days().tolist() == [3.0, 6.0, 9.0]


def test_entry_bands_split_the_patients_enrolled_by_one_routine_count(cohort):
    # a user test (2026-12-04, Yang 2024: "rhTPO started at PLT <= 25 / 25-50 / 50-75"):
    # groups defined by the count that enrolled the patient, all enrolled by one rule (the
    # first routine count below 75). Each band arm keeps exactly the patients of the
    # unbanded arm whose count at entry lies in it: the bands partition that arm
    model, matrix = cohort
    common = dict(treatment=("rhTPO 15000 U",), screen_every_days=7.0)  # found on day 14
    whole = simulate_treatment_arm(model, ArmDesign("all", **common), matrix)
    counts = [np.interp(entry, whole.times, whole.platelets[i])
              for i, entry in enumerate(whole.entry_time)]
    assert min(counts) < 40.0 < max(counts)  # the constructed cohort lands in both bands
    seen = []
    for band in ((0.0, 40.0), (40.0, 75.0)):
        arm = simulate_treatment_arm(model, ArmDesign(f"{band}", entry_between=band, **common),
                                     matrix)
        expected = [s for s, c in zip(whole.subjects, counts) if band[0] <= c < band[1]]
        assert list(arm.subjects) == expected
        # the same enrolment day as in the unbanded arm, hence the same treated course
        same = np.isin(whole.subjects, arm.subjects)
        assert np.array_equal(arm.entry_time, whole.entry_time[same])
        assert np.array_equal(arm.platelets, whole.platelets[same])
        seen += expected
    assert sorted(seen) == list(whole.subjects)


def test_entry_bands_that_cannot_select_are_refused():
    # at the crossing itself every count at entry is entry_below: a band would keep all or
    # none, so it needs routine counts or a fixed day
    with pytest.raises(pp.PlateletPDError, match="give \\[enrolment\\] screen_every_days"):
        ArmDesign("x", entry_between=(25.0, 50.0))
    with pytest.raises(pp.PlateletPDError, match="nobody could enrol"):
        ArmDesign("x", entry_between=(80.0, 90.0), screen_every_days=3.0)
    for band in ((50.0, 25.0), (25.0,), (-1.0, 5.0), ("a", 5.0)):
        with pytest.raises(pp.PlateletPDError, match="two counts, the lower first"):
            ArmDesign("x", entry_between=band, screen_every_days=3.0)
    with pytest.raises(pp.PlateletPDError, match="no entry rule"):
        ArmDesign("x", entry_between=(0.0, 25.0), entry_below=None)
    assert ArmDesign("x", entry_between=[0, 25], entry_day=21.0).entry_between == (0.0, 25.0)


def test_a_dose_several_times_a_day_is_given_on_each_treatment_day(cohort):
    # a user test (2026-12-05) wanted rhIL-11 "2 mg every 12 h for at least 7 days", was told
    # to add a count, wrote "q12h x2" and got 2 doses in all. A frequency without days is
    # now that many doses on each treatment day: with no stop rule acting (7 days, no stop)
    # the course equals the explicit own schedule "q12h d1-7" dose for dose
    model, matrix = cohort
    daily = simulate_treatment_arm(model, ArmDesign(
        "bid", treatment=("rhIL-11 2 mg q12h",), stop_at=None, max_days=7), matrix)
    explicit = simulate_treatment_arm(model, ArmDesign(
        "own", treatment=("rhIL-11 2 mg q12h d1-7",), stop_at=None, max_days=7), matrix)
    assert np.array_equal(daily.doses_given, np.full(daily.n, 14))
    assert np.allclose(daily.platelets, explicit.platelets, rtol=1e-9, atol=1e-9)
    # stop rules act on it as on a daily dose: stopped at 100, never more than twice a day
    stopped = simulate_treatment_arm(model, ArmDesign(
        "bid stop", treatment=("rhIL-11 2 mg q12h",), stop_at=100.0, max_days=14), matrix)
    once = simulate_treatment_arm(model, ArmDesign(
        "qd stop", treatment=("rhIL-11 2 mg",), stop_at=100.0, max_days=14), matrix)
    assert np.all(stopped.doses_given <= 2 * once.doses_given + 1)
    assert np.all(stopped.doses_given <= 28)


def test_an_own_schedule_shorter_than_min_days_is_refused_with_the_fix(cohort):
    model, matrix = cohort
    with pytest.raises(pp.PlateletPDError, match=r"x2 counts doses, not days.*q12h"):
        simulate_treatment_arm(model, ArmDesign(
            "x2", treatment=("rhIL-11 2 mg q12h x2",), min_days=7, max_days=14), matrix)


def test_smooth_stop_refuses_a_dose_several_times_a_day():
    # smooth_stop (fitting) weights one dose a day by the chance of not yet having stopped
    with pytest.raises(pp.PlateletPDError, match="one dose a day"):
        ArmDesign("x", treatment=("rhIL-11 2 mg q12h",), smooth_stop=True)
