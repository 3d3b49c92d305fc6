"""Solver choices and outcomes: pluggable, self-validating settings and a status enumeration.

Pass a solver to :func:`plateletpd.simulate` (``solver=DormandPrince5(rtol=1e-8)``); it
knows nothing about models. The integrators themselves live in
:mod:`plateletpd.numerics.integrator`, the methods' coefficients in
:mod:`plateletpd.numerics.tableaux`. :class:`Solver` documents the contract for a new one;
how a batch is executed (one subject at a time or in lock step) is a separate choice
(:data:`EXECUTIONS`).
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import asdict, dataclass
from enum import IntEnum
from typing import ClassVar

import numpy as np

from plateletpd.numerics import integrator, tableaux
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

    def __str__(self) -> str:  # the name, not the integer (IntEnum's default since 3.11)
        return self.name

    def __repr__(self) -> str:
        return f"Status.{self.name}"


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


#: How :func:`plateletpd.simulate_batch` runs a batch's subjects (its ``execution=``), apart
#: from the method and its step control (the solver). Results of one subject never depend
#: on the execution beyond the tolerance (tested).
EXECUTIONS = {
    # each subject integrated on its own, in parallel over subjects: any solver
    "subjects": "each subject on its own (any solver)",
    # groups of 16 subjects that share one step size (the shortest any of them needs), so
    # the model runs as vectorised (SIMD) loops over subjects: 1.7x faster per subject on
    # the 10^5-subject CIT cohort benchmark (41 against 71 us on 2 cores, same rtol;
    # benchmarks/README.md). Every subject still meets rtol and atol at every step (the
    # group takes the steps its hardest member needs: 2-7% more right-hand-side calls per
    # subject on the CIT cohorts). A group whose dose times differ after lag, or in which
    # any subject fails, is integrated one subject at a time instead, so statuses stay per
    # subject; one-subject batches are not affected. A subject's lock-step and one-subject
    # results agree within 10 x rtol relative (tested; docs/reliability.md).
    "lockstep": "groups of 16 subjects sharing one step size, vectorised over subjects "
                "(DormandPrince853 only)",
}


@dataclass(frozen=True)
class Solver:
    """Base class of every solver: a method with its step-size control and tolerances.

    A solver is settings, validated when it is built; it knows nothing about models, and
    not how a batch is executed (:data:`EXECUTIONS`, ``simulate_batch(execution=...)``).
    Its integration runs inside the model's compiled kernel
    (:mod:`plateletpd.numerics.integrator`), selected by ``method_code``.

    **Contract for a new solver** (docs/architecture.md, "Adding a solver"):

    * An explicit Runge-Kutta pair is a :class:`~plateletpd.numerics.tableaux.ButcherTableau`
      appended to ``tableaux.GENERATED`` and a subclass of :class:`ExplicitRungeKutta`
      naming it (``tableau = ...``); nothing else changes.
    * Any other method is a segment function in the integrator template, called by
      ``solve_subject`` for its ``method_code``, with this contract. It **receives** the
      segment's start ``t`` and end ``t_end`` (model time; the integration restarts at
      every dose, so a segment never crosses a breakpoint), the state ``y`` (advanced in
      place to ``t_end``), the parameter vector ``p`` (parameters, covariates, then the
      parameter-only derived quantities), the zero-order input rates ``rate`` of running
      infusions (added to the right-hand side), the output times and the index ``io`` of
      the next one not yet recorded (it records every output strictly before ``t_end``
      from accepted steps, with dense output: outputs never shorten a step), ``rtol``,
      ``atol`` (one per state), ``max_step``, ``max_steps``, ``restart_growth`` and the
      step the previous segment proposed (``h_previous``), and scratch rows ``work``.
      It **returns** (status, next ``io``, the step it proposes after ``t_end``).
    * It **counts**, in the subject's ``counters`` (:data:`COUNTERS`, which tests assert
      on): accepted steps, rejected steps (including retries after a non-finite error),
      right-hand-side evaluations (every call, through the integrator's ``_f``) and
      Jacobian evaluations (0 for explicit methods). ``max_steps`` bounds accepted plus
      rejected steps.
    * It **returns a status** of :class:`Status` (each with its message): SUCCESS,
      MAX_STEPS, STEP_SIZE_UNDERFLOW (step below round-off), NON_FINITE (the state blew
      up), DOMAIN_ERROR (a formula gave NaN or inf from finite values: the failing stage is
      found by ``_stage_failure``), SINGULAR_MATRIX (implicit methods). On failure it
      records where (``_failed``: time and state); outputs recorded before stay, the rest
      stay NaN, and the subject is flagged alone.

    Subclasses set ``method`` (its name in provenance records) and ``method_code``.
    """

    rtol: float = 1e-6
    atol: float = 1e-9
    max_steps: int = 100_000
    max_step: float = math.inf  # in days
    #: After a dose the first step may be up to this many times Hairer's cold-start step,
    #: but no longer than the step in use before the dose (1: cold start at every dose).
    #: 10 saves 9-11% of DOP853's right-hand-side calls on the daily-dosing benchmark
    #: regimens at the same accuracy (benchmarks/README.md); larger values cost rejections.
    restart_growth: float = 10.0
    #: Deprecated: use ``simulate_batch(..., execution="lockstep")`` (:data:`EXECUTIONS`).
    #: ``DormandPrince853(lockstep=True)`` still works, as that execution, with a
    #: DeprecationWarning.
    lockstep: bool = False

    method: ClassVar[str] = ""
    method_code: ClassVar[int] = -1
    #: Whether ``execution="lockstep"`` can run this solver (the vectorised integrator).
    lockstep_capable: ClassVar[bool] = False

    def __post_init__(self):
        if not self.method:
            raise SimulationInputError(f"{type(self).__name__} is a base class; use a solver: "
                                       f"{', '.join(solver_names())}")
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
        if self.lockstep:
            _lockstep_check(self)
            warnings.warn(f"{type(self).__name__}(lockstep=True) is deprecated: lock step is "
                          f"how a batch is executed, not a solver setting; pass "
                          f"execution=\"lockstep\" to simulate_batch instead",
                          DeprecationWarning, stacklevel=3)

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


#: Kept for code that imported the former private name.
_AdaptiveSolver = Solver


def renamed_keyword(old: str, new: str):
    """Decorator: a function whose keyword ``old`` was renamed ``new`` still accepts
    ``old=`` (with a DeprecationWarning naming the new keyword); both at once is an error."""
    def decorate(function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            if old in kwargs:
                if new in kwargs:
                    raise TypeError(f"{function.__name__}() got both {old}= (deprecated) and "
                                    f"{new}=; pass {new}= only")
                warnings.warn(f"{function.__name__}({old}=...) is deprecated; the keyword is "
                              f"now {new}=", DeprecationWarning, stacklevel=2)
                kwargs[new] = kwargs.pop(old)
            return function(*args, **kwargs)
        return wrapper
    return decorate


def _lockstep_check(solver: Solver) -> None:
    if not solver.lockstep_capable:
        raise SimulationInputError(
            f"lock-step execution is only available for DormandPrince853 (the vectorised "
            f"integrator is DOP853), not {type(solver).__name__}; use "
            f"simulate_batch(..., solver=DormandPrince853(), execution=\"lockstep\")")


def resolve_execution(solver: Solver, execution: str | None) -> str:
    """The execution of a batch (:data:`EXECUTIONS`): ``execution`` checked against the
    solver, or, when None, the deprecated ``solver.lockstep`` flag's."""
    if execution is None:
        return "lockstep" if solver.lockstep else "subjects"
    if not isinstance(execution, str) or execution not in EXECUTIONS:
        raise SimulationInputError(f"execution must be one of {', '.join(map(repr, EXECUTIONS))}"
                                   f", got {execution!r}")
    if execution == "lockstep":
        _lockstep_check(solver)
    return execution


@dataclass(frozen=True)
class DormandPrince5(Solver):
    """Explicit Runge-Kutta 5(4) with dense output: the default, for non-stiff models."""

    method = "dopri5"
    method_code = integrator.DOPRI5


@dataclass(frozen=True)
class DormandPrince853(Solver):
    """Explicit Runge-Kutta 8(5,3) with 7th-order dense output (Hairer's DOP853), for
    non-stiff models at tight tolerances: about half the right-hand-side calls of
    :class:`DormandPrince5` for platelet counts accurate to 1e-6 (benchmarks/README.md).

    Limitation: once a fast-absorbed drug has washed out, its steps sit at the stability
    limit of the drug states, whose values then carry noise well above ``atol`` (tiny
    against the peak, but not tolerance-controlled). The slow platelet states are not
    affected; use :class:`DormandPrince5` where drug-concentration tails matter."""

    method = "dop853"
    method_code = integrator.DOP853
    lockstep_capable = True


@dataclass(frozen=True)
class Rosenbrock23(Solver):
    """L-stable Rosenbrock 2(3) (ode23s) for stiff models; costs a Jacobian per step."""

    method = "rosenbrock23"
    method_code = integrator.ROSENBROCK23


@dataclass(frozen=True)
class ExplicitRungeKutta(Solver):
    """An explicit embedded Runge-Kutta pair run from its Butcher tableau (``tableau``, one
    of :data:`plateletpd.numerics.tableaux.GENERATED`) by the integrator's generic segment:
    Hairer's error norm, the standard step-size controller and cubic Hermite dense output.
    A subclass names its tableau; the method name and code follow from it."""

    tableau: ClassVar[tableaux.ButcherTableau | None] = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.tableau is not None:
            if cls.tableau not in tableaux.GENERATED:
                raise TypeError(f"{cls.__name__}: its tableau must be listed in "
                                f"plateletpd.numerics.tableaux.GENERATED")
            cls.method = cls.tableau.name
            cls.method_code = integrator.FIRST_GENERATED + tableaux.GENERATED.index(cls.tableau)


@dataclass(frozen=True)
class BogackiShampine3(ExplicitRungeKutta):
    """Explicit Runge-Kutta 3(2) of Bogacki and Shampine (MATLAB's ode23), for loose
    tolerances (rtol about 1e-3 to 1e-5) on non-stiff models: 3 right-hand-side calls per
    step."""

    tableau = tableaux.BOGACKI_SHAMPINE_3


def solver_names() -> list[str]:
    """The solver classes one can use, by name."""
    return ["DormandPrince5", "DormandPrince853", "Rosenbrock23", "BogackiShampine3"]


#: Settings that make outputs agree with a tight reference to about 1e-7 relative.
TIGHT = DormandPrince5(rtol=1e-9, atol=1e-12)
