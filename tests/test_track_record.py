"""A trial's per-arm track record: how the model has done on recorded published arms that
gave the same drugs (plateletpd.study.validation_results.track_record), and the drugs an arm
gives (ArmDesign.drugs)."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from plateletpd.study.cohort import ArmDesign, Rescue, Titration
from plateletpd.study.trial import (bundled_trial, load_trial_spec, record_arm_drugs,
                                    track_record_summary)
from plateletpd.study.validation_results import (recorded_validation, track_record,
                                                 track_record_lines, validation_report_lines)


def test_an_arm_gives_its_treatment_support_and_titration_drugs_not_its_chemotherapy():
    design = ArmDesign(name="both", chemotherapy="chemotherapy 1 dose d1",
                       treatment=("rhTPO 15000 U", "rhIL-11 2 mg q12h"),
                       support=("hetrombopag 7.5 mg qd d2-11",), support_cycles=(2,),
                       titrations=(Titration(day=7, below=50, dose="romiplostim 4 ug/kg"),),
                       rescue=Rescue(below=10))
    assert design.drugs == {"rhTPO", "rhIL-11", "hetrombopag", "romiplostim"}
    assert ArmDesign(name="untreated", rescue=Rescue(below=10)).drugs == frozenset()


# An invented validation table (the shape `plateletpd validate` writes; the numbers are
# made up to exercise the selection, not data): trial t1's arm "drug" and trial t2's arm
# "drug arm" give rhTPO, t2's "placebo" nothing, t2's "other" eltrombopag.
ARM_DRUGS = {("t1", "drug"): frozenset({"rhTPO"}), ("t2", "drug arm"): frozenset({"rhTPO"}),
             ("t2", "placebo"): frozenset(), ("t2", "other"): frozenset({"eltrombopag"})}
ROWS = [  # trial, trial_arm, role, endpoint, versus, observed_percentile, inside
    ("t1", "drug", "held out", "nadir_plt", None, 10.0, True),           # count side 10
    ("t1", "drug", "not fitted", "duration_below_days", None, 80.0, False),  # 100 - 80 = 20
    ("t1", "drug", "calibration", "response_proportion", None, 5.0, True),  # a fitted row
    ("t2", "drug arm", "held out", "incidence_proportion", None, 30.0, True),  # 70
    ("t2", "drug arm", "held out", "time_to_peak_days", None, 40.0, True),  # timing: none
    ("t2", "drug arm", "held out", "plt_count", "placebo", 95.0, True),   # a comparison
    ("t2", "drug arm", "held out", "plt_count", None, 90.0, True),        # count side 90
    ("t2", "other", "held out", "nadir_plt", None, 1.0, False),           # another drug
    ("t2", "placebo", "held out", "nadir_plt", None, 60.0, True),         # no drug
    ("t9", "drug", "held out", "nadir_plt", None, 50.0, True),            # trial not read
]


def _table():
    return pd.DataFrame(ROWS, columns=["trial", "trial_arm", "role", "endpoint", "versus",
                                       "observed_percentile", "inside"])


def test_the_track_record_takes_the_rows_no_fit_used_of_arms_with_the_same_drugs():
    found = track_record(_table(), {"RHTPO"}, ARM_DRUGS)  # any case
    kept = found.rows
    assert list(zip(kept.trial, kept.endpoint, kept.versus.fillna(""))) == [
        ("t1", "nadir_plt", ""), ("t1", "duration_below_days", ""),
        ("t2", "incidence_proportion", ""), ("t2", "time_to_peak_days", ""),
        ("t2", "plt_count", "")]  # not the comparison with placebo
    # a higher nadir or count means more platelets; more days below or a higher incidence
    # fewer: their percentiles are turned (100 - p); timing points neither way
    assert np.allclose(kept.count_side_percentile, [10, 20, 70, np.nan, 90], equal_nan=True)
    assert (found.optimistic, found.pessimistic, found.inside) == (2, 2, 4)
    assert found.directional.median() == 45.0
    assert found.unmatched == 1 and found.studies == ["t1", "t2"]
    assert found.sign_test_p == 1.0  # 2 against 2
    untreated = track_record(_table(), set(), ARM_DRUGS)
    assert list(untreated.rows.trial_arm) == ["placebo"]


def test_a_one_sided_record_is_called_optimistic_and_a_balanced_one_is_not():
    # ten invented held-out rows all below the model's median on the count scale:
    # a two-sided sign test gives 2 x 0.5**10 = 0.00195
    table = pd.DataFrame({"trial": "t1", "trial_arm": "drug", "role": "held out",
                          "endpoint": "nadir_plt", "observed_percentile": 20.0,
                          "inside": True}, index=range(10))
    found = track_record(table, {"rhTPO"}, ARM_DRUGS)
    assert found.sign_test_p == pytest.approx(2 * 0.5 ** 10)
    arm = SimpleNamespace(name="my rhTPO arm", drugs=frozenset({"rhTPO"}))
    text = "\n".join(track_record_lines(table, [arm], ARM_DRUGS, trial_name="t1"))
    assert ("the model more optimistic than published (more platelets, fewer days below or "
            "events; count-side percentile below 50) in 10 of 10 (median percentile 20")\
        in text
    assert "too optimistic for such arms" in text
    assert "This trial's own published rows are among them" in text
    balanced = table.assign(observed_percentile=[20.0, 80.0] * 5)
    text = "\n".join(track_record_lines(balanced, [arm], ARM_DRUGS))
    assert "in 5 of 10" in text and "too optimistic for such arms" not in text
    nothing = SimpleNamespace(name="new drug", drugs=frozenset({"avatrombopag"}))
    assert "has not been tested on such an arm" in "\n".join(
        track_record_lines(table, [nothing], ARM_DRUGS))


def test_the_bundled_record_matches_arms_by_their_trial_files():
    # validation/results/cit_marrow_reserve.csv: Xu 2018's rhTPO arm is held out, Yuan
    # 2025's and the NSCLC study's rhTPO arms are calibration rows (fits/
    # cit_marrow_reserve_calibration), Zhu 2021 compares eltrombopag with rhTPO
    table, record = recorded_validation("cit_marrow_reserve")
    drugs = record_arm_drugs(record)
    assert drugs[("xu2018_rhtpo_rhil11_prophylaxis_virtual", "rhTPO 15000 U d2,4,6,9")] \
        == {"rhTPO"}
    found = track_record(table, {"rhTPO"}, drugs)
    assert "xu2018_rhtpo_rhil11_prophylaxis_virtual" in found.studies
    assert not {"yuan2025_virtual", "nsclc_rhtpo_2011_virtual"} & set(found.studies)
    assert set(found.rows.role) <= {"not fitted", "held out"}
    assert found.rows.versus.isna().all()  # Zhu 2021's comparisons are left out
    assert found.unmatched == 0  # every check's trial file is bundled and read


def test_a_trial_report_and_the_terminal_give_each_arm_its_track_record():
    spec = load_trial_spec(bundled_trial("yuan2025"))
    text = "\n".join(validation_report_lines(spec.model, arms=spec.arms, trial_name=spec.name,
                                             arm_drugs=record_arm_drugs))
    assert "### This trial's arms against the record" in text
    for design in spec.arms:
        assert f"- **{design.name}** (" in text
    lines = track_record_summary(spec)
    assert [line.split(" (")[0] for line in lines] == [design.name for design in spec.arms]
    # a model without a recorded validation (validation/results has none for
    # cit_thrombopoiesis) gets no track record at all
    assert track_record_summary(spec.__class__.create(
        seed=1, model="cit_thrombopoiesis", arms=[{"name": "a", "treatment": []}],
        response={"threshold": 100, "by_day": 14})) == []


def test_the_table_by_drug_gives_each_drug_sets_track_record():
    from plateletpd.study.validation_results import track_record_table

    table = track_record_table(_table(), ARM_DRUGS)
    # the invented table above: one untreated row (placebo) and the rhTPO rows; eltrombopag's
    # arm has a held-out row too; t9's arm is not in ARM_DRUGS
    assert list(table.drugs) == ["no drug", "eltrombopag", "rhTPO"]
    rhtpo = table.set_index("drugs").loc["rhTPO"]
    found = track_record(_table(), {"rhTPO"}, ARM_DRUGS)
    assert (rhtpo.rows, rhtpo.studies, rhtpo.inside, rhtpo.below_50, rhtpo.above_50) == (
        len(found.rows), 2, found.inside, found.optimistic, found.pessimistic)
    assert rhtpo.median_count_side == 45.0 and rhtpo.sign_test_p == 1.0


def test_show_prints_the_track_record_by_drug_of_the_bundled_record(capsys):
    from plateletpd.cli import main

    assert main(["show", "cit_marrow_reserve", "--track-record"]) == 0
    out = capsys.readouterr().out
    assert "validation/results/cit_marrow_reserve.csv" in out
    table, record = recorded_validation("cit_marrow_reserve")
    found = track_record(table, {"rhTPO"}, record_arm_drugs(record))
    line = next(text for text in out.splitlines() if text.strip().startswith("rhTPO "))
    assert line.split()[1:6] == [str(len(found.rows)), str(len(found.studies)),
                                 str(found.inside), str(found.optimistic),
                                 str(found.pessimistic)]
    assert main(["show", "cit_marrow_reserve", "--track-record", "--fit", "none"]) == 0
    assert "the model file's values have no record" in capsys.readouterr().out
    assert main(["show", "cit_marrow_reserve", "--track-record", "--fit", "nosuch"]) == 2
    assert "no fit at 'nosuch'" in capsys.readouterr().err  # refused, not the default's
    assert main(["show", "friberg_platelets", "--track-record"]) == 0
    assert "no recorded validation of friberg_platelets" in capsys.readouterr().out


def test_the_largest_error_says_whether_a_drug_set_has_a_row_outside():
    # on the bundled record (validation/results/cit_marrow_reserve.csv): a drug set has a
    # row outside its 95% interval exactly when its worst miss exceeds one half-width
    # (study/interval_calibration.py's standardised error; "inside" is the check's own
    # reading, made on the count scale: the two must agree)
    import math

    from plateletpd.study.trial import record_arm_drugs
    from plateletpd.study.validation_results import recorded_validation, track_record_table

    table, record = recorded_validation("cit_marrow_reserve")
    found = track_record_table(table, record_arm_drugs(record))
    assert len(found) >= 5  # the record's arms gave 8 sets of drugs (model card, Track record)
    for row in found.itertuples():
        assert (row.largest_error > 1.0) == (row.inside < row.rows), row.drugs
    # the invented table above has no intervals: no error to give
    assert all(math.isnan(v) for v in track_record_table(_table(), ARM_DRUGS).largest_error)
