"""``tempcnn-toulouse``: crop-type / land-cover classification of Formosat-2 pixel series.

Data: the example subset of Pelletier et al. (2019) shipped with charlotte-pel/temporalCNN
@ d081da2f (``example/train_dataset.csv``, ``example/test_dataset.csv``, legend
``map/class_map.txt``). Each CSV row, without header, is
``class, polygonID, date1.NIR, date1.R, date1.G, ..., date149.G``: 13 classes, 20 pixels per
class in each file, 149 dates of 3 bands, gap-filled and linearly resampled onto a regular
grid upstream.

The files carry no dates. The series are placed on a *reconstructed* calendar: a regular
``step_days`` grid (2 days) from ``start_date`` (2006-02-01), chosen because the
source series is Formosat-2 over 2006 and the class phenology places it there (winter-crop
senescence around step 60, summer-crop green-up around step 66, deciduous leaf-out around
step 36); expect an error of a few weeks on absolute dates, none on spacing or order. The
values (11-557) are not documented upstream; they behave like reflectance x 1000 but are
declared ``dimensionless`` so that no encoder silently treats them as reflectance.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..batch import EOBatch, Modality
from ..errors import DataError, UsageError
from ..metrics import STANDARD_METRICS
from .base import DatasetRef, TargetSpec, Task, TaskData, TaskMeta
from .datasets import dataset_dir

FOLDER = "tempcnn"
TRAIN_CSV = "example/train_dataset.csv"
TEST_CSV = "example/test_dataset.csv"
LEGEND = "map/class_map.txt"
SOURCE = "github.com/charlotte-pel/temporalCNN @ d081da2f (example/ and map/)"
BANDS = ("NIR", "R", "G")
N_DATES = 149
CLASS_NAMES = ("wheat", "barley", "rapeseed", "corn", "soy", "sunflower", "sorghum", "pea",
               "grassland", "deciduous", "conifer", "water", "urban")
MODALITY = "formosat2"
UNIT = "dimensionless"
# the options the raw encoder needs to read this task's modality (not S2)
RAW_ENCODER_OPTIONS = {"modality": MODALITY, "bands": list(BANDS), "units": UNIT}


def read_legend(path: Path) -> tuple[str, ...]:
    """Class names in label order from ``class_map.txt`` (``value,class,colour``, values 1..K
    for the CSV labels 0..K-1)."""
    try:
        df = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the class legend ({exc})") from exc
    missing = [c for c in ("value", "class") if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing} (columns found: {list(df.columns)})")
    values = pd.to_numeric(df["value"], errors="coerce")
    df = df[values > 0].assign(value=values[values > 0].astype(int)).sort_values("value")
    if list(df["value"]) != list(range(1, len(df) + 1)):
        raise DataError(f"{path}: column 'value' must number the classes 1..K, got {list(df['value'])}")
    return tuple(str(c).strip() for c in df["class"])


def read_pixels(path: Path, n_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(values [N, 149, 3], labels [N], polygon ids [N])`` from one headerless CSV."""
    try:
        df = pd.read_csv(path, header=None)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from exc
    expected = 2 + N_DATES * len(BANDS)
    if df.shape[1] != expected:
        raise DataError(f"{path}: {df.shape[1]} columns, expected {expected}: 'class', "
                        f"'polygonID', then {N_DATES} dates x {'/'.join(BANDS)} values "
                        f"({N_DATES * len(BANDS)} columns)")
    labels = pd.to_numeric(df[0], errors="coerce")
    if labels.isna().any() or (labels % 1 != 0).any() or labels.min() < 0 or labels.max() >= n_classes:
        raise DataError(f"{path}: column 0 ('class') must hold integer labels 0..{n_classes - 1}")
    polygons = pd.to_numeric(df[1], errors="coerce")
    if polygons.isna().any():
        row = int(np.flatnonzero(polygons.isna().to_numpy())[0])
        raise DataError(f"{path}: column 1 ('polygonID') row {row} is not a number")
    values = df.iloc[:, 2:].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float32)
    if not np.isfinite(values).all():
        row, col = np.argwhere(~np.isfinite(values))[0]
        date, band = divmod(int(col), len(BANDS))
        raise DataError(f"{path}: row {row}, date {date + 1}, band {BANDS[band]!r} "
                        f"(column {col + 2}) is missing or not a number")
    pids = polygons.to_numpy().astype(np.int64)
    labs = labels.to_numpy().astype(np.int64)
    for p in np.unique(pids):
        if len(np.unique(labs[pids == p])) > 1:
            raise DataError(f"{path}: polygon {p} ('polygonID') has pixels of several classes")
    return values.reshape(len(df), N_DATES, len(BANDS)), labs, pids


class TempCNNToulouse(Task):
    """Options: ``val_fraction`` (share of each class's training pixels, taken by whole
    polygons, default 0.2), ``seed`` (default 0), ``start_date`` / ``step_days`` (the
    reconstructed calendar, default 2006-02-01 every 2 days)."""

    meta = TaskMeta(
        name="tempcnn-toulouse", version=1,
        description="13 crop / land-cover classes of Formosat-2 pixels near Toulouse from 149 "
                    "regular gap-filled dates of NIR, red, green (TempCNN example subset)",
        dataset=DatasetRef(
            name="TempCNN example data (Formosat-2, Toulouse 2006)",
            url="https://github.com/charlotte-pel/temporalCNN", revision="d081da2f",
            licence="GPL-3.0",
            citation="Pelletier, Webb, Petitjean (2019) Temporal convolutional neural network "
                     "for the classification of satellite image time series, Remote Sensing "
                     "11(5):523"),
        licence="GPL-3.0",
        split_design="test = upstream test_dataset.csv (260 px, 142 polygons, none in train); "
                     "val = whole polygons drawn per class with seed 0 until 20 % of the class's "
                     "pixels of train_dataset.csv, train = the rest; groups = polygon ids",
        target=TargetSpec(kind="classification", name="land_cover", class_names=CLASS_NAMES),
        main_score="overall_accuracy",
        metrics=STANDARD_METRICS["classification"],
        modalities=(MODALITY,),
    )

    def __init__(self, *, val_fraction: float = 0.2, seed: int = 0,
                 start_date: str = "2006-02-01", step_days: int = 2) -> None:
        if not 0.0 < val_fraction < 1.0:
            raise UsageError(f"tempcnn-toulouse: val_fraction must be in (0, 1), got {val_fraction}")
        if step_days < 1:
            raise UsageError(f"tempcnn-toulouse: step_days must be >= 1, got {step_days}")
        self.val_fraction, self.seed, self.step_days = float(val_fraction), int(seed), int(step_days)
        try:
            self.start_date = np.datetime64(start_date, "D")
        except ValueError as exc:
            raise UsageError(f"tempcnn-toulouse: start_date {start_date!r} is not a date") from exc

    @property
    def dates(self) -> np.ndarray:
        """The reconstructed calendar: ``N_DATES`` dates ``step_days`` apart from ``start_date``."""
        return self.start_date + (np.arange(N_DATES) * self.step_days).astype("timedelta64[D]")

    @cached_property
    def _raw(self) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        root = dataset_dir(FOLDER, task=self.meta.name, source=SOURCE,
                           required=(TRAIN_CSV, TEST_CSV, LEGEND))
        legend = read_legend(root / LEGEND)
        if legend != CLASS_NAMES:
            raise DataError(f"{root / LEGEND}: column 'class' lists {list(legend)}, expected "
                            f"{list(CLASS_NAMES)}")
        train = read_pixels(root / TRAIN_CSV, len(CLASS_NAMES))
        test = read_pixels(root / TEST_CSV, len(CLASS_NAMES))
        shared = set(train[2].tolist()) & set(test[2].tolist())
        if shared:
            raise DataError(f"{root / TEST_CSV}: polygons {sorted(shared)[:5]} ('polygonID') are "
                            f"also in {TRAIN_CSV}")
        return {"train": train, "test": test}

    @cached_property
    def _val_mask(self) -> np.ndarray:
        """Which rows of the training CSV go to val: whole polygons, stratified by class."""
        _, labels, pids = self._raw["train"]
        rng = np.random.default_rng(self.seed)
        val = np.zeros(len(labels), dtype=bool)
        for c in range(len(CLASS_NAMES)):
            polys = np.unique(pids[labels == c])
            if len(polys) < 2:
                continue  # a class with one polygon stays in train
            quota = self.val_fraction * (labels == c).sum()
            taken = 0
            for p in polys[rng.permutation(len(polys))][:-1]:  # leave >= 1 polygon in train
                if taken >= quota:
                    break
                val |= pids == p
                taken += int((pids == p).sum())
        return val

    def load(self, split: str) -> TaskData:
        self.check_split(split)
        return self._data[split]

    @cached_property
    def _data(self) -> dict[str, TaskData]:
        out = {}
        for split in self.meta.splits:
            source = "test" if split == "test" else "train"
            values, labels, pids = self._raw[source]
            rows = np.arange(len(labels))
            if split != "test":
                rows = rows[self._val_mask] if split == "val" else rows[~self._val_mask]
            n = len(rows)
            v = torch.from_numpy(np.ascontiguousarray(values[rows][:, :, :, None, None]))
            dates = np.broadcast_to(self.dates, (n, N_DATES)).copy()
            mask = torch.ones((n, N_DATES, 1, 1), dtype=torch.bool)  # gap-filled: all present
            mod = Modality(v, dates, mask, BANDS, UNIT)
            ids = tuple(f"{source}-row{r:03d}-poly{pids[r]}" for r in rows)
            batch = EOBatch({MODALITY: mod}, ids, {"polygon_id": pids[rows]})
            out[split] = TaskData(batch, labels[rows].astype(np.int64), pids[rows].astype(str))
        return out


__all__ = ["TempCNNToulouse", "CLASS_NAMES", "BANDS", "RAW_ENCODER_OPTIONS"]
