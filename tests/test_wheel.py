"""The package as a user installs it on a board.

The wheel is built from a copy of the sources and installed with plain pip (not editable) into a
fresh venv holding numpy < 2 and Pillow only -- a PYNQ image without torch, FINN or OpenCV.
There `bdnn predict`, `evaluate` and `results` work, the C kernel compiles from the installed
source (or the engine falls back to numpy with a note), its outputs are bit-identical to the
development install's, and commands that need an extra say which one.
"""
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from board_env import run_in
from conftest import REPO

ENGINE = r'''
import json, sys
import numpy as np
from bdnn.artifact import load
from bdnn.contract import default_model
from bdnn.engine import Engine, kernel_name
from bdnn.preprocess import five_crops
faces = np.load(sys.argv[1])[:int(sys.argv[3])]
e = Engine(load(default_model()))
acc = e.accumulators(five_crops(faces).reshape(-1, 42, 42))
np.savez(sys.argv[2], acc=acc, scores=e.scores(acc))
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"torch", "brevitas", "finn", "qonnx", "cv2", "tqdm", "matplotlib"})
print(json.dumps({"kernel": kernel_name(), "model": str(default_model()), "heavy": heavy, "numpy": np.__version__}))
'''


def test_wheel_holds_every_file_the_package_reads(board_venv):
    names = set(zipfile.ZipFile(board_venv[2]).namelist())
    assert {"bdnn/_xnor.c", "bdnn/finn_estimates.json", "bdnn/models/bdnn4/model.npz", "bdnn/models/bdnn4/card.json"} <= names
    assert {f"bdnn_hw/folding/{p.name}" for p in (REPO / "hw" / "folding").glob("*.json")} <= names
    assert {f"bdnn/{p.name}" for p in (REPO / "sw" / "bdnn").glob("*.py")} <= names


def test_board_venv_holds_the_wheel_numpy_below_2_and_pillow_only(board_venv):
    r = run_in(board_venv[0], ["-m", "pip", "list", "--format", "json"])
    pkgs = {p["name"].lower(): p["version"] for p in json.loads(r.stdout)}
    assert set(pkgs) - {"pip", "setuptools"} == {"bdnn-fer", "numpy", "pillow"}
    assert pkgs["numpy"].startswith("1.")
    version = run_in(board_venv[0], ["-c", "import sys; print(sys.version.split()[0])"]).stdout.strip()
    print(f"\nwheel + numpy<2 + Pillow into a fresh Python {version} venv: {board_venv[1]:.1f} s")


def test_installed_bdnn_predicts_bit_identically_to_the_development_install(board_venv, fer, tmp_path, capsys):
    py = board_venv[0]
    bdnn = py.parent / "bdnn"
    faces = fer.split("PrivateTest")[0][:40]
    np.save(tmp_path / "faces.npy", faces)
    files = []
    for i in range(4):
        files.append(str(tmp_path / f"face{i}.png"))
        Image.fromarray(faces[i]).resize((96, 96)).convert("RGB").save(files[-1])
    # the console script a user runs; the default model is the packaged bdnn4; the kernel compiles fresh
    r = run_in(bdnn, ["predict", *files, "--json"], BDNN_CACHE=tmp_path / "cache")
    assert "no C kernel" not in r.stderr and "Traceback" not in r.stderr
    got = [json.loads(line) for line in r.stdout.splitlines()]
    from bdnn.cli import main
    assert main(["predict", *files, "--json"]) == 0
    want = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(g["label"], g["scores"], g["crop_labels"], g["notes"]) for g in got] == \
        [(w["label"], w["scores"], w["crop_labels"], w["notes"]) for w in want]

    # the engine's integer accumulators and scores, bit for bit: C kernel, then numpy fallback (no compiler)
    from bdnn.artifact import load
    from bdnn.contract import default_model
    from bdnn.engine import Engine
    from bdnn.preprocess import five_crops
    e = Engine(load(default_model()))
    acc = e.accumulators(five_crops(faces).reshape(-1, 42, 42))
    (tmp_path / "engine.py").write_text(ENGINE)
    for label, n, env in (("C", 40, {"BDNN_CACHE": tmp_path / "cache"}),   # the numpy kernel is slow: 4 faces
                          ("numpy", 4, {"BDNN_CACHE": tmp_path / "cache2", "CC": tmp_path / "no-compiler"})):
        r = run_in(py, [tmp_path / "engine.py", tmp_path / "faces.npy", tmp_path / f"{label}.npz", n], **env)
        info = json.loads(r.stdout)
        assert info["heavy"] == [] and info["numpy"].startswith("1.")
        assert "site-packages/bdnn/models/bdnn4" in info["model"]
        assert info["kernel"].startswith(label), info["kernel"]
        if label == "numpy":
            assert "no C kernel" in r.stderr and "same results, slower" in r.stderr
        z = np.load(tmp_path / f"{label}.npz")
        assert np.array_equal(z["acc"], acc[:5 * n]), label
        assert np.array_equal(z["scores"], e.scores(acc)[:5 * n]), label


def test_installed_evaluate_and_results_run(board_venv, fer, tmp_path, capsys):
    py = board_venv[0]
    r = run_in(py, ["-m", "bdnn.cli", "evaluate", "--limit", "60", "--data", fer.source], BDNN_CACHE=tmp_path / "c")
    got = json.loads(r.stdout.strip().splitlines()[-1])
    from bdnn.cli import main
    assert main(["evaluate", "--limit", "60", "--data", str(fer.source)]) == 0
    want = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for k in ("n", "acc_center", "acc_fivecrop_mean", "acc_fivecrop_vote", "confusion_matrix"):
        assert got[k] == want[k], k
    r = run_in(py, ["-m", "bdnn.cli", "results"])
    card = json.loads((REPO / "models" / "bdnn4" / "card.json").read_text())
    assert f"| bdnn4 | 66.15 % | {100 * card['accuracy']['PrivateTest']['acc_fivecrop_mean']:.2f} %" in r.stdout


@pytest.mark.parametrize("argv,extra", [
    (["export", "--out", "x.onnx"], "train"),
    (["train", "--out", "run"], "train"),
    (["predict", "{img}", "--backend", "brevitas"], "train"),
    (["predict", "{img}", "--backend", "finn-sim"], "finn"),
    (["predict", "{img}", "--detect"], "demo"),
    (["live", "--camera", "0"], "demo"),
], ids=["export", "train", "brevitas", "finn-sim", "detect", "live"])
def test_installed_commands_name_the_extra_they_need(board_venv, tmp_path, argv, extra):
    img = tmp_path / "face.png"
    Image.fromarray(np.zeros((48, 48), np.uint8)).save(img)
    r = run_in(board_venv[0], ["-m", "bdnn.cli", *[a.format(img=img) for a in argv]], cwd=tmp_path, check=False,
               BDNN_CACHE=tmp_path / "c")
    assert r.returncode == 2, r.stderr
    assert f"pip install 'bdnn-fer[{extra}]'" in r.stderr and "Traceback" not in r.stderr
