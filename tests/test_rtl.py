"""The project's RTL (hw/rtl): every block against FINN's Python model of the layer it replaces,
with random back-pressure, inside a real small dense BDNN on real FER2013 crops; the whole network
stitched into one all-RTL design and streamed in Verilator; negative tests (a wrong weight word, a
FIFO too shallow for the dense block's bypass)."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import codegen_small_dense

pytestmark = pytest.mark.rtlsim

PROJECT_KINDS = {"MVAU/bdnn_rtl", "Pool/bdnn_rtl", "DuplicateStreams/bdnn_rtl", "StreamingConcat/bdnn_rtl",
                 "ConvolutionInputGenerator/bdnn_rtl"}


@pytest.fixture(scope="module")
def dense_codegen(tmp_path_factory, private_crops, finn_build_dir):
    """A small dense BDNN code generated for the PYNQ-Z2: fc1's weights external (streamed as from
    DDR), the others in memstreams (LUTRAM / BRAM)."""
    d = tmp_path_factory.mktemp("rtl_dense")
    fe, model, board = codegen_small_dense(d, private_crops[0], final_pool=1, external=("fc1",))
    return fe, model, d, board


def test_project_rtl_replaces_every_hls_layer_bit_exactly(dense_codegen, private_crops):
    """Every node of the graph in Verilator (FINN's RTL + the project's RTL for the HLS layers),
    free-running and with 30 % random back-pressure on every stream, equal to FINN's Python
    models node by node, at the folding's ideal cycle count."""
    from bdnn_hw.flow import exec_graph
    from bdnn_hw.rtlsim.execute import simulate_graph
    fe, model, d, _ = dense_codegen
    crops, _ = private_crops
    x = crops[11][None, :, :, None].astype(np.float32)
    out, rep = simulate_graph(model, x, seed=3, progress=False, project_rtl=d / "project_rtl")
    assert not rep.errors, rep.errors
    python_only = [r.node for r in rep.records if r.evidence == "python"]
    assert not python_only, f"nodes without RTL: {python_only}"
    ours = [r for r in rep.records if r.kind.endswith("/bdnn_rtl")]
    assert {r.kind for r in ours} == PROJECT_KINDS
    for r in ours:
        print(f"{r.node:26s} {r.kind:28s} {r.elements:>7} elements, cycles {r.cycles:>7,} "
              f"(ideal {r.est_cycles:>7,}), back-pressured {r.cycles_backpressure:>7,}")
        assert r.mismatches == 0 and r.elements > 0
        assert r.cycles <= r.est_cycles * 1.01 + 4        # one step per cycle: the folding's ideal
        if r.cycles > 100:
            assert r.cycles_backpressure > r.cycles       # the back-pressure was real
    np.testing.assert_array_equal(out.reshape(-1), exec_graph(fe.hw_graph, x).reshape(-1))


def test_a_wrong_weight_word_is_caught(dense_codegen, private_crops):
    from qonnx.custom_op.registry import getCustomOp
    from bdnn_hw.rtl.wrappers import project_rtl_unit
    from bdnn_hw.rtlsim.execute import python_exec_node, unit_inputs
    from bdnn_hw.rtlsim.harness import simulate
    from bdnn_hw.rtlsim.units import output_beats, unpack_output
    _, model, d, _ = dense_codegen
    node = next(n for n in model.graph.node if n.op_type == "MVAU_hls" and getCustomOp(n).get_nodeattr("binaryXnorMode"))
    inst = getCustomOp(node)
    rng = np.random.default_rng(0)
    ctx = {node.input[0]: rng.integers(0, 2, inst.get_normal_input_shape(0)).astype(np.float32),
           node.input[1]: model.get_initializer(node.input[1])}
    golden = python_exec_node(node, inst, ctx, model.graph)[node.output[0]]
    u = project_rtl_unit(node, inst, d / "project_rtl")
    ins = unit_inputs(model, node, inst, u, ctx)
    good = unpack_output(inst, 0, simulate(u.unit, ins, [output_beats(inst)], stall_in=20, stall_out=20).outputs[0])
    np.testing.assert_array_equal(good, golden)
    ins[1] = ins[1].copy()
    ins[1][5, 0] ^= 1  # one weight bit of one word
    bad = unpack_output(inst, 0, simulate(u.unit, ins, [output_beats(inst)]).outputs[0])
    print(f"{node.name}: one flipped weight bit -> {(bad != golden).sum()} wrong outputs")
    assert (bad != golden).sum() >= 1


def test_small_dense_bdnn_stitched_all_rtl_streams_real_crops(dense_codegen, private_crops):
    """The whole network as one design: FIFOs sized by simulation, crops back to back, every
    output equal to the cpu engine's; throughput = the bottleneck layer's ideal cycles."""
    from qonnx.custom_op.registry import getCustomOp
    from qonnx.core.modelwrapper import ModelWrapper
    from bdnn.artifact import load
    from bdnn.engine import Engine
    from bdnn_hw.flow import popcounts_from_accumulators
    from bdnn_hw.rtl import stitched_sim
    fe, model, d, board = dense_codegen
    crops, _ = private_crops
    crops = crops[:6]
    art = load(d / "model.npz")
    expected = popcounts_from_accumulators(art, ModelWrapper(str(fe.hw_graph)), Engine(art).accumulators(crops))
    model.save(str(d / "codegen.onnx"))
    r = stitched_sim.evaluate(d / "codegen.onnx", board.fpga_part, board.clk_period_ns, d / "stitched", crops, expected)
    r.pop("_design")
    fifo_cfg = r.pop("_finn_fifo_config")
    print({k: v for k, v in r.items() if k != "fifo_sizing"})
    print({k: v for k, v in r["fifo_sizing"].items() if k != "edges"})
    assert r["crops"] == 6 and r["mismatches"] == 0
    assert len(set(map(tuple, expected))) > 1, "degenerate: every crop gives the same output"
    ideal = max(getCustomOp(n).get_exp_cycles() for n in model.graph.node)
    assert ideal <= r["cycles_per_crop"] <= ideal * 1.10, (r["cycles_per_crop"], ideal)
    assert r["latency_cycles"] >= r["cycles_per_crop"]
    assert r["design"]["external_weight_streams"]  # fc1 streamed as from DDR
    # the sizing design (deep FIFOs, depths as run-time limits) at the sized depths behaves exactly
    # like the fixed-depth design that is synthesized: same outputs, same cycle of every output
    import json
    from bdnn_hw.rtl.stitch import prepare_graph, stitch
    from bdnn_hw.rtlsim.harness import SimError
    g = prepare_graph(ModelWrapper(str(d / "codegen.onnx")), board.fpga_part, board.clk_period_ns)
    caps = {e["name"]: e["depth"] for e in json.loads((d / "stitched" / "sizing" / "design.json").read_text())["edges"]}
    depths = {e: v["depth"] for e, v in r["fifo_sizing"]["edges"].items()}
    runtime = stitch(g, d / "stitched" / "sizing", caps, runtime_limits=True)
    limited = stitched_sim.run(g, runtime, crops, depths=depths)
    fixed = stitched_sim.run(g, stitch(g, d / "stitched" / "sized", depths), crops)
    np.testing.assert_array_equal(limited.outputs, fixed.outputs)
    assert (limited.cycles_per_crop, limited.latency_cycles, limited.total_cycles) == \
        (fixed.cycles_per_crop, fixed.latency_cycles, fixed.total_cycles)
    assert fixed.cycles_per_crop == r["cycles_per_crop"]
    # negative: the dense block's bypass FIFO too shallow to cover conv2's latency -> deadlock,
    # reported with a clear message instead of a hang
    for e in r["fifo_sizing"]["bypass_depths"]:
        depths[e] = 2
    with pytest.raises(SimError, match="DEADLOCK"):
        stitched_sim.run(g, runtime, crops[:2], idle_limit=20_000, depths=depths)
    with pytest.raises(ValueError, match="capacity"):
        runtime.limits({e: caps[e] + 1 for e in caps})
    # the sized depths reach a Vivado build as finn-plus's fifo_config_file: FINN's own FIFO
    # insertion on this graph, then its own reader, sets every FIFO to the stitched edge's depth
    from finn.transformation.fpgadataflow.insert_fifo import InsertFIFO
    from finn.transformation.fpgadataflow.set_fifo_depths import ApplyFIFODepthsFromFile
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
    from finn.transformation.qonnx.give_unique_node_names_recursive import GiveUniqueNodeNamesRecursive
    (d / "fifo_depths.json").write_text(json.dumps(fifo_cfg))
    f = g.transform(InsertFIFO(create_shallow_fifos=True)).transform(SpecializeLayers(board.fpga_part))
    f = f.transform(GiveUniqueNodeNamesRecursive()).transform(ApplyFIFODepthsFromFile(d / "fifo_depths.json"))
    fifos = [n for n in f.graph.node if n.op_type.startswith("StreamingFIFO")]
    assert len(fifos) == len(depths)
    got = sorted(getCustomOp(n).get_nodeattr("depth") for n in fifos)
    want = sorted(v["depth"] for v in r["fifo_sizing"]["edges"].values())
    assert got == want


def test_xnor_accumulators_hold_the_full_popcount_range(dense_codegen):
    """finn-plus sizes XNOR accumulators from sum(w*x), not from the popcount range [0, MW];
    the build widens them (WidenXnorAccumulators). An input equal to a weight column gives the
    largest popcount, MW: the RTL must output exactly that, not a wrapped value."""
    from qonnx.custom_op.registry import getCustomOp
    from bdnn_hw.rtl.wrappers import project_rtl_unit
    from bdnn_hw.rtlsim.execute import python_exec_node, unit_inputs
    from bdnn_hw.rtlsim.harness import simulate
    from bdnn_hw.rtlsim.units import output_beats, unpack_output
    _, model, d, _ = dense_codegen
    xnor = [n for n in model.graph.node if n.op_type == "MVAU_hls" and getCustomOp(n).get_nodeattr("binaryXnorMode")]
    assert xnor
    for n in xnor:
        inst = getCustomOp(n)
        odt, mw = inst.get_output_datatype(), inst.get_nodeattr("MW")
        assert odt.min() <= 0 and odt.max() >= mw, (n.name, odt.name, mw)
    node = xnor[0]
    inst = getCustomOp(node)
    w = model.get_initializer(node.input[1])            # (MW, MH) binary
    shape = inst.get_normal_input_shape(0)
    x = np.broadcast_to(w[:, 0], shape).astype(np.float32).copy()   # every vector = column 0
    ctx = {node.input[0]: x, node.input[1]: w}
    golden = python_exec_node(node, inst, ctx, model.graph)[node.output[0]]
    assert (golden[..., 0] == w.shape[0]).all()          # popcount MW on channel 0
    u = project_rtl_unit(node, inst, d / "project_rtl")
    got = unpack_output(inst, 0, simulate(u.unit, unit_inputs(model, node, inst, u, ctx), [output_beats(inst)]).outputs[0])
    np.testing.assert_array_equal(got, golden)


def test_widen_xnor_accumulators_fixes_finns_range():
    """The transformation on its own: an XNOR MVAU that FINN left at INT7 for MW = 72 becomes UINT7."""
    from onnx import TensorProto, helper
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp
    from bdnn_hw.transforms import WidenXnorAccumulators
    inp = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 72])
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])
    mid = helper.make_tensor_value_info("m", TensorProto.FLOAT, [1, 8])
    mv = helper.make_node("MVAU_hls", ["x", "w"], ["m"], domain="finn.custom_op.fpgadataflow.hls",
                          backend="fpgadataflow", MW=72, MH=8, SIMD=8, PE=2, binaryXnorMode=1, noActivation=1,
                          inputDataType="BINARY", weightDataType="BINARY", outputDataType="INT7", accDataType="INT7")
    ident = helper.make_node("Identity", ["m"], ["y"])
    g = helper.make_graph([mv, ident], "g", [inp], [out], value_info=[mid])
    m = ModelWrapper(helper.make_model(g))
    m.set_initializer("w", np.random.default_rng(0).integers(0, 2, (72, 8)).astype(np.float32))
    m.set_tensor_datatype("w", DataType["BINARY"])
    m2, changed = WidenXnorAccumulators().apply(m)
    inst = getCustomOp(m2.graph.node[0])
    assert changed and inst.get_nodeattr("outputDataType") == "UINT7" and inst.get_nodeattr("accDataType") == "UINT7"
    assert WidenXnorAccumulators().apply(m2)[1] is False  # a fixed point


def test_project_rtl_as_finn_ops_rtl_only(dense_codegen, private_crops, tmp_path):
    """--rtl-only: the HLS-only layers become the project's FINN ops (*_bdnn_rtl in FINN's RTL
    domain): FINN's code generation writes their RTL and FINN's memstream, FINN's Python execution
    of the folded graph runs (not possible with HLS nodes), every node simulates in Verilator, and
    the Vivado IPI commands reference the generated sources."""
    import qonnx.core.onnx_exec as oxe
    from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp
    from bdnn_hw.flow import exec_graph
    from bdnn_hw.rtl.ops import PROJECT_OPS, SelectProjectRTL
    from bdnn_hw.rtlsim.execute import simulate_graph
    fe, _, d, board = dense_codegen
    model = ModelWrapper(str(d / "hw" / "folded_hw_graph.onnx"))
    sel = SelectProjectRTL()
    model = model.transform(sel)
    assert not sel.skipped
    ops = {n.op_type for n in model.graph.node}
    assert set(PROJECT_OPS) <= ops and not any(o.endswith("_hls") for o in ops), ops
    model = model.transform(PrepareIP(board.fpga_part, board.clk_period_ns))
    for n in model.graph.node:
        if n.op_type.endswith("_rtl") and n.op_type not in PROJECT_OPS:
            getCustomOp(n).set_nodeattr("exec_mode", "cppsim")  # FINN's RTL layers' Python models
    crops, _ = private_crops
    x = crops[20][None, :, :, None].astype(np.float32)
    ref = exec_graph(fe.hw_graph, x)
    py = oxe.execute_onnx(model, {model.graph.input[0].name: x})[model.graph.output[0].name]
    np.testing.assert_array_equal(py.reshape(-1), ref.reshape(-1))
    out, rep = simulate_graph(model, x, progress=False)
    assert not rep.errors and rep.mismatches == 0
    assert not [r.node for r in rep.records if r.evidence == "python"]
    assert {"MVAU_bdnn_rtl", "MVAU_bdnn_rtl/memstream", "Pool_bdnn_rtl",
            "ConvolutionInputGenerator_bdnn_rtl"} <= {r.kind for r in rep.records}
    np.testing.assert_array_equal(out.reshape(-1), ref.reshape(-1))
    mv = next(n for n in model.graph.node if n.op_type == "MVAU_bdnn_rtl" and getCustomOp(n).get_nodeattr("mem_mode") == "internal_decoupled")
    tcl = "\n".join(getCustomOp(mv).code_generation_ipi())
    assert "bnn_mvau.sv" in tcl and "memstream" in tcl and f"-reference {mv.name}" in tcl


@pytest.mark.parametrize("style,depth", [("auto", 37), ("distributed", 37), ("block", 37), ("distributed", 700)])
def test_weight_rom_streams_its_words_in_order_forever(tmp_path, style, depth):
    """bnn_weight_rom (the stitched design's on-chip weights): every word in order, wrapping
    around, under 30 % random back-pressure; the placement's style reaches synthesis (LUTs for
    distributed, BRAM for block)."""
    from bdnn_hw.rtl import HDL
    from bdnn_hw.rtl.stitch import write_hex
    from bdnn_hw.rtlsim.harness import Unit, axis, simulate
    from bdnn_hw.rtlsim.synth import synthesize
    width = 100   # depth 700: a deep memory (the stitched design puts such ones in block RAM)
    words = np.random.default_rng(7).integers(0, 2**32, (depth, 4), dtype=np.uint64).astype(np.uint32)
    words[:, 3] &= (1 << (width - 96)) - 1
    write_hex(words, width, tmp_path / "w.dat")
    (tmp_path / "rom_top.sv").write_text(
        "module rom_top (input logic clk, input logic rst_n, output logic [99:0] out_tdata,\n"
        "  output logic out_tvalid, input logic out_tready);\n"
        f"  bnn_weight_rom #(.WIDTH({width}), .DEPTH({depth}), .INIT_FILE(\"{tmp_path / 'w.dat'}\"), .RAM_STYLE(\"{style}\"))\n"
        "    rom (.clk, .rst_n, .out_tdata, .out_tvalid, .out_tready);\nendmodule\n")
    unit = Unit(top="rom_top", files=(str(HDL / "bnn_weight_rom.sv"), str(HDL / "bnn_rom.sv"), str(HDL / "stream_fifo.sv"),
                                      str(tmp_path / "rom_top.sv")),
                inputs=(), outputs=(axis("out", width, style="rtllib"),), clocks=("clk",), reset_n="rst_n",
                run_dir=str(tmp_path))
    r = simulate(unit, [], [3 * depth], stall_out=30, seed=1)
    np.testing.assert_array_equal(r.outputs[0], np.tile(words, (3, 1)))
    free = simulate(unit, [], [3 * depth])          # a consumer that is always ready: one word per cycle
    np.testing.assert_array_equal(free.outputs[0], np.tile(words, (3, 1)))
    assert free.cycles <= 3 * depth + 8, free.cycles
    syn = synthesize("rom_top", list(unit.files), str(tmp_path))
    print(style, {k: syn[k] for k in ("lut", "ff", "bram36")})
    if style == "block":
        assert syn["bram36"] > 0
    elif style == "distributed":
        assert syn["bram36"] == 0 and syn["lut"] > 0


def test_stream_fifo_in_block_ram_behaves_like_the_lutram_one_cycle_for_cycle(tmp_path):
    """stream_fifo BLOCK = 1 (head register + synchronously read memory, what yosys maps to block
    RAM) against BLOCK = 0 (asynchronous read, LUT RAM) under random gaps and back-pressure: same
    beats at the same cycles, so the storage can be chosen after the FIFO sizing; yosys puts a
    2048 x 8 FIFO in one block RAM with BLOCK = 1 and in LUTs with BLOCK = 0."""
    from bdnn_hw.rtl import HDL
    from bdnn_hw.rtlsim.harness import Unit, axis, simulate
    from bdnn_hw.rtlsim.synth import synthesize
    width, depth = 8, 3000
    beats = np.random.default_rng(3).integers(0, 256, (5000, 1), dtype=np.uint32)
    runs, syn = {}, {}
    for block in (0, 1):
        d = tmp_path / f"b{block}"
        d.mkdir()
        (d / "fifo_top.sv").write_text(
            f"module fifo_top (input logic clk, input logic rst_n, input logic [{width - 1}:0] in_tdata,\n"
            f"  input logic in_tvalid, output logic in_tready, output logic [{width - 1}:0] out_tdata,\n"
            f"  output logic out_tvalid, input logic out_tready, output logic [11:0] max_count);\n"
            f"  logic [11:0] cur;\n"
            f"  stream_fifo #(.WIDTH({width}), .DEPTH({depth}), .BLOCK({block})) f (.clk, .rst_n, .limit(12'd{depth}),\n"
            f"    .in_tdata, .in_tvalid, .in_tready, .out_tdata, .out_tvalid, .out_tready, .max_count, .cur_count(cur));\n"
            "endmodule\n")
        unit = Unit(top="fifo_top", files=(str(HDL / "stream_fifo.sv"), str(d / "fifo_top.sv")),
                    inputs=(axis("in", width, style="rtllib"),), outputs=(axis("out", width, style="rtllib"),),
                    clocks=("clk",), reset_n="rst_n", run_dir=str(d), probes=("max_count",))
        runs[block] = [simulate(unit, [beats], [len(beats)], stall_in=s_in, stall_out=s_out, seed=7, record_beat_cycles=True)
                       for s_in, s_out in ((0, 0), (40, 20), (10, 60))]
        syn[block] = synthesize("fifo_top", list(unit.files), str(d))
    for lut_run, block_run in zip(runs[0], runs[1]):
        np.testing.assert_array_equal(block_run.outputs[0], beats)
        np.testing.assert_array_equal(lut_run.outputs[0], block_run.outputs[0])
        np.testing.assert_array_equal(lut_run.stats["beat_cycles"], block_run.stats["beat_cycles"])
        assert lut_run.stats["probes"] == block_run.stats["probes"]
    assert runs[0][2].stats["probes"]["max_count"] > 100  # the slow reader really filled it
    print({b: {k: syn[b][k] for k in ("lut", "lutram", "ff", "bram36")} for b in syn})
    assert syn[1]["bram36"] > 0 and syn[1]["lutram"] == 0


def _fifo_unit(d, width, depth, block, bits):
    from bdnn_hw.rtl import HDL
    from bdnn_hw.rtlsim.harness import Unit, axis
    c = int(np.ceil(np.log2(depth + 1)))
    (d / "fifo_top.sv").write_text(
        f"module fifo_top (input logic clk, input logic rst_n, input logic [{width - 1}:0] in_tdata,\n"
        f"  input logic in_tvalid, output logic in_tready, output logic [{width - 1}:0] out_tdata,\n"
        f"  output logic out_tvalid, input logic out_tready, output logic [{c - 1}:0] max_count);\n"
        f"  logic [{c - 1}:0] cur;\n"
        f"  stream_fifo #(.WIDTH({width}), .DEPTH({depth}), .BLOCK({block}), .BITS({bits})) f (.clk, .rst_n,\n"
        f"    .limit({c}'d{depth}), .in_tdata, .in_tvalid, .in_tready, .out_tdata, .out_tvalid, .out_tready,\n"
        f"    .max_count, .cur_count(cur));\n"
        "endmodule\n")
    return Unit(top="fifo_top", files=(str(HDL / "stream_fifo.sv"), str(d / "fifo_top.sv")),
                inputs=(axis("in", width, style="rtllib"),), outputs=(axis("out", width, style="rtllib"),),
                clocks=("clk",), reset_n="rst_n", run_dir=str(d), probes=("max_count",))


def test_stream_fifo_stores_only_the_data_bits_of_padded_beats(tmp_path):
    """A 1-bit stream travels in 8-bit AXI beats: stream_fifo BITS = 1 stores one bit per beat (the
    dense block's long bypass FIFOs shrink 8x), passes the data bit and zeroes the padding, with the
    same timing as the full-width FIFO, in LUT RAM and block RAM; yosys needs less block RAM for it."""
    from bdnn_hw.rtlsim.harness import simulate
    from bdnn_hw.rtlsim.synth import synthesize
    width, depth = 8, 20000
    beats = np.random.default_rng(5).integers(0, 256, (24000, 1), dtype=np.uint32)
    timing, bram = {}, {}
    for block in (0, 1):
        for bits in (1, 8):
            d = tmp_path / f"b{block}_{bits}"
            d.mkdir()
            unit = _fifo_unit(d, width, depth, block, bits)
            r = simulate(unit, [beats], [len(beats)], stall_in=5, stall_out=60, seed=7, record_beat_cycles=True)
            np.testing.assert_array_equal(r.outputs[0], beats & ((1 << bits) - 1))
            timing[block, bits] = r.stats["beat_cycles"]
            if block:
                bram[bits] = synthesize("fifo_top", list(unit.files), str(d))["bram36"]
    for key in timing:
        np.testing.assert_array_equal(timing[key], timing[0, 8])
    print(bram)
    assert 0 < bram[1] <= bram[8] / 4  # 20,000 x 1 bit: 1 BRAM36; x 8 bits: 4.5


def test_shrink_widest_bisects_the_widest_fifos_within_its_budget():
    """Step (6) of the sizing on a stand-in simulator: each FIFO has a hidden least depth that
    keeps the throughput; the widest ones end within 2x of it, never below it, the kept ones
    (bypasses) and the tiny ones untouched, and no more simulations than the budget."""
    from bdnn_hw.rtl.stitched_sim import shrink_widest
    need = {"wide": 5, "mid": 2, "bypass": 3, "tiny": 2, "deep": 40}
    depths = {"wide": 128, "mid": 64, "bypass": 900, "tiny": 8, "deep": 128}
    width = {"wide": 576, "mid": 192, "bypass": 32, "tiny": 1, "deep": 64}
    calls = []

    def passes(name, d):
        calls.append(name)
        return all(d[e] >= need[e] for e in d)
    got, n = shrink_widest(depths, width, {"bypass"}, passes, budget=100)
    assert got["bypass"] == 900 and got["tiny"] == 8          # kept; under the share threshold
    assert got["mid"] == 2 and n == 3
    for e in ("wide", "deep"):
        assert need[e] <= got[e] <= 2 * need[e], (e, got[e])
    assert len(calls) == len(set(calls))                      # every candidate named once
    # a budget stops it early; whatever it did keep passes
    calls.clear()
    got2, _ = shrink_widest(depths, width, {"bypass"}, passes, budget=2)
    assert len(calls) == 2 and passes("check", got2)
    # a FIFO that needs its full depth stays there
    got3, n3 = shrink_widest({"a": 16}, {"a": 8}, set(), lambda _, d: d["a"] >= 16)
    assert got3 == {"a": 16} and n3 == 0


def test_hierarchical_synthesis_counts_each_instance(tmp_path):
    """synthesize(hierarchy=True) keeps the module boundaries and counts every instance of the top
    with its submodules: the instances plus the top's own cells make the whole; a deeper FIFO costs
    more than a shallow one of the same width; the breakdown script names the kinds."""
    import importlib.util
    from bdnn_hw.rtl import HDL
    from bdnn_hw.rtlsim.synth import synthesize
    ports = []
    body = []
    for name, depth in (("e1_fifo", 2), ("e2_fifo", 64)):
        ports += [f"input logic [15:0] {name}_in, input logic {name}_iv, output logic {name}_ir",
                  f"output logic [15:0] {name}_out, output logic {name}_ov, input logic {name}_or"]
        body.append(f"  logic [6:0] {name}_m, {name}_c;\n"
                    f"  stream_fifo #(.WIDTH(16), .DEPTH({depth})) {name} (.clk, .rst_n, .limit(7'd{depth}),\n"
                    f"    .in_tdata({name}_in), .in_tvalid({name}_iv), .in_tready({name}_ir), .out_tdata({name}_out),\n"
                    f"    .out_tvalid({name}_ov), .out_tready({name}_or), .max_count({name}_m), .cur_count({name}_c));")
    (tmp_path / "two_top.sv").write_text("module two_top (input logic clk, input logic rst_n,\n  "
                                         + ",\n  ".join(ports) + ");\n" + "\n".join(body) + "\nendmodule\n")
    r = synthesize("two_top", [str(HDL / "stream_fifo.sv"), str(tmp_path / "two_top.sv")], str(tmp_path), hierarchy=True)
    inst = r["instances"]
    assert set(inst) == {"e1_fifo", "e2_fifo"}, inst
    assert sum(v["lut"] for v in inst.values()) <= r["lut"] and r["lut"] - sum(v["lut"] for v in inst.values()) < 10
    assert inst["e2_fifo"]["lut"] > inst["e1_fifo"]["lut"] > 0
    from pathlib import Path
    script = Path(__file__).resolve().parents[1] / "scripts" / "synth_breakdown.py"
    spec = importlib.util.spec_from_file_location("synth_breakdown", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.instance_kind("e81_fifo").startswith("FIFOs")
    assert mod.instance_kind("MVAU_hls_2_wrom").startswith("weight ROMs")
    assert mod.instance_kind("MVAU_hls_12_i").startswith("binary matrix units")
    assert mod.instance_kind("StreamingDataWidthConverter_rtl_4_i") == "width converters (FINN)"
    kinds = mod.group(inst)
    assert kinds["FIFOs (stream_fifo)"]["instances"] == 2


def test_memory_policy_puts_large_roms_and_deep_fifos_in_block_ram():
    """The stitched design's placement on top of the config's ram_style: both boards keep weight
    ROMs of >= 100 kbit in BRAM (a 1152 x 128 ROM left to yosys became ~6.5k LUTs on the PYNQ-Z2),
    smaller ones as configured; only the Ultra96 moves deep FIFOs."""
    from bdnn_hw.boards import get_board
    from bdnn_hw.rtl.stitch import MemoryPolicy
    for key in ("pynq-z2", "ultra96"):
        b = get_board(key)
        pol = MemoryPolicy(b.rtl_fifo_block_min_depth, b.rtl_rom_block_min_bits)
        assert pol.rom_style("auto", 1152 * 128) == "block"
        assert pol.rom_style("distributed", 576 * 64) == "distributed"
        assert pol.rom_style("ultra", 10) == "block"
    z2 = get_board("pynq-z2")
    assert not MemoryPolicy(z2.rtl_fifo_block_min_depth, z2.rtl_rom_block_min_bits).fifo_in_block(4096)
    assert MemoryPolicy(1024, None).fifo_in_block(1024) and not MemoryPolicy(1024, None).fifo_in_block(1023)
    assert MemoryPolicy().rom_style("auto", 10**7) == "auto"


@pytest.mark.parametrize("style", ["auto", "distributed", "block"])
def test_mvau_with_its_weights_inside_equals_the_streamed_one(tmp_path, style):
    """bnn_mvau WEIGHTS = "rom" (the stitched design's on-chip weights, read at the unit's own step
    address) against the XNOR popcount and against the same unit fed by a weight stream: equal
    outputs free-running and under 30 % random stalls, and no slower (one step per cycle)."""
    from bdnn_hw.rtl import HDL
    from bdnn_hw.rtl.stitch import write_hex
    from bdnn_hw.rtlsim.harness import Unit, axis, simulate
    mw, mh, simd, pe, ob, n = 24, 8, 8, 2, 6, 7
    sf, nf = mw // simd, mh // pe
    rng = np.random.default_rng(3)
    w = rng.integers(0, 2, (mh, mw))
    x = rng.integers(0, 2, (n, mw))
    want = (x[:, None, :] == w[None, :, :]).sum(-1)                       # (n, mh) matches
    bits = lambda v: int("".join(str(int(b)) for b in v[::-1]), 2)       # lane 0 in the low bit
    words = np.array([[bits(w[f * pe:(f + 1) * pe, s * simd:(s + 1) * simd].reshape(-1))] for f in range(nf) for s in range(sf)],
                     np.uint32)
    beats = np.array([[bits(x[v, s * simd:(s + 1) * simd])] for v in range(n) for s in range(sf)], np.uint32)
    expect = np.array([[sum(int(want[v, f * pe + p]) << (p * ob) for p in range(pe))] for v in range(n) for f in range(nf)], np.uint32)
    write_hex(words, pe * simd, tmp_path / "w.dat")
    p = f".MW({mw}), .MH({mh}), .SIMD({simd}), .PE({pe}), .OUT_BITS({ob}), .GROUP(4), .TREE_PER_STAGE(1)"
    (tmp_path / "tops.sv").write_text(
        "module rom_top (input logic clk, rst_n, input logic [7:0] in_tdata, input logic in_tvalid, output logic in_tready,\n"
        "  output logic [15:0] out_tdata, output logic out_tvalid, input logic out_tready);\n"
        f"  bnn_mvau #({p}, .WEIGHTS(\"rom\"), .W_INIT(\"{tmp_path / 'w.dat'}\"), .W_STYLE(\"{style}\")) u (.clk, .rst_n,\n"
        "    .in_tdata, .in_tvalid, .in_tready, .w_tdata('0), .w_tvalid(1'b0), .w_tready(), .out_tdata, .out_tvalid, .out_tready);\n"
        "endmodule\n"
        "module stream_top (input logic clk, rst_n, input logic [7:0] in_tdata, input logic in_tvalid, output logic in_tready,\n"
        "  input logic [15:0] w_tdata, input logic w_tvalid, output logic w_tready,\n"
        "  output logic [15:0] out_tdata, output logic out_tvalid, input logic out_tready);\n"
        f"  bnn_mvau #({p}) u (.*);\nendmodule\n")
    files = tuple(str(HDL / f) for f in ("bnn_mvau.sv", "bnn_rom.sv", "stream_fifo.sv")) + (str(tmp_path / "tops.sv"),)
    rom = Unit(top="rom_top", files=files, inputs=(axis("in", 8, style="rtllib"),), outputs=(axis("out", 16, style="rtllib"),),
               clocks=("clk",), reset_n="rst_n", run_dir=str(tmp_path / "rom"))
    streamed = Unit(top="stream_top", files=files, inputs=(axis("in", 8, style="rtllib"), axis("w", 16, style="rtllib")),
                    outputs=(axis("out", 16, style="rtllib"),), clocks=("clk",), reset_n="rst_n", run_dir=str(tmp_path / "stream"))
    for d in ("rom", "stream"):
        (tmp_path / d).mkdir()
    cycles = {}
    for name, u, ins in (("rom", rom, [beats]), ("stream", streamed, [beats, np.tile(words, (n, 1))])):
        for stall, seed in ((0, 0), (30, 5)):
            r = simulate(u, ins, [len(expect)], stall_in=stall, stall_out=stall, seed=seed)
            np.testing.assert_array_equal(r.outputs[0], expect, err_msg=f"{name}, stall {stall}")
            if stall == 0:
                cycles[name] = r.cycles
    assert cycles["rom"] <= cycles["stream"] + 2, cycles
    assert cycles["rom"] <= n * sf * nf + 20, cycles          # one step per cycle
