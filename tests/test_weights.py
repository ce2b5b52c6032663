"""Weights files: lookup order, sha256 refusal, offline errors, fetch over real HTTP, the CLI."""

from __future__ import annotations

import hashlib
import http.server
import threading
from functools import partial
from pathlib import Path

import pytest

from releo_bench.cli import main
from releo_bench.encoders.raw import RawEncoder
from releo_bench.registries import ENCODERS
from releo_bench.weights import WeightsError, WeightsFile, fetch, resolve

PAYLOAD = b"releo-bench test weights\x00\x01\x02" * 100
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


def _file(**kw) -> WeightsFile:
    base = dict(model="toy", folder="toy", filename="net.bin", licence="Apache-2.0",
                sha256=DIGEST)
    return WeightsFile(**{**base, **kw})


def test_lookup_order_explicit_then_env_then_cache(tmp_path, monkeypatch):
    env, explicit = tmp_path / "env", tmp_path / "explicit"
    for root in (env, explicit, tmp_path / "cache" / "weights"):
        (root / "toy").mkdir(parents=True)
        (root / "toy" / "net.bin").write_bytes(PAYLOAD)
    monkeypatch.setenv("RELEO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("RELEO_WEIGHTS_DIR", str(env))
    assert resolve(_file(), explicit) == explicit / "toy" / "net.bin"
    assert resolve(_file(), explicit / "toy" / "net.bin") == explicit / "toy" / "net.bin"
    assert resolve(_file()) == env / "toy" / "net.bin"
    monkeypatch.delenv("RELEO_WEIGHTS_DIR")
    assert resolve(_file()) == tmp_path / "cache" / "weights" / "toy" / "net.bin"


def test_sha256_mismatch_refuses_to_load(tmp_path, monkeypatch):
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "net.bin").write_bytes(PAYLOAD + b"tampered")
    monkeypatch.setenv("RELEO_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(WeightsError, match=f"expected {DIGEST}"):
        resolve(_file())


def test_missing_file_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("RELEO_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(WeightsError) as info:
        resolve(_file(url="https://example.invalid/net.bin"))
    msg = str(info.value)
    assert "RELEO_WEIGHTS_DIR" in msg and "releo-bench weights fetch toy" in msg
    assert str(tmp_path / "toy" / "net.bin") in msg


@pytest.fixture
def http_server(tmp_path):
    """A real HTTP server on 127.0.0.1 serving tmp_path/www."""
    www = tmp_path / "www"
    www.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_fetch_downloads_verifies_and_caches(http_server, tmp_path, monkeypatch):
    www, base = http_server
    (www / "net.bin").write_bytes(PAYLOAD)
    monkeypatch.setenv("RELEO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("RELEO_WEIGHTS_DIR", raising=False)
    path = fetch(_file(url=f"{base}/net.bin"))
    assert path == tmp_path / "cache" / "weights" / "toy" / "net.bin"
    assert path.read_bytes() == PAYLOAD
    (www / "net.bin").unlink()  # a second fetch uses the verified cached copy
    assert fetch(_file(url=f"{base}/net.bin")) == path


def test_fetch_of_a_tampered_download_keeps_nothing(http_server, tmp_path, monkeypatch):
    www, base = http_server
    (www / "net.bin").write_bytes(PAYLOAD[:-1])
    monkeypatch.setenv("RELEO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("RELEO_WEIGHTS_DIR", raising=False)
    with pytest.raises(WeightsError, match="sha256"):
        fetch(_file(url=f"{base}/net.bin"))
    assert not any((tmp_path / "cache" / "weights" / "toy").iterdir())


def test_fetch_offline_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.setenv("RELEO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("RELEO_WEIGHTS_DIR", raising=False)
    with pytest.raises(WeightsError, match="cannot download"):
        fetch(_file(url="http://127.0.0.1:9/net.bin"), timeout=2)  # port 9: discard, refused


class _ToyEncoder(RawEncoder):
    WEIGHTS = (WeightsFile(model="toy-weights", folder="toy", filename="net.bin",
                           licence="Apache-2.0", sha256=DIGEST, url="http://127.0.0.1:9/net.bin"),)


@pytest.fixture
def toy_registered():
    ENCODERS.register("toy-weights", _ToyEncoder)
    yield
    ENCODERS.unregister("toy-weights")


def test_weights_cli_list_verify_fetch(toy_registered, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("RELEO_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("RELEO_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["weights", "verify", "toy-weights"]) == 2  # missing: exit 2
    assert main(["weights", "fetch", "toy-weights"]) == 2  # offline: exit 2
    err = capsys.readouterr().err.replace("\n", "")
    assert "RELEO_WEIGHTS_DIR" in err and "cannot download" in err
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "net.bin").write_bytes(PAYLOAD)
    assert main(["weights", "verify", "toy-weights"]) == 0
    assert main(["weights", "list", "toy-weights"]) == 0
    out = capsys.readouterr().out
    assert "ok" in out and str(tmp_path / "toy" / "net.bin") in out.replace("\n", "")
    (tmp_path / "toy" / "net.bin").write_bytes(PAYLOAD + b"x")
    assert main(["weights", "verify", "toy-weights"]) == 2
    assert main(["weights", "verify", "raw"]) == 2  # a model without weights
