"""Predictions are distributions.

Every probe returns one of these from ``predict_dist``; metrics declare which kinds they
accept. Arrays are float64 numpy arrays over ``N`` test samples: metrics are computed on the
CPU with reference libraries (scikit-learn, properscoring, torchmetrics).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, Union

import numpy as np
from scipy import stats

PredictionKind = Literal["class_probs", "gaussian", "truncated_normal", "quantiles", "samples",
                         "point", "gaussian_mixture"]


def _f64(a: object) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


@dataclass(frozen=True)
class ClassProbs:
    """Class probabilities ``[N, K]`` (rows sum to 1) over ``class_names``."""

    probs: np.ndarray
    class_names: tuple[str, ...]
    kind: ClassVar[str] = "class_probs"

    def __post_init__(self) -> None:
        p = _f64(self.probs)
        if p.ndim == 2 and (p >= -1e-9).all():
            p = np.clip(p, 0.0, 1.0)  # float round-off from softmax; larger negatives are errors
        object.__setattr__(self, "probs", p)
        object.__setattr__(self, "class_names", tuple(self.class_names))
        if p.ndim != 2 or p.shape[1] != len(self.class_names):
            raise ValueError(f"probs must be [N, {len(self.class_names)}], got {p.shape}")
        if not np.allclose(p.sum(axis=1), 1.0, atol=1e-5) or (p < -1e-9).any():
            raise ValueError("class probabilities must be non-negative and sum to 1 per row")

    def __len__(self) -> int:
        return self.probs.shape[0]

    def point(self) -> np.ndarray:
        """Most probable class index per sample."""
        return self.probs.argmax(axis=1)

    def take(self, idx: np.ndarray) -> "ClassProbs":
        return ClassProbs(self.probs[idx], self.class_names)


@dataclass(frozen=True)
class Gaussian:
    """Independent normal predictive ``N(mean, std**2)`` per sample."""

    mean: np.ndarray
    std: np.ndarray
    kind: ClassVar[str] = "gaussian"

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", _f64(self.mean))
        object.__setattr__(self, "std", _f64(self.std))
        if self.mean.shape != self.std.shape:
            raise ValueError(f"mean {self.mean.shape} and std {self.std.shape} differ in shape")
        if not (self.std > 0).all():
            raise ValueError("std must be strictly positive")

    def __len__(self) -> int:
        return self.mean.shape[0]

    def point(self) -> np.ndarray:
        return self.mean

    def take(self, idx: np.ndarray) -> "Gaussian":
        return Gaussian(self.mean[idx], self.std[idx])

    def cdf(self, y: np.ndarray) -> np.ndarray:
        return stats.norm.cdf(y, self.mean, self.std)

    def ppf(self, q: float | np.ndarray) -> np.ndarray:
        return stats.norm.ppf(q, self.mean, self.std)

    def interval(self, level: float) -> tuple[np.ndarray, np.ndarray]:
        a = (1.0 - level) / 2.0
        return self.ppf(a), self.ppf(1.0 - a)


@dataclass(frozen=True)
class TruncatedNormal:
    """Normal ``N(loc, scale**2)`` truncated to ``[low, high]`` (bounded targets, e.g. LAI >= 0)."""

    loc: np.ndarray
    scale: np.ndarray
    low: np.ndarray | float = 0.0
    high: np.ndarray | float = np.inf
    kind: ClassVar[str] = "truncated_normal"

    def __post_init__(self) -> None:
        loc, scale = _f64(self.loc), _f64(self.scale)
        object.__setattr__(self, "loc", loc)
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "low", np.broadcast_to(_f64(self.low), loc.shape))
        object.__setattr__(self, "high", np.broadcast_to(_f64(self.high), loc.shape))
        if not (scale > 0).all():
            raise ValueError("scale must be strictly positive")
        if not (self.low < self.high).all():
            raise ValueError("low must be below high")

    def __len__(self) -> int:
        return self.loc.shape[0]

    @property
    def _dist(self):
        a = (self.low - self.loc) / self.scale
        b = (self.high - self.loc) / self.scale
        return stats.truncnorm(a, b, loc=self.loc, scale=self.scale)

    def point(self) -> np.ndarray:
        return self._dist.mean()

    def take(self, idx: np.ndarray) -> "TruncatedNormal":
        return TruncatedNormal(self.loc[idx], self.scale[idx], self.low[idx], self.high[idx])

    def cdf(self, y: np.ndarray) -> np.ndarray:
        return self._dist.cdf(y)

    def ppf(self, q: float | np.ndarray) -> np.ndarray:
        return self._dist.ppf(q)

    def interval(self, level: float) -> tuple[np.ndarray, np.ndarray]:
        a = (1.0 - level) / 2.0
        return self.ppf(a), self.ppf(1.0 - a)


@dataclass(frozen=True)
class Quantiles:
    """Predictive quantiles ``values [N, Q]`` at increasing ``levels [Q]`` in (0, 1)."""

    levels: np.ndarray
    values: np.ndarray
    kind: ClassVar[str] = "quantiles"

    def __post_init__(self) -> None:
        lv, v = _f64(self.levels), _f64(self.values)
        object.__setattr__(self, "levels", lv)
        object.__setattr__(self, "values", v)
        if v.ndim != 2 or v.shape[1] != lv.shape[0]:
            raise ValueError(f"values must be [N, {lv.shape[0]}], got {v.shape}")
        if not ((lv > 0) & (lv < 1)).all() or (np.diff(lv) <= 0).any():
            raise ValueError("levels must be strictly increasing in (0, 1)")

    def __len__(self) -> int:
        return self.values.shape[0]

    def point(self) -> np.ndarray:
        """The median, interpolated linearly between the two levels around 0.5."""
        lv = self.levels
        j = int(np.clip(np.searchsorted(lv, 0.5), 1, len(lv) - 1)) if len(lv) > 1 else 0
        if len(lv) == 1 or lv[j] == 0.5:
            return self.values[:, j].copy()
        i = j - 1
        w = np.clip((0.5 - lv[i]) / (lv[j] - lv[i]), 0.0, 1.0)
        return (1 - w) * self.values[:, i] + w * self.values[:, j]

    def take(self, idx: np.ndarray) -> "Quantiles":
        return Quantiles(self.levels, self.values[idx])


@dataclass(frozen=True)
class Samples:
    """An ensemble or Monte-Carlo sample ``values [N, S]`` of the predictive distribution."""

    values: np.ndarray
    kind: ClassVar[str] = "samples"

    def __post_init__(self) -> None:
        v = _f64(self.values)
        object.__setattr__(self, "values", v)
        if v.ndim != 2:
            raise ValueError(f"values must be [N, S], got {v.shape}")

    def __len__(self) -> int:
        return self.values.shape[0]

    def point(self) -> np.ndarray:
        return self.values.mean(axis=1)

    def take(self, idx: np.ndarray) -> "Samples":
        return Samples(self.values[idx])


@dataclass(frozen=True)
class Point:
    """A deterministic prediction with no uncertainty (e.g. SNAP): scored as a point."""

    values: np.ndarray
    kind: ClassVar[str] = "point"

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", _f64(self.values))

    def __len__(self) -> int:
        return self.values.shape[0]

    def point(self) -> np.ndarray:
        return self.values

    def take(self, idx: np.ndarray) -> "Point":
        return Point(self.values[idx])


@dataclass(frozen=True)
class GaussianMixture:
    """Mixture of ``K`` normals per sample (a deep ensemble): ``means, stds [N, K]`` with
    mixture ``weights [K]`` (summing to 1, shared by all samples)."""

    means: np.ndarray
    stds: np.ndarray
    weights: np.ndarray
    kind: ClassVar[str] = "gaussian_mixture"

    def __post_init__(self) -> None:
        m, s = _f64(self.means), _f64(self.stds)
        w = _f64(self.weights)
        object.__setattr__(self, "means", m)
        object.__setattr__(self, "stds", s)
        object.__setattr__(self, "weights", w)
        if m.ndim != 2 or m.shape != s.shape:
            raise ValueError(f"means and stds must both be [N, K], got {m.shape} and {s.shape}")
        if w.shape != (m.shape[1],) or (w < 0).any() or not np.isclose(w.sum(), 1.0):
            raise ValueError(f"weights must be [{m.shape[1]}], non-negative, summing to 1")
        if not (s > 0).all():
            raise ValueError("stds must be strictly positive")

    def __len__(self) -> int:
        return self.means.shape[0]

    def point(self) -> np.ndarray:
        return self.means @ self.weights

    def variance(self) -> np.ndarray:
        """Law of total variance: mean of the member variances plus variance of the means."""
        mu = self.point()
        return (self.stds**2 + self.means**2) @ self.weights - mu**2

    def take(self, idx: np.ndarray) -> "GaussianMixture":
        return GaussianMixture(self.means[idx], self.stds[idx], self.weights)

    def cdf(self, y: np.ndarray) -> np.ndarray:
        y = _f64(y)
        return stats.norm.cdf((y[:, None] - self.means) / self.stds) @ self.weights

    def ppf(self, q: float | np.ndarray) -> np.ndarray:
        """Quantiles by bisection on the mixture CDF (monotone), to ~1e-10 of the spread."""
        q = np.broadcast_to(_f64(q), (len(self),))
        lo = (self.means - 10 * self.stds).min(axis=1)
        hi = (self.means + 10 * self.stds).max(axis=1)
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            below = self.cdf(mid) < q
            lo = np.where(below, mid, lo)
            hi = np.where(below, hi, mid)
        return 0.5 * (lo + hi)

    def interval(self, level: float) -> tuple[np.ndarray, np.ndarray]:
        a = (1.0 - level) / 2.0
        return self.ppf(a), self.ppf(1.0 - a)


Prediction = Union[ClassProbs, Gaussian, TruncatedNormal, Quantiles, Samples, Point,
                   GaussianMixture]
REGRESSION_KINDS = ("gaussian", "truncated_normal", "quantiles", "samples", "point",
                    "gaussian_mixture")
CLASSIFICATION_KINDS = ("class_probs",)
