"""The Presto network (Tseng et al. 2023): a small pre-norm transformer over channel-group tokens.

Written for this project from the paper and the published state dict (github
nasaharvest/presto, ``data/default_model.pt``, MIT); its parameter names follow the file so
that ``load_state_dict(strict=True)`` checks every tensor. The file holds the encoder *and*
the pretraining decoder (masked-token reconstruction), both modelled here.

Input per pixel: ``x [B, T, 17]`` normalised channels in :data:`CHANNELS` order, ``missing
[B, T, 17]`` (True = missing), ``dynamic_world [B, T]`` (class 0-8, 9 = missing), ``months
[B, T]`` (0 = January) and optionally ``latlons [B, 2]`` (degrees).

Tokens: one per channel group and step (SRTM: one token for the whole series, read at step 0;
Dynamic World: one per step), each the group's linear embedding plus
``concat(month code, group code, step code)``; a location token (linear embedding of the unit
vector of lat/lon) first. A token is missing when any channel of its group is missing.

Upstream removes missing tokens before the transformer, so all samples of a batch must have
the same number of them. Here they stay in place and are masked as attention keys, which is
the same computation for every kept token (layer norms and MLPs act per token), so a batch may
mix masks freely. The pooled embedding is ``LayerNorm(mean of the kept tokens' outputs)``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .transformer import PreNormBlock

CHANNELS = ("VV", "VH", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12",
            "temperature_2m", "total_precipitation", "elevation", "slope", "NDVI")
# channel groups in the order of their learned group codes (channel_embed rows 0-8; row 9 is
# Dynamic World), as in upstream's code. The file's key order puts NIR 10 m / 20 m before red
# edge; swapping those three codes changes reconstruction errors by < 1 % (docs/models/presto.md).
Groups = tuple[tuple[str, tuple[int, ...]], ...]
GROUPS: Groups = (
    ("S1", (0, 1)), ("S2_RGB", (2, 3, 4)), ("S2_Red_Edge", (5, 6, 7)), ("S2_NIR_10m", (8,)),
    ("S2_NIR_20m", (9,)), ("S2_SWIR", (10, 11)), ("ERA5", (12, 13)), ("SRTM", (14, 15)),
    ("NDVI", (16,)))
STATIC_GROUP = "SRTM"
DW_CLASSES = 9
DW_MISSING = DW_CLASSES
MAX_STEPS = 24
# per-channel (x + ADD) / DIV of Presto's preprocessing (S2 reflectance x 10000, S1 dB, ERA5
# K and metres, SRTM m and degrees, NDVI as is)
ADD = (25.0, 25.0, *(0.0,) * 10, -272.15, 0.0, 0.0, 0.0, 0.0)
DIV = (25.0, 25.0, *(1e4,) * 10, 35.0, 0.03, 2000.0, 50.0, 1.0)


def sinusoid_table(n: int, d: int, period: float = 1000.0) -> torch.Tensor:
    """``[n, d]`` step code: feature ``j`` of step ``p`` is ``sin`` (even j) or ``cos`` (odd j)
    of ``p / period ** (2 (j // 2) / d)``."""
    pos = torch.arange(n, dtype=torch.float64)[:, None]
    j = torch.arange(d, dtype=torch.float64)[None, :]
    angle = pos / period ** (2 * torch.div(j, 2, rounding_mode="floor") / d)
    out = torch.where(j % 2 == 0, torch.sin(angle), torch.cos(angle))
    return out.float()


def month_table(d: int) -> torch.Tensor:
    """``[12, d]`` month code: ``d/2`` copies of ``sin(2 pi m / 12)`` then of ``cos``."""
    ang = torch.arange(12, dtype=torch.float64)[:, None] * (2 * math.pi / 12)
    return torch.cat([torch.sin(ang).expand(12, d // 2), torch.cos(ang).expand(12, d // 2)],
                     dim=1).float()


def latlon_xyz(latlons: torch.Tensor) -> torch.Tensor:
    """Degrees ``[B, 2]`` (lat, lon) -> unit vector ``[B, 3]``."""
    lat, lon = torch.deg2rad(latlons[:, 0]), torch.deg2rad(latlons[:, 1])
    return torch.stack([lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()], dim=-1)


def ndvi(b8: torch.Tensor, b4: torch.Tensor) -> torch.Tensor:
    """``(B8 - B4) / (B8 + B4)``, 0 where ``B8 + B4 <= 0`` (as Presto's preprocessing)."""
    s = b8 + b4
    return torch.where(s > 0, (b8 - b4) / torch.where(s > 0, s, torch.ones_like(s)),
                       torch.zeros_like(s))


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        mask = None if keep is None else keep[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


def _block(dim: int, heads: int, mlp_ratio: float) -> PreNormBlock:
    """A pre-norm transformer block with this model's attention (state-dict names as published)."""
    return PreNormBlock(dim, _Attention(dim, heads), mlp_ratio)


class Layout:
    """Where each token sits: ``[location?] + group-major (group, step) tokens + SRTM + DW``.

    ``group[i]`` is the group-code row of token i (-1 for the location token), ``step[i]`` its
    step (-1 for location and SRTM tokens, which get no month or step code)."""

    def __init__(self, steps: int, with_location: bool, groups: Groups = GROUPS) -> None:
        group, step = ([-1], [-1]) if with_location else ([], [])
        for g, (name, _) in enumerate(groups):
            t = [-1] if name == STATIC_GROUP else list(range(steps))
            group += [g] * len(t)
            step += t
        group += [len(groups)] * steps
        step += list(range(steps))
        self.group = torch.tensor(group)
        self.step = torch.tensor(step)
        self.n = len(group)


class PrestoEncoder(nn.Module):
    def __init__(self, dim: int = 128, depth: int = 2, heads: int = 8, mlp_ratio: float = 4.0,
                 channel_ratio: float = 0.25, month_ratio: float = 0.25,
                 groups: Groups = GROUPS) -> None:
        super().__init__()
        self.groups = groups
        self.eo_patch_embed = nn.ModuleDict({n: nn.Linear(len(idx), dim) for n, idx in groups})
        self.dw_embed = nn.Embedding(DW_CLASSES + 1, dim)
        self.latlon_embed = nn.Linear(3, dim)
        self.blocks = nn.ModuleList([_block(dim, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        d_ch, d_month = int(dim * channel_ratio), int(dim * month_ratio)
        d_pos = dim - d_ch - d_month
        self.pos_embed = nn.Parameter(sinusoid_table(MAX_STEPS, d_pos)[None], requires_grad=False)
        self.month_embed = nn.Embedding.from_pretrained(month_table(d_month), freeze=True)
        self.channel_embed = nn.Embedding(len(groups) + 1, d_ch)

    def codes(self, layout: Layout, months: torch.Tensor) -> torch.Tensor:
        """``[B, N, dim]`` month + group + step codes of the tokens (zeros for location)."""
        return _codes(layout, months, self.month_embed, self.channel_embed, self.pos_embed[0])

    def tokens(self, x: torch.Tensor, missing: torch.Tensor, dynamic_world: torch.Tensor,
               months: torch.Tensor, latlons: torch.Tensor | None
               ) -> tuple[torch.Tensor, torch.Tensor, Layout]:
        """Embedded tokens ``[B, N, dim]``, ``keep [B, N]`` and their layout."""
        b, t, _ = x.shape
        if t > MAX_STEPS:
            raise ValueError(f"Presto takes at most {MAX_STEPS} steps, got {t}")
        layout = Layout(t, latlons is not None, self.groups)
        x = torch.where(missing, torch.zeros_like(x), x)  # nothing missing can reach a kept token
        toks, keep = [], []
        if latlons is not None:  # a row of NaN = location unknown: its token is left out
            known = torch.isfinite(latlons).all(dim=1)
            xyz = latlon_xyz(torch.where(known[:, None], latlons, torch.zeros_like(latlons)))
            toks.append(self.latlon_embed(xyz)[:, None])
            keep.append(known[:, None])
        for name, idx in self.groups:
            sl = slice(0, 1) if name == STATIC_GROUP else slice(None)
            toks.append(self.eo_patch_embed[name](x[:, sl, list(idx)]))
            keep.append(~missing[:, sl, list(idx)].any(dim=-1))
        toks.append(self.dw_embed(dynamic_world))
        keep.append(dynamic_world != DW_MISSING)
        tok = torch.cat(toks, dim=1) + self.codes(layout, months)
        return tok, torch.cat(keep, dim=1), layout

    def _run(self, x: torch.Tensor, missing: torch.Tensor, dynamic_world: torch.Tensor,
             months: torch.Tensor, latlons: torch.Tensor | None, compact: bool = False
             ) -> tuple[torch.Tensor, torch.Tensor, Layout]:
        h, keep, layout = self.tokens(x, missing, dynamic_world, months, latlons)
        if compact:  # drop positions no row keeps (e.g. Dynamic World): same result, cheaper
            used = keep.any(dim=0)
            h, keep = h[:, used], keep[:, used]
        attend = keep | ~keep.any(dim=1, keepdim=True)  # a row with no token: no NaN
        for blk in self.blocks:
            h = blk(h, attend)
        return h, keep, layout

    def forward_tokens(self, x: torch.Tensor, missing: torch.Tensor,
                       dynamic_world: torch.Tensor, months: torch.Tensor,
                       latlons: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, Layout]:
        """Normalised outputs of every token position ``[B, N, dim]`` (outputs at missing
        positions are computed but never attended to: ignore them), ``keep`` and the layout."""
        h, keep, layout = self._run(x, missing, dynamic_world, months, latlons)
        return self.norm(h), keep, layout

    def forward(self, x: torch.Tensor, missing: torch.Tensor, dynamic_world: torch.Tensor,
                months: torch.Tensor, latlons: torch.Tensor | None = None) -> torch.Tensor:
        """Pooled embedding ``[B, dim]``: LayerNorm of the mean of the kept tokens' outputs
        (location token included), as upstream; zeros for a row with no kept token."""
        h, keep, _ = self._run(x, missing, dynamic_world, months, latlons, compact=True)
        w = keep.to(h.dtype)[..., None]
        out = self.norm((h * w).sum(dim=1) / w.sum(dim=1).clamp(min=1.0))
        return torch.where(keep.any(dim=1, keepdim=True), out, torch.zeros_like(out))


def _codes(layout: Layout, months: torch.Tensor, month_embed: nn.Embedding,
           channel_embed: nn.Embedding, pos: torch.Tensor) -> torch.Tensor:
    b = months.shape[0]
    dev = months.device
    group, step = layout.group.to(dev), layout.step.to(dev)
    timed = step >= 0
    st = step.clamp(min=0)
    m = month_embed(months[:, st]) * timed[None, :, None]  # [B, N, dm]
    p = (pos[st] * timed[:, None])[None].expand(b, -1, -1)
    c = channel_embed(group.clamp(min=0)) * (group >= 0)[:, None]
    out = torch.cat([m, c[None].expand(b, -1, -1), p], dim=-1)
    return out * (group >= 0)[None, :, None]  # the location token gets no code


class PrestoDecoder(nn.Module):
    """Pretraining decoder: reconstructs every token's channels from the encoder's kept tokens
    (missing positions replaced by a learned mask token)."""

    def __init__(self, channel_embed: nn.Embedding, dim_in: int = 128, dim: int = 128,
                 depth: int = 2, heads: int = 8, mlp_ratio: float = 4.0,
                 groups: Groups = GROUPS) -> None:
        super().__init__()
        self.groups = groups
        self.decoder_embed = nn.Linear(dim_in, dim)
        self.mask_token = nn.Parameter(torch.zeros(dim))
        self.decoder_blocks = nn.ModuleList([_block(dim, heads, mlp_ratio) for _ in range(depth)])
        self.decoder_norm = nn.LayerNorm(dim)
        self.eo_decoder_pred = nn.ModuleDict({n: nn.Linear(dim, len(idx)) for n, idx in groups})
        self.dw_decoder_pred = nn.Linear(dim, DW_CLASSES)
        self.channel_embeddings = channel_embed  # shared with the encoder, as upstream
        rest = dim - channel_embed.weight.shape[1]
        self.pos_embed = nn.Parameter(sinusoid_table(MAX_STEPS, rest // 2)[None],
                                      requires_grad=False)
        self.month_embed = nn.Embedding.from_pretrained(month_table(rest // 2), freeze=True)

    def forward(self, h: torch.Tensor, keep: torch.Tensor, layout: Layout,
                months: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstructed channels ``[B, T, 17]`` (SRTM repeated over steps) and Dynamic World
        logits ``[B, T, 9]``."""
        x = self.decoder_embed(h)
        x = torch.where(keep[..., None], x, self.mask_token.expand_as(x))
        x = x + _codes(layout, months, self.month_embed, self.channel_embeddings,
                       self.pos_embed[0])
        for blk in self.decoder_blocks:
            x = blk(x)
        x = self.decoder_norm(x)
        b, t = months.shape
        out = x.new_zeros(b, t, len(CHANNELS))
        group = layout.group.to(x.device)
        for g, (name, idx) in enumerate(self.groups):
            tok = x[:, group == g]  # [B, T or 1, dim]
            out[:, :, list(idx)] = self.eo_decoder_pred[name](tok).expand(b, t, len(idx))
        dw = self.dw_decoder_pred(x[:, group == len(self.groups)])
        return out, dw


class PrestoNet(nn.Module):
    """Encoder + pretraining decoder, parameter names as in ``default_model.pt``."""

    def __init__(self, groups: Groups = GROUPS) -> None:
        super().__init__()
        self.encoder = PrestoEncoder(groups=groups)
        self.decoder = PrestoDecoder(self.encoder.channel_embed, groups=groups)

    @classmethod
    def from_file(cls, path: str | Path, groups: Groups = GROUPS) -> "PrestoNet":
        """Load ``default_model.pt`` (``weights_only``: no arbitrary unpickling), strictly."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        net = cls(groups=groups)
        net.load_state_dict(state, strict=True)
        return net.requires_grad_(False).eval()

    def reconstruct(self, x: torch.Tensor, missing: torch.Tensor, dynamic_world: torch.Tensor,
                    months: torch.Tensor, latlons: torch.Tensor | None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The pretraining task: channels and Dynamic World logits of every token, missing
        ones included, from the kept ones."""
        h, keep, layout = self.encoder.forward_tokens(x, missing, dynamic_world, months, latlons)
        return self.decoder(h, keep, layout, months)


def normalise(raw: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Raw ``[..., 17]`` channels (S2 reflectance x 10000, S1 dB, K, metres, m, degrees) ->
    Presto's inputs, NDVI recomputed from B8 / B4."""
    x = torch.as_tensor(raw, dtype=torch.float32)
    x = (x + torch.tensor(ADD)) / torch.tensor(DIV)
    x[..., 16] = ndvi(x[..., 8], x[..., 4])
    return x


__all__ = ["PrestoNet", "PrestoEncoder", "PrestoDecoder", "Layout", "CHANNELS", "GROUPS",
           "DW_MISSING", "MAX_STEPS", "sinusoid_table", "month_table", "normalise", "ndvi"]
