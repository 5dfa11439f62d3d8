"""The small robots' step kernel (diffsim.articulated.small): bodies unrolled at compile time.

It must step and differentiate exactly as the general kernel (kernels.advance) does, on every
feature it serves: a branching tree, prismatic and revolute joints, a joint axis that is not a
coordinate axis, a rotated joint frame (rpy), limits, damping (explicit and implicit), armature,
running and terminal costs with a moving end-effector target, robots with different parameters
in one batch, several segments; and its gradients must match central differences.
"""

import numpy as np
import pytest

from diffsim import Objective, Rollout, StoreAll, gradcheck
from diffsim.articulated import ArticulatedSystem, Cost, GroundContact, RobotBuilder, planar_arm, point_position
from diffsim.articulated import small as S


def tree_robot():
    """A 5-body tree: a revolute base (z), two branches; a prismatic joint, a skew axis, an rpy
    frame, limits on two joints, damping and armature."""
    rb = RobotBuilder("tree")
    rb.add_link("base")
    rb.add_link("torso", mass=2.0, com=(0.0, 0.0, 0.1), inertia=(0.025, 0.03, 0.02, 0.001, 0.0, 0.002))
    rb.add_link("slider", mass=0.8, com=(0.05, 0.0, 0.0), inertia=(0.004, 0.005, 0.003, 0.0, 0.0005, 0.0))
    rb.add_link("upper", mass=1.1, com=(0.0, 0.1, 0.0), inertia=(0.01, 0.004, 0.01, 0.0, 0.0, 0.001))
    rb.add_link("lower", mass=0.6, com=(0.0, 0.0, -0.12), inertia=(0.006, 0.006, 0.001, 0.0, 0.0, 0.0))
    rb.add_link("hand", mass=0.3, com=(0.02, 0.0, 0.0), inertia=(0.001, 0.002, 0.002, 0.0, 0.0, 0.0))
    rb.add_joint("yaw", "revolute", "base", "torso", xyz=(0.0, 0.0, 0.1), axis=(0, 0, 1), damping=0.1)
    rb.add_joint("slide", "prismatic", "torso", "slider", xyz=(0.1, 0.0, 0.2), axis=(1, 0, 0), damping=0.5,
                 lower=-0.3, upper=0.3)
    rb.add_joint("shoulder", "revolute", "torso", "upper", xyz=(0.0, 0.15, 0.3), rpy=(0.3, -0.2, 0.5),
                 axis=(1, 1, 0), damping=0.05, armature=0.02)
    rb.add_joint("elbow", "revolute", "upper", "lower", xyz=(0.0, 0.2, 0.0), axis=(0, 1, 0), lower=-1.0, upper=1.2,
                 damping=0.02)
    rb.add_joint("wrist", "revolute", "lower", "hand", xyz=(0.0, 0.0, -0.25), axis=(0, 0, 1), armature=0.01)
    return rb.finalize()


def tree_rollout(T=30, B=2, integrator="semi_implicit_euler", general=False, segment=12, seed=0):
    model = tree_robot()
    rng = np.random.default_rng(seed)
    cost = Cost(effort=0.02, q_weight=0.1, qd_weight=0.01, q_weight_final=0.5, qd_weight_final=0.2,
                q_target=rng.normal(scale=0.3, size=5), ee_link="hand", ee_point=(0.05, 0.0, 0.0),
                ee_target=rng.normal(scale=0.3, size=(T + 1, B, 3)), ee_weight=2.0, ee_weight_final=5.0)
    params = {"mass": model.mass * rng.uniform(0.8, 1.2, size=(B, 5)),
              "joint_offset": model.joint_offset + rng.normal(scale=0.02, size=(B, 5, 3))}
    system = ArticulatedSystem(model, batch=B, dt=0.005, cost=cost, params=params, segment=segment,
                               q0=rng.uniform(-0.2, 0.2, size=(B, 5)), qd0=rng.normal(size=(B, 5)),
                               integrator=integrator)
    assert system.step_kernel == "general"   # its skew axis and rpy frame: slow to compile small
    if not general:
        system._small = S.small_tree(model, system.arrays, any_geometry=True)
    ro = Rollout(system, T, StoreAll())
    ro.set_controls(tau=rng.normal(scale=1.0, size=(T, B, 5)))
    return ro


def _everything(ro):
    loss = ro.forward()
    g = ro.backward()
    return loss, ro.trajectory("q"), ro.trajectory("qd"), g


@pytest.mark.parametrize("integrator", ["semi_implicit_euler", "implicit_euler_damping"])
def test_the_small_kernel_steps_and_differentiates_as_the_general_kernel(integrator):
    """Loss, trajectories and every gradient (controls, initial state, the six parameters) of the
    tree robot through the small kernel equal the general kernel's to 1e-12 relative (not
    bitwise: compile-time axes fold the products with 0 and 1 away, and the compiler contracts
    multiply-adds differently)."""
    small = _everything(tree_rollout(integrator=integrator))
    general = _everything(tree_rollout(integrator=integrator, general=True))
    assert np.isclose(small[0], general[0], rtol=1e-13, atol=0)
    for a, b in zip(small[1:3], general[1:3]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)
    gs, gg = small[3], general[3]
    for table in ("params", "controls", "state0"):
        ref = getattr(gg, table)
        assert set(getattr(gs, table)) == set(ref)
        for name, value in ref.items():
            assert np.abs(value).max() > 1e-8, (table, name)   # not vacuous
            np.testing.assert_allclose(getattr(gs, table)[name], value, rtol=1e-11,
                                       atol=1e-12 * np.abs(value).max(), err_msg=f"{table} {name}")


def legged_model():
    """A planar two-link leg on x and z sliders (the hopper's layout), standing on the ground: two
    contact spheres on the shin (sharing its load) and one at the thigh's knee."""
    rb = RobotBuilder("leg")
    rb.add_link("world")
    rb.add_link("cx", mass=0.2, inertia=np.eye(3) * 1e-3)
    rb.add_link("cz", mass=0.2, inertia=np.eye(3) * 1e-3)
    rb.add_link("thigh", mass=1.0, com=(0.0, 0.0, -0.15), inertia=(0.008, 0.008, 0.001, 0.0, 0.0, 0.0))
    rb.add_link("shin", mass=0.5, com=(0.0, 0.0, -0.15), inertia=(0.004, 0.004, 0.0005, 0.0, 0.0, 0.0))
    rb.add_joint("x", "prismatic", "world", "cx", axis=(1, 0, 0), actuated=False)
    rb.add_joint("z", "prismatic", "cx", "cz", axis=(0, 0, 1), actuated=False)
    rb.add_joint("hip", "revolute", "cz", "thigh", axis=(0, 1, 0), damping=0.05)
    rb.add_joint("knee", "revolute", "thigh", "shin", xyz=(0.0, 0.0, -0.3), axis=(0, 1, 0), damping=0.05,
                 lower=-2.0, upper=0.1)
    rb.add_contact_point("shin", point=(0.0, 0.0, -0.3), radius=0.03)
    rb.add_contact_point("shin", point=(0.05, 0.0, -0.25), radius=0.02)
    rb.add_contact_point("thigh", point=(0.0, 0.0, -0.3), radius=0.04)
    return rb.finalize()


def legged_rollout(general=False, T=60):
    """The leg pressed into the ground and pushed sideways (the x slider's velocity)."""
    model = legged_model()
    cost = Cost(effort=0.01, qd_weight=0.01, ee_link="shin", ee_target=[0.2, 0.0, 0.3], ee_weight=1.0,
                ee_weight_final=3.0)
    system = ArticulatedSystem(model, dt=0.002, contact=GroundContact(stiffness=3000.0, damping=30.0, friction=0.8),
                               cost=cost, q0=[0.0, 0.52, 0.6, -1.2], qd0=[0.5, -0.5, 0.0, 0.0], segment=25)
    assert system.step_kernel == "small"
    if general:
        system._small = None
    ro = Rollout(system, T, StoreAll())
    ro.set_controls(tau=np.random.default_rng(4).normal(scale=1.0, size=(T, 1, 4)) * [0, 0, 1, 1])
    return ro


def arm_contact_rollout(general=False, T=40):
    """A 3-link arm hanging from z = 0 with a contact point at its tip, which drags on the ground
    (planar_arm(tip_contact=True)), its running end-effector term on the same body as the point."""
    model = planar_arm(3, lengths=[0.3, 0.2, 0.1], masses=[1.0, 0.5, 0.3], tip_contact=True)
    rng = np.random.default_rng(2)
    cost = Cost(effort=0.1, q_weight=0.3, ee_link="tip", ee_target=[0.3, 0.0, 0.1], ee_weight=1.0, ee_weight_final=2.0)
    system = ArticulatedSystem(model, dt=0.002, contact=GroundContact(stiffness=1000.0, damping=10.0), cost=cost,
                               q0=rng.normal(size=3), segment=15)
    assert system.step_kernel == "small"
    if general:
        system._small = None
    ro = Rollout(system, T, StoreAll())
    ro.set_controls(tau=rng.normal(scale=2.0, size=(T, 1, 3)))
    return ro


def test_the_small_kernel_steps_an_arm_dragging_its_tip_as_the_general_kernel():
    """The arm's tip on the ground with the running end-effector term on the tip's body (a case
    whose gradient the small kernel once got 7,000x wrong, the forward exact): every gradient
    equal to the general kernel's to 1e-10."""
    small = _everything(arm_contact_rollout())
    general = _everything(arm_contact_rollout(general=True))
    assert np.isclose(small[0], general[0], rtol=1e-13, atol=0)
    for table in ("params", "controls", "state0"):
        for name, value in getattr(general[3], table).items():
            np.testing.assert_allclose(getattr(small[3], table)[name], value, rtol=1e-10,
                                       atol=1e-11 * np.abs(value).max(), err_msg=f"{table} {name}")


def test_the_small_kernel_steps_ground_contact_as_the_general_kernel():
    """Through ground contact with friction (three spheres, two on one body): loss, trajectories
    and every gradient of the small kernel equal the general kernel's to 1e-11 relative, and the
    contact acts (the foot pressed all along, friction holding it back)."""
    small = _everything(legged_rollout())
    general = _everything(legged_rollout(general=True))
    q = small[1][:, 0]
    foot = point_position(legged_model(), q, "shin", (0.0, 0.0, -0.3))
    depth = 0.03 - foot[:, 2]
    assert np.all((depth > 0.0) & (depth < 0.015))            # the foot sphere pressed all along, held up
    assert foot[-1, 0] - foot[0, 0] < 0.5 * (q[-1, 0] - q[0, 0])  # friction holds the foot back as the slider moves
    assert np.isclose(small[0], general[0], rtol=1e-13, atol=0)
    for a, b in zip(small[1:3], general[1:3]):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12)
    gs, gg = small[3], general[3]
    for table in ("params", "controls", "state0"):
        for name, value in getattr(gg, table).items():
            np.testing.assert_allclose(getattr(gs, table)[name], value, rtol=1e-10,
                                       atol=1e-11 * np.abs(value).max(), err_msg=f"{table} {name}")


def test_small_kernel_gradients_match_central_differences():
    """FD check of the tree robot through the small kernel: parameters, torques, initial state."""
    ro = tree_rollout(T=20, B=1, segment=8, seed=3)
    obj = Objective(ro, ["mass", "com", "inertia", "joint_offset", "damping", "armature", "tau", "q", "qd"])
    report = gradcheck(obj, obj.x0(), rtol=1e-6, entries=24, directions=3, seed=2)
    assert report.ok, str(report)
    assert max(abs(r.reverse) for r in report.rows) > 1e-3


def test_which_robots_take_the_small_kernel():
    """Fixed-base robots of 1-DOF joints with at most MAX_BODIES bodies, coordinate joint axes
    and joint frames (contact points included, their bodies compile-time); the others (more
    bodies, a skew axis, a rotated frame, ...) the general kernel."""
    assert ArticulatedSystem(planar_arm(5)).step_kernel == "small"
    big = planar_arm(S.MAX_BODIES + 1)
    assert ArticulatedSystem(big).step_kernel == "general"
    contact = planar_arm(3, tip_contact=True)
    assert ArticulatedSystem(contact, contact=GroundContact())._small[2] == (2,)
    tree = ArticulatedSystem(tree_robot())
    assert tree.step_kernel == "general"   # a skew axis and an rpy frame (slow to compile unrolled)
    parents, geometry, contact_bodies = S.small_tree(tree.model, tree.arrays, any_geometry=True)
    assert parents == (-1, 0, 0, 2, 3) and contact_bodies == ()
    assert geometry[0][0] == (0.0, 0.0, 1.0) and len(geometry[2][1]) == 9 and geometry[1][2] == 0.0
    assert S.simple_geometry((0.0, -1.0, 0.0), (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
    assert not S.simple_geometry((0.0, 0.6, 0.8), (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
