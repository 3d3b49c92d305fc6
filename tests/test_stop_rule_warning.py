"""A stop rule part that can never act first is named (`StopRuleWarning`), and kept as
written: a user test (2026-12-07, PMID 19102944) gave both drugs the consensus stop "PLT >=
100 or a rise >= 50" with entry at the crossing below 75, ran with and without the rise,
and got the same numbers without knowing why."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_rise_that_can_never_stop_first_is_warned_and_kept(tmp_path, capsys):
    # "until PLT >= 100 or a rise >= 50" with entry at the crossing below 75 (a user test,
    # 2026-12-07, ran with and without the rise and got the same numbers): 75 + 50 >= 100,
    # so the rise never acts first; with an entry band (a lower count at entry) it can
    import warnings

    from plateletpd.study.trial import StopRuleWarning, load_trial_spec

    text = (ROOT / "trials" / "pmid19102944_rhtpo_rhil11.toml").read_text()
    course = text[text.index("[chemotherapy]"):text.index("[[eligibility]]")]
    eligibility = text[text.index("[[eligibility]]"):text.index("[enrolment]")]
    single = text.replace(course, "").replace(eligibility, "").replace(
        "[enrolment]\n", "[enrolment]\nentry_below = 75\nchemotherapy = \"chemotherapy 1 dose\"\n", 1)
    path = tmp_path / "single.toml"
    path.write_text(single)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spec = load_trial_spec(path)
    rules = [w for w in caught if issubclass(w.category, StopRuleWarning)]
    assert len(rules) == 2 and "stop_rise = 50 can never stop" in str(rules[0].message)
    assert all(arm.stop_rise == 50 for arm in spec.arms)   # kept as written
    # a rise of 20 (75 + 20 < 100) can act first: no warning
    path.write_text(single.replace("stop_rise = 50", "stop_rise = 20"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_trial_spec(path)
    assert not [w for w in caught if issubclass(w.category, StopRuleWarning)]
