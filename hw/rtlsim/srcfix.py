"""Source fixes for the open tools, applied to copies (the installed finn-rtllib is never edited).

Each fix keeps the RTL's meaning and works around one tool limitation:
- ``thresholding.sv``: slang rejects the reversed part-select ``p.ptr[M-1:SN+1]`` in a branch that
  is dead for a single threshold; ``p.ptr[M-1:0] >> (SN+1)`` is the same value wherever it is legal.
- ``vpc.sv`` (FINN's width converter): slang rejects ```default_nettype`` inside a module (dropping
  it only allows implicit nets, which a design that elaborates does not use); Verilator 5.48 stops
  with an internal error ("Unexpected Call") on the unpacked-array slice ``odat_raw = Buf[0:PO0-1]``
  of its generic branch: assigned element by element instead.
"""
from __future__ import annotations

import hashlib
import re
import tempfile
from pathlib import Path

FIXES: dict[str, list[tuple[re.Pattern, str]]] = {
    "thresholding.sv": [(re.compile(r"p\.ptr\[M-1:SN\+1\]"), "(p.ptr[M-1:0] >> (SN+1))")],
    "vpc.sv": [(re.compile(r"(?m)^\s*`default_nettype\s+\w+\s*$"), ""),
               (re.compile(r"assign\s+odat_raw\s*=\s*Buf\[0:PO0-1\];"),
                "for(genvar q = 0; q < PO0; q++) begin : genOdatRaw\n\t\t\tassign\todat_raw[q] = Buf[q];\n\t\tend : genOdatRaw")],
}


def fixed_text(path: str | Path, text: str | None = None) -> str:
    text = Path(path).read_text() if text is None else text
    for pattern, repl in FIXES.get(Path(path).name, []):
        text = pattern.sub(repl, text)
    return text


def fixed_files(files: list[str]) -> list[str]:
    """The same list, with every file that needs a fix replaced by a fixed copy (cached by content)."""
    out = []
    root = Path(tempfile.gettempdir()) / "bdnn_srcfix"
    for f in files:
        if Path(f).name not in FIXES:
            out.append(f)
            continue
        text = fixed_text(f)
        d = root / hashlib.sha256(text.encode()).hexdigest()[:16]
        d.mkdir(parents=True, exist_ok=True)
        dst = d / Path(f).name
        if not dst.exists():
            dst.write_text(text)
        out.append(str(dst))
    return out
