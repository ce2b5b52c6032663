"""k-nearest-neighbour classification (scikit-learn) with Laplace-smoothed probabilities.

scikit-learn's ``KNeighborsClassifier`` gives, per test row, the (uniform or inverse-distance
weighted) share of each class among its ``k`` nearest training rows (Euclidean distance on
the standardised features). A class none of the neighbours has gets probability 0, an
infinite log loss when it is the true class. The probe smooths the shares like counts out of
``k`` with ``smoothing`` pseudo-counts per class of the target::

    p = (k * share + smoothing) / (k + n_classes * smoothing)

``smoothing = 0`` gives scikit-learn's probabilities unchanged. Classes missing from the
training rows get only the pseudo-count. ``k`` is reduced to the number of training rows when
there are fewer. The validation split is not used (``k`` and ``smoothing`` are fixed).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.neighbors import KNeighborsClassifier

from ..errors import DataError, UsageError
from ..predictions import ClassProbs
from ..tasks.base import TargetSpec
from .base import Probe
from .batched import check_features, check_targets
from .logistic import _expand


class KNNProbe(Probe):
    """k nearest neighbours, probabilities smoothed so that log loss stays finite."""

    name = "knn"
    task_kind = "classification"
    description = "k-nearest-neighbour classifier with Laplace-smoothed probabilities"
    defaults: dict[str, Any] = {"k": 15, "weights": "distance", "smoothing": 0.1}

    def __init__(self, target: TargetSpec, *, seed: int = 0, device: str = "cpu",
                 **params: Any) -> None:
        super().__init__(target, seed=seed, device=device, **params)
        k, weights, smoothing = self.params["k"], self.params["weights"], \
            self.params["smoothing"]
        if isinstance(k, bool) or int(k) != k or int(k) < 1:
            raise UsageError(f"knn: k must be a positive integer, got {k!r}")
        if weights not in ("uniform", "distance"):
            raise UsageError(f"knn: weights must be 'uniform' or 'distance', got {weights!r}")
        if not float(smoothing) >= 0:
            raise UsageError(f"knn: smoothing must be >= 0, got {smoothing!r}")
        self._n_classes = len(target.class_names or ())
        self._model: KNeighborsClassifier | None = None

    def fit(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None) -> "KNNProbe":
        X = check_features(X, "training", self.name)
        y = check_targets(y, X.shape[0], "training", self.name, self._n_classes)
        if X.shape[0] < 1:
            raise DataError("knn: needs at least 1 training sample")
        k = min(int(self.params["k"]), X.shape[0])
        self._model = KNeighborsClassifier(n_neighbors=k, weights=self.params["weights"])
        self._model.fit(X, y)
        self.fitted_params = {"k": k, "classes_seen": [int(c) for c in self._model.classes_]}
        return self

    def raw_proba(self, X: np.ndarray) -> np.ndarray:
        """scikit-learn's probabilities over every target class, before smoothing."""
        if self._model is None:
            raise UsageError("knn: call fit() before predicting")
        X = check_features(X, "prediction", self.name, self._model.n_features_in_)
        return _expand(self._model.predict_proba(X), self._model.classes_.astype(np.int64),
                       self._n_classes)

    def predict_dist(self, X: np.ndarray) -> ClassProbs:
        share = self.raw_proba(X)
        assert self._model is not None  # raw_proba refuses an unfitted probe
        k, alpha = float(self._model.n_neighbors), float(self.params["smoothing"])
        probs = (k * share + alpha) / (k + self._n_classes * alpha)
        return ClassProbs(probs, self.target.class_names or ())
