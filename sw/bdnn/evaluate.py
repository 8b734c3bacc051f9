"""Accuracy of a model on a FER2013 split, computed exactly as the hardware would (never bf16)."""
from __future__ import annotations

import time

import numpy as np

from .combine import combine_scores
from .data import CLASS_NAMES
from .preprocess import CENTRE, five_crops


def evaluate(backend, faces: np.ndarray, labels: np.ndarray, batch_faces: int = 256, progress: bool = True) -> dict:
    """Centre-crop, five-crop mean and five-crop vote accuracy, per-class recall, confusion matrix."""
    t0 = time.time()
    parts = []
    batches = range(0, len(faces), batch_faces)
    try:  # a progress bar where tqdm is installed (not on a bare board image)
        from tqdm import tqdm
        batches = tqdm(batches, desc=f"evaluate ({backend.name})", unit="batch", disable=not progress)
    except ImportError:
        pass
    for i in batches:
        parts.append(backend.crop_scores(five_crops(faces[i:i + batch_faces])))
    s5 = np.concatenate(parts)
    labels = np.asarray(labels).astype(np.int64)
    pred = combine_scores(s5, "mean").argmax(1)
    cm = np.zeros((len(CLASS_NAMES),) * 2, dtype=np.int64)
    np.add.at(cm, (labels, pred), 1)
    recall = cm.diagonal() / np.maximum(cm.sum(1), 1)
    return {
        "n": int(len(labels)),
        "acc_center": float((s5[:, CENTRE].argmax(1) == labels).mean()),
        "acc_fivecrop_mean": float((pred == labels).mean()),
        "acc_fivecrop_vote": float((combine_scores(s5, "vote").argmax(1) == labels).mean()),
        "per_class_recall": dict(zip(CLASS_NAMES, np.round(recall, 4).tolist())),
        "confusion_matrix": cm.tolist(),
        "seconds": round(time.time() - t0, 2),
        "scores": s5,
    }
