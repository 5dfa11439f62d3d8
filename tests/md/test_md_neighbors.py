"""Neighbour lists equal the brute-force pair set; capacity never drops pairs; bad boxes fail."""

import numpy as np
import pytest
import taichi as ti

from diffsim.errors import ConfigError
from diffsim.md import NeighborList, brute_force_pairs, fcc_lattice


def _x(pos):
    x = ti.ndarray(ti.f64, (1, len(pos), 3))
    x.from_numpy(np.asarray(pos)[None])
    return x


def _random(n, box, seed):
    rng = np.random.default_rng(seed)
    pos = rng.uniform(0, 1, (n, 3)) * box
    pos[: n // 5] += rng.integers(-2, 3, (n // 5, 3)) * box  # atoms that crossed the box, unwrapped
    return pos


@pytest.mark.parametrize("method,box", [("cells", np.array([7.0, 6.5, 8.0])), ("brute", np.array([4.2, 5.0, 4.5]))])
@pytest.mark.parametrize("seed", [0, 1])
def test_list_equals_brute_force(method, box, seed):
    pos = _random(300 if method == "cells" else 120, box, seed)
    nl = NeighborList(len(pos), cutoff=1.8, skin=0.3, boxes=box, method=method)
    nl.build(_x(pos))
    ref = brute_force_pairs(pos, box, 2.1)
    np.testing.assert_array_equal(nl.pairs(), ref)
    assert len(ref) > 100


def test_pairs_near_the_cutoff():
    box = np.array([6.4, 6.4, 6.4])
    rl = 2.1
    pos = np.array([[1.0, 1.0, 1.0], [1.0 + rl - 1e-9, 1.0, 1.0],   # just inside
                    [3.0, 4.0, 1.0], [3.0, 4.0 + rl + 1e-9, 1.0],   # just outside
                    [0.2, 3.0, 3.0], [0.2 - rl + 1e-9 + 6.4, 3.0, 3.0],  # inside through the boundary
                    [5.0, 5.0, 5.0]])
    for method in ("cells", "brute"):
        nl = NeighborList(len(pos), 1.8, 0.3, box, method=method)
        nl.build(_x(pos))
        pairs = {tuple(p) for p in nl.pairs()}
        assert (0, 1) in pairs and (4, 5) in pairs and (2, 3) not in pairs
        np.testing.assert_array_equal(nl.pairs(), brute_force_pairs(pos, box, rl))


def test_open_boundaries_and_several_configurations():
    rng = np.random.default_rng(5)
    a, b = rng.uniform(0, 4, (30, 3)), rng.uniform(0, 5, (40, 3))
    boxes = np.array([[0.0, 0.0, 0.0], [5.0, 5.0, 5.0]])
    cfg = np.r_[np.zeros(30, int), np.ones(40, int)]
    nl = NeighborList(70, 1.5, 0.2, boxes, cfg)
    nl.build(_x(np.vstack([a, b])))
    ref = np.vstack([brute_force_pairs(a, [0, 0, 0], 1.7), brute_force_pairs(b, boxes[1], 1.7) + 30])
    np.testing.assert_array_equal(nl.pairs(), ref)


def test_capacity_grows_or_fails_never_drops():
    pos, box = fcc_lattice((4, 4, 4), density=1.2)
    nl = NeighborList(len(pos), 1.8, 0.3, box, capacity=3, grow=True)
    nl.build(_x(pos))
    assert nl.grown == 1 and nl.capacity >= nl.max_count > 3
    np.testing.assert_array_equal(nl.pairs(), brute_force_pairs(pos, box, 2.1))
    strict = NeighborList(len(pos), 1.8, 0.3, box, capacity=3, grow=False)
    with pytest.raises(ConfigError, match="overflow.*capacity"):
        strict.build(_x(pos))


def test_skin_criterion():
    pos, box = fcc_lattice((4, 4, 4), density=0.8442)
    nl = NeighborList(len(pos), 2.5 * 0.6, 0.3, box)
    x = _x(pos)
    nl.build(x)
    moved = pos.copy()
    moved[7, 0] += 0.14
    assert not nl.needs_rebuild(_x(moved), 0)
    moved[7, 0] += 0.02
    assert nl.needs_rebuild(_x(moved), 0)
    assert nl.max_displacement(_x(moved), 0) == pytest.approx(0.16)


def test_box_smaller_than_twice_the_cutoff():
    with pytest.raises(ConfigError, match="smaller than twice the cutoff"):
        NeighborList(10, 2.5, 0.3, np.array([4.9, 10.0, 10.0]))
    NeighborList(10, 2.5, 0.3, np.array([0.0, 5.0, 10.0]))  # open axes are fine
