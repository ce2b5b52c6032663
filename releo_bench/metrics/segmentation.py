"""Segmentation metrics: per-pixel classification scored over the pixels of all test images.

A segmentation prediction is a :class:`~releo_bench.predictions.ClassProbs` over pixel
samples (images flattened to ``[N_pixels, K]``, targets to ``[N_pixels]``; pixels without a
label are dropped before scoring), so every classification metric applies unchanged. In
particular per-pixel calibration is just ``ece`` (``mce``, ``rms_calibration_error``) over
pixel samples, and ``overall_accuracy`` is pixel accuracy. This module adds the metric that
is specific to segmentation: mean intersection over union.
"""

from __future__ import annotations

import numpy as np

from ..predictions import CLASSIFICATION_KINDS, ClassProbs, Prediction
from .base import metric
from .classification import _confusion_from_means, _mean_where, confusion_cells, confusion_matrix


def iou_per_class(y: np.ndarray, prediction: ClassProbs) -> np.ndarray:
    """``TP / (TP + FP + FN)`` per class; NaN for a class absent from truth and prediction."""
    cm = confusion_matrix(y, prediction)
    tp = np.diag(cm)
    union = cm.sum(axis=0) + cm.sum(axis=1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def miou_from_means(means: np.ndarray) -> np.ndarray:
    """mIoU from the normalised confusion cells ``[..., K * K]`` (see
    :func:`~releo_bench.metrics.classification.confusion_cells`): IoU is scale free."""
    _, tp, truth, predicted = _confusion_from_means(means)
    union = truth + predicted - tp
    present = union > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = tp / union
    return _mean_where(iou, present, 0.0)


@metric("miou", direction="higher", accepts=CLASSIFICATION_KINDS, task_kind="classification",
        family="accuracy", pointwise=confusion_cells, finalize=miou_from_means)
def miou(y: np.ndarray, prediction: Prediction) -> float:
    """Mean intersection over union over the classes present in truth or prediction.

    Classes absent from both are undefined (0 / 0) and left out, as in scikit-learn's
    ``jaccard_score(average="macro")``, rather than counted as 0 or 1.
    """
    iou = iou_per_class(y, prediction)  # type: ignore[arg-type]
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else 0.0
