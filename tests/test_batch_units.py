import numpy as np
import pytest
import torch

from releo_bench.batch import EOBatch, Modality, pad_series
from releo_bench.errors import DataError, UnitError
from releo_bench.units import convert


def _mod(b=2, t=3, c=2, hw=1, units="reflectance"):
    dates = np.array([["2021-01-01", "2021-01-06", "2021-01-11"]] * b, dtype="datetime64[D]")[:, :t]
    return Modality(torch.rand(b, t, c, hw, hw), dates, torch.ones(b, t, hw, hw, dtype=torch.bool),
                    ("B4", "B8")[:c], units)


def test_modality_validation_names_the_problem():
    m = _mod()
    with pytest.raises(DataError, match="2 channels in values but 1 band"):
        Modality(m.values, m.dates, m.mask, ("B4",), "reflectance")
    bad_dates = m.dates.copy()
    bad_dates[0, 2] = np.datetime64("NaT")
    with pytest.raises(DataError, match="marked valid but have no date"):
        Modality(m.values, bad_dates, m.mask, m.bands, m.units)
    unsorted = m.dates[:, ::-1].copy()
    with pytest.raises(DataError, match="sorted in time"):
        Modality(m.values, unsorted, m.mask, m.bands, m.units)
    with pytest.raises(DataError, match="mask must be a bool tensor"):
        Modality(m.values, m.dates, m.mask.float(), m.bands, m.units)
    with pytest.raises(DataError, match="disagree on the batch size"):
        EOBatch({"s2": _mod(b=2), "s1_asc": _mod(b=3)})


def test_pad_series_keeps_dates_and_masks_irregular():
    a = (np.ones((2, 1, 1, 1)), np.array(["2021-03-01", "2021-03-09"], dtype="datetime64[D]"),
         np.ones((2, 1, 1), bool))
    b = (2 * np.ones((3, 1, 1, 1)), np.array(["2021-02-01", "2021-02-03", "2021-04-01"], dtype="datetime64[D]"),
         np.array([True, False, True])[:, None, None])
    values, dates, mask = pad_series([a, b])
    assert values.shape == (2, 3, 1, 1, 1)
    assert np.isnat(dates[0, 2]) and not mask[0, 2].any()
    m = Modality(values, dates, mask, ("NDVI",), "index")
    doy = m.day_of_year()
    assert doy[1].tolist() == [32.0, 34.0, 91.0]
    assert np.isnan(doy[0, 2].item())
    assert m.day_numbers("2021-03-01")[0, :2].tolist() == [0.0, 8.0]
    assert m.time_valid.tolist() == [[True, True, False], [True, True, True]]


def test_batch_index_selects_samples_consistently():
    batch = EOBatch({"s2": _mod(b=4)}, ("a", "b", "c", "d"), {"field": np.array([1, 2, 3, 4])})
    sub = batch.index(np.array([3, 1]))
    assert sub.sample_ids == ("d", "b") and sub.extras["field"].tolist() == [4, 2]
    assert torch.equal(sub["s2"].values[0], batch["s2"].values[3])
    with pytest.raises(DataError, match="modality 's1_asc' is not in this batch"):
        batch["s1_asc"]


@pytest.mark.parametrize("db, linear", [(0.0, 1.0), (10.0, 10.0), (-20.0, 0.01), (-13.0, 10 ** -1.3)])
def test_db_linear_closed_form(db, linear):
    x = torch.tensor([db], dtype=torch.float64)
    assert convert(x, "dB", "linear", where="VV").item() == pytest.approx(linear, rel=1e-12)
    assert convert(torch.tensor([linear], dtype=torch.float64), "linear", "dB", where="VV").item() == pytest.approx(db, abs=1e-12)


def test_reflectance_digital_numbers():
    dn = torch.tensor([0.0, 1234.0, 10000.0], dtype=torch.float64)
    assert convert(dn, "reflectance_x10000", "reflectance", where="B4").tolist() == [0.0, 0.1234, 1.0]
    # ESA baseline >= 04.00: DN 1000 is zero reflectance
    assert convert(torch.tensor([1000.0, 2234.0], dtype=torch.float64), "reflectance_x10000_offset1000",
                   "reflectance", where="B4").tolist() == pytest.approx([0.0, 0.1234])
    back = convert(torch.tensor([0.1234], dtype=torch.float64), "reflectance", "reflectance_x10000_offset1000", where="B4")
    assert back.item() == pytest.approx(2234.0)


def test_unit_errors_name_the_band_and_never_guess():
    with pytest.raises(UnitError, match=r"band 'B8'.*'DN' is ambiguous"):
        convert(torch.ones(1), "DN", "reflectance", where="modality 's2', band 'B8'")
    with pytest.raises(UnitError, match=r"VH.*cannot convert 'dB' \(backscatter\) to 'reflectance'"):
        convert(torch.ones(1), "dB", "reflectance", where="VH")
