"""Reading TOML inputs (model, trial, fit files) and saying what is wrong with a number;
checking them against their schema, with lines, is :mod:`plateletpd.io.schema`."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any


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
