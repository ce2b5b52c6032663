"""The four registries: encoders, tasks, probes, metrics.

Built-in components are registered lazily here (importing a module only when its component is
looked up); plug-ins come through entry points ``releo_bench.encoders``, ``releo_bench.tasks``,
``releo_bench.probes`` and ``releo_bench.metrics``.
"""

from __future__ import annotations

from typing import Any

from .registry import Registry


def _builtin_encoders() -> None:
    ENCODERS.register_lazy("raw", "releo_bench.encoders.raw:RawEncoder",
                           summary="the declared bands themselves (pooled statistics or per date)")
    ENCODERS.register_lazy("random", "releo_bench.encoders.random_projection:RandomEncoder",
                           summary="a fixed, seeded random projection of the raw bands")
    ENCODERS.register_lazy("prosail-vae", "releo_bench.encoders.prosail_vae:ProsailVAE",
                           summary="PROSAIL-VAE (ONNX weights, AGPL-3.0): per-date posterior of 11 "
                                   "PROSAIL variables; retrieves lai/cab/ccc with --probe none")
    ENCODERS.register_lazy("snap", "releo_bench.encoders.snap:SnapEncoder",
                           summary="ESA SNAP S2 biophysical networks: per-date LAI, CCC, CWC, FAPAR, FCOVER")
    ENCODERS.register_lazy("alise", "releo_bench.encoders.alise:Alise",
                           summary="ALISE^S2 / MALICE S2 branch (ONNX weights, AGPL-3.0): 10 learned "
                                   "temporal queries x 64, averaged over the patch (640)")
    ENCODERS.register_lazy("ubarn", "releo_bench.encoders.alise:Ubarn",
                           summary="per-date 64-d temporal-transformer outputs of MALICE's S2 branch "
                                   "(U-BARN-like; original U-BARN weights are not public)")
    ENCODERS.register_lazy("malice", "releo_bench.encoders.malice:Malice",
                           summary="MALICE (ONNX weights, AGPL-3.0): ALISE^S2 + ALISE^S1 branches, "
                                   "aligned 10 x 64 representations fused (mean: 640, concat: 1280)")
    ENCODERS.register_lazy("prosail-mlp", "releo_bench.encoders.prosail_mlp:ProsailMLP",
                           summary="physics baseline: mlp_gaussian probes trained on the project's "
                                   "PROSAIL simulations; retrieves lai/cab/ccc with --probe none")
    ENCODERS.register_lazy("presto", "releo_bench.encoders.presto:Presto",
                           summary="Presto (MIT): pixel time series as monthly composites of S1, S2, "
                                   "ERA5, SRTM -> 128-d (pretrained on L1C)")
    ENCODERS.register_lazy("galileo-nano", "releo_bench.encoders.galileo:GalileoNano",
                           summary="Galileo nano encoder (MIT): S1 + S2 + NDVI monthly space-time "
                                   "tokens -> 128-d, pixel and patch modes (pretrained on L1C)")


def _builtin_tasks() -> None:
    ENCODERS  # noqa: B018 (keeps linters quiet about ordering)
    TASKS.register_lazy("mock-regression", "releo_bench.tasks.mock:MockRegression",
                        summary="[test only] tiny generated pixel series, NDVI-like target")
    TASKS.register_lazy("mock-classification", "releo_bench.tasks.mock:MockClassification",
                        summary="[test only] tiny generated pixel series, 3 classes")
    TASKS.register_lazy("eurosat-ms", "releo_bench.tasks.eurosat:EuroSATMS",
                        summary="EuroSAT 13-band L1C patches (200-file sample), 10 land-cover classes")
    TASKS.register_lazy("worldcereal-croptype",
                        "releo_bench.tasks.worldcereal:WorldCerealCropType",
                        summary="WorldCereal points, monthly S2 + S1 2017, 4 crop-type classes")
    TASKS.register_lazy("eolearn-lulc", "releo_bench.tasks.eolearn_lulc:EOLearnLULC",
                        summary="eo-learn TestEOPatch pixels, 68-date cloud-masked NDVI, 4 LULC classes")
    TASKS.register_lazy("lai", "releo_bench.tasks.simulated:SimulatedLAI",
                        summary="simulated pixels: green LAI at a clear S2 date")
    TASKS.register_lazy("cab", "releo_bench.tasks.simulated:SimulatedCab",
                        summary="simulated pixels: leaf chlorophyll Cab at a clear S2 date")
    TASKS.register_lazy("ccc", "releo_bench.tasks.simulated:SimulatedCCC",
                        summary="simulated pixels: canopy chlorophyll LAI x Cab at a clear S2 date")
    TASKS.register_lazy("crop-phenology", "releo_bench.tasks.simulated:CropPhenology",
                        summary="simulated pixels: start of season (or eos, peak...), day of year")
    TASKS.register_lazy("land-cover", "releo_bench.tasks.simulated:LandCover",
                        summary="simulated pixels: 7 crop-type / natural-cover classes")
    TASKS.register_lazy("lai-insitu", "releo_bench.tasks.lai_insitu:LaiInsitu",
                        summary="CESBIO in-situ LAI (FR/IT/ES) from THEIA S2 L2A series, real clouds")
    TASKS.register_lazy("sowing-date-bihar", "releo_bench.tasks.sowing_bihar:SowingBihar",
                        summary="37 Bihar wheat fields: sowing day from S2 L2A field means, 5-fold")
    TASKS.register_lazy("tempcnn-toulouse", "releo_bench.tasks.tempcnn:TempCNNToulouse",
                        summary="Formosat-2 pixels, 149 gap-filled dates, 13 crop / cover classes")
    TASKS.register_lazy("gap-filling", "releo_bench.tasks.gap_filling:GapFilling",
                        summary="simulated pixels: S2 reflectance (12 bands) of a held-out clear date")
    TASKS.register_lazy("gap-filling-s1", "releo_bench.tasks.gap_filling:GapFillingS1",
                        summary="gap-filling with the S1 VV/VH series as an extra input")
    TASKS.register_lazy("gap-filling-cesbio", "releo_bench.tasks.gap_filling:GapFillingCesbio",
                        summary="CESBIO S2 point series: 10 bands of dates hidden by real MAJA clouds")
    TASKS.register_lazy("gap-filling-worldcereal",
                        "releo_bench.tasks.gap_filling_worldcereal:GapFillingWorldCereal",
                        summary="WorldCereal S2 + S1 monthly patch: 9 bands of a month hidden by a real gap")
    TASKS.register_lazy("fuel-moisture", "releo_bench.tasks.presto_eval:FuelMoisture",
                        summary="Presto eval: live fuel moisture (%), 3 x 30-day S1 + S2 + ERA5, western US")
    TASKS.register_lazy("algae-blooms", "releo_bench.tasks.presto_eval:AlgaeBlooms",
                        summary="Presto eval: cyanobacteria bloom severity 1-5, 12 x 30-day S1 + S2 + ERA5")
    TASKS.register_lazy("custom", "releo_bench.tasks.custom:CustomTask",
                        summary="bring your own data: --data STACK/TABLE --target COLUMN")


def _builtin_probes() -> None:
    PROBES.register_lazy("ridge", "releo_bench.probes.ridge:RidgeGaussian",
                         summary="ridge regression with a closed-form Gaussian predictive")
    PROBES.register_lazy("logistic", "releo_bench.probes.logistic:LogisticProbe",
                         summary="multinomial L2 logistic regression, C chosen on validation")
    PROBES.register_lazy("mlp_gaussian", "releo_bench.probes.mlp_gaussian:MLPGaussian",
                         summary="MLP with mean and variance heads (beta-NLL), batched over seeds")
    PROBES.register_lazy("quantile_mlp", "releo_bench.probes.quantile_mlp:QuantileMLP",
                         summary="MLP quantile regression (pinball loss, non-crossing), batched")
    PROBES.register_lazy("deep_ensemble", "releo_bench.probes.deep_ensemble:DeepEnsemble",
                         summary="deep ensemble of Gaussian MLPs -> Gaussian mixture, batched")
    PROBES.register_lazy("mlp_classifier", "releo_bench.probes.mlp_classifier:MLPClassifier",
                         summary="MLP classifier, optional temperature scaling, batched")
    PROBES.register_lazy("linear_classifier",
                         "releo_bench.probes.linear_classifier:LinearClassifier",
                         summary="linear softmax classifier (multinomial logistic), batched over seeds")
    PROBES.register_lazy("knn", "releo_bench.probes.knn:KNNProbe",
                         summary="k-nearest-neighbour classifier, Laplace-smoothed probabilities")


def _builtin_metrics() -> None:
    # metric modules register their metrics on import (decorator); import them all here
    import importlib

    for module in ("releo_bench.metrics.regression", "releo_bench.metrics.classification",
                   "releo_bench.metrics.segmentation"):
        importlib.import_module(module)


ENCODERS: Registry[Any] = Registry("model", entry_point_group="releo_bench.encoders",
                                   builtins=_builtin_encoders)
TASKS: Registry[Any] = Registry("task", entry_point_group="releo_bench.tasks",
                                builtins=_builtin_tasks)
PROBES: Registry[Any] = Registry("probe", entry_point_group="releo_bench.probes",
                                 builtins=_builtin_probes)
METRICS: Registry[Any] = Registry("metric", entry_point_group="releo_bench.metrics",
                                  builtins=_builtin_metrics)
