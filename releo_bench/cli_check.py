"""CLI: ``releo-bench check`` (regressions against a baseline) and ``releo-bench suite run``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def check(
        results: list[Path] = typer.Argument(..., help="results.json files or run directories"),
        baseline: Path = typer.Option(..., "--baseline", help="leaderboard JSON (releo-bench leaderboard --format json)"),
        tolerance: float = typer.Option(0.0, "--tolerance", help="absolute slack beyond the baseline's 95 % interval"),
        rel_tolerance: float = typer.Option(0.0, "--rel-tolerance", help="slack relative to |baseline mean|"),
        metric: Optional[list[str]] = typer.Option(None, "--metric", help="only these metrics (repeatable)"),
        strict: bool = typer.Option(False, "--strict", help="results with no baseline group fail too"),
    ) -> None:
        """Exit 1 when a (model, task, metric) regressed beyond the baseline's CI, 0 otherwise."""
        from .check import compare, load_baseline, load_new

        if tolerance < 0 or rel_tolerance < 0:
            from .errors import UsageError
            raise UsageError("--tolerance and --rel-tolerance must be >= 0")
        new = load_new(results)
        findings = compare(new, load_baseline(baseline), tolerance=tolerance,
                           rel_tolerance=rel_tolerance, metrics=metric or None)
        regressed = [f for f in findings if f.kind == "regressed"]
        missing = [f for f in findings if f.kind == "no baseline"]
        for f in findings:
            typer.echo(f.line(), err=f.kind != "improved")
        n_groups = len({(r.model.name, r.task.name, r.task.version, r.probe.name, r.label_fraction)
                        for _, r in new})
        typer.echo(f"checked {len(new)} results ({n_groups} groups) against {baseline}: "
                   f"{len(regressed)} regressed, {len(missing)} without baseline")
        if regressed or (strict and missing):
            raise typer.Exit(1)

    suite_app = typer.Typer(no_args_is_help=True, help="Suites: comparable sets of runs.")
    app.add_typer(suite_app, name="suite")

    @suite_app.command("list")
    def suite_list() -> None:
        """The suites shipped in configs/suites/."""
        from .suites import load_suite, suite_names

        for name in suite_names():
            s = load_suite(name)
            typer.echo(f"{s.name} v{s.version}: {len(s.tasks)} tasks, seeds {s.seeds}, "
                       f"label fractions {list(s.label_fractions)}")

    @suite_app.command("run")
    def suite_run(
        name: str = typer.Argument(..., help="suite name or YAML path"),
        model: Optional[list[str]] = typer.Option(None, "--model", help="model(s); default: the suite's models"),
        output: Path = typer.Option(Path("runs"), "--output", help="results go under OUTPUT/<suite>/<model>/<task>/"),
        tracking_uri: Optional[str] = typer.Option("none", "--tracking-uri", help="MLflow URI, or 'none'"),
        device: str = typer.Option("auto", "--device"),
    ) -> None:
        """Run every task, probe and label fraction of a suite for each model."""
        from .suites import load_suite, run_suite

        suite = load_suite(name)
        models = list(model or suite.models)
        if not models:
            from .errors import UsageError
            raise UsageError(f"suite {suite.name!r} names no models: give --model")
        for m in models:
            paths = run_suite(suite, m, output, tracking_uri=tracking_uri, device=device,
                              on_done=lambda p: typer.echo(str(p)))
            typer.echo(f"{m}: {len(paths)} runs of suite {suite.name}")
