"""Diagnostic plots written as PNG files: reliability diagram, PIT histogram, predicted-vs-true
scatter with intervals, interval coverage curve.

Figures are built on :class:`matplotlib.figure.Figure` with the Agg canvas directly, never
through ``pyplot``: no global figure registry, no interactive backend, nothing to leak
between calls. matplotlib is imported inside the functions so that importing this module
stays cheap. Each public function validates its input (``ValueError`` naming the offending
field), writes the PNG atomically (a temporary file in the target folder, then
``os.replace``) and returns the path. The ``_build_*`` functions return the Figure itself.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from .errors import UsageError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 100
RELIABILITY_SIZE = (6.0, 7.0)  # inches; pixels = inches x DPI
PIT_SIZE = (6.0, 4.0)
SCATTER_SIZE = (6.0, 6.0)
COVERAGE_SIZE = (6.0, 5.0)


class PlotInputError(UsageError, ValueError):
    """Diagnostic data that cannot be drawn (a missing field, lengths that do not match)."""


# -- input checks -------------------------------------------------------------------------

def _field(diag: dict, name: str, plot: str) -> Any:
    if name not in diag:
        raise PlotInputError(f"{plot}: field {name!r} is missing (got {sorted(diag)})")
    return diag[name]


def _floats(values: Any, name: str, plot: str, n: int | None = None,
            allow_none: bool = False) -> np.ndarray:
    """A 1-D float array (None -> NaN where allowed) of length ``n`` when given."""
    try:
        seq = list(np.asarray(values, dtype=object).ravel()) if values is not None else None
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise PlotInputError(f"{plot}: field {name!r} is not a sequence of numbers") from exc
    if seq is None or np.ndim(values) != 1:
        raise PlotInputError(f"{plot}: field {name!r} must be a 1-D sequence of numbers")
    if not allow_none and any(v is None for v in seq):
        raise PlotInputError(f"{plot}: field {name!r} must not contain None")
    try:
        arr = np.array([np.nan if v is None else float(v) for v in seq], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise PlotInputError(f"{plot}: field {name!r} must contain numbers") from exc
    if n is not None and arr.shape[0] != n:
        raise PlotInputError(f"{plot}: field {name!r} has {arr.shape[0]} values, expected {n}")
    return arr


def _edges(values: Any, name: str, plot: str) -> np.ndarray:
    edges = _floats(values, name, plot)
    if edges.shape[0] < 2 or not np.isfinite(edges).all() or (np.diff(edges) <= 0).any():
        raise PlotInputError(f"{plot}: field {name!r} must hold at least 2 finite, strictly "
                             "increasing bin edges")
    return edges


# -- writing --------------------------------------------------------------------------------

def _new_figure(size: tuple[float, float]) -> "Figure":
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=DPI)
    FigureCanvasAgg(fig)  # attaches itself as fig.canvas: Agg, whatever the global backend
    return fig


def _save_png(fig: "Figure", path: str | os.PathLike) -> Path:
    """Write ``fig`` as PNG at exactly ``figsize x DPI`` pixels, atomically, then release it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            fig.savefig(handle, format="png", dpi=DPI)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    finally:
        fig.clear()
    return path


# -- reliability diagram -----------------------------------------------------------------------

def _build_reliability(diag: dict, title: str | None = None) -> "Figure":
    plot = "reliability diagram"
    edges = _edges(_field(diag, "bin_edges", plot), "bin_edges", plot)
    n = edges.shape[0] - 1
    conf = _floats(_field(diag, "confidence", plot), "confidence", plot, n, allow_none=True)
    acc = _floats(_field(diag, "accuracy", plot), "accuracy", plot, n, allow_none=True)
    count = _floats(_field(diag, "count", plot), "count", plot, n, allow_none=True)
    count = np.nan_to_num(count, nan=0.0)
    centres, widths = (edges[:-1] + edges[1:]) / 2.0, np.diff(edges)

    fig = _new_figure(RELIABILITY_SIZE)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    # empty bins (accuracy None) are drawn as zero-height bars: one bar per bin, always
    top.bar(centres, np.nan_to_num(acc, nan=0.0), width=widths, align="center",
            color="#4c72b0", edgecolor="black", linewidth=0.5, label="accuracy")
    both = np.isfinite(acc) & np.isfinite(conf)
    if both.any():
        lo = np.minimum(acc[both], conf[both])
        top.bar(centres[both], np.abs(conf[both] - acc[both]), bottom=lo, width=widths[both],
                color="#dd8452", alpha=0.45, edgecolor="#c44e52", hatch="//", linewidth=0.5,
                label="gap to confidence")
    lo_edge, hi_edge = float(edges[0]), float(edges[-1])
    top.plot([lo_edge, hi_edge], [lo_edge, hi_edge], "k--", linewidth=1,
             label="perfect calibration")
    top.set_xlim(lo_edge, hi_edge)
    top.set_ylim(0.0, max(1.0, float(np.nanmax(np.append(acc, 0.0)))))
    top.set_ylabel("accuracy")
    top.legend(loc="upper left")
    heading = title or "Reliability diagram"
    ece = diag.get("ece")
    if ece is not None and math.isfinite(float(ece)):
        heading += f" (ECE = {float(ece):.3f})"
    top.set_title(heading)

    bottom.bar(centres, count, width=widths, align="center", color="grey", edgecolor="black",
               linewidth=0.5, label="count")
    bottom.set_xlabel("confidence")
    bottom.set_ylabel("samples")
    fig.tight_layout()
    return fig


def reliability_diagram(diag: dict, path: str | os.PathLike, title: str | None = None) -> Path:
    """Reliability diagram: per-bin accuracy bars against the diagonal, the gap to the mean
    confidence shaded, the per-bin sample count below.

    ``diag``: ``bin_edges [n+1]``, ``confidence [n]``, ``accuracy [n]`` (None for empty
    bins), ``count [n]`` and optionally ``ece`` (shown in the title).
    """
    return _save_png(_build_reliability(diag, title), path)


# -- PIT histogram ---------------------------------------------------------------------------

def _build_pit(diag: dict, title: str | None = None) -> "Figure":
    plot = "PIT histogram"
    edges = _edges(_field(diag, "bin_edges", plot), "bin_edges", plot)
    density = _floats(_field(diag, "density", plot), "density", plot, edges.shape[0] - 1)
    fig = _new_figure(PIT_SIZE)
    ax = fig.add_subplot()
    ax.bar((edges[:-1] + edges[1:]) / 2.0, density, width=np.diff(edges), align="center",
           color="#4c72b0", edgecolor="black", linewidth=0.5, label="PIT density")
    ax.axhline(1.0, color="black", linestyle="--", linewidth=1, label="uniform (calibrated)")
    ax.set_xlim(float(edges[0]), float(edges[-1]))
    ax.set_ylim(0.0, max(1.5, float(np.nanmax(density)) * 1.1))
    ax.set_xlabel("PIT = predictive CDF at the target")
    ax.set_ylabel("density")
    ax.set_title(title or "PIT histogram")
    ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


def pit_histogram(diag: dict, path: str | os.PathLike, title: str | None = None) -> Path:
    """PIT histogram (``diag``: ``bin_edges [n+1]``, ``density [n]``) with the uniform line at 1:
    U-shaped means over-confident, hump-shaped under-confident, sloped biased."""
    return _save_png(_build_pit(diag, title), path)


# -- predicted vs true with intervals ----------------------------------------------------------

def _subsample(n: int, max_points: int) -> np.ndarray:
    """Deterministic subset of ``max_points`` of ``n`` indices (sorted), or all of them."""
    if n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, size=max_points, replace=False))


def _build_scatter(y_true: Sequence[float] | np.ndarray, point: Sequence[float] | np.ndarray,
                   low: Sequence[float] | np.ndarray, high: Sequence[float] | np.ndarray,
                   level: float = 0.9, units: str = "", title: str | None = None,
                   max_points: int = 5000) -> "Figure":
    plot = "scatter with intervals"
    y = _floats(y_true, "y_true", plot)
    n = y.shape[0]
    p = _floats(point, "point", plot, n)
    lo = _floats(low, "low", plot, n)
    hi = _floats(high, "high", plot, n)
    if not 0.0 < level < 1.0:
        raise PlotInputError(f"{plot}: field 'level' must be in (0, 1), got {level}")
    if int(max_points) < 1:
        raise PlotInputError(f"{plot}: field 'max_points' must be positive, got {max_points}")
    ok = np.isfinite(y) & np.isfinite(p)
    if not ok.any():
        raise PlotInputError(f"{plot}: fields 'y_true' / 'point' have no finite pair")
    # the statistics use every sample with a finite target and point, not only those drawn
    rmse = float(np.sqrt(np.mean((p[ok] - y[ok]) ** 2)))
    coverage = float(np.mean((y[ok] >= lo[ok]) & (y[ok] <= hi[ok])))
    shown = np.flatnonzero(ok)[_subsample(int(ok.sum()), int(max_points))]
    suffix = f" {units}" if units else ""

    fig = _new_figure(SCATTER_SIZE)
    ax = fig.add_subplot()
    bars = shown[np.isfinite(lo[shown]) & np.isfinite(hi[shown])]
    ax.vlines(y[bars], lo[bars], hi[bars], color="#4c72b0", alpha=0.3, linewidth=0.8,
              label=f"{level:.0%} interval (coverage {coverage:.1%})")
    ax.scatter(y[shown], p[shown], s=8, color="#4c72b0", zorder=3,
               label=f"prediction (RMSE {rmse:.3g}{suffix})")
    span = np.concatenate([y[shown], p[shown], lo[bars], hi[bars]])
    a, b = float(span.min()), float(span.max())
    pad = 0.02 * (b - a) if b > a else 1.0
    ax.plot([a - pad, b + pad], [a - pad, b + pad], "k--", linewidth=1, label="1:1")
    ax.set_xlim(a - pad, b + pad)
    ax.set_ylim(a - pad, b + pad)
    unit_label = f" [{units}]" if units else ""
    ax.set_xlabel(f"true{unit_label}")
    ax.set_ylabel(f"predicted{unit_label}")
    heading = title or "Predicted vs true"
    if shown.size < n:
        heading += f" ({shown.size} of {n} samples shown)"
    ax.set_title(heading)
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def scatter_intervals(y_true: Sequence[float] | np.ndarray, point: Sequence[float] | np.ndarray,
                      low: Sequence[float] | np.ndarray, high: Sequence[float] | np.ndarray,
                      path: str | os.PathLike, level: float = 0.9, units: str = "",
                      title: str | None = None, max_points: int = 5000) -> Path:
    """Predicted vs true with vertical ``level`` interval bars and the 1:1 line.

    RMSE and interval coverage (in the legend) use all samples; above ``max_points`` a
    deterministic random subset is drawn (the title says how many are shown).
    """
    return _save_png(_build_scatter(y_true, point, low, high, level, units, title, max_points),
                     path)


# -- coverage curve -----------------------------------------------------------------------------

def _build_coverage(diag: dict, title: str | None = None) -> "Figure":
    plot = "coverage curve"
    nominal = _floats(_field(diag, "nominal", plot), "nominal", plot)
    n = nominal.shape[0]
    if n == 0:
        raise PlotInputError(f"{plot}: field 'nominal' is empty")
    observed = _floats(_field(diag, "observed", plot), "observed", plot, n, allow_none=True)
    width = _floats(_field(diag, "mean_width", plot), "mean_width", plot, n, allow_none=True)
    fig = _new_figure(COVERAGE_SIZE)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    ax.plot(nominal, observed, "o-", color="#4c72b0", label="observed coverage")
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("nominal coverage of the central interval")
    ax.set_ylabel("observed coverage")
    ax.set_title(title or "Interval coverage")
    handles, labels = ax.get_legend_handles_labels()
    if np.isfinite(width).any():
        twin = ax.twinx()
        twin.plot(nominal, width, "s:", color="#dd8452", label="mean width")
        twin.set_ylabel("mean interval width")
        twin.set_ylim(bottom=0.0)
        h2, l2 = twin.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    ax.legend(handles, labels, loc="upper left")
    fig.tight_layout()
    return fig


def coverage_curve(diag: dict, path: str | os.PathLike, title: str | None = None) -> Path:
    """Observed against nominal coverage of central intervals, with the diagonal; the mean
    interval width on a second axis (``diag``: ``nominal``, ``observed``, ``mean_width``)."""
    return _save_png(_build_coverage(diag, title), path)
