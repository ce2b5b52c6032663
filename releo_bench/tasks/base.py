"""The task contract: a metadata record plus data access per split.

A task owns its data, splits, target and metrics. ``load(split)`` returns a :class:`TaskData`:
the EO batch of every sample of the split, the targets, and optional spatial groups (field,
tile, site) used by grouped splits and grouped bootstraps.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..batch import EOBatch
from ..errors import DataError
from ..hashing import hash_batch, hash_arrays

TargetKind = Literal["regression", "classification"]


class TargetSpec(BaseModel):
    """What is predicted: a bounded or unbounded quantity with a unit, or a set of classes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: TargetKind
    name: str
    unit: str | None = None
    range: tuple[float, float] | None = Field(None, description="physical bounds (low, high)")
    class_names: tuple[str, ...] | None = None
    outputs: tuple[str, ...] | None = Field(
        None, description="multi-output regression: the name of each target column (e.g. S2 "
                          "bands); TaskData.target is then [N, len(outputs)]")

    @model_validator(mode="after")
    def _check(self) -> "TargetSpec":
        if self.outputs is not None:
            if self.kind != "regression":
                raise ValueError("only a regression target can have several outputs")
            if not self.outputs or len(set(self.outputs)) != len(self.outputs):
                raise ValueError(f"outputs {self.outputs} must be non-empty and unique")
        if self.kind == "classification" and not self.class_names:
            raise ValueError("a classification target needs class_names")
        if self.kind == "regression" and self.class_names:
            raise ValueError("a regression target has no class_names")
        if self.range is not None and not self.range[0] < self.range[1]:
            raise ValueError(f"range {self.range} must be (low, high) with low < high")
        return self


class DatasetRef(BaseModel):
    """Where a task's data comes from, pinned so two runs can be compared."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    url: str | None = None
    revision: str | None = None
    sha256: str | None = None
    licence: str
    citation: str | None = None


class TaskMeta(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    version: int = Field(ge=1)
    description: str
    dataset: DatasetRef
    licence: str
    splits: tuple[str, ...] = ("train", "val", "test")
    split_design: str = Field(description="how samples are assigned to splits (grouping, seed)")
    target: TargetSpec
    main_score: str
    metrics: tuple[str, ...]
    modalities: tuple[str, ...]
    test_only: bool = Field(False, description="a mock task for the test suite, not a benchmark")

    @model_validator(mode="after")
    def _check(self) -> "TaskMeta":
        if self.main_score not in self.metrics:
            raise ValueError(f"main_score {self.main_score!r} must be one of metrics {self.metrics}")
        for needed in ("train", "test"):
            if needed not in self.splits:
                raise ValueError(f"a task needs a {needed!r} split, it has {self.splits}")
        return self


@dataclass(frozen=True)
class PixelContext:
    """Where pixel samples sit in whole images, so that patch encoders see real neighbours.

    scenes: an :class:`EOBatch` of ``S`` images ``[S, T, C, H, W]`` with the same modalities,
    bands, units and date axes as the samples' batch (sample ``i``'s series is pixel
    ``(rows[i], cols[i])`` of scene ``scene_index[i]``).
    Only for tasks where showing the whole scene leaks nothing about the target (never when
    a target date is hidden in the inputs, as in gap-filling).
    """

    scenes: EOBatch
    scene_index: np.ndarray
    rows: np.ndarray
    cols: np.ndarray

    def __post_init__(self) -> None:
        n_scenes = len(self.scenes)
        shapes = {k: m.values.shape[-2:] for k, m in self.scenes.modalities.items()}
        h, w = next(iter(shapes.values()))
        if len(set(shapes.values())) != 1:
            raise DataError(f"context scenes: modalities have different grids {shapes}")
        for name, v, hi in (("scene_index", self.scene_index, n_scenes), ("rows", self.rows, h),
                            ("cols", self.cols, w)):
            v = np.asarray(v)
            if v.ndim != 1 or len(v) != len(self.scene_index):
                raise DataError(f"context {name}: expected one entry per sample")
            if len(v) and (v.min() < 0 or v.max() >= hi):
                raise DataError(f"context {name}: values must be in [0, {hi}), got "
                                f"[{v.min()}, {v.max()}]")


@dataclass(frozen=True)
class TaskData:
    """One split of a task.

    target: ``[N]`` float for regression, int class index for classification; ``[N, K]`` float
    for a multi-output regression target (``TargetSpec.outputs``, K names).
    groups: ``[N]`` spatial group label per sample (field, tile, site), or None.
    target_time: ``[N]`` datetime64 date the target refers to (per-date targets), or None.
    context: for pixel samples cut from images, the images (see :class:`PixelContext`).
    """

    batch: EOBatch
    target: np.ndarray
    groups: np.ndarray | None = None
    target_time: np.ndarray | None = None
    context: PixelContext | None = None

    def __post_init__(self) -> None:
        n = len(self.batch)
        if len(self.target) != n:
            raise DataError(f"{len(self.target)} targets for {n} samples")
        if np.ndim(self.target) not in (1, 2):
            raise DataError(f"target must be [N] or [N, K], got shape {np.shape(self.target)}")
        for name in ("groups", "target_time"):
            v = getattr(self, name)
            if v is not None and len(v) != n:
                raise DataError(f"{len(v)} {name} for {n} samples")
        if self.context is not None and len(self.context.scene_index) != n:
            raise DataError(f"context locates {len(self.context.scene_index)} samples, the "
                            f"split has {n}")

    def __len__(self) -> int:
        return len(self.batch)

    def check_outputs(self, target: TargetSpec) -> None:
        """Check the target's shape against the spec: ``[N]`` or ``[N, len(outputs)]``."""
        want = 1 if target.outputs is None else 2
        if np.ndim(self.target) != want or (want == 2 and
                                            np.shape(self.target)[1] != len(target.outputs)):
            raise DataError(f"target {target.name!r}: expected shape "
                            f"{'[N]' if want == 1 else f'[N, {len(target.outputs)}]'}, got "
                            f"{np.shape(self.target)}")

    def content_hash(self) -> str:
        """Content hash of inputs, targets and groups: changes whenever the data does."""
        parts = [hash_batch(self.batch), hash_arrays(self.target)]
        if self.groups is not None:
            parts.append(hash_arrays(np.asarray(self.groups).astype(str)))
        if self.target_time is not None:
            parts.append(hash_arrays(np.asarray(self.target_time, dtype="datetime64[D]")))
        if self.context is not None:
            ctx = self.context
            parts += [hash_batch(ctx.scenes), hash_arrays(np.asarray(ctx.scene_index)),
                      hash_arrays(np.asarray(ctx.rows)), hash_arrays(np.asarray(ctx.cols))]
        return hash_arrays(np.frombuffer("".join(parts).encode(), dtype=np.uint8))


class Task(ABC):
    """Base class of every task. Subclasses set :attr:`meta` and implement :meth:`load`."""

    meta: TaskMeta

    @abstractmethod
    def load(self, split: str) -> TaskData:
        """Load one split. Raise :class:`~releo_bench.errors.UsageError` for an unknown split."""

    def check_split(self, split: str) -> None:
        if split not in self.meta.splits:
            raise DataError(f"task {self.meta.name!r} has no split {split!r} (it has "
                            f"{list(self.meta.splits)})")


class LazySplitsTask(Task):
    """A task whose splits are built on first request (``_make``) and kept per instance,
    thread-safely: generated or derived data that is costly to rebuild."""

    def __init__(self) -> None:
        self._splits: dict[str, TaskData] = {}
        self._splits_lock = threading.Lock()

    def load(self, split: str) -> TaskData:
        self.check_split(split)
        with self._splits_lock:
            if split not in self._splits:
                self._splits[split] = self._make(split)
            return self._splits[split]

    @abstractmethod
    def _make(self, split: str) -> TaskData:
        """Build one split."""
