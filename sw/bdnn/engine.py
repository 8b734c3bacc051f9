"""The fast bit-exact CPU engine: the exported integer network on packed bits.

Layer by layer it computes what the FINN accelerator computes: the first conv as an integer dot
product of raw uint8 pixels with +-1 weights, every later conv/FC as XOR + popcount on bit-packed
activations (bit 0 = -1, -1 padding), BatchNorm+sign as one integer threshold per channel, max-pool
as OR, the dense concat as a bit concat. The classifier's integer accumulators go through the host
affine (its BatchNorm). numpy only, plus a small C kernel compiled on first use (with OpenMP);
without a C compiler a numpy kernel gives the same results, slower.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from .arch import CROP_SIZE
from .artifact import Artifact
from .thresholds import (centre_thresholds, sign_affines, sign_threshold, threshold_margins,  # noqa: F401
                         thresholds)

_SRC = Path(__file__).with_name("_xnor.c")
_LIB = None
_LIB_ERROR = None


def _cache_dir() -> Path:
    d = Path(os.environ.get("BDNN_CACHE", Path.home() / ".cache" / "bdnn"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def _compile(so: Path) -> None:
    """Build the kernel into ``so`` (atomically); the last compiler error if no flag set works."""
    cc = os.environ.get("CC", "cc")
    tmp = Path(tempfile.mkdtemp(dir=so.parent)) / so.name
    base = [cc, "-O3", "-shared", "-fPIC", str(_SRC), "-o", str(tmp)]
    err = None
    for flags in (["-march=native", "-fopenmp"], ["-fopenmp"], []):
        try:
            subprocess.run(base[:2] + flags + base[2:], check=True, capture_output=True, timeout=120)
            os.replace(tmp, so)
            return
        except (OSError, subprocess.SubprocessError) as e:
            err = e
    stderr = getattr(err, "stderr", b"") or b""
    raise OSError(f"{cc} failed: {err}" + (f": {stderr.decode(errors='replace').strip()[-300:]}" if stderr else ""))


def _load_kernel():
    """Compile (once per source/machine) and load the C kernel; None (and a one-time note on
    stderr) when it cannot be had: source not installed, no working compiler, unwritable cache."""
    global _LIB, _LIB_ERROR
    if _LIB is not None or _LIB_ERROR is not None:
        return _LIB
    try:
        if not _SRC.is_file():
            raise OSError(f"the kernel source {_SRC.name} is not installed next to {Path(__file__).name}")
        tag = hashlib.sha256(_SRC.read_bytes() + os.uname().machine.encode() + sys.version.encode()).hexdigest()[:16]
        so = _cache_dir() / f"bdnn_xnor_{tag}.so"
        if not so.exists():
            _compile(so)
        lib = ctypes.CDLL(str(so))
    except OSError as e:
        _LIB_ERROR = str(e)
        print(f"note: bdnn cpu engine: no C kernel ({_LIB_ERROR}); using the numpy kernel "
              "(same results, slower)", file=sys.stderr)
        return None
    p64, p32, i = ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_int32), ctypes.c_int
    lib.bin_conv.argtypes = [p64, i, i, i, i, p64, i, i, i, p32]
    lib.bin_conv.restype = None
    lib.bin_conv_sign.argtypes = [p64, i, i, i, i, p64, i, i, i, i, p32,
                                  ctypes.POINTER(ctypes.c_int8), ctypes.POINTER(ctypes.c_uint8)]
    lib.bin_conv_sign.restype = None
    _LIB = lib
    return lib


def kernel_name() -> str:
    return "C (XOR+popcount, OpenMP)" if _load_kernel() is not None else f"numpy (no C kernel: {_LIB_ERROR})"


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """bool (..., C) -> uint64 (..., ceil(C/64)); channel c is bit c%64 of word c//64."""
    c = bits.shape[-1]
    words = (c + 63) // 64
    if c != words * 64:
        bits = np.concatenate([bits, np.zeros(bits.shape[:-1] + (words * 64 - c,), bool)], axis=-1)
    packed = np.packbits(bits, axis=-1, bitorder="little")
    return np.ascontiguousarray(packed).view(np.uint64)


def _popcount64(v: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(v)
    return np.unpackbits(v.view(np.uint8), axis=-1).reshape(*v.shape, 64).sum(-1)  # numpy < 2


def bin_conv(x: np.ndarray, wt: np.ndarray, k: int, pad: int) -> np.ndarray:
    """Mismatch counts: x (N,H,W,CW) uint64, wt (COUT, K*K*CW) uint64 -> (N,OH,OW,COUT) int32."""
    n, h, w, cw = x.shape
    cout = wt.shape[0]
    oh, ow = h + 2 * pad - k + 1, w + 2 * pad - k + 1
    lib = _load_kernel()
    x = np.ascontiguousarray(x)
    wt = np.ascontiguousarray(wt)
    if lib is not None:
        out = np.empty((n, oh, ow, cout), np.int32)
        p64 = ctypes.POINTER(ctypes.c_uint64)
        lib.bin_conv(x.ctypes.data_as(p64), n, h, w, cw, wt.ctypes.data_as(p64), cout, k, pad,
                     out.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)))
        return out
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))  # zero words = -1 pixels
    cols = np.stack([xp[:, i:i + oh, j:j + ow] for i in range(k) for j in range(k)], axis=3).reshape(n, oh, ow, -1)
    out = np.empty((n, oh, ow, cout), np.int32)
    for q in range(cout):
        out[..., q] = _popcount64(cols ^ wt[q]).sum(-1)
    return out


def bin_conv_sign(x: np.ndarray, wt: np.ndarray, k: int, pad: int, ktot: int, thr) -> np.ndarray:
    """Binary conv + threshold: x (N,H,W,CW) uint64 -> bool (N,OH,OW,COUT)."""
    lib = _load_kernel()
    if lib is None:
        return sign_threshold(ktot - 2 * bin_conv(x, wt, k, pad), thr)
    n, h, w, cw = x.shape
    cout = wt.shape[0]
    oh, ow = h + 2 * pad - k + 1, w + 2 * pad - k + 1
    x, wt = np.ascontiguousarray(x), np.ascontiguousarray(wt)
    t, d = (np.ascontiguousarray(a) for a in thr)
    out = np.empty((n, oh, ow, cout), np.uint8)
    p64 = ctypes.POINTER(ctypes.c_uint64)
    lib.bin_conv_sign(x.ctypes.data_as(p64), n, h, w, cw, wt.ctypes.data_as(p64), cout, k, pad, ktot,
                      t.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)), d.ctypes.data_as(ctypes.POINTER(ctypes.c_int8)),
                      out.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8)))
    return out.view(bool)


def _or_pool(y: np.ndarray, p: int) -> np.ndarray:
    """p x p max-pool (floor) of +-1 activations held as bools: an OR."""
    n, h, w, c = y.shape
    h2, w2 = h // p, w // p
    return y[:, :h2 * p, :w2 * p].reshape(n, h2, p, w2, p, c).any(axis=(2, 4))


class Engine:
    """Integer inference of a BDNN artifact; ``accumulators`` and ``crop_scores`` on uint8 crops."""

    def __init__(self, art: Artifact):
        self.spec = spec = art.spec
        self.art = art
        self.layers = []
        convs = spec.conv_layers()
        affines = sign_affines(spec, art.layers)
        for idx, (name, cin, cout, size) in enumerate(convs):
            layer = art.layers[name]
            w = layer.weight.transpose(0, 2, 3, 1)  # (out, kh, kw, in): NHWC patch order
            entry = {"name": name, "kind": "conv", "cout": cout, "ktot": w[0].size}
            if idx == 0:
                entry["w_int"] = w.reshape(cout, -1).T.astype(np.float32)  # raw pixels: integer GEMM
            else:
                entry["w_bits"] = pack_bits(w > 0).reshape(cout, -1)
            entry["thr"] = thresholds(*affines[name])
            self.layers.append(entry)
        c_last = spec.block_out_channels(len(spec.block_channels) - 1)
        fs = spec.feature_size()
        for j, (name, fin, fout) in enumerate(spec.fc_layers()):
            layer = art.layers[name]
            w = layer.weight
            if j == 0:  # torch flattens NCHW; our activations are NHWC
                w = w.reshape(fout, c_last, fs, fs).transpose(0, 2, 3, 1).reshape(fout, fin)
            entry = {"name": name, "kind": "fc", "cout": fout, "ktot": fin, "w_bits": pack_bits(w > 0).reshape(fout, -1)}
            if j < len(spec.fc_layers()) - 1:
                entry["thr"] = thresholds(*affines[name])
            else:
                entry["affine"] = layer.bn.scale_shift()
            self.layers.append(entry)

    def _first_conv(self, crops: np.ndarray, layer) -> np.ndarray:
        s, p = self.spec.in_size, self.spec.pad
        x = np.pad(crops.astype(np.float32), ((0, 0), (p, p), (p, p)))  # raw 0 == normalized -1
        k = self.spec.kernel
        cols = np.stack([x[:, i:i + s, j:j + s] for i in range(k) for j in range(k)], axis=-1)
        # exact in float32: |sum| <= 9 * 255 < 2**24
        return (cols.reshape(-1, k * k) @ layer["w_int"]).reshape(len(crops), s, s, -1)

    def accumulators(self, crops: np.ndarray, batch: int = 128) -> np.ndarray:
        """uint8 crops (N,42,42) -> the classifier's integer +-1 dot products (N, classes)."""
        crops = np.asarray(crops)
        if crops.dtype != np.uint8 or crops.ndim != 3 or crops.shape[1:] != (CROP_SIZE, CROP_SIZE):
            raise ValueError(f"expected uint8 crops (N,{CROP_SIZE},{CROP_SIZE}), got {crops.dtype} {crops.shape}")
        return np.concatenate([self._forward(crops[i:i + batch]) for i in range(0, len(crops), batch)])

    def _forward(self, crops: np.ndarray) -> np.ndarray:
        spec, k, pad = self.spec, self.spec.kernel, self.spec.pad
        it = iter(self.layers)
        x = None
        for b in range(len(spec.block_channels)):
            l1, l2 = next(it), next(it)
            if b == 0:
                a1 = sign_threshold(self._first_conv(crops, l1), l1["thr"])
            else:
                a1 = bin_conv_sign(pack_bits(x), l1["w_bits"], k, pad, l1["ktot"], l1["thr"])
            a2 = bin_conv_sign(pack_bits(a1), l2["w_bits"], k, pad, l2["ktot"], l2["thr"])
            y = np.concatenate([a1, a2], axis=-1) if spec.dense else a2
            x = _or_pool(y, spec.pool)  # max of +-1 = OR
        if spec.final_pool > 1:
            x = _or_pool(x, spec.final_pool)
        x = x.reshape(len(x), -1)
        for layer in it:
            xb = pack_bits(x)[:, None, None, :]
            if "thr" in layer:
                x = bin_conv_sign(xb, layer["w_bits"], 1, 0, layer["ktot"], layer["thr"])[:, 0, 0]
            else:
                acc = layer["ktot"] - 2 * bin_conv(xb, layer["w_bits"], 1, 0)[:, 0, 0]
        return acc.astype(np.int64)

    def scores(self, acc: np.ndarray) -> np.ndarray:
        """Host side of the classifier: its BatchNorm on the integer accumulators."""
        scale, shift = self.layers[-1]["affine"]
        return acc * scale + shift

    def crop_scores(self, crops: np.ndarray) -> np.ndarray:
        return self.scores(self.accumulators(crops))
