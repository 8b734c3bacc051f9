"""A board-like Python environment for tests: the wheel installed into a fresh venv with
numpy < 2 and Pillow only (a PYNQ image without torch or FINN), plus, in a separate folder put on
PYTHONPATH only where needed, finn-plus-driver and what it imports. Nothing is written into the
source tree: the wheel is built from a copy of the sources.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STANDIN = Path(__file__).resolve().parent / "board_standin"
BOARD_NUMPY = "numpy<2"
DRIVER = "finn-plus-driver==1.6.1"
# what finn-plus-driver's DMA overlay imports (its package __init__ pulls in every overlay):
# qonnx's datatypes (qonnx itself without its compiler-side requirements), bitstring, onnx, matplotlib
DRIVER_NO_DEPS = (DRIVER, "qonnx==1.0.0")
DRIVER_DEPS = ("bitstring", "onnx", "matplotlib", BOARD_NUMPY)


def _run(cmd, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if r.returncode:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}")
    return r


def build_wheel(work: Path) -> Path:
    """The project's wheel, built from a copy of what the sdist would hold (pip builds in-tree)."""
    src = work / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    src.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for name in ("sw", "hw"):
        shutil.copytree(REPO / name, src / name, ignore=ignore)
    (src / "models" / "bdnn4").mkdir(parents=True)
    for name in ("model.npz", "card.json"):
        shutil.copy(REPO / "models" / "bdnn4" / name, src / "models" / "bdnn4" / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", work / "dist", src])
    return next((work / "dist").glob("bdnn_fer-*.whl"))


def clean_env(**extra) -> dict:
    """The environment for commands in the board venv: nothing of the project's venv leaks in."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # no __pycache__ next to tests/board_standin
    env.update({k: str(v) for k, v in extra.items()})
    return env


def board_python() -> str:
    """The board venv's interpreter: ``$BDNN_BOARD_PYTHON``, else Python 3.10 (what PYNQ 3.x images
    run) when installed, else this one."""
    if os.environ.get("BDNN_BOARD_PYTHON"):
        return os.environ["BDNN_BOARD_PYTHON"]
    for name in ("python3.10",):
        found = shutil.which(name)
        if found and subprocess.run([found, "-c", "import venv, ensurepip"], capture_output=True).returncode == 0:
            return found
    return sys.executable


def make_board_venv(work: Path, wheel: Path) -> tuple[Path, float]:
    """A fresh venv with the wheel, numpy < 2 and Pillow only; returns its python and the seconds taken."""
    t0 = time.perf_counter()
    venv = work / "venv"
    _run([board_python(), "-m", "venv", venv], env=clean_env())
    py = venv / "bin" / "python"
    _run([py, "-m", "pip", "install", "-q", f"{wheel}", BOARD_NUMPY], env=clean_env())
    return py, time.perf_counter() - t0


def install_driver(py: Path, target: Path) -> float:
    """finn-plus-driver and its imports into ``target`` (for PYTHONPATH), for the board venv's python."""
    t0 = time.perf_counter()
    _run([py, "-m", "pip", "install", "-q", "--target", target, "--no-deps", *DRIVER_NO_DEPS], env=clean_env())
    _run([py, "-m", "pip", "install", "-q", "--target", target, *DRIVER_DEPS], env=clean_env())
    return time.perf_counter() - t0


def run_in(py: Path, args, cwd=None, pythonpath=(), check=True, **env) -> subprocess.CompletedProcess:
    """Run ``python args`` in the board venv (``bdnn ...`` through ``-m bdnn.cli``)."""
    extra = {"PYTHONPATH": os.pathsep.join(map(str, pythonpath))} if pythonpath else {}
    r = subprocess.run([str(py), *map(str, args)], capture_output=True, text=True, cwd=cwd,
                       env=clean_env(**extra, **env), timeout=600)
    if check and r.returncode:
        raise AssertionError(f"{' '.join(map(str, args))} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r
