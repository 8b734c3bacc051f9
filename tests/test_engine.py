"""The fast CPU engine is bit-exact: vs Brevitas fp32 on the whole PrivateTest, vs FINN's HW graph."""
import time

import numpy as np
import pytest

from bdnn.arch import ArchSpec
from bdnn.artifact import load
from bdnn.engine import Engine, kernel_name
from bdnn.nn import save_artifact
from conftest import REPO, calibrated_model

SHIPPED = REPO / "models" / "bdnn4"


@pytest.mark.parametrize("dense,final_pool", [(True, 1), (False, 1), (True, 2)], ids=["dense", "plain", "final-pool"])
def test_engine_matches_brevitas_on_small_models(tmp_path, private_crops, dense, final_pool):
    from bdnn_hw.flow import brevitas_reference
    crops, _ = private_crops
    spec = ArchSpec("tiny", (8, 16), dense=dense, fc_hidden=(32,), final_pool=final_pool)
    save_artifact(calibrated_model(spec, crops[:300]), tmp_path / "model.npz")
    scores, acc = brevitas_reference(tmp_path, crops)
    got = Engine(load(tmp_path)).accumulators(crops)
    assert np.array_equal(got, acc)


def test_numpy_fallback_equals_the_c_kernel(tmp_path, private_crops, monkeypatch):
    import bdnn.engine as eng
    crops, _ = private_crops
    save_artifact(calibrated_model(ArchSpec("tiny", (8, 16), fc_hidden=(32,)), crops[:300]), tmp_path / "model.npz")
    e = Engine(load(tmp_path))
    fast = e.accumulators(crops[:20])
    monkeypatch.setattr(eng, "_load_kernel", lambda: None)
    assert np.array_equal(e.accumulators(crops[:20]), fast)


def test_engine_matches_brevitas_on_the_whole_private_test(fer):
    """Issue contract: all 3,589 PrivateTest faces (17,945 crops), 0 mismatches."""
    from bdnn.backends import BrevitasBackend, CpuBackend
    from bdnn.preprocess import five_crops
    faces, labels = fer.split("PrivateTest")
    crops = five_crops(faces).reshape(-1, 42, 42)
    cpu, ref = CpuBackend(SHIPPED), BrevitasBackend(SHIPPED)
    t = time.time()
    acc = cpu.engine.accumulators(crops)
    t_cpu = time.time() - t
    s_cpu = cpu.engine.scores(acc)
    t = time.time()
    s_ref = ref.crop_scores(crops)
    t_ref = time.time() - t
    label_mism = int((s_cpu.argmax(1) != s_ref.argmax(1)).sum())
    print(f"\n{len(crops)} crops: cpu engine [{kernel_name()}] {t_cpu:.1f} s, brevitas fp32 {t_ref:.1f} s; "
          f"label mismatches {label_mism}, max |score diff| {np.abs(s_cpu - s_ref).max():.2e}")
    assert len(crops) == 17945
    assert label_mism == 0
    assert np.abs(s_cpu - s_ref).max() < 1e-4


def test_engine_matches_finn_hw_graph_on_64_crops(shipped_frontend, private_crops):
    from qonnx.core.modelwrapper import ModelWrapper
    from bdnn_hw.flow import exec_graph, host_affine
    crops, _ = private_crops
    crops = crops[:64]
    hw = ModelWrapper(str(shipped_frontend.hw_graph))
    scale, bias = host_affine(hw)
    e = Engine(load(SHIPPED))
    ours = e.crop_scores(crops)
    mism = 0
    for i, c in enumerate(crops):
        finn = exec_graph(hw, c[None, :, :, None]).reshape(-1) * scale + bias
        mism += int(finn.argmax() != ours[i].argmax() or np.abs(finn - ours[i]).max() > 1e-4)
    print(f"\ncpu engine vs FINN HW-layer graph: {len(crops)} crops compared, {mism} mismatches")
    assert mism == 0
