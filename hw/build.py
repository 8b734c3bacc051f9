"""``build_scripts/build_<arch>.py``: one build driver for every network and board.

    python build_scripts/build_bdnn4.py [--board pynq-z2|ultra96|all] [--target-fps N]
                                        [--model DIR] [--out DIR] [--verify-crops N] [--data PATH]

Writes ``<out>/frontend/*.onnx`` (QONNX export and every FINN stage, board-independent),
``<out>/verification.json`` and, per board, ``<out>/<board>/summary.json`` plus FINN's reports.
Without Vivado the build stops cleanly after the estimates (exit status 0) and says what is
missing and why.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def parse_args(arch: str, argv=None):
    p = argparse.ArgumentParser(prog=f"build_{arch}.py", description=f"Compile {arch.upper()} with FINN for PYNQ-Z2/Ultra96.")
    p.add_argument("--board", default="all", help="pynq-z2 | ultra96 | all (default: all)")
    p.add_argument("--target-fps", type=int, default=None,
                   help="FINN folding target in crops/s (default: search the fastest folding that fits each board)")
    p.add_argument("--model", "--checkpoint", dest="model", default=str(REPO / "models" / arch),
                   help=f"model folder or model.npz (default: models/{arch})")
    p.add_argument("--out", default=None, help="output folder (default: build/<the model's architecture>)")
    p.add_argument("--verify-crops", type=int, default=5, help="PrivateTest crops to check bit-exactly (0: skip)")
    p.add_argument("--data", default=None, help="FER2013 npz/csv/folder (default: $FER2013_PATH or ../shared)")
    p.add_argument("--folding-config", default=None,
                   help="role-keyed folding/placement JSON (default: hw/folding/<arch>_<board>.json if present)")
    p.add_argument("--no-codegen", action="store_true",
                   help="skip HLS/RTL code generation and everything after it (lint, rtlsim, yosys)")
    p.add_argument("--rtlsim-crops", type=int, default=1,
                   help="PrivateTest crops to run through the HW graph with every RTL node simulated in Verilator (0: skip)")
    p.add_argument("--stitched-crops", type=int, default=20,
                   help="PrivateTest crops streamed back to back through the whole all-RTL design in Verilator "
                        "(FIFOs sized by simulation first; 0: skip)")
    p.add_argument("--rtl-only", action="store_true",
                   help="replace FINN's HLS-only layers (binary MVAU, max-pool, fork, concat) by the project's RTL ops "
                        "(hw/rtl; their LUT estimates are an analytical model, yosys measures them)")
    p.add_argument("--replay-batch", type=int, default=None, metavar="B",
                   help="layers whose weights stream from DDR become weight-replaying units (hw/rtl/replay_op.py) "
                        "that fetch each matrix once per batch of B crops (5: a face's five crops) instead of "
                        "once per output pixel of every crop; the host sends whole batches. Default: the "
                        "board's (PYNQ-Z2 5, Ultra96 0); 0: FINN's external weight mode")
    p.add_argument("--no-yosys", action="store_true", help="skip yosys (per RTL unit and the whole stitched design)")
    p.add_argument("--clock-mhz", type=float, default=None,
                   help="fabric clock (default: the board's, PYNQ-Z2 100, Ultra96 200): sets FINN's clock target, "
                        "the pipeline depth of the project's RTL units and the clock the timing estimate checks")
    a = p.parse_args(argv)
    if a.clock_mhz is not None and not 10 <= a.clock_mhz <= 800:
        p.error(f"--clock-mhz must be between 10 and 800 MHz, got {a.clock_mhz:g}")
    if a.replay_batch is not None and a.replay_batch < 0:
        p.error(f"--replay-batch must be >= 0, got {a.replay_batch}")
    from .boards import get_board
    if a.board != "all":
        try:
            get_board(a.board)
        except ValueError as e:
            p.error(str(e))
    # an explicit batch must divide the crops; a board's default batch rounds them up (open_tool_evidence)
    if a.replay_batch and a.stitched_crops % a.replay_batch:
        p.error(f"--stitched-crops {a.stitched_crops} must be a whole number of --replay-batch {a.replay_batch} "
                "batches")
    return a


def board_replay_batch(a, board) -> int:
    """--replay-batch if given, else the board's default."""
    return board.replay_batch if a.replay_batch is None else a.replay_batch


def verification_crops(n: int, data_path) -> tuple[np.ndarray, str]:
    """The first PrivateTest faces' five crops when FER2013 is available, else random uint8 crops."""
    from bdnn.data import DataError, load_fer2013
    from bdnn.preprocess import five_crops
    try:
        faces, _ = load_fer2013(data_path).split("PrivateTest")
        crops = five_crops(faces[: (n + 4) // 5]).reshape(-1, 42, 42)[:n]
        return crops, "FER2013 PrivateTest"
    except DataError as e:
        print(f"note: FER2013 not available ({e}); verifying on random uint8 crops instead")
        return np.random.default_rng(0).integers(0, 256, (n, 42, 42), dtype=np.uint8), "random uint8"


def build_board(a, art, fe, board, layer_names, verification: dict, bdir: Path) -> dict:
    """Folding + placement, estimates, codegen + RTL lint, Vivado stages when present; summary."""
    from . import finn_env
    from .flow import run_codegen_and_lint, run_estimates, search_max_fps, write_json_atomic
    from .folding import board_config_path, load_role_config
    from .report import board_report, plot_folding_search, plot_layers
    from bdnn import contract
    (bdir / contract.SUMMARY_FILE).unlink(missing_ok=True)  # never leave a stale summary behind
    shutil.rmtree(bdir / "report", ignore_errors=True)
    replay_batch = board_replay_batch(a, board)
    cfg_path = Path(a.folding_config) if a.folding_config else board_config_path(art.spec.name, board.key)
    role_cfg = load_role_config(cfg_path) if cfg_path.exists() else None
    for stale in (contract.FOLDING_SEARCH_FILE, contract.FOLDING_SEARCH_PLOT):
        (bdir / stale).unlink(missing_ok=True)
    search = None
    if a.target_fps:
        target, searched = a.target_fps, False
        print(f"[3/3] {board.key}: folding for {target} crops/s (FINN SetFolding"
              f"{' + ' + cfg_path.name if role_cfg else ''}) and estimates")
    else:
        print(f"[3/3] {board.key}: searching the fastest folding that fits"
              f"{' with placement ' + cfg_path.name if role_cfg else ''}")
        target, _, tries = search_max_fps(fe.hw_graph, board, bdir, role_cfg, layer_names, rtl_only=a.rtl_only,
                                          replay_batch=replay_batch)
        searched = True
        fitting = [t for t in tries if t["fits"]]
        search = {"foldings_tried": len(tries), "foldings_fitting": len(fitting), "file": contract.FOLDING_SEARCH_FILE}
        write_json_atomic(bdir / contract.FOLDING_SEARCH_FILE, tries)
        print(f"      walked {len(tries)} foldings (targets {tries[0]['target']}..{tries[-1]['target']}), "
              f"{len(fitting)} fit" + (f"; fastest fit: target {target}" if fitting else "; none fits"))
    est = run_estimates(fe.hw_graph, board, bdir, target, role_cfg, layer_names, rtl_only=a.rtl_only,
                        replay_batch=replay_batch)
    lint = {"ran": False, "reason": "--no-codegen"}
    evidence = {k: {"ran": False, "reason": "--no-codegen"} for k in ("sim", "rtl_synth", "stitched_sim", "synth")}
    if not a.no_codegen:
        print(f"      {board.key}: HLS/RTL code generation and Verilator lint")
        lint = run_codegen_and_lint(bdir / contract.FOLDED_GRAPH_FILE, board, bdir)
        if lint.get("ran"):
            print(f"      lint: {lint['units']} RTL units, {lint['errors']} errors")
        evidence = open_tool_evidence(a, fe, board, bdir)
    vivado = None
    if finn_env.vivado_available():
        from .flow import run_vivado_stages
        golden_in, golden_out = golden_vectors(fe, a.data)
        vivado = run_vivado_stages(bdir / contract.FOLDED_GRAPH_FILE, board, bdir, golden_in, golden_out)
        missing = "none" if vivado["rtlsim_passed"] else "stitched-IP rtlsim verification did not pass (see verification_output/)"
    else:
        missing = ("IP/stitched IP, rtlsim, bitfile, PYNQ driver and deployment package: "
                   + finn_env.vivado_missing_reason())
    summary = {
        "model": art.spec.name, "model_dir": str(a.model), "board": board.key, "fpga_part": board.fpga_part,
        "fclk_mhz": board.fclk_mhz, "target_crops_per_s": target, "folding_searched": searched, "folding_search": search,
        "rtl_only": bool(a.rtl_only), "replay_batch": int(replay_batch),
        "replay_batch_from": "board default" if a.replay_batch is None else "--replay-batch",
        "role_config": str(cfg_path.relative_to(REPO)) if role_cfg and cfg_path.is_relative_to(REPO) else (str(cfg_path) if role_cfg else None),
        "lut_budget": board.lut, "bram36_budget": board.bram36, "dsp_budget": board.dsp,
        "lut_limit": board.lut_limit, "bram_limit": board.bram_limit,
        **{k: v for k, v in est.items() if k != "layers"},
        "bit_exact_crops": verification["crops"], "bit_exact_mismatches": verification["mismatches"],
        "bit_exact_source": verification["source"], "rtl_lint": {k: v for k, v in lint.items() if k != "failed_units"},
        "throughput_target_crops_per_s": board.default_target_crops_per_s,
        "meets_target": bool(est["fits"] and est["est_crops_per_s"] >= board.default_target_crops_per_s),
        **evidence,
        "timing": design_timing(evidence),
        "vivado": vivado, "missing_outputs": missing, "layers": est["layers"],
    }
    write_deploy_files(fe, bdir / contract.DEPLOY_DIR, art.spec.name, board.key)
    (bdir / "report.md").write_text(board_report(summary))
    plot_layers(summary, bdir / "layers.png")
    if searched:
        plot_folding_search(tries, summary, bdir / contract.FOLDING_SEARCH_PLOT)
    write_json_atomic(bdir / contract.SUMMARY_FILE, summary)
    return summary


def design_timing(evidence: dict) -> dict:
    """The whole stitched design's timing estimate at the board's clock (bdnn_hw.timing)."""
    from .timing.sta import build_timing
    whole, st = evidence.get("synth") or {}, evidence.get("stitched_sim") or {}
    reason = whole.get("reason") or whole.get("error") or ("no stitched design" if not whole.get("ran") else None)
    return build_timing(whole.get("timing"), st.get("cycles_per_crop"), reason)


def open_tool_evidence(a, fe, board, bdir: Path) -> dict:
    """Open-tool evidence after codegen: every node in Verilator on real crops (FINN's RTL, and
    the project's RTL for FINN's HLS layers), yosys per RTL unit, the whole network stitched into
    one all-RTL design and streamed in Verilator, and yosys of that whole design."""
    from .flow import exec_graph
    from .rtlsim import board as open_hw
    crops = verification_crops(a.rtlsim_crops, a.data)[0] if a.rtlsim_crops > 0 else np.zeros((0, 42, 42), np.uint8)
    print(f"      {board.key}: every node in Verilator on {len(crops)} crop(s)"
          f"{'' if a.no_yosys else ', yosys synth_xilinx per RTL unit'}")
    sim, syn = open_hw.run(bdir / "codegen_hw_graph.onnx", board.fpga_part, bdir, crops,
                           lambda x: exec_graph(fe.hw_graph, x), synth=not a.no_yosys, family=board.synth_family,
                           clock_mhz=board.fclk_mhz)
    if sim.get("ran"):
        print(f"      rtlsim: {sim['crops']} crop(s), {sim['mismatches']} mismatches, "
              f"{sim['seconds_per_crop']:.0f} s per crop ({len(sim['evidence']['verilator'])} node kinds in Verilator, "
              f"{len(sim['evidence']['python'])} in Python only)")
    if syn.get("ran"):
        t = syn["totals"]
        print(f"      yosys: {len(syn['units'])} RTL units, {t['lut']:,} LUT ({t['lutram']:,} as memory), "
              f"{t['ff']:,} FF, {t['bram36']:g} BRAM36; {len(syn['errors'])} errors")
    n_stitched = a.stitched_crops
    if n_stitched > 0:
        from qonnx.core.modelwrapper import ModelWrapper

        from bdnn import contract

        from .rtl import ops  # noqa: F401  (registers the replay op)
        from .rtl.stitched_sim import replay_batch
        b = replay_batch(ModelWrapper(str(bdir / contract.FOLDED_GRAPH_FILE)))
        if n_stitched % b:  # replay units take whole batches (an explicit --replay-batch was checked up front)
            n_stitched += b - n_stitched % b
            print(f"      note: --stitched-crops {a.stitched_crops} rounded up to {n_stitched}, whole batches of "
                  f"the replay units' {b} crops")
    st_crops, source = (verification_crops(n_stitched, a.data) if n_stitched > 0
                        else (np.zeros((0, 42, 42), np.uint8), None))
    stitched, whole = open_hw.run_stitched(fe, bdir, board, st_crops, source, synth=not a.no_yosys)
    if stitched.get("error"):
        print(f"      stitched all-RTL design FAILED: {stitched['error'].splitlines()[0]}")
    elif stitched.get("ran"):
        print(f"      stitched all-RTL design: {stitched['crops']} crops, {stitched['mismatches']} mismatches, "
              f"{stitched['cycles_per_crop']:,.0f} cycles/crop = {stitched['measured_crops_per_s']:,.0f} crops/s at "
              f"{board.fclk_mhz:.0f} MHz, latency {stitched['latency_cycles']:,} cycles"
              + (f", DDR weights {stitched['ddr_weight_bytes_per_crop'] / 1e3:,.1f} kB/crop as simulated"
                 if stitched.get("ddr_weight_bytes_per_crop") else ""))
    if whole.get("ran") and "lut" in whole:
        print(f"      yosys (whole design): {whole['lut']:,} LUT, {whole['ff']:,} FF, {whole['bram36']:g} BRAM36, "
              f"fits: {whole['fits']}")
    if whole.get("timing"):
        t = whole["timing"]
        print(f"      timing (pre-route estimate): worst path {t['worst']['ns']:.2f} ns, {t['worst']['levels']} levels "
              f"in {t['worst']['unit'] or 'the top'}; est. Fmax {t['est_fmax_mhz']:.0f} MHz: "
              f"{'meets' if t['meets'] else 'MISSES'} {t['clock_mhz']:g} MHz ({100 * t['margin']:+.0f} %)")
    return {"sim": sim, "rtl_synth": syn, "stitched_sim": stitched, "synth": whole}


def golden_vectors(fe, data_path) -> tuple[np.ndarray, np.ndarray]:
    """One real crop (NHWC uint8) and the classifier popcounts FINN's HW graph gives for it."""
    from .flow import exec_graph
    crops, _ = verification_crops(1, data_path)
    x = crops[:1, :, :, None].astype(np.float32)
    return x, exec_graph(fe.hw_graph, x)


def write_deploy_files(fe, deploy: Path, arch: str, board: str) -> None:
    """What the on-board host needs besides bitfile + driver (bdnn.contract defines the folder)."""
    from bdnn import contract
    from qonnx.core.modelwrapper import ModelWrapper

    from .flow import host_affine
    hw = ModelWrapper(str(fe.hw_graph))
    scale, bias = host_affine(hw)
    contract.write_deploy_files(deploy, fe.model_dir, scale, bias, hw.get_metadata_prop(contract.MODEL_SHA_KEY),
                                arch=arch, board=board)


def main(arch: str, argv=None) -> int:
    a = parse_args(arch, argv)
    from bdnn.artifact import ArtifactError, load

    from .boards import BOARDS, get_board
    boards = list(BOARDS.values()) if a.board == "all" else [get_board(a.board)]
    if a.clock_mhz:
        import dataclasses
        boards = [dataclasses.replace(b, fclk_mhz=a.clock_mhz) for b in boards]
    try:
        art = load(a.model)
    except ArtifactError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if art.spec.name != arch:
        print(f"note: {a.model} holds a {art.spec.name} model (building it as asked)")
    # named after what is built, so a variant never overwrites the paper network's build
    from bdnn import contract
    out = Path(a.out) if a.out else REPO / contract.BUILD_DIR / art.spec.name

    from . import finn_env
    finn_env.ensure_finn(out / "finn_tmp")
    from .flow import run_frontend, verify_stages, write_json_atomic

    t0 = time.time()
    print(f"[1/3] {art.spec.name}: QONNX export and FINN front end -> {out / 'frontend'}")
    fe = run_frontend(Path(a.model), out / contract.FRONTEND_DIR)
    print(f"      front end done in {fe.seconds:.0f} s")

    verification = {"crops": 0, "mismatches": 0, "source": None}
    if a.verify_crops > 0:
        crops, source = verification_crops(a.verify_crops, a.data)
        print(f"[2/3] bit-exact check on {len(crops)} {source} crops: Brevitas vs QONNX vs FINN streamlined vs FINN HW layers")
        verification = {**verify_stages(fe, crops), "source": source}
        write_json_atomic(out / "verification.json", verification)
        print(f"      compared {verification['crops']} crops, {verification['mismatches']} mismatches")
    else:
        print("[2/3] bit-exact check skipped (--verify-crops 0)")

    rows = []
    layer_names = art.layer_names()
    for board in boards:
        rows.append(build_board(a, art, fe, board, layer_names, verification, out / board.key))
    print(f"\n{'board':<9} {'LUT':>14} {'BRAM36':>14} {'DSP':>5} {'fits':>5} {'crops/s':>9} {'faces/s':>8}  bottleneck")
    for s in rows:
        print(f"{s['board']:<9} {s['lut_whole_design']:>7} ({s['lut_util']:>4.0%}) {s['bram36_whole_design']:>7.1f} ({s['bram36_util']:>4.0%})"
              f" {s['dsp']:>5} {str(s['fits']):>5} {s['est_crops_per_s']:>9.0f} {s['est_faces_per_s']:>8.0f}  {s['bottleneck_layer']}")
    if not finn_env.vivado_available():
        print(f"\nStopped after the estimates: {finn_env.vivado_missing_reason()}.\n"
              "Not produced here: IP, stitched IP + rtlsim, bitfile, driver, deployment package (see README, Docker).")
    print(f"done in {time.time() - t0:.0f} s; summaries in {out}/<board>/summary.json")
    return 0
