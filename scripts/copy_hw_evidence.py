#!/usr/bin/env python3
"""Copy the open-tool hardware records of build summaries into docs/hw_evidence/ (build/ is not
kept in git): python scripts/copy_hw_evidence.py [--build build/bdnn4] [--boards pynq-z2 ultra96]"""
import argparse
import datetime
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "sw"))
from bdnn.contract import DEPLOY_DIR, MODEL_SHA_KEY, model_sha256  # noqa: E402  (numpy only)
KEYS = ("rtl_lint", "sim", "rtl_synth", "stitched_sim", "synth")
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
    a = ap.parse_args()
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    for board in a.boards:
        src = Path(a.build) / board / "summary.json"
        s = json.loads(src.read_text())
        missing = [k for k in KEYS if not (s.get(k) or {}).get("ran")]
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
        out = REPO / "docs" / "hw_evidence" / f"{s['model']}_{board}.json"
        out.write_text(json.dumps(rec, indent=1, default=float) + "\n")
        print(f"wrote {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
