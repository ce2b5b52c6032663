"""Where real datasets live on disk: one root folder, one sub-folder per dataset.

Real-data tasks read the upstream files as a user downloads them. The root is
``$RELEO_DATASETS_DIR`` (the test suite points it at ``../shared/data``), else
``<user data dir>/datasets``. Nothing is downloaded at run or test time: a missing folder is a
:class:`~releo_bench.errors.DataError` saying where to put which files.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import DataError

ENV_VAR = "RELEO_DATASETS_DIR"


def datasets_root() -> Path:
    """``$RELEO_DATASETS_DIR`` or the platform's user data directory + ``/datasets``."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("releo-bench", appauthor=False)) / "datasets"


def dataset_dir(folder: str, *, task: str, source: str, required: tuple[str, ...] = ()) -> Path:
    """The folder of one dataset, checked to hold the ``required`` relative paths.

    ``source``: where a user gets the files (URL, repository @ commit, path inside it), quoted
    in the error message.
    """
    path = datasets_root() / folder
    missing = [r for r in required if not (path / r).exists()]
    if not path.is_dir() or missing:
        what = f"{path} does not exist" if not path.is_dir() else \
            f"{path} lacks {', '.join(missing)}"
        raise DataError(f"task {task!r}: dataset not found ({what}). Download it from {source} "
                        f"into {path}, or set ${ENV_VAR} to the folder that holds {folder}/")
    return path
