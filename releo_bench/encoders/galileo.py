"""``galileo-nano``: the Galileo nano encoder (Tseng et al. 2025, nasaharvest/galileo, MIT) on
Sentinel-1 + Sentinel-2 monthly composites.

Galileo was pretrained on monthly composites (up to 24 months, 1-12 used in pretraining) of
many inputs; here only its space-time inputs are filled: S1 VV / VH (dB), the ten S2 bands
(**L1C** top-of-atmosphere digital numbers in pretraining: L2A inputs are a domain shift) and
NDVI computed from the composited B8 / B4. Every other input family (SRTM, Dynamic World,
WorldCereal, ERA5, TerraClimate, VIIRS, LandScan, location) is masked, which in Galileo means
its tokens do not exist for the transformer.

What the encoder does with a prepared batch (see ``docs/models/galileo-nano.md``):

* the harness converts units and applies the pretraining normalisation
  ``(x - (mean - 2 std)) / (4 std)`` with the ``"13"`` statistics of ``normalization.json``
  (declared as ``mean`` / ``std`` in the metadata); NDVI, as in pretraining, is not
  normalised (``Normalizer`` leaves it out of the std bands);
* each sample's observations are composited into calendar months
  (:func:`~releo_bench.encoders.composite.monthly_composites`, median of the valid
  observations) over one window shared by S1 and S2, the last ``max_months`` months of the
  sample's dated observations; months without a valid observation are masked tokens;
* ``mode="pixel"``: every pixel is its own 1 x 1 image (patch size 1) and the per-pixel
  embeddings are averaged over the pixels that have a valid token; ``mode="patch"``: the
  image is cut into ``patch_size`` tokens (the 8 x 8 pretrained kernels resampled, FlexiViT
  style); a token is valid where at least ``min_valid`` of its pixels are, and its invalid
  pixels take the mean of its valid ones; ``mode="auto"`` (default) is pixel for 1 x 1
  samples and patch otherwise;
* the output is the mean of the valid output tokens (after the final LayerNorm), 128-d, as
  in the upstream evaluations; a sample with no valid token gets zeros.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..batch import EOBatch, Modality
from ..errors import BandError, DataError, UsageError
from ..weights import WeightsFile
from .base import Embeddings, EncoderMeta, ModalityInput, PretrainedEncoder, WeightsSource
from .composite import monthly_composites, month_window
from .galileo_net import SPACE_TIME_BANDS, SPACE_TIME_GROUPS, GalileoNet, load_galileo

NAME = "galileo-nano"
COMMIT = "d04822911e853668034888a90d490b799fae6929"  # data/models/nano/ of nasaharvest/galileo
NORM_COMMIT = "4a57e5764239bd04a171f292b0be5ae661e88b80"  # config/normalization.json
_RAW = "https://raw.githubusercontent.com/nasaharvest/galileo"
WEIGHTS_SHA256 = "eab6acacf527886a508a555bc24efe4b4a2cf91b162e84cd1c4a1807e942180c"
CONFIG_SHA256 = "8ec17cb83cb78d987b4b920b9c1c35aa245ec0f80e1abf0c22d6f77d828f431c"
NORM_SHA256 = "baea3828a8750e0b570cb2fad5cd30bb249f1f001988d842cc4246860e799ff3"
WEIGHTS_URL = f"{_RAW}/{COMMIT}/data/models/nano/encoder.pt"

S1_BANDS = ("VV", "VH")
S2_BANDS = ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12")
# normalization.json "13": VV, VH, B2..B12 (as S2_BANDS), NDVI; copied so that the metadata
# (and the harness normalisation) is known without reading the file; a test checks the file
NORM_MEAN = (-11.728724389184965, -18.85558188024017, 1395.3408730676722, 1338.4026921784578,
             1343.09883810357, 1543.8607982512297, 2186.2022069512263, 2525.0932853316694,
             2410.3377187373408, 2750.2854646886753, 2234.911100061487, 1474.5311266077113,
             0.2892116502999044)
NORM_STD = (4.887145774840316, 5.730270320384293, 917.7041440370853, 913.2988423581528,
            1092.678723527555, 1047.2206083460424, 1048.0101611156767, 1143.6903026819996,
            1098.979177731649, 1204.472755085893, 1145.9774063078878, 980.2429840007796,
            0.2720939024500081)
STD_MULTIPLIER = 2.0
EMBED_DIM = 128
MODES = ("auto", "pixel", "patch")
# per forward chunk (they bound memory, they do not change results): attention-score floats
# and tokens
_ATTN_BUDGET = 1 << 24
_TOKEN_BUDGET = 1 << 15
_CITATION = ("Tseng G., Fuller A., Reil M., Herzog H., Beukema P., Bastani F., Green J. R., "
             "Shelhamer E., Kerner H., Rolnick D. (2025). Galileo: Learning Global & Local "
             "Features of Many Remote Sensing Modalities. ICML 2025, arXiv:2502.09356.")


def _shift_scale(i: int) -> tuple[float, float]:
    """Offset and divisor of band ``i`` of "13": ``mean - 2 std`` and ``4 std``."""
    return (NORM_MEAN[i] - STD_MULTIPLIER * NORM_STD[i], 2 * STD_MULTIPLIER * NORM_STD[i])


def _modality(bands: tuple[str, ...], unit: str, first: int, required: bool) -> ModalityInput:
    shift, scale = zip(*(_shift_scale(first + j) for j in range(len(bands))))
    return ModalityInput(bands=bands, units=unit, mean=shift, std=scale, required=required)


S1_INPUT = _modality(S1_BANDS, "dB", 0, required=False)
S2_INPUT = _modality(S2_BANDS, "reflectance_x10000", 2, required=False)
_B4, _B8 = S2_BANDS.index("B4"), S2_BANDS.index("B8")
_GROUP_OF_BAND = torch.tensor([g for g, (_, bands) in enumerate(SPACE_TIME_GROUPS) for _ in bands])


class GalileoNano(PretrainedEncoder):
    """Options: ``weights`` (path of ``encoder.pt`` or a folder holding ``galileo_nano/``),
    ``mode`` (auto / pixel / patch, default auto), ``patch_size`` (1-8, default 8; patch
    mode), ``max_months`` (1-24, default 12), ``min_valid`` (fraction of valid pixels for a
    patch token, default 0.5), ``ndvi`` (feed the NDVI group, default True)."""

    WEIGHTS: tuple[WeightsFile, ...] = (
        WeightsFile(model=NAME, folder="galileo_nano", filename="encoder.pt", licence="MIT",
                    sha256=WEIGHTS_SHA256, url=WEIGHTS_URL),
        WeightsFile(model=NAME, folder="galileo_nano", filename="config.json", licence="MIT",
                    sha256=CONFIG_SHA256, url=f"{_RAW}/{COMMIT}/data/models/nano/config.json"),
        WeightsFile(model=NAME, folder="galileo_nano", filename="normalization.json",
                    licence="MIT", sha256=NORM_SHA256,
                    url=f"{_RAW}/{NORM_COMMIT}/config/normalization.json"),
    )

    def __init__(self, *, device: str | torch.device = "cpu", weights: str | None = None,
                 mode: str = "auto", patch_size: int = 8, max_months: int = 12,
                 min_valid: float = 0.5, ndvi: bool = True, **options: Any) -> None:
        if options:
            raise UsageError(f"{NAME}: unknown options {sorted(options)} (accepted: weights, "
                             f"mode, patch_size, max_months, min_valid, ndvi)")
        if mode not in MODES:
            raise UsageError(f"{NAME}: mode must be one of {MODES}, got {mode!r}")
        if not isinstance(patch_size, int) or not 1 <= patch_size <= 8:
            raise UsageError(f"{NAME}: patch_size must be an integer in 1..8 (the pretrained "
                             f"range), got {patch_size!r}")
        if not isinstance(max_months, int) or not 1 <= max_months <= 24:
            raise UsageError(f"{NAME}: max_months must be an integer in 1..24, got {max_months!r}")
        if not 0.0 < float(min_valid) <= 1.0:
            raise UsageError(f"{NAME}: min_valid must be in (0, 1], got {min_valid!r}")
        if not isinstance(ndvi, bool):
            raise UsageError(f"{NAME}: ndvi must be true or false, got {ndvi!r}")
        super().__init__(device=device, weights=weights, mode=mode, patch_size=patch_size,
                         max_months=max_months, min_valid=float(min_valid), ndvi=ndvi)
        self._net: GalileoNet | None = None
        self._meta = EncoderMeta(
            name=NAME, version=f"nasaharvest/galileo@{COMMIT[:8]} nano",
            description=(
                "Galileo nano (ViT, 4 layers, width 128, 1.04 M parameters) on monthly "
                "composites of S1 VV/VH + S2 (10 bands) + NDVI; other input families masked; "
                f"{mode} mode" + (f", patch size {patch_size}" if mode != "pixel" else "")
                + "; mean of the unmasked output tokens. Pretrained on S2 L1C: L2A inputs are "
                "a domain shift"),
            licence="MIT", citation=_CITATION,
            modalities={"s2": S2_INPUT, "s1": S1_INPUT},
            temporal_mode="monthly", output="pooled", embedding_shape=(EMBED_DIM,),
            min_patch_size=patch_size if mode == "patch" else 1,
            date_reference="calendar month of each composite (0 = January)",
            weights=WeightsSource(kind="url", uri=WEIGHTS_URL, revision=COMMIT,
                                  filename="encoder.pt", sha256=WEIGHTS_SHA256, licence="MIT"),
        )

    @property
    def meta(self) -> EncoderMeta:
        return self._meta

    @property
    def net(self) -> GalileoNet:
        """The network, read from the verified weights files on first use."""
        if self._net is None:
            state = torch.load(self.weights_path(0), map_location="cpu", weights_only=True)
            config = json.loads(self.weights_path(1).read_text(encoding="utf-8"))
            self._net = load_galileo(state, config).to(self.device)
        return self._net

    def adapt_to(self, data: Any) -> "GalileoNano":
        """Refuse, before anything is encoded, a task that has neither S1 nor S2."""
        _present(data.batch)
        return self

    # -- inputs -----------------------------------------------------------------------
    def inputs(self, batch: EOBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Monthly space-time input of a prepared batch: ``x [B, M, 13, H, W]`` (bands of
        :data:`SPACE_TIME_BANDS`, normalised; NDVI raw), pixel validity per group
        ``[B, M, 7, H, W]`` and calendar months ``[B, M]``."""
        mods = _present(batch)
        for name, mod in mods.items():
            _check_plausible(name, mod)
        first, n = _shared_window(mods, self.options["max_months"])
        start = first.astype("datetime64[M]")
        b = len(batch)
        h, w = next(iter(mods.values())).values.shape[-2:]
        x = torch.zeros(b, n, len(SPACE_TIME_BANDS), h, w)
        valid = torch.zeros(b, n, len(SPACE_TIME_GROUPS), h, w, dtype=torch.bool)
        months = torch.from_numpy((first[:, None] + np.arange(n)[None, :]) % 12).long()
        for name, mod in mods.items():
            if mod.values.shape[-2:] != (h, w):
                raise DataError(f"{NAME}: modalities s1 and s2 must share H x W, got "
                                f"{tuple(mod.values.shape[-2:])} and {(h, w)}")
            comp = monthly_composites(_dated_rows(mod.to("cpu"), start), n, start=start)
            if name == "s1":
                x[:, :, 0:2] = comp.values
                valid[:, :, 0] = comp.valid
            else:
                x[:, :, 2:12] = comp.values
                x[:, :, 12] = _ndvi(comp.values)
                valid[:, :, 1:6] = comp.valid[:, :, None]
                if self.options["ndvi"]:
                    valid[:, :, 6] = comp.valid
        return x, valid, months

    # -- encoding ---------------------------------------------------------------------
    def encode(self, batch: EOBatch) -> Embeddings:
        x, valid, months = self.inputs(batch)
        b, t, c, h, w = x.shape
        mode = self.options["mode"]
        if mode == "auto":
            mode = "pixel" if (h, w) == (1, 1) else "patch"
        dev = self.device
        if mode == "pixel":
            px = x.permute(0, 3, 4, 1, 2).reshape(b * h * w, t, c, 1, 1)
            pv = valid.permute(0, 3, 4, 1, 2).reshape(b * h * w, t, -1, 1, 1)
            pm = months[:, None].expand(b, h * w, t).reshape(b * h * w, t)
            feats = self._run(px, pv, pm, 1).view(b, h * w, -1)
            has = pv.flatten(1).any(dim=1).view(b, h * w, 1).to(feats.dtype).to(feats.device)
            feats = (feats * has).sum(dim=1) / has.sum(dim=1).clamp(min=1.0)
            return Embeddings(feats.to(dev))
        p = self.options["patch_size"]
        if h % p or w % p:
            raise DataError(f"{NAME}: patch_size {p} does not divide the {h} x {w} px samples; "
                            f"choose a patch_size dividing both (1-8) or mode=pixel")
        x, tok_valid = _patch_tokens(x, valid, p, self.options["min_valid"])
        return Embeddings(self._run(x, tok_valid, months, p).to(dev))

    def _run(self, x: torch.Tensor, valid: torch.Tensor, months: torch.Tensor,
             p: int) -> torch.Tensor:
        """The network over chunks of samples sized to bound the attention memory."""
        net = self.net
        n, t = x.shape[:2]
        groups = int(valid.flatten(3).any(dim=(0, 1, 3)).sum().clamp(min=1))
        tokens = t * groups * (x.shape[-2] // p) * (x.shape[-1] // p)
        chunk = max(1, min(_ATTN_BUDGET // (8 * tokens * tokens), _TOKEN_BUDGET // tokens))
        outs = []
        for i in range(0, n, chunk):
            sl = slice(i, i + chunk)
            outs.append(net(x[sl].to(self.device), valid[sl].to(self.device),
                            months[sl].to(self.device), p))
        return torch.cat(outs) if outs else x.new_zeros(0, EMBED_DIM)


def _present(batch: EOBatch) -> dict[str, Modality]:
    """The S2 / S1 modalities of ``batch`` (S2 first); at least one is needed."""
    mods = {k: batch.modalities[k] for k in ("s2", "s1") if k in batch.modalities}
    if not mods:
        raise BandError(f"{NAME} needs modality 's2' (B2..B12) and/or 's1' (VV, VH); the data "
                        f"has {sorted(batch.modalities)}")
    return mods


def _check_plausible(name: str, mod: Modality) -> None:
    """Refuse values whose magnitude betrays a wrong unit label (prepared, normalised values
    are mapped back to the declared unit first)."""
    spec = S2_INPUT if name == "s2" else S1_INPUT
    shift = torch.tensor(spec.mean).view(1, 1, -1, 1, 1)
    scale = torch.tensor(spec.std).view(1, 1, -1, 1, 1)
    raw = mod.values.detach().float().cpu() * scale + shift
    ok = mod.mask.cpu()[:, :, None].expand_as(raw)
    if not ok.any():
        return
    if name == "s2":
        med = float(raw[ok].median())
        if med < 10.0:
            raise DataError(f"{NAME}: modality 's2' has a median of {med:.3g} in "
                            f"reflectance x 10000 (bands {list(S2_BANDS)}): it looks like "
                            "reflectance 0-1 labelled 'reflectance_x10000'; fix the data's units")
        if med > 20000.0:
            raise DataError(f"{NAME}: modality 's2' has a median of {med:.3g} in "
                            "reflectance x 10000: it looks like digital numbers labelled "
                            "'reflectance'; fix the data's units")
    else:
        vh = raw[:, :, S1_BANDS.index("VH")][ok[:, :, 0]]
        if vh.numel() >= 4 and float(vh.min()) >= 0.0:
            raise DataError(f"{NAME}: every valid VH value of modality 's1' is >= 0 dB (range "
                            f"{float(vh.min()):.3g}..{float(vh.max()):.3g}): it looks like "
                            "linear backscatter labelled 'dB'; fix the data's units")


def _shared_window(mods: dict[str, Modality], max_months: int) -> tuple[np.ndarray, int]:
    """First month (months since 1970-01, ``[B]``) and length of the window shared by S1 and
    S2: the last ``max_months`` months up to the sample's last dated observation. A sample
    without any date gets a one-month dummy window (all masked: zero embedding)."""
    dates = np.concatenate([np.asarray(m.dates, dtype="datetime64[D]") for m in mods.values()],
                           axis=1)
    undated = np.isnat(dates).all(axis=1)
    if undated.any():
        dates = dates.copy()
        dates[undated, 0] = np.datetime64("2000-01-01")
    return month_window(dates, max_months)


def _dated_rows(mod: Modality, start: np.ndarray) -> Modality:
    """``mod`` with a masked dummy date (the window start) in rows that have no date, which
    :func:`monthly_composites` would refuse."""
    dates = np.asarray(mod.dates, dtype="datetime64[D]")
    undated = np.isnat(dates).all(axis=1)
    if not undated.any():
        return mod
    dates = dates.copy()
    dates[undated, 0] = start[undated].astype("datetime64[D]")
    mask = mod.mask.clone()
    mask[torch.from_numpy(undated)] = False
    return Modality(mod.values, dates, mask, mod.bands, mod.units)


def _ndvi(s2: torch.Tensor) -> torch.Tensor:
    """NDVI ``[B, M, H, W]`` from normalised S2 composites ``[B, M, 10, H, W]``: B8 and B4 are
    mapped back to reflectance x 10000; ``(B8 - B4) / (B8 + B4)``, 0 where the sum is <= 0."""
    s4, d4 = _shift_scale(2 + _B4)
    s8, d8 = _shift_scale(2 + _B8)
    red = s2[:, :, _B4] * d4 + s4
    nir = s2[:, :, _B8] * d8 + s8
    total = nir + red
    return torch.where(total > 0, (nir - red) / torch.where(total > 0, total, 1.0),
                       torch.zeros_like(total))


def _patch_tokens(x: torch.Tensor, valid: torch.Tensor, p: int, min_valid: float
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Token validity ``[B, M, 7, H / p, W / p]`` (at least ``min_valid`` of the patch's pixels
    valid) and ``x`` with each invalid pixel set to the mean of its token's valid pixels, so
    that no masked value reaches the network."""
    b, t, c, h, w = x.shape
    v = valid[:, :, _GROUP_OF_BAND].float()  # [B, M, 13, H, W]
    flat_x = (x * v).reshape(b * t, c, h, w)
    sums = F.avg_pool2d(flat_x, p) * (p * p)
    counts = F.avg_pool2d(v.reshape(b * t, c, h, w), p) * (p * p)
    mean = sums / counts.clamp(min=1.0)
    up = mean.repeat_interleave(p, dim=-2).repeat_interleave(p, dim=-1).view(b, t, c, h, w)
    filled = torch.where(v > 0, x, up)
    g = len(SPACE_TIME_GROUPS)
    frac = F.avg_pool2d(valid.float().reshape(b * t, g, h, w), p).view(b, t, g, h // p, w // p)
    tok_valid = (frac >= min_valid - 1e-9) & (frac > 0)
    return filled, tok_valid


__all__ = ["GalileoNano", "S1_BANDS", "S2_BANDS", "NORM_MEAN", "NORM_STD", "WEIGHTS_SHA256"]
