"""Trial files, fit configurations and calibration CSVs: every bad value is one clear error
naming the file, the line and the field, what was expected and what was given (issue 14)."""

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import assert_named, changed, one_cycle

from plateletpd.inference.fitting import FitConfigError, load_fit_config
from plateletpd.io.outcomes import (
    OutcomeDataError,
    bundled_outcomes_path,
    load_outcomes,
)
from plateletpd.study.trial import (
    TrialSpecError,
    bundled_trial,
    load_trial_spec,
    run_trial,
)

TRIAL = one_cycle(bundled_trial("yuan2025").read_text())
ROOT = Path(__file__).resolve().parents[1]
FIT = ROOT / "fits" / "cit_calibration" / "config.toml"
CSV = bundled_outcomes_path().read_text().splitlines()


# (text replaced in trials/yuan2025.toml, replacement, marker of the line the error names,
#  phrases the message must hold)
TRIAL_CASES = [
    ("by_day = 14", "by_day = 400", "by_day = 400", ["[response] by_day", "(0, 42]", "400",
                                                     "follow_up_days"]),
    ("by_day = 14", "by_day = -3", "by_day = -3", ["by_day", "(0, 42]", "-3"]),
    ("by_day = 14", "by_day = 0", "by_day = 0", ["by_day", "got 0"]),
    ("by_day = 14", 'by_day = "14"', "by_day =", ["by_day", "without quotes"]),
    ("threshold = 100", "threshold = -100", "threshold = -100", ["threshold", "(0, inf)",
                                                                "-100"]),
    ("threshold = 100", 'threshold = "100"', "threshold =", ["threshold", "'100'",
                                                             "without quotes"]),
    ("threshold = 100", "threshold = nan", "threshold =", ["threshold", "got nan"]),
    ("rise = 50", "rise = 0", "rise = 0", ["rise", "got 0", "false turns the rule off"]),
    ("rise = 50", "rise = inf", "rise = inf", ["rise", "got inf"]),
    ("threshold = 100\nrise = 50", "threshold = false\nrise = false", "[response]",
     ["needs a threshold, a rise, a rise_fold or several", "defines no response"]),
    ("rise = 50", "rise = 50\nrise_fold = 1", "rise_fold", ["rise_fold", "got 1",
                                                             "a factor above 1"]),
    ("rise = 50", 'rise = 50\ncombine = "both"', "combine", ["combine", "'any', 'all'",
                                                              "'both'"]),
    ("by_day = 14", "by_day = 14\nlater_day = 21", "[response]", ["both later_day and"]),
    ("by_day = 14", "by_day = 14\nlater_day = 60\nlater_at_least = 75", "later_day",
     ["later_day", "(0, 42]", "60"]),
    ("by_day = 14", "by_day = 14\nlater_day = 21\nlater_at_least = -75", "later_at_least",
     ["later_at_least", "-75"]),
    ("follow_up_days = 42", 'follow_up_days = "six weeks"', "follow_up_days",
     ["follow_up_days", "'six weeks'", "not a number", "e.g. follow_up_days = 42"]),
    ("follow_up_days = 42", "follow_up_days = 0", "follow_up_days", ["follow_up_days",
                                                                    "got 0"]),
    ("follow_up_days = 42", "follow_up_days = 10", "by_day = 14", ["by_day", "(0, 10]"]),
    ("visit_every_days = 1", 'visit_every_days = "daily"', "visit_every_days",
     ["visit_every_days", "(0, 28]", "'daily'"]),
    ("visit_every_days = 1", "visit_every_days = 0", "visit_every_days", ["(0, 28]"]),
    ("reference_arm", "replicates = 2.5\nreference_arm", "replicates",
     ["replicates", "whole number", "2.5"]),
    ("seed = 20261121", 'seed = "1"', "seed =", ["seed", "non-negative integer"]),
    ("subjects_per_arm = 400", "subjects_per_arm = 0", "subjects_per_arm",
     ["subjects_per_arm", "positive integer"]),
    ('model = "cit_marrow_reserve"', "model = 5", "model =", ["model", "text in quotes"]),
    ('fit = "default"', 'fit = "no_such_fit"', "fit =", ["[trial] fit", "no fit at"]),
    ("entry_below = 75", 'entry_below = "75"', "entry_below", ["[enrolment] entry_below",
                                                               "without quotes"]),
    ("entry_below = 75", "entry_below = -5", "entry_below", ["entry_below", "-5"]),
    ("start_delay = 1", "start_delay = -1", "start_delay", ["start_delay", "[0, 42]"]),
    ("start_delay = 1", "start_delay = 1\nentry_day = 50", "entry_day",
     ["entry_day", "[0, 42]", "50"]),
    ('chemotherapy = "chemotherapy 1 dose d1"', "chemotherapy = 1", "chemotherapy =",
     ["chemotherapy", "text in quotes"]),
    ("stop_at = 100\nstop_rise", 'stop_at = "100"\nstop_rise', 'stop_at = "100"',
     ["[arms #2] stop_at", "without quotes", "false turns the rule off"]),
    ("stop_rise = 50", "stop_rise = -50", "stop_rise = -50", ["stop_rise", "-50"]),
    ("max_days = 14", "max_days = 14.5", "max_days = 14.5", ["max_days", "whole number"]),
    ("max_days = 14", "max_days = 400", "max_days = 400", ["max_days", "[0, 365]"]),
    ('treatment = ["rhTPO 15000 U"]', 'treatment = "rhTPO 15000 U"', 'treatment = "rhTPO',
     ["treatment must be a list of doses", "'rhTPO 15000 U'"]),
    ('treatment = ["rhTPO 15000 U"]', "treatment = [15000]", "treatment = [15000]",
     ["treatment must be a list"]),
    ('treatment = ["rhTPO 15000 U"]', 'treatment = ["rhTPO 15000 kg"]', "15000 kg",
     ["arm 'rhTPO 15000 U'", "unknown dose unit 'kg'"]),
    ("rescue = { below = 10 }", 'rescue = { below = "10" }', "rescue =",
     ["[arms #1.rescue] below", "without quotes"]),
    ("rescue = { below = 10 }", "rescue = 10", "rescue =", ["rescue must be a table such as { below = 10 }",
                                                           "got 10"]),
    ("rescue = { below = 10 }", "rescue = { below = 10, max_per_patient = -1 }", "rescue =",
     ["max_per_patient", "-1"]),
    ("rescue = { below = 10 }", "rescue = { below = 0 }", "rescue =", ["[arms #1.rescue] below", "got 0"]),
    ("stop_at = 100\nstop_rise", 'titration = [{ day = 7, below = 50 }]\nstop_at = 100\n'
     "stop_rise", "titration", ["titration takes day, below and dose"]),
    ("stop_at = 100\nstop_rise", 'titration = [{ day = "7", below = 50, dose = '
     '"hetrombopag 15 mg" }]\nstop_at = 100\nstop_rise', "titration",
     ["titration #1] day", "whole number", "without quotes"]),
    ('name = "untreated"', "name = 5", "name = 5", ["[arms #1] name", "unique name", "got 5"]),
    ("covariates = { body_weight = 65 }",
     'typical = { chemotherapy_sensitivity = "6.9" }\ncovariates = { body_weight = 65 }',
     "typical =", ["[population.typical] chemotherapy_sensitivity", "without quotes"]),
    ("covariates = { body_weight = 65 }",
     "typical = { chemotherapy_sensitivity = -3 }\ncovariates = { body_weight = 65 }",
     "[population]", ["chemotherapy_sensitivity"]),
    ("cv = { chemotherapy_sensitivity = 0.30", "cv = { chemotherapy_sensitivity = -0.30",
     "cv =", ["[population.cv] chemotherapy_sensitivity", "[0, inf)", "-0.3"]),
    ("covariates = { body_weight = 65 }", 'covariates = { body_weight = "65" }',
     "covariates =", ["body_weight", "without quotes"]),
    ("covariates = { body_weight = 65 }", 'covariates = "65 kg"', "covariates =",
     ["[population] covariates must be a table"]),
    ("covariates = { body_weight = 65 }",
     'covariates = { body_weight = 65 }\ncorrelations = { "chemotherapy_sensitivity~'
     'platelets_baseline" = 2 }', "correlations", ["correlations", "[-1, 1]", "got 2"]),
]


@pytest.mark.parametrize("old, new, marker, phrases", TRIAL_CASES,
                         ids=[case[1].replace("\n", " ")[:40] for case in TRIAL_CASES])
def test_bad_trial_values_are_named_with_file_line_and_field(tmp_path, old, new, marker,
                                                             phrases):
    assert_named(changed(TRIAL, old, new), tmp_path / "bad.toml", load_trial_spec,
                 TrialSpecError, marker, phrases)


STRUCTURE_CASES = [
    ("trial = 5\n", "[trial] must be a [trial] table, got 5"),
    ("arms = 5\n", "[arms] must be a list of [[arms]] tables"),
    ("[trial]\nseed = 1\n", "at least one [[arms]]"),
]


@pytest.mark.parametrize("text, phrase", STRUCTURE_CASES)
def test_malformed_trial_structure_is_a_clear_error(tmp_path, text, phrase):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(TrialSpecError, match=phrase.replace("[", r"\[").replace("]", r"\]")):
        load_trial_spec(path)


def test_false_turns_a_response_rule_off_and_the_bundled_trial_loads(tmp_path):
    spec = load_trial_spec(bundled_trial("yuan2025"))
    assert spec.response["threshold"] == 100 and spec.response["by_day"] == 14
    # the rise rule switched off: only the threshold remains
    path = tmp_path / "rise_false.toml"
    path.write_text(changed(TRIAL, "rise = 50", "rise = false"))
    assert load_trial_spec(path).response["rise"] is None


def test_an_arm_that_enrols_nobody_is_a_clear_error(tmp_path):
    # entry below 1 x10^9/L: the rescue transfusions below 10 keep every count above it,
    # so no treated arm enrols anyone (issue 16: "cannot reshape array of size 0" before)
    text = changed(TRIAL, "entry_below = 75 ", "entry_below = 1 ")
    path = tmp_path / "nobody.toml"
    path.write_text(text)
    with pytest.raises(TrialSpecError) as error:
        run_trial(load_trial_spec(path, subjects=8, seed=1))
    message = str(error.value)
    for phrase in ("enrolled none of the 8 virtual patients screened",
                   "entry_below = 1", "raise entry_below"):
        assert phrase in message, message


# ---------------------------------------------------------------------- fit configuration
FIT_TEXT = FIT.read_text()
FIT_CASES = [
    ("seed = 20261121", "seed = -1", "seed =", ["seed must be"]),
    ("subjects = 120", 'subjects = "120"', "subjects =", ["subjects", "without quotes"]),
    ("subjects = 120", "subjects = 0", "subjects =", ["subjects", "got 0"]),
    ("max_evaluations = 300", "max_evaluations = 1.5", "max_evaluations",
     ["max_evaluations", "whole number"]),
    ('model = "cit_thrombopoiesis"', "model = 3", 'model = 3', ["model must be text"]),
    ('profile = ["het_ec50", "tpo_emax", "il11_emax_proliferation"]', 'profile = "het_ec50"',
     "profile =", ["profile must be a list"]),
    ("het_ec50 = { vary = true, lower = 0.05", 'het_ec50 = { vary = true, lower = "0.05"',
     "het_ec50 = { vary", ["[parameters.het_ec50]", "lower", "without quotes"]),
    ("tpo_emax = { vary = true, lower = 0.1, upper = 10.0 }",
     "tpo_emax = { vary = true, lower = 5.0, upper = 1.0 }", "tpo_emax = { vary",
     ["not lower < upper"]),
    ("tpo_emax = { vary = true,", 'tpo_emax = { vary = "yes",', "tpo_emax = { vary",
     ["vary must be true or false"]),
    ("het_ec50 = { mean = 2.8", "het_ec50 = { mean = -2.8", "het_ec50 = { mean",
     ["[priors.het_ec50]", "mean", "-2.8", "mean > 0 and cv > 0"]),
    ("tpo_emax = { mean = 1.2, cv = 1.0", 'tpo_emax = { mean = 1.2, cv = "1"',
     "tpo_emax = { mean", ["cv", "without quotes"]),
    ("cv = { chemotherapy_sensitivity = 0.30", 'cv = { chemotherapy_sensitivity = "0.3"',
     "cv = {", ["[population.cv] chemotherapy_sensitivity", "without quotes"]),
    ('response = { threshold = 100, rise = 50, by_day = 14 }\nparams = { chemotherapy_'
     'sensitivity = "yuan_chemotherapy_sensitivity" }\n\n[[arms]]\nstudy = "yuan2025"\n'
     'arm = "hetrombopag"',
     'response = { threshold = 100, rise = 50, by_day = 400 }\nparams = { chemotherapy_'
     'sensitivity = "yuan_chemotherapy_sensitivity" }\n\n[[arms]]\nstudy = "yuan2025"\n'
     'arm = "hetrombopag"', "by_day = 400", ["[arms #1.response] by_day", "(0, 35]",
                                             "within follow_up_days"]),
    ("response = { threshold = 100, rise = 50, by_day = 14 }",
     "response = { threshold = -100, rise = 50, by_day = 14 }", "threshold = -100",
     ["[arms #1.response] threshold", "-100"]),
    ("response = { threshold = 100, rise = 50, by_day = 14 }",
     'response = { threshold = "100", rise = 50, by_day = 14 }', 'threshold = "100"',
     ["threshold", "without quotes"]),
    ("response = { threshold = 100, rise = 50, by_day = 14 }",
     "response = { threshold = 100, rise = 50, by_day = 14, day = 3 }", "day = 3",
     ["[arms #1.response]: unknown field 'day'",
                      "allowed: threshold, rise, by_day"]),
    ('treatment = ["rhTPO 15000 U"]\nstop_rise = 50',
     'treatment = ["rhTPO 15000 U"]\nstop_rise = 50\nfollow_up_days = "five weeks"',
     "five weeks", ["[arms #1]", "follow_up_days", "not a number"]),
    ('treatment = ["rhTPO 15000 U"]', 'treatment = "rhTPO 15000 U"',
     'treatment = "rhTPO', ["[arms #1]", "treatment must be a list"]),
]


@pytest.mark.parametrize("old, new, marker, phrases", FIT_CASES,
                         ids=[case[1].replace("\n", " ")[-40:] for case in FIT_CASES])
def test_bad_fit_configurations_are_named_with_file_line_and_entry(tmp_path, old, new, marker,
                                                                   phrases):
    text = changed(FIT_TEXT, old, new).replace("../../data/cit_summary.csv",
                                               str(bundled_outcomes_path()))
    assert_named(text, tmp_path / "config.toml", load_fit_config, FitConfigError, marker,
                 phrases)


# ---------------------------------------------------------------------- calibration CSV
def csv_with(change) -> str:
    lines = list(CSV)
    change(lines)
    return "\n".join(lines) + "\n"


def set_column(row: int, column: str, value: str):
    """Change one cell of data row ``row`` (file line row + 2) of the bundled table."""
    import csv
    import io

    def change(lines):
        header = next(csv.reader([lines[0]]))
        cells = next(csv.reader([lines[row + 1]]))
        cells[header.index(column)] = value
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="").writerow(cells)
        lines[row + 1] = buffer.getvalue()
    return change


SD_ROW = next(k for k, line in enumerate(CSV[1:]) if ",SD,16," in line)  # an SD row, n given
CSV_CASES = [
    (set_column(0, "n", "0"), [(2, "n", "0 is below 1")]),
    (set_column(0, "n", "-4"), [(2, "n", "-4 is below 1")]),
    (set_column(0, "n", "12.5"), [(2, "n", "not a whole number")]),
    (set_column(0, "n", "many"), [(2, "n", "'many' is not a number")]),
    (set_column(SD_ROW, "spread", "0"), [(SD_ROW + 2, "spread", "zero standard error")]),
    (set_column(SD_ROW, "spread", "-3"), [(SD_ROW + 2, "spread", "-3 is below 0")]),
    (lambda lines: [set_column(SD_ROW, column, value)(lines)
                    for column, value in (("spread_type", "SE"), ("spread", "0"))],
     [(SD_ROW + 2, "spread", "zero standard error")]),
    (lambda lines: lines.append(lines[1]), [(len(CSV) + 1, "-", "exact duplicate of line 2")]),
    # line 6 copied in as line 4: the original, now line 7, is the duplicate reported
    (lambda lines: lines.insert(3, lines[5]), [(7, "-", "exact duplicate of line 4")]),
    (set_column(0, "value", "70.3%"), [(2, "value", "'70.3%' is not a number")]),
    (set_column(0, "value", "inf"), [(2, "value", "not a finite number")]),
]


@pytest.mark.parametrize("change, expected", CSV_CASES)
def test_bad_calibration_rows_are_named_with_line_and_column(tmp_path, change, expected):
    path = tmp_path / "outcomes.csv"
    path.write_text(csv_with(change))
    with pytest.raises(OutcomeDataError) as error:
        load_outcomes(path)
    found = [(line, column) for line, column, _ in error.value.problems]
    for line, column, phrase in expected:
        assert (line, column) in found, (found, str(error.value))
        assert phrase in str(error.value), str(error.value)


def test_a_zero_width_range_is_refused(tmp_path):
    path = tmp_path / "outcomes.csv"
    path.write_text(csv_with(lambda lines: [set_column(SD_ROW, column, value)(lines) for
                                            column, value in (("spread_type", "range"),
                                                              ("spread", "5-5"))]))
    with pytest.raises(OutcomeDataError, match="high end above its low end"):
        load_outcomes(path)


EMPTY_CASES = [
    ("", "cannot read the file"),
    (CSV[0] + "\n", "no data rows"),
    ("study,arm\nx,y\n", "required column is missing"),
    (b"\xff\xfe\x00bad".decode("latin-1"), "cannot read the file"),
]


@pytest.mark.parametrize("text, phrase", EMPTY_CASES)
def test_empty_or_headless_tables_are_clear_errors(tmp_path, text, phrase):
    path = tmp_path / "outcomes.csv"
    path.write_text(text, encoding="latin-1")
    with pytest.raises(OutcomeDataError, match=phrase):
        load_outcomes(path)


def test_the_bundled_calibration_table_still_loads():
    table = load_outcomes(bundled_outcomes_path())
    assert len(table) == len(CSV) - 1 and (table.n.dropna() >= 1).all()
    assert (table.standard_error.dropna() > 0).all()


# ---------------------------------------------------------------------- command line
@pytest.mark.parametrize("command, old, new, phrase", [
    ("trial", "by_day = 14", "by_day = 400", "by_day"),
    ("trial", "follow_up_days = 42", 'follow_up_days = "six weeks"', "follow_up_days"),
    ("trial", "entry_below = 75 ", "entry_below = 1 ", "enrolled none"),
    ("fit", "subjects = 120", 'subjects = "120"', "subjects"),
])
def test_the_command_line_exits_2_without_a_traceback(tmp_path, command, old, new, phrase):
    source = TRIAL if command == "trial" else FIT_TEXT.replace(
        "../../data/cit_summary.csv", str(bundled_outcomes_path()))
    path = tmp_path / "input.toml"
    path.write_text(changed(source, old, new))
    extra = ["--n", "6"] if command == "trial" else []
    run = subprocess.run([sys.executable, "-m", "plateletpd.cli", command, str(path), *extra,
                          "--out", str(tmp_path / "out")], capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr and phrase in run.stderr
    assert f"plateletpd {command}: error: {path}" in run.stderr
    assert not (tmp_path / "out").exists()  # nothing written
