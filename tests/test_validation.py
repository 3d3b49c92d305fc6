"""Validation suites (plateletpd.study.validation, `plateletpd validate`): the bundled suite
covers every bundled trial written from a publication, keeps the held-out rows apart, and
running a suite gives exactly what the predictive checks it lists give one by one."""

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from plateletpd.cli import main
from plateletpd.study.validation import (
    ROLES,
    ValidationSuiteError,
    load_suite,
    validate,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bundled():
    return load_suite("cit_marrow_reserve")


def test_the_bundled_suite_checks_every_bundled_trial_with_a_data_study(bundled):
    # a trial file written from a publication (it names its study) that the suite leaves
    # out would drop out of the model's validation unseen
    from plateletpd.study.trial import load_trial_spec

    covered = {check.trial.stem for check in bundled.checks}
    for path in sorted((ROOT / "trials").glob("*.toml")):
        spec = load_trial_spec(path)
        if spec.extra.get("data_study") and spec.model.name == "cit_marrow_reserve":
            assert path.stem in covered, path.name


def test_held_out_checks_read_only_the_held_out_table(bundled):
    # data/out_of_sample.csv holds what no fit saw (data/README.md): its checks, and only
    # they, have the role "held out"
    for check in bundled.checks:
        assert check.role in ROLES
        assert (check.data.name == "out_of_sample.csv") == (check.role == "held out"), check


def test_running_a_suite_gives_what_its_checks_give_one_by_one(bundled, tmp_path):
    from plateletpd.study.check import check_trial
    from plateletpd.study.trial import load_trial_spec

    check = next(c for c in bundled.checks if c.trial.stem == "xu2018_rhtpo_rhil11_prophylaxis")
    small = replace(bundled, checks=(replace(check, screened=60, note="a test note"),),
                    replicates=2, uncertainty="none")
    result = validate(small)
    spec = replace(load_trial_spec(check.trial), subjects_per_arm=60)
    checked = check_trial(spec, check.data, replicates=2, uncertainty="none")
    alone = checked.table
    assert len(result.table) == len(alone) == 4  # Xu 2018's four rows (out_of_sample.csv)
    columns = ["line", "observed", "predicted", "interval_low", "interval_high", "inside"]
    pd.testing.assert_frame_equal(result.table[columns].reset_index(drop=True),
                                  alone[columns].reset_index(drop=True))
    assert set(result.table.role) == {"held out"}
    summary = result.summary.set_index("role")
    assert summary.loc["held out", "rows"] == 4
    assert summary.loc["held out", "inside"] == int(alone.inside.sum())
    assert result.runs[0]["model_hash"] == spec.model.hash  # provenance of each check
    # written as one folder: the table as computed, the report, the figure, provenance
    from plateletpd.study.validation import write_validation

    paths = write_validation(result, tmp_path / "v", replicates=2, uncertainty="none")
    # Xu 2018's two nadirs are published as mean and SD (out_of_sample.csv): their
    # between-patient SDs are the suite's spread rows, as the check gives them
    assert len(result.spread) == len(checked.spread) == 4  # each as SD and as CV
    pd.testing.assert_frame_equal(result.spread[columns].reset_index(drop=True),
                                  checked.spread[columns].reset_index(drop=True))
    assert set(result.spread.role) == {"held out"} and set(result.spread.check) == {1}
    assert [p.name for p in paths] == ["validation.csv", "validation.md", "validation.png",
                                       "provenance.json", "spread.csv"]
    assert pd.read_csv(paths[4]).observed.tolist() == result.spread.observed.tolist()
    assert "## Between-patient spread" in paths[1].read_text()
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths)
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    written = pd.read_csv(paths[0])
    assert written.observed.tolist() == result.table.observed.tolist()
    # the suite's note on a check reaches the report and the provenance (it was dropped)
    assert "a test note" in paths[1].read_text() and result.runs[0]["note"] == "a test note"


def _suite(tmp_path, checks: str) -> Path:
    path = tmp_path / "suite.toml"
    path.write_text('[suite]\nname = "mine"\nreplicates = 2\n\n' + checks)
    return path


def test_bad_suites_are_refused_with_the_line_and_the_fix(tmp_path):
    with pytest.raises(ValidationSuiteError, match=r"line 8 .*role.*held out"):
        load_suite(_suite(tmp_path, '[[checks]]\ntrial = "yuan2025"\n'
                                    'data = "cit_summary.csv"\nrole = "training"\n'))
    with pytest.raises(ValidationSuiteError, match=r"line 8 .*did you mean.*lines"):
        load_suite(_suite(tmp_path, '[[checks]]\ntrial = "yuan2025"\n'
                                    'data = "cit_summary.csv"\nline = [2]\n'
                                    'role = "calibration"\n'))
    with pytest.raises(ValidationSuiteError, match=r"no bundled trial 'yuan2052'"):
        load_suite(_suite(tmp_path, '[[checks]]\ntrial = "yuan2052"\n'
                                    'data = "cit_summary.csv"\nrole = "calibration"\n'))
    with pytest.raises(ValidationSuiteError, match=r"no file 'nodata.csv'"):
        load_suite(_suite(tmp_path, '[[checks]]\ntrial = "yuan2025"\n'
                                    'data = "nodata.csv"\nrole = "calibration"\n'))
    with pytest.raises(ValidationSuiteError, match=r"checks"):
        load_suite(_suite(tmp_path, ""))


@pytest.mark.parametrize("options,message", [
    ({"replicates": -3}, "at least 2"), ({"replicates": 1}, "at least 2"),
    ({"replicates": 2.5}, "whole number"), ({"uncertainty": "draws"}, "'none'"),
    ({"roles": ("training",)}, "unknown role"),
])
def test_bad_run_options_are_refused_before_any_check_runs(bundled, options, message):
    # checked at the boundary: a negative count once reached numpy ("negative dimensions")
    with pytest.raises(ValidationSuiteError, match=message):
        validate(bundled, **options)


def test_the_command_refuses_a_missing_suite_with_exit_status_2(capsys, tmp_path):
    assert main(["validate", "cit_marrow_reservoir", "--out", str(tmp_path / "v")]) == 2
    assert "did you mean 'cit_marrow_reserve'" in capsys.readouterr().err
    assert not (tmp_path / "v").exists()


def test_a_trial_report_says_how_far_its_model_has_been_found_to_hold():
    # validation/results/cit_marrow_reserve.csv (plateletpd validate's recorded output) is
    # summarised by role in every trial report of that model; the counts are the file's
    from plateletpd.study.trial import bundled_trial, load_trial_spec
    from plateletpd.study.validation_results import (
        recorded_validation,
        validation_report_lines,
    )

    model = load_trial_spec(bundled_trial("yuan2025")).model  # the bundled fit's values
    table, record = recorded_validation(model.name)
    text = "\n".join(validation_report_lines(model))
    for role in ("calibration", "not fitted", "held out"):
        rows = table[table.role == role]
        assert f"{role} {int(rows.inside.sum())}/{len(rows)}" in text
    held_out_missed = table[(table.role == "held out") & ~table.inside]
    # one line per held-out row outside its interval and per held-out check the suite notes
    # (validation/cit_marrow_reserve.toml: RPTH 2023 is no longer blind to the entry rule)
    noted = [c for c in record["checks"] if c["role"] == "held out" and c.get("note")]
    assert text.count("\n- ") == len(held_out_missed) + len(noted)
    assert noted and all(c["note"] in text for c in noted)
    assert "not the one validated" not in text  # the record was made with this model
    # other parameter values: the record no longer describes the model, and says so
    changed = model.with_parameters({"het_ec50": 2 * model.parameters["het_ec50"].value})
    assert "not the one validated" in "\n".join(validation_report_lines(changed))


def test_a_model_without_a_recorded_validation_says_so():
    import plateletpd as pp
    from plateletpd.study.validation_results import validation_report_lines

    text = "\n".join(validation_report_lines(pp.load_model("friberg_platelets")))
    assert "No recorded validation of friberg_platelets" in text


def test_the_summary_counts_rows_in_the_central_half_and_the_median_percentile():
    # coverage of the 95% interval cannot tell honest intervals from too wide ones: a
    # probability-integral-transform count can (about half of the rows in the central
    # half if honest). Constructed table: 4 calibration rows at percentiles 10, 30, 60, 99
    # (2 central, median 45); 2 held-out rows at 50 and 80 (1 central, median 65)
    from plateletpd.study.validation_results import inside_by_role

    table = pd.DataFrame({
        "role": ["calibration"] * 4 + ["held out"] * 2,
        "inside": [True, True, True, False, True, True],
        "observed_percentile": [10.0, 30.0, 60.0, 99.0, 50.0, 80.0]})
    summary = inside_by_role(table).set_index("role")
    assert summary.loc["calibration", "central"] == 2
    assert summary.loc["calibration", "median_percentile"] == 45.0
    assert summary.loc["held out", "central"] == 1
    assert summary.loc["held out", "central_pct"] == 50.0
    # the boundaries belong to the central half (percentiles 25 and 75)
    edges = table.assign(observed_percentile=[25.0, 75.0, 24.9, 75.1, 50.0, 50.0])
    assert inside_by_role(edges).set_index("role").loc["calibration", "central"] == 2
    # a table without percentiles (an older record) still gives the coverage
    assert list(inside_by_role(table.drop(columns="observed_percentile")).columns) == \
        ["role", "rows", "inside", "inside_pct"]


def test_a_trial_report_gives_the_recorded_central_half_count():
    import plateletpd as pp
    from plateletpd.study.validation_results import recorded_validation, validation_report_lines

    table, _ = recorded_validation("cit_marrow_reserve")
    text = "\n".join(validation_report_lines(pp.load_model("cit_marrow_reserve")))
    central = table.observed_percentile.between(25, 75)
    for role in ("calibration", "not fitted", "held out"):
        rows = table.role == role
        assert f"{role} {int(central[rows].sum())}/{int(rows.sum())}, median percentile" in text


def test_re_running_one_check_into_a_record_gives_the_record_of_a_full_run(tmp_path, capsys):
    # a check's rows depend only on its own trial, seed, replicates and uncertainty, so a
    # record updated with one re-run check equals the record of running every check: rows,
    # run records and notes (two small held-out checks of the bundled suite)
    import json

    from plateletpd.study.validation import load_validation_record, merge_validation

    suite = _suite(tmp_path, "".join(
        f'[[checks]]\ntrial = "{name}"\ndata = "out_of_sample.csv"\nrole = "held out"\n'
        f'screened = 60\nnote = "{name} note"\n\n'
        for name in ("xu2018_rhtpo_rhil11_prophylaxis", "rpth2023_hetrombopag_rhtpo")))
    suite_text = suite.read_text().replace("replicates = 2", 'replicates = 2\nuncertainty = "none"')
    suite.write_text(suite_text)
    assert main(["validate", str(suite), "--out", str(tmp_path / "full")]) == 0
    full = load_validation_record(tmp_path / "full")
    one = validate(load_suite(suite), checks=(2,))
    assert set(one.table.check) == {2} and [r["check"] for r in one.runs] == [2]
    merged = merge_validation(full, one, 2, "none")
    pd.testing.assert_frame_equal(merged.table, full[0], check_dtype=False)
    assert list(merged.runs) == full[1]["checks"] and list(merged.notes) == full[1]["notes"]
    # the spread rows (Xu 2018's two nadirs published with SDs, check 1) are kept from the
    # record when another check is re-run, and replaced when their own is
    from plateletpd.study.validation import load_spread_record

    full_spread = load_spread_record(tmp_path / "full")
    assert len(full_spread) == 4 and set(full_spread.check) == {1}
    kept = merge_validation(full, one, 2, "none", spread=full_spread)
    pd.testing.assert_frame_equal(kept.spread, full_spread, check_dtype=False)
    rerun = merge_validation(full, validate(load_suite(suite), checks=(1,)), 2, "none",
                             spread=full_spread.assign(observed=-1.0))
    pd.testing.assert_frame_equal(rerun.spread, full_spread, check_dtype=False)
    # the command: --check with --update writes the merged record whole, saying what it did
    assert main(["validate", str(suite), "--check", "2", "--update", str(tmp_path / "full"),
                 "--out", str(tmp_path / "merged")]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "merged" / "validation.csv"),
                                  full[0])
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "merged" / "spread.csv"),
                                  full_spread)
    record = json.loads((tmp_path / "merged" / "provenance.json").read_text())
    assert record["updated_checks"] == [2]
    assert record["updated_from"]["created"] == full[1]["created"]
    # refused: a record whose kept checks were made with another model, or other replicates
    other = json.loads((tmp_path / "full" / "provenance.json").read_text())
    other["checks"][0]["model_hash"] = "0" * 64
    (tmp_path / "full" / "provenance.json").write_text(json.dumps(other))
    with pytest.raises(ValidationSuiteError, match=r"model hash 000000000000 \(check 1; now "
                                                   r"[0-9a-f]{12}\) in the checks kept"):
        merge_validation(load_validation_record(tmp_path / "full"), one, 2, "none")
    # the command refuses it before running any check (it would otherwise run for minutes)
    import plateletpd.study.validation as validation_module

    def no_run(*args, **kwargs):
        raise AssertionError("a check ran before the record was refused")
    original, validation_module.validate = validation_module.validate, no_run
    try:
        capsys.readouterr()
        assert main(["validate", str(suite), "--check", "2", "--update",
                     str(tmp_path / "full")]) == 2
        assert "model hash 000000000000" in capsys.readouterr().err
    finally:
        validation_module.validate = original
    with pytest.raises(ValidationSuiteError, match="replicates 2 \\(this run: 3\\)"):
        merge_validation(full, one, 3, "none")
    # refused: a kept check whose trial file changed since the record (by sha256)
    assert all(len(run["file_sha256"]) == 64 for run in full[1]["checks"])
    kept = dict(full[1]["checks"][0], file=str(tmp_path / "edited.toml"))
    (tmp_path / "edited.toml").write_text("# not the file the record was made from\n")
    edited = (full[0], dict(full[1], checks=[kept, full[1]["checks"][1]]))
    with pytest.raises(ValidationSuiteError, match="files of check 1 \\(edited.toml\\) "
                                                   "changed since the record"):
        merge_validation(edited, one, 2, "none")
    # bad requests: a check number the suite lacks; --update without --check; no record
    with pytest.raises(ValidationSuiteError, match="from 1 to 2"):
        validate(load_suite(suite), checks=(3,))
    capsys.readouterr()
    assert main(["validate", str(suite), "--update", str(tmp_path / "full")]) == 2
    assert "name them with --check N" in capsys.readouterr().err
    assert main(["validate", str(suite), "--check", "1", "--update",
                 str(tmp_path / "none")]) == 2
    assert "no validation record" in capsys.readouterr().err


def test_a_record_without_comparison_columns_takes_a_re_run_check_with_them(tmp_path):
    # the comparison columns (versus, comparison, chance_of_finding) exist only where a check
    # has comparison rows (docs/trial_files.md): a record made before any check had them
    # merges with a re-run check that has them, and gives the record of a full run; the
    # reverse too (a re-run without them into a record with them). Two small held-out
    # checks: Xu 2018 (no comparison rows) and Wang 2025 (comparison rows only)
    import io

    from plateletpd.study.check import COMPARISON_COLUMNS
    from plateletpd.study.validation import load_validation_record, merge_validation

    suite = _suite(tmp_path, "".join(
        f'[[checks]]\ntrial = "{name}"\ndata = "out_of_sample.csv"\nrole = "held out"\n'
        f'screened = 60\n\n'
        for name in ("xu2018_rhtpo_rhil11_prophylaxis", "wang2025_hetrombopag_rhil11")))
    suite.write_text(suite.read_text().replace(
        "replicates = 2", 'replicates = 2\nuncertainty = "none"'))
    assert main(["validate", str(suite), "--out", str(tmp_path / "full")]) == 0
    full = load_validation_record(tmp_path / "full")
    assert set(COMPARISON_COLUMNS) <= set(full[0].columns)
    assert full[0].loc[full[0].check == 1, "comparison"].isna().all()
    # an older record: check 1 alone, made before the comparison columns existed
    older = (full[0][full[0].check == 1].drop(columns=list(COMPARISON_COLUMNS)), full[1])
    def as_written(table):  # the record as validation.csv holds it (empty text read as NaN)
        return pd.read_csv(io.StringIO(table.to_csv(index=False)))
    merged = merge_validation(older, validate(load_suite(suite), checks=(2,)), 2, "none")
    pd.testing.assert_frame_equal(as_written(merged.table), full[0], check_dtype=False)
    # the reverse: check 1 re-run (no comparison rows) into the full record
    merged = merge_validation(full, validate(load_suite(suite), checks=(1,)), 2, "none")
    pd.testing.assert_frame_equal(as_written(merged.table), full[0], check_dtype=False)
    # a record made before checks said how they read each row (no `reading` column) keeps
    # its rows without it: the merged record is the full run's but for those rows' reading
    oldest = (older[0].drop(columns="reading"), full[1])
    merged = as_written(merge_validation(oldest, validate(load_suite(suite), checks=(2,)),
                                         2, "none").table)
    assert merged.loc[merged.check == 1, "reading"].isna().all()
    assert merged.loc[merged.check == 2, "reading"].notna().all()
    pd.testing.assert_frame_equal(merged.drop(columns="reading"),
                                  full[0].drop(columns="reading"), check_dtype=False)
    # any other column missing is still another version's record
    other = (full[0].drop(columns="observed_percentile"), full[1])
    with pytest.raises(ValidationSuiteError, match="columns differ .*the record lacks "
                                                   "observed_percentile; run every check"):
        merge_validation(other, validate(load_suite(suite), checks=(2,)), 2, "none")


def test_the_itp_suite_checks_every_bundled_itp_trial_and_no_fitted_row_as_held_out():
    # validation/itp_thrombopoiesis.toml (2026-12-04): every ITP trial file that names its
    # study is checked; its calibration rows are the ones scripts/fit_itp_calibration.py
    # fitted (Mei 2021's drug-arm rates, data/itp_summary.csv lines 2-4 and 6-8) and no
    # fitted row is called held out
    from plateletpd.study.trial import load_trial_spec

    suite = load_suite("itp_thrombopoiesis")
    covered = {check.trial.stem for check in suite.checks}
    for path in sorted((ROOT / "trials").glob("*.toml")):
        spec = load_trial_spec(path)
        if spec.extra.get("data_study") and spec.model.name == "itp_thrombopoiesis":
            assert path.stem in covered, path.name
    fitted = {2, 3, 4, 6, 7, 8}
    for check in suite.checks:
        assert check.role in ("calibration", "held out")
        if check.data.name == "itp_summary.csv":
            lines = set(check.lines or ())
            assert (check.role == "calibration") == bool(lines & fitted), check
            assert check.role != "calibration" or lines <= fitted, check
        else:  # the real-world study's overall rows, held out by fits/itp_calibration
            held = pd.read_csv(ROOT / "fits" / "itp_calibration" / "held_out.csv")
            assert check.role == "held out" and set(check.lines) == set(held.line), check
