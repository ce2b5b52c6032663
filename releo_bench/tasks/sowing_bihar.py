"""``sowing-date-bihar``: sowing date of smallholder wheat fields from Sentinel-2 field means.

Data: JainsLab/sowing-date-smallholders @ 84f01d9b. ``data/field_data/samples-bihar.gpkg``:
37 wheat fields (rabi 2022-23) with the surveyed sowing date ``sow_2022`` and the key
``fkey``. ``output/raw_timeseries/gee_metrics_sentinel-2_data_2022-01-01_to_2023-12-31_mean.csv``:
per field and S2 acquisition, the mean over the field's clear pixels of the 12 spectral bands
of ``COPERNICUS/S2_SR_HARMONIZED`` (L2A, digital numbers = reflectance x 10000 with the
baseline-04.00 offset removed by the harmonisation; L2A has no B10), the mean SCL class and
Sen2Cor cloud probability, and the fraction of unmasked pixels (``mask``; upstream masked
edges, QA60 clouds / cirrus and s2cloudless probability >= 65 pixel by pixel).

Target: sowing date as days since 2022-01-01 (the authors' ``dop``; 2022-11-05 = 308).
Input: the series of every acquisition from ``season_start`` to ``season_end``
(2022-09-01 .. 2023-04-30), irregular dates kept, an acquisition masked unless it is clear:
all 12 bands present, ``mask >= min_clear`` (0.5), mean SCL within [4, 5] (vegetation / bare
soil only) and mean cloud probability <= 10 %. Two products of the same day: the clearer
is kept. ``target_time`` is None: the target *is* a date, and giving it would leak it.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from ..batch import EOBatch, Modality, pad_series
from ..errors import DataError, UsageError
from ..metrics import STANDARD_METRICS
from .base import DatasetRef, TargetSpec, Task, TaskData, TaskMeta
from .datasets import dataset_dir

FOLDER = "sowing_bihar"
FIELDS = "data/field_data/samples-bihar.gpkg"
S2_CSV = "output/raw_timeseries/gee_metrics_sentinel-2_data_2022-01-01_to_2023-12-31_mean.csv"
BASELINE_CSV = "output/sowing_date_metrics_minimum_approach.csv"
SOURCE = "github.com/JainsLab/sowing-date-smallholders @ 84f01d9b (data/ and output/)"
BANDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12")
REFERENCE = np.datetime64("2022-01-01", "D")
N_FOLDS = 5
SOWING_RANGE = (243.0, 484.0)  # 2022-09-01 .. 2023-04-30: sowing lies inside the input window


def _require(df: pd.DataFrame, columns: tuple[str, ...] | list[str], where: str | Path) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{where}: missing column(s) {missing} (columns found: "
                        f"{list(df.columns)[:15]}{'...' if len(df.columns) > 15 else ''})")


def _dates(values: pd.Series, where: str | Path, column: str) -> np.ndarray:
    parsed = pd.to_datetime(values, errors="coerce")
    if parsed.isna().any():
        row = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        raise DataError(f"{where}: column {column!r} row {row}: cannot read {values.iloc[row]!r} "
                        "as a date")
    return parsed.to_numpy().astype("datetime64[D]")


def days_since_reference(dates: np.ndarray) -> np.ndarray:
    """Days since 2022-01-01 (the target's unit), as float."""
    return (np.asarray(dates, dtype="datetime64[D]") - REFERENCE).astype(np.int64).astype(np.float64)


class SowingBihar(Task):
    """Options: ``fold`` (0..4, default 0: which of the 5 field folds is the test split),
    ``seed`` (fold assignment seed, default 0), ``season_start`` / ``season_end`` (input
    window), ``min_clear`` (minimum fraction of clear pixels of a valid date, default 0.5)."""

    meta = TaskMeta(
        name="sowing-date-bihar", version=1,
        description="Surveyed sowing date of 37 smallholder wheat fields in Bihar (rabi "
                    "2022-23) from field-mean Sentinel-2 L2A series Sept 2022 - Apr 2023",
        dataset=DatasetRef(
            name="Mapping sowing dates in smallholder farming systems (Bihar subset)",
            url="https://github.com/JainsLab/sowing-date-smallholders", revision="84f01d9b",
            licence="MIT",
            citation="Mapping grain crop sowing date in smallholder systems using optical "
                     "imagery, Remote Sensing Applications: Society and Environment (2025), "
                     "doi:10.1016/j.rsase.2025.101660"),
        licence="MIT",
        splits=("train", "test"),
        split_design="5-fold cross-validation grouped by field: the 37 fields (fkey) are "
                     "shuffled with seed 0 and cut into folds of 8, 8, 7, 7, 7; option fold=k "
                     "(default 0) makes fold k the test split and the other 29-30 fields the "
                     "train split (no val split: too few fields). Report the mean over folds.",
        target=TargetSpec(kind="regression", name="sowing_day", unit="days since 2022-01-01",
                          range=SOWING_RANGE),
        main_score="mae",
        metrics=STANDARD_METRICS["regression"],
        modalities=("s2",),
    )

    def __init__(self, *, fold: int = 0, seed: int = 0, season_start: str = "2022-09-01",
                 season_end: str = "2023-04-30", min_clear: float = 0.5) -> None:
        if fold not in range(N_FOLDS):
            raise UsageError(f"sowing-date-bihar: fold must be one of 0..{N_FOLDS - 1}, got {fold!r}")
        try:
            start, end = np.datetime64(season_start, "D"), np.datetime64(season_end, "D")
        except ValueError as exc:
            raise UsageError(f"sowing-date-bihar: season_start / season_end must be dates: {exc}") from exc
        if not end > start:
            raise UsageError(f"sowing-date-bihar: season_end {end} must be after season_start {start}")
        if not 0.0 < min_clear <= 1.0:
            raise UsageError(f"sowing-date-bihar: min_clear must be in (0, 1], got {min_clear}")
        self.fold, self.seed, self.start, self.end = int(fold), int(seed), start, end
        self.min_clear = float(min_clear)
        if fold != 0 or seed != 0:
            self.meta = self.meta.model_copy(update={
                "split_design": f"5-fold CV grouped by field, seed {seed}; test = fold {fold}"})

    @property
    def root(self) -> Path:
        return dataset_dir(FOLDER, task=self.meta.name, source=SOURCE, required=(FIELDS, S2_CSV))

    # -- reading --------------------------------------------------------------------------
    @cached_property
    def fields(self) -> pd.DataFrame:
        """``fkey`` and surveyed ``sow_2022`` of every field, sorted by fkey."""
        path = self.root / FIELDS
        try:
            import pyogrio

            df = pyogrio.read_dataframe(path, read_geometry=False)
        except Exception as exc:  # pyogrio raises its own error types for unreadable files
            raise DataError(f"{path}: cannot read the field polygons ({exc})") from exc
        _require(df, ["fkey", "sow_2022"], path)
        keys = pd.to_numeric(df["fkey"], errors="coerce")
        if keys.isna().any() or keys.duplicated().any():
            raise DataError(f"{path}: column 'fkey' must hold unique integer field keys")
        out = pd.DataFrame({"fkey": keys.astype(np.int64),
                            "sow_2022": _dates(df["sow_2022"], path, "sow_2022")})
        return out.sort_values("fkey").reset_index(drop=True)

    @cached_property
    def _series(self) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        path = self.root / S2_CSV
        try:
            df = pd.read_csv(path, low_memory=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: cannot read ({exc})") from exc
        _require(df, ["fkey", "day", "mask", "SCL", "MSK_CLDPRB", *BANDS], path)
        day = _dates(df["day"], path, "day")
        keep = (day >= self.start) & (day <= self.end)
        df, day = df.loc[keep].reset_index(drop=True), day[keep]
        refl = df[list(BANDS)].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
        clear = pd.to_numeric(df["mask"], errors="coerce").to_numpy(np.float64)
        scl = pd.to_numeric(df["SCL"], errors="coerce").to_numpy(np.float64)
        cloud = pd.to_numeric(df["MSK_CLDPRB"], errors="coerce").to_numpy(np.float64)
        with np.errstate(invalid="ignore"):
            valid = (np.isfinite(refl).all(axis=1) & (clear >= self.min_clear)
                     & (scl >= 4.0) & (scl <= 5.0) & (cloud <= 10.0))
        keys = pd.to_numeric(df["fkey"], errors="coerce")
        if keys.isna().any():
            raise DataError(f"{path}: column 'fkey' has a missing or non-integer value")
        fkey = keys.to_numpy().astype(np.int64)
        # per field, by day; of two products on one day the valid / clearer one comes first
        order = np.lexsort((-np.nan_to_num(clear, nan=-1.0), ~valid, day, fkey))
        out = {}
        for k in np.unique(fkey):
            rows = order[fkey[order] == k]
            d = day[rows]
            first = np.r_[True, d[1:] != d[:-1]]
            rows = rows[first]
            values = np.where(valid[rows, None], refl[rows], 0.0).astype(np.float32)
            out[int(k)] = (values, day[rows], valid[rows])
        return out

    @cached_property
    def _folds(self) -> np.ndarray:
        """Fold index 0..4 per row of :attr:`fields`."""
        n = len(self.fields)
        rng = np.random.default_rng(self.seed)
        fold = np.empty(n, dtype=np.int64)
        for k, part in enumerate(np.array_split(rng.permutation(n), N_FOLDS)):
            fold[part] = k
        return fold

    def fold_fields(self, split: str) -> np.ndarray:
        """The fkeys of one split, in the order of the split's samples."""
        self.check_split(split)
        sel = (self._folds == self.fold) if split == "test" else (self._folds != self.fold)
        return self.fields["fkey"].to_numpy()[sel]

    def load(self, split: str) -> TaskData:
        self.check_split(split)
        return self._data[split]

    @cached_property
    def _data(self) -> dict[str, TaskData]:
        fields, series = self.fields, self._series
        missing = [int(k) for k in fields["fkey"] if int(k) not in series or not series[int(k)][2].any()]
        if missing:
            raise DataError(f"{self.root / S2_CSV}: no clear Sentinel-2 date between {self.start} "
                            f"and {self.end} for field(s) {missing} (column 'fkey')")
        sow = dict(zip(fields["fkey"].astype(int), fields["sow_2022"].to_numpy()))
        out = {}
        for split in self.meta.splits:
            keys = self.fold_fields(split)
            values, dates, mask = pad_series([(series[int(k)][0][:, :, None, None], series[int(k)][1],
                                               series[int(k)][2][:, None, None]) for k in keys])
            s2 = Modality(values, dates, mask, BANDS, "reflectance_x10000")
            batch = EOBatch({"s2": s2}, tuple(f"field-{k}" for k in keys), {"fkey": keys})
            target = days_since_reference(np.array([sow[int(k)] for k in keys]))
            out[split] = TaskData(batch, target, np.array([f"field-{k}" for k in keys]))
        return out


def read_authors_baseline(root: Path) -> pd.DataFrame:
    """The authors' minimum-based predictions: one row per (fkey, sensor, smooth)."""
    path = root / BASELINE_CSV
    try:
        df = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from exc
    _require(df, ["fkey", "predicted_sowing_dop", "sow_dop_survey", "sensor", "smooth"], path)
    for c in ("fkey", "predicted_sowing_dop", "sow_dop_survey"):
        v = pd.to_numeric(df[c], errors="coerce")
        if v.isna().any():
            row = int(np.flatnonzero(v.isna().to_numpy())[0])
            raise DataError(f"{path}: column {c!r} row {row}: {df[c].iloc[row]!r} is not a number")
        df[c] = v
    return df


def authors_baseline_errors(task: SowingBihar, split: str = "test", *, sensor: str = "sentinel-2",
                            smooth: str = "sg") -> np.ndarray:
    """Errors (predicted - surveyed, days) of the authors' minimum-based method on the fields of
    ``split``, in the split's sample order. The method needs no training, so its errors on a
    fold are directly comparable with a probe tested on the same fold.

    ``sensor``: ``sentinel-2`` (default), ``HLS`` or ``MODIS`` (MODIS lacks 4 fields: NaN);
    ``smooth``: ``sg`` (Savitzky-Golay, default) or ``spline``. Raises
    :class:`~releo_bench.errors.DataError` if the survey dates in the baseline file disagree
    with the field file.
    """
    df = read_authors_baseline(task.root)
    path = task.root / BASELINE_CSV
    sel = df[(df["sensor"] == sensor) & (df["smooth"] == smooth)]
    if sel.empty:
        raise DataError(f"{path}: no rows with sensor {sensor!r} and smooth {smooth!r} (columns "
                        f"'sensor', 'smooth'; have {sorted(set(zip(df['sensor'], df['smooth'])))})")
    if sel["fkey"].duplicated().any():
        raise DataError(f"{path}: field(s) {sorted(sel.loc[sel['fkey'].duplicated(), 'fkey'].astype(int))[:5]} "
                        f"appear twice for sensor {sensor!r}, smooth {smooth!r}")
    by_key = sel.set_index(sel["fkey"].astype(int))
    keys = task.fold_fields(split)
    truth = dict(zip(task.fields["fkey"].astype(int),
                     days_since_reference(task.fields["sow_2022"].to_numpy())))
    errors = np.full(len(keys), np.nan)
    for i, k in enumerate(keys):
        if int(k) not in by_key.index:
            continue
        row = by_key.loc[int(k)]
        if float(row["sow_dop_survey"]) != truth[int(k)]:
            raise DataError(f"{path}: field {int(k)}: column 'sow_dop_survey' = "
                            f"{row['sow_dop_survey']} but {FIELDS} says {truth[int(k)]:.0f} "
                            "days since 2022-01-01")
        errors[i] = float(row["predicted_sowing_dop"]) - truth[int(k)]
    return errors


__all__ = ["SowingBihar", "authors_baseline_errors", "read_authors_baseline", "BANDS"]
