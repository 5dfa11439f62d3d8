"""Contact geometry from the robot file: URDF <collision> spheres, capsules, boxes and cylinders
become ground-contact points (spheres with radii) through the shared contact law with smoothed
friction. A ball rolls without slipping at the speed mechanics predicts; a URDF box comes to rest
flat; the gradient through first touch matches central differences."""

import numpy as np
import pytest

from diffsim import Objective, Rollout, gradcheck
from diffsim.articulated import ArticulatedSystem, GroundContact, RobotBuilder, body_poses, load_urdf
from diffsim.errors import ConfigError


def urdf(collision, base_fixed=True):
    base = "" if not base_fixed else """<link name="world"><collision><geometry><box size="5 5 0.1"/></geometry>
      </collision></link>
      <joint name="slide" type="prismatic"><parent link="world"/><child link="body"/><axis xyz="0 0 1"/></joint>"""
    return f"""<robot name="r">{base}
      <link name="body"><inertial><mass value="2"/><inertia ixx="0.02" iyy="0.02" izz="0.02" ixy="0" ixz="0"
        iyz="0"/></inertial>
        <visual><geometry><mesh filename="body.stl"/></geometry></visual>
        <collision><origin xyz="0 0 0.1" rpy="0 0 0"/><geometry>{collision}</geometry></collision></link>
    </robot>"""


@pytest.mark.parametrize("shape, n, radius", [
    ('<sphere radius="0.05"/>', 1, 0.05),
    ('<capsule radius="0.05" length="0.3"/>', 2, 0.05),
    ('<box size="0.2 0.3 0.4"/>', 8, 0.0),
    ('<cylinder radius="0.1" length="0.2"/>', 16, 0.0),
])
def test_collision_shapes_become_contact_points(shape, n, radius):
    m = load_urdf(urdf(shape), collisions=True)
    assert len(m.contact_body) == n   # the world link's box is welded to the world: no contact
    np.testing.assert_allclose(m.contact_radius, radius)
    lowest = m.contact_point[:, 2] - m.contact_radius
    expected = {"sphere": 0.05, "capsule": -0.1, "box": -0.1, "cylinder": 0.0}[shape[1:shape.index(" ")]]
    assert lowest.min() == pytest.approx(expected)   # the shape's lowest point, 0.1 m above the joint
    assert load_urdf(urdf(shape)).contact_body == ()   # collisions are opt-in


def test_mesh_collision_is_named():
    with pytest.raises(ConfigError, match="link 'body'.*<mesh> is not supported as contact geometry"):
        load_urdf(urdf('<mesh filename="body.stl"/>'), collisions=True)


def ball(radius=0.1, mass=1.0):
    rb = RobotBuilder("ball", floating_base=True)
    rb.add_link("ball", mass=mass, inertia=np.eye(3) * 0.4 * mass * radius ** 2)
    rb.add_contact_point("ball", radius=radius)
    return rb.finalize()


def test_a_sliding_ball_ends_rolling_without_slipping():
    """A solid ball launched sliding at v0 without spin: friction slows it until it rolls,
    v = w r, at v = 5/7 v0 (angular momentum about the contact point is conserved)."""
    m = ball()
    contact = GroundContact(stiffness=1e4, damping=100.0, friction=0.5, slip_speed=0.01)
    depth = 9.81 / 1e4 + contact.onset_depth / 2
    system = ArticulatedSystem(m, dt=1e-3, contact=contact, q0=[0, 0, 0.1 - depth, 1, 0, 0, 0],
                               qd0=[0, 0, 0, 2.0, 0, 0])
    ro = Rollout(system, 1200)
    ro.forward()
    q, qd = ro.trajectory("q")[-1, 0], ro.trajectory("qd")[-1, 0]
    R, _ = body_poses(m, q)
    w = R[0] @ qd[:3]                       # world angular velocity
    v = qd[3:]                              # world velocity of the centre
    assert v[0] == pytest.approx(5 / 7 * 2.0, rel=1e-3)
    assert abs(v[0] - w[1] * 0.1) < 1e-3    # rolling: the contact point is at rest
    assert abs(v[1]) < 1e-6 and abs(q[2] - (0.1 - depth)) < 1e-3


def test_urdf_box_comes_to_rest_flat():
    box = urdf('<box size="0.4 0.3 0.2"/>', base_fixed=False).replace('<origin xyz="0 0 0.1" rpy="0 0 0"/>', "")
    m = load_urdf(box, floating_base=True, collisions=True)
    q0 = np.r_[0.0, 0.0, 0.5, np.cos(0.3), np.sin(0.3) * np.array([0.8, 0.0, 0.6])]
    system = ArticulatedSystem(m, dt=1e-3, contact=GroundContact(stiffness=2e4, damping=200.0), q0=q0,
                               qd0=[0.5, 0.2, 0.0, 0.3, 0.0, 0.0])
    ro = Rollout(system, 2000)
    ro.forward()
    q = ro.trajectory("q")[-1, 0]
    R, p = body_poses(m, q)
    z = (m.contact_point @ R[0].T + p[0])[:, 2]
    assert np.sort(z)[:4].max() < 0 and np.sort(z)[4:].min() > 0.15   # a face down, flat
    assert np.abs(ro.trajectory("qd")[-1, 0, 3:]).max() < 1e-2


def test_gradient_through_first_touch_of_a_sphere():
    """A spinning ball dropped onto the ground: its final position and speed depend on the
    initial velocity through the onset of contact and friction; reverse mode against central
    differences."""
    m = ball()
    system = ArticulatedSystem(m, dt=2e-3, contact=GroundContact(stiffness=5e3, damping=50.0, friction=0.6,
                                                                 slip_speed=0.05),
                               q0=[0, 0, 0.13, 1, 0, 0, 0], qd0=[1.0, -3.0, 0.5, 0.8, 0.2, -0.5], segment=20)
    cost = __import__("diffsim").costs.NumpyCost(
        lambda s, t: float(s["q"][-1, 0, :3] @ [1.0, 2.0, 3.0]),
        lambda s, t: {"q": np.concatenate([np.zeros_like(s["q"][:-1]),
                                           np.r_[1.0, 2.0, 3.0, 0, 0, 0, 0].reshape(1, 1, 7)])},
        "q", steps="last")
    ro = Rollout(system, 80, costs=[cost])
    obj = Objective(ro, ["qd"])
    x = obj.x0()
    # the spin about the vertical barely matters (reverse ~1e-18, FD noise ~1e-12): floor 1e-6
    report = gradcheck(obj, x, rtol=1e-6, entries=6, directions=2, floor=1e-6)
    assert report.ok, str(report)
    _, g = obj(x)
    assert np.abs(g).max() > 1e-2
    touched = ro.trajectory("q")[:, 0, 2].min()
    assert touched < 0.1   # it reached the ground
