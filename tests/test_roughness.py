"""objective_roughness: a fit's rows along one parameter, smooth ones against rows that
hard enrolment makes move in jumps (plateletpd.inference.roughness)."""

import numpy as np
import pytest

from plateletpd.errors import PlateletPDError
from plateletpd.inference.fitting import load_fit_config
from plateletpd.inference.roughness import objective_roughness
from test_fitting import CONFIG

# test input: observed values of the size a Friberg cytotoxic course gives (their exact
# values do not matter: residuals move with the predictions, not with the observations)
OUTCOMES = """study,arm,regimen,n,population,day0,endpoint,threshold,day,statistic,value,spread_type,spread,source
synthetic,cytotoxic,r,40,p,d,nadir_plt,,,mean,60,SD,10,test input
synthetic,cytotoxic,r,40,p,d,plt_count,,21,mean,150,SD,20,test input
"""


# test_fitting's synthetic Friberg arm (40 patients), its slope's between-patient CV raised
# to 0.4 so that the nadirs spread across the entry level of 75 (test input)
def config(entry) -> str:
    return CONFIG.format(slope=0.6, gamma=0.3).replace("cv = { slope = 0.2 }",
                                                       "cv = { slope = 0.4 }").replace(
        "entry_below = false", f"entry_below = {entry}")


def problem(folder, entry):
    (folder / "outcomes.csv").write_text(OUTCOMES)
    (folder / "config.toml").write_text(config(entry))
    return load_fit_config(folder / "config.toml")


def test_hard_enrolment_makes_rows_rough_and_everyone_enrolled_keeps_them_smooth(tmp_path):
    """Everyone enrolled (entry_below = false): the nadir and the day-21 mean move with the
    slope on the same 40 patients, so a quadratic through 9 points within +/-5% leaves
    under 1/1000 of each row's range. Enrolment by a count below 75 (entry_below = 75,
    about 29 of 40 at the start values): patients cross in and out of the arm as the slope
    moves, and the same rows stray by more than 0.05 SE and 100 times as much. (Measured
    when the test was written: smooth rows 9e-5 and 7e-5 of their ranges, rough rows 0.25
    and 0.13 SE, 570 and 670 times the smooth ones; the chi-square's roughness 0.11 against
    11.4. The bounds leave a factor of 2.6 to 12 on each side.)"""
    smooth_dir, rough_dir = tmp_path / "all", tmp_path / "entry"
    smooth_dir.mkdir()
    rough_dir.mkdir()
    smooth_problem, rough_problem = problem(smooth_dir, "false"), problem(rough_dir, 75)
    values = smooth_problem.parameters.valuesdict()
    smooth = objective_roughness(smooth_problem, values, "slope", relative=0.05, points=9)
    rough = objective_roughness(rough_problem, values, "slope", relative=0.05, points=9)
    assert list(smooth.endpoint) == ["nadir_plt", "plt_count"]
    assert np.all(smooth.range_se > 1.0)  # the rows do move along the grid
    assert np.all(smooth.roughness_se < 1e-3 * smooth.range_se)
    assert np.all(rough.roughness_se > 0.05)
    assert np.all(rough.roughness_se > 100 * smooth.roughness_se)
    assert rough.attrs["chi_square_roughness"] > 10 * smooth.attrs["chi_square_roughness"]
    np.testing.assert_allclose(smooth.attrs["grid"], 0.6 * (1 + 0.05 * np.linspace(-1, 1, 9)))
    # the chi-square at the grid's middle is the problem's own at the given values
    middle = smooth_problem.predict(values)["residual"].to_numpy()
    assert smooth.attrs["chi_square"][4] == pytest.approx(np.sum(middle ** 2), rel=1e-12)


@pytest.mark.parametrize("name,relative,points,fragment", [
    ("slopes", 0.05, 9, "'slopes' is not among the fit's parameters"),
    ("slope", 0.05, 3, "at least 5"),
    ("slope", 1.5, 9, "between 0 and 1"),
    ("slope", 0.0, 9, "between 0 and 1"),
])
def test_bad_requests_are_clear_errors(tmp_path, name, relative, points, fragment):
    fit = problem(tmp_path, "false")
    with pytest.raises(PlateletPDError, match=fragment):
        objective_roughness(fit, fit.parameters.valuesdict(), name, relative, points)


def test_the_command_prints_and_writes_the_table_at_a_records_values(tmp_path, capsys):
    """plateletpd roughness CONFIG PARAMETER --values RECORD: the grid is centred on the
    record's value (0.65 here, +/-5%: 0.6175 to 0.6825), the table goes to --out whole, and
    an unknown parameter, a missing record or a recorded value outside the bounds is exit
    status 2 with the reason."""
    import json

    import pandas as pd

    from plateletpd.cli import main

    problem(tmp_path, 75)
    record = tmp_path / "params.json"
    record.write_text(json.dumps({"parameters": {"slope": {"value": 0.65}}}))
    out = tmp_path / "roughness.csv"
    code = main(["roughness", str(tmp_path / "config.toml"), "slope", "--values", str(record),
                 "--relative", "0.05", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "slope: 9 points from 0.6175 to 0.6825" in printed
    table = pd.read_csv(out)
    record_of_it = json.loads((tmp_path / "roughness.csv.provenance.json").read_text())
    assert record_of_it["values"]["slope"] == 0.65 and record_of_it["seed"] == 7
    assert record_of_it["model"]["name"] == "friberg_platelets"
    assert record_of_it["values_from"]["started"] == ["slope"]
    assert list(table.columns) == ["line", "study", "arm", "endpoint", "threshold", "day", "range_se",
                                   "roughness_se"]
    assert list(table.endpoint) == ["nadir_plt", "plt_count"]
    assert main(["roughness", str(tmp_path / "config.toml"), "slopes"]) == 2
    assert "'slopes' is not among the fit's parameters" in capsys.readouterr().err
    assert main(["roughness", str(tmp_path / "config.toml"), "slope", "--values",
                 str(tmp_path / "missing.json")]) == 2
    assert "relative to the working directory" in capsys.readouterr().err
    record.write_text(json.dumps({"parameters": {"slope": {"value": 9.0}}}))
    assert main(["roughness", str(tmp_path / "config.toml"), "slope", "--values",
                 str(record)]) == 2
    assert "outside this configuration's bounds" in capsys.readouterr().err
    assert main(["roughness", str(tmp_path / "config.toml"), "slope", "--out",
                 str(tmp_path)]) == 2
    assert "is a folder; give a file name" in capsys.readouterr().err
