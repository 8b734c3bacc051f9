"""``bdnn``: train, evaluate, export, predict and run the live demo from the command line.

Start-up imports neither torch, FINN nor OpenCV: ``predict``, ``evaluate``, ``live``,
``throughput`` and ``results`` with the ``cpu``/``pynq`` backends run with numpy and Pillow only
(plus OpenCV for face detection); a command that needs an extra says which one to install.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from .arch import ARCHS, TEACHER_ARCHS
from .backends import BACKENDS
from .combine import COMBINE_MODES
from .data import SPLITS
from .errors import BdnnError, require
from .perturb import PERTURBATIONS

PERTURBATION_NAMES = tuple(PERTURBATIONS)

MODEL_HELP = ("model folder or model.npz (default: $BDNN_MODEL, else the shipped bdnn4; "
              "for --backend pynq: the deployment folder's own model)")


# -- options shared by several commands, defined once --------------------------------------
def add_model_option(p, required: bool = False) -> None:
    p.add_argument("--model", default=None, required=required, help=MODEL_HELP)


def add_data_option(p) -> None:
    p.add_argument("--data", default=None, help="FER2013 npz/csv/image folder (default: $FER2013_PATH or ../shared/data)")


def add_backend_options(p) -> None:
    """--model, --backend, --deploy, --hw-graph: how faces get classified."""
    add_model_option(p)
    p.add_argument("--backend", default="cpu", choices=BACKENDS,
                   help="cpu: the bit-exact integer engine (default); brevitas: torch reference; "
                        "finn-sim: FINN's HW graph in Python; pynq: the accelerator on the board")
    p.add_argument("--deploy", default=None,
                   help="pynq: the board build's deployment folder (default: $BDNN_DEPLOY, else the only "
                        "build/<arch>/<board>/deploy with a bitfile)")
    p.add_argument("--hw-graph", default=None,
                   help="finn-sim: FINN HW-layer graph (default: build/<arch>/frontend/dataflow_partition.onnx)")


def make_backend(a):
    from .backends import get_backend
    return get_backend(a.backend, a.model, hw_graph=a.hw_graph, deploy=a.deploy)


# -- train -----------------------------------------------------------------------------------
def _add_train(sub):
    from .config import TrainConfig
    p = sub.add_parser("train", help="train a BDNN/BCNN on FER2013 (selects on PublicTest; needs the train extra)")
    p.add_argument("--arch", default="bdnn4", choices=(*ARCHS, *TEACHER_ARCHS),
                   help="architecture (default: bdnn4); teacher-*: a full-precision teacher for --teacher")
    p.add_argument("--out", required=True, help="run folder (checkpoints, metrics, plots, model.npz)")
    add_data_option(p)
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    p.add_argument("--stop-after", type=int, default=0, help="end this invocation after N epochs (resumable)")
    for f in dataclasses.fields(TrainConfig):
        if f.name == "arch":
            continue
        flag = "--" + f.name.replace("_", "-")
        meta = f.metadata
        if f.type in ("bool", bool):
            p.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=f.default,
                           help=meta["help"])
        else:
            p.add_argument(flag, dest=f.name, type=type(f.default), default=f.default, choices=meta.get("choices"),
                           help=f"{meta['help']} (default: {f.default!r})")
    p.set_defaults(func=cmd_train)


def cmd_train(a) -> int:
    require("torch", "bdnn train")
    require("brevitas", "bdnn train")
    from .config import TrainConfig
    from .train import train
    cfg = TrainConfig(**{f.name: getattr(a, f.name) for f in dataclasses.fields(TrainConfig)})
    res = train(cfg, Path(a.out), resume=a.resume, data_path=a.data, stop_after=a.stop_after)
    print(json.dumps({"best": res["best"]}))
    return 0


# -- predict ---------------------------------------------------------------------------------
def _add_predict(sub):
    p = sub.add_parser("predict", help="classify faces: whole images (any size/mode) or, with --detect, every face in photos")
    p.add_argument("images", nargs="+", help="image files (a file that cannot be read is reported; the rest go on)")
    add_backend_options(p)
    p.add_argument("--vote", action="store_true", help="majority vote of the five crops instead of averaging scores")
    p.add_argument("--json", action="store_true", help="one JSON object per face")
    p.add_argument("--detect", action="store_true",
                   help="find faces in photos (OpenCV Haar cascade; the demo extra) and write annotated PNGs")
    p.add_argument("--out-dir", default=".", help="--detect: folder for <image>.annotated.png (default: .)")
    p.set_defaults(func=cmd_predict)


def cmd_predict(a) -> int:
    import numpy as np

    from .data import CLASS_NAMES
    from .images import ImageError, load_face
    from .predict import classify_faces
    backend = make_backend(a)
    mode = "vote" if a.vote else "mean"
    failed = 0
    for path in a.images:
        try:
            if a.detect:
                from .faces import annotate, detect_faces, load_photo
                rgb, gray = load_photo(path)
                found = detect_faces(gray)
                if not found:
                    raise ImageError(f"{path}: no face detected")
                faces, boxes = np.stack([f.face for f in found]), [f.box for f in found]
                notes = [f"{len(found)} face(s) detected, each resized to 48x48"]
            else:
                face, notes = load_face(path)
                faces, boxes = face[None], [None]
        except ImageError as e:
            print(f"error: {e}", file=sys.stderr)
            failed += 1
            continue
        preds = classify_faces(backend, faces, mode)
        if a.detect:
            out_dir = Path(a.out_dir)
            out_dir.mkdir(parents=True, exist_ok=True)
            png = annotate(rgb, found, [p.name for p in preds], out_dir / f"{Path(path).stem}.annotated.png")
            notes.append(f"annotated image written to {png}")
        for p, box in zip(preds, boxes):
            if a.json:
                print(json.dumps({"image": path, "box": box, "label": p.name, "combine": mode, "backend": backend.name,
                                  "scores": dict(zip(CLASS_NAMES, np.round(p.scores, 4).tolist())),
                                  "crop_labels": [CLASS_NAMES[i] for i in p.crop_scores.argmax(1)], "notes": notes}))
                continue
            where = f" face at {box}" if box else ""
            print(f"{path}{where}: {p.name}  ({'majority vote' if a.vote else 'mean'} of 5 crops, {backend.name})")
            print("  " + "  ".join(f"{c} {v:+.3f}" for c, v in zip(CLASS_NAMES, p.scores)))
        if not a.json:
            for n in notes:
                print(f"note: {path}: {n}")
    if failed:
        print(f"{failed} of {len(a.images)} images could not be classified", file=sys.stderr)
    return 1 if failed else 0


# -- evaluate --------------------------------------------------------------------------------
def _add_evaluate(sub):
    p = sub.add_parser("evaluate", help="accuracy on a FER2013 split (centre, five-crop mean and vote)")
    add_backend_options(p)
    add_data_option(p)
    p.add_argument("--split", default="PrivateTest", choices=SPLITS, help="FER2013 split (default: PrivateTest)")
    p.add_argument("--limit", type=int, default=0, help="evaluate the first N faces only (0: all)")
    p.add_argument("--confusion-png", default=None, help="write the confusion matrix plot here (needs matplotlib)")
    p.add_argument("--perturb", nargs="?", const="all", default=None, metavar="NAMES",
                   help="robustness report: accuracy on clean faces and under each perturbation (comma list, "
                        "default all: " + ", ".join(PERTURBATION_NAMES) + "), with the drop in points")
    p.add_argument("--perturb-seed", type=int, default=0, help="--perturb: seed of the random perturbations (default: 0)")
    p.add_argument("--json-out", default=None, metavar="FILE", help="also write the result as JSON to FILE")
    p.set_defaults(func=cmd_evaluate)


def cmd_perturb(a, backend, faces, labels) -> int:
    from .perturb import PERTURBATIONS, parse_names, perturbation_report, report_markdown
    names = parse_names(a.perturb, PERTURBATIONS)
    rep = perturbation_report(backend, faces, labels, names, seed=a.perturb_seed, progress=False)
    from .contract import model_sha256
    rep = {"model": str(backend.model_path), "model_sha256": model_sha256(backend.model_path), "arch": backend.spec.name,
           "split": a.split, "backend": backend.name, **rep}
    print(report_markdown(rep, f"{backend.spec.name} on {a.split} ({rep['n']} faces, {backend.name}), "
                               f"perturbation seed {a.perturb_seed}  [{rep['seconds']:.0f} s]"))
    worst = max(rep["perturbations"], key=lambda r: r["drop_points"])
    print(f"largest drop: {worst['name']} {worst['drop_points']:+.2f} points")
    if a.json_out:
        Path(a.json_out).write_text(json.dumps(rep, indent=2))
    print(json.dumps(rep))
    return 0


def cmd_evaluate(a) -> int:
    from .data import CLASS_NAMES, load_fer2013
    from .evaluate import evaluate
    faces, labels = load_fer2013(a.data).split(a.split)
    if a.limit:
        faces, labels = faces[:a.limit], labels[:a.limit]
    if a.confusion_png:
        require("matplotlib", "--confusion-png")
    backend = make_backend(a)
    if a.perturb is not None:
        return cmd_perturb(a, backend, faces, labels)
    r = evaluate(backend, faces, labels)
    r.pop("scores")
    print(f"{backend.spec.name} on {a.split} ({r['n']} faces, {backend.name}): centre {r['acc_center']:.2%}, "
          f"five-crop mean {r['acc_fivecrop_mean']:.2%}, vote {r['acc_fivecrop_vote']:.2%}  [{r['seconds']:.0f} s]")
    print("recall: " + ", ".join(f"{k} {v:.1%}" for k, v in r["per_class_recall"].items()))
    if a.confusion_png:
        import numpy as np
        from .plots import plot_confusion
        plot_confusion(np.asarray(r["confusion_matrix"]), CLASS_NAMES, a.confusion_png,
                       f"{backend.spec.name}, {a.split}, five-crop mean {r['acc_fivecrop_mean']:.2%}")
    out = {"model": str(backend.model_path), "arch": backend.spec.name, "split": a.split, "backend": backend.name, **r}
    if a.json_out:
        Path(a.json_out).write_text(json.dumps(out, indent=2))
    print(json.dumps(out))
    return 0


# -- live ------------------------------------------------------------------------------------
def _add_live(sub):
    p = sub.add_parser("live", help="live demo: faces in camera or video frames, boxes + labels + score bars, "
                                    "frames/s and faces/s (OpenCV: the demo extra)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--camera", type=int, default=None, metavar="N", help="camera index (/dev/videoN)")
    src.add_argument("--video", default=None, metavar="FILE", help="a video file instead of a camera")
    add_backend_options(p)
    p.add_argument("--out", default=None, metavar="FILE", help="write the annotated video (.mp4, .avi or .mkv)")
    p.add_argument("--show", action="store_true", help="show the frames in a window (OpenCV with a GUI and a display; q quits)")
    p.add_argument("--frames", type=int, default=0, help="stop after N frames (0: until the source ends or Ctrl-C)")
    p.add_argument("--json", action="store_true", help="one JSON line per frame: faces, boxes, labels, scores")
    p.add_argument("--min-face", type=int, default=30, help="smallest face to detect, in pixels (default: 30)")
    p.add_argument("--smooth", type=float, default=0.5,
                   help="score bar smoothing: weight of the newest frame, in (0, 1] (default: 0.5; 1: none)")
    p.add_argument("--fps", type=float, default=None, help="--out frame rate (default: the source's, else 15)")
    p.set_defaults(func=cmd_live)


def cmd_live(a) -> int:
    from .live import run_live
    backend = make_backend(a)
    s = run_live(backend, camera=a.camera, video=a.video, out=a.out, show=a.show, frames=a.frames,
                 json_lines=a.json, min_face=a.min_face, smooth=a.smooth, fps=a.fps)
    ms = s["ms_per_frame"]
    print(f"{s['source']} ({s['backend']}): {s['frames']} frames ({s['frames_without_face']} without a face), "
          f"{s['faces']} faces in {s['seconds']:.1f} s: {s['frames_per_s']:.1f} frames/s, {s['faces_per_s']:.1f} faces/s; "
          "per frame " + ", ".join(f"{k} {v:.1f} ms" for k, v in ms.items())
          + (f"; annotated video: {s['out']}" if s.get("out") else ""), file=sys.stderr if a.json else sys.stdout)
    if a.json:
        print(json.dumps({"summary": s}))
    return 0


# -- ship, results, export ---------------------------------------------------------------------
def _add_ship(sub):
    p = sub.add_parser("ship", help="package a training run as models/<arch>: artifact, model card, plots (train extra)")
    p.add_argument("run", help="training run folder, or a shipped model folder to re-package from its card")
    p.add_argument("out", help="model folder to write, e.g. models/bdnn4")
    add_data_option(p)
    p.add_argument("--command", default=None, help="the exact command that produced the run (for the card)")
    p.set_defaults(func=cmd_ship)


def cmd_ship(a) -> int:
    require("torch", "bdnn ship")
    require("matplotlib", "bdnn ship")
    from .contract import MODEL_CARD_FILE
    from .ship import repackage, ship
    src = Path(a.run)
    if not (src / "config.json").exists() and (src / MODEL_CARD_FILE).exists():
        card = repackage(src, Path(a.out), a.data)
    else:
        card = ship(src, Path(a.out), a.data, a.command)
    print(json.dumps({"model": card["model"], "best_epoch": card["best_epoch"],
                      **{s: v["acc_fivecrop_mean"] for s, v in card["accuracy"].items()}}))
    return 0


def _add_results(sub):
    from .contract import default_model
    p = sub.add_parser("results", help="the paper's Tables 3-4 beside the shipped models' measured accuracy (markdown)")
    p.add_argument("--models-dir", default=str(default_model().parent),
                   help="folder of shipped models, each with a card.json (default: the shipped models/)")
    p.add_argument("--plot", default=None, metavar="PNG",
                   help="also draw accuracy vs FINN-estimated crops/s per board (Pareto front, the paper's BDNN4 "
                        "marked) into PNG and print its table (matplotlib: the train extra)")
    p.add_argument("--estimates", default=None, metavar="JSON",
                   help="--plot: FINN estimates per model x board (default: the packaged finn_estimates.json; "
                        "benchmarks/bench_estimates.py --json writes a new one)")
    p.add_argument("--evidence", default=None, metavar="DIR",
                   help="--plot, --targets: verified-design records to add as measured points (default: the source "
                        "checkout's docs/hw_evidence/ when there is one; '' for none)")
    p.add_argument("--targets", action="store_true",
                   help="also print the project's targets beside the shipped models: PrivateTest accuracy, the gap, and "
                        "for a board target the best fitting rate (a verified design, else FINN's estimate)")
    p.add_argument("--robustness", action="store_true",
                   help="also print the accuracy drop per perturbation of every shipped model that has a "
                        "robustness.json (written by bdnn evaluate --perturb --json-out)")
    p.set_defaults(func=cmd_results)


def cmd_results(a) -> int:
    from .contract import HW_EVIDENCE_DIR, source_root
    from .results import (PAPER_ACCURACY, load_cards, load_estimates, markdown_table, pareto_markdown, pareto_points,
                          results_rows, verified_markdown, verified_points)
    cards = load_cards(Path(a.models_dir))
    if not cards:
        print(f"error: no model cards under {a.models_dir} (ship one with `bdnn ship RUN models/<arch>`)", file=sys.stderr)
        return 2
    print(markdown_table(results_rows(cards)))

    designs = []  # verified designs (--targets, --plot): the checkout's unless --evidence names others ('' for none)
    if a.targets or a.plot:
        evidence = a.evidence
        if evidence is None:
            root = source_root()
            evidence = str(root / HW_EVIDENCE_DIR) if root and (root / HW_EVIDENCE_DIR).is_dir() else ""
        designs = verified_points(cards, Path(a.models_dir), Path(evidence)) if evidence else []
    if a.targets:
        from .results import target_rows, targets_markdown
        print()
        print(targets_markdown(target_rows(cards, load_estimates(a.estimates), designs)))
    if a.robustness:
        from .results import robustness_markdown
        print()
        print(robustness_markdown(Path(a.models_dir)))
    if a.plot:
        require("matplotlib", "bdnn results --plot")
        from .plots import plot_pareto
        est = load_estimates(a.estimates)
        points, notes = pareto_points(cards, est)
        if not points:
            print("error: no shipped model has a FINN estimate to plot", file=sys.stderr)
            return 2
        plot_pareto(points, Path(a.plot), est["boards"],
                    paper={"model": "bdnn4", "accuracy": PAPER_ACCURACY["bdnn4"],
                           "label": f"paper's BDNN4 ({PAPER_ACCURACY['bdnn4']:.2f} %) at this BDNN4's rate"},
                    title="Accuracy vs throughput, every shipped model", verified=designs)
        print()
        print(pareto_markdown(points))
        if designs:
            print()
            print(verified_markdown(designs))
        for n in notes:
            print(f"note: {n}")
        print(f"wrote {a.plot} (estimates: {a.estimates or 'the packaged finn_estimates.json'})")
    return 0


def _add_export(sub):
    p = sub.add_parser("export", help="export a model to QONNX, raw UINT8 pixel input (train + finn extras)")
    add_model_option(p)
    p.add_argument("--out", required=True, help="QONNX file to write")
    p.set_defaults(func=cmd_export)


def cmd_export(a) -> int:
    require("torch", "bdnn export")
    require("brevitas", "bdnn export")
    require("qonnx", "bdnn export")
    from .artifact import load
    from .contract import default_model
    from .export import export_qonnx
    from .nn import from_artifact
    art = load(a.model or default_model())
    path = export_qonnx(from_artifact(art), art.spec, a.out)
    print(f"wrote {path} ({art.spec.name}, input: UINT8 pixels 1x1x{art.spec.in_size}x{art.spec.in_size})")
    return 0


# -- throughput ------------------------------------------------------------------------------
def _add_throughput(sub):
    p = sub.add_parser("throughput", help="faces/s of a backend and where the time goes")
    add_backend_options(p)
    add_data_option(p)
    p.add_argument("--faces", type=int, default=500, help="how many faces (PrivateTest if available, else random)")
    p.add_argument("--combine", default="mean", choices=COMBINE_MODES, help="how five crops' scores combine (default: mean)")
    p.set_defaults(func=cmd_throughput)


def cmd_throughput(a) -> int:
    import time

    import numpy as np

    from .combine import combine_scores
    from .data import DataError, load_fer2013
    from .preprocess import five_crops
    try:
        faces = load_fer2013(a.data).split("PrivateTest")[0][:a.faces]
    except DataError:
        faces = np.random.default_rng(0).integers(0, 256, (a.faces, 48, 48), dtype=np.uint8)
    backend = make_backend(a)
    backend.crop_scores(five_crops(faces[:2]))  # warm-up (kernel build, caches)
    t0 = time.perf_counter()
    crops = five_crops(faces)
    t1 = time.perf_counter()
    s5 = backend.crop_scores(crops)
    t2 = time.perf_counter()
    combine_scores(s5, a.combine).argmax(1)
    t3 = time.perf_counter()
    total = t3 - t0
    r = {"backend": backend.name, "faces": len(faces), "crops": 5 * len(faces), "faces_per_s": len(faces) / total,
         "crops_per_s": 5 * len(faces) / (t2 - t1), "seconds": {"preprocess": t1 - t0, "compute": t2 - t1, "combine": t3 - t2}}
    print(f"{backend.name}: {r['faces_per_s']:.1f} faces/s ({r['crops_per_s']:.0f} crops/s in compute); "
          f"preprocess {1e3 * (t1 - t0) / len(faces):.3f} ms/face, compute {1e3 * (t2 - t1) / len(faces):.2f} ms/face, "
          f"combine {1e3 * (t3 - t2) / len(faces):.3f} ms/face")
    print(json.dumps(r))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bdnn", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_train, _add_predict, _add_evaluate, _add_live, _add_ship, _add_results, _add_export, _add_throughput):
        add(sub)
    return parser


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    try:
        return a.func(a)
    except BdnnError as e:
        print(f"bdnn {a.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
