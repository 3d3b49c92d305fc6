"""The report states each arm's design in words (a blind user test, 2026-12-07, had to read
patients.csv to see that a hold rule had acted). Each expected line is written by hand from
the trial file it describes; a change to the file or to the wording fails it.
"""

from pathlib import Path

import pytest
from helpers import one_cycle

from plateletpd.study.trial import arm_design_lines, load_trial_spec

pytestmark = pytest.mark.filterwarnings("ignore::plateletpd.study.trial.StopRuleWarning")
ROOT = Path(__file__).resolve().parents[1]


def _lines(spec):
    lines = arm_design_lines(spec)
    assert lines[0] == "Each arm as the trial file states it:" and lines[-1] == ""
    return {line.split(":")[0][2:]: line for line in lines[2:-1]}


def test_a_one_cycle_trial_with_stops_and_a_transfusion_trigger(tmp_path):
    # trials/yuan2025.toml in its one-cycle form (tests/helpers.py): entry below 75 at the
    # crossing, the next morning; rhTPO stopped at 100 or a rise of 50, at most 14 days
    path = tmp_path / "yuan.toml"
    path.write_text(one_cycle((ROOT / "trials" / "yuan2025.toml").read_text()))
    lines = _lines(load_trial_spec(path))
    assert lines["rhTPO 15000 U"] == (
        "- rhTPO 15000 U: treatment `rhTPO 15000 U` from day 0, the first treatment morning "
        "(daily); stopped at the first morning count >= 100 or a rise >= 50 over the count "
        "at the start, at most 14 days; enrolled on a count below 75 (at its crossing); "
        "treated 1 day later; transfused (`platelet_transfusion 1 dose`) at a visit count "
        "below 10.")
    # an untreated arm is not "treated" later (a user test, 2026-12-07)
    assert lines["untreated"] == (
        "- untreated: no treatment from day 0; enrolled on a count below 75 (at its "
        "crossing); day 0 1 day later; transfused (`platelet_transfusion 1 dose`) at a visit "
        "count below 10.")


def test_dose_rules_and_a_baseline_entry_without_chemotherapy():
    # trials/itp_phase3.toml: no chemotherapy, enrolled on the baseline count (entry_day 0)
    lines = _lines(load_trial_spec(ROOT / "trials" / "itp_phase3.toml"))
    line = lines["HETROM-2.5"]
    assert line.startswith("- HETROM-2.5: treatment `hetrombopag 2.5 mg` from day 0, the "
                           "first treatment morning (daily); at most 56 days; ")
    assert ("at each visit from day 14: increase hetrombopag by 2.5 mg when the count is "
            "below 50") in line
    assert "at each visit: hold every drug when the count is at or above 250" in line
    assert line.endswith("enrolled on a count below 30 on day 0; treated the same day.")


def test_a_dose_on_its_own_days_on_a_course():
    # trials/soff2019_romiplostim.toml: weekly romiplostim, enrolled by the course's rules
    lines = _lines(load_trial_spec(ROOT / "trials" / "soff2019_romiplostim.toml"))
    assert lines["romiplostim"].startswith(
        "- romiplostim: treatment `romiplostim 2 ug/kg weekly d1-28` from day 0, the first "
        "treatment morning (each dose on its own days)")
    assert "enrolled by the trial's [[eligibility]] rules on the untreated course" in \
        lines["observation"]


def test_a_course_without_eligibility_rules_enrols_everyone_in_words(tmp_path):
    # trials/soff2019_romiplostim.toml with its [[eligibility]] rules removed: a course that
    # enrols everyone on its first day is not said to enrol "by the trial's rules" (a user
    # test, 2026-12-07, read that of a self-controlled file with no rules)
    text = (ROOT / "trials" / "soff2019_romiplostim.toml").read_text()
    kept, skipping = [], False
    for line in text.splitlines():
        if line.strip() == "[[eligibility]]":
            skipping = True
            continue
        if skipping and line.startswith("["):
            skipping = False
        if not skipping:
            kept.append(line)
    path = tmp_path / "no_rules.toml"
    path.write_text("\n".join(kept) + "\n")
    lines = _lines(load_trial_spec(path))
    assert "everyone enrolled on the course's first day (no [[eligibility]] rules)" in \
        lines["observation"]
    assert "by the trial's [[eligibility]] rules" not in lines["observation"]


def test_day_0_at_enrolment_is_said_in_the_arm_lines_and_the_data_dictionary(tmp_path):
    # a sweep user test (2026-12-07) ran day0 = "entry" and read "from day 0, the first
    # treatment morning" in the arm lines and "14 days after the start of treatment" in the
    # data dictionary, both wrong there: day 0 is the enrolment day
    from plateletpd.study.trial import data_dictionary

    text = one_cycle((ROOT / "trials" / "yuan2025.toml").read_text())
    assert "[response]\n" in text
    path = tmp_path / "entry.toml"
    path.write_text(text.replace("[response]\n", '[response]\nday0 = "entry"\n', 1))
    spec = load_trial_spec(path)
    assert spec.response["day0"] == "entry"
    lines = _lines(spec)
    assert ("treatment `rhTPO 15000 U` from the first treatment morning, day 0 being "
            "enrolment ([response] day0 = \"entry\")") in lines["rhTPO 15000 U"]
    dictionary = data_dictionary(spec=spec)
    assert not dictionary.description.str.contains("the start of treatment").any()
    day14 = dictionary[(dictionary.file == "patients.csv")
                       & (dictionary.column == "plt_day_14")].description.iloc[0]
    assert day14.startswith("count 14 days after day 0 (enrolment")
    # with the default day 0 the wording is the treatment's
    assert data_dictionary(spec=load_trial_spec(ROOT / "trials" / "yuan2025.toml")) \
        .description.str.contains("the start of treatment").any()
