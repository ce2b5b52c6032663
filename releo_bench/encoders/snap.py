"""``snap``: the ESA SNAP Sentinel-2 biophysical processor (Weiss & Baret), a non-learned
reference.

Five networks (LAI, canopy chlorophyll LAI x Cab, canopy water LAI x Cw, FAPAR, FCOVER), each
11 inputs -> 5 tansig hidden units -> 1 linear output, trained by INRAE on PROSAIL + SAIL
simulations; the tables are s2tbx's (GPL-3.0), parsed by :mod:`.snap_tables`.

Inputs, as SNAP defines them: B3, B4, B5, B6, B7, B8A, B11, B12 (reflectance 0-1) and
cos(view zenith), cos(sun zenith), cos(relative azimuth) from the ``angles`` modality
(degrees; bands ``view_zenith``, ``sun_zenith``, ``relative_azimuth``). Without angles the
encoder refuses (the networks are meaningless without the geometry).

Outputs (per date, spatial mean over valid pixels), in this order and these units:
``lai`` (m2/m2), ``ccc`` (g/m2 = SNAP's ug/cm2 / 100), ``cwc`` (kg/m2 = SNAP's g/cm2 x 10),
``fapar`` (-), ``fcover`` (-).

SNAP's quality handling (see :meth:`SnapEncoder.retrieve_with_flags`): an output below
``min - tolerance`` or above ``max + tolerance`` (``<V>_ExtremeCases``) is flagged (1 too low,
2 too high); an output within the tolerance of the valid range is clamped to it. An input whose
8 reflectances fall outside the definition domain (outside its min/max or in a grid cell with no
training case) raises the input flag. :meth:`encode` and :meth:`retrieve` additionally clamp
flagged outputs to the valid range, so embeddings and predictions are always physical.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch

from ..batch import EOBatch
from ..errors import DataError, UsageError
from ..predictions import Point
from . import snap_tables as tables
from .adapt import prepare_batch
from .base import Embeddings, Encoder, EncoderMeta, ModalityInput, WeightsSource

ANGLE_BANDS = ("view_zenith", "sun_zenith", "relative_azimuth")
OUTPUTS = tuple(name for name, _ in tables.VARIABLES.values())  # lai, ccc, cwc, fapar, fcover
UNITS = {"lai": "m2/m2", "ccc": "g/m2", "cwc": "kg/m2", "fapar": "-", "fcover": "-"}
# SNAP's units -> ours
_SCALE = {"lai": 1.0, "ccc": 0.01, "cwc": 10.0, "fapar": 1.0, "fcover": 1.0}
FLAG_OK, FLAG_TOO_LOW, FLAG_TOO_HIGH = 0, 1, 2


class SnapEncoder(Encoder):
    """Options: ``version`` (``"3_0"``, SNAP 9's default, or ``"2_1"``), ``sensor``
    (``"s2a"`` or ``"s2b"``; selects the ``3_0`` network set, ignored for ``2_1``),
    ``weights`` (explicit folder holding ``snap_s2tbx/...`` or the version folders)."""

    WEIGHTS: tuple[tables.WeightsFile, ...] = tables.weights_files("snap")
    #: targets :meth:`retrieve` answers directly (no probe), with the unit it answers in
    retrievable: dict[str, str | None] = {"lai": "m2/m2", "ccc": "g/m2"}

    def __init__(self, *, device: str | torch.device = "cpu", version: str = "3_0",
                 sensor: str = "s2a", weights: str | None = None, **options: Any) -> None:
        version, sensor = str(version), str(sensor).lower()
        if version not in tables.VERSIONS:
            raise UsageError(f"snap: version must be one of {tables.VERSIONS}, got {version!r}")
        if sensor not in tables.SENSORS:
            raise UsageError(f"snap: sensor must be one of {tables.SENSORS}, got {sensor!r}")
        if version == "2_1":
            sensor = "s2a"  # one network set for both platforms
        super().__init__(device=device, version=version, sensor=sensor, **options)
        self._weights = weights
        self._nets: list[tables.Network] | None = None
        self._domain: tables.Domain | None = None
        self._params: dict[str, torch.Tensor] | None = None
        files = tables.files_for(version, sensor)
        digest = hashlib.sha256("".join(tables.SHA256[f] for f in files).encode()).hexdigest()
        self._meta = EncoderMeta(
            name="snap", version=f"{version}/{sensor}" if version == "3_0" else version,
            description="ESA SNAP S2 biophysical processor networks (not learned here): per-date "
                        "LAI (m2/m2), CCC (g/m2), CWC (kg/m2), FAPAR, FCOVER from B3-B12 and the "
                        "sun/view angles; a 5-feature encoder for probes, or a direct point "
                        "retriever of lai and ccc",
            licence="GPL-3.0",
            citation="Weiss, M., Baret, F. (2016). S2ToolBox Level 2 products: LAI, FAPAR, "
                     "FCOVER, version 1.1. ESA; network tables from github.com/senbox-org/s2tbx",
            modalities={
                "s2": ModalityInput(bands=tables.INPUT_BANDS, units="reflectance"),
                "angles": ModalityInput(bands=ANGLE_BANDS, units="degree"),
            },
            temporal_mode="any", output="per_date", embedding_shape=(len(OUTPUTS),),
            weights=WeightsSource(kind="local", uri=f"{tables.FOLDER}/{tables.subfolder(version, sensor)}",
                                  sha256=digest, licence="GPL-3.0"),
        )

    @property
    def meta(self) -> EncoderMeta:
        return self._meta

    def config(self) -> dict[str, Any]:
        return {k: v for k, v in self.options.items()}

    # -- tables (lazy) ------------------------------------------------------------------
    def load(self) -> "SnapEncoder":
        """Parse and sha256-check the network tables (done on first use)."""
        if self._nets is None:
            v, s = self.options["version"], self.options["sensor"]
            nets = [tables.load_network(var, v, s, self._weights) for var in tables.VARIABLES]
            self._domain = tables.load_domain(v, s, self._weights)
            f64 = dict(dtype=torch.float64, device=self.device)
            self._params = {
                "in_min": torch.tensor(np.stack([n.in_min for n in nets]), **f64),  # [5, 11]
                "in_max": torch.tensor(np.stack([n.in_max for n in nets]), **f64),
                "w1": torch.tensor(np.stack([n.w1 for n in nets]), **f64),  # [5, H, 11]
                "b1": torch.tensor(np.stack([n.b1 for n in nets]), **f64),  # [5, H]
                "w2": torch.tensor(np.stack([n.w2 for n in nets]), **f64),  # [5, H]
                "b2": torch.tensor([n.b2 for n in nets], **f64),
                "out_min": torch.tensor([n.out_min for n in nets], **f64),
                "out_max": torch.tensor([n.out_max for n in nets], **f64),
                "tol": torch.tensor([n.tolerance for n in nets], **f64),
                "lo": torch.tensor([n.valid_min for n in nets], **f64),
                "hi": torch.tensor([n.valid_max for n in nets], **f64),
            }
            self._nets = nets
        return self

    @property
    def networks(self) -> list[tables.Network]:
        return self.load()._nets  # type: ignore[return-value]

    # -- the networks -------------------------------------------------------------------
    def network_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """Raw (denormalised, SNAP units) outputs of the 5 networks, ``[..., 11] -> [..., 5]``."""
        p = self.load()._params
        assert p is not None
        x = x.to(device=self.device, dtype=torch.float64).unsqueeze(-2)  # [..., 1, 11]
        xn = 2.0 * (x - p["in_min"]) / (p["in_max"] - p["in_min"]) - 1.0  # [..., 5, 11]
        h = torch.tanh(torch.einsum("vhi,...vi->...vh", p["w1"], xn) + p["b1"])
        y = (h * p["w2"]).sum(-1) + p["b2"]
        return 0.5 * (y + 1.0) * (p["out_max"] - p["out_min"]) + p["out_min"]

    def apply_extreme_cases(self, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """SNAP's ``ExtremeCases``: values within ``tolerance`` of ``[min, max]`` are clamped to
        it, values beyond are left as they are and flagged 1 (too low) / 2 (too high)."""
        p = self.load()._params
        assert p is not None
        lo, hi, tol = p["lo"], p["hi"], p["tol"]
        flags = torch.zeros(raw.shape, dtype=torch.int8, device=raw.device)
        flags[raw < lo - tol] = FLAG_TOO_LOW
        flags[raw > hi + tol] = FLAG_TOO_HIGH
        clamped = torch.minimum(torch.maximum(raw, lo), hi)
        return torch.where(flags == FLAG_OK, clamped, raw), flags

    def input_out_of_domain(self, refl: torch.Tensor) -> torch.Tensor:
        """True where the 8 reflectances ``[..., 8]`` are outside SNAP's definition domain."""
        self.load()
        assert self._domain is not None
        flat = refl.detach().reshape(-1, len(tables.INPUT_BANDS)).cpu().numpy()
        out = self._domain.outside(flat)
        return torch.from_numpy(out).reshape(refl.shape[:-1]).to(refl.device)

    # -- batch plumbing -----------------------------------------------------------------
    def _inputs(self, batch: EOBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, T, H, W, 11]`` network inputs on the S2 dates and their validity ``[B, T, H, W]``.

        Angles are taken at the same date when the ``angles`` modality has it (the normal
        case: one geometry per S2 acquisition), else at its nearest valid date."""
        if "angles" not in batch.modalities:
            raise UsageError("snap: needs the 'angles' modality (sun zenith, view zenith and "
                             "relative azimuth in degrees, on the S2 dates); the data has "
                             f"{sorted(batch.modalities)}. The SNAP networks are not defined "
                             "without the acquisition geometry")
        s2, ang = batch["s2"], batch["angles"]
        b, t, _, h, w = s2.values.shape
        # angles per date: spatial mean over valid angle pixels -> [B, Ta, 3]
        am = ang.mask.unsqueeze(2).to(ang.values.dtype)
        a_val = (ang.values * am).sum((-1, -2)) / am.sum((-1, -2)).clamp(min=1.0)
        a_ok = ang.mask.any(dim=(-1, -2)).cpu().numpy()
        s2_days = s2.dates.astype("datetime64[D]").astype("int64").astype(np.float64)
        a_days = ang.dates.astype("datetime64[D]").astype("int64").astype(np.float64)
        s2_days[np.isnat(s2.dates)] = np.nan
        a_days[np.isnat(ang.dates) | ~a_ok] = np.nan
        dist = np.abs(s2_days[:, :, None] - a_days[:, None, :])  # [B, T, Ta]
        has = np.isfinite(dist).any(-1)
        idx = np.where(has, np.argmin(np.where(np.isfinite(dist), dist, np.inf), axis=-1), 0)
        gathered = torch.gather(a_val, 1, torch.from_numpy(idx).to(a_val.device)
                                .unsqueeze(-1).expand(-1, -1, len(ANGLE_BANDS)))  # [B, T, 3]
        cosines = torch.cos(torch.deg2rad(gathered.to(torch.float64)))
        cosines = cosines[:, :, None, None, :].expand(b, t, h, w, 3)
        refl = s2.values.to(torch.float64).permute(0, 1, 3, 4, 2)  # [B, T, H, W, 8]
        valid = s2.mask & torch.from_numpy(has).to(s2.mask.device)[:, :, None, None]
        x = torch.cat([refl, cosines], dim=-1)
        x = torch.where(valid.unsqueeze(-1), x, torch.zeros_like(x))  # masked values never leak
        return x, valid

    def retrieve_with_flags(self, batch: EOBatch) -> dict[str, Any]:
        """SNAP's products with its quality flags, per pixel and date of the ``s2`` modality.

        ``batch`` as a task hands it (bands, units are prepared here). Returns numpy arrays:
        ``values`` ``[B, T, H, W, 5]`` (order :data:`OUTPUTS`, units :data:`UNITS`; SNAP's
        extreme-case rule applied: clamped within the tolerance, flagged values left as
        computed), ``output_flags`` ``[B, T, H, W, 5]`` (0 valid, 1 below ``min - tolerance``,
        2 above ``max + tolerance``), ``input_out_of_domain`` ``[B, T, H, W]`` (reflectances
        outside the definition domain), ``valid`` ``[B, T, H, W]`` (observation usable: clear
        S2 pixel with a geometry), ``dates`` ``[B, T]`` and ``outputs`` (the names)."""
        batch = prepare_batch(batch, self.meta).to(self.device)
        values, flags, domain, valid = self._compute(batch)
        scale = torch.tensor([_SCALE[o] for o in OUTPUTS], dtype=values.dtype, device=values.device)
        return {"values": (values * scale).cpu().numpy(), "output_flags": flags.cpu().numpy(),
                "input_out_of_domain": domain.cpu().numpy(), "valid": valid.cpu().numpy(),
                "dates": batch["s2"].dates, "outputs": OUTPUTS}

    def _compute(self, batch: EOBatch) -> tuple[torch.Tensor, ...]:
        x, valid = self._inputs(batch)
        values, flags = self.apply_extreme_cases(self.network_outputs(x))
        domain = self.input_out_of_domain(x[..., : len(tables.INPUT_BANDS)]) & valid
        flags = torch.where(valid.unsqueeze(-1), flags, torch.zeros_like(flags))
        values = torch.where(valid.unsqueeze(-1), values, torch.zeros_like(values))
        return values, flags, domain, valid

    def _per_date(self, batch: EOBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Physical (clamped) products, spatial mean over valid pixels: ``[B, T, 5]``, ``[B, T]``."""
        x, valid = self._inputs(batch)
        p = self.load()._params
        assert p is not None
        y = torch.minimum(torch.maximum(self.network_outputs(x), p["lo"]), p["hi"])
        y = y * torch.tensor([_SCALE[o] for o in OUTPUTS], dtype=y.dtype, device=y.device)
        wgt = valid.unsqueeze(-1).to(y.dtype)
        per_date = (y * wgt).sum((2, 3)) / wgt.sum((2, 3)).clamp(min=1.0)
        return per_date, valid.any(dim=(2, 3))

    # -- encoder ------------------------------------------------------------------------
    def encode(self, batch: EOBatch) -> Embeddings:
        feats, time_mask = self._per_date(batch)
        return Embeddings(feats.float(), time_mask, "s2")

    # -- direct retrieval ---------------------------------------------------------------
    def retrieve(self, batch: EOBatch, target: Any, target_time: np.ndarray | None) -> Point:
        """(The :class:`~releo_bench.encoders.base.Retriever` protocol; ``batch`` may be the
        task's or already prepared.) Deterministic SNAP estimate of ``target`` (``lai`` in m2/m2 or ``ccc`` in g/m2) at the
        valid S2 date nearest to each sample's ``target_time`` (the sample's last valid date
        when ``target_time`` is None): a :class:`Point`, no uncertainty, scored as a point."""
        name = getattr(target, "name", target)
        if name not in self.retrievable:
            raise UsageError(f"snap: retrieves {sorted(self.retrievable)} directly, not "
                             f"{name!r}; use it as an encoder with a probe instead")
        unit = getattr(target, "unit", None)
        if unit is not None and unit != self.retrievable[name]:
            raise UsageError(f"snap: target {name!r} is in {unit!r}; SNAP's estimate is in "
                             f"{self.retrievable[name]!r}")
        prepared = prepare_batch(batch, self.meta).to(self.device)
        with torch.no_grad():
            per_date, ok = self._per_date(prepared)
        values = per_date[..., OUTPUTS.index(name)].cpu().numpy()
        ok = ok.cpu().numpy()
        days = prepared["s2"].dates.astype("datetime64[D]").astype("int64").astype(np.float64)
        if target_time is None:
            want = np.nanmax(np.where(ok, days, np.nan), axis=1)
        else:
            want = np.asarray(target_time).astype("datetime64[D]").astype("int64").astype(np.float64)
        dist = np.where(ok, np.abs(days - want[:, None]), np.inf)
        empty = ~ok.any(axis=1)
        if empty.any():
            ids = [prepared.sample_ids[i] for i in np.flatnonzero(empty)[:5]]
            raise DataError(f"snap: no valid S2 observation (clear, with angles) for samples {ids}")
        best = dist.argmin(axis=1)
        return Point(values[np.arange(len(best)), best])


__all__ = ["SnapEncoder", "OUTPUTS", "UNITS", "FLAG_OK", "FLAG_TOO_LOW", "FLAG_TOO_HIGH"]
