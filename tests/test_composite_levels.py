"""Composite endpoints with levels of per-patient counts and days (`[[composite]] at_least`
and `below`): "platelet-transfusion free with a nadir above 20,000/mm3" (a phase III
oprelvekin trial a user test wrote on 2026-12-07, models/cit_marrow_reserve.md) is `none =
["cycle2_transfused"]` with `at_least = { cycle2_nadir = 20 }`.

Properties that could fail: each composite equals the rule recomputed by hand from the
patients.csv columns it names, bit for bit; a missing value (a cycle not given, a level
never reached) meets neither kind of level; the data dictionary states the rule; unknown
names and empty composites are refused with the fix.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import one_cycle

from plateletpd.cli import main
from plateletpd.errors import PlateletPDError
from plateletpd.study.trial import load_trial_spec

pytestmark = pytest.mark.filterwarnings("ignore::plateletpd.study.trial.StopRuleWarning")
ROOT = Path(__file__).resolve().parents[1]

YUAN = one_cycle((ROOT / "trials" / "yuan2025.toml").read_text()) + """
[[composite]]
name = "free_above_20"
none = ["transfused"]
at_least = { nadir = 20 }

[[composite]]
name = "quick_shallow"
all = ["responder"]
below = { days_to_100 = 7, days_below_50 = 3 }
"""


def _run(tmp_path, text, name, subjects="60"):
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    out = tmp_path / name
    assert main(["trial", str(path), "--n", subjects, "--out", str(out)]) == 0
    return pd.read_csv(out / "patients.csv"), out


def test_levels_combine_with_flags_exactly_as_written(tmp_path, capsys):
    patients, out = _run(tmp_path, YUAN, "yuan")
    expected = (patients.transfusions == 0) & (patients.nadir >= 20)
    np.testing.assert_array_equal(patients.free_above_20.astype(bool), expected)
    expected = patients.responder.astype(bool) & (patients.days_to_100 < 7) \
        & (patients.days_below_50 < 3)
    np.testing.assert_array_equal(patients.quick_shallow.astype(bool), expected)
    for flag in (patients.free_above_20, patients.quick_shallow):   # not vacuous
        assert flag.any() and not flag.all()
    dictionary = pd.read_csv(out / "data_dictionary.csv")
    texts = dict(zip(dictionary.column, dictionary.meaning)) if "meaning" in dictionary \
        else dict(zip(dictionary.iloc[:, 1], dictionary.iloc[:, -1]))
    assert texts["free_above_20"] == "composite: none of transfused and nadir >= 20"
    assert texts["quick_shallow"] == ("composite: all of responder and days_to_100 < 7 and "
                                      "days_below_50 < 3")
    capsys.readouterr()


def test_a_cycle_level_on_a_course_and_a_cycle_never_given(tmp_path, capsys):
    text = (ROOT / "trials" / "prophylaxis_cycles.toml").read_text() + """
[[composite]]
name = "cycle4_free_above_50"
none = ["cycle4_transfused"]
at_least = { cycle4_nadir = 50 }
"""
    patients, _ = _run(tmp_path, text, "course", "120")
    expected = ~patients.cycle4_transfused.astype(bool) & (patients.cycle4_nadir >= 50)
    np.testing.assert_array_equal(patients.cycle4_free_above_50.astype(bool), expected)
    never = patients.cycle4_day.isna()
    assert never.any() and not patients.cycle4_free_above_50[never].any()
    assert patients.cycle4_free_above_50.any()
    capsys.readouterr()


@pytest.mark.parametrize("composite, message", [
    ('name = "x"\nnone = ["transfused"]\nat_least = { nadirr = 20 }\n',
     "'nadirr' is not a per-patient count or number of days (did you mean 'nadir'"),
    ('name = "x"\nbelow = { responder = 1 }\n',
     "'responder' is not a per-patient count or number of days"),
    ('name = "x"\namong = ["responder"]\n',
     "a composite needs flags under all or none, or levels under at_least or below"),
])
def test_bad_levels_are_refused_with_the_fix(tmp_path, composite, message):
    path = tmp_path / "bad.toml"
    path.write_text(one_cycle((ROOT / "trials" / "yuan2025.toml").read_text())
                    + "\n[[composite]]\n" + composite)
    with pytest.raises(PlateletPDError) as caught:
        load_trial_spec(path)
    assert message in str(caught.value), str(caught.value)
