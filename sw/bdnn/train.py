"""One trainer for every BDNN architecture: seeded, resumable, selects on PublicTest only.

Run folder layout (``--out``):
  last.pt / best.pt       full checkpoints (latent weights, optimizer, scheduler, RNG): not for git
  model.npz + card.json   compact inference artifact of the best epoch (see bdnn.artifact); a teacher
                          writes teacher.npz instead, the latent-weight stage (--no-binary-weights) neither
  metrics.json            one record per epoch
  learning_curve.png, confusion_matrix.png
"""
from __future__ import annotations

import functools
import json
import math
import random
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .arch import get_arch, is_teacher
from .checkpoint import CHECKPOINT_FORMAT, CheckpointError, load_checkpoint, save_checkpoint
from .artifact import load as load_artifact
from .config import TrainConfig, check_config, robust_names
from .contract import MODEL_CARD_FILE, MODEL_FILE, START_CARD_FILE
from .data import CLASS_NAMES, FER2013, load_fer2013
from .nn import BDNN, from_artifact, named_layers, predict_scores, save_artifact
from .perturb import robust_augment
from .preprocess import CROP_OFFSETS, CROP_SIZE, FACE_SIZE, five_crops

# -- losses ------------------------------------------------------------------------------------
def loss_fn(name: str, scores: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    scores = scores.float()
    if name == "ce":
        return F.cross_entropy(scores, labels, label_smoothing=label_smoothing)
    target = 2.0 * F.one_hot(labels, scores.shape[1]).float() - 1.0  # +-1 one-hot
    margin = F.relu(1.0 - target * scores)
    if name == "hinge":
        return margin.sum(1).mean()
    if name == "sqhinge":
        return (margin ** 2).sum(1).mean()
    raise ValueError(f"unknown loss {name!r} (hinge | sqhinge | ce)")


def training_loss(cfg: TrainConfig, scores: torch.Tensor, labels: torch.Tensor,
                  teacher_scores: torch.Tensor | None = None) -> torch.Tensor:
    """The configured loss; with a teacher, (1-w) * that + w * the distillation term."""
    hard = loss_fn(cfg.loss, scores, labels, cfg.label_smoothing)
    if teacher_scores is None:
        return hard
    from .teacher import kd_loss
    soft = kd_loss(scores, teacher_scores, cfg.kd_temperature)
    return soft if cfg.kd_weight == 1.0 else (1.0 - cfg.kd_weight) * hard + cfg.kd_weight * soft


# -- models ----------------------------------------------------------------------------------
def build_model(cfg: TrainConfig) -> torch.nn.Module:
    if is_teacher(cfg.arch):
        from .teacher import TeacherVGG
        return TeacherVGG(cfg.arch.lower())
    return BDNN(get_arch(cfg.arch), binary_weights=cfg.binary_weights)


def is_hardware_model(cfg: TrainConfig) -> bool:
    """A binary BDNN: evaluated by the exact integer engine and saved as model.npz."""
    return not is_teacher(cfg.arch) and cfg.binary_weights


def val_scores_of(cfg: TrainConfig, model: torch.nn.Module, crops: np.ndarray, device: str = "cpu") -> np.ndarray:
    """Selection scores: exactly as the hardware computes for a binary BDNN (``select_with``
    "engine", on the cpu), fp32 torch on ``device`` otherwise (a teacher, the latent-weight stage,
    ``select_with`` "torch"). The model is left on ``device``."""
    if is_hardware_model(cfg) and cfg.select_with == "engine":
        model.to("cpu")
        scores = exact_scores(model, crops)
        model.to(device)
        return scores
    model.to(device)
    return predict_scores(model, crops, cfg.eval_batch, device=device)


# -- data ------------------------------------------------------------------------------------
def sample_crops(faces: np.ndarray, rng: np.random.Generator, augment: str, flip: bool) -> np.ndarray:
    """uint8 faces (B,48,48) -> uint8 training crops (B,42,42)."""
    n = len(faces)
    if augment == "fivecrop":
        offs = np.asarray(CROP_OFFSETS)[rng.integers(0, len(CROP_OFFSETS), n)]
    elif augment == "random":
        offs = rng.integers(0, FACE_SIZE - CROP_SIZE + 1, (n, 2))
    else:
        raise ValueError(f"unknown augment {augment!r} (fivecrop | random)")
    out = np.stack([f[r:r + CROP_SIZE, c:c + CROP_SIZE] for f, (r, c) in zip(faces, offs)])
    if flip:
        m = rng.random(n) < 0.5
        out[m] = out[m, :, ::-1]
    return out


def exact_scores(model: BDNN, crops: np.ndarray) -> np.ndarray:
    """Scores as the hardware computes them, via the bit-exact integer engine (fast, never bf16)."""
    from .artifact import Artifact
    from .engine import Engine
    from .nn import to_artifact_layers
    engine = Engine(Artifact(model.spec, to_artifact_layers(model), {}))
    lead = crops.shape[:-2]
    return engine.crop_scores(crops.reshape(-1, CROP_SIZE, CROP_SIZE)).reshape(*lead, -1)


def accuracies(scores5: np.ndarray, labels: np.ndarray) -> dict:
    """scores5 (N,5,C): centre, five-crop mean and five-crop vote accuracy."""
    from .combine import combine_scores
    from .preprocess import CENTRE
    labels = np.asarray(labels)
    return {
        "acc_center": float((scores5[:, CENTRE].argmax(1) == labels).mean()),
        "acc_fivecrop_mean": float((combine_scores(scores5, "mean").argmax(1) == labels).mean()),
        "acc_fivecrop_vote": float((combine_scores(scores5, "vote").argmax(1) == labels).mean()),
    }


# A shipped model keeps only the signs of its latent weights. A warm start from one gives every latent
# weight this magnitude: the median |w| of a trained BDNN checkpoint (0.11-0.15 per layer, bdnn4-hw),
# so a weight needs about as many consistent Adam steps to flip as in the run that made it.
SHIPPED_LATENT_MAGNITUDE = 0.14


def load_init_weights(cfg: TrainConfig, model: torch.nn.Module) -> str:
    """Load ``cfg.init_from`` into ``model``: a training checkpoint (latent weights as they were) or a
    shipped model folder (its binary weights x SHIPPED_LATENT_MAGNITUDE, its BN parameters exactly:
    the network starts computing what the shipped one computes). Returns what was loaded, in words."""
    src = Path(cfg.init_from)
    if not src.is_dir():
        init = load_checkpoint(src)
        if init["config"]["arch"] != cfg.arch:
            raise CheckpointError(f"{src}: checkpoint is {init['config']['arch']}, this run trains {cfg.arch}")
        model.load_state_dict(init["model"])
        return f"starting from the weights of {src} (epoch {init['epoch'] + 1} of that run)"
    if is_teacher(cfg.arch):
        raise CheckpointError(f"{src}: a teacher starts from a checkpoint, not from a shipped model folder")
    if not all((src / f).is_file() for f in (MODEL_FILE, MODEL_CARD_FILE)):  # a run folder: its best.pt is the start
        raise CheckpointError(f"{src}: neither a checkpoint nor a shipped model folder ({MODEL_FILE} + {MODEL_CARD_FILE})")
    art = load_artifact(src / MODEL_FILE)
    if art.spec != model.spec:
        raise CheckpointError(f"{src}: shipped model is {art.spec.name}, this run trains {cfg.arch}")
    model.load_state_dict(from_artifact(art).state_dict())
    with torch.no_grad():
        for _, lin, _ in named_layers(model):
            lin.weight.mul_(SHIPPED_LATENT_MAGNITUDE)
    return (f"starting from the shipped model {src} (its binary weights as latent "
            f"+-{SHIPPED_LATENT_MAGNITUDE}, its BN parameters)")


def rng_state(np_rng: np.random.Generator) -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np_rng.bit_generator.state, "python": random.getstate()}


def set_rng_state(s: dict, np_rng: np.random.Generator) -> None:
    torch.set_rng_state(s["torch"])
    np_rng.bit_generator.state = s["numpy"]
    random.setstate(s["python"])


# -- optimisation --------------------------------------------------------------------------------
def make_optimizer(cfg: TrainConfig, model: BDNN):
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r} (adam | sgd)")


def make_scheduler(cfg: TrainConfig, opt, steps_per_epoch: int):
    total = max(1, cfg.epochs * steps_per_epoch)
    warm = int(cfg.warmup_epochs * steps_per_epoch)
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total)
    if cfg.schedule == "cosine":
        def f(step):
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))
        return torch.optim.lr_scheduler.LambdaLR(opt, f)
    if cfg.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    raise ValueError(f"unknown schedule {cfg.schedule!r} (cosine | onecycle | constant)")


# -- one step ----------------------------------------------------------------------------------
def make_batch(cfg: TrainConfig, robust: list[str], train_x: np.ndarray, train_y: np.ndarray, idx: np.ndarray,
               np_rng: np.random.Generator, device: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Faces ``idx`` -> augmented crops (N,1,42,42), labels, and with --kd-clean-teacher the teacher's
    crops: the same windows and flips of the unperturbed faces (else None), all on ``device``."""
    clean = train_x[idx]
    faces = robust_augment(clean, robust, np_rng, cfg.robust_prob) if robust else clean
    if cfg.kd_clean_teacher:  # one draw of windows and flips for both: the RNG stream is the same as without
        both = sample_crops(np.stack([faces, clean], axis=-1), np_rng, cfg.augment, cfg.flip)
        crops, teacher_crops = both[..., 0], both[..., 1]
    else:
        crops, teacher_crops = sample_crops(faces, np_rng, cfg.augment, cfg.flip), None
    y = torch.from_numpy(train_y[idx].astype(np.int64)).to(device)

    def to_input(c: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(c)[:, None].astype(np.float32)).to(device)
        return x.to(memory_format=torch.channels_last) if cfg.fast else x

    return to_input(crops), y, (None if teacher_crops is None else to_input(teacher_crops))


def train_step(cfg: TrainConfig, model: torch.nn.Module, teacher, opt, x: torch.Tensor, y: torch.Tensor,
               device: str, x_teacher: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step (the scheduler is the caller's); returns (loss, scores). The teacher sees
    ``x_teacher`` when given (--kd-clean-teacher), else ``x``."""
    with torch.autocast(device, dtype=torch.bfloat16, enabled=uses_bf16(cfg, device)):
        scores = model(x)
        t_scores = None
        if teacher is not None:
            with torch.no_grad():
                t_scores = teacher(x if x_teacher is None else x_teacher)
    loss = training_loss(cfg, scores, y, t_scores)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    base = getattr(model, "_orig_mod", model)  # a torch.compile'd model wraps the module it trains
    if isinstance(base, BDNN):
        base.clip_latent_weights()
    return loss, scores


@functools.lru_cache(maxsize=None)
def bf16_native(device: str) -> bool:
    """Whether ``device`` has fast bf16 kernels: a CUDA GPU that supports bf16, a CPU whose oneDNN has
    bf16 kernels (AVX-512 and newer). Elsewhere autocast emulates bf16: on an AVX2-only EPYC a BDNN
    training step ran 12x slower in bf16 than in fp32 (benchmarks/bench_training.py prints the ratio)."""
    if device == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def uses_bf16(cfg: TrainConfig, device: str) -> bool:
    """--fast: bf16 autocast where the device computes bf16 natively; channels_last always."""
    return cfg.fast and bf16_native(device)


def precision_name(cfg: TrainConfig, device: str) -> str:
    """What a training step computes in, as recorded per epoch (a resumed run may change machine)."""
    if not cfg.fast:
        return "fp32"
    return "bf16+channels_last" if uses_bf16(cfg, device) else "fp32+channels_last"


def on_device(module: torch.nn.Module, cfg: TrainConfig, device: str) -> torch.nn.Module:
    """``module`` on the training device, channels_last with ``--fast``."""
    module.to(device)
    if cfg.fast:
        module.to(memory_format=torch.channels_last)
    return module


def load_run_teacher(cfg: TrainConfig, device: str):
    """The distillation teacher of ``cfg`` on ``device`` (None without --teacher)."""
    if not cfg.teacher:
        return None
    from .teacher import load_teacher
    return on_device(load_teacher(cfg.teacher), cfg, device)


def training_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def estimate_epoch_seconds(cfg: TrainConfig, data: FER2013, steps: int = 12, warmup: int = 3) -> dict:
    """Time a few real training steps (a throwaway model, optimizer and RNG: the run itself is not
    touched) and one selection pass, under whatever else the machine is running now; from them the
    seconds of one epoch of ``cfg``. For fitting a run's epochs into a deadline."""
    device = training_device()
    train_x, train_y = data.split("Training")
    val_faces = len(data.split("PublicTest")[0])
    if cfg.max_eval_faces:
        val_faces = min(val_faces, cfg.max_eval_faces)
    model = on_device(build_model(cfg), cfg, device)
    teacher = load_run_teacher(cfg, device)
    opt = make_optimizer(cfg, model)
    rng = np.random.default_rng(12345)
    robust = robust_names(cfg)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for i in range(warmup + steps):
        if i == warmup:
            sync()
            t0 = time.time()
        idx = rng.integers(0, len(train_x), cfg.batch_size)
        x, y, x_teacher = make_batch(cfg, robust, train_x, train_y, idx, rng, device)
        train_step(cfg, model, teacher, opt, x, y, device, x_teacher)
    sync()
    step_s = (time.time() - t0) / steps
    probe = five_crops(data.split("PublicTest")[0][:min(val_faces, 64)])
    val_scores_of(cfg, model, probe, device)  # untimed: first-call costs (cudnn autotuning) are not per epoch
    sync()
    t0 = time.time()
    val_scores_of(cfg, model, probe, device)
    sync()
    eval_s = (time.time() - t0) * val_faces / len(probe)
    n_steps = len(train_x) // cfg.batch_size
    if cfg.max_train_batches:
        n_steps = min(n_steps, cfg.max_train_batches)
    params = sum(p.numel() for p in model.parameters())
    save_s = 2.0 + 3 * params * 4 / 200e6  # plots + last.pt / best.pt (weights and Adam moments) at ~200 MB/s
    del model, opt, teacher
    if device == "cuda":
        torch.cuda.empty_cache()
    return {"device": device, "step_s": step_s, "steps_per_epoch": n_steps, "eval_s": eval_s, "save_s": save_s,
            "epoch_s": n_steps * step_s + eval_s + save_s}


# -- the loop -----------------------------------------------------------------------------
def train(cfg: TrainConfig, out: Path, data: FER2013 | None = None, resume: bool = False,
          data_path: str | None = None, stop_after: int = 0, deadline: float | None = None) -> dict:
    """Train (or resume) a run in ``out``. ``stop_after`` > 0 ends this invocation after that many
    epochs; ``deadline`` (a ``time.time()``) ends it before an epoch that would not finish by then,
    judged by the slowest epoch so far. Either way the run stays resumable: for time-boxed sessions."""
    out = Path(out)
    check_config(cfg)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    last = out / "last.pt"
    state = None
    if resume:
        state = load_checkpoint(last)
        saved = TrainConfig(**state["config"])
        if saved.arch != cfg.arch:
            raise CheckpointError(f"{last}: checkpoint is {saved.arch}, asked to resume {cfg.arch}")
        cfg = saved  # the run continues exactly as configured when it started
    elif last.exists():
        raise CheckpointError(f"{out} already holds a run (last.pt); pass --resume or choose another --out")

    check_config(cfg)
    data = data if data is not None else load_fer2013(data_path)
    robust = robust_names(cfg)
    train_x, train_y = data.split("Training")
    val_x, val_y = data.split("PublicTest")
    if cfg.max_eval_faces:
        val_x, val_y = val_x[:cfg.max_eval_faces], val_y[:cfg.max_eval_faces]
    val_crops = five_crops(val_x)

    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np_rng = np.random.default_rng(cfg.seed)
    model = build_model(cfg)
    if cfg.init_from and state is None:
        print(load_init_weights(cfg, model))
    opt = make_optimizer(cfg, model)
    steps = len(train_x) // cfg.batch_size
    if cfg.max_train_batches:
        steps = min(steps, cfg.max_train_batches)
    sched = make_scheduler(cfg, opt, steps)
    history, start_epoch, best = [], 0, {"epoch": -1, "acc_fivecrop_mean": -1.0}
    device = training_device()
    if state is not None:
        # order matters: the scheduler exists before the optimizer state (and its lr) is restored
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"], np_rng)
        history, best, start_epoch = state["history"], state["best"], state["epoch"] + 1
        print(f"resuming {cfg.arch} from {last} at epoch {start_epoch + 1}/{cfg.epochs}")

    teacher = load_run_teacher(cfg, device)
    if teacher is not None:
        print(f"distilling from {cfg.teacher} ({teacher.name}): weight {cfg.kd_weight}, temperature {cfg.kd_temperature}")
    on_device(model, cfg, device)
    precision = precision_name(cfg, device)
    if cfg.fast and not uses_bf16(cfg, device):
        print(f"--fast on this {device}: fp32 + channels_last (no native bf16 here, where bf16 autocast is emulated "
              "and many times slower)")
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    if state is None and cfg.init_from and Path(cfg.init_from).is_dir():
        # the shipped folder may be re-shipped while this run trains: its card as it is now is the
        # start of this run's lineage (bdnn ship reads it back)
        shutil.copyfile(Path(cfg.init_from) / MODEL_CARD_FILE, out / START_CARD_FILE)

    # --compile: only the training step runs compiled; evaluation and checkpoints use the module itself
    step_model = torch.compile(model, dynamic=False) if cfg.compile else model
    end_epoch = min(cfg.epochs, start_epoch + stop_after) if stop_after else cfg.epochs
    slowest = 0.0
    for epoch in range(start_epoch, end_epoch):
        if deadline is not None and time.time() + slowest > deadline:
            print(f"stopping before epoch {epoch + 1}/{cfg.epochs}: it would end after the deadline "
                  f"(an epoch takes up to {slowest:.0f} s); resume with --resume")
            break
        t_epoch = time.time()
        model.train()
        perm = np_rng.permutation(len(train_x))
        run_loss, correct, seen = 0.0, 0, 0
        bar = tqdm(range(steps), desc=f"{cfg.arch} epoch {epoch + 1}/{cfg.epochs}", unit="batch")
        for b in bar:
            idx = perm[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            x, y, x_teacher = make_batch(cfg, robust, train_x, train_y, idx, np_rng, device)
            loss, scores = train_step(cfg, step_model, teacher, opt, x, y, device, x_teacher)
            sched.step()
            run_loss += loss.item() * len(y)
            correct += (scores.argmax(1) == y).sum().item()
            seen += len(y)
            bar.set_postfix(loss=f"{run_loss / seen:.3f}", acc=f"{correct / seen:.3f}", lr=f"{sched.get_last_lr()[0]:.2e}")
        train_time = time.time() - t_epoch
        val_scores = val_scores_of(cfg, model, val_crops, device)
        rec = {"epoch": epoch + 1, "train_loss": run_loss / seen, "train_acc": correct / seen,
               "lr": sched.get_last_lr()[0], "train_seconds": train_time, "precision": precision,
               **{f"val_{k}": v for k, v in accuracies(val_scores, val_y).items()}}
        history.append(rec)
        print(json.dumps(rec))
        improved = rec["val_acc_fivecrop_mean"] > best["acc_fivecrop_mean"]
        if improved:
            best = {"epoch": epoch + 1, "acc_fivecrop_mean": rec["val_acc_fivecrop_mean"]}
        state = {"format": CHECKPOINT_FORMAT, "config": asdict(cfg), "epoch": epoch,
                 "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                 "rng": rng_state(np_rng), "history": history, "best": best}
        if improved:
            save_checkpoint(out / "best.pt", state)
            try:
                from .combine import combine_scores
                from .plots import confusion_matrix, plot_confusion
                cm = confusion_matrix(val_y, combine_scores(val_scores, "mean").argmax(1), len(CLASS_NAMES))
                plot_confusion(cm, CLASS_NAMES, out / "confusion_matrix.png",
                               f"{cfg.arch} epoch {epoch + 1}, PublicTest five-crop mean {rec['val_acc_fivecrop_mean']:.2%}")
            except Exception as e:  # a plot is never a reason to lose a run
                print(f"warning: confusion-matrix plot failed: {e}")
            if is_hardware_model(cfg):
                save_artifact(model, out / "model.npz", meta={"epoch": epoch + 1, "config": asdict(cfg)})
            elif is_teacher(cfg.arch):
                from .teacher import TEACHER_FILE, save_teacher
                save_teacher(model, out / TEACHER_FILE, meta={"epoch": epoch + 1, "config": asdict(cfg)})
        save_checkpoint(last, state)
        (out / "metrics.json").write_text(json.dumps(history, indent=2))
        try:
            from .plots import plot_learning_curve
            plot_learning_curve(history, out / "learning_curve.png", title=f"{cfg.arch} ({cfg.loss}, lr {cfg.lr})")
        except Exception as e:  # plots are a convenience, never a reason to lose a run
            print(f"warning: learning-curve plot failed: {e}")
        slowest = max(slowest, time.time() - t_epoch)
    return {"best": best, "history": history}
