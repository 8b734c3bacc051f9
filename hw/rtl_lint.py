"""Lint the RTL a FINN build generates with Verilator (``--lint-only``): CI-checkable RTL.

Covers every node whose code generation wrote RTL: the ``*_rtl`` layers (with the finn-rtllib
sources they instantiate) and the weight-streamer wrappers (memstream) of decoupled MVAUs.
HLS C++ is out of scope (it becomes RTL only through Vitis HLS).
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path


# Messages that are Verilator limitations, not RTL defects; each waived line is still counted.
WAIVERS = [
    (r"memstream/hdl/memstream\.sv:\d+:\d+: Assignment pattern missed initializing elements",
     "Verilator 5.006 reads memstream's unpacked-array concatenation { Dat3, OSrl[...] } as an assignment "
     "pattern; Vivado accepts it and newer Verilator releases parse it"),
]


def waived(line: str) -> str | None:
    for pattern, reason in WAIVERS:
        if re.search(pattern, line):
            return reason
    return None


def verilator() -> str | None:
    return shutil.which("verilator")


def _memstream_files(rtllib: Path) -> list[str]:
    return [str(rtllib / "axi/hdl/axilite.sv"), str(rtllib / "memstream/hdl/memstream.sv"),
            str(rtllib / "memstream/hdl/memstream_axi.sv")]


def _module_name(path: Path) -> str:
    """The first module a generated file declares (wrappers are named after the node, not the file)."""
    m = re.search(r"^\s*module\s+(\w+)", Path(path).read_text(), re.M)
    return m.group(1) if m else Path(path).stem


def rtl_units(model) -> list[tuple[str, str, list[str]]]:
    """(node name, top module, files) for every generated RTL unit of a code-generated model."""
    from qonnx.custom_op.registry import getCustomOp
    from finn.util.settings import get_settings
    rtllib = Path(get_settings().finn_rtllib)
    units = []
    for n in model.graph.node:
        inst = getCustomOp(n)
        gen = Path(inst.get_nodeattr("code_gen_dir_ipgen") or "")
        if n.op_type.endswith("_rtl") and hasattr(inst, "get_rtl_file_list"):
            files = [f for f in inst.get_rtl_file_list(abspath=True) if f.endswith((".v", ".sv"))]
            mine = [Path(f) for f in files if Path(f).parent == gen]
            wrappers = [f for f in mine if f.stem.endswith("_wrapper")]
            plain_v = [f for f in mine if f.suffix == ".v"]
            top = _module_name((wrappers or plain_v or mine)[-1]) if mine else n.name
            units.append((n.name, top, files))
        wrapper = gen / f"{n.name}_memstream_wrapper.v"
        if wrapper.exists():
            units.append((n.name + "/memstream", _module_name(wrapper), [*_memstream_files(rtllib), str(wrapper)]))
    return units


def lint_unit(top: str, files: list[str], timeout: int = 300) -> dict:
    """Run verilator --lint-only; errors fail, warnings are reported but tolerated."""
    inc = sorted({str(Path(f).parent) for f in files})
    cmd = [verilator(), "--lint-only", "-Wno-fatal", "-Wno-lint", "-Wno-style", "--top-module", top,
           *[f"-I{d}" for d in inc], *files]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    text = p.stdout + p.stderr
    all_errors = [line for line in text.splitlines() if line.startswith("%Error")]
    errors = [e for e in all_errors if not waived(e)]
    warnings = [line for line in text.splitlines() if line.startswith("%Warning")]
    # verilator's own summary line ("%Error: Exiting due to N error(s)") is not an RTL message
    errors = [e for e in errors if not e.startswith("%Error: Exiting due to")]
    return {"top": top, "files": len(files), "returncode": p.returncode, "errors": errors,
            "waived_errors": len(all_errors) - len(errors) - sum(e.startswith("%Error: Exiting due to") for e in all_errors),
            "warnings": len(warnings), "ok": not errors}


def lint_model(model) -> list[dict]:
    if verilator() is None:
        raise RuntimeError("verilator is not installed (Debian: apt-get install verilator)")
    return [{"node": name, **lint_unit(top, files)} for name, top, files in rtl_units(model)]
