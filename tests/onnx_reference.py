"""onnxruntime as the reference for the PyTorch re-implementations of ONNX graphs (shared by
test_alise.py and test_malice.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch


def onnx_session(path: Path):
    """A 2-thread CPU onnxruntime session (skips when onnxruntime is not installed)."""
    ort = pytest.importorskip("onnxruntime")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def max_diff(net: torch.nn.Module, session, sits: np.ndarray, tpe: np.ndarray,
             padd: np.ndarray) -> float:
    """Largest absolute difference between ``net`` and the ONNX graph on the same inputs."""
    ref = session.run(None, {"sits": sits, "tpe": tpe, "padd_mask": padd})[0]
    with torch.no_grad():
        out = net(torch.from_numpy(sits), torch.from_numpy(tpe), torch.from_numpy(padd)).numpy()
    assert out.shape == ref.shape
    return float(np.abs(out - ref).max())
