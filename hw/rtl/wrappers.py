"""Per-node wrappers: the project's RTL module for one HLS node of a FINN HW graph, with FINN's
port names (``in0_V``, ``out0_V``, ...) and padded stream widths, parameters from the node.

Covered: MVAU_hls (binary XNOR or UINT x bipolar, weights as a stream: FINN's internal_decoupled /
external contract, so FINN's memstream or a DDR stream feeds them), Pool_hls (binary max),
DuplicateStreams_hls (two outputs), StreamingConcat_hls (two inputs), and FINN's own
ConvolutionInputGenerator_rtl (its default, one-beat-per-cycle style: the project's ``bnn_swg``
has the same streams and orders and shorter paths between registers).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..rtlsim.harness import Unit, axis
from ..rtlsim.units import NodeUnit
from . import HDL

SUPPORTED = ("MVAU_hls", "Pool_hls", "DuplicateStreams_hls", "StreamingConcat_hls", "ConvolutionInputGenerator_rtl")


class UnsupportedNode(ValueError):
    pass


def _p(inst, ind=0, out=False) -> int:
    return inst.get_outstream_width_padded(ind) if out else inst.get_instream_width_padded(ind)


def _port(name: str, width: int, direction: str) -> str:
    src, snk = ("input", "output") if direction == "in" else ("output", "input")
    return (f"\t{src}\tlogic [{width}-1:0]  {name}_TDATA,\n\t{src}\tlogic  {name}_TVALID,\n"
            f"\t{snk}\tlogic  {name}_TREADY")


def _conn(inner: str, outer: str) -> str:
    return f".{inner}_tdata({outer}_TDATA), .{inner}_tvalid({outer}_TVALID), .{inner}_tready({outer}_TREADY)"


def wrapper_source(node, inst, top: str | None = None, hls_op: str | None = None,
                   weights_rom: tuple[str, str] | None = None) -> tuple[str, str, list[str]]:
    """(top module name, SystemVerilog text, library files) for one supported HLS node (or for
    the project's op that replaced it: ``hls_op`` names the HLS op type then). ``weights_rom``
    (an MVAU only): (the weight words' $readmemh file, the memory style): the weights inside the
    unit (bnn_mvau WEIGHTS = "rom"), no weight port."""
    from qonnx.core.datatype import DataType
    op = hls_op or node.op_type
    top = top or f"{node.name}_bdnn_rtl"
    if op == "MVAU_hls":
        idt, odt, wdt = inst.get_input_datatype(0), inst.get_output_datatype(), inst.get_input_datatype(1)
        xnor = bool(inst.get_nodeattr("binaryXnorMode"))
        if xnor and wdt not in (DataType["BIPOLAR"], DataType["BINARY"]):
            raise UnsupportedNode(f"{node.name}: XNOR mode with {wdt} weights")
        if not xnor and (idt.signed() or not wdt.signed() or wdt.bitwidth() == 1):
            raise UnsupportedNode(f"{node.name}: non-XNOR MVAUs need unsigned inputs and signed integer weights")
        if inst.get_nodeattr("noActivation") != 1:
            raise UnsupportedNode(f"{node.name}: thresholds inside the MVAU (the build keeps them standalone)")
        params = dict(MW=inst.get_nodeattr("MW"), MH=inst.get_nodeattr("MH"), SIMD=inst.get_nodeattr("SIMD"),
                      PE=inst.get_nodeattr("PE"), IN_BITS=1 if xnor else idt.bitwidth(), OUT_BITS=odt.bitwidth(),
                      W_BITS=1 if xnor else wdt.bitwidth(), **mvau_pipeline_params(node, xnor),
                      IN_WIDTH=_p(inst, 0), W_WIDTH=_p(inst, 1), OUT_WIDTH=_p(inst, 0, True))
        lib = ["bnn_mvau.sv", "stream_fifo.sv"]
        if weights_rom is None:
            ports = [_port("in0_V", _p(inst, 0), "in"), _port("in1_V", _p(inst, 1), "in"), _port("out0_V", _p(inst, 0, True), "out")]
            w = _conn("w", "in1_V")
        else:
            init, style = weights_rom
            params.update(WEIGHTS='"rom"', W_INIT=f'"{init}"', W_STYLE=f'"{style}"')
            ports = [_port("in0_V", _p(inst, 0), "in"), _port("out0_V", _p(inst, 0, True), "out")]
            w = ".w_tdata('0), .w_tvalid(1'b0), .w_tready()"
            lib.append("bnn_rom.sv")
        body = f"bnn_mvau #({_params(params)}) core (.clk(ap_clk), .rst_n(ap_rst_n), {_conn('in', 'in0_V')}, {w}, {_conn('out', 'out0_V')});"
    elif op == "Pool_hls":
        if inst.get_nodeattr("Function") != "MaxPool" or inst.get_input_datatype() != DataType["BINARY"]:
            raise UnsupportedNode(f"{node.name}: only binary max-pool")
        params = dict(PE=inst.get_nodeattr("PE"), K2=int(np.prod(inst.get_nodeattr("KernelSize"))), WIDTH=_p(inst, 0))
        if _p(inst, 0) != _p(inst, 0, True):
            raise UnsupportedNode(f"{node.name}: input and output streams differ in width")
        ports = [_port("in0_V", _p(inst, 0), "in"), _port("out0_V", _p(inst, 0, True), "out")]
        body = f"bnn_pool_or #({_params(params)}) core (.clk(ap_clk), .rst_n(ap_rst_n), {_conn('in', 'in0_V')}, {_conn('out', 'out0_V')});"
        lib = ["bnn_pool_or.sv"]
    elif op == "DuplicateStreams_hls":
        if inst.get_nodeattr("NumOutputStreams") != 2:
            raise UnsupportedNode(f"{node.name}: only two-way forks")
        w = _p(inst, 0)
        ports = [_port("in0_V", w, "in"), _port("out0_V", w, "out"), _port("out1_V", w, "out")]
        body = f"stream_fork #(.WIDTH({w})) core (.clk(ap_clk), .rst_n(ap_rst_n), {_conn('in', 'in0_V')}, {_conn('out0', 'out0_V')}, {_conn('out1', 'out1_V')});"
        lib = ["stream_fork.sv"]
    elif op == "StreamingConcat_hls":
        chans, simd = inst.get_nodeattr("ChannelsPerStream"), inst.get_nodeattr("SIMD")
        if len(chans) != 2 or _p(inst, 0) != _p(inst, 1):
            raise UnsupportedNode(f"{node.name}: only two inputs of equal stream width")
        w = _p(inst, 0)
        params = dict(WIDTH=w, N0=chans[0] // simd, N1=chans[1] // simd)
        ports = [_port("in0_V", w, "in"), _port("in1_V", w, "in"), _port("out0_V", w, "out")]
        body = f"stream_concat #({_params(params)}) core (.clk(ap_clk), .rst_n(ap_rst_n), {_conn('in0', 'in0_V')}, {_conn('in1', 'in1_V')}, {_conn('out', 'out0_V')});"
        lib = ["stream_concat.sv"]
    elif op == "ConvolutionInputGenerator_rtl":
        from .swg import MODULE, hdl_files
        sh = swg_shape(node, inst)
        ports = [_port("in0_V", sh.width, "in"), _port("out0_V", sh.width, "out")]
        params = sh.params(block=swg_in_block_ram(inst, sh))
        body = f"{MODULE} #({_params(params)}) core (.clk(ap_clk), .rst_n(ap_rst_n), {_conn('in', 'in0_V')}, {_conn('out', 'out0_V')});"
        lib = [Path(f).name for f in hdl_files()]
    else:
        raise UnsupportedNode(f"{node.name}: {op} has no project RTL")
    text = (f"// generated by bdnn_hw.rtl.wrappers for FINN node {node.name} ({op})\n"
            f"module {top} (\n\tinput\tlogic  ap_clk,\n\tinput\tlogic  ap_rst_n,\n" + ",\n".join(ports) +
            f"\n);\n\t{body}\nendmodule\n")
    return top, text, [str(HDL / f) for f in lib]


def swg_shape(node, inst):
    """The bnn_swg shape of a FINN sliding-window node; UnsupportedNode for what it does not do
    (several pixels per beat, dilation, run-time shapes, non-square kernels or strides)."""
    from .swg import SWGShape
    why = []
    if inst.get_nodeattr("parallel_window"):
        why.append("parallel_window (several window beats per cycle)")
    if inst.get_nodeattr("dynamic_mode"):
        why.append("dynamic_mode (run-time shapes)")
    if inst.get_nodeattr("M") != 1:
        why.append("M > 1 (several pixels per beat)")
    if list(inst.get_nodeattr("Dilation")) != [1, 1]:
        why.append("dilation")
    (kh, kw), (sh_, sw) = inst.get_nodeattr("ConvKernelDim"), inst.get_nodeattr("Stride")
    if kh != kw or sh_ != sw:
        why.append("a non-square kernel or stride")
    h, w = inst.get_nodeattr("IFMDim")
    bits = inst.get_input_datatype().bitwidth()
    if not why:
        sh = SWGShape(c=inst.get_nodeattr("IFMChannels"), simd=inst.get_nodeattr("SIMD"), h=h, w=w, k=kh, s=sh_,
                      bits=bits, depthwise=bool(inst.get_nodeattr("depthwise")))
        if [sh.oh, sh.ow] != list(inst.get_nodeattr("OFMDim")):
            why.append(f"OFMDim {inst.get_nodeattr('OFMDim')} is not the unpadded windows' {[sh.oh, sh.ow]}")
        elif sh.width != _p(inst, 0) or sh.width != _p(inst, 0, True):
            why.append("stream widths other than SIMD x bits (byte-padded) in and out")
    if why:
        raise UnsupportedNode(f"{node.name}: bnn_swg does not cover " + ", ".join(why))
    return sh


def swg_in_block_ram(inst, sh) -> bool:
    """The node's ram_style: block / ultra -> block RAM; distributed and auto -> LUT RAM. Auto
    follows what FINN's own RTL generator synthesizes to in these designs (LUT RAM, no block RAM):
    the boards' block RAM goes to weights, and bnn_swg's banked LUT RAM meets both clocks."""
    return inst.get_nodeattr("ram_style") in ("block", "ultra")


def mvau_pipeline_params(node, xnor: bool) -> dict:
    """bnn_mvau's GROUP / TREE_PER_STAGE: what the build's SetPipelineDepths put on the node, else the
    deepest characterized pipelining (it meets the fastest clock the project builds for)."""
    from onnx import helper

    from ..timing.pipeline import DEFAULT_FAMILY, DEFAULT_MHZ, GROUP_ATTR, TREE_ATTR, mvau_pipeline
    got = {a.name: helper.get_attribute_value(a) for a in node.attribute if a.name in (GROUP_ATTR, TREE_ATTR)}
    if len(got) == 2:
        return {"GROUP": int(got[GROUP_ATTR]), "TREE_PER_STAGE": int(got[TREE_ATTR])}
    return mvau_pipeline(DEFAULT_FAMILY, DEFAULT_MHZ, xnor).params()


def _params(p: dict) -> str:
    return ", ".join(f".{k}({v})" for k, v in p.items())


def project_rtl_unit(node, inst, work: Path, hls_op: str | None = None,
                     weights_rom: tuple[str, str] | None = None) -> NodeUnit:
    """Write the node's wrapper into ``work`` and describe it as a simulatable unit (``hls_op``,
    ``weights_rom``: as in ``wrapper_source``)."""
    top, text, lib = wrapper_source(node, inst, f"{node.name}_bdnn_rtl", hls_op, weights_rom)
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    f = work / f"{top}.sv"
    if not f.exists() or f.read_text() != text:
        f.write_text(text)
    intf = inst.get_verilog_top_module_intf_names()
    ins = [axis(n, w) for n, w in intf["s_axis"]]
    if (hls_op or node.op_type) == "MVAU_hls":   # the weight stream is a port of ours in every mem_mode ...
        ins = ins[:1] + ([axis("in1_V", _p(inst, 1))] if weights_rom is None else [])   # ... unless inside
    kind = (hls_op or node.op_type).rsplit("_", 1)[0] + "/bdnn_rtl"
    return NodeUnit(node.name, kind,
                    Unit(top=top, files=(*lib, str(f)), inputs=tuple(ins),
                         outputs=tuple(axis(n, w) for n, w in intf["m_axis"]), run_dir=str(work)))


def project_rtl_units(model, work: Path) -> list[NodeUnit]:
    from qonnx.custom_op.registry import getCustomOp
    units = []
    for n in model.graph.node:
        if n.op_type in SUPPORTED:
            units.append(project_rtl_unit(n, getCustomOp(n), work))
    return units
