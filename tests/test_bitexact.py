"""The contract: Brevitas (fp32 eval) == QONNX == FINN streamlined == FINN HW-layer graph,
on real FER2013 PrivateTest crops; integer outputs exactly, labels on every crop."""
from __future__ import annotations

import json

import numpy as np
import pytest

from bdnn.arch import ArchSpec
from bdnn.nn import save_artifact
from conftest import calibrated_model


def _check(report):
    print(json.dumps(report, indent=1))
    for stage in ("qonnx", "streamlined", "hw_layers"):
        r = report[stage]
        print(f"{stage:12s}: compared {r['crops']} crops, {r['label_mismatches']} label mismatches, "
              f"{r['score_mismatches']} score mismatches (max |diff| {r['max_abs_score_diff']:.2e})")
    assert report["hw_layers"]["accumulator_mismatches"] == 0
    assert report["mismatches"] == 0


@pytest.mark.parametrize("dense,final_pool", [(True, 1), (False, 1), (True, 2)],
                         ids=["dense-block", "plain-block", "dense-final-pool"])
def test_small_bdnn_is_bit_exact_through_finn(tmp_path, private_crops, finn_build_dir, dense, final_pool):
    from bdnn_hw.flow import brevitas_reference, run_frontend, verify_stages
    crops, _ = private_crops
    spec = ArchSpec("tiny-dense" if dense else "tiny-plain", (8, 16), dense=dense, fc_hidden=(32,),
                    final_pool=final_pool)
    save_artifact(calibrated_model(spec, crops[:300]), tmp_path / "model.npz")
    fe = run_frontend(tmp_path, tmp_path / "frontend", progress=False)
    check = crops[:40]
    scores, _ = brevitas_reference(tmp_path, check)
    assert len(set(scores.argmax(1))) > 1, "degenerate test model: every crop gets the same label"
    report = verify_stages(fe, check, progress=False)
    assert report["crops"] == 40
    _check(report)


def test_shipped_bdnn4_is_bit_exact_through_finn(shipped_frontend, private_crops):
    from bdnn_hw.flow import verify_stages
    crops, _ = private_crops
    report = verify_stages(shipped_frontend, crops[:5], progress=False)   # one face's five crops
    assert report["crops"] == 5
    _check(report)


def test_shipped_bdnn4_hw_graph_is_all_hardware(shipped_frontend):
    """Every node of the HW-layer graph is a FINN HW layer: raw pixels in, popcounts out."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.datatype import DataType
    m = ModelWrapper(str(shipped_frontend.hw_graph))
    foreign = [n.op_type for n in m.graph.node if not n.domain.startswith("finn.custom_op.fpgadataflow")]
    assert not foreign, f"nodes left outside the accelerator: {foreign}"
    assert m.get_tensor_datatype(m.graph.input[0].name) == DataType["UINT8"]
    assert m.get_tensor_shape(m.graph.input[0].name) == [1, 42, 42, 1]
    ops = {n.op_type for n in m.graph.node}
    assert {"StreamingConcat", "DuplicateStreams", "FMPadding", "MVAU"} <= ops
    assert "Thresholding" in ops and not any("Float" in str(m.get_tensor_datatype(t.name)) for t in m.graph.input)


def test_verification_catches_a_graph_that_differs(tmp_path, private_crops, finn_build_dir):
    """The check can fail: a graph built from other weights must show mismatches."""
    from bdnn_hw.flow import run_frontend, verify_stages
    crops, _ = private_crops
    spec = ArchSpec("tiny-dense", (8, 16), fc_hidden=(32,))
    save_artifact(calibrated_model(spec, crops[:300], seed=0), tmp_path / "model.npz")
    fe = run_frontend(tmp_path, tmp_path / "frontend", progress=False)
    save_artifact(calibrated_model(spec, crops[:300], seed=1), tmp_path / "model.npz")  # reference changes
    report = verify_stages(fe, crops[:10], progress=False)
    assert report["mismatches"] > 0 and report["hw_layers"]["accumulator_mismatches"] > 0
