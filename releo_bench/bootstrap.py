"""Bootstrap confidence intervals for metric values: over seeds and over test samples.

Two sources of uncertainty are reported separately:

* **over seeds** (:func:`bootstrap_over_seeds`): how much the score moves when the probe (or
  encoder) is trained again with another seed, the test set held fixed;
* **over test samples** (:func:`bootstrap_over_samples`): how much the seed-averaged score
  would move with another test set drawn from the same population. Test samples are
  resampled with replacement, or, when ``groups`` is given, whole groups (fields, tiles,
  sites) are resampled: a *cluster* bootstrap, which stays honest when samples of one group
  are correlated (neighbouring pixels of one field are not independent evidence).

Both are **percentile** intervals: the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles
(numpy's default linear interpolation) of the replicate values. No bias correction (BCa) is
applied, so for strongly skewed statistics on small test sets the interval may be somewhat
off-centre. Everything is deterministic given ``seed`` (a :class:`numpy.random.Generator`).

A metric that declares ``pointwise`` / ``finalize`` (:attr:`Metric.decomposable`) is
bootstrapped as a count-matrix product: per-sample values (``[N]`` or vectors ``[N, M]``)
are computed once per seed and each replicate is ``finalize(counts @ values / counts.sum())``,
``finalize`` being called once per chunk of replicates on means ``[b, seeds(, M)]``. The
values of all seeds sit side by side in one sparse matrix (one-hot statistics such as
confusion cells or calibration bins cost one entry per sample, not ``M``), multiplied with a
dense count matrix ``[units, b]`` per chunk; non-finite values are added only to the
replicates that draw them. Other metrics are recomputed on ``prediction.take(idx)`` for every
replicate. Both paths use the same draws and agree to floating-point round-off.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

from .errors import UsageError
from .metrics.base import Metric
from .predictions import Prediction
from .stats import mean_ci

# draws per chunk of replicates (chunk rows x units): bounds memory to a few tens of MB
_CHUNK_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class Interval:
    """A confidence interval and how it was obtained.

    ``n_boot`` replicates were drawn, ``n_valid`` of them gave a defined (non-NaN) value;
    the others are dropped (:attr:`n_dropped`) before taking percentiles.
    """

    low: float
    high: float
    method: str
    level: float = 0.95
    n_boot: int = 0
    n_valid: int = 0

    @property
    def n_dropped(self) -> int:
        return self.n_boot - self.n_valid


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise UsageError(f"confidence level must be in (0, 1), got {level}")


def _check_n_boot(n_boot: int) -> None:
    if int(n_boot) != n_boot or n_boot < 1:
        raise UsageError(f"n_boot must be a positive integer, got {n_boot}")


def _percentile(replicates: np.ndarray, level: float) -> tuple[float, float, int]:
    """Percentile interval of the defined replicates, and how many there were."""
    valid = replicates[~np.isnan(replicates)]
    if valid.size == 0:
        return float("nan"), float("nan"), 0
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(valid, [tail, 1.0 - tail])
    return float(low), float(high), int(valid.size)


def bootstrap_over_seeds(values: Sequence[float] | np.ndarray, n_boot: int = 10000,
                         level: float = 0.95, seed: int = 0) -> Interval:
    """Percentile bootstrap interval of the mean of per-seed ``values``.

    Non-finite values are ignored (as in :func:`releo_bench.stats.mean_ci`). With one value
    the interval is the value itself; with none it is NaN.

    With only 2-3 seeds the bootstrap distribution has at most 3 / 10 distinct means and
    never reaches beyond the observed extremes, so the interval is *narrow* (it
    under-covers). The Student-t interval of :func:`releo_bench.stats.mean_ci` is the
    conservative alternative there; see :func:`seed_interval_t`.
    """
    _check_level(level)
    _check_n_boot(n_boot)
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    n = int(v.size)
    method = "percentile bootstrap over seeds"
    if n == 0:
        return Interval(float("nan"), float("nan"), method, level, 0, 0)
    if n == 1:
        return Interval(float(v[0]), float(v[0]), method + " (single seed: the value itself)",
                        level, 0, 0)
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    chunk = max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        means[start:stop] = v[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    low, high, n_valid = _percentile(means, level)
    return Interval(low, high, method, level, int(n_boot), n_valid)


def seed_interval_t(values: Sequence[float] | np.ndarray, level: float = 0.95) -> Interval:
    """The Student-t interval of the mean over seeds (:func:`stats.mean_ci`) as an Interval."""
    s = mean_ci(values, level)
    return Interval(s.ci_low, s.ci_high, "Student-t over seeds", level, 0, 0)


# -- over test samples ------------------------------------------------------------------------

@dataclass(frozen=True)
class _Units:
    """What is resampled: single samples (``groups is None``) or whole groups."""

    n_samples: int
    n_units: int
    order: np.ndarray | None = None  # sample indices sorted by group
    starts: np.ndarray | None = None  # group g's samples are order[starts[g]:starts[g]+sizes[g]]
    sizes: np.ndarray | None = None
    inverse: np.ndarray | None = None  # group of each sample (0..n_units-1)

    @classmethod
    def build(cls, n_samples: int, groups: np.ndarray | None) -> "_Units":
        if groups is None:
            return cls(n_samples, n_samples)
        g = np.asarray(groups)
        if g.ndim != 1 or g.shape[0] != n_samples:
            raise UsageError(f"groups must be 1-D with one label per test sample ({n_samples}), "
                             f"got shape {g.shape}")
        _, inverse = np.unique(g, return_inverse=True)
        inverse = inverse.ravel()
        order = np.argsort(inverse, kind="stable")
        sizes = np.bincount(inverse)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        return cls(n_samples, int(sizes.size), order, starts, sizes, inverse)

    @property
    def grouped(self) -> bool:
        return self.order is not None

    def indices(self, drawn: np.ndarray) -> np.ndarray:
        """Test-sample indices of one replicate from its drawn units."""
        if not self.grouped:
            return drawn
        sizes = self.sizes[drawn]
        offsets = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        return self.order[np.repeat(self.starts[drawn], sizes) + offsets]


def _draw_chunks(rng: np.random.Generator, n_units: int, n_boot: int
                 ) -> Iterator[np.ndarray]:
    """Drawn unit indices ``[b, n_units]`` for successive chunks of replicates.

    Both bootstrap paths consume exactly these draws, so they see the same replicates.
    """
    dtype = np.int32 if n_units < 2**31 else np.int64
    chunk = max(1, min(n_boot, _CHUNK_ELEMENTS // n_units))
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        yield rng.integers(0, n_units, size=(b, n_units), dtype=dtype)


def _finalize(metric: Metric, means: np.ndarray) -> np.ndarray:
    """``metric.from_mean`` on means ``[b, S]`` (scalar) or ``[b, S, M]`` (vector) -> ``[b, S]``.

    One vectorised call (see :mod:`releo_bench.metrics.base`); row by row when ``finalize``
    only takes one mean at a time.
    """
    lead = means.shape[:2]
    try:
        out = np.asarray(metric.from_mean(means), dtype=np.float64)
        if out.shape == lead:
            return out
    except (TypeError, ValueError, IndexError):
        pass
    flat = means.reshape((-1,) + means.shape[2:])
    return np.array([float(metric.from_mean(m if m.ndim else float(m)))
                     for m in flat]).reshape(lead)


@dataclass(frozen=True)
class _UnitValues:
    """Per-unit sums of every seed's per-sample values, ready for the count product.

    ``finite`` is ``[S * M + 1, n_units]`` (CSR; non-finite entries removed), its last row the
    number of samples per unit; each non-finite sum ``values[k]`` sits in row ``rows[k]``
    for unit ``units[k]`` and is added only to the replicates that draw that unit.
    """

    finite: Any  # scipy.sparse.csr_matrix
    rows: np.ndarray
    units: np.ndarray
    values: np.ndarray
    n_seeds: int
    width: int  # M, or 0 for scalar per-sample values

    @classmethod
    def build(cls, metric: Metric, y: np.ndarray, predictions: Sequence[Prediction],
              units: _Units) -> "_UnitValues":
        from scipy import sparse

        n = units.n_samples
        blocks, width = [], None
        for p in predictions:
            v = metric.per_sample(y, p)
            if v.ndim not in (1, 2) or v.shape[0] != n:
                raise UsageError(f"metric {metric.name!r}: pointwise gave shape {v.shape} for "
                                 f"{n} samples (expected [{n}] or [{n}, M])")
            m = 0 if v.ndim == 1 else v.shape[1]
            if width is not None and m != width:
                raise UsageError(f"metric {metric.name!r}: pointwise gave {m} and {width} "
                                 "values per sample for two predictions")
            width = m
            blocks.append(sparse.csr_matrix(v.reshape(n, -1)))  # drops zeros: one-hots stay small
        blocks.append(sparse.csr_matrix(np.ones((n, 1))))
        values = sparse.hstack(blocks, format="csr")  # [N, S * M + 1]
        if units.grouped:
            member = sparse.csr_matrix((np.ones(n), (units.inverse, np.arange(n))),
                                       shape=(units.n_units, n))
            values = (member @ values).tocsr()
        table = values.T.tocsr()  # [S * M + 1, n_units]
        table.sum_duplicates()
        bad = ~np.isfinite(table.data)
        rows = np.repeat(np.arange(table.shape[0]), np.diff(table.indptr))[bad]
        cols, kept = table.indices[bad], table.data[bad]
        if bad.any():
            table.data[bad] = 0.0
            table.eliminate_zeros()
        return cls(table, rows, cols, kept, len(predictions), int(width or 0))

    def means(self, counts: np.ndarray) -> np.ndarray:
        """Replicate means ``[b, S]`` or ``[b, S, M]`` from unit counts ``[n_units, b]``."""
        sums = self.finite @ counts  # [S * M + 1, b]
        if self.values.size:
            drawn = counts[self.units] > 0  # [n_bad, b]
            np.add.at(sums, self.rows, np.where(drawn, self.values[:, None], 0.0))
        means = (sums[:-1] / sums[-1]).T  # [b, S * M]
        shape = (means.shape[0], self.n_seeds) + ((self.width,) if self.width else ())
        return np.ascontiguousarray(means).reshape(shape)


def _unit_counts(drawn: np.ndarray, n_units: int) -> np.ndarray:
    """How often each unit is drawn in each replicate: ``[n_units, b]`` float64."""
    b = drawn.shape[0]
    # counting row by row (replicate-major) keeps the scattered increments within one row
    flat = drawn + (np.arange(b, dtype=np.int64) * n_units)[:, None]
    counts = np.bincount(flat.ravel(), minlength=b * n_units).reshape(b, n_units)
    del flat
    return np.ascontiguousarray(counts.T, dtype=np.float64)


def _replicates_fast(metric: Metric, y: np.ndarray, predictions: Sequence[Prediction],
                     units: _Units, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    table = _UnitValues.build(metric, y, predictions, units)
    out = np.empty(n_boot)
    start = 0
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        for drawn in _draw_chunks(rng, units.n_units, n_boot):
            b = drawn.shape[0]
            per_seed = _finalize(metric, table.means(_unit_counts(drawn, units.n_units)))
            out[start:start + b] = per_seed.mean(axis=1)
            start += b
    return out


def _replicates_slow(metric: Metric, y: np.ndarray, predictions: Sequence[Prediction],
                     units: _Units, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    out = np.empty(n_boot)
    r = 0
    with warnings.catch_warnings():
        # e.g. scikit-learn warning about a class absent from a replicate: such replicates
        # come back NaN and are counted as dropped instead
        warnings.simplefilter("ignore")
        for drawn in _draw_chunks(rng, units.n_units, n_boot):
            for row in drawn:
                idx = units.indices(row)
                y_b = y[idx]
                out[r] = np.mean([metric(y_b, p.take(idx)) for p in predictions])
                r += 1
    return out


def _check_inputs(metric: Metric, y: np.ndarray, predictions: Sequence[Prediction]) -> None:
    if not isinstance(predictions, (list, tuple)) or not predictions:
        raise UsageError("predictions must be a non-empty list with one prediction per seed")
    if y.ndim != 1:
        raise UsageError(f"y_true must be 1-D, got shape {y.shape}")
    if y.shape[0] == 0:
        raise UsageError("cannot bootstrap an empty test set")
    for i, p in enumerate(predictions):
        if len(p) != y.shape[0]:
            raise UsageError(f"prediction {i} has {len(p)} samples for {y.shape[0]} targets "
                             "(all seeds must be scored on the same test set)")
        if not metric.applies_to(p):
            raise UsageError(f"metric {metric.name!r} accepts predictions of kind "
                             f"{list(metric.accepts)}, got {p.kind!r} (prediction {i})")


def bootstrap_over_samples(metric: Metric, y: np.ndarray, predictions: Sequence[Prediction],
                           groups: np.ndarray | None = None, n_boot: int = 1000,
                           level: float = 0.95, seed: int = 0) -> Interval:
    """Percentile interval of the seed-averaged ``metric`` due to test-sample sampling.

    ``predictions`` holds one prediction per seed, all on the same test set ``y``. Each
    replicate draws ``N`` test indices with replacement -- or, with ``groups`` (one label
    per sample), as many groups as there are with replacement, taking all samples of each
    drawn group (cluster bootstrap) -- once, scores every seed's prediction on that same
    draw and averages over seeds.

    Replicates whose value is NaN (undefined, e.g. a class missing from the draw) are
    dropped; ``Interval.n_valid`` / ``n_dropped`` say how many. Decomposable metrics use the
    count-matrix fast path (see the module docstring).
    """
    _check_level(level)
    _check_n_boot(n_boot)
    y = np.asarray(y)
    _check_inputs(metric, y, predictions)
    units = _Units.build(y.shape[0], groups)
    rng = np.random.default_rng(seed)
    run = _replicates_fast if metric.decomposable else _replicates_slow
    replicates = run(metric, y, list(predictions), units, int(n_boot), rng)
    low, high, n_valid = _percentile(replicates, level)
    what = (f"groups ({units.n_units} groups)" if units.grouped
            else f"test samples ({units.n_samples} samples)")
    method = f"percentile bootstrap over {what}, mean of {len(predictions)} seed(s)"
    return Interval(low, high, method, level, int(n_boot), n_valid)


def summarise_metric(metric: Metric, y: np.ndarray, predictions: Sequence[Prediction],
                     per_seed_values: Sequence[float] | np.ndarray | None = None,
                     groups: np.ndarray | None = None, n_boot: int = 1000,
                     level: float = 0.95, seed: int = 0, n_boot_seeds: int = 10000) -> dict:
    """Mean over seeds with both intervals, as a flat JSON-friendly dict.

    ``per_seed_values`` are the metric values already computed per seed (computed here when
    None). Keys: ``mean``, ``seed_ci_low`` / ``seed_ci_high`` (bootstrap over seeds, see
    :func:`bootstrap_over_seeds` for its caveat with 2-3 seeds), ``sample_ci_low`` /
    ``sample_ci_high`` (bootstrap over test samples or groups), ``level``, ``n_seeds``,
    ``n_boot``, ``n_boot_valid``, ``grouped`` and ``sample_method``.
    """
    if per_seed_values is None:
        _check_inputs(metric, np.asarray(y), predictions)
        per_seed_values = [metric(np.asarray(y), p) for p in predictions]
    v = np.asarray(per_seed_values, dtype=np.float64).ravel()
    if v.size != len(predictions):
        raise UsageError(f"{v.size} per-seed values for {len(predictions)} predictions")
    finite = v[np.isfinite(v)]
    seed_ci = bootstrap_over_seeds(v, n_boot=n_boot_seeds, level=level, seed=seed)
    sample_ci = bootstrap_over_samples(metric, y, predictions, groups=groups, n_boot=n_boot,
                                       level=level, seed=seed)
    return {
        "mean": float(finite.mean()) if finite.size else float("nan"),
        "seed_ci_low": seed_ci.low,
        "seed_ci_high": seed_ci.high,
        "sample_ci_low": sample_ci.low,
        "sample_ci_high": sample_ci.high,
        "level": float(level),
        "n_seeds": int(finite.size),
        "n_boot": sample_ci.n_boot,
        "n_boot_valid": sample_ci.n_valid,
        "grouped": groups is not None,
        "sample_method": sample_ci.method,
    }
