"""A game developer's pellet and wall: a 2 cm pellet shot at a 2 cm thick wall. Slow, it bounces
off; fast enough to cross the wall in a step, contacts that are not swept (the impulse model's
boxes, the penalty model) would let it pass through or never see the wall. That must stop the
run with an error naming the pellet, the step and the time step that catches it, never return a
trajectory with the pellet behind the wall, including when the pellet only becomes that fast
during the run."""

import numpy as np
import pytest

from diffsim import Rollout, StoreAll
from diffsim.errors import DiffsimError
from diffsim.rigid import Box, ModelBuilder, RigidSystem, Sphere


def pellet_and_wall(speed, wall_x=0.2, mass=0.01):
    b = ModelBuilder(3)
    b.add_body(Sphere(0.01), mass=mass, position=[0, 0, 1.0], velocity=[speed, 0, 0], restitution=0.5,
               name="pellet")
    b.add_body(Box([0.01, 0.5, 0.5]), mass=100.0, position=[wall_x, 0, 1.0], restitution=0.5, name="wall")
    return b.finalize()


@pytest.mark.parametrize("fused", [True, False])
def test_a_pellet_fast_enough_to_cross_the_wall_in_a_step_stops_the_run(fused):
    with pytest.raises(DiffsimError, match=r"step 0: body 0 \(pellet\) moves at 50 m/s.*dt <= 0.0002 s"):
        RigidSystem(pellet_and_wall(50.0), dt=1e-3, contact="impulse", gravity=[0, 0, 0], fused=fused,
                    segment=10).simulate(100)
    # at the time step the message names, it bounces off the wall: e = 0.5 against a 10^4 times
    # heavier wall, so it leaves at -25 m/s (momentum: the wall takes the rest)
    out = RigidSystem(pellet_and_wall(50.0), dt=2e-4, contact="impulse", gravity=[0, 0, 0], fused=fused,
                      segment=10).simulate(100)
    assert out["x"][-1, 0, 0] < 0.2 - 0.02
    assert out["v"][-1, 0, 0] == pytest.approx(-25.0 * (1 - 1e-4) / (1 + 1e-4) - 50.0 * 1e-4 / (1 + 1e-4), rel=1e-3)
    momentum = out["v"][:, 0, 0] * 0.01 + out["v"][:, 1, 0] * 100.0
    np.testing.assert_allclose(momentum, 0.5, rtol=1e-9)


def test_a_pellet_that_becomes_fast_during_the_run_stops_it_at_that_step():
    """Pulled towards the wall 1.5 m away at 50 g, the pellet passes the 10 m/s the 1 ms step
    allows after 21 steps (g t = 490.5 m/s^2 x 0.021 s); the run stops there. A penalty scene too."""
    for contact, mass, stiffness in (("impulse", 0.01, 1e4), ("penalty", 1.0, 1e4)):
        system = RigidSystem(pellet_and_wall(0.0, wall_x=1.5, mass=mass), dt=1e-3, contact=contact,
                             gravity=[9.81 * 50, 0, 0], stiffness=stiffness, segment=8)
        ro = Rollout(system, 300, StoreAll())
        with pytest.raises(DiffsimError, match=r"step 21: body 0 \(pellet\) moves at 10.3 m/s"):
            ro.forward()
