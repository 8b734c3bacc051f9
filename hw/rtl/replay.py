"""The weight-replaying external-memory binary matrix unit (``hdl/bnn_mvtu_replay.sv``): its shape,
stream layouts, reference model, DDR traffic and cycle counts, and a simulatable unit.

FINN's external-weight MVAU streams the whole weight matrix from DDR once per output pixel of every
crop. This unit holds the input maps of a batch of B crops on chip, generates the 3x3 windows itself
and applies each weight word, fetched once per batch, to all B * OFM_DIM^2 windows, so a crop costs
matrix / B bytes of DDR traffic instead of matrix * OFM_DIM^2. It also applies the layer's
single-step thresholds (FINN's MVAU + Thresholding pair) so its output buffer holds bits, not sums.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..rtlsim.units import pack_words, unpack_words
from . import HDL

MODULE = "bnn_mvtu_replay"
OP_TYPE = "MVTU_replay_rtl"   # its FINN node (replay_op.py)
REPLAY_OPS = (OP_TYPE,)


@dataclass(frozen=True)
class ReplayShape:
    """A stride-1 K x K binary conv (or, with ifm_dim = k = ofm_dim = 1, a fully connected layer)."""
    c: int          # input channels
    ifm_dim: int    # input map side, padding included
    k: int
    ofm_dim: int
    mh: int         # output channels
    simd: int
    pe: int
    batch: int      # crops per weight pass
    group: int | None = None          # popcount pipelining (bdnn_hw.timing.pipeline); None: the default
    tree_per_stage: int | None = None

    def __post_init__(self):
        bad = []
        if min(self.c, self.ifm_dim, self.k, self.ofm_dim, self.mh, self.simd, self.pe, self.batch) < 1:
            bad.append("every dimension must be >= 1")
        elif self.c % self.simd:
            bad.append(f"SIMD {self.simd} must divide the {self.c} input channels (a word never spans two pixels)")
        elif self.mh % self.pe:
            bad.append(f"PE {self.pe} must divide the {self.mh} output channels")
        if self.ifm_dim != self.ofm_dim + self.k - 1:
            bad.append(f"ifm_dim {self.ifm_dim} must be ofm_dim + k - 1 = {self.ofm_dim + self.k - 1} (stride 1, padding included)")
        if bad:
            raise ValueError(f"{MODULE}: " + "; ".join(bad))

    @property
    def cf(self) -> int:
        return self.c // self.simd

    @property
    def mw(self) -> int:
        return self.k * self.k * self.c

    @property
    def sf(self) -> int:
        return self.mw // self.simd

    @property
    def nf(self) -> int:
        return self.mh // self.pe

    @property
    def windows_per_batch(self) -> int:
        return self.batch * self.ofm_dim ** 2

    @property
    def t_bits(self) -> int:
        return max(1, math.ceil(math.log2(self.mw + 2)))

    @property
    def in_width(self) -> int:
        return -(-self.simd // 8) * 8

    @property
    def w_width(self) -> int:
        return -(-self.pe * self.simd // 8) * 8

    @property
    def out_width(self) -> int:
        return -(-self.pe // 8) * 8

    @property
    def cycles_per_batch(self) -> int:
        """Compute steps per batch (fill and drain overlap them): FINN's MVAU steps, reordered."""
        return self.nf * self.sf * self.windows_per_batch

    @property
    def weight_bits(self) -> int:
        return self.mw * self.mh

    def ddr_bytes_per_crop(self) -> float:
        """Weight traffic: the matrix once per batch (FINN's external mode: once per output pixel)."""
        return self.weight_bits / 8 / self.batch

    def buffer_bits(self) -> dict[str, int]:
        """On-chip storage: ping-pong input maps and output bits, the accumulator and threshold RAMs."""
        return {"input_maps": 2 * self.batch * self.ifm_dim ** 2 * self.c,
                "output_bits": 2 * self.windows_per_batch * self.mh,
                "accumulators": self.windows_per_batch * self.pe * math.ceil(math.log2(self.mw + 1)),
                "thresholds": self.mh * self.t_bits}

    def bram18(self) -> int:
        """Block RAM (BRAM18, FINN's unit) of the ping-pong input maps (SIMD wide) and output bits
        (PE wide); accumulators and thresholds are LUT RAM. yosys (xc7), 64 x 8 lanes, B = 5:
        block4.conv2 27 (this model 24), fc1 5 (5), fc2 3 (3)."""
        return (bram18_for(self.simd, 2 * self.batch * self.ifm_dim ** 2 * self.cf)
                + bram18_for(self.pe, 2 * self.windows_per_batch * self.nf))

    def params(self, thresh_file: str | Path) -> dict[str, object]:
        return {"C": self.c, "IFM_DIM": self.ifm_dim, "K": self.k, "OFM_DIM": self.ofm_dim, "MH": self.mh,
                "SIMD": self.simd, "PE": self.pe, "B": self.batch, "T_BITS": self.t_bits,
                "THRESH_FILE": f'"{thresh_file}"', **self.pipeline()}

    def pipeline(self) -> dict[str, int]:
        """GROUP / TREE_PER_STAGE of the XNOR popcount: as set on the node for the build's clock, else
        the pipelining for the fastest clock the boards run."""
        if self.group is not None and self.tree_per_stage is not None:
            return {"GROUP": self.group, "TREE_PER_STAGE": self.tree_per_stage}
        from ..timing.pipeline import DEFAULT_FAMILY, DEFAULT_MHZ, mvau_pipeline
        return mvau_pipeline(DEFAULT_FAMILY, DEFAULT_MHZ, xnor=True).params()


# (depth, width) shapes of one BRAM18 (7-series / UltraScale+ RAMB18, simple dual port)
BRAM18_SHAPES = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))


def bram18_for(width: int, depth: int) -> int:
    """BRAM18 blocks for a width x depth memory, best aspect ratio."""
    return min(-(-width // w) * -(-depth // d) for d, w in BRAM18_SHAPES)


def reference(maps: np.ndarray, weights: np.ndarray, thresholds: np.ndarray, s: ReplayShape) -> np.ndarray:
    """maps (N, ifm, ifm, C) bits, weights (MH, K*K*C) bits in (ky, kx, c) column order (FINN's),
    thresholds (MH,) -> (N, ofm, ofm, MH) bits: popcount(XNOR(window, row)) >= threshold."""
    n = len(maps)
    win = np.stack([maps[:, ky:ky + s.ofm_dim, kx:kx + s.ofm_dim, :] for ky in range(s.k) for kx in range(s.k)], axis=3)
    win = win.reshape(n, s.ofm_dim, s.ofm_dim, s.mw).astype(np.int64)
    w = weights.astype(np.int64)
    matches = win @ w.T + (1 - win) @ (1 - w).T
    return (matches >= np.asarray(thresholds)[None, None, None, :]).astype(np.uint8)


def pack_maps(maps: np.ndarray, s: ReplayShape) -> np.ndarray:
    """Input beats: crop, pixel (row-major), channel fold; SIMD channels per beat, channel 0 in bit 0."""
    return pack_words(np.asarray(maps, np.uint8).reshape(-1, s.simd), 1, s.in_width)


def pack_weights(weights: np.ndarray, s: ReplayShape) -> np.ndarray:
    """One pass over the matrix in FINN's weight stream order: nf major, sf minor; bit p*SIMD + i
    of a word is row nf*PE + p, column sf*SIMD + i."""
    w = np.asarray(weights, np.uint8).reshape(s.nf, s.pe, s.sf, s.simd).transpose(0, 2, 1, 3)
    return pack_words(w.reshape(s.nf * s.sf, s.pe * s.simd), 1, s.w_width)


def write_thresholds(thresholds: np.ndarray, s: ReplayShape, path: Path) -> None:
    """NF hex lines of PE thresholds (T_BITS each, lane 0 lowest), clipped to [0, MW + 1]."""
    t = np.clip(np.asarray(thresholds, np.int64), 0, s.mw + 1).reshape(s.nf, s.pe)
    digits = -(-s.pe * s.t_bits // 4)
    lines = []
    for row in t:
        v = 0
        for p in range(s.pe - 1, -1, -1):
            v = (v << s.t_bits) | int(row[p])
        lines.append(f"{v:0{digits}x}")
    Path(path).write_text("\n".join(lines) + "\n")


def unpack_outputs(words: np.ndarray, n: int, s: ReplayShape) -> np.ndarray:
    """Output beats (crop, pixel, nf; PE bits each) -> (N, ofm, ofm, MH) bits."""
    return unpack_words(words, 1, s.pe, False).astype(np.uint8).reshape(n, s.ofm_dim, s.ofm_dim, s.mh)


def wrapper_source(s: ReplayShape, top: str, thresh_file: str | Path) -> str:
    """A top ``top`` with FINN's stream names (``in0_V`` maps, ``in1_V`` weights, ``out0_V``) around
    the unit with this shape's parameters: the FINN node's wrapper and the unit tests' top."""
    params = ", ".join(f".{k}({v})" for k, v in s.params(thresh_file).items())
    return (f"// generated by bdnn_hw.rtl.replay\n"
            f"module {top} (input logic ap_clk, input logic ap_rst_n,\n"
            f"  input logic [{s.in_width - 1}:0] in0_V_TDATA, input logic in0_V_TVALID, output logic in0_V_TREADY,\n"
            f"  input logic [{s.w_width - 1}:0] in1_V_TDATA, input logic in1_V_TVALID, output logic in1_V_TREADY,\n"
            f"  output logic [{s.out_width - 1}:0] out0_V_TDATA, output logic out0_V_TVALID, input logic out0_V_TREADY);\n"
            f"  {MODULE} #({params}) u (.clk(ap_clk), .rst_n(ap_rst_n),\n"
            "    .in_tdata(in0_V_TDATA), .in_tvalid(in0_V_TVALID), .in_tready(in0_V_TREADY),\n"
            "    .w_tdata(in1_V_TDATA), .w_tvalid(in1_V_TVALID), .w_tready(in1_V_TREADY),\n"
            "    .out_tdata(out0_V_TDATA), .out_tvalid(out0_V_TVALID), .out_tready(out0_V_TREADY));\n"
            "endmodule\n")


LIBRARY = (f"{MODULE}.sv", "stream_fifo.sv")   # the unit's modules in hdl/ (its drain queue is a stream_fifo)


def unit(s: ReplayShape, work: Path, thresholds: np.ndarray):
    """A harness ``Unit`` for this shape: a top with the parameters bound, thresholds in ``work``."""
    from ..rtlsim.harness import Unit, axis
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    write_thresholds(thresholds, s, work / "thresholds.dat")
    top = "replay_top"
    (work / f"{top}.sv").write_text(wrapper_source(s, top, work / "thresholds.dat"))
    return Unit(top=top, files=(*(str(HDL / f) for f in LIBRARY), str(work / f"{top}.sv")),
                inputs=(axis("in0_V", s.in_width), axis("in1_V", s.w_width)),
                outputs=(axis("out0_V", s.out_width),), run_dir=str(work))
