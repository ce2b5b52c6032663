"""The on-disk scene cache returns exactly the simulated scene, and survives a corrupt file."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from releo_bench.physics.scene import SceneConfig, simulate_scene
from releo_bench.physics.scene_cache import cached_scene, scene_key, scenes_dir


def _equal(a, b) -> None:
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, torch.Tensor):
            assert x.dtype == y.dtype and torch.equal(x, y), f.name
        elif isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and np.array_equal(x, y), f.name
        elif isinstance(x, dict) and f.name != "metadata":
            assert x.keys() == y.keys(), f.name
            for k in x:
                np.testing.assert_array_equal(np.asarray(x[k]), np.asarray(y[k]), err_msg=k)
        else:
            assert x == y or f.name == "metadata", f.name


def test_cached_scene_equals_a_fresh_simulation(tmp_path, monkeypatch):
    monkeypatch.setenv("RELEO_CACHE_DIR", str(tmp_path))
    cfg = SceneConfig(size=16, n_fields=4)
    calls = []

    def simulate(seed, config):
        calls.append(seed)
        return simulate_scene(seed, config)

    first = cached_scene(5, cfg, simulate)
    second = cached_scene(5, cfg, simulate)  # from disk
    assert calls == [5]
    _equal(first, second)
    assert second.metadata.keys() == first.metadata.keys()
    # another config or seed is another file
    assert scene_key(5, cfg) != scene_key(6, cfg) != scene_key(5, SceneConfig(size=16, n_fields=5))
    # a truncated file is ignored and rewritten
    path = scenes_dir() / f"{scene_key(5, cfg)}.npz"
    path.write_bytes(path.read_bytes()[:100])
    third = cached_scene(5, cfg, simulate)
    assert calls == [5, 5]
    _equal(first, third)
