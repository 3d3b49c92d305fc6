"""Data rows whose cycles are counted from enrolment ("PLT <50, cycles 1-3 after
enrolment", "lowest count over study cycles 1-3"): RECITE 2026 (NCT03362177) enrolled
patients after cycle 2, 3 or 4 and counted its endpoint over "on-trial cycles 2-3", and a
user test (2026-12-07, a 2021 thesis) its "observation periods 1 to 3" from the index cycle;
absolute cycle numbers cannot say either when patients enrol in different cycles.

Properties that could fail, on a constructed patient table whose answers are counted by
hand: a study cycle is the j-th cycle given after the enrolment day (a cycle given on that
day is not after it), the denominator is the patients given study cycle a, the same text
without the enrolment words reads absolute cycles, and course events counted from
enrolment are refused with the fix (the after_entry flags).
"""

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from plateletpd.study.check import row_reader
from plateletpd.study.cycles import ChemotherapyCourse
from plateletpd.study.endpoints import parse_incidence, study_cycles

RESPONSE = {"threshold": 100.0, "rise": None, "by_day": 21.0}
COURSE = ChemotherapyCourse(cycles=5, cycle_days=21, delay_below=100)


def row(threshold, endpoint="incidence_proportion", statistic="proportion"):
    return SimpleNamespace(endpoint=endpoint, threshold=threshold, statistic=statistic,
                           day=math.nan, n=math.nan)


def table() -> pd.DataFrame:
    """Three patients, five cycles. Patient 0 enrols on day 42 (cycle 3 held: given day
    49), patient 1 on day 63 (cycle 4 held: given day 70; cycle 5 on day 91), patient 2 on
    day 21, the day its cycle 2 is given (so cycle 2 is not after enrolment: its study
    cycle 1 is cycle 3). Nadirs per cycle as listed."""
    days = [[0, 21, 49, 70, 91], [0, 21, 42, 70, 91], [0, 21, 42, 63, 84]]
    nadirs = [[90, 60, 40, 80, 120], [150, 130, 70, 45, 30], [100, 30, 140, 110, 48]]
    transfused = [[0, 0, 1, 0, 0], [0, 0, 0, 0, 1], [0, 1, 0, 0, 0]]
    columns = {"enrolment_day": [42.0, 63.0, 21.0]}
    for c in range(5):
        columns[f"cycle{c + 1}_day"] = [float(d[c]) for d in days]
        columns[f"cycle{c + 1}_nadir"] = [float(n[c]) for n in nadirs]
        columns[f"cycle{c + 1}_transfused"] = [bool(t[c]) for t in transfused]
    return pd.DataFrame(columns)


def test_study_cycles_are_the_cycles_given_after_enrolment():
    numbers = study_cycles(table(), 1, 3, 5)
    # patient 0: cycles 3, 4, 5; patient 1: cycles 4, 5, none; patient 2: 3, 4, 5
    assert numbers.tolist() == [[3, 4, 5], [4, 5, 0], [3, 4, 5]]


@pytest.mark.parametrize("text, share", [
    # below 50 in study cycles 1-2: patient 0 (cycle 3: 40), patient 1 (cycle 4: 45, cycle
    # 5: 30), not patient 2 (cycles 3-4: 140, 110)
    ("PLT <50, cycles 1-2 after enrolment", 2 / 3),
    ("PLT <50, on-study cycles 1-2", 2 / 3),
    # study cycle 3: given to patients 0 (cycle 5: 120) and 2 (cycle 5: 48), not 1
    ("PLT <50, study cycle 3", 1 / 2),
    # the same text without the enrolment words: absolute cycles 1-2 (patients 1 no,
    # 0 no (90, 60), 2 yes (30))
    ("PLT <50, cycles 1-2", 1 / 3),
    # transfusions in study cycles 1-2: patient 0 (cycle 3), patient 1 (cycle 5)
    ("platelet transfusion, cycles 1-2 after enrolment", 2 / 3),
])
def test_incidence_over_study_cycles(text, share):
    reader = row_reader(row(text), RESPONSE, COURSE)
    assert not isinstance(reader, str), reader
    assert reader(table()) == pytest.approx(share, abs=1e-12)


def test_nadir_rows_over_study_cycles():
    # each patient's lowest nadir over study cycles 1-3, then the mean: patient 0 min(40,
    # 80, 120) = 40, patient 1 min(45, 30) = 30, patient 2 min(140, 110, 48) = 48
    reader = row_reader(row("lowest count over study cycles 1-3", endpoint="nadir_plt",
                            statistic="mean"), RESPONSE, COURSE)
    assert reader(table()) == pytest.approx((40 + 30 + 48) / 3)
    # their mean nadirs instead: (80, 37.5, 98.667)
    reader = row_reader(row("mean nadir, cycles 1-3 after enrolment", endpoint="nadir_plt",
                            statistic="mean"), RESPONSE, COURSE)
    assert reader(table()) == pytest.approx((80 + 37.5 + (140 + 110 + 48) / 3) / 3)
    assert "study cycle" in reader.reading


def test_course_events_from_enrolment_are_refused_with_the_fix():
    message = parse_incidence("dose delay, cycles 2-3 after enrolment")
    assert isinstance(message, str) and "after_entry_cycle" in message
