"""The weight-replaying external-memory binary matrix unit (hw/rtl/hdl/bnn_mvtu_replay.sv) against
its reference model: random maps, weights and thresholds, random gaps on the map and weight streams
(the weight stream stands for DDR reads of random latency) and random output back-pressure."""
import numpy as np
import pytest

from bdnn_hw.rtl import replay
from bdnn_hw.rtl.replay import ReplayShape

CONV = ReplayShape(c=16, ifm_dim=5, k=3, ofm_dim=3, mh=8, simd=4, pe=2, batch=3)
FC = ReplayShape(c=48, ifm_dim=1, k=1, ofm_dim=1, mh=12, simd=8, pe=3, batch=2)
FC_B1 = ReplayShape(c=48, ifm_dim=1, k=1, ofm_dim=1, mh=12, simd=8, pe=3, batch=1)  # one window: the accumulate forwards


def _case(s: ReplayShape, batches: int, seed: int):
    rng = np.random.default_rng(seed)
    n = batches * s.batch
    maps = rng.integers(0, 2, (n, s.ifm_dim, s.ifm_dim, s.c), dtype=np.uint8)
    if s.k > 1:  # zero padding, as FMPadding delivers it
        maps[:, 0, :, :] = maps[:, -1, :, :] = maps[:, :, 0, :] = maps[:, :, -1, :] = 0
    weights = rng.integers(0, 2, (s.mh, s.mw), dtype=np.uint8)
    # thresholds around the median popcount, and the clipped extremes (never / always fire)
    thr = rng.integers(s.mw // 2 - 3, s.mw // 2 + 4, s.mh)
    thr[0], thr[-1] = -5, s.mw + 9
    return maps, weights, thr


def _simulate(s, maps, weights, thr, work, stall=0, seed=0, weight_words=None):
    from bdnn_hw.rtlsim.harness import simulate
    u = replay.unit(s, work, thr)
    n = len(maps)
    w = replay.pack_weights(weights, s) if weight_words is None else weight_words
    r = simulate(u, [replay.pack_maps(maps, s), np.tile(w, (n // s.batch, 1))],
                 [n * s.ofm_dim ** 2 * s.nf], stall_in=stall, stall_out=stall, seed=seed)
    return replay.unpack_outputs(r.outputs[0], n, s), r


@pytest.mark.parametrize("s", [CONV, FC, FC_B1], ids=["conv3x3", "fc", "fc-batch1"])
def test_replay_unit_equals_its_model_under_random_stalls(s, tmp_path):
    maps, weights, thr = _case(s, batches=3, seed=1)
    want = replay.reference(maps, weights, thr, s)
    assert 0.2 < want.mean() < 0.8 and want[..., 0].all() and not want[..., -1].any()
    for stall, seed in ((0, 0), (35, 3)):
        got, r = _simulate(s, maps, weights, thr, tmp_path, stall, seed)
        np.testing.assert_array_equal(got, want)
        if stall == 0:  # compute-bound: the batches' steps back to back, plus filling the first
            fill = s.batch * s.ifm_dim ** 2 * s.cf
            assert 3 * s.cycles_per_batch <= r.cycles <= 3 * s.cycles_per_batch + fill + 2 * s.windows_per_batch * s.nf + 20, \
                (r.cycles, s.cycles_per_batch)


def test_a_wrong_weight_word_is_caught(tmp_path):
    s = CONV
    maps, weights, thr = _case(s, batches=1, seed=2)
    words = replay.pack_weights(weights, s).copy()
    words[s.sf + 5, 0] ^= (1 << s.w_width) - 1  # one word of the DDR stream (rows 2, 3) inverted
    got, _ = _simulate(s, maps, weights, thr, tmp_path, weight_words=words)
    assert not np.array_equal(got, replay.reference(maps, weights, thr, s))


def test_shape_errors_are_clear():
    with pytest.raises(ValueError, match="SIMD 5 must divide"):
        ReplayShape(c=16, ifm_dim=5, k=3, ofm_dim=3, mh=8, simd=5, pe=2, batch=1)
    with pytest.raises(ValueError, match="ifm_dim 6 must be"):
        ReplayShape(c=16, ifm_dim=6, k=3, ofm_dim=3, mh=8, simd=4, pe=2, batch=1)


def test_ddr_traffic_is_the_matrix_once_per_batch():
    block4_conv2 = ReplayShape(c=512, ifm_dim=7, k=3, ofm_dim=5, mh=512, simd=64, pe=8, batch=5)
    finn_external = block4_conv2.weight_bits / 8 * 25  # FINN: the matrix once per output pixel
    assert finn_external / block4_conv2.ddr_bytes_per_crop() == 125
    assert block4_conv2.cycles_per_batch == 5 * 25 * 4608 * 512 // (64 * 8)


@pytest.fixture(scope="module")
def replay_codegen(tmp_path_factory, private_crops, finn_build_dir):
    """The small dense BDNN with block2.conv2 and fc1 in DDR; the same folded graph with
    ``UseReplayUnits(batch=2)`` (before code generation: the replacement renumbers nodes)."""
    import finn.builder.build_dataflow_steps as finn_steps
    from conftest import codegen_small_dense
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.general import GiveUniqueNodeNames
    from bdnn_hw.flow import make_cfg
    from bdnn_hw.rtl.replay_op import UseReplayUnits
    d = tmp_path_factory.mktemp("replay")
    fe, model, board = codegen_small_dense(d, private_crops[0], final_pool=1, external=("block2.conv2", "fc1"))
    folded = ModelWrapper(str(d / "hw" / "folded_hw_graph.onnx"))
    replaced = folded.transform(UseReplayUnits(batch=2)).transform(GiveUniqueNodeNames())
    replaced = finn_steps.step_hw_codegen(replaced, make_cfg(d / "hw_replay", board))
    return fe, model, replaced, d, board


def _python_context(model, crop) -> dict:
    """Every tensor of a specialized graph, each node by FINN's (or the replay op's) Python model."""
    from onnx import numpy_helper
    from qonnx.custom_op.registry import getCustomOp
    from bdnn_hw.rtlsim.execute import python_exec_node
    ctx = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    ctx[model.graph.input[0].name] = crop[None, :, :, None].astype(np.float32)
    for n in model.graph.node:
        ctx.update(python_exec_node(n, getCustomOp(n), ctx, model.graph))
    return ctx


def test_use_replay_units_replaces_the_ddr_layers_and_keeps_the_graph_exact(replay_codegen, private_crops):
    from qonnx.custom_op.registry import getCustomOp
    fe, model, replaced, d, _ = replay_codegen
    nodes = [n for n in replaced.graph.node if n.op_type == "MVTU_replay_rtl"]
    assert len(nodes) == 2
    kinds = sorted((getCustomOp(n).get_nodeattr("K"), tuple(getCustomOp(n).get_nodeattr("replaced"))[0][:4]) for n in nodes)
    assert kinds == [(1, "MVAU"), (3, "Conv")]  # fc1 (MVAU + thresholds), block2.conv2 (SWG + MVAU + thresholds)
    assert not any(n.op_type.startswith("MVAU") and getCustomOp(n).get_nodeattr("mem_mode") == "external"
                   for n in replaced.graph.node)
    crops, _ = private_crops
    out = replaced.graph.output[0].name
    for c in crops[:4]:
        np.testing.assert_array_equal(_python_context(replaced, c)[out], _python_context(model, c)[out])


def test_replay_node_in_verilator_equals_its_python_execution(replay_codegen, private_crops):
    """The conv replay node of the graph, generated as FINN RTL node, on the maps two real crops
    produce, with its weight stream once per batch and random stalls."""
    from bdnn_hw.rtlsim.harness import simulate
    from bdnn_hw.rtlsim.units import pack_input, rtl_node_unit, unpack_output
    from qonnx.custom_op.registry import getCustomOp
    _, _, replaced, d, board = replay_codegen
    node = next(n for n in replaced.graph.node if n.op_type == "MVTU_replay_rtl" and getCustomOp(n).get_nodeattr("K") == 3)
    inst = getCustomOp(node)
    crops, _ = private_crops
    maps, want = [], []
    for c in crops[:2]:
        ctx = _python_context(replaced, c)
        maps.append(ctx[node.input[0]])
        want.append(ctx[node.output[0]])
    s = inst.shape()
    w = replay.pack_weights(np.rint(replaced.get_initializer(node.input[1])).astype(np.uint8).T, s)
    u = rtl_node_unit(node, inst)
    r = simulate(u.unit, [np.concatenate([pack_input(inst, 0, m) for m in maps]), w], [2 * inst.get_number_output_values()],
                 stall_in=20, stall_out=20, seed=5)
    got = np.stack([unpack_output(inst, 0, o) for o in np.split(r.outputs[0], 2)]).reshape(2, -1)
    np.testing.assert_array_equal(got, np.stack(want).reshape(2, -1))
    assert 0 < np.mean(want) < 1


def test_small_dense_bdnn_with_replay_units_stitched_streams_real_crops(replay_codegen, private_crops):
    """The whole network as one all-RTL design with both DDR layers as replay units (B = 2): FIFOs
    sized by simulation (the dense block's bypass must hold the batch), 6 real crops back to back,
    every output equal to the cpu engine's; the weight streams carry each matrix once per batch."""
    from qonnx.core.modelwrapper import ModelWrapper
    from bdnn.artifact import load
    from bdnn.engine import Engine
    from bdnn_hw.flow import popcounts_from_accumulators
    from bdnn_hw.rtl import stitched_sim
    fe, _, replaced, d, board = replay_codegen
    crops = private_crops[0][:6]
    art = load(d / "model.npz")
    expected = popcounts_from_accumulators(art, ModelWrapper(str(fe.hw_graph)), Engine(art).accumulators(crops))
    replaced.save(str(d / "replay_codegen.onnx"))
    r = stitched_sim.evaluate(d / "replay_codegen.onnx", board.fpga_part, board.clk_period_ns, d / "stitched", crops, expected)
    design = r.pop("_design")
    r.pop("_finn_fifo_config")
    print({k: v for k, v in r.items() if k != "fifo_sizing"})
    print({k: v for k, v in r["fifo_sizing"].items() if k != "edges"})
    assert r["crops"] == 6 and r["mismatches"] == 0
    assert len(set(map(tuple, expected))) > 1
    assert len(design.weight_ports) == 2 and all(n.startswith("MVTU_replay_rtl") for _, n, _ in design.weight_ports)
    # the DDR traffic the simulation pulled: each matrix once per batch of 2 (all in whole bytes here)
    from qonnx.custom_op.registry import getCustomOp
    matrices = sum(getCustomOp(replaced.get_node_from_name(n)).shape().weight_bits / 8 for _, n, _ in design.weight_ports)
    assert r["ddr_weight_bytes_per_crop"] == pytest.approx(matrices / 2)
    with pytest.raises(ValueError, match="whole batches"):
        stitched_sim.evaluate(d / "replay_codegen.onnx", board.fpga_part, board.clk_period_ns, d / "stitched5",
                              crops[:5], expected[:5])


def test_bram18_count_takes_the_best_aspect_ratio():
    # (the replay op's BRAM estimate; yosys of the whole unit is in benchmarks/bench_replay.py)
    from bdnn_hw.rtl.replay import bram18_for
    assert bram18_for(64, 490) == 2 * 1 and bram18_for(8, 16000) == 8
    assert bram18_for(512, 490) == 15 and bram18_for(1, 128000) == 8


def test_node_by_node_executor_simulates_replay_nodes(replay_codegen, private_crops):
    """The build's node-by-node Verilator stage: a replay node gets the crop's map B times and
    the matrix once, and each of its B outputs must equal the Python model's."""
    from bdnn_hw.rtlsim.execute import EVIDENCE_VERILATOR, simulate_graph
    _, _, replaced, _, _ = replay_codegen
    names = {n.name for n in replaced.graph.node if n.op_type == "MVTU_replay_rtl"}
    x = private_crops[0][3][None, :, :, None].astype(np.float32)
    _, rep = simulate_graph(replaced, x, only=names, progress=False)
    recs = [r for r in rep.records if r.node in names]
    assert len(recs) == 2 and not rep.errors
    assert all(r.evidence == EVIDENCE_VERILATOR and r.mismatches == 0 and r.elements > 0 for r in recs)


def test_a_placement_config_keeps_a_layer_in_finns_external_mode(replay_codegen):
    """"replay": false on a layer's /mvau role keeps that DDR layer as FINN's external MVAU; the
    other still becomes a replay unit. The key is the project's: FINN never sees it, and it is
    refused on a role that is not a layer's MVAU."""
    import pytest
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp
    from bdnn.arch import ArchSpec
    from bdnn_hw.flow import step_use_replay_units
    from bdnn_hw.folding import to_finn_config
    _, _, _, d, _ = replay_codegen
    folded = ModelWrapper(str(d / "hw" / "folded_hw_graph.onnx"))
    names = ArchSpec("tiny-dense", (8, 16), dense=True, fc_hidden=(32,)).layer_names()
    cfg = {"fc1/mvau": {"mem_mode": "external", "replay": False}, "block2.conv2/mvau": {"mem_mode": "external"}}
    out = step_use_replay_units(2, cfg, names)(folded, None)
    replay = [n for n in out.graph.node if n.op_type == "MVTU_replay_rtl"]
    external = [n for n in out.graph.node if n.op_type.startswith("MVAU")
                and getCustomOp(n).get_nodeattr("mem_mode") == "external"]
    assert len(replay) == 1 and getCustomOp(replay[0]).get_nodeattr("K") == 3  # block2.conv2
    assert len(external) == 1 and getCustomOp(external[0]).get_nodeattr("MH") == 32  # fc1 stays FINN's
    finn_cfg = to_finn_config(cfg, folded, names)
    assert all("replay" not in attrs for attrs in finn_cfg.values())
    with pytest.raises(ValueError, match="'replay' is a true/false key"):
        to_finn_config({"block2.conv2/swg": {"replay": False}}, folded, names)


def test_replay_lanes_keep_at_least_the_mvau_folding():
    """The unit's SIMD must divide the input channels; PE makes up the lanes the MVAU folding had
    (BDNN4 block4.conv2: SIMD 768 over 512 channels -> 256 x 4 = 1,024 lanes, not 512)."""
    from bdnn_hw.rtl.replay_op import MAX_SIMD, replay_lanes
    assert replay_lanes(512, 512, 768, 1) == (256, 4)
    assert replay_lanes(512, 512, 256, 2) == (256, 2)      # already valid: unchanged
    assert replay_lanes(4096, 1024, 64, 1) == (64, 1)      # FC: c = MW
    for c, mh, simd, pe in ((512, 512, 768, 1), (384, 256, 96, 3), (1024, 1024, 1024, 1), (72, 48, 24, 2), (7, 5, 3, 5)):
        s2, p2 = replay_lanes(c, mh, simd, pe)
        assert c % s2 == 0 and mh % p2 == 0 and s2 <= max(MAX_SIMD, 1)
        assert s2 * p2 >= simd * pe or p2 == mh, (c, mh, simd, pe, s2, p2)  # as many lanes, or all PE
