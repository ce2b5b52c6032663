"""``raw``: the declared bands themselves, the floor every learned encoder must beat.

Pooled mode summarises each band over valid dates and pixels (mean, std, min, max, so the
probe sees the level and the seasonal amplitude); per-date mode returns the spatial mean of
each band at each date, aligned with the input dates, for date-wise tasks.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from ..batch import EOBatch
from ..tasks.base import TaskData
from .base import Embeddings, Encoder, EncoderMeta, ModalityInput

S2_10_BANDS = ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12")
POOLED_STATS = ("mean", "std", "min", "max")


def masked_spatial_mean(values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean over valid pixels of each date: ``[B, T, C, H, W] -> [B, T, C]`` and ``[B, T]`` validity."""
    w = mask.unsqueeze(2).to(values.dtype)  # [B, T, 1, H, W]
    count = w.sum(dim=(-1, -2))  # [B, T, 1]
    per_date = (values * w).sum(dim=(-1, -2)) / count.clamp(min=1.0)
    return per_date, count.squeeze(-1) > 0


def masked_time_stats(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean, std, min, max over valid dates: ``[B, T, C] -> [B, 4C]`` (zeros where none valid)."""
    w = valid.unsqueeze(-1).to(x.dtype)
    n = w.sum(dim=1).clamp(min=1.0)
    mean = (x * w).sum(dim=1) / n
    var = (((x - mean.unsqueeze(1)) ** 2) * w).sum(dim=1) / n
    big = torch.finfo(x.dtype).max
    xmin = torch.where(valid.unsqueeze(-1), x, torch.full_like(x, big)).amin(dim=1)
    xmax = torch.where(valid.unsqueeze(-1), x, torch.full_like(x, -big)).amax(dim=1)
    anyv = valid.any(dim=1, keepdim=True)
    xmin = torch.where(anyv, xmin, torch.zeros_like(xmin))
    xmax = torch.where(anyv, xmax, torch.zeros_like(xmax))
    return torch.cat([mean, var.sqrt(), xmin, xmax], dim=-1)


class RawEncoder(Encoder):
    """Options: ``modality`` (default ``s2``), ``bands`` (default the 10 S2 bands at 10/20 m),
    ``units`` (default ``reflectance``), ``pooling`` (``stats`` or ``per_date``),
    ``auto`` (default True: adapt to the task, see :meth:`adapt_to`)."""

    def __init__(self, *, device: str | torch.device = "cpu", modality: str = "s2",
                 bands: tuple[str, ...] | list[str] = S2_10_BANDS, units: str = "reflectance",
                 pooling: Literal["stats", "per_date"] | None = None, auto: bool = True,
                 **options: Any) -> None:
        self._pooling_given = pooling is not None
        pooling = pooling or "stats"
        if pooling not in ("stats", "per_date"):
            from ..errors import UsageError
            raise UsageError(f"raw encoder: pooling must be 'stats' or 'per_date', got {pooling!r}")
        super().__init__(device=device, modality=modality, bands=list(bands), units=units,
                         pooling=pooling, auto=bool(auto), **options)
        self._meta = EncoderMeta(
            name="raw", version="1.0",
            description="Declared bands as features: per-band mean/std/min/max over valid "
                        "dates and pixels (pooled) or per-date spatial means.",
            licence="Apache-2.0", citation="releo-bench baseline (no publication)",
            modalities={modality: ModalityInput(bands=tuple(bands), units=units)},
            temporal_mode="series",
            output="per_date" if pooling == "per_date" else "pooled",
            embedding_shape=(len(bands),) if pooling == "per_date" else (len(POOLED_STATS) * len(bands),),
        )

    @property
    def meta(self) -> EncoderMeta:
        return self._meta

    def adapt_to(self, data: TaskData) -> "RawEncoder":
        """With ``auto``: keep the 10 S2 bands in reflectance when the task has them (the
        comparable baseline across S2 tasks), else take every band of the task's modality
        (``s2`` if present, else the first) in the units the task declares them in; and,
        unless ``pooling`` was given, use per-date features when the task's target refers to a
        date (a pooled summary cannot say which date is asked about)."""
        if not self.options["auto"]:
            return self
        from .adapt import canonical_band

        batch = data.batch
        name = self.options["modality"] if self.options["modality"] in batch.modalities else \
            next(iter(batch.modalities))
        mod = batch[name]
        have = {canonical_band(b) for b in mod.bands}
        pooling = self.options["pooling"] if self._pooling_given or data.target_time is None \
            else "per_date"
        opts = {k: v for k, v in self.options.items()
                if k not in ("modality", "bands", "units", "pooling")}
        if name == self.options["modality"] and {canonical_band(b) for b in self.options["bands"]} <= have:
            if pooling == self.options["pooling"]:
                return self
            return RawEncoder(device=self.device, modality=name, bands=self.options["bands"],
                              units=self.options["units"], pooling=pooling, **opts)
        units = mod.units if isinstance(mod.units, str) else tuple(mod.units)
        if not isinstance(units, str) and len(set(units)) == 1:
            units = units[0]
        return RawEncoder(device=self.device, modality=name, bands=tuple(mod.bands), units=units,
                          pooling=pooling, **opts)

    def encode(self, batch: EOBatch) -> Embeddings:
        name = self.options["modality"]
        mod = batch[name]
        per_date, valid = masked_spatial_mean(mod.values, mod.mask)
        if self.options["pooling"] == "per_date":
            return Embeddings(per_date, valid, name)
        return Embeddings(masked_time_stats(per_date, valid))
