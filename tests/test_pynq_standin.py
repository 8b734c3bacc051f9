"""The pynq backend off the board, through finn-plus-driver's real code.

In the board-like venv (the wheel, numpy < 2, Pillow; finn-plus-driver on PYTHONPATH) the pynq
backend drives finn-plus-driver's ``FINNDMAOverlay`` over a stand-in for the board
(``tests/board_standin/pynq``): buffers, input folding and packing, the DMA register writes,
output unpacking and the external-weight streaming all run as on the board, with the I/O shapes,
datatypes and DDR weights of FINN's own driver files for a PYNQ-Z2 build of the tiny model with
fc1 in DDR. Only the transfers are simulated: the accelerator's outputs are the FINN HW graph's,
executed here for the same crops. The predictions must equal the cpu backend's.
"""
import json

import numpy as np
import pytest
from PIL import Image

import board_env
from bdnn import contract
from bdnn.preprocess import five_crops

SCRIPT = r'''
import json, sys
import numpy as np
from bdnn.backends import BackendError, get_backend
from bdnn.preprocess import five_crops
deploy, faces_file, other_model, out = sys.argv[1:5]
faces = np.load(faces_file)
cpu = get_backend("cpu", deploy)
runs = {}
for batch in (7, 50):
    b = get_backend("pynq", deploy=deploy, batch=batch)  # the model: the deployment folder's own
    for n in (9, 13, 1):  # 45, 65 and 5 crops: batches that do not divide evenly, and a short one
        crops = five_crops(faces[:n])
        s_p, s_c = b.crop_scores(crops), cpu.crop_scores(crops)
        runs[f"batch {batch}, {n} faces"] = {"pynq": s_p.argmax(-1).tolist(), "cpu": s_c.argmax(-1).tolist(),
                                            "max_diff": float(np.abs(s_p - s_c).max())}
try:
    get_backend("pynq", other_model, deploy=deploy)
    refused = None
except BackendError as e:
    refused = str(e)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "brevitas", "finn", "cv2"))
json.dump({"runs": runs, "model": str(b.model_path), "refused": refused, "heavy": heavy,
           "numpy": np.__version__}, open(out, "w"))
'''


@pytest.fixture(scope="module")
def golden(tmp_path_factory, fer, tiny_frontend):
    """13 PrivateTest faces and the FINN HW graph's outputs for their 65 crops."""
    from bdnn_hw.flow import exec_graph
    from qonnx.core.modelwrapper import ModelWrapper
    d = tmp_path_factory.mktemp("standin")
    faces = fer.split("PrivateTest")[0][100:113]
    crops = five_crops(faces).reshape(-1, 42, 42)
    hw = ModelWrapper(str(tiny_frontend.hw_graph))
    outputs = np.stack([exec_graph(hw, c[None, :, :, None]).reshape(-1) for c in crops])
    np.save(d / "faces.npy", faces)
    np.savez(d / "golden.npz", crops=crops, outputs=outputs)
    return d


def test_deployment_folder_holds_what_the_board_needs(tiny_deploy, tiny_model):
    names = {p.name for p in tiny_deploy.iterdir()}
    assert {contract.HOST_AFFINE_FILE, "model.npz", contract.REQUIREMENTS_FILE, contract.INSTALL_FILE,
            contract.NOTEBOOK_FILE, "data", "driver", "bitfile"} <= names
    affine = json.loads((tiny_deploy / contract.HOST_AFFINE_FILE).read_text())
    assert affine["model_sha256"] == contract.model_sha256(tiny_model) == contract.model_sha256(tiny_deploy)
    reqs = (tiny_deploy / contract.REQUIREMENTS_FILE).read_text()
    assert "finn-plus-driver==1.6.1" in reqs and "torch" not in reqs and "finn-plus\n" not in reqs
    assert "--backend pynq" in (tiny_deploy / contract.INSTALL_FILE).read_text()
    settings = json.loads((tiny_deploy / "driver" / "settings.json").read_text())["driver_information"]
    assert settings["external_weights"] and settings["io_shape_dict"]["number_of_external_weights"] == 1
    assert list((tiny_deploy / "driver" / "runtime_weights").glob("idma*.npy"))


def test_deploy_files_refuse_another_model(tmp_path, tiny_model):
    from bdnn.errors import BdnnError
    with pytest.raises(BdnnError, match="not the model the accelerator was built from"):
        contract.write_deploy_files(tmp_path / "d", tiny_model, [1.0] * 7, [0.0] * 7, "0" * 64)


def test_pynq_backend_through_finn_plus_driver_equals_cpu(board_venv, board_driver, tiny_deploy, tiny_model,
                                                          golden, tmp_path, capsys):
    py = board_venv[0]
    other = tmp_path / "other"
    other.mkdir()
    from bdnn.artifact import load, save
    art = load(tiny_model)
    art.layers["fc2"].weight[0, 0] *= -1
    save(other / "model.npz", art.spec, art.layers)
    (tmp_path / "run.py").write_text(SCRIPT)
    log = tmp_path / "accelerator.jsonl"
    env = dict(BDNN_STANDIN_GOLDEN=golden / "golden.npz", BDNN_STANDIN_LOG=log, BDNN_CACHE=tmp_path / "cache")
    path = (board_env.STANDIN, board_driver)
    board_env.run_in(py, [tmp_path / "run.py", tiny_deploy, golden / "faces.npy", other, tmp_path / "out.json"],
                     pythonpath=path, **env)
    r = json.loads((tmp_path / "out.json").read_text())
    assert r["numpy"].startswith("1.") and r["heavy"] == []
    assert r["model"] == str(tiny_deploy)
    for name, run in r["runs"].items():
        assert run["pynq"] == run["cpu"], name
        assert run["max_diff"] < 1e-4, name
    assert r["refused"] and "built from another model" in r["refused"]
    # every accelerator run streamed fc1's weights from DDR; batches of 7 left remainders
    runs = [json.loads(line) for line in log.read_text().splitlines()]
    assert all(x["external_weights"] == ["idma0"] for x in runs)
    assert [x["flush"] for x in runs].count(True) == 2   # the driver flushes once per overlay loaded
    runs = [x for x in runs if not x["flush"]]
    assert [x["crops"] for x in runs[:7]] == [7] * 6 + [3]            # batch 7, 45 crops
    assert sum(x["crops"] for x in runs) == 2 * 5 * (9 + 13 + 1)

    # the command line on the board: bdnn predict --backend pynq, deployment folder from $BDNN_DEPLOY
    faces = np.load(golden / "faces.npy")
    files = []
    for i in range(3):
        files.append(tmp_path / f"face{i}.png")
        Image.fromarray(faces[i]).save(files[-1])
    out = board_env.run_in(py, ["-m", "bdnn.cli", "predict", *files, "--backend", "pynq", "--json"],
                           pythonpath=path, BDNN_DEPLOY=tiny_deploy, **env).stdout
    got = [json.loads(line) for line in out.splitlines()]
    from bdnn.cli import main
    assert main(["predict", *map(str, files), "--model", str(tiny_model), "--json"]) == 0
    want = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [g["label"] for g in got] == [w["label"] for w in want]
    assert [g["crop_labels"] for g in got] == [w["crop_labels"] for w in want]
    assert all(g["backend"] == "pynq" for g in got)


def test_pynq_backend_picks_no_board_by_itself(tmp_path, monkeypatch, tiny_model):
    """Without --deploy, one built board's folder is used; with two, the user must choose."""
    from bdnn.backends import BackendError, resolve_deploy
    monkeypatch.delenv("BDNN_DEPLOY", raising=False)
    monkeypatch.setattr(contract, "build_root", lambda arch: tmp_path / "build" / arch)
    with pytest.raises(BackendError, match="no deployment folder"):
        resolve_deploy(None, tiny_model)
    for board in ("pynq-z2", "ultra96"):
        (tmp_path / "build" / "tiny" / board / "deploy" / "bitfile").mkdir(parents=True)
        (tmp_path / "build" / "tiny" / board / "deploy" / "bitfile" / "a.bit").write_bytes(b"")
        if board == "pynq-z2":
            assert resolve_deploy(None, tiny_model) == tmp_path / "build" / "tiny" / "pynq-z2" / "deploy"
    with pytest.raises(BackendError, match="several boards"):
        resolve_deploy(None, tiny_model)
    assert resolve_deploy(tmp_path / "x", tiny_model) == tmp_path / "x"
    monkeypatch.setenv("BDNN_DEPLOY", str(tmp_path / "y"))
    assert resolve_deploy(None, tiny_model) == tmp_path / "y"


REPLAY_SCRIPT = r'''
import json, sys
import numpy as np
from bdnn.backends import get_backend
from bdnn.preprocess import five_crops
deploy, faces_file, out = sys.argv[1:4]
faces = np.load(faces_file)
cpu = get_backend("cpu", deploy)
runs = {}
for batch in (7, 50):
    b = get_backend("pynq", deploy=deploy, batch=batch)
    crops = five_crops(faces[:13]).reshape(-1, 42, 42)
    for n in (65, 7, 1):  # whole batches of 5, then 7 and 1 crops (the last batch padded)
        s_p, s_c = b.crop_scores(crops[:n]), cpu.crop_scores(crops[:n])
        runs[f"batch {batch}, {n} crops"] = {"pynq": s_p.argmax(-1).tolist(), "cpu": s_c.argmax(-1).tolist(),
                                            "shape": list(s_p.shape), "max_diff": float(np.abs(s_p - s_c).max()),
                                            "chunk": b.batch}
json.dump({"runs": runs}, open(out, "w"))
'''


def test_replay_deploy_streams_the_units_matrix_once_per_batch(tiny_replay_deploy):
    """The replay unit's weight DMA: FINN's driver files list it as an external weight, its DDR
    buffer holds exactly the weight words the unit consumed in the stitched simulation (one pass
    over the matrix), and driver/replay_weights.json gives the host its batch."""
    from bdnn_hw.rtl import ops  # noqa: F401
    from bdnn_hw.rtl.replay import OP_TYPE, pack_weights
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp
    driver = tiny_replay_deploy / contract.DRIVER_DIR
    info = json.loads((driver / contract.REPLAY_WEIGHTS_FILE).read_text())
    settings = json.loads((driver / "settings.json").read_text())["driver_information"]
    assert info["batch"] == 5 and len(info["dmas"]) == 1
    (dma, d), = info["dmas"].items()
    assert settings["io_shape_dict"]["number_of_external_weights"] in (1, "1")
    assert dma in settings["io_shape_dict"]["external_weights_input_shapes"]
    folded = ModelWrapper(str(tiny_replay_deploy.parent / contract.FOLDED_GRAPH_FILE))
    node = next(n for n in folded.graph.node if n.op_type == OP_TYPE)
    assert d["layer"] == node.name and any(r.startswith("MVAU") for r in getCustomOp(node).get_nodeattr("replaced"))
    s = getCustomOp(node).shape()
    words = pack_weights(np.rint(folded.get_initializer(node.input[1])).astype(np.uint8).T, s)
    per_word = s.pe * s.simd // 8
    want = words.astype("<u4").view(np.uint8).reshape(len(words), -1)[:, :per_word]
    ddr = np.load(driver / contract.RUNTIME_WEIGHTS_DIR / f"{dma}.npy").reshape(len(words), per_word)
    assert d["words"] == len(words)
    np.testing.assert_array_equal(ddr, want)


def test_pynq_backend_sends_whole_replay_batches_and_runs_the_weight_dma_once_per_batch(
        board_venv, board_driver, tiny_replay_deploy, golden, tmp_path):
    py = board_venv[0]
    (tmp_path / "run.py").write_text(REPLAY_SCRIPT)
    log = tmp_path / "accelerator.jsonl"
    env = dict(BDNN_STANDIN_GOLDEN=golden / "golden.npz", BDNN_STANDIN_LOG=log, BDNN_CACHE=tmp_path / "cache")
    board_env.run_in(py, [tmp_path / "run.py", tiny_replay_deploy, golden / "faces.npy", tmp_path / "out.json"],
                     pythonpath=(board_env.STANDIN, board_driver), **env)
    r = json.loads((tmp_path / "out.json").read_text())
    for name, run in r["runs"].items():
        assert run["pynq"] == run["cpu"] and run["max_diff"] < 1e-4, name
        assert run["shape"][0] == int(name.split(", ")[1].split()[0]) and run["chunk"] % 5 == 0, name
    runs = [json.loads(line) for line in log.read_text().splitlines()]
    assert runs and all(x["crops"] % 5 == 0 for x in runs)
    assert all(x["replay_weight_runs"] == {k: x["crops"] // 5 for k in x["replay_weight_runs"]} and x["replay_weight_runs"]
               for x in runs)
    # batch 7 becomes 10 crops per run; 7 crops go as one padded run of 10
    assert [x["crops"] for x in runs if not x["flush"]][:8] == [10] * 6 + [5, 10]
