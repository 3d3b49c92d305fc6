"""Between-patient CVs estimated by a fit (`[between_patient.NAME]`): the random effects are
drawn once with the [population] CV and rescaled at each evaluation (common random numbers),
so rescaling equals drawing with the new CV; a fit recovers the CV its data were simulated
with; trial arms take the fit's CV; a fit's estimated CV is what trials taking the fit's
variability use; bad entries are named."""

import math
from pathlib import Path

import numpy as np
import pytest

from test_fitting import CONFIG as FITTING_CONFIG

from plateletpd.inference.fitting import FitConfigError, load_fit_config, run_fit
from plateletpd.model.library import fit_population
from plateletpd.population.variability import Variability, eta_scales
from plateletpd.study.trial import load_trial_spec
from plateletpd.study.uncertainty import TrialUncertainty

HEADER = ("study,arm,regimen,n,population,day0,endpoint,threshold,day,statistic,value,"
          "spread_type,spread,source")
# Friberg platelet model, an illustrative cytotoxic; the rows a spread moves: the mean nadir
# and the days below 25, 50 and 100 (a deeper tail adds days below 25 before it moves the
# mean). Measured here at slope 0.6: days below 25 are 0.48 at a slope CV of 0.2, 1.85 at 0.45
ROWS = [("nadir_plt", "", ""), ("duration_below_days", 25, ""),
        ("duration_below_days", 50, ""), ("duration_below_days", 100, "")]
CONFIG = """
[fit]
model = "friberg_platelets"
data = "outcomes.csv"
seed = 7
subjects = 400
max_evaluations = 60

[population]
cv = {{ slope = {cv} }}

[parameters]
slope = {{ value = {slope}, vary = true, lower = 0.05, upper = 3.0 }}
{between}
""" + FITTING_CONFIG[FITTING_CONFIG.index("[[arms]]"):]  # tests/test_fitting.py's arm
TRUE = {"slope": 0.6, "cv": 0.45}  # what the synthetic rows are simulated at
TRIAL = """
[trial]
name = "between_patient_test"
model = "friberg_platelets"
fit = "{fit}"
seed = 3
subjects_per_arm = 50
follow_up_days = 42

[chemotherapy]
regimen = "cytotoxic 100 mg qd d1-14"

[response]
threshold = 100
by_day = 28

[[arms]]
name = "untreated"
"""


def write_case(folder: Path, cv, slope, observed=None, between="") -> Path:
    rows = []
    for k, (endpoint, threshold, day) in enumerate(ROWS):
        value = 1.0 if observed is None else observed[k]
        sd = 1.0 if observed is None else 0.03 * value * math.sqrt(400)  # SE 3% of the value
        rows.append(f"synthetic,cytotoxic,r,400,p,d,{endpoint},{threshold},{day},mean,"
                    f"{value},SD,{sd},generated in tests/test_between_patient.py")
    (folder / "outcomes.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    config = folder / "config.toml"
    config.write_text(CONFIG.format(cv=cv, slope=slope, between=between))
    return config


def test_rescaled_random_effects_have_the_new_cv_and_keep_correlations():
    variability = Variability.from_cv({"a": 0.2, "b": 0.5, "c": 0.3},
                                      {("a", "b"): 0.6}, {"c": "normal"})
    eta = variability.eta(200_000, 3)
    scaled = eta * eta_scales(variability, {"a": 0.45, "c": 0.1})
    # log-normal a: the SD of eta is sqrt(log(1 + CV^2)) (Variability.from_cv), so the CV of
    # exp(eta) is the new one (sampling error of 200,000 draws: well under 1%)
    values = np.exp(scaled[:, 0])
    assert np.std(values) / np.mean(values) == pytest.approx(0.45, rel=0.01)
    assert np.std(scaled[:, 2]) == pytest.approx(0.1, rel=0.01)   # normal c: its SD
    np.testing.assert_array_equal(scaled[:, 1], eta[:, 1])        # b not named: untouched
    # scaling a column keeps its correlation with b and every patient's rank
    assert np.corrcoef(scaled[:, 0], scaled[:, 1])[0, 1] == pytest.approx(
        np.corrcoef(eta[:, 0], eta[:, 1])[0, 1], abs=1e-12)
    np.testing.assert_array_equal(np.argsort(scaled[:, 0]), np.argsort(eta[:, 0]))
    # a quantity that does not vary (CV 0, or not listed) cannot be rescaled: factor 1
    assert eta_scales(variability, {"d": 0.3}).tolist() == [1.0, 1.0, 1.0]


def test_rescaling_one_quantity_predicts_what_drawing_it_with_that_cv_predicts(tmp_path):
    # the fit starts from CV 0.2 and evaluates at 0.45; a configuration drawn at 0.45 is an
    # independent path (its own eta draw): with one varied quantity the two cohorts are the
    # same standard normals times the SD, so the rows agree to rounding
    drawn = load_fit_config(write_case(tmp_path, 0.45, 0.6)).predict({"slope": 0.6})
    problem = load_fit_config(write_case(tmp_path, 0.2, 0.6,
                                         between="[between_patient.slope]\n"))
    values = problem.parameters.valuesdict()
    assert values["slope_between_patient_cv"] == pytest.approx(0.2)  # the start: [population]
    rescaled = problem.predict({**values, "slope_between_patient_cv": 0.45})
    np.testing.assert_allclose(rescaled.predicted, drawn.predicted, rtol=1e-9)
    at_start = problem.predict(values)
    assert not np.allclose(at_start.predicted, rescaled.predicted, rtol=1e-3)


def test_a_fit_recovers_the_cv_its_rows_were_simulated_with(tmp_path):
    # noise-free rows simulated at TRUE (drawn at CV 0.45), then fitted from slope 0.4 and the
    # [population] CV 0.2: slope and CV come back to the optimiser's tolerance
    exact = load_fit_config(write_case(tmp_path, TRUE["cv"], TRUE["slope"])).predict(
        {"slope": TRUE["slope"]}).predicted.to_numpy()
    config = write_case(tmp_path, 0.2, 0.4, exact,
                        between="[between_patient.slope]\nlower = 0.05\nupper = 1.5\n")
    out = tmp_path / "fit"
    problem, result, table = run_fit(config, out, verbose=False)
    assert result.params["slope"].value == pytest.approx(TRUE["slope"], rel=0.01)
    fitted = result.params["slope_between_patient_cv"]
    assert fitted.value == pytest.approx(TRUE["cv"], rel=0.02)
    assert fitted.stderr is not None and fitted.stderr < 0.2 * TRUE["cv"]  # rows inform it
    assert np.max(np.abs(table.residual)) < 0.1  # of a standard error
    # a fit folder kept with its configuration (as the bundled fits are) hands the estimated
    # CV on: fit_population gives it in place of the [population] start value
    (out / "config.toml").write_text(config.read_text())
    assert fit_population(out)["cv"]["slope"] == pytest.approx(fitted.value)
    report = (out / "report.md").read_text()
    assert "## Between-patient variability estimated" in report
    assert "| slope |" in report
    # and a trial on the fit that states no [population] cv draws its patients with it
    trial = tmp_path / "trial.toml"
    trial.write_text(TRIAL.format(fit=out))
    spec = load_trial_spec(trial)
    assert spec.variability.sd("slope") == pytest.approx(
        math.sqrt(math.log1p(fitted.value ** 2)))
    # replicate trials drawn from the fit's uncertainty say which CVs they used; a trial with
    # its own [population] cv keeps it and is told the fit's estimate is not used
    assert "takes them at their estimates" in " ".join(
        TrialUncertainty.for_trial(spec).notes)
    own = tmp_path / "own.toml"
    own.write_text(TRIAL.format(fit=out).replace(
        "[chemotherapy]", "[population]\ncv = { slope = 0.2 }\n\n[chemotherapy]"))
    spec = load_trial_spec(own)
    assert spec.variability.sd("slope") == pytest.approx(math.sqrt(math.log1p(0.04)))
    assert "not used: this trial's own [population] cv wins" in " ".join(
        TrialUncertainty.for_trial(spec).notes)


@pytest.mark.parametrize("between, fragment", [
    ("[between_patient.gamma]\n", "does not vary in [population] cv"),
    ("[between_patient.slope]\nvalue = 0.9\nupper = 0.5\n", "outside [0.01, 0.5]"),
    ("[between_patient.slope]\nlower = 0.5\nupper = 0.4\n", "not lower < upper"),
    ("[between_patient.slope]\nspread = 0.3\n", "spread"),
])
def test_bad_between_patient_entries_are_named(tmp_path, between, fragment):
    with pytest.raises(FitConfigError) as error:
        load_fit_config(write_case(tmp_path, 0.2, 0.6, between=between))
    assert fragment in str(error.value) and "between_patient" in str(error.value)


def test_a_zero_population_cv_cannot_be_rescaled(tmp_path):
    with pytest.raises(FitConfigError, match="cv is 0"):
        load_fit_config(write_case(tmp_path, 0.0, 0.6, between="[between_patient.slope]\n"))


# ---------------------------------------------------------------- trial arms of a fit
POPULATION = "[population]\ncv = { chemotherapy_sensitivity = 0.30%s }\n"


@pytest.mark.filterwarnings("ignore::plateletpd.study.trial.DroppedPatientsWarning")
def test_trial_arms_take_the_cv_the_fit_evaluates(tmp_path):
    # the persistent-CIT trial of tests/test_fitting_trials.py (its own [population] CV of
    # chemotherapy_sensitivity is 0.30, the start here)
    from test_fitting_trials import ROWS as TRIAL_ROWS
    from test_fitting_trials import write_fit as write_trial_fit
    from test_fitting_trials import write_rows, write_trial

    write_trial(tmp_path)
    write_rows(tmp_path, TRIAL_ROWS[:5])
    plain = load_fit_config(write_trial_fit(tmp_path, extra=POPULATION % ""))
    before = plain.predict(plain.parameters.valuesdict())
    problem = load_fit_config(write_trial_fit(
        tmp_path, extra=POPULATION % "" + "[between_patient.chemotherapy_sensitivity]\n"))
    values = problem.parameters.valuesdict()
    assert values["chemotherapy_sensitivity_between_patient_cv"] == pytest.approx(0.30)
    np.testing.assert_allclose(problem.predict(values).predicted, before.predicted, rtol=1e-9)
    # a wider spread of damage moves the share eligible towards one half: eligibility (below
    # 100 for four weeks) needs damage above a critical value, so the eligible share is
    # P(log damage > critical), and widening a distribution around its median moves any
    # such tail share towards 0.5 (from below when the typical patient is not eligible, as
    # with the model before 2026-12-03; from above now, 61% eligible at CV 0.30)
    wide = problem.predict({**values, "chemotherapy_sensitivity_between_patient_cv": 0.8})
    share, wider = before.eligible_fraction.iloc[0], wide.eligible_fraction.iloc[0]
    assert share != 0.5 and abs(wider - 0.5) < abs(share - 0.5), (share, wider)


def test_a_cv_the_trial_does_not_vary_is_refused_naming_the_trial(tmp_path):
    from test_fitting_trials import ROWS as TRIAL_ROWS
    from test_fitting_trials import write_fit as write_trial_fit
    from test_fitting_trials import write_rows, write_trial

    write_trial(tmp_path)
    write_rows(tmp_path, TRIAL_ROWS[:5])
    config = write_trial_fit(tmp_path, extra=POPULATION % ", progenitor_transit_time = 0.3"
                             + "[between_patient.progenitor_transit_time]\n")
    with pytest.raises(FitConfigError, match="trial.toml does not vary 'progenitor_transit_"):
        load_fit_config(config)


def test_a_cv_estimated_over_a_trial_that_pools_regimens_is_widened_from(tmp_path):
    # [population] regimens = "several" adds the fit's between-study SD to the trial's spread
    # of damage: with a CV estimated, the estimated CV is what it is added to (rescaling to
    # the estimated CV alone would drop the between-study part); a fit with no study effect
    # has no between-study SD to add and is refused
    from test_fitting_trials import ROWS as TRIAL_ROWS
    from test_fitting_trials import write_fit as write_trial_fit
    from test_fitting_trials import write_rows, write_trial

    path = write_trial(tmp_path)
    text = path.read_text()
    own = next(line for line in text.splitlines() if line.startswith("cv = "))
    path.write_text(text.replace(own, own + '\nregimens = "several"').replace(
        'fit = "none"', 'fit = "default"'))
    write_rows(tmp_path, TRIAL_ROWS[:5])
    estimated = POPULATION % "" + "[between_patient.chemotherapy_sensitivity]\n"
    with pytest.raises(FitConfigError, match=r'trial.toml \(\[population\] regimens = '
                                             r'"several"\) pools regimens: .* no '
                                             r'\[study_effects\]'):
        load_fit_config(write_trial_fit(tmp_path, extra=estimated))
    problem = load_fit_config(write_trial_fit(tmp_path, extra=estimated + (
        "[study_effects.chemotherapy_sensitivity]\nstudies = [\"persistent_test\"]\n"
        "spread = 0.4\n")))
    values = {**problem.parameters.valuesdict(),
              "chemotherapy_sensitivity_between_patient_cv": 0.5}
    # sd_log^2 = log(1 + 0.5^2) + 0.4^2 (docs/fitting.md, "Studies that pooled regimens")
    assert problem.patient_cvs(values, problem.trials[0])["chemotherapy_sensitivity"] == \
        pytest.approx(math.sqrt(math.expm1(math.log1p(0.25) + 0.16)), rel=1e-12)


@pytest.mark.filterwarnings("ignore::plateletpd.study.trial.DroppedPatientsWarning")
def test_a_trial_without_its_own_cvs_runs_with_the_fits_population(tmp_path):
    # a trial file that states no [population] cv takes the CVs of a fit; inside a fit it is
    # the running fit's [population] (not the bundled fit's, which its fit key names), so a
    # CV the fit estimates reaches it
    from test_fitting_trials import ROWS as TRIAL_ROWS
    from test_fitting_trials import write_fit as write_trial_fit
    from test_fitting_trials import write_rows, write_trial

    path = write_trial(tmp_path)
    text = path.read_text()
    own = next(line for line in text.splitlines() if line.startswith("cv = "))
    path.write_text(text.replace(own + "\n", "").replace('fit = "none"', 'fit = "default"'))
    write_rows(tmp_path, TRIAL_ROWS[:5])
    population = "[population]\ncv = { chemotherapy_sensitivity = 0.55 }\n"
    problem = load_fit_config(write_trial_fit(
        tmp_path, extra=population + "[between_patient.chemotherapy_sensitivity]\n"))
    variability = problem.trials[0].spec.variability
    assert variability.names == ("chemotherapy_sensitivity",)
    assert variability.sd("chemotherapy_sensitivity") == pytest.approx(
        math.sqrt(math.log1p(0.55 ** 2)))
