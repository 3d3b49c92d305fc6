"""A course given at another interval than the fit's course studies: the bundled fit's
typical damage per cycle comes from 21- and 28-day regimens (its [[trials]]: Yuan 2025,
Soff 2019 and NHL-B CHOP every 21 days, the carboplatin label every 28), and a blind user
test (2026-12-07) gave RECITE's 14-day FOLFOX cycles that damage, about four times
FOLFOX's (models/cit_marrow_reserve.md, RECITE 2026). The trial warns, naming the range and
the fix, unless the regimen's depth is anchored or stated.

Properties that could fail: the range read from the fit's own trial files; a warning at 14
days and none at 21 or 28; none when the depth is stated or anchored.
"""

import warnings
from pathlib import Path

import pytest

from plateletpd.model.library import fit_course_cycle_days
from plateletpd.study.trial import CycleLengthWarning, load_trial_spec

ROOT = Path(__file__).resolve().parents[1]
FIT = "cit_marrow_reserve_calibration"


def test_the_range_is_the_fits_course_studies():
    # trials/yuan2025.toml, soff2019_romiplostim.toml, nhlb_chop.toml: 21; carboplatin_label
    # .toml: 28 (the fit's params.json lists the files)
    assert fit_course_cycle_days(FIT) == (21.0, 28.0)
    assert fit_course_cycle_days("cit_calibration") == ()   # no course study


def _written(tmp_path, cycle_days, extra=""):
    text = (ROOT / "trials" / "prophylaxis_cycles.toml").read_text()
    assert text.count("\ncycle_days = 21") == 1
    text = text.replace("\ncycle_days = 21", f"\ncycle_days = {cycle_days}", 1)
    if extra:
        assert text.count("\n[population]\n") == 1
        text = text.replace("\n[population]\n", f"\n[population]\n{extra}\n", 1)
    path = tmp_path / f"course_{cycle_days}.toml"
    path.write_text(text)
    return path


def _warnings(path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_trial_spec(path)
    return [w for w in caught if issubclass(w.category, CycleLengthWarning)]


@pytest.mark.parametrize("days, warned", [(14, True), (21, False), (28, False),
                                          (35, True)])
def test_a_cycle_length_outside_the_fits_warns(tmp_path, days, warned):
    caught = _warnings(_written(tmp_path, days))
    assert bool(caught) == warned
    if warned:
        message = str(caught[0].message)
        assert "outside the cycle lengths of the fit's course studies (21-28 days)" in message
        assert "[population] anchor" in message


def test_a_stated_or_anchored_depth_does_not_warn(tmp_path):
    assert not _warnings(_written(tmp_path, 14, "typical = { chemotherapy_sensitivity = 1.2 }"))
    anchored = _written(tmp_path, 14, 'anchor = { nadir_below = 50, percent = 25, source = '
                                      '"carboplatin label: PLT < 50 in 25%", subjects = 100 }')
    assert not _warnings(anchored)
