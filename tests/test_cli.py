"""The `bdnn` command line: predict on odd, large and hostile images, evaluate's JSON line,
export, the backends' shared interface, errors by type, extras named when missing."""
import json
import struct
import sys
import zlib

import numpy as np
import pytest
from PIL import Image

from bdnn.cli import main
from bdnn.data import CLASS_NAMES
from conftest import REPO


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
    with pytest.raises(SystemExit) as e:
        main(["predict", str(good[0]), "--model", str(tiny_model), "--backend", "gpu"])
    assert e.value.code == 2 and "invalid choice: 'gpu'" in capsys.readouterr().err
    from bdnn.backends import BackendError, get_backend
    with pytest.raises(BackendError, match="unknown backend 'gpu'"):
        get_backend("gpu", tiny_model)


def png_header_only(path, width, height):
    """A PNG whose header claims width x height and whose pixel data is one tiny zlib stream:
    a few hundred bytes on disk (a decompression bomb's shape)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
                     + chunk(b"IEND", b""))
    return path


def test_large_and_hostile_images_get_a_per_file_error_and_the_batch_goes_on(tmp_path, tiny_model, capsys):
    """Untrusted images: hundreds of megapixels, a decompression bomb, a colour mode Pillow cannot
    convert, garbage after a valid header: each file gets its error (the limit stated), the rest run."""
    from bdnn.images import MAX_PIXELS
    good, _ = make_images(tmp_path)
    huge = png_header_only(tmp_path / "huge.png", 20_000, 20_000)           # 400 Mpixel
    bomb = png_header_only(tmp_path / "bomb.png", 60_000, 60_000)           # 3.6 Gpixel: Pillow's own bomb check
    just_over = png_header_only(tmp_path / "over.png", 8_001, 8_000)        # just over 64 Mpixel
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes((tmp_path / "rgb.png").read_bytes()[:60] + bytes(range(256)) * 8)
    lab = tmp_path / "lab.tif"
    Image.new("LAB", (64, 64)).save(lab)
    files = [str(good[0]), str(huge), str(bomb), str(good[1]), str(just_over), str(garbage), str(lab), str(good[2])]
    rc = main(["predict", *files, "--model", str(tiny_model), "--json"])
    cap = capsys.readouterr()
    assert rc == 1
    done = [json.loads(line)["image"] for line in cap.out.splitlines()]
    limit = f"limit of {MAX_PIXELS / 1e6:.0f} Mpixel"
    assert "huge.png: 20000x20000 is 400 Mpixel, over the " + limit in cap.err
    assert "bomb.png: 60000x60000" in cap.err and limit in cap.err
    assert "over.png: 8001x8000 is 64 Mpixel, over the" in cap.err
    assert "garbage.png: unreadable or truncated image" in cap.err
    assert "lab.tif: cannot convert its LAB pixels to grayscale" in cap.err
    assert done == [str(good[0]), str(good[1]), str(good[2])]
    assert "5 of 8 images could not be classified" in cap.err
    assert "Traceback" not in cap.err


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


def test_finn_sim_backend_agrees_with_brevitas(tmp_path, tiny_model, capsys, tiny_frontend):
    fe = tiny_frontend
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


def test_every_option_has_help_and_fixed_sets_have_choices():
    from bdnn.cli import build_parser
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    fixed = {"--backend": {"cpu", "brevitas", "finn-sim", "pynq"}, "--split": {"Training", "PublicTest", "PrivateTest"},
             "--arch": {"bdnn2", "bdnn3", "bdnn4", "bcnn4", "bdnn4-hw", "bdnn4-hw-gp", "teacher-vgg", "teacher-vgg-small",
                       "teacher-vgg-wide"}, "--loss": {"hinge", "sqhinge", "ce"},
             "--schedule": {"cosine", "onecycle", "constant"}, "--optimizer": {"adam", "sgd"},
             "--augment": {"fivecrop", "random"}, "--combine": {"mean", "vote"}}
    seen = set()
    for name, p in sub.choices.items():
        for act in p._actions:
            if not act.option_strings or act.dest == "help":
                continue
            assert act.help, f"bdnn {name} {act.option_strings[0]} has no help"
            flag = act.option_strings[-1]
            if flag in fixed:
                seen.add(flag)
                assert set(act.choices or ()) == fixed[flag], f"bdnn {name} {flag}"
    assert seen == set(fixed)


def test_errors_share_one_base_class():
    from bdnn.artifact import ArtifactError
    from bdnn.backends import BackendError
    from bdnn.data import DataError
    from bdnn.errors import BdnnError, MissingExtraError
    from bdnn.images import ImageError
    from bdnn.live import VideoError
    from bdnn.config import ConfigError
    from bdnn.perturb import PerturbError
    from bdnn.ship import ShipError
    from bdnn.teacher import TeacherError
    from bdnn.checkpoint import CheckpointError
    for cls in (ArtifactError, BackendError, DataError, ImageError, CheckpointError, MissingExtraError, VideoError,
                ConfigError, PerturbError, ShipError, TeacherError):
        assert issubclass(cls, BdnnError), cls


@pytest.mark.parametrize("argv,module,extra", [
    (["export", "--out", "x.onnx"], "torch", "train"),
    (["predict", "{img}", "--backend", "brevitas"], "torch", "train"),
    (["predict", "{img}", "--backend", "finn-sim"], "qonnx", "finn"),
    (["predict", "{img}", "--detect"], "cv2", "demo"),
    (["live", "--video", "{img}"], "cv2", "demo"),
    (["train", "--out", "{tmp}/run"], "torch", "train"),
], ids=["export", "brevitas", "finn-sim", "detect", "live", "train"])
def test_commands_name_the_missing_extra(tmp_path, tiny_model, capsys, monkeypatch, argv, module, extra):
    img = tmp_path / "face.png"
    Image.fromarray(np.zeros((48, 48), np.uint8)).save(img)
    import bdnn.faces
    bdnn.faces._cascade.cache_clear()
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    argv = [a.format(img=img, tmp=tmp_path) for a in argv]
    if argv[0] not in ("train",):
        argv += ["--model", str(tiny_model)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"needs {module}" in err and f"pip install 'bdnn-fer[{extra}]'" in err, err
    bdnn.faces._cascade.cache_clear()


def test_startup_imports_no_heavy_dependency():
    """The CLI and the on-board path import neither torch, FINN nor OpenCV."""
    import subprocess
    code = ("import sys; from bdnn.cli import build_parser; build_parser(); import bdnn.backends, bdnn.live, "
            "bdnn.contract, bdnn.predict, bdnn.images, bdnn.evaluate, bdnn.results; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'brevitas', 'finn', 'qonnx', 'onnx', "
            "'cv2', 'matplotlib', 'tqdm'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
