"""scripts/train_all_gpu.py on the CPU with a tiny budget: the plan runs in order (a teacher, a
student distilled from it, a latent-weight stage and its binary stage 2), resumes, skips finished
runs, stops before a deadline, ships with the same cards, packs what a device machine can send back."""
import importlib.util
import json
import tarfile

import numpy as np
import pytest

from conftest import REPO, tiny_spec


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("train_all_gpu", REPO / "scripts" / "train_all_gpu.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(autouse=True)
def tiny_arch(monkeypatch):
    from bdnn.arch import ARCHS
    monkeypatch.setitem(ARCHS, "tiny", tiny_spec())


@pytest.fixture(scope="module")
def packed(fer, tmp_path_factory, script):
    """A few faces of every split, packed as --prepare packs them (xz)."""
    from bdnn.data import FER2013
    keep = np.concatenate([np.flatnonzero(fer.usage == 0)[:40], np.flatnonzero(fer.usage == 1)[:10],
                           np.flatnonzero(fer.usage == 2)[:10]])
    small = FER2013(fer.pixels[keep], fer.labels[keep], fer.usage[keep], fer.source)
    path = script.pack_data(small, tmp_path_factory.mktemp("data") / "small.npz",
                            splits=("Training", "PublicTest", "PrivateTest"))
    back = script.load_data(str(path))
    assert np.array_equal(back.pixels, small.pixels) and np.array_equal(back.labels, small.labels)
    assert np.array_equal(back.usage, small.usage)  # lossless
    return path


PLAN = {"runs": [
    {"name": "t", "args": {"arch": "teacher-vgg-small", "epochs": 1, "loss": "ce"}, "ship_as": "teacher-vgg-small"},
    {"name": "kd", "args": {"arch": "tiny", "epochs": 2, "loss": "ce", "teacher": "{runs}/t", "kd_weight": 0.5},
     "after": ["t"], "ship_as": "tiny"},
    {"name": "s2", "args": {"arch": "tiny", "epochs": 1, "loss": "ce", "init_from": "{runs}/s1/best.pt"},
     "after": ["s1"], "ship_as": "tiny"},
    {"name": "s1", "args": {"arch": "tiny", "epochs": 1, "loss": "ce", "binary_weights": False}},
]}
BUDGET = ["--set", "max_train_batches=2", "--set", "max_eval_faces=8", "--set", "batch_size=8", "--set", "fast=false"]


def test_the_shipped_plans_are_valid(script, capsys):
    """The default plan (the next GPU run's) and the plans of earlier GPU runs in scripts/gpu_plans/ load."""
    assert script.main(["--dry-run", "--runs", "/nonexistent/runs"]) == 0
    out = capsys.readouterr().out
    assert "plan: bdnn4-warm-ft (bdnn4, 0/auto epochs done, after bdnn4-warm)" in out
    assert '"init_from": "/nonexistent/runs/bdnn4-warm/best.pt"' in out and '"init_from": "models/bdnn4"' in out
    plans = sorted((REPO / "scripts" / "gpu_plans").glob("*.json"))
    assert len(plans) >= 4
    for plan in plans:
        assert script.main(["--dry-run", "--plan", str(plan), "--runs", "/nonexistent/runs"]) == 0, plan
    out = capsys.readouterr().out
    assert "plan: teacher-vgg" in out and "/nonexistent/runs/teacher-vgg" in out   # teacher_then_levers.json
    assert "bdnn4-long (bdnn4, 0/auto epochs done, not before teacher-vgg ended)" in out
    assert "plan: bdnn4hw-warm-kd-robust" in out and "plan: bcnn4-warm-kd-ft" in out   # warm_restarts_kd*.json


def test_plan_trains_resumes_ships_and_packs(script, packed, tmp_path, capsys):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(PLAN))
    runs = tmp_path / "runs"
    base = ["--plan", str(plan), "--runs", str(runs), "--data", str(packed)] + BUDGET
    # s2 is listed before the run it waits for: it waits this time
    assert script.main(base) == 0
    summary = {s["name"]: s for s in json.loads((runs / "gpu_summary.json").read_text())["runs"]}
    assert {k: s["status"] for k, s in summary.items()} == {"t": "done", "kd": "done", "s2": "waiting", "s1": "done"}
    assert summary["kd"]["epochs_done"] == 2 and "best_public_fivecrop" in summary["kd"]
    assert (runs / "t" / "teacher.npz").exists() and (runs / "kd" / "model.npz").exists()
    assert json.loads((runs / "kd" / "config.json").read_text())["teacher"] == f"{runs}/t"
    # a second call finishes what waited, skips what is done, then ships and packs
    ship, pack = tmp_path / "shipped", tmp_path / "out"
    assert script.main(base + ["--ship-dir", str(ship), "--pack", str(pack), "--models-dir", str(tmp_path / "none")]) == 0
    log = capsys.readouterr().out
    summary = {s["name"]: s for s in json.loads((runs / "gpu_summary.json").read_text())["runs"]}
    assert all(s["status"] == "done" for s in summary.values())
    assert summary["kd"]["seconds"] == 0 and summary["s2"]["seconds"] > 0  # nothing retrained
    cards = {d.name: json.loads((d / "card.json").read_text()) for d in ship.iterdir()}
    assert set(cards) == {"t", "kd", "s2"} and cards["t"]["role"] == "teacher"
    assert cards["kd"]["accuracy"]["PrivateTest"]["n"] == 10 and "--teacher" in cards["kd"]["reproduce"]
    assert "tiny: best on PublicTest is" in log and "nothing shipped yet" in log
    tars = sorted(pack.glob("results-*.tar"))
    assert tars and (pack / "gpu_summary.json").exists()
    names = [n for t in tars for n in tarfile.open(t).getnames()]
    assert "kd/model.npz" in names and "t/teacher.npz" in names and "shipped/kd/card.json" in names
    assert not [n for n in names if n.endswith(".pt")]


def test_deadline_stops_between_epochs_and_the_run_resumes(script, packed, tmp_path, capsys):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"runs": [{"name": "a", "args": {"arch": "tiny", "epochs": 3, "loss": "ce"}}]}))
    base = ["--plan", str(plan), "--runs", str(tmp_path / "runs"), "--data", str(packed)] + BUDGET
    # a deadline of ~0 with no reserve: one epoch measured, then it stops
    assert script.main(base + ["--deadline-min", "0.0001", "--reserve-min", "0"]) == 0
    s = json.loads((tmp_path / "runs" / "gpu_summary.json").read_text())["runs"][0]
    assert s["status"] in ("stopped", "not started") and s["epochs_done"] < 3
    assert "the deadline is near" in capsys.readouterr().out
    assert script.main(base) == 0
    s = json.loads((tmp_path / "runs" / "gpu_summary.json").read_text())["runs"][0]
    assert s["status"] == "done" and s["epochs_done"] == 3
    hist = json.loads((tmp_path / "runs" / "a" / "metrics.json").read_text())
    assert [h["epoch"] for h in hist] == [1, 2, 3]


def test_bad_plans_and_options_are_refused(script, tmp_path):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"runs": [{"name": "a", "args": {"arch": "tiny"}, "after": ["b"]}]}))
    with pytest.raises(SystemExit, match="waits for 'b'"):
        script.main(["--plan", str(plan), "--dry-run"])
    with pytest.raises(SystemExit, match="no run zz"):
        script.main(["--only", "zz", "--dry-run"])
    with pytest.raises(SystemExit, match="expected key=value"):
        script.main(["--set", "nope=1", "--dry-run"])
    with pytest.raises(SystemExit, match="not git-ignored"):
        script.main(["--prepare", str(REPO / "scripts" / "not_ignored")])


def test_a_pack_without_privatetest_trains_but_does_not_ship(script, fer, tmp_path, capsys):
    from bdnn.data import FER2013
    keep = np.concatenate([np.flatnonzero(fer.usage == 0)[:20], np.flatnonzero(fer.usage == 1)[:8],
                           np.flatnonzero(fer.usage == 2)[:8]])
    small = FER2013(fer.pixels[keep], fer.labels[keep], fer.usage[keep], fer.source)
    data = script.pack_data(small, tmp_path / "train_public.npz")  # the --prepare default: no PrivateTest
    assert set(np.unique(script.load_data(str(data)).usage)) == {0, 1}
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"runs": [{"name": "a", "args": {"arch": "tiny", "epochs": 1, "loss": "ce"},
                                          "ship_as": "tiny"}]}))
    assert script.main(["--plan", str(plan), "--runs", str(tmp_path / "runs"), "--data", str(data),
                        "--ship-dir", str(tmp_path / "shipped")] + BUDGET) == 0
    assert "no PrivateTest" in capsys.readouterr().out and not (tmp_path / "shipped").exists()
    assert json.loads((tmp_path / "runs" / "gpu_summary.json").read_text())["runs"][0]["status"] == "done"


PARALLEL_PLAN = {"runs": [
    {"name": "t", "args": {"arch": "teacher-vgg-small", "epochs": 1, "loss": "ce"}, "share": 0.5},
    {"name": "long", "args": {"arch": "bdnn2", "epochs": "auto", "loss": "ce", "select_with": "torch"},
     "not_before": ["t"]},
    {"name": "g-base", "args": {"arch": "bdnn2", "epochs": "auto", "loss": "ce"}, "after": ["t"], "group": "g"},
    {"name": "g-kd", "args": {"arch": "bdnn2", "epochs": "auto", "loss": "ce", "teacher": "{runs}/t"},
     "after": ["t"], "group": "g"},
    {"name": "never", "args": {"arch": "bdnn2", "epochs": 1, "loss": "ce"}, "after": ["nope"]},
    {"name": "nope", "args": {"arch": "bdnn2", "epochs": 1, "loss": "ce", "teacher": "{runs}/no-such-teacher"}},
]}


def test_parallel_mode_fits_auto_epochs_into_the_deadline_and_groups_train_equal_epochs(script, packed, tmp_path, capsys):
    """--parallel on the cpu: the teacher first, then the other runs at once in worker processes;
    'auto' runs measure an epoch and fit into the deadline, a group trains the same epochs, a run
    waiting for one that failed is skipped, and everything ends before the deadline."""
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(PARALLEL_PLAN))
    runs = tmp_path / "runs"
    t0 = __import__("time").time()
    assert script.main(["--parallel", "--plan", str(plan), "--runs", str(runs), "--data", str(packed),
                        "--deadline-min", "1.8", "--reserve-min", "0.4", "--pack", str(tmp_path / "out"),
                        "--set", "max_train_batches=1", "--set", "max_eval_faces=8", "--set", "batch_size=8",
                        "--set", "fast=false"]) == 0
    assert __import__("time").time() - t0 < 1.8 * 60 + 5
    log = capsys.readouterr().out
    summary = {s["name"]: s for s in json.loads((runs / "gpu_summary.json").read_text())["runs"]}
    assert summary["t"]["status"] == "done"
    # fitted, not the placeholder epoch; a loaded machine may still stop a run early (never past the deadline)
    w = json.loads((runs / "long" / "worker.json").read_text())
    assert w["estimate"]["epoch_s"] > 0 and w["epochs"] == summary["long"]["epochs_planned"] >= 2
    assert json.loads((runs / "long" / "config.json").read_text())["epochs"] == w["epochs"]
    assert summary["long"]["epochs_done"] >= 1
    groups = [json.loads((runs / n / "worker.json").read_text())["group_epochs"] for n in ("g-base", "g-kd")]
    assert groups[0] == groups[1] >= 1 and summary["g-base"]["epochs_planned"] == summary["g-kd"]["epochs_planned"]
    assert summary["g-kd"]["epochs_done"] >= 1 and f"group g: g-base, g-kd train {groups[0]} epochs each" in log
    assert summary["nope"]["status"] != "done" and summary["never"]["status"] == "not started"
    assert "never: skipped" in log
    assert (runs / "long" / "model.npz").exists() and (runs / "long" / "train.log").exists()
    names = [n for t in (tmp_path / "out").glob("results-*.tar") for n in tarfile.open(t).getnames()]
    assert "long/model.npz" in names and "long/worker.json" in names


def test_what_a_device_call_would_carry_is_counted(script, tmp_path):
    """--prepare checks the 64 MiB a device call may send: the working tree git would show plus the pack."""
    (tmp_path / "pack.bin").write_bytes(b"\0" * 5000)
    tree = script.travelling_bytes(tmp_path / "empty-none")
    assert tree > (REPO / "README.md").stat().st_size
    assert script.travelling_bytes(tmp_path) == tree + script.disk_bytes(tmp_path / "pack.bin")
    assert script.disk_bytes(tmp_path / "pack.bin") >= 5000
