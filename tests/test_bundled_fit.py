"""The bundled calibration (fits/cit_calibration) and its use as the default parameter set."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import plateletpd as pp
from plateletpd.inference.fitting import load_fit_config
from plateletpd.model.library import default_fit, load_fitted_parameters

FIT = Path(__file__).resolve().parents[1] / "fits" / "cit_calibration"


@pytest.fixture(scope="module")
def record():
    return json.loads((FIT / "params.json").read_text())


@pytest.fixture(scope="module")
def yuan(record):
    """Predicted Yuan 2025 response proportions at the fitted values."""
    problem = load_fit_config(FIT / "config.toml")
    values = {name: entry["value"] for name, entry in record["parameters"].items()}
    table = problem.predict(values)
    rows = table[table.study == "yuan2025"].set_index("arm")
    return rows.predicted.to_dict(), rows.observed.to_dict()


def test_bundled_fit_reproduces_the_yuan_ordering(yuan):
    predicted, observed = yuan
    combination = predicted["hetrombopag+rhTPO"]
    alone = [predicted[a] for a in ("hetrombopag", "rhTPO", "rhIL-11")]
    # Yuan 2025 abstract: the combination clearly best (94.4% vs 70.3/70.3/66.0%, P < 0.05);
    # the three monotherapies close to one another (P > 0.05)
    assert combination > max(alone) + 0.10
    assert max(alone) - min(alone) < 0.15
    for arm, value in observed.items():
        assert abs(predicted[arm] - value) < 0.15, arm  # within ~2 binomial SE (n 36-64)


def test_bundled_fit_records_what_it_was_fitted_to(record):
    data = Path(__file__).resolve().parents[1] / "data" / "cit_summary.csv"
    if record["provenance"]["data"]["sha256"] != hashlib.sha256(data.read_bytes()).hexdigest():
        # the file changed since the fit (rows for other studies appended 2026-11-30, see
        # data/README.md): the rows this fit selects must still be exactly those it was
        # fitted to (same lines, values and standard errors); refit after editing any of them
        columns = ["line", "study", "arm", "endpoint", "statistic", "observed",
                   "standard_error"]
        fitted = pd.read_csv(FIT / "predictions.csv")[columns]
        selected = pd.concat([arm.rows for arm in load_fit_config(FIT / "config.toml").arms])
        pd.testing.assert_frame_equal(
            selected[columns].sort_values("line").reset_index(drop=True),
            fitted.sort_values("line").reset_index(drop=True), check_dtype=False)
    assert record["provenance"]["model"]["hash"] == pp.load_model(
        "cit_thrombopoiesis").hash  # refit after editing the model file
    assert record["provenance"]["seed"] == 20261121  # fits/cit_calibration/config.toml
    assert record["identifiability"]  # a plain statement, always present
    for name, entry in record["parameters"].items():
        assert entry["lower"] <= entry["value"] <= entry["upper"], name


def test_bundled_fit_is_the_default_for_the_cit_model():
    assert default_fit("cit_thrombopoiesis") == "cit_calibration"
    assert default_fit("friberg_platelets") is None
    model_name, values = load_fitted_parameters("cit_calibration")
    model = pp.load_model(model_name)
    assert "yuan_chemotherapy_sensitivity" not in values  # study-level, not the model's
    assert set(values) <= set(model.parameter_names)
    model.with_parameters(values)  # inside every bound
    with pytest.raises(pp.PlateletPDError, match=r"a bundled fit \(cit_calibration"):
        load_fitted_parameters("no_such_fit")


def test_a_user_added_row_joins_the_fit_without_code_changes(tmp_path, record):
    # the Yuan 2025 day-7 means are not reachable here (data/README.md); a user adds one as
    # a row. The value below is a placeholder for the mechanics, not a published number.
    folder = tmp_path / "fit"
    folder.mkdir()
    data = (Path(__file__).resolve().parents[1] / "data" / "cit_summary.csv").read_text()
    added = ("yuan2025,hetrombopag,hetrombopag PO daily,37,solid-tumour CIT,start of "
             "thrombopoietic treatment,plt_count,,7,mean,80,SD,30,user-added test row,,")
    (folder / "data.csv").write_text(data.rstrip("\n") + "\n" + added + "\n")
    config = (FIT / "config.toml").read_text().replace('data = "../../data/cit_summary.csv"',
                                                       'data = "data.csv"')
    (folder / "config.toml").write_text(config)
    problem = load_fit_config(folder / "config.toml")
    values = {name: entry["value"] for name, entry in record["parameters"].items()}
    table = problem.predict(values)
    row = table[(table.endpoint == "plt_count") & (table.arm == "hetrombopag")].iloc[0]
    assert row.day == 7 and row.observed == 80
    assert np.isfinite(row.predicted) and row.predicted > 0  # a simulated platelet count
    assert row.standard_error == pytest.approx(30 / 37 ** 0.5)  # SD / sqrt(n)
    bundled = load_fit_config(FIT / "config.toml")
    assert problem.residuals(bundled.parameters).size == \
        bundled.residuals(bundled.parameters).size + 1  # one more residual in the objective


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::plateletpd.study.trial.DroppedPatientsWarning")
def test_the_default_cit_fit_reproduces_its_rows_from_its_configuration():
    # fits/cit_marrow_reserve_calibration at its reported values and final cohort sizes
    # ([fit] final_subjects, each [[trials]] entry's final_subjects_per_arm): every row of its
    # predictions.csv again, bit for bit (common random numbers). A change to the engine,
    # the trial language or the fit that moves a calibration row shows here, before the
    # bundled fit, the validation record and the card's numbers silently disagree with it
    folder = FIT.parent / "cit_marrow_reserve_calibration"
    problem = load_fit_config(folder / "config.toml")
    problem.eta = problem.variability.eta(problem.config["fit"]["final_subjects"],
                                          problem.seed)
    problem.trials = [trial.resized(trial.final_subjects_per_arm)
                      if trial.final_subjects_per_arm > trial.spec.subjects_per_arm
                      else trial for trial in problem.trials]
    record = json.loads((folder / "params.json").read_text())
    table = problem.predict({name: entry["value"]
                             for name, entry in record["parameters"].items()})
    stored = pd.read_csv(folder / "predictions.csv").set_index("line")
    # bit for bit on the host that wrote predictions.csv; kernels compiled for another CPU
    # differ in the last bits (1.5e-13 relative at most on an AMD EPYC host, 2026-12-04,
    # at the session's base commit too), where a change that moves a row moves it by far
    # more than 1e-10
    np.testing.assert_allclose(table.predicted.to_numpy(),
                               stored.predicted.loc[table.line].to_numpy(), rtol=1e-10,
                               atol=0.0)
