"""Real-data tasks read from upstream formats: eurosat-ms, worldcereal-croptype, eolearn-lulc.

Numbers checked here are the ones stated in the task cards (tasks/<name>/README.md).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from releo_bench.checks import check_task
from releo_bench.errors import DataError
from releo_bench.registries import TASKS
from releo_bench.runner import RunConfig, run

pytestmark = pytest.mark.shared_data

SPLITS = ("train", "val", "test")


def _loaded(task_cls, shared_data: Path):
    """A task with every split loaded (cached in the instance) from the shared data."""
    task = task_cls()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RELEO_DATASETS_DIR", str(shared_data))
        data = {s: task.load(s) for s in SPLITS}
    return task, data


def _no_group_in_two_splits(data) -> None:
    seen: dict[str, str] = {}
    for split, d in data.items():
        for g in set(np.asarray(d.groups).astype(str).tolist()):
            assert seen.setdefault(g, split) == split, f"group {g} in {seen[g]} and {split}"


# ---------------------------------------------------------------------------------- EuroSAT
@pytest.fixture(scope="module")
def eurosat(shared_data):
    from releo_bench.tasks.eurosat import EuroSATMS

    return _loaded(EuroSATMS, shared_data)


def test_eurosat_shapes_units_and_counts(eurosat):
    task, data = eurosat
    for split, per_class in (("train", 12), ("val", 4), ("test", 4)):
        d = data[split]
        s2 = d.batch["s2"]
        assert s2.shape == (10 * per_class, 1, 13, 64, 64)
        assert s2.bands == ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A",
                            "B09", "B10", "B11", "B12")
        assert set(s2.units) == {"reflectance_x10000"}
        assert (s2.dates == np.datetime64("2016-01-01")).all() and bool(s2.mask.all())
        assert np.bincount(d.target, minlength=10).tolist() == [per_class] * 10
    assert len(task.meta.target.class_names) == 10
    _no_group_in_two_splits(data)


def test_eurosat_band_order_matches_rasterio(eurosat, shared_data):
    import rasterio

    _, data = eurosat
    where = {sid: (s, i) for s in SPLITS for i, sid in enumerate(data[s].batch.sample_ids)}
    split, i = where["Forest/Forest_1.tif"]
    with rasterio.open(shared_data / "eurosat_ms_200/Forest/Forest_1.tif") as src:
        b8a, b09, b08 = src.read(13), src.read(9), src.read(8)  # B8A is the file's last band
    values = data[split].batch["s2"].values[i, 0].numpy()
    assert np.array_equal(values[8], b8a) and np.array_equal(values[9], b09)
    assert np.array_equal(values[7], b08)
    assert values[8, 10, 20] == b8a[10, 20]
    # forest: NIR (B8A) well above red (B04)
    assert values[8].mean() > 3 * values[3].mean()


def test_eurosat_malformed_geotiff(tmp_path, monkeypatch, shared_data):
    import rasterio

    from releo_bench.tasks.eurosat import CLASSES, EuroSATMS

    root = tmp_path / "eurosat_ms_200"
    root.mkdir()
    for c in CLASSES:
        if c != "River":
            (root / c).symlink_to(shared_data / "eurosat_ms_200" / c)
    (root / "River").mkdir()
    for f in (shared_data / "eurosat_ms_200" / "River").glob("*.tif"):
        if f.name != "River_7.tif":
            (root / "River" / f.name).symlink_to(f)
    bad = root / "River" / "River_7.tif"
    with rasterio.open(shared_data / "eurosat_ms_200" / "River" / "River_7.tif") as src:
        profile, arr = src.profile, src.read()
    profile.update(count=12)
    with rasterio.open(bad, "w", **profile) as dst:
        dst.write(arr[:12])
    monkeypatch.setenv("RELEO_DATASETS_DIR", str(tmp_path))
    with pytest.raises(DataError, match=r"River_7\.tif: 12 bands, expected 13.*B8A"):
        EuroSATMS().load("train")


# ------------------------------------------------------------------------------ WorldCereal
@pytest.fixture(scope="module")
def worldcereal(shared_data):
    from releo_bench.tasks.worldcereal import WorldCerealCropType

    return _loaded(WorldCerealCropType, shared_data)


def test_worldcereal_counts_legend_and_splits(worldcereal, shared_data):
    import pandas as pd

    from releo_bench.tasks.worldcereal import read_mapping

    task, data = worldcereal
    assert task.meta.target.class_names == ("sorghum", "maize", "other_oilseeds", "trees_mixed")
    counts = {s: np.bincount(data[s].target, minlength=4).tolist() for s in SPLITS}
    assert counts == {"train": [187, 60, 17, 14], "val": [61, 19, 7, 4], "test": [57, 18, 8, 5]}
    # the mapping CSV gives the same legend as the parquet's own sampling_label column
    df = pd.read_parquet(shared_data / "worldcereal/test_public_extractions.parquet")
    mapped = df["ewoc_code"].map(read_mapping(shared_data / "worldcereal/crop_type_class_mappings.csv"))
    assert (mapped == df["sampling_label"]).all()
    assert mapped.value_counts().head(5).to_dict() == {
        "sorghum": 305, "maize": 97, "other_oilseeds": 32, "trees_mixed": 23,
        "dry_pulses_legumes": 15}
    _no_group_in_two_splits(data)
    # near-duplicate locations (same point from two reference sets) never straddle splits
    loc = {s: set(zip(np.round(data[s].batch.extras["lat"], 4), np.round(data[s].batch.extras["lon"], 4)))
           for s in SPLITS}
    assert not (loc["train"] & loc["test"]) and not (loc["train"] & loc["val"])


def test_worldcereal_values_units_dates_and_missing(worldcereal, shared_data):
    import pandas as pd

    _, data = worldcereal
    df = pd.read_parquet(shared_data / "worldcereal/test_public_extractions.parquet")
    df = df.set_index("sample_id")
    for d in data.values():
        s2, s1 = d.batch["s2"], d.batch["s1"]
        assert s2.shape == (len(d), 12, 10, 1, 1) and s1.shape == (len(d), 12, 2, 1, 1)
        assert s2.bands == ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
        assert s1.bands == ("VV", "VH") and set(s1.units) == {"dB"}
        assert set(s2.units) == {"reflectance_x10000"}
        assert s2.dates[0, 0] == np.datetime64("2016-12-01") and s2.dates[0, -1] == np.datetime64("2017-11-01")
    # every 65535 of the kept points is masked, and nothing else
    ids = [i for s in SPLITS for i in data[s].batch.sample_ids]
    raw_missing = (df.loc[ids, [f"OPTICAL-B02-ts{t}-10m" for t in range(12)]] == 65535).to_numpy().sum()
    masked = sum(int((~data[s].batch["s2"].mask).sum()) for s in SPLITS)
    assert raw_missing == masked > 0
    assert float(max(data[s].batch["s2"].values.max() for s in SPLITS)) < 20000
    # one known value per modality
    d = data["train"]
    i = 0
    sid = d.batch.sample_ids[i]
    row = df.loc[sid]
    t = int(np.argmax(d.batch["s2"].mask[i, :, 0, 0].numpy()))
    assert d.batch["s2"].values[i, t, 7, 0, 0] == row[f"OPTICAL-B8A-ts{t}-20m"]
    t = int(np.argmax(d.batch["s1"].mask[i, :, 0, 0].numpy()))
    expect = 20 * np.log10(float(row[f"SAR-VH-ts{t}-20m"])) - 83
    assert d.batch["s1"].values[i, t, 1, 0, 0].item() == pytest.approx(expect, abs=1e-4)
    vv = np.concatenate([data[s].batch["s1"].values[:, :, 0][data[s].batch["s1"].mask].numpy() for s in SPLITS])
    assert -25 < np.median(vv) < -5


def test_worldcereal_missing_column(tmp_path, monkeypatch, shared_data):
    import pandas as pd

    from releo_bench.tasks.worldcereal import WorldCerealCropType

    root = tmp_path / "worldcereal"
    root.mkdir()
    shutil.copy(shared_data / "worldcereal/crop_type_class_mappings.csv", root)
    df = pd.read_parquet(shared_data / "worldcereal/test_public_extractions.parquet")
    df.drop(columns=["OPTICAL-B8A-ts3-20m"]).to_parquet(root / "test_public_extractions.parquet")
    monkeypatch.setenv("RELEO_DATASETS_DIR", str(tmp_path))
    with pytest.raises(DataError, match=r"test_public_extractions\.parquet: field "
                                        r"'OPTICAL-B8A-ts3-20m' is missing"):
        WorldCerealCropType().load("test")


# ----------------------------------------------------------------------------- eo-learn LULC
@pytest.fixture(scope="module")
def eolearn(shared_data):
    from releo_bench.tasks.eolearn_lulc import EOLearnLULC

    return _loaded(EOLearnLULC, shared_data)


PATCH = Path("eolearn_testeopatch/example_data/TestEOPatch")


def test_eolearn_shapes_counts_masks(eolearn, shared_data):
    task, data = eolearn
    counts = {s: np.bincount(data[s].target, minlength=4).tolist() for s in SPLITS}
    assert counts == {"train": [600, 600, 173, 96], "val": [200, 200, 123, 28],
                      "test": [200, 200, 34, 37]}
    is_valid = np.load(shared_data / PATCH / "mask/IS_VALID.npy")[..., 0]
    ndvi = np.load(shared_data / PATCH / "data/NDVI.npy")[..., 0]
    lulc = np.load(shared_data / PATCH / "mask_timeless/LULC.npy")[..., 0]
    for d in data.values():
        s2 = d.batch["s2"]
        assert s2.shape == (len(d), 68, 1, 1, 1) and s2.bands == ("NDVI",) and s2.units == ("index",)
        r, c = d.batch.extras["row"], d.batch.extras["col"]
        assert np.array_equal(s2.mask[:, :, 0, 0].numpy(), is_valid[:, r, c].T)
        valid = is_valid[:, r, c].T
        assert np.array_equal(s2.values[:, :, 0, 0, 0].numpy()[valid], ndvi[:, r, c].T[valid])
        assert np.array_equal(np.array((2, 3, 4, 8))[d.target], lulc[r, c])
    stamps = json.loads((shared_data / PATCH / "timestamps.json").read_text())
    assert str(data["test"].batch["s2"].dates[0, -1]) == stamps[-1][:10] == "2017-12-22"
    _no_group_in_two_splits(data)


def test_eolearn_no_neighbours_across_splits(eolearn):
    _, data = eolearn
    pos = {s: np.stack([data[s].batch.extras["row"], data[s].batch.extras["col"]], 1) for s in SPLITS}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        dist = np.abs(pos[a][:, None, :] - pos[b][None, :, :]).max(axis=-1)
        assert dist.min() >= 3  # BUFFER = 2 px


def test_eolearn_legend_matches_polygons(shared_data):
    import geopandas as gpd

    from releo_bench.tasks.eolearn_lulc import CLASSES, LULC_IDS

    g = gpd.read_file(shared_data / PATCH / "vector_timeless/LULC.gpkg")
    names = dict(zip(g["LULC_ID"], g["LULC_NAME"]))
    upstream = {2: "forest", 3: "grassland", 4: "schrubland", 8: "artificial surface"}
    assert {k: names[k] for k in LULC_IDS} == upstream
    assert [n.replace(" ", "_").replace("schrub", "shrub") for n in upstream.values()] == list(CLASSES)


def test_eolearn_malformed_mask(tmp_path, monkeypatch, shared_data):
    from releo_bench.tasks.eolearn_lulc import FILES, EOLearnLULC

    dst = tmp_path / PATCH
    for rel in FILES.values():
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        if rel != "mask/CLM.npy":
            (dst / rel).symlink_to(shared_data / PATCH / rel)
    clm = np.load(shared_data / PATCH / "mask/CLM.npy")
    np.save(dst / "mask/CLM.npy", clm[:-1])
    monkeypatch.setenv("RELEO_DATASETS_DIR", str(tmp_path))
    with pytest.raises(DataError, match=r"mask/CLM\.npy: shape \(67, 101, 100, 1\), expected"):
        EOLearnLULC().load("train")


# ----------------------------------------------------------------------- contract, end to end
@pytest.mark.parametrize("name,fixture", [("eurosat-ms", "eurosat"),
                                          ("worldcereal-croptype", "worldcereal"),
                                          ("eolearn-lulc", "eolearn")])
def test_contract(name, fixture, request):
    task, _ = request.getfixturevalue(fixture)
    assert task.meta.name == name and task.meta.version == 1
    assert isinstance(TASKS.get(name)(), type(task))
    check_task(task)


@pytest.mark.parametrize("name,options,main,floor", [
    ("eurosat-ms", {}, "overall_accuracy", 0.35),  # chance 0.10
    ("worldcereal-croptype", {}, "balanced_accuracy", 0.30),  # chance 0.25
    ("eolearn-lulc", {}, "balanced_accuracy", 0.35),  # chance 0.25; raw adapts to NDVI
])
def test_run_raw_above_chance(name, options, main, floor, tmp_path, shared_data):
    out = run(RunConfig(model="raw", task=name, seeds=2, tracking_uri="none",
                        output=tmp_path / "r", model_options=options))
    result = out.result
    assert result.task.main_score == main
    if name == "eolearn-lulc":
        assert result.model.config["bands"] == ["NDVI"] and result.model.config["units"] == "index"
    assert result.metrics[main].mean > floor
    assert (tmp_path / "r" / "results.json").is_file()
