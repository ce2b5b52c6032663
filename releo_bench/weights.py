"""Pretrained weights: where each file comes from, where it is found, and its integrity.

An encoder with pretrained weights declares its files as :class:`WeightsFile` records
(upstream URL or Hugging Face Hub repo + revision, file name, sha256, licence). A file is
looked up, in order, in:

1. an explicit path (``--weights PATH`` / the ``weights`` model option): a file, or a folder
   holding ``<folder>/<filename>`` or ``<filename>``;
2. ``$RELEO_WEIGHTS_DIR/<folder>/<filename>`` (the test suite points it at ../shared/weights);
3. the user cache ``<user cache dir>/releo-bench/weights/<folder>/<filename>``, filled by
   ``releo-bench weights fetch`` (HTTPS with a sha256 check, or huggingface_hub for
   hub-hosted files).

Nothing is downloaded implicitly while a benchmark runs: a missing file is a
:class:`WeightsError` (exit code 2) saying where to put it or which variable to set. A sha256
mismatch refuses to load. Files are read with loaders that never unpickle arbitrary objects
(safetensors, ``torch.load(weights_only=True)``, ONNX initialisers, plain text tables).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError

ENV_VAR = "RELEO_WEIGHTS_DIR"
_CHUNK = 1 << 20


class WeightsError(UsageError):
    """A weights file is missing, unreadable or fails its sha256 check."""


@dataclass(frozen=True)
class WeightsFile:
    """One file of a model's weights and where it comes from."""

    model: str  # registry name of the encoder, for messages
    folder: str  # sub-folder under $RELEO_WEIGHTS_DIR and the cache
    filename: str  # relative path inside the folder (may contain '/')
    licence: str
    sha256: str | None = None  # None only for files whose upstream publishes no digest
    url: str | None = None  # HTTPS source
    hf_repo: str | None = None  # Hugging Face Hub source (repo id) ...
    hf_revision: str | None = None  # ... pinned to a commit
    hf_filename: str | None = None  # path inside the hub repo (default: filename)

    @property
    def source(self) -> str:
        if self.hf_repo:
            return f"huggingface.co/{self.hf_repo} @ {self.hf_revision or 'main'}, " \
                   f"{self.hf_filename or self.filename}"
        return self.url or "(no public source recorded)"


def weights_root() -> Path | None:
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else None


def cache_root() -> Path:
    """``$RELEO_CACHE_DIR/weights`` or the user cache directory + ``/weights``."""
    env = os.environ.get("RELEO_CACHE_DIR")
    if env:
        return Path(env).expanduser() / "weights"
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("releo-bench", appauthor=False)) / "weights"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def candidates(file: WeightsFile, explicit: str | Path | None = None) -> list[Path]:
    """Where ``file`` is looked for, in order."""
    out: list[Path] = []
    if explicit is not None:
        p = Path(explicit).expanduser()
        out += [p] if p.is_file() else [p / file.folder / file.filename, p / file.filename]
    root = weights_root()
    if root is not None:
        out.append(root / file.folder / file.filename)
    out.append(cache_root() / file.folder / file.filename)
    return out


def verify(file: WeightsFile, path: Path) -> None:
    """Raise :class:`WeightsError` when ``path``'s sha256 is not the declared one."""
    if file.sha256 is None:
        return
    got = sha256_of(path)
    if got != file.sha256:
        raise WeightsError(f"{file.model}: {path} has sha256 {got}, expected {file.sha256} "
                           f"({file.source}); refusing to load a file that differs from the "
                           f"published weights. Delete it and run `releo-bench weights fetch "
                           f"{file.model}`, or point {ENV_VAR} at a verified copy")


def resolve(file: WeightsFile, explicit: str | Path | None = None) -> Path:
    """The verified local path of ``file``; never downloads."""
    for path in candidates(file, explicit):
        if path.is_file():
            verify(file, path)
            return path
    looked = ", ".join(str(p) for p in candidates(file, explicit))
    raise WeightsError(f"{file.model}: weights file {file.filename!r} not found (looked in "
                       f"{looked}). Run `releo-bench weights fetch {file.model}` (downloads "
                       f"from {file.source}), or put the file at "
                       f"$RELEO_WEIGHTS_DIR/{file.folder}/{file.filename} and set {ENV_VAR}, "
                       f"or pass --weights PATH")


def fetch(file: WeightsFile, timeout: float = 60.0) -> Path:
    """Download ``file`` into the user cache (atomically, sha256-checked) unless present."""
    try:
        return resolve(file)
    except WeightsError:
        pass
    dest = cache_root() / file.folder / file.filename
    dest.parent.mkdir(parents=True, exist_ok=True)
    if file.hf_repo:
        try:
            from huggingface_hub import hf_hub_download
        except ImportError as exc:
            raise WeightsError(f"{file.model}: {file.source} is on the Hugging Face Hub; "
                               f"install huggingface_hub to fetch it") from exc
        try:
            got = Path(hf_hub_download(file.hf_repo, file.hf_filename or file.filename,
                                       revision=file.hf_revision))
        except Exception as exc:  # noqa: BLE001 - network and hub errors all mean "not fetched"
            raise WeightsError(f"{file.model}: cannot download {file.source}: {exc}") from exc
        tmp = Path(tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")[1])
        tmp.write_bytes(got.read_bytes())
    elif file.url:
        fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(file.url, timeout=timeout) as r:
                while chunk := r.read(_CHUNK):
                    out.write(chunk)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise WeightsError(f"{file.model}: cannot download {file.url} ({exc}); put the "
                               f"file at {dest} or set {ENV_VAR}") from exc
    else:
        raise WeightsError(f"{file.model}: no download source recorded for {file.filename}; "
                           f"put it at {dest} or set {ENV_VAR}")
    try:
        verify(file, tmp)
    except WeightsError:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, dest)
    return dest
