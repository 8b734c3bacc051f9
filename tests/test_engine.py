"""The fast CPU engine is bit-exact: vs Brevitas fp32 on the whole PrivateTest, vs FINN's HW graph."""
import time

import numpy as np
import pytest

from bdnn.arch import ArchSpec
from bdnn.artifact import load
from bdnn.engine import Engine, kernel_name
from bdnn.nn import save_artifact
from conftest import REPO, calibrated_model, tiny_spec

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


def test_numpy_fallback_equals_the_c_kernel(tiny_model, private_crops, monkeypatch):
    import bdnn.engine as eng
    crops, _ = private_crops
    e = Engine(load(tiny_model))
    fast = e.accumulators(crops[:20])
    assert eng._LIB is not None  # the C kernel ran
    monkeypatch.setattr(eng, "_load_kernel", lambda: None)
    assert np.array_equal(e.accumulators(crops[:20]), fast)


@pytest.mark.parametrize("broken", ["source", "compiler"])
def test_engine_falls_back_to_numpy_with_a_note(tiny_model, private_crops, monkeypatch, tmp_path, capfd, broken):
    """A plain install without the kernel source, or no working C compiler:
    same results from the numpy kernel, and a note saying so."""
    import bdnn.engine as eng
    crops, _ = private_crops
    want = Engine(load(tiny_model)).accumulators(crops[:10])
    monkeypatch.setattr(eng, "_LIB", None)
    monkeypatch.setattr(eng, "_LIB_ERROR", None)
    monkeypatch.setenv("BDNN_CACHE", str(tmp_path / "cache"))   # nothing compiled yet
    if broken == "source":
        monkeypatch.setattr(eng, "_SRC", tmp_path / "missing" / "_xnor.c")
    else:
        monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    got = Engine(load(tiny_model)).accumulators(crops[:10])
    assert eng._LIB is None and np.array_equal(got, want)
    err = capfd.readouterr().err
    assert "no C kernel" in err and "numpy kernel (same results, slower)" in err
    assert ("_xnor.c is not installed" if broken == "source" else "no-such-cc") in err


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


def _with_threshold(layers, spec, name, channel, t_acc, negative):
    """A copy of ``layers`` whose ``name`` channel has its sign threshold at accumulator ``t_acc``
    (and a negative BN scale if ``negative``: the sign then fires below the threshold)."""
    from bdnn.artifact import BatchNorm, Layer
    layer = layers[name]
    gamma = layer.bn.weight.copy()
    gamma[channel] = -abs(gamma[channel]) if negative else abs(gamma[channel])
    layer = Layer(name, layer.weight, BatchNorm(gamma, layer.bn.bias, layer.bn.mean, layer.bn.var, layer.bn.eps))
    scale, _ = layer.bn.scale_shift()
    t = t_acc
    if name == spec.conv_layers()[0][0]:  # the first conv's BN sees 2*acc/255 - sum(w)
        t = 2.0 * t_acc / 255.0 - layer.weight[channel].sum()
    bias = layer.bn.bias.copy()
    bias[channel] = (layer.bn.mean[channel] - t) * scale[channel]
    return {**layers, name: Layer(name, layer.weight, BatchNorm(gamma, bias, layer.bn.mean, layer.bn.var, layer.bn.eps))}


def test_centred_thresholds_keep_every_decision_and_remove_near_ties(private_crops):
    """A threshold 7e-5 from an integer (the shape of a real failure: fp32 paths split the tie) is
    moved mid-gap; the integer network and Brevitas on the centred artifact still agree exactly."""
    from bdnn.artifact import Artifact
    from bdnn.thresholds import centre_thresholds, sign_affines, threshold_margins, thresholds
    from bdnn.nn import from_artifact, predict_scores, to_artifact_layers
    crops, _ = private_crops
    spec = tiny_spec()
    layers = to_artifact_layers(calibrated_model(spec, crops[:300]))
    assert min(threshold_margins(spec, layers).values()) > 0.49  # export already centres
    # near ties just above / below reachable accumulators, both BN signs, first conv included
    for name, ch, t, negative in [("block1.conv1", 0, 300 + 7e-5, False), ("block1.conv1", 1, 301 - 7e-5, True),
                                  ("block1.conv2", 1, 8 - 7e-5, True), ("block2.conv1", 2, -6 + 7e-5, False),
                                  ("fc1", 3, 2 + 7e-5, True)]:
        layers = _with_threshold(layers, spec, name, ch, t, negative)
    near = threshold_margins(spec, layers)
    assert near["block1.conv1"] < 1e-3 and near["fc1"] < 1e-3
    before = {n: thresholds(*a) for n, a in sign_affines(spec, layers).items()}
    centred = centre_thresholds(spec, layers)
    after = {n: thresholds(*a) for n, a in sign_affines(spec, centred).items()}
    for n in before:
        assert np.array_equal(before[n][0], after[n][0]) and np.array_equal(before[n][1], after[n][1]), n
    assert min(threshold_margins(spec, centred).values()) > 0.49
    assert all(np.array_equal(centred[n].bn.weight, layers[n].bn.weight) for n in layers)  # only beta moves
    art = Artifact(spec, centred, {})
    got = Engine(art).accumulators(crops)
    ref = predict_scores(from_artifact(art), crops)
    assert np.array_equal(Engine(art).scores(got).argmax(1), ref.argmax(1))
    assert np.abs(Engine(art).scores(got) - ref).max() < 1e-4
    # idempotent: a second pass changes nothing
    again = centre_thresholds(spec, centred)
    assert all(np.array_equal(again[n].bn.bias, centred[n].bn.bias) for n in centred)
