"""Start a throw-away local ``mlflow server`` (tests, demos) and always stop it again.

The server is light on purpose (one worker, no job runner: ~10 s and ~0.5 GB instead of
~22 s and ~2.7 GB), binds 127.0.0.1 only, and runs in its own process group so that stopping
it also stops the worker processes it forks. Its output goes to a file, not a pipe: a pipe
nobody reads fills up and blocks the server.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import ReleoError

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _tail(path: Path, n_chars: int = 4000) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no server output)"
    return text[-n_chars:].strip() or "(no server output)"


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _stop_group(proc: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    """SIGTERM the server's process group, SIGKILL whatever is left after ``grace_s``.

    The group id is the leader's pid; it stays reserved while any member lives, so signalling
    it cannot hit an unrelated process.
    """
    pgid = proc.pid
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        proc.wait()
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            try:
                os.killpg(pgid, 0)  # workers may outlive the leader for a moment
            except ProcessLookupError:
                return
        time.sleep(0.1)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def server_command(backend_uri: str, artifacts_dir: str | Path, port: int) -> list[str]:
    """The ``mlflow server`` command line: proxied artifact serving, one worker, local only."""
    return [
        sys.executable, "-m", "mlflow", "server",
        "--host", HOST,
        "--port", str(port),
        "--workers", "1",
        "--backend-store-uri", backend_uri,
        "--serve-artifacts",
        "--artifacts-destination", Path(artifacts_dir).resolve().as_uri(),
    ]


@contextmanager
def start_mlflow_server(
    backend_uri: str,
    artifacts_dir: str | Path,
    port: int | None = None,
    timeout: float = 60.0,
) -> Iterator[str]:
    """Run ``mlflow server`` for the duration of the ``with`` block and yield its base URL.

    Raises :class:`ReleoError` with the tail of the server's output when it exits early or is
    not healthy within ``timeout`` seconds. The process group is stopped on every exit path.
    """
    port = free_port() if port is None else port
    url = f"http://{HOST}:{port}"
    Path(artifacts_dir).mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    with tempfile.TemporaryDirectory(prefix="releo-mlflow-server-") as log_dir:
        log_path = Path(log_dir) / "server.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                server_command(backend_uri, artifacts_dir, port),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=env, start_new_session=True, cwd=log_dir,
            )
        try:
            deadline = time.monotonic() + timeout
            while not _healthy(url):
                if proc.poll() is not None:
                    raise ReleoError(f"mlflow server on {url} exited with code {proc.returncode} "
                                     f"before becoming ready; its output:\n{_tail(log_path)}")
                if time.monotonic() > deadline:
                    raise ReleoError(f"mlflow server on {url} not ready after {timeout:g} s; "
                                     f"its output:\n{_tail(log_path)}")
                time.sleep(0.2)
            yield url
        finally:
            _stop_group(proc)


__all__ = ["free_port", "server_command", "start_mlflow_server"]
