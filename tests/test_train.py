"""Trainer: checkpoints are atomic and resumable exactly; bad checkpoints give clear errors."""
import json

import numpy as np
import pytest
import torch

from bdnn.checkpoint import CheckpointError, load_checkpoint
from bdnn.train import TrainConfig, loss_fn, train

TINY = dict(arch="bdnn2", epochs=3, batch_size=8, max_train_batches=2, max_eval_faces=12, eval_batch=64,
            lr=1e-3, fast=False, seed=3)


def test_losses_follow_the_paper():
    scores = torch.tensor([[2.0, -1.0, 0.5]])
    y = torch.tensor([0])
    # hinge on +-1 one-hot targets: max(0, 1 - t*y) summed over classes
    assert loss_fn("hinge", scores, y).item() == pytest.approx(0 + 0 + 1.5)
    assert loss_fn("sqhinge", scores, y).item() == pytest.approx(1.5 ** 2)
    with pytest.raises(ValueError):
        loss_fn("l1", scores, y)


def test_resume_continues_exactly(tmp_path, fer):
    straight = train(TrainConfig(**TINY), tmp_path / "a", data=fer)
    part = train(TrainConfig(**TINY), tmp_path / "b", data=fer, stop_after=1)
    assert len(part["history"]) == 1
    resumed = train(TrainConfig(**TINY), tmp_path / "b", data=fer, resume=True)
    strip = lambda h: [{k: v for k, v in e.items() if k != "train_seconds"} for e in h]  # noqa: E731
    assert strip(resumed["history"]) == strip(straight["history"])
    a, b = load_checkpoint(tmp_path / "a" / "last.pt"), load_checkpoint(tmp_path / "b" / "last.pt")
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for f in ("model.npz", "metrics.json", "learning_curve.png", "config.json"):
        assert (tmp_path / "b" / f).exists()


def test_refuses_to_overwrite_a_run_and_rejects_bad_checkpoints(tmp_path, fer):
    cfg = TrainConfig(**{**TINY, "epochs": 1})
    train(cfg, tmp_path / "r", data=fer)
    with pytest.raises(CheckpointError, match="--resume"):
        train(cfg, tmp_path / "r", data=fer)
    last = tmp_path / "r" / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])  # truncated, as after a crash mid-write without rename
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        train(cfg, tmp_path / "r", data=fer, resume=True)
    torch.save({"state_dict": {}}, last)          # someone else's checkpoint
    with pytest.raises(CheckpointError, match="not a BDNN training checkpoint"):
        load_checkpoint(last)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "nothing.pt")


def test_checkpoint_write_is_atomic(tmp_path, fer):
    train(TrainConfig(**{**TINY, "epochs": 1}), tmp_path / "r", data=fer)
    assert not list((tmp_path / "r").glob("*.tmp"))
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert {"val_acc_center", "val_acc_fivecrop_mean", "val_acc_fivecrop_vote"} <= set(metrics[0])


def test_init_from_starts_a_fresh_schedule_from_another_runs_weights(tmp_path, fer):
    train(TrainConfig(**{**TINY, "epochs": 1}), tmp_path / "first", data=fer)
    src = load_checkpoint(tmp_path / "first" / "last.pt")
    cfg = TrainConfig(**{**TINY, "epochs": 1, "lr": 0.0, "init_from": str(tmp_path / "first" / "last.pt")})
    train(cfg, tmp_path / "second", data=fer)  # lr 0: latent weights stay where the first run left them
    second = load_checkpoint(tmp_path / "second" / "last.pt")
    weights = [k for k in src["model"] if k.endswith("weight") and src["model"][k].dim() > 1]
    assert weights and all(torch.equal(src["model"][k], second["model"][k]) for k in weights)
    assert second["config"]["init_from"].endswith("last.pt")
    other = TrainConfig(**{**TINY, "arch": "bdnn3", "init_from": str(tmp_path / "first" / "last.pt")})
    with pytest.raises(CheckpointError, match="checkpoint is bdnn2"):
        train(other, tmp_path / "third", data=fer)


def test_ship_documents_a_warm_restart_chain(tmp_path, fer):
    """A model trained in stages (--init-from) ships with every stage's recipe, time and command."""
    from bdnn.data import FER2013
    from bdnn.results import results_rows
    from bdnn.ship import chained_history, repackage, run_lineage, ship
    train(TrainConfig(**{**TINY, "epochs": 2}), tmp_path / "first", data=fer)
    cfg = TrainConfig(**{**TINY, "epochs": 2, "init_from": str(tmp_path / "first" / "best.pt")})
    train(cfg, tmp_path / "second", data=fer)
    stages = run_lineage(tmp_path / "second")
    assert [st["run"] for st in stages] == ["first", "second"]
    used = load_checkpoint(tmp_path / "first" / "best.pt")["epoch"] + 1
    assert stages[0]["used_epoch"] == used and stages[1]["used_epoch"] is None
    assert "--init-from" not in stages[0]["command"]
    assert "--out runs/second" in stages[1]["command"] and "--init-from runs/first/best.pt" in stages[1]["command"]
    curve, restarts = chained_history(stages)
    assert restarts == [used] and [h["epoch"] for h in curve] == list(range(1, used + 3))

    keep = np.concatenate([np.flatnonzero(fer.usage == u)[:6] for u in range(3)])  # a few faces per split
    small = FER2013(fer.pixels[keep], fer.labels[keep], fer.usage[keep], fer.source)
    card = ship(tmp_path / "second", tmp_path / "model", data=small)
    assert card["reproduce"] == stages[0]["command"] + " && " + stages[1]["command"]
    assert len(card["stages"]) == 2 and "history" in card["stages"][0] and "history" not in card["stages"][1]
    assert card["stages"][1]["recipe"]["init_from"] == "runs/first/best.pt"   # no machine paths in the card
    assert card["train_hours"] == pytest.approx(stages[0]["train_hours"] + stages[1]["train_hours"], abs=0.011)
    assert card["accuracy"]["PrivateTest"]["n"] == 6
    assert "Trained in 2 stages" in (tmp_path / "model" / "README.md").read_text()
    assert (tmp_path / "model" / "learning_curve.png").stat().st_size > 0
    row = [r for r in results_rows({"bdnn2": card}) if r["row"] == "bdnn2"][0]
    assert row["epochs"].startswith("2" + (f" (used: {used})" if used != 2 else "") + " → 2")
    assert card["sign_thresholds"]["centred"] and card["sign_thresholds"]["min_margin"] > 0.49
    (tmp_path / "first" / "metrics.json").unlink()
    with pytest.raises(FileNotFoundError, match="--init-from chain"):
        run_lineage(tmp_path / "second")
    # the training runs are gone: the shipped folder re-packages from its own card, same numbers
    again = repackage(tmp_path / "model", tmp_path / "again", data=small)
    for k in ("reproduce", "stages", "history", "accuracy", "train_hours", "best_epoch"):
        assert again[k] == card[k], k
    # a card written before stages were recorded re-packages as one stage
    legacy = json.loads((tmp_path / "model" / "card.json").read_text())
    del legacy["stages"]
    (tmp_path / "model" / "card.json").write_text(json.dumps(legacy))
    old = repackage(tmp_path / "model", data=small)
    assert old["accuracy"] == card["accuracy"] and len(old["stages"]) == 1 and old["reproduce"] == card["reproduce"]
    with pytest.raises(FileNotFoundError, match="not a shipped model"):
        repackage(tmp_path / "first", data=small)


def test_init_from_a_shipped_model_folder_continues_its_binary_network(tmp_path, fer):
    """A shipped folder keeps only signs: the run starts from them (x SHIPPED_LATENT_MAGNITUDE) and its BN
    parameters, and its card carries the shipped model's stages, the ship step, then the new run."""
    from bdnn.artifact import load
    from bdnn.data import FER2013
    from bdnn.ship import run_lineage, ship
    from bdnn.train import SHIPPED_LATENT_MAGNITUDE
    keep = np.concatenate([np.flatnonzero(fer.usage == u)[:6] for u in range(3)])
    small = FER2013(fer.pixels[keep], fer.labels[keep], fer.usage[keep], fer.source)
    train(TrainConfig(**{**TINY, "epochs": 1}), tmp_path / "first", data=fer)
    shipped = tmp_path / "models" / "bdnn2"
    ship(tmp_path / "first", shipped, data=small)
    cfg = TrainConfig(**{**TINY, "epochs": 1, "lr": 0.0, "init_from": str(shipped)})
    train(cfg, tmp_path / "second", data=fer)
    weights = load_checkpoint(tmp_path / "second" / "last.pt")["model"]
    art = load(shipped / "model.npz")
    for name, key in (("block1.conv2", "blocks.0.conv2.weight"), ("fc2", "fcs.1.weight")):
        assert torch.equal(weights[key], torch.from_numpy(art.layers[name].weight * np.float32(SHIPPED_LATENT_MAGNITUDE))), name
    stages = run_lineage(tmp_path / "second")
    assert [st["run"] for st in stages] == ["first", "second"] and stages[0]["used_epoch"] == 1
    assert stages[0]["command"].endswith("&& bdnn ship runs/first models/bdnn2")
    assert stages[1]["command"].endswith("--init-from models/bdnn2") and stages[1]["recipe"]["init_from"] == "models/bdnn2"
    card = ship(tmp_path / "second", tmp_path / "models" / "bdnn2-next", data=small)
    assert card["reproduce"].count("bdnn train") == 2 and len(card["stages"]) == 2
    assert "started from the shipped models/bdnn2" in (tmp_path / "models" / "bdnn2-next" / "README.md").read_text()
    # the folder re-shipped from "second", then a run from second's checkpoint: second appears once
    ship(tmp_path / "second", shipped, data=small)
    train(TrainConfig(**{**TINY, "epochs": 1, "init_from": str(tmp_path / "second" / "best.pt")}), tmp_path / "third-ft", data=fer)
    chain = run_lineage(tmp_path / "third-ft")
    assert [st["run"] for st in chain] == ["first", "second", "third-ft"]
    assert chain[0]["command"].endswith("&& bdnn ship runs/first models/bdnn2")
    with pytest.raises(CheckpointError, match="shipped model is bdnn2, this run trains bdnn3"):
        train(TrainConfig(**{**TINY, "arch": "bdnn3", "init_from": str(shipped)}), tmp_path / "third", data=fer)
    with pytest.raises(CheckpointError, match="neither a checkpoint nor a shipped model folder"):
        train(TrainConfig(**{**TINY, "init_from": str(tmp_path / "first")}), tmp_path / "fourth", data=fer)  # a run folder


def test_lineage_finds_a_parent_run_that_trained_on_a_device(tmp_path, fer):
    """A device's run names its parent by the device's path (/tmp/gpu_runs3/X/best.pt, never carried
    back); here the parent sits in another folder of runs: found by name, its best epoch from model.npz."""
    import shutil
    from bdnn.ship import run_lineage
    train(TrainConfig(**{**TINY, "epochs": 2}), tmp_path / "gpu3" / "first", data=fer)
    used = load_checkpoint(tmp_path / "gpu3" / "first" / "best.pt")["epoch"] + 1
    cfg = TrainConfig(**{**TINY, "epochs": 1, "init_from": str(tmp_path / "gpu3" / "first" / "best.pt")})
    train(cfg, tmp_path / "gpu4" / "second", data=fer)
    for f in ("best.pt", "last.pt"):
        (tmp_path / "gpu3" / "first" / f).unlink()
    conf = tmp_path / "gpu4" / "second" / "config.json"
    conf.write_text(json.dumps({**json.loads(conf.read_text()), "init_from": "/no-such-device/gpu_runs3/first/best.pt"}))
    stages = run_lineage(tmp_path / "gpu4" / "second")
    assert [st["run"] for st in stages] == ["first", "second"] and stages[0]["used_epoch"] == used
    assert stages[1]["command"].endswith("--init-from runs/first/best.pt")
    shutil.copytree(tmp_path / "gpu3" / "first", tmp_path / "gpu5" / "first")
    with pytest.raises(FileNotFoundError, match="several runs named 'first'"):
        run_lineage(tmp_path / "gpu4" / "second")


@pytest.mark.parametrize("native", [False, True])
def test_fast_computes_in_bf16_only_where_the_device_has_native_bf16(monkeypatch, native):
    """On a cpu without bf16 kernels autocast emulates bf16 (12x slower than fp32 on an AVX2 EPYC):
    --fast then keeps fp32 and channels_last; the precision a step used is recorded per epoch."""
    import bdnn.train as tr
    monkeypatch.setattr(tr, "bf16_native", lambda device: native)
    cfg = TrainConfig(**{**TINY, "fast": True})
    model = tr.on_device(tr.build_model(cfg), cfg, "cpu")
    seen = []
    first_conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    first_conv.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    x = torch.randint(0, 256, (4, 1, 42, 42)).float().to(memory_format=torch.channels_last)
    tr.train_step(cfg, model, None, tr.make_optimizer(cfg, model), x, torch.tensor([0, 1, 2, 3]), "cpu")
    assert seen == [torch.bfloat16 if native else torch.float32]
    assert tr.precision_name(cfg, "cpu") == ("bf16+channels_last" if native else "fp32+channels_last")
    assert tr.precision_name(TrainConfig(**TINY), "cpu") == "fp32"


def test_the_bf16_probe_runs_on_the_pinned_torch():
    """It asks oneDNN through a private op: a torch upgrade that drops it must fail here, not in a run."""
    import bdnn.train as tr
    assert isinstance(tr.bf16_native("cpu"), bool)


def test_a_run_keeps_the_card_of_the_shipped_folder_it_started_from(tmp_path, fer):
    """The folder is re-shipped from an unrelated run while a run from it trains: shipping that run
    must still list the stages it really started from (the card as it was), not the new ones."""
    from bdnn.contract import START_CARD_FILE
    from bdnn.data import FER2013
    from bdnn.ship import run_lineage, ship
    keep = np.concatenate([np.flatnonzero(fer.usage == u)[:6] for u in range(3)])
    small = FER2013(fer.pixels[keep], fer.labels[keep], fer.usage[keep], fer.source)
    one = {**TINY, "epochs": 1}
    train(TrainConfig(**one), tmp_path / "origin", data=fer)
    shipped = tmp_path / "models" / "bdnn2"
    ship(tmp_path / "origin", shipped, data=small)
    train(TrainConfig(**{**one, "init_from": str(shipped)}), tmp_path / "warm", data=fer)
    assert (tmp_path / "warm" / START_CARD_FILE).read_text() == (shipped / "card.json").read_text()
    train(TrainConfig(**{**one, "seed": 9}), tmp_path / "rival", data=fer)
    ship(tmp_path / "rival", shipped, data=small)  # the folder now documents another run
    assert [st["run"] for st in run_lineage(tmp_path / "warm")] == ["origin", "warm"]
    (tmp_path / "warm" / START_CARD_FILE).unlink()  # a run from before the snapshot: the folder as it is
    assert [st["run"] for st in run_lineage(tmp_path / "warm")] == ["rival", "warm"]


def test_compile_trains_the_same_module_and_clips_its_latent_weights():
    """--compile runs the step through torch.compile: the loss of a step from the same weights is the
    eager one, the module itself gets the update (checkpoints need no renaming), and latent weights
    stay clipped to [-1, 1] (the clip reaches through the compiled wrapper)."""
    import bdnn.train as tr
    cfg = TrainConfig(**TINY)
    torch.manual_seed(0)
    eager = tr.build_model(cfg)
    compiled_base = tr.build_model(cfg)
    compiled_base.load_state_dict(eager.state_dict())
    x = torch.randint(0, 256, (4, 1, 42, 42)).float()
    y = torch.tensor([0, 1, 2, 3])
    opt_e, opt_c = tr.make_optimizer(cfg, eager), tr.make_optimizer(TrainConfig(**{**TINY, "lr": 10.0}), compiled_base)
    l_e, _ = tr.train_step(cfg, eager, None, opt_e, x, y, "cpu")
    before = {k: v.clone() for k, v in compiled_base.state_dict().items()}
    l_c, _ = tr.train_step(cfg, torch.compile(compiled_base, dynamic=False), None, opt_c, x, y, "cpu")
    assert float(l_c) == pytest.approx(float(l_e), rel=1e-4)
    assert set(compiled_base.state_dict()) == set(before)  # no "_orig_mod." keys
    assert any(not torch.equal(before[k], v) for k, v in compiled_base.state_dict().items())
    latent = [m.weight for m in compiled_base.modules() if hasattr(m, "weight") and m.weight is not None and m.weight.dim() > 1]
    assert max(float(w.abs().max()) for w in latent) <= 1.0  # lr 10 pushes past 1 unless clipped
