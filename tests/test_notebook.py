"""The demo notebook runs end to end from a build's deployment folder (as on the board; off the
board it falls back to the cpu backend), live cell included; any cell error fails, and nothing is
written into the source tree."""
import nbformat
from nbclient import NotebookClient

from bdnn import contract
from conftest import REPO


def test_demo_notebook_executes_from_the_deployment_folder(tiny_deploy, tmp_path, monkeypatch):
    before = sorted(p for p in (REPO / "notebooks").rglob("*") if "checkpoint" not in str(p))
    nb_path = tiny_deploy / contract.NOTEBOOK_FILE
    nb = nbformat.read(nb_path, as_version=4)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("BDNN_OUT", str(tmp_path / "out"))
    for var in ("BDNN_DEPLOY", "BDNN_MODEL"):
        monkeypatch.delenv(var, raising=False)
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tiny_deploy)}})
    client.execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "backend: cpu" in outputs and f"model: tiny {tiny_deploy}" in outputs   # the folder's own model
    assert "live (" in outputs and "faces/s" in outputs
    assert (tmp_path / "out" / "astronaut.annotated.png").is_file() and (tmp_path / "out" / "live.mp4").is_file()
    assert sorted(p for p in (REPO / "notebooks").rglob("*") if "checkpoint" not in str(p)) == before
