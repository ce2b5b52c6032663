"""Shared fixtures: isolated cache / tracking directories, the shared real-data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("RELEO_SHARED_DIR", ROOT.parent / "shared"))


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test writes into the user's cache or MLflow store, nor reads a tracking URI from env."""
    base = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("RELEO_CACHE_DIR", str(base / "cache"))
    monkeypatch.setenv("RELEO_DATA_DIR", str(base / "data"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("RELEO_DATASETS_DIR", str(SHARED / "data"))  # real-data tasks read here
    monkeypatch.setenv("RELEO_WEIGHTS_DIR", str(SHARED / "weights"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = SHARED / "data"
    if not path.is_dir():
        pytest.skip(f"real EO samples not found at {path} (set RELEO_SHARED_DIR); they are "
                    "provided to developers and CI, not shipped with the repository")
    return path
