"""Galileo nano: strict weight loading, pretrained tables, behaviour on EuroSAT against a
randomly initialised copy and raw band means, the encoder contract (masks, monthly windows,
units), and a CLI run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from releo_bench.batch import EOBatch, Modality
from releo_bench.checks import check_encoder
from releo_bench.encoders.adapt import encode_batch, prepare_batch
from releo_bench.encoders.galileo import NORM_MEAN, NORM_STD, S1_BANDS, S2_BANDS, GalileoNano
from releo_bench.encoders.galileo_net import GalileoNet, load_galileo, sincos_1d
from releo_bench.errors import BandError, DataError, UnitError, UsageError
from releo_bench.registries import ENCODERS

# as in conftest.py (module-scoped fixtures run before its per-test environment)
SHARED = Path(os.environ.get("RELEO_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))


@pytest.fixture(scope="module")
def weights_dir() -> Path:
    path = SHARED / "weights" / "galileo_nano"
    if not (path / "encoder.pt").is_file():
        pytest.skip(f"Galileo nano weights not found at {path} (set RELEO_SHARED_DIR)")
    return path


@pytest.fixture(scope="module")
def encoder(weights_dir: Path) -> GalileoNano:
    return GalileoNano(weights=str(weights_dir))


@pytest.fixture(scope="module")
def eurosat() -> tuple[torch.Tensor, np.ndarray, tuple[str, ...]]:
    """All 200 EuroSAT patches ``[200, 1, 13, 64, 64]``, labels, band names."""
    from releo_bench.registries import TASKS

    root = SHARED / "data" / "eurosat_ms_200"
    if not root.is_dir():
        pytest.skip(f"EuroSAT sample not found at {root}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RELEO_DATASETS_DIR", str(SHARED / "data"))
        task = TASKS.get("eurosat-ms")()
        parts = [task.load(s) for s in ("train", "val", "test")]
    values = torch.cat([p.batch["s2"].values for p in parts])
    return values, np.concatenate([p.target for p in parts]), parts[0].batch["s2"].bands


def _s2(values: np.ndarray | torch.Tensor, dates: np.ndarray, mask: np.ndarray | None = None,
        bands: tuple[str, ...] = S2_BANDS, unit: str = "reflectance_x10000") -> Modality:
    v = torch.as_tensor(values, dtype=torch.float32)
    m = torch.ones(v.shape[:2] + v.shape[3:], dtype=torch.bool) if mask is None \
        else torch.as_tensor(mask)
    return Modality(v, dates, m, bands, unit)


def _dates(b: int, days: list[int], start: str = "2021-03-01") -> np.ndarray:
    return np.datetime64(start) + np.array([days] * b).astype("timedelta64[D]")


def _random_net(seed: int) -> GalileoNet:
    """The architecture with fresh weights (xavier linears, as upstream initialises)."""
    torch.manual_seed(seed)
    net = GalileoNet()
    for m in net.modules():
        if isinstance(m, torch.nn.Linear):
            torch.nn.init.xavier_uniform_(m.weight)
            torch.nn.init.zeros_(m.bias)
    torch.nn.init.normal_(net.s_t_channel_embed, std=0.02)
    return net.requires_grad_(False).eval()


def _knn_cv(x: np.ndarray, y: np.ndarray) -> float:
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    model = make_pipeline(StandardScaler(), KNeighborsClassifier(5))
    return float(cross_val_score(model, x, y, cv=cv).mean())


# -- weights -------------------------------------------------------------------------------
def test_weights_load_strictly(weights_dir):
    state = torch.load(weights_dir / "encoder.pt", map_location="cpu", weights_only=True)
    config = json.loads((weights_dir / "config.json").read_text())
    net = load_galileo(state, config)  # strict=True inside
    n = sum(p.numel() for p in net.parameters())
    assert n == 1_037_856  # "1.04 M parameters"
    # the frozen tables are the sinusoids this module computes (same code builds the
    # spatial encoding, which is not stored)
    assert torch.allclose(state["pos_embed"], sincos_1d(torch.arange(24), 32), atol=1e-6)
    assert torch.allclose(state["month_embed.weight"], GalileoNet().month_embed.weight, atol=1e-6)
    norm = json.loads((weights_dir / "normalization.json").read_text())["13"]
    assert norm["mean"] == list(NORM_MEAN) and norm["std"] == list(NORM_STD)
    bad = dict(state)
    bad.pop("blocks.3.mlp.fc2.bias")
    with pytest.raises(RuntimeError, match="fc2.bias"):
        load_galileo(bad, config)


def test_metadata_options_and_lazy_weights(tmp_path):
    enc = ENCODERS.get("galileo-nano")(weights=str(tmp_path / "none.pt"))
    assert enc.meta.embedding_shape == (128,) and enc._net is None
    assert enc.meta.min_patch_size == 1 and enc.meta.licence == "MIT"
    assert GalileoNano(mode="patch", patch_size=4).meta.min_patch_size == 4
    assert GalileoNano(mode="pixel").meta.min_patch_size == 1
    s2 = enc.meta.modalities["s2"]
    assert s2.bands == S2_BANDS and s2.units[0] == "reflectance_x10000"
    # (x - (mean - 2 std)) / (4 std), B2 is entry 2 of "13"
    assert s2.mean[0] == pytest.approx(NORM_MEAN[2] - 2 * NORM_STD[2])
    assert s2.std[0] == pytest.approx(4 * NORM_STD[2])
    assert enc.meta.modalities["s1"].bands == S1_BANDS and not enc.meta.modalities["s1"].required
    first = GalileoNano.WEIGHTS[0]
    assert first.sha256 == enc.meta.weights.sha256 and len(first.sha256) == 64
    assert first.url.startswith("https://raw.githubusercontent.com/nasaharvest/galileo/")
    for bad in ({"bogus": 1}, {"mode": "tiles"}, {"patch_size": 9}, {"max_months": 25},
                {"min_valid": 0.0}):
        with pytest.raises(UsageError):
            GalileoNano(**bad)
    assert "weights" not in enc.config() and enc.config()["patch_size"] == 8


# -- behaviour on real data ----------------------------------------------------------------
def test_eurosat_pretrained_beats_random_init_and_band_means(encoder, eurosat):
    """kNN (k=5, 5-fold CV over the 200 patches) on 16 x 16 centre crops, patch size 8 (2 x 2
    tokens per group). Measured: pretrained 0.68; the same network re-initialised 0.46 (seeds
    0-2: 0.42-0.46); band means 0.525; the pretrained network fed z-scores instead of the
    pretraining normalisation 0.54 (so the check also catches a normalisation error)."""
    values, y, bands = eurosat
    crop = values[..., 24:40, 24:40]
    batch = EOBatch({"s2": _s2(crop, np.full((len(y), 1), np.datetime64("2016-06-01")),
                               bands=bands)})
    enc = GalileoNano(weights=encoder.options["weights"], mode="patch", patch_size=8)
    pretrained = encode_batch(enc, batch).features
    x, valid, months = enc.inputs(prepare_batch(batch, enc.meta))
    tokens_valid = valid[..., ::8, ::8]
    assert torch.allclose(enc.net(x, tokens_valid, months, 8), pretrained, atol=1e-5)
    zscore = x.clone()
    zscore[:, :, 2:12] = 4 * x[:, :, 2:12] - 2  # (v - mean) / std instead of the pretraining norm
    acc = _knn_cv(pretrained.numpy(), y)
    acc_rand = _knn_cv(_random_net(0)(x, tokens_valid, months, 8).numpy(), y)
    acc_means = _knn_cv(crop[:, 0].mean(dim=(-1, -2)).numpy(), y)
    acc_z = _knn_cv(enc.net(zscore, tokens_valid, months, 8).numpy(), y)
    assert acc > 0.6, acc
    assert acc - acc_rand > 0.12, (acc, acc_rand)
    assert acc - acc_means > 0.08, (acc, acc_means)
    assert acc - acc_z > 0.06, (acc, acc_z)


def test_pixel_and_patch_modes(encoder, eurosat):
    """Both modes run on image patches; pixel mode averages per-pixel embeddings (an 8 x 8 crop
    is the mean of its four 4 x 4 quarters); auto is pixel on 1 x 1 samples."""
    values, y, bands = eurosat
    crop = values[::25][..., 28:36, 28:36]  # 8 patches, 8 x 8 px
    dates = np.full((len(crop), 1), np.datetime64("2016-06-01"))
    w = encoder.options["weights"]

    def emb(v: torch.Tensor, **options: object) -> torch.Tensor:
        return encode_batch(GalileoNano(weights=w, **options),
                            EOBatch({"s2": _s2(v, dates, bands=bands)})).features

    pix, pat = emb(crop, mode="pixel"), emb(crop, mode="patch", patch_size=4)
    assert pix.shape == pat.shape == (len(crop), 128)
    assert not torch.allclose(pix, pat, atol=1e-2)
    quarters = [emb(crop[..., i:i + 4, j:j + 4], mode="pixel") for i in (0, 4) for j in (0, 4)]
    assert torch.allclose(pix, torch.stack(quarters).mean(0), atol=1e-5)
    one = crop[..., :1, :1]
    assert torch.allclose(emb(one), emb(one, mode="pixel"))
    tiled = emb(one, mode="patch", patch_size=4)  # the harness tiles 1 x 1 samples to 4 x 4
    assert tiled.shape == (len(crop), 128) and not torch.allclose(tiled, emb(one), atol=1e-2)


def test_run_eurosat_cli(weights_dir, eurosat, tmp_path):
    from releo_bench.cli import main
    from releo_bench.results import read_results

    out = tmp_path / "run"
    code = main(["run", "--model", "galileo-nano", "--task", "eurosat-ms", "--model-option",
                 "mode=patch", "--model-option", "patch_size=8", "--output", str(out),
                 "--seeds", "1", "--tracking-uri", "none", "--n-boot", "50", "--no-plots"])
    assert code == 0
    r = read_results(out / "results.json")
    assert r.metrics["overall_accuracy"].mean > 0.6  # 10 classes; measured 0.8


# -- contract ------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["pixel", "patch"])
def test_check_encoder(weights_dir, mode):
    check_encoder(GalileoNano(weights=str(weights_dir), mode=mode, patch_size=4))


def test_masked_observations_and_tokens_ignored(encoder):
    rng = np.random.default_rng(0)
    b, t, hw = 2, 5, 8
    values = rng.uniform(200, 4000, (b, t, 10, hw, hw)).astype(np.float32)
    dates = _dates(b, [0, 20, 40, 75, 110])
    mask = np.ones((b, t, hw, hw), dtype=bool)
    mask[0, 1] = False  # a cloudy date
    mask[1, 2, :5] = False  # mostly cloudy patch rows: some tokens masked, some filled
    mask[1, 4, :, :2] = False
    s1 = rng.uniform(-20, -8, (b, 3, 2, hw, hw)).astype(np.float32)
    s1_mask = np.ones((b, 3, hw, hw), dtype=bool)
    s1_mask[1, 0] = False
    s1_dates = _dates(b, [5, 50, 90])
    enc = GalileoNano(weights=encoder.options["weights"], mode="patch", patch_size=4)

    def run(v: np.ndarray, v1: np.ndarray) -> torch.Tensor:
        batch = EOBatch({"s2": _s2(v, dates, mask),
                         "s1": Modality(torch.from_numpy(v1), s1_dates, torch.from_numpy(s1_mask),
                                        S1_BANDS, "dB")})
        return encode_batch(enc, batch).features

    first = run(values, s1)
    noisy, noisy1 = values.copy(), s1.copy()
    noisy[~np.broadcast_to(mask[:, :, None], values.shape)] = 30000.0
    noisy1[~np.broadcast_to(s1_mask[:, :, None], s1.shape)] = 40.0
    assert torch.equal(first, run(noisy, noisy1))
    # removing masked tokens equals keeping them in the sequence as masked keys
    net = enc.net
    tokens = torch.randn(3, 20, 128)
    keep = torch.rand(3, 20) > 0.4
    keep[2] = False
    pooled = net.encode_tokens(tokens, keep)
    x = tokens
    full = keep.clone()
    full[2, 0] = True
    for blk in net.blocks:
        x = blk(x, full)
    x = net.norm(x)
    ref = (x * keep[:, :, None]).sum(1) / keep.sum(1, keepdim=True).clamp(min=1)
    assert torch.allclose(pooled[:2], ref[:2], atol=1e-5)
    assert torch.equal(pooled[2], torch.zeros(128))  # nothing valid: zeros


def test_monthly_window_shared_by_s1_and_s2(encoder):
    s2_dates = np.array([["2021-03-05", "2021-05-10", "NaT"],
                         ["2020-01-10", "2020-09-01", "2021-06-20"]], dtype="datetime64[D]")
    s1_dates = np.array([["2021-02-20", "2021-04-01"], ["NaT", "NaT"]], dtype="datetime64[D]")
    s2_mask = ~np.isnat(s2_dates)[:, :, None, None]
    values = np.full((2, 3, 10, 1, 1), 1500.0, dtype=np.float32)
    values[:, :, 6] = 3000.0  # B8: NDVI = (3000 - 1500) / 4500 where B4 = 1500
    batch = EOBatch({
        "s2": _s2(values, s2_dates, s2_mask),
        "s1": Modality(torch.full((2, 2, 2, 1, 1), -12.0), s1_dates,
                       torch.from_numpy(~np.isnat(s1_dates)[:, :, None, None]), S1_BANDS, "dB")})
    x, valid, months = encoder.inputs(prepare_batch(batch, encoder.meta))
    assert x.shape == (2, 12, 13, 1, 1)
    # sample 0: Feb..May 2021 (S1 starts the window); sample 1: last 12 months, Jul 2020..Jun 2021
    assert months[0, :4].tolist() == [1, 2, 3, 4] and months[1, 0].item() == 6
    v = valid[..., 0, 0]
    assert v[0, :4, 0].tolist() == [True, False, True, False]  # S1: Feb, Apr
    assert v[0, :4, 1].tolist() == [False, True, False, True]  # S2: Mar, May
    assert v[0, 4:].sum() == 0  # padding months of sample 0
    assert v[1, :, 1].nonzero().flatten().tolist() == [2, 11]  # Sep 2020, Jun 2021; Jan dropped
    assert v[1, :, 0].sum() == 0  # sample 1 has no S1 at all
    assert x[0, 1, 12, 0, 0].item() == pytest.approx(1 / 3)  # NDVI, raw (not normalised)
    assert torch.isfinite(encode_batch(encoder, batch).features).all()


def test_s1_only_and_no_usable_modality(encoder):
    rng = np.random.default_rng(1)
    s1 = Modality(torch.from_numpy(rng.uniform(-20, -8, (2, 4, 2, 1, 1)).astype(np.float32)),
                  _dates(2, [0, 30, 60, 90]), torch.ones(2, 4, 1, 1, dtype=torch.bool),
                  S1_BANDS, "dB")
    out = encode_batch(encoder, EOBatch({"s1": s1})).features
    assert out.shape == (2, 128) and out.abs().sum() > 0

    class Data:
        batch = EOBatch({"angles": Modality(torch.zeros(1, 1, 3, 1, 1), _dates(1, [0]),
                                            torch.ones(1, 1, 1, 1, dtype=torch.bool),
                                            ("sza", "vza", "raa"), "degree")})

    with pytest.raises(BandError, match="'s2'"):
        encoder.adapt_to(Data())


def test_bands_and_units_fail_loudly(encoder):
    rng = np.random.default_rng(2)
    values = rng.uniform(300, 4000, (2, 2, 10, 1, 1)).astype(np.float32)
    dates = _dates(2, [0, 40])
    ref = encode_batch(encoder, EOBatch({"s2": _s2(values, dates)})).features
    # bands in another order are put back in the declared order by name
    perm = [9, 3, 0, 7, 1, 5, 2, 8, 6, 4]
    shuffled = _s2(values[:, :, perm], dates, bands=tuple(S2_BANDS[i] for i in perm))
    assert torch.allclose(encode_batch(encoder, EOBatch({"s2": shuffled})).features, ref, atol=1e-6)
    with pytest.raises(BandError, match="B8A"):
        encode_batch(encoder, EOBatch({"s2": _s2(values[:, :, :9], dates,
                                                 bands=tuple(b for b in S2_BANDS if b != "B8A"))}))
    with pytest.raises(UnitError, match="DN"):
        encode_batch(encoder, EOBatch({"s2": _s2(values, dates, unit="DN")}))
    with pytest.raises(DataError, match="reflectance 0-1"):  # reflectance labelled x 10000
        encode_batch(encoder, EOBatch({"s2": _s2(values / 10000, dates)}))
    with pytest.raises(DataError, match="digital numbers"):  # DN labelled reflectance
        encode_batch(encoder, EOBatch({"s2": _s2(values, dates, unit="reflectance")}))
    linear = Modality(torch.from_numpy(rng.uniform(0.005, 0.2, (2, 2, 2, 1, 1)).astype(np.float32)),
                      dates, torch.ones(2, 2, 1, 1, dtype=torch.bool), S1_BANDS, "dB")
    with pytest.raises(DataError, match="linear"):
        encode_batch(encoder, EOBatch({"s2": _s2(values, dates), "s1": linear}))
    with pytest.raises(DataError, match="patch_size 8 does not divide"):
        encode_batch(GalileoNano(weights=encoder.options["weights"]),
                     EOBatch({"s2": _s2(np.ones((1, 1, 10, 12, 12), np.float32) * 1000,
                                        _dates(1, [0]))}))
