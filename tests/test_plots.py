"""Diagnostic PNG plots: size, drawn numbers, atomic writes, input validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from releo_bench import plots

matplotlib_image = pytest.importorskip("matplotlib.image")

RELIABILITY = {
    "bin_edges": [0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
    "confidence": [0.1, None, 0.5, 0.7, 0.92],
    "accuracy": [0.05, None, 0.55, 0.6, 0.97],
    "count": [10, 0, 30, 40, 120],
    "ece": 0.0421,
}
PIT = {"bin_edges": np.linspace(0, 1, 11).tolist(),
       "density": [1.6, 1.2, 1.0, 0.9, 0.8, 0.8, 0.9, 1.0, 1.2, 0.6]}
COVERAGE = {"nominal": [0.5, 0.8, 0.9, 0.95], "observed": [0.42, 0.71, 0.83, 0.9],
            "mean_width": [0.6, 1.1, 1.4, 1.7]}


def _container(ax, label: str):
    found = [c for c in ax.containers if c.get_label() == label]
    assert len(found) == 1, [c.get_label() for c in ax.containers]
    return found[0]


def _png_shape(path: Path) -> tuple[int, ...]:
    with open(path, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    return matplotlib_image.imread(path).shape


def _no_temp_files(folder: Path) -> None:
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


# -- reliability ---------------------------------------------------------------------------

def test_reliability_bars_carry_the_accuracies() -> None:
    fig = plots._build_reliability(RELIABILITY)
    top, bottom = fig.axes[:2]
    heights = [p.get_height() for p in _container(top, "accuracy").patches]
    assert heights == pytest.approx([0.05, 0.0, 0.55, 0.6, 0.97])  # None bin: zero height
    assert [p.get_x() + p.get_width() / 2 for p in _container(top, "accuracy").patches] == \
        pytest.approx([0.1, 0.3, 0.5, 0.7, 0.9])
    gaps = _container(top, "gap to confidence").patches
    assert len(gaps) == 4  # no gap drawn for the empty bin
    np.testing.assert_allclose([(g.get_y(), g.get_y() + g.get_height()) for g in gaps],
                               [(0.05, 0.1), (0.5, 0.55), (0.6, 0.7), (0.92, 0.97)])
    counts = [p.get_height() for p in _container(bottom, "count").patches]
    assert counts == [10, 0, 30, 40, 120]
    assert "ECE = 0.042" in top.get_title()
    diagonal = [ln for ln in top.get_lines() if ln.get_label() == "perfect calibration"][0]
    assert list(diagonal.get_xdata()) == list(diagonal.get_ydata()) == [0.0, 1.0]


def test_reliability_png_size_and_atomic_write(tmp_path: Path) -> None:
    out = plots.reliability_diagram(RELIABILITY, tmp_path / "sub" / "rel.png", title="Crops")
    assert out == tmp_path / "sub" / "rel.png"
    w, h = plots.RELIABILITY_SIZE
    assert _png_shape(out) == (int(h * plots.DPI), int(w * plots.DPI), 4)
    _no_temp_files(out.parent)
    # overwriting an existing file is atomic as well
    diag = {k: v for k, v in RELIABILITY.items() if k != "ece"}
    plots.reliability_diagram(diag, out)
    assert sorted(p.name for p in out.parent.iterdir()) == ["rel.png"]
    assert "ECE" not in plots._build_reliability(diag).axes[0].get_title()


@pytest.mark.parametrize("field", ["confidence", "accuracy", "count"])
def test_reliability_length_mismatch_names_the_field(field: str, tmp_path: Path) -> None:
    diag = dict(RELIABILITY, **{field: RELIABILITY[field][:-1]})
    with pytest.raises(ValueError, match=f"'{field}' has 4 values, expected 5"):
        plots.reliability_diagram(diag, tmp_path / "bad.png")
    assert list(tmp_path.iterdir()) == []  # nothing written, no temp file left


def test_missing_field_and_bad_edges() -> None:
    with pytest.raises(ValueError, match="'count' is missing"):
        plots._build_reliability({k: v for k, v in RELIABILITY.items() if k != "count"})
    with pytest.raises(ValueError, match="'bin_edges'"):
        plots._build_pit({"bin_edges": [0.0, 0.5, 0.4], "density": [1.0, 1.0]})


def test_failed_save_leaves_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fig = plots._build_pit(PIT)

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(fig, "savefig", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        plots._save_png(fig, tmp_path / "pit.png")
    assert list(tmp_path.iterdir()) == []


# -- PIT -----------------------------------------------------------------------------------

def test_pit_histogram(tmp_path: Path) -> None:
    fig = plots._build_pit(PIT, title="LAI")
    ax = fig.axes[0]
    assert [p.get_height() for p in _container(ax, "PIT density").patches] == \
        pytest.approx(PIT["density"])
    uniform = [ln for ln in ax.get_lines() if ln.get_label().startswith("uniform")][0]
    assert set(uniform.get_ydata()) == {1.0}
    assert ax.get_title() == "LAI"
    out = plots.pit_histogram(PIT, tmp_path / "pit.png")
    w, h = plots.PIT_SIZE
    assert _png_shape(out) == (int(h * plots.DPI), int(w * plots.DPI), 4)
    _no_temp_files(tmp_path)
    with pytest.raises(ValueError, match="'density' has 9 values, expected 10"):
        plots.pit_histogram(dict(PIT, density=PIT["density"][:-1]), tmp_path / "x.png")


# -- scatter ---------------------------------------------------------------------------------

def test_scatter_intervals_statistics_and_subsampling(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 8000
    y = rng.normal(2.0, 1.0, size=n)
    point = y + rng.normal(0, 0.5, size=n)
    low, high = point - 0.5 * 1.645, point + 0.5 * 1.645
    fig = plots._build_scatter(y, point, low, high, level=0.9, units="m2/m2", max_points=1000)
    ax = fig.axes[0]
    rmse = np.sqrt(np.mean((point - y) ** 2))
    coverage = np.mean((y >= low) & (y <= high))
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(f"RMSE {rmse:.3g} m2/m2" in t for t in labels), labels
    assert any(f"coverage {coverage:.1%}" in t for t in labels), labels
    assert ax.collections[1].get_offsets().shape == (1000, 2)  # scatter: subsampled
    assert len(ax.collections[0].get_segments()) == 1000  # one interval bar per point
    assert "1000 of 8000" in ax.get_title()
    # deterministic subsample: the same points every time
    again = plots._build_scatter(y, point, low, high, max_points=1000).axes[0]
    np.testing.assert_array_equal(again.collections[1].get_offsets(),
                                  ax.collections[1].get_offsets())
    one_to_one = [ln for ln in ax.get_lines() if ln.get_label() == "1:1"][0]
    assert list(one_to_one.get_xdata()) == list(one_to_one.get_ydata())

    out = plots.scatter_intervals(y[:200], point[:200], low[:200], high[:200],
                                  tmp_path / "scatter.png")
    w, h = plots.SCATTER_SIZE
    assert _png_shape(out) == (int(h * plots.DPI), int(w * plots.DPI), 4)
    _no_temp_files(tmp_path)


def test_scatter_bar_ends_are_the_interval_bounds() -> None:
    y = np.array([1.0, 2.0, 3.0])
    fig = plots._build_scatter(y, y + 0.1, y - 0.5, y + 0.7)
    segments = fig.axes[0].collections[0].get_segments()
    np.testing.assert_allclose([s[:, 1] for s in segments],
                               np.column_stack([y - 0.5, y + 0.7]))
    np.testing.assert_allclose([s[:, 0] for s in segments], np.column_stack([y, y]))


@pytest.mark.parametrize("field", ["point", "low", "high"])
def test_scatter_length_mismatch_names_the_field(field: str, tmp_path: Path) -> None:
    args = {"y_true": np.zeros(5), "point": np.zeros(5), "low": np.zeros(5), "high": np.ones(5)}
    args[field] = np.zeros(4)
    with pytest.raises(ValueError, match=f"'{field}' has 4 values, expected 5"):
        plots.scatter_intervals(path=tmp_path / "s.png", **args)
    assert list(tmp_path.iterdir()) == []


# -- coverage curve ----------------------------------------------------------------------------

def test_coverage_curve(tmp_path: Path) -> None:
    fig = plots._build_coverage(COVERAGE)
    ax = fig.axes[0]
    observed = [ln for ln in ax.get_lines() if ln.get_label() == "observed coverage"][0]
    assert list(observed.get_xdata()) == COVERAGE["nominal"]
    assert list(observed.get_ydata()) == COVERAGE["observed"]
    width = [ln for a in fig.axes for ln in a.get_lines() if ln.get_label() == "mean width"][0]
    assert list(width.get_ydata()) == COVERAGE["mean_width"]
    assert any(ln.get_label() == "perfect calibration" for ln in ax.get_lines())
    out = plots.coverage_curve(COVERAGE, tmp_path / "cov.png")
    w, h = plots.COVERAGE_SIZE
    assert _png_shape(out) == (int(h * plots.DPI), int(w * plots.DPI), 4)
    _no_temp_files(tmp_path)
    with pytest.raises(ValueError, match="'mean_width' has 3 values, expected 4"):
        plots.coverage_curve(dict(COVERAGE, mean_width=[1, 2, 3]), tmp_path / "c.png")


def test_no_pyplot_state_is_touched(tmp_path: Path) -> None:
    import sys

    before = set(sys.modules)
    plots.pit_histogram(PIT, tmp_path / "a.png")
    plots.coverage_curve(COVERAGE, tmp_path / "b.png")
    if "matplotlib.pyplot" in sys.modules and "matplotlib.pyplot" in before:
        import matplotlib.pyplot as plt

        assert plt.get_fignums() == []
    else:
        assert "matplotlib.pyplot" not in sys.modules
