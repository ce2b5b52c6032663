"""Sending validated submissions to an MLflow server, idempotently, and the local queue for
when it cannot be reached (see :mod:`releo_bench.submit`)."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .errors import UsageError
from .results import atomic_write_text
from .tracking import DEFAULT_EXPERIMENT, find_runs, log_run

from .submit_checks import Submission, _plain

QUEUE_DIRNAME = "submit-queue"
QUEUE_FORMAT = 1

# Submissions are sent with few retries and a bounded timeout so that an unreachable server
# is noticed in seconds (the run is then queued), and without MLflow's "View run" lines on
# stdout; values the user set are kept.
HTTP_DEFAULTS = {
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.2",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}

# -- sending ----------------------------------------------------------------------------------

_env_lock = threading.Lock()
_env_users = 0
_env_set: list[str] = []


@contextmanager
def quick_http() -> Iterator[None]:
    """Set :data:`HTTP_DEFAULTS` (unless the user set them) for the duration; thread-safe."""
    global _env_users
    with _env_lock:
        if _env_users == 0:
            _env_set.clear()
            for key, value in HTTP_DEFAULTS.items():
                if key not in os.environ:
                    os.environ[key] = value
                    _env_set.append(key)
        _env_users += 1
    try:
        yield
    finally:
        with _env_lock:
            _env_users -= 1
            if _env_users == 0:
                for key in _env_set:
                    os.environ.pop(key, None)
                _env_set.clear()


def is_unreachable(exc: BaseException) -> bool:
    """True when a tracking failure means the server could not be reached (connection
    refused or reset, DNS, timeout, 429/5xx after retries): worth queueing and retrying."""
    import socket

    try:
        import requests
        request_errors: tuple[type[BaseException], ...] = (requests.exceptions.RequestException,)
    except ImportError:  # pragma: no cover
        request_errors = ()
    try:
        import urllib3
        request_errors += (urllib3.exceptions.HTTPError,)
    except ImportError:  # pragma: no cover
        pass
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, request_errors + (ConnectionError, TimeoutError, socket.gaierror)):
            return True
        status = getattr(cur, "get_http_status_code", None)
        if callable(status):
            try:
                code = int(status())
            except Exception:  # noqa: BLE001
                code = 0
            if code == 429 or code >= 500:
                return True
        cur = cur.__cause__ or cur.__context__
    return False


@dataclass
class Outcome:
    """What happened to one submission: ``submitted``, ``already submitted``, ``queued``,
    ``still queued``, ``failed`` or ``invalid``."""

    source: str
    run_id: str
    status: str
    detail: str = ""
    mlflow_run_id: str | None = None
    queue_file: Path | None = None


def _tag_filter(run_id: str) -> str:
    return f"tags.`releo.run_id` = '{run_id}'"  # run_id is [A-Za-z0-9_.-]: nothing to escape


@contextmanager
def _run_lock(queue_dir: Path, run_id: str) -> Iterator[None]:
    """Serialise check-then-log of one run_id among local processes and threads (so two
    local submits or flushes of the same run cannot both log it)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no local exclusion
        yield
        return
    locks = queue_dir / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    bucket = hashlib.sha256(run_id.encode()).hexdigest()[:2]  # 256 files at most
    with open(locks / f"{bucket}.lock", "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def send(sub: Submission, tracking_uri: str, experiment: str = DEFAULT_EXPERIMENT,
         queue_dir: Path | None = None) -> Outcome:
    """Log ``sub`` unless the server already has a FINISHED run with its ``releo.run_id``.

    Raises :class:`ReleoError` when the store fails (see :func:`is_unreachable`). Only the
    results.json goes up (plots are unvalidated binary files). Earlier incomplete attempts of
    the same run (FAILED, KILLED, or RUNNING after a crash) are deleted once this one is
    FINISHED, so the store converges to exactly one run per run_id.
    """
    queue_dir = Path(queue_dir) if queue_dir is not None else default_queue_dir()
    with quick_http(), _run_lock(queue_dir, sub.run_id):
        existing = find_runs(tracking_uri, experiment, _tag_filter(sub.run_id))
        done = [r for r in existing if r["status"] == "FINISHED"]
        if done:
            return Outcome(sub.source, sub.run_id, "already submitted",
                           mlflow_run_id=str(done[0]["run_id"]))
        with tempfile.TemporaryDirectory(prefix="releo-submit-") as empty:
            mlflow_run_id = log_run(sub.result, Path(empty), tracking_uri, experiment)
        stale = [r["run_id"] for r in existing if r["run_id"] != mlflow_run_id]
        if stale:
            try:
                from mlflow import MlflowClient

                client = MlflowClient(tracking_uri=tracking_uri)
                for run_id in stale:
                    client.delete_run(run_id)
            except Exception:  # noqa: BLE001 - best effort: the leaderboard reads FINISHED runs only
                pass
    return Outcome(sub.source, sub.run_id, "submitted", mlflow_run_id=mlflow_run_id)


# -- the local queue --------------------------------------------------------------------------

def default_queue_dir() -> Path:
    from .tracking import default_data_dir

    return default_data_dir() / QUEUE_DIRNAME


def queue_file(queue_dir: Path, run_id: str, tracking_uri: str, experiment: str) -> Path:
    target = hashlib.sha256(f"{tracking_uri}\n{experiment}".encode()).hexdigest()[:16]
    return Path(queue_dir) / f"{run_id}.{target}.json"


def enqueue(sub: Submission, tracking_uri: str, experiment: str = DEFAULT_EXPERIMENT,
            queue_dir: Path | None = None) -> Path:
    """Write ``sub`` into the queue (atomically; owner-only permissions, since the target
    URI may hold credentials). Queuing the same run for the same target again is a no-op."""
    queue_dir = Path(queue_dir) if queue_dir is not None else default_queue_dir()
    path = queue_file(queue_dir, sub.run_id, tracking_uri, experiment)
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
            if old.get("results") == sub.text:
                return path
        except (OSError, ValueError):
            pass  # unreadable entry: replace it with this good one
    entry = {
        "queue_format": QUEUE_FORMAT,
        "run_id": sub.run_id,
        "tracking_uri": tracking_uri,
        "experiment": experiment,
        "source": sub.source,
        "queued": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "results_sha256": hashlib.sha256(sub.text.encode("utf-8")).hexdigest(),
        "results": sub.text,
    }
    atomic_write_text(path, json.dumps(entry, indent=1) + "\n")  # mkstemp: mode 0600
    return path


@dataclass
class QueueEntry:
    path: Path
    run_id: str
    tracking_uri: str
    experiment: str
    source: str
    results: str


def read_entry(path: Path) -> QueueEntry:
    """A queue file; UsageError when it is not one (or its results were altered)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        entry = QueueEntry(path, str(raw["run_id"]), str(raw["tracking_uri"]),
                           str(raw["experiment"]), str(raw.get("source", "")), str(raw["results"]))
        digest = raw.get("results_sha256")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(_plain(f"{path}: not a readable submit-queue entry ({exc})")) from exc
    if digest != hashlib.sha256(entry.results.encode("utf-8")).hexdigest():
        raise UsageError(_plain(f"{path}: results_sha256: the queued results.json was altered"))
    return entry


def queued(queue_dir: Path | None = None) -> list[Path]:
    queue_dir = Path(queue_dir) if queue_dir is not None else default_queue_dir()
    return sorted(queue_dir.glob("*.json")) if queue_dir.is_dir() else []
