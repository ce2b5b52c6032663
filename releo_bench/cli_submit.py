"""CLI: ``releo-bench submit`` (validate results.json files, send them to an MLflow server,
queue them while it is unreachable) and ``releo-bench submit --flush``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def _line(o) -> str:  # noqa: ANN001 - submit.Outcome
    if o.status == "submitted":
        return f"submitted {o.source} (run {o.run_id}) -> MLflow run {o.mlflow_run_id}"
    if o.status == "already submitted":
        return (f"{o.source}: run {o.run_id} already submitted (MLflow run {o.mlflow_run_id}); "
                "not logged again")
    if o.status == "queued":
        return f"{o.source}: run {o.run_id} queued -> {o.queue_file}"
    if o.status == "still queued":
        return f"{o.source}: run {o.run_id} still queued ({o.queue_file}): server unreachable"
    return f"{o.source}: run {o.run_id} {o.status}: {o.detail}"


def register(app: typer.Typer) -> None:
    @app.command()
    def submit(
        results: Optional[list[Path]] = typer.Argument(None, help="results.json files or run directories (searched for results.json)"),
        tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow server to submit to (default: $MLFLOW_TRACKING_URI); with --flush: only entries queued for it"),
        suite: Optional[str] = typer.Option(None, "--suite", help="require the submission to cover this suite (name or YAML path): every task, probe, label fraction, seeds 0..n-1"),
        queue_dir: Optional[Path] = typer.Option(None, "--queue-dir", help="where submissions wait while the server is unreachable (default: <data dir>/submit-queue)"),
        flush: bool = typer.Option(False, "--flush", help="send the queued submissions instead"),
        experiment: Optional[str] = typer.Option(None, "--experiment", help="MLflow experiment (default: releo-bench); with --flush: only entries queued for it"),
    ) -> None:
        """Validate results.json files and log them to a shared MLflow server (exit 2 on an
        invalid file, nothing sent); queued locally when the server is unreachable."""
        from . import submit as sm
        from .errors import UsageError
        from .tracking import DEFAULT_EXPERIMENT, redact_uri

        qdir = queue_dir if queue_dir is not None else sm.default_queue_dir()
        if flush:
            if results or suite:
                raise UsageError("--flush sends the queue: give no RESULTS and no --suite with it")
            if not sm.queued(qdir):
                typer.echo(f"submit queue {qdir} is empty: nothing to send")
                return
            outcomes = sm.flush(qdir, tracking_uri, experiment,
                                on_outcome=lambda o: typer.echo(_line(o), err=o.status not in (
                                    "submitted", "already submitted")))
            others = sm.other_targets(qdir, tracking_uri, experiment)
            sent = sum(o.status in ("submitted", "already submitted") for o in outcomes)
            left = [o for o in outcomes if o.status not in ("submitted", "already submitted")]
            typer.echo(f"flushed {qdir}: {sent} sent or already on the server, {len(left)} left "
                       "in the queue")
            if others:
                typer.echo("also queued for other targets (not flushed): " + "; ".join(others))
            if any(o.status == "invalid" for o in left):
                raise typer.Exit(2)
            if left:
                down = next((o.detail for o in left if o.status == "still queued"), "")
                if down:
                    typer.echo(f"error: {down}", err=True)
                raise typer.Exit(1)
            return

        uri = sm.target_uri(tracking_uri)
        exp = experiment or DEFAULT_EXPERIMENT
        outcomes = sm.submit(results or [], uri, suite=suite, experiment=exp, queue_dir=qdir,
                             on_outcome=lambda o: typer.echo(_line(o), err=o.status == "failed"))
        n = len(outcomes)
        count = {s: sum(o.status == s for o in outcomes)
                 for s in ("submitted", "already submitted", "queued", "failed")}
        typer.echo(f"{n} valid results.json file(s)"
                   + (f", covering suite {suite}" if suite else "")
                   + f"; {redact_uri(uri)} (experiment {exp}): "
                   + ", ".join(f"{v} {k}" for k, v in count.items() if v))
        queued = [o for o in outcomes if o.status == "queued"]
        failed = [o for o in outcomes if o.status == "failed"]
        if queued:
            typer.echo(f"MLflow server {redact_uri(uri)} is unreachable ({queued[0].detail}); "
                       f"{len(queued)} submission(s) queued in {qdir}. Send them later with "
                       f"`releo-bench submit --flush`.")
        if failed:
            typer.echo(f"error: {len(failed)} of {n} submission(s) were refused by "
                       f"{redact_uri(uri)} (see above)", err=True)
            raise typer.Exit(1)
