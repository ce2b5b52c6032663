"""When the satellites look, what hides the ground, and how noisy the measurement is.

- Revisit schedules: Sentinel-2A+2B give one acquisition every 5 days at a given point (10
  days each, 180 degrees apart); Sentinel-1 gives 6 days with two satellites (S1A+S1B until
  December 2021, S1A+S1C from 2025) or 12 days with one. The grid's phase is random.
- Cloud masks: synthetic (date cloudy or clear, then a spatially correlated random field
  thresholded to a drawn cover) or real masks transplanted onto simulated dates.
- Noise: Sentinel-2 reflectance gets multiplicative (calibration) and additive (atmospheric
  correction, instrument) Gaussian noise; Sentinel-1 backscatter gets Gamma speckle.
Numpy ``Generator`` drives dates and masks, ``torch.Generator`` the noise on tensors.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import DataError, UsageError

# Beta concentration of the per-date cloud cover: Beta(m k, (1 - m) k) with mean m. k = 2 gives
# the broad, U-leaning spread of cover fractions seen over temperate tiles (many nearly clear
# and nearly overcast dates, partly cloudy ones in between).
COVER_CONCENTRATION = 2.0


# -- revisit schedules --------------------------------------------------------------------

def _day(value: np.datetime64 | str) -> np.datetime64:
    return np.datetime64(value, "D")


def regular_dates(start: np.datetime64 | str, end: np.datetime64 | str, revisit_days: int,
                  rng: np.random.Generator, phase: int | None = None) -> np.ndarray:
    """Every ``revisit_days`` from ``start + phase`` to ``end`` inclusive (datetime64[D])."""
    first, last = _day(start), _day(end)
    if revisit_days < 1 or int(revisit_days) != revisit_days:
        raise UsageError(f"revisit_days must be a positive whole number, got {revisit_days}")
    if last < first:
        raise UsageError(f"end {last} is before start {first}")
    if phase is None:
        phase = int(rng.integers(revisit_days))
    if not 0 <= phase < revisit_days:
        raise UsageError(f"phase must be in [0, {revisit_days}), got {phase}")
    return np.arange(first + np.timedelta64(int(phase), "D"), last + np.timedelta64(1, "D"),
                     np.timedelta64(int(revisit_days), "D")).astype("datetime64[D]")


def s2_dates(start: np.datetime64 | str, end: np.datetime64 | str, rng: np.random.Generator,
             revisit_days: int = 5, phase: int | None = None) -> np.ndarray:
    """Sentinel-2A+2B acquisition days: a 5-day grid with a random phase."""
    return regular_dates(start, end, revisit_days, rng, phase)


def s1_dates(start: np.datetime64 | str, end: np.datetime64 | str, rng: np.random.Generator,
             revisit_days: int = 6, phase: int | None = None) -> np.ndarray:
    """Sentinel-1 acquisition days of one orbit track: 6 days (two satellites) or 12 (one)."""
    return regular_dates(start, end, revisit_days, rng, phase)


# -- cloud masks --------------------------------------------------------------------------

def correlated_field(n: int, height: int, width: int, rng: np.random.Generator,
                     correlation_px: float) -> np.ndarray:
    """``n`` Gaussian random fields [n, H, W]: white noise low-passed by a Gaussian kernel.

    The kernel's standard deviation is ``correlation_px``, so the field's autocorrelation is
    ``exp(-d^2 / (4 correlation_px^2))`` at a distance of ``d`` pixels (1/e at twice
    ``correlation_px``); the noise is drawn on a grid padded
    by 3 of them and cropped, so the FFT's wrap-around does not tie opposite edges together.
    """
    pad = int(np.ceil(3 * correlation_px))
    ph, pw = height + 2 * pad, width + 2 * pad
    noise = rng.standard_normal((n, ph, pw))
    fy, fx = np.fft.fftfreq(ph)[:, None], np.fft.rfftfreq(pw)[None, :]
    transfer = np.exp(-2.0 * (np.pi * correlation_px) ** 2 * (fy**2 + fx**2))
    field = np.fft.irfft2(np.fft.rfft2(noise) * transfer, s=(ph, pw))
    return field[:, pad:pad + height, pad:pad + width]


def threshold_to_cover(field: np.ndarray, cover: np.ndarray, at_least_one: bool = False) -> np.ndarray:
    """True on the fraction ``cover[t]`` of each date's highest field values."""
    flat = field.reshape(len(field), -1)
    n_px = flat.shape[1]
    n_true = np.rint(np.clip(cover, 0.0, 1.0) * n_px).astype(int)
    if at_least_one:
        n_true = np.maximum(n_true, 1)
    rank = np.argsort(np.argsort(-flat, axis=1), axis=1)
    return (rank < n_true[:, None]).reshape(field.shape)


def random_cloud_masks(n_dates: int, height: int, width: int, rng: np.random.Generator,
                       cloud_probability: float = 0.4, mean_cover: float = 0.5,
                       correlation_px: float = 8.0) -> np.ndarray:
    """Synthetic cloud masks [T, H, W] (True = cloud).

    A date is cloudy with ``cloud_probability``; a cloudy date's cover fraction is drawn from
    Beta with mean ``mean_cover`` (see :data:`COVER_CONCENTRATION`) and its clouds (at least
    one pixel) are the top fraction of a random field correlated over ``correlation_px``
    pixels. The expected cloud
    fraction over all dates and pixels is ``cloud_probability * mean_cover``.
    """
    if not 0.0 <= cloud_probability <= 1.0:
        raise UsageError(f"cloud_probability must be in [0, 1], got {cloud_probability}")
    if not 0.0 < mean_cover < 1.0:
        raise UsageError(f"mean_cover must be in (0, 1), got {mean_cover}")
    if correlation_px <= 0:
        raise UsageError(f"correlation_px must be positive, got {correlation_px}")
    cloudy = rng.random(n_dates) < cloud_probability
    k = COVER_CONCENTRATION
    cover = np.where(cloudy, rng.beta(mean_cover * k, (1.0 - mean_cover) * k, n_dates), 0.0)
    masks = np.zeros((n_dates, height, width), dtype=bool)
    idx = np.flatnonzero(cloudy)
    if idx.size:
        field = correlated_field(idx.size, height, width, rng, correlation_px)
        masks[idx] = threshold_to_cover(field, cover[idx], at_least_one=True)
    return masks


def _shift(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``mask`` moved by (dy, dx) pixels, False where nothing moves in."""
    out = np.zeros_like(mask)
    h, w = mask.shape
    if abs(dy) >= h or abs(dx) >= w:
        return out
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        mask[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def cloud_shadows(clouds: np.ndarray, rng: np.random.Generator, max_shift_px: int = 10,
                  azimuth_deg: float = 315.0) -> np.ndarray:
    """Shadows [T, H, W]: each date's clouds moved by a random distance, minus the clouds.

    The direction is ``azimuth_deg`` +- 20 degrees clockwise from image north (row 0 up):
    with a morning sun in the south-east (Sentinel-2 passes at 10:30 local time) shadows fall
    to the north-west of their clouds in the northern hemisphere. The distance, uniform in
    ``[1, max_shift_px]``, stands for cloud height x tan(sun zenith) / pixel size.
    """
    clouds = np.asarray(clouds, dtype=bool)
    shadows = np.zeros_like(clouds)
    for t in range(len(clouds)):
        distance = rng.uniform(1.0, max_shift_px)
        angle = np.deg2rad(azimuth_deg + rng.uniform(-20.0, 20.0))
        dy, dx = int(round(-distance * np.cos(angle))), int(round(distance * np.sin(angle)))
        shadows[t] = _shift(clouds[t], dy, dx) & ~clouds[t]
    return shadows


def _as_mask_stack(real_masks: np.ndarray) -> np.ndarray:
    masks = np.asarray(real_masks)
    if masks.ndim == 4 and masks.shape[-1] == 1:  # eo-learn layout [T, H, W, 1]
        masks = masks[..., 0]
    if masks.ndim != 3 or 0 in masks.shape:
        raise DataError(f"real cloud masks: expected a [K, H, W] array (or [K, H, W, 1]), "
                        f"got shape {masks.shape}")
    if masks.dtype != bool:
        values = np.unique(masks)
        if not np.isin(values, (0, 1)).all():
            raise DataError(f"real cloud masks: expected booleans or 0/1, found values "
                            f"{values[:5].tolist()}")
    return masks.astype(bool)


def _window(source_size: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of a random crop, or of a randomly offset tiling when the source is smaller."""
    if source_size >= size:
        start = int(rng.integers(source_size - size + 1))
        return np.arange(start, start + size)
    return (int(rng.integers(source_size)) + np.arange(size)) % source_size


def transplant_masks(real_masks: np.ndarray, n_dates: int, height: int, width: int,
                     rng: np.random.Generator, flips: bool = True) -> np.ndarray:
    """Real cloud masks on simulated dates [T, H, W]: a random source date per target date.

    Each target date takes a random crop of a randomly chosen source mask (tiled with a random
    offset when the source is smaller), optionally flipped, so clear-and-cloudy statistics
    and cloud shapes are real while dates and positions vary.
    """
    masks = _as_mask_stack(real_masks)
    k, h0, w0 = masks.shape
    out = np.empty((n_dates, height, width), dtype=bool)
    for t in range(n_dates):
        crop = masks[int(rng.integers(k))][np.ix_(_window(h0, height, rng), _window(w0, width, rng))]
        if flips and rng.random() < 0.5:
            crop = crop[::-1]
        if flips and rng.random() < 0.5:
            crop = crop[:, ::-1]
        out[t] = crop
    return out


# -- noise --------------------------------------------------------------------------------

def _randn_like(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Standard normal noise shaped like ``x``, drawn on the generator's device."""
    return torch.randn(x.shape, generator=generator, dtype=x.dtype,
                       device=generator.device).to(x.device)


def s2_noise(reflectance: torch.Tensor, generator: torch.Generator, additive_std: float = 0.005,
             multiplicative_std: float = 0.02) -> torch.Tensor:
    """``rho * (1 + m e1) + a e2`` with independent standard normal ``e1``, ``e2``.

    ``multiplicative_std = 0.02``: absolute radiometric calibration of the MSI, required
    better than 5 % (3 % goal) and reported at about 2-3 % in the L1C data-quality reports.
    ``additive_std = 0.005``: surface-reflectance error left by atmospheric correction over
    land (validation of Sen2Cor / MAJA in the ACIX exercise: 0.005-0.01 in the visible and
    near infrared) together with instrument noise (SNR 100-170 at reference radiance).
    Differentiable with respect to ``reflectance``; errors are independent per value (the
    spatially and spectrally correlated part of real errors is not modelled).
    """
    e1 = _randn_like(reflectance, generator)
    e2 = _randn_like(reflectance, generator)
    return reflectance * (1.0 + multiplicative_std * e1) + additive_std * e2


def s1_speckle(sigma0_linear: torch.Tensor, generator: torch.Generator,
               looks: float = 4.4) -> torch.Tensor:
    """Fully developed speckle: ``sigma0 * Gamma(looks, 1 / looks)`` (mean 1, var 1 / looks).

    ``looks`` is the equivalent number of looks; 4.4 is ESA's figure for Sentinel-1 IW GRD
    high-resolution (GRDH) products (Sentinel-1 product definition). Multilooked or
    spatially averaged data have a larger ENL. Works on linear power, never on dB.
    """
    if looks <= 0:
        raise UsageError(f"looks must be positive, got {looks}")
    dtype = sigma0_linear.dtype
    if dtype not in (torch.float32, torch.float64):  # the Gamma sampler's dtypes
        dtype = torch.float32
    shape = torch.full(sigma0_linear.shape, float(looks), dtype=dtype, device=generator.device)
    # the sampler behind torch.distributions.Gamma, called directly to pass the generator
    speckle = torch._standard_gamma(shape, generator=generator) / looks
    return sigma0_linear * speckle.to(sigma0_linear.device, sigma0_linear.dtype)
