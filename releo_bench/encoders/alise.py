"""``alise``: the S2 branch of MALICE (ALISE^S2, Dumeur, Kalinicheva et al., CESBIO);
``ubarn``: its per-date temporal-transformer output (U-BARN-like).

The network is :class:`~releo_bench.encoders.alise_net.AliseNet` (a PyTorch re-implementation
of the published ONNX graph); how a modality becomes its inputs, and cloudy dates, are in
:mod:`releo_bench.encoders.malice_branch`. See ``docs/models/alise.md``.

* ``alise``: output "pooled", the 10 x 64 query outputs averaged over the patch pixels,
  flattened to 640 features. Per pixel (``encode_dense``): the same 640 features at every pixel.
* ``ubarn``: output "per_date", the 64-d per-date outputs of the temporal transformer,
  averaged over the patch pixels. The original U-BARN weights (Dumeur et al. 2024) are not
  public; this is the temporal encoder *inside* MALICE's S2 branch.
* Pixel tasks: when the task gives the pixels' scenes (``TaskData.context``), the harness
  encodes the scenes once and takes each pixel's own embedding (real spatial context);
  otherwise a pixel is tiled to 16 x 16 (no context: every pixel of the tile is a copy).
"""

from __future__ import annotations

from typing import Any

import torch

from ..batch import EOBatch
from ..errors import UsageError
from ..weights import WeightsFile
from .alise_net import D_MODEL, DATE_REFERENCE, N_QUERIES, normalise_s2
from .base import Embeddings, EncoderMeta, ModalityInput, PretrainedEncoder, WeightsSource
from .malice_branch import MaliceBranch

COMMIT = "41762442"
S2_BANDS = ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12")
S2_WEIGHTS = WeightsFile(
    model="alise", folder="malice", filename="malice_s2.onnx", licence="AGPL-3.0",
    sha256="b70b3fa4befad6a341a8419ec0af7023e41514c91cb1acab2537d72251934e31",
    url=(f"https://raw.githubusercontent.com/Evoland-Land-Monitoring-Evolution/openeo_malice/"
         f"{COMMIT}/models/malice_models/malice_s2.onnx"))
VERSION = f"openeo_malice-{COMMIT}"
CITATION = ("Dumeur I., Valero S., Inglada J. (2024). Self-supervised spatio-temporal "
            "representation learning of Satellite Image Time Series. IEEE JSTARS 17; "
            "Kalinicheva E., Dumeur I. et al., MALICE (openeo_malice, CESBIO, Evoland).")
S2_INPUT = ModalityInput(bands=S2_BANDS, units="reflectance_x10000")


def weights_source(f: WeightsFile) -> WeightsSource:
    return WeightsSource(kind="url", uri=f.url, revision=COMMIT, filename=f.filename,
                         sha256=f.sha256, licence=f.licence)


def branch_options(name: str, min_valid: float, chunk: int, options: dict[str, Any],
                   accepted: tuple[str, ...] = ("weights", "min_valid", "chunk")) -> tuple[float, int]:
    """Check the options common to MALICE-based encoders; returns (min_valid, chunk)."""
    if options:
        raise UsageError(f"{name}: unknown options {sorted(options)} (accepted: "
                         f"{', '.join(accepted)})")
    if not 0.0 < float(min_valid) <= 1.0:
        raise UsageError(f"{name}: min_valid must be in (0, 1], got {min_valid}")
    return float(min_valid), max(1, int(chunk))


class Alise(PretrainedEncoder):
    """Options: ``weights`` (path of ``malice_s2.onnx`` or a folder holding it),
    ``min_valid`` (fraction of valid pixels for a date to be kept, default 0.5),
    ``chunk`` (samples per forward pass, default 8; does not change the embeddings)."""

    WEIGHTS: tuple[WeightsFile, ...] = (S2_WEIGHTS,)
    variant = "alise"

    def __init__(self, *, device: str | torch.device = "cpu", weights: str | None = None,
                 min_valid: float = 0.5, chunk: int = 8, **options: Any) -> None:
        min_valid, self.chunk = branch_options(self.variant, min_valid, chunk, options)
        super().__init__(device=device, weights=weights, min_valid=min_valid)
        self._branch: MaliceBranch | None = None
        per_date = self.variant == "ubarn"
        self._meta = EncoderMeta(
            name=self.variant, version=VERSION,
            description=(
                "U-BARN-like per-date features: the 64-d outputs of the temporal transformer of "
                "MALICE's S2 branch, averaged over the patch (original U-BARN weights are not "
                "public)" if per_date else
                "ALISE^S2 (MALICE S2 branch): per-date U-Net + temporal transformer + 10 "
                "learned-query cross-attention; the 10 x 64 query outputs averaged over the "
                "patch pixels (640 features)") + "; cloudy dates are passed as padded",
            licence="AGPL-3.0", citation=CITATION, modalities={"s2": S2_INPUT},
            temporal_mode="any", output="per_date" if per_date else "pooled",
            embedding_shape=(D_MODEL,) if per_date else (N_QUERIES * D_MODEL,),
            min_patch_size=16, date_reference=DATE_REFERENCE, weights=weights_source(S2_WEIGHTS))

    @property
    def meta(self) -> EncoderMeta:
        return self._meta

    @property
    def branch(self) -> MaliceBranch:
        """The S2 branch, read from the verified weights file on first use."""
        if self._branch is None:
            self._branch = MaliceBranch(self.weights_path(), normalise_s2, self.device,
                                        self.options["min_valid"], self.chunk)
        return self._branch

    @property
    def net(self):  # noqa: ANN201 (AliseNet; kept for tests and notebooks)
        return self.branch.net

    def encode_dense(self, batch: EOBatch) -> Embeddings:
        if self.variant == "ubarn":
            feats, valid = self.branch.per_date(batch["s2"])
            return Embeddings(feats, valid, "s2")
        return Embeddings(self.branch.queries(batch["s2"]))

    def encode(self, batch: EOBatch) -> Embeddings:
        dense = self.encode_dense(batch)
        return Embeddings(dense.features.mean(dim=(-1, -2)), dense.time_mask, dense.time_modality)


class Ubarn(Alise):
    """``ubarn``: :class:`Alise` with per-date temporal-transformer outputs."""

    variant = "ubarn"


__all__ = ["Alise", "Ubarn", "S2_BANDS", "S2_WEIGHTS", "CITATION", "VERSION"]
