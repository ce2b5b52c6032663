"""The MALICE / ALISE network (Dumeur, Kalinicheva et al., CESBIO) as a PyTorch module.

The published model is two ONNX graphs, one per branch (``models/malice_models/malice_s2.onnx``
and ``malice_s1.onnx`` of github.com/Evoland-Land-Monitoring-Evolution/openeo_malice @ 41762442,
AGPL-3.0). Both have the same architecture, with 10 (S2) or 3 (S1) input channels; it is
re-implemented here op for op (:class:`AliseNet`) and its parameters are read from a graph's
initialisers and constants (:mod:`releo_bench.encoders.onnx_weights`); the test suite checks
it against onnxruntime to 1e-4.

Graph inputs: ``sits [B, T, C, H, W]`` (normalised: :func:`normalise_s2`, :func:`normalise_s1`),
``tpe [B, T]`` (days since 2014-03-03), ``padd_mask [B, T]`` (True = padded date, ignored).
Output ``[B, 10, 64, H, W]``: 10 learned temporal queries x 64 features per pixel. H and W
must be multiples of 8 (three stride-2 levels in the U-Net) and at least 16. The encoders
built on it are in :mod:`releo_bench.encoders.alise` and :mod:`releo_bench.encoders.malice`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

DATE_REFERENCE = "2014-03-03"
# per-band normalisation of L2A reflectance x 10000 (openeo_malice)
S2_MED = (414.0, 675.0, 570.0, 1132.0, 2374.0, 2744.0, 2885.0, 3016.0, 2003.0, 1117.0)
S2_QMIN = (130.0, 247.0, 168.0, 442.0, 907.0, 1044.0, 1069.0, 1160.0, 493.0, 299.0)
S2_QMAX = (3780.0, 3704.0, 3554.0, 3885.0, 4644.0, 5296.0, 5478.0, 5494.0, 3747.0, 2892.0)
# S1 ascending gamma0 (linear): channels ln VH, ln VV, ln(VH/VV)
S1_MED = (-3.7551794052124023, -2.246965169906616, -1.5142076015472412)
S1_QMIN = (-5.7809295654296875, -3.768258810043335, -3.211071252822876)
S1_QMAX = (-2.4399311542510986, -1.0318946838378906, -0.174086332321167)
N_QUERIES, D_MODEL, N_LAYERS = 10, 64, 3
_CITATION = ("Dumeur I., Valero S., Inglada J. (2024). Self-supervised spatio-temporal "
             "representation learning of Satellite Image Time Series. IEEE JSTARS 17; "
             "Kalinicheva E., Dumeur I. et al., MALICE (openeo_malice, CESBIO, Evoland).")

_UB = "repr_encoder.encoder.ubarn."
_UNET = _UB + "patch_encoding.hss_encoding.my_model."
# the U-Net convolutions (BatchNorm folded) in graph order: torch-export names onnx::Conv_*
_CONV_ORDER = ("in_conv.0", "in_conv.1",
               *(f"down_blocks.{i}.{p}" for i in range(3) for p in ("down", "conv1", "conv2")),
               *(f"up_blocks.{i}.{p}" for i in range(3) for p in ("skip_conv", "conv1", "conv2")),
               "out_conv")


def _clip_scale(x: torch.Tensor, med: tuple[float, ...], qmin: tuple[float, ...],
                qmax: tuple[float, ...]) -> torch.Tensor:
    """Per channel ``(clip(x, qmin, qmax) - med) / (qmax - qmin)``, NaN -> 0 (``[..., C, H, W]``)."""
    shape = (len(med), 1, 1)
    m = torch.tensor(med, dtype=x.dtype, device=x.device).view(shape)
    lo = torch.tensor(qmin, dtype=x.dtype, device=x.device).view(shape)
    hi = torch.tensor(qmax, dtype=x.dtype, device=x.device).view(shape)
    out = (torch.minimum(torch.maximum(x, lo), hi) - m) / (hi - lo)
    return torch.nan_to_num(out, nan=0.0)


def normalise_s2(x: torch.Tensor) -> torch.Tensor:
    """``[..., 10, H, W]`` reflectance x 10000 -> the S2 branch's input."""
    return _clip_scale(x, S2_MED, S2_QMIN, S2_QMAX)


def s1_log_channels(vv: torch.Tensor, vh: torch.Tensor) -> torch.Tensor:
    """Linear gamma0 VV, VH ``[..., H, W]`` -> ``[..., 3, H, W]``: ln VH, ln VV, ln(VH / VV)
    (the S1 branch's channels, in that order; non-positive backscatter gives NaN -> 0)."""
    with torch.no_grad():
        lvv = torch.log(torch.where(vv > 0, vv, torch.full_like(vv, float("nan"))))
        lvh = torch.log(torch.where(vh > 0, vh, torch.full_like(vh, float("nan"))))
    return torch.stack([lvh, lvv, lvh - lvv], dim=-3)


def normalise_s1(x: torch.Tensor) -> torch.Tensor:
    """``[..., 3, H, W]`` from :func:`s1_log_channels` -> the S1 branch's input."""
    return _clip_scale(x, S1_MED, S1_QMIN, S1_QMAX)


def _conv(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Conv2d:
    pad = 1 if k == 3 else 0
    return nn.Conv2d(cin, cout, k, stride=stride, padding=pad,
                     padding_mode="reflect" if pad else "zeros")


class _Down(nn.Module):
    """2x2 stride-2 conv + ReLU, then two 3x3 conv + ReLU whose outputs are summed."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.down = _conv(cin, cin, 2, 2)
        self.conv1 = _conv(cin, cout)
        self.conv2 = _conv(cout, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.down(x))
        h = F.relu(self.conv1(x))
        return h + F.relu(self.conv2(h))


class _Up(nn.Module):
    """ConvTranspose 2x2 s2 + BatchNorm + ReLU, 1x1 conv + ReLU on the skip, concat, then two
    3x3 conv + ReLU whose outputs are summed."""

    def __init__(self, cin: int, cout: int, cskip: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cout, 2, stride=2)
        self.bn = nn.BatchNorm2d(cout, eps=1e-5)
        self.skip_conv = _conv(cskip, cskip, 1)
        self.conv1 = _conv(cout + cskip, cout)
        self.conv2 = _conv(cout, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = torch.cat([F.relu(self.bn(self.up(x))), F.relu(self.skip_conv(skip))], dim=1)
        h = F.relu(self.conv1(x))
        return h + F.relu(self.conv2(h))


class UNet(nn.Module):
    """The per-date spectro-spatial encoder: ``[N, 10, H, W] -> [N, 64, H, W]``."""

    def __init__(self, cin: int = 10) -> None:
        super().__init__()
        self.in_conv = nn.Sequential(_conv(cin, 64), nn.ReLU(), _conv(64, 64), nn.ReLU())
        self.down_blocks = nn.ModuleList([_Down(64, 64), _Down(64, 64), _Down(64, 128)])
        self.up_blocks = nn.ModuleList([_Up(128, 64, 64), _Up(64, 32, 64), _Up(32, 32, 64)])
        self.out_conv = nn.Sequential(_conv(32, 64), nn.ReLU())

    def convs(self) -> list[nn.Conv2d]:
        """The folded convolutions in the order of :data:`_CONV_ORDER`."""
        out = [self.in_conv[0], self.in_conv[2]]
        out += [m for d in self.down_blocks for m in (d.down, d.conv1, d.conv2)]
        out += [m for u in self.up_blocks for m in (u.skip_conv, u.conv1, u.conv2)]
        return out + [self.out_conv[0]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.in_conv(x)]
        for d in self.down_blocks:
            skips.append(d(skips[-1]))
        h = skips.pop()
        for u in self.up_blocks:
            h = u(h, skips.pop())
        return self.out_conv(h)


class _Layer(nn.Module):
    """One temporal layer: ``h = x + MHA(norm(x)); y = norm(h); out = norm2(y + FFN(y))``
    (the same ``norm`` is applied twice, as in the published graph)."""

    def __init__(self, d: int = D_MODEL, heads: int = 4, ffn: int = 128) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(d, eps=1e-5)
        self.norm2 = nn.LayerNorm(d, eps=1e-5)
        self.q = nn.Linear(d, d)
        self.k = nn.Linear(d, d)
        self.v = nn.Linear(d, d)
        self.out_proj = nn.Linear(d, d)
        self.linear1 = nn.Linear(d, ffn)
        self.linear2 = nn.Linear(ffn, d)

    def attend(self, x: torch.Tensor, key_pad: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        hd = d // self.heads

        def split(y: torch.Tensor) -> torch.Tensor:
            return y.view(n, t, self.heads, hd).transpose(1, 2)

        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        scores = (q * hd ** -0.5) @ k.transpose(-1, -2)
        scores = scores.masked_fill(key_pad[:, None, None, :], float("-inf"))
        out = torch.softmax(scores, dim=-1) @ v
        return self.out_proj(out.transpose(1, 2).reshape(n, t, d))

    def forward(self, x: torch.Tensor, key_pad: torch.Tensor) -> torch.Tensor:
        y = self.norm(x + self.attend(self.norm(x), key_pad))
        return self.norm2(y + self.linear2(F.relu(self.linear1(y))))


class AliseNet(nn.Module):
    """MALICE's S2 branch: ``sits [B, T, 10, H, W], tpe [B, T], padd_mask [B, T]``.

    :meth:`forward` gives the ONNX output ``[B, 10, 64, H, W]``; :meth:`temporal` the per-date
    output of the temporal transformer ``[B, T, H, W, 64]`` (U-BARN-like).
    """

    def __init__(self, cin: int = 10) -> None:
        super().__init__()
        self.unet = UNet(cin)
        self.layers = nn.ModuleList([_Layer() for _ in range(N_LAYERS)])
        self.register_buffer("pe_div", torch.ones(D_MODEL))
        self.register_buffer("queries", torch.zeros(2, N_QUERIES, D_MODEL))  # heads, queries, d_k
        self.k_proj = nn.Linear(D_MODEL, 2 * D_MODEL, bias=False)

    @classmethod
    def from_onnx(cls, path: str | Path) -> "AliseNet":
        from .onnx_weights import read_onnx_tensors

        t = read_onnx_tensors(path)
        inits = t.initializers
        first_conv = min((n for n in inits if n.startswith("onnx::Conv_")),
                         key=lambda n: int(n.rsplit("_", 1)[1]), default=None)
        net = cls(cin=int(inits[first_conv].shape[1]) if first_conv else 10)
        conv_names = sorted((n for n in inits if n.startswith("onnx::Conv_")),
                            key=lambda n: int(n.rsplit("_", 1)[1]))
        if len(conv_names) != 2 * len(_CONV_ORDER):
            from ..weights import WeightsError
            raise WeightsError(f"{path}: expected {2 * len(_CONV_ORDER)} folded conv tensors, "
                               f"found {len(conv_names)}; not the MALICE S2 graph?")
        state: dict[str, torch.Tensor] = {}
        own = {id(m): name for name, m in net.named_modules()}
        for i, conv in enumerate(net.unet.convs()):
            state[own[id(conv)] + ".weight"] = inits[conv_names[2 * i]]
            state[own[id(conv)] + ".bias"] = inits[conv_names[2 * i + 1]]
        for i in range(3):
            src = f"{_UNET}up_blocks.{i}.up."
            dst = f"unet.up_blocks.{i}."
            state[dst + "up.weight"] = t.initializer(src + "0.weight")
            state[dst + "up.bias"] = t.initializer(src + "0.bias")
            for p in ("weight", "bias", "running_mean", "running_var"):
                state[dst + "bn." + p] = t.initializer(src + "1." + p)
            state[dst + "bn.num_batches_tracked"] = torch.zeros((), dtype=torch.long)
        # temporal layers: in-projections are MatMul (x @ W) + Add initialisers in graph order
        mm = sorted((n for n in inits if n.startswith("onnx::MatMul_")),
                    key=lambda n: int(n.rsplit("_", 1)[1]))
        adds = sorted((n for n in inits if n.startswith("onnx::Add_")),
                      key=lambda n: int(n.rsplit("_", 1)[1]))
        for i in range(N_LAYERS):
            src = f"{_UB}temporal_encoder.layer_stack.{i}."
            dst = f"layers.{i}."
            wq, wk, wv, w1, w2 = mm[5 * i: 5 * i + 5]
            bq, bk, bv = adds[3 * i: 3 * i + 3]
            for name, w, b in (("q", wq, bq), ("k", wk, bk), ("v", wv, bv)):
                state[dst + name + ".weight"] = inits[w].T.contiguous()
                state[dst + name + ".bias"] = inits[b]
            state[dst + "linear1.weight"] = inits[w1].T.contiguous()
            state[dst + "linear1.bias"] = t.initializer(src + "conv_block.block.linear1.bias")
            state[dst + "linear2.weight"] = inits[w2].T.contiguous()
            state[dst + "linear2.bias"] = t.initializer(src + "conv_block.block.linear2.bias")
            state[dst + "out_proj.weight"] = t.initializer(src + "attn.mha.out_proj.weight")
            state[dst + "out_proj.bias"] = t.initializer(src + "attn.mha.out_proj.bias")
            for norm in ("norm", "norm2"):
                for p in ("weight", "bias"):
                    state[f"{dst}{norm}.{p}"] = t.initializer(f"{src}{norm}.{p}")
        state["k_proj.weight"] = inits[mm[5 * N_LAYERS]].T.contiguous()
        expand = [n for n in inits if n.startswith("onnx::Expand_")]
        state["queries"] = inits[expand[0]].reshape(2, N_QUERIES, D_MODEL)
        state["pe_div"] = t.constant(
            "/encoder/ubarn/patch_encoding/pe_encoding/Constant_1_output_0").reshape(D_MODEL)
        net.load_state_dict(state, strict=True)
        return net.requires_grad_(False).eval()

    def date_encoding(self, tpe: torch.Tensor) -> torch.Tensor:
        """Sinusoidal encoding ``[B, T, 64]``: sin on even, cos on odd features."""
        arg = tpe.unsqueeze(-1) / self.pe_div
        pe = torch.empty_like(arg)
        pe[..., 0::2] = torch.sin(arg[..., 0::2])
        pe[..., 1::2] = torch.cos(arg[..., 1::2])
        return pe

    def temporal(self, sits: torch.Tensor, tpe: torch.Tensor, padd_mask: torch.Tensor
                 ) -> torch.Tensor:
        """Per-date features ``[B, T, H, W, 64]`` (padded dates carry values, ignore them)."""
        b, t, c, h, w = sits.shape
        valid = ~padd_mask
        feats = sits.new_zeros(b, t, D_MODEL, h, w)
        if valid.any():
            feats[valid] = self.unet(sits[valid])  # the U-Net only sees the kept dates
        x = feats + self.date_encoding(tpe.to(sits.dtype))[:, :, :, None, None]
        x = x.permute(0, 3, 4, 1, 2).reshape(b * h * w, t, D_MODEL)
        key_pad = padd_mask[:, None, :].expand(b, h * w, t).reshape(b * h * w, t)
        for layer in self.layers:
            x = layer(x, key_pad)
        return x.view(b, h, w, t, D_MODEL).permute(0, 3, 1, 2, 4)

    def forward(self, sits: torch.Tensor, tpe: torch.Tensor, padd_mask: torch.Tensor
                ) -> torch.Tensor:
        b, t, _, h, w = sits.shape
        x = self.temporal(sits, tpe, padd_mask).permute(0, 2, 3, 1, 4).reshape(b * h * w, t, D_MODEL)
        n = x.shape[0]
        keys = self.k_proj(x).view(n, t, 2, D_MODEL).permute(0, 2, 3, 1)  # [n, 2, 64, T]
        values = x.view(n, t, 2, D_MODEL // 2).transpose(1, 2)  # [n, 2, T, 32]
        scores = (self.queries * D_MODEL ** -0.5) @ keys  # [n, 2, 10, T]
        key_pad = padd_mask[:, None, :].expand(b, h * w, t).reshape(n, t)
        scores = scores.masked_fill(key_pad[:, None, None, :], float("-inf"))
        out = torch.softmax(scores, dim=-1) @ values  # [n, 2, 10, 32]
        out = out.transpose(1, 2).reshape(b, h, w, N_QUERIES, D_MODEL)
        return out.permute(0, 3, 4, 1, 2)


def days_since_reference(dates: np.ndarray) -> np.ndarray:
    """``datetime64`` ``[B, T]`` -> float days since 2014-03-03 (NaT -> 0)."""
    d = np.asarray(dates, dtype="datetime64[D]")
    out = (d - np.datetime64(DATE_REFERENCE, "D")).astype("int64").astype(np.float32)
    out[np.isnat(d)] = 0.0
    return out


__all__ = ["AliseNet", "UNet", "normalise_s1", "normalise_s2", "s1_log_channels",
           "days_since_reference", "DATE_REFERENCE", "D_MODEL", "N_QUERIES"]
