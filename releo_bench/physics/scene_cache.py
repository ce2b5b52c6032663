"""On-disk cache of simulated scenes: simulate once per machine, not once per process.

A scene is a pure function of (simulator version, seed, SceneConfig), so it is stored under
the sha256 of those in ``<RELEO_CACHE_DIR or user cache>/scenes/<key>.npz``: plain arrays
(``allow_pickle=False``; dictionaries flattened into ``group/name`` entries, metadata as JSON),
written atomically. A file that does not load cleanly is ignored and rewritten.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .scene import SIMULATOR_VERSION, Scene, SceneConfig

_TENSORS = ("s2_reflectance", "s2_clear", "s2_cloud", "s1", "truth_lai", "truth_cab",
            "truth_ccc", "truth_lai_s1", "soil_moisture_s1")
_ARRAYS = ("s2_dates", "s2_platform", "s1_dates", "s1_incidence_deg", "class_map", "field_id")
_DICTS = ("s2_angles", "phenology")


def scenes_dir() -> Path:
    env = os.environ.get("RELEO_CACHE_DIR")
    if env:
        return Path(env).expanduser() / "scenes"
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("releo-bench", appauthor=False)) / "scenes"


def scene_key(seed: int, config: SceneConfig) -> str:
    ident = {"simulator_version": SIMULATOR_VERSION, "seed": int(seed),
             "config": dataclasses.asdict(config)}
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=list).encode()).hexdigest()


def save_scene(scene: Scene, path: Path) -> None:
    arrays: dict[str, np.ndarray] = {}
    for name in _TENSORS:
        arrays[name] = getattr(scene, name).cpu().numpy()
    for name in _ARRAYS:
        arrays[name] = np.asarray(getattr(scene, name))
    for group in _DICTS:
        for key, value in getattr(scene, group).items():
            arrays[f"{group}/{key}"] = np.asarray(value)
    arrays["metadata_json"] = np.array(json.dumps(scene.metadata, default=str))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".npz")
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_scene(path: Path, seed: int, config: SceneConfig) -> Scene | None:
    """The cached scene, or None when the file is absent, truncated or from an older layout."""
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError):
        return None
    needed = set(_TENSORS) | set(_ARRAYS) | {"metadata_json"}
    if not needed <= set(data):
        return None
    kwargs: dict[str, Any] = {name: torch.from_numpy(data[name]) for name in _TENSORS}
    kwargs.update({name: data[name] for name in _ARRAYS})
    for group in _DICTS:
        kwargs[group] = {k.split("/", 1)[1]: v for k, v in data.items()
                         if k.startswith(group + "/")}
    kwargs["metadata"] = json.loads(str(data["metadata_json"]))
    return Scene(seed=seed, config=config, **kwargs)


def cached_scene(seed: int, config: SceneConfig, simulate) -> Scene:
    """``simulate(seed, config)`` through the on-disk cache."""
    path = scenes_dir() / f"{scene_key(seed, config)}.npz"
    scene = load_scene(path, seed, config) if path.is_file() else None
    if scene is None:
        scene = simulate(seed, config)
        save_scene(scene, path)
    return scene
