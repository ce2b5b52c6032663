"""``releo-bench leaderboard``: rank models from MLflow runs or results.json files."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    """Add the ``leaderboard`` command to ``app``."""

    @app.command()
    def leaderboard(
        tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow store to read runs from [default: $MLFLOW_TRACKING_URI or the local SQLite store]"),
        results: Optional[list[Path]] = typer.Option(None, "--results", help="results.json file or folder of run directories (repeatable); read these instead of MLflow"),
        suite: Optional[str] = typer.Option(None, "--suite", help="keep only this suite's tasks (at its versions), probes and label fractions (name or YAML path)"),
        fmt: str = typer.Option("md", "--format", help="md, html, csv or json"),
        out_dir: Path = typer.Option(Path("leaderboard"), "--out", help="folder that receives leaderboard.<format>"),
        baseline_model: str = typer.Option("raw", "--baseline-model", help="model whose scores are 0 after normalisation"),
        experiment: Optional[str] = typer.Option(None, "--experiment", help="MLflow experiment [default: releo-bench]"),
    ) -> None:
        """Build the leaderboard: groups, normalised IQM per family, ranks; print it (Markdown)."""
        from .errors import UsageError
        from .leaderboard import FORMATS, build_leaderboard, markdown_tables, write

        if fmt not in FORMATS:
            raise UsageError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
        if results and tracking_uri is not None:
            raise UsageError("give --results (files) or --tracking-uri (MLflow), not both")
        if results and experiment is not None:
            raise UsageError("--experiment selects MLflow runs; it does not apply to --results")
        board = build_leaderboard(results=list(results) if results else None,
                                  tracking_uri=tracking_uri, experiment=experiment, suite=suite,
                                  baseline_model=baseline_model)
        path = write(board, fmt, out_dir)
        sys.stdout.write(markdown_tables(board) if board["overall"] else "(no overall rows)\n")
        for note in board["notes"]:
            sys.stdout.write(f"note: {note}\n")
        sys.stdout.write(f"written: {path}\n")
