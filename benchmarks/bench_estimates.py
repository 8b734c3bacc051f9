#!/usr/bin/env python3
"""FINN estimates for every shipped model on every board, as one table.

    python benchmarks/bench_estimates.py [--models models/bdnn4 models/bdnn4-hw ...] [--markdown]

Runs each model's board build up to the estimates (front end, role-keyed placement, folding
search; no code generation, no bit-exact check) into build/<arch>/ and prints resources, fit and
estimated crops/s and faces/s per model x board, with the project targets (PYNQ-Z2 >= 1,000 crops/s,
Ultra96 >= 3,000 crops/s) and the model's measured PrivateTest accuracy from its card.
"""
import argparse
import contextlib
import io
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "build_scripts"))
from bootstrap import ensure_env  # noqa: E402

ensure_env()


def shipped_models() -> list[Path]:
    return sorted(p.parent for p in (REPO / "models").glob("*/model.npz"))


def private_accuracy(model_dir: Path):
    card = model_dir / "card.json"
    if not card.exists():
        return None
    acc = json.loads(card.read_text()).get("accuracy", {}).get("PrivateTest", {})
    return acc.get("acc_fivecrop_mean")


def build_estimates(model_dir: Path, quiet: bool) -> list[dict]:
    from bdnn import contract
    from bdnn.artifact import load
    from bdnn_hw.build import main
    arch = load(model_dir).spec.name
    out = contract.build_root(arch)  # the build's own default output folder
    argv = ["--model", str(model_dir), "--no-codegen", "--verify-crops", "0"]
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink) if quiet else contextlib.nullcontext():
        rc = main(arch, argv)
    if rc != 0:
        raise SystemExit(f"{model_dir}: build failed (exit {rc})\n{sink.getvalue()}")
    return [json.loads((out / b / contract.SUMMARY_FILE).read_text()) for b in ("pynq-z2", "ultra96")]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="*", default=None, help="model folders (default: every models/*/model.npz)")
    p.add_argument("--markdown", action="store_true", help="print a markdown table (for the README)")
    p.add_argument("--verbose", action="store_true", help="show the builds' own output")
    p.add_argument("--json", default=None, metavar="FILE",
                   help="also write the estimates as the data file `bdnn results --plot` reads "
                        "(e.g. sw/bdnn/finn_estimates.json)")
    a = p.parse_args()
    models = [Path(m).resolve() for m in a.models] if a.models else shipped_models()
    if not models:
        raise SystemExit("no models: pass --models DIR ... or ship one to models/<arch>")
    from tqdm import tqdm
    rows = []
    for m in tqdm(models, desc="models", unit="model"):
        for s in build_estimates(m, quiet=not a.verbose):
            rows.append({**s, "model_name": m.name, "private_acc": private_accuracy(m)})
    if a.markdown:
        print("| model | PrivateTest (5-crop) | board | LUT | BRAM36 | fits | crops/s | faces/s | target | bottleneck |")
        print("|---|---|---|---|---|---|---|---|---|---|")
    else:
        print(f"{'model':<10} {'acc':>6} {'board':<8} {'LUT':>15} {'BRAM36':>14} {'fits':>5} {'crops/s':>8} "
              f"{'faces/s':>7} {'target':>14}  bottleneck")
    for r in rows:
        acc = f"{r['private_acc']:.2%}" if r["private_acc"] is not None else "n/a"
        target = f"{'met' if r['meets_target'] else 'NOT met'} ({r['throughput_target_crops_per_s']:,})"
        neck = r["bottleneck_role"] or r["bottleneck_layer"]
        if r["bottleneck_layer"] == "DDR weight bandwidth":
            neck = "DDR weight bandwidth"
        if a.markdown:
            print(f"| {r['model_name']} | {acc} | {r['board']} | {r['lut']:,} ({r['lut_util']:.0%}) | "
                  f"{r['bram36']:.0f} ({r['bram36_util']:.0%}) | {'yes' if r['fits'] else '**no**'} | "
                  f"{r['est_crops_per_s']:,.0f} | {r['est_faces_per_s']:,.0f} | {target} | {neck} |")
        else:
            print(f"{r['model_name']:<10} {acc:>6} {r['board']:<8} {r['lut']:>7} ({r['lut_util']:>4.0%}) "
                  f"{r['bram36']:>7.1f} ({r['bram36_util']:>4.0%}) {str(r['fits']):>5} {r['est_crops_per_s']:>8.0f} "
                  f"{r['est_faces_per_s']:>7.0f} {target:>14}  {neck}")

    if a.json:
        write_json(rows, Path(a.json))


def write_json(rows: list[dict], path: Path) -> None:
    """The estimates in the schema of sw/bdnn/finn_estimates.json (bdnn.results.load_estimates)."""
    from bdnn_hw.boards import get_board
    boards = {}
    for r in rows:
        b = get_board(r["board"])
        boards[r["board"]] = {"clock_mhz": round(b.fclk_mhz), "target_crops_per_s": r["throughput_target_crops_per_s"]}
    data = {"source": "FINN (finn-plus) estimates with the searched folding and role-keyed placement "
                      "(hw/folding/<arch>_<board>.json), written by `python benchmarks/bench_estimates.py --json`",
            "boards": boards,
            "estimates": [{"model": r["model_name"], "board": r["board"], "crops_per_s": round(r["est_crops_per_s"]),
                           "faces_per_s": round(r["est_faces_per_s"]), "lut": r["lut"], "lut_util": round(r["lut_util"], 2),
                           "bram36": r["bram36"], "bram36_util": round(r["bram36_util"], 2), "fits": r["fits"],
                           "meets_target": r["meets_target"],
                           "bottleneck": "DDR weight bandwidth" if r["bottleneck_layer"] == "DDR weight bandwidth"
                           else (r["bottleneck_role"] or r["bottleneck_layer"])} for r in rows]}
    path.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
