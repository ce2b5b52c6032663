"""The metric contract: ``(y_true, prediction) -> float`` with a direction and accepted kinds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np

from ..errors import UsageError
from ..predictions import Prediction

Direction = Literal["higher", "lower", "zero"]  # "zero": best at 0 (e.g. bias)


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable[[np.ndarray, Prediction], float]
    direction: Direction
    accepts: tuple[str, ...]
    task_kind: Literal["regression", "classification"]
    family: Literal["accuracy", "calibration", "proper_score"]
    description: str

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


def metric(name: str, *, direction: Direction, accepts: tuple[str, ...],
           task_kind: Literal["regression", "classification"],
           family: Literal["accuracy", "calibration", "proper_score"], description: str = ""):
    """Decorator: register ``fn`` in :data:`releo_bench.registries.METRICS` as a :class:`Metric`."""

    def decorator(fn: Callable[[np.ndarray, Prediction], float]) -> Metric:
        from ..registries import METRICS
        m = Metric(name, fn, direction, accepts, task_kind, family,
                   description or (fn.__doc__ or "").strip().split("\n")[0])
        METRICS.register(name, m)
        return m

    return decorator
