"""Package a training run as a shipped model: compact artifact + model card + plots.

Accuracies in the card are measured here, in fp32 (exactly what the hardware computes), on
PublicTest (the split used for selection) and PrivateTest (reported, never used to choose).
"""
from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .artifact import load
from .data import CLASS_NAMES, load_fer2013


def ship(run: Path, out: Path, data_path=None, command: str | None = None) -> dict:
    from .backends import CpuBackend
    from .evaluate import evaluate
    from .plots import plot_confusion
    run, out = Path(run), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    art_src = run / "model.npz"
    art = load(art_src)
    shutil.copyfile(art_src, out / "model.npz.tmp")
    (out / "model.npz.tmp").replace(out / "model.npz")
    cfg = json.loads((run / "config.json").read_text())
    history = json.loads((run / "metrics.json").read_text()) if (run / "metrics.json").exists() else []
    data = load_fer2013(data_path)
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
    if (run / "learning_curve.png").exists():
        shutil.copyfile(run / "learning_curve.png", out / "learning_curve.png")
    best_epoch = art.meta.get("epoch")
    train_seconds = sum(h.get("train_seconds", 0.0) for h in history)
    card = {
        "model": art.spec.name, "architecture": art.spec.to_dict(),
        "weight_bits": art.spec.weight_bits(), "macs_per_crop": art.spec.macs_per_crop(),
        "data": {"dataset": "FER2013", "train_split": "Training (28,709 faces)",
                 "selection_split": "PublicTest (best epoch by five-crop mean accuracy)",
                 "report_split": "PrivateTest (never used for any choice)"},
        "recipe": cfg, "epochs_run": len(history), "epochs_planned": cfg.get("epochs"), "best_epoch": best_epoch,
        "seed": cfg.get("seed"), "train_hours": round(train_seconds / 3600, 2),
        "accuracy": {s: {k: r[k] for k in ("n", "acc_center", "acc_fivecrop_mean", "acc_fivecrop_vote",
                                            "per_class_recall")} for s, r in results.items()},
        "evaluation": "integer engine (cpu backend), bit-exact with Brevitas fp32 eval and the FINN graph; no bf16",
        "reproduce": command or f"bdnn train --arch {art.spec.name} --out runs/{art.spec.name} " + " ".join(
            f"--{k.replace('_', '-')} {v}" if not isinstance(v, bool) else (f"--{k.replace('_', '-')}" if v else f"--no-{k.replace('_', '-')}")
            for k, v in cfg.items() if k not in ("arch", "max_train_batches", "max_eval_faces", "threads", "eval_batch") and v != ""),
        "history": history,
        "packaged": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    (out / "card.json").write_text(json.dumps(card, indent=2))
    pub = results["PublicTest"]
    (out / "README.md").write_text(f"""# {art.spec.name.upper()} model card

Binarized {'dense ' if art.spec.dense else ''}CNN, blocks {list(art.spec.block_channels)}, FC {list(art.spec.fc_hidden)} -> 7;
{art.spec.weight_bits() / 1e6:.2f} Mbit of binary weights, {art.spec.macs_per_crop() / 1e6:.0f} M binary MACs per 42x42 crop.

| split | faces | centre crop | five-crop mean | five-crop vote |
|---|---|---|---|---|
| PublicTest (selection) | {pub['n']} | {pub['acc_center']:.2%} | {pub['acc_fivecrop_mean']:.2%} | {pub['acc_fivecrop_vote']:.2%} |
| PrivateTest (report) | {priv['n']} | {priv['acc_center']:.2%} | {priv['acc_fivecrop_mean']:.2%} | {priv['acc_fivecrop_vote']:.2%} |

- Trained on FER2013 Training; epoch {best_epoch} of {len(history)} run ({cfg.get('epochs')} planned), the best on PublicTest five-crop mean accuracy.
- Recipe: loss {cfg.get('loss')}, {cfg.get('optimizer')} lr {cfg.get('lr')} ({cfg.get('schedule')}), batch {cfg.get('batch_size')},
  augmentation {cfg.get('augment')}{' + flip' if cfg.get('flip') else ''}, seed {cfg.get('seed')}, bf16 training; {card['train_hours']} h on 2 CPU cores.
- Accuracies measured exactly (integer engine, bit-exact with Brevitas fp32 and the FINN graph). PrivateTest recall per class:
  {', '.join(f'{k} {v:.1%}' for k, v in priv['per_class_recall'].items())}.
- Reproduce: `{card['reproduce']}{f' --stop-after {len(history)}' if len(history) < (cfg.get('epochs') or 0) else ''}`, then `bdnn ship RUN models/{art.spec.name}`.

Files: `model.npz` (bit-packed weights + norm parameters), `card.json`, `learning_curve.png`, `confusion_matrix.png`.
""")
    return card
