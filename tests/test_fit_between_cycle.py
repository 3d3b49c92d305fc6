"""The between-cycle CV of a fit's course trials as one fit parameter (`[between_cycle]`,
2026-12-06, forty-seventh session): each cycle's chemotherapy exposure varies within a
patient by `between_cycle_cv` (a course trial's `[chemotherapy]` key, until now only an
assumption in each file: 0.3 from neutrophil models); a self-controlled series' published
SDs inform it (models/cit_marrow_reserve.md, "The published SDs as fit residuals").

Properties tested: a fit's `between_cycle_cv` at a value predicts exactly what the trial
file stating that value predicts (the same patients and standard normal exposure draws,
scaled), and the value matters; its start is the trials' own; bad tables are clear errors;
a trial run on a fit that estimated it takes the fit's value unless its file states one."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from test_fitting_trials import write_fit, write_rows, write_trial

from plateletpd.inference.fitting import FitConfigError, FitProblem, load_fit_config
from plateletpd.study.trial import load_trial_spec

pytestmark = pytest.mark.filterwarnings(
    "ignore::plateletpd.study.trial.DroppedPatientsWarning")

# the rows of tests/test_fitting_trials.py's persistent design that a course moves
ROWS = [("observation", "plt_count", "", 21, "mean", 57, "", ""),
        ("observation", "nadir_plt", "", "", "mean", 40, "", ""),
        ("observation", "response_proportion", "PLT >=100", 21, "percent", 12.5, "", "")]


def _course_cv(tmp_path: Path, cv: float | None) -> Path:
    """tests/test_fitting_trials.py's trial (a 2-cycle course, held while PLT < 100) with
    its course's between_cycle_cv stated (None: not stated, 0 by the schema)."""
    path = write_trial(tmp_path, subjects=200)
    if cv is not None:
        text = path.read_text()
        assert text.count("follow_up_days = 21\n") == 1  # the [chemotherapy] table's
        path.write_text(text.replace("follow_up_days = 21\n",
                                     f"follow_up_days = 21\nbetween_cycle_cv = {cv}\n"))
    return path


def _predicted(tmp_path: Path, trial_cv: float | None, between_cycle: str = "") -> pd.Series:
    _course_cv(tmp_path, trial_cv)
    problem = load_fit_config(write_fit(tmp_path, extra=between_cycle))
    return problem.predict(problem.parameters.valuesdict()).set_index("line").predicted


def test_the_fit_parameter_predicts_what_the_trial_file_stating_it_predicts(tmp_path):
    write_rows(tmp_path, ROWS)
    for cv in (0.1, 0.4):
        stated = _predicted(tmp_path, cv)
        fitted = _predicted(tmp_path, None, f"[between_cycle]\nvalue = {cv}\n")
        pd.testing.assert_series_equal(fitted, stated, rtol=1e-12)
    # and it matters: the day-21 mean and the nadir move between 0.1 and 0.4
    low = _predicted(tmp_path, None, "[between_cycle]\nvalue = 0.1\n")
    high = _predicted(tmp_path, None, "[between_cycle]\nvalue = 0.4\n")
    assert not np.allclose(low.iloc[:2], high.iloc[:2], rtol=1e-3)


def test_its_start_is_the_trials_own_and_it_is_recorded_as_a_parameter(tmp_path):
    write_rows(tmp_path, ROWS)
    _course_cv(tmp_path, 0.25)
    problem = load_fit_config(write_fit(tmp_path, extra="[between_cycle]\nupper = 0.8\n"))
    parameter = problem.parameters["between_cycle_cv"]
    assert problem.between_cycle == "between_cycle_cv"
    assert (parameter.value, parameter.min, parameter.max, parameter.vary) == \
        (0.25, 0.0, 0.8, True)
    assert problem.between_cycle_cv(problem.parameters.valuesdict()) == 0.25
    # without the table each trial keeps its own and the fit has no such parameter
    plain = load_fit_config(write_fit(tmp_path))
    assert plain.between_cycle is None and "between_cycle_cv" not in plain.parameters


@pytest.mark.parametrize("table, message", [
    ("[between_cycle]\nlower = 0.5\nupper = 0.2\n", r"bounds \[0.5, 0.2\] are not lower < "
                                                    r"upper"),
    ("[between_cycle]\nvalue = 1.5\n", r"start CV 1.5 is outside \[0, 1\]"),
    ("[between_cycle]\nvalue = -0.1\n", r"between_cycle\] value"),
    ("[between_cycle]\nspread = 0.1\n", r"spread"),
])
def test_bad_between_cycle_tables_are_clear_errors(tmp_path, table, message):
    write_rows(tmp_path, ROWS)
    _course_cv(tmp_path, None)
    with pytest.raises(FitConfigError, match=message):
        load_fit_config(write_fit(tmp_path, extra=table))


def test_a_fit_without_a_course_trial_refuses_it():
    with pytest.raises(FitConfigError, match=r"between_cycle: no \[\[trials\]\] entry gives a "
                                             r"chemotherapy course"):
        FitProblem.create("cit_marrow_reserve", [], {"chemotherapy_sensitivity": 4.0},
                          seed=1, between_cycle={"value": 0.2})


def _fit_with_between_cycle(tmp_path: Path, value: float) -> Path:
    """A copy of the bundled fit's folder whose record has between_cycle_cv at ``value``
    (as a fit with [between_cycle] writes it: a varied parameter)."""
    bundled = Path(__file__).resolve().parents[1] / "fits" / "cit_marrow_reserve_calibration"
    folder = tmp_path / "fit"
    shutil.copytree(bundled, folder)
    record = json.loads((folder / "params.json").read_text())
    record["parameters"]["between_cycle_cv"] = {**record["parameters"]["het_ec50"],
                                                "value": value, "vary": True}
    (folder / "params.json").write_text(json.dumps(record))
    return folder


def test_a_trial_on_a_fit_that_estimated_it_takes_its_value_unless_it_states_one(tmp_path):
    folder = _fit_with_between_cycle(tmp_path, 0.12)
    (tmp_path / "a").mkdir()
    silent = _course_cv(tmp_path / "a", None)
    spec = load_trial_spec(silent, subjects=10, fit=str(folder))
    assert spec.extra["between_cycle_cv"] == 0.12
    assert "between-cycle CV of exposure 0.12 from the fit" in spec.parameters_from
    (tmp_path / "b").mkdir()
    stated = _course_cv(tmp_path / "b", 0.3)
    assert load_trial_spec(stated, subjects=10, fit=str(folder)).extra[
        "between_cycle_cv"] == 0.3
    # the bundled fit has no such parameter: a silent file keeps the schema's 0
    assert load_trial_spec(silent, subjects=10, fit="default").extra["between_cycle_cv"] == 0


def test_replicates_drawn_from_such_a_fit_say_the_between_cycle_cv_is_not_drawn(tmp_path):
    from plateletpd.study.uncertainty import TrialUncertainty

    folder = _fit_with_between_cycle(tmp_path, 0.12)
    uncertainty = TrialUncertainty.for_trial(load_trial_spec(
        _course_cv(tmp_path, None), subjects=10, fit=str(folder)))
    notes = " ".join(uncertainty.notes)
    assert "this trial takes it at its estimate" in notes
    assert "between_cycle_cv are fixed effects" not in notes
    assert "between_cycle_cv" not in uncertainty.applies.values()
    # a course stating its own: the note says the fit's is not used
    (tmp_path / "own").mkdir()
    own = TrialUncertainty.for_trial(load_trial_spec(
        _course_cv(tmp_path / "own", 0.3), subjects=10, fit=str(folder)))
    assert "not used: this trial's own between_cycle_cv" in " ".join(own.notes)


def test_a_fit_estimates_it_and_records_it(tmp_path):
    # the rows simulated through the trial at a between-cycle CV of 0.35 on the fit's own
    # patients (common random numbers: the optimum is the truth), fitted from 0.1 with the
    # damage fixed: the day-21 mean and the nadir move with the CV. Enrolment by the history
    # (4 weeks below 100) changes in small jumps as the CV moves (docs/fitting.md, "Is the
    # objective smooth enough?"), so the optimiser ends near, not at, the truth: 0.372 from
    # 0.1 (2026-12-06), within 0.04
    from plateletpd.inference.fitting import run_fit

    write_rows(tmp_path, ROWS)
    _course_cv(tmp_path, None)
    truth = _predicted(tmp_path, None, "[between_cycle]\nvalue = 0.35\n")
    # (a percent row's prediction is a proportion on the fit's scale)
    write_rows(tmp_path, [(arm, endpoint, threshold, day, statistic,
                           float(truth.iloc[i]) * (100 if statistic == "percent" else 1),
                           spread_type, spread)
                          for i, (arm, endpoint, threshold, day, statistic, _, spread_type,
                                  spread) in enumerate(ROWS)])
    config = write_fit(tmp_path, extra="[between_cycle]\nvalue = 0.1\nupper = 0.8\n")
    config.write_text(config.read_text().replace("vary = true, lower = 2.0",
                                                 "vary = false, lower = 2.0"))
    run = run_fit(config, out=tmp_path / "out", verbose=False, profile_parameters=False,
                  monte_carlo_replicates=0)
    assert run.result.params["between_cycle_cv"].value == pytest.approx(0.35, abs=0.04)
    record = json.loads((tmp_path / "out" / "params.json").read_text())
    assert record["parameters"]["between_cycle_cv"]["value"] == \
        run.result.params["between_cycle_cv"].value
    assert "between_cycle_cv" in (tmp_path / "out" / "report.md").read_text()
