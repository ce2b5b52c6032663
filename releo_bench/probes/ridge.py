"""Ridge regression with a closed-form Gaussian predictive.

One thin SVD of the centred training features gives, for every candidate ``alpha`` at the
cost of a few matrix products, the coefficients, the effective degrees of freedom
``trace(H)`` and the predictive variance::

    var(x) = sigma² (1 + 1/n + x̃ᵀ (X̃ᵀX̃ + alpha I)⁻¹ x̃)

with ``X̃`` the centred features and ``x̃ = x - mean(X)``. This is the textbook
``sigma² (1 + xᵀ (XᵀX + alpha I)⁻¹ x)`` written for a design augmented with an
*unpenalised* intercept column (the ``1/n`` term is the intercept's uncertainty).
``sigma²`` is the residual variance over the residual degrees of freedom ``n - trace(H)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import DataError, UsageError
from ..predictions import Gaussian, TruncatedNormal
from ..tasks.base import TargetSpec
from .base import Probe

_MIN_DOF = 1e-6


@dataclass(frozen=True)
class _Svd:
    """Centred training data in SVD form: ``X̃ = U diag(s) Vᵀ``."""

    x_mean: np.ndarray
    y_mean: float
    u: np.ndarray
    s: np.ndarray
    vt: np.ndarray
    uty: np.ndarray  # Uᵀ ỹ
    y_centred: np.ndarray

    @property
    def n(self) -> int:
        return self.u.shape[0]


@dataclass(frozen=True)
class _Fit:
    """A ridge solution for one alpha."""

    alpha: float
    coef: np.ndarray
    intercept: float
    sigma2: float
    rss: float
    dof: float  # residual degrees of freedom n - trace(H)


def _decompose(X: np.ndarray, y: np.ndarray) -> _Svd:
    x_mean, y_mean = X.mean(axis=0), float(y.mean())
    xc, yc = X - x_mean, y - y_mean
    u, s, vt = np.linalg.svd(xc, full_matrices=False)
    return _Svd(x_mean, y_mean, u, s, vt, u.T @ yc, yc)


def _solve(svd: _Svd, alpha: float) -> _Fit:
    """Coefficients and residual variance for ``alpha`` (intercept unpenalised)."""
    shrink = svd.s**2 / (svd.s**2 + alpha)
    coef = svd.vt.T @ (svd.s / (svd.s**2 + alpha) * svd.uty)
    fitted = svd.u @ (shrink * svd.uty)
    rss = float(np.sum((svd.y_centred - fitted) ** 2))
    dof = svd.n - (1.0 + float(shrink.sum()))  # trace(H) counts the intercept as one
    sigma2 = rss / max(dof, _MIN_DOF)
    floor = 1e-12 * max(float(np.mean(svd.y_centred**2)), 1.0)  # a perfect fit still has std > 0
    return _Fit(alpha, coef, svd.y_mean - float(svd.x_mean @ coef), max(sigma2, floor), rss, dof)


def _gcv(svd: _Svd, fit: _Fit) -> float:
    """Generalised cross-validation ``n * RSS / (n - trace(H))²``: closed-form LOO proxy."""
    if fit.dof <= _MIN_DOF:
        return np.inf
    return svd.n * fit.rss / fit.dof**2


def _predictive_var(svd: _Svd, fit: _Fit, X: np.ndarray) -> np.ndarray:
    """``sigma² (1 + 1/n + x̃ᵀ (X̃ᵀX̃ + alpha I)⁻¹ x̃)`` for every row, no per-row loop.

    Directions outside the span of the training rows (``D > n``) see only ``alpha``.
    """
    xc = X - svd.x_mean
    proj = xc @ svd.vt.T
    in_span = np.sum(proj**2 / (svd.s**2 + fit.alpha), axis=1)
    off_span = np.clip(np.sum(xc**2, axis=1) - np.sum(proj**2, axis=1), 0.0, None) / fit.alpha
    return fit.sigma2 * (1.0 + 1.0 / svd.n + in_span + off_span)


def _gaussian_nll(y: np.ndarray, mean: np.ndarray, var: np.ndarray) -> float:
    return float(np.mean(0.5 * np.log(2.0 * np.pi * var) + 0.5 * (y - mean) ** 2 / var))


def _check_xy(X: np.ndarray, y: np.ndarray | None, what: str) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise DataError(f"ridge: {what} features must be [N, D], got shape {X.shape}")
    if not np.isfinite(X).all():
        raise DataError(f"ridge: {what} features contain NaN or infinite values")
    if y is None:
        return X, np.empty(0)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if y.shape[0] != X.shape[0]:
        raise DataError(f"ridge: {X.shape[0]} {what} feature rows for {y.shape[0]} targets")
    if not np.isfinite(y).all():
        raise DataError(f"ridge: {what} targets contain NaN or infinite values")
    return X, y


class RidgeGaussian(Probe):
    """Ridge regression whose predictive is Gaussian (or truncated to the target's range)."""

    name = "ridge"
    task_kind = "regression"
    description = "ridge regression with a closed-form Gaussian predictive"
    defaults = {"alphas": [1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0], "truncate": True}

    def __init__(self, target: TargetSpec, *, seed: int = 0, device: str = "cpu", **params: Any):
        super().__init__(target, seed=seed, device=device, **params)
        alphas = np.asarray(self.params["alphas"], dtype=np.float64).reshape(-1)
        if alphas.size == 0 or not (alphas > 0).all():
            raise UsageError(f"ridge: alphas must be a non-empty list of positive numbers, got "
                             f"{self.params['alphas']}")
        self._alphas = alphas
        self._svd: _Svd | None = None
        self._fit: _Fit | None = None

    def fit(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None) -> "RidgeGaussian":
        X, y = _check_xy(X, y, "training")
        if X.shape[0] < 2:
            raise DataError(f"ridge: needs at least 2 training samples, got {X.shape[0]}")
        svd = _decompose(X, y)
        fits = [_solve(svd, float(a)) for a in self._alphas]
        if (X_val is None) != (y_val is None):
            raise UsageError("ridge: pass both X_val and y_val, or neither")
        if X_val is not None:
            xv, yv = _check_xy(X_val, y_val, "validation")
            if xv.shape[1] != X.shape[1]:
                raise DataError(f"ridge: validation has {xv.shape[1]} features, training "
                                f"{X.shape[1]}")
            scores = [_gaussian_nll(yv, xv @ f.coef + f.intercept, _predictive_var(svd, f, xv))
                      for f in fits]
            criterion = "validation_nll"
        else:
            scores = [_gcv(svd, f) for f in fits]
            criterion = "gcv"
        best = fits[int(np.argmin(np.where(np.isfinite(scores), scores, np.inf)))]
        self._svd, self._fit = svd, best
        self.fitted_params = {"alpha": best.alpha, "sigma": float(np.sqrt(best.sigma2)),
                              "effective_dof": float(svd.n - best.dof),
                              "alpha_criterion": criterion}
        return self

    @property
    def coef_(self) -> np.ndarray:
        return self._fitted()[1].coef

    @property
    def intercept_(self) -> float:
        return self._fitted()[1].intercept

    def _fitted(self) -> tuple[_Svd, _Fit]:
        if self._svd is None or self._fit is None:
            raise UsageError("ridge: call fit() before predicting")
        return self._svd, self._fit

    def _bounds(self) -> tuple[float, float] | None:
        rng = self.target.range
        if not self.params["truncate"] or rng is None:
            return None
        low, high = float(rng[0]), float(rng[1])
        return (low, high) if np.isfinite(low) or np.isfinite(high) else None

    def predict_dist(self, X: np.ndarray) -> Gaussian | TruncatedNormal:
        svd, fit = self._fitted()
        X, _ = _check_xy(X, None, "prediction")
        if X.shape[1] != svd.vt.shape[1]:
            raise DataError(f"ridge: fitted on {svd.vt.shape[1]} features, got {X.shape[1]}")
        mean = X @ fit.coef + fit.intercept
        std = np.sqrt(_predictive_var(svd, fit, X))
        bounds = self._bounds()
        if bounds is None:
            return Gaussian(mean, std)
        return TruncatedNormal(mean, std, low=bounds[0], high=bounds[1])
