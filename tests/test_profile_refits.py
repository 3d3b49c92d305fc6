"""Broyden profile refits (``[fit] profile_refit = "broyden"``): a profile refit that starts
from the Jacobian at the optimum instead of taking one of its own, checked against
least_squares refits run to convergence on the synthetic fits of tests/test_fitting.py
(data generated from known values there, so every number below comes from those fits)."""

import numpy as np
import pytest

from plateletpd.inference.fitting import (FitConfigError, load_fit_config, optimum_jacobian,
                                          profile, run_fit)
from test_fitting import make_synthetic, studies_case, with_fit_key


@pytest.fixture(scope="module")
def two_parameters(tmp_path_factory):
    """The noisy Friberg fit of tests/test_fitting.py (slope and gamma varied), fitted."""
    folder = make_synthetic(tmp_path_factory.mktemp("broyden"), noise_seed=11)
    problem, result, _ = run_fit(folder / "config.toml", verbose=False,
                                 profile_parameters=False)
    return problem, result


@pytest.fixture(scope="module")
def with_study_effects(tmp_path_factory):
    """Three studies generated at slopes 0.4, 0.6 and 0.9 (tests/test_fitting.py's study-
    effect case): the typical slope, its between-study SD and three study effects varied."""
    config = studies_case(tmp_path_factory.mktemp("broyden_studies"),
                          {"a": 0.4, "b": 0.6, "c": 0.9})
    problem, result, _ = run_fit(config, verbose=False, profile_parameters=False)
    return problem, result


def test_the_optimisers_last_jacobian_is_reused_without_an_evaluation(two_parameters):
    problem, result = two_parameters
    before = problem.evaluations
    names, matrix = optimum_jacobian(problem, result)
    # least_squares takes a Jacobian at every point it accepts, the last one at its optimum
    assert problem.evaluations == before
    assert names == list(result.var_names) and matrix.shape == (6, 2)  # six rows, 2 varied
    # it is the forward-difference Jacobian there, as a fresh one would be
    from plateletpd.inference.fitting import difference_step, forward_jacobian

    np.testing.assert_allclose(matrix, forward_jacobian(problem, result.params,
                                                        difference_step(problem)), rtol=1e-12)


@pytest.mark.parametrize("name", ["slope", "gamma"])
def test_broyden_profiles_match_converged_refits_in_a_few_evaluations(two_parameters, name):
    problem, result = two_parameters
    jacobian = optimum_jacobian(problem, result)
    start = problem.evaluations
    converged = profile(problem, result, name, 7, max_evaluations=60)
    least_squares_cost = problem.evaluations - start
    start = problem.evaluations
    broyden = profile(problem, result, name, 7, max_evaluations=4, jacobian=jacobian)
    assert problem.evaluations - start <= 7 * 4
    assert problem.evaluations - start < least_squares_cost / 2  # 28 against 58-65 measured
    # every grid point within 0.05 of the converged refit's chi-square (0.02 measured at
    # +/- 3 standard errors), never below it by more than the optimiser's tolerance
    difference = np.array(broyden["chi_square"]) - np.array(converged["chi_square"])
    assert np.all(difference < 0.05) and np.all(difference > -1e-3), difference
    # so the 95% interval is the same to 4 digits
    np.testing.assert_allclose(broyden["ci95"], converged["ci95"], rtol=1e-4)


def test_broyden_profile_of_a_typical_value_with_study_effects(with_study_effects):
    # the typical slope's profile moves the between-study SD and every study effect along a
    # curved valley; every refit ends with the SD moved to its optimum with every study's
    # value kept (no simulation: the step least_squares' coordinates reach only slowly)
    problem, result = with_study_effects
    jacobian = optimum_jacobian(problem, result)
    converged = profile(problem, result, "slope", 5, max_evaluations=60)
    start = problem.evaluations
    broyden = profile(problem, result, "slope", 5, max_evaluations=4, jacobian=jacobian)
    assert problem.evaluations - start <= 5 * 4
    converged_chi, broyden_chi = np.array(converged["chi_square"]), \
        np.array(broyden["chi_square"])
    # within 0.5 of the converged refits at every point (measured: 29.03 against 28.74 at
    # -3 standard errors, 26.03 against 26.02 at +3), never lower than them by more than
    # their optimiser's tolerance
    assert np.all(broyden_chi - converged_chi < 0.5), (broyden_chi, converged_chi)
    assert np.all(broyden_chi - converged_chi > -1e-3), (broyden_chi, converged_chi)
    # the same 95% interval to 5% (lower end 0.360 against 0.354 measured; both open above)
    assert broyden["ci95"][0] == pytest.approx(converged["ci95"][0], rel=0.05)
    assert broyden["ci95"][1] is None and converged["ci95"][1] is None


def test_a_fit_with_broyden_profiles_reports_them(two_parameters, tmp_path, capsys):
    config = _case(tmp_path) / "config.toml"
    config.write_text(config.read_text().replace(
        "max_evaluations = 80", 'max_evaluations = 80\nprofile = ["slope"]\n'
        'profile_points = 3\nprofile_evaluations = 4\nprofile_refit = "broyden"'))
    problem, result, _ = run_fit(config, out=tmp_path / "out", verbose=True)
    output = capsys.readouterr().out
    assert "fit: profile of slope (3 Broyden refits, each at most 4 evaluations)" in output
    assert "optimiser's last Jacobian" in output
    report = (tmp_path / "out" / "report.md").read_text()
    assert "Broyden updates" in report
    # the same optimum as the fixture's fit (same data, seed and start): profiles do not
    # move it
    assert result.params["slope"].value == pytest.approx(
        two_parameters[1].params["slope"].value, rel=1e-12)


def _case(tmp_path):
    folder = tmp_path / "case"
    folder.mkdir()
    return make_synthetic(folder, noise_seed=11)


def test_an_unknown_profile_refit_is_a_clear_error(tmp_path):
    folder = _case(tmp_path)
    config = with_fit_key(folder, tmp_path / "bad", 'profile_refit = "chord"')
    with pytest.raises(FitConfigError, match="profile_refit.*broyden"):
        load_fit_config(config)


def test_the_covariance_at_the_optimum_reuses_the_last_jacobian_taken_there(tmp_path):
    # the final minimisation's fallback covariance (fitting._covariance_at_optimum) needs a
    # Jacobian at the reported optimum; when the optimiser's last one was taken there with
    # the same step it is the same matrix (the same evaluations, rows remembered or not)
    from plateletpd.inference.fitting import (
        _covariance_at_optimum,
        difference_step,
        forward_jacobian,
        remembered_jacobian,
    )

    # a fit of its own: the module's fitted problem has taken other Jacobians since
    problem, fitted, _ = run_fit(_case(tmp_path) / "config.toml", verbose=False,
                                 profile_parameters=False)
    result = fitted.params.copy()
    step = difference_step(problem)
    remembered = remembered_jacobian(problem, result, step)
    assert remembered is not None
    fresh = forward_jacobian(problem, result, step)
    np.testing.assert_array_equal(remembered, fresh)
    # another step or another point: not the same Jacobian
    assert remembered_jacobian(problem, result, 2 * step) is None
    moved = result.copy()
    moved["slope"].set(value=moved["slope"].value * 1.01)
    assert remembered_jacobian(problem, moved, step) is None

    class Result:  # what _covariance_at_optimum reads and sets on an lmfit result
        params, errorbars, covar = result, False, None

    before = problem.evaluations
    _covariance_at_optimum(problem, Result, step, verbose=False)
    assert problem.evaluations == before and Result.errorbars
    np.testing.assert_allclose(Result.covar, np.linalg.inv(fresh.T @ fresh), rtol=1e-12)
