"""The weight-replaying external-memory unit (``hdl/bnn_mvtu_replay.sv``) as a FINN node, and the
transformation that puts it in place of a DDR layer.

``MVTU_replay_rtl`` stands for a binary layer whose weights stream from DDR: for a 3x3 conv the
(SWG, MVAU external, single-step Thresholding) chain after FMPadding, for a fully connected layer
the (MVAU external, Thresholding) pair. Inputs: 0 the padded map (or the FC input vector), 1 the
weight matrix (MW x MH, FINN's MVAU layout; streamed once per batch at run time), 2 the thresholds
(MH x 1). Output: the thresholded bits, in FINN's MVAU output order. Python execution is the
replaced chain's arithmetic; the RTL is generated as a wrapper with FINN's stream names
(``in0_V`` map, ``in1_V`` weights, ``out0_V``), so the project's Verilator executor, stitched
design and yosys flow treat it like any RTL node.

``UseReplayUnits(batch)`` replaces every external XNOR MVAU (with its SWG and thresholds) by one.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from qonnx.core.datatype import DataType
from qonnx.transformation.base import Transformation

from finn.custom_op.fpgadataflow.rtl import register_custom_op
from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend

from . import HDL, replay
from ..timing.pipeline import GROUP_ATTR, TREE_ATTR
from .replay import OP_TYPE, ReplayShape


class MVTU_replay_rtl(RTLBackend):
    def get_nodeattr_types(self):
        return {**RTLBackend.get_nodeattr_types(self),
                "C": ("i", True, 0), "IFMDim": ("i", True, 0), "K": ("i", True, 1), "OFMDim": ("i", True, 0),
                "MW": ("i", True, 0), "MH": ("i", True, 0), "SIMD": ("i", True, 0), "PE": ("i", True, 0),
                "batch": ("i", True, 1),
                "inputDataType": ("s", False, "BINARY"), "weightDataType": ("s", False, "BINARY"),
                "outputDataType": ("s", False, "BINARY"),
                "mem_mode": ("s", False, "external", {"external"}),
                "replaced": ("strings", False, []),   # the nodes it stands for, for reports
                GROUP_ATTR: ("i", False, 0), TREE_ATTR: ("i", False, 0)}   # the popcount's pipelining (0: default)

    def shape(self) -> ReplayShape:
        g = self.get_nodeattr
        tree = g(TREE_ATTR)
        return ReplayShape(c=g("C"), ifm_dim=g("IFMDim"), k=g("K"), ofm_dim=g("OFMDim"), mh=g("MH"),
                           simd=g("SIMD"), pe=g("PE"), batch=g("batch"),
                           group=g(GROUP_ATTR) if tree else None, tree_per_stage=tree or None)

    # -- shapes and streams --------------------------------------------------------------------
    def _is_fc(self) -> bool:
        return self.get_nodeattr("IFMDim") == 1 and self.get_nodeattr("K") == 1

    def get_normal_input_shape(self, ind=0):
        s = self.shape()
        if ind == 1:
            return (s.mw, s.mh)
        if ind == 2:
            return (s.mh, 1)
        return (1, s.mw) if self._is_fc() else (1, s.ifm_dim, s.ifm_dim, s.c)

    def get_normal_output_shape(self, ind=0):
        s = self.shape()
        return (1, s.mh) if self._is_fc() else (1, s.ofm_dim, s.ofm_dim, s.mh)

    def get_folded_input_shape(self, ind=0):
        s = self.shape()
        if ind == 1:
            return (1, s.nf * s.sf, s.pe * s.simd)
        return (1, s.cf, s.simd) if self._is_fc() else (1, s.ifm_dim, s.ifm_dim, s.cf, s.simd)

    def get_folded_output_shape(self, ind=0):
        s = self.shape()
        return (1, s.nf, s.pe) if self._is_fc() else (1, s.ofm_dim, s.ofm_dim, s.nf, s.pe)

    def get_instream_width(self, ind=0):
        s = self.shape()
        return {0: s.simd, 1: s.pe * s.simd}.get(ind, 0)

    def get_outstream_width(self, ind=0):
        return self.shape().pe

    def get_input_datatype(self, ind=0):
        return DataType[self.get_nodeattr("weightDataType" if ind == 1 else "inputDataType")]

    def get_output_datatype(self, ind=0):
        return DataType[self.get_nodeattr("outputDataType")]

    def get_number_output_values(self):
        return int(np.prod(self.get_folded_output_shape()[:-1]))

    def make_shape_compatible_op(self, model):
        return super().make_const_shape_op(self.get_normal_output_shape())

    def infer_node_datatype(self, model):
        model.set_tensor_datatype(self.onnx_node.output[0], self.get_output_datatype())

    def verify_node(self):
        self.shape()  # raises ValueError with the reason
        return []

    # -- behaviour -----------------------------------------------------------------------------
    def execute_node(self, context, graph):
        if self.get_nodeattr("exec_mode") == "rtlsim":
            raise NotImplementedError(f"{self.onnx_node.name}: simulate with bdnn_hw.rtlsim (Verilator)")
        s = self.shape()
        node = self.onnx_node
        w, t = np.asarray(context[node.input[1]]), np.asarray(context[node.input[2]])  # initializers
        x = np.asarray(context[node.input[0]]).reshape(-1, s.ifm_dim, s.ifm_dim, s.c)
        out = replay.reference(np.rint(x).astype(np.uint8), np.rint(w).astype(np.uint8).T, t.reshape(-1), s)
        context[node.output[0]] = out.reshape(self.get_normal_output_shape()).astype(np.float32)

    def get_exp_cycles(self):
        """Steps per crop (the batch's steps / B); a batch leaves B crops' latency later."""
        s = self.shape()
        return s.cycles_per_batch // s.batch

    def ddr_bytes_per_crop(self) -> float:
        return self.shape().ddr_bytes_per_crop() * self.get_input_datatype(1).bitwidth()

    def bram_estimation(self, fpgapart=None):
        return self.shape().bram18()

    def lut_estimation(self, fpgapart=None):
        """XNOR-popcount lanes (the refitted MVAU_bdnn_rtl rate) + accumulator/threshold RAMs + control."""
        s = self.shape()
        b = s.buffer_bits()
        return int(2.9 * s.pe * s.simd + (b["accumulators"] + b["thresholds"]) / 64 + 300)

    # -- RTL -------------------------------------------------------------------------------------
    def _thresholds_file(self) -> Path:
        return Path(self.get_nodeattr("code_gen_dir_ipgen")) / f"{self.onnx_node.name}_thresholds.dat"

    def generate_hdl(self, model, fpgapart, clk):
        gen = Path(self.get_nodeattr("code_gen_dir_ipgen"))
        gen.mkdir(parents=True, exist_ok=True)
        s = self.shape()
        replay.write_thresholds(np.asarray(model.get_initializer(self.onnx_node.input[2])).reshape(-1), s,
                                self._thresholds_file())
        for f in replay.LIBRARY:
            shutil.copyfile(HDL / f, gen / f)
        name = self.onnx_node.name
        (gen / f"{name}_wrapper.sv").write_text(replay.wrapper_source(s, name, self._thresholds_file()))
        self.set_nodeattr("ipgen_path", str(gen))
        self.set_nodeattr("ip_path", str(gen))

    def get_rtl_file_list(self, abspath=False):
        """The library modules and the wrapper; with ``abspath`` the library's own copies, so a design
        with several replay nodes (the stitched top, yosys) declares each module once."""
        wrapper = f"{self.onnx_node.name}_wrapper.sv"
        if not abspath:
            return [*replay.LIBRARY, wrapper]
        gen = Path(self.get_nodeattr("code_gen_dir_ipgen"))
        return [*(str(HDL / f) for f in replay.LIBRARY), str(gen / wrapper)]

    def code_generation_ipi(self):
        files = " ".join(self.get_rtl_file_list(abspath=True))
        return [f"add_files -norecurse {files}",
                f"create_bd_cell -type module -reference {self.onnx_node.name} {self.onnx_node.name}"]

    def get_verilog_top_module_intf_names(self):
        intf = super().get_verilog_top_module_intf_names()
        intf["s_axis"] = [("in0_V", self.get_instream_width_padded(0)), ("in1_V", self.get_instream_width_padded(1))]
        return intf


register_custom_op(MVTU_replay_rtl)


def weight_stream(model, node, n_crops: int, cache: dict | None = None) -> np.ndarray:
    """What the DDR weight DMA delivers to a replay node for ``n_crops`` crops: the matrix once per
    batch, in FINN's weight-stream word layout."""
    from qonnx.custom_op.registry import getCustomOp
    s = getCustomOp(node).shape()
    if n_crops % s.batch:
        raise ValueError(f"{node.name}: {n_crops} crops is not a whole number of batches of {s.batch} "
                         "(the host pads the last batch)")
    key = (node.name, "replay")
    if cache is None or key not in cache:
        words = replay.pack_weights(np.rint(model.get_initializer(node.input[1])).astype(np.uint8).T, s)
        if cache is None:
            return np.tile(words, (n_crops // s.batch, 1))
        cache[key] = words
    return np.tile(cache[key], (n_crops // s.batch, 1))


MAX_SIMD = 256


def replay_lanes(c: int, mh: int, simd: int, pe: int) -> tuple[int, int]:
    """(SIMD, PE) of the replay unit for an MVAU folded at ``simd`` x ``pe`` over ``c`` input
    channels and ``mh`` outputs: SIMD divides the channels (the unit walks whole pixels), at most
    MAX_SIMD, and PE (a divisor of ``mh``) makes up at least the MVAU's lanes, so the unit is never
    slower than the folding asked for (BDNN4's block4.conv2 at SIMD 768 over 512 channels had
    become 512 lanes, 115,200 instead of 76,800 cycles per crop)."""
    lanes = simd * pe
    simd = max(d for d in range(1, min(simd, c) + 1) if c % d == 0)
    # same lanes, narrower input word: FINN's width converter from a 1-bit stream to more than
    # 256 bits crashes Verilator 5.48 (internal error in vpc.sv), so the stitched simulation could not run
    while simd > MAX_SIMD and simd % 2 == 0 and mh % (2 * pe) == 0:
        simd, pe = simd // 2, 2 * pe
    more = [d for d in range(pe, mh + 1) if mh % d == 0 and d * simd >= lanes]
    return simd, (more[0] if more else pe)


class UseReplayUnits(Transformation):
    """Every external-weight XNOR MVAU with its single-step Thresholding (and, for a conv, the SWG
    before it) becomes one ``MVTU_replay_rtl`` of ``batch`` crops with the MVAU's PE x SIMD lanes
    (SIMD made to divide the channels and at most MAX_SIMD, PE taking the rest). Run on a folded,
    specialized HW graph."""

    def __init__(self, batch: int = 5, keep_external: set[str] | frozenset[str] = frozenset()):
        """``keep_external``: MVAU node names that stay in FINN's external weight mode."""
        super().__init__()
        if batch < 1:
            raise ValueError(f"replay batch must be >= 1 crop, got {batch}")
        self.batch = batch
        self.keep_external = frozenset(keep_external)

    def apply(self, model):
        from onnx import helper
        from qonnx.custom_op.registry import getCustomOp
        for mv in model.graph.node:
            if not mv.op_type.startswith("MVAU") or mv.name in self.keep_external:
                continue
            mi = getCustomOp(mv)
            if mi.get_nodeattr("mem_mode") != "external" or not mi.get_nodeattr("binaryXnorMode"):
                continue
            th = model.find_consumer(mv.output[0])
            if th is None or not th.op_type.startswith("Thresholding") or getCustomOp(th).get_nodeattr("numSteps") != 1:
                continue
            ti = getCustomOp(th)
            if ti.get_nodeattr("ActVal") != 0:
                continue
            swg = model.find_producer(mv.input[0])
            conv = swg is not None and swg.op_type.startswith("ConvolutionInputGenerator")
            mw, mh = mi.get_nodeattr("MW"), mi.get_nodeattr("MH")
            if conv:
                si = getCustomOp(swg)
                k = si.get_nodeattr("ConvKernelDim")[0]
                ifm, ofm, c = si.get_nodeattr("IFMDim")[0], si.get_nodeattr("OFMDim")[0], si.get_nodeattr("IFMChannels")
                if si.get_nodeattr("Stride") != [1, 1] or si.get_nodeattr("Dilation") != [1, 1]:
                    continue
                src, removed = swg.input[0], [swg, mv, th]
            else:
                k, ifm, ofm, c, src, removed = 1, 1, 1, mw, mv.input[0], [mv, th]
            simd, pe = replay_lanes(c, mh, mi.get_nodeattr("SIMD"), mi.get_nodeattr("PE"))
            node = helper.make_node(
                OP_TYPE, [src, mv.input[1], th.input[1]], [th.output[0]], domain="finn.custom_op.fpgadataflow.rtl",
                backend="fpgadataflow", name=f"{OP_TYPE}_{mv.name}", C=c, IFMDim=ifm, K=k, OFMDim=ofm, MW=mw, MH=mh,
                SIMD=simd, PE=pe, batch=self.batch,
                inputDataType="BINARY", weightDataType="BINARY",
                outputDataType=ti.get_nodeattr("outputDataType"), replaced=[n.name for n in removed])
            ReplayShape(c=c, ifm_dim=ifm, k=k, ofm_dim=ofm, mh=mh, simd=simd, pe=pe, batch=self.batch)
            idx = list(model.graph.node).index(removed[0])
            for n in removed:
                model.graph.node.remove(n)
            model.graph.node.insert(idx, node)
            return model, True
        return model, False
