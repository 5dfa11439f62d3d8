"""notebooks/ad_vs_finite_differences.ipynb runs at small size; its cells assert what they show."""

from conftest import execute_notebook


def test_ad_vs_finite_differences_notebook_executes():
    _nb, text = execute_notebook("ad_vs_finite_differences.ipynb")
    assert "best central difference" in text and "float32" in text
