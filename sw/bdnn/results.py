"""The paper's Tables 3-4 beside the project's measured numbers, built from the model cards.

The paper's figures live here and nowhere else; the measured ones come from ``models/*/card.json``
(written by ``bdnn ship``, which evaluates the shipped artifact exactly), so the README table is
regenerated, never hand-typed: ``bdnn results``.
"""
from __future__ import annotations

import json
from pathlib import Path

# "Expression Recognition Algorithm Based on Binary Dense Convolution Neural Network", Tables 3-4,
# FER2013 test accuracy in %, five-crop averaged unless the row says otherwise.
PAPER_ACCURACY = {
    "bdnn2": 61.50,
    "bdnn3": 65.51,
    "bdnn4": 66.15,
    "bcnn4": 64.90,
    "bdnn4 without five-crop": 61.31,
}


def load_cards(models_dir: Path) -> dict[str, dict]:
    cards = {}
    for p in sorted(Path(models_dir).glob("*/card.json")):
        card = json.loads(p.read_text())
        cards[p.parent.name] = card
    return cards


def _budget(card: dict) -> tuple[str, str]:
    run, planned, best = card.get("epochs_run"), card.get("epochs_planned"), card.get("best_epoch")
    epochs = f"{run}" if run == planned else f"{run} of {planned} planned"
    if best is not None and best != run:
        epochs += f" (best: {best})"
    hours = card.get("train_hours")
    return epochs, (f"{hours:.2f} h" if hours is not None else "")


def results_rows(cards: dict[str, dict]) -> list[dict]:
    rows = []
    for key, paper in PAPER_ACCURACY.items():
        name = key.split()[0]
        card = cards.get(name)
        row = {"row": key, "paper": paper, "measured": None, "epochs": "", "train_time": "", "loss": ""}
        if card is not None:
            acc = card["accuracy"]["PrivateTest"]
            row["measured"] = 100 * (acc["acc_center"] if "without five-crop" in key else acc["acc_fivecrop_mean"])
            row["vote"] = 100 * acc["acc_fivecrop_vote"]
            row["epochs"], row["train_time"] = _budget(card)
            row["loss"] = card.get("recipe", {}).get("loss", "")
            if "without five-crop" in key:
                row["epochs"], row["train_time"] = "same model, centre crop only", ""
        rows.append(row)
    # shipped models the paper has no row for (hardware-aware variants)
    for name, card in cards.items():
        if name not in PAPER_ACCURACY:
            acc = card["accuracy"]["PrivateTest"]
            epochs, hours = _budget(card)
            rows.append({"row": name, "paper": None, "measured": 100 * acc["acc_fivecrop_mean"],
                         "vote": 100 * acc["acc_fivecrop_vote"], "epochs": epochs, "train_time": hours,
                         "loss": card.get("recipe", {}).get("loss", "")})
    return rows


def markdown_table(rows: list[dict]) -> str:
    out = ["| model | paper | this project (PrivateTest) | epochs | loss | training wall time (2 CPU cores) |",
           "|---|---|---|---|---|---|"]
    for r in rows:
        paper = f"{r['paper']:.2f} %" if r["paper"] is not None else "—"
        if r["measured"] is None:
            measured = "not trained yet"
        else:
            measured = f"{r['measured']:.2f} %"
            if "vote" in r and "without five-crop" not in r["row"]:
                measured += f" (vote {r['vote']:.2f} %)"
        out.append(f"| {r['row']} | {paper} | {measured} | {r['epochs']} | {r['loss']} | {r['train_time']} |")
    return "\n".join(out)
