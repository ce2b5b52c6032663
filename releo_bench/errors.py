"""Error types that map to the CLI's exit codes.

``UsageError`` and its subclasses mean the *user* gave something wrong (exit 2); the message
always names the thing at fault and what was expected. Anything else escaping the CLI is an
internal error (exit 1).
"""

from __future__ import annotations


class ReleoError(Exception):
    """Base class of every error releo-bench raises on purpose."""


class UsageError(ReleoError):
    """Bad usage or bad input: the CLI exits with code 2."""


class UnknownNameError(UsageError, KeyError):
    """A name was looked up in a registry and not found."""

    def __init__(self, kind: str, name: str, suggestions: list[str], available: list[str]):
        self.kind, self.name, self.suggestions, self.available = kind, name, suggestions, available
        msg = f"unknown {kind} {name!r}"
        if suggestions:
            msg += f"; did you mean {' or '.join(repr(s) for s in suggestions)}?"
        msg += f" (available {kind}s: {', '.join(available) or 'none'})"
        super().__init__(msg)

    def __str__(self) -> str:  # KeyError would otherwise quote the whole message
        return self.args[0]


class DuplicateNameError(ReleoError):
    """Two components were registered under the same name."""


class UnitError(UsageError):
    """A band's unit is missing, ambiguous or cannot be converted to what an encoder expects."""


class BandError(UsageError):
    """A band an encoder needs is missing from the data."""


class DataError(UsageError):
    """Input data is malformed (shape, dtype, dates, masks...)."""


class DeviceError(UsageError):
    """The requested compute device is not available."""
