"""PROSAIL port (releo_bench.physics.prosail) against the ``prosail`` package and itself.

The reference is prosail.run_prosail(..., prospect_version="D"): 1000 random parameter sets
over the documented ranges, both leaf angle distributions. Both backends are checked: "torch"
(autograd, CPU/CUDA) and "fused" (compiled CPU kernel, the default without gradients).
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from scipy.special import exp1 as scipy_exp1

from releo_bench.physics.prosail import (
    PROSAIL_DEFAULTS,
    PROSAIL_PARAMETERS,
    PROSAIL_RANGES,
    exp1,
    run_prosail,
    run_prospect_d,
)
from releo_bench.physics.sail import campbell_lidf, verhoef_lidf
from releo_bench.physics.spectral_data import spectral_tables

prosail = pytest.importorskip("prosail")

CONTINUOUS = tuple(p for p in PROSAIL_PARAMETERS if p != "typelidf")
GRAD_WL = torch.tensor([420, 480, 550, 670, 705, 740, 800, 940, 1200, 1450, 1650, 1950, 2200, 2450])


def sample(n: int, rng: np.random.Generator, max_angle: float = 60.0) -> dict[str, np.ndarray]:
    """Random parameter sets over PROSAIL_RANGES; both LIDF types, |a| + |b| <= 1 for type 1."""
    p = {k: rng.uniform(*PROSAIL_RANGES[k][:2], n)
         for k in ("n", "cab", "car", "cbrown", "cw", "cm", "lai", "hspot", "ant", "rsoil", "psoil")}
    p["tts"] = rng.uniform(0.0, max_angle, n)
    p["tto"] = rng.uniform(0.0, max_angle, n)
    p["psi"] = rng.uniform(0.0, 180.0, n)
    kind = rng.integers(1, 3, n)
    a = rng.uniform(-1.0, 1.0, n)
    b = rng.uniform(-1.0, 1.0, n) * (1.0 - np.abs(a))
    p["typelidf"] = kind.astype(np.float64)
    p["lidfa"] = np.where(kind == 1, a, rng.uniform(0.0, 90.0, n))
    p["lidfb"] = np.where(kind == 1, b, 0.0)
    p["alpha"] = np.full(n, 40.0)
    return p


def reference(p: dict[str, np.ndarray], i: int, factor: str = "SDR") -> np.ndarray:
    kw = {k: float(v[i]) for k, v in p.items()}
    kw["typelidf"] = int(kw["typelidf"])
    return prosail.run_prosail(**kw, prospect_version="D", factor=factor)


def as_tensors(p: dict[str, np.ndarray], **kw) -> dict[str, torch.Tensor]:
    return {k: torch.tensor(v, **kw) for k, v in p.items()}


@pytest.fixture(scope="module")
def random_sets() -> tuple[dict[str, np.ndarray], np.ndarray]:
    p = sample(1000, np.random.default_rng(20240601))
    ref = np.stack([reference(p, i) for i in range(1000)])
    return p, ref


# --- agreement with the reference ---------------------------------------------------------------


@pytest.mark.parametrize("backend", ["torch", "fused"])
def test_matches_reference_on_1000_random_sets(random_sets, backend):
    p, ref = random_sets
    out = run_prosail(as_tensors(p), dtype=torch.float64, backend=backend).numpy()
    err = np.abs(out - ref).max(axis=1)
    print(f"\n{backend}: max |ours - prosail| over 1000 sets x 2101 nm = {err.max():.2e} "
          f"(median per set {np.median(err):.1e})")
    assert out.shape == (1000, 2101)
    assert err.max() <= 1e-4
    # observed 2.3e-9 (the reference solves Verhoef's LIDF to 1e-8); catch any regression
    assert err.max() <= 1e-7


EDGES = [  # (changes to a typical set): range ends and degenerate geometries
    {"lai": 0.0}, {"lai": 15.0}, {"hspot": 0.0}, {"tts": 0.0, "tto": 0.0, "psi": 0.0},
    {"tts": 30.0, "tto": 30.0, "psi": 0.0}, {"psi": 180.0}, {"tto": 0.0}, {"tts": 0.0},
    {"tts": 85.0, "tto": 85.0}, {"cab": 0.0, "car": 0.0, "ant": 0.0, "cbrown": 0.0},
    {"cab": 100.0, "car": 25.0, "ant": 40.0, "cbrown": 1.0, "cw": 0.05, "cm": 0.03},
    {"n": 1.0}, {"n": 3.0}, {"cw": 0.0001, "cm": 0.001}, {"alpha": 90.0}, {"alpha": 10.0},
    {"rsoil": 0.0}, {"psoil": 0.0},
    {"typelidf": 1, "lidfa": 1.0, "lidfb": 0.0}, {"typelidf": 1, "lidfa": -1.0, "lidfb": 0.0},
    {"typelidf": 1, "lidfa": 0.0, "lidfb": -1.0}, {"typelidf": 1, "lidfa": 0.0, "lidfb": 1.0},
    {"typelidf": 1, "lidfa": -0.35, "lidfb": -0.15}, {"lidfa": 0.0}, {"lidfa": 90.0}, {"lidfa": 57.3},
]
TYPICAL = {"n": 1.6, "cab": 45.0, "car": 9.0, "cbrown": 0.1, "cw": 0.015, "cm": 0.008, "lai": 3.0,
           "lidfa": 50.0, "lidfb": 0.0, "typelidf": 2, "hspot": 0.1, "tts": 35.0, "tto": 10.0,
           "psi": 60.0, "ant": 2.0, "alpha": 40.0, "rsoil": 0.9, "psoil": 0.7}


@pytest.mark.parametrize("factor", ["SDR", "BHR", "DHR", "HDR"])
@pytest.mark.parametrize("backend", ["torch", "fused"])
def test_edge_cases_match_reference(factor, backend):
    p = {k: np.array([{**TYPICAL, **e}[k] for e in EDGES], dtype=np.float64) for k in TYPICAL}
    ref = np.stack([reference(p, i, factor) for i in range(len(EDGES))])
    out = run_prosail(as_tensors(p), dtype=torch.float64, factor=factor, backend=backend).numpy()
    err = np.abs(out - ref).max(axis=1)
    assert err.max() <= 1e-8, EDGES[int(err.argmax())]  # observed 4.7e-10 (Verhoef a = -1)
    bare = EDGES.index({"lai": 0.0})  # no canopy: the soil itself, for every factor
    soil = 0.9 * (0.7 * prosail.spectral_lib.soil.rsoil1 + 0.3 * prosail.spectral_lib.soil.rsoil2)
    np.testing.assert_allclose(out[bare], soil, atol=1e-12)


@pytest.mark.parametrize("factor", ["BHR", "DHR", "HDR"])
@pytest.mark.parametrize("backend", ["torch", "fused"])
def test_hemispherical_factors_match_reference(factor, backend):
    p = sample(40, np.random.default_rng(7))
    ref = np.stack([reference(p, i, factor) for i in range(40)])
    out = run_prosail(as_tensors(p), dtype=torch.float64, factor=factor, backend=backend).numpy()
    assert np.abs(out - ref).max() <= 1e-7


def test_prospect_d_matches_reference():
    rng = np.random.default_rng(3)
    for _ in range(20):
        args = [rng.uniform(*PROSAIL_RANGES[k][:2]) for k in ("n", "cab", "car", "cbrown", "cw", "cm", "ant")]
        _, r_ref, t_ref = prosail.run_prospect(*args[:6], ant=args[6], prospect_version="D")
        r, t = run_prospect_d(*args, dtype=torch.float64)
        assert np.abs(r[0].numpy() - r_ref).max() < 1e-12
        assert np.abs(t[0].numpy() - t_ref).max() < 1e-12


def test_leaf_angle_distributions_match_reference():
    from prosail.FourSAIL import campbell, verhoef_bimodal

    for mean in (0.0, 10.0, 45.0, 57.0, 57.3, 80.0, 90.0):
        ours = campbell_lidf(torch.tensor([mean], dtype=torch.float64))[0].numpy()
        np.testing.assert_allclose(ours, campbell(mean, 18), atol=1e-12)
    for a, b in ((1.0, 0.0), (-1.0, 0.0), (0.0, -1.0), (0.0, 1.0), (-0.35, -0.15), (0.0, 0.0), (0.5, 0.3)):
        ours = verhoef_lidf(torch.tensor([a], dtype=torch.float64), torch.tensor([b], dtype=torch.float64))
        assert abs(float(ours.sum()) - 1.0) < 1e-12
        np.testing.assert_allclose(ours[0].numpy(), verhoef_bimodal(a, b, 18), atol=1e-6)


def test_coefficients_are_read_from_the_prosail_package():
    from prosail import spectral_lib

    t = spectral_tables(dtype=torch.float64)
    leaf = spectral_lib.prospectd
    for row, name in enumerate(("kab", "kcar", "kant", "kbrown", "kw", "km")):
        assert np.array_equal(t.k[row].numpy(), getattr(leaf, name))
    assert np.array_equal(t.nr.numpy(), leaf.nr)
    assert np.array_equal(t.soil_dry.numpy(), spectral_lib.soil.rsoil1)
    assert np.array_equal(t.soil_wet.numpy(), spectral_lib.soil.rsoil2)


def test_parameter_names_and_defaults_follow_run_prosail():
    sig = inspect.signature(prosail.run_prosail).parameters
    assert set(PROSAIL_PARAMETERS) <= set(sig)
    for name in ("ant", "alpha", "typelidf", "lidfb"):
        assert PROSAIL_DEFAULTS[name] == sig[name].default
    assert set(PROSAIL_RANGES) == set(PROSAIL_PARAMETERS)
    assert all(lo < hi for lo, hi, *_ in PROSAIL_RANGES.values())


# --- the two backends, precision, wavelength subsets ----------------------------------------------


@pytest.mark.parametrize("factor", ["SDR", "BHR", "DHR", "HDR"])
def test_backends_agree(factor):
    p = sample(300, np.random.default_rng(11), max_angle=85.0)
    p["alpha"] = np.random.default_rng(12).uniform(*PROSAIL_RANGES["alpha"][:2], 300)
    a = run_prosail(as_tensors(p), dtype=torch.float64, factor=factor, backend="torch")
    b = run_prosail(as_tensors(p), dtype=torch.float64, factor=factor, backend="fused")
    assert (a - b).abs().max() < 1e-10


def test_float32_agrees_with_float64(random_sets):
    p = {k: v[:300] for k, v in random_sets[0].items()}
    for backend, tol in (("torch", 3e-5), ("fused", 1e-6)):
        hi = run_prosail(as_tensors(p), dtype=torch.float64, backend=backend)
        lo = run_prosail(as_tensors(p), dtype=torch.float32, backend=backend)
        assert lo.dtype == torch.float32
        err = (lo.double() - hi).abs().max().item()
        print(f"\n{backend}: max |float32 - float64| = {err:.1e}")
        assert err < tol  # observed: torch 7.7e-6 (float32 arithmetic), fused 3.0e-8 (output rounding)


@pytest.mark.parametrize("backend", ["torch", "fused"])
def test_wavelength_subset_equals_full_columns(backend):
    p = as_tensors(sample(64, np.random.default_rng(5)))
    full = run_prosail(p, dtype=torch.float64, backend=backend)
    for wl in (torch.tensor([400, 401, 555, 1000, 2500]), torch.arange(400, 2501, 3), GRAD_WL):
        sub = run_prosail(p, wavelengths=wl, dtype=torch.float64, backend=backend)
        assert torch.equal(sub, full[:, wl - 400])


def test_broadcasting_and_argument_checks():
    base = {"n": 1.5, "cab": 40.0, "car": 8.0, "cbrown": 0.0, "cw": 0.01, "cm": 0.009, "lai": 3.0,
            "lidfa": 57.0, "hspot": 0.1, "tts": 30.0, "tto": 10.0, "psi": 0.0}
    one = run_prosail(base, dtype=torch.float64)
    assert one.shape == (1, 2101) and one.dtype == torch.float64
    many = run_prosail({**base, "lai": torch.tensor([3.0, 3.0, 3.0])}, dtype=torch.float64)
    assert many.shape == (3, 2101) and torch.allclose(many, one.expand(3, -1), atol=1e-15)
    assert run_prosail(base).dtype == torch.get_default_dtype()
    with pytest.raises(ValueError, match="missing"):
        run_prosail({k: v for k, v in base.items() if k != "cab"})
    with pytest.raises(ValueError, match="unknown"):
        run_prosail({**base, "colour": 1.0})
    with pytest.raises(ValueError, match="typelidf"):
        run_prosail({**base, "typelidf": 3})
    with pytest.raises(ValueError, match="factor"):
        run_prosail(base, factor="XYZ")
    with pytest.raises(ValueError, match="values"):
        run_prosail({**base, "lai": torch.ones(3), "cab": torch.ones(4)})
    with pytest.raises(ValueError, match="wavelengths"):
        run_prosail(base, wavelengths=torch.tensor([399, 500]))


# --- gradients --------------------------------------------------------------------------------------


def _grad_sets(kind: int) -> dict[str, torch.Tensor]:
    rows = [
        dict(n=1.4, cab=35.0, car=7.0, cbrown=0.2, cw=0.012, cm=0.006, lai=2.5, hspot=0.15, tts=35.0,
             tto=12.0, psi=40.0, ant=3.0, alpha=40.0, rsoil=0.9, psoil=0.6),
        dict(n=2.1, cab=70.0, car=15.0, cbrown=0.05, cw=0.03, cm=0.015, lai=5.0, hspot=0.05, tts=50.0,
             tto=30.0, psi=150.0, ant=10.0, alpha=55.0, rsoil=1.2, psoil=0.3),
    ]
    out = {k: torch.tensor([r[k] for r in rows], dtype=torch.float64) for k in rows[0]}
    out["lidfa"] = torch.tensor([0.3, -0.4] if kind == 1 else [35.0, 62.0], dtype=torch.float64)
    out["lidfb"] = torch.tensor([-0.2, 0.35] if kind == 1 else [0.0, 0.0], dtype=torch.float64)
    return out


@pytest.mark.parametrize("kind", [1, 2])
def test_gradcheck_every_continuous_parameter(kind):
    base = _grad_sets(kind)
    names = [k for k in CONTINUOUS if not (kind == 2 and k == "lidfb")]
    inputs = tuple(base[k].clone().requires_grad_(True) for k in names)

    def f(*xs: torch.Tensor) -> torch.Tensor:
        params = dict(zip(names, xs))
        params.setdefault("lidfb", base["lidfb"])
        return run_prosail({**params, "typelidf": kind}, wavelengths=GRAD_WL, dtype=torch.float64,
                           backend="torch")

    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("factor", ["BHR", "DHR", "HDR"])
def test_gradcheck_hemispherical_factors(factor):
    base = _grad_sets(2)
    names = ("cab", "lai", "lidfa", "tts", "tto", "psi", "rsoil")
    inputs = tuple(base[k].clone().requires_grad_(True) for k in names)

    def f(*xs: torch.Tensor) -> torch.Tensor:
        return run_prosail({**base, **dict(zip(names, xs))}, wavelengths=GRAD_WL[::3],
                           dtype=torch.float64, factor=factor, backend="torch")

    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)


def test_gradients_finite_over_random_sets_and_edges():
    p = sample(200, np.random.default_rng(9), max_angle=80.0)
    edges = {  # boundaries of the ranges and degenerate geometries
        "lai": [0.0, 15.0], "hspot": [0.0, 1.0], "tts": [0.0, 30.0], "tto": [0.0, 30.0],
        "psi": [0.0, 180.0], "cab": [0.0, 100.0], "car": [0.0, 25.0], "ant": [0.0, 40.0],
        "cbrown": [0.0, 1.0], "n": [1.0, 3.0], "alpha": [10.0, 90.0], "psoil": [0.0, 1.0],
    }
    for k, vals in edges.items():
        p[k][: len(vals)] = vals
    p["typelidf"][:12] = [2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 2, 2]
    p["lidfa"][:12] = [0.0, 90.0, 57.0, 57.3, 1.0, -1.0, 0.0, 0.0, -0.35, 0.0, 30.0, 85.0]
    p["lidfb"][:12] = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0, 1.0, -0.15, 0.0, 0.0, 0.0]
    x = {k: torch.tensor(v, requires_grad=k in CONTINUOUS) for k, v in p.items()}
    for factor in ("SDR", "BHR"):
        out = run_prosail(x, wavelengths=torch.arange(400, 2501, 10), dtype=torch.float64, factor=factor)
        assert torch.isfinite(out).all()
        grads = torch.autograd.grad(out.sum(), [x[k] for k in CONTINUOUS], allow_unused=True)
        for name, g in zip(CONTINUOUS, grads):
            assert g is not None or (factor == "BHR" and name in ("hspot", "tts", "tto", "psi")), name
            assert g is None or torch.isfinite(g).all(), name


def test_float32_gradients():
    base = {k: v.float().requires_grad_(True) for k, v in _grad_sets(2).items()}
    out = run_prosail(base, wavelengths=GRAD_WL, dtype=torch.float32)
    assert out.dtype == torch.float32
    out.sum().backward()
    ref = {k: v.clone().requires_grad_(True) for k, v in _grad_sets(2).items()}
    run_prosail(ref, wavelengths=GRAD_WL, dtype=torch.float64).sum().backward()
    for k in base:
        if k != "lidfb":
            torch.testing.assert_close(base[k].grad.double(), ref[k].grad, rtol=1e-3, atol=1e-6)


# --- physical sanity --------------------------------------------------------------------------------


def test_reflectance_bounds():
    p = sample(2000, np.random.default_rng(13), max_angle=60.0)
    x = as_tensors(p)
    wl = torch.arange(400, 2501, 5)
    for factor in ("BHR", "DHR", "HDR"):  # energy conservation: hemispherical factors stay in [0, 1]
        out = run_prosail(x, wavelengths=wl, factor=factor)
        assert out.min() >= 0.0 and out.max() <= 1.0
    sdr = run_prosail(x, wavelengths=wl)
    assert sdr.min() >= 0.0
    # a bidirectional factor may exceed 1 in the hotspot at oblique angles (so does the
    # reference); away from it the surface is darker than a white Lambertian reflector
    away = (x["psi"] >= 30.0) & (x["hspot"] <= 0.5)
    assert sdr[away].max() <= 1.0


def test_lai_and_chlorophyll_responses():
    base = {"n": 1.5, "cab": 40.0, "car": 8.0, "cbrown": 0.0, "cw": 0.012, "cm": 0.008, "lai": 1.0,
            "lidfa": 57.0, "hspot": 0.1, "tts": 30.0, "tto": 5.0, "psi": 90.0, "psoil": 1.0}
    wl = torch.tensor([550, 670, 705, 800])
    lai = torch.linspace(0.0, 8.0, 17, dtype=torch.float64)
    r = run_prosail({**base, "lai": lai}, wavelengths=wl, dtype=torch.float64)
    assert (r[1:, 3] > r[:-1, 3]).all()  # NIR rises with LAI
    assert (r[1:11, 1] < r[:10, 1]).all()  # red falls with LAI up to 5 ...
    assert (r[10:, 1] - r[10, 1]).abs().max() < 1e-3  # ... then saturates (dense canopy)
    cab = torch.linspace(5.0, 95.0, 10, dtype=torch.float64)
    r = run_prosail({**base, "lai": 3.0, "cab": cab}, wavelengths=wl, dtype=torch.float64)
    assert (r[1:, 0] < r[:-1, 0]).all()  # green falls with chlorophyll
    assert (r[1:, 2] < r[:-1, 2]).all()  # so does the red edge


# --- the exponential integral -----------------------------------------------------------------------


def test_exp1_matches_scipy():
    x = np.logspace(-8, np.log10(700.0), 20001)
    ours = exp1(torch.tensor(x)).numpy()
    rel = np.abs(ours / scipy_exp1(x) - 1.0)
    assert rel.max() < 1e-13  # observed 1.1e-14
    x32 = x.astype(np.float32)
    ours32 = exp1(torch.tensor(x32)).double().numpy()
    ref32 = scipy_exp1(x32.astype(np.float64))  # same (rounded) arguments
    keep = ref32 > 1e-30  # float32 range
    assert (np.abs(ours32 / ref32 - 1.0)[keep]).max() < 1e-6  # observed 3.0e-7
    assert exp1(torch.tensor(0.0, dtype=torch.float64)).item() == float("inf")
    assert torch.isnan(exp1(torch.tensor(-1.0, dtype=torch.float64)))


def test_exp1_gradient():
    x = torch.tensor([1e-3, 0.3, 1.0, 2.4, 2.6, 7.0, 40.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(exp1, (x,))
    (g,) = torch.autograd.grad(exp1(x).sum(), x)
    torch.testing.assert_close(g, -torch.exp(-x.detach()) / x.detach())


# --- devices ----------------------------------------------------------------------------------------


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    p = sample(500, np.random.default_rng(17))
    cpu = run_prosail(as_tensors(p), dtype=torch.float64, backend="torch")
    gpu = run_prosail(as_tensors(p, device="cuda"), dtype=torch.float64)
    assert gpu.device.type == "cuda"
    assert (gpu.cpu() - cpu).abs().max() < 1e-10
    gpu32 = run_prosail(as_tensors(p, device="cuda"), dtype=torch.float32)
    assert (gpu32.cpu().double() - cpu).abs().max() < 3e-5
