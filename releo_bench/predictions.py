"""Predictions are distributions.

Every probe returns one of these from ``predict_dist``; metrics declare which kinds they
accept. Arrays are float64 numpy arrays over ``N`` test samples: metrics are computed on the
CPU with reference libraries (scikit-learn, properscoring, torchmetrics).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar, Literal, Union

import numpy as np
from scipy import special

PredictionKind = Literal["class_probs", "gaussian", "truncated_normal", "quantiles", "samples",
                         "point", "gaussian_mixture"]


def _f64(a: object) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


_LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)


def log_norm_pdf(z: np.ndarray) -> np.ndarray:
    """``log φ(z)`` of the standard normal."""
    return -0.5 * z * z - _LOG_SQRT_2PI


def log_ndtr_diff(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``log(Φ(hi) - Φ(lo))`` for ``lo <= hi``, accurate in both tails.

    Intervals lying mostly above 0 are mirrored below it (``Φ(hi) - Φ(lo) = Φ(-lo) - Φ(-hi)``):
    upper-tail CDF differences cancel catastrophically, lower-tail ones are differences of
    small, accurately represented numbers. ``lo == hi`` gives ``-inf``.
    """
    with np.errstate(invalid="ignore"):
        flip = (lo + hi) > 0  # NaN (both bounds infinite) compares False: nothing to mirror
    lo, hi = np.where(flip, -hi, lo), np.where(flip, -lo, hi)
    log_hi, log_lo = special.log_ndtr(hi), special.log_ndtr(lo)
    with np.errstate(divide="ignore", invalid="ignore"):
        return log_hi + np.log1p(-np.exp(log_lo - log_hi))


def _per_sample(q: float | np.ndarray, n: int) -> np.ndarray:
    """A probability level (scalar or ``[N]``) broadcast to ``[N]``."""
    return np.broadcast_to(_f64(q), (n,))


def _central(level: float) -> tuple[float, float]:
    """Lower and upper probability of the central ``level`` interval."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"interval level must be in (0, 1), got {level}")
    tail = (1.0 - level) / 2.0
    return tail, 1.0 - tail


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
        return special.ndtr((_f64(y) - self.mean) / self.std)

    def ppf(self, q: float | np.ndarray) -> np.ndarray:
        return self.mean + self.std * special.ndtri(q)

    def interval(self, level: float) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = _central(level)
        return self.ppf(lo), self.ppf(hi)


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

    def _standard_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return (self.low - self.loc) / self.scale, (self.high - self.loc) / self.scale

    def point(self) -> np.ndarray:
        """The mean ``loc + scale (φ(a) - φ(b)) / Z``, evaluated in log space.

        Supports lying mostly above the mode are mirrored below it (the mean flips sign), so
        that far-tail truncations (``a`` = 30) keep full precision.
        """
        a, b = self._standard_bounds()
        with np.errstate(invalid="ignore"):
            flip = (a + b) > 0
        lo, hi = np.where(flip, -b, a), np.where(flip, -a, b)
        log_mass = log_ndtr_diff(lo, hi)
        shift = np.exp(log_norm_pdf(lo) - log_mass) - np.exp(log_norm_pdf(hi) - log_mass)
        return self.loc + self.scale * np.where(flip, -shift, shift)

    def take(self, idx: np.ndarray) -> "TruncatedNormal":
        return TruncatedNormal(self.loc[idx], self.scale[idx], self.low[idx], self.high[idx])

    def cdf(self, y: np.ndarray) -> np.ndarray:
        """``(Φ(z) - Φ(a)) / (Φ(b) - Φ(a))`` as a ratio of log CDF differences (both tails)."""
        a, b = self._standard_bounds()
        z = np.clip((_f64(y) - self.loc) / self.scale, a, b)
        with np.errstate(invalid="ignore"):
            inside = np.exp(log_ndtr_diff(a, z) - log_ndtr_diff(a, b))
        return np.where(z <= a, 0.0, np.where(z >= b, 1.0, np.clip(inside, 0.0, 1.0)))

    def ppf(self, q: float | np.ndarray) -> np.ndarray:
        """``Φ⁻¹(Φ(a) (1 - q) + Φ(b) q)``, evaluated as a log-sum with ``ndtri_exp``.

        Mostly-upper supports use the mirror ``ppf(q; a, b) = -ppf(1 - q; -b, -a)`` so the
        two terms are lower-tail probabilities; ``log q`` and ``log(1 - q)`` are both taken
        from ``q`` directly (``log1p``) so that neither loses precision.
        """
        a, b = self._standard_bounds()
        q = _per_sample(q, len(self))
        with np.errstate(invalid="ignore"):
            flip = (a + b) > 0
        lo, hi = np.where(flip, -b, a), np.where(flip, -a, b)
        with np.errstate(divide="ignore"):
            log_q, log_1mq = np.log(q), np.log1p(-q)
        log_lo_w, log_hi_w = np.where(flip, log_q, log_1mq), np.where(flip, log_1mq, log_q)
        log_p = np.logaddexp(log_lo_w + special.log_ndtr(lo), log_hi_w + special.log_ndtr(hi))
        z = np.clip(special.ndtri_exp(log_p), lo, hi)
        return self.loc + self.scale * np.where(flip, -z, z)

    def interval(self, level: float) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = _central(level)
        return self.ppf(lo), self.ppf(hi)


@dataclass(frozen=True)
class Quantiles:
    """Predictive quantiles ``values [N, Q]`` at increasing ``levels [Q]`` in (0, 1).

    The distribution they stand for has a piecewise-linear quantile function through the
    (sorted, so crossing quantiles cannot invert intervals) values. Outside the outermost
    levels nothing is known: ``ppf`` clips ``q`` to ``[levels[0], levels[-1]]`` (flat
    extrapolation), i.e. each uncovered tail is an atom at the outermost value. Intervals
    needing uncovered levels are therefore too narrow; metrics refuse them instead.
    """

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

    @cached_property
    def sorted_values(self) -> np.ndarray:
        """``values`` sorted per sample (computed once)."""
        return np.sort(self.values, axis=1)

    def covers(self, level: float) -> bool:
        """Whether the central ``level`` interval lies within the predicted levels."""
        lo, hi = _central(level)
        return bool(lo >= self.levels[0] - 1e-12 and hi <= self.levels[-1] + 1e-12)

    def cdf(self, y: np.ndarray) -> np.ndarray:
        """Piecewise-linear CDF between the quantiles; 0 below the lowest value, ``levels[0]``
        at it (the lower-tail atom), 1 at and above the highest value."""
        y, values, levels = _f64(y), self.sorted_values, self.levels
        n_q = len(levels)
        k = (values <= y[:, None]).sum(axis=1)  # number of quantiles at or below y
        if n_q == 1:
            return np.where(k > 0, 1.0, 0.0)
        inner = np.clip(k, 1, n_q - 1)
        rows = np.arange(len(y))
        v_lo, v_hi = values[rows, inner - 1], values[rows, inner]
        width = v_hi - v_lo
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.clip(np.where(width > 0, (y - v_lo) / width, 0.0), 0.0, 1.0)
        inside = levels[inner - 1] + t * (levels[inner] - levels[inner - 1])
        return np.where(k == 0, 0.0, np.where(k == n_q, 1.0, inside))

    def ppf(self, q: float | np.ndarray) -> np.ndarray:
        """Linear interpolation between levels; ``q`` outside them is clipped (see class)."""
        levels, values = self.levels, self.sorted_values
        if len(levels) == 1:
            return values[:, 0].copy()
        q = np.clip(_per_sample(q, len(self)), levels[0], levels[-1])
        right = np.clip(np.searchsorted(levels, q, side="right"), 1, len(levels) - 1)
        left = right - 1
        w = (q - levels[left]) / (levels[right] - levels[left])
        rows = np.arange(len(self))
        return values[rows, left] * (1.0 - w) + values[rows, right] * w

    def interval(self, level: float) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = _central(level)
        return self.ppf(lo), self.ppf(hi)


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

    @cached_property
    def sorted_values(self) -> np.ndarray:
        """``values`` sorted per sample (computed once: CRPS, PIT and intervals share it)."""
        return np.sort(self.values, axis=1)

    def cdf(self, y: np.ndarray) -> np.ndarray:
        """Empirical CDF: share of members at or below ``y`` (right-continuous)."""
        return (self.values <= _f64(y)[:, None]).mean(axis=1)

    def ppf(self, q: float | np.ndarray) -> np.ndarray:
        """Empirical quantile, linear between order statistics (numpy's default method)."""
        values = self.sorted_values
        position = np.clip(_per_sample(q, len(self)), 0.0, 1.0) * (values.shape[1] - 1)
        left = np.minimum(np.floor(position).astype(np.int64), values.shape[1] - 1)
        right = np.minimum(left + 1, values.shape[1] - 1)
        w = position - left
        rows = np.arange(len(self))
        return values[rows, left] * (1.0 - w) + values[rows, right] * w

    def interval(self, level: float) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = _central(level)
        return self.ppf(lo), self.ppf(hi)


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
        return special.ndtr((_f64(y)[:, None] - self.means) / self.stds) @ self.weights

    def pdf(self, y: np.ndarray) -> np.ndarray:
        z = (_f64(y)[:, None] - self.means) / self.stds
        return (np.exp(log_norm_pdf(z)) / self.stds) @ self.weights

    def ppf(self, q: float | np.ndarray, tol: float = 1e-12) -> np.ndarray:
        """Quantiles by safeguarded Halley iteration on the (monotone) mixture CDF.

        Starts from the moment-matched normal's quantile, which is close for the usual
        unimodal ensembles (3 steps to machine precision). The root is bracketed by the
        smallest and largest component quantile (the mixture CDF is a weighted mean of the
        component CDFs); a step leaving the bracket or not halving is replaced by bisection,
        so multimodal mixtures converge too. A sample stops once its step or bracket is below
        ``tol`` times its scale.
        """
        q = _per_sample(q, len(self))
        out = np.where(q <= 0.0, -np.inf, np.where(q >= 1.0, np.inf, np.nan))
        todo = np.flatnonzero((q > 0.0) & (q < 1.0))
        means, stds, qs, w = self.means[todo], self.stds[todo], q[todo], self.weights
        z_q = special.ndtri(qs)
        component = means + stds * z_q[:, None]
        lo, hi = component.min(axis=1), component.max(axis=1)
        center = means @ w
        spread = np.sqrt(np.maximum((stds**2 + means**2) @ w - center**2, 0.0))
        x = np.clip(center + spread * z_q, lo, hi)
        step_tol = tol * (1.0 + np.abs(x) + stds.max(axis=1))
        last_move = hi - lo
        for _ in range(200):
            if not len(todo):
                break
            f, dens, slope = _mixture_cdf_derivatives(x, means, stds, w)
            f -= qs
            lo, hi = np.where(f < 0, x, lo), np.where(f > 0, x, hi)
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                step = 2.0 * f * dens / (2.0 * dens * dens - f * slope)
            halley = x - step
            ok = (halley > lo) & (halley < hi) & (2.0 * np.abs(step) <= last_move)
            done = (np.abs(step) <= step_tol) | (hi - lo <= step_tol) | (f == 0)
            new = np.where(ok, halley, np.where(done, x, 0.5 * (lo + hi)))
            last_move, x = np.abs(new - x), new
            out[todo[done]] = x[done]
            keep = ~done
            todo, x, lo, hi, qs = todo[keep], x[keep], lo[keep], hi[keep], qs[keep]
            means, stds, step_tol = means[keep], stds[keep], step_tol[keep]
            last_move = last_move[keep]
        out[todo] = x
        return out

    def interval(self, level: float) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = _central(level)
        return self.ppf(lo), self.ppf(hi)


def _mixture_cdf_derivatives(x: np.ndarray, means: np.ndarray, stds: np.ndarray,
                             weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mixture CDF, density and density slope at ``x [N]`` for components ``[N, K]``."""
    z = (x[:, None] - means) / stds
    dens = np.exp(log_norm_pdf(z)) / stds
    return special.ndtr(z) @ weights, dens @ weights, -(dens * z / stds) @ weights


Prediction = Union[ClassProbs, Gaussian, TruncatedNormal, Quantiles, Samples, Point,
                   GaussianMixture]
REGRESSION_KINDS = ("gaussian", "truncated_normal", "quantiles", "samples", "point",
                    "gaussian_mixture")
CLASSIFICATION_KINDS = ("class_probs",)
