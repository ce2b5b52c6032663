"""Multinomial L2 logistic regression (scikit-learn, lbfgs) with C chosen by log loss.

``C`` is chosen by log loss on the validation split when one is given, otherwise by pooled
out-of-fold log loss of a stratified K-fold on the training split (at most 5 folds). The
model is deterministic for a given seed. scikit-learn's defaults are L2 penalty, lbfgs and a
multinomial loss; they are left at their defaults because the parameters that name them
explicitly are deprecated in recent scikit-learn versions.

``temperature_scaling`` (off by default): one temperature ``T`` is fitted on held-out
log-probabilities of the chosen model (:mod:`~releo_bench.probes.temperature`): the
validation split's when one is given, otherwise the pooled out-of-fold probabilities of the
chosen ``C``. Test log-probabilities are divided by ``T`` before the softmax;
``fitted_params["temperature"]`` records ``T`` and :meth:`LogisticProbe.unscaled_dist` gives
the probabilities before scaling (``SeedFit.unscaled`` in ``fit_seeds``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from ..errors import DataError, UsageError
from ..predictions import ClassProbs
from ..tasks.base import TargetSpec
from .base import Probe
from .temperature import fit_temperature, log_probs, softmax

_MAX_FOLDS = 5
_EPS = 1e-15


def _expand(probs: np.ndarray, seen: np.ndarray, n_classes: int) -> np.ndarray:
    """Map ``[M, len(seen)]`` probabilities onto all ``n_classes`` columns, renormalised.

    Classes absent from training get probability 0; a row that sums to 0 (cannot happen
    with a softmax, but guards the division) becomes uniform.
    """
    full = np.zeros((probs.shape[0], n_classes), dtype=np.float64)
    full[:, seen] = np.clip(probs, 0.0, None)
    total = full.sum(axis=1, keepdims=True)
    uniform = np.full_like(full, 1.0 / n_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, full / total, uniform)


def _log_loss(y: np.ndarray, probs: np.ndarray) -> float:
    """Mean negative log probability of the true class over all target classes."""
    return float(np.mean(-np.log(np.clip(probs[np.arange(len(y)), y], _EPS, 1.0))))


def _check_labels(y: np.ndarray, n_classes: int, what: str) -> np.ndarray:
    y = np.asarray(y).reshape(-1)
    if y.size and not np.all(np.equal(np.mod(y, 1), 0)):
        raise DataError(f"logistic: {what} targets must be integer class indices")
    labels = y.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise DataError(f"logistic: {what} class indices must lie in [0, {n_classes}), got "
                        f"[{labels.min()}, {labels.max()}]")
    return labels


def _check_x(X: np.ndarray, what: str) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise DataError(f"logistic: {what} features must be [N, D], got shape {X.shape}")
    if not np.isfinite(X).all():
        raise DataError(f"logistic: {what} features contain NaN or infinite values")
    return X


class LogisticProbe(Probe):
    """Multinomial logistic regression returning probabilities over every target class."""

    name = "logistic"
    task_kind = "classification"
    description = "multinomial L2 logistic regression, C chosen on validation"
    defaults = {"Cs": [1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0], "max_iter": 2000,
                "temperature_scaling": False}

    def __init__(self, target: TargetSpec, *, seed: int = 0, device: str = "cpu",
                 **params: Any) -> None:
        super().__init__(target, seed=seed, device=device, **params)
        cs = [float(c) for c in self.params["Cs"]]
        if not cs or min(cs) <= 0:
            raise UsageError(f"logistic: Cs must be a non-empty list of positive numbers, got "
                             f"{self.params['Cs']}")
        self._cs = cs
        self._n_classes = len(target.class_names or ())
        self._model: LogisticRegression | None = None
        self._temperature: float | None = None

    def _new_model(self, c: float) -> LogisticRegression:
        return LogisticRegression(C=c, max_iter=int(self.params["max_iter"]),
                                  random_state=self.seed)

    def _probs(self, model: LogisticRegression, X: np.ndarray) -> np.ndarray:
        return _expand(model.predict_proba(X), model.classes_.astype(np.int64), self._n_classes)

    def _validation_score(self, c: float, X: np.ndarray, y: np.ndarray, X_val: np.ndarray,
                          y_val: np.ndarray) -> tuple[float, LogisticRegression]:
        model = self._new_model(c).fit(X, y)
        return _log_loss(y_val, self._probs(model, X_val)), model

    def _out_of_fold(self, c: float, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Pooled out-of-fold probabilities of a stratified K-fold (K <= 5, seeded)."""
        smallest = int(np.bincount(y)[np.unique(y)].min())
        folds = StratifiedKFold(n_splits=min(_MAX_FOLDS, max(2, smallest)), shuffle=True,
                                random_state=self.seed)
        out_of_fold = np.empty((len(y), self._n_classes))
        for train_idx, test_idx in folds.split(X, y):
            model = self._new_model(c).fit(X[train_idx], y[train_idx])
            out_of_fold[test_idx] = self._probs(model, X[test_idx])
        return out_of_fold

    def fit(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None) -> "LogisticProbe":
        X, y = _check_x(X, "training"), _check_labels(y, self._n_classes, "training")
        if X.shape[0] != y.shape[0]:
            raise DataError(f"logistic: {X.shape[0]} feature rows for {y.shape[0]} targets")
        if np.unique(y).size < 2:
            raise DataError("logistic: the training split needs at least two classes")
        if (X_val is None) != (y_val is None):
            raise UsageError("logistic: pass both X_val and y_val, or neither")
        if X_val is not None:
            xv = _check_x(X_val, "validation")
            yv = _check_labels(y_val, self._n_classes, "validation")  # type: ignore[arg-type]
            scored = [self._validation_score(c, X, y, xv, yv) for c in self._cs]
            best = int(np.argmin([s for s, _ in scored]))
            self._model, criterion = scored[best][1], "validation_log_loss"
            held_out = (self._probs(self._model, xv), yv)
        else:
            oofs = [self._out_of_fold(c, X, y) for c in self._cs]
            best = int(np.argmin([_log_loss(y, o) for o in oofs]))
            self._model, criterion = self._new_model(self._cs[best]).fit(X, y), "cv_log_loss"
            held_out = (oofs[best], y)
        self.fitted_params = {"C": self._cs[best], "C_criterion": criterion,
                              "n_iter": int(np.max(self._model.n_iter_)),
                              "classes_seen": [int(c) for c in self._model.classes_]}
        self._temperature = None
        if self.params["temperature_scaling"]:
            self._temperature = fit_temperature(log_probs(held_out[0]), held_out[1])
            self.fitted_params["temperature"] = self._temperature
        return self

    def _unscaled_probs(self, X: np.ndarray) -> np.ndarray:
        if self._model is None:
            raise UsageError("logistic: call fit() before predicting")
        return self._probs(self._model, _check_x(X, "prediction"))

    def predict_dist(self, X: np.ndarray) -> ClassProbs:
        probs = self._unscaled_probs(X)
        if self._temperature is not None:
            probs = softmax(log_probs(probs), self._temperature)
        return ClassProbs(probs, self.target.class_names or ())

    def unscaled_dist(self, X: np.ndarray) -> ClassProbs | None:
        """The probabilities before temperature scaling; None when scaling is off."""
        if self._temperature is None:
            return None
        return ClassProbs(self._unscaled_probs(X), self.target.class_names or ())
