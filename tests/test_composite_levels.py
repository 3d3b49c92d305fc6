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
    text += """
[[composite]]
name = "cycle2_free_among_given"
none = ["cycle2_transfused"]
at_least = { cycle2_nadir = 50 }
among_none = ["abandoned"]
"""
    patients, out = _run(tmp_path, text, "course", "120")
    expected = ~patients.cycle4_transfused.astype(bool) & (patients.cycle4_nadir >= 50)
    np.testing.assert_array_equal(patients.cycle4_free_above_50.astype(bool), expected)
    never = patients.cycle4_day.isna()
    assert never.any() and not patients.cycle4_free_above_50[never].any()
    assert patients.cycle4_free_above_50.any()
    # differences.csv compares each composite between the arms, a conditional one among
    # the patients it is judged among (Wald interval, as the response's)
    differences = pd.read_csv(out / "differences.csv").iloc[0]
    treated, control = (patients[patients.arm == name] for name in
                        ("hetrombopag prophylaxis", "chemotherapy alone"))
    for column in ("cycle4_free_above_50", "cycle2_free_among_given"):
        one, zero = treated[column].dropna(), control[column].dropna()
        assert differences[f"{column}_difference_pct_points"] == pytest.approx(
            100 * (one.mean() - zero.mean()), rel=1e-12)
        half = 1.959963984540054 * np.sqrt(one.mean() * (1 - one.mean()) / len(one)
                                           + zero.mean() * (1 - zero.mean()) / len(zero))
        assert differences[f"{column}_difference_pct_points_upper"] == pytest.approx(
            100 * (one.mean() - zero.mean() + half), rel=1e-9)
    assert patients.cycle2_free_among_given.isna().any()
    # the report prints the composites per arm and their differences; no arm is treated
    # from entry (support within cycles), so no response difference is printed
    report = (out / "report.md").read_text()
    assert "cycle2_free_among_given % [95% CI]" in report
    assert "cycle2_free_among_given, points [95% CI]" in report
    assert "response difference" not in report
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


def test_a_conditional_composite_row_is_read_over_n_judged_patients():
    # data/out_of_sample.csv lines 67-68: 48% of the 88 oprelvekin patients and 22% of the
    # 45 placebo patients given the study cycle (Smith JW II, ASH; the composite is judged
    # among chemotherapy_resumed): each virtual study is 88 (45) such patients, not 88
    # enrolled of whom some never had the study cycle
    from plateletpd.study.check import check_trial
    from plateletpd.study.trial import run_trial

    spec = load_trial_spec(ROOT / "trials" / "smith_neumega_phase3.toml", subjects=600)
    result = check_trial(spec, ROOT / "data" / "out_of_sample.csv", lines=[67, 68],
                         replicates=2)
    sizes = dict(zip(result.table.line, result.table.virtual_n))
    assert sizes == {67: 88, 68: 45}
    # the distinction matters: among the first 88 enrolled, fewer were judged
    patients = run_trial(spec).subjects
    first = patients[patients.arm == "Neumega 50 ug/kg"].iloc[:88]
    assert first.transfusion_free_any_nadir.isna().sum() > 0
