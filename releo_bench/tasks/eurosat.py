"""``eurosat-ms``: land-cover patch classification on multispectral EuroSAT GeoTIFFs.

The loader reads the 13-band Sentinel-2 L1C GeoTIFFs with rasterio, as distributed
(``<Class>/<Class>_<n>.tif``). EuroSAT stores the bands as B01..B08, B09, B10, B11, B12 and
**B8A last** (band 13 of the file); the loader reorders them to the ESA order B01..B08, B8A,
B09..B12 and names every band, so no consumer depends on the file's positions. Values are the
files' L1C top-of-atmosphere digital numbers, i.e. reflectance x 10000 (no offset: the scenes
predate processing baseline 04.00). EuroSAT carries no acquisition date: every patch gets one
nominal date (:data:`NOMINAL_DATE`, T = 1) that carries no information. All pixels are valid
(EuroSAT patches were selected cloud-free).

Split: per class, files sorted by their number and permuted with a seeded generator; the first
60 % go to train, the next 20 % to val, the rest to test (12 / 4 / 4 per class for the
200-file sample). Groups are the files themselves: EuroSAT ships no field or tile identifier
(in the 200-file sample no two patches overlap, the closest centres are about 1 km apart).
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from ..batch import EOBatch, Modality
from ..errors import DataError
from ..metrics import STANDARD_METRICS
from .base import DatasetRef, TargetSpec, Task, TaskData, TaskMeta
from .datasets import dataset_dir

FOLDER = "eurosat_ms_200"
SOURCE = ("github wherobots/GeoTorchAI @ d2a6c399, data/eurosat/ (EuroSAT multispectral, "
          "https://github.com/phelber/EuroSAT)")
CLASSES = ("AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture",
           "PermanentCrop", "Residential", "River", "SeaLake")
# band order in the files (1-based band index = position + 1): B8A is the 13th band
FILE_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11",
              "B12", "B8A")
# band order of the loaded tensor (ESA order)
BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11",
         "B12")
FILE_INDEX = tuple(FILE_BANDS.index(b) for b in BANDS)  # file position of each loaded band
UNITS = "reflectance_x10000"
PATCH = 64
NOMINAL_DATE = np.datetime64("2016-01-01", "D")
SPLIT_SEED = 0
FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}


def _number(path: Path) -> int:
    m = re.search(r"_(\d+)$", path.stem)
    return int(m.group(1)) if m else -1


def split_files(files_by_class: dict[str, list[Path]], seed: int = SPLIT_SEED
                ) -> dict[str, list[tuple[Path, int]]]:
    """Seeded per-class 60/20/20 split of ``{class: files}`` into ``{split: [(file, class)]}``."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[tuple[Path, int]]] = {s: [] for s in FRACTIONS}
    for k, name in enumerate(CLASSES):
        files = sorted(files_by_class[name], key=lambda p: (_number(p), p.name))
        order = rng.permutation(len(files))
        n_train = int(round(FRACTIONS["train"] * len(files)))
        n_val = int(round(FRACTIONS["val"] * len(files)))
        for rank, i in enumerate(order):
            split = "train" if rank < n_train else "val" if rank < n_train + n_val else "test"
            out[split].append((files[i], k))
    return out


def read_patch(path: Path) -> np.ndarray:
    """One EuroSAT GeoTIFF as float32 ``[13, 64, 64]`` in :data:`BANDS` order (B8A 9th)."""
    import rasterio

    try:
        with rasterio.open(path) as src:
            if src.count != len(FILE_BANDS):
                raise DataError(f"{path}: {src.count} bands, expected {len(FILE_BANDS)} "
                                f"({', '.join(FILE_BANDS)}; B8A is band 13)")
            if (src.height, src.width) != (PATCH, PATCH):
                raise DataError(f"{path}: {src.height} x {src.width} px, expected "
                                f"{PATCH} x {PATCH}")
            bad = [FILE_BANDS[i] for i, d in enumerate(src.dtypes) if d != "uint16"]
            if bad:
                raise DataError(f"{path}: bands {bad} are {src.dtypes[FILE_BANDS.index(bad[0])]}, "
                                "expected uint16 L1C digital numbers (reflectance x 10000)")
            data = src.read()
    except rasterio.errors.RasterioIOError as exc:
        raise DataError(f"{path}: cannot be read as a GeoTIFF ({exc})") from exc
    return data[list(FILE_INDEX)].astype(np.float32)


class EuroSATMS(Task):
    """EuroSAT multispectral (13-band L1C) patches, 10 land-cover classes."""

    meta = TaskMeta(
        name="eurosat-ms", version=1,
        description="Land-cover class (10 classes) of 64 x 64 px Sentinel-2 L1C patches, "
                    "13 bands as top-of-atmosphere reflectance x 10000, one nominal date",
        dataset=DatasetRef(name="EuroSAT multispectral, 200-patch sample (20 per class)",
                           url="https://github.com/wherobots/GeoTorchAI/tree/d2a6c399/data/eurosat",
                           revision="wherobots/GeoTorchAI@d2a6c399",
                           licence="MIT (EuroSAT data); repository AGPL-3.0",
                           citation="Helber et al. (2019), EuroSAT, IEEE JSTARS 12(7):2217-2226"),
        licence="MIT",
        split_design="per class, files sorted by number and permuted with numpy "
                     "default_rng(0) (classes in fixed order): 60/20/20 % train/val/test, "
                     "12/4/4 per class = 120/40/40 files; groups = file (EuroSAT has no "
                     "field or tile id; no two patches of the sample overlap)",
        target=TargetSpec(kind="classification", name="land_cover", class_names=CLASSES),
        main_score="overall_accuracy",
        metrics=STANDARD_METRICS["classification"],
        modalities=("s2",),
    )

    def load(self, split: str) -> TaskData:
        self.check_split(split)
        return self._data[split]

    @cached_property
    def _data(self) -> dict[str, TaskData]:
        root = dataset_dir(FOLDER, task=self.meta.name, source=SOURCE, required=CLASSES)
        files = {c: sorted((root / c).glob("*.tif")) for c in CLASSES}
        empty = [c for c, f in files.items() if not f]
        if empty:
            raise DataError(f"task {self.meta.name!r}: no .tif files in {root}/{empty[0]} "
                            f"(classes without files: {empty})")
        out = {}
        for split, items in split_files(files).items():
            values = np.stack([read_patch(p) for p, _ in items])[:, None]  # [N, 1, 13, H, W]
            n = len(items)
            dates = np.full((n, 1), NOMINAL_DATE, dtype="datetime64[D]")
            mask = torch.ones((n, 1, PATCH, PATCH), dtype=torch.bool)
            s2 = Modality(torch.from_numpy(values), dates, mask, BANDS, UNITS)
            ids = tuple(f"{p.parent.name}/{p.name}" for p, _ in items)
            batch = EOBatch({"s2": s2}, ids)
            target = np.array([k for _, k in items], dtype=np.int64)
            out[split] = TaskData(batch, target, groups=np.array(ids))
        return out
