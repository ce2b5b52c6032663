"""Registered metrics (see :mod:`releo_bench.metrics.base`) and the standard sets per target kind.

Every task reports at least the standard set of its target kind: accuracy, calibration and
proper scores together, so that an accurate but badly calibrated model shows as such.
"""

from __future__ import annotations

STANDARD_METRICS: dict[str, tuple[str, ...]] = {
    "regression": ("rmse", "mae", "r2", "bias",  # accuracy of the point prediction
                   "crps", "nll",  # proper scores of the distribution
                   "picp_50", "picp_80", "picp_90", "picp_95",  # interval coverage
                   "mpiw_50", "mpiw_80", "mpiw_90", "mpiw_95",  # interval width (sharpness)
                   "pit_deviation", "miscalibration_area"),  # calibration of the whole CDF
    "classification": ("overall_accuracy", "balanced_accuracy", "macro_f1", "kappa",
                       "ece", "mce", "rms_calibration_error",
                       "brier", "log_loss"),
}
# per-pixel (segmentation-style) classification adds mIoU; per-pixel calibration is ECE over pixels
SEGMENTATION_METRICS: tuple[str, ...] = STANDARD_METRICS["classification"] + ("miou",)
