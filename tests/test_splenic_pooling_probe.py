"""The scratch model of scripts/splenic_pooling_probe.py (models/cit_marrow_reserve.md,
"Open finding: splenic pooling as a second cause of persistence"): the properties the
card's reading of the probe rests on, each of which a wrong edit of the model text breaks."""
import sys
from pathlib import Path

import numpy as np
import pytest

import plateletpd as pp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import splenic_pooling_probe as probe  # noqa: E402

WEIGHT = {"body_weight": 65.0}  # kg, the model file's default subject
DAYS = np.arange(0.0, 57.0, 0.5)
# a heavy chemotherapy dose on day 1 and romiplostim from day 22: depletion, recovery and a
# stimulated rise, so that the comparisons below cover every phase of the dynamics
REGIMEN = "chemotherapy 2 dose d1 + romiplostim 5 ug/kg weekly d22-50"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pooling")
    text = (ROOT / "models" / "cit_marrow_reserve.toml").read_text()
    (folder / "variant.toml").write_text(probe.variant_text(text))
    return pp.load_model(ROOT / "models" / "cit_marrow_reserve.toml"), \
        pp.load_model(folder / "variant.toml")


def run(model, **params):
    result = pp.simulate(model, REGIMEN, times=DAYS, params=params, covariates=WEIGHT)
    return result.output("platelets")[0], result.output("tpo")[0]


def test_a_healthy_spleen_changes_nothing(models):
    bundled, variant = models
    # v = 1 gives a circulating share of exactly 1: the same counts and TPO as the model file
    for got, expected in zip(run(variant), run(bundled)):
        np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_pooling_scales_the_count_and_leaves_tpo_and_production_alone(models):
    _, variant = models
    share = probe.HEALTHY_POOL_SHARE
    ratio = share / (1 - share)
    healthy_count, healthy_tpo = run(variant)
    pooled_count, pooled_tpo = run(variant, spleen_volume_ratio=3.0)
    # analytic: the pool over the circulating mass grows with the volume, so the measured
    # count is (1 + r0) / (1 + 3 r0) of the healthy-spleen patient's at every time (0.61 at
    # r0 = 0.3 / 0.7), before, during and after the insult and the drug
    np.testing.assert_allclose(pooled_count / healthy_count, (1 + ratio) / (1 + 3 * ratio),
                               rtol=1e-9)
    # the whole-body mass clears TPO (probe's docstring: hypersplenism does not lower
    # production), so TPO is the healthy-spleen patient's: 52 pg/mL at the start
    # (tpo_baseline, Hou 1998) and identical through the course
    np.testing.assert_allclose(pooled_tpo, healthy_tpo, rtol=1e-9)
    assert pooled_tpo[0] == pytest.approx(52.0, rel=1e-9)
    # the pooled patient starts below 250 at a normal TPO: the phenotype of the probe
    assert pooled_count[0] == pytest.approx(250 * (1 + ratio) / (1 + 3 * ratio), rel=1e-9)
