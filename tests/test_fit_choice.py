"""The fit a trial runs on, chosen outside its file (``--fit``; ``load_trial_spec(fit=)``;
``validate(fit=)``): the same published trial on another fit, e.g. one made to in-house data
or under another assumption about an unstated definition (models/cit_marrow_reserve.md, "a
larger reserve share, and the NSCLC study's unstated threshold"). Cheap: no trial is run;
the values are read from the specs and the fit records."""
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from plateletpd.cli import main
from plateletpd.model.library import bundled_fits_dir, load_fit_record
from plateletpd.study.trial import TrialSpecError, load_trial_spec
from plateletpd.study.validation import (ValidationSuiteError, check_record, load_suite,
                                         validate)

BUNDLED = "cit_marrow_reserve_calibration"


def _value(spec, name: str) -> float:
    return spec.model.parameters[name].value


def test_a_trial_runs_on_the_fit_given_instead_of_its_files(tmp_path, monkeypatch):
    record = load_fit_record(BUNDLED)["parameters"]
    own = load_trial_spec("yuan2025")  # its file says fit = "default"
    assert own.parameters_from.startswith(f"fit {BUNDLED}")
    assert _value(own, "het_ec50") == pytest.approx(record["het_ec50"]["value"], rel=1e-12)

    # "none": the model file's values, not the fit's
    bare = load_trial_spec("yuan2025", fit="none")
    assert bare.parameters_from.startswith("the model file's values")
    from plateletpd import load_model

    file_value = load_model("cit_marrow_reserve").parameters["het_ec50"].value
    assert _value(bare, "het_ec50") == pytest.approx(file_value, rel=1e-12)
    assert file_value != pytest.approx(record["het_ec50"]["value"])  # else this proves nothing

    # a fit folder relative to the working directory (not the trial file's folder): a copy
    # of the bundled record with one value changed is the one the trial reads
    copy = tmp_path / "in_house_fit"
    shutil.copytree(bundled_fits_dir() / BUNDLED, copy)
    edited = json.loads((copy / "params.json").read_text())
    edited["parameters"]["het_ec50"]["value"] = 33.0  # any value unlike the record's 14.5
    (copy / "params.json").write_text(json.dumps(edited))
    monkeypatch.chdir(tmp_path)
    mine = load_trial_spec("yuan2025", fit="in_house_fit")
    assert _value(mine, "het_ec50") == 33.0
    # the fit's other values come with it (the chemotherapy damage is the record's)
    assert _value(mine, "chemotherapy_sensitivity") == pytest.approx(
        record["chemotherapy_sensitivity"]["value"], rel=1e-12)


def test_a_fit_that_does_not_exist_is_refused_naming_the_option(capsys):
    with pytest.raises(TrialSpecError, match=r"--fit no_such_fit: no fit at 'no_such_fit'.*"
                                             r"\"default\".*\"none\""):
        load_trial_spec("yuan2025", fit="no_such_fit")
    for command in (["trial", "yuan2025", "--n", "10"],
                    ["validate", "--check", "1"]):
        capsys.readouterr()
        assert main([*command, "--fit", "no_such_fit"]) == 2
        assert "--fit no_such_fit: no fit at" in capsys.readouterr().err
    # a fit made with another model: said with both models' names, and as the fit given
    # (--fit), not as the trial file's own [trial] fit line, which the user did not write
    with pytest.raises(TrialSpecError, match=r"the fit given in place of its \[trial\] fit "
                                             r"\(--fit itp_calibration\): fit "
                                             "'itp_calibration' was made with model "
                                             "'itp_thrombopoiesis', not 'cit_marrow_reserve'"):
        load_trial_spec("yuan2025", fit="itp_calibration")
    capsys.readouterr()
    assert main(["trial", "yuan2025", "--n", "10", "--fit", "itp_calibration"]) == 2
    assert "line" not in capsys.readouterr().err.split("error:")[-1].split("--fit")[0]


@pytest.mark.filterwarnings("ignore:.*no between-patient variability")  # the "none" fit has no CVs
def test_a_validation_run_on_another_fit_runs_every_check_on_it(monkeypatch):
    # the checks themselves are replaced by a stand-in that records the spec it was given:
    # what is tested is that the suite's run hands the fit to every trial it loads
    import plateletpd.study.check as check_module

    seen = []

    def stand_in(spec, data, **options):
        seen.append(spec.parameters_from)
        table = pd.DataFrame({"line": [1], "study": ["s"], "arm": ["a"], "endpoint": ["e"],
                              "observed": [1.0], "predicted": [1.0], "interval_low": [0.0],
                              "interval_high": [2.0], "inside": [True],
                              "observed_percentile": [50.0]})
        return SimpleNamespace(table=table, notes=(), spread=pd.DataFrame())
    monkeypatch.setattr(check_module, "check_trial", stand_in)
    suite = load_suite("cit_marrow_reserve")
    result = validate(suite, checks=(1, 2), fit="none")
    assert seen and all(text.startswith("the model file's values") for text in seen)
    assert [run["parameters_from"] for run in result.runs] == seen
    # and its report says so, not only the suite's description (which names the file's fit)
    from plateletpd.study.validation import validation_markdown

    assert "Parameters: the model file's values (2 checks)." in validation_markdown(result)
    seen.clear()
    validate(suite, checks=(1,))
    assert seen[0].startswith(f"fit {BUNDLED}")


def test_a_record_made_on_another_fit_is_not_merged():
    # --update puts re-run checks into an earlier record only when both ran on the same fit:
    # a record without "fit" ran every trial file's own
    suite = load_suite("cit_marrow_reserve")  # 40 replicates, uncertainty "fit" (its [suite])
    record = (pd.DataFrame(), {"suite": str(suite.path), "replicates": 40,
                               "uncertainty": "fit", "checks": []})
    check_record(record, suite, set(), set(), 40, "fit")  # the same: accepted
    with pytest.raises(ValidationSuiteError, match=r"fit None \(this run: 'none'\)"):
        check_record(record, suite, set(), set(), 40, "fit", fit="none")
    other = (record[0], {**record[1], "fit": str(Path("/somewhere/else"))})
    with pytest.raises(ValidationSuiteError, match=r"fit '/somewhere/else' \(this run: None\)"):
        check_record(other, suite, set(), set(), 40, "fit")


VARIANT = "cit_marrow_reserve_calibration_nsclc75"


def test_the_nsclc75_fit_differs_from_the_bundled_one_only_in_the_nsclc_threshold():
    # the two bundled CIT fits carry one unstated definition as uncertainty (the NSCLC
    # self-controlled study's threshold of thrombocytopenia, PMID 21875475: 100 or 75): any
    # other difference in their configurations would make the pair measure something else
    import tomllib

    from plateletpd.model.library import default_fit

    base, variant = (tomllib.loads((bundled_fits_dir() / name / "config.toml").read_text())
                     for name in (BUNDLED, VARIANT))
    assert variant["fit"]["name"] == VARIANT and base["fit"]["name"] == BUNDLED
    thresholds = {}
    for config, label in ((base, "base"), (variant, "variant")):
        for key in ("name", "description"):
            config["fit"].pop(key)
        config.pop("residual_reasons")  # the reasons differ with the residuals they explain
        for arm in config["arms"]:
            if arm["study"] == "nsclc_rhtpo_2011":
                thresholds.setdefault(label, []).append(arm.pop("default_threshold"))
    assert thresholds == {"base": [100, 100], "variant": [75, 75]}
    assert base == variant
    # its record is a fit of that configuration with the same varied parameters, and the
    # default stays the bundled fit
    record, bundled = load_fit_record(VARIANT), load_fit_record(BUNDLED)
    assert record["provenance"]["config"].endswith(f"{VARIANT}/config.toml")
    assert record["provenance"]["model"]["name"] == "cit_marrow_reserve"
    assert ({n for n, p in record["parameters"].items() if p["vary"]}
            == {n for n, p in bundled["parameters"].items() if p["vary"]})
    assert default_fit("cit_marrow_reserve") == BUNDLED


def test_a_trial_report_cites_the_validation_record_of_the_fit_it_ran_on(tmp_path):
    # a trial run on the 75-reading fit must not present the default fit's validation as
    # its own: its report cites the record made with `validate --fit` on that fit
    from plateletpd.study.validation_results import (inside_text, recorded_validation,
                                                     validation_report_lines)
    from plateletpd.study.trial import _non_default_fit

    variant_spec = load_trial_spec("yuan2025", fit=VARIANT)
    assert _non_default_fit(variant_spec) == VARIANT
    assert _non_default_fit(load_trial_spec("yuan2025")) is None
    # the same bundled fits given as folders are the same fits
    fits = Path(__file__).resolve().parents[1] / "fits"
    assert _non_default_fit(load_trial_spec("yuan2025", fit=str(fits / VARIANT))) == VARIANT
    assert _non_default_fit(load_trial_spec(
        "yuan2025", fit=str(fits / "cit_marrow_reserve_calibration"))) is None
    text = "\n".join(validation_report_lines(variant_spec.model, fit=VARIANT))
    results = Path(__file__).resolve().parents[1] / "validation" / "results"
    own = pd.read_csv(results / "cit_marrow_reserve_nsclc75.csv")
    assert f"on fit {VARIANT}" in text and inside_text(own) in text
    assert "validation/results/cit_marrow_reserve_nsclc75.csv" in text
    default_table = recorded_validation("cit_marrow_reserve")[0]
    assert inside_text(default_table) != inside_text(own)  # else the check proves nothing
    assert inside_text(default_table) not in text
    # a fit with no record of its own: the default fit's record, said to be another fit's
    text = "\n".join(validation_report_lines(variant_spec.model, fit=str(tmp_path / "mine")))
    assert "which has no recorded validation" in text and inside_text(default_table) in text


def test_a_fit_record_is_read_once_per_version_and_each_caller_gets_its_own_copy(tmp_path):
    """A trial asks for its fit's record several times (``--fit``'s check, the values, the
    interval note): one read of the file per version of it; a caller's edit reaches no other
    caller; a record written again is read again."""
    import os

    import plateletpd.model.library as library

    folder = tmp_path / "fit"
    shutil.copytree(bundled_fits_dir() / BUNDLED, folder)
    library._read_fit_record.cache_clear()
    first = load_fit_record(folder)
    first["parameters"]["het_ec50"]["value"] = -1.0  # a caller's edit
    second = load_fit_record(folder)
    assert library._read_fit_record.cache_info().misses == 1  # read once
    assert second["parameters"]["het_ec50"]["value"] > 0  # the edit did not reach it

    # written again (another value, a later modification time): read again
    record = json.loads((folder / "params.json").read_text())
    record["parameters"]["het_ec50"]["value"] = 99.0
    (folder / "params.json").write_text(json.dumps(record))
    later = (folder / "params.json").stat().st_mtime_ns + 10**9
    os.utime(folder / "params.json", ns=(later, later))
    assert load_fit_record(folder)["parameters"]["het_ec50"]["value"] == 99.0
    assert library._read_fit_record.cache_info().misses == 2
