"""The leaderboard as a static HTML page: ``index.html`` plus PNG plots in ``plots/``.

:func:`write_html` takes the leaderboard dict (format ``releo-leaderboard/1``, see
docs/leaderboard.md) and writes a self-contained page: no script, no external resource (no
CDN, no web font), the plots as PNG files referenced by relative paths, so the folder can be
copied anywhere or served as is. A Content-Security-Policy meta tag forbids scripts and any
resource from elsewhere, as a second line of defence behind the escaping.

Every string taken from the board (model names come from submissions) goes through
:func:`html.escape` before it reaches the page; identifiers (anchors, file names) are built
from a slug of ``[a-z0-9-]`` plus a short hash, never from raw text. Plot labels escape ``$``
so that matplotlib never reads a name as mathtext.

The plots are drawn with matplotlib's Agg canvas (no pyplot, default fonts) at fixed sizes
and written atomically; their file names depend only on what they show (task identity, label
fraction), so regenerating the page overwrites them and stale ones are removed.

See docs/leaderboard-page.md for what the page shows.
"""

from __future__ import annotations

import hashlib
import html
import math
import os
import re
import shlex
import tempfile
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from ..errors import UsageError

if TYPE_CHECKING:
    from matplotlib.axes import Axes

FORMAT = "releo-leaderboard/1"
FAMILIES = ("accuracy", "calibration", "proper_score")
FAMILY_TITLE = {"accuracy": "Accuracy", "calibration": "Calibration",
                "proper_score": "Proper score"}
PLOT_DIR = "plots"
INDEX = "index.html"
# plot files this module writes (anything else in plots/ is left alone)
_OWN_PLOT = re.compile(r"^(task-[a-z0-9-]+|accuracy-vs-calibration-lf[0-9p.e-]+"
                       r"|label-fraction-curves)\.png$")
_CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'"
_DIRECTION = {"higher": "higher is better", "lower": "lower is better",
              "zero": "best at 0", "target": "best at the ideal value"}
_ARROW = {"higher": "\u2191", "lower": "\u2193", "zero": "\u2192 0", "target": "\u2192 ideal"}
# distinct for colour-blind readers too: colour and marker both change
_COLOURS = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000",
            "#f0e442", "#8c564b", "#7f7f7f")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")


class LeaderboardPageError(UsageError, ValueError):
    """A board that cannot be drawn (wrong format, a required field missing)."""


# -- small helpers --------------------------------------------------------------------------

def _e(value: Any) -> str:
    """Text for HTML content or a quoted attribute: every ``& < > " '`` escaped."""
    return html.escape("" if value is None else str(value), quote=True)


def _finite(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def format_value(x: Any) -> str:
    """A raw metric value: 3 decimals (``0.123``, ``12.346``); scientific notation below
    0.001 or from 10 000 on; ``—`` when missing."""
    v = _finite(x)
    if v is None:
        return "\u2014"
    a = abs(v)
    if a != 0 and (a < 1e-3 or a >= 1e4):
        return f"{v:.2e}"
    s = f"{v:.3f}"
    return "0.000" if s == "-0.000" else s


def format_score(x: Any) -> str:
    """A normalised score (1 = ideal, 0 = baseline): 2 decimals, ``—`` when missing."""
    v = _finite(x)
    if v is None:
        return "\u2014"
    s = f"{v:.2f}"
    return "0.00" if s == "-0.00" else s


def format_interval(low: Any, high: Any, fmt=format_value) -> str:
    return f"[{fmt(low)}, {fmt(high)}]"


def format_fraction(lf: Any) -> str:
    """Label fraction as a percentage: 1.0 -> ``100 %``, 0.1 -> ``10 %``."""
    v = _finite(lf)
    return "\u2014" if v is None else f"{v * 100:g} %"


def _slug(text: Any, keep: int = 40) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")[:keep].strip("-")
    return s or "x"


def _short_hash(*parts: Any) -> str:
    return hashlib.sha256("\x1f".join(repr(p) for p in parts).encode()).hexdigest()[:8]


def _lf_token(lf: float) -> str:
    return f"{lf:g}".replace(".", "p")


def short_data_hash(h: Any) -> str | None:
    """The first 8 characters of a data hash, without an ``algo:`` prefix."""
    if not h:
        return None
    s = str(h)
    return s.split(":", 1)[1][:8] if ":" in s else s[:8]


def _mpl_text(text: Any, limit: int = 32) -> str:
    """A label for matplotlib: shortened, ``$`` escaped (no mathtext), and never starting with
    ``_`` (matplotlib leaves such labels out of legends)."""
    s = str(text)
    if len(s) > limit:
        s = s[: limit - 1] + "\u2026"
    s = s.replace("\\", "\\\\").replace("$", r"\$")
    return " " + s if s.startswith("_") else s


def _require(d: dict, key: str, where: str) -> Any:
    if not isinstance(d, dict) or key not in d:
        raise LeaderboardPageError(f"{where}: field {key!r} is missing")
    return d[key]


def _check_board(board: Any) -> None:
    if not isinstance(board, dict):
        raise LeaderboardPageError(f"leaderboard must be a dict, got {type(board).__name__}")
    fmt = board.get("format")
    if fmt != FORMAT:
        raise LeaderboardPageError(f"leaderboard format {fmt!r} is not supported "
                                   f"(expected {FORMAT!r})")
    for key in ("groups", "overall"):
        if not isinstance(board.get(key), list):
            raise LeaderboardPageError(f"leaderboard: field {key!r} must be a list")
    for where, rows, keys in (("groups", board["groups"], ("model", "task", "label_fraction",
                                                            "metrics")),
                              ("overall", board["overall"], ("model", "label_fraction",
                                                             "scores"))):
        for i, row in enumerate(rows):
            for key in keys:
                _require(row, key, f"{where}[{i}]")
            if _finite(row["label_fraction"]) is None:
                raise LeaderboardPageError(f"{where}[{i}]: label_fraction must be a number, "
                                           f"got {row['label_fraction']!r}")
            for key in ("metrics", "scores"):
                if key in keys and not isinstance(row[key], dict):
                    raise LeaderboardPageError(f"{where}[{i}]: {key} must be a dict")


def _model_key(row: dict) -> tuple[str, str]:
    return (str(row.get("model")), str(row.get("model_version") or ""))


def _task_key(g: dict) -> tuple[str, str, str, str, str]:
    """(task, version, data hash, target kind, training task): one per-task section each."""
    return (str(g.get("task")), str(g.get("task_version") if g.get("task_version") is not None
                                     else ""),
            str(g.get("data_hash") or ""), str(g.get("target_kind") or ""),
            str(g.get("train_task") or ""))


def _score(row: dict, family: str) -> dict:
    s = (row.get("scores") or {}).get(family) or {}
    return s if isinstance(s, dict) else {}


def _badness(metric: dict) -> float:
    """Sort key: smaller is better, whatever the metric's direction."""
    m = _finite(metric.get("mean"))
    if m is None:
        return math.inf
    direction = metric.get("direction")
    ideal = _finite(metric.get("ideal"))
    if direction == "higher":
        return -m
    if direction == "zero":
        return abs(m)
    if direction == "target" and ideal is not None:
        return abs(m - ideal)
    return m


def _main_metric(groups: list[dict], fam_metrics: dict) -> str | None:
    """The task's main score: the most common ``main_score`` of its groups, else the
    representative proper score of its kind."""
    named = Counter(str(g["main_score"]) for g in groups if g.get("main_score"))
    if named:
        return named.most_common(1)[0][0]
    proper = fam_metrics.get("proper_score")
    return str(proper) if proper else None


def default_command(board: dict, out_dir: Path | str | None = None) -> str:
    """The command that regenerates the page from the same runs: the MLflow store (its URI
    as the board gives it, password redacted), suite, baseline and output folder. Runs read
    from files (source ``files``) need their ``--results`` paths added."""
    words = ["releo-bench", "leaderboard", "--format", "html"]
    source = board.get("source")
    if source and source != "files":
        words += ["--tracking-uri", str(source)]
    suite = board.get("suite")
    if isinstance(suite, dict) and suite.get("name"):
        words += ["--suite", str(suite["name"])]
    baseline = (board.get("normalisation") or {}).get("baseline_model")
    if baseline and baseline != "raw":
        words += ["--baseline-model", str(baseline)]
    if out_dir is not None:
        words += ["--out", str(out_dir)]
    return " ".join(shlex.quote(w) for w in words)


# -- plots ----------------------------------------------------------------------------------

def _figure(size: tuple[float, float]):
    from ..plots import _new_figure

    return _new_figure(size)


def _save(fig, path: Path) -> Path:
    from ..plots import _save_png

    return _save_png(fig, path)


def _baseline_line(ax: "Axes", horizontal: bool = True) -> None:
    (ax.axhline if horizontal else ax.axvline)(0.0, color="#555555", linestyle="--",
                                               linewidth=1)


def _plot_task(groups: list[dict], fam_metrics: dict, title: str,
               path: Path) -> tuple[Path, str] | None:
    """Main score per model (x) with its 95 % CI over seeds, one series per label fraction."""
    main = _main_metric(groups, fam_metrics)
    if main is None:
        return None
    rows = [g for g in groups if isinstance(g["metrics"].get(main), dict)
            and _finite(g["metrics"][main].get("mean")) is not None]
    if not rows:
        return None
    probes = {str(g.get("probe")) for g in rows}

    def label(g: dict) -> tuple:
        return (str(g["model"]), str(g.get("model_version") or ""), str(g.get("probe")))

    top = max(float(g["label_fraction"]) for g in rows)
    quality = {label(g): _badness(g["metrics"][main]) for g in rows
               if float(g["label_fraction"]) == top}
    # best first at the largest label fraction, as in the table
    cats = sorted({label(g) for g in rows}, key=lambda c: (quality.get(c, math.inf), c))
    versions = Counter(m for m, _ in {(m, v) for m, v, _ in cats})
    xtick = []
    for model, version, probe in cats:
        t = model
        if versions[model] > 1 and version:
            t += f" ({version})"
        if len(probes) > 1:
            t += f" / {probe}"
        xtick.append(_mpl_text(t))
    fractions = sorted({float(g["label_fraction"]) for g in rows}, reverse=True)
    width = 0.7 / max(len(fractions), 1)
    fig = _figure((min(14.0, max(6.0, 1.5 + 0.75 * len(cats))), 4.5))
    ax = fig.add_subplot()
    for j, lf in enumerate(fractions):
        xs, ys, lo, hi = [], [], [], []
        for g in rows:
            if float(g["label_fraction"]) != lf:
                continue
            m = g["metrics"][main]
            mean = float(m["mean"])
            low = _finite(m.get("ci_low"))
            high = _finite(m.get("ci_high"))
            xs.append(cats.index(label(g)) + (j - (len(fractions) - 1) / 2) * width)
            ys.append(mean)
            lo.append(max(mean - low, 0.0) if low is not None else 0.0)
            hi.append(max(high - mean, 0.0) if high is not None else 0.0)
        ax.errorbar(xs, ys, yerr=[lo, hi], fmt=_MARKERS[j % len(_MARKERS)], capsize=4,
                    color=_COLOURS[j % len(_COLOURS)], markersize=6, linewidth=1.2,
                    label=f"label fraction {format_fraction(lf)}")
    ax.set_xticks(range(len(cats)))
    ax.set_xticklabels(xtick, rotation=30 if len(cats) > 3 else 0,
                       ha="right" if len(cats) > 3 else "center")
    ax.set_xlim(-0.6, len(cats) - 0.4)
    direction = next((g["metrics"][main].get("direction") for g in rows), None)
    ax.set_ylabel(_mpl_text(f"{main} ({_DIRECTION.get(direction, 'see metric')})", 60))
    ax.set_title(_mpl_text(title, 70) + "\nseed mean and 95 % CI", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    if len(fractions) > 1:
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    alt = (f"{title}: {main} per model, mean with 95 % confidence interval over seeds, for "
           f"label fraction{'s' if len(fractions) > 1 else ''} "
           f"{', '.join(format_fraction(f) for f in fractions)}. The same numbers are in the "
           "table above.")
    return _save(fig, path), alt


def _model_style(keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], tuple[str, str]]:
    return {k: (_COLOURS[i % len(_COLOURS)], _MARKERS[(i + i // len(_COLOURS)) % len(_MARKERS)])
            for i, k in enumerate(keys)}


def _model_label(key: tuple[str, str], names: Counter) -> str:
    return f"{key[0]} ({key[1]})" if names[key[0]] > 1 and key[1] else key[0]


def _place_labels(ax: "Axes", labels: list[tuple[float, float, str, str]],
                  xlim: tuple[float, float], ylim: tuple[float, float]) -> None:
    """Annotate points, moving a label to another side of its point when it would overlap a
    label already placed (a greedy pass in rough axes-fraction units; deterministic)."""
    offsets = ((6, 5, "left", "bottom"), (6, -6, "left", "top"), (-6, 5, "right", "bottom"),
               (-6, -6, "right", "top"), (0, 12, "center", "bottom"), (0, -12, "center", "top"))
    shift = {"left": 0.5, "right": -0.5, "center": 0.0}
    height = 0.035  # 8 pt text on a ~5 inch axes
    taken: list[tuple[float, float, float]] = []  # centre x, centre y, width
    for x, y, text, colour in sorted(labels, key=lambda t: (-t[1], t[0], t[2])):
        fx = (x - xlim[0]) / ((xlim[1] - xlim[0]) or 1.0)
        fy = (y - ylim[0]) / ((ylim[1] - ylim[0]) or 1.0)
        width = 0.0115 * len(text)
        boxes = []
        for off in offsets:
            cx = fx + off[0] / 500 + shift[off[2]] * width
            cy = fy + off[1] / 400 + (height / 2 if off[3] == "bottom" else -height / 2)
            clash = sum(abs(cx - tx) < (width + tw) / 2 and abs(cy - ty) < height
                        for tx, ty, tw in taken)
            boxes.append((clash, off, cx, cy))
        clash, off, cx, cy = min(boxes, key=lambda b: b[0])  # first of the least crowded
        taken.append((cx, cy, width))
        ax.annotate(text, (x, y), xytext=off[:2], textcoords="offset points", fontsize=8,
                    color=colour, ha=off[2], va=off[3])


def _plot_scatter(rows: list[dict], lf: float, style: dict, names: Counter,
                  path: Path) -> tuple[Path, str] | None:
    """Normalised accuracy (x) vs normalised calibration (y), one point per model."""
    pts = [r for r in rows if _finite(_score(r, "accuracy").get("iqm")) is not None
           and _finite(_score(r, "calibration").get("iqm")) is not None]
    if not pts:
        return None
    fig = _figure((7.0, 6.0))
    ax = fig.add_subplot()
    xs_all, ys_all = [0.0, 1.0], [0.0, 1.0]
    labels: list[tuple[float, float, str, str]] = []
    for r in pts:
        key = _model_key(r)
        colour, marker = style[key]
        a, c = _score(r, "accuracy"), _score(r, "calibration")
        x, y = float(a["iqm"]), float(c["iqm"])

        def err(s: dict, v: float) -> list[list[float]]:
            lo, hi = _finite(s.get("ci_low")), _finite(s.get("ci_high"))
            return [[max(v - lo, 0.0) if lo is not None else 0.0],
                    [max(hi - v, 0.0) if hi is not None else 0.0]]

        ax.errorbar([x], [y], xerr=err(a, x), yerr=err(c, y), fmt=marker, color=colour,
                    capsize=3, markersize=7, linewidth=1)
        labels.append((x, y, _mpl_text(_model_label(key, names)), colour))
        for s, acc in ((a, xs_all), (c, ys_all)):
            acc += [v for v in (_finite(s.get("ci_low")), _finite(s.get("ci_high")))
                    if v is not None]
        xs_all.append(x)
        ys_all.append(y)
    pad_x = 0.08 * (max(xs_all) - min(xs_all) or 1.0)
    pad_y = 0.08 * (max(ys_all) - min(ys_all) or 1.0)
    xlim = (min(xs_all) - pad_x, max(xs_all) + pad_x)
    ylim = (min(ys_all) - pad_y, max(ys_all) + pad_y)
    if ylim[0] < 0:
        ax.axhspan(ylim[0], 0.0, color="#d55e00", alpha=0.08, linewidth=0)
        ax.text(xlim[1], ylim[0], "calibration worse than baseline ", ha="right",
                va="bottom", fontsize=8, color="#a33d00")
    _baseline_line(ax, True)
    _baseline_line(ax, False)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    _place_labels(ax, labels, xlim, ylim)
    ax.set_xlabel("accuracy, normalised IQM (1 = ideal, 0 = baseline)")
    ax.set_ylabel("calibration, normalised IQM (1 = ideal, 0 = baseline)")
    ax.set_title(f"Accuracy vs calibration, label fraction {format_fraction(lf)} (95 % CI)",
                 fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    alt = (f"Scatter plot, label fraction {format_fraction(lf)}: each model's normalised "
           "accuracy IQM (horizontal) against its normalised calibration IQM (vertical), "
           "with 95 % intervals; points below the dashed zero line are calibrated worse "
           "than the baseline. The same numbers are in the overall table.")
    return _save(fig, path), alt


def _plot_curves(overall: list[dict], fractions: list[float], style: dict, names: Counter,
                 path: Path) -> tuple[Path, str] | None:
    """Normalised proper-score IQM against the label fraction, one line per model."""
    series: dict[tuple[str, str], list[tuple[float, float, float | None, float | None]]] = {}
    for r in overall:
        s = _score(r, "proper_score")
        v = _finite(s.get("iqm"))
        if v is None:
            continue
        series.setdefault(_model_key(r), []).append(
            (float(r["label_fraction"]), v, _finite(s.get("ci_low")), _finite(s.get("ci_high"))))
    if not series:
        return None
    fig = _figure((8.0, 5.0))
    ax = fig.add_subplot()
    for key in sorted(series):
        pts = sorted(series[key])
        colour, marker = style[key]
        xs = [p[0] for p in pts]
        ys = [p[1] for p in pts]
        lo = [max(p[1] - p[2], 0.0) if p[2] is not None else 0.0 for p in pts]
        hi = [max(p[3] - p[1], 0.0) if p[3] is not None else 0.0 for p in pts]
        ax.errorbar(xs, ys, yerr=[lo, hi], fmt="-" + marker, color=colour, capsize=3,
                    markersize=6, linewidth=1.2, label=_mpl_text(_model_label(key, names)))
    if min(fractions) > 0 and max(fractions) / min(fractions) >= 10:
        ax.set_xscale("log")
    ax.set_xticks(fractions)
    ax.set_xticklabels([format_fraction(f) for f in fractions])
    ax.minorticks_off()
    _baseline_line(ax, True)
    ax.set_xlabel("label fraction (share of the training labels used by the probe)")
    ax.set_ylabel("proper score, normalised IQM (1 = ideal, 0 = baseline)")
    ax.set_title("Proper score vs label fraction (95 % CI)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, borderaxespad=0.0)
    fig.tight_layout()
    alt = ("Line plot: each model's normalised proper-score IQM (vertical) against the label "
           f"fraction (horizontal: {', '.join(format_fraction(f) for f in fractions)}), with "
           "95 % intervals. The same numbers are in the overall tables.")
    return _save(fig, path), alt


# -- HTML pieces ----------------------------------------------------------------------------

_CSS = """
:root { --fg: #1a1a1a; --muted: #555; --line: #ccc; --bad-bg: #fde8e0; --bad-fg: #8a2c00;
        --head: #f2f4f7; --accent: #0b5394; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
       sans-serif; color: var(--fg); background: #fff; margin: 0 auto; padding: 1rem 1.5rem 3rem;
       max-width: 80rem; line-height: 1.45; }
h1 { font-size: 1.7rem; margin: .5rem 0; }
h2 { font-size: 1.35rem; margin-top: 2.2rem; border-bottom: 2px solid var(--line);
     padding-bottom: .2rem; }
h3 { font-size: 1.1rem; margin-top: 1.8rem; }
a { color: var(--accent); }
a:focus, .table-wrap:focus { outline: 3px solid #ffbf47; outline-offset: 2px; }
.skip { position: absolute; left: -999px; }
.skip:focus { left: 1rem; top: 1rem; background: #fff; padding: .3rem .6rem; }
.sr-only { position: absolute; width: 1px; height: 1px; padding: 0; margin: -1px;
           overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; border: 0; }
.table-wrap { overflow-x: auto; margin: .6rem 0 1rem; }
table { border-collapse: collapse; font-size: .92rem; }
caption { text-align: left; font-weight: 600; padding: .3rem 0; }
th, td { border: 1px solid var(--line); padding: .3rem .55rem; vertical-align: top; }
thead th { background: var(--head); text-align: left; }
tbody th { text-align: left; font-weight: 600; white-space: nowrap; }
td.num, td.score, td.metric { text-align: right; font-variant-numeric: tabular-nums;
                              white-space: nowrap; }
td.rank { text-align: center; font-weight: 600; }
.ci { color: var(--muted); font-size: .85em; }
.norm { display: block; color: var(--muted); font-size: .8em; }
.version { color: var(--muted); font-weight: normal; font-size: .85em; }
td.worse-than-baseline { background: var(--bad-bg); color: var(--bad-fg); }
td.worse-than-baseline .ci, td.worse-than-baseline .norm { color: var(--bad-fg); }
.flag { font-weight: 700; margin-left: .25rem; }
.badge { display: inline-block; border: 1px solid var(--bad-fg); color: var(--bad-fg);
         border-radius: .3rem; padding: 0 .35rem; font-size: .8em; margin: .1rem 0; }
.badge.base { border-color: var(--muted); color: var(--muted); }
.note { color: var(--muted); font-size: .9rem; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: var(--muted); font-size: .9rem; }
dl.prov { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; }
dl.prov dt { font-weight: 600; }
dl.prov dd { margin: 0; }
pre { background: #f6f8fa; padding: .6rem; overflow-x: auto; }
code { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; }
nav ul { columns: 2; }
"""

_WORSE = ('<span class="flag" aria-hidden="true">\u25bc</span>'
          '<span class="sr-only"> (worse than the baseline)</span>')


def _score_cell(s: dict, family: str) -> str:
    v = _finite(s.get("iqm"))
    if v is None:
        return (f'<td class="score" data-family="{family}">\u2014'
                '<span class="sr-only"> (not available)</span></td>')
    worse = v < 0
    cls = "score worse-than-baseline" if worse else "score"
    return (f'<td class="{cls}" data-family="{family}"><span class="iqm">{format_score(v)}</span>'
            f'{_WORSE if worse else ""} <span class="ci">'
            f'{format_interval(s.get("ci_low"), s.get("ci_high"), format_score)}</span></td>')


def _model_th(row: dict, baseline: str | None) -> str:
    version = row.get("model_version")
    out = f'<th scope="row"><span class="model">{_e(row.get("model"))}</span>'
    if version:
        out += f' <span class="version">{_e(version)}</span>'
    weights = row.get("weights_sha256")
    if weights and row.get("label") and row.get("label") != row.get("model") \
            and str(weights)[:8] in str(row.get("label")):
        out += f' <span class="version">[{_e(str(weights)[:8])}]</span>'
    if baseline is not None and row.get("model") == baseline:
        out += ' <span class="badge base">baseline</span>'
    return out + "</th>"


def _overall_table(rows: list[dict], lf: float, baseline: str | None) -> str:
    def order(r: dict) -> tuple:
        rank = r.get("rank")
        p = _finite(_score(r, "proper_score").get("iqm"))
        return (rank if isinstance(rank, int) else math.inf, -(p if p is not None else -math.inf),
                str(r.get("model")), str(r.get("model_version") or ""))

    rows = sorted(rows, key=order)
    probes = any(r.get("probes") for r in rows)
    out = [f'<div class="table-wrap" role="region" tabindex="0" '
           f'aria-label="Overall ranking, label fraction {format_fraction(lf)}">',
           '<table class="overall">',
           f"<caption>Overall, label fraction {format_fraction(lf)}: normalised IQM across "
           "tasks [95 % CI] (1 = ideal, 0 = baseline, below 0 = worse than the baseline); "
           "ranked by the proper score</caption>",
           "<thead><tr>"
           '<th scope="col">Rank</th><th scope="col">Model</th>'
           + ('<th scope="col">Probes</th>' if probes else "") +
           '<th scope="col">Tasks</th>'
           '<th scope="col">Accuracy</th><th scope="col">Calibration</th>'
           '<th scope="col">Proper score</th><th scope="col">Notes</th>'
           "</tr></thead>", "<tbody>"]
    for r in rows:
        rank = r.get("rank")
        if isinstance(rank, int):
            tied = bool(r.get("tied_with"))
            rank_txt = f"={rank}" if tied else str(rank)
            rank_label = f"rank {rank}, tied" if tied else f"rank {rank}"
        else:
            rank_txt, rank_label = "\u2014", "not ranked"
        notes = []
        acc = _finite(_score(r, "accuracy").get("iqm"))
        cal = _finite(_score(r, "calibration").get("iqm"))
        if acc is not None and cal is not None and acc > 0 and cal < 0:
            notes.append('<span class="badge miscalibrated">accurate but miscalibrated</span>')
        tied_with = r.get("tied_with") or []
        if tied_with:
            notes.append("tied: 95 % interval overlaps " + ", ".join(_e(t) for t in tied_with))
        tasks = r.get("tasks") or []
        n_tasks = r.get("n_tasks", len(tasks))
        cells = [f'<td class="rank" aria-label="{_e(rank_label)}">{_e(rank_txt)}</td>',
                 _model_th(r, baseline)]
        if probes:
            pr = r.get("probes") or {}
            cells.append("<td>" + ", ".join(_e(v) for _, v in sorted(pr.items())) + "</td>"
                         if isinstance(pr, dict) else f"<td>{_e(pr)}</td>")
        cells += [
                 f'<td class="num" title="{_e(", ".join(str(t) for t in tasks))}">'
                 f"{_e(n_tasks)}</td>",
                 *(_score_cell(_score(r, f), f) for f in FAMILIES),
                 f'<td class="notes">{"<br>".join(notes)}</td>']
        out.append(f'<tr data-model="{_e(r.get("model"))}">' + "".join(cells) + "</tr>")
    out += ["</tbody></table></div>"]
    return "\n".join(out)


def _metric_cell(metric: Any, norm: Any = None, family: str = "", show_norm: bool = True) -> str:
    if not isinstance(metric, dict) or _finite(metric.get("mean")) is None:
        return f'<td class="metric" data-family="{family}">\u2014</td>'
    nv = _finite(norm)
    worse = nv is not None and nv < 0
    cls = "metric worse-than-baseline" if worse else "metric"
    out = (f'<td class="{cls}" data-family="{family}"><span class="mean">'
           f'{format_value(metric["mean"])}</span>{_WORSE if worse else ""} <span class="ci">'
           f'{format_interval(metric.get("ci_low"), metric.get("ci_high"))}</span>')
    if show_norm:
        out += f' <span class="norm">normalised {format_score(nv)}</span>'
    return out + "</td>"


def _metric_header(name: str, groups: list[dict], what: str) -> str:
    direction = next((g["metrics"][name].get("direction") for g in groups
                      if isinstance(g["metrics"].get(name), dict)), None)
    arrow = _ARROW.get(direction, "")
    tip = _DIRECTION.get(direction, "")
    arrow_html = (f' <span aria-hidden="true">{arrow}</span><span class="sr-only"> ({tip})</span>'
                  if arrow else "")
    return (f'<th scope="col" title="{_e(tip)}">{_e(what)}<br> <code>{_e(name)}</code>'
            f"{arrow_html}</th>")


def _task_table(key: tuple, groups: list[dict], families: dict, baseline: str | None,
                title: str) -> str:
    kind = key[3]
    fam_metrics = families.get(kind) or {}
    main = _main_metric(groups, fam_metrics) or "main score"

    def rep(family: str) -> str | None:
        name = fam_metrics.get(family)
        if name:
            return str(name)
        for g in groups:  # fall back on the first metric of that family
            for m, v in g["metrics"].items():
                if isinstance(v, dict) and v.get("family") == family:
                    return str(m)
        return None

    names = {f: rep(f) for f in FAMILIES}

    def order(g: dict) -> tuple:
        return (-float(g["label_fraction"]), _badness(g["metrics"].get(main) or {}),
                str(g["model"]), str(g.get("model_version") or ""), str(g.get("probe")))

    # the main score gets its own column unless it is one of the three shown anyway
    main_col = main not in names.values()
    heads = ['<th scope="col">Label fraction</th>', '<th scope="col">Model</th>',
             '<th scope="col">Probe</th>', '<th scope="col">Seeds</th>']
    if main_col:
        heads.append(_metric_header(main, groups, "Main score"))
    for f in FAMILIES:
        what = FAMILY_TITLE[f] + (" (main score)" if names[f] == main else "")
        heads.append(_metric_header(names[f], groups, what) if names[f]
                     else f'<th scope="col">{what}</th>')
    out = [f'<div class="table-wrap" role="region" tabindex="0" aria-label="{_e(title)}">',
           '<table class="task">',
           f"<caption>{_e(title)}: seed mean [95 % CI]; normalised score below "
           f"(1 = ideal, 0 = baseline); main score <code>{_e(main)}</code></caption>",
           "<thead><tr>" + "".join(heads) + "</tr></thead>", "<tbody>"]
    for g in sorted(groups, key=order):
        seeds = g.get("seeds") or []
        n = len(seeds) or (g["metrics"].get(main) or {}).get("n", "")
        norm = g.get("normalised") or {}
        cells = [f'<td class="num">{format_fraction(g["label_fraction"])}</td>',
                 _model_th(g, baseline),
                 f'<td>{_e(g.get("probe"))}</td>',
                 f'<td class="num">{_e(n)}</td>']
        if main_col:
            cells.append(_metric_cell(g["metrics"].get(main), family="main", show_norm=False))
        for f in FAMILIES:
            metric = g["metrics"].get(names[f]) if names[f] else None
            cells.append(_metric_cell(metric, norm.get(f), f))
        out.append(f'<tr data-model="{_e(g["model"])}" '
                   f'data-label-fraction="{_e(g["label_fraction"])}">' + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
    return "\n".join(out)


def _figure_html(rel: str, alt: str, caption: str) -> str:
    return (f'<figure><img src="{_e(rel)}" alt="{_e(alt)}" loading="lazy">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


# -- the page -------------------------------------------------------------------------------

def write_html(board: dict, out_dir: Path, *, command: str | None = None) -> Path:
    """Write ``out_dir/index.html`` and its plots (``out_dir/plots/*.png``) for ``board``
    (format ``releo-leaderboard/1``); return the path of ``index.html``.

    ``command``: the command line shown as the way to regenerate the page (default: the
    board's ``command`` field if any, else ``releo-bench leaderboard --format html`` with the
    board's suite and baseline model).
    """
    _check_board(board)
    out_dir = Path(out_dir)
    plot_dir = out_dir / PLOT_DIR
    plot_dir.mkdir(parents=True, exist_ok=True)
    written: set[str] = set()

    def plot_path(name: str) -> Path:
        written.add(name)
        return plot_dir / name

    groups: list[dict] = list(board["groups"])
    overall: list[dict] = list(board["overall"])
    families: dict = board.get("families") or {}
    norm_info: dict = board.get("normalisation") or {}
    baseline = norm_info.get("baseline_model")
    suite = board.get("suite") if isinstance(board.get("suite"), dict) else None
    cmd = command or board.get("command") or default_command(board, out_dir)

    fractions = sorted({float(r["label_fraction"]) for r in overall}
                       | {float(g["label_fraction"]) for g in groups}, reverse=True)
    model_keys = sorted({_model_key(r) for r in overall} | {_model_key(g) for g in groups})
    style = _model_style(model_keys)
    names = Counter(k[0] for k in model_keys)

    by_task: dict[tuple, list[dict]] = {}
    for g in groups:
        by_task.setdefault(_task_key(g), []).append(g)
    task_keys = sorted(by_task)

    def task_title(key: tuple) -> str:
        t = key[0] + (f" v{key[1]}" if key[1] else "")
        extra = []
        h = short_data_hash(key[2])
        if h:
            extra.append(f"data {h}")
        if key[4]:
            extra.append(f"trained on {key[4]}")
        return t + (f" ({', '.join(extra)})" if extra else "")

    def task_anchor(key: tuple) -> str:
        return f"task-{_slug(key[0])}-{_short_hash(*key)}"

    body: list[str] = []
    title = "releo-bench leaderboard" + (f": {suite.get('name')}" if suite else "")
    body.append(f"<header><h1>{_e(title)}</h1>")
    body.append('<p class="note">Models are compared on accuracy, calibration and proper '
                "scores separately. Scores are normalised per task against the baseline model "
                f"<code>{_e(baseline or 'n/a')}</code> (1 = ideal, 0 = as good as the baseline, "
                "below 0 = worse than the baseline) and aggregated across tasks with the "
                "interquartile mean (IQM), with 95 % intervals in brackets. Ranks follow the "
                "proper score, which rewards accuracy and calibration together: a model's rank "
                "is 1 + the number of models whose proper-score interval lies entirely above "
                "its own, so models with overlapping intervals can share a rank, shown as "
                "<strong>=n</strong>. Cells marked "
                f'<span class="flag">\u25bc</span> (shaded) are worse than the baseline; '
                "\u201caccurate but miscalibrated\u201d marks a model better than the baseline "
                "in accuracy and worse in calibration.</p>")
    body.append(f'<p class="note">Generated {_e(board.get("generated", "unknown"))}; '
                f"{len(groups)} groups, {len(task_keys)} tasks, {len(model_keys)} models.</p>")
    body.append("</header>")

    nav = ['<nav aria-label="Contents"><h2 id="contents">Contents</h2><ul>']
    for lf in fractions:
        nav.append(f'<li><a href="#overall-lf{_lf_token(lf)}">Overall, label fraction '
                   f"{format_fraction(lf)}</a></li>")
    if len(fractions) > 1:
        nav.append('<li><a href="#label-fraction-curves">Label-fraction curves</a></li>')
    for key in task_keys:
        nav.append(f'<li><a href="#{task_anchor(key)}">Task {_e(task_title(key))}</a></li>')
    if board.get("notes"):
        nav.append('<li><a href="#notes">Notes</a></li>')
    nav.append('<li><a href="#provenance">Provenance</a></li></ul></nav>')
    body.append("\n".join(nav))

    body.append('<main id="main">')
    body.append('<section aria-labelledby="overall"><h2 id="overall">Overall</h2>')
    for lf in fractions:
        rows = [r for r in overall if float(r["label_fraction"]) == lf]
        body.append(f'<section aria-labelledby="overall-lf{_lf_token(lf)}">'
                    f'<h3 id="overall-lf{_lf_token(lf)}">Label fraction {format_fraction(lf)}'
                    "</h3>")
        if rows:
            body.append(_overall_table(rows, lf, baseline))
        else:
            body.append('<p class="note">No model has an overall score at this label '
                        "fraction.</p>")
        # tasks left out of the overall score of a family (no baseline run to normalise on)
        missing: dict[str, set[str]] = {}
        separate: set[str] = set()
        for g in groups:
            if float(g["label_fraction"]) != lf:
                continue
            if g.get("in_overall") is False:
                separate.add(task_title(_task_key(g)))
                continue
            for f in FAMILIES:
                if _finite((g.get("normalised") or {}).get(f)) is None:
                    missing.setdefault(task_title(_task_key(g)), set()).add(f)
        left = [f"<li>{_e(t)}: "
                + ("all three scores" if len(fs) == len(FAMILIES)
                   else ", ".join(FAMILY_TITLE[f].lower() for f in FAMILIES if f in fs))
                + "</li>" for t, fs in sorted(missing.items())]
        if left:
            body.append('<div class="note"><p>Left out of the overall scores (no baseline '
                        f"<code>{_e(baseline or 'n/a')}</code> run to normalise on, or the "
                        "metric is missing):</p><ul>" + "".join(left) + "</ul></div>")
        if separate:
            body.append('<div class="note"><p>Shown per task only, not in the overall scores '
                        "(another version, test data or training task of the same task is the "
                        "one compared):</p><ul>"
                        + "".join(f"<li>{_e(t)}</li>" for t in sorted(separate)) + "</ul></div>")
        res = _plot_scatter(rows, lf, style, names,
                            plot_path(f"accuracy-vs-calibration-lf{_lf_token(lf)}.png"))
        if res:
            body.append(_figure_html(f"{PLOT_DIR}/{res[0].name}", res[1],
                                     "Accuracy against calibration (normalised IQM, 95 % CI). "
                                     "An accurate but badly calibrated model sits right and "
                                     "below the zero line."))
        body.append("</section>")
    if len(fractions) > 1:
        body.append('<section aria-labelledby="label-fraction-curves">'
                    '<h3 id="label-fraction-curves">Label-fraction curves</h3>')
        res = _plot_curves(overall, fractions, style, names,
                           plot_path("label-fraction-curves.png"))
        if res:
            body.append(_figure_html(f"{PLOT_DIR}/{res[0].name}", res[1],
                                     "Normalised proper-score IQM against the share of "
                                     "training labels (95 % CI)."))
        else:
            body.append('<p class="note">No proper-score IQM to draw.</p>')
        body.append("</section>")
    body.append("</section>")

    body.append('<section aria-labelledby="tasks"><h2 id="tasks">Per task</h2>')
    for key in task_keys:
        tg = by_task[key]
        anchor = task_anchor(key)
        head = f"{_e(key[0])}"
        if key[1]:
            head += f' <span class="version">v{_e(key[1])}</span>'
        h = short_data_hash(key[2])
        if h:
            head += f' <span class="version">data <code title="{_e(key[2])}">{_e(h)}</code></span>'
        if key[4]:
            head += f' <span class="version">trained on {_e(key[4])}</span>'
        body.append(f'<section aria-labelledby="{anchor}"><h3 id="{anchor}">{head}</h3>')
        kind = key[3] or "unknown kind"
        body.append(f'<p class="note">{_e(kind)}; {len({_model_key(g) for g in tg})} models'
                    "</p>")
        if baseline and not any(g.get("model") == baseline for g in tg):
            body.append(f'<p class="note">No run of the baseline <code>{_e(baseline)}</code> '
                        "on this task: no normalised scores, and the task is left out of the "
                        "overall scores.</p>")
        body.append(_task_table(key, tg, families, baseline, f"Task {task_title(key)}"))
        res = _plot_task(tg, families.get(key[3]) or {}, task_title(key),
                         plot_path(f"{anchor}.png"))
        if res:
            body.append(_figure_html(f"{PLOT_DIR}/{res[0].name}", res[1],
                                     f"{task_title(key)}: main score per model, mean and 95 % "
                                     "CI over seeds."))
        body.append("</section>")
    body.append("</section>")

    notes = [n for n in board.get("notes") or [] if n]
    if notes:
        body.append('<section aria-labelledby="notes"><h2 id="notes">Notes</h2>\n<ul>'
                    + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul></section>")
    prov = ['<section aria-labelledby="provenance"><h2 id="provenance">Provenance</h2>',
            '<dl class="prov">',
            f"<dt>Generated</dt><dd>{_e(board.get('generated', 'unknown'))}</dd>",
            f"<dt>Source</dt><dd><code>{_e(board.get('source', 'unknown'))}</code></dd>",
            "<dt>Suite</dt><dd>" + (f"{_e(suite.get('name'))} version {_e(suite.get('version'))}"
                                    if suite else "none (all runs found)") + "</dd>",
            f"<dt>Baseline model</dt><dd><code>{_e(baseline or 'n/a')}</code></dd>",
            f"<dt>Normalisation</dt><dd>{_e(norm_info.get('description', ''))}</dd>"]
    agg = board.get("aggregation")
    if isinstance(agg, dict) and agg:
        prov.append("<dt>Aggregation</dt><dd>" + "; ".join(
            f"{_e(str(k).replace('_', ' '))}: {_e(v)}" for k, v in agg.items()) + "</dd>")
    prov += [
            f"<dt>Format</dt><dd><code>{_e(board.get('format'))}</code></dd>"]
    if families:
        items = []
        for kind in sorted(families):
            fm = families[kind] or {}
            items.append(f"{_e(kind)}: " + ", ".join(
                f"{FAMILY_TITLE.get(f, _e(f))} <code>{_e(fm[f])}</code>"
                for f in FAMILIES if f in fm))
        prov.append("<dt>Metrics per family</dt><dd>" + "<br>".join(items) + "</dd>")
    prov.append("</dl>")
    prov.append("<p>Regenerate this page with"
                + (" (add the <code>--results</code> paths the runs were read from):"
                   if not command and not board.get("command") and board.get("source") == "files"
                   else ":") + "</p>")
    prov.append(f'<pre><code class="command">{_e(cmd)}</code></pre>')
    prov.append("</section>")
    body.append("\n".join(prov))
    body.append("</main>")

    page = "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="generator" content="releo-bench">',
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        '<a class="skip" href="#main">Skip to the results</a>',
        *body,
        "</body>",
        "</html>",
        "",
    ])
    # stale plots from an earlier page (a task or label fraction no longer shown)
    for old in plot_dir.iterdir():
        if _OWN_PLOT.match(old.name) and old.name not in written and old.is_file():
            old.unlink()
    index = out_dir / INDEX
    _write_text(index, page)
    return index
