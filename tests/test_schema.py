"""The schema layer (plateletpd.io.schema): one engine checks every TOML input and names the
file, the line, the table and the key of a bad value, what was expected and what was given.
Each expected line number below is counted in the text of the test itself."""

import re
import tomllib
from pathlib import Path

import pytest

from plateletpd.errors import ModelFileError, PlateletPDError
from plateletpd.inference.fitting import FitConfigError, load_fit_config
from plateletpd.io.outcomes import bundled_outcomes_path
from plateletpd.io.schema import Document, Field, Ref, Table, number_table
from plateletpd.model.definition import bundled_models_dir, parse_model
from plateletpd.study.sweep import parse_grid
from plateletpd.study.trial import TrialSpecError, bundled_trial, load_trial_spec

SCHEMA = Table({
    "study": Table({"name": Field("text", required=True),
                    "days": Field(default=42.0, unit="days"),
                    "visits": Field(whole=True, default=3, high=10.0),
                    "blinded": Field("boolean", default=False),
                    "kind": Field("text", default="open", choices=("open", "closed")),
                    "cv": number_table()}),
    "response": Table({"by_day": Field(default=14.0, high=Ref("study", "days"),
                                       fix="lower it or raise [study] days ({high:g})")}),
    "arms": Table({"name": Field("text", required=True),
                   "stop_at": Field(default=100.0, may_be_false=True),
                   "rescue": Table({"below": Field(required=True)})}, many=True)})

GOOD = """\
[study]
name = "example"
days = 42
cv = { sensitivity = 0.3 }

[response]
by_day = 14

[[arms]]
name = "control"

[[arms]]
name = "treated"
stop_at = 100
rescue = { below = 10 }
"""


def check(text: str) -> dict:
    return Document("example.toml", text, tomllib.loads(text), PlateletPDError).check(SCHEMA)


def error_of(text: str) -> str:
    with pytest.raises(PlateletPDError) as caught:
        check(text)
    return str(caught.value)


def test_a_good_file_gets_its_defaults_and_types():
    checked = check(GOOD)
    assert checked["study"]["days"] == 42.0 and isinstance(checked["study"]["days"], float)
    assert checked["study"]["visits"] == 3 and isinstance(checked["study"]["visits"], int)
    assert checked["study"]["blinded"] is False and checked["study"]["kind"] == "open"
    assert checked["arms"][0]["stop_at"] == 100.0 and checked["arms"][0]["rescue"] is None
    assert checked["arms"][1]["rescue"] == {"below": 10.0}
    assert check(GOOD.replace("stop_at = 100", "stop_at = false"))["arms"][1]["stop_at"] is None


def test_an_unknown_key_is_refused_with_a_hint_on_its_line():
    message = error_of(GOOD.replace("days = 42", "dyas = 42"))
    assert message.startswith("example.toml, line 3 [study]: unknown field 'dyas' "
                              "(did you mean 'days'?); allowed: name, days,"), message
    message = error_of(GOOD + "\n[respons]\nby_day = 3\n")
    assert message.startswith("example.toml, line 17 unknown section [respons] (did you mean "
                              "'response'?)"), message


def test_a_wrong_type_says_expected_and_given():
    message = error_of(GOOD.replace('name = "example"', "name = 5"))
    assert message == "example.toml, line 2 [study] name must be text in quotes, got 5"
    message = error_of(GOOD.replace("days = 42", 'days = "42"'))
    assert message.startswith("example.toml, line 3 [study] days must be a number in (0, inf), "
                              "got '42' (text: write the number without quotes)"), message
    message = error_of(GOOD.replace("[response]", "blinded = \"yes\"\n[response]"))
    assert "line 6 [study] blinded must be true or false, got 'yes'" in message
    message = error_of(GOOD.replace("[response]", "kind = \"opne\"\n[response]"))
    assert "[study] kind must be one of 'open', 'closed', got 'opne' (did you mean 'open'?)" \
        in message


def test_out_of_range_values_name_the_interval_and_the_fix():
    assert "line 3 [study] days must be a number in (0, inf), got -1" in \
        error_of(GOOD.replace("days = 42", "days = -1"))
    message = error_of(GOOD.replace("by_day = 14", "by_day = 60"))  # bound from [study] days
    assert message == ("example.toml, line 7 [response] by_day must be a number in (0, 42], "
                       "got 60; lower it or raise [study] days (42)")
    assert "[arms #2] stop_at must be a number in (0, inf), got 0; false turns the rule off" \
        in error_of(GOOD.replace("stop_at = 100", "stop_at = 0"))


def test_a_missing_required_key_is_named_at_its_table():
    message = error_of(GOOD.replace('name = "treated"\n', ""))
    assert message == "example.toml, line 12 [arms #2] name is required"
    message = error_of(GOOD.replace("below = 10", "under = 10"))
    assert message.startswith("example.toml, line 15 [arms #2.rescue]: unknown field 'under'")


def test_lines_in_a_nested_inline_table_and_in_the_second_array_entry():
    # cv is an inline table under [study] (line 4); rescue is in the 2nd [[arms]] (line 15)
    assert error_of(GOOD.replace("sensitivity = 0.3", "sensitivity = -0.3")).startswith(
        "example.toml, line 4 [study.cv] sensitivity must be a number in [0, inf)")
    assert error_of(GOOD.replace("below = 10", 'below = "10"')).startswith(
        "example.toml, line 15 [arms #2.rescue] below must be")
    document = Document("x", GOOD, tomllib.loads(GOOD), PlateletPDError)
    assert [document.line(w) for w in [("arms", 0), ("arms", 1), ("arms", 1, "stop_at"),
                                        ("arms", 0, "stop_at"), ("response", "by_day")]] \
        == [9, 12, 14, 9, 7]  # an absent key: its table's line


def test_two_errors_report_the_first_by_line():
    text = GOOD.replace("by_day = 14", "by_day = -1").replace("days = 42", "days = 0")
    assert ", line 3 [study] days" in error_of(text)  # line 3 before line 7
    text = GOOD.replace("below = 10", "below = 0").replace('name = "example"', "name = 1")
    assert ", line 2 [study] name" in error_of(text)


# ---------------------------------------------------------------------- one test per input
def test_a_model_file_value_gets_file_line_and_key():
    path = bundled_models_dir() / "friberg_platelets.toml"
    text = path.read_text()
    line, old = next((n, l) for n, l in enumerate(text.splitlines(), 1) if "value =" in l)
    bad = text.replace(old, re.sub(r"value = [^,}]+", 'value = "x"', old), 1)
    with pytest.raises(ModelFileError) as caught:
        parse_model(bad, path="friberg.toml")
    name = old.split("=")[0].strip()
    assert str(caught.value).startswith(f"friberg.toml, line {line} [parameters.{name}]"), \
        str(caught.value)


def test_a_trial_file_value_gets_file_line_and_key(tmp_path):
    text = bundled_trial("yuan2025").read_text()
    path = tmp_path / "trial.toml"
    path.write_text(text.replace("max_days = 14", "max_days = 14.5", 1))
    line = next(n for n, l in enumerate(path.read_text().splitlines(), 1) if "14.5" in l)
    with pytest.raises(TrialSpecError) as caught:
        load_trial_spec(path)
    assert str(caught.value).startswith(f"{path}, line {line} [arms #")
    assert "] max_days must be a whole number in [0, 365], got 14.5" in str(caught.value)


def test_a_fit_configuration_value_gets_file_line_and_key(tmp_path):
    config = Path(__file__).resolve().parents[1] / "fits" / "cit_calibration" / "config.toml"
    text = config.read_text().replace("../../data/cit_summary.csv",
                                      str(bundled_outcomes_path()))
    path = tmp_path / "config.toml"
    path.write_text(text.replace("profile_points = 7", "profile_points = 1"))
    line = next(n for n, l in enumerate(path.read_text().splitlines(), 1)
                if l.startswith("profile_points"))
    with pytest.raises(FitConfigError) as caught:
        load_fit_config(path)
    assert str(caught.value) == (f"{path}, line {line} [fit] profile_points must be a whole "
                                 f"number in (2, inf), got 1")


@pytest.mark.parametrize("items, message", [
    (["max_days=7,14.5"], "--grid [max_days] must be whole numbers of days in [0, 365]"),
    (["start_delay=-1,0"], "--grid [start_delay] must be numbers of days >= 0"),
    (["dose:rhTPO=-1,5"], "--grid [dose] must be numbers >= 0"),
    (["doze=1"], "--grid unknown dimension 'doze' (did you mean 'dose'?)"),
])
def test_a_sweep_grid_value_gets_its_dimension(items, message):
    with pytest.raises(PlateletPDError) as caught:
        parse_grid(items)
    assert str(caught.value).startswith(message), str(caught.value)
