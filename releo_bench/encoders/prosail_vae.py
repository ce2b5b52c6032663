"""``prosail-vae``: the PROSAIL-VAE encoder (Zérah, Valero, Inglada 2024) as a PyTorch module.

The published model is an ONNX graph (``models/prosailvae.onnx`` of
github.com/Evoland-Land-Monitoring-Evolution/openeo_pvae @ 05e02b27, AGPL-3.0). It is
re-implemented here op for op (see :class:`ProsailVAENet`) and its parameters are read from the
graph's initialisers and constants (:mod:`releo_bench.encoders.onnx_weights`); the test suite
checks it against onnxruntime to 1e-5.

Per pixel and per date, from the 10 S2 bands (reflectance 0-1) and the acquisition angles
(sun zenith, view zenith, relative azimuth, degrees), the encoder outputs the posterior of the
11 PROSAIL variables as truncated normals on their physical bounds (:data:`VARIABLES`,
:data:`LOW`, :data:`HIGH`).

As an encoder: per-date embeddings of 22 features, the location of the 11 variables then their
scale (physical units), averaged over the valid pixels of the patch; the runner picks the
target date. As a :class:`~releo_bench.encoders.base.Retriever` (``--probe none``): LAI and Cab
directly as the model's truncated normals at the date nearest ``target_time``; CCC = LAI x Cab
/ 100 (g/m2) as a Monte-Carlo sample of the product of the two (independent, as in the VAE's
mean-field posterior) truncated normals, drawn with a fixed seed.

The angles are matched to each S2 date by date (nearest valid angle acquisition of the
sample); a task without an ``angles`` modality (e.g. ``lai-insitu``) is refused by the runner
with a message naming the missing modality.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..batch import EOBatch, Modality
from ..errors import UsageError
from ..predictions import Prediction, Samples, TruncatedNormal
from ..tasks.base import TargetSpec
from ..weights import WeightsFile
from .base import Embeddings, EncoderMeta, ModalityInput, PretrainedEncoder, WeightsSource, \
    retrieval_problem

NAME = "prosail-vae"
S2_BANDS = ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12")
ANGLE_BANDS = ("sun_zenith", "view_zenith", "relative_azimuth")
VARIABLES = ("N", "cab", "car", "cbrown", "cw", "cm", "lai", "lidfa", "hspot", "psoil", "rsoil")
LOW = (1.2, 20.0, 5.0, 0.0, 0.0075, 0.003, 0.0, 30.0, 0.0, 0.0, 0.3)
HIGH = (1.8, 90.0, 23.0, 2.0, 0.075, 0.011, 10.0, 80.0, 0.5, 1.0, 3.5)
FEATURES = tuple(f"loc_{v}" for v in VARIABLES) + tuple(f"scale_{v}" for v in VARIABLES)
COMMIT = "05e02b27"
WEIGHTS_SHA256 = "98ea8b7861af635e6d157ec4a31eabeda52fcdb0f098542ca454d7950270ed6a"
WEIGHTS_URL = (f"https://raw.githubusercontent.com/Evoland-Land-Monitoring-Evolution/openeo_pvae/"
               f"{COMMIT}/models/prosailvae.onnx")
CCC_SAMPLES = 1000
# names of the folded constants in the published graph (torch.onnx export names)
_CONST = {"refl_mean": "/Constant_1_output_0", "refl_std": "/Constant_2_output_0",
          "cos_mean": "/Constant_5_output_0", "cos_std": "/Constant_6_output_0",
          "logscale_mul": "/Constant_45_output_0", "logscale_add": "/Constant_46_output_0",
          "width": "/Constant_51_output_0", "low": "/Constant_52_output_0"}
_PI = float(np.float32(math.pi))


class _ResBlock(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h) + h  # the ReLU after the sum is the next module of the trunk


def _normalised_difference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(a - b) / (a + b)`` where ``|a + b| > 1e-4``, else -1; clipped to [-1, 1]."""
    s = a + b
    ok = s.abs() > 1e-4
    return torch.where(ok, (a - b) / torch.where(ok, s, torch.ones_like(s)),
                       torch.full_like(s, -1.0)).clamp(-1.0, 1.0)


class ProsailVAENet(nn.Module):
    """The ONNX graph of PROSAIL-VAE's encoder: ``refls [N, 10], angles [N, 3] -> [N, 11, 2]``.

    Inputs: the 10 standardised reflectances, the standardised cosines of the 3 angles and
    4 spectral indices (NDVI B8/B4, B8/B11, B12/B11, and ``-log(|0.371 + 1.5 (B8 - B4) / (B8
    + B4 + 0.5)| + 1e-4) / 2.4``) -> Linear(17, 32) + ReLU -> 3 residual blocks -> Linear(32,
    22) -> per variable ``sigmoid`` location and ``exp(a sigmoid + b)`` scale on [0, 1], mapped
    to physical units by ``x (high - low) + low`` (the scale with the offset too, as in the
    published graph).
    """

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(17, 32), nn.ReLU(), _ResBlock(32), nn.ReLU(),
                                 _ResBlock(32), nn.ReLU(), _ResBlock(32), nn.ReLU(),
                                 nn.Linear(32, 22))
        for name, n in (("refl_mean", 10), ("refl_std", 10), ("cos_mean", 3), ("cos_std", 3),
                        ("width", 11), ("low", 11)):
            self.register_buffer(name, torch.zeros(n))
        self.register_buffer("logscale_mul", torch.zeros(()))
        self.register_buffer("logscale_add", torch.zeros(()))

    @classmethod
    def from_onnx(cls, path: str | Path) -> "ProsailVAENet":
        from .onnx_weights import read_onnx_tensors

        t = read_onnx_tensors(path)
        net = cls()
        # the graph's net is encoder.net.{0,2,4,6,8}; ours has ReLUs in between at the same
        # indices (residual blocks' ReLU applied inside their forward), so names line up
        state = t.state_dict(prefix="encoder.net.", strip="encoder.")
        state.update({
            "refl_mean": t.constant(_CONST["refl_mean"]).reshape(10),
            "refl_std": t.constant(_CONST["refl_std"]).reshape(10),
            "cos_mean": t.constant(_CONST["cos_mean"]).reshape(3),
            "cos_std": t.constant(_CONST["cos_std"]).reshape(3),
            "logscale_mul": t.constant(_CONST["logscale_mul"]).reshape(()),
            "logscale_add": t.constant(_CONST["logscale_add"]).reshape(()),
            "width": torch.diagonal(t.constant(_CONST["width"])).clone(),
            "low": t.constant(_CONST["low"]).reshape(11),
        })
        net.load_state_dict(state, strict=True)
        return net.requires_grad_(False).eval()

    def features(self, refls: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
        """The 17 inputs of the MLP."""
        x_r = (refls - self.refl_mean) / self.refl_std
        x_a = (torch.cos(angles * _PI / 180.0) - self.cos_mean) / self.cos_std
        r = refls.clamp(0.0, 1.0)
        b4, b8, b11, b12 = r[:, 2:3], r[:, 6:7], r[:, 8:9], r[:, 9:10]
        savi = 1.5 * (b8 - b4) / ((b8 + b4) + 0.5)
        idx = -torch.log((0.371 + savi).abs() + 1e-4) / 2.4
        return torch.cat([x_r, x_a, _normalised_difference(b8, b4),
                          _normalised_difference(b8, b11), _normalised_difference(b12, b11),
                          idx], dim=1)

    def distribution(self, refls: torch.Tensor, angles: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """Location and scale ``[N, 11]`` in physical units (the scale without the offset)."""
        out = self.net(self.features(refls, angles)).reshape(-1, 2, 11)
        loc01 = torch.sigmoid(out[:, 0])
        scale01 = torch.exp(torch.sigmoid(out[:, 1]) * self.logscale_mul + self.logscale_add)
        return loc01 * self.width, scale01 * self.width

    def forward(self, refls: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
        """Exactly the ONNX output: ``[N, 11, 2]`` = (location, scale + low) per variable."""
        loc, scale = self.distribution(refls, angles)
        return torch.stack([loc + self.low, scale + self.low], dim=-1)


def _day_numbers(dates: np.ndarray) -> np.ndarray:
    d = np.asarray(dates, dtype="datetime64[D]")
    out = d.astype("int64").astype(float)
    out[np.isnat(d)] = np.nan
    return out


def nearest_valid(dates: np.ndarray, valid: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the index of the valid date nearest ``target`` (``[B]`` or ``[B, K]``) and
    whether there was one. ``dates [B, T]``, ``valid [B, T]`` bool."""
    d = _day_numbers(dates)
    tgt = _day_numbers(target)
    squeeze = tgt.ndim == 1
    tgt = tgt[:, :, None] if not squeeze else tgt[:, None, None]
    gap = np.abs(d[:, None, :] - tgt)
    gap[~np.broadcast_to(valid[:, None, :], gap.shape) | np.isnan(gap)] = np.inf
    idx = gap.argmin(axis=2)
    ok = np.isfinite(gap.min(axis=2))
    return (idx[:, 0], ok[:, 0]) if squeeze else (idx, ok)


class ProsailVAE(PretrainedEncoder):
    """Options: ``weights`` (explicit path of ``prosailvae.onnx`` or a folder holding it)."""

    WEIGHTS: tuple[WeightsFile, ...] = (
        WeightsFile(model=NAME, folder="prosailvae", filename="prosailvae.onnx",
                    licence="AGPL-3.0", sha256=WEIGHTS_SHA256, url=WEIGHTS_URL),)
    retrievable = {"lai": "m2/m2", "cab": "ug/cm2", "ccc": "g/m2"}

    def __init__(self, *, device: str | torch.device = "cpu", weights: str | None = None,
                 **options: Any) -> None:
        if options:
            raise UsageError(f"{NAME}: unknown options {sorted(options)} (accepted: weights)")
        super().__init__(device=device, weights=weights)
        self._net: ProsailVAENet | None = None
        self._meta = EncoderMeta(
            name=NAME, version=f"openeo_pvae-{COMMIT}",
            description="PROSAIL-VAE encoder (physics-guided VAE on PROSAIL + 4SAIL): per pixel "
                        "and date, the truncated-normal posterior of 11 PROSAIL variables from "
                        "10 S2 bands and the sun/view angles; per-date features = location and "
                        "scale of the 11 variables (" + ", ".join(VARIABLES) + "); "
                        "retrieves lai, cab and ccc directly (--probe none)",
            licence="AGPL-3.0",
            citation="Zérah Y., Valero S., Inglada J. (2024). Physics-constrained deep learning "
                     "for biophysical parameter retrieval from Sentinel-2 images: inversion of "
                     "the PROSAIL model. Remote Sensing of Environment 312, 114309.",
            modalities={"s2": ModalityInput(bands=S2_BANDS, units="reflectance"),
                        "angles": ModalityInput(bands=ANGLE_BANDS, units="degree")},
            temporal_mode="any", output="per_date", embedding_shape=(len(FEATURES),),
            weights=WeightsSource(kind="url", uri=WEIGHTS_URL, revision=COMMIT,
                                  filename="prosailvae.onnx", sha256=WEIGHTS_SHA256,
                                  licence="AGPL-3.0"),
        )

    @property
    def meta(self) -> EncoderMeta:
        return self._meta

    @property
    def net(self) -> ProsailVAENet:
        """The network, read from the verified weights file on first use."""
        if self._net is None:
            path = self.weights_path()
            self._net = ProsailVAENet.from_onnx(path).to(self.device)
        return self._net

    # -- encoding ---------------------------------------------------------------------------
    @staticmethod
    def _angles_at(angles: Modality, dates: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Angles ``[B, T, 3]`` at each of ``dates [B, T]`` (nearest valid angle date, spatial
        mean over valid pixels) and ``[B, T]`` whether any valid angle exists."""
        w = angles.mask.unsqueeze(2).to(angles.values.dtype)
        count = w.sum(dim=(-1, -2))
        per_date = (angles.values * w).sum(dim=(-1, -2)) / count.clamp(min=1.0)  # [B, Ta, 3]
        valid = (count.squeeze(-1) > 0).cpu().numpy()
        idx, ok = nearest_valid(angles.dates, valid, dates)
        idx_t = torch.as_tensor(idx, device=per_date.device)
        picked = torch.gather(per_date, 1, idx_t.unsqueeze(-1).expand(-1, -1, per_date.shape[-1]))
        return picked, torch.as_tensor(ok, device=per_date.device)

    def encode(self, batch: EOBatch) -> Embeddings:
        s2 = batch["s2"]
        b, t, c, h, w = s2.values.shape
        angles, has_angle = self._angles_at(batch["angles"], s2.dates)
        sel = s2.mask & has_angle[:, :, None, None]  # [B, T, H, W]
        refl = s2.values.permute(0, 1, 3, 4, 2)[sel]  # [P, 10]
        ang = angles[:, :, None, None, :].expand(b, t, h, w, 3)[sel]
        net = self.net
        px = torch.zeros(b, t, h, w, len(FEATURES), dtype=s2.values.dtype, device=s2.values.device)
        if len(refl):
            loc, scale = net.distribution(refl.to(net.low.dtype), ang.to(net.low.dtype))
            px[sel] = torch.cat([loc + net.low, scale], dim=1).to(px.dtype)
        wgt = sel.unsqueeze(-1).to(px.dtype)
        n = wgt.sum(dim=(2, 3))
        feats = (px * wgt).sum(dim=(2, 3)) / n.clamp(min=1.0)
        return Embeddings(feats, n.squeeze(-1) > 0, "s2")

    # -- direct retrieval ----------------------------------------------------------------------
    def retrieve(self, batch: EOBatch, target: TargetSpec, target_time: Any | None) -> Prediction:
        """The posterior of ``target`` at the valid date nearest ``target_time`` per sample.

        Samples with no valid date get the prior-like broad distribution (location mid-range,
        scale = the bound width)."""
        problem = retrieval_problem(self, target)
        if problem:
            raise UsageError(f"model {NAME!r} cannot retrieve: {problem}")
        if target_time is None:
            raise UsageError(f"model {NAME!r} retrieves per date; the task gives no target_time "
                             f"(the date its target refers to)")
        emb = self.encode(batch)
        feats = emb.features.detach().double().cpu().numpy()
        idx, ok = nearest_valid(batch["s2"].dates, emb.time_mask.cpu().numpy(),
                                np.asarray(target_time, dtype="datetime64[D]"))
        picked = feats[np.arange(len(feats)), idx]
        low, high = np.array(LOW), np.array(HIGH)
        loc = np.where(ok[:, None], picked[:, :11], (low + high) / 2)
        scale = np.where(ok[:, None], picked[:, 11:], high - low)
        scale = np.maximum(scale, 1e-9 * (high - low))
        if target.name in ("lai", "cab"):
            k = VARIABLES.index(target.name)
            return TruncatedNormal(loc[:, k], scale[:, k], low[k], high[k])
        # ccc (g/m2) = LAI (m2/m2) x Cab (ug/cm2) / 100
        rng = np.random.default_rng(0)
        draws = []
        for name in ("lai", "cab"):
            k = VARIABLES.index(name)
            dist = TruncatedNormal(np.repeat(loc[:, k], CCC_SAMPLES),
                                   np.repeat(scale[:, k], CCC_SAMPLES), low[k], high[k])
            u = rng.random(len(loc) * CCC_SAMPLES)
            draws.append(dist.ppf(u).reshape(len(loc), CCC_SAMPLES))
        return Samples(draws[0] * draws[1] / 100.0)


__all__ = ["ProsailVAE", "ProsailVAENet", "VARIABLES", "LOW", "HIGH", "FEATURES", "nearest_valid"]
