"""Mock tasks for the test suite: tiny, generated in memory, deterministic.

They exercise the whole chain the way real data does (irregular, unaligned dates of
different lengths, cloud masks, padding, S2 digital numbers that must be converted), but
they are *not* benchmarks: their metadata says ``test_only``. Reflectances are a linear mix
of a soil and a green-vegetation spectrum, with the vegetation fraction following a
double-logistic season; clouds brighten every band and are flagged in the mask.
"""

from __future__ import annotations

from abc import abstractmethod
from functools import cached_property

import numpy as np
import torch

from ..batch import EOBatch, Modality, pad_series
from ..metrics import STANDARD_METRICS
from .base import DatasetRef, TargetSpec, Task, TaskData, TaskMeta

BANDS = ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12")
# Rough reflectance spectra (0-1) at the S2 band centres.
SOIL = np.array([0.08, 0.11, 0.14, 0.17, 0.19, 0.21, 0.23, 0.24, 0.30, 0.26])
VEGETATION = np.array([0.03, 0.07, 0.03, 0.10, 0.30, 0.40, 0.45, 0.46, 0.22, 0.10])
SPLIT_SIZES = {"train": 160, "val": 48, "test": 96}
SEASON_START = np.datetime64("2021-03-01")
MOCK_DATASET = DatasetRef(name="releo-bench mock generator", licence="Apache-2.0",
                          revision="1", citation="generated in memory, see releo_bench/tasks/mock.py")


def double_logistic(doy: np.ndarray, sos: float, eos: float, rate: float = 0.08) -> np.ndarray:
    """Season curve in [0, 1]: rises around ``sos``, falls around ``eos`` (days)."""
    return 1.0 / (1.0 + np.exp(-rate * (doy - sos))) - 1.0 / (1.0 + np.exp(-rate * (doy - eos)))


def _simulate(rng: np.random.Generator, peak: np.ndarray, sos: np.ndarray, eos: np.ndarray
              ) -> tuple[torch.Tensor, np.ndarray, torch.Tensor]:
    series = []
    for p, s, e in zip(peak, sos, eos):
        # 5-day revisit over ~200 days with a random phase, then random acquisitions lost
        offsets = np.arange(rng.integers(0, 5), 200, 5)
        keep = rng.random(len(offsets)) > 0.35
        offsets = offsets[keep]
        frac = p * double_logistic(offsets.astype(float), s, e)
        refl = (1 - frac)[:, None] * SOIL + frac[:, None] * VEGETATION
        refl = refl * (1 + 0.02 * rng.standard_normal(refl.shape)) + 0.003 * rng.standard_normal(refl.shape)
        cloudy = rng.random(len(offsets)) < 0.2
        refl[cloudy] = 0.35 + 0.1 * rng.random((cloudy.sum(), 1)) + 0.2 * refl[cloudy]
        dn = np.round(np.clip(refl, 0, 1) * 10000.0).astype(np.float32)
        series.append((dn[:, :, None, None], SEASON_START + offsets.astype("timedelta64[D]"),
                       ~cloudy[:, None, None]))
    return pad_series(series)


class _MockTask(Task):
    seed = 0

    def load(self, split: str) -> TaskData:
        self.check_split(split)
        return self._data[split]

    @cached_property
    def _data(self) -> dict[str, TaskData]:
        rng = np.random.default_rng(self.seed)
        out = {}
        for split, n in SPLIT_SIZES.items():
            out[split] = self._make(rng, n, split)
        return out

    def _batch(self, values: torch.Tensor, dates: np.ndarray, mask: torch.Tensor, split: str,
               groups: np.ndarray) -> EOBatch:
        s2 = Modality(values, dates, mask, BANDS, "reflectance_x10000")
        ids = tuple(f"{split}-{i:04d}" for i in range(values.shape[0]))
        return EOBatch({"s2": s2}, ids, {"field": groups})

    @abstractmethod
    def _make(self, rng: np.random.Generator, n: int, split: str) -> TaskData:
        """Generate ``n`` samples of one split."""


class MockRegression(_MockTask):
    """Peak vegetation fraction x 6 as an 'LAI-like' target, from irregular cloudy S2 series."""

    meta = TaskMeta(
        name="mock-regression", version=1,
        description="[test only] peak green fraction (x6, LAI-like) of generated pixel series",
        dataset=MOCK_DATASET, licence="Apache-2.0",
        split_design="independent draws per split from one seeded generator; groups = fields of 4 pixels",
        target=TargetSpec(kind="regression", name="peak_lai", unit="m2/m2", range=(0.0, 8.0)),
        main_score="rmse",
        metrics=STANDARD_METRICS["regression"],
        modalities=("s2",), test_only=True,
    )

    def _make(self, rng: np.random.Generator, n: int, split: str) -> TaskData:
        peak = rng.uniform(0.1, 0.95, n)
        sos = rng.uniform(30, 80, n)
        eos = sos + rng.uniform(60, 110, n)
        values, dates, mask = _simulate(rng, peak, sos, eos)
        groups = np.array([f"{split}-field-{i // 4}" for i in range(n)])
        return TaskData(self._batch(values, dates, mask, split, groups), 6.0 * peak, groups)


class MockClassification(_MockTask):
    """Three phenology classes: early season, late season, bare (sparse vegetation)."""

    seed = 1
    meta = TaskMeta(
        name="mock-classification", version=1,
        description="[test only] early / late / sparse phenology classes of generated pixel series",
        dataset=MOCK_DATASET, licence="Apache-2.0",
        split_design="independent draws per split from one seeded generator; groups = fields of 4 pixels",
        target=TargetSpec(kind="classification", name="phenology_class",
                          class_names=("early", "late", "sparse")),
        main_score="overall_accuracy",
        metrics=STANDARD_METRICS["classification"],
        modalities=("s2",), test_only=True,
    )

    def _make(self, rng: np.random.Generator, n: int, split: str) -> TaskData:
        cls = rng.integers(0, 3, n)
        sos = np.where(cls == 0, rng.uniform(20, 60, n), rng.uniform(70, 110, n))
        eos = sos + rng.uniform(50, 80, n)
        peak = np.where(cls == 2, rng.uniform(0.05, 0.3, n), rng.uniform(0.4, 0.95, n))
        values, dates, mask = _simulate(rng, peak, sos, eos)
        groups = np.array([f"{split}-field-{i // 4}" for i in range(n)])
        return TaskData(self._batch(values, dates, mask, split, groups), cls.astype(np.int64), groups)
