"""Content hashes used to key caches and to pin data versions in results."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np


def hash_arrays(*arrays: np.ndarray) -> str:
    """sha256 over dtype, shape and bytes of each array (order matters)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def hash_batch(batch: Any) -> str:
    """Content hash of an :class:`~releo_bench.batch.EOBatch` (values, dates, masks, bands, units)."""
    h = hashlib.sha256()
    for name in sorted(batch.modalities):
        m = batch.modalities[name]
        h.update(name.encode())
        h.update(json.dumps([list(m.bands), list(m.units)]).encode())
        h.update(hash_arrays(m.values.detach().cpu().numpy(),
                             m.dates.astype("datetime64[D]"),
                             m.mask.cpu().numpy()).encode())
    for name in sorted(batch.extras):
        h.update(name.encode())
        h.update(hash_arrays(np.asarray(batch.extras[name])).encode())
    return h.hexdigest()


def hash_json(obj: Any) -> str:
    """sha256 of a canonical JSON rendering (sorted keys) of ``obj``."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
