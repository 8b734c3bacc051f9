"""``bdnn``: train, evaluate, export and predict from the command line."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path


def _add_train(sub):
    from .train import TrainConfig  # noqa: F401  (imported lazily at run time too)
    p = sub.add_parser("train", help="train a BDNN/BCNN on FER2013 (selects on PublicTest)")
    from .arch import ARCHS
    p.add_argument("--arch", default="bdnn4", help=" | ".join(ARCHS))
    p.add_argument("--out", required=True, help="run folder (checkpoints, metrics, plots, model.npz)")
    p.add_argument("--data", default=None, help="FER2013 npz/csv/image folder (default: $FER2013_PATH)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    p.add_argument("--stop-after", type=int, default=0, help="end this invocation after N epochs (resumable)")
    for f in dataclasses.fields(TrainConfig):
        if f.name == "arch":
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            p.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=f.default)
        else:
            p.add_argument(flag, dest=f.name, type=type(f.default), default=f.default)
    p.set_defaults(func=cmd_train)


def cmd_train(a) -> int:
    from .train import TrainConfig, train
    cfg = TrainConfig(**{f.name: getattr(a, f.name) for f in dataclasses.fields(TrainConfig)})
    res = train(cfg, Path(a.out), resume=a.resume, data_path=a.data, stop_after=a.stop_after)
    print(json.dumps({"best": res["best"]}))
    return 0


def _add_predict(sub):
    p = sub.add_parser("predict", help="classify faces: whole images (any size/mode) or, with --detect, every face in photos")
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--model", default=str(_default_model()), help="model folder or model.npz (default: models/bdnn4)")
    p.add_argument("--backend", default="cpu", help="cpu (default) | brevitas | finn-sim | pynq")
    p.add_argument("--hw-graph", default=None, help="finn-sim: FINN HW-layer graph (default: build/<arch>/frontend/...)")
    p.add_argument("--deploy", default=None, help="pynq: the board build's deployment folder")
    p.add_argument("--vote", action="store_true", help="majority vote of the five crops instead of averaging scores")
    p.add_argument("--json", action="store_true", help="one JSON object per face")
    p.add_argument("--detect", action="store_true", help="find faces in photos (OpenCV Haar cascade) and write annotated PNGs")
    p.add_argument("--out-dir", default=".", help="--detect: folder for <image>.annotated.png (default: .)")
    p.set_defaults(func=cmd_predict)


def _default_model() -> Path:
    return Path(__file__).resolve().parents[2] / "models" / "bdnn4"


def cmd_predict(a) -> int:
    import numpy as np

    from .backends import get_backend
    from .data import CLASS_NAMES
    from .images import ImageError, load_face
    from .predict import classify_faces
    backend = get_backend(a.backend, a.model, hw_graph=a.hw_graph, deploy=a.deploy)
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


def _add_evaluate(sub):
    p = sub.add_parser("evaluate", help="accuracy on a FER2013 split (centre, five-crop mean and vote)")
    p.add_argument("--model", default=str(_default_model()), help="model folder or model.npz (default: models/bdnn4)")
    p.add_argument("--data", default=None, help="FER2013 npz/csv/image folder (default: $FER2013_PATH or ../shared)")
    p.add_argument("--split", default="PrivateTest", help="Training | PublicTest | PrivateTest (default: PrivateTest)")
    p.add_argument("--backend", default="cpu", help="cpu (default) | brevitas | finn-sim | pynq")
    p.add_argument("--hw-graph", default=None, help="finn-sim: FINN HW-layer graph")
    p.add_argument("--deploy", default=None, help="pynq: the board build's deployment folder")
    p.add_argument("--limit", type=int, default=0, help="evaluate the first N faces only")
    p.add_argument("--confusion-png", default=None, help="write the confusion matrix plot here")
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(a) -> int:
    from .backends import get_backend
    from .data import CLASS_NAMES, load_fer2013
    from .evaluate import evaluate
    faces, labels = load_fer2013(a.data).split(a.split)
    if a.limit:
        faces, labels = faces[:a.limit], labels[:a.limit]
    backend = get_backend(a.backend, a.model, hw_graph=a.hw_graph, deploy=a.deploy)
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
    print(json.dumps({"model": str(a.model), "arch": backend.spec.name, "split": a.split, "backend": backend.name, **r}))
    return 0


def _add_ship(sub):
    p = sub.add_parser("ship", help="package a training run as models/<arch>: artifact, model card, plots")
    p.add_argument("run", help="training run folder, or a shipped model folder to re-package from its card")
    p.add_argument("out", help="model folder to write, e.g. models/bdnn4")
    p.add_argument("--data", default=None)
    p.add_argument("--command", default=None, help="the exact command that produced the run (for the card)")
    p.set_defaults(func=cmd_ship)


def cmd_ship(a) -> int:
    from .ship import repackage, ship
    src = Path(a.run)
    if not (src / "config.json").exists() and (src / "card.json").exists():
        card = repackage(src, Path(a.out), a.data)
    else:
        card = ship(src, Path(a.out), a.data, a.command)
    print(json.dumps({"model": card["model"], "best_epoch": card["best_epoch"],
                      **{s: v["acc_fivecrop_mean"] for s, v in card["accuracy"].items()}}))
    return 0


def _add_results(sub):
    p = sub.add_parser("results", help="the paper's Tables 3-4 beside the shipped models' measured accuracy (markdown)")
    p.add_argument("--models-dir", default=str(_default_model().parent), help="folder of shipped models (default: models/)")
    p.set_defaults(func=cmd_results)


def cmd_results(a) -> int:
    from .results import load_cards, markdown_table, results_rows
    cards = load_cards(Path(a.models_dir))
    if not cards:
        print(f"error: no model cards under {a.models_dir} (ship one with `bdnn ship RUN models/<arch>`)", file=sys.stderr)
        return 2
    print(markdown_table(results_rows(cards)))
    return 0


def _add_export(sub):
    p = sub.add_parser("export", help="export a model to QONNX (raw UINT8 pixel input)")
    p.add_argument("--model", default=str(_default_model()), help="model folder or model.npz")
    p.add_argument("--out", required=True, help="QONNX file to write")
    p.set_defaults(func=cmd_export)


def cmd_export(a) -> int:
    from .artifact import load
    from .export import export_qonnx
    from .nn import from_artifact
    art = load(a.model)
    path = export_qonnx(from_artifact(art), art.spec, a.out)
    print(f"wrote {path} ({art.spec.name}, input: UINT8 pixels 1x1x{art.spec.in_size}x{art.spec.in_size})")
    return 0


def _add_throughput(sub):
    p = sub.add_parser("throughput", help="faces/s of a backend and where the time goes")
    p.add_argument("--model", default=str(_default_model()))
    p.add_argument("--backend", default="cpu", help="cpu (default) | brevitas | finn-sim | pynq")
    p.add_argument("--hw-graph", default=None)
    p.add_argument("--deploy", default=None)
    p.add_argument("--faces", type=int, default=500, help="how many faces (PrivateTest if available, else random)")
    p.add_argument("--data", default=None)
    p.set_defaults(func=cmd_throughput)


def cmd_throughput(a) -> int:
    import time

    import numpy as np

    from .backends import get_backend
    from .combine import combine_scores
    from .data import DataError, load_fer2013
    from .preprocess import five_crops
    try:
        faces = load_fer2013(a.data).split("PrivateTest")[0][:a.faces]
    except DataError:
        faces = np.random.default_rng(0).integers(0, 256, (a.faces, 48, 48), dtype=np.uint8)
    backend = get_backend(a.backend, a.model, hw_graph=a.hw_graph, deploy=a.deploy)
    backend.crop_scores(five_crops(faces[:2]))  # warm-up (kernel build, caches)
    t0 = time.perf_counter()
    crops = five_crops(faces)
    t1 = time.perf_counter()
    s5 = backend.crop_scores(crops)
    t2 = time.perf_counter()
    combine_scores(s5, "mean").argmax(1)
    t3 = time.perf_counter()
    total = t3 - t0
    r = {"backend": backend.name, "faces": len(faces), "crops": 5 * len(faces), "faces_per_s": len(faces) / total,
         "crops_per_s": 5 * len(faces) / (t2 - t1), "seconds": {"preprocess": t1 - t0, "compute": t2 - t1, "combine": t3 - t2}}
    print(f"{backend.name}: {r['faces_per_s']:.1f} faces/s ({r['crops_per_s']:.0f} crops/s in compute); "
          f"preprocess {1e3 * (t1 - t0) / len(faces):.3f} ms/face, compute {1e3 * (t2 - t1) / len(faces):.2f} ms/face, "
          f"combine {1e3 * (t3 - t2) / len(faces):.3f} ms/face")
    print(json.dumps(r))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="bdnn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_predict(sub)
    _add_evaluate(sub)
    _add_ship(sub)
    _add_results(sub)
    _add_export(sub)
    _add_throughput(sub)
    a = parser.parse_args(argv)
    try:
        return a.func(a)
    except (ValueError, RuntimeError, OSError) as e:
        from .artifact import ArtifactError
        from .data import DataError
        if isinstance(e, (DataError, ArtifactError)) or type(e).__name__ in ("CheckpointError", "BackendError", "ImageError"):
            print(f"bdnn {a.command}: error: {e}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
