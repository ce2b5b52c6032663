"""The simulated benchmark tasks: embedded, generated in memory from fixed seeds, no download.

All five tasks read the same six simulated scenes (see :mod:`releo_bench.tasks.sim_data` for
the samples, the batch layout and the split design, and ``tasks/<name>/README.md`` for the
task cards):

- ``lai``, ``cab``, ``ccc``: per-pixel retrieval of green LAI (m2/m2), leaf chlorophyll Cab
  (ug/cm2) and canopy chlorophyll content CCC = LAI x Cab / 100 (g/m2) at one clear S2 date of
  the pixel (``target_time``), the same pixels and dates for all three;
- ``crop-phenology``: per-pixel season dates (default start of season, day of year) of the
  LAI double-logistic curve, pixels of bare fields left out; option ``target``;
- ``land-cover``: per-pixel class among the simulator's 7 crop types and natural covers.

Scenes are simulated once per process and shared by the tasks; each task instance assembles
its splits on first ``load`` and keeps them.
"""

from __future__ import annotations

from abc import abstractmethod


import numpy as np
import torch

from ..errors import UsageError
from ..metrics import STANDARD_METRICS
from ..physics.phenology import DoubleLogistic, double_logistic, season_dates
from ..physics.scene import DEFAULT_CLASSES
from .base import LazySplitsTask, TargetSpec, TaskData, TaskMeta
from .sim_data import (SIM_DATASET, SPLIT_DESIGN, Pixels, clear_date_index, make_batch,
                       make_context, split_pixels)

MODALITIES = ("s2", "s1", "angles")
_INPUTS = ("inputs: the pixel's whole 2021 Sentinel-2 L2A series (12 bands, reflectance 0-1, "
           "clouds masked, irregular valid dates), Sentinel-1 VV/VH (dB) on its own dates and "
           "the S2 sun/view angles")


class _SimulatedTask(LazySplitsTask):
    """Common machinery: splits assembled lazily from the simulated scenes, kept per instance."""


# -- per-date retrieval: lai, cab, ccc -------------------------------------------------------

def _retrieval_meta(name: str, what: str, target: TargetSpec) -> TaskMeta:
    return TaskMeta(
        name=name, version=1,
        description=f"{what} of one simulated pixel at one of its clear Sentinel-2 dates "
                    f"(target_time); {_INPUTS}",
        dataset=SIM_DATASET, licence="Apache-2.0",
        split_design=SPLIT_DESIGN + "; one target date per pixel, uniform among its clear S2 "
                                    "dates (same pixels and dates for lai, cab and ccc)",
        target=target, main_score="crps", metrics=STANDARD_METRICS["regression"],
        modalities=MODALITIES)


class _Retrieval(_SimulatedTask):
    """Target = a per-pixel, per-S2-date truth of the scene at the drawn clear date."""

    @abstractmethod
    def _truth(self, pixels: Pixels, date_idx: np.ndarray) -> np.ndarray:
        """The target of each pixel at its drawn date."""

    def _make(self, split: str) -> TaskData:
        parts, targets, times = [], [], []
        for p in split_pixels(split):
            idx = clear_date_index(p)
            keep = idx >= 0
            p, idx = p.select(keep), idx[keep]
            parts.append(p)
            targets.append(self._truth(p, idx))
            times.append(p.scene.s2_dates[idx])
        batch = make_batch(parts, split)
        return TaskData(batch, np.concatenate(targets).astype(np.float64),
                        np.asarray(batch.extras["field"]),
                        np.concatenate(times).astype("datetime64[D]"), make_context(parts))


def _at(grid: torch.Tensor, pixels: Pixels, date_idx: np.ndarray) -> np.ndarray:
    return grid.numpy()[date_idx, pixels.rows, pixels.cols].astype(np.float64)


class SimulatedLAI(_Retrieval):
    """Green leaf area index at a clear S2 date."""

    meta = _retrieval_meta("lai", "Green leaf area index (LAI, m2/m2)",
                           TargetSpec(kind="regression", name="lai", unit="m2/m2",
                                      range=(0.0, 10.0)))

    def _truth(self, pixels: Pixels, date_idx: np.ndarray) -> np.ndarray:
        return _at(pixels.scene.truth_lai, pixels, date_idx)


class SimulatedCab(_Retrieval):
    """Leaf chlorophyll a+b content at a clear S2 date."""

    meta = _retrieval_meta("cab", "Leaf chlorophyll a+b content (Cab, ug/cm2 of leaf)",
                           TargetSpec(kind="regression", name="cab", unit="ug/cm2",
                                      range=(0.0, 100.0)))

    def _truth(self, pixels: Pixels, date_idx: np.ndarray) -> np.ndarray:
        return _at(pixels.scene.truth_cab, pixels, date_idx)


class SimulatedCCC(_Retrieval):
    """Canopy chlorophyll content LAI x Cab, in g/m2 of ground (1 ug/cm2 = 0.01 g/m2)."""

    meta = _retrieval_meta("ccc", "Canopy chlorophyll content (CCC = LAI x Cab, g/m2 of ground)",
                           TargetSpec(kind="regression", name="ccc", unit="g/m2",
                                      range=(0.0, 10.0)))

    def _truth(self, pixels: Pixels, date_idx: np.ndarray) -> np.ndarray:
        # the scene's truth_ccc is LAI x Cab in ug/cm2 of ground; / 100 gives g/m2
        return _at(pixels.scene.truth_ccc, pixels, date_idx) / 100.0


# -- crop phenology ------------------------------------------------------------------------

PHENOLOGY_TARGETS: dict[str, tuple[str, str, tuple[float, float]]] = {
    "sos": ("start of season: day of year where LAI first crosses vmin + 0.5 (vmax - vmin)",
            "day of year", (0.0, 366.0)),
    "eos": ("end of season: day of year where LAI falls back below vmin + 0.5 (vmax - vmin)",
            "day of year", (0.0, 366.0)),
    "peak": ("day of year of the LAI maximum", "day of year", (0.0, 366.0)),
    "length": ("season length eos - sos", "days", (0.0, 366.0)),
    "peak_lai": ("LAI at the seasonal maximum", "m2/m2", (0.0, 10.0)),
}
PHENOLOGY_EXCLUDED = ("bare_soil",)


def _phenology_meta(target: str) -> TaskMeta:
    what, unit, rng = PHENOLOGY_TARGETS[target]
    return TaskMeta(
        name="crop-phenology", version=1,
        description=f"Per-pixel land-surface phenology of simulated fields, target {target!r}: "
                    f"{what}, from the pixel's irregular cloudy 2021 series; {_INPUTS}. Bare-soil "
                    "fields (no visible season) are left out. Option target = "
                    f"{'|'.join(PHENOLOGY_TARGETS)}",
        dataset=SIM_DATASET, licence="Apache-2.0",
        split_design=SPLIT_DESIGN + "; pixels of bare_soil fields left out",
        target=TargetSpec(kind="regression", name=target, unit=unit, range=rng),
        main_score="crps", metrics=STANDARD_METRICS["regression"], modalities=MODALITIES)


def phenology_truth(pixels: Pixels, target: str) -> np.ndarray:
    """Season metric ``target`` of each pixel's true LAI double-logistic curve (NaN where the
    curve never reaches its half level)."""
    ph = pixels.scene.phenology
    r, c = pixels.rows, pixels.cols
    params = DoubleLogistic(**{k: torch.as_tensor(ph[k][r, c], dtype=torch.float64)
                               for k in ("vmin", "vmax", "sos", "eos", "rate_up", "rate_down")})
    if target in ("sos", "eos", "length"):
        with torch.no_grad():
            sos, eos = season_dates(params, 0.5)
        value = {"sos": sos, "eos": eos, "length": eos - sos}[target]
        return value.numpy().astype(np.float64)
    # the maximum lies between the two logistic midpoints: search a 2001-point grid there
    lo = torch.minimum(params.sos, params.eos)
    hi = torch.maximum(params.sos, params.eos)
    t = lo[None] + (hi - lo)[None] * torch.linspace(0.0, 1.0, 2001, dtype=torch.float64)[:, None]
    v = double_logistic(t, params)
    best = v.argmax(dim=0)
    cols = torch.arange(v.shape[1])
    out = t[best, cols] if target == "peak" else v[best, cols]
    return out.numpy().astype(np.float64)


class CropPhenology(_SimulatedTask):
    """Per-pixel season dates from the S2 (and S1) series. ``target``: one of
    :data:`PHENOLOGY_TARGETS` (default ``sos``)."""

    meta = _phenology_meta("sos")

    def __init__(self, target: str = "sos") -> None:
        super().__init__()
        if target not in PHENOLOGY_TARGETS:
            raise UsageError(f"task 'crop-phenology': unknown target {target!r}; expected one of "
                             f"{', '.join(PHENOLOGY_TARGETS)}")
        self.target = target
        if target != "sos":
            self.meta = _phenology_meta(target)

    def _make(self, split: str) -> TaskData:
        excluded = [DEFAULT_CLASSES.index(c) for c in PHENOLOGY_EXCLUDED]
        parts, targets = [], []
        for p in split_pixels(split):
            p = p.select(~np.isin(p.scene.class_map[p.rows, p.cols], excluded))
            y = phenology_truth(p, self.target)
            keep = np.isfinite(y)
            parts.append(p.select(keep))
            targets.append(y[keep])
        batch = make_batch(parts, split)
        return TaskData(batch, np.concatenate(targets), np.asarray(batch.extras["field"]),
                        context=make_context(parts))


# -- land cover ----------------------------------------------------------------------------

class LandCover(_SimulatedTask):
    """Per-pixel class of the simulated scenes (crop types and natural covers)."""

    meta = TaskMeta(
        name="land-cover", version=1,
        description="Per-pixel land-cover class of simulated pixels (4 crop types, grassland, "
                    f"deciduous forest, bare soil: {', '.join(DEFAULT_CLASSES)}); {_INPUTS}",
        dataset=SIM_DATASET, licence="Apache-2.0", split_design=SPLIT_DESIGN,
        target=TargetSpec(kind="classification", name="land_cover",
                          class_names=tuple(DEFAULT_CLASSES)),
        main_score="macro_f1", metrics=STANDARD_METRICS["classification"], modalities=MODALITIES)

    def _make(self, split: str) -> TaskData:
        parts = split_pixels(split)
        y = np.concatenate([p.scene.class_map[p.rows, p.cols] for p in parts]).astype(np.int64)
        batch = make_batch(parts, split)
        return TaskData(batch, y, np.asarray(batch.extras["field"]), context=make_context(parts))


__all__ = ["SimulatedLAI", "SimulatedCab", "SimulatedCCC", "CropPhenology", "LandCover",
           "PHENOLOGY_TARGETS", "phenology_truth"]
