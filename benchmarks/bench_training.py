#!/usr/bin/env python3
"""Training speed: fp32, fp32 + channels_last and bf16 autocast + channels_last, measured in one run,
and which of them `bdnn train --fast` takes on this machine (bf16 only where the device has native
bf16 kernels); with --compile the fast path under torch.compile (inductor) against eager, same
weights and batches, with the losses of both compared step by step.

    python benchmarks/bench_training.py [--arch bdnn4] [--batch 64] [--steps 6] [--compile] [--threads N]
"""
import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "build_scripts"))
from bootstrap import ensure_env  # noqa: E402

ensure_env()


PRECISIONS = ("fp32", "fp32+channels_last", "bf16+channels_last")


def images_per_s(arch: str, batch: int, steps: int, precision: str) -> float:
    return train_steps(arch, batch, steps, precision)[0]


def train_steps(arch: str, batch: int, steps: int, precision: str, compiled: bool = False, warmup: int = 1):
    """(images/s over ``steps`` timed steps after ``warmup`` untimed ones, every step's loss,
    seconds of the warm-up steps: for torch.compile, the compile time)."""
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
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {PRECISIONS}")
    bf16 = precision.startswith("bf16")
    if "channels_last" in precision:
        model = model.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, x, y = model.to(device), x.to(device), y.to(device)
    step_model = torch.compile(model, dynamic=False) if compiled else model  # static: each block its own shapes
    losses, t0 = [], time.perf_counter()
    t = None
    for i in range(steps + warmup):  # the warm-up steps (and any compilation) are not timed
        if i == warmup:
            t = time.perf_counter()
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            out = step_model(x)
        loss = loss_fn("hinge", out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return batch * steps / (time.perf_counter() - t), losses, t - t0


def compile_ratio(arch: str, batch: int, steps: int, rounds: int = 3) -> dict:
    """torch.compile (inductor) vs eager on the --fast path of this machine, on one model: first the same step's loss and
    gradients from both (equal results?), then alternating timed blocks of ``steps`` steps, so a
    load that changes during the run hits both alike. Returns images/s (median per mode) and more."""
    import numpy as np
    import torch

    from bdnn.arch import get_arch
    from bdnn.nn import BDNN
    from bdnn.train import bf16_native, loss_fn
    bf16 = bf16_native("cpu")
    torch.manual_seed(0)
    model = BDNN(get_arch(arch)).train().to(memory_format=torch.channels_last)
    compiled = torch.compile(model, dynamic=False)  # static shapes: each block its own (dynamic ones fail to lower)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (batch, 1, 42, 42)).astype(np.float32))
    x = x.to(memory_format=torch.channels_last)
    y = torch.randint(0, 7, (batch,))

    def step(m, update=True):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn("hinge", m(x), y)
        opt.zero_grad()
        loss.backward()
        if update:
            opt.step()
        return loss.item()

    state = {k: v.clone() for k, v in model.state_dict().items()}
    l_eager = step(model, update=False)
    g_eager = [p.grad.detach().float().clone() for p in model.parameters()]
    model.load_state_dict(state)  # BN running statistics as before
    t0 = time.perf_counter()
    l_comp = step(compiled, update=False)
    compile_s = time.perf_counter() - t0
    g_comp = [p.grad.detach().float().clone() for p in model.parameters()]
    ge = torch.cat([g.flatten() for g in g_eager]).double()
    gc = torch.cat([g.flatten() for g in g_comp]).double()
    grad_cos = float(ge @ gc / (ge.norm() * gc.norm()))
    grad_rel = float((ge - gc).norm() / ge.norm())
    step(compiled)  # the backward's and the optimizer's first compiled step
    times = {"eager": [], "compiled": []}
    for _ in range(rounds):
        for name, m in (("eager", model), ("compiled", compiled)):
            t = time.perf_counter()
            for _ in range(steps):
                step(m)
            times[name].append(batch * steps / (time.perf_counter() - t))
    med = {k: float(np.median(v)) for k, v in times.items()}
    return {"eager": med["eager"], "compiled": med["compiled"], "ratio": med["compiled"] / med["eager"],
            "blocks": times, "compile_s": compile_s, "loss_eager": l_eager, "loss_compiled": l_comp,
            "grad_cosine": grad_cos, "grad_rel_diff": grad_rel, "precision": "bf16" if bf16 else "fp32"}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="bdnn4")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--compile", action="store_true",
                   help="measure torch.compile (inductor) against eager on the --fast path instead of the precisions")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--rounds", type=int, default=3, help="--compile: alternating timed blocks per mode")
    a = p.parse_args()
    if a.threads:
        import torch
        torch.set_num_threads(a.threads)
    if a.compile:
        r = compile_ratio(a.arch, a.batch, a.steps, a.rounds)
        print(f"{a.arch} training, batch {a.batch}, {r['precision']} + channels_last, median of {a.rounds} alternating blocks of "
              f"{a.steps} steps: eager {r['eager']:.1f} images/s, torch.compile {r['compiled']:.1f} images/s "
              f"({r['ratio']:.2f}x; forward compile {r['compile_s']:.0f} s); same step from the same weights: loss "
              f"{r['loss_eager']:.5f} eager vs {r['loss_compiled']:.5f} compiled, gradients: cosine {r['grad_cosine']:.5f}, "
              f"relative difference {r['grad_rel_diff']:.1e}")
        print("images/s per block: " + "; ".join(f"{k} {[round(v, 1) for v in vs]}" for k, vs in r["blocks"].items()))
        return
    from bdnn.train import bf16_native
    native = bf16_native("cpu")
    rates = {}
    for precision in PRECISIONS:  # emulated bf16 is slow: fewer steps for it where it is emulated
        n = a.steps if native or not precision.startswith("bf16") else max(1, a.steps // 3)
        rates[precision] = images_per_s(a.arch, a.batch, n, precision)
        print(f"{a.arch} training, batch {a.batch}, {precision}: {rates[precision]:.1f} images/s "
              f"({rates[precision] / rates['fp32']:.2f}x fp32; one epoch of 28,709 faces {28709 / rates[precision] / 60:.1f} min)",
              flush=True)
    fast = "bf16+channels_last" if native else "fp32+channels_last"
    print(f"this cpu {'has' if native else 'has no'} native bf16 kernels (oneDNN): `bdnn train --fast` computes in {fast}; "
          f"bf16 vs fp32 + channels_last here: {rates['bf16+channels_last'] / rates['fp32+channels_last']:.2f}x")

if __name__ == "__main__":
    main()
