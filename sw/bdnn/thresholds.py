"""BatchNorm + sign as integer thresholds, defined once.

Every layer but the classifier computes ``sign(BN(acc))`` (+1 at 0, as Brevitas) on an integer
accumulator ``acc``. Here that is: the affine ``acc * scale + shift`` (:func:`sign_affines`, the
first conv's input normalization folded in), the integer threshold the engine compares with
(:func:`thresholds`), the distance of each real threshold from the integers
(:func:`threshold_margins`) and the export-time fix that moves every threshold mid-way between two
integers (:func:`centre_thresholds`). The engine (inference), the Brevitas module's export
(:func:`bdnn.nn.to_artifact_layers`) and ``bdnn ship`` all use these. numpy only.
"""
from __future__ import annotations

import numpy as np

from .artifact import BatchNorm, Layer


def sign_affines(spec, layers: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every BN+sign layer's affine on its integer accumulator: BN(conv) = acc * scale + shift.

    Binary layers see their accumulator directly. The first conv sees the normalized input
    (2p-255)/255, so on the raw-pixel accumulator acc = sum(w*p) its conv output is 2*acc/255 - sum(w),
    folded here."""
    out = {}
    for i, name in enumerate(spec.sign_layer_names()):
        layer = layers[name]
        scale, shift = layer.bn.scale_shift()
        if i == 0:
            wsum = layer.weight.reshape(len(scale), -1).sum(1).astype(np.float64)
            scale, shift = scale * 2.0 / 255.0, shift - scale * wsum
        out[name] = (scale, shift)
    return out


_SATURATED = 2.0 ** 30  # thresholds beyond any reachable accumulator


def _real_thresholds(scale, shift):
    """The real threshold -shift/scale of each channel, and which channels have a reachable one."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -shift / scale
    return t, (scale != 0) & np.isfinite(t) & (np.abs(t) < _SATURATED)


def threshold_margins(spec, layers: dict) -> dict[str, float]:
    """Per layer, the smallest distance of a real BN+sign threshold from an integer accumulator.

    Near 0, fp32 paths that evaluate BN in different orders (Brevitas, ONNX execution of the
    streamlined graph, the float64 threshold here) can disagree on the sign of that accumulator."""
    out = {}
    for name, affine in sign_affines(spec, layers).items():
        t, live = _real_thresholds(*affine)
        out[name] = float(np.abs(t[live] - np.round(t[live])).min()) if live.any() else 0.5
    return out


def centre_thresholds(spec, layers: dict) -> dict:
    """The same network with every BN+sign threshold moved to the middle of its integer gap.

    Each sign decides ``acc >= ceil(t)`` (or ``acc <= floor(t)`` for a negative scale); moving t to
    ceil(t) - 0.5 (floor(t) + 0.5) keeps every integer decision and leaves a 0.5 margin, so every
    fp32 path agrees with the integer one. Only BN beta changes, and it shifts the accumulator
    affine's offset one for one (the first conv's input folding included)."""
    out = dict(layers)
    before = sign_affines(spec, layers)
    for name, (scale, shift) in before.items():
        bn = layers[name].bn
        t, live = _real_thresholds(scale, shift)
        t_new = np.where(scale > 0, np.ceil(t) - 0.5, np.floor(t) + 0.5)
        bias = np.where(live, bn.bias - t_new * scale - shift, bn.bias)  # new shift = -t_new * scale
        out[name] = Layer(name, layers[name].weight, BatchNorm(bn.weight, bias.astype(np.float32), bn.mean, bn.var, bn.eps))
    for name, affine in sign_affines(spec, out).items():
        old, new = thresholds(*before[name]), thresholds(*affine)
        if not (np.array_equal(old[0], new[0]) and np.array_equal(old[1], new[1])):
            raise ValueError(f"{name}: centring the thresholds changed an integer decision (BN parameters out of range?)")
    return out


def thresholds(scale: np.ndarray, shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """sign(acc*scale + shift) (+1 at 0, as Brevitas) as integer thresholds: bit = dir*acc >= thr.

    dir = +1 (scale > 0: acc >= ceil(-shift/scale)), -1 (scale < 0: acc <= floor(-shift/scale)),
    0 for scale 0 (a constant channel: thr 0 gives +1, thr 1 gives -1)."""
    t, _ = _real_thresholds(scale, shift)
    d = np.sign(scale).astype(np.int8)
    thr = np.where(d > 0, np.ceil(t), -np.floor(t))
    thr = np.where(d == 0, np.where(shift >= 0, 0, 1), thr)
    return np.clip(thr, -_SATURATED, _SATURATED).astype(np.int32), d


def sign_threshold(acc: np.ndarray, thr) -> np.ndarray:
    t, d = thr
    return acc * d >= t
