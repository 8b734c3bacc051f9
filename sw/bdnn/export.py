"""Brevitas model -> QONNX, with the raw-pixel input annotated as UINT8."""
from __future__ import annotations

from pathlib import Path

import torch

from bdnn.arch import ArchSpec


def export_qonnx(model: torch.nn.Module, spec: ArchSpec, path: str | Path) -> Path:
    """Export the eval-mode module; the accelerator input is raw UINT8 pixels (N,1,H,W)."""
    from brevitas.export import export_qonnx as brevitas_export_qonnx
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().cpu()
    example = torch.zeros(1, spec.in_channels, spec.in_size, spec.in_size)
    with torch.no_grad():
        brevitas_export_qonnx(model, input_t=example, export_path=str(path))
    m = ModelWrapper(str(path))
    m.set_tensor_datatype(m.graph.input[0].name, DataType["UINT8"])
    m.save(str(path))
    return path
