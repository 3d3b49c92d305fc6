"""Parameter uncertainty (issue 16 item 7): draws from a fit's covariance or one-sided
profile, truncation by redrawing, prediction intervals beside sampling intervals,
reproducibility across thread counts, and the trial command's --uncertainty fit."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from helpers import with_one_and_two_threads
import plateletpd as pp
from plateletpd.cli import main
from plateletpd.model.library import bundled_fits_dir
from plateletpd.study.trial import load_trial_spec
from plateletpd.study.uncertainty import (
    ParameterDistribution,
    TrialUncertainty,
    UncertaintyError,
    run_uncertainty,
)

FIT = bundled_fits_dir() / "cit_calibration" / "params.json"
# trials/yuan2025.toml as it was for cit_thrombopoiesis: it maps chemotherapy_sensitivity to
# the cit_calibration fit's study-level yuan_chemotherapy_sensitivity
YUAN_THROMBOPOIESIS = Path(__file__).parent / "data" / "yuan2025_cit_thrombopoiesis.toml"
N = 20_000  # draws for the Monte Carlo checks; tolerances below are 4 standard errors


def test_draws_reproduce_a_known_mean_and_covariance():
    mean = np.array([1.0, -2.0, 5.0])
    covariance = np.array([[0.25, 0.12, -0.05],
                           [0.12, 1.00, 0.30],
                           [-0.05, 0.30, 0.50]])  # positive definite (eigenvalues > 0)
    distribution = ParameterDistribution.from_covariance(["a", "b", "c"], mean, covariance)
    draws, outside = distribution.draw(np.random.default_rng(11), N)
    assert draws.shape == (N, 3) and outside == {}
    # the sample mean's standard error is sigma / sqrt(N)
    sigma = np.sqrt(np.diag(covariance))
    assert np.all(np.abs(draws.mean(axis=0) - mean) < 4 * sigma / math.sqrt(N))
    # for normal data, Var(sample covariance_ij) = (sigma_ii sigma_jj + sigma_ij^2) / N
    # (Anderson, An Introduction to Multivariate Statistical Analysis, 3rd ed., 3.4)
    error = np.sqrt((np.outer(np.diag(covariance), np.diag(covariance)) + covariance ** 2) / N)
    assert np.all(np.abs(np.cov(draws.T) - covariance) < 4 * error)


def test_draws_outside_the_bounds_are_redrawn_and_counted_never_clipped():
    # a standard normal truncated to [0, inf): the half-normal, mean sqrt(2/pi), variance
    # 1 - 2/pi; each accepted draw needs a geometric number of rejections (p = 1/2: mean 1,
    # variance 2), so about N rejections, standard deviation sqrt(2 N)
    distribution = ParameterDistribution.from_covariance(["x"], [0.0], [[1.0]], lower=[0.0])
    draws, outside = distribution.draw(np.random.default_rng(5), N)
    assert draws.min() >= 0.0 and np.sum(draws == 0.0) == 0  # no mass piled on the bound
    assert abs(draws.mean() - math.sqrt(2 / math.pi)) < 4 * math.sqrt(1 - 2 / math.pi) / \
        math.sqrt(N)
    assert abs(outside["x"] - N) < 4 * math.sqrt(2 * N)


def test_bounds_that_hold_almost_nothing_are_an_error():
    distribution = ParameterDistribution.from_covariance(["x"], [0.0], [[1.0]], lower=[8.0])
    with pytest.raises(UncertaintyError, match="fewer than 1 in 1000 parameter draws"):
        distribution.draw(np.random.default_rng(1), 1)


def _profile_record(grid, chi_square, ci95, optimum=2.0, stderr=0.5, minimum=10.0):
    # bounds far outside +/- 10 standard errors: no truncation
    entry = {"value": optimum, "stderr": stderr, "lower": -100.0, "upper": 100.0, "vary": True,
             "expr": None, "correlations": {}}
    return {"parameters": {"theta": entry}, "objective": {"chi_square": minimum},
            "profiles": {"theta": {"grid": grid, "chi_square": chi_square, "ci95": ci95,
                                   "optimum": optimum}}}


def test_a_one_sided_quadratic_profile_gives_the_normal_it_describes():
    # chi2(theta) = 10 + ((theta - 2) / 0.8)^2: the signed root deviance is (theta - 2)/0.8,
    # so the profile-based draw is exactly N(2, 0.8^2) although the covariance says 0.5;
    # the profiled range stops at +1.5 standard errors (upper end open)
    grid = [2.0 + 0.8 * k for k in (-3, -2, -1, 0, 0.5, 1.0, 1.5)]
    chi_square = [10.0 + ((g - 2.0) / 0.8) ** 2 for g in grid]
    distribution, notes = ParameterDistribution.from_fit(
        _profile_record(grid, chi_square, [0.4, None]), "test")
    assert "theta" in distribution.profiles and "one-sided profile" in notes[0]
    draws, _ = distribution.draw(np.random.default_rng(2), N)
    assert abs(draws.mean() - 2.0) < 4 * 0.8 / math.sqrt(N)
    # standard error of a normal sample's SD: sigma / sqrt(2 (N - 1))
    assert abs(draws.std(ddof=1) - 0.8) < 4 * 0.8 / math.sqrt(2 * (N - 1))


@pytest.mark.parametrize("chi_square, ci95, why", [
    ([12.0, 9.0, 10.0, 11.0, 13.0], [None, 3.0], "rough"),   # a refit below the optimum
    ([12.0, 10.5, 10.0, 11.0, 13.0], [1.0, 3.0], "closed at both ends"),
    ([12.0, 10.5, 10.0, 11.0, 13.0], [None, None], "open at both ends"),
])
def test_unusable_profiles_fall_back_to_the_covariance_and_say_why(chi_square, ci95, why):
    record = _profile_record([1.0, 1.5, 2.0, 2.5, 3.0], chi_square, ci95)
    distribution, notes = ParameterDistribution.from_fit(record, "test")
    assert distribution.profiles == {} and any(why in note for note in notes)


def test_the_bundled_fit_covariance_and_choices():
    record = json.loads(FIT.read_text())
    spec = load_trial_spec(YUAN_THROMBOPOIESIS, subjects=20, seed=1)
    uncertainty = TrialUncertainty.for_trial(spec)
    distribution = uncertainty.distribution
    i, j = distribution.names.index("tpo_emax"), distribution.names.index(
        "yuan_chemotherapy_sensitivity")
    p, q = record["parameters"]["tpo_emax"], record["parameters"][
        "yuan_chemotherapy_sensitivity"]
    # params.json: covariance = correlation x stderr x stderr
    assert distribution.covariance[i, j] == pytest.approx(
        p["correlations"]["yuan_chemotherapy_sensitivity"] * p["stderr"] * q["stderr"])
    # het_ec50's stored profile is one-sided (ci95 [1.25, None]); tpo_emax's is open at both
    # ends and rough (the fit report says so): covariance
    assert set(distribution.profiles) == {"het_ec50"}
    # the trial maps chemotherapy_sensitivity to the Yuan study's parameter
    assert uncertainty.applies["chemotherapy_sensitivity"] == "yuan_chemotherapy_sensitivity"
    # bounds: the fit's [0.05, 100] within the model file's [0.01, 10000] for het_ec50
    k = distribution.names.index("het_ec50")
    assert (distribution.lower[k], distribution.upper[k]) == (0.05, 100.0)


def test_a_trial_of_a_new_population_says_no_study_effect_can_be_drawn():
    spec = pp.TrialSpec.create(seed=1, model="cit_thrombopoiesis", subjects_per_arm=10,
                               arms=[{"name": "untreated"}],
                               response={"threshold": 100, "by_day": 14},
                               population={"typical": {"chemotherapy_sensitivity": 9.0}})
    uncertainty = TrialUncertainty.for_trial(spec)
    assert "chemotherapy_sensitivity" not in uncertainty.applies  # fixed by typical
    text = " ".join(uncertainty.notes)
    assert "held at the trial's [population] typical value" in text
    assert "no between-study distribution" in text


@pytest.mark.parametrize("keys, message", [
    (dict(fit="none"), "the trial uses no fit"),
    (dict(population={"study_parameters": {"chemotherapy_sensitivity": "tpo_emax"}}),
     "not a study-level parameter"),
    (dict(population={"study_parameters": {"chemo_sensitivity": "x"}}),
     "'chemo_sensitivity' is not a parameter"),
])
def test_bad_uncertainty_settings_are_clear_errors(keys, message):
    spec = pp.TrialSpec.create(seed=1, model="cit_thrombopoiesis", subjects_per_arm=10,
                               arms=[{"name": "untreated"}],
                               response={"threshold": 100, "by_day": 14}, **keys)
    with pytest.raises(UncertaintyError, match=message):
        TrialUncertainty.for_trial(spec)


def test_a_fit_without_standard_errors_cannot_be_drawn(tmp_path):
    record = json.loads(FIT.read_text())
    record["parameters"]["het_ec50"]["stderr"] = None
    (tmp_path / "params.json").write_text(json.dumps(record))
    with pytest.raises(UncertaintyError, match="no standard error for het_ec50"):
        ParameterDistribution.from_fit(record, str(tmp_path))


@pytest.fixture(scope="module")
def wide_fit(tmp_path_factory):
    """The bundled fit with chemotherapy_sensitivity's standard error raised from 0.07 to
    1.5, so that parameter uncertainty visibly drives the untreated arm's endpoints."""
    folder = tmp_path_factory.mktemp("wide_fit")
    record = json.loads(FIT.read_text())
    record["parameters"]["chemotherapy_sensitivity"]["stderr"] = 1.5
    (folder / "params.json").write_text(json.dumps(record))
    return folder


def _small_trial(fit: Path, replicates: int):
    return pp.TrialSpec.create(seed=3, model="cit_thrombopoiesis", fit=str(fit),
                               subjects_per_arm=30,
                               replicates=replicates, arms=[{"name": "untreated"}],
                               population={"cv": {"chemotherapy_sensitivity": 0.3}},
                               response={"threshold": 100, "by_day": 14})


def test_prediction_intervals_are_at_least_as_wide_as_sampling_intervals(wide_fit):
    result = run_uncertainty(_small_trial(wide_fit, 6))
    table = result.intervals.set_index("endpoint")
    # endpoints the chemotherapy's depth drives (the untreated arm's course)
    for endpoint in ("response_pct", "mean_nadir", "mean_plt_day_7", "mean_plt_day_14"):
        row = table.loc[endpoint]
        assert row.prediction_high - row.prediction_low >= \
            row.sampling_high - row.sampling_low, endpoint
    # the sampling rows are the trial's own replicates (same seeds as run_replicates)
    from plateletpd.study.trial import run_replicates
    sampling = result.replicates[result.replicates.parameters == "point estimate"]
    assert np.allclose(sampling.response_pct.to_numpy(),
                       run_replicates(_small_trial(wide_fit, 6)).response_pct.to_numpy())
    assert len(result.draws) == 6 and result.draws.chemotherapy_sensitivity.std() > 0.5


def test_same_seed_same_result_with_one_or_two_threads(wide_fit):
    one, two = with_one_and_two_threads(lambda: run_uncertainty(_small_trial(wide_fit, 2)))
    assert one.replicates.equals(two.replicates) and one.draws.equals(two.draws)
    # replicate r's draw depends on the trial seed and r only, not on how many are run
    three = run_uncertainty(_small_trial(wide_fit, 3))
    assert three.draws.iloc[:2].equals(one.draws)


def test_one_replicate_is_refused(wide_fit):
    with pytest.raises(UncertaintyError, match="at least 2 replicates"):
        run_uncertainty(_small_trial(wide_fit, 1))


def test_trial_command_writes_prediction_intervals(tmp_path, capsys):
    out = tmp_path / "trial"
    code = main(["trial", "yuan2025", "--n", "15", "--replicates", "2", "--uncertainty",
                 "fit", "--out", str(out)])
    assert code == 0
    for name in ("uncertainty.csv", "uncertainty.png", "draws.csv", "uncertainty.md",
                 "summary.csv", "manifest.json"):
        assert (out / name).is_file(), name
    header = (out / "uncertainty.csv").read_text().splitlines()[0]
    assert "prediction_low" in header
    # cit_marrow_reserve has a validation record: the intervals widened by it too
    assert "calibrated_low" in header and "calibrated_high" in header
    assert "Calibration on the validation record" in (out / "uncertainty.md").read_text()
    assert "draws outside the bounds redrawn" in capsys.readouterr().err


def test_a_fit_with_study_effects_makes_each_replicate_a_new_study():
    """fits/cit_marrow_reserve_calibration estimates the between-study SD of
    chemotherapy_sensitivity (params.json study_effects): a replicate is a new study whose
    value is the drawn typical value x exp(drawn SD x z), z standard normal. Recovered here
    from the same replicate drawn without the study step (same seeds, same fit draws)."""
    from dataclasses import replace as _replace

    from plateletpd.study.uncertainty import TrialUncertainty

    spec = pp.TrialSpec.create(seed=5, model="cit_marrow_reserve", subjects_per_arm=10,
                               uncertainty="fit", arms=[{"name": "untreated"}],
                               response={"threshold": 100, "by_day": 14})
    drawn = TrialUncertainty.for_trial(spec)
    sd_name = "chemotherapy_sensitivity_between_study_sd"
    assert drawn.new_study == {"chemotherapy_sensitivity": sd_name}
    assert any("new study" in note for note in drawn.notes)
    without = _replace(drawn, new_study={})
    z = []
    for r in range(2000):
        study, typical = drawn.replicate(5, r)[0], without.replicate(5, r)[0]
        z.append(np.log(study["chemotherapy_sensitivity"] / typical["chemotherapy_sensitivity"])
                 / abs(typical[sd_name]))
    z = np.array(z)
    # 2,000 draws: 4 standard errors for the mean; the relative SE of an SD is
    # 1/sqrt(2 x 2000) = 1.6%, so 5% is 3 SE
    assert abs(z.mean()) < 4 / np.sqrt(z.size) and abs(z.std() - 1) < 0.05
    # fixed in [population] typical: no study draw
    fixed = pp.TrialSpec.create(seed=5, model="cit_marrow_reserve", subjects_per_arm=10,
                                uncertainty="fit", arms=[{"name": "untreated"}],
                                population={"typical": {"chemotherapy_sensitivity": 6.0}},
                                response={"threshold": 100, "by_day": 14})
    assert TrialUncertainty.for_trial(fixed).new_study == {}


def _deep_entry_trial(fit: Path, replicates: int = 8):
    """Untreated patients enrolled once their count falls below 30: only a deep enough
    chemotherapy damage enrols anyone (sizes for a fast test, not from a study)."""
    return pp.TrialSpec.create(seed=3, model="cit_thrombopoiesis", fit=str(fit),
                               subjects_per_arm=8, replicates=replicates,
                               arms=[{"name": "untreated"}], enrolment={"entry_below": 30},
                               population={"cv": {"chemotherapy_sensitivity": 0.1}},
                               response={"threshold": 100, "by_day": 14})


def test_a_replicate_study_that_enrols_nobody_is_left_out_and_said(wide_fit):
    # with parameters drawn from the fit a study whose drawn damage is too mild for its
    # entry rule enrols nobody: a possible draw, not a broken design. It is left out (the
    # published study enrolled) with a warning naming it; the others are kept unchanged
    from plateletpd.study.uncertainty import EmptyReplicateWarning

    spec = _deep_entry_trial(wide_fit)
    with pytest.warns(EmptyReplicateWarning, match=r"of 8 replicate trials .* left out"):
        result = run_uncertainty(spec)
    drawn = TrialUncertainty.for_trial(spec)
    damage = {r: drawn.replicate(3, r)[0]["chemotherapy_sensitivity"] for r in range(8)}
    kept = set(result.replicates[result.replicates.parameters == "drawn"].replicate)
    left_out = set(range(8)) - kept
    assert kept and left_out  # this trial and seed give both (seen: 3 left out)
    # the ones left out are the mildest draws: enrolment only grows with the damage
    assert max(damage[r] for r in left_out) < min(damage[r] for r in kept)
    # each kept replicate is the trial its draw gives, whether or not others were empty
    assert list(result.draws.replicate) == sorted(kept)
    for r in kept:
        assert result.draws.set_index("replicate").loc[r, "chemotherapy_sensitivity"] == \
            pytest.approx(damage[r], rel=1e-12)
    # the point estimates (the design itself) still enrol in every replicate
    assert (result.replicates.parameters == "point estimate").sum() == 8


def test_a_design_that_enrols_nobody_is_still_an_error(wide_fit, tmp_path):
    from plateletpd.study.trial import NobodyEnrolledError
    from plateletpd.study.uncertainty import replicate_trials

    # at the point estimates: the design cannot enrol, whatever the draws
    shallow = pp.TrialSpec.create(seed=3, model="cit_thrombopoiesis", fit=str(wide_fit),
                                  subjects_per_arm=8, replicates=2,
                                  arms=[{"name": "untreated"}], enrolment={"entry_below": 5},
                                  population={"cv": {"chemotherapy_sensitivity": 0.1}},
                                  response={"threshold": 100, "by_day": 14})
    with pytest.raises(NobodyEnrolledError, match="enrolled none of the 8"):
        run_uncertainty(shallow)
    # every drawn study empty: a fit whose damage is mild and certain (2.5, SE 0.01; bounds 2-12)
    record = json.loads(FIT.read_text())
    record["parameters"]["chemotherapy_sensitivity"].update(value=2.5, stderr=0.01)
    (tmp_path / "params.json").write_text(json.dumps(record))
    spec = _deep_entry_trial(tmp_path, replicates=2)
    with pytest.raises(NobodyEnrolledError, match="every one of the 2 replicate trials"):
        list(replicate_trials(spec, 2, TrialUncertainty.for_trial(spec)))


def test_a_new_study_outside_the_bounds_is_redrawn_not_clipped():
    """A new study's value, typical x exp(SD x z), obeys the model's bounds as every drawn
    parameter does (module docstring: redrawn whole, never clipped, redraws counted). Found
    2026-12-02: a drawn study of the haematological trial reached chemotherapy_sensitivity
    28.9 against the model file's upper bound 25, and the whole check stopped."""
    from dataclasses import replace as _replace

    from plateletpd.study.uncertainty import TrialUncertainty

    spec = pp.TrialSpec.create(seed=5, model="cit_marrow_reserve", subjects_per_arm=10,
                               uncertainty="fit", arms=[{"name": "untreated"}],
                               response={"threshold": 100, "by_day": 14})
    drawn = TrialUncertainty.for_trial(spec)
    # the model file's bounds, [0, 25], not the fit's search range for the typical value
    assert drawn.study_bounds == {"chemotherapy_sensitivity": (0.0, 25.0)}
    # bounds tight around the typical value (fit of 2026-12-02 09:20 UTC: 4.43, between-
    # study SD 0.43): at the point estimates P(4 < value < 6) = P(-0.24 < z < 0.71) = 0.35,
    # so about two thirds of new studies fall outside [4, 6] and must be redrawn
    tight = _replace(drawn, study_bounds={"chemotherapy_sensitivity": (4.0, 6.0)})
    values, redraws = [], 0
    for r in range(300):
        study, outside = tight.replicate(5, r)
        values.append(study["chemotherapy_sensitivity"])
        redraws += outside.get("chemotherapy_sensitivity", 0)
    values = np.array(values)
    assert values.min() >= 4.0 and values.max() <= 6.0
    assert redraws > 100  # counted, as every redraw is
    # not clipped: no mass piles up on the bounds
    assert np.mean((values == 4.0) | (values == 6.0)) == 0
    # a replicate whose first study draw is already inside keeps its value (the same seeds
    # as without the bounds): tight bounds change only the replicates they must
    kept = 0
    for r in range(50):
        wide = drawn.replicate(5, r)[0]["chemotherapy_sensitivity"]
        if 4.0 <= wide <= 6.0:
            assert tight.replicate(5, r)[0]["chemotherapy_sensitivity"] == wide
            kept += 1
    assert kept >= 5  # about a third of 50


def test_the_notes_of_drawn_parameters_leave_out_the_fitted_studies_own_effects():
    # a user test (2026-12-05) read "chemotherapy_sensitivity_effect_gi_rhil11: drawn
    # through its one-sided profile" among the notes of a new study and wondered whether
    # another study's effect applied to theirs; a replicate is a new study, and the notes
    # say so once
    from plateletpd.study.uncertainty import TrialUncertainty

    record = json.loads((bundled_fits_dir() / "cit_marrow_reserve_calibration" /
                         "params.json").read_text())
    effects = [name for name in record["parameters"] if "_effect_" in name]
    assert len(effects) == 6  # the six fitted studies (else this proves nothing)
    drawn = TrialUncertainty.for_trial(load_trial_spec(pp.bundled_trial("yuan2025")))
    assert not any(name in note for name in effects for note in drawn.notes)
    assert "with them the 6 fitted studies' own effects" in drawn.notes[0]
    assert any("each replicate is a new study" in note for note in drawn.notes)


def test_an_anchored_parameter_is_held_and_its_between_study_sd_is_said_not_drawn():
    # a user test (2026-12-07) anchored the depth on a published incidence and ran the
    # check with the bundled fit's uncertainty: the notes listed chemotherapy_sensitivity
    # both as "drawn from the covariance" and as held, and called its between-study SD "a
    # fixed effect of one study" with "no between-study distribution", which the bundled fit
    # has (models/cit_marrow_reserve.md: SD 0.40). Now the held parameter and its SD are out
    # of the drawn list, and the SD's note says why it is not drawn
    spec = pp.TrialSpec.create(seed=1, subjects_per_arm=10, arms=[{"name": "untreated"}],
                               response={"threshold": 100, "by_day": 14},
                               population={"anchor": {"nadir_below": 50, "percent": 25,
                                                      "source": "carboplatin label"}})
    uncertainty = TrialUncertainty.for_trial(spec)
    assert "chemotherapy_sensitivity" not in uncertainty.applies
    drawn = next(n for n in uncertainty.notes if n.startswith("drawn from the covariance"))
    assert "chemotherapy_sensitivity" not in drawn and "het_ec50" in drawn
    assert not any(n.startswith("chemotherapy_sensitivity") for n in uncertainty.notes)
    text = " ".join(uncertainty.notes)
    assert "held at the trial's [population] typical value or anchor" in text
    assert ("not drawn, as the trial holds their parameter at its own value: "
            "chemotherapy_sensitivity_between_study_sd") in text
    assert "no between-study distribution" not in text
