"""A linear softmax classifier (multinomial logistic regression) trained as one batched model.

The same model as the ``logistic`` probe (multinomial, L2 penalty chosen on the validation
split), fitted by AdamW on minibatches instead of L-BFGS, so that every seed and every penalty
of the grid train together (:mod:`~releo_bench.probes.batched`, a network with no hidden
layer; the weight decay is the L2 penalty). Temperature scaling works as for
``mlp_classifier``. ``benchmarks/bench_probes.py`` compares it with the ``logistic`` probe
looped over seeds, on the same embeddings.
"""

from __future__ import annotations

from typing import Any

from .batched import BatchedProbe
from .mlp_classifier import MLPClassifier


class LinearClassifier(MLPClassifier):
    """Multinomial logistic regression over every target class, batched over seeds."""

    name = "linear_classifier"
    description = "linear softmax (multinomial logistic) classifier, L2 by validation, batched"
    defaults: dict[str, Any] = {**BatchedProbe.common_defaults, "hidden_sizes": [[]],
                                "weight_decays": [1e-4, 1e-3, 1e-2], "epochs": 200, "lr": 1e-2,
                                "patience": 20, "temperature_scaling": False}
