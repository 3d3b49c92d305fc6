"""A dosing sweep under the fit's uncertainty (``plateletpd sweep --uncertainty fit``): the
ranking's arithmetic on hand-made replicate tables, its replicate studies equal to those of
``plateletpd trial --uncertainty fit``, reproducibility, and errors with exit status 2."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

import plateletpd as pp
from plateletpd.cli import main
from plateletpd.study.sweep import parse_grid, write_sweep
from plateletpd.study.sweep_uncertainty import (SweepUncertaintyError, rank_rows,
                                                run_sweep_uncertainty)
from plateletpd.study.trial import bundled_trial, load_trial_spec
from plateletpd.study.uncertainty import run_uncertainty

ARM = "hetrombopag 7.5 mg"  # an arm of trials/yuan2025.toml


def replicate_table(values: dict[float, list[float]]) -> pd.DataFrame:
    """Replicates x rows of a one-dimensional dose grid: {dose: [value per replicate]}."""
    rows = []
    for dose, series in values.items():
        for replicate, value in enumerate(series):
            rows.append({"replicate": replicate, "dose": dose, "arm": "a",
                         "regimen": f"drug {dose} mg", "response_pct": value})
    return pd.DataFrame(rows)


def test_ranking_by_hand():
    # three studies; dose 5 is best in studies 0 and 2, ties dose 10 in study 1
    table = replicate_table({2.5: [10.0, 20.0, 30.0], 5: [40.0, 50.0, 60.0],
                             10: [35.0, 50.0, 55.0]})
    ranking, left_out = rank_rows(table, ["dose"], "response_pct", "higher")
    assert left_out == 0 and (ranking.replicates == 3).all()
    best = dict(zip(ranking.dose, ranking.probability_best))
    assert best == pytest.approx({2.5: 0.0, 5: (1 + 0.5 + 1) / 3, 10: 0.5 / 3})
    assert list(ranking.reference) == [False, True, False]      # medians 20, 50, 50: first max
    reference = ranking[ranking.reference].iloc[0]
    assert reference.difference_median == 0 and reference.probability_better == 0.5
    ten = ranking[ranking.dose == 10].iloc[0]
    # paired differences from dose 5: -5, 0, -5
    assert ten.difference_median == -5.0
    assert ten.difference_low == pytest.approx(np.percentile([-5, 0, -5], 2.5))
    assert ten.probability_better == pytest.approx(0.5 / 3)    # one tie, no win
    low = ranking[ranking.dose == 2.5].iloc[0]
    assert (low["median"], low["low"], low["high"]) == pytest.approx(
        (20.0, np.percentile([10, 20, 30], 2.5), np.percentile([10, 20, 30], 97.5)))


def test_lower_is_better_reverses_the_ranking():
    table = replicate_table({1: [5.0, 6.0], 2: [3.0, 4.0]})
    higher, _ = rank_rows(table, ["dose"], "response_pct", "higher")
    lower, _ = rank_rows(table, ["dose"], "response_pct", "lower")
    assert list(higher.probability_best) == [1.0, 0.0]
    assert list(lower.probability_best) == [0.0, 1.0]
    assert list(lower.reference) == [False, True]


def test_a_study_with_an_undefined_endpoint_is_left_out_and_counted():
    table = replicate_table({1: [5.0, np.nan, 7.0], 2: [6.0, 1.0, 8.0]})
    ranking, left_out = rank_rows(table, ["dose"], "response_pct", "higher")
    assert left_out == 1 and (ranking.replicates == 2).all()
    assert list(ranking.probability_best) == [0.0, 1.0]
    with pytest.raises(SweepUncertaintyError, match="undefined"):
        rank_rows(replicate_table({1: [np.nan], 2: [1.0]}), ["dose"], "response_pct")
    with pytest.raises(SweepUncertaintyError, match="'higher' or 'lower'"):
        rank_rows(table, ["dose"], "response_pct", "more")


@pytest.fixture(scope="module")
def one_arm():
    spec = load_trial_spec(bundled_trial("yuan2025"), subjects=80, seed=11)
    design = next(a for a in spec.arms if a.name == ARM)
    return replace(spec, arms=(design,))


@pytest.fixture(scope="module")
def swept(one_arm):
    return run_sweep_uncertainty(one_arm, parse_grid(["dose=2.5,7.5"]), [ARM],
                                 replicates=3)


def test_each_replicate_is_the_trials_replicate_study(one_arm, swept):
    # replicate r of the sweep draws the parameters and patients that replicate r of
    # `plateletpd trial --uncertainty fit` draws: the cell at the arm's own dose (7.5 mg)
    # gives that replicate trial's arm summary exactly
    trial = run_uncertainty(one_arm, replicates=3).replicates
    drawn = trial[trial.parameters == "drawn"].set_index("replicate")
    cells = swept.replicates[swept.replicates.dose == 7.5].set_index("replicate")
    assert list(cells.index) == [0, 1, 2]
    for column in ("response_pct", "mean_plt_day_14"):
        assert np.array_equal(cells[column].to_numpy(), drawn.loc[cells.index, column]
                              .to_numpy(), equal_nan=True), column
    # the studies differ (parameters drawn, not the point estimates three times)
    assert cells["mean_plt_day_14"].nunique() == 3


def test_the_ranking_is_reproducible_and_written_with_the_sweep(one_arm, swept, tmp_path):
    again = run_sweep_uncertainty(one_arm, parse_grid(["dose=2.5,7.5"]), [ARM],
                                  replicates=3)
    pd.testing.assert_frame_equal(again.ranking, swept.ranking)
    assert swept.ranking.probability_best.sum() == pytest.approx(1.0)
    plain = pd.DataFrame(swept.replicates[swept.replicates.replicate == 0]
                         .drop(columns=["replicate", "seed"]))
    paths = write_sweep(plain, one_arm, {"dose": [2.5, 7.5]}, "response_pct", tmp_path,
                        swept)
    names = {p.name for p in paths}
    assert {"sweep_ranking.csv", "sweep_replicates.csv", "ranking_dictionary.csv"} <= names
    written = pd.read_csv(tmp_path / "sweep_ranking.csv")
    assert list(written.columns) == list(swept.ranking.columns)
    dictionary = pd.read_csv(tmp_path / "ranking_dictionary.csv")
    assert set(written.columns) == set(dictionary.column)


def test_cli_refuses_a_sweep_under_uncertainty_without_a_fit_or_with_one_study(tmp_path,
                                                                               capsys):
    common = ["sweep", "yuan2025", "--arm", ARM, "--grid", "dose=2.5,7.5", "--n", "40",
              "--uncertainty", "fit"]
    assert main(common + ["--fit", "none"]) == 2
    assert "no fit" in capsys.readouterr().err
    assert main(common + ["--replicates", "1"]) == 2
    assert "at least 2 replicate" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
