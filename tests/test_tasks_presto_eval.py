"""Presto evaluation regression tasks: fuel-moisture and algae-blooms (real data).

Numbers checked here are the ones stated in the task cards (tasks/<name>/README.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from releo_bench.checks import check_task
from releo_bench.errors import DataError
from releo_bench.registries import TASKS
from releo_bench.runner import RunConfig, run
from releo_bench.tasks.presto_eval import S2_BANDS, AlgaeBlooms, FuelMoisture

pytestmark = pytest.mark.shared_data

SPLITS = ("train", "val", "test")
FM, AB = "presto_eval/fuel_moisture", "presto_eval/algae_blooms"


def _loaded(task_cls, shared_data: Path):
    task = task_cls()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RELEO_DATASETS_DIR", str(shared_data))
        data = {s: task.load(s) for s in SPLITS}
    return task, data


@pytest.fixture(scope="module")
def fuel(shared_data):
    return _loaded(FuelMoisture, shared_data)


@pytest.fixture(scope="module")
def algae(shared_data):
    return _loaded(AlgaeBlooms, shared_data)


def _no_group_in_two_splits(data) -> None:
    seen: dict[str, str] = {}
    for split, d in data.items():
        for g in set(np.asarray(d.groups).astype(str).tolist()):
            assert seen.setdefault(g, split) == split, f"group {g} in {seen[g]} and {split}"


def _check_modalities(d, t: int) -> None:
    b, n = d.batch, len(d)
    assert b["s2"].shape == (n, t, 11, 1, 1) and b["s2"].bands == S2_BANDS
    assert set(b["s2"].units) == {"reflectance_x10000"}
    assert b["s1"].shape == (n, t, 2, 1, 1) and b["s1"].bands == ("VV", "VH")
    assert set(b["s1"].units) == {"dB"}
    assert b["meteo"].shape == (n, t, 2, 1, 1) and b["meteo"].units == ("K", "mm")
    assert b["dem"].shape == (n, 1, 2, 1, 1) and b["dem"].units == ("m", "degree")
    assert b["ndvi"].units == ("index",)
    s1 = b["s1"].values.numpy()[b["s1"].mask.numpy()[..., 0, 0]]
    assert -49.5 < s1.min() and s1.max() < 10  # fill values masked, dB range
    s2 = b["s2"].values.numpy()
    assert np.median(s2) > 500 and s2.max() < 12000  # DN x 10000, not 0-1 reflectance
    t2m = b["meteo"].values.numpy()[:, :, 0]
    assert 255 < t2m.min() and t2m.max() < 310  # kelvin
    assert 0 <= b["meteo"].values.numpy()[:, :, 1].min() and b["meteo"].values.max() < 400


def test_fuel_shapes_units_counts_dates(fuel):
    task, data = fuel
    assert sum(len(d) for d in data.values()) == 2313
    assert [len(data[s]) for s in SPLITS] == [1397, 449, 467]
    lo, hi = task.meta.target.range
    for d in data.values():
        _check_modalities(d, 3)
        assert lo <= d.target.min() and d.target.max() <= hi
        dates = d.batch["s2"].dates
        assert (np.diff(dates, axis=1) == np.timedelta64(30, "D")).all()
        assert (d.target_time - dates[:, 0] == np.timedelta64(90, "D")).all()
    y = np.concatenate([d.target for d in data.values()])
    assert y.min() == pytest.approx(31.6667, abs=1e-3) and y.max() == pytest.approx(319.2)
    tt = np.concatenate([d.target_time for d in data.values()])
    assert tt.min() == np.datetime64("2015-07-31") and tt.max() == np.datetime64("2019-01-31")
    # label dates are last days of months
    assert ((tt + np.timedelta64(1, "D")).astype("datetime64[M]") != tt.astype("datetime64[M]")).all()
    _no_group_in_two_splits(data)


def test_fuel_dates_reproduce_month_npy(fuel, shared_data):
    _, data = fuel
    month = np.load(shared_data / FM / "npy/month.npy")
    for d in data.values():
        idx = np.array([int(i[2:]) for i in d.batch.sample_ids])
        got = d.batch["s1"].dates.astype("datetime64[M]").astype(int) % 12
        assert (got == month[idx]).all()


def test_fuel_site_never_in_two_splits(fuel, shared_data):
    _, data = fuel
    site = np.load(shared_data / FM / "npy/site.npy")
    seen: dict[str, str] = {}
    for split, d in data.items():
        for i in d.batch.sample_ids:
            assert seen.setdefault(site[int(i[2:])], split) == split


def test_algae_shapes_units_counts_dates(algae, shared_data):
    task, data = algae
    assert [len(data[s]) for s in SPLITS] == [691, 215, 216]
    assert task.meta.target.range == (1.0, 5.0)
    counts = sum(np.bincount(d.target.astype(int), minlength=6) for d in data.values())
    assert counts.tolist() == [0, 246, 260, 494, 116, 6]
    month = np.load(shared_data / AB / "npy/month.npy")
    uid = np.load(shared_data / AB / "npy/uid.npy").tolist()
    for d in data.values():
        _check_modalities(d, 12)
        dates = d.batch["s2"].dates
        assert (np.diff(dates, axis=1) == np.timedelta64(30, "D")).all()
        assert dates.min() >= np.datetime64("2001-01-01") and dates.max() <= np.datetime64("2004-12-31")
        idx = np.array([uid.index(i) for i in d.batch.sample_ids])
        assert ((dates.astype("datetime64[M]").astype(int) % 12) == month[idx]).all()
    _no_group_in_two_splits(data)


@pytest.mark.parametrize("name,fixture", [("fuel-moisture", "fuel"), ("algae-blooms", "algae")])
def test_contract(name, fixture, request):
    task, _ = request.getfixturevalue(fixture)
    assert task.meta.name == name and task.meta.version == 1 and task.meta.main_score == "rmse"
    assert task.meta.dataset.revision == "nasaharvest/presto@13173d02"
    assert isinstance(TASKS.get(name)(), type(task))
    check_task(task)


def _copy(shared_data: Path, rel: str, dst: Path) -> Path:
    out = dst / rel
    (out / "npy").mkdir(parents=True)
    for f in (shared_data / rel).rglob("*"):
        if f.is_file():
            (out / f.relative_to(shared_data / rel)).symlink_to(f)
    return out


def test_malformed_latlon_missing(tmp_path, monkeypatch, shared_data):
    out = _copy(shared_data, AB, tmp_path)
    (out / "npy/latlon.npy").unlink()
    monkeypatch.setenv("RELEO_DATASETS_DIR", str(tmp_path))
    with pytest.raises(DataError, match=r"latlon\.npy: file is missing"):
        AlgaeBlooms().load("train")


def test_malformed_channel_dropped(tmp_path, monkeypatch, shared_data):
    out = _copy(shared_data, AB, tmp_path)
    x = np.load(out / "npy/s1_s2_era5_srtm.npy")
    (out / "npy/s1_s2_era5_srtm.npy").unlink()
    np.save(out / "npy/s1_s2_era5_srtm.npy", x[..., :17])
    monkeypatch.setenv("RELEO_DATASETS_DIR", str(tmp_path))
    with pytest.raises(DataError, match=r"s1_s2_era5_srtm\.npy: 17 channels, expected 18"):
        AlgaeBlooms().load("train")


def test_malformed_geojson_date_dropped(tmp_path, monkeypatch, shared_data):
    out = _copy(shared_data, FM, tmp_path)
    gj = json.loads((out / "single_file_labels.geojson").read_text())
    del gj["features"][5]["properties"]["date"]
    (out / "single_file_labels.geojson").unlink()
    (out / "single_file_labels.geojson").write_text(json.dumps(gj))
    monkeypatch.setenv("RELEO_DATASETS_DIR", str(tmp_path))
    with pytest.raises(DataError, match=r"single_file_labels\.geojson: field 'date' is missing"):
        FuelMoisture().load("train")


@pytest.mark.parametrize("name,ceiling", [
    # constant predictor (train mean) on the test split: RMSE 40.34 (fuel), 0.982 (algae);
    # raw + default probe: 38.26, 0.958
    ("fuel-moisture", 39.5),
    ("algae-blooms", 0.975),
])
def test_run_raw_beats_constant(name, ceiling, tmp_path, shared_data):
    out = run(RunConfig(model="raw", task=name, seeds=2, tracking_uri="none", n_boot=100,
                        plots=False, output=tmp_path / "r"))
    assert out.result.task.main_score == "rmse"
    assert out.result.metrics["rmse"].mean < ceiling
    assert out.result.metrics["r2"].mean > 0.0
