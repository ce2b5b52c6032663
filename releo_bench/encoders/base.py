"""The encoder contract: a metadata record plus one ``encode`` method.

The encoder *declares* what it expects (bands in order, units, normalisation, temporal mode);
the harness (:mod:`releo_bench.encoders.adapt`) converts units, reorders/selects bands and
normalises before ``encode`` is called. Encoder authors never do that themselves: a wrong band
order or scale is the most common silent bug in EO benchmarks.
"""

from __future__ import annotations

from pathlib import Path

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Mapping, Protocol, runtime_checkable

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

TemporalMode = Literal["series", "single_date", "monthly", "any"]
OutputKind = Literal["pooled", "per_date"]


class ModalityInput(BaseModel):
    """What an encoder expects of one modality, after the harness has prepared it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bands: tuple[str, ...] = Field(min_length=1, description="band names, in the order wanted")
    units: tuple[str, ...] = Field(description="unit of each band, see releo_bench.units")
    mean: tuple[float, ...] | None = Field(None, description="per-band offset subtracted after conversion")
    std: tuple[float, ...] | None = Field(None, description="per-band divisor applied after the offset")
    required: bool = True

    @model_validator(mode="before")
    @classmethod
    def _broadcast_units(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("units"), str):
            data = {**data, "units": (data["units"],) * len(data.get("bands", ()))}
        return data

    @model_validator(mode="after")
    def _lengths(self) -> "ModalityInput":
        n = len(self.bands)
        for field in ("units", "mean", "std"):
            val = getattr(self, field)
            if val is not None and len(val) != n:
                raise ValueError(f"{field} has {len(val)} entries for {n} bands")
        if (self.mean is None) != (self.std is None):
            raise ValueError("give both mean and std, or neither")
        if self.std is not None and any(s <= 0 for s in self.std):
            raise ValueError("std must be positive")
        return self


class WeightsSource(BaseModel):
    """Where an encoder's weights come from; ``kind='none'`` for weight-free baselines."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["none", "local", "url", "hf_hub", "generated"] = "none"
    uri: str | None = None
    revision: str | None = None
    filename: str | None = None
    sha256: str | None = None
    licence: str | None = None


class EncoderMeta(BaseModel):
    """Everything a user and the harness need to know about an encoder, without running it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    version: str
    description: str
    licence: str
    citation: str
    modalities: dict[str, ModalityInput]
    temporal_mode: TemporalMode = "any"
    output: OutputKind = "pooled"
    embedding_shape: tuple[int, ...] = Field(description="per sample (pooled) or per date (per_date)")
    weights: WeightsSource = WeightsSource()
    min_patch_size: int = Field(1, ge=1, description="smallest H = W the encoder accepts")
    date_reference: str | None = Field(None, description="origin of the encoder's date encoding")


@dataclass(frozen=True)
class Embeddings:
    """What ``encode`` returns.

    features: ``[B, *embedding_shape]`` for pooled output, ``[B, T, *embedding_shape]`` for
    per-date output (aligned with the dates of ``time_modality``).
    time_mask: ``[B, T]`` True where a per-date embedding is real (not padding).
    """

    features: torch.Tensor
    time_mask: torch.Tensor | None = None
    time_modality: str | None = None


class Encoder(ABC):
    """Base class of every encoder. Subclasses set :attr:`meta` and implement :meth:`encode`."""

    def __init__(self, *, device: str | torch.device = "cpu", **options: Any) -> None:
        self.device = torch.device(device)
        self.options = dict(options)

    @property
    @abstractmethod
    def meta(self) -> EncoderMeta:
        """The encoder's metadata (may depend on its options, e.g. the bands it uses)."""

    @abstractmethod
    def encode(self, batch: "EOBatch") -> Embeddings:
        """Embed a batch already prepared by the harness (units, band order, normalisation)."""

    def adapt_to(self, data: "TaskData") -> "Encoder":
        """Called by the runner with the task's training split before anything is encoded.

        Encoders with fixed inputs (every pretrained model) return ``self``; baselines whose
        inputs are "whatever the task provides" (``raw``) resolve them here, so that their
        metadata and :meth:`config` name the bands actually used.
        """
        return self

    def config(self) -> dict[str, Any]:
        """Options that change the embeddings: part of the embedding-cache key."""
        return dict(self.options)

    @property
    def weights_sha256(self) -> str | None:
        return self.meta.weights.sha256


@runtime_checkable
class DenseEncoder(Protocol):
    """An encoder that also gives one embedding per pixel of a patch (fully convolutional or
    per-pixel attention, e.g. ALISE). For pixel samples of a task that gives their spatial
    context (:class:`~releo_bench.tasks.base.PixelContext`), the harness encodes the whole
    scenes once with :meth:`encode_dense` and takes each sample's pixel, instead of tiling the
    pixel into an artificial patch.

    ``encode_dense`` gets a batch prepared by the harness (as for ``encode``) and returns
    :class:`Embeddings` whose features are ``[B, *embedding_shape, H, W]`` (pooled output) or
    ``[B, T, *embedding_shape, H, W]`` (per-date output, ``time_mask [B, T]``).
    """

    def encode_dense(self, batch: "EOBatch") -> Embeddings: ...


@runtime_checkable
class Retriever(Protocol):
    """An encoder that predicts some task targets directly, with no probe (``--probe none``).

    ``retrievable`` maps each target name it can predict to the unit it predicts it in (the
    runner only uses the retriever for a task whose target has that name and unit).
    ``retrieve`` gets a batch already prepared by the harness (as for ``encode``), the task's
    :class:`TargetSpec` and its ``target_time`` (``[B]`` datetime64 or None) and returns one
    predictive distribution per sample, deterministically (the same every seed).
    """

    retrievable: Mapping[str, str | None]

    def retrieve(self, batch: "EOBatch", target: "TargetSpec",
                 target_time: "Any | None") -> "Prediction": ...


def retrieval_problem(encoder: Encoder, target: "TargetSpec") -> str | None:
    """Why ``encoder`` cannot retrieve ``target`` directly, or None when it can."""
    if not isinstance(encoder, Retriever):
        return "it predicts no target directly (it is not a Retriever)"
    names = dict(encoder.retrievable)
    if target.outputs is not None or target.name not in names:
        return f"it retrieves only {sorted(names)}, not target {target.name!r}"
    unit = names[target.name]
    if unit is not None and target.unit is not None and unit != target.unit:
        return f"it retrieves {target.name!r} in {unit!r}, the task wants {target.unit!r}"
    return None


class PretrainedEncoder(Encoder):
    """An encoder whose weights are files declared in :attr:`WEIGHTS` (see
    :mod:`releo_bench.weights`); the ``weights`` option points at a local copy."""

    WEIGHTS: ClassVar[tuple["WeightsFile", ...]] = ()

    def config(self) -> dict[str, Any]:
        # where the weights were read from does not change the embeddings: their sha256 is in
        # the cache key (weights_sha256), the path is not
        return {k: v for k, v in self.options.items() if k != "weights"}

    def weights_path(self, index: int = 0) -> "Path":
        """The verified local path of ``WEIGHTS[index]`` (never downloads)."""
        from ..weights import resolve

        return resolve(self.WEIGHTS[index], self.options.get("weights"))


from ..batch import EOBatch  # noqa: E402  (type reference only, avoids a cycle at import)
from ..predictions import Prediction  # noqa: E402
from ..tasks.base import TargetSpec, TaskData  # noqa: E402
from ..weights import WeightsFile  # noqa: E402
