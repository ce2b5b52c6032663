"""Monthly composites of irregular, cloud-masked series (Presto, Galileo inputs)."""

import numpy as np
import torch

from releo_bench.batch import Modality
from releo_bench.encoders.composite import monthly_composites


def _mod(dates, values, valid):
    d = np.array(dates, dtype="datetime64[D]")
    v = torch.tensor(values, dtype=torch.float32).view(len(dates), len(dates[0]), -1, 1, 1)
    m = torch.tensor(valid).view(len(dates), len(dates[0]), 1, 1)
    return Modality(v, d, m, tuple(f"b{i}" for i in range(v.shape[2])), "reflectance")


def test_medians_means_and_masks():
    mod = _mod([["2020-01-03", "2020-01-20", "2020-03-02", "2020-03-09", "2020-03-30", "NaT"]],
               [[[1, 10], [3, 2], [5, 0], [7, 9], [100, 100], [0, 0]]],
               [[True, True, True, True, False, False]])
    c = monthly_composites(mod, 12)
    assert c.values.shape == (1, 3, 2, 1, 1)
    # January: two observations -> their mean per band (not the lower value)
    assert c.values[0, 0, :, 0, 0].tolist() == [2.0, 6.0]
    # February: nothing -> invalid, zero; March: the cloudy 100s are ignored
    assert not c.valid[0, 1, 0, 0] and c.values[0, 1].abs().sum() == 0
    assert c.values[0, 2, :, 0, 0].tolist() == [6.0, 4.5]
    assert c.months[0].tolist() == [0, 1, 2] and str(c.start[0]) == "2020-01"
    mean = monthly_composites(mod, 12, how="mean")
    assert mean.values[0, 2, :, 0, 0].tolist() == [6.0, 4.5]


def test_long_series_keep_their_last_months_and_batch_padding():
    dates = [[f"2019-{m:02d}-15" for m in range(1, 13)] + ["2020-01-15", "2020-02-15"],
             ["2020-05-01"] * 2 + ["NaT"] * 12]
    values = [[[float(i)] for i in range(14)], [[1.0], [3.0]] + [[0.0]] * 12]
    valid = [[True] * 14, [True, True] + [False] * 12]
    c = monthly_composites(_mod(dates, values, valid), 12)
    assert c.values.shape[1] == 12
    assert str(c.start[0]) == "2019-03" and c.values[0, -1, 0, 0, 0] == 13.0
    assert c.in_window[1].tolist() == [True] + [False] * 11  # one month, padded after it
    assert c.values[1, 0, 0, 0, 0] == 2.0


def test_fixed_start_allows_empty_samples():
    c = monthly_composites(_mod([["NaT", "NaT"]], [[[1.0], [2.0]]], [[False, False]]), 6,
                           start=np.array(["2021-04-01"], dtype="datetime64[D]"))
    assert c.values.shape[1] == 6 and not c.valid.any()
    assert c.months[0].tolist() == [3, 4, 5, 6, 7, 8]
