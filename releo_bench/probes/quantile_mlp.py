"""An MLP predicting a set of quantiles (quantile regression with the pinball loss).

The network outputs the lowest quantile plus softplus increments, so the predicted quantiles
never cross (:class:`~releo_bench.probes.batched.QuantileHead`). Loss: the mean pinball loss
over the levels, on targets standardised per seed; the best epoch and setting are chosen by
the same loss on the validation split. Seeds and settings train as one batched model
(:mod:`~releo_bench.probes.batched`).

Bounded targets: when the target declares a ``range`` and ``truncate`` is on (the default),
the quantiles are clipped to it. Clipping keeps them ordered and never increases the pinball
loss of a target that lies in its range.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import UsageError
from ..predictions import Prediction, Quantiles
from ..tasks.base import TargetSpec
from .batched import BatchedProbe, Head, QuantileHead, SeedModel

DEFAULT_LEVELS = (0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.975)


class QuantileMLP(BatchedProbe):
    """MLP quantile regression with non-crossing quantiles."""

    name = "quantile_mlp"
    task_kind = "regression"
    description = "MLP quantile regression (pinball loss, non-crossing), batched over seeds"
    defaults: dict[str, Any] = {**BatchedProbe.common_defaults, "levels": list(DEFAULT_LEVELS),
                                "truncate": True}

    def __init__(self, target: TargetSpec, *, seed: int = 0, device: str = "cpu",
                 **params: Any) -> None:
        super().__init__(target, seed=seed, device=device, **params)
        levels = np.asarray(self.params["levels"], dtype=np.float64).reshape(-1)
        if levels.size == 0 or not ((levels > 0) & (levels < 1)).all() or \
                (np.diff(levels) <= 0).any():
            raise UsageError(f"quantile_mlp: levels must be strictly increasing in (0, 1), got "
                             f"{self.params['levels']}")
        self._levels = levels

    def _head(self) -> Head:
        return QuantileHead(self._levels)

    def _prediction(self, model: SeedModel, out: torch.Tensor
                    ) -> tuple[Prediction, Prediction | None]:
        q = QuantileHead.quantiles(out[0].double()).cpu().numpy()
        values = q * model.y_scale + model.y_loc
        bounds = self._bounds()
        if bounds is not None:
            values = np.clip(values, bounds[0], bounds[1])
        return Quantiles(self._levels, values), None
