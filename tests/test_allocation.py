"""`[trial] allocation`: how the study allocated its patients (a user test, 2026-12-07, wrote
a non-randomised comparison of rhTPO and rhIL-11, PMID 19102944, and had nowhere to say
so). The virtual arms are always drawn from one population; a non-randomised study's
report says what its differences leave out, and the provenance records the allocation.

Properties that could fail: the sentence appears for "non-randomised" only; provenance
carries the value; an unknown value is refused naming the choices (exit status 2).
"""

import json
from pathlib import Path

import pytest

from plateletpd.cli import main
from plateletpd.study.trial import NON_RANDOMISED

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "trials" / "yuan2025.toml"


def _with(tmp_path, value):
    text = SOURCE.read_text()
    assert text.count("\n[trial]\n") == 1
    line = "" if value is None else f'allocation = "{value}"\n'
    path = tmp_path / f"trial_{value}.toml"
    path.write_text(text.replace("\n[trial]\n", f"\n[trial]\n{line}", 1))
    return path


@pytest.mark.parametrize("value", ["non-randomised", "randomised", None])
def test_the_report_and_provenance_state_the_allocation(tmp_path, value, capsys):
    out = tmp_path / "out"
    assert main(["trial", str(_with(tmp_path, value)), "--n", "20", "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    assert (NON_RANDOMISED in report) == (value == "non-randomised")
    design = json.loads((out / "provenance.json").read_text())["design"]
    assert design["allocation"] == (value or "not stated")
    capsys.readouterr()


def test_an_unknown_allocation_is_refused_with_the_choices(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["trial", str(_with(tmp_path, "observational")), "--n", "5",
                 "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert "allocation" in error and "non-randomised" in error
    assert not out.exists()

