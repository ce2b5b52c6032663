"""Metrics against closed forms, reference libraries and independent numpy computations."""

from __future__ import annotations

import numpy as np
import properscoring
import pytest
from scipy import integrate, stats
from sklearn import metrics as skm

from releo_bench.errors import UsageError
from releo_bench.metrics.regression import (crps_truncated_normal, pit_values, picp)
from releo_bench.predictions import (ClassProbs, Gaussian, GaussianMixture, Point, Quantiles,
                                     Samples, TruncatedNormal)
from releo_bench.registries import METRICS

REGRESSION_METRICS = ("rmse", "mae", "r2", "bias", "crps", "nll", "coverage_error_90",
                      "mpiw_90", "pit_deviation", "picp_50", "picp_80", "picp_90", "picp_95",
                      "mpiw_50", "mpiw_80", "mpiw_95", "miscalibration_area")
CLASSIFICATION_METRICS = ("overall_accuracy", "balanced_accuracy", "macro_f1", "kappa", "ece",
                          "mce", "rms_calibration_error", "brier", "log_loss", "miou")


def m(name: str):
    return METRICS.get(name)


def _numerical_crps(y: float, dist: TruncatedNormal) -> float:
    """∫ (F(x) - 1{x >= y})² dx, split where the integrand has kinks or is constant."""
    lo, hi = float(dist.low[0]), float(dist.high[0])

    def sq(x: float) -> float:
        return (dist.cdf(np.array([x]))[0] - float(x >= y)) ** 2

    outside = max(0.0, lo - y) + (max(0.0, y - hi) if np.isfinite(hi) else 0.0)
    if lo < y < hi:
        parts = [(lo, y), (y, hi)]
    else:
        parts = [(lo, hi)]
    inside = sum(integrate.quad(sq, a, b, limit=200, epsabs=1e-11, epsrel=1e-11)[0]
                 for a, b in parts)
    return inside + outside


# -- registration --------------------------------------------------------------------------

def test_metrics_are_registered_with_declared_directions_and_families():
    for name in REGRESSION_METRICS:
        assert m(name).task_kind == "regression"
    for name in CLASSIFICATION_METRICS:
        assert m(name).task_kind == "classification"
        assert m(name).accepts == ("class_probs",)
    assert m("bias").direction == "zero"
    assert m("r2").direction == "higher" and m("kappa").direction == "higher"
    assert {m(n).family for n in ("crps", "nll", "brier", "log_loss")} == {"proper_score"}
    assert {m(n).family for n in ("coverage_error_90", "mpiw_90", "pit_deviation", "ece",
                                  "mce", "rms_calibration_error", "picp_90", "mpiw_50",
                                  "miscalibration_area")} == {"calibration"}
    assert set(m("nll").accepts) == {"gaussian", "truncated_normal", "gaussian_mixture"}
    assert "point" in m("crps").accepts and "point" not in m("coverage_error_90").accepts
    for level in (50, 80, 90, 95):
        picp = m(f"picp_{level}")
        assert picp.direction == "target" and picp.ideal == pytest.approx(level / 100)
        assert m(f"mpiw_{level}").direction == "lower"
    assert m("miou").direction == "higher" and m("miou").family == "accuracy"


def _example(kind: str, n: int = 4):
    rng = np.random.default_rng(0)
    return {
        "gaussian": Gaussian(rng.normal(size=n), np.ones(n)),
        "truncated_normal": TruncatedNormal(rng.normal(size=n), np.ones(n), low=-3.0, high=3.0),
        "quantiles": Quantiles([0.025, 0.05, 0.5, 0.95, 0.975],
                               np.sort(rng.normal(size=(n, 5)), axis=1)),
        "samples": Samples(rng.normal(size=(n, 20))),
        "point": Point(rng.normal(size=n)),
        "class_probs": ClassProbs(rng.dirichlet(np.ones(3), size=n), ("a", "b", "c")),
        "gaussian_mixture": GaussianMixture(rng.normal(size=(n, 3)), np.ones((n, 3)),
                                            np.full(3, 1 / 3)),
    }[kind]


@pytest.mark.parametrize("name", REGRESSION_METRICS + CLASSIFICATION_METRICS)
def test_each_metric_refuses_kinds_it_does_not_accept(name: str):
    metric = m(name)
    kinds = ("gaussian", "truncated_normal", "quantiles", "samples", "point", "class_probs",
             "gaussian_mixture")
    y = np.array([0, 1, 2, 0])
    for kind in kinds:
        pred = _example(kind)
        if kind in metric.accepts:
            assert np.isfinite(metric(y, pred))
        else:
            with pytest.raises(UsageError, match=name):
                metric(y, pred)


# -- point accuracy ------------------------------------------------------------------------

def test_point_metrics_match_manual_formulas():
    rng = np.random.default_rng(1)
    y, mu = rng.normal(size=200), rng.normal(size=200)
    pred = Gaussian(mu, np.full(200, 0.3))
    assert m("rmse")(y, pred) == pytest.approx(np.sqrt(np.mean((mu - y) ** 2)), abs=1e-12)
    assert m("mae")(y, pred) == pytest.approx(np.mean(np.abs(mu - y)), abs=1e-12)
    assert m("bias")(y, pred) == pytest.approx(np.mean(mu - y), abs=1e-12)
    r2 = 1 - np.sum((y - mu) ** 2) / np.sum((y - y.mean()) ** 2)
    assert m("r2")(y, pred) == pytest.approx(r2, abs=1e-12)
    # quantiles are scored through their interpolated median
    q = Quantiles([0.25, 0.75], np.stack([mu - 1, mu + 3], axis=1))
    assert m("bias")(y, q) == pytest.approx(np.mean(mu + 1 - y), abs=1e-12)


# -- CRPS ----------------------------------------------------------------------------------

def test_crps_standard_normal_at_zero():
    assert m("crps")(np.array([0.0]), Gaussian([0.0], [1.0])) == pytest.approx(0.233695,
                                                                                abs=1e-6)


def test_gaussian_crps_matches_properscoring():
    rng = np.random.default_rng(2)
    mu, sd, y = rng.normal(size=50) * 3, rng.uniform(0.05, 4, 50), rng.normal(size=50) * 3
    for i in range(50):
        expected = properscoring.crps_gaussian(y[i], mu[i], sd[i])
        assert m("crps")(y[i:i + 1], Gaussian(mu[i:i + 1], sd[i:i + 1])) == pytest.approx(
            expected, abs=1e-6)
    assert m("crps")(y, Gaussian(mu, sd)) == pytest.approx(
        np.mean(properscoring.crps_gaussian(y, mu, sd)), abs=1e-9)


def test_truncated_normal_crps_matches_numerical_integration():
    rng = np.random.default_rng(3)
    for case in range(16):
        loc, scale = rng.normal() * 2, rng.uniform(0.2, 2.5)
        low = loc + rng.normal() * 1.5
        high = np.inf if case % 4 == 0 else low + rng.uniform(0.2, 5.0)
        y = rng.uniform(low - 1.0, low + 4.0)  # inside and on both sides of the support
        dist = TruncatedNormal([loc], [scale], low=low, high=high)
        assert m("crps")(np.array([y]), dist) == pytest.approx(_numerical_crps(y, dist),
                                                                abs=1e-5)


def test_truncated_normal_crps_in_a_far_tail_matches_integration():
    # support 5-6 sd above the mean: naive CDF differences would cancel to zero
    dist = TruncatedNormal([0.0], [1.0], low=5.0, high=6.0)
    for y in (4.0, 5.3, 6.5):
        assert m("crps")(np.array([y]), dist) == pytest.approx(_numerical_crps(y, dist),
                                                                abs=1e-5)


def test_truncated_normal_crps_tends_to_gaussian_with_far_bounds():
    rng = np.random.default_rng(4)
    mu, sd, y = rng.normal(size=30), rng.uniform(0.1, 2, 30), rng.normal(size=30) * 2
    far = crps_truncated_normal(y, mu, sd, mu - 40 * sd, mu + 40 * sd)
    one_sided = crps_truncated_normal(y, mu, sd, mu - 40 * sd, np.inf)
    np.testing.assert_allclose(far, properscoring.crps_gaussian(y, mu, sd), atol=1e-9)
    np.testing.assert_allclose(one_sided, properscoring.crps_gaussian(y, mu, sd), atol=1e-9)


def test_truncated_normal_crps_is_mirror_symmetric():
    rng = np.random.default_rng(5)
    mu, sd, y = rng.normal(size=20), rng.uniform(0.1, 2, 20), rng.normal(size=20)
    low, high = mu - rng.uniform(0, 2, 20), mu + rng.uniform(0.1, 3, 20)
    np.testing.assert_allclose(crps_truncated_normal(y, mu, sd, low, high),
                               crps_truncated_normal(-y, -mu, sd, -high, -low), atol=1e-12)


def test_ensemble_crps_matches_properscoring():
    rng = np.random.default_rng(6)
    values, y = rng.normal(size=(40, 25)), rng.normal(size=40)
    expected = np.mean(properscoring.crps_ensemble(y, values))
    assert m("crps")(y, Samples(values)) == pytest.approx(expected, abs=1e-12)


def test_quantile_crps_is_twice_mean_pinball_and_approximates_gaussian():
    y = np.array([0.3, -1.0])
    q = Quantiles([0.1, 0.5, 0.9], [[-1.0, 0.0, 1.0], [-1.0, 0.0, 1.0]])
    # y=0.3 lies above the 0.1 and 0.5 quantiles (loss level * gap) and below the 0.9
    # quantile (loss (1 - level) * gap)
    first = 2 * np.mean([0.1 * 1.3, 0.5 * 0.3, 0.1 * 0.7])
    second = 2 * np.mean([0.9 * 0.0, 0.5 * 1.0, 0.1 * 2.0])
    assert m("crps")(y, q) == pytest.approx((first + second) / 2, abs=1e-12)
    levels = np.linspace(0.005, 0.995, 199)
    rng = np.random.default_rng(7)
    y = rng.normal(size=100)
    dense = Quantiles(levels, np.tile(stats.norm.ppf(levels), (100, 1)))
    gauss = m("crps")(y, Gaussian(np.zeros(100), np.ones(100)))
    assert m("crps")(y, dense) == pytest.approx(gauss, rel=0.02)


def test_point_crps_is_mae():
    y, p = np.array([1.0, 2.0, -3.0]), Point([0.0, 2.5, -1.0])
    assert m("crps")(y, p) == pytest.approx((1.0 + 0.5 + 2.0) / 3, abs=1e-12)
    assert m("crps")(y, p) == m("mae")(y, p)


# -- NLL -----------------------------------------------------------------------------------

def test_nll_matches_scipy_log_densities():
    rng = np.random.default_rng(8)
    mu, sd, y = rng.normal(size=30), rng.uniform(0.1, 2, 30), rng.uniform(0.0, 2.0, 30)
    assert m("nll")(y, Gaussian(mu, sd)) == pytest.approx(
        -np.mean(stats.norm.logpdf(y, mu, sd)), abs=1e-10)
    low, high = 0.0, 2.0
    ref = stats.truncnorm.logpdf(y, (low - mu) / sd, (high - mu) / sd, loc=mu, scale=sd)
    assert m("nll")(y, TruncatedNormal(mu, sd, low=low, high=high)) == pytest.approx(
        -np.mean(ref), abs=1e-9)


def test_truncated_nll_is_finite_in_a_far_tail_and_infinite_outside_support():
    dist = TruncatedNormal([0.0], [1.0], low=30.0, high=np.inf)
    # f(30) = φ(30) / (1 - Φ(30)), about 30: naive normalisation would divide by zero
    expected = stats.norm.logsf(30.0) - stats.norm.logpdf(30.0)
    assert m("nll")(np.array([30.0]), dist) == pytest.approx(expected, abs=1e-9)
    assert expected == pytest.approx(-np.log(30.0), abs=2e-3)
    assert m("nll")(np.array([-1.0]), TruncatedNormal([0.0], [1.0], low=0.0)) == np.inf


# -- intervals -----------------------------------------------------------------------------

def _gaussian_world(n: int = 20000, seed: int = 9) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mu = rng.normal(size=n) * 2
    sd = rng.uniform(0.5, 2.0, n)
    return mu + sd * rng.standard_normal(n), mu, sd


def test_coverage_error_separates_calibrated_from_overconfident():
    y, mu, sd = _gaussian_world()
    good, bad = Gaussian(mu, sd), Gaussian(mu, 0.3 * sd)
    assert m("coverage_error_90")(y, good) < 0.03
    assert m("coverage_error_90")(y, bad) > 0.2
    assert picp(y, bad, 0.9) < 0.5
    assert m("mpiw_90")(y, good) == pytest.approx(np.mean(2 * 1.6448536 * sd), rel=1e-6)


def test_coverage_for_quantiles_samples_and_truncated():
    y, mu, sd = _gaussian_world(n=4000, seed=10)
    levels = np.array([0.025, 0.05, 0.25, 0.5, 0.75, 0.95, 0.975])
    q = Quantiles(levels, mu[:, None] + sd[:, None] * stats.norm.ppf(levels))
    rng = np.random.default_rng(11)
    s = Samples(mu[:, None] + sd[:, None] * rng.standard_normal((4000, 400)))
    tn = TruncatedNormal(mu, sd, low=-np.inf, high=mu + 50 * sd)
    for pred in (q, s, tn):
        assert m("coverage_error_90")(y, pred) < 0.03
        assert m("mpiw_90")(y, pred) == pytest.approx(np.mean(2 * 1.6448536 * sd), rel=0.02)


def test_quantile_interval_is_interpolated_and_needs_covering_levels():
    q = Quantiles([0.0125, 0.5, 0.9875], [[-2.0, 0.0, 2.0]])
    # 0.05 lies 0.0375/0.4875 of the way from 0.0125 to 0.5
    expected_lo = -2.0 + 2.0 * 0.0375 / 0.4875
    assert m("mpiw_90")(np.array([0.0]), q) == pytest.approx(-2 * expected_lo, abs=1e-12)
    narrow = Quantiles([0.1, 0.5, 0.9], [[-1.0, 0.0, 1.0]])
    with pytest.raises(UsageError, match="do not cover"):
        m("coverage_error_90")(np.array([0.0]), narrow)


# -- PIT -----------------------------------------------------------------------------------

def test_pit_values_are_cdf_values():
    y, mu, sd = _gaussian_world(n=50)
    np.testing.assert_allclose(pit_values(y, Gaussian(mu, sd)), stats.norm.cdf(y, mu, sd))
    s = Samples([[0.0, 1.0, 2.0, 3.0]])
    # rank 2 of 4 with no ties -> (2 + 0.5) / 5
    assert pit_values(np.array([1.5]), s)[0] == pytest.approx(0.5)
    q = Quantiles([0.1, 0.5, 0.9], [[-1.0, 0.0, 1.0]])
    np.testing.assert_allclose(pit_values(np.array([0.5, -5.0, 5.0]), Quantiles(
        q.levels, np.repeat(q.values, 3, axis=0))), [0.7, 0.05, 0.95])


def test_pit_deviation_small_when_calibrated_large_when_overconfident():
    y, mu, sd = _gaussian_world()
    assert m("pit_deviation")(y, Gaussian(mu, sd)) < 0.05
    assert m("pit_deviation")(y, Gaussian(mu, 0.3 * sd)) > 0.5
    rng = np.random.default_rng(12)
    draws = rng.standard_normal((20000, 99))
    assert m("pit_deviation")(y, Samples(mu[:, None] + sd[:, None] * draws)) < 0.06
    assert m("pit_deviation")(y, Samples(mu[:, None] + 0.3 * sd[:, None] * draws)) > 0.5


# -- classification ------------------------------------------------------------------------

def _classification_case(seed: int, n: int = 600, k: int = 4) -> tuple[np.ndarray, ClassProbs]:
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(k, 0.7), size=n)
    # draw labels from a sharpened version so the model is mis-calibrated but informative
    sharp = probs**2 / np.sum(probs**2, axis=1, keepdims=True)
    y = np.array([rng.choice(k, p=row) for row in sharp])
    return y, ClassProbs(probs, tuple("abcd"[:k]))


def _numpy_calibration_errors(y: np.ndarray, probs: np.ndarray, bins: int = 15
                              ) -> tuple[float, float]:
    conf, hit = probs.max(axis=1), (probs.argmax(axis=1) == y).astype(float)
    idx = np.digitize(conf, np.linspace(0, 1, bins + 1)[1:-1])
    gaps, weights = [], []
    for b in range(bins):
        sel = idx == b
        if sel.any():
            gaps.append(abs(hit[sel].mean() - conf[sel].mean()))
            weights.append(sel.mean())
    return float(np.dot(gaps, weights)), float(max(gaps))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_ece_and_mce_match_numpy_binning(seed: int):
    y, pred = _classification_case(seed)
    ece, mce = _numpy_calibration_errors(y, pred.probs)
    assert m("ece")(y, pred) == pytest.approx(ece, abs=1e-6)
    assert m("mce")(y, pred) == pytest.approx(mce, abs=1e-6)
    assert ece > 0.02  # the case is built mis-calibrated: the check is not vacuous


def test_ece_is_zero_for_perfectly_confident_correct_predictions():
    y = np.array([0, 1, 2, 1])
    pred = ClassProbs(np.eye(3)[y], ("a", "b", "c"))
    assert m("ece")(y, pred) == pytest.approx(0.0, abs=1e-7)
    assert m("overall_accuracy")(y, pred) == 1.0 and m("kappa")(y, pred) == 1.0


def test_brier_and_log_loss_match_manual_formulas():
    y, pred = _classification_case(5, n=200)
    manual = np.mean([sum((pred.probs[i, c] - (c == y[i])) ** 2 for c in range(4))
                      for i in range(200)])
    assert m("brier")(y, pred) == pytest.approx(manual, abs=1e-12)
    assert m("log_loss")(y, pred) == pytest.approx(
        skm.log_loss(y, pred.probs, labels=range(4)), abs=1e-9)
    zero = ClassProbs([[1.0, 0.0]], ("a", "b"))
    assert m("log_loss")(np.array([1]), zero) == pytest.approx(-np.log(1e-15))


def test_accuracy_metrics_match_sklearn():
    y, pred = _classification_case(6, n=300)
    hat = pred.probs.argmax(axis=1)
    assert m("overall_accuracy")(y, pred) == pytest.approx(np.mean(hat == y))
    recalls = [np.mean(hat[y == c] == c) for c in np.unique(y)]
    assert m("balanced_accuracy")(y, pred) == pytest.approx(np.mean(recalls))
    assert m("macro_f1")(y, pred) == pytest.approx(skm.f1_score(y, hat, average="macro"))
    assert m("kappa")(y, pred) == pytest.approx(skm.cohen_kappa_score(y, hat))


def test_classification_metrics_refuse_bad_labels():
    pred = ClassProbs([[0.5, 0.5], [0.2, 0.8]], ("a", "b"))
    with pytest.raises(UsageError, match=r"\[0, 2\)"):
        m("brier")(np.array([0, 2]), pred)
    with pytest.raises(UsageError, match="integer"):
        m("log_loss")(np.array([0.0, 0.5]), pred)
    with pytest.raises(UsageError, match="2 targets for 1"):
        m("ece")(np.array([0, 1]), ClassProbs([[0.5, 0.5]], ("a", "b")))


# -- sufficient statistics: metrics as a function of per-sample vector means -------------------

CONFUSION_METRICS = ("balanced_accuracy", "macro_f1", "kappa", "miou")
CALIBRATION_METRICS = ("ece", "mce", "rms_calibration_error")


def _via_mean(name: str, y: np.ndarray, pred) -> float:
    metric = m(name)
    return float(metric.from_mean(metric.per_sample(y, pred).mean(axis=0)))


def _hard_prediction(labels: np.ndarray, k: int) -> ClassProbs:
    """Probabilities whose most probable class is ``labels``."""
    probs = np.full((labels.size, k), 0.5 / k)
    probs[np.arange(labels.size), labels] += 0.5
    return ClassProbs(probs, tuple("abcdef"[:k]))


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
@pytest.mark.parametrize("seed", range(12))
def test_confusion_and_calibration_metrics_from_vector_means(seed: int):
    """Random cases, many with a class missing from the truth, the prediction or both."""
    rng = np.random.default_rng(100 + seed)
    k, n = int(rng.integers(2, 6)), int(rng.integers(5, 60))
    y = rng.integers(0, k, n)
    probs = rng.dirichlet(np.full(k, rng.uniform(0.3, 3.0)), size=n)
    if seed % 3 == 0:
        y[y == k - 1] = 0  # class k-1 absent from the truth
    if seed % 4 == 0:
        probs[:, 1] = 0.0  # class 1 never predicted
        probs /= probs.sum(axis=1, keepdims=True)
    pred = ClassProbs(probs, tuple("abcdef"[:k]))
    for name in CONFUSION_METRICS + CALIBRATION_METRICS:
        assert m(name).per_sample(y, pred).shape[0] == n
        assert _via_mean(name, y, pred) == pytest.approx(m(name)(y, pred), abs=1e-12), name


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_confusion_metrics_with_absent_classes_follow_sklearn():
    # class 2 only predicted, class 3 in neither truth nor prediction
    y = np.array([0, 0, 1, 1, 1, 0])
    hat = np.array([0, 2, 1, 1, 0, 0])
    pred = _hard_prediction(hat, 4)
    expected = {"balanced_accuracy": skm.balanced_accuracy_score(y, hat),
                "macro_f1": skm.f1_score(y, hat, average="macro", zero_division=0),
                "kappa": skm.cohen_kappa_score(y, hat),
                "miou": skm.jaccard_score(y, hat, average="macro")}
    for name, value in expected.items():
        assert m(name)(y, pred) == pytest.approx(value, abs=1e-12), name
        assert _via_mean(name, y, pred) == pytest.approx(value, abs=1e-12), name


def test_kappa_of_a_single_shared_class_is_nan_both_ways():
    y = np.zeros(5, dtype=int)
    pred = _hard_prediction(np.zeros(5, dtype=int), 3)
    with pytest.warns(Warning):
        assert np.isnan(m("kappa")(y, pred))
    assert np.isnan(_via_mean("kappa", y, pred))
    assert _via_mean("miou", y, pred) == m("miou")(y, pred) == 1.0


def test_r2_from_means_matches_sklearn_also_for_constant_and_offset_targets():
    rng = np.random.default_rng(21)
    mu = rng.normal(size=200)
    for offset in (0.0, 300.0, 1e5):  # far from zero: no cancellation in Var(y)
        y = offset + mu + rng.normal(size=200)
        pred = Gaussian(offset + mu, np.ones(200))
        assert _via_mean("r2", y, pred) == pytest.approx(m("r2")(y, pred), rel=1e-9)
    for value in (0.0, 3.0, 2.5, -7.25):
        y = np.full(50, value)
        perfect, off = Point(y.copy()), Point(y + rng.normal(size=50))
        assert m("r2")(y, perfect) == _via_mean("r2", y, perfect) == 1.0
        assert m("r2")(y, off) == _via_mean("r2", y, off) == 0.0


def test_pit_metrics_from_vector_means_at_bin_edges_and_outside():
    # PIT exactly on histogram edges and grid midpoints, and beyond [0, 1] before clipping
    pit = np.array([0.0, 0.1, 0.2, 0.25, 0.495, 0.5, 0.505, 0.9, 1.0, 0.999, 0.005, 0.015])
    y = stats.norm.ppf(np.clip(pit, 1e-300, 1 - 1e-16))
    pred = Gaussian(np.zeros(pit.size), np.ones(pit.size))
    for name in ("pit_deviation", "miscalibration_area"):
        assert _via_mean(name, y, pred) == pytest.approx(m(name)(y, pred), abs=1e-12), name
    s = Samples(np.tile(np.arange(9.0), (4, 1)))  # ensemble PIT on its own cell grid
    ys = np.array([-1.0, 3.0, 4.5, 20.0])
    for name in ("pit_deviation", "miscalibration_area"):
        assert _via_mean(name, ys, s) == pytest.approx(m(name)(ys, s), abs=1e-12), name
