"""Sentinel-2 spectral responses: normalisation, band simulation, agreement with ESA's table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from releo_bench.errors import DataError, UnknownNameError, UsageError
from releo_bench.physics.srf import S2_BAND_TABLE, S2_BANDS, SpectralResponse

ESA_CSV = "S2-SRF_COPE-GSEG-EOPG-TN-15-0007_3.0_{}.csv"
FULL = torch.arange(400, 2501)
# Largest |default - official| band reflectance over the 50 PROSAIL spectra below: 0.79e-3
# (S2A B10); 0.84e-3 (S2B B5) over 200. Per band: docs/physics-s2-s1.md.
DEFAULT_VS_OFFICIAL_TOL = 1e-3


@pytest.fixture(scope="module")
def spectra() -> torch.Tensor:
    """PROSAIL (PROSPECT-D + 4SAIL) canopies from bare soil to dense, 400-2500 nm at 1 nm."""
    prosail = pytest.importorskip("prosail")
    rng = np.random.default_rng(20240601)
    rows = []
    for _ in range(50):
        rows.append(prosail.run_prosail(
            n=rng.uniform(1.2, 2.2), cab=rng.uniform(10, 80), car=rng.uniform(2, 15),
            cbrown=rng.uniform(0, 0.5), cw=rng.uniform(0.005, 0.03), cm=rng.uniform(0.003, 0.012),
            lai=rng.uniform(0, 7), lidfa=rng.uniform(30, 70), hspot=0.1, tts=rng.uniform(20, 60),
            tto=rng.uniform(0, 10), psi=rng.uniform(0, 180), ant=rng.uniform(0, 3),
            prospect_version="D", typelidf=2, rsoil=rng.uniform(0.5, 1.5), psoil=rng.uniform(0, 1)))
    return torch.as_tensor(np.asarray(rows))


def _per_band(diff: torch.Tensor, bands) -> str:
    return " ".join(f"{b}={v:.2e}" for b, v in zip(bands, diff.tolist()))


@pytest.mark.parametrize("sensor", ["s2a", "s2b"])
def test_default_rows_sum_to_one_and_centres_match_table(sensor):
    srf = SpectralResponse.default(sensor)
    assert srf.bands == S2_BANDS and srf.sensor == sensor
    assert srf.wavelengths.dtype == torch.int64 and srf.weights.dtype == torch.float64
    assert srf.weights.shape == (13, len(srf.wavelengths))
    torch.testing.assert_close(srf.weights.sum(1), torch.ones(13, dtype=torch.float64))
    assert (srf.weights.sum(0) > 0).all()  # wavelengths is exactly the support
    centres = torch.tensor([S2_BAND_TABLE[sensor][b][0] for b in S2_BANDS], dtype=torch.float64)
    torch.testing.assert_close(srf.centres, centres, atol=0.05, rtol=0)


def test_flat_spectrum_gives_flat_value():
    srf = SpectralResponse.default("s2b")
    flat = torch.full((3, len(FULL)), 0.37, dtype=torch.float64)
    torch.testing.assert_close(srf.apply(flat), torch.full((3, 13), 0.37, dtype=torch.float64))
    sub = torch.full((len(srf.wavelengths),), 0.2)
    torch.testing.assert_close(srf.apply(sub, spectra_wavelengths=srf.wavelengths),
                               torch.full((13,), 0.2))


def test_apply_picks_columns_in_any_order(spectra):
    srf = SpectralResponse.default("s2a")
    full = srf.apply(spectra)
    perm = torch.randperm(len(FULL), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(srf.apply(spectra[:, perm], spectra_wavelengths=FULL[perm]), full)
    sub = spectra[:, srf.wavelengths - 400]
    torch.testing.assert_close(srf.apply(sub, spectra_wavelengths=srf.wavelengths), full)
    torch.testing.assert_close(srf.apply(sub.float(), srf.wavelengths.double()), full.float())
    batched = srf.apply(spectra.reshape(5, 10, -1))
    assert batched.shape == (5, 10, 13)


def test_apply_errors_name_the_problem():
    srf = SpectralResponse.default("s2a")
    with pytest.raises(DataError, match="must cover 400-2500"):
        srf.apply(torch.zeros(4, 100))
    with pytest.raises(DataError, match="lack .* wavelength"):
        srf.apply(torch.zeros(100), spectra_wavelengths=torch.arange(400, 500))
    with pytest.raises(DataError, match="100 columns but"):
        srf.apply(torch.zeros(100), spectra_wavelengths=torch.arange(400, 450))


def test_apply_is_differentiable():
    srf = SpectralResponse.default("s2a", bands=["B4", "B8"])
    x = torch.rand(2, len(FULL), dtype=torch.float64, requires_grad=True)
    srf.apply(x)[:, 1].sum().backward()
    expected = torch.zeros(len(FULL), dtype=torch.float64)
    expected[srf.wavelengths - 400] = srf.weights[1]
    torch.testing.assert_close(x.grad, expected.expand(2, -1))


def test_select_and_band_spellings():
    full = SpectralResponse.default("s2a")
    sel = full.select(["B08", "b8a", "B4"])
    assert sel.bands == ("B8", "B8A", "B4")
    x = torch.rand(len(FULL), dtype=torch.float64)
    torch.testing.assert_close(sel.apply(x), full.apply(x)[[7, 8, 3]])
    # B4 starts at 664.6 - 15.5 = 649.1 nm (40 % of bin 649), B8 ends at 832.8 + 53 = 885.8 nm
    assert sel.wavelengths.min() == 649 and sel.wavelengths.max() == 886
    with pytest.raises(UnknownNameError, match="B13"):
        full.select(["B13"])
    with pytest.raises(UsageError, match="s2a"):
        SpectralResponse.default("landsat8")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_apply_on_cuda():
    srf = SpectralResponse.default("s2a")
    spectra = torch.rand(8, len(FULL), dtype=torch.float64)
    out = srf.apply(spectra.cuda(), spectra_wavelengths=FULL.cuda())
    torch.testing.assert_close(out.cpu(), srf.apply(spectra))


@pytest.mark.parametrize("sensor", ["s2a", "s2b"])
def test_default_close_to_pyrsr_copy_of_esa(sensor, spectra):
    pytest.importorskip("pyrsr")
    ref = SpectralResponse.from_pyrsr(sensor)
    torch.testing.assert_close(ref.weights.sum(1), torch.ones(13, dtype=torch.float64))
    diff = (SpectralResponse.default(sensor).apply(spectra) - ref.apply(spectra)).abs().amax(0)
    assert (diff < DEFAULT_VS_OFFICIAL_TOL).all(), _per_band(diff, S2_BANDS)


@pytest.mark.parametrize("sensor", ["S2A", "S2B"])
def test_default_vs_official_esa_csv(sensor, spectra, shared_data):
    official = SpectralResponse.from_esa_csv(shared_data / "s2_srf" / ESA_CSV.format(sensor))
    assert official.sensor == sensor.lower() and official.bands == S2_BANDS
    assert official.wavelengths.min() >= 400 and official.wavelengths.max() <= 2500
    torch.testing.assert_close(official.weights.sum(1), torch.ones(13, dtype=torch.float64))
    diff = (SpectralResponse.default(sensor).apply(spectra) - official.apply(spectra)).abs().amax(0)
    print(f"\n{sensor} max |default - official| over {len(spectra)} PROSAIL spectra: "
          f"{_per_band(diff, S2_BANDS)}")
    assert (diff < DEFAULT_VS_OFFICIAL_TOL).all(), _per_band(diff, S2_BANDS)


@pytest.mark.parametrize("sensor", ["S2A", "S2B"])
def test_official_csv_matches_pyrsr(sensor, spectra, shared_data):
    pytest.importorskip("pyrsr")
    official = SpectralResponse.from_esa_csv(shared_data / "s2_srf" / ESA_CSV.format(sensor),
                                             sensor=sensor.lower())
    ref = SpectralResponse.from_pyrsr(sensor.lower())
    # pyrsr's copy drops response values below about 0.004 in the far tails
    diff = (official.apply(spectra) - ref.apply(spectra)).abs().amax(0)
    assert (diff < 5e-5).all(), _per_band(diff, S2_BANDS)


def _write_esa_like(path, sensor="S2A", drop=None, bad=None):
    wl = np.arange(300, 2601)
    df = pd.DataFrame({"SR_WL": wl})
    for band, (centre, width) in S2_BAND_TABLE["s2a"].items():
        df[f"{sensor}_SR_AV_{band}"] = (np.abs(wl - centre) <= width / 2).astype(float)
    if drop:
        df = df.drop(columns=[drop])
    if bad:
        df[bad] = df[bad].astype(object)
        df.loc[5, bad] = "n/a"
    df.to_csv(path, index=False)
    return path


def test_from_esa_csv_reads_sensor_and_clips(tmp_path):
    srf = SpectralResponse.from_esa_csv(_write_esa_like(tmp_path / "s2b.csv", sensor="S2B"))
    assert srf.sensor == "s2b" and srf.bands == S2_BANDS
    assert srf.wavelengths.min() >= 400 and srf.wavelengths.max() <= 2500
    sub = SpectralResponse.from_esa_csv(tmp_path / "s2b.csv", bands=["B2", "B3"])
    assert sub.bands == ("B2", "B3")


@pytest.mark.parametrize("kwargs, message", [
    ({"drop": "S2A_SR_AV_B8A"}, "S2A_SR_AV_B8A"),
    ({"drop": "SR_WL"}, "SR_WL"),
    ({"bad": "S2A_SR_AV_B4"}, "'S2A_SR_AV_B4', data row 6"),
])
def test_malformed_esa_csv_names_file_and_column(tmp_path, kwargs, message):
    path = _write_esa_like(tmp_path / "broken_srf.csv", **kwargs)
    with pytest.raises(DataError, match="broken_srf.csv") as err:
        SpectralResponse.from_esa_csv(path)
    assert message in str(err.value)


def test_esa_csv_sensor_mismatch_and_missing_file(tmp_path):
    path = _write_esa_like(tmp_path / "a.csv", sensor="S2A")
    with pytest.raises(DataError, match="S2A, not of s2b"):
        SpectralResponse.from_esa_csv(path, sensor="s2b")
    with pytest.raises(DataError, match="no such"):
        SpectralResponse.from_esa_csv(tmp_path / "absent.csv")
    pd.DataFrame({"SR_WL": [400, 401], "other": [0, 1]}).to_csv(tmp_path / "c.csv", index=False)
    with pytest.raises(DataError, match="S2A_SR_AV_B1"):
        SpectralResponse.from_esa_csv(tmp_path / "c.csv")
