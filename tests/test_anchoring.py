"""[population] anchor (study/anchoring.py): a regimen's depth solved from its published
incidence of a low count. The target used throughout is the carboplatin label's "platelet
counts below 50,000/mm3 occur in 25% of the patients" (data/cit_summary.csv line 74,
carboplatin_label_natural_history)."""

import math

import numpy as np
import pytest

from plateletpd.study.trial import TrialSpecError, load_trial_spec, run_trial
from plateletpd.study.uncertainty import TrialUncertainty

LABEL_PERCENT, LABEL_LEVEL = 25.0, 50.0  # cit_summary.csv line 74

TRIAL = """
[trial]
name = "anchored"
seed = {seed}
subjects_per_arm = 400
follow_up_days = 35
uncertainty = "fit"
[population]
anchor = {{ nadir_below = {level}, percent = {percent}, source = "carboplatin label"{more} }}
{population}
[enrolment]
chemotherapy = "chemotherapy 1 dose d1"
entry_below = false
start_delay = 0
[response]
threshold = 100
by_day = 28
[[arms]]
name = "untreated"
stop_at = false
"""


def write(tmp_path, seed=5, level=LABEL_LEVEL, percent=LABEL_PERCENT, more="",
          population=""):
    path = tmp_path / f"trial_{seed}_{level}_{percent}.toml"
    path.write_text(TRIAL.format(seed=seed, level=level, percent=percent, more=more,
                                 population=population))
    return path


def test_the_anchored_depth_gives_the_incidence_in_other_patients(tmp_path):
    spec = load_trial_spec(write(tmp_path))
    anchor = spec.extra["anchor"]
    # the anchoring cohort meets the target to within one patient's share at the solution
    # the bisection returns the smallest factor (to 0.1%, anchoring.LOG_TOLERANCE) whose share
    # reaches the target, so the share is at or just above it: above by the patients whose
    # own crossing lies inside that last 0.1% bracket, one as a rule, two seen (2026-12-03,
    # the bounded niche: 126 of 499 where 125 reach 25%)
    excess = anchor["achieved_percent"] - LABEL_PERCENT
    assert 0 <= excess <= 2 * 100 / anchor["valid_patients"] + 1e-9, anchor
    assert spec.model.parameters["chemotherapy_sensitivity"].value == anchor["typical"]
    # the trial's own patients (other seeds than the anchoring cohort): the share below 50
    # is the target within 3 binomial standard errors
    subjects = run_trial(spec).subjects
    share = 100 * float(np.mean(subjects.nadir < LABEL_LEVEL))
    se = 100 * math.sqrt(0.25 * 0.75 / len(subjects))
    assert abs(share - LABEL_PERCENT) < 3 * se
    assert "anchored" in spec.parameters_from and "carboplatin label" in spec.parameters_from


def test_a_higher_incidence_needs_a_deeper_regimen_and_the_answer_is_reproducible(tmp_path):
    values = [load_trial_spec(write(tmp_path, percent=p)).extra["anchor"]["typical"]
              for p in (10, 25, 60)]
    assert values[0] < values[1] < values[2]
    again = load_trial_spec(write(tmp_path, percent=25)).extra["anchor"]["typical"]
    assert again == values[1]  # same seed, same anchoring cohort, same answer


def test_replicates_with_drawn_parameters_hold_the_anchored_value(tmp_path):
    uncertainty = TrialUncertainty.for_trial(load_trial_spec(write(tmp_path)))
    # neither drawn from the fit nor drawn as a new study: the anchor fixed it
    assert "chemotherapy_sensitivity" not in uncertainty.applies
    assert uncertainty.new_study == {}


@pytest.mark.parametrize("changes, message", [
    (dict(level=300.0, percent=1.0), "cannot be reached"),
    (dict(percent=100.0), "strictly between 0 and 100"),
    (dict(more=', parameter = "chemo_sensitivity"'), "not a parameter"),
    (dict(population="typical = { chemotherapy_sensitivity = 5.0 }"),
     "also set in [population] typical"),
    (dict(more=', parameter = "reserve_cycling_fraction"',
          population='cv = { reserve_cycling_fraction = 0.5 }\n'
                     'transforms = { reserve_cycling_fraction = "logitnormal" }'),
     "non-lognormal transform"),
    (dict(more=", cycles = 0"), "cycles must be a whole number of cycles from 1 to 100"),
    (dict(more=", cycles = 2.5"), "cycles must be a whole number of cycles from 1 to 100"),
])
def test_an_anchor_that_cannot_hold_is_a_clear_error_naming_the_table(tmp_path, changes,
                                                                     message):
    with pytest.raises(TrialSpecError) as error:
        load_trial_spec(write(tmp_path, **changes))
    assert "[population" in str(error.value) and message in str(error.value)


def test_an_anchor_without_its_source_is_refused(tmp_path):
    path = write(tmp_path)
    path.write_text(path.read_text().replace(', source = "carboplatin label"', ""))
    with pytest.raises(TrialSpecError, match="source"):
        load_trial_spec(path)


def test_a_course_trial_anchors_on_its_first_cycle(tmp_path):
    # with a [chemotherapy] course the regimen is the course's and the window its cycle
    # length (21 days here): the anchor record says so, and the solved depth meets the
    # target on the anchoring cohort to within one patient's share
    text = TRIAL.format(seed=7, level=LABEL_LEVEL, percent=LABEL_PERCENT, more="",
                        population="")
    text = text.replace('[enrolment]\nchemotherapy = "chemotherapy 1 dose d1"\n'
                        'entry_below = false\n', '[chemotherapy]\nregimen = "chemotherapy '
                        '0.8 dose"\ncycle_days = 21\ncycles = 2\n[enrolment]\n')
    path = tmp_path / "course.toml"
    path.write_text(text)
    anchor = load_trial_spec(path).extra["anchor"]
    assert anchor["regimen"] == "chemotherapy 0.8 dose" and anchor["within_days"] == 21
    # the bisection returns the smallest factor (to 0.1%, anchoring.LOG_TOLERANCE) whose share
    # reaches the target, so the share is at or just above it: above by the patients whose
    # own crossing lies inside that last 0.1% bracket, one as a rule, two seen (2026-12-03,
    # the bounded niche: 126 of 499 where 125 reach 25%)
    excess = anchor["achieved_percent"] - LABEL_PERCENT
    assert 0 <= excess <= 2 * 100 / anchor["valid_patients"] + 1e-9, anchor


def test_a_course_with_between_cycle_variability_anchors_with_it(tmp_path):
    # a user test (2026-12-04): with between_cycle_cv = 0.3 (every bundled course: Hansson
    # 2010) the anchoring cohort was given the regimen without the exposure factor, so the
    # trial's own untreated first cycle fell below the level far more often than the
    # target (29.2% against 20.7% there). The anchoring cohort now shares it: the trial's
    # patients' first-cycle share below 50 is the label's 25% within 3 binomial SE
    text = TRIAL.format(seed=7, level=LABEL_LEVEL, percent=LABEL_PERCENT, more="",
                        population="").replace('uncertainty = "fit"\n', "")
    text = text.replace('[enrolment]\nchemotherapy = "chemotherapy 1 dose d1"\n'
                        'entry_below = false\n', '[chemotherapy]\nregimen = "chemotherapy '
                        '1 dose"\ncycle_days = 21\ncycles = 1\nbetween_cycle_cv = 0.3\n'
                        '[enrolment]\n').replace("subjects_per_arm = 400",
                                                 "subjects_per_arm = 1000")
    path = tmp_path / "variable.toml"
    path.write_text(text)
    spec = load_trial_spec(path)
    anchor = spec.extra["anchor"]
    assert anchor["between_cycle_cv"] == 0.3
    subjects = run_trial(spec).subjects
    share = 100 * float(np.mean(subjects.cycle1_nadir < LABEL_LEVEL))
    se = 100 * math.sqrt(0.25 * 0.75 / len(subjects))
    assert abs(share - LABEL_PERCENT) < 3 * se, share   # 31.7% before the fix


COURSE = """
[chemotherapy]
regimen = "chemotherapy 1 dose"
cycle_days = 21
cycles = 4
delay_below = 100
between_cycle_cv = 0.3
[enrolment]
"""
# the carboplatin label's incidence over a course: "platelet counts below 50,000/mm3 occur
# in 35% of pretreated ovarian cancer patients" (data/cit_summary.csv,
# carboplatin_label_natural_history, incidence_proportion 35.0)
COURSE_PERCENT = 35.0


def course_trial(tmp_path, more):
    text = TRIAL.format(seed=7, level=LABEL_LEVEL, percent=COURSE_PERCENT, more=more,
                        population="").replace('uncertainty = "fit"\n', "")
    text = text.replace('[enrolment]\nchemotherapy = "chemotherapy 1 dose d1"\n'
                        'entry_below = false\n', COURSE).replace(
        "subjects_per_arm = 400", "subjects_per_arm = 1000")
    path = tmp_path / f"course_{abs(hash(more))}.toml"
    path.write_text(text)
    return path


def test_an_incidence_over_a_course_anchors_over_its_cycles(tmp_path):
    # a user test (RECITE, 2026-12-07): labels publish a regimen's incidence over a whole
    # course, and the anchor took a first-cycle one only. With cycles = 4 the anchoring
    # cohort runs the course's first 4 cycles with its delay rule (held below 100) and
    # between-cycle exposure; the trial's own untreated patients then fall below 50 at some
    # time of their course in the target share, within 3 binomial standard errors
    spec = load_trial_spec(course_trial(tmp_path, ", cycles = 4"))
    anchor = spec.extra["anchor"]
    assert anchor["cycles"] == 4 and anchor["within_days"] == 21
    # the trial's parameter line says what was anchored, and over which cycles
    assert "over the first 4 cycles of 'chemotherapy 1 dose'" in spec.parameters_from
    excess = anchor["achieved_percent"] - COURSE_PERCENT
    assert 0 <= excess <= 2 * 100 / anchor["valid_patients"] + 1e-9, anchor
    subjects = run_trial(spec).subjects
    share = 100 * float(np.mean(subjects.course_nadir < LABEL_LEVEL))
    se = 100 * math.sqrt(0.35 * 0.65 / len(subjects))
    assert abs(share - COURSE_PERCENT) < 3 * se, share
    # fewer fall below in the first cycle alone: the course's incidence is not a cycle's
    first = 100 * float(np.mean(subjects.cycle1_nadir < LABEL_LEVEL))
    assert first < COURSE_PERCENT - 3 * se, first
    # so the same incidence read as a first cycle's asks for a deeper regimen
    once = load_trial_spec(course_trial(tmp_path, "")).extra["anchor"]
    assert once["cycles"] == 1 and once["typical"] > anchor["typical"]
    # and cycles = 1 written out is the first-cycle anchor, to the digit
    written = load_trial_spec(course_trial(tmp_path, ", cycles = 1")).extra["anchor"]
    assert written["typical"] == once["typical"]


def test_an_incidence_over_cycles_needs_a_course(tmp_path):
    with pytest.raises(TrialSpecError, match=r"anchor.*cycles.*\[chemotherapy\] course"):
        load_trial_spec(write(tmp_path, more=", cycles = 3"))
