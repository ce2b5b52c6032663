"""The project's own regression check: the ci-fast suite (weight-free baselines on mock and
simulated tasks) rerun from scratch must match leaderboard/baseline.json (``make leaderboard``
regenerates it). A change that silently alters results fails here."""

from __future__ import annotations

from pathlib import Path

from releo_bench.cli import main
from releo_bench.suites import load_suite, run_suite

BASELINE = Path(__file__).resolve().parent.parent / "leaderboard" / "baseline.json"


def test_ci_fast_suite_matches_the_published_baseline(tmp_path, capsys):
    assert BASELINE.is_file(), "leaderboard/baseline.json is missing: run `make leaderboard`"
    suite = load_suite("ci-fast")
    for model in suite.models:
        run_suite(suite, model, tmp_path, tracking_uri="none", device="cpu")
    # 1e-6 relative: floating-point noise of another CPU, far below any real change
    code = main(["check", str(tmp_path / "ci-fast"), "--baseline", str(BASELINE), "--strict",
                 "--rel-tolerance", "1e-6"])
    out = capsys.readouterr()
    assert code == 0, out.err
    n = len(suite.models) * len(suite.required_runs())
    assert f"checked {n} results" in out.out and "0 regressed" in out.out
