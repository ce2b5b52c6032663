"""Aggregating numbers over seeds: mean and a 95 % confidence interval.

Over seeds we use the Student-t interval of the mean (few seeds, roughly normal scores); with
one seed the interval collapses to the value itself and ``n = 1`` says so. Bootstrap
intervals over test samples and tasks live with the metrics and the leaderboard.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Summary:
    mean: float
    ci_low: float
    ci_high: float
    std: float
    n: int


def mean_ci(values: list[float] | np.ndarray, level: float = 0.95) -> Summary:
    """Mean, sample std and Student-t ``level`` interval of the mean of ``values``."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    n = int(v.size)
    if n == 0:
        return Summary(float("nan"), float("nan"), float("nan"), float("nan"), 0)
    mean = float(v.mean())
    if n == 1:
        return Summary(mean, mean, mean, 0.0, 1)
    std = float(v.std(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2.0, df=n - 1) * std / np.sqrt(n))
    return Summary(mean, mean - half, mean + half, std, n)
