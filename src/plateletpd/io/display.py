"""Short text and HTML summaries of results and models, for the console and notebooks.

Reprs name what an object is and its sizes, never its arrays (a batch's repr was 12,000
characters); ``_repr_html_`` gives the same as a small table. Every value is escaped.
"""

from __future__ import annotations

import html
import sys
from typing import Iterable


def progress(text: str, stream=None) -> None:
    """One progress update on standard error: rewritten in place on a terminal (a carriage
    return before it), a line of its own when standard error is a file or a pipe, where
    carriage returns would run every update together in the log read later."""
    stream = stream or sys.stderr
    if _terminal(stream):
        print("\r" + text, end="", file=stream, flush=True)
    else:
        print(text, file=stream, flush=True)


def progress_due(done: int, total: int, stream=None, updates: int = 20) -> bool:
    """Whether update ``done`` of ``total`` is shown: every one on a terminal (rewritten in
    place), about ``updates`` in all in a log (every replicate of 200 made 200 lines)."""
    if _terminal(stream or sys.stderr):
        return True
    step = max(1, total // updates)
    return done % step == 0 or done == total or done == 1


def progress_end(stream=None) -> None:
    """Ends a run of :func:`progress` updates (the terminal's line; nothing in a log)."""
    stream = stream or sys.stderr
    if _terminal(stream):
        print(file=stream, flush=True)


def _terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or stream-like object
        return False


def short_repr(kind: str, items: Iterable[tuple[str, object]]) -> str:
    """``Kind(name=value, ...)`` on one line."""
    return f"{kind}(" + ", ".join(f"{name}={value}" for name, value in items) + ")"


def html_table(title: str, rows: Iterable[tuple[str, object]],
               table: Iterable[Iterable[object]] | None = None,
               header: Iterable[str] = ()) -> str:
    """A titled two-column table of ``rows`` (name, value), then optionally a table with
    ``header`` (a few rows: a notebook summary, not the data)."""
    cells = "".join(f"<tr><th style='text-align:left'>{html.escape(str(name))}</th>"
                    f"<td style='text-align:left'>{html.escape(str(value))}</td></tr>"
                    for name, value in rows)
    parts = [f"<table><caption style='text-align:left'><b>{html.escape(title)}</b>"
             f"</caption>{cells}</table>"]
    if table is not None:
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row)
                       + "</tr>" for row in table)
        parts.append(f"<table><tr>{head}</tr>{body}</table>")
    return "".join(parts)
