"""From runs to a leaderboard: comparable groups, seed statistics, normalised scores, IQM, ranks.

The steps (docs/leaderboard.md explains the choices):

1. **Groups.** Runs are grouped by everything that makes their numbers comparable: model
   (name, version, weights sha256), task (name, version, test-data hash, transfer source),
   probe and label fraction. Runs that differ in any of these are never averaged together.
2. **Seeds.** A group's per-seed values come from ``per_seed[*].metrics`` of all its runs (a
   seed seen twice: the newest run's value); mean, sample std and the 95 % Student-t interval.
3. **Normalisation** per task and family on the family's representative metric
   (:data:`FAMILIES`): ``(m - b) / (ideal - b)``, ``b`` the baseline model's seed mean on the
   same task cell, probe and label fraction. 1 = perfect, 0 = the baseline, < 0 = worse.
4. **Across tasks**: the inter-quartile mean (IQM) of the per-task normalised scores with a
   stratified bootstrap interval (seeds resampled within each task), as in rliable.
5. **Ranks** per label fraction by the proper-score IQM, ties when intervals overlap.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
from scipy import stats as sps

from ..results import RunResult
from ..stats import mean_ci

FORMAT = "releo-leaderboard/1"
FAMILY_NAMES = ("accuracy", "calibration", "proper_score")
# The representative metric of each family, per target kind: what is normalised and ranked.
FAMILIES: dict[str, dict[str, str]] = {
    "regression": {"accuracy": "rmse", "calibration": "miscalibration_area", "proper_score": "crps"},
    "classification": {"accuracy": "balanced_accuracy", "calibration": "ece",
                       "proper_score": "log_loss"},
}
DEFAULT_BASELINE = "raw"
N_BOOT = 2000
BOOT_SEED = 0
TRIM = 0.25  # IQM: drop the lowest and highest 25 % of tasks
LEVEL = 0.95


def iqm(values: np.ndarray | list[float], axis: int | None = None) -> Any:
    """Inter-quartile mean: the 25 % trimmed mean (plain mean below 4 values)."""
    return sps.trim_mean(np.asarray(values, dtype=np.float64), TRIM, axis=axis)


def metric_ideal(name: str, direction: str, ideal: float | None) -> float:
    """The best attainable value: the declared one ('zero', 'target'), else 0 for 'lower'
    metrics (errors, calibration errors, proper scores) and 1 for 'higher' ones (accuracies,
    R², kappa: all bounded by 1)."""
    if ideal is not None:
        return float(ideal)
    if direction == "lower" or direction == "zero":
        return 0.0
    return 1.0


def normalise(m: Any, b: float, ideal: float, direction: str) -> Any:
    """``(m - b) / (ideal - b)``: 1 = ideal, 0 = baseline, < 0 worse than the baseline.

    For 'zero' / 'target' metrics the distance to the ideal is what counts:
    ``(|b - ideal| - |m - ideal|) / |b - ideal|`` (the same formula on distances). ``None``
    when the baseline is already ideal (nothing to normalise by). Works on arrays.
    """
    if direction in ("zero", "target"):
        db = abs(b - ideal)
        if db == 0 or not math.isfinite(db):
            return None
        return (db - np.abs(np.asarray(m) - ideal)) / db if isinstance(m, np.ndarray) \
            else (db - abs(m - ideal)) / db
    span = ideal - b
    if span == 0 or not math.isfinite(span):
        return None
    return (m - b) / span


# -- groups ------------------------------------------------------------------------------------

@dataclass
class Group:
    """One comparable cell: a model on a task (version, data) with a probe and label fraction."""

    model: str
    model_version: str
    weights_sha256: str | None
    task: str
    task_version: int
    data_hash: str | None
    train_task: str | None
    target_kind: str
    probe: str
    label_fraction: float
    main_score: str
    run_ids: list[str] = field(default_factory=list)
    created: str = ""
    values: dict[str, dict[int, float]] = field(default_factory=dict)  # metric -> seed -> value
    meta: dict[str, tuple[str, float | None, str]] = field(default_factory=dict)  # direction, ideal, family
    normalised: dict[str, float | None] = field(default_factory=dict)
    in_overall: bool = False

    @property
    def model_id(self) -> tuple[str, str, str | None]:
        return (self.model, self.model_version, self.weights_sha256)

    @property
    def cell(self) -> tuple[str, int, str | None, str | None]:
        """The task cell: runs in different cells are never compared or averaged."""
        return (self.task, self.task_version, self.data_hash, self.train_task)

    @property
    def seeds(self) -> list[int]:
        return sorted({s for per in self.values.values() for s in per})

    def seed_values(self, metric: str) -> np.ndarray:
        per = self.values.get(metric, {})
        return np.array([per[s] for s in sorted(per)], dtype=np.float64)

    def mean(self, metric: str) -> float | None:
        v = self.seed_values(metric)
        return float(v.mean()) if v.size else None

    def describe(self) -> str:
        data = f", data {self.data_hash[:12]}" if self.data_hash else ""
        src = f", trained on {self.train_task}" if self.train_task else ""
        return (f"{self.task} v{self.task_version}{data}{src}: {self.model} {self.model_version}, "
                f"{self.probe}, {fraction_label(self.label_fraction)} labels")


def fraction_label(f: float) -> str:
    return f"{f * 100:g} %"


def _group_key(r: RunResult) -> tuple[Any, ...]:
    t = r.task
    train = f"{t.train_task.get('name')}@{t.train_task.get('version')}" if t.train_task else None
    return (r.model.name, r.model.version, r.model.weights_sha256, t.name, t.version,
            t.data_hash.get("test"), train, t.target_kind, r.probe.name,
            round(float(r.label_fraction), 9))


def _registry_meta(name: str) -> tuple[str, float | None, str] | None:
    from ..registries import METRICS

    base = name.split("/", 1)[0]
    try:
        m = METRICS.get(base)
    except Exception:  # noqa: BLE001 - unknown metric: no metadata
        return None
    return (m.direction, m.ideal, m.family)


def build_groups(runs: list[RunResult]) -> list[Group]:
    """Group runs into comparable cells; per seed, the newest run's values win."""
    groups: dict[tuple[Any, ...], Group] = {}
    for r in sorted(runs, key=lambda r: (r.created, r.run_id)):  # oldest first: newer overwrite
        key = _group_key(r)
        g = groups.get(key)
        if g is None:
            g = groups[key] = Group(
                model=key[0], model_version=key[1], weights_sha256=key[2], task=key[3],
                task_version=key[4], data_hash=key[5], train_task=key[6], target_kind=key[7],
                probe=key[8], label_fraction=float(r.label_fraction), main_score=r.task.main_score)
        g.run_ids.append(r.run_id)
        g.created = max(g.created, r.created)
        g.main_score = r.task.main_score
        for name, s in r.metrics.items():
            g.meta[name] = (s.direction, s.ideal, s.family)
        for seed_result in r.per_seed:
            for name, value in seed_result.metrics.items():
                per = g.values.setdefault(name, {})
                if value is None or not math.isfinite(float(value)):
                    per.pop(seed_result.seed, None)  # the newest run says: undefined
                else:
                    per[seed_result.seed] = float(value)
    out = []
    for g in groups.values():
        for name in list(g.values):
            if not g.values[name]:
                del g.values[name]
            elif name not in g.meta:
                meta = _registry_meta(name)
                if meta is None:
                    del g.values[name]
                else:
                    g.meta[name] = meta
        out.append(g)
    return sorted(out, key=lambda g: (g.task, g.task_version, g.data_hash or "", g.train_task or "",
                                      -g.label_fraction, g.probe, g.model, g.model_version))


def filter_suite(groups: list[Group], suite: Any) -> list[Group]:
    """Keep the suite's tasks at its versions, its probe per target kind, its label fractions."""
    keep = []
    for g in groups:
        if suite.tasks.get(g.task) != g.task_version or g.train_task is not None:
            continue
        if suite.probes.get(g.target_kind) != g.probe:
            continue
        if not any(math.isclose(g.label_fraction, f, rel_tol=1e-9) for f in suite.label_fractions):
            continue
        keep.append(g)
    return keep


def canonical_cells(groups: list[Group]) -> dict[str, tuple[Any, ...]]:
    """Per task name, the one cell (version, data hash, transfer source) that enters the
    overall scores: the one most models ran, then the highest version, then the newest."""
    by_task: dict[str, dict[tuple[Any, ...], list[Group]]] = {}
    for g in groups:
        by_task.setdefault(g.task, {}).setdefault(g.cell, []).append(g)
    out = {}
    for task, cells in by_task.items():
        def score(item: tuple[tuple[Any, ...], list[Group]]) -> tuple[Any, ...]:
            cell, gs = item
            return (len({x.model_id for x in gs}), cell[3] is None, cell[1],
                    max(x.created for x in gs))
        out[task] = max(cells.items(), key=score)[0]
    return out


def _baselines(groups: list[Group], baseline_model: str) -> dict[tuple[Any, ...], Group]:
    """The baseline group per (cell, probe, label fraction): most seeds, then newest."""
    out: dict[tuple[Any, ...], Group] = {}
    for g in groups:
        if g.model != baseline_model:
            continue
        key = (g.cell, g.probe, round(g.label_fraction, 9))
        old = out.get(key)
        if old is None or (len(g.seeds), g.created) > (len(old.seeds), old.created):
            out[key] = g
    return out


@dataclass
class _Norm:
    """What normalising one group on one family needs (for the point value and the bootstrap)."""

    values: np.ndarray  # the group's per-seed values of the representative metric
    b: float
    ideal: float
    direction: str


def _norm_inputs(g: Group, base: Group | None, family: str) -> _Norm | None:
    metric = FAMILIES.get(g.target_kind, {}).get(family)
    if base is None or metric is None or metric not in g.values or metric not in base.values:
        return None
    direction, ideal, _ = g.meta[metric]
    b = base.mean(metric)
    if b is None:
        return None
    ideal_v = metric_ideal(metric, direction, ideal)
    if normalise(0.0, b, ideal_v, direction) is None:
        return None
    return _Norm(g.seed_values(metric), b, ideal_v, direction)


def _bootstrap_iqm(norms: list[_Norm], n_boot: int, seed: int) -> tuple[float, float]:
    """Stratified bootstrap of the IQM: resample seeds with replacement within each task,
    normalise each resampled seed mean (baseline fixed), IQM across tasks; 95 % percentiles."""
    rng = np.random.default_rng(seed)
    cols = []
    for nm in norms:
        n = nm.values.size
        idx = rng.integers(0, n, size=(n_boot, n))
        cols.append(normalise(nm.values[idx].mean(axis=1), nm.b, nm.ideal, nm.direction))
    reps = iqm(np.stack(cols, axis=1), axis=1)
    alpha = (1.0 - LEVEL) / 2.0
    low, high = np.quantile(reps, [alpha, 1.0 - alpha])
    return float(low), float(high)


# -- the board ---------------------------------------------------------------------------------

def _metric_record(g: Group, name: str) -> dict[str, Any]:
    v = g.seed_values(name)
    s = mean_ci(v, LEVEL)
    direction, ideal, family = g.meta[name]
    return {"mean": s.mean, "ci_low": s.ci_low, "ci_high": s.ci_high, "std": s.std, "n": s.n,
            "direction": direction, "ideal": ideal, "family": family,
            "per_seed": [float(x) for x in v]}


def _labels(rows: list[dict[str, Any]]) -> None:
    """A display label per overall row: the model name, plus what tells same-named rows apart
    (version, weights, probes) only where needed."""
    by_name: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_name.setdefault(row["model"], []).append(row)
    for name, rs in by_name.items():
        versions = {r["model_version"] for r in rs}
        weights = {r["weights_sha256"] for r in rs}
        probe_sets = {tuple(sorted(r["probes"].items())) for r in rs}
        for r in rs:
            label = name
            if len(versions) > 1:
                label += f" {r['model_version']}"
            if len(weights) > 1:
                label += f" [{(r['weights_sha256'] or 'no weights')[:8]}]"
            if len(probe_sets) > 1:
                label += f" ({', '.join(p for _, p in sorted(r['probes'].items()))})"
            r["label"] = label


def _rank(rows: list[dict[str, Any]]) -> None:
    """Per label fraction, by the proper-score IQM: rank = 1 + the number of rows whose
    interval lies entirely above this row's; ``tied_with`` = rows with overlapping intervals."""
    by_fraction: dict[float, list[dict[str, Any]]] = {}
    for r in rows:
        by_fraction.setdefault(r["label_fraction"], []).append(r)
    for rs in by_fraction.values():
        scored = [r for r in rs if r["scores"]["proper_score"]["iqm"] is not None]
        for r in rs:
            r["rank"], r["tied_with"] = None, []
        for r in scored:
            me = r["scores"]["proper_score"]
            above = [o for o in scored if o is not r
                     and o["scores"]["proper_score"]["ci_low"] > me["ci_high"]]
            r["rank"] = 1 + len(above)
            r["tied_with"] = sorted(
                o["label"] for o in scored if o is not r
                and o["scores"]["proper_score"]["ci_low"] <= me["ci_high"]
                and me["ci_low"] <= o["scores"]["proper_score"]["ci_high"])


def build_board(runs: list[RunResult], *, suite: Any = None, baseline_model: str = DEFAULT_BASELINE,
                source: str = "files", n_boot: int = N_BOOT, boot_seed: int = BOOT_SEED,
                skipped: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    """The leaderboard as the ``releo-leaderboard/1`` JSON document (a dict).

    ``suite`` (a :class:`releo_bench.suites.Suite`) restricts the runs to it. The result has
    no groups when nothing matched; the caller decides what to do about that.
    """
    groups = build_groups(runs)
    n_all = len(groups)
    if suite is not None:
        groups = filter_suite(groups, suite)
    canon = canonical_cells(groups)
    bases = _baselines(groups, baseline_model)
    notes: list[str] = []

    norm_inputs: dict[int, dict[str, _Norm | None]] = {}
    for g in groups:
        base = bases.get((g.cell, g.probe, round(g.label_fraction, 9)))
        norm_inputs[id(g)] = {f: _norm_inputs(g, base, f) for f in FAMILY_NAMES}
        g.normalised = {}
        for f, nm in norm_inputs[id(g)].items():
            g.normalised[f] = None if nm is None else float(
                normalise(float(nm.values.mean()), nm.b, nm.ideal, nm.direction))
        g.in_overall = canon.get(g.task) == g.cell

    # overall rows: (model id, label fraction, one probe per target kind)
    by_model: dict[tuple[Any, ...], list[Group]] = {}
    for g in groups:
        if g.in_overall:
            by_model.setdefault((*g.model_id, round(g.label_fraction, 9)), []).append(g)
    rows: list[dict[str, Any]] = []
    for (model, version, weights, _), gs in by_model.items():
        kinds = sorted({g.target_kind for g in gs})
        probe_choices = [sorted({g.probe for g in gs if g.target_kind == k}) for k in kinds]
        for combo in itertools.product(*probe_choices):
            probes = dict(zip(kinds, combo))
            members = sorted((g for g in gs if probes[g.target_kind] == g.probe),
                             key=lambda g: g.task)
            scores: dict[str, dict[str, float | None]] = {}
            excluded: dict[str, list[str]] = {}
            for f in FAMILY_NAMES:
                with_norm = [(g, norm_inputs[id(g)][f]) for g in members]
                used = [(g, nm) for g, nm in with_norm if nm is not None]
                excluded[f] = [g.task for g, nm in with_norm if nm is None]
                if not used:
                    scores[f] = {"iqm": None, "ci_low": None, "ci_high": None}
                    continue
                point = float(iqm([g.normalised[f] for g, _ in used]))
                if n_boot > 0:
                    low, high = _bootstrap_iqm([nm for _, nm in used], n_boot, boot_seed)
                else:
                    low = high = point
                scores[f] = {"iqm": point, "ci_low": low, "ci_high": high}
            rows.append({
                "model": model, "model_version": version, "weights_sha256": weights,
                "label_fraction": gs[0].label_fraction, "probes": probes,
                "n_tasks": len(members), "tasks": [g.task for g in members],
                "scores": scores, "excluded": {f: t for f, t in excluded.items() if t},
                "rank": None, "tied_with": [],
            })
    _labels(rows)
    _rank(rows)
    rows.sort(key=lambda r: (-r["label_fraction"], r["rank"] is None, r["rank"] or 0,
                             -(r["scores"]["proper_score"]["iqm"] or 0.0), r["label"]))

    # notes: separate groups, missing baselines, skipped runs
    for g in groups:
        if not g.in_overall:
            ref = canon[g.task]
            ref_txt = f"{ref[0]} v{ref[1]}" + (f", data {ref[2][:12]}" if ref[2] else "") + \
                (f", trained on {ref[3]}" if ref[3] else "")
            notes.append(f"separate group, not averaged with {ref_txt}: {g.describe()}")
    missing = sorted({(g.task, g.task_version, g.probe, g.label_fraction) for g in groups
                      if g.in_overall and not bases.get((g.cell, g.probe, round(g.label_fraction, 9)))})
    for task, version, probe, frac in missing:
        notes.append(f"no {baseline_model!r} baseline run for {task} v{version} ({probe}, "
                     f"{fraction_label(frac)} labels): its normalised scores are null and it is "
                     "left out of the overall scores")
    if suite is not None and n_all > len(groups):
        notes.append(f"{n_all - len(groups)} group(s) outside suite {suite.name!r} left out")
    for where, why in skipped or []:
        notes.append(f"skipped {where}: {why}")

    return {
        "format": FORMAT,
        "generated": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        "source": source,
        "suite": None if suite is None else {"name": suite.name, "version": suite.version},
        "normalisation": {
            "baseline_model": baseline_model,
            "description": (f"per task and family, (m - b) / (ideal - b) on the family's "
                            f"representative metric, b = the {baseline_model!r} model's seed mean "
                            "on the same task version, probe and label fraction: 1 = ideal, "
                            "0 = as good as the baseline, < 0 = worse"),
        },
        "families": FAMILIES,
        "aggregation": {"across_tasks": "IQM (25 % trimmed mean)", "interval": "stratified bootstrap over seeds",
                        "n_boot": n_boot, "seed": boot_seed, "level": LEVEL},
        "groups": [_group_record(g) for g in groups],
        "overall": rows,
        "notes": notes,
    }


def _group_record(g: Group) -> dict[str, Any]:
    return {
        "model": g.model, "model_version": g.model_version, "weights_sha256": g.weights_sha256,
        "task": g.task, "task_version": g.task_version, "data_hash": g.data_hash,
        "train_task": g.train_task, "target_kind": g.target_kind,
        "probe": g.probe, "label_fraction": g.label_fraction,
        "seeds": g.seeds, "run_ids": g.run_ids, "main_score": g.main_score,
        "metrics": {name: _metric_record(g, name) for name in g.values},
        "normalised": dict(g.normalised),
        "in_overall": g.in_overall,
    }


__all__ = ["DEFAULT_BASELINE", "FAMILIES", "FAMILY_NAMES", "FORMAT", "Group", "N_BOOT",
           "build_board", "build_groups", "canonical_cells", "filter_suite", "iqm",
           "metric_ideal", "normalise"]
