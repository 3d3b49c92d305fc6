"""The Monte Carlo error of a fit's rows (issue 17: "at least 1,000 virtual patients per arm
at the optimum, or a shown Monte Carlo SE under a fifth of each row's SE"): every row
predicted again at the optimum with cohorts from other seeds; the SD across them, and that
SD over the row's standard error, in predictions.csv, report.md and params.json."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from plateletpd.inference.fitting import (MONTE_CARLO_LIMIT, MONTE_CARLO_SUBJECTS,
                                          FitConfigError, load_fit_config,
                                          monte_carlo_error, monte_carlo_seed,
                                          monte_carlo_sentence, monte_carlo_short, run_fit)

HEADER = ("study,arm,regimen,n,population,day0,endpoint,threshold,day,statistic,value,"
          "spread_type,spread,source")

# One cycle of the model's standard chemotherapy, everyone followed from day 0 (no entry
# rule, so every screened patient is enrolled and the arm's size is fixed); CVs without the
# wide regeneration spread of the bundled trials, so that no draw leaves the model's bounds
TRIAL = """
[trial]
name = "monte_carlo_test"
model = "cit_marrow_reserve"
fit = "none"
seed = {seed}
subjects_per_arm = {subjects}
follow_up_days = 35
data_study = "mc_test"

[population]
cv = {{ chemotherapy_sensitivity = 0.30, platelets_baseline = 0.17 }}
covariates = {{ body_weight = 65 }}

[enrolment]
chemotherapy = "chemotherapy 1 dose d1"
entry_below = false
start_delay = 0

[response]
threshold = 100
by_day = 28

[[arms]]
name = "chemotherapy alone"
data_arm = "control"
"""

FIT = """
[fit]
model = "cit_marrow_reserve"
data = "outcomes.csv"
seed = 3
max_evaluations = {evaluations}
difference_step = 0.05
{fit_keys}

[parameters]
chemotherapy_sensitivity = {{ value = 8.0, vary = true, lower = 2.0, upper = 12.0 }}

[[trials]]
file = "trial.toml"
"""


def write_case(folder, subjects=100, seed=11, evaluations=2, fit_keys="", level=15):
    (folder / "trial.toml").write_text(TRIAL.format(seed=seed, subjects=subjects))
    # a share below a level (an incidence row, binomial standard error from n) and a mean
    # nadir (standard error from the default CV); the values are placeholders for a fit
    rows = [f"mc_test,control,r,40,p,chemotherapy,incidence_proportion,PLT <{level},,"
            f"percent,50,,,tests/test_fit_monte_carlo.py",
            "mc_test,control,r,40,p,chemotherapy,nadir_plt,,,mean,40,SD,15,"
            "tests/test_fit_monte_carlo.py"]
    (folder / "outcomes.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    path = folder / "config.toml"
    path.write_text(FIT.format(evaluations=evaluations, fit_keys=fit_keys))
    return path


def test_monte_carlo_sd_of_a_proportion_row_is_the_binomial_sd(tmp_path):
    problem = load_fit_config(write_case(tmp_path, subjects=100))
    values = problem.parameters.valuesdict()
    replicates = 60
    table = monte_carlo_error(problem, values, replicates)
    row = table[table.endpoint == "incidence_proportion"].iloc[0]
    n = int(row.virtual_patients)
    assert n == 100  # no entry rule and no draw outside the bounds: every patient counts
    # each patient's event is a Bernoulli draw whose probability varies between patients;
    # the share of n such patients has variance p(1 - p)/n with p the population mean
    # probability, estimated here by the cohorts' mean share
    shares = []
    for replicate in range(1, replicates + 1):
        other = problem.trials[0].reseeded(monte_carlo_seed(problem.trials[0].spec.seed,
                                                            replicate))
        shares.append(other.predict(values).predicted.iloc[0])
    p = float(np.mean(shares))
    assert 0.2 < p < 0.8  # a level where the binomial SD is not small
    binomial = math.sqrt(p * (1 - p) / n)
    # the SD of 60 cohorts has a relative standard error of 1/sqrt(2 x 59) = 9.2%: within
    # 30% of the binomial SD is more than three of those
    assert abs(row.monte_carlo_sd / binomial - 1) < 0.30
    # and it is the SD of exactly those re-predictions (the fitted cohort not among them)
    assert row.monte_carlo_sd == pytest.approx(np.std(shares, ddof=1), rel=1e-12)
    assert row.monte_carlo_sd_per_se == pytest.approx(row.monte_carlo_sd /
                                                      row.standard_error)


def test_monte_carlo_cohorts_are_other_patients_of_the_same_size(tmp_path):
    problem = load_fit_config(write_case(tmp_path, subjects=30))
    trial = problem.trials[0]
    seeds = [monte_carlo_seed(trial.spec.seed, k) for k in (1, 2, 3)]
    # a stream of its own per cohort, never the trial's own seed
    assert len(set(seeds)) == 3 and trial.spec.seed not in seeds
    other = trial.reseeded(seeds[0])
    index = trial.arms[0]
    assert other.eta[index].shape == trial.eta[index].shape
    assert not np.allclose(other.eta[index], trial.eta[index])
    assert other.spec.seed == seeds[0] and trial.spec.seed == 11  # the original untouched
    # the same seed gives the same cohort (reproducible)
    np.testing.assert_array_equal(trial.reseeded(seeds[0]).eta[index], other.eta[index])


def test_fit_writes_the_monte_carlo_error_and_says_whether_every_row_is_under_a_fifth(
        tmp_path):
    config = write_case(tmp_path, subjects=40, fit_keys="monte_carlo_replicates = 4")
    run_fit(config, out=tmp_path / "out", verbose=False)
    predictions = pd.read_csv(tmp_path / "out" / "predictions.csv")
    assert {"monte_carlo_sd", "monte_carlo_sd_per_se"} <= set(predictions.columns)
    assert (predictions.monte_carlo_sd > 0).all()
    report = (tmp_path / "out" / "report.md").read_text()
    record = json.loads((tmp_path / "out" / "params.json").read_text())["monte_carlo"]
    under = bool((predictions.monte_carlo_sd_per_se < MONTE_CARLO_LIMIT).all())
    assert record["replicates"] == 4 and record["every_row_under_one_fifth"] == under
    assert record["largest_sd_per_se"] == pytest.approx(
        predictions.monte_carlo_sd_per_se.max())
    assert "## Monte Carlo error" in report and record["sentence"] in report
    # 40 patients: the proportion's MC SD is about sqrt(0.25/40) = 0.08, above a fifth of
    # the row's binomial SE from n = 40 (0.079 x 0.2 = 0.016), so the sentence says so
    assert not under and "at least one fifth" in record["sentence"]
    # ... and from 40 virtual patients, below 1,000, so those rows are to be raised
    over = predictions[~(predictions.monte_carlo_sd_per_se < MONTE_CARLO_LIMIT)]
    assert (predictions.virtual_patients < MONTE_CARLO_SUBJECTS).all()
    assert record["rows_short"] == list(over.line) and "raise" in record["sentence"]


def test_the_sentence_reads_the_ratios():
    table = pd.DataFrame({"line": [2, 3], "study": ["s", "s"], "arm": ["a", "b"],
                          "monte_carlo_sd_per_se": [0.05, 0.19],
                          "virtual_patients": [40, 40]})
    assert monte_carlo_sentence(table).startswith("Every row's Monte Carlo SD is under one "
                                                  "fifth")
    table.loc[1, "monte_carlo_sd_per_se"] = 0.2  # a fifth is not under a fifth
    assert "1 of 2 rows" in monte_carlo_sentence(table) and "lines 3" in \
        monte_carlo_sentence(table)


@pytest.mark.parametrize("keys, expected", [
    ("monte_carlo_replicates = 1", "at least 2"),
    ("monte_carlo_replicates = -2", "monte_carlo_replicates"),
    ("monte_carlo_replicates = 2.5", "monte_carlo_replicates"),
])
def test_bad_monte_carlo_replicates_are_clear_errors(tmp_path, keys, expected):
    config = write_case(tmp_path, subjects=10, fit_keys=keys)
    with pytest.raises(FitConfigError, match=expected):
        run_fit(config, verbose=False)


def test_the_fit_command_option_overrides_the_configuration(tmp_path, capsys):
    from plateletpd.cli import main

    # the configuration says off (0); --monte-carlo-replicates 3 turns it on
    config = write_case(tmp_path, subjects=10, fit_keys="monte_carlo_replicates = 0")
    assert main(["fit", str(config), "--out", str(tmp_path / "out"),
                 "--monte-carlo-replicates", "3"]) == 0
    record = json.loads((tmp_path / "out" / "params.json").read_text())["monte_carlo"]
    assert record["replicates"] == 3
    assert "monte_carlo_sd" in pd.read_csv(tmp_path / "out" / "predictions.csv").columns
    # a bad value is the configuration's clear error, exit status 2
    assert main(["fit", str(config), "--monte-carlo-replicates", "1"]) == 2
    assert "at least 2" in capsys.readouterr().err


def test_a_row_meets_the_monte_carlo_requirement_by_its_size_or_by_its_error():
    # issue 17 item 3: "at least 1,000 virtual patients per arm at the optimum, or a shown
    # Monte Carlo SE under a fifth of each row's SE"; ratios and sizes on either side of
    # those two limits
    assert (MONTE_CARLO_LIMIT, MONTE_CARLO_SUBJECTS) == (0.2, 1000)
    table = pd.DataFrame({
        "line": [1, 2, 3, 4], "study": ["s"] * 4, "arm": ["a", "b", "c", "d"],
        "monte_carlo_sd_per_se": [0.5, 0.5, 0.1, 0.2],
        "virtual_patients": [1000, 999, 300, 516]})
    # line 1: large ratio but 1,000 patients; line 3: few patients but a small ratio;
    # lines 2 and 4 fail both (a ratio of exactly 0.2 is not under a fifth)
    assert list(monte_carlo_short(table).line) == [2, 4]
    sentence = monte_carlo_sentence(table)
    assert sentence.startswith("3 of 4 rows have a Monte Carlo SD of at least one fifth")
    assert "lines 2, 4 from fewer than 1,000 virtual patients: raise" in sentence
    # with every large-ratio row at 1,000 or more, nothing is to be raised
    table.loc[[1, 3], "virtual_patients"] = [1000, 5000]
    assert monte_carlo_short(table).empty
    assert monte_carlo_sentence(table).endswith(
        "each of them is predicted from at least 1,000 virtual patients.")
