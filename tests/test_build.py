"""The board build: both boards' summary.json, a clean stop without Vivado, reruns."""
import json

import pytest

FIELDS = {"board", "fpga_part", "lut", "bram36", "dsp", "lut_budget", "bram36_budget", "fits", "fclk_mhz",
          "est_crops_per_s", "bit_exact_crops", "bit_exact_mismatches"}


def test_build_writes_both_summaries_and_stops_cleanly(tiny_model, tmp_path, monkeypatch, capsys, finn_build_dir):
    from bdnn_hw.build import main
    monkeypatch.delenv("XILINX_VIVADO", raising=False)
    out = tmp_path / "out"
    # the open-tool evidence stages have their own tests (test_rtlsim, test_rtl, below): off here
    args = ["--model", str(tiny_model), "--out", str(out), "--verify-crops", "5", "--rtlsim-crops", "0",
            "--stitched-crops", "0", "--no-yosys", "--target-fps", "500"]
    assert main("bdnn4", args) == 0
    text = capsys.readouterr().out
    assert "XILINX_VIVADO is not set" in text and "Stopped after the estimates" in text
    for board, part in (("pynq-z2", "xc7z020clg400-1"), ("ultra96", "xczu3eg-sbva484-1-e")):
        s = json.loads((out / board / "summary.json").read_text())
        assert FIELDS <= set(s)
        assert s["board"] == board and s["fpga_part"] == part
        assert s["bit_exact_crops"] == 5 and s["bit_exact_mismatches"] == 0
        assert s["lut"] > 0 and s["est_crops_per_s"] > 0 and isinstance(s["fits"], bool)
        assert s["layers"] and s["bottleneck_layer"] in s["layers"]
    first = (out / "pynq-z2" / "summary.json").read_text()
    # a rerun replaces the outputs cleanly and gives the same figures
    assert main("bdnn4", args[:-2] + ["--target-fps", "500", "--board", "pynq-z2"]) == 0
    again = json.loads((out / "pynq-z2" / "summary.json").read_text())
    assert again["lut"] == json.loads(first)["lut"]
    assert not list(out.rglob("*.tmp"))


def test_a_searched_build_records_its_folding_walk(tiny_model, tmp_path, monkeypatch, finn_build_dir):
    """Without --target-fps the build walks the foldings (bounded here to keep it short) and keeps the
    walk: one row per folding in folding_search.json, its plot, the counts in summary.json and report.md."""
    import functools
    from bdnn import contract
    from bdnn_hw import flow
    from bdnn_hw.build import main
    monkeypatch.setattr(flow, "search_max_fps", functools.partial(flow.search_max_fps, lo=300, hi=900))
    out = tmp_path / "out"
    assert main("bdnn4", ["--model", str(tiny_model), "--out", str(out), "--board", "pynq-z2", "--no-codegen",
                          "--verify-crops", "0"]) == 0
    bdir = out / "pynq-z2"
    s = json.loads((bdir / contract.SUMMARY_FILE).read_text())
    tries = json.loads((bdir / contract.FOLDING_SEARCH_FILE).read_text())
    assert s["folding_searched"] and s["folding_search"]["foldings_tried"] == len(tries) >= 2
    assert [t["target"] for t in tries] == sorted({t["target"] for t in tries}) and tries[0]["target"] == 300
    fitting = [t for t in tries if t["fits"]]
    assert s["folding_search"]["foldings_fitting"] == len(fitting)
    assert s["target_crops_per_s"] == max(fitting, key=lambda t: t["est_crops_per_s"])["target"]
    assert (bdir / contract.FOLDING_SEARCH_PLOT).stat().st_size > 0
    assert f"of {len(tries)} foldings tried fit ({contract.FOLDING_SEARCH_FILE})" in (bdir / "report.md").read_text()


def test_build_rejects_a_missing_model(tmp_path, capsys):
    from bdnn_hw.build import main
    assert main("bdnn4", ["--model", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    assert "no model artifact" in capsys.readouterr().err


def test_build_records_the_open_tool_evidence(tiny_model, tmp_path, finn_build_dir):
    """One board with every evidence stage on: node-by-node Verilator, yosys per unit, the stitched
    all-RTL design streamed on real crops, yosys of the whole design; all in summary.json and report.md."""
    from bdnn_hw.build import main
    out = tmp_path / "out"
    assert main("bdnn4", ["--model", str(tiny_model), "--out", str(out), "--board", "pynq-z2", "--verify-crops", "1",
                          "--rtlsim-crops", "1", "--stitched-crops", "3", "--target-fps", "500"]) == 0
    s = json.loads((out / "pynq-z2" / "summary.json").read_text())
    sim, st, syn, whole = s["sim"], s["stitched_sim"], s["rtl_synth"], s["synth"]
    assert sim["ran"] and sim["crops"] == 1 and sim["mismatches"] == 0 and not sim["evidence"]["python"]
    assert {"MVAU/bdnn_rtl", "Thresholding_rtl", "ConvolutionInputGenerator_rtl"} <= set(sim["nodes_by_kind"])
    assert st["ran"] and st["crops"] == 3 and st["mismatches"] == 0 and st["measured_crops_per_s"] > 0
    assert st["cycles_per_crop"] <= s["max_cycles"] * 1.10
    assert syn["ran"] and not syn["errors"] and syn["project_rtl"]["units"] > 0
    assert whole["ran"] and whole["lut"] > 0 and whole["fits"] is True
    report = (out / "pynq-z2" / "report.md").read_text()
    assert "whole network as one all-RTL design" in report and "0 mismatches" in report
    # the timing estimate of the whole design at the board's clock, its worst paths in the report
    t = s["timing"]
    assert t["ran"] and t["clock_mhz"] == 100.0 and t["family"] == "xc7" and "cells_sim.v" in t["delay_model"]
    assert t["worst"]["ns"] > 0 and t["worst"]["levels"] >= 0 and t["est_fmax_mhz"] == pytest.approx(1000 / t["worst"]["ns"], rel=0.01)
    assert t["meets"] == (t["worst"]["ns"] <= 10.0) and sum(t["levels_distribution"].values()) == t["endpoints"]
    assert t["crops_per_s_at_clock"] == pytest.approx(100e6 / st["cycles_per_crop"], rel=1e-3)
    assert len(whole["timing"]["paths"]) == 10 and "Timing (the whole stitched design)" in report
    assert all("timing" in u for u in syn["units"].values())
