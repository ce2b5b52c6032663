"""One MALICE branch (S2 or S1) as the encoders use it: graph inputs from a prepared modality,
and dense (per-pixel) outputs computed in chunks.

Shared by ``alise`` / ``ubarn`` (the S2 branch) and ``malice`` (both branches, fused).

* Cloudy / masked dates: the graph has no cloud-mask input. A date is passed as padded
  (``padd_mask`` True: ignored by the U-Net, every attention and the query cross-attention)
  when fewer than ``min_valid`` of its pixels are valid; in the kept dates, invalid pixels are
  set to 0 after normalisation (the band median). Values under masked observations therefore
  never reach the output.
* Sizes: sides below 16 px (a pixel with no spatial context) are tiled to 16; sides that are
  not a multiple of 8 are padded (reflect) to the next multiple of 8; outputs are cropped back
  to the input's pixels. A tiled 1 x 1 pixel's output is the mean over its 16 x 16 tile (the
  up-sampling transposed convolutions leave a 2 x 2 periodic pattern even on a constant tile,
  so no single tile pixel stands for the whole).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..batch import Modality
from .alise_net import D_MODEL, N_QUERIES, AliseNet, days_since_reference


def to_model_size(x: torch.Tensor) -> torch.Tensor:
    """``[N, C, H, W]``: tile sides below 16 to 16, pad (reflect) to a multiple of 8."""
    h, w = x.shape[-2:]
    if h < 16 or w < 16:
        x = x.repeat(1, 1, -(-16 // h) if h < 16 else 1, -(-16 // w) if w < 16 else 1)
        x = x[..., :max(h, 16), :max(w, 16)]
    h, w = x.shape[-2:]
    ph, pw = (-h) % 8, (-w) % 8
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="reflect" if min(h, w) > max(ph, pw) else "replicate")
    return x


def _crop(y: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Model-size output ``[..., H', W']`` back to the input's ``h x w`` pixels (a tiled 1 x 1
    pixel: the mean over its tile)."""
    if (h, w) == (1, 1):
        return y[..., :16, :16].mean(dim=(-1, -2), keepdim=True)
    return y[..., :h, :w]


@dataclass(frozen=True)
class BranchInputs:
    """Graph inputs of one branch: ``sits [B, T, C, H', W']`` at model size, ``tpe [B, T]``,
    ``padd [B, T]``; ``empty [B]`` samples with no kept date (their output is zeroed)."""

    sits: torch.Tensor
    tpe: torch.Tensor
    padd: torch.Tensor
    empty: torch.Tensor


class MaliceBranch:
    """A branch network plus how to turn a prepared modality into its normalised channels."""

    def __init__(self, path: Path, channels: Callable[[torch.Tensor], torch.Tensor],
                 device: torch.device, min_valid: float, chunk: int) -> None:
        self.net = AliseNet.from_onnx(path).to(device)
        self.channels = channels  # [B, T, C_in, H, W] prepared values -> normalised input
        self.min_valid = min_valid
        self.chunk = chunk

    def kept_dates(self, mod: Modality) -> torch.Tensor:
        """``[B, T]`` dates given to the graph: dated, with at least ``min_valid`` valid pixels."""
        mask = mod.mask.to(mod.values.device)
        keep = mask.float().mean(dim=(-1, -2)) >= self.min_valid - 1e-9
        return keep & torch.as_tensor(~np.isnat(np.asarray(mod.dates, dtype="datetime64[D]")),
                                      device=keep.device)

    def inputs(self, mod: Modality) -> BranchInputs:
        b, t, _, h, w = mod.values.shape
        mask = mod.mask.to(mod.values.device)
        keep = self.kept_dates(mod)
        x = self.channels(mod.values.float())
        x = torch.where(mask[:, :, None], x, torch.zeros_like(x))
        c = x.shape[2]
        x = to_model_size(x.reshape(b * t, c, h, w))
        x = x.reshape(b, t, c, *x.shape[-2:])
        tpe = torch.as_tensor(days_since_reference(mod.dates), device=x.device)
        padd = ~keep
        empty = padd.all(dim=1)
        padd[empty, 0] = False  # avoid an all-masked softmax (NaN); the output is zeroed
        return BranchInputs(x, tpe, padd, empty)

    def queries(self, mod: Modality) -> torch.Tensor:
        """Per-pixel query outputs ``[B, 640, H, W]`` (10 queries x 64, flattened)."""
        b, _, _, h, w = mod.values.shape
        inp = self.inputs(mod)
        outs = []
        for i in range(0, b, self.chunk):
            sl = slice(i, i + self.chunk)
            y = _crop(self.net(inp.sits[sl], inp.tpe[sl], inp.padd[sl]), h, w)
            outs.append(y.reshape(y.shape[0], N_QUERIES * D_MODEL, h, w))
        out = torch.cat(outs)
        return torch.where(inp.empty[:, None, None, None], torch.zeros_like(out), out)

    def per_date(self, mod: Modality) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-pixel, per-date temporal-transformer outputs ``[B, T, 64, H, W]`` and the
        dates that are real and kept ``[B, T]``."""
        b, _, _, h, w = mod.values.shape
        inp = self.inputs(mod)
        outs = []
        for i in range(0, b, self.chunk):
            sl = slice(i, i + self.chunk)
            y = self.net.temporal(inp.sits[sl], inp.tpe[sl], inp.padd[sl]).permute(0, 1, 4, 2, 3)
            outs.append(_crop(y, h, w))
        out = torch.cat(outs)
        valid = ~inp.padd & ~inp.empty[:, None]
        return torch.where(valid[:, :, None, None, None], out, torch.zeros_like(out)), valid


__all__ = ["MaliceBranch", "BranchInputs", "to_model_size"]
