"""Can model M run on task T? The same checks ``run`` makes before encoding, without encoding.

A model is refused on a task, with a message naming what is missing, when the task lacks a
modality the model requires, a band the model needs, or a unit convertible to the model's
(``run`` exits with code 2 and that message). Everything else runs: pixel tasks for patch
models are given their scenes (``scene``) or tiled (``tiled``), per-date targets for pooled
models get the target date (see ``features_for_split``).
"""

from __future__ import annotations

from dataclasses import dataclass

from .encoders.adapt import prepare_batch, spatial_context
from .errors import UsageError
from .registries import ENCODERS, TASKS
from .runner import build_encoder, build_task, check_modalities
from .tasks.base import Task, TaskData


@dataclass(frozen=True)
class Compatibility:
    model: str
    task: str
    problem: str | None  # None: accepted
    spatial_context: str | None = None  # how pixels meet a patch model, when accepted

    @property
    def accepted(self) -> bool:
        return self.problem is None


def check_pair(model: str, task_name: str, device: str = "cpu",
               loaded: "tuple[Task, TaskData] | None" = None) -> Compatibility:
    """Accept or refuse ``model`` on ``task_name`` (reads the task's train split, or takes
    ``loaded``, and prepares two samples; loads no weights). Raises what loading the task
    raises (e.g. a dataset that is not there)."""
    import torch

    task, data = loaded if loaded is not None else (t := build_task(task_name), t.load("train"))
    encoder = build_encoder(model, torch.device(device), {})
    try:
        encoder = encoder.adapt_to(data)
        check_modalities(encoder.meta, task)
        prepare_batch(data.batch.index(slice(0, 2)), encoder.meta)
    except UsageError as exc:
        return Compatibility(model, task_name, str(exc))
    return Compatibility(model, task_name, None, spatial_context(encoder, data))


def all_pairs() -> list[tuple[str, str]]:
    """Every registered model x every registered benchmark task (not the test-only mocks, not
    ``custom``, which needs user data)."""
    tasks = [t for t in TASKS.names() if t != "custom" and not TASKS.get(t).meta.test_only]
    return [(m, t) for m in ENCODERS.names() for t in tasks]


__all__ = ["Compatibility", "check_pair", "all_pairs"]
