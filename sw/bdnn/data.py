"""FER2013 loading: the Kaggle CSV, a packed ``.npz`` and image-folder copies.

Everything is returned as one :class:`FER2013` record holding all rows:

* ``pixels`` uint8 ``(N, 48, 48)`` grayscale faces,
* ``labels`` uint8 ``(N,)`` class indices into :data:`CLASS_NAMES`,
* ``usage``  uint8 ``(N,)`` split codes into :data:`SPLITS`
  (0 = Training, 1 = PublicTest, 2 = PrivateTest).

Three on-disk formats are understood (see :func:`load_fer2013`):

1. ``*.npz`` with arrays ``pixels``, ``labels`` and ``usage`` as above.
2. The Kaggle ``fer2013.csv`` (columns ``emotion``, ``pixels``, ``Usage``).
3. Image folders ``<root>/<split>/<class>/*.png|*.jpg|*.jpeg``.

Every problem with the input raises :class:`DataError` (a ``ValueError``) whose
message names the file and, where it applies, the row or the image. Loading
never writes anything.

This module uses only the standard library, numpy (1.x or 2.x) and Pillow, so
it also runs on a PYNQ board image.
"""

from __future__ import annotations

import csv
import os
import pathlib
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

from .errors import BdnnError

__all__ = [
    "CLASS_NAMES",
    "SPLITS",
    "FACE_SIZE",
    "DataError",
    "FER2013",
    "default_data_path",
    "load_fer2013",
]

CLASS_NAMES: Tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
SPLITS: Tuple[str, ...] = ("Training", "PublicTest", "PrivateTest")  # usage codes 0, 1, 2
FACE_SIZE = 48

_NPIX = FACE_SIZE * FACE_SIZE
_IMAGE_EXTS = (".png", ".jpg", ".jpeg")

# Split folder names (lower case) -> usage code.
_SPLIT_ALIASES: Dict[str, int] = {
    "training": 0,
    "train": 0,
    "publictest": 1,
    "val": 1,
    "validation": 1,
    "privatetest": 2,
    "test": 2,
}

PathLike = Union[str, "os.PathLike[str]"]


class DataError(BdnnError, ValueError):
    """Bad or missing input data. The message names the file and the row/image."""


# --------------------------------------------------------------------------- #
# Record
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class FER2013:
    """All rows of a FER2013 copy.

    ``pixels`` uint8 (N, 48, 48); ``labels`` uint8 (N,) in 0..6;
    ``usage`` uint8 (N,) in 0..2; ``source`` is the path the data came from.
    """

    pixels: np.ndarray
    labels: np.ndarray
    usage: np.ndarray
    source: str

    def __post_init__(self) -> None:
        _check_arrays(self.pixels, self.labels, self.usage, self.source)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def split(self, name: str) -> Tuple[np.ndarray, np.ndarray]:
        """Return ``(pixels, labels)`` of one split (copies, in file order).

        ``name`` is one of :data:`SPLITS`; the folder aliases ``train``,
        ``val``/``validation`` and ``test`` (any case) are accepted too.
        """
        code = _split_code(name)
        if code is None:
            raise DataError(
                f"{self.source}: unknown split {name!r}; valid names are "
                f"{', '.join(SPLITS)} (or train, val, validation, test)"
            )
        mask = self.usage == code
        return self.pixels[mask], self.labels[mask]

    def counts(self) -> Dict[str, int]:
        """Number of rows per split name (every name in :data:`SPLITS` is present)."""
        per = np.bincount(self.usage.astype(np.int64), minlength=len(SPLITS))
        return {name: int(per[i]) for i, name in enumerate(SPLITS)}


def _split_code(name: object) -> Optional[int]:
    if not isinstance(name, str):
        return None
    if name in SPLITS:
        return SPLITS.index(name)
    return _SPLIT_ALIASES.get(name.strip().lower())


def _check_arrays(pixels: object, labels: object, usage: object, source: str) -> None:
    """Check the final (already converted) arrays of a FER2013 record."""
    for name, arr, ndim in (("pixels", pixels, 3), ("labels", labels, 1), ("usage", usage, 1)):
        if not isinstance(arr, np.ndarray):
            raise DataError(f"{source}: array '{name}' is {type(arr).__name__}, expected a numpy array")
        if arr.dtype != np.uint8:
            raise DataError(f"{source}: array '{name}' has dtype {arr.dtype}, expected uint8")
        if arr.ndim != ndim:
            raise DataError(f"{source}: array '{name}' has shape {arr.shape}, expected {ndim} dimension(s)")
    if pixels.shape[1:] != (FACE_SIZE, FACE_SIZE):
        raise DataError(
            f"{source}: array 'pixels' has shape {pixels.shape}, expected (N, {FACE_SIZE}, {FACE_SIZE})"
        )
    n = pixels.shape[0]
    if labels.shape[0] != n or usage.shape[0] != n:
        raise DataError(
            f"{source}: arrays have different lengths: pixels {n}, labels {labels.shape[0]}, "
            f"usage {usage.shape[0]}"
        )
    for name, arr, hi in (("labels", labels, len(CLASS_NAMES) - 1), ("usage", usage, len(SPLITS) - 1)):
        if arr.size and int(arr.max()) > hi:
            i = int(np.argmax(arr > hi))
            raise DataError(f"{source}: array '{name}' has value {int(arr[i])} at index {i}, expected 0..{hi}")


# --------------------------------------------------------------------------- #
# Paths and dispatch
# --------------------------------------------------------------------------- #


def default_data_path() -> Optional[pathlib.Path]:
    """Where to find FER2013 when no path is given.

    ``$FER2013_PATH`` if set (returned even if it does not exist, so that
    loading reports it); else ``<repo>/../shared/data/fer2013/fer2013.npz`` if
    that file exists; else ``None``.
    """
    env = os.environ.get("FER2013_PATH")
    if env:
        return pathlib.Path(env).expanduser()
    repo = pathlib.Path(__file__).resolve().parents[2]
    candidate = repo.parent / "shared" / "data" / "fer2013" / "fer2013.npz"
    if candidate.is_file():
        return candidate
    return None


def load_fer2013(path: Optional[PathLike] = None) -> FER2013:
    """Load FER2013 from ``path`` (a ``.npz``, a ``.csv`` or an image-folder root).

    ``path=None`` uses :func:`default_data_path`. Raises :class:`DataError`
    on any missing or malformed input.
    """
    if path is None:
        path = default_data_path()
        if path is None:
            raise DataError(
                "no FER2013 data path given and none found: pass --data PATH or set "
                "the FER2013_PATH environment variable (a .npz, a fer2013.csv, or an "
                "image folder <root>/<split>/<class>/*.png)"
            )
    p = pathlib.Path(os.fspath(path)).expanduser()
    if not p.exists():
        raise DataError(f"{p}: FER2013 data path does not exist")
    if p.is_dir():
        return _load_folders(p)
    suffix = p.suffix.lower()
    if suffix == ".npz":
        return _load_npz(p)
    if suffix == ".csv":
        return _load_csv(p)
    raise DataError(
        f"{p}: unsupported FER2013 file type {p.suffix or '(no suffix)'!r}; expected a .npz, "
        f"a .csv or a directory <root>/<split>/<class>/*.png"
    )


# --------------------------------------------------------------------------- #
# npz
# --------------------------------------------------------------------------- #


def _as_uint8(arr: np.ndarray, name: str, hi: int, source: str) -> np.ndarray:
    """Convert an integer-valued array to uint8, checking the range 0..hi."""
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            raise DataError(f"{source}: array '{name}' contains NaN or infinite values")
        frac = arr != np.round(arr)
        if frac.any():
            i = int(np.argmax(frac.ravel()))
            raise DataError(
                f"{source}: array '{name}' has non-integer value {arr.ravel()[i]!r} at flat index {i}"
            )
    elif arr.dtype.kind not in "iub":
        raise DataError(f"{source}: array '{name}' has dtype {arr.dtype}, expected integers")
    flat = arr.ravel()
    bad = (flat < 0) | (flat > hi)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"{source}: array '{name}' has value {flat[i]!r} at flat index {i}, expected 0..{hi}")
    return np.ascontiguousarray(arr, dtype=np.uint8)


def _load_npz(path: pathlib.Path) -> FER2013:
    source = str(path)
    try:
        npz = np.load(str(path), allow_pickle=False)
    except Exception as exc:  # BadZipFile, OSError, ValueError, EOFError ...
        raise DataError(f"{source}: cannot read as .npz: {exc}") from exc
    if not hasattr(npz, "files"):  # a plain .npy saved under a .npz name
        raise DataError(f"{source}: is not an .npz archive (np.load returned {type(npz).__name__})")
    try:
        arrays = {}
        for name in ("pixels", "labels", "usage"):
            if name not in npz.files:
                raise DataError(
                    f"{source}: missing array '{name}' (found: {', '.join(npz.files) or 'none'}); "
                    f"expected pixels, labels, usage"
                )
            try:
                arrays[name] = npz[name]
            except Exception as exc:
                raise DataError(f"{source}: cannot read array '{name}': {exc}") from exc
    finally:
        npz.close()

    pixels, labels, usage = arrays["pixels"], arrays["labels"], arrays["usage"]
    if pixels.ndim == 2 and pixels.shape[1] == _NPIX:
        pixels = pixels.reshape(-1, FACE_SIZE, FACE_SIZE)
    if pixels.ndim != 3 or pixels.shape[1:] != (FACE_SIZE, FACE_SIZE):
        raise DataError(
            f"{source}: array 'pixels' has shape {pixels.shape}, expected (N, {FACE_SIZE}, {FACE_SIZE})"
        )
    for name, arr in (("labels", labels), ("usage", usage)):
        if arr.ndim != 1:
            raise DataError(f"{source}: array '{name}' has shape {arr.shape}, expected (N,)")
    n = pixels.shape[0]
    if n == 0:
        raise DataError(f"{source}: array 'pixels' is empty (0 images)")
    if labels.shape[0] != n or usage.shape[0] != n:
        raise DataError(
            f"{source}: arrays have different lengths: pixels {n}, labels {labels.shape[0]}, "
            f"usage {usage.shape[0]}"
        )
    pixels = _as_uint8(pixels, "pixels", 255, source)
    labels = _as_uint8(labels, "labels", len(CLASS_NAMES) - 1, source)
    usage = _as_uint8(usage, "usage", len(SPLITS) - 1, source)
    return FER2013(pixels=pixels, labels=labels, usage=usage, source=source)


# --------------------------------------------------------------------------- #
# Kaggle CSV
# --------------------------------------------------------------------------- #


def _parse_pixels(text: str, where: str) -> np.ndarray:
    tokens = text.split()
    if len(tokens) != _NPIX:
        raise DataError(f"{where}: 'pixels' has {len(tokens)} values, expected {_NPIX} ({FACE_SIZE}x{FACE_SIZE})")
    try:
        values = np.array(tokens, dtype=np.int64)
    except (ValueError, OverflowError):
        values = None
    if values is None:
        for i, tok in enumerate(tokens):
            try:
                int(tok)
            except ValueError:
                raise DataError(
                    f"{where}: 'pixels' value {i + 1} is {tok!r}, not an integer"
                ) from None
        # int() accepted every token but numpy did not (e.g. huge numbers)
        raise DataError(f"{where}: 'pixels' holds values that are not integers 0..255")
    bad = (values < 0) | (values > 255)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"{where}: 'pixels' value {i + 1} is {int(values[i])}, expected 0..255")
    return values.astype(np.uint8).reshape(FACE_SIZE, FACE_SIZE)


def _load_csv(path: pathlib.Path) -> FER2013:
    source = str(path)
    pixels: List[np.ndarray] = []
    labels: List[int] = []
    usage: List[int] = []
    usage_lookup = {name.lower(): i for i, name in enumerate(SPLITS)}
    try:
        with open(path, "r", encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh)
            header: Optional[List[str]] = None
            for record in reader:
                if not record or all(not f.strip() for f in record):
                    continue  # blank line
                header = record
                break
            if header is None:
                raise DataError(f"{source}: file is empty (expected a header 'emotion,pixels,Usage' and data rows)")
            names = [h.strip().lower() for h in header]
            cols: Dict[str, int] = {}
            for want in ("emotion", "pixels", "usage"):
                found = [i for i, h in enumerate(names) if h == want]
                if not found:
                    raise DataError(
                        f"{source}: header (line {reader.line_num}) has no '{want}' column "
                        f"(found columns: {', '.join(repr(h) for h in header)}); "
                        f"expected emotion, pixels, Usage"
                    )
                if len(found) > 1:
                    raise DataError(f"{source}: header (line {reader.line_num}) has column '{want}' more than once")
                cols[want] = found[0]
            ie, ip, iu = cols["emotion"], cols["pixels"], cols["usage"]
            ncols = len(header)
            row = 0
            for record in reader:
                if not record or all(not f.strip() for f in record):
                    continue  # blank line (e.g. trailing newline)
                row += 1
                where = f"{source}: row {row} (line {reader.line_num})"
                if len(record) != ncols:
                    raise DataError(f"{where}: has {len(record)} fields, expected {ncols} like the header")
                em = record[ie].strip()
                try:
                    label = int(em)
                except ValueError:
                    raise DataError(f"{where}: 'emotion' is {em!r}, not an integer 0..6") from None
                if not 0 <= label < len(CLASS_NAMES):
                    raise DataError(f"{where}: 'emotion' is {label}, expected 0..{len(CLASS_NAMES) - 1}")
                us = record[iu].strip()
                code = usage_lookup.get(us.lower())
                if code is None:
                    raise DataError(f"{where}: 'Usage' is {us!r}, expected one of {', '.join(SPLITS)}")
                pixels.append(_parse_pixels(record[ip], where))
                labels.append(label)
                usage.append(code)
    except DataError:
        raise
    except UnicodeDecodeError as exc:
        raise DataError(f"{source}: not a text CSV file ({exc})") from exc
    except csv.Error as exc:
        raise DataError(f"{source}: line {reader.line_num}: malformed CSV: {exc}") from exc
    except OSError as exc:
        raise DataError(f"{source}: cannot read: {exc}") from exc
    if not pixels:
        raise DataError(f"{source}: has a header but no data rows")
    return FER2013(
        pixels=np.stack(pixels),
        labels=np.array(labels, dtype=np.uint8),
        usage=np.array(usage, dtype=np.uint8),
        source=source,
    )


# --------------------------------------------------------------------------- #
# Image folders
# --------------------------------------------------------------------------- #

_FILE_PREFIXES = tuple((name + "_", i) for i, name in enumerate(SPLITS))


def _class_index(name: str) -> Optional[int]:
    s = name.strip().lower()
    if s.isdigit() and len(s) == 1 and int(s) < len(CLASS_NAMES):
        return int(s)
    if s in CLASS_NAMES:
        return CLASS_NAMES.index(s)
    return None


def _read_face(path: pathlib.Path) -> np.ndarray:
    from PIL import Image  # imported lazily: npz/CSV loading works without Pillow

    try:
        with Image.open(path) as im:
            im.load()
            mode, size = im.mode, im.size
            if mode != "L" or size != (FACE_SIZE, FACE_SIZE):
                raise DataError(
                    f"{path}: image is {size[0]}x{size[1]} {mode}, expected "
                    f"{FACE_SIZE}x{FACE_SIZE} grayscale (mode L)"
                )
            arr = np.asarray(im, dtype=np.uint8).copy()
    except DataError:
        raise
    except Exception as exc:  # UnidentifiedImageError, OSError (truncated), SyntaxError, ...
        raise DataError(f"{path}: cannot read image (corrupt or truncated?): {exc}") from exc
    return arr


def _load_folders(root: pathlib.Path) -> FER2013:
    source = str(root)
    try:
        entries = sorted(root.iterdir(), key=lambda q: q.name)
    except OSError as exc:
        raise DataError(f"{source}: cannot list directory: {exc}") from exc
    split_dirs = [(d, _SPLIT_ALIASES[d.name.lower()]) for d in entries
                  if d.is_dir() and d.name.lower() in _SPLIT_ALIASES]
    if not split_dirs:
        seen = ", ".join(d.name for d in entries if d.is_dir()) or "none"
        raise DataError(
            f"{source}: no split folders found (subfolders: {seen}); expected "
            f"<root>/<split>/<class>/*.png with split one of Training, PublicTest, PrivateTest, "
            f"train, val, validation, test"
        )

    items: List[Tuple[int, int, str, pathlib.Path]] = []  # (usage, label, relpath, path)
    for split_dir, split_code in split_dirs:
        for entry in sorted(split_dir.iterdir(), key=lambda q: q.name):
            if entry.name.startswith("."):
                continue
            if not entry.is_dir():
                if entry.suffix.lower() in _IMAGE_EXTS:
                    raise DataError(
                        f"{entry}: image is not inside a class folder; expected "
                        f"{split_dir}/<class>/{entry.name} with class one of {', '.join(CLASS_NAMES)} or 0..6"
                    )
                continue
            label = _class_index(entry.name)
            if label is None:
                raise DataError(
                    f"{entry}: unknown class folder {entry.name!r}; expected one of "
                    f"{', '.join(CLASS_NAMES)} (any case) or 0..6"
                )
            for f in sorted(entry.iterdir(), key=lambda q: q.name):
                if f.name.startswith(".") or not f.is_file() or f.suffix.lower() not in _IMAGE_EXTS:
                    continue
                code = split_code
                for prefix, pcode in _FILE_PREFIXES:
                    if f.name.startswith(prefix):
                        code = pcode
                        break
                items.append((code, label, f.relative_to(root).as_posix(), f))
    if not items:
        raise DataError(f"{source}: no images (*.png, *.jpg, *.jpeg) found under the split/class folders")

    items.sort(key=lambda t: (t[0], t[1], t[2]))
    pixels = np.empty((len(items), FACE_SIZE, FACE_SIZE), dtype=np.uint8)
    for k, (_, _, _, f) in enumerate(items):
        pixels[k] = _read_face(f)
    return FER2013(
        pixels=pixels,
        labels=np.array([t[1] for t in items], dtype=np.uint8),
        usage=np.array([t[0] for t in items], dtype=np.uint8),
        source=source,
    )
