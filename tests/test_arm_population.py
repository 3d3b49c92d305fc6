"""Arms whose patients have their own typical values (`[[arms]] typical`): a non-randomised
study's groups can differ in who was given which drug (a user test, 2026-12-07, asked for
per-arm populations after writing the non-randomised PMID 19102944 study and a
mobilisation study whose arms differed; models/cit_marrow_reserve.md).

Properties that could fail: an arm's stated value equal to the trial's changes nothing, bit
for bit; another arm's patients are untouched by it; the arm's patients are exactly those of
the trial with the value under [population] typical (the same draws around another typical
value); a deeper stated damage lowers the arm's nadir; the report and provenance say it;
conflicts (paired design, a mixture group or the anchor on the same parameter, a fit that
sets the parameter) and unknown or out-of-bound values are refused with the fix.
"""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from helpers import changed, one_cycle

from plateletpd.cli import main
from plateletpd.errors import PlateletPDError
from plateletpd.study.trial import NON_RANDOMISED_STATED, load_trial_spec, run_trial

# the one-cycle Yuan file enrols at the crossing below 75, where its stop rise can never act
# first: warned on every load (tests/test_stop_rule_warning.py), not this file's subject
pytestmark = pytest.mark.filterwarnings("ignore::plateletpd.study.trial.StopRuleWarning")
ROOT = Path(__file__).resolve().parents[1]
TEXT = one_cycle((ROOT / "trials" / "yuan2025.toml").read_text())
ARM = '[[arms]]\nname = "rhTPO 15000 U"\n'
NAME = "chemotherapy_sensitivity"


def _write(tmp_path, text, name="arms.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _with_arm_value(value, arm=ARM):
    return changed(TEXT, arm, f"{arm}typical = {{ {NAME} = {value!r} }}\n")


@pytest.fixture(scope="module")
def typical():
    """The trial's typical damage (the bundled fit's point estimate)."""
    return load_trial_spec(ROOT / "trials" / "yuan2025.toml").model.parameters[NAME].value


def test_a_stated_value_equal_to_the_trials_changes_nothing(tmp_path, typical):
    plain = load_trial_spec(_write(tmp_path, TEXT, "plain.toml"), subjects=40)
    same = load_trial_spec(_write(tmp_path, _with_arm_value(typical)), subjects=40)
    assert dict(same.arms[1].typical) == {NAME: typical}
    for arm in range(len(plain.arms)):
        np.testing.assert_array_equal(same.patients(arm), plain.patients(arm))
    a, b = run_trial(plain).subjects, run_trial(same).subjects
    np.testing.assert_array_equal(a.select_dtypes("number").to_numpy(),
                                  b.select_dtypes("number").to_numpy())


def test_only_the_arm_moves_and_it_is_the_trial_at_that_typical_value(tmp_path, typical):
    deeper = 1.5 * typical
    plain = load_trial_spec(_write(tmp_path, TEXT, "plain.toml"), subjects=200)
    own = load_trial_spec(_write(tmp_path, _with_arm_value(deeper)), subjects=200)
    # every other arm: the same patients, bit for bit
    for arm in (0, 2, 3, 4):
        np.testing.assert_array_equal(own.patients(arm), plain.patients(arm))
    # the arm: the same draws around the stated value, exactly the patients of the trial
    # whose [population] typical states it (an independent path through the model's values)
    stated = changed(TEXT, "\ncovariates = { body_weight = 65 }\n",
                     f"\ncovariates = {{ body_weight = 65 }}\ntypical = {{ {NAME} = "
                     f"{deeper!r} }}\n")
    whole = load_trial_spec(_write(tmp_path, stated, "whole.toml"), subjects=200)
    np.testing.assert_array_equal(own.patients(1), whole.patients(1))
    column = own.model.parameter_names.index(NAME)
    ratio = own.patients(1)[:, column] / plain.patients(1)[:, column]
    np.testing.assert_allclose(ratio, 1.5, rtol=1e-12)
    # a deeper damage lowers the arm's nadir (the model's kill grows with it)
    a, b = run_trial(plain).summary, run_trial(own).summary
    assert b.loc["rhTPO 15000 U", "mean_nadir"] < a.loc["rhTPO 15000 U", "mean_nadir"]
    assert b.loc["untreated", "mean_nadir"] == a.loc["untreated", "mean_nadir"]


def test_the_report_and_provenance_state_the_arms_values(tmp_path, typical, capsys):
    text = changed(_with_arm_value(5.5), "\n[trial]\n", '\n[trial]\nallocation = '
                   '"non-randomised"\n')
    out = tmp_path / "out"
    assert main(["trial", str(_write(tmp_path, text)), "--n", "20", "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    assert "Arms whose patients have their own typical values" in report
    assert f"- rhTPO 15000 U: {NAME} = 5.5" in report
    assert f"every other value, is the trial's: {NAME} = {typical:.4g}" in report
    assert NON_RANDOMISED_STATED in report
    arms = json.loads((out / "provenance.json").read_text())["design"]["arms"]
    assert [arm["typical"] for arm in arms][:2] == [[], [[NAME, 5.5]]]
    capsys.readouterr()


@pytest.mark.parametrize("edit, phrases", [
    (lambda text: _with_arm_value(5.0).replace(NAME + " = 5.0", "chemotherapy_sensitivty = 5.0"),
     ["chemotherapy_sensitivty", "did you mean", NAME]),
    (lambda text: _with_arm_value(1e6), ["outside its bounds", "(arm 'rhTPO 15000 U')"]),
    (lambda text: _with_arm_value(5.0).replace(NAME + " = 5.0", "body_weight = 80.0"),
     ["body_weight is a covariate", "[population] covariates"]),
    (lambda text: changed(_with_arm_value(5.0), "\n[trial]\n",
                          '\n[trial]\ndesign = "paired"\n'),
     ['design = "paired" simulates the same patients', 'design = "parallel"']),
    (lambda text: changed(_with_arm_value(5.0), "\ncovariates = { body_weight = 65 }\n",
                          "\ncovariates = { body_weight = 65 }\n[[population.mixture]]\n"
                          f"name = \"deep\"\nshare = 0.2\ntypical = {{ {NAME} = 6.0 }}\n"),
     ["also set by the mixture group 'deep'"]),
])
def test_conflicts_and_bad_values_are_refused_with_the_fix(tmp_path, edit, phrases, capsys):
    path = _write(tmp_path, edit(TEXT))
    with pytest.raises(PlateletPDError) as caught:
        load_trial_spec(path)
    message = str(caught.value)
    assert "[arms #2" in message and "typical" in message, message
    for phrase in phrases:
        assert phrase in message, (phrase, message)
    assert main(["trial", str(path), "--n", "5", "--out", str(tmp_path / "o")]) == 2
    capsys.readouterr()


def test_the_anchors_parameter_is_refused_in_an_arm(tmp_path):
    text = changed(_with_arm_value(5.0), "\ncovariates = { body_weight = 65 }\n",
                   '\ncovariates = { body_weight = 65 }\nanchor = { nadir_below = 50, '
                   'percent = 25, source = "carboplatin label: 25% < 50", subjects = 50 }\n')
    with pytest.raises(PlateletPDError, match="is the \\[population\\] anchor's parameter"):
        load_trial_spec(_write(tmp_path, text))


def test_a_fit_refuses_an_arm_value_of_a_parameter_it_sets(tmp_path):
    # the bundled fit's configuration fits Yuan 2025's arms with chemotherapy_sensitivity a
    # study effect: an arm stating its own would keep it whatever the fit's
    from plateletpd.inference.fitting import load_fit_config

    config = (ROOT / "fits" / "cit_marrow_reserve_calibration" / "config.toml").read_text()
    trial = (ROOT / "trials" / "yuan2025.toml").read_text()
    _write(tmp_path, changed(trial, ARM, f"{ARM}typical = {{ {NAME} = 5.0 }}\n"),
           "yuan2025.toml")
    config = changed(config, 'file = "../../trials/yuan2025.toml"',
                     f'file = "{tmp_path / "yuan2025.toml"}"')
    path = _write(tmp_path, config.replace('"../../', f'"{ROOT}/'), "config.toml")
    with pytest.raises(PlateletPDError, match=f"trial arm 'rhTPO 15000 U' of .* states its "
                                              f"own typical {NAME}"):
        load_fit_config(path)


def test_the_arms_value_holds_in_a_replicate_with_drawn_parameters(tmp_path, typical):
    # --uncertainty fit draws the fit's parameters and a new study's damage per replicate
    # (study/uncertainty.py); the arm's stated value is the arm's, fixed: its patients are
    # the stated value with the replicate's random effects, the other arms the drawn one's
    from plateletpd.study.uncertainty import TrialUncertainty, _replicate_spec

    spec = load_trial_spec(_write(tmp_path, _with_arm_value(5.5)), subjects=30)
    _, drawn, _, replicate = _replicate_spec(spec, 3, TrialUncertainty.for_trial(spec))
    drawn_damage = replicate.model.parameters[NAME].value
    assert drawn_damage != typical and drawn_damage != 5.5   # a new study's draw
    column = spec.model.parameter_names.index(NAME)
    treated, untreated = replicate.patients(1)[:, column], replicate.patients(0)[:, column]
    # the same random effects (the arm's own stream) around each typical value: a ratio
    plain = replace(replicate, arms=tuple(replace(arm, typical=()) for arm in replicate.arms))
    np.testing.assert_allclose(treated / plain.patients(1)[:, column], 5.5 / drawn_damage,
                               rtol=1e-12)
    np.testing.assert_array_equal(untreated, plain.patients(0)[:, column])
