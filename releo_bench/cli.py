"""The ``releo-bench`` command line.

Exit codes: 0 success; 2 bad usage or bad input (the message names what is wrong and what was
expected); 1 internal error (or a run whose results were saved but could not be tracked).
"""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from .errors import ReleoError, UsageError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Benchmark Earth-observation encoders: accuracy, calibration and proper scores.")
out = Console()
err = Console(stderr=True)


class Kind(str, Enum):
    models = "models"
    tasks = "tasks"
    probes = "probes"
    metrics = "metrics"


class InfoKind(str, Enum):
    model = "model"
    task = "task"
    probe = "probe"
    metric = "metric"


def _parse_options(items: list[str] | None, what: str) -> dict[str, Any]:
    """``key=value`` pairs; values parsed as JSON when they are JSON (numbers, lists...)."""
    options: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{what} must look like key=value, got {item!r}")
        try:
            options[key] = json.loads(raw)
        except json.JSONDecodeError:
            options[key] = raw
    return options


@app.command("list")
def list_(kind: Kind = typer.Argument(..., help="what to list")) -> None:
    """List registered models, tasks, probes or metrics."""
    from .registries import ENCODERS, METRICS, PROBES, TASKS

    table = Table(title=f"releo-bench {kind.value}")
    if kind is Kind.metrics:
        table.add_column("name"), table.add_column("task"), table.add_column("family")
        table.add_column("better"), table.add_column("accepts"), table.add_column("description")
        for name in METRICS.names():
            m = METRICS.get(name)
            table.add_row(name, m.task_kind, m.family, m.direction, ", ".join(m.accepts),
                          m.description)
    elif kind is Kind.tasks:
        from rich.markup import escape

        table.add_column("name"), table.add_column("version", justify="right")
        table.add_column("target"), table.add_column("main score"), table.add_column("description")
        for name in TASKS.names():
            meta = TASKS.get(name).meta  # class attribute: no data is loaded
            target = meta.target.kind + (f" ({meta.target.unit})" if meta.target.unit else "")
            table.add_row(name, str(meta.version), target, meta.main_score,
                          escape(TASKS.summary(name)))
    else:
        from rich.markup import escape

        registry = {Kind.models: ENCODERS, Kind.probes: PROBES}[kind]
        table.add_column("name"), table.add_column("description")
        for name in registry.names():
            table.add_row(name, escape(registry.summary(name)))
    out.print(table)


@app.command()
def info(kind: InfoKind = typer.Argument(..., help="model, task, probe or metric"),
         name: str = typer.Argument(..., help="registered name")) -> None:
    """Show the full metadata of one component (JSON)."""
    from .registries import ENCODERS, METRICS, PROBES, TASKS

    if kind is InfoKind.model:
        record = ENCODERS.get(name)().meta.model_dump(mode="json")
    elif kind is InfoKind.task:
        record = TASKS.get(name).meta.model_dump(mode="json")
    elif kind is InfoKind.probe:
        p = PROBES.get(name)
        record = {"name": p.name, "task_kind": p.task_kind, "description": p.description,
                  "defaults": p.defaults}
    else:
        m = METRICS.get(name)
        record = {"name": m.name, "direction": m.direction, "accepts": list(m.accepts),
                  "task_kind": m.task_kind, "family": m.family, "description": m.description}
    out.print_json(json.dumps(record))


def _rich_progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=err, transient=False,
                        disable=not err.is_terminal)

    class _Bar:
        def __init__(self, description: str, total: int) -> None:
            self.description, self.total = description, total

        def __enter__(self) -> "_Bar":
            progress.start()
            self.id = progress.add_task(self.description, total=self.total)
            return self

        def __exit__(self, *exc: object) -> None:
            progress.stop()

        def advance(self, n: int) -> None:
            progress.advance(self.id, n)

    return _Bar


def _load_config(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"--config {path}: cannot read YAML ({exc})") from exc
    allowed = {"model", "task", "probe", "seeds", "label_fraction", "device", "model_options", "task_options",
               "probe_params", "batch_size", "n_boot", "plots", "probe_config", "train_task",
               "train_task_options"}
    unknown = set(data) - allowed
    if unknown:
        raise UsageError(f"--config {path}: unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")
    return data


def _load_probe_preset(path: Path) -> dict[str, Any]:
    """A probe preset: ``probe: NAME`` and ``params: {...}`` (see configs/probes/)."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"--probe-config {path}: cannot read YAML ({exc})") from exc
    unknown = set(data) - {"probe", "params", "description"}
    if unknown or "probe" not in data:
        raise UsageError(f"--probe-config {path}: expected keys 'probe' and 'params' (and "
                         f"'description'), got {sorted(data)}")
    if not isinstance(data.get("params", {}), dict):
        raise UsageError(f"--probe-config {path}: 'params' must be a mapping")
    return data


@app.command()
def run(
    model: Optional[str] = typer.Option(None, "--model", "-m", help="registered model (encoder) name"),
    task: Optional[str] = typer.Option(None, "--task", "-t", help="registered task name"),
    probe: Optional[str] = typer.Option(None, "--probe", "-p", help="probe (default: ridge for regression, logistic for classification)"),
    seeds: Optional[int] = typer.Option(None, "--seeds", help="number of seeds (0..N-1) [default: 3]"),
    label_fraction: Optional[float] = typer.Option(None, "--label-fraction", help="fraction of training labels, in (0, 1] [default: 1]"),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu or cuda [default: auto]"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="run directory [default: runs/<time>-<model>-<task>]"),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow URI; 'none' disables tracking [default: $MLFLOW_TRACKING_URI or a local SQLite store]"),
    no_cache: bool = typer.Option(False, "--no-cache", help="recompute embeddings, ignore and bypass the cache"),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="embedding cache [default: $RELEO_CACHE_DIR or the user cache]"),
    model_option: Optional[list[str]] = typer.Option(None, "--model-option", help="encoder option key=value (repeatable)"),
    task_option: Optional[list[str]] = typer.Option(None, "--task-option", help="task option key=value (repeatable), e.g. for --task custom"),
    data: Optional[Path] = typer.Option(None, "--data", help="data for --task custom: a GeoTIFF stack / folder + labels, or a point table"),
    target: Optional[str] = typer.Option(None, "--target", help="target column for --task custom"),
    train_task: Optional[str] = typer.Option(None, "--train-task", help="train the probe on this task's train/val splits, test on --task (e.g. --train-task lai --task lai-insitu)"),
    probe_param: Optional[list[str]] = typer.Option(None, "--probe-param", help="probe parameter key=value (repeatable)"),
    probe_config: Optional[Path] = typer.Option(None, "--probe-config", help="probe preset YAML (configs/probes/): probe name and params"),
    n_boot: Optional[int] = typer.Option(None, "--n-boot", help="bootstrap replicates over test samples; 0 disables [default: 1000]"),
    no_plots: bool = typer.Option(False, "--no-plots", help="do not draw the PNG diagnostics"),
    config: Optional[Path] = typer.Option(None, "--config", help="run config YAML (see configs/); flags override it"),
) -> None:
    """Run one model on one task: embeddings, probe per seed, metrics, results.json, MLflow."""
    from .runner import RunConfig, run as run_benchmark

    cfg = _load_config(config)
    preset_path = probe_config or (Path(cfg["probe_config"]) if cfg.get("probe_config") else None)
    preset = _load_probe_preset(preset_path) if preset_path else {}
    if preset:
        if probe and probe != preset["probe"]:
            raise UsageError(f"--probe {probe} but --probe-config {preset_path} is for probe "
                             f"{preset['probe']!r}")
        cfg = {**cfg, "probe": cfg.get("probe") or preset["probe"],
               "probe_params": {**preset.get("params", {}), **cfg.get("probe_params", {})}}
    model = model or cfg.get("model")
    task = task or cfg.get("task")
    if not model or not task:
        raise UsageError("both --model and --task are required (or a --config that sets them)")
    rc = RunConfig(
        model=model, task=task, probe=probe or cfg.get("probe"),
        seeds=seeds if seeds is not None else int(cfg.get("seeds", 3)),
        label_fraction=label_fraction if label_fraction is not None else float(cfg.get("label_fraction", 1.0)),
        device=device or cfg.get("device", "auto"), output=output, tracking_uri=tracking_uri,
        use_cache=not no_cache, cache_dir=cache_dir,
        batch_size=int(cfg.get("batch_size", 256)),
        model_options={**cfg.get("model_options", {}), **_parse_options(model_option, "--model-option")},
        task_options={**cfg.get("task_options", {}), **_parse_options(task_option, "--task-option"),
                      **({"data": str(data)} if data is not None else {}),
                      **({"target": target} if target is not None else {})},
        probe_params={**cfg.get("probe_params", {}), **_parse_options(probe_param, "--probe-param")},
        train_task=train_task or cfg.get("train_task"),
        train_task_options=dict(cfg.get("train_task_options", {})),
        n_boot=n_boot if n_boot is not None else int(cfg.get("n_boot", 1000)),
        plots=not no_plots and bool(cfg.get("plots", True)),
    )
    outcome = run_benchmark(rc, progress=_rich_progress())
    r = outcome.result
    table = Table(title=f"{r.model.name} on {r.task.name} ({r.probe.name} probe, "
                        f"{len(r.seeds)} seed(s), {r.label_fraction:.0%} of labels)")
    table.add_column("metric"), table.add_column("family"), table.add_column("better")
    table.add_column("mean", justify="right"), table.add_column("95 % CI seeds", justify="right")
    table.add_column("95 % CI test samples", justify="right")
    for name, s in r.metrics.items():
        mark = " *" if name == r.task.main_score else ""
        better = f"{s.direction} ({s.ideal:g})" if s.direction == "target" else s.direction
        sample_ci = ("" if s.sample_ci_low is None or s.sample_ci_high is None else
                     f"[{s.sample_ci_low:.4f}, {s.sample_ci_high:.4f}]"
                     + (" grouped" if s.sample_ci_grouped else ""))
        table.add_row(name + mark, s.family, better, f"{s.mean:.4f}",
                      f"[{s.ci_low:.4f}, {s.ci_high:.4f}]", sample_ci)
    out.print(table)
    hits = [s for s, h in r.cache.hits.items() if h]
    cache_msg = ("disabled" if not r.cache.enabled else
                 f"hit for {', '.join(hits)}" if hits else "miss (embeddings computed and stored)")
    t = r.timings
    out.print(f"embedding cache: {cache_msg}")
    out.print(f"timings: data {t.data_s:.2f} s, embedding {t.embedding_s:.2f} s, probe "
              f"{t.probe_s:.2f} s, metrics {t.metrics_s:.2f} s, total {t.total_s:.2f} s")
    out.print(f"results: {outcome.output_dir / 'results.json'}")
    if r.mlflow.get("run_id"):
        out.print(f"mlflow: run {r.mlflow['run_id']} at {r.mlflow['tracking_uri']}")
    if outcome.tracking_error:
        err.print(f"[red]error:[/red] results are saved, but MLflow tracking failed: "
                  f"{outcome.tracking_error}")
        raise typer.Exit(1)


@app.command()
def schema(output: Optional[Path] = typer.Option(None, "--output", "-o", help="write here instead of stdout")) -> None:
    """Print the JSON Schema of results.json."""
    from .results import atomic_write_text, json_schema

    text = json.dumps(json_schema(), indent=2) + "\n"
    if output:
        atomic_write_text(output, text)
    else:
        sys.stdout.write(text)


@app.command()
def validate(paths: list[Path] = typer.Argument(..., help="results.json files")) -> None:
    """Validate results.json files against the schema (exit 2 on the first invalid one)."""
    from .results import read_results

    for p in paths:
        read_results(p)
        out.print(f"{p}: valid")


simulate_app = typer.Typer(no_args_is_help=True, help="Run the physical models: PROSAIL tables and simulated scenes.")
app.add_typer(simulate_app, name="simulate")


@simulate_app.command("prosail")
def simulate_prosail(
    params: Path = typer.Option(..., "--params", help="CSV or Parquet: one row per parameter set, columns named like prosail.run_prosail's arguments"),
    out_path: Path = typer.Option(..., "--out", help="CSV or Parquet output"),
    sensor: str = typer.Option("s2a", "--sensor", help="s2a or s2b"),
    srf: Optional[Path] = typer.Option(None, "--srf", help="official ESA spectral response CSV (default: published band centres and widths)"),
    spectrum: bool = typer.Option(False, "--spectrum", help="also write the 400-2500 nm spectrum (columns '400'..'2500')"),
    device: str = typer.Option("cpu", "--device", help="auto, cpu or cuda"),
) -> None:
    """PROSAIL (PROSPECT-D + 4SAIL) canopy reflectance of each row, as Sentinel-2 bands."""
    from .environment import resolve_device
    from .physics.tables import read_table, s2_response, simulate_table, validate_parameters, write_table

    table = read_table(params)
    values = validate_parameters(table, str(params))
    response = s2_response(sensor, srf)
    df = simulate_table(values, response, spectrum=spectrum, device=str(resolve_device(device)))
    write_table(df, out_path)
    out.print(f"{len(df)} parameter set(s) -> {out_path} ({len(response.bands)} bands"
              + (", with spectrum)" if spectrum else ")"))


@simulate_app.command("scene")
def simulate_scene_cmd(
    seed: int = typer.Option(..., "--seed", help="scene seed"),
    out_dir: Path = typer.Option(..., "--out", help="output directory"),
    size: int = typer.Option(32, "--size", help="scene size in pixels (10 m)"),
    cloud_masks: Optional[Path] = typer.Option(None, "--cloud-masks", help="real cloud masks (.npy, [K, H, W] or [K, H, W, 1], nonzero = cloud) to transplant onto the S2 dates"),
) -> None:
    """Simulate one S1 + S2 scene with exact truth; write GeoTIFFs + Parquet + scene.json."""
    from .physics.scene import SceneConfig, simulate_scene, write_scene

    if size < 8:
        raise UsageError(f"--size must be at least 8 pixels, got {size}")
    masks = None
    if cloud_masks is not None:
        import numpy as np

        try:
            masks = np.load(cloud_masks, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise UsageError(f"--cloud-masks {cloud_masks}: cannot read a .npy array ({exc})") from exc
        if masks.ndim not in (3, 4) or (masks.ndim == 4 and masks.shape[-1] != 1):
            raise UsageError(f"--cloud-masks {cloud_masks}: expected [K, H, W] or [K, H, W, 1], "
                             f"got shape {masks.shape}")
    scene = simulate_scene(seed, SceneConfig(size=size), real_cloud_masks=masks)
    files = write_scene(scene, out_dir)
    out.print(f"scene {seed} (simulator v{scene.version}): {len(scene.s2_dates)} S2 "
              f"dates, {len(scene.s1_dates)} S1 dates -> {len(files)} files in {out_dir}")


weights_app = typer.Typer(no_args_is_help=True, help="Pretrained weights: list, fetch (to the user cache), verify (sha256).")
app.add_typer(weights_app, name="weights")


def _weights_files(name: str | None) -> list[tuple[str, Any]]:
    """(model, WeightsFile) for one model or every registered model that declares weights."""
    from .registries import ENCODERS

    names = [name] if name else ENCODERS.names()
    rows = []
    for n in names:
        files = getattr(ENCODERS.get(n), "WEIGHTS", ())
        if name and not files:
            raise UsageError(f"model {n!r} has no pretrained weights to manage")
        rows += [(n, f) for f in files]
    return rows


@weights_app.command("list")
def weights_list(name: Optional[str] = typer.Argument(None, help="model name (default: all)")) -> None:
    """Each weights file: where it is found locally (or 'missing'), licence and source."""
    from .weights import WeightsError, resolve

    table = Table(title="releo-bench weights")
    for col in ("model", "file", "status", "licence", "source"):
        table.add_column(col)
    for model, f in _weights_files(name):
        try:
            status = str(resolve(f))
        except WeightsError as exc:
            status = "sha256 MISMATCH" if "sha256" in str(exc) and "expected" in str(exc) else "missing"
        table.add_row(model, f"{f.folder}/{f.filename}", status, f.licence, f.source)
    out.print(table)


@weights_app.command("fetch")
def weights_fetch(name: Optional[str] = typer.Argument(None, help="model name (default: all)")) -> None:
    """Download missing files into the user cache, checking their sha256 (exit 2 offline)."""
    from .weights import fetch

    for model, f in _weights_files(name):
        path = fetch(f)
        out.print(f"{model}: {f.folder}/{f.filename} -> {path}")


@weights_app.command("verify")
def weights_verify(name: Optional[str] = typer.Argument(None, help="model name (default: all)")) -> None:
    """Check every local file against its declared sha256; exit 2 on a missing or bad file."""
    from .weights import resolve

    for model, f in _weights_files(name):
        path = resolve(f)
        out.print(f"{model}: {path} ok" + ("" if f.sha256 else " (no published sha256)"))


from .cli_check import register as _register_check  # noqa: E402

_register_check(app)
from .cli_submit import register as _register_submit  # noqa: E402
_register_submit(app)
from .cli_leaderboard import register as _register_leaderboard  # noqa: E402
_register_leaderboard(app)


def main(argv: list[str] | None = None) -> int:
    """Entry point: maps releo-bench errors to exit codes 2 (usage) and 1 (internal)."""
    try:
        code = app(args=argv, standalone_mode=False)
    except UsageError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        return 2
    except ReleoError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        return 1
    except typer.Exit as exc:
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        err.print("aborted")
        return 130
    except Exception as exc:
        # command-line parsing errors (typer vendors click): they know their exit code (2)
        if isinstance(exc, typer.TyperException) and hasattr(exc, "show"):
            exc.show(file=sys.stderr)
            return int(getattr(exc, "exit_code", 2))
        err.print_exception(show_locals=False)
        err.print(f"[red]internal error:[/red] {type(exc).__name__}: {exc}")
        return 1
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
