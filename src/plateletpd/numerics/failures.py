"""Per-subject failure messages: where an integration stopped and, when a model formula gave
NaN or inf (:attr:`Status.DOMAIN_ERROR`), which formula.

The kernel records the model time and state of every failure (``integrator._failed``; for a
formula, the Runge-Kutta stage whose derivative was not finite). Here, once per failed
subject, the model's formulas are evaluated again in plain Python at that point, lazily and
in the kernel's order (a derived quantity only when an ODE reads it, only the branch of
``a if c else b`` that is taken), to name the first one that is not finite although
everything it reads is. Successful subjects whose *output* formula is not finite are
flagged here too (:func:`flag_non_finite_outputs`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Iterator

import numpy as np

from plateletpd.numerics.solvers import Status, renamed_keyword

if TYPE_CHECKING:  # pragma: no cover
    from plateletpd.model.expressions import Expression
    from plateletpd.model.definition import Model


class _Culprit(Exception):
    """The first formula found not finite (its description travels in ``args[0]``)."""


class _LazyValues(Mapping):
    """Names -> values for :meth:`Expression.evaluate`; a derived quantity is computed (and
    checked) when it is first read."""

    def __init__(self, model: "Model", values: dict[str, float]):
        self.derived = dict(model.derived)
        self.values = values

    def __getitem__(self, name: str) -> float:
        if name not in self.values:
            expression = self.derived[name]
            self.values[name] = _finite(expression, self,
                                        f"derived quantity {name} = {expression.text}")
        return self.values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)


def _finite(expression: "Expression", values: Mapping, what: str) -> float:
    try:
        with np.errstate(all="ignore"):
            value = expression.evaluate(values)
    except (ArithmeticError, ValueError):  # math.log(-1), 1.0 / 0.0, math.exp(1000)
        raise _Culprit(what) from None
    if not math.isfinite(value):
        raise _Culprit(what)
    return value


def _day(model: "Model", time: float) -> str:
    return f"day {time * model.days_per_time_unit:.6g}"


@renamed_keyword("parameters", "parameter_vector")
def failure_message(model: "Model", status: int, parameter_vector: np.ndarray,
                    failure: np.ndarray) -> str:
    """The message of one failed subject: the status, the time (days) and, for
    DOMAIN_ERROR, the formula and the state it was evaluated at.

    ``parameter_vector`` holds the subject's parameters then covariates (the keyword was
    ``parameters`` before, still accepted, deprecated); ``failure`` the model time then the
    state where the kernel stopped (NaN if it did not say)."""
    status = Status(int(status))
    if status == Status.INVALID_INPUT or not np.isfinite(failure[0]):
        return status.message
    time, state = float(failure[0]), failure[1:]
    where = _day(model, time)
    if status != Status.DOMAIN_ERROR:
        return f"{status.message} (stopped at {where})"
    names = model.parameter_names + model.covariate_names
    values = {name: np.float64(v) for name, v in zip(names, parameter_vector)}
    values["t"] = np.float64(time)
    initial = not np.all(np.isfinite(state))
    if not initial:
        values.update({s.name: np.float64(v) for s, v in zip(model.states, state)})
    lazy = _LazyValues(model, values)
    try:
        for s in model.states:
            if initial:
                _finite(s.initial, lazy, f"the initial value of state {s.name} = "
                                         f"{s.initial.text}")
            else:
                _finite(s.ode, lazy, f"the ODE of state {s.name}: d{s.name}/dt = "
                                     f"{s.ode.text}")
    except _Culprit as culprit:
        found = culprit.args[0]
    else:
        found = "a formula that is finite when evaluated again in plain Python"
    at = "" if initial else " with " + ", ".join(
        f"{s.name} = {v:.4g}" for s, v in zip(model.states, state))
    return f"{status.message}: {found} is not finite at {where}{at}"


def flag_non_finite_outputs(model: "Model", times: np.ndarray, outputs: np.ndarray,
                            states: np.ndarray | None, status: np.ndarray,
                            details: dict[int, str]) -> None:
    """Successful subjects with an output that is NaN or inf (an output formula such as
    ``log(central)`` at a zero amount): DOMAIN_ERROR, naming the output and the first time,
    with outputs (and states) NaN from that time on. Changes the arrays in place."""
    # a subject's sum is finite when every output is (one read of the array; a sum that
    # overflows only sends the subject to the element-wise check below)
    with np.errstate(over="ignore", invalid="ignore"):
        sums = outputs.reshape(len(outputs), -1).sum(axis=1)
    suspects = np.flatnonzero((status == Status.SUCCESS) & ~np.isfinite(sums))
    for subject in suspects:
        finite = np.isfinite(outputs[subject]).all(axis=1)
        if finite.all():
            continue
        first = int(np.argmin(finite))
        output = model.outputs[int(np.argmin(np.isfinite(outputs[subject, first])))]
        status[subject] = Status.DOMAIN_ERROR
        details[int(subject)] = (f"{Status.DOMAIN_ERROR.message}: output {output.name} = "
                                 f"{output.expression.text} is not finite at day "
                                 f"{times[first]:.6g}")
        outputs[subject, first:] = np.nan
        if states is not None:
            states[subject, first:] = np.nan
