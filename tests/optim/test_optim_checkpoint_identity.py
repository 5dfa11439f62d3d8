"""A checkpoint belongs to one run: another run's options are refused, and a damaged file is a
CheckpointError naming it (not a raw UnpicklingError/EOFError)."""

import numpy as np
import pytest

from optimizers import Adam, minimize
from optimizers.errors import CheckpointError


def quadratic(x):
    return float(np.sum((x - 1.0) ** 2)), 2.0 * (x - 1.0)


@pytest.mark.parametrize("change", [
    {"lr": 0.2},
    {"bounds": [(0.0, 0.5)] * 3},
    {"tol": 1e-3},
    {"method": Adam(lr=0.1, b1=0.5)},
])
def test_a_checkpoint_of_other_options_is_refused(tmp_path, change):
    path = tmp_path / "fit.ckpt"
    x0 = np.zeros(3)
    first = minimize(quadratic, x0, method="adam", lr=0.1, iters=5, checkpoint=path)
    again = minimize(quadratic, x0, method="adam", lr=0.1, iters=5, checkpoint=path)
    np.testing.assert_array_equal(again.x, first.x)
    options = {"method": "adam", "lr": 0.1, "iters": 5, **change}
    if not isinstance(options["method"], str):
        options.pop("lr")
    with pytest.raises(CheckpointError, match="belongs to another run"):
        minimize(quadratic, x0, checkpoint=path, **options)


@pytest.mark.parametrize("content", [b"", b"\x80\x05\x95", b"not a pickle at all"])
def test_a_damaged_checkpoint_names_the_file(tmp_path, content):
    path = tmp_path / "fit.ckpt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=r"fit\.ckpt is empty, truncated or corrupt.*delete it"):
        minimize(quadratic, np.zeros(3), method="adam", lr=0.1, iters=5, checkpoint=path)
