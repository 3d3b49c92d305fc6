"""The science checks of issue 17 (item 4) on the marrow-reserve CIT model,
models/cit_marrow_reserve.toml, run the way a user would run them: virtual cohorts drawn by
the population module from an explicit seed, chemotherapy courses, delay rules and
eligibility on the simulated history through plateletpd.study.cycles, treatment arms under
the stop rules of trials/yuan2025.toml through plateletpd.study.cohort, endpoints through
the endpoint registry.

Every target names its source:
- "issue 17": the targets the issue states for each check;
- "cit_summary.csv": data/cit_summary.csv by study id (copied from ../shared/data);
- "parameters.md" / "structural_models.md": ../shared/literature/.
The model runs at its file values (literature priors; nothing here is fitted to these
checks except where a test says so). The between-patient spread is stated once
(POPULATION_CV, models/cit_marrow_reserve.md "Between-patient variability"), and no study
gets a parameter of its own. A check the model does not yet pass is an xfail(strict=True)
whose reason holds the measured numbers: it turns into a failure the day it passes, so the
marker has to be removed then.

Times in results are days; chemotherapy cycle 1 on day 0 (study day 1).
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

import plateletpd as pp
from plateletpd.model.library import (
    default_fit,
    load_fit_record,
    load_fitted_parameters,
)
from plateletpd.numerics.kernels import initial_state, python_rhs
from plateletpd.simulation.reference import reference_solution
from plateletpd.study.cohort import ArmDesign
from plateletpd.study.cycles import ChemotherapyCourse, HistoryRule, simulate_course_arm
from plateletpd.study.endpoints import ResponseRule, subject_values

MODEL_PATH = "models/cit_marrow_reserve.toml"
WEIGHT = {"body_weight": 65.0}  # kg, the model file's default subject, given explicitly
# log-normal between-patient CVs (models/cit_marrow_reserve.md, "Between-patient
# variability"): depth of the kill 30% (as fits/cit_calibration: NSCLC control nadir
# 28 +/- 13 in cit_summary.csv), baseline platelets 17% (Harker 2000: 237 +/- 41),
# regeneration of the reserve (recovery speed) 200% and the reserve's share of the kill 50%
# (believed: prior treatment, age, marrow infiltration; the Soff 2019 observation arm of
# n = 8 cannot bound the regeneration spread, see the card's identifiability section)
POPULATION_CV = {"chemotherapy_sensitivity": 0.30, "platelets_baseline": 0.17,
                 "reserve_regeneration_rate": 2.0, "reserve_cycling_fraction": 0.50}
# carboplatin-like single-agent cycle: the dose at which about a quarter of the cohort falls
# below 50 (carboplatin label, cit_summary.csv carboplatin_label_natural_history: PLT < 50
# in 25% of patients); tested below so that the definition is explicit
CARBOPLATIN_DOSE = 0.85
# Yuan 2025 design (trials/yuan2025.toml, fits/cit_calibration/config.toml): treated from
# the day after PLT < 75, daily until PLT >= 100 or a rise >= 50, at most 14 days; response
# = PLT >= 100 or a rise >= 50 within 14 days (parameters.md: usual Chinese CIT definition)
YUAN_ARMS = {"rhTPO": ("rhTPO 15000 U",), "hetrombopag": ("hetrombopag 7.5 mg",),
             "hetrombopag+rhTPO": ("hetrombopag 7.5 mg", "rhTPO 15000 U"),
             "rhIL-11": ("rhIL-11 25 ug/kg",)}


@pytest.fixture(scope="module")
def model():
    return pp.load_model(MODEL_PATH)


def cohort(model, n, seed):
    """Parameter vectors of ``n`` virtual patients (median = the model's typical values)."""
    variability = pp.Variability.from_cv(POPULATION_CV)
    base = model.parameter_vector(None, WEIGHT)
    vectors = pp.cohort_matrix(model, base, variability, variability.eta(n, seed))
    # draws are clipped to the model file's bounds (a fraction of the reserve is at most 1;
    # a 3-SD regeneration draw at CV 200% passes the file's upper bound)
    for name in POPULATION_CV:
        column = list(model.parameters).index(name)
        declared = model.parameters[name]
        vectors[:, column] = np.clip(vectors[:, column], declared.lower, declared.upper)
    return vectors


def as_columns(model, vectors):
    return {name: vectors[:, i] for i, name in enumerate(model.parameters)}


# ---------------------------------------------------------------- steady state, positivity
@pytest.fixture(scope="module", params=["model file", "bundled fit"])
def either(request):
    """The model file's values and the bundled fit (what a user runs), for checks that
    must hold for both."""
    return request.getfixturevalue("model" if request.param == "model file" else
                                   "calibrated")


def test_healthy_state_is_a_steady_state(either):
    model = either
    p = model.parameter_vector(None, WEIGHT)
    y = initial_state(model, p)
    dydt = python_rhs(model)(0.0, y, p, np.zeros(len(y)))
    # the closed-form initial state: every derivative vanishes up to rounding
    assert np.max(np.abs(dydt) / np.maximum(np.abs(y), 1.0)) < 1e-12
    result = pp.simulate(model, None, days=90, solver=pp.TIGHT, covariates=WEIGHT)
    # parameters.md: Harker 2000 healthy 237 +/- 41 (model baseline 250); Hou 1998 TPO 52 pg/mL
    baseline = model.parameters["platelets_baseline"].value
    tpo = model.parameters["tpo_baseline"].value
    assert (baseline, tpo) == (250.0, 52.0)  # neither is fitted
    assert np.allclose(result["platelets"], baseline, rtol=1e-9)
    assert np.allclose(result["tpo"], tpo, rtol=1e-9)
    # and an independent solver: scipy Radau at rtol 1e-12 holds both to 1e-12
    reference = reference_solution(model, None, days=90, covariates=WEIGHT, rtol=1e-12,
                                   atol=1e-14)
    assert np.allclose(reference["tpo"], tpo, rtol=1e-12)
    assert np.allclose(reference["platelets"], baseline, rtol=1e-12)


def test_every_state_stays_non_negative_in_a_heavy_course_with_every_drug(either):
    model = either
    regimen = ("chemotherapy 2 dose q14d x6 + hetrombopag 15 mg qd d2-60 + "
               "rhTPO 30000 U qd d2-60 + rhIL-11 50 ug/kg qd d2-60 + platelet_transfusion "
               "1 dose d20")
    result = pp.simulate_batch(model, regimen, times=np.linspace(0, 90, 361),
                               params=as_columns(model, cohort(model, 50, 1)),
                               covariates=WEIGHT, keep_states=True,
                               solver=pp.DormandPrince5(rtol=1e-8, atol=1e-12))
    assert result.success.all()
    # first-order losses and log-kill cannot cross zero; only integration error below the
    # absolute tolerance 1e-12 may
    assert result.states.min() > -1e-10


# ---------------------------------------------------------------- one carboplatin-like cycle
@pytest.fixture(scope="module")
def carboplatin(either):
    # the model file's values, and the bundled fit at a new study's typical damage (what a
    # user runs): the checks hold for both
    model = either
    vectors = cohort(model, 1000, 17)
    times = np.arange(0, 43, 0.25)
    result = pp.simulate_batch(model, f"chemotherapy {CARBOPLATIN_DOSE} dose d1", times=times,
                               params=as_columns(model, vectors), covariates=WEIGHT)
    assert result.success.all()
    return times, result.output("platelets")


def test_carboplatin_like_cycle_is_defined_by_the_label_grade_3_rate(carboplatin):
    _, platelets = carboplatin
    # carboplatin label (cit_summary.csv): PLT < 50 in 25% of patients; within 10 points
    assert abs((platelets.min(axis=1) < 50).mean() - 0.25) < 0.10


def test_carboplatin_like_cycle_nadir_between_days_14_and_21_and_recovery_by_day_28(
        carboplatin):
    times, platelets = carboplatin
    window = times < 35
    study_day = times[window][platelets[:, window].argmin(axis=1)] + 1
    # carboplatin label (cit_summary.csv): nadir usually on days 14-21; issue 17: the median
    assert 14 <= np.median(study_day) <= 21
    # carboplatin label: 90% above 100 by day 28; issue 17: at least 80%
    assert (platelets[:, np.searchsorted(times, 27.0)] > 100).mean() >= 0.80


def test_untreated_post_recovery_peak_is_modest_in_the_median_patient(carboplatin):
    times, platelets = carboplatin
    nadir = platelets[:, times < 35].argmin(axis=1)
    peak = np.array([row[i:].max() for row, i in zip(platelets, nadir)])
    # issue 17: at most 1.5 x the patient's own baseline in the median patient
    assert np.median(peak / platelets[:, 0]) <= 1.5


# ---------------------------------------------------------------- c-Mpl knockout
def knockout_fraction(model, days: float = 6000.0, production: bool = False) -> float:
    """The steady-state count, as a fraction of the healthy one, of the same patient with no
    c-Mpl signal (a c-Mpl knockout; with no drug also a TPO knockout): ``model``'s file with
    the receptor's summed input set to 0, in either feedback mode, at ``model``'s parameter
    values (also scripts/structure_probes.py). With ``production`` the knockout's
    production factor instead."""
    text = Path(model.path).read_text()
    lines = [row for row in text.splitlines() if row.startswith("receptor_input = ")]
    if len(lines) != 1:
        raise ValueError(f"{model.path}: expected one line 'receptor_input = ...' (the c-Mpl "
                         f"signal's summed input) to knock out, found {len(lines)}")
    knockout = pp.parse_model(text.replace(lines[0], 'receptor_input = "0.0 * tpo"'),
                              f"knockout of {model.path}")
    values = {name: model.parameters[name].value for name in knockout.parameters}
    result = pp.simulate(knockout, None, times=[0.0, days - 1000.0, days], params=values,
                         covariates=WEIGHT)
    platelets = np.asarray(result["platelets"])
    # settled: the last thousand days move the count by less than 0.1% of it
    assert abs(platelets[-1] - platelets[-2]) < 1e-3 * platelets[-1]
    if production:
        return float(np.asarray(result["production_factor"])[-1])
    return float(platelets[-1] / platelets[0])


@pytest.mark.parametrize("tpo_ec50, ceiling", [(520.0, 11.0), (575.0, 11.0), (520.0, 10.0),
                                               (700.0, 11.0)])
def test_a_knockout_makes_what_the_production_form_gives_at_zero_signal(model, tpo_ec50,
                                                                        ceiling):
    # the knockout helper against the model file's formulas written out (no simulation):
    # production 1 + (ceiling - 1)(s - s0)/(1 - s0) at s = 0, s0 = o0 / (1 + o0^n)^(1/n),
    # o0 = 52 / (tpo_ec50 + 52), floored at 0.01; the values are the card's candidates
    values = {"tpo_ec50": tpo_ec50, "mpl_production_ceiling": ceiling}
    n = model.parameters["mpl_saturation_exponent"].value
    baseline_tpo = model.parameters["tpo_baseline"].value
    o0 = baseline_tpo / (tpo_ec50 + baseline_tpo)
    s0 = o0 / (1 + o0 ** n) ** (1 / n)
    expected = max(1 - (ceiling - 1) * s0 / (1 - s0), 0.01)
    knockout = knockout_fraction(model.with_parameters(values), production=True)
    assert knockout == pytest.approx(expected, rel=1e-6)


def assert_knockout_keeps_a_tenth_of_the_platelets(model):
    # mice lacking c-Mpl: an 85% decrease in platelets and megakaryocytes (Gurney 1994,
    # Science 265:1445); lacking TPO or c-Mpl: a 90% reduction (Bunting 1997, Blood 90:3423):
    # 10-15% of the healthy count is kept with no TPO-site signal at all
    fraction = knockout_fraction(model)
    assert 0.10 <= fraction <= 0.15, fraction


@pytest.mark.xfail(strict=True, reason=(
    "measured 2026-12-07 (fifty-third session): the model file's tpo_ec50 700 with the "
    "ceiling 11 keeps 30.6% of the healthy count in a knockout; this production form keeps "
    "10-15% at tpo_ec50 563-589 with the ceiling 11, or at 520 with a ceiling near 10 "
    "(13.0%). models/cit_marrow_reserve.md, 'Open finding: the c-Mpl knockout'"))
def test_a_c_mpl_knockout_keeps_a_tenth_of_the_platelets(model):
    assert_knockout_keeps_a_tenth_of_the_platelets(model)


@pytest.mark.xfail(strict=True, reason=(
    "measured 2026-12-07 (fifty-third session): the bundled fit's tpo_ec50 520, the "
    "structural bound 52 x (ceiling - 1) onto which the exploratory fits ran, makes "
    "production at zero signal 0: a knockout keeps 1.3%. Refitted with tpo_ec50 575 "
    "(12.4%) the Soff check fails (30.1%) and four cycles still do not deepen (53.2, 53.8, "
    "52.2, 51.3); with the ceiling 10 instead (13.0%) chi-square 168 against 158.4, Soff "
    "27.7%, four cycles 56.4, 57.2, 55.8, 54.6; models/cit_marrow_reserve.md, 'Open "
    "finding: the c-Mpl knockout'"))
def test_calibrated_c_mpl_knockout_keeps_a_tenth_of_the_platelets(calibrated):
    assert_knockout_keeps_a_tenth_of_the_platelets(calibrated)


# ---------------------------------------------------------------- four cycles
def four_cycle_nadirs(model) -> list[np.ndarray]:
    """Each patient's nadir in each of four 21-day cycles of one dose, 500 patients at a new
    study's typical damage (also scripts/structure_probes.py's panel)."""
    course = ChemotherapyCourse(regimen="chemotherapy 1 dose", cycle_days=21, cycles=4,
                                follow_up_days=21, points_per_day=4)
    arm = simulate_course_arm(model, ArmDesign(name="chemotherapy only", entry_below=None),
                              course, cohort(model, 500, 18))
    result = arm.extra["course"]
    assert not result.failed.any()
    return [result.nadir(cycle) for cycle in (1, 2, 3, 4)]


def assert_nadirs_deepen_over_four_cycles(model):
    medians = [np.median(nadirs) for nadirs in four_cycle_nadirs(model)]
    # Engel 1999 (structural_models.md 4) and NHL-B CHOP/CHOEP (cit_summary.csv
    # nhlb_chop_cumulative_thrombocytopenia: grade 4 in 0% at cycles 1-2, 10.1% at cycle 6):
    # thrombocytopenia accumulates from cycle to cycle
    assert all(later < earlier for earlier, later in pairwise(medians)), medians


def test_nadirs_deepen_over_four_cycles(model):
    # the model file's values (chemotherapy damage 4.0, the reserve's share of the kill 0.15)
    assert_nadirs_deepen_over_four_cycles(model)


@pytest.mark.xfail(strict=True, reason=(
    "measured 2026-12-05 (fortieth session) with the bundled fit at a new study's typical "
    "damage (4.30, the reserve's share of the kill 0.111), the same 500 patients: median "
    "nadirs 54.0, 55.0, 53.1, 52.3 (2,000 patients, seed 5: 56.1, 57.4, 56.2, 55.1): the "
    "second cycle is milder than the first (median paired difference +2.8 to +3.2: it "
    "strikes a marrow still expanded by the first cycle's TPO-driven regrowth: in the "
    "typical patient the committed progenitors are 1.08 times their baseline on day 21, "
    "1.00 with the model file's values, the platelets at half theirs; the fit's tpo_ec50 "
    "at its lower bound 520 does it: at 700, 50.7, 49.6, 48.7, 47.8), and only then do "
    "nadirs deepen; on the model file's "
    "values they deepen every cycle (55.0, 52.9, 50.7, 48.0). A chemosensitivity of the "
    "stimulated marrow does not mend it on this reading of the rows: refitted from 0.02 it "
    "stays at 0.023 and the medians are 52.7, 54.1, 52.5, 51.6 (2026-12-06, forty-third "
    "session). models/cit_marrow_reserve.md, 'Open finding: the second cycle milder than "
    "the first' and 'Open finding: the stimulated marrow's chemosensitivity'"))
def test_calibrated_nadirs_deepen_over_four_cycles(calibrated):
    # the check on what a user runs: the bundled fit, a new study's typical damage
    assert_nadirs_deepen_over_four_cycles(calibrated)


def primed_nadirs(model) -> tuple[np.ndarray, np.ndarray]:
    """Each patient's nadir after one dose of chemotherapy on day 5, without and with rhTPO
    15000 U on days 1 and 3 (500 patients at a new study's typical damage)."""
    days = np.arange(0.0, 30.0, 0.25)
    params = as_columns(model, cohort(model, 500, 21))
    nadirs = []
    for regimen in ("chemotherapy 1 dose d5", "rhTPO 15000 U d1,3 + chemotherapy 1 dose d5"):
        result = pp.simulate_batch(model, regimen, times=days, params=params,
                                   covariates=WEIGHT)
        assert result.success.all()
        nadirs.append(result.output("platelets")[:, days >= 4].min(axis=1))
    return nadirs[0], nadirs[1]


def test_rhtpo_before_chemotherapy_does_not_deepen_the_nadir(either):
    # a bound on any chemosensitivity of the stimulated marrow
    # (models/cit_marrow_reserve.md, "Open finding: the stimulated marrow's
    # chemosensitivity"): growth factors given with or just before chemotherapy deepen
    # nadirs (G-CSF, GM-CSF), but TPO-receptor stimulation given only BEFORE chemotherapy is
    # clinically protective or neutral: rhTPO on days -4 and -2 before high-dose cytarabine,
    # a randomised crossover, PLT < 50 in 46.2% of cycles against 67.3% without (Leuk
    # Lymphoma 2018, doi:10.1080/10428194.2018.1459605, abstract); PEG-rHuMGDF before
    # carboplatin / cyclophosphamide "no evidence of an effect" (Basser et al., abstract;
    # journal not verified); no study seen found nadirs made worse by it
    # (models/cit_marrow_reserve.md). Here: rhTPO 15000 U on days 1 and 3, chemotherapy on
    # day 5 (days -4 and -2), against chemotherapy alone
    # (15000 U: the usual adult dose, parameters.md "dosing in CIT")
    untreated, primed = primed_nadirs(either)
    assert np.median(primed) >= np.median(untreated), (np.median(primed),
                                                        np.median(untreated))
    # and fewer patients below 50, as in the crossover
    assert np.mean(primed < 50) <= np.mean(untreated < 50)


@pytest.mark.xfail(strict=True, reason=(
    "measured 2026-12-05 (fortieth session), bundled fit at a new study's typical damage, "
    "500 patients, four 21-day cycles, daily samples: platelets follow TPO by a median of 2 "
    "days (1 day in 34% of patients, 2 in 62%; 2 days with the model file's values too), "
    "where Engel 1999 found about 1 day in every patient (models/cit_marrow_reserve.md, "
    "'Open finding: the second cycle milder than the first')"))
def test_tpo_leads_the_platelets_by_about_a_day_over_four_cycles(calibrated):
    # Engel 1999 (Br J Haematol 105:832, abstract; structural_models.md 4): over multicycle
    # chemotherapy "TPO responses preceded platelet responses by approximately one day in
    # all patients" (cross-correlation of serial counts): the lag that maximises the
    # correlation of log TPO with minus log platelets, sampled daily, in the median patient
    assert 0.5 <= np.median(tpo_lead_days(calibrated, 500)) <= 1.5


def tpo_lead_days(model, n: int) -> np.ndarray:
    """Per patient (``n`` at a new study's typical damage, four 21-day cycles, daily
    samples), the lag in days (0-4) that maximises the correlation of log TPO with minus log
    platelets: how long TPO leads the platelets."""
    days = np.arange(0, 85.0)
    result = pp.simulate_batch(model, "chemotherapy 1 dose q21d x4", times=days,
                               params=as_columns(model, cohort(model, n, 18)),
                               covariates=WEIGHT)
    assert result.success.all()
    tpo, platelets = np.log(result.output("tpo")), -np.log(result.output("platelets"))
    lags = []
    for a, b in zip(tpo, platelets):
        correlation = [np.corrcoef(a[:a.size - lag], b[lag:])[0, 1] for lag in range(5)]
        lags.append(int(np.argmax(correlation)))
    return np.array(lags)


# ---------------------------------------------------------------- persistent CIT (Soff 2019)
def soff_observation_arm(model):
    """Soff 2019-like untreated observation arm: four 21-day cycles held while PLT < 100
    (re-checked weekly, given up after 4 weeks: the clinical reason persistent CIT is
    studied); eligible once PLT < 100 for >= 4 weeks (Soff 2019, cit_summary.csv); no
    treatment from entry; followed 3 weeks; between-cycle exposure variability 30%."""
    course = ChemotherapyCourse(regimen="chemotherapy 1 dose", cycle_days=21, cycles=4,
                                delay_below=100, recheck_every_days=7,
                                give_up_after_days=28, follow_up_days=63, points_per_day=4)
    rules = (HistoryRule("below_for_days", below=100, days=28),)
    design = ArmDesign(name="observation", treatment=(), entry_below=None, start_delay=0,
                       follow_up_days=22, points_per_day=4)
    # each cycle's exposure varies by 30% within a patient (between_cycle_cv of the bundled
    # course trials: Hansson 2010, trials/soff2019_romiplostim.toml)
    omega = np.sqrt(np.log1p(0.3 ** 2))
    exposure = np.exp(omega * np.random.default_rng(19).standard_normal((2000, 4)))
    return simulate_course_arm(model, design, course, cohort(model, 2000, 19), rules,
                               exposure=exposure)


@pytest.fixture(scope="module")
def persistent_arm(model):
    return soff_observation_arm(model)


def soff_numbers(arm):
    """(corrected within 3 weeks, mean count at week 3) of an observation arm."""
    rule = ResponseRule(threshold=100, rise=None, by_day=21)
    corrected = np.nanmean(subject_values(arm, "response_proportion", None, None,
                                          "treatment_start", rule, 100, smooth=False))
    week3 = np.nanmean(subject_values(arm, "plt_count", None, 21, "treatment_start", rule,
                                      100, smooth=False))
    return corrected, week3


@pytest.mark.slow
def test_untreated_persistent_cit_rarely_corrects_within_three_weeks(persistent_arm):
    # measured 2026-12-01 (model file's values, 2000 screened, seed 19): 510 eligible, entry
    # mean 69 (Soff 62), corrected within 3 weeks 24.1%, week-3 mean 70 (Soff 12.5% and
    # 57). It failed (28.1%, 77) until each cycle's exposure varied within a patient
    # (between_cycle_cv 0.3, Hansson 2010): a patient's bad cycle, not only a bad patient,
    # now makes persistent CIT
    assert_like_soff(persistent_arm)


def assert_like_soff(arm):
    """The untreated persistent-CIT arm against Soff 2019's observation arm."""
    assert arm.n >= 100  # enough eligible virtual patients for a proportion
    corrected, week3 = soff_numbers(arm)
    # Soff 2019 (cit_summary.csv soff2019_romiplostim_cit, observation arm): 1 of 8 (12.5%)
    # corrected (>= 100) within 3 weeks, mean 57 at week 3; issue 17: within 15 points and
    # within 20 x10^9/L
    assert abs(corrected - 0.125) <= 0.15, corrected
    assert abs(week3 - 57) <= 20, week3


# ---------------------------------------------------------------- Yuan 2025 ordering
def yuan_treated_arms(model, treatments=None):
    """The four treated arms of Yuan 2025 at the model's typical values, in the design of
    trials/yuan2025.toml: no study parameter; pretreated patients enrolled at their first
    count below 75 in their second 21-day cycle (the cycle given once the count is back at
    75), each cycle's exposure varying by 30% within a patient (between_cycle_cv, Hansson
    2010: the file's header); the same virtual patients and exposures in every arm.
    ``treatments`` (arm name -> doses) replaces the four arms (an untreated arm: ``()``)."""
    vectors = cohort(model, 1000, 20)
    course = ChemotherapyCourse(regimen="chemotherapy 1 dose", cycle_days=21, cycles=2,
                                delay_below=75, recheck_every_days=7, give_up_after_days=28,
                                follow_up_days=21, points_per_day=4)
    omega = np.sqrt(np.log1p(0.3 ** 2))
    exposure = np.exp(omega * np.random.default_rng(20).standard_normal((len(vectors), 2)))
    rules = (HistoryRule("nadir_below", below=75, cycle=2),)
    arms = {}
    for name, treatment in (YUAN_ARMS if treatments is None else treatments).items():
        design = ArmDesign(name=name, treatment=treatment, stop_at=100, stop_rise=50,
                           max_days=14, entry_below=None, start_delay=1, follow_up_days=42,
                           points_per_day=4)
        arms[name] = simulate_course_arm(model, design, course, vectors, rules,
                                         exposure=exposure)
    return arms


@pytest.fixture(scope="module")
def yuan_arms(model):
    return yuan_treated_arms(model)


def day14_means(arms):
    rule = ResponseRule(threshold=100, rise=50, by_day=14)
    return {name: np.nanmean(subject_values(arm, "plt_count", None, 14, "treatment_start",
                                            rule, 100, smooth=False))
            for name, arm in arms.items()}


def yuan_response(arm):
    rule = ResponseRule(threshold=100, rise=50, by_day=14)
    return 100 * np.nanmean(subject_values(arm, "response_proportion", None, None,
                                           "treatment_start", rule, 100, smooth=False))


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason=(
    "measured 2026-12-01 (model file's values, pretreated design, 691 enrolled of 1000): "
    "responses rhTPO 84.8%, hetrombopag 79.9%, combination 87.8%, rhIL-11 71.8% (untreated "
    "55.6%): the combination leads by 3.0 points, not 10 (the shared ceiling at a nadir "
    "where endogenous TPO is already high; models/cit_marrow_reserve.md, 'Open finding: "
    "what the combination's lead needs'); the drug potencies are uncalibrated literature "
    "values"))
def test_yuan_combination_is_best_and_monotherapies_are_alike(yuan_arms):
    assert_ordered_like_yuan(yuan_arms)


def assert_ordered_like_yuan(arms):
    response = {name: yuan_response(arm) for name, arm in arms.items()}
    mono = [response[name] for name in ("rhTPO", "hetrombopag", "rhIL-11")]
    # Yuan 2025 (cit_summary.csv): 94.4% vs 70.3 / 70.3 / 66.0; issue 17: the combination
    # best by >= 10 points, the monotherapies within 15 points of one another
    assert response["hetrombopag+rhTPO"] - max(mono) >= 10, response
    assert max(mono) - min(mono) <= 15, response


@pytest.mark.slow
def test_no_yuan_arm_has_a_mean_day_14_count_above_300(yuan_arms):
    # measured 2026-12-01 (model file's values, pretreated design, 691 enrolled of 1000):
    # rhTPO 243, hetrombopag 196, combination 282, rhIL-11 133; it failed (329 / 264 / 380 /
    # 175) while the design enrolled first-cycle patients
    assert_no_day_14_mean_above_300(yuan_arms)


def assert_no_day_14_mean_above_300(arms):
    means = day14_means(arms)
    # issue 17: no arm's mean count on treatment day 14 above 300 x10^9/L (above a typical
    # baseline of about 250) unless a source shows it; none of cit_summary.csv does
    assert max(means.values()) <= 300, means


# ---------------------------------------------------------------- with the bundled calibration
# fits/cit_marrow_reserve_calibration: drug potencies and the typical chemotherapy damage with
# a between-study spread (study-level random effect). A new study (the Soff design below, or
# Yuan's run as a user would without naming a study value) gets the typical damage: the
# median of the fitted between-study distribution. Yuan 2025 and Soff 2019's observation arm
# are fitted studies (their rows are calibration rows, each with its own study effect since
# the fit of 2026-12-02 09:20 UTC); these checks run them at the typical damage, as a new
# study of their design.
FIT_FOLDER = Path(__file__).resolve().parents[1] / "fits" / "cit_marrow_reserve_calibration"


@pytest.fixture(scope="module")
def calibrated():
    _, values = load_fitted_parameters(FIT_FOLDER)
    return pp.load_model(MODEL_PATH).with_parameters(values)


def test_the_calibration_is_the_bundled_fit_and_names_no_study_parameter():
    assert default_fit("cit_marrow_reserve") == "cit_marrow_reserve_calibration"
    record = load_fit_record(FIT_FOLDER)
    effect = record["study_effects"]["chemotherapy_sensitivity"]
    # issue 17: no hand-made per-study value (fits/cit_calibration's
    # yuan_chemotherapy_sensitivity): every fit parameter is a model parameter, a between-
    # study SD or a standardised study effect drawn from N(0, 1)
    model = pp.load_model(MODEL_PATH)
    for name in record["parameters"]:
        assert name in model.parameters or name.startswith("chemotherapy_sensitivity_"), name
    # the fit was run on this model file: an edit to it without a refit fails here
    assert record["provenance"]["model"]["hash"] == model.hash
    # each study's value is the typical one times exp(SD x u) (fitting.py), u within +/- 4
    for study, value in effect["studies"].items():
        u = record["parameters"][f"chemotherapy_sensitivity_effect_{study}"]["value"]
        assert value == pytest.approx(effect["typical"] * np.exp(effect["between_study_sd"] * u))
        assert abs(u) <= 4


@pytest.mark.slow
def test_calibrated_untreated_persistent_cit_rarely_corrects(calibrated):
    # measured with the calibration of 2026-12-03 21:10 UTC (2000 screened, seed 19, between-
    # cycle CV 30%, typical damage 4.30): 271 eligible, corrected within 3 weeks 23.2%, week-3
    # mean 61.2 (Soff 12.5% and 57; 25.4% and 64.0 with the fit of 2026-12-03 14:21 UTC;
    # 25.8% and 67 with that of 2026-12-02 09:20 UTC; 23.9% and 67 with the fit of 01:40 UTC; 23.1% and 70 with the fit of 2026-12-01 22:42 UTC and that of 20:52 UTC;
    # 21.1% and 66 with that of 14:40 UTC, 20.7% and 65 with that of 12:52 UTC; 22.7% and
    # 68 on the first-cycle fit without between-cycle variability). It failed (31-36%)
    # until the reserve's regeneration slowed when deeply depleted
    # (reserve_exhaustion_level, models/cit_marrow_reserve.md); Soff's observation rows are
    # calibration rows since then, so this design (four held cycles, not the trial file's
    # two) is the check that is not the fitted one
    assert_like_soff(soff_observation_arm(calibrated))


# ------------------------------------------- baseline TPO and romiplostim response (Song 2021)
# Song AB, Goodarzi K, Karp Leaf R, Kuter DJ. Am J Hematol 2021 ("Thrombopoietin level
# predicts response to treatment with romiplostim in chemotherapy-induced thrombocytopenia";
# abstract): 63 CIT patients with a TPO level before romiplostim; weekly counts on treatment;
# a count "responds" at PLT >= 75 and >= 30 above the pretreatment count; a moderate
# responder has >= 60% of weekly counts responding. Median (IQR) baseline TPO: moderate
# responders 234 (135-1085) pg/mL, others 665 (244-1970), p = .034. Not a data row and
# not fitted. The model's persistent patients are the Soff design's (soff_observation_arm),
# given romiplostim 3 ug/kg weekly (Song's doses were titrated: not in the abstract) while
# their chemotherapy resumes under the course's delay rule, for 8 weeks.
SONG_WEEKS = np.arange(1, 9) * 7.0


@pytest.fixture(scope="module")
def romiplostim_persistent(calibrated):
    """(baseline TPO, moderate responder by Song's definition, corrected within 3 weeks as
    Soff 2019 defines it) of the Soff design's enrolled patients on romiplostim."""
    from plateletpd.study.cohort import values_at

    course = ChemotherapyCourse(regimen="chemotherapy 1 dose", cycle_days=21, cycles=4,
                                delay_below=100, recheck_every_days=7,
                                give_up_after_days=28, follow_up_days=63, points_per_day=4)
    rules = (HistoryRule("below_for_days", below=100, days=28),)
    design = ArmDesign(name="romiplostim", treatment=("romiplostim 3 ug/kg weekly d1-57",),
                       entry_below=None, start_delay=0, stop_at=None, max_days=57,
                       follow_up_days=57, points_per_day=4)
    omega = np.sqrt(np.log1p(0.3 ** 2))
    exposure = np.exp(omega * np.random.default_rng(19).standard_normal((2000, 4)))
    vectors = cohort(calibrated, 2000, 19)
    arm = simulate_course_arm(calibrated, design, course, vectors, rules, exposure=exposure)
    start = values_at(arm.times, arm.platelets, arm.start_time)
    weekly = values_at(arm.times, arm.platelets, arm.start_time[:, None] + SONG_WEEKS)
    moderate = ((weekly >= 75) & (weekly >= start[:, None] + 30)).mean(axis=1) >= 0.6
    corrected = subject_values(arm, "response_proportion", None, None, "treatment_start",
                               ResponseRule(threshold=100, rise=None, by_day=21), 100,
                               smooth=False) == 1
    # baseline TPO: each enrolled patient's own chemotherapy up to the first dose, untreated
    given = arm.extra["course"]
    names = list(calibrated.parameters)
    tpo = np.empty(arm.n)
    for k, subject in enumerate(arm.subjects):
        doses = " + ".join(
            f"chemotherapy {float(exposure[subject, c] * given.dose[k, c])!r} dose d{round(day) + 1}"
            for c, day in enumerate(given.cycle_day[k])
            if np.isfinite(day) and day <= arm.start_time[k])
        result = pp.simulate(calibrated, doses, times=[arm.start_time[k]],
                             params=dict(zip(names, vectors[subject, :len(names)])),
                             covariates=WEIGHT)
        tpo[k] = result.output("tpo")[0][0]
    return tpo, moderate, corrected


@pytest.mark.slow
def test_persistent_patients_not_corrected_by_romiplostim_have_higher_baseline_tpo(
        romiplostim_persistent):
    # Song 2021: lower baseline TPO, better response; read here with Soff 2019's endpoint
    # (PLT >= 100 within 3 weeks). Measured 2026-12-04 (bundled fit of 2026-12-03 21:10
    # UTC): 271 enrolled, 65% corrected, median TPO 171 (IQR 141-211) corrected against 425
    # (316-779) not: the model's non-correctors are the patients whose reserve is too
    # depleted for any dose (3 or 5 ug/kg weekly correct the same share)
    tpo, _, corrected = romiplostim_persistent
    assert np.median(tpo[~corrected]) > np.median(tpo[corrected])
    # each median inside Song's interquartile range of its group
    assert 135 <= np.median(tpo[corrected]) <= 1085
    assert 244 <= np.median(tpo[~corrected]) <= 1970


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason=(
    "Song 2021's own definition (moderate responder: >= 60% of 8 weekly counts at PLT >= 75 "
    "and >= 30 above the start, chemotherapy resuming under the course's rule): measured "
    "2026-12-04, 33% moderate responders with median TPO 232 (IQR 145-302) against 211 "
    "(160-401) for the others (Song 234 against 665): the cycles given once the count is "
    "back at 100 pull the weekly counts of the responders down again, so sustained response "
    "on romiplostim through chemotherapy is not reproduced (models/cit_marrow_reserve.md, "
    "Open finding: baseline TPO)"))
def test_song_moderate_responders_have_lower_baseline_tpo(romiplostim_persistent):
    tpo, moderate, _ = romiplostim_persistent
    assert np.median(tpo[~moderate]) > np.median(tpo[moderate])


@pytest.fixture(scope="module")
def calibrated_yuan_arms(calibrated):
    return yuan_treated_arms(calibrated)


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason=(
    "measured 2026-12-03 with the calibration of 21:10 UTC (bounded niche, exhaustion "
    "threshold; pretreated design, 655 enrolled of 1000, typical damage 4.30): responses "
    "rhTPO 86.9%, hetrombopag 84.0%, combination 89.5%, rhIL-11 86.1% (untreated 67.3%): "
    "the combination leads by 2.6 points, not 10 (calibration of 14:21 UTC, damage 4.32: "
    "90.0 / 87.2 / 92.1 / 91.1%, lead 1.0; of 2026-12-02 09:20 UTC, "
    "damage 4.43: 90.3 / 86.6 / 92.9 / 89.4%, lead 2.6; of 01:40 UTC, damage 4.27: 85.6 / 82.7 / 88.5 / 87.9%, lead 0.6; of "
    "2026-12-01 22:42 UTC, damage 4.17: 86.4 / 83.4 / 89.0 / "
    "88.7%, lead 0.3; of 20:52 UTC, damage 4.03: 87.4 / 83.7 / 90.1 / 88.0%, lead 2.1; of "
    "14:40 UTC, damage 4.94: 77.9 / 72.9 / 81.0 / 79.6%, lead 1.4). The shared ceiling at a "
    "nadir where endogenous TPO is already high leaves a "
    "second agonist little room; a less sensitive TPO site would give the lead but the "
    "controlled untreated cycles refuse it, and a ceiling above full TPO-site occupancy gives "
    "a 7-9 point lead with a combination day-14 mean of 300-306; and an arm at the ceiling "
    "(hetrombopag 75 mg + rhTPO 150,000 U) responds only 90.2%: with monotherapies at "
    "84-87% no combination can lead by 10 (models/cit_marrow_reserve.md, 'Open finding: "
    "what the combination's lead needs', the headroom)"))
def test_calibrated_yuan_combination_is_best_and_monotherapies_are_alike(
        calibrated_yuan_arms):
    assert_ordered_like_yuan(calibrated_yuan_arms)


@pytest.mark.slow
def test_calibrated_yuan_arms_have_no_mean_day_14_count_above_300(calibrated_yuan_arms):
    # issue 17: no arm's mean count on treatment day 14 above 300. Measured 2026-12-03 with
    # the calibration of 21:10 UTC (bounded niche, exhaustion threshold; 655 enrolled of
    # 1000, typical damage 4.30): rhTPO 230, hetrombopag 191, combination 252, rhIL-11 167
    # (240 / 196 / 262 / 176 with that of 14:21 UTC, damage 4.32).
    # It failed (a strict xfail) with the calibration of 2026-12-02 09:20 UTC, before the
    # niche was bounded: 281 / 217 / 320 / 181 (models/cit_marrow_reserve.md, "Open
    # finding: the rebound after stimulation"); earlier calibrations passed only with the
    # between-study SD under-estimated (01:40 UTC: 257 / 197 / 291 / 182)
    assert_no_day_14_mean_above_300(calibrated_yuan_arms)


@pytest.mark.slow
def test_calibrated_yuan_arms_respond_below_the_ceiling_and_above_no_treatment(
        calibrated, calibrated_yuan_arms):
    untreated = yuan_treated_arms(calibrated, {"untreated": ()})["untreated"]
    response = {name: yuan_response(arm) for name, arm in calibrated_yuan_arms.items()}
    # issue 17: with the earlier model "response rates hit a ceiling (99-100%), so
    # differences between drugs vanish"; Yuan 2025 (cit_summary.csv) reports 66-94.4%
    assert max(response.values()) < 99, response
    # every drug does something: each arm above no treatment (same patients, common random
    # numbers; the margin is 2 binomial standard errors of a difference at the enrolled n)
    floor = yuan_response(untreated)
    assert all(value - floor > 2 * 100 * np.sqrt(2 * 0.25 / untreated.n)
               for value in response.values()), (floor, response)


@pytest.mark.slow
def test_calibrated_yuan_response_rises_with_stimulation_up_to_the_headroom(
        calibrated, calibrated_yuan_arms):
    # the same patients (common random numbers) under more c-Mpl stimulation respond at
    # least as often: a combination at least as often as either of its parts, and an arm
    # at the shared ceiling (ten times the usual doses, models/cit_marrow_reserve.toml:
    # het_max_signal and the TPO site saturate) at least as often as the combination. The
    # ceiling arm measures the headroom the Yuan ordering check needs (card, 'Open finding:
    # what the combination's lead needs'): 90.2% measured 2026-12-03 with the calibration
    # of 21:10 UTC (93.5% with that of 2026-12-02 09:20 UTC, 89.8% with that of 01:40 UTC,
    # 90.6% with that of 2026-12-01 22:42 UTC, 83.0% with that of 14:40 UTC), so no
    # combination can lead the 84-87% monotherapies by 10 points here
    ceiling = yuan_treated_arms(calibrated, {"ceiling": ("hetrombopag 75 mg",
                                                         "rhTPO 150000 U")})["ceiling"]
    response = {name: yuan_response(arm) for name, arm in calibrated_yuan_arms.items()}
    assert response["hetrombopag+rhTPO"] >= max(response["rhTPO"], response["hetrombopag"])
    assert yuan_response(ceiling) >= response["hetrombopag+rhTPO"]
    # and the headroom is real: some enrolled patients cannot respond within 14 days at
    # any stimulation (the deep tail), so the ceiling arm stays below 100%
    assert yuan_response(ceiling) < 100
