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
    p.add_argument("--arch", default="bdnn4", help="bdnn2 | bdnn3 | bdnn4 | bcnn4")
    p.add_argument("--out", required=True, help="run folder (checkpoints, metrics, plots, model.npz)")
    p.add_argument("--data", default=None, help="FER2013 npz/csv/image folder (default: $FER2013_PATH)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
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
    res = train(cfg, Path(a.out), resume=a.resume, data_path=a.data)
    print(json.dumps({"best": res["best"]}))
    return 0


def _add_predict(sub):
    p = sub.add_parser("predict", help="classify image files (any size/mode; the whole image is the face)")
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--model", default=str(_default_model()), help="model folder or model.npz (default: models/bdnn4)")
    p.add_argument("--backend", default="brevitas", help="brevitas | finn-sim")
    p.add_argument("--hw-graph", default=None, help="finn-sim: FINN HW-layer graph (default: build/<arch>/frontend/...)")
    p.add_argument("--vote", action="store_true", help="majority vote of the five crops instead of averaging scores")
    p.add_argument("--json", action="store_true", help="one JSON object per image")
    p.set_defaults(func=cmd_predict)


def _default_model() -> Path:
    return Path(__file__).resolve().parents[2] / "models" / "bdnn4"


def cmd_predict(a) -> int:
    import numpy as np

    from .backends import get_backend
    from .data import CLASS_NAMES
    from .images import ImageError, load_face
    from .predict import classify_faces
    backend = get_backend(a.backend, a.model, hw_graph=a.hw_graph)
    mode = "vote" if a.vote else "mean"
    failed = 0
    for path in a.images:
        try:
            face, notes = load_face(path)
        except ImageError as e:
            print(f"error: {e}", file=sys.stderr)
            failed += 1
            continue
        p = classify_faces(backend, face[None], mode)[0]
        if a.json:
            print(json.dumps({"image": path, "label": p.name, "combine": mode, "backend": backend.name,
                              "scores": dict(zip(CLASS_NAMES, np.round(p.scores, 4).tolist())),
                              "crop_labels": [CLASS_NAMES[i] for i in p.crop_scores.argmax(1)], "notes": notes}))
            continue
        for n in notes:
            print(f"note: {path}: {n}")
        print(f"{path}: {p.name}  ({'majority vote' if a.vote else 'mean'} of 5 crops, {backend.name})")
        print("  " + "  ".join(f"{c} {v:+.3f}" for c, v in zip(CLASS_NAMES, p.scores)))
    if failed:
        print(f"{failed} of {len(a.images)} images could not be classified", file=sys.stderr)
    return 1 if failed else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="bdnn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_predict(sub)
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
