"""Revisit schedules, cloud masks (synthetic and transplanted), S2 noise and S1 speckle."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from releo_bench.errors import DataError, UsageError
from releo_bench.physics.acquisition import (cloud_shadows, random_cloud_masks, s1_dates, s1_speckle,
                                             s2_dates, s2_noise, transplant_masks)

START, END = np.datetime64("2021-01-01"), np.datetime64("2021-12-31")


# -- dates --------------------------------------------------------------------------------

@pytest.mark.parametrize("phase", [0, 3, 4])
def test_s2_dates_regular_with_phase(phase):
    d = s2_dates(START, END, np.random.default_rng(0), phase=phase)
    assert d.dtype == np.dtype("datetime64[D]")
    assert d[0] == START + np.timedelta64(phase, "D")
    assert (np.diff(d) == np.timedelta64(5, "D")).all()
    assert d[-1] <= END and d[-1] + np.timedelta64(5, "D") > END


def test_random_phase_covers_all_offsets_and_is_reproducible():
    firsts = {int((s2_dates(START, END, np.random.default_rng(s))[0] - START).astype(int))
              for s in range(60)}
    assert firsts == {0, 1, 2, 3, 4}
    a = s2_dates("2020-03-01", "2020-09-30", np.random.default_rng(5))
    b = s2_dates("2020-03-01", "2020-09-30", np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("revisit", [6, 12])
def test_s1_dates(revisit):
    d = s1_dates(START, END, np.random.default_rng(1), revisit_days=revisit)
    assert (np.diff(d) == np.timedelta64(revisit, "D")).all()
    assert START <= d[0] < START + np.timedelta64(revisit, "D") and d[-1] <= END
    assert len(d) in (365 // revisit, 365 // revisit + 1)


def test_date_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(UsageError, match="before start"):
        s2_dates(END, START, rng)
    with pytest.raises(UsageError, match="phase"):
        s2_dates(START, END, rng, phase=5)
    with pytest.raises(UsageError, match="revisit_days"):
        s1_dates(START, END, rng, revisit_days=0)


# -- synthetic clouds ---------------------------------------------------------------------

@pytest.mark.parametrize("probability, mean_cover", [(0.4, 0.5), (0.7, 0.25)])
def test_cloud_statistics_match_request(probability, mean_cover):
    n = 1500
    masks = random_cloud_masks(n, 24, 24, np.random.default_rng(3), cloud_probability=probability,
                               mean_cover=mean_cover, correlation_px=4)
    assert masks.shape == (n, 24, 24) and masks.dtype == bool
    cover = masks.reshape(n, -1).mean(1)
    cloudy = cover > 0
    # binomial and CLT bounds (4 standard errors); a Beta(2m, 2(1-m)) cover has
    # variance m (1 - m) / 3
    assert abs(cloudy.mean() - probability) < 4 * math.sqrt(probability * (1 - probability) / n)
    se_cover = math.sqrt(mean_cover * (1 - mean_cover) / 3 / cloudy.sum())
    assert abs(cover[cloudy].mean() - mean_cover) < 4 * se_cover + 1 / 576
    assert abs(masks.mean() - probability * mean_cover) < 0.03


def _lag_correlation(masks: np.ndarray, lag: int) -> float:
    m = masks.astype(float)
    a, b = m[:, :, :-lag].reshape(len(m), -1), m[:, :, lag:].reshape(len(m), -1)
    a, b = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
    denom = np.sqrt((a**2).sum(1) * (b**2).sum(1))
    ok = denom > 0
    return float(((a * b).sum(1)[ok] / denom[ok]).mean())


def test_larger_correlation_length_gives_larger_clouds():
    kw = dict(cloud_probability=1.0, mean_cover=0.5)
    corr = {c: _lag_correlation(random_cloud_masks(60, 64, 64, np.random.default_rng(4),
                                                   correlation_px=c, **kw), lag=6)
            for c in (2, 8)}
    assert corr[8] > corr[2] + 0.3
    assert corr[2] < 0.3


def test_cloud_masks_reproducible_and_validated():
    a = random_cloud_masks(20, 16, 16, np.random.default_rng(9))
    b = random_cloud_masks(20, 16, 16, np.random.default_rng(9))
    np.testing.assert_array_equal(a, b)
    with pytest.raises(UsageError, match="cloud_probability"):
        random_cloud_masks(2, 8, 8, np.random.default_rng(0), cloud_probability=1.5)


def test_cloud_shadows_are_displaced_clouds():
    clouds = np.zeros((1, 40, 40), dtype=bool)
    clouds[0, 20:30, 20:30] = True
    shadows = cloud_shadows(clouds, np.random.default_rng(0), max_shift_px=6)
    assert shadows.any() and not (shadows & clouds).any()
    rows, cols = np.nonzero(shadows[0])
    assert rows.min() < 20 and cols.min() < 20  # to the north-west of the cloud
    assert rows.max() < 30 and cols.max() < 30


# -- transplanted real clouds ---------------------------------------------------------------

def test_transplant_preserves_cloud_fraction_on_average():
    source = random_cloud_masks(40, 64, 64, np.random.default_rng(11), cloud_probability=0.6)
    for size in (24, 100):  # crops of a larger source, tiling of a smaller one
        out = transplant_masks(source, 1500, size, size, np.random.default_rng(12))
        assert out.shape == (1500, size, size) and out.dtype == bool
        assert abs(out.mean() - source.mean()) < 0.03


def test_transplant_checks_input():
    rng = np.random.default_rng(0)
    with pytest.raises(DataError, match="0/1"):
        transplant_masks(np.full((2, 8, 8), 3, dtype=np.uint8), 4, 8, 8, rng)
    with pytest.raises(DataError, match="shape"):
        transplant_masks(np.zeros((8, 8), dtype=bool), 4, 8, 8, rng)


def test_transplant_real_eolearn_masks(shared_data):
    path = shared_data / "eolearn_testeopatch/example_data/TestEOPatch/mask/CLM.npy"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    real = np.load(path, allow_pickle=False)
    assert real.shape[0] == 68 and real.shape[-1] == 1
    source_fraction = real.astype(bool).mean()
    out = transplant_masks(real, 800, 32, 32, np.random.default_rng(1))
    assert out.shape == (800, 32, 32)
    assert abs(out.mean() - source_fraction) < 0.04
    per_date = out.reshape(800, -1).mean(1)
    assert (per_date == 0).mean() > 0.2 and (per_date == 1).mean() > 0.1  # real clear/overcast


# -- noise --------------------------------------------------------------------------------

def test_s2_noise_standard_deviation_and_gradient():
    n = 1_000_000
    rho = torch.full((n,), 0.3, dtype=torch.float64, requires_grad=True)
    noisy = s2_noise(rho, torch.Generator().manual_seed(0))
    expected = math.sqrt((0.3 * 0.02) ** 2 + 0.005**2)
    assert abs(noisy.mean().item() - 0.3) < 5 * expected / math.sqrt(n)
    assert abs(noisy.std().item() - expected) < 5 * expected / math.sqrt(2 * n)
    additive = s2_noise(torch.zeros(n, dtype=torch.float64), torch.Generator().manual_seed(1),
                        additive_std=0.01, multiplicative_std=0.05)
    assert abs(additive.std().item() - 0.01) < 5 * 0.01 / math.sqrt(2 * n)
    noisy.sum().backward()
    assert abs(rho.grad.mean().item() - 1.0) < 5 * 0.02 / math.sqrt(n)
    again = s2_noise(rho.detach(), torch.Generator().manual_seed(0))
    torch.testing.assert_close(again, noisy.detach())


@pytest.mark.parametrize("looks", [4.4, 1.0])
def test_speckle_mean_one_variance_one_over_looks(looks):
    n = 1_000_000
    sigma0 = torch.full((n,), 0.05, dtype=torch.float64)
    speckle = s1_speckle(sigma0, torch.Generator().manual_seed(2), looks=looks) / 0.05
    assert (speckle > 0).all()
    var = 1.0 / looks
    fourth = 3.0 * (looks + 2.0) / looks**3  # 4th central moment of Gamma(L, 1/L)
    assert abs(speckle.mean().item() - 1.0) < 5 * math.sqrt(var / n)
    assert abs(speckle.var().item() - var) < 5 * math.sqrt((fourth - var**2) / n)


def test_speckle_reproducible_differentiable_and_float32():
    x = torch.rand(4, 5, requires_grad=True)
    a = s1_speckle(x, torch.Generator().manual_seed(3))
    b = s1_speckle(x, torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b)
    assert a.dtype == torch.float32 and a.shape == (4, 5)
    a.sum().backward()
    torch.testing.assert_close(x.grad, (a / x).detach())
    with pytest.raises(UsageError, match="looks"):
        s1_speckle(x, torch.Generator(), looks=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_noise_on_cuda_with_cpu_generator():
    x = torch.full((1000,), 0.2, device="cuda")
    assert s2_noise(x, torch.Generator().manual_seed(0)).device.type == "cuda"
    assert s1_speckle(x, torch.Generator().manual_seed(0)).device.type == "cuda"
