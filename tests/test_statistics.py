"""Exact binomial intervals and Kaplan-Meier medians against hand-computed cases."""

import math

import numpy as np
import pytest

from plateletpd.study.statistics import binomial_interval, kaplan_meier


def test_clopper_pearson_closed_forms():
    # x = 0: upper = 1 - (alpha/2)^(1/n); x = n: lower = (alpha/2)^(1/n) (closed forms)
    assert binomial_interval(0, 10) == pytest.approx((0.0, 1 - 0.025 ** 0.1))
    assert binomial_interval(10, 10) == pytest.approx((0.025 ** 0.1, 1.0))
    # 5/10: (0.1871, 0.8129), the textbook Clopper-Pearson interval
    assert binomial_interval(5, 10) == pytest.approx((0.1871, 0.8129), abs=1e-4)
    assert all(math.isnan(v) for v in binomial_interval(0, 0))


def test_kaplan_meier_without_censoring_is_the_empirical_survival():
    curve = kaplan_meier([1, 2, 3, 4, 5, 6], [True] * 6)
    np.testing.assert_allclose(curve.survival, [5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6, 0])
    assert curve.median() == 3.0  # survival first reaches 0.5 at t = 3


def test_kaplan_meier_with_censoring_hand_computed():
    # t=1: 6 at risk, 1 event -> 5/6; t=2: 5 at risk, 1 event (1 censored) -> 4/6;
    # t=3: 3 at risk, 1 event -> 4/6 * 2/3 = 0.444: median 3
    curve = kaplan_meier([1, 2, 2, 3, 4, 5], [True, True, False, True, True, False])
    np.testing.assert_allclose(curve.times, [1, 2, 3, 4])
    np.testing.assert_allclose(curve.survival, [5 / 6, 4 / 6, 4 / 9, 2 / 9])
    assert list(curve.at_risk) == [6, 5, 3, 2]
    # Greenwood: 1/(6*5) + 1/(5*4) + 1/(3*2) at t = 3
    assert curve.greenwood[2] == pytest.approx(1 / 30 + 1 / 20 + 1 / 6)
    assert curve.median() == 3.0


def test_median_is_missing_when_fewer_than_half_have_the_event():
    curve = kaplan_meier([1, 5, 5, 5], [True, False, False, False])
    assert math.isnan(curve.median())


def test_median_interval_contains_the_median_and_narrows_with_n():
    rng = np.random.default_rng(3)
    small = kaplan_meier(rng.exponential(10, 40), np.ones(40, bool))
    large = kaplan_meier(rng.exponential(10, 4000), np.ones(4000, bool))
    for curve in (small, large):
        low, high = curve.median_interval()
        assert low <= curve.median() <= high
    # exponential with mean 10: true median 10 ln 2 = 6.93
    low, high = large.median_interval()
    assert low < 10 * math.log(2) < high
    assert (high - low) < (small.median_interval()[1] - small.median_interval()[0]) / 4
