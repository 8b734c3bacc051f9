"""The board build: both boards' summary.json, a clean stop without Vivado, reruns."""
import json

FIELDS = {"board", "fpga_part", "lut", "bram36", "dsp", "lut_budget", "bram36_budget", "fits", "fclk_mhz",
          "est_crops_per_s", "bit_exact_crops", "bit_exact_mismatches"}


def test_build_writes_both_summaries_and_stops_cleanly(tiny_model, tmp_path, monkeypatch, capsys, finn_build_dir):
    from bdnn_hw.build import main
    monkeypatch.delenv("XILINX_VIVADO", raising=False)
    out = tmp_path / "out"
    args = ["--model", str(tiny_model), "--out", str(out), "--verify-crops", "5", "--target-fps", "500"]
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


def test_build_rejects_a_missing_model(tmp_path, capsys):
    from bdnn_hw.build import main
    assert main("bdnn4", ["--model", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    assert "no model artifact" in capsys.readouterr().err
