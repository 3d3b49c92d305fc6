"""Every bundled trial file (trials/*.toml) is valid against the bundled models and fits:
a model or fit change that breaks a user-facing example fails here, not in a user's hands."""

from pathlib import Path

import pandas as pd
import pytest

from plateletpd.study.trial import load_trial_spec

TRIALS = sorted((Path(__file__).resolve().parents[1] / "trials").glob("*.toml"))
DATA = Path(__file__).resolve().parents[1] / "data" / "cit_summary.csv"


def test_there_are_bundled_trials():
    assert len(TRIALS) >= 9  # the files listed in README.md and docs/trial_files.md


@pytest.mark.parametrize("path", TRIALS, ids=[p.stem for p in TRIALS])
def test_a_bundled_trial_loads_and_its_data_arms_are_in_its_study(path):
    spec = load_trial_spec(path)
    study = spec.extra.get("data_study")
    if study is None:
        return
    rows = pd.read_csv(DATA)
    arms = set(rows.arm[rows.study == study])
    assert arms, f"{path.name}: data_study {study!r} has no rows in {DATA.name}"
    for arm, data_arm in spec.extra["data_arms"].items():
        assert data_arm in arms, f"{path.name}: arm {arm!r} maps to {data_arm!r}, not an " \
                                 f"arm of {study}: {sorted(arms)}"
