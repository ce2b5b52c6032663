"""Gap-filling tasks (multi-output regression) and the runner's multi-output support."""

from __future__ import annotations

import json

from pathlib import Path

import numpy as np
import pytest

from releo_bench.metrics.multi_output import (MultiOutputPrediction, get_metric, indexed_metric,
                                              sam, spectral_angle)
from releo_bench.predictions import Gaussian
from releo_bench.registries import TASKS
from releo_bench.runner import RunConfig, run
from releo_bench.tasks.base import TargetSpec

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def task():
    return TASKS.get("gap-filling")()


# -- SAM ---------------------------------------------------------------------------------------

def _multi(points: np.ndarray) -> MultiOutputPrediction:
    return MultiOutputPrediction([Gaussian(points[:, k], np.full(len(points), 0.1))
                                  for k in range(points.shape[1])])


def test_sam_closed_cases():
    y = np.array([[0.1, 0.2, 0.3], [1.0, 0.0, 0.0]])
    # proportional spectra: 0 degrees; orthogonal ones: 90 degrees
    assert sam.fn(y, _multi(np.array([[0.2, 0.4, 0.6], [3.0, 0.0, 0.0]]))) == pytest.approx(0.0, abs=1e-6)
    assert sam.fn(y[1:], _multi(np.array([[0.0, 2.0, 0.0]]))) == pytest.approx(90.0)
    # 45 degrees: (1, 0) vs (1, 1)
    assert sam.fn(np.array([[1.0, 0.0]]), _multi(np.array([[1.0, 1.0]]))) == pytest.approx(45.0)


def test_sam_matches_numpy_and_bootstrap_adapter():
    rng = np.random.default_rng(0)
    y = rng.uniform(0.01, 0.6, (200, 12))
    p = y + rng.normal(0, 0.05, y.shape)
    direct = np.mean(np.degrees(np.arccos(np.clip(
        (y * p).sum(1) / np.linalg.norm(y, axis=1) / np.linalg.norm(p, axis=1), -1, 1))))
    pred = _multi(p)
    assert sam.fn(y, pred) == pytest.approx(direct, rel=1e-10)
    assert spectral_angle(p, y).shape == (200,)
    rows = np.arange(200, dtype=float)
    adapter = indexed_metric(sam, y)
    assert adapter.from_mean(adapter.per_sample(rows, pred).mean(axis=0)) == pytest.approx(direct)
    # aggregate rmse adapter = mean of per-band rmse, also via its decomposed form
    rmse = indexed_metric(get_metric("rmse"), y, aggregate=True)
    want = np.mean(np.sqrt(((p - y) ** 2).mean(axis=0)))
    assert rmse.fn(rows, pred) == pytest.approx(want)
    assert rmse.from_mean(rmse.per_sample(rows, pred).mean(axis=0)) == pytest.approx(want)


def test_target_spec_outputs_validation():
    with pytest.raises(ValueError):
        TargetSpec(kind="classification", name="x", class_names=("a",), outputs=("a",))
    with pytest.raises(ValueError):
        TargetSpec(kind="regression", name="x", outputs=("B2", "B2"))


# -- simulated task ----------------------------------------------------------------------------

def test_held_out_truth_is_not_in_the_inputs(task):
    d = task.load("test")
    assert d.target.shape == (len(d), 12)
    assert ((d.target >= 0.0) & (d.target <= 1.0)).all() and d.target.max() > 0.2
    s2 = d.batch["s2"]
    held = d.batch.extras["held_out_index"]
    rows = np.arange(len(d))
    v = s2.values.numpy()[:, :, :, 0, 0]
    m = s2.mask.numpy()[:, :, 0, 0]
    assert not m[rows, held].any()
    assert (v[rows, held] == 0).all()
    assert (s2.dates[rows, held] == d.target_time).all()
    # the exact truth never appears at any date of the sample's series
    hit = np.isclose(v, d.target[:, None, :].astype(np.float32), atol=1e-7).all(axis=2)
    assert not hit.any()
    # every sample keeps at least two clear input dates
    assert (m.sum(axis=1) >= 2).all()
    assert "s1" not in d.batch.modalities
    assert "s1" in TASKS.get("gap-filling-s1")().load("val").batch.modalities


def _baselines(d) -> tuple[float, float]:
    """Mean-over-bands RMSE of 'repeat the nearest clear date' and 'series mean of clear
    dates', computed from the inputs of the test split independently of the runner."""
    s2 = d.batch["s2"]
    bands = list(s2.bands)
    v = s2.values.numpy()[:, :, :, 0, 0].astype(np.float64)
    m = s2.mask.numpy()[:, :, 0, 0]
    days = s2.dates.astype("datetime64[D]").astype("int64").astype(float)
    t = d.target_time.astype("datetime64[D]").astype("int64").astype(float)
    gap = np.where(m, np.abs(days - t[:, None]), np.inf)
    nearest = v[np.arange(len(d)), gap.argmin(axis=1)]
    mean = (v * m[:, :, None]).sum(1) / m.sum(1)[:, None]
    y = d.target[:, [bands.index(b) for b in bands]]

    def rmse(p):
        return float(np.mean(np.sqrt(((p - y) ** 2).mean(axis=0))))

    return rmse(nearest), rmse(mean)


def test_raw_ridge_end_to_end_beats_baselines(task, tmp_path):
    import jsonschema

    out = run(RunConfig(model="raw", task="gap-filling", seeds=2, output=tmp_path / "run",
                        tracking_uri="none", n_boot=50, plots=False))
    r = out.result
    assert r.task.outputs == list(task.meta.target.outputs)
    bands = r.task.outputs
    for name in ("rmse", "crps", "picp_90", "sam"):
        assert name in r.metrics and np.isfinite(r.metrics[name].mean)
    for b in bands:
        assert np.isfinite(r.metrics[f"rmse/{b}"].mean)
        assert r.metrics[f"rmse/{b}"].sample_ci_low is not None
    per_band = np.mean([r.metrics[f"rmse/{b}"].mean for b in bands])
    assert r.metrics["rmse"].mean == pytest.approx(per_band, rel=1e-9)
    assert r.metrics["sam"].direction == "lower" and 0 < r.metrics["sam"].mean < 30
    lo, hi = r.metrics["rmse"].sample_ci_low, r.metrics["rmse"].sample_ci_high
    assert lo <= r.metrics["rmse"].mean <= hi
    nearest, series_mean = _baselines(task.load("test"))
    assert r.metrics["rmse"].mean < series_mean
    assert r.metrics["rmse"].mean < nearest
    assert set(r.probe.fitted_params[0]) == set(bands)
    schema = json.loads((ROOT / "docs" / "results.schema.json").read_text())
    jsonschema.validate(json.loads((out.output_dir / "results.json").read_text()), schema)


# -- real variant --------------------------------------------------------------------------------

def test_cesbio_variant_hides_real_clear_dates(shared_data):
    t = TASKS.get("gap-filling-cesbio")()
    total = 0
    for split in ("train", "val", "test"):
        d = t.load(split)
        total += len(d)
        assert d.target.shape == (len(d), 10)
        assert ((d.target >= 0) & (d.target <= 1)).all()
        s2 = d.batch["s2"]
        held = d.batch.extras["held_out_index"]
        rows = np.arange(len(d))
        assert not s2.mask.numpy()[rows, held, 0, 0].any()
        assert (s2.values.numpy()[rows, held] == 0).all()
        assert (s2.mask.numpy()[:, :, 0, 0].sum(axis=1) >= 2).all()
    assert total > 100
