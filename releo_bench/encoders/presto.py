"""``presto``: Presto (Tseng et al. 2023), a lightweight pixel time-series transformer.

The network (:mod:`releo_bench.encoders.presto_net`) loads the published state dict
``data/default_model.pt`` of github nasaharvest/presto (MIT) strictly. Presto was pretrained on
12 **monthly composites** of Sentinel-1, Sentinel-2 **L1C** (top of atmosphere), ERA5 and SRTM
per pixel; this module turns a task's irregular series into that input (see
``docs/models/presto.md``):

* window: per sample, the calendar months from its first to its last dated S2 / S1
  observation, the last ``max_months`` (default 12, at most 24) when longer; a batch is padded
  with fully masked months, which is the same as a shorter series (masked tokens are ignored);
* S2 and S1: per month the median of the valid observations (:func:`monthly_composites`);
  ERA5 (``meteo``): the mean (the inputs are monthly values, as in the Presto evaluation
  data); SRTM (``dem``): the mean of the valid observations, one token for the series;
  NDVI recomputed from the B8 / B4 composites;
* a channel group is masked in months without a valid observation and everywhere when its
  modality is absent; Dynamic World is always masked (class 9); a batch may mix masks;
* location: the batch's ``lat`` / ``lon`` extras (degrees) when the task gives them, else the
  ``default_location`` option, else no location token (the model's tokens are all optional
  to its attention; no location is invented);
* patches: each sample is split into a ``grid x grid`` raster of blocks (default 1: the whole
  patch), each block's valid pixels averaged per date, each block encoded, and the block
  embeddings averaged (blocks with S1 / S2 data only);
* ``steps='dates'`` (option) skips compositing for data that already are composites (Presto's
  evaluation arrays, WorldCereal extractions): one step per date, modalities sharing dates.

Output: "pooled", 128 = LayerNorm of the mean of the kept tokens' outputs (upstream's
``eval_task`` output).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..batch import EOBatch, Modality
from ..errors import BandError, DataError, UsageError
from ..weights import WeightsFile
from .base import Embeddings, EncoderMeta, ModalityInput, PretrainedEncoder, WeightsSource
from .composite import month_window, monthly_composites
from .presto_net import CHANNELS, DW_MISSING, MAX_STEPS, PrestoNet, ndvi

NAME = "presto"
COMMIT = "5afde40850d73bfaed26078fc3bda621a55c311d"
WEIGHTS_SHA256 = "559c9d76f525bdf2dd3774da8b1e7f1510769b73baacac12e9e4d8d5c67fbe65"
WEIGHTS_URL = f"https://raw.githubusercontent.com/nasaharvest/presto/{COMMIT}/data/default_model.pt"
EMBED_DIM = 128
S2_BANDS = ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12")
S1_BANDS = ("VV", "VH")
METEO_BANDS = ("temperature_2m", "precipitation")
DEM_BANDS = ("elevation", "slope")
PRIMARY = ("s2", "s1")
_CITATION = ("Tseng G., Cartuyvels R., Zvonkov I., Purohit M., Rolnick D., Kerner H. (2023). "
             "Lightweight, Pre-trained Transformers for Remote Sensing Timeseries. "
             "arXiv:2304.14065")

# Presto's normalisation (x + add) / div, written as the harness's (x - mean) / std in the
# units declared below. Precipitation: Presto divides metres by 0.03; the data are in mm, so
# mm / 30 (the unit conversion is folded into the divisor).
MODALITIES = {
    "s2": ModalityInput(bands=S2_BANDS, units="reflectance", required=False),
    "s1": ModalityInput(bands=S1_BANDS, units="dB", mean=(-25.0, -25.0), std=(25.0, 25.0),
                        required=False),
    "meteo": ModalityInput(bands=METEO_BANDS, units=("K", "mm"), mean=(272.15, 0.0),
                           std=(35.0, 30.0), required=False),
    "dem": ModalityInput(bands=DEM_BANDS, units=("m", "degree"), mean=(0.0, 0.0),
                         std=(2000.0, 50.0), required=False),
}
# where each modality's bands go among Presto's 17 channels
_SLOTS = {"s1": slice(0, 2), "s2": slice(2, 12), "meteo": slice(12, 14), "dem": slice(14, 16)}
_B4, _B8, _NDVI = CHANNELS.index("B4"), CHANNELS.index("B8"), CHANNELS.index("NDVI")


def block_means(mod: Modality, grid: int) -> Modality:
    """``[B, T, C, H, W]`` -> ``[B * grid**2, T, C, 1, 1]``: per date the mean of the valid
    pixels of each block of a ``grid x grid`` split (adaptive pooling: blocks may overlap by a
    pixel when the side is not a multiple); a block is valid where any of its pixels is."""
    b, t, c, h, w = mod.values.shape
    if grid == 1 and h == w == 1:
        return mod
    valid = mod.mask.to(mod.values.dtype)
    v = torch.where(mod.mask[:, :, None], mod.values, torch.zeros_like(mod.values))
    num = F.adaptive_avg_pool2d((v * valid[:, :, None]).reshape(b * t, c, h, w), grid)
    den = F.adaptive_avg_pool2d(valid.reshape(b * t, 1, h, w), grid)
    mean = num / den.clamp(min=1e-12)
    k = grid * grid
    values = mean.reshape(b, t, c, k).permute(0, 3, 1, 2).reshape(b * k, t, c, 1, 1)
    mask = (den > 0).reshape(b, t, k).permute(0, 2, 1).reshape(b * k, t, 1, 1)
    return Modality(values.contiguous(), np.repeat(mod.dates, k, axis=0), mask.contiguous(),
                    mod.bands, mod.units)


def composite(mod: Modality, first: np.ndarray, n: int, how: str
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Monthly composites ``[B, n, C]`` and validity ``[B, n]`` of a pixel modality, months
    from ``first`` (months since 1970-01); samples without any dated step are all invalid."""
    b, _, c = mod.values.shape[:3]
    values = torch.zeros(b, n, c, dtype=torch.float32)
    valid = torch.zeros(b, n, dtype=torch.bool)
    dated = np.flatnonzero(~np.isnat(mod.dates).all(axis=1))
    if len(dated):
        comp = monthly_composites(mod.index(dated), n, how=how,  # type: ignore[arg-type]
                                  start=first[dated].astype("datetime64[M]"))
        idx = torch.as_tensor(dated)
        values[idx] = comp.values[..., 0, 0].float().cpu()
        valid[idx] = comp.valid[..., 0, 0].cpu()
    return values, valid


def static_mean(mod: Modality) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean over the valid steps ``[B, C]`` of a pixel modality and whether there was one."""
    m = mod.mask[:, :, 0, 0].cpu()
    v = torch.where(m[:, :, None], mod.values[..., 0, 0].float().cpu(), torch.zeros(()))
    cnt = m.sum(dim=1, keepdim=True)
    return v.sum(dim=1) / cnt.clamp(min=1), cnt[:, 0] > 0


Steps = dict[str, tuple[torch.Tensor, torch.Tensor]]


def _monthly_steps(mods: dict[str, Modality], present: list[str], max_months: int
                   ) -> tuple[Steps, torch.Tensor]:
    """Calendar-month composites of the dynamic modalities over each sample's S2 / S1 window
    (the last ``max_months`` months from its first to its last dated observation); months
    after a sample's window are masked. Returns ``{name: (values [R, M, C], valid [R, M])}``
    and the calendar month (0-11) of each step ``[R, M]``."""
    dates = np.concatenate([mods[k].dates for k in present], axis=1)
    try:
        first, n = month_window(dates, max_months)
    except ValueError as exc:
        raise DataError(f"encoder {NAME!r}: {exc} in modalities {present}") from None
    month_no = np.asarray(dates, dtype="datetime64[M]").astype("int64")
    last = np.where(np.isnat(dates), np.iinfo(np.int64).min, month_no).max(axis=1)
    in_window = torch.from_numpy(np.arange(n)[None, :] < (last - first + 1)[:, None])
    out: Steps = {}
    for name in ("s2", "s1", "meteo"):
        if name in mods:
            vals, ok = composite(mods[name], first, n, "mean" if name == "meteo" else "median")
            out[name] = (vals, ok & in_window)
    return out, torch.from_numpy((first[:, None] + np.arange(n)[None, :]) % 12).long()


def _date_steps(mods: dict[str, Modality], present: list[str], max_months: int
                ) -> tuple[Steps, torch.Tensor]:
    """One step per date, for data that already are composites (e.g. Presto's own evaluation
    arrays, WorldCereal's monthly extractions): the dynamic modalities must share their dates;
    the last ``max_months`` steps are kept."""
    ref = mods[present[0]].dates
    for name in ("s2", "s1", "meteo"):
        if name in mods and not np.array_equal(mods[name].dates, ref):
            raise DataError(f"encoder {NAME!r} with steps='dates' needs the same dates in every "
                            f"time-series modality; {name!r} differs from {present[0]!r} "
                            f"(use steps='monthly' to composite irregular series)")
    dated = ~np.isnat(ref)
    after = np.cumsum(dated[:, ::-1], axis=1)[:, ::-1]  # dated steps from here to the end
    sel = dated & (after <= max_months)  # each sample's last max_months dated steps
    n = max(1, int(sel.sum(axis=1).max()))
    order = np.argsort(~sel, axis=1, kind="stable")[:, :n]  # selected steps first, in order
    taken = np.take_along_axis(sel, order, axis=1)
    idx = torch.from_numpy(order)
    out: Steps = {}
    for name in ("s2", "s1", "meteo"):
        if name in mods:
            m = mods[name]
            vals = torch.gather(m.values[..., 0, 0].float(), 1,
                                idx[..., None].expand(-1, -1, m.values.shape[2]))
            ok = torch.gather(m.mask[..., 0, 0], 1, idx) & torch.from_numpy(taken)
            out[name] = (vals, ok)
    month = np.asarray(np.take_along_axis(ref, order, axis=1), dtype="datetime64[M]")
    month = np.where(taken, month.astype("int64") % 12, 0)
    return out, torch.from_numpy(month).long()


class Presto(PretrainedEncoder):
    """Options: ``weights`` (path of ``default_model.pt`` or a folder holding it),
    ``max_months`` (composite months, 1-24, default 12), ``grid`` (blocks per patch side, default
    1 = the patch mean), ``use_location`` (use the task's lat / lon, default True),
    ``default_location`` ([lat, lon] for samples without one; default none: no location
    token), ``chunk`` (series per forward pass, default 1024; does not change the output)."""

    WEIGHTS: tuple[WeightsFile, ...] = (
        WeightsFile(model=NAME, folder="presto", filename="default_model.pt", licence="MIT",
                    sha256=WEIGHTS_SHA256, url=WEIGHTS_URL),)

    def __init__(self, *, device: str | torch.device = "cpu", weights: str | None = None,
                 max_months: int = 12, grid: int = 1, use_location: bool = True,
                 default_location: Sequence[float] | None = None, steps: str = "monthly",
                 chunk: int = 1024, **options: Any) -> None:
        if options:
            raise UsageError(f"{NAME}: unknown options {sorted(options)} (accepted: weights, "
                             f"max_months, grid, use_location, default_location, steps, chunk)")
        if steps not in ("monthly", "dates"):
            raise UsageError(f"{NAME}: steps must be 'monthly' or 'dates', got {steps!r}")
        if not 1 <= int(max_months) <= MAX_STEPS:
            raise UsageError(f"{NAME}: max_months must be in 1..{MAX_STEPS}, got {max_months}")
        if int(grid) < 1:
            raise UsageError(f"{NAME}: grid must be >= 1, got {grid}")
        loc = None
        if default_location is not None:
            loc = [float(v) for v in default_location]
            if len(loc) != 2 or not (-90 <= loc[0] <= 90 and -180 <= loc[1] <= 360):
                raise UsageError(f"{NAME}: default_location must be [lat, lon] in degrees, got "
                                 f"{default_location}")
        super().__init__(device=device, weights=weights, max_months=int(max_months),
                         grid=int(grid), use_location=bool(use_location), default_location=loc,
                         steps=steps)
        self.chunk = max(1, int(chunk))
        self._net: PrestoNet | None = None
        self._meta = EncoderMeta(
            name=NAME, version=f"nasaharvest/presto-{COMMIT[:8]}",
            description="Presto: per pixel, monthly composites (median) of S2 (10 bands) and S1 "
                        "(VV, VH), ERA5 T2m and precipitation, SRTM elevation and slope, NDVI "
                        "-> channel-group tokens with month / group / step codes and a location "
                        "token -> 2-layer transformer; 128-d mean of the kept tokens. Pretrained "
                        "on L1C (top-of-atmosphere) composites: L2A inputs are a domain shift. "
                        f"Up to {int(max_months)} months; s2 or s1 needed, the rest optional",
            licence="MIT", citation=_CITATION, modalities=MODALITIES,
            temporal_mode="monthly", output="pooled", embedding_shape=(EMBED_DIM,),
            weights=WeightsSource(kind="url", uri=WEIGHTS_URL, revision=COMMIT,
                                  filename="default_model.pt", sha256=WEIGHTS_SHA256,
                                  licence="MIT"),
        )

    @property
    def meta(self) -> EncoderMeta:
        return self._meta

    @property
    def net(self) -> PrestoNet:
        """The network (encoder and decoder), read from the verified weights on first use."""
        if self._net is None:
            self._net = PrestoNet.from_file(self.weights_path()).to(self.device)
        return self._net

    # -- inputs -----------------------------------------------------------------------------
    def _latlons(self, batch: EOBatch, n: int) -> torch.Tensor | None:
        """``[B, 2]`` degrees, NaN rows where unknown; None when no sample has a location."""
        out = np.full((n, 2), np.nan)
        ex = batch.extras
        if self.options["use_location"] and "lat" in ex and "lon" in ex:
            out[:, 0] = np.asarray(ex["lat"], dtype=np.float64)
            out[:, 1] = np.asarray(ex["lon"], dtype=np.float64)
        loc = self.options["default_location"]
        if loc is not None:
            unknown = ~np.isfinite(out).all(axis=1)
            out[unknown] = loc
        if not np.isfinite(out).all(axis=1).any():
            return None
        return torch.from_numpy(out).float()

    def inputs(self, batch: EOBatch) -> dict[str, Any]:
        """Presto's inputs for a prepared batch: ``x``, ``missing`` ``[B * grid**2, M, 17]``,
        ``dynamic_world``, ``months`` ``[B * grid**2, M]``, ``latlons`` and ``blocks``."""
        batch = batch.to("cpu")  # compositing runs on the CPU
        present = [m for m in PRIMARY if m in batch.modalities]
        if not present:
            raise BandError(f"encoder {NAME!r} needs an 's2' or an 's1' modality (or both); the "
                            f"data has {sorted(batch.modalities)}")
        h, w = batch[present[0]].values.shape[-2:]
        grid = min(self.options["grid"], h, w)
        mods = {k: block_means(batch[k], grid) for k in _SLOTS if k in batch.modalities}
        build = _monthly_steps if self.options["steps"] == "monthly" else _date_steps
        steps, months = build(mods, present, self.options["max_months"])
        rows, n = months.shape
        x = torch.zeros(rows, n, len(CHANNELS))
        missing = torch.ones(rows, n, len(CHANNELS), dtype=torch.bool)
        for name, (vals, ok) in steps.items():
            x[:, :, _SLOTS[name]] = vals
            missing[:, :, _SLOTS[name]] = ~ok[..., None]
        if "dem" in mods:
            vals, ok = static_mean(mods["dem"])
            x[:, :, _SLOTS["dem"]] = vals[:, None]
            missing[:, :, _SLOTS["dem"]] = ~ok[:, None, None]
        x[:, :, _NDVI] = ndvi(x[:, :, _B8], x[:, :, _B4])
        missing[:, :, _NDVI] = missing[:, :, _B8]
        x = torch.where(missing, torch.zeros_like(x), x)
        latlons = self._latlons(batch, len(batch))
        if latlons is not None:
            latlons = latlons.repeat_interleave(grid * grid, dim=0)
        return {"x": x, "missing": missing, "months": months, "latlons": latlons,
                "dynamic_world": torch.full((rows, n), DW_MISSING, dtype=torch.long),
                "blocks": grid * grid}

    # -- encoding ---------------------------------------------------------------------------
    def encode(self, batch: EOBatch) -> Embeddings:
        inp = self.inputs(batch)
        net = self.net.encoder
        dev = self.device
        rows = inp["x"].shape[0]
        outs = []
        for i in range(0, rows, self.chunk):
            sl = slice(i, i + self.chunk)
            ll = inp["latlons"]
            outs.append(net(inp["x"][sl].to(dev), inp["missing"][sl].to(dev),
                            inp["dynamic_world"][sl].to(dev), inp["months"][sl].to(dev),
                            None if ll is None else ll[sl].to(dev)).cpu())
        feats = torch.cat(outs).view(len(batch), inp["blocks"], EMBED_DIM)
        # average the blocks that hold S1 / S2 data (all blocks when none does)
        eo = ~inp["missing"][:, :, :_SLOTS["s2"].stop].all(dim=(1, 2))
        wgt = eo.view(len(batch), inp["blocks"]).float()
        wgt = torch.where(wgt.sum(dim=1, keepdim=True) > 0, wgt, torch.ones_like(wgt))
        pooled = (feats * wgt[..., None]).sum(dim=1) / wgt.sum(dim=1, keepdim=True)
        return Embeddings(pooled.to(dev))


__all__ = ["Presto", "block_means", "composite", "static_mean", "S2_BANDS", "S1_BANDS",
           "METEO_BANDS", "DEM_BANDS"]
