"""Fitting to arm-level summaries: recovery of known parameters, reproducibility, errors."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from plateletpd.inference.fitting import (FitConfigError, load_fit_config, rebalance_study_spreads,
                                          run_fit)
from plateletpd.io.outcomes import OutcomeDataError, bundled_outcomes_path

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


def test_a_missing_data_file_says_so_plainly(synthetic, tmp_path):
    # a fitting user test (2026-12-04): "header, column '-': cannot read the file: [Errno 2]"
    shutil.copytree(synthetic, tmp_path / "m")
    (tmp_path / "m" / "outcomes.csv").unlink()
    with pytest.raises(OutcomeDataError, match="no such file: check the path") as error:
        load_fit_config(tmp_path / "m" / "config.toml")
    assert "header" not in str(error.value)


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


def test_the_model_files_unit_is_accepted_however_spaced(synthetic, tmp_path):
    shutil.copytree(synthetic, tmp_path / "c")
    config = tmp_path / "c" / "config.toml"
    config.write_text(config.read_text().replace("slope = { value",
                                                 'slope = { unit = "l / mg", value', 1))
    problem = load_fit_config(config)
    assert problem.parameters["slope"].user_data["unit"] == "L/mg"


@pytest.mark.parametrize("change, fragment", [
    (("max_evaluations = 80", "max_evaluatons = 80"), "did you mean 'max_evaluations'"),
    (("slope = {", "slop = {"), "has no parameter 'slop'"),
    (('arm = "cytotoxic"', 'arm = "cytotoxik"'), "no data rows"),
    (("seed = 7", "seed = -1"), "seed must be"),
    (('day0 = "chemotherapy"', 'day0 = "cycle"'), "day0 must be one of"),
    (("upper = 3.0", "upper = 30.0"), "go beyond the model file's"),
    # a fitting user test (2026-12-04): one message for two faults, a cut-off "like = ",
    # a misspelt prior without "did you mean", a start value whose origin was unsaid
    (("lower = 0.05, upper = 3.0", "lower = 3.0, upper = 0.05"), "not lower < upper: give the "
     "lower bound first"),
    (("slope = {", "slop = {"), r'like = "NAME" \(e.g. like'),
    (("[parameters]", '[priors]\nslop = { mean = 0.6, cv = 0.5 }\n[parameters]'),
     "did you mean 'slope'"),
    (("slope = { value = 0.4, vary = true, lower = 0.05",
      "slope = { vary = true, lower = 2.5"), r"no value given: the model file's"),
    # a fitting user test (2026-12-05): a unit other than the model's was stored and
    # ignored, the value run as if in the model's unit (1000 times off for ug/mL vs ng/mL)
    (("slope = { value", 'slope = { unit = "mL/mg", value'), r"slope is in 'L/mg' in "
     r"friberg_platelets \(the model file's unit\), not 'mL/mg'"),
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


# ---------------------------------------------------------------- study-level random effects
STUDIES_CONFIG = """
[fit]
model = "friberg_platelets"
data = "outcomes.csv"
seed = 7
subjects = 40
max_evaluations = 120

[population]
cv = {{ slope = 0.2 }}

[parameters]
slope = {{ value = 0.5, vary = true, lower = 0.05, upper = 3.0 }}
gamma = {{ value = 0.3, vary = false }}

[study_effects.slope]
studies = {studies}
spread = 0.3
"""
STUDY_ARM = """
[[arms]]
study = "{study}"
arm = "cytotoxic"
chemotherapy = "cytotoxic 100 mg qd d1-14"
entry_below = false
day0 = "chemotherapy"
follow_up_days = 42
"""


def write_studies(folder: Path, slopes: dict[str, float], observed=None) -> Path:
    """One arm per study (the same design), the data generated at each study's own slope
    (noise free, 3% SE); gamma fixed at its generating value."""
    studies = "[" + ", ".join(f'"{s}"' for s in slopes) + "]"
    config = folder / "config.toml"
    config.write_text(STUDIES_CONFIG.format(studies=studies)
                      + "".join(STUDY_ARM.format(study=s) for s in slopes))
    rows = []
    for study in slopes:
        for k, (endpoint, threshold, day) in enumerate(ENDPOINTS):
            value = 1.0 if observed is None else observed[study][k]
            sd = 1.0 if observed is None else 0.03 * value * np.sqrt(40)
            rows.append(f"{study},cytotoxic,r,40,p,d,{endpoint},{threshold},{day},mean,{value},"
                        f"SD,{sd},generated in tests/test_fitting.py")
    (folder / "outcomes.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    return config


def studies_case(folder: Path, slopes: dict[str, float]) -> Path:
    problem = load_fit_config(write_studies(folder, slopes))
    observed = {}
    for study, slope in slopes.items():
        values = problem.parameters.valuesdict()
        values["slope"] = slope  # every effect 0: the study's value is the typical one
        frame = problem.predict(values)
        observed[study] = frame[frame.study == study]["predicted"].to_numpy()
    return write_studies(folder, slopes, observed)


@pytest.mark.slow
def test_study_effects_recover_each_study_and_a_between_study_spread(tmp_path):
    slopes = {"a": 0.4, "b": 0.6, "c": 0.9}  # generating values, one per study
    problem, result, _ = run_fit(studies_case(tmp_path, slopes), verbose=False)
    fitted = problem.study_values(result.params.valuesdict())["slope"]
    for study, slope in slopes.items():
        # precise data (3% SE, six rows per study): shrinkage towards the typical value is
        # small, each study's value within 5% of the value its data were generated from
        assert fitted[study] == pytest.approx(slope, rel=0.05), (study, fitted)
    # the SD of log(0.4, 0.6, 0.9) about their mean is 0.33 (maximum likelihood, n in the
    # denominator); three studies bound it only loosely
    spread = result.params["slope_between_study_sd"].value
    assert 0.15 < spread < 0.7, spread
    # and it is the SD that minimises the objective for the fitted studies' values (the
    # optimiser alone stopped short along that valley: tests/test_study_spread.py)
    settled = result.params.copy()
    assert rebalance_study_spreads(problem, settled) < 1e-6
    assert settled["slope_between_study_sd"].value == pytest.approx(spread, rel=1e-3)
    # the typical value lies between the studies (geometric mean 0.60)
    assert 0.45 < result.params["slope"].value < 0.8


@pytest.mark.slow
def test_identical_studies_give_no_between_study_spread(tmp_path):
    slopes = {"a": 0.6, "b": 0.6, "c": 0.6}
    problem, result, _ = run_fit(studies_case(tmp_path, slopes), verbose=False)
    # without the Laplace term the joint optimum would not shrink the spread; with it the
    # marginal likelihood of three identical studies is largest at a spread near 0
    assert result.params["slope_between_study_sd"].value < 0.1
    for value in problem.study_values(result.params.valuesdict())["slope"].values():
        assert value == pytest.approx(0.6, rel=0.03)


@pytest.mark.parametrize("change, fragment", [
    ("[study_effects.slope]", "[study_effects.gamma]\n[study_effects.slope]"),
    ('studies = ["a", "b"]', 'studies = ["a", "z"]'),
])
def test_bad_study_effects_are_named(tmp_path, change, fragment):
    config = write_studies(tmp_path, {"a": 0.6, "b": 0.6})
    text = config.read_text().replace(change, fragment, 1)
    if "gamma]" in fragment:  # gamma under [parameters] is fixed: its typical value is there,
        text = text.replace("gamma = { value = 0.3, vary = false }", "")  # so remove it
    config.write_text(text)
    expected = "needs the typical value of gamma" if "gamma]" in fragment else \
        "no \\[\\[arms\\]\\] entry has study 'z'"
    with pytest.raises(FitConfigError, match=expected):
        load_fit_config(config)


def test_progress_is_printed_and_max_evaluations_caps_fit_and_profiles(synthetic, tmp_path,
                                                                       capsys):
    shutil.copytree(synthetic, tmp_path / "p")
    config = tmp_path / "p" / "config.toml"
    config.write_text(config.read_text().replace(
        "max_evaluations = 80", 'max_evaluations = 80\nprofile = ["gamma"]\nprofile_points = 3'))
    problem, _, _ = run_fit(config, out=tmp_path / "fit", verbose=True, max_evaluations=4,
                            progress_every=0.0)
    output = capsys.readouterr().out
    # a fit stopped by the cap (here inside a Jacobian) still writes its record
    objective = json.loads((tmp_path / "fit" / "params.json").read_text())["objective"]
    assert "aborted" in objective["message"] and not objective["success"]
    assert "fit: evaluation 1," in output and "objective" in output
    assert "fit: profile of gamma" in output
    # one fit, three profile refits and (when a refit beat the capped fit's optimum) a
    # restart from it and the three profile refits again around it, each capped at 4
    # evaluations (lmfit may make one more call before it stops), and the restart's
    # covariance (one evaluation per varied parameter, 2), and the capped fit's own (since
    # 2026-12-05 a capped fit reports standard errors of its last point: a Jacobian of 2
    # columns and, where the last evaluation was elsewhere, its base point, 3): far below
    # the uncapped 80 + 3 x 60
    minimisations = 4 + (4 if problem.restart else 0)
    assert problem.evaluations <= minimisations * (4 + 1) + 3 + (2 if problem.restart else 0)


def test_study_effects_built_in_code_match_the_configuration(tmp_path):
    import plateletpd as pp
    from plateletpd.inference.fitting import FitProblem

    problem = load_fit_config(write_studies(tmp_path, {"a": 0.6, "b": 0.6}))
    slope = {"value": 0.5, "lower": 0.05, "upper": 3.0}  # as STUDIES_CONFIG
    built = FitProblem.create(problem.model, problem.arms, {"slope": slope,
                                                             "gamma": {"value": 0.3,
                                                                       "vary": False}},
                              seed=7, subjects=40,
                              variability=pp.Variability.from_cv({"slope": 0.2}),
                              study_effects={"slope": {"studies": ["a", "b"]}})
    # the same fit parameters and the same predictions as the [study_effects.slope] file
    assert list(built.parameters) == list(problem.parameters)
    values = problem.parameters.valuesdict()
    values.update({"slope_effect_a": 1.0, "slope_between_study_sd": 0.3})
    np.testing.assert_array_equal(built.predict(values).predicted,
                                  problem.predict(values).predicted)
    # study a's value moved by exp(0.3 x 1), b's did not
    assert built.study_values(values)["slope"] == pytest.approx({"a": 0.5 * np.exp(0.3),
                                                                 "b": 0.5})
    with pytest.raises(FitConfigError, match="no \\[\\[arms\\]\\] entry has study 'z'"):
        FitProblem.create(problem.model, problem.arms, {"slope": slope}, seed=7,
                          study_effects={"slope": {"studies": ["z"]}})


def test_two_study_effects_move_each_studys_own_parameter(tmp_path):
    # issue 17 item 3 names study effects on damage and on the reserve: a configuration may
    # carry one per parameter; each study's u of one parameter moves only that study's
    # value of that parameter, and the prediction of that study's arm alone
    config = write_studies(tmp_path, {"a": 0.6, "b": 0.6})
    config.write_text(config.read_text().replace(
        "gamma = { value = 0.3, vary = false }",
        "gamma = { value = 0.3, vary = true, lower = 0.05, upper = 1.0 }").replace(
        "[study_effects.slope]", '[study_effects.gamma]\nstudies = ["a", "b"]\n'
                                 'spread = 0.2\n\n[study_effects.slope]'))
    problem = load_fit_config(config)
    assert set(problem.study_effects) == {"gamma", "slope"}
    values = problem.parameters.valuesdict()
    assert {"gamma_between_study_sd", "gamma_effect_a", "gamma_effect_b",
            "slope_between_study_sd", "slope_effect_a", "slope_effect_b"} <= set(values)
    before = problem.predict(values)
    values["gamma_effect_b"] = 1.5
    after = problem.predict(values)
    study = problem.study_values(values)
    assert study["gamma"] == pytest.approx({"a": 0.3, "b": 0.3 * np.exp(0.2 * 1.5)})
    assert study["slope"] == pytest.approx({"a": 0.5, "b": 0.5})
    a, b = (before.study == "a").to_numpy(), (before.study == "b").to_numpy()
    np.testing.assert_array_equal(after.predicted[a], before.predicted[a])
    assert np.any(after.predicted[b].to_numpy() != before.predicted[b].to_numpy())


def with_fit_key(synthetic: Path, folder: Path, line: str) -> Path:
    """A copy of the synthetic fit folder whose [fit] table has one more line."""
    shutil.copytree(synthetic, folder)
    config = folder / "config.toml"
    config.write_text(config.read_text().replace("subjects = 40", f"subjects = 40\n{line}"))
    return config


def test_final_subjects_refines_the_optimum_with_a_larger_cohort(synthetic, tmp_path):
    # issue 17 item 3: "at least 1,000 virtual patients per arm at the optimum"; here 40 then
    # 160 (the same mechanism at a test's cost)
    import json

    config = with_fit_key(synthetic, tmp_path / "final", "final_subjects = 160")
    folder = config.parent
    small = load_fit_config(synthetic / "config.toml")
    problem, result, table = run_fit(config, out=folder / "out", verbose=False,
                                     max_evaluations=15, profile_parameters=False)
    # the larger cohort extends the fit's own: its first 40 patients are the same draws
    assert problem.eta.shape[0] == 160
    np.testing.assert_array_equal(problem.eta[:40], small.eta)
    # the final minimisation starts at the 40-patient optimum and only accepts steps that
    # lower the objective: at 160 patients its chi-square is at most that starting point's
    _, start, _ = run_fit(synthetic / "config.toml", verbose=False, max_evaluations=15,
                          profile_parameters=False)
    start_residuals = problem.residuals(start.params)
    assert result.chisqr <= float(np.sum(start_residuals ** 2)) + 1e-9
    # the rows and record are at the final size, and the report says what ran at which size
    record = json.loads((folder / "out" / "params.json").read_text())
    assert record["provenance"]["subjects"] == 160
    report = (folder / "out" / "report.md").read_text()
    assert "160 virtual patients per arm (the fit at 40, then a final minimisation at 160" \
        in report


def test_final_evaluations_caps_the_final_minimisation_alone(synthetic, tmp_path):
    config = with_fit_key(synthetic, tmp_path / "capped",
                          "final_subjects = 80\nfinal_evaluations = 3")
    problem, result, _ = run_fit(config, verbose=False, profile_parameters=False)
    # the rounds ran to their own cap (80) or convergence; the final minimisation stopped
    # after 3 evaluations (lmfit may make one more call before it stops)
    assert result.nfev <= 3 + 1 and "> 3" in result.message
    assert problem.evaluations > 3 + 1
    # --max-evaluations caps every phase: a final_evaluations above it is cut to it
    config.write_text(config.read_text().replace("final_evaluations = 3",
                                                 "final_evaluations = 50"))
    _, capped, _ = run_fit(config, verbose=False, profile_parameters=False, max_evaluations=2)
    assert capped.nfev <= 2 + 1 and "> 2" in capped.message


def test_final_subjects_below_subjects_is_a_clear_error(synthetic, tmp_path):
    config = with_fit_key(synthetic, tmp_path / "bad_final", "final_subjects = 20")
    with pytest.raises(FitConfigError, match="final_subjects .20. must be 0 .off. or at "
                                             "least .fit. subjects .40."):
        run_fit(config, verbose=False, max_evaluations=2)


def test_covariance_recomputed_at_the_optimum_agrees_with_lmfits(synthetic):
    # the final minimisation's fallback when the optimiser's last Jacobian is rank-deficient
    # (fitting._covariance_at_optimum): (J'J)^-1 from a Jacobian recomputed at the optimum.
    # On a fit where lmfit's own covariance exists the two are the same quantity at (almost)
    # the same point: the standard errors agree within 10% (forward differences, Monte
    # Carlo roughness of 40 patients)
    from plateletpd.inference.fitting import _covariance_at_optimum

    problem, result, _ = run_fit(synthetic / "config.toml", verbose=False,
                                 max_evaluations=40, profile_parameters=False)
    expected = {name: result.params[name].stderr for name in TRUE}
    assert all(value and value > 0 for value in expected.values())
    result.errorbars = False
    # forget the optimiser's last Jacobian (taken at this optimum: it would be reused, the
    # same matrix as lmfit's; tests/test_profile_refits.py) so that one is recomputed
    problem._last_jacobian = None
    _covariance_at_optimum(problem, result, 1e-3, verbose=False)
    assert result.errorbars and "recomputed at the optimum" in result.covariance_note
    for name, value in expected.items():
        assert result.params[name].stderr == pytest.approx(value, rel=0.10), name
    correlation = result.params["slope"].correl["gamma"]
    assert correlation == pytest.approx(result.params["gamma"].correl["slope"])
    assert -1 < correlation < 1


def test_a_study_effects_jacobian_column_simulates_only_its_studys_arms(tmp_path):
    from plateletpd.inference.fitting import difference_steps, forward_jacobian

    problem = load_fit_config(write_studies(tmp_path, {"a": 0.6, "b": 0.6, "c": 0.6}))
    params = problem.parameters
    for study, u in zip("abc", (0.3, -0.2, 0.1)):  # not 0: the spread moves every study
        params[f"slope_effect_{study}"].set(value=u)
    problem.residuals(params)
    assert problem.simulations == 3  # one arm per study
    problem.simulations = 0
    jacobian = forward_jacobian(problem, params, 0.03)
    varied = [name for name, p in params.items() if p.vary]
    effects = [name for name in varied if name.startswith("slope_effect")]
    shared = len(varied) - len(effects)  # typical slope and its spread move every arm
    assert len(effects) == 3 and shared == 2
    # a study's own effect moves that study's one arm; the others are the base point's
    assert problem.simulations == 3 * shared + len(effects)
    # and nothing changes but the cost: every column equals a difference of evaluations
    # with nothing remembered
    steps = difference_steps(problem, params, 0.03)

    def fresh(values):
        problem._arm_cache.clear()
        return problem.residuals(values)

    base = fresh(params)
    for column, name in enumerate(varied):
        shifted = params.copy()
        shifted[name].set(value=params[name].value + steps[name])
        np.testing.assert_array_equal(jacobian[:, column],
                                      (fresh(shifted) - base) / steps[name])


def test_the_jacobian_reuses_the_last_residuals_only_for_the_same_cohort(tmp_path):
    from plateletpd.inference.fitting import forward_jacobian

    problem = load_fit_config(write_studies(tmp_path, {"a": 0.6, "b": 0.6}))
    params = problem.parameters
    varied = sum(p.vary for p in params.values())
    calls = []
    problem.residuals(params)
    jacobian = forward_jacobian(problem, params, 0.03, count=lambda: calls.append(1))
    # least_squares asks for the Jacobian where it has just evaluated: one evaluation per
    # varied parameter, the base point reused
    assert len(calls) == varied and jacobian.shape[1] == varied
    # another cohort (as the final minimisation's larger one): the base is evaluated again
    problem.eta = problem.variability.eta(problem.eta.shape[0] + 5, problem.seed)
    calls.clear()
    again = forward_jacobian(problem, params, 0.03, count=lambda: calls.append(1))
    assert len(calls) == varied + 1
    np.testing.assert_array_equal(again, forward_jacobian(problem, params, 0.03))


def test_a_fit_restarts_from_a_profile_refit_that_beat_its_optimum(tmp_path):
    # noise-free data from TRUE, the fit started away from it and stopped after 6
    # evaluations: unconverged. Each profile refit continues from there (6 more), so one
    # reaches lower ground, and the fit minimises again from the lowest, every parameter free
    folder = make_synthetic(tmp_path, noise_seed=None)
    config = folder / "config.toml"
    config.write_text(config.read_text().replace(
        "max_evaluations = 80", 'max_evaluations = 6\nprofile = ["slope"]\nprofile_points = 3'))
    problem, result, _ = run_fit(config, out=tmp_path / "out", verbose=False)
    restart = problem.restart
    assert restart["profile"] == "slope"
    assert restart["profile_chi_square"] < restart["optimum_chi_square_before"] - 0.5
    # least_squares only accepts steps that lower the objective: the restart ends at or
    # below the profile refit it started from, and the result kept is the lower minimum
    assert restart["optimum_chi_square_after"] <= restart["profile_chi_square"] + 1e-9
    assert result.chisqr == pytest.approx(min(restart["optimum_chi_square_before"],
                                              restart["optimum_chi_square_after"]))
    record = json.loads((tmp_path / "out" / "params.json").read_text())
    assert record["restart"]["kept"] == "restart"
    assert "minimised again from it" in (tmp_path / "out" / "report.md").read_text()
    # the profiles in the record are those taken again around the optimum reported: each
    # centred on the restarted value, its chi-square the restarted optimum's
    assert record["restart"]["profiled_again"]
    profile = record["profiles"]["slope"]
    assert profile["optimum"] == pytest.approx(result.params["slope"].value, rel=1e-12)
    assert profile["optimum_chi_square"] == pytest.approx(result.chisqr, rel=1e-12)
    assert "taken again around it" in (tmp_path / "out" / "report.md").read_text()


def test_a_refit_below_the_optimum_by_less_than_restart_margin_starts_no_restart(tmp_path):
    # the unconverged fit of the test above, whose slope profile reaches more than 0.5
    # below its optimum, with [fit] restart_margin above that difference: the optimum is
    # kept (no second minimisation), and the report and params.json say how far below the
    # refit went and why the fit did not restart
    folder = make_synthetic(tmp_path, noise_seed=None)
    config = folder / "config.toml"
    base = config.read_text().replace(
        "max_evaluations = 80", 'max_evaluations = 6\nprofile = ["slope"]\nprofile_points = 3')
    config.write_text(base)
    restarted, _, _ = run_fit(config, out=tmp_path / "restarted", verbose=False)
    drop = restarted.restart["optimum_chi_square_before"] - restarted.restart["profile_chi_square"]
    assert drop > 0.5
    config.write_text(base.replace("profile_points = 3",
                                   f"profile_points = 3\nrestart_margin = {2 * drop}"))
    problem, result, _ = run_fit(config, out=tmp_path / "kept", verbose=False)
    assert not problem.restart
    within = problem.within_margin
    assert within["profile"] == "slope" and within["restart_margin"] == pytest.approx(2 * drop)
    assert within["optimum_chi_square"] == pytest.approx(result.chisqr)
    assert within["optimum_chi_square"] - within["profile_chi_square"] == pytest.approx(drop)
    record = json.loads((tmp_path / "kept" / "params.json").read_text())
    assert "restart" not in record
    assert record["profile_below_optimum_within_margin"]["profile"] == "slope"
    assert "so the fit did not minimise again" in (tmp_path / "kept" / "report.md").read_text()
    assert problem.evaluations < restarted.evaluations  # no restart, no second profiles


def test_a_negative_restart_margin_is_a_clear_error(synthetic, tmp_path):
    config = with_fit_key(synthetic, tmp_path / "fit", "restart_margin = -1")
    with pytest.raises(FitConfigError, match="restart_margin"):
        load_fit_config(config)


def test_a_profile_refit_starts_on_the_linearised_profile_path(synthetic, tmp_path):
    from plateletpd.inference.fitting import profile_start

    shutil.copytree(synthetic, tmp_path / "p")
    problem, result, _ = run_fit(tmp_path / "p" / "config.toml", verbose=False,
                                 profile_parameters=False)
    # slope and gamma are correlated in these rows (about 0.07): the path bends a little
    assert abs(result.params["slope"].correl["gamma"]) > 0.01
    best = result.params["slope"]
    for shift in (-2.0, 2.0):  # standard errors
        value = best.value + shift * best.stderr
        start = profile_start(result, "slope", value)
        assert set(start) == {"gamma"}
        at_optimum, on_path = result.params.copy(), result.params.copy()
        at_optimum["slope"].set(value=value)
        on_path["slope"].set(value=value)
        on_path["gamma"].set(value=start["gamma"])
        # near a quadratic minimum the conditional mean is the profile's own optimum: from
        # there the chi-square is lower than with gamma left at the fit's value
        assert np.sum(problem.residuals(on_path) ** 2) < np.sum(
            problem.residuals(at_optimum) ** 2)
    # no covariance (a fit without error bars): the refit starts at the optimum
    result.covar = None
    assert profile_start(result, "slope", best.value) == {}


def test_study_effects_start_where_the_configuration_says(tmp_path):
    config = write_studies(tmp_path, {"a": 0.6, "b": 0.6})
    text = config.read_text()
    config.write_text(text.replace("spread = 0.3\n", "spread = 0.3\nstart = { a = 1.25 }\n"))
    parameters = load_fit_config(config).parameters
    # a warm start (e.g. a previous fit's effects); an unnamed study starts at 0
    assert parameters["slope_effect_a"].value == 1.25
    assert parameters["slope_effect_b"].value == 0.0
    config.write_text(text.replace("spread = 0.3\n", "spread = 0.3\nstart = { c = 1.0 }\n"))
    with pytest.raises(FitConfigError, match="'c' is not one of this effect's studies"):
        load_fit_config(config)
    config.write_text(text.replace("spread = 0.3\n", "spread = 0.3\nstart = { a = 6.0 }\n"))
    with pytest.raises(FitConfigError, match=r"within \+/- effect_bound = 4"):
        load_fit_config(config)


@pytest.mark.parametrize(("line", "message"), [
    ("profile_evaluations = 0", "profile_evaluations must be a whole number of evaluations "
                                "per profile refit, at least 1"),
    ("final_evaluations = -1", "final_evaluations must be 0 .as max_evaluations."),
    ("profile_evaluations = 2.5", "profile_evaluations must be")])
def test_bad_evaluation_caps_are_clear_errors(synthetic, tmp_path, line, message):
    config = with_fit_key(synthetic, tmp_path / "bad_caps", line)
    with pytest.raises(FitConfigError, match=message):
        load_fit_config(config)
    # one evaluation per profile refit is allowed (the least a cap can be)
    config.write_text(config.read_text().replace(line, "profile_evaluations = 1"))
    assert load_fit_config(config).config["fit"]["profile_evaluations"] == 1


def test_a_capped_minimisation_reports_the_lowest_point_it_evaluated(synthetic, tmp_path):
    from plateletpd.inference.fitting import minimise

    problem = load_fit_config(synthetic / "config.toml")
    seen = []
    evaluate = problem.residuals

    def recorded(params):
        residual = evaluate(params)
        seen.append(float(np.sum(residual ** 2)))
        return residual

    problem.residuals = recorded
    # Nelder-Mead's last call is a trial vertex, rarely its best: lmfit reports that last
    # point when the cap stops it (measured on the bundled fit of 2026-12-01: least_squares
    # profile refits capped at 12 came back at 162.97-165.61, having started at the
    # optimum's 146.89, on a rejected trial step)
    moved = []
    for cap in range(4, 12):
        seen.clear()
        result = minimise(problem, problem.parameters, "nelder", {"max_nfev": cap})
        assert result.aborted
        assert result.chisqr == pytest.approx(min(seen)), (cap, seen)
        moved.append("lowest point evaluated" in result.message)
        if moved[-1]:  # a moved point carries no covariance of the point it left
            assert result.covar is None and not result.errorbars
            assert all(result.params[n].stderr is None for n in result.var_names)
    assert any(moved)  # some caps stopped on a worse point than one already seen
    # least_squares evaluates its Jacobian's points too (forward differences): a capped
    # run reports the lowest of all of them, a shifted point included (before 2026-12-02
    # the Jacobian's points were not tracked, and this failed; in the first run of the
    # bundled configuration that day, not kept, the final minimisation evaluated a
    # Jacobian point at 149.88 and reported 150.14)
    aborted = 0
    for cap in range(2, 16):
        seen.clear()
        result = minimise(problem, problem.parameters, "least_squares", {"max_nfev": cap})
        if getattr(result, "aborted", False):
            aborted += 1
            assert result.chisqr == pytest.approx(min(seen)), (cap, seen)
    assert aborted  # the caps did stop minimisations


def test_a_warm_start_from_an_earlier_record_begins_at_its_values_and_needs_fewer_evaluations(
        synthetic, tmp_path):
    # [fit] start_from: a refit after a change to code or data starts at the earlier fit's
    # optimum (as the bundled calibration's start values have been copied by hand); it must
    # begin exactly there and, starting at the optimum of the same problem, end at the same
    # chi-square with fewer evaluations than the configuration's own start (0.4 and 0.19,
    # away from the generating 0.6 and 0.3)
    import hashlib
    import json

    cold_problem, cold, _ = run_fit(synthetic / "config.toml", out=tmp_path / "cold",
                                    verbose=False, profile_parameters=False)
    record = tmp_path / "cold" / "params.json"
    config = with_fit_key(synthetic, tmp_path / "warm", f'start_from = "{record}"')
    problem = load_fit_config(config)
    recorded = json.loads(record.read_text())["parameters"]
    for name in ("slope", "gamma"):
        assert problem.parameters[name].value == recorded[name]["value"]
    assert problem.start_from["started"] == ["slope", "gamma"]
    assert problem.start_from["sha256"] == hashlib.sha256(record.read_bytes()).hexdigest()
    warm_problem, warm, _ = run_fit(config, out=tmp_path / "warm" / "out", verbose=False,
                                    profile_parameters=False)
    assert warm_problem.evaluations < cold_problem.evaluations
    assert warm.chisqr <= cold.chisqr * (1 + 1e-6)
    written = json.loads((tmp_path / "warm" / "out" / "params.json").read_text())
    assert written["start_from"]["file"] == str(record)
    assert "Started from the earlier fit" in (tmp_path / "warm" / "out" / "report.md").read_text()


@pytest.mark.parametrize(("content", "message"), [
    (None, "cannot read"),
    ("not json", "is not a fit record"),
    ('{"parameters": {"slope": {"value": 9.0}}}', "slope = 9, outside this configuration's "
                                                  "bounds [0.05, 3]"),
    ('{"parameters": {"other": {"value": 1.0}}}', "names none of this configuration's varied "
                                                  "parameters (slope, gamma)"),
])
def test_a_bad_start_from_record_is_a_clear_error(synthetic, tmp_path, content, message):
    record = tmp_path / "record.json"
    if content is not None:
        record.write_text(content)
    config = with_fit_key(synthetic, tmp_path / "bad", f'start_from = "{record}"')
    with pytest.raises(FitConfigError, match="start_from") as error:
        load_fit_config(config)
    assert message in str(error.value)


def test_a_fit_stopped_by_its_cap_says_so_and_does_not_blame_the_data(synthetic, tmp_path,
                                                                        capsys):
    # a fitting user test (2026-12-04): a fit capped at 30 evaluations exited like a
    # finished one, its report said only "30 evaluations", and the covariance note blamed
    # the data ("not identifiable") for what was the cap. The same fit uncapped converges
    # with standard errors (test_known_parameters_are_recovered_within_their_confidence_...)
    _, result, _ = run_fit(synthetic / "config.toml", out=tmp_path / "capped",
                           verbose=True, max_evaluations=3, profile_parameters=False)
    output = capsys.readouterr().out
    assert not result.success
    assert "NOT CONVERGED" in output and "raise --max-evaluations" in output
    report = (tmp_path / "capped" / "report.md").read_text()
    assert "**Not converged**" in report
    assert "not identifiable" not in report or "evaluation cap" in report


def test_a_misspelt_or_fixed_profile_name_is_refused_before_the_fit(synthetic, tmp_path):
    # the same test: a misspelt [fit] profile name failed only after the whole
    # minimisation (about 20 minutes on a bundled-size fit), without a "did you mean"
    shutil.copytree(synthetic, tmp_path / "p")
    config = tmp_path / "p" / "config.toml"
    text = config.read_text()
    config.write_text(text.replace("max_evaluations = 80",
                                   'max_evaluations = 80\nprofile = ["gama"]'))
    with pytest.raises(FitConfigError, match=r"'gama'.*did you mean 'gamma'") as error:
        run_fit(config, verbose=False, max_evaluations=80)
    assert "is not a parameter of this fit" in str(error.value)
    fixed = text.replace("gamma = {{ value", "gamma = {{ value").replace(
        "max_evaluations = 80", 'max_evaluations = 80\nprofile = ["gamma"]').replace(
        "gamma = { value = 0.19, vary = true", "gamma = { value = 0.19, vary = false")
    config.write_text(fixed)
    with pytest.raises(FitConfigError, match=r"'gamma', which is fixed \(vary = false\)"):
        run_fit(config, verbose=False, max_evaluations=80)


def test_an_arms_row_it_cannot_predict_names_its_line_and_the_way_to_fit_it(synthetic,
                                                                           tmp_path):
    # a fitting user test (2026-12-04): an incidence row under [[arms]] stopped the fit with
    # "no simulation rule ... a fit or a trial cannot predict it" (false: a [[trials]] entry
    # and check read such rows), without its line or a fix
    shutil.copytree(synthetic, tmp_path / "p")
    data = tmp_path / "p" / "outcomes.csv"
    data.write_text(data.read_text() + "synthetic,cytotoxic,r,40,p,d,incidence_proportion,"
                    "PLT <50,,percent,30,,,generated in tests/test_fitting.py\n")
    with pytest.raises(FitConfigError, match=r"line\(s\) 8 \(incidence_proportion\).*"
                                             r"\[\[trials\]\] entry.*lines = "):
        load_fit_config(tmp_path / "p" / "config.toml")


#: a small fit on the bundled fit's values (Yuan 2025's hetrombopag arm, het_ec50 varied);
#: "# POPULATION" and "# MORE PARAMETERS" mark where a test adds its own lines
BASE_DEFAULT_FIT = """
[fit]
model = "cit_marrow_reserve"
data = "bundled"
base = "default"
seed = 1
subjects = 10

# POPULATION

[parameters]
het_ec50 = { vary = true }
# MORE PARAMETERS

[[arms]]
study = "yuan2025"
arm = "hetrombopag"
treatment = ["hetrombopag 7.5 mg"]
endpoints = ["response_proportion"]
"""


def test_a_base_fit_gives_every_parameter_the_configuration_leaves_unset_its_value(tmp_path):
    # a fitting user test (2026-12-04): parameters not fitted started from the model file,
    # not the bundled fit, so a refit of one study silently used another model than the
    # bundled one (the user copied tpo_ec50, reserve_cycling_fraction ... by hand).
    # [fit] base = "default": every parameter the configuration does not set takes the
    # bundled fit's value (fixed ones, and the start of varied ones without a value)
    from plateletpd.model.library import load_fitted_parameters

    config = tmp_path / "config.toml"
    config.write_text(BASE_DEFAULT_FIT.replace(
        "# MORE PARAMETERS", "il11_emax_production = { value = 2.0, vary = true }"))
    problem = load_fit_config(config)
    _, fitted = load_fitted_parameters("cit_marrow_reserve_calibration")
    for name in ("reserve_cycling_fraction", "chemotherapy_sensitivity"):
        assert problem.model.parameters[name].value == pytest.approx(fitted[name])
    assert problem.parameters["het_ec50"].value == pytest.approx(fitted["het_ec50"])
    assert problem.parameters["il11_emax_production"].value == 2.0  # its own start wins
    config.write_text(config.read_text().replace('base = "default"', 'base = "nofit"'))
    with pytest.raises(FitConfigError, match=r"\[fit\] base"):
        load_fit_config(config)


def test_a_trial_on_a_fit_folder_runs_the_model_and_patients_the_fit_was_made_with(tmp_path):
    # a fitting user test (2026-12-04): a trial naming its fit folder (fit = "fit_out")
    # ran every arm alike ("[population] cv is absent and the fit gives none": the folder
    # kept no config.toml) and, with a copied one, the model file's values for every
    # parameter the fit took from its base fit (tpo_ec50 700 against 520, ...): about 10
    # points off. The folder now keeps the configuration and every model value
    from plateletpd.inference.fitting import run_fit
    from plateletpd.model.library import fit_population, load_fitted_parameters
    from plateletpd.study.trial import TrialSpec

    config = tmp_path / "config.toml"
    config.write_text(BASE_DEFAULT_FIT.replace(
        "# POPULATION", "[population]\ncv = { chemotherapy_sensitivity = 0.30, "
                        "platelets_baseline = 0.17 }"))
    problem, result, _ = run_fit(config, out=tmp_path / "fit", verbose=False,
                                 max_evaluations=3)
    model_name, values = load_fitted_parameters(tmp_path / "fit")
    _, bundled = load_fitted_parameters("cit_marrow_reserve_calibration")
    assert model_name == "cit_marrow_reserve"
    assert values["het_ec50"] == pytest.approx(result.params["het_ec50"].value)
    for name in ("tpo_ec50", "reserve_cycling_fraction", "il11_emax_production"):
        assert values[name] == pytest.approx(bundled[name])  # the base fit's, not the file's
    assert fit_population(tmp_path / "fit")["cv"] == {"chemotherapy_sensitivity": 0.30,
                                                      "platelets_baseline": 0.17}
    spec = TrialSpec.create(model="cit_marrow_reserve", fit=str(tmp_path / "fit"), seed=1,
                            subjects_per_arm=5, arms=[{"name": "u"}],
                            response={"threshold": 100},
                            population={"covariates": {"body_weight": 65}})
    assert spec.model.parameters["tpo_ec50"].value == pytest.approx(bundled["tpo_ec50"])
    assert set(spec.variability.names) >= {"chemotherapy_sensitivity", "platelets_baseline"}


def test_an_arms_response_row_at_another_level_than_its_rule_is_refused(tmp_path):
    # a fitting user test (2026-12-04): a control row "PLT >= 75 by day 14" in an [[arms]]
    # entry whose response rule is >= 100 gave exactly the chi-square of the row at 100
    # (98.3062377 both): the row's level was ignored. plateletpd check refuses such a row;
    # a fit now does too, naming the line and the fix
    header = open(bundled_outcomes_path()).readline().strip()
    row = ('s,control,none,40,"p",start of treatment,response_proportion,{level},14,percent,'
           '45,,,constructed for this test,reported,')
    for level, refused in (("75", True), ("100", False), ("PLT >=100", False),
                           ("study-defined response", False)):
        (tmp_path / "data.csv").write_text(header + "\n" + row.format(level=level) + "\n")
        config = tmp_path / "config.toml"
        config.write_text("""
[fit]
model = "cit_marrow_reserve"
data = "data.csv"
seed = 1
subjects = 10

[parameters]
chemotherapy_sensitivity = { vary = true }

[[arms]]
study = "s"
arm = "control"
treatment = []
response = { threshold = 100, by_day = 14 }
""")
        if refused:
            with pytest.raises(FitConfigError, match=r"line 2: its response level 75 is not "
                                                     r"the entry's response rule \(threshold "
                                                     r"100"):
                load_fit_config(config)
        else:
            load_fit_config(config)


def test_estimates_on_a_bound_or_never_moved_are_named_in_the_notes():
    # a fitting user test (2026-12-04): rhtpo_bioavailability 0.999 +/- 1.2 on [0.1, 1]
    # was only "determined poorly", and an optimum still at its start (chi-square 298.7,
    # where 90.2 was reachable) was reported as a success without a word
    from types import SimpleNamespace

    import lmfit

    from plateletpd.inference.fitting import identifiability

    params = lmfit.Parameters()
    params.add("rhtpo_bioavailability", value=0.999, min=0.1, max=1.0)
    params.add("chemotherapy_sensitivity", value=4.2999, min=1.0, max=12.0)
    params.add("het_ec50", value=9.0, min=1.0, max=40.0)
    for parameter in params.values():
        parameter.stderr = 0.1
    result = SimpleNamespace(params=params, errorbars=True, covariance_note=None,
                             chisqr=298.7, init_values={"rhtpo_bioavailability": 0.7,
                                                        "chemotherapy_sensitivity": 4.3,
                                                        "het_ec50": 13.0})
    notes = identifiability(result)
    assert any(n.startswith("rhtpo_bioavailability: estimated at its upper bound (1)")
               for n in notes)
    assert any("Within 0.1% of their start values: chemotherapy_sensitivity." in n
               for n in notes)
    assert not any("het_ec50: estimated at its" in n for n in notes)   # inside, moved
    # judged against the configuration's start, not a restart's (a fitting user test,
    # 2026-12-04: a damage that had moved from 4.30 to 4.36 was named, measured from the
    # restart's start 4.36)
    moved = SimpleNamespace(**{**vars(result), "init_values": {"chemotherapy_sensitivity":
                                                               4.2999},
                               "configured_start": {"chemotherapy_sensitivity": 4.0}})
    assert not any("Within 0.1%" in n for n in identifiability(moved))
    # a reduced chi-square of 22.6 (the user test's) is named with its allowance, 4.8
    result.redchi = 22.6
    assert any(n.startswith("Reduced chi-square 22.6: the rows lie 4.8 times")
               for n in identifiability(result))
    result.redchi = 1.3
    assert not any(n.startswith("Reduced chi-square") for n in identifiability(result))


def test_a_profile_end_interpolated_across_a_large_jump_is_called_rough():
    # a fitting user test (2026-12-04): the lower end 0.903 of rhtpo_bioavailability's
    # interval was interpolated between grid points 0.1 (chi-square 36 above the optimum)
    # and 0.999 (the optimum) without a word. An end located across a rise of more than
    # 4 x 3.84 is named as too coarse; one across a rise of 5 is not
    from types import SimpleNamespace

    import lmfit

    from plateletpd.inference.fitting import identifiability

    params = lmfit.Parameters()
    params.add("rhtpo_bioavailability", value=0.999, min=0.1, max=1.0)
    params["rhtpo_bioavailability"].stderr = 0.05
    result = SimpleNamespace(params=params, errorbars=True, covariance_note=None,
                             chisqr=90.2, redchi=1.0, init_values={})

    def notes(grid, chi):
        profile = {"rhtpo_bioavailability": {"grid": grid, "chi_square": chi,
                                             "ci95": [0.9029, None],
                                             "optimum_chi_square": 90.2}}
        return [n for n in identifiability(result, profile) if "too coarse" in n]
    coarse = notes([0.1, 0.999], [126.2, 90.2])
    assert len(coarse) == 1 and "differs by 36" in coarse[0]
    assert notes([0.9, 0.95, 0.999], [95.2, 91.0, 90.2]) == []
    # said of a fit stopped at its cap too (a fitting user test, 2026-12-04: an interval
    # [5.38, 5.53] interpolated across a rise of 197 in a NOT CONVERGED report, unremarked)
    result.errorbars, result.success, result.nfev = False, False, 30
    result.message = "Fit aborted: number of function evaluations > 30"
    coarse = notes([0.1, 0.999], [126.2, 90.2])
    assert len(coarse) == 1 and "differs by 36" in coarse[0]


def test_a_profile_point_without_a_prediction_never_sets_an_interval_end(monkeypatch):
    # a fitting user test (2026-12-05): at a low damage no virtual patient enrolled, a row
    # had no prediction and took the placeholder residual (1e3, chi-square >= 1e6); the
    # profile interpolated its lower end against it and reported [6.168, 6.231], the lower
    # end being the optimum. Here the refits are a known quadratic (chi-square 10 + ((x -
    # 5) / 0.5)^2, so the true interval is 5 -/+ 0.5 x 1.96) except one point below the
    # optimum that had no prediction: that end must be open and the note must name the row
    import lmfit

    from plateletpd.inference import fitting

    unpredicted_at = 4.0

    def refit(problem, parameters, name, value, *args):
        if value < unpredicted_at + 1e-9:
            return fitting.UNPREDICTED_RESIDUAL ** 2 + 10.0, {name: value}
        return 10.0 + ((value - 5.0) / 0.5) ** 2, {name: value}

    class Problem:
        study_effects: dict = {}

        def unpredicted_rows(self, values):
            return ["line 31 (inhouse, control, time_to_recovery_days)"]

    monkeypatch.setattr(fitting, "_profile_refit", refit)
    parameters = lmfit.Parameters()
    parameters.add("damage", value=5.0, min=0.1, max=20.0)
    parameters["damage"].stderr = 0.5
    result = type("Result", (), {"params": parameters, "chisqr": 10.0, "covar": None,
                                 "var_names": ["damage"]})()
    info = fitting.profile(Problem(), result, "damage", points=5, span=2.0)
    assert info["grid"] == [4.0, 4.5, 5.0, 5.5, 6.0]
    low, high = info["ci95"]
    assert low is None  # not interpolated against the placeholder at 4.0
    # the upper end is the quadratic's, linearly interpolated between 5.5 (11) and 6 (14)
    assert high == pytest.approx(5.5 + (10.0 + fitting.PROFILE_LEVEL - 11.0) / 3.0 * 0.5)
    assert info["unpredicted"] == {"4.0": ["line 31 (inhouse, control, "
                                           "time_to_recovery_days)"]}
    notes = fitting._profile_notes(result, {"damage": info})
    assert any("could not predict line 31" in note for note in notes)
    assert not any("too coarse" in note for note in notes)


def test_a_fit_stopped_at_its_cap_reports_standard_errors_of_its_last_point(synthetic):
    # a fitting user test (2026-12-05): a capped fit with a restart gave standard errors, a
    # better capped fit without one gave none. Every phase now recomputes the covariance
    # at the point it reports, and says that it belongs to an unfinished fit
    from plateletpd.inference.fitting import identifiability, stopped_at_cap

    problem, result, _ = run_fit(synthetic / "config.toml", verbose=False,
                                 max_evaluations=4, profile_parameters=False)
    assert stopped_at_cap(result)
    assert result.errorbars and all(result.params[n].stderr > 0 for n in TRUE)
    assert "unfinished fit" in result.covariance_note
    assert any("unfinished fit" in note for note in identifiability(result))


def test_the_first_fit_of_the_docs_is_a_valid_configuration(tmp_path):
    # docs/fitting.md, "A first fit": a fitting user test (2026-12-05) found no minimal
    # example and no pp.run_fit; the block must load as written (the fit itself took 30 s)
    import re

    import plateletpd as pp

    text = (Path(__file__).parents[1] / "docs" / "fitting.md").read_text()
    section = text.split("## A first fit")[1].split("\n## ")[0]
    (tmp_path / "first_fit.toml").write_text(re.search(r"```toml\n(.*?)```", section,
                                                        re.DOTALL).group(1))
    import warnings

    from plateletpd.study.trial import NoVariabilityWarning

    with warnings.catch_warnings():
        warnings.simplefilter("error", NoVariabilityWarning)  # it states its CVs
        problem = pp.load_fit_config(tmp_path / "first_fit.toml")
    assert [p.name for p in problem.parameters.values() if p.vary] == \
        ["chemotherapy_sensitivity"]
    assert sorted(int(line) for arm in problem.arms for line in arm.rows.line) == \
        [29, 30, 31, 32]  # data/cit_summary.csv's gi_rhil11 rows, as the text says
    assert pp.run_fit is pp.inference.fitting.run_fit


def test_run_fit_returns_a_named_result_that_still_unpacks(synthetic):
    fit = run_fit(synthetic / "config.toml", verbose=False, profile_parameters=False)
    problem, result, predictions = fit
    assert fit.problem is problem and fit.result is result
    assert fit.values == dict(result.params.valuesdict())
    text = repr(fit)
    assert text.startswith("FitRun(friberg_platelets: slope ") and "converged" in text
    assert f"on {len(predictions)} rows" in text


def test_a_fit_of_arms_without_population_cvs_warns_that_every_patient_is_typical(tmp_path):
    # a fitting user test (2026-12-07): docs/fitting.md's first fit without its [population]
    # table ran every [[arms]] patient as the typical one (subjects = 200 changed nothing,
    # damage 6.42 against 5.11 with the bundled CVs) and nothing said so; cv = {} means it
    import warnings

    import plateletpd as pp
    from plateletpd.study.trial import NoVariabilityWarning

    block = docs_first_fit()
    start, end = block.index("[population]"), block.index("[parameters]")
    without = block[:start] + block[end:]
    (tmp_path / "without.toml").write_text(without)
    with pytest.warns(NoVariabilityWarning, match=r"every virtual patient is the typical one "
                      r"\(subjects = 200 adds nothing\).*base brings the base fit's "
                      r"parameter values, not its CVs"):
        pp.load_fit_config(tmp_path / "without.toml")
    (tmp_path / "none.toml").write_text(block[:start] + "[population]\ncv = {}\n\n"
                                        + block[end:])
    with warnings.catch_warnings():
        warnings.simplefilter("error", NoVariabilityWarning)
        pp.load_fit_config(tmp_path / "none.toml")


def test_the_progress_line_names_rows_without_a_prediction(tmp_path, capsys):
    # a fitting user test (2026-12-07): docs/fitting.md's first fit without [population]
    # printed "objective 2.0001e+06" at its start value; there the typical patient never
    # falls to <= 50, so the two "from <=50 to >=100" rows (data/cit_summary.csv lines 30
    # and 32) have no prediction and count 1000 standard errors each: 2 x 1000^2 + the rest
    import warnings

    import plateletpd as pp
    from plateletpd.study.trial import NoVariabilityWarning

    block = docs_first_fit()
    start, end = block.index("[population]"), block.index("[parameters]")
    (tmp_path / "typical.toml").write_text(block[:start] + block[end:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoVariabilityWarning)
        problem = pp.load_fit_config(tmp_path / "typical.toml")
    problem.progress_every = 0.0
    total = problem.residuals(problem.parameters)
    out = capsys.readouterr().out
    assert "lines 30, 32 without a prediction here" in out
    assert "each counted as 1000 standard errors" in out
    assert np.sum(total ** 2) >= 2 * 1000.0 ** 2


def test_a_fits_priors_are_in_its_record_and_report(tmp_path):
    # a fitting user test (2026-12-07) found its prior only in the copied config.toml, and
    # "chi-square on 5 residuals" beside 4 data rows: the prior is one of them. The prior
    # here is the docs' between-study spread of the damage (bundled fit: typical 4.30,
    # between-study SD of its log 0.40, CV sqrt(exp(0.4^2) - 1) = 0.41)
    import json

    import plateletpd as pp

    block = docs_first_fit()
    block = block.replace("subjects = 200", "subjects = 20").replace(
        "max_evaluations = 30", "max_evaluations = 2")
    block += ('\n[priors]\nchemotherapy_sensitivity = { mean = 4.3, cv = 0.41, source = '
              '"bundled fit, between-study spread" }\n')
    (tmp_path / "prior.toml").write_text(block)
    pp.run_fit(tmp_path / "prior.toml", out=tmp_path / "out", verbose=False,
               profile_parameters=False)
    record = json.loads((tmp_path / "out" / "params.json").read_text())
    assert record["priors"] == {"chemotherapy_sensitivity": {
        "mean": 4.3, "cv": 0.41, "source": "bundled fit, between-study spread"}}
    assert record["objective"]["data_points"] == 5  # 4 rows and the prior
    # base = "default" recorded with the fit it named and that fit's exact record
    import hashlib

    bundled = Path(__file__).parents[1] / "fits" / "cit_marrow_reserve_calibration"
    assert record["base"] == "default"
    assert record["base_fit"] == {"name": "cit_marrow_reserve_calibration", "params_sha256":
                                  hashlib.sha256((bundled / "params.json").read_bytes())
                                  .hexdigest()}
    report = (tmp_path / "out" / "report.md").read_text()
    assert "on 5 residuals (1 varied parameters; 4 data rows, 1 prior)" in report
    assert "Priors (log-normal, each a residual of the objective): chemotherapy_sensitivity: " \
        "mean 4.3, CV 0.41 (bundled fit, between-study spread)" in report


def test_an_estimate_within_a_standard_error_of_a_bound_is_named():
    # a fitting user test (2026-12-07): il11_emax_production 4.93 +/- 1.66 under its upper
    # bound 5 was not flagged (only an estimate at the bound was); 2.0 +/- 0.5 in [0, 5]
    # is not near one
    from types import SimpleNamespace

    import lmfit

    from plateletpd.inference.fitting import identifiability

    params = lmfit.Parameters()
    params.add("il11_emax_production", value=4.93, min=0.0, max=5.0)
    params.add("het_ec50", value=2.0, min=0.0, max=5.0)
    params["il11_emax_production"].stderr, params["het_ec50"].stderr = 1.66, 0.5
    result = SimpleNamespace(params=params, errorbars=True, covariance_note=None,
                             chisqr=3.7, init_values={})
    notes = identifiability(result)
    assert any(n.startswith("il11_emax_production: 4.93 lies within one standard error "
                            "(1.66) of its upper bound (5)") for n in notes)
    assert not any(n.startswith("het_ec50:") for n in notes)


def docs_first_fit() -> str:
    """The configuration of docs/fitting.md's "A first fit", as written there."""
    import re

    text = (Path(__file__).parents[1] / "docs" / "fitting.md").read_text()
    return re.search(r"```toml\n(.*?)```", text.split("## A first fit")[1],
                     re.DOTALL).group(1)
