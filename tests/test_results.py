"""The README results table is built from the model cards, never typed by hand."""
import json

import pytest

from bdnn.cli import main
from bdnn.results import PAPER_ACCURACY, markdown_table, results_rows


def _card(center, mean, vote, run=8, planned=8, best=8, hours=1.0, loss="ce"):
    return {"accuracy": {"PrivateTest": {"acc_center": center, "acc_fivecrop_mean": mean, "acc_fivecrop_vote": vote}},
            "epochs_run": run, "epochs_planned": planned, "best_epoch": best, "train_hours": hours,
            "recipe": {"loss": loss}}


def test_rows_take_measured_numbers_from_cards():
    cards = {"bdnn4": _card(0.60, 0.625, 0.62, run=14, planned=16, best=13, hours=1.73),
             "bdnn4-hw": _card(0.5, 0.55, 0.54, hours=0.5)}
    rows = {r["row"]: r for r in results_rows(cards)}
    assert rows["bdnn4"]["paper"] == PAPER_ACCURACY["bdnn4"] == 66.15
    assert rows["bdnn4"]["measured"] == pytest.approx(62.5) and rows["bdnn4"]["epochs"] == "14 of 16 planned (best: 13)"
    assert rows["bdnn4 without five-crop"]["measured"] == pytest.approx(60.0)  # centre crop of the same model
    assert rows["bdnn2"]["measured"] is None
    assert rows["bdnn4-hw"]["paper"] is None and rows["bdnn4-hw"]["measured"] == pytest.approx(55.0)
    table = markdown_table(list(rows.values()))
    assert "| bdnn2 | 61.50 % | not trained yet |" in table
    assert "62.50 % (vote 62.00 %)" in table and "| bdnn4-hw | — | 55.00 %" in table


def test_results_command_reads_a_models_folder(tmp_path, capsys):
    (tmp_path / "bcnn4").mkdir()
    (tmp_path / "bcnn4" / "card.json").write_text(json.dumps(_card(0.5, 0.51, 0.5, run=4, planned=4, best=4, hours=0.4)))
    assert main(["results", "--models-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| bcnn4 | 64.90 % | 51.00 % (vote 50.00 %) | 4 | ce | 0.40 h |" in out
    assert main(["results", "--models-dir", str(tmp_path / "none")]) == 2
    assert "no model cards" in capsys.readouterr().err


def test_pareto_points_front_and_notes():
    from bdnn.results import pareto_points
    cards = {"a": _card(0.5, 0.66, 0.6), "b": _card(0.5, 0.60, 0.6), "c": _card(0.5, 0.55, 0.5),
             "d": _card(0.5, 0.70, 0.7), "t": {**_card(0.7, 0.72, 0.7), "role": "teacher"}}
    est = {"boards": {"x": {}}, "estimates": [
        {"model": "a", "board": "x", "crops_per_s": 100}, {"model": "b", "board": "x", "crops_per_s": 300},
        {"model": "c", "board": "x", "crops_per_s": 200}, {"model": "gone", "board": "x", "crops_per_s": 5}]}
    points, notes = pareto_points(cards, est)
    front = {p["model"]: p["pareto"] for p in points}
    assert front == {"a": True, "b": True, "c": False}  # c: b is faster and more accurate; the teacher is no point
    assert any(n.startswith("d: no FINN estimate") for n in notes) and any(n.startswith("gone:") for n in notes)


def test_packaged_estimates_cover_every_shipped_model_and_board():
    """The data file behind `bdnn results --plot` (FINN estimates, README table) has every shipped model
    on both boards; a newly shipped model needs benchmarks/bench_estimates.py --json."""
    from bdnn.results import load_cards, load_estimates
    from conftest import REPO
    est = load_estimates()
    assert "bench_estimates.py" in est["source"] and set(est["boards"]) == {"pynq-z2", "ultra96"}
    have = {(e["model"], e["board"]) for e in est["estimates"]}
    hardware = [m for m, c in load_cards(REPO / "models").items() if c.get("role") != "teacher"]
    assert hardware and {(m, b) for m in hardware for b in est["boards"]} <= have


def test_results_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    for name, acc in (("bdnn4", 0.66), ("bdnn4-hw", 0.51)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "card.json").write_text(json.dumps(_card(0.6, acc, acc)))
    png = tmp_path / "pareto.png"
    assert main(["results", "--models-dir", str(tmp_path), "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert png.stat().st_size > 10_000 and "| pynq-z2 | bdnn4-hw | 51.00 % | 1,181 | yes |" in out
    est = tmp_path / "est.json"
    est.write_text(json.dumps({"boards": {"pynq-z2": {}}, "estimates": []}))
    assert main(["results", "--models-dir", str(tmp_path), "--plot", str(png), "--estimates", str(est)]) == 2
    assert "no shipped model has a FINN estimate" in capsys.readouterr().err


def test_verified_points_are_the_shipped_weights_bit_exact_designs(tmp_path, tiny_model):
    """The Pareto figure's measured points: a record counts for a model only with that model's weights
    and 0 mismatches; its simulated rate and yosys's fit come along."""
    import shutil

    from bdnn.contract import MODEL_SHA_KEY, model_sha256
    from bdnn.results import verified_markdown, verified_points
    models, ev = tmp_path / "models", tmp_path / "evidence"
    shutil.copytree(tiny_model, models / "bdnn4")
    ev.mkdir()
    sha = model_sha256(models / "bdnn4")

    def record(name, sha, mismatches=0, fits=True, design="default", timing=None):
        (ev / f"{name}.json").write_text(json.dumps({
            "board": name.split("_")[1], "design": design, MODEL_SHA_KEY: sha,
            "stitched_sim": {"mismatches": mismatches, "measured_crops_per_s": 1300.4, "fclk_mhz": 100.0},
            "synth": {"fits": fits, "lut": 41913, "bram36": 113.0}, **({"timing": timing} if timing else {})}))
    record("bdnn4_pynq-z2_fast", sha, design="--rtl-only",
           timing={"ran": True, "meets": False, "est_fmax_mhz": 81.5, "crops_per_s_at_est_fmax": 1059.8})
    record("bdnn4_pynq-z2", "0" * 64)                        # other weights
    record("bdnn4_ultra96", sha, mismatches=1)               # not bit-exact
    record("bdnn4_ultra96_big", sha, fits=False)
    record("bcnn4_pynq-z2", sha)                             # no such shipped model
    pts = verified_points({"bdnn4": _card(0.6, 0.6676, 0.66)}, models, ev)
    assert [(p["board"], p["design"], p["crops_per_s"], p["fits"]) for p in pts] == [
        ("pynq-z2", "--rtl-only", 1300, True), ("ultra96", "default", 1300, False)]
    assert pts[0]["accuracy"] == pytest.approx(66.76)
    table = verified_markdown(pts)
    # every rate states its clock and the timing estimate's verdict (a miss gives the rate at the estimated Fmax)
    assert ("| pynq-z2 | bdnn4 | --rtl-only | 66.76 % | 1,300 | 100 MHz | **misses** (est. Fmax 81.5 MHz: 1,060 crops/s) "
            "| 41,913 / 113 | yes |") in table
    assert "| ultra96 | bdnn4 | default | 66.76 % | 1,300 | 100 MHz | not estimated |" in table


def test_robustness_table_from_reports(tmp_path, tiny_model, capsys):
    import shutil

    from bdnn.contract import model_sha256
    from bdnn.results import robustness_markdown
    rep = {"n": 3, "clean": {"acc_fivecrop_mean": 0.6648}, "perturbations": [
        {"name": "jpeg-30", "drop_points": 4.82}, {"name": "shift-2", "drop_points": 1.37}]}
    for name, sha in (("bdnn4", model_sha256(tiny_model)), ("bcnn4", "0" * 64)):
        shutil.copytree(tiny_model, tmp_path / name)
        (tmp_path / name / "card.json").write_text(json.dumps(_card(0.5, 0.6648, 0.66)))
        (tmp_path / name / "robustness.json").write_text(json.dumps({**rep, "model_sha256": sha}))
    table = robustness_markdown(tmp_path)
    assert "| bdnn4 | 66.48 % | **+4.82** | +1.37 |" in table  # over the 2-point aim: bold
    assert "| bcnn4 (stale: another model file) |" in table
    assert main(["results", "--models-dir", str(tmp_path), "--robustness"]) == 0
    assert "| model | clean | jpeg-30 | shift-2 |" in capsys.readouterr().out
    assert "no robustness reports" in robustness_markdown(tmp_path / "none")


def test_readme_tables_are_the_generated_ones():
    """Every row of the tables `bdnn results --targets --robustness` generates from the shipped cards stands
    verbatim in the README: a re-ship that forgets to regenerate them, or a hand edit, fails here."""
    from bdnn.contract import HW_EVIDENCE_DIR
    from bdnn.results import (load_cards, load_estimates, robustness_markdown, target_rows, targets_markdown,
                              verified_markdown, verified_points)
    from conftest import REPO
    models = REPO / "models"
    cards = load_cards(models)
    verified = verified_points(cards, models, REPO / HW_EVIDENCE_DIR)
    tables = {"results": markdown_table(results_rows(cards)), "robustness": robustness_markdown(models),
              "targets": targets_markdown(target_rows(cards, load_estimates(), verified)),
              "verified designs (their clocks and timing)": verified_markdown(verified)}
    readme = set((REPO / "README.md").read_text().splitlines())
    stale = [f"{name}: {line}" for name, table in tables.items() for line in table.splitlines()
             if line.startswith("| ") and line not in readme]
    assert not stale, "README tables differ from `bdnn results --targets --robustness`:\n" + "\n".join(stale)


def test_targets_need_accuracy_and_rate_and_pick_the_most_accurate_fast_model():
    from bdnn.results import target_rows, targets_markdown
    cards = {"bdnn2": _card(0.6, 0.62, 0.6), "bdnn4": _card(0.661, 0.681, 0.67), "bdnn4-hw": _card(0.6, 0.6616, 0.66),
             "bdnn3": _card(0.6, 0.655, 0.6), "teacher-vgg": {**_card(0.7, 0.9, 0.7), "role": "teacher"}}
    est = {"estimates": [{"model": "bdnn4-hw", "board": "pynq-z2", "crops_per_s": 990.4, "fits": True},
                         {"model": "bdnn4-hw", "board": "ultra96", "crops_per_s": 3543, "fits": True},
                         {"model": "bdnn4", "board": "ultra96", "crops_per_s": 2570, "fits": True},
                         {"model": "bdnn3", "board": "ultra96", "crops_per_s": 9000, "fits": False}]}
    rows = {r["target"]: r for r in target_rows(cards, est, [])}
    assert rows["BDNN2"]["met"] and rows["BDNN2"]["gap"] == pytest.approx(0.5)
    assert not rows["BDNN3"]["met"] and rows["BDNN3"]["gap"] == pytest.approx(-0.01)  # 65.50 vs 65.51
    assert rows["BDNN4"]["met"] and rows["BDNN4, centre crop alone"]["met"]
    assert rows["BCNN4"]["measured"] is None and not rows["BCNN4"]["met"]
    hw = rows["hardware-aware model for the PYNQ-Z2"]
    assert hw["gap"] > 0 and hw["rate"] == (990, "FINN estimate") and not hw["met"]  # accurate enough, 10 crops/s short
    # Ultra96: the teacher is never a candidate, a design that does not fit neither, bdnn4 is too slow by estimate
    u96 = rows["most accurate model for the Ultra96"]
    assert (u96["model"], u96["met"]) == ("bdnn4-hw", True)
    # a verified design of the shipped weights counts: bdnn4 simulated above 3,000 on the Ultra96
    verified = [{"model": "bdnn4", "board": "ultra96", "crops_per_s": 3530, "fits": True, "clock_mhz": 200.0,
                 "timing_meets": True, "est_fmax_mhz": 236.0},
                {"model": "bdnn4-hw", "board": "pynq-z2", "crops_per_s": 1175, "fits": False}]
    rows = {r["target"]: r for r in target_rows(cards, est, verified)}
    assert rows["most accurate model for the Ultra96"]["model"] == "bdnn4"
    assert rows["most accurate model for the Ultra96"]["rate"] == (3530, "simulated at 200 MHz, timing est. meets")
    # a design whose timing estimate misses its clock counts at its estimated Fmax: too slow then
    slow = [{**verified[0], "timing_meets": False, "est_fmax_mhz": 150.0, "crops_per_s_at_est_fmax": 2647.5}]
    r96 = {r["target"]: r for r in target_rows(cards, est, slow)}["most accurate model for the Ultra96"]
    assert r96["model"] == "bdnn4-hw" and r96["rate"] == (3543, "FINN estimate")
    assert not rows["hardware-aware model for the PYNQ-Z2"]["met"]  # the design that is fast enough does not fit
    table = targets_markdown(list(rows.values()))
    assert "| BDNN3 | bdnn3 | 65.50 % | >= 65.51 % | -0.01 | — | **no** |" in table
    assert "| BCNN4 | bcnn4 | none shipped |" in table
    # nothing fast enough on a board: no model, not met
    rows = {r["target"]: r for r in target_rows({"bdnn2": _card(0.6, 0.62, 0.6)}, est, [])}
    assert rows["most accurate model for the Ultra96"]["model"] is None and not rows["most accurate model for the Ultra96"]["met"]
