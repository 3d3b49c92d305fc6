"""Exceptions raised at the package boundary.

Every error says what was expected, what was given and how to fix it. They all derive
from :class:`PlateletPDError` (itself a ``ValueError``) so callers can catch the family.
"""

from __future__ import annotations

import difflib
from typing import Iterable


class PlateletPDError(ValueError):
    """Base class of every error plateletpd raises on bad input."""


class ModelFileError(PlateletPDError):
    """A model file is malformed. The message names the file, the line, the section and the
    text."""

    def __init__(self, message: str, *, path: str | None = None, section: str | None = None,
                 text: str | None = None, line: int | None = None):
        self.path = path
        self.section = section
        self.text = text
        self.line = line
        where = []
        if path:
            where.append(f"{path}, line {line}" if line else str(path))
        if section:
            where.append(f"[{section}]")
        prefix = " ".join(where)
        full = f"{prefix}: {message}" if prefix else message
        if text is not None:
            full += f"\n    offending text: {text!r}"
        super().__init__(full)


class ExpressionError(PlateletPDError):
    """An expression uses syntax or names outside the model language."""


class RegimenError(PlateletPDError):
    """A dosing regimen cannot be given to this model as written."""


class ParameterError(PlateletPDError):
    """An unknown parameter or covariate name, or a value outside its bounds."""


class SimulationInputError(PlateletPDError):
    """Arguments to :func:`plateletpd.simulate` that cannot be used (times, tolerances...)."""


class FitFileError(PlateletPDError):
    """A saved fit (a folder with ``params.json``) cannot be found or read."""


class ResourceLimitError(PlateletPDError):
    """A request would exceed a resource limit (memory, events, formula size): the message
    gives the estimate and the limit (:mod:`plateletpd.limits`)."""


class ModelWarning(UserWarning):
    """Something in a model file works but is probably a mistake (an unused parameter...)."""


class SimulationWarning(UserWarning):
    """A simulation finished with a non-success status (see the result's ``status``)."""


def closest(name: str, candidates: Iterable[str]) -> str:
    """Return a ``" (did you mean 'x'?)"`` hint, or an empty string when nothing is close."""
    candidates = list(candidates)
    lowered = {c.lower(): c for c in candidates}
    if name.lower() in lowered and lowered[name.lower()] != name:
        return f" (did you mean {lowered[name.lower()]!r}?)"
    match = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""
