"""``lai-insitu``: CESBIO in-situ LAI / PAI matched to THEIA (MAJA) Sentinel-2 L2A point series.

Data: ``lai_insitu_cesbio/processed/acquisitions_sampling.zip`` from the PROSAIL-VAE
repository (Evoland-Land-Monitoring-Evolution/prosailvae @ 559b7ec4, ``field_data/``), read
directly from the zip. Each CSV inside holds, for one site (tile, year), one row per
(S2 acquisition, field measurement): the ten 10/20 m bands as surface reflectance 0-1, the
MAJA masks (saturation, cloud, edge = no data, geophysical bit field), the acquisition date and
the field record (date, instrument values, coordinates). The first, unnamed column numbers
the field measurements of the file; it repeats for every acquisition.

One sample = one field measurement: its S2 series from ``days_before`` days before to
``days_after`` days after the field date (irregular dates, every acquisition kept, cloudy /
no-data ones masked), ``target_time`` = the field date, target = the site's LAI estimator
(see :data:`SOURCES`). The task card (``tasks/lai-insitu/README.md``) gives the counts.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from ..batch import EOBatch, Modality, pad_series
from ..errors import DataError, UsageError
from ..metrics import STANDARD_METRICS
from .base import DatasetRef, TargetSpec, Task, TaskData, TaskMeta
from .datasets import dataset_dir

FOLDER = "lai_insitu_cesbio"
ZIP_PATH = "processed/acquisitions_sampling.zip"
SOURCE = ("github.com/Evoland-Land-Monitoring-Evolution/prosailvae @ 559b7ec4, folder "
          "field_data/processed/ (acquisitions_sampling.zip)")
BANDS = ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12")
MASK_COLUMNS = ("sat_mask", "cloud_mask", "edge_mask", "geophysical_mask")
# MAJA geophysical mask (MG2) bits that make an observation unusable: 2 cloud, 4 snow,
# 8 cloud shadow (bit 1 = water is kept: it is a surface, not a contamination)
GEOPHYSICAL_REJECT = 2 | 4 | 8
SITES = ("france", "italy", "spain")
SPLIT_FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}
LAI_RANGE = (0.0, 10.0)


@dataclass(frozen=True)
class Source:
    """One CSV of the zip: its site, the LAI column used as target and the coordinates."""

    site: str
    key: str  # the CSV is acquisitions_sampling_<key>.csv
    target: str
    x: str
    y: str
    lonlat: bool  # True: x, y are WGS84 lon / lat; False: UTM metres

    @property
    def member(self) -> str:
        return f"acquisitions_sampling_{self.key}.csv"


# The target column per site is the one the PROSAIL-VAE authors configured for their
# validation (field_data/README.org): LAI-2000 effective PAI (3 rings) in France, LI-COR
# LAI-2000 in Italy, AccuPAR in Spain. In Spain it is also the only estimator measured at every
# point (LicorLAI is 0 where it was not measured in 2017 and absent in 2018).
SOURCES: tuple[Source, ...] = (
    Source("france", "france_T31TCJ_gai", "PAIeff – LAI2000, 3 rings", "X-WGS84", "Y-WGS84", True),
    Source("italy", "italy_T33TWF_", "LicorLAI", "Longitude", "Latitude", True),
    Source("italy", "italy_T33TWG_", "LicorLAI", "Longitude", "Latitude", True),
    Source("spain", "spain_T30TUM_2017", "AccuPAR", "X_UTM", "Y_UTM", False),
    Source("spain", "spain_T30TUM_2018", "LAI_AccuPA", "X_UTM", "Y_UTM", False),
)


def _require(df: pd.DataFrame, columns: tuple[str, ...] | list[str], where: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{where}: missing column(s) {missing} (columns found: "
                        f"{list(df.columns)[:12]}{'...' if len(df.columns) > 12 else ''})")


def _dates(values: pd.Series, where: str, column: str) -> np.ndarray:
    parsed = pd.to_datetime(values, errors="coerce")
    bad = parsed.isna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{where}: column {column!r} row {row}: cannot read {values.iloc[row]!r} "
                        "as a date (expected YYYY-MM-DD)")
    return parsed.to_numpy().astype("datetime64[D]")


def _numeric(df: pd.DataFrame, columns: tuple[str, ...], where: str) -> np.ndarray:
    out = np.empty((len(df), len(columns)), dtype=np.float64)
    for j, c in enumerate(columns):
        v = pd.to_numeric(df[c], errors="coerce")
        if v.isna().any():
            row = int(np.flatnonzero(v.isna().to_numpy())[0])
            raise DataError(f"{where}: column {c!r} row {row}: {df[c].iloc[row]!r} is not a number")
        out[:, j] = v.to_numpy(dtype=np.float64)
    return out


def _metres(x: np.ndarray, y: np.ndarray, lonlat: bool) -> np.ndarray:
    if not lonlat:
        return np.c_[x, y]
    lat0 = np.deg2rad(np.mean(y))  # local equirectangular projection, plenty for 100 m links
    return np.c_[x * 111_320.0 * np.cos(lat0), y * 110_540.0]


def _clusters(xy: np.ndarray, distance_m: float) -> np.ndarray:
    """Single-linkage clusters of points closer than ``distance_m``; labels 0.. in the order
    of the lexicographically sorted coordinates (deterministic)."""
    from scipy.cluster.hierarchy import fcluster, linkage

    if len(xy) == 1:
        return np.zeros(1, dtype=np.int64)
    raw = fcluster(linkage(xy, method="single"), t=distance_m, criterion="distance")
    order = np.lexsort((xy[:, 1], xy[:, 0]))
    relabel: dict[int, int] = {}
    for i in order:
        relabel.setdefault(int(raw[i]), len(relabel))
    return np.array([relabel[int(r)] for r in raw], dtype=np.int64)


@dataclass
class _Sample:
    sample_id: str
    site: str
    source: str
    field_date: np.datetime64
    target: float
    x_m: float  # coordinates as in the file (lon / lat or UTM)
    y_m: float
    key: tuple[float, float, str]  # (lon/x, lat/y, date) to spot the same measurement twice
    values: np.ndarray  # [T, C]
    dates: np.ndarray  # [T]
    valid: np.ndarray  # [T]


class LaiInsitu(Task):
    """In-situ LAI from the surrounding Sentinel-2 L2A series (real clouds, irregular dates).

    Options (all keyword): ``test_site`` (one of ``france``, ``italy``, ``spain``: hold that
    site out as the whole test split, train / val on the others; for leave-one-site-out
    cross-validation), ``sites`` (restrict every split to these sites, e.g. ``("spain",)`` for
    a site-by-site evaluation), ``seed`` (split seed, default 0), ``days_before`` /
    ``days_after`` (series window around the field date, default 60 / 30 days),
    ``max_gap_days`` (a sample needs a clear acquisition within this many days of the field
    date, default 15), ``cluster_m`` (field groups: points closer than this are linked,
    default 100 m).
    """

    meta = TaskMeta(
        name="lai-insitu", version=1,
        description="In-situ LAI / effective PAI (LAI-2000, LI-COR, AccuPAR) of crops at CESBIO "
                    "and partner sites in France, Italy and Spain (2017-2018), from the "
                    "THEIA/MAJA Sentinel-2 L2A point series around the field date",
        dataset=DatasetRef(
            name="PROSAIL-VAE field validation data (CESBIO in-situ LAI + S2 L2A samplings)",
            url="https://github.com/Evoland-Land-Monitoring-Evolution/prosailvae",
            revision="559b7ec4", licence="AGPL-3.0",
            citation="Zerah et al., PROSAIL-VAE (CESBIO); field data from CESBIO and partners, "
                     "field_data/processed/acquisitions_sampling.zip"),
        licence="AGPL-3.0",
        split_design="samples grouped by field: points (ESUs) closer than 100 m are linked "
                     "(single linkage) into one group, per site; within each site the groups "
                     "are shuffled with seed 0 and filled 60/20/20 % of samples into "
                     "train/val/test, so every site is in every split and no field is in two. "
                     "Option test_site=<site> holds one site out as the test split "
                     "(train/val 80/20 from the others); option sites=(...) restricts to sites.",
        target=TargetSpec(kind="regression", name="lai", unit="m2/m2", range=LAI_RANGE),
        main_score="rmse",
        metrics=STANDARD_METRICS["regression"],
        modalities=("s2",),
    )

    def __init__(self, *, test_site: str | None = None, sites: tuple[str, ...] | list[str] | None = None,
                 seed: int = 0, days_before: int = 60, days_after: int = 30,
                 max_gap_days: int = 15, cluster_m: float = 100.0) -> None:
        chosen = tuple(SITES if sites is None else ([sites] if isinstance(sites, str) else sites))
        unknown = [s for s in chosen if s not in SITES]
        if unknown or not chosen:
            raise UsageError(f"lai-insitu: unknown site(s) {unknown or chosen}; sites are {list(SITES)}")
        if test_site is not None:
            if test_site not in SITES:
                raise UsageError(f"lai-insitu: test_site must be one of {list(SITES)}, got {test_site!r}")
            if test_site not in chosen:
                raise UsageError(f"lai-insitu: test_site {test_site!r} is not in sites {list(chosen)}")
            if len(chosen) < 2:
                raise UsageError("lai-insitu: test_site needs at least one other site to train on")
        if days_before < 0 or days_after < 0 or max_gap_days < 0:
            raise UsageError("lai-insitu: days_before, days_after and max_gap_days must be >= 0")
        self.test_site, self.sites, self.seed = test_site, chosen, int(seed)
        self.days_before, self.days_after = int(days_before), int(days_after)
        self.max_gap_days, self.cluster_m = int(max_gap_days), float(cluster_m)
        if test_site is not None or chosen != SITES:
            design = f"sites {list(chosen)}; " + (
                f"test = every sample of site {test_site!r}; train/val = the other sites' field "
                f"groups 80/20 with seed {seed}" if test_site else
                f"field groups (100 m single linkage) 60/20/20 per site with seed {seed}")
            self.meta = self.meta.model_copy(update={"split_design": design})

    # -- reading --------------------------------------------------------------------------
    @property
    def zip_path(self) -> Path:
        return dataset_dir(FOLDER, task=self.meta.name, source=SOURCE, required=(ZIP_PATH,)) / ZIP_PATH

    def _read_source(self, zf: zipfile.ZipFile, zpath: Path, src: Source) -> tuple[list[_Sample], dict[str, int]]:
        names = [n for n in zf.namelist() if n.rsplit("/", 1)[-1] == src.member]
        if not names:
            raise DataError(f"{zpath}: no member {src.member!r} in the zip (members: "
                            f"{[n.rsplit('/', 1)[-1] for n in zf.namelist() if n.endswith('.csv')]})")
        where = f"{zpath}::{names[0]}"
        with zf.open(names[0]) as fh:
            df = pd.read_csv(fh, low_memory=False)
        idx_col = df.columns[0]
        _require(df, ["field_date", "s2_date", *BANDS, *MASK_COLUMNS, src.target, src.x, src.y], where)
        if len(df) == 0:
            raise DataError(f"{where}: no rows")
        measurement = pd.to_numeric(df[idx_col], errors="coerce")
        if measurement.isna().any():
            raise DataError(f"{where}: first column (measurement number) must be an integer")
        meas = measurement.to_numpy(dtype=np.int64)
        field = _dates(df["field_date"], where, "field_date")
        s2 = _dates(df["s2_date"], where, "s2_date")
        refl = _numeric(df, BANDS, where)
        masks = _numeric(df, MASK_COLUMNS, where).astype(np.int64)
        xy = _numeric(df, (src.x, src.y), where)
        target = pd.to_numeric(df[src.target], errors="coerce").to_numpy(dtype=np.float64)
        valid = ((masks[:, 0] == 0) & (masks[:, 1] == 0) & (masks[:, 2] == 0)
                 & ((masks[:, 3] & GEOPHYSICAL_REJECT) == 0)
                 & np.isfinite(refl).all(axis=1) & (refl != 0).any(axis=1))

        counts = {"measurements": 0, "no_target": 0, "no_clear_date": 0}
        order = np.lexsort((~valid, s2, meas))  # per measurement, by date, valid rows first
        meas, field, s2, refl, valid, xy, target = (a[order] for a in (meas, field, s2, refl, valid, xy, target))
        starts = np.flatnonzero(np.r_[True, meas[1:] != meas[:-1]])
        ends = np.r_[starts[1:], len(meas)]
        samples = []
        for a, b in zip(starts, ends):
            counts["measurements"] += 1
            m = int(meas[a])
            if (field[a:b] != field[a]).any() or (np.nan_to_num(target[a:b], nan=-1.0) != np.nan_to_num(target[a], nan=-1.0)).any():
                raise DataError(f"{where}: measurement {m} has different 'field_date' or "
                                f"{src.target!r} values on different acquisitions")
            y = float(target[a])
            if not np.isfinite(y):
                counts["no_target"] += 1
                continue
            if not LAI_RANGE[0] <= y <= LAI_RANGE[1]:
                raise DataError(f"{where}: column {src.target!r}, measurement {m}: LAI {y} outside "
                                f"{LAI_RANGE}")
            gap = (s2[a:b] - field[a]).astype(np.int64)
            keep = (gap >= -self.days_before) & (gap <= self.days_after)
            # one observation per date: rows are sorted valid-first within a date
            dd = s2[a:b]
            first = np.r_[True, dd[1:] != dd[:-1]]
            keep &= first
            v = valid[a:b]
            if not (keep & v & (np.abs(gap) <= self.max_gap_days)).any():
                counts["no_clear_date"] += 1
                continue
            mx, my = xy[a]
            samples.append(_Sample(
                sample_id=f"{src.key.rstrip('_')}-{m:04d}", site=src.site, source=src.key,
                field_date=field[a], target=y, x_m=float(mx), y_m=float(my),
                key=(round(float(mx), 6), round(float(my), 6), str(field[a])),
                values=refl[a:b][keep].astype(np.float32), dates=dd[keep], valid=v[keep]))
        return samples, counts

    @cached_property
    def _all(self) -> tuple[list[_Sample], dict[str, dict[str, int]]]:
        zpath = self.zip_path
        try:
            zf = zipfile.ZipFile(zpath)
        except zipfile.BadZipFile as exc:
            raise DataError(f"{zpath}: not a readable zip archive ({exc})") from exc
        samples: list[_Sample] = []
        report: dict[str, dict[str, int]] = {}
        with zf:
            for src in SOURCES:
                if src.site not in self.sites:
                    continue
                got, counts = self._read_source(zf, zpath, src)
                # a point seen on two overlapping tiles (Italy T33TWF / T33TWG) is one
                # measurement: keep it from the first file
                seen = {s.key for s in samples if s.site == src.site}
                kept = [s for s in got if s.key not in seen]
                counts["duplicate_other_tile"] = len(got) - len(kept)
                counts["kept"] = len(kept)
                report[src.key] = counts
                samples.extend(kept)
        if not samples:
            raise DataError(f"{zpath}: no usable sample (LAI value and a clear acquisition within "
                            f"{self.max_gap_days} days of the field date)")
        return samples, report

    @property
    def report(self) -> dict[str, dict[str, int]]:
        """Per source CSV: measurements read, dropped (no target, no clear date, duplicate of
        another tile) and kept."""
        return self._all[1]

    @cached_property
    def _groups(self) -> np.ndarray:
        samples = self._all[0]
        groups = np.empty(len(samples), dtype=object)
        for site in self.sites:
            idx = [i for i, s in enumerate(samples) if s.site == site]
            if not idx:
                continue
            lonlat = next(src.lonlat for src in SOURCES if src.site == site)
            raw = np.array([[samples[i].x_m, samples[i].y_m] for i in idx])
            pts, inverse = np.unique(raw, axis=0, return_inverse=True)
            labels = _clusters(_metres(pts[:, 0], pts[:, 1], lonlat), self.cluster_m)
            for i, lab in zip(idx, labels[inverse.ravel()]):
                groups[i] = f"{site}-field{lab:03d}"
        return groups.astype(str)

    @cached_property
    def _assignment(self) -> np.ndarray:
        samples, groups = self._all[0], self._groups
        sites = np.array([s.site for s in samples])
        split = np.empty(len(samples), dtype=object)
        for k, site in enumerate(self.sites):
            here = sites == site
            if not here.any():
                continue
            if self.test_site is not None and site == self.test_site:
                split[here] = "test"
                continue
            fractions = ({"train": 0.8, "val": 0.2} if self.test_site is not None
                         else SPLIT_FRACTIONS)
            names = np.unique(groups[here])
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, k]))
            order = names[rng.permutation(len(names))]
            sizes = {g: int((groups[here] == g).sum()) for g in names}
            total, filled = int(here.sum()), 0
            bounds = np.cumsum(list(fractions.values())) * total
            for g in order:
                # the group goes to the first split whose quota is not yet reached
                j = int(np.searchsorted(bounds, filled, side="right"))
                name = list(fractions)[min(j, len(fractions) - 1)]
                split[here & (groups == g)] = name
                filled += sizes[g]
        return split.astype(str)

    # -- the contract ----------------------------------------------------------------------
    def load(self, split: str) -> TaskData:
        self.check_split(split)
        return self._data[split]

    @cached_property
    def _data(self) -> dict[str, TaskData]:
        samples, groups, assign = self._all[0], self._groups, self._assignment
        out = {}
        for split in self.meta.splits:
            idx = np.flatnonzero(assign == split)
            if len(idx) == 0:
                raise DataError(f"lai-insitu: split {split!r} is empty with sites {list(self.sites)}"
                                f" and test_site {self.test_site!r}")
            series = [(samples[i].values[:, :, None, None], samples[i].dates,
                       samples[i].valid[:, None, None]) for i in idx]
            values, dates, mask = pad_series(series)
            s2 = Modality(values, dates, mask, BANDS, "reflectance")
            extras = {"site": np.array([samples[i].site for i in idx]),
                      "source": np.array([samples[i].source for i in idx])}
            batch = EOBatch({"s2": s2}, tuple(samples[i].sample_id for i in idx), extras)
            out[split] = TaskData(batch, np.array([samples[i].target for i in idx], dtype=np.float64),
                                  groups[idx],
                                  np.array([samples[i].field_date for i in idx], dtype="datetime64[D]"))
        return out


def scores_by_site(data: TaskData, prediction: np.ndarray) -> dict[str, dict[str, float]]:
    """RMSE, MAE, bias and N of point predictions per site and overall, for one split."""
    y = np.asarray(data.target, dtype=float)
    p = np.asarray(prediction, dtype=float)
    sites = np.asarray(data.batch.extras["site"])
    out = {}
    for name in [*sorted(set(sites.tolist())), "all"]:
        sel = np.ones(len(y), bool) if name == "all" else sites == name
        e = p[sel] - y[sel]
        out[name] = {"n": int(sel.sum()), "rmse": float(np.sqrt(np.mean(e**2))),
                     "mae": float(np.mean(np.abs(e))), "bias": float(np.mean(e))}
    return out


__all__ = ["LaiInsitu", "SOURCES", "BANDS", "scores_by_site"]
