"""``eolearn-lulc``: pixel land-cover classification from a cloud-masked NDVI series.

The data is eo-learn's ``TestEOPatch`` (101 x 100 px at 10 m in Slovenia, 68 Sentinel-2
acquisitions from July 2015 to December 2017), read directly from the EOPatch folder as
eo-learn saves it (one ``.npy`` per feature, ``timestamps.json``); eo-learn itself is not
needed. Inputs: ``data/NDVI.npy`` ``[T, H, W, 1]``; validity = ``mask/IS_DATA.npy`` and not
``mask/CLM.npy`` (the s2cloudless cloud mask stored with the patch). Target:
``mask_timeless/LULC.npy``, the rasterised Slovenian land-use polygons (class ids and names as
in ``vector_timeless/LULC.gpkg``). Kept classes: 2 forest, 3 grassland, 4 shrubland and
8 artificial surface; 0 (no data, 155 px) and 1 (cultivated land, 11 px) are dropped.

Split: the patch is cut into a 4 x 4 grid of blocks (``numpy.array_split`` of rows and
columns); whole blocks are assigned to train / val / test (60 / 20 / 20 % of the pixels of
every class) by :func:`~releo_bench.tasks.worldcereal.grouped_stratified_split` with seed 0.
Pixels closer than :data:`BUFFER` px (Chebyshev distance) to a block of another split are
dropped, so no two pixels of different splits are neighbours. Each split is then subsampled
with seed 0 to at most :data:`CAP` pixels per class. Samples are single pixels
(``[N, 68, 1, 1, 1]``); groups = block.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from ..batch import EOBatch, Modality
from ..errors import DataError
from ..metrics import STANDARD_METRICS
from .base import DatasetRef, TargetSpec, Task, TaskData, TaskMeta
from .datasets import dataset_dir
from .worldcereal import grouped_stratified_split

FOLDER = "eolearn_testeopatch"
PATCH_DIR = "example_data/TestEOPatch"
SOURCE = "github sentinel-hub/eo-learn @ 303e7585, example_data/TestEOPatch"
FILES = {"ndvi": "data/NDVI.npy", "is_data": "mask/IS_DATA.npy", "clm": "mask/CLM.npy",
         "lulc": "mask_timeless/LULC.npy", "timestamps": "timestamps.json"}
LULC_IDS = (2, 3, 4, 8)
CLASSES = ("forest", "grassland", "shrubland", "artificial_surface")
GRID = 4
BUFFER = 2
CAP = {"train": 600, "val": 200, "test": 200}
SPLIT_SEED = 0
FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}


def _load_npy(root: Path, key: str) -> np.ndarray:
    path = root / FILES[key]
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot be read as a .npy array ({exc})") from exc


def block_ids(height: int, width: int, grid: int = GRID) -> np.ndarray:
    """``[H, W]`` block index ``row_block * grid + col_block`` of a ``grid x grid`` tiling."""
    rows = np.concatenate([np.full(len(a), i) for i, a in enumerate(np.array_split(np.arange(height), grid))])
    cols = np.concatenate([np.full(len(a), j) for j, a in enumerate(np.array_split(np.arange(width), grid))])
    return rows[:, None] * grid + cols[None, :]


def near_other_split(split_map: np.ndarray, buffer: int) -> np.ndarray:
    """``[H, W]`` True where a pixel of another split lies within ``buffer`` px (Chebyshev)."""
    h, w = split_map.shape
    padded = np.pad(split_map, buffer, mode="edge")
    out = np.zeros((h, w), dtype=bool)
    for di in range(-buffer, buffer + 1):
        for dj in range(-buffer, buffer + 1):
            out |= padded[buffer + di: buffer + di + h, buffer + dj: buffer + dj + w] != split_map
    return out


class EOLearnLULC(Task):
    """Land cover of single pixels of eo-learn's TestEOPatch from 68 cloud-masked NDVI dates."""

    meta = TaskMeta(
        name="eolearn-lulc", version=1,
        description="Land-use / land-cover class (4 classes) of 10 m pixels from a 68-date "
                    "cloud-masked Sentinel-2 NDVI series (eo-learn TestEOPatch, Slovenia, "
                    "2015-2017)",
        dataset=DatasetRef(name="eo-learn TestEOPatch",
                           url="https://github.com/sentinel-hub/eo-learn/tree/303e7585/example_data",
                           revision="sentinel-hub/eo-learn@303e7585",
                           licence="MIT",
                           citation="eo-learn, Sinergise (https://github.com/sentinel-hub/eo-learn)"),
        licence="MIT",
        split_design="4 x 4 grid of spatial blocks; whole blocks assigned to train/val/test "
                     "(60/20/20 % of each class's pixels, seeded search, seed 0); pixels "
                     "within 2 px of a block of another split dropped; then at most "
                     "600/200/200 pixels per class and split drawn with seed 0; groups = block",
        target=TargetSpec(kind="classification", name="lulc", class_names=CLASSES),
        main_score="balanced_accuracy",
        metrics=STANDARD_METRICS["classification"],
        modalities=("s2",),
    )

    def load(self, split: str) -> TaskData:
        self.check_split(split)
        return self._data[split]

    @cached_property
    def _data(self) -> dict[str, TaskData]:
        base = dataset_dir(FOLDER, task=self.meta.name, source=SOURCE,
                           required=tuple(f"{PATCH_DIR}/{f}" for f in FILES.values()))
        root = base / PATCH_DIR
        ndvi = _load_npy(root, "ndvi")
        if ndvi.ndim != 4 or ndvi.shape[-1] != 1:
            raise DataError(f"{root / FILES['ndvi']}: shape {ndvi.shape}, expected [T, H, W, 1]")
        t, h, w, _ = ndvi.shape
        masks = {}
        for key in ("is_data", "clm"):
            m = _load_npy(root, key)
            if m.shape != ndvi.shape:
                raise DataError(f"{root / FILES[key]}: shape {m.shape}, expected {ndvi.shape} "
                                f"like {FILES['ndvi']}")
            masks[key] = m[..., 0].astype(bool)
        lulc = _load_npy(root, "lulc")
        if lulc.shape != (h, w, 1):
            raise DataError(f"{root / FILES['lulc']}: shape {lulc.shape}, expected {(h, w, 1)}")
        lulc = lulc[..., 0].astype(np.int64)
        ts_path = root / FILES["timestamps"]
        try:
            stamps = json.loads(ts_path.read_text())
            dates = np.array([s[:10] for s in stamps], dtype="datetime64[D]")
        except (OSError, ValueError, TypeError) as exc:
            raise DataError(f"{ts_path}: not a JSON list of ISO timestamps ({exc})") from exc
        if len(dates) != t:
            raise DataError(f"{ts_path}: {len(dates)} timestamps for {t} dates in "
                            f"{FILES['ndvi']}")
        if (np.diff(dates.astype(np.int64)) < 0).any():
            raise DataError(f"{ts_path}: timestamps are not sorted")
        valid = masks["is_data"] & ~masks["clm"] & np.isfinite(ndvi[..., 0])
        values = np.where(valid, ndvi[..., 0], 0.0).astype(np.float32)  # [T, H, W]

        blocks = block_ids(h, w)
        labelled = np.isin(lulc, LULC_IDS)
        y_map = np.full((h, w), -1, dtype=np.int64)
        for k, code in enumerate(LULC_IDS):
            y_map[lulc == code] = k
        rr, cc = np.nonzero(labelled)
        assign = grouped_stratified_split(y_map[rr, cc], blocks[rr, cc], FRACTIONS, SPLIT_SEED)
        split_of_block = np.full(GRID * GRID, -1)
        for i, s in enumerate(FRACTIONS):
            split_of_block[np.unique(blocks[rr[assign[s]], cc[assign[s]]])] = i
        split_map = split_of_block[blocks]
        keep = labelled & ~near_other_split(split_map, BUFFER)

        rng = np.random.default_rng(SPLIT_SEED)
        out = {}
        for i, split in enumerate(FRACTIONS):
            chosen = []
            for k in range(len(LULC_IDS)):
                pix = np.flatnonzero((keep & (split_map == i) & (y_map == k)).ravel())
                if len(pix) > CAP[split]:
                    pix = np.sort(rng.choice(pix, CAP[split], replace=False))
                chosen.append(pix)
            flat = np.sort(np.concatenate(chosen))
            r, c = np.unravel_index(flat, (h, w))
            n = len(flat)
            v = torch.from_numpy(np.ascontiguousarray(values[:, r, c].T)).reshape(n, t, 1, 1, 1)
            m = torch.from_numpy(np.ascontiguousarray(valid[:, r, c].T)).reshape(n, t, 1, 1)
            s2 = Modality(v, np.broadcast_to(dates, (n, t)).copy(), m, ("NDVI",), "index")
            ids = tuple(f"r{a:03d}c{b:03d}" for a, b in zip(r, c))
            batch = EOBatch({"s2": s2}, ids, {"row": r, "col": c})
            groups = np.array([f"block_{b}" for b in blocks[r, c]])
            out[split] = TaskData(batch, y_map[r, c], groups=groups)
        return out
