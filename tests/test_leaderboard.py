"""The leaderboard, end to end: real runs logged to a real ``mlflow server``, read back, grouped,
normalised, aggregated and ranked; every number checked against an independent computation
from the runs' results.json files (scipy's t quantile, a hand-written trimmed mean)."""

from __future__ import annotations

import copy
import csv
import io
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from releo_bench.cli import main
from releo_bench.leaderboard import build_board
from releo_bench.leaderboard.formats import to_csv, to_markdown
from releo_bench.mlflow_server import start_mlflow_server
from releo_bench.results import RunResult, read_results, write_results
from releo_bench.runner import RunConfig, run
from releo_bench.tracking import log_run

REP = {"regression": {"accuracy": "rmse", "calibration": "miscalibration_area", "proper_score": "crps"},
       "classification": {"accuracy": "balanced_accuracy", "calibration": "ece", "proper_score": "log_loss"}}
IDEAL = {"rmse": 0.0, "miscalibration_area": 0.0, "crps": 0.0, "balanced_accuracy": 1.0,
         "ece": 0.0, "log_loss": 0.0}
TASKS = ("mock-regression", "mock-classification")


# -- independent reference computations --------------------------------------------------------

def t_interval(values: list[float]) -> tuple[float, float, float]:
    v = np.asarray(values, dtype=float)
    n, mean = v.size, float(v.mean())
    if n == 1:
        return mean, mean, mean
    half = stats.t.ppf(0.975, n - 1) * v.std(ddof=1) / math.sqrt(n)
    return mean, mean - half, mean + half


def trimmed_mean(values: list[float]) -> float:
    """The IQM by hand: sort, drop floor(n/4) values at each end, average the rest."""
    x = sorted(values)
    k = int(len(x) * 0.25)
    kept = x[k:len(x) - k]
    return sum(kept) / len(kept)


def seed_values(raw: dict[str, Any], metric: str) -> list[float]:
    return [s["metrics"][metric] for s in sorted(raw["per_seed"], key=lambda s: s["seed"])]


def load_raw(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def group_of(board: dict[str, Any], model: str, task: str, fraction: float, version: int = 1) -> dict:
    found = [g for g in board["groups"] if g["model"] == model and g["task"] == task
             and g["label_fraction"] == fraction and g["task_version"] == version]
    assert len(found) == 1, (model, task, fraction, version, found)
    return found[0]


def row_of(board: dict[str, Any], model: str, fraction: float) -> dict:
    found = [r for r in board["overall"] if r["model"] == model and r["label_fraction"] == fraction]
    assert len(found) == 1, found
    return found[0]


# -- the runs: raw and random x 2 tasks x 3 seeds (50 % labels), plus a 100 % table ------------

@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("leaderboard")
    runs_dir = root / "runs"
    with start_mlflow_server(f"sqlite:///{root / 'mlflow.db'}", root / "artifacts") as url:
        dirs: dict[tuple[str, str, float], Path] = {}
        plan = [(m, t, 0.5, 3) for m in ("raw", "random") for t in TASKS] + \
               [(m, "mock-regression", 1.0, 2) for m in ("raw", "random")]
        for model, task, frac, n_seeds in plan:
            out = runs_dir / f"{model}-{task}-{frac}"
            params = {"Cs": [0.1, 1.0, 10.0]} if task == "mock-classification" else {}
            outcome = run(RunConfig(model=model, task=task, seeds=n_seeds, label_fraction=frac,
                                    tracking_uri=url, output=out, plots=False, n_boot=0,
                                    device="cpu", probe_params=params))
            assert outcome.tracking_error is None
            dirs[(model, task, frac)] = out
        # planted: random on mock-regression, relabelled task version 2 with 10x worse scores;
        # it must be a separate group and never averaged into version 1
        planted = read_results(dirs[("random", "mock-regression", 0.5)] / "results.json")
        data = planted.model_dump()
        data["task"]["version"] = 2
        data["run_id"] = "planted-v2"
        data["created"] = "2999-01-01T00:00:00+00:00"
        for s in data["per_seed"]:
            s["metrics"] = {k: 10 * v for k, v in s["metrics"].items()}
        planted_dir = runs_dir / "planted-v2"
        planted_dir.mkdir()
        write_results(RunResult.model_validate(data), planted_dir / "results.json")
        log_run(RunResult.model_validate(data), planted_dir, url)
        # a run that failed half-way (no results.json artifact): skipped
        from mlflow import MlflowClient

        client = MlflowClient(url)
        exp = client.get_experiment_by_name("releo-bench")
        failed = client.create_run(exp.experiment_id)
        client.set_terminated(failed.info.run_id, "FAILED")
        yield {"url": url, "runs_dir": runs_dir, "dirs": dirs, "root": root,
               "failed_id": failed.info.run_id}


@pytest.fixture(scope="module")
def server_board(logged: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The board through the CLI from the server, in every file format but html."""
    out = tmp_path_factory.mktemp("board-server")
    for fmt in ("json", "md", "csv"):
        assert main(["leaderboard", "--tracking-uri", logged["url"], "--format", fmt,
                     "--out", str(out)]) == 0
    board = json.loads((out / "leaderboard.json").read_text())
    return {"board": board, "out": out}


@pytest.mark.server
def test_groups_and_seed_statistics_match_results_files(logged, server_board) -> None:
    board = server_board["board"]
    assert board["format"] == "releo-leaderboard/1" and board["source"] == logged["url"]
    assert len(board["groups"]) == 7  # 6 real cells + the planted version 2
    for (model, task, frac), run_dir in logged["dirs"].items():
        raw = load_raw(run_dir / "results.json")
        g = group_of(board, model, task, frac)
        assert g["seeds"] == raw["seeds"] and g["run_ids"] == [raw["run_id"]]
        assert g["data_hash"] == raw["task"]["data_hash"]["test"]
        assert g["main_score"] == raw["task"]["main_score"]
        assert set(g["metrics"]) == set(raw["metrics"])
        for name, m in g["metrics"].items():
            values = seed_values(raw, name)
            mean, low, high = t_interval(values)
            assert m["per_seed"] == pytest.approx(values, rel=1e-12)
            assert m["mean"] == pytest.approx(mean, rel=1e-12, abs=1e-15)
            assert m["ci_low"] == pytest.approx(low, rel=1e-9, abs=1e-12)
            assert m["ci_high"] == pytest.approx(high, rel=1e-9, abs=1e-12)
            assert m["n"] == len(values)
            assert m["direction"] == raw["metrics"][name]["direction"]
            assert m["family"] == raw["metrics"][name]["family"]
    # with 3 seeds on half the labels the seeds differ: intervals are real, not points
    crps = group_of(board, "random", "mock-regression", 0.5)["metrics"]["crps"]
    assert crps["ci_high"] - crps["ci_low"] > 1e-3


@pytest.mark.server
def test_normalised_scores_iqm_and_ranks(logged, server_board) -> None:
    board = server_board["board"]
    dirs = logged["dirs"]
    expected_norm: dict[tuple[str, float], dict[str, list[float]]] = {}
    for (model, task, frac), run_dir in dirs.items():
        raw = load_raw(run_dir / "results.json")
        base = load_raw(dirs[("raw", task, frac)] / "results.json")
        g = group_of(board, model, task, frac)
        for family, metric in REP[raw["task"]["target_kind"]].items():
            m = np.mean(seed_values(raw, metric))
            b = np.mean(seed_values(base, metric))
            want = (m - b) / (IDEAL[metric] - b)
            assert g["normalised"][family] == pytest.approx(want, rel=1e-9, abs=1e-12)
            expected_norm.setdefault((model, frac), {}).setdefault(family, []).append(want)
        assert g["in_overall"] is True
    # the baseline is 0 by construction; random is worse than raw on accuracy (a real encoder
    # signal: random projections lose information), numbers that could have come out otherwise
    assert group_of(board, "raw", "mock-regression", 0.5)["normalised"]["accuracy"] == 0.0
    assert group_of(board, "random", "mock-regression", 0.5)["normalised"]["accuracy"] < -1.0
    for (model, frac), fams in expected_norm.items():
        row = row_of(board, model, frac)
        assert row["n_tasks"] == (2 if frac == 0.5 else 1)
        for family, values in fams.items():
            s = row["scores"][family]
            assert s["iqm"] == pytest.approx(trimmed_mean(values), rel=1e-9, abs=1e-12)
            assert s["ci_low"] <= s["iqm"] + 1e-12 <= s["ci_high"] + 2e-12
    # ranks: 1 + number of rows whose proper-score interval lies entirely above this one's
    for frac in (0.5, 1.0):
        rows = [r for r in board["overall"] if r["label_fraction"] == frac]
        assert {r["model"] for r in rows} == {"raw", "random"}
        for r in rows:
            me = r["scores"]["proper_score"]
            others = [o["scores"]["proper_score"] for o in rows if o is not r]
            assert r["rank"] == 1 + sum(o["ci_low"] > me["ci_high"] for o in others)
    # raw beats random on the proper score by a clear margin at 100 % labels (one task)
    assert row_of(board, "raw", 1.0)["rank"] == 1 and row_of(board, "random", 1.0)["rank"] == 2
    assert row_of(board, "random", 1.0)["tied_with"] == []


@pytest.mark.server
def test_version_mismatch_is_a_separate_group_never_averaged(logged, server_board) -> None:
    board = server_board["board"]
    v2 = group_of(board, "random", "mock-regression", 0.5, version=2)
    v1 = group_of(board, "random", "mock-regression", 0.5, version=1)
    assert v2["run_ids"] == ["planted-v2"] and v2["in_overall"] is False
    assert v2["normalised"] == {"accuracy": None, "calibration": None, "proper_score": None}
    raw = load_raw(logged["dirs"][("random", "mock-regression", 0.5)] / "results.json")
    assert v1["metrics"]["rmse"]["mean"] == pytest.approx(np.mean(seed_values(raw, "rmse")), rel=1e-12)
    assert v2["metrics"]["rmse"]["mean"] == pytest.approx(10 * v1["metrics"]["rmse"]["mean"], rel=1e-9)
    assert row_of(board, "random", 0.5)["tasks"] == ["mock-classification", "mock-regression"]
    md = (server_board["out"] / "leaderboard.md").read_text()
    assert "separate group" in md and "mock-regression v2" in md
    assert f"skipped mlflow run {logged['failed_id']}: status FAILED" in md


@pytest.mark.server
def test_formats_are_written_and_parseable(server_board) -> None:
    board, out = server_board["board"], server_board["out"]
    md = (out / "leaderboard.md").read_text()
    assert "### 50 % of labels" in md and "### 100 % of labels" in md
    header = next(line for line in md.splitlines() if line.startswith("| model"))
    assert header.split(" | ")[1:5] == ["accuracy", "calibration", "proper score", "rank"]
    assert "mock-regression v1 rmse ↓" in header
    rows = list(csv.DictReader(io.StringIO((out / "leaderboard.csv").read_text())))
    assert len(rows) == len(board["overall"]) == 4
    for line in rows:
        r = row_of(board, line["model"], float(line["label_fraction"]))
        assert float(line["proper_score_iqm"]) == pytest.approx(r["scores"]["proper_score"]["iqm"])
        assert int(line["rank"]) == r["rank"]
        g = group_of(board, line["model"], "mock-regression", float(line["label_fraction"]))
        assert float(line["mock-regression@v1/rmse"]) == pytest.approx(g["metrics"]["rmse"]["mean"])


@pytest.mark.server
def test_results_path_mode_gives_the_same_groups(logged, server_board, tmp_path, capsys) -> None:
    assert main(["leaderboard", "--results", str(logged["runs_dir"]), "--format", "json",
                 "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "| model | accuracy |" in printed
    files = json.loads((tmp_path / "leaderboard.json").read_text())
    assert files["source"] == "files"

    def key(g: dict) -> tuple:
        return (g["model"], g["task"], g["task_version"], g["data_hash"], g["probe"],
                g["label_fraction"], tuple(g["seeds"]), tuple(g["run_ids"]))

    server = server_board["board"]
    assert sorted(map(key, files["groups"])) == sorted(map(key, server["groups"]))
    by_key = {key(g): g for g in server["groups"]}
    for g in files["groups"]:
        other = by_key[key(g)]
        assert g["normalised"] == other["normalised"]
        assert {k: m["mean"] for k, m in g["metrics"].items()} == \
               {k: m["mean"] for k, m in other["metrics"].items()}
    assert files["overall"] == server["overall"]  # same seeds, same bootstrap


@pytest.mark.server
def test_suite_filter_and_no_match_exit_2(logged, tmp_path, capsys) -> None:
    # ci-fast: its tasks at their versions, its probe per target kind, its label fractions;
    # the expected groups are worked out from the results files and the suite file
    from releo_bench.results import read_results
    from releo_bench.suites import load_suite

    suite = load_suite("ci-fast")
    expected = set()
    for f in Path(logged["runs_dir"]).rglob("results.json"):
        r = read_results(f)
        if suite.tasks.get(r.task.name) == r.task.version and \
                r.probe.name == suite.probe_for(r.task.name) and \
                any(abs(r.label_fraction - lf) < 1e-9 for lf in suite.label_fractions):
            expected.add((r.model.name, r.task.name, r.label_fraction, r.task.version))
    assert expected, "the logged runs should include some of the suite's cells"
    assert main(["leaderboard", "--results", str(logged["runs_dir"]), "--suite", "ci-fast",
                 "--format", "json", "--out", str(tmp_path)]) == 0
    board = json.loads((tmp_path / "leaderboard.json").read_text())
    assert board["suite"] == {"name": "ci-fast", "version": 1}
    got = {(g["model"], g["task"], g["label_fraction"], g["task_version"]) for g in board["groups"]}
    assert got == expected
    capsys.readouterr()
    assert main(["leaderboard", "--results", str(logged["runs_dir"]), "--suite", "releo-v1",
                 "--out", str(tmp_path)]) == 2
    assert "no runs match" in capsys.readouterr().err
    assert main(["leaderboard", "--tracking-uri", logged["url"], "--experiment", "nothing-here",
                 "--out", str(tmp_path)]) == 2
    missing = tmp_path / "never-tracked.db"
    assert main(["leaderboard", "--tracking-uri", f"sqlite:///{missing}", "--out", str(tmp_path)]) == 2
    assert not missing.exists()  # reading does not create an empty store
    assert "no MLflow store" in capsys.readouterr().err


# -- aggregation on planted numbers: IQM over more tasks, bootstrap, duplicates ----------------

def _synthetic(template: RunResult, model: str, task: str, values: dict[str, list[float]],
               run_id: str, created: str = "2025-01-01T00:00:00+00:00",
               seeds: list[int] | None = None) -> RunResult:
    data = copy.deepcopy(template.model_dump())
    seeds = seeds if seeds is not None else list(range(len(next(iter(values.values())))))
    data.update(run_id=run_id, created=created, seeds=seeds)
    data["model"]["name"] = model
    data["task"]["name"] = task
    data["per_seed"] = [{"seed": s, "n_train": 10, "metrics": {k: v[i] for k, v in values.items()},
                         "unscaled_metrics": {}} for i, s in enumerate(seeds)]
    data["metrics"] = {k: template.metrics[k].model_dump() for k in values}
    data["probe"]["fitted_params"] = [{} for _ in seeds]
    return RunResult.model_validate(data)


@pytest.fixture(scope="module")
def template(logged: dict[str, Any]) -> RunResult:
    return read_results(logged["dirs"][("raw", "mock-regression", 0.5)] / "results.json")


@pytest.fixture(scope="module")
def five_tasks(template: RunResult) -> list[RunResult]:
    """raw and 'good' on 5 regression tasks; 'good' is accurate but badly calibrated."""
    rng = np.random.default_rng(7)
    runs = []
    for i in range(5):
        base = {"rmse": 1.0 + 0.1 * i, "miscalibration_area": 0.05, "crps": 0.6}
        runs.append(_synthetic(template, "raw", f"t{i}",
                               {k: list(v + 0.01 * rng.standard_normal(3)) for k, v in base.items()},
                               f"raw-{i}"))
        good = {"rmse": 0.2 + 0.15 * i, "miscalibration_area": 0.2, "crps": 0.4 + 0.05 * i}
        runs.append(_synthetic(template, "good", f"t{i}",
                               {k: list(v + 0.02 * rng.standard_normal(3)) for k, v in good.items()},
                               f"good-{i}"))
    return runs


@pytest.mark.server
def test_iqm_over_five_tasks_and_visible_miscalibration(five_tasks) -> None:
    board = build_board(five_tasks, n_boot=500)
    row = row_of(board, "good", 0.5)
    for family, metric in REP["regression"].items():
        per_task = []
        for i in range(5):
            good = [r for r in five_tasks if r.run_id == f"good-{i}"][0]
            base = [r for r in five_tasks if r.run_id == f"raw-{i}"][0]
            m = np.mean([s.metrics[metric] for s in good.per_seed])
            b = np.mean([s.metrics[metric] for s in base.per_seed])
            per_task.append((m - b) / (0.0 - b))
        assert row["scores"][family]["iqm"] == pytest.approx(trimmed_mean(per_task), rel=1e-9)
        assert trimmed_mean(per_task) != pytest.approx(np.mean(per_task), rel=1e-6)  # 5 tasks: trimmed
    assert row["scores"]["accuracy"]["iqm"] > 0.3 and row["scores"]["calibration"]["iqm"] < -1.0
    md = to_markdown(board)
    line = next(x for x in md.splitlines() if x.startswith("| good "))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[1].startswith("0.") and cells[2].startswith("-")  # accurate, miscalibrated


@pytest.mark.server
def test_stratified_bootstrap_is_deterministic_and_covers_the_iqm(five_tasks) -> None:
    a = build_board(five_tasks)
    b = build_board(list(reversed(five_tasks)))
    c = build_board(five_tasks, boot_seed=1)
    assert a["overall"] == b["overall"]  # same seed (and input order does not matter)
    for fam in ("accuracy", "calibration", "proper_score"):
        sa, sc = row_of(a, "good", 0.5)["scores"][fam], row_of(c, "good", 0.5)["scores"][fam]
        assert sa["ci_low"] < sa["iqm"] < sa["ci_high"]
        assert sa["iqm"] == sc["iqm"] and (sa["ci_low"], sa["ci_high"]) != (sc["ci_low"], sc["ci_high"])
        assert sa["ci_high"] - sa["ci_low"] < 0.5  # 3 seeds with small noise: a narrow interval
    assert to_csv(a) == to_csv(b)


@pytest.mark.server
def test_duplicate_seed_takes_the_newest_run_and_missing_baseline(template) -> None:
    old = _synthetic(template, "m", "t", {"rmse": [1.0, 2.0], "crps": [0.5, 0.6]}, "old",
                     created="2025-01-01T00:00:00+00:00", seeds=[0, 1])
    new = _synthetic(template, "m", "t", {"rmse": [3.0, 4.0], "crps": [0.7, 0.8]}, "new",
                     created="2025-02-01T00:00:00+00:00", seeds=[1, 2])
    board = build_board([new, old], n_boot=100)
    g = group_of(board, "m", "t", 0.5)
    assert g["seeds"] == [0, 1, 2] and g["run_ids"] == ["old", "new"]
    assert g["metrics"]["rmse"]["per_seed"] == [1.0, 3.0, 4.0]
    assert g["metrics"]["rmse"]["mean"] == pytest.approx(8.0 / 3.0)
    # no 'raw' run on this task: null normalised scores, no overall score, and a note
    assert g["normalised"]["accuracy"] is None
    assert row_of(board, "m", 0.5)["scores"]["proper_score"]["iqm"] is None
    assert any("no 'raw' baseline" in n for n in board["notes"])
