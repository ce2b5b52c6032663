"""``fuel-moisture`` and ``algae-blooms``: the Presto regression evaluation sets.

Both read the ``npy/`` arrays of ``nasaharvest/presto @ 13173d02, data/`` as published:
``s1_s2_era5_srtm.npy`` ``[N, T, 18]`` float64, channels (in this order) VV, VH (Sentinel-1
backscatter, dB), B2, B3, B4, B5, B6, B7, B8, B8A, B9, B11, B12 (Sentinel-2 L2A digital
numbers, reflectance x 10000), ERA5-Land 2 m temperature (K), total precipitation (metres of
water, ``total_precipitation_sum`` of ``ECMWF/ERA5_LAND/MONTHLY_AGGR``), SRTM elevation (m),
slope (degree) and NDVI; ``month.npy`` ``[N, T]`` month index 0 (January) - 11 of each step;
``latlon.npy`` ``[N, 2]`` latitude, longitude (degree); ``target.npy`` ``[N]``.

Modalities produced: ``s2`` (11 bands, ``reflectance_x10000``), ``s1`` (VV, VH, ``dB``),
``meteo`` (T2m in ``K``, precipitation converted to ``mm``), ``dem`` (elevation ``m``, slope
``degree``; one step, constant in the file) and ``ndvi`` (the file's NDVI channel, ``index``;
it is not recomputable from the file's B4 / B8 composites, so it is kept as published).
A step whose VV or VH is at or below :data:`S1_FLOOR_DB` (the -49.94 / -49.95 dB fill values,
far below the S1 noise floor) has its S1 mask set False.

Dates. ``fuel-moisture``: ``single_file_labels.geojson`` holds the label date of each
sample (the last day of the sampled month). Rows of the npy arrays are matched to it by
(site, value) and the months of ``month.npy``; the step dates are ``label date - 90 + 30 k``
days (k = 0, 1, 2), which reproduces ``month.npy`` for every sample (Presto's 30-day windows
ending at the label). ``algae-blooms``: the files hold no year, only the 12 consecutive month
indices of 12 successive 30-day windows; dates are reconstructed as ``start + 30 k`` days,
``start`` the earliest day of the first step's month consistent with all 12 months, in the
nominal year :data:`ALGAE_NOMINAL_YEARS` (months are real, days approximate, the year not).

Splits: samples grouped by 0.1 degree latitude / longitude cell (fuel moisture: cell of the
site's mean coordinate, so a site never spans two splits); cells assigned to train / val /
test (60 / 20 / 20 %) by :func:`~releo_bench.tasks.worldcereal.grouped_stratified_split`
with seed 0, stratified on target quintiles (fuel) or severity (algae).
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
from .worldcereal import grid_cell, grouped_stratified_split

FOLDER = "presto_eval"
SOURCE = "github nasaharvest/presto @ 13173d02, data/ (folders fuel_moisture/, algae_blooms/)"
URL = "https://github.com/nasaharvest/presto/tree/13173d02/data"
CITATION = ("Tseng et al. (2023), Lightweight, Pre-trained Transformers for Remote Sensing "
            "Timeseries, arXiv:2304.14065")
CHANNELS = ("VV", "VH", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12",
            "temperature_2m", "total_precipitation", "elevation", "slope", "NDVI")
S1_BANDS = ("VV", "VH")
S2_BANDS = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
METEO_BANDS = ("temperature_2m", "precipitation")
DEM_BANDS = ("elevation", "slope")
S1_FLOOR_DB = -49.5  # -49.94 / -49.95 dB fill values (far below the S1 noise floor)
ALGAE_NOMINAL_YEARS = (2001, 2003, 2000)  # 2001 unless Feb must have 29 days
GRID_DEG = 0.1
SPLIT_SEED = 0
FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}
FUEL_RANGE = (0.0, 400.0)  # file: 31.7 - 319.2 %


def _load(path: Path, dtype_kind: str, shape: tuple[int | None, ...]) -> np.ndarray:
    """One npy array, checked against ``shape`` (None = any); DataError naming the file."""
    if not path.is_file():
        raise DataError(f"{path}: file is missing")
    try:
        a = np.load(path, allow_pickle=False)
    except Exception as exc:  # numpy raises several types for a broken file
        raise DataError(f"{path}: cannot be read as .npy ({exc})") from exc
    if a.ndim != len(shape) or any(w is not None and w != h for w, h in zip(shape, a.shape)):
        want = "(" + ", ".join("*" if w is None else str(w) for w in shape) + ")"
        raise DataError(f"{path}: shape {a.shape}, expected {want}")
    if a.dtype.kind not in dtype_kind:
        raise DataError(f"{path}: dtype {a.dtype}, expected kind {dtype_kind!r}")
    return a


def read_npy(root: Path, n_steps: int, extra: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """The common npy arrays of one Presto eval folder, shapes cross-checked."""
    npy = root / "npy"
    x = _load(npy / "s1_s2_era5_srtm.npy", "f", (None, n_steps, None))
    if x.shape[2] != len(CHANNELS):
        raise DataError(f"{npy / 's1_s2_era5_srtm.npy'}: {x.shape[2]} channels, expected "
                        f"{len(CHANNELS)} ({', '.join(CHANNELS)})")
    n = x.shape[0]
    out = {"x": x,
           "month": _load(npy / "month.npy", "iu", (n, n_steps)),
           "latlon": _load(npy / "latlon.npy", "f", (n, 2)),
           "target": _load(npy / "target.npy", "iuf", (n,))}
    for name in extra:
        out[name] = _load(npy / f"{name}.npy", "U", (n,))
    if not np.isfinite(x).all():
        raise DataError(f"{npy / 's1_s2_era5_srtm.npy'}: non-finite values")
    if ((out["month"] < 0) | (out["month"] > 11)).any():
        raise DataError(f"{npy / 'month.npy'}: month indices outside 0-11")
    return out


def build_modalities(x: np.ndarray, dates: np.ndarray) -> dict[str, Modality]:
    """``[N, T, 18]`` Presto channels -> s2, s1, meteo, dem, ndvi modalities (H = W = 1)."""
    c = {name: i for i, name in enumerate(CHANNELS)}
    n, t, _ = x.shape

    def t5(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)[..., None, None])

    s1 = x[..., [c["VV"], c["VH"]]]
    s1_ok = (s1 > S1_FLOOR_DB).all(axis=-1)
    s2 = x[..., [c[b] for b in CHANNELS[2:13]]]
    meteo = np.stack([x[..., c["temperature_2m"]], 1000.0 * x[..., c["total_precipitation"]]], -1)
    dem = x[:, :1, [c["elevation"], c["slope"]]]
    full = torch.ones((n, t, 1, 1), dtype=torch.bool)
    return {
        "s2": Modality(t5(s2), dates, full.clone(), S2_BANDS, "reflectance_x10000"),
        "s1": Modality(t5(np.where(s1_ok[..., None], s1, 0.0)), dates,
                       torch.from_numpy(s1_ok[..., None, None]), S1_BANDS, "dB"),
        "meteo": Modality(t5(meteo), dates, full.clone(), METEO_BANDS, ("K", "mm")),
        "dem": Modality(t5(dem), dates[:, :1].copy(), torch.ones((n, 1, 1, 1), dtype=torch.bool),
                        DEM_BANDS, ("m", "degree")),
        "ndvi": Modality(t5(x[..., [c["NDVI"]]]), dates, full.clone(), ("NDVI",), "index"),
    }


def strata(values: np.ndarray, bins: int = 5) -> np.ndarray:
    """Quantile bin (0..bins-1) of each value, to stratify a regression split."""
    edges = np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1])
    return np.searchsorted(edges, values, side="right")


def _splits(x: np.ndarray, dates: np.ndarray, y: np.ndarray, groups: np.ndarray,
            labels: np.ndarray, ids: np.ndarray, latlon: np.ndarray,
            target_time: np.ndarray | None) -> dict[str, TaskData]:
    mods = build_modalities(x, dates)
    out = {}
    for split, idx in grouped_stratified_split(labels, groups, FRACTIONS, SPLIT_SEED).items():
        batch = EOBatch({k: m.index(idx) for k, m in mods.items()}, tuple(ids[idx].tolist()),
                        {"lat": latlon[idx, 0], "lon": latlon[idx, 1]})
        out[split] = TaskData(batch, y[idx], groups=groups[idx],
                              target_time=None if target_time is None else target_time[idx])
    return out


def _meta(name: str, description: str, folder: str, target: TargetSpec, strat: str) -> TaskMeta:
    return TaskMeta(
        name=name, version=1, description=description,
        dataset=DatasetRef(name=f"Presto evaluation data, {folder}", url=URL,
                           revision="nasaharvest/presto@13173d02", licence="MIT",
                           citation=CITATION),
        licence="MIT",
        split_design=f"samples grouped by 0.1 degree lat/lon cell (floor(lat/0.1), "
                     f"floor(lon/0.1)){strat}; cells assigned to train/val/test for 60/20/20 % "
                     "of samples by grouped_stratified_split (seed 0, 400 trials); "
                     "groups = cell",
        target=target, main_score="rmse", metrics=STANDARD_METRICS["regression"],
        modalities=("s2", "s1", "meteo", "dem", "ndvi"),
    )


class FuelMoisture(Task):
    """Live fuel moisture content (%) of western-US sampling sites, 3 x 30-day S1 + S2."""

    meta = _meta("fuel-moisture",
                 "Live fuel moisture content (% of dry weight) at National Fuel Moisture "
                 "Database sites (western US, 2015-2019) from three 30-day Sentinel-1 / "
                 "Sentinel-2 / ERA5 composites before the sampling date, plus SRTM",
                 "fuel_moisture",
                 TargetSpec(kind="regression", name="live_fuel_moisture", unit="percent",
                            range=FUEL_RANGE),
                 " of each site's mean coordinate (a site never spans two cells); "
                 "stratified on target quintiles")

    def load(self, split: str) -> TaskData:
        self.check_split(split)
        return self._data[split]

    @cached_property
    def _data(self) -> dict[str, TaskData]:
        root = dataset_dir(f"{FOLDER}/fuel_moisture", task=self.meta.name, source=SOURCE,
                           required=("npy", "single_file_labels.geojson"))
        a = read_npy(root, 3, extra=("site",))
        label_date = match_label_dates(root / "single_file_labels.geojson", a["site"],
                                       a["target"], a["month"])
        dates = label_date[:, None] + (-90 + 30 * np.arange(3)).astype("timedelta64[D]")
        y = a["target"].astype(np.float64)
        site, ll = a["site"], a["latlon"]
        _, inv = np.unique(site, return_inverse=True)
        mean_ll = np.stack([np.bincount(inv, ll[:, k]) / np.bincount(inv) for k in (0, 1)], 1)
        groups = grid_cell(mean_ll[inv, 0], mean_ll[inv, 1], GRID_DEG)
        ids = np.array([f"fm{i:04d}" for i in range(len(y))])
        return _splits(a["x"], dates, y, groups, strata(y), ids, ll, label_date)


def match_label_dates(path: Path, site: np.ndarray, target: np.ndarray,
                      month: np.ndarray) -> np.ndarray:
    """Label date of each npy row from the GeoJSON: same site and value, months consistent.

    Candidates are consumed once each, in file order; a DataError names the first row with
    none left.
    """
    import json

    try:
        feats = json.loads(path.read_text())["features"]
    except Exception as exc:
        raise DataError(f"{path}: cannot be read as GeoJSON ({exc})") from exc
    for field in ("percent(t)", "site", "date"):
        absent = [i for i, f in enumerate(feats) if field not in f.get("properties", {})]
        if absent:
            raise DataError(f"{path}: field {field!r} is missing (feature {absent[0]})")
    candidates: dict[tuple[str, float], list[np.datetime64]] = {}
    for f in feats:
        p = f["properties"]
        try:
            d = np.datetime64(str(p["date"])[:10], "D")
        except ValueError as exc:
            raise DataError(f"{path}: field 'date' is not a date ({p['date']!r})") from exc
        candidates.setdefault((str(p["site"]), round(float(p["percent(t)"]), 4)), []).append(d)
    out = np.empty(len(site), dtype="datetime64[D]")
    offsets = (-90 + 30 * np.arange(month.shape[1])).astype("timedelta64[D]")
    for i, (s, v) in enumerate(zip(site, target)):
        pool = candidates.get((str(s), round(float(v), 4)), [])
        for j, d in enumerate(pool):
            months = ((d + offsets).astype("datetime64[M]").astype(int) % 12)
            if (months == month[i]).all():
                out[i] = pool.pop(j)
                break
        else:
            raise DataError(f"{path}: no feature with site {s!r}, 'percent(t)' {v} and a "
                            f"'date' matching months {month[i].tolist()} (npy row {i})")
    return out


class AlgaeBlooms(Task):
    """Cyanobacteria bloom severity (1-5) of US water bodies, 12 monthly S1 + S2."""

    meta = _meta("algae-blooms",
                 "Cyanobacteria bloom severity (1-5, WHO density classes of the "
                 "Tick Tick Bloom challenge) of US inland water samples from 12 monthly "
                 "Sentinel-1 / Sentinel-2 / ERA5 composites plus SRTM; year not in the data",
                 "algae_blooms",
                 TargetSpec(kind="regression", name="bloom_severity", unit="dimensionless",
                            range=(1.0, 5.0)),
                 "; stratified on severity")

    def load(self, split: str) -> TaskData:
        self.check_split(split)
        return self._data[split]

    @cached_property
    def _data(self) -> dict[str, TaskData]:
        root = dataset_dir(f"{FOLDER}/algae_blooms", task=self.meta.name, source=SOURCE,
                           required=("npy",))
        a = read_npy(root, 12, extra=("uid",))
        month = a["month"]
        y = a["target"]
        if ((y < 1) | (y > 5)).any() or (y != np.round(y)).any():
            raise DataError(f"{root / 'npy/target.npy'}: severity outside the integers 1-5")
        dates = algae_dates(month)
        if dates is None:
            raise DataError(f"{root / 'npy/month.npy'}: month indices are not 12 successive "
                            "30-day steps")
        groups = grid_cell(a["latlon"][:, 0], a["latlon"][:, 1], GRID_DEG)
        return _splits(a["x"], dates, y.astype(np.float64), groups, y.astype(int),
                       a["uid"].astype(str), a["latlon"], None)


def algae_dates(month: np.ndarray, years: tuple[int, ...] = ALGAE_NOMINAL_YEARS
                ) -> np.ndarray | None:
    """Reconstructed step dates ``start + 30 k`` days from the month indices, or None.

    The files hold only the month (0-11) of each step, and Presto's steps are 30-day windows
    (12 x 30 days, so one calendar month can appear twice). ``start`` is the earliest day of
    the first step's month, in the first of ``years`` (nominal: the real year is unknown)
    for which the months of all steps match (a pattern that needs a 29-day February falls to
    a later candidate year); None if no start fits a row.
    """
    n, t = month.shape
    steps = (30 * np.arange(t)).astype("timedelta64[D]")
    out = np.full((n, t), np.datetime64("NaT"), dtype="datetime64[D]")
    todo = np.ones(n, dtype=bool)
    for year in years:
        first = np.datetime64(f"{year}-01", "M") + month[:, 0].astype("timedelta64[M]")
        first = first.astype("datetime64[D]")
        for offset in range(31):
            cand = first[:, None] + np.timedelta64(offset, "D") + steps
            ok = todo & ((cand.astype("datetime64[M]").astype(int) % 12) == month).all(axis=1)
            out[ok], todo[ok] = cand[ok], False
    return None if todo.any() else out
