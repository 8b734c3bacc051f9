#!/usr/bin/env python3
"""Timing of the project's RTL units, before and after pipelining, by the project's pre-route
estimate (bdnn_hw.timing): each unit synthesized alone by yosys (synth_xilinx -flatten) at the
foldings BDNN4 and bdnn4-hw use, its worst register-to-register path (logic levels, estimated ns)
at the board's clock, and its LUT / FF counts.

    python benchmarks/bench_timing.py                  # the before/after table (before: --before REV)
    python benchmarks/bench_timing.py --characterize   # the pipeline candidates of bdnn_hw.timing.pipeline
    python benchmarks/bench_timing.py --swg            # sliding-window generators: FINN's RTL SWG vs bnn_swg

"Before" is the RTL of a git revision (default: the last one before the pipelined units), read with
``git show``; "after" is the working tree. The figures are estimates of mapped netlists, not
place-and-route results.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
BEFORE = "5c7c38e"          # the last revision with single-cycle popcounts
HDL_FILES = ("bnn_mvau.sv", "bnn_weight_rom.sv", "bnn_rom.sv", "bnn_mvtu_replay.sv", "stream_fifo.sv")
BOARD_CLOCK = {"xc7": 100.0, "xcup": 200.0}

# (label, kind, family, shape): the foldings of BDNN4's and bdnn4-hw's verified designs
UNITS = [
    ("first layer 9 x 2 (UINT8 x INT2)", "mvau", "xc7", dict(MW=9, MH=64, SIMD=9, PE=2, IN_BITS=8, W_BITS=2, OUT_BITS=14)),
    ("first layer 9 x 2 (UINT8 x INT2)", "mvau", "xcup", dict(MW=9, MH=64, SIMD=9, PE=2, IN_BITS=8, W_BITS=2, OUT_BITS=14)),
    ("XNOR MVAU 192 x 4 (MW 1152)", "mvau", "xc7", dict(MW=1152, MH=128, SIMD=192, PE=4, OUT_BITS=12)),
    ("XNOR MVAU 384 x 2 (MW 1152)", "mvau", "xc7", dict(MW=1152, MH=128, SIMD=384, PE=2, OUT_BITS=12)),
    ("XNOR MVAU 768 x 1 (MW 2304)", "mvau", "xc7", dict(MW=2304, MH=256, SIMD=768, PE=1, OUT_BITS=13)),
    ("XNOR MVAU 288 x 4 (MW 576)", "mvau", "xcup", dict(MW=576, MH=128, SIMD=288, PE=4, OUT_BITS=11)),
    ("XNOR MVAU 1152 x 1 (MW 1152)", "mvau", "xcup", dict(MW=1152, MH=128, SIMD=1152, PE=1, OUT_BITS=12)),
    ("weight ROM 1152 bits x 128 (block RAM)", "rom", "xc7", dict(WIDTH=1152, DEPTH=128, RAM_STYLE="block")),
    ("weight ROM 1152 bits x 128 (block RAM)", "rom", "xcup", dict(WIDTH=1152, DEPTH=128, RAM_STYLE="block")),
    ("replay fc 32 x 1 (MW 1024, B 5)", "replay", "xc7", dict(c=1024, ifm_dim=1, k=1, ofm_dim=1, mh=1024, simd=32, pe=1, batch=5)),
    ("replay conv 256 x 4 (3x3, 512 ch, B 5)", "replay", "xc7", dict(c=512, ifm_dim=5, k=3, ofm_dim=3, mh=512, simd=256, pe=4, batch=5)),
    ("replay fc 64 x 1 (MW 1024, B 5)", "replay", "xcup", dict(c=1024, ifm_dim=1, k=1, ofm_dim=1, mh=1024, simd=64, pe=1, batch=5)),
]
# BDNN4's Ultra96 block4.conv2 replay unit (256 x 8) takes yosys over half an hour alone on 2 cores;
# its timing is in that design's build record (report.md, per RTL unit)


def rtl_at(rev: str, dst: Path) -> Path:
    """The project's HDL as of ``rev`` (files it did not have are taken from the working tree)."""
    dst.mkdir(parents=True, exist_ok=True)
    for f in HDL_FILES:
        p = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:hw/rtl/hdl/{f}"], capture_output=True, text=True)
        (dst / f).write_text(p.stdout if p.returncode == 0 else (REPO / "hw" / "rtl" / "hdl" / f).read_text())
    return dst


def _declared(path: Path) -> set[str]:
    import re
    return set(re.findall(r"int unsigned\s+(\w+)\s*=", path.read_text())) | set(re.findall(r"parameter string\s+(\w+)", path.read_text()))


def unit_files(kind: str, shape: dict, hdl: Path, work: Path, pipeline: dict) -> tuple[str, list[str], str]:
    """(top, files, run dir) of one unit built from the HDL in ``hdl``."""
    work.mkdir(parents=True, exist_ok=True)
    if kind == "replay":
        from bdnn_hw.rtl import replay
        s = replay.ReplayShape(**shape, group=pipeline.get("GROUP"), tree_per_stage=pipeline.get("TREE_PER_STAGE"))
        thr = np.random.default_rng(0).integers(0, s.mw, s.mh)
        u = replay.unit(s, work, thr)
        if "GROUP" not in _declared(hdl / "bnn_mvtu_replay.sv"):   # the old unit takes no pipeline parameters
            w = next(Path(f) for f in u.files if Path(f).parent == work)
            import re
            w.write_text(re.sub(r",\s*\.GROUP\(\d+\),\s*\.TREE_PER_STAGE\(\d+\)", "", w.read_text()))
        files = [str(hdl / "bnn_mvtu_replay.sv") if Path(f).name == "bnn_mvtu_replay.sv" else f for f in u.files]
        return u.top, files, str(work)
    if kind == "rom":
        from bdnn_hw.rtl.stitch import write_hex
        words = np.random.default_rng(1).integers(0, 2**32, (shape["DEPTH"], -(-shape["WIDTH"] // 32)), dtype=np.uint64).astype(np.uint32)
        write_hex(words, shape["WIDTH"], work / "w.dat")
        (work / "rom_top.sv").write_text(
            f"module rom_top (input logic clk, rst_n, output logic [{shape['WIDTH']}-1:0] out_tdata, output logic out_tvalid,\n"
            "  input logic out_tready);\n"
            f"  bnn_weight_rom #(.WIDTH({shape['WIDTH']}), .DEPTH({shape['DEPTH']}), .INIT_FILE(\"w.dat\"), "
            f".RAM_STYLE(\"{shape['RAM_STYLE']}\")) u (.*);\nendmodule\n")
        uses_rom = "bnn_rom " in (hdl / "bnn_weight_rom.sv").read_text()   # the memory as its own module
        lib = [str(hdl / f) for f in ("bnn_weight_rom.sv", *(["bnn_rom.sv"] if uses_rom else []), "stream_fifo.sv")]
        return "rom_top", [*lib, str(work / "rom_top.sv")], str(work)
    p = {**dict(IN_BITS=1, W_BITS=1), **shape}
    if "GROUP" in _declared(hdl / "bnn_mvau.sv"):
        p.update(pipeline)
    iw = -(-p["SIMD"] * p["IN_BITS"] // 8) * 8
    ww = -(-p["PE"] * p["SIMD"] * p["W_BITS"] // 8) * 8
    ow = -(-p["PE"] * p["OUT_BITS"] // 8) * 8
    params = ", ".join(f".{k}({v})" for k, v in p.items())
    (work / "mvau_top.sv").write_text(
        f"module mvau_top (input logic clk, rst_n, input logic [{iw}-1:0] in_tdata, input logic in_tvalid, output logic in_tready,\n"
        f"  input logic [{ww}-1:0] w_tdata, input logic w_tvalid, output logic w_tready,\n"
        f"  output logic [{ow}-1:0] out_tdata, output logic out_tvalid, input logic out_tready);\n"
        f"  bnn_mvau #({params}, .IN_WIDTH({iw}), .W_WIDTH({ww}), .OUT_WIDTH({ow})) u (.*);\nendmodule\n")
    return "mvau_top", [str(hdl / "bnn_mvau.sv"), str(hdl / "stream_fifo.sv"), str(work / "mvau_top.sv")], str(work)


def measure(kind: str, shape: dict, family: str, mhz: float, hdl: Path, work: Path, pipeline: dict) -> dict:
    from bdnn_hw.rtlsim.synth import synthesize
    top, files, run_dir = unit_files(kind, shape, hdl, work, pipeline)
    r = synthesize(top, files, run_dir, family=family, clock_mhz=mhz)
    t = r["timing"]
    return {"levels": t["worst"]["levels"], "lut_levels": t["worst"]["lut_levels"], "ns": t["worst"]["ns"],
            "est_fmax_mhz": t["est_fmax_mhz"], "meets": t["meets"], "lut": r["lut"], "ff": r["ff"], "bram36": r["bram36"],
            "worst": f"{t['worst']['start']} -> {t['worst']['end']}"}


def pipeline_for(kind: str, shape: dict, family: str, mhz: float) -> dict:
    from bdnn_hw.timing.pipeline import mvau_pipeline
    if kind == "rom":
        return {}
    return mvau_pipeline(family, mhz, xnor=shape.get("IN_BITS", 1) == 1).params()


def before_after(rev: str, out: Path | None) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="bdnn_timing_") as t:
        old = rtl_at(rev, Path(t) / "before")
        new = REPO / "hw" / "rtl" / "hdl"
        for k, (label, kind, fam, shape) in enumerate(tqdm(UNITS, desc="units (before and after)", unit="unit")):
            mhz = BOARD_CLOCK[fam]
            pipe = pipeline_for(kind, shape, fam, mhz)
            b = measure(kind, shape, fam, mhz, old, Path(t) / f"b{k}", pipe)
            a = measure(kind, shape, fam, mhz, new, Path(t) / f"a{k}", pipe)
            rows.append({"unit": label, "kind": kind, "family": fam, "clock_mhz": mhz, "pipeline": pipe, "before": b, "after": a})
    print("\n| unit | fabric @ clock | before: levels (LUT), est. ns, LUT, FF | after: levels (LUT), est. ns, LUT, FF | pipeline |")
    print("|---|---|---|---|---|")
    for r in rows:
        b, a = r["before"], r["after"]
        cell = lambda x: f"{x['levels']} ({x['lut_levels']}), {x['ns']:.2f}{'' if x['meets'] else ' (misses)'}, {x['lut']:,}, {x['ff']:,}"
        pipe = ", ".join(f"{k} {v}" for k, v in r["pipeline"].items()) or "-"
        print(f"| {r['unit']} | {r['family']} @ {r['clock_mhz']:g} MHz | {cell(b)} | {cell(a)} | {pipe} |")
    if out:
        out.write_text(json.dumps(rows, indent=1))
    return rows


def characterize() -> None:
    """The reference units at every candidate pipelining: the table bdnn_hw.timing.pipeline keeps."""
    ref_x = dict(MW=1152, MH=128, SIMD=384, PE=2, OUT_BITS=12)
    ref_f = dict(MW=9, MH=64, SIMD=9, PE=2, IN_BITS=8, W_BITS=2, OUT_BITS=14)
    grid = {"xnor": {"xc7": [(0, 2), (128, 2), (64, 3), (32, 3)], "xcup": [(16, 2), (8, 2), (4, 2)]},
            "first": {"xc7": [(1, 3), (1, 2), (1, 1)], "xcup": [(1, 3), (1, 2), (1, 1)]}}
    hdl = REPO / "hw" / "rtl" / "hdl"
    with tempfile.TemporaryDirectory(prefix="bdnn_timing_") as t:
        for which, ref in (("xnor", ref_x), ("first", ref_f)):
            for fam, cands in grid[which].items():
                rows = []
                for g, tps in tqdm(cands, desc=f"{which} {fam}", unit="candidate"):
                    m = measure("mvau", ref, fam, BOARD_CLOCK[fam], hdl, Path(t) / f"{which}{fam}{g}_{tps}",
                                {"GROUP": g, "TREE_PER_STAGE": tps})
                    rows.append((g, tps, m["ns"], m["lut"], m["ff"]))
                print(f"{which} {fam}: {rows}")


# bdnn4-hw's sliding-window generators on the PYNQ-Z2 folding (and the Ultra96 fabric at 200 MHz)
SWG_SHAPES = [
    ("first layer C1 UINT8 44x44 k3", dict(c=1, simd=1, h=44, w=44, k=3, s=1, bits=8)),
    ("C64 44x44 k3 SIMD16", dict(c=64, simd=16, h=44, w=44, k=3, s=1)),
    ("pool C128 42x42 k2s2 SIMD4", dict(c=128, simd=4, h=42, w=42, k=2, s=2, depthwise=True)),
    ("C128 23x23 k3 SIMD8", dict(c=128, simd=8, h=23, w=23, k=3, s=1)),
    ("C256 12x12 k3 SIMD4", dict(c=256, simd=4, h=12, w=12, k=3, s=1)),
    ("pool C512 10x10 k2s2 SIMD1", dict(c=512, simd=1, h=10, w=10, k=2, s=2, depthwise=True)),
    ("C512 7x7 k3 SIMD2", dict(c=512, simd=2, h=7, w=7, k=3, s=1)),
    ("C256 7x7 k3 SIMD1", dict(c=256, simd=1, h=7, w=7, k=3, s=1)),
]


def finn_swg_files(sh, work: Path) -> tuple[str, list[str]]:
    """FINN's ConvolutionInputGenerator_rtl for a bdnn_hw.rtl.swg.SWGShape, generated from FINN's
    templates into ``work``: (top, files)."""
    from onnx import helper
    from qonnx.custom_op.registry import getCustomOp

    from bdnn_hw.finn_env import ensure_finn
    from bdnn_hw.rtlsim.units import module_name
    ensure_finn()
    dt = "BINARY" if sh.bits == 1 else f"UINT{sh.bits}"
    node = helper.make_node("ConvolutionInputGenerator_rtl", ["x"], ["y"], domain="finn.custom_op.fpgadataflow.rtl",
                            name="finn_swg", ConvKernelDim=[sh.k, sh.k], IFMChannels=sh.c, IFMDim=[sh.h, sh.w],
                            OFMDim=[sh.oh, sh.ow], SIMD=sh.simd, Stride=[sh.s, sh.s], Dilation=[1, 1],
                            inputDataType=dt, outputDataType=dt, depthwise=int(sh.depthwise))
    op = getCustomOp(node)
    work.mkdir(parents=True, exist_ok=True)
    op.set_nodeattr("code_gen_dir_ipgen", str(work))
    op.generate_hdl(None, "xc7z020clg400-1", 10.0)
    files = op.get_rtl_file_list(abspath=True)
    return module_name(next(f for f in files if f.endswith("_wrapper.v"))), files


def swg_table() -> list[dict]:
    from bdnn_hw.rtl.swg import SWGShape, hdl_files, wrapper_source
    from bdnn_hw.rtlsim.synth import synthesize

    def row(r):
        t = r["timing"]["worst"]
        return {"levels": t["levels"], "lut_levels": t["lut_levels"], "ns": t["ns"], "meets": r["timing"]["meets"],
                "lut": r["lut"], "ff": r["ff"], "bram36": r["bram36"]}
    rows = []
    with tempfile.TemporaryDirectory(prefix="bdnn_swg_") as t:
        jobs = [(label, shape, fam) for label, shape in SWG_SHAPES for fam in BOARD_CLOCK]
        for k, (label, shape, fam) in enumerate(tqdm(jobs, desc="SWGs (FINN's, bnn_swg LUT RAM and block RAM)", unit="unit")):
            sh, mhz, w = SWGShape(**shape), BOARD_CLOCK[fam], Path(t) / f"s{k}"
            top, files = finn_swg_files(sh, w / "finn")
            got = {"finn": row(synthesize(top, files, str(w / "finn"), family=fam, clock_mhz=mhz))}
            for block in (0, 1):
                d = w / f"bnn{block}"
                d.mkdir(parents=True)
                (d / "top.sv").write_text(wrapper_source(sh, "swg_top", block=bool(block)))
                got[f"bnn_block{block}"] = row(synthesize("swg_top", [*hdl_files(), str(d / "top.sv")], str(d),
                                                          family=fam, clock_mhz=mhz))
            rows.append({"unit": label, "family": fam, "clock_mhz": mhz, **got})
    cell = lambda x: f"{x['levels']} ({x['lut_levels']}), {x['ns']:.2f}{'' if x['meets'] else ' (misses)'}, {x['lut']:,}, {x['bram36']:g}"
    print("\n| SWG | fabric @ clock | FINN's RTL SWG: levels (LUT), est. ns, LUT, BRAM36 | bnn_swg, LUT RAM | bnn_swg, block RAM |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['unit']} | {r['family']} @ {r['clock_mhz']:g} MHz | {cell(r['finn'])} | {cell(r['bnn_block0'])} | {cell(r['bnn_block1'])} |")
    return rows


def main() -> int:
    sys.path.insert(0, str(REPO))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", default=BEFORE, help=f"git revision of the 'before' RTL (default {BEFORE})")
    ap.add_argument("--json", default=None, help="also write the rows here")
    ap.add_argument("--characterize", action="store_true", help="measure the pipeline candidates instead")
    ap.add_argument("--swg", action="store_true", help="the sliding-window generators instead: FINN's vs bnn_swg")
    a = ap.parse_args()
    if a.characterize:
        characterize()
    elif a.swg:
        rows = swg_table()
        if a.json:
            Path(a.json).write_text(json.dumps(rows, indent=1))
    else:
        before_after(a.before, Path(a.json) if a.json else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
