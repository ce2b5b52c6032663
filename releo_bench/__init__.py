"""releo-bench: compare Earth-observation encoders on accuracy, calibration and proper scores.

The public entry points are the registries (:mod:`releo_bench.registries`), the contracts
(:mod:`releo_bench.batch`, :mod:`releo_bench.encoders.base`, :mod:`releo_bench.tasks.base`,
:mod:`releo_bench.probes.base`, :mod:`releo_bench.metrics.base`) and :func:`releo_bench.runner.run`.
Heavy modules (torch models, MLflow) are imported lazily.
"""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("releo-bench")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"
