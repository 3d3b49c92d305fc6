"""A treated trial whose study defines no response (``[response] defined = false``): a
prevention study judged by its nadirs, grade-4 shares and transfusions (a blind user test,
2026-12-07: rhIL-11 from the day after chemotherapy in acute lymphoblastic leukaemia, Zhou
2016, had to write a response rule it would not read, and its printed table then showed
"response 0%" and every patient "already >= 80 at day 0, non-responders").

Properties that could fail: the run is the same trial as with ``threshold = 100`` (the
summary and the per-patient table equal bit for bit), only the printed tables and the report
leave the response out and say that none was defined; a rule given beside ``defined =
false`` is refused naming both; a treated trial with no rule still names the fix.
"""

import pandas as pd
import pytest

from plateletpd.cli import main
from plateletpd.study.trial import arm_table, load_trial_spec, run_trial

# rhIL-11 50 ug/kg daily from the day after one cycle for 10 days or until >= 80 after the
# nadir, against the same cycle untreated, everyone enrolled (Zhou 2016's design as the user
# test wrote it; 25 kg was its assumption for a paediatric cohort)
TRIAL = """
[trial]
name = "prevention_without_a_response"
seed = 2016
subjects_per_arm = 80
follow_up_days = 28
visit_every_days = 2
reference_arm = "control"

[population]
covariates = {{ body_weight = 25 }}

[enrolment]
chemotherapy = "chemotherapy 1 dose"
entry_below = false
start_delay = 1

[response]
{response}

[[arms]]
name = "control"
treatment = []

[[arms]]
name = "rhIL-11"
treatment = ["rhIL-11 50 ug/kg"]
stop_at = 80
stop_after_fall = true
max_days = 10
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("response")
    results = {}
    for name, response in (("undefined", "defined = false"), ("at_100", "threshold = 100")):
        path = folder / f"{name}.toml"
        path.write_text(TRIAL.format(response=response))
        results[name] = run_trial(load_trial_spec(path))
    return results


def test_no_response_is_the_same_run_with_the_response_left_unprinted(runs):
    undefined, at_100 = runs["undefined"], runs["at_100"]
    pd.testing.assert_frame_equal(undefined.summary, at_100.summary)
    pd.testing.assert_frame_equal(undefined.subjects, at_100.subjects)
    printed, shown = arm_table(undefined), arm_table(at_100)
    assert "response % [95% CI]" in shown.columns
    assert not any(column.startswith(("response", "median days to PLT>=100", "already"))
                   for column in printed.columns)
    # everyone is enrolled above 100 here: the rule's "non-responders" column is what the
    # user test found alarming; it goes with the response
    assert any(column.startswith("already >= 100") for column in shown.columns)


def test_the_report_says_the_study_defined_no_response(tmp_path):
    path = tmp_path / "undefined.toml"
    path.write_text(TRIAL.format(response="defined = false"))
    assert main(["trial", str(path), "--out", str(tmp_path / "out")]) == 0
    report = (tmp_path / "out" / "report.md").read_text()
    assert "response: none defined by the study (summary.csv's response columns are at " \
        "PLT >= 100 by day 14, not printed)" in report
    assert "response difference" not in report
    # no responders-by-day figure for a study that defines no response (a blind user test,
    # 2026-12-08, found it drawn), and the report links none
    assert not (tmp_path / "out" / "response_by_day.png").exists()
    assert "response_by_day.png" not in report
    assert (tmp_path / "out" / "time_to_100.png").exists()
    # the defined trial draws it
    defined = tmp_path / "defined.toml"
    defined.write_text(TRIAL.format(response="threshold = 100"))
    assert main(["trial", str(defined), "--out", str(tmp_path / "out2")]) == 0
    assert (tmp_path / "out2" / "response_by_day.png").exists()


def test_a_rule_beside_defined_false_is_refused_naming_both(tmp_path, capsys):
    path = tmp_path / "both.toml"
    path.write_text(TRIAL.format(response="defined = false\nthreshold = 100"))
    assert main(["trial", str(path), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "defined = false says the study defines no response, but threshold = 100 is " \
        "given" in error
    assert not (tmp_path / "out").exists()


def test_a_treated_trial_without_a_rule_names_defined_false(tmp_path, capsys):
    path = tmp_path / "none.toml"
    path.write_text(TRIAL.format(response="by_day = 14"))
    assert main(["trial", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "write defined = false" in capsys.readouterr().err
