"""Idle states: the states of a drug that a batch does not give stay exactly zero, and the
lock-step integrator leaves them out of its stage passes
(:func:`plateletpd.model.codegen.idle_states`, ``integrator.lockstep_source``).

The analysis must find them (and nothing that can move), a dose must make a drug's states
active again, and skipping them must change no number: the same outputs, states and step
counts bit for bit as the same kernel computing every state.
"""

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import plateletpd as pp
import plateletpd.simulation.simulate as simulate
from plateletpd.dosing.schedules import expand
from plateletpd.model.codegen import active_ranges, idle_states

DRUG_MODEL = """
[model]
name = "idle_fixture"
description = "two drugs, one with a binding term written inside a condition (test fixture)"
time_unit = "h"

[parameters]
ka = {{ value = 1.0, unit = "1/h", lower = 0, source = "test fixture" }}
ke = {{ value = 0.1, unit = "1/h", lower = 0, source = "test fixture" }}
kd = {{ value = 0.5, unit = "mg", lower = 0.001, source = "test fixture" }}
kin = {{ value = 2.0, unit = "mg/h", lower = 0, source = "test fixture" }}

[states.gut]
unit = "mg"
[states.central]
unit = "mg"
[states.bound]
unit = "mg"
[states.other_gut]
unit = "mg"
[states.other_central]
unit = "mg"
[states.response]
unit = "mg"
initial = "{response0}"
[states.driven]
unit = "mg"

[derived]
free = "0.5 * (central - kd + sqrt((central - kd) ** 2 + 4 * kd * central)) if central > 0 else 0"
effect = "free / (kd + free) + other_central / (kd + other_central)"

[odes]
gut = "-ka * gut"
central = "ka * gut - ke * free - ke * (central - free)"
bound = "ke * (central - free) - ke * bound"
other_gut = "-ka * other_gut"
other_central = "ka * other_gut - ke * other_central"
response = "kin * (1 + effect) - ke * response"
driven = "{driven}"

[outputs.response]
expression = "response"
unit = "mg"

[doses.first]
state = "gut"
amount_unit = "mg"
routes = ["bolus"]
description = "the first drug"

[doses.second]
state = "other_gut"
amount_unit = "mg"
routes = ["bolus"]
description = "the second drug"
"""


def drug_model(response0="20", driven="-ke * driven"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pp.ModelWarning)
        return pp.parse_model(DRUG_MODEL.format(response0=response0, driven=driven),
                              path="idle.toml")


def names(model, indices):
    return {model.states[i].name for i in indices}


def test_the_states_of_a_drug_not_given_are_idle_and_a_dose_makes_them_active():
    model = drug_model()
    everything = {"gut", "central", "bound", "other_gut", "other_central", "driven"}
    assert names(model, idle_states(model, [])) == everything
    # the first drug given: its three states move (the binding's condition is decided
    # only while central is zero), the second drug's stay idle
    assert names(model, idle_states(model, [0])) == {"other_gut", "other_central", "driven"}
    assert names(model, idle_states(model, [3])) == {"gut", "central", "bound", "driven"}
    assert names(model, idle_states(model, [0, 3])) == {"driven"}
    # a dose straight into a later compartment activates what it feeds, not what feeds it
    assert names(model, idle_states(model, [1])) == {"gut", "other_gut", "other_central",
                                                      "driven"}


@pytest.mark.parametrize("response0,driven,idle", [
    ("0", "-ke * driven", True),            # zero initial value, zero derivative at zero
    ("0", "kin - ke * driven", False),      # a source term: moves from zero
    ("0", "ke * response", False),          # fed by a state that is not idle
    ("0", "ke * (1 - driven)", False),      # 1 - 0 is not zero
    ("0", "ke * driven ** 2", False),       # powers are never taken as zero (0 ** 0 = 1)
    ("0", "driven / ke", True),
    ("0", "ke / (1 + driven)", False),      # a zero denominator makes nothing zero
    ("0", "max(driven, 0) - min(driven, 0) + abs(driven)", True),
    ("0", "(ke if driven >= 0 else 0) * 1", False),  # the test picks the non-zero side
    ("0", "(0 if driven >= 0 else ke) * 1", True),
    ("0", "(driven if ke > 1 else 0) * ke", True),   # both branches zero, test undecided
    ("0", "ke * (1 - 1) + driven", True),           # literal arithmetic is computed
])
def test_the_analysis_takes_a_formula_as_zero_only_when_it_must_be(response0, driven, idle):
    model = drug_model(response0, driven)
    assert ("driven" in names(model, idle_states(model, [0, 3]))) == idle


def test_a_state_that_starts_away_from_zero_is_never_idle():
    model = drug_model(response0="20", driven="-ke * driven")
    assert "response" not in names(model, idle_states(model, []))
    model = drug_model(response0="0", driven="-ke * driven")
    assert "response" not in names(model, idle_states(model, []))  # kin drives it


def test_cit_marrow_reserve_idles_the_drugs_a_regimen_does_not_give():
    model = pp.load_model("models/cit_marrow_reserve.toml")
    state = {target.name: target.state_index for target in model.dose_targets}
    idle = names(model, idle_states(model, [state["chemotherapy"], state["hetrombopag"]]))
    assert idle == {"rhtpo_sc", "rhtpo_central", "il11_sc", "il11_central", "romiplostim_sc",
                    "romiplostim_central", "romiplostim_peripheral", "eltrombopag_gut",
                    "eltrombopag_central", "eltrombopag_peripheral", "avatrombopag_gut",
                    "avatrombopag_central"}
    with_romiplostim = names(model, idle_states(
        model, [state["chemotherapy"], state["hetrombopag"], state["romiplostim"]]))
    assert with_romiplostim == idle - {"romiplostim_sc", "romiplostim_central",
                                       "romiplostim_peripheral"}


def test_active_ranges_are_the_complement_of_the_idle_states():
    assert active_ranges(6, []).tolist() == [0, 6]
    assert active_ranges(6, [2, 3]).tolist() == [0, 2, 4, 6]
    assert active_ranges(6, [0, 5]).tolist() == [1, 5]
    assert active_ranges(6, [0, 2, 4]).tolist() == [1, 2, 3, 4, 5, 6]
    assert active_ranges(3, [0, 1, 2]).tolist() == []


def every_state(model, dosed):
    return np.array([0, len(model.states)], dtype=np.int64)


@pytest.mark.parametrize("regimen,idle", [
    ("chemotherapy 1 dose d1 + hetrombopag 7.5 mg qd d9-22",
     {"rhtpo_sc", "rhtpo_central", "il11_sc", "il11_central"}),
    ("chemotherapy 1 dose d1 + rhTPO 300 U/kg qd d2-8",
     {"het_gut", "het_absorption", "het_central", "het_peripheral", "il11_sc",
      "il11_central"}),
])
def test_lockstep_without_the_idle_states_gives_the_same_numbers_bit_for_bit(
        monkeypatch, regimen, idle):
    """The same compiled lock-step kernel with every state in its passes and with the idle
    ones left out: outputs, states and counters identical; the idle states exactly 0."""
    model = pp.load_model("cit_thrombopoiesis")
    n = 2 * 16 + 5  # two full groups and a partial one
    rng = np.random.default_rng(3)
    params = {"chemotherapy_sensitivity": model.parameters["chemotherapy_sensitivity"].value
              * np.exp(rng.normal(0, 0.3, n))}
    options = dict(times=np.arange(0, 29, 0.5), params=params,
                   covariates={"body_weight": 65.0},
                   solver=pp.DormandPrince853(rtol=1e-6), execution="lockstep",
                   keep_states=True)
    skipped = pp.simulate_batch(model, regimen, **options)
    assert names(model, idle_states(model, expand(regimen, model.dose_targets).state)) == idle
    monkeypatch.setattr(simulate, "_active_states", every_state)
    full = pp.simulate_batch(model, regimen, **options)
    assert np.all(skipped.status == 0)
    assert np.array_equal(skipped.outputs, full.outputs)
    assert np.array_equal(skipped.states, full.states)
    assert np.array_equal(skipped.counters, full.counters)
    for name in idle:
        assert np.all(skipped.states[:, :, model.state_names.index(name)] == 0.0)


def test_the_batch_computes_every_state_of_a_drug_it_gives():
    """The ranges a lock-step batch passes hold every state a dose of its regimen enters,
    and the compartments those feed (romiplostim's depot, central and peripheral)."""
    model = pp.load_model("models/cit_marrow_reserve.toml")
    schedule = expand("chemotherapy 1 dose d1 + romiplostim 1 ug/kg qw d8-22",
                      model.dose_targets)
    ranges = simulate._active_states(model, schedule.state)
    active = {model.states[i].name for lo, hi in zip(ranges[::2], ranges[1::2])
              for i in range(lo, hi)}
    assert {"chemotherapy", "romiplostim_sc", "romiplostim_central",
            "romiplostim_peripheral"} <= active
    assert not active & {"rhtpo_sc", "eltrombopag_gut", "het_gut"}


def test_the_skipping_runs_without_jit_and_changes_nothing_there(tmp_path):
    """NUMBA_DISABLE_JIT=1 (plain Python): lock step with the idle states skipped and with
    every state computed give the same numbers (the second drug is idle)."""
    script = (
        "import json, sys, numpy as np, plateletpd as pp\n"
        "import plateletpd.simulation.simulate as simulate\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_idle_states import drug_model, every_state\n"
        "m = drug_model()\n"
        "run = lambda: pp.simulate_batch(m, 'first 10 mg d1', times=np.linspace(0, 2, 5),\n"
        "    params={'ke': np.linspace(0.05, 0.2, 17)}, solver=pp.DormandPrince853(rtol=1e-8),\n"
        "    execution='lockstep', keep_states=True)\n"
        "skipped = run()\n"
        "simulate._active_states = every_state\n"
        "full = run()\n"
        "print(json.dumps([skipped.status.tolist(), bool(np.array_equal(skipped.states,\n"
        "    full.states)), float(np.abs(skipped.states[:, -1, 5]).min())]))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=False, env={**os.environ, "NUMBA_DISABLE_JIT": "1"},
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    status, identical, response = json.loads(done.stdout.strip().splitlines()[-1])
    assert status == [0] * 17 and identical and response > 0
