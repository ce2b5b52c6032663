"""End to end through the CLI: results.json, schema, MLflow, cache, determinism, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import torch

from releo_bench.cli import main
from releo_bench.results import json_schema, read_results
from releo_bench.metrics import STANDARD_METRICS
from releo_bench.sampling import label_subset

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_FILE = ROOT / "docs" / "results.schema.json"


def _run(tmp_path: Path, name: str, *extra: str, model="raw", task="mock-regression") -> tuple[int, Path]:
    out = tmp_path / name
    code = main(["run", "--model", model, "--task", task, "--output", str(out),
                 "--cache-dir", str(tmp_path / "cache"), *extra])
    return code, out / "results.json"


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory):
    """One tracked run and one identical rerun (cache hit), shared by several tests."""
    tmp = tmp_path_factory.mktemp("run")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    code1, first = _run(tmp, "first", "--seeds", "3", "--tracking-uri", uri)
    code2, second = _run(tmp, "second", "--seeds", "3", "--tracking-uri", uri)
    assert (code1, code2) == (0, 0)
    return uri, read_results(first), read_results(second), first


def test_results_json_validates_against_committed_schema(tracked_run):
    _, _, _, path = tracked_run
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.validate(json.loads(path.read_text()), schema)
    broken = json.loads(path.read_text())
    broken["metrics"]["rmse"]["direction"] = "sideways"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_committed_schema_matches_the_code():
    assert json.loads(SCHEMA_FILE.read_text()) == json_schema(), \
        "docs/results.schema.json is stale: run `make schema`"


def test_results_content(tracked_run):
    _, r, _, path = tracked_run
    assert r.model.name == "raw" and r.task.name == "mock-regression" and r.task.version == 1
    assert r.probe.name == "ridge" and r.seeds == [0, 1, 2] and len(r.per_seed) == 3
    assert set(r.task.data_hash) == {"train", "val", "test"}
    # every family of the regression standard set, each with seed and test-sample intervals
    assert set(r.metrics) == set(STANDARD_METRICS["regression"])
    assert {s.family for s in r.metrics.values()} == {"accuracy", "calibration", "proper_score"}
    for name, s in r.metrics.items():
        assert s.n_boot > 900 and s.sample_ci_grouped, name  # mock groups: fields of 4 pixels
        assert s.sample_ci_low <= s.mean + 1e-9 and s.mean - 1e-9 <= s.sample_ci_high, name
    assert r.metrics["picp_90"].direction == "target" and r.metrics["picp_90"].ideal == 0.9
    assert r.diagnostics["pit_histogram"]["density"] and r.diagnostics["coverage_curve"]["nominal"]
    assert sorted(r.plots) == ["coverage.png", "pit.png", "scatter.png"]
    assert all((path.parent / p).stat().st_size > 5000 for p in r.plots)
    rmse = [s.metrics["rmse"] for s in r.per_seed]
    assert r.metrics["rmse"].mean == pytest.approx(np.mean(rmse))
    assert r.metrics["rmse"].ci_low <= r.metrics["rmse"].mean <= r.metrics["rmse"].ci_high
    # the raw bands predict the generated peak fraction well: far better than the target spread
    assert r.metrics["rmse"].mean < 0.5 and r.metrics["r2"].mean > 0.9
    assert r.environment.packages["torch"].startswith("2.13")


def test_run_is_in_mlflow_with_params_metrics_and_artifact(tracked_run, tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    uri, r, _, _ = tracked_run
    assert r.mlflow["tracking_uri"] == uri
    mlflow.set_tracking_uri(uri)
    try:
        runs = mlflow.search_runs(experiment_names=["releo-bench"],
                                  filter_string=f"tags.`releo.run_id` = '{r.run_id}'")
    finally:
        mlflow.set_tracking_uri(None)
    assert len(runs) == 1
    row = runs.iloc[0]
    assert row["params.model.name"] == "raw" and row["params.task.name"] == "mock-regression"
    assert row["tags.releo.data_hash.test"] == r.task.data_hash["test"]
    assert row["metrics.rmse"] == pytest.approx(r.metrics["rmse"].mean)
    client = MlflowClient(uri)
    local = client.download_artifacts(row["run_id"], "results.json", str(tmp_path))
    assert json.loads(Path(local).read_text())["run_id"] == r.run_id
    assert sorted(Path(a.path).name for a in client.list_artifacts(row["run_id"], "plots")) == \
        sorted(r.plots)
    assert row["metrics.picp_90_sample_ci_low"] == pytest.approx(r.metrics["picp_90"].sample_ci_low)


def test_second_identical_run_hits_the_cache_and_gives_the_same_numbers(tracked_run):
    _, first, second, _ = tracked_run
    assert not any(first.cache.hits.values()) and all(second.cache.hits.values())
    assert second.cache.keys == first.cache.keys
    assert second.timings.embedding_s < first.timings.embedding_s
    assert [s.metrics for s in second.per_seed] == [s.metrics for s in first.per_seed]


def test_same_config_same_numbers_without_cache(tracked_run, tmp_path):
    _, first, _, _ = tracked_run
    code, path = _run(tmp_path, "nocache", "--seeds", "3", "--no-cache", "--tracking-uri", "none")
    assert code == 0
    r = read_results(path)
    assert r.cache.enabled is False and r.mlflow == {}
    assert [s.metrics for s in r.per_seed] == [s.metrics for s in first.per_seed]


def test_label_fraction_is_stratified_nested_and_seeded(tmp_path):
    y = np.random.default_rng(0).normal(size=400)
    a = label_subset(y, "regression", 0.1, seed=4)
    b = label_subset(y, "regression", 0.25, seed=4)
    assert set(a) <= set(b) and len(a) == 40 and len(b) == 100
    np.testing.assert_array_equal(a, label_subset(y, "regression", 0.1, seed=4))
    assert set(a) != set(label_subset(y, "regression", 0.1, seed=5))
    classes = np.repeat([0, 1, 2], [300, 60, 40])
    sub = label_subset(classes, "classification", 0.05, seed=0)
    assert np.bincount(classes[sub]).tolist() == [15, 3, 2]

    code, path = _run(tmp_path, "frac", "--seeds", "2", "--label-fraction", "0.25", "--tracking-uri", "none")
    r = read_results(path)
    assert code == 0 and r.label_fraction == 0.25 and [s.n_train for s in r.per_seed] == [40, 40]
    assert r.per_seed[0].metrics != r.per_seed[1].metrics  # seeds see different labels


def test_classification_run_reports_calibration(tmp_path):
    code, path = _run(tmp_path, "cls", "--seeds", "2", "--tracking-uri", "none",
                      "--model-option", "dim=32", model="random", task="mock-classification")
    r = read_results(path)
    assert code == 0 and r.probe.name == "logistic" and r.model.config == {"dim": 32, "seed": 0}
    assert {"overall_accuracy", "ece", "brier", "log_loss"} <= set(r.metrics)
    assert r.metrics["overall_accuracy"].mean > 0.6  # 3 classes: chance is 1/3
    assert r.model.weights_sha256 and len(r.model.weights_sha256) == 64


def test_config_file_and_flag_override(tmp_path):
    code, path = _run(tmp_path, "cfg", "--config", str(ROOT / "configs/runs/mock-regression-raw.yaml"),
                      "--seeds", "1", "--tracking-uri", "none")
    r = read_results(path)
    assert code == 0 and r.seeds == [0] and r.probe.params["alphas"] == [0.01, 0.1, 1.0, 10.0, 100.0]


@pytest.mark.parametrize("args, needle", [
    (["run", "--model", "raw", "--task", "mock-regression", "--label-fraction", "1.5"], "--label-fraction must be in (0, 1]"),
    (["run", "--model", "raw", "--task", "mock-regression", "--probe", "logistic"], "probe 'logistic' is for classification"),
    (["run", "--model", "raw", "--task", "mock-regression", "--model-option", "pooling=weekly"], "pooling must be 'stats' or 'per_date'"),
    (["run", "--model", "raw", "--task", "mock-regression", "--model-option", "nokey"], "key=value"),
    (["run", "--model", "raw"], "--model and --task are required"),
    (["run", "--model", "raw", "--task", "mock-regression", "--probe", "ridge", "--probe-param", "lambda=3"], "has no parameter(s) ['lambda']"),
])
def test_bad_usage_exits_2_with_a_message(args, needle, capsys, tmp_path):
    assert main([*args, "--tracking-uri", "none", "--output", str(tmp_path / "x")]) == 2
    assert needle in " ".join(capsys.readouterr().err.split())


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_gpu_exits_2(capsys, tmp_path):
    assert main(["run", "--model", "raw", "--task", "mock-regression", "--device", "cuda",
                 "--tracking-uri", "none", "--output", str(tmp_path)]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_unreachable_tracking_server_keeps_results_and_exits_1(tmp_path, monkeypatch, capsys):
    import socket

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, path = _run(tmp_path, "down", "--seeds", "1", "--tracking-uri", f"http://127.0.0.1:{port}")
    assert code == 1 and path.is_file()
    assert read_results(path).mlflow == {}
    assert "results are saved" in capsys.readouterr().err


def test_installed_entry_point_and_exit_codes():
    """The real console script: --help, every list, info, and a typo that suggests names."""
    exe = Path(sys.executable).parent / "releo-bench"
    ok = subprocess.run([str(exe), "--help"], capture_output=True, text=True)
    assert ok.returncode == 0 and "run" in ok.stdout
    for kind in ("models", "tasks", "probes", "metrics"):
        res = subprocess.run([str(exe), "list", kind], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
    assert "crps" in res.stdout
    res = subprocess.run([str(exe), "info", "model", "raw"], capture_output=True, text=True)
    assert res.returncode == 0 and json.loads(res.stdout)["modalities"]["s2"]["bands"][0] == "B2"
    res = subprocess.run([str(exe), "run", "--model", "raww", "--task", "lai"], capture_output=True, text=True)
    assert res.returncode == 2
    msg = " ".join(res.stderr.split())
    assert "unknown model 'raww'; did you mean 'raw'" in msg
    res = subprocess.run([str(exe), "run", "--model", "raw", "--task", "mock-regression", "--seeds", "x"],
                         capture_output=True, text=True)
    assert res.returncode == 2  # click's own usage errors map to 2 as well


def test_cache_hit_is_shown_in_the_output(tmp_path, capsys):
    for name in ("a", "b"):
        assert _run(tmp_path, name, "--seeds", "1", "--tracking-uri", "none")[0] == 0
    first, second = capsys.readouterr().out.split("embedding cache:")[1:]
    assert first.startswith(" miss") and second.startswith(" hit for train, val, test")
