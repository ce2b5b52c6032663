"""``gap-filling-worldcereal``: real S2 + S1 monthly patch, a month hidden by a real gap pattern.

Multi-output regression like :mod:`releo_bench.tasks.gap_filling` (``TargetSpec.outputs`` =
the S2 bands, target ``[N, K]``, ``target_time`` = the held-out month, which stays in the
series masked and zeroed).

Data: ``worldcereal_preprocessed_inputs.nc`` of the WorldCereal classification repository
(NetCDF-4 / HDF5, read with ``h5py``): one 100 x 100 px patch at 10 m (UTM 31N, EPSG:32631),
12 monthly composites on the file's ``t`` axis (``days since 1990-01-01``: 2020-11-01 ..
2021-10-01), variables ``S2-L2A-B02..B12`` (9 bands, no B8A; uint16 stored as int16 with
``_Unsigned``; DN = reflectance x 10000) and ``S1-SIGMA0-VV/VH`` (uint16,
``dB = 20 log10(DN) - 83``, as :func:`releo_bench.tasks.worldcereal.s1_dn_to_db`). 65535
marks a missing value. The file's real S2 gaps are two consecutive months (2020-12 and
2021-01) missing for every pixel (2 / 12 = 16.7 % of the S2 observations).

Samples: one per pixel. The patch is cut into :data:`GRID` x :data:`GRID` blocks of 25 x 25
px; pixels within :data:`BUFFER_PX` px of a block edge are never used (so any two samples of
different blocks are at least ``2 * BUFFER_PX`` px = 40 m apart), and :data:`PER_BLOCK`
pixels are drawn per block (seed :data:`SEED`). Whole blocks go to one split (seeded
permutation: :data:`SPLIT_BLOCKS` blocks per split); groups = block.

Hiding (real gap pattern, transplanted): for each sample a donor pixel is drawn among the
patch pixels that have at least one missing S2 month; the donor's set of missing months
(here always {2020-12, 2021-01}) is shifted in time by an offset drawn uniformly among those
that put every shifted month inside the series, on a month where the sample is clear, outside
its own gaps. The shifted months are masked and zeroed in the inputs (together with the
sample's own real gaps); one of them, drawn at random among those whose 9 bands are all in
``[1, 10000]`` DN, is the target (its observed L2A reflectance, DN / 10000). Samples left
with fewer than 2 clear inputs, or no valid target, are dropped.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from ..batch import EOBatch, Modality
from ..errors import DataError
from .base import DatasetRef, TargetSpec, Task, TaskData, TaskMeta
from .datasets import dataset_dir
from .gap_filling import METRICS, REFLECTANCE
from .worldcereal import FOLDER, MISSING, s1_dn_to_db

NC_FILE = "worldcereal_preprocessed_inputs.nc"
SOURCE = ("github WorldCereal/worldcereal-classification @ 6c574425, "
          "tests/worldcerealtests/testresources/" + NC_FILE)
BANDS = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B11", "B12")
S1_BANDS = ("VV", "VH")
GRID = 4  # blocks per side
BUFFER_PX = 2  # pixels dropped on each side of every block edge
PER_BLOCK = 200
SEED = 20250
SPLIT_BLOCKS = {"train": 10, "val": 3, "test": 3}
MIN_INPUTS = 2


def _meta(name: str, with_s1: bool) -> TaskMeta:
    return TaskMeta(
        name=name, version=1,
        description="Gap filling on a real WorldCereal patch (100 x 100 px, 10 m, UTM 31N, 12 "
                    "monthly S2 L2A composites 2020-11 .. 2021-10): the real 2-month S2 gap "
                    "pattern of the patch is shifted onto clear months of a pixel; one hidden "
                    "month is the target (9 bands B02..B12 without B8A, observed L2A reflectance "
                    "0-1, target_time), masked and zeroed in the inputs"
                    + (", with the S1 VV/VH series (dB)" if with_s1 else "")
                    + ". Scored per band (<metric>/<band>), as the mean over bands (<metric>) "
                      "and by the spectral angle (sam, degrees)",
        dataset=DatasetRef(name="WorldCereal worldcereal_preprocessed_inputs.nc",
                           url="https://github.com/WorldCereal/worldcereal-classification/tree/"
                               "6c574425/tests/worldcerealtests/testresources",
                           revision="WorldCereal/worldcereal-classification@6c574425",
                           licence="MIT",
                           citation="Van Tricht et al. (2023), WorldCereal, ESSD 15:5491-5515"),
        licence="MIT",
        split_design=f"patch cut into {GRID} x {GRID} blocks of 25 x 25 px, {BUFFER_PX} px "
                     f"dropped at every block edge (>= {2 * BUFFER_PX} px between blocks), "
                     f"{PER_BLOCK} pixels drawn per block; whole blocks assigned to "
                     f"train/val/test ({SPLIT_BLOCKS['train']}/{SPLIT_BLOCKS['val']}/"
                     f"{SPLIT_BLOCKS['test']} blocks) by a permutation with seed {SEED}; "
                     "groups = block; donors and shifts of the transplanted gap pattern drawn "
                     f"with seed {SEED}",
        target=TargetSpec(kind="regression", name="s2_reflectance", unit="reflectance",
                          range=REFLECTANCE, outputs=BANDS),
        main_score="rmse", metrics=METRICS,
        modalities=("s2", "s1") if with_s1 else ("s2",))


def read_patch(path: Path) -> dict[str, np.ndarray]:
    """The S2 (``[T, K, H, W]`` uint16 DN), S1 (``[T, 2, H, W]`` uint16) cubes and the monthly
    dates (``datetime64[D]`` from ``t``, 'days since ...') of the NetCDF-4 file."""
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - declared dependency
        raise DataError("gap-filling-worldcereal needs h5py to read NetCDF-4 files "
                        "(pip install h5py)") from exc
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path}: cannot be read as NetCDF-4/HDF5 ({exc})") from exc
    with f:
        names = ["t"] + [f"S2-L2A-{b}" for b in BANDS] + [f"S1-SIGMA0-{p}" for p in S1_BANDS]
        for n in names:
            if n not in f:
                raise DataError(f"{path}: variable {n!r} is missing")

        def cube(n: str) -> np.ndarray:
            a = f[n][()]
            if a.dtype == np.int16:  # NetCDF '_Unsigned = true': reinterpret as uint16
                a = a.view(np.uint16)
            return a

        s2 = np.stack([cube(f"S2-L2A-{b}") for b in BANDS], axis=1)
        s1 = np.stack([cube(f"S1-SIGMA0-{p}") for p in S1_BANDS], axis=1)
        units = f["t"].attrs.get("units", b"")
        units = units.decode() if isinstance(units, bytes) else str(units)
        if not units.startswith("days since "):
            raise DataError(f"{path}: variable 't' has units {units!r}, expected 'days since ...'")
        origin = np.datetime64(units[len("days since "):].strip()[:10], "D")
        dates = origin + f["t"][()].astype(np.int64).astype("timedelta64[D]")
    if s2.shape[0] != len(dates) or s1.shape[0] != len(dates):
        raise DataError(f"{path}: time axes disagree ({s2.shape[0]}, {s1.shape[0]}, {len(dates)})")
    return {"s2": s2, "s1": s1, "dates": dates}


def block_pixels(h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, block index) of every usable pixel: inside a block, >= BUFFER_PX px from its
    edges."""
    bh, bw = h // GRID, w // GRID
    r, c = np.meshgrid(np.arange(GRID * bh), np.arange(GRID * bw), indexing="ij")
    r, c = r.ravel(), c.ravel()
    keep = ((r % bh >= BUFFER_PX) & (r % bh < bh - BUFFER_PX)
            & (c % bw >= BUFFER_PX) & (c % bw < bw - BUFFER_PX))
    r, c = r[keep], c[keep]
    return r, c, (r // bh) * GRID + c // bw


class GapFillingWorldCereal(Task):
    """Real WorldCereal patch gap filling; ``with_s1`` (default True) adds S1 VV/VH (dB)."""

    meta = _meta("gap-filling-worldcereal", True)

    def __init__(self, *, with_s1: bool = True) -> None:
        self.with_s1 = bool(with_s1)
        if not self.with_s1:
            self.meta = _meta("gap-filling-worldcereal", False)

    def load(self, split: str) -> TaskData:
        self.check_split(split)
        return self._data[split]

    @cached_property
    def _data(self) -> dict[str, TaskData]:
        root = dataset_dir(FOLDER, task=self.meta.name, source=SOURCE, required=(NC_FILE,))
        cube = read_patch(root / NC_FILE)
        s2, s1, dates = cube["s2"], cube["s1"], cube["dates"]
        n_t, _, h, w = s2.shape
        s2_valid = (s2 != MISSING).all(axis=1)  # [T, H, W]
        s1_valid = ((s1 != MISSING) & (s1 > 0)).all(axis=1)
        in_range = ((s2 >= 1) & (s2 <= 10000)).all(axis=1)

        rng = np.random.default_rng(SEED)
        rows, cols, block = block_pixels(h, w)
        chosen = []
        for b in range(GRID * GRID):
            idx = np.flatnonzero(block == b)
            chosen.append(np.sort(rng.choice(idx, size=min(PER_BLOCK, idx.size), replace=False)))
        sel = np.concatenate(chosen)
        rows, cols, block = rows[sel], cols[sel], block[sel]
        perm = rng.permutation(GRID * GRID)
        split_of_block = np.empty(GRID * GRID, dtype=object)
        start = 0
        for split, k in SPLIT_BLOCKS.items():
            split_of_block[perm[start:start + k]] = split
            start += k

        gaps = ~s2_valid.reshape(n_t, -1)  # [T, H*W]
        donors = np.flatnonzero(gaps.any(axis=0))
        if donors.size == 0:
            raise DataError(f"{root / NC_FILE}: no S2 gap in the patch to transplant")
        built = []  # (sample index, hidden months, target month)
        for i, (r, c) in enumerate(zip(rows, cols)):
            own = s2_valid[:, r, c]
            d = int(donors[rng.integers(donors.size)])
            pattern = np.flatnonzero(gaps[:, d])
            shifts = [s for s in range(-n_t + 1, n_t) if s != 0
                      and pattern.min() + s >= 0 and pattern.max() + s < n_t
                      and own[pattern + s].all()]
            if not shifts:
                continue
            hidden = pattern + shifts[rng.integers(len(shifts))]
            targets = hidden[in_range[hidden, r, c]]
            if targets.size == 0 or (own.sum() - hidden.size) < MIN_INPUTS:
                continue
            built.append((i, hidden, int(targets[rng.integers(targets.size)])))
        if not built:
            raise DataError("gap-filling-worldcereal: no sample left after transplanting gaps")

        out = {}
        for split in self.meta.splits:
            part = [b for b in built if split_of_block[block[b[0]]] == split]
            if not part:
                raise DataError(f"gap-filling-worldcereal: split {split!r} is empty")
            idx = np.array([b[0] for b in part])
            r, c = rows[idx], cols[idx]
            n = len(idx)
            mask = s2_valid[:, r, c].T.copy()  # [n, T]
            held = np.array([b[2] for b in part])
            hidden_months = np.zeros((n, n_t), dtype=bool)
            for j, (_, hidden, _) in enumerate(part):
                hidden_months[j, hidden] = True
            mask &= ~hidden_months
            dn = np.moveaxis(s2[:, :, r, c], -1, 0).astype(np.float64)  # [n, T, K]
            y = dn[np.arange(n), held] / 10000.0
            values = np.where(mask[..., None], dn / 10000.0, 0.0).astype(np.float32)
            sample_dates = np.broadcast_to(dates, (n, n_t)).copy()
            mods = {"s2": Modality(torch.from_numpy(values[..., None, None]), sample_dates,
                                   torch.from_numpy(mask[..., None, None]), BANDS, "reflectance")}
            if self.with_s1:
                raw = np.moveaxis(s1[:, :, r, c], -1, 0)  # [n, T, 2]
                m1 = s1_valid[:, r, c].T
                db = np.where(m1[..., None], s1_dn_to_db(np.where(raw > 0, raw, 1)), 0.0)
                mods["s1"] = Modality(torch.from_numpy(db.astype(np.float32)[..., None, None]),
                                      sample_dates.copy(), torch.from_numpy(m1[..., None, None]),
                                      S1_BANDS, "dB")
            groups = np.array([f"block_{b // GRID}_{b % GRID}" for b in block[idx]])
            ids = tuple(f"px_{a}_{b}-t{dates[t]}" for a, b, t in zip(r, c, held))
            extras = {"row": r, "col": c, "held_out_index": held,
                      "hidden_months": hidden_months}
            batch = EOBatch(mods, ids, extras)
            out[split] = TaskData(batch, y, groups, dates[held].astype("datetime64[D]"))
        return out


__all__ = ["GapFillingWorldCereal", "read_patch", "block_pixels", "BANDS"]
