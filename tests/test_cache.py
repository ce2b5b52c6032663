"""Embedding cache: reuse on a second run, resume after an interruption, atomic writes."""

import numpy as np
import pytest
import torch

from releo_bench.cache import EmbeddingCache
from releo_bench.encoders.base import Embeddings


class _Counter:
    def __init__(self, fail_at: int | None = None, per_date: bool = False):
        self.calls, self.fail_at, self.per_date = [], fail_at, per_date

    def __call__(self, start: int, stop: int) -> Embeddings:
        if self.fail_at is not None and len(self.calls) == self.fail_at:
            raise KeyboardInterrupt("simulated interruption")
        self.calls.append((start, stop))
        rows = torch.arange(start, stop, dtype=torch.float32)
        if self.per_date:
            t = 2 + start // 10  # later chunks have longer series: padding must line up
            f = rows[:, None, None].expand(-1, t, 3).clone()
            return Embeddings(f, torch.ones(stop - start, t, dtype=torch.bool), "s2")
        return Embeddings(rows[:, None].expand(-1, 4).clone())


def test_second_call_hits_the_cache(tmp_path):
    cache = EmbeddingCache(tmp_path)
    key = cache.make_key({"name": "enc"}, {"task": "t", "split": "train"})
    first = _Counter()
    a = cache.get_or_compute(key, 25, 10, first)
    assert (a.hit, a.computed_chunks, len(first.calls)) == (False, 3, 3)
    second = _Counter()
    b = cache.get_or_compute(key, 25, 10, second)
    assert b.hit and second.calls == []
    np.testing.assert_array_equal(a.features, b.features)
    assert b.features[:, 0].tolist() == list(range(25))


def test_interrupted_extraction_resumes_from_whole_chunks(tmp_path):
    cache = EmbeddingCache(tmp_path)
    key = cache.make_key({"name": "enc"}, {"split": "test"})
    with pytest.raises(KeyboardInterrupt):
        cache.get_or_compute(key, 45, 10, _Counter(fail_at=2))
    assert not cache.is_complete(key)
    assert not list(tmp_path.rglob("*.tmp"))  # atomic: no half-written file left behind
    resume = _Counter()
    r = cache.get_or_compute(key, 45, 10, resume)
    assert r.resumed_chunks == 2 and r.computed_chunks == 3
    assert resume.calls == [(20, 30), (30, 40), (40, 45)]
    assert r.features[:, 0].tolist() == list(range(45))


def test_per_date_embeddings_are_padded_with_their_mask(tmp_path):
    cache = EmbeddingCache(tmp_path)
    key = cache.make_key({"name": "enc", "output": "per_date"}, {"split": "val"})
    r = cache.get_or_compute(key, 25, 10, _Counter(per_date=True))
    assert r.features.shape == (25, 4, 3) and r.time_mask.shape == (25, 4)
    assert r.time_mask[:10].sum(axis=1).tolist() == [2] * 10  # first chunk had 2 dates
    assert r.time_mask[20:].all()
    again = cache.get_or_compute(key, 25, 10, _Counter())
    np.testing.assert_array_equal(again.time_mask, r.time_mask)


def test_keys_change_with_any_identity_field():
    k = EmbeddingCache.make_key
    base = k({"name": "a", "weights_sha256": "1"}, {"task": "t", "version": 1, "split": "train", "data_hash": "h"})
    assert base == k({"weights_sha256": "1", "name": "a"}, {"split": "train", "task": "t", "version": 1, "data_hash": "h"})
    assert base != k({"name": "a", "weights_sha256": "2"}, {"task": "t", "version": 1, "split": "train", "data_hash": "h"})
    assert base != k({"name": "a", "weights_sha256": "1"}, {"task": "t", "version": 2, "split": "train", "data_hash": "h"})
    assert base != k({"name": "a", "weights_sha256": "1"}, {"task": "t", "version": 1, "split": "train", "data_hash": "h2"})
