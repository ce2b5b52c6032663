"""PROSAIL parameter tables in, Sentinel-2 band (and spectrum) tables out.

Columns are named like the keyword arguments of the ``prosail`` package's ``run_prosail``,
in the same units (PROSPECT-D). Missing optional columns take that function's defaults;
missing required columns, NaN and out-of-range values are errors naming column and row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..errors import DataError, UsageError
from .prosail import PROSAIL_DEFAULTS, PROSAIL_PARAMETERS, PROSAIL_RANGES, run_prosail
from .srf import S2_BANDS, SpectralResponse

OPTIONAL = tuple(PROSAIL_DEFAULTS)
REQUIRED = tuple(p for p in PROSAIL_PARAMETERS if p not in PROSAIL_DEFAULTS)
CHUNK = 20000  # rows per PROSAIL call: bounds memory for very large tables


def read_table(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    try:
        if suffix == ".csv":
            return pd.read_csv(path)
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
    except Exception as exc:  # parser errors of either format
        raise DataError(f"{path}: cannot read the table ({exc})") from exc
    raise UsageError(f"{path}: expected a .csv or .parquet file, got {suffix or 'no extension'!r}")


def write_table(df: pd.DataFrame, path: Path) -> None:
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise UsageError(f"--out {path}: expected a .csv or .parquet file")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if suffix == ".csv":
        df.to_csv(tmp, index=False)
    else:
        df.to_parquet(tmp, index=False)
    tmp.replace(path)


def validate_parameters(df: pd.DataFrame, source: str) -> dict[str, np.ndarray]:
    """Check columns, NaN and ranges; return float64 arrays (int for ``typelidf``)."""
    cols = {c.strip().lower(): c for c in df.columns}
    missing = [c for c in REQUIRED if c not in cols]
    if missing:
        raise DataError(f"{source}: missing required column(s) {missing}; expected the keyword "
                        f"names of prosail.run_prosail: required {list(REQUIRED)}, optional "
                        f"{list(OPTIONAL)}")
    unknown = [c for c in cols if c not in PROSAIL_PARAMETERS]
    if unknown:
        raise DataError(f"{source}: unknown column(s) {unknown}; expected columns among "
                        f"{list(PROSAIL_PARAMETERS)}")
    if len(df) == 0:
        raise DataError(f"{source}: the table has no rows")
    out: dict[str, np.ndarray] = {}
    for name in PROSAIL_PARAMETERS:
        if name not in cols:
            out[name] = np.full(len(df), float(PROSAIL_DEFAULTS[name]))
            continue
        raw = pd.to_numeric(df[cols[name]], errors="coerce").to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(raw))
        if bad.size:
            row = int(bad[0])
            raise DataError(f"{source}: column {name!r}, row {row + 1} (data row, 1-based): "
                            f"value {str(df[cols[name]].iloc[row])!r} is not a finite number"
                            f" ({bad.size} such row(s))")
        lo, hi = PROSAIL_RANGES[name][0], PROSAIL_RANGES[name][1]
        outside = np.flatnonzero((raw < lo) | (raw > hi))
        if outside.size:
            row = int(outside[0])
            raise DataError(f"{source}: column {name!r}, row {row + 1}: value {raw[row]:g} is "
                            f"outside the accepted range [{lo:g}, {hi:g}] "
                            f"({PROSAIL_RANGES[name][2]}); {outside.size} such row(s)")
        out[name] = raw
    lidf = out["typelidf"]
    if not np.isin(lidf, (1, 2)).all():
        row = int(np.flatnonzero(~np.isin(lidf, (1, 2)))[0])
        raise DataError(f"{source}: column 'typelidf', row {row + 1}: must be 1 (Verhoef "
                        f"bimodal) or 2 (Campbell ellipsoidal), got {lidf[row]:g}")
    out["typelidf"] = lidf.astype(np.int64)
    return out


def simulate_table(params: dict[str, np.ndarray], srf: SpectralResponse, *,
                   spectrum: bool = False, dtype: torch.dtype = torch.float64,
                   device: str = "cpu") -> pd.DataFrame:
    """S2 band reflectances (and the 400-2500 nm spectrum with ``spectrum``) per row."""
    n = len(params["n"])
    full = torch.arange(400, 2501)
    wl = full if spectrum else srf.wavelengths
    bands, spectra = [], []
    for a in range(0, n, CHUNK):
        chunk = {k: torch.tensor(v[a:a + CHUNK]) for k, v in params.items()}
        chunk = {k: v.to(device=device, dtype=dtype) if v.is_floating_point() else v.to(device)
                 for k, v in chunk.items()}
        rho = run_prosail(chunk, wavelengths=wl.to(device), factor="SDR", dtype=dtype, device=device)
        bands.append(srf.apply(rho, spectra_wavelengths=wl.to(device)).cpu().double().numpy())
        if spectrum:
            spectra.append(rho.cpu().double().numpy())
    df = pd.DataFrame(np.concatenate(bands), columns=list(srf.bands))
    if spectrum:
        spec = pd.DataFrame(np.concatenate(spectra), columns=[str(w) for w in full.tolist()])
        df = pd.concat([df, spec], axis=1)
    return df


def s2_response(sensor: str, srf_file: Path | None) -> SpectralResponse:
    if sensor not in ("s2a", "s2b"):
        raise UsageError(f"--sensor must be s2a or s2b, got {sensor!r}")
    if srf_file is None:
        return SpectralResponse.default(sensor, bands=S2_BANDS)
    srf = SpectralResponse.from_esa_csv(srf_file)
    if srf.sensor.lower() != sensor:
        raise UsageError(f"--srf {srf_file} holds the responses of {srf.sensor}, but --sensor is {sensor}")
    return srf
