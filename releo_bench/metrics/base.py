"""The metric contract: ``(y_true, prediction) -> float`` with a direction and accepted kinds.

A metric that is a function of the mean over samples of per-sample values also declares
``pointwise`` (the per-sample values) and ``finalize`` (the function of their mean), so that
bootstrap intervals over test samples are one matrix product instead of thousands of metric
calls. ``fn`` stays the reference: ``finalize(mean(pointwise(y, p), axis=0)) == fn(y, p)`` is
checked for every registered metric.

* **scalar** per-sample values: ``pointwise`` returns ``[N]`` and ``finalize`` maps the mean
  (a float) to the metric; ``finalize`` may be omitted for a plain mean. RMSE (squared
  errors, ``sqrt``), CRPS, NLL, Brier, PICP ...
* **vector** per-sample values (sufficient statistics): ``pointwise`` returns ``[N, M]`` and
  ``finalize`` maps the mean vector ``[M]`` to the metric. R² (squared error, target,
  squared target), ECE (bin one-hot, times confidence, times correctness), kappa / macro F1
  / mIoU (one-hot of the confusion cell), PIT histograms ... A vector metric must declare
  ``finalize``.

``finalize`` is **vectorised over leading axes**: given means ``[..., M]`` (vector) or
``[...]`` (scalar) it returns the metrics ``[...]``, one per leading index, so that the
bootstrap finalizes a whole chunk of replicates (``[B, seeds, M]``) in one call. It must work
on 0-d / ``[M]`` input too (it then returns a scalar). Undefined values (e.g. kappa with a
single class) come back as NaN, as from ``fn``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np

from ..errors import UsageError
from ..predictions import Prediction

# "zero": best at 0 (e.g. bias); "target": best at ``Metric.ideal`` (e.g. PICP at its nominal level)
Direction = Literal["higher", "lower", "zero", "target"]


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable[[np.ndarray, Prediction], float]
    direction: Direction
    accepts: tuple[str, ...]
    task_kind: Literal["regression", "classification"]
    family: Literal["accuracy", "calibration", "proper_score"]
    description: str
    pointwise: Callable[[np.ndarray, Prediction], np.ndarray] | None = None  # [N] or [N, M]
    finalize: Callable[[np.ndarray], np.ndarray] | None = None  # means [..., M] -> [...]
    ideal: float | None = None  # the best value, for direction "target" (0 for "zero")
    # a further condition on the prediction (e.g. quantile levels reaching an interval)
    requires: Callable[[Prediction], bool] | None = None

    def __post_init__(self) -> None:
        if self.direction == "target" and self.ideal is None:
            raise ValueError(f"metric {self.name!r}: direction 'target' needs an ideal value")
        if self.direction == "zero" and self.ideal is None:
            object.__setattr__(self, "ideal", 0.0)

    def __call__(self, y_true: np.ndarray, prediction: Prediction) -> float:
        if prediction.kind not in self.accepts:
            raise UsageError(f"metric {self.name!r} accepts predictions of kind "
                             f"{list(self.accepts)}, got {prediction.kind!r}")
        if np.ndim(y_true) != 1:
            raise UsageError(f"metric {self.name!r}: y_true must be 1-D, got shape {np.shape(y_true)}")
        if len(prediction) != len(y_true):
            raise UsageError(f"metric {self.name!r}: {len(y_true)} targets for "
                             f"{len(prediction)} predictions")
        return float(self.fn(np.asarray(y_true), prediction))

    def applies_to(self, prediction: Prediction) -> bool:
        return prediction.kind in self.accepts and (self.requires is None
                                                    or self.requires(prediction))

    @property
    def decomposable(self) -> bool:
        """True when the metric is ``finalize(mean(pointwise, axis=0))`` (fast bootstrap)."""
        return self.pointwise is not None

    def per_sample(self, y_true: np.ndarray, prediction: Prediction) -> np.ndarray:
        """The per-sample values ``[N]`` or ``[N, M]`` whose (finalized) mean over samples
        (axis 0) is the metric."""
        if self.pointwise is None:
            raise UsageError(f"metric {self.name!r} is not a function of a mean of "
                             "per-sample values")
        return np.asarray(self.pointwise(np.asarray(y_true), prediction), dtype=np.float64)

    def from_mean(self, mean: np.ndarray | float) -> np.ndarray | float:
        """The metric from the mean of :meth:`per_sample` over samples: ``[M]`` (or a float)
        gives a scalar, a batch ``[..., M]`` (or ``[...]``) one metric per leading index."""
        return mean if self.finalize is None else self.finalize(mean)


def metric(name: str, *, direction: Direction, accepts: tuple[str, ...],
           task_kind: Literal["regression", "classification"],
           family: Literal["accuracy", "calibration", "proper_score"], description: str = "",
           pointwise: Callable[[np.ndarray, Prediction], np.ndarray] | None = None,
           finalize: Callable[[np.ndarray], np.ndarray] | None = None, ideal: float | None = None,
           requires: Callable[[Prediction], bool] | None = None):
    """Decorator: register ``fn`` in :data:`releo_bench.registries.METRICS` as a :class:`Metric`.

    ``pointwise`` / ``finalize``: see the module docstring (optional, for fast bootstrap).
    """

    def decorator(fn: Callable[[np.ndarray, Prediction], float]) -> Metric:
        from ..registries import METRICS
        m = Metric(name, fn, direction, accepts, task_kind, family,
                   description or (fn.__doc__ or "").strip().split("\n")[0],
                   pointwise, finalize, ideal, requires)
        METRICS.register(name, m)
        return m

    return decorator
