"""MLflow tracking: what a run looks like in a store, local (SQLite) and through a real server."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from releo_bench.errors import ReleoError, UsageError
from releo_bench.mlflow_server import free_port, start_mlflow_server
from releo_bench.results import RunResult, write_results
from releo_bench.tracking import (
    MAX_PARAM_VALUE_LENGTH,
    default_tracking_uri,
    find_runs,
    log_run,
    resolve_tracking_uri,
    run_metrics,
    run_params,
)

# Plots are uploaded as opaque files: a PNG signature plus filler is enough for the round trip.
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))


def make_result(
    *,
    run_id: str = "20250101T120000Z-a1b2c3",
    model: str = "presto",
    task: str = "biomass-eu",
    probe: str = "ridge",
    seeds: tuple[int, ...] = (0, 1, 2),
    label_fraction: float = 0.5,
    probe_params: dict[str, Any] | None = None,
) -> RunResult:
    """A complete, schema-valid record of a plausible regression run."""
    per_seed = [
        {"seed": s, "n_train": 400,
         "metrics": {"r2": 0.61 + 0.01 * s, "rmse": 21.5 - 0.3 * s, "crps": 11.2 + 0.1 * s}}
        for s in seeds
    ]

    def summary(name: str, direction: str, family: str) -> dict[str, Any]:
        values = [p["metrics"][name] for p in per_seed]
        mean = sum(values) / len(values)
        return {"mean": mean, "ci_low": mean - 0.02, "ci_high": mean + 0.02, "std": 0.01,
                "n": len(values), "direction": direction, "family": family}

    raw = {
        "schema_version": "1.1",
        "run_id": run_id,
        "created": "2025-01-01T12:00:00+00:00",
        "model": {"name": model, "version": "1.0.2", "weights_sha256": "ab" * 32,
                  "config": {"pooling": "mean", "bands": ["B02", "B03", "B04", "B08"]},
                  "embedding_shape": [128], "output": "pooled"},
        "task": {"name": task, "version": 2,
                 "data_hash": {"train": "1" * 64, "test": "2" * 64},
                 "target": "agb_t_ha", "target_kind": "regression", "main_score": "r2",
                 "n_samples": {"train": 800, "test": 200}},
        "probe": {"name": probe,
                  "params": probe_params if probe_params is not None
                  else {"alphas": [0.1, 1.0, 10.0], "cv": {"folds": 5}, "standardize": True},
                  "fitted_params": [{"alpha": 1.0} for _ in seeds]},
        "seeds": list(seeds),
        "label_fraction": label_fraction,
        "per_seed": per_seed,
        "metrics": {"r2": summary("r2", "higher", "accuracy"),
                    "rmse": summary("rmse", "lower", "accuracy"),
                    "crps": summary("crps", "lower", "proper_score")},
        "timings": {"data_s": 0.8, "embedding_s": 12.5, "probe_s": 1.25, "metrics_s": 0.05,
                    "total_s": 14.6},
        "cache": {"enabled": True, "hits": {"train": False, "test": True},
                  "resumed_chunks": {"train": 0, "test": 0},
                  "keys": {"train": "k" * 16, "test": "q" * 16}},
        "environment": {"releo_bench": "0.1.0", "python": "3.11.9", "platform": "Linux-x86_64",
                        "packages": {"torch": "2.13.0", "numpy": "2.1.0"}, "device": "cpu",
                        "device_name": "cpu", "code_version": "0123456789abcdef"},
        "mlflow": {},
    }
    return RunResult.model_validate(raw)


def make_run_dir(path: Path, result: RunResult) -> Path:
    """A run directory as the runner leaves it: results.json plus plots."""
    path.mkdir(parents=True, exist_ok=True)
    write_results(result, path / "results.json")
    (path / "reliability.png").write_bytes(PNG)
    (path / "residuals.png").write_bytes(PNG)
    return path


def _client(uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def assert_run_matches(uri: str, mlflow_run_id: str, result: RunResult, run_dir: Path,
                       download_to: Path) -> None:
    """The run in the store carries the same numbers, identity and files as ``result``."""
    client = _client(uri)
    run = client.get_run(mlflow_run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == f"{result.model.name}-{result.task.name}-{result.probe.name}"

    params = run.data.params
    assert params["model.name"] == result.model.name
    assert params["model.version"] == result.model.version
    assert params["task.name"] == result.task.name
    assert params["task.version"] == str(result.task.version)
    assert params["probe"] == result.probe.name
    assert json.loads(params["probe.alphas"]) == result.probe.params["alphas"]
    assert params["probe.cv.folds"] == "5"
    assert json.loads(params["seeds"]) == result.seeds
    assert float(params["label_fraction"]) == result.label_fraction
    assert json.loads(params["n_train"]) == [s.n_train for s in result.per_seed]
    assert params["task.n_samples.test"] == "200"

    metrics = run.data.metrics
    for name, s in result.metrics.items():
        assert metrics[name] == pytest.approx(s.mean, abs=0, rel=1e-12)
        assert metrics[f"{name}_ci_low"] == pytest.approx(s.ci_low, abs=0, rel=1e-12)
        assert metrics[f"{name}_ci_high"] == pytest.approx(s.ci_high, abs=0, rel=1e-12)
    assert metrics["time/embedding_s"] == result.timings.embedding_s
    assert metrics["time/total_s"] == result.timings.total_s
    history = client.get_metric_history(mlflow_run_id, "seed/r2")
    assert sorted((m.step, m.value) for m in history) == [
        (s.seed, s.metrics["r2"]) for s in result.per_seed]

    tags = run.data.tags
    assert tags["releo.model"] == result.model.name
    assert tags["releo.model_version"] == result.model.version
    assert tags["releo.task"] == result.task.name
    assert tags["releo.task_version"] == str(result.task.version)
    assert tags["releo.probe"] == result.probe.name
    assert tags["releo.data_hash"] == result.task.data_hash["test"]
    assert tags["releo.weights_sha256"] == result.model.weights_sha256
    assert tags["releo.schema_version"] == result.schema_version
    assert tags["releo.code_version"] == result.environment.code_version
    assert tags["releo.run_id"] == result.run_id
    assert float(tags["releo.label_fraction"]) == result.label_fraction

    local = Path(client.download_artifacts(mlflow_run_id, "results.json", str(download_to)))
    assert json.loads(local.read_text()) == json.loads((run_dir / "results.json").read_text())
    plots = sorted(a.path for a in client.list_artifacts(mlflow_run_id, "plots"))
    assert plots == ["plots/reliability.png", "plots/residuals.png"]


# -- local SQLite store -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def sqlite_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, RunResult, Path]:
    """One run logged to a fresh SQLite store (creating the schema takes a few seconds)."""
    root = tmp_path_factory.mktemp("sqlite-store")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    result = make_result()
    run_dir = make_run_dir(root / "run", result)
    return uri, log_run(result, run_dir, uri), result, run_dir


def test_log_run_to_sqlite(sqlite_run: tuple[str, str, RunResult, Path], tmp_path: Path) -> None:
    uri, mlflow_run_id, result, run_dir = sqlite_run
    assert_run_matches(uri, mlflow_run_id, result, run_dir, tmp_path)


def test_sqlite_artifacts_stay_next_to_the_database(sqlite_run: tuple[str, str, RunResult, Path]) -> None:
    uri, mlflow_run_id, _, _ = sqlite_run
    artifact_uri = _client(uri).get_run(mlflow_run_id).info.artifact_uri
    db_dir = Path(uri[len("sqlite:///"):]).parent
    assert artifact_uri.startswith((db_dir / "mlartifacts").as_uri())


def test_find_runs_filters_on_tags(sqlite_run: tuple[str, str, RunResult, Path]) -> None:
    uri, mlflow_run_id, result, _ = sqlite_run
    runs = find_runs(uri, filter_string=f"tags.`releo.run_id` = '{result.run_id}'")
    assert [r["run_id"] for r in runs] == [mlflow_run_id]
    assert runs[0]["metrics"]["r2"] == pytest.approx(result.metrics["r2"].mean)
    assert runs[0]["params"]["probe"] == "ridge"
    assert find_runs(uri, filter_string="tags.`releo.task` = 'no-such-task'") == []
    assert find_runs(uri, experiment="no-such-experiment") == []


def test_log_run_uses_the_given_experiment(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"  # parent created on demand
    result = make_result(run_id="other-run", probe="knn", probe_params={"k": 5})
    run_id = log_run(result, make_run_dir(tmp_path / "run", result), uri, experiment="ablation")
    assert [r["run_id"] for r in find_runs(uri, experiment="ablation")] == [run_id]
    assert find_runs(uri) == []


# -- what gets logged (no store needed) -------------------------------------------------------

def test_params_are_flattened_and_within_mlflow_limits() -> None:
    result = make_result(probe_params={"grid": list(range(5000)), "opt": {"lr": 0.1, "odd key!": 1},
                                       "empty": {}, "none": None})
    params = run_params(result)
    assert params["probe.opt.lr"] == "0.1"
    assert params["probe.opt.odd key_"] == "1"
    assert params["probe.empty"] == "{}"
    assert params["probe.none"] == "None"
    assert len(params["probe.grid"]) == MAX_PARAM_VALUE_LENGTH
    assert params["probe.grid"].endswith("[truncated]")
    assert all(len(k) <= 250 and len(v) <= MAX_PARAM_VALUE_LENGTH for k, v in params.items())


def test_metric_keys() -> None:
    keys = {(k, step) for k, _, step in run_metrics(make_result(seeds=(3, 7)))}
    assert {("r2", 0), ("r2_ci_low", 0), ("r2_ci_high", 0), ("seed/r2", 3), ("seed/r2", 7),
            ("time/data_s", 0), ("time/total_s", 0)} <= keys


def test_importing_tracking_does_not_import_mlflow() -> None:
    code = ("import sys, releo_bench.tracking, releo_bench.mlflow_server; "
            "assert 'mlflow' not in sys.modules, 'mlflow imported eagerly'")
    subprocess.run([sys.executable, "-c", code], check=True)


# -- choosing the store -----------------------------------------------------------------------

def test_default_tracking_uri_prefers_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    monkeypatch.setenv("RELEO_DATA_DIR", str(tmp_path / "unused"))
    assert default_tracking_uri() == "http://127.0.0.1:5999"
    assert resolve_tracking_uri(None) == "http://127.0.0.1:5999"


def test_default_tracking_uri_uses_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("RELEO_DATA_DIR", str(tmp_path / "data"))
    uri = default_tracking_uri()
    assert uri == f"sqlite:///{(tmp_path / 'data').resolve() / 'mlflow.db'}"
    assert uri.startswith("sqlite:////")  # absolute path
    assert (tmp_path / "data").is_dir()


def test_default_tracking_uri_falls_back_to_user_data_dir(monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    import platformdirs

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("RELEO_DATA_DIR", raising=False)
    monkeypatch.setattr(platformdirs, "user_data_dir", lambda app: str(tmp_path / "user" / app))
    assert default_tracking_uri() == f"sqlite:///{tmp_path / 'user' / 'releo-bench' / 'mlflow.db'}"


@pytest.mark.parametrize("word", ["none", "off", "OFF", " none "])
def test_tracking_can_be_disabled(word: str) -> None:
    assert resolve_tracking_uri(word) is None


def test_resolve_keeps_explicit_uris() -> None:
    for uri in ("sqlite:////tmp/x/mlflow.db", "http://127.0.0.1:5000", "https://mlflow.example.org/p"):
        assert resolve_tracking_uri(uri) == uri


@pytest.mark.parametrize("uri", ["http://", "http://:5000", "https://host:notaport",
                                 "http://host name:5000", "http://[::1"])
def test_malformed_http_uri_is_a_usage_error(uri: str) -> None:
    with pytest.raises(UsageError, match="malformed tracking URI"):
        resolve_tracking_uri(uri)


# -- failures ---------------------------------------------------------------------------------

def test_unreachable_server_raises_quickly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = make_result()
    started = time.monotonic()
    with pytest.raises(ReleoError, match=uri.replace(".", r"\.")):
        log_run(result, make_run_dir(tmp_path / "run", result), uri)
    assert time.monotonic() - started < 15


def test_password_is_not_shown_in_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    uri = f"http://me:s3cret@127.0.0.1:{free_port()}"
    result = make_result()
    with pytest.raises(ReleoError) as info:
        log_run(result, make_run_dir(tmp_path / "run", result), uri)
    assert "s3cret" not in str(info.value)
    assert "me:***@127.0.0.1" in str(info.value)


# -- a real tracking server -------------------------------------------------------------------

@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A local ``mlflow server`` (SQLite backend, proxied artifacts), started once per session."""
    root = tmp_path_factory.mktemp("mlflow-server")
    with start_mlflow_server(f"sqlite:///{root / 'mlflow.db'}", root / "artifacts") as url:
        yield url


@pytest.mark.server
def test_log_run_through_server(mlflow_server: str, tmp_path: Path) -> None:
    result = make_result(run_id="via-server")
    run_dir = make_run_dir(tmp_path / "run", result)
    mlflow_run_id = log_run(result, run_dir, mlflow_server)
    runs = find_runs(mlflow_server, filter_string="tags.`releo.run_id` = 'via-server'")
    assert [r["run_id"] for r in runs] == [mlflow_run_id]
    assert runs[0]["artifact_uri"].startswith("mlflow-artifacts:")
    assert_run_matches(mlflow_server, mlflow_run_id, result, run_dir, tmp_path / "download")


@pytest.mark.server
def test_server_not_ready_in_time_is_stopped(tmp_path: Path) -> None:
    port = free_port()
    started = time.monotonic()
    with pytest.raises(ReleoError, match=f"127.0.0.1:{port} not ready after 0.5 s"):
        with start_mlflow_server(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "artifacts",
                                 port=port, timeout=0.5):
            pass
    assert time.monotonic() - started < 12
    import socket

    with socket.socket() as s:  # the half-started server is gone: the port is free again
        s.bind(("127.0.0.1", port))
