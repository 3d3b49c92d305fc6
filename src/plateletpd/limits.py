"""Resource guards, checked before anything large is allocated or built.

A typo such as ``--n 1000000000000`` or ``ADDL=1e9`` should be one clear message with the
estimate and the limit, not a 14.6 TiB allocation traceback or a process killed by the
operating system. Each guard raises :class:`~plateletpd.errors.ResourceLimitError` (a
:class:`~plateletpd.errors.PlateletPDError`, so the command line exits with status 2).

Limits:

* memory: :func:`memory_limit` bytes for one array-building step: 80% of this machine's
  physical memory, or ``$PLATELETPD_MEMORY_LIMIT`` (bytes, or a number with a ``K``, ``M``,
  ``G`` or ``T`` suffix in powers of 1024);
* events: :data:`MAX_EVENTS_PER_SUBJECT` doses (and infusion ends) per subject;
* formulas: :data:`plateletpd.model.expressions.MAX_FORMULA_LENGTH` characters and
  :data:`plateletpd.model.expressions.MAX_FORMULA_DEPTH` levels.
"""

from __future__ import annotations

import os

from plateletpd.errors import ResourceLimitError

#: Most dose events one subject's schedule may hold (a daily dose for 270 years).
MAX_EVENTS_PER_SUBJECT = 100_000

_SUFFIXES = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3, "T": 1024 ** 4}


def physical_memory() -> int | None:
    """Bytes of physical memory, or None where the system does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def memory_limit() -> int:
    """Bytes one step may allocate: ``$PLATELETPD_MEMORY_LIMIT`` or 80% of physical memory."""
    text = os.environ.get("PLATELETPD_MEMORY_LIMIT", "").strip()
    if text:
        factor = _SUFFIXES.get(text[-1].upper(), 1)
        number = text[:-1] if text[-1].upper() in _SUFFIXES else text
        try:
            value = float(number) * factor
        except ValueError:
            value = -1.0
        if not value > 0:
            raise ResourceLimitError(
                f"PLATELETPD_MEMORY_LIMIT must be a positive number of bytes, optionally with "
                f"a K, M, G or T suffix (e.g. 8G); given {text!r}")
        return int(value)
    total = physical_memory()
    return int(0.8 * total) if total else 64 * 1024 ** 3


def size_text(n_bytes: float) -> str:
    """``1536`` -> ``'1.5 KiB'``."""
    value, unit = float(n_bytes), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if abs(value) < 1024 or unit == "EiB":
            break
        value /= 1024
    return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"


def check_memory(n_bytes: float, what: str, fix: str) -> None:
    """Raise when ``what`` would need more than :func:`memory_limit` bytes."""
    limit = memory_limit()
    if n_bytes > limit:
        raise ResourceLimitError(
            f"{what} needs an estimated {size_text(n_bytes)} of memory; the limit is "
            f"{size_text(limit)} (80% of this machine's memory, or $PLATELETPD_MEMORY_LIMIT). "
            f"{fix}")


def check_subjects(n_subjects: int, bytes_per_subject: float, what: str) -> None:
    """Guard an allocation that grows with the number of subjects."""
    check_memory(float(n_subjects) * bytes_per_subject,
                 f"{what} for {n_subjects:,} subjects ({size_text(bytes_per_subject)} each)",
                 "Use fewer subjects, or split the cohort into runs with different seeds.")


def check_events(n_events: float, what: str) -> None:
    """Guard a schedule expansion before it is built."""
    if n_events > MAX_EVENTS_PER_SUBJECT:
        raise ResourceLimitError(
            f"{what} would create {n_events:,.0f} dose events for one subject; the limit is "
            f"{MAX_EVENTS_PER_SUBJECT:,}. Check the day range, ADDL or the interval "
            f"(a daily dose for a year is 365 events).")
