"""The pre-route timing estimate (hw/timing): exact depth and delay on hand-built netlists, the cell
figures read from yosys' own library, and the project's MVAU pipelined and not (the check can fail)."""
from __future__ import annotations

import json
import math

import pytest


def _netlist(cells: dict, ports: dict) -> dict:
    return {"modules": {"top": {"attributes": {"top": "00000000000000000000000000000001"},
                                "ports": ports, "cells": cells, "netnames": {}}}}


def _cell(t: str, conns: dict, dirs: dict, params: dict | None = None) -> dict:
    return {"type": t, "connections": conns, "port_directions": dirs, "parameters": params or {}}


FF_DIRS = {"C": "input", "CE": "input", "R": "input", "D": "input", "Q": "output"}


def test_library_figures_come_from_yosys_cells_sim():
    from bdnn_hw.timing.delays import cell_timing, cells_sim_path
    text = cells_sim_path().read_text()
    assert "(I0 => O) = 642;" in text                      # LUT6's slowest pin, as the analysis uses it
    lut6, ff, bram, c8 = cell_timing("LUT6"), cell_timing("FDRE"), cell_timing("RAMB36E1"), cell_timing("CARRY8")
    assert lut6.comb[("I0", "O")] == 642 and lut6.comb[("I5", "O")] == 127
    assert ff.clk_to_out["Q"] == 303 and ff.setup["CE"] == 109
    assert bram.clk_to_out["DOADO"] == 2454 and bram.clk_to_out_reg["DOADO"] == 882
    c4 = cell_timing("CARRY4")
    assert c8.comb[("CI", "CO[7]")] == 2 * c4.comb[("CI", "CO[3]")]   # two CARRY4 in series


def test_hand_built_path_has_exactly_the_known_depth_and_delay():
    """FF -> LUT2 (pin I0) -> LUT6 (pin I3) -> FF, plus a fanout-4 net: every term by hand."""
    from bdnn_hw.timing import analyze
    from bdnn_hw.timing.delays import FAMILIES
    cells = {
        "a": _cell("FDRE", {"C": [2], "CE": ["1"], "R": ["0"], "D": [9], "Q": [3]}, FF_DIRS),
        "l1": _cell("LUT2", {"I0": [3], "I1": ["0"], "O": [4]}, {"I0": "input", "I1": "input", "O": "output"}),
        "l2": _cell("LUT6", {"I0": ["0"], "I1": ["0"], "I2": ["0"], "I3": [4], "I4": ["0"], "I5": ["0"], "O": [5]},
                    {**{f"I{i}": "input" for i in range(6)}, "O": "output"}),
        # l2's output fans out to four flip-flops
        **{f"b{k}": _cell("FDRE", {"C": [2], "CE": ["1"], "R": ["0"], "D": [5], "Q": [10 + k]}, FF_DIRS) for k in range(4)},
        "c": _cell("FDRE", {"C": [2], "CE": ["1"], "R": ["0"], "D": [3], "Q": [9]}, FF_DIRS),
    }
    rep = analyze(_netlist(cells, {"clk": {"direction": "input", "bits": [2]}}), 100.0, "xc7")
    f = FAMILIES["xc7"]
    expect = 303 + 1000 * f.net_ns(2) + 238 + 1000 * f.net_ns(1) + 407 + 1000 * f.net_ns(4) + 0
    assert rep.worst["levels"] == 2 and rep.worst["lut_levels"] == 2
    assert rep.worst["ns"] == pytest.approx(expect / 1000, abs=1e-3)
    assert rep.worst["start"] == "a/Q" and rep.worst["end"].startswith("b") and rep.worst["end"].endswith("(D)")
    assert rep.est_fmax_mhz == pytest.approx(1e6 / expect, abs=0.1)
    assert rep.meets and rep.levels_distribution == {"0": 2, "2": 4}   # a <-> c directly, b0..b3 through both LUTs
    # the same netlist at a clock the path cannot make
    slow = analyze(_netlist(cells, {"clk": {"direction": "input", "bits": [2]}}), 1e6 / expect * 1.01, "xc7")
    assert not slow.meets and slow.margin < 0


def test_carry_chain_block_ram_and_ports():
    """Input port -> CARRY4 S[0] -> CO[3] -> CARRY4 CI -> O[2] -> output port; a block RAM read with
    and without its output register."""
    from bdnn_hw.timing import analyze
    from bdnn_hw.timing.delays import FAMILIES
    from bdnn_hw.timing.sta import PORT_CLK_TO_OUT_PS, PORT_SETUP_PS
    cdirs = {"CI": "input", "CYINIT": "input", "DI": "input", "S": "input", "O": "output", "CO": "output"}
    cells = {
        "c0": _cell("CARRY4", {"CI": ["0"], "CYINIT": ["0"], "DI": ["0"] * 4, "S": [3, "0", "0", "0"],
                               "O": [20, 21, 22, 23], "CO": [24, 25, 26, 27]}, cdirs),
        "c1": _cell("CARRY4", {"CI": [27], "CYINIT": ["0"], "DI": ["0"] * 4, "S": ["0"] * 4,
                               "O": [30, 31, 32, 33], "CO": [34, 35, 36, 37]}, cdirs),
    }
    ports = {"a": {"direction": "input", "bits": [3]}, "y": {"direction": "output", "bits": [32]}}
    rep = analyze(_netlist(cells, ports), 100.0, "xc7")
    f = FAMILIES["xc7"]
    # the CO[3] -> CI cascade is a dedicated wire: no routing allowance on it
    expect = PORT_CLK_TO_OUT_PS + 1000 * f.net_ns(1) + 508 + 0 + 239 + 1000 * f.net_ns(1) + PORT_SETUP_PS
    assert rep.worst["levels"] == 2 and rep.worst["lut_levels"] == 0
    assert rep.worst["ns"] == pytest.approx(expect / 1000, abs=1e-3)
    for reg, clk_to_out in ((0, 2454), (1, 882)):
        ram = {"r": _cell("RAMB36E1", {"CLKARDCLK": [2], "DOADO": [5]}, {"CLKARDCLK": "input", "DOADO": "output"},
                          {"DOA_REG": f"{reg:032b}"}),
               "f": _cell("FDRE", {"C": [2], "CE": ["1"], "R": ["0"], "D": [5], "Q": [6]}, FF_DIRS)}
        r = analyze(_netlist(ram, {"clk": {"direction": "input", "bits": [2]}}), 100.0, "xc7")
        assert r.worst["ns"] == pytest.approx((clk_to_out + 1000 * f.net_ns(1)) / 1000, abs=1e-3)
        assert r.worst["levels"] == 0


def test_hierarchy_names_the_unit_a_path_ends_in():
    from bdnn_hw.timing import analyze
    sub = {"attributes": {}, "ports": {"d": {"direction": "input", "bits": [2]}, "q": {"direction": "output", "bits": [3]},
                                       "clk": {"direction": "input", "bits": [4]}},
           "cells": {"l": _cell("LUT1", {"I0": [2], "O": [5]}, {"I0": "input", "O": "output"}),
                     "f": _cell("FDRE", {"C": [4], "CE": ["1"], "R": ["0"], "D": [5], "Q": [3]}, FF_DIRS)},
           "netnames": {}}
    top = {"attributes": {"top": 1}, "ports": {"clk": {"direction": "input", "bits": [2]}},
           "cells": {"u0": {"type": "sub", "connections": {"d": [7], "q": [8], "clk": [2]}, "port_directions": {}},
                     "u1": {"type": "sub", "connections": {"d": [8], "q": [7], "clk": [2]}, "port_directions": {}}},
           "netnames": {}}
    rep = analyze({"modules": {"top": top, "sub": sub}}, 100.0, "xc7")
    assert set(rep.per_unit) == {"u0", "u1"}
    assert rep.worst["unit"] in ("u0", "u1") and rep.worst["levels"] == 1
    assert rep.worst["start"].endswith("/f/Q") and rep.worst["end"].endswith("/f/D (D)")


def _mvau_timing(tmp_path, family: str, mhz: float, **params) -> dict:
    """bnn_mvau synthesized alone (yosys synth_xilinx) with its timing estimate."""
    from bdnn_hw.rtl import HDL
    from bdnn_hw.rtlsim.synth import synthesize
    p = ", ".join(f".{k}({v})" for k, v in params.items())
    top = tmp_path / f"mvau_{family}_{abs(hash(p))}.sv"
    top.write_text(
        "module mvau_top (input logic clk, rst_n, input logic [511:0] in_tdata, input logic in_tvalid, output logic in_tready,\n"
        "  input logic [511:0] w_tdata, input logic w_tvalid, output logic w_tready,\n"
        "  output logic [15:0] out_tdata, output logic out_tvalid, input logic out_tready);\n"
        f"  bnn_mvau #({p}, .IN_WIDTH(512), .W_WIDTH(512), .OUT_WIDTH(16)) u (.*);\nendmodule\n")
    r = synthesize("mvau_top", [str(HDL / "bnn_mvau.sv"), str(HDL / "stream_fifo.sv"), str(top)], str(tmp_path),
                   family=family, clock_mhz=mhz)
    return r


UNIT = dict(MW=1024, MH=16, SIMD=512, PE=1, IN_BITS=1, W_BITS=1, OUT_BITS=11)


@pytest.mark.rtlsim
@pytest.mark.parametrize("family,mhz", [("xc7", 100.0), ("xcup", 200.0)])
def test_pipelined_mvau_meets_the_boards_clocks(tmp_path, family, mhz):
    """512 lanes, pipelined as the build chooses for the clock: meets it with the margin the choice
    asks for, and no register-to-register path deeper than the goal's LUT levels."""
    from bdnn_hw.timing.pipeline import MARGIN, mvau_pipeline
    pipe = mvau_pipeline(family, mhz, xnor=True)
    r = _mvau_timing(tmp_path, family, mhz, **UNIT, **pipe.params())
    t = r["timing"]
    print(family, mhz, pipe, t["worst"], r["lut"], r["ff"])
    assert t["meets"] and t["margin"] >= MARGIN - 0.02
    assert t["worst"]["lut_levels"] <= (8 if mhz <= 100 else 5)


@pytest.mark.rtlsim
def test_the_same_mvau_unpipelined_fails_200_mhz(tmp_path):
    """The check can fail: the whole 512-lane popcount in one stage (GROUP = 0) misses the
    Ultra96's clock by the same analysis."""
    r = _mvau_timing(tmp_path, "xcup", 200.0, **UNIT, GROUP=0, TREE_PER_STAGE=1)
    t = r["timing"]
    print(t["worst"])
    assert not t["meets"] and t["worst"]["lut_levels"] >= 8


def test_flattened_names_give_the_unit():
    """A netlist flattened by yosys keeps hierarchical net names: a register is named by its net and
    its unit is the first part of that name."""
    from bdnn_hw.timing import analyze
    cells = {
        "$auto$1": _cell("FDRE", {"C": [2], "CE": ["1"], "R": ["0"], "D": [4], "Q": [3]}, FF_DIRS),
        "$auto$2": _cell("LUT1", {"I0": [3], "O": [4]}, {"I0": "input", "O": "output"}),
    }
    nl = _netlist(cells, {"clk": {"direction": "input", "bits": [2]}})
    nl["modules"]["top"]["netnames"] = {"MVAU_3_i.core.acc": {"bits": [3], "hide_name": 0},
                                        "$abc$9": {"bits": [4], "hide_name": 1}}
    rep = analyze(nl, 100.0, "xc7")
    assert rep.worst["start"] == "MVAU_3_i.core.acc" and rep.worst["end"] == "MVAU_3_i.core.acc (D)"
    assert rep.worst["unit"] == "MVAU_3_i" and set(rep.per_unit) == {"MVAU_3_i"}


REPORT = """------------------------------------------------------------------------------------------------
| Design Timing Summary
| ---------------------
------------------------------------------------------------------------------------------------

    WNS(ns)      TNS(ns)  TNS Failing Endpoints  TNS Total Endpoints      WHS(ns)      THS(ns)
    -------      -------  ---------------------  -------------------      -------      -------
     {wns}        0.000                      0                98765        0.021        0.000
"""


def test_vivado_sign_off_fails_on_negative_slack():
    """The gated Vivado stage: the clock constraint it writes, and WNS < 0 in report_timing_summary
    fails the build (the parser on Vivado's table layout)."""
    from bdnn_hw.timing import vivado
    assert vivado.clock_constraint(200.0) == "create_clock -name ap_clk -period 5.000 [get_ports ap_clk]\n"
    ok = vivado.check(REPORT.format(wns="0.412"), 100.0)
    assert ok["meets"] and ok["wns_ns"] == 0.412 and ok["fmax_mhz"] == pytest.approx(1000 / (10 - 0.412), abs=0.1)
    with pytest.raises(vivado.TimingViolation, match="misses 200 MHz: WNS -0.731"):
        vivado.check(REPORT.format(wns="-0.731"), 200.0)
    with pytest.raises(ValueError, match="Design Timing Summary"):
        vivado.parse_wns("no table here")


@pytest.mark.rtlsim
def test_the_weight_roms_ready_reaches_no_block_ram_address(tmp_path):
    """bnn_weight_rom issues its reads on credit: the consumer's ready ends at the queue's read side,
    never at a block RAM's address or enable; the MVAU with its weights inside reads them at its own
    step counter: neither its input's valid nor its consumer's ready reaches the block RAM. The
    single-cycle ROM before them drove the address from ready (the check can fail)."""
    import subprocess

    import numpy as np

    from bdnn_hw.rtl import HDL
    from bdnn_hw.rtl.stitch import write_hex
    from bdnn_hw.rtlsim.tools import yosys_cmd
    from bdnn_hw.timing.sta import port_cone
    from conftest import REPO
    old = tmp_path / "old"
    old.mkdir()
    (old / "bnn_weight_rom.sv").write_text(subprocess.run(
        ["git", "-C", str(REPO), "show", "5c7c38e:hw/rtl/hdl/bnn_weight_rom.sv"], capture_output=True, text=True,
        check=True).stdout)
    (old / "stream_fifo.sv").write_text((HDL / "stream_fifo.sv").read_text())
    new = tmp_path / "new"
    new.mkdir()
    for f in ("bnn_weight_rom.sv", "bnn_rom.sv", "bnn_mvau.sv", "stream_fifo.sv"):
        (new / f).write_text((HDL / f).read_text())
    read = "read_slang -j 1 -D BDNN_YOSYS "
    rom = "-G WIDTH=64 -G DEPTH=512 -G INIT_FILE=\"w.dat\" -G RAM_STYLE=\"block\" "
    # the MVAU with its weights inside (the stitched design's on-chip weights): 64-bit words, 512 deep
    mvau = ("-G MW=256 -G MH=128 -G SIMD=32 -G PE=2 -G OUT_BITS=9 -G GROUP=8 -G TREE_PER_STAGE=2 "
            "-G WEIGHTS=\"rom\" -G W_INIT=\"w.dat\" -G W_STYLE=\"block\" ")
    runs = {"old": (old, read + rom + "bnn_weight_rom.sv stream_fifo.sv --top bnn_weight_rom", "bnn_weight_rom"),
            "new": (new, read + rom + "bnn_weight_rom.sv bnn_rom.sv stream_fifo.sv --top bnn_weight_rom", "bnn_weight_rom"),
            "mvau": (new, read + mvau + "bnn_mvau.sv bnn_rom.sv stream_fifo.sv --top bnn_mvau", "bnn_mvau")}
    cones = {}
    for name, (d, cmd, top) in runs.items():
        write_hex(np.random.default_rng(0).integers(0, 2**32, (512, 2), dtype=np.uint64).astype(np.uint32), 64, d / "w.dat")
        subprocess.run([*yosys_cmd(), "-q", "-p", f"{cmd}; synth_xilinx -flatten -family xc7 -noiopad -top {top}; "
                        f"write_json {name}.json"], cwd=d, check=True, capture_output=True)
        net = json.loads((d / f"{name}.json").read_text())
        cones[name] = port_cone(net, "out_tready")
        if name == "mvau":
            assert any(c["type"].startswith("RAMB") for m in net["modules"].values() for c in m["cells"].values())
            cones["mvau_in"] = port_cone(net, "in_tvalid")
    ram = lambda cone: {(t, p) for t, p in cone if t.startswith("RAMB")}
    print(cones)
    assert ram(cones["old"]), "the old ROM's ready should reach the block RAM (the check must be able to fail)"
    for k in ("new", "mvau", "mvau_in"):
        assert not ram(cones[k]) and cones[k], k


def test_probe_ports_start_and_end_no_path():
    """The stitched design's simulation probes are top-level ports but not hardware: ignored."""
    from bdnn_hw.rtl.stitch import PROBE_PORTS
    from bdnn_hw.timing import analyze
    cells = {"f": _cell("FDRE", {"C": [2], "CE": ["1"], "R": ["0"], "D": [3], "Q": [4]}, FF_DIRS),
             "l": _cell("LUT6", {**{f"I{i}": [4] for i in range(6)}, "O": [5]}, {**{f"I{i}": "input" for i in range(6)}, "O": "output"})}
    ports = {"clk": {"direction": "input", "bits": [2]}, "d": {"direction": "input", "bits": [3]},
             "e7_max": {"direction": "output", "bits": [5]}}
    with_probe = analyze(_netlist(cells, ports), 100.0, "xc7")
    without = analyze(_netlist(cells, ports), 100.0, "xc7", ignore_ports=PROBE_PORTS)
    assert with_probe.worst["end"] == "port e7_max[0]" and with_probe.worst["levels"] == 1
    assert without.worst["end"] == "f/D (D)" and without.worst["levels"] == 0


def test_probe_ports_and_their_logic_are_not_synthesized(tmp_path):
    """The probes' own logic (a FIFO's high-water register) is not hardware: dropped ports take it
    along, so neither the counts nor the timing estimate see it; the data path stays."""
    from bdnn_hw.rtl.stitch import PROBE_PORT_GLOBS, PROBE_PORTS
    from bdnn_hw.rtlsim.synth import synthesize
    (tmp_path / "t.sv").write_text(
        "module t (input logic clk, input logic [7:0] d, output logic [7:0] q, output logic [31:0] e7_max);\n"
        "  logic [31:0] hw;\n  always_ff @(posedge clk) begin q <= d; if (32'(d) > hw) hw <= 32'(d); end\n"
        "  assign e7_max = hw;\nendmodule\n")
    kept = synthesize("t", [str(tmp_path / "t.sv")], str(tmp_path), clock_mhz=100.0, timing_ignore_ports=PROBE_PORTS)
    dropped = synthesize("t", [str(tmp_path / "t.sv")], str(tmp_path), clock_mhz=100.0, timing_ignore_ports=PROBE_PORTS,
                         drop_ports=PROBE_PORT_GLOBS)
    assert kept["ff"] == 8 + 8 and kept["lut"] > 0          # q, and the 8 bits the high-water mark can take
    assert dropped["ff"] == 8 and dropped["timing"]["worst"]["levels"] == 0
