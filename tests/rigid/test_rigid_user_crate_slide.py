"""A user's problem, public API only: a crate slides across a floor at 2 m/s; which floor friction
makes it stop at 1.0 m? The independent fact: a block sliding under Coulomb friction stops after
d = v^2 / (2 mu g), mu being the contact's friction (the mean of the crate's and the floor's)."""

import numpy as np

from diffsim import Objective, Parameter, Rollout
from diffsim.rigid import BodyTarget, Box, ModelBuilder, RigidSystem
from optimizers import minimize

V0, SPOT, G, H, MU_CRATE = 2.0, 1.0, 9.81, 0.1, 0.2


def test_the_floor_friction_that_stops_a_sliding_crate_on_its_spot():
    b = ModelBuilder(dim=3)
    crate = b.add_body(Box((H, H, H)), mass=2.0, position=(0, 0, H), velocity=(V0, 0, 0), friction=MU_CRATE)
    b.add_plane((0, 0, 1), 0.0, friction=0.3)
    sink = 2.0 * G / 1e4                     # the crate rests m g / k into the floor (stiffness 1e4 N/m)
    system = RigidSystem(b.finalize(), dt=1e-3, costs=[BodyTarget(crate, (SPOT, 0.0, H - sink))])
    rollout = Rollout(system, 1000)
    objective = Objective(rollout, [Parameter("plane_friction", lower=0.0, upper=2.0)])

    x = np.array([0.35])
    loss, grad = objective(x)
    eps = 1e-6
    fd = (objective(x + eps)[0] - objective(x - eps)[0]) / (2 * eps)
    assert grad[0] > 0.1 and abs(grad[0] - fd) < 1e-6 * abs(fd)   # too much friction: it stops short

    result = minimize(objective, x, method="lbfgs", iters=50, bounds=objective.bounds, gtol=1e-10)
    assert result.success, result
    objective(result.x)
    stop = rollout.final_state()["x"][crate]
    assert abs(stop[0] - SPOT) < 1e-3 and abs(stop[1]) < 1e-9, stop
    mu = 0.5 * (MU_CRATE + result.x[0])
    assert abs(mu - V0 ** 2 / (2 * G * SPOT)) < 0.01 * mu   # 0.20372 against 0.20387
