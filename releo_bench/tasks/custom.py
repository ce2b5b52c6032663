"""``custom``: bring your own data as a benchmark task.

Two input layouts (conventions in ``docs/bring-your-own-data.md``):

(a) a GeoTIFF time-series stack (one multi-band file with band descriptions
    ``<band>_<date>``, or a folder of dated GeoTIFFs with the same bands) plus vector labels
    (GeoPackage / GeoJSON / Shapefile / FlatGeobuf, points or polygons, given with
    ``labels=...`` or found alone in the data folder). Labels are reprojected to the raster CRS;
    a point samples its pixel (or a ``patch_size`` window around it), a polygon gives its
    pixels (``polygon_samples="pixels"``, grouped by polygon) or one masked patch
    (``polygon_samples="patch"``). Nodata, non-finite values and masked pixels are invalid.
(b) a point table (CSV / Parquet / vector file) with band columns, in long format (one row per
    sample and date: a sample id column and a date column) or wide format (one row per sample,
    columns ``<band>_<date>``), optional angle columns, and a target column.

Splits are grouped (group column, polygon, or spatial blocks for points) and seeded, or read
from a split column. The metadata names the files and their sha256, so runs on different
files never look alike. Built without data (``CustomTask()``, as ``releo-bench list`` and
``info`` do) the task only describes itself, and ``load`` says what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from ..batch import EOBatch, Modality, pad_series
from ..errors import DataError, UsageError
from ..metrics import STANDARD_METRICS
from ..units import check_unit
from . import custom_io as io
from .base import DatasetRef, TargetSpec, Task, TaskData, TaskMeta

NEEDS_DATA = ("--task custom needs --data PATH and --target COLUMN (a GeoTIFF stack or folder "
              "with labels=..., or a point table; see docs/bring-your-own-data.md)")
KINDS = ("regression", "classification")
SPLITS = ("train", "val", "test")
_SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val",
                "validation": "val", "test": "test", "testing": "test"}
MAIN_SCORE = {"regression": "rmse", "classification": "overall_accuracy"}

GENERIC_META = TaskMeta(
    name="custom", version=1,
    description="Bring your own data: a GeoTIFF time-series stack (or folder of dated GeoTIFFs) "
                "with point or polygon labels, or a point table with band columns. Needs "
                "--data PATH and --target COLUMN; see docs/bring-your-own-data.md.",
    dataset=DatasetRef(name="user-supplied data (--data PATH)", licence="user-supplied"),
    licence="user-supplied",
    split_design="grouped, seeded 60/20/20 split of samples (seed 0) by a group column, by "
                 "polygon, or by spatial blocks for points; or a split column",
    target=TargetSpec(kind="regression", name="target"),
    main_score="rmse",
    metrics=STANDARD_METRICS["regression"],
    modalities=("s2",),
)


# ---------------------------------------------------------------------------------------------
# targets and splits
# ---------------------------------------------------------------------------------------------
def _class_label(v: Any) -> str:
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


def infer_kind(values: pd.Series, max_classes: int) -> str:
    """Classification for non-numeric, boolean, or integer targets with at most ``max_classes``
    distinct values; regression otherwise (floats, or integers with many levels)."""
    if pd.api.types.is_bool_dtype(values):
        return "classification"
    if pd.api.types.is_numeric_dtype(values):
        if pd.api.types.is_integer_dtype(values) and values.nunique() <= max_classes:
            return "classification"
        return "regression"
    return "classification"


def encode_target(values: pd.Series, where: str, kind: str | None, classes: Sequence[Any] | None,
                  max_classes: int) -> tuple[str, tuple[str, ...] | None, np.ndarray]:
    """Kind, class names and encoded targets (float, or int class index) of one column."""
    missing = values.isna().to_numpy()
    if missing.any():
        rows = np.flatnonzero(missing)
        raise DataError(f"{where}: {len(rows)} missing target value(s) (rows {io._few(rows, 5)}, "
                        f"0-based); fill them or drop those rows")
    kind = kind or infer_kind(values, max_classes)
    if kind == "regression":
        num = pd.to_numeric(values, errors="coerce") if not pd.api.types.is_bool_dtype(values) \
            else pd.Series(np.full(len(values), np.nan))
        bad = num.isna().to_numpy() | ~np.isfinite(num.to_numpy(dtype=float, na_value=np.nan))
        if bad.any():
            rows = np.flatnonzero(bad)
            examples = ", ".join(repr(values.iloc[i]) for i in rows[:3])
            raise DataError(f"{where}: a regression target must be numeric and finite, got "
                            f"{examples} (rows {io._few(rows, 5)}, 0-based); for class labels "
                            f"pass kind=classification")
        return kind, None, num.to_numpy(dtype=float)
    labels = [_class_label(v) for v in values.tolist()]
    if classes:
        names = [str(c) for c in classes]
        if len(set(names)) != len(names):
            raise UsageError(f"option classes has duplicates: {names}")
        unknown = sorted(set(labels) - set(names))
        if unknown:
            raise DataError(f"{where}: value(s) {unknown} are not in classes={names}")
        counts = pd.Series(labels).value_counts()
        empty = [c for c in names if counts.get(c, 0) == 0]
        if empty:
            raise DataError(f"{where}: class(es) {empty} have no sample (declared in "
                            f"classes={names}); remove them or add labelled samples")
    else:
        uniq = pd.unique(values)
        try:
            uniq = sorted(uniq)
        except TypeError:
            uniq = sorted(uniq, key=str)
        names = list(dict.fromkeys(_class_label(v) for v in uniq))
    if len(names) < 2:
        raise DataError(f"{where}: classification needs at least 2 classes, found {names}")
    index = {c: i for i, c in enumerate(names)}
    return kind, tuple(names), np.array([index[v] for v in labels], dtype=np.int64)


def split_labels(values: pd.Series, where: str) -> np.ndarray:
    """A split column as 'train' / 'val' / 'test' (also accepts training, valid, validation...)."""
    norm = values.astype(str).str.strip().str.lower().map(_SPLIT_NAMES)
    bad = (norm.isna() | values.isna()).to_numpy()
    if bad.any():
        rows = np.flatnonzero(bad)
        raise DataError(f"{where}: values {sorted(set(map(str, values.iloc[rows])))[:5]} (rows "
                        f"{io._few(rows, 5)}, 0-based) are not train, val or test")
    return norm.to_numpy(dtype=str)


def spatial_blocks(xy: np.ndarray, block_size: float | None) -> tuple[np.ndarray, float]:
    """Square blocks on a grid anchored at the lower-left sample; default size: a tenth of the
    larger side of the samples' extent."""
    lo = xy.min(axis=0)
    if block_size is None:
        extent = float((xy.max(axis=0) - lo).max())
        block_size = float(f"{extent / 10.0:.2g}") if extent > 0 else 1.0  # 2 significant digits
    if not block_size > 0:
        raise UsageError(f"block_size must be positive, got {block_size}")
    cells = np.floor((xy - lo) / block_size).astype(np.int64)
    return np.array([f"block-{i}-{j}" for i, j in cells]), float(block_size)


def assign_splits(groups: np.ndarray, fractions: tuple[float, float, float], seed: int,
                  what: str) -> np.ndarray:
    """Whole groups to train / val / test, in a seeded random order, so that each split gets
    about its fraction of the samples (a group goes where the middle of its run falls)."""
    names, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    order = np.random.default_rng(seed).permutation(len(names))
    cum = np.cumsum(counts[order])
    mid = (cum - counts[order] / 2.0) / cum[-1]
    bounds = np.cumsum(fractions)
    split_of_group = np.empty(len(names), dtype=object)
    split_of_group[order] = np.where(mid < bounds[0], "train", np.where(mid < bounds[1], "val",
                                                                          "test"))
    out = split_of_group[inverse].astype(str)
    empty = [s for s, f in zip(SPLITS, fractions) if f > 0 and not (out == s).any()]
    if empty:
        raise DataError(f"only {len(names)} groups ({what}): split(s) {empty} got none with fractions "
                        f"{list(fractions)}; provide more groups, a smaller block_size, or a "
                        f"split column")
    return out


def _as_list(value: Any, option: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    raise UsageError(f"option {option} must be a list or a comma-separated string, got {value!r}")


def _number(cast: type, value: Any, option: str) -> Any:
    if isinstance(value, bool):
        raise UsageError(f"option {option} must be a number, got {value!r}")
    try:
        return cast(value)
    except (TypeError, ValueError):
        raise UsageError(f"option {option} must be a number, got {value!r}") from None


def _fractions(value: Any) -> tuple[float, float, float]:
    vals = _as_list(value.replace("/", ","), "fractions") if isinstance(value, str) else value
    try:
        f = [float(v) for v in vals]  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise UsageError(f"fractions must be train, val, test shares like [0.6, 0.2, 0.2], got "
                         f"{value!r}") from None
    if len(f) == 2:
        f = [f[0], 0.0, f[1]]
    total = sum(f)
    if len(f) != 3 or any(v < 0 for v in f) or f[0] <= 0 or f[2] <= 0 or total <= 0:
        raise UsageError(f"fractions must be train, val, test shares like [0.6, 0.2, 0.2] (train "
                         f"and test > 0), got {value!r}")
    if abs(total - 100.0) < 1e-6 or abs(total - 1.0) < 1e-6:
        return tuple(v / total for v in f)  # type: ignore[return-value]
    raise UsageError(f"fractions {f} must sum to 1 (or 100), they sum to {total:g}")


# ---------------------------------------------------------------------------------------------
# samples
# ---------------------------------------------------------------------------------------------
@dataclass
class _Samples:
    """Everything read from the files, before splitting (N samples)."""

    values: torch.Tensor  # [N, T, C, H, W]
    dates: np.ndarray  # [N, T] datetime64[D]
    mask: torch.Tensor  # [N, T, H, W]
    bands: tuple[str, ...]
    y: np.ndarray  # [N]
    kind: str
    class_names: tuple[str, ...] | None
    ids: np.ndarray  # [N] str
    groups: np.ndarray | None  # [N] str
    split: np.ndarray | None  # [N] 'train' / 'val' / 'test' from a split column
    group_design: str
    xy: np.ndarray | None = None
    angles: tuple[torch.Tensor, torch.Tensor, tuple[str, ...]] | None = None


class CustomTask(Task):
    """Bring-your-own-data task (see the module docstring and docs/bring-your-own-data.md).

    Main options: ``data`` (GeoTIFF, folder of GeoTIFFs, or table), ``target`` (column),
    ``labels`` (vector labels for raster data), ``kind`` (regression / classification, else
    inferred), ``bands``, ``units`` (one unit, or a band -> unit mapping), ``group``,
    ``split``, ``seed``, ``fractions``.
    """

    meta = GENERIC_META
    needs_user_data = True  # checks.check_task: without data only the metadata can be checked

    def __init__(self, data: str | Path | None = None, target: str | None = None, *,
                 labels: str | Path | None = None, layer: str | None = None,
                 kind: str | None = None, classes: Sequence[Any] | str | None = None,
                 max_classes: int = 20, target_unit: str | None = None,
                 bands: Sequence[str] | str | None = None,
                 units: str | Mapping[str, str] = "reflectance", modality: str = "s2",
                 date_column: str | None = None, dates: Sequence[str] | str | None = None,
                 date_format: str | None = None, id_column: str | None = None,
                 group: str | None = None, split: str | None = None, seed: int = 0,
                 fractions: Sequence[float] | str = (0.6, 0.2, 0.2),
                 block_size: float | None = None, x_column: str | None = None,
                 y_column: str | None = None, angles: Sequence[str] | str | None = None,
                 angle_units: str = "degree", valid_column: str | None = None,
                 nodata: float | None = None, patch_size: int = 1,
                 polygon_samples: str = "pixels", max_pixels_per_polygon: int | None = None
                 ) -> None:
        self._data: dict[str, TaskData] | None = None
        if data is None or str(data) == "":
            if target is not None:
                raise UsageError(NEEDS_DATA + f"; --target {target} was given without --data")
            return
        if kind is not None and kind not in KINDS:
            raise UsageError(f"kind must be one of {KINDS} (or omitted to infer it), got {kind!r}")
        if polygon_samples not in ("pixels", "patch"):
            raise UsageError(f"polygon_samples must be 'pixels' or 'patch', got {polygon_samples!r}")
        if not isinstance(patch_size, int) or patch_size < 1 or patch_size % 2 == 0:
            raise UsageError(f"patch_size must be an odd number of pixels >= 1, got {patch_size!r}")
        if max_pixels_per_polygon is not None and _number(int, max_pixels_per_polygon,
                                                          "max_pixels_per_polygon") < 1:
            raise UsageError(f"max_pixels_per_polygon must be >= 1, got {max_pixels_per_polygon}")
        self.path = Path(data).expanduser()
        self.labels, self.layer = labels, layer
        self.target = None if target is None else str(target)
        self.kind = kind
        self.classes = _as_list(classes, "classes")
        self.max_classes = _number(int, max_classes, "max_classes")
        self.target_unit = target_unit
        self.bands = _as_list(bands, "bands")
        self.units = units
        self.modality = str(modality)
        self.date_column = None if date_column is None else str(date_column)
        self.dates = _as_list(dates, "dates")
        self.date_format = date_format
        self.id_column = None if id_column is None else str(id_column)
        self.group = None if group is None else str(group)
        self.split = None if split is None else str(split)
        self.seed = _number(int, seed, "seed")
        self.fractions = _fractions(fractions)
        self.block_size = None if block_size is None else _number(float, block_size, "block_size")
        self.x_column, self.y_column = x_column, y_column
        self.angles = _as_list(angles, "angles")
        self.angle_units = angle_units
        self.valid_column = valid_column
        self.nodata = None if nodata is None else _number(float, nodata, "nodata")
        self.patch_size = patch_size
        self.polygon_samples = polygon_samples
        self.max_pixels_per_polygon = None if max_pixels_per_polygon is None else \
            _number(int, max_pixels_per_polygon, "max_pixels_per_polygon")
        check_unit(angle_units, where="option angle_units")
        if not isinstance(units, Mapping):
            check_unit(str(units), where="option units")

        if not self.path.exists():
            raise DataError(f"--data {self.path}: no such file or folder")
        suffix = self.path.suffix.lower()
        if self.path.is_dir() or suffix in io.RASTER_SUFFIXES:
            self.layout = "raster"
            samples, sources, label = self._read_raster()
        elif suffix in io.TABLE_SUFFIXES or self.path.name.lower().endswith((".csv.gz", ".tsv.gz")):
            if labels is not None:
                raise UsageError(f"labels={labels} is for raster data; --data {self.path.name} is a "
                                 f"point table, whose target is one of its own columns")
            self.layout = "table"
            samples, sources, label = self._read_table()
        else:
            raise UsageError(f"--data {self.path}: unsupported file type {suffix!r}; expected a "
                             f"GeoTIFF ({', '.join(io.RASTER_SUFFIXES)}), a folder of GeoTIFFs, or "
                             f"a table (CSV, Parquet, GeoPackage, GeoJSON, Shapefile)")
        self._build(samples, sources, label)

    # -- public ------------------------------------------------------------------------------
    @property
    def has_data(self) -> bool:
        return self._data is not None

    def load(self, split: str) -> TaskData:
        if self._data is None:
            raise UsageError(NEEDS_DATA)
        self.check_split(split)
        return self._data[split]

    # -- helpers -----------------------------------------------------------------------------
    def _need_target(self, columns: Sequence[Any], where: str) -> str:
        if self.target is None:
            raise UsageError(f"--task custom needs --target COLUMN: the column of {where} to "
                             f"predict (columns: {io._few(list(map(str, columns)), 30)})")
        if self.target not in columns:
            raise DataError(f"{where}: target column {self.target!r} not found (columns: "
                            f"{io._few(list(map(str, columns)), 30)})")
        return self.target

    def _band_units(self, bands: Sequence[str], where: str) -> tuple[str, ...]:
        if isinstance(self.units, Mapping):
            from ..encoders.adapt import canonical_band

            by_canon = {canonical_band(str(k)): v for k, v in self.units.items()}
            missing = [b for b in bands if canonical_band(b) not in by_canon]
            if missing:
                raise UsageError(f"option units gives no unit for band(s) {missing} of {where}")
            units = tuple(str(by_canon[canonical_band(b)]) for b in bands)
        else:
            units = (str(self.units),) * len(bands)
        for b, u in zip(bands, units):
            check_unit(u, where=f"{where}, band {b!r} (option units)")
        return units

    def _column(self, df: pd.DataFrame, column: str | None, option: str, where: str) -> pd.Series | None:
        if column is None:
            return None
        if column not in df.columns:
            raise DataError(f"{where}: {option} column {column!r} not found (columns: "
                            f"{io._few(list(map(str, df.columns)), 30)})")
        return df[column]

    # -- (a) raster + labels -----------------------------------------------------------------
    def _labels_path(self, labels: str | Path | None) -> Path:
        if labels is not None:
            p = Path(labels).expanduser()
            if not p.exists() and not p.is_absolute():
                alt = (self.path if self.path.is_dir() else self.path.parent) / p
                p = alt if alt.exists() else p
            if not p.exists():
                raise DataError(f"labels {p}: no such file")
            return p
        if self.path.is_dir():
            found = sorted(p for p in self.path.iterdir()
                           if p.suffix.lower() in io.VECTOR_SUFFIXES and p.is_file())
            if len(found) == 1:
                return found[0]
            if found:
                raise UsageError(f"--data {self.path}: several label files "
                                 f"{[p.name for p in found]}; pick one with labels=FILE")
        raise UsageError(f"--data {self.path} is raster data: give the vector labels with "
                         f"--task-option labels=FILE (GeoPackage, GeoJSON, Shapefile)")

    def _read_raster(self) -> tuple[_Samples, list[Path], str]:
        labels_path = self._labels_path(self.labels)
        stack = io.open_stack(self.path, bands=self.bands, dates=self.dates, nodata=self.nodata)
        try:
            samples = self._raster_samples(stack, labels_path)
        finally:
            stack.close()
        sources = [*stack.files, *io.vector_files(labels_path)]
        return samples, sources, f"{self.path.name} + {labels_path.name}"

    def _raster_samples(self, stack: io.RasterStack, labels_path: Path) -> _Samples:
        from rasterio.features import rasterize
        from affine import Affine

        lname = labels_path.name
        gdf = io.read_vector(labels_path, self.layer)
        target = self._need_target(gdf.columns, lname)
        if gdf.crs is None:
            raise DataError(f"{lname}: the labels have no CRS; save them with one (a .prj next to "
                            f"a Shapefile, or set it in GIS) so they can be matched to "
                            f"{stack.name} ({stack.crs.to_string()})")
        empty = (gdf.geometry.isna() | gdf.geometry.is_empty).to_numpy()
        if empty.any():
            raise DataError(f"{lname}: feature(s) {io._few(np.flatnonzero(empty))} (0-based) "
                            f"have no geometry")
        try:
            gdf = gdf.to_crs(stack.crs)
        except Exception as exc:
            raise DataError(f"{lname}: cannot reproject labels from {gdf.crs.to_string()} to "
                            f"{stack.crs.to_string()} of {stack.name} ({exc})") from exc
        b = gdf.geometry.bounds.to_numpy()
        bad = ~np.isfinite(b).all(axis=1)
        if bad.any():
            raise DataError(f"{lname}: feature(s) {io._few(np.flatnonzero(bad))} (0-based) cannot "
                            f"be reprojected to {stack.crs.to_string()} of {stack.name}")
        types = gdf.geometry.geom_type.to_numpy()
        if set(types) <= {"Point"}:
            geom_kind = "point"
        elif set(types) <= {"Polygon", "MultiPolygon"}:
            geom_kind = "polygon"
        else:
            raise DataError(f"{lname}: geometries must be all points or all polygons, found "
                            f"{sorted(set(types))}")
        where = f"{lname}, column {target!r}"
        kind, class_names, y_feat = encode_target(gdf[target], where, self.kind, self.classes,
                                                  self.max_classes)
        fid = (gdf[self.id_column].astype(str).to_numpy() if self._column(
            gdf, self.id_column, "id_column", lname) is not None
            else np.array([f"feature-{i}" for i in range(len(gdf))]))
        grp_col = self._column(gdf, self.group, "group", lname)
        if grp_col is not None and grp_col.isna().any():
            raise DataError(f"{lname}: group column {self.group!r} is empty for feature(s) "
                            f"{io._few(np.flatnonzero(grp_col.isna().to_numpy()))} (0-based)")
        split_col = self._column(gdf, self.split, "split", lname)
        split_feat = None if split_col is None else split_labels(split_col, f"{lname}, column "
                                                                            f"{self.split!r}")
        inv = ~stack.transform
        n_feat = len(gdf)
        t = len(stack.dates)

        def outside_error(idx: Sequence[int]) -> DataError:
            i0 = idx[0]
            x, y = gdf.geometry.iloc[i0].representative_point().coords[0]
            return DataError(f"{lname}: {len(idx)} feature(s) lie outside the raster {stack.name} "
                             f"(features {io._few(idx)}, 0-based; e.g. feature {i0} at x={x:.6g}, "
                             f"y={y:.6g} in {stack.crs.to_string()} after reprojection); the "
                             f"raster covers {stack.bounds_text()}")

        feat_of: list[np.ndarray] = []
        vals: list[np.ndarray] = []
        valid: list[np.ndarray] = []
        xy: list[np.ndarray] = []
        rc: list[np.ndarray] = []
        rng = np.random.default_rng(self.seed)
        if geom_kind == "point":
            xs = gdf.geometry.x.to_numpy(float)
            ys = gdf.geometry.y.to_numpy(float)
            cols = np.floor(inv.a * xs + inv.b * ys + inv.c).astype(np.int64)
            rows = np.floor(inv.d * xs + inv.e * ys + inv.f).astype(np.int64)
            out = np.flatnonzero((rows < 0) | (rows >= stack.height) | (cols < 0) |
                                 (cols >= stack.width))
            if len(out):
                raise outside_error(out.tolist())
            p, half = self.patch_size, self.patch_size // 2
            no_obs = []
            for i in range(n_feat):
                v, ok = stack.read(int(rows[i]) - half, int(cols[i]) - half, p, p)
                if not ok[:, half, half].any():
                    no_obs.append(i)
                vals.append(v[None]), valid.append(ok[None])
                feat_of.append(np.array([i])), xy.append(np.array([[xs[i], ys[i]]]))
                rc.append(np.array([[rows[i], cols[i]]]))
            if no_obs:
                raise DataError(f"{lname}: point feature(s) {io._few(no_obs)} (0-based) have no "
                                f"valid observation in {stack.name} (nodata or masked at every "
                                f"date)")
            ids = fid
        else:
            empty_polys, no_obs = [], []
            for i, geom in enumerate(gdf.geometry):
                x0, y0, x1, y1 = geom.bounds
                cx = [inv.a * x + inv.b * y + inv.c for x, y in ((x0, y0), (x0, y1), (x1, y0), (x1, y1))]
                ry = [inv.d * x + inv.e * y + inv.f for x, y in ((x0, y0), (x0, y1), (x1, y0), (x1, y1))]
                c0, c1 = max(int(np.floor(min(cx))), 0), min(int(np.ceil(max(cx))), stack.width)
                r0, r1 = max(int(np.floor(min(ry))), 0), min(int(np.ceil(max(ry))), stack.height)
                if c1 <= c0 or r1 <= r0:
                    empty_polys.append(i)
                    continue
                wt = stack.transform @ Affine.translation(c0, r0)
                shape = (r1 - r0, c1 - c0)
                inside = rasterize([(geom, 1)], out_shape=shape, transform=wt, fill=0,
                                   dtype="uint8").astype(bool)
                if not inside.any():  # smaller than a pixel: take the pixels it touches
                    inside = rasterize([(geom, 1)], out_shape=shape, transform=wt, fill=0,
                                       all_touched=True, dtype="uint8").astype(bool)
                if not inside.any():
                    empty_polys.append(i)
                    continue
                v, ok = stack.read(r0, c0, *shape)
                if self.polygon_samples == "patch":
                    m = ok & inside[None]
                    if not m.any():
                        no_obs.append(i)
                        continue
                    v = np.where(m[:, None], v, 0.0).astype(np.float32)
                    vals.append(v[None]), valid.append(m[None]), feat_of.append(np.array([i]))
                    cen = geom.representative_point().coords[0]
                    xy.append(np.array([cen])), rc.append(np.array([[r0, c0]]))
                    continue
                rr, cc = np.nonzero(inside)
                keep = ok[:, rr, cc].any(axis=0)  # drop pixels with no valid date at all
                rr, cc = rr[keep], cc[keep]
                if not len(rr):
                    no_obs.append(i)
                    continue
                if self.max_pixels_per_polygon and len(rr) > self.max_pixels_per_polygon:
                    pick = np.sort(rng.choice(len(rr), self.max_pixels_per_polygon, replace=False))
                    rr, cc = rr[pick], cc[pick]
                vals.append(np.moveaxis(v[:, :, rr, cc], 2, 0)[..., None, None])
                valid.append(np.moveaxis(ok[:, rr, cc], 1, 0)[..., None, None])
                feat_of.append(np.full(len(rr), i))
                gr, gc = rr + r0 + 0.5, cc + c0 + 0.5
                t_ = stack.transform
                xy.append(np.column_stack([t_.a * gc + t_.b * gr + t_.c, t_.d * gc + t_.e * gr + t_.f]))
                rc.append(np.column_stack([rr + r0, cc + c0]))
            if empty_polys:
                raise outside_error(empty_polys)
            if no_obs:
                raise DataError(f"{lname}: polygon feature(s) {io._few(no_obs)} (0-based) cover "
                                f"only nodata pixels of {stack.name}")
            ids = None
        feat = np.concatenate(feat_of)
        if geom_kind == "polygon" and self.polygon_samples == "patch":
            # patches of different polygons differ in size: pad to the largest (invalid pixels)
            hmax = max(v.shape[-2] for v in vals)
            wmax = max(v.shape[-1] for v in vals)
            vals = [np.pad(v, [(0, 0)] * 3 + [(0, hmax - v.shape[-2]), (0, wmax - v.shape[-1])])
                    for v in vals]
            valid = [np.pad(m, [(0, 0)] * 2 + [(0, hmax - m.shape[-2]), (0, wmax - m.shape[-1])])
                     for m in valid]
        values = np.concatenate(vals).astype(np.float32)
        mask = np.concatenate(valid)
        pix = np.concatenate(rc)
        coords = np.concatenate(xy)
        if geom_kind == "polygon" and self.polygon_samples == "pixels":
            # a pixel inside two polygons is ambiguous (and would leak across groups): drop it
            flat = pix[:, 0] * stack.width + pix[:, 1]
            _, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
            keep = counts[inverse] == 1
            lost = sorted(set(range(n_feat)) - set(feat[keep].tolist()))
            if lost:
                raise DataError(f"{lname}: polygon feature(s) {io._few(lost)} (0-based) lie "
                                f"entirely inside other polygons; overlapping pixels are dropped "
                                f"as ambiguous, so these have none left")
            feat, values, mask = feat[keep], values[keep], mask[keep]
            pix, coords = pix[keep], coords[keep]
            ids = np.array([f"{fid[f]}:{r}:{c}" for f, (r, c) in zip(feat, pix)])
        else:
            ids = fid[feat]
        if grp_col is not None:
            groups, design = grp_col.astype(str).to_numpy()[feat], f"groups from column {self.group!r}"
        elif geom_kind == "polygon":
            groups, design = fid[feat], "polygons (all pixels of a polygon stay together)"
        elif split_feat is None:
            groups, bs = spatial_blocks(coords, self.block_size)
            unit = _crs_unit(stack.crs)
            design = f"spatial blocks of {bs:g} {unit} in {stack.crs.to_string()}"
        else:
            groups, design = None, ""
        n = len(feat)
        return _Samples(
            values=torch.from_numpy(values), mask=torch.from_numpy(mask),
            dates=np.broadcast_to(stack.dates, (n, t)).copy(), bands=stack.bands,
            y=y_feat[feat], kind=kind, class_names=class_names, ids=np.asarray(ids, dtype=str),
            groups=groups, split=None if split_feat is None else split_feat[feat],
            group_design=design, xy=coords)

    # -- (b) point table ---------------------------------------------------------------------
    def _read_table(self) -> tuple[_Samples, list[Path], str]:
        df, crs = io.read_table(self.path, self.layer)
        name = self.path.name
        if len(df) == 0:
            raise DataError(f"{name}: the table has no rows")
        target = self._need_target(df.columns, name)
        cols = [str(c) for c in df.columns]
        xy_all, xy_origin = io.coordinates(df, name, self.x_column, self.y_column)
        reserved = {target, self.id_column, self.group, self.split, self.valid_column,
                    self.x_column, self.y_column, "geometry"}
        if self.date_column is not None:
            if self.date_column not in df.columns:
                raise DataError(f"{name}: date column {self.date_column!r} not found (columns: "
                                f"{io._few(cols, 30)})")
            layout = "long"
            date_col = self.date_column
        elif "date" in df.columns:
            layout, date_col = "long", "date"
        else:
            wide = {}
            for c in cols:
                if c in reserved:
                    continue
                d, band = io.find_date(c, f"{name}: column {c!r}")
                if d is not None and band:
                    wide[c] = (band, d)
            if wide:
                layout, date_col = "wide", None
            elif self.dates:
                if len(self.dates) != 1:
                    raise UsageError(f"{name}: a table without a date column takes a single "
                                     f"dates=YYYY-MM-DD, got {self.dates}")
                layout, date_col = "long", "__date__"
                df = df.assign(__date__=self.dates[0])
            else:
                raise DataError(f"{name}: no date column 'date' (set date_column=...), no wide "
                                f"columns like 'B04_2021-06-01', and no dates=YYYY-MM-DD for a "
                                f"single-date table (columns: {io._few(cols, 30)})")
        if layout == "long":
            return self._long_table(df, name, target, date_col, xy_all, xy_origin, crs, reserved)
        return self._wide_table(df, name, target, wide, xy_all, xy_origin, crs)

    def _table_bands(self, candidates: Sequence[str], name: str, what: str) -> list[str]:
        if self.bands:
            return self.bands
        found = [c for c in candidates if io.S2_BAND_COLUMN.match(c)]
        if not found:
            raise DataError(f"{name}: no band {what} found (auto-detected: Sentinel-2 names like "
                            f"B02, B8A); name them with bands=[...] (candidates: "
                            f"{io._few(list(candidates), 30)})")
        return found

    def _angle_names(self, candidates: Sequence[str]) -> list[str]:
        if self.angles is not None:
            return self.angles
        return [c for c in candidates if c.lower() in io.KNOWN_ANGLES]

    def _groups_for(self, n: int, group_vals: np.ndarray | None, xy: np.ndarray | None,
                    xy_origin: str, crs: Any, ids: np.ndarray, split: np.ndarray | None
                    ) -> tuple[np.ndarray | None, str]:
        if group_vals is not None:
            return group_vals, f"groups from column {self.group!r}"
        if split is not None:
            return None, ""
        if xy is not None:
            groups, bs = spatial_blocks(xy, self.block_size)
            unit = _crs_unit(crs) if crs is not None else "coordinate units"
            where = f" in {crs.to_string()}" if crs is not None else ""
            return groups, f"spatial blocks of {bs:g} {unit}{where} (coordinates from {xy_origin})"
        return None, "samples"

    def _long_table(self, df: pd.DataFrame, name: str, target: str, date_col: str,
                    xy_all: np.ndarray | None, xy_origin: str, crs: Any, reserved: set
                    ) -> tuple[_Samples, list[Path], str]:
        cols = [str(c) for c in df.columns]
        id_col = self.id_column
        if id_col is None:
            id_col = next((c for c in ("sample_id", "id", "point_id") if c in df.columns), None)
            if id_col is None and date_col != "__date__":
                raise DataError(f"{name}: long format (one row per sample and date) needs a "
                                f"sample id column: pass id_column=... (columns: "
                                f"{io._few(cols, 30)})")
        elif id_col not in df.columns:
            raise DataError(f"{name}: id_column {id_col!r} not found (columns: {io._few(cols, 30)})")
        ids_row = (df[id_col].astype(str).to_numpy() if id_col is not None
                   else np.array([f"row-{i}" for i in range(len(df))]))
        dates_row = io.parse_dates(df[date_col], f"{name}, column {date_col!r}", self.date_format)
        others = [c for c in cols if c not in reserved and c not in (id_col, date_col)]
        angle_names = self._angle_names(others)
        bands = self._table_bands([c for c in others if c not in angle_names], name, "columns")
        for b in [*bands, *angle_names]:
            if b not in df.columns:
                raise DataError(f"{name}: band column {b!r} not found (columns: {io._few(cols, 30)})")
        self._band_units(bands, name)  # fail early on a bad unit
        x = np.stack([io.numeric_column(df, b, name) for b in bands], axis=1)  # [R, C]
        ok = np.isfinite(x).all(axis=1)
        vcol = self._column(df, self.valid_column, "valid_column", name)
        if vcol is not None:
            if vcol.isna().any():
                raise DataError(f"{name}: valid_column {self.valid_column!r} has missing values")
            ok &= vcol.astype(bool).to_numpy()
        x[~ok] = 0.0
        a = (np.stack([io.numeric_column(df, c, name) for c in angle_names], axis=1)
             if angle_names else None)
        # one sample per id, its rows sorted by date
        order = np.lexsort((dates_row, ids_row))
        sid, sd = ids_row[order], dates_row[order]
        dup = (sid[1:] == sid[:-1]) & (sd[1:] == sd[:-1])
        if dup.any():
            i = order[1:][dup][0]
            raise DataError(f"{name}: sample {ids_row[i]!r} has two rows for date {dates_row[i]} "
                            f"(row {i}, 0-based); one row per sample and date")
        starts = np.flatnonzero(np.r_[True, sid[1:] != sid[:-1]])
        bounds = np.r_[starts, len(sid)]
        ids = sid[starts]
        n = len(ids)
        # targets: the non-missing values of a sample must agree
        tcol = df[target]
        present = tcol.notna().to_numpy()
        where = f"{name}, column {target!r}"
        if not present.any():
            raise DataError(f"{where}: the target column is empty")
        kind, class_names, y_rows = encode_target(tcol[present].reset_index(drop=True), where,
                                                  self.kind, self.classes, self.max_classes)
        y_full = np.full(len(df), np.nan)
        y_full[present] = y_rows
        y = np.empty(n, dtype=float)
        for k in range(n):
            rows = order[bounds[k]:bounds[k + 1]]
            vals = np.unique(y_full[rows][present[rows]])
            if len(vals) == 0:
                raise DataError(f"{where}: sample {ids[k]!r} has no target value")
            if len(vals) > 1:
                shown = [class_names[int(v)] for v in vals] if class_names else vals.tolist()
                raise DataError(f"{where}: sample {ids[k]!r} has different targets on different "
                                f"rows ({shown}); one target per sample")
            y[k] = vals[0]
        y = y.astype(np.int64) if kind == "classification" else y

        def per_sample(series: pd.Series | None, option: str) -> np.ndarray | None:
            if series is None:
                return None
            s = series.astype(str).to_numpy()[order]
            first = s[starts]
            if series.isna().any():
                raise DataError(f"{name}: {option} column {series.name!r} has missing values")
            varying = np.flatnonzero(np.add.reduceat((s != np.repeat(first, np.diff(bounds)))
                                                     .astype(int), starts) > 0)
            if len(varying):
                raise DataError(f"{name}: {option} column {series.name!r} changes within sample "
                                f"{ids[varying[0]]!r}; it must be constant per sample")
            return first

        group_vals = per_sample(self._column(df, self.group, "group", name), "group")
        split_raw = per_sample(self._column(df, self.split, "split", name), "split")
        split = None if split_raw is None else split_labels(pd.Series(split_raw),
                                                            f"{name}, column {self.split!r}")
        xy = None if xy_all is None else xy_all[order][starts]
        series, aseries = [], []
        for k in range(n):
            rows = order[bounds[k]:bounds[k + 1]]
            d = dates_row[rows]
            series.append((x[rows][:, :, None, None], d, ok[rows][:, None, None]))
            if a is not None:
                av = a[rows]
                aok = np.isfinite(av).all(axis=1)
                av = np.where(aok[:, None], av, 0.0)
                aseries.append((av[:, :, None, None], d, aok[:, None, None]))
        values, dates, mask = pad_series(series)
        angles = None
        if a is not None:
            av, _, am = pad_series(aseries)
            angles = (av, am, tuple(angle_names))
        groups, design = self._groups_for(n, group_vals, xy, xy_origin, crs, ids, split)
        return (_Samples(values, dates, mask, tuple(bands), y, kind, class_names, ids, groups,
                         split, design, xy, angles), [self.path], self.path.name)

    def _wide_table(self, df: pd.DataFrame, name: str, target: str,
                    wide: dict[str, tuple[str, np.datetime64]], xy_all: np.ndarray | None,
                    xy_origin: str, crs: Any) -> tuple[_Samples, list[Path], str]:
        from ..encoders.adapt import canonical_band

        found_bands = list(dict.fromkeys(b for b, _ in wide.values()))
        angle_names = self._angle_names(found_bands)
        bands = self._table_bands([b for b in found_bands if b not in angle_names], name,
                                  "names in the wide columns")
        dd = np.array(sorted({d for _, d in wide.values()}), dtype="datetime64[D]")
        lookup = {(canonical_band(b), d): c for c, (b, d) in wide.items()}

        def block(names: Sequence[str]) -> np.ndarray:
            out = np.empty((len(df), len(dd), len(names)), dtype=float)
            for j, b in enumerate(names):
                for ti, d in enumerate(dd):
                    c = lookup.get((canonical_band(b), d))
                    if c is None:
                        have = sorted({bb for bb, _ in wide.values()})
                        raise DataError(f"{name}: no column for band {b!r} on {d} (expected "
                                        f"'{b}_{d}'; bands in wide columns: {have})")
                    out[:, ti, j] = io.numeric_column(df, c, name)
            return out

        self._band_units(bands, name)  # fail early on a bad unit
        x = block(bands)
        ok = np.isfinite(x).all(axis=2)
        x[~ok] = 0.0
        n = len(df)
        ids = (df[self.id_column].astype(str).to_numpy()
               if self._column(df, self.id_column, "id_column", name) is not None
               else np.array([f"row-{i}" for i in range(n)]))
        where = f"{name}, column {target!r}"
        kind, class_names, y = encode_target(df[target], where, self.kind, self.classes,
                                             self.max_classes)
        gcol = self._column(df, self.group, "group", name)
        if gcol is not None and gcol.isna().any():
            raise DataError(f"{name}: group column {self.group!r} has missing values")
        scol = self._column(df, self.split, "split", name)
        split = None if scol is None else split_labels(scol, f"{name}, column {self.split!r}")
        angles = None
        if angle_names:
            av = block(angle_names)
            aok = np.isfinite(av).all(axis=2)
            av[~aok] = 0.0
            angles = (torch.from_numpy(av[:, :, :, None, None].astype(np.float32)),
                      torch.from_numpy(aok[:, :, None, None]), tuple(angle_names))
        groups, design = self._groups_for(n, None if gcol is None else gcol.astype(str).to_numpy(),
                                          xy_all, xy_origin, crs, ids, split)
        return (_Samples(torch.from_numpy(x[:, :, :, None, None].astype(np.float32)),
                         np.broadcast_to(dd, (n, len(dd))).copy(),
                         torch.from_numpy(ok[:, :, None, None]), tuple(bands), y, kind,
                         class_names, ids, groups, split, design, xy_all, angles),
                [self.path], self.path.name)

    # -- splits and metadata -----------------------------------------------------------------
    def _build(self, s: _Samples, sources: list[Path], label: str) -> None:
        units = self._band_units(s.bands, label)
        if s.split is not None:
            split_of = s.split
            if s.groups is not None:
                for g in np.unique(s.groups):
                    in_g = set(split_of[s.groups == g].tolist())
                    if len(in_g) > 1:
                        raise DataError(f"{label}: group {g!r} is in several splits "
                                        f"{sorted(in_g)} of column {self.split!r}; a group must "
                                        f"stay in one split")
            splits = tuple(x for x in SPLITS if (split_of == x).any())
            for need in ("train", "test"):
                if need not in splits:
                    raise DataError(f"{label}: split column {self.split!r} has no {need!r} "
                                    f"samples")
            design = f"splits from column {self.split!r}"
            if s.group_design:
                design += f"; {s.group_design}"
        else:
            groups = s.groups if s.groups is not None else s.ids
            split_of = assign_splits(groups, self.fractions, self.seed, s.group_design)
            splits = tuple(x for x, f in zip(SPLITS, self.fractions) if f > 0)
            pct = "/".join(f"{100 * f:g}" for f in self.fractions)
            if s.groups is None:
                design = (f"{pct} train/val/test random split of samples with seed {self.seed} "
                          f"(no group column, no coordinates)")
            else:
                design = (f"{pct} train/val/test share of samples, by {s.group_design}, groups "
                          f"shuffled with seed {self.seed}; a group never crosses splits")
        if s.kind == "classification":
            assert s.class_names is not None
            train_classes = set(s.y[split_of == "train"].tolist())
            absent = [c for i, c in enumerate(s.class_names) if i not in train_classes]
            if absent:
                raise DataError(f"{label}, target {self.target!r}: class(es) {absent} have no "
                                f"sample in the train split ({int((split_of == 'train').sum())} "
                                f"train samples); add samples, merge classes, or change the "
                                f"split (seed, fractions, group or split column)")
        sha = io.sha256_paths(sources)
        self._data = {}
        extras_all = {} if s.xy is None else {"x": s.xy[:, 0].astype(np.float64),
                                              "y": s.xy[:, 1].astype(np.float64)}
        for name in splits:
            idx = np.flatnonzero(split_of == name)
            t_idx = torch.from_numpy(idx)
            mods = {self.modality: Modality(s.values[t_idx], s.dates[idx], s.mask[t_idx],
                                            s.bands, units)}
            if s.angles is not None:
                av, am, anames = s.angles
                mods["angles"] = Modality(av[t_idx], s.dates[idx], am[t_idx], anames,
                                          self.angle_units)
            batch = EOBatch(mods, tuple(s.ids[idx].tolist()),
                            {k: v[idx] for k, v in extras_all.items()})
            groups = None if s.groups is None else s.groups[idx]
            self._data[name] = TaskData(batch, s.y[idx], groups)
        n_dates = int((~np.isnat(s.dates)).sum(axis=1).max())
        what = (f"{s.kind} of {self.target!r}" + (f" ({len(s.class_names)} classes)"
                                                  if s.class_names else ""))
        self.meta = TaskMeta(
            name="custom", version=1,
            description=(f"custom task on {label} (sha256 {sha[:12]}): {what} from "
                         f"{len(s.ids)} {self.layout} samples, {self.modality} bands "
                         f"{list(s.bands)} ({', '.join(sorted(set(units)))}), up to {n_dates} "
                         f"dates"),
            dataset=DatasetRef(name=label, sha256=sha, licence="user-supplied"),
            licence="user-supplied",
            splits=splits,
            split_design=design,
            target=TargetSpec(kind=s.kind, name=str(self.target), unit=self.target_unit,
                              class_names=s.class_names),
            main_score=MAIN_SCORE[s.kind],
            metrics=STANDARD_METRICS[s.kind],
            modalities=(self.modality,) + (("angles",) if s.angles is not None else ()),
        )


def _crs_unit(crs: Any) -> str:
    try:
        return "degrees" if crs.is_geographic else (crs.linear_units or "units")
    except AttributeError:
        return "units"


__all__ = ["CustomTask", "encode_target", "infer_kind", "assign_splits", "spatial_blocks"]
