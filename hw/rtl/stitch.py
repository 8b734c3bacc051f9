"""A stitched, all-RTL top level for a whole FINN HW graph, simulated in Verilator and synthesized
by yosys.

Every node becomes RTL: FINN's own ``*_rtl`` layers (SWG, Thresholding, FMPadding, width
converters) and the project's RTL for FINN's HLS-only layers (``wrappers``). Each decoupled MVAU
gets its weights from on-chip memory, BRAM or LUTRAM as the placement config put them: the
weights inside the project's MVAU (``bnn_mvau`` WEIGHTS = "rom", default) or FINN's memstream (``weight_memory="memstream"``, which
costs several word-wide pipeline registers per layer); each external-weight MVAU gets a top-level
weight stream port (what the DDR weight DMA delivers).
Every edge of the graph goes through a ``stream_fifo`` whose high-water mark is a top-level probe,
so FIFO depths can be sized by simulation (``size_fifos``). With ``runtime_limits`` each FIFO's
occupancy cap is a 32-bit top-level input (``<edge>_limit``) set when the simulation starts: the
sizing search compiles one design and tries every candidate depth on it.
Where the stitched design keeps its memories is a ``MemoryPolicy``: a board short of LUTs moves deep
FIFOs (``stream_fifo`` BLOCK = 1, the same cycle behaviour) and large weight ROMs to block RAM.
"""
from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..rtlsim.harness import Unit, axis
from ..rtlsim.units import memstream_files
from . import HDL
from .replay import REPLAY_OPS
from .wrappers import SUPPORTED, project_rtl_unit

TOP = "bdnn_top"
MVAU_OPS = ("MVAU_hls", "MVAU_bdnn_rtl")  # the project's MVAU core (as a wrapper or a FINN op) takes weights as a stream
WEIGHT_STREAM_OPS = MVAU_OPS + REPLAY_OPS  # the replay unit (replay_op.py): weights always a top-level stream
MIN_DEPTH = 2
# the top level's simulation probes (FIFO high-water marks and occupancies, their run-time caps, the
# activity flag): not part of the hardware, so synthesis drops them (and the logic only they use)
# and the timing estimate starts and ends no path there
PROBE_PORT_GLOBS = ("activity", "*_max", "*_cur", "*_limit")
PROBE_PORTS = "|".join(g.replace("*", ".*") for g in PROBE_PORT_GLOBS)
WEIGHT_MEMORIES = ("rom", "memstream")


@dataclass(frozen=True)
class MemoryPolicy:
    """The stitched design's own memory placement, on top of the placement config's ``ram_style``:
    FIFOs of at least ``fifo_block_min_depth`` entries and weight ROMs of at least
    ``rom_block_min_bits`` bits in block RAM (None: as the config / the tool decides)."""
    fifo_block_min_depth: int | None = None
    rom_block_min_bits: int | None = None

    def fifo_in_block(self, depth: int) -> bool:
        return self.fifo_block_min_depth is not None and depth >= self.fifo_block_min_depth

    def rom_style(self, configured: str, bits: int, depth: int = 0) -> str:
        if self.rom_block_min_bits is not None and bits >= self.rom_block_min_bits:
            return "block"
        if depth > LUT_ROM_MAX_DEPTH and RAM_STYLES[configured] != "block":
            return "block"   # a deeper read in LUTs is more levels than one clock allows (timing estimate)
        return RAM_STYLES[configured]


# a weight ROM in LUTs reads through LUT6 + MUXF7 + MUXF8 per bit up to 256 words; deeper ones were
# 7-12 LUT levels (bdnn4-hw's fc3, 8 x 7168: 8.5 ns at 100 MHz by the estimate), so they go to block RAM
LUT_ROM_MAX_DEPTH = 256
RAM_STYLES = {"auto": "auto", "block": "block", "distributed": "distributed", "ultra": "block"}  # no URAM on these parts


def prepare_graph(model, fpga_part: str, clk_ns: float):
    """FINN's width converters where neighbouring streams differ (as its stitched flow inserts
    them), specialized to RTL and code-generated; existing nodes keep their names and code."""
    from finn.transformation.fpgadataflow.insert_dwc import InsertDWC
    from finn.transformation.fpgadataflow.prepare_ip import PrepareIP
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
    from qonnx.transformation.general import GiveUniqueNodeNames
    model = model.transform(InsertDWC())
    model = model.transform(SpecializeLayers(fpga_part))
    model = model.transform(GiveUniqueNodeNames())
    model = model.transform(PrepareIP(fpga_part, clk_ns))
    return model


@dataclass
class Edge:
    name: str            # Verilog-safe edge id
    tensor: str
    src: tuple[str, int] | None   # (node, output index), None: the top's input
    dst: tuple[str, int] | None   # (node, input index), None: the top's output
    width: int           # the AXI stream's width (whole bytes)
    beats_per_crop: int
    depth: int = MIN_DEPTH
    data_bits: int = 0   # the bits of a beat that carry data (0: all of width); the FIFO stores these

    @property
    def stored_bits(self) -> int:
        return self.data_bits or self.width


@dataclass
class StitchedDesign:
    top: str
    files: list[str]
    edges: list[Edge]
    weight_ports: list[tuple[str, str, int]]     # (port prefix, MVAU node, width)
    run_dir: Path
    notes: list[str] = field(default_factory=list)
    runtime_limits: bool = False
    memory: MemoryPolicy = field(default_factory=MemoryPolicy)

    @property
    def settings(self) -> tuple[str, ...]:
        return tuple(f"{e.name}_limit" for e in self.edges) if self.runtime_limits else ()

    def limits(self, depths: dict[str, int]) -> dict[str, int]:
        """The run-time settings that make this (deep) design behave as FIFOs of ``depths``."""
        if not self.runtime_limits:
            raise ValueError("this design was stitched with fixed FIFO depths")
        bad = [e.name for e in self.edges if not MIN_DEPTH <= depths[e.name] <= e.depth]
        if bad:
            raise ValueError(f"FIFO depths outside [{MIN_DEPTH}, capacity] for {bad[:5]}")
        return {f"{e.name}_limit": int(depths[e.name]) for e in self.edges}

    def unit(self, in_width: int, out_width: int) -> Unit:
        ins = [axis("in0_V", in_width)] + [axis(p, w) for p, _, w in self.weight_ports]
        return Unit(top=self.top, files=tuple(self.files), inputs=tuple(ins), outputs=(axis("out0_V", out_width),),
                    run_dir=str(self.run_dir), activity="activity", settings=self.settings,
                    probes=tuple(f"{e.name}_{k}" for e in self.edges for k in ("max", "cur")))


_PORT = re.compile(r"^\s*(input|output)\b\s*(?:wire|logic|reg)?\s*(?:signed)?\s*(\[[^\]]*\])?\s*(\w+)\s*,?\s*$", re.M)


def _balanced(text: str, i: int) -> int:
    """Index just past the parenthesis group opening at text[i] == '('."""
    depth = 0
    for j in range(i, len(text)):
        depth += {"(": 1, ")": -1}.get(text[j], 0)
        if depth == 0:
            return j + 1
    raise ValueError("unbalanced parentheses")


def module_ports(path: str | Path, module: str) -> list[tuple[str, str]]:
    """(direction, name) of a module's ports, read from its (generated, simple) ANSI header."""
    text = re.sub(r"\(\*.*?\*\)", "", Path(path).read_text(), flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    m = re.search(rf"\bmodule\s+{module}\b\s*", text)
    if not m:
        raise ValueError(f"module {module} not found in {path}")
    i = m.end()
    if text[i] == "#":
        i = _balanced(text, text.index("(", i))
    i = text.index("(", i)
    header = text[i + 1:_balanced(text, i) - 1]
    return [(d, n) for d, _, n in _PORT.findall(header.replace(",", ",\n"))]


def _instance(module: str, inst_name: str, ports: list[tuple[str, str]], conns: dict[str, str]) -> str:
    lines = []
    for d, n in ports:
        if n in conns:
            lines.append(f".{n}({conns[n]})")
        elif d == "input":
            lines.append(f".{n}('0)")  # AXI-lite, set selectors and other unused inputs tied off
    return f"\t{module} {inst_name} (\n\t\t" + ",\n\t\t".join(lines) + "\n\t);"


def _stream_conns(port: str, wire: str) -> dict[str, str]:
    return {f"{port}_TDATA": f"{wire}_tdata", f"{port}_TVALID": f"{wire}_tvalid", f"{port}_TREADY": f"{wire}_tready"}


def graph_edges(model, depths: dict[str, int] | None = None) -> list[Edge]:
    """Every stream of the graph (graph input and output included) with its width and beats per
    crop; ``depths`` sets FIFO depths by edge name (default MIN_DEPTH)."""
    from qonnx.custom_op.registry import getCustomOp
    g = model.graph
    producers = {o: (n.name, i) for n in g.node for i, o in enumerate(n.output)}
    edges: list[Edge] = []
    inst_of = {n.name: getCustomOp(n) for n in g.node}
    for n in g.node:
        inst = inst_of[n.name]
        n_streams = len(inst.get_verilog_top_module_intf_names()["s_axis"])
        if n.op_type in ("StreamingConcat_hls", "StreamingConcat_bdnn_rtl"):
            n_streams = len(n.input)
        for i, t in enumerate(n.input[: max(n_streams, 1)]):
            if model.get_initializer(t) is not None:
                continue
            src = producers.get(t)
            width = inst.get_instream_width_padded(i)
            beats = int(np.prod(inst.get_folded_input_shape(i)[:-1]))
            edges.append(Edge(f"e{len(edges)}", t, src, (n.name, i), width, beats,
                              data_bits=inst.get_instream_width(i)))
    out_t = g.output[0].name
    last = producers[out_t]
    li = inst_of[last[0]]
    edges.append(Edge(f"e{len(edges)}", out_t, last, None, li.get_outstream_width_padded(last[1]),
                      int(np.prod(li.get_folded_output_shape(last[1])[:-1])), data_bits=li.get_outstream_width(last[1])))
    for e in edges:
        e.depth = max(MIN_DEPTH, (depths or {}).get(e.name, MIN_DEPTH))
    return edges


def write_hex(words: np.ndarray, width: int, path: Path) -> None:
    """$readmemh file: one ``width``-bit word per line, from (beats, nwords) little-endian uint32 rows."""
    nd = -(-width // 4)
    Path(path).write_text("".join("".join(f"{int(x):08x}" for x in row[::-1])[-nd:] + "\n" for row in words))


def _weight_rom_file(model, node, inst, work: Path, cache: dict | None, memory: MemoryPolicy) -> tuple[str, str]:
    """The MVAU's weight words as a $readmemh file in ``work`` and the memory style they get:
    (path, style), what ``wrapper_source(weights_rom=...)`` puts inside the unit."""
    from ..rtlsim.units import weight_stream_golden
    words, _ = weight_stream_golden(model, node, inst, cache)
    f = work / f"{node.name}_weights.dat"
    write_hex(words, inst.get_instream_width_padded(1), f)
    style = memory.rom_style(inst.get_nodeattr("ram_style"), inst.get_nodeattr("MW") * inst.get_nodeattr("MH"), len(words))
    return str(f.resolve()), style


def stitch(model, work: Path, depths: dict[str, int] | None = None, runtime_limits: bool = False,
           weight_memory: str = "rom", weights: dict | None = None,
           memory: MemoryPolicy = MemoryPolicy()) -> StitchedDesign:
    """Write the top level (and the project RTL wrappers) into ``work``; ``depths``: each FIFO's
    depth (with ``runtime_limits``: its capacity, the depth used set at run time); ``weights``: a
    cache of packed weight streams shared by the designs of one graph; ``memory``: which FIFOs and
    weight ROMs go to block RAM regardless of the placement config."""
    from qonnx.custom_op.registry import getCustomOp

    from ..rtlsim.units import rtl_node_unit
    if weight_memory not in WEIGHT_MEMORIES:
        raise ValueError(f"weight_memory must be one of {WEIGHT_MEMORIES}, not {weight_memory!r}")
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    g = model.graph
    edges = graph_edges(model, depths)
    inst_of = {n.name: getCustomOp(n) for n in g.node}

    files: list[str] = []
    body: list[str] = []
    weight_ports: list[tuple[str, str, int]] = []
    first = next(e for e in edges if e.src is None)
    decls = ["\tinput\tlogic  ap_clk,", "\tinput\tlogic  ap_rst_n,",
             f"\tinput\tlogic [{first.width}-1:0]  in0_V_TDATA,", "\tinput\tlogic  in0_V_TVALID,", "\toutput\tlogic  in0_V_TREADY,"]
    wires: list[str] = []
    # per node: which wire feeds input i / takes output j
    in_wire = {e.dst: f"{e.name}_o" for e in edges if e.dst}
    out_wire = {e.src: f"{e.name}_i" for e in edges if e.src}
    for n in g.node:
        inst = inst_of[n.name]
        # on-chip weights of the project's MVAU: inside the unit (no weight stream)
        rom_inside = (n.op_type in MVAU_OPS and weight_memory == "rom"
                      and inst.get_nodeattr("mem_mode") == "internal_decoupled")
        if rom_inside:
            u = project_rtl_unit(n, inst, work, hls_op="MVAU_hls",
                                 weights_rom=_weight_rom_file(model, n, inst, work, weights, memory))
        elif n.op_type in SUPPORTED:
            u = project_rtl_unit(n, inst, work)
        elif n.op_type.endswith("_rtl"):
            u = rtl_node_unit(n, inst)
        else:
            raise ValueError(f"{n.name}: {n.op_type} has no RTL implementation")
        for f in u.unit.files:
            if f not in files:
                files.append(f)
        top_file = next(f for f in u.unit.files[::-1] if _declares(f, u.unit.top))
        conns = {"ap_clk": "ap_clk", "ap_rst_n": "ap_rst_n", "ap_clk2x": "ap_clk"}
        for s in u.unit.inputs:
            i = int(re.match(r"in(\d+)_V", s.data).group(1))
            if n.op_type in WEIGHT_STREAM_OPS and i == 1:
                continue
            conns.update(_stream_conns(f"in{i}_V", in_wire[(n.name, i)]))
        for j, s in enumerate(u.unit.outputs):
            conns.update(_stream_conns(f"out{j}_V", out_wire[(n.name, j)]))
        if n.op_type in WEIGHT_STREAM_OPS and not rom_inside:
            wname = f"{n.name}_w"
            wwidth = inst.get_instream_width_padded(1)
            wires.append(f"\tlogic [{wwidth}-1:0]  {wname}_tdata;\n\tlogic  {wname}_tvalid, {wname}_tready;")
            conns.update(_stream_conns("in1_V", wname))
            mode = inst.get_nodeattr("mem_mode")
            if mode == "internal_decoupled":
                gen = Path(inst.get_nodeattr("code_gen_dir_ipgen"))
                wrapper = gen / f"{n.name}_memstream_wrapper.v"
                for f in [*memstream_files(), str(wrapper)]:
                    if f not in files:
                        files.append(f)
                mtop = f"{n.name}_memstream_wrapper"
                mconns = {"ap_clk": "ap_clk", "ap_clk2x": "ap_clk", "ap_rst_n": "ap_rst_n",
                          "m_axis_0_tdata": f"{wname}_tdata", "m_axis_0_tvalid": f"{wname}_tvalid",
                          "m_axis_0_tready": f"{wname}_tready"}
                body.append(_instance(mtop, f"{n.name}_wstream", module_ports(wrapper, mtop), mconns))
            elif mode == "external":
                port = f"w{len(weight_ports)}_V"
                weight_ports.append((port, n.name, wwidth))
                decls += [f"\tinput\tlogic [{wwidth}-1:0]  {port}_TDATA,", f"\tinput\tlogic  {port}_TVALID,",
                          f"\toutput\tlogic  {port}_TREADY,"]
                # a two-entry FIFO on the port: ready and valid registered on both sides (the unit's ready
                # never reaches the DMA's logic, nor the DMA's valid the unit's), one word per cycle
                body.append(f"\tlogic [$clog2(3)-1:0]  {wname}_skid_max, {wname}_skid_cur;\n"
                            f"\tstream_fifo #(.WIDTH({wwidth}), .DEPTH(2)) {wname}_skid (.clk(ap_clk), .rst_n(ap_rst_n), "
                            f".limit($clog2(3)'(2)),\n\t\t.in_tdata({port}_TDATA), .in_tvalid({port}_TVALID), .in_tready({port}_TREADY),\n"
                            f"\t\t.out_tdata({wname}_tdata), .out_tvalid({wname}_tvalid), .out_tready({wname}_tready),\n"
                            f"\t\t.max_count({wname}_skid_max), .cur_count({wname}_skid_cur));")
            else:
                raise ValueError(f"{n.name}: mem_mode {mode!r} (the RTL MVAU takes its weights as a stream: "
                                 "internal_decoupled or external)")
        body.append(_instance(u.unit.top, f"{n.name}_i", module_ports(top_file, u.unit.top), conns))
        if u.unit.run_dir and Path(u.unit.run_dir).resolve() != work.resolve():
            # Thresholding reads its .dat files relative to the working directory
            for d in Path(u.unit.run_dir).glob("*.dat"):
                if d.name != "memblock.dat":
                    shutil.copyfile(d, work / d.name)
    lastw = edges[-1]
    decls += [f"\toutput\tlogic [{lastw.width}-1:0]  out0_V_TDATA,", "\toutput\tlogic  out0_V_TVALID,",
              "\tinput\tlogic  out0_V_TREADY,"]
    for e in edges:
        wires.append(f"\tlogic [{e.width}-1:0]  {e.name}_i_tdata, {e.name}_o_tdata;\n"
                     f"\tlogic  {e.name}_i_tvalid, {e.name}_i_tready, {e.name}_o_tvalid, {e.name}_o_tready;")
        decls.append(f"\toutput\tlogic [31:0]  {e.name}_max,")
        decls.append(f"\toutput\tlogic [31:0]  {e.name}_cur,")
        if runtime_limits:
            decls.append(f"\tinput\tlogic [31:0]  {e.name}_limit,")
        limit = f"$clog2({e.depth}+1)'({e.name}_limit)" if runtime_limits else f"$clog2({e.depth}+1)'({e.depth})"
        src = "in0_V" if e.src is None else None
        dst = "out0_V" if e.dst is None else None
        if src:
            body.append(f"\tassign {e.name}_i_tdata = in0_V_TDATA;\n\tassign {e.name}_i_tvalid = in0_V_TVALID;\n"
                        f"\tassign in0_V_TREADY = {e.name}_i_tready;")
        if dst:
            body.append(f"\tassign out0_V_TDATA = {e.name}_o_tdata;\n\tassign out0_V_TVALID = {e.name}_o_tvalid;\n"
                        f"\tassign {e.name}_o_tready = out0_V_TREADY;")
        body.append(f"\tlogic [$clog2({e.depth}+1)-1:0]  {e.name}_cnt, {e.name}_now;\n\tassign {e.name}_max = 32'({e.name}_cnt);\n"
                    f"\tassign {e.name}_cur = 32'({e.name}_now);\n"
                    f"\tstream_fifo #(.WIDTH({e.width}), .DEPTH({e.depth}), .BLOCK({int(memory.fifo_in_block(e.depth))}), "
                    f".BITS({e.stored_bits})) {e.name}_fifo (.clk(ap_clk), .rst_n(ap_rst_n), .limit({limit}),\n"
                    f"\t\t.in_tdata({e.name}_i_tdata), .in_tvalid({e.name}_i_tvalid), .in_tready({e.name}_i_tready),\n"
                    f"\t\t.out_tdata({e.name}_o_tdata), .out_tvalid({e.name}_o_tvalid), .out_tready({e.name}_o_tready),\n"
                    f"\t\t.max_count({e.name}_cnt), .cur_count({e.name}_now));")
    decls.append("\toutput\tlogic  activity")
    body.append("\tassign activity = " + " | ".join(
        f"({e.name}_i_tvalid & {e.name}_i_tready) | ({e.name}_o_tvalid & {e.name}_o_tready)" for e in edges) + ";")
    # the edge list ends with the output edge; the probe declarations end the port list
    text = (f"// generated by bdnn_hw.rtl.stitch: the whole HW graph as one all-RTL design\n"
            f"module {TOP} (\n" + "\n".join(decls) + "\n);\n" + "\n".join(wires) + "\n\n" + "\n\n".join(body) + "\nendmodule\n")
    (work / f"{TOP}.sv").write_text(text)
    fifo = str(HDL / "stream_fifo.sv")
    files = sorted(files, key=lambda f: 0 if f.endswith("_pkg.sv") else 1) + [fifo, str(work / f"{TOP}.sv")]
    import json
    (work / "design.json").write_text(json.dumps({"top": TOP, "files": files, "weight_ports": weight_ports,
                                                  "runtime_limits": runtime_limits, "weight_memory": weight_memory,
                                                  "memory_policy": memory.__dict__,
                                                  "edges": [e.__dict__ for e in edges]}, indent=1))
    return StitchedDesign(TOP, files, edges, weight_ports, work, runtime_limits=runtime_limits, memory=memory)


def _declares(path: str, module: str) -> bool:
    return re.search(rf"^\s*module\s+{module}\b", Path(path).read_text(), re.M) is not None
