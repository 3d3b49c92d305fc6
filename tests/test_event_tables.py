"""NONMEM-style event tables: steady state (SS=1), infusions and lags against closed forms,
refused inputs, the explicit time unit, multi-ID batches and per-kg doses without a weight.

Sources of the numbers used below:
- "Gibaldi & Perrier": M. Gibaldi, D. Perrier, Pharmacokinetics, 2nd ed. (1982), chapter 3
  (multiple dosing): one-compartment IV bolus at steady state
  A(t) = D e^{-k t} / (1 - e^{-k tau}); oral (first-order absorption) at steady state
  C(t) = F D ka / (V (ka - k)) [e^{-k t}/(1 - e^{-k tau}) - e^{-ka t}/(1 - e^{-ka tau})];
  intermittent zero-order infusion R = D/T over T every tau at steady state: during the
  infusion A(t) = R/k (1 - e^{-k t}) + A_min e^{-k t}, after it A(t) = A_max e^{-k (t - T)},
  A_max = R/k (1 - e^{-k T}) / (1 - e^{-k tau}), A_min = A_max e^{-k (tau - T)}; t is the
  time since the dose entered (after its lag).
- "fixture": tests/models/one_compartment.toml (ka 1.2/h, k 0.15/h, V 20 L, F 0.7, lag 0.5 h
  on the oral target; the IV target has no lag and F 1); doses and intervals are made-up
  test inputs.
- "limits": plateletpd.limits.MAX_EVENTS_PER_SUBJECT = 100,000.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

import plateletpd as pp
from plateletpd.cli import main
from plateletpd.dosing.regimens import Regimen
from plateletpd.dosing.event_tables import read_event_subjects, read_event_table
from plateletpd.errors import RegimenError, ResourceLimitError, SimulationInputError

from conftest import TEST_MODELS

KA, K, VOLUME, F_ORAL, LAG = 1.2, 0.15, 20.0, 0.7, 0.5  # fixture, per hour / L / h
TIGHT = pp.DormandPrince853(rtol=1e-11, atol=1e-12)
RTOL = 1e-6  # the brief's golden-test tolerance; the solver above is far tighter


def events(**columns) -> pd.DataFrame:
    rows = max([len(v) for v in columns.values() if isinstance(v, list)], default=1)
    return pd.DataFrame({name: value if isinstance(value, list) else [value] * rows
                         for name, value in columns.items()})


def central(result) -> np.ndarray:
    return result.states[0, :, 1]


def hours(*values) -> np.ndarray:
    return np.array(values, dtype=float) / 24.0  # output times are in days


# ----------------------------------------------------------------------------- golden tests

def test_steady_state_iv_bolus_matches_closed_form(one_compartment):
    dose, tau = 100.0, 12.0
    table = events(TIME=0, AMT=dose, CMT="central", EVID=1, II=tau, ADDL=2, SS=1)
    t = np.array([0.0, 1.0, 6.0, 11.9, 12.0, 30.0, 35.9])
    result = pp.simulate_event_table(one_compartment, table, times=t / 24, keep_states=True,
                                     solver=TIGHT)
    phase = t % tau
    # Gibaldi & Perrier: A_ss(t) = D e^{-k t} / (1 - e^{-k tau}), t since the last dose
    expected = dose * np.exp(-K * phase) / (1 - np.exp(-K * tau))
    np.testing.assert_allclose(central(result), expected, rtol=RTOL)


def test_steady_state_oral_with_lag_matches_closed_form(one_compartment):
    dose, tau = 50.0, 8.0
    table = events(TIME=0, AMT=dose, CMT="depot", EVID=1, II=tau, ADDL=3, SS=1)
    t = np.array([0.0, 0.25, 0.5, 0.75, 2.0, 7.9, 8.3, 20.0])  # before and after the lag
    result = pp.simulate_event_table(one_compartment, table, times=t / 24, keep_states=True,
                                     solver=TIGHT)
    since = (t - LAG) % tau  # time since the last dose entered, at periodic steady state
    # Gibaldi & Perrier, oral steady state (amounts: C x V), and the depot's own
    # D F e^{-ka t} / (1 - e^{-ka tau})
    amount = F_ORAL * dose * KA / (KA - K) * (np.exp(-K * since) / (1 - np.exp(-K * tau))
                                              - np.exp(-KA * since) / (1 - np.exp(-KA * tau)))
    depot = F_ORAL * dose * np.exp(-KA * since) / (1 - np.exp(-KA * tau))
    np.testing.assert_allclose(central(result), amount, rtol=RTOL)
    np.testing.assert_allclose(result.states[0, :, 0], depot, rtol=RTOL)


def _infusion_steady_state(since, dose, duration, tau):
    """Gibaldi & Perrier: intermittent infusion at steady state (amounts)."""
    rate = dose / duration
    highest = rate / K * (1 - np.exp(-K * duration)) / (1 - np.exp(-K * tau))
    lowest = highest * np.exp(-K * (tau - duration))
    during = rate / K * (1 - np.exp(-K * since)) + lowest * np.exp(-K * since)
    return np.where(since <= duration, during, highest * np.exp(-K * (since - duration)))


def test_steady_state_infusion_matches_closed_form(one_compartment):
    dose, duration, tau = 120.0, 2.0, 12.0
    table = events(TIME=0, AMT=dose, CMT="central", EVID=1, II=tau, ADDL=2, SS=1,
                   RATE=dose / duration)
    t = np.array([0.0, 0.5, 2.0, 3.0, 11.9, 13.0, 26.0])
    result = pp.simulate_event_table(one_compartment, table, times=t / 24, keep_states=True,
                                     solver=TIGHT)
    expected = _infusion_steady_state(t % tau, dose, duration, tau)
    np.testing.assert_allclose(central(result), expected, rtol=RTOL)


@pytest.fixture(scope="module")
def lagged_infusion():
    """The fixture plus an IV target with the fixture's lag that takes infusions, listed
    before the plain IV target (so CMT 2 doses it), and a default body weight (70 kg, made
    up) that per-kg doses must not use silently."""
    text = (TEST_MODELS / "one_compartment.toml").read_text()
    text = text.replace('upper = 400\n', 'upper = 400\ndefault = 70\n', 1)
    text = text.replace("[doses.iv]\n", '[doses.iv_lagged]\nadministration = "iv"\nstate = '
                        '"central"\namount_unit = "mg"\nroutes = ["bolus", "infusion"]\nlag = '
                        '"lag_time"\n\n[doses.iv]\n', 1)
    model = pp.parse_model(text, "one_compartment_lagged_infusion")
    assert [target.name for target in model.dose_targets] == ["oral", "iv_lagged", "iv"]
    return model


@pytest.mark.slow
def test_infusion_with_lag_matches_closed_form(lagged_infusion):
    dose, duration = 60.0, 3.0
    table = events(TIME=1.0, AMT=dose, CMT="central", EVID=1, RATE=dose / duration)
    t = np.array([0.0, 1.0, 1.4, 1.5, 2.0, 4.5, 5.0, 9.0])
    result = pp.simulate_event_table(lagged_infusion, table, times=t / 24, solver=TIGHT)
    start, rate = 1.0 + LAG, dose / duration
    # zero-order input from start to start + duration, first-order elimination (hand-derived
    # from dA/dt = R - k A: R/k (1 - e^{-k s}) during, then exponential decay)
    during = rate / K * (1 - np.exp(-K * np.clip(t - start, 0, duration)))
    expected = np.where(t < start, 0.0,
                        during * np.exp(-K * np.clip(t - start - duration, 0, None)))
    np.testing.assert_allclose(result.output("concentration")[0] * VOLUME, expected, rtol=RTOL,
                               atol=1e-12)


@pytest.mark.slow
def test_steady_state_infusion_with_lag_matches_closed_form(lagged_infusion):
    dose, duration, tau = 90.0, 1.5, 6.0
    table = events(TIME=0, AMT=dose, CMT="central", EVID=1, II=tau, ADDL=2, SS=1,
                   RATE=dose / duration)
    subjects = read_event_subjects(table, lagged_infusion.dose_targets,
                                   lagged_infusion.state_names, "h")
    assert subjects[1].steady_state.dose.drug == "iv_lagged"
    t = np.array([0.0, 0.4, 0.5, 1.0, 2.0, 5.9, 6.7, 14.0])
    result = pp.simulate_event_table(lagged_infusion, table, times=t / 24, keep_states=True,
                                     solver=TIGHT)
    # the doses enter 0.5 h after their times: Gibaldi & Perrier with the time since the
    # infusion started
    np.testing.assert_allclose(central(result),
                               _infusion_steady_state((t - LAG) % tau, dose, duration, tau),
                               rtol=RTOL)


def test_steady_state_reset_at_a_later_time_keeps_the_undosed_course_before_it(one_compartment):
    dose, tau, reset = 100.0, 12.0, 24.0
    table = events(TIME=reset, AMT=dose, CMT="central", EVID=1, II=tau, ADDL=1, SS=1)
    t = np.array([0.0, 23.0, 24.0, 30.0])
    result = pp.simulate_event_table(one_compartment, table, times=t / 24, keep_states=True,
                                     solver=TIGHT)
    # nothing before the reset (the fixture starts empty), then Gibaldi & Perrier
    expected = np.where(t < reset, 0.0,
                        dose * np.exp(-K * (t - reset)) / (1 - np.exp(-K * tau)))
    np.testing.assert_allclose(central(result), expected, rtol=RTOL, atol=1e-12)


def test_steady_state_equals_a_long_explicit_course(one_compartment):
    # independent of any formula: SS=1 and 400 explicit doses (k tau = 1.8: e^{-720} is 0)
    dose, tau = 40.0, 12.0
    t = np.array([0.0, 3.0, 11.0])
    steady = pp.simulate_event_table(
        one_compartment, events(TIME=0, AMT=dose, CMT="depot", EVID=1, II=tau, SS=1),
        times=t / 24, keep_states=True, solver=TIGHT)
    explicit = pp.simulate_event_table(
        one_compartment, events(TIME=0, AMT=dose, CMT="depot", EVID=1, II=tau, ADDL=400),
        times=(t + 400 * tau) / 24, keep_states=True, solver=TIGHT)
    np.testing.assert_allclose(steady.states[0], explicit.states[0], rtol=1e-8)


# ----------------------------------------------------------------------------- refused inputs

BASE = dict(ID=1, TIME=0, AMT=10, CMT="central", EVID=1, II=0, ADDL=0, RATE=0, SS=0)


@pytest.mark.parametrize("change, message", [
    ({"EVID": 0}, r"EVID 0 \(observation\) with AMT 10: the dose would be lost"),
    ({"EVID": 2}, r"EVID 2 \(other event\) with AMT 10: the dose would be lost"),
    ({"AMT": 0}, r"column AMT: a dose record \(EVID 1\) needs AMT > 0, given 0"),
    ({"CMT": "depot", "RATE": 5}, r"RATE=5 asks for an infusion, but oral .* accepts bolus only"),
    ({"SS": 2, "II": 12}, r"SS=2 .* is not supported: superposition holds only for linear"),
    ({"SS": 3, "II": 12}, r"column SS: expected 0 .* or 1"),
    ({"SS": 1}, r"SS=1 needs the dosing interval II > 0"),
    ({"SS": 1, "II": 12, "RATE": 0.5}, r"infusion of AMT/RATE = 20 longer than II = 12"),
    ({"EVID": 3}, r"EVID 3 \(reset\) is not supported"),
])
def test_unsupported_rows_are_refused_naming_row_column_and_time_unit(change, message):
    model = pp.load_model(TEST_MODELS / "one_compartment.toml")
    with pytest.raises(RegimenError, match=message) as caught:
        read_event_subjects(events(**{**BASE, **change}), model.dose_targets, model.state_names,
                            "h")
    assert "row 1" in str(caught.value)
    assert "read in 'h'" in str(caught.value)  # the time unit is stated in every message


def test_two_steady_state_records_or_a_dose_before_one_are_refused(one_compartment):
    targets, names = one_compartment.dose_targets, one_compartment.state_names
    two = events(TIME=[0, 0], AMT=10, CMT="central", II=12, SS=1)
    with pytest.raises(RegimenError, match=r"row 2, column SS: a second SS=1 record"):
        read_event_subjects(two, targets, names, "h")
    before = events(TIME=[0, 24], AMT=10, CMT="central", II=12, SS=[0, 1])
    with pytest.raises(RegimenError, match=r"a dose at TIME 0 d comes before this SS=1 record"):
        read_event_subjects(before, targets, names, "h")


def test_read_event_table_refuses_steady_state_and_points_to_the_simulator(one_compartment):
    table = events(TIME=0, AMT=10, CMT="central", II=12, SS=1)
    with pytest.raises(RegimenError, match=r"simulate_event_table\(model, table"):
        read_event_table(table, one_compartment.dose_targets, one_compartment.state_names, "h")


def test_steady_state_lag_not_shorter_than_the_interval_is_refused(one_compartment):
    table = events(TIME=0, AMT=10, CMT="depot", II=0.5, SS=1)  # lag 0.5 h = II (fixture)
    with pytest.raises(SimulationInputError, match=r"subject ID 1: SS=1 .* lag .* shorter than II"):
        pp.simulate_event_table(one_compartment, table, days=1)


def test_steady_state_in_a_model_that_reads_time_is_refused():
    text = (TEST_MODELS / "one_compartment.toml").read_text().replace(
        'central = "absorption_rate * depot - elimination_rate * central"',
        'central = "absorption_rate * depot - elimination_rate * central * (1 + 0 * t)"')
    model = pp.parse_model(text, "reads_time")
    with pytest.raises(SimulationInputError, match=r"its equations read time 't' \(central\)"):
        pp.simulate_event_table(model, events(TIME=0, AMT=10, CMT="central", II=12, SS=1),
                                days=1)


def test_huge_addl_and_day_ranges_fail_at_once_with_estimate_and_limit(one_compartment):
    started = time.perf_counter()
    with pytest.raises(ResourceLimitError, match=r"1,000,000,001 dose events .* limit is 100,000"):
        read_event_subjects(events(TIME=0, AMT=1, CMT="central", II=24, ADDL=1e9),
                            one_compartment.dose_targets, one_compartment.state_names, "h")
    # the same guard over several rows of one subject (limits: 100,000 events per subject)
    with pytest.raises(ResourceLimitError, match=r"100,002 dose events"):
        read_event_subjects(events(TIME=[0, 1], AMT=1, CMT="central", II=24, ADDL=[50000, 50000]),
                            one_compartment.dose_targets, one_compartment.state_names, "h")
    with pytest.raises(ResourceLimitError, match=r"10,000,000 dose events .* limit is 100,000"):
        Regimen.parse("x 1 mg qd d1-10000000")
    assert time.perf_counter() - started < 1.0  # refused before building anything


# ----------------------------------------------------------------------------- time unit

def test_a_table_in_hours_with_ii_24_doses_daily(one_compartment):
    table = events(TIME=0, AMT=5, CMT="central", II=24, ADDL=2)
    targets, names = one_compartment.dose_targets, one_compartment.state_names
    assert read_event_table(table, targets, names, time_unit="h")[1] == Regimen.parse(
        "iv 5 mg qd d1-3")  # 24 h = 1 day
    assert read_event_table(table, targets, names, time_unit="day")[1] == Regimen.parse(
        "iv 5 mg q24d x3 d1")  # the same numbers read in days
    with pytest.raises(RegimenError, match=r"an event table needs its time unit"):
        read_event_table(table, targets, names)


def test_simulate_event_table_reads_times_in_the_models_unit_unless_told(one_compartment):
    table = events(TIME=24, AMT=5, CMT="central")
    hourly = pp.simulate_event_table(one_compartment, table, times=[0.5, 1.0])  # model: hours
    daily = pp.simulate_event_table(one_compartment, table, times=[0.5, 1.0], time_unit="day")
    assert hourly.provenance["time_unit"] == "h" and daily.provenance["time_unit"] == "day"
    # dose at 24 h = day 1: present at t = 1 d; read in days it comes at day 24
    assert hourly.output("concentration")[0, 1] == pytest.approx(5 / VOLUME, rel=1e-12)
    assert daily.output("concentration")[0, 1] == 0.0


# ----------------------------------------------------------------------------- batches

def test_multi_id_table_is_one_batch_equal_to_each_subject_alone(one_compartment, tmp_path):
    table = pd.DataFrame({
        "ID": [5, 5, 2, 9, 9], "TIME": [0, 6, 0, 0, 3], "AMT": [10, 0, 20, 30, 40],
        "CMT": ["central", "central", "depot", "central", "central"], "EVID": [1, 0, 1, 1, 1],
        "RATE": [0, 0, 0, 15, 0], "BODY_WEIGHT": [60, 60, 70, 80, 80]})
    t = np.linspace(0, 1, 25)
    batch = pp.simulate_event_table(one_compartment, table, times=t)
    assert list(batch.subject_ids) == [2, 5, 9]
    alone = {5: "iv 10 mg d1", 2: "oral 20 mg d1", 9: "iv 30 mg over 2h d1 + iv 40 mg t=0.125"}
    for row, subject in enumerate(batch.subject_ids):
        single = pp.simulate(one_compartment, alone[subject], times=t)
        np.testing.assert_array_equal(batch.output("concentration")[row], single["concentration"])
    frame = batch.to_dataframe()
    assert sorted(frame.subject.unique()) == [2, 5, 9]
    path = tmp_path / "table.csv"
    table.to_csv(path, index=False)
    out = tmp_path / "out.csv"
    assert main(["simulate", str(TEST_MODELS / "one_compartment.toml"), "--events", str(path),
                 "--times", "0,0.5,1", "--out", str(out)]) == 0
    written = pd.read_csv(out)
    assert sorted(written.subject.unique()) == [2, 5, 9]
    np.testing.assert_allclose(written[written.subject == 9].value,
                               batch.output("concentration")[2, [0, 12, 24]], rtol=1e-9)


def test_per_kg_dose_without_a_weight_is_the_same_error_everywhere(lagged_infusion, tmp_path,
                                                                    capsys):
    model_path = tmp_path / "model.toml"
    model_path.write_text(lagged_infusion.text)
    message = r"given per kg and needs covariate 'body_weight'.*never used to scale a dose"
    # the model has a default weight (70 kg): it is not used for the dose
    with pytest.raises(RegimenError, match=message):
        pp.simulate(lagged_infusion, "iv 2 mg/kg d1", days=1)
    with pytest.raises(RegimenError, match=message):
        pp.simulate_batch(lagged_infusion, "iv 2 mg/kg d1", days=1, n=3)
    errors = []
    for command in ("events", "simulate"):
        assert main([command, str(model_path), "--regimen", "iv 2 mg/kg d1"]) == 2
        errors.append(capsys.readouterr().err.splitlines()[-1].split("error: ", 1)[1])
    assert errors[0] == errors[1]
    # given explicitly it works: 2 mg/kg x 60 kg = 120 mg in 20 L = 6 mg/L (hand-computed)
    result = pp.simulate(lagged_infusion, "iv 2 mg/kg d1", times=[0.0],
                         covariates={"body_weight": 60})
    assert result["concentration"][0] == pytest.approx(6.0, rel=1e-12)
