"""examples/course_tour.ipynb runs green on a real Jupyter kernel, with fewer epochs."""

import pytest

from tests.conftest import REPO

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")


def test_course_tour_notebook_runs(tmp_path, monkeypatch):
    notebook = nbformat.read(REPO / "examples" / "course_tour.ipynb", as_version=4)
    monkeypatch.setenv("DLTRAIN_TOUR_EPOCHS", "200")
    monkeypatch.setenv("DLTRAIN_CONFIGS", str(REPO / "configs"))
    monkeypatch.setenv("DLTRAIN_RUNS", str(tmp_path / "runs"))
    # The kernel runs this interpreter, so it imports the dltrain under test.
    from ipykernel.kernelspec import install

    kernels = tmp_path / "kernels"
    install(prefix=str(kernels), kernel_name="dltrain-test")
    monkeypatch.setenv("JUPYTER_PATH", str(kernels / "share" / "jupyter"))
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="dltrain-test", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    # The live display is one output updated in place (display_id), not a line per epoch.
    displays = [o for o in notebook.cells[3].outputs if o.output_type == "display_data"]
    assert len(displays) == 1 and "epoch 200/200" in displays[0].data["text/html"]
    # Figures show inline as PNG: the decision boundary from Run.plot and the comparison.
    assert "image/png" in notebook.cells[4].outputs[0].data and "image/png" in notebook.cells[6].outputs[-1].data
    assert len(list((tmp_path / "runs").iterdir())) == 4
