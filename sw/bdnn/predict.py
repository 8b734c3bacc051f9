"""Classify faces: five crops -> backend -> combine (mean or vote). numpy only."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .combine import combine_scores
from .data import CLASS_NAMES
from .preprocess import five_crops


@dataclass
class Prediction:
    label: int
    name: str
    scores: np.ndarray        # combined (C,)
    crop_scores: np.ndarray   # (5, C)


def classify_faces(backend, faces: np.ndarray, combine: str = "mean") -> list[Prediction]:
    """uint8 faces (N,48,48) -> one Prediction per face."""
    s5 = backend.crop_scores(five_crops(faces))
    comb = combine_scores(s5, combine)
    return [Prediction(int(c.argmax()), CLASS_NAMES[int(c.argmax())], c, s) for c, s in zip(comb, s5)]
