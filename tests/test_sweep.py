"""Dosing sweeps: grid parsing, identity with the plain trial, monotone dose response."""

from dataclasses import replace

import pytest

import plateletpd as pp
from plateletpd.study.sweep import parse_grid, run_sweep, write_sweep
from plateletpd.study.trial import bundled_trial, load_trial_spec, run_trial

ARM = "hetrombopag 7.5 mg"  # an arm of trials/yuan2025.toml


@pytest.fixture(scope="module")
def spec():
    return load_trial_spec(bundled_trial("yuan2025"), subjects=120, seed=3)


@pytest.fixture(scope="module")
def sweep(spec):
    return run_sweep(spec, parse_grid(["dose=2.5,7.5,15", "max_days=7,14"]), [ARM])


def test_the_cell_at_the_arms_own_dosing_reproduces_the_trial(spec, sweep):
    design = next(a for a in spec.arms if a.name == ARM)
    plain = run_trial(replace(spec, arms=(design,))).summary.iloc[0]
    cell = sweep[(sweep.dose == 7.5) & (sweep.max_days == 14)].iloc[0]
    assert cell["response_pct"] == plain["response_pct"]
    assert cell["mean_plt_day_14"] == plain["mean_plt_day_14"]
    assert cell["regimen"] == "hetrombopag 7.5 mg"


def test_response_does_not_fall_with_dose_on_common_patients(sweep):
    # the model's hetrombopag effect rises with dose and saturates (model card), and every
    # cell treats the same virtual patients, so the day-14 count cannot fall with dose
    for _, part in sweep.groupby("max_days"):
        ordered = part.sort_values("dose")
        assert ordered["mean_plt_day_14"].is_monotonic_increasing
        assert ordered["response_pct"].is_monotonic_increasing


def test_outputs(sweep, spec, tmp_path):
    paths = write_sweep(sweep, spec, {"dose": [2.5, 7.5, 15], "max_days": [7, 14]},
                        "response_pct", tmp_path)
    assert {p.name for p in paths} >= {"sweep.csv", "provenance.json"}
    assert any(p.name.startswith("heatmap_") for p in paths)
    with pytest.raises(pp.PlateletPDError, match="did you mean 'response_pct'"):
        write_sweep(sweep, spec, {}, "response%", tmp_path)


@pytest.mark.parametrize("items, fragment", [
    (["doze=1,2"], "did you mean 'dose'"),
    (["dose=1,two"], "values must be numbers"),
    (["dose"], "NAME=V1,V2"),
    ([], "at least one --grid"),
])
def test_bad_grids_are_refused(items, fragment):
    with pytest.raises(pp.PlateletPDError, match=fragment):
        parse_grid(items)


def test_unknown_arm_and_drug_are_refused(spec):
    with pytest.raises(pp.PlateletPDError, match="no arm 'hetrombopag'"):
        run_sweep(spec, parse_grid(["dose=5"]), ["hetrombopag"])
    with pytest.raises(pp.PlateletPDError, match="has no drug 'rhTPO'"):
        run_sweep(spec, parse_grid(["dose:rhTPO=5"]), [ARM])


def test_dose_sweeps_skip_untreated_arms_and_check_the_endpoint_early(spec, monkeypatch):
    import plateletpd.study.sweep as sweep_module

    table = run_sweep(replace(spec, subjects_per_arm=20), parse_grid(["dose=5"]))
    # trials/yuan2025: 4 treated arms, one of them a combination, which a plain "dose"
    # leaves out (it names no drug: a sweep user test, 2026-12-07, found it varied the
    # first drug unsaid)
    assert "untreated" not in set(table.arm) and len(table) == 3
    assert not any("+" in arm for arm in table.arm)
    calls = []

    def counting(trial_spec):
        calls.append(1)
        return run_trial(trial_spec)

    monkeypatch.setattr(sweep_module, "run_trial", counting)
    with pytest.raises(pp.PlateletPDError, match="did you mean 'response_pct'"):
        run_sweep(replace(spec, subjects_per_arm=20), parse_grid(["dose=5,7.5,15"]), [ARM],
                  endpoint="respons_%")
    assert len(calls) == 1  # refused after the first of three cells


def test_a_paired_trials_other_arm_is_swept_on_the_trials_own_patients(tmp_path):
    # a sweep user test (2026-12-04): sweeping a paired trial's non-reference arm failed
    # with "arm ... (209 enrolled) and the reference arm 'untreated' (0) differ". A paired
    # trial gives every arm the same patients, so the cell at the arm's own dose is that
    # arm of the whole paired trial, to the last digit
    text = bundled_trial("yuan2025").read_text().replace(
        "[trial]", '[trial]\ndesign = "paired"', 1)
    path = tmp_path / "paired.toml"
    path.write_text(text)
    paired = load_trial_spec(path, subjects=60, seed=3)
    table = run_sweep(paired, parse_grid(["dose=7.5"]), [ARM])
    whole = run_trial(paired).summary.loc[ARM]
    assert table.iloc[0]["response_pct"] == whole["response_pct"]
    assert table.iloc[0]["mean_plt_day_14"] == whole["mean_plt_day_14"]


def test_entry_below_is_refused_on_a_trial_enrolled_by_eligibility_rules(spec):
    # the same test: --grid entry_below=50,75 on yuan2025 (enrolled by [[eligibility]] on
    # its course) gave the same 83.94% in every cell, silently
    from plateletpd.errors import PlateletPDError

    assert spec.extra.get("course") is not None
    with pytest.raises(PlateletPDError, match=r"entry_below.*\[\[eligibility\]\] rules"):
        run_sweep(spec, parse_grid(["entry_below=50,75"]), [ARM])


def test_start_delays_compared_from_the_first_dose_are_warned_not_from_entry(spec):
    from plateletpd.study.sweep import StartDelayWarning, check_design_dimensions

    with pytest.warns(StartDelayWarning, match=r'day0 = "entry"'):
        assert check_design_dimensions(spec, ["start_delay"], "--grid")
    from_entry = replace(spec, response={**spec.response, "day0": "entry"})
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", StartDelayWarning)
        assert check_design_dimensions(from_entry, ["start_delay", "dose"], "--grid") == []


def test_a_sweeps_outputs_carry_its_start_delay_caveat(spec, tmp_path):
    # review (2026-12-04): the warning was printed but the written sweep did not say it, so a
    # folder read later showed later starts "responding" better without the reason
    import json
    import warnings

    from plateletpd.study.sweep import StartDelayWarning

    grid = parse_grid(["start_delay=1,2"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StartDelayWarning)
        table = run_sweep(replace(spec, subjects_per_arm=15), grid, [ARM])
    write_sweep(table, spec, grid, "response_pct", tmp_path / "s")
    record = json.loads((tmp_path / "s" / "provenance.json").read_text())
    assert any('day0 = "entry"' in caveat for caveat in record["caveats"])


def test_a_dose_of_zero_is_the_untreated_control_on_the_same_patients(spec):
    # a user test (2026-12-04): "--grid dose=0,2.5" was refused, so a sweep had no control
    # on its own patients. Dose 0 drops the drug: the cell is the trial's untreated arm,
    # equal to it on the same patients (every sweep cell treats the seed's patients)
    table = run_sweep(spec, {"dose": [0, 7.5]}, [ARM])
    zero = table[table.dose == 0].iloc[0]
    assert zero["regimen"] == "none"
    untreated = next(a for a in spec.arms if not a.treatment)
    control = run_sweep(spec, {"start_delay": [untreated.start_delay]}, [untreated.name])
    for column in ("response_pct", "mean_plt_day_14", "enrolled"):
        assert zero[column] == control.iloc[0][column], column
    assert table[table.dose == 7.5].iloc[0]["response_pct"] > zero["response_pct"]

    # an arm whose dose rules change the drug cannot drop it: said, not a rule error
    with pytest.raises(pp.PlateletPDError, match="leaves the drug out of arm 'HETROM-5'"):
        run_sweep(load_trial_spec(bundled_trial("itp_phase3"), subjects=10),
                  {"dose": [0, 5]}, ["HETROM-5"])


def test_a_combination_swept_by_a_plain_dose_is_refused_and_by_its_drug_is_swept(spec):
    # a sweep user test (2026-12-07): --grid dose=... on hetrombopag + rhTPO silently varied
    # hetrombopag; now the drug must be named, and a misspelt one is answered with the
    # closest of the arm's drugs
    combination = next(a.name for a in spec.arms if len(a.treatment) > 1)
    small = replace(spec, subjects_per_arm=20)
    with pytest.raises(pp.PlateletPDError, match=r"gives hetrombopag and rhTPO: say which "
                       r"drug's dose varies, e.g. --grid dose:hetrombopag="):
        run_sweep(small, parse_grid(["dose=5"]), [combination])
    with pytest.raises(pp.PlateletPDError, match=r"no drug 'hetrombopg' \(did you mean "
                       r"'hetrombopag'\?\)"):
        run_sweep(small, parse_grid(["dose:hetrombopg=5"]), [combination])
    table = run_sweep(small, parse_grid(["dose:hetrombopag=0,5"]), [combination])
    assert list(table.arm) == [combination] * 2


def test_a_plain_dose_over_combination_arms_only_names_dose_drug(spec):
    # trials/yuan2025 cut to its combination arm: a plain "dose" has no arm of one drug to
    # sweep, and the error says how to name the drug (a sweep user test, 2026-12-07)
    combination = [a for a in spec.arms if len(a.treatment) > 1]
    only = replace(spec, arms=tuple(combination), subjects_per_arm=20,
                   reference_arm=combination[0].name)
    with pytest.raises(pp.PlateletPDError, match=r"every treated arm gives more than one "
                       r"drug: name the one whose dose varies, e\.g\. --grid dose:hetrombopag="):
        run_sweep(only, parse_grid(["dose=5"]))
