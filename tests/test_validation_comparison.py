"""Two validation records compared (plateletpd.study.validation_comparison, `plateletpd
compare`): a candidate fit or model judged against the one it would replace on the same
rows, per role. Cheap: records are written by hand or read from validation/results/."""
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from plateletpd.cli import main
from plateletpd.study.validation import ValidationSuiteError
from plateletpd.study.validation_comparison import compare_validations, comparison_markdown
from plateletpd.study.validation_results import inside_by_role

ROOT = Path(__file__).resolve().parents[1]
BUNDLED_RECORD = ROOT / "validation" / "results" / "cit_marrow_reserve.csv"


def _row(line, role, observed, predicted, low, high, percentile, trial="t", arm="a"):
    return {"check": 1, "trial": trial, "role": role, "data": "d.csv", "line": line,
            "arm": arm, "endpoint": "nadir_plt", "observed": observed,
            "predicted": predicted, "interval_low": low, "interval_high": high,
            "inside": low <= observed <= high, "observed_percentile": percentile}


def _record(folder: Path, rows: list[dict], created: str) -> Path:
    folder.mkdir()
    pd.DataFrame(rows).to_csv(folder / "validation.csv", index=False)
    (folder / "provenance.json").write_text(json.dumps(
        {"created": created, "replicates": 40, "uncertainty": "fit", "checks": []}))
    return folder


@pytest.fixture
def two_records(tmp_path):
    # invented numbers (a record's shape, not data): row 1 comes inside, row 2 goes
    # outside, row 3 stays inside, row 4 is only in the first, row 5 only in the second
    first = _record(tmp_path / "first", [
        _row(1, "held out", 50.0, 80.0, 60.0, 100.0, 1.0),
        _row(2, "held out", 30.0, 35.0, 20.0, 50.0, 40.0),
        _row(3, "calibration", 10.0, 11.0, 5.0, 15.0, 45.0),
        _row(4, "held out", 70.0, 71.0, 60.0, 80.0, 48.0)], "2026-12-05T10:00:00+00:00")
    second = _record(tmp_path / "second", [
        _row(1, "held out", 50.0, 55.0, 40.0, 70.0, 30.0),
        _row(2, "held out", 30.0, 45.0, 35.0, 60.0, 1.5),
        _row(3, "calibration", 10.0, 10.0, 6.0, 14.0, 50.0),
        _row(5, "not fitted", 70.0, 71.0, 60.0, 80.0, 48.0)], "2026-12-05T22:00:00+00:00")
    return first, second


def test_rows_that_moved_and_the_counts_per_role(two_records):
    comparison = compare_validations(*two_records)
    changes = dict(zip(comparison.rows.line, comparison.rows.change))
    assert changes == {1: "came inside", 2: "went outside", 3: ""}
    summary = comparison.summary.set_index("role")
    # only the rows both hold are counted (row 4 and row 5 are apart)
    assert summary.loc["held out", ["rows", "inside_first", "inside_second"]].tolist() == \
        [2, 1, 1]
    assert summary.loc["calibration", ["inside_first", "inside_second"]].tolist() == [1, 1]
    assert "not fitted" not in summary.index
    assert summary.loc["held out", "median_percentile_first"] == pytest.approx(20.5)
    assert summary.loc["held out", "median_percentile_second"] == pytest.approx(15.75)
    assert comparison.only_first.line.tolist() == [4]
    assert comparison.only_second.line.tolist() == [5]


def test_a_row_whose_role_differs_is_counted_under_the_second_and_named(two_records):
    # invented (a record's shape): the second record fits row 3 (calibration) where the
    # first held it out; the counts use the second's role and the report names the row
    first, second = two_records
    table = pd.read_csv(first / "validation.csv")
    table.loc[table.line == 3, "role"] = "held out"
    table.to_csv(first / "validation.csv", index=False)
    comparison = compare_validations(first, second)
    assert comparison.role_changed.line.tolist() == [3]
    assert comparison.role_changed.role_first.tolist() == ["held out"]
    summary = comparison.summary.set_index("role")
    assert summary.loc["calibration", "rows"] == 1
    assert summary.loc["held out", "rows"] == 2
    report = comparison_markdown(comparison)
    assert "Rows whose role differs between the records (1)" in report
    assert "held out in the first, calibration in the second" in report
    # the same records with equal roles name nothing
    assert "role differs" not in comparison_markdown(compare_validations(second, second))


def test_the_report_says_how_many_replicate_studies_its_intervals_rest_on(two_records):
    # the noise note names the records' replicate counts (40 in the invented provenance of
    # _record; 80 written here), and falls back to words when a record does not say
    first, second = two_records
    assert "With 40 replicate studies per check" in comparison_markdown(
        compare_validations(first, second))
    (second / "provenance.json").write_text(json.dumps({"replicates": 80, "checks": []}))
    assert "With 40 and 80 replicate studies per check" in comparison_markdown(
        compare_validations(first, second))
    for record in (first, second):
        (record / "provenance.json").write_text(json.dumps({"checks": []}))
    assert "With a few dozen replicate studies per check" in comparison_markdown(
        compare_validations(first, second))


def test_a_record_compared_with_itself_moves_nothing_and_keeps_its_counts():
    # the bundled record (validation/results/): every row matched, none moved, and the
    # counts per role are the record's own (validation_results.inside_by_role); through the
    # public API as a script would call it
    import plateletpd as pp

    comparison = pp.compare_validations(BUNDLED_RECORD, BUNDLED_RECORD)
    table = pd.read_csv(BUNDLED_RECORD)
    assert len(comparison.rows) == len(table) and comparison.moved.empty
    own = inside_by_role(table).set_index("role")
    summary = comparison.summary.set_index("role")
    assert (summary.inside_first == own.inside).all()
    assert (summary.inside_second == own.inside).all()
    assert (summary.rows == own.rows).all()
    # the intervals' widening over the shared rows (all of them) is the record's own
    from plateletpd.study.interval_calibration import calibrate_intervals

    alone = calibrate_intervals(table)
    for found in comparison.calibrations:
        assert (found.factor, found.rows, found.inside) == \
            (alone.factor, alone.rows, alone.inside)
    assert f"**{alone.factor:.2f}**" in comparison_markdown(comparison)


def test_records_on_different_data_or_with_nothing_in_common_are_refused(two_records,
                                                                          tmp_path):
    first, second = two_records
    table = pd.read_csv(second / "validation.csv")
    table.loc[table.line == 2, "observed"] = 31.0  # another version of the data
    other = tmp_path / "other"
    shutil.copytree(second, other)
    table.to_csv(other / "validation.csv", index=False)
    with pytest.raises(ValidationSuiteError, match="observed 30 .* but 31 .*different data"):
        compare_validations(first, other)

    apart = _record(tmp_path / "apart", [_row(9, "held out", 1.0, 1.0, 0.0, 2.0, 50.0,
                                              trial="another")], "2026-12-05")
    with pytest.raises(ValidationSuiteError, match="share no row"):
        compare_validations(first, apart)

    twice = _record(tmp_path / "twice", [_row(1, "held out", 50.0, 55.0, 40.0, 70.0, 30.0)] * 2,
                    "2026-12-05")
    with pytest.raises(ValidationSuiteError, match="more than once"):
        compare_validations(first, twice)

    bare = tmp_path / "bare"
    bare.mkdir()
    pd.DataFrame([{"trial": "t"}]).to_csv(bare / "validation.csv", index=False)
    (bare / "provenance.json").write_text("{}")
    with pytest.raises(ValidationSuiteError, match="needs the columns"):
        compare_validations(first, bare)


def test_the_command_writes_the_comparison_and_gives_status_2_on_bad_input(two_records,
                                                                             tmp_path, capsys):
    first, second = two_records
    out = tmp_path / "out"
    assert main(["compare", str(first), str(second), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "held out     1/2 -> 1/2" in printed and "came inside" in printed
    written = pd.read_csv(out / "comparison.csv")
    assert sorted(written.line) == [1, 2, 3]
    report = (out / "comparison.md").read_text()
    assert "## Rows that came inside under the second record (1)" in report
    assert "Rows only the first record holds (1)" in report
    record = json.loads((out / "provenance.json").read_text())
    assert record["compared"]["second"]["provenance"]["created"].startswith("2026-12-05T22")

    assert main(["compare", str(first), str(tmp_path / "missing")]) == 2
    assert "no validation record" in capsys.readouterr().err
