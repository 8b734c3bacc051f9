"""The open-tool evidence stage of a board build (after FINN's code generation):

1. every RTL unit of the folded HW graph simulated in Verilator, node by node, on real crops
   (``execute.simulate_graph``), each compared with FINN's Python model and the graph's output
   with the Python execution of the whole HW graph;
2. every RTL unit synthesized by yosys (``synth``), beside FINN's estimate for its node.

Writes ``<board dir>/rtlsim.json`` and returns the ``sim`` and ``rtl_synth`` records of the
board's summary. Evidence labels: ``verilator`` (simulated RTL), ``python`` (FINN's Python model
only: the HLS layers), ``yosys`` (synthesized RTL), ``finn-estimate`` (analytical).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .execute import EVIDENCE_PYTHON, EVIDENCE_VERILATOR, simulate_graph
from .synth import SynthError, synthesize
from .tools import available, verilator_version, yosys_version
from .units import rtl_units


def node_sim(model, crops: np.ndarray, reference, progress: bool = True) -> dict:
    """Simulate the graph on each crop (N,42,42 uint8); ``reference(x)`` is the Python output."""
    per_node, totals = {}, {"mismatches": 0, "output_mismatches": 0, "errors": []}
    secs = []
    kinds = {}
    for i, crop in enumerate(crops):
        x = crop[None, :, :, None].astype(np.float32)
        out, rep = simulate_graph(model, x, seed=i, progress=progress)
        ref = reference(x)
        out_bad = int((np.asarray(out).reshape(-1) != np.asarray(ref).reshape(-1)).any())
        totals["mismatches"] += rep.mismatches + out_bad
        totals["output_mismatches"] += out_bad
        totals["errors"] += rep.errors
        secs.append(rep.seconds)
        for r in rep.records:
            k = kinds.setdefault(r.kind, {"nodes": 0, "evidence": r.evidence, "mismatches": 0})
            k["mismatches"] += r.mismatches
            if i == 0:
                k["nodes"] += 1
            if r.evidence == EVIDENCE_VERILATOR:
                rec = per_node.setdefault(r.node, {"kind": r.kind, "est_cycles": r.est_cycles, "cycles": [],
                                                   "cycles_backpressure": [], "mismatches": 0, "sim_seconds": 0.0})
                rec["cycles"].append(r.cycles)
                rec["cycles_backpressure"].append(r.cycles_backpressure)
                rec["mismatches"] += r.mismatches
                rec["sim_seconds"] += r.sim_seconds
    for rec in per_node.values():
        rec["cycles"] = max(c for c in rec["cycles"] if c is not None) if any(rec["cycles"]) else None
        rec["cycles_backpressure"] = max(c for c in rec["cycles_backpressure"] if c is not None) if any(rec["cycles_backpressure"]) else None
        rec["cycles_vs_estimate"] = (rec["cycles"] / rec["est_cycles"]) if rec["cycles"] and rec["est_cycles"] else None
    return {"ran": True, "tool": f"verilator {verilator_version()}", "crops": int(len(crops)), **totals,
            "seconds_per_crop": float(np.mean(secs)) if secs else None,
            "sim_cycles_per_s": _cycles_per_s(per_node),
            "nodes_by_kind": kinds, "per_node": per_node,
            "evidence": {"verilator": sorted(k for k, v in kinds.items() if v["evidence"] == EVIDENCE_VERILATOR),
                         "python": sorted(k for k, v in kinds.items() if v["evidence"] == EVIDENCE_PYTHON)}}


def _cycles_per_s(per_node: dict) -> float | None:
    cyc = sum((r["cycles"] or 0) + (r["cycles_backpressure"] or 0) for r in per_node.values())
    secs = sum(r["sim_seconds"] for r in per_node.values())
    return cyc / secs if secs else None


def unit_synth(model, fpga_part: str, progress: bool = True) -> dict:
    """yosys counts for every RTL unit beside FINN's estimate for its node, and totals."""
    from qonnx.custom_op.registry import getCustomOp
    units, errors = {}, []
    t0 = time.perf_counter()
    for u in tqdm(rtl_units(model), desc="yosys synth_xilinx per RTL unit", unit="unit", disable=not progress):
        inst = getCustomOp(model.get_node_from_name(u.node.split("/")[0]))
        try:
            r = synthesize(u.unit.top, list(u.unit.files), u.unit.run_dir)
        except SynthError as e:
            errors.append(str(e))
            continue
        rec = {"kind": u.kind, **{k: v for k, v in r.items() if k != "cells"}}
        if u.kind.endswith("/memstream"):
            # FINN estimates the MVAU as a whole; only its weight memory compares with the streamer
            rec["finn_bram36"] = inst.bram_estimation(fpga_part) / 2.0
            rec["finn_lut"] = None
            rec["ram_style"] = inst.get_nodeattr("ram_style")
        else:
            rec["finn_lut"] = int(inst.lut_estimation(fpga_part))
            rec["finn_bram36"] = inst.bram_estimation(fpga_part) / 2.0
        units[u.node] = rec
    tot = {k: sum(u[k] for u in units.values()) for k in ("lut", "lut_logic", "lutram", "ff", "bram36", "dsp")}
    finn_lut = sum(u["finn_lut"] or 0 for u in units.values() if u["finn_lut"] is not None)
    finn_lut_same = sum(u["lut"] for u in units.values() if u["finn_lut"] is not None)
    return {"ran": True, "tool": yosys_version(), "family": "xc7", "units": units, "errors": errors,
            "totals": tot, "finn_bram36_total": sum(u["finn_bram36"] for u in units.values()),
            "rtl_node_lut": finn_lut_same, "rtl_node_finn_lut": finn_lut, "seconds": time.perf_counter() - t0}


def run(codegen_graph: Path, fpga_part: str, out: Path, crops: np.ndarray, reference,
        synth: bool = True, progress: bool = True) -> tuple[dict, dict]:
    """The whole stage; (sim, rtl_synth) for the summary. Missing tools are reported, not faked."""
    import json

    from qonnx.core.modelwrapper import ModelWrapper
    model = ModelWrapper(str(codegen_graph))
    missing = available()
    if len(crops) == 0:
        sim = {"ran": False, "reason": "--rtlsim-crops 0"}
    elif missing["verilator"]:
        sim = {"ran": False, "reason": missing["verilator"]}
    else:
        sim = node_sim(model, crops, reference, progress)
    if not synth:
        syn = {"ran": False, "reason": "--no-yosys"}
    elif missing["yosys"]:
        syn = {"ran": False, "reason": missing["yosys"]}
    else:
        syn = unit_synth(model, fpga_part, progress)
    Path(out).mkdir(parents=True, exist_ok=True)
    tmp = Path(out) / "rtlsim.json.tmp"
    tmp.write_text(json.dumps({"sim": sim, "rtl_synth": syn}, indent=1, default=float))
    tmp.replace(Path(out) / "rtlsim.json")
    return sim, syn
