"""The compact inference artifact: architecture spec + bit-packed binary weights + norm params.

One ``model.npz`` (numpy only, no pickle) is what ships in ``models/<arch>/`` and what every
inference path loads: the Brevitas reference (rebuilt from it), the QONNX/FINN export and the fast
integer engine. Weights are stored as sign bits (1 = +1, 0 = -1; sign(0) = +1 as in Brevitas) in
PyTorch layout: conv (out, in, k, k), FC (out, in) with NCHW flatten order.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .arch import ArchSpec
from .errors import BdnnError

ARTIFACT_FORMAT = "bdnn-artifact-v1"


class ArtifactError(BdnnError, ValueError):
    """A missing, unreadable or malformed model artifact."""


@dataclass
class BatchNorm:
    weight: np.ndarray
    bias: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    eps: float

    def scale_shift(self) -> tuple[np.ndarray, np.ndarray]:
        """y = x * scale + shift, in float64."""
        scale = self.weight.astype(np.float64) / np.sqrt(self.var.astype(np.float64) + self.eps)
        return scale, self.bias.astype(np.float64) - self.mean.astype(np.float64) * scale


@dataclass
class Layer:
    name: str
    weight: np.ndarray      # int8 in {-1, +1}
    bn: BatchNorm


@dataclass
class Artifact:
    spec: ArchSpec
    layers: dict[str, Layer]   # in network order: convs, then FCs (classifier last)
    meta: dict

    def layer_names(self) -> list[str]:
        return self.spec.layer_names()


def expected_shapes(spec: ArchSpec) -> dict[str, tuple[int, ...]]:
    k = spec.kernel
    shapes = {n: (co, ci, k, k) for n, ci, co, _ in spec.conv_layers()}
    shapes.update({n: (fo, fi) for n, fi, fo in spec.fc_layers()})
    return shapes


def save(path: str | Path, spec: ArchSpec, layers: dict[str, Layer], meta: dict | None = None) -> Path:
    path = Path(path)
    arrays = {"format": np.array(ARTIFACT_FORMAT), "spec": np.array(json.dumps(spec.to_dict())),
              "meta": np.array(json.dumps(meta or {}))}
    shapes = expected_shapes(spec)
    for name, shape in shapes.items():
        layer = layers[name]
        w = np.asarray(layer.weight)
        if w.shape != shape:
            raise ArtifactError(f"{name}: weight shape {w.shape}, spec wants {shape}")
        arrays[f"{name}.bits"] = np.packbits((w >= 0).ravel())
        for f in ("weight", "bias", "mean", "var"):
            arrays[f"{name}.bn_{f}"] = np.asarray(getattr(layer.bn, f), dtype=np.float32)
        arrays[f"{name}.bn_eps"] = np.array(layer.bn.eps, dtype=np.float64)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)
    return path


def load(path: str | Path) -> Artifact:
    """Load ``model.npz`` (or a model folder holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.npz"
    if not path.is_file():
        raise ArtifactError(f"{path}: no model artifact here (expected a model folder or model.npz)")
    try:
        z = np.load(path, allow_pickle=False)
        fmt = str(z["format"]) if "format" in z.files else None
    except Exception as e:
        raise ArtifactError(f"{path}: not a readable model artifact: {e}") from e
    if fmt != ARTIFACT_FORMAT:
        raise ArtifactError(f"{path}: not a BDNN model artifact (format {fmt!r}, expected {ARTIFACT_FORMAT!r})")
    spec = ArchSpec.from_dict(json.loads(str(z["spec"])))
    layers = {}
    for name, shape in expected_shapes(spec).items():
        try:
            n = int(np.prod(shape))
            bits = np.unpackbits(z[f"{name}.bits"])[:n]
            w = (bits.astype(np.int8) * 2 - 1).reshape(shape)
            bn = BatchNorm(*(z[f"{name}.bn_{f}"] for f in ("weight", "bias", "mean", "var")),
                           eps=float(z[f"{name}.bn_eps"]))
        except KeyError as e:
            raise ArtifactError(f"{path}: layer {name} is incomplete ({e})") from e
        layers[name] = Layer(name, w, bn)
    return Artifact(spec, layers, json.loads(str(z["meta"])))
