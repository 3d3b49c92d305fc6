"""Time to first result (issue 18 item 5): a call compiles only the entry point it uses (one
method, one subject or a batch, lock step or not), says on standard error what it compiles
and for how long, and a later process loads it from the disk cache instead.

Speed itself is measured in benchmarks/cold_start.py (benchmarks/README.md, "Time to first
result"), never asserted here; these tests check what is compiled, not how fast."""

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import plateletpd as pp
from plateletpd.numerics import integrator, jit
from plateletpd.simulation.reference import reference_solution

from test_integrator import every_drug_daily

MODELS = Path(__file__).parent / "models"

needs_jit = pytest.mark.skipif(jit.jit_disabled(), reason="nothing is compiled without JIT")


@needs_jit
def test_compile_report_names_each_compiled_function_and_is_silent_when_nothing_compiles():
    def twice(x):
        return 2.0 * x

    function = jit.njit(twice)  # a new dispatcher: its first call compiles, in memory only
    stream = io.StringIO()
    with jit.compile_report("a test function", stream) as compiled:
        assert function(1.5) == 3.0
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("plateletpd: compiling a test function (")
    assert re.fullmatch(r"plateletpd: compiled a test function in \d+\.\d s "
                        r"\(twice \d+\.\d s\)", lines[1]), lines[1]
    assert list(compiled) == ["twice"]
    stream = io.StringIO()
    with jit.compile_report("a test function", stream) as compiled:  # already compiled
        assert function(2.0) == 4.0
    assert stream.getvalue() == "" and compiled == {}


@needs_jit
def test_compile_report_can_be_silenced_and_still_says_what_was_compiled(monkeypatch):
    def thrice(x):
        return 3.0 * x

    monkeypatch.setenv("PLATELETPD_REPORT_COMPILES", "0")
    stream = io.StringIO()
    with jit.compile_report("a test function", stream) as compiled:
        jit.njit(thrice)(1.0)
    assert stream.getvalue() == "" and list(compiled) == ["thrice"]


def test_every_method_has_its_own_one_subject_entry_point():
    # one function per method (numba compiles every branch of a function it compiles): the
    # solvers' method codes map onto the rendered forms, and each form calls one segment
    assert integrator.subject_form(pp.DormandPrince5.method_code) == "dopri5"
    assert integrator.subject_form(pp.DormandPrince853.method_code) == "dop853"
    assert integrator.subject_form(pp.Rosenbrock23.method_code) == "rosenbrock23"
    assert integrator.subject_form(pp.BogackiShampine3.method_code) == "explicit"
    source = integrator.subject_source()
    segments = ["dopri5_segment(", "dop853_segment(", "rosenbrock23_segment(",
                "explicit_segment("]
    for form in integrator.SUBJECT_FORMS:
        body = source.split(f"def solve_subject_{form}(")[1].split("\n@njit")[0]
        assert sum(segment in body for segment in segments) == 1, form
    batch = integrator.batch_source()
    assert "solve_subject(" not in batch  # no driver reaches every method


def test_split_entry_points_agree_bit_for_bit_with_each_other(one_compartment):
    # a subject integrated alone (solve_subject_<form>) and inside a parallel batch
    # (solve_batch_<form>) runs the same compiled segment on the same numbers
    times = np.linspace(0.0, 2.0, 25)
    for solver in [pp.DormandPrince5(), pp.DormandPrince853(), pp.Rosenbrock23(),
                   pp.BogackiShampine3()]:
        alone = pp.simulate(one_compartment, "oral 100 mg q12h x4", times=times,
                            solver=solver, covariates={"body_weight": 70.0})
        batch = pp.simulate_batch(one_compartment, "oral 100 mg q12h x4", times=times,
                                  solver=solver, n=3, covariates={"body_weight": 70.0})
        for subject in range(3):
            assert np.array_equal(batch.outputs[subject], alone.outputs[0]), solver.method
            assert np.array_equal(batch.counters[subject], alone.counters[0]), solver.method


def _both_paths(monkeypatch, run):
    """``run()`` through the generic integrator (the model's functions by address) and
    through the model's inlined kernel."""
    monkeypatch.setenv("PLATELETPD_GENERIC_INTEGRATOR", "always")
    generic = run()
    monkeypatch.setenv("PLATELETPD_GENERIC_INTEGRATOR", "never")
    return generic, run()


@needs_jit
@pytest.mark.parametrize("solver", [pp.DormandPrince5(), pp.DormandPrince853(),
                                    pp.Rosenbrock23(), pp.BogackiShampine3()],
                         ids=lambda solver: solver.method)
def test_the_generic_integrator_gives_the_inlined_kernels_results_bit_for_bit(
        monkeypatch, one_compartment, solver):
    # the same integrator text and the same model functions, compiled apart and called by
    # address instead of inlined: the same floating-point operations in the same order (no
    # fast-math outside the lock-step passes), so the same bits; here with lag,
    # bioavailability, oral doses and an IV infusion
    regimen = "oral 100 mg q12h x4 + iv 50 mg over 2h d2"
    times = np.linspace(0.0, 3.0, 37)
    generic, inlined = _both_paths(monkeypatch, lambda: pp.simulate(
        one_compartment, regimen, times=times, solver=solver,
        covariates={"body_weight": 70.0}))
    assert np.array_equal(generic.outputs, inlined.outputs)
    assert np.array_equal(generic.states, inlined.states)
    # subjects in parallel (a trial's patients): the generic module's parallel driver, every
    # row carrying the model's function addresses, against the model's own driver
    rates = {"elimination_rate": np.linspace(0.05, 0.5, 9)}
    batch, own = _both_paths(monkeypatch, lambda: pp.simulate_batch(
        one_compartment, regimen, times=times, solver=solver, params=rates,
        covariates={"body_weight": 70.0}))
    assert np.array_equal(batch.outputs, own.outputs)
    assert np.array_equal(batch.counters, own.counters)
    assert np.array_equal(batch.status, own.status)
    assert not np.array_equal(batch.outputs[0], batch.outputs[-1])  # patients differ
    assert np.array_equal(generic.counters, inlined.counters)


@needs_jit
def test_the_generic_integrator_runs_the_cit_model_as_its_kernel_and_as_scipy_radau(
        monkeypatch):
    # a 24-state model with every drug, at a tight tolerance: bit for bit the inlined
    # kernel's result, and within 1e-6 relative of scipy's Radau at rtol 1e-10 (the
    # benchmark's accuracy criterion, benchmarks/README.md; as test_lockstep's CIT check)
    model = pp.load_model("cit_thrombopoiesis")
    regimen = every_drug_daily(model)
    times = np.linspace(0, 28, 57)
    solver = pp.DormandPrince5(rtol=1e-10, atol=1e-12)
    generic, inlined = _both_paths(monkeypatch, lambda: pp.simulate(
        model, regimen, times=times, solver=solver))
    assert generic.ok
    assert np.array_equal(generic.outputs, inlined.outputs)
    assert np.array_equal(generic.counters, inlined.counters)
    reference = reference_solution(model, regimen, times=times, rtol=1e-10, atol=1e-12)
    assert np.max(np.abs(generic["platelets"] / reference["platelets"] - 1)) < 1e-6


@needs_jit
@pytest.mark.parametrize("kind", [1, 2, 3, 4])
def test_the_generic_integrator_reports_a_model_formula_failure_as_the_kernel_does(
        monkeypatch, kind):
    # a domain error inside a model function called by address (log, division by zero,
    # square root and overflowing exp of tests/models/failing/domain_errors.toml) is found
    # the same way and gives the same status, message (the formula and the day) and outputs
    model = pp.load_model(MODELS / "failing" / "domain_errors.toml")
    with pytest.warns(pp.SimulationWarning):
        generic, inlined = _both_paths(monkeypatch, lambda: pp.simulate(
            model, times=np.linspace(0.0, 2.0, 9), params={"kind": kind}))
    assert generic.status_code == inlined.status_code == pp.Status.DOMAIN_ERROR
    assert generic.message == inlined.message
    assert np.array_equal(generic.outputs, inlined.outputs, equal_nan=True)


def test_a_bad_generic_integrator_setting_is_a_clear_error(monkeypatch, one_compartment):
    monkeypatch.setenv("PLATELETPD_GENERIC_INTEGRATOR", "sometimes")
    with pytest.raises(pp.PlateletPDError, match="must be auto, never or always, got "
                                                 "'sometimes'"):
        pp.simulate(one_compartment, None, days=1)


CHILD = r"""
import json, sys
import numpy as np
import plateletpd as pp
from plateletpd.numerics.kernels import compile_kernel
model = pp.load_model(sys.argv[1])
result = pp.simulate(model, "oral 100 mg q12h x4", days=2, covariates={"body_weight": 70.0})
kernel = compile_kernel(model)
names = ["solve_subject_dopri5", "dopri5_segment", "solve_subject_dop853", "dop853_segment",
         "solve_subject_rosenbrock23", "rosenbrock23_segment", "solve_subject_explicit",
         "explicit_segment", "solve_batch_dopri5", "solve_batch_lanes", "solve_group"]
print(json.dumps({"compiled": {n: len(getattr(kernel, n).signatures) for n in names},
                  "concentration": result["concentration"].tolist()}))
"""


@needs_jit
@pytest.mark.slow
def test_a_first_simulate_compiles_only_its_method_and_a_new_process_loads_it(tmp_path):
    # on an empty kernel cache, a one-subject DormandPrince5 run compiles solve_subject_dopri5
    # and what it calls, and says so; none of the other methods' segments, no batch driver;
    # a second process on the same cache compiles nothing and gives the same numbers
    env = {**os.environ, "PLATELETPD_CACHE_DIR": str(tmp_path),
           "PLATELETPD_REPORT_COMPILES": "1", "PLATELETPD_GENERIC_INTEGRATOR": "never"}
    runs = [subprocess.run([sys.executable, "-c", CHILD, str(MODELS / "one_compartment.toml")],
                           env=env, capture_output=True, text=True, timeout=900)
            for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr[-3000:]
    first, second = (json.loads(run.stdout.strip().splitlines()[-1]) for run in runs)
    assert "plateletpd: compiling one_compartment, one subject, method dopri5" in runs[0].stderr
    assert re.search(r"plateletpd: compiled one_compartment, one subject, method dopri5 in "
                     r"\d+\.\d s \(solve_subject_dopri5 \d+\.\d s\)", runs[0].stderr)
    compiled = first["compiled"]
    assert compiled["solve_subject_dopri5"] == 1 and compiled["dopri5_segment"] == 1
    assert {name: count for name, count in compiled.items() if count} == {
        "solve_subject_dopri5": 1, "dopri5_segment": 1}
    assert "plateletpd: compiling" not in runs[1].stderr  # loaded from the disk cache
    assert second["concentration"] == first["concentration"]


GENERIC_CHILD = r"""
import json, sys
import numpy as np
import plateletpd as pp
small = "one_compartment" in sys.argv[1]
result = pp.simulate(sys.argv[1], "oral 100 mg q12h x4" if small else None, days=2,
                     covariates={"body_weight": 70.0} if small else None)
# then a trial's patients: subjects in parallel
pp.simulate_batch(sys.argv[1], "oral 100 mg q12h x4" if small else None, days=2,
                  covariates={"body_weight": np.full(4, 70.0)} if small else None,
                  n=None if small else 4)
# then a lock-step cohort
pp.simulate_batch(sys.argv[1], "oral 100 mg q12h x4" if small else None, days=2,
                  covariates={"body_weight": np.full(32, 70.0)} if small else None,
                  n=None if small else 32, solver=pp.DormandPrince853(), execution="lockstep")
print(json.dumps(result.outputs.tolist()))
"""


@needs_jit
@pytest.mark.slow
def test_a_new_model_on_a_used_installation_compiles_only_its_own_functions(tmp_path):
    # the generic integrator is compiled by the first model ever run on this cache; a second,
    # new model then compiles only its model functions (rhs_hoisted, constants, initial,
    # outputs, dose_modifiers), not the integrator: the report names them and no
    # solve_subject_dopri5, and its first batch compiles no parallel driver
    env = {**os.environ, "PLATELETPD_CACHE_DIR": str(tmp_path),
           "PLATELETPD_REPORT_COMPILES": "1", "PLATELETPD_GENERIC_INTEGRATOR": "auto"}
    runs = [subprocess.run([sys.executable, "-c", GENERIC_CHILD, str(MODELS / name)], env=env,
                           capture_output=True, text=True, timeout=900)
            for name in ("one_compartment.toml", "transit_chain.toml")]
    for run in runs:
        assert run.returncode == 0, run.stderr[-3000:]
    assert "generic integrator" in runs[0].stderr and "solve_subject_dopri5" in runs[0].stderr
    # and its parallel driver, for a trial's patients (it took 88 s for the CIT model's own)
    assert "subjects in parallel, method dopri5, generic integrator" in runs[0].stderr
    assert "solve_batch_dopri5" in runs[0].stderr
    # and its lock-step driver, for a cohort in lock step (17-25 s for a model's own)
    assert "lock step, method dop853, generic integrator" in runs[0].stderr
    assert "solve_batch_lanes" in runs[0].stderr
    report = [line for line in runs[1].stderr.splitlines() if "compiled transit_chain" in line]
    # its one-subject run, and its lock-step cohort's two functions; the batch compiles nothing
    assert len(report) == 2, runs[1].stderr
    assert "rhs_hoisted" in report[0] and "solve_subject_dopri5" not in report[0]
    assert "solve_batch_dopri5" not in runs[1].stderr
    assert "lock step" in report[1] and "rhs_lanes" in report[1]
    for integrator_part in ("solve_batch_lanes", "solve_group", "dop853_lanes_segment",
                            "dop853_lane_stages"):
        assert integrator_part not in runs[1].stderr


@needs_jit
def test_lock_step_subjects_that_leave_their_group_run_through_the_generic_driver_alike(
        monkeypatch, one_compartment):
    # a lock-step cohort whose groups cannot share breakpoints (a lag differing per patient
    # moves every dose) integrates those subjects one at a time: through the generic driver
    # or the model's own, the same bits
    times = np.linspace(0.0, 2.0, 25)
    lags = {"lag_time": np.linspace(0.1, 0.9, 20)}  # tests/models/one_compartment.toml
    generic, inlined = _both_paths(monkeypatch, lambda: pp.simulate_batch(
        one_compartment, "oral 100 mg q12h x4", times=times, params=lags,
        solver=pp.DormandPrince853(), execution="lockstep",
        covariates={"body_weight": 70.0}))
    assert np.array_equal(generic.outputs, inlined.outputs)
    assert np.array_equal(generic.counters, inlined.counters)


#: Lock-step cohorts for the generic lock-step driver: the small model with oral doses, lag,
#: bioavailability and an infusion (input rates inside a group's steps); the marrow-reserve
#: CIT model with hetrombopag only (its rhTPO and rhIL-11 states idle: the passes skip them)
#: and two group-uniform tests (its feedback switch, and an exact-powers test that holds in
#: its first group, the ceiling's exponent 2 throughout, and not in its second, 2 and 2.5:
#: two loop variants of rhs_lanes in one cohort); the CIT model with a group that disagrees
#: on its feedback switch (integrated one at a time) and one that agrees.
GENERIC_LOCKSTEP_CASES = {
    "small model, infusion": (str(MODELS / "one_compartment.toml"),
                              "oral 100 mg q12h x4 + iv 50 mg over 2h d2", 3.0,
                              {"elimination_rate": np.linspace(0.05, 0.5, 40)},
                              {"body_weight": 70.0}),
    "marrow reserve, idle drug states": (
        "cit_marrow_reserve", "chemotherapy 1 dose d1 + hetrombopag 7.5 mg qd d9-22", 42.0,
        {"platelets_baseline": np.linspace(150.0, 350.0, 20),
         "mpl_saturation_exponent": np.array([2.0] * 16 + [2.0, 2.5, 2.0, 2.5])}, None),
    "CIT, a group split on its switch": (
        "cit_thrombopoiesis", "chemotherapy 1 dose d1 + hetrombopag 7.5 mg qd d9-22", 28.0,
        {"feedback_mode": np.array([0.0, 1.0, 0.0, 1.0] + [1.0] * 16),
         "platelets_baseline": np.linspace(150.0, 350.0, 20)}, None),
}


@needs_jit
@pytest.mark.parametrize("case", list(GENERIC_LOCKSTEP_CASES))
def test_the_generic_lock_step_driver_gives_the_models_own_results_bit_for_bit(
        monkeypatch, case):
    # the generic module's lock-step stage passes are the model's own expressions with the
    # rows' offsets read at run time instead of written as literals, its step loop the same
    # template, and the model's rhs_lanes and uniform tests are called by address: the same
    # floating-point operations in the same order, so the same bits (counters included:
    # the same steps, rejections and evaluations)
    model, regimen, days, params, covariates = GENERIC_LOCKSTEP_CASES[case]
    generic, own = _both_paths(monkeypatch, lambda: pp.simulate_batch(
        model, regimen, times=np.linspace(0.0, days, 43), params=params,
        covariates=covariates, solver=pp.DormandPrince853(), execution="lockstep",
        keep_states=True))
    assert np.all(own.status == pp.Status.SUCCESS)
    for name in ("outputs", "states", "counters", "status"):
        assert np.array_equal(getattr(generic, name), getattr(own, name)), name
    # lock step did run (the members of a lock-step group share their counters), and the
    # subjects differ, so equal arrays are not equal by construction
    # (the split case: its second group, subjects 16-19; its first ran one at a time)
    locked = own.counters[16:] if case.startswith("CIT") else own.counters[:16]
    assert np.all(locked == locked[0])
    assert not np.array_equal(own.outputs[0], own.outputs[-1])


@needs_jit
def test_a_lock_step_cohort_builds_only_the_loop_variants_its_groups_use():
    # the marrow model's rhs_lanes has four loop variants (its feedback switch x its
    # exact-powers test, models/cit_marrow_reserve.toml); the generic lock-step driver builds
    # those a cohort's groups use, each group's chosen as solve_group chooses it: a group
    # with the mechanistic feedback and the ceiling's exponent at its declared 2 (exact
    # powers) uses variant 1 (bits 0b10: 3 - 2), a group with one subject at 2.5 the variant
    # without exact powers, 3 (the group's minimum), and a group that disagrees on the
    # switch none (it runs one subject at a time)
    from plateletpd.numerics import kernels

    model = pp.load_model("cit_marrow_reserve")
    kernel = kernels.compile_kernel(model)
    exponent = np.full(48, 2.0)
    exponent[20] = 2.5
    feedback = np.zeros(48)
    feedback[40] = 1.0
    from plateletpd.simulation.simulate import _subject_matrix  # simulate_batch's matrix

    matrix, valid = _subject_matrix(model, {"mpl_saturation_exponent": exponent,
                                            "feedback_mode": feedback}, {}, 48,
                                    np.arange(3.0), False)
    assert valid.all()
    generic = kernels.generic_kernel()
    vectors = kernels._generic_parameters(kernel, matrix, lanes=True)
    assert kernels._lane_variants(kernel, generic, vectors).tolist() == [1, 3, -1]
    vectors = kernels._lane_parameters(kernel, generic, matrix)
    slots = vectors.shape[1] - kernels.MODEL_SLOTS
    variant = vectors[0, slots + kernels.FIRST_VARIANT_SLOT:
                      slots + kernels.FIRST_VARIANT_SLOT + 4]
    assert variant[0] == variant[2] == 0.0 and variant[1] > 0 and variant[3] > 0  # built: 1, 3
    chosen = vectors[:, slots + kernels.CHOSEN_SLOT]
    assert np.all(chosen[:16] == variant[1]) and np.all(chosen[16:32] == variant[3])


@needs_jit
def test_long_runs_use_the_models_own_parallel_driver_and_quick_ones_the_generic_one(
        monkeypatch, tmp_path):
    # the generic driver costs 12-16% more CPU per subject (benchmarks/README.md), so a fit,
    # sweep, optimiser, sensitivity analysis or validation suite compiles the model's own
    # once; a trial or check uses the generic one until the model's own is compiled. A
    # kernel module whose parallel driver was never compiled, in a fresh cache folder:
    from types import SimpleNamespace

    from plateletpd.numerics import kernels

    monkeypatch.setenv("PLATELETPD_GENERIC_INTEGRATOR", "auto")
    never_compiled = SimpleNamespace(__file__=str(tmp_path / "kernel.py"), __name__="kernel",
                                     solve_batch_dopri5=SimpleNamespace(signatures=[]),
                                     solve_subject_dopri5=SimpleNamespace(signatures=[]))

    def chosen(entry):
        return kernels._generic_first_run(never_compiled, entry)

    assert chosen("solve_batch_dopri5") is kernels.generic_kernel()
    long_run = kernels.many_batches(chosen)
    assert long_run("solve_batch_dopri5") is None
    assert long_run("solve_subject_dopri5") is kernels.generic_kernel()  # one subject alike
    assert chosen("solve_batch_dopri5") is kernels.generic_kernel()  # after the long run
    # lock step stays generic in a long run: its driver costs what the model's own does
    # (0.95-1.08 times the CPU per subject, benchmarks/README.md), so no compile pays off
    never_compiled.solve_batch_lanes = SimpleNamespace(signatures=[])
    assert long_run("solve_batch_lanes") is kernels.generic_kernel()
    # and where the model's own lock-step driver is compiled: the generic one runs the loop
    # variants folded for the batch's idle drugs, which the model's own cannot (0.85 of its
    # time for cit_marrow_reserve, benchmarks/README.md)
    never_compiled.solve_batch_lanes = SimpleNamespace(signatures=["compiled"])
    assert chosen("solve_batch_lanes") is kernels.generic_kernel()
    monkeypatch.setenv("PLATELETPD_GENERIC_INTEGRATOR", "never")
    assert chosen("solve_batch_lanes") is None
    monkeypatch.setenv("PLATELETPD_GENERIC_INTEGRATOR", "auto")
    from plateletpd.inference.fitting import run_fit
    from plateletpd.study.optimisation import optimise_dose
    from plateletpd.study.sensitivity import run_sensitivity
    from plateletpd.study.validation import validate

    for function in (pp.run_sweep, validate, run_fit, run_sensitivity, optimise_dose):
        assert function.__wrapped__ is not None, function  # each is a long run
