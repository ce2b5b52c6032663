"""Physical units of bands and the conversions between them.

Every band of every modality declares a unit string from :data:`UNITS`. The harness converts
data to the unit an encoder declares; a unit that is not known, or two units of different
quantities, is an error naming the band, never a guess. ``"DN"`` alone is deliberately *not*
a unit: Sentinel-2 digital numbers have had different offsets across processing baselines,
so data must say ``reflectance_x10000`` (DN = 10000 x reflectance, offset already removed) or
``reflectance_x10000_offset1000`` (baseline >= 04.00 L2A/L1C, DN = 10000 x reflectance + 1000).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .errors import UnitError


@dataclass(frozen=True)
class Unit:
    name: str
    quantity: str
    to_canonical: Callable[[torch.Tensor], torch.Tensor]
    from_canonical: Callable[[torch.Tensor], torch.Tensor]
    description: str


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _db_to_linear(x: torch.Tensor) -> torch.Tensor:
    return torch.pow(10.0, x / 10.0)


def _linear_to_db(x: torch.Tensor) -> torch.Tensor:
    # backscatter power of 0 (no return / masked) maps to -inf: keep it finite and visible
    return 10.0 * torch.log10(torch.clamp(x, min=1e-10))


UNITS: dict[str, Unit] = {u.name: u for u in [
    Unit("reflectance", "reflectance", _identity, _identity,
         "surface or top-of-atmosphere reflectance, 0-1"),
    Unit("reflectance_x10000", "reflectance", lambda x: x / 10000.0, lambda x: x * 10000.0,
         "digital numbers = 10000 x reflectance (no offset; L2A before baseline 04.00, THEIA)"),
    Unit("reflectance_x10000_offset1000", "reflectance", lambda x: (x - 1000.0) / 10000.0,
         lambda x: x * 10000.0 + 1000.0,
         "digital numbers = 10000 x reflectance + 1000 (ESA processing baseline >= 04.00)"),
    Unit("linear", "backscatter", _identity, _identity,
         "radar backscatter coefficient (sigma0 or gamma0) in linear power units"),
    Unit("dB", "backscatter", _db_to_linear, _linear_to_db,
         "radar backscatter coefficient in decibels, 10 log10(linear)"),
    Unit("degree", "angle", _identity, _identity, "angle in degrees"),
    Unit("radian", "angle", lambda x: torch.rad2deg(x), lambda x: torch.deg2rad(x),
         "angle in radians"),
    Unit("index", "index", _identity, _identity, "dimensionless spectral index, e.g. NDVI in [-1, 1]"),
    Unit("probability", "probability", _identity, _identity, "probability 0-1 (e.g. cloud)"),
    Unit("percent", "probability", lambda x: x / 100.0, lambda x: x * 100.0, "percentage 0-100"),
    Unit("m", "length", _identity, _identity, "metres (e.g. elevation)"),
    Unit("K", "temperature", _identity, _identity, "kelvin"),
    Unit("degC", "temperature", lambda x: x + 273.15, lambda x: x - 273.15, "degrees Celsius"),
    Unit("mm", "precipitation", _identity, _identity, "millimetres of water"),
    Unit("dimensionless", "dimensionless", _identity, _identity,
         "a unitless quantity that is never converted"),
]}


def check_unit(unit: str, *, where: str) -> Unit:
    """Return the :class:`Unit` for ``unit`` or raise a :class:`UnitError` naming ``where``."""
    try:
        return UNITS[unit]
    except KeyError:
        hint = ""
        if unit.lower() in {"dn", "digital number", "digital numbers"}:
            hint = (" 'DN' is ambiguous: say 'reflectance_x10000' (no offset) or "
                    "'reflectance_x10000_offset1000' (ESA baseline >= 04.00)")
        raise UnitError(f"{where}: unknown unit {unit!r}; expected one of "
                        f"{', '.join(sorted(UNITS))}.{hint}") from None


def convert(x: torch.Tensor, from_unit: str, to_unit: str, *, where: str) -> torch.Tensor:
    """Convert ``x`` from one unit to another of the same quantity.

    ``where`` names the band (and modality, file...) for the error message.
    """
    if from_unit == to_unit:
        check_unit(from_unit, where=where)
        return x
    src, dst = check_unit(from_unit, where=where), check_unit(to_unit, where=where)
    if src.quantity != dst.quantity:
        raise UnitError(f"{where}: cannot convert {from_unit!r} ({src.quantity}) to "
                        f"{to_unit!r} ({dst.quantity})")
    return dst.from_canonical(src.to_canonical(x))
