"""``releo-bench check``: fail a CI job when a model's results regress against a stored baseline.

The baseline is the JSON that ``releo-bench leaderboard --format json`` writes (its ``groups``:
seed-aggregated metrics with 95 % intervals per model, task, task version, probe and label
fraction). New results (results.json files or run directories) are matched to a baseline
group by (model, task, task version, probe, label fraction); each metric present on both
sides is compared in the metric's own direction:

* ``higher``: regressed when ``new < ci_low - tol``;
* ``lower``: regressed when ``new > ci_high + tol``;
* ``zero`` / ``target``: regressed when ``|new - ideal|`` exceeds the baseline interval's
  largest distance to ``ideal`` plus ``tol``;

with ``tol = tolerance + rel_tolerance * |baseline mean|``. An identical rerun (the project is
deterministic) sits inside its own interval, so it passes; anything that moves a score the
wrong way beyond the interval fails, naming the (model, task, metric). Improvements are
reported, not failed. Results with no matching baseline group are listed ("no baseline")
and fail only with ``strict``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UsageError
from .results import RunResult, read_results

KEY_FIELDS = ("model", "task", "task_version", "probe", "label_fraction")


@dataclass(frozen=True)
class Finding:
    model: str
    task: str
    metric: str
    new: float
    baseline_mean: float
    bound: float  # the baseline bound that was crossed (or approached)
    kind: str  # "regressed", "improved", "no baseline"
    detail: str = ""

    def line(self) -> str:
        if self.kind == "no baseline":
            return f"{self.model} / {self.task}: no baseline group ({self.detail})"
        return (f"{self.kind}: {self.model} / {self.task} / {self.metric}: {self.new:.6g} vs "
                f"baseline {self.baseline_mean:.6g} (bound {self.bound:.6g}{self.detail})")


def load_baseline(path: Path) -> dict[tuple, dict[str, Any]]:
    """Baseline groups keyed by (model, task, task version, probe, label fraction)."""
    try:
        board = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"--baseline {path}: cannot read a leaderboard JSON ({exc})") from exc
    if not isinstance(board, dict) or not str(board.get("format", "")).startswith(
            "releo-leaderboard/"):
        raise UsageError(f"--baseline {path}: not a leaderboard JSON (expected 'format': "
                         f"'releo-leaderboard/1', as `releo-bench leaderboard --format json` writes)")
    out = {}
    for i, g in enumerate(board.get("groups", [])):
        try:
            key = tuple(g[k] for k in KEY_FIELDS)
        except KeyError as exc:
            raise UsageError(f"--baseline {path}: group {i} has no field {exc}") from None
        out[_norm_key(key)] = g
    return out


def _norm_key(key: tuple) -> tuple:
    model, task, version, probe, fraction = key
    return (str(model), str(task), int(version), str(probe), round(float(fraction), 9))


def result_key(r: RunResult) -> tuple:
    return _norm_key((r.model.name, r.task.name, r.task.version, r.probe.name, r.label_fraction))


def load_new(paths: list[Path]) -> list[tuple[Path, RunResult]]:
    """results.json files, or directories searched for them."""
    out = []
    for p in paths:
        p = Path(p)
        files = sorted(p.rglob("results.json")) if p.is_dir() else [p]
        if not files:
            raise UsageError(f"{p}: no results.json found")
        out += [(f, read_results(f)) for f in files]
    return out


def _bound_check(direction: str, new: float, g: dict[str, Any], tol: float
                 ) -> tuple[bool, bool, float]:
    """(regressed, improved, bound) of ``new`` against baseline metric summary ``g``."""
    lo, hi, mean = float(g["ci_low"]), float(g["ci_high"]), float(g["mean"])
    if direction == "higher":
        return new < lo - tol, new > hi + tol, lo
    if direction == "lower":
        return new > hi + tol, new < lo - tol, hi
    ideal = g.get("ideal")
    ideal = 0.0 if ideal is None else float(ideal)
    worst = max(abs(lo - ideal), abs(hi - ideal))
    best = 0.0 if lo <= ideal <= hi else min(abs(lo - ideal), abs(hi - ideal))
    dist = abs(new - ideal)
    del mean
    return dist > worst + tol, dist < best - tol, ideal + math.copysign(worst, new - ideal)


def compare(new: list[tuple[Path, RunResult]], baseline: dict[tuple, dict[str, Any]], *,
            tolerance: float = 0.0, rel_tolerance: float = 0.0,
            metrics: list[str] | None = None) -> list[Finding]:
    findings: list[Finding] = []
    for path, r in new:
        g = baseline.get(result_key(r))
        if g is None:
            findings.append(Finding(r.model.name, r.task.name, "", math.nan, math.nan, math.nan,
                                    "no baseline", f"{path}: task version {r.task.version}, "
                                    f"probe {r.probe.name}, label fraction {r.label_fraction}"))
            continue
        base_metrics = g.get("metrics", {})
        for name, summary in r.metrics.items():
            if name not in base_metrics or (metrics and name not in metrics):
                continue
            b = base_metrics[name]
            if not all(math.isfinite(float(b[k])) for k in ("mean", "ci_low", "ci_high")):
                continue
            tol = tolerance + rel_tolerance * abs(float(b["mean"]))
            regressed, improved, bound = _bound_check(summary.direction, summary.mean, b, tol)
            if regressed or improved:
                findings.append(Finding(r.model.name, r.task.name, name, summary.mean,
                                        float(b["mean"]), bound,
                                        "regressed" if regressed else "improved",
                                        f", {summary.direction} is better"
                                        if summary.direction in ("higher", "lower")
                                        else f", closer to {b.get('ideal')} is better"))
    return findings


__all__ = ["Finding", "compare", "load_baseline", "load_new", "result_key"]
