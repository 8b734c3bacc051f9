"""Image perturbations: the robustness report (``bdnn evaluate --perturb``) and the training-time
robustness augmentations (``bdnn train --robust-augment``) share these primitives.

Every perturbation acts on whole uint8 48x48 faces (what a camera and the host's face crop
deliver), before the five 42x42 crops are cut: JPEG compression, brightness and contrast changes,
sensor noise, blur and small shifts of the face in its frame. numpy + Pillow only (torch-free,
numpy<2 works), deterministic for a given seed.
"""
from __future__ import annotations

import io
import time

import numpy as np

from .errors import BdnnError


class PerturbError(BdnnError, ValueError):
    """An unknown perturbation or augmentation name."""


# -- primitives on uint8 faces (N,H,W) -------------------------------------------------------------
def jpeg(faces: np.ndarray, quality) -> np.ndarray:
    """Encode and decode each face as a grayscale JPEG (Pillow, 4:2:0 irrelevant for one channel)."""
    from PIL import Image
    q = np.broadcast_to(np.asarray(quality, dtype=int), (len(faces),))
    out = np.empty_like(faces)
    for i, f in enumerate(faces):
        buf = io.BytesIO()
        Image.fromarray(f, mode="L").save(buf, format="JPEG", quality=int(q[i]))
        buf.seek(0)
        out[i] = np.asarray(Image.open(buf).convert("L"))
    return out


def brightness(faces: np.ndarray, delta) -> np.ndarray:
    """Add ``delta`` grey levels (per face or one for all), clipped to 0..255."""
    d = np.asarray(delta, dtype=np.float32).reshape(-1, 1, 1)
    return np.clip(faces.astype(np.float32) + d, 0, 255).round().astype(np.uint8)


def contrast(faces: np.ndarray, factor) -> np.ndarray:
    """Scale each face's deviation from its own mean by ``factor`` (< 1: flatter), clipped."""
    f = faces.astype(np.float32)
    mean = f.mean(axis=(1, 2), keepdims=True)
    k = np.asarray(factor, dtype=np.float32).reshape(-1, 1, 1)
    return np.clip(mean + k * (f - mean), 0, 255).round().astype(np.uint8)


def noise(faces: np.ndarray, sigma, rng: np.random.Generator) -> np.ndarray:
    """Additive Gaussian noise of standard deviation ``sigma`` grey levels, clipped."""
    s = np.asarray(sigma, dtype=np.float32).reshape(-1, 1, 1)
    n = rng.standard_normal(faces.shape, dtype=np.float32) * s
    return np.clip(faces.astype(np.float32) + n, 0, 255).round().astype(np.uint8)


def blur(faces: np.ndarray, radius) -> np.ndarray:
    """Gaussian blur of the given radius (Pillow); radius 0 leaves a face as it is."""
    from PIL import Image, ImageFilter
    r = np.broadcast_to(np.asarray(radius, dtype=float), (len(faces),))
    out = faces.copy()
    for i, f in enumerate(faces):
        if r[i] > 0:
            out[i] = np.asarray(Image.fromarray(f, mode="L").filter(ImageFilter.GaussianBlur(float(r[i]))))
    return out


def shift(faces: np.ndarray, dy, dx) -> np.ndarray:
    """Move each face by (dy, dx) pixels inside its frame; the uncovered border repeats the edge."""
    n, h, w = faces.shape
    dy = np.broadcast_to(np.asarray(dy, dtype=int), (n,))
    dx = np.broadcast_to(np.asarray(dx, dtype=int), (n,))
    rows = np.clip(np.arange(h)[None, :] - dy[:, None], 0, h - 1)  # (n, h): source row of each output row
    cols = np.clip(np.arange(w)[None, :] - dx[:, None], 0, w - 1)
    return faces[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


# -- the evaluation set: fixed strengths ---------------------------------------------------------------
def _random_shift(faces, d, rng):
    """Every face moved by d pixels along each axis, the directions drawn per face (seeded)."""
    signs = rng.choice([-1, 1], size=(2, len(faces)))
    return shift(faces, d * signs[0], d * signs[1])


# name -> (what it models, function(faces, rng) -> faces)
PERTURBATIONS = {
    "jpeg-60": ("JPEG quality 60", lambda f, rng: jpeg(f, 60)),
    "jpeg-30": ("JPEG quality 30", lambda f, rng: jpeg(f, 30)),
    "bright+32": ("brightness +32 grey levels", lambda f, rng: brightness(f, 32)),
    "bright-32": ("brightness -32 grey levels", lambda f, rng: brightness(f, -32)),
    "contrast-0.6": ("contrast x0.6 around the face's mean", lambda f, rng: contrast(f, 0.6)),
    "noise-8": ("Gaussian noise, sigma 8 grey levels", lambda f, rng: noise(f, 8.0, rng)),
    "blur-1": ("Gaussian blur, radius 1 px", lambda f, rng: blur(f, 1.0)),
    "shift-2": ("face moved 2 px along each axis (random directions)", lambda f, rng: _random_shift(f, 2, rng)),
    "shift-3": ("face moved 3 px along each axis (random directions)", lambda f, rng: _random_shift(f, 3, rng)),
}


def parse_names(spec: str | None, known) -> list[str]:
    """'all' / '' / None -> every name; else a comma list, each checked."""
    if not spec or spec == "all":
        return list(known)
    names = [s.strip() for s in spec.split(",") if s.strip()]
    bad = [n for n in names if n not in known]
    if bad:
        raise PerturbError(f"unknown: {', '.join(bad)}; choose from {', '.join(known)} (or all)")
    return names


def perturb(faces: np.ndarray, name: str, seed: int = 0) -> np.ndarray:
    if name not in PERTURBATIONS:
        raise PerturbError(f"unknown perturbation {name!r}; choose from {', '.join(PERTURBATIONS)}")
    return PERTURBATIONS[name][1](np.asarray(faces, dtype=np.uint8), np.random.default_rng(seed))


def perturbation_report(backend, faces: np.ndarray, labels: np.ndarray, names=None, seed: int = 0,
                        progress: bool = False) -> dict:
    """Accuracy (five-crop mean, centre, vote) on clean faces and on each perturbation, with the drop
    in points from clean. ``faces``: uint8 (N,48,48)."""
    from .evaluate import evaluate
    names = list(PERTURBATIONS) if names is None else list(names)
    t0 = time.time()
    keys = ("acc_fivecrop_mean", "acc_center", "acc_fivecrop_vote")

    def run(f):
        r = evaluate(backend, f, labels, progress=progress)
        return {k: r[k] for k in keys}

    clean = run(faces)
    rows = []
    for name in names:
        acc = run(perturb(faces, name, seed))
        rows.append({"name": name, "what": PERTURBATIONS[name][0], **acc,
                     "drop_points": round(100 * (clean["acc_fivecrop_mean"] - acc["acc_fivecrop_mean"]), 2)})
    return {"n": int(len(labels)), "seed": seed, "clean": clean, "perturbations": rows,
            "worst": max(rows, key=lambda r: r["drop_points"])["name"] if rows else None,
            "seconds": round(time.time() - t0, 1)}


def report_markdown(rep: dict, title: str = "") -> str:
    out = [f"{title}\n" if title else "",
           "| perturbation | five-crop mean | drop (points) | centre | vote |", "|---|---|---|---|---|"]
    c = rep["clean"]
    out.append(f"| clean | {c['acc_fivecrop_mean']:.2%} | — | {c['acc_center']:.2%} | {c['acc_fivecrop_vote']:.2%} |")
    for r in rep["perturbations"]:
        out.append(f"| {r['name']} ({r['what']}) | {r['acc_fivecrop_mean']:.2%} | {r['drop_points']:+.2f} | "
                   f"{r['acc_center']:.2%} | {r['acc_fivecrop_vote']:.2%} |")
    return "\n".join(s for s in out if s)


# -- training-time augmentations: random strengths -----------------------------------------------------
def _aug_jpeg(f, rng):
    return jpeg(f, rng.integers(20, 91, len(f)))


def _aug_brightness(f, rng):
    return brightness(f, rng.uniform(-40, 40, len(f)))


def _aug_contrast(f, rng):
    return contrast(f, rng.uniform(0.5, 1.3, len(f)))


def _aug_noise(f, rng):
    return noise(f, rng.uniform(0, 12, len(f)), rng)


def _aug_blur(f, rng):
    return blur(f, rng.uniform(0, 1.2, len(f)))


def _aug_shift(f, rng):
    return shift(f, rng.integers(-3, 4, len(f)), rng.integers(-3, 4, len(f)))


# name -> (random range, function(faces, rng)); applied in this order, each to a random subset
AUGMENTATIONS = {
    "shift": ("move the face by -3..3 px per axis (edge repeated)", _aug_shift),
    "blur": ("Gaussian blur, radius 0..1.2 px", _aug_blur),
    "contrast": ("contrast x0.5..1.3", _aug_contrast),
    "brightness": ("brightness -40..+40 grey levels", _aug_brightness),
    "noise": ("Gaussian noise, sigma 0..12", _aug_noise),
    "jpeg": ("JPEG quality 20..90", _aug_jpeg),
}


def robust_augment(faces: np.ndarray, names, rng: np.random.Generator, prob: float = 0.5) -> np.ndarray:
    """Each named augmentation hits each face with probability ``prob`` (random strength); uint8 in/out.
    Uses ``rng`` only (the trainer's seeded generator), so a resumed run draws the same."""
    out = np.array(faces, dtype=np.uint8, copy=True)
    for name in names:
        if name not in AUGMENTATIONS:
            raise PerturbError(f"unknown augmentation {name!r}; choose from {', '.join(AUGMENTATIONS)}")
    for name, (_, fn) in AUGMENTATIONS.items():  # a fixed order, whatever order the names came in
        if name not in names:
            continue
        hit = np.flatnonzero(rng.random(len(out)) < prob)
        if len(hit):
            out[hit] = fn(out[hit], rng)
    return out
