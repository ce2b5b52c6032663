"""Label fractions: which training samples a probe sees, stratified and nested, fixed by seed.

For a seed, every training sample gets one random rank inside its stratum (class for
classification, target quantile bin for regression). A fraction ``f`` keeps the
``ceil(f * n_stratum)`` lowest ranks of each stratum, so the subsets are nested across
fractions (5 % is inside 10 %) and identical for the same seed.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import UsageError

N_REGRESSION_BINS = 5


def strata(y: np.ndarray, kind: str) -> np.ndarray:
    if kind == "classification":
        return np.asarray(y).astype(np.int64)
    y = np.asarray(y, dtype=np.float64)
    edges = np.quantile(y, np.linspace(0, 1, N_REGRESSION_BINS + 1)[1:-1])
    return np.searchsorted(edges, y, side="right")


def label_subset(y: np.ndarray, kind: str, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of the training samples kept at ``fraction`` for ``seed``."""
    if not 0.0 < fraction <= 1.0:
        raise UsageError(f"--label-fraction must be in (0, 1], got {fraction}")
    n = len(y)
    if fraction == 1.0:
        return np.arange(n)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x1abe1]))
    ranks = rng.permutation(n)
    s = strata(y, kind)
    keep: list[np.ndarray] = []
    for value in np.unique(s):
        members = np.flatnonzero(s == value)
        k = max(1, math.ceil(fraction * len(members)))
        keep.append(members[np.argsort(ranks[members], kind="stable")[:k]])
    return np.sort(np.concatenate(keep))
