"""Faces in photos: OpenCV's bundled Haar cascade -> 48x48 faces -> annotated PNG.

OpenCV (opencv-python-headless < 5, which still bundles the cascades; the ``demo`` extra) is
imported only here and in :mod:`bdnn.live`.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import MissingExtraError, require
from .images import gray_image, open_image, resize_face


@dataclass
class DetectedFace:
    box: tuple[int, int, int, int]   # x, y, w, h in the photo
    face: np.ndarray                 # uint8 48x48


@functools.lru_cache(maxsize=1)
def _cascade():
    cv2 = require("cv2", "face detection (--detect, bdnn live)")
    path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
    if not path.exists():
        raise MissingExtraError(f"OpenCV {cv2.__version__} ships no Haar cascades ({path}); "
                                "install opencv-python-headless<5 (pip install 'bdnn-fer[demo]')")
    return cv2.CascadeClassifier(str(path))


def load_photo(path: str | Path):
    """Photo file -> (PIL RGB image for drawing, uint8 grayscale array)."""
    from PIL import Image
    im = open_image(path)
    gray, _ = gray_image(im, path)
    rgb = Image.fromarray(gray).convert("RGB") if im.mode in ("I;16", "I;16B", "I;16L", "I", "F") else im.convert("RGB")
    return rgb, gray


def detect_boxes(gray: np.ndarray, min_size: int = 30) -> list[tuple[int, int, int, int]]:
    """(x, y, w, h) of every frontal face in a uint8 grayscale image, largest first."""
    boxes = _cascade().detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(min_size, min_size))
    return sorted((tuple(int(v) for v in b) for b in boxes), key=lambda b: -b[2] * b[3])


def crop_face(gray: np.ndarray, box: tuple[int, int, int, int], margin: float = 0.1) -> np.ndarray:
    """The face in ``box`` with a small margin (clipped to the image), resized to 48x48 uint8."""
    x, y, w, h = box
    h_img, w_img = gray.shape
    m = int(round(margin * w))
    x0, y0, x1, y1 = max(0, x - m), max(0, y - m), min(w_img, x + w + m), min(h_img, y + h + m)
    face, _ = resize_face(np.ascontiguousarray(gray[y0:y1, x0:x1]))
    return face


def detect_faces(gray: np.ndarray, min_size: int = 30, margin: float = 0.1) -> list[DetectedFace]:
    """All frontal faces, largest first, each cropped square with a small margin and resized to 48x48."""
    return [DetectedFace(box, crop_face(gray, box, margin)) for box in detect_boxes(gray, min_size)]


def annotate(rgb_image, faces: list[DetectedFace], labels: list[str], path: str | Path) -> Path:
    """Draw a box and label per face; write a PNG."""
    from PIL import ImageDraw
    img = rgb_image.copy()
    draw = ImageDraw.Draw(img)
    width = max(2, img.width // 200)
    for f, label in zip(faces, labels):
        x, y, w, h = f.box
        draw.rectangle([x, y, x + w, y + h], outline=(255, 40, 40), width=width)
        tx, ty = x, max(0, y - 14)
        tw = draw.textlength(label)
        draw.rectangle([tx, ty, tx + tw + 6, ty + 13], fill=(255, 40, 40))
        draw.text((tx + 3, ty), label, fill=(255, 255, 255))
    path = Path(path)
    img.save(path, format="PNG")
    return path
