"""Paired designs ([trial] design = "paired"): every arm simulates the same virtual patients,
and differences.csv pairs them per patient (docs/trial_files.md, "Paired designs")."""

from dataclasses import replace

import numpy as np
import pytest
from helpers import one_cycle

from plateletpd.study.trial import (
    TrialSpecError,
    _differences,
    bundled_trial,
    load_trial_spec,
    run_trial,
)

SUBJECTS = 40  # small and fast; enough enrolled patients for a t interval


def _paired_spec(tmp_path, arms: slice = slice(0, 2), seed: int = 3):
    """yuan2025.toml in its one-cycle form (an entry level per arm) with design = "paired"
    (read from the file, so the schema is used)."""
    text = one_cycle(bundled_trial("yuan2025").read_text()).replace(
        "[trial]\n", '[trial]\ndesign = "paired"\n', 1)
    path = tmp_path / "paired.toml"
    path.write_text(text)
    spec = load_trial_spec(path, subjects=SUBJECTS, seed=seed)
    return replace(spec, arms=spec.arms[arms])


@pytest.fixture(scope="module")
def paired(tmp_path_factory):
    # untreated (reference) and rhTPO 15000 U: the first two arms of yuan2025.toml
    return run_trial(_paired_spec(tmp_path_factory.mktemp("paired")))


def test_every_arm_enrols_the_same_patients_with_the_same_pretreatment_counts(paired):
    untreated, treated = (table.set_index("patient") for _, table in
                          paired.subjects.groupby("arm", sort=False))
    assert len(untreated) > 5 and list(untreated.index) == list(treated.index)
    # before the first treatment dose nothing differs: same parameters, same chemotherapy,
    # so the same entry (and start) day, exactly
    np.testing.assert_array_equal(untreated.start_day, treated.start_day)
    # the count there agrees to the integrator's tolerance (DormandPrince5 rtol = atol = 1e-6,
    # study/cohort.py): the adaptive steps see the arm's later doses, so not bit for bit
    np.testing.assert_allclose(untreated.platelets_at_start, treated.platelets_at_start,
                               rtol=1e-6)
    # ... and treatment changes the course afterwards (else the test below proves nothing)
    assert not np.array_equal(untreated.plt_day_14, treated.plt_day_14)


def test_paired_interval_is_narrower_than_the_unpaired_one_on_the_same_patients(paired):
    row = paired.differences.iloc[0]
    unpaired = _differences(paired.subjects, paired.spec.reference_arm).iloc[0]
    # the means agree: a mean of differences is a difference of means (same patients)
    assert row.plt_day_14_difference == pytest.approx(unpaired.plt_day_14_difference)
    assert row.plt_day_14_difference > 0  # rhTPO raises the day-14 count
    width = row.plt_day_14_difference_upper - row.plt_day_14_difference_lower
    width_unpaired = (unpaired.plt_day_14_difference_upper
                      - unpaired.plt_day_14_difference_lower)
    # a patient's two courses are positively correlated (same parameters), so the variance
    # of the difference is below the sum of the variances: the property pairing buys
    assert width < width_unpaired
    assert row.paired_patients == (paired.subjects.arm == "untreated").sum()
    assert 0 <= row.responded_in_arm_only <= row.discordant_pairs <= row.paired_patients


def test_an_arm_against_itself_differs_by_exactly_zero(tmp_path):
    spec = _paired_spec(tmp_path)
    twin = replace(spec.arms[0], name="untreated again")
    result = run_trial(replace(spec, arms=(spec.arms[0], twin)))
    row = result.differences.iloc[0]
    for name in ("response_difference_pct_points", "plt_day_14_difference"):
        assert row[name] == row[f"{name}_lower"] == row[f"{name}_upper"] == 0.0
    assert row.discordant_pairs == 0


def test_same_seed_gives_the_same_paired_trial(tmp_path, paired):
    again = run_trial(_paired_spec(tmp_path))
    assert again.subjects.equals(paired.subjects)
    assert again.differences.equals(paired.differences)


def test_arms_that_enrol_different_patients_are_a_clear_error(tmp_path):
    spec = _paired_spec(tmp_path)
    # a different entry rule per arm: nadirs of these patients span about 14 to 70 (seed 3,
    # fit of 2026-12-01 20:52 UTC), so entry below 40 enrols some and not others
    stricter = replace(spec.arms[1], entry_below=40.0)
    with pytest.raises(TrialSpecError, match="same patients.*design = \"parallel\""):
        run_trial(replace(spec, arms=(spec.arms[0], stricter)))


def test_unknown_design_is_refused(tmp_path):
    text = bundled_trial("yuan2025").read_text().replace("[trial]\n",
                                                         '[trial]\ndesign = "crossed"\n', 1)
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(TrialSpecError, match="paired"):
        load_trial_spec(path)


def test_paired_differences_file_matches_its_data_dictionary(paired, tmp_path):
    import pandas as pd

    from plateletpd.study.trial import write_trial

    write_trial(paired, tmp_path / "out")
    dictionary = pd.read_csv(tmp_path / "out" / "data_dictionary.csv", keep_default_na=False)
    table = pd.read_csv(tmp_path / "out" / "differences.csv")
    assert list(dictionary[dictionary.file == "differences.csv"].column) == list(table.columns)
    assert "paired" in (tmp_path / "out" / "report.md").read_text()


def test_the_documented_worked_example_gives_the_numbers_stated(tmp_path):
    import re
    from pathlib import Path

    docs = (Path(__file__).resolve().parents[1] / "docs" / "trial_files.md").read_text()
    section = docs.split("## Paired designs")[1]
    path = tmp_path / "crossover.toml"
    path.write_text(re.search(r"```toml\n(.*?)```", section, re.DOTALL).group(1))
    result = run_trial(load_trial_spec(path))
    row = result.differences.iloc[0]
    # the numbers docs/trial_files.md states for this example (seed 7, 100 patients,
    # cit_marrow_reserve with its bundled fit and the fit's between-patient CVs)
    assert list(result.summary.enrolled) == [71, 71]  # 29 never below 75
    assert row.discordant_pairs == row.responded_in_arm_only == 6
    assert round(row.response_difference_pct_points, 1) == 8.5
    assert [round(row[f"plt_day_14_difference{end}"], 1) for end in ("", "_lower", "_upper")] \
        == [119.4, 114.2, 124.6]
    unpaired = _differences(result.subjects, "untreated").iloc[0]
    assert [round(unpaired[f"plt_day_14_difference_{end}"], 1) for end in ("lower", "upper")] \
        == [102.1, 136.7]
