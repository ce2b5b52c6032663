"""The probe contract: light heads trained on frozen embeddings.

scikit-learn style ``fit`` / ``predict``, plus ``predict_dist`` that returns a
:mod:`~releo_bench.predictions` distribution. ``predict`` is always the point summary of
``predict_dist`` so the two never disagree.

Runs train one probe per seed. :meth:`Probe.fit_seeds` is the entry point the runner uses:
by default a loop over seeds, overridden by torch probes that train every (seed,
hyper-parameter) member at once as one batched model.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..predictions import Prediction
from ..tasks.base import TargetKind, TargetSpec


@dataclass
class SeedSplit:
    """One seed's data: standardised (on its own training rows) features and targets."""

    seed: int
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    X_val: np.ndarray | None = None
    y_val: np.ndarray | None = None


@dataclass
class SeedFit:
    """One seed's outcome: the test predictive distribution and the values chosen in fit.

    ``unscaled``: the prediction before a post-hoc recalibration (temperature scaling), so
    that results report calibration both before and after it.
    """

    seed: int
    prediction: Prediction
    fitted_params: dict[str, Any] = field(default_factory=dict)
    unscaled: Prediction | None = None


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

    def unscaled_dist(self, X: np.ndarray) -> Prediction | None:
        """The prediction before post-hoc recalibration, when the probe applies one."""
        return None

    @classmethod
    def fit_seeds(cls, target: TargetSpec, splits: list[SeedSplit], *, device: str = "cpu",
                  **params: Any) -> list[SeedFit]:
        """Fit one probe per seed and predict its test split.

        The default is a loop; batched probes override it (same results, one model).
        """
        fits = []
        for sp in splits:
            probe = cls(target, seed=sp.seed, device=device, **params)
            probe.fit(sp.X_train, sp.y_train, sp.X_val, sp.y_val)
            fits.append(SeedFit(sp.seed, probe.predict_dist(sp.X_test),
                                dict(probe.fitted_params), probe.unscaled_dist(sp.X_test)))
        return fits

    @classmethod
    def resolved_params(cls, **params: Any) -> dict[str, Any]:
        """Defaults overlaid with ``params``: what results.json records as the probe's params."""
        return {**cls.defaults, **params}

    def describe(self) -> dict[str, Any]:
        """Name, parameters and values chosen during fit: what results.json records."""
        return {"name": self.name, "params": dict(self.params),
                "fitted_params": dict(self.fitted_params)}
