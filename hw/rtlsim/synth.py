"""yosys synthesis (``synth_xilinx``) of RTL units for a board's fabric: LUT / FF / LUTRAM / BRAM counts.

yosys runs as WebAssembly (yowasp) and sees only its working directory, so each unit's sources and
memory files are copied into a scratch folder and absolute paths inside them made relative.
Results are cached by the hash of everything copied. Tool workarounds are applied to the copies
(``srcfix``); the installed package is never edited.

Counting follows Vivado's utilization report: LUT = logic LUTs (INV included, it maps to LUT1)
+ LUTs used as memory (LUTRAM and SRL); FF = all FD* flip-flops; BRAM36 = RAMB36 + RAMB18 / 2.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from .srcfix import fixed_text
from .tools import yosys_cmd

FAMILY = "xc7"  # default fabric: Zynq-7000 (the PYNQ-Z2); the Ultra96 is "xcup" (Board.synth_family)

# LUTs per memory primitive (a RAM64M is four LUT6 used as RAM, a SRLC32E one LUT)
LUTRAM_LUTS = {"RAM16X1D": 2, "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4, "RAM256X1S": 4, "RAM32X1S": 1,
               "RAM64X1S": 1, "RAM128X1S": 2, "RAM32M": 4, "RAM64M": 4, "RAM32M16": 8, "RAM64M8": 8,
               "SRL16E": 1, "SRLC32E": 1, "SRLC16E": 1}



class SynthError(RuntimeError):
    pass


_TIMED = ("xc7", "xcup")  # the families the timing estimate has a routing allowance for


def _timing_version() -> str:
    """Cached results carry the analysis that made them: a change to it re-runs the analysis."""
    from ..timing import delays, sta
    return hashlib.sha256(Path(delays.__file__).read_bytes() + Path(sta.__file__).read_bytes()).hexdigest()[:12]


def cache_root() -> Path:
    return Path(os.environ.get("BDNN_SYNTH_CACHE", Path(tempfile.gettempdir()) / "bdnn_synth_cache"))


_ABS_DAT = re.compile(r'"(/[^"]+\.dat)"')


def _stage(files: list[str], run_dir: str | None, dst: Path) -> list[str]:
    """Copy sources (and the run folder's memory files) into dst with relative paths. Memory files
    named by absolute path (memstream's INIT_FILE) are copied under unique names: a stitched design
    holds many ``memblock.dat``."""
    names = []
    dirs = sorted({str(Path(f).parent) for f in files} | ({run_dir} if run_dir else set()), key=len, reverse=True)
    for f in files:
        text = Path(f).read_text()

        def _copy_dat(m):
            src = Path(m.group(1))
            name = f"{src.parent.name}_{src.name}"
            if src.exists() and not (dst / name).exists():
                shutil.copyfile(src, dst / name)
            return f'"{name}"'
        text = _ABS_DAT.sub(_copy_dat, text)
        for d in dirs:
            text = text.replace(d.rstrip("/") + "/", "")
        text = fixed_text(f, text)  # tool workarounds on the copy (srcfix)
        (dst / Path(f).name).write_text(text)
        names.append(Path(f).name)
    if run_dir:
        for m in Path(run_dir).iterdir():
            if m.suffix == ".dat" and not (dst / m.name).exists():
                shutil.copyfile(m, dst / m.name)
    return names


def count_cells(cells: dict[str, int]) -> dict:
    lut_logic = sum(n for c, n in cells.items() if re.fullmatch(r"LUT[1-6]", c)) + cells.get("INV", 0)
    lutram = sum(LUTRAM_LUTS.get(c, 0) * n for c, n in cells.items())
    ff = sum(n for c, n in cells.items() if re.fullmatch(r"FD[A-Z]*", c))
    bram36 = cells.get("RAMB36E1", 0) + cells.get("RAMB36E2", 0) + (cells.get("RAMB18E1", 0) + cells.get("RAMB18E2", 0)) / 2
    dsp = sum(n for c, n in cells.items() if c.startswith("DSP48"))
    return {"lut": lut_logic + lutram, "lut_logic": lut_logic, "lutram": lutram, "ff": ff,
            "bram36": bram36, "dsp": dsp, "carry4": cells.get("CARRY4", 0) + cells.get("CARRY8", 0), "cells": cells}


# yosys 0.70's UltraScale+ LUTRAM map rejects some memory shapes ("invalid OPTION_ABITS/WIDTH
# combination" in lutrams_xc5v_map.v); such a unit is counted with 7-series cells instead, and says so.
FALLBACK_FAMILY = {"xcup": "xc7"}
_FALLBACK_ERRORS = ("invalid OPTION_ABITS/WIDTH combination",)


def synthesize(top: str, files: list[str], run_dir: str | None = None, timeout: int = 1800,
               family: str = FAMILY, hierarchy: bool = False, clock_mhz: float | None = None,
               timing_ignore_ports: str | None = None, drop_ports: tuple[str, ...] = ()) -> dict:
    """Synthesize one unit for ``family`` (synth_xilinx's: xc7, xcup, ...); returns the counts (see
    ``count_cells``) and the family they were counted in, cached by content. A known yosys mapping
    failure of ``family`` falls back to ``FALLBACK_FAMILY`` with the reason in ``family_note``.

    ``hierarchy``: keep the module boundaries (no optimization across them; on bdnn4-hw's stitched
    design 54,020 vs 54,638 LUT flattened, and ~6x slower) and add ``instances``: the counts of each
    instance in ``top``, its submodules included, by instance name.

    ``clock_mhz``: also write the mapped netlist and add ``timing``, the pre-route path analysis of
    it at that clock (``bdnn_hw.timing``: the worst paths, levels, estimated Fmax).

    ``drop_ports``: globs of ``top``'s ports that are not hardware (simulation probes): they stop
    being ports before synthesis, so the logic only they use is removed and not counted."""
    try:
        return _synthesize(top, files, run_dir, timeout, family, hierarchy, clock_mhz, timing_ignore_ports, drop_ports)
    except SynthError as e:
        fb = FALLBACK_FAMILY.get(family)
        if fb is None or not any(m in str(e) for m in _FALLBACK_ERRORS):
            raise
        res = _synthesize(top, files, run_dir, timeout, fb, hierarchy, clock_mhz, timing_ignore_ports, drop_ports)
        return {**res, "family_note": f"-family {family} failed ({str(e).splitlines()[-1][:160]}); counted as {fb}"}


def instance_counts(modules: dict, top: str) -> tuple[dict, dict[str, dict]]:
    """From ``stat -json``'s per-module cell counts of a hierarchical netlist: the whole design's
    cells and, per instance in ``top``, its cells with everything below it. Instances are named by
    the elaborated module (``<module>$<top>.<instance>``, as read_slang names them), else by type."""
    mods = {k.lstrip("\\"): v.get("num_cells_by_type", {}) for k, v in modules.items()}
    if top not in mods:
        raise SynthError(f"{top} is not among the synthesized modules")
    memo: dict[str, dict[str, int]] = {}

    def flat(m: str) -> dict[str, int]:
        if m not in memo:
            tot: dict[str, int] = {}
            for c, n in mods[m].items():
                for k, v in (flat(c).items() if c in mods else ((c, 1),)):
                    tot[k] = tot.get(k, 0) + v * n
            memo[m] = tot
        return memo[m]
    inst = {}
    for c, n in mods[top].items():
        if c in mods:
            name = c.split(f"${top}.", 1)[1] if f"${top}." in c else c
            cells = {k: v * n for k, v in flat(c).items()}
            inst[name] = {k: v for k, v in count_cells(cells).items() if k != "cells"}
    return flat(top), inst


def _synthesize(top: str, files: list[str], run_dir: str | None, timeout: int, family: str,
                hierarchy: bool = False, clock_mhz: float | None = None, timing_ignore_ports: str | None = None,
                drop_ports: tuple[str, ...] = ()) -> dict:
    with tempfile.TemporaryDirectory(prefix="bdnn_yosys_") as t:
        t = Path(t)
        names = _stage(list(files), run_dir, t)
        h = hashlib.sha256(json.dumps([top, family, names] + (["hierarchy"] if hierarchy else [])
                                      + ([f"timing@{clock_mhz:g}", _timing_version(), timing_ignore_ports or ""]
                                         if clock_mhz else []) + (["drop", *drop_ports] if drop_ports else [])).encode())
        for p in sorted(t.iterdir()):
            h.update(p.name.encode())
            h.update(p.read_bytes())
        key = h.hexdigest()[:24]
        cached = cache_root() / f"{top}-{key}.json"
        if cached.exists():
            return json.loads(cached.read_text())
        keep = "--best-effort-hierarchy " if hierarchy else ""
        drop = f"delete -port {' '.join(f'{top}/w:{g}' for g in drop_ports)}; " if drop_ports else ""
        script = (f"read_slang -j 1 -D BDNN_YOSYS --ignore-assertions --allow-use-before-declare {keep}{' '.join(names)} --top {top}; "
                  f"{drop}synth_xilinx {'' if hierarchy else '-flatten '}-family {family} -noiopad -top {top}; tee -q -o stat.json stat -json"
                  + ("; write_json netlist.json" if clock_mhz else ""))
        p = subprocess.run([*yosys_cmd(), "-q", "-p", script], cwd=t, capture_output=True, text=True, timeout=timeout)
        if p.returncode != 0 or not (t / "stat.json").exists():
            err = [ln for ln in (p.stdout + p.stderr).splitlines() if "ERROR" in ln][:5]
            raise SynthError(f"yosys could not synthesize {top}: " + ("\n".join(err) or p.stderr[-1500:]))
        stat = json.loads((t / "stat.json").read_text())
        timing = None
        if clock_mhz:
            from ..timing import analyze_file
            timing = analyze_file(t / "netlist.json", clock_mhz, family if family in _TIMED else "xc7", top,
                                  ignore_ports=timing_ignore_ports).to_dict()
    if hierarchy:
        cells, inst = instance_counts(stat["modules"], top)
        res = {**count_cells(cells), "family": family, "instances": inst}
    else:
        res = {**count_cells(stat["design"].get("num_cells_by_type", {})), "family": family}
    if timing is not None:
        res["timing"] = timing
    cache_root().mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(res))
    return res
