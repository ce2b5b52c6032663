"""``releo-bench check``: regressions against a stored baseline fail (exit 1), reruns pass."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from releo_bench.cli import main
from releo_bench.results import read_results
from releo_bench.runner import RunConfig, run


def _baseline_from(results: list[Path], path: Path) -> Path:
    """A leaderboard-format baseline built directly from results files (groups only)."""
    groups = []
    for p in results:
        r = read_results(p)
        groups.append({
            "model": r.model.name, "task": r.task.name, "task_version": r.task.version,
            "probe": r.probe.name, "label_fraction": r.label_fraction,
            "metrics": {k: {"mean": m.mean, "ci_low": m.ci_low, "ci_high": m.ci_high,
                            "direction": m.direction, "ideal": m.ideal}
                        for k, m in r.metrics.items()}})
    path.write_text(json.dumps({"format": "releo-leaderboard/1", "groups": groups}))
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("check")
    out = {}
    for name, seeds in (("a", 3), ("b", 3)):
        res = run(RunConfig(model="raw", task="mock-regression", seeds=seeds, tracking_uri="none",
                            output=base / name, plots=False, n_boot=0))
        out[name] = res.output_dir / "results.json"
    return out


def test_identical_rerun_passes(runs, tmp_path, capsys):
    baseline = _baseline_from([runs["a"]], tmp_path / "baseline.json")
    assert read_results(runs["a"]).metrics["rmse"].mean == read_results(runs["b"]).metrics["rmse"].mean
    assert main(["check", str(runs["b"]), "--baseline", str(baseline)]) == 0
    assert "0 regressed" in capsys.readouterr().out


def _planted(src: Path, dst: Path, metric: str, value: float) -> Path:
    data = json.loads(src.read_text())
    data["metrics"][metric]["mean"] = value
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "results.json").write_text(json.dumps(data))
    return dst


def test_planted_regression_fails_and_names_it(runs, tmp_path, capsys):
    baseline = _baseline_from([runs["a"]], tmp_path / "baseline.json")
    rmse = read_results(runs["a"]).metrics["rmse"]
    bad = _planted(runs["a"], tmp_path / "bad", "rmse", rmse.ci_high + 0.05)
    assert main(["check", str(bad), "--baseline", str(baseline)]) == 1
    err = capsys.readouterr().err
    assert "regressed: raw / mock-regression / rmse" in err
    # within a tolerance it passes; a metric where higher is better regresses downwards
    assert main(["check", str(bad), "--baseline", str(baseline), "--tolerance", "0.1"]) == 0
    r2 = read_results(runs["a"]).metrics["r2"]
    bad_r2 = _planted(runs["a"], tmp_path / "bad_r2", "r2", r2.ci_low - 0.01)
    assert main(["check", str(bad_r2), "--baseline", str(baseline)]) == 1
    better = _planted(runs["a"], tmp_path / "better", "rmse", rmse.ci_low - 0.05)
    capsys.readouterr()
    assert main(["check", str(better), "--baseline", str(baseline)]) == 0
    assert "improved: raw / mock-regression / rmse" in capsys.readouterr().out


def test_target_direction(runs, tmp_path):
    """PICP90 (ideal 0.9): moving away from 0.9 beyond the interval is a regression."""
    baseline = _baseline_from([runs["a"]], tmp_path / "baseline.json")
    picp = read_results(runs["a"]).metrics["picp_90"]
    assert picp.direction == "target"
    far = 0.9 - (max(abs(picp.ci_low - 0.9), abs(picp.ci_high - 0.9)) + 0.05)
    bad = _planted(runs["a"], tmp_path / "bad", "picp_90", far)
    assert main(["check", str(bad), "--baseline", str(baseline)]) == 1


def test_no_baseline_and_bad_files(runs, tmp_path):
    other = _baseline_from([runs["a"]], tmp_path / "b.json")
    data = json.loads(other.read_text())
    data["groups"][0]["task_version"] = 99
    other.write_text(json.dumps(data))
    assert main(["check", str(runs["b"]), "--baseline", str(other)]) == 0
    assert main(["check", str(runs["b"]), "--baseline", str(other), "--strict"]) == 1
    junk = tmp_path / "junk.json"
    junk.write_text("[]")
    assert main(["check", str(runs["b"]), "--baseline", str(junk)]) == 2
    assert main(["check", str(tmp_path / "nothing"), "--baseline", str(other)]) == 2
