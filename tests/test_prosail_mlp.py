"""The physics baseline: probes trained on the project's PROSAIL simulations."""

from __future__ import annotations

import json

import numpy as np
import pytest

from releo_bench.checks import check_encoder
from releo_bench.encoders import prosail_mlp
from releo_bench.encoders.prosail_mlp import ProsailMLP, simulate_training_set
from releo_bench.errors import UsageError

SMALL = 3000  # simulated canopies: enough for the checks below, trains in seconds


def test_training_set_is_physical_and_deterministic():
    X, truth = simulate_training_set(2000, seed=3, noise=0.02)
    again, _ = simulate_training_set(2000, seed=3, noise=0.02)
    other, _ = simulate_training_set(2000, seed=4, noise=0.02)
    assert np.array_equal(X, again) and not np.array_equal(X, other)
    assert X.shape == (2000, 13) and (X[:, :10] >= 0).all() and (X[:, :10] < 1).all()
    red, nir = X[:, 2], X[:, 6]  # B4, B8
    ndvi = (nir - red) / (nir + red)
    assert np.corrcoef(ndvi, truth["lai"])[0, 1] > 0.6  # denser canopy, greener pixel
    assert np.allclose(truth["ccc"], truth["lai"] * truth["cab"] / 100.0)


def test_retrieves_simulated_lai_with_calibrated_intervals(tmp_path):
    from releo_bench.runner import RunConfig, run

    res = run(RunConfig(model="prosail-mlp", task="lai", probe="none", tracking_uri="none",
                        n_boot=0, plots=False, output=tmp_path / "r",
                        model_options={"n_train": SMALL}))
    m = {k: v.mean for k, v in res.result.metrics.items()}
    assert m["r2"] > 0.75 and m["rmse"] < 0.8
    assert 0.8 <= m["picp_90"] <= 0.99


def test_stored_once_and_reloaded_identically():
    prosail_mlp._trained.clear()
    first = prosail_mlp.train(SMALL, 0, 0.02)
    path = prosail_mlp._store_path((SMALL, 0, 0.02))
    assert path.is_file() and path.suffix == ".safetensors"
    prosail_mlp._trained.clear()
    again = prosail_mlp.train(SMALL, 0, 0.02)  # read back from the file, not retrained
    X, _ = simulate_training_set(200, seed=9, noise=0.02)
    Xs = prosail_mlp._standardise(X, first["loc"], first["scale"])
    for name in ("lai", "cab", "ccc"):
        a = first["probes"][name].predict_dist(Xs)
        b = again["probes"][name].predict_dist(Xs)
        assert np.array_equal(a.loc, b.loc) and np.array_equal(a.scale, b.scale)
    # a damaged file is retrained, not trusted
    path.write_bytes(b"not a safetensors file")
    prosail_mlp._trained.clear()
    assert prosail_mlp.train(SMALL, 0, 0.02)["probes"]["lai"] is not None
    json.loads(json.dumps(prosail_mlp.PROBE_PARAMS))  # the stored key is plain JSON


def test_contract_and_options():
    check_encoder(ProsailMLP(n_train=SMALL))
    with pytest.raises(UsageError, match="n_train"):
        ProsailMLP(n_train=10)
    with pytest.raises(UsageError, match="unknown options"):
        ProsailMLP(bogus=1)


def test_refuses_a_task_without_angles(shared_data, capsys):
    from releo_bench.cli import main

    code = main(["run", "--model", "prosail-mlp", "--task", "lai-insitu", "--probe", "none",
                 "--tracking-uri", "none"])
    assert code == 2
    assert "angles" in capsys.readouterr().err
