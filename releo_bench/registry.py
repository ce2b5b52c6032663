"""One generic registry for encoders, tasks, probes and metrics.

Entries are either objects registered directly or *lazy* targets ``"module:attribute"`` that
are imported on first lookup, so that ``releo-bench list`` stays fast and heavy dependencies
(ONNX, rasterio...) are only imported by the component that needs them. Other packages
register components through Python entry points (group ``releo_bench.<kind>s``), e.g. in
their ``pyproject.toml``::

    [project.entry-points."releo_bench.encoders"]
    my-encoder = "my_package.encoder:MyEncoder"
"""

from __future__ import annotations

import difflib
import importlib
import logging
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Callable, Generic, Iterator, TypeVar

from .errors import DuplicateNameError, ReleoError, UnknownNameError

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass
class _Entry(Generic[T]):
    name: str
    obj: T | None = None
    target: str | None = None  # "module:attr" for lazy entries
    summary: str = ""
    origin: str = "builtin"  # or the distribution that provided it through an entry point


def nearest_names(name: str, available: list[str], n: int = 3) -> list[str]:
    """Closest registered names: good matches first, else substring hits, else the least far."""
    good = difflib.get_close_matches(name, available, n=n, cutoff=0.6)
    if good:
        return good
    contains = [a for a in available if name.lower() in a.lower() or a.lower() in name.lower()]
    if contains:
        return contains[:n]
    return difflib.get_close_matches(name, available, n=min(n, 2), cutoff=0.0)


class Registry(Generic[T]):
    """Name -> component mapping with lazy import, duplicate checks and suggestions."""

    def __init__(self, kind: str, *, entry_point_group: str | None = None,
                 builtins: Callable[[], None] | None = None):
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._builtins = builtins
        self._entries: dict[str, _Entry[T]] = {}
        self._populated = False

    # -- registration -------------------------------------------------------------------
    def _add(self, entry: _Entry[T], overwrite: bool) -> None:
        if entry.name in self._entries and not overwrite:
            prev = self._entries[entry.name]
            raise DuplicateNameError(
                f"{self.kind} {entry.name!r} is already registered (by {prev.origin}, "
                f"{prev.target or type(prev.obj).__name__}); pick another name or pass overwrite=True")
        self._entries[entry.name] = entry

    def register(self, name: str, obj: T | None = None, *, summary: str = "",
                 overwrite: bool = False):
        """Register ``obj`` under ``name``; without ``obj``, return a decorator."""
        if obj is not None:
            self._add(_Entry(name, obj=obj, summary=summary), overwrite)
            return obj

        def decorator(o: T) -> T:
            self._add(_Entry(name, obj=o, summary=summary), overwrite)
            return o

        return decorator

    def register_lazy(self, name: str, target: str, *, summary: str = "",
                      overwrite: bool = False, origin: str = "builtin") -> None:
        """Register ``"package.module:attribute"``, imported on first :meth:`get`."""
        if ":" not in target:
            raise ValueError(f"lazy target must look like 'module:attribute', got {target!r}")
        self._add(_Entry(name, target=target, summary=summary, origin=origin), overwrite)

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    # -- lookup -------------------------------------------------------------------------
    def _populate(self) -> None:
        if self._populated:
            return
        self._populated = True
        if self._builtins is not None:
            self._builtins()
        if self.entry_point_group:
            for ep in entry_points(group=self.entry_point_group):
                dist = getattr(ep, "dist", None)
                origin = f"entry point of {dist.name}" if dist is not None else "entry point"
                try:
                    self.register_lazy(ep.name, ep.value, origin=origin)
                except DuplicateNameError:
                    log.warning("ignoring %s %r from %s: the name is already taken",
                                self.kind, ep.name, origin)

    def names(self) -> list[str]:
        self._populate()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._populate()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def summary(self, name: str) -> str:
        return self._entry(name).summary

    def _entry(self, name: str) -> _Entry[T]:
        self._populate()
        try:
            return self._entries[name]
        except KeyError:
            available = sorted(self._entries)
            suggestions = nearest_names(name, available)
            raise UnknownNameError(self.kind, name, suggestions, available) from None

    def get(self, name: str) -> T:
        """Return the component, importing it if it was registered lazily."""
        entry = self._entry(name)
        if entry.obj is None:
            module_name, _, attr = entry.target.partition(":")  # type: ignore[union-attr]
            try:
                module = importlib.import_module(module_name)
                obj = module
                for part in attr.split("."):
                    obj = getattr(obj, part)
            except (ImportError, AttributeError) as exc:
                raise ReleoError(f"cannot import {self.kind} {name!r} from {entry.target} "
                                 f"({entry.origin}): {exc}") from exc
            entry.obj = obj
        return entry.obj
