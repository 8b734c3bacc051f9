"""The `bdnn` command line: predict on odd images, evaluate's JSON line, export."""
import json

import numpy as np
import pytest
from PIL import Image

from bdnn.arch import ArchSpec
from bdnn.cli import main
from bdnn.data import CLASS_NAMES
from bdnn.nn import save_artifact
from conftest import REPO, calibrated_model


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, private_crops):
    d = tmp_path_factory.mktemp("tiny_cli_model")
    save_artifact(calibrated_model(ArchSpec("tiny", (8, 16), fc_hidden=(32,)), private_crops[0][:300]), d / "model.npz")
    return d


def make_images(d):
    rng = np.random.default_rng(0)
    good = {
        "rgb.png": Image.fromarray(rng.integers(0, 256, (64, 80, 3), dtype=np.uint8), "RGB"),
        "rgba.png": Image.fromarray(rng.integers(0, 256, (48, 48, 4), dtype=np.uint8), "RGBA"),
        "gray16.png": Image.fromarray(rng.integers(0, 65536, (96, 96), dtype=np.uint16)),
        "gray.jpg": Image.fromarray(rng.integers(0, 256, (48, 48), dtype=np.uint8), "L"),
    }
    for name, im in good.items():
        im.save(d / name)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(d / "tiny.png")
    (d / "truncated.png").write_bytes((d / "rgb.png").read_bytes()[:200])
    (d / "notes.txt").write_text("not an image")
    (d / "empty.png").write_bytes(b"")
    return [d / n for n in good], [d / n for n in ("tiny.png", "truncated.png", "notes.txt", "empty.png")]


def test_predict_classifies_good_images_and_reports_bad_ones(tmp_path, tiny_model, capsys):
    good, bad = make_images(tmp_path)
    files = [str(p) for pair in zip(good, bad) for p in pair]   # bad ones interleaved: the batch goes on
    assert main(["predict", *files, "--model", str(tiny_model), "--json"]) == 1
    cap = capsys.readouterr()
    results = [json.loads(line) for line in cap.out.splitlines()]
    assert [r["image"] for r in results] == [str(p) for p in good]
    for r in results:
        assert r["label"] in CLASS_NAMES and set(r["scores"]) == set(CLASS_NAMES) and len(r["crop_labels"]) == 5
    notes = {r["image"].rsplit("/", 1)[-1]: " ".join(r["notes"]) for r in results}
    assert "grayscale" in notes["rgb.png"] and "resized 80x64" in notes["rgb.png"]
    assert "alpha" in notes["rgba.png"] and "8 bits" in notes["gray16.png"] and notes["gray.jpg"] == ""
    err = cap.err
    assert "tiny.png: 4x4 is too small" in err
    assert "truncated.png: unreadable or truncated" in err
    assert "notes.txt: not an image file" in err
    assert "empty.png: empty file" in err
    assert "4 of 8 images could not be classified" in err


def test_predict_vote_and_text_output(tmp_path, tiny_model, capsys):
    good, _ = make_images(tmp_path)
    assert main(["predict", str(good[0]), "--model", str(tiny_model), "--vote"]) == 0
    out = capsys.readouterr().out
    assert "majority vote of 5 crops" in out and "note:" in out


def test_unknown_backend_is_a_clear_error(tmp_path, tiny_model, capsys):
    good, _ = make_images(tmp_path)
    assert main(["predict", str(good[0]), "--model", str(tiny_model), "--backend", "gpu"]) == 2
    assert "unknown backend 'gpu'" in capsys.readouterr().err


def test_finn_sim_without_a_built_graph_says_how_to_build_it(tmp_path, tiny_model, capsys):
    good, _ = make_images(tmp_path)
    rc = main(["predict", str(good[0]), "--model", str(tiny_model), "--backend", "finn-sim",
               "--hw-graph", str(tmp_path / "missing.onnx")])
    assert rc == 2 and "build_scripts/build_tiny.py" in capsys.readouterr().err


def test_evaluate_prints_the_json_line(tiny_model, capsys, fer, tmp_path):
    assert main(["evaluate", "--model", str(tiny_model), "--split", "PrivateTest", "--limit", "40",
                 "--confusion-png", str(tmp_path / "cm.png")]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"model", "split", "n", "acc_center", "acc_fivecrop_mean", "acc_fivecrop_vote"} <= set(last)
    assert last["n"] == 40 and last["split"] == "PrivateTest" and (tmp_path / "cm.png").stat().st_size > 0


def test_export_writes_qonnx(tiny_model, tmp_path, capsys):
    assert main(["export", "--model", str(tiny_model), "--out", str(tmp_path / "m.onnx")]) == 0
    from qonnx.core.modelwrapper import ModelWrapper
    m = ModelWrapper(str(tmp_path / "m.onnx"))
    assert str(m.get_tensor_datatype(m.graph.input[0].name)) == "UINT8"
    assert any(n.op_type == "BipolarQuant" for n in m.graph.node)


def test_finn_sim_backend_agrees_with_brevitas(tmp_path, tiny_model, capsys, finn_build_dir):
    from bdnn_hw.flow import run_frontend
    fe = run_frontend(tiny_model, tmp_path / "fe", progress=False)
    capsys.readouterr()  # the front end's own chatter
    good, _ = make_images(tmp_path)
    outs = {}
    for backend in ("brevitas", "finn-sim"):
        assert main(["predict", *map(str, good), "--model", str(tiny_model), "--backend", backend,
                     "--hw-graph", str(fe.hw_graph), "--json"]) == 0
        outs[backend] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    for a, b in zip(outs["brevitas"], outs["finn-sim"]):
        assert a["label"] == b["label"] and a["crop_labels"] == b["crop_labels"]
        assert max(abs(a["scores"][c] - b["scores"][c]) for c in CLASS_NAMES) < 1e-3
    # a graph built from another model is refused
    other = tmp_path / "other"
    other.mkdir()
    (other / "model.npz").write_bytes((tiny_model / "model.npz").read_bytes())
    from bdnn.artifact import load, save
    art = load(other)
    art.layers["fc2"].weight[0, 0] *= -1
    save(other / "model.npz", art.spec, art.layers)
    assert main(["predict", str(good[0]), "--model", str(other), "--backend", "finn-sim",
                 "--hw-graph", str(fe.hw_graph)]) == 2
    assert "built from another model" in capsys.readouterr().err


def test_detect_faces_in_a_photo_writes_an_annotated_png(tmp_path, tiny_model, capsys):
    photo = REPO / "notebooks" / "data" / "astronaut.jpg"
    blank = tmp_path / "wall.png"
    Image.fromarray(np.full((200, 300, 3), 128, np.uint8)).save(blank)
    rc = main(["predict", str(blank), str(photo), "--model", str(tiny_model), "--detect", "--out-dir", str(tmp_path), "--json"])
    cap = capsys.readouterr()
    assert rc == 1 and "wall.png: no face detected" in cap.err
    faces = [json.loads(line) for line in cap.out.splitlines()]
    assert len(faces) == 1 and faces[0]["label"] in CLASS_NAMES
    x, y, w, h = faces[0]["box"]
    assert 150 < x < 200 and 40 < y < 90 and w > 60           # the astronaut's face
    png = tmp_path / "astronaut.annotated.png"
    assert Image.open(png).size == (512, 512)


def test_pynq_backend_off_the_board_is_a_clear_error(tiny_model, capsys):
    from bdnn.backends import BACKENDS
    assert set(BACKENDS) == {"cpu", "brevitas", "finn-sim", "pynq"}
    assert main(["evaluate", "--model", str(tiny_model), "--backend", "pynq", "--limit", "2"]) == 2
    assert "runs on a PYNQ board" in capsys.readouterr().err


def test_throughput_reports_where_the_time_goes(tiny_model, capsys, fer):
    assert main(["throughput", "--model", str(tiny_model), "--faces", "40"]) == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert r["faces"] == 40 and r["faces_per_s"] > 0 and set(r["seconds"]) == {"preprocess", "compute", "combine"}


@pytest.mark.parametrize("backend", ["cpu", "brevitas"])
def test_backends_share_one_interface(tiny_model, private_crops, backend):
    from bdnn.backends import get_backend
    crops, _ = private_crops
    b = get_backend(backend, tiny_model)
    s = b.crop_scores(crops[:10].reshape(2, 5, 42, 42))
    assert s.shape == (2, 5, 7)
    ref = get_backend("brevitas", tiny_model).crop_scores(crops[:10])
    assert np.abs(s.reshape(10, 7) - ref).max() < 1e-4
