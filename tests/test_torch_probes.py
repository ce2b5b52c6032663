"""Torch probes batched over seeds, kNN, and temperature scaling."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from sklearn.neighbors import KNeighborsClassifier

from releo_bench.checks import check_probe
from releo_bench.errors import DataError, UsageError
from releo_bench.metrics.classification import ece, log_loss
from releo_bench.metrics.regression import picp, pit_values
from releo_bench.predictions import (ClassProbs, Gaussian, GaussianMixture, Quantiles,
                                     TruncatedNormal)
from releo_bench.probes.base import SeedSplit
from releo_bench.probes.batched import (BatchedAdamW, ClassifierHead, GaussianHead, MLPShape,
                                         QuantileHead)
from releo_bench.probes.deep_ensemble import DeepEnsemble
from releo_bench.probes.knn import KNNProbe
from releo_bench.probes.logistic import LogisticProbe
from releo_bench.probes.mlp_classifier import MLPClassifier
from releo_bench.probes.mlp_gaussian import MLPGaussian
from releo_bench.probes.quantile_mlp import QuantileMLP
from releo_bench.probes.temperature import fit_temperature, softmax
from releo_bench.registries import PROBES
from releo_bench.tasks.base import TargetSpec

REGRESSION = TargetSpec(kind="regression", name="y")
BOUNDED = TargetSpec(kind="regression", name="lai", unit="m2/m2", range=(0.0, 8.0))
CLASSES = TargetSpec(kind="classification", name="crop",
                     class_names=("wheat", "maize", "rape", "beet"))
NEW_PROBES = {"mlp_gaussian": MLPGaussian, "quantile_mlp": QuantileMLP,
              "deep_ensemble": DeepEnsemble, "mlp_classifier": MLPClassifier, "knn": KNNProbe}
SMALL = {"hidden_sizes": [[32]], "epochs": 12, "patience": 4, "batch_size": 64}


def _hetero(n: int, rng: np.random.Generator, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``y = sin(x.w) + N(0, sigma(x)^2)`` with sigma between 0.1 and 0.5 along feature 1."""
    X = rng.standard_normal((n, w.size))
    sigma = 0.1 + 0.4 / (1.0 + np.exp(-2.0 * X[:, 1]))
    return X, np.sin(X @ w) + sigma * rng.standard_normal(n)


@pytest.fixture(scope="module")
def hetero() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    w = rng.normal(size=8) / np.sqrt(8)
    (Xtr, ytr), (Xva, yva), (Xte, yte) = (_hetero(n, rng, w) for n in (3000, 1000, 4000))
    return {"Xtr": Xtr, "ytr": ytr, "Xva": Xva, "yva": yva, "Xte": Xte, "yte": yte}


def _blobs(n_per_class: int, classes: list[int], rng: np.random.Generator,
           spread: float = 1.0, d: int = 6) -> tuple[np.ndarray, np.ndarray]:
    centres = 3.0 * np.eye(d)[:4]
    X = np.concatenate([centres[c] + spread * rng.normal(size=(n_per_class, d))
                        for c in classes])
    return X, np.repeat(np.asarray(classes), n_per_class)


def _pit_max_deviation(pit: np.ndarray) -> float:
    density = np.histogram(pit, bins=10, range=(0.0, 1.0))[0] / (len(pit) / 10)
    return float(np.abs(density - 1.0).max())


# -- registry and contract --------------------------------------------------------------------

def test_registry_resolves_new_probes():
    for name, cls in NEW_PROBES.items():
        assert PROBES.get(name) is cls
        assert cls.name == name


@pytest.mark.parametrize("name", sorted(NEW_PROBES))
def test_new_probes_pass_the_probe_contract(name: str):
    check_probe(NEW_PROBES[name])


@pytest.mark.parametrize("name", ["mlp_gaussian", "quantile_mlp", "deep_ensemble",
                                  "mlp_classifier"])
def test_probe_params_are_checked(name: str):
    target = CLASSES if NEW_PROBES[name].task_kind == "classification" else REGRESSION
    with pytest.raises(UsageError, match="epochs"):
        NEW_PROBES[name](target, epochs=0)
    with pytest.raises(UsageError, match="weight_decays"):
        NEW_PROBES[name](target, weight_decays=[])
    with pytest.raises(UsageError, match="hidden"):
        NEW_PROBES[name](target, hidden_sizes=[[0]])
    with pytest.raises(UsageError, match="dropout"):
        NEW_PROBES[name](target, dropout=0.1)
    with pytest.raises(UsageError, match="fit"):
        NEW_PROBES[name](target).predict(np.zeros((2, 3)))


def test_knn_and_quantile_params_are_checked():
    with pytest.raises(UsageError, match="k must"):
        KNNProbe(CLASSES, k=0)
    with pytest.raises(UsageError, match="weights"):
        KNNProbe(CLASSES, weights="gaussian")
    with pytest.raises(UsageError, match="levels"):
        QuantileMLP(REGRESSION, levels=[0.5, 0.1])
    with pytest.raises(UsageError, match="n_members"):
        DeepEnsemble(REGRESSION, n_members=0)


# -- calibration on heteroscedastic data ------------------------------------------------------

@pytest.mark.parametrize("cls", [MLPGaussian, DeepEnsemble])
def test_gaussian_probes_are_calibrated_on_heteroscedastic_data(cls, hetero):
    probe = cls(REGRESSION, seed=0, hidden_sizes=[[64]]).fit(
        hetero["Xtr"], hetero["ytr"], hetero["Xva"], hetero["yva"])
    pred = probe.predict_dist(hetero["Xte"])
    y = hetero["yte"]
    lo, hi = pred.interval(0.90)
    coverage = float(np.mean((y >= lo) & (y <= hi)))
    assert abs(coverage - 0.90) < 0.03, coverage
    assert _pit_max_deviation(pred.cdf(y)) < 0.3
    # the noise std runs from 0.1 to 0.5 along feature 1: the predicted spread must follow it
    spread = hi - lo
    x1 = hetero["Xte"][:, 1]
    assert spread[x1 > 1.0].mean() > 2.0 * spread[x1 < -1.0].mean()
    rmse = float(np.sqrt(np.mean((pred.point() - y) ** 2)))
    assert rmse < 0.36  # the noise alone gives about 0.32


def test_quantile_mlp_interval_covers_and_quantiles_do_not_cross(hetero):
    probe = QuantileMLP(REGRESSION, seed=1, hidden_sizes=[[64]]).fit(
        hetero["Xtr"], hetero["ytr"], hetero["Xva"], hetero["yva"])
    pred = probe.predict_dist(hetero["Xte"])
    assert isinstance(pred, Quantiles)
    np.testing.assert_allclose(pred.levels, [0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.975])
    assert (np.diff(pred.values, axis=1) > 0).all()
    assert abs(picp(hetero["yte"], pred, 0.90) - 0.90) < 0.04
    assert _pit_max_deviation(pit_values(hetero["yte"], pred)) < 0.3
    assert probe.fitted_params["selection_criterion"] == "validation_pinball"


# -- batched training gives each seed what it gets alone -------------------------------------

def _splits(seeds: list[int], rng: np.random.Generator, *, classify: bool,
            with_val: bool) -> list[SeedSplit]:
    """Different training subsets (and sizes) per seed, features standardised per seed."""
    if classify:
        X, y = _blobs(150, [0, 1, 2, 3], rng, spread=1.5)
    else:
        X, y = _hetero(600, rng, np.linspace(0.5, -0.5, 6))
    test = rng.standard_normal((50, X.shape[1]))
    out = []
    for s in seeds:
        r = np.random.default_rng(100 + s)
        idx = np.sort(r.choice(len(X) - 100, size=300 + 20 * s, replace=False))
        mu, sd = X[idx].mean(0), X[idx].std(0)
        val = slice(len(X) - 100, None)
        out.append(SeedSplit(s, (X[idx] - mu) / sd, y[idx], (test - mu) / sd,
                             (X[val] - mu) / sd if with_val else None,
                             y[val] if with_val else None))
    return out


def _arrays(pred) -> list[np.ndarray]:
    if isinstance(pred, Gaussian):
        return [pred.mean, pred.std]
    if isinstance(pred, GaussianMixture):
        return [pred.means, pred.stds]
    if isinstance(pred, Quantiles):
        return [pred.values]
    return [pred.probs]


@pytest.mark.parametrize("cls, params, classify, with_val", [
    (MLPGaussian, {}, False, True),
    (MLPGaussian, {"hidden_sizes": [[16], [24, 8]]}, False, False),
    (QuantileMLP, {}, False, True),
    (DeepEnsemble, {"n_members": 3}, False, True),
    (MLPClassifier, {"temperature_scaling": True}, True, False),
])
def test_batched_seeds_match_training_alone(cls, params, classify, with_val):
    rng = np.random.default_rng(11)
    splits = _splits([0, 1, 2, 3, 4], rng, classify=classify, with_val=with_val)
    target = CLASSES if classify else REGRESSION
    params = {**SMALL, **params}
    together = cls.fit_seeds(target, splits, **params)
    alone = cls.fit_seeds(target, [splits[3]], **params)[0]
    assert [f.seed for f in together] == [0, 1, 2, 3, 4]
    batched_params, alone_params = dict(together[3].fitted_params), dict(alone.fitted_params)
    for key in ("validation_loss", "temperature"):
        if key in alone_params:
            assert batched_params.pop(key) == pytest.approx(alone_params.pop(key), rel=1e-5)
    assert batched_params == alone_params  # same setting, best epoch, temperature ...
    for a, b in zip(_arrays(together[3].prediction), _arrays(alone.prediction)):
        assert np.max(np.abs(a - b)) <= 1e-4
    # Probe.fit on the same seed is the same computation
    sp = splits[3]
    single = cls(target, seed=3, **params).fit(sp.X_train, sp.y_train, sp.X_val, sp.y_val)
    for a, b in zip(_arrays(single.predict_dist(sp.X_test)), _arrays(alone.prediction)):
        np.testing.assert_array_equal(a, b)
    # the seeds did train differently
    assert np.max(np.abs(_arrays(together[2].prediction)[0]
                         - _arrays(together[3].prediction)[0])) > 1e-3
    n_train = [f.fitted_params["n_train"] for f in together]
    expected = [len(s.y_train) if with_val else len(s.y_train) - round(0.15 * len(s.y_train))
                for s in splits]
    assert n_train == expected


def test_fitted_params_record_the_selection_and_are_json():
    rng = np.random.default_rng(12)
    splits = _splits([0, 1], rng, classify=False, with_val=True)
    fits = DeepEnsemble.fit_seeds(REGRESSION, splits, **SMALL, n_members=2,
                                  weight_decays=[1e-4, 1e-1])
    for f in fits:
        fp = f.fitted_params
        json.dumps(fp)
        assert fp["weight_decay"] in (1e-4, 1e-1) and fp["hidden_sizes"] == [32]
        assert fp["selection_criterion"] == "validation_nll"
        assert len(fp["best_epoch"]) == 2 and all(1 <= e <= 12 for e in fp["best_epoch"])
        assert f.unscaled is None


@pytest.mark.parametrize("fused", [True, False])
def test_member_initialisation_and_batched_adamw(fused: bool):
    """Per-member init is reproducible; an active member follows torch.optim.AdamW (weights
    decayed, biases not); a member left out of a step keeps weights, moments and step count."""
    shape = MLPShape((3, 4, 2))
    torch.testing.assert_close(shape.init(7), shape.init(7), rtol=0, atol=0)
    assert not torch.equal(shape.init(7), shape.init(8))
    flat = torch.stack([shape.init(1), shape.init(2), shape.init(3)])
    refs = []
    for offset, fi, fo in shape.layers:
        refs.append((flat[0, offset:offset + fi * fo].clone().requires_grad_(True),
                     flat[0, offset + fi * fo:offset + fi * fo + fo].clone().requires_grad_(True)))
    torch_opt = torch.optim.AdamW([{"params": [w for w, _ in refs], "weight_decay": 0.1},
                                   {"params": [b for _, b in refs], "weight_decay": 0.0}],
                                  lr=0.01)
    grad = torch.zeros_like(flat)
    opt = BatchedAdamW(flat, grad, shape, 0.01, [0.1, 0.1, 0.5])
    if not fused:
        opt._fused = None
    frozen = flat[1].clone()
    gen = torch.Generator().manual_seed(0)
    for step in range(6):
        grad.copy_(torch.randn(3, shape.n_params, generator=gen))
        opt.step(np.array([True, False, step % 2 == 0]))
        for (w, b), (offset, fi, fo) in zip(refs, shape.layers):
            w.grad = grad[0, offset:offset + fi * fo].clone()
            b.grad = grad[0, offset + fi * fo:offset + fi * fo + fo].clone()
        torch_opt.step()
    expected = torch.cat([torch.cat([w.detach(), b.detach()]) for w, b in refs])
    torch.testing.assert_close(flat[0], expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(flat[1], frozen, rtol=0, atol=0)
    assert float(opt.m[1].abs().max()) == 0.0 and float(opt.steps[1]) == 0.0
    assert float(opt.steps[0]) == 6.0 and float(opt.steps[2]) == 3.0


@pytest.mark.parametrize("head", [GaussianHead(0.5), GaussianHead(0.0),
                                  QuantileHead(np.array([0.1, 0.5, 0.9])), ClassifierHead(4)])
def test_hand_written_gradients_match_autograd(head):
    """MLPShape.backward and the heads' closed-form gradients against torch.autograd."""
    gen = torch.Generator().manual_seed(0)
    shape = MLPShape((5, 7, 6, head.n_out))
    flat = torch.stack([shape.init(1, head.out_bias()), shape.init(2, head.out_bias())])
    x = torch.randn(2, 9, 5, generator=gen)
    y = torch.randint(0, 4, (2, 9), generator=gen) if isinstance(head, ClassifierHead) \
        else torch.randn(2, 9, generator=gen)
    weight = torch.rand(2, 9, generator=gen)
    inputs: list[torch.Tensor] = []
    out = shape.forward(flat, x, inputs)
    grad = torch.zeros_like(flat)
    shape.backward(flat, inputs, head.train_grad(out, y, weight), grad)
    leaf = flat.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad((head.train_loss(shape.forward(leaf, x), y) * weight).sum(),
                                      leaf)
    torch.testing.assert_close(grad, expected, rtol=1e-4, atol=1e-6)


# -- bounded targets -------------------------------------------------------------------------

def test_bounded_targets():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 3))
    y = np.clip(0.3 + 0.6 * X[:, 0] + 0.3 * rng.standard_normal(400), 0.0, None)
    X_test = rng.normal(size=(200, 3)) - np.array([2.0, 0.0, 0.0])
    g = MLPGaussian(BOUNDED, **SMALL).fit(X, y).predict_dist(X_test)
    assert isinstance(g, TruncatedNormal)
    lo, hi = g.interval(0.90)
    assert (lo >= 0.0).all() and (hi <= 8.0).all() and (g.point() > 0.0).all()
    untruncated = MLPGaussian(BOUNDED, truncate=False, **SMALL).fit(X, y).predict_dist(X_test)
    assert isinstance(untruncated, Gaussian)
    np.testing.assert_allclose(untruncated.mean, g.loc)
    q = QuantileMLP(BOUNDED, **SMALL).fit(X, y).predict_dist(X_test)
    assert (q.values >= 0.0).all() and (q.values <= 8.0).all()
    assert (np.diff(q.values, axis=1) >= 0).all()
    assert (q.values[:, 0] == 0.0).any()  # some low quantiles were clipped to the bound
    mix = DeepEnsemble(BOUNDED, n_members=2, **SMALL).fit(X, y).predict_dist(X_test)
    assert isinstance(mix, GaussianMixture)  # documented: not truncated


# -- classification --------------------------------------------------------------------------

def test_mlp_classifier_covers_classes_missing_from_training():
    rng = np.random.default_rng(6)
    X, y = _blobs(60, [0, 1, 3], rng)
    probe = MLPClassifier(CLASSES, seed=2, hidden_sizes=[[64]]).fit(X, y)
    X_test, y_test = _blobs(40, [0, 1, 3], rng)
    pred = probe.predict_dist(X_test)
    assert isinstance(pred, ClassProbs) and pred.probs.shape == (120, 4)
    assert pred.class_names == CLASSES.class_names
    assert pred.probs[:, 2].mean() < 0.02 and (pred.probs > 0).all()
    assert np.mean(pred.point() == y_test) > 0.9
    assert probe.fitted_params["selection_criterion"] == "holdout_log_loss"
    assert probe.unscaled_dist(X_test) is None


def test_fit_temperature_recovers_the_scaling_of_overconfident_logits():
    rng = np.random.default_rng(8)
    logits = rng.normal(0.0, 1.5, size=(5000, 5))
    y = np.array([rng.choice(5, p=p) for p in softmax(logits)])
    assert fit_temperature(5.0 * logits, y) == pytest.approx(5.0, rel=0.08)
    assert fit_temperature(logits, y) == pytest.approx(1.0, rel=0.08)
    over = ClassProbs(softmax(5.0 * logits), tuple("abcde"))
    fixed = ClassProbs(softmax(5.0 * logits, fit_temperature(5.0 * logits, y)), tuple("abcde"))
    assert ece(y, fixed) < 0.5 * ece(y, over)
    np.testing.assert_array_equal(fixed.point(), over.point())


def _overfit_problem(rng: np.random.Generator):
    X, y = _blobs(15, [0, 1, 2, 3], rng, spread=2.2, d=20)
    X_val, y_val = _blobs(100, [0, 1, 2, 3], rng, spread=2.2, d=20)
    X_test, y_test = _blobs(300, [0, 1, 2, 3], rng, spread=2.2, d=20)
    return X, y, X_val, y_val, X_test, y_test


def test_temperature_scaling_lowers_ece_of_an_overfitted_mlp():
    X, y, X_val, y_val, X_test, y_test = _overfit_problem(np.random.default_rng(9))
    # no weight decay, no early stopping, the last epoch's weights: 60 samples, a wide
    # network, many epochs
    params = {"hidden_sizes": [[256]], "weight_decays": [0.0], "epochs": 200,
              "patience": None, "restore_best": False, "batch_size": 16, "lr": 3e-3,
              "temperature_scaling": True}
    probe = MLPClassifier(CLASSES, seed=0, **params).fit(X, y, X_val, y_val)
    scaled, unscaled = probe.predict_dist(X_test), probe.unscaled_dist(X_test)
    assert probe.fitted_params["temperature"] > 1.5
    assert ece(y_test, scaled) < 0.7 * ece(y_test, unscaled)
    assert log_loss(y_test, scaled) < log_loss(y_test, unscaled)
    np.testing.assert_array_equal(scaled.point(), unscaled.point())
    split = SeedSplit(0, X, y, X_test, X_val, y_val)
    fit = MLPClassifier.fit_seeds(CLASSES, [split], **params)[0]
    np.testing.assert_array_equal(fit.prediction.probs, scaled.probs)
    np.testing.assert_array_equal(fit.unscaled.probs, unscaled.probs)
    assert fit.fitted_params["temperature"] == probe.fitted_params["temperature"]


@pytest.mark.parametrize("with_val", [True, False])
def test_logistic_temperature_scaling(with_val: bool):
    X, y, X_val, y_val, X_test, y_test = _overfit_problem(np.random.default_rng(10))
    if not with_val:
        X, y = np.concatenate([X, X_val[:60]]), np.concatenate([y, y_val[:60]])
        X_val = y_val = None
    plain = LogisticProbe(CLASSES, Cs=[1e4]).fit(X, y, X_val, y_val)
    probe = LogisticProbe(CLASSES, Cs=[1e4], temperature_scaling=True).fit(X, y, X_val, y_val)
    assert "temperature" not in plain.fitted_params and plain.unscaled_dist(X_test) is None
    t = probe.fitted_params["temperature"]
    assert t > 1.0
    scaled, unscaled = probe.predict_dist(X_test), probe.unscaled_dist(X_test)
    np.testing.assert_allclose(unscaled.probs, plain.predict_dist(X_test).probs)
    assert ece(y_test, scaled) < ece(y_test, unscaled)
    fit = LogisticProbe.fit_seeds(CLASSES, [SeedSplit(0, X, y, X_test, X_val, y_val)],
                                  Cs=[1e4], temperature_scaling=True)[0]
    np.testing.assert_allclose(fit.unscaled.probs, unscaled.probs)
    assert fit.fitted_params["temperature"] == t


def test_logistic_temperature_keeps_a_class_missing_from_training_at_zero():
    rng = np.random.default_rng(13)
    X, y = _blobs(40, [0, 1, 3], rng, spread=1.5)
    X_val, y_val = _blobs(20, [0, 1, 2, 3], rng, spread=1.5)  # val has the unseen class
    probe = LogisticProbe(CLASSES, temperature_scaling=True).fit(X, y, X_val, y_val)
    assert np.isfinite(probe.fitted_params["temperature"])
    pred = probe.predict_dist(X_val)
    np.testing.assert_array_equal(pred.probs[:, 2], 0.0)
    np.testing.assert_allclose(pred.probs.sum(axis=1), 1.0)


# -- kNN -------------------------------------------------------------------------------------

@pytest.mark.parametrize("weights", ["uniform", "distance"])
def test_knn_matches_sklearn_before_smoothing(weights: str):
    rng = np.random.default_rng(14)
    X, y = _blobs(50, [0, 1, 2, 3], rng, spread=2.0)
    X_test, y_test = _blobs(30, [0, 1, 2, 3], rng, spread=2.0)
    ref = KNeighborsClassifier(n_neighbors=15, weights=weights).fit(X, y).predict_proba(X_test)
    probe = KNNProbe(CLASSES, weights=weights).fit(X, y)
    np.testing.assert_allclose(probe.raw_proba(X_test), ref, atol=1e-12)
    raw = KNNProbe(CLASSES, weights=weights, smoothing=0.0).fit(X, y).predict_dist(X_test)
    np.testing.assert_allclose(raw.probs, ref, atol=1e-12)
    pred = probe.predict_dist(X_test)
    np.testing.assert_allclose(pred.probs, (15 * ref + 0.1) / (15 + 4 * 0.1))
    assert (pred.probs > 0).all() and np.isfinite(log_loss(y_test, pred))


def test_knn_missing_class_and_small_training_set():
    rng = np.random.default_rng(15)
    X, y = _blobs(3, [0, 3], rng)  # 6 rows, fewer than k
    probe = KNNProbe(CLASSES).fit(X, y)
    assert probe.fitted_params == {"k": 6, "classes_seen": [0, 3]}
    pred = probe.predict_dist(_blobs(5, [1, 2], rng)[0])
    assert pred.probs.shape == (10, 4)
    np.testing.assert_allclose(pred.probs[:, 1], 0.1 / (6 + 0.4))
    with pytest.raises(DataError, match="class indices"):
        KNNProbe(CLASSES).fit(X, y + 4)


# -- presets ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [*sorted(NEW_PROBES), "logistic", "linear_classifier"])
def test_probe_presets_hold_the_defaults(name: str):
    """configs/probes/<name>.yaml: the probe's defaults, so that the preset does not drift."""
    path = Path(__file__).resolve().parent.parent / "configs" / "probes" / f"{name}.yaml"
    preset = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert preset["probe"] == name
    cls = PROBES.get(name)
    assert json.loads(json.dumps(preset["params"])) == json.loads(json.dumps(cls.defaults))
    cls(CLASSES if cls.task_kind == "classification" else REGRESSION, **preset["params"])


def test_linear_classifier_matches_the_logistic_probe():
    """The batched linear probe is multinomial logistic regression: on separable-ish blobs it
    agrees with the scikit-learn `logistic` probe on nearly every test row."""
    from releo_bench.checks import synthetic_problem
    from releo_bench.probes.linear_classifier import LinearClassifier
    from releo_bench.probes.logistic import LogisticProbe

    X, y, target = synthetic_problem("classification")
    tr, va, te = slice(0, 180), slice(180, 220), slice(220, None)
    lin = LinearClassifier(target, seed=0).fit(X[tr], y[tr], X[va], y[va])
    log = LogisticProbe(target, seed=0).fit(X[tr], y[tr], X[va], y[va])
    agree = np.mean(lin.predict(X[te]) == log.predict(X[te]))
    assert agree >= 0.9
    assert lin.fitted_params["hidden_sizes"] == []
