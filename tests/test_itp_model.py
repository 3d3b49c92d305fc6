"""Checks of the bundled ITP model, models/itp_thrombopoiesis.toml (issue 19).

Every number compared against names its source:
- "Hou 1998": plasma TPO in ITP 64 +/- 20 pg/mL vs 52 +/- 12 normal (Br J Haematol
  1998;101:420; ../shared/literature/structural_models.md section 4).
- "Li 1999": TPO clearance 1.24 mL/h per 10^9 platelets (parameters.md).
- "JTH 2020": the first-in-patient hetrombopag ITP study (J Thromb Haemost 2020;18:3053):
  pharmacokinetics "nonlinear with greater than dose-proportional" exposure, 2.5-7.5 mg.
- "Rodeghiero 2009": IWG phases (newly diagnosed < 3 months, persistent 3-12, chronic > 12).
- "construction": the model file solves its initial state as the untreated steady state
  (the model card, Equations), so the state must not move without a dose.
The agreement of this model with scipy's Radau is checked for every bundled model in
tests/test_integrator.py.
"""

from __future__ import annotations

import numpy as np
import pytest

import plateletpd as pp
from plateletpd.demo import itp_phase

MODEL = "itp_thrombopoiesis"
CHRONIC = {"itp_duration_months": 36.0}  # months: chronic ITP (Rodeghiero 2009: > 12)


@pytest.fixture(scope="module")
def model():
    return pp.load_model(MODEL)


def test_untreated_itp_state_is_steady_for_60_days(model):
    # construction: the initial state is the untreated steady state; TPO stays at Hou 1998's
    # ITP mean, 64 pg/mL, and the count at platelets_baseline (13, Mei 2021 median). The
    # tolerance 1e-5 relative is the integrator's (default rtol 1e-6) accumulated over 60 days
    result = pp.simulate(model, None, days=60, covariates=CHRONIC)
    assert result.ok
    np.testing.assert_allclose(result["platelets"], 13.0, rtol=1e-5)
    np.testing.assert_allclose(result["tpo"], 64.0, rtol=1e-5)
    for output in ("megakaryocytes", "progenitors", "autoimmunity", "platelet_production"):
        np.testing.assert_allclose(result[output], result[output][0], rtol=1e-5)


@pytest.mark.parametrize("baseline, destruction", [(3.0, 0.06), (13.0, 0.02), (29.0, 0.005)])
def test_steady_state_holds_across_the_itp_range(model, baseline, destruction):
    # construction, at the ends of the ITP ranges the trials draw: counts 1-29 (Mei 2021
    # Table 1) and survivals 15-211 h (Am J Hematol 1989: destruction 0.06 /h gives ~16 h,
    # 0.005 /h ~140 h)
    result = pp.simulate(model, None, days=30, covariates=CHRONIC,
                         params={"platelets_baseline": baseline,
                                 "immune_destruction": destruction})
    np.testing.assert_allclose(result["platelets"], baseline, rtol=1e-5)
    np.testing.assert_allclose(result["tpo"], 64.0, rtol=1e-5)


def test_tpo_is_only_modestly_raised_because_megakaryocyte_mass_is_preserved(model):
    # Hou 1998: ITP 64 vs normal 52 pg/mL. The model reaches 64 at a count of 13 because the
    # megakaryocyte c-Mpl mass clears what the few platelets do not: it must exceed the
    # healthy one (with the healthy mass, clearance at 13 platelets would give TPO ~150)
    result = pp.simulate(model, None, days=1, covariates=CHRONIC)
    healthy = pp.simulate(model, None, days=1, covariates=CHRONIC,
                          params={"platelets_baseline": 250.0, "immune_destruction": 0.0,
                                  "tpo_baseline": 52.0})
    # construction: the healthy state of the same model has production 1 x healthy
    np.testing.assert_allclose(healthy["production_relative_to_healthy"][0], 1.0, rtol=1e-9)
    np.testing.assert_allclose(healthy["release_efficiency"][0], 1.0, rtol=1e-9)
    ratio = result["megakaryocytes"][0] / healthy["megakaryocytes"][0]
    assert ratio > 1.5  # preserved, in fact enlarged (2.5x with the file's values)
    # impaired production: below healthy although TPO is higher (Ballem 1987; Louwes 1999:
    # 42% of ITP patients have decreased production)
    assert result["production_relative_to_healthy"][0] < 1.0
    assert result["release_efficiency"][0] < 1.0


def test_autoantibody_destruction_shortens_survival_as_measured(model):
    # Louwes 1999 (111In): ITP survival 1.6 +/- 1.4 d and 3.6 +/- 2 d; healthy 205 h
    # (Harker 2000). After production stops (a hypothetical: release efficiency ~0 is not
    # reachable), survival is read from the derived quantities instead: 1/(total exit) chain
    p = dict(zip(model.parameter_names, model.parameter_vector({}, CHRONIC)))
    age = 4 / p["platelet_senescent_lifespan"]
    exit_rate = age + p["platelet_random_destruction"] + p["immune_destruction"]
    q = age / exit_rate
    survival_days = (1 + q + q ** 2 + q ** 3) / exit_rate / 24
    assert 1.6 - 1.4 < survival_days < 3.6 + 2.0  # within the two groups' mean +/- SD


def test_exposure_is_greater_than_dose_proportional(model):
    # JTH 2020: greater than dose-proportional exposure over 2.5-7.5 mg; AUC over day 21
    # (steady state by day 7, Zheng 2017) per mg must rise with the dose
    per_mg = []
    for dose in (2.5, 5.0, 7.5):
        result = pp.simulate(model, f"hetrombopag {dose} mg qd d1-22", days=22,
                             covariates=CHRONIC)
        t = result.times
        day = (t >= 20) & (t <= 21)
        auc = np.trapezoid(result["hetrombopag_concentration"][day], t[day])
        per_mg.append(auc / dose)
    assert per_mg[0] < per_mg[1] < per_mg[2]
    assert per_mg[2] / per_mg[0] > 1.1  # not a rounding effect: the saturable clearance


def test_hetrombopag_exposure_scales_allometrically_with_body_weight(model):
    # the card's assumption (Anderson and Holford 2008, Annu Rev Pharmacol Toxicol 48:303):
    # clearances scale with (weight / 62 kg) ** 0.75. With the saturable clearance off the
    # PK is linear, so a single dose's AUC to infinity is exactly 1000 x dose / CL (ng/mL x
    # h; dose in mg, CL in L/h: 7.66 L/h at 62 kg, Wang Z 2022): 652.7 ng/mL x h for 5 mg
    # at 62 kg, and 2 ** 0.75 = 1.682 times that at 31 kg
    linear = {"het_target_clearance": 0.0}
    times = np.linspace(0.0, 60.0, 60 * 96 + 1)   # days, every 15 minutes; ~0 left by day 60
    auc = {}
    for weight in (62.0, 31.0):
        result = pp.simulate(model, "hetrombopag 5 mg", times=times, params=linear,
                             covariates={**CHRONIC, "body_weight": weight})
        assert result.ok
        auc[weight] = 24.0 * np.trapezoid(result["hetrombopag_concentration"], times)
    assert auc[62.0] == pytest.approx(1000 * 5 / 7.66, rel=1e-3)
    assert auc[31.0] / auc[62.0] == pytest.approx(2 ** 0.75, rel=1e-3)
    # exponents 0 switch the scaling off: a 31 kg patient then has the adult exposure
    off = pp.simulate(model, "hetrombopag 5 mg", times=times,
                      params={**linear, "het_clearance_weight_exponent": 0.0,
                              "het_volume_weight_exponent": 0.0},
                      covariates={**CHRONIC, "body_weight": 31.0})
    assert 24.0 * np.trapezoid(off["hetrombopag_concentration"], times) == pytest.approx(
        auc[62.0], rel=1e-9)


FLUCTUATION = [f"destruction_fluctuation_{ab}{k}" for k in range(1, 6) for ab in "ab"]
PERIODS_WEEKS = (1, 2, 4, 8, 16)  # the card's construction


def test_destruction_fluctuates_with_the_variance_of_its_construction(model):
    # construction (card, "Fluctuation"): log(destruction(t) / destruction(0)) =
    # sd x sum_k w_k (a_k (cos(w_k t) - 1) + b_k sin(w_k t)) with a_k, b_k standard normal, so
    # its variance across patients is 2 sd^2 sum_k w_k^2 (1 - cos(omega_k t)), the weights
    # w_k^2 = u_k / sum u, u_k = tau omega_k / (1 + (tau omega_k)^2). Computed here from
    # those formulas, independently of the model file, against 4000 patients drawn here
    # (the sample variance's relative SE is sqrt(2 / 4000) = 2.2%: 4 SE allowed)
    n = 4000
    draws = np.random.default_rng(7).standard_normal((n, len(FLUCTUATION)))
    params = {name: draws[:, j] for j, name in enumerate(FLUCTUATION)}
    days = np.array([0.0, 3.0, 10.0, 21.0, 56.0])
    batch = pp.simulate_batch(model, None, times=days, params=params, covariates=CHRONIC,
                              n=n)
    rate = np.asarray(batch["immune_destruction_rate"])
    change = np.log(rate[:, 1:] / rate[:, :1])
    sd = model.parameters["destruction_fluctuation_sd"].value
    tau = model.parameters["destruction_fluctuation_time"].value
    omega = 2 * np.pi / np.array(PERIODS_WEEKS)
    u = tau * omega / (1 + (tau * omega) ** 2)
    weeks = days[1:, None] / 7.0
    expected = 2 * sd ** 2 * np.sum(u / u.sum() * (1 - np.cos(omega * weeks)), axis=1)
    np.testing.assert_allclose(change.var(axis=0, ddof=1), expected,
                               rtol=4 * np.sqrt(2 / n))
    np.testing.assert_array_equal(rate[:, 0], rate[0, 0])   # no change at the start
    # with the coefficients at 0 (no [population] cv for them) the rate is constant
    still = pp.simulate(model, None, times=days, covariates=CHRONIC)
    np.testing.assert_array_equal(still["immune_destruction_rate"],
                                  still["immune_destruction_rate"][0])


def test_a_fluctuating_patient_on_hetrombopag_matches_scipy_radau(model):
    # the fluctuation is a smooth function of t: the integrator must follow it as tightly
    # as any other term (solve_ivp Radau, rtol 1e-10, as tests/test_integrator.py)
    from plateletpd.simulation.reference import reference_solution

    params = {name: (1.5 if j % 3 == 0 else -1.0) for j, name in enumerate(FLUCTUATION)}
    times = np.linspace(0, 56, 113)
    regimen = "hetrombopag 5 mg qd d1-42"
    ours = pp.simulate(model, regimen, times=times, params=params, covariates=CHRONIC,
                       solver=pp.TIGHT)
    reference = reference_solution(model, regimen, times=times, params=params,
                                   covariates=CHRONIC, rtol=1e-10, atol=1e-12)
    assert ours.ok
    for output in ("platelets", "immune_destruction_rate", "tpo"):
        expected = reference[output]
        assert np.max(np.abs(ours[output] - expected) / np.abs(expected)) < 1e-6, output


def test_states_stay_non_negative_over_24_weeks(model):
    # an invariant: amounts and counts are never negative, on 7.5 mg daily (the label's
    # maximum) for 24 weeks, newly diagnosed (remission), with fast and with slow destruction
    for params in ({"platelets_baseline": 2.0, "immune_destruction": 0.08},
                   {"platelets_baseline": 29.0, "immune_destruction": 0.004}):
        result = pp.simulate(model, "hetrombopag 7.5 mg qd d1-168", days=168, params=params,
                             covariates={"itp_duration_months": 1.0}, keep_states=True)
        assert result.ok
        for state in model.state_names:
            assert np.min(result[state]) >= 0.0, state
        for output in model.output_names:
            if output != "mpl_stimulation":  # a difference from the start: may be negative
                assert np.min(result[output]) >= 0.0, output


def test_disease_phase_sets_remission(model):
    # Rodeghiero 2009 phases; the model card: newly diagnosed and persistent ITP may remit
    # (remission rates > 0), chronic ITP does not. Untreated for 24 weeks:
    counts = {}
    for months in (1.0, 6.0, 36.0):
        result = pp.simulate(model, None, days=168, covariates={"itp_duration_months": months},
                             params={"remission_rate_newly_diagnosed": 0.02,
                                     "remission_rate_persistent": 0.01})
        counts[months] = result["platelets"][-1]
    np.testing.assert_allclose(counts[36.0], 13.0, rtol=1e-5)  # chronic: steady
    assert counts[1.0] > counts[6.0] > counts[36.0]  # faster remission, higher count


def test_phase_boundaries_follow_iwg_definitions():
    # Rodeghiero 2009: < 3 months newly diagnosed, 3-12 persistent, >= 12 chronic
    phases = itp_phase([0.0, 2.99, 3.0, 11.99, 12.0, 600.0])
    assert list(phases) == ["newly diagnosed", "newly diagnosed", "persistent", "persistent",
                            "chronic", "chronic"]


def test_bad_itp_input_is_a_clear_error(model):
    # a negative ITP duration is outside the covariate's bounds: a clear error naming it
    with pytest.raises(pp.PlateletPDError, match="itp_duration_months"):
        pp.simulate(model, None, days=1, covariates={"itp_duration_months": -1.0})
    with pytest.raises(pp.PlateletPDError, match="platelets_baseline"):
        pp.simulate(model, None, days=1, params={"platelets_baseline": -5.0})
