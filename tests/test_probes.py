"""Probes: ridge with a closed-form Gaussian predictive, multinomial logistic regression."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from releo_bench.errors import UsageError
from releo_bench.metrics.regression import picp
from releo_bench.predictions import ClassProbs, Gaussian, TruncatedNormal
from releo_bench.probes.logistic import LogisticProbe
from releo_bench.probes.ridge import RidgeGaussian
from releo_bench.registries import PROBES
from releo_bench.tasks.base import TargetSpec

REGRESSION = TargetSpec(kind="regression", name="y")
BOUNDED = TargetSpec(kind="regression", name="lai", unit="m2/m2", range=(0.0, 8.0))
CLASSES = TargetSpec(kind="classification", name="crop", class_names=("wheat", "maize",
                                                                        "rape", "beet"))
TRUE_W = np.array([1.0, -2.0, 0.5, 0.0, 3.0])


def _linear(n: int, rng: np.random.Generator, sigma: float = 0.5
            ) -> tuple[np.ndarray, np.ndarray]:
    X = rng.normal(size=(n, TRUE_W.size))
    return X, X @ TRUE_W + 1.5 + sigma * rng.standard_normal(n)


def _blobs(n_per_class: int, classes: list[int], rng: np.random.Generator,
           spread: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    centres = 4.0 * np.eye(6)[:4]
    X = np.concatenate([centres[c] + spread * rng.normal(size=(n_per_class, 6))
                        for c in classes])
    return X, np.repeat(np.asarray(classes), n_per_class)


# -- the Probe base class ------------------------------------------------------------------

def test_registry_resolves_builtin_probes():
    assert PROBES.get("ridge") is RidgeGaussian
    assert PROBES.get("logistic") is LogisticProbe


def test_probe_base_refuses_unknown_params_and_wrong_target_kind():
    with pytest.raises(UsageError, match="alpha"):
        RidgeGaussian(REGRESSION, alpha=1.0)
    with pytest.raises(UsageError, match="classification"):
        RidgeGaussian(CLASSES)
    with pytest.raises(UsageError, match="regression"):
        LogisticProbe(REGRESSION)
    with pytest.raises(UsageError, match="C'"):
        LogisticProbe(CLASSES, C=1.0)
    with pytest.raises(UsageError, match="positive"):
        RidgeGaussian(REGRESSION, alphas=[1.0, -1.0])


def test_probes_refuse_to_predict_before_fit():
    with pytest.raises(UsageError, match="fit"):
        RidgeGaussian(REGRESSION).predict_dist(np.zeros((2, 3)))
    with pytest.raises(UsageError, match="fit"):
        LogisticProbe(CLASSES).predict(np.zeros((2, 3)))


# -- ridge ---------------------------------------------------------------------------------

@pytest.mark.parametrize("with_val", [False, True])
def test_ridge_recovers_coefficients_noise_and_coverage(with_val: bool):
    rng = np.random.default_rng(0)
    X, y = _linear(2000, rng)
    X_val, y_val = _linear(500, rng) if with_val else (None, None)
    probe = RidgeGaussian(REGRESSION, truncate=False).fit(X, y, X_val, y_val)
    np.testing.assert_allclose(probe.coef_, TRUE_W, atol=0.05)
    assert probe.intercept_ == pytest.approx(1.5, abs=0.05)
    assert probe.fitted_params["sigma"] == pytest.approx(0.5, rel=0.10)
    assert probe.fitted_params["alpha_criterion"] == ("validation_nll" if with_val else "gcv")
    X_test, y_test = _linear(5000, rng)
    pred = probe.predict_dist(X_test)
    assert isinstance(pred, Gaussian)
    assert abs(picp(y_test, pred, 0.90) - 0.90) < 0.03
    np.testing.assert_array_equal(probe.predict(X_test), pred.mean)


@pytest.mark.parametrize("n, d", [(8, 3), (5, 12)])
def test_ridge_matches_augmented_closed_form(n: int, d: int):
    """Mean, sigma² and variance against the textbook formulas with an intercept column."""
    rng = np.random.default_rng(1)
    X, y, X_new = rng.normal(size=(n, d)), rng.normal(size=n), rng.normal(size=(4, d))
    alpha = 0.7
    probe = RidgeGaussian(REGRESSION, alphas=[alpha]).fit(X, y)
    ref = Ridge(alpha=alpha).fit(X, y)
    np.testing.assert_allclose(probe.coef_, ref.coef_, atol=1e-10)

    aug = np.column_stack([np.ones(n), X])
    penalty = np.diag([0.0] + [alpha] * d)  # the intercept is not shrunk
    inv = np.linalg.inv(aug.T @ aug + penalty)
    hat = aug @ inv @ aug.T
    sigma2 = np.sum((y - hat @ y) ** 2) / (n - np.trace(hat))
    assert probe.fitted_params["sigma"] ** 2 == pytest.approx(sigma2, rel=1e-9)
    assert probe.fitted_params["effective_dof"] == pytest.approx(np.trace(hat), rel=1e-9)

    aug_new = np.column_stack([np.ones(4), X_new])
    var = sigma2 * (1.0 + np.einsum("ij,jk,ik->i", aug_new, inv, aug_new))
    pred = probe.predict_dist(X_new)
    np.testing.assert_allclose(pred.std**2, var, rtol=1e-9)
    np.testing.assert_allclose(pred.mean, ref.predict(X_new), atol=1e-10)


def test_ridge_validation_alpha_grows_for_pure_noise_features():
    rng = np.random.default_rng(2)
    d = 40
    X, X_val = rng.normal(size=(60, d)), rng.normal(size=(60, d))
    w = rng.normal(size=d)
    signal = RidgeGaussian(REGRESSION).fit(X, X @ w + 0.1 * rng.standard_normal(60),
                                           X_val, X_val @ w + 0.1 * rng.standard_normal(60))
    noise = RidgeGaussian(REGRESSION).fit(X, rng.standard_normal(60),
                                          X_val, rng.standard_normal(60))
    assert signal.fitted_params["alpha"] <= 0.1
    assert noise.fitted_params["alpha"] >= 100.0


def test_ridge_truncates_to_the_target_range():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 3))
    y = np.clip(0.3 + X[:, 0] * 0.4 + 0.3 * rng.standard_normal(300), 0.0, None)
    probe = RidgeGaussian(BOUNDED).fit(X, y)
    X_test = rng.normal(size=(200, 3)) - np.array([2.0, 0.0, 0.0])  # means below 0 included
    pred = probe.predict_dist(X_test)
    assert isinstance(pred, TruncatedNormal)
    lo, hi = pred.interval(0.90)
    assert (lo >= 0.0).all() and (hi <= 8.0).all()
    assert (probe.predict(X_test) > 0.0).all()
    assert (pred.loc < 0.0).any()  # the un-truncated mean would have left the range
    untruncated = RidgeGaussian(BOUNDED, truncate=False).fit(X, y).predict_dist(X_test)
    assert isinstance(untruncated, Gaussian)
    np.testing.assert_allclose(untruncated.mean, pred.loc)


def test_ridge_describe_records_choice():
    rng = np.random.default_rng(4)
    X, y = _linear(100, rng)
    info = RidgeGaussian(REGRESSION, seed=3).fit(X, y).describe()
    assert info["name"] == "ridge" and info["params"]["truncate"] is True
    assert info["fitted_params"]["alpha"] in RidgeGaussian.defaults["alphas"]


# -- logistic ------------------------------------------------------------------------------

@pytest.mark.parametrize("with_val", [False, True])
def test_logistic_separates_blobs(with_val: bool):
    rng = np.random.default_rng(5)
    X, y = _blobs(60, [0, 1, 2, 3], rng)
    X_val, y_val = _blobs(20, [0, 1, 2, 3], rng) if with_val else (None, None)
    probe = LogisticProbe(CLASSES, seed=1).fit(X, y, X_val, y_val)
    X_test, y_test = _blobs(100, [0, 1, 2, 3], rng)
    pred = probe.predict_dist(X_test)
    assert isinstance(pred, ClassProbs) and pred.class_names == CLASSES.class_names
    assert np.mean(pred.point() == y_test) > 0.9
    assert probe.fitted_params["C"] in LogisticProbe.defaults["Cs"]
    expected = "validation_log_loss" if with_val else "cv_log_loss"
    assert probe.fitted_params["C_criterion"] == expected


def test_logistic_columns_line_up_when_a_class_is_missing_from_training():
    rng = np.random.default_rng(6)
    X, y = _blobs(50, [0, 1, 3], rng)  # 'rape' (index 2) never seen
    probe = LogisticProbe(CLASSES).fit(X, y)
    X_test, y_test = _blobs(40, [0, 1, 3], rng)
    pred = probe.predict_dist(X_test)
    assert pred.probs.shape == (120, 4)
    np.testing.assert_array_equal(pred.probs[:, 2], 0.0)
    np.testing.assert_allclose(pred.probs.sum(axis=1), 1.0)
    assert np.mean(pred.point() == y_test) > 0.9  # the 'beet' blob is predicted as index 3
    assert probe.fitted_params["classes_seen"] == [0, 1, 3]


def test_logistic_is_deterministic_for_a_seed():
    rng = np.random.default_rng(7)
    X, y = _blobs(40, [0, 1, 2, 3], rng, spread=2.5)
    X_test, _ = _blobs(10, [0, 1, 2, 3], rng)
    first = LogisticProbe(CLASSES, seed=4).fit(X, y).predict_dist(X_test).probs
    second = LogisticProbe(CLASSES, seed=4).fit(X, y).predict_dist(X_test).probs
    np.testing.assert_array_equal(first, second)


def test_logistic_refuses_bad_labels():
    X = np.zeros((4, 2))
    with pytest.raises(UsageError, match="two classes"):
        LogisticProbe(CLASSES).fit(X, np.zeros(4))
    with pytest.raises(UsageError, match=r"\[0, 4\)"):
        LogisticProbe(CLASSES).fit(X, np.array([0, 1, 2, 7]))
