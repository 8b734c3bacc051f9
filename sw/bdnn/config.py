"""The training configuration (torch-free, so the CLI can describe ``bdnn train`` without torch).

Each field carries its command-line help (and choices, where the value is one of a set): the
``bdnn train`` options are generated from this dataclass, so they are defined once.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

from .errors import BdnnError

SCHEDULES = ("cosine", "onecycle", "constant")
OPTIMIZERS = ("adam", "sgd")
LOSSES = ("hinge", "sqhinge", "ce")
AUGMENTS = ("fivecrop", "random")
SELECTORS = ("engine", "torch")


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
    fast: bool = _f(True, "channels_last, plus bf16 autocast where the device computes bf16 natively (a GPU, an AVX-512 "
                             "cpu; elsewhere fp32), for training (evaluation is always fp32)")
    compile: bool = _f(False, "torch.compile (inductor, static shapes) the training forward/backward: 1.43x on BDNN4 "
                              "with bf16 on an idle 2-core AVX-512 cpu (benchmarks/bench_training.py --compile); "
                              "~100 s of compiling per new batch shape")
    eval_batch: int = _f(256, "faces per evaluation batch")
    max_train_batches: int = _f(0, ">0: cut every epoch to N batches (tests, smoke runs)")
    max_eval_faces: int = _f(0, ">0: evaluate on the first N faces only (tests)")
    threads: int = _f(0, "torch CPU threads (0: torch's default)")
    init_from: str = _f("", "start from this checkpoint's weights, or a shipped model folder's (its binary "
                            "weights, latent magnitudes reset), with a fresh optimizer and schedule (warm "
                            "restarts, fine-tuning); the run records where it started")
    # -- training levers; each default leaves a recipe exactly as it was -------------------------
    label_smoothing: float = _f(0.0, "ce: label smoothing (0: none)")
    robust_augment: str = _f("", "robustness augmentations of the 48x48 faces before cropping, a comma list of "
                                 "shift, blur, contrast, brightness, noise, jpeg (or all); each hits a face with "
                                 "probability --robust-prob at a random strength ('': none)")
    robust_prob: float = _f(0.5, "--robust-augment: probability of each augmentation per face")
    teacher: str = _f("", "knowledge distillation from this full-precision teacher: a teacher run folder "
                          "(its best.pt), a shipped teacher folder or teacher.npz ('': no distillation)")
    kd_weight: float = _f(0.5, "--teacher: loss = (1-w) * hard loss + w * T^2 KL(teacher_T || student_T); "
                               "1: the teacher's softmax alone")
    kd_temperature: float = _f(4.0, "--teacher: softmax temperature T of the distillation term")
    kd_clean_teacher: bool = _f(False, "--teacher with --robust-augment: the teacher sees the same crop (window, "
                                       "flip) of the unperturbed face, so the student learns to answer on a "
                                       "perturbed face what the teacher answers on the clean one")
    select_with: str = _f("engine", "how a binary BDNN's epochs are scored on PublicTest for selection: engine = the "
                                    "bit-exact integer engine on the cpu (what the hardware computes); torch = fp32 "
                                    "torch on the training device (fast on a GPU; a near-tie can differ, so the "
                                    "shipped card re-measures with the engine)", SELECTORS)
    binary_weights: bool = _f(True, "binary weights; --no-binary-weights: the latent-weight stage of two-stage "
                                    "training (binary activations, real weights; selection in fp32, no model.npz); "
                                    "stage 2 is a binary run with --init-from STAGE1/best.pt")


class ConfigError(BdnnError, ValueError):
    """Training options that contradict each other or are out of range."""


# options added after the first shipped recipes: written into a run's command only when changed
LEVERS = ("label_smoothing", "robust_augment", "robust_prob", "teacher", "kd_weight", "kd_temperature",
          "kd_clean_teacher", "binary_weights", "select_with")
LEVER_DEFAULTS = {f.name: f.default for f in fields(TrainConfig) if f.name in LEVERS}


def robust_names(cfg: TrainConfig) -> list[str]:
    from .perturb import AUGMENTATIONS, parse_names
    return parse_names(cfg.robust_augment, AUGMENTATIONS) if cfg.robust_augment else []


def check_config(cfg: TrainConfig) -> None:
    """Raise :class:`ConfigError` for values no run should start with."""
    from .arch import ARCHS, TEACHER_ARCHS
    from .perturb import PerturbError
    if cfg.arch.lower() not in ARCHS and cfg.arch.lower() not in TEACHER_ARCHS:
        raise ConfigError(f"unknown architecture {cfg.arch!r}; choose one of {', '.join([*ARCHS, *TEACHER_ARCHS])}")
    if cfg.select_with not in SELECTORS:
        raise ConfigError(f"select_with {cfg.select_with!r}: choose one of {', '.join(SELECTORS)}")
    if cfg.epochs < 1 or cfg.batch_size < 1:
        raise ConfigError(f"epochs ({cfg.epochs}) and batch_size ({cfg.batch_size}) must be >= 1")
    if not 0.0 <= cfg.label_smoothing < 1.0:
        raise ConfigError(f"--label-smoothing {cfg.label_smoothing}: must be in [0, 1)")
    if cfg.label_smoothing and cfg.loss != "ce":
        raise ConfigError(f"--label-smoothing applies to --loss ce, not {cfg.loss}")
    if not 0.0 <= cfg.robust_prob <= 1.0:
        raise ConfigError(f"--robust-prob {cfg.robust_prob}: must be in [0, 1]")
    try:
        robust_names(cfg)
    except PerturbError as e:
        raise ConfigError(f"--robust-augment: {e}") from None
    if not 0.0 <= cfg.kd_weight <= 1.0:
        raise ConfigError(f"--kd-weight {cfg.kd_weight}: must be in [0, 1]")
    if cfg.kd_temperature <= 0:
        raise ConfigError(f"--kd-temperature {cfg.kd_temperature}: must be > 0")
    if cfg.kd_clean_teacher and not (cfg.teacher and cfg.robust_augment):
        raise ConfigError("--kd-clean-teacher needs --teacher and --robust-augment (it shows the teacher the "
                          "unperturbed face)")
    if not cfg.binary_weights and cfg.arch.lower() in TEACHER_ARCHS:
        raise ConfigError("--no-binary-weights is a BDNN option; a teacher is full precision anyway")
