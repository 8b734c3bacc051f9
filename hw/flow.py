"""The build: compact model -> Brevitas -> QONNX -> FINN HW-layer graph -> per-board estimates.

The front end (export, streamlining, HW-layer conversion) is board-independent and runs once;
folding and estimates run per board. Every stage's graph is checked bit-exactly against the
Brevitas reference on real FER2013 crops (see ``verify_stages``).
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import finn_env
from .boards import Board

finn_env.ensure_finn()

import finn.builder.build_dataflow_steps as finn_steps  # noqa: E402
from finn.builder.build_dataflow_config import (  # noqa: E402
    DataflowBuildConfig,
    DataflowOutputType,
    ShellFlowType,
)
from qonnx.core.modelwrapper import ModelWrapper  # noqa: E402

from .steps import (  # noqa: E402
    step_bdnn_hls_simd_floor,
    step_bdnn_host_io,
    step_bdnn_minimize_bit_width,
    step_bdnn_streamline,
)
from bdnn.contract import FIFO_DEPTHS_FILE, FOLDED_GRAPH_FILE, HOST_AFFINE_KEY, HW_GRAPH_STAGE, MODEL_SHA_KEY  # noqa: E402,F401
from bdnn.contract import file_sha256, model_file, parse_host_affine  # noqa: E402,F401

# (stage name, FINN step) of the board-independent front end, in order.
FRONTEND_STEPS = [
    ("finn_onnx", finn_steps.step_qonnx_to_finn),
    ("tidy", finn_steps.step_tidy_up),
    ("streamlined", step_bdnn_streamline),
    ("host_io", step_bdnn_host_io),
    ("hw_layers", finn_steps.step_convert_to_hw),
    (HW_GRAPH_STAGE, finn_steps.step_create_dataflow_partition),
]
# Per board, Vivado only.
def _replay_step(name):
    def step(model, cfg):
        from .rtl import replay_driver
        return getattr(replay_driver, name)(model, cfg)
    step.__name__ = name
    return step


# the replay units' weight DMAs and driver info: written and unit-tested without Vivado
# (tests/test_pynq_standin.py), the Vivado run itself is untested
VIVADO_STEPS = [
    finn_steps.step_hw_codegen,
    finn_steps.step_hw_ipgen,
    finn_steps.step_set_fifo_depths,
    finn_steps.step_create_stitched_ip,
    _replay_step("step_insert_replay_weight_dmas"),
    finn_steps.step_synthesize_bitfile,
    finn_steps.step_make_driver,
    _replay_step("step_write_replay_info"),
    finn_steps.step_deployment_package,
]


def write_json_atomic(path: Path, data) -> None:
    """Write then rename: an interrupted build never leaves a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=float))
    os.replace(tmp, path)


def make_cfg(out_dir: Path, board: Board | None, target_fps: int | None = None,
             folding_config: Path | None = None) -> DataflowBuildConfig:
    kw = {}
    if board is not None:
        kw = dict(board=board.finn_board, fpga_part=board.fpga_part, synth_clk_period_ns=board.clk_period_ns,
                  shell_flow_type=ShellFlowType.VIVADO_ZYNQ)
    return DataflowBuildConfig(
        output_dir=str(out_dir), target_fps=target_fps, folding_config_file=folding_config,
        generate_outputs=[DataflowOutputType.ESTIMATE_REPORTS], standalone_thresholds=True,
        verify_steps=[], save_intermediate_models=False, **kw)


# -- front end ------------------------------------------------------------------------------
@dataclass
class Frontend:
    model_dir: Path
    work: Path
    qonnx: Path
    stages: dict[str, Path]     # stage name -> saved graph
    seconds: float

    @property
    def hw_graph(self) -> Path:
        return self.stages[HW_GRAPH_STAGE]


def run_frontend(model_dir: Path, work: Path, progress: bool = True) -> Frontend:
    """Export the shipped model to QONNX and compile it to FINN's HW-layer graph."""
    from bdnn.artifact import load
    from bdnn.nn import from_artifact

    from bdnn.export import export_qonnx

    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    art_path = model_file(model_dir)
    sha = file_sha256(art_path)
    art = load(art_path)
    t0 = time.time()
    qonnx = export_qonnx(from_artifact(art), art.spec, work / "qonnx.onnx")
    cfg = make_cfg(work, None)
    model = ModelWrapper(str(qonnx))
    stages = {}
    bar = tqdm(FRONTEND_STEPS, desc="FINN front end", unit="step", disable=not progress)
    for name, step in bar:
        bar.set_postfix_str(name)
        model = step(model, cfg)
        path = work / f"{name}.onnx"
        model.set_metadata_prop(MODEL_SHA_KEY, sha)
        model.save(str(path))
        stages[name] = path
    return Frontend(Path(model_dir), work, qonnx, stages, time.time() - t0)


# -- estimates per board -------------------------------------------------------------------------
def step_apply_role_config(role_cfg: dict, layer_names: list[str]):
    """A build step applying a role-keyed folding/placement config (see folding.py) on top."""
    def step(model, cfg):
        from finn.transformation.general import ApplyConfig
        from .folding import to_finn_config
        return model.transform(ApplyConfig(to_finn_config(role_cfg, model, layer_names)))
    step.__name__ = "step_apply_role_config"
    return step


def ddr_bytes_per_crop(model, layer_names: list[str]) -> float:
    """Weight bytes streamed from DDR per crop by layers with mem_mode=external.

    FINN streams an external weight matrix once per input vector: once per crop for an FC layer,
    once per output pixel for a conv (so a conv in DDR costs its weights x pixels: a last resort
    when BRAM cannot hold it at all); a replay unit (``--replay-batch``) once per batch of crops."""
    from qonnx.core.datatype import DataType
    from qonnx.custom_op.registry import getCustomOp

    from .folding import node_roles
    total = 0.0
    for name, role in node_roles(model, layer_names).items():
        if not role.endswith("/mvau"):
            continue
        inst = getCustomOp(model.get_node_from_name(name))
        if hasattr(inst, "ddr_bytes_per_crop"):  # a replay unit: the matrix once per batch of crops
            total += inst.ddr_bytes_per_crop()
            continue
        if inst.get_nodeattr("mem_mode") != "external":
            continue
        mw, mh = inst.get_nodeattr("MW"), inst.get_nodeattr("MH")
        vectors = int(np.prod(inst.get_nodeattr("numInputVectors")))
        wbits = DataType[inst.get_nodeattr("weightDataType")].bitwidth()
        total += mw * mh * wbits / 8.0 * vectors
    return total


DDR_EFFICIENCY = 0.7  # sustained fraction of the HP port's peak for long weight bursts


def step_use_replay_units(batch: int, role_cfg: dict | None = None, layer_names: list[str] | None = None):
    """A build step: every external-weight binary layer becomes a weight-replaying unit of ``batch``
    crops (``bdnn_hw.rtl.replay_op``), except the layers the role config marks ``"replay": false``;
    after the bit-width passes, which set its thresholds."""
    def step(model, cfg):
        from qonnx.transformation.general import GiveUniqueNodeNames

        from .folding import node_roles, replay_opt_outs
        from .rtl.replay_op import UseReplayUnits
        out = replay_opt_outs(role_cfg)
        keep = {n for n, r in node_roles(model, layer_names).items() if r in out} if out else set()
        return model.transform(UseReplayUnits(batch, keep_external=keep)).transform(GiveUniqueNodeNames())
    step.__name__ = "step_use_replay_units"
    return step


def step_select_project_rtl(model, cfg):
    """The project's RTL ops (``bdnn_hw.rtl.ops``) in place of FINN's HLS-only layers, after folding."""
    from .rtl.ops import SelectProjectRTL
    return model.transform(SelectProjectRTL())


def policy_rom_bram36(model, board: Board) -> float:
    """Block RAM of the on-chip weight ROMs the stitched design moves out of LUTs
    (``Board.rtl_rom_block_min_bits``) that the placement config keeps in LUTRAM, where FINN's
    estimate counts none: one BRAM36 per 72 bits of the word (512 x 72), per 512 words."""
    from qonnx.custom_op.registry import getCustomOp

    from .rtl.stitch import MemoryPolicy
    policy = MemoryPolicy(rom_block_min_bits=board.rtl_rom_block_min_bits)
    total = 0.0
    for node in model.graph.node:
        if not node.op_type.startswith("MVAU"):
            continue
        inst = getCustomOp(node)
        if inst.get_nodeattr("mem_mode") != "internal_decoupled" or inst.get_nodeattr("ram_style") != "distributed":
            continue
        mw, mh = inst.get_nodeattr("MW"), inst.get_nodeattr("MH")
        depth = mw * mh // (inst.get_nodeattr("SIMD") * inst.get_nodeattr("PE"))
        if policy.rom_style("distributed", mw * mh, depth) != "block":  # the stitched design's own decision
            continue
        width = inst.get_nodeattr("SIMD") * inst.get_nodeattr("PE") * inst.get_input_datatype(1).bitwidth()  # weights
        from .rtl.replay import bram18_for
        total += bram18_for(width, depth) / 2   # the best aspect ratio (a narrow, deep ROM is 4096 x 8 per BRAM36)
    return float(total)


def run_estimates(hw_graph: Path, board: Board, out: Path, target_fps: int | None,
                  role_cfg: dict | None = None, layer_names: list[str] | None = None,
                  progress: bool = True, rtl_only: bool = False, replay_batch: int = 0) -> dict:
    """Folding (FINN's SetFolding for ``target_fps``, then the role-keyed config on top) and
    FINN's analytical estimates, plus the DDR bandwidth cap of external weights. ``replay_batch``:
    external binary layers become weight-replaying units of that many crops (0: FINN's external
    mode). ``rtl_only``:
    every layer the project has RTL for becomes that RTL op (its estimates are the project's)."""
    from qonnx.custom_op.registry import getCustomOp

    from .folding import node_roles
    out = Path(out)
    cfg = make_cfg(out, board, target_fps)
    cfg.mvau_wwidth_max = 1024  # binary weights: allow wide SIMD (the 36-bit default caps 1-bit layers)
    steps = [finn_steps.step_specialize_layers]
    if target_fps:
        steps.append(finn_steps.step_target_fps_parallelization)
    if role_cfg:
        steps.append(step_apply_role_config(role_cfg, layer_names))
    steps += [step_bdnn_hls_simd_floor, *([step_select_project_rtl] if rtl_only else []),
              step_bdnn_minimize_bit_width,
              *([step_use_replay_units(replay_batch, role_cfg, layer_names)] if replay_batch else []),
              finn_steps.step_generate_estimate_reports]
    model = ModelWrapper(str(hw_graph))
    for step in tqdm(steps, desc=f"{board.key}: folding + estimates", unit="step", disable=not progress, leave=False):
        model = step(model, cfg)
    model.save(str(out / FOLDED_GRAPH_FILE))
    rep = out / "report"
    res = json.loads((rep / "estimate_layer_resources.json").read_text())
    perf = json.loads((rep / "estimate_network_performance.json").read_text())
    cycles = json.loads((rep / "estimate_layer_cycles.json").read_text())
    layers = {k: v for k, v in res.items() if k != "total"}
    lut = sum(v.get("LUT", 0) for v in layers.values())
    bram18 = sum(v.get("BRAM_18K", 0) for v in layers.values())
    dsp = sum(v.get("DSP", 0) for v in layers.values())
    bram36 = bram18 / 2.0
    # the fit is judged on the whole design: with --rtl-only the per-unit model's sum times the board's
    # measured whole-design factor, and block RAM as the stitched design places it (FINN's HLS
    # estimates already land above yosys's whole design)
    lut_fit = lut * (board.rtl_whole_design_lut_factor if rtl_only else 1.0)
    bram36_fit = bram36 + (policy_rom_bram36(model, board) + board.rtl_whole_design_bram36_extra if rtl_only else 0.0)
    finn_fps = float(perf["estimated_throughput_fps"])
    ddr = ddr_bytes_per_crop(model, layer_names) if layer_names else 0.0
    ddr_cap = (board.axi_port_width / 8 * board.fclk_mhz * 1e6 * DDR_EFFICIENCY / ddr) if ddr else float("inf")
    fps = min(finn_fps, ddr_cap)
    roles = node_roles(model, layer_names) if layer_names else {}
    per_layer = {}
    for k in layers:
        inst = getCustomOp(model.get_node_from_name(k))
        known = inst.get_nodeattr_types()   # not every layer has every folding attribute
        attrs = {a: inst.get_nodeattr(a) for a in ("PE", "SIMD", "ram_style", "mem_mode") if a in known}
        per_layer[k] = {"role": roles.get(k), **attrs, "cycles": cycles.get(k), **res[k]}
    bottleneck = perf.get("max_cycles_node_name")
    return {
        "lut": int(round(lut)), "bram36": bram36, "dsp": int(round(dsp)),
        "lut_whole_design": int(round(lut_fit)), "bram36_whole_design": bram36_fit,
        "lut_util": lut_fit / board.lut, "bram36_util": bram36_fit / board.bram36,
        "fits": bool(lut_fit <= board.lut_limit * board.lut and bram36_fit <= board.bram_limit * board.bram36
                     and dsp <= board.dsp),
        "est_crops_per_s": fps, "est_faces_per_s": fps / 5.0, "finn_est_crops_per_s": finn_fps,
        "ddr_weight_bytes_per_crop": ddr, "ddr_cap_crops_per_s": None if ddr_cap == float("inf") else ddr_cap,
        "bottleneck_layer": "DDR weight bandwidth" if ddr_cap < finn_fps else bottleneck,
        "bottleneck_role": roles.get(bottleneck), "max_cycles": perf.get("max_cycles"),
        "est_latency_us": float(perf.get("estimated_latency_ns", 0.0)) / 1000.0,
        "layers": per_layer,
    }


def run_codegen_and_lint(folded_graph: Path, board: Board, out: Path) -> dict:
    """FINN's HLS/RTL code generation (no Vivado needed) and a Verilator lint of the RTL."""
    from .rtl import ops  # noqa: F401  (registers the project's RTL ops a --rtl-only graph holds)
    from .rtl_lint import lint_model
    from .rtlsim.tools import available
    from .timing.pipeline import SetPipelineDepths
    cfg = make_cfg(out, board)
    # the project's MVAU pipelining for this board's clock, kept on the folded graph too (the
    # stitched design and every later stage read it from there)
    folded = ModelWrapper(str(folded_graph)).transform(SetPipelineDepths(board.synth_family, board.fclk_mhz))
    folded.save(str(folded_graph))
    model = finn_steps.step_hw_codegen(folded, cfg)
    model.save(str(Path(out) / "codegen_hw_graph.onnx"))
    missing = available()["verilator"]
    if missing:
        return {"ran": False, "reason": missing}
    units = lint_model(model)
    report = {"ran": True, "units": len(units), "files": sum(u["files"] for u in units),
              "errors": sum(len(u["errors"]) for u in units),
              "warnings": sum(u["warnings"] for u in units), "failed_units": [u for u in units if not u["ok"]]}
    write_json_atomic(Path(out) / "rtl_lint.json", {**report, "all_units": units})
    return report


def run_vivado_stages(folded_graph: Path, board: Board, out: Path, golden_in: np.ndarray,
                      golden_out: np.ndarray, progress: bool = True) -> dict:
    """With Vivado 2024.2: IP, FIFO sizing, stitched IP verified in rtlsim against golden vectors,
    bitfile, PYNQ driver settings and the deployment package. Never called without Vivado."""
    from finn.builder.build_dataflow_config import VerificationStepType
    out = Path(out)
    np.save(out / "golden_input.npy", golden_in)          # raw uint8 crop, NHWC
    np.save(out / "golden_expected_output.npy", golden_out)  # classifier popcounts
    cfg = make_cfg(out, board)
    cfg.generate_outputs = [DataflowOutputType.ESTIMATE_REPORTS, DataflowOutputType.STITCHED_IP,
                            DataflowOutputType.BITFILE, DataflowOutputType.PYNQ_DRIVER,
                            DataflowOutputType.DEPLOYMENT_PACKAGE]
    cfg.verify_steps = [VerificationStepType.STITCHED_IP_RTLSIM]
    cfg.verify_input_npy = str(out / "golden_input.npy")
    cfg.verify_expected_output_npy = str(out / "golden_expected_output.npy")
    cfg.save_intermediate_models = True
    sized = out / FIFO_DEPTHS_FILE
    if sized.exists():  # the stitched Verilator simulation sized the FIFOs: FINN applies them instead of sizing its own
        cfg.auto_fifo_depths = False
        cfg.fifo_config_file = sized
    model = ModelWrapper(str(folded_graph))
    done = []
    for step in tqdm(VIVADO_STEPS, desc=f"{board.key}: Vivado stages", unit="step", disable=not progress):
        model = step(model, cfg)
        done.append(step.__name__)
    ver = sorted((out / "verification_output").glob("*stitched_ip_rtlsim*")) if (out / "verification_output").exists() else []
    from .timing import vivado as vivado_timing
    timing = vivado_timing.sign_off(out, board.fclk_mhz)   # raises TimingViolation on negative WNS
    return {"steps": done, "rtlsim_verification": [p.name for p in ver],
            "rtlsim_passed": bool(ver) and all("SUCCESS" in p.name for p in ver), "timing": timing}


def search_max_fps(hw_graph: Path, board: Board, out: Path, role_cfg: dict | None, layer_names: list[str],
                   lo: int = 100, hi: int = 20000, max_tries: int = 80, rtl_only: bool = False,
                   replay_batch: int = 0) -> tuple[int, dict, list[dict]]:
    """The fastest folding that fits the board among every distinct folding FINN's SetFolding makes for
    targets lo..hi. Fit is not monotonic in the target (FINN packs narrow, deep weight memories into
    block RAM worse than wide ones, and --rtl-only moves big ROMs between LUTs and block RAM), so a
    bisection can miss the window that fits; this walks the foldings upwards instead. SetFolding gives
    target t the cheapest folding whose rate f is >= t, and every target in (t, f] that same folding,
    so the next distinct folding is the one for floor(f) + 1. The walk ends where LUTs overflow (they
    only grow with parallelism), at a fitting folding DDR weight bandwidth caps (faster ones would only
    cost LUTs), past hi, or after max_tries. Returns (target, estimates) of the fastest fit (ties: the
    cheaper, first found; none fits: the first try) and one row per try."""
    def ddr_bound(e):
        return e["ddr_cap_crops_per_s"] is not None and e["finn_est_crops_per_s"] >= e["ddr_cap_crops_per_s"]

    tries, first, best, target = [], None, None, lo
    bar = tqdm(desc=f"{board.key}: walking the foldings for the fastest that fits", unit="folding", leave=False)
    while target <= hi and len(tries) < max_tries:
        est = run_estimates(hw_graph, board, out, target, role_cfg, layer_names, progress=False, rtl_only=rtl_only,
                            replay_batch=replay_batch)
        tries.append({"target": target, "est_crops_per_s": round(est["est_crops_per_s"], 1),
                      "lut_whole_design": est["lut_whole_design"], "bram36_whole_design": est["bram36_whole_design"],
                      "fits": est["fits"]})
        first = first or (target, est)
        if est["fits"] and (best is None or est["est_crops_per_s"] > best[1]["est_crops_per_s"]):
            best = (target, est)
        bar.update()
        bar.set_postfix(target=target, fits=est["fits"], best=round(best[1]["est_crops_per_s"]) if best else None)
        if (est["fits"] and ddr_bound(est)) or est["lut_whole_design"] > board.lut_limit * board.lut:
            break
        target = max(target + 1, math.floor(est["finn_est_crops_per_s"]) + 1)
    bar.close()
    target, est = best or first
    return target, est, tries


# -- verification ------------------------------------------------------------------------
def exec_graph(path_or_model, x: np.ndarray) -> np.ndarray:
    """Python execution of one graph on one input."""
    import qonnx.core.onnx_exec as oxe
    m = path_or_model if isinstance(path_or_model, ModelWrapper) else ModelWrapper(str(path_or_model))
    iname, oname = m.graph.input[0].name, m.graph.output[0].name
    return oxe.execute_onnx(m, {iname: x.astype(np.float32)})[oname]


def host_affine(model: ModelWrapper) -> tuple[np.ndarray, np.ndarray]:
    return parse_host_affine(model.get_metadata_prop(HOST_AFFINE_KEY), f"{HOST_AFFINE_KEY} of the HW graph")


def brevitas_reference(model_dir: Path, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(scores, integer classifier accumulators) of the Brevitas fp32 eval model, crops (N,42,42)."""
    import torch
    from bdnn.artifact import load
    from bdnn.nn import from_artifact
    model = from_artifact(load(model_dir))
    acc = []
    hook = model.fcs[-1].register_forward_hook(lambda m, i, o: acc.append(o.detach().numpy().copy()))
    with torch.no_grad():
        scores = model(torch.from_numpy(crops[:, None].astype(np.float32))).numpy()
    hook.remove()
    return scores, np.rint(acc[0]).astype(np.int64)


def popcounts_from_accumulators(art, hw: ModelWrapper, acc: np.ndarray) -> np.ndarray:
    """The classifier popcounts the accelerator outputs, from the model's integer +-1 accumulators
    (Brevitas or the cpu engine). Streamlining may fold a negative BN scale into the weights
    (popcount of the flipped row = K - matches); the host affine's sign tells which classes."""
    scale, _ = host_affine(hw)
    last = art.layer_names()[-1]
    k_last = art.spec.fc_layers()[-1][1]
    flipped = np.sign(scale) != np.sign(art.layers[last].bn.scale_shift()[0])
    return np.where(flipped, k_last - acc, k_last + acc) // 2


def verify_stages(fe: Frontend, crops: np.ndarray, progress: bool = True, score_atol: float = 1e-4) -> dict:
    """Brevitas vs QONNX vs FINN streamlined vs FINN HW-layer graph on uint8 crops (N,42,42).

    Labels must agree on every crop for every graph; the HW graph's integer outputs (classifier
    popcounts) must equal those implied by Brevitas' integer accumulators exactly; scores must
    agree within float rounding.
    """
    ref_scores, ref_acc = brevitas_reference(fe.model_dir, crops)
    hw = ModelWrapper(str(fe.hw_graph))
    scale, bias = host_affine(hw)
    from bdnn.artifact import load
    expected_pop = popcounts_from_accumulators(load(fe.model_dir), hw, ref_acc)
    graphs = {"qonnx": ModelWrapper(str(fe.qonnx)), "streamlined": ModelWrapper(str(fe.stages["streamlined"]))}
    report = {name: {"crops": 0, "label_mismatches": 0, "score_mismatches": 0, "max_abs_score_diff": 0.0}
              for name in (*graphs, "hw_layers")}
    report["hw_layers"]["accumulator_mismatches"] = 0
    for i in tqdm(range(len(crops)), desc="bit-exact check", unit="crop", disable=not progress):
        x_nchw = crops[i][None, None].astype(np.float32)
        for name, g in graphs.items():
            s = exec_graph(g, x_nchw).reshape(-1)
            _tally(report[name], s, ref_scores[i], score_atol)
        pop = exec_graph(hw, crops[i][None, :, :, None]).reshape(-1)
        s = pop * scale + bias
        _tally(report["hw_layers"], s, ref_scores[i], score_atol)
        report["hw_layers"]["accumulator_mismatches"] += int((pop != expected_pop[i]).any())
    report["crops"] = int(len(crops))
    report["mismatches"] = int(sum(r["label_mismatches"] + r["score_mismatches"] for r in report.values()
                                   if isinstance(r, dict)) + report["hw_layers"]["accumulator_mismatches"])
    return report


def _tally(rec: dict, s: np.ndarray, ref: np.ndarray, atol: float) -> None:
    rec["crops"] += 1
    d = float(np.abs(s - ref).max())
    rec["max_abs_score_diff"] = max(rec["max_abs_score_diff"], d)
    rec["label_mismatches"] += int(s.argmax() != ref.argmax())
    rec["score_mismatches"] += int(d > atol)
