"""Regression metrics: point accuracy, proper scores (CRPS, NLL) and calibration.

Every metric takes ``(y_true [N], prediction)`` and returns the mean over the ``N`` samples.
Point metrics use ``prediction.point()`` so that any distribution can be scored for
accuracy; proper scores and calibration metrics use the full distribution.

The truncated-normal CRPS is computed in closed form (derived from
``CRPS = E|X - y| - E|X - X'| / 2``), see :func:`crps_truncated_normal`.
"""

from __future__ import annotations

import numpy as np
import properscoring
from scipy import special, stats
from sklearn import metrics as skm

from ..errors import UsageError
from ..predictions import (REGRESSION_KINDS, Gaussian, Prediction, Quantiles, Samples,
                           TruncatedNormal)
from .base import metric

PARAMETRIC_KINDS = ("gaussian", "truncated_normal")
INTERVAL_KINDS = ("gaussian", "truncated_normal", "quantiles", "samples")
PIT_BINS = 10
_SQRT_PI = np.sqrt(np.pi)


def _as_target(y: np.ndarray) -> np.ndarray:
    """Targets as a 1-D float64 array: a ``[N, 1]`` column is accepted, more is not."""
    y = np.asarray(y, dtype=np.float64)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise UsageError(f"regression targets must be 1-D [N], got shape {y.shape}")
    return y


# -- point accuracy ----------------------------------------------------------------------

@metric("rmse", direction="lower", accepts=REGRESSION_KINDS, task_kind="regression",
        family="accuracy")
def rmse(y: np.ndarray, prediction: Prediction) -> float:
    """Root mean squared error of the point prediction."""
    return float(np.sqrt(skm.mean_squared_error(_as_target(y), prediction.point())))


@metric("mae", direction="lower", accepts=REGRESSION_KINDS, task_kind="regression",
        family="accuracy")
def mae(y: np.ndarray, prediction: Prediction) -> float:
    """Mean absolute error of the point prediction."""
    return float(skm.mean_absolute_error(_as_target(y), prediction.point()))


@metric("r2", direction="higher", accepts=REGRESSION_KINDS, task_kind="regression",
        family="accuracy")
def r2(y: np.ndarray, prediction: Prediction) -> float:
    """Coefficient of determination R² of the point prediction."""
    return float(skm.r2_score(_as_target(y), prediction.point()))


@metric("bias", direction="zero", accepts=REGRESSION_KINDS, task_kind="regression",
        family="accuracy")
def bias(y: np.ndarray, prediction: Prediction) -> float:
    """Mean error (prediction minus target): systematic over- or under-estimation."""
    return float(np.mean(prediction.point() - _as_target(y)))


# -- CRPS --------------------------------------------------------------------------------

def _reflect_upper(z: np.ndarray, a: np.ndarray, b: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mirror truncations lying mostly above 0 to below 0 (CRPS is mirror invariant).

    Normal CDF differences in the far upper tail cancel catastrophically; in the lower tail
    they are differences of small, accurately represented numbers.
    """
    with np.errstate(invalid="ignore"):
        flip = (a + b) > 0  # NaN (both bounds infinite) compares False: nothing to mirror
    return np.where(flip, -z, z), np.where(flip, -b, a), np.where(flip, -a, b)


def crps_truncated_normal(y: np.ndarray, loc: np.ndarray, scale: np.ndarray,
                          low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Closed-form CRPS of ``N(loc, scale²)`` truncated to ``[low, high]``, per sample.

    With ``z = (y - loc) / scale``, standardised bounds ``a, b``, ``A = Φ(a)``, ``B = Φ(b)``,
    ``Z = B - A`` and ``c = clip(z, a, b)``::

        CRPS / scale = |z - c| + (c (2Φ(c) - A - B) + 2φ(c)) / Z
                       - (Φ(√2 b) - Φ(√2 a)) / (√π Z²)

    The first two terms are ``E|X - z|``, the last is ``E|X - X'| / 2``; infinite bounds
    are allowed and recover the Gaussian CRPS.
    """
    scale = np.asarray(scale, dtype=np.float64)
    z = (np.asarray(y, dtype=np.float64) - loc) / scale
    a = (np.asarray(low, dtype=np.float64) - loc) / scale
    b = (np.asarray(high, dtype=np.float64) - loc) / scale
    z, a, b = _reflect_upper(z, a, b)
    big_a, big_b = special.ndtr(a), special.ndtr(b)
    mass = big_b - big_a
    c = np.clip(z, a, b)
    expected_abs = (c * (2.0 * special.ndtr(c) - big_a - big_b) + 2.0 * stats.norm.pdf(c)) / mass
    half_spread = (special.ndtr(np.sqrt(2.0) * b) - special.ndtr(np.sqrt(2.0) * a)) / (
        _SQRT_PI * mass**2)
    return scale * (np.abs(z - c) + expected_abs - half_spread)


def pinball_loss(y: np.ndarray, values: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Pinball (quantile) loss ``[N, Q]`` of quantile ``values`` at ``levels`` for ``y``."""
    diff = y[:, None] - values
    return np.maximum(levels * diff, (levels - 1.0) * diff)


def crps_per_sample(y: np.ndarray, prediction: Prediction) -> np.ndarray:
    """CRPS of each sample; quantile predictions use ``2 x`` mean pinball loss.

    For quantiles the CRPS is *approximated*: it equals twice the pinball loss integrated
    over all levels in (0, 1), here averaged over the predicted levels only, so it is exact
    only in the limit of many evenly spread levels.
    """
    y = _as_target(y)
    if isinstance(prediction, Gaussian):
        return properscoring.crps_gaussian(y, prediction.mean, prediction.std)
    if isinstance(prediction, TruncatedNormal):
        return crps_truncated_normal(y, prediction.loc, prediction.scale, prediction.low,
                                     prediction.high)
    if isinstance(prediction, Samples):
        return properscoring.crps_ensemble(y, prediction.values)
    if isinstance(prediction, Quantiles):
        return 2.0 * pinball_loss(y, prediction.values, prediction.levels).mean(axis=1)
    return np.abs(prediction.point() - y)  # a point mass: CRPS is the absolute error


@metric("crps", direction="lower", accepts=REGRESSION_KINDS, task_kind="regression",
        family="proper_score")
def crps(y: np.ndarray, prediction: Prediction) -> float:
    """Continuous ranked probability score, mean over samples (target units)."""
    return float(np.mean(crps_per_sample(y, prediction)))


# -- negative log likelihood -------------------------------------------------------------

def _log_normal_mass(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``log(Φ(b) - Φ(a))`` accurate in both tails."""
    _, a, b = _reflect_upper(np.zeros_like(a), a, b)
    log_b, log_a = special.log_ndtr(b), special.log_ndtr(a)
    return log_b + np.log1p(-np.exp(log_a - log_b))


def nll_per_sample(y: np.ndarray, prediction: Gaussian | TruncatedNormal) -> np.ndarray:
    """Negative log density of ``y``; ``inf`` outside a truncated normal's support."""
    y = _as_target(y)
    if isinstance(prediction, Gaussian):
        z = (y - prediction.mean) / prediction.std
        return 0.5 * np.log(2.0 * np.pi) + np.log(prediction.std) + 0.5 * z**2
    scale = prediction.scale
    z = (y - prediction.loc) / scale
    a, b = (prediction.low - prediction.loc) / scale, (prediction.high - prediction.loc) / scale
    nll = 0.5 * np.log(2.0 * np.pi) + np.log(scale) + 0.5 * z**2 + _log_normal_mass(a, b)
    return np.where((y < prediction.low) | (y > prediction.high), np.inf, nll)


@metric("nll", direction="lower", accepts=PARAMETRIC_KINDS, task_kind="regression",
        family="proper_score")
def nll(y: np.ndarray, prediction: Prediction) -> float:
    """Mean negative log likelihood of a (truncated) Gaussian predictive (nats)."""
    return float(np.mean(nll_per_sample(y, prediction)))  # type: ignore[arg-type]


# -- intervals ---------------------------------------------------------------------------

def _interp_levels(quantiles: Quantiles, wanted: np.ndarray) -> np.ndarray:
    """Quantile values ``[N, len(wanted)]`` linearly interpolated between predicted levels."""
    levels = quantiles.levels
    lo_ok, hi_ok = wanted.min() >= levels[0] - 1e-12, wanted.max() <= levels[-1] + 1e-12
    if not (lo_ok and hi_ok):
        raise UsageError(f"quantile levels {levels.tolist()} do not cover the levels "
                         f"{wanted.tolist()} needed for this metric")
    wanted = np.clip(wanted, levels[0], levels[-1])
    right = np.clip(np.searchsorted(levels, wanted, side="left"), 1, len(levels) - 1)
    left = right - 1
    weight = (wanted - levels[left]) / (levels[right] - levels[left])
    values = np.sort(quantiles.values, axis=1)  # crossing quantiles would invert intervals
    return values[:, left] * (1.0 - weight) + values[:, right] * weight


def central_interval(prediction: Prediction, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bound of the central ``level`` interval of each predictive."""
    if not 0.0 < level < 1.0:
        raise UsageError(f"interval level must be in (0, 1), got {level}")
    if isinstance(prediction, (Gaussian, TruncatedNormal)):
        return prediction.interval(level)
    tail = (1.0 - level) / 2.0
    wanted = np.array([tail, 1.0 - tail])
    if isinstance(prediction, Quantiles):
        bounds = _interp_levels(prediction, wanted)
        return bounds[:, 0], bounds[:, 1]
    if isinstance(prediction, Samples):
        lo, hi = np.quantile(prediction.values, wanted, axis=1)
        return lo, hi
    raise UsageError(f"a {prediction.kind!r} prediction has no predictive interval")


def picp(y: np.ndarray, prediction: Prediction, level: float) -> float:
    """Prediction interval coverage probability: share of targets inside the central interval."""
    y = _as_target(y)
    lo, hi = central_interval(prediction, level)
    return float(np.mean((y >= lo) & (y <= hi)))


@metric("coverage_error_90", direction="lower", accepts=INTERVAL_KINDS, task_kind="regression",
        family="calibration")
def coverage_error_90(y: np.ndarray, prediction: Prediction) -> float:
    """|coverage of the central 90 % interval - 0.90|: 0 for calibrated intervals."""
    return abs(picp(y, prediction, 0.90) - 0.90)


@metric("mpiw_90", direction="lower", accepts=INTERVAL_KINDS, task_kind="regression",
        family="calibration")
def mpiw_90(y: np.ndarray, prediction: Prediction) -> float:
    """Mean width of the central 90 % prediction interval (target units); read with coverage."""
    lo, hi = central_interval(prediction, 0.90)
    return float(np.mean(hi - lo))


# -- probability integral transform ------------------------------------------------------

def _pit_samples(y: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Ensemble PIT ``(rank + 1/2) / (S + 1)``, rank counting ties as half.

    For a calibrated ensemble the rank of ``y`` is uniform on ``0..S``; centring each rank
    in one of ``S + 1`` equal cells makes the PIT histogram flat as well.
    """
    below = (values < y[:, None]).sum(axis=1)
    ties = (values == y[:, None]).sum(axis=1)
    return (below + 0.5 * ties + 0.5) / (values.shape[1] + 1.0)


def _pit_quantiles(y: np.ndarray, prediction: Quantiles) -> np.ndarray:
    """PIT by linear interpolation of the predicted quantile function.

    Beyond the outer levels the distribution is unknown: such a target gets the middle of
    the uncovered tail (``levels[0] / 2`` or ``(1 + levels[-1]) / 2``).
    """
    levels = prediction.levels
    values = np.sort(prediction.values, axis=1)
    n_q = len(levels)
    k = (values <= y[:, None]).sum(axis=1)  # number of quantiles at or below y
    inner = np.clip(k, 1, n_q - 1)
    rows = np.arange(len(y))
    v_lo, v_hi = values[rows, inner - 1], values[rows, inner]
    width = v_hi - v_lo
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(width > 0, (y - v_lo) / width, 0.5)
    pit = levels[inner - 1] + np.clip(t, 0.0, 1.0) * (levels[inner] - levels[inner - 1])
    pit = np.where(k == 0, levels[0] / 2.0, pit)
    return np.where(k == n_q, (1.0 + levels[-1]) / 2.0, pit)


def pit_values(y: np.ndarray, prediction: Prediction) -> np.ndarray:
    """Probability integral transform ``F(y)`` per sample: uniform when calibrated."""
    y = _as_target(y)
    if isinstance(prediction, (Gaussian, TruncatedNormal)):
        return np.asarray(prediction.cdf(y), dtype=np.float64)
    if isinstance(prediction, Samples):
        return _pit_samples(y, prediction.values)
    if isinstance(prediction, Quantiles):
        return _pit_quantiles(y, prediction)
    raise UsageError(f"a {prediction.kind!r} prediction has no CDF to compute PIT values")


@metric("pit_deviation", direction="lower", accepts=INTERVAL_KINDS, task_kind="regression",
        family="calibration")
def pit_deviation(y: np.ndarray, prediction: Prediction) -> float:
    """Mean |PIT histogram density - 1| over 10 bins: 0 for a flat (calibrated) histogram."""
    pit = pit_values(y, prediction)
    counts, _ = np.histogram(np.clip(pit, 0.0, 1.0), bins=PIT_BINS, range=(0.0, 1.0))
    density = counts / (len(pit) / PIT_BINS)
    return float(np.mean(np.abs(density - 1.0)))
