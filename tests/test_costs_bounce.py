"""A user's problem, public API only: a ball whose third bounce must peak at 0.20 m.

The user drops a 5 cm ball from 0.5 m onto a hard floor, estimates when the third bounce should
peak (about 1.55 s for the wanted height; any time between 1.3 s and 1.9 s will do), and fits the
ball's restitution with L-BFGS from a naive 0.6 so that the smooth apex over that window is 0.20 m
above the floor."""

import numpy as np
import pytest

from diffsim import Objective, Parameter, Rollout
from diffsim.costs import ApexHeight
from diffsim.rigid import ModelBuilder, RigidSystem, Sphere
from optimizers import minimize

RADIUS, DT, STEPS, GOAL, WINDOW = 0.05, 1e-3, 1900, 0.20, (1.3, 1.9)


@pytest.mark.parametrize("contact", ["penalty", "impulse"])
def test_third_bounce_peaks_at_twenty_centimetres(contact):
    b = ModelBuilder(3)
    b.add_body(Sphere(RADIUS), mass=0.1, position=[0.0, 0.0, 0.5 + RADIUS], restitution=0.6, friction=0.0)
    b.add_plane([0, 0, 1], 0.0, restitution=1.0, friction=0.0)  # a hard floor: the ball's e is fitted
    # temperature 0.1 mm: log-sum-exp lies ~0.2 mm above a ballistic apex at dt = 1 ms (diffsim.costs)
    apex = ApexHeight(0, window=WINDOW, temperature=1e-4, target=GOAL + RADIUS)
    system = RigidSystem(b.finalize(), dt=DT, contact=contact, costs=[apex])
    rollout = Rollout(system, STEPS)
    objective = Objective(rollout, [Parameter("restitution", lower=0.5, upper=0.95)], on_diverged="nan")

    result = minimize(objective, objective.x0(), method="lbfgs", iters=40)
    assert result.success, result.message

    objective(result.x)
    height = rollout.trajectory("x")[:, 0, 2] - RADIUS
    peaks = np.where((height[1:-1] > height[:-2]) & (height[1:-1] >= height[2:]) & (height[1:-1] > 0.01))[0] + 1
    third = peaks[2]
    assert WINDOW[0] <= third * DT <= WINDOW[1], "the window holds the third apex"
    assert peaks[1] * DT < WINDOW[0], "and not the second"
    assert abs(height[third] - GOAL) < 1e-3, f"third apex {height[third]:.4f} m, restitution {result.x[0]:.4f}"
    assert abs(apex.measured - RADIUS - height[third]) < 5e-4  # the smooth max is close to the true apex
