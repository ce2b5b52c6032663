"""``random``: a fixed, seeded random network over the raw bands.

Each valid observation ``x_t`` (bands of one date, spatially averaged) is mapped to
``tanh(W x_t + b)`` with ``W, b`` drawn from a seeded generator, then averaged over valid
dates. It has the capacity of a learned per-date encoder with no learning, the usual
"random init" control for representation benchmarks. Its "weights" are generated, and their
sha256 is recorded like any other weights so a change of generator shows up in results.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch

from ..batch import EOBatch
from .base import Embeddings, Encoder, EncoderMeta, ModalityInput, WeightsSource
from .raw import S2_10_BANDS, masked_spatial_mean

# Typical S2 L2A surface reflectance statistics over vegetated land, used only to put the
# bands on a comparable scale before the random projection (declared, applied by the harness).
S2_MEAN = (0.045, 0.075, 0.065, 0.11, 0.20, 0.24, 0.26, 0.27, 0.19, 0.11)
S2_STD = (0.03, 0.035, 0.045, 0.045, 0.07, 0.09, 0.10, 0.10, 0.07, 0.06)


class RandomEncoder(Encoder):
    """Options: ``dim`` (embedding size, default 64), ``seed`` (default 0)."""

    def __init__(self, *, device: str | torch.device = "cpu", dim: int = 64, seed: int = 0,
                 **options: Any) -> None:
        super().__init__(device=device, dim=int(dim), seed=int(seed), **options)
        gen = torch.Generator().manual_seed(int(seed))
        c = len(S2_10_BANDS)
        self.weight = (torch.randn(int(dim), c, generator=gen, dtype=torch.float64) / c ** 0.5).float()
        self.bias = (0.1 * torch.randn(int(dim), generator=gen, dtype=torch.float64)).float()
        digest = hashlib.sha256(self.weight.numpy().tobytes() + self.bias.numpy().tobytes()).hexdigest()
        self._meta = EncoderMeta(
            name="random", version="1.0",
            description="Fixed seeded random projection + tanh of per-date S2 bands, "
                        "averaged over valid dates.",
            licence="Apache-2.0", citation="releo-bench baseline (no publication)",
            modalities={"s2": ModalityInput(bands=S2_10_BANDS, units="reflectance",
                                            mean=S2_MEAN, std=S2_STD)},
            temporal_mode="series", output="pooled", embedding_shape=(int(dim),),
            weights=WeightsSource(kind="generated", uri=f"torch.Generator seed {seed}",
                                  sha256=digest, licence="Apache-2.0"),
        )
        self.weight, self.bias = self.weight.to(self.device), self.bias.to(self.device)

    @property
    def meta(self) -> EncoderMeta:
        return self._meta

    def encode(self, batch: EOBatch) -> Embeddings:
        mod = batch["s2"]
        per_date, valid = masked_spatial_mean(mod.values, mod.mask)  # [B, T, C]
        h = torch.tanh(per_date @ self.weight.T + self.bias)  # [B, T, D]
        w = valid.unsqueeze(-1).to(h.dtype)
        return Embeddings((h * w).sum(dim=1) / w.sum(dim=1).clamp(min=1.0))
