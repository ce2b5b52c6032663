"""The harness side of the encoder contract: prepare a batch the way an encoder declared.

``prepare_batch`` selects and reorders bands, converts units and applies the declared
normalisation. ``encode_batch`` is the sealed call used everywhere: prepare, then encode,
then check the output shape against the metadata.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from ..batch import EOBatch, Modality
from ..errors import BandError, DataError, ReleoError
from ..units import check_unit, convert
from .base import DenseEncoder, Embeddings, Encoder, EncoderMeta, ModalityInput

if TYPE_CHECKING:
    from ..tasks.base import PixelContext, TaskData

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
    if not prepared:
        raise BandError(f"encoder {meta.name!r} needs at least one of the modalities "
                        f"{sorted(meta.modalities)}; the data has {sorted(batch.modalities)}")
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


SpatialContext = Literal["scene", "tiled", "none"]


def spatial_context(encoder: Encoder, data: "TaskData") -> SpatialContext:
    """How pixel samples meet a patch encoder: ``scene`` (the task gives the pixels' images and
    the encoder has per-pixel outputs: each pixel keeps its real neighbours), ``tiled`` (no
    context: each pixel repeated into a ``min_patch_size`` patch) or ``none`` (the encoder
    takes pixels, or the samples are patches already)."""
    meta = encoder.meta
    pixels = all(m.values.shape[-2:] == (1, 1) for m in data.batch.modalities.values())
    if meta.min_patch_size <= 1 or not pixels:
        return "none"
    if data.context is not None and isinstance(encoder, DenseEncoder):
        return "scene"
    return "tiled"


def _check_features(meta: EncoderMeta, emb: Embeddings, n: int, trailing: tuple[int, ...] = ()
                    ) -> None:
    feats = emb.features
    what = "dense " if trailing else ""
    if meta.output == "pooled":
        expect = (n, *meta.embedding_shape, *trailing)
        if tuple(feats.shape) != expect:
            raise ReleoError(f"encoder {meta.name!r} returned {what}{tuple(feats.shape)}, its "
                             f"metadata declares {expect}")
    else:
        if feats.ndim != 2 + len(meta.embedding_shape) + len(trailing) or feats.shape[0] != n or \
                tuple(feats.shape[2:]) != (*meta.embedding_shape, *trailing) or \
                emb.time_mask is None:
            raise ReleoError(f"encoder {meta.name!r} returned {what}{tuple(feats.shape)} per-date "
                             f"features; expected [B, T, {meta.embedding_shape}"
                             f"{', H, W' if trailing else ''}] and a time_mask")
    if not torch.isfinite(feats).all():
        raise ReleoError(f"encoder {meta.name!r} returned non-finite embeddings")


def encode_dense_batch(encoder: Encoder, batch: EOBatch) -> Embeddings:
    """Per-pixel embeddings of image patches ``[B, *shape, H, W]`` (or ``[B, T, *shape, H, W]``)
    from an encoder with ``encode_dense``, prepared and checked as in :func:`encode_batch`."""
    meta = encoder.meta
    if not isinstance(encoder, DenseEncoder):
        raise ReleoError(f"encoder {meta.name!r} gives no per-pixel embeddings (encode_dense)")
    batch = prepare_batch(batch, meta)
    sizes = {m.values.shape[-2:] for m in batch.modalities.values()}
    if len(sizes) != 1:
        raise DataError(f"encoder {meta.name!r}: dense encoding needs one grid for all "
                        f"modalities, the data has {sorted(sizes)}")
    (h, w), = sizes
    if min(h, w) < meta.min_patch_size:
        raise DataError(f"encoder {meta.name!r} needs patches of at least {meta.min_patch_size} px,"
                        f" the data has {h} x {w} px")
    with torch.no_grad():
        emb = encoder.encode_dense(batch.to(encoder.device))
    _check_features(meta, emb, len(batch), (h, w))
    return Embeddings(emb.features.detach().float().cpu(),
                      None if emb.time_mask is None else emb.time_mask.cpu(), emb.time_modality)


class SceneEmbeddings:
    """Embeddings of pixel samples taken from their scenes' dense embeddings.

    Each scene is encoded once (kept for the next samples: samples of a split come scene by
    scene); a sample's embedding is its pixel's. Per-date outputs keep a date for a sample
    only where the encoder kept it *and* the sample's own pixel is valid then."""

    def __init__(self, encoder: Encoder, context: "PixelContext", keep_scenes: int = 4) -> None:
        self.encoder = encoder
        self.context = context
        self.keep = max(1, keep_scenes)
        self._dense: dict[int, Embeddings] = {}

    def _scene(self, s: int) -> Embeddings:
        if s not in self._dense:
            if len(self._dense) >= self.keep:
                self._dense.pop(next(iter(self._dense)))
            self._dense[s] = encode_dense_batch(self.encoder, self.context.scenes.index([s]))
        return self._dense[s]

    def __call__(self, start: int, stop: int) -> Embeddings:
        ctx = self.context
        sc, rows, cols = (np.asarray(a)[start:stop] for a in (ctx.scene_index, ctx.rows, ctx.cols))
        feats, tmask, modality = [], [], None
        for s, r, c in zip(sc.tolist(), rows.tolist(), cols.tolist()):
            emb = self._scene(s)
            feats.append(emb.features[0, ..., r, c])
            if emb.time_mask is not None:
                modality = emb.time_modality
                own = ctx.scenes[modality].mask[s, :, r, c].cpu() if modality else True
                tmask.append(emb.time_mask[0] & own)
        features = torch.stack(feats)
        if not tmask:
            return Embeddings(features)
        mask = torch.stack(tmask)
        features = torch.where(mask.view(*mask.shape, *([1] * (features.ndim - 2))), features,
                               torch.zeros_like(features))
        return Embeddings(features, mask, modality)


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
    _check_features(meta, emb, len(batch))
    feats = emb.features
    return Embeddings(feats.detach().float().cpu(),
                      None if emb.time_mask is None else emb.time_mask.cpu(), emb.time_modality)


def pool_time(features: np.ndarray, time_mask: np.ndarray) -> np.ndarray:
    """Masked mean over the time axis of per-date features ``[N, T, ...]``."""
    w = time_mask.astype(np.float64)
    w = w.reshape(w.shape + (1,) * (features.ndim - 2))
    return (features * w).sum(axis=1) / np.maximum(w.sum(axis=1), 1.0)
