"""Writers of a leaderboard (the ``releo-leaderboard/1`` dict): Markdown, CSV, JSON, HTML.

Markdown and CSV hold one table per label fraction: the model, then per family (accuracy,
calibration, proper score) the IQM of the normalised scores with its interval, the rank, and
per task the main score (seed mean and 95 % interval). Accuracy and calibration are separate
columns, so an accurate but badly calibrated model shows as such. HTML is drawn by
:mod:`releo_bench.leaderboard.html` from the JSON document.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..results import atomic_write_text
from .aggregate import FAMILY_NAMES, fraction_label

FORMATS = ("md", "html", "csv", "json")
FAMILY_TITLES = {"accuracy": "accuracy", "calibration": "calibration", "proper_score": "proper score"}
ARROWS = {"higher": "↑", "lower": "↓"}


def _clean(obj: Any) -> Any:
    """Non-finite floats become null, so the JSON is strict (no NaN / Infinity)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def to_json(board: dict[str, Any]) -> str:
    return json.dumps(_clean(board), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


# -- shared table content ----------------------------------------------------------------------

def _fractions(board: dict[str, Any]) -> list[float]:
    fr = {r["label_fraction"] for r in board["overall"]}
    return sorted(fr, reverse=True)


def _task_columns(board: dict[str, Any], fraction: float | None = None) -> list[dict[str, Any]]:
    """The tasks that enter the overall scores (one cell each), with their main score."""
    cols: dict[str, dict[str, Any]] = {}
    for g in board["groups"]:
        if not g["in_overall"] or (fraction is not None and g["label_fraction"] != fraction):
            continue
        if g["task"] not in cols:
            ms = g["main_score"]
            direction = g["metrics"].get(ms, {}).get("direction", "")
            cols[g["task"]] = {"task": g["task"], "version": g["task_version"], "main_score": ms,
                               "direction": direction}
    return [cols[t] for t in sorted(cols)]


def _member(board: dict[str, Any], row: dict[str, Any], task: str) -> dict[str, Any] | None:
    for g in board["groups"]:
        if (g["in_overall"] and g["task"] == task and g["model"] == row["model"]
                and g["model_version"] == row["model_version"]
                and g["weights_sha256"] == row["weights_sha256"]
                and g["label_fraction"] == row["label_fraction"]
                and row["probes"].get(g["target_kind"]) == g["probe"]):
            return g
    return None


def _num(x: float | None, digits: int = 4) -> str:
    if x is None or not math.isfinite(x):
        return "–"
    return f"{x:.{digits}g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.2e}"


def _rank_text(row: dict[str, Any]) -> str:
    if row["rank"] is None:
        return "–"
    return f"={row['rank']}" if row["tied_with"] else str(row["rank"])


def _score_text(s: dict[str, Any]) -> str:
    if s["iqm"] is None:
        return "–"
    return f"{s['iqm']:.3f} [{s['ci_low']:.3f}, {s['ci_high']:.3f}]"


def _main_text(g: dict[str, Any] | None) -> str:
    if g is None or g["main_score"] not in g["metrics"]:
        return "–"
    m = g["metrics"][g["main_score"]]
    if m["n"] <= 1:
        return f"{_num(m['mean'])} (1 seed)"
    half = m["ci_high"] - m["mean"]
    if abs(half) <= 1e-9 * max(1.0, abs(m["mean"])):  # identical seeds: rounding noise only
        half = 0.0
    return f"{_num(m['mean'])} ± {_num(half, 2)}"


# -- Markdown ----------------------------------------------------------------------------------

def markdown_tables(board: dict[str, Any]) -> str:
    """The tables alone (what the CLI prints): one per label fraction."""
    parts = []
    for frac in _fractions(board):
        rows = [r for r in board["overall"] if r["label_fraction"] == frac]
        tasks = _task_columns(board, frac)
        head = ["model"] + [FAMILY_TITLES[f] for f in FAMILY_NAMES] + ["rank"] + [
            f"{t['task']} v{t['version']} {t['main_score']} {ARROWS.get(t['direction'], '')}".rstrip()
            for t in tasks]
        lines = [f"### {fraction_label(frac)} of labels", "",
                 "| " + " | ".join(head) + " |",
                 "|" + "---|" + "---:|" * (len(head) - 1)]
        for r in rows:
            cells = [r["label"]] + [_score_text(r["scores"][f]) for f in FAMILY_NAMES] + [
                _rank_text(r)] + [_main_text(_member(board, r, t["task"])) for t in tasks]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def _row_notes(board: dict[str, Any]) -> list[str]:
    notes = []
    for r in board["overall"]:
        for f, tasks in r.get("excluded", {}).items():
            notes.append(f"{r['label']} ({fraction_label(r['label_fraction'])} of labels): "
                         f"{FAMILY_TITLES[f]} over {r['n_tasks'] - len(tasks)} of {r['n_tasks']} "
                         f"task(s); no normalised score for {', '.join(tasks)}")
    return notes


def to_markdown(board: dict[str, Any]) -> str:
    suite = board.get("suite")
    norm = board["normalisation"]
    agg = board.get("aggregation", {})
    header = [
        "# releo-bench leaderboard", "",
        f"Source: `{board['source']}`"
        + (f" · suite `{suite['name']}` v{suite['version']}" if suite else "")
        + f" · generated {board['generated']}", "",
        f"Family columns: the IQM across tasks of per-task normalised scores (1 = ideal, "
        f"0 = the `{norm['baseline_model']}` baseline, < 0 = worse) with a 95 % stratified "
        f"bootstrap interval ({agg.get('n_boot', '?')} replicates over seeds). Representative "
        "metrics: " + "; ".join(f"{kind}: " + ", ".join(f"{FAMILY_TITLES[f]} `{m}`" for f, m in fams.items())
                                for kind, fams in board["families"].items()) + ". "
        "Rank by the proper score; `=` marks a tie (overlapping intervals). Task columns: the "
        "task's main score, seed mean ± half-width of its 95 % Student-t interval.", "",
    ]
    if not board["overall"]:
        header += ["No model has runs on comparable task cells.", ""]
    body = markdown_tables(board) if board["overall"] else ""
    notes = list(board.get("notes", [])) + _row_notes(board)
    tail = ["", "## Notes", ""] + [f"- {n}" for n in notes] if notes else []
    return "\n".join(header) + "\n" + body + ("\n".join(tail) + "\n" if tail else "")


# -- CSV ---------------------------------------------------------------------------------------

def to_csv(board: dict[str, Any]) -> str:
    """One row per (label fraction, model): the tables of the Markdown, stacked, numbers split
    into columns (``<family>_iqm``, ``_ci_low``, ``_ci_high``; per task ``<task>@v<version>/
    <main score>`` with ``_ci_low``, ``_ci_high``, ``_n``)."""
    tasks = _task_columns(board)
    head = ["label_fraction", "model", "model_version", "label", "probes", "n_tasks"]
    for f in FAMILY_NAMES:
        head += [f"{f}_iqm", f"{f}_ci_low", f"{f}_ci_high"]
    head += ["rank", "rank_display", "tied_with"]
    for t in tasks:
        stem = f"{t['task']}@v{t['version']}/{t['main_score']}"
        head += [stem, f"{stem}_ci_low", f"{stem}_ci_high", f"{stem}_n"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(head)

    def val(x: Any) -> Any:
        return "" if x is None or (isinstance(x, float) and not math.isfinite(x)) else x

    for frac in _fractions(board):
        for r in (r for r in board["overall"] if r["label_fraction"] == frac):
            line: list[Any] = [frac, r["model"], r["model_version"], r["label"],
                               ";".join(f"{k}={v}" for k, v in sorted(r["probes"].items())),
                               r["n_tasks"]]
            for f in FAMILY_NAMES:
                s = r["scores"][f]
                line += [val(s["iqm"]), val(s["ci_low"]), val(s["ci_high"])]
            line += [val(r["rank"]), _rank_text(r) if r["rank"] is not None else "",
                     ";".join(r["tied_with"])]
            for t in tasks:
                g = _member(board, r, t["task"])
                m = g["metrics"].get(t["main_score"]) if g else None
                line += ([val(m["mean"]), val(m["ci_low"]), val(m["ci_high"]), m["n"]] if m
                         else ["", "", "", ""])
            w.writerow(line)
    return buf.getvalue()


# -- dispatch ----------------------------------------------------------------------------------

def write(board: dict[str, Any], fmt: str, out_dir: str | Path) -> Path:
    """Write ``leaderboard.<fmt>`` into ``out_dir`` (created); return its path."""
    out_dir = Path(out_dir)
    if fmt not in FORMATS:
        raise UsageError(f"unknown leaderboard format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt == "html":
        try:
            from .html import write_html
        except ImportError as exc:
            raise UsageError(f"the html format is not available in this installation ({exc})") from exc
        out_dir.mkdir(parents=True, exist_ok=True)
        return Path(write_html(_clean(board), out_dir))
    text = {"md": to_markdown, "csv": to_csv, "json": to_json}[fmt](board)
    path = out_dir / f"leaderboard.{fmt}"
    atomic_write_text(path, text)
    return path


__all__ = ["FORMATS", "markdown_tables", "to_csv", "to_json", "to_markdown", "write"]
