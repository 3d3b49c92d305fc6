"""Provenance records: where a result came from (versions, model identity, time, seed...)."""

from __future__ import annotations

import functools
import platform
from typing import Any

from plateletpd.io.files import _now


@functools.lru_cache(maxsize=1)
def _versions() -> tuple[tuple[str, str], ...]:
    from importlib.metadata import version  # numba itself is imported only in numerics.jit

    from plateletpd._version import __version__

    return (("plateletpd", __version__), ("python", platform.python_version()),
            *((name, version(name)) for name in ("numpy", "scipy", "numba")))


def versions() -> dict[str, str]:
    """Versions of plateletpd and the libraries that determine its numbers."""
    return dict(_versions())


def provenance(model=None, **extra: Any) -> dict[str, Any]:
    """Where a result came from: versions, model identity, time, and any extra fields."""
    record: dict[str, Any] = {
        "created": _now(), "versions": versions()}
    if model is not None:
        record["model"] = {"name": model.name, "path": model.path, "hash": model.hash,
                           "structure_hash": model.structure_hash}
    record.update(extra)
    return record
