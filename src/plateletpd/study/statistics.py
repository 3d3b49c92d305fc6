"""Summary statistics for virtual trials: exact binomial intervals and Kaplan-Meier medians.

* :func:`binomial_interval`: Clopper-Pearson exact interval (Clopper CJ, Pearson ES.
  Biometrika 1934;26:404).
* :func:`kaplan_meier`: product-limit estimate with Greenwood variance; the median is the
  first time the survival falls to 0.5 or below, and its 95% interval is the set of times
  whose log-log-transformed survival interval contains 0.5 (Brookmeyer R, Crowley J.
  Biometrics 1982;38:29, with the log-log transform of Kalbfleisch and Prentice).
* :func:`sample_sd_standard_error`: the standard error of a sample SD for values of a given
  kurtosis (the variance of a sample variance, e.g. Cramer H. Mathematical Methods of
  Statistics, 1946, section 27.4, and the delta method).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054


def binomial_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval of a proportion; (nan, nan) when n is 0."""
    if n == 0:
        return math.nan, math.nan
    alpha = 1.0 - level
    from scipy import stats  # here, not at import: scipy.stats takes seconds to load

    low = 0.0 if successes == 0 else stats.beta.ppf(alpha / 2, successes, n - successes + 1)
    high = 1.0 if successes == n else stats.beta.ppf(1 - alpha / 2, successes + 1,
                                                     n - successes)
    return float(low), float(high)


@dataclass(frozen=True)
class KaplanMeier:
    """Product-limit curve: event times, survival after each, Greenwood variance sum."""

    times: np.ndarray
    survival: np.ndarray
    greenwood: np.ndarray  # cumulative sum of d / (n (n - d))
    at_risk: np.ndarray

    def median(self) -> float:
        below = np.flatnonzero(self.survival <= 0.5)
        return float(self.times[below[0]]) if below.size else math.nan

    def median_interval(self) -> tuple[float, float]:
        """95% interval of the median (Brookmeyer-Crowley, log-log survival bands)."""
        inside = []
        for s, g in zip(self.survival, self.greenwood):
            if not 0.0 < s < 1.0 or not math.isfinite(g):
                inside.append(False)
                continue
            spread = Z95 * math.sqrt(g) / abs(math.log(s))
            low, high = s ** math.exp(spread), s ** math.exp(-spread)
            inside.append(low <= 0.5 <= high)
        inside = np.asarray(inside, dtype=bool)
        if not inside.any():
            median = self.median()
            return median, median
        first = float(self.times[np.argmax(inside)])
        last_index = np.flatnonzero(inside)[-1]
        # the interval runs until the next event time after the last time that contains 0.5
        last = float(self.times[last_index + 1]) if last_index + 1 < len(self.times) \
            else math.nan
        return first, last


def kaplan_meier(time: np.ndarray, event: np.ndarray) -> KaplanMeier:
    """Kaplan-Meier estimate from times and event flags (False = censored at that time)."""
    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=bool)
    keep = np.isfinite(time)
    time, event = time[keep], event[keep]
    distinct = np.unique(time[event])
    survival, greenwood, at_risk = [], [], []
    s, g = 1.0, 0.0
    for t in distinct:
        n = int(np.sum(time >= t))
        d = int(np.sum((time == t) & event))
        s *= 1.0 - d / n
        g += d / (n * (n - d)) if n > d else math.inf
        survival.append(s)
        greenwood.append(g)
        at_risk.append(n)
    return KaplanMeier(distinct, np.asarray(survival), np.asarray(greenwood),
                       np.asarray(at_risk))


def sample_sd_standard_error(sd, n, kurtosis=3.0):
    """The standard error of a sample SD ``sd`` of ``n`` values whose kurtosis is
    ``kurtosis`` (m4 / m2^2; 3 for normal values): SD / 2 x sqrt((kurtosis - 1) / n +
    2 / (n (n - 1))), the delta method on the variance of a sample variance,
    Var(s^2) = sigma^4 (kurtosis / n - (n - 3) / (n (n - 1))). For normal values it is
    SD / sqrt(2 (n - 1)); heavier tails make it larger (an exponential's, kurtosis 9,
    1.97 times at n 24), lighter ones smaller. Arrays broadcast; a kurtosis that is not
    finite counts as 3."""
    sd, n = np.asarray(sd, float), np.asarray(n, float)
    kurtosis = np.where(np.isfinite(kurtosis), kurtosis, 3.0)
    return sd / 2.0 * np.sqrt((kurtosis - 1.0) / n + 2.0 / (n * (n - 1.0)))
