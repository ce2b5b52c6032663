"""The simulated (embedded) tasks: lai, cab, ccc, crop-phenology, land-cover.

The six scenes are simulated once per process and shared by every test here (about 10 s on
a 2-core CPU); the two end-to-end runs add a few seconds each.
"""

from __future__ import annotations

import numpy as np
import pytest

from releo_bench.checks import check_task
from releo_bench.errors import UsageError
from releo_bench.physics.scene import DEFAULT_CLASSES, SIMULATOR_VERSION
from releo_bench.registries import TASKS
from releo_bench.runner import RunConfig, run
from releo_bench.tasks import sim_data
from releo_bench.tasks.simulated import (PHENOLOGY_TARGETS, CropPhenology, LandCover, SimulatedCab,
                                         SimulatedCCC, SimulatedLAI)

NAMES = ("lai", "cab", "ccc", "crop-phenology", "land-cover")
SPLITS = ("train", "val", "test")


@pytest.fixture(scope="module")
def loaded():
    """Every split of every simulated task (default options)."""
    out = {}
    for name in NAMES:
        task = TASKS.get(name)()
        out[name] = (task, {s: task.load(s) for s in SPLITS})
    return out


def test_registered_with_metadata():
    for name in NAMES:
        cls = TASKS.get(name)
        meta = cls.meta
        assert meta.name == name and meta.version == 1 and not meta.test_only
        assert meta.dataset.name == "releo-bench scene simulator"
        assert meta.dataset.revision == str(SIMULATOR_VERSION)
        assert meta.dataset.licence == meta.licence == "Apache-2.0"
        assert meta.modalities == ("s2", "s1", "angles")
        assert meta.main_score in meta.metrics
    # the task versions describe the data of this simulator version: bump both together
    assert SIMULATOR_VERSION == sim_data.PINNED_SIMULATOR_VERSION, \
        "the scene simulator changed: bump the simulated tasks' versions and task cards"


def test_shapes_units_and_sizes(loaded):
    for name, (task, data) in loaded.items():
        for split, d in data.items():
            n = len(d)
            low = {"train": 1200, "val": 400, "test": 700}[split]
            assert low < n < 3000, f"{name} {split}: {n} samples"
            s2, s1, ang = d.batch["s2"], d.batch["s1"], d.batch["angles"]
            assert s2.values.shape[:3] == (n, s2.dates.shape[1], 12) and s2.values.shape[3:] == (1, 1)
            assert s2.bands == ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9",
                                "B11", "B12")
            assert set(s2.units) == {"reflectance"} and set(s1.units) == {"dB"}
            assert s1.bands == ("VV", "VH") and set(ang.units) == {"degree"}
            assert s2.dates.dtype == np.dtype("datetime64[D]") and s1.dates.dtype == s2.dates.dtype
            assert tuple(s2.mask.shape) == (n, s2.dates.shape[1], 1, 1)
            assert np.array_equal(ang.dates, s2.dates, equal_nan=True)
            assert len(set(d.batch.sample_ids)) == n
            valid = s2.mask.numpy()[:, :, 0, 0]
            refl = s2.values.numpy()[:, :, :, 0, 0][valid]
            assert 0.0 <= refl.min() and refl.max() <= 1.0
            db = s1.values.numpy()[s1.mask.numpy()[:, :, 0, 0]]
            assert -40.0 < db.min() and db.max() < 10.0


def test_dates_irregular_and_cloudy(loaded):
    d = loaded["lai"][1]["train"]
    s2 = d.batch["s2"]
    real = ~np.isnat(s2.dates)
    clear = s2.mask.numpy()[:, :, 0, 0]
    assert not (clear & ~real).any()
    cloud_fraction = 1.0 - clear[real].mean()
    assert 0.1 < cloud_fraction < 0.4, cloud_fraction
    # each pixel's clear dates come at irregular intervals
    days = s2.dates.astype("int64")
    n_gap_sizes = np.array([np.unique(np.diff(days[i][clear[i]])).size for i in range(len(d))])
    assert (n_gap_sizes >= 2).mean() > 0.9
    # scenes have their own date grids (padded with NaT), S1 has another one
    assert np.unique(s2.dates[:, 0]).size > 1
    s1 = d.batch["s1"]
    assert not np.array_equal(s1.dates[0][~np.isnat(s1.dates[0])], s2.dates[0][real[0]])


def test_retrieval_targets(loaded):
    lai, cab, ccc = (loaded[n][1] for n in ("lai", "cab", "ccc"))
    for split in SPLITS:
        y_lai, y_cab, y_ccc = lai[split].target, cab[split].target, ccc[split].target
        assert 0.0 <= y_lai.min() < 0.2 and 4.0 < y_lai.max() <= 10.0
        assert 9.9 < y_cab.min() and 50.0 < y_cab.max() < 70.0
        np.testing.assert_allclose(y_ccc, y_lai * y_cab / 100.0, rtol=1e-5)  # g/m2
        assert ccc[split].target.max() < 8.0
        # the same pixels and dates for the three variables, the date a clear acquisition
        assert np.array_equal(lai[split].target_time, cab[split].target_time)
        s2 = lai[split].batch["s2"]
        at = s2.dates == lai[split].target_time[:, None]
        assert (at.sum(axis=1) == 1).all()
        assert s2.mask.numpy()[:, :, 0, 0][at].all()
    # target dates spread over the year, LAI follows the season
    t = lai["train"].target_time
    months = t.astype("datetime64[M]").astype(int) % 12
    assert np.unique(months).size == 12
    summer = (months >= 4) & (months <= 7)
    assert lai["train"].target[summer].mean() > 2 * lai["train"].target[~summer].mean()


def test_phenology_targets(loaded):
    task, data = loaded["crop-phenology"]
    assert task.meta.target.name == "sos" and task.meta.target.unit == "day of year"
    bare = DEFAULT_CLASSES.index("bare_soil")
    lc = LandCover()
    for split in SPLITS:
        sos = data[split].target
        assert 50.0 < sos.min() and sos.max() < 220.0
        classes = lc.load(split).target
        assert len(sos) == (classes != bare).sum()  # every non-bare pixel, none of the bare ones
    eos = CropPhenology(target="eos")
    assert eos.meta.target.name == "eos" and eos.meta.name == "crop-phenology"
    y_eos = eos.load("train").target
    np.testing.assert_allclose(CropPhenology(target="length").load("train").target,
                               y_eos - data["train"].target, atol=1e-6)
    peak = CropPhenology(target="peak").load("train").target
    assert (data["train"].target < peak).all() and (peak < y_eos).all()
    peak_lai = CropPhenology(target="peak_lai").load("train").target
    assert 0.3 < peak_lai.min() and peak_lai.max() < 10.0
    assert set(PHENOLOGY_TARGETS) == {"sos", "eos", "peak", "length", "peak_lai"}
    with pytest.raises(UsageError, match="unknown target"):
        CropPhenology(target="harvest")


def test_land_cover_classes(loaded):
    task, data = loaded["land-cover"]
    assert task.meta.target.class_names == DEFAULT_CLASSES
    for split in ("train", "test"):
        y = data[split].target
        assert y.dtype == np.int64
        assert (np.bincount(y, minlength=7) > 0).all(), f"{split} misses a class"


def test_groups_never_cross_splits(loaded):
    for name, (_, data) in loaded.items():
        groups = {s: set(np.asarray(d.groups).tolist()) for s, d in data.items()}
        seeds = {s: set(np.asarray(d.batch.extras["scene_seed"]).tolist()) for s, d in data.items()}
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            assert not groups[a] & groups[b], f"{name}: fields in {a} and {b}"
            assert not seeds[a] & seeds[b], f"{name}: scenes in {a} and {b}"
        assert len(groups["train"]) >= 40 and len(groups["test"]) >= 25
        assert all(g.startswith("s") and "-f" in g for g in groups["test"])


def test_check_task_passes(loaded):
    for name, (task, _) in loaded.items():
        check_task(task)


def test_deterministic_content_hash(loaded):
    first = {n: {s: d.content_hash() for s, d in data.items()} for n, (_, data) in loaded.items()}
    again = {n: {s: TASKS.get(n)().load(s).content_hash() for s in SPLITS} for n in NAMES}
    assert first == again
    assert len({h for per in first.values() for h in per.values()}) == 3 * len(NAMES)
    # simulate the validation scene again from scratch: same bytes
    sim_data.clear_cache(sim_data.SPLIT_SEEDS["val"])
    assert SimulatedCCC().load("val").content_hash() == first["ccc"]["val"]
    assert SimulatedCab().load("val").content_hash() == first["cab"]["val"]


def test_end_to_end_lai(tmp_path, loaded):
    out = run(RunConfig(model="raw", task="lai", seeds=2, tracking_uri="none",
                        output=tmp_path / "lai", model_options={"pooling": "per_date"},
                        n_boot=100, plots=False))
    m = out.result.metrics
    assert out.result.task.n_samples == {s: len(loaded["lai"][1][s]) for s in SPLITS}
    assert m["r2"].mean > 0.5, m["r2"].mean  # spectrum at the target date -> LAI
    assert m["crps"].mean < 0.5 * float(np.std(loaded["lai"][1]["test"].target))
    assert (out.output_dir / "results.json").exists()


def test_end_to_end_land_cover(tmp_path, loaded):
    out = run(RunConfig(model="raw", task="land-cover", seeds=2, tracking_uri="none",
                        output=tmp_path / "lc", n_boot=100, plots=False))
    y = loaded["land-cover"][1]["test"].target
    majority = np.bincount(y).max() / len(y)
    acc = out.result.metrics["overall_accuracy"].mean
    assert acc > max(0.45, 1.5 * majority), (acc, majority)
    assert out.result.metrics["macro_f1"].mean > 0.4


def test_unknown_split_and_lai_class():
    with pytest.raises(UsageError):
        SimulatedLAI().load("holdout")
    assert SimulatedLAI.meta.target.range == (0.0, 10.0)
