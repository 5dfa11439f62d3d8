"""Ball (spherical) joints: a unit quaternion in q, the angular velocity (child body coordinates)
in qd, anywhere in the tree.

The Taichi kernels against the NumPy reference; RNEA(ABA(tau)) = tau and CRBA symmetric positive
definite (fixed and floating base); a ball joint against three hinges at the pose where they
coincide; a spherical pendulum against an independent point-mass model integrated with scipy
(and its energy and angular momentum about the vertical); gradients through a ball joint against
central differences; MJCF with a ball joint against the same robot built by hand; bad input."""

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from diffsim import Objective, Rollout, gradcheck
from diffsim.articulated import (
    BALL,
    ArticulatedSystem,
    Cost,
    RobotBuilder,
    aba,
    body_poses,
    crba,
    load_mjcf,
    point_jacobian,
    point_position,
    reference,
    rnea,
)
from diffsim.errors import ConfigError
from diffsim.rotations import quat_from_axis_angle_np, quat_from_matrix_np, quat_to_matrix_np

UPPER = dict(mass=1.2, com=(0.1, 0.02, -0.15), inertia=np.diag([0.02, 0.03, 0.015]))
FORE = dict(mass=0.7, com=(0.0, 0.0, -0.12), inertia=np.diag([0.01, 0.012, 0.004]))
HAND = dict(mass=0.3, com=(0.02, 0.0, -0.05), inertia=np.diag([0.002, 0.003, 0.001]))
SHOULDER_RPY = (0.1, -0.2, 0.3)


def ball_arm():
    """Ball shoulder (tilted tree frame, damping, armature), hinge elbow, ball wrist."""
    rb = RobotBuilder("ball_arm")
    rb.add_link("base")
    rb.add_link("upper", **UPPER)
    rb.add_link("fore", **FORE)
    rb.add_link("hand", **HAND)
    rb.add_joint("shoulder", "ball", "base", "upper", xyz=(0, 0, 1.0), rpy=SHOULDER_RPY, damping=0.1, armature=0.01)
    rb.add_joint("elbow", "revolute", "upper", "fore", xyz=(0.05, 0, -0.3), axis=(0, 1, 0), damping=0.05)
    rb.add_joint("wrist", "ball", "fore", "hand", xyz=(0, 0.01, -0.25), armature=0.001)
    return rb.finalize()


def random_quat(rng):
    u = rng.normal(size=4)
    return u / np.linalg.norm(u)


def random_state(m, rng):
    q = rng.normal(size=m.nq)
    for _, k in m.quaternion_slices():
        q[k:k + 4] = random_quat(rng)
    return q, rng.normal(size=m.nv)


def advance_q(m, q, qd, s):
    """The configuration after time s at velocity qd, to first order (quaternions renormalised)."""
    out = q.copy()
    for i, kind in enumerate(m.jtype):
        k, v = m.q_index[i], m.v_index[i]
        if kind == BALL:   # dq/dt = q (x) (0, w) / 2
            a, b, w = q[k], q[k + 1:k + 4], qd[v:v + 3]
            quat = q[k:k + 4] + 0.5 * s * np.r_[-b @ w, a * w + np.cross(b, w)]
            out[k:k + 4] = quat / np.linalg.norm(quat)
        else:
            out[k] += s * qd[v]
    return out


def test_layout_and_the_numpy_reference():
    m = ball_arm()
    assert (m.nb, m.nq, m.nv) == (3, 9, 7) and m.q_index == (0, 4, 5) and m.v_index == (0, 3, 4)
    np.testing.assert_array_equal(m.neutral_configuration(), [1, 0, 0, 0, 0, 1, 0, 0, 0])
    rng = np.random.default_rng(0)
    for _ in range(3):
        q, qd = random_state(m, rng)
        tau, qdd = rng.normal(size=m.nv), rng.normal(size=m.nv)
        M = crba(m, q)
        np.testing.assert_allclose(M, reference.crba(m, q), rtol=0, atol=1e-13)
        np.testing.assert_allclose(M, M.T, atol=1e-15)
        assert np.linalg.eigvalsh(M).min() > 1e-3
        a = aba(m, q, qd, tau)
        np.testing.assert_allclose(a, reference.aba(m, q, qd, tau), rtol=1e-12, atol=1e-11)
        np.testing.assert_allclose(rnea(m, q, qd, a), tau, atol=1e-11)   # RNEA(ABA(tau)) = tau
        np.testing.assert_allclose(rnea(m, q, qd, qdd), reference.rnea(m, q, qd, qdd), atol=1e-12)
        # M qdd + h(q, qd) = rnea: the mass matrix is rnea's linear part
        h0 = rnea(m, q, qd, np.zeros(m.nv))
        np.testing.assert_allclose(rnea(m, q, qd, qdd) - h0, M @ qdd, atol=1e-11)
        R, p = body_poses(m, q)
        Rr, pr = reference.body_poses(m, q)
        np.testing.assert_allclose(R, Rr, atol=1e-14)
        np.testing.assert_allclose(p, pr, atol=1e-14)


def test_point_jacobian_through_ball_joints_is_the_velocity_map():
    m = ball_arm()
    q, qd = random_state(m, np.random.default_rng(1))
    point = (0.03, -0.02, -0.1)
    J = point_jacobian(m, q, "hand", point)
    h = 1e-6
    fd = (point_position(m, advance_q(m, q, qd, h), "hand", point)
          - point_position(m, advance_q(m, q, qd, -h), "hand", point)) / (2 * h)
    np.testing.assert_allclose(J @ qd, fd, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(J, reference.point_jacobian(m, q, 2, np.array(point)), atol=1e-14)


def test_floating_base_with_a_ball_hip():
    rb = RobotBuilder("walker", floating_base=True)
    rb.add_link("torso", mass=5.0, com=(0, 0, 0.1), inertia=np.diag([0.1, 0.08, 0.05]))
    rb.add_link("thigh", **UPPER)
    rb.add_link("shin", **FORE)
    rb.add_joint("hip", "ball", "torso", "thigh", xyz=(0, 0.1, -0.2), damping=0.2)
    rb.add_joint("knee", "revolute", "thigh", "shin", xyz=(0, 0, -0.3), axis=(0, 1, 0))
    m = rb.finalize()
    assert (m.nq, m.nv, m.q_index, m.v_index) == (12, 10, (0, 7, 11), (0, 6, 9))
    rng = np.random.default_rng(2)
    for _ in range(3):
        q, qd = random_state(m, rng)
        tau = rng.normal(size=m.nv)
        tau[:6] = 0.0   # the free joint is not actuated
        qdd = aba(m, q, qd, tau)
        np.testing.assert_allclose(rnea(m, q, qd, qdd), tau, atol=1e-10)
        M = crba(m, q)
        np.testing.assert_allclose(M, M.T, atol=1e-14)
        assert np.linalg.eigvalsh(M).min() > 1e-4
        g = rnea(m, q, qd, np.zeros(m.nv))
        np.testing.assert_allclose(rnea(m, q, qd, qdd) - g, M @ qdd, atol=1e-10)
        # the fixed-base twin (torso welded at the same pose) has the hip and knee block of M
        fixed = m.fixed_base()
        np.testing.assert_allclose(reference.crba(fixed, q[7:]), M[6:, 6:], atol=1e-12)


def rpy_of(R):
    """URDF roll-pitch-yaw of R = Rz(yaw) Ry(pitch) Rx(roll)."""
    return np.array([np.arctan2(R[2, 1], R[2, 2]), -np.arcsin(R[2, 0]), np.arctan2(R[1, 0], R[0, 0])])


def rpy_matrix(rpy):
    r, p, y = rpy
    cr, sr, cp, sp, cy, sy = np.cos(r), np.sin(r), np.cos(p), np.sin(p), np.cos(y), np.sin(y)
    Rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    Ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    Rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return Rz @ Ry @ Rx


def three_hinge_twin(quat):
    """The ball arm with its shoulder made of hinges about x, y, z (the first placed at the
    ball's tree frame turned by ``quat``, so that zero hinge angles are the ball at quat); the
    two links between the hinges weigh 1e-9 kg, at the fixed pivot, where they add nothing."""
    rb = RobotBuilder("hinges")
    rb.add_link("base")
    rb.add_link("gx", mass=1e-9)
    rb.add_link("gy", mass=1e-9)
    rb.add_link("upper", **UPPER)
    rb.add_link("fore", **FORE)
    rb.add_link("hand", **HAND)
    turned = rpy_of(rpy_matrix(SHOULDER_RPY) @ quat_to_matrix_np(quat))
    rb.add_joint("sx", "revolute", "base", "gx", xyz=(0, 0, 1.0), rpy=turned, axis=(1, 0, 0), damping=0.1,
                 armature=0.01)
    rb.add_joint("sy", "revolute", "gx", "gy", axis=(0, 1, 0), damping=0.1, armature=0.01)
    rb.add_joint("sz", "revolute", "gy", "upper", axis=(0, 0, 1), damping=0.1, armature=0.01)
    rb.add_joint("elbow", "revolute", "upper", "fore", xyz=(0.05, 0, -0.3), axis=(0, 1, 0), damping=0.05)
    rb.add_joint("wrist", "ball", "fore", "hand", xyz=(0, 0.01, -0.25), armature=0.001)
    return rb.finalize()


def test_a_ball_joint_equals_three_hinges_where_they_coincide():
    """At zero hinge angles the hinges' rates are the body angular velocity about x, y, z, so
    the kinematics, the mass matrix and the forces at rest (gravity, torques) are the ball
    joint's."""
    m = ball_arm()
    rng = np.random.default_rng(3)
    q, _ = random_state(m, rng)
    twin = three_hinge_twin(q[:4])
    qt = np.r_[0.0, 0.0, 0.0, q[4:]]
    for link in ("upper", "fore", "hand"):
        np.testing.assert_allclose(point_position(m, q, link, (0.1, 0.2, -0.3)),
                                   point_position(twin, qt, link, (0.1, 0.2, -0.3)), atol=1e-14)
    np.testing.assert_allclose(point_jacobian(m, q, "hand", (0.1, 0, 0)), point_jacobian(twin, qt, "hand", (0.1, 0, 0)),
                               atol=1e-13)
    np.testing.assert_allclose(crba(m, q), crba(twin, qt), atol=1e-12)
    zero = np.zeros(m.nv)
    qdd = rng.normal(size=m.nv)
    np.testing.assert_allclose(rnea(m, q, zero, qdd), rnea(twin, qt, zero, qdd), atol=1e-12)
    tau = rng.normal(size=m.nv)
    np.testing.assert_allclose(aba(m, q, zero, tau), aba(twin, qt, zero, tau), rtol=1e-9, atol=1e-9)


def spherical_pendulum(length=0.5, mass=1.0):
    rb = RobotBuilder("spherical_pendulum")
    rb.add_link("pivot")
    rb.add_link("bob", mass=mass, com=(0, 0, -length), inertia=np.eye(3) * 1e-9)
    rb.add_joint("ball", "ball", "pivot", "bob", xyz=(0, 0, 2.0))
    return rb.finalize()


def point_mass_pendulum(x0, v0, g, T):
    """An independent model: a point mass on a massless rod of length |x0| from the pivot,
    x'' = g - mu x with mu = (x . g + |v|^2) / |x|^2 the rod's tension per unit mass (what keeps
    x . x'' + |v|^2 = 0), integrated by scipy."""

    def rhs(_, y):
        x, v = y[:3], y[3:]
        mu = (x @ g + v @ v) / (x @ x)
        return np.r_[v, g - mu * x]

    return solve_ivp(rhs, (0.0, T), np.r_[x0, v0], rtol=1e-12, atol=1e-12, dense_output=True)


def test_spherical_pendulum_against_an_independent_point_mass_model():
    """Released at 0.6 rad from the vertical with a swirl about it: the bob follows scipy's
    point-mass pendulum to first order in dt (error halves with dt), and the energy and the
    angular momentum about the vertical stay near their initial values."""
    L, g = 0.5, np.array([0.0, 0.0, -9.81])
    m = spherical_pendulum(L)
    quat = quat_from_axis_angle_np([1.0, 0.0, 0.0], 0.6)
    w = quat_to_matrix_np(quat).T @ np.array([0.0, 0.0, 4.0])   # 4 rad/s about the vertical, in body axes
    R0 = quat_to_matrix_np(quat)
    x0 = R0 @ [0, 0, -L]
    v0 = R0 @ np.cross(w, [0, 0, -L])
    T = 0.6
    exact = point_mass_pendulum(x0, v0, g, T)
    errors = []
    for dt in (4e-4, 2e-4):
        steps = int(round(T / dt))
        ro = Rollout(ArticulatedSystem(m, dt=dt, q0=np.r_[quat], qd0=w), steps)
        ro.forward()
        q, qd = ro.trajectory("q")[:, 0], ro.trajectory("qd")[:, 0]
        np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-12)
        R = np.array([quat_to_matrix_np(x) for x in q])
        x = R @ [0, 0, -L]
        v = np.einsum("tij,tj->ti", R, np.cross(qd, [0, 0, -L]))
        t = np.arange(steps + 1) * dt
        errors.append(np.abs(x - exact.sol(t)[:3].T).max())
        energy = 0.5 * np.einsum("ti,ti->t", v, v) - x @ g
        Lz = np.cross(x, v)[:, 2]
        assert np.abs(energy - energy[0]).max() < 2e-3 * (0.5 * v0 @ v0)   # of the kinetic energy (0.64 J)
        assert np.abs(Lz - Lz[0]).max() < 5e-3 * abs(Lz[0])
    assert errors[0] < 2e-2 * L, errors
    assert 0.4 < errors[1] / errors[0] < 0.6, errors   # first order in dt: the same motion
    # the swing is real: the bob moves by tens of centimetres
    assert np.ptp(exact.sol(np.linspace(0, T, 50))[:3], axis=1).max() > 0.3


def test_gradient_through_ball_joints():
    """Tip target, effort and final velocity through 50 steps of the ball arm: torques, initial
    velocities and masses against central differences (float64)."""
    m = ball_arm()
    rng = np.random.default_rng(4)
    q0, qd0 = random_state(m, rng)
    cost = Cost(effort=0.01, ee_link="hand", ee_point=(0.0, 0.0, -0.1), ee_target=[0.2, 0.1, 0.5],
                ee_weight=1.0, ee_weight_final=10.0, qd_weight_final=0.1, qd_weight=0.05)
    ro = Rollout(ArticulatedSystem(m, dt=0.005, cost=cost, q0=q0, qd0=qd0, segment=20), 50)
    ro.set_controls(tau=rng.normal(size=(50, 1, m.nv)))
    obj = Objective(ro, ["tau", "qd", "mass", "armature"])
    x = obj.x0()
    report = gradcheck(obj, x, rtol=1e-6, entries=16, directions=3, seed=2)
    assert report.ok, str(report)
    _, grad = obj(x)
    tau = grad[:50 * m.nv].reshape(50, m.nv)
    assert np.abs(tau[:, [0, 1, 2, 4, 5, 6]]).min(axis=0).min() > 1e-6   # every ball torque matters


MJCF = """<mujoco model="ball_arm">
  <compiler angle="radian"/>
  <worldbody>
    <body name="upper" pos="0 0 1.0" euler="0.1 -0.2 0.3">
      <joint name="shoulder" type="ball" damping="0.1" armature="0.01"/>
      <inertial pos="0.1 0.02 -0.15" mass="1.2" diaginertia="0.02 0.03 0.015"/>
      <body name="fore" pos="0.05 0 -0.3">
        <joint name="elbow" type="hinge" axis="0 1 0" damping="0.05"/>
        <inertial pos="0 0 -0.12" mass="0.7" diaginertia="0.01 0.012 0.004"/>
        <body name="hand" pos="0 0.01 -0.25">
          <joint name="wrist" type="ball" armature="0.001"/>
          <inertial pos="0.02 0 -0.05" mass="0.3" diaginertia="0.002 0.003 0.001"/>
        </body>
      </body>
    </body>
  </worldbody>
  <actuator>
    <motor joint="shoulder" gear="1" ctrlrange="-5 5"/>
  </actuator>
</mujoco>"""


def test_mjcf_ball_joints_give_the_hand_built_mass_matrix():
    """MJCF euler is intrinsic x-y-z (R = Rx Ry Rz); the hand-built shoulder's rpy is
    extrinsic (Rz Ry Rx), so the file's angles are converted for it here."""
    model, _ = load_mjcf(MJCF.replace('euler="0.1 -0.2 0.3"', 'quat="{} {} {} {}"'.format(
        *quat_from_matrix_np(rpy_matrix(SHOULDER_RPY)))))
    hand = ball_arm()
    assert model.jtype == hand.jtype and model.nq == 9
    assert list(model.actuated) == [True, False, False] and model.effort[0] == 5.0
    rng = np.random.default_rng(5)
    for _ in range(3):
        q, qd = random_state(hand, rng)
        np.testing.assert_allclose(crba(model, q), crba(hand, q), atol=1e-13)
        np.testing.assert_allclose(rnea(model, q, qd, qd), rnea(hand, q, qd, qd), atol=1e-12)
    # the file's own euler angles: the same robot turned as MuJoCo turns it
    euler_model, _ = load_mjcf(MJCF)
    R = euler_model.E_tree[0].T
    Rx, Ry, Rz = (quat_to_matrix_np(quat_from_axis_angle_np(e, a)) for e, a in zip(np.eye(3), (0.1, -0.2, 0.3)))
    np.testing.assert_allclose(R, Rx @ Ry @ Rz, atol=1e-14)
    system = ArticulatedSystem(model)
    lo, hi = system.control_limits()["tau"]
    np.testing.assert_array_equal(hi[0], [5, 5, 5, 0, 0, 0, 0])


def test_ball_joint_bad_input():
    rb = RobotBuilder("r")
    rb.add_link("a")
    rb.add_link("b", mass=1.0, inertia=np.eye(3) * 0.01)
    for kw in (dict(lower=-1.0), dict(upper=1.0), dict(velocity=3.0)):
        with pytest.raises(ConfigError, match="a ball joint takes no .* limit"):
            rb.add_joint("j", "ball", "a", "b", **kw)
    with pytest.raises(ConfigError, match="ball joint 'shoulder' has a range"):
        load_mjcf(MJCF.replace('type="ball" damping', 'type="ball" range="0 1" damping'))
    m = ball_arm()
    bad = m.neutral_configuration()
    bad[5] = 2.0   # the wrist's quaternion
    with pytest.raises(ConfigError, match=r"ball joint 'wrist''s orientation q\[5:9\] .* norm 2"):
        aba(m, bad, np.zeros(m.nv), np.zeros(m.nv))
    with pytest.raises(ConfigError, match="q_weight of the ball joint 'shoulder' must be 0"):
        ArticulatedSystem(m, cost=Cost(q_weight=1.0))
    # a point mass at the ball's centre has no inertia about it
    rb = RobotBuilder("pt")
    rb.add_link("a")
    rb.add_link("b", mass=1.0)
    rb.add_joint("j", "ball", "a", "b")
    with pytest.raises(ConfigError, match="joint 'j' .* no moment of inertia about some axis through the ball"):
        rb.finalize()


def test_a_batch_of_ball_robots_on_the_ground_steps_each_as_alone():
    """Three ball arms with a foot sphere that hits the ground, in one batch (spread over the CPU
    threads): each steps as it does alone, and the quaternions stay unit."""
    rb = RobotBuilder("ball_leg")
    rb.add_link("base")
    rb.add_link("upper", **UPPER)
    rb.add_link("fore", **FORE)
    rb.add_joint("hip", "ball", "base", "upper", xyz=(0, 0, 0.35), damping=0.1)
    rb.add_joint("knee", "revolute", "upper", "fore", xyz=(0.05, 0, -0.3), axis=(0, 1, 0), damping=0.05)
    rb.add_contact_point("fore", (0, 0, -0.25), 0.03)
    m = rb.finalize()
    rng = np.random.default_rng(6)
    q0 = np.array([random_state(m, rng)[0] for _ in range(3)])
    qd0 = rng.normal(size=(3, m.nv))
    tau = rng.normal(size=(200, 3, m.nv))
    ro = Rollout(ArticulatedSystem(m, batch=3, dt=2e-3, q0=q0, qd0=qd0), 200)
    ro.forward(controls={"tau": tau})
    q = ro.trajectory("q")
    foot = point_position(m, q.reshape(-1, m.nq), "fore", (0, 0, -0.25))[:, 2] - 0.03
    assert foot.min() < 0.0   # the foot sphere reaches the ground
    np.testing.assert_allclose(np.linalg.norm(q[:, :, :4], axis=2), 1.0, atol=1e-12)
    for b in (0, 2):
        alone = Rollout(ArticulatedSystem(m, dt=2e-3, q0=q0[b], qd0=qd0[b]), 200)
        alone.forward(controls={"tau": tau[:, b:b + 1]})
        np.testing.assert_allclose(alone.trajectory("q")[:, 0], q[:, b], rtol=0, atol=1e-12)
