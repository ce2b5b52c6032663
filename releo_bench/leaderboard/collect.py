"""Read the runs a leaderboard is built from: ``results.json`` files or an MLflow store.

Either way the source of truth is each run's ``results.json`` (in MLflow: the artifact that
:func:`releo_bench.tracking.log_run` uploads), validated with the results model. MLflow's
params and metrics are a copy and are not read. Runs that did not finish (status other than
``FINISHED``) and runs without a readable ``results.json`` are skipped and reported.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ReleoError, UsageError
from ..results import RunResult, read_results

RESULTS_FILE = "results.json"


@dataclass
class Collection:
    """The runs read, where they came from, and what was skipped (with the reason)."""

    runs: list[RunResult] = field(default_factory=list)
    source: str = "files"
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (where, why)
    n_read: int = 0


def _dedupe(runs: list[RunResult]) -> list[RunResult]:
    """One record per ``run_id`` (a run logged twice, or a file given twice): the newest."""
    by_id: dict[str, RunResult] = {}
    for r in runs:
        old = by_id.get(r.run_id)
        if old is None or r.created >= old.created:
            by_id[r.run_id] = r
    return sorted(by_id.values(), key=lambda r: (r.created, r.run_id))


def _result_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.rglob(RESULTS_FILE) if p.is_file())
    raise UsageError(f"--results {path}: no such file or directory (expected a results.json "
                     "or a folder holding run directories)")


def collect_from_paths(paths: list[Path] | list[str]) -> Collection:
    """Runs from ``results.json`` files and from folders searched recursively for them.

    A path that does not exist is a usage error; an invalid file is skipped and reported.
    """
    col = Collection(source="files")
    runs: list[RunResult] = []
    for p in paths:
        files = _result_files(Path(p))
        if not files:
            col.skipped.append((str(p), f"no {RESULTS_FILE} found"))
        for f in files:
            col.n_read += 1
            try:
                runs.append(read_results(f))
            except UsageError as exc:  # DataError: unreadable or not a valid results.json
                col.skipped.append((str(f), str(exc)))
    col.runs = _dedupe(runs)
    return col


def collect_from_mlflow(tracking_uri: str, experiment: str) -> Collection:
    """Runs of ``experiment`` in the store at ``tracking_uri``: each FINISHED run's
    ``results.json`` artifact, downloaded and validated. Store failures raise ReleoError."""
    from ..tracking import _client, _sqlite_path, _tracking_errors, find_runs, redact_uri

    db = _sqlite_path(tracking_uri)
    if db is not None and not db.is_file():  # reading must not create an empty store
        raise UsageError(f"no MLflow store at {db} ({redact_uri(tracking_uri)}): no runs were "
                         "tracked there; give --tracking-uri or --results PATH")
    col = Collection(source=redact_uri(tracking_uri))
    listed = find_runs(tracking_uri, experiment)
    runs: list[RunResult] = []
    with _tracking_errors(tracking_uri, "downloading results.json artifacts"):
        client = _client(tracking_uri)
    with tempfile.TemporaryDirectory(prefix="releo-leaderboard-") as tmp:
        for i, info in enumerate(listed):
            run_id = info["run_id"]
            col.n_read += 1
            if info["status"] != "FINISHED":
                col.skipped.append((f"mlflow run {run_id}", f"status {info['status']}"))
                continue
            dst = Path(tmp) / str(i)
            dst.mkdir()
            try:
                with _tracking_errors(tracking_uri, f"downloading results.json of run {run_id}"):
                    local = client.download_artifacts(run_id, RESULTS_FILE, str(dst))
            except ReleoError as exc:
                col.skipped.append((f"mlflow run {run_id}", f"no readable {RESULTS_FILE} ({exc})"))
                continue
            try:
                runs.append(read_results(local))
            except UsageError as exc:
                col.skipped.append((f"mlflow run {run_id}", str(exc).replace(str(local), RESULTS_FILE)))
    col.runs = _dedupe(runs)
    return col


__all__ = ["Collection", "RESULTS_FILE", "collect_from_mlflow", "collect_from_paths"]
