"""ALISE (MALICE S2 branch): the PyTorch re-implementation against onnxruntime, the encoder
contract (masked dates ignored), and a run on EuroSAT."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from releo_bench.batch import EOBatch, Modality
from releo_bench.checks import check_encoder
from releo_bench.encoders.adapt import encode_batch
from releo_bench.encoders.alise import Alise, Ubarn
from releo_bench.encoders.alise_net import AliseNet, normalise_s2
from releo_bench.registries import ENCODERS

from onnx_reference import max_diff, onnx_session

# EuroSAT GeoTIFF band order: B01..B08, B09, B10, B11, B12, B8A
EUROSAT_TO_ALISE = [1, 2, 3, 4, 5, 6, 7, 12, 10, 11]


@pytest.fixture
def onnx_path() -> Path:
    path = Path(os.environ["RELEO_WEIGHTS_DIR"]) / "malice" / "malice_s2.onnx"
    if not path.is_file():
        pytest.skip(f"MALICE weights not found at {path} (set RELEO_SHARED_DIR)")
    return path


@pytest.fixture
def net(onnx_path: Path) -> AliseNet:
    return AliseNet.from_onnx(onnx_path)


@pytest.fixture
def session(onnx_path: Path):
    return onnx_session(onnx_path)


@pytest.mark.parametrize("size", [16, 32])
def test_matches_onnxruntime_random(net, session, size):
    rng = np.random.default_rng(size)
    b, t = 2, 6
    sits = rng.normal(0.0, 0.3, (b, t, 10, size, size)).astype(np.float32)
    tpe = np.sort(rng.uniform(2500, 4000, (b, t)), axis=1).astype(np.float32)
    padd = np.zeros((b, t), dtype=bool)
    padd[1, 4:] = True
    assert max_diff(net, session, sits, tpe, padd) <= 1e-4


def _eurosat_patches(n: int = 3) -> np.ndarray:
    rasterio = pytest.importorskip("rasterio")
    root = Path(os.environ["RELEO_DATASETS_DIR"]) / "eurosat_ms_200"
    files = sorted(root.glob("*/*.tif"))[:: 60][:n]
    if len(files) < n:
        pytest.skip(f"EuroSAT sample not found under {root}")
    out = []
    for f in files:
        with rasterio.open(f) as src:
            out.append(src.read().astype(np.float32)[EUROSAT_TO_ALISE])
    return np.stack(out)  # [n, 10, 64, 64] reflectance x 10000


def test_matches_onnxruntime_eurosat(net, session):
    x = normalise_s2(torch.from_numpy(_eurosat_patches()))
    sits = x.unsqueeze(1).numpy()  # one date
    tpe = np.full((len(sits), 1), 1500.0, dtype=np.float32)
    padd = np.zeros((len(sits), 1), dtype=bool)
    assert max_diff(net, session, sits, tpe, padd) <= 1e-4


def test_padded_dates_ignored(net):
    rng = np.random.default_rng(1)
    sits = torch.from_numpy(rng.normal(0, 0.3, (1, 5, 10, 16, 16)).astype(np.float32))
    tpe = torch.arange(5, dtype=torch.float32)[None] * 10 + 3000
    padd = torch.tensor([[False, True, False, False, True]])
    noisy = sits.clone()
    noisy[:, 1] = 50.0
    noisy[:, 4] = -7.0
    with torch.no_grad():
        a, b = net(sits, tpe, padd), net(noisy, tpe, padd)
        kept = net(sits[:, [0, 2, 3]], tpe[:, [0, 2, 3]], padd[:, [0, 2, 3]])
    assert torch.equal(a, b)
    assert (a - kept).abs().max() < 1e-5


def _batch(values: np.ndarray, mask: np.ndarray, dates: np.ndarray) -> EOBatch:
    bands = ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12")
    mod = Modality(torch.from_numpy(values), dates, torch.from_numpy(mask), bands,
                   "reflectance_x10000")
    return EOBatch({"s2": mod}, tuple(f"s{i}" for i in range(len(values))))


def test_encoder_masked_dates_ignored(onnx_path):
    rng = np.random.default_rng(2)
    values = rng.uniform(0, 5000, (2, 4, 10, 16, 16)).astype(np.float32)
    dates = np.datetime64("2021-03-01") + np.array([[0, 10, 20, 30]] * 2).astype("timedelta64[D]")
    mask = np.ones((2, 4, 16, 16), dtype=bool)
    mask[0, 1] = False  # a cloudy date
    mask[1, 2, :12] = False  # mostly cloudy: dropped (min_valid 0.5)
    mask[1, 3, :2] = False  # a few cloudy pixels: kept, filled
    enc = Alise(weights=str(onnx_path))
    first = encode_batch(enc, _batch(values, mask, dates)).features
    noisy = values.copy()
    noisy[~np.broadcast_to(mask[:, :, None], values.shape)] = 9999.0
    again = encode_batch(enc, _batch(noisy, mask, dates)).features
    assert first.shape == (2, 640)
    assert torch.equal(first, again)
    padd = enc.branch.inputs(_batch(values, mask, dates)["s2"]).padd
    assert padd.tolist() == [[False, True, False, False], [False, False, True, False]]


def test_pixel_tiled(onnx_path):
    rng = np.random.default_rng(3)
    values = rng.uniform(0, 5000, (2, 3, 10, 1, 1)).astype(np.float32)
    dates = np.datetime64("2021-03-01") + np.array([[0, 10, 20]] * 2).astype("timedelta64[D]")
    batch = _batch(values, np.ones((2, 3, 1, 1), dtype=bool), dates)
    enc = Alise(weights=str(onnx_path))
    px = enc.encode(batch).features
    tiled = _batch(np.ascontiguousarray(np.broadcast_to(values, (2, 3, 10, 16, 16))),
                   np.ones((2, 3, 16, 16), dtype=bool), dates)
    assert px.shape == (2, 640)
    assert (px - enc.encode(tiled).features).abs().max() < 1e-5


@pytest.mark.parametrize("name", ["alise", "ubarn"])
def test_check_encoder(onnx_path, name):
    enc = ENCODERS.get(name)(weights=str(onnx_path))
    check_encoder(enc)
    assert enc.meta.min_patch_size == 16 and enc.meta.date_reference == "2014-03-03"


def test_ubarn_per_date(onnx_path):
    rng = np.random.default_rng(4)
    values = rng.uniform(0, 5000, (1, 3, 10, 16, 16)).astype(np.float32)
    dates = np.datetime64("2021-03-01") + np.array([[0, 10, 20]]).astype("timedelta64[D]")
    mask = np.ones((1, 3, 16, 16), dtype=bool)
    mask[0, 1] = False
    emb = encode_batch(Ubarn(weights=str(onnx_path)), _batch(values, mask, dates))
    assert emb.features.shape == (1, 3, 64)
    assert emb.time_mask.tolist() == [[True, False, True]]


def test_lazy_weights_and_options(tmp_path):
    enc = Alise(weights=str(tmp_path / "nothing.onnx"))
    assert enc.meta.embedding_shape == (640,)  # metadata without weights
    assert enc._branch is None  # nothing read yet
    from releo_bench.errors import UsageError
    with pytest.raises(UsageError):
        Alise(bogus=1)


def test_run_eurosat(onnx_path, tmp_path):
    from releo_bench.runner import RunConfig, run

    root = Path(os.environ["RELEO_DATASETS_DIR"]) / "eurosat_ms_200"
    if not root.is_dir():
        pytest.skip(f"EuroSAT sample not found at {root}")
    run(RunConfig(model="alise", task="eurosat-ms", seeds=1, tracking_uri="none", n_boot=50,
                  plots=False, output=tmp_path / "r"))
    assert any((tmp_path / "r").rglob("results.json"))
