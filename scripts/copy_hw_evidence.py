#!/usr/bin/env python3
"""Copy the open-tool hardware records of build summaries into docs/hw_evidence/ (build/ is not
kept in git): python scripts/copy_hw_evidence.py [--build build/bdnn4] [--boards pynq-z2 ultra96];
``--table`` prints every record there as one markdown table (the README's verified designs)."""
import argparse
import datetime
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "sw"))
from bdnn.contract import DEPLOY_DIR, HW_EVIDENCE_DIR, MODEL_SHA_KEY, model_sha256  # noqa: E402  (numpy only)
KEYS = ("rtl_lint", "sim", "rtl_synth", "stitched_sim", "synth", "timing")
# the per-node / per-unit lists stay in build/; the figures the README quotes come along
CONDENSED = {"rtl_lint": ("ran", "units", "files", "errors", "warnings"),
             "sim": ("crops", "mismatches", "seconds_per_crop", "source"),
             "rtl_synth": ("family", "totals", "finn_bram36_total", "project_rtl", "errors")}
ESTIMATE = ("lut", "bram36", "finn_est_crops_per_s", "est_crops_per_s", "max_cycles", "est_latency_us",
            "replay_batch", "ddr_weight_bytes_per_crop", "ddr_cap_crops_per_s")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=str(REPO / "build" / "bdnn4"))
    ap.add_argument("--boards", nargs="+", default=["pynq-z2", "ultra96"])
    ap.add_argument("--table", action="store_true", help="print the records in docs/hw_evidence/ as a markdown table")
    a = ap.parse_args()
    if a.table:
        print(evidence_table(REPO / HW_EVIDENCE_DIR))
        return
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    for board in a.boards:
        src = Path(a.build) / board / "summary.json"
        s = json.loads(src.read_text())
        missing = [k for k in KEYS if not (s.get(k) or {}).get("ran")]   # timing included: a record states its clock's verdict
        if missing:
            raise SystemExit(f"{src}: no hardware record for {missing} (run build_scripts/build_bdnn4.py --board {board})")
        rec = {"what": f"hardware evidence of build_scripts/build_bdnn4.py for the shipped {s['model'].upper()} "
                       f"(open tools), copied from {src.relative_to(REPO) if src.is_relative_to(REPO) else src} "
                       "so it survives a fresh machine",
               "date": datetime.date.fromtimestamp(src.stat().st_mtime).isoformat(),
               "repo_commit_when_copied": commit, "board": board,
               # the weights the build used: its deployment folder holds them (checked against the graph)
               MODEL_SHA_KEY: model_sha256(src.parent / DEPLOY_DIR),
               "finn_estimate": {k: s.get(k) for k in ESTIMATE},
               **{k: ({f: s[k].get(f) for f in CONDENSED[k]} if k in CONDENSED else s[k]) for k in KEYS}}
        rec["design"] = design_label(s, board)
        # a build variant gets its own record beside the board's default design
        out = REPO / HW_EVIDENCE_DIR / f"{record_stem(s, board)}.json"
        out.write_text(json.dumps(rec, indent=1, default=float) + "\n")
        print(f"wrote {out.relative_to(REPO)}")


def _variant(s: dict, board: str) -> list[tuple[str, str]]:
    """What makes a build a variant of the board's default design, as (record-name part, build flag):
    its own placement config (named by what the file adds to ``<arch>_<board>``), the RTL LUT model,
    a replay batch from the command line."""
    parts = []
    config = Path(s.get("role_config") or "")
    if config.stem and config.stem != f"{s['model']}_{board}":
        parts.append((config.stem.removeprefix(f"{s['model']}_{board}_"), f"--folding-config {config.name}"))
    if s.get("rtl_only"):
        parts.append(("rtl_only", "--rtl-only"))
    if s.get("replay_batch_from", "board default") != "board default":
        parts.append((f"replay{s.get('replay_batch')}", f"--replay-batch {s.get('replay_batch')}"))
    return parts


def record_stem(s: dict, board: str) -> str:
    return "_".join([s["model"], board, *(name for name, _ in _variant(s, board))])


def design_label(s: dict, board: str) -> str:
    """The build's variant as its flags (a fixed folding target too): the table's design column."""
    flags = [flag for _, flag in _variant(s, board)]
    if flags and not s.get("folding_searched", True):
        flags.append(f"--target-fps {s.get('target_crops_per_s')}")
    return " ".join(flags) or "default"


def evidence_table(folder: Path) -> str:
    """One row per record: what the stitched simulation measured, what yosys counted, and whether
    the record's weights are the ones shipped in models/ now."""
    shipped_sha: dict[str, str | None] = {}  # each shipped model hashed once
    rows = ["| model | board | design | crops stitched | mismatches | cycles/crop | crops/s (simulated) | clock "
            "| timing (pre-route estimate) | LUT (yosys) | BRAM36 (yosys) | fits | weights = models/ now |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for f in sorted(folder.glob("*.json")):
        r = json.loads(f.read_text())
        model = f.stem.split("_")[0]
        design = r.get("design", "default")
        st, sy = r["stitched_sim"], r["synth"]  # the synthesis record carries the board's budgets
        if model not in shipped_sha:
            shipped = REPO / "models" / model
            shipped_sha[model] = model_sha256(shipped) if (shipped / "model.npz").exists() else None
        same = (shipped_sha[model] == r[MODEL_SHA_KEY]) if shipped_sha[model] and r.get(MODEL_SHA_KEY) else None
        t = r.get("timing") or {}
        timing = ("not estimated" if not t.get("ran") else
                  f"{'meets' if t['meets'] else '**misses**'}: worst {t['worst']['ns']:.2f} ns, {t['worst']['levels']} levels, "
                  f"est. Fmax {t['est_fmax_mhz']:g} MHz")
        rows.append(f"| {model} | {r['board']} | {design} | {st['crops']} | {st['mismatches']} | {st['cycles_per_crop']:,.0f} "
                    f"| {st['measured_crops_per_s']:,.0f} | {st.get('fclk_mhz', 0):g} MHz | {timing} "
                    f"| {sy['lut']:,} ({sy['lut'] / sy['lut_budget']:.0%}) "
                    f"| {sy['bram36']:g} ({sy['bram36'] / sy['bram36_budget']:.0%}) | {'yes' if sy['fits'] else '**no**'} "
                    f"| {'yes' if same else ('no' if same is False else 'not recorded')} |")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
