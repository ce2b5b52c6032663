"""Shared data of the simulated tasks: fixed scenes, pixel samples and their EO batches.

Every simulated task (``lai``, ``cab``, ``ccc``, ``crop-phenology``, ``land-cover``) draws its
samples from the same six scenes of :func:`releo_bench.physics.scene.simulate_scene`, whole
scenes per split (:data:`SPLIT_SEEDS`), so no field and no pair of neighbouring pixels is
shared by two splits. A scene is simulated once per machine (stored in the cache directory,
:mod:`releo_bench.physics.scene_cache`) and kept in memory per process whichever task asks
first; the tasks then only index it.

A sample is one pixel (``H = W = 1``) with its whole year of observations:

- ``s2``: the 12 Sentinel-2 L2A bands as observed (noise, clouds left in the values), surface
  reflectance 0-1 (unit ``reflectance``), on the scene's S2 dates; mask False under clouds;
- ``s1``: VV and VH backscatter in dB on the scene's own S1 dates (every date valid);
- ``angles``: sun zenith, view zenith and relative azimuth (degrees) of each S2 acquisition
  (valid on every S2 date, cloudy or not).

Scenes have different date grids (random phase), so dates are padded with ``NaT``.

The tasks also give the samples' scenes (:func:`make_context`, ``TaskData.context``): a patch
encoder then sees each pixel with its real neighbours instead of a tiled copy of the pixel.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import torch

from ..batch import EOBatch, Modality
from ..physics.scene import SIMULATOR_VERSION, Scene, SceneConfig, simulate_scene
from ..physics.scene_cache import cached_scene
from .base import DatasetRef, PixelContext

# Pinned design: changing any of these changes the data, so the task versions must change.
SCENE_CONFIG = SceneConfig(size=32, n_fields=16)
SPLIT_SEEDS: dict[str, tuple[int, ...]] = {"train": (1101, 1102, 1103), "val": (1211,),
                                           "test": (1301, 1302)}
PIXELS_PER_FIELD = 40
SAMPLING_SEED = 20210
PINNED_SIMULATOR_VERSION = 1  # the simulator version the task cards and versions describe
ANGLE_BANDS = ("sun_zenith", "view_zenith", "relative_azimuth")

SIM_DATASET = DatasetRef(
    name="releo-bench scene simulator", revision=str(SIMULATOR_VERSION), licence="Apache-2.0",
    citation="generated in memory by releo_bench.physics.scene.simulate_scene "
             f"(SceneConfig(size=32, n_fields=16)), scene seeds train {SPLIT_SEEDS['train']}, "
             f"val {SPLIT_SEEDS['val']}, test {SPLIT_SEEDS['test']}; see docs/physics-scene.md")
SPLIT_DESIGN = (
    "whole simulated scenes per split (32 x 32 px, 16 fields each): seeds "
    f"{', '.join(map(str, SPLIT_SEEDS['train']))} train, "
    f"{', '.join(map(str, SPLIT_SEEDS['val']))} val, "
    f"{', '.join(map(str, SPLIT_SEEDS['test']))} test, so no field and no neighbouring "
    f"pixel is in two splits; up to {PIXELS_PER_FIELD} pixels per field drawn with sampling "
    f"seed {SAMPLING_SEED}; groups = field ids 's<scene seed>-f<field>'")

_lock = threading.Lock()
_SCENES: dict[int, Scene] = {}


def scene(seed: int) -> Scene:
    """The simulated scene of ``seed``: simulated on the CPU (reproducible numbers) the first
    time any task asks for it on this machine (then read from the on-disk cache), and kept in
    memory in this process."""
    with _lock:
        if seed not in _SCENES:
            _SCENES[seed] = cached_scene(seed, SCENE_CONFIG, simulate_scene)
        return _SCENES[seed]


def clear_cache(seeds: tuple[int, ...] | list[int] | None = None) -> None:
    """Forget the simulated scenes of ``seeds`` (all when None): the next access simulates
    them again."""
    with _lock:
        for seed in list(_SCENES) if seeds is None else seeds:
            _SCENES.pop(seed, None)


@dataclass(frozen=True)
class Pixels:
    """Sampled pixels of one scene: row, column and group label of each."""

    seed: int
    rows: np.ndarray
    cols: np.ndarray

    @property
    def scene(self) -> Scene:
        return scene(self.seed)

    @property
    def groups(self) -> np.ndarray:
        fid = self.scene.field_id[self.rows, self.cols]
        return np.array([f"s{self.seed}-f{f:02d}" for f in fid])

    def select(self, keep: np.ndarray) -> "Pixels":
        return Pixels(self.seed, self.rows[keep], self.cols[keep])

    def __len__(self) -> int:
        return len(self.rows)


def sample_pixels(seed: int, per_field: int = PIXELS_PER_FIELD) -> Pixels:
    """Up to ``per_field`` random pixels of every field of scene ``seed`` (all of a smaller
    field), in raster order. Depends only on the field map, so it is the same for every task."""
    field_id = scene(seed).field_id.reshape(-1)
    rng = np.random.default_rng([SAMPLING_SEED, 0, seed])
    chosen = []
    for f in np.unique(field_id):
        idx = np.flatnonzero(field_id == f)
        if idx.size > per_field:
            idx = rng.choice(idx, per_field, replace=False)
        chosen.append(idx)
    flat = np.sort(np.concatenate(chosen))
    size = SCENE_CONFIG.size
    return Pixels(seed, flat // size, flat % size)


def clear_date_index(pixels: Pixels) -> np.ndarray:
    """One S2 date index per pixel, uniformly among the dates where that pixel is clear
    (-1 for a pixel never clear). Same draw for every task that asks."""
    sc = pixels.scene
    clear = ~sc.s2_cloud.numpy()[:, pixels.rows, pixels.cols].T  # [n, T2]
    n_clear = clear.sum(axis=1)
    rng = np.random.default_rng([SAMPLING_SEED, 1, pixels.seed])
    k = np.floor(rng.random(len(pixels)) * np.maximum(n_clear, 1)).astype(np.int64)
    # index of the k-th clear date: first position where the running count exceeds k
    rank = np.cumsum(clear, axis=1) - 1
    hit = clear & (rank == k[:, None])
    out = np.where(n_clear > 0, hit.argmax(axis=1), -1)
    return out


def make_batch(parts: list[Pixels], split: str) -> EOBatch:
    """The EO batch of the pixels of several scenes (padded to the longest date grids)."""
    n = sum(len(p) for p in parts)
    scenes = [p.scene for p in parts]
    t2 = max(len(s.s2_dates) for s in scenes)
    t1 = max(len(s.s1_dates) for s in scenes)
    c2, c1 = len(scenes[0].s2_bands), len(scenes[0].s1_bands)
    s2v = np.zeros((n, t2, c2, 1, 1), dtype=np.float32)
    s2d = np.full((n, t2), np.datetime64("NaT"), dtype="datetime64[D]")
    s2m = np.zeros((n, t2, 1, 1), dtype=bool)
    angv = np.zeros((n, t2, len(ANGLE_BANDS), 1, 1), dtype=np.float32)
    s1v = np.zeros((n, t1, c1, 1, 1), dtype=np.float32)
    s1d = np.full((n, t1), np.datetime64("NaT"), dtype="datetime64[D]")
    s1m = np.zeros((n, t1, 1, 1), dtype=bool)
    platform = np.full((n, t2), "", dtype="<U3")
    ids: list[str] = []
    start = 0
    for p, sc in zip(parts, scenes):
        sl = slice(start, start + len(p))
        r, c = p.rows, p.cols
        nt2, nt1 = len(sc.s2_dates), len(sc.s1_dates)
        s2v[sl, :nt2, :, 0, 0] = sc.s2_reflectance.numpy()[:, :, r, c].transpose(2, 0, 1)
        s2d[sl, :nt2] = sc.s2_dates
        s2m[sl, :nt2, 0, 0] = ~sc.s2_cloud.numpy()[:, r, c].T
        ang = np.stack([sc.s2_angles["tts"], sc.s2_angles["tto"], sc.s2_angles["psi"]], axis=1)
        angv[sl, :nt2, :, 0, 0] = ang[None].astype(np.float32)
        platform[sl, :nt2] = sc.s2_platform
        s1v[sl, :nt1, :, 0, 0] = sc.s1.numpy()[:, :, r, c].transpose(2, 0, 1)
        s1d[sl, :nt1] = sc.s1_dates
        s1m[sl, :nt1] = True
        ids.extend(f"{split}-s{p.seed}-r{ri:02d}c{ci:02d}" for ri, ci in zip(r, c))
        start = sl.stop
    angm = ~np.isnat(s2d)[:, :, None, None]
    modalities = {
        "s2": Modality(torch.from_numpy(s2v), s2d, torch.from_numpy(s2m), scenes[0].s2_bands,
                       "reflectance"),
        "s1": Modality(torch.from_numpy(s1v), s1d, torch.from_numpy(s1m), scenes[0].s1_bands, "dB"),
        "angles": Modality(torch.from_numpy(angv), s2d.copy(), torch.from_numpy(angm.copy()),
                           ANGLE_BANDS, "degree"),
    }
    groups = np.concatenate([p.groups for p in parts])
    seeds = np.concatenate([np.full(len(p), p.seed, dtype=np.int64) for p in parts])
    extras = {"field": groups, "scene_seed": seeds, "s2_platform": platform}
    return EOBatch(modalities, tuple(ids), extras)


def make_context(parts: list[Pixels]) -> PixelContext:
    """The whole scenes of ``parts`` as an EO batch with the samples' modalities, bands, units
    and date axes (padded like :func:`make_batch`), and where each sample sits in them."""
    scenes = [p.scene for p in parts]
    t2 = max(len(s.s2_dates) for s in scenes)
    t1 = max(len(s.s1_dates) for s in scenes)
    c2, c1 = len(scenes[0].s2_bands), len(scenes[0].s1_bands)
    n, size = len(scenes), SCENE_CONFIG.size
    s2v = np.zeros((n, t2, c2, size, size), dtype=np.float32)
    s2d = np.full((n, t2), np.datetime64("NaT"), dtype="datetime64[D]")
    s2m = np.zeros((n, t2, size, size), dtype=bool)
    angv = np.zeros((n, t2, len(ANGLE_BANDS), size, size), dtype=np.float32)
    s1v = np.zeros((n, t1, c1, size, size), dtype=np.float32)
    s1d = np.full((n, t1), np.datetime64("NaT"), dtype="datetime64[D]")
    s1m = np.zeros((n, t1, size, size), dtype=bool)
    for i, sc in enumerate(scenes):
        nt2, nt1 = len(sc.s2_dates), len(sc.s1_dates)
        s2v[i, :nt2] = sc.s2_reflectance.numpy()
        s2d[i, :nt2] = sc.s2_dates
        s2m[i, :nt2] = ~sc.s2_cloud.numpy()
        ang = np.stack([sc.s2_angles["tts"], sc.s2_angles["tto"], sc.s2_angles["psi"]], axis=1)
        angv[i, :nt2] = ang[:, :, None, None].astype(np.float32)
        s1v[i, :nt1] = sc.s1.numpy()
        s1d[i, :nt1] = sc.s1_dates
        s1m[i, :nt1] = True
    angm = np.broadcast_to(~np.isnat(s2d)[:, :, None, None], s2m.shape).copy()
    modalities = {
        "s2": Modality(torch.from_numpy(s2v), s2d, torch.from_numpy(s2m), scenes[0].s2_bands,
                       "reflectance"),
        "s1": Modality(torch.from_numpy(s1v), s1d, torch.from_numpy(s1m), scenes[0].s1_bands, "dB"),
        "angles": Modality(torch.from_numpy(angv), s2d.copy(), torch.from_numpy(angm),
                           ANGLE_BANDS, "degree"),
    }
    images = EOBatch(modalities, tuple(f"scene-{p.seed}" for p in parts))
    index = np.concatenate([np.full(len(p), i, dtype=np.int64) for i, p in enumerate(parts)])
    return PixelContext(images, index, np.concatenate([p.rows for p in parts]),
                        np.concatenate([p.cols for p in parts]))


def split_pixels(split: str) -> list[Pixels]:
    return [sample_pixels(seed) for seed in SPLIT_SEEDS[split]]
