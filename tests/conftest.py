"""Shared fixtures: the real FER2013 (from ../shared), the tiny calibrated model every test
shares, its FINN front end and PYNQ-Z2 deployment folder, a FINN build dir, and a board-like
venv (the wheel with numpy < 2 and Pillow only). Nothing here writes into the source tree."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def need(ok: bool, reason: str) -> None:
    """A precondition of a test: CI must have it (fail there); elsewhere skip with the reason."""
    if not ok:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def fer():
    """The shared FER2013. CI must have it (fail there); elsewhere skip with the reason."""
    from bdnn.data import DataError, load_fer2013
    try:
        return load_fer2013()
    except DataError as e:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"FER2013 not available: {e}")


@pytest.fixture(scope="session")
def private_crops(fer):
    """Five crops of the first PrivateTest faces, uint8 (N*5, 42, 42), with their face labels."""
    from bdnn.preprocess import five_crops
    faces, labels = fer.split("PrivateTest")
    return five_crops(faces[:64]).reshape(-1, 42, 42), labels[:64]


def calibrated_model(spec, crops: np.ndarray, seed: int = 0):
    """Random +-1 weights with BatchNorm statistics measured on real crops.

    Random BN statistics saturate every sign and make all inputs look alike; calibrated ones give
    the diverse activations a bit-exactness test needs.
    """
    import torch
    from bdnn.nn import BDNN
    torch.manual_seed(seed)
    model = BDNN(spec)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.momentum = None  # cumulative average over the calibration batch
                m.weight.uniform_(0.5, 1.5).mul_(torch.where(torch.rand_like(m.weight) < 0.2, -1.0, 1.0))
                m.bias.uniform_(-0.3, 0.3)
        model.train()
        model(torch.from_numpy(crops[:, None].astype(np.float32)))
    return model.eval()


@pytest.fixture(scope="session")
def finn_build_dir(tmp_path_factory):
    from bdnn_hw import finn_env
    d = tmp_path_factory.mktemp("finn_build")
    finn_env.ensure_finn(d)
    return d


@pytest.fixture(scope="session")
def shipped_frontend(tmp_path_factory, finn_build_dir):
    from bdnn_hw.flow import run_frontend
    model = REPO / "models" / "bdnn4"
    if not (model / "model.npz").exists():
        pytest.fail("models/bdnn4/model.npz is missing: the project must ship a trained BDNN4")
    return run_frontend(model, tmp_path_factory.mktemp("bdnn4_frontend"), progress=False)


def tiny_spec():
    from bdnn.arch import ArchSpec
    return ArchSpec("tiny", (8, 16), fc_hidden=(32,))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, private_crops):
    """The tiny dense BDNN (2 blocks of 8/16 channels, FC 32) calibrated on real crops: model folder."""
    from bdnn.nn import save_artifact
    d = tmp_path_factory.mktemp("tiny_model")
    save_artifact(calibrated_model(tiny_spec(), private_crops[0][:300]), d / "model.npz")
    return d


@pytest.fixture(scope="session")
def tiny_frontend(tmp_path_factory, tiny_model, finn_build_dir):
    """The tiny model through the FINN front end (QONNX -> HW-layer graph)."""
    from bdnn_hw.flow import run_frontend
    return run_frontend(tiny_model, tmp_path_factory.mktemp("tiny_frontend"), progress=False)


# fc1's weights streamed from DDR, as the PYNQ-Z2 builds do for the big FC layers (SIMD*PE a
# multiple of 8 bits: finn-plus 1.6.1's to_external_tensor fails on narrower weight streams)
EXTERNAL_FC1 = {"fc1/mvau": {"mem_mode": "external", "SIMD": 64, "PE": 2}}


def finn_pynq_driver(folded_graph: Path, board, work: Path) -> Path:
    """FINN's PYNQ driver files (settings.json, runtime_weights/) for a folded HW graph, made as
    the Vivado flow makes them (ZynqBuild's preparation, then MakePYNQDriver) minus the IP and
    bitfile: the DMA instance names, which Vivado's block design assigns, are set as
    MakeZYNQProject sets them (idma<i> for partitions without a producer, odma<j> without a
    consumer). Returns the driver folder."""
    from finn.transformation.fpgadataflow.create_dataflow_partition import CreateDataflowPartition
    from finn.transformation.fpgadataflow.floorplan import Floorplan
    from finn.transformation.fpgadataflow.insert_dwc import InsertDWC
    from finn.transformation.fpgadataflow.insert_iodma import InsertIODMA
    from finn.transformation.fpgadataflow.make_driver import MakePYNQDriver
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp
    from qonnx.transformation.general import GiveReadableTensorNames, GiveUniqueNodeNames
    from qonnx.transformation.infer_data_layouts import InferDataLayouts
    from bdnn_hw.rtl.replay_driver import InsertReplayWeightDMA, write_replay_info
    m = ModelWrapper(str(folded_graph)).transform(InferDataLayouts())
    for trn in (InsertReplayWeightDMA(board.axi_port_width), InsertIODMA(board.axi_port_width), InsertDWC(), SpecializeLayers(board.fpga_part), Floorplan(),
                CreateDataflowPartition(partition_model_dir=str(work / "partitions"))):
        m = m.transform(trn).transform(GiveUniqueNodeNames()).transform(GiveReadableTensorNames())
    idma = odma = 0
    for node in m.graph.node:
        producer = m.find_producer(node.input[0]) if node.input else None
        if producer is None:
            name, idma = f"idma{idma}", idma + 1
        elif not m.find_consumers(node.output[0]):
            name, odma = f"odma{odma}", odma + 1
        else:
            name = node.name
        getCustomOp(node).set_nodeattr("instance_name", name)
    m = m.transform(MakePYNQDriver("zynq-iodma", "FINNDMAOverlay", clk_period_ns=board.clk_period_ns))
    write_replay_info(m, Path(m.get_metadata_prop("pynq_driver_dir")))  # the build's step_write_replay_info
    return Path(m.get_metadata_prop("pynq_driver_dir"))


@pytest.fixture(scope="session")
def tiny_deploy(tmp_path_factory, tiny_model, tiny_frontend):
    """The tiny model's PYNQ-Z2 deployment folder: bdnn's files (contract.write_deploy_files), FINN's
    driver settings and external weights for a build with fc1 in DDR, and a stand-in bitfile."""
    return _tiny_deploy(tmp_path_factory.mktemp("tiny_build"), tiny_model, tiny_frontend, replay_batch=0)


def _tiny_deploy(build, tiny_model, tiny_frontend, replay_batch: int):
    import shutil

    from bdnn import contract
    from bdnn_hw.boards import get_board
    from bdnn_hw.flow import run_estimates
    from qonnx.core.modelwrapper import ModelWrapper
    board = get_board("pynq-z2")
    run_estimates(tiny_frontend.hw_graph, board, build / board.key, None, EXTERNAL_FC1, tiny_spec().layer_names(),
                  progress=False, replay_batch=replay_batch)
    driver = finn_pynq_driver(build / board.key / contract.FOLDED_GRAPH_FILE, board, build / "driver_work")
    hw = ModelWrapper(str(tiny_frontend.hw_graph))
    scale, bias = contract.parse_host_affine(hw.get_metadata_prop(contract.HOST_AFFINE_KEY))
    deploy = contract.deploy_path(build, board.key)
    contract.write_deploy_files(deploy, tiny_model, scale, bias, hw.get_metadata_prop(contract.MODEL_SHA_KEY),
                                arch="tiny", board=board.key)
    shutil.copytree(driver, deploy / contract.DRIVER_DIR)
    (deploy / "bitfile").mkdir()
    (deploy / "bitfile" / "finn-accel.bit").write_bytes(b"stand-in: no Vivado here")
    return deploy


@pytest.fixture(scope="session")
def tiny_replay_deploy(tmp_path_factory, tiny_model, tiny_frontend):
    """The same deployment with fc1 as a weight-replaying unit of 5 crops (the PYNQ-Z2 default):
    its weight DMA runs once per batch (driver/replay_weights.json)."""
    return _tiny_deploy(tmp_path_factory.mktemp("tiny_replay_build"), tiny_model, tiny_frontend, replay_batch=5)


@pytest.fixture(scope="session")
def board_venv(tmp_path_factory):
    """(python, seconds to install) of a fresh venv holding the wheel with numpy < 2 and Pillow only."""
    import board_env
    work = tmp_path_factory.mktemp("board_venv")
    try:
        wheel = board_env.build_wheel(work)
        py, seconds = board_env.make_board_venv(work, wheel)
    except RuntimeError as e:  # no package registry reachable, typically
        need(False, f"could not build the board venv: {e}")
    print(f"\nboard venv: wheel {wheel.name} ({wheel.stat().st_size / 1e6:.1f} MB) + numpy<2 + Pillow installed in {seconds:.1f} s")
    return py, seconds, wheel


@pytest.fixture(scope="session")
def board_driver(board_venv, tmp_path_factory):
    """A folder with finn-plus-driver and its imports for the board venv (for PYTHONPATH only)."""
    import board_env
    target = tmp_path_factory.mktemp("board_driver")
    try:
        seconds = board_env.install_driver(board_venv[0], target)
    except RuntimeError as e:
        need(False, f"could not install finn-plus-driver for the board venv: {e}")
    print(f"\nfinn-plus-driver + its imports installed for the board venv in {seconds:.1f} s")
    return target


def codegen_small_dense(d: Path, crops: np.ndarray, final_pool: int, external: tuple[str, ...] = ()):
    """A small dense BDNN (blocks of 8/16 channels, FC 32) calibrated on real crops, through the
    front end, the PYNQ-Z2 folding and FINN's code generation: weights in memstreams (block1.conv1
    in LUTRAM), the layers named in ``external`` streamed as from DDR. (frontend, codegen model, board)"""
    import finn.builder.build_dataflow_steps as finn_steps
    from qonnx.core.modelwrapper import ModelWrapper
    from bdnn.arch import ArchSpec
    from bdnn.nn import save_artifact
    from bdnn_hw.boards import get_board
    from bdnn_hw.flow import make_cfg, run_estimates, run_frontend
    spec = ArchSpec("tiny-dense", (8, 16), dense=True, fc_hidden=(32,), final_pool=final_pool)
    save_artifact(calibrated_model(spec, crops[:300]), d / "model.npz")
    fe = run_frontend(d, d / "frontend", progress=False)
    names = [n for n, *_ in spec.conv_layers()] + [n for n, *_ in spec.fc_layers()]
    cfg = {f"{n}/mvau": {"mem_mode": "external" if n in external else "internal_decoupled"} for n in names}
    cfg["block1.conv1/mvau"]["ram_style"] = "distributed"
    board = get_board("pynq-z2")
    run_estimates(fe.hw_graph, board, d / "hw", 300, cfg, names, progress=False)
    model = finn_steps.step_hw_codegen(ModelWrapper(str(d / "hw" / "folded_hw_graph.onnx")), make_cfg(d / "hw", board))
    return fe, model, board
