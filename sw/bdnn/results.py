"""The paper's Tables 3-4 beside the project's measured numbers, built from the model cards.

The paper's figures live here and nowhere else; the measured ones come from ``models/*/card.json``
(written by ``bdnn ship``, which evaluates the shipped artifact exactly), so the README table is
regenerated, never hand-typed: ``bdnn results``.
"""
from __future__ import annotations

import json
from pathlib import Path

# "Expression Recognition Algorithm Based on Binary Dense Convolution Neural Network", Tables 3-4,
# FER2013 test accuracy in %: (row, shipped model it compares with, the card's metric, paper value)
PAPER_ROWS = [
    ("bdnn2", "bdnn2", "acc_fivecrop_mean", 61.50),
    ("bdnn3", "bdnn3", "acc_fivecrop_mean", 65.51),
    ("bdnn4", "bdnn4", "acc_fivecrop_mean", 66.15),
    ("bcnn4", "bcnn4", "acc_fivecrop_mean", 64.90),
    ("bdnn4 without five-crop", "bdnn4", "acc_center", 61.31),
]
PAPER_ACCURACY = {row: paper for row, _, _, paper in PAPER_ROWS}


def load_cards(models_dir: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(Path(models_dir).glob("*/card.json"))}


def _epochs(run, planned, best) -> str:
    epochs = f"{run}" if run == planned else f"{run} of {planned} planned"
    if best is not None and best != run:
        epochs += f" (best: {best})"
    return epochs


def _budget(card: dict) -> tuple[str, str]:
    # a warm-restarted model lists each stage: "16 (used: 15) → 30 (best: 22)"
    parents = [f"{st['epochs_run']}" + (f" (used: {st['used_epoch']})" if st.get("used_epoch") not in (None, st["epochs_run"]) else "")
               for st in card.get("stages", [])[:-1]]
    epochs = " → ".join(parents + [_epochs(card.get("epochs_run"), card.get("epochs_planned"), card.get("best_epoch"))])
    hours = card.get("train_hours")
    from .contract import CPU_TRAIN_DEVICE
    device = card.get("train_device", CPU_TRAIN_DEVICE)
    where = "" if device == CPU_TRAIN_DEVICE else f" ({device})"
    return epochs, (f"{hours:.2f} h{where}" if hours is not None else "")


def _row(label: str, paper, card: dict | None, metric: str) -> dict:
    row = {"row": label, "paper": paper, "measured": None, "epochs": "", "train_time": "", "loss": ""}
    if card is None:
        return row
    acc = card["accuracy"]["PrivateTest"]
    row["measured"] = 100 * acc[metric]
    row["loss"] = card.get("recipe", {}).get("loss", "")
    if metric == "acc_center":  # a single-crop row of a model that has its own five-crop row
        row["epochs"] = "same model, centre crop only"
    else:
        row["vote"] = 100 * acc["acc_fivecrop_vote"]
        row["epochs"], row["train_time"] = _budget(card)
    return row


def results_rows(cards: dict[str, dict]) -> list[dict]:
    rows = [_row(label, paper, cards.get(model), metric) for label, model, metric, paper in PAPER_ROWS]
    # shipped models the paper has no row for (hardware-aware variants)
    compared = {model for _, model, _, _ in PAPER_ROWS}
    rows += [_row(name if card.get("role") != "teacher" else f"{name} (fp32 teacher, not on the hardware path)",
                  None, card, "acc_fivecrop_mean") for name, card in cards.items() if name not in compared]
    return rows


def markdown_table(rows: list[dict]) -> str:
    out = ["| model | paper | this project (PrivateTest) | epochs | loss | training wall time (2 CPU cores unless named) |",
           "|---|---|---|---|---|---|"]
    for r in rows:
        paper = f"{r['paper']:.2f} %" if r["paper"] is not None else "—"
        if r["measured"] is None:
            measured = "not trained yet"
        else:
            measured = f"{r['measured']:.2f} %"
            if "vote" in r:
                measured += f" (vote {r['vote']:.2f} %)"
        out.append(f"| {r['row']} | {paper} | {measured} | {r['epochs']} | {r['loss']} | {r['train_time']} |")
    return "\n".join(out)


# -- accuracy vs estimated speed (the Pareto figure) ------------------------------------------------
ESTIMATES_FILE = Path(__file__).with_name("finn_estimates.json")


def load_estimates(path: Path | None = None) -> dict:
    """FINN's estimates per shipped model x board (see the file's ``source``)."""
    return json.loads(Path(path or ESTIMATES_FILE).read_text())


def pareto_points(cards: dict[str, dict], estimates: dict) -> tuple[list[dict], list[str]]:
    """One point per shipped hardware model x board: PrivateTest five-crop mean (%) and estimated
    crops/s, with ``pareto`` set where no other model on that board is both faster and more
    accurate. Returns (points, notes on models left out)."""
    points, notes = [], []
    by_model = {}
    for e in estimates["estimates"]:
        by_model.setdefault(e["model"], []).append(e)
    for name, card in cards.items():
        if card.get("role") == "teacher":
            continue  # a teacher is never on the hardware path
        if name not in by_model:
            notes.append(f"{name}: no FINN estimate (run benchmarks/bench_estimates.py --json)")
            continue
        acc = 100 * card["accuracy"]["PrivateTest"]["acc_fivecrop_mean"]
        for e in by_model[name]:
            points.append({"model": name, "board": e["board"], "accuracy": acc, "crops_per_s": e["crops_per_s"],
                           "fits": e.get("fits", True), "meets_target": e.get("meets_target")})
    notes += [f"{m}: estimates but no shipped card" for m in by_model if m not in cards]
    for p in points:
        p["pareto"] = p["fits"] and not any(
            q is not p and q["board"] == p["board"] and q["fits"] and q["crops_per_s"] >= p["crops_per_s"]
            and q["accuracy"] >= p["accuracy"] and (q["crops_per_s"], q["accuracy"]) != (p["crops_per_s"], p["accuracy"])
            for q in points)
    return points, notes


def verified_points(cards: dict[str, dict], models_dir: Path, evidence_dir: Path) -> list[dict]:
    """One point per verified design (``docs/hw_evidence/``: the whole all-RTL design stitched in
    Verilator on real crops, yosys of it) whose weights are the shipped model's: its simulated
    crops/s, whether yosys fits it on the board, and the build flags that make it."""
    from .contract import MODEL_FILE, MODEL_SHA_KEY, model_sha256
    points, shipped = [], {}
    for f in sorted(Path(evidence_dir).glob("*.json")):
        r = json.loads(f.read_text())
        model = f.stem.split("_")[0]
        if model not in cards or not r.get(MODEL_SHA_KEY) or not (Path(models_dir) / model / MODEL_FILE).is_file():
            continue
        if model not in shipped:
            shipped[model] = model_sha256(Path(models_dir) / model)
        st, sy = r["stitched_sim"], r["synth"]
        if shipped[model] != r[MODEL_SHA_KEY] or st.get("mismatches") != 0:
            continue  # other weights than the shipped ones, or not bit-exact: not this model's point
        t = r.get("timing") or {}
        points.append({"model": model, "board": r["board"], "design": r.get("design", "default"),
                       "accuracy": 100 * cards[model]["accuracy"]["PrivateTest"]["acc_fivecrop_mean"],
                       "crops_per_s": round(st["measured_crops_per_s"]), "fits": bool(sy["fits"]),
                       "lut": sy["lut"], "bram36": sy["bram36"],
                       # the clock the simulated rate assumes, and the pre-route estimate's verdict on it
                       "clock_mhz": st.get("fclk_mhz"), "timing_meets": t.get("meets") if t.get("ran") else None,
                       "est_fmax_mhz": t.get("est_fmax_mhz") if t.get("ran") else None,
                       "crops_per_s_at_est_fmax": t.get("crops_per_s_at_est_fmax") if t.get("ran") else None})
    return points


def timing_label(p: dict) -> str:
    """The clock a verified rate assumes and what the timing estimate says of it."""
    if p.get("timing_meets") is None:
        return "not estimated"
    if p["timing_meets"]:
        return f"meets (est. Fmax {p['est_fmax_mhz']:g} MHz)"
    return f"**misses** (est. Fmax {p['est_fmax_mhz']:g} MHz: {p['crops_per_s_at_est_fmax']:,.0f} crops/s)"


def verified_markdown(points: list[dict]) -> str:
    out = ["| board | model | design | PrivateTest (5-crop) | simulated crops/s | at clock | timing (pre-route estimate) "
           "| yosys LUT / BRAM36 | fits |",
           "|---|---|---|---|---|---|---|---|---|"]
    for p in sorted(points, key=lambda p: (p["board"], p["crops_per_s"])):
        clock = f"{p['clock_mhz']:g} MHz" if p.get("clock_mhz") else "-"
        out.append(f"| {p['board']} | {p['model']} | {p['design']} | {p['accuracy']:.2f} % | {p['crops_per_s']:,} "
                   f"| {clock} | {timing_label(p)} | {p['lut']:,} / {p['bram36']:g} | {'yes' if p['fits'] else '**no**'} |")
    return "\n".join(out)


def pareto_markdown(points: list[dict]) -> str:
    out = ["| board | model | PrivateTest (5-crop) | est. crops/s | Pareto |", "|---|---|---|---|---|"]
    for p in sorted(points, key=lambda p: (p["board"], p["crops_per_s"])):
        out.append(f"| {p['board']} | {p['model']} | {p['accuracy']:.2f} % | {p['crops_per_s']:,} | {'yes' if p['pareto'] else ''} |")
    return "\n".join(out)


# -- robustness (bdnn evaluate --perturb) ------------------------------------------------------------
ROBUSTNESS_FILE = "robustness.json"
ROBUSTNESS_LIMIT = 2.0  # points: the project's aim for every common perturbation


def robustness_markdown(models_dir: Path) -> str:
    """Drop in points per perturbation (PrivateTest five-crop mean) of every shipped model with a
    ``robustness.json``; a report made from another model file than the shipped one is marked stale."""
    from .contract import model_sha256
    reports = {}
    for p in sorted(Path(models_dir).glob(f"*/{ROBUSTNESS_FILE}")):
        rep = json.loads(p.read_text())
        model = p.parent / "model.npz"
        rep["stale"] = bool(rep.get("model_sha256")) and model.exists() and model_sha256(model) != rep["model_sha256"]
        reports[p.parent.name] = rep
    if not reports:
        return "no robustness reports (bdnn evaluate --model models/X --perturb --json-out models/X/robustness.json)"
    names = []
    for rep in reports.values():
        names += [r["name"] for r in rep["perturbations"] if r["name"] not in names]
    out = ["| model | clean | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for model, rep in reports.items():
        drops = {r["name"]: r["drop_points"] for r in rep["perturbations"]}
        cells = [(f"**{drops[n]:+.2f}**" if drops[n] > ROBUSTNESS_LIMIT else f"{drops[n]:+.2f}") if n in drops else "—"
                 for n in names]
        label = model + (" (stale: another model file)" if rep["stale"] else "")
        out.append(f"| {label} | {100 * rep['clean']['acc_fivecrop_mean']:.2f} % | " + " | ".join(cells) + " |")
    return "\n".join(out)


# -- the project's targets: where each stands -----------------------------------------------------------
# (target, shipped model or None for "the most accurate model that is fast enough", card metric,
#  PrivateTest minimum in % or None, board, crops/s minimum on it or None)
TARGETS = [
    ("BDNN2", "bdnn2", "acc_fivecrop_mean", 61.50, None, None),
    ("BDNN3", "bdnn3", "acc_fivecrop_mean", 65.51, None, None),
    ("BCNN4", "bcnn4", "acc_fivecrop_mean", 64.90, None, None),
    ("BDNN4", "bdnn4", "acc_fivecrop_mean", 68.0, None, None),
    ("BDNN4, centre crop alone", "bdnn4", "acc_center", 66.0, None, None),
    ("hardware-aware model for the PYNQ-Z2", "bdnn4-hw", "acc_fivecrop_mean", 66.15, "pynq-z2", 1000),
    ("most accurate model for the Ultra96", None, "acc_fivecrop_mean", None, "ultra96", 3000),
]


def _fastest(model: str, board: str, estimates: dict, verified: list[dict]) -> tuple[int, str] | None:
    """The model's best rate on the board among designs that fit: a verified (simulated) design of its
    shipped weights, or FINN's estimate of its default build."""
    rates = []
    for p in verified:
        if p["model"] != model or p["board"] != board or not p["fits"]:
            continue
        clock = f" at {p['clock_mhz']:g} MHz" if p.get("clock_mhz") else ""
        if p.get("timing_meets") is False:   # the estimate misses the clock: the rate at its estimated Fmax
            rates.append((round(p["crops_per_s_at_est_fmax"]), f"simulated at the est. Fmax {p['est_fmax_mhz']:g} MHz"))
        elif p.get("timing_meets"):
            rates.append((p["crops_per_s"], f"simulated{clock}, timing est. meets"))
        else:
            rates.append((p["crops_per_s"], f"simulated{clock}, timing not estimated"))
    rates += [(round(e["crops_per_s"]), "FINN estimate") for e in estimates.get("estimates", [])
              if e["model"] == model and e["board"] == board and e.get("fits", True)]
    return max(rates) if rates else None


def target_rows(cards: dict[str, dict], estimates: dict, verified: list[dict]) -> list[dict]:
    """Each target beside the shipped model's PrivateTest accuracy (and, for a board target, its best
    fitting rate there); ``met`` only when every part of the target is."""
    rows = []
    for label, model, metric, minimum, board, min_rate in TARGETS:
        candidates = [model] if model else [m for m, c in cards.items() if c.get("role") != "teacher"]
        best = None
        for m in candidates:
            if m not in cards:
                continue
            acc = 100 * cards[m]["accuracy"]["PrivateTest"][metric]
            rate = _fastest(m, board, estimates, verified) if board else None
            if model is None and (rate is None or rate[0] < min_rate):
                continue  # "the most accurate that is fast enough": only models that are
            if best is None or acc > best["measured"]:
                best = {"model": m, "measured": acc, "rate": rate}
        row = {"target": label, "minimum": minimum, "board": board, "min_rate": min_rate,
               "model": best["model"] if best else model, "measured": best["measured"] if best else None,
               "rate": best["rate"] if best else None}
        acc_ok = row["measured"] is not None and (minimum is None or row["measured"] >= minimum)
        rate_ok = board is None or (row["rate"] is not None and row["rate"][0] >= min_rate)
        row["gap"] = None if row["measured"] is None or minimum is None else row["measured"] - minimum
        row["met"] = acc_ok and rate_ok
        rows.append(row)
    return rows


def targets_markdown(rows: list[dict]) -> str:
    out = ["| target | model | PrivateTest (exact) | needed | gap (points) | crops/s (board) | met |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        measured = f"{r['measured']:.2f} %" if r["measured"] is not None else "none shipped"
        needed = f">= {r['minimum']:.2f} %" if r["minimum"] is not None else "the best reachable"
        gap = f"{r['gap']:+.2f}" if r["gap"] is not None else "—"
        if r["board"] is None:
            rate = "—"
        elif r["rate"] is None:
            rate = f"none >= {r['min_rate']:,} ({r['board']})"
        else:
            rate = f"{r['rate'][0]:,} {r['rate'][1]} ({r['board']}, needed {r['min_rate']:,})"
        out.append(f"| {r['target']} | {r['model'] or '—'} | {measured} | {needed} | {gap} | {rate} | "
                   f"{'yes' if r['met'] else '**no**'} |")
    return "\n".join(out)
