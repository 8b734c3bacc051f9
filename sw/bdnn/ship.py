"""Package a training run as a shipped model: compact artifact + model card + plots.

Accuracies in the card are measured here, in fp32 (exactly what the hardware computes), on
PublicTest (the split used for selection) and PrivateTest (reported, never used to choose).
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .artifact import load, save
from .contract import MODEL_CARD_FILE, MODEL_FILE, START_CARD_FILE
from .data import CLASS_NAMES, load_fer2013
from .errors import BdnnError


class ShipError(BdnnError, ValueError):
    """A run that cannot be shipped as asked."""


_NOT_IN_COMMAND = ("arch", "max_train_batches", "max_eval_faces", "threads", "eval_batch")


def train_command(run_name: str, cfg: dict, parent: str = "") -> str:
    """The ``bdnn train`` command line that makes a run with this config (paths relative to runs/)."""
    from .config import LEVER_DEFAULTS
    args = [f"bdnn train --arch {cfg['arch']} --out runs/{run_name}"]
    for k, v in cfg.items():
        if k in _NOT_IN_COMMAND or v == "" or (k in LEVER_DEFAULTS and v == LEVER_DEFAULTS[k]):
            continue
        flag = "--" + k.replace("_", "-")
        if k == "init_from":
            v = parent
        if isinstance(v, bool):
            args.append(flag if v else "--no-" + flag[2:])
        else:
            args.append(f"{flag} {v}")
    return " ".join(args)


def _run_device(run: Path) -> str:
    """Where a run trained: scripts/train_all_gpu.py's workers record it, else this machine's CPU."""
    from .contract import CPU_TRAIN_DEVICE, RUN_WORKER_FILE
    w = Path(run) / RUN_WORKER_FILE
    if w.is_file():
        dev = json.loads(w.read_text()).get("device")
        if dev and dev != "cpu":
            return dev
    return CPU_TRAIN_DEVICE


def train_device(stages: list[dict]) -> str:
    from .contract import CPU_TRAIN_DEVICE
    return " + ".join(dict.fromkeys(st.get("device", CPU_TRAIN_DEVICE) for st in stages))


def run_lineage(run: Path) -> list[dict]:
    """The training runs behind ``run``, oldest first: each ``--init-from`` parent, then ``run``.

    A warm restart starts from another run's checkpoint, so the shipped weights are the product of
    the whole chain: the card records every stage's recipe, curve, time and command.
    """
    stages, seen, child_from = [], set(), None
    run = Path(run).resolve()
    while True:
        if run in seen:
            raise ValueError(f"{run}: --init-from chain loops back on itself")
        seen.add(run)
        first = run
        for f in ("config.json", "metrics.json"):
            if not (run / f).exists():
                raise FileNotFoundError(f"{run / f} is missing: ship needs every run of the --init-from chain "
                                        "(config.json + metrics.json) to document the model")
        cfg = json.loads((run / "config.json").read_text())
        history = json.loads((run / "metrics.json").read_text())
        used = None
        if child_from is not None:  # the epoch of this run whose weights the next stage started from
            used = _used_epoch(child_from, run)
        stages.insert(0, {"run": run.name, "recipe": cfg, "history": history, "epochs_run": len(history),
                          "epochs_planned": cfg.get("epochs"), "used_epoch": used,
                          "train_hours": round(sum(h.get("train_seconds", 0.0) for h in history) / 3600, 2),
                          "device": _run_device(run)})
        if not cfg.get("init_from") or Path(cfg["init_from"]).is_dir():
            break
        child_from = Path(cfg["init_from"])
        run = _parent_run(child_from, run)
    shipped = stages[0]["recipe"].get("init_from", "")
    for i, st in enumerate(stages):
        parent = f"runs/{stages[i - 1]['run']}/{Path(st['recipe']['init_from']).name}" if i else ""
        if not i and shipped:  # started from a shipped model folder (bdnn.train.load_init_weights)
            parent = f"models/{Path(shipped).name}"
        st["command"] = train_command(st["run"], st["recipe"], parent)
        if parent:  # the card names runs relative to runs/, not this machine's paths
            st["recipe"] = {**st["recipe"], "init_from": parent}
    start = shipped_model_stages(Path(shipped), {st["run"] for st in stages}, first / START_CARD_FILE) if shipped else []
    return start + stages


def _parent_run(checkpoint: Path, child: Path) -> Path:
    """The run folder of a parent checkpoint. A run trained on a borrowed device names the device's path
    (/tmp/gpu_runs3/X/best.pt); here its results sit in some folder of runs (runs/gpu3/X): look for
    the one run of that name beside the child or one folder up."""
    run = checkpoint.resolve().parent
    if run.is_dir():
        return run
    found = {p.resolve() for p in (child.parent / run.name, *child.parent.parent.glob(f"*/{run.name}"))
             if (p / "config.json").is_file()}
    if len(found) != 1:
        raise FileNotFoundError(f"{checkpoint}: the run that made this --init-from checkpoint is not here "
                                f"({'several' if found else 'no'} runs named {run.name!r} beside {child}); "
                                "ship needs every run of the --init-from chain")
    return found.pop()


def _used_epoch(checkpoint: Path, run: Path) -> int | None:
    """The epoch of ``run`` a checkpoint holds: read from it, or, for a best.pt that stayed on a
    device, the best epoch recorded in the run's model.npz."""
    if checkpoint.exists():
        from .checkpoint import load_checkpoint
        return load_checkpoint(checkpoint)["epoch"] + 1
    if checkpoint.name == "best.pt" and (run / MODEL_FILE).is_file():
        return load(run / MODEL_FILE).meta.get("epoch")
    return None


def read_card(model_dir: Path, why: str) -> dict:
    """A shipped model folder's card; FileNotFoundError saying ``why`` it is needed when it is missing."""
    card_path = Path(model_dir) / MODEL_CARD_FILE
    if not card_path.is_file():
        raise FileNotFoundError(f"{card_path} is missing: {why}")
    return json.loads(card_path.read_text())


def card_stages(card: dict) -> list[dict]:
    """A shipped model's training stages from its card, the last with its learning curve."""
    if "stages" in card:
        stages = [dict(st) for st in card["stages"]]
    else:  # cards from before warm restarts were recorded: one stage
        out_arg = card["reproduce"].split("--out ", 1)[-1].split()[0] if "--out " in card["reproduce"] else ""
        stages = [{"run": Path(out_arg).name, "recipe": card["recipe"], "epochs_run": card["epochs_run"],
                   "epochs_planned": card["epochs_planned"], "used_epoch": None,
                   "train_hours": card["train_hours"], "command": card["reproduce"]}]
    stages[-1]["history"] = card["history"]
    return stages


def shipped_model_stages(model_dir: Path, chain_runs: set[str] = frozenset(), start_card: Path | None = None) -> list[dict]:
    """The stages behind a shipped model that a run started from: its card's, the last one ending
    in the epoch that was shipped and in the ``bdnn ship`` that made the folder. The card is the
    run's ``start_card`` (the folder's card copied when the run started) where there is one; runs
    from before that snapshot read the folder's card as it is now, which may have been re-shipped
    since: from a run of this very chain (``chain_runs``) only its stages before that run are the
    start (they already end in their own epoch and ship command)."""
    if start_card is not None and Path(start_card).is_file():
        card = json.loads(Path(start_card).read_text())
    else:
        card = read_card(model_dir, f"a run started from the shipped model {model_dir} needs its card to document the model")
    stages = card_stages(card)
    cut = next((i for i, st in enumerate(stages) if st["run"] in chain_runs), None)
    if cut is not None:
        return stages[:cut]
    last = stages[-1]
    last["used_epoch"] = card["best_epoch"]
    last["command"] = f"{last['command']} && bdnn ship runs/{last['run']} models/{model_dir.name}"
    return stages


def chained_history(stages: list[dict]) -> tuple[list[dict], list[int]]:
    """One learning curve across a chain: each stage continues from the epoch the next one started
    from. Returns the records (epochs renumbered) and the epochs where a restart happened."""
    out, offset, restarts = [], 0, []
    for i, st in enumerate(stages):
        last = i == len(stages) - 1
        hist = st["history"] if last or st["used_epoch"] is None else st["history"][:st["used_epoch"]]
        out += [{**h, "epoch": h["epoch"] + offset} for h in hist]
        offset += len(hist)
        if not last:
            restarts.append(offset)
    return out, restarts


def _stages_text(stages: list[dict]) -> str:
    if len(stages) == 1:
        return ""
    lines = [f"- Trained in {len(stages)} stages, each starting from the previous one's weights (fresh optimizer and schedule):"]
    for st in stages:
        r = st["recipe"]
        used = f", continued from its epoch {st['used_epoch']}" if st["used_epoch"] else ""
        if str(r.get("init_from", "")).startswith("models/"):
            used += f", started from the shipped {r['init_from']} (its binary weights)"
        lines.append(f"  `{st['run']}`: {st['epochs_run']} epochs, {r.get('loss')}, {r.get('optimizer')} lr {r.get('lr')} "
                     f"({r.get('schedule')} over {r.get('epochs')}), seed {r.get('seed')}, {st['train_hours']} h{used};")
    return "\n".join(lines) + "\n"


def ship(run: Path, out: Path, data_path=None, command: str | None = None, data=None) -> dict:
    """Package training run ``run`` (and its ``--init-from`` parents) as model folder ``out``."""
    run = Path(run)
    cfg = json.loads((run / "config.json").read_text()) if (run / "config.json").exists() else {}
    if cfg.get("binary_weights") is False:
        raise ShipError(f"{run} is a latent-weight stage (--no-binary-weights: real weights), not a hardware model; "
                        f"train stage 2 with --init-from {run}/best.pt and ship that run")
    from .arch import is_teacher
    if is_teacher(cfg.get("arch", "")):
        return _package_teacher(run, run_lineage(run), Path(out), data_path, command, data)
    return _package(load(run / MODEL_FILE), run_lineage(run), Path(out), data_path, command, data)


def repackage(model_dir: Path, out: Path | None = None, data_path=None, data=None) -> dict:
    """Re-package a shipped model (in place by default) from its own card -- its training runs may
    be long gone: the artifact goes through today's export fixes and every accuracy is measured again."""
    model_dir = Path(model_dir)
    card = read_card(model_dir, f"{model_dir} is not a shipped model (nor a training run)")
    return _package(load(model_dir / MODEL_FILE), card_stages(card), Path(out or model_dir), data_path, card["reproduce"], data)


def _package(art, stages: list[dict], out: Path, data_path, command, data) -> dict:
    from .backends import CpuBackend
    from .thresholds import centre_thresholds, threshold_margins
    from .evaluate import evaluate
    from .plots import plot_confusion, plot_learning_curve
    out.mkdir(parents=True, exist_ok=True)
    # runs trained before thresholds were centred at export carry fp32 near-ties: centre them here
    margin_before = min(threshold_margins(art.spec, art.layers).values())
    art.layers = centre_thresholds(art.spec, art.layers)
    save(out / MODEL_FILE, art.spec, art.layers, art.meta)
    cfg, history = stages[-1]["recipe"], stages[-1]["history"]
    data = data if data is not None else load_fer2013(data_path)
    backend = CpuBackend(out)  # bit-exact with Brevitas fp32 (tests/test_engine.py), much faster
    results = {}
    for split in ("PublicTest", "PrivateTest"):
        faces, labels = data.split(split)
        r = evaluate(backend, faces, labels)
        r.pop("scores")
        results[split] = r
    priv = results["PrivateTest"]
    plot_confusion(np.asarray(priv["confusion_matrix"]), CLASS_NAMES, out / "confusion_matrix.png",
                   f"{art.spec.name}, PrivateTest, five-crop mean {priv['acc_fivecrop_mean']:.2%}")
    curve, restarts = chained_history(stages)
    plot_learning_curve(curve, out / "learning_curve.png", f"{art.spec.name} ({cfg.get('loss')})"
                        + (f", {len(stages)} stages" if restarts else ""), restarts=restarts)
    best_epoch = art.meta.get("epoch")
    reproduce = command or " && ".join(st["command"] for st in stages)
    card = {
        "model": art.spec.name, "architecture": art.spec.to_dict(),
        "weight_bits": art.spec.weight_bits(), "macs_per_crop": art.spec.macs_per_crop(),
        "data": {"dataset": "FER2013", "train_split": "Training (28,709 faces)",
                 "selection_split": "PublicTest (best epoch by five-crop mean accuracy)",
                 "report_split": "PrivateTest (never used for any choice)"},
        "recipe": cfg, "epochs_run": len(history), "epochs_planned": cfg.get("epochs"), "best_epoch": best_epoch,
        "seed": cfg.get("seed"), "train_hours": round(sum(st["train_hours"] for st in stages), 2),
        "train_device": train_device(stages),
        "accuracy": {s: {k: r[k] for k in ("n", "acc_center", "acc_fivecrop_mean", "acc_fivecrop_vote",
                                            "per_class_recall")} for s, r in results.items()},
        "evaluation": "integer engine (cpu backend), bit-exact with Brevitas fp32 eval and the FINN graph; no bf16",
        "sign_thresholds": {"centred": True, "min_margin_before": round(margin_before, 6),
                            "min_margin": round(min(threshold_margins(art.spec, art.layers).values()), 6)},
        "reproduce": reproduce,
        "history": history,
        "stages": [{k: v for k, v in st.items() if k != "history"} | ({"history": st["history"]} if i < len(stages) - 1 else {})
                   for i, st in enumerate(stages)],
        "packaged": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    (out / MODEL_CARD_FILE).write_text(json.dumps(card, indent=2))
    pub = results["PublicTest"]
    (out / "README.md").write_text(f"""# {art.spec.name.upper()} model card

Binarized {'dense ' if art.spec.dense else ''}CNN, blocks {list(art.spec.block_channels)}, FC {list(art.spec.fc_hidden)} -> 7;
{art.spec.weight_bits() / 1e6:.2f} Mbit of binary weights, {art.spec.macs_per_crop() / 1e6:.0f} M binary MACs per 42x42 crop.

| split | faces | centre crop | five-crop mean | five-crop vote |
|---|---|---|---|---|
| PublicTest (selection) | {pub['n']} | {pub['acc_center']:.2%} | {pub['acc_fivecrop_mean']:.2%} | {pub['acc_fivecrop_vote']:.2%} |
| PrivateTest (report) | {priv['n']} | {priv['acc_center']:.2%} | {priv['acc_fivecrop_mean']:.2%} | {priv['acc_fivecrop_vote']:.2%} |

- Trained on FER2013 Training; epoch {best_epoch} of {len(history)} run ({cfg.get('epochs')} planned), the best on PublicTest five-crop mean accuracy.
{_stages_text(stages)}- Recipe: loss {cfg.get('loss')}, {cfg.get('optimizer')} lr {cfg.get('lr')} ({cfg.get('schedule')}), batch {cfg.get('batch_size')},
  augmentation {cfg.get('augment')}{' + flip' if cfg.get('flip') else ''}, seed {cfg.get('seed')}, bf16 training; {card['train_hours']} h on {card['train_device']}.
- Accuracies measured exactly (integer engine, bit-exact with Brevitas fp32 and the FINN graph). PrivateTest recall per class:
  {', '.join(f'{k} {v:.1%}' for k, v in priv['per_class_recall'].items())}.
- Every BN+sign threshold sits mid-way between two integer accumulators (smallest margin {card['sign_thresholds']['min_margin']:.2f};
  {card['sign_thresholds']['min_margin_before']:.1e} as trained), so fp32 and integer paths cannot split a near-tie.
- Reproduce: `{card['reproduce']}{f' --stop-after {len(history)}' if len(history) < (cfg.get('epochs') or 0) else ''}`, then `bdnn ship RUN models/{art.spec.name}`.

Files: `model.npz` (bit-packed weights + norm parameters), `card.json`, `learning_curve.png`, `confusion_matrix.png`.
""")
    return card


def _package_teacher(run: Path, stages: list[dict], out: Path, data_path, command, data) -> dict:
    """A full-precision teacher: ``teacher.npz`` + card (fp32 torch accuracy; never on the hardware path)."""
    import shutil

    from .evaluate import evaluate
    from .plots import plot_confusion, plot_learning_curve
    from .teacher import TEACHER_FILE, load_teacher, save_teacher
    src = run / TEACHER_FILE
    if not src.exists():
        raise ShipError(f"{src} is missing: the run has not finished an epoch")
    out.mkdir(parents=True, exist_ok=True)
    # shipped with float16 storage (half the size in git); the card measures the shipped file
    with np.load(src, allow_pickle=False) as z:
        meta = json.loads(bytes(z["__header__"]).decode()).get("meta", {})
    save_teacher(load_teacher(src), out / TEACHER_FILE, meta=meta, half=True)
    net = load_teacher(out / TEACHER_FILE)

    class _Torch:  # the evaluate() backend interface, fp32
        name = "torch fp32"

        def crop_scores(self, crops):
            from .nn import predict_scores
            return predict_scores(net, crops)

    data = data if data is not None else load_fer2013(data_path)
    results = {}
    for split in ("PublicTest", "PrivateTest"):
        r = evaluate(_Torch(), *data.split(split))
        r.pop("scores")
        results[split] = r
    cfg, history = stages[-1]["recipe"], stages[-1]["history"]
    priv, pub = results["PrivateTest"], results["PublicTest"]
    plot_confusion(np.asarray(priv["confusion_matrix"]), CLASS_NAMES, out / "confusion_matrix.png",
                   f"{net.name}, PrivateTest, five-crop mean {priv['acc_fivecrop_mean']:.2%}")
    curve, restarts = chained_history(stages)
    plot_learning_curve(curve, out / "learning_curve.png", f"{net.name} ({cfg.get('loss')})", restarts=restarts)
    n_params = sum(p.numel() for p in net.parameters())
    card = {
        "model": net.name, "role": "teacher", "hardware": False,
        "architecture": {"kind": "VGG-style full precision", "parameters": n_params},
        "data": {"dataset": "FER2013", "train_split": "Training (28,709 faces)",
                 "selection_split": "PublicTest (best epoch by five-crop mean accuracy)",
                 "report_split": "PrivateTest (never used for any choice)"},
        "recipe": cfg, "epochs_run": len(history), "epochs_planned": cfg.get("epochs"),
        "best_epoch": max(history, key=lambda h: h["val_acc_fivecrop_mean"])["epoch"],  # the first best, as train keeps
        "seed": cfg.get("seed"), "train_hours": round(sum(st["train_hours"] for st in stages), 2),
        "train_device": train_device(stages),
        "accuracy": {s: {k: r[k] for k in ("n", "acc_center", "acc_fivecrop_mean", "acc_fivecrop_vote",
                                            "per_class_recall")} for s, r in results.items()},
        "evaluation": "torch fp32 eval (a teacher is not on the hardware path)",
        "reproduce": command or " && ".join(st["command"] for st in stages),
        "history": history,
        "stages": [{k: v for k, v in st.items() if k != "history"} for st in stages],
        "packaged": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    (out / MODEL_CARD_FILE).write_text(json.dumps(card, indent=2))
    (out / "README.md").write_text(f"""# {net.name} (teacher) model card

Full-precision VGG-style CNN ({n_params / 1e6:.2f} M float parameters) on the same 42x42 crops, trained by
`bdnn train --arch {net.name}` as the teacher for knowledge distillation (`bdnn train --teacher {out}`).
**Not a hardware model**: no FINN export, no cpu engine; accuracies are torch fp32.

| split | faces | centre crop | five-crop mean | five-crop vote |
|---|---|---|---|---|
| PublicTest (selection) | {pub['n']} | {pub['acc_center']:.2%} | {pub['acc_fivecrop_mean']:.2%} | {pub['acc_fivecrop_vote']:.2%} |
| PrivateTest (report) | {priv['n']} | {priv['acc_center']:.2%} | {priv['acc_fivecrop_mean']:.2%} | {priv['acc_fivecrop_vote']:.2%} |

- Epoch {card['best_epoch']} of {len(history)} run ({cfg.get('epochs')} planned), the best on PublicTest five-crop mean.
- Recipe: loss {cfg.get('loss')}, {cfg.get('optimizer')} lr {cfg.get('lr')} ({cfg.get('schedule')}), weight decay {cfg.get('weight_decay')},
  batch {cfg.get('batch_size')}, augmentation {cfg.get('augment')}{' + flip' if cfg.get('flip') else ''}, seed {cfg.get('seed')}; {card['train_hours']} h on {card['train_device']}.
- Reproduce: `{card['reproduce']}`, then `bdnn ship RUN models/{net.name}`.

Files: `teacher.npz` (float weights stored as float16, numpy; computed in fp32), `card.json`, `learning_curve.png`, `confusion_matrix.png`.
""")
    return card
