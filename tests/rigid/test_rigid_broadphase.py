"""The grid broad phase returns exactly the brute-force set of overlapping bounding spheres."""

import numpy as np
import pytest

from diffsim.collision import GridBroadPhase, all_pairs, brute_force_pairs
from diffsim.errors import ConfigError


def as_set(pairs):
    return {(int(i), int(j)) for i, j in pairs}


@pytest.mark.parametrize("n", [1, 2, 17, 300, 5000])
@pytest.mark.parametrize("dim", [2, 3])
def test_grid_pairs_equal_brute_force(n, dim):
    rng = np.random.default_rng(n * 10 + dim)
    side = max(1.0, n ** (1 / dim)) * 0.6  # dense enough for many overlaps
    centres = rng.uniform(-side, side, (n, dim))
    radius = rng.uniform(0.02, 0.5, n)
    bp = GridBroadPhase(radius, dim, margin=0.03, capacity=20 * n + 64)
    got = bp.find_pairs(centres)
    want = brute_force_pairs(centres, radius, margin=0.03)
    assert len(got) == len(want)  # no duplicates
    assert as_set(got) == as_set(want)
    assert np.all(got[:, 0] < got[:, 1]) if len(got) else True
    if n >= 300:
        assert len(want) > n // 5  # the scene really has overlaps
        np.testing.assert_array_equal(bp.find_pairs(centres), got)  # same list, same order


def test_clustered_scene_and_huge_coordinates():
    """All bodies in a few cells (long buckets, hash collisions) and far from the origin."""
    rng = np.random.default_rng(7)
    centres = np.concatenate([rng.normal(0, 0.05, (150, 3)), rng.normal(1e4, 0.2, (150, 3))])
    radius = np.full(300, 0.01)
    bp = GridBroadPhase(radius, 3, capacity=30000)
    assert as_set(bp.find_pairs(centres)) == as_set(brute_force_pairs(centres, radius))


def test_capacity_overflow_is_reported():
    centres = np.zeros((20, 2))
    bp = GridBroadPhase(np.full(20, 0.1), 2, capacity=50)
    with pytest.raises(ConfigError, match="190 candidate pairs"):
        bp.find_pairs(centres)


def test_all_pairs_and_bad_input():
    assert as_set(all_pairs(4)) == {(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)}
    with pytest.raises(ConfigError):
        GridBroadPhase([0.1, -0.2], 2)
    with pytest.raises(ConfigError):
        GridBroadPhase([0.1], 4)
    with pytest.raises(ConfigError, match="shape"):
        GridBroadPhase([0.1, 0.1], 3).find_pairs(np.zeros((2, 2)))


@pytest.mark.parametrize("n", [17, 300])
def test_serial_and_parallel_grid_pairs_are_the_same_list(n):
    """Up to SERIAL_BODIES bodies the kernels run on one thread (``serial``): the same pairs in
    the same order as the parallel loops give."""
    rng = np.random.default_rng(n)
    centres = rng.uniform(-0.6 * n ** 0.5, 0.6 * n ** 0.5, (n, 2))
    radius = rng.uniform(0.02, 0.5, n)
    bp = GridBroadPhase(radius, 2, margin=0.03, capacity=20 * n + 64)
    assert bp.serial == (n <= 64)
    first = bp.find_pairs(centres)
    bp.serial = not bp.serial
    np.testing.assert_array_equal(bp.find_pairs(centres), first)
    assert len(first) > 0
