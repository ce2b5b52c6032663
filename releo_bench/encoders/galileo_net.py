"""The Galileo encoder network (Tseng et al. 2025, github nasaharvest/galileo), written from
the paper and the published architecture so that its state dict loads ``encoder.pt`` with
``strict=True``.

Layout, as pretrained: every input is split into *channel groups*; each group of each
(patch, month) becomes one token of width ``D``. Space-time groups (S1, five S2 groups, NDVI)
are embedded by a patch convolution whose 8 x 8 kernel is resized to the requested patch size
(FlexiViT pseudo-inverse resize); space (SRTM, DW, WC), time (ERA5, TC, VIIRS) and static
(LandScan, location, DW / WC statistics) groups exist in the weights but this benchmark always
masks them, and a masked token takes no part in anything (removed before attention, left out
of the average), so they are never built. To each token is added the concatenation of four
``D / 4`` encodings: a learned channel-group embedding, a sinusoidal time-step position, a
sinusoidal calendar month, and a 2-D sinusoidal position in space scaled by the ground size of
a token in units of 10 m (so a patch of ``p`` 10 m pixels sits at ``p x`` its grid index).
Pre-norm transformer blocks (exact GELU), a final LayerNorm, then the mean of the unmasked
tokens is the 128-d embedding used by the upstream evaluations.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from .transformer import PreNormBlock

# (group name, band names) in the order of the pretrained ``s_t_channel_embed`` rows
SPACE_TIME_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("S1", ("VV", "VH")),
    ("S2_RGB", ("B2", "B3", "B4")),
    ("S2_Red_Edge", ("B5", "B6", "B7")),
    ("S2_NIR_10m", ("B8",)),
    ("S2_NIR_20m", ("B8A",)),
    ("S2_SWIR", ("B11", "B12")),
    ("NDVI", ("NDVI",)),
)
SPACE_TIME_BANDS: tuple[str, ...] = tuple(b for _, bands in SPACE_TIME_GROUPS for b in bands)
# groups that are always masked here; sizes are the number of input channels of each
SPACE_GROUPS = (("SRTM", 2), ("DW", 9), ("WC", 5))
TIME_GROUPS = (("ERA5", 2), ("TC", 3), ("VIIRS", 1))
STATIC_GROUPS = (("LS", 1), ("location", 3), ("DW_static", 9), ("WC_static", 5))
BASE_GSD_M = 10.0


def sincos_1d(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """``[..., dim]``: ``sin`` on the first half, ``cos`` on the second, frequencies
    ``10000 ** -(i / (2 dim))`` (the pretrained tables use this spacing, not ``2i / dim``)."""
    freq = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / dim / 2.0)
    arg = positions.to(torch.float64).unsqueeze(-1) * freq.to(positions.device)
    return torch.cat([arg.sin(), arg.cos()], dim=-1).float()


def spatial_encoding(h: int, w: int, scale: float, dim: int, device: torch.device) -> torch.Tensor:
    """``[h, w, dim]``: the first half encodes the column (x), the second the row (y), each
    position multiplied by ``scale`` (token ground size / 10 m), as in pretraining."""
    cols = torch.arange(w, device=device, dtype=torch.float64) * scale
    rows = torch.arange(h, device=device, dtype=torch.float64) * scale
    ex = sincos_1d(cols, dim // 2)[None, :, :].expand(h, w, dim // 2)
    ey = sincos_1d(rows, dim // 2)[:, None, :].expand(h, w, dim // 2)
    return torch.cat([ex, ey], dim=-1)


@lru_cache(maxsize=16)
def _resize_pinv(base: int, new: int) -> torch.Tensor:
    """``[new * new, base * base]`` pseudo-inverse of the bicubic (antialiased) resize of a
    ``base x base`` kernel to ``new x new``: the FlexiViT kernel resampling."""
    basis = torch.eye(base * base, dtype=torch.float32).view(base * base, 1, base, base)
    resized = F.interpolate(basis, size=(new, new), mode="bicubic", antialias=True)
    return torch.linalg.pinv(resized.reshape(base * base, new * new).double()).float()


class PatchEmbed(nn.Module):
    """A group's patch projection: an ``8 x 8`` stride-8 convolution whose kernel is resampled
    to any patch size ``p`` (the pretraining drew ``p`` from 1..8)."""

    def __init__(self, in_chans: int, dim: int, base: int = 8) -> None:
        super().__init__()
        self.base = base
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=base, stride=base)

    def kernel(self, p: int) -> torch.Tensor:
        w = self.proj.weight
        if p == self.base:
            return w
        pinv = _resize_pinv(self.base, p).to(w.device, w.dtype)
        d, c = w.shape[:2]
        return (w.reshape(d, c, -1) @ pinv.T).reshape(d, c, p, p)

    def forward(self, x: torch.Tensor, p: int) -> torch.Tensor:
        """``[N, C, H, W]`` -> ``[N, D, H / p, W / p]``."""
        return F.conv2d(x, self.kernel(p), self.proj.bias, stride=p)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """``keep [N, L]`` True for tokens that may be attended to."""
        n, length, d = x.shape

        def split(y: torch.Tensor) -> torch.Tensor:
            return y.view(n, length, self.heads, d // self.heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(split(self.q(x)), split(self.k(x)), split(self.v(x)),
                                             attn_mask=keep[:, None, None, :])
        return self.proj(out.transpose(1, 2).reshape(n, length, d))


def _block(dim: int, heads: int, mlp_ratio: float) -> PreNormBlock:
    """A pre-norm transformer block with this model's attention (state-dict names as published)."""
    return PreNormBlock(dim, Attention(dim, heads), mlp_ratio)


class GalileoNet(nn.Module):
    """Galileo encoder. :meth:`forward` takes the space-time bands only (the other input
    families are masked): ``x [B, T, 13, H, W]`` normalised in :data:`SPACE_TIME_BANDS`
    order, ``valid [B, T, 7, H / p, W / p]`` token validity per group, ``months [B, T]``
    0-11, patch size ``p``; returns ``[B, D]``, the mean of the valid output tokens (zeros
    for a sample without any)."""

    def __init__(self, embedding_size: int = 128, depth: int = 4, num_heads: int = 8,
                 mlp_ratio: float = 4.0, max_sequence_length: int = 24, max_patch_size: int = 8,
                 **_: object) -> None:
        super().__init__()
        d, q = embedding_size, embedding_size // 4
        self.embedding_size = d
        self.max_sequence_length = max_sequence_length
        self.max_patch_size = max_patch_size
        self.pos_embed = nn.Parameter(sincos_1d(torch.arange(max_sequence_length), q),
                                      requires_grad=False)
        months = torch.arange(12, dtype=torch.float64) * (2 * torch.pi / 12)
        table = torch.cat([months.sin()[:, None].expand(12, q // 2),
                           months.cos()[:, None].expand(12, q // 2)], dim=1).float()
        self.month_embed = nn.Embedding.from_pretrained(table, freeze=True)
        self.s_t_channel_embed = nn.Parameter(torch.zeros(len(SPACE_TIME_GROUPS), q))
        self.sp_channel_embed = nn.Parameter(torch.zeros(len(SPACE_GROUPS), q))
        self.t_channel_embed = nn.Parameter(torch.zeros(len(TIME_GROUPS), q))
        self.st_channel_embed = nn.Parameter(torch.zeros(len(STATIC_GROUPS), q))
        self.blocks = nn.ModuleList([_block(d, num_heads, mlp_ratio) for _ in range(depth)])
        self.space_time_embed = nn.ModuleDict(
            {g: PatchEmbed(len(b), d, max_patch_size) for g, b in SPACE_TIME_GROUPS})
        self.space_embed = nn.ModuleDict(
            {g: PatchEmbed(c, d, max_patch_size) for g, c in SPACE_GROUPS})
        self.time_embed = nn.ModuleDict({g: nn.Linear(c, d) for g, c in TIME_GROUPS})
        self.static_embed = nn.ModuleDict({g: nn.Linear(c, d) for g, c in STATIC_GROUPS})
        self.norm = nn.LayerNorm(d)

    # -- tokens -------------------------------------------------------------------------
    def tokens(self, x: torch.Tensor, months: torch.Tensor, p: int, groups: Iterable[int],
               input_res_m: float = BASE_GSD_M) -> torch.Tensor:
        """``[B, T, G, h, w, D]`` embedded and encoded tokens of the space-time groups
        (groups not in ``groups`` are left at zero: they are masked)."""
        b, t, c, h, w = x.shape
        if h % p or w % p:
            raise ValueError(f"patch size {p} does not divide the {h} x {w} input")
        if t > self.max_sequence_length:
            raise ValueError(f"{t} time steps; the model encodes at most "
                             f"{self.max_sequence_length}")
        d, q = self.embedding_size, self.embedding_size // 4
        gh, gw = h // p, w // p
        out = x.new_zeros(b, t, len(SPACE_TIME_GROUPS), gh, gw, d)
        flat = x.reshape(b * t, c, h, w)
        start = 0
        bounds = []
        for _, bands in SPACE_TIME_GROUPS:
            bounds.append((start, start + len(bands)))
            start += len(bands)
        for g in groups:
            name = SPACE_TIME_GROUPS[g][0]
            lo, hi = bounds[g]
            emb = self.space_time_embed[name](flat[:, lo:hi], p)  # [B*T, D, gh, gw]
            out[:, :, g] = emb.view(b, t, d, gh, gw).permute(0, 1, 3, 4, 2)
        channel = self.s_t_channel_embed[None, None, :, None, None, :]
        time = self.pos_embed[:t][None, :, None, None, None, :]
        month = self.month_embed(months.long())[:, :, None, None, None, :]
        space = spatial_encoding(gh, gw, p * input_res_m / BASE_GSD_M, q, x.device)
        shape = (b, t, len(SPACE_TIME_GROUPS), gh, gw, q)
        enc = torch.cat([channel.expand(shape), time.expand(shape), month.expand(shape),
                         space[None, None, None].expand(shape)], dim=-1)
        return out + enc

    # -- encoder ------------------------------------------------------------------------
    def encode_tokens(self, tokens: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """``tokens [N, L, D]``, ``valid [N, L]`` -> mean of the valid normalised outputs
        ``[N, D]``. Masked tokens are removed first (they neither attend nor are attended)."""
        n = tokens.shape[0]
        count = valid.sum(dim=1)
        keep_len = max(int(count.max().item()) if n else 0, 1)
        order = torch.argsort((~valid).to(torch.int8), dim=1, stable=True)[:, :keep_len]
        x = tokens.gather(1, order[:, :, None].expand(-1, -1, tokens.shape[-1]))
        keep = valid.gather(1, order)
        empty = count == 0
        keep_attn = keep.clone()
        keep_attn[empty, 0] = True  # an all-masked row would give NaN; zeroed below
        for blk in self.blocks:
            x = blk(x, keep_attn)
        x = self.norm(x)
        w = keep.to(x.dtype)[:, :, None]
        pooled = (x * w).sum(dim=1) / w.sum(dim=1).clamp(min=1.0)
        return torch.where(empty[:, None], torch.zeros_like(pooled), pooled)

    def forward(self, x: torch.Tensor, valid: torch.Tensor, months: torch.Tensor,
                patch_size: int) -> torch.Tensor:
        b, d = x.shape[0], self.embedding_size
        groups = [g for g in range(len(SPACE_TIME_GROUPS)) if bool(valid[:, :, g].any())]
        tok = self.tokens(x, months, patch_size, groups)
        return self.encode_tokens(tok.reshape(b, -1, d), valid.reshape(b, -1))


def load_galileo(state_dict: dict[str, torch.Tensor], config: dict | None = None) -> GalileoNet:
    """A :class:`GalileoNet` sized by ``config['model']['encoder']`` (defaults: nano) with
    ``state_dict`` loaded strictly; eval mode, no gradients."""
    enc_cfg = dict((config or {}).get("model", {}).get("encoder", {}))
    net = GalileoNet(**enc_cfg)
    cleaned = {k.replace(".backbone", ""): v for k, v in state_dict.items()}
    net.load_state_dict(cleaned, strict=True)
    return net.requires_grad_(False).eval()


__all__ = ["GalileoNet", "PatchEmbed", "load_galileo", "sincos_1d", "spatial_encoding",
           "SPACE_TIME_GROUPS", "SPACE_TIME_BANDS"]
