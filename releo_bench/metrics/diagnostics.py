"""Diagnostics behind the scalar metrics, for plots and results files.

Plain functions returning JSON-serialisable dicts of lists (floats; ``None`` where a value
is undefined, e.g. an empty bin), so results files can store them and plots can be redrawn
without the predictions. They reuse the metrics' own binning and PIT, so a reliability
diagram shows exactly the bins that ECE averages and a PIT histogram the one that
``pit_deviation`` scores.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..predictions import ClassProbs, Prediction, Quantiles
from .classification import calibration_bins, confusion_matrix
from .regression import (DISTRIBUTION_KINDS, PIT_BINS, as_target, central_interval,
                         pit_density, pit_values)

COVERAGE_LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)


def _json_list(values: np.ndarray | Sequence[float]) -> list[float | None]:
    """Python floats, with NaN and infinities as ``None`` (JSON has neither)."""
    return [float(v) if np.isfinite(v) else None for v in np.asarray(values, dtype=np.float64)]


def reliability_bins(y: np.ndarray, pred: ClassProbs, n_bins: int = 15) -> dict[str, list]:
    """Top-label reliability diagram: per equal-width confidence bin, the mean confidence,
    the accuracy and the sample count (``None`` confidence/accuracy for an empty bin).

    ``{"bin_edges": [n_bins + 1], "confidence": [n_bins], "accuracy": [n_bins],
    "count": [n_bins]}``; ECE is ``Σ count |accuracy - confidence| / Σ count``.
    """
    edges, count, conf_sum, hit_sum = calibration_bins(y, pred, n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence, accuracy = conf_sum / count, hit_sum / count
    return {"bin_edges": _json_list(edges), "confidence": _json_list(confidence),
            "accuracy": _json_list(accuracy), "count": [int(c) for c in count]}


def pit_histogram(y: np.ndarray, pred: Prediction, n_bins: int = PIT_BINS) -> dict[str, list]:
    """PIT histogram on ``[0, 1]``: ``{"bin_edges": [n_bins + 1], "density": [n_bins]}``,
    density 1.0 in every bin for calibrated predictions (U-shape: over-confident; hump:
    under-confident; slope: biased)."""
    edges, density = pit_density(pit_values(y, pred), n_bins)
    return {"bin_edges": _json_list(edges), "density": _json_list(density)}


def coverage_curve(y: np.ndarray, pred: Prediction,
                   levels: Sequence[float] = COVERAGE_LEVELS) -> dict[str, list]:
    """Observed coverage and mean width of central intervals at nominal ``levels``.

    ``{"nominal": [L], "observed": [L], "mean_width": [L]}``; calibrated predictions follow
    the diagonal. Levels a quantile prediction does not cover (e.g. 0.99 from quantiles at
    0.05..0.95) get ``None`` rather than a clipped, too-narrow interval.
    """
    y = as_target(y)
    observed, width = [], []
    for level in levels:
        if isinstance(pred, Quantiles) and not pred.covers(level):
            observed.append(np.nan)
            width.append(np.nan)
            continue
        lo, hi = central_interval(pred, level)
        observed.append(np.mean((y >= lo) & (y <= hi)))
        width.append(np.mean(hi - lo))
    return {"nominal": _json_list(levels), "observed": _json_list(observed),
            "mean_width": _json_list(width)}


def per_class_f1(y: np.ndarray, pred: ClassProbs) -> dict[str, float | None]:
    """F1 of each class ``2 TP / (2 TP + FP + FN)``, by class name; ``None`` for a class that
    neither occurs in the targets nor is ever predicted (undefined, not 0)."""
    cm = confusion_matrix(y, pred)
    tp = np.diag(cm)
    denominator = 2.0 * tp + (cm.sum(axis=0) - tp) + (cm.sum(axis=1) - tp)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = 2.0 * tp / denominator
    return dict(zip(pred.class_names, _json_list(f1)))


def diagnostics_for(y: np.ndarray, pred: Prediction) -> dict[str, Any]:
    """The diagnostics that apply to ``pred``'s kind, keyed by function name.

    Classification: ``reliability`` and ``per_class_f1``; regression distributions:
    ``pit_histogram`` and ``coverage_curve``; point predictions: nothing.
    """
    if isinstance(pred, ClassProbs):
        return {"reliability": reliability_bins(y, pred), "per_class_f1": per_class_f1(y, pred)}
    if pred.kind in DISTRIBUTION_KINDS:
        return {"pit_histogram": pit_histogram(y, pred), "coverage_curve": coverage_curve(y, pred)}
    return {}
