"""A comparison between two data arms read from one trial arm (a self-controlled study's two
cycles, `data_cycles`) is judged by a paired bootstrap over the same patients, as the
study's own paired test judged it (a blind user test, 2026-12-07: Vadhan-Raj 2000's P values
between cycle 1 and cycle 2 of the same 16 patients were judged as if from two groups).

Properties that could fail: the paired standard error of a mean difference is the
difference's own spread over the patients, sd(d) / sqrt(n), not the two cycles' spreads
added (an independent-groups error about 14 times larger here); a patient missing from one
reading (a cycle not given) is left out of that reading only; one arm read twice by one
reader is no difference at all.
"""

import math

import numpy as np
import pandas as pd
import pytest

from plateletpd.study.check import COMPARISON_RESAMPLES, comparison_z


def mean_of(column):
    return lambda table: float(table[column].mean())


@pytest.fixture()
def cycles():
    # 200 patients: cycle-1 nadirs spread as a CIT cycle's (mean 50, SD 20), cycle 2 the
    # same patients 10 higher with a little noise of its own (SD 2): strongly paired
    generator = np.random.default_rng(20001)
    first = generator.normal(50.0, 20.0, 200)
    table = pd.DataFrame({"cycle1": first, "cycle2": first + 10.0 + generator.normal(0.0, 2.0,
                                                                                        200)})
    return table.set_index(np.arange(1000, 1200))  # labels, not positions


def test_the_paired_error_is_the_differences_own_spread(cycles):
    z, difference, (second, first) = comparison_z(
        mean_of("cycle2"), mean_of("cycle1"), cycles, cycles, np.random.default_rng(1),
        same_patients=True)
    d = cycles.cycle2 - cycles.cycle1
    paired_error = d.std(ddof=0) / math.sqrt(len(d))  # the bootstrap's plug-in error
    assert difference == pytest.approx(d.mean(), rel=1e-12)
    # 60 resamples estimate an SD within about 9% (1 / sqrt(2 x 59)): 30% is 3.3 of them
    assert COMPARISON_RESAMPLES == 60
    assert difference / z == pytest.approx(paired_error, rel=0.3)
    # judged as two groups the same numbers give a far larger error
    z_groups, _, _ = comparison_z(mean_of("cycle2"), mean_of("cycle1"), cycles, cycles,
                                  np.random.default_rng(1))
    groups_error = math.sqrt(cycles.cycle1.var(ddof=0) + cycles.cycle2.var(ddof=0)) \
        / math.sqrt(len(d))
    assert difference / z_groups == pytest.approx(groups_error, rel=0.3)
    assert groups_error > 10 * paired_error


def test_a_patient_missing_from_one_reading_is_left_out_of_that_reading_only(cycles):
    # cycle 2 not given to the last 40 patients: its reading is over the first 160
    given = cycles.iloc[:160]
    z, difference, (second, first) = comparison_z(
        mean_of("cycle2"), mean_of("cycle1"), given, cycles, np.random.default_rng(2),
        same_patients=True)
    assert second == pytest.approx(given.cycle2.mean(), rel=1e-12)
    assert first == pytest.approx(cycles.cycle1.mean(), rel=1e-12)
    assert math.isfinite(z) and z > 0


def test_one_arm_read_twice_by_one_reader_is_no_difference(cycles):
    z, difference, _ = comparison_z(mean_of("cycle1"), mean_of("cycle1"), cycles, cycles,
                                    np.random.default_rng(3), same_patients=True)
    assert difference == 0.0 and z == 0.0


TRIAL = """
[trial]
name = "self_controlled"
seed = 2000
subjects_per_arm = 60
follow_up_days = 56
data_study = "vadhanraj2000"

[population]
covariates = { body_weight = 65 }

[chemotherapy]
regimen = "chemotherapy 1 dose"
cycle_days = 28
cycles = 2
follow_up_days = 28

[enrolment]
start_delay = 0

[[arms]]
name = "rhTPO in cycle 2"
support = ["rhTPO 1.2 ug/kg d2,4,6,8"]
support_cycles = [2]
data_arm = ["cycle 1", "cycle 2"]
data_cycles = { "cycle 1" = 1, "cycle 2" = 2 }
"""
# Vadhan-Raj S et al., Ann Intern Med 2000;132:364 (PMID 10691586, abstract): mean nadir 20
# in cycle 1 (carboplatin) and 44 in cycle 2 (with rhTPO), P = 0.002; n = 16 derived by a
# user test from the published McNemar P (models/cit_marrow_reserve.md)
ROWS = """study,arm,regimen,n,population,day0,endpoint,threshold,day,statistic,value,spread_type,spread,source,evidence,note,versus,comparison,versus_n
vadhanraj2000,cycle 1,carboplatin,16,gynaecological cancer,each cycle's day 1,nadir_plt,,,mean,20,,,PMID 10691586 abstract,verbatim,n derived,,,
vadhanraj2000,cycle 2,carboplatin + rhTPO,16,gynaecological cancer,each cycle's day 1,nadir_plt,,,mean,44,,,PMID 10691586 abstract,verbatim,n derived,,,
vadhanraj2000,cycle 2,carboplatin + rhTPO,16,gynaecological cancer,each cycle's day 1,nadir_plt,,,mean,0.002,,,PMID 10691586 abstract,verbatim,paired,cycle 1,higher,16
"""


def test_a_check_reads_two_cycles_of_one_trial_arm_as_a_paired_comparison(tmp_path):
    from plateletpd.study.check import check_trial
    from plateletpd.study.trial import load_trial_spec

    (tmp_path / "trial.toml").write_text(TRIAL)
    (tmp_path / "rows.csv").write_text(ROWS)
    result = check_trial(load_trial_spec(tmp_path / "trial.toml"), tmp_path / "rows.csv",
                         replicates=2)
    row = result.table[result.table.line == 4].iloc[0]
    assert "paired bootstrap over the same patients" in row.reading
    # both sides named where they differ (a user test read only the rhTPO cycle's)
    assert "in mean of cycle2_nadir (cycle 2) against mean of cycle1_nadir (cycle 1)" in \
        row.reading
    assert math.isfinite(row.predicted) and row.predicted > 0  # rhTPO's cycle is higher


# ------------------------------------------------------------------ a paired design
PAIRED_TRIAL = """
[trial]
name = "crossover"
seed = 2004
subjects_per_arm = 60
follow_up_days = 42
design = "paired"
reference_arm = "control"
data_study = "crossover2009"

[population]
covariates = { body_weight = 65 }

[enrolment]
entry_below = 75
start_delay = 1

[response]
threshold = 100

[[arms]]
name = "control"
data_arm = "control"

[[arms]]
name = "rhTPO"
treatment = ["rhTPO 15000 U"]
max_days = 14
data_arm = "rhTPO"
"""
# a crossover's published direction (as a blind user test of 2026-12-08 wrote one: the
# CJCPT 2009 rhTPO crossover, days below 50 "1 day shorter", P = 0.029; n = 32 per period)
PAIRED_ROWS = """study,arm,regimen,n,population,day0,endpoint,threshold,day,statistic,value,spread_type,spread,source,evidence,note,versus,comparison,versus_n
crossover2009,rhTPO,rhTPO,32,solid tumours,first dose,duration_below_days,50,,mean,0.029,,,constructed from a crossover abstract,verbatim,paired,control,lower,32
"""


def test_two_arms_of_a_paired_design_are_compared_by_a_paired_bootstrap(tmp_path):
    from plateletpd.study.check import check_trial
    from plateletpd.study.trial import load_trial_spec

    (tmp_path / "trial.toml").write_text(PAIRED_TRIAL)
    (tmp_path / "rows.csv").write_text(PAIRED_ROWS)
    paired = check_trial(load_trial_spec(tmp_path / "trial.toml"), tmp_path / "rows.csv",
                         replicates=4).table.iloc[0]
    assert "paired bootstrap over the same patients, two arms of a paired design" in \
        paired.reading
    # the same trial in a parallel design (each arm its own patients, judged as two
    # groups): the paired z is larger in size, since one patient's two periods are
    # correlated and the paired test removes the between-patient spread
    (tmp_path / "parallel.toml").write_text(PAIRED_TRIAL.replace('design = "paired"\n', ""))
    groups = check_trial(load_trial_spec(tmp_path / "parallel.toml"), tmp_path / "rows.csv",
                         replicates=4).table.iloc[0]
    assert "bootstrap standard error within each virtual study" in groups.reading
    assert paired.predicted < 0 and abs(paired.predicted) > abs(groups.predicted)


def test_a_reading_resting_on_one_patient_has_no_z_not_a_decisive_one():
    # a mean time to 100 that only one patient per arm reaches (a blind user test,
    # 2026-12-08: a z of -10^6 from such a row counted as finding the published result)
    column = np.full(20, np.nan)
    column[3] = 5.0
    arm = pd.DataFrame({"days": column})
    versus = pd.DataFrame({"days": np.where(np.arange(20) == 7, 9.0, np.nan)})
    z, difference, values = comparison_z(lambda t: float(t["days"].mean()),
                                         lambda t: float(t["days"].mean()), arm, versus,
                                         np.random.default_rng(4))
    assert difference == -4.0 and values == (5.0, 9.0)
    assert math.isnan(z)
    # a share of 0% against 100% is defined in every resample: still as decisive as a test
    # can be
    none, every = pd.DataFrame({"x": np.zeros(20)}), pd.DataFrame({"x": np.ones(20)})
    z, _, _ = comparison_z(lambda t: float(t["x"].mean()), lambda t: float(t["x"].mean()),
                           none, every, np.random.default_rng(5))
    assert z == -1e6
