"""``alise``: the S2 branch of MALICE (ALISE^S2, Dumeur, Kalinicheva et al., CESBIO) as a
PyTorch module; ``ubarn``: its per-date temporal-transformer output (U-BARN-like).

The published model is an ONNX graph (``models/malice_models/malice_s2.onnx`` of
github.com/Evoland-Land-Monitoring-Evolution/openeo_malice @ 41762442, AGPL-3.0). It is
re-implemented here op for op (:class:`AliseNet`) and its parameters are read from the graph's
initialisers and constants (:mod:`releo_bench.encoders.onnx_weights`); the test suite checks
it against onnxruntime to 1e-4.

Graph inputs: ``sits [B, T, 10, H, W]`` (normalised, see :func:`normalise_s2`), ``tpe [B, T]``
(days since 2014-03-03), ``padd_mask [B, T]`` (True = padded date, ignored). Output
``[B, 10, 64, H, W]``: 10 learned temporal queries x 64 features per pixel. H and W must be
multiples of 8 (three stride-2 levels in the U-Net) and at least 16.

As an encoder (see ``docs/models/alise.md``):

* ``alise``: output "pooled", the 10 x 64 query outputs averaged over the patch pixels,
  flattened to 640 features.
* ``ubarn``: output "per_date", the 64-d per-date outputs of the temporal transformer,
  averaged over the patch pixels. The original U-BARN weights (Dumeur et al. 2024) are not
  public; this is the temporal encoder *inside* MALICE's S2 branch.
* cloudy / masked dates: a date is passed to the graph as padded (``padd_mask`` True, ignored
  by the U-Net, every attention and the query cross-attention) when fewer than
  ``min_valid`` (option, default 0.5) of its pixels are valid; in the kept dates, invalid
  pixels are filled with 0 after normalisation (the band median). So values under masked
  observations never reach the output.
* patches smaller than 16 px (pixel tasks) are tiled to 16 x 16; sides that are not a
  multiple of 8 are padded (reflect) to the next multiple of 8. Pooling is over the original
  pixels (over the whole 16 x 16 tile for a tiled patch, whose pixels are all copies).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..batch import EOBatch
from ..errors import UsageError
from ..weights import WeightsFile
from .base import Embeddings, EncoderMeta, ModalityInput, PretrainedEncoder, WeightsSource

NAME = "alise"
COMMIT = "41762442"
S2_BANDS = ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12")
WEIGHTS_SHA256 = "b70b3fa4befad6a341a8419ec0af7023e41514c91cb1acab2537d72251934e31"
WEIGHTS_URL = (f"https://raw.githubusercontent.com/Evoland-Land-Monitoring-Evolution/"
               f"openeo_malice/{COMMIT}/models/malice_models/malice_s2.onnx")
DATE_REFERENCE = "2014-03-03"
# per-band normalisation of L2A reflectance x 10000 (openeo_malice)
S2_MED = (414.0, 675.0, 570.0, 1132.0, 2374.0, 2744.0, 2885.0, 3016.0, 2003.0, 1117.0)
S2_QMIN = (130.0, 247.0, 168.0, 442.0, 907.0, 1044.0, 1069.0, 1160.0, 493.0, 299.0)
S2_QMAX = (3780.0, 3704.0, 3554.0, 3885.0, 4644.0, 5296.0, 5478.0, 5494.0, 3747.0, 2892.0)
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


def normalise_s2(x: torch.Tensor) -> torch.Tensor:
    """``[..., 10, H, W]`` reflectance x 10000 -> the model's input: per band
    ``(clip(x, qmin, qmax) - med) / (qmax - qmin)``, NaN -> 0."""
    shape = (10, 1, 1)
    med = torch.tensor(S2_MED, dtype=x.dtype, device=x.device).view(shape)
    lo = torch.tensor(S2_QMIN, dtype=x.dtype, device=x.device).view(shape)
    hi = torch.tensor(S2_QMAX, dtype=x.dtype, device=x.device).view(shape)
    out = (torch.minimum(torch.maximum(x, lo), hi) - med) / (hi - lo)
    return torch.nan_to_num(out, nan=0.0)


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

    def __init__(self) -> None:
        super().__init__()
        self.unet = UNet()
        self.layers = nn.ModuleList([_Layer() for _ in range(N_LAYERS)])
        self.register_buffer("pe_div", torch.ones(D_MODEL))
        self.register_buffer("queries", torch.zeros(2, N_QUERIES, D_MODEL))  # heads, queries, d_k
        self.k_proj = nn.Linear(D_MODEL, 2 * D_MODEL, bias=False)

    @classmethod
    def from_onnx(cls, path: str | Path) -> "AliseNet":
        from .onnx_weights import read_onnx_tensors

        t = read_onnx_tensors(path)
        net = cls()
        inits = t.initializers
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


def _to_model_size(x: torch.Tensor) -> torch.Tensor:
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


class Alise(PretrainedEncoder):
    """Options: ``weights`` (path of ``malice_s2.onnx`` or a folder holding it),
    ``min_valid`` (fraction of valid pixels for a date to be kept, default 0.5),
    ``chunk`` (samples per forward pass, default 8; does not change the embeddings)."""

    WEIGHTS: tuple[WeightsFile, ...] = (
        WeightsFile(model=NAME, folder="malice", filename="malice_s2.onnx",
                    licence="AGPL-3.0", sha256=WEIGHTS_SHA256, url=WEIGHTS_URL),)
    variant = "alise"

    def __init__(self, *, device: str | torch.device = "cpu", weights: str | None = None,
                 min_valid: float = 0.5, chunk: int = 8, **options: Any) -> None:
        if options:
            raise UsageError(f"{self.variant}: unknown options {sorted(options)} "
                             f"(accepted: weights, min_valid, chunk)")
        if not 0.0 < float(min_valid) <= 1.0:
            raise UsageError(f"{self.variant}: min_valid must be in (0, 1], got {min_valid}")
        super().__init__(device=device, weights=weights, min_valid=float(min_valid))
        self.chunk = max(1, int(chunk))
        self._net: AliseNet | None = None
        per_date = self.variant == "ubarn"
        self._meta = EncoderMeta(
            name=self.variant, version=f"openeo_malice-{COMMIT}",
            description=(
                "U-BARN-like per-date features: the 64-d outputs of the temporal transformer of "
                "MALICE's S2 branch, averaged over the patch (original U-BARN weights are not "
                "public)" if per_date else
                "ALISE^S2 (MALICE S2 branch): per-date U-Net + temporal transformer + 10 "
                "learned-query cross-attention; the 10 x 64 query outputs averaged over the "
                "patch pixels (640 features)") + "; cloudy dates are passed as padded",
            licence="AGPL-3.0", citation=_CITATION,
            modalities={"s2": ModalityInput(bands=S2_BANDS, units="reflectance_x10000")},
            temporal_mode="any", output="per_date" if per_date else "pooled",
            embedding_shape=(D_MODEL,) if per_date else (N_QUERIES * D_MODEL,),
            min_patch_size=16, date_reference=DATE_REFERENCE,
            weights=WeightsSource(kind="url", uri=WEIGHTS_URL, revision=COMMIT,
                                  filename="malice_s2.onnx", sha256=WEIGHTS_SHA256,
                                  licence="AGPL-3.0"),
        )

    @property
    def meta(self) -> EncoderMeta:
        return self._meta

    @property
    def net(self) -> AliseNet:
        """The network, read from the verified weights file on first use."""
        if self._net is None:
            path = self.weights_path()
            self._net = AliseNet.from_onnx(path).to(self.device)
        return self._net

    def inputs(self, batch: EOBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The graph inputs ``sits, tpe, padd_mask`` for a prepared batch (model-size patches)."""
        s2 = batch["s2"]
        b, t, c, h, w = s2.values.shape
        mask = s2.mask.to(s2.values.device)
        keep = mask.float().mean(dim=(-1, -2)) >= self.options["min_valid"] - 1e-9
        keep &= torch.as_tensor(~np.isnat(np.asarray(s2.dates, dtype="datetime64[D]")),
                                device=keep.device)
        x = normalise_s2(s2.values.float())
        x = torch.where(mask[:, :, None], x, torch.zeros_like(x))
        x = _to_model_size(x.reshape(b * t, c, h, w))
        x = x.reshape(b, t, c, *x.shape[-2:])
        tpe = torch.as_tensor(days_since_reference(s2.dates), device=x.device)
        return x, tpe, ~keep

    def encode(self, batch: EOBatch) -> Embeddings:
        s2 = batch["s2"]
        b, t, _, h, w = s2.values.shape
        sits, tpe, padd = self.inputs(batch)
        empty = padd.all(dim=1)
        padd = padd.clone()
        padd[empty, 0] = False  # avoid all-masked softmax (NaN); zeroed below
        net = self.net
        # a tiled patch (side < 16) is pooled over the whole tile: every pixel is a copy
        if h < 16 or w < 16:
            h, w = sits.shape[-2:]
        outs = []
        for i in range(0, b, self.chunk):
            sl = slice(i, i + self.chunk)
            if self.variant == "ubarn":
                y = net.temporal(sits[sl], tpe[sl], padd[sl])[:, :, :h, :w]  # [b, T, h, w, 64]
                outs.append(y.mean(dim=(2, 3)))
            else:
                y = net(sits[sl], tpe[sl], padd[sl])[..., :h, :w]  # [b, 10, 64, h, w]
                outs.append(y.mean(dim=(-1, -2)).flatten(1))
        feats = torch.cat(outs)
        if self.variant == "ubarn":
            valid = ~padd & ~empty[:, None]
            feats = torch.where(valid[:, :, None], feats, torch.zeros_like(feats))
            return Embeddings(feats, valid, "s2")
        feats = torch.where(empty[:, None], torch.zeros_like(feats), feats)
        return Embeddings(feats)


class Ubarn(Alise):
    """``ubarn``: :class:`Alise` with per-date temporal-transformer outputs."""

    variant = "ubarn"


__all__ = ["Alise", "Ubarn", "AliseNet", "UNet", "normalise_s2", "days_since_reference"]
