"""Double-logistic seasonal trajectories (LAI, chlorophyll) for crops and natural covers.

The curve (Beck et al. 2006, Remote Sensing of Environment 100:321-334; the same form as
Zhang et al. 2003 with a green-up and a senescence logistic) is

    v(t) = vmin + (vmax - vmin) * (1 / (1 + exp(-rate_up (t - sos)))
                                   + 1 / (1 + exp(rate_down (t - eos))) - 1)

with ``t`` in day of year, ``sos`` / ``eos`` the midpoints of the rise and of the fall, and
the rates in 1/day (a logistic goes from 12 % to 88 % of its step in 4 / rate days). When the
season is long compared with 1 / rate the curve reaches ``vmax`` and crosses the half level at
``sos`` and ``eos``; :func:`season_dates` gives the exact crossings in every case.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, fields

import torch

from ..errors import UnknownNameError, UsageError


@dataclass
class DoubleLogistic:
    """Parameters of :func:`double_logistic`; tensors that broadcast together."""

    vmin: torch.Tensor
    vmax: torch.Tensor
    sos: torch.Tensor
    eos: torch.Tensor
    rate_up: torch.Tensor
    rate_down: torch.Tensor

    def as_dict(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _shape(t: torch.Tensor, p: DoubleLogistic) -> torch.Tensor:
    """The normalised curve ``(v - vmin) / (vmax - vmin)`` at ``t``."""
    return torch.sigmoid(p.rate_up * (t - p.sos)) + torch.sigmoid(-p.rate_down * (t - p.eos)) - 1.0


def _slope(t: torch.Tensor, p: DoubleLogistic) -> torch.Tensor:
    """d/dt of :func:`_shape`."""
    up = torch.sigmoid(p.rate_up * (t - p.sos))
    down = torch.sigmoid(-p.rate_down * (t - p.eos))
    return p.rate_up * up * (1.0 - up) - p.rate_down * down * (1.0 - down)


def double_logistic(doy: torch.Tensor, p: DoubleLogistic) -> torch.Tensor:
    """Value of the seasonal curve at ``doy``; broadcasts ``doy`` against the parameters.

    E.g. ``doy[:, None]`` ([dates, 1]) with parameters of shape [samples] gives [dates, samples].
    """
    ref = torch.as_tensor(p.sos)
    t = torch.as_tensor(doy).to(dtype=ref.dtype if ref.is_floating_point() else torch.float64,
                                device=ref.device)
    return p.vmin + (p.vmax - p.vmin) * _shape(t, p)


def _bisect(fn, lo: torch.Tensor, hi: torch.Tensor, rising: bool, steps: int = 64) -> torch.Tensor:
    """Vectorised bisection for the sign change of ``fn`` in ``[lo, hi]``."""
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        positive = fn(mid) > 0
        go_right = positive if not rising else ~positive
        lo = torch.where(go_right, mid, lo)
        hi = torch.where(go_right, hi, mid)
    return 0.5 * (lo + hi)


def season_dates(p: DoubleLogistic, threshold: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Days where the curve crosses ``vmin + threshold * (vmax - vmin)`` going up and down.

    Found by bisection on each side of the peak (vectorised over samples), then refined by
    one Newton step on the detached root, which makes the result differentiable with respect
    to the parameters (implicit-function gradient). Samples whose curve never reaches the
    level give NaN. Assumes a single peak, which holds for ``sos < eos``.
    """
    if not 0.0 < threshold < 1.0:
        raise UsageError(f"season_dates: threshold must be in (0, 1), got {threshold}")
    with torch.no_grad():
        q = DoubleLogistic(**{k: torch.as_tensor(v).detach() for k, v in p.as_dict().items()})
        q = DoubleLogistic(*torch.broadcast_tensors(*q.as_dict().values()))
        first, last = torch.minimum(q.sos, q.eos), torch.maximum(q.sos, q.eos)
        peak = _bisect(lambda t: _slope(t, q), first, last, rising=False)
        reached = _shape(peak, q) >= threshold
        level = lambda t: _shape(t, q) - threshold  # noqa: E731
        up = _bisect(level, torch.minimum(q.sos, peak) - 40.0 / q.rate_up, peak, rising=True)
        down = _bisect(level, peak, torch.maximum(q.eos, peak) + 40.0 / q.rate_down, rising=False)
    nan = torch.full_like(up, float("nan"))
    refine = lambda t: t - (_shape(t, p) - threshold) / _slope(t, p)  # noqa: E731
    return torch.where(reached, refine(up), nan), torch.where(reached, refine(down), nan)


def cab_trajectory(doy: torch.Tensor, p: DoubleLogistic, cab_max: torch.Tensor | float,
                   cab_min: torch.Tensor | float = 10.0, green_lead_days: float = 10.0,
                   senescence_lead_days: float = 10.0) -> torch.Tensor:
    """Leaf chlorophyll (ug/cm2) along the season: same rates as LAI, shifted earlier.

    Young leaves are green before the canopy closes, and leaves yellow before they fall, so
    Cab rises ``green_lead_days`` before LAI and falls ``senescence_lead_days`` before it,
    from ``cab_min`` (bare or senescent material, about 10) to ``cab_max`` (40-60 for healthy
    crops). A simple representative model, not a fitted one.
    """
    shifted = DoubleLogistic(vmin=p.vmin, vmax=p.vmax, sos=p.sos - green_lead_days,
                             eos=p.eos - senescence_lead_days, rate_up=p.rate_up,
                             rate_down=p.rate_down)
    ref = torch.as_tensor(p.sos)
    t = torch.as_tensor(doy).to(dtype=ref.dtype, device=ref.device)
    green = _shape(t, shifted).clamp(0.0, 1.0)
    return cab_min + (torch.as_tensor(cab_max, dtype=ref.dtype, device=ref.device) - cab_min) * green


@dataclass(frozen=True)
class CropProfile:
    """Uniform ranges ``(low, high)`` of each double-logistic parameter for one cover type.

    ``vmin`` / ``vmax`` are LAI (m2/m2); ``sos`` / ``eos`` day of year (northern temperate
    zone, e.g. south-west France to central Europe); rates in 1/day.
    """

    vmin: tuple[float, float]
    vmax: tuple[float, float]
    sos: tuple[float, float]
    eos: tuple[float, float]
    rate_up: tuple[float, float]
    rate_down: tuple[float, float]
    note: str = ""


# Ranges from typical crop calendars of the temperate northern hemisphere (sowing, emergence,
# canopy closure, senescence and harvest dates) and typical peak green LAI per crop; the
# ranges of vmin/vmax and of sos/eos never overlap, so every draw has vmax > vmin, eos > sos.
CROP_PROFILES: dict[str, CropProfile] = {
    "winter_wheat": CropProfile((0.2, 0.6), (3.5, 6.5), (70.0, 100.0), (160.0, 185.0),
                                (0.04, 0.10), (0.06, 0.15),
                                "sown in Oct-Nov, low winter LAI, stem elongation Mar-Apr, "
                                "peak May, senescence June, harvest early July"),
    "maize": CropProfile((0.0, 0.2), (3.5, 6.0), (160.0, 185.0), (245.0, 270.0),
                         (0.07, 0.15), (0.05, 0.10),
                         "sown Apr-May, fast growth in June, peak July-Aug, senescence Sept"),
    "sunflower": CropProfile((0.0, 0.2), (2.0, 4.5), (140.0, 165.0), (210.0, 235.0),
                             (0.07, 0.14), (0.07, 0.14),
                             "sown Apr, peak early July, dries in Aug, harvest Sept"),
    "soybean": CropProfile((0.0, 0.2), (3.0, 6.0), (170.0, 190.0), (250.0, 270.0),
                           (0.06, 0.12), (0.08, 0.15),
                           "sown May, peak Aug, leaves drop in Sept"),
    "grassland": CropProfile((0.5, 1.5), (2.5, 5.0), (75.0, 105.0), (280.0, 310.0),
                             (0.03, 0.07), (0.03, 0.07),
                             "permanent meadow, green from March to October (cuts not modelled)"),
    "deciduous_forest": CropProfile((0.3, 0.8), (4.0, 6.5), (100.0, 125.0), (280.0, 305.0),
                                    (0.08, 0.20), (0.05, 0.12),
                                    "budburst late April, leaf fall October; vmin = woody "
                                    "area seen as LAI"),
    "evergreen_forest": CropProfile((2.5, 3.5), (4.0, 5.5), (100.0, 140.0), (250.0, 300.0),
                                    (0.03, 0.08), (0.03, 0.08),
                                    "conifers: high all year, spring flush of new needles"),
    "bare_soil": CropProfile((0.0, 0.05), (0.05, 0.3), (100.0, 180.0), (190.0, 260.0),
                             (0.05, 0.10), (0.05, 0.10),
                             "fallow or tilled field with a few weeds in summer"),
}


def crop_profile(crop: str) -> CropProfile:
    try:
        return CROP_PROFILES[crop]
    except KeyError:
        names = list(CROP_PROFILES)
        raise UnknownNameError("crop profile", crop, difflib.get_close_matches(crop, names),
                               names) from None


def sample_double_logistic(n: int, rng: torch.Generator, crop: str) -> DoubleLogistic:
    """``n`` parameter sets drawn uniformly within ``crop``'s ranges (float64, shape [n])."""
    profile = crop_profile(crop)
    names = [f.name for f in fields(DoubleLogistic)]
    u = torch.rand(n, len(names), generator=rng, dtype=torch.float64, device=rng.device)
    values = {}
    for i, name in enumerate(names):
        lo, hi = getattr(profile, name)
        values[name] = lo + (hi - lo) * u[:, i]
    return DoubleLogistic(**values)
