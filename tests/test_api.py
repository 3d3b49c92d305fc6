"""The Python API: trials and fits built in code, the endpoint registry, reprs, plots and
``simulate --plot --variables`` (issue 15 items 5 and 6)."""

from __future__ import annotations

import struct
import tomllib
from dataclasses import replace
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

import plateletpd as pp
from plateletpd.cli import main
from plateletpd.io.outcomes import load_outcomes
from plateletpd.inference.fitting import ArmSpec
from plateletpd.study.endpoints import Courses
from plateletpd.study.sweep import run_sweep
from plateletpd.study.trial import bundled_trial

YUAN = bundled_trial("yuan2025")
#: a small trial: the bundled fit's chemotherapy sensitivity of Yuan 2025's population
#: (trials/yuan2025.toml), one treated arm
POPULATION = {"typical": {"chemotherapy_sensitivity": 10.88},
              "cv": {"chemotherapy_sensitivity": 0.30}, "covariates": {"body_weight": 65}}


def png_size(path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk (PNG specification, section 11.2.2)."""
    data = open(path, "rb").read(24)
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


class Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)


def tags(text: str) -> list[str]:
    parser = Tags()
    parser.feed(text)
    return parser.tags


def small_trial(**changes) -> pp.TrialSpec:
    changes.setdefault("response", {"threshold": 100, "rise": 50})  # no rule is implied
    return pp.TrialSpec.create(seed=7, subjects_per_arm=30, population=POPULATION,
                               arms=[{"name": "rhTPO", "treatment": ["rhTPO 15000 U"]}],
                               **changes)


# ---------------------------------------------------------------------- trials in code
def test_a_trial_built_in_code_equals_the_one_loaded_from_its_file():
    tables = tomllib.loads(YUAN.read_text())
    code = pp.TrialSpec.create(arms=tables["arms"], population=tables["population"],
                               enrolment=tables["enrolment"], response=tables["response"],
                               chemotherapy=tables["chemotherapy"],
                               eligibility=tables["eligibility"], **tables["trial"])
    loaded = pp.load_trial_spec(YUAN)
    for name in ("name", "parameters_from", "seed", "subjects_per_arm", "follow_up_days",
                 "visit_every_days", "covariates", "arms", "response", "reference_arm",
                 "description", "extra"):
        assert getattr(code, name) == getattr(loaded, name), name
    assert code.model.hash == loaded.model.hash  # same structure and parameter values
    assert code.variability.names == loaded.variability.names
    np.testing.assert_array_equal(code.variability.covariance, loaded.variability.covariance)
    # same results for the same seed on a small n (two arms to keep it quick)
    small = dict(subjects_per_arm=25, arms=code.arms[:2])
    from_code = pp.run_trial(replace(code, **small))
    from_file = pp.run_trial(replace(loaded, **small))
    pd.testing.assert_frame_equal(from_code.subjects, from_file.subjects)
    assert len(from_code.subjects) > 0


def test_a_bad_keyword_of_a_trial_built_in_code_is_a_clear_error():
    with pytest.raises(pp.PlateletPDError, match=r"unknown field 'treatmnt'.*did you mean "
                                                 r"'treatment'"):
        pp.TrialSpec.create(seed=1, arms=[{"name": "x", "treatmnt": []}])
    with pytest.raises(pp.PlateletPDError, match="by_day"):
        small_trial(response={"by_day": 400})  # beyond follow_up_days (42 by default)


# ---------------------------------------------------------------------- endpoint registry
def test_a_registered_endpoint_flows_to_trial_outputs_fit_predictions_and_sweeps(tmp_path):
    # defined as the count 7 days after day 0: in trials (day 0 = the start of treatment) it
    # must equal the built-in plt_day_7 column, in a fit the plt_count row with day = 7
    endpoint = pp.Endpoint("test_count_day_7", "x10^9/L", "count 7 days after day 0",
                           "count", lambda courses: courses.at(courses.day0 + 7.0),
                           in_data=True, in_trials=True, summary="mean")
    pp.register_endpoint(endpoint)
    try:
        spec = small_trial()
        trial = pp.run_trial(spec)
        assert trial.subjects.test_count_day_7.notna().all()
        np.testing.assert_array_equal(trial.subjects.test_count_day_7,
                                      trial.subjects.plt_day_7)
        assert trial.summary.mean_test_count_day_7.iloc[0] == \
            trial.summary.mean_plt_day_7.iloc[0]

        sweep = run_sweep(spec, {"dose": [7500.0, 15000.0]})
        assert len(sweep) == 2
        np.testing.assert_array_equal(sweep.mean_test_count_day_7, sweep.mean_plt_day_7)

        header = ("study,arm,regimen,n,population,day0,endpoint,threshold,day,statistic,"
                  "value,spread_type,spread,source")
        rows = ["s,a,rhTPO,30,CIT,treatment_start,plt_count,,7,mean,120,SD,40,test",
                "s,a,rhTPO,30,CIT,treatment_start,test_count_day_7,,,mean,120,SD,40,test"]
        data = tmp_path / "outcomes.csv"
        data.write_text("\n".join([header, *rows]) + "\n")
        table = load_outcomes(data)  # the outcome table accepts the registered name
        design = pp.ArmDesign("rhTPO", treatment=("rhTPO 15000 U",), smooth_stop=True)
        problem = pp.FitProblem.create(
            spec.model, [ArmSpec("s", "a", design, "treatment_start", pp.ResponseRule(),
                                 table)], {"chemotherapy_sensitivity": 10.88}, seed=3,
            subjects=30, variability=spec.variability, data=data)
        predicted = problem.predict(problem.parameters.valuesdict()).predicted
        assert np.isfinite(predicted).all()
        assert predicted.iloc[0] == predicted.iloc[1]
    finally:
        pp.unregister_endpoint("test_count_day_7")
    assert "test_count_day_7" not in pp.ENDPOINTS
    with pytest.raises(pp.PlateletPDError, match="unknown endpoint 'test_count_day_7'"):
        load_outcomes(data)


def test_the_registry_refuses_duplicate_names_and_unknown_kinds():
    with pytest.raises(pp.PlateletPDError, match="already registered"):
        pp.register_endpoint(pp.Endpoint("nadir", "x10^9/L", "again", "count", None))
    with pytest.raises(pp.PlateletPDError, match="kind must be one of"):
        pp.Endpoint("new", "", "", "colour", None)
    with pytest.raises(pp.PlateletPDError, match="no simulation rule"):
        pp.ENDPOINTS["incidence_proportion"].values(None)


def test_the_benchmark_uses_the_registry_definitions():
    """benchmarks/million's recovery time is the registry's recovery_days: a course rising
    10 per day from a nadir of 20 on day 10 reaches 100 on day 18 (8 days)."""
    days = np.arange(29.0)
    course = np.where(days <= 10, 250 - 23 * days, 20 + 10 * (days - 10))[None, :]
    courses = Courses(days, course, np.zeros(1))
    assert pp.ENDPOINTS["recovery_days"].values(courses)[0] == 8.0


# ---------------------------------------------------------------------- reprs
@pytest.fixture(scope="module")
def results():
    model = pp.load_model("friberg_platelets")
    one = pp.simulate(model, "cytotoxic 100 mg qd d1-14", days=28)
    batch = pp.simulate_batch(model, "cytotoxic 100 mg qd d1-14", days=28,
                              params={"mean_transit_time": [100.0, 125.0, 150.0]})
    return model, one, batch


def test_status_prints_its_name():
    assert str(pp.Status.SUCCESS) == "SUCCESS" and f"{pp.Status.MAX_STEPS}" == "MAX_STEPS"
    assert repr(pp.Status.DOMAIN_ERROR) == "Status.DOMAIN_ERROR"
    assert pp.Status.SUCCESS == 0  # still an integer


def test_reprs_are_short_and_name_the_status(results):
    model, one, batch = results
    assert "status=SUCCESS" in repr(one)
    assert "3 SUCCESS, 0 failed" in repr(batch)
    trial = pp.run_trial(small_trial())
    for item in (one, batch, model, pp.load_model("cit_thrombopoiesis"), trial, trial.spec):
        text = repr(item)
        assert len(text) < 2000, (type(item).__name__, len(text))
        assert "array(" not in text and "\n" not in text
    assert "rhTPO" in repr(trial) and "responded" in repr(trial)


def test_html_reprs_are_short_tables(results):
    model, one, batch = results
    trial = pp.run_trial(small_trial())
    for item in (one, batch, model, trial, trial.spec):
        text = item._repr_html_()
        found = tags(text)
        assert found[0] == "table" and "th" in found and "td" in found
        assert len(text) < 10_000 and "array(" not in text


# ---------------------------------------------------------------------- plots
def test_batch_bands_plot_writes_a_png_of_sane_size(results, tmp_path):
    _, _, batch = results
    np.testing.assert_array_equal(batch["platelets"], batch.output("platelets"))  # README
    path = tmp_path / "bands.png"
    batch.plot(variables=["platelets", "concentration"], bands=(5, 95), path=path)
    width, height = png_size(path)
    assert 0 < width < 2000 and 0 < height < 2000
    with pytest.raises(pp.PlateletPDError, match="bands must be two percentiles"):
        batch.plot(bands=(95, 5))
    with pytest.raises(pp.PlateletPDError, match=r"cannot plot 'platelet'.*did you mean "
                                                 r"'platelets'"):
        batch.plot(variables=["platelet"])


def test_cli_plot_draws_the_chosen_variables(tmp_path, capsys):
    chosen, default = tmp_path / "chosen.png", tmp_path / "default.png"
    base = ["simulate", "cit_thrombopoiesis", "--regimen", "chemotherapy 1 dose d1",
            "--days", "21"]
    assert main([*base, "--plot", str(chosen), "--variables", "platelets,tpo"]) == 0
    assert main([*base, "--plot", str(default)]) == 0
    # 2.4 in per panel at 120 dpi (results.py): 2 panels, and 4 by default, not 14
    assert png_size(chosen)[1] < png_size(default)[1] < 2000
    capsys.readouterr()
    assert main([*base, "--plot", str(chosen), "--variables", "platelets,tpoo"]) == 2
    error = capsys.readouterr().err
    assert "cannot plot 'tpoo'" in error and "'tpo'" in error and "Traceback" not in error
    assert main([*base, "--variables", "platelets"]) == 2
    assert "add --plot" in capsys.readouterr().err


def test_the_variability_sampler_and_trial_api_are_public():
    from plateletpd.population.variability import Variability

    assert pp.Variability is Variability
    draws = pp.Variability.from_cv({"circ0": 0.2}).eta(5000, seed=1)
    # lognormal CV 0.2: eta variance log(1 + 0.2^2) = 0.0392 (variability.py's definition)
    assert abs(draws.var() - np.log1p(0.04)) < 0.004


# ------------------------------------------- frictions of a Python-API user test (session 33)
def test_simulate_with_the_bundled_fit_equals_the_fitted_values_given_by_hand():
    from plateletpd.model.library import load_fitted_parameters

    _, fitted = load_fitted_parameters("cit_marrow_reserve_calibration")
    by_hand = pp.simulate("cit_marrow_reserve", "chemotherapy 1 dose d1", days=21,
                          params=fitted)
    by_name = pp.simulate("cit_marrow_reserve", "chemotherapy 1 dose d1", days=21,
                          fit="default")
    np.testing.assert_array_equal(by_name.outputs, by_hand.outputs)
    assert by_name.provenance["fit"] == "cit_marrow_reserve_calibration"
    assert "fit" not in by_hand.provenance
    # the bundled fit's damage (4.30) is not the file's prior (4.0): the nadirs differ
    file_values = pp.simulate("cit_marrow_reserve", "chemotherapy 1 dose d1", days=21)
    assert by_name.output("platelets").min() < file_values.output("platelets").min()
    batch = pp.simulate_batch("cit_marrow_reserve", "chemotherapy 1 dose d1", days=21, n=1,
                              fit="default")
    np.testing.assert_allclose(batch.outputs, by_name.outputs, rtol=1e-12)


@pytest.mark.parametrize("model, fit, expected", [
    ("cit_marrow_reserve", "itp_calibration", "made with model 'itp_thrombopoiesis', not"),
    ("cit_marrow_reserve", "no_such_fit", "no fit at 'no_such_fit'"),
    ("friberg_platelets", "default", "has no bundled fit"),
])
def test_a_fit_that_does_not_belong_to_the_model_is_a_clear_error(model, fit, expected):
    with pytest.raises(pp.SimulationInputError, match=expected):
        pp.simulate(model, days=1, fit=fit)


def test_a_dose_per_kg_without_the_trials_body_weight_is_refused():
    # simulate() refuses it (a model's default is never used to scale a dose); a trial
    # used the model's default 65 kg without a word (a user test: 94.4% responding with
    # or without body_weight = 65)
    arms = [{"name": "rhIL-11", "treatment": ["rhIL-11 25 ug/kg"]}]
    with pytest.raises(pp.PlateletPDError, match=r"\[population\] covariates.*body_weight"):
        pp.TrialSpec.create(arms=arms, seed=1, response={"threshold": 100})
    spec = pp.TrialSpec.create(arms=arms, seed=1, response={"threshold": 100},
                               population={"covariates": {"body_weight": 50}})
    assert spec.covariates == {"body_weight": 50}


SMALL_TRIAL = """
[trial]
name = "small"
seed = 5
subjects_per_arm = 24
[population]
covariates = { body_weight = 60 }
[response]
threshold = 100
[[arms]]
name = "untreated"
[[arms]]
name = "hetrombopag"
treatment = ["hetrombopag 7.5 mg"]
"""


@pytest.fixture(scope="module")
def small_trial_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("api") / "small.toml"
    path.write_text(SMALL_TRIAL)
    return path


def test_run_trial_and_run_sweep_take_a_trial_files_path(small_trial_file):
    from_path = pp.run_trial(small_trial_file)
    from_spec = pp.run_trial(pp.load_trial_spec(small_trial_file))
    pd.testing.assert_frame_equal(from_path.summary, from_spec.summary)
    swept = pp.run_sweep(str(small_trial_file), {"dose": [7.5]}, arms="hetrombopag")
    # one cell at the file's own dose is the trial's arm, patient for patient
    assert swept.loc[0, "response_pct"] == from_spec.summary.loc["hetrombopag", "response_pct"]
    assert swept["enrolled"].dtype == np.int64 and swept["screened"].dtype == np.int64
    with pytest.raises(pp.PlateletPDError, match="expects a TrialSpec"):
        pp.run_trial(3)


@pytest.mark.parametrize("grid, message", [
    ({"dose": 5}, r"grid\['dose'\] must be a list of numbers"),
    ({"doses": [5]}, "unknown dimension 'doses' \\(did you mean 'dose'\\?\\)"),
    ({"dose": ["5 mg"]}, "non-empty list of numbers"),
    ({}, "grid must be a dict"),
])
def test_a_python_sweep_grid_is_checked_as_the_command_lines(small_trial_file, grid, message):
    with pytest.raises(pp.PlateletPDError, match=message):
        pp.run_sweep(small_trial_file, grid)


def test_a_trial_results_provenance_carries_the_design_of_a_trial_built_in_code():
    import json

    spec = pp.TrialSpec.create(
        arms=[{"name": "untreated"}, {"name": "rhTPO", "treatment": ["rhTPO 15000 U"],
                                      "max_days": 10}],
        seed=11, subjects_per_arm=8, response={"threshold": 100, "by_day": 10},
        population={"covariates": {"body_weight": 60},
                    "cv": {"chemotherapy_sensitivity": 0.3}})
    record = pp.run_trial(spec).provenance
    json.dumps(record)  # a JSON record, as provenance.json
    design = record["design"]
    assert record["trial"] == "trial built in code" and record["seed"] == 11
    assert [arm["name"] for arm in design["arms"]] == ["untreated", "rhTPO"]
    assert design["arms"][1]["treatment"] == ["rhTPO 15000 U"]
    assert design["arms"][1]["max_days"] == 10
    assert design["response"]["by_day"] == 10
    assert design["between_patient_cv"] == pytest.approx({"chemotherapy_sensitivity": 0.3})
    assert design["covariates"] == {"body_weight": 60}


def test_to_dataframe_chooses_variables_and_gives_a_wide_table():
    result = pp.simulate("cit_marrow_reserve", "chemotherapy 1 dose d1", days=2)
    wide = result.to_dataframe(variables=["platelets", "tpo"], wide=True)
    assert list(wide.columns) == ["time", "platelets", "tpo"]
    np.testing.assert_array_equal(wide["platelets"], result.output("platelets")[0])
    np.testing.assert_array_equal(wide["time"], result.times)
    long = result.to_dataframe(variables="tpo")
    assert set(long["variable"]) == {"tpo"} and len(long) == len(result.times)
    with pytest.raises(pp.SimulationInputError, match="did you mean 'platelets'"):
        result.to_dataframe(variables=["platelet"])


def test_a_trial_specs_patients_are_the_ones_its_arms_draw():
    from plateletpd.study.trial import _cohort

    spec = pp.TrialSpec.create(arms=[{"name": "untreated"}, {"name": "rhTPO", "treatment":
                                                             ["rhTPO 15000 U"]}],
                               seed=4, subjects_per_arm=6, response={"threshold": 100},
                               population={"cv": {"chemotherapy_sensitivity": 0.3},
                                           "covariates": {"body_weight": 60}})
    np.testing.assert_array_equal(spec.patients("rhTPO"), _cohort(spec, 1))
    assert not np.array_equal(spec.patients(0), spec.patients(1))  # parallel design
    assert spec.patients(1, size=2).shape[0] == 2
    with pytest.raises(pp.PlateletPDError, match="did you mean 'rhTPO'"):
        spec.patients("rhTP0")


def test_a_trial_naming_a_fit_of_another_model_is_refused_at_its_fit_line():
    # simulations, trials, fits and the command line turn a fit setting into values in one
    # place (model.library.fitted_values); a trial file had no check that the fit it named
    # was made with its model
    with pytest.raises(pp.PlateletPDError, match=r"\[trial\] fit.*made with model "
                                                 r"'itp_thrombopoiesis', not 'cit_marrow_reserve'"):
        pp.TrialSpec.create(fit="itp_calibration", seed=1, arms=[{"name": "u"}],
                            response={"threshold": 100},
                            population={"covariates": {"body_weight": 65}})


def test_a_script_reaches_the_study_tools_from_the_top_level_and_by_bundled_names():
    # a Python-API user test (2026-12-04): write_trial, check_trial, run_sensitivity and
    # bundled_trial were only in submodules, load_trial_spec("yuan2025") was refused while
    # the command line takes the name, and a check needed the data file's repository path
    for name in ("bundled_trial", "write_trial", "check_trial", "write_check", "Factor",
                 "run_sensitivity", "write_sensitivity", "optimise_dose", "validate"):
        assert callable(getattr(pp, name)), name
    assert pp.load_trial_spec("yuan2025").name == pp.load_trial_spec(
        pp.bundled_trial("yuan2025")).name
    with pytest.raises(pp.PlateletPDError, match="did you mean 'yuan2025'"):
        pp.load_trial_spec("yuan2052")
    by_name = pp.check_trial("yuan2025", "cit_summary.csv", replicates=2).table
    by_path = pp.check_trial(pp.load_trial_spec(pp.bundled_trial("yuan2025")),
                             pp.io.outcomes.bundled_outcomes_path(), replicates=2).table
    pd.testing.assert_frame_equal(by_name, by_path)
    with pytest.raises(pp.PlateletPDError, match=r"did you mean 'default'"):
        pp.simulate("cit_marrow_reserve", None, days=2, fit="defualt")


def test_asking_a_result_for_its_time_points_to_result_times():
    # a fitting user test (2026-12-05) looked for result.time / result["time"] to read the
    # nadir's day and went to the CLI's CSV instead
    import plateletpd as pp

    result = pp.simulate("friberg_platelets", "cytotoxic 100 mg qd d1-14", days=28)
    with pytest.raises(KeyError, match=r"result\.times") as error:
        result["time"]
    assert "available: platelets" in str(error.value)
    with pytest.raises(KeyError) as error:
        result["platelet"]
    assert "result.times" not in str(error.value)  # only where a time was asked for
