"""Classification metrics on class probabilities: accuracy, calibration, proper scores.

Targets are integer class indices into ``prediction.class_names``. Accuracy metrics score the
most probable class; calibration errors use the top-label confidence in 15 equal-width bins
(torchmetrics); Brier score and log loss score the whole probability vector.
"""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

from ..errors import UsageError
from ..predictions import CLASSIFICATION_KINDS, ClassProbs, Prediction
from .base import metric

CALIBRATION_BINS = 15
LOG_LOSS_EPS = 1e-15  # a zero probability on the true class costs -log(1e-15) ~ 34.5 nats


def _as_labels(y: np.ndarray, prediction: ClassProbs) -> np.ndarray:
    """Targets as int64 class indices, checked against the prediction's classes."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise UsageError(f"classification targets must be 1-D class indices, got shape {y.shape}")
    if y.size and not np.all(np.equal(np.mod(y, 1), 0)):
        raise UsageError("classification targets must be integer class indices")
    labels = y.astype(np.int64)
    n_classes = len(prediction.class_names)
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise UsageError(f"class indices must lie in [0, {n_classes}), got "
                         f"[{labels.min()}, {labels.max()}]")
    return labels


def _one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    return np.eye(n_classes, dtype=np.float64)[labels]


@metric("overall_accuracy", direction="higher", accepts=CLASSIFICATION_KINDS,
        task_kind="classification", family="accuracy")
def overall_accuracy(y: np.ndarray, prediction: Prediction) -> float:
    """Share of samples whose most probable class is the true class."""
    return float(skm.accuracy_score(_as_labels(y, prediction), prediction.point()))


@metric("balanced_accuracy", direction="higher", accepts=CLASSIFICATION_KINDS,
        task_kind="classification", family="accuracy")
def balanced_accuracy(y: np.ndarray, prediction: Prediction) -> float:
    """Mean per-class recall over the classes present in the targets."""
    return float(skm.balanced_accuracy_score(_as_labels(y, prediction), prediction.point()))


@metric("macro_f1", direction="higher", accepts=CLASSIFICATION_KINDS,
        task_kind="classification", family="accuracy")
def macro_f1(y: np.ndarray, prediction: Prediction) -> float:
    """Unweighted mean F1 over classes occurring in targets or predictions."""
    return float(skm.f1_score(_as_labels(y, prediction), prediction.point(), average="macro",
                              zero_division=0))


@metric("kappa", direction="higher", accepts=CLASSIFICATION_KINDS,
        task_kind="classification", family="accuracy")
def kappa(y: np.ndarray, prediction: Prediction) -> float:
    """Cohen's kappa: agreement beyond what the class frequencies give by chance."""
    return float(skm.cohen_kappa_score(_as_labels(y, prediction), prediction.point()))


def _calibration_error(y: np.ndarray, prediction: ClassProbs, norm: str) -> float:
    """Top-label calibration error in equal-width bins, via torchmetrics.

    Probabilities are clipped to [0, 1] first: torchmetrics treats anything outside that
    range as logits and would apply a softmax. torch is imported here, not at module level,
    so that listing the metric registry stays fast.
    """
    import torch
    from torchmetrics.functional.classification import multiclass_calibration_error

    labels = _as_labels(y, prediction)
    probs = torch.from_numpy(np.clip(prediction.probs, 0.0, 1.0))
    value = multiclass_calibration_error(probs, torch.from_numpy(labels),
                                         num_classes=len(prediction.class_names),
                                         n_bins=CALIBRATION_BINS, norm=norm)
    return float(value)


@metric("ece", direction="lower", accepts=CLASSIFICATION_KINDS, task_kind="classification",
        family="calibration")
def ece(y: np.ndarray, prediction: Prediction) -> float:
    """Expected calibration error: bin-weighted mean |accuracy - confidence| (15 bins)."""
    return _calibration_error(y, prediction, "l1")  # type: ignore[arg-type]


@metric("mce", direction="lower", accepts=CLASSIFICATION_KINDS, task_kind="classification",
        family="calibration")
def mce(y: np.ndarray, prediction: Prediction) -> float:
    """Maximum calibration error: the worst bin's |accuracy - confidence| (15 bins)."""
    return _calibration_error(y, prediction, "max")  # type: ignore[arg-type]


@metric("brier", direction="lower", accepts=CLASSIFICATION_KINDS, task_kind="classification",
        family="proper_score")
def brier(y: np.ndarray, prediction: Prediction) -> float:
    """Multiclass Brier score: mean over samples of the squared distance to the one-hot truth."""
    probs = prediction.probs  # type: ignore[union-attr]
    truth = _one_hot(_as_labels(y, prediction), probs.shape[1])
    return float(np.mean(np.sum((probs - truth) ** 2, axis=1)))


@metric("log_loss", direction="lower", accepts=CLASSIFICATION_KINDS, task_kind="classification",
        family="proper_score")
def log_loss(y: np.ndarray, prediction: Prediction) -> float:
    """Mean negative log probability of the true class (nats), clipped at 1e-15."""
    labels = _as_labels(y, prediction)
    p_true = prediction.probs[np.arange(len(labels)), labels]  # type: ignore[union-attr]
    return float(np.mean(-np.log(np.clip(p_true, LOG_LOSS_EPS, 1.0))))
