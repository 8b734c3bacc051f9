#!/usr/bin/env python3
"""Speed of the inference backends on the same real crops, measured in one run, as ratios.

    python benchmarks/bench_backends.py [--model models/bdnn4] [--crops 500] [--finn-crops 10]

The cpu engine and Brevitas fp32 run on --crops PrivateTest crops; FINN's python execution of the
HW-layer graph (slow) on --finn-crops of them. Prints crops/s and the speed-up of the cpu engine.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "build_scripts"))
from bootstrap import ensure_env  # noqa: E402

ensure_env()


def rate(fn, crops):
    fn(crops[:2])  # warm-up
    t = time.perf_counter()
    out = fn(crops)
    return len(crops) / (time.perf_counter() - t), out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(REPO / "models" / "bdnn4"))
    p.add_argument("--crops", type=int, default=500)
    p.add_argument("--finn-crops", type=int, default=10)
    p.add_argument("--out", default=str(REPO / "build" / "bench"))
    a = p.parse_args()
    from bdnn.backends import BrevitasBackend, CpuBackend, FinnSimBackend
    from bdnn.data import load_fer2013
    from bdnn.engine import kernel_name
    from bdnn.preprocess import five_crops
    faces, _ = load_fer2013().split("PrivateTest")
    crops = five_crops(faces[: (a.crops + 4) // 5]).reshape(-1, 42, 42)[: a.crops]
    cpu, ref = CpuBackend(a.model), BrevitasBackend(a.model)
    r_cpu, s_cpu = rate(cpu.crop_scores, crops)
    r_ref, s_ref = rate(ref.crop_scores, crops)
    from bdnn_hw.flow import run_frontend
    from bdnn.contract import FRONTEND_DIR
    fe = run_frontend(Path(a.model), Path(a.out) / FRONTEND_DIR, progress=False)
    sim = FinnSimBackend(a.model, hw_graph=fe.hw_graph)
    few = crops[: a.finn_crops]
    r_sim, s_sim = rate(sim.crop_scores, few)
    same = (s_cpu.argmax(1) == s_ref.argmax(1)).all() and (s_sim.argmax(1) == s_cpu[: len(few)].argmax(1)).all()
    print(f"\nmodel {a.model}; cpu kernel: {kernel_name()}; labels identical across backends: {bool(same)}")
    print(f"{'backend':<26}{'crops':>7}{'crops/s':>11}{'cpu engine speed-up':>22}")
    for name, r, n in (("cpu engine (packed bits)", r_cpu, len(crops)), ("brevitas fp32 eval", r_ref, len(crops)),
                       ("finn-sim (python exec)", r_sim, len(few))):
        print(f"{name:<26}{n:>7}{r:>11.1f}{r_cpu / r:>21.1f}x")
    print(f"full PrivateTest (17,945 crops) with the cpu engine: ~{17945 / r_cpu:.0f} s")


if __name__ == "__main__":
    main()
