"""Shared machinery of the torch probes: many small MLPs trained as one batched model.

A run trains one probe per seed, and a probe may try a few hyper-parameter settings (weight
decay, hidden widths) or train several networks (a deep ensemble). Every such network is a
*member*; all members of one architecture are trained together as ONE model whose weights
carry a leading member dimension ``E`` (``[E, in, out]``, applied with :func:`torch.baddbmm`).
One Python loop then drives ``E = seeds x settings x ensemble members`` networks, and each
step is a few large batched matrix products instead of ``E`` small ones.

Members do not interact; a member trained with others gives the numbers it gives alone:

* **initialisation**: drawn on the CPU from a ``torch.Generator`` seeded from
  ``(seed, ensemble index)``, independent of the other members (members that differ only in
  weight decay share their initialisation and minibatch order: common random numbers make
  the comparison between settings less noisy);
* **minibatch order**: a permutation per epoch from the member's own generator;
* **data**: each member reads its own seed's training rows. Seeds may have different numbers
  of rows (label fractions < 1); rows are padded to a common length and a member whose epoch
  has fewer steps skips the remaining steps of the epoch: its optimiser state and weights are
  left untouched (AdamW here is a batched implementation with a per-member "active" mask, so
  a skipped step is not a zero-gradient step);
* **model selection**: after every epoch each member's validation loss is computed on its
  seed's validation split (or, when none is given, on a seeded 15 % hold-out of its training
  rows that is then not trained on); its best epoch's weights are kept (best-epoch selection)
  and it stops after ``patience`` epochs without improvement (early stopping; its updates are
  masked from then on). The loop ends when every member has stopped or after ``epochs``.
  With ``restore_best = False`` a member keeps its last epoch's weights instead and, without
  ``patience``, is validated only once, after the last epoch (fixed-epoch training);
* **hyper-parameters**: per seed the setting (weight decay x hidden sizes) with the lowest
  validation loss at its best epoch is chosen; ties go to the first in grid order.

Targets of regression probes are standardised per seed on that seed's training rows inside
the probe (features are standardised by the caller); predictions are mapped back to target
units. Arithmetic is float32 on ``device`` ("cpu" or "cuda").

Speed: the gradients of the network are written out by hand (:meth:`MLPShape.backward`, the
heads' closed-form output gradients) and AdamW runs as torch's fused kernel; on small layers
autograd's bookkeeping otherwise costs as much as the matrix products. All members see the
same number of steps per epoch, so seeds with fewer training rows idle (masked) for the rest.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch.nn import functional as F

from ..errors import DataError, UsageError
from ..predictions import Prediction
from ..tasks.base import TargetSpec
from .base import Probe, SeedFit, SeedSplit

HOLDOUT_FRACTION = 0.15
_BETA1, _BETA2, _ADAM_EPS = 0.9, 0.999, 1e-8
_PREDICT_CHUNK = 16384  # rows per forward pass at prediction / validation time


def derived_seed(*parts: int) -> int:
    """A 63-bit generator seed from integers (seed, member index, purpose): platform-stable."""
    if any(int(p) < 0 for p in parts):
        raise UsageError(f"seeds must be non-negative integers, got {parts}")
    state = np.random.SeedSequence([int(p) for p in parts]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


_INIT, _ORDER, _HOLDOUT = 0, 1, 2  # "purpose" tags for derived_seed


# -- the batched network ----------------------------------------------------------------------

@dataclass(frozen=True)
class MLPShape:
    """Layer widths ``[in, hidden..., out]`` and where each layer lives in the flat vector."""

    sizes: tuple[int, ...]

    @property
    def layers(self) -> list[tuple[int, int, int]]:
        """``(offset, fan_in, fan_out)`` per layer; the bias follows the weight matrix."""
        out, offset = [], 0
        for fan_in, fan_out in zip(self.sizes[:-1], self.sizes[1:]):
            out.append((offset, fan_in, fan_out))
            offset += fan_in * fan_out + fan_out
        return out

    @property
    def n_params(self) -> int:
        return sum(fi * fo + fo for _, fi, fo in self.layers)

    def init(self, seed: int, out_bias: torch.Tensor | None = None) -> torch.Tensor:
        """One member's flat parameters: ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` for weights
        and biases (``torch.nn.Linear``'s default), drawn from a generator seeded ``seed``."""
        gen = torch.Generator().manual_seed(seed)
        parts = []
        for _, fi, fo in self.layers:
            bound = 1.0 / math.sqrt(fi)
            parts.append((torch.rand(fi * fo + fo, generator=gen) * 2.0 - 1.0) * bound)
        flat = torch.cat(parts)
        if out_bias is not None:
            flat[-self.sizes[-1]:] += out_bias
        return flat

    def _wb(self, flat: torch.Tensor, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Views of one layer's weights ``[E, in, out]`` and bias ``[E, 1, out]`` in ``flat``."""
        offset, fi, fo = self.layers[layer]
        e = flat.shape[0]
        return (flat[:, offset:offset + fi * fo].view(e, fi, fo),
                flat[:, offset + fi * fo:offset + fi * fo + fo].view(e, 1, fo))

    def forward(self, flat: torch.Tensor, x: torch.Tensor,
                keep: list[torch.Tensor] | None = None) -> torch.Tensor:
        """``flat [E, P]``, ``x [E, N, in]`` -> ``[E, N, out]``; ReLU between layers.

        ``keep``: when given, collects every layer's input, for :meth:`backward`. The output
        layer is computed transposed (``Wᵀ hᵀ``): with few outputs, ``h W`` is a skinny
        product that batched GEMM kernels run several times slower.
        """
        h = x
        last = len(self.layers) - 1
        for i in range(last):
            if keep is not None:
                keep.append(h)
            w, b = self._wb(flat, i)
            h = torch.relu_(torch.baddbmm(b, h, w))
        if keep is not None:
            keep.append(h)
        w, b = self._wb(flat, last)
        out_t = torch.baddbmm(b.transpose(1, 2), w.transpose(1, 2).contiguous(),
                              h.transpose(1, 2))
        return out_t.transpose(1, 2)

    def backward(self, flat: torch.Tensor, inputs: list[torch.Tensor], d_out: torch.Tensor,
                 grad: torch.Tensor) -> None:
        """Gradient of the loss w.r.t. ``flat`` into ``grad [E, P]``, from the loss's gradient
        w.r.t. the outputs ``d_out [E, N, out]`` and the layer inputs kept by :meth:`forward`.

        Written out by hand (two batched products per layer, none for the input features)
        rather than through autograd, which spends more time than the products themselves
        on small layers: zero-filled gradient buffers for every view of ``flat``, an unfused
        ReLU backward and skinny products for the output layer.
        """
        last = len(self.layers) - 1
        d = d_out
        for i in range(last, -1, -1):
            h = inputs[i]
            gw, gb = self._wb(grad, i)
            if i == last:
                gw.copy_(torch.bmm(d.transpose(1, 2).contiguous(), h).transpose(1, 2))
            else:
                torch.bmm(h.transpose(1, 2), d, out=gw)
            torch.sum(d, dim=1, keepdim=True, out=gb)
            if i:
                w, _ = self._wb(flat, i)
                d = torch.ops.aten.threshold_backward(torch.bmm(d, w.transpose(1, 2)), h, 0.0)

    def predict(self, flat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Forward pass without gradients, in row chunks to bound memory."""
        with torch.no_grad():
            if x.shape[1] <= _PREDICT_CHUNK:
                return self.forward(flat, x)
            return torch.cat([self.forward(flat, x[:, i:i + _PREDICT_CHUNK])
                              for i in range(0, x.shape[1], _PREDICT_CHUNK)], dim=1)


class BatchedAdamW:
    """AdamW over the members of ``[E, P]`` parameters, with a choice of which members step.

    Each member's update is ``torch.optim.AdamW``'s (bias-corrected moments, decoupled weight
    decay ``p <- p - lr * wd * p``) with its own weight decay, applied to weight matrices only
    (biases are not decayed). A member left out of a step keeps its weights, moments and step
    count exactly (a skipped step is not a zero-gradient step). The work is done by torch's
    fused AdamW kernel on per-member views of ``flat`` (one call per distinct weight decay);
    where that kernel is missing, by the same update written out per tensor.
    """

    def __init__(self, flat: torch.Tensor, grad: torch.Tensor, shape: MLPShape, lr: float,
                 weight_decays: list[float]) -> None:
        self.lr = float(lr)
        self.m = torch.zeros_like(flat)
        self.v = torch.zeros_like(flat)
        self.weight_decays = [float(w) for w in weight_decays]
        self.steps = [torch.zeros((), dtype=torch.float32, device=flat.device)
                      for _ in self.weight_decays]
        self._fused = getattr(torch, "_fused_adamw_", None)

        def views(t: torch.Tensor, i: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
            ws, bs = [], []
            for offset, fi, fo in shape.layers:
                ws.append(t[i, offset:offset + fi * fo])
                bs.append(t[i, offset + fi * fo:offset + fi * fo + fo])
            return ws, bs

        # per member: (weights, biases) of params, grads, first and second moments
        self._views = [[views(t, i) for t in (flat, grad, self.m, self.v)]
                       for i in range(flat.shape[0])]
        self._groups_all = self._groups(np.ones(flat.shape[0], dtype=bool))

    def _groups(self, active: np.ndarray) -> list[tuple[float, list[list[torch.Tensor]],
                                                        list[torch.Tensor]]]:
        """``(weight decay, [params, grads, m, v], steps)`` tensor lists per fused call."""
        by_wd: dict[float, tuple[list[list[torch.Tensor]], list[torch.Tensor]]] = {}
        for i in np.flatnonzero(active):
            for part, wd in ((0, self.weight_decays[i]), (1, 0.0)):  # weights, biases
                lists, steps = by_wd.setdefault(wd, ([[], [], [], []], []))
                for k in range(4):
                    lists[k].extend(self._views[i][k][part])
                steps.extend([self.steps[i]] * len(self._views[i][0][part]))
        return [(wd, lists, steps) for wd, (lists, steps) in by_wd.items()]

    @torch.no_grad()
    def step(self, active: np.ndarray | None = None) -> None:
        """One update of the members where ``active`` (bool ``[E]``) is true (all if None)."""
        if active is None or active.all():
            groups, members = self._groups_all, range(len(self.steps))
        else:
            groups, members = self._groups(active), np.flatnonzero(active)
        torch._foreach_add_([self.steps[i] for i in members], 1.0)
        for wd, (params, grads, ms, vs), steps in groups:
            if self._fused is not None:
                self._fused(params, grads, ms, vs, [], steps, lr=self.lr, beta1=_BETA1,
                            beta2=_BETA2, weight_decay=wd, eps=_ADAM_EPS, amsgrad=False,
                            maximize=False)
                continue
            for p, g, m, v, t in zip(params, grads, ms, vs, steps):
                p.mul_(1.0 - self.lr * wd)
                m.lerp_(g, 1.0 - _BETA1)
                v.mul_(_BETA2).addcmul_(g, g, value=1.0 - _BETA2)
                bc1, bc2 = 1.0 - _BETA1 ** float(t), 1.0 - _BETA2 ** float(t)
                denom = (v.sqrt() / math.sqrt(bc2)).add_(_ADAM_EPS)
                p.addcdiv_(m, denom, value=-self.lr / bc1)


# -- heads: the output layer's meaning and losses -----------------------------------------------

class Head(ABC):
    """What the network's outputs mean: training loss, selection loss, output initialisation."""

    n_out: int
    criterion: ClassVar[str]  # name of the validation loss, recorded in fitted_params

    def out_bias(self) -> torch.Tensor | None:
        """Added to the last layer's initial bias (e.g. start with unit variance)."""
        return None

    @abstractmethod
    def train_loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-row training loss ``[E, B]``."""

    @abstractmethod
    def val_loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-row validation loss ``[E, N]`` used for best-epoch and setting selection."""

    def train_grad(self, out: torch.Tensor, y: torch.Tensor, weight: torch.Tensor
                   ) -> torch.Tensor:
        """Gradient of ``sum(weight * train_loss)`` w.r.t. ``out`` (autograd; heads with a
        short closed form override it, saving autograd's overhead on small tensors)."""
        o = out.detach().requires_grad_(True)
        with torch.enable_grad():
            loss = (self.train_loss(o, y) * weight).sum()
            (d_out,) = torch.autograd.grad(loss, o)
        return d_out


# -- data -----------------------------------------------------------------------------------

@dataclass
class SeedData:
    """One seed's training and validation rows after the hold-out split, as float32/int64."""

    seed: int
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    holdout: bool  # True when the validation rows were held out of the training split
    y_loc: float = 0.0
    y_scale: float = 1.0


def check_features(X: Any, what: str, probe: str, n_features: int | None = None) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise DataError(f"{probe}: {what} features must be [N, D], got shape {X.shape}")
    if not np.isfinite(X).all():
        raise DataError(f"{probe}: {what} features contain NaN or infinite values")
    if n_features is not None and X.shape[1] != n_features:
        raise DataError(f"{probe}: {what} features have {X.shape[1]} columns, training had "
                        f"{n_features}")
    return X


def check_targets(y: Any, n: int, what: str, probe: str, n_classes: int | None) -> np.ndarray:
    y = np.asarray(y).reshape(-1)
    if y.shape[0] != n:
        raise DataError(f"{probe}: {n} {what} feature rows for {y.shape[0]} targets")
    if n_classes is None:
        y = y.astype(np.float64)
        if not np.isfinite(y).all():
            raise DataError(f"{probe}: {what} targets contain NaN or infinite values")
        return y
    if y.size and not np.all(np.equal(np.mod(y, 1), 0)):
        raise DataError(f"{probe}: {what} targets must be integer class indices")
    labels = y.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise DataError(f"{probe}: {what} class indices must lie in [0, {n_classes}), got "
                        f"[{labels.min()}, {labels.max()}]")
    return labels


def prepare_seed(split: SeedSplit, probe: str, n_classes: int | None) -> SeedData:
    """Checks one seed's arrays; holds out a seeded 15 % of training rows when no validation
    split is given; standardises a regression target on the rows trained on."""
    X = check_features(split.X_train, "training", probe)
    y = check_targets(split.y_train, X.shape[0], "training", probe, n_classes)
    if (split.X_val is None) != (split.y_val is None):
        raise UsageError(f"{probe}: pass both X_val and y_val, or neither")
    if split.X_val is not None:
        if X.shape[0] < 1:
            raise DataError(f"{probe}: needs at least 1 training sample")
        Xv = check_features(split.X_val, "validation", probe, X.shape[1])
        yv = check_targets(split.y_val, Xv.shape[0], "validation", probe, n_classes)
        if Xv.shape[0] < 1:
            raise DataError(f"{probe}: the validation split is empty")
        holdout = False
    else:
        if X.shape[0] < 2:
            raise DataError(f"{probe}: needs at least 2 training samples to hold out a "
                            f"validation part, got {X.shape[0]}")
        gen = torch.Generator().manual_seed(derived_seed(split.seed, 0, _HOLDOUT))
        perm = torch.randperm(X.shape[0], generator=gen).numpy()
        n_val = min(max(1, int(round(HOLDOUT_FRACTION * X.shape[0]))), X.shape[0] - 1)
        val_idx, tr_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
        X, y, Xv, yv = X[tr_idx], y[tr_idx], X[val_idx], y[val_idx]
        holdout = True
    data = SeedData(split.seed, X, y, Xv, yv, holdout)
    if n_classes is None:
        data.y_loc = float(y.mean())
        std = float(y.std())
        data.y_scale = std if std > 1e-12 else 1.0
    return data


def _pad(arrays: list[np.ndarray], dtype: torch.dtype, device: str) -> torch.Tensor:
    """Stack arrays of different lengths along a new first axis, zero-padded."""
    n = max(a.shape[0] for a in arrays)
    out = torch.zeros((len(arrays), n, *arrays[0].shape[1:]), dtype=dtype)
    for i, a in enumerate(arrays):
        out[i, :a.shape[0]] = torch.from_numpy(np.ascontiguousarray(a)).to(dtype)
    return out.to(device)


# -- training -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Member:
    """One network: which seed's data it reads, how it is initialised and regularised."""

    slot: int  # index of its seed in the list of SeedData
    seed: int
    k: int  # ensemble index within the seed (0 for single-network probes)
    weight_decay: float


@dataclass
class TrainResult:
    best: torch.Tensor  # [E, P] weights at each member's best epoch
    best_loss: np.ndarray  # [E]
    best_epoch: np.ndarray  # [E], 1-based; 0 when no epoch gave a finite loss
    epochs_run: np.ndarray  # [E]


def _validation_loss(shape: MLPShape, head: Head, flat: torch.Tensor,
                     groups: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
                     ) -> torch.Tensor:
    """Mean validation loss ``[E]`` (float64) of every member on its seed's validation rows."""
    val = torch.empty(flat.shape[0], dtype=torch.float64, device=flat.device)
    with torch.no_grad():
        for idx, x, y in groups:
            k = idx.shape[0]
            out = shape.predict(flat[idx], x.unsqueeze(0).expand(k, -1, -1))
            loss = head.val_loss(out, y.unsqueeze(0).expand(k, -1))
            val[idx] = loss.double().mean(dim=1)
    return val


@torch.no_grad()
def train_members(shape: MLPShape, head: Head, seeds: list[SeedData], members: list[Member],
                  *, epochs: int, patience: int | None, batch_size: int, lr: float,
                  device: str, restore_best: bool = True) -> TrainResult:
    """Train every member at once (see the module docstring for what makes them independent).

    ``restore_best``: keep each member's weights of its best validation epoch (default), or
    those of its last epoch (then, without ``patience``, validation runs only once, at the end).
    """
    dev = torch.device(device)
    classify = np.issubdtype(seeds[0].y_train.dtype, np.integer)
    y_dtype = torch.int64 if classify else torch.float32

    def scaled(d: SeedData, y: np.ndarray) -> np.ndarray:
        return y if classify else (y - d.y_loc) / d.y_scale

    X_tr = _pad([d.X_train for d in seeds], torch.float32, device)
    y_tr = _pad([scaled(d, d.y_train) for d in seeds], y_dtype, device)
    n_max = X_tr.shape[1]
    X_tr, y_tr = X_tr.reshape(-1, X_tr.shape[2]), y_tr.reshape(-1)  # rows of seed s: s*n_max...
    slot = torch.tensor([m.slot for m in members], device=dev)
    n_tr = np.array([seeds[m.slot].X_train.shape[0] for m in members])
    # validation per seed, unpadded: a member's validation loss is then computed with the
    # same shapes (its seed's members, its seed's rows) whatever other seeds train with it
    val_groups = []
    for s, d in enumerate(seeds):
        idx = [i for i, m in enumerate(members) if m.slot == s]
        if idx:
            val_groups.append((torch.tensor(idx, device=dev),
                               torch.from_numpy(d.X_val.astype(np.float32)).to(dev),
                               torch.from_numpy(scaled(d, d.y_val)).to(y_dtype).to(dev)))

    out_bias = head.out_bias()
    flat = torch.stack([shape.init(derived_seed(m.seed, m.k, _INIT), out_bias)
                        for m in members]).to(dev)
    grad = torch.zeros_like(flat)
    opt = BatchedAdamW(flat, grad, shape, lr, [m.weight_decay for m in members])
    gens = [torch.Generator().manual_seed(derived_seed(m.seed, m.k, _ORDER)) for m in members]
    steps_per_epoch = np.maximum(1, -(-n_tr // batch_size))
    n_steps = int(steps_per_epoch.max())
    step_live = np.arange(n_steps)[:, None] < steps_per_epoch[None, :]  # [steps, E]

    e = len(members)
    best = flat.clone()
    best_loss = torch.full((e,), math.inf, dtype=torch.float64, device=dev)
    lowest = best_loss.clone()  # lowest validation loss so far, for early stopping
    best_epoch = torch.zeros(e, dtype=torch.int64, device=dev)
    since_best = torch.zeros(e, dtype=torch.int64, device=dev)
    stopped = np.zeros(e, dtype=bool)  # on the host: it decides which members step
    epochs_run = np.zeros(e, dtype=np.int64)

    for epoch in range(1, epochs + 1):
        order = torch.full((e, n_steps * batch_size), -1, dtype=torch.int64)
        for i, (g, n) in enumerate(zip(gens, n_tr)):
            order[i, :n] = torch.randperm(int(n), generator=g)
        order = order.reshape(e, n_steps, batch_size).transpose(0, 1).to(dev)  # [steps, E, B]
        # per-row weight (0 on padding), divided by the member's row count in the batch
        weights = (order >= 0).float()
        weights /= weights.sum(dim=2, keepdim=True).clamp_min(1.0)
        rows = (order.clamp_min(0) + (slot * n_max)[None, :, None]).reshape(n_steps, -1)
        active = step_live & ~stopped[None, :]
        epochs_run += ~stopped
        for j in range(n_steps):
            xb = X_tr.index_select(0, rows[j]).view(e, batch_size, -1)
            yb = y_tr.index_select(0, rows[j]).view(e, batch_size)
            inputs: list[torch.Tensor] = []
            out = shape.forward(flat, xb, inputs)
            shape.backward(flat, inputs, head.train_grad(out, yb, weights[j]), grad)
            opt.step(active[j])
        if not restore_best and patience is None and epoch < epochs:
            continue
        val = _validation_loss(shape, head, flat, val_groups)
        running = torch.from_numpy(~stopped).to(dev)
        improved = torch.isfinite(val) & (val < lowest) & running
        lowest = torch.where(improved, val, lowest)
        since_best = torch.where(improved, torch.zeros_like(since_best), since_best + 1)
        keep = improved if restore_best else running
        best = torch.where(keep[:, None], flat, best)
        best_loss = torch.where(keep, torch.nan_to_num(val, nan=math.inf), best_loss)
        best_epoch = torch.where(keep, torch.full_like(best_epoch, epoch), best_epoch)
        if patience is not None:
            stopped |= since_best.cpu().numpy() >= patience
        if stopped.all():
            break
    return TrainResult(best, best_loss.cpu().numpy().astype(np.float64),
                       best_epoch.cpu().numpy(), epochs_run)


# -- the probe base class ---------------------------------------------------------------------

@dataclass
class SeedModel:
    """What one seed's fitted probe keeps: its selected networks and target scaling."""

    shape: MLPShape
    flat: torch.Tensor  # [K, P] on the probe's device
    y_loc: float
    y_scale: float
    fitted_params: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. the temperature


def _as_hidden_grid(value: Any, probe: str) -> list[tuple[int, ...]]:
    """``hidden_sizes``: one architecture ``[256]`` / ``[128, 128]`` or a grid of them; ``[]``
    (no hidden layer) is a linear model."""
    grid = list(value) if isinstance(value, (list, tuple)) else [value]
    if grid and all(isinstance(v, (int, np.integer)) for v in grid):
        grid = [grid]
    out = []
    for arch in grid:
        arch = tuple(int(h) for h in (arch if isinstance(arch, (list, tuple)) else [arch]))
        if any(h < 1 for h in arch):
            raise UsageError(f"{probe}: hidden sizes must be positive integers, got {value}")
        out.append(arch)
    if not out:
        raise UsageError(f"{probe}: hidden_sizes must name at least one architecture")
    return out


class BatchedProbe(Probe):
    """A probe made of batched MLP members; subclasses define the head and the prediction.

    ``fit`` / ``predict_dist`` and the batched ``fit_seeds`` share one code path: ``fit`` is
    ``fit_seeds`` on a single seed, so a seed's result does not depend on which path ran it.
    """

    common_defaults: ClassVar[dict[str, Any]] = {
        "hidden_sizes": [[256]],
        "weight_decays": [1e-4, 1e-2],
        "epochs": 200,
        "patience": 20,
        "batch_size": 256,
        "lr": 1e-3,
        "restore_best": True,
    }

    def __init__(self, target: TargetSpec, *, seed: int = 0, device: str = "cpu",
                 **params: Any) -> None:
        super().__init__(target, seed=seed, device=device, **params)
        p = self.params
        self._hidden_grid = _as_hidden_grid(p["hidden_sizes"], self.name)
        wds = [float(w) for w in (p["weight_decays"] if isinstance(p["weight_decays"],
                                                                   (list, tuple))
                                  else [p["weight_decays"]])]
        if not wds or min(wds) < 0:
            raise UsageError(f"{self.name}: weight_decays must be a non-empty list of numbers "
                             f">= 0, got {p['weight_decays']}")
        self._weight_decays = wds
        for key in ("epochs", "batch_size"):
            if int(p[key]) < 1:
                raise UsageError(f"{self.name}: {key} must be a positive integer, got {p[key]}")
        if p["patience"] is not None and int(p["patience"]) < 1:
            raise UsageError(f"{self.name}: patience must be a positive integer or null, got "
                             f"{p['patience']}")
        if not float(p["lr"]) > 0:
            raise UsageError(f"{self.name}: lr must be positive, got {p['lr']}")
        self._n_classes = len(target.class_names) if target.kind == "classification" else None
        self._model: SeedModel | None = None

    # -- hooks ---------------------------------------------------------------------------------

    @property
    def n_members(self) -> int:
        """Networks per seed and setting (a deep ensemble's size; 1 otherwise)."""
        return 1

    @abstractmethod
    def _head(self) -> Head: ...

    @abstractmethod
    def _prediction(self, model: SeedModel, out: torch.Tensor) -> tuple[Prediction,
                                                                           Prediction | None]:
        """Prediction (and the pre-recalibration one, if any) from outputs ``[K, N, out]``."""

    def _after_selection(self, model: SeedModel, data: SeedData) -> None:
        """Post-hoc steps on the selected networks (e.g. temperature scaling)."""

    # -- training --------------------------------------------------------------------------------

    def _bounds(self) -> tuple[float, float] | None:
        """The target's finite physical range when ``truncate`` is on (like ridge)."""
        rng = self.target.range
        if not self.params.get("truncate", False) or rng is None:
            return None
        low, high = float(rng[0]), float(rng[1])
        return (low, high) if np.isfinite(low) or np.isfinite(high) else None

    def _train(self, splits: list[SeedSplit]) -> list[SeedModel]:
        if not splits:
            return []
        seeds = [prepare_seed(sp, self.name, self._n_classes) for sp in splits]
        n_features = {d.X_train.shape[1] for d in seeds}
        if len(n_features) != 1:
            raise DataError(f"{self.name}: seeds have different feature counts {n_features}")
        d_in = n_features.pop()
        head = self._head()
        p = self.params
        grid = [(arch, wd) for arch in self._hidden_grid for wd in self._weight_decays]
        k_members = self.n_members
        # scores[s][g] = mean best validation loss of setting g for seed s; weights per (s, g)
        scores = np.full((len(seeds), len(grid)), np.inf)
        chosen: dict[tuple[int, int], tuple[torch.Tensor, np.ndarray, np.ndarray, np.ndarray]] = {}
        for arch in self._hidden_grid:
            shape = MLPShape((d_in, *arch, head.n_out))
            settings = [g for g, (a, _) in enumerate(grid) if a == arch]
            members = [Member(s, d.seed, k, grid[g][1])
                       for s, d in enumerate(seeds) for g in settings for k in range(k_members)]
            res = train_members(shape, head, seeds, members, epochs=int(p["epochs"]),
                                patience=None if p["patience"] is None else int(p["patience"]),
                                batch_size=int(p["batch_size"]), lr=float(p["lr"]),
                                device=self.device,
                                restore_best=bool(p["restore_best"]))
            i = 0
            for s in range(len(seeds)):
                for g in settings:
                    sl = slice(i, i + k_members)
                    loss = res.best_loss[sl]
                    scores[s, g] = float(np.mean(loss)) if np.isfinite(loss).all() else np.inf
                    chosen[(s, g)] = (res.best[sl], loss, res.best_epoch[sl],
                                      res.epochs_run[sl])
                    i += k_members
        models = []
        for s, d in enumerate(seeds):
            g = int(np.argmin(scores[s]))
            arch, wd = grid[g]
            flat, loss, best_epoch, epochs_run = chosen[(s, g)]
            criterion = ("holdout_" if d.holdout else "validation_") + head.criterion
            fitted: dict[str, Any] = {
                "hidden_sizes": list(arch), "weight_decay": wd,
                "selection_criterion": criterion,
                "validation_loss": float(np.mean(loss)),
                "best_epoch": int(best_epoch[0]) if k_members == 1 else
                [int(b) for b in best_epoch],
                "epochs_run": int(epochs_run[0]) if k_members == 1 else
                [int(b) for b in epochs_run],
                "n_train": int(d.X_train.shape[0]),
            }
            model = SeedModel(MLPShape((d_in, *arch, head.n_out)), flat.clone(), d.y_loc,
                              d.y_scale, fitted)
            self._after_selection(model, d)
            models.append(model)
        return models

    def _forward(self, model: SeedModel, X: np.ndarray) -> torch.Tensor:
        """Outputs ``[K, N, out]`` of the seed's selected networks (float32)."""
        k = model.flat.shape[0]
        x = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)).to(model.flat.device)
        return model.shape.predict(model.flat, x.unsqueeze(0).expand(k, -1, -1))

    def _predict_both(self, model: SeedModel, X: Any) -> tuple[Prediction, Prediction | None]:
        X = check_features(X, "prediction", self.name, model.shape.sizes[0])
        return self._prediction(model, self._forward(model, X))

    # -- the Probe API ---------------------------------------------------------------------------

    def fit(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None) -> "BatchedProbe":
        X = np.asarray(X)
        split = SeedSplit(self.seed, X, y, X[:0], X_val, y_val)
        self._model = self._train([split])[0]
        self.fitted_params = dict(self._model.fitted_params)
        return self

    def _fitted(self) -> SeedModel:
        if self._model is None:
            raise UsageError(f"{self.name}: call fit() before predicting")
        return self._model

    def predict_dist(self, X: np.ndarray) -> Prediction:
        return self._predict_both(self._fitted(), X)[0]

    def unscaled_dist(self, X: np.ndarray) -> Prediction | None:
        return self._predict_both(self._fitted(), X)[1]

    @classmethod
    def fit_seeds(cls, target: TargetSpec, splits: list[SeedSplit], *, device: str = "cpu",
                  **params: Any) -> list[SeedFit]:
        """Every seed (and setting, and ensemble member) trained at once as one model."""
        if not splits:
            return []
        probe = cls(target, seed=splits[0].seed, device=device, **params)
        fits = []
        for sp, model in zip(splits, probe._train(splits)):
            pred, unscaled = probe._predict_both(model, sp.X_test)
            fits.append(SeedFit(sp.seed, pred, dict(model.fitted_params), unscaled))
        return fits


# -- shared regression pieces -------------------------------------------------------------------

VAR_FLOOR = 1e-6  # variance floor in standardised target units


def gaussian_params(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance (softplus + floor) from a two-column output."""
    return out[..., 0], F.softplus(out[..., 1]) + VAR_FLOOR


def gaussian_nll(mean: torch.Tensor, var: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return 0.5 * (torch.log(2.0 * math.pi * var) + (y - mean) ** 2 / var)


class GaussianHead(Head):
    """Mean and variance, trained by beta-NLL (Seitzer et al., 2022), selected by plain NLL.

    beta-NLL multiplies each row's Gaussian NLL by ``var.detach() ** beta``: with ``beta = 0``
    it is the NLL, whose gradient for the mean is divided by the variance, so a network that
    starts by inflating its variance on hard rows stops fitting their mean; ``beta = 0.5``
    evens this out while keeping the per-row minimiser (true mean, true variance), so the
    predictive stays calibrated. Validation and selection use the plain NLL (a proper score).
    """

    n_out = 2
    criterion = "nll"

    def __init__(self, beta: float) -> None:
        self.beta = float(beta)

    def out_bias(self) -> torch.Tensor:
        return torch.tensor([0.0, math.log(math.expm1(1.0))])  # start with unit variance

    def train_loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        mean, var = gaussian_params(out)
        nll = gaussian_nll(mean, var, y)
        return nll * var.detach() ** self.beta if self.beta else nll

    def val_loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        mean, var = gaussian_params(out)
        return gaussian_nll(mean, var, y)

    def train_grad(self, out: torch.Tensor, y: torch.Tensor, weight: torch.Tensor
                   ) -> torch.Tensor:
        mean, var = gaussian_params(out)
        scale = weight * var ** self.beta if self.beta else weight
        resid = y - mean
        d_mean = -resid / var * scale
        d_var = 0.5 * (1.0 / var - resid ** 2 / var ** 2) * scale
        return torch.stack([d_mean, d_var * torch.sigmoid(out[..., 1])], dim=-1)


class QuantileHead(Head):
    """Quantiles at increasing ``levels`` that cannot cross, trained by the pinball loss.

    Output 0 is the lowest quantile; each next quantile adds a softplus increment, so the
    quantiles are strictly increasing by construction. The initial output bias puts them at
    the standard normal's quantiles (targets are standardised). Validation: the same loss.
    """

    criterion = "pinball"

    def __init__(self, levels: np.ndarray) -> None:
        self.levels = np.asarray(levels, dtype=np.float64)
        self.n_out = len(self.levels)
        self._tau = torch.tensor(self.levels, dtype=torch.float32)

    def out_bias(self) -> torch.Tensor:
        from scipy import stats

        z = stats.norm.ppf(self.levels)
        gaps = np.diff(z)
        bias = np.concatenate([[z[0]], np.log(np.expm1(gaps))]) if len(z) > 1 else z
        return torch.tensor(bias, dtype=torch.float32)

    @staticmethod
    def quantiles(out: torch.Tensor) -> torch.Tensor:
        if out.shape[-1] == 1:
            return out
        steps = F.softplus(out[..., 1:])
        return torch.cat([out[..., :1], out[..., :1] + torch.cumsum(steps, dim=-1)], dim=-1)

    def train_loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        diff = y[..., None] - self.quantiles(out)
        tau = self._tau.to(out.device)
        return torch.maximum(tau * diff, (tau - 1.0) * diff).mean(dim=-1)

    def val_loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.train_loss(out, y)


class ClassifierHead(Head):
    """Logits over every target class, trained and selected by cross-entropy."""

    criterion = "log_loss"

    def __init__(self, n_classes: int) -> None:
        self.n_out = n_classes

    def train_loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        e, n, c = out.shape
        return F.cross_entropy(out.reshape(e * n, c), y.reshape(e * n),
                               reduction="none").reshape(e, n)

    def val_loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.train_loss(out, y)

    def train_grad(self, out: torch.Tensor, y: torch.Tensor, weight: torch.Tensor
                   ) -> torch.Tensor:
        d_out = torch.softmax(out, dim=-1)
        d_out.scatter_add_(-1, y.unsqueeze(-1), torch.full_like(d_out[..., :1], -1.0))
        return d_out * weight.unsqueeze(-1)
