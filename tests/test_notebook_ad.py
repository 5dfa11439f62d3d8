"""notebooks/ad_vs_finite_differences.ipynb runs at small size; its cells assert what they show."""

import os
import pathlib

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_ad_vs_finite_differences_notebook_executes():
    path = ROOT / "notebooks" / "ad_vs_finite_differences.ipynb"
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit it without outputs"
    os.environ["DIFFSIM_SMALL"] = "1"
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT)}}).execute()
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "best central difference" in text and "float32" in text
