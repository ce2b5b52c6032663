"""The scene simulator: small Sentinel-1/2 image time series with exact ground truth.

A scene is a square patch (default 32 x 32 px at 10 m) cut into fields (a Voronoi partition
of random seeds), each field a crop type or natural cover with its own double-logistic LAI
season, PROSAIL leaf and soil parameters, and within-field variability (a spatially smooth
multiplier on peak LAI and a jitter of the season dates). Sentinel-2A/B observe it on their
own 5-day grid (alternating platforms, each with its own spectral response), through
clouds; Sentinel-1 observes it every 6 or 12 days through a water-cloud model with speckle,
driven by the same LAI and by a soil-moisture series of rain events and drying.

Everything is reproducible from ``seed`` and versioned by :data:`SIMULATOR_VERSION`: a task
pins the version, and any change that alters numbers bumps it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .acquisition import random_cloud_masks, s1_dates, s1_speckle, s2_dates, s2_noise, transplant_masks
from .phenology import DoubleLogistic, double_logistic, sample_double_logistic
from .prosail import run_prosail
from .srf import SpectralResponse
from .water_cloud import water_cloud

SIMULATOR_VERSION = 1
S2_L2A_BANDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12")
DEFAULT_CLASSES = ("winter_wheat", "maize", "sunflower", "soybean", "grassland",
                   "deciduous_forest", "bare_soil")
# Cloud top reflectance per band (bright, nearly flat, a little higher in the blue): an
# optically thick cloud as seen in L2A products that did not mask it.
_CLOUD_REFLECTANCE = np.array([0.62, 0.60, 0.58, 0.56, 0.55, 0.55, 0.54, 0.54, 0.53, 0.45,
                               0.40, 0.30])


@dataclass(frozen=True)
class SceneConfig:
    """What a scene looks like. Defaults: a temperate crop landscape near Toulouse, 2021."""

    size: int = 32
    pixel_size_m: float = 10.0
    start: str = "2021-01-01"
    end: str = "2021-12-31"
    n_fields: int = 8
    classes: tuple[str, ...] = DEFAULT_CLASSES
    cloud_probability: float = 0.45
    s1_revisit_days: int = 6
    latitude_deg: float = 43.6
    crs: str = "EPSG:32631"
    origin_xy: tuple[float, float] = (360000.0, 4830000.0)  # upper-left corner, UTM 31N
    s2_noise_additive: float = 0.005
    s2_noise_multiplicative: float = 0.02
    s1_looks: float = 4.4


@dataclass
class Scene:
    """Observations and truth of one simulated scene.

    Shapes: ``T2`` S2 dates, ``T1`` S1 dates, ``H = W = size``.
    s2_reflectance / s2_clear: ``[T2, 12, H, W]`` surface reflectance (0-1) as observed
    (noise, clouds) and the cloud-free, noise-free truth; s2_cloud: ``[T2, H, W]`` True = cloud.
    s1: ``[T1, 2, H, W]`` backscatter in dB, bands (VV, VH).
    truth_*: per pixel and S2 date (``lai``, ``cab``, ``ccc`` = lai x cab) and per pixel
    (``class_map``, ``field_id``, phenology parameters and season dates in day of year).
    """

    seed: int
    config: SceneConfig
    s2_dates: np.ndarray
    s2_platform: np.ndarray
    s2_angles: dict[str, np.ndarray]
    s2_reflectance: torch.Tensor
    s2_clear: torch.Tensor
    s2_cloud: torch.Tensor
    s1_dates: np.ndarray
    s1_incidence_deg: np.ndarray
    s1: torch.Tensor
    truth_lai: torch.Tensor
    truth_cab: torch.Tensor
    truth_ccc: torch.Tensor
    truth_lai_s1: torch.Tensor
    soil_moisture_s1: torch.Tensor
    class_map: np.ndarray
    field_id: np.ndarray
    phenology: dict[str, np.ndarray]
    version: int = SIMULATOR_VERSION
    s2_bands: tuple[str, ...] = S2_L2A_BANDS
    s1_bands: tuple[str, ...] = ("VV", "VH")
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.config.classes

    def transform(self) -> tuple[float, float, float, float, float, float]:
        """Affine geotransform (a, b, c, d, e, f) of the upper-left pixel corner, north up."""
        x0, y0 = self.config.origin_xy
        p = self.config.pixel_size_m
        return (p, 0.0, x0, 0.0, -p, y0)


# -- building blocks ----------------------------------------------------------------------

def _voronoi_fields(size: int, n_fields: int, rng: np.random.Generator) -> np.ndarray:
    """Field id per pixel: nearest of ``n_fields`` random seeds (straight field borders)."""
    seeds = rng.uniform(0, size, (n_fields, 2))
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    d = (yy[..., None] - seeds[:, 0]) ** 2 + (xx[..., None] - seeds[:, 1]) ** 2
    return d.argmin(axis=-1).astype(np.int32)


def _smooth_field(size: int, rng: np.random.Generator, corr_px: float) -> np.ndarray:
    """Zero-mean, unit-std Gaussian random field with correlation length ``corr_px``."""
    noise = rng.standard_normal((size, size))
    f = np.fft.fftfreq(size)
    k2 = f[:, None] ** 2 + f[None, :] ** 2
    filt = np.exp(-2.0 * (np.pi * corr_px) ** 2 * k2)
    field_ = np.real(np.fft.ifft2(np.fft.fft2(noise) * filt))
    return (field_ - field_.mean()) / max(field_.std(), 1e-12)


def _doy(dates: np.ndarray) -> np.ndarray:
    d = dates.astype("datetime64[D]")
    return (d - d.astype("datetime64[Y]")).astype(np.int64).astype(np.float64) + 1.0


def solar_zenith_deg(dates: np.ndarray, latitude_deg: float, local_hour: float = 10.5) -> np.ndarray:
    """Solar zenith angle at the S2 overpass (about 10:30 local solar time), Cooper's declination."""
    doy = _doy(dates)
    decl = np.deg2rad(23.44) * np.sin(2 * np.pi * (284 + doy) / 365.0)
    lat = np.deg2rad(latitude_deg)
    hour_angle = np.deg2rad(15.0 * (local_hour - 12.0))
    cos_z = np.sin(lat) * np.sin(decl) + np.cos(lat) * np.cos(decl) * np.cos(hour_angle)
    return np.rad2deg(np.arccos(np.clip(cos_z, -1, 1)))


def _soil_moisture_series(days: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Volumetric soil moisture (m3/m3) per date and pixel: rain events (Poisson, ~1 per 5 days)
    raise it, exponential drying (e-folding ~6 days) lowers it toward a residual, and a smooth
    spatial pattern (texture) scales it."""
    t0, t1 = int(days.min()), int(days.max())
    n_days = t1 - t0 + 1
    rain = rng.random(n_days) < 0.2
    amount = rain * rng.gamma(2.0, 0.04, n_days)
    sm = np.empty(n_days)
    level, residual, wet = 0.2, 0.08, 0.45
    for i in range(n_days):
        level = residual + (level - residual) * np.exp(-1.0 / 6.0) + amount[i]
        level = min(level, wet)
        sm[i] = level
    pattern = 1.0 + 0.15 * _smooth_field(size, rng, 6.0)
    series = sm[(days - t0).astype(int)]
    return np.clip(series[:, None, None] * pattern[None], 0.02, 0.5)


# -- the simulator ------------------------------------------------------------------------

def simulate_scene(seed: int, config: SceneConfig | None = None, *,
                   real_cloud_masks: np.ndarray | None = None,
                   dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> Scene:
    """Simulate one scene; the same ``seed`` and ``config`` give the same numbers.

    ``real_cloud_masks`` (bool or 0/1 ``[K, H0, W0]``, or eo-learn's ``[K, H0, W0, 1]``): real
    cloud masks transplanted onto the simulated S2 dates (random source date, crop and flip per
    date) instead of random cloud fields, so cloud shapes and clear/cloudy statistics are real.
    """
    cfg = config or SceneConfig()
    rng = np.random.default_rng(np.random.SeedSequence([seed, SIMULATOR_VERSION]))
    gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
    size = cfg.size
    start, end = np.datetime64(cfg.start, "D"), np.datetime64(cfg.end, "D")

    # fields, classes and per-field parameters
    field_id = _voronoi_fields(size, cfg.n_fields, rng)
    field_class = rng.integers(0, len(cfg.classes), cfg.n_fields)
    class_map = field_class[field_id].astype(np.int32)
    n_px = size * size
    pheno = {k: np.zeros(n_px) for k in ("vmin", "vmax", "sos", "eos", "rate_up", "rate_down")}
    leaf = {k: np.zeros(n_px) for k in ("n", "cab_max", "car", "cbrown", "cw", "cm", "lidfa",
                                        "hspot", "rsoil", "ant")}
    vigour = np.exp(0.12 * _smooth_field(size, rng, 4.0)).reshape(-1)  # within-field variability
    jitter = (4.0 * _smooth_field(size, rng, 5.0)).reshape(-1)  # days
    flat_field = field_id.reshape(-1)
    for f in range(cfg.n_fields):
        px = flat_field == f
        crop = cfg.classes[field_class[f]]
        p: DoubleLogistic = sample_double_logistic(1, gen, crop)
        for k in pheno:
            pheno[k][px] = float(getattr(p, k).reshape(-1)[0])
        leaf["n"][px] = rng.uniform(1.3, 2.0)
        leaf["cab_max"][px] = rng.uniform(35, 65) if crop != "bare_soil" else 10.0
        leaf["car"][px] = rng.uniform(6, 12)
        leaf["cbrown"][px] = rng.uniform(0.0, 0.15)
        leaf["cw"][px] = rng.uniform(0.008, 0.02)
        leaf["cm"][px] = rng.uniform(0.004, 0.009)
        leaf["lidfa"][px] = rng.uniform(45, 70)
        leaf["hspot"][px] = rng.uniform(0.05, 0.2)
        leaf["rsoil"][px] = rng.uniform(0.7, 1.3)
        leaf["ant"][px] = rng.uniform(0.0, 2.0)
    pheno["vmax"] = pheno["vmin"] + (pheno["vmax"] - pheno["vmin"]) * vigour
    pheno["sos"] = pheno["sos"] + jitter
    pheno["eos"] = pheno["eos"] + jitter

    def lai_at(doy: np.ndarray) -> torch.Tensor:  # [T] -> [T, n_px]
        p = DoubleLogistic(**{k: torch.as_tensor(v, dtype=torch.float64)[None] for k, v in pheno.items()})
        return double_logistic(torch.as_tensor(doy, dtype=torch.float64)[:, None], p).clamp(min=0.0)

    # Sentinel-2: dates, platforms, angles, clouds
    d2 = s2_dates(start, end, rng, revisit_days=5)
    t2 = len(d2)
    platform = np.where(np.arange(t2) % 2 == 0, "s2a", "s2b")
    tts = solar_zenith_deg(d2, cfg.latitude_deg)
    tto = rng.uniform(0.5, 10.0, t2)
    psi = rng.uniform(0.0, 180.0, t2)
    if real_cloud_masks is not None:
        cloud = transplant_masks(real_cloud_masks, t2, size, size, rng)
    else:
        cloud = random_cloud_masks(t2, size, size, rng, cloud_probability=cfg.cloud_probability)
    doy2 = _doy(d2)
    lai2 = lai_at(doy2)  # [T2, n_px]
    greenness = (lai2 - torch.as_tensor(pheno["vmin"])) / torch.as_tensor(
        np.maximum(pheno["vmax"] - pheno["vmin"], 1e-6))
    cab2 = 10.0 + (torch.as_tensor(leaf["cab_max"]) - 10.0) * greenness.clamp(0, 1)
    psoil = _soil_moisture_series(doy2, size, rng).reshape(t2, n_px)
    psoil_dry = np.clip(1.0 - (psoil - 0.02) / 0.48, 0, 1)  # prosail's psoil: 1 = dry soil

    clear = torch.empty(t2, len(S2_L2A_BANDS), n_px, dtype=torch.float64)
    for sensor in ("s2a", "s2b"):
        sel = np.flatnonzero(platform == sensor)
        if sel.size == 0:
            continue
        srf = SpectralResponse.default(sensor, bands=S2_L2A_BANDS)
        n_rows = sel.size * n_px
        rep = lambda a: torch.as_tensor(np.broadcast_to(a, (sel.size, n_px)).reshape(-1).copy())  # noqa: E731
        params = {
            "n": rep(leaf["n"]), "cab": cab2[sel].reshape(-1), "car": rep(leaf["car"]),
            "cbrown": rep(leaf["cbrown"]), "cw": rep(leaf["cw"]), "cm": rep(leaf["cm"]),
            "lai": lai2[sel].reshape(-1), "lidfa": rep(leaf["lidfa"]),
            "lidfb": torch.zeros(n_rows), "typelidf": torch.full((n_rows,), 2),
            "hspot": rep(leaf["hspot"]), "tts": rep(tts[sel][:, None]), "tto": rep(tto[sel][:, None]),
            "psi": rep(psi[sel][:, None]), "ant": rep(leaf["ant"]), "rsoil": rep(leaf["rsoil"]),
            "psoil": torch.as_tensor(psoil_dry[sel].reshape(-1)),
        }
        params = {k: v.to(dtype=dtype, device=device) if v.is_floating_point() else v.to(device)
                  for k, v in params.items()}
        spectra = run_prosail(params, wavelengths=srf.wavelengths.to(device), dtype=dtype, device=device)
        bands = srf.apply(spectra, spectra_wavelengths=srf.wavelengths.to(device))
        clear[sel] = bands.reshape(sel.size, n_px, -1).permute(0, 2, 1).to("cpu", torch.float64)
    clear = clear.clamp(0.0, 1.0).reshape(t2, -1, size, size)

    noisy = s2_noise(clear, gen, additive_std=cfg.s2_noise_additive,
                     multiplicative_std=cfg.s2_noise_multiplicative)
    cloud_t = torch.as_tensor(cloud)
    opacity = torch.as_tensor(rng.uniform(0.6, 1.0, (t2, 1, 1, 1)))
    cloud_refl = torch.as_tensor(_CLOUD_REFLECTANCE)[None, :, None, None]
    observed = torch.where(cloud_t[:, None], (1 - opacity) * noisy + opacity * cloud_refl, noisy)
    observed = observed.clamp(0.0, 1.0)

    # Sentinel-1: own dates, incidence angle per orbit, soil moisture, speckle
    d1 = s1_dates(start, end, rng, revisit_days=cfg.s1_revisit_days)
    t1 = len(d1)
    incidence = rng.uniform(33.0, 42.0) + np.zeros(t1)
    doy1 = _doy(d1)
    lai1 = lai_at(doy1)  # [T1, n_px]
    sm1 = torch.as_tensor(_soil_moisture_series(doy1, size, rng).reshape(t1, n_px))
    inc1 = torch.as_tensor(incidence)[:, None].expand(t1, n_px)
    s1 = []
    for pol in ("VV", "VH"):
        db = water_cloud(lai1, sm1, inc1, polarisation=pol)
        linear = torch.pow(10.0, db / 10.0)
        s1.append(10.0 * torch.log10(s1_speckle(linear, gen, looks=cfg.s1_looks).clamp(min=1e-6)))
    s1_t = torch.stack(s1, dim=1).reshape(t1, 2, size, size)

    lai_grid = lai2.reshape(t2, size, size)
    cab_grid = cab2.reshape(t2, size, size)
    sos50 = pheno["sos"].reshape(size, size)
    eos50 = pheno["eos"].reshape(size, size)
    return Scene(
        seed=seed, config=cfg, s2_dates=d2, s2_platform=platform,
        s2_angles={"tts": tts, "tto": tto, "psi": psi},
        s2_reflectance=observed.float(), s2_clear=clear.float(), s2_cloud=cloud_t,
        s1_dates=d1, s1_incidence_deg=incidence, s1=s1_t.float(),
        truth_lai=lai_grid.float(), truth_cab=cab_grid.float(),
        truth_ccc=(lai_grid * cab_grid).float(), truth_lai_s1=lai1.reshape(t1, size, size).float(),
        soil_moisture_s1=sm1.reshape(t1, size, size).float(),
        class_map=class_map, field_id=field_id,
        phenology={k: v.reshape(size, size) for k, v in pheno.items()} | {"sos": sos50, "eos": eos50},
        metadata={"simulator_version": SIMULATOR_VERSION, "seed": seed, "config": asdict(cfg),
                  "clouds": "transplanted real masks" if real_cloud_masks is not None else "random fields"},
    )


# -- writing to disk ----------------------------------------------------------------------

def write_scene(scene: Scene, out_dir: str | Path) -> list[Path]:
    """Write GeoTIFFs (georeferenced, one band per date x channel, described) and Parquet tables.

    Files: ``s2_l2a.tif`` (uint16 DN = 10000 x reflectance, nodata 65535 under clouds is NOT
    applied: clouds stay visible, the mask is separate), ``s2_cloud_mask.tif``, ``s1.tif``
    (float32 dB), ``truth_lai.tif``, ``truth_cab.tif``, ``classes.tif`` (class index, field
    id), ``dates.parquet`` (per date: sensor, platform, angles), ``truth_pixels.parquet``
    (per pixel and S2 date: lai, cab, ccc, class, field), ``scene.json`` (config, version,
    class names, band order).
    """
    import pandas as pd
    import rasterio
    from rasterio.transform import Affine

    from ..results import atomic_write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    transform = Affine(*scene.transform())
    size = scene.config.size
    written: list[Path] = []

    def tif(name: str, data: np.ndarray, descriptions: list[str], dtype: str,
            nodata: float | None = None) -> None:
        path = out / name
        tmp = out / f".{name}.tmp"
        with rasterio.open(tmp, "w", driver="GTiff", height=size, width=size,
                           count=data.shape[0], dtype=dtype, crs=scene.config.crs,
                           transform=transform, nodata=nodata, compress="deflate") as dst:
            dst.write(data.astype(dtype))
            for i, d in enumerate(descriptions, start=1):
                dst.set_band_description(i, d)
        tmp.replace(path)
        written.append(path)

    t2, c = scene.s2_reflectance.shape[:2]
    dn = np.round(scene.s2_reflectance.numpy() * 10000.0).reshape(t2 * c, size, size)
    tif("s2_l2a.tif", dn, [f"{d}_{b}" for d in scene.s2_dates.astype(str) for b in scene.s2_bands],
        "uint16")
    tif("s2_cloud_mask.tif", scene.s2_cloud.numpy().astype(np.uint8),
        [str(d) for d in scene.s2_dates.astype(str)], "uint8")
    t1 = scene.s1.shape[0]
    tif("s1.tif", scene.s1.numpy().reshape(t1 * 2, size, size),
        [f"{d}_{b}" for d in scene.s1_dates.astype(str) for b in scene.s1_bands], "float32")
    tif("truth_lai.tif", scene.truth_lai.numpy(), [str(d) for d in scene.s2_dates.astype(str)], "float32")
    tif("truth_cab.tif", scene.truth_cab.numpy(), [str(d) for d in scene.s2_dates.astype(str)], "float32")
    tif("classes.tif", np.stack([scene.class_map, scene.field_id]), ["class", "field_id"], "int32")

    dates = pd.concat([
        pd.DataFrame({"date": scene.s2_dates, "sensor": "s2", "platform": scene.s2_platform,
                      "sun_zenith_deg": scene.s2_angles["tts"], "view_zenith_deg": scene.s2_angles["tto"],
                      "relative_azimuth_deg": scene.s2_angles["psi"],
                      "cloud_fraction": scene.s2_cloud.float().mean(dim=(1, 2)).numpy()}),
        pd.DataFrame({"date": scene.s1_dates, "sensor": "s1", "platform": "s1",
                      "incidence_deg": scene.s1_incidence_deg}),
    ], ignore_index=True)
    dates.to_parquet(out / "dates.parquet", index=False)
    written.append(out / "dates.parquet")
    rows, cols = np.mgrid[0:size, 0:size]
    per_px = pd.DataFrame({
        "date": np.repeat(scene.s2_dates, size * size),
        "row": np.tile(rows.reshape(-1), t2), "col": np.tile(cols.reshape(-1), t2),
        "lai": scene.truth_lai.numpy().reshape(-1), "cab": scene.truth_cab.numpy().reshape(-1),
        "ccc": scene.truth_ccc.numpy().reshape(-1),
        "class": np.tile(scene.class_map.reshape(-1), t2), "field_id": np.tile(scene.field_id.reshape(-1), t2),
        "cloud": scene.s2_cloud.numpy().reshape(-1),
    })
    per_px.to_parquet(out / "truth_pixels.parquet", index=False)
    written.append(out / "truth_pixels.parquet")
    meta = {**scene.metadata, "class_names": list(scene.class_names), "s2_bands": list(scene.s2_bands),
            "s2_units": "reflectance_x10000", "s1_bands": list(scene.s1_bands), "s1_units": "dB",
            "crs": scene.config.crs, "transform": list(scene.transform()),
            "phenology_doy": {k: {"mean": float(v.mean())} for k, v in scene.phenology.items()}}
    atomic_write_text(out / "scene.json", json.dumps(meta, indent=2, default=str) + "\n")
    written.append(out / "scene.json")
    return written
