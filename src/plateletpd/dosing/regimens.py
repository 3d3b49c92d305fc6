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
import re
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from plateletpd.errors import RegimenError
from plateletpd.limits import check_events
from plateletpd.dosing.targets import ROUTES, TOLERANCE, finite_float, parse_unit, unit_label


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

        amount = finite_float(self.amount)
        if amount is None or amount <= 0:
            raise fail(f"amount must be a finite number > 0, given {self.amount!r}",
                       "Give the amount per administration, e.g. amount=7.5 with unit='mg'; "
                       "leave out a drug that is not given (regimen 'none' for no treatment).")
        try:
            unit = unit_label(*parse_unit(self.unit))
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
        duration = finite_float(self.duration)
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
        start_value = finite_float(start)
        if start_value is None:
            raise fail(f"start must be a finite time in days, given {start!r}")
        step = finite_float(interval)
        if until is not None:
            last = finite_float(until)
            if last is None or last < start_value:
                raise fail(f"until must be a finite time >= start ({start!r}), given {until!r}")
            if last > start_value and not (step or 0) > 0:
                raise fail(f"interval must be > 0 days to repeat doses, given {interval!r}")
            count = 1 if last == start_value else math.floor((last - start_value) / step + TOLERANCE) + 1
        elif not isinstance(count, (int, float, np.number)) or isinstance(count, bool) \
                or not (finite_float(count) or 0) >= 1 or not float(count).is_integer():
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
        unit_text = unit_label(*parse_unit(unit[0]))
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
        repeats = 1 if interval is None else math.ceil((last - first + 1) / interval - TOLERANCE)
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
    if float(interval).is_integer() or abs(hours - round(hours)) > TOLERANCE:
        return f"q{_number(interval)}d"
    return f"q{round(hours)}h"


def _schedule_texts(times: tuple[float, ...]) -> Iterator[str]:
    """Candidate schedule texts for ``times``, nicest first (the caller checks each)."""
    first = _number(times[0] + 1)
    if len(times) > 1:
        interval = times[1] - times[0]
        frequency = _frequency_text(interval)
        for last_day in (math.ceil(times[-1] + interval - TOLERANCE), math.floor(times[-1]) + 1):
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
