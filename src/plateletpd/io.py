"""Atomic file output and provenance records.

Every file plateletpd writes goes through :func:`atomic_write`: the content is written to a
temporary file in the destination folder and moved into place with :func:`os.replace`, so an
interrupted run (Ctrl-C, a crash) never leaves a half-written result.
"""

from __future__ import annotations

import contextlib
import datetime as _datetime
import functools
import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it onto ``path`` if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part",
                                         dir=target.parent)
    os.close(handle)
    try:
        yield Path(temporary)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def atomic_write(path: str | os.PathLike, writer: Callable[[Path], Any]) -> Path:
    """Call ``writer(temporary_path)`` and atomically move the result to ``path``."""
    with atomic_path(path) as temporary:
        writer(temporary)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` atomically."""
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON atomically (numpy scalars and arrays allowed)."""
    return write_text(path, json.dumps(data, indent=2, default=_json_default) + "\n")


def _json_default(value: Any):
    import numpy as np

    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    return str(value)


def read_toml(path: str | os.PathLike, error: type[Exception], what: str) -> tuple[str, dict]:
    """(text, table) of a TOML file; unreadable or invalid files raise ``error`` naming it."""
    import tomllib

    try:
        text = Path(path).read_text(encoding="utf-8")
        return text, tomllib.loads(text)
    except OSError as problem:
        raise error(f"cannot read {what} {path}: {problem}") from None
    except tomllib.TOMLDecodeError as problem:
        raise error(f"{path}: not valid TOML: {problem}") from None


@functools.lru_cache(maxsize=1)
def _versions() -> tuple[tuple[str, str], ...]:
    import numba
    import numpy
    import scipy

    from . import __version__

    return (("plateletpd", __version__), ("python", platform.python_version()),
            ("numpy", numpy.__version__), ("scipy", scipy.__version__),
            ("numba", numba.__version__))


def versions() -> dict[str, str]:
    """Versions of plateletpd and the libraries that determine its numbers."""
    return dict(_versions())


def provenance(model=None, **extra: Any) -> dict[str, Any]:
    """Where a result came from: versions, model identity, time, and any extra fields."""
    record: dict[str, Any] = {
        "created": _datetime.datetime.now(_datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": versions()}
    if model is not None:
        record["model"] = {"name": model.name, "path": model.path, "hash": model.hash,
                           "structure_hash": model.structure_hash}
    record.update(extra)
    return record
