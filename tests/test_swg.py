"""The project's sliding-window generator (hw/rtl/hdl/bnn_swg.sv) against an im2col model in FINN's
stream orders (itself checked against FINN's own generator's execution), free-running and under
random back-pressure, frames back to back; its cycle count against FINN's own SWG's; the buffer
depth rule at its limit (one beat under a window is rejected, the smallest legal buffer is exact)."""
from __future__ import annotations

import numpy as np
import pytest

from bdnn_hw.rtl.swg import SWGShape, pack, unit, windows

pytestmark = pytest.mark.rtlsim

SHAPES = [
    SWGShape(c=1, simd=1, h=8, w=8, k=3, s=1, bits=8),                 # the first layer (UINT8, one channel)
    SWGShape(c=16, simd=4, h=7, w=6, k=3, s=1),                        # a dense block's conv
    SWGShape(c=8, simd=8, h=5, w=5, k=3, s=1),                         # SIMD = C
    SWGShape(c=16, simd=2, h=7, w=7, k=2, s=2, depthwise=True),        # pooling, odd size (a row and column unused)
    SWGShape(c=8, simd=4, h=6, w=6, k=2, s=2, depthwise=True),
    SWGShape(c=6, simd=3, h=5, w=4, k=3, s=1, bits=2),                 # multi-bit lanes
    SWGShape(c=16, simd=1, h=12, w=12, k=3, s=1),                      # LUT RAM in 64-row banks (8)
    SWGShape(c=32, simd=1, h=16, w=16, k=3, s=1),                      # 19 banks: two levels of choice
]


def finn_swg_node(sh: SWGShape):
    """FINN's ConvolutionInputGenerator_rtl for the same shape (its cycle model and Python execution)."""
    from onnx import helper
    from qonnx.custom_op.registry import getCustomOp
    dt = "BINARY" if sh.bits == 1 else f"UINT{sh.bits}"
    n = helper.make_node("ConvolutionInputGenerator_rtl", ["x"], ["y"], domain="finn.custom_op.fpgadataflow.rtl",
                         ConvKernelDim=[sh.k, sh.k], IFMChannels=sh.c, IFMDim=[sh.h, sh.w], OFMDim=[sh.oh, sh.ow],
                         SIMD=sh.simd, Stride=[sh.s, sh.s], Dilation=[1, 1], inputDataType=dt, outputDataType=dt,
                         depthwise=int(sh.depthwise))
    return n, getCustomOp(n)


def finn_swg_cycles(sh: SWGShape) -> int:
    return int(finn_swg_node(sh)[1].get_exp_cycles())


def swg_op_cycles(sh: SWGShape) -> int:
    """The project's custom op's cycle model (what FINN's FIFO sizing and folding see)."""
    from qonnx.custom_op.registry import getCustomOp
    n, _ = finn_swg_node(sh)
    from bdnn_hw.rtl.ops import DOMAIN
    n.op_type, n.domain = "ConvolutionInputGenerator_bdnn_rtl", DOMAIN
    return int(getCustomOp(n).get_exp_cycles())


def _frames(sh: SWGShape, n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2 ** sh.bits, (n, sh.h, sh.w, sh.c), dtype=np.uint32)


def _run(sh, x, work, stall=0, seed=0, depth=0, block=0):
    from bdnn_hw.rtlsim.harness import simulate
    ref = windows(x, sh)
    r = simulate(unit(sh, work / f"d{depth}b{block}", depth, bool(block)), [pack(x.reshape(-1, sh.simd), sh)], [len(ref)],
                 stall_in=stall, stall_out=stall, seed=seed)
    return r, pack(ref, sh)


@pytest.mark.parametrize("sh", SHAPES, ids=lambda s: f"c{s.c}s{s.simd}_{s.h}x{s.w}_k{s.k}s{s.s}_b{s.bits}{'_dw' if s.depthwise else ''}")
def test_swg_equals_im2col_under_random_stalls(sh, tmp_path):
    """Three frames back to back, free-running and with 10 % / 40 % random gaps and back-pressure:
    every window beat in FINN's order; free-running, one beat per cycle plus a start-up of about one
    window span (no stall between windows)."""
    x = _frames(sh, 3, seed=sh.c + sh.h)
    for stall, seed in ((0, 0), (10, 1), (40, 2)):
        r, ref = _run(sh, x, tmp_path, stall, seed)
        np.testing.assert_array_equal(r.outputs[0], ref, err_msg=f"stall {stall}")
        if stall == 0:
            # never slower than FINN's own RTL SWG (its cycle model, per frame) on the same shape
            assert r.cycles <= 3 * finn_swg_cycles(sh) + 10, (r.cycles, finn_swg_cycles(sh))
    # one frame alone: the custom op's cycle model is an upper bound within 4 cycles
    one, _ = _run(sh, x[:1], tmp_path)
    exp = swg_op_cycles(sh)
    assert exp - 4 <= one.cycles <= exp, (one.cycles, exp)


def test_swg_in_block_ram_equals_the_lutram_one(tmp_path):
    sh = SWGShape(c=16, simd=4, h=7, w=6, k=3, s=1)
    x = _frames(sh, 2, seed=5)
    a, ref = _run(sh, x, tmp_path, 30, 4, block=0)
    b, _ = _run(sh, x, tmp_path, 30, 4, block=1)
    np.testing.assert_array_equal(a.outputs[0], ref)
    np.testing.assert_array_equal(b.outputs[0], ref)


def test_a_buffer_smaller_than_a_window_is_rejected_and_the_smallest_legal_one_is_exact(tmp_path):
    from bdnn_hw.rtlsim.harness import SimError
    sh = SWGShape(c=16, simd=4, h=7, w=6, k=3, s=1)
    with pytest.raises(SimError, match="DEPTH"):
        _run(sh, _frames(sh, 1, 0), tmp_path, depth=sh.span + 1)   # cannot hold a window and the write in flight
    # the smallest legal buffer still streams exactly (the writer just waits more)
    r, ref = _run(sh, _frames(sh, 2, 1), tmp_path, 20, 3, depth=sh.span + 2)
    np.testing.assert_array_equal(r.outputs[0], ref)
    assert sh.depth > sh.span + 2


@pytest.mark.parametrize("sh", [SHAPES[1], SHAPES[3]], ids=["conv", "pool_dw"])
def test_the_reference_orders_are_finns(sh):
    """windows() is FINN's own ConvolutionInputGenerator_rtl execution (its Python model, in the
    folded stream shape) on the same input: the orders the generator is tested against are FINN's."""
    node, op = finn_swg_node(sh)
    op.set_nodeattr("exec_mode", "cppsim")
    x = _frames(sh, 1, seed=7).astype(np.float32)
    ctx = {"x": x, "y": np.zeros((1, sh.oh, sh.ow, sh.k * sh.k * sh.c), np.float32)}
    op.execute_node(ctx, None)
    got = np.asarray(ctx["y"]).reshape(-1, sh.simd)
    np.testing.assert_array_equal(got, windows(x, sh))


@pytest.mark.parametrize("sh", [SWGShape(c=64, simd=16, h=12, w=12, k=3, s=1), SWGShape(c=256, simd=2, h=7, w=7, k=3, s=1)],
                         ids=["lutram", "banked"])
def test_the_ops_lut_model_is_within_20_percent_of_yosys(sh, tmp_path):
    """What the --rtl-only folding search prices a generator at, against yosys on the same unit."""
    from bdnn_hw.rtl.ops import project_lut_estimate
    from bdnn_hw.rtl.swg import hdl_files, wrapper_source
    from bdnn_hw.rtlsim.synth import synthesize
    (tmp_path / "top.sv").write_text(wrapper_source(sh, "swg_top"))
    got = synthesize("swg_top", [*hdl_files(), str(tmp_path / "top.sv")], str(tmp_path), family="xc7")["lut"]
    est = project_lut_estimate(finn_swg_node(sh)[0], "xc7z020clg400-1")
    assert abs(est - got) <= 0.2 * got, (est, got)
