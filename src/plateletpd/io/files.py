"""Atomic output (files and whole folders) and strict JSON.

Files. Every file plateletpd writes goes through :func:`atomic_write`: the content is
written to a temporary file ``.NAME.*.part`` in the destination folder and moved into place
with :func:`os.replace`, so an interrupted run (Ctrl-C, a crash, SIGKILL) never leaves a
half-written file. The temporary file is created private (0600); before the move it gets the
usual permissions, ``0o666`` less the process umask (as ``open()`` would give it), and the
folders :func:`atomic_folder` creates get ``0o777`` less the umask.

Folders. A command that writes a folder (``trial``, ``fit``, ``sweep``, ``demo``) writes it
inside :func:`atomic_folder`: everything goes into a temporary sibling
``.NAME.part-PID-XXXX``; only when every file is written is a ``manifest.json`` added (last)
and the sibling swapped into place. The previous output stays untouched until that swap, so
a reader sees the old complete folder or the new complete one, never a mix:

* on Linux the swap is one ``renameat2(RENAME_EXCHANGE)`` call, so the folder is never
  missing; elsewhere (or on a file system without it) the old folder is renamed to
  ``.NAME.old-PID-XXXX`` and the new one renamed into place: for the instant between these
  two renames ``NAME`` does not exist. A run killed in that instant leaves the previous
  output complete in ``.NAME.old-PID-XXXX``, and the next run writing ``NAME`` renames it
  back before it starts.
* leftovers of a killed run (``.NAME.part-PID-*``, ``.NAME.old-PID-*`` whose process ``PID``
  no longer runs) are removed by the next run that writes ``NAME``; readers ignore them.
* ``manifest.json`` is written last and lists every file of the output with its size and
  sha256; :func:`verify_folder` checks a folder against it (a folder without it is not a
  complete plateletpd output).
* files in an existing output folder that the previous run did not write (e.g. the
  ``config.toml`` of ``plateletpd fit config.toml --out .`` next to it) are kept: they are
  hard-linked (or copied) into the new folder and listed under ``kept``. Files the previous
  run wrote and this run does not are dropped. The current folder (or one holding it) is
  refused as an output folder, since the swap would move it from under the shell.

Strict JSON. :func:`write_json` writes standard JSON (``allow_nan=False``): a NaN becomes
``null`` (a missing number) and an infinity the string ``"inf"`` or ``"-inf"``
(``float("inf")`` reads it back), since ``Infinity`` and ``NaN`` are not JSON.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as _datetime
import functools
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

from plateletpd.errors import PlateletPDError

#: written last into every output folder: each file with its size and sha256
MANIFEST = "manifest.json"
_UMASK_LOCK = threading.Lock()
#: staging folders of the folder transactions open in this process (nested calls join them)
_OPEN_FOLDERS: list[Path] = []


def current_umask() -> int:
    """The process umask, read from /proc where the system has it (nothing changes), else
    set and restored under a lock (briefly 0o077, never more permissive)."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def _usual_mode(path: Path, base: int) -> None:
    os.chmod(path, base & ~current_umask())


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
        _usual_mode(Path(temporary), 0o666)
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
    """Write ``data`` as indented, strict JSON atomically (numpy scalars and arrays allowed;
    NaN -> null, +-infinity -> "inf"/"-inf", see the module text)."""
    return write_text(path, json.dumps(strict_json(data), indent=2, allow_nan=False,
                                       default=str) + "\n")


def strict_json(value: Any) -> Any:
    """``value`` with numpy values as Python ones, NaN as None and infinities as strings."""
    import numpy as np

    if isinstance(value, dict):
        return {k if isinstance(k, (str, int, float, bool)) or k is None else str(k):
                strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [strict_json(v) for v in (value.tolist() if isinstance(value, np.ndarray)
                                         else value)]
    if isinstance(value, (np.generic,)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


# ====================================================================== whole folders
@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling folder to write into; swap it onto ``path`` if the block
    succeeds (see the module text). Inside an open transaction, a call for that folder or
    one inside it joins the transaction and yields the staging path directly."""
    target = Path(path).resolve()
    for staging in _OPEN_FOLDERS:
        if target == staging or staging in target.parents:
            target.mkdir(parents=True, exist_ok=True)
            yield target
            return
    check_output_folder(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _recover(target)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.part-{os.getpid()}-",
                                    dir=target.parent))
    _OPEN_FOLDERS.append(staging)
    try:
        yield staging
        kept = _carry_over(target, staging)
        _write_manifest(staging, kept)
        _usual_mode(staging, 0o777)
        _swap(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        _OPEN_FOLDERS.remove(staging)


def check_output_folder(path: str | os.PathLike) -> None:
    """Refuse an output folder that :func:`atomic_folder` cannot replace as a whole (a file,
    the current or home folder); commands call it before they compute."""
    target = Path(path).resolve()
    if target.exists() and not target.is_dir():
        raise PlateletPDError(f"the output folder {target} exists and is not a folder; give "
                              f"another name, or move the file away")
    here = Path.cwd().resolve()
    if target == here or target in here.parents or target == Path.home().resolve():
        raise PlateletPDError(f"the output folder {target} is the current or home folder (or "
                              f"holds it); plateletpd replaces an output folder as a whole, "
                              f"so give a folder of its own, e.g. {target / 'results'}")


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _recover(target: Path) -> None:
    """Undo what a killed run left next to ``target``: restore a previous output caught
    between the two renames of a swap, remove staging and backup folders."""
    pattern = re.compile(rf"\.{re.escape(target.name)}\.(part|old)-(\d+)-")
    for sibling in sorted(target.parent.iterdir()):
        match = pattern.match(sibling.name)
        if not match or _process_alive(int(match.group(2))):
            continue
        if match.group(1) == "old" and not os.path.lexists(target):
            os.rename(sibling, target)
        else:
            shutil.rmtree(sibling, ignore_errors=True)


def _listed(folder: Path) -> tuple[set[str], dict]:
    """(top-level names the manifest of ``folder`` lists as written, the manifest)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        return {name.split("/")[0] for name in manifest["files"]}, manifest
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return set(), {}


def _carry_over(target: Path, staging: Path) -> list[str]:
    """Link (or copy) into ``staging`` what ``target`` holds that its last run did not write
    and this run did not write either; return the names kept."""
    if not target.is_dir():
        return []
    written, _ = _listed(target)
    kept = []
    for entry in sorted(target.iterdir()):
        name = entry.name
        if name in written or name == MANIFEST or os.path.lexists(staging / name) or (
                name.startswith(".") and name.endswith(".part")):
            continue
        if entry.is_symlink():
            os.symlink(os.readlink(entry), staging / name)
        elif entry.is_dir():
            shutil.copytree(entry, staging / name, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(entry, staging / name)
        kept.append(name)
    return kept


def _link_or_copy(source, destination) -> None:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _files(folder: Path, kept: list[str] | set[str]) -> dict[str, Path]:
    """Relative POSIX name -> path of the regular files of ``folder`` outside ``kept``."""
    return {path.relative_to(folder).as_posix(): path for path in sorted(folder.rglob("*"))
            if path.is_file() and not path.is_symlink() and path.name != MANIFEST
            and path.relative_to(folder).parts[0] not in kept}


def _write_manifest(staging: Path, kept: list[str]) -> None:
    from plateletpd._version import __version__

    files = {name: {"bytes": path.stat().st_size, "sha256": _digest(path)}
             for name, path in _files(staging, kept).items()}
    write_json(staging / MANIFEST, {
        "complete": True, "created": _now(), "writer": f"plateletpd {__version__}",
        "files": files, "kept": kept})


def verify_folder(path: str | os.PathLike) -> list[str]:
    """Problems of an output folder against its manifest (empty: complete and unchanged)."""
    folder = Path(path)
    written, manifest = _listed(folder)
    if not manifest.get("complete"):
        return [f"{folder}: no readable {MANIFEST}: not a complete plateletpd output"]
    problems = []
    for name, entry in manifest["files"].items():
        file = folder / name
        if not file.is_file():
            problems.append(f"{name}: listed in {MANIFEST} but missing")
        elif _digest(file) != entry.get("sha256"):
            problems.append(f"{name}: changed since it was written (sha256 differs)")
    listed = set(manifest["files"])
    problems += [f"{name}: not written by this run (not in {MANIFEST})"
                 for name in _files(folder, manifest.get("kept", [])) if name not in listed]
    return problems


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    function = _renameat2()
    if function is None:
        return False
    at_current_folder, exchange = -100, 2
    return function(at_current_folder, os.fsencode(first), at_current_folder,
                    os.fsencode(second), exchange) == 0


@functools.lru_cache(maxsize=1)
def _renameat2():
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError, TypeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                         ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def _swap(staging: Path, target: Path) -> None:
    """Put the finished ``staging`` folder at ``target``; remove the previous output."""
    if not os.path.lexists(target):
        os.rename(staging, target)
    elif _exchange(staging, target):
        shutil.rmtree(staging, ignore_errors=True)  # it now holds the previous output
    else:
        backup = staging.with_name(staging.name.replace(".part-", ".old-", 1))
        os.rename(target, backup)
        os.rename(staging, target)  # between these two renames, target is missing
        shutil.rmtree(backup, ignore_errors=True)


def _now() -> str:
    return _datetime.datetime.now(_datetime.timezone.utc).isoformat(timespec="seconds")


# ====================================================================== bundled files
def bundled_folder(name: str) -> Path:
    """A folder shipped with plateletpd: ``_bundled_NAME`` inside the wheel (pyproject.toml
    ``force-include``), or ``NAME/`` at the root of a source tree (``models``, ``fits``,
    ``data``, ``trials``, ``validation``)."""
    from importlib import resources

    packaged = resources.files("plateletpd") / f"_bundled_{name}"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[3] / name


def recorded_trial_file(recorded: str | Path, *roots: Path) -> Path | None:
    """A trial file a record names (a fit's or a validation record's ``file``): the path as
    recorded, else under each of ``roots``, else the bundled trial of that file name; None
    when none exists (a record made elsewhere)."""
    recorded = Path(str(recorded))
    for candidate in (recorded, *(root / recorded for root in roots),
                      bundled_folder("trials") / recorded.name):
        if candidate.is_file():
            return candidate
    return None


def bundled_toml(folder: str, name: str, what: str,
                 error: Callable[[str], Exception]) -> Path:
    """Path of the bundled ``folder/NAME.toml`` (a trial, a validation suite); ``error``
    naming the closest bundled names and how to give a file instead when there is none."""
    from plateletpd.errors import closest

    path = bundled_folder(folder) / f"{name}.toml"
    if not path.is_file():
        names = sorted(p.stem for p in bundled_folder(folder).glob("*.toml"))
        raise error(f"no bundled {what} {name!r}{closest(name, names)}; bundled: "
                    f"{', '.join(names) or 'none'}; or give the path of a {what} file")
    return path
