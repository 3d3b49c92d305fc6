"""The twenty-third session's candidate structure for cit_marrow_reserve (a bounded
progenitor niche and a sharp exhaustion threshold on the reserve's regeneration; refitted,
not adopted: models/cit_marrow_reserve.md, "The reserve's threshold and the bounded niche"),
as scripts/threshold_niche_variant.py writes it from the bundled model file. These tests keep
the candidate reproducible and its two new terms doing what the card says, read off the
model's own right-hand side; the script's bad input is refused with exit status 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import plateletpd as pp
from plateletpd.numerics.kernels import initial_state, python_rhs

from helpers import reserve_per_capita_growth

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "threshold_niche_variant.py"
WEIGHT = {"body_weight": 65.0}  # kg, the model file's default subject, given explicitly


def run_script(*arguments):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, arguments)],
                          capture_output=True, text=True)


@pytest.fixture(scope="module")
def candidate(tmp_path_factory):
    path = tmp_path_factory.mktemp("candidate") / "cit_marrow_reserve_candidate.toml"
    completed = run_script(path)
    assert completed.returncode == 0, completed.stderr
    return pp.load_model(path)


def test_the_candidate_keeps_the_healthy_steady_state(candidate):
    # both new terms are 1 in health (A = 1, R = 1), so nothing moves without a stimulus
    result = pp.simulate(candidate, None, days=60, covariates=WEIGHT)
    baseline = candidate.parameters["platelets_baseline"].value
    assert np.allclose(result["platelets"], baseline, rtol=1e-9)


def test_the_candidate_niche_is_bounded_but_regrowth_from_a_remnant_is_not(candidate):
    # the committed pool's per-capita growth is k_prol ((1 + d A) R / (R + d (P / P0) A / A_b)
    # - 1), A_b = A / (1 + (A - 1) / (K - 1)), K = niche_max_expansion: a remnant (P -> 0)
    # regrows at k_prol d A, and the pool comes to rest at P0 x R x A_b instead of P0 x R x A.
    # With the TPO site held near full by rhTPO (no chemotherapy, reserve 0.6), A is read from
    # the remnant's growth; the resting size must then be where the bound puts it, for the
    # candidate's K and for an effectively unbounded one
    rhs = python_rhs(candidate)
    names = list(candidate.state_names)
    d = candidate.parameters["progenitor_density_feedback"].value
    k_prol = 1.0 / candidate.parameters["progenitor_transit_time"].value

    def growth(p, pool):
        y = initial_state(candidate, p)
        p0 = y[names.index("progenitors")]
        y[names.index("rhtpo_central")] = 50.0  # ug in 7.8 L: about 6,400 pg/mL, 12 x tpo_ec50
        y[names.index("reserve")] = 0.6
        y[names.index("progenitors")] = pool * p0
        return rhs(0.0, y, p, np.zeros(len(y)))[names.index("progenitors")] / (pool * p0)

    for expansion in (candidate.parameters["niche_max_expansion"].value, 1000.0):
        p = candidate.parameter_vector({"niche_max_expansion": expansion}, WEIGHT)
        amplification = growth(p, 1e-12) / (k_prol * d)
        assert amplification > 3.0  # a strong stimulus, so the bound matters
        capacity = 0.6 * amplification / (1 + (amplification - 1) / (expansion - 1))
        assert growth(p, capacity) == pytest.approx(0.0, abs=1e-12)
        assert growth(p, 0.99 * capacity) > 0 > growth(p, 1.01 * capacity)
        if expansion < 10:  # the candidate's bound (5): the pool rests well below R x A
            assert capacity < 0.8 * 0.6 * amplification


@pytest.mark.parametrize("level, exponent", [(0.3, 1.0), (0.3, 3.0)])
def test_the_candidate_reserve_regenerates_through_a_threshold(candidate, level, exponent):
    # per-capita regeneration r (1 - R) x R^m (1 + K^m) / (R^m + K^m), K =
    # reserve_exhaustion_level, m = reserve_exhaustion_exponent (m = 1: the bundled form)
    p = candidate.parameter_vector({"reserve_exhaustion_level": level,
                                    "reserve_exhaustion_exponent": exponent}, WEIGHT)
    rate = candidate.parameters["reserve_regeneration_rate"].value
    per_capita = reserve_per_capita_growth(candidate, p, (0.1, 0.4, 1.0))
    for reserve in per_capita:
        factor = reserve ** exponent * (1 + level ** exponent) / (reserve ** exponent
                                                                   + level ** exponent)
        assert per_capita[reserve] == pytest.approx(rate * (1 - reserve) * factor, rel=1e-12)
    assert per_capita[1.0] == 0.0
    # the sharp form: a pool at a third of the level refills at under a tenth of the per-cell
    # rate of one at 40% (0.037 x 0.9 against 0.722 x 0.6: 0.076); the gradual form at two
    # thirds of it (0.325 x 0.9 against 0.743 x 0.6: 0.66)
    ratio = per_capita[0.1] / per_capita[0.4]
    assert (ratio < 0.1) if exponent > 1 else (ratio > 0.3)


def test_the_script_refuses_bad_input_with_exit_status_2(tmp_path):
    for option, value in (("--niche-max-expansion", "1"), ("--exhaustion-level", "-0.1"),
                          ("--exhaustion-exponent", "0.5"), ("--regeneration-rate", "2")):
        completed = run_script(tmp_path / "x.toml", option, value)
        assert completed.returncode == 2, (option, completed.stderr)
        assert option in completed.stderr and "must lie in" in completed.stderr
        assert not (tmp_path / "x.toml").exists()
    completed = run_script(tmp_path / "missing" / "x.toml")
    assert completed.returncode == 2 and "does not exist" in completed.stderr
    completed = run_script(ROOT / "models" / "cit_marrow_reserve.toml")
    assert completed.returncode == 2 and "refusing to overwrite" in completed.stderr
