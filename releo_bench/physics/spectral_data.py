"""PROSPECT-D absorption coefficients and soil spectra, read from the installed ``prosail`` package.

The tables are the package's own data files (``prospect_d_spectra.txt``, ``soil_reflectance.txt``);
nothing is copied into this repository, so the coefficients always match the reference model
the tests compare against. They are parsed once per process and converted once per
(dtype, device). All tables are on the 1 nm grid 400..2500 nm.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

WL_MIN = 400
WL_MAX = 2500
N_WAVELENGTHS = WL_MAX - WL_MIN + 1

# columns of prospect_d_spectra.txt, as documented in the file's header
_LEAF_COLUMNS = ("wavelength", "nr", "kab", "kcar", "kant", "kbrown", "kw", "km")


def _read_prosail_table(name: str, n_columns: int) -> np.ndarray:
    """Parse one whitespace-separated table shipped inside the ``prosail`` package.

    The file is located from the package's import spec, without importing ``prosail`` itself
    (its import compiles numba functions and parses all its tables: about a second we need
    not spend); importlib.resources is the fallback for unusual installs (zip files).
    """
    spec = importlib.util.find_spec("prosail")
    if spec is None:  # pragma: no cover - prosail is a declared dependency
        raise RuntimeError("the 'prosail' package is required: PROSPECT-D coefficients and soil "
                           "spectra are read from its data files (pip install prosail)")
    for location in spec.submodule_search_locations or ():
        path = Path(location) / name
        if path.is_file():
            table = np.loadtxt(path, comments="#", dtype=np.float64)
            break
    else:
        with importlib.resources.files("prosail").joinpath(name).open("rb") as fh:
            table = np.loadtxt(fh, comments="#", dtype=np.float64)
    if table.shape != (N_WAVELENGTHS, n_columns):
        raise RuntimeError(f"prosail/{name}: expected {N_WAVELENGTHS} rows x {n_columns} columns, "
                           f"got {table.shape}; unsupported prosail version?")
    return table


@lru_cache(maxsize=1)
def _tables() -> tuple[np.ndarray, np.ndarray]:
    leaf = _read_prosail_table("prospect_d_spectra.txt", len(_LEAF_COLUMNS))
    if not np.array_equal(leaf[:, 0], np.arange(WL_MIN, WL_MAX + 1)):
        raise RuntimeError("prosail/prospect_d_spectra.txt is not on the 400..2500 nm 1 nm grid")
    soil = _read_prosail_table("soil_reflectance.txt", 2)
    return leaf, soil


def transmissivity_isotropic(alpha_deg: torch.Tensor | float, nr: torch.Tensor) -> torch.Tensor:
    """Mean transmissivity of a dielectric plane surface for light within a cone of half-angle alpha.

    Stern (1964) / Allen (1973) closed form, as used by PROSPECT for the leaf surface: ``alpha``
    = 90 deg is isotropic (diffuse) light, PROSPECT's default 40 deg mimics the rough leaf
    surface. ``alpha`` broadcasts against ``nr`` (per-sample alpha gives an [N, W] table).
    """
    alpha = torch.as_tensor(alpha_deg, dtype=nr.dtype, device=nr.device)
    n2 = nr * nr
    n2p = n2 + 1.0
    n2m = n2 - 1.0
    a = 0.5 * (nr + 1.0) ** 2
    k = -0.25 * n2m * n2m
    sa2 = torch.sin(torch.deg2rad(alpha)) ** 2
    # the square root vanishes at alpha = 90 deg, where tav is symmetric in alpha: take its
    # derivative there as 0 (not 0 * inf) and clamp rounding noise below zero
    arg = (sa2 - 0.5 * n2p) ** 2 + k
    pos = arg > 0
    b1 = torch.where(pos, torch.sqrt(torch.where(pos, arg, 1.0)), 0.0)
    b = b1 - (sa2 - 0.5 * n2p)
    ts = (k * k / (6.0 * b ** 3) + k / b - 0.5 * b) - (k * k / (6.0 * a ** 3) + k / a - 0.5 * a)
    c = n2m * n2m
    tp = (-2.0 * n2 * (b - a) / n2p ** 2
          - 2.0 * n2 * n2p * torch.log(b / a) / c
          + 0.5 * n2 * (1.0 / b - 1.0 / a)
          + 16.0 * n2 ** 2 * (n2 ** 2 + 1.0) * torch.log((2.0 * n2p * b - c) / (2.0 * n2p * a - c))
          / (n2p ** 3 * c)
          + 16.0 * n2 ** 3 * (1.0 / (2.0 * n2p * b - c) - 1.0 / (2.0 * n2p * a - c)) / n2p ** 3)
    return (ts + tp) / (2.0 * sa2)


@dataclass(frozen=True)
class SpectralTables:
    """Per-wavelength inputs of PROSAIL on one wavelength grid, dtype and device.

    ``k`` stacks the specific absorption coefficients in the order of :data:`ABSORBERS`
    (shape [6, W]) so that the leaf absorption of a batch is one matrix product.
    ``t12`` is the surface transmissivity for diffuse light (alpha = 90 deg), which PROSPECT
    needs for every alpha; ``soil_dry`` / ``soil_wet`` are the two soil end-members.
    """

    wavelengths: torch.Tensor  # [W] int64, nm
    nr: torch.Tensor  # [W]
    k: torch.Tensor  # [6, W]
    t12: torch.Tensor  # [W]
    soil_dry: torch.Tensor  # [W]
    soil_wet: torch.Tensor  # [W]


# leaf constituents in the order of SpectralTables.k (names of prosail.run_prosail's arguments)
ABSORBERS = ("cab", "car", "ant", "cbrown", "cw", "cm")
_K_COLUMNS = ("kab", "kcar", "kant", "kbrown", "kw", "km")


@lru_cache(maxsize=1)
def _full_tables_float64() -> dict[str, np.ndarray]:
    leaf, soil = _tables()
    cols = {name: leaf[:, i] for i, name in enumerate(_LEAF_COLUMNS)}
    nr = torch.from_numpy(cols["nr"].copy())
    return {
        "nr": cols["nr"],
        "k": np.stack([cols[c] for c in _K_COLUMNS]),
        "t12": transmissivity_isotropic(90.0, nr).numpy(),
        "soil_dry": soil[:, 0].copy(),
        "soil_wet": soil[:, 1].copy(),
    }


def wavelength_index(wavelengths: torch.Tensor | np.ndarray | list[int] | None) -> tuple[int, ...] | None:
    """Validated 0-based row indices (wavelength - 400) as a hashable tuple; None = all 2101."""
    if wavelengths is None:
        return None
    wl = torch.as_tensor(wavelengths).detach().reshape(-1).cpu().double()
    if wl.numel() == 0:
        raise ValueError("wavelengths is empty")
    if not torch.equal(wl, wl.round()):
        raise ValueError("wavelengths must be whole nanometres (the tables are on a 1 nm grid)")
    if wl.min() < WL_MIN or wl.max() > WL_MAX:
        raise ValueError(f"wavelengths must lie in {WL_MIN}..{WL_MAX} nm, got "
                         f"{wl.min().item():g}..{wl.max().item():g}")
    return tuple((wl.long() - WL_MIN).tolist())


@lru_cache(maxsize=32)
def _tables_on(index: tuple[int, ...] | None, dtype: torch.dtype, device: str) -> SpectralTables:
    full = _full_tables_float64()
    idx = np.arange(N_WAVELENGTHS) if index is None else np.asarray(index, dtype=np.int64)

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a[..., idx])).to(device=device, dtype=dtype)

    return SpectralTables(
        wavelengths=torch.from_numpy(idx + WL_MIN).to(device),
        nr=t(full["nr"]), k=t(full["k"]), t12=t(full["t12"]),
        soil_dry=t(full["soil_dry"]), soil_wet=t(full["soil_wet"]),
    )


def spectral_tables(wavelengths: torch.Tensor | np.ndarray | list[int] | None = None, *,
                    dtype: torch.dtype = torch.float64,
                    device: torch.device | str = "cpu") -> SpectralTables:
    """Coefficient and soil tables restricted to ``wavelengths`` (whole nm in 400..2500)."""
    return _tables_on(wavelength_index(wavelengths), dtype, str(torch.device(device)))
