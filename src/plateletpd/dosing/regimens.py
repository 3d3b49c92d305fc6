"""Dosing regimens, kept apart from the model.

A :class:`Regimen` is a tuple of :class:`Dose` objects (drug, amount, unit, dose times). It
knows nothing about a model: :func:`expand` matches each dose to a :class:`DoseTarget` (the
state a drug's dose enters, declared in the model file), converts its unit and returns an
:class:`EventSchedule`, the flat, time-sorted list of dose events a simulator consumes.
NONMEM-style event tables are made, read and written by :func:`to_event_table`,
:func:`read_event_table` and :func:`write_event_table`.

Time is in days everywhere in this module. Study day N ("dN") starts at time N - 1, so
``"hetrombopag 7.5 mg qd d1-14"`` means 14 doses at t = 0, 1, ..., 13.

Text form of one dose (keywords are case-insensitive; several doses are joined with " + ")::

    <drug> <amount> <unit> [po|oral|sc|iv] [over <duration>] [<frequency>] [x<count>] [d<days>]

* unit: g, mg, ug (mcg, µg), ng, U (IU), optionally per body weight or body surface area:
  ``mg/kg``, ``U/kg``, ``mg/m2``.
* frequency: qd/od/daily, bid, tid, qid, qod, qw/weekly, q<N>h, q<N>d, or once.
* days: a range ``d1-14`` (doses every interval from the start of the first day until the
  end of the last), a list ``d2,4,6,9`` (one dose per listed day, or the frequency within
  each day), or with a count ``x6 d3`` the first day of ``6`` doses (day 1 when left out).
* ``over 30min`` / ``over 2h`` / ``over 1d`` makes the dose an infusion of that duration.
* ``t=0.25,1.5`` lists dose times in days directly (used when no other form fits).

Examples: ``"rhTPO 300 U/kg qd d1-14"``, ``"rhIL-11 50 ug/kg qd d1-10"``,
``"drugX 100 mg q12h x6 d3"``, ``"carboplatin 400 mg/m2 iv over 30min d1"``.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from plateletpd.io.files import atomic_write
from plateletpd.errors import RegimenError, ResourceLimitError, closest
from plateletpd.limits import check_events

__all__ = [
    "ROUTES",
    "DoseTarget",
    "Dose",
    "Regimen",
    "EventSchedule",
    "expand",
    "to_event_table",
    "read_event_table",
    "write_event_table",
    "EVENT_COLUMNS",
    "SteadyState",
    "SubjectEvents",
    "read_event_subjects",
]

ROUTES = ("bolus", "infusion")
"""Administration routes a dose target can accept."""

_MASS_IN_NG = {"g": 10**9, "mg": 10**6, "ug": 10**3, "ng": 1}
_INTERNATIONAL_UNITS = ("U", "IU")
_BASE_UNITS = {"g": "g", "mg": "mg", "ug": "ug", "mcg": "ug", "µg": "ug", "μg": "ug",
               "ng": "ng", "u": "U", "iu": "IU"}
_PER = {"kg": "kg", "m2": "m2", "m^2": "m2", "m²": "m2"}
_PER_COVARIATE = {"kg": "body_weight", "m2": "body_surface_area"}
_COVARIATE_UNIT = {"body_weight": "kg", "body_surface_area": "m2"}
_UNIT_HELP = ("dose units are g, mg, ug (or mcg), ng and U (or IU), optionally per kg of body "
              "weight or per m2 of body surface area, e.g. 'mg', 'U/kg', 'mg/m2'")

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?"
_FREQUENCIES = {"qd": 1.0, "od": 1.0, "daily": 1.0, "bid": 1 / 2, "tid": 1 / 3, "qid": 1 / 4,
                "qod": 2.0, "qw": 7.0, "weekly": 7.0}
_FREQUENCY_NAMES = {1.0: "qd", 1 / 2: "bid", 1 / 3: "tid", 1 / 4: "qid", 2.0: "qod", 7.0: "qw"}
_PER_DAY = {"min": 1440, "mins": 1440, "minute": 1440, "minutes": 1440, "h": 24, "hr": 24,
            "hrs": 24, "hour": 24, "hours": 24, "d": 1, "day": 1, "days": 1}
#: route words of the text form -> canonical administration checked against the dose target
ADMINISTRATIONS = {"po": "oral", "oral": "oral", "sc": "sc", "iv": "iv"}
_ROUTE_WORDS = set(ADMINISTRATIONS)
_GRAMMAR = ("expected '<drug> <amount> <unit> [po|sc|iv] [over <duration>] [<frequency>] "
            "[x<count>] [d<days>]', e.g. 'hetrombopag 7.5 mg qd d1-14', 'rhTPO 300 U/kg d2,4,6,9', "
            "'drugX 100 mg q12h x6 d3' or 'carboplatin 400 mg/m2 iv over 30min d1'")
_TIME_UNITS = {"d": 1, "day": 1, "days": 1, "h": 24, "hour": 24, "hours": 24}
_TOLERANCE = 1e-9


# ----------------------------------------------------------------------------- units


def _parse_unit(unit: object) -> tuple[str, str]:
    """Split a dose unit into its canonical base ('mg', 'U', ...) and per-part ('', 'kg', 'm2').

    A base that is not a known unit but does not look like a misspelt one (e.g. 'nmol') is
    kept as written: it only converts into a dose target whose amount is in exactly that unit.
    """
    if not isinstance(unit, str) or not unit.strip():
        raise RegimenError(f"a dose unit must be text such as 'mg'; given {unit!r}. Note: {_UNIT_HELP}.")
    base, slash, per = (part.strip() for part in unit.strip().partition("/"))
    if slash and per.lower() not in _PER:
        raise RegimenError(f"unknown dose unit {unit!r}: after '/' expected 'kg' (per body weight) "
                           f"or 'm2' (per body surface area), given {per!r}. Note: {_UNIT_HELP}.")
    canonical = _BASE_UNITS.get(base.lower())
    if canonical is None:
        hint = closest(base.lower(), _BASE_UNITS)
        if hint or not re.fullmatch(r"[^\s/+,]+", base):
            raise RegimenError(f"unknown dose unit {unit!r}{hint}. Note: {_UNIT_HELP}.")
        canonical = base
    return canonical, _PER.get(per.lower(), "")


def _unit_text(base: str, per: str) -> str:
    return f"{base}/{per}" if per else base


def _as_tuple(value: object) -> tuple:
    return (value,) if isinstance(value, str) else tuple(value)


def _finite_float(value: object) -> float | None:
    """``float(value)`` when that is a finite number, else None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class DoseTarget:
    """Where a drug's dose enters a model (read from the model file).

    Attributes:
        name: drug name used in regimens, e.g. ``"rhTPO"``.
        state: name of the state the dose is added to.
        state_index: 0-based index of that state.
        amount_unit: unit of the state's amount: a mass unit ("g", "mg", "ug", "ng"; "mcg" and
            "µg" mean ug), "U"/"IU" for international units, or any other string, in which case
            only doses in exactly that unit are accepted.
        routes: accepted routes, a subset of ``ROUTES`` ("bolus", "infusion").
        units_per_mg: international units per mg of drug (specific activity, e.g. 280000 for
            rhTPO); needed to convert between U and mass.
        aliases: other names the drug may be called by in a regimen (case-insensitive).
        description: free text for listings.
        administration: "oral", "sc", "iv" or "" (undeclared); a regimen that names a route
            word (po/sc/iv) must match it.
    """

    name: str
    state: str
    state_index: int
    amount_unit: str
    routes: tuple[str, ...] = ("bolus",)
    units_per_mg: float | None = None
    aliases: tuple[str, ...] = ()
    description: str = ""
    administration: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise RegimenError(f"a dose target needs a drug name such as 'rhTPO'; given {self.name!r}")
        object.__setattr__(self, "routes", _as_tuple(self.routes))
        object.__setattr__(self, "aliases", _as_tuple(self.aliases))
        unknown = [route for route in self.routes if route not in ROUTES]
        if unknown or not self.routes:
            raise RegimenError(f"dose target {self.name!r}: routes must be a non-empty subset of "
                               f"{ROUTES}; given {self.routes!r}")
        if self.units_per_mg is not None and not (_finite_float(self.units_per_mg) or 0) > 0:
            raise RegimenError(f"dose target {self.name!r}: units_per_mg must be a finite number > 0 "
                               f"(international units per mg), or None; given {self.units_per_mg!r}")
        if isinstance(self.state_index, bool) or not isinstance(self.state_index, (int, np.integer)) \
                or self.state_index < 0:
            raise RegimenError(f"dose target {self.name!r}: state_index must be an integer >= 0 "
                               f"(0-based); given {self.state_index!r}")

    def conversion(self, unit: str) -> tuple[float, str | None]:
        """Return ``(factor, covariate)`` for a dose in ``unit``.

        ``amount_in_state_units = dose_value * factor * covariate_value``, where ``covariate``
        is None (absolute dose), ``"body_weight"`` (kg, for ".../kg") or
        ``"body_surface_area"`` (m2, for ".../m2").

        Raises:
            RegimenError: the unit is malformed or cannot be converted into the state's unit.
        """
        base, per = _parse_unit(unit)
        factor = self._factor(base)
        if factor is None:
            accepted = ", ".join(self._accepted_units())
            needs_activity = {base, self._base} & set(_INTERNATIONAL_UNITS)
            fix = (f"set units_per_mg (international units per mg, the drug's specific activity) on "
                   f"the {self.name!r} dose target, or give the dose in {accepted}" if needs_activity
                   else f"give the dose in one of: {accepted}")
            raise RegimenError(f"a dose of {self.name} in {unit!r} cannot be converted into state "
                               f"{self.state!r}, whose amount is in {self.amount_unit!r}; {self.name} "
                               f"accepts {accepted} (each optionally '/kg' or '/m2'). Fix: {fix}.")
        return factor, _PER_COVARIATE.get(per)

    @property
    def _base(self) -> str:
        unit = str(self.amount_unit).strip()
        return _BASE_UNITS.get(unit.lower(), unit)

    def _nanograms(self, base: str) -> Fraction | None:
        """Nanograms of drug in one ``base`` unit (exact), or None when unknown."""
        if base in _MASS_IN_NG:
            return Fraction(_MASS_IN_NG[base])
        if base in _INTERNATIONAL_UNITS and self.units_per_mg:
            return Fraction(10**6) / Fraction(float(self.units_per_mg))
        return None

    def _factor(self, base: str) -> float | None:
        target = self._base
        if base == target or {base, target} <= set(_INTERNATIONAL_UNITS):
            return 1.0
        dose_ng, target_ng = self._nanograms(base), self._nanograms(target)
        return None if dose_ng is None or target_ng is None else float(dose_ng / target_ng)

    def _accepted_units(self) -> list[str]:
        candidates = [*_MASS_IN_NG, *_INTERNATIONAL_UNITS]
        if self._base not in candidates:
            candidates.append(self._base)
        return [unit for unit in candidates if self._factor(unit) is not None]


# ----------------------------------------------------------------------------- doses


def _arithmetic_times(start: float, interval: float, count: int, what: str = "this dose",
                      before: int = 0) -> list[float]:
    """``count`` times from ``start`` every ``interval``; ``before`` events already exist.

    The event guard (:func:`plateletpd.limits.check_events`) runs before anything is built.
    """
    check_events(before + count, what)
    return [float(t) for t in start + interval * np.arange(count)]


@dataclass(frozen=True)
class Dose:
    """One drug's dosing schedule: the same amount given at each of ``times``.

    Attributes:
        drug: drug name, matched to a :class:`DoseTarget` name or alias (case-insensitive).
        amount: amount per administration, finite and > 0 (a zero dose is refused: leave the
            drug out instead).
        unit: dose unit, e.g. "mg", "U/kg", "mg/m2" (stored in canonical spelling: "mcg" -> "ug").
        times: dose times in days (day 1 starts at t = 0), stored sorted ascending.
        route: "bolus" or "infusion".
        duration: infusion duration in days; > 0 for an infusion, 0 for a bolus.
        administration: "oral", "sc", "iv" or "" (not stated); when stated it must match the
            dose target's declared administration (a regimen never silently ignores it).
    """

    drug: str
    amount: float
    unit: str
    times: tuple[float, ...]
    route: str = "bolus"
    duration: float = 0.0
    administration: str = ""

    def __post_init__(self) -> None:
        drug = self.drug.strip() if isinstance(self.drug, str) else ""
        if not drug:
            raise RegimenError(f"a dose needs a drug name such as 'hetrombopag'; given {self.drug!r}")

        def fail(problem: str, fix: str) -> RegimenError:
            return RegimenError(f"dose of {drug!r}: {problem}. {fix}")

        amount = _finite_float(self.amount)
        if amount is None or amount <= 0:
            raise fail(f"amount must be a finite number > 0, given {self.amount!r}",
                       "Give the amount per administration, e.g. amount=7.5 with unit='mg'; "
                       "leave out a drug that is not given (regimen 'none' for no treatment).")
        try:
            unit = _unit_text(*_parse_unit(self.unit))
            times = np.sort(np.asarray(self.times, dtype=float).reshape(-1))
        except RegimenError as error:
            raise fail("bad unit", str(error)) from None
        except (TypeError, ValueError):
            raise fail(f"times must be numbers (days), given {self.times!r}",
                       "Give e.g. times=(0.0, 1.0, 2.0).") from None
        if times.size == 0 or not np.all(np.isfinite(times)) or np.any(times < 0):
            raise fail(f"dose times must be a non-empty list of finite times >= 0 days, given "
                       f"{self.times!r}", "Day 1 starts at t=0, so day N starts at t=N-1.")
        route = self.route.lower() if isinstance(self.route, str) else self.route
        if route not in ROUTES:
            raise fail(f"route must be one of {ROUTES}, given {self.route!r}",
                       "Use 'infusion' (with a duration) for a dose given over time.")
        duration = _finite_float(self.duration)
        if duration is None or (route == "infusion") != (duration > 0) or duration < 0:
            raise fail(f"a {route} needs {'a duration > 0' if route == 'infusion' else 'duration 0'} "
                       f"days, given duration={self.duration!r}",
                       "Give route='infusion' with duration > 0 (days), or route='bolus' with no duration.")
        administration = ADMINISTRATIONS.get(str(self.administration).lower(), None) \
            if self.administration else ""
        if administration is None:
            raise fail(f"administration must be one of oral (po), sc, iv or empty, given "
                       f"{self.administration!r}", "Leave it empty to use the drug's own route.")
        for name, value in (("drug", drug), ("amount", amount), ("unit", unit),
                            ("times", tuple(float(t) for t in times)), ("route", route),
                            ("duration", duration), ("administration", administration)):
            object.__setattr__(self, name, value)

    @classmethod
    def repeated(cls, drug: str, amount: float, unit: str, start: float = 0.0, interval: float = 1.0,
                 count: int | None = None, until: float | None = None, route: str = "bolus",
                 duration: float = 0.0, administration: str = "") -> "Dose":
        """Doses every ``interval`` days from ``start``: ``count`` of them, or up to ``until``.

        Give exactly one of ``count`` (an integer >= 1) and ``until`` (time in days of the last
        allowed dose, inclusive). ``interval`` must be > 0 when there is more than one dose.
        """
        def fail(problem: str) -> RegimenError:
            return RegimenError(f"Dose.repeated({drug!r}, ...): {problem}. Example: "
                                f"Dose.repeated('hetrombopag', 7.5, 'mg', start=0, interval=1, count=14)")

        if (count is None) == (until is None):
            raise fail(f"give exactly one of count and until; given count={count!r}, until={until!r}")
        start_value = _finite_float(start)
        if start_value is None:
            raise fail(f"start must be a finite time in days, given {start!r}")
        step = _finite_float(interval)
        if until is not None:
            last = _finite_float(until)
            if last is None or last < start_value:
                raise fail(f"until must be a finite time >= start ({start!r}), given {until!r}")
            if last > start_value and not (step or 0) > 0:
                raise fail(f"interval must be > 0 days to repeat doses, given {interval!r}")
            count = 1 if last == start_value else math.floor((last - start_value) / step + _TOLERANCE) + 1
        elif not isinstance(count, (int, float, np.number)) or isinstance(count, bool) \
                or not (_finite_float(count) or 0) >= 1 or not float(count).is_integer():
            raise fail(f"count must be a whole number >= 1, given {count!r}")
        elif count > 1 and not (step or 0) > 0:
            raise fail(f"interval must be > 0 days to repeat doses, given {interval!r}")
        times = _arithmetic_times(start_value, step if count > 1 else 0.0, int(count),
                                  f"Dose.repeated({drug!r}, ...)")
        return cls(drug, amount, unit, tuple(times), route, duration, administration)

    def __str__(self) -> str:
        return _format_dose(self) or repr(self)

    def _label(self) -> str:
        text = f"{self.drug} {_number(self.amount)} {self.unit}"
        if self.administration:
            text += " po" if self.administration == "oral" else f" {self.administration}"
        return f"{text} over {_format_duration(self.duration)}" if self.route == "infusion" else text


@dataclass(frozen=True)
class Regimen:
    """An immutable collection of :class:`Dose` objects; empty means no treatment.

    Build it from doses (``Regimen((dose1, dose2))``), from text (``Regimen.parse(...)``) or
    by adding regimens (``regimen_a + regimen_b``). ``str(regimen)`` gives text that parses
    back to an equal regimen. Equality compares the doses in order.
    """

    doses: tuple[Dose, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.doses, str):
            raise RegimenError(f"Regimen(doses=...) takes Dose objects; given the text {self.doses!r}. "
                               f"Use Regimen.parse({self.doses!r}) for text.")
        doses = (self.doses,) if isinstance(self.doses, Dose) else tuple(self.doses)
        for dose in doses:
            if not isinstance(dose, Dose):
                raise RegimenError(f"a Regimen holds Dose objects; given {type(dose).__name__} {dose!r}. "
                                   f"Build doses with Dose(...) or Dose.repeated(...), or parse text with "
                                   f"Regimen.parse('hetrombopag 7.5 mg qd d1-14').")
        object.__setattr__(self, "doses", doses)

    @classmethod
    def none(cls) -> "Regimen":
        """The empty regimen (no treatment)."""
        return cls()

    @classmethod
    def parse(cls, text: str) -> "Regimen":
        """Read the text form (see the module docstring); "" or "none" is no treatment.

        Raises:
            RegimenError: quoting the text, pointing at the token that failed, with an example.
        """
        if not isinstance(text, str):
            raise RegimenError(f"Regimen.parse takes text such as 'hetrombopag 7.5 mg qd d1-14'; "
                               f"given {type(text).__name__} {text!r}")
        if text.strip().lower() in ("", "none"):
            return cls()
        return cls(tuple(_parse_dose(part.strip()) for part in re.split(r"\s+\+\s+", text.strip())))

    def __add__(self, other: "Regimen | Dose") -> "Regimen":
        if isinstance(other, Dose):
            other = Regimen((other,))
        if not isinstance(other, Regimen):
            return NotImplemented
        return Regimen(self.doses + other.doses)

    def __len__(self) -> int:
        return len(self.doses)

    def __iter__(self) -> Iterator[Dose]:
        return iter(self.doses)

    def __str__(self) -> str:
        return " + ".join(str(dose) for dose in self.doses) or "none"


def as_regimen(regimen: "Regimen | Dose | str | None") -> Regimen:
    """Accept a Regimen, a Dose, the text form, or None (no dosing)."""
    if regimen is None:
        return Regimen.none()
    if isinstance(regimen, Regimen):
        return regimen
    if isinstance(regimen, Dose):
        return Regimen((regimen,))
    if isinstance(regimen, str):
        return Regimen.parse(regimen)
    raise RegimenError(f"expected a Regimen, a Dose or regimen text such as 'hetrombopag 7.5 mg qd "
                       f"d1-14'; given {type(regimen).__name__} {regimen!r}")


# ----------------------------------------------------------------------------- text form

_Token = tuple[str, int, int]  # text, start, end in the dose text


def _text_error(text: str, token: _Token, problem: str) -> RegimenError:
    _, start, end = token
    marker = " " * start + "^" * max(end - start, 1)
    return RegimenError(f"cannot read dose {text!r}: {problem}\n    {text}\n    {marker}\n{_GRAMMAR}")


def _tokens(text: str) -> list[_Token]:
    tokens = [(m.group(), m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    if len(tokens) >= 2:  # "7.5mg" -> "7.5", "mg"
        word, start, end = tokens[1]
        glued = re.fullmatch(f"({_NUMBER})([^\\d.].*)", word, re.IGNORECASE)
        if glued and not re.fullmatch(_NUMBER, word, re.IGNORECASE):
            split = start + len(glued[1])
            tokens[1:2] = [(glued[1], start, split), (glued[2], split, end)]
    return tokens


def _classify(word: str) -> tuple[str, object] | None:
    """Recognise one schedule token: (kind, value), or None."""
    if word == "once":
        return "frequency", None
    if word in _FREQUENCIES:
        return "frequency", _FREQUENCIES[word]
    if match := re.fullmatch(f"q({_NUMBER})([hd])", word):
        return "frequency", float(match[1]) / (24 if match[2] == "h" else 1)
    if match := re.fullmatch(r"x(\d+)", word):
        return "count", int(match[1])
    if match := re.fullmatch(r"d(\d+(?:-\d+)?(?:,\d+(?:-\d+)?)*)", word):
        return "days", [tuple(int(day) for day in item.split("-")) for item in match[1].split(",")]
    if match := re.fullmatch(f"t=({_NUMBER}(?:,{_NUMBER})*)", word):
        return "times", [float(t) for t in match[1].split(",")]
    return None


def _read_duration(text: str, rest: list[_Token], i: int, over: _Token) -> tuple[float, int]:
    """Read the duration after 'over' (``30min`` or ``30 min``); return (days, next index)."""
    if i == len(rest):
        raise _text_error(text, over, "'over' needs an infusion duration such as 30min, 2h or 1d")
    match = re.fullmatch(f"({_NUMBER})([a-z]*)", rest[i][0].lower())
    unit = match[2] if match else None
    if match and not unit and i + 1 < len(rest):
        unit, i = rest[i + 1][0].lower(), i + 1
    if unit not in _PER_DAY:
        raise _text_error(text, rest[i], "expected an infusion duration such as 30min, 2h or 1d")
    return float(match[1]) / _PER_DAY[unit], i + 1


def _parse_dose(text: str) -> Dose:
    tokens = _tokens(text)
    if len(tokens) < 3:
        raise _text_error(text, ("", len(text), len(text)),
                          "a dose needs at least a drug, an amount and a unit")
    drug, amount, unit = tokens[:3]
    if not re.fullmatch(_NUMBER, amount[0], re.IGNORECASE):
        raise _text_error(text, amount,
                          f"expected the amount as a number > 0 (e.g. 7.5), given {amount[0]!r}")
    try:
        unit_text = _unit_text(*_parse_unit(unit[0]))
    except RegimenError as error:
        raise _text_error(text, unit, str(error)) from None
    found: dict[str, tuple[object, _Token]] = {}
    rest, i = tokens[3:], 0
    while i < len(rest):
        token, word = rest[i], rest[i][0].lower()
        if word in _ROUTE_WORDS:
            if "administration" in found:
                raise _text_error(text, token, "the route (po/sc/iv) is given twice")
            found["administration"] = (ADMINISTRATIONS[word], token)
            i += 1
            continue
        if word == "over":
            duration, i = _read_duration(text, rest, i + 1, token)
            kind_value = ("duration", duration)
        else:
            kind_value, i = _classify(word), i + 1
        if kind_value is None:
            raise _text_error(text, token, f"unexpected {token[0]!r} (several doses are joined "
                                           f"with ' + ', spaces around the plus)")
        if kind_value[0] in found:
            raise _text_error(text, token, f"the {kind_value[0]} is given twice")
        found[kind_value[0]] = (kind_value[1], token)
    duration, times = found.get("duration", (0.0, None))[0], tuple(_schedule_times(text, found))
    try:
        return Dose(drug[0], float(amount[0]), unit_text, times,
                    "infusion" if "duration" in found else "bolus", duration,
                    found.get("administration", ("", None))[0])
    except RegimenError as error:
        raise RegimenError(f"cannot read dose {text!r}: {error}") from None


def _schedule_times(text: str, found: dict[str, tuple[object, _Token]]) -> list[float]:
    """Dose times (days) from the schedule tokens: frequency, count, days or t=."""
    def value(kind: str):
        return found[kind][0] if kind in found else None

    def fail(kind: str, problem: str) -> RegimenError:
        return _text_error(text, found[kind][1], problem)

    interval, count, days = value("frequency"), value("count"), value("days")
    if "times" in found:
        for kind in ("frequency", "count", "days"):
            if kind in found:
                raise fail(kind, "t=<times> already lists every dose time; drop the frequency, "
                                 "count and days")
        return value("times")
    if interval is not None and interval <= 0:
        raise fail("frequency", "the dosing interval must be > 0")
    if count is not None:
        if count < 1:
            raise fail("count", "the dose count must be at least 1, e.g. x6")
        if count > 1 and interval is None:
            raise fail("count", "a dose count needs a frequency, e.g. 'q12h x6'")
        if days and (len(days) > 1 or len(days[0]) > 1):
            raise fail("days", "with a dose count give only the first day, e.g. 'x6 d3'")
        return _arithmetic_times((days[0][0] if days else 1) - 1, interval or 0.0, count,
                                 f"dose {text!r}")
    if days is None:
        if interval is not None:
            raise fail("frequency", "say how long to dose: add days (e.g. d1-14) or a count (e.g. x14)")
        days = [(1,)]
    times = []
    for first, *rest in days:
        last = rest[0] if rest else first
        if first < 1 or last < first:
            raise fail("days", "days start at d1 and a range runs forward, e.g. d1-14")
        if interval is None and last > first:
            raise fail("days", f"a day range needs a frequency, e.g. 'qd d{first}-{last}'")
        repeats = 1 if interval is None else math.ceil((last - first + 1) / interval - _TOLERANCE)
        times += _arithmetic_times(first - 1, interval or 0.0, repeats, f"dose {text!r}", len(times))
    return times


def _number(value: float) -> str:
    """Shortest text that reads back as exactly ``value``."""
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def _format_duration(days: float) -> str:
    for unit, per_day in (("d", 1), ("h", 24), ("min", 1440)):
        value = round(days * per_day)
        if value > 0 and value / per_day == days:
            return f"{value}{unit}"
    return f"{_number(days)}d"


def _frequency_text(interval: float) -> str:
    if interval in _FREQUENCY_NAMES:
        return _FREQUENCY_NAMES[interval]
    hours = interval * 24
    if float(interval).is_integer() or abs(hours - round(hours)) > _TOLERANCE:
        return f"q{_number(interval)}d"
    return f"q{round(hours)}h"


def _schedule_texts(times: tuple[float, ...]) -> Iterator[str]:
    """Candidate schedule texts for ``times``, nicest first (the caller checks each)."""
    first = _number(times[0] + 1)
    if len(times) > 1:
        interval = times[1] - times[0]
        frequency = _frequency_text(interval)
        for last_day in (math.ceil(times[-1] + interval - _TOLERANCE), math.floor(times[-1]) + 1):
            last = _number(last_day)
            yield f"{frequency} d{first}" + (f"-{last}" if last != first else "")
        yield f"{frequency} x{len(times)} d{first}"
    yield "d" + ",".join(_number(t + 1) for t in times)
    yield "t=" + ",".join(_number(t) for t in times)


def _format_dose(dose: Dose) -> str | None:
    """The text form of ``dose`` that parses back to it exactly, or None when there is none."""
    for schedule in _schedule_texts(dose.times):
        text = f"{dose._label()} {schedule}"
        with contextlib.suppress(RegimenError):
            if _parse_dose(text) == dose:
                return text
    return None


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


def _target_lookup(targets: Sequence[DoseTarget]) -> dict[str, int]:
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
        if previous and time < previous[0] - _TOLERANCE:
            end, start, other = previous
            raise RegimenError(f"infusions overlap in state {targets[index].state!r}: {other} runs from "
                               f"t={start:g} to t={end:g} d and {label} starts at t={time:g} d. A state "
                               f"takes one infusion at a time; shift one of them, shorten the infusion, "
                               f"or give them as one dose.")
        if not previous or time + duration > previous[0]:
            running[state] = (time + duration, time, label)


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
    lookup = _target_lookup(targets)
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
                + (f"use {', '.join(others)} for {dose.administration} dosing"
                   if others else "drop the route word, or add a dose target for that route "
                   "to the model file"))
        if dose.route not in target.routes:
            fix = ("drop 'over <duration>' to give it as a bolus" if dose.route == "infusion"
                   else "give it over a duration, e.g. 'over 30min' (route='infusion')")
            raise RegimenError(f"{label}: {target.name} cannot be given as {dose.route} into state "
                               f"{target.state!r}; accepted routes: {', '.join(target.routes)}. Fix: {fix}.")
        try:
            factor, covariate = target.conversion(dose.unit)
        except RegimenError as error:
            raise RegimenError(f"{label}: {error}") from None
        events += [(t, index, target.state_index, dose.amount * factor, covariate or "", dose.duration,
                    target.name, label) for t in dose.times]
    events.sort(key=lambda event: event[0])
    _check_infusion_overlap(events, targets)
    columns = list(zip(*events)) or [()] * 8
    schedule = EventSchedule(*columns[:7])
    if covariates is not None:
        schedule.amounts(covariates)
    return schedule


# ----------------------------------------------------------------------------- event tables

EVENT_COLUMNS = ("ID", "TIME", "AMT", "CMT", "EVID", "II", "ADDL", "RATE")


def _per_day(time_unit: str) -> int:
    key = str(time_unit).strip().lower()
    if key not in _TIME_UNITS:
        raise RegimenError(f"time_unit must be 'day' or 'h'; given {time_unit!r}")
    return _TIME_UNITS[key]


def _check_states(targets: Sequence[DoseTarget], state_names: Sequence[str]) -> None:
    for target in targets:
        index = target.state_index
        actual = state_names[index] if index < len(state_names) else "(no such state)"
        if actual != target.state:
            raise RegimenError(f"dose target {target.name} enters state {target.state!r} at index {index}, "
                               f"but state_names[{index}] is {actual!r}; pass the state names of the model "
                               f"the dose targets were read from")


def to_event_table(regimen: Regimen | Dose | str, targets: Sequence[DoseTarget], state_names: Sequence[str],
                   covariates: Mapping[str, float] | None = None, subject_id: int = 1,
                   time_unit: str = "day") -> pd.DataFrame:
    """One subject's regimen as a NONMEM-style event table (one row per dose).

    Columns ID, TIME (days, or hours with ``time_unit="h"``), AMT (state units, covariates
    applied), CMT (1-based state index), EVID=1, II=0, ADDL=0, RATE (AMT per time unit for
    an infusion, 0 for a bolus).
    """
    per_day = _per_day(time_unit)
    targets, state_names = tuple(targets), tuple(state_names)
    _check_states(targets, state_names)
    schedule = expand(regimen, targets)
    amounts = schedule.amounts(covariates)
    if amounts.ndim != 1:
        raise RegimenError("to_event_table writes one subject: give one value per covariate (e.g. "
                           "{'body_weight': 70}), and call it once per subject with subject_id=...")
    duration = schedule.duration * per_day
    ones = np.ones(schedule.n_events, dtype=np.int64)
    return pd.DataFrame({
        "ID": ones * int(subject_id), "TIME": schedule.time * per_day, "AMT": amounts,
        "CMT": schedule.state + 1, "EVID": ones, "II": np.zeros(schedule.n_events),
        "ADDL": ones * 0,
        "RATE": np.divide(amounts, duration, out=np.zeros_like(amounts), where=duration > 0),
    }, columns=list(EVENT_COLUMNS))


def _load_table(source: str | os.PathLike | pd.DataFrame) -> tuple[pd.DataFrame, str | None]:
    if isinstance(source, pd.DataFrame):
        return source, None
    try:
        return pd.read_csv(source, dtype=str, keep_default_na=False, skipinitialspace=True), str(source)
    except FileNotFoundError:
        raise RegimenError(f"event table {str(source)!r} not found; give the path of a CSV file with "
                           f"columns {', '.join(EVENT_COLUMNS)}") from None
    except (OSError, ValueError) as error:
        raise RegimenError(f"cannot read event table {str(source)!r} as CSV: {error}") from None


def _cell(row: Mapping, column: str) -> object:
    """The cell's value, or None when it is missing ('', '.', NaN, absent column)."""
    value = row.get(column)
    if isinstance(value, str):
        value = value.strip()
    missing = value is None or (isinstance(value, str) and value in ("", ".")) or \
        (isinstance(value, float) and math.isnan(value))
    return None if missing else value


def _number_cell(row: Mapping, column: str, where: str, default: float | None = None,
                 whole: bool = False) -> float:
    value = _cell(row, column)
    if value is None:
        if default is None:
            raise RegimenError(f"{where}, column {column}: value missing; a dose record needs a number here")
        return default
    number = _finite_float(value)
    if number is None or number < 0 or (whole and not number.is_integer()):
        kind = "a whole number >= 0" if whole else "a finite number >= 0"
        raise RegimenError(f"{where}, column {column}: expected {kind}, given {value!r}")
    return number


def _state_of(value: object, state_names: Sequence[str], where: str) -> int:
    """0-based state index from a CMT cell (1-based number or state name)."""
    if value is None:
        raise RegimenError(f"{where}, column CMT: value missing; give the dosed state's 1-based number "
                           f"or name")
    number = _finite_float(value)
    if number is None:
        names = {name.lower(): index for index, name in enumerate(state_names)}
        if str(value).lower() in names:
            return names[str(value).lower()]
        hint = closest(str(value), state_names)
        raise RegimenError(f"{where}, column CMT: unknown compartment {value!r}{hint}; give a state name "
                           f"or its 1-based number")
    if not number.is_integer() or not 1 <= number <= len(state_names):
        raise RegimenError(f"{where}, column CMT: compartment {value!r} does not exist; the model's states "
                           f"are numbered 1 to {len(state_names)}")
    return int(number) - 1


@dataclass(frozen=True)
class SteadyState:
    """A NONMEM ``SS=1`` dose record: at ``time`` (days) the system is reset to the periodic
    steady state reached by giving ``dose`` every ``interval`` days, taken just before a dose
    (the record's own dose, and its ADDL doses, then follow as ordinary doses).

    Attributes:
        dose: one administration at t=0: drug, amount, unit, route and infusion duration.
        interval: the dosing interval II, days (> 0, and not shorter than an infusion).
        time: the record's TIME, days.
    """

    dose: Dose
    interval: float
    time: float


@dataclass(frozen=True)
class SubjectEvents:
    """One subject's doses from an event table, and its ``SS=1`` reset if it has one."""

    regimen: Regimen
    steady_state: SteadyState | None = None


def _time_unit_note(time_unit: object) -> str:
    return (f"(this table's TIME and II are read in {time_unit!r} and RATE is per {time_unit!r}: "
            f"time_unit={time_unit!r}; pass time_unit='h' or 'day', or --time-unit, to change it)")


def _dose_from_row(row: Mapping, where: str, dosable: Mapping[int, DoseTarget],
                   state_names: Sequence[str], per_day: int,
                   events_before: int) -> tuple[Dose, SteadyState | None]:
    state = _state_of(_cell(row, "CMT"), state_names, where)
    if state not in dosable:
        listing = ", ".join(f"{index + 1} ({state_names[index]}: {target.name})"
                            for index, target in sorted(dosable.items())) or "none"
        raise RegimenError(f"{where}, column CMT: state {state + 1} ({state_names[state]!r}) has no dose "
                           f"target; dosable compartments: {listing}")
    target = dosable[state]
    time, amount = _number_cell(row, "TIME", where), _number_cell(row, "AMT", where)
    if amount == 0:
        raise RegimenError(f"{where}, column AMT: a dose record (EVID 1) needs AMT > 0, given 0; give "
                           f"the amount, or make the row an observation (EVID 0). Steady-state "
                           f"constant infusions (AMT 0 with RATE and SS=1) are not supported")
    interval = _number_cell(row, "II", where, 0.0)
    additional = _number_cell(row, "ADDL", where, 0.0, whole=True)
    if additional > 0 and interval <= 0:
        raise RegimenError(f"{where}: ADDL={additional:g} additional doses need an interval II > 0")
    rate = _finite_float(_cell(row, "RATE") or 0)
    if rate in (-1, -2):
        raise RegimenError(f"{where}, column RATE: modelled rate/duration not supported; give RATE "
                           f"explicitly (amount per time unit, 0 for a bolus)")
    if rate is None or rate < 0:
        raise RegimenError(f"{where}, column RATE: expected a number >= 0, given {_cell(row, 'RATE')!r}")
    if rate > 0 and "infusion" not in target.routes:
        raise RegimenError(f"{where}, column RATE: RATE={rate:g} asks for an infusion, but {target.name} "
                           f"(state {target.state!r}) accepts {', '.join(target.routes)} only; give "
                           f"RATE 0 (or leave it empty) for a bolus, or dose a target that takes "
                           f"infusions")
    steady = _number_cell(row, "SS", where, 0.0, whole=True)
    if steady == 2:
        raise RegimenError(f"{where}, column SS: SS=2 (steady state added to the current state by "
                           f"superposition) is not supported: superposition holds only for linear "
                           f"models and these models are nonlinear. Use SS=1 (reset to steady state), "
                           f"or give the earlier doses explicitly with II and ADDL")
    if steady not in (0, 1):
        raise RegimenError(f"{where}, column SS: expected 0 (no steady state) or 1 (reset to steady "
                           f"state); given {_cell(row, 'SS')!r}")
    check_events(events_before + additional + 1, f"{where} (ADDL={additional:g})")
    times = (time + interval * np.arange(int(additional) + 1)) / per_day
    route, duration = ("infusion", amount / rate / per_day) if rate > 0 else ("bolus", 0.0)
    try:
        dose = Dose(target.name, amount, target.amount_unit, tuple(times), route, duration)
    except RegimenError as error:
        raise RegimenError(f"{where}: {error}") from None
    if not steady:
        return dose, None
    if interval <= 0:
        raise RegimenError(f"{where}, column II: SS=1 needs the dosing interval II > 0; given "
                           f"{interval:g}. Steady state under a constant infusion (II 0) is not "
                           f"supported")
    if duration * per_day > interval:
        raise RegimenError(f"{where}: SS=1 with an infusion of AMT/RATE = {duration * per_day:g} "
                           f"longer than II = {interval:g}: the infusions would overlap; shorten the "
                           f"infusion or lengthen II")
    unit_dose = Dose(target.name, amount, target.amount_unit, (0.0,), route, duration)
    return dose, SteadyState(unit_dose, interval / per_day, time / per_day)


def read_event_subjects(source: str | os.PathLike | pd.DataFrame, targets: Sequence[DoseTarget],
                        state_names: Sequence[str], time_unit: str | None = None
                        ) -> dict[int, SubjectEvents]:
    """Read a NONMEM-style event table into one :class:`SubjectEvents` per subject ID.

    ``time_unit`` ('day' or 'h'; no default) is the unit of TIME and II, and RATE is amount
    per that unit. ``source`` is a CSV path or a DataFrame; column names are case-insensitive.
    TIME, AMT and CMT are required; ID (default 1), EVID (default: 1 where AMT > 0), II,
    ADDL, RATE and SS are optional. See docs/event_tables.md for the semantics and for what
    each unsupported case says: EVID 0 and 2 rows are observations and must not carry an
    amount; a dose needs AMT > 0; RATE > 0 (an infusion of AMT/RATE) needs a target that takes
    infusions; ADDL/II are expanded (at most :data:`plateletpd.limits.MAX_EVENTS_PER_SUBJECT`
    events per subject, checked before expanding); SS=1 with II > 0 is a reset to periodic
    steady state (one SS=1 record per subject, with no dose before it); SS=2 is refused.
    CMT is a 1-based state number or a state name. Rows with the same drug, amount, route
    and duration are merged into one dose. When several targets share a state, the first is
    used.

    Raises:
        RegimenError: naming the row (1-based data row; the file line too), the column and
            the time unit the table was read in.
        ResourceLimitError: ADDL would expand past the event limit (estimate and limit).
    """
    if time_unit is None:
        raise RegimenError("an event table needs its time unit: pass time_unit='h' (hours) or 'day' "
                           "(days), the unit of TIME and II (RATE is amount per that unit); there is "
                           "no default because NONMEM tables are usually in hours and models here "
                           "in days")
    per_day = _per_day(time_unit)
    try:
        return _read_subjects(source, tuple(targets), tuple(state_names), per_day)
    except (RegimenError, ResourceLimitError) as error:
        raise type(error)(f"{error} {_time_unit_note(time_unit)}") from None


def _read_subjects(source, targets: tuple[DoseTarget, ...], state_names: tuple[str, ...],
                   per_day: int) -> dict[int, SubjectEvents]:
    table, path = _load_table(source)
    table = table.rename(columns=lambda name: str(name).strip().upper())
    missing = [column for column in ("TIME", "AMT", "CMT") if column not in table.columns]
    if missing or table.columns.duplicated().any():
        raise RegimenError(f"event table {path or '(DataFrame)'}: needs columns TIME, AMT and CMT once "
                           f"each (case-insensitive); missing {missing}, given {list(table.columns)}")
    _target_lookup(targets)  # validates the targets
    dosable = {target.state_index: target for target in reversed(targets)}
    groups: dict[int, dict[tuple, list[float]]] = {}
    steady: dict[int, list[tuple[str, SteadyState]]] = {}
    for number, row in enumerate(table.to_dict("records"), start=1):
        where = f"row {number}" + (f" (line {number + 1} of {path})" if path else "")
        subject = int(_number_cell(row, "ID", where, 1.0, whole=True))
        doses = groups.setdefault(subject, {})
        evid = (_number_cell(row, "EVID", where, whole=True) if "EVID" in table.columns
                else float(_number_cell(row, "AMT", where, 0.0) > 0))
        if evid in (3, 4):
            raise RegimenError(f"{where}, column EVID: EVID {evid:g} (reset) is not supported; simulate "
                               f"the parts before and after the reset separately")
        if evid not in (0, 1, 2):
            raise RegimenError(f"{where}, column EVID: expected 0 (observation), 1 (dose) or 2 (other); "
                               f"given {evid:g}")
        if evid != 1:
            amount = _number_cell(row, "AMT", where, 0.0)
            if amount > 0:
                kind = "observation" if evid == 0 else "other event"
                raise RegimenError(f"{where}, column AMT: EVID {evid:g} ({kind}) with AMT {amount:g}: "
                                   f"the dose would be lost. Give EVID 1 for a dose, or AMT 0 (or "
                                   f"'.') for an observation")
            continue
        before = sum(map(len, doses.values()))
        dose, reset = _dose_from_row(row, where, dosable, state_names, per_day, before)
        if reset is not None:
            steady.setdefault(subject, []).append((where, reset))
        key = (dose.drug, dose.amount, dose.unit, dose.route, dose.duration)
        doses.setdefault(key, []).extend(dose.times)
    resets = {subject: _one_reset(records, groups[subject]) for subject, records in steady.items()}
    return {subject: SubjectEvents(Regimen(tuple(Dose(drug, amount, unit, tuple(times), route, duration)
                                                 for (drug, amount, unit, route, duration), times
                                                 in doses.items())), resets.get(subject))
            for subject, doses in groups.items()}


def _one_reset(records: list[tuple[str, SteadyState]], doses: Mapping[tuple, list[float]]) -> SteadyState:
    """The subject's single SS=1 reset; refuse a second one or a dose before it."""
    (where, reset), *others = records
    if others:
        raise RegimenError(f"{others[0][0]}, column SS: a second SS=1 record for this subject ({where} "
                           f"is the first); NONMEM's SS=1 resets the whole system, so a second one "
                           f"would discard the first. Give one SS=1 record per subject")
    earlier = min((t for times in doses.values() for t in times if t < reset.time - _TOLERANCE),
                  default=None)
    if earlier is not None:
        raise RegimenError(f"{where}, column SS: a dose at TIME {earlier:g} d comes before this SS=1 "
                           f"record at {reset.time:g} d (times in days here); SS=1 resets the system "
                           f"and would discard it. Remove the earlier doses or the SS flag")
    return reset


def read_event_table(source: str | os.PathLike | pd.DataFrame, targets: Sequence[DoseTarget],
                     state_names: Sequence[str], time_unit: str | None = None) -> dict[int, Regimen]:
    """Read a NONMEM-style event table into one :class:`Regimen` per subject ID.

    As :func:`read_event_subjects` (``time_unit`` 'day' or 'h' is required), for tables
    without steady-state records: a regimen cannot hold an SS=1 reset, so such a table is
    refused with a pointer to :func:`plateletpd.simulate_event_table`, which simulates it.
    """
    subjects = read_event_subjects(source, targets, state_names, time_unit)
    for subject, events in subjects.items():
        if events.steady_state is not None:
            raise RegimenError(f"subject {subject} has an SS=1 record (reset to steady state), which a "
                               f"Regimen cannot hold; simulate the table with plateletpd."
                               f"simulate_event_table(model, table, time_unit=...) or "
                               f"'plateletpd simulate MODEL --events TABLE.csv', which integrate to "
                               f"steady state")
    return {subject: events.regimen for subject, events in subjects.items()}


def _write_atomic(table: pd.DataFrame, path: Path) -> None:
    if not path.parent.is_dir():
        raise RegimenError(f"cannot write {str(path)!r}: folder {str(path.parent)!r} does not exist; "
                           f"create it first")
    atomic_write(path, lambda temporary: table.to_csv(temporary, index=False))


def write_event_table(source: pd.DataFrame | Regimen | Dose | str | Mapping[int, Regimen],
                      path: str | os.PathLike, targets: Sequence[DoseTarget] | None = None,
                      state_names: Sequence[str] | None = None, *,
                      covariates: Mapping[str, float] | None = None, subject_id: int = 1,
                      time_unit: str = "day") -> Path:
    """Write an event table as CSV, atomically (temporary file in the same folder, then replace).

    ``source`` is a table (from :func:`to_event_table`), a regimen (needs ``targets`` and
    ``state_names``; written as ``subject_id``), or a mapping subject ID -> regimen (as returned
    by :func:`read_event_table`; the same ``covariates`` apply to every subject). Returns the path.
    """
    if isinstance(source, pd.DataFrame):
        table = source
    else:
        if targets is None or state_names is None:
            raise RegimenError("to write a regimen, pass the model's dose targets and state names: "
                               "write_event_table(regimen, path, targets, state_names)")
        regimens = source if isinstance(source, Mapping) else {subject_id: source}
        frames = [to_event_table(regimen, targets, state_names, covariates, subject, time_unit)
                  for subject, regimen in regimens.items()]
        table = pd.concat(frames, ignore_index=True) if frames else \
            to_event_table(Regimen(), targets, state_names, time_unit=time_unit)
    path = Path(path)
    _write_atomic(table, path)
    return path
