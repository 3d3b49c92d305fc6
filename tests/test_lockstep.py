"""The lock-step execution (``simulate_batch(..., execution="lockstep")`` with DOP853): groups of LANES
subjects sharing one step size, the model vectorised over subjects.

It must give every subject the accuracy it asked for (closed forms, scipy Radau), match the
one-subject-at-a-time integrator exactly wherever it falls back to it (a failing subject, dose
times that differ after lag), and not depend on the thread count.
"""

import numba
import numpy as np
import pytest

import plateletpd as pp
from plateletpd.simulation.reference import reference_solution
from plateletpd.numerics.kernels import compile_kernel, hoisted_parameters

from test_integrator import F_ORAL, KE, LAG, VOLUME, every_drug_daily, scaled_error

LANES = 16  # plateletpd.model.codegen.LANES: subjects per lock-step group


def bateman(hours, dose_hours, dose_mg, absorption_rate):
    """Closed-form one-compartment oral concentration for one absorption rate (1/h)."""
    concentration = np.zeros_like(hours)
    for start in dose_hours:
        since = np.clip(hours - start - LAG, 0.0, None)
        concentration += np.where(hours > start + LAG, F_ORAL * dose_mg * absorption_rate / (
            VOLUME * (absorption_rate - KE)) * (np.exp(-KE * since)
                                                - np.exp(-absorption_rate * since)), 0.0)
    return concentration


def lane_parameters(model, rows):
    """Lane-major ``q`` of ``rhs_lanes``: each subject's hoisted parameters, then its
    group-uniform switch values (``uniform_conditions``)."""
    kernel = compile_kernel(model)
    extra = np.empty((len(rows), kernel.N_UNIFORM))
    for lane, row in enumerate(rows):
        kernel.uniform_conditions(row, extra[lane])
    return np.ascontiguousarray(np.hstack([rows, extra]).T).ravel()


@pytest.mark.parametrize("name,feedback_mode", [
    ("cit_thrombopoiesis", 0.0), ("cit_thrombopoiesis", 1.0), ("friberg_platelets", None),
    ("wang2010_romiplostim", None)])
def test_lane_rhs_equals_the_scalar_rhs_lane_by_lane(name, feedback_mode):
    """rhs_lanes is rhs_hoisted written as a loop over subjects on lane-major arrays: each
    lane must be that subject's right-hand side, with different parameters and states in
    every lane; for CIT under both outcomes of its group-uniform feedback switch (a loop
    variant each). Equal up to rounding: rhs_lanes may fuse multiply-adds (one rounding
    instead of two) and takes powers from plateletpd.numerics.vectormath (within 4 ulp x (1 + |g log
    x|), tests/test_vectormath.py), so rtol 1e-13 per component, and 1e-13 of the largest
    component as atol for components that are small differences of large terms (CIT's
    TPO balance, production minus clearance: -0.094, 4.5e-15 apart with FMA)."""
    model = pp.load_model(name)
    kernel = compile_kernel(model)
    assert kernel.LANES == LANES
    assert kernel.N_UNIFORM == (1 if feedback_mode is not None else 0)
    rng = np.random.default_rng(11)
    n_q = len(model.parameters) + len(model.covariates) + kernel.N_CONSTANTS
    n = len(model.states)
    q = np.empty((LANES, n_q))
    y = rng.uniform(0.1, 400, size=(LANES, n))
    for lane in range(LANES):
        values = {p.name: rng.uniform(p.lower, p.upper) if np.isfinite(p.upper) else p.value
                  for p in model.parameters.values() if p.name != "feedback_mode"}
        if feedback_mode is not None:
            values["feedback_mode"] = feedback_mode
        q[lane] = hoisted_parameters(model, model.parameter_vector(values))
    lanes = np.empty(n * LANES)
    kernel.rhs_lanes(3.5, np.ascontiguousarray(y.T).ravel(), lane_parameters(model, q), lanes)
    for lane in range(LANES):
        expected = np.empty(n)
        kernel.rhs_hoisted(3.5, y[lane].copy(), q[lane].copy(), expected)
        np.testing.assert_allclose(lanes.reshape(n, LANES)[:, lane], expected, rtol=1e-13,
                                   atol=1e-13 * np.max(np.abs(expected)))


def test_every_subject_of_a_lockstep_cohort_meets_its_tolerance(one_compartment):
    # 21 subjects: one full group and one of 5 (11 spare lanes repeating the last subject);
    # absorption rates from 0.3 to 3 /h, so the groups' steps are set by different subjects
    rtol, atol = 1e-8, 1e-10
    rates = np.linspace(0.3, 3.0, 21)
    hours = np.linspace(0, 72, 145)
    batch = pp.simulate_batch(one_compartment, "oral 100 mg qd d1-3", times=hours / 24,
                              params={"absorption_rate": rates},
                              solver=pp.DormandPrince853(rtol=rtol, atol=atol), execution="lockstep")
    assert np.all(batch.status == pp.Status.SUCCESS)
    for subject, rate in enumerate(rates):
        exact = bateman(hours, [0, 24, 48], 100.0, rate)
        # DOP853 bounds the local error; its global error on these closed forms, integrated
        # one subject at a time at the same settings, was measured at 0.2-8.5x the tolerance
        # over these absorption rates (lock step: 0.00-5.2x), so 10 is the bound; a broken
        # lane, group or interpolant is off by orders of magnitude
        assert scaled_error(batch.output("concentration")[subject], exact, rtol, atol) < 10.0
    # one step size per group: every member carries the group's counters
    assert np.all(batch.counters[:LANES] == batch.counters[0])
    assert np.all(batch.counters[LANES:] == batch.counters[LANES])


def test_lockstep_infusions_meet_the_closed_form(one_compartment):
    # 100 mg over 2 h on days 1 and 2 (input rates switch on and off inside the group's
    # segments), elimination rates 0.05-0.5 /h over 18 subjects (a full and a partial group)
    rtol, atol = 1e-8, 1e-10
    rates = np.linspace(0.05, 0.5, 18)
    hours = np.linspace(0, 48, 193)
    batch = pp.simulate_batch(one_compartment, "iv 100 mg over 2h qd d1-2",
                              times=hours / 24, params={"elimination_rate": rates},
                              solver=pp.DormandPrince853(rtol=rtol, atol=atol), execution="lockstep")
    assert np.all(batch.status == pp.Status.SUCCESS)
    assert np.all(batch.counters[:LANES] == batch.counters[0])  # ran in lock step
    for subject, ke in enumerate(rates):
        exact = np.zeros_like(hours)
        for start in (0.0, 24.0):  # superposed zero-order inputs of 50 mg/h for 2 h
            t = np.clip(hours - start, 0.0, None)
            during = 50.0 / (ke * VOLUME) * (1 - np.exp(-ke * np.minimum(t, 2.0)))
            exact += np.where(t <= 2.0, during, during * np.exp(-ke * (t - 2.0)))
        # DOP853's allowance on closed forms (test_integrator.allowed): 3
        assert scaled_error(batch.output("concentration")[subject], exact, rtol,
                            atol / VOLUME) < 3.0, subject


def test_marrow_reserve_lanes_equal_its_scalar_rhs_with_the_cube_and_without():
    """cit_marrow_reserve's rhs_lanes, lane by lane, against rhs_hoisted (math.pow): at the
    declared exponents (ceiling sharpness 2, exhaustion exponent 3) the lanes take their
    cheaper forms (the exhaustion term's reserve ** 3 as cube(reserve): within 2 ulp of
    pow, tests/test_expressions.py), with one lane at exponent 2.5 the group takes
    vector_power; both within the tolerance of the test above (rtol 1e-13, with 1e-13 of the
    largest component as atol). States from 0.01 to 2 of their healthy values, every
    subject's parameters different (test input)."""
    model = pp.load_model("models/cit_marrow_reserve.toml")
    kernel = compile_kernel(model)
    assert "cube(s_reserve)" in model.source.split("def rhs_lanes(")[1]
    rng = np.random.default_rng(29)
    n = len(model.states)
    healthy = np.asarray(pp.simulate(model, times=[0.0]).states).reshape(-1, n)[0]
    y = rng.uniform(0.01, 2.0, size=(LANES, n)) * np.maximum(healthy, 1e-3)
    for odd in (False, True):
        q = np.empty((LANES, len(model.parameters) + len(model.covariates) + kernel.N_CONSTANTS))
        for lane in range(LANES):
            values = {name: model.parameters[name].value * rng.uniform(0.7, 1.3)
                      for name in ("chemotherapy_sensitivity", "reserve_regeneration_rate",
                                   "het_ec50", "reserve_exhaustion_level")}
            if odd and lane == 5:
                values["reserve_exhaustion_exponent"] = 2.5
            q[lane] = hoisted_parameters(model, model.parameter_vector(values))
        # as the integrator builds q: the exact-powers test (the last uniform value) is the
        # group's minimum, in lane 0 (kernels.uniform tests; tests/test_expressions.py)
        tests = np.empty((LANES, kernel.N_UNIFORM))
        for lane in range(LANES):
            kernel.uniform_conditions(q[lane], tests[lane])
        assert tests[:, -1].min() == (0.0 if odd else 1.0)
        tests[0, -1] = tests[:, -1].min()
        lanes = np.empty(n * LANES)
        kernel.rhs_lanes(3.5, np.ascontiguousarray(y.T).ravel(),
                         np.ascontiguousarray(np.hstack([q, tests]).T).ravel(), lanes)
        for lane in range(LANES):
            expected = np.empty(n)
            kernel.rhs_hoisted(3.5, y[lane].copy(), q[lane].copy(), expected)
            np.testing.assert_allclose(lanes.reshape(n, LANES)[:, lane], expected,
                                       rtol=1e-13, atol=1e-13 * np.max(np.abs(expected)))


def test_lockstep_marrow_reserve_cohort_matches_scipy_radau():
    """cit_marrow_reserve in lock step (its lanes take the exhaustion term's cube and the
    ceiling's exact powers) against scipy Radau at rtol 1e-10: the benchmark's criterion,
    platelets within 1e-6 relative, through a chemotherapy nadir and hetrombopag d9-22
    (the cost command's regimen, scripts/marrow_reserve_checks.py), for 17 subjects with
    their damage around twice the typical value with a CV of 0.3 (test input), so that
    some reserves fall below the exhaustion level (0.3), and one group is partial."""
    model = pp.load_model("models/cit_marrow_reserve.toml")
    regimen = "chemotherapy 1 dose d1 + hetrombopag 7.5 mg qd d9-22"
    rng = np.random.default_rng(31)
    n = 17
    damage = 2 * model.parameters["chemotherapy_sensitivity"].value * np.exp(
        0.3 * rng.standard_normal(n))  # twice the typical: reserves fall below 0.3
    times = np.linspace(0, 42, 85)
    batch = pp.simulate_batch(model, regimen, times=times,
                              params={"chemotherapy_sensitivity": damage},
                              covariates={"body_weight": 65.0}, keep_states=True,
                              solver=pp.DormandPrince853(rtol=1e-10, atol=1e-12),
                              execution="lockstep")
    assert np.all(batch.status == pp.Status.SUCCESS)
    reserve = batch.states[:, :, [state.name for state in model.states].index("reserve")]
    assert reserve.min() < model.parameters["reserve_exhaustion_level"].value
    for subject in (int(np.argmax(damage)), 3, 16):
        reference = reference_solution(model, regimen, times=times,
                                       params={"chemotherapy_sensitivity": damage[subject]},
                                       covariates={"body_weight": 65.0},
                                       rtol=1e-10, atol=1e-12)
        ours = batch.output("platelets")[subject]
        assert np.max(np.abs(ours / reference["platelets"] - 1)) < 1e-6, subject


def test_lockstep_cit_cohort_matches_scipy_radau():
    """The benchmark's criterion (platelets within 1e-6 relative of Radau at rtol 1e-10) for
    subjects of a full and of a partial group, with inter-individual variability."""
    model = pp.load_model("cit_thrombopoiesis")
    regimen = every_drug_daily(model)
    rng = np.random.default_rng(5)
    n = 20
    params = {name: model.parameters[name].value * np.exp(0.3 * rng.standard_normal(n))
              for name in ("progenitor_transit_time", "platelets_baseline", "het_ec50")}
    times = np.linspace(0, 28, 57)
    batch = pp.simulate_batch(model, regimen, times=times, params=params,
                              solver=pp.DormandPrince853(rtol=1e-10, atol=1e-12), execution="lockstep")
    assert np.all(batch.status == pp.Status.SUCCESS)
    for subject in (0, 7, 15, 19):
        values = {name: column[subject] for name, column in params.items()}
        reference = reference_solution(model, regimen, times=times, params=values,
                                       rtol=1e-10, atol=1e-12)
        ours = batch.output("platelets")[subject]
        assert np.max(np.abs(ours / reference["platelets"] - 1)) < 1e-6, subject


def test_a_failing_subject_is_flagged_alone_and_its_group_falls_back(one_compartment):
    # subject 1 is stiff and runs out of steps; alone in its group it would drag the shared
    # step down, so the group is integrated subject by subject: the others must equal the
    # one-at-a-time integrator to the last bit
    rates = np.full(6, 1.2)
    rates[1] = 1e5
    settings = dict(rtol=1e-6, atol=1e-9, max_steps=2000)
    kwargs = dict(days=3, params={"absorption_rate": rates})
    locked = pp.simulate_batch(one_compartment, "oral 100 mg qd d1-3", **kwargs,
                               solver=pp.DormandPrince853(**settings), execution="lockstep")
    alone = pp.simulate_batch(one_compartment, "oral 100 mg qd d1-3", **kwargs,
                              solver=pp.DormandPrince853(**settings))
    assert [pp.Status(s) for s in locked.status] == [
        pp.Status.SUCCESS, pp.Status.MAX_STEPS, *[pp.Status.SUCCESS] * 4]
    np.testing.assert_array_equal(locked.outputs, alone.outputs)
    np.testing.assert_array_equal(locked.counters, alone.counters)


def test_subjects_whose_dose_times_differ_after_lag_are_integrated_one_at_a_time(
        one_compartment):
    lags = np.linspace(0.2, 1.0, 5)
    kwargs = dict(days=2, params={"lag_time": lags})
    locked = pp.simulate_batch(one_compartment, "oral 100 mg qd d1-2", **kwargs,
                               solver=pp.DormandPrince853(), execution="lockstep")
    alone = pp.simulate_batch(one_compartment, "oral 100 mg qd d1-2", **kwargs,
                              solver=pp.DormandPrince853())
    assert np.all(locked.status == pp.Status.SUCCESS)
    np.testing.assert_array_equal(locked.outputs, alone.outputs)
    np.testing.assert_array_equal(locked.counters, alone.counters)


def test_a_group_that_disagrees_on_a_model_switch_is_integrated_one_at_a_time():
    # rhs_lanes takes CIT's feedback_mode test as one value per group; a group mixing the
    # mechanistic (0) and Friberg (1) feedback must give the one-at-a-time results exactly,
    # and a group agreeing on Friberg's feedback runs in lock step on that variant
    model = pp.load_model("cit_thrombopoiesis")
    modes = np.array([0.0, 1.0, 0.0, 1.0] + [1.0] * LANES)  # group 1 mixed, group 2 all 1
    baselines = np.linspace(150.0, 350.0, modes.size)
    kwargs = dict(days=28, params={"feedback_mode": modes, "platelets_baseline": baselines})
    regimen = "chemotherapy 1 dose d1 + hetrombopag 7.5 mg qd d9-22"
    settings = dict(rtol=1e-8, atol=1e-10)
    locked = pp.simulate_batch(model, regimen, **kwargs,
                               solver=pp.DormandPrince853(**settings), execution="lockstep")
    alone = pp.simulate_batch(model, regimen, **kwargs, solver=pp.DormandPrince853(**settings))
    assert np.all(locked.status == pp.Status.SUCCESS)
    np.testing.assert_array_equal(locked.outputs[:LANES], alone.outputs[:LANES])
    np.testing.assert_array_equal(locked.counters[:LANES], alone.counters[:LANES])
    # the second group shares one step size (lock step ran) ...
    assert np.all(locked.counters[LANES:] == locked.counters[LANES])
    # ... and meets its tolerance: lock step and one at a time both carry DOP853's error
    # (the benchmark criterion, 1e-6 of Radau, is checked for lock step above); at rtol 1e-8
    # they agree far inside it
    np.testing.assert_allclose(locked.output("platelets")[LANES:],
                               alone.output("platelets")[LANES:], rtol=1e-6)
    # and the switch did act: Friberg's feedback gives other counts than the mechanistic one
    # (measured: at least 9.7% apart at some day for every one of these 16 subjects, so a
    # variant that ignored the switch would fail this 1% check)
    mechanistic = pp.simulate_batch(model, regimen, days=28, params={
        "platelets_baseline": baselines[LANES:]}, solver=pp.DormandPrince853(**settings))
    gap = np.abs(mechanistic.output("platelets") / locked.output("platelets")[LANES:] - 1)
    assert np.all(np.max(gap, axis=1) > 0.01)  # for every subject


def test_lockstep_results_do_not_depend_on_the_thread_count():
    model = pp.load_model("cit_thrombopoiesis")
    rng = np.random.default_rng(2)
    params = {"platelets_baseline": model.parameters["platelets_baseline"].value
              * np.exp(0.2 * rng.standard_normal(40))}
    solver = pp.DormandPrince853(rtol=1e-6)
    threads = numba.get_num_threads()
    runs = []
    try:
        for count in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(count)
            runs.append(pp.simulate_batch(model, "hetrombopag 7.5 mg qd d1-14", days=28,
                                          params=params, solver=solver,
                                          execution="lockstep"))
    finally:
        numba.set_num_threads(threads)
    np.testing.assert_array_equal(runs[0].outputs, runs[1].outputs)
    np.testing.assert_array_equal(runs[0].counters, runs[1].counters)


def test_one_subject_ignores_lockstep(one_compartment):
    single = pp.simulate_batch(one_compartment, "oral 100 mg qd d1-3", days=3, n=1,
                               solver=pp.DormandPrince853(), execution="lockstep")
    with pytest.warns(DeprecationWarning, match='execution="lockstep"'):
        flagged = pp.simulate(one_compartment, "oral 100 mg qd d1-3", days=3,
                              solver=pp.DormandPrince853(lockstep=True))
    alone = pp.simulate(one_compartment, "oral 100 mg qd d1-3", days=3,
                        solver=pp.DormandPrince853())
    np.testing.assert_array_equal(single.outputs, alone.outputs)
    np.testing.assert_array_equal(flagged.outputs, alone.outputs)


@pytest.mark.parametrize("value", [1, "yes", None])
def test_lockstep_must_be_true_or_false(value):
    with pytest.raises(pp.SimulationInputError, match="lockstep must be True or False"):
        pp.DormandPrince853(lockstep=value)


@pytest.mark.parametrize("solver", [pp.DormandPrince5, pp.Rosenbrock23])
def test_lockstep_is_refused_by_the_other_methods_with_a_pointer(solver):
    with pytest.raises(pp.SimulationInputError, match=r'DormandPrince853\(\), execution="lockstep"'):
        solver(lockstep=True)
    with pytest.raises(pp.SimulationInputError, match=r'DormandPrince853\(\), execution="lockstep"'):
        pp.simulate_batch("friberg_platelets", days=1, n=2, solver=solver(),
                          execution="lockstep")


@pytest.mark.parametrize("execution", ["lock-step", "vectorised", 1, True])
def test_an_unknown_execution_is_a_clear_error(execution):
    with pytest.raises(pp.SimulationInputError, match="execution must be one of 'subjects', "
                                                      "'lockstep'"):
        pp.simulate_batch("friberg_platelets", days=1, n=2, execution=execution)


def test_the_deprecated_lockstep_flag_is_the_lockstep_execution(one_compartment):
    # DormandPrince853(lockstep=True) keeps working, with a DeprecationWarning, and gives
    # exactly the lock-step execution's results (group counters: every member the same),
    # not the one-subject execution's; provenance records the execution
    kwargs = dict(days=3, params={"absorption_rate": np.linspace(0.8, 1.6, 5)})
    with pytest.warns(DeprecationWarning, match="deprecated"):
        flagged = pp.simulate_batch(one_compartment, "oral 100 mg qd d1-3", **kwargs,
                                    solver=pp.DormandPrince853(lockstep=True))
    locked = pp.simulate_batch(one_compartment, "oral 100 mg qd d1-3", **kwargs,
                               solver=pp.DormandPrince853(), execution="lockstep")
    alone = pp.simulate_batch(one_compartment, "oral 100 mg qd d1-3", **kwargs,
                              solver=pp.DormandPrince853(), execution="subjects")
    np.testing.assert_array_equal(flagged.outputs, locked.outputs)
    np.testing.assert_array_equal(flagged.counters, locked.counters)
    assert np.all(locked.counters == locked.counters[0])
    assert not np.array_equal(alone.counters, locked.counters)
    assert flagged.provenance["solver"]["execution"] == "lockstep"
    assert alone.provenance["solver"]["execution"] == "subjects"
