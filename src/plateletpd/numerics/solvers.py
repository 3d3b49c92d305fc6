"""Solver choices and outcomes: pluggable, self-validating settings and a status enumeration.

Pass a solver to :func:`plateletpd.simulate` (``solver=DormandPrince5(rtol=1e-8)``); it
knows nothing about models. The integrators themselves live in :mod:`plateletpd.numerics.integrator`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from enum import IntEnum

import numpy as np

from . import integrator
from plateletpd.errors import SimulationInputError


class Status(IntEnum):
    """Outcome of one subject's integration."""

    SUCCESS = integrator.SUCCESS
    MAX_STEPS = integrator.MAX_STEPS
    STEP_SIZE_UNDERFLOW = integrator.STEP_SIZE_UNDERFLOW
    NON_FINITE = integrator.NON_FINITE
    SINGULAR_MATRIX = integrator.SINGULAR_MATRIX
    INVALID_INPUT = integrator.INVALID_INPUT
    DOMAIN_ERROR = integrator.DOMAIN_ERROR

    @property
    def message(self) -> str:
        return _MESSAGES[self]


_MESSAGES = {
    Status.SUCCESS: "integration succeeded",
    Status.MAX_STEPS: "stopped after the maximum number of steps (max_steps); the model may "
                      "be stiff (try solver=Rosenbrock23()) or max_steps too small",
    Status.STEP_SIZE_UNDERFLOW: "the step size fell below machine precision; the solution "
                                "probably has a singularity or a discontinuity not declared "
                                "as a dose event",
    Status.NON_FINITE: "the state became NaN or infinite (an exploding solution); check the "
                       "parameters",
    Status.SINGULAR_MATRIX: "the stiff solver's iteration matrix is singular",
    Status.INVALID_INPUT: "invalid per-subject input: a bioavailability or lag that is "
                          "negative or not finite, or a parameter outside its bounds",
    Status.DOMAIN_ERROR: "a model formula gave a non-finite value (log or square root of a "
                         "negative number, a division by zero, an overflowing exp or power)",
}

#: Names of the per-subject cost counters, in the order the integrator fills them.
COUNTERS = ("steps", "rejected_steps", "rhs_evaluations", "jacobian_evaluations")
assert len(COUNTERS) == integrator.N_COUNTERS


@dataclass(frozen=True)
class _AdaptiveSolver:
    rtol: float = 1e-6
    atol: float = 1e-9
    max_steps: int = 100_000
    max_step: float = math.inf  # in days
    #: After a dose the first step may be up to this many times Hairer's cold-start step,
    #: but no longer than the step in use before the dose (1: cold start at every dose).
    #: 10 saves 9-11% of DOP853's right-hand-side calls on the daily-dosing benchmark
    #: regimens at the same accuracy (benchmarks/README.md); larger values cost rejections.
    restart_growth: float = 10.0
    #: DormandPrince853 only (other methods refuse it with a pointer). Integrate a batch's
    #: subjects in groups of 16 that share one step size (the shortest any of them needs),
    #: so the model runs as vectorised (SIMD) loops over subjects:
    #: 1.7x faster per subject on the 10^5-subject CIT cohort benchmark (41 against 71 us on
    #: 2 cores, same rtol; benchmarks/README.md). Every subject still meets ``rtol`` and
    #: ``atol`` at every step (the group takes the steps its hardest member needs, 2-7% more
    #: right-hand-side calls per subject on the CIT cohorts). A group whose dose
    #: times differ after lag, or in which any subject fails, is integrated one subject
    #: at a time instead, so statuses stay per subject. One-subject runs are not affected.
    #: A subject's lock-step and one-subject results (which one it gets depends on its
    #: neighbours) agree within 10 x rtol relative (tested; docs/reliability.md).
    lockstep: bool = False

    method = ""

    def __post_init__(self):
        if not (isinstance(self.rtol, (int, float)) and 1e-14 <= self.rtol < 1):
            raise SimulationInputError(f"rtol must be a number in [1e-14, 1), got "
                                       f"{self.rtol!r}")
        atol = np.asarray(self.atol, dtype=float)
        if not np.all(np.isfinite(atol)) or np.any(atol <= 0):
            raise SimulationInputError(f"atol must be positive and finite (a number or one per "
                                       f"state), got {self.atol!r}")
        if not (isinstance(self.max_steps, (int, np.integer)) and self.max_steps >= 1):
            raise SimulationInputError(f"max_steps must be a positive integer, got "
                                       f"{self.max_steps!r}")
        if not (isinstance(self.max_step, (int, float)) and self.max_step > 0):
            raise SimulationInputError(f"max_step must be a positive number of days, got "
                                       f"{self.max_step!r}")
        if not (isinstance(self.restart_growth, (int, float))
                and 1 <= self.restart_growth < math.inf):
            raise SimulationInputError(f"restart_growth must be a finite number >= 1 (1 restarts "
                                       f"cold at every dose), got {self.restart_growth!r}")
        if not isinstance(self.lockstep, (bool, np.bool_)):
            raise SimulationInputError(f"lockstep must be True or False, got {self.lockstep!r}")
        if self.lockstep and self.method != "dop853":
            raise SimulationInputError(
                f"lockstep=True is only available for DormandPrince853 (the vectorised "
                f"integrator is DOP853), not {type(self).__name__}; use "
                f"DormandPrince853(lockstep=True) for cohorts")

    def atol_vector(self, n_states: int) -> np.ndarray:
        atol = np.broadcast_to(np.asarray(self.atol, dtype=float), (n_states,))
        if np.ndim(self.atol) and np.size(self.atol) != n_states:
            raise SimulationInputError(f"atol has {np.size(self.atol)} values but the model "
                                       f"has {n_states} states")
        return np.ascontiguousarray(atol)

    def describe(self) -> dict:
        values = asdict(self)
        values["atol"] = np.asarray(self.atol).tolist()
        return {"method": self.method, **values}


@dataclass(frozen=True)
class DormandPrince5(_AdaptiveSolver):
    """Explicit Runge-Kutta 5(4) with dense output: the default, for non-stiff models."""

    method = "dopri5"
    method_code = integrator.DOPRI5


@dataclass(frozen=True)
class DormandPrince853(_AdaptiveSolver):
    """Explicit Runge-Kutta 8(5,3) with 7th-order dense output (Hairer's DOP853), for
    non-stiff models at tight tolerances: about half the right-hand-side calls of
    :class:`DormandPrince5` for platelet counts accurate to 1e-6 (benchmarks/README.md).

    Limitation: once a fast-absorbed drug has washed out, its steps sit at the stability
    limit of the drug states, whose values then carry noise well above ``atol`` (tiny
    against the peak, but not tolerance-controlled). The slow platelet states are not
    affected; use :class:`DormandPrince5` where drug-concentration tails matter."""

    method = "dop853"
    method_code = integrator.DOP853



@dataclass(frozen=True)
class Rosenbrock23(_AdaptiveSolver):
    """L-stable Rosenbrock 2(3) (ode23s) for stiff models; costs a Jacobian per step."""

    method = "rosenbrock23"
    method_code = integrator.ROSENBROCK23


#: Settings that make outputs agree with a tight reference to about 1e-7 relative.
TIGHT = DormandPrince5(rtol=1e-9, atol=1e-12)
