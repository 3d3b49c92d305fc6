"""Checks of the bundled CIT model, models/cit_thrombopoiesis.toml (issue 3).

Every number compared against names its source. Abbreviations of the sources:
- "parameters.md": ../shared/literature/parameters.md (the project copy is
  docs/literature_parameters.md), which names the original publication of each value.
- "cit_summary.csv": the calibration outcomes, data/cit_summary.csv (copied from
  ../shared/data), by its study id.
- "issue 3": the targets stated in the issue itself (healthy steady state, nadir days 10-14,
  recovery by about day 21-28).
- "hand-computed": arithmetic shown next to the number.
Tolerances are stated with their reason next to each check. Times in results are days;
study day N starts at t = N - 1, chemotherapy is given on day 1 (t = 0).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import plateletpd as pp

CHEMO = "chemotherapy 1 dose d1"
HOURLY_28 = np.arange(0, 28 * 24 + 1) / 24.0
FINE_10 = np.arange(0, 10 * 96 + 1) / 96.0  # every 15 min for 10 days (PK)
BODY_WEIGHT = 65.0  # kg, the model's default subject (assumption stated in the model file)


@pytest.fixture(scope="module")
def model():
    return pp.load_model("cit_thrombopoiesis")


TYPICAL_WEIGHT = {"body_weight": 65.0}  # kg, the model file's default, given explicitly:
# per-kg doses refuse to use a default silently


def run(model, regimen=None, times=HOURLY_28, **params):
    result = pp.simulate(model, regimen, times=times, params=params, covariates=TYPICAL_WEIGHT)
    assert result.ok, result.message
    return result


def peak(result, name):
    """(maximum, time of the maximum in hours) of an output."""
    values = result[name]
    i = int(np.argmax(values))
    return values[i], result.times[i] * 24.0


def half_life(result, name, start_h, end_h):
    """Apparent half-life (h) from a log-linear fit between two times (h)."""
    hours = result.times * 24.0
    window = (hours >= start_h) & (hours <= end_h)
    slope = np.polyfit(hours[window], np.log(result[name][window]), 1)[0]
    return math.log(2) / -slope


def first_time(result, condition, after=0.0):
    """First output time (days) after `after` where `condition(platelets)` holds, or nan."""
    hits = np.flatnonzero(condition(result["platelets"]) & (result.times > after))
    return result.times[hits[0]] if hits.size else math.nan


def cycle_endpoints(result):
    platelets, times = result["platelets"], result.times
    i = int(np.argmin(platelets))
    below_75 = first_time(result, lambda p: p < 75)
    below_50 = first_time(result, lambda p: p <= 50)
    back_100 = first_time(result, lambda p: p >= 100, after=times[i])
    window = times <= 21
    return {"nadir": platelets[i], "nadir_time": times[i], "below_75": below_75,
            "below_50": below_50, "back_100": back_100,
            "auc_0_21": np.trapezoid(platelets[window], times[window])}


# ---------------------------------------------------------------------------- healthy state
def test_healthy_steady_state_holds_for_60_days_at_literature_baselines(model):
    result = pp.simulate(model, None, days=60, solver=pp.TIGHT, keep_states=True)
    states = result.states[0]
    drift = np.abs(states - states[0]) / np.maximum(np.abs(states[0]), 1e-12)
    assert drift.max() < 1e-9  # exact closed-form initial state: only rounding may move it
    # Harker 2000 (parameters.md): healthy platelets 237 +/- 41 x10^9/L; issue 3: ~250
    assert np.all(np.abs(result["platelets"] - 250.0) < 1e-6)
    assert abs(result["platelets"][0] - 237.0) <= 41.0
    # Hou 1998 (parameters.md): plasma TPO 52 +/- 12 pg/mL in health; issue 3: 50-100
    assert np.all(np.abs(result["tpo"] - 52.0) < 1e-6)
    assert result["proliferation_factor"] == pytest.approx(1.0, abs=1e-12)


def test_platelet_survival_and_turnover_match_harker(model):
    # mean survival of the 4 age compartments with random loss: sum over compartments of
    # (probability of reaching it) / (exit rate), hand-computed from the model's parameters
    p = {name: par.value for name, par in model.parameters.items()}
    age = 4.0 / p["platelet_senescent_lifespan"]
    exit_rate = age + p["platelet_random_destruction"]
    survival_h = sum((age / exit_rate) ** i for i in range(4)) / exit_rate
    # Harker 2000 (parameters.md): 205 +/- 18 h (111In-labelled autologous platelets);
    # tolerance 2 h: the random-destruction rate was solved for this value
    assert survival_h == pytest.approx(205.0, abs=2.0)
    # senescent lifespan within "8-10 days" (issue 3); Wang 2010's lifespan-model value is 253 h
    assert 8 * 24 <= p["platelet_senescent_lifespan"] <= 10 * 24
    # turnover 250 / 8.5 d = 29 x10^9/L/d; Harker's 43.9 +/- 11.9 x10^3/uL/d is corrected
    # for the ~1/3 splenic pool (43.9 * 2/3 = 29.3), which the model does not hold separately
    assert 250.0 / (survival_h / 24.0) == pytest.approx(43.9 * 2 / 3, rel=0.1)


def test_tpo_clearance_is_platelet_dominated_and_matches_rhtpo_clearance(model):
    result = run(model, times=[0.0])
    total = result["tpo_clearance"][0]
    # Shen 2005 (parameters.md): rhTPO apparent clearance 0.034 L/h/kg; 1% tolerance for the
    # rounding of the calibrated MK clearance (1.28 mL/h per 10^9 platelet equivalents)
    assert total == pytest.approx(0.034 * BODY_WEIGHT, rel=0.01)
    # Li 1999 (parameters.md): 1.24 mL/h per 10^9 platelets, ~1.5 L/h at 250 x10^9/L in
    # ~5 L of blood (here 0.075 L/kg * 65 kg = 4.875 L: 1.24e-3 * 250 * 4.875 = 1.51 L/h)
    platelet_part = 1.24e-3 * 250.0 * 0.075 * BODY_WEIGHT
    assert platelet_part == pytest.approx(1.5, rel=0.02)
    assert 0.6 < platelet_part / total < 0.75  # platelets are the main TPO sink (Li 1999)


# ---------------------------------------------------------------------------- PK
def test_rhtpo_sc_pk_matches_published_summary(model):
    result = run(model, "rhTPO 1 ug/kg d1", times=FINE_10)
    cmax, tmax = peak(result, "rhtpo_concentration")
    # Chin J Clin Pharmacol 2001 (parameters.md), 1.0 ug/kg SC in healthy volunteers:
    # Cmax 0.438 ug/L; 15% tolerance: mean of a small cohort (CV of SC Cmax ~30%)
    assert cmax == pytest.approx(0.438, rel=0.15)
    # Tmax 10.8 h; +/- 2 h: the mean Tmax of 0.5-2 ug/kg spans 9.0-11.8 h
    assert tmax == pytest.approx(10.8, abs=2.0)
    # t1/2 40 h (46/40/39 h across doses; Shen 2005: 47-52 h): accept 32-52 h
    assert 32.0 <= half_life(result, "rhtpo_concentration", 48, 144) <= 52.0
    # Shen 2005 (parameters.md): CL/F 0.034 L/h/kg = 1 ug/kg / 29.7 ug.h/L -> AUC 29.7 ug.h/L;
    # 15%: the platelet-mediated clearance rises as the dose raises platelets after day 4
    auc = np.trapezoid(result["rhtpo_concentration"], result.times * 24.0)
    assert auc == pytest.approx(29.7, rel=0.15)
    # 2.0 ug/kg: Cmax 0.831 ug/L, same 15% (0.5 ug/kg, 0.298 ug/L, is 1.36x the linear
    # expectation from the 1 ug/kg mean; a linear model cannot follow it, see the card)
    high = run(model, "rhTPO 2 ug/kg d1", times=FINE_10)
    assert peak(high, "rhtpo_concentration")[0] == pytest.approx(0.831, rel=0.15)


def test_rhtpo_units_follow_the_specific_activity(model):
    # parameters.md: 280,000 IU/mg, so 15,000 U = 53.57 ug and 300 U/kg at 65 kg = 19,500 U
    by_units = run(model, "rhTPO 15000 U d1", times=[0.5, 1.0])
    by_mass = run(model, f"rhTPO {15000 / 280000 * 1000} ug d1", times=[0.5, 1.0])
    np.testing.assert_allclose(by_units["rhtpo_concentration"], by_mass["rhtpo_concentration"],
                               rtol=1e-12)
    per_kg = run(model, "rhTPO 300 U/kg d1", times=[0.5, 1.0])  # default body weight 65 kg
    absolute = run(model, "rhTPO 19500 U d1", times=[0.5, 1.0])
    np.testing.assert_allclose(per_kg["rhtpo_concentration"], absolute["rhtpo_concentration"],
                               rtol=1e-12)


def test_rhil11_sc_pk_matches_published_summary(model):
    result = run(model, "rhIL-11 50 ug/kg d1", times=FINE_10)
    cmax, tmax = peak(result, "il11_concentration")
    # Aoyama 1997 / monograph (parameters.md), 50 ug/kg SC: Cmax 17.4 +/- 5.4 ng/mL; 15%
    # (about half the SD): a one-compartment curve cannot hit the mean Cmax, Tmax and t1/2
    # of individual analyses at once, and the fit weighs all three
    assert cmax == pytest.approx(17.4, rel=0.15)
    assert abs(tmax - 3.2) <= 2.4        # Tmax 3.2 +/- 2.4 h: within 1 SD
    assert abs(half_life(result, "il11_concentration", 12, 36) - 6.9) <= 1.7  # 6.9 +/- 1.7 h
    auc = np.trapezoid(result["il11_concentration"], result.times * 24.0)
    assert auc == pytest.approx(189.0, rel=0.05)  # AUC 189 +/- 41: clearance was derived from it


def test_hetrombopag_pk_tmax_and_half_life(model):
    result = run(model, "hetrombopag 7.5 mg d1", times=FINE_10)
    _, tmax = peak(result, "hetrombopag_concentration")
    # Zheng 2017 (parameters.md): Tmax "about 8 h"; +/- 1.5 h, about the spacing of PK
    # samples around a Tmax of 8 h (assumption: the sampling times are not in the sources)
    assert tmax == pytest.approx(8.0, abs=1.5)
    # Zheng 2017: t1/2 11.9-40.1 h across 5-40 mg
    assert 11.9 <= half_life(result, "hetrombopag_concentration", 24, 96) <= 40.1
    # Wang Z 2022 (parameters.md): CL/F 7.66 L/h -> AUC = 7.5 mg / 7.66 L/h = 979 ng.h/mL
    auc = np.trapezoid(result["hetrombopag_concentration"], result.times * 24.0)
    assert auc == pytest.approx(7.5 / 7.66 * 1000, rel=0.02)  # 2%: tail beyond 10 days


# ---------------------------------------------------------------------------- PD, healthy
@pytest.mark.parametrize("relative_bioavailability, published, tolerance", [
    # Yang 2020 (cit_summary.csv healthy_hetrombopag_2020): +15.8% on day 6, fasted. The
    # potency het_ec50 was calibrated to it: 1 percentage point covers rounding of het_ec50.
    (1.0, 15.8, 1.0),
    # Not calibrated: meal 1 h / 2 h after the dose cut AUC by 74.6% / 61% (parameters.md,
    # Yang 2020), platelets +6.96% / +10.26%. 3 points: a day-6 mean of 15 subjects, SD not
    # reported; with a platelet CV ~15% its standard error is about 3-4 points.
    (1 - 0.746, 6.96, 3.0),
    (1 - 0.61, 10.26, 3.0),
])
def test_single_hetrombopag_dose_in_healthy_volunteers(model, relative_bioavailability,
                                                       published, tolerance):
    result = run(model, "hetrombopag 7.5 mg d1", times=np.arange(0, 29.0),
                 het_relative_bioavailability=relative_bioavailability)
    rise = (result["platelets"][5] / result["platelets"][0] - 1) * 100  # day 6 = t of 5 days
    assert rise == pytest.approx(published, abs=tolerance)


def test_single_rhtpo_dose_raises_platelets_from_day_4_with_a_peak_near_day_12(model):
    result = run(model, "rhTPO 1 ug/kg d1", times=np.arange(0, 29.0))
    rise = result["platelets"] / result["platelets"][0] - 1
    # Vadhan-Raj 1997 / Mei 2021 (parameters.md): the rise begins by day 4 and peaks about
    # day 12 after a single dose; accept a visible rise (>= 2%) by day 4 (t = 3 d) and a peak
    # on day 10-16
    assert rise[3] >= 0.02
    assert 10 <= int(np.argmax(rise)) + 1 <= 16


# ---------------------------------------------------------------------------- chemotherapy
def test_untreated_cycle_nadir_and_spontaneous_recovery(model):
    cycle = cycle_endpoints(run(model, CHEMO, times=np.arange(0, 42 * 24 + 1) / 24.0))
    # cit_summary.csv nsclc_rhtpo_2011 control cycle: nadir 28 +/- 13 x10^9/L (the default
    # sensitivity 5.5 was chosen for it): within 1 SD
    assert abs(cycle["nadir"] - 28.0) <= 13.0
    assert 10.0 <= cycle["nadir_time"] <= 14.0          # issue 3: nadir around days 10-14
    assert 17.0 <= cycle["back_100"] <= 27.0            # issue 3: recovery by about day 21-28
    # cit_summary.csv gi_rhil11 control: PLT < 75 -> >= 100 in 12.2 d, <= 50 -> >= 100 in
    # 12.9 d; nsclc control: thrombocytopenia 12 +/- 3 d. Tolerance 3 d (that SD).
    assert cycle["back_100"] - cycle["below_75"] == pytest.approx(12.2, abs=3.0)
    assert cycle["back_100"] - cycle["below_50"] == pytest.approx(12.9, abs=3.0)
    # nsclc control: platelet AUC days 0-21 2063 +/- 436 (10^9/L x day): within 1 SD
    assert abs(cycle["auc_0_21"] - 2063.0) <= 436.0


def test_sensitivity_sets_the_depth_so_any_entry_count_can_be_reached(model):
    nadirs = [run(model, CHEMO, chemotherapy_sensitivity=s)["platelets"].min()
              for s in (0.5, 2.5, 4.0, 5.5, 7.0, 9.0)]
    assert np.all(np.diff(nadirs) < 0)  # deeper with sensitivity, monotonically
    assert nadirs[0] > 150 and nadirs[-1] < 25  # from no CIT to grade 4 (CTCAE v5: < 25)
    # cit_summary.csv heme_rhtpo_selfcontrol control cycle: nadir 9.4 +/- 2.9; sensitivity 9
    assert abs(nadirs[-1] - 9.4) <= 2.9


def test_tpo_rises_as_the_platelet_mass_falls(model):
    typical = run(model, CHEMO)
    # TPO and platelets move in opposite directions through the fall (Hou 1998: TPO inverse
    # to the platelet count)
    falling = typical.times <= typical.times[np.argmin(typical["platelets"])]
    assert np.corrcoef(typical["platelets"][falling], typical["tpo"][falling])[0, 1] < -0.8
    assert typical["tpo"].max() > 5 * 52.0
    deep = run(model, CHEMO, chemotherapy_sensitivity=9.0)  # nadir ~10, haematological CIT
    # Hou 1998 (parameters.md): 1950 +/- 1684 pg/mL in chemotherapy marrow hypoplasia. The
    # model reaches ~800 pg/mL at a nadir of ~10: within 1 SD of the mean but below the point
    # estimate (a linear platelet sink caps TPO near baseline x PLT0/PLT; see the card)
    assert 1950 - 1684 <= deep["tpo"].max() <= 1950 + 1684
    assert deep["tpo"].max() > 10 * 52.0


# ---------------------------------------------------------------------------- treatment
def test_rhtpo_prophylaxis_and_rhil11_treatment_move_the_cycle_as_reported(model):
    control = cycle_endpoints(run(model, CHEMO))
    # cit_summary.csv nsclc_rhtpo_2011: rhTPO 300 U/kg on days 2, 4, 6, 9 raised the nadir
    # from 28 +/- 13 to 56 +/- 16 x10^9/L. Not fitted (tpo_emax was chosen with it in view):
    # within 1 SD of the treated mean.
    treated = run(model, CHEMO + " + rhTPO 300 U/kg d2,4,6,9")
    assert treated["platelets"].min() == pytest.approx(56.0, abs=16.0)
    assert treated["platelets"].min() > control["nadir"] + 10
    # cit_summary.csv gi_rhil11: rhIL-11 25 ug/kg/d from PLT < 75 shortened the time to
    # >= 100 from 12.2 to 8.1 d (il11_emax_proliferation calibrated to it): +/- 1 d
    start_day = math.floor(control["below_75"]) + 2  # the study day after the fall below 75
    il11 = cycle_endpoints(run(model, CHEMO + f" + rhIL-11 25 ug/kg qd d{start_day}-{start_day + 13}"))
    shortened = (control["back_100"] - control["below_75"]) - (il11["back_100"] - il11["below_75"])
    assert shortened == pytest.approx(12.2 - 8.1, abs=1.0)


def test_hetrombopag_plus_rhtpo_beats_either_alone(model):
    # therapeutic start the day after PLT < 75 (day 9 for the typical patient), 7 days
    arms = {name: run(model, CHEMO + regimen) for name, regimen in {
        "het": " + hetrombopag 7.5 mg qd d9-15",
        "rhtpo": " + rhTPO 15000 U qd d9-15",
        "both": " + hetrombopag 7.5 mg qd d9-15 + rhTPO 15000 U qd d9-15",
        "none": ""}.items()}
    window = (HOURLY_28 >= 8) & (HOURLY_28 <= 21)
    auc = {k: np.trapezoid(r["platelets"][window], HOURLY_28[window]) for k, r in arms.items()}
    day15 = {k: r["platelets"][14 * 24] for k, r in arms.items()}
    # Yuan 2025 (cit_summary.csv): the combination is superior on day 7 and day 14 PLT
    assert auc["both"] > max(auc["het"], auc["rhtpo"]) > auc["none"]
    assert day15["both"] > max(day15["het"], day15["rhtpo"]) > day15["none"]
    # no competition between the two sites: hetrombopag's stimulation is the same with or
    # without rhTPO (Xie 2018: additive with TPO), so no interaction term is needed
    np.testing.assert_allclose(arms["both"]["hetrombopag_stimulation"],
                               arms["het"]["hetrombopag_stimulation"], rtol=1e-6,
                               atol=1e-6)  # equal up to the default solver tolerance


def test_doubling_endogenous_tpo_shrinks_rhtpos_added_effect_but_not_hetrombopags(model):
    # healthy subjects whose TPO set point is 52 or 104 pg/mL (Hou 1998 plasma, and twice it),
    # one week of each drug. rhTPO shares the TPO site, so its added receptor stimulation is
    # smaller on a higher endogenous TPO; hetrombopag acts at the transmembrane site (Xie 2018)
    # so its added stimulation does not change at all.
    def effect(regimen, tpo):
        base = run(model, None, tpo_baseline=tpo)
        treated = run(model, regimen, tpo_baseline=tpo)
        week = HOURLY_28 < 7
        return {"stimulation": treated["rhtpo_stimulation"][week].mean()
                + treated["hetrombopag_stimulation"][week].mean(),
                "platelets": np.trapezoid(treated["platelets"] - base["platelets"], HOURLY_28)}

    rhtpo = {tpo: effect("rhTPO 15000 U qd d1-7", tpo) for tpo in (52.0, 104.0)}
    het = {tpo: effect("hetrombopag 7.5 mg qd d1-7", tpo) for tpo in (52.0, 104.0)}
    assert rhtpo[104.0]["stimulation"] < 0.95 * rhtpo[52.0]["stimulation"]
    assert het[104.0]["stimulation"] == pytest.approx(het[52.0]["stimulation"], rel=1e-9)
    # on platelets, rhTPO loses more than hetrombopag. Hetrombopag's platelet effect may move
    # a little (the homeostatic withdrawal of endogenous stimulation is larger at a higher
    # set point): it must stay within 10%
    rhtpo_loss = 1 - rhtpo[104.0]["platelets"] / rhtpo[52.0]["platelets"]
    het_loss = 1 - het[104.0]["platelets"] / het[52.0]["platelets"]
    assert rhtpo_loss > 0.1
    assert het_loss < 0.1
    assert rhtpo_loss > het_loss + 0.05


@pytest.mark.parametrize("drug, unit, clinical_dose", [
    ("hetrombopag", "mg", 7.5),        # parameters.md: CIT dose 7.5 mg/d
    ("rhTPO", "U", 15000.0),           # parameters.md: 15,000 U/d
    ("rhIL-11", "ug/kg", 50.0),        # parameters.md: 50 ug/kg/d
])
def test_each_drug_effect_rises_with_dose_and_saturates(model, drug, unit, clinical_dose):
    base = run(model, None)
    doses = [clinical_dose * 2.0 ** k for k in range(-3, 7)]  # 1/8 to 64 x the clinical dose
    effects = []
    for dose in doses:
        treated = run(model, f"{drug} {dose} {unit} qd d1-7")  # one week, healthy subject
        effects.append(np.trapezoid(treated["platelets"] - base["platelets"], HOURLY_28))
    effects = np.array(effects)
    gain_per_doubling = effects[1:] / effects[:-1]
    assert np.all(effects > 0) and np.all(np.diff(effects) > 0)   # rises with dose
    assert np.all(np.diff(gain_per_doubling) < 0)                 # ever smaller gains
    assert gain_per_doubling[-1] < 1.15                           # saturated at 32-64x


def test_states_stay_non_negative_under_chemotherapy_and_all_drugs(model):
    result = pp.simulate(model, CHEMO + " + hetrombopag 7.5 mg qd d2-15 + rhTPO 15000 U qd "
                         "d2-15 + rhIL-11 50 ug/kg qd d2-15", days=42, keep_states=True,
                         params={"chemotherapy_sensitivity": 9.0}, covariates=TYPICAL_WEIGHT)
    assert result.ok
    states = result.states[0]
    scale = np.maximum(np.abs(states).max(axis=0), 1e-300)
    assert np.all(states >= -1e-9 * scale)  # non-negative up to integration round-off
    assert np.all(np.isfinite(result.outputs))


# ---------------------------------------------------------------------------- structure
@pytest.mark.parametrize("compartments", range(1, 9))
def test_any_number_of_megakaryocyte_compartments_is_a_steady_state(model, compartments):
    result = pp.simulate(model, None, days=60, keep_states=True,
                         params={"mk_compartments": compartments})
    states = result.states[0]
    active = [f"mk{i}" for i in range(1, compartments + 1)]
    idle = [f"mk{i}" for i in range(compartments + 1, 9)]
    index = {name: i for i, name in enumerate(result.state_names)}
    assert np.abs(result["platelets"] - 250.0).max() < 1e-6
    assert all(states[0, index[n]] > 0 for n in active)
    assert all(np.all(states[:, index[n]] == 0) for n in idle)


def test_megakaryocyte_transit_time_moves_the_nadir(model):
    def nadir_time(mtt):
        result = run(model, CHEMO, mk_transit_time=mtt)
        return result.times[np.argmin(result["platelets"])]

    assert nadir_time(100.0) < nadir_time(142.0) < nadir_time(180.0)


def test_empirical_feedback_switch_replaces_the_tpo_feedback(model):
    # feedback_mode = 1: Friberg's (circ0/circ)^gamma drives the endogenous part instead of
    # TPO (gamma 0.19, Wang E 2020 via parameters.md); the healthy state still holds
    steady = pp.simulate(model, None, days=60, params={"feedback_mode": 1.0})
    assert np.abs(steady["platelets"] - 250.0).max() < 1e-6
    friberg = run(model, CHEMO, feedback_mode=1.0)
    # the TPO potency no longer matters for the untreated course ...
    other_ec50 = run(model, CHEMO, feedback_mode=1.0, tpo_ec50=2000.0)
    np.testing.assert_allclose(friberg["platelets"], other_ec50["platelets"], rtol=1e-9)
    # ... the exponent does: no feedback (gamma 0) recovers later than gamma 0.19
    flat = run(model, CHEMO, feedback_mode=1.0, friberg_gamma=0.0)
    assert first_time(flat, lambda p: p >= 100, after=14) > \
        first_time(friberg, lambda p: p >= 100, after=14)
    # and the two feedback forms give cycles of similar shape (nadir within 25%)
    mechanistic = run(model, CHEMO)
    assert friberg["platelets"].min() == pytest.approx(mechanistic["platelets"].min(), rel=0.25)
