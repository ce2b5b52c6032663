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

from .prospect import _E1_PLAN, _constant_or_batch, exp1, exp1_values, leaf_optics, run_prospect_d
from .sail import _J1_SERIES_BELOW, FACTORS, CanopyGeometry, canopy_geometry, canopy_reflectance, leaf_angle_distribution
from .spectral_data import ABSORBERS, WL_MIN, spectral_tables, transmissivity_isotropic, wavelength_index

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


def _batch(values: Mapping[str, Any], dtype: torch.dtype | None,
           device: torch.device | str | None) -> tuple[dict[str, torch.Tensor], int, torch.dtype, torch.device]:
    """Tensors of shape [1] (scalars) or [N] on one device; the batch size N; dtype and device.

    dtype: the argument, else the promoted floating dtype of the tensor inputs, else torch's
    default. Device: the argument, else the first tensor input's device, else CPU.
    """
    tensors = {k: v for k, v in values.items() if isinstance(v, torch.Tensor)}
    dev = torch.device(device) if device is not None else (
        next(iter(tensors.values())).device if tensors else torch.device("cpu"))
    if dtype is None:
        floats = [v.dtype for v in tensors.values() if v.is_floating_point()]
        dtype = floats[0] if floats else torch.get_default_dtype()
        for d in floats[1:]:
            dtype = torch.promote_types(dtype, d)
    out: dict[str, torch.Tensor] = {}
    size = 1
    for name, v in values.items():
        # non-tensors go through float64 numpy so that Python floats are not rounded to float32
        t = v if isinstance(v, torch.Tensor) else torch.from_numpy(
            np.array(v, dtype=np.float64, ndmin=1))
        if t.dim() > 1 and t.numel() != max(t.shape):
            raise ValueError(f"{name}: expected a scalar or a 1-d tensor, got shape {tuple(t.shape)}")
        t = t.reshape(-1)
        if t.numel() == 0:
            raise ValueError(f"{name}: empty")
        if t.numel() != 1:
            if size not in (1, t.numel()):
                raise ValueError(f"{name}: {t.numel()} values, but other parameters have {size}")
            size = t.numel()
        out[name] = t.to(device=dev, dtype=dtype) if name != "typelidf" else t.to(dev)
    return out, size, dtype, dev


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
    v, size, dt, dev = _batch(merged, dtype, device)
    needs_grad = any(t.requires_grad for t in v.values())
    if backend == "fused" or (backend == "auto" and dev.type == "cpu" and not needs_grad
                              and _fused_available()):
        if dev.type != "cpu":
            raise ValueError("backend='fused' runs on the CPU only")
        return _run_fused(v, size, dt, wavelengths, factor)
    tables = spectral_tables(wavelengths, dtype=dt, device=dev)

    # leaf optics: scalars stay [1] rows so that a constant leaf is computed once
    leaf_rows = max(v[p].numel() for p in _LEAF)
    conc = torch.stack([v[a].expand(leaf_rows) for a in ABSORBERS], dim=1)
    rho, tau = leaf_optics(conc, v["n"].expand(leaf_rows), _constant_or_batch(v["alpha"]), tables)

    # per-sample geometry in float64 (cheap, and well conditioned near the spherical LIDF)
    f64 = {p: v[p].to(torch.float64) for p in _GEOMETRY}
    lidf = leaf_angle_distribution(f64["lidfa"], f64["lidfb"], v["typelidf"])
    geo = canopy_geometry(lidf, f64["lai"], f64["hspot"], f64["tts"], f64["tto"], f64["psi"]).to(dt)

    soil = v["rsoil"][:, None] * torch.lerp(tables.soil_wet, tables.soil_dry, v["psoil"][:, None])
    out = canopy_reflectance(rho, tau, geo, v["lai"], soil, factor)
    return out.expand(size, -1) if out.shape[0] != size else out


# ---------------------------------------------------------------------------------------------
# fused CPU backend: the per-wavelength part of PROSPECT-D + 4SAIL in one compiled loop.
# Eager torch spends its time streaming ~200 intermediate [N, W] tensors through memory; this
# kernel keeps every intermediate in registers. It is the same arithmetic as
# prospect.leaf_optics and sail.canopy_reflectance (the tests hold the two backends to each
# other and to the reference), evaluated in float64 whatever the output dtype. The
# wavelength-independent geometry still comes from sail.canopy_geometry.

_FACTOR_CODE = {f: i for i, f in enumerate(FACTORS)}
_SAMPLE_FIELDS = ("m", *ABSORBERS, "lai", "ks", "ko", "bf", "sob", "sof", "tss", "too", "tsstoo",
                  "sumint", "z", "rsoil", "psoil")


def _fused_rows(lo: int, hi: int, samp: np.ndarray, wtab: np.ndarray, talf: np.ndarray,
                tab: np.ndarray, inv_h: float, k_max: float, cf_from: np.ndarray,
                cf_depth: np.ndarray, factor: int, out: np.ndarray) -> None:
    """Rows lo..hi-1 of the output. Plain Python; compiled with numba by :func:`_fused_kernel`.

    Each row is a sequence of short loops over the wavelengths through row buffers. Loops of
    plain arithmetic get SIMD-vectorised by LLVM; the calls into libm (pow, exp) sit in loops
    of their own so that they do not block that.
    """
    n_w = out.shape[1]
    j1_switch = _J1_SERIES_BELOW
    n_plan = cf_from.shape[0]
    b0 = np.empty(n_w); b1 = np.empty(n_w); b2 = np.empty(n_w); b3 = np.empty(n_w)
    b4 = np.empty(n_w); b5 = np.empty(n_w)
    kab = wtab[0]; kca = wtab[1]; kan = wtab[2]; kbr = wtab[3]; kw = wtab[4]; km = wtab[5]
    t12 = wtab[6]; t21 = wtab[7]; sdry = wtab[8]; swet = wtab[9]
    for i in range(lo, hi):
        m_layers = samp[i, 0]
        c_ab = samp[i, 1]; c_ar = samp[i, 2]; c_an = samp[i, 3]; c_br = samp[i, 4]; c_w = samp[i, 5]; c_m = samp[i, 6]
        lai = samp[i, 7]
        ks = samp[i, 8]; ko = samp[i, 9]; bf = samp[i, 10]; sob = samp[i, 11]; sof = samp[i, 12]
        tss = samp[i, 13]; too = samp[i, 14]; tsstoo = samp[i, 15]; sumint = samp[i, 16]; z = samp[i, 17]
        rsoil = samp[i, 18]; psoil = samp[i, 19]
        ta_row = talf[i if talf.shape[0] > 1 else 0]
        orow = out[i]
        # 1: absorption of an elementary layer
        for j in range(n_w):
            b0[j] = (c_ab * kab[j] + c_ar * kca[j] + c_an * kan[j] + c_br * kbr[j]
                     + c_w * kw[j] + c_m * km[j])
        # 2: its transmission tau
        for j in range(n_w):
            k = b0[j]
            if k <= 0.0:
                b1[j] = 1.0
            elif k < k_max:
                u = math.sqrt(k) * inv_h
                cell = int(u)
                x = u - cell
                b1[j] = tab[cell, 0] + x * (tab[cell, 1] + x * (tab[cell, 2] + x * tab[cell, 3]))
            else:
                depth = cf_depth[0]
                for c in range(n_plan):
                    if k >= cf_from[c]:
                        depth = cf_depth[c]
                g = 2.0 * depth + 1.0
                for lev in range(depth - 1, -1, -1):
                    g = (2.0 * lev + 1.0) - (lev + 1.0) * (lev + 1.0) / (k + g)
                ek = math.exp(-k)
                b1[j] = (1.0 - k) * ek + k * k * ek / (k + g)
        # 3: one compact layer: b2 r, b3 t, b4 a, b5 b (of the Stokes pile), b0 ra, b1 ta
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
            b4[j] = (p_ + dd) / (2.0 * r)
            b5[j] = (2.0 - p_ + dd) / (2.0 * t)
            b0[j] = (1.0 - ta_) + r21tau * ta
            b1[j] = ta
            b2[j] = r
            b3[j] = t
        # 4: b^(N-1)
        for j in range(n_w):
            b5[j] = b5[j] ** m_layers
        # 5: pile of N - 1 layers, then the leaf: b0 rho, b1 tau
        for j in range(n_w):
            r = b2[j]; t = b3[j]; a = b4[j]; b_m = b5[j]
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
        # 6: canopy attenuation m (b2) and exp(-m L) (b3)
        for j in range(n_w):
            half = 0.5 * (b0[j] + b1[j])
            h = 0.5 * bf * (b0[j] - b1[j])
            mm = (1.0 - 2.0 * half) * (1.0 + 2.0 * h)
            b2[j] = math.sqrt(mm if mm > 0.0 else 0.0)
        for j in range(n_w):
            b3[j] = math.exp(-b2[j] * lai)
        # 7: 4SAIL
        if factor == 0:
            for j in range(n_w):
                rho_l = b0[j]; tau_l = b1[j]; m = b2[j]; e1m = b3[j]
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
                dks = (ks - m) * lai
                j1ks = (e1m - tss) / (ks - m) if abs(dks) > j1_switch else 0.5 * lai * (e1m + tss) * (1.0 - dks * dks / 12.0)
                dko = (ko - m) * lai
                j1ko = (e1m - too) / (ko - m) if abs(dko) > j1_switch else 0.5 * lai * (e1m + too) * (1.0 - dko * dko / 12.0)
                iksm = 1.0 / (ks + m)
                ikom = 1.0 / (ko + m)
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
                rsod = (vb_vf * g1 * sf_sb + vf_vb * g2 * sb_sf - (rdo * qss + tdo * pss) * rinf) / (1.0 - rinf * rinf)
                rsos = (sob * rho_l + sof * tau_l) * lai * sumint
                rsodt = ((tss + tsd) * tdo + (tsd + tss * soil * rdd) * too) * soil / dn
                orow[j] = rsos + rsod + tsstoo * soil + rsodt
        else:
            for j in range(n_w):  # hemispherical factors: BHR (1), DHR (2), HDR (3)
                rho_l = b0[j]; tau_l = b1[j]; m = b2[j]; e1m = b3[j]
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
                    j1ks = (e1m - tss) / (ks - m) if abs(dks) > j1_switch else 0.5 * lai * (e1m + tss) * (1.0 - dks * dks / 12.0)
                    j2ks = (1.0 - tss * e1m) / (ks + m)
                    pss = (ks * pa - hb) * j1ks
                    qss = (ks * pa + hb) * j2ks
                    tsd = (pss - re * qss) * inv_den
                    rsd = (qss - re * pss) * inv_den
                    orow[j] = rsd + (tsd + tss) * soil * tdd / dn
                else:
                    dko = (ko - m) * lai
                    j1ko = (e1m - too) / (ko - m) if abs(dko) > j1_switch else 0.5 * lai * (e1m + too) * (1.0 - dko * dko / 12.0)
                    j2ko = (1.0 - too * e1m) / (ko + m)
                    pv = (ko * pa - hb) * j1ko
                    qv = (ko * pa + hb) * j2ko
                    tdo = (pv - re * qv) * inv_den
                    rdo = (qv - re * pv) * inv_den
                    orow[j] = rdo + tdd * soil * (tdo + too) / dn


_fused_lock = threading.Lock()
_fused_state: dict[str, Any] = {}


def _fused_kernel() -> Callable[..., None] | None:
    """numba-compiled :func:`_fused_rows` (cached on disk by numba), or None without numba."""
    with _fused_lock:
        if "kernel" not in _fused_state:
            try:
                import numba
            except ImportError:  # pragma: no cover - numba comes with the prosail dependency
                _fused_state["kernel"] = None
            else:
                _fused_state["kernel"] = numba.njit(nogil=True, cache=True, error_model="numpy")(_fused_rows)
        return _fused_state["kernel"]


def _fused_pool(workers: int) -> ThreadPoolExecutor:
    with _fused_lock:
        pool = _fused_state.get("pool")
        if pool is None or pool._max_workers < workers:
            if pool is not None:
                pool.shutdown(wait=False)
            pool = _fused_state["pool"] = ThreadPoolExecutor(workers, thread_name_prefix="prosail")
        return pool


def _fused_available() -> bool:
    return _fused_kernel() is not None


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
    k_pos = k.clamp_min(torch.finfo(torch.float64).tiny)
    e1 = exp1_values(k_pos)
    em = torch.exp(-k)
    tau = torch.where(k > 0, (1.0 - k) * em + k * k * e1, 1.0)
    d = h * 2.0 * s * (-2.0) * torch.where(k > 0, em - k * e1, 1.0)  # h * d tau / ds
    f0, f1, d0, d1 = tau[:-1], tau[1:], d[:-1], d[1:]
    tab = torch.stack([f0, d0, 3.0 * (f1 - f0) - 2.0 * d0 - d1, 2.0 * (f0 - f1) + d0 + d1], dim=1)
    plan = [p for p in _E1_PLAN[torch.float64][2] if p[0] >= _TAU_TABLE_KMAX - 1.0]
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


def _run_fused(v: dict[str, torch.Tensor], size: int, dtype: torch.dtype,
               wavelengths: torch.Tensor | None, factor: str) -> torch.Tensor:
    kernel = _fused_kernel()
    if kernel is None:
        raise RuntimeError("backend='fused' needs numba (installed with the prosail package)")
    f64 = {k: t.detach().to("cpu", torch.float64) for k, t in v.items()}
    with torch.no_grad():
        lidf = leaf_angle_distribution(f64["lidfa"], f64["lidfb"], v["typelidf"].detach().cpu())
        geo = canopy_geometry(lidf, f64["lai"], f64["hspot"], f64["tts"], f64["tto"], f64["psi"])
    cols = {"m": f64["n"] - 1.0, **{a: f64[a] / f64["n"] for a in ABSORBERS},
            "lai": f64["lai"].clamp_min(0.0), **vars(geo), "rsoil": f64["rsoil"], "psoil": f64["psoil"]}
    samp = torch.stack([cols[f].expand(size) for f in _SAMPLE_FIELDS], dim=1).contiguous().numpy()
    index = wavelength_index(wavelengths)
    alpha = _constant_or_batch(f64["alpha"])
    wtab, talf = _fused_tables(index, alpha if isinstance(alpha, float) else None)
    if talf is None:
        nr = spectral_tables(wavelengths, dtype=torch.float64).nr
        talf = np.ascontiguousarray(transmissivity_isotropic(alpha.reshape(-1, 1), nr).numpy())
    tab, inv_h, k_max, cf_from, cf_depth = _tau_table()
    out = np.empty((size, wtab.shape[1]), dtype=np.float64 if dtype == torch.float64 else np.float32)
    code = _FACTOR_CODE[factor]
    workers = max(1, min(torch.get_num_threads(), size // 8))
    bounds = np.linspace(0, size, workers + 1).astype(int)
    # the kernel releases the GIL: pool threads take all row blocks but the first, which this
    # thread computes itself
    jobs = [_fused_pool(workers - 1).submit(kernel, int(a), int(b), samp, wtab, talf, tab, inv_h,
                                            k_max, cf_from, cf_depth, code, out)
            for a, b in zip(bounds[1:-1], bounds[2:])]
    kernel(0, int(bounds[1]), samp, wtab, talf, tab, inv_h, k_max, cf_from, cf_depth, code, out)
    for job in jobs:
        job.result()
    result = torch.from_numpy(out)
    return result if dtype in (torch.float32, torch.float64) else result.to(dtype)
