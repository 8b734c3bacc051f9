"""The training levers on a tiny budget: label smoothing, robustness augmentations, a
full-precision teacher and distillation from it, two-stage training (latent-weight stage first)."""
import json

import numpy as np
import pytest
import torch

from bdnn.config import ConfigError, TrainConfig, check_config
from bdnn.train import load_checkpoint, loss_fn, train, training_loss

TINY = dict(arch="tiny", epochs=1, batch_size=8, max_train_batches=2, max_eval_faces=12, eval_batch=64,
            lr=1e-3, fast=False, seed=3, loss="ce")


@pytest.fixture(autouse=True)
def tiny_arch(monkeypatch):
    """The tests' tiny dense BDNN (conftest.tiny_spec) registered as an architecture: seconds per run."""
    from conftest import tiny_spec

    from bdnn.arch import ARCHS
    monkeypatch.setitem(ARCHS, "tiny", tiny_spec())


def _small(fer, n=6):
    from bdnn.data import FER2013
    keep = np.concatenate([np.flatnonzero(fer.usage == u)[:n] for u in range(3)])
    return FER2013(fer.pixels[keep], fer.labels[keep], fer.usage[keep], fer.source)


def test_config_checks():
    check_config(TrainConfig(**TINY))
    for bad, msg in ((dict(loss="hinge", label_smoothing=0.1), "applies to --loss ce"),
                     (dict(label_smoothing=1.0), "must be in"), (dict(robust_augment="jpeg,rotate"), "unknown: rotate"),
                     (dict(kd_weight=1.5), "--kd-weight"), (dict(kd_temperature=0), "--kd-temperature"),
                     (dict(arch="teacher-vgg", binary_weights=False), "full precision"),
                     (dict(arch="nope"), "unknown architecture"),
                     (dict(kd_clean_teacher=True, robust_augment="blur"), "needs --teacher and --robust-augment"),
                     (dict(kd_clean_teacher=True, teacher="t"), "needs --teacher and --robust-augment")):
        with pytest.raises(ConfigError, match=msg):
            check_config(TrainConfig(**{**TINY, **bad}))


def test_losses_label_smoothing_and_distillation():
    from bdnn.teacher import kd_loss
    s, y = torch.tensor([[3.0, -1.0, 0.5], [0.0, 2.0, 1.0]]), torch.tensor([0, 1])
    plain = loss_fn("ce", s, y)
    assert loss_fn("ce", s, y, 0.2).item() > plain.item()
    assert kd_loss(s, s, 4.0).item() == pytest.approx(0.0, abs=1e-6)
    assert kd_loss(s, -s, 4.0).item() > 0
    cfg = TrainConfig(**{**TINY, "kd_weight": 0.25, "kd_temperature": 2.0})
    mixed = training_loss(cfg, s, y, -s)
    assert mixed.item() == pytest.approx(0.75 * plain.item() + 0.25 * kd_loss(s, -s, 2.0).item(), rel=1e-5)
    assert training_loss(TrainConfig(**{**TINY, "kd_weight": 1.0}), s, y, -s).item() == pytest.approx(kd_loss(s, -s, 4.0).item())
    assert training_loss(cfg, s, y).item() == pytest.approx(plain.item())


def test_robust_augment_and_label_smoothing_train_and_resume(tmp_path, fer):
    cfg = dict(TINY, epochs=2, robust_augment="all", robust_prob=0.7, label_smoothing=0.1)
    straight = train(TrainConfig(**cfg), tmp_path / "a", data=fer)
    train(TrainConfig(**cfg), tmp_path / "b", data=fer, stop_after=1)
    resumed = train(TrainConfig(**cfg), tmp_path / "b", data=fer, resume=True)
    strip = lambda h: [{k: v for k, v in e.items() if k != "train_seconds"} for e in h]  # noqa: E731
    assert strip(resumed["history"]) == strip(straight["history"])  # the augmentations draw from the run's RNG
    plain = train(TrainConfig(**{**cfg, "robust_augment": ""}), tmp_path / "c", data=fer)
    assert plain["history"][0]["train_loss"] != straight["history"][0]["train_loss"]
    assert json.loads((tmp_path / "a" / "config.json").read_text())["robust_augment"] == "all"


def test_clean_teacher_batches_share_windows_and_the_rng_stream(fer):
    """--kd-clean-teacher: the teacher's crops are the student's windows and flips of the unperturbed
    faces, and the option draws nothing extra (the student's batches are the ones it would get without)."""
    from bdnn.train import make_batch
    train_x, train_y = fer.split("Training")
    idx = np.arange(32)
    cfg = dict(TINY, robust_augment="noise,blur", robust_prob=1.0, teacher="t", augment="random", flip=True)
    rng0, rng = np.random.default_rng(9), np.random.default_rng(9)
    x0, y0, none = make_batch(TrainConfig(**cfg), ["noise", "blur"], train_x, train_y, idx, rng0, "cpu")
    x, y, xt = make_batch(TrainConfig(**cfg, kd_clean_teacher=True), ["noise", "blur"], train_x, train_y, idx, rng, "cpu")
    assert none is None and torch.equal(x, x0) and torch.equal(y, y0) and rng.random() == rng0.random()
    faces = train_x[idx].astype(np.float32)
    assert not torch.equal(x, xt)
    for i in range(len(idx)):  # each teacher crop is a 42x42 window of its clean face, maybe flipped
        crop = xt[i, 0].numpy()
        hits = [(r, c, f) for r in range(7) for c in range(7) for f in (False, True)
                if np.array_equal(faces[i, r:r + 42, c:c + 42][:, ::-1] if f else faces[i, r:r + 42, c:c + 42], crop)]
        assert hits, i
        r, c, f = hits[0]
        clean_student = faces[i, r:r + 42, c:c + 42][:, ::-1] if f else faces[i, r:r + 42, c:c + 42]
        assert np.abs(x[i, 0].numpy() - clean_student).mean() < 40  # the student's crop: same window, perturbed


def test_teacher_trains_ships_and_teaches(tmp_path, fer):
    from bdnn.results import markdown_table, results_rows
    from bdnn.ship import ship
    from bdnn.teacher import TEACHER_FILE, TeacherVGG, load_teacher
    res = train(TrainConfig(**{**TINY, "arch": "teacher-vgg-small", "weight_decay": 1e-4}), tmp_path / "t", data=fer)
    assert (tmp_path / "t" / TEACHER_FILE).exists() and not (tmp_path / "t" / "model.npz").exists()
    from_run, from_npz = load_teacher(tmp_path / "t"), load_teacher(tmp_path / "t" / TEACHER_FILE)
    x = torch.from_numpy(fer.split("PublicTest")[0][:4, :42, :42][:, None].astype(np.float32))
    with torch.no_grad():
        assert torch.allclose(from_run(x), from_npz(x), atol=1e-5)
    assert isinstance(from_run, TeacherVGG) and not from_run.training
    assert res["history"][0]["val_acc_fivecrop_mean"] >= 0
    # a BDNN student distils from it (KL alone, then mixed with CE)
    for w in (1.0, 0.5):
        kd = train(TrainConfig(**{**TINY, "teacher": str(tmp_path / "t"), "kd_weight": w}), tmp_path / f"s{w}", data=fer)
        assert (tmp_path / f"s{w}" / "model.npz").exists() and np.isfinite(kd["history"][0]["train_loss"])
    # consistency distillation: the student on perturbed faces, the teacher on the clean ones
    from bdnn.ship import train_command
    cfg = TrainConfig(**{**TINY, "teacher": str(tmp_path / "t"), "robust_augment": "noise", "kd_clean_teacher": True})
    cons = train(cfg, tmp_path / "sc", data=fer)
    assert np.isfinite(cons["history"][0]["train_loss"]) and cons["history"][0]["train_loss"] != kd["history"][0]["train_loss"]
    assert "--kd-clean-teacher" in train_command("sc", json.loads((tmp_path / "sc" / "config.json").read_text()))
    # the teacher ships with its own card; bdnn results lists it as not on the hardware path
    card = ship(tmp_path / "t", tmp_path / "models" / "teacher-vgg-small", data=_small(fer))
    assert card["role"] == "teacher" and card["hardware"] is False and card["accuracy"]["PrivateTest"]["n"] == 6
    assert (tmp_path / "models" / "teacher-vgg-small" / TEACHER_FILE).exists()
    assert "--arch teacher-vgg-small" in card["reproduce"] and "--kd-weight" not in card["reproduce"]
    table = markdown_table(results_rows({"teacher-vgg-small": card}))
    assert "teacher-vgg-small (fp32 teacher, not on the hardware path)" in table
    with pytest.raises(Exception, match="not a teacher"):
        load_teacher(tmp_path / "s1.0" / "best.pt")


def test_two_stage_latent_weights_then_binary(tmp_path, fer):
    from bdnn.ship import ShipError, ship, train_command
    s1 = train(TrainConfig(**{**TINY, "binary_weights": False}), tmp_path / "stage1", data=fer)
    assert not (tmp_path / "stage1" / "model.npz").exists() and (tmp_path / "stage1" / "best.pt").exists()
    st1 = load_checkpoint(tmp_path / "stage1" / "best.pt")
    w = st1["model"]["blocks.1.conv1.weight"]
    assert (w.abs() < 1).all() and len(torch.unique(w)) > 2  # real latent weights, clipped to [-1, 1]
    with pytest.raises(ShipError, match="latent-weight stage"):
        ship(tmp_path / "stage1", tmp_path / "m", data=_small(fer))
    cfg2 = TrainConfig(**{**TINY, "lr": 0.0, "init_from": str(tmp_path / "stage1" / "best.pt")})
    train(cfg2, tmp_path / "stage2", data=fer)  # lr 0: stage 2's binary weights are sign(stage 1's)
    st2 = load_checkpoint(tmp_path / "stage2" / "last.pt")
    assert torch.equal(st2["model"]["blocks.1.conv1.weight"], w)
    from bdnn.artifact import load
    art = load(tmp_path / "stage2" / "model.npz")
    assert np.array_equal(art.layers["block2.conv1"].weight, np.where(w.numpy() >= 0, 1, -1))
    assert s1["history"][0]["val_acc_fivecrop_mean"] >= 0
    cmd = train_command("stage1", json.loads((tmp_path / "stage1" / "config.json").read_text()))
    assert "--no-binary-weights" in cmd and "--label-smoothing" not in cmd and "--teacher" not in cmd


def test_cli_train_takes_the_new_flags(tmp_path, fer, capsys):
    from bdnn.cli import main
    args = ["train", "--arch", "tiny", "--out", str(tmp_path / "r"), "--epochs", "1", "--batch-size", "8",
            "--max-train-batches", "1", "--max-eval-faces", "8", "--no-fast", "--loss", "ce"]
    assert main(args + ["--label-smoothing", "0.1", "--robust-augment", "jpeg,shift", "--robust-prob", "1.0"]) == 0
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    assert cfg["label_smoothing"] == 0.1 and cfg["robust_augment"] == "jpeg,shift" and cfg["robust_prob"] == 1.0
    assert main(["train", "--arch", "tiny", "--out", str(tmp_path / "bad"), "--loss", "hinge",
                 "--label-smoothing", "0.1"]) == 2
    assert "applies to --loss ce" in capsys.readouterr().err
