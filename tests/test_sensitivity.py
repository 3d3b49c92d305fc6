"""Global sensitivity analysis (study/sensitivity.py): SALib's Sobol and Morris estimators
checked against functions whose indices are known in closed form, then a small real run on
trials with an inert factor (exact zeros) and factors of known direction."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from plateletpd.cli import main
from plateletpd.study.sensitivity import (
    ENDPOINTS,
    Factor,
    SensitivityError,
    morris_screening,
    run_sensitivity,
    sobol_indices,
    write_sensitivity,
)
from plateletpd.study.trial import TrialSpec

pytest.importorskip("SALib")


def ishigami(x: np.ndarray, a: float = 7.0, b: float = 0.1) -> np.ndarray:
    """Ishigami and Homma 1990's test function on [-pi, pi]^3."""
    return (np.sin(x[:, 0]) + a * np.sin(x[:, 1]) ** 2
            + b * x[:, 2] ** 4 * np.sin(x[:, 0]))[:, None]


def ishigami_indices(a: float = 7.0, b: float = 0.1):
    """Closed-form first and total indices (Saltelli et al. 2008, Global Sensitivity
    Analysis: The Primer, Wiley, section 4.9: V1, V2, V13 from a and b)."""
    pi = math.pi
    v1 = 0.5 * (1 + b * pi ** 4 / 5) ** 2
    v2 = a * a / 8
    v13 = b * b * pi ** 8 * (1 / 18 - 1 / 50)
    total = v1 + v2 + v13
    return np.array([v1, v2, 0.0]) / total, np.array([v1 + v13, v2, v13]) / total


def test_sobol_reproduces_ishigami_within_its_intervals():
    factors = [Factor(name, -math.pi, math.pi) for name in ("x1", "x2", "x3")]
    result = sobol_indices(factors, ishigami, 2048, seed=1)
    first, total = ishigami_indices()
    # Saltelli 2008's values for a = 7, b = 0.1: S1 = 0.314, 0.442, 0; ST = 0.558, 0.442, 0.244
    np.testing.assert_allclose(first, [0.3139, 0.4424, 0.0], atol=1e-3)
    np.testing.assert_allclose(total, [0.5576, 0.4424, 0.2437], atol=1e-3)
    table = result.indices
    assert np.all(table.S1_lower <= first + 0.01) and np.all(first - 0.01 <= table.S1_upper)
    assert np.all(table.ST_lower <= total + 0.01) and np.all(total - 0.01 <= table.ST_upper)
    np.testing.assert_allclose(table.S1, first, atol=0.04)
    np.testing.assert_allclose(table.ST, total, atol=0.04)
    # convergence: indices at 512, 1024, 2048 base samples; the last doubling moves < 0.05
    assert sorted(result.convergence.base_samples.unique()) == [512, 1024, 2048]
    assert result.converged == {"y": True}
    # and with few samples the check says it has not converged (16 -> 32 base samples)
    rough = sobol_indices(factors, ishigami, 32, seed=1)
    assert rough.converged == {"y": False}
    assert any("double them again" in note for note in rough.notes)


def test_morris_of_a_linear_model_gives_its_coefficients():
    # y = 3a - b + 0c on [0, 1]^3: every elementary effect of a factor is its coefficient
    # (Morris 1991, Technometrics 33:161), so mu* = |coefficient| and sigma = 0 exactly
    factors = [Factor(name, 0.0, 1.0) for name in ("a", "b", "c")]
    result = morris_screening(factors, lambda x: (x @ np.array([3.0, -1.0, 0.0]))[:, None],
                              10, seed=2)
    np.testing.assert_allclose(result.indices.mu_star, [3.0, 1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(result.indices.mu, [3.0, -1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(result.indices.sigma, 0.0, atol=1e-12)


def test_too_few_samples_and_bad_factors_are_clear_errors():
    factors = [Factor("x1", 0, 1)]
    for samples in (8, 24, 0):  # fewer than 16, or not a power of 2
        with pytest.raises(SensitivityError, match="power of 2 of at least 16"):
            sobol_indices(factors, ishigami, samples)
    with pytest.raises(SensitivityError, match="at least 4 trajectories"):
        morris_screening(factors, ishigami, 2)
    with pytest.raises(SensitivityError, match="low < high"):
        Factor("dose", 5, 2)
    with pytest.raises(SensitivityError, match="KIND:NAME=LOW,HIGH"):
        Factor.parse("dose=5")
    spec = small_trial()
    with pytest.raises(SensitivityError, match="not a parameter of cit_marrow_reserve"):
        run_sensitivity(spec, "hetrombopag", [Factor("parameter:chemo_sensitivity", 1, 2)],
                        method="morris", samples=4)
    with pytest.raises(SensitivityError, match="not varied between patients"):
        run_sensitivity(spec, "hetrombopag", [Factor("cv:tpo_ec50", 0.1, 0.2)],
                        method="morris", samples=4)
    with pytest.raises(SensitivityError, match="leave the model's"):
        run_sensitivity(spec, "hetrombopag", [Factor("parameter:chemotherapy_sensitivity",
                                                     1, 30)], method="morris", samples=4)


# A one-arm hetrombopag trial of the bundled CIT model; 24 patients per sample (a size for
# a fast test, not from a study).
def small_trial() -> TrialSpec:
    return TrialSpec.create(arms=[{"name": "hetrombopag", "treatment": ["hetrombopag 7.5 mg"],
                                   "max_days": 14}],
                            seed=4, subjects_per_arm=24, follow_up_days=35,
                            response={"threshold": 100, "by_day": 14},
                            population={"cv": {"chemotherapy_sensitivity": 0.3,
                                               "platelets_baseline": 0.2}},
                            enrolment={"entry_below": 75})


def test_morris_on_trials_inert_factor_exactly_zero(tmp_path):
    spec = small_trial()
    factors = [Factor("dose", 2.5, 15.0),
               # rhTPO's absorption cannot act in an arm given no rhTPO (model file: it
               # enters only the rhTPO depot), and the patients are the same in every trial
               Factor("parameter:rhtpo_absorption_half_life", 20.0, 80.0),
               Factor("parameter:chemotherapy_sensitivity", 4.0, 8.0),
               Factor("cv:platelets_baseline", 0.1, 0.3)]
    result = run_sensitivity(spec, "hetrombopag", factors, method="morris", samples=4,
                             seed=3)
    assert len(result.samples) == 4 * (len(factors) + 1)
    table = result.indices.set_index(["endpoint", "factor"])
    inert = table.xs("parameter:rhtpo_absorption_half_life", level="factor")
    assert (inert.mu_star == 0).all() and (inert.sigma == 0).all()
    # a more sensitive marrow gives a lower nadir in every elementary effect (mu = -mu*)
    chemo = table.loc[("nadir", "parameter:chemotherapy_sensitivity")]
    assert chemo.mu < 0 and math.isclose(chemo.mu, -chemo.mu_star)
    # hetrombopag shortens the days below 50 as the dose rises (the drug raises production)
    assert table.loc[("days_below_50", "dose")].mu <= 0
    assert set(result.indices.endpoint) == set(ENDPOINTS)
    paths = write_sensitivity(result, spec, "hetrombopag", tmp_path / "morris")
    assert {p.name for p in paths} >= {"indices.csv", "samples.csv", "sensitivity.png",
                                       "provenance.json"}
    assert len(pd.read_csv(tmp_path / "morris" / "indices.csv")) == 4 * len(factors)
    # what reproduces it (a user test, 2026-12-04: the sampling seed and the number of
    # trajectories were missing), with the trial's own record
    import json

    record = json.loads((tmp_path / "morris" / "provenance.json").read_text())
    assert record["samples"] == 4 and record["sampling_seed"] == 3
    assert record["seed"] == spec.seed and "parameters" in record and "design" in record


def test_command_refuses_too_few_samples(capsys):
    assert main(["sensitivity", "yuan2025", "--arm", "hetrombopag 7.5 mg", "--factor",
                 "dose=2.5,15", "--samples", "10", "--n", "10"]) == 2
    assert "power of 2 of at least 16" in capsys.readouterr().err
    assert main(["sensitivity", "yuan2025", "--factor", "potency:x=1,2", "--method",
                 "morris", "--samples", "4", "--n", "10"]) == 2
    assert "unknown kind 'potency'" in capsys.readouterr().err


@pytest.mark.slow  # 64 + 15 small trials: about 30 s on 2 loaded cores
def test_sobol_on_trials_small_run_and_command(tmp_path):
    spec = small_trial()
    factors = [Factor("dose", 2.5, 15.0),
               Factor("parameter:rhtpo_absorption_half_life", 20.0, 80.0)]
    result = run_sensitivity(spec, "hetrombopag", factors, samples=16, seed=5)
    assert len(result.samples) == 16 * (len(factors) + 2)
    inert = result.indices[result.indices.factor == factors[1].name]
    # Saltelli's S1 and Jansen's ST estimators are exactly 0 when f(AB_i) == f(A)
    assert (inert.S1 == 0).all() and (inert.ST == 0).all()
    # the command writes its folder
    out = tmp_path / "sensitivity"
    assert main(["sensitivity", "yuan2025", "--arm", "hetrombopag 7.5 mg", "--factor",
                 "dose=2.5,15", "--factor", "start_delay=0,3", "--method", "morris",
                 "--samples", "4", "--n", "12", "--out", str(out)]) == 0
    assert (out / "indices.csv").exists() and (out / "sensitivity.png").exists()


def test_an_endpoint_undefined_in_some_trial_gets_a_note_and_no_indices():
    # a linear model (S1 of a = 9/10 of the variance: coefficients 3 and 1 on U(0, 1))
    # beside an endpoint that is NaN in one trial, as time to 100 is when nobody reaches it
    factors = [Factor(name, 0.0, 1.0) for name in ("a", "b")]

    def evaluate(x):
        defined = x @ np.array([3.0, 1.0])
        partial = defined.copy()
        partial[0] = np.nan
        return np.column_stack([defined, partial])

    for result in (sobol_indices(factors, evaluate, 64, endpoints=("y", "partial")),
                   morris_screening(factors, evaluate, 6, endpoints=("y", "partial"))):
        assert set(result.indices.endpoint) == {"y"}
        assert any(note.startswith("partial: not defined in 1 of") for note in result.notes)
    sobol = sobol_indices(factors, evaluate, 64, endpoints=("y", "partial")).indices
    assert sobol.set_index("factor").loc["a", "S1"] == pytest.approx(0.9, abs=0.1)
