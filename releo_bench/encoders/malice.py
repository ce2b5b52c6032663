"""``malice``: both branches of MALICE (ALISE^S2 and ALISE^S1 ascending) and their fusion.

MALICE (Dumeur, Kalinicheva et al., CESBIO / Evoland) trains one U-BARN-style encoder per
modality and a temporal projector (10 learned queries) *shared* by both, so that the S2 and S1
representations of a pixel are aligned in one latent space (openeo_malice README). Each
branch gives 10 x 64 features per pixel; ``fusion`` combines them:

* ``mean`` (default, 640 features): the average of the two aligned representations; a sample
  with no usable date in one modality takes the other's representation alone (so an all-cloudy
  S2 series still gets an S1-only embedding);
* ``concat`` (1280 features): S2 then S1 representations side by side (zeros for a modality
  with no usable date).

S1 is given as linear gamma0 VV and VH (the harness converts dB); the S1 branch's channels are
``[ln VH, ln VV, ln(VH / VV)]``, clipped and scaled with the published constants. The S1 branch
was trained on ascending orbits: tasks whose S1 mixes orbits are a domain shift (documented
per task). Dates, cloudy dates, tiling and per-pixel (dense) outputs are as in
:mod:`releo_bench.encoders.malice_branch`; each modality keeps its own dates.
"""

from __future__ import annotations

from typing import Any

import torch

from ..batch import EOBatch
from ..errors import DataError, UsageError
from ..weights import WeightsFile
from .alise import COMMIT, CITATION, S2_INPUT, S2_WEIGHTS, VERSION, branch_options, weights_source
from .alise_net import D_MODEL, DATE_REFERENCE, N_QUERIES, normalise_s1, normalise_s2, s1_log_channels
from .base import Embeddings, EncoderMeta, ModalityInput, PretrainedEncoder
from .malice_branch import MaliceBranch

S1_WEIGHTS = WeightsFile(
    model="malice", folder="malice", filename="malice_s1.onnx", licence="AGPL-3.0",
    sha256="95a01eb666a95aaed153e056e3d775f937690360f9a27a5060a42fd0b40f36e1",
    url=(f"https://raw.githubusercontent.com/Evoland-Land-Monitoring-Evolution/openeo_malice/"
         f"{COMMIT}/models/malice_models/malice_s1.onnx"))
S1_INPUT = ModalityInput(bands=("VV", "VH"), units="linear")
FUSIONS = ("mean", "concat")


def s1_channels(values: torch.Tensor) -> torch.Tensor:
    """Prepared S1 values ``[B, T, 2 (VV, VH), H, W]`` (linear) -> the S1 branch's input."""
    return normalise_s1(s1_log_channels(values[:, :, 0], values[:, :, 1]))


class Malice(PretrainedEncoder):
    """Options: ``fusion`` (``mean`` or ``concat``), ``weights`` (a folder holding both ONNX
    files), ``min_valid``, ``chunk`` (as for ``alise``)."""

    WEIGHTS: tuple[WeightsFile, ...] = (S2_WEIGHTS, S1_WEIGHTS)

    def __init__(self, *, device: str | torch.device = "cpu", weights: str | None = None,
                 fusion: str = "mean", min_valid: float = 0.5, chunk: int = 8,
                 **options: Any) -> None:
        min_valid, self.chunk = branch_options(
            "malice", min_valid, chunk, options, ("weights", "fusion", "min_valid", "chunk"))
        if fusion not in FUSIONS:
            raise UsageError(f"malice: fusion must be one of {FUSIONS}, got {fusion!r}")
        super().__init__(device=device, weights=weights, fusion=fusion, min_valid=min_valid)
        self._branches: dict[str, MaliceBranch] = {}
        width = N_QUERIES * D_MODEL * (2 if fusion == "concat" else 1)
        self._meta = EncoderMeta(
            name="malice", version=VERSION,
            description=("MALICE: ALISE^S2 and ALISE^S1 (ascending) branches with a shared "
                         "10-query temporal projector (aligned representations), fused by "
                         f"{'averaging' if fusion == 'mean' else 'concatenation'} and averaged "
                         f"over the patch pixels ({width} features)"),
            licence="AGPL-3.0", citation=CITATION,
            modalities={"s2": S2_INPUT, "s1": S1_INPUT}, temporal_mode="any", output="pooled",
            embedding_shape=(width,), min_patch_size=16, date_reference=DATE_REFERENCE,
            weights=weights_source(S2_WEIGHTS))

    @property
    def meta(self) -> EncoderMeta:
        return self._meta

    @property
    def weights_sha256(self) -> str | None:
        return "+".join(f.sha256 or "" for f in self.WEIGHTS)

    def branch(self, name: str) -> MaliceBranch:
        """The ``s2`` or ``s1`` branch, read from its verified weights file on first use."""
        if name not in self._branches:
            index, channels = (0, normalise_s2) if name == "s2" else (1, s1_channels)
            self._branches[name] = MaliceBranch(self.weights_path(index), channels, self.device,
                                                self.options["min_valid"], self.chunk)
        return self._branches[name]

    def encode_dense(self, batch: EOBatch) -> Embeddings:
        s2, s1 = batch["s2"], batch["s1"]
        if s2.values.shape[-2:] != s1.values.shape[-2:]:
            raise DataError(f"malice: S2 and S1 must share one pixel grid, got "
                            f"{tuple(s2.values.shape[-2:])} and {tuple(s1.values.shape[-2:])}")
        outs, has = {}, {}
        for name, mod in (("s2", s2), ("s1", s1)):
            branch = self.branch(name)
            outs[name] = branch.queries(mod)
            has[name] = branch.kept_dates(mod).any(dim=1)
        if self.options["fusion"] == "concat":
            return Embeddings(torch.cat([outs["s2"], outs["s1"]], dim=1))
        w2 = has["s2"].float().view(-1, 1, 1, 1)
        w1 = has["s1"].float().view(-1, 1, 1, 1)
        fused = (w2 * outs["s2"] + w1 * outs["s1"]) / torch.clamp(w1 + w2, min=1.0)
        return Embeddings(fused)

    def encode(self, batch: EOBatch) -> Embeddings:
        return Embeddings(self.encode_dense(batch).features.mean(dim=(-1, -2)))


__all__ = ["Malice", "S1_WEIGHTS", "s1_channels"]
