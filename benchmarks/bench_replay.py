#!/usr/bin/env python3
"""The weight-replaying external-memory matrix unit (hw/rtl/hdl/bnn_mvtu_replay.sv) on the shapes of
BDNN4's DDR layers on the PYNQ-Z2: DDR weight bytes per crop against FINN's external mode, compute
cycles per crop, on-chip buffer bits, and yosys synth_xilinx counts of the unit itself.

    python benchmarks/bench_replay.py [--batch 5] [--simd 64] [--pe 8] [--no-yosys]

FINN's external mode streams a layer's whole matrix once per output pixel of every crop; the unit
streams it once per batch of B crops. The DDR cap assumes the PYNQ-Z2's 64-bit HP port at 100 MHz
and the project's sustained efficiency (hw/flow.py DDR_EFFICIENCY).
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "build_scripts"))
from bootstrap import ensure_env  # noqa: E402

ensure_env()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=5, help="crops per weight pass (default 5: one face)")
    ap.add_argument("--simd", type=int, default=64)
    ap.add_argument("--pe", type=int, default=8)
    ap.add_argument("--no-yosys", action="store_true")
    a = ap.parse_args()
    from bdnn_hw.boards import BOARDS
    from bdnn_hw.flow import DDR_EFFICIENCY
    from bdnn_hw.rtl import replay
    from bdnn_hw.rtl.replay import ReplayShape
    board = BOARDS["pynq-z2"]
    port = board.axi_port_width / 8 * board.fclk_mhz * 1e6 * DDR_EFFICIENCY
    layers = {  # BDNN4's layers that do not fit the PYNQ-Z2's BRAM (the build puts them in DDR)
        "block4.conv2": dict(c=512, ifm_dim=7, k=3, ofm_dim=5, mh=512),
        "fc1": dict(c=4096, ifm_dim=1, k=1, ofm_dim=1, mh=1024),
        "fc2": dict(c=1024, ifm_dim=1, k=1, ofm_dim=1, mh=1024),
    }
    finn_total = replay_total = 0.0
    print(f"B = {a.batch}, SIMD {a.simd}, PE {a.pe}; PYNQ-Z2 DDR port {port / 1e6:,.0f} MB/s sustained\n")
    print("| layer | weights | FINN external: DDR bytes/crop | replay: DDR bytes/crop | ratio | compute cycles/crop | "
          "crops/s at 100 MHz | on-chip buffers | BRAM36 by the op's model | yosys (xc7): LUT / FF / BRAM36 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, shape in layers.items():
        s = ReplayShape(**shape, simd=min(a.simd, shape["c"]), pe=a.pe, batch=a.batch)
        finn = s.weight_bits / 8 * s.ofm_dim ** 2
        rep = s.ddr_bytes_per_crop()
        finn_total += finn
        replay_total += rep
        cyc = s.cycles_per_batch / s.batch
        syn = "skipped"
        if not a.no_yosys:
            from bdnn_hw.rtlsim.synth import synthesize
            with tempfile.TemporaryDirectory() as t:
                u = replay.unit(s, Path(t), np.full(s.mh, s.mw // 2))
                t0 = time.perf_counter()
                r = synthesize(u.top, list(u.files), t, timeout=3600)
                syn = f"{r['lut']:,} / {r['ff']:,} / {r['bram36']:g} ({time.perf_counter() - t0:.0f} s)"
        buf = sum(s.buffer_bits().values())
        model_bram36 = s.bram18() / 2  # what MVTU_replay_rtl.bram_estimation tells FINN
        print(f"| {name} | {s.weight_bits / 1e6:.2f} Mbit | {finn / 1e3:,.0f} kB | {rep / 1e3:,.1f} kB | "
              f"{finn / rep:,.0f}x | {cyc:,.0f} | {board.fclk_mhz * 1e6 / cyc:,.0f} | {buf / 1e3:,.0f} kbit | {model_bram36:g} | {syn} |",
              flush=True)
    print(f"\nDDR weight traffic per crop: FINN external {finn_total / 1e6:.2f} MB (cap {port / finn_total:,.0f} crops/s), "
          f"replay {replay_total / 1e6:.3f} MB (cap {port / replay_total:,.0f} crops/s): {finn_total / replay_total:.0f}x less")


if __name__ == "__main__":
    main()
