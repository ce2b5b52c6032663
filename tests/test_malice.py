"""MALICE: the S1 branch against onnxruntime (random and a real WorldCereal patch), the S1
channel conversion, the fusion of both branches, and refusals on S2-only tasks."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from releo_bench.batch import EOBatch, Modality
from releo_bench.checks import check_encoder
from releo_bench.encoders.adapt import encode_batch
from releo_bench.encoders.alise import Alise
from releo_bench.encoders.alise_net import AliseNet, normalise_s2
from releo_bench.encoders.malice import Malice, s1_channels

from onnx_reference import max_diff, onnx_session

S2 = ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12")


def _weights(name: str) -> Path:
    path = Path(os.environ["RELEO_WEIGHTS_DIR"]) / "malice" / name
    if not path.is_file():
        pytest.skip(f"MALICE weights not found at {path} (set RELEO_SHARED_DIR)")
    return path


@pytest.fixture
def folder() -> Path:
    _weights("malice_s1.onnx")
    return _weights("malice_s2.onnx").parent


def test_s1_branch_matches_onnxruntime_random():
    path = _weights("malice_s1.onnx")
    net = AliseNet.from_onnx(path)
    assert net.unet.in_conv[0].in_channels == 3
    rng = np.random.default_rng(11)
    sits = rng.normal(0.0, 0.3, (2, 5, 3, 16, 16)).astype(np.float32)
    tpe = np.sort(rng.uniform(2500, 4000, (2, 5)), axis=1).astype(np.float32)
    padd = np.zeros((2, 5), dtype=bool)
    padd[0, 3:] = True
    assert max_diff(net, onnx_session(path), sits, tpe, padd) <= 1e-4


def _worldcereal_patch(size: int = 32) -> dict[str, np.ndarray]:
    from releo_bench.tasks.gap_filling_worldcereal import NC_FILE, read_patch

    path = Path(os.environ["RELEO_DATASETS_DIR"]) / "worldcereal" / NC_FILE
    if not path.is_file():
        pytest.skip(f"WorldCereal patch not found at {path}")
    pytest.importorskip("h5py")
    cube = read_patch(path)
    return {"s2": cube["s2"][:, :, :size, :size], "s1": cube["s1"][:, :, :size, :size],
            "dates": cube["dates"]}


def test_both_branches_match_onnxruntime_on_a_real_worldcereal_patch(folder):
    """12 monthly steps of a real 32 x 32 px WorldCereal patch (Uganda, 2017) through both
    branches. The file has no B8A: B08 stands in for it here (an equivalence check of the two
    implementations on real value distributions, not a scientific use)."""
    from releo_bench.encoders.alise_net import days_since_reference

    cube = _worldcereal_patch()
    dn = cube["s2"].astype(np.float32)  # [T, 9, H, W]: B02..B08, B11, B12
    missing = (cube["s2"] == 65535).any(axis=1)
    s2 = np.concatenate([dn[:, :7], dn[:, 6:7], dn[:, 7:]], axis=1)  # B8A <- B08
    s2[np.broadcast_to(missing[:, None], s2.shape)] = np.nan
    sits2 = normalise_s2(torch.from_numpy(s2)).numpy()[None]
    raw1 = cube["s1"].astype(np.float64)
    lin = 10.0 ** ((20.0 * np.log10(np.maximum(raw1, 1.0)) - 83.0) / 10.0)  # VV, VH linear
    sits1 = s1_channels(torch.from_numpy(lin.astype(np.float32))[None]).numpy()
    tpe = days_since_reference(cube["dates"][None])
    keep2 = missing.mean(axis=(1, 2)) < 0.5
    for name, sits, padd in (("malice_s2.onnx", sits2, ~keep2[None]),
                             ("malice_s1.onnx", sits1, np.zeros((1, len(tpe[0])), dtype=bool))):
        path = folder / name
        assert max_diff(AliseNet.from_onnx(path), onnx_session(path), sits.astype(np.float32),
                         tpe, padd) <= 1e-4, name


def test_s1_channels_closed_form():
    """dB in, through the harness unit conversion: ln(VH) = VH_dB ln(10) / 10, etc."""
    from releo_bench.encoders.adapt import prepare_batch
    from releo_bench.encoders.alise_net import s1_log_channels

    vv_db, vh_db = -9.0, -16.5
    s2, d2, m2, s1, d1, m1 = _pair(np.random.default_rng(0), n=1, size=1)
    s1[:] = np.array([vv_db, vh_db], dtype=np.float32)[None, None, :, None, None]
    meta = Malice().meta
    assert meta.modalities["s1"].units == ("linear", "linear")
    prepared = prepare_batch(_malice_batch(s2, d2, m2, s1, d1, m1), meta)["s1"].values
    ch = s1_log_channels(prepared[:, :, 0], prepared[:, :, 1])[0, 0, :, 0, 0]
    k = math.log(10.0) / 10.0
    expect = [vh_db * k, vv_db * k, (vh_db - vv_db) * k]
    assert torch.allclose(ch.double(), torch.tensor(expect, dtype=torch.float64), atol=1e-5)


def _pair(rng: np.random.Generator, n: int = 2, size: int = 16):
    s2 = rng.uniform(200, 4000, (n, 4, 10, size, size)).astype(np.float32)
    d2 = np.datetime64("2021-04-01") + np.array([[0, 20, 40, 60]] * n).astype("timedelta64[D]")
    s1 = rng.uniform(-20, -5, (n, 5, 2, size, size)).astype(np.float32)
    d1 = np.datetime64("2021-04-03") + np.array([[0, 12, 24, 36, 48]] * n).astype("timedelta64[D]")
    m2 = np.ones((n, 4, size, size), dtype=bool)
    m1 = np.ones((n, 5, size, size), dtype=bool)
    return s2, d2, m2, s1, d1, m1


def _malice_batch(s2, d2, m2, s1, d1, m1) -> EOBatch:
    return EOBatch({"s2": Modality(torch.from_numpy(s2), d2, torch.from_numpy(m2), S2,
                                   "reflectance_x10000"),
                    "s1": Modality(torch.from_numpy(s1), d1, torch.from_numpy(m1), ("VV", "VH"),
                                   "dB")})


def test_fusion(folder):
    rng = np.random.default_rng(5)
    s2, d2, m2, s1, d1, m1 = _pair(rng)
    m2[1] = False  # sample 1: every S2 date cloudy -> S1 alone
    batch = _malice_batch(s2, d2, m2, s1, d1, m1)
    mean = encode_batch(Malice(weights=str(folder)), batch).features
    concat = encode_batch(Malice(weights=str(folder), fusion="concat"), batch).features
    assert mean.shape == (2, 640) and concat.shape == (2, 1280)
    s2_part, s1_part = concat[:, :640], concat[:, 640:]
    # sample 0: the average of the two aligned representations, which differ
    assert torch.allclose(mean[0], (s2_part[0] + s1_part[0]) / 2, atol=1e-6)
    assert (s2_part[0] - s1_part[0]).abs().max() > 1e-2
    # S2 branch alone = alise
    alise = encode_batch(Alise(weights=str(folder)), batch).features
    assert torch.allclose(s2_part[0], alise[0], atol=1e-6)
    # sample 1: no usable S2 date -> S1 representation alone, S2 part zero
    assert torch.allclose(mean[1], s1_part[1], atol=1e-6)
    assert s2_part[1].abs().max() == 0


def test_check_encoder(folder):
    check_encoder(Malice(weights=str(folder)))
    check_encoder(Malice(weights=str(folder), fusion="concat"))


def test_wrong_s1_unit_refused(folder):
    """S1 given as linear power labelled dB: the harness converts, but a DN-like 'reflectance'
    label for S1 is a unit of another quantity and fails loudly."""
    from releo_bench.errors import UnitError

    rng = np.random.default_rng(2)
    s2, d2, m2, s1, d1, m1 = _pair(rng, n=1)
    batch = _malice_batch(s2, d2, m2, s1, d1, m1)
    bad = EOBatch({"s2": batch["s2"], "s1": Modality(batch["s1"].values, d1, batch["s1"].mask,
                                                      ("VV", "VH"), "reflectance")})
    with pytest.raises(UnitError, match="s1"):
        encode_batch(Malice(weights=str(folder)), bad)


def test_refuses_s2_only_task(folder, capsys):
    from releo_bench.cli import main

    root = Path(os.environ["RELEO_DATASETS_DIR"]) / "eurosat_ms_200"
    if not root.is_dir():
        pytest.skip(f"EuroSAT sample not found at {root}")
    code = main(["run", "--model", "malice", "--task", "eurosat-ms", "--tracking-uri", "none"])
    assert code == 2
    err = capsys.readouterr().err
    assert "s1" in err and "eurosat-ms" in err
