"""PROSAIL (PROSPECT-D + 4SAIL) in PyTorch: batched, differentiable, CPU or CUDA.

A re-implementation from the model equations, checked against the ``prosail`` package
(``prosail.run_prosail(..., prospect_version="D")``), whose data files supply the leaf
absorption coefficients and soil spectra at run time (see :mod:`.spectral_data`). Parameter
names, units and defaults follow ``prosail.run_prosail`` so that parameter tables written for
that package work unchanged. See docs/physics-prosail.md for the model, the ranges and the
measured accuracy and speed.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from .prospect import (_E1_PLAN, _constant_or_batch, _flatten, _resolve, exp1, exp1_values, leaf_optics,
                       run_prospect_d)
from .sail import (_J1_SERIES_BELOW, _NO_HOTSPOT, FACTORS, canopy_geometry, canopy_reflectance,
                   leaf_angle_distribution)
from .spectral_data import (ABSORBERS, WL_MIN, SpectralTables, spectral_tables, transmissivity_isotropic,
                            wavelength_index)

__all__ = ["PROSAIL_PARAMETERS", "PROSAIL_DEFAULTS", "PROSAIL_RANGES", "FACTORS", "run_prosail",
           "run_prospect_d", "exp1"]

#: keyword names of ``prosail.run_prosail`` (PROSPECT-D), in this order
PROSAIL_PARAMETERS: tuple[str, ...] = (
    "n", "cab", "car", "cbrown", "cw", "cm", "lai", "lidfa", "lidfb", "typelidf", "hspot",
    "tts", "tto", "psi", "ant", "alpha", "rsoil", "psoil",
)

#: defaults of the optional parameters. ``ant``, ``alpha``, ``typelidf`` and ``lidfb`` are
#: run_prosail's own defaults. run_prosail has no default soil (it raises unless ``rsoil`` and
#: ``psoil``, or a soil spectrum, are given); here ``rsoil = 1`` (unscaled brightness) and
#: ``psoil = 1`` (the package's dry soil spectrum) are used when they are omitted.
PROSAIL_DEFAULTS: dict[str, float | int] = {
    "ant": 0.0, "alpha": 40.0, "typelidf": 2, "lidfb": 0.0, "rsoil": 1.0, "psoil": 1.0,
}

#: name -> (low, high, unit, description): accepted ranges (inclusive), physically sensible
#: for green to senescent vegetation; the tests sample these ranges against the reference.
PROSAIL_RANGES: dict[str, tuple[float, float, str, str]] = {
    "n": (1.0, 3.0, "-", "leaf structure parameter: number of elementary layers (PROSPECT N)"),
    "cab": (0.0, 100.0, "ug/cm2", "chlorophyll a+b content"),
    "car": (0.0, 25.0, "ug/cm2", "carotenoid content"),
    "cbrown": (0.0, 1.0, "-", "brown pigment content (arbitrary units, senescence)"),
    "cw": (0.0001, 0.05, "cm", "equivalent water thickness"),
    "cm": (0.001, 0.03, "g/cm2", "dry matter content (leaf mass per area)"),
    "lai": (0.0, 15.0, "m2/m2", "leaf area index; 0 gives the bare soil"),
    "lidfa": (-1.0, 90.0, "- or deg",
              "leaf angle distribution parameter: typelidf=1: Verhoef 'a' (average slope, "
              "-1..1, |a|+|b| <= 1); typelidf=2: mean leaf inclination, 0..90 deg (57 = spherical)"),
    "lidfb": (-1.0, 1.0, "-", "typelidf=1: Verhoef 'b' (bimodality, |a|+|b| <= 1); ignored for typelidf=2"),
    "typelidf": (1, 2, "-", "leaf angle distribution: 1 = Verhoef bimodal (lidfa, lidfb), "
                            "2 = Campbell ellipsoidal (lidfa = mean angle)"),
    "hspot": (0.0, 1.0, "-", "hotspot parameter: leaf size / canopy height (0 switches the hotspot off)"),
    "tts": (0.0, 85.0, "deg", "solar zenith angle"),
    "tto": (0.0, 85.0, "deg", "view (sensor) zenith angle"),
    "psi": (0.0, 180.0, "deg", "relative azimuth between sensor and sun (0 = backscatter, sun behind the sensor)"),
    "ant": (0.0, 40.0, "ug/cm2", "anthocyanin content"),
    "alpha": (10.0, 90.0, "deg", "PROSPECT leaf-surface roughness: max incidence angle of the light cone"),
    "rsoil": (0.0, 1.5, "-", "soil brightness: scales the soil spectrum"),
    "psoil": (0.0, 1.0, "-", "soil moisture mix: 1 = the package's dry soil spectrum, 0 = its wet soil"),
}

_LEAF = ("n", *ABSORBERS)
_GEOMETRY = ("lai", "lidfa", "lidfb", "hspot", "tts", "tto", "psi")


def run_prosail(params: Mapping[str, torch.Tensor | float], *, wavelengths: torch.Tensor | None = None,
                factor: str = "SDR", dtype: torch.dtype | None = None,
                device: torch.device | str | None = None, backend: str = "auto") -> torch.Tensor:
    """Canopy reflectance factor [N, W] for N parameter sets.

    ``params`` maps the names in :data:`PROSAIL_PARAMETERS` to scalars or [N] tensors (arrays);
    optional ones default to :data:`PROSAIL_DEFAULTS`. ``typelidf`` may differ per row.
    ``wavelengths``: whole nm in 400..2500 to compute (only those are computed), default all
    2101. ``factor``: "SDR" (bidirectional, what ``prosail.run_prosail`` returns by default),
    "BHR", "DHR" or "HDR". Differentiable with respect to every continuous parameter.

    ``backend``: "torch" (autograd, CPU or CUDA), "fused" (one compiled pass per spectrum on
    the CPU, no autograd; several times faster) or "auto": fused when the result lives on the
    CPU, no parameter requires a gradient and numba is available, torch otherwise.
    """
    if backend not in ("auto", "torch", "fused"):
        raise ValueError(f"backend must be 'auto', 'torch' or 'fused', got {backend!r}")
    unknown = sorted(set(params) - set(PROSAIL_PARAMETERS))
    if unknown:
        raise ValueError(f"unknown PROSAIL parameter(s) {unknown}; expected {list(PROSAIL_PARAMETERS)}")
    missing = [p for p in PROSAIL_PARAMETERS if p not in params and p not in PROSAIL_DEFAULTS]
    if missing:
        raise ValueError(f"missing PROSAIL parameter(s) {missing}")
    factor = factor.upper()
    if factor not in FACTORS:
        raise ValueError(f"factor must be one of {FACTORS}, got {factor!r}")
    merged = {p: params[p] if p in params else PROSAIL_DEFAULTS[p] for p in PROSAIL_PARAMETERS}
    flat, size = _flatten(merged)
    dt, dev = _resolve(flat, {k for k, v in merged.items() if isinstance(v, torch.Tensor)}, dtype, device)
    needs_grad = any(t.requires_grad for t in flat.values())
    if backend == "fused" or (backend == "auto" and dev.type == "cpu" and not needs_grad
                              and _fused_available()):
        if dev.type != "cpu":
            raise ValueError("backend='fused' runs on the CPU only")
        return _run_fused(flat, size, dt, wavelengths, factor)
    v = {name: t.to(device=dev, dtype=dt) if name != "typelidf" else t.to(dev) for name, t in flat.items()}
    tables = spectral_tables(wavelengths, dtype=dt, device=dev)
    alpha = _constant_or_batch(v["alpha"])
    budget = _CHUNK_ELEMENTS_CPU if dev.type == "cpu" else _CHUNK_ELEMENTS_GPU
    rows = max(1, budget // tables.nr.shape[0])
    if size <= rows:
        return _run_torch(v, size, alpha, tables, factor)
    # row blocks keep the [rows, W] intermediates cache-sized on the CPU (several times faster
    # than whole-batch tensors) and bound the memory of no-grad calls on any device
    chunks = []
    for start in range(0, size, rows):
        part = {k: t[start:start + rows] if t.numel() > 1 else t for k, t in v.items()}
        part_alpha = alpha[start:start + rows] if isinstance(alpha, torch.Tensor) else alpha
        chunks.append(_run_torch(part, min(rows, size - start), part_alpha, tables, factor))
    return torch.cat(chunks)


# spectrum values per row block of the torch backend: cache-sized on the CPU; on a GPU large
# enough to fill it, small enough that the ~100 live [rows, W] intermediates take a few GB
_CHUNK_ELEMENTS_CPU = 1 << 17
_CHUNK_ELEMENTS_GPU = 1 << 24


def _run_torch(v: dict[str, torch.Tensor], size: int, alpha: torch.Tensor | float,
               tables: SpectralTables, factor: str) -> torch.Tensor:
    """The torch backend on one block of rows: every [N] tensor in ``v`` has ``size`` rows."""
    dt = tables.nr.dtype
    # leaf optics: scalars stay [1] rows so that a constant leaf is computed once
    leaf_rows = max(v[p].numel() for p in _LEAF)
    conc = torch.stack([v[a].expand(leaf_rows) for a in ABSORBERS], dim=1)
    rho, tau = leaf_optics(conc, v["n"].expand(leaf_rows), alpha, tables)

    # per-sample geometry in float64 (cheap, and well conditioned near the spherical LIDF)
    f64 = {p: v[p].to(torch.float64) for p in _GEOMETRY}
    lidf = leaf_angle_distribution(f64["lidfa"], f64["lidfb"], v["typelidf"])
    geo = canopy_geometry(lidf, f64["lai"], f64["hspot"], f64["tts"], f64["tto"], f64["psi"]).to(dt)

    soil = v["rsoil"][:, None] * torch.lerp(tables.soil_wet, tables.soil_dry, v["psoil"][:, None])
    out = canopy_reflectance(rho, tau, geo, v["lai"], soil, factor)
    return out.expand(size, -1).contiguous() if out.shape[0] != size else out


# ---------------------------------------------------------------------------------------------
# fused CPU backend: the per-wavelength part of PROSPECT-D + 4SAIL compiled into one kernel.
#
# Eager torch spends its time streaming ~200 intermediate [N, W] tensors through memory; the
# kernel keeps one row (one spectrum) at a time in a few row buffers that stay in L1 cache. It is
# the arithmetic of prospect.leaf_optics and sail.canopy_reflectance (the tests hold the two
# backends to each other and to the reference), in float64 whatever the output dtype, with
# three changes that only affect speed:
# * tau(k) = 2 E3(k) comes from a cubic table (see _tau_table);
# * b^(N-1) and exp(-m L) use the branch-free exp/log below instead of libm calls, so that
#   LLVM can vectorise their loops (libm calls are scalar); relative error < 1e-14;
# * each row runs as short loops over the wavelengths: plain-arithmetic loops get SIMD code.
# The wavelength-independent terms of each sample are computed in scalar code (_canopy_terms).

_FACTOR_CODE = {f: i for i, f in enumerate(FACTORS)}
_PAR_FIELDS = ("n", *ABSORBERS, "lai", "lidfa", "lidfb", "typelidf", "hspot", "tts", "tto", "psi",
               "rsoil", "psoil", "alpha")

# exp(y) = 2^n exp(r), n = round(y / ln 2), |r| <= ln(2)/2: exp(r) by its Taylor polynomial to r^13
# (truncation < 2e-16), 2^n assembled in the exponent bits. ln(x) = e ln 2 + 2 atanh(s) for
# x = 2^e f, f in [sqrt(1/2), sqrt(2)), s = (f - 1)/(f + 1), |s| < 0.172: atanh by its series to
# s^19 (truncation < 1e-16). ln 2 is split in a high part whose low 32 bits are zero (n * _LN2_HI
# is exact) and a low part.
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.0 / math.log(2.0)
_ROUNDER = 6755399441055744.0  # 1.5 * 2^52: y + _ROUNDER - _ROUNDER rounds y to an integer
_ROUNDER_BITS = 0x4338000000000000  # bit pattern of _ROUNDER (integer n sits in the low bits)
_TWO52 = 4503599627370496.0
_TWO52_BITS = 0x4330000000000000
_MANTISSA = 0x000FFFFFFFFFFFFF
_ONE_BITS = 0x3FF0000000000000
_SQRT2 = math.sqrt(2.0)


def _exp_parts(y: float) -> tuple[float, float]:
    """``exp(y) = 2^n exp(r)`` for |y| <= 700: returns ``exp(r)`` and ``n + _ROUNDER``.

    ``exp(r)`` is the Taylor polynomial to r^13 (see above); the caller turns the second value
    into ``2^n`` with integer bit operations on a whole row at once (a separate loop, so that
    both loops vectorise). Compiled with ``inline="always"`` into the kernel.
    """
    kf = y * _INV_LN2 + _ROUNDER
    kn = kf - _ROUNDER
    rr = (y - kn * _LN2_HI) - kn * _LN2_LO
    p = 1.0 / 6227020800.0
    p = 1.0 / 479001600.0 + rr * p
    p = 1.0 / 39916800.0 + rr * p
    p = 1.0 / 3628800.0 + rr * p
    p = 1.0 / 362880.0 + rr * p
    p = 1.0 / 40320.0 + rr * p
    p = 1.0 / 5040.0 + rr * p
    p = 1.0 / 720.0 + rr * p
    p = 1.0 / 120.0 + rr * p
    p = 1.0 / 24.0 + rr * p
    p = 1.0 / 6.0 + rr * p
    p = 0.5 + rr * p
    p = 1.0 + rr * p
    return 1.0 + rr * p, kf


def _fused_rows(lo: int, hi: int, par: np.ndarray, wtab: np.ndarray, talf: np.ndarray,
                tab: np.ndarray, inv_h: float, k_max: float, cf_from: np.ndarray,
                cf_depth: np.ndarray, factor: int, out: np.ndarray) -> None:
    """Rows lo..hi-1 of ``out``. Plain Python; compiled with numba by :func:`_fused_kernel`.

    ``par`` [N, 18]: parameters in :data:`_PAR_FIELDS` order; ``wtab`` [10, W]: the six
    absorption coefficients, t12, t21 and the dry and wet soil; ``talf`` [1 or N, W]; ``tab``
    etc.: the tau table and the continued fraction beyond it; ``factor``: index in FACTORS.
    """
    n_w = out.shape[1]
    j1_switch = _J1_SERIES_BELOW
    n_plan = cf_from.shape[0]
    k_top = k_max * (1.0 - 1e-15)  # largest k whose cell index stays inside the table
    trig = _class_trig_jit()
    cdf = np.empty(19)
    b0 = np.empty(n_w)
    b1 = np.empty(n_w)
    b2 = np.empty(n_w)
    b3 = np.empty(n_w)
    b4 = np.empty(n_w)
    b5 = np.empty(n_w)
    b6 = np.empty(n_w)
    b2i = b2.view(np.int64)
    b3i = b3.view(np.int64)
    b5i = b5.view(np.int64)
    kab, kca, kan, kbr, kw, km = wtab[0], wtab[1], wtab[2], wtab[3], wtab[4], wtab[5]
    t12, t21, sdry, swet = wtab[6], wtab[7], wtab[8], wtab[9]
    for i in range(lo, hi):
        n_layers = par[i, 0]
        m_layers = n_layers - 1.0
        c_ab, c_ar, c_an = par[i, 1] / n_layers, par[i, 2] / n_layers, par[i, 3] / n_layers
        c_br, c_w, c_m = par[i, 4] / n_layers, par[i, 5] / n_layers, par[i, 6] / n_layers
        lai = max(par[i, 7], 0.0)
        ks, ko, bf, sob, sof, tss, too, tsstoo, sumint, z = _canopy_terms_jit(
            par[i, 8], par[i, 9], par[i, 10], lai, par[i, 11], par[i, 12], par[i, 13], par[i, 14],
            trig, cdf)
        rsoil, psoil = par[i, 15], par[i, 16]
        ta_row = talf[i if talf.shape[0] > 1 else 0]
        orow = out[i]

        # PROSPECT-D. Absorption of an elementary layer (b0), its transmission tau (b1)
        for j in range(n_w):
            b0[j] = (c_ab * kab[j] + c_ar * kca[j] + c_an * kan[j] + c_br * kbr[j]
                     + c_w * kw[j] + c_m * km[j])
        for j in range(n_w):  # the table, branch-free so that it vectorises (k clamped into it)
            k = b0[j]
            k = k if k > 0.0 else 0.0
            k = k if k < k_top else k_top
            u = math.sqrt(k) * inv_h
            cell = int(u)
            x = u - cell
            b1[j] = tab[cell, 0] + x * (tab[cell, 1] + x * (tab[cell, 2] + x * tab[cell, 3]))
        for j in range(n_w):  # the rare values outside the table
            k = b0[j]
            if k <= 0.0:
                b1[j] = 1.0
            elif k >= k_max:
                depth = cf_depth[0]
                for c in range(n_plan):
                    if k >= cf_from[c]:
                        depth = cf_depth[c]
                g = 2.0 * depth + 1.0
                for lev in range(depth - 1, -1, -1):
                    g = (2.0 * lev + 1.0) - (lev + 1.0) * (lev + 1.0) / (k + g)
                ek = math.exp(-k)
                b1[j] = (1.0 - k) * ek + k * k * ek / (k + g)
        # one compact layer: top face (ra b0, ta b1), inner faces (r b6, t b3); Stokes' a (b4), b (b5)
        for j in range(n_w):
            tau = b1[j]
            ta_ = ta_row[j]
            r21tau = (1.0 - t21[j]) * tau
            q = tau / (1.0 - r21tau * r21tau)
            ta = ta_ * t21[j] * q
            t = t12[j] * t21[j] * q
            r = (1.0 - t12[j]) + r21tau * t
            s_ = r * r - t * t
            p_ = 1.0 + s_
            dd = (p_ + 2.0 * r) * (p_ - 2.0 * r)
            dd = math.sqrt(dd if dd > 0.0 else 0.0)
            inv4rt = 1.0 / (4.0 * r * t)
            b4[j] = (p_ + dd) * (2.0 * t) * inv4rt  # (p + D) / 2r
            b5[j] = (2.0 - p_ + dd) * (2.0 * r) * inv4rt  # (2 - p + D) / 2t
            b0[j] = (1.0 - ta_) + r21tau * ta
            b1[j] = ta
            b6[j] = r
            b3[j] = t
        # b^(N-1) = exp((N-1) ln b), b >= 1, into b5 (b2 scratch)
        for j in range(n_w):
            bits = b5i[j]
            b2i[j] = (bits & _MANTISSA) | _ONE_BITS  # f in [1, 2)
            b5i[j] = (bits >> 52) | _TWO52_BITS  # biased exponent, as 2^52 + e
        for j in range(n_w):
            e = b5[j] - _TWO52 - 1023.0
            f = b2[j]
            big = f > _SQRT2
            f = f * 0.5 if big else f
            e = e + 1.0 if big else e
            s = (f - 1.0) / (f + 1.0)
            s2 = s * s
            lp = 1.0 / 19.0
            lp = 1.0 / 17.0 + s2 * lp
            lp = 1.0 / 15.0 + s2 * lp
            lp = 1.0 / 13.0 + s2 * lp
            lp = 1.0 / 11.0 + s2 * lp
            lp = 1.0 / 9.0 + s2 * lp
            lp = 1.0 / 7.0 + s2 * lp
            lp = 1.0 / 5.0 + s2 * lp
            lp = 1.0 / 3.0 + s2 * lp
            lp = 1.0 + s2 * lp
            y = m_layers * (e * _LN2_HI + (2.0 * s * lp + e * _LN2_LO))
            y = y if y < 700.0 else 700.0
            b2[j], b5[j] = _exp_parts_jit(y)
        for j in range(n_w):
            b5i[j] = ((b5i[j] - _ROUNDER_BITS) + 1023) << 52  # 2^n
        for j in range(n_w):
            b5[j] = b5[j] * b2[j]
        # the pile of N - 1 layers under the top layer: leaf reflectance (b0), transmittance (b1)
        for j in range(n_w):
            r = b6[j]
            t = b3[j]
            a = b4[j]
            b_m = b5[j]
            b_2m = b_m * b_m
            inv = 1.0 / (a * a * b_2m - 1.0)
            rsub = a * (b_2m - 1.0) * inv
            tsub = b_m * (a * a - 1.0) * inv
            lossless = r + t >= 1.0
            t_l = t / (t + (1.0 - t) * m_layers)
            tsub = t_l if lossless else tsub
            rsub = 1.0 - t_l if lossless else rsub
            inv = 1.0 / (1.0 - rsub * r)
            ta = b1[j]
            b0[j] = b0[j] + ta * rsub * t * inv
            b1[j] = ta * tsub * inv

        # 4SAIL. Diffuse attenuation m (b2) and exp(-m L) (b3, b4 scratch)
        for j in range(n_w):
            half = 0.5 * (b0[j] + b1[j])
            h = 0.5 * bf * (b0[j] - b1[j])
            mm = (1.0 - 2.0 * half) * (1.0 + 2.0 * h)
            b2[j] = math.sqrt(mm if mm > 0.0 else 0.0)
        for j in range(n_w):
            y = -b2[j] * lai
            y = y if y > -700.0 else -700.0
            b4[j], b3[j] = _exp_parts_jit(y)
        for j in range(n_w):
            b3i[j] = ((b3i[j] - _ROUNDER_BITS) + 1023) << 52
        for j in range(n_w):
            b3[j] = b3[j] * b4[j]
        if factor == 0:  # SDR
            for j in range(n_w):
                rho_l = b0[j]
                tau_l = b1[j]
                m = b2[j]
                e1m = b3[j]
                soil = rsoil * (psoil * sdry[j] + (1.0 - psoil) * swet[j])
                half = 0.5 * (rho_l + tau_l)
                h = 0.5 * bf * (rho_l - tau_l)
                rinf = (half + h) / (1.0 - half + h + m)
                re = rinf * e1m
                inv_den = 1.0 / (1.0 - re * re)
                pa = half * (1.0 + rinf)
                hb = h * (1.0 - rinf)
                rdd = rinf * (1.0 - e1m * e1m) * inv_den
                dn = 1.0 - soil * rdd
                dn = dn if dn > 1e-36 else 1e-36
                # J1 as in sail._j1 (in float64 the plain difference of exponentials is accurate)
                dks = (ks - m) * lai
                j1ks = ((e1m - tss) / (ks - m) if abs(dks) > j1_switch
                        else 0.5 * lai * (e1m + tss) * (1.0 - dks * dks * (1.0 / 12.0)))
                dko = (ko - m) * lai
                j1ko = ((e1m - too) / (ko - m) if abs(dko) > j1_switch
                        else 0.5 * lai * (e1m + too) * (1.0 - dko * dko * (1.0 / 12.0)))
                ikm = 1.0 / ((ks + m) * (ko + m))
                iksm = (ko + m) * ikm  # 1 / (ks + m)
                ikom = (ks + m) * ikm  # 1 / (ko + m)
                j2ks = (1.0 - tss * e1m) * iksm
                j2ko = (1.0 - too * e1m) * ikom
                sf_sb = ks * pa - hb
                sb_sf = ks * pa + hb
                vf_vb = ko * pa - hb
                vb_vf = ko * pa + hb
                pss = sf_sb * j1ks
                qss = sb_sf * j2ks
                pv = vf_vb * j1ko
                qv = vb_vf * j2ko
                tsd = (pss - re * qss) * inv_den
                tdo = (pv - re * qv) * inv_den
                rdo = (qv - re * pv) * inv_den
                g1 = (z - j1ks * too) * ikom
                g2 = (z - j1ko * tss) * iksm
                one_m_r2 = 1.0 - rinf * rinf
                inv2 = 1.0 / (one_m_r2 * dn)
                rsod = (vb_vf * g1 * sf_sb + vf_vb * g2 * sb_sf - (rdo * qss + tdo * pss) * rinf) * dn * inv2
                rsos = (sob * rho_l + sof * tau_l) * lai * sumint
                rsodt = ((tss + tsd) * tdo + (tsd + tss * soil * rdd) * too) * soil * one_m_r2 * inv2
                orow[j] = rsos + rsod + tsstoo * soil + rsodt
        else:  # hemispherical factors: BHR (1), DHR (2), HDR (3)
            for j in range(n_w):
                rho_l = b0[j]
                tau_l = b1[j]
                m = b2[j]
                e1m = b3[j]
                soil = rsoil * (psoil * sdry[j] + (1.0 - psoil) * swet[j])
                half = 0.5 * (rho_l + tau_l)
                h = 0.5 * bf * (rho_l - tau_l)
                rinf = (half + h) / (1.0 - half + h + m)
                re = rinf * e1m
                inv_den = 1.0 / (1.0 - re * re)
                pa = half * (1.0 + rinf)
                hb = h * (1.0 - rinf)
                rdd = rinf * (1.0 - e1m * e1m) * inv_den
                tdd = (1.0 - rinf * rinf) * e1m * inv_den
                dn = 1.0 - soil * rdd
                dn = dn if dn > 1e-36 else 1e-36
                if factor == 1:
                    orow[j] = rdd + tdd * soil * tdd / dn
                elif factor == 2:
                    dks = (ks - m) * lai
                    j1ks = ((e1m - tss) / (ks - m) if abs(dks) > j1_switch
                            else 0.5 * lai * (e1m + tss) * (1.0 - dks * dks / 12.0))
                    pss = (ks * pa - hb) * j1ks
                    qss = (ks * pa + hb) * (1.0 - tss * e1m) / (ks + m)
                    tsd = (pss - re * qss) * inv_den
                    rsd = (qss - re * pss) * inv_den
                    orow[j] = rsd + (tsd + tss) * soil * tdd / dn
                else:
                    dko = (ko - m) * lai
                    j1ko = ((e1m - too) / (ko - m) if abs(dko) > j1_switch
                            else 0.5 * lai * (e1m + too) * (1.0 - dko * dko / 12.0))
                    pv = (ko * pa - hb) * j1ko
                    qv = (ko * pa + hb) * (1.0 - too * e1m) / (ko + m)
                    tdo = (pv - re * qv) * inv_den
                    rdo = (qv - re * pv) * inv_den
                    orow[j] = rdo + tdd * soil * (tdo + too) / dn


def _canopy_terms(lidfa: float, lidfb: float, kind: float, lai: float, hspot: float, tts: float,
                  tto: float, psi: float, trig: np.ndarray, cdf: np.ndarray) -> tuple[float, ...]:
    """One sample's wavelength-independent 4SAIL terms, scalar code for the fused kernel.

    The same computation as sail.leaf_angle_distribution + sail.canopy_geometry (see there for
    the physics); returns (ks, ko, bf, sob, sof, tss, too, tsstoo, sumint, z). ``trig`` [4, 19]
    holds cos and sin of the 19 class bounds and of the 18 class centres (see
    :func:`_class_trig`); ``cdf`` is a scratch buffer of 19 values.
    """
    n_cls = 18
    step = 0.5 * math.pi / n_cls
    # leaf inclination distribution: cumulative fraction at the class bounds
    if kind == 1.0:
        reach = abs(lidfa) + 0.5 * abs(lidfb)
        cdf[0] = 0.0
        cdf[n_cls] = 1.0
        for jb in range(1, n_cls):
            c2 = 2.0 * jb * step
            if lidfa > 1.0:
                cdf[jb] = 1.0 - trig[0, jb]
                continue
            lo = c2 - reach
            hi = c2 + reach
            x = c2
            for _ in range(60):
                sx, cx = math.sin(x), math.cos(x)
                gx = x - lidfa * sx - lidfb * sx * cx - c2
                gp = 1.0 - lidfa * cx - lidfb * (2.0 * cx * cx - 1.0)
                if gx < 0.0:
                    lo = x
                elif gx > 0.0:
                    hi = x
                xn = x - gx / gp if gp != 0.0 else -math.inf
                x_new = xn if (xn >= lo and xn <= hi) else 0.5 * (lo + hi)
                done = abs(x_new - x) <= 1e-15 * (1.0 + abs(x))
                x = x_new
                if done:
                    break
            sx, cx = math.sin(x), math.cos(x)
            gx = x - lidfa * sx - lidfb * sx * cx - c2
            gp = 1.0 - lidfa * cx - lidfb * (2.0 * cx * cx - 1.0)
            x = x - gx / (gp if abs(gp) > 1e-12 else 1.0)
            sx, cx = math.sin(x), math.cos(x)
            cdf[jb] = (2.0 * (lidfa * sx + lidfb * sx * cx) + c2) / math.pi
    else:
        a = lidfa
        ecc = math.exp(((-1.6184e-5 * a + 2.1145e-3) * a - 1.2390e-1) * a + 3.2491)
        for jb in range(n_cls + 1):
            c = trig[0, jb]
            s = trig[1, jb]
            x = ecc * c / math.sqrt(c * c + (ecc * s) ** 2)
            q = x * x * (1.0 - 1.0 / (ecc * ecc))
            if abs(q) < 1e-3:
                ratio = 1.0 + q * (-1.0 / 6.0 + q * (3.0 / 40.0 + q * (-5.0 / 112.0 + q * 35.0 / 1152.0)))
            elif q > 0.0:
                sq = math.sqrt(q)
                ratio = math.asinh(sq) / sq
            else:
                sq = math.sqrt(-q)
                ratio = math.asin(sq) / sq
            cdf[jb] = -x * (math.sqrt(1.0 + q) + ratio)  # decreasing in x: the cdf up to a constant
        total = cdf[n_cls] - cdf[0]
        base = cdf[0]
        for jb in range(n_cls + 1):
            cdf[jb] = (cdf[jb] - base) / total

    # sun / view geometry, leaf-angle weighted interception and scattering
    psi = abs(psi - 360.0 * math.floor(psi / 360.0 + 0.5))
    ts = math.radians(tts)
    to = math.radians(tto)
    ps = math.radians(psi)
    cts, sts, cto, sto = math.cos(ts), math.sin(ts), math.cos(to), math.sin(to)
    cospsi = math.cos(ps)
    ks = 0.0
    ko = 0.0
    bf = 0.0
    sob = 0.0
    sof = 0.0
    for jc in range(n_cls):
        w = cdf[jc + 1] - cdf[jc]
        cttl, sttl = trig[2, jc], trig[3, jc]
        cs, co, ss, so = cttl * cts, cttl * cto, sttl * sts, sttl * sto
        cosb = -cs / ss if abs(ss) > 1e-6 else 5.0
        if abs(cosb) < 1.0:
            bts = math.acos(cosb)
            ds = ss
        else:
            bts = math.pi
            ds = cs
        cosb = -co / so if abs(so) > 1e-6 else 5.0
        if abs(cosb) < 1.0:
            bto = math.acos(cosb)
            do = so
        elif to < 0.5 * math.pi:
            bto = math.pi
            do = co
        else:
            bto = 0.0
            do = -co
        chi_s = 2.0 / math.pi * ((bts - 0.5 * math.pi) * cs + math.sin(bts) * ss)
        chi_o = 2.0 / math.pi * ((bto - 0.5 * math.pi) * co + math.sin(bto) * so)
        btran1 = abs(bts - bto)
        btran2 = math.pi - abs(bts + bto - math.pi)
        if ps <= btran1:
            bt1, bt2, bt3 = ps, btran1, btran2
        elif ps <= btran2:
            bt1, bt2, bt3 = btran1, ps, btran2
        else:
            bt1, bt2, bt3 = btran1, btran2, ps
        t1 = 2.0 * cs * co + ss * so * cospsi
        t2 = math.sin(bt2) * (2.0 * ds * do + ss * so * math.cos(bt1) * math.cos(bt3))
        frho = max(((math.pi - bt2) * t1 + t2) / (2.0 * math.pi ** 2), 0.0)
        ftau = max((-bt2 * t1 + t2) / (2.0 * math.pi ** 2), 0.0)
        ks += w * chi_s
        ko += w * chi_o
        bf += w * cttl * cttl
        sob += w * frho
        sof += w * ftau
    ks /= cts
    ko /= cto
    sob *= math.pi / (cts * cto)
    sof *= math.pi / (cts * cto)

    lai = max(lai, 0.0)
    tss = math.exp(-ks * lai)
    too = math.exp(-ko * lai)
    kk = ks + ko
    z = -math.expm1(-kk * lai) / kk

    # hotspot: 20-step exponential integration of the joint gap probability (sail._hotspot)
    tants, tanto = math.tan(ts), math.tan(to)
    dso = math.sqrt(max(tants * tants + tanto * tanto - 2.0 * tants * tanto * cospsi, 0.0))
    alf = dso / hspot * 2.0 / kk if hspot > 0.0 else _NO_HOTSPOT
    if alf == 0.0:
        tsstoo = tss
        kl = ks * lai
        sumint = -math.expm1(-kl) / kl if kl > 0.0 else 1.0
    else:
        fint = -math.expm1(-alf) / 20.0
        fhot = lai * math.sqrt(ko * ks)
        x_prev = 0.0
        y_prev = 0.0
        f_prev = 1.0
        sumint = 0.0
        for istep in range(1, 21):
            x = -math.log1p(-istep * fint) / alf if istep < 20 else 1.0
            y = -kk * lai * x - fhot * math.expm1(-alf * x) / alf
            f = math.exp(y)
            dy = y - y_prev
            ratio = math.expm1(dy) / dy if dy != 0.0 else 1.0
            sumint += f_prev * ratio * (x - x_prev)
            x_prev = x
            y_prev = y
            f_prev = f
        tsstoo = f_prev
    return ks, ko, bf, sob, sof, tss, too, tsstoo, sumint, z


# the kernel calls these names; _fused_kernel() points them to compiled versions before compiling it
_canopy_terms_jit = _canopy_terms


def _class_trig() -> np.ndarray:
    """cos, sin of the 19 leaf-inclination class bounds and of the 18 class centres ([4, 19])."""
    bounds = np.linspace(0.0, 0.5 * np.pi, 19)
    centres = np.append(0.5 * (bounds[1:] + bounds[:-1]), 0.0)
    return np.stack((np.cos(bounds), np.sin(bounds), np.cos(centres), np.sin(centres)))


_class_trig_jit = _class_trig
_exp_parts_jit = _exp_parts


_fused_lock = threading.Lock()
_fused_state: dict[str, Any] = {}


def _fused_kernel() -> Callable[..., None] | None:
    """numba-compiled :func:`_fused_rows` (cached on disk by numba), or None without numba.

    ``nogil`` lets plain threads share the rows; ``contract`` only allows fused multiply-add
    (no other fast-math assumption).
    """
    with _fused_lock:
        if "kernel" not in _fused_state:
            try:
                import numba
            except ImportError:  # pragma: no cover - numba comes with the prosail package
                _fused_state["kernel"] = None
            else:
                global _canopy_terms_jit, _class_trig_jit, _exp_parts_jit
                _class_trig_jit = numba.njit(nogil=True, cache=True)(_class_trig)
                _exp_parts_jit = numba.njit(nogil=True, cache=True, inline="always")(_exp_parts)
                _canopy_terms_jit = numba.njit(nogil=True, cache=True, error_model="numpy")(_canopy_terms)
                _fused_state["kernel"] = numba.njit(nogil=True, cache=True, error_model="numpy",
                                                    fastmath={"contract"})(_fused_rows)
        return _fused_state["kernel"]


def _fused_available() -> bool:
    return _fused_kernel() is not None


def _fused_pool(workers: int) -> ThreadPoolExecutor:
    """A process-wide pool of at least ``workers`` threads (kept: thread start-up costs ~0.1 ms)."""
    with _fused_lock:
        pool = _fused_state.get("pool")
        if pool is None or _fused_state["pool_size"] < workers:
            if pool is not None:
                pool.shutdown(wait=False)
            pool = _fused_state["pool"] = ThreadPoolExecutor(workers, thread_name_prefix="prosail")
            _fused_state["pool_size"] = workers
        return pool


# The fused kernel reads the layer transmission tau(k) = 2 E3(k) from a table: cubic Hermite
# pieces in s = sqrt(k) (the variable in which tau is smooth at k = 0) on 0 <= k < 16, built
# from prospect.exp1 values and the exact derivative d tau/dk = -2 E2(k). Its largest error is
# 4e-13 (absolute, measured against scipy.special.expn(3, k)), and it replaces a logarithm, an
# exponential and ~26 dependent multiply-adds per element. Beyond 16 (tau < 1e-8) the kernel
# evaluates E1's continued fraction with the depths of prospect._E1_PLAN.
_TAU_TABLE_CELLS = 4096
_TAU_TABLE_KMAX = 16.0


@lru_cache(maxsize=1)
def _tau_table() -> tuple[np.ndarray, float, float, np.ndarray, np.ndarray]:
    h = math.sqrt(_TAU_TABLE_KMAX) / _TAU_TABLE_CELLS
    s = torch.arange(_TAU_TABLE_CELLS + 1, dtype=torch.float64) * h
    k = s * s
    e1 = exp1_values(k.clamp_min(torch.finfo(torch.float64).tiny))
    em = torch.exp(-k)
    tau = torch.where(k > 0, (1.0 - k) * em + k * k * e1, 1.0)
    d = h * 2.0 * s * (-2.0) * torch.where(k > 0, em - k * e1, 1.0)  # h * d tau / ds
    f0, f1, d0, d1 = tau[:-1], tau[1:], d[:-1], d[1:]
    tab = torch.stack([f0, d0, 3.0 * (f1 - f0) - 2.0 * d0 - d1, 2.0 * (f0 - f1) + d0 + d1], dim=1)
    ranges = _E1_PLAN[torch.float64][2]
    first = max(i for i, (start, _) in enumerate(ranges) if start <= _TAU_TABLE_KMAX)
    plan = ranges[first:]  # the depth ranges that cover k >= _TAU_TABLE_KMAX
    return (np.ascontiguousarray(tab.numpy()), 1.0 / h, _TAU_TABLE_KMAX,
            np.asarray([p[0] for p in plan]), np.asarray([p[1] for p in plan], dtype=np.int64))


@lru_cache(maxsize=16)
def _fused_tables(index: tuple[int, ...] | None, alpha: float | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-wavelength inputs of the kernel ([10, W]) and, for one alpha, the surface term talf."""
    tables = spectral_tables(index and [i + WL_MIN for i in index], dtype=torch.float64)
    wtab = torch.cat([tables.k, tables.t12[None], (tables.t12 / tables.nr ** 2)[None],
                      tables.soil_dry[None], tables.soil_wet[None]])
    talf = None if alpha is None else transmissivity_isotropic(alpha, tables.nr)[None].numpy()
    return np.ascontiguousarray(wtab.numpy()), talf


def _run_fused(flat: dict[str, torch.Tensor], size: int, dtype: torch.dtype,
               wavelengths: torch.Tensor | None, factor: str) -> torch.Tensor:
    kernel = _fused_kernel()
    if kernel is None:
        raise RuntimeError("backend='fused' needs numba (installed with the prosail package)")
    par = np.empty((size, len(_PAR_FIELDS)))
    for j, name in enumerate(_PAR_FIELDS):  # float64 from whatever the inputs are
        par[:, j] = flat[name].detach().cpu().numpy()
    kind = par[:, _PAR_FIELDS.index("typelidf")]
    bad = (kind != 1) & (kind != 2)
    if bad.any():
        raise ValueError(f"typelidf must be 1 (Verhoef bimodal) or 2 (Campbell ellipsoidal), got "
                         f"{sorted(set(kind[bad].tolist()))}")
    alpha_col = par[:, _PAR_FIELDS.index("alpha")]
    alpha = float(alpha_col[0]) if (alpha_col == alpha_col[0]).all() else torch.from_numpy(alpha_col)
    index = wavelength_index(wavelengths)
    wtab, talf = _fused_tables(index, alpha if isinstance(alpha, float) else None)
    if talf is None:
        nr = spectral_tables(wavelengths, dtype=torch.float64).nr
        talf = np.ascontiguousarray(transmissivity_isotropic(alpha.reshape(-1, 1), nr).numpy())
    tab, inv_h, k_max, cf_from, cf_depth = _tau_table()
    out = np.empty((size, wtab.shape[1]), dtype=np.float64 if dtype == torch.float64 else np.float32)
    code = _FACTOR_CODE[factor]
    workers = max(1, min(torch.get_num_threads(), size // 8))
    if workers == 1:
        kernel(0, size, par, wtab, talf, tab, inv_h, k_max, cf_from, cf_depth, code, out)
    else:  # the kernel releases the GIL: pool threads take the row blocks but the first
        bounds = [size * w // workers for w in range(workers + 1)]
        jobs = [_fused_pool(workers - 1).submit(kernel, a, b, par, wtab, talf, tab, inv_h, k_max,
                                                cf_from, cf_depth, code, out)
                for a, b in zip(bounds[1:-1], bounds[2:])]
        kernel(0, bounds[1], par, wtab, talf, tab, inv_h, k_max, cf_from, cf_depth, code, out)
        for job in jobs:
            job.result()
    result = torch.from_numpy(out)
    return result if dtype in (torch.float32, torch.float64) else result.to(dtype)
