"""Make finn-plus importable and usable on a machine without Xilinx tools.

finn-plus resolves ``finn.xsi.SimEngine`` (Vivado's simulator bindings) at import time of its
builder and wants global settings before any transformation that writes code. Both are handled
here, once, so nothing in this project needs XILINX_VIVADO to import.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def vivado_available() -> bool:
    return bool(os.environ.get("XILINX_VIVADO")) and Path(os.environ["XILINX_VIVADO"]).is_dir()


def vivado_missing_reason() -> str:
    if not os.environ.get("XILINX_VIVADO"):
        return "XILINX_VIVADO is not set (Vivado/Vitis 2024.2 is needed for IP generation, rtlsim and bitfiles)"
    return f"XILINX_VIVADO={os.environ['XILINX_VIVADO']} is not a directory"


_READY = False


def ensure_finn(build_dir: str | os.PathLike | None = None) -> None:
    """Idempotent: set FINN_BUILD_DIR, stub the Vivado simulator when absent, init settings."""
    global _READY
    if build_dir is not None or not os.environ.get("FINN_BUILD_DIR"):
        bd = Path(build_dir or Path(tempfile.gettempdir()) / "bdnn_finn_build").resolve()
        bd.mkdir(parents=True, exist_ok=True)
        os.environ["FINN_BUILD_DIR"] = str(bd)
    if _READY:
        return
    if not vivado_available():
        import finn.xsi
        finn.xsi.SimEngine = None  # the builder imports it at module level; rtlsim is gated separately
    from finn.util import settings
    if settings._SETTINGS is None:
        from finn.util.exception import FINNUserError
        try:
            settings.get_settings()
        except FINNUserError:   # no FINN settings file: what a machine without Xilinx tools has
            settings.initialize_dummy_settings()
    _READY = True
