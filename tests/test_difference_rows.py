"""A published difference's size as a data row (``comparison = difference``): "recovery 5
days shorter with rhTPO", "a mean rise of 31.7 from baseline". The row's value is the arm
minus ``versus`` in the statistic's units; the check reads the same difference in each
virtual study (the comparison machinery's difference, not a z) and asks whether the
published size is inside its 95% interval (a blind user test, 2026-12-08, could enter such
sizes only as a direction and a P)."""

import math

import numpy as np
import pytest

from test_comparison_paired import PAIRED_TRIAL

from plateletpd.errors import PlateletPDError
from plateletpd.io.outcomes import load_outcomes
from plateletpd.study.check import check_trial
from plateletpd.study.trial import load_trial_spec, run_trial
from plateletpd.study.uncertainty import _replicate_spec

# the small two-arm trial of tests/test_comparison_paired.py (a paired design: every arm
# the same patients, so a difference between its arms is read paired), named for this study
TRIAL = PAIRED_TRIAL.replace('data_study = "crossover2009"', 'data_study = "difference2026"')
HEADER = ("study,arm,regimen,n,population,day0,endpoint,threshold,day,statistic,value,"
          "spread_type,spread,source,evidence,note,versus,comparison,versus_n\n")
# constructed rows (no publication): the sizes are chosen to test the reading, not data
ROWS = HEADER + (
    "difference2026,rhTPO,rhTPO,30,test,first dose,plt_count,,7,mean,{rise},,,constructed,"
    "verbatim,,baseline,difference,\n"
    "difference2026,rhTPO,rhTPO,30,test,first dose,nadir_plt,,,mean,-500,,,constructed,"
    "verbatim,,control,difference,30\n")


@pytest.fixture()
def files(tmp_path):
    (tmp_path / "trial.toml").write_text(TRIAL)
    return tmp_path


def test_a_difference_from_baseline_is_the_same_patients_change(files):
    (files / "rows.csv").write_text(ROWS.format(rise=20))
    spec = load_trial_spec(files / "trial.toml")
    table = check_trial(spec, files / "rows.csv", replicates=2).table
    row = table[table.line == 2].iloc[0]
    # replicates 0 and 1 at the point estimates: their trials, their first 30 rhTPO
    # patients; the prediction is the median of the two, their mean
    expected = []
    for replicate in (0, 1):
        _, _, _, trial = _replicate_spec(spec, replicate, None)
        arm = run_trial(trial).subjects.query("arm == 'rhTPO'").iloc[:30]
        expected.append(float(arm.plt_day_7.mean() - arm.platelets_at_start.mean()))
    assert row.predicted == pytest.approx(np.mean(expected), rel=1e-9)
    assert row.interval_low == pytest.approx(np.percentile(expected, 2.5), rel=1e-9)
    assert row.reading.startswith("the difference rhTPO - baseline in")
    assert "observed: the published difference 20" in row.reading
    assert row.observed == 20.0 and math.isnan(row.chance_of_finding)


def test_a_difference_is_judged_by_its_interval(files):
    (files / "rows.csv").write_text(ROWS.format(rise=20))
    table = check_trial(load_trial_spec(files / "trial.toml"), files / "rows.csv",
                        replicates=5).table
    nadir = table[table.line == 3].iloc[0]
    # a nadir difference of -500 x10^9/L is beyond any study of counts below 75 at entry
    assert nadir.interval_low > -500 and not nadir.inside
    assert nadir.interval_low <= nadir.predicted <= nadir.interval_high
    rise = table[table.line == 2].iloc[0]
    assert rise.inside == (rise.interval_low <= 20 <= rise.interval_high)


def test_a_difference_may_be_negative_and_a_p_row_may_not(tmp_path):
    (tmp_path / "ok.csv").write_text(HEADER + (
        "s,a,x,10,p,first dose,nadir_plt,,,mean,-5,,,src,verbatim,,b,difference,\n"
        "s,b,x,10,p,first dose,nadir_plt,,,mean,40,,,src,verbatim,,,,\n"))
    rows = load_outcomes(tmp_path / "ok.csv")
    assert "difference" in set(rows.comparison)
    (tmp_path / "bad.csv").write_text(HEADER + (
        "s,a,x,10,p,first dose,nadir_plt,,,mean,-5,,,src,verbatim,,b,lower,\n"
        "s,b,x,10,p,first dose,nadir_plt,,,mean,40,,,src,verbatim,,,,\n"))
    with pytest.raises(PlateletPDError, match="two-sided P"):
        load_outcomes(tmp_path / "bad.csv")
    assert np.isfinite(rows.observed).all()
