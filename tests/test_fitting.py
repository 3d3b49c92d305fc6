"""Fitting to arm-level summaries: recovery of known parameters, reproducibility, errors."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from plateletpd.inference.fitting import FitConfigError, load_fit_config, run_fit
from plateletpd.io.outcomes import OutcomeDataError

HEADER = ("study,arm,regimen,n,population,day0,endpoint,threshold,day,statistic,value,"
          "spread_type,spread,source")
# Friberg platelet model, illustrative cytotoxic: every virtual patient, day 0 = first dose
CONFIG = """
[fit]
model = "friberg_platelets"
data = "outcomes.csv"
seed = 7
subjects = 40
max_evaluations = 80

[population]
cv = {{ slope = 0.2 }}

[parameters]
slope = {{ value = {slope}, vary = true, lower = 0.05, upper = 3.0 }}
gamma = {{ value = {gamma}, vary = true, lower = 0.01, upper = 1.0 }}

[[arms]]
study = "synthetic"
arm = "cytotoxic"
chemotherapy = "cytotoxic 100 mg qd d1-14"
entry_below = false
day0 = "chemotherapy"
follow_up_days = 42
"""
ENDPOINTS = [("nadir_plt", "", ""), ("plt_count", "", 14), ("plt_count", "", 21),
             ("plt_count", "", 28), ("plt_count", "", 35), ("time_to_threshold_days", 150, "")]
TRUE = {"slope": 0.6, "gamma": 0.3}  # values the synthetic data are generated from


def write_case(folder: Path, values: dict, observed=None, spread=None) -> Path:
    rows = []
    for k, (endpoint, threshold, day) in enumerate(ENDPOINTS):
        value = 1.0 if observed is None else observed[k]
        sd = 1.0 if spread is None else spread[k]
        rows.append(f"synthetic,cytotoxic,r,40,p,d,{endpoint},{threshold},{day},mean,{value},"
                    f"SD,{sd},generated in tests/test_fitting.py")
    (folder / "outcomes.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    config = folder / "config.toml"
    config.write_text(CONFIG.format(**values))
    return config


def make_synthetic(folder: Path, noise_seed: int | None) -> Path:
    """Data simulated at TRUE (3% SE; noisy when a seed is given), in a fit folder whose
    configuration starts the fit away from the truth."""
    problem = load_fit_config(write_case(folder, TRUE))
    exact = problem.predict(TRUE)["predicted"].to_numpy()
    standard_error = 0.03 * exact  # SD = SE * sqrt(n = 40)
    noise = 0.0 if noise_seed is None else \
        np.random.default_rng(noise_seed).normal(0.0, standard_error)
    write_case(folder, {"slope": 0.4, "gamma": 0.19}, exact + noise,
               standard_error * np.sqrt(40))
    return folder


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return make_synthetic(tmp_path_factory.mktemp("noisy"), noise_seed=11)


@pytest.mark.slow
def test_noise_free_data_are_fitted_back_to_the_generating_values(tmp_path):
    folder = make_synthetic(tmp_path, noise_seed=None)
    _, result, table = run_fit(folder / "config.toml", verbose=False)
    for name, true in TRUE.items():
        assert result.params[name].value == pytest.approx(true, rel=1e-3), name
    assert np.max(np.abs(table.residual)) < 0.05  # of a standard error: optimiser tolerance


@pytest.mark.slow
def test_known_parameters_are_recovered_within_their_confidence_intervals(synthetic):
    _, result, table = run_fit(synthetic / "config.toml", verbose=False)
    assert result.success and result.errorbars
    for name, true in TRUE.items():
        fitted = result.params[name]
        # 3 standard errors: 99.7% coverage for a correctly specified model
        assert abs(fitted.value - true) < 3 * fitted.stderr, (name, fitted.value,
                                                               fitted.stderr)
        assert fitted.stderr < 0.2 * true  # the design informs both parameters
    # residuals of a correctly specified fit are about N(0, 1): |r| < 4 for all six rows
    # fails with probability below 0.1%
    assert np.all(np.abs(table.residual) < 4)


@pytest.mark.slow
def test_same_seed_and_data_give_the_same_fit(synthetic, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(synthetic, copy)
    first = run_fit(synthetic / "config.toml", verbose=False, max_evaluations=20)[1]
    second = run_fit(copy / "config.toml", verbose=False, max_evaluations=20)[1]
    assert first.params.valuesdict() == second.params.valuesdict()


@pytest.mark.slow
def test_fit_outputs_are_written(synthetic, tmp_path):
    import json

    run_fit(synthetic / "config.toml", out=tmp_path / "out", verbose=False, max_evaluations=15)
    record = json.loads((tmp_path / "out" / "params.json").read_text())
    assert set(record["parameters"]) == {"slope", "gamma"}
    assert record["provenance"]["seed"] == 7 and len(record["provenance"]["data"]["sha256"]) == 64
    assert record["provenance"]["model"]["name"] == "friberg_platelets"
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## Every data row" in report and "time_to_threshold_days" in report
    predictions = pd.read_csv(tmp_path / "out" / "predictions.csv")
    assert len(predictions) == len(ENDPOINTS)
    assert (tmp_path / "out" / "fit.png").read_bytes()[:4] == b"\x89PNG"


def test_a_corrupted_data_file_gives_a_row_level_error(synthetic, tmp_path):
    shutil.copytree(synthetic, tmp_path / "bad")
    path = tmp_path / "bad" / "outcomes.csv"
    lines = path.read_text().splitlines()
    lines[3] = lines[3].replace(",mean,", ",mean,-")
    lines[2] = lines[2].replace(",40,p,", ",-40,p,")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(OutcomeDataError) as error:
        load_fit_config(tmp_path / "bad" / "config.toml")
    assert [problem[0] for problem in error.value.problems] == [3, 4]  # file lines


@pytest.mark.parametrize("change, fragment", [
    (("max_evaluations = 80", "max_evaluatons = 80"), "did you mean 'max_evaluations'"),
    (("slope = {", "slop = {"), "has no parameter 'slop'"),
    (('arm = "cytotoxic"', 'arm = "cytotoxik"'), "no data rows"),
    (("seed = 7", "seed = -1"), "seed must be"),
    (('day0 = "chemotherapy"', 'day0 = "cycle"'), "day0 must be one of"),
    (("upper = 3.0", "upper = 30.0"), "go beyond the model file's"),
])
def test_bad_configurations_are_named(synthetic, tmp_path, change, fragment):
    shutil.copytree(synthetic, tmp_path / "c")
    config = tmp_path / "c" / "config.toml"
    config.write_text(config.read_text().replace(*change, 1))
    with pytest.raises(FitConfigError, match=fragment):
        load_fit_config(config)


@pytest.mark.slow
def test_profile_likelihood_agrees_with_the_wald_interval_when_nearly_linear(synthetic):
    from plateletpd.inference.fitting import profile

    problem, result, _ = run_fit(synthetic / "config.toml", verbose=False,
                                 profile_parameters=False)
    info = profile(problem, result, "gamma", points=9, span=3.0)
    low, high = info["ci95"]
    best, wald = result.params["gamma"].value, 1.96 * result.params["gamma"].stderr
    assert low < best < high
    # near the optimum the chi-square is close to quadratic: the profile interval and
    # +/- 1.96 SE agree within 25% (measured here: within a few percent)
    assert (high - low) / 2 == pytest.approx(wald, rel=0.25)
    assert min(info["chi_square"]) >= result.chisqr - 1e-6  # refits never beat the optimum
