"""The training configuration (torch-free, so the CLI can describe ``bdnn train`` without torch).

Each field carries its command-line help (and choices, where the value is one of a set): the
``bdnn train`` options are generated from this dataclass, so they are defined once.
"""
from __future__ import annotations

from dataclasses import dataclass, field

SCHEDULES = ("cosine", "onecycle", "constant")
OPTIMIZERS = ("adam", "sgd")
LOSSES = ("hinge", "sqhinge", "ce")
AUGMENTS = ("fivecrop", "random")


def _f(default, help: str, choices=None):
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass
class TrainConfig:
    arch: str = _f("bdnn4", "architecture")
    epochs: int = _f(30, "epochs to train (the schedule's length)")
    batch_size: int = _f(64, "faces per training step")
    lr: float = _f(5e-3, "peak learning rate")
    schedule: str = _f("cosine", "learning-rate schedule (cosine has a linear warm-up)", SCHEDULES)
    warmup_epochs: float = _f(1.0, "cosine: warm-up length in epochs")
    optimizer: str = _f("adam", "optimizer (sgd: momentum 0.9)", OPTIMIZERS)
    weight_decay: float = _f(0.0, "weight decay")
    loss: str = _f("hinge", "hinge (the paper's eq. 5), squared hinge or cross-entropy", LOSSES)
    augment: str = _f("fivecrop", "fivecrop: one of the paper's five crops per face and step; random: any 42x42 window",
                      AUGMENTS)
    flip: bool = _f(True, "random horizontal flips")
    seed: int = _f(0, "random seed (weights, batches, augmentation)")
    fast: bool = _f(True, "bf16 autocast + channels_last for training (evaluation is always fp32)")
    eval_batch: int = _f(256, "faces per evaluation batch")
    max_train_batches: int = _f(0, ">0: cut every epoch to N batches (tests, smoke runs)")
    max_eval_faces: int = _f(0, ">0: evaluate on the first N faces only (tests)")
    threads: int = _f(0, "torch CPU threads (0: torch's default)")
    init_from: str = _f("", "start from this checkpoint's weights with a fresh optimizer and schedule "
                            "(warm restarts, fine-tuning); the run records where it started")
