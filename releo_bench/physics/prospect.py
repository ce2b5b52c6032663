"""PROSPECT-D leaf optical properties in PyTorch: batched, differentiable, float32 or float64.

The leaf is a plate model (Allen et al. 1969; Jacquemoud & Baret 1990): one compact layer
with a rough top surface (light within a cone of half-angle ``alpha``) followed by ``N - 1``
identical layers combined with Stokes' equations for a pile of plates (N real). Absorption
inside a layer is the specific absorption of the constituents weighted by their
concentrations, divided by N (Feret et al. 2017 for the PROSPECT-D coefficients, which are
read from the ``prosail`` package, see :mod:`.spectral_data`).

The transmission of isotropic light through a layer of absorption ``k`` is ``2 E3(k) =
(1 - k) exp(-k) + k^2 E1(k)``; torch has no exponential integral, so :func:`exp1` implements
E1 (power series below a threshold, a continued fraction above, both as fixed-length
vectorised recurrences) with the analytic derivative ``-exp(-x)/x``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from .spectral_data import ABSORBERS, SpectralTables, spectral_tables, transmissivity_isotropic

EULER_GAMMA = 0.57721566490153286061

# Per precision: switch point between the series and the continued fraction, number of series
# terms, and the continued-fraction depth per range of x: depth d is used from x_from up to the
# next range. Depths were chosen from the truncation error measured against scipy.special.exp1 at
# each range's lower end (relative error < 3e-15 in float64, < 3e-8 in float32), plus a margin
# of two levels. Fixed ranges (rather than, say, the depth that the smallest x of a call needs)
# make every element's value independent of the other elements of the call.
_E1_PLAN: dict[torch.dtype, tuple[float, int, tuple[tuple[float, int], ...]]] = {
    torch.float64: (2.5, 28, ((2.5, 39), (4.0, 27), (8.0, 17), (15.0, 11), (50.0, 7))),
    torch.float32: (1.0, 13, ((1.0, 28), (2.0, 16), (4.0, 10), (10.0, 6))),
}


def _series_coefficients(terms: int) -> list[float]:
    """c_k = (-1)^(k+1) / (k k!), k = 1..terms: E1(x) = -gamma - ln x + sum_k c_k x^k."""
    return [(-1.0) ** (k + 1) / (k * math.factorial(k)) for k in range(1, terms + 1)]


@lru_cache(maxsize=64)
def _scalars(values: tuple[float, ...], dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, ...]:
    """0-d tensors of the recurrences' constants, made once (creating one costs ~5 us)."""
    return tuple(torch.tensor(v, dtype=dtype, device=device) for v in values)


def _e1_series(x: torch.Tensor, terms: int) -> torch.Tensor:
    coef = _series_coefficients(terms)
    consts = _scalars(tuple(reversed(coef[:-1])), x.dtype, x.device)
    acc = torch.full_like(x, coef[-1])
    for c in consts:
        acc = torch.addcmul(c, acc, x)
    return torch.addcmul(-torch.log(x) - EULER_GAMMA, acc, x)


def _e1_continued_fraction(x: torch.Tensor, depth: int) -> torch.Tensor:
    """E1(x) = exp(-x) / (x + 1 - 1/(x + 3 - 4/(x + 5 - ...))), evaluated from the bottom up.

    ``g`` carries the denominator minus x so each level is one add and one fused divide.
    """
    g = torch.full_like(x, 2.0 * depth + 1.0)
    one, *odd = _scalars((1.0, *(2.0 * k + 1.0 for k in range(depth - 1, -1, -1))), x.dtype, x.device)
    for k, c in zip(range(depth - 1, -1, -1), odd):
        g = torch.addcdiv(c, one, x + g, value=-float((k + 1) ** 2))
    return torch.exp(-x) / (x + g)


def exp1_values(x: torch.Tensor) -> torch.Tensor:
    """E1(x) without autograd (use :func:`exp1` for gradients). inf at 0, nan for x < 0."""
    work = x if x.dtype in (torch.float32, torch.float64) else x.to(torch.float32)
    threshold, terms, plan = _E1_PLAN[work.dtype]
    out = torch.empty_like(work)
    ranges = [(-math.inf, threshold, 0)] + [
        (lo, plan[i + 1][0] if i + 1 < len(plan) else math.inf, depth) for i, (lo, depth) in enumerate(plan)]
    for lo, hi, depth in ranges:
        sel = (work > lo) & (work <= hi) if hi < math.inf else work > lo
        count = int(sel.sum())
        if count == 0:
            continue
        part = work if count == work.numel() else work[sel]
        if depth == 0:
            val = _e1_series(part.clamp_min(torch.finfo(work.dtype).tiny), terms)
        else:
            val = _e1_continued_fraction(part, depth)
        if count == work.numel():
            out = val
        else:
            out[sel] = val
    out = torch.where(work > 0, out, torch.where(work == 0, math.inf, math.nan))  # also nan in, nan out
    return out.to(x.dtype)


class _Exp1(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return exp1_values(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad * (-torch.exp(-x) / x)


def exp1(x: torch.Tensor) -> torch.Tensor:
    """Exponential integral E1(x) = int_x^inf exp(-t)/t dt for x >= 0, differentiable.

    Relative accuracy about 1e-14 in float64 and 3e-7 in float32 over 1e-8..700
    (tests/test_prosail.py checks it against scipy.special.exp1).
    """
    return _Exp1.apply(x)


class _LayerTransmission(torch.autograd.Function):
    """Isotropic transmission 2 E3(k) of a layer with absorption k; 1 for k <= 0 (no absorber).

    A dedicated node because its derivative has a closed form, d/dk 2E3(k) = -2 E2(k) =
    2 (k E1(k) - exp(-k)), which is cheaper and better conditioned than differentiating the
    expression term by term.
    """

    @staticmethod
    def forward(ctx, k: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        pos = k > 0
        ks = torch.where(pos, k, 1.0)
        e1 = exp1_values(ks)
        em = torch.exp(-ks)
        tau = torch.where(pos, torch.addcmul((1.0 - ks) * em, ks * ks, e1), 1.0)
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(torch.where(pos, 2.0 * torch.addcmul(-em, ks, e1), 0.0))
        return tau

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (dtau,) = ctx.saved_tensors
        return grad * dtau


def layer_transmission(k: torch.Tensor) -> torch.Tensor:
    """Transmission of isotropic light through a plate of absorption ``k`` (PROSPECT's tau)."""
    return _LayerTransmission.apply(k)


def leaf_optics(conc: torch.Tensor, n: torch.Tensor, alpha: torch.Tensor | float,
                tables: SpectralTables) -> tuple[torch.Tensor, torch.Tensor]:
    """Leaf hemispherical reflectance and transmittance, each [N, W].

    ``conc`` is [N, 6] in :data:`ABSORBERS` order, ``n`` is [N] (or [1]) leaf structure,
    ``alpha`` a float or an [N] / [1] tensor in degrees.
    """
    # [N, W] absorption of one elementary layer. Accumulated term by term (not as a matrix
    # product, whose summation order may depend on W) so that any wavelength subset gives
    # exactly the matching columns of the full spectrum.
    c = conc / n[:, None]
    k = c[:, :1] * tables.k[0]
    for j in range(1, tables.k.shape[0]):
        k = torch.addcmul(k, c[:, j:j + 1], tables.k[j])
    tau = layer_transmission(k)

    # surface transmissivities: per wavelength, or per sample and wavelength if alpha varies
    alpha_t = torch.as_tensor(alpha, dtype=tables.nr.dtype, device=tables.nr.device)
    talf = transmissivity_isotropic(alpha_t.reshape(-1, 1) if alpha_t.ndim else alpha_t, tables.nr)
    t12 = tables.t12
    t21 = t12 / (tables.nr * tables.nr)
    r21 = 1.0 - t21

    # one compact layer: top face lit within alpha (Ra, Ta), inner faces lit diffusely (r, t)
    r21tau = r21 * tau
    q = tau / (1.0 - r21tau * r21tau)
    ta = (talf * t21) * q
    ra = torch.addcmul(1.0 - talf, r21tau, ta)
    t = (t12 * t21) * q
    r = torch.addcmul(1.0 - t12, r21tau, t)

    # N - 1 further layers (Stokes 1862), then the top layer on that pile
    rsub, tsub = _pile_of_plates(r, t, n[:, None] - 1.0)
    inv = 1.0 / (1.0 - rsub * r)
    tran = ta * tsub * inv
    refl = torch.addcmul(ra, ta * rsub, t * inv)
    return refl, tran


def _pile_of_plates(r: torch.Tensor, t: torch.Tensor, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Reflectance and transmittance of ``m`` (real) identical plates of reflectance r, transmittance t."""
    lossless = (r + t) >= 1.0
    any_lossless = bool(lossless.any())
    if any_lossless:  # keep the general branch finite there, so masked gradients stay clean
        r_g = torch.where(lossless, 0.5 * r, r)
        t_g = torch.where(lossless, 0.5 * t, t)
    else:
        r_g, t_g = r, t
    s = r_g * r_g - t_g * t_g
    p = 1.0 + s
    d = torch.sqrt(((p + 2.0 * r_g) * (p - 2.0 * r_g)).clamp_min(0.0))
    a = (p + d) / (2.0 * r_g)
    b = (2.0 - p + d) / (2.0 * t_g)
    b_m = torch.exp(m * torch.log(b))  # b ** m; torch.pow's vector and scalar paths can differ in the last bit
    b_2m = b_m * b_m
    a2 = a * a
    inv = 1.0 / (a2 * b_2m - 1.0)
    rsub = a * (b_2m - 1.0) * inv
    tsub = b_m * (a2 - 1.0) * inv
    if any_lossless:  # no absorption: only scattering redistributes the light
        t_l = t / (t + (1.0 - t) * m)
        tsub = torch.where(lossless, t_l, tsub)
        rsub = torch.where(lossless, 1.0 - t_l, rsub)
    return rsub, tsub


def run_prospect_d(n: torch.Tensor | float, cab: torch.Tensor | float, car: torch.Tensor | float,
                   cbrown: torch.Tensor | float, cw: torch.Tensor | float, cm: torch.Tensor | float,
                   ant: torch.Tensor | float = 0.0, *, wavelengths: torch.Tensor | None = None,
                   alpha: torch.Tensor | float = 40.0, dtype: torch.dtype | None = None,
                   device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """PROSPECT-D leaf reflectance and transmittance, each [N, W].

    Arguments are scalars or [N] tensors (units of ``prosail.run_prospect``: N layers,
    pigments in ug/cm2, cw in cm, cm in g/cm2, ``cbrown`` in arbitrary units). ``wavelengths``
    (whole nm in 400..2500) selects columns; default all 2101.
    """
    values, size, dt, dev = _batch({"n": n, "cab": cab, "car": car, "cbrown": cbrown, "cw": cw,
                                    "cm": cm, "ant": ant, "alpha": alpha}, dtype, device)
    tables = spectral_tables(wavelengths, dtype=dt, device=dev)
    conc = torch.stack([values[a].expand(size) for a in ABSORBERS], dim=1)
    return leaf_optics(conc, values["n"].expand(size), _constant_or_batch(values["alpha"]), tables)


def _flatten(values: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], int]:
    """Each value as a 1-d tensor of 1 or N elements, and N.

    Non-tensors go through float64 numpy, so that Python floats are not rounded to float32.
    """
    out: dict[str, torch.Tensor] = {}
    size = 1
    for name, v in values.items():
        t = v if isinstance(v, torch.Tensor) else torch.from_numpy(np.array(v, dtype=np.float64, ndmin=1))
        if t.dim() > 1 and t.numel() != max(t.shape):
            raise ValueError(f"{name}: expected a scalar or a 1-d tensor, got shape {tuple(t.shape)}")
        t = t.reshape(-1)
        if t.numel() == 0:
            raise ValueError(f"{name}: empty")
        if t.numel() != 1:
            if size not in (1, t.numel()):
                raise ValueError(f"{name}: {t.numel()} values, but other parameters have {size}")
            size = t.numel()
        out[name] = t
    return out, size


def _resolve(flat: Mapping[str, torch.Tensor], user_tensors: set[str], dtype: torch.dtype | None,
             device: torch.device | str | None) -> tuple[torch.dtype, torch.device]:
    """dtype: the argument, else the promoted floating dtype of the caller's tensors, else torch's
    default. Device: the argument, else the device of a tensor input not on the CPU, else CPU."""
    dev = torch.device(device) if device is not None else next(
        (t.device for t in flat.values() if t.device.type != "cpu"), torch.device("cpu"))
    if dtype is None:
        floats = [t.dtype for name, t in flat.items()
                  if name in user_tensors and t.is_floating_point() and name != "typelidf"]
        dtype = floats[0] if floats else torch.get_default_dtype()
        for d in floats[1:]:
            dtype = torch.promote_types(dtype, d)
    return dtype, dev


def _batch(values: Mapping[str, Any], dtype: torch.dtype | None,
           device: torch.device | str | None) -> tuple[dict[str, torch.Tensor], int, torch.dtype, torch.device]:
    """Tensors of shape [1] (scalars) or [N] on one device and dtype; N; the dtype and device."""
    flat, size = _flatten(values)
    dtype, dev = _resolve(flat, {k for k, v in values.items() if isinstance(v, torch.Tensor)}, dtype, device)
    out = {name: t.to(device=dev, dtype=dtype) if name != "typelidf" else t.to(dev)
           for name, t in flat.items()}
    return out, size, dtype, dev


def _constant_or_batch(alpha: torch.Tensor) -> torch.Tensor | float:
    """A float when alpha is one value without gradient: the surface terms are then per wavelength."""
    if alpha.requires_grad:
        return alpha
    if alpha.numel() == 1 or bool((alpha == alpha[0]).all()):
        return float(alpha.reshape(-1)[0])
    return alpha
