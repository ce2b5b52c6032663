"""An MLP with a mean and a variance head: a heteroscedastic Gaussian predictive.

The network outputs a mean and a variance (softplus + a small floor) per row, in target units
standardised on the seed's training rows. It is trained by beta-NLL with ``beta = 0.5``
(see :class:`~releo_bench.probes.batched.GaussianHead`: the plain Gaussian NLL's gradient for
the mean shrinks where the variance grows, which can freeze the mean on hard rows; beta-NLL
keeps the same optimum) and its best epoch and setting are chosen by plain Gaussian NLL on
the validation split. Seeds and settings train as one batched model
(:mod:`~releo_bench.probes.batched`).

Bounded targets: when the target declares a ``range`` and ``truncate`` is on (the default),
the predictive is the Gaussian truncated to that range (:class:`TruncatedNormal`), as for
ridge; the network itself is trained with the untruncated likelihood.
"""

from __future__ import annotations

from typing import Any

import torch

from ..predictions import Gaussian, Prediction, TruncatedNormal
from .batched import BatchedProbe, GaussianHead, Head, SeedModel, gaussian_params


class MLPGaussian(BatchedProbe):
    """MLP regression with a per-row mean and variance."""

    name = "mlp_gaussian"
    task_kind = "regression"
    description = "MLP with mean and variance heads (beta-NLL), batched over seeds"
    defaults: dict[str, Any] = {**BatchedProbe.common_defaults, "beta_nll": 0.5,
                                "truncate": True}

    def _head(self) -> Head:
        return GaussianHead(float(self.params["beta_nll"]))

    def _prediction(self, model: SeedModel, out: torch.Tensor
                    ) -> tuple[Prediction, Prediction | None]:
        mean, var = gaussian_params(out[0].double())
        mean = mean.cpu().numpy() * model.y_scale + model.y_loc
        std = var.sqrt().cpu().numpy() * model.y_scale
        bounds = self._bounds()
        if bounds is None:
            return Gaussian(mean, std), None
        return TruncatedNormal(mean, std, low=bounds[0], high=bounds[1]), None
