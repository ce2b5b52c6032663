"""Contract checks for every component, in the spirit of scikit-learn's ``check_estimator``.

The test suite runs them over every registered encoder, task, probe and metric, so they grow
with the registries; plug-in authors can run them on their own components::

    from releo_bench.checks import check_encoder
    check_encoder(MyEncoder())

Each check raises ``AssertionError`` with a message naming the component and what broke.
"""

from __future__ import annotations



import numpy as np
import torch

from .batch import EOBatch, Modality
from .encoders.adapt import encode_batch
from .encoders.base import Encoder, EncoderMeta
from .errors import UsageError
from .metrics.base import Metric
from .predictions import (CLASSIFICATION_KINDS, REGRESSION_KINDS, ClassProbs, Gaussian, GaussianMixture, Point, Prediction, Quantiles, Samples,
                          TruncatedNormal)
from .probes.base import Probe
from .tasks.base import Task, TargetSpec
from .units import UNITS

# Plausible ranges per unit, for synthetic inputs in the unit an encoder declares.
_UNIT_RANGES = {"reflectance": (0.0, 0.5), "reflectance_x10000": (0.0, 5000.0),
                "reflectance_x10000_offset1000": (1000.0, 6000.0), "linear": (0.001, 0.3),
                "dB": (-25.0, -5.0), "degree": (0.0, 60.0), "radian": (0.0, 1.0),
                "index": (-0.2, 0.9), "probability": (0.0, 1.0), "percent": (0.0, 100.0),
                "m": (0.0, 2000.0), "K": (260.0, 310.0), "degC": (-10.0, 35.0), "mm": (0.0, 20.0),
                "dimensionless": (0.0, 1.0)}


def synthetic_batch(meta: EncoderMeta, n: int = 3, seed: int = 0, size: int | None = None) -> EOBatch:
    """Random irregular series in the bands and units ``meta`` declares: different lengths per
    sample (padded), a few masked observations, patches of ``meta.min_patch_size`` pixels."""
    rng = np.random.default_rng(seed)
    hw = size or meta.min_patch_size
    mods = {}
    for name, spec in meta.modalities.items():
        lengths = [6 + 3 * (i % 3) for i in range(n)]
        t = max(lengths)
        lo = np.array([_UNIT_RANGES[u][0] for u in spec.units])[None, None, :, None, None]
        hi = np.array([_UNIT_RANGES[u][1] for u in spec.units])[None, None, :, None, None]
        values = lo + (hi - lo) * rng.random((n, t, len(spec.bands), hw, hw))
        dates = np.full((n, t), np.datetime64("NaT"), dtype="datetime64[D]")
        mask = np.zeros((n, t, hw, hw), dtype=bool)
        for i, length in enumerate(lengths):
            steps = np.sort(rng.choice(np.arange(1, 300), size=length, replace=False))
            dates[i, :length] = np.datetime64("2021-01-01") + steps.astype("timedelta64[D]")
            mask[i, :length] = True
            mask[i, 1] = False  # one cloudy date per sample
        values[~np.broadcast_to(mask[:, :, None], values.shape)] = 0.0
        mods[name] = Modality(torch.from_numpy(values.astype(np.float32)), dates,
                              torch.from_numpy(mask), spec.bands, spec.units)
    return EOBatch(mods, tuple(f"s{i}" for i in range(n)))


def _close(a: torch.Tensor, b: torch.Tensor, what: str, name: str, atol: float = 1e-4) -> None:
    diff = (a - b).abs().max().item() if a.numel() else 0.0
    assert a.shape == b.shape and diff <= atol * (1 + b.abs().max().item()), \
        f"encoder {name!r}: {what} (max abs difference {diff:.3g})"


def check_encoder(encoder: Encoder) -> None:
    """Metadata is complete; ``encode`` gives declared shapes, finite values, and is
    deterministic, batch-independent, and blind to padding and to masked observations."""
    meta = encoder.meta
    name = meta.name
    assert isinstance(meta, EncoderMeta), f"encoder {name!r}: meta must be an EncoderMeta"
    for field in ("name", "version", "licence", "citation", "description"):
        assert getattr(meta, field), f"encoder {name!r}: metadata field {field!r} is empty"
    assert meta.modalities, f"encoder {name!r}: declares no modality"
    for mod, spec in meta.modalities.items():
        for band, unit in zip(spec.bands, spec.units):
            assert unit in UNITS, f"encoder {name!r}: band {band!r} of {mod!r} has unknown unit {unit!r}"
    if meta.weights.kind not in ("none",):
        assert meta.weights.sha256, f"encoder {name!r}: weights of kind {meta.weights.kind!r} need a sha256"

    batch = synthetic_batch(meta, n=3)
    first = encode_batch(encoder, batch)
    again = encode_batch(encoder, batch)
    _close(first.features, again.features, "two encodings of the same batch differ", name, 0.0)
    # batch independence: sample 2 alone equals sample 2 in the batch
    alone = encode_batch(encoder, batch.index([2]))
    _close(alone.features, first.features[2:3, : alone.features.shape[1]] if meta.output == "per_date"
           else first.features[2:3], "a sample's embedding depends on the other samples of its batch", name)
    # masked observations must not leak: change their values, output must not move
    noisy = {}
    for mod_name, mod in batch.modalities.items():
        invalid = ~mod.mask.unsqueeze(2).expand_as(mod.values)
        values = torch.where(invalid, torch.full_like(mod.values, 123.0), mod.values)
        noisy[mod_name] = Modality(values, mod.dates, mod.mask, mod.bands, mod.units)
    masked = encode_batch(encoder, EOBatch(noisy, batch.sample_ids))
    _close(masked.features, first.features, "values of masked (cloudy or padded) observations "
           "change the embedding", name)


def check_task(task: Task) -> None:
    """Splits load; targets match the target spec; the content hash is stable; spatial groups
    (when given) never cross the train / test boundary."""
    meta = task.meta
    name = meta.name
    if getattr(task, "needs_user_data", False) and not task.has_data:  # e.g. `custom` with no --data
        for split in meta.splits:
            try:
                task.load(split)
            except UsageError:
                continue
            raise AssertionError(f"task {name!r}: load without user data must raise a UsageError")
        return
    groups: dict[str, set[str]] = {}
    for split in meta.splits:
        data = task.load(split)
        assert len(data) > 0, f"task {name!r}: split {split!r} is empty"
        assert set(data.batch.modalities) >= set(meta.modalities), \
            f"task {name!r}: split {split!r} lacks modalities {set(meta.modalities) - set(data.batch.modalities)}"
        y = np.asarray(data.target)
        if meta.target.kind == "regression":
            assert np.isfinite(y).all(), f"task {name!r}: non-finite regression targets in {split!r}"
            if meta.target.range is not None:
                lo, hi = meta.target.range
                assert ((y >= lo) & (y <= hi)).all(), f"task {name!r}: targets outside {meta.target.range}"
        else:
            k = len(meta.target.class_names or ())
            assert np.issubdtype(y.dtype, np.integer) and y.min() >= 0 and y.max() < k, \
                f"task {name!r}: class targets must be integers in [0, {k})"
        assert data.content_hash() == task.load(split).content_hash(), \
            f"task {name!r}: loading split {split!r} twice gives different data"
        if data.groups is not None:
            groups[split] = set(np.asarray(data.groups).astype(str).tolist())
    if "train" in groups and "test" in groups:
        shared = groups["train"] & groups["test"]
        assert not shared, f"task {name!r}: spatial groups in both train and test: {sorted(shared)[:5]}"
    with_bad = "no-such-split"
    try:
        task.load(with_bad)
    except UsageError:
        pass
    else:
        raise AssertionError(f"task {name!r}: loading an unknown split must raise a UsageError")


def synthetic_problem(kind: str, n: int = 300, d: int = 6, seed: int = 0
                      ) -> tuple[np.ndarray, np.ndarray, TargetSpec]:
    """Standardised features and targets with a learnable, noisy relation."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    if kind == "regression":
        y = 3.0 + X @ np.linspace(1.0, -0.5, d) + 0.5 * rng.standard_normal(n)
        return X, y, TargetSpec(kind="regression", name="y", unit="1")
    logits = X[:, :3] * 3.0
    y = logits.argmax(axis=1)
    return X, y, TargetSpec(kind="classification", name="c", class_names=("a", "b", "c"))


def check_probe(probe_cls: type[Probe]) -> None:
    """Fits, predicts a distribution of an allowed kind, is deterministic per seed, and learns."""
    name = probe_cls.name
    kind = probe_cls.task_kind
    X, y, target = synthetic_problem(kind)
    tr, va, te = slice(0, 180), slice(180, 220), slice(220, 300)
    preds = []
    for _ in range(2):
        probe = probe_cls(target, seed=3)
        probe.fit(X[tr], y[tr], X[va], y[va])
        preds.append(probe.predict_dist(X[te]))
    p = preds[0]
    allowed = CLASSIFICATION_KINDS if kind == "classification" else \
        tuple(k for k in REGRESSION_KINDS if k != "point")  # a probe predicts a distribution
    assert p.kind in allowed, f"probe {name!r}: predict_dist returned {p.kind!r}, expected one of {allowed}"
    assert len(p) == 80, f"probe {name!r}: {len(p)} predictions for 80 rows"
    np.testing.assert_allclose(probe.predict(X[te]), p.point(),
                               err_msg=f"probe {name!r}: predict disagrees with predict_dist")
    np.testing.assert_allclose(preds[1].point(), p.point(),
                               err_msg=f"probe {name!r}: same seed, different predictions")
    if kind == "regression":
        rmse = float(np.sqrt(np.mean((p.point() - y[te]) ** 2)))
        assert rmse < 0.5 * float(np.std(y[te])), f"probe {name!r}: does not learn (RMSE {rmse:.3f})"
    else:
        acc = float(np.mean(p.point() == y[te]))
        assert acc > 0.75, f"probe {name!r}: does not learn (accuracy {acc:.3f})"
    desc = probe.describe()
    assert desc["name"] == name and isinstance(desc["params"], dict)


def _regression_pair(kind: str, rng: np.random.Generator, n: int = 400,
                     overconfident: bool = False) -> tuple[np.ndarray, Prediction, Prediction]:
    """Targets, a calibrated prediction, and a shifted, too-wide one (worse on every count but
    coverage, which a wide interval can reach by chance) or, with ``overconfident``, a shifted,
    too-narrow one (for coverage metrics)."""
    mu = rng.normal(5.0, 2.0, n)
    y = mu + rng.standard_normal(n)
    bad_scale = 0.3 if overconfident else 3.0
    good_m, good_s, bad_m, bad_s = mu, np.ones(n), mu + 2.0, bad_scale * np.ones(n)

    def make(m: np.ndarray, s: np.ndarray) -> Prediction:
        if kind == "gaussian":
            return Gaussian(m, s)
        if kind == "truncated_normal":
            return TruncatedNormal(m, s, low=-50.0, high=np.inf)
        if kind == "quantiles":
            levels = np.linspace(0.025, 0.975, 39)
            from scipy import stats
            return Quantiles(levels, m[:, None] + s[:, None] * stats.norm.ppf(levels)[None])
        if kind == "samples":
            return Samples(m[:, None] + s[:, None] * rng.standard_normal((n, 200)))
        if kind == "gaussian_mixture":  # three members whose mixture has mean m and std s
            offsets = np.array([-0.5, 0.0, 0.5])
            return GaussianMixture(m[:, None] + s[:, None] * offsets,
                                   np.repeat((s * np.sqrt(5.0 / 6.0))[:, None], 3, axis=1),
                                   np.full(3, 1.0 / 3.0))
        return Point(m)

    return y, make(good_m, good_s), make(bad_m, bad_s)


def check_metric(metric: Metric) -> None:
    """A finite number for every accepted prediction kind, that prefers a calibrated, accurate
    prediction to a biased, miscalibrated one, and a refusal of the other kinds."""
    name = metric.name
    assert metric.direction in ("higher", "lower", "zero", "target"), f"metric {name!r}: bad direction"
    assert metric.accepts, f"metric {name!r}: accepts no prediction kind"
    rng = np.random.default_rng(0)
    for kind in metric.accepts:
        if metric.task_kind == "classification":
            n, k = 600, 3
            logits = rng.normal(0, 2.0, (n, k))
            probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
            y = np.array([rng.choice(k, p=p) for p in probs])
            good: Prediction = ClassProbs(probs, ("a", "b", "c"))
            bad: Prediction = ClassProbs(np.roll(probs, 1, axis=1) ** 3 / (np.roll(probs, 1, axis=1) ** 3).sum(1, keepdims=True),
                                         ("a", "b", "c"))
        else:
            y, good, bad = _regression_pair(kind, rng, overconfident=metric.direction == "target")
        g, b = metric(y, good), metric(y, bad)
        assert np.isfinite(g) and np.isfinite(b), f"metric {name!r} on {kind!r}: not finite ({g}, {b})"
        ideal = metric.ideal if metric.ideal is not None else 0.0
        better = {"higher": g > b, "lower": g < b, "zero": abs(g) < abs(b),
                  "target": abs(g - ideal) < abs(b - ideal)}[metric.direction]
        assert better, (f"metric {name!r} ({metric.direction} is better) on {kind!r}: scores a "
                        f"calibrated prediction {g:.4g} and a biased one {b:.4g}")
        if metric.decomposable:  # the fast bootstrap path must agree with the metric itself
            for pred, value in ((good, g), (bad, b)):
                via_mean = float(metric.from_mean(metric.per_sample(y, pred).mean(axis=0)))
                assert np.isclose(via_mean, value, rtol=1e-9, atol=1e-12), (
                    f"metric {name!r} on {kind!r}: finalize(mean(pointwise)) = {via_mean!r} "
                    f"but the metric is {value!r}")
    other: Prediction = Point(np.zeros(3)) if metric.task_kind == "classification" else \
        ClassProbs(np.full((3, 2), 0.5), ("a", "b"))
    if other.kind not in metric.accepts:
        try:
            metric(np.zeros(3), other)
        except UsageError:
            pass
        else:
            raise AssertionError(f"metric {name!r}: accepted a {other.kind!r} prediction it does not declare")


__all__ = ["check_encoder", "check_task", "check_probe", "check_metric", "synthetic_batch",
           "synthetic_problem"]
