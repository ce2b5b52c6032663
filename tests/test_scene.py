"""The scene simulator: reproducible, physically consistent, written with georeferencing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from releo_bench.cli import main
from releo_bench.physics.scene import SIMULATOR_VERSION, SceneConfig, simulate_scene

SMALL = SceneConfig(size=16, n_fields=5)


@pytest.fixture(scope="module")
def scene():
    return simulate_scene(7, SMALL)


def test_same_seed_same_scene_other_seed_other_scene(scene):
    again = simulate_scene(7, SMALL)
    for name in ("s2_reflectance", "s2_clear", "s1", "truth_lai", "s2_cloud"):
        assert torch.equal(getattr(scene, name), getattr(again, name)), name
    np.testing.assert_array_equal(scene.s2_dates, again.s2_dates)
    other = simulate_scene(8, SMALL)
    assert not torch.equal(scene.truth_lai, other.truth_lai)
    assert scene.version == SIMULATOR_VERSION


def test_shapes_dates_and_truth(scene):
    t2, t1 = len(scene.s2_dates), len(scene.s1_dates)
    assert scene.s2_reflectance.shape == (t2, 12, 16, 16) and scene.s1.shape == (t1, 2, 16, 16)
    assert scene.s2_cloud.shape == (t2, 16, 16) and scene.truth_lai.shape == (t2, 16, 16)
    steps = np.diff(scene.s2_dates.astype("datetime64[D]").astype(int))
    assert (steps == 5).all() and 70 <= t2 <= 74  # a year of the combined S2A + S2B revisit
    assert set(np.diff(scene.s1_dates.astype("datetime64[D]").astype(int))) == {SMALL.s1_revisit_days}
    assert set(scene.s2_platform) == {"s2a", "s2b"}
    torch.testing.assert_close(scene.truth_ccc, scene.truth_lai * scene.truth_cab)
    assert (scene.truth_lai >= 0).all() and scene.truth_lai.max() > 1.0
    assert ((scene.s2_clear >= 0) & (scene.s2_clear <= 1)).all()
    assert set(np.unique(scene.class_map)) <= set(range(len(scene.class_names)))
    # within-field variability: pixels of one field do not share one LAI
    f0 = scene.field_id == scene.field_id[0, 0]
    assert scene.truth_lai.max(dim=0).values[torch.as_tensor(f0)].std() > 0


def test_reflectance_follows_lai(scene):
    """Clear-sky NIR (B8) rises and red (B4) falls with LAI, pixel by pixel and date by date."""
    lai = scene.truth_lai.reshape(-1).numpy()
    b4 = scene.s2_clear[:, 3].reshape(-1).numpy()
    b8 = scene.s2_clear[:, 7].reshape(-1).numpy()
    from scipy.stats import spearmanr
    assert spearmanr(lai, b8).statistic > 0.6
    assert spearmanr(lai, b4).statistic < -0.6


def test_clouds_and_noise(scene):
    cloud = scene.s2_cloud[:, None].expand_as(scene.s2_reflectance)
    diff = (scene.s2_reflectance - scene.s2_clear)
    clear_rel = (diff[~cloud].abs() / (scene.s2_clear[~cloud] + 0.01)).median()
    assert clear_rel < 0.05  # noise only: a few percent
    if cloud.any():
        blue = scene.s2_reflectance[:, 1][scene.s2_cloud]
        assert blue.mean() > 0.3  # clouds are bright
    frac = scene.s2_cloud.float().mean().item()
    assert 0.05 < frac < 0.7


def test_s1_backscatter_rises_with_lai(scene):
    from scipy.stats import spearmanr
    vh = scene.s1[:, 1].reshape(-1).numpy()
    lai = scene.truth_lai_s1.reshape(-1).numpy()
    assert spearmanr(lai, vh).statistic > 0.3
    assert (scene.s1[:, 1] < scene.s1[:, 0]).float().mean() > 0.9  # VH below VV


def test_cli_writes_georeferenced_scene(tmp_path):
    import pandas as pd
    import rasterio

    out = tmp_path / "scene"
    assert main(["simulate", "scene", "--seed", "3", "--out", str(out), "--size", "16"]) == 0
    meta = json.loads((out / "scene.json").read_text())
    assert meta["simulator_version"] == SIMULATOR_VERSION and meta["seed"] == 3
    ref = simulate_scene(3, SceneConfig(size=16))
    with rasterio.open(out / "s2_l2a.tif") as src:
        assert src.crs.to_epsg() == 32631 and src.res == (10.0, 10.0)
        assert src.transform.c == 360000.0 and src.transform.f == 4830000.0
        assert src.descriptions[0] == f"{ref.s2_dates[0]}_B1"
        dn = src.read()
    np.testing.assert_allclose(dn.reshape(ref.s2_reflectance.shape) / 10000.0,
                               ref.s2_reflectance.numpy(), atol=0.5e-4 + 1e-7)
    truth = pd.read_parquet(out / "truth_pixels.parquet")
    assert len(truth) == len(ref.s2_dates) * 256
    np.testing.assert_allclose(truth["lai"].to_numpy(), ref.truth_lai.numpy().reshape(-1), rtol=1e-6)
    assert main(["simulate", "scene", "--seed", "3", "--out", str(out), "--size", "4"]) == 2


def test_real_cloud_masks_can_be_transplanted(shared_data, tmp_path):
    clm = shared_data / "eolearn_testeopatch/example_data/TestEOPatch/mask/CLM.npy"
    real = np.load(clm, allow_pickle=False)
    s = simulate_scene(7, SMALL, real_cloud_masks=real)
    assert s.metadata["clouds"] == "transplanted real masks"
    frac_real = (real > 0).mean()
    assert abs(s.s2_cloud.float().mean().item() - frac_real) < 0.15
    # observations under the transplanted clouds are the bright cloud blend
    assert s.s2_reflectance[:, 1][s.s2_cloud].mean() > s.s2_reflectance[:, 1][~s.s2_cloud].mean() + 0.1
    out = tmp_path / "real"
    assert main(["simulate", "scene", "--seed", "7", "--size", "16", "--out", str(out), "--cloud-masks", str(clm)]) == 0
    assert json.loads((out / "scene.json").read_text())["clouds"] == "transplanted real masks"
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((3, 4)))
    assert main(["simulate", "scene", "--seed", "7", "--size", "16", "--out", str(out), "--cloud-masks", str(bad)]) == 2
