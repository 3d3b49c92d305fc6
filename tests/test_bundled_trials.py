"""Every bundled trial file (trials/*.toml) is valid against the bundled models and fits:
a model or fit change that breaks a user-facing example fails here, not in a user's hands."""

from pathlib import Path

import pandas as pd
import pytest

from plateletpd.study.trial import load_trial_spec

TRIALS = sorted((Path(__file__).resolve().parents[1] / "trials").glob("*.toml"))
ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "cit_summary.csv"
# trials in no calibration, held out to judge the models (data/README.md)
HELD_OUT = ROOT / "data" / "out_of_sample.csv"
# hetrombopag in primary ITP (data/README.md): the ITP model's studies
ITP = ROOT / "data" / "itp_summary.csv"


def test_there_are_bundled_trials():
    assert len(TRIALS) >= 9  # the files listed in README.md and docs/trial_files.md


@pytest.mark.parametrize("path", TRIALS, ids=[p.stem for p in TRIALS])
def test_a_bundled_trial_loads_and_its_data_arms_are_in_its_study(path):
    spec = load_trial_spec(path)
    study = spec.extra.get("data_study")
    if study is None:
        return
    # a data arm is named by its own rows or as a comparison row's versus (an arm whose
    # publication compared others with it and gave no number of its own: data/README.md)
    found = [(name.name, set(rows.arm[rows.study == study]) | (
        set(rows.versus[(rows.study == study) & rows.versus.notna()])
        if "versus" in rows else set()))
             for name, rows in ((p, pd.read_csv(p)) for p in (DATA, HELD_OUT, ITP))]
    holding = [(name, arms) for name, arms in found if arms]
    assert len(holding) == 1, f"{path.name}: data_study {study!r} must have rows in exactly " \
                              f"one of {DATA.name}, {HELD_OUT.name}, {ITP.name}: {[n for n, _ in holding]}"
    arms = holding[0][1]
    for arm, data_arm in spec.extra["data_arms"].items():
        assert data_arm in arms, f"{path.name}: arm {arm!r} maps to {data_arm!r}, not an " \
                                 f"arm of {study}: {sorted(arms)}"
    if not spec.extra["data_arms"]:  # arms paired by name (plateletpd check): one at least
        assert {a.name.strip().casefold() for a in spec.arms} & \
            {str(a).strip().casefold() for a in arms}, f"{path.name}: no arm named as {study}'s"


def test_held_out_studies_are_in_no_calibration():
    # data/out_of_sample.csv holds trials kept out of every fit (data/README.md): none of
    # its studies may appear in the calibration data or in a bundled fit's configuration
    held_out = set(pd.read_csv(HELD_OUT).study)
    assert held_out, "data/out_of_sample.csv has no rows"
    assert not held_out & set(pd.read_csv(DATA).study)
    for config in sorted((ROOT / "fits").glob("*/config.toml")):
        text = config.read_text()
        assert not [s for s in held_out if s in text], config
