"""Every prediction is a distribution: closed forms, calibration behaviour, diagnostics.

References are independent: scipy.stats.truncnorm, properscoring, numerical integration,
torchmetrics, scikit-learn; calibration checks draw targets from the predictions themselves.
"""

from __future__ import annotations

import json
import time

import numpy as np
import properscoring
import pytest
from scipy import integrate, stats
from sklearn import metrics as skm

from releo_bench.metrics.diagnostics import (coverage_curve, diagnostics_for, per_class_f1,
                                             pit_histogram, reliability_bins)
from releo_bench.metrics.regression import crps_mixture, crps_per_sample, pit_values
from releo_bench.predictions import (ClassProbs, Gaussian, GaussianMixture, Point, Quantiles,
                                     Samples, TruncatedNormal)
from releo_bench.registries import METRICS

N_CAL = 20000
DENSE_LEVELS = np.round(np.linspace(0.005, 0.995, 199), 3)  # includes 0.025, 0.05, ... 0.975


def m(name: str):
    return METRICS.get(name)


# -- truncated normal closed forms ---------------------------------------------------------

TRUNCATIONS = [(-np.inf, np.inf), (0.0, np.inf), (-np.inf, 0.5), (-1.0, 1.0), (5.0, 6.0),
               (-6.0, -5.0), (8.0, 9.0), (30.0, np.inf), (-np.inf, -30.0), (-20.0, -19.5),
               (37.0, 37.3), (-1.0, 40.0), (10.0, np.inf)]


@pytest.mark.parametrize("a,b", TRUNCATIONS)
def test_truncated_normal_matches_scipy_including_far_tails(a: float, b: float):
    loc, scale = 1.5, 2.0
    n = 9
    dist = TruncatedNormal(np.full(n, loc), np.full(n, scale), low=loc + a * scale,
                           high=loc + b * scale)
    ref = stats.truncnorm(a, b, loc=loc, scale=scale)
    q = np.array([1e-6, 0.001, 0.05, 0.3, 0.5, 0.7, 0.95, 0.999, 1 - 1e-6])
    x = ref.ppf(q)
    np.testing.assert_allclose(dist.point(), ref.mean(), rtol=0, atol=1e-8)
    assert np.all(np.abs(dist.ppf(q) - x) <= 1e-8 * (1 + np.abs(x))), dist.ppf(q) - x
    np.testing.assert_allclose(dist.cdf(x), ref.cdf(x), rtol=0, atol=1e-8)
    outside = np.where(np.arange(n) % 2 == 0, dist.low - 1.0, dist.high + 1.0)
    np.testing.assert_array_equal(dist.cdf(outside), np.where(np.arange(n) % 2 == 0, 0.0, 1.0))


def test_truncated_normal_ppf_extreme_levels_against_high_precision():
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 40
    for a, b, q in [(-1.0, 40.0, 1 - 1e-12), (30.0, 31.0, 1e-9), (-np.inf, -25.0, 0.999999)]:
        dist = TruncatedNormal([0.0], [1.0], low=a, high=b)
        lo = mp.mpf(0) if a == -np.inf else mp.ncdf(a)
        target = lo + mp.mpf(q) * (mp.ncdf(b) - lo)
        exact = mp.findroot(lambda x: mp.ncdf(x) - target, float(dist.ppf(q)[0]))
        assert dist.ppf(q)[0] == pytest.approx(float(exact), rel=1e-10)


def test_truncated_normal_with_infinite_bounds_is_the_gaussian():
    rng = np.random.default_rng(0)
    mu, sd, y = rng.normal(size=200), rng.uniform(0.1, 3, 200), rng.normal(size=200) * 2
    tn, g = TruncatedNormal(mu, sd, low=-np.inf, high=np.inf), Gaussian(mu, sd)
    np.testing.assert_allclose(tn.point(), mu, atol=1e-12)
    np.testing.assert_allclose(tn.cdf(y), g.cdf(y), atol=1e-12)
    np.testing.assert_allclose(tn.ppf(0.17), g.ppf(0.17), atol=1e-10)
    for name in ("crps", "nll", "picp_90", "mpiw_80", "pit_deviation"):
        assert m(name)(y, tn) == pytest.approx(m(name)(y, g), abs=1e-9)
    np.testing.assert_allclose(crps_per_sample(y, tn),
                               properscoring.crps_gaussian(y, mu, sd), atol=1e-9)


# -- quantiles and samples as distributions ------------------------------------------------

def test_quantiles_cdf_and_ppf_interpolate_and_clip_the_tails():
    q = Quantiles([0.1, 0.5, 0.9], [[1.0, 0.0, -1.0]])  # crossing: sorted before use
    np.testing.assert_allclose(q.ppf(0.1), [-1.0])
    assert q.ppf(0.3)[0] == pytest.approx(-0.5)
    assert q.ppf(0.01)[0] == -1.0 and q.ppf(0.99)[0] == 1.0  # flat beyond the outer levels
    ys = np.array([-2.0, -1.0, -0.5, 0.5, 1.0, 2.0])
    cdf = Quantiles(q.levels, np.repeat(q.values, 6, axis=0)).cdf(ys)
    np.testing.assert_allclose(cdf, [0.0, 0.1, 0.3, 0.7, 1.0, 1.0])
    assert q.covers(0.8) and not q.covers(0.9)
    lo, hi = q.interval(0.8)
    assert (lo[0], hi[0]) == (-1.0, 1.0)


def test_quantiles_ppf_inverts_cdf_inside_the_levels():
    rng = np.random.default_rng(1)
    values = np.sort(rng.normal(size=(50, 7)), axis=1)
    q = Quantiles([0.02, 0.1, 0.3, 0.5, 0.7, 0.9, 0.98], values)
    levels = rng.uniform(0.02, 0.98, 50)  # one level per sample
    np.testing.assert_allclose(q.cdf(q.ppf(levels)), levels, atol=1e-12)


def test_samples_cdf_and_ppf_are_empirical():
    rng = np.random.default_rng(2)
    values, y = rng.normal(size=(30, 41)), rng.normal(size=30)
    s = Samples(values)
    np.testing.assert_allclose(s.cdf(y), np.mean(values <= y[:, None], axis=1))
    for level in (0.0, 0.05, 0.37, 0.5, 0.95, 1.0):
        np.testing.assert_allclose(s.ppf(level), np.quantile(values, level, axis=1), atol=1e-12)
    lo, hi = s.interval(0.9)
    np.testing.assert_allclose(lo, np.quantile(values, 0.05, axis=1), atol=1e-12)


# -- Gaussian mixture ----------------------------------------------------------------------

def _mixture(n: int, seed: int, k: int = 3) -> GaussianMixture:
    rng = np.random.default_rng(seed)
    return GaussianMixture(rng.normal(size=(n, k)) * 2, rng.uniform(0.2, 2.0, (n, k)),
                           rng.dirichlet(np.ones(k)))


def _numerical_crps(y: float, cdf) -> float:
    """∫ (F(x) - 1{x >= y})² dx on a wide finite range, split at the kink ``y``."""
    below = integrate.quad(lambda x: cdf(x) ** 2, y - 60, y, limit=400, epsabs=1e-12)[0]
    above = integrate.quad(lambda x: (1 - cdf(x)) ** 2, y, y + 60, limit=400, epsabs=1e-12)[0]
    return below + above


def test_mixture_crps_matches_numerical_integration():
    mix = _mixture(12, seed=3)
    y = np.random.default_rng(4).normal(size=12) * 3
    closed = crps_mixture(y, mix.means, mix.stds, mix.weights)
    for i in range(12):
        one = mix.take([i])
        numeric = _numerical_crps(y[i], lambda x: one.cdf(np.array([x]))[0])
        assert closed[i] == pytest.approx(numeric, abs=1e-7)


def test_mixture_crps_matches_ensemble_crps_of_a_large_sample():
    mix = _mixture(5, seed=5)
    rng = np.random.default_rng(6)
    comp = rng.choice(3, p=mix.weights, size=(5, 200_000))
    rows = np.arange(5)[:, None]
    draws = mix.means[rows, comp] + mix.stds[rows, comp] * rng.standard_normal((5, 200_000))
    y = rng.normal(size=5)
    np.testing.assert_allclose(crps_per_sample(y, mix), properscoring.crps_ensemble(y, draws),
                               atol=0.01)


def test_one_component_mixture_is_the_gaussian():
    rng = np.random.default_rng(7)
    mu, sd, y = rng.normal(size=100), rng.uniform(0.2, 2, 100), rng.normal(size=100)
    mix, g = GaussianMixture(mu[:, None], sd[:, None], [1.0]), Gaussian(mu, sd)
    for name in ("crps", "nll", "picp_50", "mpiw_95", "miscalibration_area"):
        assert m(name)(y, mix) == pytest.approx(m(name)(y, g), abs=1e-9)


def test_mixture_nll_and_ppf():
    mix = _mixture(40, seed=8)
    y = np.random.default_rng(9).normal(size=40) * 2
    density = np.sum(mix.weights * stats.norm.pdf(y[:, None], mix.means, mix.stds), axis=1)
    assert m("nll")(y, mix) == pytest.approx(-np.mean(np.log(density)), abs=1e-10)
    for q in (1e-6, 0.05, 0.5, 0.95):
        np.testing.assert_allclose(mix.cdf(mix.ppf(q)), q, atol=1e-12)
    assert np.all(mix.ppf(0.0) == -np.inf) and np.all(mix.ppf(1.0) == np.inf)


# -- calibration on data drawn from the predictions themselves ----------------------------

def _world(kind: str, shrink: float, seed: int = 10):
    """Targets drawn from a predictive of ``kind``, and that predictive with its spread
    divided by ``shrink`` (1: calibrated, 3: over-confident)."""
    rng = np.random.default_rng(seed)
    n = N_CAL
    mu, sd = rng.normal(size=n) * 2, rng.uniform(0.5, 2.0, n)
    z = rng.standard_normal(n)
    if kind == "gaussian":
        return mu + sd * z, Gaussian(mu, sd / shrink)
    if kind == "truncated_normal":
        low = mu - 0.5 * sd
        y = stats.truncnorm.rvs(-0.5, np.inf, loc=mu, scale=sd, random_state=rng)
        return y, TruncatedNormal(mu, sd / shrink, low=low)
    if kind == "quantiles":
        offsets = stats.norm.ppf(DENSE_LEVELS)
        return mu + sd * z, Quantiles(DENSE_LEVELS, mu[:, None] + sd[:, None] * offsets / shrink)
    if kind == "samples":
        draws = rng.standard_normal((n, 400))
        return mu + sd * z, Samples(mu[:, None] + sd[:, None] * draws / shrink)
    offsets = np.array([-1.0, 0.0, 1.5])
    means = mu[:, None] + sd[:, None] * offsets
    stds = np.outer(sd, [0.5, 1.0, 0.7])
    weights = np.array([0.3, 0.5, 0.2])
    comp = rng.choice(3, p=weights, size=n)
    rows = np.arange(n)
    y = means[rows, comp] + stds[rows, comp] * z
    return y, GaussianMixture(mu[:, None] + (means - mu[:, None]) / shrink, stds / shrink,
                              weights)


DIST_KINDS = ("gaussian", "truncated_normal", "quantiles", "samples", "gaussian_mixture")


@pytest.mark.parametrize("kind", DIST_KINDS)
def test_calibrated_predictions_cover_their_nominal_levels(kind: str):
    y, pred = _world(kind, shrink=1.0)
    for level in (50, 80, 90, 95):
        assert m(f"picp_{level}")(y, pred) == pytest.approx(level / 100, abs=0.02)
    assert m("pit_deviation")(y, pred) < 0.06
    assert m("miscalibration_area")(y, pred) < 0.01
    assert m("coverage_error_90")(y, pred) < 0.02


@pytest.mark.parametrize("kind", DIST_KINDS)
def test_overconfident_predictions_are_caught(kind: str):
    y, good = _world(kind, shrink=1.0)
    _, bad = _world(kind, shrink=3.0)
    assert m("pit_deviation")(y, bad) > 0.5 > m("pit_deviation")(y, good)
    assert m("miscalibration_area")(y, bad) > 0.1
    assert m("picp_90")(y, bad) < 0.6 and m("picp_50")(y, bad) < 0.3
    assert m("mpiw_90")(y, bad) < m("mpiw_90")(y, good)  # sharper, but wrongly so


def test_miscalibration_area_definition():
    # PIT all at 0.5: observed CDF is 0 below 0.5 and 1 from 0.5: area 1/4
    y, pred = np.zeros(1000), Gaussian(np.zeros(1000), np.ones(1000))
    assert m("miscalibration_area")(y, pred) == pytest.approx(0.25, abs=1e-12)
    assert pit_values(y, pred)[0] == 0.5


# -- classification ------------------------------------------------------------------------

def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _sample_labels(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One label per row drawn from its probabilities (inverse CDF, vectorised)."""
    u = rng.random((len(probs), 1))
    return np.minimum((probs.cumsum(axis=1) < u).sum(axis=1), probs.shape[1] - 1)


@pytest.mark.parametrize("seed,n,k", [(0, 500, 3), (1, 2000, 5), (2, 10000, 10), (3, 137, 2),
                                      (4, 3000, 7)])
def test_calibration_errors_match_torchmetrics(seed: int, n: int, k: int):
    torch = pytest.importorskip("torch")
    from torchmetrics.functional.classification import multiclass_calibration_error

    rng = np.random.default_rng(seed)
    probs = _softmax(rng.normal(0, 2.0, (n, k)))
    y = _sample_labels(_softmax(3 * np.log(probs)), rng)  # informative, mis-calibrated
    pred = ClassProbs(probs, tuple(f"c{i}" for i in range(k)))
    for name, norm in (("ece", "l1"), ("mce", "max"), ("rms_calibration_error", "l2")):
        ref = float(multiclass_calibration_error(torch.from_numpy(probs), torch.from_numpy(y),
                                                 num_classes=k, n_bins=15, norm=norm))
        assert m(name)(y, pred) == pytest.approx(ref, abs=1e-6), name


def test_labels_drawn_from_the_probabilities_are_calibrated_and_sharpening_is_not():
    rng = np.random.default_rng(11)
    logits = rng.normal(0, 1.5, (N_CAL, 4))
    probs = _softmax(logits)
    y = _sample_labels(probs, rng)
    names = ("a", "b", "c", "d")
    calibrated, sharp = ClassProbs(probs, names), ClassProbs(_softmax(3 * logits), names)
    assert m("ece")(y, calibrated) < 0.02
    assert m("ece")(y, sharp) > 3 * m("ece")(y, calibrated) and m("ece")(y, sharp) > 0.05
    assert m("rms_calibration_error")(y, sharp) > m("rms_calibration_error")(y, calibrated)
    assert m("log_loss")(y, sharp) > m("log_loss")(y, calibrated)


def test_brier_and_log_loss_match_scikit_learn():
    rng = np.random.default_rng(12)
    for k in (2, 3, 6):
        probs = rng.dirichlet(np.ones(k), size=300)
        y = rng.integers(0, k, 300)
        pred = ClassProbs(probs, tuple("abcdef"[:k]))
        assert m("brier")(y, pred) == pytest.approx(
            skm.brier_score_loss(y, probs, labels=range(k), scale_by_half=False), abs=1e-12)
        assert m("log_loss")(y, pred) == pytest.approx(
            skm.log_loss(y, probs, labels=range(k)), abs=1e-10)


@pytest.mark.parametrize("seed", range(5))
def test_miou_matches_scikit_learn_jaccard(seed: int):
    rng = np.random.default_rng(seed)
    k = 6
    probs = rng.dirichlet(np.ones(k), size=4000)
    probs[:, 5] = 0.0  # class 5 never predicted ...
    probs /= probs.sum(axis=1, keepdims=True)
    y = rng.choice(5, size=4000, p=[0.4, 0.3, 0.2, 0.1, 0.0])  # ... nor true, and 4 never true
    pred = ClassProbs(probs, tuple("abcdef"))
    assert m("miou")(y, pred) == pytest.approx(
        skm.jaccard_score(y, pred.point(), average="macro"), abs=1e-12)


# -- diagnostics ---------------------------------------------------------------------------

def test_reliability_bins_format_and_consistency_with_ece():
    rng = np.random.default_rng(13)
    probs = _softmax(rng.normal(0, 2, (3000, 3)))
    y = _sample_labels(probs, rng)
    pred = ClassProbs(probs, ("a", "b", "c"))
    rel = reliability_bins(y, pred)
    assert set(rel) == {"bin_edges", "confidence", "accuracy", "count"}
    assert len(rel["bin_edges"]) == 16 and all(len(rel[k]) == 15 for k in rel if k != "bin_edges")
    assert sum(rel["count"]) == 3000
    assert rel["confidence"][0] is None and rel["accuracy"][0] is None  # top-label conf >= 1/3
    ece = sum(c * abs(a - f) for c, a, f in zip(rel["count"], rel["accuracy"],
                                                 rel["confidence"]) if c) / 3000
    assert ece == pytest.approx(m("ece")(y, pred), abs=1e-12)
    json.dumps(rel, allow_nan=False)


def test_pit_histogram_and_coverage_curve_formats():
    y, pred = _world("gaussian", shrink=1.0)
    pit = pit_histogram(y, pred)
    assert len(pit["bin_edges"]) == 11 and len(pit["density"]) == 10
    np.testing.assert_allclose(pit["density"], 1.0, atol=0.1)
    assert np.mean(pit["density"]) == pytest.approx(1.0)
    cov = coverage_curve(y, pred)
    assert cov["nominal"] == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99]
    np.testing.assert_allclose(cov["observed"], cov["nominal"], atol=0.02)
    assert cov["mean_width"] == sorted(cov["mean_width"])
    q = Quantiles([0.05, 0.5, 0.95], np.tile([-1.6, 0.0, 1.6], (100, 1)))
    partial = coverage_curve(np.zeros(100), q)
    assert partial["observed"][-2:] == [None, None] and partial["mean_width"][-1] is None
    json.dumps({"pit": pit, "cov": cov, "partial": partial}, allow_nan=False)


def test_per_class_f1_matches_scikit_learn():
    rng = np.random.default_rng(14)
    probs = rng.dirichlet(np.ones(4), size=500)
    probs[:, 3] = 0.0
    probs /= probs.sum(axis=1, keepdims=True)
    y = rng.integers(0, 3, 500)  # class "d": never true, never predicted
    pred = ClassProbs(probs, ("a", "b", "c", "d"))
    f1 = per_class_f1(y, pred)
    ref = skm.f1_score(y, pred.point(), labels=[0, 1, 2], average=None)
    assert list(f1) == ["a", "b", "c", "d"] and f1["d"] is None
    np.testing.assert_allclose([f1["a"], f1["b"], f1["c"]], ref, atol=1e-12)


def test_diagnostics_for_chooses_by_kind():
    rng = np.random.default_rng(15)
    y = rng.integers(0, 3, 50)
    cls = diagnostics_for(y, ClassProbs(rng.dirichlet(np.ones(3), size=50), ("a", "b", "c")))
    assert set(cls) == {"reliability", "per_class_f1"}
    yr = rng.normal(size=50)
    for kind in DIST_KINDS:
        _, pred = _world(kind, 1.0)
        assert set(diagnostics_for(yr, pred.take(np.arange(50)))) == {"pit_histogram",
                                                                       "coverage_curve"}
    assert diagnostics_for(yr, Point(yr)) == {}
    json.dumps(cls, allow_nan=False)


# -- contract: pointwise / finalize, speed -------------------------------------------------

def _random_prediction(kind: str, n: int, rng: np.random.Generator):
    mu, sd = rng.normal(size=n), rng.uniform(0.5, 2, n)
    return {
        "gaussian": lambda: Gaussian(mu, sd),
        "truncated_normal": lambda: TruncatedNormal(mu, sd, low=mu - 1.0),
        "quantiles": lambda: Quantiles(DENSE_LEVELS, mu[:, None] + sd[:, None]
                                       * stats.norm.ppf(DENSE_LEVELS)),
        "samples": lambda: Samples(mu[:, None] + rng.standard_normal((n, 50))),
        "point": lambda: Point(mu),
        "gaussian_mixture": lambda: GaussianMixture(mu[:, None] + rng.normal(size=(n, 3)),
                                                    np.outer(sd, [1, 0.5, 2]), [0.2, 0.5, 0.3]),
        "class_probs": lambda: ClassProbs(rng.dirichlet(np.ones(4), size=n), tuple("abcd")),
    }[kind]()


def _targets(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 4, n) if kind == "class_probs" else rng.normal(size=n) + 0.5


DECOMPOSABLE = [name for name in METRICS.names() if METRICS.get(name).pointwise is not None]
# metrics that are not a function of a mean of per-sample values, with the reason: none today
NOT_DECOMPOSABLE: dict[str, str] = {}
VECTOR_METRICS = {"r2", "pit_deviation", "miscalibration_area", "ece", "mce",
                  "rms_calibration_error", "kappa", "macro_f1", "balanced_accuracy", "miou"}


def test_transformed_means_declare_their_per_sample_values():
    assert {"rmse", "mae", "bias", "crps", "nll", "picp_50", "picp_95", "mpiw_90",
            "coverage_error_90", "overall_accuracy", "brier", "log_loss"} <= set(DECOMPOSABLE)


def test_every_registered_metric_is_decomposable():
    """Every metric bootstraps by the count-matrix product, none by the replicate loop."""
    missing = set(METRICS.names()) - set(DECOMPOSABLE) - set(NOT_DECOMPOSABLE)
    assert not missing, f"metrics without pointwise / finalize: {sorted(missing)}"
    assert VECTOR_METRICS <= set(DECOMPOSABLE)
    for name in DECOMPOSABLE:
        assert METRICS.get(name).decomposable


def _cases(metric, rng: np.random.Generator, n: int = 300):
    for kind in metric.accepts:
        yield kind, _random_prediction(kind, n, rng), _targets(kind, n, rng)


@pytest.mark.parametrize("name", DECOMPOSABLE)
def test_pointwise_finalize_reproduces_the_metric(name: str):
    metric = METRICS.get(name)
    rng = np.random.default_rng(16)
    for kind, pred, y in _cases(metric, rng):
        values = metric.per_sample(y, pred)
        assert values.ndim in (1, 2) and values.shape[0] == 300
        assert (values.ndim == 2) == (name in VECTOR_METRICS), values.shape
        if values.ndim == 2:
            assert metric.finalize is not None  # a vector mean needs its finalize
        via_mean = metric.from_mean(values.mean(axis=0))
        assert np.ndim(via_mean) == 0
        assert float(via_mean) == pytest.approx(metric(y, pred), abs=1e-10), kind


@pytest.mark.parametrize("name", DECOMPOSABLE)
def test_finalize_is_vectorised_over_leading_axes(name: str):
    """``from_mean`` on a batch of means ``[B, S(, M)]`` equals it row by row (the bootstrap
    finalizes a chunk of replicates in one call)."""
    metric = METRICS.get(name)
    rng = np.random.default_rng(18)
    kind = metric.accepts[0]
    pred, y = _random_prediction(kind, 200, rng), _targets(kind, 200, rng)
    values = metric.per_sample(y, pred)
    draws = rng.integers(0, 200, size=(6, 200))
    means = np.stack([values[d].mean(axis=0) for d in draws]).reshape(
        (3, 2) + values.shape[1:])
    batch = np.asarray(metric.from_mean(means))
    assert batch.shape == (3, 2)
    rows = [float(metric.from_mean(mu)) for mu in means.reshape((6,) + values.shape[1:])]
    np.testing.assert_allclose(batch.ravel(), rows, rtol=1e-12, atol=1e-15)
    direct = [metric(y[d], pred.take(d)) for d in draws]
    np.testing.assert_allclose(rows, direct, rtol=1e-9, atol=1e-12)


def test_every_metric_is_fast_on_ten_thousand_samples():
    """Vectorised over samples: a loop over N would take seconds. The budget (0.25 s) is
    loose for shared CI machines; typical times are well under 50 ms."""
    rng = np.random.default_rng(17)
    n = 10_000
    for name in METRICS.names():
        metric = METRICS.get(name)
        for kind in metric.accepts:
            pred, y = _random_prediction(kind, n, rng), _targets(kind, n, rng)
            best = np.inf
            for _ in range(2):
                start = time.perf_counter()
                metric(y, pred)
                best = min(best, time.perf_counter() - start)
            assert best < 0.25, f"{name} on {kind}: {best:.3f} s"


def test_interval_metrics_skip_quantiles_that_do_not_reach_them():
    """Quantiles at 0.05..0.95 give the 90 % interval but not the 95 % one: picp_95 and
    mpiw_95 do not apply (rather than failing the whole run), picp_90 does."""
    import numpy as np

    from releo_bench.predictions import Quantiles
    from releo_bench.registries import METRICS

    levels = np.array([0.05, 0.25, 0.5, 0.75, 0.95])
    pred = Quantiles(levels, np.tile(np.array([-1.6, -0.7, 0.0, 0.7, 1.6]), (4, 1)))
    assert METRICS.get("picp_90").applies_to(pred)
    assert not METRICS.get("picp_95").applies_to(pred)
    assert not METRICS.get("mpiw_95").applies_to(pred)
    assert METRICS.get("picp_90")(np.array([0.0, 1.0, 2.0, -1.0]), pred) == 0.75
