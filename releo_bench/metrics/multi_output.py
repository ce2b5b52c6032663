"""Multi-output regression: one prediction per output column, and metrics over whole vectors.

A multi-output regression task (``TargetSpec.outputs``, e.g. the S2 bands of a gap-filling
task) has targets ``Y [N, K]``. The runner trains one probe per output and wraps the K
per-output predictions in a :class:`MultiOutputPrediction` (kind ``"multi_output"``).

Per-output metrics are the ordinary registered metrics applied column by column. Metrics
that need the whole vector (``sam``) accept only the ``multi_output`` kind and are called as
``metric.fn(Y, prediction)`` with ``Y [N, K]`` (``Metric.__call__`` insists on 1-D targets).
For the bootstrap over test samples, :func:`indexed_metric` turns any of them into a metric of
``(row indices [N], prediction)`` with the truth bound in, so that the generic bootstrap
(which resamples 1-D targets) applies unchanged.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from ..errors import UsageError
from ..predictions import REGRESSION_KINDS, Prediction
from .base import Metric

MULTI_OUTPUT_KIND = "multi_output"


class MultiOutputPrediction:
    """K per-output predictions of the same N samples, seen as one prediction."""

    kind = MULTI_OUTPUT_KIND

    def __init__(self, parts: Sequence[Prediction]) -> None:
        if not parts:
            raise UsageError("a multi-output prediction needs at least one output")
        n = len(parts[0])
        if any(len(p) != n for p in parts):
            raise UsageError("every output must predict the same samples")
        self.parts = list(parts)

    def __len__(self) -> int:
        return len(self.parts[0])

    def point(self) -> np.ndarray:
        """Point predictions ``[N, K]``."""
        return np.stack([np.asarray(p.point(), dtype=np.float64) for p in self.parts], axis=1)

    def take(self, idx: np.ndarray) -> "MultiOutputPrediction":
        return MultiOutputPrediction([p.take(idx) for p in self.parts])


def _as_matrix(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    if y.ndim == 1:  # one output: a 1-vector per sample
        y = y[:, None]
    if y.ndim != 2:
        raise UsageError(f"multi-output targets must be [N, K], got shape {y.shape}")
    return y


def spectral_angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle in degrees between the rows of ``a`` and ``b`` (``[N, K]`` -> ``[N]``).

    NaN where either spectrum is the zero vector (the angle is undefined there).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    na, nb = np.linalg.norm(a, axis=-1), np.linalg.norm(b, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.sum(a * b, axis=-1) / (na * nb)
    cos = np.where((na > 0) & (nb > 0), np.clip(cos, -1.0, 1.0), np.nan)
    return np.degrees(np.arccos(cos))


def sam_pointwise(y: np.ndarray, prediction: Prediction | MultiOutputPrediction) -> np.ndarray:
    point = np.asarray(prediction.point(), dtype=np.float64)
    return spectral_angle(point.reshape(len(point), -1), _as_matrix(y))


def _sam(y: np.ndarray, prediction: MultiOutputPrediction) -> float:
    """Spectral angle mapper: mean over samples of the angle (degrees) between the predicted
    and true vectors (point predictions of every output)."""
    return float(np.mean(sam_pointwise(y, prediction)))


# Not in the METRICS registry on purpose: the generic metric contract (checks.check_metric and
# the decomposability tests) scores every metric on single-output predictions and requires a
# biased prediction to score worse, which a scale-invariant angle cannot do. Multi-output tasks
# list it in their metrics; the runner resolves names through :func:`get_metric`.
sam = Metric("sam", _sam, direction="lower", accepts=(MULTI_OUTPUT_KIND,),
             task_kind="regression", family="accuracy",
             description="spectral angle mapper (degrees) between predicted and true spectra, "
                         "mean over samples", pointwise=sam_pointwise)
VECTOR_OUTPUT_METRICS: dict[str, Metric] = {"sam": sam}


def get_metric(name: str) -> Metric:
    """A vector-output metric (``sam``) or else the registered metric ``name``."""
    if name in VECTOR_OUTPUT_METRICS:
        return VECTOR_OUTPUT_METRICS[name]
    from ..registries import METRICS
    return METRICS.get(name)


def is_multi_output_metric(m: Metric) -> bool:
    return m.name in VECTOR_OUTPUT_METRICS


def output_metric(m: Metric, y: np.ndarray, prediction: MultiOutputPrediction, k: int) -> float:
    """A per-output metric of output ``k``."""
    return m(_as_matrix(y)[:, k], prediction.parts[k])


def mean_over_outputs(m: Metric, y: np.ndarray, prediction: MultiOutputPrediction) -> float:
    """A per-output metric averaged over the outputs (the plain-named aggregate)."""
    y = _as_matrix(y)
    return float(np.mean([m(y[:, k], p) for k, p in enumerate(prediction.parts)]))


def indexed_metric(m: Metric, Y: np.ndarray, *, output: int | None = None,
                   aggregate: bool = False) -> Metric:
    """``m`` as a metric of ``(row indices, MultiOutputPrediction)`` with the truth ``Y`` bound.

    - ``output=k``: the per-output metric of column ``k``;
    - ``aggregate=True``: the per-output metric averaged over outputs (vector statistics:
      the per-output statistics side by side, finalized block by block and averaged);
    - neither: a multi-output metric such as ``sam``.

    Decomposable metrics stay decomposable, so the count-matrix bootstrap applies.
    """
    Y = _as_matrix(Y)
    K = Y.shape[1]

    def rows(idx: np.ndarray) -> np.ndarray:
        return np.asarray(idx).astype(np.int64)

    if output is not None:
        k = int(output)

        def fn(idx, p):
            return m(Y[rows(idx), k], p.parts[k])

        pointwise = None if m.pointwise is None else (
            lambda idx, p: m.per_sample(Y[rows(idx), k], p.parts[k]))
        return dataclasses.replace(m, fn=fn, pointwise=pointwise, accepts=(MULTI_OUTPUT_KIND,),
                                   name=f"{m.name}/{k}")
    if not aggregate:
        return dataclasses.replace(
            m, fn=lambda idx, p: m.fn(Y[rows(idx)], p), accepts=(MULTI_OUTPUT_KIND,),
            pointwise=None if m.pointwise is None else (
                lambda idx, p: m.per_sample(Y[rows(idx)], p)))

    def fn_mean(idx, p):
        return float(np.mean([m(Y[rows(idx), j], p.parts[j]) for j in range(K)]))

    if m.pointwise is None:
        return dataclasses.replace(m, fn=fn_mean, accepts=(MULTI_OUTPUT_KIND,))
    width: dict[str, int] = {}  # statistics per output (0: scalar)

    def pointwise(idx, p):
        blocks = []
        for j in range(K):
            v = m.per_sample(Y[rows(idx), j], p.parts[j])
            width["m"] = 0 if v.ndim == 1 else v.shape[1]
            blocks.append(v.reshape(len(v), -1))
        return np.concatenate(blocks, axis=1)

    def finalize(means):
        means = np.asarray(means, dtype=np.float64)
        w = width.get("m", 0)
        step = max(w, 1)
        vals = []
        for j in range(K):
            block = means[..., j * step:(j + 1) * step]
            vals.append(np.asarray(m.from_mean(block[..., 0] if w == 0 else block),
                                   dtype=np.float64))
        return np.mean(np.stack(vals, axis=0), axis=0)

    return dataclasses.replace(m, fn=fn_mean, pointwise=pointwise, finalize=finalize,
                               accepts=(MULTI_OUTPUT_KIND,))


__all__ = ["MultiOutputPrediction", "spectral_angle", "sam", "get_metric", "VECTOR_OUTPUT_METRICS", "indexed_metric",
           "is_multi_output_metric", "output_metric", "mean_over_outputs", "MULTI_OUTPUT_KIND"]
