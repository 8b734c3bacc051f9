"""The RTL units of a code-generated FINN graph and how to drive each one.

A unit is either an ``*_rtl`` node (Thresholding, FMPadding, ConvolutionInputGenerator, ...) with
the finn-rtllib sources it instantiates, or the memstream weight streamer FINN generates for an
MVAU whose weights are ``internal_decoupled`` (the MVAU itself is HLS C++: no open tool compiles it).

Stream contracts follow FINN's own rtlsim (``RTLBackend.execute_node``): an input tensor is
reshaped to the node's folded input shape and packed innermost-dimension-first with
``npy_to_rtlsim_input``; outputs are unpacked with ``rtlsim_output_to_npy``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .harness import Unit, axis


@dataclass
class NodeUnit:
    node: str                 # FINN node name
    kind: str                 # e.g. "Thresholding_rtl", "MVAU_hls/memstream"
    unit: Unit


def module_name(path: str | Path) -> str:
    """The first module a generated file declares (wrappers are named after the node, not the file)."""
    m = re.search(r"^\s*module\s+(\w+)", Path(path).read_text(), re.M)
    return m.group(1) if m else Path(path).stem


def _rtllib() -> Path:
    from finn.util.settings import get_settings
    return Path(get_settings().finn_rtllib)


def memstream_files() -> list[str]:
    lib = _rtllib()
    return [str(lib / "axi/hdl/axilite.sv"), str(lib / "memstream/hdl/memstream.sv"),
            str(lib / "memstream/hdl/memstream_axi.sv")]


def rtl_node_unit(node, inst) -> NodeUnit:
    gen = Path(inst.get_nodeattr("code_gen_dir_ipgen"))
    files = [f for f in inst.get_rtl_file_list(abspath=True) if str(f).endswith((".v", ".sv"))]
    mine = [Path(f) for f in files if Path(f).parent == gen]
    wrappers = [f for f in mine if f.stem.endswith("_wrapper")]
    plain_v = [f for f in mine if f.suffix == ".v"]
    top = module_name((wrappers or plain_v or mine)[-1]) if mine else node.name
    intf = inst.get_verilog_top_module_intf_names()
    ins = [axis(name, w) for name, w in intf["s_axis"]]
    if node.op_type == "MVAU_bdnn_rtl" and len(ins) == 1:
        # the project's MVAU core always takes its weights as a stream (FINN's memstream feeds it)
        ins.append(axis("in1_V", inst.get_instream_width_padded(1)))
    return NodeUnit(node.name, node.op_type, Unit(
        top=top, files=tuple(str(f) for f in files),
        inputs=tuple(ins),
        outputs=tuple(axis(name, w) for name, w in intf["m_axis"]),
        run_dir=str(gen)))  # Thresholding reads its .dat files relative to the working directory


def memstream_unit(node, inst) -> NodeUnit | None:
    gen = Path(inst.get_nodeattr("code_gen_dir_ipgen") or "")
    wrapper = gen / f"{node.name}_memstream_wrapper.v"
    if not wrapper.exists():
        return None
    width = inst.get_instream_width(1)
    return NodeUnit(node.name + "/memstream", node.op_type + "/memstream", Unit(
        top=module_name(wrapper), files=(*memstream_files(), str(wrapper)), inputs=(),
        outputs=(axis("m_axis_0", -(-width // 8) * 8, style="rtllib"),),
        clocks=("ap_clk", "ap_clk2x"), run_dir=str(gen)))


def rtl_units(model) -> list[NodeUnit]:
    """Every generated RTL unit of a code-generated model, in graph order."""
    from qonnx.custom_op.registry import getCustomOp

    from ..rtl import ops  # noqa: F401  (registers the project's RTL ops with FINN)
    units = []
    for n in model.graph.node:
        inst = getCustomOp(n)
        if n.op_type.endswith("_rtl") and hasattr(inst, "get_rtl_file_list"):
            units.append(rtl_node_unit(n, inst))
        ms = memstream_unit(n, inst)
        if ms is not None:
            units.append(ms)
    return units


# -- stream packing (FINN's contract, vectorized) ----------------------------------------------
# FINN packs the innermost dimension of a folded tensor into one stream beat, element 0 in the
# least significant bits (``npy_to_rtlsim_input(..., reverse_inner=True)``), each element as its
# datatype's two's-complement bit pattern. FINN's own functions go through hex strings (minutes for
# one big SWG stream); these do the same with numpy bit operations on 32-bit words, the harness's
# beat format. ``tests/test_rtlsim.py`` checks them against FINN's on every datatype used here.
def pack_words(values: np.ndarray, bits: int, stream_width: int) -> np.ndarray:
    """(beats, k) integer elements -> (beats, ceil(stream_width/32)) uint32 words."""
    v = np.asarray(values).astype(np.int64).reshape(values.shape[0], -1)
    beats, k = v.shape
    if k * bits > stream_width:
        raise ValueError(f"{k} x {bits}-bit elements do not fit a {stream_width}-bit stream")
    nw = max(1, -(-stream_width // 32))
    u = v & ((1 << bits) - 1)
    b = ((u[:, :, None] >> np.arange(bits, dtype=np.int64)) & 1).astype(np.uint8).reshape(beats, k * bits)
    full = np.zeros((beats, nw * 32), dtype=np.uint8)
    full[:, : k * bits] = b
    return np.packbits(full, axis=1, bitorder="little").view("<u4").reshape(beats, nw).astype(np.uint32)


def unpack_words(words: np.ndarray, bits: int, k: int, signed: bool) -> np.ndarray:
    """(beats, nwords) uint32 words -> (beats, k) int64 elements."""
    w = np.ascontiguousarray(words, dtype="<u4")
    b = np.unpackbits(w.view(np.uint8).reshape(w.shape[0], -1), axis=1, bitorder="little")[:, : k * bits]
    vals = (b.reshape(-1, k, bits).astype(np.int64) << np.arange(bits, dtype=np.int64)).sum(-1)
    if signed:
        vals = np.where(vals >= (1 << (bits - 1)), vals - (1 << bits), vals)
    return vals


def pack_input(inst, ind: int, value: np.ndarray) -> np.ndarray:
    from qonnx.core.datatype import DataType
    folded = inst.get_folded_input_shape(ind)
    arr = np.asarray(value, dtype=np.float32).reshape(folded)
    dt = inst.get_input_datatype(ind)
    if dt == DataType["BIPOLAR"]:
        arr, dt = (arr + 1) / 2, DataType["BINARY"]
    return pack_words(np.rint(arr).reshape(-1, folded[-1]), dt.bitwidth(), inst.get_instream_width(ind))


def unpack_output(inst, ind: int, words: np.ndarray) -> np.ndarray:
    from qonnx.core.datatype import DataType
    odt = inst.get_output_datatype(ind)
    folded = inst.get_folded_output_shape(ind)
    bits = odt.bitwidth()
    vals = unpack_words(words, bits, folded[-1], odt.signed() and odt != DataType["BIPOLAR"])
    if odt == DataType["BIPOLAR"]:
        vals = 2 * vals - 1
    return vals.astype(np.float32).reshape(inst.get_normal_output_shape(ind))


def output_beats(inst, ind: int = 0) -> int:
    return int(np.prod(inst.get_folded_output_shape(ind)[:-1]))


def weight_stream_golden(model, node, inst, cache: dict | None = None) -> tuple[np.ndarray, int]:
    """The weight words (uint32 array, one row per beat) an internal_decoupled MVAU must receive, derived from the graph's weight
    initializer (not from the generated memory file, so a corrupted .dat is caught), and how many
    the MVAU reads per input image (the stream repeats once per input vector)."""
    if cache is not None and node.name in cache:  # one packing per node and run, not per crop and unit
        return cache[node.name]
    import tempfile

    from qonnx.core.datatype import DataType
    w = model.get_initializer(node.input[1])
    with tempfile.TemporaryDirectory() as t:
        f = Path(t) / "w.npy"
        inst.make_weight_file(w, "decoupled_npy", str(f))
        arr = np.load(f)
    wdt = inst.get_input_datatype(1)
    if wdt == DataType["BIPOLAR"]:
        wdt = DataType["BINARY"]
    width = inst.get_instream_width(1)
    words = pack_words(arr.reshape(-1, arr.shape[-1]), wdt.bitwidth(), width)
    reps = int(np.prod(inst.get_nodeattr("numInputVectors")))
    if cache is not None:
        cache[node.name] = (words, reps * len(words))
    return words, reps * len(words)
