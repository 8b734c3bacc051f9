"""Turn image files of any size/mode into 48x48 uint8 faces (numpy + Pillow only)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import BdnnError
from .preprocess import FACE_SIZE


class ImageError(BdnnError, ValueError):
    """An image file that cannot be classified (the message names the file)."""


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


# Larger images are refused before they are decoded: a 64-Mpixel RGB image already takes ~200 MB
# to decode (a PYNQ-Z2 has 512 MB in all), and a small file can claim billions of pixels
# (a decompression bomb).
MAX_PIXELS = 64_000_000


def open_image(path: str | Path, max_pixels: int = MAX_PIXELS):
    """Fully decoded PIL image; ImageError naming the file if missing, empty, truncated, not an
    image, or larger than ``max_pixels`` (checked from the header, before decoding)."""
    from PIL import Image, UnidentifiedImageError
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: empty file")
    try:
        # Pillow's own bomb check (a warning above 89 Mpixel, an error above 179) fires in open(),
        # before the size is known here; the stricter limit below decides instead, naming the size
        pillow_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            im = Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = pillow_limit
        with im:
            w, h = im.size
            if w * h > max_pixels:
                raise ImageError(f"{path}: {w}x{h} is {w * h / 1e6:.0f} Mpixel, over the limit of "
                                 f"{max_pixels / 1e6:.0f} Mpixel; downscale it first")
            im.load()
            return im.copy()
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image file (Pillow cannot identify it)") from None
    except Image.DecompressionBombError as e:
        raise ImageError(f"{path}: refused as a decompression bomb ({e}); the limit is "
                         f"{max_pixels / 1e6:.0f} Mpixel") from None
    except MemoryError:
        raise ImageError(f"{path}: not enough memory to decode this image") from None
    except Exception as e:  # noqa: BLE001 -- any decoder failure is this file's problem, not the batch's
        raise ImageError(f"{path}: unreadable or truncated image ({type(e).__name__}: {e})") from None


def load_face(path: str | Path) -> tuple[np.ndarray, list[str]]:
    """Read an image file as a 48x48 uint8 face (the whole image is the face).

    Returns the face and human-readable notes on conversions (mode, resize). Raises ImageError
    with the file name for missing, empty, truncated, non-image or too small files.
    """
    gray, notes = gray_image(open_image(path), path)
    return resize_face(gray, notes, str(path))


def gray_image(img, path) -> tuple[np.ndarray, list[str]]:
    """:func:`to_gray_u8`, with a conversion Pillow cannot do reported as the file's ImageError."""
    try:
        return to_gray_u8(img)
    except Exception as e:  # noqa: BLE001 -- e.g. a colour mode Pillow cannot convert to grayscale
        raise ImageError(f"{path}: cannot convert its {img.mode} pixels to grayscale ({e})") from None


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
