"""A deep ensemble: ``K`` Gaussian MLPs from different initialisations, mixed equally.

Each member is an :mod:`~releo_bench.probes.mlp_gaussian` network (mean and variance heads,
beta-NLL) with its own initialisation and minibatch order (both seeded from
``(seed, member index)``); each keeps its own best epoch on the validation split. A setting
(weight decay x hidden sizes) is chosen per seed by the members' mean validation NLL; the
prediction is the equal-weight :class:`GaussianMixture` of the ``K`` members (Lakshminarayanan
et al., 2017). All seeds, settings and members train as one batched model.

Bounded targets: the mixture is returned untruncated (there is no truncated mixture kind), so
some predictive mass can fall outside the target's ``range``; the point prediction (the
mixture mean) is clipped neither. Compare it with ``mlp_gaussian``, which truncates.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import UsageError
from ..predictions import GaussianMixture, Prediction
from ..tasks.base import TargetSpec
from .batched import BatchedProbe, GaussianHead, Head, SeedModel, gaussian_params


class DeepEnsemble(BatchedProbe):
    """Equal-weight mixture of ``n_members`` Gaussian MLPs."""

    name = "deep_ensemble"
    task_kind = "regression"
    description = "deep ensemble of Gaussian MLPs -> Gaussian mixture, batched over seeds"
    defaults: dict[str, Any] = {**BatchedProbe.common_defaults, "n_members": 5,
                                "beta_nll": 0.5}

    def __init__(self, target: TargetSpec, *, seed: int = 0, device: str = "cpu",
                 **params: Any) -> None:
        super().__init__(target, seed=seed, device=device, **params)
        if int(self.params["n_members"]) < 1:
            raise UsageError(f"deep_ensemble: n_members must be a positive integer, got "
                             f"{self.params['n_members']}")

    @property
    def n_members(self) -> int:
        return int(self.params["n_members"])

    def _head(self) -> Head:
        return GaussianHead(float(self.params["beta_nll"]))

    def _prediction(self, model: SeedModel, out: torch.Tensor
                    ) -> tuple[Prediction, Prediction | None]:
        mean, var = gaussian_params(out.double())  # [K, N]
        means = mean.cpu().numpy().T * model.y_scale + model.y_loc
        stds = var.sqrt().cpu().numpy().T * model.y_scale
        k = means.shape[1]
        return GaussianMixture(means, stds, np.full(k, 1.0 / k)), None
