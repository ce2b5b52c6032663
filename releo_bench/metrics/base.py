"""The metric contract: ``(y_true, prediction) -> float`` with a direction and accepted kinds.

A metric that is a transformed mean of per-sample values (RMSE = sqrt(mean squared error),
CRPS, NLL, Brier, PICP ...) also declares ``pointwise`` (the per-sample values) and
``finalize`` (the transform of their mean), so that bootstrap intervals over test samples
are one matrix product instead of thousands of metric calls. ``fn`` stays the reference:
``finalize(mean(pointwise(y, p))) == fn(y, p)`` is checked for every registered metric.
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
    pointwise: Callable[[np.ndarray, Prediction], np.ndarray] | None = None
    finalize: Callable[[float], float] | None = None
    ideal: float | None = None  # the best value, for direction "target" (0 for "zero")

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
        return prediction.kind in self.accepts

    @property
    def decomposable(self) -> bool:
        """True when the metric is ``finalize(mean(pointwise))`` (fast bootstrap)."""
        return self.pointwise is not None

    def per_sample(self, y_true: np.ndarray, prediction: Prediction) -> np.ndarray:
        """The per-sample values whose (finalized) mean is the metric."""
        if self.pointwise is None:
            raise UsageError(f"metric {self.name!r} is not a mean of per-sample values")
        return np.asarray(self.pointwise(np.asarray(y_true), prediction), dtype=np.float64)

    def from_mean(self, mean: np.ndarray | float) -> np.ndarray | float:
        return mean if self.finalize is None else self.finalize(mean)


def metric(name: str, *, direction: Direction, accepts: tuple[str, ...],
           task_kind: Literal["regression", "classification"],
           family: Literal["accuracy", "calibration", "proper_score"], description: str = "",
           pointwise: Callable[[np.ndarray, Prediction], np.ndarray] | None = None,
           finalize: Callable[[float], float] | None = None, ideal: float | None = None):
    """Decorator: register ``fn`` in :data:`releo_bench.registries.METRICS` as a :class:`Metric`.

    ``pointwise`` / ``finalize``: see the module docstring (optional, for fast bootstrap).
    """

    def decorator(fn: Callable[[np.ndarray, Prediction], float]) -> Metric:
        from ..registries import METRICS
        m = Metric(name, fn, direction, accepts, task_kind, family,
                   description or (fn.__doc__ or "").strip().split("\n")[0],
                   pointwise, finalize, ideal)
        METRICS.register(name, m)
        return m

    return decorator
