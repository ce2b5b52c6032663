"""Water-cloud model of C-band backscatter (Sentinel-1 VV and VH) over vegetated soil.

Attema & Ulaby (1978, Radio Science 13(2):357-364) treat the canopy as a cloud of identical
water droplets above the soil:

    sigma0 = A * V1 * cos(theta) * (1 - T2) + T2 * sigma_soil
    T2     = exp(-2 * B * V2 / cos(theta))          (two-way canopy transmissivity)
    sigma_soil [dB] = C + D * mv                      (linear in soil moisture, in dB)

all in linear power except the soil law, written in dB as most Sentinel-1 studies do (e.g.
Baghdadi et al. 2017, "Calibration of the water cloud model at C-band for winter crop fields
and grasslands", Remote Sensing 9(9):969). Here ``V1 = LAI`` (m2/m2) and ``V2 = LAI``, or
``V2 = VWC`` (vegetation water content, kg/m2) when it is given; ``mv`` is volumetric soil
moisture (m3/m3) and ``theta`` the local incidence angle.

The default parameters are *representative*, not one study's fit: no single published
calibration with LAI as descriptor covers both polarisations and all our crops, so they are
chosen inside the ranges such calibrations report at C-band (A from 1e-3 to 1e-1, B from 0.05
to 0.5 per unit LAI, soil sensitivity D of 0.15 to 0.5 dB per vol.% in VV) such that the model
gives typical Sentinel-1 IW levels at 30-45 degrees: bare soil VV from about -18 dB (dry) to
-9 dB (wet), VH 8-10 dB lower; dense crops (LAI 4-6) -13 to -10 dB in VV, -18 to -15 dB in VH.

Regimes (30-45 degrees, mv 0.02-0.45): with ``V1 = V2 = LAI`` the vegetation term grows like
LAI^2 at first while the soil echo is attenuated linearly, so backscatter first *dips* as a
sparse canopy appears (by 0.1-0.8 dB in VH, 0.3-3.4 dB in VV, more on wet soil: the spring
dip seen over wheat), then rises with LAI: everywhere beyond LAI 1.3 in VH and 3.6 in VV.
Backscatter always rises with soil moisture, less as the canopy closes. Parameter table:
docs/physics-s2-s1.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import UsageError
from ..units import convert


@dataclass(frozen=True)
class WaterCloudParams:
    """Water-cloud parameters of one polarisation.

    a: vegetation backscatter per unit LAI (linear); b: extinction per unit LAI;
    b_vwc: extinction per kg/m2 of vegetation water (used when ``vwc`` is given);
    c: bare-soil backscatter at mv = 0 (dB); d: soil sensitivity (dB per m3/m3).
    """

    a: float
    b: float
    b_vwc: float
    c: float
    d: float


# b_vwc = b assumes about 1 kg/m2 of canopy water per unit LAI, typical of maize and wheat
# near peak biomass, so either descriptor gives the same attenuation for a typical canopy.
DEFAULT_PARAMS: dict[str, WaterCloudParams] = {
    "VV": WaterCloudParams(a=0.020, b=0.15, b_vwc=0.15, c=-19.0, d=25.0),
    "VH": WaterCloudParams(a=0.008, b=0.10, b_vwc=0.10, c=-27.0, d=20.0),
}


def _params(polarisation: str, params: WaterCloudParams | None) -> WaterCloudParams:
    pol = polarisation.strip().upper()
    if params is not None:
        return params
    if pol not in DEFAULT_PARAMS:
        raise UsageError(f"water cloud: unknown polarisation {polarisation!r}; defaults exist "
                         f"for {sorted(DEFAULT_PARAMS)} (or pass params=)")
    return DEFAULT_PARAMS[pol]


def transmissivity(descriptor: torch.Tensor, incidence_deg: torch.Tensor, b: float) -> torch.Tensor:
    """Two-way canopy transmissivity ``T2 = exp(-2 b V2 / cos(theta))``."""
    return torch.exp(-2.0 * b * descriptor / torch.cos(torch.deg2rad(incidence_deg)))


def water_cloud_linear(lai: torch.Tensor, soil_moisture: torch.Tensor, incidence_deg: torch.Tensor,
                       polarisation: str = "VV", params: WaterCloudParams | None = None,
                       vwc: torch.Tensor | None = None) -> torch.Tensor:
    """sigma0 in linear power; inputs broadcast together, dtype and device from ``lai``."""
    p = _params(polarisation, params)
    lai = torch.as_tensor(lai)
    like = {"dtype": lai.dtype if lai.is_floating_point() else torch.get_default_dtype(),
            "device": lai.device}
    lai = lai.to(**like)
    mv = torch.as_tensor(soil_moisture).to(**like)
    theta = torch.as_tensor(incidence_deg).to(**like)
    v2 = lai if vwc is None else torch.as_tensor(vwc).to(**like)
    t2 = transmissivity(v2, theta, p.b if vwc is None else p.b_vwc)
    soil = torch.pow(10.0, (p.c + p.d * mv) / 10.0)
    vegetation = p.a * lai * torch.cos(torch.deg2rad(theta)) * (1.0 - t2)
    return vegetation + t2 * soil


def water_cloud(lai: torch.Tensor, soil_moisture: torch.Tensor, incidence_deg: torch.Tensor,
                polarisation: str = "VV", params: WaterCloudParams | None = None,
                vwc: torch.Tensor | None = None) -> torch.Tensor:
    """sigma0 in dB of ``polarisation`` for LAI (m2/m2), soil moisture (m3/m3), incidence (deg)."""
    linear = water_cloud_linear(lai, soil_moisture, incidence_deg, polarisation, params, vwc)
    return convert(linear, "linear", "dB", where=f"water cloud {polarisation} sigma0")


def soil_backscatter_db(soil_moisture: torch.Tensor, polarisation: str = "VV",
                        params: WaterCloudParams | None = None) -> torch.Tensor:
    """Bare-soil term ``C + D * mv`` in dB (what the model gives at LAI = 0)."""
    p = _params(polarisation, params)
    return p.c + p.d * torch.as_tensor(soil_moisture)

