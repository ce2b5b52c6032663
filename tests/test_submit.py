"""``releo-bench submit``: validation before anything is sent, idempotent logging to a real
MLflow server, the offline queue and its flush, concurrent submissions."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from releo_bench.cli import main
from releo_bench.mlflow_server import free_port, start_mlflow_server
from releo_bench.runner import RunConfig, run
from releo_bench.submit import (
    MAX_BYTES,
    find_results,
    flush,
    queued,
    submit,
    validate_bytes,
    validate_paths,
)
from releo_bench.errors import UsageError
from releo_bench.suites import load_suite
from releo_bench.tracking import find_runs

ALISE_SHA = "b70b3fa4befad6a341a8419ec0af7023e41514c91cb1acab2537d72251934e31"


# -- fixtures ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real run directories (raw encoder, mock regression, 2 seeds): 'a' (all labels), 'half'
    (50 % of labels), 'c0'..'c7' (concurrency), 'q0', 'q1' (queue)."""
    root = tmp_path_factory.mktemp("submit-runs")
    out: dict[str, Path] = {}
    with pytest.MonkeyPatch.context() as mp:  # module scope: set what conftest sets per test
        mp.setenv("RELEO_CACHE_DIR", str(root / "cache"))
        mp.setenv("RELEO_DATA_DIR", str(root / "data"))
        for name in ["a", "half", *(f"c{i}" for i in range(8)), "q0", "q1"]:
            outcome = run(RunConfig(model="raw", task="mock-regression", seeds=2,
                                    label_fraction=0.5 if name == "half" else 1.0,
                                    tracking_uri="none", output=root / name, plots=False,
                                    n_boot=0, device="cpu"))
            out[name] = outcome.output_dir
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("submit-server")
    with start_mlflow_server(f"sqlite:///{root / 'mlflow.db'}", root / "artifacts") as url:
        yield url


def _raw(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "results.json").read_text())


def _write(path: Path, raw: dict[str, Any] | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(raw if isinstance(raw, str) else json.dumps(raw, indent=2))
    return path


def _artifact(url: str, mlflow_run_id: str, dest: Path) -> dict[str, Any]:
    from mlflow import MlflowClient

    local = MlflowClient(tracking_uri=url).download_artifacts(mlflow_run_id, "results.json", str(dest))
    return json.loads(Path(local).read_text())


def _runs_for(url: str, run_id: str) -> list[dict[str, Any]]:
    return find_runs(url, filter_string=f"tags.`releo.run_id` = '{run_id}'")


# -- rejected before anything is sent (exit 2, file and field named) --------------------------

def _tamper(change):  # noqa: ANN001, ANN202
    def apply(raw: dict[str, Any]) -> dict[str, Any] | str:
        return change(raw) or raw
    return apply


REJECTIONS = {
    # name: (edit of a valid results.json, words the message must hold)
    "malformed-json": (lambda raw: json.dumps(raw)[:-20], ["not valid JSON"]),
    "schema-version": (_tamper(lambda r: r.update(schema_version="0.9")), ["schema_version", "0.9"]),
    "script-in-string": (_tamper(lambda r: r["model"].update(version="1<script>alert(1)</script>")),
                         ["model.version", "<script"]),
    "javascript-url": (_tamper(lambda r: r["probe"]["params"].update(note="javascript:alert(1)")),
                       ["probe.params.note", "javascript:"]),
    "control-char": (_tamper(lambda r: r["environment"].update(device_name="cpu\x1b[2J")),
                     ["environment.device_name", "control character"]),
    "non-finite": (_tamper(lambda r: r["metrics"]["crps"].update(mean=float("nan"))),
                   ["metrics.crps.mean", "non-finite"]),  # json.dumps writes NaN
    "tampered-mean": (_tamper(lambda r: r["metrics"]["rmse"].update(mean=r["metrics"]["rmse"]["mean"] * 0.9)),
                      ["metrics.rmse.mean", "per-seed"]),
    "tampered-seed-value": (_tamper(lambda r: r["per_seed"][1]["metrics"].update(r2=0.99)),
                            ["metrics.r2", "per-seed"]),
    "probability-out-of-range": (_tamper(lambda r: r["per_seed"][0]["metrics"].update(picp_90=1.5)),
                                 ["per_seed[0].metrics.picp_90", "outside the range"]),
    "negative-error": (_tamper(lambda r: r["per_seed"][0]["metrics"].update(rmse=-0.1)),
                       ["per_seed[0].metrics.rmse", "outside the range"]),
    "seeds-not-0-n": (_tamper(lambda r: r.update(seeds=[0, 2])), ["seeds", "0..n-1"]),
    "unknown-task-version": (_tamper(lambda r: r["task"].update(version=99)),
                             ["task.version", "99", "version 1"]),
    "unknown-task": (_tamper(lambda r: r["task"].update(name="mock-regresion")),
                     ["task.name", "did you mean 'mock-regression'"]),
    "weights-sha-mismatch": (_tamper(lambda r: r["model"].update(
        name="alise", config={"min_valid": 0.5}, weights_sha256="0" * 64)),
        ["model.weights_sha256", "alise", ALISE_SHA]),
    "metric-direction": (_tamper(lambda r: r["metrics"]["rmse"].update(direction="higher")),
                         ["metrics.rmse.direction"]),
    "password-in-uri": (_tamper(lambda r: r.update(mlflow={"tracking_uri": "http://me:s3cret@h:5000",
                                                           "run_id": "x"})),
                        ["mlflow.tracking_uri", "password"]),
    "extra-field": (_tamper(lambda r: r.update(leaderboard_rank=1)), ["leaderboard_rank"]),
}


@pytest.mark.parametrize("case", sorted(REJECTIONS))
def test_invalid_submission_exits_2_naming_file_and_field(
        case: str, runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit, words = REJECTIONS[case]
    path = _write(tmp_path / "bad" / "results.json", edit(_raw(runs["a"])))
    queue = tmp_path / "queue"
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens: nothing may be sent nor queued
    code = main(["submit", str(path), "--tracking-uri", url, "--queue-dir", str(queue)])
    err = capsys.readouterr().err
    flat = "".join(err.split())  # rich wraps (and folds) long lines
    assert code == 2, err
    assert str(path) in flat
    for word in words:
        assert "".join(word.split()) in flat, (word, err)
    assert queued(queue) == []


def test_oversize_file_is_refused_unread(runs: dict[str, Path], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    raw = _raw(runs["a"])
    raw["diagnostics"]["padding"] = "x" * (MAX_BYTES + 1)
    path = _write(tmp_path / "big.json", raw)
    code = main(["submit", str(path), "--tracking-uri", f"http://127.0.0.1:{free_port()}",
                 "--queue-dir", str(tmp_path / "q")])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2
    assert "size" in err and "byte limit" in err


def test_one_bad_file_stops_the_whole_submission(runs: dict[str, Path], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    bad = _raw(runs["a"])
    bad["task"]["version"] = 2
    path = _write(tmp_path / "bad.json", bad)
    code = main(["submit", str(runs["half"]), str(path), "--tracking-uri",
                 f"http://127.0.0.1:{free_port()}", "--queue-dir", str(tmp_path / "q")])
    assert code == 2
    assert "task.version" in " ".join(capsys.readouterr().err.split())
    assert queued(tmp_path / "q") == []


def test_registered_weights_and_unregistered_models_are_accepted(runs: dict[str, Path]) -> None:
    raw = _raw(runs["a"])
    raw["model"].update(name="alise", config={"min_valid": 0.5}, weights_sha256=ALISE_SHA)
    assert validate_bytes(json.dumps(raw).encode(), "alise.json").result.model.name == "alise"
    raw["model"].update(name="my-plugin-encoder", weights_sha256="ab" * 32)  # nothing to compare
    validate_bytes(json.dumps(raw).encode(), "plugin.json")


def test_run_directories_are_searched(runs: dict[str, Path]) -> None:
    parent = runs["a"].parent
    found = find_results([parent])
    assert runs["a"] / "results.json" in found and runs["q1"] / "results.json" in found
    assert find_results([runs["a"], runs["a"] / "results.json"]) == [runs["a"] / "results.json"]


def _suite_file(tmp_path: Path) -> Path:
    path = tmp_path / "mini.yaml"
    path.write_text("name: mini\nversion: 1\nseeds: 2\nlabel_fractions: [1.0, 0.5]\n"
                    "probes: {regression: ridge, classification: logistic}\n"
                    "tasks: {mock-regression: 1}\n")
    return path


def test_incomplete_suite_is_refused_naming_what_is_missing(
        runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = _suite_file(tmp_path)
    code = main(["submit", str(runs["a"]), "--suite", str(suite), "--tracking-uri",
                 f"http://127.0.0.1:{free_port()}", "--queue-dir", str(tmp_path / "q")])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2
    assert "suite 'mini'" in err and "model 'raw' misses 1 of 2" in err
    assert "task mock-regression v1 / probe ridge / label_fraction 0.5 / seeds 0..1" in err
    # with the missing run, the suite is covered
    subs = validate_paths([runs["a"], runs["half"]], load_suite(suite))
    assert len(subs) == 2
    # a run with other seeds does not count
    three = _raw(runs["half"])
    three["run_id"] = "three-seeds"
    three["seeds"] = [0, 1, 2]
    three["per_seed"].append({**three["per_seed"][1], "seed": 2})
    three["probe"]["fitted_params"].append(three["probe"]["fitted_params"][1])
    from releo_bench.stats import mean_ci

    for name, s in three["metrics"].items():
        values = [p["metrics"][name] for p in three["per_seed"]]
        m = mean_ci(values)
        s.update(mean=m.mean, std=m.std, ci_low=m.ci_low, ci_high=m.ci_high, n=m.n)
    path = _write(tmp_path / "three" / "results.json", three)
    validate_bytes(path.read_bytes(), str(path))  # a valid run in itself
    with pytest.raises(UsageError, match=r"have version 1 seeds \[0, 1, 2\]"):
        validate_paths([runs["a"], path], load_suite(suite))


def test_ci_fast_suite_needs_all_its_tasks(runs: dict[str, Path], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["submit", str(runs["a"]), "--suite", "ci-fast", "--tracking-uri",
                 f"http://127.0.0.1:{free_port()}", "--queue-dir", str(tmp_path / "q")])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2
    suite = load_suite("ci-fast")  # whatever it holds: every run but ours is named as missing
    for task, probe, fraction in suite.required_runs():
        ours = (task, probe, fraction, suite.seeds) == ("mock-regression", "ridge", 1.0, 2)
        wanted = f"task {task} v{suite.tasks[task]} / probe {probe} / label_fraction {fraction:g}"
        assert (wanted in err) != ours, (wanted, err)


def test_submit_needs_a_server(runs: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["submit", str(runs["a"])]) == 2
    assert "--tracking-uri" in capsys.readouterr().err
    assert main(["submit", str(runs["a"]), "--tracking-uri", "none"]) == 2


# -- a real server ----------------------------------------------------------------------------

@pytest.mark.server
def test_accepted_submission_arrives_intact_and_once(
        server: str, runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = _raw(runs["a"])
    before = {k: os.environ.get(k) for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")}
    args = ["submit", str(runs["a"]), "--tracking-uri", server, "--queue-dir", str(tmp_path / "q")]
    assert main(args) == 0
    assert "submitted" in capsys.readouterr().out
    found = _runs_for(server, source["run_id"])
    assert [r["status"] for r in found] == ["FINISHED"]
    assert found[0]["tags"]["releo.task"] == "mock-regression"
    assert _artifact(server, found[0]["run_id"], tmp_path / "dl") == source

    assert main(args) == 0  # again: recognised, not logged twice
    assert "already submitted" in capsys.readouterr().out
    assert len(_runs_for(server, source["run_id"])) == 1
    assert queued(tmp_path / "q") == []
    # the quick-failure HTTP settings do not leak out of the command
    assert {k: os.environ.get(k) for k in before} == before


@pytest.mark.server
def test_eight_concurrent_submissions_all_arrive_intact(
        server: str, runs: dict[str, Path], tmp_path: Path) -> None:
    dirs = [runs[f"c{i}"] for i in range(8)]
    validate_paths(dirs)  # registries loaded before the threads start
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(dirs))

    def one(d: Path) -> None:
        try:
            barrier.wait()
            outcomes = submit([d], server, queue_dir=tmp_path / "q")
            assert [o.status for o in outcomes] == ["submitted"], outcomes
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    started = time.monotonic()
    threads = [threading.Thread(target=one, args=(d,)) for d in dirs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    elapsed = time.monotonic() - started
    assert not errors, errors
    for i, d in enumerate(dirs):
        source = _raw(d)
        found = _runs_for(server, source["run_id"])
        assert len(found) == 1 and found[0]["status"] == "FINISHED"
        assert _artifact(server, found[0]["run_id"], tmp_path / f"dl{i}") == source
    assert queued(tmp_path / "q") == []
    print(f"8 concurrent submissions: {elapsed:.1f} s")


@pytest.mark.server
def test_unreachable_server_queues_then_flush_delivers_once(
        runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    backend = f"sqlite:///{tmp_path / 'mlflow.db'}"
    artifacts = tmp_path / "artifacts"
    port = free_port()
    with start_mlflow_server(backend, artifacts, port=port) as url:
        pass  # the server existed, and is gone now
    queue = tmp_path / "queue"
    sources = [_raw(runs["q0"]), _raw(runs["q1"])]

    started = time.monotonic()
    code = main(["submit", str(runs["q0"]), str(runs["q1"]), "--tracking-uri", url,
                 "--queue-dir", str(queue)])
    queued_s = time.monotonic() - started
    out = capsys.readouterr().out
    assert code == 0, out
    assert "queued" in out and "unreachable" in out and "--flush" in out
    entries = queued(queue)
    assert len(entries) == 2
    assert queued_s < 30
    # queuing again is idempotent (same file per run_id + target)
    assert main(["submit", str(runs["q0"]), "--tracking-uri", url, "--queue-dir", str(queue)]) == 0
    assert queued(queue) == entries
    capsys.readouterr()

    # while the server is still down, flush keeps everything and says so (exit 1)
    assert main(["submit", "--flush", "--queue-dir", str(queue)]) == 1
    assert queued(queue) == entries
    capsys.readouterr()

    saved = tmp_path / "saved-entry.json"
    shutil.copy(entries[0], saved)
    with start_mlflow_server(backend, artifacts, port=port) as url2:
        assert url2 == url
        started = time.monotonic()
        assert main(["submit", "--flush", "--queue-dir", str(queue), "--tracking-uri", url]) == 0
        flush_s = time.monotonic() - started
        out = capsys.readouterr().out
        assert out.count("submitted") == 2, out
        assert queued(queue) == []
        # an interrupted flush (uploaded, entry not yet removed) resumes without duplicating
        shutil.copy(saved, entries[0])
        assert main(["submit", "--flush", "--queue-dir", str(queue)]) == 0
        assert "already submitted" in capsys.readouterr().out
        assert queued(queue) == []
        assert main(["submit", "--flush", "--queue-dir", str(queue)]) == 0  # empty queue
        assert "empty" in capsys.readouterr().out
        for i, source in enumerate(sources):
            found = _runs_for(url2, source["run_id"])
            assert [r["status"] for r in found] == ["FINISHED"], found
            assert _artifact(url2, found[0]["run_id"], tmp_path / f"dl{i}") == source
        assert flush(queue) == []
    print(f"unreachable server: 2 submissions queued in {queued_s:.1f} s; "
          f"flush of them: {flush_s:.1f} s")
