"""Pixel samples with their scenes (TaskData.context): patch encoders see real neighbours."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from releo_bench.batch import EOBatch, Modality
from releo_bench.encoders.adapt import SceneEmbeddings, encode_dense_batch, spatial_context
from releo_bench.errors import DataError
from releo_bench.registries import ENCODERS, TASKS
from releo_bench.tasks.base import PixelContext


@pytest.fixture(scope="module")
def lai_test():
    return TASKS.get("lai")().load("test")


def _alise_folder() -> str:
    path = Path(os.environ["RELEO_WEIGHTS_DIR"]) / "malice" / "malice_s2.onnx"
    if not path.is_file():
        pytest.skip(f"MALICE weights not found at {path}")
    return str(path.parent)


def test_samples_are_their_scene_pixels(lai_test):
    ctx = lai_test.context
    assert ctx is not None and len(ctx.scenes) == 2  # two test scenes
    rng = np.random.default_rng(0)
    for i in rng.choice(len(lai_test), 25, replace=False):
        s, r, c = ctx.scene_index[i], ctx.rows[i], ctx.cols[i]
        for name in ("s2", "s1", "angles"):
            sample, scene = lai_test.batch[name], ctx.scenes[name]
            assert torch.equal(sample.values[i, :, :, 0, 0], scene.values[s, :, :, r, c]), name
            assert torch.equal(sample.mask[i, :, 0, 0], scene.mask[s, :, r, c]), name
            same = sample.dates[i] == scene.dates[s]
            assert (same | (np.isnat(sample.dates[i]) & np.isnat(scene.dates[s]))).all(), name


def test_context_modes(lai_test):
    assert spatial_context(ENCODERS.get("raw")(), lai_test) == "none"
    alise = ENCODERS.get("alise")()
    assert spatial_context(alise, lai_test) == "scene"
    gap = TASKS.get("gap-filling")().load("test")  # a hidden date: no context given
    assert gap.context is None and spatial_context(alise, gap) == "tiled"


def test_pixel_embedding_from_its_scene(lai_test):
    enc = ENCODERS.get("alise")(weights=_alise_folder())
    ctx = lai_test.context
    first = np.flatnonzero(ctx.scene_index == 0)[:3]
    got = SceneEmbeddings(enc, ctx)(int(first[0]), int(first[-1]) + 1).features
    dense = encode_dense_batch(enc, ctx.scenes.index([0])).features[0]  # [640, 32, 32]
    for k, i in enumerate(first):
        assert torch.equal(got[k], dense[:, ctx.rows[i], ctx.cols[i]])
    # the neighbours matter: the same pixel tiled (no context) embeds differently
    from releo_bench.encoders.adapt import encode_batch

    tiled = encode_batch(enc, lai_test.batch.index(first)).features
    assert (tiled - got).abs().max() > 1e-2


def test_per_date_mask_follows_the_pixel(lai_test):
    enc = ENCODERS.get("ubarn")(weights=_alise_folder())
    ctx = lai_test.context
    emb = SceneEmbeddings(enc, ctx)(0, 4)
    own = lai_test.batch["s2"].mask[:4, :, 0, 0]
    assert emb.features.shape[:2] == own.shape and emb.features.shape[2] == 64
    assert not (emb.time_mask & ~own).any()  # never a date the pixel itself has under cloud
    assert emb.time_mask.sum() > 0.3 * own.sum()


def test_context_validation():
    v = torch.zeros(1, 2, 1, 4, 4)
    dates = np.array([["2021-01-01", "2021-01-11"]], dtype="datetime64[D]")
    scenes = EOBatch({"s2": Modality(v, dates, torch.ones(1, 2, 4, 4, dtype=torch.bool), ("B4",),
                                     "reflectance")})
    PixelContext(scenes, np.array([0, 0]), np.array([0, 3]), np.array([1, 2]))
    with pytest.raises(DataError, match="rows"):
        PixelContext(scenes, np.array([0]), np.array([4]), np.array([0]))
    with pytest.raises(DataError, match="scene_index"):
        PixelContext(scenes, np.array([1]), np.array([0]), np.array([0]))
