"""Tests of plateletpd.dosing.regimens: regimen text, unit conversion, event schedules, NONMEM tables.

Sources of the numbers used below:
- "convention": the module's day convention, study day N starts at t = N - 1 days.
- "parameters.md": ../shared/literature/parameters.md (rhTPO specific activity 280,000 IU/mg,
  manufacturer data; rhTPO 300 U/kg/d or 15,000 U/d for up to 14 days; rhIL-11 50 ug/kg/d
  for 10-21 days; hetrombopag 7.5 mg once daily).
- "hand-computed": arithmetic shown next to the number.
- Doses of "drugX" and carboplatin are made-up test inputs; their numbers only need to be
  internally consistent.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd
import pytest

from plateletpd.dosing.regimens import Dose, Regimen

from plateletpd.dosing.targets import DoseTarget

from plateletpd.dosing.schedules import EventSchedule, expand

from plateletpd.dosing.event_tables import read_event_table, to_event_table, write_event_table
from plateletpd.errors import RegimenError
import plateletpd as pp

RHTPO_UNITS_PER_MG = 280_000  # rhTPO specific activity, manufacturer data via parameters.md
BODY_WEIGHT = 70.0  # kg, a made-up test subject
BODY_SURFACE_AREA = 1.8  # m2, a made-up test subject

HETROMBOPAG = DoseTarget("hetrombopag", "depot", 0, "mg", aliases=("HTPAG",),
                         administration="oral")
RHTPO = DoseTarget("rhTPO", "rhtpo_sc", 2, "ug", units_per_mg=RHTPO_UNITS_PER_MG)
RHIL11 = DoseTarget("rhIL-11", "il11_sc", 1, "ug")
CHEMO = DoseTarget("carboplatin", "chemo", 3, "mg", routes=("bolus", "infusion"), aliases=("drugX",),
                   administration="iv")
TARGETS = (HETROMBOPAG, RHIL11, RHTPO, CHEMO)
STATE_NAMES = ("depot", "il11_sc", "rhtpo_sc", "chemo", "platelets")
COVARIATES = {"body_weight": BODY_WEIGHT, "body_surface_area": BODY_SURFACE_AREA}


def days(*values: float) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


# ----------------------------------------------------------------------------- text form

PARSE_CASES = [
    # convention: d1-14 qd -> t = 0..13 (hetrombopag 7.5 mg qd: parameters.md)
    ("hetrombopag 7.5 mg qd d1-14", "hetrombopag", 7.5, "mg", days(*range(14)), "bolus", 0.0),
    # rhTPO 300 U/kg/d and 15,000 U/d for 14 days: parameters.md
    ("rhTPO 300 U/kg qd d1-14", "rhTPO", 300, "U/kg", days(*range(14)), "bolus", 0.0),
    ("rhTPO 15000 U qd d1-14", "rhTPO", 15000, "U", days(*range(14)), "bolus", 0.0),
    # rhIL-11 50 ug/kg/d, 10 days: parameters.md
    ("rhIL-11 50 ug/kg qd d1-10", "rhIL-11", 50, "ug/kg", days(*range(10)), "bolus", 0.0),
    # convention: listed days 2,4,6,9 -> t = 1,3,5,8
    ("rhTPO 300 U/kg d2,4,6,9", "rhTPO", 300, "U/kg", days(1, 3, 5, 8), "bolus", 0.0),
    # bid = every 1/2 day: 7 days x 2 = 14 doses at 0, 0.5, ..., 6.5
    ("hetrombopag 7.5 mg bid d1-7", "hetrombopag", 7.5, "mg", days(*np.arange(14) / 2), "bolus", 0.0),
    # tid = every 1/3 day over days 1-2: 6 doses at k/3
    ("drugX 1 mg tid d1-2", "drugX", 1, "mg", days(*(np.arange(6) * (1 / 3))), "bolus", 0.0),
    # qid = every 1/4 day on day 1
    ("drugX 1 mg qid d1", "drugX", 1, "mg", days(0, 0.25, 0.5, 0.75), "bolus", 0.0),
    # qod over days 1-14: every 2 days, 0..12 (14 itself is day 15)
    ("drugX 1 mg qod d1-14", "drugX", 1, "mg", days(0, 2, 4, 6, 8, 10, 12), "bolus", 0.0),
    # qw / weekly over days 1-28: 0, 7, 14, 21
    ("drugX 1 mg qw d1-28", "drugX", 1, "mg", days(0, 7, 14, 21), "bolus", 0.0),
    ("drugX 1 mg weekly d1-28", "drugX", 1, "mg", days(0, 7, 14, 21), "bolus", 0.0),
    # od / daily = qd; po and sc are accepted bolus words
    ("drugX 1 mg po od d1-3", "drugX", 1, "mg", days(0, 1, 2), "bolus", 0.0),
    ("drugX 1 mg sc daily d1-3", "drugX", 1, "mg", days(0, 1, 2), "bolus", 0.0),
    # q8h = 8/24 d; q3d over days 1-10 = 0, 3, 6, 9
    ("drugX 1 mg q8h d1", "drugX", 1, "mg", days(0, 8 / 24, 16 / 24), "bolus", 0.0),
    ("drugX 1 mg q3d d1-10", "drugX", 1, "mg", days(0, 3, 6, 9), "bolus", 0.0),
    # once / absent frequency with one day = one dose; day 3 starts at t = 2
    ("drugX 1 mg once d3", "drugX", 1, "mg", days(2), "bolus", 0.0),
    ("drugX 1 mg oral d3", "drugX", 1, "mg", days(2), "bolus", 0.0),
    # a count: 6 doses q12h from day 1 (t = 0) or from day 3 (t = 2)
    ("drugX 100 mg q12h x6", "drugX", 100, "mg", days(0, 0.5, 1, 1.5, 2, 2.5), "bolus", 0.0),
    ("drugX 100 mg q12h x6 d3", "drugX", 100, "mg", days(2, 2.5, 3, 3.5, 4, 4.5), "bolus", 0.0),
    # infusions: 30 min = 30/1440 d; 2 h = 2/24 d; iv without 'over' is a bolus
    ("carboplatin 400 mg/m2 iv over 30min d1", "carboplatin", 400, "mg/m2", days(0), "infusion", 30 / 1440),
    ("drugX 10 mg over 2h qd d1-3", "drugX", 10, "mg", days(0, 1, 2), "infusion", 2 / 24),
    ("drugX 10 mg over 2 h d1", "drugX", 10, "mg", days(0), "infusion", 2 / 24),
    ("drugX 10 mg iv d1", "drugX", 10, "mg", days(0), "bolus", 0.0),
    # case-insensitive keywords, glued amount and unit, mcg = ug
    ("drugX 7.5mg QD D1-3", "drugX", 7.5, "mg", days(0, 1, 2), "bolus", 0.0),
    ("drugX 5 mcg d1", "drugX", 5, "ug", days(0), "bolus", 0.0),
]


@pytest.mark.parametrize("text, drug, amount, unit, times, route, duration", PARSE_CASES)
def test_text_form_parses_to_times_amounts_and_units(text, drug, amount, unit, times, route, duration):
    (dose,) = Regimen.parse(text)
    assert (dose.drug, dose.amount, dose.unit, dose.route) == (drug, amount, unit, route)
    np.testing.assert_allclose(dose.times, times, rtol=0, atol=1e-12)
    assert dose.duration == pytest.approx(duration, rel=1e-12)


@pytest.mark.parametrize("text", [case[0] for case in PARSE_CASES] + [
    "hetrombopag 7.5 mg qd d1-14 + rhTPO 300 U/kg qd d1-14",
    "drugX 0.1 mg t=0.1,0.35",  # irregular times have no day form
])
def test_str_round_trips(text):
    regimen = Regimen.parse(text)
    assert Regimen.parse(str(regimen)) == regimen


def test_str_keeps_the_compact_form():
    # the text given is already the compact form, so str() gives it back unchanged
    text = "hetrombopag 7.5 mg qd d1-14 + rhTPO 300 U/kg d2,4,6,9 + carboplatin 400 mg/m2 over 30min d1"
    assert str(Regimen.parse(text)) == text


def test_several_doses_and_no_treatment():
    regimen = Regimen.parse("hetrombopag 7.5 mg qd d1-14 + rhTPO 15000 U qd d1-14")
    assert [dose.drug for dose in regimen] == ["hetrombopag", "rhTPO"]
    assert len(Regimen.parse("none")) == 0 and Regimen.parse("") == Regimen.none()
    assert str(Regimen.none()) == "none"


def test_regimens_add_and_compare():
    first, second = Regimen.parse("hetrombopag 7.5 mg qd d1-14"), Regimen.parse("rhTPO 300 U/kg qd d1-14")
    combined = first + second
    assert len(combined) == 2 and combined == Regimen(first.doses + second.doses)
    assert combined != second + first  # equality compares doses in order
    assert first + second.doses[0] == combined


def test_dose_repeated_count_and_until():
    by_count = Dose.repeated("hetrombopag", 7.5, "mg", start=0, interval=1, count=14)
    by_until = Dose.repeated("hetrombopag", 7.5, "mg", start=0, interval=1, until=13)  # last dose inclusive
    assert by_count == by_until == Regimen.parse("hetrombopag 7.5 mg qd d1-14").doses[0]
    single = Dose.repeated("drugX", 1, "mg", start=2.5, count=1)
    assert single.times == (2.5,) and str(single) == "drugX 1 mg t=2.5"


@pytest.mark.parametrize("kwargs, message", [
    ({"count": 3, "until": 5}, "exactly one of count and until"),
    ({}, "exactly one of count and until"),
    ({"count": 0}, "whole number >= 1"),
    ({"count": 2.5}, "whole number >= 1"),
    ({"count": 3, "interval": 0}, "interval must be > 0"),
])
def test_dose_repeated_refuses_bad_arguments(kwargs, message):
    with pytest.raises(RegimenError, match=message):
        Dose.repeated("drugX", 1, "mg", **kwargs)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("amount", [-7.5, 0.0])
def test_negative_or_zero_amount_is_refused_and_names_the_dose(amount):
    # a zero dose gives nothing (NONMEM AMT 0 likewise): refused, not silently skipped
    with pytest.raises(RegimenError, match=rf"dose of 'hetrombopag'.*finite number > 0, given {amount}"):
        Dose("hetrombopag", amount, "mg", (0.0,))
    with pytest.raises(RegimenError, match=r"number > 0"):
        Regimen.parse(f"hetrombopag {amount:g} mg qd d1-14")


def test_nan_amount_is_refused():
    with pytest.raises(RegimenError, match=r"dose of 'rhTPO'.*given nan"):
        Dose("rhTPO", float("nan"), "U", (0.0,))


@pytest.mark.parametrize("kwargs, message", [
    ({"times": ()}, "non-empty"),
    ({"times": (-1.0,)}, "finite times >= 0"),
    ({"times": (float("inf"),)}, "finite times >= 0"),
    ({"unit": "mg/day"}, "after '/' expected 'kg'"),
    ({"route": "nasal"}, "route must be one of"),
    ({"route": "infusion"}, "needs a duration > 0"),
    ({"duration": 0.1}, "needs duration 0"),
])
def test_dose_validation(kwargs, message):
    arguments = {"drug": "drugX", "amount": 1.0, "unit": "mg", "times": (0.0,)} | kwargs
    with pytest.raises(RegimenError, match=message):
        Dose(**arguments)


def test_bad_text_quotes_the_text_points_at_the_token_and_shows_an_example():
    text = "hetrombopag 7.5 mg qd d1-14 fortnightly"
    with pytest.raises(RegimenError) as raised:
        Regimen.parse(text)
    message = str(raised.value)
    assert repr(text) in message and "unexpected 'fortnightly'" in message
    caret_line = message.splitlines()[2]
    assert caret_line.index("^") - 4 == text.index("fortnightly")  # 4 = indent of the quoted text
    assert "e.g. 'hetrombopag 7.5 mg qd d1-14'" in message


@pytest.mark.parametrize("text, message", [
    ("hetrombopag 7.5 mgg qd d1-14", r"unknown dose unit 'mgg' \(did you mean 'mg'\?\)"),
    ("hetrombopag 7.5 mg qd", "add days"),
    ("hetrombopag 7.5 mg d1-14", "a day range needs a frequency"),
    ("hetrombopag 7.5 mg qd qd d1-14", "given twice"),
    ("drugX 100 mg x6", "a dose count needs a frequency"),
    ("drugX 100 mg q12h x6 d1-3", "only the first day"),
    ("drugX 10 mg over soon d1", "infusion duration"),
    ("hetrombopag seven mg qd d1-14", "amount as a number"),
    ("hetrombopag", "at least a drug, an amount and a unit"),
    ("drugX 1 mg qd d0-3", "days start at d1"),
])
def test_bad_text_says_what_failed(text, message):
    with pytest.raises(RegimenError, match=message):
        Regimen.parse(text)


# ----------------------------------------------------------------------------- units


def test_mass_conversion():
    assert HETROMBOPAG.conversion("ug") == (pytest.approx(1e-3), None)  # 1 ug = 1/1000 mg
    assert RHTPO.conversion("mg") == (pytest.approx(1000.0), None)  # 1 mg = 1000 ug
    assert RHTPO.conversion("mcg/kg") == (pytest.approx(1.0), "body_weight")
    assert HETROMBOPAG.conversion("g/m2") == (pytest.approx(1000.0), "body_surface_area")


def test_international_units_per_kg_to_micrograms():
    # hand-computed: 300 U/kg * 70 kg / 280000 U/mg * 1000 ug/mg = 75 ug
    schedule = expand("rhTPO 300 U/kg qd d1-14", TARGETS)
    np.testing.assert_allclose(schedule.amounts({"body_weight": BODY_WEIGHT}), np.full(14, 75.0), rtol=1e-12)
    # hand-computed: 15000 U / 280000 U/mg * 1000 ug/mg = 53.571 ug (parameters.md: "approx. 54 ug")
    absolute = expand("rhTPO 15000 U d1", TARGETS)
    assert absolute.amounts() == pytest.approx([15000 / 280])
    assert absolute.scale_covariate == ("",)


def test_mass_into_international_units_uses_the_specific_activity():
    target = DoseTarget("rhTPO", "rhtpo_sc", 0, "IU", units_per_mg=RHTPO_UNITS_PER_MG)
    assert target.conversion("ug") == (pytest.approx(280.0), None)  # 280000 U/mg / 1000 ug/mg
    assert target.conversion("U") == (1.0, None)


def test_per_body_surface_area():
    # hand-computed: 400 mg/m2 * 1.8 m2 = 720 mg
    schedule = expand("carboplatin 400 mg/m2 iv over 30min d1", TARGETS)
    assert schedule.scale_covariate == ("body_surface_area",)
    assert schedule.amounts(COVARIATES) == pytest.approx([720.0])
    assert schedule.duration == pytest.approx([30 / 1440])


def test_covariate_arrays_give_one_row_per_subject():
    schedule = expand("rhIL-11 50 ug/kg qd d1-10 + hetrombopag 7.5 mg qd d1-14", TARGETS)
    amounts = schedule.amounts({"body_weight": np.array([50.0, 80.0])})
    assert amounts.shape == (2, 24)  # 2 subjects x (10 + 14) events
    rhil11 = np.array(schedule.drug) == "rhIL-11"
    # hand-computed: 50 ug/kg * 50 kg = 2500 ug; 50 ug/kg * 80 kg = 4000 ug
    np.testing.assert_allclose(amounts[:, rhil11], [[2500.0] * 10, [4000.0] * 10])
    np.testing.assert_allclose(amounts[:, ~rhil11], 7.5)  # absolute dose, the same for both


def test_international_units_into_a_mass_state_need_units_per_mg():
    target = DoseTarget("rhTPO", "rhtpo_sc", 2, "ug")
    with pytest.raises(RegimenError, match=r"'U/kg' cannot be converted.*'ug'.*set units_per_mg"):
        expand("rhTPO 300 U/kg qd d1-14", [target])


def test_mass_into_a_dimensionless_state_is_refused():
    target = DoseTarget("drugX", "effect", 0, "1")
    with pytest.raises(RegimenError, match=r"amount is in '1'; drugX accepts 1 "):
        target.conversion("mg")
    assert target.conversion("1") == (1.0, None)  # a dose in exactly the state's unit converts


def test_body_weight_missing_for_a_per_kg_dose():
    with pytest.raises(RegimenError, match=r"rhTPO dose at t=0 d.*Pass covariates=\{'body_weight': <kg>\}"):
        expand("rhTPO 300 U/kg qd d1-14", TARGETS, covariates={"body_surface_area": 1.8})
    schedule = expand("rhTPO 300 U/kg qd d1-14", TARGETS)  # without covariates the check waits
    with pytest.raises(RegimenError, match="finite number > 0"):
        schedule.amounts({"body_weight": float("nan")})


# ----------------------------------------------------------------------------- expand


def test_expand_sorts_events_and_records_targets():
    schedule = expand("rhTPO 15000 U qd d1-3 + HTPAG 7.5 mg qd d1-3", TARGETS)
    assert schedule.n_events == 6
    np.testing.assert_array_equal(schedule.time, [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(schedule.target, [2, 0, 2, 0, 2, 0])  # stable: regimen order at ties
    np.testing.assert_array_equal(schedule.state, [2, 0, 2, 0, 2, 0])
    assert schedule.drug[:2] == ("rhTPO", "hetrombopag")  # the alias resolves to the target name


def test_unknown_drug_lists_known_drugs_with_a_hint():
    with pytest.raises(RegimenError, match=r"unknown drug 'hetrombopg' \(did you mean 'hetrombopag'\?\).*"
                                           r"hetrombopag, rhIL-11, rhTPO, carboplatin"):
        expand("hetrombopg 7.5 mg qd d1-14", TARGETS)


def test_route_must_be_accepted_by_the_target():
    with pytest.raises(RegimenError, match=r"cannot be given as infusion.*accepted routes: bolus"):
        expand("hetrombopag 7.5 mg over 1h d1", TARGETS)


def test_a_route_word_is_checked_never_ignored():
    # 'po' matches hetrombopag's declared oral administration; 'iv' does not
    assert expand("hetrombopag 7.5 mg po qd d1-3", TARGETS).n_events == 3
    assert str(Regimen.parse("hetrombopag 7.5 mg po qd d1-3")) == "hetrombopag 7.5 mg po qd d1-3"
    # the fix names what to do for THIS drug (a user test, 2026-12-04, was told to "use
    # platelet_transfusion, chemotherapy for iv dosing" of rhTPO): drop the word or add a
    # target; the model's other iv targets are named as other drugs
    with pytest.raises(RegimenError, match=r"says 'iv' but hetrombopag.*is given oral.*"
                                           r"drop the route word to give hetrombopag as the "
                                           r"model does \(the model's iv dose targets are "
                                           r"other drugs: carboplatin\), or add an? iv dose "
                                           r"target for hetrombopag"):
        expand("hetrombopag 7.5 mg iv d1", TARGETS)
    # a target that does not declare its administration cannot confirm a route word
    with pytest.raises(RegimenError, match=r"rhTPO.*does not declare how it is given"):
        expand("rhTPO 15000 U sc d1", TARGETS)


def test_overlapping_infusions_into_one_state_are_refused():
    # first infusion runs t = 0 .. 2/24 d; the second starts at 0.05 d < 2/24 = 0.0833 d
    with pytest.raises(RegimenError, match=r"infusions overlap in state 'chemo': dose 1 \(carboplatin 400 mg "
                                           r"over 2h\).*dose 2 \(drugX 10 mg over 1h\) starts at t=0.05"):
        expand("carboplatin 400 mg over 2h d1 + drugX 10 mg over 1h t=0.05", TARGETS)
    back_to_back = expand("carboplatin 400 mg over 1d qd d1-3", TARGETS)  # [0,1), [1,2), [2,3)
    assert back_to_back.n_events == 3


def test_empty_regimen_gives_no_events():
    schedule = expand(Regimen.none(), TARGETS, covariates={})
    assert schedule.n_events == 0 and schedule.amounts().shape == (0,)


# ----------------------------------------------------------------------------- event tables

REGIMEN = Regimen.parse("rhTPO 300 U/kg qd d1-3 + carboplatin 400 mg/m2 iv over 30min d1"
                        " + hetrombopag 7.5 mg bid d1")


def test_to_event_table_values():
    table = to_event_table(REGIMEN, TARGETS, STATE_NAMES, COVARIATES, subject_id=7, time_unit="h")
    assert list(table.columns) == ["ID", "TIME", "AMT", "CMT", "EVID", "II", "ADDL", "RATE"]
    assert (table.ID == 7).all() and (table.EVID == 1).all() and (table.ADDL == 0).all()
    chemo = table[table.CMT == 4]  # carboplatin state index 3, 1-based 4
    # hand-computed: 720 mg over 0.5 h = 1440 mg/h
    assert chemo.AMT.tolist() == pytest.approx([720.0]) and chemo.RATE.tolist() == pytest.approx([1440.0])
    # bid on day 1 in hours: 0 and 12
    assert table[table.CMT == 1].TIME.tolist() == pytest.approx([0.0, 12.0])


@pytest.mark.parametrize("time_unit", ["day", "h"])
def test_write_then_read_gives_the_same_event_schedule(tmp_path, time_unit):
    path = write_event_table(REGIMEN, tmp_path / "events.csv", TARGETS, STATE_NAMES,
                             covariates=COVARIATES, subject_id=3, time_unit=time_unit)
    (subject, regimen), = read_event_table(path, TARGETS, STATE_NAMES, time_unit=time_unit).items()
    original, read_back = expand(REGIMEN, TARGETS), expand(regimen, TARGETS)
    assert subject == 3 and read_back.n_events == original.n_events
    np.testing.assert_allclose(read_back.time, original.time, atol=1e-12)
    np.testing.assert_array_equal(read_back.state, original.state)
    np.testing.assert_allclose(read_back.amounts(), original.amounts(COVARIATES), rtol=1e-12)
    np.testing.assert_allclose(read_back.duration, original.duration, rtol=1e-12)
    assert regimen.doses[0].unit == "ug"  # doses come back in the state's amount unit


def test_write_is_atomic_and_replaces_an_existing_file(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("old content\n")
    write_event_table(to_event_table(REGIMEN, TARGETS, STATE_NAMES, COVARIATES), path)
    assert os.listdir(tmp_path) == ["events.csv"]  # no temporary file left behind
    assert path.read_text().startswith("ID,TIME,AMT,CMT,EVID,II,ADDL,RATE")


def test_read_expands_addl_and_ii_and_skips_observations():
    table = pd.DataFrame({
        "id": [1, 1, 2], "time": [0, 12, 24], "amt": [7.5, 0, 75], "cmt": ["depot", 5, 3],
        "evid": [1, 0, 1], "ii": [24, 0, 0], "addl": [13, 0, 0], "rate": [0, 0, 0],
    })
    regimens = read_event_table(table, TARGETS, STATE_NAMES, time_unit="h")
    # ADDL 13 + the first = 14 doses, II 24 h = 1 d: same as hetrombopag 7.5 mg qd d1-14
    assert regimens[1] == Regimen.parse("hetrombopag 7.5 mg qd d1-14")
    assert regimens[2] == Regimen.parse("rhTPO 75 ug d2")  # 24 h = day 2 start


def test_read_rate_makes_an_infusion():
    table = pd.DataFrame({"TIME": [0], "AMT": [720], "CMT": [4], "EVID": [1], "RATE": [1440]})
    (dose,) = read_event_table(table, TARGETS, STATE_NAMES, time_unit="h")[1]
    assert dose.route == "infusion" and dose.duration == pytest.approx(0.5 / 24)  # 720/1440 = 0.5 h


@pytest.mark.parametrize("column, value, message", [
    ("EVID", 3, r"row 2, column EVID: EVID 3 \(reset\) is not supported"),
    ("EVID", 4, r"row 2, column EVID: EVID 4 \(reset\) is not supported"),
    ("RATE", -2, r"row 2, column RATE: modelled rate/duration not supported; give RATE explicitly"),
    ("AMT", "abc", r"row 2, column AMT: expected a finite number >= 0, given 'abc'"),
    ("TIME", -1, r"row 2, column TIME: expected a finite number >= 0"),
    ("CMT", 5, r"row 2, column CMT: state 5 \('platelets'\) has no dose target; dosable compartments: "
               r"1 \(depot: hetrombopag\), 2 \(il11_sc: rhIL-11\), 3 \(rhtpo_sc: rhTPO\), "
               r"4 \(chemo: carboplatin\)"),
    ("CMT", "plasma", r"row 2, column CMT: unknown compartment 'plasma'"),
    ("ADDL", 2, r"row 2: ADDL=2 additional doses need an interval II > 0"),
])
def test_read_row_errors_name_the_row_and_column(column, value, message):
    table = pd.DataFrame({"ID": [1, 1], "TIME": [0, 24], "AMT": [7.5, 7.5], "CMT": [1, 1],
                          "EVID": [1, 1], "II": [0, 0], "ADDL": [0, 0], "RATE": [0, 0]})
    table[column] = table[column].astype(object)
    table.loc[1, column] = value
    with pytest.raises(RegimenError, match=message):
        read_event_table(table, TARGETS, STATE_NAMES, time_unit="h")


def test_read_row_error_from_a_file_names_the_line(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("ID,TIME,AMT,CMT,EVID\n1,0,7.5,1,1\n1,1,.,1,1\n")
    with pytest.raises(RegimenError, match=r"row 2 \(line 3 of .*events.csv\), column AMT: value missing"):
        read_event_table(path, TARGETS, STATE_NAMES, time_unit="day")


def test_read_refuses_missing_columns():
    with pytest.raises(RegimenError, match=r"missing \['CMT'\]"):
        read_event_table(pd.DataFrame({"TIME": [0], "AMT": [1]}), TARGETS, STATE_NAMES, time_unit="day")


def test_event_schedule_equality_and_read_only_arrays():
    schedule = expand(REGIMEN, TARGETS)
    assert schedule == expand(str(REGIMEN), TARGETS)
    assert isinstance(schedule, EventSchedule) and not schedule.time.flags.writeable
    assert math.isclose(schedule.amount_per_scale[schedule.drug.index("rhTPO")], 300 / 280)  # U/kg -> ug/kg


def test_a_dose_a_unit_slip_away_from_the_label_warns_and_a_dose_finding_one_does_not():
    # a Python-API user test (2026-12-04): "hetrombopag 7.5 g qd" (1,000 times the CIT
    # dose) and "rhTPO 15000 mg" simulated without a word. The largest labelled doses
    # (plateletpd.dosing.usual_doses, with their sources) judge each single dose in the same
    # kind of unit; more than 10 times is questioned, a tenfold exploration is not
    import warnings

    from plateletpd.dosing.usual_doses import ImplausibleDoseWarning

    model = pp.load_model("cit_marrow_reserve")

    def questioned(text):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            expand(text, model.dose_targets)
        return [str(w.message) for w in caught if issubclass(w.category,
                                                             ImplausibleDoseWarning)]
    slip = questioned("hetrombopag 7.5 g qd d1-14")
    assert len(slip) == 1 and "500 times the largest labelled dose (15 mg" in slip[0]
    assert questioned("rhTPO 15000 mg d1") and questioned("romiplostim 250 ug/kg d1")
    assert questioned("hetrombopag 75 mg qd d1-14") == []      # 5 times: explored in tests
    assert questioned("rhTPO 150000 U d1") == []                # 10 times: not beyond
    assert questioned("rhIL-11 3 mg d1") == []                  # absolute against per kg
    assert questioned("rhTPO 300 U/kg d1") == []
