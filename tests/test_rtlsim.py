"""Open-tool hardware evidence: every RTL node kind FINN generates for a small dense BDNN,
simulated in Verilator on real FER2013 crops with random back-pressure and compared with FINN's
Python models; negative tests (corrupted memory files, a starved unit); yosys counts of a unit."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import codegen_small_dense

pytestmark = pytest.mark.rtlsim

RTL_KINDS = {"Thresholding_rtl", "FMPadding_rtl", "ConvolutionInputGenerator_rtl", "MVAU_hls/memstream"}


@pytest.fixture(scope="module")
def tiny_codegen(tmp_path_factory, private_crops, finn_build_dir):
    """A small dense BDNN with a final pool, code generated for the PYNQ-Z2, weights in memstreams."""
    fe, model, _ = codegen_small_dense(tmp_path_factory.mktemp("rtlsim_tiny"), private_crops[0], final_pool=2)
    return fe, model


def _python_output(fe, x):
    from bdnn_hw.flow import exec_graph
    return exec_graph(fe.hw_graph, x)


def test_every_rtl_node_kind_is_bit_exact_in_verilator_on_real_crops(tiny_codegen, private_crops):
    from bdnn_hw.rtlsim.execute import simulate_graph
    fe, model = tiny_codegen
    crops, _ = private_crops
    outputs = []
    for i in (0, 7):  # two faces' crops
        x = crops[i][None, :, :, None].astype(np.float32)
        out, rep = simulate_graph(model, x, seed=i, progress=False)
        sim = [r for r in rep.records if r.evidence == "verilator"]
        kinds = {r.kind for r in sim}
        print(f"\ncrop {i}: {len(sim)} RTL units simulated ({sorted(kinds)}), {rep.mismatches} mismatches, "
              f"{rep.seconds:.1f} s")
        for r in sim:
            print(f"  {r.node:36s} cycles {r.cycles:>8,} (FINN est {r.est_cycles or 0:>8,}), "
                  f"back-pressured {r.cycles_backpressure:>8,}")
        assert RTL_KINDS <= kinds
        assert not rep.errors, rep.errors
        assert rep.mismatches == 0
        assert all(r.elements > 0 for r in sim)
        # back-pressure really happened: every unit took longer under it
        assert all(r.cycles_backpressure > r.cycles for r in sim if r.cycles > 50)
        # the measured cycles are the folding's: within 25 % of FINN's estimate for the big units
        big = [r for r in sim if (r.est_cycles or 0) > 5000]
        assert big and all(0.75 < r.cycles / r.est_cycles < 1.25 for r in big), [(r.node, r.cycles, r.est_cycles) for r in big]
        ref = _python_output(fe, x)
        np.testing.assert_array_equal(out.reshape(-1), ref.reshape(-1))
        outputs.append(out.reshape(-1))
    assert not np.array_equal(outputs[0], outputs[1]), "degenerate: both crops give the same output"


def _unit_files(model, node_name: str) -> Path:
    from qonnx.custom_op.registry import getCustomOp
    return Path(getCustomOp(model.get_node_from_name(node_name)).get_nodeattr("code_gen_dir_ipgen"))


@pytest.mark.parametrize("kind", ["Thresholding_rtl", "MVAU_hls/memstream"])
def test_a_corrupted_memory_file_is_caught(tiny_codegen, private_crops, kind):
    """Flip one word of the generated threshold / weight memory file: the simulation must disagree
    with the graph (whose parameters come from the ONNX initializers, not from those files)."""
    from bdnn_hw.rtlsim.execute import simulate_graph
    from bdnn_hw.rtlsim.units import rtl_units
    fe, model = tiny_codegen
    crops, _ = private_crops
    unit = next(u for u in rtl_units(model) if u.kind == kind)
    node = unit.node.split("/")[0]
    gen = _unit_files(model, node)
    dat = sorted(gen.glob("*threshs*.dat") if kind == "Thresholding_rtl" else gen.glob("memblock.dat"))[0]
    original = dat.read_text()
    lines = original.splitlines()
    width = len(lines[0].strip())
    mask = (1 << (4 * width)) - 1
    lines[0] = format(int(lines[0], 16) ^ mask, f"0{width}x")  # every bit of the first word flipped
    x = crops[3][None, :, :, None].astype(np.float32)
    try:
        dat.write_text("\n".join(lines) + "\n")
        _, rep = simulate_graph(model, x, only={node}, progress=False)
    finally:
        dat.write_text(original)
    rec = next(r for r in rep.records if r.node == unit.node)
    print(f"\n{unit.node}: {dat.name} word 0 flipped -> {rec.mismatches} mismatching elements of {rec.elements}")
    assert rec.mismatches > 0
    _, rep = simulate_graph(model, x, only={node}, progress=False)  # restored file: clean again
    assert rep.mismatches == 0


def test_a_starved_unit_reports_a_deadlock_instead_of_hanging(tiny_codegen):
    from bdnn_hw.rtlsim.harness import SimError, simulate
    from bdnn_hw.rtlsim.units import output_beats, pack_input, rtl_units
    from qonnx.custom_op.registry import getCustomOp
    _, model = tiny_codegen
    u = next(u for u in rtl_units(model) if u.kind == "FMPadding_rtl")
    inst = getCustomOp(model.get_node_from_name(u.node))
    x = np.random.default_rng(0).integers(0, 256, inst.get_normal_input_shape()).astype(np.float32)
    beats = pack_input(inst, 0, x)
    ok = simulate(u.unit, [beats], [output_beats(inst)], idle_limit=2000)
    assert len(ok.outputs[0]) == output_beats(inst)
    with pytest.raises(SimError, match="DEADLOCK"):
        simulate(u.unit, [beats[: len(beats) // 2]], [output_beats(inst)], idle_limit=2000)


def test_a_paced_input_offers_beats_no_faster_than_its_period(tiny_codegen):
    """``pace_in0`` (the FIFO sizing's source at the design's own rate): same outputs, and the
    last input beat cannot enter before cycle (beats - 1) * period."""
    from bdnn_hw.rtlsim.harness import simulate
    from bdnn_hw.rtlsim.units import output_beats, pack_input, rtl_units
    from qonnx.custom_op.registry import getCustomOp
    _, model = tiny_codegen
    u = next(u for u in rtl_units(model) if u.kind == "FMPadding_rtl")
    inst = getCustomOp(model.get_node_from_name(u.node))
    beats = pack_input(inst, 0, np.random.default_rng(1).integers(0, 256, inst.get_normal_input_shape()).astype(np.float32))
    free = simulate(u.unit, [beats], [output_beats(inst)])
    paced = simulate(u.unit, [beats], [output_beats(inst)], pace_in0=7.5)
    np.testing.assert_array_equal(free.outputs[0], paced.outputs[0])
    assert paced.cycles >= 7.5 * (len(beats) - 1) > 2 * free.cycles, (free.cycles, paced.cycles, len(beats))
    with pytest.raises(ValueError, match="pace_in0"):
        simulate(u.unit, [beats], [output_beats(inst)], pace_in0=-1)


def test_yosys_counts_an_rtl_unit(tiny_codegen):
    from bdnn_hw.rtlsim.synth import synthesize
    from bdnn_hw.rtlsim.units import rtl_units
    _, model = tiny_codegen
    units = rtl_units(model)
    thr = next(u for u in units if u.kind == "Thresholding_rtl")
    r = synthesize(thr.unit.top, list(thr.unit.files), thr.unit.run_dir)
    print(f"\n{thr.node}: {r}")
    assert r["lut"] > 0 and r["ff"] > 0 and r["bram36"] == 0
    assert all(c in r["cells"] for c in ("FDRE",)) and any(c.startswith("LUT") for c in r["cells"])
    # the LUTRAM-placed first layer's weights synthesize to LUT memory, not BRAM
    lut_mem = next(u for u in units if u.kind == "MVAU_hls/memstream")
    r2 = synthesize(lut_mem.unit.top, list(lut_mem.unit.files), lut_mem.unit.run_dir)
    print(f"{lut_mem.node}: {r2}")
    assert r2["lutram"] > 0 and r2["bram36"] == 0


@pytest.mark.parametrize("dtype,k,width", [("BINARY", 64, 64), ("BINARY", 9, 16), ("UINT8", 1, 8), ("UINT8", 9, 72),
                                           ("INT12", 8, 96), ("INT7", 3, 24), ("UINT13", 1, 16), ("INT32", 2, 64)])
def test_stream_packing_equals_finns(dtype, k, width):
    """The vectorized packing is FINN's npy_to_rtlsim_input / rtlsim_output_to_npy, bit for bit."""
    from qonnx.core.datatype import DataType
    from finn.util.data_packing import npy_to_rtlsim_input, rtlsim_output_to_npy
    from bdnn_hw.rtlsim.harness import from_words, to_words
    from bdnn_hw.rtlsim.units import pack_words, unpack_words
    dt = DataType[dtype]
    rng = np.random.default_rng(k)
    x = rng.integers(dt.min(), dt.max() + 1, (37, k)).astype(np.float32)
    ours = pack_words(x, dt.bitwidth(), width)
    finn = to_words(npy_to_rtlsim_input(x.reshape(37, k), dt, width), width)
    np.testing.assert_array_equal(ours, finn)
    back = unpack_words(ours, dt.bitwidth(), k, dt.signed())
    np.testing.assert_array_equal(back, x)
    ref = rtlsim_output_to_npy(from_words(ours, width), None, dt, (37, k), width, dt.bitwidth())
    np.testing.assert_array_equal(back, ref)
