"""Output folders appear whole or not at all (also under SIGKILL), provenance is strict JSON,
and output files and folders get the usual permissions (0o666 / 0o777 less the umask)."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from plateletpd.io import files as io
from plateletpd.cli import main
from plateletpd.errors import PlateletPDError
from plateletpd.io.files import (MANIFEST, atomic_folder, atomic_write, verify_folder, write_json)

SOURCE = str(Path(__file__).resolve().parents[1] / "src")


def strict_loads(text: str):
    """json.loads that refuses the non-standard constants Infinity, -Infinity and NaN."""
    def refuse(constant):
        raise AssertionError(f"non-standard JSON constant {constant}")
    return json.loads(text, parse_constant=refuse)


def write_version(folder: Path, version: int, files: int = 4, pause: float = 0.0) -> None:
    """An output of ``files`` files, each holding ``version`` (a writer that the tests kill)."""
    with atomic_folder(folder) as staging:
        for k in range(files):
            atomic_write(staging / f"part{k}.txt", lambda p: p.write_text(f"{version}\n"))
            time.sleep(pause)


def contents(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != MANIFEST}


def siblings(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}."))


# ---------------------------------------------------------------------- strict JSON
def test_write_json_never_writes_infinity_or_nan(tmp_path):
    data = {"upper": float("inf"), "lower": -np.inf, "stderr": float("nan"),
            "array": np.array([1.5, np.nan, np.inf]), "scalar": np.float32(np.inf),
            "count": np.int64(3), "nested": [{"x": -float("inf")}]}
    text = write_json(tmp_path / "p.json", data).read_text()
    loaded = strict_loads(text)  # would raise on Infinity / NaN
    # documented mapping (plateletpd.io.files): NaN -> null, +-inf -> "inf" / "-inf"
    assert loaded == {"upper": "inf", "lower": "-inf", "stderr": None,
                      "array": [1.5, None, "inf"], "scalar": "inf", "count": 3,
                      "nested": [{"x": "-inf"}]}
    assert float(loaded["upper"]) == float("inf")  # the string reads back as a float


def test_simulation_provenance_is_strict_json(tmp_path):
    from plateletpd import simulate

    result = simulate("friberg_platelets", "cytotoxic 100 mg qd d1-5", days=10)
    assert result.provenance["solver"]["max_step"] == float("inf")  # the case of issue 14
    result.to_csv(tmp_path / "r.csv")
    record = strict_loads((tmp_path / "r.csv.provenance.json").read_text())
    assert record["solver"]["max_step"] == "inf"


# ---------------------------------------------------------------------- permissions
@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002, 0o077])
def test_files_and_folders_get_the_usual_permissions(tmp_path, umask):
    previous = os.umask(umask)
    try:
        assert io.current_umask() == umask
        file = atomic_write(tmp_path / "a.csv", lambda p: p.write_text("x"))
        with atomic_folder(tmp_path / "out") as staging:
            write_json(staging / "p.json", {"a": 1})
            (staging / "sub").mkdir()
            atomic_write(staging / "sub" / "b.txt", lambda p: p.write_text("y"))
    finally:
        os.umask(previous)
    # what open() and mkdir() give: 0o666 and 0o777 less the umask (mkstemp alone gives 0600)
    assert file.stat().st_mode & 0o777 == 0o666 & ~umask
    for path in (tmp_path / "out" / "p.json", tmp_path / "out" / "sub" / "b.txt",
                 tmp_path / "out" / MANIFEST):
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path
    for path in (tmp_path / "out", tmp_path / "out" / "sub"):
        assert path.stat().st_mode & 0o777 == 0o777 & ~umask, path


def test_reading_the_umask_does_not_change_it():
    previous = os.umask(0o037)
    try:
        assert io.current_umask() == 0o037
        assert os.umask(0o037) == 0o037  # still what it was
    finally:
        os.umask(previous)


# ---------------------------------------------------------------------- folder transactions
def test_a_new_output_replaces_the_old_one_whole(tmp_path):
    out = tmp_path / "out"
    write_version(out, 1, files=4)
    assert verify_folder(out) == []
    manifest = strict_loads((out / MANIFEST).read_text())
    assert sorted(manifest["files"]) == [f"part{k}.txt" for k in range(4)]
    (out / "notes.md").write_text("mine")  # a file the user put there
    write_version(out, 2, files=2)  # fewer files: part2/part3 of run 1 must not survive
    assert contents(out) == {"notes.md": b"mine", "part0.txt": b"2\n", "part1.txt": b"2\n"}
    assert strict_loads((out / MANIFEST).read_text())["kept"] == ["notes.md"]
    assert verify_folder(out) == [] and siblings(out) == []


def test_a_failing_writer_leaves_the_previous_output_and_no_temporary_folder(tmp_path):
    out = tmp_path / "out"
    write_version(out, 1)
    with pytest.raises(RuntimeError):
        with atomic_folder(out) as staging:
            atomic_write(staging / "part0.txt", lambda p: p.write_text("2\n"))
            raise RuntimeError("simulated failure after the first file")
    assert set(contents(out).values()) == {b"1\n"} and verify_folder(out) == []
    assert siblings(out) == []


def test_verify_folder_reports_changed_missing_and_foreign_files(tmp_path):
    out = tmp_path / "out"
    write_version(out, 1)
    (out / "part0.txt").write_text("tampered\n")
    (out / "part1.txt").unlink()
    (out / "stray.csv").write_text("x")
    problems = "\n".join(verify_folder(out))
    assert "part0.txt: changed" in problems and "part1.txt: listed" in problems
    assert "stray.csv: not written by this run" in problems
    assert "no readable manifest.json" in verify_folder(tmp_path)[0]


def test_nested_transactions_join_the_outer_one(tmp_path):
    out = tmp_path / "out"
    with atomic_folder(out) as staging:
        write_version(staging, 1, files=1)  # joins: writes straight into staging
        write_version(staging / "inner", 1, files=1)
        assert not out.exists()  # nothing visible before the outer block ends
    assert sorted(contents(out)) == ["inner/part0.txt", "part0.txt"]
    assert verify_folder(out) == [] and siblings(out) == []


@pytest.mark.parametrize("where", ["here", "parent", "file"])
def test_folders_that_cannot_be_replaced_whole_are_refused(tmp_path, monkeypatch, where):
    (tmp_path / "work").mkdir()
    (tmp_path / "a_file").write_text("x")
    monkeypatch.chdir(tmp_path / "work")
    target = {"here": ".", "parent": "..", "file": "../a_file"}[where]
    with pytest.raises(PlateletPDError, match="is the current or home folder|is not a folder"):
        write_version(Path(target), 1)
    assert os.listdir(tmp_path / "work") == [] and (tmp_path / "a_file").read_text() == "x"


def run_writer(out: Path, version: int, pause: float, extra: str = "") -> subprocess.Popen:
    """A separate Python process writing version ``version`` of ``out`` (killable)."""
    code = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {SOURCE!r}); sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_output_folders import write_version
        {extra}
        write_version(__import__("pathlib").Path({str(out)!r}), {version}, files=6,
                      pause={pause})
    """)
    return subprocess.Popen([sys.executable, "-c", code])


def wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the writer did not get there in time"
        time.sleep(0.005)


@pytest.mark.parametrize("files_written", [1, 3, 6])
def test_sigkill_while_writing_leaves_the_old_folder_whole(tmp_path, files_written):
    out = tmp_path / "out"
    write_version(out, 1, files=6)
    before = contents(out)
    writer = run_writer(out, 2, pause=0.2)
    # the staging sibling holds this many finished files of version 2: kill there
    wait_for(lambda: len(list(tmp_path.glob(".out.part-*/part*.txt"))) >= files_written)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert contents(out) == before and verify_folder(out) == []  # old, complete
    assert all(".part-" in name for name in siblings(out))  # only the dead run's staging
    write_version(out, 3, files=2)  # the next run cleans the dead run's leftovers
    assert set(contents(out).values()) == {b"3\n"} and siblings(out) == []


def test_sigkill_between_the_two_renames_of_a_swap_keeps_the_old_output(tmp_path):
    """Where the atomic exchange is missing: the kill falls between renaming the old folder
    away and the new one in; the next run puts the old, complete folder back first."""
    out = tmp_path / "out"
    write_version(out, 1, files=6)
    before = contents(out)
    hook = textwrap.dedent("""
        import os, signal
        from plateletpd.io import files as io
        io._exchange = lambda first, second: False  # as on a system without renameat2
        rename = os.rename
        def rename_then_die(source, destination):
            rename(source, destination)
            if ".old-" in str(destination):
                os.kill(os.getpid(), signal.SIGKILL)
        io.os.rename = rename_then_die
    """).replace("\n", "\n        ")
    writer = run_writer(out, 2, pause=0.0, extra=hook)
    assert writer.wait(timeout=120) == -signal.SIGKILL
    assert not out.exists()  # the instant the module text documents
    backup = [name for name in siblings(out) if ".old-" in name]
    assert len(backup) == 1 and contents(tmp_path / backup[0]) == before
    with pytest.raises(RuntimeError):  # a later writer restores the old output first
        with atomic_folder(out):
            raise RuntimeError("stop after the recovery")
    assert contents(out) == before and verify_folder(out) == [] and siblings(out) == []


def test_the_swap_leaves_no_moment_without_the_folder_on_linux(tmp_path):
    if io._renameat2() is None:
        pytest.skip("no renameat2 on this system (the two-rename fallback is tested above)")
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    (first / "x").write_text("a"), (second / "x").write_text("b")
    assert io._exchange(first, second)
    assert (first / "x").read_text() == "b" and (second / "x").read_text() == "a"


@pytest.mark.slow
def test_sigkill_during_a_trial_write_keeps_the_previous_trial_output(tmp_path):
    """The case of issue 14: `plateletpd trial ... --out DIR` killed while writing."""
    out = tmp_path / "trial"
    arguments = ["trial", "yuan2025", "--n", "6", "--out", str(out)]
    assert main([*arguments, "--seed", "1"]) == 0
    before = contents(out)
    assert strict_loads((out / "provenance.json").read_text())["seed"] == 1
    # the same command (seed 4) with every file write slowed down, killed after one file
    code = textwrap.dedent(f"""
        import contextlib, sys, time
        sys.path.insert(0, {SOURCE!r})
        from plateletpd.io import files as io
        from plateletpd.cli import main
        original = io.atomic_path
        @contextlib.contextmanager
        def slow(path):
            with original(path) as temporary:
                yield temporary
            time.sleep(0.5)
        io.atomic_path = slow
        sys.exit(main({[*arguments, "--seed", "4"]!r}))
    """)
    writer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    wait_for(lambda: list(tmp_path.glob(".trial.part-*/patients.parquet")), timeout=240)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert contents(out) == before and verify_folder(out) == []
    assert strict_loads((out / "provenance.json").read_text())["seed"] == 1
    assert main([*arguments, "--seed", "4"]) == 0  # an uninterrupted run replaces it whole
    assert verify_folder(out) == [] and siblings(out) == []
    assert strict_loads((out / "provenance.json").read_text())["seed"] == 4
    assert set(contents(out)) == set(before)
    assert all(path.stat().st_mode & 0o777 == 0o666 & ~io.current_umask()
               for path in out.iterdir())
