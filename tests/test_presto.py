"""Presto: the state dict loads strictly into our network, the pretrained model does its
pretraining task (masked reconstruction) on real data far better than baselines, masked
attention equals upstream's token removal, the encoder contract, and a CLI run."""

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
from releo_bench.encoders.presto import WEIGHTS_SHA256, Presto
from releo_bench.encoders.presto_net import (CHANNELS, DW_MISSING, GROUPS, PrestoNet,
                                             month_table, normalise, sinusoid_table)
from releo_bench.errors import BandError, DataError, UnitError, UsageError
from releo_bench.weights import sha256_of

S2 = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
NPY_KEEP = [i for i in range(18) if i != 10]  # presto_eval arrays: drop B9 -> Presto's 17


@pytest.fixture
def weights() -> Path:
    path = Path(os.environ["RELEO_WEIGHTS_DIR"]) / "presto" / "default_model.pt"
    if not path.is_file():
        pytest.skip(f"Presto weights not found at {path} (set RELEO_SHARED_DIR)")
    return path


@pytest.fixture
def net(weights: Path) -> PrestoNet:
    return PrestoNet.from_file(weights)


@pytest.fixture
def algae(shared_data: Path) -> dict[str, torch.Tensor]:
    """First 120 algae-blooms samples (12 monthly steps) as Presto inputs."""
    npy = shared_data / "presto_eval" / "algae_blooms" / "npy"
    if not npy.is_dir():
        pytest.skip(f"Presto evaluation arrays not found at {npy}")
    n = 120
    return {"x": normalise(np.load(npy / "s1_s2_era5_srtm.npy")[:n, :, NPY_KEEP]),
            "months": torch.from_numpy(np.load(npy / "month.npy")[:n]).long(),
            "latlons": torch.from_numpy(np.load(npy / "latlon.npy")[:n]).float()}


def test_state_dict_strict(weights: Path, net: PrestoNet) -> None:
    state = torch.load(weights, map_location="cpu", weights_only=True)
    assert sha256_of(weights) == WEIGHTS_SHA256
    assert len(state) == 102 and sum(v.numel() for v in state.values()) == 823_002
    # the channel-group codes are shared by encoder and decoder (stored twice in the file)
    assert torch.equal(state["encoder.channel_embed.weight"],
                       state["decoder.channel_embeddings.weight"])
    assert sum(p.numel() for p in net.parameters()) == 822_682
    assert sum(p.numel() for p in net.encoder.parameters()) == 404_160
    # the fixed step and month codes are the tables we compute
    assert torch.allclose(state["encoder.pos_embed"][0], sinusoid_table(24, 64), atol=1e-6)
    assert torch.allclose(state["decoder.pos_embed"][0], sinusoid_table(24, 48), atol=1e-6)
    assert torch.allclose(state["encoder.month_embed.weight"], month_table(32), atol=1e-6)
    assert torch.allclose(state["decoder.month_embed.weight"], month_table(48), atol=1e-6)


def _token_mask(b: int, t: int, frac: float, seed: int) -> torch.Tensor:
    """Mask ``frac`` of the (step, dynamic group) tokens of every sample (same count each)."""
    gen = torch.Generator().manual_seed(seed)
    dyn = [idx for name, idx in GROUPS if name != "SRTM"]
    n = t * len(dyn)
    missing = torch.zeros(b, t, len(CHANNELS), dtype=torch.bool)
    for i in range(b):
        for s in torch.randperm(n, generator=gen)[: round(frac * n)].tolist():
            missing[i, s // len(dyn), list(dyn[s % len(dyn)])] = True
    return missing


def _recon_error(net: PrestoNet, d: dict[str, torch.Tensor], missing: torch.Tensor,
                 latlons: torch.Tensor | None) -> float:
    dw = torch.full_like(d["months"], DW_MISSING)
    with torch.no_grad():
        rec, _ = net.reconstruct(d["x"], missing, dw, d["months"], latlons)
    return float(((rec - d["x"]) ** 2)[missing].mean())


def test_reconstructs_masked_tokens(net: PrestoNet, algae: dict[str, torch.Tensor]) -> None:
    """The pretraining task on real data: half the tokens masked, MSE (normalised units) on
    them. Measured (120 samples; all 1122 in brackets): pretrained 0.0071 (0.0074), without
    the location token 0.0099 (0.0099), per-sample mean of the kept values 0.027 (0.027), the
    same network freshly initialised 0.74 (0.72)."""
    b, t, _ = algae["x"].shape
    missing = _token_mask(b, t, 0.5, seed=0)
    err = _recon_error(net, algae, missing, algae["latlons"])
    x, keep = algae["x"], ~missing
    mean = (x * keep).sum(1, keepdim=True) / keep.sum(1, keepdim=True).clamp(min=1)
    baseline = float(((mean.expand_as(x) - x) ** 2)[missing].mean())
    torch.manual_seed(0)
    rand = PrestoNet().eval()
    random_err = _recon_error(rand, algae, missing, algae["latlons"])
    no_location = _recon_error(net, algae, missing, None)
    assert err < 0.4 * baseline, (err, baseline)
    assert err < 0.05 * random_err, (err, random_err)
    assert err < 0.9 * no_location, (err, no_location)


def _pooled_by_removal(net: PrestoNet, x, missing, dw, months, latlons) -> torch.Tensor:
    """Upstream's computation: drop the missing tokens, run the blocks, mean, norm."""
    enc = net.encoder
    out = []
    for i in range(len(x)):
        tok, keep, _ = enc.tokens(x[i:i + 1], missing[i:i + 1], dw[i:i + 1], months[i:i + 1],
                                  latlons[i:i + 1])
        h = tok[:, keep[0]]
        for blk in enc.blocks:
            h = blk(h)
        out.append(enc.norm(h.mean(dim=1)))
    return torch.cat(out)


def test_masked_attention_equals_token_removal(net: PrestoNet) -> None:
    gen = torch.Generator().manual_seed(1)
    b, t = 5, 7
    x = torch.rand(b, t, len(CHANNELS), generator=gen)
    missing = torch.rand(b, t, len(CHANNELS), generator=gen) < 0.3  # different counts per row
    missing[2] = True  # a row with nothing but its location
    dw = torch.randint(0, DW_MISSING + 1, (b, t), generator=gen)
    months = torch.randint(0, 12, (b, t), generator=gen)
    latlons = torch.tensor([[45.0, 3.0], [-10.0, 120.0], [0.0, 0.0], [60.0, -100.0],
                            [12.0, 7.0]])
    with torch.no_grad():
        batched = net.encoder(x, missing, dw, months, latlons)
        ref = _pooled_by_removal(net, x, missing, dw, months, latlons)
        garbage = torch.where(missing, torch.full_like(x, 1e6), x)
        again = net.encoder(garbage, missing, dw, months, latlons)
    assert (batched - ref).abs().max() < 1e-5
    assert torch.equal(batched, again)


# -- the encoder contract --------------------------------------------------------------------

def _pixel_batch(n: int = 3, seed: int = 0, s2_unit: str = "reflectance_x10000",
                 bands: tuple[str, ...] = S2, with_others: bool = True) -> EOBatch:
    """Irregular S2 (cloudy dates), S1 on other dates, monthly meteo, a static DEM; lat/lon."""
    rng = np.random.default_rng(seed)
    t2, t1 = 14, 9
    day0 = np.datetime64("2021-01-03")
    d2 = day0 + np.sort(rng.choice(330, (n, t2), replace=True), axis=1).astype("timedelta64[D]")
    d1 = day0 + np.sort(rng.choice(330, (n, t1), replace=False), axis=1).astype("timedelta64[D]")
    scale = 1.0 if s2_unit == "reflectance" else 1e4
    s2v = (rng.uniform(0.02, 0.4, (n, t2, len(bands), 1, 1)) * scale).astype(np.float32)
    s2m = rng.random((n, t2, 1, 1)) > 0.3
    mods = {"s2": Modality(torch.from_numpy(s2v), d2, torch.from_numpy(s2m), bands, s2_unit)}
    if with_others:
        s1v = rng.uniform(-22, -6, (n, t1, 2, 1, 1)).astype(np.float32)
        mods["s1"] = Modality(torch.from_numpy(s1v), d1, torch.ones(n, t1, 1, 1, dtype=torch.bool),
                              ("VV", "VH"), "dB")
        dm = np.datetime64("2021-01-15") + (30 * np.arange(11)).astype("timedelta64[D]")
        met = np.stack([rng.uniform(265, 305, (n, 11)), rng.uniform(0, 120, (n, 11))], -1)
        mods["meteo"] = Modality(torch.from_numpy(met.astype(np.float32)[..., None, None]),
                                 np.tile(dm, (n, 1)), torch.ones(n, 11, 1, 1, dtype=torch.bool),
                                 ("temperature_2m", "precipitation"), ("K", "mm"))
        dem = rng.uniform([50, 0], [2500, 30], (n, 1, 2)).astype(np.float32)[..., None, None]
        mods["dem"] = Modality(torch.from_numpy(dem), np.full((n, 1), day0),
                               torch.ones(n, 1, 1, 1, dtype=torch.bool), ("elevation", "slope"),
                               ("m", "degree"))
    extras = {"lat": rng.uniform(30, 60, n), "lon": rng.uniform(-120, 30, n)}
    return EOBatch(mods, tuple(f"p{i}" for i in range(n)), extras)


def test_check_encoder(weights: Path) -> None:
    enc = Presto()
    check_encoder(enc)
    meta = enc.meta
    assert meta.temporal_mode == "monthly" and meta.embedding_shape == (128,)
    assert "L1C" in meta.description and meta.licence == "MIT"
    assert not any(spec.required for spec in meta.modalities.values())


def test_inputs_monthly(weights: Path) -> None:
    """Calendar-month composites, group masks, month codes, precipitation mm -> m / 0.03."""
    batch = _pixel_batch()
    enc = Presto()
    inp = enc.inputs(prepare_batch(batch, enc.meta))
    x, missing, months = inp["x"], inp["missing"], inp["months"]
    assert x.shape[1] <= 12 and x.shape[2] == 17
    first = batch["s2"].dates.min(axis=1).astype("datetime64[M]")
    first = np.minimum(first, batch["s1"].dates.min(axis=1).astype("datetime64[M]"))
    assert months[:, 0].tolist() == (first.astype(int) % 12).tolist()
    assert ((months[:, 1:] - months[:, :-1]) % 12 == 1).all()
    assert (inp["dynamic_world"] == DW_MISSING).all()
    # every month of S2 without a valid date is masked, and NDVI with it
    s2 = batch["s2"]
    step = (s2.dates.astype("datetime64[M]") - first[:, None]).astype(int)
    for i in range(len(batch)):
        valid_steps = set(step[i][s2.mask[i, :, 0, 0].numpy()].tolist())
        for k in range(x.shape[1]):
            assert bool(missing[i, k, 2]) == (k not in valid_steps)
            assert bool(missing[i, k, 16]) == (k not in valid_steps)
    # ERA5 precipitation: 60 mm = 0.06 m -> 0.06 / 0.03 = 2
    met = batch["meteo"]
    k0 = (met.dates[0, 0].astype("datetime64[M]") - first[0]).astype(int)
    assert x[0, k0, 13].item() == pytest.approx(met.values[0, 0, 1, 0, 0].item() / 30.0, rel=1e-5)
    assert x[0, k0, 12].item() == pytest.approx((met.values[0, 0, 0, 0, 0].item() - 272.15) / 35,
                                                rel=1e-5)
    assert torch.allclose(inp["latlons"][:, 0], torch.tensor(batch.extras["lat"]).float())


def test_masked_observations_and_units(weights: Path) -> None:
    enc = Presto()
    batch = _pixel_batch()
    first = encode_batch(enc, batch).features
    noisy = {}
    for name, mod in batch.modalities.items():
        bad = ~mod.mask[:, :, None].expand_as(mod.values)
        noisy[name] = Modality(torch.where(bad, torch.full_like(mod.values, 7e4), mod.values),
                               mod.dates, mod.mask, mod.bands, mod.units)
    assert torch.equal(first, encode_batch(enc, EOBatch(noisy, batch.sample_ids,
                                                        batch.extras)).features)
    # the same reflectance as 0-1 and with bands in another order: same embedding
    refl = _pixel_batch(s2_unit="reflectance")
    perm = [9, 0, 8, 1, 7, 2, 6, 3, 5, 4]
    s2 = refl["s2"]
    shuffled = Modality(s2.values[:, :, perm], s2.dates, s2.mask, tuple(S2[i] for i in perm),
                        s2.units)
    mods = {**refl.modalities, "s2": shuffled}
    other = encode_batch(enc, EOBatch(mods, refl.sample_ids, refl.extras)).features
    assert (other - first).abs().max() < 1e-4


@pytest.mark.parametrize("case", ["s2_in_dB", "s1_as_reflectance", "no_B8A", "no_s2_s1"])
def test_wrong_inputs_fail_loudly(weights: Path, case: str) -> None:
    batch = _pixel_batch()
    mods = dict(batch.modalities)
    s2, s1 = mods["s2"], mods["s1"]
    if case == "s2_in_dB":
        mods["s2"] = Modality(s2.values, s2.dates, s2.mask, s2.bands, "dB")
        err: type[Exception] = UnitError
    elif case == "s1_as_reflectance":
        mods["s1"] = Modality(s1.values, s1.dates, s1.mask, s1.bands, "reflectance")
        err = UnitError
    elif case == "no_B8A":
        mods["s2"] = Modality(s2.values[:, :, :9], s2.dates, s2.mask, s2.bands[:9], s2.units[:9])
        err = BandError
    else:
        del mods["s2"], mods["s1"]
        err = BandError
    with pytest.raises(err, match="s2|s1|B8A|VV"):
        encode_batch(Presto(), EOBatch(mods, batch.sample_ids, batch.extras))


def test_patches_location_and_options(weights: Path) -> None:
    enc = Presto()
    px = _pixel_batch(with_others=False)
    s2 = px["s2"]
    patch = Modality(s2.values.expand(-1, -1, -1, 4, 4).contiguous(), s2.dates,
                     s2.mask.expand(-1, -1, 4, 4).contiguous(), s2.bands, s2.units)
    a = encode_batch(enc, px).features
    b = encode_batch(enc, EOBatch({"s2": patch}, px.sample_ids, px.extras)).features
    c = encode_batch(Presto(grid=2), EOBatch({"s2": patch}, px.sample_ids, px.extras)).features
    assert (a - b).abs().max() < 1e-5 and (a - c).abs().max() < 1e-5
    # location: used when given, a default one when not, none (token left out) otherwise
    no_loc = EOBatch(px.modalities, px.sample_ids)
    d = encode_batch(enc, no_loc).features
    e = encode_batch(Presto(use_location=False), px).features
    f = encode_batch(Presto(default_location=[45.0, 10.0]), no_loc).features
    assert torch.equal(d, e) and (a - d).abs().max() > 1e-3 and (f - d).abs().max() > 1e-3
    for bad in ({"max_months": 30}, {"grid": 0}, {"steps": "weekly"}, {"bogus": 1},
                {"default_location": [100.0, 0.0]}):
        with pytest.raises(UsageError):
            Presto(**bad)
    with pytest.raises(DataError, match="same dates"):
        encode_batch(Presto(steps="dates"), _pixel_batch())


def test_task_inputs_match_presto_arrays(weights: Path, shared_data: Path) -> None:
    """fuel-moisture through the harness with ``steps='dates'`` gives exactly Presto's
    normalised arrays (S1 fill values masked), months from the dates as in month.npy."""
    from releo_bench.registries import TASKS

    npy = shared_data / "presto_eval" / "fuel_moisture" / "npy"
    if not npy.is_dir():
        pytest.skip(f"Presto evaluation arrays not found at {npy}")
    data = TASKS.get("fuel-moisture")().load("test")
    batch = data.batch.index(np.arange(64))
    rows = [int(s[2:]) for s in batch.sample_ids]
    enc = Presto(steps="dates")
    inp = enc.inputs(prepare_batch(batch, enc.meta))
    ref = normalise(np.load(npy / "s1_s2_era5_srtm.npy")[rows][:, :, NPY_KEEP])
    keep = ~inp["missing"]
    assert keep[:, :, 2:].all()  # only S1 fill values are masked in this file
    assert (inp["x"] - ref)[keep].abs().max() < 1e-4
    assert torch.equal(inp["months"], torch.from_numpy(np.load(npy / "month.npy")[rows]).long())


def test_cli_run_fuel_moisture(weights: Path, shared_data: Path, tmp_path: Path) -> None:
    from releo_bench.cli import main

    if not (shared_data / "presto_eval" / "fuel_moisture").is_dir():
        pytest.skip("fuel-moisture data not found")
    code = main(["run", "--model", "presto", "--task", "fuel-moisture", "--seeds", "1",
                 "--n-boot", "0", "--no-plots", "--tracking-uri", "none", "--output",
                 str(tmp_path / "r")])
    assert code == 0
    res = json.loads(next((tmp_path / "r").rglob("results.json")).read_text())
    r2 = res["metrics"]["r2"]
    r2 = r2["mean"] if isinstance(r2, dict) else r2
    assert r2 > 0.25  # measured 0.37 (ridge); raw bands 0.10


def test_metadata_without_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from releo_bench.weights import WeightsError

    monkeypatch.delenv("RELEO_WEIGHTS_DIR")
    enc = Presto(weights=str(tmp_path / "nothing.pt"))
    assert enc.meta.embedding_shape == (128,) and enc._net is None  # nothing read yet
    assert enc.meta.weights.sha256 == WEIGHTS_SHA256
    with pytest.raises(WeightsError):
        enc.net
