"""`releo-bench simulate prosail`: agreement with the prosail package, and bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from releo_bench.cli import main

prosail = pytest.importorskip("prosail")

GOOD = pd.DataFrame({
    "n": [1.5, 1.8, 2.2], "cab": [40.0, 20.0, 70.0], "car": [8.0, 5.0, 12.0],
    "cbrown": [0.0, 0.2, 0.05], "cw": [0.01, 0.02, 0.005], "cm": [0.009, 0.005, 0.012],
    "lai": [3.0, 0.5, 6.0], "lidfa": [57.0, 30.0, 70.0], "hspot": [0.1, 0.2, 0.05],
    "tts": [30.0, 45.0, 20.0], "tto": [10.0, 0.0, 5.0], "psi": [0.0, 90.0, 150.0],
    "rsoil": [1.0, 0.8, 1.2], "psoil": [0.5, 1.0, 0.2],
})


def _reference_spectrum(row: pd.Series) -> np.ndarray:
    kw = {k: float(v) for k, v in row.items()}
    return prosail.run_prosail(**kw, ant=0.0, typelidf=2, lidfb=0.0, prospect_version="D", factor="SDR")


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_prosail_table_matches_reference(tmp_path, suffix):
    src, out = tmp_path / f"params{suffix}", tmp_path / f"bands{suffix}"
    GOOD.to_csv(src, index=False) if suffix == ".csv" else GOOD.to_parquet(src, index=False)
    assert main(["simulate", "prosail", "--params", str(src), "--out", str(out), "--spectrum"]) == 0
    df = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    assert list(df.columns[:13]) == ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9",
                                     "B10", "B11", "B12"]
    assert df.columns[13] == "400" and df.columns[-1] == "2500" and len(df) == 3
    for i, row in GOOD.iterrows():
        ref = _reference_spectrum(row)
        np.testing.assert_allclose(df.loc[i, [str(w) for w in range(400, 2501)]].to_numpy(float), ref, atol=1e-4)
    # band values are the spectrum weighted by the default response: a flat check on B8
    b8 = df.loc[:, [str(w) for w in range(780, 886)]].to_numpy(float).mean(axis=1)
    np.testing.assert_allclose(df["B8"].to_numpy(), b8, atol=2e-3)


def test_official_srf_option(tmp_path, shared_data):
    src, out = tmp_path / "p.csv", tmp_path / "b.csv"
    GOOD.to_csv(src, index=False)
    srf = shared_data / "s2_srf" / "S2-SRF_COPE-GSEG-EOPG-TN-15-0007_3.0_S2B.csv"
    assert main(["simulate", "prosail", "--params", str(src), "--out", str(out), "--sensor", "s2b", "--srf", str(srf)]) == 0
    official = pd.read_csv(out)
    assert main(["simulate", "prosail", "--params", str(src), "--out", str(tmp_path / "d.csv"), "--sensor", "s2b"]) == 0
    default = pd.read_csv(tmp_path / "d.csv")
    # the two responses give close band values on canopy spectra (see docs/physics-s2-s1.md)
    for band in ("B2", "B3", "B4", "B8", "B11", "B12"):
        assert np.abs(official[band] - default[band]).max() < 0.01
    assert main(["simulate", "prosail", "--params", str(src), "--out", str(out), "--sensor", "s2a", "--srf", str(srf)]) == 2


@pytest.mark.parametrize("mutate, needle", [
    (lambda d: d.drop(columns=["cab"]), "missing required column(s) ['cab']"),
    (lambda d: d.assign(lai=[3.0, -1.0, 2.0]), "column 'lai', row 2: value -1 is outside the accepted range"),
    (lambda d: d.assign(cm=[0.009, np.nan, 0.01]), "column 'cm', row 2 (data row, 1-based): value 'nan' is not a finite number"),
    (lambda d: d.assign(typelidf=[2, 3, 2]), "column 'typelidf', row 2"),
    (lambda d: d.assign(colour=[1, 2, 3]), "unknown column(s) ['colour']"),
])
def test_bad_parameter_files_exit_2_naming_column_and_row(tmp_path, capsys, mutate, needle):
    src = tmp_path / "bad.csv"
    mutate(GOOD.copy()).to_csv(src, index=False)
    assert main(["simulate", "prosail", "--params", str(src), "--out", str(tmp_path / "o.csv")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert needle in err and "bad.csv" in err
    assert not (tmp_path / "o.csv").exists()


def test_missing_file_and_bad_extension(tmp_path):
    assert main(["simulate", "prosail", "--params", str(tmp_path / "none.csv"), "--out", str(tmp_path / "o.csv")]) == 2
    (tmp_path / "p.txt").write_text("n\n1.5\n")
    assert main(["simulate", "prosail", "--params", str(tmp_path / "p.txt"), "--out", str(tmp_path / "o.csv")]) == 2
