"""A game developer's crate on a 20 degree ramp (public API, 2D, impulse contact): with friction
0.2 (below tan 20 = 0.364) it slides down with a = g (sin - mu cos), the textbook figure; with 0.6
it stays where it was put. (The penalty model's regularised friction lets a crate creep down such
a slope at about its slip speed: 17 mm in 1 s here, measured, not asserted.)"""

import numpy as np
import pytest

from diffsim.rigid import Box, ModelBuilder, RigidSystem

THETA, G = np.deg2rad(20.0), 9.81
NORMAL = np.array([-np.sin(THETA), np.cos(THETA)])   # the ramp's outward normal
DOWNHILL = -np.array([np.cos(THETA), np.sin(THETA)])


def _slide(friction, seconds=1.0, dt=1e-3):
    b = ModelBuilder(dim=2)
    half = 0.1
    b.add_body(Box((half, half)), mass=1.0, position=NORMAL * (half + 0.0005), angle=THETA, friction=friction,
               restitution=0.0)
    b.add_plane(NORMAL, 0.0, friction=friction, restitution=0.0)
    x = RigidSystem(b.finalize(), dt=dt, contact="impulse").simulate(int(round(seconds / dt)))["x"][:, 0]
    return (x[-1] - x[0]) @ DOWNHILL, (x[-1] - x[0]) @ NORMAL


def test_a_crate_slides_down_a_ramp_at_the_textbook_rate():
    down, off = _slide(0.2)
    assert down == pytest.approx(0.5 * G * (np.sin(THETA) - 0.2 * np.cos(THETA)), rel=0.01)
    assert abs(off + 0.0005) < 1e-4  # it settles onto the ramp, neither sinking nor lifting


def test_a_crate_with_enough_friction_stays_on_the_ramp():
    down, _ = _slide(0.6)
    assert abs(down) < 1e-3
