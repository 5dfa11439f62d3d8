"""A capsule lying across a box's top edge rests on the box's corners 6 and 7 alone (its ends
overhang). A scene with box-box pairs besides gave every pair the box-box count of points (8), so
the box-capsule pairs lost those two corners and the capsule fell through the box: a box far
away must change nothing."""

import numpy as np
import pytest

from diffsim.rigid import Box, Capsule, ModelBuilder, RigidSystem


def _capsule_path(contact, far_box):
    b = ModelBuilder(3)
    b.add_body(Box((0.1, 0.1, 0.1)), mass=10.0, position=[0, 0, 0.1])
    b.add_body(Capsule(0.03, 0.25), mass=0.5, position=[0, 0.1, 0.2 + 0.03])  # along x, over the +y top edge
    if far_box:
        b.add_body(Box((0.1, 0.1, 0.1)), mass=10.0, position=[2.0, 0, 0.1])
    b.add_plane([0, 0, 1], 0.0)
    return RigidSystem(b.finalize(), dt=1e-3, contact=contact).simulate(200)["x"][:, 1]


@pytest.mark.parametrize("contact", ["penalty", "impulse"])
def test_a_capsule_on_a_box_edge_stays_on_it_whatever_else_the_scene_holds(contact):
    alone, with_far_box = _capsule_path(contact, False), _capsule_path(contact, True)
    assert alone[-1, 2] > 0.2  # above the box top, on its edge
    np.testing.assert_allclose(with_far_box, alone, rtol=0, atol=1e-9)
