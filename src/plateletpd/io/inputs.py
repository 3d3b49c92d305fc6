"""Reading TOML inputs (model, trial, fit files) and checking their values with the line
they are on, so every error can say file, line, key, what was expected and what was given."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any, Callable

def read_toml(path: str | os.PathLike, error: type[Exception], what: str) -> tuple[str, dict]:
    """(text, table) of a TOML file; unreadable or invalid files raise ``error`` naming it."""
    import tomllib

    try:
        text = Path(path).read_text(encoding="utf-8")
        return text, tomllib.loads(text)
    except OSError as problem:
        raise error(f"cannot read {what} {path}: {problem}") from None
    except UnicodeDecodeError as problem:
        raise error(f"{path}: not UTF-8 text ({problem}); save the {what} as UTF-8") from None
    except tomllib.TOMLDecodeError as problem:
        raise error(f"{path}: not valid TOML: {problem}") from None


def line_of(text: str, key: str, after: int = 0) -> int:
    """1-based line of the first ``key =`` or ``[key]`` at or after line ``after`` of a TOML
    text (``after`` itself when there is none, or 1)."""
    pattern = re.compile(rf"^\s*(\[\[?\s*{re.escape(key)}\s*\]\]?|{re.escape(key)}\s*=)")
    for number, line in enumerate(text.splitlines(), start=1):
        if number >= after and pattern.match(line):
            return number
    return after or 1


def number_problem(value: Any, low: float | None = 0.0, high: float | None = None,
                   low_included: bool = False, whole: bool = False) -> str | None:
    """Why ``value`` (from a TOML or CSV file) is not a finite number in the interval from
    ``low`` (excluded unless ``low_included``) to ``high`` (included), or None when it is.
    The text says what was expected and what was given, e.g. "must be a number in (0, 42],
    got '100' (text: write the number without quotes)"."""
    kind = "a whole number" if whole else "a number"
    interval = (f"{'[' if low_included else '('}{'-inf' if low is None else f'{low:g}'}, "
                f"{'inf)' if high is None else f'{high:g}]'}")
    expected = f"must be {kind} in {interval}, got {value!r}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            float(str(value))
            return expected + " (text: write the number without quotes)"
        except ValueError:
            return expected + " (not a number)"
    if whole and not float(value).is_integer():
        return expected + " (not a whole number)"
    if not (math.isfinite(value) and (low is None or value > low or (low_included and
                                                                    value == low))
            and (high is None or value <= high)):
        return expected
    return None


def checked_number(table: dict, key: str, default: Any, error: Callable[[str], Exception],
                   label: str, low: float | None = 0.0, high: float | None = None,
                   low_included: bool = False, whole: bool = False,
                   may_be_false: bool = False, fix: str = "") -> float | int | None:
    """``table[key]`` (or ``default``) as a number checked by :func:`number_problem`;
    ``false`` gives None where ``may_be_false``. A bad value raises ``error(message)``
    (the caller adds the file and line), the message starting with ``label``."""
    value = table.get(key, default)
    if value is False and may_be_false:
        return None
    problem = number_problem(value, low, high, low_included, whole)
    if problem:
        off = "; false turns the rule off" if may_be_false else ""
        raise error(f"{label} {problem}{off}{'; ' + fix if fix else ''}")
    return int(value) if whole else float(value)
