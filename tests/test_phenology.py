"""Double-logistic seasons: closed forms, season dates, gradients, crop profiles."""

from __future__ import annotations

import math

import pytest
import torch

from releo_bench.errors import UnknownNameError, UsageError
from releo_bench.physics.phenology import (CROP_PROFILES, DoubleLogistic, cab_trajectory,
                                           double_logistic, sample_double_logistic, season_dates)

F64 = torch.float64


def _p(vmin=0.5, vmax=5.0, sos=100.0, eos=250.0, up=0.1, down=0.1) -> DoubleLogistic:
    return DoubleLogistic(*(torch.as_tensor(v, dtype=F64) for v in (vmin, vmax, sos, eos, up, down)))


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_closed_form_values():
    p = _p()
    amp = 4.5
    at_sos = double_logistic(torch.tensor(100.0, dtype=F64), p).item()
    assert at_sos == pytest.approx(0.5 + amp * (0.5 + _sigmoid(0.1 * 150) - 1.0), abs=1e-12)
    assert at_sos == pytest.approx(0.5 + amp / 2, abs=2e-6)  # the half level when eos is far
    at_eos = double_logistic(torch.tensor(250.0, dtype=F64), p).item()
    assert at_eos == pytest.approx(at_sos, abs=1e-12)
    mid = double_logistic(torch.tensor(175.0, dtype=F64), p).item()
    assert mid == pytest.approx(0.5 + amp * math.tanh(0.1 * 150 / 4), abs=1e-12)
    far = double_logistic(torch.tensor([-400.0, 800.0], dtype=F64), p)
    torch.testing.assert_close(far, torch.full((2,), 0.5, dtype=F64))
    x = torch.linspace(0, 120, 25, dtype=F64)
    torch.testing.assert_close(double_logistic(175 + x, p), double_logistic(175 - x, p))


def test_broadcasts_dates_against_samples():
    p = _p(vmax=[3.0, 4.0, 5.0], sos=[90.0, 100.0, 110.0])
    doy = torch.arange(1, 366)
    out = double_logistic(doy[:, None], p)
    assert out.shape == (365, 3) and out.dtype == F64
    assert (out.amax(0) <= torch.tensor([3.0, 4.0, 5.0], dtype=F64)).all()
    torch.testing.assert_close(out[:, 1], double_logistic(doy.double(), _p(vmax=4.0)))


def test_season_dates_recover_sos_eos_for_steep_rates():
    p = _p(sos=[80.0, 120.0, 160.0], eos=[180.0, 260.0, 300.0], up=[0.3, 0.5, 1.0],
           down=[0.4, 0.5, 0.8])
    up, down = season_dates(p)
    torch.testing.assert_close(up, p.sos, atol=1e-4, rtol=0)
    torch.testing.assert_close(down, p.eos, atol=1e-4, rtol=0)
    # long season, any level: the crossing of one logistic, sos + logit(q) / rate
    up20, down20 = season_dates(p, threshold=0.2)
    torch.testing.assert_close(up20, p.sos - math.log(4) / p.rate_up, atol=1e-4, rtol=0)
    torch.testing.assert_close(down20, p.eos + math.log(4) / p.rate_down, atol=1e-4, rtol=0)


def test_season_dates_exact_for_overlapping_logistics_and_nan_when_not_reached():
    p = _p(sos=[100.0, 100.0], eos=[140.0, 130.0], up=[0.05, 0.08], down=[0.12, 0.04])
    for q in (0.2, 0.4, 0.6):  # normalised peaks are 0.648 and 0.433
        up, down = season_dates(p, threshold=q)
        level = p.vmin + q * (p.vmax - p.vmin)
        reached = torch.isfinite(up)
        assert reached.any()
        for day in (up, down):
            assert (double_logistic(day, p)[reached] - level).abs().max() < 1e-9
        assert (up[reached] < down[reached]).all()
    peak = double_logistic(torch.linspace(0, 365, 36501, dtype=F64)[:, None], p).amax(0)
    norm_peak = ((peak - p.vmin) / (p.vmax - p.vmin))
    q = float(norm_peak.mean())  # between the two peaks: one curve reaches it, one does not
    assert norm_peak.min() < q < norm_peak.max()
    up, down = season_dates(p, threshold=q)
    torch.testing.assert_close(torch.isnan(up), norm_peak < q)
    torch.testing.assert_close(torch.isnan(down), norm_peak < q)
    with pytest.raises(UsageError, match="threshold"):
        season_dates(p, threshold=1.0)


def test_gradcheck_curve_and_season_dates():
    params = [torch.tensor(v, dtype=F64, requires_grad=True) for v in
              ([0.3, 0.1], [4.0, 5.5], [95.0, 150.0], [200.0, 250.0], [0.07, 0.12], [0.09, 0.05])]
    doy = torch.tensor([[60.0], [120.0], [170.0], [230.0]], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t, *a: double_logistic(t, DoubleLogistic(*a)),
                                    (doy, *params))
    assert torch.autograd.gradcheck(lambda *a: season_dates(DoubleLogistic(*a), 0.4), params,
                                    atol=1e-5)


@pytest.mark.parametrize("crop", sorted(CROP_PROFILES))
def test_sampled_parameters_inside_documented_ranges(crop):
    p = sample_double_logistic(500, torch.Generator().manual_seed(1), crop)
    profile = CROP_PROFILES[crop]
    for name, value in p.as_dict().items():
        lo, hi = getattr(profile, name)
        assert value.shape == (500,) and value.dtype == F64
        assert (value >= lo).all() and (value <= hi).all(), name
        assert value.max() - value.min() > 0.8 * (hi - lo), name  # the whole range is used
    assert (p.vmax > p.vmin).all() and (p.eos > p.sos).all()


def test_sampling_is_reproducible():
    a = sample_double_logistic(10, torch.Generator().manual_seed(7), "maize")
    b = sample_double_logistic(10, torch.Generator().manual_seed(7), "maize")
    c = sample_double_logistic(10, torch.Generator().manual_seed(8), "maize")
    for name in a.as_dict():
        torch.testing.assert_close(getattr(a, name), getattr(b, name))
        assert not torch.equal(getattr(a, name), getattr(c, name))
    with pytest.raises(UnknownNameError, match="did you mean 'maize'"):
        sample_double_logistic(1, torch.Generator(), "maiz")


def test_crop_calendars_are_ordered():
    wheat = sample_double_logistic(200, torch.Generator().manual_seed(0), "winter_wheat")
    maize = sample_double_logistic(200, torch.Generator().manual_seed(0), "maize")
    assert wheat.eos.max() < maize.eos.min()  # wheat is harvested before maize senesces
    assert wheat.sos.max() < maize.sos.min()


def test_cab_leads_lai_and_stays_in_range():
    p = _p(vmin=0.2, vmax=5.0)
    doy = torch.arange(0, 366, dtype=F64)
    cab = cab_trajectory(doy, p, cab_max=55.0, cab_min=10.0)
    assert cab.min() >= 10.0 and cab.max() <= 55.0 and cab.max() > 54.0
    lai = double_logistic(doy, p)
    cab_half, lai_half = (cab >= 32.5).nonzero(), (lai >= 2.6).nonzero()
    assert cab_half[0] < lai_half[0] and cab_half[-1] < lai_half[-1]  # greens and yellows first
    cab_max = torch.tensor(50.0, dtype=F64, requires_grad=True)
    cab_trajectory(doy, p, cab_max=cab_max).sum().backward()
    assert torch.isfinite(cab_max.grad)
