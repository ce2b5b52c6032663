"""The bring-your-own-data task ``custom``, end to end through the CLI on files written here:
a GeoTIFF stack + polygons in another CRS, a folder of dated GeoTIFFs + points, point tables
(long CSV, wide Parquet), and every kind of bad input giving exit 2 with the culprit named."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import yaml
from rasterio.transform import from_origin
from shapely.geometry import Point, box

from releo_bench.checks import check_task
from releo_bench.cli import main
from releo_bench.errors import DataError, UsageError
from releo_bench.registries import TASKS
from releo_bench.results import read_results
from releo_bench.tasks import custom_io
from releo_bench.tasks.custom import GENERIC_META, CustomTask, assign_splits, infer_kind

ROOT = Path(__file__).resolve().parent.parent
BANDS = ("B02", "B03", "B04", "B08")
SOIL = np.array([0.08, 0.11, 0.14, 0.23])
VEG = np.array([0.03, 0.07, 0.03, 0.45])
DATES = ("2021-04-01", "2021-04-21", "2021-05-11", "2021-06-10", "2021-07-05", "2021-08-04")
SEASON = np.array([0.2, 0.5, 0.8, 1.0, 0.8, 0.5])
SIZE, PIXEL, CELL = 40, 10.0, 5  # 40 x 40 px of 10 m, 8 x 8 fields of 5 x 5 px
X0, Y0 = 500_000.0, 4_800_000.0
CRS = "EPSG:32631"
RAW4 = ["--model-option", 'bands=["B2","B3","B4","B8"]']


def _reflectance(frac: np.ndarray) -> np.ndarray:
    """``frac [...]`` green fraction -> reflectance ``[..., 4]`` (soil / vegetation mix)."""
    return (1 - frac)[..., None] * SOIL + frac[..., None] * VEG


def _write_tif(path: Path, data: np.ndarray, descriptions=None, crs=CRS, nodata=0) -> None:
    profile = dict(driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                   dtype=data.dtype, transform=from_origin(X0, Y0, PIXEL, PIXEL), nodata=nodata)
    if crs is not None:
        profile["crs"] = crs
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        for i, d in enumerate(descriptions or []):
            dst.set_band_description(i + 1, d)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A 6-date, 4-band stack whose fields have a green fraction f (target lai = 6 f)."""
    tmp = tmp_path_factory.mktemp("custom")
    rng = np.random.default_rng(0)
    n_cells = SIZE // CELL
    f_cell = rng.uniform(0.05, 0.95, (n_cells, n_cells))
    f_pix = np.kron(f_cell, np.ones((CELL, CELL))) + 0.03 * rng.standard_normal((SIZE, SIZE))
    frac = np.clip(f_pix[None] * SEASON[:, None, None], 0, 1)  # [T, H, W]
    refl = _reflectance(frac) * (1 + 0.02 * rng.standard_normal((6, SIZE, SIZE, 4)))
    dn = np.round(np.clip(refl, 0.001, 1) * 10000).astype(np.uint16)  # [T, H, W, C]
    cloudy = rng.random((6, SIZE, SIZE)) < 0.1
    dn[cloudy] = 0  # nodata
    # (a1) one stack, band descriptions '<band>_<date>', dates deliberately out of order
    order = [3, 0, 5, 1, 4, 2]
    stack = np.concatenate([np.moveaxis(dn[t], -1, 0) for t in order])
    _write_tif(tmp / "stack.tif", stack, [f"{b}_{DATES[t]}" for t in order for b in BANDS])
    # (a2) a folder of dated GeoTIFFs, band names as descriptions
    folder = tmp / "series"
    folder.mkdir()
    for t, d in enumerate(DATES):
        _write_tif(folder / f"S2_{d.replace('-', '')}_T31TCJ.tif", np.moveaxis(dn[t], -1, 0), BANDS)
    # polygons (fields, 3 m inside each 50 m cell) in UTM, written in WGS84
    polys, lai, cls, crop = [], [], [], []
    for i in range(n_cells):
        for j in range(n_cells):
            x0, y1 = X0 + j * CELL * PIXEL, Y0 - i * CELL * PIXEL
            polys.append(box(x0 + 3, y1 - CELL * PIXEL + 3, x0 + CELL * PIXEL - 3, y1 - 3))
            f = f_cell[i, j]
            lai.append(6 * f)
            cls.append("low" if f < 0.35 else "mid" if f < 0.65 else "high")
            crop.append(["wheat", "maize"][(i + j) % 2])
    fields = gpd.GeoDataFrame({"field": [f"F{k:02d}" for k in range(len(polys))], "lai": lai,
                               "cover": cls, "crop": crop}, geometry=polys, crs=CRS).to_crs(4326)
    fields.to_file(tmp / "fields.gpkg", driver="GPKG")
    # points at 200 random pixel centres, class from their field
    pick = rng.choice(SIZE * SIZE, 200, replace=False)
    rows, cols = pick // SIZE, pick % SIZE
    pts = [Point(X0 + (c + 0.5) * PIXEL, Y0 - (r + 0.5) * PIXEL) for r, c in zip(rows, cols)]
    pf = f_cell[rows // CELL, cols // CELL]
    points = gpd.GeoDataFrame({"cover": np.where(pf < 0.35, "low", np.where(pf < 0.65, "mid", "high"))},
                              geometry=pts, crs=CRS).to_crs(4326)
    points.to_file(folder / "points.geojson", driver="GeoJSON")
    return {"dir": tmp, "stack": tmp / "stack.tif", "fields": tmp / "fields.gpkg", "folder": folder,
            "points": folder / "points.geojson", "f_cell": f_cell}


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """A long-format CSV (irregular dates per sample, clouds as NaN, a sun angle column) and a
    wide-format Parquet."""
    tmp = tmp_path_factory.mktemp("tables")
    rng = np.random.default_rng(1)
    candidates = np.datetime64("2021-03-01") + np.arange(0, 200, 10).astype("timedelta64[D]")
    rows = []
    n = 240
    f = rng.uniform(0.05, 0.95, n)
    xy = rng.uniform(0, 5000, (n, 2))
    for k in range(n):
        d = np.sort(rng.choice(candidates, rng.integers(6, 12), replace=False))
        doy = (d - np.datetime64("2021-03-01")).astype(int)
        season = np.exp(-0.5 * ((doy - 100) / 40.0) ** 2)
        r = _reflectance(f[k] * season) * (1 + 0.02 * rng.standard_normal((len(d), 4)))
        for t in range(len(d)):
            vals = r[t].copy()
            if rng.random() < 0.1:
                vals[:] = np.nan
            rows.append({"sample_id": f"p{k:03d}", "date": str(d[t]), "B2": vals[0], "B3": vals[1],
                         "B4": vals[2], "B8": vals[3], "SZA": 30 + doy[t] / 10, "lai": 6 * f[k],
                         "x": xy[k, 0], "y": xy[k, 1]})
    long = pd.DataFrame(rows).sample(frac=1.0, random_state=0)  # row order must not matter
    long.to_csv(tmp / "points.csv", index=False)
    # wide: one row per sample, '<band>_<date>' columns, a string class target
    m = 90
    fw = rng.uniform(0.05, 0.95, m)
    wide = {"sample_id": [f"w{k}" for k in range(m)],
            "crop": np.where(fw < 0.5, "sparse", "dense"),
            "easting": rng.uniform(0, 3000, m), "northing": rng.uniform(0, 3000, m)}
    for t, d in enumerate(DATES):
        r = _reflectance(fw * SEASON[t])
        for c, b in enumerate(BANDS):
            wide[f"{b}_{d}"] = r[:, c]
    pd.DataFrame(wide).to_parquet(tmp / "wide.parquet")
    bad = long.copy()
    bad.loc[bad.index[5], "date"] = "not-a-date"
    bad.to_csv(tmp / "bad_dates.csv", index=False)
    return {"long": tmp / "points.csv", "wide": tmp / "wide.parquet",
            "bad_dates": tmp / "bad_dates.csv"}


def _cli(tmp_path: Path, *args: str) -> tuple[int, Path]:
    out = tmp_path / "run"
    code = main(["run", "--model", "raw", "--task", "custom", *args, "--seeds", "2",
                 "--n-boot", "0", "--no-plots", "--no-cache", "--tracking-uri", "none",
                 "--output", str(out)])
    return code, out / "results.json"


# -- end to end ----------------------------------------------------------------------------
def test_stack_with_polygons_in_another_crs_end_to_end(scene, tmp_path):
    code, path = _cli(tmp_path, "--data", str(scene["stack"]), "--target", "lai",
                      "--task-option", f"labels={scene['fields']}",
                      "--task-option", "units=reflectance_x10000", *RAW4)
    assert code == 0
    r = read_results(path)
    assert r.task.name == "custom" and r.task.target == "lai" and r.task.target_kind == "regression"
    assert r.task.main_score == "rmse"
    assert sum(r.task.n_samples.values()) == 64 * 25  # every pixel inside the 64 reprojected fields
    # far better than predicting a constant (r2 = 0), in lai units (spread ~1.6)
    assert r.metrics["r2"].mean > 0.8 and r.metrics["rmse"].mean < 0.6


def test_folder_of_dated_geotiffs_with_points_classification(scene, tmp_path):
    code, path = _cli(tmp_path, "--data", str(scene["folder"]), "--target", "cover",
                      "--task-option", "units=reflectance_x10000", *RAW4)  # labels found in folder
    assert code == 0
    r = read_results(path)
    assert r.task.target_kind == "classification" and r.task.main_score == "overall_accuracy"
    assert sum(r.task.n_samples.values()) == 200
    task = CustomTask(scene["folder"], "cover", units="reflectance_x10000")
    y = task.load("test").target
    majority = np.bincount(y).max() / len(y)
    assert r.metrics["overall_accuracy"].mean > max(0.7, majority + 0.1)


def test_long_csv_point_table_end_to_end(tables, tmp_path):
    code, path = _cli(tmp_path, "--data", str(tables["long"]), "--target", "lai", *RAW4)
    assert code == 0
    r = read_results(path)
    assert sum(r.task.n_samples.values()) == 240
    assert r.metrics["r2"].mean > 0.7


def test_run_yaml_with_task_options(scene, tmp_path):
    cfg = {"model": "raw", "task": "custom", "seeds": 1, "n_boot": 0, "plots": False,
           "model_options": {"bands": ["B2", "B3", "B4", "B8"]},
           "task_options": {"data": str(scene["stack"]), "labels": str(scene["fields"]),
                            "target": "cover", "units": "reflectance_x10000", "seed": 3,
                            "polygon_samples": "patch"}}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    code = main(["run", "--config", str(tmp_path / "run.yaml"), "--no-cache", "--tracking-uri",
                 "none", "--output", str(tmp_path / "out")])
    assert code == 0
    r = read_results(tmp_path / "out" / "results.json")
    assert r.task.target_kind == "classification" and sum(r.task.n_samples.values()) == 64


def test_example_config_names_real_options():
    cfg = yaml.safe_load((ROOT / "configs" / "tasks" / "custom-example.yaml").read_text())
    assert cfg["task"] == "custom"
    params = set(inspect.signature(CustomTask.__init__).parameters)
    assert set(cfg["task_options"]) <= params, set(cfg["task_options"]) - params


# -- the task object ------------------------------------------------------------------------
def test_without_data_only_metadata_and_a_clear_load_error():
    task = TASKS.get("custom")()
    assert task.meta is GENERIC_META and not task.has_data and task.needs_user_data
    with pytest.raises(UsageError, match="needs --data PATH and --target COLUMN"):
        task.load("train")


def test_polygon_task_contract_groups_and_metadata(scene):
    task = CustomTask(str(scene["stack"]), "lai", labels=str(scene["fields"]),
                      units="reflectance_x10000")
    check_task(task)  # groups (fields) never cross train / test, loads are stable
    meta = task.meta
    assert meta.dataset.sha256 and len(meta.dataset.sha256) == 64
    assert "stack.tif" in meta.dataset.name and "fields.gpkg" in meta.dataset.name
    assert "polygons" in meta.split_design and "seed 0" in meta.split_design
    train = task.load("train")
    s2 = train.batch["s2"]
    assert s2.values.shape[1:] == (6, 4, 1, 1) and s2.bands == BANDS
    assert str(s2.dates[0, 0]) == "2021-04-01" and str(s2.dates[0, -1]) == "2021-08-04"
    assert 0.05 < 1 - s2.mask.float().mean().item() < 0.15  # the 10 % nodata became the mask
    assert (s2.values[~s2.mask.unsqueeze(2).expand_as(s2.values)] == 0).all()
    # each pixel got its own field's target (polygons were reprojected from EPSG:4326)
    f = scene["f_cell"]
    rows = ((4_800_000.0 - train.batch.extras["y"]) // 10).astype(int)
    cols = ((train.batch.extras["x"] - 500_000.0) // 10).astype(int)
    np.testing.assert_allclose(train.target, 6 * f[rows // 5, cols // 5])
    # another file (or a changed one) gives another dataset hash
    other = CustomTask(str(scene["folder"]), "cover", units="reflectance_x10000")
    assert other.meta.dataset.sha256 != meta.dataset.sha256
    # a different seed reshuffles the fields
    again = CustomTask(str(scene["stack"]), "lai", labels=str(scene["fields"]),
                       units="reflectance_x10000", seed=1)
    assert set(again.load("test").groups) != set(task.load("test").groups)


def test_windowed_reads_match_the_full_read(scene, monkeypatch):
    kw = dict(labels=str(scene["fields"]), units="reflectance_x10000")
    full = CustomTask(str(scene["stack"]), "lai", **kw)
    monkeypatch.setattr(custom_io, "FULL_READ_BYTES", 0)
    windowed = CustomTask(str(scene["stack"]), "lai", **kw)
    for s in ("train", "test"):
        assert full.load(s).content_hash() == windowed.load(s).content_hash()


def test_point_patches_and_the_folder_layout(scene):
    task = CustomTask(str(scene["folder"]), "cover", units="reflectance_x10000", patch_size=3)
    s2 = task.load("train").batch["s2"]
    assert s2.values.shape[1:] == (6, 4, 3, 3)
    assert task.meta.target.class_names == ("high", "low", "mid")
    assert "spatial blocks" in task.meta.split_design and "metre" in task.meta.split_design


def test_wide_parquet_table(tables):
    task = CustomTask(tables["wide"], "crop", id_column="sample_id")
    check_task(task)
    meta = task.meta
    assert meta.target.kind == "classification" and meta.target.class_names == ("dense", "sparse")
    s2 = task.load("train").batch["s2"]
    assert s2.bands == BANDS and s2.values.shape[1:] == (6, 4, 1, 1)
    assert "columns 'easting', 'northing'" in meta.split_design
    n = sum(len(task.load(s)) for s in meta.splits)
    assert n == 90


def test_long_table_with_angles_and_a_split_column(tables, tmp_path):
    df = pd.read_csv(tables["long"])
    ids = sorted(df["sample_id"].unique())
    which = {i: ("train" if k % 5 < 3 else "validation" if k % 5 == 3 else "test")
             for k, i in enumerate(ids)}
    df["fold"] = df["sample_id"].map(which)
    df.to_parquet(tmp_path / "long.parquet")
    task = CustomTask(tmp_path / "long.parquet", "lai", split="fold")
    assert task.meta.modalities == ("s2", "angles") and task.meta.split_design.startswith("splits from")
    test = task.load("test")
    assert set(test.batch.sample_ids) == {i for i, s in which.items() if s == "test"}
    s2, ang = test.batch["s2"], test.batch["angles"]
    assert ang.bands == ("SZA",) and ang.units == ("degree",)
    assert np.isnat(s2.dates).any()  # irregular lengths, NaT padded
    assert (np.diff(s2.dates[0][~np.isnat(s2.dates[0])].astype(int)) > 0).all()
    check_task(task)


def test_kind_inference_and_grouped_split_helpers():
    assert infer_kind(pd.Series([1, 2, 3, 2]), 20) == "classification"
    assert infer_kind(pd.Series(np.arange(100)), 20) == "regression"
    assert infer_kind(pd.Series([0.5, 1.5]), 20) == "regression"
    assert infer_kind(pd.Series(["a", "b"]), 20) == "classification"
    groups = np.repeat(np.arange(50).astype(str), 4)
    split = assign_splits(groups, (0.6, 0.2, 0.2), 0, "test groups")
    assert (split == "train").mean() == pytest.approx(0.6, abs=0.1)
    for g in np.unique(groups):
        assert len(set(split[groups == g])) == 1
    np.testing.assert_array_equal(split, assign_splits(groups, (0.6, 0.2, 0.2), 0, "x"))


# -- bad input: exit 2, the culprit named ---------------------------------------------------
@pytest.fixture(scope="module")
def broken(scene, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("broken")
    with rasterio.open(scene["stack"]) as src:
        data, desc = src.read(), src.descriptions
    _write_tif(tmp / "nocrs.tif", data, desc, crs=None)
    mixed = tmp / "mixed"
    mixed.mkdir()
    for k, f in enumerate(sorted(scene["folder"].glob("*.tif"))):
        with rasterio.open(f) as src:
            _write_tif(mixed / f.name, src.read(), src.descriptions,
                       crs="EPSG:32632" if k == 2 else CRS)
    fields = gpd.read_file(scene["fields"])
    fields.to_file(tmp / "labels.shp")
    (tmp / "labels.prj").unlink()
    far = fields.copy()
    far.loc[3, "geometry"] = box(10.0, 50.0, 10.001, 50.001)  # Germany, not Toulouse
    far.to_file(tmp / "far.gpkg", driver="GPKG")
    return {"nocrs": tmp / "nocrs.tif", "mixed": mixed, "noprj": tmp / "labels.shp",
            "far": tmp / "far.gpkg"}


BAD_CASES = {
    "no data": (lambda s, t, b: [], ["needs --data PATH and --target COLUMN"]),
    "target absent": (lambda s, t, b: ["--data", str(s["stack"]), "--target", "yield",
                                       "--task-option", f"labels={s['fields']}"],
                      ["fields.gpkg", "'yield' not found"]),
    "missing band": (lambda s, t, b: ["--data", str(s["stack"]), "--target", "lai",
                                      "--task-option", f"labels={s['fields']}",
                                      "--task-option", 'bands=["B04","B11"]'],
                     ["stack.tif", "['B11'] not found"]),
    "raster without crs": (lambda s, t, b: ["--data", str(b["nocrs"]), "--target", "lai",
                                            "--task-option", f"labels={s['fields']}"],
                           ["nocrs.tif", "no CRS"]),
    "labels without crs": (lambda s, t, b: ["--data", str(s["stack"]), "--target", "lai",
                                            "--task-option", f"labels={b['noprj']}"],
                           ["labels.shp", "no CRS"]),
    "crs mismatch": (lambda s, t, b: ["--data", str(b["mixed"]), "--target", "lai",
                                      "--task-option", f"labels={s['fields']}"],
                     ["S2_20210511_T31TCJ.tif", "EPSG:32632 differs from EPSG:32631"]),
    "label outside": (lambda s, t, b: ["--data", str(s["stack"]), "--target", "lai",
                                       "--task-option", f"labels={b['far']}"],
                      ["far.gpkg", "outside the raster stack.tif", "features 3,"]),
    "empty class": (lambda s, t, b: ["--data", str(s["stack"]), "--target", "cover",
                                     "--task-option", f"labels={s['fields']}",
                                     "--task-option", 'classes=["low","mid","high","bare"]'],
                    ["fields.gpkg, column 'cover'", "['bare'] have no sample"]),
    "non-numeric regression": (lambda s, t, b: ["--data", str(s["stack"]), "--target", "crop",
                                                "--task-option", f"labels={s['fields']}",
                                                "--task-option", "kind=regression"],
                               ["fields.gpkg, column 'crop'", "must be numeric", "'wheat'"]),
    "unparsable date": (lambda s, t, b: ["--data", str(t["bad_dates"]), "--target", "lai"],
                        ["bad_dates.csv, column 'date'", "'not-a-date'"]),
    "bad kind": (lambda s, t, b: ["--data", str(t["long"]), "--target", "lai",
                                  "--task-option", "kind=ordinal"], ["kind must be one of"]),
    "unknown option": (lambda s, t, b: ["--data", str(t["long"]), "--target", "lai",
                                        "--task-option", "colour=red"], ["colour"]),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input_exits_2_naming_the_culprit(case, scene, tables, broken, tmp_path, capsys):
    make_args, needles = BAD_CASES[case]
    code, _ = _cli(tmp_path, *make_args(scene, tables, broken))
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2, err
    for needle in needles:
        assert needle in err, (needle, err)


def test_unparsable_date_in_a_band_description(scene, tmp_path):
    with rasterio.open(scene["stack"]) as src:
        data, desc = src.read(), list(src.descriptions)
    desc[5] = "B03_2021-13-45"
    _write_tif(tmp_path / "bad.tif", data, desc)
    with pytest.raises(DataError, match=r"bad.tif: band 6.*'2021-13-45'.*not a valid date"):
        CustomTask(tmp_path / "bad.tif", "lai", labels=scene["fields"])


def test_class_absent_from_train_is_an_error(tables, tmp_path):
    df = pd.read_parquet(tables["wide"])
    df["fold"] = np.where(np.arange(len(df)) < 60, "train", "test")
    df.loc[70, "crop"] = "fallow"  # only in test
    df.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match=r"\['fallow'\] have no sample in the train split"):
        CustomTask(tmp_path / "t.csv", "crop", split="fold")


def test_results_json_is_written_for_the_example_shapes(scene, tmp_path):
    """--task-option values are parsed as JSON: lists, numbers, strings all work."""
    code, path = _cli(tmp_path, "--data", str(scene["stack"]), "--target", "lai",
                      "--task-option", f"labels={scene['fields']}",
                      "--task-option", "units=reflectance_x10000",
                      "--task-option", "fractions=[70,10,20]", "--task-option", "seed=5",
                      "--task-option", "max_pixels_per_polygon=9", *RAW4)
    assert code == 0
    data = json.loads(path.read_text())
    assert sum(data["task"]["n_samples"].values()) == 64 * 9


def test_table_without_coordinates_or_groups_is_a_plain_random_split(tables, tmp_path):
    df = pd.read_csv(tables["long"]).drop(columns=["x", "y"])
    df.to_csv(tmp_path / "noxy.csv", index=False)
    task = CustomTask(tmp_path / "noxy.csv", "lai", fractions="80/20")
    assert task.meta.splits == ("train", "test") and "random split" in task.meta.split_design
    assert task.load("train").groups is None
    assert len(task.load("test")) == pytest.approx(48, abs=2)
    check_task(task)
