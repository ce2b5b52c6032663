"""The probe contract: light heads trained on frozen embeddings.

scikit-learn style ``fit`` / ``predict``, plus ``predict_dist`` that returns a
:mod:`~releo_bench.predictions` distribution. ``predict`` is always the point summary of
``predict_dist`` so the two never disagree.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from ..predictions import Prediction
from ..tasks.base import TargetKind, TargetSpec


class Probe(ABC):
    """Base class of every probe.

    name / task_kind: set by subclasses; ``task_kind`` says which targets the probe handles.
    defaults: hyper-parameters and their default values (recorded in results).
    """

    name: ClassVar[str]
    task_kind: ClassVar[TargetKind]
    description: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, target: TargetSpec, *, seed: int = 0, device: str = "cpu",
                 **params: Any) -> None:
        unknown = set(params) - set(self.defaults)
        if unknown:
            from ..errors import UsageError
            raise UsageError(f"probe {self.name!r} has no parameter(s) {sorted(unknown)}; it "
                             f"takes {sorted(self.defaults)}")
        if target.kind != self.task_kind:
            from ..errors import UsageError
            raise UsageError(f"probe {self.name!r} is for {self.task_kind} targets, the task's "
                             f"target {target.name!r} is {target.kind}")
        self.target = target
        self.seed = seed
        self.device = device
        self.params: dict[str, Any] = {**self.defaults, **params}
        self.fitted_params: dict[str, Any] = {}  # values chosen during fit (e.g. by validation)

    @abstractmethod
    def fit(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None) -> "Probe":
        """Fit on standardised features ``X [N, D]`` and targets ``y [N]``."""

    @abstractmethod
    def predict_dist(self, X: np.ndarray) -> Prediction:
        """The predictive distribution for each row of ``X``."""

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.predict_dist(X).point()

    def describe(self) -> dict[str, Any]:
        """Name, parameters and values chosen during fit: what results.json records."""
        return {"name": self.name, "params": dict(self.params),
                "fitted_params": dict(self.fitted_params)}
