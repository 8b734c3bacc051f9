"""The contract between ``bdnn`` (sw/) and ``bdnn_hw`` (hw/), defined once.

What the board build writes and what the host side reads must agree: the graph metadata keys,
the build folder layout, where a model folder keeps its artifact, how files are hashed, the
host-side classifier affine and what a deployment folder holds. Both sides import these names
from here (``hw/`` may import ``bdnn``; ``sw/`` never imports ``hw/``). numpy only.

Build layout (``build/<arch>/`` by default)::

    build/<arch>/frontend/dataflow_partition.onnx     FINN's HW-layer graph (finn-sim backend)
    build/<arch>/<board>/folded_hw_graph.onnx         folded for that board
    build/<arch>/<board>/summary.json                 resources, estimates, bit-exact counts
    build/<arch>/<board>/deploy/                      everything the board needs:
        host_affine.json      classifier affine {"scale", "bias", "model_sha256"}
        model.npz card.json README.md                 the model the bitfile was built from
        requirements.txt INSTALL.md                   how to install the host side on the board
        bdnn_demo.ipynb data/                         the demo notebook (runs from this folder)
        bitfile/*.bit *.hwh   driver/settings.json driver/runtime_weights/   (where Vivado ran)
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

from .errors import BdnnError

# -- graph metadata (set by hw/ on every FINN graph it saves) ---------------------------------
MODEL_SHA_KEY = "bdnn_model_sha256"     # sha256 of the model.npz the graph was built from
HOST_AFFINE_KEY = "bdnn_host_affine"    # JSON {"scale": [...], "bias": [...]}: score = popcount*scale + bias

# -- training run folders (bdnn train; scripts/train_all_gpu.py) -----------------------------
RUN_WORKER_FILE = "worker.json"          # a --parallel worker's record: device, fitted epochs, seconds
CPU_TRAIN_DEVICE = "2 CPU cores"         # a card's train_device when no worker recorded another
START_CARD_FILE = "start_card.json"     # the card of the shipped folder a run started from, as it was then

# -- model folders ---------------------------------------------------------------------------
MODEL_FILE = "model.npz"
MODEL_CARD_FILE = "card.json"
MODEL_FILES = (MODEL_FILE, MODEL_CARD_FILE, "README.md")   # what a shipped model folder holds for a host
DEFAULT_ARCH = "bdnn4"

# -- build layout ----------------------------------------------------------------------------
BUILD_DIR = "build"
HW_EVIDENCE_DIR = "docs/hw_evidence"  # verified-design records (scripts/copy_hw_evidence.py), one JSON per design
FRONTEND_DIR = "frontend"
HW_GRAPH_STAGE = "dataflow_partition"   # the front-end stage whose graph is the HW-layer graph
FOLDED_GRAPH_FILE = "folded_hw_graph.onnx"
SUMMARY_FILE = "summary.json"
FOLDING_SEARCH_FILE = "folding_search.json"  # one row per folding the search tried: target, rate, whole-design LUT/BRAM, fit
FOLDING_SEARCH_PLOT = "folding_search.png"
FIFO_DEPTHS_FILE = "fifo_depths.json"   # FIFO depths sized by the stitched simulation: finn-plus's fifo_config_file
DEPLOY_DIR = "deploy"
HOST_AFFINE_FILE = "host_affine.json"
DRIVER_DIR = "driver"                   # FINN's deployment package: driver/settings.json, bitfile/*.bit
DRIVER_SETTINGS_FILE = "settings.json"
RUNTIME_WEIGHTS_DIR = "runtime_weights"
# beside settings.json when layers run as weight-replaying units (hw/rtl/replay_driver.py):
# {"batch": B, "dmas": {weight DMA: {"batch", "layer", "words"}}}; the host sends whole batches of B
# crops and runs each of those DMAs once per batch (FINN's driver would run them once per pixel)
REPLAY_WEIGHTS_FILE = "replay_weights.json"
BITFILE_GLOB = "**/*.bit"
REQUIREMENTS_FILE = "requirements.txt"
INSTALL_FILE = "INSTALL.md"
NOTEBOOK_FILE = "bdnn_demo.ipynb"
# what the board's Python environment needs besides bdnn-fer itself (a PYNQ image has pynq)
BOARD_REQUIREMENTS = ("numpy", "pillow", "finn-plus-driver==1.6.1")


def source_root() -> Path | None:
    """The source checkout this package runs from (editable install), or None when installed."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() and (root / "sw" / "bdnn").is_dir() else None


def build_root(arch: str) -> Path:
    """``build/<arch>`` of the source checkout (of the working directory when installed)."""
    return (source_root() or Path.cwd()) / BUILD_DIR / arch


def hw_graph_path(build: Path) -> Path:
    return Path(build) / FRONTEND_DIR / f"{HW_GRAPH_STAGE}.onnx"


def deploy_path(build: Path, board: str) -> Path:
    return Path(build) / board / DEPLOY_DIR


def find_deploy_dirs(arch: str) -> list[Path]:
    """Every board's deployment folder of ``build/<arch>`` that holds a bitfile."""
    root = build_root(arch)
    return sorted(d for d in root.glob(f"*/{DEPLOY_DIR}") if any(d.glob(BITFILE_GLOB)))


def is_deploy_dir(path: Path) -> bool:
    return Path(path).is_dir() and (Path(path) / HOST_AFFINE_FILE).is_file()


# -- models ----------------------------------------------------------------------------------
def model_file(path: str | Path) -> Path:
    """A model folder (or a deployment folder) -> its ``model.npz``; a file stays as it is."""
    path = Path(path)
    return path / MODEL_FILE if path.is_dir() else path


def default_model() -> Path:
    """The model used when none is given: ``$BDNN_MODEL``, else the shipped BDNN4 (the source
    checkout's ``models/bdnn4``, or the copy packaged with an installed bdnn-fer)."""
    if os.environ.get("BDNN_MODEL"):
        return Path(os.environ["BDNN_MODEL"])
    root = source_root()
    candidates = ([root / "models" / DEFAULT_ARCH] if root else []) + [Path(__file__).parent / "models" / DEFAULT_ARCH]
    for c in candidates:
        if (c / MODEL_FILE).is_file():
            return c
    return candidates[0]


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def model_sha256(model: str | Path) -> str:
    return file_sha256(model_file(model))


# -- the classifier affine, applied on the host -----------------------------------------------
def host_affine_dict(scale, bias, model_sha: str | None = None) -> dict:
    d = {"scale": np.asarray(scale, dtype=np.float64).tolist(), "bias": np.asarray(bias, dtype=np.float64).tolist()}
    if model_sha is not None:
        d["model_sha256"] = model_sha
    return d


def parse_host_affine(data, where: str = "host affine") -> tuple[np.ndarray, np.ndarray]:
    """JSON text or dict -> (scale, bias) float64 vectors of equal length."""
    try:
        d = json.loads(data) if isinstance(data, (str, bytes)) else dict(data)
        scale, bias = np.asarray(d["scale"], dtype=np.float64), np.asarray(d["bias"], dtype=np.float64)
    except (TypeError, ValueError, KeyError) as e:
        raise BdnnError(f"{where}: not a host affine ({e})") from None
    if scale.ndim != 1 or scale.shape != bias.shape:
        raise BdnnError(f"{where}: scale and bias must be vectors of one length, got {scale.shape} and {bias.shape}")
    return scale, bias


def apply_host_affine(popcounts, scale: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """The accelerator's integer classifier outputs (N, classes) -> class scores (float64)."""
    pop = np.asarray(popcounts, dtype=np.float64)
    return pop.reshape(len(pop), -1) * scale + bias


def read_deploy_affine(deploy: str | Path) -> tuple[np.ndarray, np.ndarray, str | None]:
    """(scale, bias, model sha256) from a deployment folder's ``host_affine.json``."""
    path = Path(deploy) / HOST_AFFINE_FILE
    if not path.is_file():
        raise BdnnError(f"{deploy}: no {HOST_AFFINE_FILE} here (not a deployment folder of the board build)")
    text = path.read_text()
    scale, bias = parse_host_affine(text, str(path))
    return scale, bias, json.loads(text).get("model_sha256")


# -- the deployment folder ---------------------------------------------------------------------
def _install_text(arch: str, board: str | None) -> str:
    on = f" on the {board}" if board else ""
    return f"""# Installing the {arch} accelerator{on}

This folder is everything the board needs: the bitfile and driver settings (`bitfile/`, `driver/`,
present where Vivado ran), the model the bitfile was built from (`model.npz`, `card.json`), the
classifier's affine applied on the host (`{HOST_AFFINE_FILE}`) and the demo notebook.

1. Copy this folder to the board, e.g. `scp -r deploy xilinx@pynq:~/bdnn`.
2. On the board, in the PYNQ Python environment (numpy and Pillow are already there; no torch,
   no FINN compiler): `pip install bdnn-fer` (or the wheel: `pip install bdnn_fer-*.whl`),
   then `pip install -r {REQUIREMENTS_FILE}`.
3. Classify: `bdnn predict face.png --backend pynq --deploy ~/bdnn`
   (`BDNN_DEPLOY=~/bdnn` saves the flag; the model defaults to this folder's `model.npz`).
   Live, from a USB camera: `bdnn live --camera 0 --backend pynq --deploy ~/bdnn --out live.mp4`.
4. Or open `{NOTEBOOK_FILE}` from this folder in the board's Jupyter.

`bdnn predict --backend cpu` runs the same model without the accelerator (same results).
"""


def write_deploy_files(deploy: str | Path, model: str | Path, scale, bias, model_sha: str,
                       arch: str | None = None, board: str | None = None) -> list[Path]:
    """Write what the board's host side needs next to FINN's bitfile + driver.

    ``model`` is the model folder (or model.npz) the accelerator was built from, ``scale``/``bias``
    the graph's host affine and ``model_sha`` the sha256 recorded in the graph (it must be the
    model's: a deployment folder never pairs a bitfile with another model).
    """
    deploy = Path(deploy)
    src = model_file(model)
    if file_sha256(src) != model_sha:
        raise BdnnError(f"{src} is not the model the accelerator was built from (sha256 differs); rebuild")
    deploy.mkdir(parents=True, exist_ok=True)
    written = []

    def put(name: str, text: str):
        tmp = deploy / (name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, deploy / name)
        written.append(deploy / name)

    put(HOST_AFFINE_FILE, json.dumps(host_affine_dict(scale, bias, model_sha), indent=2))
    for name in MODEL_FILES:
        if (src.parent / name).is_file():
            shutil.copyfile(src.parent / name, deploy / name)
            written.append(deploy / name)
    put(REQUIREMENTS_FILE, "# the board's host side, besides bdnn-fer itself (pip install -r requirements.txt)\n"
        + "\n".join(BOARD_REQUIREMENTS) + "\n")
    put(INSTALL_FILE, _install_text(arch or "model", board))
    root = source_root()
    if root and (root / "notebooks" / NOTEBOOK_FILE).is_file():
        shutil.copyfile(root / "notebooks" / NOTEBOOK_FILE, deploy / NOTEBOOK_FILE)
        written.append(deploy / NOTEBOOK_FILE)
        if (root / "notebooks" / "data").is_dir():
            shutil.copytree(root / "notebooks" / "data", deploy / "data", dirs_exist_ok=True)
            written.append(deploy / "data")
    return written
