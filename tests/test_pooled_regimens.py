"""[population] regimens = "several" (2026-12-06): a study that pooled regimens holds, within
it, part of the variation the fit found between studies, so each patient's chemotherapy
damage varies by the between-patient CV and the fit's between-study SD together."""

import math

import numpy as np
import pytest

import plateletpd as pp
from plateletpd.model.library import load_fit_record
from plateletpd.study.trial import TrialSpecError

TRIAL = """
[trial]
name = "pooled"
seed = 7
subjects_per_arm = 20000
fit = "FIT"
[population]
cv = CV
correlations = CORRELATIONS
REGIMENS
[enrolment]
chemotherapy = "chemotherapy 1 dose d1"
entry_below = false
[response]
threshold = 100
[[arms]]
name = "untreated"
"""


def _spec(tmp_path, regimens: str = "several", fit: str = "default",
          cv: str = "{ chemotherapy_sensitivity = 0.30, platelets_baseline = 0.17 }",
          correlations: str = "{}"):
    path = tmp_path / "t.toml"
    path.write_text(TRIAL.replace("FIT", fit).replace("CV", cv).replace(
        "CORRELATIONS", correlations).replace(
        "REGIMENS", f'regimens = "{regimens}"' if regimens else ""))
    return pp.load_trial_spec(path)


def _log_sd(spec, name: str) -> float:
    values = spec.patients(0)[:, list(spec.model.parameter_names).index(name)]
    return float(np.std(np.log(values)))


def test_several_regimens_add_the_between_study_sd_to_the_damage_spread(tmp_path):
    # the bundled fit's between-study SD of log damage (fits/cit_marrow_reserve_calibration/
    # params.json, study_effects), added in quadrature to the log-normal CV of 0.30: the
    # 20,000 drawn patients' log SD within 0.01 of sqrt(log(1 + 0.3^2) + s^2) (its sampling
    # SE is about 0.0025); the other quantities' spread is untouched
    between = load_fit_record("cit_marrow_reserve_calibration")["study_effects"][
        "chemotherapy_sensitivity"]["between_study_sd"]
    pooled, single = _spec(tmp_path), _spec(tmp_path, regimens="")
    expected = math.sqrt(math.log(1 + 0.30 ** 2) + between ** 2)
    assert _log_sd(pooled, "chemotherapy_sensitivity") == pytest.approx(expected, abs=0.01)
    assert _log_sd(single, "chemotherapy_sensitivity") == pytest.approx(
        math.sqrt(math.log(1 + 0.30 ** 2)), abs=0.01)
    assert _log_sd(pooled, "platelets_baseline") == _log_sd(single, "platelets_baseline")
    assert "several regimens pooled" in pooled.parameters_from
    assert f"CV 0.30 -> {math.sqrt(math.exp(expected ** 2) - 1):.2f}" in pooled.parameters_from
    # "one" is the default and changes nothing
    assert np.array_equal(_spec(tmp_path, regimens="one").variability.covariance,
                          single.variability.covariance)


def test_several_regimens_keep_the_correlations_covariance(tmp_path):
    # the regimen part is independent of the rest: the covariance of damage with the
    # baseline count is what the file's correlation gave, its variance the only change
    pooled = _spec(tmp_path, correlations='{ "chemotherapy_sensitivity~platelets_baseline" '
                                          '= 0.5 }')
    single = _spec(tmp_path, regimens="", correlations='{ "chemotherapy_sensitivity~'
                                                       'platelets_baseline" = 0.5 }')
    names = list(single.variability.names)
    i, j = names.index("chemotherapy_sensitivity"), names.index("platelets_baseline")
    assert pooled.variability.covariance[i, j] == pytest.approx(
        single.variability.covariance[i, j], rel=1e-12)
    assert pooled.variability.covariance[i, i] > single.variability.covariance[i, i]


def test_a_population_that_does_not_vary_the_damage_gets_the_between_study_spread(tmp_path):
    between = load_fit_record("cit_marrow_reserve_calibration")["study_effects"][
        "chemotherapy_sensitivity"]["between_study_sd"]
    spec = _spec(tmp_path, cv="{ platelets_baseline = 0.17 }")
    assert _log_sd(spec, "chemotherapy_sensitivity") == pytest.approx(between, abs=0.01)


def test_several_regimens_need_a_fit_with_a_between_study_spread(tmp_path):
    with pytest.raises(TrialSpecError, match=r'regimens = "several" widens .* the trial uses '
                                             r'no fit'):
        _spec(tmp_path, fit="none")
    with pytest.raises(TrialSpecError, match=r"regimens"):
        _spec(tmp_path, regimens="many")  # not a choice: the schema names the two
