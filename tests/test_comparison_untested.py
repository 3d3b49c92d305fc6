"""A comparison row that cannot fail is said to test nothing: a blind user test (2026-12-07,
an rhTPO study in sarcoma) wrote "no difference in the proportion of platelet transfusion"
with a trigger (below 10) no virtual patient reached, and the row was inside in every
replicate, 0 against 0.

Properties that could fail: with a trigger no patient reaches, the check's notes say the
row tests nothing; with the file's own trigger, which some patients reach, they do not.
"""

from pathlib import Path

import pytest

from plateletpd.study.check import check_trial
from plateletpd.study.trial import load_trial_spec

ROOT = Path(__file__).resolve().parents[1]
# data/out_of_sample.csv line 65: PMID 19102944's transfusions in cycle 2, no difference
# between rhTPO and rhIL-11 (4/35 against 11/37, P > 0.05)
LINE = 65
TRIGGER = "rescue = { below = 10, at_risk_below = 20, at_risk_share = 0.5 }"


def _notes(tmp_path, trigger):
    text = (ROOT / "trials" / "pmid19102944_rhtpo_rhil11.toml").read_text()
    assert text.count(TRIGGER) == 2
    path = tmp_path / "trial.toml"
    path.write_text(text.replace(TRIGGER, trigger))
    spec = load_trial_spec(path, subjects=300)
    result = check_trial(spec, ROOT / "data" / "out_of_sample.csv", lines=[LINE],
                         replicates=3)
    return [note for note in result.notes if f"line {LINE} (" in note]


def test_a_comparison_no_patient_can_fail_is_named(tmp_path):
    # a trigger of 0.001 x10^9/L: no virtual patient's count goes that low
    notes = _notes(tmp_path, "rescue = { below = 0.001 }")
    assert any("cannot fail here" in note and "tests nothing" in note for note in notes), \
        notes


def test_a_comparison_some_patients_reach_is_not(tmp_path):
    notes = _notes(tmp_path, TRIGGER)
    assert notes and not any("cannot fail here" in note for note in notes), notes


def test_a_share_whose_interval_spans_most_of_its_range_is_named():
    # the second user test's intervals with the fit's uncertainty (2026-12-07): grade 3-4
    # [0, 98.2] and [3.7, 100], grade 4 [0, 72.7] and [0, 85]; a comparison and a mean are
    # never named; 75 points exactly is named (WIDE_SHARE of 0-100)
    import pandas as pd

    from plateletpd.study.check import WIDE_SHARE, wide_interval_lines

    assert WIDE_SHARE == 0.75
    table = pd.DataFrame({
        "line": [2, 3, 4, 5, 6, 8, 9],
        "statistic": ["percent", "percent", "percent", "percent", "mean", "percent",
                      "percent"],
        "interval_low": [0.0, 3.65, 0.0, 0.0, 0.0, -2.6, 10.0],
        "interval_high": [98.2, 100.0, 72.7, 85.0, 120.0, 0.6, 85.0],
        "comparison": ["", "", "", "", "", "lower", ""]})
    assert wide_interval_lines(table) == [2, 3, 5, 9]
