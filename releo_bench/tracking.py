"""Copy a run's ``results.json`` into MLflow, so runs can be browsed, compared and ranked.

``results.json`` stays the source of truth; MLflow gets params, metrics, tags and the JSON
itself as an artifact. Everything goes through an :class:`mlflow.MlflowClient` bound to an
explicit URI (never the process-global ``mlflow.set_tracking_uri``) so that two stores can be
used from one process at once. ``mlflow`` takes ~2 s to import, hence the lazy imports.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .errors import ReleoError, UsageError
from .results import RunResult

DEFAULT_EXPERIMENT = "releo-bench"
DISABLED = ("none", "off")
# MLflow's limits (mlflow.utils.validation); values above them are rejected or cut silently.
MAX_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6000
MAX_TAG_VALUE_LENGTH = 8000
_TRUNCATED = "...[truncated]"
_BAD_KEY_CHARS = re.compile(r"[^\w./\- ]")


# -- where to track ---------------------------------------------------------------------------

def default_data_dir() -> Path:
    """``$RELEO_DATA_DIR`` or the platform's user data directory (created if missing)."""
    env = os.environ.get("RELEO_DATA_DIR")
    if env:
        path = Path(env).expanduser()
    else:
        import platformdirs

        path = Path(platformdirs.user_data_dir("releo-bench"))
    path = path.resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI`` when set, else an absolute SQLite store in the data directory.

    A per-user location (not MLflow's ``./mlflow.db``) keeps every run in one place whatever
    directory the benchmark is started from.
    """
    env = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if env:
        return env
    return f"sqlite:///{(default_data_dir() / 'mlflow.db').as_posix()}"


def resolve_tracking_uri(uri: str | None) -> str | None:
    """Turn a user's ``--tracking-uri`` into a URI, or ``None`` when tracking is switched off.

    ``None`` (or an empty string) means the default store; ``none``/``off`` disable tracking.
    Malformed http(s) URIs are rejected here, before a run spends time computing results.
    """
    if uri is None or not uri.strip():
        uri = default_tracking_uri()
    uri = uri.strip()
    if uri.lower() in DISABLED:
        return None
    _check_http_uri(uri)
    return uri


def _check_http_uri(uri: str) -> None:
    try:
        parts = urlsplit(uri)
    except ValueError as exc:
        if uri.lower().startswith(("http:", "https:")):
            raise UsageError(f"malformed tracking URI {uri!r}: {exc}") from exc
        return
    if parts.scheme.lower() not in ("http", "https"):
        return
    try:
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise UsageError(f"malformed tracking URI {redact_uri(uri)!r}: {exc}") from exc
    if not host or any(c.isspace() for c in uri):
        raise UsageError(f"malformed tracking URI {redact_uri(uri)!r}: expected "
                         "http(s)://HOST[:PORT][/PATH], e.g. http://127.0.0.1:5000")


def redact_uri(uri: str) -> str:
    """The URI with any password replaced, so it can appear in messages and logs."""
    try:
        parts = urlsplit(uri)
        if parts.password is None:
            return uri
        netloc = f"{parts.username}:***@{parts.hostname}"
        if parts.port is not None:
            netloc += f":{parts.port}"
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return uri


def _password(uri: str) -> str | None:
    try:
        return urlsplit(uri).password
    except ValueError:
        return None


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI; ``None`` for in-memory or other stores."""
    if not uri.startswith("sqlite:///"):
        return None
    raw = uri[len("sqlite:///"):].split("?", 1)[0]  # sqlite:////abs/x.db -> /abs/x.db
    if not raw or raw == ":memory:":
        return None
    return Path(raw).resolve()


# -- what to track ----------------------------------------------------------------------------

def _key(key: str) -> str:
    """Make ``key`` acceptable to MLflow: allowed characters, no path tricks, bounded length."""
    key = _BAD_KEY_CHARS.sub("_", key)
    key = "/".join(p if p not in ("", ".", "..") else "_" for p in key.split("/"))
    if len(key) > MAX_KEY_LENGTH:
        digest = hashlib.sha256(key.encode()).hexdigest()[:12]
        key = f"{key[:MAX_KEY_LENGTH - 13]}~{digest}"
    return key


def _clip(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - len(_TRUNCATED)] + _TRUNCATED


def _param_value(value: Any) -> str:
    if isinstance(value, str):
        text = value
    elif value is None or isinstance(value, (bool, int, float)):
        text = str(value)
    else:
        text = json.dumps(value, sort_keys=True, default=str)
    return _clip(text, MAX_PARAM_VALUE_LENGTH)


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> None:
    """Nested dicts become dotted keys (``probe.cv.folds``); lists are JSON strings."""
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _flatten(f"{prefix}.{k}", v, out)
    else:
        out[_key(prefix)] = _param_value(value)


def run_name(result: RunResult) -> str:
    return f"{result.model.name}-{result.task.name}-{result.probe.name}"


def run_params(result: RunResult) -> dict[str, str]:
    """What was asked for: model, task, probe and their options, seeds, label budget."""
    params: dict[str, str] = {}
    m, t, p = result.model, result.task, result.probe
    params["model.name"] = _param_value(m.name)
    params["model.version"] = _param_value(m.version)
    params["model.output"] = _param_value(m.output)
    params["model.embedding_shape"] = _param_value(m.embedding_shape)
    for k, v in m.config.items():
        _flatten(f"model.config.{k}", v, params)
    params["task.name"] = _param_value(t.name)
    params["task.version"] = _param_value(t.version)
    params["task.target"] = _param_value(t.target)
    params["task.target_kind"] = _param_value(t.target_kind)
    params["task.main_score"] = _param_value(t.main_score)
    for split, n in t.n_samples.items():
        params[_key(f"task.n_samples.{split}")] = _param_value(n)
    params["probe"] = _param_value(p.name)
    for k, v in p.params.items():
        _flatten(f"probe.{k}", v, params)
    params["label_fraction"] = _param_value(result.label_fraction)
    params["seeds"] = _param_value(result.seeds)
    params["n_seeds"] = _param_value(len(result.seeds))
    params["n_train"] = _param_value([s.n_train for s in result.per_seed])
    params["cache.enabled"] = _param_value(result.cache.enabled)
    params["env.releo_bench"] = _param_value(result.environment.releo_bench)
    params["env.python"] = _param_value(result.environment.python)
    params["env.device"] = _param_value(result.environment.device)
    params["env.device_name"] = _param_value(result.environment.device_name)
    return params


def run_metrics(result: RunResult) -> list[tuple[str, float, int]]:
    """``(key, value, step)``: seed-aggregated scores with CI, per-seed scores, timings."""
    rows: list[tuple[str, float, int]] = []
    for name, s in result.metrics.items():
        k = _key(name)
        rows += [(k, s.mean, 0), (f"{k}_ci_low", s.ci_low, 0), (f"{k}_ci_high", s.ci_high, 0),
                 (f"{k}_std", s.std, 0)]
        rows += [(f"{k}_{field}", float(v), 0) for field in ("sample_ci_low", "sample_ci_high")
                 if (v := getattr(s, field)) is not None]
    for name, s in result.unscaled_metrics.items():
        rows.append((_key(f"unscaled/{name}"), s.mean, 0))
    for seed_result in result.per_seed:
        for name, value in seed_result.metrics.items():
            rows.append((_key(f"seed/{name}"), float(value), seed_result.seed))
    for field, value in result.timings.model_dump().items():
        stem = field[:-2] if field.endswith("_s") else field
        rows.append((_key(f"time/{stem}_s"), float(value), 0))
    return rows


def run_tags(result: RunResult) -> dict[str, str]:
    """Identity of the run, for filtering (``tags.`releo.task` = '...'``) and de-duplication."""
    m, t = result.model, result.task
    test_hash = t.data_hash.get("test")
    tags: dict[str, str | None] = {
        "releo.model": m.name,
        "releo.model_version": m.version,
        "releo.task": t.name,
        "releo.task_version": str(t.version),
        "releo.probe": result.probe.name,
        "releo.main_score": t.main_score,
        "releo.train_task": (f"{t.train_task['name']}@{t.train_task['version']}"
                             if t.train_task else None),
        "releo.data_hash": test_hash,
        "releo.weights_sha256": m.weights_sha256,
        "releo.schema_version": result.schema_version,
        "releo.code_version": result.environment.code_version,
        "releo.run_id": result.run_id,
        "releo.label_fraction": repr(result.label_fraction),
        "releo.created": result.created,
    }
    for split, h in t.data_hash.items():
        tags[_key(f"releo.data_hash.{split}")] = h
    return {k: _clip(v, MAX_TAG_VALUE_LENGTH) for k, v in tags.items() if v is not None}


def _epoch_ms(iso: str) -> int:
    try:
        dt = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return int(time.time() * 1000)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)


# -- talking to MLflow ------------------------------------------------------------------------

@contextmanager
def _tracking_errors(uri: str, action: str) -> Iterator[None]:
    """Turn any MLflow/network/filesystem failure into a ReleoError naming the store.

    Tracking is a copy of results already on disk, so the caller reports and carries on.
    """
    try:
        yield
    except ReleoError:
        raise
    except Exception as exc:  # noqa: BLE001 - mlflow raises many types (HTTP, SQL, OS)
        msg = str(exc).strip().splitlines()
        detail = msg[0] if msg else type(exc).__name__
        secret = _password(uri)
        if secret:  # MLflow's own messages repeat the full URL
            detail = detail.replace(secret, "***")
        raise ReleoError(f"MLflow tracking at {redact_uri(uri)} failed while {action}: "
                         f"{type(exc).__name__}: {_clip(detail, 500)}") from exc


def _client(tracking_uri: str) -> Any:
    from mlflow import MlflowClient

    path = _sqlite_path(tracking_uri)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=tracking_uri)


def _experiment_id(client: Any, tracking_uri: str, name: str, create: bool) -> str | None:
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return str(exp.experiment_id)
    if not create:
        return None
    # Without an explicit location MLflow puts a SQLite store's artifacts in ./mlruns of
    # whatever directory we run from; keep them next to the database instead.
    db = _sqlite_path(tracking_uri)
    location = (db.parent / "mlartifacts").as_uri() if db is not None else None
    try:
        return str(client.create_experiment(name, artifact_location=location))
    except MlflowException:
        exp = client.get_experiment_by_name(name)  # created concurrently by another process
        if exp is None:
            raise
        return str(exp.experiment_id)


def log_run(result: RunResult, run_dir: Path, tracking_uri: str,
            experiment: str = DEFAULT_EXPERIMENT) -> str:
    """Log one run (params, metrics, tags, ``results.json`` and ``*.png`` plots); return its id.

    The uploaded ``results.json`` is ``result`` serialised exactly as ``write_results`` does.
    HTTP retries/timeouts follow MLflow's ``MLFLOW_HTTP_REQUEST_*`` environment variables.
    Any failure raises :class:`ReleoError`; a run left half-logged is marked FAILED.
    """
    from mlflow.entities import Metric, Param

    run_dir = Path(run_dir)
    finished_ms = _epoch_ms(result.created)
    started_ms = finished_ms - int(result.timings.total_s * 1000)
    tags = run_tags(result)
    with _tracking_errors(tracking_uri, "connecting"):
        client = _client(tracking_uri)
        exp_id = _experiment_id(client, tracking_uri, experiment, create=True)
    with _tracking_errors(tracking_uri, "creating the run"):
        run = client.create_run(exp_id, start_time=started_ms, tags=tags, run_name=run_name(result))
    run_id = str(run.info.run_id)
    ok = False
    try:
        with _tracking_errors(tracking_uri, f"logging run {run_id}"):
            metrics = [Metric(k, v, finished_ms, step) for k, v, step in run_metrics(result)]
            params = [Param(k, v) for k, v in run_params(result).items()]
            client.log_batch(run_id, metrics=metrics, params=params)  # tags: set at creation
        with _tracking_errors(tracking_uri, f"uploading artifacts of run {run_id}"):
            with tempfile.TemporaryDirectory(prefix="releo-mlflow-") as tmp:
                copy = Path(tmp) / "results.json"
                copy.write_text(result.model_dump_json(indent=2) + "\n", encoding="utf-8")
                client.log_artifact(run_id, str(copy))
            for png in sorted(run_dir.glob("*.png")):
                client.log_artifact(run_id, str(png), "plots")
        with _tracking_errors(tracking_uri, f"closing run {run_id}"):
            client.set_terminated(run_id, "FINISHED", end_time=max(finished_ms, started_ms))
        ok = True
    finally:
        if not ok:
            try:
                client.set_terminated(run_id, "FAILED")
            except Exception:  # noqa: BLE001 - best effort; the original error is what matters
                pass
    return run_id


def find_runs(tracking_uri: str, experiment: str = DEFAULT_EXPERIMENT,
              filter_string: str = "") -> list[dict[str, Any]]:
    """All runs of ``experiment`` matching an MLflow ``filter_string``, newest first, as dicts.

    A missing experiment yields ``[]``; store failures raise :class:`ReleoError`.
    """
    out: list[dict[str, Any]] = []
    with _tracking_errors(tracking_uri, "searching runs"):
        client = _client(tracking_uri)
        exp_id = _experiment_id(client, tracking_uri, experiment, create=False)
        if exp_id is None:
            return []
        token: str | None = None
        while True:
            page = client.search_runs([exp_id], filter_string=filter_string, max_results=1000,
                                      order_by=["attributes.start_time DESC"], page_token=token)
            for r in page:
                out.append({
                    "run_id": r.info.run_id,
                    "run_name": r.info.run_name,
                    "status": r.info.status,
                    "start_time": r.info.start_time,
                    "artifact_uri": r.info.artifact_uri,
                    "params": dict(r.data.params),
                    "metrics": dict(r.data.metrics),
                    "tags": {k: v for k, v in r.data.tags.items()},
                })
            token = page.token
            if not token:
                break
    return out


__all__ = [
    "DEFAULT_EXPERIMENT", "default_data_dir", "default_tracking_uri", "find_runs", "log_run",
    "redact_uri", "resolve_tracking_uri", "run_metrics", "run_name", "run_params", "run_tags",
]
