"""The open-tool evidence stage of a board build (after FINN's code generation):

1. every node of the folded HW graph simulated in Verilator, node by node, on real crops
   (``execute.simulate_graph``): FINN's RTL layers, and the project's RTL (``bdnn_hw.rtl``) in
   place of FINN's HLS-only layers; each compared with FINN's Python model, and the graph's output
   with the Python execution of the whole HW graph;
2. every FINN RTL unit synthesized by yosys (``synth``), beside FINN's estimate for its node;
3. the whole network stitched into one all-RTL design (``bdnn_hw.rtl.stitch``), FIFOs sized by
   simulation, crops streamed back to back and compared with the cpu engine (``run_stitched``);
4. yosys of that whole design against the board's budget.

Writes ``<board dir>/rtlsim.json`` and ``<board dir>/stitched/``. Evidence labels: ``verilator``
(simulated RTL), ``python`` (FINN's Python model only), ``yosys`` (synthesized RTL),
``finn-estimate`` (analytical).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .execute import EVIDENCE_PYTHON, EVIDENCE_VERILATOR, simulate_graph
from .harness import SimError
from .synth import SynthError, synthesize
from .tools import available, verilator_version, yosys_version
from .units import rtl_units


def node_sim(model, crops: np.ndarray, reference, progress: bool = True, project_rtl: Path | None = None) -> dict:
    """Simulate the graph on each crop (N,42,42 uint8); ``reference(x)`` is the Python output.
    With ``project_rtl`` (a work folder) FINN's HLS layers run as the project's RTL too."""
    per_node, totals = {}, {"mismatches": 0, "output_mismatches": 0, "errors": []}
    secs = []
    kinds = {}
    for i, crop in enumerate(crops):
        x = crop[None, :, :, None].astype(np.float32)
        out, rep = simulate_graph(model, x, seed=i, progress=progress, project_rtl=project_rtl)
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


def unit_synth(model, fpga_part: str, progress: bool = True, project_rtl: Path | None = None,
               family: str = "xc7", clock_mhz: float | None = None) -> dict:
    """yosys counts for every RTL unit beside FINN's estimate for its node, and totals; with
    ``project_rtl`` also the project's RTL for FINN's HLS layers beside FINN's HLS estimate; with
    ``clock_mhz`` each unit's timing estimate (its worst path: levels, ns, estimated Fmax)."""
    from qonnx.custom_op.registry import getCustomOp
    units, errors = {}, []
    t0 = time.perf_counter()
    todo = list(rtl_units(model))
    if project_rtl is not None:
        from ..rtl.wrappers import project_rtl_units
        todo += project_rtl_units(model, Path(project_rtl))
    for u in tqdm(todo, desc="yosys synth_xilinx per RTL unit", unit="unit", disable=not progress):
        inst = getCustomOp(model.get_node_from_name(u.node.split("/")[0]))
        try:
            r = synthesize(u.unit.top, list(u.unit.files), u.unit.run_dir, family=family, clock_mhz=clock_mhz)
        except SynthError as e:
            errors.append(str(e))
            continue
        rec = {"kind": u.kind, **{k: v for k, v in r.items() if k not in ("cells", "timing")}}
        if r.get("timing"):
            t = r["timing"]
            rec["timing"] = {**t["worst"], "est_fmax_mhz": t["est_fmax_mhz"], "meets": t["meets"], "margin": t["margin"],
                             "levels_distribution": t["levels_distribution"]}
        if u.kind.endswith("/memstream"):
            # FINN estimates the MVAU as a whole; only its weight memory compares with the streamer
            rec["finn_bram36"] = inst.bram_estimation(fpga_part) / 2.0
            rec["finn_lut"] = None
            rec["ram_style"] = inst.get_nodeattr("ram_style")
        else:
            rec["finn_lut"] = int(inst.lut_estimation(fpga_part))
            rec["finn_bram36"] = inst.bram_estimation(fpga_part) / 2.0
        if u.kind.endswith("/bdnn_rtl"):  # the project op's own analytical model (what --rtl-only folds with)
            from ..rtl.ops import project_lut_estimate
            rec["model_lut"] = project_lut_estimate(model.get_node_from_name(u.node), fpga_part)
        units[u.node if not u.kind.endswith("/bdnn_rtl") else u.node + "/bdnn_rtl"] = rec
    finn_units = {k: u for k, u in units.items() if not u["kind"].endswith("/bdnn_rtl")}
    ours = {k: u for k, u in units.items() if u["kind"].endswith("/bdnn_rtl")}
    tot = {k: sum(u[k] for u in finn_units.values()) for k in ("lut", "lut_logic", "lutram", "ff", "bram36", "dsp")}
    finn_lut = sum(u["finn_lut"] or 0 for u in finn_units.values() if u["finn_lut"] is not None)
    finn_lut_same = sum(u["lut"] for u in finn_units.values() if u["finn_lut"] is not None)
    # the project's RTL vs FINN's estimate for the HLS layers it replaces (the MVAU's weight memory
    # is its memstream unit, counted above, in both)
    mv = [u for u in ours.values() if u["kind"].startswith("MVAU")]
    project = {"units": len(ours), "lut": sum(u["lut"] for u in ours.values()),
               "finn_hls_lut": sum(u["finn_lut"] or 0 for u in ours.values()),
               "mvau_lut": sum(u["lut"] for u in mv), "mvau_finn_hls_lut": sum(u["finn_lut"] or 0 for u in mv)}
    project["mvau_lut_ratio"] = project["mvau_lut"] / project["mvau_finn_hls_lut"] if project["mvau_finn_hls_lut"] else None
    # how well the project ops' LUT model (what --rtl-only folds with) predicts yosys, per kind
    project["model_vs_yosys"] = {}
    for kind in sorted({u["kind"] for u in ours.values()}):
        us = [u for u in ours.values() if u["kind"] == kind]
        y, m = sum(u["lut"] for u in us), sum(u.get("model_lut", 0) for u in us)
        project["model_vs_yosys"][kind] = {"units": len(us), "yosys_lut": y, "model_lut": m,
                                           "model_over_yosys": m / y if y else None}
    return {"ran": True, "tool": yosys_version(), "family": family, "units": units, "errors": errors, "project_rtl": project,
            "totals": tot, "finn_bram36_total": sum(u["finn_bram36"] for u in finn_units.values()),
            "rtl_node_lut": finn_lut_same, "rtl_node_finn_lut": finn_lut, "seconds": time.perf_counter() - t0}


def run(codegen_graph: Path, fpga_part: str, out: Path, crops: np.ndarray, reference,
        synth: bool = True, progress: bool = True, family: str = "xc7", clock_mhz: float | None = None) -> tuple[dict, dict]:
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
        sim = node_sim(model, crops, reference, progress, project_rtl=Path(out) / "project_rtl")
    if not synth:
        syn = {"ran": False, "reason": "--no-yosys"}
    elif missing["yosys"]:
        syn = {"ran": False, "reason": missing["yosys"]}
    else:
        syn = unit_synth(model, fpga_part, progress, project_rtl=Path(out) / "project_rtl", family=family,
                         clock_mhz=clock_mhz)
    Path(out).mkdir(parents=True, exist_ok=True)
    tmp = Path(out) / "rtlsim.json.tmp"
    tmp.write_text(json.dumps({"sim": sim, "rtl_synth": syn}, indent=1, default=float))
    tmp.replace(Path(out) / "rtlsim.json")
    return sim, syn


def run_stitched(fe, bdir: Path, board, crops: np.ndarray, source: str, synth: bool = True,
                 progress: bool = True) -> tuple[dict, dict]:
    """Steps 3 and 4 on uint8 crops (N,42,42) from ``source``: the ``stitched_sim`` and ``synth``
    records of the summary."""
    import json

    from qonnx.core.modelwrapper import ModelWrapper
    from bdnn.artifact import load
    from bdnn.engine import Engine

    from ..flow import popcounts_from_accumulators
    from ..rtl import stitched_sim
    from ..rtl.stitch import MemoryPolicy
    from .synth import SynthError, synthesize
    missing = available()
    if len(crops) == 0:
        return {"ran": False, "reason": "--stitched-crops 0"}, {"ran": False, "reason": "no stitched design"}
    if missing["verilator"]:
        return {"ran": False, "reason": missing["verilator"]}, {"ran": False, "reason": missing["verilator"]}
    art = load(fe.model_dir)
    expected = popcounts_from_accumulators(art, ModelWrapper(str(fe.hw_graph)), Engine(art).accumulators(crops))
    work = Path(bdir) / "stitched"
    work.mkdir(parents=True, exist_ok=True)
    say = print if progress else (lambda *_: None)
    try:
        rec = stitched_sim.evaluate(Path(bdir) / "codegen_hw_graph.onnx", board.fpga_part, board.clk_period_ns,
                                    work, crops, expected, progress=lambda m: say(f"      {m}"),
                                    memory=MemoryPolicy(board.rtl_fifo_block_min_depth, board.rtl_rom_block_min_bits))
    except SimError as e:
        return {"ran": True, "crops": int(len(crops)), "mismatches": None, "error": str(e)}, \
               {"ran": False, "reason": "the stitched simulation failed"}
    design = rec.pop("_design")
    from bdnn import contract
    fifo_cfg = rec.pop("_finn_fifo_config")
    (Path(bdir) / contract.FIFO_DEPTHS_FILE).write_text(json.dumps(fifo_cfg, indent=1))
    rec["fifo_sizing"]["finn_fifo_config"] = contract.FIFO_DEPTHS_FILE
    rec = {"ran": True, "tool": f"verilator {verilator_version()}", "source": source, "reference": "cpu engine", **rec}
    if not synth:
        whole = {"ran": False, "reason": "--no-yosys"}
    elif missing["yosys"]:
        whole = {"ran": False, "reason": missing["yosys"]}
    else:
        t0 = time.perf_counter()
        try:
            from ..rtl.stitch import PROBE_PORT_GLOBS, PROBE_PORTS
            r = synthesize(design.top, design.files, str(design.run_dir), timeout=4 * 3600, family=board.synth_family,
                           clock_mhz=board.fclk_mhz, timing_ignore_ports=PROBE_PORTS, drop_ports=PROBE_PORT_GLOBS)
            whole = {"ran": True, "tool": yosys_version(), "family": r["family"],
                     **({"family_note": r["family_note"]} if "family_note" in r else {}),
                     **{k: r[k] for k in ("lut", "lut_logic", "lutram", "ff", "bram36", "dsp")},
                     "fits": bool(r["lut"] <= board.lut_limit * board.lut and r["bram36"] <= board.bram_limit * board.bram36
                                  and r["dsp"] <= board.dsp),
                     "lut_budget": board.lut, "bram36_budget": board.bram36, "seconds": time.perf_counter() - t0,
                     "timing": r.get("timing")}
        except SynthError as e:
            whole = {"ran": True, "error": str(e)}
    tmp = Path(bdir) / "stitched.json.tmp"
    tmp.write_text(json.dumps({"stitched_sim": rec, "synth": whole}, indent=1, default=float))
    tmp.replace(Path(bdir) / "stitched.json")
    return rec, whole
