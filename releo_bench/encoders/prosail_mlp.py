"""``prosail-mlp``: the physics baseline, probes trained on the project's own PROSAIL simulations.

A sim-to-real retriever in the spirit of the SNAP biophysical processor (networks trained on
PROSAIL simulations, applied to real reflectance), but with a predictive distribution:

1. ``n_train`` canopies are drawn uniformly within :data:`PRIORS` (the PROSAIL-VAE bounds of
   N, Cab, Car, Cbrown, Cw, Cm, LAI, mean leaf angle, hotspot, soil brightness and moisture,
   narrowed to the project's PROSAIL ranges) with sun zenith 20-70 deg, view zenith 0-12 deg,
   relative azimuth 0-180 deg; their S2 reflectances (10 bands
   B2..B12 without B1, B9) come from :func:`releo_bench.physics.prosail.run_prosail` and the
   Sentinel-2A band responses, plus noise (``noise`` relative, 0.005 absolute, Gaussian).
2. One ``mlp_gaussian`` probe per variable (LAI, Cab, CCC = LAI x Cab / 100) is trained on
   those (10 reflectances, cos of the 3 angles) -> variable, truncated to the variable's bounds.
3. Applied per pixel and date to a task's data: as a *retriever* (``--probe none``: the
   truncated normal at the clear date nearest the target date) or as a per-date *encoder*
   (features: location and scale of each variable's truncated normal, averaged over the
   patch).

Everything is generated (no weights file): deterministic for a given ``seed``; the trained
probes are stored once per machine in the cache directory (``models/``, safetensors: plain
tensors, nothing unpickled) and kept per process. The priors are not the scene simulator's
crop profiles, so the simulated tasks are not its training distribution either.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..batch import EOBatch
from ..errors import UsageError
from ..predictions import Prediction, TruncatedNormal
from ..tasks.base import TargetSpec
from .base import Embeddings, Encoder, EncoderMeta, ModalityInput, WeightsSource, retrieval_problem
from .prosail_vae import ANGLE_BANDS, S2_BANDS, ProsailVAE, nearest_valid

NAME = "prosail-mlp"
VERSION = "1"
#: retrieved variables: unit and the bounds of the predictive (truncated normal) when the task
#: gives none (a task's own target range is used when it has one)
TARGETS = {"lai": ("m2/m2", 0.0, 10.0), "cab": ("ug/cm2", 0.0, 100.0), "ccc": ("g/m2", 0.0, 10.0)}
FEATURES = tuple(f"{s}_{v}" for v in TARGETS for s in ("loc", "scale"))
PROBE_PARAMS: dict[str, Any] = {"hidden_sizes": [[64, 64]], "weight_decays": [1e-4],
                                "epochs": 60, "patience": 10, "batch_size": 1024, "lr": 3e-3}
#: uniform priors of the training canopies: the PROSAIL-VAE bounds, narrowed to the ranges the
#: project's PROSAIL accepts (cbrown <= 1, cw <= 0.05, rsoil <= 1.5), and Cab from 5 (senescent
#: and sparse canopies have less than PROSAIL-VAE's 20 ug/cm2); psoil 1 = dry soil
PRIORS: dict[str, tuple[float, float]] = {
    "n": (1.2, 1.8), "cab": (5.0, 90.0), "car": (5.0, 23.0), "cbrown": (0.0, 1.0),
    "cw": (0.0075, 0.05), "cm": (0.003, 0.011), "lai": (0.0, 10.0), "lidfa": (30.0, 80.0),
    "hspot": (0.0, 0.5), "psoil": (0.0, 1.0), "rsoil": (0.3, 1.5),
    "tts": (20.0, 70.0), "tto": (0.0, 12.0), "psi": (0.0, 180.0)}
_trained: dict[tuple, dict[str, Any]] = {}
_lock = threading.Lock()


def simulate_training_set(n: int, seed: int, noise: float) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``(features [n, 13], truth {lai, cab, ccc})``: noisy S2 reflectance of random canopies
    (see the module docstring) and the cosines of their angles."""
    from ..physics.prosail import run_prosail
    from ..physics.srf import SpectralResponse

    rng = np.random.default_rng([seed, 20261124])
    draws = {name: rng.uniform(lo, hi, n) for name, (lo, hi) in PRIORS.items()}
    params: dict[str, Any] = {k: torch.as_tensor(v) for k, v in draws.items()}
    params["typelidf"] = torch.full((n,), 2, dtype=torch.int64)
    srf = SpectralResponse.default("s2a", bands=S2_BANDS)
    spectra = run_prosail(params, wavelengths=srf.wavelengths, dtype=torch.float64)
    refl = srf.apply(spectra, spectra_wavelengths=srf.wavelengths).numpy()
    refl = refl * (1.0 + noise * rng.standard_normal(refl.shape)) + 0.005 * rng.standard_normal(refl.shape)
    cosines = np.cos(np.deg2rad(np.stack([draws["tts"], draws["tto"], draws["psi"]], axis=1)))
    lai, cab = draws["lai"], draws["cab"]
    return (np.concatenate([np.clip(refl, 0.0, None), cosines], axis=1).astype(np.float32),
            {"lai": lai, "cab": cab, "ccc": lai * cab / 100.0})


def _standardise(x: np.ndarray, loc: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return (x - loc) / scale


def model_digest(key: tuple) -> str:
    """sha256 of everything that defines the generated model (its 'weights' identity)."""
    return hashlib.sha256(json.dumps([VERSION, list(key), PROBE_PARAMS, list(PRIORS.items())],
                                     sort_keys=True).encode()).hexdigest()


def _store_path(key: tuple) -> Path:
    from ..cache import default_cache_dir

    return default_cache_dir() / "models" / f"{NAME}-{model_digest(key)[:16]}.safetensors"


def _save(path: Path, model: dict[str, Any]) -> None:
    """The fitted probes as plain tensors (safetensors), written atomically."""
    from safetensors.torch import save_file

    tensors = {"x_loc": torch.as_tensor(model["loc"]), "x_scale": torch.as_tensor(model["scale"])}
    meta: dict[str, str] = {}
    for name, probe in model["probes"].items():
        fitted = probe._fitted()
        tensors[f"{name}.flat"] = fitted.flat.detach().cpu().contiguous()
        meta[name] = json.dumps({"sizes": list(fitted.shape.sizes), "y_loc": fitted.y_loc,
                                 "y_scale": fitted.y_scale, "fitted": fitted.fitted_params})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, path)


def _load(path: Path, seed: int) -> dict[str, Any] | None:
    from safetensors import safe_open

    from ..probes.batched import MLPShape, SeedModel
    from ..probes.mlp_gaussian import MLPGaussian

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception:  # a partial or foreign file: train again (and overwrite it)
        return None
    probes = {}
    for name, (unit, lo, hi) in TARGETS.items():
        if name not in meta or f"{name}.flat" not in tensors:
            return None
        info = json.loads(meta[name])
        probe = MLPGaussian(TargetSpec(kind="regression", name=name, unit=unit, range=(lo, hi)),
                            seed=seed, **PROBE_PARAMS)
        probe._model = SeedModel(MLPShape(tuple(info["sizes"])), tensors[f"{name}.flat"],
                                 float(info["y_loc"]), float(info["y_scale"]), info["fitted"])
        probe.fitted_params = dict(info["fitted"])
        probes[name] = probe
    return {"loc": tensors["x_loc"].numpy(), "scale": tensors["x_scale"].numpy(), "probes": probes}


def train(n: int, seed: int, noise: float) -> dict[str, Any]:
    """The fitted probes (one per variable) and the feature standardisation: trained once per
    machine (stored under ``<cache>/models/``, safetensors) and kept per process."""
    key = (n, seed, noise)
    with _lock:
        if key in _trained:
            return _trained[key]
        path = _store_path(key)
        model = _load(path, seed) if path.is_file() else None
        if model is None:
            model = _fit(n, seed, noise)
            _save(path, model)
        _trained[key] = model
        return model


def _fit(n: int, seed: int, noise: float) -> dict[str, Any]:
    from ..probes.mlp_gaussian import MLPGaussian

    X, truth = simulate_training_set(n, seed, noise)
    loc, scale = X.mean(axis=0), X.std(axis=0) + 1e-9
    Xs = _standardise(X, loc, scale)
    n_val = n // 5
    probes = {}
    torch.manual_seed(seed)
    for name, (unit, lo, hi) in TARGETS.items():
        spec = TargetSpec(kind="regression", name=name, unit=unit, range=(lo, hi))
        probe = MLPGaussian(spec, seed=seed, **PROBE_PARAMS)
        probe.fit(Xs[n_val:], truth[name][n_val:], Xs[:n_val], truth[name][:n_val])
        probes[name] = probe
    return {"loc": loc, "scale": scale, "probes": probes}


class ProsailMLP(Encoder):
    """Options: ``n_train`` (simulated canopies, default 20000), ``seed`` (0), ``noise``
    (relative reflectance noise of the training set, default 0.02)."""

    retrievable = {name: unit for name, (unit, _, _) in TARGETS.items()}

    def __init__(self, *, device: str | torch.device = "cpu", n_train: int = 20000, seed: int = 0,
                 noise: float = 0.02, **options: Any) -> None:
        if options:
            raise UsageError(f"{NAME}: unknown options {sorted(options)} "
                             f"(accepted: n_train, seed, noise)")
        if int(n_train) < 1000:
            raise UsageError(f"{NAME}: n_train must be >= 1000, got {n_train}")
        if not 0.0 <= float(noise) < 0.5:
            raise UsageError(f"{NAME}: noise must be in [0, 0.5), got {noise}")
        super().__init__(device=device, n_train=int(n_train), seed=int(seed), noise=float(noise))
        self._meta = EncoderMeta(
            name=NAME, version=VERSION,
            description="physics baseline: mlp_gaussian probes trained on the project's own "
                        "PROSAIL simulations (10 S2 bands + angles -> LAI, Cab, CCC, truncated "
                        "normals); per-date features = location and scale of each; retrieves "
                        "lai, cab and ccc directly (--probe none)",
            licence="Apache-2.0",
            citation="releo-bench physics baseline (PROSPECT-D + 4SAIL: Jacquemoud et al. 2009; "
                     "Feret et al. 2017), in the spirit of Weiss & Baret, S2ToolBox Level 2 "
                     "products ATBD (2016)",
            modalities={"s2": ModalityInput(bands=S2_BANDS, units="reflectance"),
                        "angles": ModalityInput(bands=ANGLE_BANDS, units="degree")},
            temporal_mode="any", output="per_date", embedding_shape=(len(FEATURES),),
            weights=WeightsSource(kind="generated", licence="Apache-2.0", sha256=model_digest(
                (int(n_train), int(seed), float(noise)))))

    @property
    def meta(self) -> EncoderMeta:
        return self._meta

    @property
    def model(self) -> dict[str, Any]:
        o = self.options
        return train(o["n_train"], o["seed"], o["noise"])

    def _features(self, refl: np.ndarray, angles: np.ndarray) -> np.ndarray:
        m = self.model
        x = np.concatenate([refl, np.cos(np.deg2rad(angles))], axis=1).astype(np.float32)
        return _standardise(x, m["loc"], m["scale"])

    def _predict(self, name: str, refl: np.ndarray, angles: np.ndarray) -> TruncatedNormal:
        return self.model["probes"][name].predict_dist(self._features(refl, angles))

    def encode(self, batch: EOBatch) -> Embeddings:
        s2 = batch["s2"]
        b, t, c, h, w = s2.values.shape
        angles, has_angle = ProsailVAE._angles_at(batch["angles"], s2.dates)
        sel = (s2.mask & has_angle[:, :, None, None]).cpu()
        refl = s2.values.permute(0, 1, 3, 4, 2).cpu()[sel].double().numpy()
        ang = angles[:, :, None, None, :].expand(b, t, h, w, 3).cpu()[sel].double().numpy()
        px = torch.zeros(b, t, h, w, len(FEATURES), dtype=torch.float64)
        if len(refl):
            cols = []
            for name in TARGETS:
                dist = self._predict(name, refl, ang)
                cols += [dist.loc, dist.scale]
            px[sel] = torch.as_tensor(np.stack(cols, axis=1))
        wgt = sel.unsqueeze(-1).double()
        n = wgt.sum(dim=(2, 3))
        feats = (px * wgt).sum(dim=(2, 3)) / n.clamp(min=1.0)
        return Embeddings(feats.float(), n.squeeze(-1) > 0, "s2")

    def retrieve(self, batch: EOBatch, target: TargetSpec, target_time: Any | None) -> Prediction:
        """The truncated normal of ``target`` at the valid date nearest ``target_time`` (spatial
        mean of the patch's valid pixels); samples with no valid date get the flat-ish prior
        (location mid-range, scale the bound width)."""
        problem = retrieval_problem(self, target)
        if problem:
            raise UsageError(f"model {NAME!r} cannot retrieve: {problem}")
        if target_time is None:
            raise UsageError(f"model {NAME!r} retrieves per date; the task gives no target_time")
        s2 = batch["s2"]
        angles, has_angle = ProsailVAE._angles_at(batch["angles"], s2.dates)
        valid = (s2.mask.any(dim=(-1, -2)) & has_angle).cpu().numpy()
        idx, ok = nearest_valid(s2.dates, valid, np.asarray(target_time, dtype="datetime64[D]"))
        rows = np.arange(len(idx))
        mask = s2.mask.cpu().numpy()[rows, idx].astype(np.float64)  # [B, H, W]
        vals = s2.values.cpu().double().numpy()[rows, idx]  # [B, C, H, W]
        refl = (vals * mask[:, None]).sum(axis=(-1, -2)) / np.maximum(mask.sum(axis=(-1, -2)), 1.0)[:, None]
        ang = angles.cpu().double().numpy()[rows, idx]
        dist = self._predict(target.name, refl, ang)
        _, lo, hi = TARGETS[target.name]
        if target.range is not None:
            lo, hi = target.range
        loc = np.where(ok, dist.loc, (lo + hi) / 2)
        scale = np.where(ok, dist.scale, hi - lo)
        return TruncatedNormal(loc, scale, lo, hi)  # the probe's normal, on the task's bounds


__all__ = ["ProsailMLP", "simulate_training_set", "train", "FEATURES", "TARGETS"]
