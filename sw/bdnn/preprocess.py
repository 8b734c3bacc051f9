"""Five-crop geometry and input normalization: the one definition every path uses.

numpy only (works with numpy<2 on a PYNQ image).
"""
from __future__ import annotations

import numpy as np

from .arch import CROP_SIZE

FACE_SIZE = 48
# (row, col) of each crop's top-left corner on the 48x48 face, in the paper's order.
CROP_NAMES = ("top-left", "top-right", "bottom-left", "bottom-right", "centre")
_M = FACE_SIZE - CROP_SIZE
CROP_OFFSETS = ((0, 0), (0, _M), (_M, 0), (_M, _M), (_M // 2, _M // 2))
CENTRE = CROP_NAMES.index("centre")


def five_crops(faces: np.ndarray) -> np.ndarray:
    """uint8 faces (N,48,48) or (48,48) -> uint8 crops (N,5,42,42) (a copy)."""
    faces = np.asarray(faces)
    if faces.ndim == 2:
        faces = faces[None]
    if faces.ndim != 3 or faces.shape[1:] != (FACE_SIZE, FACE_SIZE):
        raise ValueError(f"expected faces of shape (N,{FACE_SIZE},{FACE_SIZE}), got {faces.shape}")
    if faces.dtype != np.uint8:
        raise ValueError(f"expected uint8 faces, got {faces.dtype}")
    return np.stack([faces[:, r:r + CROP_SIZE, c:c + CROP_SIZE] for r, c in CROP_OFFSETS], axis=1)


def normalize(pixels):
    """x -> (2x - 255)/255, mapping 0..255 to [-1, 1] (the paper's input normalization).

    Works on numpy arrays and torch tensors alike (only arithmetic is used).
    """
    return (2.0 * pixels - 255.0) / 255.0
