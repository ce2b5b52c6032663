"""``gap-filling``: reconstruct the S2 reflectance of a held-out date from the rest of the series.

Multi-output regression (``TargetSpec.outputs`` = the S2 bands, targets ``[N, K]``). A sample
is one (pixel or point, held-out date) pair where a clear S2 observation exists. The input
series keeps the held-out date in its date grid but **masked and zeroed** (values set to 0,
mask False), so the hidden truth is nowhere in the inputs; ``target_time`` is the held-out
date. Per-date encoders are read at the nearest *valid* date to ``target_time``
(:func:`releo_bench.runner.features_for_split`), i.e. a neighbouring clear date, never the
hidden one (the raw encoder's per-date features of a masked date are zeros and flagged
invalid).

- ``gap-filling`` / ``gap-filling-s1`` (simulated, option ``with_s1``): the six simulated
  scenes of :mod:`releo_bench.tasks.sim_data`; up to :data:`HELD_PER_PIXEL` clear dates per
  pixel (pixels with at least 3 clear dates), target = the scene's cloud-free, noise-free
  reflectance (``s2_clear``) of the 12 S2 L2A bands at that date (exact truth).
- ``gap-filling-cesbio`` (real): the CESBIO / THEIA (MAJA) point series of ``lai-insitu``;
  the MAJA cloud pattern of a donor series from another site is transplanted onto the
  sample's series (aligned by days from each series' field date): every date the donor saw
  cloudy is masked, and one of them that was clear in the sample's own series is the target
  (its observed L2A reflectance of the 10 bands). Splits = those of ``lai-insitu``.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import torch

from ..batch import EOBatch, Modality, pad_series
from ..errors import DataError
from ..metrics import STANDARD_METRICS
from ..physics.scene import S2_L2A_BANDS
from .base import LazySplitsTask, TargetSpec, Task, TaskData, TaskMeta
from .sim_data import SAMPLING_SEED, SIM_DATASET, SPLIT_DESIGN, Pixels, make_batch, split_pixels

HELD_PER_PIXEL = 2
MIN_CLEAR = 3  # a pixel needs this many clear dates (so at least 2 remain as inputs)
METRICS = STANDARD_METRICS["regression"] + ("sam",)
REFLECTANCE = (0.0, 1.0)


def _meta(name: str, with_s1: bool) -> TaskMeta:
    return TaskMeta(
        name=name, version=1,
        description="Gap filling: the cloud-free S2 L2A reflectance (12 bands, 0-1) of a "
                    "simulated pixel at one of its clear dates (target_time) that is hidden "
                    "from the inputs (masked, values zeroed), from the rest of its 2021 S2 "
                    "series (cloudy dates masked)" + (", the S1 VV/VH series" if with_s1 else "")
                    + " and the S2 angles. Scored per band (<metric>/<band>), as the mean over "
                    "bands (<metric>) and by the spectral angle (sam, degrees)",
        dataset=SIM_DATASET, licence="Apache-2.0",
        split_design=SPLIT_DESIGN + f"; pixels with >= {MIN_CLEAR} clear dates, up to "
                                    f"{HELD_PER_PIXEL} held-out clear dates per pixel drawn with "
                                    f"seed {SAMPLING_SEED}",
        target=TargetSpec(kind="regression", name="s2_reflectance", unit="reflectance",
                          range=REFLECTANCE, outputs=S2_L2A_BANDS),
        main_score="rmse", metrics=METRICS,
        modalities=("s2", "s1", "angles") if with_s1 else ("s2", "angles"))


def held_out_dates(pixels: Pixels) -> tuple[np.ndarray, np.ndarray]:
    """(sample -> pixel index, held-out S2 date index): up to :data:`HELD_PER_PIXEL` distinct
    clear dates per pixel with at least :data:`MIN_CLEAR` clear dates, fixed draw."""
    clear = ~pixels.scene.s2_cloud.numpy()[:, pixels.rows, pixels.cols].T  # [n, T]
    rng = np.random.default_rng([SAMPLING_SEED, 7, pixels.seed])
    keys = rng.random(clear.shape)
    pix, dates = [], []
    for i in range(len(pixels)):
        idx = np.flatnonzero(clear[i])
        if idx.size < MIN_CLEAR:
            continue
        chosen = np.sort(idx[np.argsort(keys[i, idx])[:HELD_PER_PIXEL]])
        pix.extend([i] * len(chosen))
        dates.extend(chosen.tolist())
    return np.asarray(pix, dtype=np.int64), np.asarray(dates, dtype=np.int64)


class GapFilling(LazySplitsTask):
    """Simulated gap filling; ``with_s1`` adds the S1 series to the inputs."""

    meta = _meta("gap-filling", False)

    def __init__(self, *, with_s1: bool = False) -> None:
        self.with_s1 = bool(with_s1)
        if self.with_s1 != (type(self).meta.modalities.count("s1") == 1):
            self.meta = _meta("gap-filling-s1" if self.with_s1 else "gap-filling", self.with_s1)
        super().__init__()

    def _make(self, split: str) -> TaskData:
        parts, targets, held = [], [], []
        for p in split_pixels(split):
            pix, didx = held_out_dates(p)
            rep = p.select(pix)
            parts.append(rep)
            truth = p.scene.s2_clear.numpy()[didx, :, rep.rows, rep.cols]  # [n, 12]
            targets.append(truth.astype(np.float64))
            held.append(didx)
        batch = make_batch(parts, split)
        held_idx = np.concatenate(held)
        n = len(held_idx)
        rows = np.arange(n)
        s2 = batch["s2"]
        values, mask = s2.values.clone(), s2.mask.clone()
        ti, tt = torch.from_numpy(rows), torch.from_numpy(held_idx)
        values[ti, tt] = 0.0
        mask[ti, tt] = False
        times = s2.dates[rows, held_idx].astype("datetime64[D]")
        mods = {"s2": Modality(values, s2.dates, mask, s2.bands, s2.units)}
        if self.with_s1:
            mods["s1"] = batch["s1"]
        mods["angles"] = batch["angles"]
        ids = tuple(f"{i}-t{str(t)}" for i, t in zip(batch.sample_ids, times))
        extras = dict(batch.extras)
        extras["held_out_index"] = held_idx
        out = EOBatch(mods, ids, extras)
        y = np.clip(np.concatenate(targets), *REFLECTANCE)
        return TaskData(out, y, np.asarray(extras["field"]), times)


class GapFillingS1(GapFilling):
    """Simulated gap filling with the S1 VV/VH series as an extra input."""

    meta = _meta("gap-filling-s1", True)

    def __init__(self, *, with_s1: bool = True) -> None:
        super().__init__(with_s1=with_s1)


# -- real: CESBIO point series with transplanted MAJA cloud masks -----------------------------

ALIGN_DAYS = 2  # a donor acquisition within this many days (relative to field dates) applies
CESBIO_SEED = 20240


def _cesbio_meta() -> TaskMeta:
    from .lai_insitu import BANDS, LaiInsitu

    base = LaiInsitu.meta
    return TaskMeta(
        name="gap-filling-cesbio", version=1,
        description="Gap filling on real THEIA/MAJA S2 L2A point series (CESBIO in-situ sites, "
                    "France/Italy/Spain 2017-2018): the MAJA cloud pattern of a donor series from "
                    "another site is transplanted onto the series; one date it hides that was "
                    "clear is the target (10 bands, observed L2A reflectance 0-1, target_time), "
                    "masked and zeroed in the inputs. Scored per band, as the mean over bands and "
                    "by the spectral angle (sam)",
        dataset=base.dataset, licence=base.licence,
        split_design=base.split_design + f"; donors drawn with seed {CESBIO_SEED} among series "
                                         "of the other sites; samples whose transplanted mask "
                                         "hides no clear date or leaves fewer than 2 are dropped",
        target=TargetSpec(kind="regression", name="s2_reflectance", unit="reflectance",
                          range=REFLECTANCE, outputs=BANDS),
        main_score="rmse", metrics=METRICS, modalities=("s2",))


class GapFillingCesbio(Task):
    """Real gap filling with transplanted MAJA masks (options as ``lai-insitu``'s
    ``days_before`` / ``days_after``, default 60 / 30)."""

    meta = _cesbio_meta()

    def __init__(self, *, days_before: int = 60, days_after: int = 30) -> None:
        from .lai_insitu import LaiInsitu

        self._source = LaiInsitu(days_before=days_before, days_after=days_after)

    def load(self, split: str) -> TaskData:
        self.check_split(split)
        return self._data[split]

    @cached_property
    def _data(self) -> dict[str, TaskData]:
        from .lai_insitu import BANDS

        src = self._source
        samples, groups, assign = src._all[0], src._groups, src._assignment
        sites = np.array([s.site for s in samples])
        rng = np.random.default_rng(CESBIO_SEED)
        built: list[tuple[int, np.ndarray, np.ndarray, np.ndarray, int]] = []
        for i, s in enumerate(samples):
            others = np.flatnonzero(sites != s.site)
            d = samples[int(others[rng.integers(len(others))])]
            off_i = (s.dates - s.field_date).astype(np.int64)
            off_d = (d.dates - d.field_date).astype(np.int64)
            gap = np.abs(off_i[:, None] - off_d[None, :])
            near = gap.argmin(axis=1)
            cloudy = (gap[np.arange(len(off_i)), near] <= ALIGN_DAYS) & ~d.valid[near]
            candidates = np.flatnonzero(s.valid & cloudy)
            inputs = s.valid & ~cloudy
            candidates = candidates[np.all((s.values[candidates] >= REFLECTANCE[0])
                                           & (s.values[candidates] <= REFLECTANCE[1]), axis=1)]
            if candidates.size == 0 or inputs.sum() < 2:
                continue
            t = int(candidates[rng.integers(candidates.size)])
            values = s.values.copy()
            values[cloudy] = 0.0  # hidden: nothing of a transplanted-cloud date is left
            built.append((i, values, inputs, s.values[t].astype(np.float64), t))
        if not built:
            raise DataError("gap-filling-cesbio: no sample left after transplanting masks")
        out = {}
        for split in self.meta.splits:
            chosen = [b for b in built if assign[b[0]] == split]
            if not chosen:
                raise DataError(f"gap-filling-cesbio: split {split!r} is empty")
            series = [(v[:, :, None, None], samples[i].dates, m[:, None, None])
                      for i, v, m, _, _ in chosen]
            values, dates, mask = pad_series(series)
            s2 = Modality(values, dates, mask, BANDS, "reflectance")
            idx = [b[0] for b in chosen]
            times = np.array([samples[i].dates[t] for i, _, _, _, t in chosen],
                             dtype="datetime64[D]")
            extras = {"site": sites[idx], "held_out_index": np.array([b[4] for b in chosen])}
            batch = EOBatch({"s2": s2}, tuple(samples[i].sample_id for i in idx), extras)
            out[split] = TaskData(batch, np.stack([b[3] for b in chosen]), groups[idx], times)
        return out


__all__ = ["GapFilling", "GapFillingS1", "GapFillingCesbio", "held_out_dates", "METRICS"]
