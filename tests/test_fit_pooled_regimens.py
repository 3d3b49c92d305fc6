"""A fit's studies that pooled regimens (`regimens = "several"` in an [[arms]] entry, or the
trial file's `[population] regimens` in a [[trials]] entry; 2026-12-06): their patients'
study-level quantities vary by the between-study SD the fit is estimating, added on the log
scale to the between-patient spread (sd_log^2 = log(1 + CV^2) + s^2), at its current value
in every evaluation, as the trial language adds a finished fit's (tests/test_pooled_regimens.py).

Properties tested: rescaling the drawn effects to the widened CV predicts what drawing them
with that CV predicts (an independent path: its own configuration); a pooled arm's rows move
with the between-study SD where a single-regimen arm's do not; the widening starts from the
CV the patients would have with one regimen (a trial's own widening at load undone, a CV the
fit estimates used); entries that cannot be widened are refused with the reason."""

import json
import math

import numpy as np
import pytest

from test_between_patient import write_case

from plateletpd.inference.fitting import FitConfigError, load_fit_config, run_fit

EFFECT = "[study_effects.slope]\nstudies = [\"synthetic\"]\nspread = {spread}\n"
SLOPE, CV = 0.6, 0.2  # the Friberg cases of tests/test_between_patient.py (CV 0.2 drawn there)


def widened(cv: float, spread: float) -> float:
    """The CV of a log-normal quantity with the between-study SD ``spread`` of its log added
    (tests/test_pooled_regimens.py's formula, written out independently here)."""
    return math.sqrt(math.exp(math.log(1.0 + cv * cv) + spread * spread) - 1.0)


def pooled_case(folder, cv=CV, spread=0.4, regimens="several", between=""):
    config = write_case(folder, cv, SLOPE, between=EFFECT.format(spread=spread) + between)
    text = config.read_text()
    config.write_text(text.rstrip() + f'\nregimens = "{regimens}"\n')
    return config


def test_a_pooled_arm_predicts_what_drawing_with_the_widened_cv_predicts(tmp_path):
    # one varied quantity: both cohorts are the same standard normals times the SD, so the
    # fit's rescaled patients and a configuration drawn at the widened CV agree to rounding
    problem = load_fit_config(pooled_case(tmp_path, spread=0.4))
    values = problem.parameters.valuesdict()
    assert values["slope_effect_synthetic"] == 0.0  # the study at the typical value
    expected = widened(CV, 0.4)
    assert problem.patient_cvs(values, problem.arms[0]) == {"slope": pytest.approx(expected,
                                                                                   rel=1e-12)}
    pooled = problem.predict(values)
    (tmp_path / "drawn").mkdir()
    drawn = load_fit_config(write_case(tmp_path / "drawn", expected, SLOPE))
    np.testing.assert_allclose(pooled.predicted, drawn.predict({"slope": SLOPE}).predicted,
                               rtol=1e-9)


def test_only_a_pooled_arm_moves_with_the_between_study_sd(tmp_path):
    # with the study's effect u at 0 its value is the typical one whatever the SD: an arm of
    # one regimen predicts the same rows at SD 0.1 and 0.8; a pooled arm's patients spread
    (tmp_path / "one").mkdir()
    (tmp_path / "several").mkdir()
    rows = {}
    for regimens in ("one", "several"):
        problem = load_fit_config(pooled_case(tmp_path / regimens, regimens=regimens))
        values = problem.parameters.valuesdict()
        rows[regimens] = [problem.predict({**values, "slope_between_study_sd": s}).predicted
                          for s in (0.1, 0.8)]
    np.testing.assert_array_equal(rows["one"][0], rows["one"][1])
    # days below 25 grow with a wider spread of damage (a deeper tail: the ROWS comment of
    # tests/test_between_patient.py); the mean nadir moves too
    narrow, wide = rows["several"]
    assert wide[1] > narrow[1] and not np.allclose(narrow, wide, rtol=1e-3)


def test_a_cv_the_fit_estimates_is_the_base_the_between_study_sd_is_added_to(tmp_path):
    problem = load_fit_config(pooled_case(tmp_path, spread=0.3,
                                          between="[between_patient.slope]\n"))
    values = {**problem.parameters.valuesdict(), "slope_between_patient_cv": 0.45}
    assert problem.patient_cvs(values, problem.arms[0])["slope"] == pytest.approx(
        widened(0.45, 0.3), rel=1e-12)


def test_the_fit_record_and_report_give_the_widening(tmp_path):
    # a short fit (few evaluations) is enough: the record says what the arm ran with
    config = pooled_case(tmp_path, spread=0.3)
    text = config.read_text().replace("max_evaluations = 60", "max_evaluations = 3")
    config.write_text(text.replace("subjects = 400", "subjects = 60"))
    run_fit(config, out=tmp_path / "out", verbose=False)
    record = json.loads((tmp_path / "out" / "params.json").read_text())
    entry = record["pooled_regimens"]["synthetic / cytotoxic"]["slope"]
    spread = record["parameters"]["slope_between_study_sd"]["value"]
    assert entry["between_study_sd"] == pytest.approx(spread)
    assert entry["cv_one_regimen"] == pytest.approx(CV, rel=1e-12)
    assert entry["cv_several_regimens"] == pytest.approx(widened(CV, spread), rel=1e-12)
    assert "## Studies that pooled regimens" in (tmp_path / "out" / "report.md").read_text()


@pytest.mark.parametrize("change, fragment", [
    ("no effect", r"pools regimens: .* this fit has no \[study_effects\]"),
    ("not varied", r"slope must vary log-normally with a CV above 0 in \[population\] cv"),
    ("not a choice", r"line \d+ \[arms #1\] regimens must be one of 'one', 'several', got "
                     r"'many'"),
])
def test_arms_that_cannot_be_widened_are_refused(tmp_path, change, fragment):
    config = pooled_case(tmp_path)
    text = config.read_text()
    if change == "no effect":
        text = text.replace(EFFECT.format(spread=0.4), "")
    elif change == "not a choice":
        text = text.replace('regimens = "several"', 'regimens = "many"')
    else:
        text = text.replace("cv = { slope = 0.2 }", "cv = { slope = 0.0 }")
    config.write_text(text)
    with pytest.raises(FitConfigError, match=fragment):
        load_fit_config(config)


# ---------------------------------------------------------------- [[trials]] entries
def _pooled_trial(tmp_path, own_cv: bool):
    """The persistent-CIT trial of tests/test_fitting_trials.py pooling regimens, its damage
    with a study effect in the fit; with its own [population] cv (0.30) or the fit's (0.55)."""
    from test_fitting_trials import ROWS as TRIAL_ROWS
    from test_fitting_trials import write_fit as write_trial_fit
    from test_fitting_trials import write_rows, write_trial

    path = write_trial(tmp_path)
    text = path.read_text()
    own = next(line for line in text.splitlines() if line.startswith("cv = "))
    text = text.replace(own, own + '\nregimens = "several"') if own_cv else \
        text.replace(own + "\n", 'regimens = "several"\n')
    path.write_text(text.replace('fit = "none"', 'fit = "default"'))
    write_rows(tmp_path, TRIAL_ROWS[:5])
    population = "" if own_cv else "[population]\ncv = { chemotherapy_sensitivity = 0.55 }\n"
    return load_fit_config(write_trial_fit(
        tmp_path, extra=population + "[study_effects.chemotherapy_sensitivity]\n"
                                     "studies = [\"persistent_test\"]\nspread = 0.25\n"))


def test_a_trials_own_widening_at_load_is_replaced_by_the_fits(tmp_path):
    # the trial file's fit (the bundled one) widened its drawn damage by that fit's SD; in
    # this fit the patients have CV 0.30 (the file's) widened by this fit's current SD
    problem = _pooled_trial(tmp_path, own_cv=True)
    trial = problem.trials[0]
    assert trial.regimens == "several" and trial.widened_by["chemotherapy_sensitivity"] > 0
    values = problem.parameters.valuesdict()
    for spread in (0.0, 0.25, 0.7):
        cvs = problem.patient_cvs({**values, "chemotherapy_sensitivity_between_study_sd":
                                   spread}, trial)
        assert cvs["chemotherapy_sensitivity"] == pytest.approx(widened(0.30, spread),
                                                                rel=1e-12)


def test_a_trial_taking_the_fits_population_is_widened_from_the_fits_cv(tmp_path):
    problem = _pooled_trial(tmp_path, own_cv=False)
    trial = problem.trials[0]
    assert trial.widened_by == {}  # drawn with the running fit's [population]: not widened
    values = problem.parameters.valuesdict()
    assert problem.patient_cvs(values, trial)["chemotherapy_sensitivity"] == pytest.approx(
        widened(0.55, 0.25), rel=1e-12)


@pytest.mark.parametrize("regimens", ["one", "several"])
def test_moving_the_between_study_sd_reports_the_objectives_true_fall(tmp_path, regimens):
    # the between-study SD is moved along the curve that keeps every study's value (typical
    # x exp(sd x u)) after each minimisation; with one regimen the data rows do not change
    # on it, but a pooled study's patients widen with the SD, so the fall reported (and
    # taken off the chi-square) must be that of the whole objective, re-evaluated
    from plateletpd.inference.fitting import rebalance_study_spreads

    problem = load_fit_config(pooled_case(tmp_path, spread=0.3, regimens=regimens))
    problem.curvature = {("slope", "synthetic"): 10.0}  # a Laplace term: an interior optimum
    params = problem.parameters.copy()
    params["slope_effect_synthetic"].value = 1.5  # the study 0.45 of the log above typical
    before = float(np.sum(problem.residuals(params) ** 2))
    fall = rebalance_study_spreads(problem, params)
    after = float(np.sum(problem.residuals(params) ** 2))
    assert fall == pytest.approx(before - after, rel=1e-9, abs=1e-12)
    assert fall >= 0.0
    if regimens == "one":  # the SD moved (0.3 -> about 0.48: the penalties' optimum)
        assert params["slope_between_study_sd"].value > 0.4 and fall > 0
