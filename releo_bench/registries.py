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


def _builtin_tasks() -> None:
    ENCODERS  # noqa: B018 (keeps linters quiet about ordering)
    TASKS.register_lazy("mock-regression", "releo_bench.tasks.mock:MockRegression",
                        summary="[test only] tiny generated pixel series, NDVI-like target")
    TASKS.register_lazy("mock-classification", "releo_bench.tasks.mock:MockClassification",
                        summary="[test only] tiny generated pixel series, 3 classes")


def _builtin_probes() -> None:
    PROBES.register_lazy("ridge", "releo_bench.probes.ridge:RidgeGaussian",
                         summary="ridge regression with a closed-form Gaussian predictive")
    PROBES.register_lazy("logistic", "releo_bench.probes.logistic:LogisticProbe",
                         summary="multinomial L2 logistic regression, C chosen on validation")


def _builtin_metrics() -> None:
    # metric modules register their metrics on import (decorator); import them all here
    import importlib

    for module in ("releo_bench.metrics.regression", "releo_bench.metrics.classification"):
        importlib.import_module(module)


ENCODERS: Registry[Any] = Registry("model", entry_point_group="releo_bench.encoders",
                                   builtins=_builtin_encoders)
TASKS: Registry[Any] = Registry("task", entry_point_group="releo_bench.tasks",
                                builtins=_builtin_tasks)
PROBES: Registry[Any] = Registry("probe", entry_point_group="releo_bench.probes",
                                 builtins=_builtin_probes)
METRICS: Registry[Any] = Registry("metric", entry_point_group="releo_bench.metrics",
                                  builtins=_builtin_metrics)
