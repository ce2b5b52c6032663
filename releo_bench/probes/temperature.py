"""Temperature scaling (Guo et al., 2017): one ``T > 0`` dividing every logit.

``T`` minimises the mean negative log likelihood of ``softmax(logits / T)`` on held-out
rows (the validation split). It is found by bounded Brent minimisation over ``log T`` in
``[-5, 5]`` (``T`` in about ``[0.0067, 148]``), which is deterministic. Scaling never changes
the most probable class, only how confident the probabilities are.

Logits may be ``-inf`` for a class the model gives zero probability (e.g. a class missing
from training when logits are log-probabilities): such a column stays at probability 0, and
rows whose true class has a ``-inf`` logit are left out of the fit (their NLL is infinite at
every ``T``).
"""

from __future__ import annotations

import numpy as np
from scipy import optimize, special

LOG_T_BOUNDS = (-5.0, 5.0)


def _nll(logits: np.ndarray, y: np.ndarray, t: float) -> float:
    z = logits / t
    return float(np.mean(special.logsumexp(z, axis=1) - z[np.arange(len(y)), y]))


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature minimising the NLL of ``softmax(logits / T)`` for labels ``y``.

    Returns 1.0 when there is no usable row.
    """
    logits = np.asarray(logits, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64).reshape(-1)
    if logits.ndim != 2 or logits.shape[0] != y.shape[0]:
        raise ValueError(f"logits must be [N, C] for {y.shape[0]} labels, got {logits.shape}")
    keep = np.isfinite(logits[np.arange(len(y)), y])
    logits, y = logits[keep], y[keep]
    if len(y) == 0:
        return 1.0
    res = optimize.minimize_scalar(lambda log_t: _nll(logits, y, float(np.exp(log_t))),
                                   bounds=LOG_T_BOUNDS, method="bounded",
                                   options={"xatol": 1e-6})
    return float(np.exp(res.x))


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise ``softmax(logits / temperature)`` in float64; ``-inf`` logits give 0."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    return np.exp(z - special.logsumexp(z, axis=1, keepdims=True))


def log_probs(probs: np.ndarray) -> np.ndarray:
    """Probabilities as logits (log-probabilities; an exact 0 becomes ``-inf``)."""
    with np.errstate(divide="ignore"):
        return np.log(np.clip(np.asarray(probs, dtype=np.float64), 0.0, None))
