"""The between-study SD moved to its optimum with every study's value kept
(inference.fitting.rebalance_study_spreads): the step a fit takes after each minimisation,
because the optimiser moves the SD and the standardised effects u as separate coordinates
and stops short along the valley where the studies' values stay put."""

import math
from types import SimpleNamespace

import lmfit
import numpy as np
import pytest

from plateletpd.inference.fitting import (carry_covariance, rebalance_study_spreads,
                                          spread_objective)

STUDIES = ("a", "b", "c", "d", "e")


def problem_and_parameters(spread, effects, curvature, vary_spread=True, bound=4.0):
    """A stand-in for FitProblem (the function reads only study_effects and curvature) and
    its lmfit parameters: typical value 4, one SD, one u per study."""
    names = {study: f"k_effect_{study}" for study in effects}
    problem = SimpleNamespace(
        study_effects={"k": {"spread": "k_between_study_sd", "effects": names}},
        curvature={("k", study): h for study, h in zip(effects, curvature)})
    params = lmfit.Parameters()
    params.add("k", value=4.0, min=1.0, max=12.0)
    params.add("k_between_study_sd", value=spread, min=0.0, max=1.5, vary=vary_spread)
    for study, u in effects.items():
        params.add(names[study], value=u, min=-bound, max=bound)
    return problem, params


def study_values(params, effects):
    return np.array([params["k"].value * math.exp(params["k_between_study_sd"].value
                                                  * params[f"k_effect_{s}"].value)
                     for s in effects])


# the bundled fit of 2026-12-02 01:40 UTC (fits/cit_marrow_reserve_calibration/params.json,
# study_effects): SD 0.2121, its five studies' values 4.574, 5.546, 6.318, 3.140, 2.325
# around the typical 4.265, and their curvatures H_s
BUNDLED_SPREAD = 0.2120756
BUNDLED_DELTAS = np.log(np.array([4.574438722, 5.546266781, 6.317827694, 3.140395296,
                                  2.324639311]) / 4.264966380)
BUNDLED_CURVATURE = [140.88, 882.95, 4017.66, 61.88, 529.83]


def bundled_case(**options):
    effects = dict(zip(STUDIES, BUNDLED_DELTAS / BUNDLED_SPREAD))
    return (*problem_and_parameters(BUNDLED_SPREAD, effects, BUNDLED_CURVATURE, **options),
            effects)


def test_every_studys_value_is_kept_and_the_objective_falls():
    problem, params, effects = bundled_case()
    before = study_values(params, effects)
    objective = spread_objective(BUNDLED_DELTAS, np.array(BUNDLED_CURVATURE), BUNDLED_SPREAD)
    fall = rebalance_study_spreads(problem, params)
    # the data residuals depend on the studies' values only: unchanged to rounding
    np.testing.assert_allclose(study_values(params, effects), before, rtol=1e-12)
    new = params["k_between_study_sd"].value
    assert fall == pytest.approx(objective - spread_objective(
        BUNDLED_DELTAS, np.array(BUNDLED_CURVATURE), new), rel=1e-9)
    # measured on the bundled fit's numbers: 30.8 -> 25.7, the SD 0.212 -> 0.37
    assert fall > 4.0 and 0.35 < new < 0.40, (fall, new)


def test_the_new_spread_is_the_minimum_of_the_study_effect_terms():
    problem, params, _ = bundled_case()
    rebalance_study_spreads(problem, params)
    new = params["k_between_study_sd"].value
    grid = np.linspace(0.05, 1.5, 2901)  # steps of 0.0005
    values = [spread_objective(BUNDLED_DELTAS, np.array(BUNDLED_CURVATURE), s) for s in grid]
    assert new == pytest.approx(grid[int(np.argmin(values))], abs=0.001)


def test_precise_studies_give_the_root_mean_square_of_their_deltas():
    # with H_s large, log(1 + sd^2 H) = log(sd^2) + log(H): the maximum-likelihood SD of
    # normal effects about a known mean, sqrt(mean(delta^2)) (n in the denominator)
    deltas = np.array([0.3, -0.2, 0.1, -0.4, 0.25])
    effects = dict(zip(STUDIES, deltas / 0.1))
    problem, params = problem_and_parameters(0.1, effects, [1e9] * 5, bound=10.0)
    rebalance_study_spreads(problem, params)
    assert params["k_between_study_sd"].value == pytest.approx(
        math.sqrt(np.mean(deltas ** 2)), rel=1e-4)


def test_a_spread_already_at_its_optimum_and_a_fixed_spread_do_not_move():
    problem, params, _ = bundled_case()
    rebalance_study_spreads(problem, params)
    settled = params.valuesdict()
    assert rebalance_study_spreads(problem, params) == 0.0
    assert params.valuesdict() == settled
    problem, params, _ = bundled_case(vary_spread=False)
    assert rebalance_study_spreads(problem, params) == 0.0
    assert params["k_between_study_sd"].value == BUNDLED_SPREAD


def test_the_standardised_effects_stay_inside_their_bounds():
    # precise studies: the free optimum is sqrt(mean(delta^2)) = 0.38, but u = delta / sd
    # must stay within +/- 1 (effect_bound), so the SD stops at max |delta| = 0.6
    deltas = np.array([0.6, -0.6, 0.01, 0.0, 0.02])
    effects = dict(zip(STUDIES, deltas / 1.2))
    problem, params = problem_and_parameters(1.2, effects, [1e9] * 5, bound=1.0)
    before = study_values(params, effects)
    rebalance_study_spreads(problem, params)
    assert params["k_between_study_sd"].value == pytest.approx(0.6, rel=1e-5)
    assert max(abs(params[f"k_effect_{s}"].value) for s in STUDIES) <= 1.0
    np.testing.assert_allclose(study_values(params, effects), before, rtol=1e-5)


def full_jacobian(problem, values, names, data):
    """Residual Jacobian of a problem whose data residuals are linear in (k, delta_s):
    data @ (k, delta_a..delta_e), then the study-effect penalties of FitProblem.residuals."""
    sd = values["k_between_study_sd"]
    rows = []
    for row in data:
        out = np.zeros(len(names))
        out[names.index("k")] = row[0]
        for j, study in enumerate(STUDIES):
            u = f"k_effect_{study}"
            out[names.index(u)] += row[1 + j] * sd
            out[names.index("k_between_study_sd")] += row[1 + j] * values[u]
        rows.append(out)
    for study in STUDIES:
        out = np.zeros(len(names))
        out[names.index(f"k_effect_{study}")] = 1.0
        rows.append(out)
        h = problem.curvature[("k", study)]
        out = np.zeros(len(names))
        out[names.index("k_between_study_sd")] = (sd * h / (1 + sd ** 2 * h)
                                                  / math.sqrt(math.log1p(sd ** 2 * h)))
        rows.append(out)
    return np.array(rows)


def test_the_carried_covariance_is_the_one_computed_at_the_new_point():
    # data residuals that depend on (k, delta) only, as a fit's do: the Gauss-Newton
    # covariance after the move must equal the one from a Jacobian taken at the new point
    problem, params, _ = bundled_case()
    names = list(params)
    # 21 data rows (as the bundled fit); columns scaled so that each study's block has a
    # curvature of the order of its recorded H_s (BUNDLED_CURVATURE): any full-rank
    # matrix would do, the identity being exact for linear residuals
    data = np.random.default_rng(3).normal(size=(21, 6)) * [1, 20, 30, 60, 8, 20]
    old = params.valuesdict()
    before = np.linalg.inv(full_jacobian(problem, old, names, data).T
                           @ full_jacobian(problem, old, names, data))
    rebalance_study_spreads(problem, params)
    new = params.valuesdict()
    direct = np.linalg.inv(full_jacobian(problem, new, names, data).T
                           @ full_jacobian(problem, new, names, data))
    carried = carry_covariance(problem, old, new, names, before)
    np.testing.assert_allclose(carried, direct, rtol=1e-6, atol=1e-10)
    # and it is not the degenerate delta-method image (rank 6 of 7): positive definite
    assert np.linalg.eigvalsh(carried).min() > 0
    # the SD's standard error changed with its value (the curvature along the valley)
    assert not np.isclose(carried[1, 1], before[1, 1], rtol=1e-3)


def test_a_profile_refit_of_the_spread_starts_with_every_studys_value_kept():
    from plateletpd.inference.fitting import profile_start

    problem, params, effects = bundled_case()
    result = SimpleNamespace(params=params, covar=None, var_names=list(params))
    start = profile_start(result, "k_between_study_sd", 0.3, problem)
    moved = params.copy()
    moved["k_between_study_sd"].value = 0.3
    for name, value in start.items():
        moved[name].value = value
    np.testing.assert_allclose(study_values(moved, effects), study_values(params, effects),
                               rtol=1e-12)
    # another parameter's profile keeps the linearised path (no covariance here: no move)
    assert profile_start(result, "k", 5.0, problem) == {}


def test_the_bundled_fits_between_study_sd_is_at_its_optimum_for_its_study_values():
    # fits/cit_marrow_reserve_calibration/params.json: its SD, study values and curvatures;
    # the SD must be where the objective is lowest for those values (the fit of 2026-12-02
    # 01:40 UTC, made before the step, failed this: 0.212 against 0.37; the fit of 09:20
    # UTC, made with it, passes: 0.429)
    import json
    from pathlib import Path

    record = json.loads((Path(__file__).resolve().parents[1] / "fits"
                         / "cit_marrow_reserve_calibration" / "params.json").read_text())
    effect = record["study_effects"]["chemotherapy_sensitivity"]
    studies = list(effect["studies"])
    deltas = np.log(np.array([effect["studies"][s] for s in studies]) / effect["typical"])
    spread = effect["between_study_sd"]
    effects = dict(zip(studies, deltas / spread))
    problem, params = problem_and_parameters(spread, effects,
                                             [effect["curvature"][s] for s in studies])
    params["k"].value = effect["typical"]
    assert rebalance_study_spreads(problem, params) < 0.01
    assert params["k_between_study_sd"].value == pytest.approx(spread, rel=0.01)
