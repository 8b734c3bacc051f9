"""Turn image files of any size/mode into 48x48 uint8 faces (numpy + Pillow only)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .preprocess import FACE_SIZE


class ImageError(ValueError):
    pass


def to_gray_u8(img) -> tuple[np.ndarray, list[str]]:
    """A PIL image in any mode -> uint8 grayscale array, with notes on what was converted."""
    notes = []
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if mode.startswith("I;16") else max(float(a.max()), 1.0)
        notes.append(f"{mode} image scaled to 8 bits")
        return np.clip(np.rint(a * 255.0 / hi), 0, 255).astype(np.uint8), notes
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        from PIL import Image
        bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(bg, img.convert("RGBA"))
        notes.append(f"{mode} alpha composited on white")
    if img.mode != "L":
        notes.append(f"converted {mode} to grayscale")
        img = img.convert("L")
    return np.asarray(img, dtype=np.uint8), notes


def open_image(path: str | Path):
    """Fully decoded PIL image; ImageError naming the file if missing, empty, truncated or not an image."""
    from PIL import Image, UnidentifiedImageError
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: empty file")
    try:
        with Image.open(path) as im:
            im.load()
            return im.copy()
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image file (Pillow cannot identify it)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{path}: unreadable or truncated image ({e})") from None


def load_face(path: str | Path) -> tuple[np.ndarray, list[str]]:
    """Read an image file as a 48x48 uint8 face (the whole image is the face).

    Returns the face and human-readable notes on conversions (mode, resize). Raises ImageError
    with the file name for missing, empty, truncated, non-image or too small files.
    """
    gray, notes = to_gray_u8(open_image(path))
    return resize_face(gray, notes, str(path))


MIN_SIDE = 8


def resize_face(gray: np.ndarray, notes: list[str] | None = None, what: str = "image") -> tuple[np.ndarray, list[str]]:
    from PIL import Image
    notes = list(notes or [])
    h, w = gray.shape
    if min(h, w) < MIN_SIDE:
        raise ImageError(f"{what}: {w}x{h} is too small to hold a face (need at least {MIN_SIDE}x{MIN_SIDE})")
    if (h, w) != (FACE_SIZE, FACE_SIZE):
        notes.append(f"resized {w}x{h} to {FACE_SIZE}x{FACE_SIZE}")
        gray = np.asarray(Image.fromarray(gray).resize((FACE_SIZE, FACE_SIZE), Image.BILINEAR), dtype=np.uint8)
    return gray, notes
