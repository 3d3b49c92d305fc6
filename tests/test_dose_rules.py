"""Dose rules judged at visits (stop, hold, resume, increase, decrease), fixed-day arm
treatments, and the old titration/stop keys through the same engine.

Most checks use a constructed model with a closed-form course: platelets = baseline + gain x
drug amount in a central compartment fed by first-order absorption from a depot (the Bateman
function). An independent replay (a plain loop over visits on the closed form) says which
doses each rule should give; the arm must give exactly those, and its simulated course must
equal the closed form of the doses it gave.
"""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from helpers import with_one_and_two_threads
import plateletpd as pp
from plateletpd.study.cohort import (ArmDesign, DoseRule, Rescue, Titration,
                                     simulate_treatment_arm)
from plateletpd.study.trial import (TrialSpec, TrialSpecError, _cohort, load_trial_spec,
                                    run_trial)

# constructed test values (not physiology): rates per day, gain in 10^9/L per mg
ABSORPTION, ELIMINATION, GAIN = 2.0, 0.5, 10.0
TOY = f"""
[model]
name = "toy_platelets"
description = "platelets rise with a drug absorbed from a depot (constructed for tests)"
time_unit = "day"

[parameters]
baseline = {{ value = 40, unit = "10^9/L", lower = 0, source = "test fixture" }}
absorption_rate = {{ value = {ABSORPTION}, unit = "1/day", lower = 0, source = "test fixture" }}
elimination_rate = {{ value = {ELIMINATION}, unit = "1/day", lower = 0, source = "test fixture" }}
gain = {{ value = {GAIN}, unit = "10^9/L per mg", lower = 0, source = "test fixture" }}

[states.depot]
unit = "mg"
[states.central]
unit = "mg"

[odes]
depot = "-absorption_rate * depot"
central = "absorption_rate * depot - elimination_rate * central"

[outputs.platelets]
expression = "baseline + gain * central"
unit = "10^9/L"

[doses.hetrombopag]
state = "depot"
amount_unit = "mg"
"""


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    path = tmp_path_factory.mktemp("toy") / "toy_platelets.toml"
    path.write_text(TOY)
    return pp.load_model(path)


def cohort(model, baselines):
    matrix = np.tile(model.parameter_vector(), (len(baselines), 1))
    matrix[:, model.parameter_names.index("baseline")] = baselines
    return matrix


def closed_form(baseline, dose_times, amounts, t):
    """Bateman function: the count at times ``t`` after oral doses (no lag, F = 1)."""
    t = np.asarray(t, dtype=float)
    central = np.zeros_like(t)
    for when, amount in zip(dose_times, amounts):
        age = np.clip(t - when, 0.0, None)
        central += amount * ABSORPTION / (ABSORPTION - ELIMINATION) * (
            np.exp(-ELIMINATION * age) - np.exp(-ABSORPTION * age))
    return baseline + GAIN * central


def replay(baseline, start_dose, days, every, rules):
    """Independent of the engine: walk the daily doses and the visits in time order (a visit
    before a dose of the same time), judge each rule on the closed-form count, and return
    the amount given on each day. ``rules``: (when, level, action, step, low, high)."""
    dose, held, stopped, given = start_dose, False, False, []
    for day in range(days):
        if day % every == 0:
            count = closed_form(baseline, range(len(given)), given, day)
            for when, level, action, step, low, high in rules:
                if not (count >= level if when == "above" else count < level) or stopped:
                    continue
                if action == "stop":
                    stopped = True
                elif action in ("hold", "resume"):
                    held = action == "hold"
                elif action == "increase" and dose + step <= high + 1e-9:
                    dose += step
                elif action == "decrease" and dose - step >= low - 1e-9:
                    dose -= step
        given.append(0.0 if held or stopped else dose)
    return np.array(given)


def design(rules, every, start_dose="hetrombopag 5 mg", days=28):
    # everyone starts on day 0 (no chemotherapy, no entry rule, no old stop rule)
    return ArmDesign("ruled", chemotherapy="", treatment=(start_dose,), entry_below=None,
                     start_delay=0.0, stop_at=None, max_days=days, follow_up_days=35.0,
                     rules=tuple(DoseRule(*rule) for rule in rules), visit_every_days=every)


def check_against_replay(model, arm, baselines, rules, every, start_dose, days=28):
    """Doses given equal the replay's, day by day; the course equals the closed form."""
    def milligrams(text, default):
        return float(text.split()[0]) if text else default

    steps = []
    for when, level, action, *rest in rules:
        _, step, low, high = [*rest, "", "", "", ""][:4]
        size = milligrams(step, 0.0)  # min defaults to one step (DoseRule)
        steps.append((when, level, action, size, milligrams(low, size),
                      milligrams(high, math.inf)))
    np.testing.assert_array_equal(arm.extra["dose_days"], np.arange(days))
    for i, baseline in enumerate(baselines):
        expected = replay(baseline, start_dose, days, every, steps)
        np.testing.assert_allclose(arm.extra["dose_amounts"][i], expected, rtol=1e-12)
        # solver tolerance 1e-6 (cohort's DormandPrince5) against the exact course
        np.testing.assert_allclose(arm.platelets[i], closed_form(
            baseline, np.arange(days), expected, arm.times), rtol=1e-5)


def test_hold_above_stops_doses_until_a_visit_below_the_resume_level(toy):
    # 5 mg a day settles near 40 + 10 x 10 = 140 (steady-state amount 5/0.5 mg): counts
    # cross 120 and are held until they fall below 90 at a visit every 2 days
    rules = [("above", 120, "hold"), ("below", 90, "resume")]
    baselines = [20.0, 40.0, 60.0]
    arm = simulate_treatment_arm(toy, design(rules, 2.0), cohort(toy, baselines))
    check_against_replay(toy, arm, baselines, rules, 2, 5.0)
    given = arm.extra["dose_amounts"] > 0
    events = arm.extra["events"]
    for i in range(3):
        holds = events["day"][(events["patient"] == i) & (events["event"] == "hold")]
        resumes = events["day"][(events["patient"] == i) & (events["event"] == "resume")]
        for hold in holds:  # no dose from a hold until the next resume (exclusive)
            until = min([r for r in resumes if r > hold], default=math.inf)
            days = np.arange(28)
            assert not given[i][(days >= hold) & (days < until)].any()
            assert until > 27 or given[i][days == until].all()  # given again from the resume
        # decisions only at visits (every 2 days from the start of treatment)
        assert np.all(np.concatenate([holds, resumes]) % 2 == 0)
    assert arm.extra["holds"][2] >= 2 and arm.extra["holds"][0] == 0  # both cases occur
    np.testing.assert_allclose(arm.extra["total_dose"]["hetrombopag (mg)"],
                               arm.extra["dose_amounts"].sum(axis=1))


def test_titration_moves_in_steps_and_never_leaves_its_bounds(toy):
    # 0.25-1 mg a day adds 5-20 x10^9/L at steady state (gain 10 x dose / elimination 0.5),
    # so the lowest baseline stays below 60 at the highest dose and the highest stays above
    # 120 at the lowest: both bounds are reached and then hold against the rule
    rules = [("below", 60, "increase", "hetrombopag", "0.25 mg", "", "1 mg"),
             ("above", 120, "decrease", "hetrombopag", "0.25 mg", "0.25 mg")]
    baselines = [5.0, 30.0, 50.0, 100.0, 130.0]
    arm = simulate_treatment_arm(toy, design(rules, 3.0, "hetrombopag 0.5 mg"),
                                 cohort(toy, baselines))
    check_against_replay(toy, arm, baselines, rules, 3, 0.5)
    amounts = arm.extra["dose_amounts"]
    assert set(np.unique(amounts)) <= {0.25, 0.5, 0.75, 1.0}  # the steps within [0.25, 1]
    changes = np.diff(amounts, axis=1, prepend=0.5)           # from the starting dose
    moved = np.nonzero(changes)
    assert np.all(np.abs(changes[moved]) == 0.25)             # one step at a time
    assert np.all(moved[1] % 3 == 0)                          # at visits (every 3 days)
    assert amounts[0, -1] == 1.0 and amounts[-1, -1] == 0.25
    events = arm.extra["events"]
    assert set(events["event"]) == {"increase", "decrease"}
    np.testing.assert_array_equal(arm.extra["dose_changes"],
                                  np.count_nonzero(changes, axis=1))


def test_to_day_ends_a_rule_so_a_taper_is_not_undone(toy):
    # a user test (2026-12-04): "titrated within 50-150 until week 24, then tapered" could
    # not be written: the increase rule kept firing during the taper. With to_day the
    # rule is judged up to that visit only. The toy's lowest baseline stays below 60 at
    # every dose (0.25-1 mg add 5-20), so without to_day it climbs a step at each visit
    rules = [("below", 60, "increase", "hetrombopag", "0.25 mg", "", "1 mg", 0.0, 3.0)]
    arm = simulate_treatment_arm(toy, design(rules, 3.0, "hetrombopag 0.25 mg"),
                                 cohort(toy, [5.0]))
    events = arm.extra["events"]
    assert events["day"].tolist() == [0.0, 3.0]       # visits 0 and 3, then no more
    assert arm.extra["dose_amounts"][0, -1] == 0.75
    endless = simulate_treatment_arm(toy, design([rules[0][:7]], 3.0, "hetrombopag 0.25 mg"),
                                     cohort(toy, [5.0]))
    assert endless.extra["dose_amounts"][0, -1] == 1.0  # up to the maximum
    with pytest.raises(pp.PlateletPDError, match="to_day must be a number of days at or "
                       "after from_day"):
        design([("below", 60, "increase", "hetrombopag", "0.25 mg", "", "1 mg", 7.0, 3.0)],
               3.0)


def test_a_starting_dose_off_the_steps_is_refused_with_the_fix(tmp_path):
    # a user test (2026-12-04): a 3.75 mg start with 2.5 mg steps within 2.5-7.5 mg (Mei
    # 2022's stage 4 started at 2.5, 3.75, 5 or 7.5 mg) was silently kept on 3.75 / 6.25 mg:
    # it could neither reach 7.5 nor step down, and responded less than the 2.5 mg start
    text = (Path(__file__).resolve().parents[1] / "trials" / "itp_phase3.toml").read_text()
    (tmp_path / "off.toml").write_text(text.replace('treatment = ["hetrombopag 2.5 mg"]',
                                                    'treatment = ["hetrombopag 3.75 mg"]'))
    with pytest.raises(TrialSpecError, match=r"'hetrombopag 3.75 mg' is not a whole number "
                       r"of 2.5 mg steps from min 2.5 mg, so the dose could fall no lower "
                       r"than 3.75 mg"):
        load_trial_spec(tmp_path / "off.toml")
    # with 1.25 mg steps every bound is a whole number of steps away: accepted
    halved = text.replace('treatment = ["hetrombopag 2.5 mg"]',
                          'treatment = ["hetrombopag 3.75 mg"]').replace(
        'step = "2.5 mg"', 'step = "1.25 mg"')
    (tmp_path / "halved.toml").write_text(halved)
    load_trial_spec(tmp_path / "halved.toml")


def test_stop_rule_ends_every_dose_for_good(toy):
    rules = [("above", 100, "stop")]
    baselines = [20.0, 50.0]
    arm = simulate_treatment_arm(toy, design(rules, 1.0), cohort(toy, baselines))
    check_against_replay(toy, arm, baselines, rules, 1, 5.0)
    stop = arm.extra["stop_day"]
    assert np.isnan(stop[0]) or stop[0] > stop[1]  # the higher baseline crosses 100 first
    assert arm.doses_given[1] == stop[1] and not arm.extra["dose_amounts"][1, int(stop[1]):].any()


def test_fixed_day_treatment_is_given_on_its_days():
    # "rhTPO on days 2, 4, 6, 9 of a cycle": treatment starts with the chemotherapy (no
    # entry rule, no delay), so the treatment's days are the cycle's days
    model = pp.load_model("cit_thrombopoiesis")
    arm = simulate_treatment_arm(model, ArmDesign(
        "d2469", treatment=("rhTPO 15000 U d2,4,6,9",), entry_below=None, start_delay=0.0,
        stop_at=None), model.parameter_vector({}, {"body_weight": 65})[None])
    np.testing.assert_array_equal(arm.extra["dose_days"], [1.0, 3.0, 5.0, 8.0])
    assert arm.doses_given[0] == 4
    explicit = pp.simulate(model, "chemotherapy 1 dose d1 + rhTPO 15000 U d2,4,6,9",
                           times=arm.times, covariates={"body_weight": 65},
                           solver=pp.DormandPrince5(rtol=1e-6, atol=1e-6))
    np.testing.assert_allclose(arm.platelets[0], explicit["platelets"], rtol=1e-9)


ITP_RULES = [  # keep counts within 50-150 (ITP maintenance practice)
    {"when": "above", "level": 150, "action": "hold"},
    {"when": "below", "level": 100, "action": "resume"},
    {"when": "below", "level": 50, "action": "increase", "drug": "hetrombopag",
     "step": "2.5 mg", "max": "7.5 mg"},
    {"when": "above", "level": 150, "action": "decrease", "drug": "hetrombopag",
     "step": "2.5 mg", "min": "2.5 mg"}]


def itp_trial(arms, subjects=120, seed=11):
    # ITP-like patients: no chemotherapy, a low steady count (typical 40, between-patient CV
    # 0.4: constructed values, not a fitted ITP population), treated from day 0, weekly visits
    return TrialSpec.create(
        seed=seed, subjects_per_arm=subjects, follow_up_days=42, visit_every_days=7,
        population={"typical": {"platelets_baseline": 40}, "cv": {"platelets_baseline": 0.4}},
        enrolment={"chemotherapy": "", "entry_below": False, "start_delay": 0},
        response={"threshold": 50, "rise": False, "by_day": 42}, arms=arms)


def test_itp_maintenance_rules_keep_most_visits_within_50_to_150():
    base = {"stop_at": False, "max_days": 42}
    spec = itp_trial([{"name": "rules", "treatment": ["hetrombopag 5 mg"], "rules": ITP_RULES,
                       **base},
                      {"name": "fixed 7.5 mg", "treatment": ["hetrombopag 7.5 mg"], **base},
                      {"name": "untreated", "treatment": [], **base}])
    share, above = {}, {}
    for index, arm_design in enumerate(spec.arms):
        arm = simulate_treatment_arm(spec.model, arm_design, _cohort(spec, index))
        visits = np.array([np.interp(s + np.arange(7.0, 43.0, 7.0), arm.times, row)
                           for s, row in zip(arm.start_time, arm.platelets)])
        share[arm_design.name] = np.mean((visits >= 50) & (visits <= 150))
        above[arm_design.name] = np.mean(visits > 150)
    # the property: the rules keep most visits of weeks 1-6 in range, more of them than the
    # highest fixed dose or no treatment (which stays low), and fewer visits above 150 than
    # the highest fixed dose (which overshoots)
    assert share["rules"] > 0.5
    assert share["rules"] > share["fixed 7.5 mg"] and share["rules"] > share["untreated"]
    assert above["rules"] < above["fixed 7.5 mg"]


def test_rules_are_reproducible_and_identical_with_one_or_two_threads():
    spec = itp_trial([{"name": "rules", "treatment": ["hetrombopag 5 mg"], "rules": ITP_RULES,
                       "stop_at": False, "max_days": 42}], subjects=40)
    one, two = with_one_and_two_threads(lambda: run_trial(spec).subjects)
    assert one.equals(two)
    assert not one.equals(run_trial(itp_trial(
        [{"name": "rules", "treatment": ["hetrombopag 5 mg"], "rules": ITP_RULES,
          "stop_at": False, "max_days": 42}], subjects=40, seed=12)).subjects)


def test_old_titration_and_stop_keys_give_the_results_of_the_old_engine():
    # tests/data/old_titration_arms.json: the same arms run by study/cohort.py before the
    # rule engine (commit 36100ca); decisions must match exactly, counts to round-off
    reference = json.loads((Path(__file__).parent / "data" /
                            "old_titration_arms.json").read_text())
    model = pp.load_model("cit_thrombopoiesis")
    matrix = np.tile(model.parameter_vector(), (5, 1))
    matrix[:, model.parameter_names.index("chemotherapy_sensitivity")] = [2, 4, 5.5, 7, 9]
    designs = {
        "titrated": ArmDesign("titrated", treatment=("hetrombopag 7.5 mg",), stop_rise=50.0,
                              titrations=(Titration(5, 50.0, "hetrombopag 15 mg"),),
                              rescue=Rescue(15.0, max_per_patient=3)),
        "stopped": ArmDesign("stopped", treatment=("rhTPO 15000 U",), stop_at=100.0,
                             max_days=14)}
    for name, arm_design in designs.items():
        arm = simulate_treatment_arm(model, arm_design, matrix)
        old = reference[name]
        assert arm.subjects.tolist() == old["subjects"]
        assert np.asarray(arm.doses_given).tolist() == old["doses_given"]
        assert arm.extra["titrated"].tolist() == old["titrated"]
        assert arm.extra["rescues"].tolist() == old["rescues"]
        # bit-identical on the machine that made the file; 1e-12 allows another CPU's
        # rounding of the same compiled operations
        np.testing.assert_allclose(arm.platelets[:, ::24], old["platelets_daily"],
                                   rtol=1e-12, atol=0)
    assert any(reference["titrated"]["titrated"]) and not all(reference["titrated"]["titrated"])


def test_two_drug_arm_gives_each_drug_its_own_doses():
    # every dose of a two-drug arm follows its own drug's plan: the course equals the
    # explicit regimen of the doses the stop rule kept (before the rule engine, a two-drug
    # arm's stop was applied to the wrong events: its course missed this by > 100 x10^9/L)
    model = pp.load_model("cit_thrombopoiesis")
    matrix = np.tile(model.parameter_vector(), (2, 1))
    matrix[:, model.parameter_names.index("chemotherapy_sensitivity")] = [5.5, 7.0]
    arm = simulate_treatment_arm(model, ArmDesign(
        "two", treatment=("hetrombopag 7.5 mg", "rhTPO 15000 U"), stop_at=100.0), matrix)
    for i in range(arm.n):
        days = ",".join(repr(float(arm.start_time[i] + d)) for d in range(arm.doses_given[i]))
        explicit = pp.simulate(model, f"chemotherapy 1 dose d1 + hetrombopag 7.5 mg t={days} + "
                               f"rhTPO 15000 U t={days}", times=arm.times,
                               params=dict(zip(model.parameter_names, matrix[arm.subjects[i]])),
                               solver=pp.DormandPrince5(rtol=1e-6, atol=1e-6))
        np.testing.assert_allclose(arm.platelets[i], explicit["platelets"], rtol=1e-9)
        assert 1 <= arm.doses_given[i] < 14


RULED_FILE = """
[trial]
seed = 1
subjects_per_arm = 10
visit_every_days = 7

[enrolment]
chemotherapy = ""
entry_below = false

[response]
threshold = 50

[[arms]]
name = "none"

[[arms]]
name = "rules"
treatment = ["hetrombopag 5 mg"]
max_days = 42

[[arms.rules]]
when = "above"
level = 150
action = "hold"

[[arms.rules]]
when = "below"
level = 50
action = "increase"
drug = "hetrombopag"
step = "2.5 mg"
max = "7.5 mg"
"""


@pytest.mark.parametrize("old, new, expected", [
    ('action = "hold"', 'action = "pause"', ["line 25 [arms #2.rules #1] action must be one "
                                             "of 'stop', 'hold'", "got 'pause'"]),
    ('when = "above"', 'when = "over"', ["line 23 [arms #2.rules #1] when must be one of "
                                         "'above', 'below', got 'over'"]),
    ('max = "7.5 mg"', 'max = 7.5', ["[arms #2.rules #2] max must be an amount in quotes"]),
    ('max = "7.5 mg"\n', '', ["an increase rule needs max"]),
    ('drug = "hetrombopag"', 'drug = "rhTPO"', ["names drug 'rhTPO', which is not one of the "
                                               "arm's treatment drugs (hetrombopag)"]),
    ('drug = "hetrombopag"', 'drug = "hetrombopog"', ["did you mean 'hetrombopag'"]),
    ('step = "2.5 mg"', 'step = "2.5 mg/kg"', ["step '2.5 mg/kg' must use the same kind of "
                                               "unit as 'hetrombopag 5 mg'"]),
    ('max = "7.5 mg"', 'max = "2.5 mg"', ["the starting dose 'hetrombopag 5 mg' must lie "
                                          "within min..max"]),
    ('action = "hold"', 'action = "decrease"\ndrug = "hetrombopag"\nstep = "1 mg"\nmin = '
     '"6 mg"', ["dose rule 1 (decrease): the starting dose 'hetrombopag 5 mg' must lie "
                "within min..max (6 mg to no maximum)"]),
    ('action = "hold"', 'action = "decrease"\ndrug = "hetrombopag"\nstep = "1 mg"',
     ["a drug's dose moves by one step size"]),
    ('action = "hold"', 'action = "hold"\nstep = "1 mg"', ["step only apply to increase and "
                                                          "decrease rules"]),
    ('level = 150', 'level = -1', ["[arms #2.rules #1] level must be a number in (0, inf)"]),
    ('level = 150', 'levels = 150', ["line 22 [arms #2.rules #1] level is required"]),
    ('level = 150', 'level = 150\nlevels = 1', ["line 25 [arms #2.rules #1]: unknown field "
                                                "'levels' (did you mean 'level'?)"]),
])
def test_bad_dose_rules_get_one_clear_message(tmp_path, old, new, expected):
    path = tmp_path / "ruled.toml"
    assert old in RULED_FILE
    path.write_text(RULED_FILE.replace(old, new, 1))
    with pytest.raises(TrialSpecError) as error:
        load_trial_spec(path)
    for part in expected:
        assert part in str(error.value)


def test_a_file_with_rule_tables_runs_and_reports_the_rules(tmp_path):
    path = tmp_path / "ruled.toml"
    path.write_text(RULED_FILE)
    spec = load_trial_spec(path)
    rules = spec.arms[1].rules
    assert [r.action for r in rules] == ["hold", "increase"] and rules[1].maximum == "7.5 mg"
    assert spec.arms[1].visit_every_days == 7.0
    with pytest.raises(pp.PlateletPDError, match="smooth_stop .fitting. needs one dose a day"):
        ArmDesign("x", treatment=("rhTPO 15000 U d2,4,6,9",), smooth_stop=True)
    with pytest.raises(pp.PlateletPDError, match="dose rule 1: when must be one of"):
        ArmDesign("x", rules=(DoseRule("over", 100, "stop"),))


def test_from_day_leaves_the_baseline_visit_out_of_a_rule(tmp_path):
    # a user test (2026-12-04): an ITP arm "starting at 5 mg" with "below 50: increase" got
    # 7.5 mg from its second dose, because the rule is judged at the day-0 (baseline) visit,
    # where every ITP patient is below 50. from_day = 7 leaves that visit out: over the first
    # week (weekly visits, seven daily doses) the arm then gets its starting dose only
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "trials" / "itp_phase3.toml").read_text()
    # the bundled file now judges its increase rule from day 14; the baseline variant is
    # the rule as it was written before (no from_day)
    week = text.replace("max_days = 56", "max_days = 7").replace(", from_day = 14 }", " }")
    judged_from_7 = week.replace(
        'step = "2.5 mg", max = "7.5 mg" }', 'step = "2.5 mg", max = "7.5 mg", from_day = 7 }')
    assert judged_from_7.count("from_day = 7") == 2  # both drug arms
    intensity = {}
    for name, content in (("baseline", week), ("from7", judged_from_7)):
        (tmp_path / f"{name}.toml").write_text(content)
        result = pp.run_trial(load_trial_spec(tmp_path / f"{name}.toml", subjects=40))
        s = result.subjects
        intensity[name] = s[s.arm == "HETROM-5"].dose_intensity.to_numpy()
    # judged at baseline: every patient below 50 there gets a higher dose from dose 2
    assert (intensity["baseline"] > 1.0).mean() > 0.9
    assert np.allclose(intensity["from7"], 1.0)   # the starting dose throughout week 1
    bad = judged_from_7.replace("from_day = 7", "from_day = -7", 1)
    (tmp_path / "bad.toml").write_text(bad)
    with pytest.raises(TrialSpecError, match="from_day"):
        load_trial_spec(tmp_path / "bad.toml")


def test_a_titration_with_dose_rules_of_the_same_drug_names_the_real_conflict(tmp_path):
    # a user test (2026-12-04): the refusal named the arm twice and advised equal step
    # sizes, which was not the problem; it now says the drug has a titration and how to
    # write the schedule as rules
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "trials" / "itp_phase3.toml").read_text()
    start = text.index('name = "HETROM-5"')
    text = text[:start] + text[start:].replace(
        "max_days = 56", 'max_days = 56\ntitration = [{ day = 14, below = 50, dose = '
        '"hetrombopag 7.5 mg" }]', 1)
    (tmp_path / "both.toml").write_text(text)
    with pytest.raises(TrialSpecError) as error:
        load_trial_spec(tmp_path / "both.toml")
    message = str(error.value)
    assert "'hetrombopag' also has a titration" in message and "from_day = 14" in message
    assert message.count("arm 'HETROM-5'") == 1 and "same step" not in message
