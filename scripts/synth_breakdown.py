#!/usr/bin/env python3
"""Where the LUTs of a build's stitched all-RTL design go: yosys with the module boundaries kept,
each instance's cells (its submodules included) grouped by kind, beside the flat synthesis the
build measured.

    python scripts/synth_breakdown.py build/bdnn4-hw/pynq-z2 [--top 12] [--json-out FILE]

Reads the build's sized design (``stitched/sized/design.json``) and ``summary.json`` (board, flat
yosys record); writes ``synth_breakdown.json`` into the build folder. Keeping the hierarchy costs
cross-boundary optimization (bdnn4-hw PYNQ-Z2: 54,020 LUT vs 54,638 flat) and time (~6x the flat
run: ~35 min on one core there); results are cached by content like every synthesis here.
"""
import argparse
import json
import re
import sys
import time
from pathlib import Path

KINDS = {  # node op (FINN's or the project's) -> what it is
    "MVAU_hls": "binary matrix units (project RTL)", "MVAU_bdnn_rtl": "binary matrix units (project RTL)",
    "MVTU_replay_rtl": "weight-replaying units (project RTL)",
    "ConvolutionInputGenerator_rtl": "sliding windows (FINN SWG)",
    "StreamingDataWidthConverter_rtl": "width converters (FINN)",
    "Thresholding_rtl": "thresholds (FINN)", "FMPadding_rtl": "padding (FINN)",
    "Pool_hls": "max-pool (project RTL)", "StreamingConcat_hls": "concat (project RTL)",
    "DuplicateStreams_hls": "fork (project RTL)",
}


def instance_kind(name: str) -> str:
    if re.fullmatch(r"e\d+_fifo", name):
        return "FIFOs (stream_fifo)"
    if name.endswith("_wrom"):
        return "weight ROMs (bnn_weight_rom)"
    op = re.sub(r"_\d+$", "", re.sub(r"_i$", "", name))
    return KINDS.get(op, op)


def group(instances: dict[str, dict]) -> dict[str, dict]:
    kinds: dict[str, dict] = {}
    for name, c in instances.items():
        k = kinds.setdefault(instance_kind(name), {"instances": 0, "lut": 0, "lutram": 0, "ff": 0, "bram36": 0.0})
        k["instances"] += 1
        for f in ("lut", "lutram", "ff", "bram36"):
            k[f] += c[f]
    return dict(sorted(kinds.items(), key=lambda kv: -kv[1]["lut"]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build", type=Path, help="a board's build folder, e.g. build/bdnn4-hw/pynq-z2")
    ap.add_argument("--top", type=int, default=12, help="largest instances to list")
    ap.add_argument("--json-out", type=Path, help="default: BUILD/synth_breakdown.json")
    a = ap.parse_args(argv)
    from bdnn_hw.boards import get_board
    from bdnn_hw.rtlsim.synth import synthesize
    design_file = a.build / "stitched" / "sized" / "design.json"
    summary_file = a.build / "summary.json"
    for f in (design_file, summary_file):
        if not f.is_file():
            raise SystemExit(f"{f} is missing: run the board's build with --stitched-crops > 0 first")
    design = json.loads(design_file.read_text())
    summary = json.loads(summary_file.read_text())
    board = get_board(summary["board"])
    t0 = time.perf_counter()
    r = synthesize(design["top"], design["files"], str(design_file.parent), timeout=6 * 3600,
                   family=board.synth_family, hierarchy=True)
    kinds = group(r["instances"])
    flat = summary.get("synth") or {}
    out = {"build": str(a.build), "board": board.key, "family": r["family"],
           "hierarchical": {k: r[k] for k in ("lut", "lut_logic", "lutram", "ff", "bram36", "dsp")},
           "flat": {k: flat.get(k) for k in ("lut", "lutram", "ff", "bram36")},
           "budget": {"lut": board.lut, "bram36": board.bram36}, "kinds": kinds,
           "instances": r["instances"], "seconds": round(time.perf_counter() - t0, 1)}
    dest = a.json_out or a.build / "synth_breakdown.json"
    dest.write_text(json.dumps(out, indent=1))
    print(f"{a.build}: {r['lut']:,} LUT ({r['lut'] / board.lut:.0%}), {r['bram36']:g} BRAM36 with the hierarchy kept "
          f"(flat: {flat.get('lut', 0):,} LUT, {flat.get('bram36', 0):g} BRAM36)\n")
    print("| kind | instances | LUT | of which LUTRAM | FF | BRAM36 |\n|---|---|---|---|---|---|")
    for k, v in kinds.items():
        print(f"| {k} | {v['instances']} | {v['lut']:,} | {v['lutram']:,} | {v['ff']:,} | {v['bram36']:g} |")
    print(f"\nlargest {a.top} instances:")
    for name, c in sorted(r["instances"].items(), key=lambda kv: -kv[1]["lut"])[:a.top]:
        print(f"  {name:45s} {c['lut']:7,} LUT {c['bram36']:6g} BRAM36")
    print(f"\nwrote {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
