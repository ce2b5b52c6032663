"""The pre-norm transformer block shared by the Presto and Galileo re-implementations.

Both published state dicts name a block's parts ``norm1``, ``attn``, ``norm2``, ``mlp.fc1``,
``mlp.fc2`` (timm style); only the attention's projections differ (Presto one fused ``qkv``,
Galileo separate ``q``, ``k``, ``v``), so each model passes its own attention module.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Mlp(nn.Module):
    """``fc2(gelu(fc1 x))`` with the exact (erf) GELU."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class PreNormBlock(nn.Module):
    """``x + attn(norm1 x, keep)``, then ``+ mlp(norm2 x)``; ``attn(x, keep)`` takes
    ``keep [N, L]`` (True = token may be attended to, or None)."""

    def __init__(self, dim: int, attn: nn.Module, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = attn
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), keep)
        return x + self.mlp(self.norm2(x))


__all__ = ["Mlp", "PreNormBlock"]
