"""Virtual populations reproduce the requested distribution and are reproducible."""

import math

import numpy as np
import pytest

import plateletpd as pp
from plateletpd.population.variability import Variability, typical_values

N = 40_000
SEED = 20261121


def test_lognormal_cv_and_correlation_are_reproduced():
    # requested: CV 30% and 50%, correlation 0.6 on the eta scale
    variability = Variability.from_cv({"a": 0.3, "b": 0.5}, {("a", "b"): 0.6})
    cohort = variability.sample({"a": 2.0, "b": 10.0}, N, SEED)
    log_a, log_b = np.log(cohort["a"] / 2.0), np.log(cohort["b"] / 10.0)
    # tolerance: 5 standard errors of each estimate for n = 40,000 (SE of a sample SD is
    # about SD / sqrt(2n); SE of a correlation about (1 - rho^2) / sqrt(n))
    sd_a, sd_b = math.sqrt(math.log1p(0.09)), math.sqrt(math.log1p(0.25))
    assert np.std(log_a) == pytest.approx(sd_a, abs=5 * sd_a / math.sqrt(2 * N))
    assert np.std(log_b) == pytest.approx(sd_b, abs=5 * sd_b / math.sqrt(2 * N))
    assert np.mean(log_a) == pytest.approx(0.0, abs=5 * sd_a / math.sqrt(N))
    rho = np.corrcoef(log_a, log_b)[0, 1]
    assert rho == pytest.approx(0.6, abs=5 * (1 - 0.36) / math.sqrt(N))
    # log-normal with eta variance log(1 + CV^2) has CV exactly 0.3 (arithmetic scale)
    assert np.std(cohort["a"]) / np.mean(cohort["a"]) == pytest.approx(0.3, rel=0.03)


def test_full_covariance_matrix_is_reproduced():
    covariance = np.array([[0.09, 0.03, -0.02], [0.03, 0.16, 0.0], [-0.02, 0.0, 0.04]])
    variability = Variability(("a", "b", "c"), ("lognormal", "normal", "logitnormal"),
                              covariance)
    eta = variability.eta(N, SEED)
    # each element within 5 SE; SE of a covariance ~ sqrt((s_ii s_jj + s_ij^2) / n)
    se = np.sqrt((np.outer(np.diag(covariance), np.diag(covariance)) + covariance ** 2) / N)
    assert np.all(np.abs(np.cov(eta.T) - covariance) < 5 * se)


def test_logit_normal_stays_inside_zero_one():
    cohort = Variability.from_cv({"f": 2.0}, transforms={"f": "logitnormal"}).sample(
        {"f": 0.9}, 5000, SEED)
    assert cohort["f"].between(0, 1, inclusive="neither").all()
    assert cohort["f"].median() == pytest.approx(0.9, abs=0.01)  # median of logit-normal


def test_same_seed_same_cohort_and_any_subject_alone():
    variability = Variability.from_cv({"a": 0.3, "b": 0.2}, {("a", "b"): -0.4})
    typical = {"a": 1.0, "b": 5.0}
    first, second = variability.sample(typical, 500, 7), variability.sample(typical, 500, 7)
    assert first.equals(second)
    assert not first.equals(variability.sample(typical, 500, 8))
    alone = variability.subject(typical, 7, 321)
    assert alone == {"a": first.loc[321, "a"], "b": first.loc[321, "b"]}


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(cv={"a": -0.1}), "CV must be"),
    (dict(cv={"a": 0.3}, correlations={("a", "z"): 0.5}), "correlation names 'z'"),
    (dict(cv={"a": 0.3, "b": 0.3}, correlations={("a", "b"): 1.5}), "within [-1, 1]"),
    (dict(cv={"a": 0.3}, transforms={"a": "lognormel"}), "did you mean 'lognormal'"),
])
def test_bad_variability_is_refused(kwargs, fragment):
    with pytest.raises(pp.ParameterError, match=fragment.replace("[", r"\[")):
        Variability.from_cv(**kwargs)


def test_impossible_correlations_are_refused():
    # pairwise 0.9, 0.9, -0.9 cannot hold together (matrix not positive semi-definite)
    with pytest.raises(pp.ParameterError, match="positive semi-definite"):
        Variability.from_cv({"a": .3, "b": .3, "c": .3},
                            {("a", "b"): .9, ("a", "c"): .9, ("b", "c"): -.9})


def test_typical_values_come_from_the_model(friberg):
    assert typical_values(friberg, ["gamma"]) == {"gamma": 0.19}  # friberg_platelets.toml
    with pytest.raises(pp.ParameterError, match="did you mean 'gamma'"):
        typical_values(friberg, ["gama"])


DRAWN_MODEL = """\
[model]
name = "drawn"
description = "a decay whose rate carries a per-patient standard-normal term"
time_unit = "day"

[parameters]
rate = { value = 0.5, unit = "1/day", lower = 0.0, source = "test fixture" }
wobble = { value = 0.0, unit = "1", source = "test fixture", per_patient = "standard_normal" }
shift = { value = 0.0, unit = "1", source = "test fixture", per_patient = "standard_normal" }

[states.amount]
unit = "1"
initial = 1

[odes]
amount = "-rate * exp(0.1 * (wobble + shift)) * amount"

[outputs.platelets]
expression = "amount"
unit = "1"
"""


def test_a_model_draws_its_per_patient_parameters_unless_the_population_names_them():
    from plateletpd.model.definition import parse_model

    model = parse_model(DRAWN_MODEL, path="drawn.toml")
    assert model.per_patient_parameters == ["wobble", "shift"]
    own = Variability.from_cv({"rate": 0.3})
    drawn = own.including_model_draws(model)
    assert drawn.names == ("rate", "wobble", "shift")
    assert drawn.transforms == ("lognormal", "normal", "normal")
    # construction: value + N(0, 1), uncorrelated with the rest: SD 1 within 5 SE (SE of a
    # sample SD about 1 / sqrt(2n)), means 0 within 5 SE, correlations within 5 / sqrt(n)
    eta = drawn.eta(N, SEED)
    assert np.std(eta[:, 1:], axis=0) == pytest.approx([1.0, 1.0], abs=5 / math.sqrt(2 * N))
    assert np.abs(np.mean(eta[:, 1:], axis=0)).max() < 5 / math.sqrt(N)
    assert np.abs(np.corrcoef(eta.T)[np.triu_indices(3, 1)]).max() < 5 / math.sqrt(N)
    # listing them explicitly, in the model's order with CV 1 and the normal transform,
    # draws the same patients (so trial files written either way agree)
    explicit = Variability.from_cv({"rate": 0.3, "wobble": 1.0, "shift": 1.0},
                                   transforms={"wobble": "normal", "shift": "normal"})
    np.testing.assert_array_equal(explicit.eta(50, SEED), drawn.eta(50, SEED))
    assert explicit.including_model_draws(model) is explicit
    # a population naming one keeps its own SD for it (0: the typical value for everyone)
    off = Variability.from_cv({"wobble": 0.0}, transforms={"wobble": "normal"})
    off = off.including_model_draws(model)
    assert off.names == ("wobble", "shift") and off.sd("wobble") == 0.0 and off.sd("shift") == 1.0
