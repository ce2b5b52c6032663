"""One benchmark run: task data -> embeddings (cached) -> probe per seed -> metrics -> results.

``run(RunConfig)`` is what ``releo-bench run`` calls. It writes ``results.json`` (atomically)
before anything is sent to MLflow, so a tracking failure never loses a computed result.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import platform
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from . import __version__
from .cache import HARNESS_VERSION, CachedEmbeddings, EmbeddingCache
from .encoders.adapt import SceneEmbeddings, encode_batch, pool_time, prepare_batch, spatial_context
from .encoders.base import Encoder, Retriever, retrieval_problem
from .environment import code_version, device_name, package_versions, python_version, resolve_device
from .errors import ReleoError, UnknownNameError, UsageError
from .predictions import Prediction
from .bootstrap import bootstrap_over_samples, bootstrap_over_seeds
from .metrics.base import Metric
from .metrics.diagnostics import diagnostics_for
from .metrics.multi_output import (MultiOutputPrediction, get_metric, indexed_metric,
                                   is_multi_output_metric)
from .probes.base import SeedFit, SeedSplit
from .registries import ENCODERS, METRICS, PROBES, TASKS
from .results import (CacheRecord, Environment, MetricSummary, ModelRecord, ProbeRecord,
                      RunResult, SeedResult, TaskRecord, Timings, write_results)
from .sampling import label_subset
from .stats import mean_ci
from .tasks.base import Task, TaskData

DEFAULT_PROBES = {"regression": "ridge", "classification": "logistic"}
# ``--probe none``: no probe; the encoder predicts the target itself (a Retriever)
DIRECT_PROBE = "none"


@dataclass
class RunConfig:
    model: str
    task: str
    probe: str | None = None
    seeds: int = 3
    label_fraction: float = 1.0
    device: str = "auto"
    output: Path | None = None
    tracking_uri: str | None = None  # None: default local store; "none": no tracking
    use_cache: bool = True
    cache_dir: Path | None = None
    batch_size: int = 256
    model_options: dict[str, Any] = field(default_factory=dict)
    task_options: dict[str, Any] = field(default_factory=dict)
    # transfer: train (and validate) the probe on another task's splits, test on ``task``'s
    # test split, e.g. simulated ``lai`` -> in-situ ``lai-insitu`` (sim-to-real)
    train_task: str | None = None
    train_task_options: dict[str, Any] = field(default_factory=dict)
    probe_params: dict[str, Any] = field(default_factory=dict)
    n_boot: int = 1000  # bootstrap replicates over test samples; 0 disables sample intervals
    plots: bool = True


@dataclass
class RunOutcome:
    result: RunResult
    output_dir: Path
    tracking_error: str | None = None


ProgressFactory = Callable[[str, int], Any]  # (description, total) -> context with .advance(n)


class _NoProgress:
    def __enter__(self) -> "_NoProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def advance(self, n: int) -> None:
        return None


def _no_progress(description: str, total: int) -> _NoProgress:
    return _NoProgress()


def build_encoder(name: str, device: torch.device, options: dict[str, Any]) -> Encoder:
    factory = ENCODERS.get(name)
    try:
        return factory(device=device, **options)
    except TypeError as exc:
        raise UsageError(f"model {name!r} does not accept options {sorted(options)}: {exc}") from exc


def build_task(name: str, options: dict[str, Any] | None = None) -> Task:
    """The registered task ``name``; ``options`` go to its constructor (e.g. the custom
    task's data path and target column)."""
    factory = TASKS.get(name)
    if not options:
        return factory()
    try:
        return factory(**options)
    except TypeError as exc:
        raise UsageError(f"task {name!r} does not accept options {sorted(options)}: {exc}") from exc


def check_modalities(emeta: Any, task: Task) -> None:
    """Refuse a model whose required modalities the task does not provide (exit code 2)."""
    missing = [m for m in emeta.modalities if emeta.modalities[m].required
               and m not in task.meta.modalities]
    if missing:
        raise UsageError(f"model {emeta.name!r} needs modalities {missing}; task "
                         f"{task.meta.name!r} provides {list(task.meta.modalities)}")


def check_transfer(source: Task, target: Task) -> None:
    """A probe trained on ``source`` can be tested on ``target`` only for the same quantity."""
    a, b = source.meta.target, target.meta.target
    problems = []
    if a.kind != b.kind:
        problems.append(f"target kinds differ ({a.kind} vs {b.kind})")
    if a.kind == "regression" and a.unit != b.unit:
        problems.append(f"target units differ ({a.unit!r} vs {b.unit!r})")
    if a.outputs != b.outputs:
        problems.append(f"target outputs differ ({list(a.outputs or ())} vs "
                        f"{list(b.outputs or ())})")
    if a.kind == "classification" and a.class_names != b.class_names:
        problems.append(f"class names differ ({list(a.class_names or ())} vs "
                        f"{list(b.class_names or ())})")
    if problems:
        raise UsageError(f"cannot train on task {source.meta.name!r} and test on "
                         f"{target.meta.name!r}: " + "; ".join(problems))


def check_names(config: RunConfig) -> None:
    """Look up model, task and probe names first, reporting every unknown one at once."""
    problems = []
    for registry, name in ((ENCODERS, config.model), (TASKS, config.task), (PROBES, config.probe),
                           (TASKS, config.train_task)):
        if name is None or (registry is PROBES and name == DIRECT_PROBE):
            continue
        try:
            registry.get(name)
        except UnknownNameError as exc:
            problems.append(str(exc))
    if problems:
        raise UsageError("; ".join(problems))


def target_date_features(target_time: np.ndarray) -> np.ndarray:
    """``[N, 2]`` sin and cos of the target date's day of year (period 365.25 days)."""
    d = np.asarray(target_time, dtype="datetime64[D]")
    doy = (d - d.astype("datetime64[Y]")).astype("int64").astype(np.float64)
    angle = 2.0 * np.pi * doy / 365.25
    return np.stack([np.sin(angle), np.cos(angle)], axis=1).astype(np.float32)


def features_for_split(data: TaskData, cached: CachedEmbeddings, time_modality: str | None
                       ) -> np.ndarray:
    """One feature vector per sample: per-date embeddings at the target date when the task has
    one (nearest valid date), else averaged over valid dates; pooled embeddings as they are,
    plus the target date's day of year (sin, cos) when the task has target dates: a season
    summary alone cannot say *when* a per-date target (LAI at a date) is wanted."""
    feats = cached.features
    if cached.time_mask is None:
        flat = feats.reshape(len(feats), -1)
        if data.target_time is None:
            return flat
        return np.concatenate([flat, target_date_features(data.target_time)], axis=1)
    mask = cached.time_mask
    if data.target_time is None or time_modality is None:
        pooled = pool_time(feats, mask)
        return pooled.reshape(len(pooled), -1)
    dates = data.batch[time_modality].dates.astype("datetime64[D]").astype("int64").astype(float)
    dates = dates[:, : mask.shape[1]]
    target = np.asarray(data.target_time, dtype="datetime64[D]").astype("int64").astype(float)
    gap = np.abs(dates - target[:, None])
    gap[~mask[:, : dates.shape[1]] | np.isnan(gap)] = np.inf
    idx = gap.argmin(axis=1)
    picked = feats[np.arange(len(feats)), idx]
    return picked.reshape(len(picked), -1)


def _standardise(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    std[std < 1e-12] = 1.0
    return [(a - mean) / std for a in (train, *others)]


def score(task: Task, y: np.ndarray, prediction: Prediction, *,
          recalibrated_only: bool = False) -> dict[str, float]:
    """The task's metrics that apply to ``prediction``; with ``recalibrated_only`` only those a
    post-hoc recalibration can change (calibration and proper scores)."""
    out = {}
    for name in task.meta.metrics:
        m = METRICS.get(name)
        if recalibrated_only and m.family == "accuracy":
            continue
        if m.applies_to(prediction):
            out[name] = m(y, prediction)
    return out


def score_multi(task: Task, y: np.ndarray, prediction: MultiOutputPrediction, *,
                recalibrated_only: bool = False) -> dict[str, float]:
    """Multi-output regression: every per-output metric of the task under its plain name as
    the mean over outputs and as ``<metric>/<output>`` per output; vector metrics (``sam``)
    on the whole output vectors. Aggregates come first, then the per-output values."""
    outputs = task.meta.target.outputs or ()
    agg: dict[str, float] = {}
    per: dict[str, float] = {}
    for name in task.meta.metrics:
        m = get_metric(name)
        if recalibrated_only and m.family == "accuracy":
            continue
        if is_multi_output_metric(m):
            agg[name] = float(m.fn(y, prediction))
            continue
        if not m.applies_to(prediction.parts[0]):
            continue
        values = [m(y[:, k], p) for k, p in enumerate(prediction.parts)]
        agg[name] = float(np.mean(values))
        for o, v in zip(outputs, values):
            per[f"{name}/{o}"] = v
    return {**agg, **per}


def multi_output_resolver(task: Task, y: np.ndarray) -> Callable[[str], tuple[Metric, np.ndarray]]:
    """For :func:`summarise` on a multi-output task: result key -> (metric of row indices and a
    :class:`MultiOutputPrediction`, the row indices) so the generic bootstrap applies."""
    outputs = list(task.meta.target.outputs or ())
    rows = np.arange(len(y), dtype=np.float64)

    def resolve(key: str) -> tuple[Metric, np.ndarray]:
        name, _, output = key.partition("/")
        m = get_metric(name)
        if output:
            return indexed_metric(m, y, output=outputs.index(output)), rows
        if is_multi_output_metric(m):
            return indexed_metric(m, y), rows
        return indexed_metric(m, y, aggregate=True), rows

    return resolve


def summarise(per_seed: list[SeedResult], field_name: str, y: np.ndarray,
              predictions: list[Prediction], groups: np.ndarray | None, n_boot: int,
              resolve: Callable[[str], tuple[Metric, np.ndarray]] | None = None
              ) -> dict[str, MetricSummary]:
    """Mean over seeds with a Student-t interval, a bootstrap interval over seeds and a
    bootstrap interval over test samples (whole groups when the task defines them).

    ``resolve``: result key -> (metric, targets to bootstrap), for keys that are not plain
    registered metric names (multi-output tasks, :func:`multi_output_resolver`)."""
    out: dict[str, MetricSummary] = {}
    names = getattr(per_seed[0], field_name)
    for name in names:
        m, y_m = resolve(name) if resolve is not None else (METRICS.get(name), y)
        values = [getattr(r, field_name)[name] for r in per_seed]
        s = mean_ci(values)
        extra: dict[str, Any] = {}
        if n_boot > 0:
            sb = bootstrap_over_seeds(values, seed=0)
            ss = bootstrap_over_samples(m, y_m, predictions, groups=groups, n_boot=n_boot,
                                        seed=0)
            extra = {"seed_boot_low": _finite(sb.low), "seed_boot_high": _finite(sb.high),
                     "sample_ci_low": _finite(ss.low), "sample_ci_high": _finite(ss.high),
                     "sample_ci_grouped": groups is not None, "n_boot": int(ss.n_valid)}
        out[name] = MetricSummary(mean=s.mean, ci_low=s.ci_low, ci_high=s.ci_high, std=s.std,
                                  n=s.n, direction=m.direction, ideal=m.ideal, family=m.family,
                                  **extra)
    return out


def _finite(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


def write_plots(out_dir: Path, y: np.ndarray, prediction: Prediction, diagnostics: dict[str, Any],
                task: Task) -> list[Path]:
    """Reliability diagram / PIT histogram, coverage curve and predicted-vs-true scatter."""
    from . import plots

    title = f"{task.meta.name}"
    written = []
    if "reliability" in diagnostics:
        written.append(plots.reliability_diagram(diagnostics["reliability"],
                                                 out_dir / "reliability.png", title=title))
    if "pit_histogram" in diagnostics:
        written.append(plots.pit_histogram(diagnostics["pit_histogram"], out_dir / "pit.png",
                                           title=title))
    if "coverage_curve" in diagnostics:
        written.append(plots.coverage_curve(diagnostics["coverage_curve"],
                                            out_dir / "coverage.png", title=title))
    if task.meta.target.kind == "regression" and hasattr(prediction, "interval"):
        low, high = prediction.interval(0.9)
        written.append(plots.scatter_intervals(np.asarray(y, dtype=float), prediction.point(),
                                               low, high, out_dir / "scatter.png", level=0.9,
                                               units=task.meta.target.unit or "", title=title))
    return written


def fit_multi_output(probe_cls: Any, target: Any, seed_splits: list[SeedSplit], *,
                     device: str, **params: Any) -> list[SeedFit]:
    """One probe per output column (each through ``fit_seeds`` over the seeds: K x seeds
    fits); per seed, the K predictions wrapped in a :class:`MultiOutputPrediction` and the
    fitted values keyed by output."""
    per_output = []
    for k, o in enumerate(target.outputs):
        spec = target.model_copy(update={"name": f"{target.name}/{o}", "outputs": None})
        splits_k = [dataclasses.replace(sp, y_train=sp.y_train[:, k],
                                        y_val=None if sp.y_val is None else sp.y_val[:, k])
                    for sp in seed_splits]
        per_output.append(probe_cls.fit_seeds(spec, splits_k, device=device, **params))
    fits = []
    for i, sp in enumerate(seed_splits):
        members = [pf[i] for pf in per_output]
        unscaled = (MultiOutputPrediction([f.unscaled for f in members])
                    if all(f.unscaled is not None for f in members) else None)
        fits.append(SeedFit(sp.seed, MultiOutputPrediction([f.prediction for f in members]),
                            {o: f.fitted_params for o, f in zip(target.outputs, members)},
                            unscaled))
    return fits


def run(config: RunConfig, progress: ProgressFactory = _no_progress) -> RunOutcome:
    t_start = time.perf_counter()
    if config.seeds < 1:
        raise UsageError(f"--seeds must be at least 1, got {config.seeds}")
    if not 0.0 < config.label_fraction <= 1.0:
        raise UsageError(f"--label-fraction must be in (0, 1], got {config.label_fraction}")
    check_names(config)
    device = resolve_device(config.device)
    task = build_task(config.task, config.task_options)
    encoder = build_encoder(config.model, device, config.model_options)
    emeta = encoder.meta
    kind = task.meta.target.kind
    if config.probe == DIRECT_PROBE:
        return _run_direct(config, task, encoder, device, progress, t_start)
    probe_name = config.probe or DEFAULT_PROBES[kind]
    probe_cls = PROBES.get(probe_name)
    if probe_cls.task_kind != kind:
        raise UsageError(f"probe {probe_name!r} is for {probe_cls.task_kind} targets; task "
                         f"{task.meta.name!r} predicts {kind} target {task.meta.target.name!r} "
                         f"(try --probe {DEFAULT_PROBES[kind]})")

    # -- data ---------------------------------------------------------------------------
    t0 = time.perf_counter()
    source = task
    if config.train_task:
        source = build_task(config.train_task, config.train_task_options)
        check_transfer(source, task)
    split_task = {s: (source if s != "test" else task) for s in ("train", "val", "test")}
    splits = [s for s in ("train", "val", "test") if s in split_task[s].meta.splits]
    data = {s: split_task[s].load(s) for s in splits}
    for s in splits:
        data[s].check_outputs(split_task[s].meta.target)
    outputs = task.meta.target.outputs
    hashes = {s: data[s].content_hash() for s in splits}
    data_s = time.perf_counter() - t0
    encoder = encoder.adapt_to(data["train"])
    emeta = encoder.meta
    check_modalities(emeta, task)

    # -- embeddings (cached) ------------------------------------------------------------
    t0 = time.perf_counter()
    cache = EmbeddingCache(config.cache_dir)
    encoder_identity = {"name": emeta.name, "version": emeta.version,
                        "config": encoder.config(), "weights_sha256": encoder.weights_sha256}
    cached: dict[str, CachedEmbeddings] = {}
    context_mode = {s: spatial_context(encoder, data[s]) for s in splits}
    for s in splits:
        d = data[s]
        key = cache.make_key(encoder_identity, {"task": split_task[s].meta.name,
                                                "version": split_task[s].meta.version,
                                                "split": s, "data_hash": hashes[s],
                                                "spatial_context": context_mode[s]})

        def encode_chunk(start: int, stop: int, d: TaskData = d):
            return encode_batch(encoder, d.batch.index(slice(start, stop)))

        # pixels of a task that gives their scenes: each scene encoded once (real neighbours)
        compute = (SceneEmbeddings(encoder, d.context) if context_mode[s] == "scene"
                   else encode_chunk)

        with progress(f"embedding {s} ({emeta.name})", len(d)) as bar:
            if config.use_cache:
                cached[s] = cache.get_or_compute(
                    key, len(d), config.batch_size, compute, on_chunk=bar.advance,
                    describe={"encoder": encoder_identity, "task": task.meta.name, "split": s})
            else:
                chunks = [compute(a, min(a + config.batch_size, len(d)))
                          for a in range(0, len(d), config.batch_size)]
                for c in chunks:
                    bar.advance(len(c.features))
                if chunks[0].time_mask is None:
                    feats, tmask = np.concatenate([c.features.numpy() for c in chunks]), None
                else:  # whole-split batches share T, so chunks concatenate directly
                    feats = np.concatenate([c.features.numpy() for c in chunks])
                    tmask = np.concatenate([c.time_mask.numpy() for c in chunks])
                cached[s] = CachedEmbeddings(feats, tmask, key, False, 0, len(chunks))
    embedding_s = time.perf_counter() - t0
    time_modality = next(iter(emeta.modalities)) if emeta.output == "per_date" else None
    X = {s: features_for_split(data[s], cached[s], time_modality) for s in splits}
    y = {s: data[s].target for s in splits}

    # -- probes (all seeds at once for batched probes), metrics, intervals -------------------
    t0 = time.perf_counter()
    seed_splits, n_train = [], []
    for seed in range(config.seeds):
        idx = label_subset(y["train"] if outputs is None else y["train"].mean(axis=1), kind,
                           config.label_fraction, seed)
        others = [s for s in splits if s != "train"]
        parts = dict(zip(["train", *others], _standardise(X["train"][idx], *(X[s] for s in others))))
        seed_splits.append(SeedSplit(seed, parts["train"], y["train"][idx], parts["test"],
                                     parts.get("val"), y.get("val")))
        n_train.append(len(idx))
    torch.manual_seed(0)
    if outputs is None:
        fits = probe_cls.fit_seeds(task.meta.target, seed_splits, device=str(device),
                                   **config.probe_params)
    else:
        fits = fit_multi_output(probe_cls, task.meta.target, seed_splits, device=str(device),
                                **config.probe_params)
    probe_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    y_test = y["test"]
    score_fn = score if outputs is None else score_multi
    resolve = None if outputs is None else multi_output_resolver(task, y_test)
    per_seed = [SeedResult(seed=f.seed, n_train=n, metrics=score_fn(task, y_test, f.prediction),
                           unscaled_metrics=(score_fn(task, y_test, f.unscaled,
                                                      recalibrated_only=True)
                                             if f.unscaled is not None else {}))
                for f, n in zip(fits, n_train)]
    groups = data["test"].groups
    summaries = summarise(per_seed, "metrics", y_test, [f.prediction for f in fits], groups,
                          config.n_boot, resolve)
    unscaled = {}
    if all(f.unscaled is not None for f in fits):
        unscaled = summarise(per_seed, "unscaled_metrics", y_test, [f.unscaled for f in fits],
                             groups, config.n_boot, resolve)
    # multi-output: diagnostics and plots of the first output (named in diagnostics["output"])
    y_diag = y_test if outputs is None else y_test[:, 0]
    p_diag = fits[0].prediction if outputs is None else fits[0].prediction.parts[0]
    diagnostics = diagnostics_for(y_diag, p_diag)
    if diagnostics:
        diagnostics["seed"] = fits[0].seed
        if outputs is not None:
            diagnostics["output"] = outputs[0]
    metrics_s = time.perf_counter() - t0

    run_id = uuid.uuid4().hex
    now = dt.datetime.now(dt.timezone.utc)
    out_dir = config.output or Path("runs") / f"{now:%Y%m%dT%H%M%SZ}-{emeta.name}-{task.meta.name}"
    result = RunResult(
        run_id=run_id, created=now.isoformat(timespec="seconds"),
        model=ModelRecord(name=emeta.name, version=emeta.version,
                          weights_sha256=encoder.weights_sha256, config=encoder.config(),
                          embedding_shape=list(emeta.embedding_shape), output=emeta.output,
                          spatial_context=context_mode["test"]),
        task=TaskRecord(name=task.meta.name, version=task.meta.version, data_hash=hashes,
                        target=task.meta.target.name, target_kind=kind,
                        outputs=list(outputs) if outputs is not None else None,
                        main_score=task.meta.main_score,
                        n_samples={s: len(data[s]) for s in splits},
                        train_task=({"name": source.meta.name, "version": source.meta.version}
                                    if source is not task else None)),
        probe=ProbeRecord(name=probe_name, params=probe_cls.resolved_params(**config.probe_params),
                          fitted_params=[f.fitted_params for f in fits]),
        seeds=list(range(config.seeds)), label_fraction=config.label_fraction,
        per_seed=per_seed, metrics=summaries, unscaled_metrics=unscaled,
        diagnostics=diagnostics,
        timings=Timings(data_s=data_s, embedding_s=embedding_s, probe_s=probe_s,
                        metrics_s=metrics_s, total_s=time.perf_counter() - t_start),
        cache=CacheRecord(enabled=config.use_cache,
                          hits={s: cached[s].hit for s in splits},
                          resumed_chunks={s: cached[s].resumed_chunks for s in splits},
                          keys={s: cached[s].key for s in splits}),
        environment=Environment(releo_bench=__version__, python=python_version(),
                                platform=platform.platform(), packages=package_versions(),
                                device=str(device), device_name=device_name(device),
                                code_version=code_version()),
    )
    return _finish(config, result, Path(out_dir), y_diag, p_diag, diagnostics, task)


def _finish(config: RunConfig, result: RunResult, out_dir: Path, y_diag: np.ndarray,
            p_diag: Prediction, diagnostics: dict[str, Any], task: Task) -> RunOutcome:
    """Plots, ``results.json`` (atomically), then tracking (a failure there loses nothing)."""
    if config.plots:
        plots = write_plots(out_dir, y_diag, p_diag, diagnostics, task)
        result = result.model_copy(update={"plots": [p.name for p in plots]})
    write_results(result, out_dir / "results.json")

    # -- tracking: results.json is already safe on disk -----------------------------------
    tracking_error = None
    from .tracking import log_run, resolve_tracking_uri

    uri = resolve_tracking_uri(config.tracking_uri)
    if uri is not None:
        try:
            mlflow_run_id = log_run(result, out_dir, uri)
            result = result.model_copy(update={"mlflow": {"tracking_uri": uri,
                                                          "run_id": mlflow_run_id}})
            write_results(result, out_dir / "results.json")
        except ReleoError as exc:
            tracking_error = str(exc)
    return RunOutcome(result, out_dir, tracking_error)


def _run_direct(config: RunConfig, task: Task, encoder: Encoder, device: torch.device,
                progress: ProgressFactory, t_start: float) -> RunOutcome:
    """``--probe none``: the encoder's own prediction of the target (a :class:`Retriever`) on
    the test split, scored like a probe's. Nothing is trained (train / val splits are not
    loaded, ``--seeds`` and ``--label-fraction`` have no effect: one deterministic result,
    recorded as seed 0 with probe name ``none``); embeddings are not cached."""
    target = task.meta.target
    problem = retrieval_problem(encoder, target)
    if problem:
        raise UsageError(f"--probe {DIRECT_PROBE}: model {config.model!r} cannot predict the "
                         f"target {target.name!r} of task {task.meta.name!r} directly: {problem}; "
                         f"use a probe (e.g. --probe {DEFAULT_PROBES[target.kind]})")
    if config.train_task:
        raise UsageError(f"--probe {DIRECT_PROBE} trains nothing: --train-task "
                         f"{config.train_task!r} does not apply")
    assert isinstance(encoder, Retriever)
    emeta = encoder.meta
    check_modalities(emeta, task)
    t0 = time.perf_counter()
    data = task.load("test")
    data.check_outputs(target)
    hashes = {"test": data.content_hash()}
    data_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    with progress(f"retrieving test ({emeta.name})", len(data)) as bar:
        batch = prepare_batch(data.batch, emeta).to(encoder.device)
        with torch.no_grad():
            prediction = encoder.retrieve(batch, target, data.target_time)
        bar.advance(len(data))
    if len(prediction) != len(data):
        raise ReleoError(f"model {emeta.name!r} retrieved {len(prediction)} predictions for "
                         f"{len(data)} test samples")
    embedding_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    y_test = data.target
    per_seed = [SeedResult(seed=0, n_train=0, metrics=score(task, y_test, prediction))]
    summaries = summarise(per_seed, "metrics", y_test, [prediction], data.groups, config.n_boot)
    diagnostics = diagnostics_for(y_test, prediction)
    if diagnostics:
        diagnostics["seed"] = 0
    metrics_s = time.perf_counter() - t0

    now = dt.datetime.now(dt.timezone.utc)
    out_dir = config.output or Path("runs") / f"{now:%Y%m%dT%H%M%SZ}-{emeta.name}-{task.meta.name}"
    result = RunResult(
        run_id=uuid.uuid4().hex, created=now.isoformat(timespec="seconds"),
        model=ModelRecord(name=emeta.name, version=emeta.version,
                          weights_sha256=encoder.weights_sha256, config=encoder.config(),
                          embedding_shape=list(emeta.embedding_shape), output=emeta.output),
        task=TaskRecord(name=task.meta.name, version=task.meta.version, data_hash=hashes,
                        target=target.name, target_kind=target.kind, outputs=None,
                        main_score=task.meta.main_score, n_samples={"test": len(data)},
                        train_task=None),
        probe=ProbeRecord(name=DIRECT_PROBE, params={}, fitted_params=[{}]),
        seeds=[0], label_fraction=1.0, per_seed=per_seed, metrics=summaries,
        unscaled_metrics={}, diagnostics=diagnostics,
        timings=Timings(data_s=data_s, embedding_s=embedding_s, probe_s=0.0,
                        metrics_s=metrics_s, total_s=time.perf_counter() - t_start),
        cache=CacheRecord(enabled=False, hits={"test": False}, resumed_chunks={"test": 0},
                          keys={"test": ""}),
        environment=Environment(releo_bench=__version__, python=python_version(),
                                platform=platform.platform(), packages=package_versions(),
                                device=str(device), device_name=device_name(device),
                                code_version=code_version()),
    )
    return _finish(config, result, Path(out_dir), y_test, prediction, diagnostics, task)


__all__ = ["RunConfig", "RunOutcome", "run", "HARNESS_VERSION"]
