"""Read the weights of an ONNX graph into torch tensors, without converting the graph.

Pretrained models published as ONNX files (PROSAIL-VAE, later ALISE / MALICE) are
re-implemented here as PyTorch modules; their parameters come from the graph's
*initialisers* and, for folded constants (normalisation statistics, affine maps), from its
``Constant`` nodes. Only the ``onnx`` protobuf reader is used: no operator is executed, no
Python object is unpickled, and no converter (``onnx2torch``) is involved (it cannot
convert every opset, e.g. MALICE's opset-18 ``Pad``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..weights import WeightsError


@dataclass(frozen=True)
class OnnxTensors:
    """The tensors of one ONNX graph: initialisers by name, constant-node outputs by name."""

    path: Path
    initializers: dict[str, torch.Tensor]
    constants: dict[str, torch.Tensor]
    opset: int

    def initializer(self, name: str) -> torch.Tensor:
        try:
            return self.initializers[name]
        except KeyError:
            raise WeightsError(f"{self.path}: ONNX graph has no initialiser {name!r} (has "
                               f"{sorted(self.initializers)[:20]}...); not the expected model "
                               f"file?") from None

    def constant(self, name: str) -> torch.Tensor:
        try:
            return self.constants[name]
        except KeyError:
            raise WeightsError(f"{self.path}: ONNX graph has no constant {name!r}; not the "
                               f"expected model file?") from None

    def state_dict(self, prefix: str = "", strip: str = "") -> dict[str, torch.Tensor]:
        """Initialisers whose name starts with ``prefix``, with ``strip`` removed from the
        front of each name (to match a module's ``state_dict`` keys)."""
        out = {}
        for name, t in self.initializers.items():
            if name.startswith(prefix):
                key = name[len(strip):] if strip and name.startswith(strip) else name
                out[key] = t
        return out


def _to_torch(array: np.ndarray) -> torch.Tensor:
    a = np.array(array, copy=True)  # onnx arrays may be read-only views of the protobuf
    return torch.from_numpy(a)


def read_onnx_tensors(path: str | Path) -> OnnxTensors:
    """Initialisers and ``Constant`` node values of the ONNX file at ``path`` as CPU tensors."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as exc:  # pragma: no cover - onnx is a dependency
        raise WeightsError("reading ONNX weights needs the 'onnx' package "
                           "(pip install onnx)") from exc
    path = Path(path)
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - protobuf decode errors have no common base
        raise WeightsError(f"{path}: cannot read as an ONNX model ({exc})") from exc
    graph = model.graph
    inits = {t.name: _to_torch(numpy_helper.to_array(t)) for t in graph.initializer}
    consts: dict[str, torch.Tensor] = {}
    for node in graph.node:
        if node.op_type != "Constant":
            continue
        for attr in node.attribute:
            if attr.name == "value":
                consts[node.output[0]] = _to_torch(numpy_helper.to_array(attr.t))
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
                default=0)
    return OnnxTensors(path, inits, consts, opset)


__all__ = ["OnnxTensors", "read_onnx_tensors"]
