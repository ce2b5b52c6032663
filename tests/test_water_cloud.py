"""Water-cloud model: closed form, limits, monotonicity regimes, gradients."""

from __future__ import annotations

import math

import pytest
import torch

from releo_bench.errors import UsageError
from releo_bench.physics.water_cloud import (DEFAULT_PARAMS, WaterCloudParams, soil_backscatter_db,
                                             water_cloud, water_cloud_linear)

F64 = torch.float64


def _t(x) -> torch.Tensor:
    return torch.as_tensor(x, dtype=F64)


def test_closed_form_round_numbers():
    # theta = 60 deg: cos = 1/2, T2 = exp(-2 * 0.5 * 1 / 0.5) = e^-2, soil = 10^(-10/10) = 0.1
    # sigma0 = 0.1 * 1 * 0.5 * (1 - e^-2) + 0.1 e^-2 = 0.0567668 -> -12.4591 dB
    p = WaterCloudParams(a=0.1, b=0.5, b_vwc=0.5, c=-10.0, d=10.0)
    out = water_cloud(_t(1.0), _t(0.0), _t(60.0), params=p)
    assert out.item() == pytest.approx(-12.459058608690633, abs=1e-9)
    assert water_cloud_linear(_t(1.0), _t(0.0), _t(60.0), params=p).item() == pytest.approx(
        0.05676676416183064, rel=1e-12)


@pytest.mark.parametrize("pol", ["VV", "VH"])
def test_closed_form_default_parameters(pol):
    p = DEFAULT_PARAMS[pol]
    lai, mv, theta = 2.5, 0.22, 38.0
    cos = math.cos(math.radians(theta))
    t2 = math.exp(-2 * p.b * lai / cos)
    expected = p.a * lai * cos * (1 - t2) + t2 * 10 ** ((p.c + p.d * mv) / 10)
    out = water_cloud(_t(lai), _t(mv), _t(theta), polarisation=pol)
    assert out.item() == pytest.approx(10 * math.log10(expected), abs=1e-9)
    # vegetation water content as V2: same numbers when it equals b / b_vwc x LAI
    vwc = water_cloud(_t(lai), _t(mv), _t(theta), polarisation=pol, vwc=_t(lai * p.b / p.b_vwc))
    assert vwc.item() == pytest.approx(out.item(), abs=1e-9)


@pytest.mark.parametrize("pol", ["VV", "VH"])
def test_bare_soil_is_the_soil_term(pol):
    mv = torch.linspace(0.02, 0.45, 9, dtype=F64)
    for theta in (30.0, 45.0):
        out = water_cloud(torch.zeros_like(mv), mv, _t(theta), polarisation=pol)
        torch.testing.assert_close(out, soil_backscatter_db(mv, pol))
        p = DEFAULT_PARAMS[pol]
        torch.testing.assert_close(out, p.c + p.d * mv)


def _grid():
    lai = torch.linspace(0.0, 7.0, 141, dtype=F64)[:, None, None]
    mv = torch.linspace(0.02, 0.45, 12, dtype=F64)[None, :, None]
    theta = torch.linspace(30.0, 45.0, 4, dtype=F64)[None, None, :]
    return lai, mv, theta


@pytest.mark.parametrize("pol, lai_from", [("VV", 3.6), ("VH", 1.3)])
def test_backscatter_rises_with_lai_once_vegetation_dominates(pol, lai_from):
    lai, mv, theta = _grid()
    out = water_cloud(lai, mv, theta, polarisation=pol)
    rising = out[lai[:, 0, 0] >= lai_from].diff(dim=0)
    assert (rising > 0).all()
    # the documented regime below: a sparse canopy first hides part of the soil echo
    assert (out[:, -1].amin(dim=0) < out[0, -1]).all()  # wettest soil: a dip exists
    moist = mv[0, :, 0] <= 0.3  # a dense canopy outshines bare soil unless it is very wet
    assert (out[-1, moist] > out[0, moist]).all()


@pytest.mark.parametrize("pol", ["VV", "VH"])
def test_backscatter_rises_with_soil_moisture_more_at_low_lai(pol):
    lai, mv, theta = _grid()
    out = water_cloud(lai, mv, theta, polarisation=pol)
    assert (out.diff(dim=1) > 0).all()
    dry_to_wet = out[:, -1] - out[:, 0]
    assert (dry_to_wet[0] > dry_to_wet[-1]).all()
    assert (dry_to_wet[:20].diff(dim=0) < 0).all()  # sensitivity drops as LAI grows from 0 to 1


def test_vh_below_vv_and_typical_levels():
    lai, mv, theta = _grid()
    vv = water_cloud(lai, mv, theta, "VV")
    vh = water_cloud(lai, mv, theta, "VH")
    assert (vh < vv - 3.0).all()
    assert -20 < vv.min() and vv.max() < -7  # -7.75 dB: bare soil at mv = 0.45
    assert -28 < vh.min() and vh.max() < -13


def test_gradients_finite_and_match_finite_differences():
    lai = torch.tensor([0.0, 0.3, 2.0, 5.0], dtype=F64, requires_grad=True)
    mv = torch.tensor([0.05, 0.2, 0.3, 0.4], dtype=F64, requires_grad=True)
    theta = torch.tensor([30.0, 35.0, 40.0, 45.0], dtype=F64, requires_grad=True)
    for pol in ("VV", "VH"):
        out = water_cloud(lai, mv, theta, pol)
        grads = torch.autograd.grad(out.sum(), (lai, mv, theta))
        assert all(torch.isfinite(g).all() for g in grads)
        assert torch.autograd.gradcheck(lambda a, b, c: water_cloud(a, b, c, pol), (lai, mv, theta))
    vwc = torch.tensor([0.5, 1.0, 3.0, 5.0], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: water_cloud(lai.detach(), mv.detach(),
                                                          theta.detach(), vwc=v), (vwc,))


def test_dtype_broadcasting_and_errors():
    out = water_cloud(torch.rand(5, 1), torch.full((1, 3), 0.2), torch.tensor(38.0), "vh")
    assert out.shape == (5, 3) and out.dtype == torch.float32
    with pytest.raises(UsageError, match="polarisation 'HH'"):
        water_cloud(_t(1.0), _t(0.2), _t(38.0), "HH")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    lai, mv, theta = _grid()
    cpu = water_cloud(lai, mv, theta, "VV")
    gpu = water_cloud(lai.cuda(), mv.cuda(), theta.cuda(), "VV")
    torch.testing.assert_close(gpu.cpu(), cpu)
