"""``examples/quickstart.ipynb`` runs from a clean kernel (the interpreter running the tests)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")
pytest.importorskip("pandas")

ROOT = Path(__file__).resolve().parents[1]


def test_quickstart_notebook_runs_clean(tmp_path, monkeypatch):
    # a kernel spec pointing at this interpreter, so the notebook imports the same micronet_score
    spec_dir = tmp_path / "kernels" / "micronet-test"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "micronet-score tests", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    nb = nbformat.read(ROOT / "examples" / "quickstart.ipynb", as_version=4)
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="micronet-test",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert any("micronet-report" in h and "<details>" in h for h in html)
    assert any("micronet-comparison" in h for h in html)
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 3  # report, comparison, history plots
