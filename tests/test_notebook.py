"""The demo notebook runs end to end (cpu backend off the board); any cell error fails."""
import os

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import REPO


def test_demo_notebook_executes(tmp_path, monkeypatch):
    nb_path = REPO / "notebooks" / "bdnn_demo.ipynb"
    nb = nbformat.read(nb_path, as_version=4)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(nb_path.parent)}})
    client.execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "backend: cpu" in outputs and "faces/s" in outputs
    (nb_path.parent / "astronaut.annotated.png").unlink(missing_ok=True)
