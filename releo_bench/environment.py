"""What a run ran on: package versions, device, code version (recorded in every result)."""

from __future__ import annotations

import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

from .errors import DeviceError

RECORDED_PACKAGES = ("torch", "numpy", "scipy", "scikit-learn", "pandas", "pydantic",
                     "mlflow", "torchmetrics", "properscoring", "safetensors")


def package_versions() -> dict[str, str]:
    out = {}
    for name in RECORDED_PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def code_version() -> str | None:
    """The git commit of the releo-bench source tree, if it is a checkout (``+dirty`` if modified)."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("+dirty" if dirty else "")


def resolve_device(requested: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is a usage error."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {requested}: no CUDA device is available on this "
                              "machine; use --device cpu or auto")
        return torch.device(requested)
    if requested == "cpu":
        return torch.device("cpu")
    raise DeviceError(f"--device must be auto, cpu or cuda[:N], got {requested!r}")


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def python_version() -> str:
    return sys.version.split()[0]
