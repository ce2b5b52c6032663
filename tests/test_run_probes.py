"""Runs with the probabilistic probes: batched torch probes through the runner, presets,
temperature scaling reported before and after, and recorded hyper-parameters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from releo_bench.cli import main
from releo_bench.results import read_results

ROOT = Path(__file__).resolve().parent.parent


def _run(tmp_path: Path, name: str, *extra: str, task: str = "mock-regression") -> Path:
    out = tmp_path / name
    code = main(["run", "--model", "raw", "--task", task, "--output", str(out), "--tracking-uri",
                 "none", "--cache-dir", str(tmp_path / "cache"), "--n-boot", "200", *extra])
    assert code == 0
    return out / "results.json"


def test_mlp_gaussian_preset_runs_batched_and_records_its_choices(tmp_path):
    r = read_results(_run(tmp_path, "mlp", "--probe-config",
                          str(ROOT / "configs/probes/mlp_gaussian.yaml"), "--probe-param",
                          "epochs=60", "--seeds", "3", "--label-fraction", "0.5"))
    assert r.probe.name == "mlp_gaussian" and r.probe.params["epochs"] == 60
    assert r.probe.params["weight_decays"] == [1e-4, 1e-2]  # from the preset
    assert len(r.probe.fitted_params) == 3
    assert all(f["weight_decay"] in (1e-4, 1e-2) for f in r.probe.fitted_params)
    # label fraction 0.5: different training subsets, so the seeds differ
    rmse = [s.metrics["rmse"] for s in r.per_seed]
    assert len(set(np.round(rmse, 12))) == 3
    assert r.metrics["rmse"].mean < 0.8 and r.metrics["picp_90"].mean > 0.6


def test_temperature_scaling_reports_calibration_before_and_after(tmp_path):
    r = read_results(_run(tmp_path, "ts", "--probe", "mlp_classifier", "--probe-param",
                          "temperature_scaling=true", "--probe-param", "epochs=60",
                          "--seeds", "2", task="mock-classification"))
    assert set(r.unscaled_metrics) == {"ece", "mce", "rms_calibration_error", "brier", "log_loss"}
    assert all("temperature" in f for f in r.probe.fitted_params)
    assert all(s.unscaled_metrics for s in r.per_seed)
    # the argmax is unchanged by a temperature, so only calibration metrics differ
    assert "overall_accuracy" not in r.unscaled_metrics
    assert r.metrics["log_loss"].mean <= r.unscaled_metrics["log_loss"].mean + 0.05


def test_preset_for_another_probe_is_refused(tmp_path):
    code = main(["run", "--model", "raw", "--task", "mock-regression", "--probe", "ridge",
                 "--probe-config", str(ROOT / "configs/probes/mlp_gaussian.yaml"),
                 "--tracking-uri", "none", "--output", str(tmp_path / "x")])
    assert code == 2
