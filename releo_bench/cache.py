"""On-disk embedding cache, keyed by content hashes, resumable, written atomically.

Key = sha256 of (encoder name, version, options, weights sha256, harness version) and
(task name, version, split, data content hash). Extraction proceeds in fixed-size chunks;
each finished chunk is written atomically (temporary file + rename), so an interrupted run
leaves only whole chunks behind and the next run resumes from them. When every chunk is
there the embeddings are assembled into one file and a manifest is written last: its
presence is what marks an entry complete.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .encoders.base import Embeddings
from .hashing import hash_json
from .results import atomic_write_text

CACHE_FORMAT = 1
# Bump when the harness changes what reaches an encoder (unit conversion, band matching...).
HARNESS_VERSION = "1"


def default_cache_dir() -> Path:
    """``$RELEO_CACHE_DIR`` or the platform's user cache directory."""
    env = os.environ.get("RELEO_CACHE_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("releo-bench")) / "embeddings"


def _save_npy_atomic(path: Path, array: np.ndarray) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load_npy(path: Path) -> np.ndarray:
    return np.load(path, allow_pickle=False)


@dataclass(frozen=True)
class CachedEmbeddings:
    features: np.ndarray
    time_mask: np.ndarray | None
    key: str
    hit: bool  # True when nothing had to be computed
    resumed_chunks: int  # chunks reused from an interrupted extraction
    computed_chunks: int


def _pad_time(arrays: list[np.ndarray], fill: Any) -> np.ndarray:
    """Concatenate ``[n_i, T_i, ...]`` arrays along axis 0, padding T to the largest."""
    t = max(a.shape[1] for a in arrays)
    out = []
    for a in arrays:
        if a.shape[1] < t:
            pad = [(0, 0), (0, t - a.shape[1])] + [(0, 0)] * (a.ndim - 2)
            a = np.pad(a, pad, constant_values=fill)
        out.append(a)
    return np.concatenate(out, axis=0)


class EmbeddingCache:
    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()

    @staticmethod
    def make_key(encoder_identity: dict[str, Any], data_identity: dict[str, Any]) -> str:
        return hash_json({"format": CACHE_FORMAT, "harness": HARNESS_VERSION,
                          "encoder": encoder_identity, "data": data_identity})

    def entry_dir(self, key: str) -> Path:
        return self.root / key[:2] / key

    def is_complete(self, key: str) -> bool:
        return (self.entry_dir(key) / "manifest.json").is_file()

    def load(self, key: str) -> CachedEmbeddings:
        d = self.entry_dir(key)
        manifest = json.loads((d / "manifest.json").read_text())
        mask = _load_npy(d / "time_mask.npy") if manifest["has_time_mask"] else None
        return CachedEmbeddings(_load_npy(d / "features.npy"), mask, key, True, 0, 0)

    def get_or_compute(self, key: str, n_samples: int, chunk_size: int,
                       compute: Callable[[int, int], Embeddings], *,
                       describe: dict[str, Any] | None = None,
                       on_chunk: Callable[[int], None] | None = None) -> CachedEmbeddings:
        """Return embeddings for ``n_samples``, computing missing chunks with ``compute(start, stop)``.

        ``on_chunk(n)`` is called with the number of samples of each finished chunk (progress).
        """
        if self.is_complete(key):
            if on_chunk is not None:
                on_chunk(n_samples)
            return self.load(key)
        d = self.entry_dir(key)
        chunks_dir = d / "chunks"
        chunks_dir.mkdir(parents=True, exist_ok=True)
        plan = {"n_samples": n_samples, "chunk_size": chunk_size}
        plan_file = d / "plan.json"
        if plan_file.is_file() and json.loads(plan_file.read_text()) != plan:
            shutil.rmtree(chunks_dir)  # a different chunking cannot be resumed
            chunks_dir.mkdir(parents=True)
        atomic_write_text(plan_file, json.dumps(plan))

        feats, masks = [], []
        resumed = computed = 0
        for i, start in enumerate(range(0, n_samples, chunk_size)):
            stop = min(start + chunk_size, n_samples)
            f_path = chunks_dir / f"{i:06d}.features.npy"
            m_path = chunks_dir / f"{i:06d}.time_mask.npy"
            done = chunks_dir / f"{i:06d}.done"
            if done.is_file():
                f = _load_npy(f_path)
                m = _load_npy(m_path) if m_path.is_file() else None
                resumed += 1
            else:
                emb = compute(start, stop)
                f = emb.features.numpy().astype(np.float32, copy=False)
                m = None if emb.time_mask is None else emb.time_mask.numpy().astype(bool)
                if f.shape[0] != stop - start:
                    raise ValueError(f"chunk {start}:{stop} returned {f.shape[0]} rows")
                _save_npy_atomic(f_path, f)
                if m is not None:
                    _save_npy_atomic(m_path, m)
                atomic_write_text(done, "ok")  # written last: the chunk is whole
                computed += 1
            feats.append(f)
            masks.append(m)
            if on_chunk is not None:
                on_chunk(stop - start)

        has_mask = masks[0] is not None
        features = _pad_time(feats, 0.0) if has_mask else np.concatenate(feats, axis=0)
        time_mask = _pad_time(masks, False) if has_mask else None  # type: ignore[arg-type]
        _save_npy_atomic(d / "features.npy", features)
        if time_mask is not None:
            _save_npy_atomic(d / "time_mask.npy", time_mask)
        manifest = {"format": CACHE_FORMAT, "key": key, "shape": list(features.shape),
                    "has_time_mask": has_mask, "describe": describe or {}}
        atomic_write_text(d / "manifest.json", json.dumps(manifest, indent=2, default=str))
        shutil.rmtree(chunks_dir, ignore_errors=True)
        plan_file.unlink(missing_ok=True)
        return CachedEmbeddings(features, time_mask, key, False, resumed, computed)
