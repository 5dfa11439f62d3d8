"""notebooks/ad_vs_finite_differences.ipynb runs at small size; its cells assert what they show."""

import pytest
from conftest import execute_notebook


@pytest.mark.default_size
def test_ad_vs_finite_differences_notebook_executes_at_default_size():
    """The notebook as a user runs it (DIFFSIM_SMALL unset); each cell asserts what it shows."""
    _nb, text = execute_notebook("ad_vs_finite_differences.ipynb", small=False)
    assert "best central difference" in text and "float32" in text
