"""scenes/stacking.py: the flick that sends the top box of a tower onto a marked spot."""

import numpy as np
import pytest

from diffsim.errors import ConfigError
from scenes import stacking


@pytest.mark.default_size
def test_the_flick_lands_the_top_box_on_the_spot_at_default_size(tmp_path):
    """``diffsim run stacking`` with no options (tests/test_default_size.py defers to this test)."""
    result = stacking.run(stacking.Config(), tmp_path)
    assert result.success, result.message
    assert (tmp_path / "stacking.gif").exists()
    problem = stacking.build()
    start = problem.trajectory(problem.x0())
    first_miss = abs(start["x"][-1, problem.top, 0] - problem.spot[0])
    assert first_miss > 0.05  # the first guess misses: there is something to find
    final = problem.trajectory(result.x)
    assert np.linalg.norm(final["x"][-1, problem.top] - problem.spot) <= 0.02
    assert final["x"][-1, problem.top, 1] == pytest.approx(stacking.HALF, abs=2e-3)  # lying on the floor
    rest = final["x"][-1, :problem.top]
    np.testing.assert_allclose(rest[:, 0], 0.0, atol=0.02)  # the boxes below still stand


def test_bad_sizes_are_refused():
    with pytest.raises(ConfigError, match="levels must be at least 2"):
        stacking.build(levels=1)
    with pytest.raises(ConfigError, match="spot must lie beyond"):
        stacking.build(spot=0.05)
