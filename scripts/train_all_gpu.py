#!/usr/bin/env python3
"""Train every planned run in one go (CUDA when present, else CPU), resumable, inside a deadline.

    python scripts/train_all_gpu.py [--plan scripts/gpu_plans/next.json] [--runs runs] [--only a,b]
        [--parallel] [--deadline-min 12] [--epochs-scale 0.25] [--set key=value ...] [--data FER2013]
        [--ship-dir DIR] [--pack DIR] [--dry-run]

Each run of the plan (``scripts/gpu_plans/next.json``; the plans of earlier GPU runs beside it) names
``bdnn train`` options; ``"epochs": "auto"`` fills the run's ``share`` (default 1) of the time left
before the deadline, measured on the machine when the run starts (``bdnn.train.estimate_epoch_seconds``:
real steps and a selection pass under the load of that moment). ``after``: start once those runs have finished; ``not_before`` (parallel
mode): once they have ended, however; ``group``: runs that train the same number of epochs (the
fewest any of them fits; an ablation at equal budget); ``ship_as``: the model a run competes for.

Sequential mode (default) trains the runs in order, one epoch per call, so it can stop at any epoch
boundary before the deadline and continue later (``--resume`` semantics: a run with a ``last.pt``
continues exactly; a finished one is skipped). ``--parallel`` starts one worker process per run as
soon as it may start, all on the one device (a GPU is launch-bound on these small networks, so
several runs share it well: on an H200, six runs at once trained a BDNN4 epoch in ~11 s), and stops
them all at the deadline. At the end: ``RUNS/gpu_summary.json`` (per run: status, epochs, best
PublicTest, seconds, device); ``RUNS/<name>/worker.json`` and ``train.log`` in parallel mode; with
``--ship-dir`` every finished run with ``ship_as`` is packaged by ``bdnn ship`` (same card, same
exact accuracies) into ``DIR/<name>`` and the best per model on **PublicTest** is named (PrivateTest
is reported, never used to choose); with ``--pack`` the small files (model.npz, teacher.npz,
metrics, configs, plots, logs, shipped folders; never *.pt) are written as at most 8 tar files of at
most 16 MiB into DIR, which is what a borrowed GPU machine can send back.

``--prepare DIR`` (here, before a device session) writes what the device machine lacks into DIR,
which must be git-ignored: FER2013 Training + PublicTest packed losslessly (xz, about 50 MB;
never committed) and, with ``--wheels``, Brevitas and its two small dependencies as wheels. The
device command (carry DIR; its python3 has torch). Give it a fresh ``--runs`` folder: a machine
still warm from an earlier call keeps that call's git-ignored ``runs/``, and finished runs found
there are skipped, not retrained:

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .gpu/whl/*.whl &&
    PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 python3 scripts/train_all_gpu.py --parallel
        --data .gpu/fer2013_train_public.npz --runs /tmp/gpu_runs --deadline-min 9 --reserve-min 0.8
        --pack $OUT 2>&1 | tee $OUT/log

then here: ``tar -xf results-N.tar -C runs/gpuN`` for each, and ``bdnn ship runs/gpuN/RUN models/X``
measures PrivateTest (not carried) for the card (a run started from another run's ``best.pt`` on the
device finds it by name in ``runs/``). ``--prepare`` says when tree + pack exceed what a call may
carry; then move a model folder the plan does not read out of the working tree for the calls and
``git checkout`` it after.
"""
from __future__ import annotations

import argparse
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
from bdnn.contract import MODEL_CARD_FILE, RUN_WORKER_FILE  # noqa: E402  (numpy only)

PACK_FILE_LIMIT = 16 * 2 ** 20   # what a device machine sends back: 8 files of 16 MiB
PACK_MAX_FILES = 8
PACKED_DATA = "fer2013_train_public.npz"
BREVITAS_WHEELS = ("brevitas==0.13.4", "dependencies==2.0.1", "unfoldNd==0.2.3")
AUTO = "auto"
SAFETY = 1.15        # a fitted epoch count leaves this much slack on the measured epoch time


# -- data ----------------------------------------------------------------------------------------
def pack_data(fer, path: Path, splits=("Training", "PublicTest")) -> Path:
    """FER2013 splits losslessly in an npz: the pixels as one xz stream with a row-delta filter
    (neighbouring rows of a face are alike; ~30 % smaller than the raw pixels and smaller than PNG),
    plus labels and usage: small enough to travel to a device machine."""
    import lzma

    import numpy as np

    from bdnn.data import SPLITS
    keep = np.isin(fer.usage, [SPLITS.index(s) for s in splits])
    pixels = np.ascontiguousarray(fer.pixels[keep])
    filters = [{"id": lzma.FILTER_DELTA, "dist": pixels.shape[-1]}, {"id": lzma.FILTER_LZMA2, "preset": 9}]
    xz = lzma.compress(pixels.tobytes(), format=lzma.FORMAT_XZ, filters=filters)
    np.savez(path, pixels_xz=np.frombuffer(xz, np.uint8), shape=np.asarray(pixels.shape),
             labels=fer.labels[keep], usage=fer.usage[keep])
    return path


def load_data(path: str | None):
    """FER2013 from a packed file (``pack_data``) or anything ``bdnn.data.load_fer2013`` reads."""
    import numpy as np

    from bdnn.data import FER2013, load_fer2013
    if path and Path(path).is_file() and Path(path).suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            if "pixels_xz" in z.files:
                import lzma
                pixels = np.frombuffer(lzma.decompress(z["pixels_xz"].tobytes()), np.uint8).reshape(z["shape"])
                return FER2013(pixels, z["labels"], z["usage"], f"{path} (packed)")
    return load_fer2013(path)


CARRY_LIMIT = 64 * 2 ** 20  # what one device call takes along: the working tree and its carried folders


def disk_bytes(f: Path) -> int:
    """A file's size as the device limit appears to count it: whole disk blocks (a tree of 63.9 MiB in bytes
    was refused as over 64 MiB; in blocks it was 64.3)."""
    st = f.stat()
    return max(st.st_size, st.st_blocks * 512)


def travelling_bytes(extra: Path) -> int:
    """Bytes a device call would send: git's tracked and untracked-not-ignored files, plus ``extra``."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode()
    files = [REPO / f for f in listed.split("\0") if f]
    return (sum(disk_bytes(f) for f in files if f.is_file())
            + sum(disk_bytes(f) for f in Path(extra).rglob("*") if f.is_file()))


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
    total = travelling_bytes(out)
    print(f"a device call carrying {out.name} sends {total / 2 ** 20:.1f} MiB of its {CARRY_LIMIT / 2 ** 20:.0f} MiB")
    if total > CARRY_LIMIT:
        raise SystemExit(f"{total / 2 ** 20:.1f} MiB is over the device's {CARRY_LIMIT / 2 ** 20:.0f} MiB: the call would be "
                         "refused; shrink the working tree (large tracked files) or the pack")


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
        args = {k: (v.replace("{runs}", str(runs)) if isinstance(v, str) and k != "epochs" else v)
                for k, v in r["args"].items()}
        # "epochs": "auto" fills the run's share of the time left (measured on the machine at its start)
        r["auto"] = args.get("epochs") == AUTO
        if r["auto"]:
            args["epochs"] = 1  # a placeholder until the worker has measured an epoch
        elif epochs_scale != 1.0:
            args["epochs"] = max(1, round(args.get("epochs", TrainConfig.epochs) * epochs_scale))
        args.update({k: v for k, v in overrides.items() if not (k == "epochs" and r["auto"])})
        try:
            r["config"] = TrainConfig(**args)
            check_config(r["config"])
        except (TypeError, ValueError) as e:
            raise SystemExit(f"{path}: run {r['name']}: {e}") from None
        share = r.get("share", 1.0)
        if not (isinstance(share, (int, float)) and 0 < share <= 1):
            raise SystemExit(f"{path}: run {r['name']}: share {share!r} must be in (0, 1]")
        for dep in r.get("after", []) + r.get("not_before", []):
            if dep not in names:
                raise SystemExit(f"{path}: run {r['name']} waits for {dep!r}, which is not in the plan")
    groups: dict[str, list[dict]] = {}
    for r in plan:
        if r.get("group"):
            groups.setdefault(r["group"], []).append(r)
    for g, members in groups.items():
        if len({tuple(sorted(m.get("after", []))) for m in members}) > 1:
            raise SystemExit(f"{path}: group {g!r}: its runs must wait for the same runs (they start together)")
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
        if planned is None and r["auto"]:
            if deadline == float("inf"):
                raise SystemExit(f"{name}: 'epochs': 'auto' needs --deadline-min (or --parallel)")
            autos_left = sum(1 for q in plan[plan.index(r):] if q["auto"] and run_state(runs / q["name"])[1] is None)
            cfg, info = fit_epochs(r, data, deadline - reserve_s, share=r.get("share", 1.0) / autos_left)
            log(f"{name}: {info['fit_note']}")
            if cfg is None:
                rec.update(status="not started", epochs_done=0)
                continue
            rec["epochs_planned"] = cfg.epochs
        elif planned is not None and planned != cfg.epochs:
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
        rec.update(_best_public(out))
    return list(summary.values())


def fit_epochs(r: dict, data, until: float, share: float = 1.0):
    """(config with the epochs that fit, info) for a fresh run: an "auto" run gets as many epochs as
    fit into ``share`` of the time left before ``until`` (measured now, on this machine, under its
    present load), a fixed one at most its planned epochs. (None, info) when not one epoch fits."""
    from dataclasses import replace

    from bdnn.train import estimate_epoch_seconds
    cfg = r["config"]
    est = estimate_epoch_seconds(cfg, data)
    left = until - time.time()
    # one epoch's time is kept back for the run's own start (model, selection crops, first checkpoint)
    fit = max(0, int((share * left - est["epoch_s"]) // (SAFETY * est["epoch_s"]))) if left > 0 else 0
    epochs = fit if r["auto"] else min(cfg.epochs, fit)
    info = {"estimate": est, "time_left_s": round(left, 1), "share": share, "fit_epochs": fit, "epochs": epochs,
            "fit_note": f"an epoch takes ~{est['epoch_s']:.1f} s here ({est['step_s'] * 1e3:.0f} ms/step x "
                        f"{est['steps_per_epoch']}, selection {est['eval_s']:.1f} s); {fit} fit into "
                        f"{share:.0%} of {max(left, 0):.0f} s -> {epochs} epochs"
                        + (" (auto)" if r["auto"] else f" (planned {cfg.epochs})")}
    return (replace(cfg, epochs=epochs) if epochs >= 1 else None), info


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
        current = models_dir / model / MODEL_CARD_FILE
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


# -- parallel mode: one worker process per run, all on the same device --------------------------------
def _write_json(path: Path, obj) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    os.replace(tmp, path)


def worker(r: dict, runs: Path, data_path: str, until: float, threads: int) -> int:
    """Train one run of the plan (in its own process): fit its epochs (fresh runs), wait for its
    group's common epoch count, train to the end or until ``until``. Writes RUNS/<name>/worker.json."""
    import torch

    from bdnn.train import train
    name, out = r["name"], runs / r["name"]
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(threads)
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True
    t0 = time.time()
    data = load_data(data_path)
    info = {"name": name, "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
            "threads": threads}
    cfg = r["config"]
    done, planned = run_state(out)
    if planned is None:
        cfg, fit = fit_epochs(r, data, until, share=r.get("share", 1.0))
        info.update({k: v for k, v in fit.items() if k != "fit_note"})
        print(fit["fit_note"], flush=True)
        if r.get("group"):
            # every run of a group trains the same number of epochs (an ablation at equal budget)
            _write_json(out / "calib.json", {"epochs": fit["epochs"]})
            go = out / "go.json"
            while not go.exists():
                if time.time() > until:
                    print("the group's epoch count never came; stopping", flush=True)
                    return 1
                time.sleep(0.5)
            epochs = json.loads(go.read_text())["epochs"]
            info["group_epochs"] = epochs
            from dataclasses import replace
            cfg = replace(r["config"], epochs=epochs) if epochs >= 1 else None
        if cfg is None:
            info["status"] = "no time for one epoch"
            _write_json(out / RUN_WORKER_FILE, info)
            print(info["status"], flush=True)
            return 0
    info["epochs"] = planned or cfg.epochs
    _write_json(out / RUN_WORKER_FILE, info)
    train(cfg, out, data=data, resume=done > 0, deadline=until)
    info["seconds"] = round(time.time() - t0, 1)
    _write_json(out / RUN_WORKER_FILE, info)
    return 0


def run_parallel(plan: list[dict], runs: Path, data, argv_common: list[str], until: float, hard_stop: float,
                 log, poll_s: float = 0.5, report_s: float = 30.0) -> dict:
    """Start a worker process per run as soon as the runs it waits for are finished (a group's runs
    together, with the smallest epoch count any of them fits); log progress; stop every worker at
    ``hard_stop``. Returns {name: worker exit status or a reason}."""
    import signal
    import tempfile

    import numpy as np
    tmp = Path(tempfile.mkdtemp(prefix="bdnn_gpu_"))
    data_file = tmp / "fer2013.npz"  # unpacked once, read by every worker
    np.savez(data_file, pixels=data.pixels, labels=data.labels, usage=data.usage)
    threads = max(1, (os.cpu_count() or 2) // max(1, len(plan)))
    env = dict(os.environ, PYTHONUNBUFFERED="1", TQDM_MININTERVAL="15")
    status: dict[str, object] = {r["name"]: "pending" for r in plan}
    procs, logs, started = {}, {}, {}
    groups: dict[str, list[str]] = {}
    for r in plan:
        if r.get("group"):
            groups.setdefault(r["group"], []).append(r["name"])
    released: set[str] = set()
    last_report = time.time()
    try:
        while True:
            now = time.time()
            for r in plan:
                name = r["name"]
                if status[name] != "pending":
                    continue
                deps = r.get("after", [])
                failed = [d for d in deps if d in status and status[d] not in ("pending", "running")
                          and not _finished(runs / d)]
                if failed or any(d not in status and not _finished(runs / d) for d in deps):
                    status[name] = f"skipped: {', '.join(failed or deps)} did not finish"
                    log(f"{name}: {status[name]}")
                    continue
                # not_before: start once those runs have ended, however they ended (--parallel only)
                soft = [d for d in r.get("not_before", []) if status.get(d) in ("pending", "running")]
                if not soft and all(_finished(runs / d) for d in deps):
                    (runs / name).mkdir(parents=True, exist_ok=True)
                    for f in ("calib.json", "go.json"):
                        (runs / name / f).unlink(missing_ok=True)
                    logs[name] = open(runs / name / "train.log", "a")
                    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--runs", str(runs),
                           "--data", str(data_file), "--until", str(until), "--threads", str(threads), *argv_common]
                    procs[name] = subprocess.Popen(cmd, stdout=logs[name], stderr=subprocess.STDOUT, env=env)
                    status[name], started[name] = "running", now
                    log(f"{name}: started ({r['config'].arch}"
                        + (f", epochs auto" if r["auto"] else f", {r['config'].epochs} epochs")
                        + (f", group {r['group']}" if r.get("group") else "") + ")")
            for g, members in groups.items():
                if g in released:
                    continue
                calib = [runs / m / "calib.json" for m in members]
                if all(status[m] == "running" for m in members) and all(c.exists() for c in calib):
                    epochs = min(json.loads(c.read_text())["epochs"] for c in calib)
                    for m in members:
                        _write_json(runs / m / "go.json", {"epochs": epochs})
                    released.add(g)
                    log(f"group {g}: {', '.join(members)} train {epochs} epochs each")
            for name, p in procs.items():
                if status[name] == "running" and p.poll() is not None:
                    status[name] = p.returncode
                    logs[name].close()
                    d, pl = run_state(runs / name)
                    log(f"{name}: worker ended (exit {p.returncode}) after {now - started[name]:.0f} s, "
                        f"{d}/{pl or '?'} epochs" + _best_note(runs / name))
            if all(v != "pending" and v != "running" for v in status.values()):
                break
            if now >= hard_stop:
                for name, p in procs.items():
                    if status[name] == "running":
                        p.send_signal(signal.SIGTERM)
                        status[name] = "stopped at the deadline"
                        log(f"{name}: stopped at the deadline")
                for p in procs.values():
                    try:
                        p.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        p.kill()
                break
            if now - last_report >= report_s:
                last_report = now
                running = [n for n, v in status.items() if v == "running"]
                log("progress: " + "; ".join(f"{n} {'/'.join(map(str, _epochs(runs / n)))}{_best_note(runs / n)}"
                                             for n in running))
            time.sleep(poll_s)
    finally:
        for name, p in procs.items():
            if p.poll() is None:
                p.kill()
        for f in logs.values():
            f.close()
        data_file.unlink(missing_ok=True)
        tmp.rmdir()
    return status


def _epochs(out: Path) -> tuple:
    w = out / RUN_WORKER_FILE
    planned = json.loads(w.read_text()).get("epochs", "?") if w.exists() else "?"
    m = out / "metrics.json"
    done = len(json.loads(m.read_text())) if m.exists() else 0
    return done, planned


def _best_public(out: Path) -> dict:
    """{"best_public_fivecrop", "best_epoch"} of a run folder's metrics ({} before its first epoch)."""
    m = out / "metrics.json"
    hist = json.loads(m.read_text()) if m.exists() else []
    if not hist:
        return {}
    b = max(hist, key=lambda h: h["val_acc_fivecrop_mean"])
    return {"best_public_fivecrop": b["val_acc_fivecrop_mean"], "best_epoch": b["epoch"]}


def _best_note(out: Path) -> str:
    b = _best_public(out)
    return f" (best PublicTest {b['best_public_fivecrop']:.2%} at {b['best_epoch']})" if b else ""


def parallel_summary(plan: list[dict], runs: Path, status: dict) -> list[dict]:
    out = []
    for r in plan:
        d = runs / r["name"]
        done, planned = run_state(d)
        rec = {"name": r["name"], "arch": r["config"].arch, "epochs_planned": planned, "epochs_done": done,
               "worker": status.get(r["name"])}
        rec["status"] = ("done" if planned and done >= planned else "stopped" if done else "not started")
        w = d / RUN_WORKER_FILE
        if w.exists():
            info = json.loads(w.read_text())
            rec["seconds"] = info.get("seconds")
            rec["epoch_s_estimate"] = info.get("estimate", {}).get("epoch_s")
        rec.update(_best_public(d))
        out.append(rec)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--plan", default=str(REPO / "scripts" / "gpu_plans" / "next.json"), help="the planned runs (JSON)")
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
    p.add_argument("--parallel", action="store_true",
                   help="one worker process per run, all at once on the device (a run starts when the runs in its "
                        "'after' are finished); needs --deadline-min")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)   # --parallel's worker: train this run
    p.add_argument("--until", type=float, default=0, help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.prepare:
        prepare(Path(a.prepare), a.data, a.wheels)
        return 0
    t_start = time.time()
    deadline = t_start + 60 * a.deadline_min if a.deadline_min else float("inf")
    runs = Path(a.runs)
    plan = load_plan(Path(a.plan), runs, a.only, parse_overrides(a.overrides), a.epochs_scale)
    if a.worker:
        return worker(next(r for r in plan if r["name"] == a.worker), runs, a.data, a.until, a.threads)
    if a.parallel and not a.deadline_min:
        raise SystemExit("--parallel needs --deadline-min (the workers fit their epochs into it)")
    import torch
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"

    def log(msg):
        print(f"[{time.time() - t_start:7.0f} s] {msg}", flush=True)

    from dataclasses import asdict
    for r in plan:
        done, planned = run_state(runs / r["name"])
        cfg = {k: v for k, v in asdict(r["config"]).items() if k not in ("arch",)}
        cfg.pop("epochs")
        total = planned or (AUTO if r["auto"] else r["config"].epochs)
        log(f"plan: {r['name']} ({r['config'].arch}, {done}/{total} epochs done"
            + (f", after {', '.join(r['after'])}" if r.get("after") else "")
            + (f", not before {', '.join(r['not_before'])} ended" if r.get("not_before") else "")
            + (f", group {r['group']}" if r.get("group") else "") + f"): {json.dumps(cfg)}")
    if a.dry_run:
        return 0
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True
    from bdnn.engine import kernel_name
    log(f"device {device}; exact PublicTest evaluation on the cpu engine: {kernel_name()}, {os.cpu_count()} cores")
    data = load_data(a.data)
    runs.mkdir(parents=True, exist_ok=True)
    reserve = 60 * a.reserve_min if a.deadline_min else 0.0
    if a.parallel:
        common = ["--plan", str(Path(a.plan).resolve()), "--epochs-scale", str(a.epochs_scale)]
        for o in a.overrides:
            common += ["--set", o]
        status = run_parallel(plan, runs, data, common, until=deadline - reserve, hard_stop=deadline - reserve / 2,
                              log=log)
        summary = parallel_summary(plan, runs, status)
    else:
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
    log("summary: " + ", ".join(f"{s['name']} {s['status']} ({s.get('epochs_done', 0)}/{s['epochs_planned']})"
                                + (f" PublicTest {s['best_public_fivecrop']:.2%}" if "best_public_fivecrop" in s else "")
                                for s in summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
