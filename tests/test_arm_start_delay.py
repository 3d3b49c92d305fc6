"""An arm's own start delay (`[[arms]] start_delay`, replacing `[enrolment] start_delay`):
arms that differ only in when treatment starts, in one trial, so that a start-delay
question gets the trial's prediction intervals (`--uncertainty fit`), which a sweep does
not give (a sweep user test, 2026-12-07).

Properties that could fail: an arm's own delay is that arm run under the trial-wide delay,
bit for bit (the same patients, the same summary); the other arms keep the trial's; the
report's arm line states each arm's delay; a negative delay is refused at the file.
"""

from pathlib import Path

import pandas as pd
import pytest
from helpers import one_cycle

from plateletpd.cli import main
from plateletpd.study.trial import arm_design_lines, load_trial_spec, run_trial

pytestmark = pytest.mark.filterwarnings("ignore::plateletpd.study.trial.StopRuleWarning")
ROOT = Path(__file__).resolve().parents[1]
# trials/yuan2025.toml in its one-cycle form (tests/helpers.py): entry below 75, treated
# from the next morning (start_delay = 1); 60 patients screened per arm keep it quick
YUAN = one_cycle((ROOT / "trials" / "yuan2025.toml").read_text()).replace(
    "subjects_per_arm = ", "subjects_per_arm = 60  # ", 1)
HETROMBOPAG = '[[arms]]\nname = "hetrombopag 7.5 mg"\n'


def _written(tmp_path, text, name):
    path = tmp_path / name
    path.write_text(text)
    return load_trial_spec(path)


def test_an_arms_own_delay_is_the_arm_under_the_trial_wide_delay(tmp_path):
    assert HETROMBOPAG in YUAN
    own = _written(tmp_path, YUAN.replace(HETROMBOPAG, HETROMBOPAG + "start_delay = 4\n"),
                   "own.toml")
    wide = _written(tmp_path, YUAN.replace("start_delay = 1 ", "start_delay = 4 "),
                    "wide.toml")
    by_arm = {a.name: a.start_delay for a in own.arms}
    assert by_arm["hetrombopag 7.5 mg"] == 4.0
    assert {d for name, d in by_arm.items() if name != "hetrombopag 7.5 mg"} == {1.0}
    ours, theirs = run_trial(own), run_trial(wide)
    pd.testing.assert_series_equal(ours.summary.loc["hetrombopag 7.5 mg"],
                                   theirs.summary.loc["hetrombopag 7.5 mg"])
    line = next(x for x in arm_design_lines(own) if x.startswith("- hetrombopag 7.5 mg:"))
    assert "treated 4 days later" in line


def test_a_negative_arm_delay_is_refused_at_the_file(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(YUAN.replace(HETROMBOPAG, HETROMBOPAG + "start_delay = -2\n"))
    assert main(["trial", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "start_delay" in capsys.readouterr().err
