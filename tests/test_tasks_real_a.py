"""Real-data tasks read from the upstream formats: lai-insitu, sowing-date-bihar, tempcnn-toulouse.

The numbers checked here are the ones quoted in the task cards (tasks/<name>/README.md).
Every test needs the shared real-data folder and skips without it.
"""

from __future__ import annotations

import shutil
import zipfile

import numpy as np
import pandas as pd
import pytest

from releo_bench.checks import check_task
from releo_bench.errors import DataError
from releo_bench.registries import TASKS
from releo_bench.runner import RunConfig, run
from releo_bench.tasks.lai_insitu import LaiInsitu
from releo_bench.tasks import lai_insitu, sowing_bihar, tempcnn
from releo_bench.tasks.lai_insitu import LaiInsitu, scores_by_site
from releo_bench.tasks.sowing_bihar import SowingBihar, authors_baseline_errors
from releo_bench.tasks.tempcnn import RAW_ENCODER_OPTIONS, TempCNNToulouse


def _groups_disjoint(task, splits):
    seen: dict[str, str] = {}
    for split in splits:
        for g in set(np.asarray(task.load(split).groups).tolist()):
            assert g not in seen, f"group {g} in {seen[g]} and {split}"
            seen[g] = split


# -- lai-insitu ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lai(shared_data):
    with pytest.MonkeyPatch.context() as mp:  # module scope: before the autouse env fixture
        mp.setenv("RELEO_DATASETS_DIR", str(shared_data))
        task = LaiInsitu()
        task.load("train")  # reads and caches every split
    return task


def test_lai_counts_units_dates(lai):
    sizes = {s: len(lai.load(s)) for s in ("train", "val", "test")}
    assert sizes == {"train": 246, "val": 79, "test": 76}
    assert lai.report["france_T31TCJ_gai"] == {"measurements": 114, "no_target": 11,
                                               "no_clear_date": 16, "duplicate_other_tile": 0,
                                               "kept": 87}
    assert lai.report["italy_T33TWG_"]["duplicate_other_tile"] == 31
    sites = np.concatenate([lai.load(s).batch.extras["site"] for s in sizes])
    y = np.concatenate([lai.load(s).target for s in sizes])
    assert {k: int((sites == k).sum()) for k in ("france", "italy", "spain")} == \
        {"france": 87, "italy": 135, "spain": 179}
    assert 0.0 <= y.min() and y.max() == pytest.approx(8.98)
    for split in sizes:
        d = lai.load(split)
        m = d.batch["s2"]
        assert m.bands == lai_insitu.BANDS and set(m.units) == {"reflectance"}
        assert m.values.shape[2:] == (10, 1, 1)
        ok = m.values.permute(0, 1, 3, 4, 2)[m.mask]
        assert float(ok.min()) >= -0.01 and float(ok.max()) < 1.0  # reflectance 0-1, not DN
        dates = m.dates[~np.isnat(m.dates)]
        assert dates.min() >= np.datetime64("2017-01-01") and dates.max() <= np.datetime64("2018-09-30")
        assert d.target_time.min() == np.datetime64("2017-03-16")
        # every sample has a clear acquisition within 15 days of its field date
        gap = np.abs((m.dates - d.target_time[:, None]).astype("timedelta64[D]").astype(float))
        gap[np.isnat(m.dates)] = np.inf
        gap[~m.mask[:, :, 0, 0].numpy()] = np.inf
        assert (gap.min(axis=1) <= 15).all()
        # the series are irregular and keep cloudy dates as masked steps
        assert (~m.mask[:, :, 0, 0].numpy() & ~np.isnat(m.dates)).any()
    _groups_disjoint(lai, sizes)
    assert len({g for s in sizes for g in lai.load(s).groups}) == 179


def test_lai_leave_one_site_out(shared_data):
    task = LaiInsitu(test_site="france")
    check_task(task)
    assert set(task.load("test").batch.extras["site"]) == {"france"}
    assert len(task.load("test")) == 87
    assert "france" not in set(task.load("train").batch.extras["site"])
    only = LaiInsitu(sites=("spain",))
    assert sum(len(only.load(s)) for s in ("train", "val", "test")) == 179
    d = only.load("test")
    per_site = scores_by_site(d, d.target + 1.0)
    assert per_site["spain"]["rmse"] == pytest.approx(1.0) and per_site["all"]["n"] == len(d)


def test_lai_missing_column_is_named(shared_data, tmp_path, monkeypatch):
    src = shared_data / lai_insitu.FOLDER / lai_insitu.ZIP_PATH
    out = tmp_path / lai_insitu.FOLDER / lai_insitu.ZIP_PATH
    out.parent.mkdir(parents=True)
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w") as zout:
        for name in zin.namelist():
            if name.endswith("italy_T33TWF_.csv"):
                df = pd.read_csv(zin.open(name), low_memory=False).drop(columns=["LicorLAI"])
                zout.writestr(name, df.to_csv(index=False))
    monkeypatch.setenv("RELEO_DATASETS_DIR", str(tmp_path))
    with pytest.raises(DataError, match=r"acquisitions_sampling_italy_T33TWF_\.csv.*'LicorLAI'"):
        LaiInsitu(sites=("italy",)).load("train")


# -- sowing-date-bihar -----------------------------------------------------------------------

def test_bihar_folds_units_dates(shared_data):
    task = SowingBihar()
    train, test = task.load("train"), task.load("test")
    assert (len(train), len(test)) == (29, 8)
    check_task(task)
    folds = [set(SowingBihar(fold=k).fold_fields("test").tolist()) for k in range(5)]
    assert [len(f) for f in folds] == [8, 8, 7, 7, 7]
    assert set().union(*folds) == set(task.fields["fkey"]) and len(set().union(*folds)) == 37
    _groups_disjoint(task, ("train", "test"))
    m = train.batch["s2"]
    assert m.bands == sowing_bihar.BANDS and len(m.bands) == 12  # L2A: no B10
    assert set(m.units) == {"reflectance_x10000"}
    valid = m.values.permute(0, 1, 3, 4, 2)[m.mask]
    assert 300 < float(valid[:, 1].median()) < 2000  # B2 as DN, offset removed
    dates = np.concatenate([d.batch["s2"].dates.ravel() for d in (train, test)])
    dates = dates[~np.isnat(dates)]
    assert dates.min() == np.datetime64("2022-09-02") and dates.max() == np.datetime64("2023-04-30")
    n_valid = np.concatenate([d.batch["s2"].mask[:, :, 0, 0].sum(1).numpy() for d in (train, test)])
    assert n_valid.min() == 24 and n_valid.max() == 59
    y = np.concatenate([train.target, test.target])
    assert (y.min(), y.max()) == (308.0, 356.0)  # 2022-11-05 .. 2022-12-23
    assert train.target_time is None and test.target_time is None  # the target is a date


def test_bihar_authors_baseline(shared_data):
    errors = np.concatenate([authors_baseline_errors(SowingBihar(fold=k)) for k in range(5)])
    assert len(errors) == 37
    assert np.abs(errors).mean() == pytest.approx(9.054, abs=1e-3)
    assert np.sqrt(np.mean(errors**2)) == pytest.approx(11.291, abs=1e-3)
    fold0 = authors_baseline_errors(SowingBihar(fold=0))
    assert np.abs(fold0).mean() == pytest.approx(5.5)
    modis = np.concatenate([authors_baseline_errors(SowingBihar(fold=k), sensor="MODIS")
                            for k in range(5)])
    assert np.isnan(modis).sum() == 4  # MODIS has 33 of the 37 fields


def _copy_bihar(shared_data, tmp_path):
    dst = tmp_path / sowing_bihar.FOLDER
    for rel in (sowing_bihar.FIELDS, sowing_bihar.S2_CSV, sowing_bihar.BASELINE_CSV):
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shared_data / sowing_bihar.FOLDER / rel, dst / rel)
    return dst


def test_bihar_missing_columns_are_named(shared_data, tmp_path, monkeypatch):
    dst = _copy_bihar(shared_data, tmp_path)
    monkeypatch.setenv("RELEO_DATASETS_DIR", str(tmp_path))
    base = pd.read_csv(dst / sowing_bihar.BASELINE_CSV).drop(columns=["predicted_sowing_dop"])
    base.to_csv(dst / sowing_bihar.BASELINE_CSV, index=False)
    with pytest.raises(DataError, match=r"sowing_date_metrics_minimum_approach\.csv.*'predicted_sowing_dop'"):
        authors_baseline_errors(SowingBihar())
    s2 = pd.read_csv(dst / sowing_bihar.S2_CSV, low_memory=False).drop(columns=["SCL"])
    s2.to_csv(dst / sowing_bihar.S2_CSV, index=False)
    with pytest.raises(DataError, match=r"gee_metrics_sentinel-2.*\.csv.*'SCL'"):
        SowingBihar().load("train")


# -- tempcnn-toulouse ------------------------------------------------------------------------

def test_tempcnn_counts_units_dates(shared_data):
    task = TempCNNToulouse()
    check_task(task)
    sizes = {s: len(task.load(s)) for s in ("train", "val", "test")}
    assert sizes == {"train": 200, "val": 60, "test": 260}
    assert np.bincount(task.load("test").target, minlength=13).tolist() == [20] * 13
    counts = np.bincount(task.load("train").target, minlength=13) + \
        np.bincount(task.load("val").target, minlength=13)
    assert counts.tolist() == [20] * 13
    assert (np.bincount(task.load("val").target, minlength=13) >= 4).all()  # stratified
    _groups_disjoint(task, sizes)
    m = task.load("test").batch[tempcnn.MODALITY]
    assert m.shape == (260, 149, 3, 1, 1) and m.bands == ("NIR", "R", "G")
    assert set(m.units) == {"dimensionless"} and bool(m.mask.all())
    assert m.dates[0, 0] == np.datetime64("2006-02-01") and m.dates[0, -1] == np.datetime64("2006-11-24")
    assert set(np.diff(m.dates[0]).astype(int).tolist()) == {2}
    lo = min(float(task.load(s).batch[tempcnn.MODALITY].values.min()) for s in sizes)
    hi = max(float(task.load(s).batch[tempcnn.MODALITY].values.max()) for s in sizes)
    assert lo == pytest.approx(11.4394, abs=1e-3) and hi == pytest.approx(557.0)
    assert len(set(task.load("test").groups)) == 142


def test_tempcnn_malformed_files_are_named(shared_data, tmp_path, monkeypatch):
    dst = tmp_path / tempcnn.FOLDER
    for rel in (tempcnn.TRAIN_CSV, tempcnn.TEST_CSV, tempcnn.LEGEND):
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shared_data / tempcnn.FOLDER / rel, dst / rel)
    monkeypatch.setenv("RELEO_DATASETS_DIR", str(tmp_path))
    legend = pd.read_csv(dst / tempcnn.LEGEND).drop(columns=["class"])
    legend.to_csv(dst / tempcnn.LEGEND, index=False)
    with pytest.raises(DataError, match=r"class_map\.txt.*'class'"):
        TempCNNToulouse().load("train")
    shutil.copy(shared_data / tempcnn.FOLDER / tempcnn.LEGEND, dst / tempcnn.LEGEND)
    df = pd.read_csv(dst / tempcnn.TEST_CSV, header=None).drop(columns=[100])
    df.to_csv(dst / tempcnn.TEST_CSV, header=False, index=False)
    with pytest.raises(DataError, match=r"test_dataset\.csv: 448 columns, expected 449"):
        TempCNNToulouse().load("test")


# -- end to end: raw encoder + default probe, better than a constant / chance -------------------

def _run(task, tmp_path, **kw):
    return run(RunConfig(model="raw", task=task, seeds=2, tracking_uri="none",
                         output=tmp_path / "r", **kw)).result


def test_lai_end_to_end(shared_data, tmp_path):
    result = _run("lai-insitu", tmp_path)
    task = TASKS.get("lai-insitu")()
    constant = np.sqrt(np.mean((task.load("test").target - task.load("train").target.mean()) ** 2))
    assert constant == pytest.approx(1.566, abs=1e-3)
    assert result.metrics["rmse"].mean < 0.9 * constant  # card: 1.23
    assert result.task.n_samples == {"train": 246, "val": 79, "test": 76}


def test_bihar_end_to_end(shared_data, tmp_path):
    result = _run("sowing-date-bihar", tmp_path)
    task = SowingBihar()
    constant = np.mean(np.abs(task.load("test").target - task.load("train").target.mean()))
    assert constant == pytest.approx(9.90, abs=0.01)
    assert result.metrics["mae"].mean < constant  # card: 6.87 days, authors' baseline 5.50
    assert result.task.n_samples == {"train": 29, "test": 8}


def test_tempcnn_end_to_end(shared_data, tmp_path):
    result = _run("tempcnn-toulouse", tmp_path, model_options=dict(RAW_ENCODER_OPTIONS))
    assert result.metrics["overall_accuracy"].mean > 0.4  # chance 1/13 = 0.077; card: 0.57


def test_sim_to_real_trains_on_simulated_lai_and_tests_on_insitu(shared_data, tmp_path):
    """Transfer run: probe trained on the simulator's `lai`, scored on the in-situ test split."""
    from releo_bench.cli import main
    from releo_bench.results import read_results

    out = tmp_path / "s2r"
    code = main(["run", "--model", "raw", "--task", "lai-insitu", "--train-task", "lai",
                 "--seeds", "1", "--tracking-uri", "none", "--n-boot", "100", "--no-plots",
                 "--output", str(out)])
    assert code == 0
    r = read_results(out / "results.json")
    assert r.task.name == "lai-insitu" and r.task.train_task == {"name": "lai", "version": 1}
    insitu = LaiInsitu()
    assert r.task.n_samples["test"] == len(insitu.load("test"))
    assert r.task.data_hash["test"] == insitu.load("test").content_hash()
    assert np.isfinite(r.metrics["crps"].mean) and r.metrics["rmse"].mean > 0
    # a classification task cannot be the training side of an LAI retrieval
    assert main(["run", "--model", "raw", "--task", "lai-insitu", "--train-task", "land-cover",
                 "--tracking-uri", "none", "--output", str(tmp_path / "bad")]) == 2
