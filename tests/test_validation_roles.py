"""A validation suite's roles are checked against the rows its fit was made to
(plateletpd.study.validation.check_role, plateletpd.model.library.fitted_rows).

Why: in the fifty-first session (2026-12-07) the GI-cancer rhIL-11 study (data/cit_summary.csv
lines 29-32) was added to the bundled suite as "not fitted" in the belief that no fit used
it, while both bundled fits are made to those four rows (their [[arms]] gi_rhil11); the
record then counted calibration rows as predictions. A role is a claim about the fit, so the
suite now checks it against the fit's predictions.csv before any check runs."""

from pathlib import Path

import pytest

from plateletpd.cli import main
from plateletpd.model.library import fitted_rows
from plateletpd.study import validation
from plateletpd.study.trial import load_trial_spec
from plateletpd.study.validation import (
    ValidationSuiteError,
    check_role,
    load_suite,
    validate,
)

ROOT = Path(__file__).resolve().parents[1]


def _suite(tmp_path, checks: str) -> Path:
    path = tmp_path / "suite.toml"
    path.write_text('[suite]\nname = "mine"\nreplicates = 2\n\n' + checks)
    return path


@pytest.fixture
def no_simulation(monkeypatch):
    """A role error must stop the suite before any check simulates: any call of
    check_trial fails the test."""
    import plateletpd.study.check as check

    def refuse(*args, **kwargs):
        raise AssertionError("a check ran before the roles were checked")

    monkeypatch.setattr(check, "check_trial", refuse)


def test_the_fit_rows_are_those_its_predictions_list():
    # fits/cit_marrow_reserve_calibration/config.toml: Yuan 2025 (lines 2-5), the NSCLC
    # study (11-16), the GI rhIL-11 study (29-32), the healthy hetrombopag study (35),
    # Soff 2019's observation arm (41, 43, 44), the carboplatin label (73, 74), NHL-B
    # (76, 77): 22 rows
    rows = fitted_rows("cit_marrow_reserve_calibration")
    assert sorted(line for _, _, _, line in rows) == [
        2, 3, 4, 5, 11, 12, 13, 14, 15, 16, 29, 30, 31, 32, 35, 41, 43, 44, 73, 74, 76, 77]
    assert ("gi_rhil11", "control", "time_to_threshold_days", 31) in rows


@pytest.mark.parametrize("suite_name,fit", [
    ("cit_marrow_reserve", None),
    ("cit_marrow_reserve", "cit_marrow_reserve_calibration_nsclc75"),
    ("itp_thrombopoiesis", None),
])
def test_every_bundled_check_plays_the_role_its_fit_gives_its_rows(suite_name, fit):
    suite = load_suite(suite_name)
    for number, check in enumerate(suite.checks, 1):
        spec = load_trial_spec(check.trial, response=dict(check.response) or None, fit=fit)
        check_role(suite, number, check, spec)   # raises on a contradiction


def test_calibration_rows_called_not_fitted_are_refused_before_any_check_runs(
        tmp_path, no_simulation):
    suite = load_suite(_suite(tmp_path, '[[checks]]\ntrial = "gi_rhil11"\n'
                                        'data = "cit_summary.csv"\nrole = "not fitted"\n'))
    with pytest.raises(ValidationSuiteError,
                       match=r"check 1 \(gi_rhil11.toml\) has the role 'not fitted' but "
                             r"line\(s\) 29, 30, 31, 32 of study gi_rhil11 are rows the fit "
                             r"cit_marrow_reserve_calibration was made to .*role "
                             r"'calibration'"):
        validate(suite)


def test_leaving_the_fitted_lines_out_is_accepted(tmp_path):
    # Soff 2019's romiplostim arm (line 42) is in no fit; its observation arm (41, 43) is
    suite = load_suite(_suite(tmp_path, '[[checks]]\ntrial = "soff2019_romiplostim"\n'
                                        'data = "cit_summary.csv"\nrole = "not fitted"\n'
                                        'lines = [42]\nonly_mapped_arms = true\n'))
    check_role(suite, 1, suite.checks[0], load_trial_spec(suite.checks[0].trial))
    wrong = load_suite(_suite(tmp_path, '[[checks]]\ntrial = "soff2019_romiplostim"\n'
                                        'data = "cit_summary.csv"\nrole = "not fitted"\n'
                                        'lines = [41, 42]\nonly_mapped_arms = true\n'))
    with pytest.raises(ValidationSuiteError, match=r"line\(s\) 41 of study "
                                                   r"soff2019_romiplostim_cit"):
        check_role(wrong, 1, wrong.checks[0], load_trial_spec(wrong.checks[0].trial))


def test_rows_no_fit_saw_called_calibration_are_refused(tmp_path, no_simulation):
    # Xu 2018's rows are in data/out_of_sample.csv, kept out of every fit
    suite = load_suite(_suite(tmp_path, '[[checks]]\n'
                                        'trial = "xu2018_rhtpo_rhil11_prophylaxis"\n'
                                        'data = "out_of_sample.csv"\nrole = "calibration"\n'))
    with pytest.raises(ValidationSuiteError, match=r"role 'calibration' but line\(s\) .* are "
                                                   r"not rows the fit .*fitted_elsewhere"):
        validate(suite)


def test_rows_fitted_outside_the_fit_need_the_calibration_role_and_are_noted(
        tmp_path, monkeypatch):
    body = ('[[checks]]\ntrial = "xu2018_rhtpo_rhil11_prophylaxis"\n'
            'data = "out_of_sample.csv"\nrole = "ROLE"\n'
            'fitted_elsewhere = "a grid over two parameters"\n')
    held = load_suite(_suite(tmp_path, body.replace("ROLE", "held out")))
    with pytest.raises(ValidationSuiteError, match=r"says its rows were fitted elsewhere"):
        check_role(held, 1, held.checks[0], load_trial_spec(held.checks[0].trial))
    calibration = load_suite(_suite(tmp_path, body.replace("ROLE", "calibration")))
    check_role(calibration, 1, calibration.checks[0],
               load_trial_spec(calibration.checks[0].trial))   # accepted
    # the reason reaches the record's notes (the check itself replaced by a stub)
    import pandas as pd

    import plateletpd.study.check as check

    class Stub:
        table = pd.DataFrame({"line": [2], "study": ["x"], "arm": ["a"], "endpoint": ["e"],
                              "observed": [1.0], "predicted": [1.0], "interval_low": [0.0],
                              "interval_high": [2.0], "inside": [True]})
        spread = pd.DataFrame()
        notes = ()

    monkeypatch.setattr(check, "check_trial", lambda *a, **k: Stub())
    monkeypatch.setattr(validation, "inside_by_role", lambda table: pd.DataFrame())
    result = validate(calibration)
    assert any("fitted outside the fit's minimisation: a grid over two parameters" in note
               for note in result.notes)


def test_a_calibration_check_on_no_fit_is_refused(tmp_path):
    trial = (ROOT / "trials" / "gi_rhil11.toml").read_text().replace(
        'fit = "default"', 'fit = "none"').replace(
        "[population]\n", "[population]\ncv = {}   # the test needs no spread\n")
    (tmp_path / "mine.toml").write_text(trial)
    suite = load_suite(_suite(tmp_path, '[[checks]]\ntrial = "mine.toml"\n'
                                        'data = "cit_summary.csv"\nrole = "calibration"\n'))
    with pytest.raises(ValidationSuiteError, match=r"runs on no fit"):
        check_role(suite, 1, suite.checks[0], load_trial_spec(suite.checks[0].trial))
    # read as not fitted it is accepted: the model file's values saw no row
    other = load_suite(_suite(tmp_path, '[[checks]]\ntrial = "mine.toml"\n'
                                        'data = "cit_summary.csv"\nrole = "not fitted"\n'))
    check_role(other, 1, other.checks[0], load_trial_spec(other.checks[0].trial))


def test_the_command_refuses_a_contradicted_role_with_exit_status_2(tmp_path, capsys,
                                                                    no_simulation):
    path = _suite(tmp_path, '[[checks]]\ntrial = "gi_rhil11"\n'
                            'data = "cit_summary.csv"\nrole = "held out"\n')
    assert main(["validate", str(path), "--out", str(tmp_path / "v")]) == 2
    assert "are rows the fit cit_marrow_reserve_calibration was made to" in \
        capsys.readouterr().err
    assert not (tmp_path / "v").exists()


def test_a_suite_run_on_the_model_file_values_keeps_its_roles(monkeypatch):
    # validate --fit none (tests/test_fit_choice.py) runs every check on the model file's
    # values: its calibration checks are then on no fit by the run's choice, not refused
    suite = load_suite("cit_marrow_reserve")
    spec = load_trial_spec(suite.checks[0].trial, fit="none")
    check_role(suite, 1, suite.checks[0], spec, chosen_for_all=True)
    with pytest.raises(ValidationSuiteError, match=r"runs on no fit"):
        check_role(suite, 1, suite.checks[0], spec)


def test_a_single_check_says_which_of_its_rows_its_fit_was_made_to():
    # plateletpd check on a calibration study (the GI rhIL-11 study, lines 29-32 of both
    # bundled fits) says so; on a held-out study (Xu 2018, data/out_of_sample.csv) it does not
    from plateletpd.study.check import fitted_rows_note, selected_rows

    gi = load_trial_spec("gi_rhil11")
    rows = selected_rows(gi, "cit_summary.csv").rows
    assert fitted_rows_note(gi, rows) == [
        "line(s) 29, 30, 31, 32 are rows the fit cit_marrow_reserve_calibration was made to "
        "(calibration rows): agreement there shows the fit, not a prediction"]
    soff = load_trial_spec("soff2019_romiplostim")
    rows = selected_rows(soff, "cit_summary.csv", lines=[41, 42], only_mapped=True).rows
    assert fitted_rows_note(soff, rows)[0].startswith("line(s) 41 are rows")
    xu = load_trial_spec("xu2018_rhtpo_rhil11_prophylaxis")
    assert fitted_rows_note(xu, selected_rows(xu, "out_of_sample.csv").rows) == []
