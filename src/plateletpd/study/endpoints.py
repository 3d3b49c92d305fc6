"""Platelet endpoints of a simulated arm, matched to published summary rows.

Per-subject values are computed from each patient's platelet course (hourly grid) relative
to the row's day 0 (``treatment_start``, ``entry`` or ``chemotherapy``), then summarised by
the row's statistic (mean, median, proportion). Crossing times are interpolated and
responses use a logistic indicator of width :data:`RESPONSE_WIDTH` around the threshold, so
that arm-level predictions change smoothly with the parameters (an optimiser needs that;
with hard thresholds a proportion over a fixed virtual cohort is a step function). A time to
a threshold never reached is censored at the end of follow-up (the arm's ``follow_up_days``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from plateletpd.study.cohort import ArmResult, _logistic, auc, crossing_time, values_at
from plateletpd.errors import PlateletPDError

#: logistic width (x10^9/L) of the smooth response indicator; 2 means a count 4 above the
#: threshold counts as 0.88 of a responder
RESPONSE_WIDTH = 2.0
DAY0 = ("treatment_start", "entry", "chemotherapy")


@dataclass(frozen=True)
class ResponseRule:
    """A responder reaches ``threshold`` or rises by ``rise`` over day 0 within ``by_day``."""

    threshold: float | None = 100.0
    rise: float | None = 50.0
    by_day: float = 14.0

    def __post_init__(self):
        if self.threshold is None and self.rise is None:
            raise PlateletPDError("a response rule needs a threshold, a rise, or both")


def parse_threshold(text) -> tuple[float | None, float | None]:
    """``"100"`` -> (None, 100); ``"from <=50 to >=100"`` -> (50, 100); other text -> (None, None)."""
    text = str(text).strip()
    match = re.fullmatch(r"from\s*<=?\s*([\d.]+)\s*to\s*>=?\s*([\d.]+)", text)
    if match:
        return float(match.group(1)), float(match.group(2))
    try:
        return None, float(text)
    except ValueError:
        return None, None


def _day0(arm: ArmResult, day0: str) -> np.ndarray:
    if day0 not in DAY0:
        raise PlateletPDError(f"day0 must be one of {', '.join(DAY0)}, got {day0!r}")
    return {"treatment_start": arm.start_time, "entry": arm.entry_time,
            "chemotherapy": np.zeros(arm.n)}[day0]


def _at(arm: ArmResult, when: np.ndarray) -> np.ndarray:
    return values_at(arm.times, arm.platelets, when)


def _window(arm: ArmResult, start: np.ndarray, end: np.ndarray | None = None) -> np.ndarray:
    mask = arm.times[None, :] >= start[:, None]
    if end is not None:
        mask &= arm.times[None, :] <= end[:, None]
    return mask


def subject_values(arm: ArmResult, endpoint: str, threshold=None, day=None,
                   day0: str = "treatment_start", rule: ResponseRule | None = None,
                   default_threshold: float = 100.0) -> np.ndarray:
    """One value per eligible subject (NaN where undefined) for ``endpoint``."""
    t0 = _day0(arm, day0)
    count = arm.platelets
    end = arm.times[-1]
    low, level = parse_threshold(threshold) if threshold is not None else (None, None)
    level = default_threshold if level is None else level
    after_t0 = _window(arm, t0)
    masked = np.where(after_t0, count, np.inf)
    nadir_time = arm.times[np.argmin(masked, axis=1)]
    if endpoint == "plt_count":
        return _at(arm, t0 + day)
    if endpoint == "plt_change_from_baseline":
        return _at(arm, t0 + day) - _at(arm, t0)
    if endpoint == "plt_percent_change":
        return 100.0 * (_at(arm, t0 + day) / _at(arm, t0) - 1.0)
    if endpoint == "nadir_plt":
        return masked.min(axis=1)
    if endpoint == "peak_plt":
        return np.where(_window(arm, nadir_time), count, -np.inf).max(axis=1)
    if endpoint == "time_to_peak_days":
        return arm.times[np.argmax(np.where(_window(arm, nadir_time), count, -np.inf),
                                   axis=1)] - t0
    if endpoint == "time_to_rise_onset_days":
        return nadir_time - t0
    if endpoint == "plt_auc_day0_21":
        return auc(arm.times, count, t0, 21.0)
    if endpoint == "time_to_threshold_days":
        if low is not None:  # "from <= low to >= level": both crossings measured
            start = crossing_time(arm.times, count, low, after=np.zeros(arm.n))
            reached = crossing_time(arm.times, count, level, after=nadir_time, upward=True)
            return np.where(np.isnan(reached), end, reached) - start
        reached = crossing_time(arm.times, count, level, after=np.maximum(t0, nadir_time),
                                upward=True)
        return np.where(np.isnan(reached), end, reached) - t0
    if endpoint in ("duration_below_days", "duration_thrombocytopenia_days"):
        down = crossing_time(arm.times, count, level, after=t0)
        up = crossing_time(arm.times, count, level, after=nadir_time, upward=True)
        duration = np.where(np.isnan(up), end, up) - down
        return np.where(np.isnan(down), 0.0, duration)
    if endpoint in ("response_proportion", "cumulative_response_proportion"):
        rule = rule or ResponseRule()
        by_day = float(day) if day is not None and not math.isnan(day) else rule.by_day
        window = _window(arm, t0, t0 + by_day)
        best = np.where(window, count, -np.inf).max(axis=1)
        indicators = []
        if rule.threshold is not None:
            indicators.append(_logistic((best - rule.threshold) / RESPONSE_WIDTH))
        if rule.rise is not None:
            indicators.append(_logistic((best - _at(arm, t0) - rule.rise) / RESPONSE_WIDTH))
        return np.maximum.reduce(indicators)
    raise PlateletPDError(f"no simulation rule for endpoint {endpoint!r}")


def summarise(values: np.ndarray, statistic: str) -> float:
    """Arm-level prediction on the data's fitting scale (proportions as fractions)."""
    values = values[np.isfinite(values)]
    if values.size == 0:
        return math.nan
    if statistic == "median":
        return float(np.median(values))
    return float(np.mean(values))  # mean, and percent/count/proportion as a fraction
