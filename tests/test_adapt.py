"""The harness converts, the encoder declares: band order, units and normalisation."""

import numpy as np
import pytest
import torch

from releo_bench.batch import EOBatch, Modality
from releo_bench.encoders.adapt import canonical_band, encode_batch, prepare_batch
from releo_bench.encoders.base import Embeddings, Encoder, EncoderMeta, ModalityInput
from releo_bench.errors import BandError, ReleoError, UnitError

EUROSAT_ORDER = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11", "B12", "B08A")


def _batch(bands, units, values=None):
    b, t = 2, 2
    v = values if values is not None else torch.arange(b * t * len(bands), dtype=torch.float32).reshape(b, t, len(bands), 1, 1)
    dates = np.array([["2020-05-01", "2020-05-11"]] * b, dtype="datetime64[D]")
    return EOBatch({"s2": Modality(v, dates, torch.ones(b, t, 1, 1, dtype=torch.bool), bands, units)})


def _meta(**modality):
    return EncoderMeta(name="probe-encoder", version="0", description="", licence="x", citation="x",
                       modalities={"s2": ModalityInput(**modality)}, embedding_shape=(1,))


def test_canonical_band_names():
    assert [canonical_band(b) for b in ("B02", "b2", "B08A", "b8a", "B8A", "B12", "VV")] == \
        ["B2", "B2", "B8A", "B8A", "B8A", "B12", "VV"]


def test_reorders_eurosat_bands_to_the_declared_order():
    # EuroSAT puts B8A last; an encoder asking for B8, B8A, B4 must get exactly those channels
    values = torch.arange(13, dtype=torch.float32).repeat(2, 2, 1).reshape(2, 2, 13, 1, 1) * 1000
    batch = _batch(EUROSAT_ORDER, "reflectance_x10000", values)
    out = prepare_batch(batch, _meta(bands=("B8", "B8A", "B4"), units="reflectance"))["s2"]
    assert out.bands == ("B8", "B8A", "B4")
    # channel index in EuroSAT order: B08 -> 7, B08A -> 12, B04 -> 3; x1000 DN / 10000
    assert out.values[0, 0, :, 0, 0].tolist() == pytest.approx([0.7, 1.2, 0.3])


def test_declared_normalisation_is_applied_after_unit_conversion():
    batch = _batch(("B4", "B8"), "reflectance_x10000", torch.full((2, 2, 2, 1, 1), 2000.0))
    out = prepare_batch(batch, _meta(bands=("B8", "B4"), units="reflectance", mean=(0.1, 0.3), std=(0.5, 0.1)))
    assert out["s2"].values[0, 0, :, 0, 0].tolist() == pytest.approx([(0.2 - 0.1) / 0.5, (0.2 - 0.3) / 0.1])


def test_missing_band_is_an_error_naming_it():
    batch = _batch(("B2", "B3", "B4"), "reflectance")
    with pytest.raises(BandError, match=r"needs bands \['B8'\] of modality 's2'"):
        prepare_batch(batch, _meta(bands=("B4", "B8"), units="reflectance"))


def test_ambiguous_data_unit_is_an_error():
    batch = _batch(("B4", "B8"), ("DN", "DN"))
    with pytest.raises(UnitError, match=r"band 'B4' \(data\): unknown unit 'DN'"):
        prepare_batch(batch, _meta(bands=("B4",), units="reflectance"))


class _WrongShape(Encoder):
    @property
    def meta(self):
        return _meta(bands=("B4",), units="reflectance")

    def encode(self, batch):
        return Embeddings(torch.zeros(len(batch), 7))


def test_encoder_output_is_checked_against_metadata():
    with pytest.raises(ReleoError, match=r"returned \(2, 7\), its metadata declares \(2, 1\)"):
        encode_batch(_WrongShape(), _batch(("B4",), "reflectance"))


def test_pixel_samples_are_tiled_for_patch_encoders_and_patches_are_not():
    import numpy as np
    import torch

    from releo_bench.batch import EOBatch, Modality
    from releo_bench.encoders.adapt import tile_pixels

    dates = np.array([["2021-05-01", "2021-05-06"]], dtype="datetime64[D]")
    values = torch.arange(6, dtype=torch.float32).reshape(1, 2, 3, 1, 1)
    mask = torch.tensor([[True, False]]).reshape(1, 2, 1, 1)
    batch = EOBatch({"s2": Modality(values, dates, mask, ("B2", "B3", "B4"), "reflectance")},
                    ("a",), {})
    tiled = tile_pixels(batch, 16)["s2"]
    assert tiled.values.shape == (1, 2, 3, 16, 16) and tiled.mask.shape == (1, 2, 16, 16)
    assert torch.equal(tiled.values[..., 7, 11], values[..., 0, 0])
    assert tiled.mask[0, 0].all() and not tiled.mask[0, 1].any()
    assert tile_pixels(batch, 1) is batch  # encoders without a minimum patch size
    patch = EOBatch({"s2": Modality(values.expand(1, 2, 3, 4, 4), dates,
                                    mask.expand(1, 2, 4, 4), ("B2", "B3", "B4"), "reflectance")},
                    ("a",), {})
    assert tile_pixels(patch, 16) is patch  # a 4 x 4 patch is not a pixel: not invented
