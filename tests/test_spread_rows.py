"""Spread rows (2026-12-06): a mean row published with an SD is also compared as a
between-patient SD, the SD of the row's per-patient values over each virtual study of the
row's size, so a check tests the virtual population's variability, not only its centre."""

import statistics
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from helpers import two_arm_trial

import plateletpd as pp
from plateletpd.cli import main
from plateletpd.io.outcomes import load_outcomes
from plateletpd.study.check import (CV_STATISTIC, SPREAD_STATISTIC, reducer, _row_patients,
                                    check_trial, spread_rows)
from plateletpd.study.trial import _arm_seed, run_trial

HEADER = ("study,arm,regimen,n,population,day0,endpoint,threshold,day,statistic,value,"
          "spread_type,spread,source\n")
SOURCE = "illustrative rows of the test (not a publication)"


def _rows(path, *rows: str):
    path.write_text(HEADER + "".join(f"sd,{row},{SOURCE}\n" for row in rows))
    return path


def test_only_mean_rows_with_a_published_sd_become_spread_rows(tmp_path):
    data = _rows(tmp_path / "d.csv",
                 "rhTPO,rhTPO,20,CIT,start,nadir_plt,,,mean,40,SD,12",       # kept: SD
                 "rhTPO,rhTPO,20,CIT,start,peak_plt,,,mean,200,SE,15",       # an SE: no
                 "rhTPO,rhTPO,20,CIT,start,plt_count,,14,median,150,,",      # a median: no
                 "untreated,none,20,CIT,start,nadir_plt,,,mean,30,,",        # no spread
                 "untreated,none,20,CIT,start,plt_count,,14,mean,90,SD,30")  # kept: SD
    rows = load_outcomes(data)
    spread = spread_rows(rows)
    # each kept row twice, as its SD and as SD over mean; row_index pairs them with the means
    assert spread.row_index.tolist() == [0, 0, 4, 4]
    assert spread.statistic.tolist() == [SPREAD_STATISTIC, CV_STATISTIC] * 2
    assert spread.value.tolist() == pytest.approx([12.0, 12.0 / 40, 30.0, 30.0 / 90])
    assert spread.endpoint.tolist() == ["nadir_plt"] * 2 + ["plt_count"] * 2
    # a mean of 0 has no CV (its SD is still compared)
    zero = _rows(tmp_path / "z.csv", "rhTPO,rhTPO,20,CIT,start,duration_below_days,PLT <50,,"
                                     "mean,0,SD,1.5")
    assert spread_rows(load_outcomes(zero)).statistic.tolist() == [SPREAD_STATISTIC]


def test_the_spread_reducer_is_the_sample_sd():
    # against the standard library's sample standard deviation (n - 1), NaNs left out; a
    # single value has no spread
    values = [3.0, 7.5, np.nan, 11.0, 4.25]
    assert reducer(SPREAD_STATISTIC)(np.array(values)) == pytest.approx(
        statistics.stdev([3.0, 7.5, 11.0, 4.25]), rel=1e-12)
    assert np.isnan(reducer(SPREAD_STATISTIC)(np.array([5.0, np.nan])))
    assert reducer("mean")(np.array(values)) == pytest.approx(np.mean([3.0, 7.5, 11.0, 4.25]))
    assert reducer(CV_STATISTIC)(np.array(values)) == pytest.approx(
        statistics.stdev([3.0, 7.5, 11.0, 4.25]) / statistics.mean([3.0, 7.5, 11.0, 4.25]),
        rel=1e-12)
    assert np.isnan(reducer(CV_STATISTIC)(np.array([-1.0, 1.0])))  # no CV about a mean of 0


def test_a_spread_row_is_the_sd_over_each_virtual_study(tmp_path):
    # two replicates at the point estimates: each virtual study is the first n enrolled of
    # the replicate trial (seed as plateletpd.study.uncertainty's replicates), so the
    # spread row's median over the two is the mean of their sample SDs, computed here
    # independently (statistics.stdev) from the trials run again
    trial = two_arm_trial(tmp_path / "t.toml", seed=3, subjects=60,
                          trial_keys='data_study = "sd"')
    data = _rows(tmp_path / "d.csv",
                 "rhTPO,rhTPO,15,CIT,start,nadir_plt,,,mean,40,SD,12",
                 "untreated,none,15,CIT,start,plt_count,,14,mean,90,SD,30")
    spec = pp.load_trial_spec(trial)
    result = check_trial(spec, data, replicates=2, screen_fewer=False)
    assert len(result.spread) == 4
    assert result.spread.statistic.tolist() == [SPREAD_STATISTIC, CV_STATISTIC] * 2
    assert result.spread.observed.tolist() == pytest.approx([12.0, 0.3, 30.0, 30.0 / 90])
    columns = {"rhTPO": "nadir", "untreated": "plt_day_14"}
    for row in result.spread.itertuples():
        spreads = []
        for replicate in range(2):
            again = run_trial(replace(spec, seed=_arm_seed(spec.seed, 10_000 + replicate)))
            patients = _row_patients(again.subjects, spec, row.trial_arm, row.arm)
            values = patients[columns[row.arm]].iloc[:15].to_numpy(float)
            values = values[np.isfinite(values)]
            spreads.append(statistics.stdev(values) / (
                1.0 if row.statistic == SPREAD_STATISTIC else statistics.mean(values)))
        assert row.predicted == pytest.approx(np.mean(spreads), rel=1e-9), row
        assert row.interval_low == pytest.approx(
            min(spreads) + 0.025 * abs(spreads[1] - spreads[0]), rel=1e-9)
        assert "of the values of: mean of" in row.reading
    # the rows' own table is what it was: the two means, not the SDs
    assert result.table.statistic.tolist() == ["mean", "mean"]
    assert any(note.startswith("spread rows (spread.csv)") for note in result.notes)


def test_check_prints_and_writes_the_spread_rows(tmp_path, capsys):
    trial = two_arm_trial(tmp_path / "t.toml", seed=3, subjects=60,
                          trial_keys='data_study = "sd"')
    data = _rows(tmp_path / "d.csv", "rhTPO,rhTPO,15,CIT,start,nadir_plt,,,mean,40,SD,12",
                 "untreated,none,15,CIT,start,nadir_plt,,,mean,30,,")
    out = tmp_path / "out"
    assert main(["check", str(trial), "--data", str(data), "--replicates", "2",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "between-patient spread" in printed
    written = pd.read_csv(out / "spread.csv")
    assert written.line.tolist() == [2, 2]
    assert written.observed.tolist() == pytest.approx([12.0, 0.3])
    # a check without SD rows writes no spread file
    plain = _rows(tmp_path / "p.csv", "rhTPO,rhTPO,15,CIT,start,nadir_plt,,,mean,40,,")
    assert main(["check", str(trial), "--data", str(plain), "--replicates", "2",
                 "--out", str(tmp_path / "plain")]) == 0
    assert not (tmp_path / "plain" / "spread.csv").exists()
    assert "between-patient spread" not in capsys.readouterr().out


def test_a_trial_report_gives_the_recorded_spread_by_role(tmp_path):
    # the kept record's spread rows (validation/results/cit_marrow_reserve.spread.csv,
    # 2026-12-06): the report counts, per role, the published SDs inside their intervals and
    # above the virtual studies' median; a record kept without them says nothing of it
    import shutil

    from plateletpd.io.files import bundled_folder
    from plateletpd.study.validation_results import validation_report_lines

    model = pp.load_model("cit_marrow_reserve")
    folder = bundled_folder("validation") / "results"
    spread = pd.read_csv(folder / "cit_marrow_reserve.spread.csv")
    assert {"calibration", "held out"} <= set(spread.role)
    text = "\n".join(validation_report_lines(model))
    for statistic, label in (("sd", "SD"), ("cv", "CV")):
        chosen = spread[spread.statistic == statistic]
        assert f"{label}: calibration" in text
        for role in set(chosen.role):
            rows = chosen[chosen.role == role]
            assert (f"{role} {int(rows.inside.sum())}/{len(rows)} inside, "
                    f"{int((rows.observed_percentile > 50).sum())}/{len(rows)} above") in text
    for name in ("cit_marrow_reserve.csv", "cit_marrow_reserve.provenance.json"):
        shutil.copy(folder / name, tmp_path / name)
    assert "Between-patient spread" not in "\n".join(validation_report_lines(model, tmp_path))
