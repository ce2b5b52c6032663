"""Bootstrap intervals over seeds and over test samples (iid and grouped)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from releo_bench import bootstrap as bt
from releo_bench.errors import UsageError
from releo_bench.metrics.base import Metric
from releo_bench.predictions import ClassProbs, Gaussian, Point, Samples
from releo_bench.registries import METRICS


def decomposable(name: str) -> Metric:
    m = METRICS.get(name)
    assert m.decomposable, f"{name} has no per-sample form"
    return m


def loop_only(m: Metric) -> Metric:
    """The same metric without its per-sample form: forces the replicate loop."""
    return dataclasses.replace(m, pointwise=None, finalize=None)


def regression_seeds(n: int = 300, n_seeds: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=n)
    preds = [Gaussian(y + rng.normal(0.2, 0.8, size=n), rng.uniform(0.5, 1.5, size=n))
             for _ in range(n_seeds)]
    return y, preds


# -- fast path == loop ------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["rmse", "crps"])
@pytest.mark.parametrize("grouped", [False, True])
def test_fast_path_equals_loop(name: str, grouped: bool) -> None:
    y, preds = regression_seeds()
    groups = np.random.default_rng(5).integers(0, 40, size=len(y)) if grouped else None
    fast_metric = decomposable(name)
    assert fast_metric.decomposable and not loop_only(fast_metric).decomposable
    fast = bt.bootstrap_over_samples(fast_metric, y, preds, groups=groups, n_boot=200, seed=3)
    slow = bt.bootstrap_over_samples(loop_only(fast_metric), y, preds, groups=groups,
                                     n_boot=200, seed=3)
    assert fast.n_valid == slow.n_valid == 200
    np.testing.assert_allclose([fast.low, fast.high], [slow.low, slow.high], rtol=1e-10)
    assert fast.low < fast.high


def classification_seeds(n: int = 300, n_classes: int = 4, n_seeds: int = 3, seed: int = 0):
    """Labels in which the last class is rare (absent from many replicates) and predictions."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes - 1, size=n)
    labels[:3] = n_classes - 1
    return labels, [_probs(labels, n_classes, rng) for _ in range(n_seeds)]


VECTOR_REGRESSION = ["r2", "pit_deviation", "miscalibration_area"]
VECTOR_CLASSIFICATION = ["ece", "mce", "rms_calibration_error", "kappa", "macro_f1",
                         "balanced_accuracy", "miou"]


@pytest.mark.parametrize("name", VECTOR_REGRESSION + VECTOR_CLASSIFICATION)
@pytest.mark.parametrize("grouped", [False, True])
def test_vector_metrics_fast_replicates_equal_loop(name: str, grouped: bool) -> None:
    """Per-sample vectors ([N, M]): replicate by replicate equal to the metric loop, over
    several chunks, also when a class is missing from some replicates."""
    m = METRICS.get(name)
    if m.task_kind == "classification":
        y, preds = classification_seeds(n=120)
    else:
        y, preds = regression_seeds(n=120)
    assert m.per_sample(y, preds[0]).ndim == 2
    groups = np.random.default_rng(5).integers(0, 30, size=len(y)) if grouped else None
    units = bt._Units.build(len(y), groups)
    old = bt._CHUNK_ELEMENTS
    bt._CHUNK_ELEMENTS = units.n_units * 7  # 7 replicates per chunk: several chunks
    try:
        fast = bt._replicates_fast(m, y, preds, units, 40, np.random.default_rng(2))
        slow = bt._replicates_slow(loop_only(m), y, preds, units, 40, np.random.default_rng(2))
    finally:
        bt._CHUNK_ELEMENTS = old
    np.testing.assert_allclose(fast, slow, rtol=1e-10, atol=1e-13)
    assert np.unique(fast).size > 1


@pytest.mark.parametrize("name", ["ece", "r2", "kappa"])
def test_vector_metric_intervals_equal_loop(name: str) -> None:
    m = METRICS.get(name)
    y, preds = (classification_seeds() if m.task_kind == "classification"
                else regression_seeds())
    fast = bt.bootstrap_over_samples(m, y, preds, n_boot=200, seed=3)
    slow = bt.bootstrap_over_samples(loop_only(m), y, preds, n_boot=200, seed=3)
    assert fast.n_valid == slow.n_valid == 200
    np.testing.assert_allclose([fast.low, fast.high], [slow.low, slow.high], rtol=1e-10)
    value = np.mean([m(y, p) for p in preds])
    assert fast.low <= value <= fast.high


def test_undefined_vector_replicates_are_nan_in_both_paths() -> None:
    """Kappa is undefined (NaN) on a replicate holding a single class: dropped alike."""
    labels = np.array([0] * 6 + [1])
    hard = np.zeros((7, 2))
    hard[np.arange(7), labels] = 1.0
    preds = [ClassProbs(hard, ("a", "b"))]
    m = METRICS.get("kappa")
    fast = bt.bootstrap_over_samples(m, labels, preds, n_boot=300, seed=0)
    slow = bt.bootstrap_over_samples(loop_only(m), labels, preds, n_boot=300, seed=0)
    # P(class 1 never drawn) = (6/7)^7 ~ 0.34
    assert fast.n_valid == slow.n_valid < 300
    assert (fast.low, fast.high) == pytest.approx((slow.low, slow.high), rel=1e-12)


def test_non_finite_vector_values_only_count_when_drawn() -> None:
    y = np.arange(20, dtype=float)

    def pointwise(y, p):
        first = _inf_first(y, p)
        return np.column_stack([first, np.abs(p.point() - np.asarray(y, float))])

    def finalize(means):
        return means[..., 0] - means[..., 1]

    def fn(y, p):
        return float(finalize(pointwise(y, p).mean(axis=0)))

    vec = Metric("inf_vec", fn, "lower", ("point",), "regression", "proper_score", "test",
                 pointwise=pointwise, finalize=finalize)
    units = bt._Units.build(20, None)
    fast = bt._replicates_fast(vec, y, [Point(y)], units, 200, np.random.default_rng(0))
    slow = bt._replicates_slow(loop_only(vec), y, [Point(y)], units, 200,
                               np.random.default_rng(0))
    np.testing.assert_array_equal(np.isinf(fast), np.isinf(slow))
    assert 0 < np.isinf(fast).sum() < 200
    np.testing.assert_allclose(fast[np.isfinite(fast)], slow[np.isfinite(slow)], rtol=1e-12)


def test_fast_replicates_equal_loop_replicates() -> None:
    """Replicate by replicate, not only the percentiles, for a multi-chunk run."""
    y, preds = regression_seeds(n=50, n_seeds=2)
    m = decomposable("crps")
    units = bt._Units.build(len(y), None)
    old = bt._CHUNK_ELEMENTS
    bt._CHUNK_ELEMENTS = 50 * 7  # 7 replicates per chunk: several chunks
    try:
        fast = bt._replicates_fast(m, y, preds, units, 30, np.random.default_rng(1))
        slow = bt._replicates_slow(loop_only(m), y, preds, units, 30, np.random.default_rng(1))
    finally:
        bt._CHUNK_ELEMENTS = old
    np.testing.assert_allclose(fast, slow, rtol=1e-12)
    assert np.unique(fast).size == 30  # distinct draws per replicate


def test_seed_average_is_the_mean_of_per_seed_metrics() -> None:
    """One replicate's value is the mean over seeds of the metric on the same draw."""
    y, preds = regression_seeds(n=40)
    m = decomposable("rmse")
    units = bt._Units.build(len(y), None)
    rep = bt._replicates_fast(m, y, preds, units, 1, np.random.default_rng(9))[0]
    idx = next(bt._draw_chunks(np.random.default_rng(9), len(y), 1))[0]
    expected = np.mean([np.sqrt(np.mean((p.mean[idx] - y[idx]) ** 2)) for p in preds])
    assert rep == pytest.approx(expected, rel=1e-12)


def test_non_finite_per_sample_values_only_count_when_drawn() -> None:
    """An infinite per-sample value must not poison replicates that do not draw it."""
    y = np.arange(20, dtype=float)
    inf_metric = Metric("inf_first", lambda y, p: float(np.mean(_inf_first(y, p))), "lower",
                        ("point",), "regression", "proper_score", "test",
                        pointwise=_inf_first)
    fast = bt._replicates_fast(inf_metric, y, [Point(y)], bt._Units.build(20, None), 200,
                               np.random.default_rng(0))
    slow = bt._replicates_slow(loop_only(inf_metric), y, [Point(y)], bt._Units.build(20, None),
                               200, np.random.default_rng(0))
    assert np.isinf(fast).sum() == np.isinf(slow).sum()
    assert 0 < np.isinf(fast).sum() < 200
    np.testing.assert_allclose(fast[np.isfinite(fast)], slow[np.isfinite(slow)], rtol=1e-12)


def _inf_first(y, p):
    y = np.asarray(y, float)
    return np.where(y == 0.0, np.inf, np.abs(p.point() - y) + 1.0)  # infinite for sample 0


# -- coverage -----------------------------------------------------------------------------------

def test_sample_bootstrap_covers_the_true_mean_about_95_percent() -> None:
    """Bias of a zero prediction is -mean(y); for y ~ N(0, 1) the true value is 0."""
    m = decomposable("bias")
    rng = np.random.default_rng(2024)
    n, experiments = 100, 200
    hits = 0
    for e in range(experiments):
        y = rng.normal(size=n)
        iv = bt.bootstrap_over_samples(m, y, [Point(np.zeros(n))], n_boot=1000, seed=e)
        hits += iv.low <= 0.0 <= iv.high
    assert 0.90 <= hits / experiments <= 0.99


def test_seed_bootstrap_is_the_percentile_interval_of_resampled_means() -> None:
    values = np.array([0.61, 0.64, 0.58, 0.66, 0.60, 0.63, 0.65, 0.59])
    iv = bt.bootstrap_over_seeds(values, n_boot=20000, level=0.95, seed=1)
    # the bootstrap distribution of the mean is ~normal with sd = std(ddof=0) / sqrt(n)
    sd = values.std() / np.sqrt(values.size)
    assert iv.low == pytest.approx(values.mean() - 1.96 * sd, abs=0.3 * sd)
    assert iv.high == pytest.approx(values.mean() + 1.96 * sd, abs=0.3 * sd)
    assert iv.n_boot == iv.n_valid == 20000


def test_seed_bootstrap_edge_cases() -> None:
    one = bt.bootstrap_over_seeds([0.7])
    assert (one.low, one.high) == (0.7, 0.7)
    assert np.isnan(bt.bootstrap_over_seeds([]).low)
    assert bt.bootstrap_over_seeds([0.5, float("nan")]).low == 0.5  # non-finite ignored
    # 3 seeds: never wider than the observed range; the Student-t interval is wider
    values = [0.50, 0.55, 0.60]
    boot = bt.bootstrap_over_seeds(values)
    t = bt.seed_interval_t(values)
    assert 0.50 <= boot.low < boot.high <= 0.60
    assert t.low < boot.low and t.high > boot.high


# -- grouped (cluster) bootstrap --------------------------------------------------------------

def _grouped_data(n_groups: int = 40, size: int = 25, seed: int = 0):
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_groups), size)
    y = rng.normal(size=n_groups)[groups] + 0.2 * rng.normal(size=groups.size)
    return y, groups


def test_grouped_bootstrap_is_wider_with_a_shared_group_effect() -> None:
    y, groups = _grouped_data()
    m = decomposable("bias")
    pred = [Point(np.zeros_like(y))]
    iid = bt.bootstrap_over_samples(m, y, pred, n_boot=1000, seed=0)
    clustered = bt.bootstrap_over_samples(m, y, pred, groups=groups, n_boot=1000, seed=0)
    # design effect 1 + (25 - 1) * ICC ~ 24: the interval is ~4-5 times wider
    assert (clustered.high - clustered.low) > 2.5 * (iid.high - iid.low)
    assert "40 groups" in clustered.method


def test_singleton_groups_match_the_iid_bootstrap() -> None:
    y, _ = _grouped_data()
    m = decomposable("bias")
    pred = [Point(np.zeros_like(y))]
    iid = bt.bootstrap_over_samples(m, y, pred, n_boot=1000, seed=0)
    same = bt.bootstrap_over_samples(m, y, pred, groups=np.arange(y.size), n_boot=1000, seed=0)
    np.testing.assert_allclose([same.low, same.high], [iid.low, iid.high], rtol=1e-9)
    # shuffled singleton labels, another seed: a different but equally wide interval
    labels = np.random.default_rng(3).permutation(y.size) * 7 + 100
    other = bt.bootstrap_over_samples(m, y, pred, groups=labels, n_boot=1000, seed=11)
    w_iid, w_other = iid.high - iid.low, other.high - other.low
    assert w_other == pytest.approx(w_iid, rel=0.15)


def test_grouped_draw_takes_whole_groups() -> None:
    groups = np.array(["b", "a", "b", "c", "a", "b"])
    units = bt._Units.build(6, groups)
    assert units.n_units == 3
    idx = units.indices(np.array([1, 1, 2]))  # "b" twice, "c" once
    assert sorted(idx.tolist()) == [0, 0, 2, 2, 3, 5, 5]


# -- determinism and dropped replicates -----------------------------------------------------

@pytest.mark.parametrize("fast", [True, False])
def test_same_seed_same_interval_other_seed_other_interval(fast: bool) -> None:
    y, preds = regression_seeds(n=120)
    m = decomposable("crps") if fast else loop_only(decomposable("crps"))
    a = bt.bootstrap_over_samples(m, y, preds, n_boot=100, seed=7)
    b = bt.bootstrap_over_samples(m, y, preds, n_boot=100, seed=7)
    c = bt.bootstrap_over_samples(m, y, preds, n_boot=100, seed=8)
    assert a == b
    assert (a.low, a.high) != (c.low, c.high)
    s1, s2 = bt.bootstrap_over_seeds([1.0, 1.3, 0.8, 1.1], seed=1), \
        bt.bootstrap_over_seeds([1.0, 1.3, 0.8, 1.1], seed=1)
    assert s1 == s2


def _probs(labels: np.ndarray, n_classes: int, rng: np.random.Generator) -> ClassProbs:
    logits = rng.normal(size=(labels.size, n_classes))
    logits[np.arange(labels.size), labels] += 1.5
    p = np.exp(logits)
    return ClassProbs(p / p.sum(axis=1, keepdims=True), tuple(f"c{i}" for i in range(n_classes)))


def test_undefined_replicates_are_dropped_and_counted() -> None:
    rng = np.random.default_rng(0)
    labels = np.array([0, 1] * 14 + [2, 0])  # class 2 occurs once in 30 samples
    preds = [_probs(labels, 3, rng) for _ in range(2)]

    def recall_c2(y, p):
        hit = y == 2
        return float(np.mean(p.point()[hit] == 2)) if hit.any() else float("nan")

    m = Metric("recall_c2", recall_c2, "higher", ("class_probs",), "classification",
               "accuracy", "test")
    iv = bt.bootstrap_over_samples(m, labels, preds, n_boot=300, seed=0)
    # P(class 2 never drawn) = (29/30)^30 ~ 0.36
    assert iv.n_boot == 300 and iv.n_valid + iv.n_dropped == 300
    assert 0.25 * 300 < iv.n_dropped < 0.47 * 300
    assert 0.0 <= iv.low <= iv.high <= 1.0


@pytest.mark.parametrize("name", ["ece", "overall_accuracy"])
def test_classification_metrics_bootstrap(name: str) -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, size=150)
    preds = [_probs(labels, 3, rng) for _ in range(2)]
    m = METRICS.get(name)
    iv = bt.bootstrap_over_samples(m, labels, preds, n_boot=30, seed=0)
    value = np.mean([m(labels, p) for p in preds])
    assert iv.n_valid == 30
    assert iv.low <= value <= iv.high


def test_samples_prediction_and_summary() -> None:
    rng = np.random.default_rng(4)
    y = rng.normal(size=200)
    preds = [Samples(y[:, None] + rng.normal(size=(200, 16))) for _ in range(3)]
    groups = np.arange(200) // 10
    m = decomposable("crps")
    per_seed = [m(y, p) for p in preds]
    out = bt.summarise_metric(m, y, preds, per_seed, groups=groups, n_boot=200, seed=0)
    assert out["mean"] == pytest.approx(np.mean(per_seed))
    assert out["n_seeds"] == 3 and out["n_boot"] == 200 and out["n_boot_valid"] == 200
    assert out["grouped"] is True
    assert out["seed_ci_low"] <= out["mean"] <= out["seed_ci_high"]
    assert out["sample_ci_low"] < out["mean"] < out["sample_ci_high"]
    assert bt.summarise_metric(m, y, preds, None, groups=groups, n_boot=200) == out


def test_bad_input_is_a_usage_error() -> None:
    y, preds = regression_seeds(n=30)
    m = decomposable("rmse")
    with pytest.raises(UsageError, match="prediction 1 has 29 samples"):
        bt.bootstrap_over_samples(m, y, [preds[0], preds[1].take(np.arange(29))])
    with pytest.raises(UsageError, match="groups"):
        bt.bootstrap_over_samples(m, y, preds, groups=np.zeros(10))
    with pytest.raises(UsageError, match="non-empty list"):
        bt.bootstrap_over_samples(m, y, [])
    with pytest.raises(UsageError, match="level"):
        bt.bootstrap_over_samples(m, y, preds, level=95)
    with pytest.raises(UsageError, match="accepts"):
        bt.bootstrap_over_samples(METRICS.get("ece"), y, preds)
