"""Sentinel-2 MSI spectral responses: from a spectrum at 1 nm to band reflectances.

Three sources give the same :class:`SpectralResponse` object:

- :meth:`SpectralResponse.default` builds the responses from the published central wavelength
  and bandwidth of each band (table below), so the package needs no data file;
- :meth:`SpectralResponse.from_esa_csv` reads ESA's official tabulated responses;
- :meth:`SpectralResponse.from_pyrsr` reads the copy of the same ESA table that ships with the
  ``pyrsr`` package.

Published centres and bandwidths (nm), ESA "Sentinel-2 Spectral Response Functions",
document COPE-GSEG-EOPG-TN-15-0007, issue 3.0 (2017), as summarised in the Sentinel-2 MSI
user guide. The centres are the response-weighted mean wavelengths of the official curves
(recomputing them from the ESA table gives the same numbers to 0.1 nm); the bandwidths are
the widths at half maximum rounded up to whole nanometres.

====  ================  ================
band  S2A centre / bw   S2B centre / bw
====  ================  ================
B1    442.7 / 21        442.2 / 21
B2    492.4 / 66        492.1 / 66
B3    559.8 / 36        559.0 / 36
B4    664.6 / 31        664.9 / 31
B5    704.1 / 15        703.8 / 16
B6    740.5 / 15        739.1 / 15
B7    782.8 / 20        779.7 / 20
B8    832.8 / 106       832.9 / 106
B8A   864.7 / 21        864.0 / 22
B9    945.1 / 20        943.2 / 21
B10   1373.5 / 31       1376.9 / 30
B11   1613.7 / 91       1610.4 / 94
B12   2202.4 / 175      2185.7 / 185
====  ================  ================

Shape of the default responses: a rectangular pass band of width = bandwidth centred on the
centre wavelength, integrated over each 1 nm bin (the two edge bins get the fraction of the
bin inside the band). The MSI filters are flat-topped with steep edges, so a box matches them
far better than a Gaussian: over PROSAIL canopy spectra the largest band-reflectance error
against the official curves is below 1e-3 for the box, against 1.2e-2 (B8) for a Gaussian
with FWHM = bandwidth truncated at +-1.5 FWHM; super-Gaussians approach the box as their
order grows. Measured numbers per band: docs/physics-s2-s1.md.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..errors import DataError, UnknownNameError, UsageError

S2_BANDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12")
WL_MIN, WL_MAX = 400, 2500  # nm: the grid of PROSAIL and of the simulator
FULL_GRID_SIZE = WL_MAX - WL_MIN + 1

# (centre nm, bandwidth nm) per band, ESA COPE-GSEG-EOPG-TN-15-0007 issue 3.0
S2_BAND_TABLE: dict[str, dict[str, tuple[float, float]]] = {
    "s2a": dict(zip(S2_BANDS, [
        (442.7, 21.0), (492.4, 66.0), (559.8, 36.0), (664.6, 31.0), (704.1, 15.0),
        (740.5, 15.0), (782.8, 20.0), (832.8, 106.0), (864.7, 21.0), (945.1, 20.0),
        (1373.5, 31.0), (1613.7, 91.0), (2202.4, 175.0)])),
    "s2b": dict(zip(S2_BANDS, [
        (442.2, 21.0), (492.1, 66.0), (559.0, 36.0), (664.9, 31.0), (703.8, 16.0),
        (739.1, 15.0), (779.7, 20.0), (832.9, 106.0), (864.0, 22.0), (943.2, 21.0),
        (1376.9, 30.0), (1610.4, 94.0), (2185.7, 185.0)])),
}
_SENSOR_ALIASES = {"s2a": "s2a", "sentinel-2a": "s2a", "sentinel2a": "s2a",
                   "s2b": "s2b", "sentinel-2b": "s2b", "sentinel2b": "s2b"}
_ESA_COLUMN = re.compile(r"^(S2[A-Z])_SR_AV_(B\d{1,2}A?)$")


def normalise_band(name: str) -> str:
    """``'B01'``, ``'b8a'``, ``'B08A'`` -> ``'B1'``, ``'B8A'``, ``'B8A'``: one spelling per band."""
    m = re.fullmatch(r"[Bb]0*(\d{1,2})([Aa]?)", name.strip())
    return f"B{int(m.group(1))}{m.group(2).upper()}" if m else name


def _sensor_key(sensor: str) -> str:
    key = _SENSOR_ALIASES.get(sensor.strip().lower())
    if key is None:
        raise UsageError(f"unknown Sentinel-2 sensor {sensor!r}; expected 's2a' or 's2b'")
    return key


def box_response(centre: float, bandwidth: float, wavelengths: np.ndarray) -> np.ndarray:
    """Fraction of each 1 nm bin ``[w - 0.5, w + 0.5]`` inside ``centre +- bandwidth / 2``."""
    lo, hi = centre - bandwidth / 2.0, centre + bandwidth / 2.0
    return np.clip(np.minimum(wavelengths + 0.5, hi) - np.maximum(wavelengths - 0.5, lo), 0.0, 1.0)


class SpectralResponse:
    """Normalised responses of a set of bands on their common support (integer nm).

    ``weights[i] @ spectrum[wavelengths]`` is band ``i``'s reflectance; each row sums to 1, so
    a flat spectrum gives its own value in every band.
    """

    def __init__(self, sensor: str, bands: Sequence[str], wavelengths: np.ndarray | torch.Tensor,
                 responses: np.ndarray | torch.Tensor, *, source: str = "responses") -> None:
        wl = np.asarray(torch.as_tensor(wavelengths).cpu(), dtype=np.float64).reshape(-1)
        resp = np.asarray(torch.as_tensor(responses).cpu(), dtype=np.float64)
        bands = tuple(bands)
        if resp.shape != (len(bands), wl.size):
            raise DataError(f"{source}: responses have shape {resp.shape}, expected "
                            f"({len(bands)} bands, {wl.size} wavelengths)")
        if not np.all(np.isfinite(resp)) or (resp < 0).any():
            raise DataError(f"{source}: responses must be finite and non-negative")
        empty = [b for b, row in zip(bands, resp) if row.sum() <= 0]
        if empty:
            raise DataError(f"{source}: band(s) {empty} have no response within "
                            f"{WL_MIN}-{WL_MAX} nm")
        support = resp.sum(axis=0) > 0
        self.sensor = sensor
        self.bands = bands
        self.wavelengths = torch.as_tensor(np.rint(wl[support]).astype(np.int64))
        rows = resp[:, support]
        self.weights = torch.as_tensor(rows / rows.sum(axis=1, keepdims=True))

    def __repr__(self) -> str:
        return (f"SpectralResponse(sensor={self.sensor!r}, bands={list(self.bands)}, "
                f"{len(self.wavelengths)} wavelengths "
                f"{int(self.wavelengths.min())}-{int(self.wavelengths.max())} nm)")

    @property
    def centres(self) -> torch.Tensor:
        """Response-weighted mean wavelength of each band, nm (float64)."""
        return self.weights @ self.wavelengths.double()

    # -- constructors ---------------------------------------------------------------------

    @classmethod
    def default(cls, sensor: str = "s2a", bands: Sequence[str] | None = None) -> SpectralResponse:
        """Box responses from the published centres and bandwidths (no data file needed)."""
        key = _sensor_key(sensor)
        grid = np.arange(WL_MIN, WL_MAX + 1, dtype=np.float64)
        table = S2_BAND_TABLE[key]
        resp = np.stack([box_response(*table[b], grid) for b in S2_BANDS])
        full = cls(key, S2_BANDS, grid, resp, source=f"default {key} responses")
        return full if bands is None else full.select(bands)

    @classmethod
    def from_esa_csv(cls, path: str | Path, sensor: str | None = None,
                     bands: Sequence[str] | None = None) -> SpectralResponse:
        """Read ESA's table (``SR_WL`` + ``S2x_SR_AV_Bn`` columns), clipped to 400-2500 nm.

        The sensor is read from the column prefix; ``sensor``, when given, must agree.
        """
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: no such spectral response file")
        try:
            df = pd.read_csv(path)
        except Exception as exc:  # any parser error: name the file
            raise DataError(f"{path}: cannot read as CSV ({exc})") from exc
        df.columns = [str(c).strip().lstrip("\ufeff") for c in df.columns]
        prefix = _esa_prefix(df.columns, path, sensor)
        wl = _numeric_column(df, "SR_WL", path)
        if np.any(np.abs(wl - np.rint(wl)) > 1e-6):
            raise DataError(f"{path}: column 'SR_WL' must hold whole nanometres (1 nm grid)")
        wanted = [normalise_band(b) for b in (bands or S2_BANDS)]
        unknown = [b for b in wanted if b not in S2_BANDS]
        if unknown:
            raise UnknownNameError("Sentinel-2 band", unknown[0],
                                   difflib.get_close_matches(unknown[0], S2_BANDS), list(S2_BANDS))
        columns = [f"{prefix}_SR_AV_{b}" for b in wanted]
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise DataError(f"{path}: missing column(s) {missing}; an ESA spectral response "
                            f"table has 'SR_WL' and one '{prefix}_SR_AV_<band>' column per band")
        resp = np.stack([_numeric_column(df, c, path) for c in columns])
        keep = (wl >= WL_MIN) & (wl <= WL_MAX)
        return cls(prefix.lower(), wanted, wl[keep], np.clip(resp[:, keep], 0.0, None),
                   source=str(path))

    @classmethod
    def from_pyrsr(cls, sensor: str = "s2a", bands: Sequence[str] | None = None) -> SpectralResponse:
        """The ESA responses as shipped by ``pyrsr`` (its tables omit the faintest tails)."""
        from pyrsr.rsr import RSR_reader  # optional dependency, imported when used

        key = _sensor_key(sensor)
        satellite = {"s2a": "Sentinel-2A", "s2b": "Sentinel-2B"}[key]
        wanted = [normalise_band(b) for b in (bands or S2_BANDS)]
        curves = RSR_reader(satellite, "MSI", LayerBandsAssignment=[b[1:] for b in wanted])
        grid = np.arange(WL_MIN, WL_MAX + 1, dtype=np.float64)
        resp = np.stack([np.interp(grid, curves[b[1:]][:, 0], curves[b[1:]][:, 1],
                                   left=0.0, right=0.0) for b in wanted])
        return cls(key, wanted, grid, resp, source=f"pyrsr {satellite} MSI")

    # -- use ------------------------------------------------------------------------------

    def select(self, bands: Sequence[str]) -> SpectralResponse:
        """The same responses restricted to ``bands`` (in that order)."""
        names = [normalise_band(b) for b in bands]
        rows = []
        for b in names:
            if b not in self.bands:
                raise UnknownNameError("band", b, difflib.get_close_matches(b, self.bands),
                                       list(self.bands))
            rows.append(self.bands.index(b))
        return SpectralResponse(self.sensor, names, self.wavelengths, self.weights[rows],
                                source=f"{self.sensor} responses")

    def column_index(self, spectra_wavelengths: torch.Tensor | None, n_columns: int,
                     device: torch.device) -> torch.Tensor:
        """Positions of :attr:`wavelengths` among the spectra's columns."""
        if spectra_wavelengths is None:
            if n_columns != FULL_GRID_SIZE:
                raise DataError(f"spectra have {n_columns} wavelengths; without "
                                f"spectra_wavelengths they must cover {WL_MIN}-{WL_MAX} nm at "
                                f"1 nm ({FULL_GRID_SIZE} columns)")
            return (self.wavelengths - WL_MIN).to(device)
        swl = torch.as_tensor(spectra_wavelengths).reshape(-1)
        if swl.numel() != n_columns:
            raise DataError(f"spectra have {n_columns} columns but spectra_wavelengths has "
                            f"{swl.numel()} values")
        swl = swl.to(device=device, dtype=torch.float64)
        order = torch.argsort(swl)
        target = self.wavelengths.to(device=device, dtype=torch.float64)
        pos = torch.searchsorted(swl[order], target).clamp(max=n_columns - 1)
        found = (swl[order][pos] - target).abs() < 1e-6
        if not bool(found.all()):
            lacking = self.wavelengths[~found.cpu()].tolist()
            raise DataError(f"spectra_wavelengths lack {len(lacking)} wavelength(s) the "
                            f"{self.sensor} bands need, e.g. {lacking[:5]} nm; the support is "
                            f"{int(self.wavelengths.min())}-{int(self.wavelengths.max())} nm")
        return order[pos]

    def apply(self, spectra: torch.Tensor,
              spectra_wavelengths: torch.Tensor | None = None) -> torch.Tensor:
        """Band values ``[..., n_bands]`` of spectra ``[..., W]`` (differentiable).

        ``spectra_wavelengths=None`` means the columns are 400..2500 nm at 1 nm; otherwise it
        gives each column's wavelength (nm) and must include every wavelength of the support.
        """
        idx = self.column_index(spectra_wavelengths, spectra.shape[-1], spectra.device)
        w = self.weights.to(device=spectra.device, dtype=spectra.dtype)
        return spectra.index_select(-1, idx) @ w.T


def _esa_prefix(columns: Sequence[str], path: Path, sensor: str | None) -> str:
    """The ``S2A``/``S2B``... prefix of the response columns (one sensor per file)."""
    if "SR_WL" not in columns:
        raise DataError(f"{path}: missing column 'SR_WL' (wavelength, nm) of an ESA spectral "
                        f"response table; found columns {list(columns)[:6]}")
    prefixes = sorted({m.group(1) for c in columns if (m := _ESA_COLUMN.match(c))})
    if not prefixes:
        expected = f"{(sensor or 'S2A').upper()}_SR_AV_B1"
        raise DataError(f"{path}: no spectral response column; expected columns like "
                        f"'{expected}' ... one per band")
    if len(prefixes) > 1:
        raise DataError(f"{path}: responses of several sensors {prefixes}; expected one per file")
    prefix = prefixes[0]
    wanted = None if sensor is None else _SENSOR_ALIASES.get(sensor.strip().lower(), sensor.lower())
    if wanted is not None and wanted != prefix.lower():
        raise DataError(f"{path}: holds the responses of {prefix}, not of {sensor}")
    return prefix


def _numeric_column(df: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    values = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        row = int(bad[0])
        raise DataError(f"{path}: column {column!r}, data row {row + 1}: "
                        f"{df[column].iloc[row]!r} is not a finite number")
    return values
