"""``results.json``: the schema-versioned record of one run, and its atomic writer.

It is the source of truth; MLflow receives a copy. The JSON Schema is generated from these
models (``releo-bench schema``) and committed as ``docs/results.schema.json``; a test checks
the two agree. Bump :data:`SCHEMA_VERSION` (major for breaking changes) when a field changes.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = "1.3"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelRecord(_Strict):
    name: str
    version: str
    weights_sha256: str | None = Field(description="sha256 of the weights file; null for weight-free encoders")
    config: dict[str, Any] = Field(default_factory=dict, description="encoder options")
    embedding_shape: list[int]
    output: Literal["pooled", "per_date"]
    spatial_context: Literal["scene", "tiled", "none"] = Field(
        "none", description="how pixel samples met a patch encoder: 'scene' = each pixel's "
                            "embedding from its whole scene (real neighbours), 'tiled' = the pixel "
                            "repeated into a patch (no context), 'none' = not applicable")


class TaskRecord(_Strict):
    name: str
    version: int
    data_hash: dict[str, str] = Field(description="content hash of each split used")
    target: str
    target_kind: Literal["regression", "classification"]
    main_score: str
    outputs: list[str] | None = Field(None, description="multi-output regression: the output names (e.g. S2 bands); metrics are then reported as '<metric>' = mean over outputs, '<metric>/<output>' per output, plus vector metrics such as 'sam'")
    n_samples: dict[str, int]
    train_task: dict[str, Any] | None = Field(None, description="transfer runs: the task (name, version) whose train/val splits trained the probe; the test split is this task's")


class ProbeRecord(_Strict):
    name: str
    params: dict[str, Any]
    fitted_params: list[dict[str, Any]] = Field(description="values chosen during fit, per seed")


class MetricSummary(_Strict):
    mean: float = Field(description="mean over seeds")
    ci_low: float = Field(description="lower bound of the 95 % Student-t interval of the mean over seeds")
    ci_high: float
    std: float = Field(description="sample standard deviation over seeds")
    n: int = Field(description="number of seeds")
    seed_boot_low: float | None = Field(None, description="95 % percentile-bootstrap interval over seeds (narrow with few seeds)")
    seed_boot_high: float | None = None
    sample_ci_low: float | None = Field(None, description="95 % bootstrap interval of the seed mean over test samples (or test groups)")
    sample_ci_high: float | None = None
    sample_ci_grouped: bool = Field(False, description="True when the test bootstrap resampled whole spatial groups")
    n_boot: int = Field(0, description="valid bootstrap replicates behind sample_ci_*")
    direction: Literal["higher", "lower", "zero", "target"]
    ideal: float | None = Field(None, description="best value for direction 'zero' or 'target'")
    family: Literal["accuracy", "calibration", "proper_score"]


class SeedResult(_Strict):
    seed: int
    n_train: int = Field(description="training samples after the label fraction")
    metrics: dict[str, float]
    unscaled_metrics: dict[str, float] = Field(default_factory=dict, description="calibration and proper scores before post-hoc recalibration (temperature scaling), when the probe applies one")


class Timings(_Strict):
    data_s: float
    embedding_s: float
    probe_s: float
    metrics_s: float
    total_s: float


class CacheRecord(_Strict):
    enabled: bool
    hits: dict[str, bool] = Field(description="per split: True when embeddings came from the cache")
    resumed_chunks: dict[str, int] = Field(description="per split: chunks reused from an interrupted extraction")
    keys: dict[str, str]


class Environment(_Strict):
    releo_bench: str
    python: str
    platform: str
    packages: dict[str, str]
    device: str
    device_name: str
    code_version: str | None = Field(description="git commit of the releo-bench checkout, when known")


class RunResult(_Strict):
    schema_version: Literal["1.0", "1.1", "1.2", "1.3"] = Field(SCHEMA_VERSION, description="1.1 adds bootstrap intervals, unscaled metrics, diagnostics and plots; 1.2 adds task.outputs and per-output metric keys '<metric>/<output>' for multi-output regression; 1.3 adds model.spatial_context (all optional, so older files still read)")
    run_id: str
    created: str = Field(description="ISO 8601 UTC time the run finished")
    model: ModelRecord
    task: TaskRecord
    probe: ProbeRecord
    seeds: list[int]
    label_fraction: float = Field(gt=0, le=1)
    per_seed: list[SeedResult]
    metrics: dict[str, MetricSummary]
    unscaled_metrics: dict[str, MetricSummary] = Field(default_factory=dict, description="as metrics, before post-hoc recalibration")
    diagnostics: dict[str, Any] = Field(default_factory=dict, description="reliability bins, PIT histogram, coverage curve, per-class F1 (of the first seed's prediction)")
    plots: list[str] = Field(default_factory=list, description="PNG files next to results.json (also MLflow artifacts under plots/)")
    timings: Timings
    cache: CacheRecord
    environment: Environment
    mlflow: dict[str, str | None] = Field(default_factory=dict, description="tracking URI and run id")


def json_schema() -> dict[str, Any]:
    schema = RunResult.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://releo-bench.org/schemas/results-{SCHEMA_VERSION}.json"
    return schema


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_results(result: RunResult, path: str | Path) -> Path:
    path = Path(path)
    atomic_write_text(path, result.model_dump_json(indent=2) + "\n")
    return path


def read_results(path: str | Path) -> RunResult:
    """Read and validate a results.json; raise DataError naming the file on failure."""
    from pydantic import ValidationError

    from .errors import DataError

    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read results JSON ({exc})") from exc
    try:
        return RunResult.model_validate(raw)
    except ValidationError as exc:
        raise DataError(f"{path}: not a valid results.json (schema {SCHEMA_VERSION}): {exc}") from exc
