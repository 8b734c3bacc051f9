"""Full-precision teachers for knowledge distillation: small VGG-style CNNs on the same 42x42 crops.

A teacher is trained by the same ``bdnn train`` (``--arch teacher-vgg``; same data, augmentation,
PublicTest selection, checkpoints and --resume) and shipped by ``bdnn ship`` as ``teacher.npz`` (float
weights, numpy, no pickle) with its own card. It is never part of the hardware path: no FINN
export, no cpu engine; a BDNN student learns from its softmax (``bdnn train --teacher RUN_OR_MODEL``).

Input: raw pixels (N,1,42,42) as floats 0..255, normalized as the BDNNs normalize them.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .arch import CROP_SIZE, NUM_CLASSES, TEACHER_ARCHS
from .errors import BdnnError
from .preprocess import normalize

TEACHER_FORMAT = "bdnn-teacher-v1"
TEACHER_FILE = "teacher.npz"


class TeacherError(BdnnError, ValueError):
    """A missing or unreadable teacher."""


class TeacherVGG(nn.Module):
    """Per stage: two 3x3 conv -> BN -> ReLU, 2x2 max-pool; then dropout, FC, ReLU, dropout, FC."""

    def __init__(self, name: str = "teacher-vgg"):
        super().__init__()
        if name not in TEACHER_ARCHS:
            raise TeacherError(f"unknown teacher {name!r}; choose one of {', '.join(TEACHER_ARCHS)}")
        self.name = name
        widths, fc = TEACHER_ARCHS[name]["widths"], TEACHER_ARCHS[name]["fc"]
        layers, cin, size = [], 1, CROP_SIZE
        for w in widths:
            for _ in range(2):
                layers += [nn.Conv2d(cin, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
                cin = w
            layers.append(nn.MaxPool2d(2))
            size //= 2
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(cin * size * size, fc), nn.ReLU(inplace=True),
                                        nn.Dropout(0.5), nn.Linear(fc, NUM_CLASSES))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(normalize(pixels)))


def save_teacher(model: TeacherVGG, path, meta: dict | None = None, half: bool = False) -> Path:
    """``half``: float tensors stored as float16 (a shipped teacher: half the size in git; it is
    evaluated and used in fp32 after loading)."""
    path = Path(path)
    arrays = {k: (v.detach().cpu().numpy().astype(np.float16 if half else np.float32) if v.is_floating_point()
                  else v.detach().cpu().numpy()) for k, v in model.state_dict().items()}
    header = {"format": TEACHER_FORMAT, "arch": model.name, "meta": meta or {}}
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, __header__=np.frombuffer(json.dumps(header).encode(), np.uint8), **arrays)
    tmp.replace(path)
    return path


def _from_npz(path: Path) -> TeacherVGG:
    try:
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(bytes(z["__header__"]).decode())
            if header.get("format") != TEACHER_FORMAT:
                raise TeacherError(f"{path}: not a teacher (format {header.get('format')!r})")
            model = TeacherVGG(header["arch"])
            state = {k: torch.from_numpy(z[k]) for k in z.files if k != "__header__"}
            state = {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}
    except (OSError, KeyError, ValueError) as e:
        if isinstance(e, TeacherError):
            raise
        raise TeacherError(f"{path}: not a readable teacher: {e}") from e
    model.load_state_dict(state)
    return model


def load_teacher(where) -> TeacherVGG:
    """A teacher from a shipped folder or file (``teacher.npz``), a training run folder (its
    ``best.pt``) or a checkpoint file; in eval mode."""
    from .checkpoint import CheckpointError, load_checkpoint
    p = Path(where)
    if p.is_dir():
        if (p / TEACHER_FILE).is_file():
            p = p / TEACHER_FILE
        elif (p / "best.pt").is_file():
            p = p / "best.pt"
        else:
            raise TeacherError(f"{where}: neither a shipped teacher ({TEACHER_FILE}) nor a training run (best.pt)")
    if not p.is_file():
        raise TeacherError(f"{where}: no such teacher")
    if p.suffix == ".npz":
        model = _from_npz(p)
    else:
        state = load_checkpoint(p)
        arch = state["config"]["arch"]
        if arch not in TEACHER_ARCHS:
            raise CheckpointError(f"{p}: a {arch} checkpoint is not a teacher ({', '.join(TEACHER_ARCHS)})")
        model = TeacherVGG(arch)
        model.load_state_dict(state["model"])
    return model.eval()


def kd_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton's distillation term: KL(teacher_T || student_T) * T^2 (batch mean)."""
    import torch.nn.functional as F
    t = float(temperature)
    return F.kl_div(F.log_softmax(student.float() / t, 1), F.log_softmax(teacher.float() / t, 1),
                    log_target=True, reduction="batchmean") * (t * t)
