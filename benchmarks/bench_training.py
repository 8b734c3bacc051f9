#!/usr/bin/env python3
"""Training speed: fp32 vs the fast path (bf16 autocast + channels_last), measured in one run.

    python benchmarks/bench_training.py [--arch bdnn4] [--batch 64] [--steps 6]
"""
import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "build_scripts"))
from bootstrap import ensure_env  # noqa: E402

ensure_env()


def images_per_s(arch: str, batch: int, steps: int, fast: bool) -> float:
    import numpy as np
    import torch

    from bdnn.arch import get_arch
    from bdnn.nn import BDNN
    from bdnn.train import loss_fn
    torch.manual_seed(0)
    model = BDNN(get_arch(arch)).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (batch, 1, 42, 42)).astype(np.float32))
    y = torch.randint(0, 7, (batch,))
    if fast:
        model = model.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, x, y = model.to(device), x.to(device), y.to(device)
    t = None
    for i in range(steps + 1):  # the first step warms up
        if i == 1:
            t = time.perf_counter()
        with torch.autocast(device, dtype=torch.bfloat16, enabled=fast):
            out = model(x)
        loss = loss_fn("hinge", out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return batch * steps / (time.perf_counter() - t)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="bdnn4")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=6)
    a = p.parse_args()
    fp32 = images_per_s(a.arch, a.batch, a.steps, fast=False)
    fast = images_per_s(a.arch, a.batch, a.steps, fast=True)
    print(f"{a.arch} training, batch {a.batch}: fp32 {fp32:.1f} images/s, bf16 + channels_last {fast:.1f} images/s "
          f"({fast / fp32:.1f}x); one epoch of 28,709 faces: fp32 {28709 / fp32 / 60:.1f} min, fast {28709 / fast / 60:.1f} min")


if __name__ == "__main__":
    main()
