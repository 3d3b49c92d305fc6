"""Event schedules: a regimen matched to a model's dose targets, as the flat, time-sorted
list of dose events (every one a breakpoint) the integrator consumes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from plateletpd.errors import RegimenError, closest
from plateletpd.limits import check_events
from plateletpd.dosing.targets import DoseTarget, TOLERANCE
from plateletpd.dosing.regimens import Dose, Regimen, as_regimen


_COVARIATE_UNIT = {"body_weight": "kg", "body_surface_area": "m2"}


# ----------------------------------------------------------------------------- event schedule

_ARRAY_FIELDS = {"time": np.float64, "target": np.int64, "state": np.int64,
                 "amount_per_scale": np.float64, "duration": np.float64}


@dataclass(frozen=True, eq=False)
class EventSchedule:
    """Dose events, one entry per administration, sorted by time (stable).

    Attributes:
        time: dose times, days (float64).
        target: index into the targets sequence given to :func:`expand` (int64).
        state: 0-based index of the dosed state (int64).
        amount_per_scale: amount in the state's units before bioavailability, per unit of the
            scaling covariate (per kg or per m2), or absolute when there is none (float64).
        scale_covariate: "" for an absolute amount, else "body_weight" or "body_surface_area".
        duration: infusion duration, days; 0 for a bolus (float64).
        drug: the dose target's drug name for each event (for messages).
    """

    time: np.ndarray
    target: np.ndarray
    state: np.ndarray
    amount_per_scale: np.ndarray
    scale_covariate: tuple[str, ...]
    duration: np.ndarray
    drug: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name, dtype in _ARRAY_FIELDS.items():
            array = np.array(getattr(self, name), dtype=dtype).reshape(-1)
            array.setflags(write=False)
            object.__setattr__(self, name, array)
        object.__setattr__(self, "scale_covariate", tuple(str(c) for c in self.scale_covariate))
        object.__setattr__(self, "drug", tuple(self.drug))
        lengths = {name: len(getattr(self, name)) for name in (*_ARRAY_FIELDS, "scale_covariate", "drug")}
        if len({n for name, n in lengths.items() if name != "drug" or self.drug}) != 1:
            raise RegimenError(f"EventSchedule fields must all have one entry per event (drug may be "
                               f"empty); given lengths {lengths}")

    @property
    def n_events(self) -> int:
        """Number of dose events."""
        return len(self.time)

    def concatenate(self, other: "EventSchedule") -> "EventSchedule":
        """This schedule's events followed by ``other``'s (same targets; order kept, not
        re-sorted: the integrator orders events by time itself)."""
        arrays = {name: np.concatenate([getattr(self, name), getattr(other, name)])
                  for name in _ARRAY_FIELDS}
        drug = self.drug + other.drug if self.drug and other.drug else ()
        return EventSchedule(**arrays, scale_covariate=self.scale_covariate
                             + other.scale_covariate, drug=drug)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EventSchedule):
            return NotImplemented
        return (all(np.array_equal(getattr(self, name), getattr(other, name)) for name in _ARRAY_FIELDS)
                and self.scale_covariate == other.scale_covariate and self.drug == other.drug)

    def amounts(self, covariates: Mapping[str, float | np.ndarray] | None = None) -> np.ndarray:
        """Amounts in the state's units: ``amount_per_scale`` times each event's covariate.

        Covariates are scalars, or 1-D arrays with one value per subject (all of length n); with
        any array the result has shape (n, n_events), else (n_events,).

        Raises:
            RegimenError: a needed covariate is missing, not finite or not > 0.
        """
        covariates = {} if covariates is None else covariates
        sizes = {np.size(value) for value in covariates.values() if np.ndim(value) == 1}
        if len(sizes) > 1:
            raise RegimenError(f"covariate arrays must all have one value per subject (one length); "
                               f"given lengths {sorted(sizes)}")
        shape = (sizes.pop(), self.n_events) if sizes else (self.n_events,)
        result = np.array(np.broadcast_to(self.amount_per_scale, shape))
        for name in dict.fromkeys(c for c in self.scale_covariate if c):
            mask = np.array([c == name for c in self.scale_covariate])
            value = self._covariate(covariates, name, int(np.argmax(mask)))
            result[..., mask] *= value[:, None] if value.ndim else value
        return result

    def _covariate(self, covariates: Mapping, name: str, event: int) -> np.ndarray:
        who = f"the {self.drug[event] if self.drug else f'target {self.target[event]}'} dose at " \
              f"t={self.time[event]:g} d"
        unit = _COVARIATE_UNIT.get(name, "value")
        if name not in covariates:
            given = ", ".join(map(repr, covariates)) or "none"
            raise RegimenError(f"{who} is given per {unit} and needs covariate {name!r}; given "
                               f"covariates: {given}. Pass covariates={{'{name}': <{unit}>}} "
                               f"(command line: --covariate {name}=<{unit}>); a model's default "
                               f"value is never used to scale a dose.")
        try:
            value = np.asarray(covariates[name], dtype=float)
        except (TypeError, ValueError):
            value = np.array(np.nan)
        if value.ndim > 1 or not np.all(np.isfinite(value)) or np.any(value <= 0):
            raise RegimenError(f"covariate {name!r} (needed by {who}) must be a finite number > 0 "
                               f"({unit}) or a 1-D array of them; given {covariates[name]!r}")
        return value


def target_lookup(targets: Sequence[DoseTarget]) -> dict[str, int]:
    """Lower-cased drug names and aliases -> index into ``targets``."""
    lookup: dict[str, int] = {}
    for index, target in enumerate(targets):
        if not isinstance(target, DoseTarget):
            raise RegimenError(f"targets must be DoseTarget objects; given {type(target).__name__} "
                               f"{target!r}")
        for name in (target.name, *target.aliases):
            if lookup.setdefault(name.lower(), index) != index:
                raise RegimenError(f"the drug name {name!r} names two dose targets "
                                   f"({targets[lookup[name.lower()]].name} and {target.name}); give "
                                   f"each dose target distinct names and aliases")
    return lookup


def _find_target(drug: str, lookup: dict[str, int], targets: Sequence[DoseTarget]) -> int:
    if drug.lower() in lookup:
        return lookup[drug.lower()]
    hint = closest(drug, [name for target in targets for name in (target.name, *target.aliases)])
    known = ", ".join(target.name for target in targets) or "none (this model has no dose targets)"
    raise RegimenError(f"unknown drug {drug!r}{hint}; this model can be dosed with: {known}. Use one of "
                       f"these names (or an alias) in the regimen.")


def _check_infusion_overlap(events: list[tuple], targets: Sequence[DoseTarget]) -> None:
    """Refuse two infusions into one state whose intervals [t, t + duration) overlap."""
    running: dict[int, tuple[float, float, str]] = {}  # state -> (end, start, label)
    for time, index, state, _, _, duration, _, label in events:
        if duration <= 0:
            continue
        previous = running.get(state)
        if previous and time < previous[0] - TOLERANCE:
            end, start, other = previous
            raise RegimenError(f"infusions overlap in state {targets[index].state!r}: {other} runs from "
                               f"t={start:g} to t={end:g} d and {label} starts at t={time:g} d. A state "
                               f"takes one infusion at a time; shift one of them, shorten the infusion, "
                               f"or give them as one dose.")
        if not previous or time + duration > previous[0]:
            running[state] = (time + duration, time, label)


def _question_size(target: DoseTarget, dose: Dose, amount: float, covariate: str | None,
                   label: str) -> None:
    """Warn about a dose far above its drug's largest labelled one, in the same kind of unit
    (:mod:`plateletpd.dosing.usual_doses`)."""
    import warnings

    from plateletpd.dosing.usual_doses import (LABELLED_MAXIMA, PLAUSIBLE_FACTOR,
                                               ImplausibleDoseWarning)

    for maximum, unit, source in LABELLED_MAXIMA.get(target.name.lower(), ()):
        try:
            factor, per = target.conversion(unit)
        except RegimenError:  # a unit this model's target cannot take: not comparable
            continue
        if per == covariate and amount > PLAUSIBLE_FACTOR * maximum * factor:
            warnings.warn(
                f"{label}: {dose.amount:g} {dose.unit} of {target.name} is "
                f"{amount / (maximum * factor):.0f} times the largest labelled dose "
                f"({maximum:g} {unit}: {source}); check the unit (mg, not g?). It is "
                f"simulated as written", ImplausibleDoseWarning, stacklevel=4)
            return


def expand(regimen: Regimen | Dose | str, targets: Sequence[DoseTarget],
           covariates: Mapping[str, float | np.ndarray] | None = None) -> EventSchedule:
    """Turn a regimen into the dose events of a model with the given dose targets.

    Each dose's drug is looked up among target names and aliases (case-insensitive), its route
    checked against the target's routes and its unit converted with
    :meth:`DoseTarget.conversion`. Overlapping infusions into one state are refused. When
    ``covariates`` are given, the scaling covariates the doses need are checked now.

    Raises:
        RegimenError: unknown drug, route not accepted, unit that cannot convert, overlapping
            infusions, or a missing/invalid covariate.
    """
    regimen = as_regimen(regimen)
    check_events(sum(len(dose.times) for dose in regimen), f"the regimen {str(regimen)[:80]!r}")
    targets = tuple(targets)
    lookup = target_lookup(targets)
    events = []
    for position, dose in enumerate(regimen, start=1):
        index = _find_target(dose.drug, lookup, targets)
        target, label = targets[index], f"dose {position} ({dose._label()})"
        if dose.administration and dose.administration != target.administration:
            declared = (f"is given {target.administration}" if target.administration else
                        "does not declare how it is given (administration in the model file)")
            others = [t.name for t in targets if t.administration == dose.administration]
            raise RegimenError(
                f"{label}: the regimen says {dose.administration!r} but {target.name} (dose into "
                f"state {target.state!r}) {declared}. Fix: "
                + f"drop the route word to give {target.name} as the model does"
                + (f" (the model's {dose.administration} dose targets are other drugs: "
                   f"{', '.join(others)})" if others else "")
                + f", or add a {dose.administration} dose target for {target.name} (its own "
                  f"state and kinetics) to the model file")
        if dose.route not in target.routes:
            fix = ("drop 'over <duration>' to give it as a bolus" if dose.route == "infusion"
                   else "give it over a duration, e.g. 'over 30min' (route='infusion')")
            raise RegimenError(f"{label}: {target.name} cannot be given as {dose.route} into state "
                               f"{target.state!r}; accepted routes: {', '.join(target.routes)}. Fix: {fix}.")
        try:
            factor, covariate = target.conversion(dose.unit)
        except RegimenError as error:
            raise RegimenError(f"{label}: {error}") from None
        _question_size(target, dose, dose.amount * factor, covariate, label)
        events += [(t, index, target.state_index, dose.amount * factor, covariate or "", dose.duration,
                    target.name, label) for t in dose.times]
    events.sort(key=lambda event: event[0])
    _check_infusion_overlap(events, targets)
    columns = list(zip(*events)) or [()] * 8
    schedule = EventSchedule(*columns[:7])
    if covariates is not None:
        schedule.amounts(covariates)
    return schedule
