"""Classification metrics on class probabilities: accuracy, calibration, proper scores.

Targets are integer class indices into ``prediction.class_names``. Accuracy metrics score the
most probable class; Brier score and log loss score the whole probability vector.

Calibration errors (ECE, MCE, RMS) use the top-label confidence in 15 equal-width bins,
``[i/15, (i+1)/15)`` with the last bin closed, computed here in numpy (float64) so that the
metrics and :func:`releo_bench.metrics.diagnostics.reliability_bins` share one binning. They
equal torchmetrics' ``multiclass_calibration_error`` (norm ``l1``, ``max``, ``l2``) except
for confidences of exactly 1.0, which torchmetrics puts in a 16th bin of their own.
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


def confusion_matrix(y: np.ndarray, prediction: ClassProbs) -> np.ndarray:
    """Counts ``[K, K]`` of (true class, most probable class), rows indexed by truth."""
    labels = _as_labels(y, prediction)
    k = len(prediction.class_names)
    flat = np.bincount(labels * k + prediction.point(), minlength=k * k)
    return flat.reshape(k, k).astype(np.float64)


def hits(y: np.ndarray, prediction: Prediction) -> np.ndarray:
    """1.0 where the most probable class is the true class, else 0.0."""
    labels = _as_labels(y, prediction)  # type: ignore[arg-type]
    return (prediction.point() == labels).astype(np.float64)


@metric("overall_accuracy", direction="higher", accepts=CLASSIFICATION_KINDS,
        task_kind="classification", family="accuracy", pointwise=hits)
def overall_accuracy(y: np.ndarray, prediction: Prediction) -> float:
    """Share of samples whose most probable class is the true class."""
    return float(np.mean(hits(y, prediction)))


def confusion_cells(y: np.ndarray, prediction: Prediction) -> np.ndarray:
    """One-hot ``[N, K * K]`` of each sample's confusion cell ``true * K + predicted``: their
    mean is the confusion matrix normalised to sum 1 (flattened, rows indexed by truth)."""
    labels = _as_labels(y, prediction)  # type: ignore[arg-type]
    k = len(prediction.class_names)  # type: ignore[union-attr]
    out = np.zeros((labels.size, k * k))
    out[np.arange(labels.size), labels * k + prediction.point()] = 1.0
    return out


def _confusion_from_means(means: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                        np.ndarray]:
    """Normalised confusion matrices ``[..., K, K]`` from the means ``[..., K * K]`` of
    :func:`confusion_cells`, with their diagonals, row sums (truth) and column sums
    (prediction) ``[..., K]``."""
    means = np.asarray(means, dtype=np.float64)
    k = int(round(np.sqrt(means.shape[-1])))
    if k * k != means.shape[-1]:
        raise ValueError(f"{means.shape[-1]} confusion cells do not form a square matrix")
    cm = means.reshape(means.shape[:-1] + (k, k))
    return cm, np.diagonal(cm, axis1=-2, axis2=-1), cm.sum(axis=-1), cm.sum(axis=-2)


def _mean_where(values: np.ndarray, keep: np.ndarray, empty: float) -> np.ndarray:
    """Mean of ``values`` over the last axis where ``keep``; ``empty`` where none is kept."""
    n = keep.sum(axis=-1)
    total = np.where(keep, values, 0.0).sum(axis=-1)
    return np.where(n > 0, total / np.maximum(n, 1), empty)


def balanced_accuracy_from_means(means: np.ndarray) -> np.ndarray:
    """Mean recall over the classes present in the targets (scikit-learn drops the others)."""
    _, tp, truth, _ = _confusion_from_means(means)
    present = truth > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = tp / truth
    return _mean_where(recall, present, np.nan)


def macro_f1_from_means(means: np.ndarray) -> np.ndarray:
    """Mean ``2 TP / (2 TP + FP + FN)`` over the classes in targets or predictions (the
    labels scikit-learn's ``f1_score(average="macro")`` averages over)."""
    _, tp, truth, predicted = _confusion_from_means(means)
    support = truth + predicted
    present = support > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = 2.0 * tp / support
    return _mean_where(f1, present, 0.0)


def kappa_from_means(means: np.ndarray) -> np.ndarray:
    """Cohen's kappa ``1 - observed disagreement / chance disagreement``; NaN when targets
    and predictions share a single class (as scikit-learn's ``cohen_kappa_score``)."""
    _, tp, truth, predicted = _confusion_from_means(means)
    total = truth.sum(axis=-1)
    single = ((truth + predicted) > 0).sum(axis=-1) <= 1
    with np.errstate(invalid="ignore", divide="ignore"):
        observed = total - tp.sum(axis=-1)
        chance = total - (truth * predicted).sum(axis=-1) / total
        return np.where(single, np.nan, 1.0 - observed / chance)


@metric("balanced_accuracy", direction="higher", accepts=CLASSIFICATION_KINDS,
        task_kind="classification", family="accuracy", pointwise=confusion_cells,
        finalize=balanced_accuracy_from_means)
def balanced_accuracy(y: np.ndarray, prediction: Prediction) -> float:
    """Mean per-class recall over the classes present in the targets."""
    return float(skm.balanced_accuracy_score(_as_labels(y, prediction), prediction.point()))


@metric("macro_f1", direction="higher", accepts=CLASSIFICATION_KINDS,
        task_kind="classification", family="accuracy", pointwise=confusion_cells,
        finalize=macro_f1_from_means)
def macro_f1(y: np.ndarray, prediction: Prediction) -> float:
    """Unweighted mean F1 over classes occurring in targets or predictions."""
    return float(skm.f1_score(_as_labels(y, prediction), prediction.point(), average="macro",
                              zero_division=0))


@metric("kappa", direction="higher", accepts=CLASSIFICATION_KINDS,
        task_kind="classification", family="accuracy", pointwise=confusion_cells,
        finalize=kappa_from_means)
def kappa(y: np.ndarray, prediction: Prediction) -> float:
    """Cohen's kappa: agreement beyond what the class frequencies give by chance."""
    return float(skm.cohen_kappa_score(_as_labels(y, prediction), prediction.point()))


def _top_label_bins(y: np.ndarray, prediction: ClassProbs, n_bins: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bin edges, and per sample its bin, top-label confidence and correctness (0 / 1)."""
    labels = _as_labels(y, prediction)
    confidence = prediction.probs.max(axis=1)
    hit = (prediction.point() == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, n_bins - 1)
    return edges, index, confidence, hit


def calibration_bins(y: np.ndarray, prediction: ClassProbs, n_bins: int = CALIBRATION_BINS
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Top-label binning: edges ``[n_bins + 1]``, and per bin the sample count, the summed
    confidence and the number of correct top labels.

    Bins are ``[e_i, e_(i+1))`` like ``torch.bucketize(right=True)``, the last one closed.
    """
    edges, index, confidence, hit = _top_label_bins(y, prediction, n_bins)
    count = np.bincount(index, minlength=n_bins).astype(np.float64)
    conf_sum = np.bincount(index, weights=confidence, minlength=n_bins)
    hit_sum = np.bincount(index, weights=hit, minlength=n_bins)
    return edges, count, conf_sum, hit_sum


def _bin_gaps(y: np.ndarray, prediction: ClassProbs) -> tuple[np.ndarray, np.ndarray]:
    """|accuracy - confidence| and the share of samples, over the non-empty bins."""
    _, count, conf_sum, hit_sum = calibration_bins(y, prediction)
    full = count > 0
    gap = np.abs(hit_sum[full] - conf_sum[full]) / count[full]
    return gap, count[full] / max(count.sum(), 1.0)


def calibration_indicators(y: np.ndarray, prediction: Prediction) -> np.ndarray:
    """Per sample ``[bin one-hot, one-hot x confidence, one-hot x correct]`` ``[N, 3 x 15]``:
    their means are the count, summed confidence and hits per bin of
    :func:`calibration_bins`, divided by ``N``."""
    _, index, confidence, hit = _top_label_bins(y, prediction,  # type: ignore[arg-type]
                                                CALIBRATION_BINS)
    out = np.zeros((index.size, 3, CALIBRATION_BINS))
    rows = np.arange(index.size)
    out[rows, 0, index] = 1.0
    out[rows, 1, index] = confidence
    out[rows, 2, index] = hit
    return out.reshape(index.size, 3 * CALIBRATION_BINS)


def _gaps_from_means(means: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per bin ``|accuracy - confidence|`` (0 for an empty bin) and share of samples
    ``[..., 15]``, from the means ``[..., 45]`` of :func:`calibration_indicators`."""
    means = np.asarray(means, dtype=np.float64)
    stats = means.reshape(means.shape[:-1] + (3, CALIBRATION_BINS))
    count, conf_sum, hit_sum = stats[..., 0, :], stats[..., 1, :], stats[..., 2, :]
    full = count > 0
    gap = np.where(full, np.abs(hit_sum - conf_sum) / np.where(full, count, 1.0), 0.0)
    total = count.sum(axis=-1, keepdims=True)
    return gap, count / np.where(total > 0, total, 1.0)


def ece_from_means(means: np.ndarray) -> np.ndarray:
    gap, share = _gaps_from_means(means)
    return np.sum(gap * share, axis=-1)


def mce_from_means(means: np.ndarray) -> np.ndarray:
    gap, _ = _gaps_from_means(means)  # empty bins have gap 0: the max is over non-empty ones
    return gap.max(axis=-1)


def rms_calibration_error_from_means(means: np.ndarray) -> np.ndarray:
    gap, share = _gaps_from_means(means)
    return np.sqrt(np.sum(gap**2 * share, axis=-1))


@metric("ece", direction="lower", accepts=CLASSIFICATION_KINDS, task_kind="classification",
        family="calibration", pointwise=calibration_indicators, finalize=ece_from_means)
def ece(y: np.ndarray, prediction: Prediction) -> float:
    """Expected calibration error: bin-weighted mean |accuracy - confidence| (15 bins)."""
    gap, share = _bin_gaps(y, prediction)  # type: ignore[arg-type]
    return float(np.sum(gap * share))


@metric("mce", direction="lower", accepts=CLASSIFICATION_KINDS, task_kind="classification",
        family="calibration", pointwise=calibration_indicators, finalize=mce_from_means)
def mce(y: np.ndarray, prediction: Prediction) -> float:
    """Maximum calibration error: the worst bin's |accuracy - confidence| (15 bins)."""
    gap, _ = _bin_gaps(y, prediction)  # type: ignore[arg-type]
    return float(gap.max(initial=0.0))


@metric("rms_calibration_error", direction="lower", accepts=CLASSIFICATION_KINDS,
        task_kind="classification", family="calibration", pointwise=calibration_indicators,
        finalize=rms_calibration_error_from_means)
def rms_calibration_error(y: np.ndarray, prediction: Prediction) -> float:
    """Root of the bin-weighted mean squared |accuracy - confidence| (15 bins): weighs large
    gaps more than ECE."""
    gap, share = _bin_gaps(y, prediction)  # type: ignore[arg-type]
    return float(np.sqrt(np.sum(gap**2 * share)))


def brier_per_sample(y: np.ndarray, prediction: Prediction) -> np.ndarray:
    """Squared distance of each probability vector to the one-hot truth."""
    probs = prediction.probs  # type: ignore[union-attr]
    truth = _one_hot(_as_labels(y, prediction), probs.shape[1])  # type: ignore[arg-type]
    return np.sum((probs - truth) ** 2, axis=1)


def log_loss_per_sample(y: np.ndarray, prediction: Prediction) -> np.ndarray:
    """Negative log probability of the true class, clipped at 1e-15."""
    labels = _as_labels(y, prediction)  # type: ignore[arg-type]
    p_true = prediction.probs[np.arange(len(labels)), labels]  # type: ignore[union-attr]
    return -np.log(np.clip(p_true, LOG_LOSS_EPS, 1.0))


@metric("brier", direction="lower", accepts=CLASSIFICATION_KINDS, task_kind="classification",
        family="proper_score", pointwise=brier_per_sample)
def brier(y: np.ndarray, prediction: Prediction) -> float:
    """Multiclass Brier score: mean over samples of the squared distance to the one-hot truth."""
    return float(np.mean(brier_per_sample(y, prediction)))


@metric("log_loss", direction="lower", accepts=CLASSIFICATION_KINDS, task_kind="classification",
        family="proper_score", pointwise=log_loss_per_sample)
def log_loss(y: np.ndarray, prediction: Prediction) -> float:
    """Mean negative log probability of the true class (nats), clipped at 1e-15."""
    return float(np.mean(log_loss_per_sample(y, prediction)))
