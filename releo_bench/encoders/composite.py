"""Monthly composites of irregular, cloud-masked series, for encoders pretrained on them.

Presto and Galileo were pretrained on monthly composites (one step per calendar month). Real
tasks give irregular dates with clouds; this module turns a :class:`Modality` into calendar-
month steps: per pixel, band and month the median (or mean) of the *valid* observations of
that month (the median of an even count averages the two middle values). A month without a
valid observation is marked invalid (the encoder masks it); its values are 0.

The window is per sample: from the month of its first dated observation to the month of its
last, at most ``max_months`` months (the **last** ``max_months`` when the series is longer, so
a target at the end of a season keeps the months next to it). Samples with shorter windows are
padded at the end with invalid months so that the batch has one length.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from ..batch import Modality


@dataclass(frozen=True)
class MonthlyComposite:
    """values ``[B, M, C, H, W]`` (0 where invalid); valid ``[B, M, H, W]``; start ``[B]``
    ``datetime64[M]`` first month of each sample; months ``[B, M]`` calendar month 0-11 of each
    step; in_window ``[B, M]`` True for steps inside the sample's window (False on padding)."""

    values: torch.Tensor
    valid: torch.Tensor
    start: np.ndarray
    months: torch.Tensor
    in_window: torch.Tensor


def _month_index(dates: np.ndarray) -> np.ndarray:
    """``datetime64`` -> months since 1970-01 (int64), -1 for NaT."""
    d = np.asarray(dates, dtype="datetime64[M]")
    out = d.astype("int64")
    out[np.isnat(d)] = -1
    return out


def month_window(dates: np.ndarray, max_months: int,
                 start: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """First month (months since 1970-01, ``[B]``) of each sample's window and the batch length."""
    m = _month_index(dates)
    dated = m >= 0
    if start is not None:
        first = np.asarray(start, dtype="datetime64[M]").astype("int64")
        return first, int(max_months)
    if not dated.any(axis=1).all():
        first_bad = int(np.flatnonzero(~dated.any(axis=1))[0])
        raise ValueError(f"sample {first_bad} has no dated observation to composite")
    last = np.where(dated, m, np.iinfo(np.int64).min).max(axis=1)
    first = np.where(dated, m, np.iinfo(np.int64).max).min(axis=1)
    first = np.maximum(first, last - max_months + 1)
    span = last - first + 1
    return first, int(min(max_months, span.max()))


def monthly_composites(mod: Modality, max_months: int = 12, *,
                       how: Literal["median", "mean"] = "median",
                       start: np.ndarray | None = None) -> MonthlyComposite:
    """Composite ``mod`` into calendar months (see the module docstring).

    ``start`` (``[B]`` dates) fixes each sample's first month and the length to ``max_months``
    (for models that want exactly, e.g., 12 steps from a known month)."""
    b, t, c, h, w = mod.values.shape
    first, n = month_window(mod.dates, max_months, start)
    step = _month_index(mod.dates) - first[:, None]  # [B, T], month step of each date
    in_range = (step >= 0) & (step < n) & (_month_index(mod.dates) >= 0)
    values = mod.values.float()
    dev = values.device
    ok = (mod.mask.to(dev) & torch.isfinite(values).all(dim=2)
          & torch.from_numpy(in_range).to(dev)[:, :, None, None])
    out = values.new_zeros(b, n, c, h, w)
    valid = torch.zeros(b, n, h, w, dtype=torch.bool, device=dev)
    step_t = torch.from_numpy(np.where(in_range, step, -1)).to(dev)
    for k in range(n):
        sel = (step_t == k)[:, :, None, None] & ok  # [B, T, H, W]
        cnt = sel.sum(dim=1)  # [B, H, W]
        valid[:, k] = cnt > 0
        if not valid[:, k].any():
            continue
        x = torch.where(sel[:, :, None], values, torch.full_like(values, float("nan")))
        # a true median (the two middle values averaged), not torch.nanmedian's lower one,
        # which for two observations would take each band's minimum and mix two spectra
        agg = torch.nanquantile(x, 0.5, dim=1) if how == "median" else x.nanmean(dim=1)
        out[:, k] = torch.nan_to_num(agg, nan=0.0)
    months = torch.from_numpy((first[:, None] + np.arange(n)[None, :]) % 12).to(dev)
    last = _month_index(mod.dates).max(axis=1)
    in_window = torch.from_numpy(np.arange(n)[None, :] < (last - first + 1)[:, None]).to(dev)
    return MonthlyComposite(out, valid, first.astype("datetime64[M]"), months.long(), in_window)


__all__ = ["MonthlyComposite", "monthly_composites", "month_window"]
