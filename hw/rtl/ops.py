"""FINN custom ops for the project's RTL: the HLS-only layers as ``*_bdnn_rtl`` nodes.

Each op is FINN's layer class (MVAU, Pool, DuplicateStreams, StreamingConcat, and FINN's RTL
sliding-window generator: the same attributes, shapes, folding and Python execution as the op it
replaces) with FINN's
``RTLBackend``: ``generate_hdl`` writes the node's wrapper (``wrappers.wrapper_source``, module named
after the node) and copies the project's SystemVerilog into the node's code generation folder;
``get_rtl_file_list`` lists them (so the project's lint, Verilator executor, stitched design and
yosys flow see them as ordinary RTL nodes); ``code_generation_ipi`` adds them to a Vivado block
design (the MVAU through FINN's own hierarchy with the memstream for decoupled weights);
``lut_estimation`` is an analytical model of the RTL. Importing this module registers the ops in
FINN's RTL domain (``finn.custom_op.fpgadataflow.rtl``, through FINN's own ``register_custom_op``),
because FINN's passes (PrepareIP, stitching) recognize RTL nodes by that domain: a process that
loads a graph with these nodes imports ``bdnn_hw.rtl.ops`` first (the project's flow does).

``SelectProjectRTL`` swaps the supported HLS nodes of a folded graph for these ops (after folding:
FINN's SetFolding knows only its own op types); the build does it with ``--rtl-only``.
"""
from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
from qonnx.transformation.base import Transformation

from finn.custom_op.fpgadataflow.concat import StreamingConcat
from finn.custom_op.fpgadataflow.duplicatestreams import DuplicateStreams
from finn.custom_op.fpgadataflow.matrixvectoractivation import MVAU
from finn.custom_op.fpgadataflow.pool import Pool
from finn.custom_op.fpgadataflow.rtl import register_custom_op
from finn.custom_op.fpgadataflow.rtl.convolutioninputgenerator_rtl import ConvolutionInputGenerator_rtl
from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend

from .wrappers import UnsupportedNode, wrapper_source

DOMAIN = "finn.custom_op.fpgadataflow.rtl"
HLS_TO_PROJECT = {"MVAU_hls": "MVAU_bdnn_rtl", "Pool_hls": "Pool_bdnn_rtl",
                  "DuplicateStreams_hls": "DuplicateStreams_bdnn_rtl",
                  "StreamingConcat_hls": "StreamingConcat_bdnn_rtl",
                  "ConvolutionInputGenerator_rtl": "ConvolutionInputGenerator_bdnn_rtl"}


class _ProjectRTL(RTLBackend):
    """What the four ops share: generated wrapper + library files, Python execution, IPI."""

    _base = None  # the generic FINN layer class

    def get_nodeattr_types(self):
        from ..timing.pipeline import GROUP_ATTR, TREE_ATTR
        return {**self._base.get_nodeattr_types(self), **RTLBackend.get_nodeattr_types(self),
                GROUP_ATTR: ("i", False, 0), TREE_ATTR: ("i", False, 0)}   # the MVAU's pipelining

    def execute_node(self, context, graph):
        if self.get_nodeattr("exec_mode") == "rtlsim":
            raise NotImplementedError(f"{self.onnx_node.name}: FINN's rtlsim needs Vivado's simulator; "
                                      "simulate with bdnn_hw.rtlsim (Verilator) instead")
        self._base.execute_node(self, context, graph)

    def _sources(self):
        top, text, lib = wrapper_source(self.onnx_node, self, top=self.onnx_node.name, hls_op=self._hls_op)
        return top, text, lib

    def generate_hdl(self, model, fpgapart, clk):
        gen = Path(self.get_nodeattr("code_gen_dir_ipgen"))
        gen.mkdir(parents=True, exist_ok=True)
        top, text, lib = self._sources()
        for f in lib:
            shutil.copyfile(f, gen / Path(f).name)
        (gen / f"{top}_wrapper.sv").write_text(text)
        self.set_nodeattr("ipgen_path", str(gen))
        self.set_nodeattr("ip_path", str(gen))

    def get_rtl_file_list(self, abspath=False):
        _, _, lib = self._sources()
        names = [Path(f).name for f in lib] + [f"{self.onnx_node.name}_wrapper.sv"]
        if not abspath:
            return names
        gen = Path(self.get_nodeattr("code_gen_dir_ipgen"))
        return [str(gen / n) for n in names]

    def _add_files(self, cmd):
        for f in self.get_rtl_file_list(abspath=True):
            cmd.append(f"add_files -norecurse {f}")

    def code_generation_ipi(self):
        cmd = []
        self._add_files(cmd)
        cmd.append(f"create_bd_cell -type module -reference {self.onnx_node.name} {self.onnx_node.name}")
        return cmd


class _as_finn_mvau:
    """FINN generates memstream wrappers only for op types on its own list (MVAU_hls, MVAU_rtl, ...):
    present the node as MVAU_rtl for the duration of FINN's weight-infrastructure code."""

    def __init__(self, inst):
        self.node = inst.onnx_node

    def __enter__(self):
        self.op_type, self.node.op_type = self.node.op_type, "MVAU_rtl"

    def __exit__(self, *exc):
        self.node.op_type = self.op_type
        return False


def lutram_luts(width: int, depth: int) -> int:
    """LUTs of a simple dual-port LUTRAM as 7-series/UltraScale+ pack it: RAM32M (32 x 6 bits in 4
    LUTs) up to 32 deep, RAM64M (64 x 3 bits in 4 LUTs) per 64 rows beyond."""
    if depth <= 1:
        return 0
    if depth <= 32:
        return 4 * math.ceil(width / 6)
    return 4 * math.ceil(width / 3) * math.ceil(depth / 64)


@register_custom_op
class MVAU_bdnn_rtl(_ProjectRTL, MVAU):
    """Binary XNOR (or UINT x INT2 first-layer) matrix-vector unit, ``hdl/bnn_mvau.sv``."""
    _base, _hls_op = MVAU, "MVAU_hls"

    def generate_hdl(self, model, fpgapart, clk):
        _ProjectRTL.generate_hdl(self, model, fpgapart, clk)
        gen = self.get_nodeattr("code_gen_dir_ipgen")
        self.generate_params(model, gen)          # memblock.dat / input_1.npy, as FINN's MVAUs
        with _as_finn_mvau(self):                 # FINN's memstream wrapper for decoupled weights
            self.generate_infra_hdl(fpgapart)

    def code_generation_ipi(self):
        # FINN's MVAU builds the hierarchy (memstream for decoupled weights, or the external weight
        # port) and calls instantiate_ip for the core
        with _as_finn_mvau(self):
            return MVAU.code_generation_ipi(self)

    def instantiate_ip(self, cmd):
        self._add_files(cmd)
        node = self.onnx_node.name
        if self.get_nodeattr("mem_mode") in ("internal_decoupled", "dynamic", "external_mem"):
            cmd.append(f"create_bd_cell -type hier -reference {node} /{node}/{node}")
        else:
            cmd.append(f"create_bd_cell -type module -reference {node} {node}")

    def get_verilog_top_module_intf_names(self):
        intf = MVAU.get_verilog_top_module_intf_names(self)
        intf.pop("clk2x", None)  # one clock domain
        return intf

    def lut_estimation(self, fpgapart):
        """Per lane: XNOR + popcount tree + the input select (fresh input or replay buffer), or for
        the first layer an add/subtract of the pixel into the accumulator-wide adder tree; an
        accumulator per PE; control; the replay buffer (MW inputs, LUTRAM when SF > 1). Coefficients
        fitted to yosys on BDNN4's units of both boards' foldings (report.md compares per build)."""
        pe, simd = self.get_nodeattr("PE"), self.get_nodeattr("SIMD")
        sf = self.get_nodeattr("MW") // simd
        acc = self.get_accumulator_datatype().bitwidth()
        xnor = bool(self.get_nodeattr("binaryXnorMode"))
        in_bits = 1 if xnor else self.get_input_datatype(0).bitwidth()
        lanes = pe * simd * (2.9 if xnor else 3.5 * acc)
        replay = lutram_luts(simd * in_bits, sf) if sf > 1 else 0
        return int(math.ceil(lanes + pe * acc * 2 + 30 + replay))

    def dsp_estimation(self, fpgapart):
        return 0


@register_custom_op
class Pool_bdnn_rtl(_ProjectRTL, Pool):
    """Binary max-pool as OR over the SWG's window beats, ``hdl/bnn_pool_or.sv``.

    Its input is what FINN's depthwise RTL SWG emits (its Python model too): the window's channels
    interleaved by PE, (C/PE, K*K, PE) per output pixel; the Python model undoes that for FINN's
    generic Pool, as the HLS Pool consumes it in hardware."""
    _base, _hls_op = Pool, "Pool_hls"

    def execute_node(self, context, graph):
        node = self.onnx_node
        pe, ch = self.get_nodeattr("PE"), self.get_nodeattr("Channels")
        k2 = int(np.prod(self.get_nodeattr("KernelSize")))
        x = context[node.input[0]]
        plain = x.reshape(*x.shape[:-1], ch // pe, k2, pe).swapaxes(-3, -2).reshape(x.shape)
        ctx = {**context, node.input[0]: plain}
        _ProjectRTL.execute_node(self, ctx, graph)
        context[node.output[0]] = ctx[node.output[0]]

    def lut_estimation(self, fpgapart):
        return int(self.get_nodeattr("PE") * 2 + 8)


@register_custom_op
class DuplicateStreams_bdnn_rtl(_ProjectRTL, DuplicateStreams):
    """Two-way stream fork, ``hdl/stream_fork.sv``."""
    _base, _hls_op = DuplicateStreams, "DuplicateStreams_hls"

    def lut_estimation(self, fpgapart):
        return 4


@register_custom_op
class StreamingConcat_bdnn_rtl(_ProjectRTL, StreamingConcat):
    """Two-input channel concat, ``hdl/stream_concat.sv``."""
    _base, _hls_op = StreamingConcat, "StreamingConcat_hls"

    def lut_estimation(self, fpgapart):
        return int(self.get_instream_width_padded(0) + 12)


@register_custom_op
class ConvolutionInputGenerator_bdnn_rtl(_ProjectRTL, ConvolutionInputGenerator_rtl):
    """Sliding-window generator, ``hdl/bnn_swg.sv``, in place of FINN's RTL SWG (its default style):
    the same attributes, streams, beat orders and Python model (the depthwise channel interleave
    included), every condition between the handshakes and the buffer kept in a register."""
    _base, _hls_op = ConvolutionInputGenerator_rtl, "ConvolutionInputGenerator_rtl"

    def _shape(self):
        from .wrappers import swg_shape
        return swg_shape(self.onnx_node, self)

    def execute_node(self, context, graph):
        """FINN's Python model of its RTL SWG (the depthwise interleave included), whatever the
        exec_mode: FINN's runs it only under "cppsim" and otherwise leaves the output untouched."""
        if self.get_nodeattr("exec_mode") == "rtlsim":
            return super().execute_node(context, graph)   # the clear refusal
        mode = self.get_nodeattr("exec_mode")
        self.set_nodeattr("exec_mode", "cppsim")
        try:
            ConvolutionInputGenerator_rtl.execute_node(self, context, graph)
        finally:
            self.set_nodeattr("exec_mode", mode)

    def get_exp_cycles(self):
        """One frame alone: the first window's span, then one output beat per cycle (or the input,
        where it is longer: pooling windows with stride = kernel), plus the read pipeline and
        queue (test_swg checks it is an upper bound within 4 cycles of simulation)."""
        sh = self._shape()
        return int(max(sh.beats_in, sh.beats_out + sh.span) + 8)

    def bram_estimation(self, fpgapart):
        """BRAM18s (FINN's unit), the buffer at its best aspect ratio."""
        from .replay import bram18_for
        from .wrappers import swg_in_block_ram
        sh = self._shape()
        return bram18_for(sh.simd * sh.bits, sh.depth) if swg_in_block_ram(self, sh) else 0

    def lut_estimation(self, fpgapart):
        """Fitted to yosys on the eight SWG shapes of bdnn4-hw's PYNQ-Z2 design (bench_timing.py
        --swg, within 16 %): control and queue, per data bit of a beat, and for LUT RAM buffers per
        bit of each 64-row bank and per bank (write select, registered output, the bank choice)."""
        from .wrappers import swg_in_block_ram
        sh = self._shape()
        bits, banks = sh.simd * sh.bits, -(-sh.depth // 64)
        ultrascale = fpgapart.lower().startswith("xczu")
        if swg_in_block_ram(self, sh):
            return int(158 + (0.71 if ultrascale else 0.54) * bits)
        c0, cb, cbank, cnb = (129, 7.89, 0.75, 9.83) if ultrascale else (138, 2.94, 1.69, 4.84)
        return int(c0 + cb * bits + cbank * banks * bits + (cnb * banks if sh.depth > 128 else 0))

    def uram_estimation(self, fpgapart):
        return 0


PROJECT_OPS = {c.__name__: c for c in (MVAU_bdnn_rtl, Pool_bdnn_rtl, DuplicateStreams_bdnn_rtl, StreamingConcat_bdnn_rtl,
                                        ConvolutionInputGenerator_bdnn_rtl)}


class SelectProjectRTL(Transformation):
    """Swap every supported HLS node for the project's RTL op (same attributes and folding).
    Nodes the RTL does not cover (e.g. a non-binary MVAU) stay HLS and are listed in ``skipped``."""

    def __init__(self):
        super().__init__()
        self.skipped: list[str] = []

    def apply(self, model):
        from qonnx.custom_op.registry import getCustomOp
        for n in model.graph.node:
            if n.op_type not in HLS_TO_PROJECT:
                continue
            try:
                wrapper_source(n, getCustomOp(n))
            except UnsupportedNode as e:
                self.skipped.append(str(e))
                continue
            n.op_type, n.domain = HLS_TO_PROJECT[n.op_type], DOMAIN
            keep = [a for a in n.attribute if a.name not in ("code_gen_dir_cppsim", "code_gen_dir_ipgen", "executable_path",
                                                             "res_estimate", "ipgen_path", "ip_path")]
            del n.attribute[:]
            n.attribute.extend(keep)
        return model, False  # one pass converts every supported node (changed or not)


def project_lut_estimate(node, fpgapart: str) -> int:
    """The project op's analytical LUT estimate for an HLS node it would replace (same attributes),
    so the model can be checked against yosys on real units."""
    from onnx import NodeProto
    from qonnx.custom_op.registry import getCustomOp
    twin = NodeProto()
    twin.CopyFrom(node)
    twin.op_type, twin.domain = HLS_TO_PROJECT[node.op_type], DOMAIN
    return int(getCustomOp(twin).lut_estimation(fpgapart))

from . import replay_op  # noqa: E402,F401  (registers the weight-replaying DDR unit too)
