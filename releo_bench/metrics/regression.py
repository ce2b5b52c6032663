"""Regression metrics: point accuracy, proper scores (CRPS, NLL) and calibration.

Every metric takes ``(y_true [N], prediction)`` and returns the mean over the ``N`` samples.
Point metrics use ``prediction.point()`` so that any distribution can be scored for
accuracy; proper scores and calibration metrics use the full distribution.

CRPS is exact for every kind except quantiles: closed forms for the Gaussian, the truncated
normal (:func:`crps_truncated_normal`) and the Gaussian mixture (:func:`crps_mixture`), the
empirical-CDF form for samples, and the absolute error for a point. Quantile predictions only
give an approximation (twice the mean pinball loss over the predicted levels).

Calibration is read three ways: coverage of central intervals (``picp_*``, with their width
``mpiw_*`` as the sharpness to read it with), the PIT histogram (``pit_deviation``) and the
area between the PIT CDF and the diagonal (``miscalibration_area``).
"""

from __future__ import annotations

from functools import partial

import numpy as np
from scipy import special
from sklearn import metrics as skm

from ..errors import UsageError
from ..predictions import (REGRESSION_KINDS, Gaussian, GaussianMixture, Prediction, Quantiles,
                           Samples, TruncatedNormal, log_ndtr_diff, log_norm_pdf)
from .base import metric

PARAMETRIC_KINDS = ("gaussian", "truncated_normal", "gaussian_mixture")
DISTRIBUTION_KINDS = ("gaussian", "truncated_normal", "quantiles", "samples", "gaussian_mixture")
INTERVAL_KINDS = DISTRIBUTION_KINDS
INTERVAL_LEVELS = (0.5, 0.8, 0.9, 0.95)
PIT_BINS = 10
CALIBRATION_GRID = 100  # midpoints of 100 equal cells of [0, 1] for miscalibration_area
_SQRT_PI = np.sqrt(np.pi)


def as_target(y: np.ndarray) -> np.ndarray:
    """Targets as a 1-D float64 array: a ``[N, 1]`` column is accepted, more is not."""
    y = np.asarray(y, dtype=np.float64)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise UsageError(f"regression targets must be 1-D [N], got shape {y.shape}")
    return y


def _abs_gap(mean: np.ndarray | float, nominal: float) -> np.ndarray | float:
    """``|mean - nominal|`` (a picklable ``finalize`` for coverage errors)."""
    return np.abs(mean - nominal)


# -- point accuracy ----------------------------------------------------------------------

def squared_error(y: np.ndarray, prediction: Prediction) -> np.ndarray:
    return (prediction.point() - as_target(y)) ** 2


def absolute_error(y: np.ndarray, prediction: Prediction) -> np.ndarray:
    return np.abs(prediction.point() - as_target(y))


def signed_error(y: np.ndarray, prediction: Prediction) -> np.ndarray:
    return prediction.point() - as_target(y)


@metric("rmse", direction="lower", accepts=REGRESSION_KINDS, task_kind="regression",
        family="accuracy", pointwise=squared_error, finalize=np.sqrt)
def rmse(y: np.ndarray, prediction: Prediction) -> float:
    """Root mean squared error of the point prediction."""
    return float(np.sqrt(np.mean(squared_error(y, prediction))))


@metric("mae", direction="lower", accepts=REGRESSION_KINDS, task_kind="regression",
        family="accuracy", pointwise=absolute_error)
def mae(y: np.ndarray, prediction: Prediction) -> float:
    """Mean absolute error of the point prediction."""
    return float(np.mean(absolute_error(y, prediction)))


def r2_statistics(y: np.ndarray, prediction: Prediction) -> np.ndarray:
    """Per-sample ``[(ŷ - y)², y - c, (y - c)²]`` ``[N, 3]``, whose means give R².

    ``c`` is the median of ``y``: R² does not depend on it (the variance is shift
    invariant), and centring keeps ``mean((y - c)²) - mean(y - c)²`` free of cancellation
    for targets far from zero (e.g. temperatures in K).
    """
    y = as_target(y)
    centred = y - (np.median(y) if y.size else 0.0)
    return np.column_stack([squared_error(y, prediction), centred, centred * centred])


def r2_from_means(means: np.ndarray) -> np.ndarray:
    """R² from the means ``[..., 3]`` of :func:`r2_statistics`: ``1 - MSE / Var(y)``.

    As scikit-learn's ``r2_score`` (``force_finite``) for constant targets: 1.0 for a perfect
    prediction, else 0.0. A variance within rounding of zero (a few ulps of the mean square)
    counts as constant. Unlike ``r2_score`` a single sample is not NaN (a mean cannot tell).
    """
    means = np.asarray(means, dtype=np.float64)
    mse, centred, square = means[..., 0], means[..., 1], means[..., 2]
    variance = square - centred * centred
    constant = variance <= 8.0 * np.finfo(np.float64).eps * square
    with np.errstate(divide="ignore", invalid="ignore"):
        score = 1.0 - mse / variance
    return np.where(constant, np.where(mse == 0.0, 1.0, 0.0), score)


@metric("r2", direction="higher", accepts=REGRESSION_KINDS, task_kind="regression",
        family="accuracy", pointwise=r2_statistics, finalize=r2_from_means)
def r2(y: np.ndarray, prediction: Prediction) -> float:
    """Coefficient of determination R² of the point prediction."""
    return float(skm.r2_score(as_target(y), prediction.point()))


@metric("bias", direction="zero", accepts=REGRESSION_KINDS, task_kind="regression",
        family="accuracy", pointwise=signed_error)
def bias(y: np.ndarray, prediction: Prediction) -> float:
    """Mean error (prediction minus target): systematic over- or under-estimation."""
    return float(np.mean(signed_error(y, prediction)))


# -- CRPS --------------------------------------------------------------------------------

def _expected_abs_normal(m: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``E|X|`` for ``X ~ N(m, s²)``: ``2 s φ(m/s) + m (2Φ(m/s) - 1)``."""
    z = m / s
    return 2.0 * s * np.exp(log_norm_pdf(z)) + m * (2.0 * special.ndtr(z) - 1.0)


def crps_gaussian(y: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Closed-form Gaussian CRPS ``E|X - y| - E|X - X'| / 2 = A(y - μ, σ) - σ / √π``."""
    return _expected_abs_normal(y - mean, std) - std / _SQRT_PI


def crps_mixture(y: np.ndarray, means: np.ndarray, stds: np.ndarray,
                 weights: np.ndarray) -> np.ndarray:
    """Closed-form CRPS of a Gaussian mixture, per sample (``O(N K²)``).

    ``Σ_i w_i A(y - μ_i, σ_i) - ½ Σ_ij w_i w_j A(μ_i - μ_j, √(σ_i² + σ_j²))`` with
    ``A(m, s) = E|N(m, s²)|``: the two terms are ``E|X - y|`` and ``E|X - X'| / 2``.
    """
    to_target = _expected_abs_normal(y[:, None] - means, stds) @ weights
    pair_sd = np.sqrt(stds[:, :, None] ** 2 + stds[:, None, :] ** 2)
    pairs = _expected_abs_normal(means[:, :, None] - means[:, None, :], pair_sd)
    return to_target - 0.5 * np.einsum("nij,i,j->n", pairs, weights, weights)


def crps_ensemble(y: np.ndarray, sorted_values: np.ndarray) -> np.ndarray:
    """CRPS of the empirical distribution of ``S`` members (sorted per sample).

    ``mean|x_i - y| - Σ_ij |x_i - x_j| / (2 S²)``, with the pair sum from order statistics
    ``Σ_ij |x_i - x_j| = 2 Σ_i (2i - S + 1) x_(i)`` (0-based): ``O(S log S)``, not ``O(S²)``.
    Equals ``properscoring.crps_ensemble`` (not the "fair" ``S (S - 1)`` variant).
    """
    n_members = sorted_values.shape[1]
    to_target = np.abs(sorted_values - y[:, None]).mean(axis=1)
    coef = 2.0 * np.arange(n_members) - n_members + 1.0
    return to_target - (sorted_values @ coef) / n_members**2


def crps_truncated_normal(y: np.ndarray, loc: np.ndarray, scale: np.ndarray,
                          low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Closed-form CRPS of ``N(loc, scale²)`` truncated to ``[low, high]``, per sample.

    With ``z = (y - loc) / scale``, standardised bounds ``a, b``, ``A = Φ(a)``, ``B = Φ(b)``,
    ``Z = B - A`` and ``c = clip(z, a, b)``::

        CRPS / scale = |z - c| + (c (2Φ(c) - A - B) + 2φ(c)) / Z
                       - (Φ(√2 b) - Φ(√2 a)) / (√π Z²)

    The first two terms are ``E|X - z|``, the last is ``E|X - X'| / 2``; infinite bounds
    are allowed and recover the Gaussian CRPS. Supports lying mostly above the mode are
    mirrored below it first (CRPS is mirror invariant): upper-tail CDF differences cancel.
    """
    scale = np.asarray(scale, dtype=np.float64)
    z = (np.asarray(y, dtype=np.float64) - loc) / scale
    a = (np.asarray(low, dtype=np.float64) - loc) / scale
    b = (np.asarray(high, dtype=np.float64) - loc) / scale
    with np.errstate(invalid="ignore"):
        flip = (a + b) > 0  # NaN (both bounds infinite) compares False: nothing to mirror
    z, a, b = np.where(flip, -z, z), np.where(flip, -b, a), np.where(flip, -a, b)
    big_a, big_b = special.ndtr(a), special.ndtr(b)
    mass = big_b - big_a
    c = np.clip(z, a, b)
    expected_abs = (c * (2.0 * special.ndtr(c) - big_a - big_b)
                    + 2.0 * np.exp(log_norm_pdf(c))) / mass
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
    y = as_target(y)
    if isinstance(prediction, Gaussian):
        return crps_gaussian(y, prediction.mean, prediction.std)
    if isinstance(prediction, TruncatedNormal):
        return crps_truncated_normal(y, prediction.loc, prediction.scale, prediction.low,
                                     prediction.high)
    if isinstance(prediction, GaussianMixture):
        return crps_mixture(y, prediction.means, prediction.stds, prediction.weights)
    if isinstance(prediction, Samples):
        return crps_ensemble(y, prediction.sorted_values)
    if isinstance(prediction, Quantiles):
        return 2.0 * pinball_loss(y, prediction.values, prediction.levels).mean(axis=1)
    return np.abs(prediction.point() - y)  # a point mass: CRPS is the absolute error


@metric("crps", direction="lower", accepts=REGRESSION_KINDS, task_kind="regression",
        family="proper_score", pointwise=crps_per_sample)
def crps(y: np.ndarray, prediction: Prediction) -> float:
    """Continuous ranked probability score, mean over samples (target units)."""
    return float(np.mean(crps_per_sample(y, prediction)))


# -- negative log likelihood -------------------------------------------------------------

def nll_per_sample(y: np.ndarray, prediction: Prediction) -> np.ndarray:
    """Negative log density of ``y``; ``inf`` outside a truncated normal's support."""
    y = as_target(y)
    if isinstance(prediction, Gaussian):
        z = (y - prediction.mean) / prediction.std
        return np.log(prediction.std) - log_norm_pdf(z)
    if isinstance(prediction, GaussianMixture):
        z = (y[:, None] - prediction.means) / prediction.stds
        with np.errstate(divide="ignore"):
            log_w = np.log(prediction.weights)
        return -special.logsumexp(log_w + log_norm_pdf(z) - np.log(prediction.stds), axis=1)
    if isinstance(prediction, TruncatedNormal):
        scale = prediction.scale
        z = (y - prediction.loc) / scale
        a = (prediction.low - prediction.loc) / scale
        b = (prediction.high - prediction.loc) / scale
        nll = np.log(scale) - log_norm_pdf(z) + log_ndtr_diff(a, b)
        return np.where((y < prediction.low) | (y > prediction.high), np.inf, nll)
    raise UsageError(f"a {prediction.kind!r} prediction has no density for the NLL")


@metric("nll", direction="lower", accepts=PARAMETRIC_KINDS, task_kind="regression",
        family="proper_score", pointwise=nll_per_sample)
def nll(y: np.ndarray, prediction: Prediction) -> float:
    """Mean negative log likelihood of a (truncated) Gaussian or mixture predictive (nats)."""
    return float(np.mean(nll_per_sample(y, prediction)))


# -- intervals ---------------------------------------------------------------------------

def central_interval(prediction: Prediction, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bound of the central ``level`` interval of each predictive.

    Quantile predictions must cover the interval's levels: ``Quantiles.interval`` would clip
    them to the outermost levels, which makes a too-narrow interval look over-confident.
    """
    if not 0.0 < level < 1.0:
        raise UsageError(f"interval level must be in (0, 1), got {level}")
    if isinstance(prediction, Quantiles) and not prediction.covers(level):
        tail = (1.0 - level) / 2.0
        raise UsageError(f"quantile levels {prediction.levels.tolist()} do not cover the "
                         f"levels {[tail, 1.0 - tail]} needed for this metric")
    if not hasattr(prediction, "interval"):
        raise UsageError(f"a {prediction.kind!r} prediction has no predictive interval")
    return prediction.interval(level)  # type: ignore[union-attr]


def covered(y: np.ndarray, prediction: Prediction, level: float) -> np.ndarray:
    """1.0 where the target lies inside the central ``level`` interval, else 0.0."""
    y = as_target(y)
    lo, hi = central_interval(prediction, level)
    return ((y >= lo) & (y <= hi)).astype(np.float64)


def interval_width(y: np.ndarray, prediction: Prediction, level: float) -> np.ndarray:
    """Width of each sample's central ``level`` interval (target units)."""
    lo, hi = central_interval(prediction, level)
    return hi - lo


def picp(y: np.ndarray, prediction: Prediction, level: float) -> float:
    """Prediction interval coverage probability: share of targets inside the central interval."""
    return float(np.mean(covered(y, prediction, level)))


def mpiw(y: np.ndarray, prediction: Prediction, level: float) -> float:
    """Mean prediction interval width of the central ``level`` interval."""
    return float(np.mean(interval_width(y, prediction, level)))


def _covers(prediction: Prediction, level: float) -> bool:
    """Quantile predictions can only be scored on intervals their levels reach."""
    return not isinstance(prediction, Quantiles) or prediction.covers(level)


def _register_interval_metrics(level: float) -> None:
    pct = round(level * 100)
    needs = partial(_covers, level=level)
    metric(f"picp_{pct}", direction="target", ideal=level, accepts=INTERVAL_KINDS,
           task_kind="regression", family="calibration", requires=needs,
           description=f"Share of targets inside the central {pct} % interval: "
                       f"{level:.2f} when calibrated",
           pointwise=partial(covered, level=level))(partial(picp, level=level))
    metric(f"mpiw_{pct}", direction="lower", accepts=INTERVAL_KINDS, task_kind="regression",
           family="calibration", requires=needs,
           description=f"Mean width of the central {pct} % interval (target units): sharpness, "
                       f"read it with picp_{pct}",
           pointwise=partial(interval_width, level=level))(partial(mpiw, level=level))


for _level in INTERVAL_LEVELS:
    _register_interval_metrics(_level)


@metric("coverage_error_90", direction="lower", accepts=INTERVAL_KINDS, task_kind="regression",
        family="calibration", pointwise=partial(covered, level=0.90),
        finalize=partial(_abs_gap, nominal=0.90))
def coverage_error_90(y: np.ndarray, prediction: Prediction) -> float:
    """|coverage of the central 90 % interval - 0.90|: 0 for calibrated intervals."""
    return abs(picp(y, prediction, 0.90) - 0.90)


# -- probability integral transform ------------------------------------------------------

def _pit_samples(y: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Ensemble PIT ``(rank + 1/2) / (S + 1)``, rank counting ties as half.

    For a calibrated ensemble the rank of ``y`` is uniform on ``0..S``; centring each rank
    in one of ``S + 1`` equal cells makes the PIT histogram flat as well (deterministic,
    unlike a randomised PIT).
    """
    below = (values < y[:, None]).sum(axis=1)
    ties = (values == y[:, None]).sum(axis=1)
    return (below + 0.5 * ties + 0.5) / (values.shape[1] + 1.0)


def _pit_quantiles(y: np.ndarray, prediction: Quantiles) -> np.ndarray:
    """PIT from the piecewise-linear CDF of the quantiles.

    Beyond the outer levels the distribution is unknown (``Quantiles.cdf`` puts an atom at
    each outermost value): such a target gets the middle of the uncovered tail
    (``levels[0] / 2`` or ``(1 + levels[-1]) / 2``), not 0 or 1.
    """
    levels, values = prediction.levels, prediction.sorted_values
    pit = prediction.cdf(y)
    pit = np.where(y <= values[:, 0], levels[0] / 2.0, pit)
    return np.where(y >= values[:, -1], (1.0 + levels[-1]) / 2.0, pit)


def pit_values(y: np.ndarray, prediction: Prediction) -> np.ndarray:
    """Probability integral transform ``F(y)`` per sample: uniform when calibrated."""
    y = as_target(y)
    if isinstance(prediction, (Gaussian, TruncatedNormal, GaussianMixture)):
        return np.asarray(prediction.cdf(y), dtype=np.float64)
    if isinstance(prediction, Samples):
        return _pit_samples(y, prediction.values)
    if isinstance(prediction, Quantiles):
        return _pit_quantiles(y, prediction)
    raise UsageError(f"a {prediction.kind!r} prediction has no CDF to compute PIT values")


def pit_density(pit: np.ndarray, n_bins: int = PIT_BINS) -> tuple[np.ndarray, np.ndarray]:
    """Bin edges and PIT histogram density on ``[0, 1]`` (1.0 everywhere when uniform)."""
    counts, edges = np.histogram(np.clip(pit, 0.0, 1.0), bins=n_bins, range=(0.0, 1.0))
    return edges, counts * n_bins / max(len(pit), 1)


def pit_bin_indicators(y: np.ndarray, prediction: Prediction,
                       n_bins: int = PIT_BINS) -> np.ndarray:
    """One-hot ``[N, n_bins]`` of each sample's PIT histogram bin (as :func:`pit_density`:
    ``[e_i, e_(i+1))``, the last bin closed, PIT clipped to ``[0, 1]``; a NaN PIT is in no
    bin). Their mean times ``n_bins`` is the histogram density."""
    pit = np.clip(pit_values(y, prediction), 0.0, 1.0)
    edges = np.linspace(0.0, 1.0, n_bins + 1)  # the edges np.histogram uses
    index = np.clip(np.searchsorted(edges, pit, side="right") - 1, 0, n_bins - 1)
    out = np.zeros((pit.size, n_bins))
    out[np.arange(pit.size), index] = np.where(np.isnan(pit), 0.0, 1.0)
    return out


def pit_deviation_from_means(means: np.ndarray) -> np.ndarray:
    """``mean |density - 1|`` from the bin shares ``[..., n_bins]``."""
    means = np.asarray(means, dtype=np.float64)
    return np.mean(np.abs(means * means.shape[-1] - 1.0), axis=-1)


@metric("pit_deviation", direction="lower", accepts=DISTRIBUTION_KINDS, task_kind="regression",
        family="calibration", pointwise=pit_bin_indicators, finalize=pit_deviation_from_means)
def pit_deviation(y: np.ndarray, prediction: Prediction) -> float:
    """Mean |PIT histogram density - 1| over 10 bins: 0 for a flat (calibrated) histogram."""
    _, density = pit_density(pit_values(y, prediction))
    return float(np.mean(np.abs(density - 1.0)))


def _calibration_grid() -> np.ndarray:
    return (np.arange(CALIBRATION_GRID) + 0.5) / CALIBRATION_GRID


def pit_grid_cells(y: np.ndarray, prediction: Prediction) -> np.ndarray:
    """One-hot ``[N, 100]`` of the first grid point ``p_j`` with ``PIT <= p_j`` (a PIT above
    every grid point, or NaN, is all zeros): the cumulative sum of their mean over ``j`` is
    the PIT CDF on the grid, ``#{PIT <= p_j} / N``."""
    pit = pit_values(y, prediction)
    first = np.searchsorted(_calibration_grid(), pit, side="left")  # NaN sorts last
    inside = (first < CALIBRATION_GRID) & ~np.isnan(pit)
    out = np.zeros((pit.size, CALIBRATION_GRID))
    out[np.flatnonzero(inside), first[inside]] = 1.0
    return out


def miscalibration_area_from_means(means: np.ndarray) -> np.ndarray:
    """``mean_j |F̂_PIT(p_j) - p_j|`` from the grid-cell shares ``[..., 100]``."""
    observed = np.cumsum(np.asarray(means, dtype=np.float64), axis=-1)
    return np.mean(np.abs(observed - _calibration_grid()), axis=-1)


@metric("miscalibration_area", direction="lower", accepts=DISTRIBUTION_KINDS,
        task_kind="regression", family="calibration", pointwise=pit_grid_cells,
        finalize=miscalibration_area_from_means)
def miscalibration_area(y: np.ndarray, prediction: Prediction) -> float:
    """Area between the PIT CDF and the diagonal: 0 when calibrated, at most 0.5.

    Exactly ``mean_j |#{PIT <= p_j} / N - p_j|`` over the midpoints ``p_j = (j + 1/2) / 100``,
    the midpoint rule for ``∫₀¹ |F̂_PIT(p) - p| dp``. ``F̂_PIT(p)`` is the observed coverage
    of the one-sided ``p`` quantile, so this is also the quantile-calibration area.
    """
    pit = np.sort(pit_values(y, prediction))
    grid = _calibration_grid()
    observed = np.searchsorted(pit, grid, side="right") / len(pit)
    return float(np.mean(np.abs(observed - grid)))
