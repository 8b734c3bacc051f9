#!/usr/bin/env python3
"""Train every planned run in one go (CUDA when present, else CPU), resumable, inside a deadline.

    python scripts/train_all_gpu.py [--plan scripts/gpu_plan.json] [--runs runs] [--only a,b]
        [--deadline-min 12] [--epochs-scale 0.25] [--set key=value ...] [--data FER2013]
        [--ship-dir DIR] [--pack DIR] [--dry-run]

Each run of the plan (``scripts/gpu_plan.json``: name, ``bdnn train`` options, ``after``, ``ship_as``)
trains with ``bdnn.train.train`` into ``RUNS/<name>`` one epoch per call, so it can stop at any
epoch boundary before the deadline and continue later (``--resume`` semantics: a run with a
``last.pt`` continues exactly; a finished one is skipped). A run waits for the runs in its
``after``. At the end: ``RUNS/gpu_summary.json`` (per run: status, epochs, best PublicTest, seconds,
device); with ``--ship-dir`` every finished run with ``ship_as`` is packaged by ``bdnn ship`` (same
card, same exact accuracies) into ``DIR/<name>`` and the best per model on **PublicTest** is named
(PrivateTest is reported, never used to choose); with ``--pack`` the small files (model.npz,
teacher.npz, metrics, configs, plots, shipped folders; never *.pt) are written as at most 8 tar
files of at most 16 MiB into DIR, which is what a leased device machine can send back.

``--prepare DIR`` (here, before a device session) writes what the device machine lacks into DIR,
which must be git-ignored: FER2013 Training + PublicTest packed losslessly as PNG (about 53 MB;
never committed) and, with ``--wheels``, Brevitas and its two small dependencies as wheels. The
device command (carry DIR; its python3 has torch):

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .gpu/whl/*.whl &&
    PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 python3 scripts/train_all_gpu.py --data .gpu/fer2013_train_public.npz
        --deadline-min 9 --pack $OUT 2>&1 | tee $OUT/log

then here: ``tar -xf results-N.tar -C runs`` for each, and ``bdnn ship runs/RUN models/X`` measures
PrivateTest (not carried) for the card.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
try:
    import bdnn  # noqa: F401
except ImportError:  # on a device machine: the sources, not an installed package
    sys.path.insert(0, str(REPO / "sw"))

PACK_FILE_LIMIT = 16 * 2 ** 20   # what a device machine sends back: 8 files of 16 MiB
PACK_MAX_FILES = 8
PACKED_DATA = "fer2013_train_public.npz"
BREVITAS_WHEELS = ("brevitas==0.13.4", "dependencies==2.0.1", "unfoldNd==0.2.3")


# -- data ----------------------------------------------------------------------------------------
def pack_data(fer, path: Path, splits=("Training", "PublicTest")) -> Path:
    """FER2013 splits as one lossless PNG strip (plus labels and usage) in an npz: ~30 % smaller
    than the raw pixels, small enough to travel to a device machine."""
    import numpy as np
    from PIL import Image

    from bdnn.data import SPLITS
    keep = np.isin(fer.usage, [SPLITS.index(s) for s in splits])
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(fer.pixels[keep]).reshape(-1, fer.pixels.shape[-1])).save(buf, format="PNG", optimize=True)
    np.savez(path, png=np.frombuffer(buf.getvalue(), np.uint8), labels=fer.labels[keep], usage=fer.usage[keep])
    return path


def load_data(path: str | None):
    """FER2013 from a packed file (``pack_data``) or anything ``bdnn.data.load_fer2013`` reads."""
    import numpy as np

    from bdnn.data import FER2013, load_fer2013
    if path and Path(path).is_file() and Path(path).suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            if "png" in z.files:
                from PIL import Image
                pixels = np.asarray(Image.open(io.BytesIO(z["png"].tobytes()))).reshape(-1, 48, 48)
                return FER2013(pixels, z["labels"], z["usage"], f"{path} (packed)")
    return load_fer2013(path)


def prepare(out: Path, data: str | None, wheels: bool) -> None:
    out = out.resolve()
    try:
        ignored = subprocess.run(["git", "check-ignore", "-q", str(out / PACKED_DATA)], cwd=REPO).returncode == 0
    except OSError:
        ignored = False
    if not ignored:
        raise SystemExit(f"{out} is not git-ignored: FER2013 must never be committed; add it to .git/info/exclude first")
    out.mkdir(parents=True, exist_ok=True)
    p = pack_data(load_data(data), out / PACKED_DATA)
    print(f"wrote {p} ({p.stat().st_size / 1e6:.1f} MB)")
    if wheels:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(out / "whl"),
               *BREVITAS_WHEELS]
        subprocess.run(cmd, check=True)
        print(f"wheels in {out / 'whl'}")


# -- the plan --------------------------------------------------------------------------------------
def load_plan(path: Path, runs: Path, only: str | None, overrides: dict, epochs_scale: float) -> list[dict]:
    from bdnn.config import TrainConfig, check_config
    plan = json.loads(Path(path).read_text())["runs"]
    names = [r["name"] for r in plan]
    if len(set(names)) != len(names):
        raise SystemExit(f"{path}: run names repeat")
    if only:
        want = [s.strip() for s in only.split(",") if s.strip()]
        bad = [w for w in want if w not in names]
        if bad:
            raise SystemExit(f"--only: no run {', '.join(bad)} in {path} ({', '.join(names)})")
        plan = [r for r in plan if r["name"] in want]
    for r in plan:
        args = {k: (v.replace("{runs}", str(runs)) if isinstance(v, str) else v) for k, v in r["args"].items()}
        if epochs_scale != 1.0:
            args["epochs"] = max(1, round(args.get("epochs", TrainConfig.epochs) * epochs_scale))
        args.update(overrides)
        r["config"] = TrainConfig(**args)
        check_config(r["config"])
        for dep in r.get("after", []):
            if dep not in names:
                raise SystemExit(f"{path}: run {r['name']} waits for {dep!r}, which is not in the plan")
    return plan


def parse_overrides(items: list[str]) -> dict:
    """--set key=value, typed by the TrainConfig field."""
    import dataclasses

    from bdnn.config import TrainConfig
    types = {f.name: type(f.default) for f in dataclasses.fields(TrainConfig)}
    out = {}
    for it in items:
        k, sep, v = it.partition("=")
        k = k.strip().replace("-", "_")
        if not sep or k not in types:
            raise SystemExit(f"--set {it}: expected key=value with a bdnn train option ({', '.join(types)})")
        t = types[k]
        out[k] = (v.lower() in ("1", "true", "yes")) if t is bool else t(v)
    return out


def run_state(out: Path) -> tuple[int, int | None]:
    """(epochs done, planned epochs) of a run folder, from its last checkpoint."""
    from bdnn.train import load_checkpoint
    last = out / "last.pt"
    if not last.exists():
        return 0, None
    st = load_checkpoint(last)
    return st["epoch"] + 1, st["config"]["epochs"]


# -- training ----------------------------------------------------------------------------------------
def train_plan(plan: list[dict], runs: Path, data, deadline: float, reserve_s: float, log) -> list[dict]:
    from bdnn.train import train
    summary = {}
    for r in plan:
        name, cfg, out = r["name"], r["config"], runs / r["name"]
        rec = summary[name] = {"name": name, "arch": cfg.arch, "epochs_planned": cfg.epochs, "seconds": 0.0}
        waiting = [d for d in r.get("after", []) if summary.get(d, {}).get("status") != "done"
                   and not _finished(runs / d)]
        if waiting:
            rec.update(status="waiting", waiting_for=waiting)
            log(f"{name}: waits for {', '.join(waiting)}")
            continue
        done, planned = run_state(out)
        if planned is not None and planned != cfg.epochs:
            log(f"{name}: the folder holds a run of {planned} epochs (this plan: {cfg.epochs}); continuing the folder's")
        epoch_s = None
        while True:
            done, planned = run_state(out)
            total = planned or cfg.epochs
            if done >= total:
                break
            left = deadline - time.time() - reserve_s
            if left <= 0 or (epoch_s is not None and epoch_s > left):
                log(f"{name}: stopping at epoch {done}/{total}: the deadline is near (an epoch takes ~{epoch_s or 0:.0f} s)")
                break
            t0 = time.time()
            res = train(cfg, out, data=data, resume=done > 0, stop_after=1)
            epoch_s = time.time() - t0
            rec["seconds"] += epoch_s
            h = res["history"][-1]
            log(f"{name}: epoch {h['epoch']}/{total} in {epoch_s:.0f} s, train acc {h['train_acc']:.3f}, "
                f"PublicTest five-crop {h['val_acc_fivecrop_mean']:.2%} (best {res['best']['acc_fivecrop_mean']:.2%} "
                f"at {res['best']['epoch']})")
        done, planned = run_state(out)
        rec["epochs_done"] = done
        rec["status"] = "done" if done >= (planned or cfg.epochs) else ("stopped" if done else "not started")
        if (out / "metrics.json").exists():
            hist = json.loads((out / "metrics.json").read_text())
            best = max(hist, key=lambda h: h["val_acc_fivecrop_mean"])
            rec["best_public_fivecrop"], rec["best_epoch"] = best["val_acc_fivecrop_mean"], best["epoch"]
    return list(summary.values())


def _finished(out: Path) -> bool:
    done, planned = run_state(out)
    return planned is not None and done >= planned


def ship_runs(plan: list[dict], summary: list[dict], runs: Path, ship_dir: Path, data, models_dir: Path, log) -> list[dict]:
    """Package every finished run with ship_as; name the best per model on PublicTest."""
    from bdnn.ship import ship
    status = {s["name"]: s for s in summary}
    shipped = []
    if not all(len(data.split(split)[1]) for split in ("PublicTest", "PrivateTest")):
        log("ship: this data has no PrivateTest (a --prepare pack); ship the unpacked runs where FER2013 is whole")
        return shipped
    for r in plan:
        if not r.get("ship_as") or status.get(r["name"], {}).get("status") != "done":
            continue
        card = ship(runs / r["name"], ship_dir / r["name"], data=data)
        acc = card["accuracy"]
        shipped.append({"run": r["name"], "ship_as": r["ship_as"], "folder": str(ship_dir / r["name"]),
                        "public": acc["PublicTest"]["acc_fivecrop_mean"], "private": acc["PrivateTest"]["acc_fivecrop_mean"]})
        log(f"shipped {r['name']} -> {ship_dir / r['name']}: PublicTest {shipped[-1]['public']:.2%}, "
            f"PrivateTest {shipped[-1]['private']:.2%}")
    for model in sorted({s["ship_as"] for s in shipped}):
        group = [s for s in shipped if s["ship_as"] == model]
        best = max(group, key=lambda s: s["public"])
        current = models_dir / model / "card.json"
        cur = json.loads(current.read_text())["accuracy"]["PublicTest"]["acc_fivecrop_mean"] if current.exists() else None
        best["best_for_model"] = True
        best["beats_shipped_on_public"] = cur is None or best["public"] > cur
        log(f"{model}: best on PublicTest is {best['run']} ({best['public']:.2%}"
            + (f"; the shipped {model} has {cur:.2%}" if cur is not None else "; nothing shipped yet") + ")"
            + (": a candidate to replace it" if best["beats_shipped_on_public"] else ": keep the shipped model"))
    return shipped


def pack(dirs: list[Path], dest: Path, log) -> list[Path]:
    """The small files under ``dirs`` (never *.pt) as tar files of <= 16 MiB each, at most 8."""
    dest.mkdir(parents=True, exist_ok=True)
    items = []
    for d in dirs:
        if not d.exists():
            continue
        for f in sorted(d.rglob("*")):
            if f.is_file() and f.suffix != ".pt" and not f.name.endswith(".tmp"):
                items.append((f, f.relative_to(d.parent), f.stat().st_size))
    groups, cur, size = [], [], 0
    for it in items:
        if it[2] > PACK_FILE_LIMIT - 65536:
            log(f"pack: {it[1]} ({it[2] / 2 ** 20:.1f} MiB) is too large to come back; left out")
            continue
        if cur and size + it[2] + 1024 > PACK_FILE_LIMIT - 65536:
            groups.append(cur)
            cur, size = [], 0
        cur.append(it)
        size += it[2] + 1024
    if cur:
        groups.append(cur)
    room = PACK_MAX_FILES - 2  # gpu_summary.json and a log travel beside them
    if len(groups) > room:
        log(f"pack: {len(groups)} tar files needed, only {room} fit beside gpu_summary.json and a log; "
            "the last ones are left out")
        groups = groups[:room]
    written = []
    for i, g in enumerate(groups, 1):
        path = dest / f"results-{i}.tar"
        with tarfile.open(path, "w") as tar:
            for f, arc, _ in g:
                tar.add(f, arcname=str(arc))
        written.append(path)
        log(f"pack: {path} ({path.stat().st_size / 2 ** 20:.1f} MiB, {len(g)} files)")
    return written


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--plan", default=str(REPO / "scripts" / "gpu_plan.json"), help="the planned runs (JSON)")
    p.add_argument("--runs", default="runs", help="runs folder (default: runs)")
    p.add_argument("--only", default=None, help="comma list of run names to train (default: all)")
    p.add_argument("--data", default=None, help="FER2013 (npz/csv/folders) or a file written by --prepare")
    p.add_argument("--deadline-min", type=float, default=0, help="stop starting epochs so that everything ends within N minutes")
    p.add_argument("--reserve-min", type=float, default=1.5, help="minutes kept for shipping and packing (with --deadline-min)")
    p.add_argument("--epochs-scale", type=float, default=1.0, help="scale every run's planned epochs (a shorter full schedule)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a bdnn train option for every run, e.g. max_train_batches=2 (repeatable)")
    p.add_argument("--ship-dir", default=None, help="bdnn ship every finished run with ship_as into DIR/<run>")
    p.add_argument("--models-dir", default=str(REPO / "models"), help="shipped models to compare with (PublicTest)")
    p.add_argument("--pack", default=None, help="write the small result files as <= 8 tar files of <= 16 MiB into DIR")
    p.add_argument("--dry-run", action="store_true", help="print the plan (configs, order, state) and exit")
    p.add_argument("--prepare", default=None, metavar="DIR",
                   help="write the packed FER2013 Training+PublicTest (and with --wheels Brevitas' wheels) into the "
                        "git-ignored DIR for a device session, then exit")
    p.add_argument("--wheels", action="store_true", help="--prepare: also download Brevitas and its dependencies as wheels")
    a = p.parse_args(argv)
    if a.prepare:
        prepare(Path(a.prepare), a.data, a.wheels)
        return 0
    t_start = time.time()
    deadline = t_start + 60 * a.deadline_min if a.deadline_min else float("inf")
    runs = Path(a.runs)
    plan = load_plan(Path(a.plan), runs, a.only, parse_overrides(a.overrides), a.epochs_scale)
    import torch
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"

    def log(msg):
        print(f"[{time.time() - t_start:7.0f} s] {msg}", flush=True)

    from dataclasses import asdict
    for r in plan:
        done, planned = run_state(runs / r["name"])
        cfg = {k: v for k, v in asdict(r["config"]).items() if k not in ("arch",)}
        log(f"plan: {r['name']} ({r['config'].arch}, {done}/{planned or r['config'].epochs} epochs done"
            + (f", after {', '.join(r['after'])}" if r.get("after") else "") + f"): {json.dumps(cfg)}")
    if a.dry_run:
        return 0
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True
    from bdnn.engine import kernel_name
    log(f"device {device}; exact PublicTest evaluation on the cpu engine: {kernel_name()}, {os.cpu_count()} cores")
    data = load_data(a.data)
    runs.mkdir(parents=True, exist_ok=True)
    reserve = 60 * a.reserve_min if a.deadline_min else 0.0
    summary = train_plan(plan, runs, data, deadline, reserve, log)
    shipped = []
    if a.ship_dir:
        shipped = ship_runs(plan, summary, runs, Path(a.ship_dir), data, Path(a.models_dir), log)
    out = {"device": device, "seconds": round(time.time() - t_start, 1), "runs": summary, "shipped": shipped}
    (runs / "gpu_summary.json").write_text(json.dumps(out, indent=2))
    if a.pack:
        dirs = [runs / r["name"] for r in plan] + ([Path(a.ship_dir)] if a.ship_dir else [])
        summary_copy = Path(a.pack) / "gpu_summary.json"
        Path(a.pack).mkdir(parents=True, exist_ok=True)
        summary_copy.write_text(json.dumps(out, indent=2))
        pack(dirs, Path(a.pack), log)
    log("summary: " + ", ".join(f"{s['name']} {s['status']} ({s.get('epochs_done', 0)}/{s['epochs_planned']})" for s in summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
