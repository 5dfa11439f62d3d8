"""Box-box and box-capsule contact (penalty model): towers at rest, momentum in a box-box impact,
and gradients through box-box and box-capsule contact against central differences.

Larger stacks (a 10-box tower, a 15-box pyramid) are measured in benchmarks/rigid.py."""

import numpy as np
import pytest
from rigid_test_scenes import boxes_and_capsule

from diffsim import Objective, Parameter, Rollout, StoreAll, gradcheck
from diffsim.rigid import Box, ModelBuilder, RigidSystem
from diffsim.rotations import quat_angle_between_np

G = 9.81


def tower(levels, half=0.1, dim=3, k=1e5, jitter=0.0, turn=0.0):
    """``levels`` 1 kg cubes of half side ``half`` (m) stacked on a floor, each started at the
    static penetration of its 4 (2D: 2) corner contacts; with ``jitter`` the boxes are shifted
    sideways by up to ``jitter`` m and (3D) turned about the vertical by up to ``turn`` rad."""
    rng = np.random.default_rng(0)
    b = ModelBuilder(dim)
    z = 0.0
    for i in range(levels):
        z += half - (levels - i) * G / ((4 if dim == 3 else 2) * k)
        shift = rng.uniform(-jitter, jitter, dim - 1)
        if dim == 3:
            b.add_body(Box((half, half, half)), mass=1.0, position=[*shift, z], orientation=[0, 0, 1],
                       angle=turn * rng.uniform(-1, 1), restitution=0.2, friction=0.6)
        else:
            b.add_body(Box((half, half)), mass=1.0, position=[*shift, z], restitution=0.2, friction=0.6)
        z += half
    b.add_plane([0.0, 0.0, 1.0] if dim == 3 else [0.0, 1.0], 0.0, restitution=0.2, friction=0.6)
    return b.finalize()


@pytest.mark.parametrize("dim", [3, 2])
def test_a_tower_of_boxes_rests_for_two_seconds(dim):
    """A 4-box tower, each box shifted sideways by up to 5 mm, stays within 1 mm and 0.01 rad of
    where it started over 2 s. (Boxes turned about the vertical relative to each other, by up to
    0.1 rad, were measured to creep in yaw at ~0.01 rad/s, all the same way: not understood yet,
    so not tested here.)"""
    steps = 4000
    out = RigidSystem(tower(4, dim=dim, jitter=5e-3), dt=5e-4, stiffness=1e5, segment=250).simulate(steps)
    drift = np.abs(out["x"] - out["x"][0]).max()
    assert drift < 1e-3
    if dim == 3:
        turn = max(quat_angle_between_np(out["q"][t, i], out["q"][0, i]) for t in range(0, steps + 1, 100)
                   for i in range(4))
    else:
        turn = np.abs(out["theta"] - out["theta"][0]).max()
    assert turn < 0.01


def two_boxes_colliding(restitution=0.5):
    """Two boxes meeting corner-first and face-on while spinning, no gravity and no floor."""
    b = ModelBuilder(3)
    b.add_body(Box((0.1, 0.08, 0.06)), mass=1.0, position=[-0.25, 0.02, 0.0], orientation=[0, 0.3, 1], angle=0.4,
               velocity=[1.5, 0.0, 0.1], angular_velocity=[0.5, 1.0, -2.0], restitution=restitution, friction=0.4)
    b.add_body(Box((0.12, 0.1, 0.05)), mass=1.7, position=[0.0, 0.0, 0.0], velocity=[-0.3, 0.1, 0.0],
               restitution=restitution, friction=0.4)
    return b.finalize()


def test_box_box_impact_conserves_momentum():
    model = two_boxes_colliding()
    out = RigidSystem(model, dt=5e-4, stiffness=2e4, gravity=[0, 0, 0], segment=100).simulate(600)
    m = model.mass[:, None]
    p = (m * out["v"]).sum(axis=1)
    np.testing.assert_allclose(p, np.broadcast_to(p[0], p.shape), atol=1e-12)
    assert np.abs(out["v"][-1] - out["v"][0]).max() > 0.5  # they did collide
    from diffsim.rotations import quat_to_matrix_np
    L = []
    for t in (0, 600):
        total = np.zeros(3)
        for i in range(2):
            R = quat_to_matrix_np(out["q"][t, i])
            inertia = R @ np.diag(model.inertia()[i]) @ R.T
            total += np.cross(out["x"][t, i], model.mass[i] * out["v"][t, i]) + inertia @ out["omega"][t, i]
        L.append(total)
    np.testing.assert_allclose(L[1], L[0], atol=2e-3 * np.linalg.norm(L[0]))


def test_gradients_through_box_box_and_box_capsule_contact_match_central_differences():
    """Two boxes meeting while spinning, and a capsule tumbling onto the second box (no
    gravity): the per-step path (its gradient kernels compile in about a minute; the fused
    kernel's take several)."""
    system = boxes_and_capsule(two_boxes_colliding(), stiffness=2e4, fused=False)
    out = system.simulate(120)
    assert out["v"][-1, 2, 2] > 0.0  # the capsule bounced off the box
    obj = Objective(Rollout(system, 120, StoreAll()),
                    ["mass", "restitution", "friction", Parameter("v", kind="state0"),
                     Parameter("omega", kind="state0", index=0)])
    report = gradcheck(obj, obj.x0(), rtol=1e-5, step=1e-6, entries=12, directions=1, seed=2)
    assert report.ok, str(report)


@pytest.mark.parametrize("e", [0.3, 0.8])
def test_face_on_box_box_impact_meets_the_restitution(e):
    """Two 1 kg cubes meeting face on (4 contact points at once): the relative speed leaves at e
    times the approach speed within 1 % (3D; measured in 2D, where a face has 2 points: +10 % at
    e = 0.3, +2 % at 0.8)."""
    b = ModelBuilder(3)
    b.add_body(Box((0.1, 0.1, 0.1)), mass=1.0, position=[-0.21, 0, 0], velocity=[1.0, 0, 0], restitution=e,
               friction=0.0)
    b.add_body(Box((0.1, 0.1, 0.1)), mass=1.0, position=[0.0, 0, 0], restitution=e, friction=0.0)
    out = RigidSystem(b.finalize(), dt=5e-4, stiffness=2e4, gravity=[0, 0, 0], segment=100).simulate(1000)
    v = out["v"][-1, :, 0]
    assert v[1] - v[0] == pytest.approx(e, rel=0.01)
    assert v.sum() == pytest.approx(1.0, abs=1e-12)
