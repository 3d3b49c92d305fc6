"""The Python-side engines: scipy solve_ivp (Python and numba right-hand sides), numbalsoda,
and plateletpd. Each ``solve(case, rtol, atol)`` returns the platelet output at the case's
output times; doses are replayed as boluses by integrating piecewise between dose times
(what every peer without native events has to do)."""

from __future__ import annotations

import numpy as np
from scipy.integrate import solve_ivp

import plateletpd as pp
from plateletpd.dosing.schedules import expand
from plateletpd.simulation.simulate import _integrate
from plateletpd.numerics.kernels import compile_kernel, hoisted_parameters, python_rhs


def piecewise_states(case, step) -> np.ndarray:
    """States at the output times; ``step(y, a, b, t_eval)`` -> (states at t_eval, y(b))."""
    t_out, n = case.t_out, case.n_states
    states = np.empty((t_out.size, n))
    y = case.y0.copy()
    ie, n_events = 0, case.event_time.size
    for a, b in zip(case.bounds[:-1], case.bounds[1:]):
        while ie < n_events and case.event_time[ie] <= a:
            y[case.event_state[ie]] += case.event_amount[ie]
            ie += 1
        inside = (t_out >= a) & (t_out < b)
        at, y = step(y, a, b, t_out[inside])
        states[inside] = at
    states[-1] = y
    return states


def _scipy_step(fun, method, rtol, atol, args):
    def step(y, a, b, t_eval):
        t_eval = np.append(t_eval, b)
        sol = solve_ivp(fun, (a, b), y, method=method, t_eval=t_eval, rtol=rtol, atol=atol,
                        args=args)
        if not sol.success:
            raise RuntimeError(f"solve_ivp {method} failed: {sol.message}")
        return sol.y[:, :-1].T, sol.y[:, -1].copy()
    return step


class Engine:
    name = ""
    description = ""
    ladder = True  # search the tolerance ladder (else use a given tolerance)

    def available(self) -> tuple[bool, str]:
        return True, ""

    def prepare(self, case) -> None:
        """Per-case setup that is not part of a solve (built once, like a user would)."""

    def solve(self, case, rtol: float, atol: float) -> np.ndarray:
        raise NotImplementedError


class ScipyPython(Engine):
    name = "scipy_lsoda_python"
    description = "scipy solve_ivp LSODA, plain-Python rhs (python_rhs(model))"
    ladder = False  # same algorithm and arithmetic as scipy_lsoda_numba: its tolerance

    def prepare(self, case):
        case.cache[self.name] = python_rhs(case.model)

    def solve(self, case, rtol, atol):
        f = case.cache[self.name]
        states = piecewise_states(case, _scipy_step(f, "LSODA", rtol, atol, (case.p,)))
        return case.platelets(states)


def numba_rhs(model):
    import numba

    kernel_rhs = compile_kernel(model).rhs_hoisted  # reads hoisted_parameters(model, p)
    n = len(model.states)

    @numba.njit(cache=False)
    def f(t, y, q):
        dydt = np.empty(n)
        kernel_rhs(t, y, q, dydt)
        return dydt

    return f


class ScipyNumba(Engine):
    method = "LSODA"
    name = "scipy_lsoda_numba"
    description = "scipy solve_ivp LSODA, numba @njit rhs wrapping compile_kernel(model).rhs_hoisted"

    def prepare(self, case):
        key = ("numba_rhs", case.model_name)
        if key not in case.shared:
            case.shared[key] = numba_rhs(case.model)  # compiled lazily on the first solve
        case.cache[self.name] = case.shared[key]

    def solve(self, case, rtol, atol):
        f = case.cache[self.name]
        states = piecewise_states(case, _scipy_step(f, self.method, rtol, atol, (case.q,)))
        return case.platelets(states)


class ScipyRadau(ScipyNumba):
    method = "Radau"
    name = "scipy_radau_numba"
    description = "scipy solve_ivp Radau (implicit, finite-difference Jacobian), numba rhs"


class NumbaLsoda(Engine):
    name = "numbalsoda_lsoda"
    description = "numbalsoda LSODA, numba cfunc rhs, piecewise loop in @njit"

    def available(self):
        try:
            import numbalsoda  # noqa: F401
        except Exception as problem:  # ImportError, or a broken shared library
            return False, (f"numbalsoda not importable ({type(problem).__name__}: {problem}); "
                           "install with `pip install numbalsoda` (needs gfortran)")
        return True, ""

    def prepare(self, case):
        key = ("numbalsoda", case.model_name)
        if key not in case.shared:
            case.shared[key] = _numbalsoda_solver(case.model)
        case.cache[self.name] = case.shared[key]

    def solve(self, case, rtol, atol):
        address, run = case.cache[self.name]
        states = run(address, case.y0, case.q, case.event_time, case.event_state,
                     case.event_amount, case.bounds, case.t_out, rtol, atol)
        if np.isnan(states[0, 0]):
            raise RuntimeError("numbalsoda lsoda failed")
        return case.platelets(states)


def _numbalsoda_solver(model):
    import numba
    from numba import carray, cfunc, njit, types
    from numbalsoda import lsoda, lsoda_sig

    kernel_rhs = compile_kernel(model).rhs_hoisted  # p below is hoisted_parameters(model, ...)
    n = len(model.states)
    n_p = len(model.parameter_names) + len(model.covariate_names) + compile_kernel(model).N_CONSTANTS

    @cfunc(lsoda_sig)
    def rhs(t, u, du, p):
        kernel_rhs(t, carray(u, (n,)), carray(p, (n_p,)), carray(du, (n,)))

    @njit
    def run(address, y0, p, ev_t, ev_s, ev_a, bounds, t_out, rtol, atol):
        y = y0.copy()
        states = np.empty((t_out.size, n))
        ie = 0
        for k in range(bounds.size - 1):
            a, b = bounds[k], bounds[k + 1]
            while ie < ev_t.size and ev_t[ie] <= a:
                y[ev_s[ie]] += ev_a[ie]
                ie += 1
            count = 0
            for j in range(t_out.size):
                if t_out[j] > a and t_out[j] < b:
                    count += 1
            t_eval = np.empty(count + 2)
            t_eval[0] = a
            m = 1
            for j in range(t_out.size):
                if t_out[j] == a:
                    states[j] = y
                elif t_out[j] > a and t_out[j] < b:
                    t_eval[m] = t_out[j]
                    m += 1
            t_eval[m] = b
            usol, success = lsoda(address, y, t_eval, p, rtol, atol, 100000)
            if not success:
                states[:] = np.nan
                return states
            m = 1
            for j in range(t_out.size):
                if t_out[j] > a and t_out[j] < b:
                    states[j] = usol[m]
                    m += 1
            y = usol[count + 1].copy()
        states[t_out.size - 1] = y
        return states

    del numba, types
    return rhs.address, run


class Plateletpd(Engine):
    name = "plateletpd"
    description = "plateletpd.simulate (public API, one subject, DormandPrince5)"
    solver = pp.DormandPrince5

    def solve(self, case, rtol, atol):
        result = pp.simulate(case.model, case.regimen, times=case.output_days,
                             solver=self.solver(rtol=rtol, atol=atol), keep_states=False)
        return np.asarray(result["platelets"], dtype=float)


class PlateletpdDop853(Plateletpd):
    name = "plateletpd_dop853"
    description = "plateletpd.simulate (public API, one subject, DormandPrince853)"
    solver = pp.DormandPrince853


class PlateletpdKernel(Engine):
    name = "plateletpd_kernel"
    description = ("plateletpd compiled batch kernel for one subject, inputs validated once "
                   "beforehand (private simulate._integrate): the cost without API overhead")

    def prepare(self, case):
        schedule = expand(pp.Regimen.parse(case.regimen), case.model.dose_targets)
        offset = len(case.model.parameters)
        cov = {c: case.p[offset + i] for i, c in enumerate(case.model.covariate_names)}
        amounts = np.atleast_2d(schedule.amounts(cov))
        case.cache[self.name] = (schedule, np.ascontiguousarray(amounts))

    def solve(self, case, rtol, atol):
        schedule, amounts = case.cache[self.name]
        batch = _integrate(case.model, schedule, case.p[None, :], amounts, case.output_days,
                           pp.DormandPrince5(rtol=rtol, atol=atol), False)
        case.last_counters = batch.counters[0]
        return batch.outputs[0, :, case.platelet_index]


PYTHON_ENGINES = [ScipyPython, ScipyNumba, ScipyRadau, NumbaLsoda, Plateletpd, PlateletpdDop853,
                  PlateletpdKernel]
