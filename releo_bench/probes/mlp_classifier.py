"""An MLP classifier over every target class, optionally temperature-scaled.

The network outputs one logit per class of the target (also for classes missing from a
seed's training rows, whose probabilities are then pushed towards 0 but stay positive) and
is trained by cross-entropy; the best epoch and setting are chosen by validation log loss.
Seeds and settings train as one batched model (:mod:`~releo_bench.probes.batched`).

``temperature_scaling``: when on, one temperature ``T`` is fitted per seed on the validation
logits of the selected network (:mod:`~releo_bench.probes.temperature`) and divides the test
logits; ``fitted_params["temperature"]`` records it and ``SeedFit.unscaled`` /
:meth:`unscaled_dist` carry the probabilities before scaling. When no validation split is
given, the seeded hold-out used for early stopping also fits ``T``.
"""

from __future__ import annotations

from typing import Any

import torch

from ..predictions import ClassProbs, Prediction
from .batched import BatchedProbe, ClassifierHead, Head, SeedData, SeedModel
from .temperature import fit_temperature, softmax


class MLPClassifier(BatchedProbe):
    """MLP classification returning probabilities over every target class."""

    name = "mlp_classifier"
    task_kind = "classification"
    description = "MLP classifier (cross-entropy), optional temperature scaling, batched"
    defaults: dict[str, Any] = {**BatchedProbe.common_defaults, "temperature_scaling": False}

    def _head(self) -> Head:
        return ClassifierHead(len(self.target.class_names or ()))

    def _after_selection(self, model: SeedModel, data: SeedData) -> None:
        if not self.params["temperature_scaling"]:
            return
        logits = self._forward(model, data.X_val)[0].double().cpu().numpy()
        t = fit_temperature(logits, data.y_val)
        model.extra["temperature"] = t
        model.fitted_params["temperature"] = t

    def _prediction(self, model: SeedModel, out: torch.Tensor
                    ) -> tuple[Prediction, Prediction | None]:
        logits = out[0].double().cpu().numpy()
        names = self.target.class_names or ()
        if "temperature" not in model.extra:
            return ClassProbs(softmax(logits), names), None
        return (ClassProbs(softmax(logits, model.extra["temperature"]), names),
                ClassProbs(softmax(logits), names))
