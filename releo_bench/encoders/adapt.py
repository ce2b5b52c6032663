"""The harness side of the encoder contract: prepare a batch the way an encoder declared.

``prepare_batch`` selects and reorders bands, converts units and applies the declared
normalisation. ``encode_batch`` is the sealed call used everywhere: prepare, then encode,
then check the output shape against the metadata.
"""

from __future__ import annotations

import re

import numpy as np
import torch

from ..batch import EOBatch, Modality
from ..errors import BandError, DataError, ReleoError
from ..units import check_unit, convert
from .base import Embeddings, Encoder, EncoderMeta, ModalityInput

_S2_BAND = re.compile(r"^B0*(\d{1,2})(A?)$", re.IGNORECASE)


def canonical_band(name: str) -> str:
    """Canonical band spelling: ``B02``/``b2`` -> ``B2``, ``B08A``/``b8a`` -> ``B8A``; others as given.

    Data sets spell Sentinel-2 bands differently (EuroSAT ``B08A``, THEIA ``B8A``, ESA
    ``B02``); matching on the canonical form avoids a whole class of silent mismatches.
    """
    m = _S2_BAND.match(name.strip())
    if m:
        return f"B{int(m.group(1))}{m.group(2).upper()}"
    return name.strip()


def _prepare_modality(name: str, mod: Modality, spec: ModalityInput, encoder: str) -> Modality:
    have = {canonical_band(b): i for i, b in enumerate(mod.bands)}
    want = [canonical_band(b) for b in spec.bands]
    missing = [b for b in want if b not in have]
    if missing:
        raise BandError(f"encoder {encoder!r} needs bands {missing} of modality {name!r}, which "
                        f"the data does not have (data bands: {list(mod.bands)}; expected, in "
                        f"order: {list(spec.bands)})")
    order = [have[b] for b in want]
    values = mod.values[:, :, order]
    units = [mod.units[i] for i in order]
    out = torch.empty_like(values)
    for j, (band, src, dst) in enumerate(zip(spec.bands, units, spec.units)):
        where = f"modality {name!r}, band {band!r}"
        check_unit(src, where=where + " (data)")
        out[:, :, j] = convert(values[:, :, j], src, dst, where=where)
    if spec.mean is not None and spec.std is not None:
        mean = torch.tensor(spec.mean, dtype=out.dtype, device=out.device).view(1, 1, -1, 1, 1)
        std = torch.tensor(spec.std, dtype=out.dtype, device=out.device).view(1, 1, -1, 1, 1)
        out = (out - mean) / std
    # padded / masked steps keep finite values so no NaN leaks into an encoder
    out = torch.where(torch.isfinite(out), out, torch.zeros_like(out))
    return Modality(out, mod.dates, mod.mask, tuple(spec.bands), tuple(spec.units))


def prepare_batch(batch: EOBatch, meta: EncoderMeta) -> EOBatch:
    """Return the batch as the encoder declared it wants it (only its modalities)."""
    prepared: dict[str, Modality] = {}
    for name, spec in meta.modalities.items():
        if name not in batch.modalities:
            if spec.required:
                raise BandError(f"encoder {meta.name!r} needs modality {name!r}; the data has "
                                f"{sorted(batch.modalities)}")
            continue
        prepared[name] = _prepare_modality(name, batch.modalities[name], spec, meta.name)
    return EOBatch(prepared, batch.sample_ids, batch.extras)


def tile_pixels(batch: EOBatch, size: int) -> EOBatch:
    """Pixel samples (1 x 1: no spatial context in the task) for a patch encoder: each pixel
    repeated into a ``size x size`` patch (values and mask). Patches of 2 .. size-1 px are left
    as they are (and refused): tiling would invent context a real neighbourhood should give."""
    if size <= 1 or any(m.values.shape[-2:] != (1, 1) for m in batch.modalities.values()):
        return batch
    tiled = {name: Modality(m.values.expand(*m.values.shape[:-2], size, size).contiguous(),
                            m.dates, m.mask.expand(*m.mask.shape[:-2], size, size).contiguous(),
                            m.bands, m.units)
             for name, m in batch.modalities.items()}
    return EOBatch(tiled, batch.sample_ids, batch.extras)


def encode_batch(encoder: Encoder, batch: EOBatch) -> Embeddings:
    """Prepare ``batch`` for ``encoder``, encode it and check the result against the metadata."""
    meta = encoder.meta
    batch = prepare_batch(batch, meta)
    batch = tile_pixels(batch, meta.min_patch_size)
    smallest = min(m.values.shape[-1] for m in batch.modalities.values())
    if smallest < meta.min_patch_size:
        raise DataError(f"encoder {meta.name!r} needs patches of at least {meta.min_patch_size} px,"
                        f" the data has {smallest} px")
    with torch.no_grad():
        emb = encoder.encode(batch.to(encoder.device))
    feats = emb.features
    n = len(batch)
    expect = (n, *meta.embedding_shape) if meta.output == "pooled" else None
    if meta.output == "pooled" and tuple(feats.shape) != expect:
        raise ReleoError(f"encoder {meta.name!r} returned {tuple(feats.shape)}, its metadata "
                         f"declares {expect}")
    if meta.output == "per_date":
        if feats.ndim != 2 + len(meta.embedding_shape) or feats.shape[0] != n or \
                tuple(feats.shape[2:]) != meta.embedding_shape or emb.time_mask is None:
            raise ReleoError(f"encoder {meta.name!r} returned {tuple(feats.shape)} per-date "
                             f"features; expected [B, T, {meta.embedding_shape}] and a time_mask")
    if not torch.isfinite(feats).all():
        raise ReleoError(f"encoder {meta.name!r} returned non-finite embeddings")
    return Embeddings(feats.detach().float().cpu(),
                      None if emb.time_mask is None else emb.time_mask.cpu(), emb.time_modality)


def pool_time(features: np.ndarray, time_mask: np.ndarray) -> np.ndarray:
    """Masked mean over the time axis of per-date features ``[N, T, ...]``."""
    w = time_mask.astype(np.float64)
    w = w.reshape(w.shape + (1,) * (features.ndim - 2))
    return (features * w).sum(axis=1) / np.maximum(w.sum(axis=1), 1.0)
