"""``worldcereal-croptype``: crop type of WorldCereal reference points from monthly S2 + S1.

The loader reads ``test_public_extractions.parquet`` as published in the WorldCereal
classification repository: one row per labelled point, 12 monthly composites starting at the
row's ``start_date`` in columns ``OPTICAL-<band>-ts<i>-<res>`` (Sentinel-2 L2A digital numbers,
reflectance x 10000) and ``SAR-<VV|VH>-ts<i>-20m`` (Sentinel-1 backscatter encoded as
``DN = 10 ** ((dB + 83) / 20)``); 65535 marks a missing composite. Both modalities get real
monthly dates (first day of the month the composite covers, ``start_date + i`` months). A
missing composite is masked (all bands of a modality are missing together in this file); S1
is returned in dB, ``20 log10(DN) - 83``.

Labels: ``ewoc_code`` mapped through ``crop_type_class_mappings.csv`` (codes written
``11-01-07-000-0`` there) to the legend column :data:`LEGEND` (``sampling_label``); classes
with fewer than :data:`MIN_SAMPLES` points in the file are dropped.

Split: points are grouped by a 0.1 degree latitude / longitude cell (about 11 km): nearby
fields, and the 50 locations that appear twice (same point from two reference data sets),
always share a split. Cells are assigned to train / val / test (60 / 20 / 20 % of points) by
:func:`grouped_stratified_split` with seed 0.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from ..batch import EOBatch, Modality
from ..errors import DataError
from ..metrics import STANDARD_METRICS
from .base import DatasetRef, TargetSpec, Task, TaskData, TaskMeta
from .datasets import dataset_dir

FOLDER = "worldcereal"
PARQUET = "test_public_extractions.parquet"
MAPPING = "crop_type_class_mappings.csv"
SOURCE = ("github WorldCereal/worldcereal-classification @ 6c574425, "
          "tests/worldcerealtests/testresources/")
MISSING = 65535
N_STEPS = 12
S2_BANDS = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
S2_RES = {"B02": 10, "B03": 10, "B04": 10, "B08": 10}  # others 20 m
S1_BANDS = ("VV", "VH")
LEGEND = "sampling_label"
MIN_SAMPLES = 20
# classes kept from the file (>= MIN_SAMPLES points), in this order; counts in the task card
CLASSES = ("sorghum", "maize", "other_oilseeds", "trees_mixed")
GRID_DEG = 0.1
SPLIT_SEED = 0
FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}


def s2_column(band: str, step: int) -> str:
    return f"OPTICAL-{band}-ts{step}-{S2_RES.get(band, 20)}m"


def s1_column(pol: str, step: int) -> str:
    return f"SAR-{pol}-ts{step}-20m"


def s1_dn_to_db(dn: np.ndarray) -> np.ndarray:
    """WorldCereal's uint16 S1 encoding to backscatter in dB: ``20 log10(DN) - 83``."""
    with np.errstate(divide="ignore"):
        return 20.0 * np.log10(dn.astype(np.float64)) - 83.0


def grouped_stratified_split(labels: np.ndarray, groups: np.ndarray,
                             fractions: dict[str, float], seed: int = 0, trials: int = 400
                             ) -> dict[str, np.ndarray]:
    """Assign whole groups to splits so that each split holds about its fraction of every class.

    ``trials`` seeded random group orders are tried; in each, groups are taken in that order
    and put in the split furthest below its target number of samples. The assignment with
    the smallest sum over splits and classes of ``|n_split,class / n_class - fraction|``
    (every class weighs the same; plus a large penalty for a class absent from a split)
    wins; the first wins ties. Returns
    ``{split: sample indices}`` (sorted). Deterministic for given inputs and seed.
    """
    names = list(fractions)
    frac = np.array([fractions[s] for s in names], dtype=float)
    ug, ginv = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    uc, cinv = np.unique(labels, return_inverse=True)
    counts = np.zeros((len(ug), len(uc)), dtype=float)
    np.add.at(counts, (ginv, cinv), 1.0)
    sizes = counts.sum(axis=1)
    total = counts.sum(axis=0)  # [K]
    rng = np.random.default_rng(seed)
    best, best_cost = None, np.inf
    for _ in range(trials):
        order = rng.permutation(len(ug))
        assign = np.empty(len(ug), dtype=int)
        filled = np.zeros(len(names))
        for g in order:
            s = int(np.argmax(frac * sizes.sum() - filled))
            assign[g] = s
            filled[s] += sizes[g]
        per = np.stack([counts[assign == s].sum(axis=0) for s in range(len(names))])
        cost = np.abs(per / total[None, :] - frac[:, None]).sum() + 1e3 * (per == 0).sum()
        if cost < best_cost:
            best, best_cost = assign, cost
    assert best is not None
    return {s: np.flatnonzero(best[ginv] == i) for i, s in enumerate(names)}


def grid_cell(lat: np.ndarray, lon: np.ndarray, deg: float = GRID_DEG) -> np.ndarray:
    """Label of the ``deg`` x ``deg`` latitude / longitude cell of each point."""
    i = np.floor(np.asarray(lat) / deg).astype(int)
    j = np.floor(np.asarray(lon) / deg).astype(int)
    return np.array([f"cell_{a}_{b}" for a, b in zip(i, j)])


def read_mapping(path: Path) -> dict[int, str]:
    """``crop_type_class_mappings.csv``: integer ewoc_code -> :data:`LEGEND` label."""
    import pandas as pd

    table = pd.read_csv(path, sep=";", dtype=str, encoding="utf-8-sig")
    for col in ("ewoc_code", LEGEND):
        if col not in table.columns:
            raise DataError(f"{path}: no column {col!r} (columns: {list(table.columns)})")
    codes = table["ewoc_code"].str.replace("-", "", regex=False)
    if not codes.str.fullmatch(r"\d+").all():
        bad = table["ewoc_code"][~codes.str.fullmatch(r"\d+")].iloc[0]
        raise DataError(f"{path}: field 'ewoc_code' has a malformed code {bad!r}, expected "
                        "like '11-01-07-000-0'")
    return dict(zip(codes.astype(np.int64).tolist(), table[LEGEND].fillna("").tolist()))


def _series(df, path: Path, columns: list[list[str]]) -> np.ndarray:
    """``[N, T, C]`` uint values of the given ``columns[c][t]``; DataError naming a missing one."""
    have = set(df.columns)
    for band_cols in columns:
        for col in band_cols:
            if col not in have:
                raise DataError(f"{path}: field {col!r} is missing (expected "
                                f"{len(band_cols)} monthly columns per band)")
    out = np.stack([df[cols].to_numpy() for cols in columns], axis=-1)
    if not np.issubdtype(out.dtype, np.number):
        raise DataError(f"{path}: fields {columns[0][0]}... must be numeric, got {out.dtype}")
    return out


class WorldCerealCropType(Task):
    """WorldCereal public extractions (Uganda / South Sudan 2017), 4 crop-type classes."""

    meta = TaskMeta(
        name="worldcereal-croptype", version=1,
        description="Crop type (sampling_label legend, 4 classes with >= 20 points) of "
                    "WorldCereal reference points from 12 monthly Sentinel-2 L2A and "
                    "Sentinel-1 composites (Uganda / South Sudan, Dec 2016 - Nov 2017)",
        dataset=DatasetRef(name="WorldCereal test_public_extractions.parquet",
                           url="https://github.com/WorldCereal/worldcereal-classification/tree/"
                               "6c574425/tests/worldcerealtests/testresources",
                           revision="WorldCereal/worldcereal-classification@6c574425",
                           licence="MIT",
                           citation="Van Tricht et al. (2023), WorldCereal, ESSD 15:5491-5515"),
        licence="MIT",
        split_design="points grouped by 0.1 degree lat/lon cell (floor(lat/0.1), "
                     "floor(lon/0.1)); cells assigned to train/val/test for 60/20/20 % of "
                     "points per class by a seeded search (seed 0, 400 trials, see "
                     "grouped_stratified_split); groups = cell",
        target=TargetSpec(kind="classification", name="crop_type", class_names=CLASSES),
        main_score="balanced_accuracy",
        metrics=STANDARD_METRICS["classification"],
        modalities=("s2", "s1"),
    )

    def load(self, split: str) -> TaskData:
        self.check_split(split)
        return self._data[split]

    @cached_property
    def _data(self) -> dict[str, TaskData]:
        import pandas as pd

        root = dataset_dir(FOLDER, task=self.meta.name, source=SOURCE, required=(PARQUET, MAPPING))
        path = root / PARQUET
        try:
            df = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for a broken file
            raise DataError(f"{path}: cannot be read as Parquet ({exc})") from exc
        for col in ("sample_id", "ewoc_code", "lat", "lon", "start_date"):
            if col not in df.columns:
                raise DataError(f"{path}: field {col!r} is missing")
        mapping = read_mapping(root / MAPPING)
        unknown = sorted(set(df["ewoc_code"].astype(np.int64)) - set(mapping))
        if unknown:
            raise DataError(f"{path}: field 'ewoc_code' has codes {unknown[:5]} that are not in "
                            f"{root / MAPPING}")
        labels = df["ewoc_code"].astype(np.int64).map(mapping).to_numpy()
        keep = np.isin(labels, CLASSES)
        df, labels = df[keep].reset_index(drop=True), labels[keep]
        y = np.array([CLASSES.index(c) for c in labels], dtype=np.int64)
        missing = [c for k, c in enumerate(CLASSES) if not (y == k).any()]
        if missing:
            raise DataError(f"{path}: no points of classes {missing} (field 'ewoc_code' mapped "
                            f"with {MAPPING}, column {LEGEND!r})")

        steps = range(N_STEPS)
        s2 = _series(df, path, [[s2_column(b, t) for t in steps] for b in S2_BANDS])
        s1 = _series(df, path, [[s1_column(p, t) for t in steps] for p in S1_BANDS])
        s2_valid = (s2 != MISSING).all(axis=-1)
        s1_valid = (s1 != MISSING).all(axis=-1) & (s1 > 0).all(axis=-1)
        s2_val = np.where(s2_valid[..., None], s2, 0).astype(np.float32)
        s1_val = np.where(s1_valid[..., None], s1_dn_to_db(np.where(s1 > 0, s1, 1)), 0.0)
        try:
            start = pd.to_datetime(df["start_date"]).to_numpy().astype("datetime64[M]")
        except (ValueError, TypeError) as exc:
            raise DataError(f"{path}: field 'start_date' is not a date ({exc})") from exc
        dates = (start[:, None] + np.arange(N_STEPS).astype("timedelta64[M]")).astype("datetime64[D]")

        groups = grid_cell(df["lat"].to_numpy(), df["lon"].to_numpy())
        ids = df["sample_id"].astype(str).to_numpy()
        out = {}
        for split, idx in grouped_stratified_split(y, groups, FRACTIONS, SPLIT_SEED).items():
            n = len(idx)
            mods = {
                "s2": Modality(torch.from_numpy(s2_val[idx][..., None, None]), dates[idx],
                               torch.from_numpy(s2_valid[idx][..., None, None]), S2_BANDS,
                               "reflectance_x10000"),
                "s1": Modality(torch.from_numpy(s1_val[idx].astype(np.float32)[..., None, None]),
                               dates[idx], torch.from_numpy(s1_valid[idx][..., None, None]),
                               S1_BANDS, "dB"),
            }
            extras = {"lat": df["lat"].to_numpy()[idx], "lon": df["lon"].to_numpy()[idx]}
            batch = EOBatch(mods, tuple(ids[idx].tolist()), extras)
            assert n == len(batch)
            out[split] = TaskData(batch, y[idx], groups=groups[idx])
        return out
