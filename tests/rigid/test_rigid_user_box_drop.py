"""A user's 3D scene in the impulse model, public API only: a box dropped tilted onto another that
rests on the floor (benchmarks/rigid.py --only cold, ``box3d_impulse``, times its cold compile).
Its gradient runs through box-plane and box-box contact manifolds at once, with the falling box
spinning after it lands on an edge.

The gradient with respect to the masses, frictions and initial velocities agrees with central
differences. Regression: when the solver's point setup and warm start were one kernel, Taichi
compiled its gradient wrong under the default options, silently: d loss / d omega_y of the
falling box came out 7.16e-5 against 9.39e-5 (24 % off) at 100 steps."""

import numpy as np

from diffsim import Objective, Parameter, Rollout, StoreAll, gradcheck
from diffsim.costs import FinalDistance
from diffsim.rigid import Box, ModelBuilder, RigidSystem


def test_gradients_through_a_box_dropped_on_a_box_on_the_floor_match_central_differences():
    b = ModelBuilder(3)
    b.add_body(Box([0.1, 0.1, 0.1]), mass=1.0, position=[0, 0, 0.1])
    b.add_body(Box([0.08, 0.08, 0.08]), mass=0.5, position=[0.03, 0, 0.35],
               orientation=[np.cos(0.2), np.sin(0.2), 0, 0])
    b.add_plane([0, 0, 1], 0.0)
    system = RigidSystem(b.finalize(), dt=2e-3, contact="impulse", costs=[FinalDistance(1, [0.05, 0.0, 0.3])])
    steps = 100
    out = system.simulate(steps)
    pair_points = 8  # the contact items: the pair's 8 points, then each body's 8 corners on the floor
    assert np.any(out["contact_impulse"][:, :pair_points, 0] > 0.0)  # the boxes met
    assert np.count_nonzero(out["contact_impulse"][-1, pair_points:2 * pair_points, 0]) >= 2  # the lower one rests
    assert np.abs(out["omega"][-1, 1]).max() > 1.0  # the dropped box turned as it landed (3.9 rad/s)
    obj = Objective(Rollout(system, steps, StoreAll()), ["mass", "friction", Parameter("v", kind="state0"),
                                                         Parameter("omega", kind="state0")])
    _, g = obj(obj.x0())
    report = gradcheck(obj, obj.x0(), rtol=1e-5, step=1e-6, entries=16, directions=2, seed=1,
                       floor=1e-3 * np.abs(g).max())
    assert report.ok, str(report)
