"""A user's problem, public API only, impulse model: how fast must a crate be shoved along the
floor so that it knocks a second crate onto a marked spot? (2D; both crates slide with Coulomb
friction, the first strikes the second face on.)

Independent check: once struck, the second crate slides to rest after d = v^2 / (2 mu g), so
the fitted shove must leave it moving at sqrt(2 mu g d) just after the impact."""

import numpy as np

from diffsim import Objective, Parameter, Rollout
from diffsim.rigid import BodyTarget, Box, ModelBuilder, RigidSystem
from optimizers import minimize

H, G, MU, E = 0.1, 9.81, 0.3, 0.5
START_B, SPOT = 0.5, 1.0  # m: where the second crate stands, where it should end


def test_the_shove_that_knocks_a_crate_onto_its_spot():
    b = ModelBuilder(dim=2)
    striker = b.add_body(Box((H, H)), mass=1.0, position=(0.0, H), velocity=(2.0, 0.0), friction=MU, restitution=E)
    target = b.add_body(Box((H, H)), mass=1.0, position=(START_B, H), friction=MU, restitution=E)
    b.add_plane((0.0, 1.0), 0.0, friction=MU, restitution=E)
    steps = 900
    system = RigidSystem(b.finalize(), dt=1e-3, contact="impulse", costs=[BodyTarget(target, (SPOT, H))])
    rollout = Rollout(system, steps)
    objective = Objective(rollout, [Parameter("v", kind="state0", index=(striker, 0), lower=0.5, upper=5.0)])

    x = np.array([2.0])
    loss, grad = objective(x)
    eps = 1e-6
    fd = (objective(x + eps)[0] - objective(x - eps)[0]) / (2 * eps)
    assert grad[0] < 0.0 and abs(grad[0] - fd) < 1e-5 * abs(fd), (grad, fd)  # a harder shove helps

    result = minimize(objective, x, method="lbfgs", iters=40, bounds=objective.bounds, gtol=1e-12)
    assert result.success, result
    out = system.simulate(steps, state0={**system.initial_state(), "v": np.array([[result.x[0], 0.0], [0.0, 0.0]])})
    end = out["x"][-1, target]
    assert abs(end[0] - SPOT) < 2e-3, end
    assert np.abs(out["v"][-1]).max() < 1e-6  # both at rest at the end
    # the struck crate's speed just after the impact is the one Coulomb friction stops on the spot
    vb = out["v"][:, target, 0]
    struck = int(np.argmax(vb))
    start = out["x"][struck, target, 0]
    assert vb[struck] ** 2 / (2 * MU * G) == __import__("pytest").approx(end[0] - start, rel=0.02)
