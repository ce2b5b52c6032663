"""Readers behind the ``custom`` task: GeoTIFF time-series stacks, vector labels, point tables.

Every problem with a user's files is a :class:`~releo_bench.errors.DataError` that names the
file and the band, column, feature or date at fault, and what was expected. Nothing here
guesses silently: conventions are documented in ``docs/bring-your-own-data.md``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..encoders.adapt import canonical_band
from ..errors import DataError

RASTER_SUFFIXES = (".tif", ".tiff")
VECTOR_SUFFIXES = (".gpkg", ".geojson", ".json", ".shp", ".fgb")
TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq", ".gpkg", ".geojson", ".json", ".shp", ".fgb")
SHAPEFILE_SIDECARS = (".shp", ".shx", ".dbf", ".prj", ".cpg")

# a calendar date inside a name: 2021-06-01 or 20210601, not part of a longer number
_DATE = re.compile(r"(?<!\d)(\d{4})-?(\d{2})-?(\d{2})(?!\d)")
# Sentinel-2 style band columns (B2, B02, B8A, b11...), auto-detected in point tables
S2_BAND_COLUMN = re.compile(r"^B0*\d{1,2}A?$", re.IGNORECASE)
# angle columns auto-detected in point tables (case-insensitive)
KNOWN_ANGLES = ("sza", "saa", "vza", "vaa", "raa", "sun_zenith", "sun_azimuth", "view_zenith",
                "view_azimuth", "relative_azimuth")
_XY_PAIRS = (("x", "y"), ("lon", "lat"), ("longitude", "latitude"), ("easting", "northing"))

# Rasters smaller than this (selected bands x dates x pixels, float32) are read once in full;
# larger ones are read window by window around each label.
FULL_READ_BYTES = 256 * 2 ** 20


def _few(items: Sequence[Any], n: int = 8) -> str:
    items = list(items)
    shown = ", ".join(str(i) for i in items[:n])
    return shown + (f", ... ({len(items)} in all)" if len(items) > n else "")


def find_date(text: str, where: str) -> tuple[np.datetime64 | None, str]:
    """The first date in ``text`` (``YYYY-MM-DD`` or ``YYYYMMDD``) and ``text`` without it.

    Returns ``(None, text)`` when there is none; an impossible date (2021-13-45) is an error.
    """
    m = _DATE.search(text)
    if m is None:
        return None, text.strip()
    y, mo, d = m.groups()
    try:
        date = np.datetime64(f"{y}-{mo}-{d}", "D")
    except ValueError:
        raise DataError(f"{where}: {m.group(0)!r} in {text!r} is not a valid date (expected "
                        f"YYYY-MM-DD or YYYYMMDD)") from None
    rest = (text[:m.start()] + "_" + text[m.end():]).strip(" _-.")
    rest = re.sub(r"[ _\-.]{2,}", "_", rest)
    return date, rest


def _match_bands(wanted: Sequence[str], have: Sequence[str], where: str) -> list[int]:
    """Positions in ``have`` of each ``wanted`` band (matched on canonical spelling: B02 = B2)."""
    index = {}
    for i, b in enumerate(have):
        index.setdefault(canonical_band(b), i)
    missing = [b for b in wanted if canonical_band(b) not in index]
    if missing:
        raise DataError(f"{where}: band(s) {missing} not found; the file has bands "
                        f"{list(dict.fromkeys(have))}")
    return [index[canonical_band(b)] for b in wanted]


def sha256_paths(paths: Sequence[Path]) -> str:
    """sha256 of one file, or of the (name, sha256) list of several."""
    import hashlib

    from ..hashing import sha256_file

    if len(paths) == 1:
        return sha256_file(paths[0])
    h = hashlib.sha256()
    for p in paths:
        h.update(f"{p.name}\t{sha256_file(p)}\n".encode())
    return h.hexdigest()


def vector_files(path: Path) -> list[Path]:
    """The file itself, plus the sidecars of a Shapefile (hashed together)."""
    if path.suffix.lower() == ".shp":
        return [p for s in SHAPEFILE_SIDECARS if (p := path.with_suffix(s)).exists()] or [path]
    return [path]


# ---------------------------------------------------------------------------------------------
# GeoTIFF stacks
# ---------------------------------------------------------------------------------------------
@dataclass
class RasterStack:
    """A time series of co-registered rasters: ``dates[t]`` reads ``bands`` from
    ``reads[t] = (file, 1-based band indexes)``."""

    source: Path
    files: list[Path]
    dates: np.ndarray
    bands: tuple[str, ...]
    reads: list[tuple[Path, list[int]]]
    crs: Any
    transform: Any
    width: int
    height: int
    nodata: float | None = None
    _full: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    _open: dict[Path, Any] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.source.name

    def bounds_text(self) -> str:
        t = self.transform
        xs = [t.c, t.c + t.a * self.width + t.b * self.height]
        ys = [t.f, t.f + t.d * self.width + t.e * self.height]
        return (f"x {min(xs):.6g}..{max(xs):.6g}, y {min(ys):.6g}..{max(ys):.6g} "
                f"({self.crs.to_string()})")

    def _read_file(self, path: Path, indexes: list[int], window: Any) -> tuple[np.ndarray, np.ndarray]:
        import rasterio

        src = self._open.get(path)
        if src is None:
            src = self._open[path] = rasterio.open(path)
        try:
            arr = src.read(indexes, window=window, masked=True)
        except Exception as exc:  # rasterio raises its own error types for corrupt files
            raise DataError(f"{path.name}: cannot read bands {indexes} ({exc})") from exc
        data = np.asarray(arr.data, dtype=np.float32)
        ok = ~np.ma.getmaskarray(arr) & np.isfinite(data)
        if self.nodata is not None:
            ok &= data != np.float32(self.nodata)
        valid = ok.all(axis=0)
        data[:, ~valid] = 0.0
        return data, valid

    def _read_block(self, r0: int, c0: int, r1: int, c1: int) -> tuple[np.ndarray, np.ndarray]:
        from rasterio.windows import Window

        t, c = len(self.dates), len(self.bands)
        full_bytes = 4 * t * c * self.width * self.height
        if self._full is None and full_bytes <= FULL_READ_BYTES:
            values = np.zeros((t, c, self.height, self.width), dtype=np.float32)
            valid = np.zeros((t, self.height, self.width), dtype=bool)
            for i, (path, idx) in enumerate(self.reads):
                values[i], valid[i] = self._read_file(path, idx, None)
            self._full = (values, valid)
        if self._full is not None:
            values, valid = self._full
            return values[:, :, r0:r1, c0:c1], valid[:, r0:r1, c0:c1]
        window = Window(c0, r0, c1 - c0, r1 - r0)
        values = np.zeros((t, c, r1 - r0, c1 - c0), dtype=np.float32)
        valid = np.zeros((t, r1 - r0, c1 - c0), dtype=bool)
        for i, (path, idx) in enumerate(self.reads):
            values[i], valid[i] = self._read_file(path, idx, window)
        return values, valid

    def read(self, row0: int, col0: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        """Values ``[T, C, h, w]`` and validity ``[T, h, w]`` of a window; the part outside the
        raster is invalid (value 0)."""
        values = np.zeros((len(self.dates), len(self.bands), h, w), dtype=np.float32)
        valid = np.zeros((len(self.dates), h, w), dtype=bool)
        r0, c0 = max(row0, 0), max(col0, 0)
        r1, c1 = min(row0 + h, self.height), min(col0 + w, self.width)
        if r1 <= r0 or c1 <= c0:
            return values, valid
        v, ok = self._read_block(r0, c0, r1, c1)
        values[:, :, r0 - row0:r1 - row0, c0 - col0:c1 - col0] = v
        valid[:, r0 - row0:r1 - row0, c0 - col0:c1 - col0] = ok
        return values, valid

    def close(self) -> None:
        for src in self._open.values():
            src.close()
        self._open.clear()
        self._full = None


def _open_raster(path: Path) -> Any:
    import rasterio

    try:
        return rasterio.open(path)
    except Exception as exc:
        raise DataError(f"{path}: cannot open as a GeoTIFF ({exc})") from exc


def _descriptions(src: Any) -> list[str]:
    return [(d or "").strip() for d in src.descriptions]


def open_stack(path: Path, *, bands: Sequence[str] | None, dates: Sequence[str] | None,
               nodata: float | None) -> RasterStack:
    """A multi-band GeoTIFF whose band descriptions carry band and date (``B04_2021-06-01``),
    or a folder of GeoTIFFs with a date in each file name, each holding the same bands."""
    if path.is_dir():
        return _open_folder(path, bands=bands, nodata=nodata)
    with _open_raster(path) as src:
        if src.crs is None:
            raise DataError(f"{path.name}: the raster has no CRS; write it with one (e.g. "
                            f"gdal_edit.py -a_srs EPSG:32631 {path.name})")
        desc = _descriptions(src)
        crs, transform, width, height = src.crs, src.transform, src.width, src.height
        count = src.count
    if dates:
        # no dated descriptions: bands given by name, stored date by date (all bands of date 1,
        # then all bands of date 2...)
        parsed = []
        for d in dates:
            date, rest = find_date(str(d), f"{path.name}: option dates")
            if date is None or rest:
                raise DataError(f"{path.name}: option dates has {d!r}; expected dates like "
                                f"2021-06-01")
            parsed.append(date)
        if not bands:
            raise DataError(f"{path.name}: with dates=[...] the band names must be given too "
                            f"(bands=[...], in the order they are stored within each date)")
        if count != len(parsed) * len(bands):
            raise DataError(f"{path.name}: {count} bands in the file, but dates x bands = "
                            f"{len(parsed)} x {len(bands)} = {len(parsed) * len(bands)}")
        order = np.argsort(np.array(parsed, dtype="datetime64[D]"), kind="stable")
        dd = np.array(parsed, dtype="datetime64[D]")[order]
        if len(np.unique(dd)) != len(dd):
            raise DataError(f"{path.name}: option dates repeats a date: {[str(d) for d in dd]}")
        reads = [(path, [int(t) * len(bands) + c + 1 for c in range(len(bands))]) for t in order]
        return RasterStack(path, [path], dd, tuple(bands), reads, crs, transform, width, height,
                           nodata)
    per_date: dict[np.datetime64, dict[str, int]] = {}
    for i, d in enumerate(desc):
        where = f"{path.name}: band {i + 1}"
        if not d:
            raise DataError(f"{where} has no description; name each band '<band>_<date>' (e.g. "
                            f"'B04_2021-06-01'), or pass dates=[...] and bands=[...] "
                            f"(see docs/bring-your-own-data.md)")
        date, band = find_date(d, where)
        if date is None or not band:
            raise DataError(f"{where} is described {d!r}: expected '<band>_<date>' such as "
                            f"'B04_2021-06-01' or 'B04_20210601'")
        slot = per_date.setdefault(date, {})
        if band in slot:
            raise DataError(f"{where}: band {band!r} of {date} appears twice (bands "
                            f"{slot[band] + 1} and {i + 1})")
        slot[band] = i + 1
    dd = np.array(sorted(per_date), dtype="datetime64[D]")
    first = list(per_date[dd[0]])
    wanted = list(bands) if bands else first
    reads = []
    for date in dd:
        have = list(per_date[date])
        try:
            pos = _match_bands(wanted, have, f"{path.name}, date {date}")
        except DataError as exc:
            raise DataError(f"{exc} (every date needs the same bands)") from None
        reads.append((path, [per_date[date][have[p]] for p in pos]))
    return RasterStack(path, [path], dd, tuple(wanted), reads, crs, transform, width, height, nodata)


def _open_folder(path: Path, *, bands: Sequence[str] | None, nodata: float | None) -> RasterStack:
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in RASTER_SUFFIXES and p.is_file())
    if not files:
        raise DataError(f"{path}: no GeoTIFF (.tif, .tiff) in the folder")
    dated: dict[np.datetime64, Path] = {}
    for f in files:
        date, _ = find_date(f.stem, f.name)
        if date is None:
            raise DataError(f"{f.name} (in {path}): no date in the file name; name dated "
                            f"GeoTIFFs like 'S2_2021-06-01.tif' or 'S2_20210601.tif'")
        if date in dated:
            raise DataError(f"{f.name} and {dated[date].name} (in {path}) have the same date {date}")
        dated[date] = f
    dd = np.array(sorted(dated), dtype="datetime64[D]")
    ref = None
    wanted: list[str] | None = None
    reads = []
    for date in dd:
        f = dated[date]
        with _open_raster(f) as src:
            if src.crs is None:
                raise DataError(f"{f.name} (in {path}): the raster has no CRS")
            if ref is None:
                ref = (f, src.crs, src.transform, src.width, src.height)
            else:
                rf, rcrs, rt, rw, rh = ref
                if src.crs != rcrs:
                    raise DataError(f"{f.name} (in {path}): CRS {src.crs.to_string()} differs "
                                    f"from {rcrs.to_string()} of {rf.name}; all dated GeoTIFFs "
                                    f"must share CRS, grid and size")
                if (src.width, src.height) != (rw, rh) or not src.transform.almost_equals(rt):
                    raise DataError(f"{f.name} (in {path}): grid {src.width}x{src.height} at "
                                    f"{tuple(src.transform)[:6]} differs from {rw}x{rh} at "
                                    f"{tuple(rt)[:6]} of {rf.name}; resample to one grid first")
            desc = [find_date(d, f"{f.name}: band {i + 1}")[1] if d else ""
                    for i, d in enumerate(_descriptions(src))]
            count = src.count
        if all(desc):
            have = desc
            wanted = wanted or (list(bands) if bands else have)
        elif bands and len(bands) == count:
            have = list(bands)  # no descriptions: bands=[...] names the file's bands in order
            wanted = wanted or have
        else:
            missing = [i + 1 for i, d in enumerate(desc) if not d]
            raise DataError(f"{f.name} (in {path}): band(s) {missing} have no description; "
                            f"describe every band with its name (e.g. 'B04'), or pass "
                            f"bands=[...] with one name per band ({count} bands)")
        pos = _match_bands(wanted, have, f"{f.name} (in {path})")
        reads.append((f, [p + 1 for p in pos]))
    assert ref is not None and wanted is not None
    return RasterStack(path, [dated[d] for d in dd], dd, tuple(wanted), reads, ref[1], ref[2],
                       ref[3], ref[4], nodata)


# ---------------------------------------------------------------------------------------------
# vector labels and tables
# ---------------------------------------------------------------------------------------------
def read_vector(path: Path, layer: str | None) -> Any:
    import geopandas as gpd

    try:
        gdf = gpd.read_file(path, layer=layer, engine="pyogrio")
    except Exception as exc:
        raise DataError(f"{path}: cannot read as vector data ({type(exc).__name__}: {exc})") from exc
    if len(gdf) == 0:
        raise DataError(f"{path.name}: no features" + (f" in layer {layer!r}" if layer else ""))
    return gdf.reset_index(drop=True)


def read_table(path: Path, layer: str | None) -> tuple[pd.DataFrame, Any]:
    """The rows of a CSV / Parquet / vector file, and its CRS (None for plain tables)."""
    suffix = path.suffix.lower()
    name = path.name.lower()
    try:
        if suffix in (".csv", ".tsv") or name.endswith((".csv.gz", ".tsv.gz")):
            df = pd.read_csv(path, sep="\t" if ".tsv" in name else ",")
            return df, None
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path), None
    except Exception as exc:
        raise DataError(f"{path}: cannot read as a table ({type(exc).__name__}: {exc})") from exc
    gdf = read_vector(path, layer)
    return gdf, gdf.crs


def coordinates(df: pd.DataFrame, where: str, x_column: str | None, y_column: str | None
                ) -> tuple[np.ndarray | None, str]:
    """``[N, 2]`` sample coordinates (for spatial blocks) and a description of their origin."""
    cols = {str(c).lower(): c for c in df.columns}
    pair = None
    if x_column or y_column:
        if not (x_column and y_column):
            raise DataError(f"{where}: give both x_column and y_column")
        for c in (x_column, y_column):
            if c not in df.columns:
                raise DataError(f"{where}: coordinate column {c!r} not found (columns: "
                                f"{_few(df.columns, 30)})")
        pair = (x_column, y_column)
    else:
        for a, b in _XY_PAIRS:
            if a in cols and b in cols:
                pair = (cols[a], cols[b])
                break
    if pair is not None:
        xy = np.column_stack([pd.to_numeric(df[c], errors="coerce").to_numpy(float) for c in pair])
        bad = ~np.isfinite(xy).all(axis=1)
        if bad.any():
            raise DataError(f"{where}: coordinate columns {list(pair)} are not numbers in rows "
                            f"{_few(np.flatnonzero(bad))}")
        return xy, f"columns {pair[0]!r}, {pair[1]!r}"
    geom = getattr(df, "geometry", None) if "geometry" in df.columns else None
    if geom is not None:
        empty = geom.isna() | geom.is_empty
        if empty.any():
            raise DataError(f"{where}: features {_few(np.flatnonzero(empty.to_numpy()))} "
                            f"(0-based) have no geometry")
        pts = geom.representative_point()
        return np.column_stack([pts.x.to_numpy(float), pts.y.to_numpy(float)]), "geometries"
    return None, ""


def parse_dates(values: pd.Series, where: str, date_format: str | None) -> np.ndarray:
    """``datetime64[D]`` of a column; an unparsable or missing date is an error naming it."""
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values
    else:
        try:
            parsed = pd.to_datetime(values, errors="coerce", format=date_format)
        except (ValueError, TypeError) as exc:
            raise DataError(f"{where}: cannot parse dates ({exc}); expected ISO dates like "
                            f"2021-06-01 or pass date_format=...") from exc
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert(None)
    bad = parsed.isna().to_numpy()
    if bad.any():
        rows = np.flatnonzero(bad)
        examples = [repr(values.iloc[i]) for i in rows[:3]]
        raise DataError(f"{where}: {len(rows)} missing or unparsable date(s), e.g. "
                        f"{', '.join(examples)} (rows {_few(rows, 5)}, 0-based); expected dates "
                        f"like 2021-06-01" + (f" in format {date_format!r}" if date_format else
                                              " (or pass date_format=...)"))
    return parsed.to_numpy().astype("datetime64[D]")


def numeric_column(df: pd.DataFrame, column: str, where: str) -> np.ndarray:
    """A band / angle column as float (missing values become NaN, i.e. invalid)."""
    col = df[column]
    if pd.api.types.is_bool_dtype(col):
        raise DataError(f"{where}: column {column!r} holds booleans, expected numbers")
    num = pd.to_numeric(col, errors="coerce")
    bad = (num.isna() & col.notna()).to_numpy()
    if bad.any():
        rows = np.flatnonzero(bad)
        raise DataError(f"{where}: column {column!r} has non-numeric values, e.g. "
                        f"{col.iloc[rows[0]]!r} (rows {_few(rows, 5)}, 0-based)")
    return num.to_numpy(dtype=float)
