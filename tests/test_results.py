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
