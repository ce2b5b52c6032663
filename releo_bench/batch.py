"""The EO batch: what a task hands to an encoder.

Irregular, unaligned time series are the normal case. Each modality of a batch carries its
own values ``[B, T, C, H, W]`` (``H = W = 1`` for pixels), real calendar dates per sample
(``numpy.datetime64[D]``, ``NaT`` on padded steps), a validity mask ``[B, T, H, W]`` (False
for clouds and padding) and the name and unit of each band. Nothing is resampled to a fixed
length here: an encoder that needs that declares it and the harness does it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

import numpy as np
import torch

from .errors import DataError

# Modalities the project knows by name. Others are allowed (a plug-in may bring its own);
# these just document the convention.
KNOWN_MODALITIES = ("s2", "s1_asc", "s1_desc", "s1", "angles", "dem", "meteo")


@dataclass(frozen=True)
class Modality:
    """One sensor stream of a batch.

    values: float tensor ``[B, T, C, H, W]``.
    dates: ``datetime64[D]`` array ``[B, T]``; ``NaT`` where a sample has fewer dates.
    mask: bool tensor ``[B, T, H, W]``, True where the observation is valid.
    bands: band names in the order of axis C.
    units: one unit string per band (see :mod:`releo_bench.units`).
    """

    values: torch.Tensor
    dates: np.ndarray
    mask: torch.Tensor
    bands: tuple[str, ...]
    units: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "bands", tuple(self.bands))
        units = (self.units,) * len(self.bands) if isinstance(self.units, str) else tuple(self.units)
        object.__setattr__(self, "units", units)
        self.validate()

    # -- checks -------------------------------------------------------------------------
    def validate(self, name: str = "modality") -> None:
        v, d, m = self.values, self.dates, self.mask
        if not isinstance(v, torch.Tensor) or v.ndim != 5:
            raise DataError(f"{name}: values must be a tensor [B, T, C, H, W], got "
                            f"{type(v).__name__} with shape {tuple(getattr(v, 'shape', ()))}")
        if not v.is_floating_point():
            raise DataError(f"{name}: values must be floating point, got {v.dtype}")
        b, t, c, h, w = v.shape
        if len(self.bands) != c:
            raise DataError(f"{name}: {c} channels in values but {len(self.bands)} band names "
                            f"{self.bands}")
        if len(self.units) != c:
            raise DataError(f"{name}: {c} channels but {len(self.units)} units {self.units}")
        if len(set(self.bands)) != c:
            raise DataError(f"{name}: duplicate band names in {self.bands}")
        if not isinstance(d, np.ndarray) or d.shape != (b, t) or not np.issubdtype(d.dtype, np.datetime64):
            raise DataError(f"{name}: dates must be a datetime64 array of shape {(b, t)}, got "
                            f"{getattr(d, 'dtype', type(d).__name__)} {getattr(d, 'shape', '')}")
        if not isinstance(m, torch.Tensor) or m.dtype != torch.bool or tuple(m.shape) != (b, t, h, w):
            raise DataError(f"{name}: mask must be a bool tensor of shape {(b, t, h, w)}, got "
                            f"{getattr(m, 'dtype', type(m).__name__)} {tuple(getattr(m, 'shape', ()))}")
        nat = np.isnat(d)
        if (m.any(dim=(2, 3)).cpu().numpy() & nat).any():
            raise DataError(f"{name}: some observations are marked valid but have no date (NaT)")
        dd = d.astype("datetime64[D]").astype("int64").astype(float)
        dd[nat] = np.nan
        with np.errstate(invalid="ignore"):
            steps = np.diff(dd, axis=1)
        if (steps[~np.isnan(steps)] < 0).any():
            raise DataError(f"{name}: dates must be sorted in time within each sample")

    # -- views --------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int, int, int]:
        return tuple(self.values.shape)  # type: ignore[return-value]

    @property
    def time_valid(self) -> torch.Tensor:
        """``[B, T]`` True where the step holds a real date (not padding)."""
        return torch.from_numpy(~np.isnat(self.dates)).to(self.mask.device)

    def day_numbers(self, reference: str | np.datetime64 = "1970-01-01") -> torch.Tensor:
        """Days since ``reference`` as float ``[B, T]`` (NaN on padding), for date encodings."""
        ref = np.datetime64(reference, "D")
        d = self.dates.astype("datetime64[D]")
        out = (d - ref).astype("int64").astype(np.float64)
        out[np.isnat(d)] = np.nan
        return torch.from_numpy(out)

    def day_of_year(self) -> torch.Tensor:
        """Day of year (1..366) as float ``[B, T]``, NaN on padding."""
        d = self.dates.astype("datetime64[D]")
        years = d.astype("datetime64[Y]")
        out = (d - years).astype("int64").astype(np.float64) + 1.0
        out[np.isnat(d)] = np.nan
        return torch.from_numpy(out)

    def index(self, idx: slice | Sequence[int] | np.ndarray) -> "Modality":
        """Select samples along the batch axis."""
        if isinstance(idx, slice):
            t_idx: slice | torch.Tensor = idx
        else:
            t_idx = torch.as_tensor(np.asarray(idx), dtype=torch.long)
        return replace(self, values=self.values[t_idx], dates=self.dates[idx],
                       mask=self.mask[t_idx])

    def to(self, device: str | torch.device) -> "Modality":
        return replace(self, values=self.values.to(device), mask=self.mask.to(device))


@dataclass(frozen=True)
class EOBatch:
    """Per-modality observations of ``B`` samples, plus optional per-sample metadata."""

    modalities: Mapping[str, Modality]
    sample_ids: tuple[str, ...] | None = None
    extras: Mapping[str, np.ndarray] = field(default_factory=dict)  # e.g. angles, coordinates

    def __post_init__(self) -> None:
        if not self.modalities:
            raise DataError("an EOBatch needs at least one modality")
        sizes = {k: m.values.shape[0] for k, m in self.modalities.items()}
        if len(set(sizes.values())) != 1:
            raise DataError(f"modalities disagree on the batch size: {sizes}")
        n = next(iter(sizes.values()))
        if self.sample_ids is not None and len(self.sample_ids) != n:
            raise DataError(f"{len(self.sample_ids)} sample ids for a batch of {n}")
        for k, v in self.extras.items():
            if len(v) != n:
                raise DataError(f"extra field {k!r} has {len(v)} rows for a batch of {n}")

    def __len__(self) -> int:
        return next(iter(self.modalities.values())).values.shape[0]

    def __getitem__(self, name: str) -> Modality:
        try:
            return self.modalities[name]
        except KeyError:
            raise DataError(f"modality {name!r} is not in this batch (it has "
                            f"{sorted(self.modalities)})") from None

    def index(self, idx: slice | Sequence[int] | np.ndarray) -> "EOBatch":
        ids = None
        if self.sample_ids is not None:
            ids = tuple(np.asarray(self.sample_ids, dtype=object)[idx].tolist())
        return EOBatch({k: m.index(idx) for k, m in self.modalities.items()}, ids,
                       {k: np.asarray(v)[idx] for k, v in self.extras.items()})

    def to(self, device: str | torch.device) -> "EOBatch":
        return EOBatch({k: m.to(device) for k, m in self.modalities.items()}, self.sample_ids,
                       self.extras)


def pad_series(series: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]
               ) -> tuple[torch.Tensor, np.ndarray, torch.Tensor]:
    """Stack per-sample series of different lengths into padded ``values, dates, mask``.

    Each item is ``(values [T_i, C, H, W], dates [T_i] datetime64, mask [T_i, H, W] bool)``.
    Padded steps get value 0, date NaT and mask False.
    """
    if not series:
        raise DataError("cannot pad an empty list of series")
    t_max = max(len(s[1]) for s in series)
    _, c, h, w = np.asarray(series[0][0]).shape
    values = np.zeros((len(series), t_max, c, h, w), dtype=np.float32)
    dates = np.full((len(series), t_max), np.datetime64("NaT"), dtype="datetime64[D]")
    mask = np.zeros((len(series), t_max, h, w), dtype=bool)
    for i, (v, d, m) in enumerate(series):
        n = len(d)
        values[i, :n], dates[i, :n], mask[i, :n] = v, np.asarray(d, dtype="datetime64[D]"), m
    return torch.from_numpy(values), dates, torch.from_numpy(mask)
