"""Floating base: a free joint (position + unit quaternion, 6 velocity DOF) at the root.

Identities (RNEA(ABA(tau)) = tau, CRBA symmetric positive definite), agreement with the same
robot whose base rides on 3 prismatic + 3 revolute joints (at the pose where those coincide with
the free joint), free fall, momentum conservation in free flight, an energy drift bound, a box
that comes to rest on the ground, and the gradient through the free joint against central
differences."""

import numpy as np
import pytest

from diffsim import Objective, Rollout, gradcheck
from diffsim.articulated import (
    ArticulatedSystem,
    Cost,
    GroundContact,
    RobotBuilder,
    aba,
    body_poses,
    crba,
    point_jacobian,
    point_position,
    rnea,
)
from diffsim.errors import ConfigError

BOX = (0.4, 0.3, 0.2)   # m
BOX_MASS = 3.0
ARM = dict(mass=0.8, com=(0.0, 0.0, -0.15), inertia=np.diag([6e-3, 6e-3, 4e-4]))


def box_inertia(m, size):
    a, b, c = size
    return np.diag([b * b + c * c, a * a + c * c, a * a + b * b]) * m / 12.0


def add_body(rb, base):
    """The box and a pendulum arm hinged (about y) at a corner of its top face."""
    rb.add_link(base, mass=BOX_MASS, com=(0.02, -0.01, 0.0), inertia=box_inertia(BOX_MASS, BOX))
    rb.add_link("arm", **ARM)
    rb.add_joint("hinge", "revolute", base, "arm", xyz=(0.2, 0.15, 0.1), axis=(0, 1, 0), damping=0.0)


def floating(gravity=(0.0, 0.0, -9.81)):
    rb = RobotBuilder("box", gravity=gravity, floating_base=True)
    add_body(rb, "box")
    return rb.finalize()


def six_joint_twin(gravity=(0.0, 0.0, -9.81)):
    """The same robot with the base on prismatic x, y, z then revolute x, y, z (massless links
    but for 1e-9 kg, which the dynamics need)."""
    rb = RobotBuilder("twin", gravity=gravity)
    rb.add_link("world")
    prev = "world"
    for k, (kind, axis) in enumerate([("prismatic", (1, 0, 0)), ("prismatic", (0, 1, 0)), ("prismatic", (0, 0, 1)),
                                      ("revolute", (1, 0, 0)), ("revolute", (0, 1, 0))]):
        rb.add_link(f"l{k}", mass=1e-9, inertia=np.eye(3) * 1e-12)
        rb.add_joint(f"j{k}", kind, prev, f"l{k}", axis=axis)
        prev = f"l{k}"
    add_body(rb, "box")
    rb.add_joint("j5", "revolute", prev, "box", axis=(0, 0, 1))
    return rb.finalize()


def random_state(model, rng):
    q = rng.normal(size=model.nq)
    q[3:7] /= np.linalg.norm(q[3:7])
    return q, rng.normal(size=model.nv)


def test_shapes_and_bad_quaternion():
    m = floating()
    assert (m.nb, m.nq, m.nv) == (2, 8, 7)
    assert m.q_index == (0, 7) and m.v_index == (0, 6)
    with pytest.raises(ConfigError, match="unit quaternion"):
        aba(m, [0, 0, 0, 2.0, 0, 0, 0, 0], np.zeros(7), np.zeros(7))
    with pytest.raises(ConfigError, match="q0: the free joint's orientation .* norm 2"):
        ArticulatedSystem(m, q0=[0, 0, 0, 2.0, 0, 0, 0, 0])
    rollout = Rollout(ArticulatedSystem(m), 5)
    with pytest.raises(ConfigError, match="initial state 'q': the free joint's orientation .* norm 2"):
        rollout.set_state0(q=np.array([[0, 0, 0, 2.0, 0, 0, 0, 0]]))  # the tape's initial state, as a fit sets it
    with pytest.raises(ConfigError, match="root link 'b' of the floating robot .* no rotational inertia"):
        rb = RobotBuilder("pt", floating_base=True)
        rb.add_link("b", mass=1.0)
        rb.finalize()


def test_rnea_inverts_aba_and_crba_is_spd():
    m = floating()
    rng = np.random.default_rng(0)
    for _ in range(3):
        q, qd = random_state(m, rng)
        tau = rng.normal(size=m.nv)
        tau[:6] = 0.0   # the free joint is not actuated: aba ignores its entries
        qdd = aba(m, q, qd, tau)
        back = rnea(m, q, qd, qdd)
        np.testing.assert_allclose(back, tau, atol=1e-10)
        M = crba(m, q)
        np.testing.assert_allclose(M, M.T, atol=1e-14)
        assert np.linalg.eigvalsh(M).min() > 1e-4
        # rnea with qd = 0 and gravity: M qdd + g(q) = tau, so crba and rnea agree
        g = rnea(m, q, np.zeros(m.nv), np.zeros(m.nv))
        np.testing.assert_allclose(rnea(m, q, np.zeros(m.nv), qdd) - g, M @ qdd, atol=1e-10)


def test_free_fall_and_the_six_joint_twin():
    """A free body falls with g whatever its orientation; at the
    identity orientation and zero velocity the free joint equals the 3 prismatic + 3 revolute
    base (same mass matrix and accelerations, velocity order (w, v) against (x, y, z, rx, ry, rz))."""
    m = floating()
    rng = np.random.default_rng(1)
    q, _ = random_state(m, rng)
    rb = RobotBuilder("lone", floating_base=True)
    rb.add_link("b", mass=2.0, com=(0.1, 0.0, 0.0), inertia=box_inertia(2.0, BOX))
    lone = rb.finalize()
    qdd = aba(lone, q[:7], np.zeros(6), np.zeros(6))
    R, _ = body_poses(lone, q[:7])
    np.testing.assert_allclose(qdd[:3], 0.0, atol=1e-12)
    np.testing.assert_allclose(qdd[3:], [0, 0, -9.81], atol=1e-12)   # linear velocity in world coordinates

    twin = six_joint_twin()
    perm = [3, 4, 5, 0, 1, 2, 6]   # free velocity k <-> twin joint perm[k]
    q_free = np.r_[0.3, -0.2, 0.5, 1.0, 0.0, 0.0, 0.0, 0.7]
    q_twin = np.r_[0.3, -0.2, 0.5, 0.0, 0.0, 0.0, 0.7]
    M_free, M_twin = crba(m, q_free), crba(twin, q_twin)[np.ix_(perm, perm)]
    np.testing.assert_allclose(M_free, M_twin, atol=1e-8)
    tau = np.r_[np.zeros(6), 0.3]
    np.testing.assert_allclose(aba(m, q_free, np.zeros(7), tau), aba(twin, q_twin, np.zeros(7), tau[np.argsort(perm)])[perm],
                               atol=1e-6)


def world_momentum(m, q, qd):
    """Spatial momentum of the whole robot in world coordinates (angular about the world
    origin, linear), from the free joint's rows of M qd: S^T h, the angular momentum about the
    base origin in base coordinates and the linear momentum in world coordinates."""
    h = np.einsum("tij,tj->ti", crba(m, q)[:, :6], qd)
    R, p = body_poses(m, q)
    lin = h[:, 3:]
    ang = np.einsum("tij,tj->ti", R[:, 0], h[:, :3]) + np.cross(p[:, 0], lin)
    return ang, lin


def energy(m, q, qd):
    M = crba(m, q)
    R, p = body_poses(m, q)
    com = np.einsum("tbij,bj->tbi", R, m.com) + p
    return 0.5 * np.einsum("ti,tij,tj->t", qd, M, qd) - np.einsum("tbi,b,i->t", com, m.mass, m.gravity)


def flight(m, q0, qd0, dt, T, torque):
    system = ArticulatedSystem(m, dt=dt, q0=q0, qd0=qd0)
    ro = Rollout(system, T)
    tau = np.zeros((T, 1, m.nv))
    tau[:, 0, 6] = torque * np.sin(np.arange(T) * dt * 20)
    ro.forward(controls={"tau": tau})
    q, qd = ro.trajectory("q")[:, 0], ro.trajectory("qd")[:, 0]
    np.testing.assert_allclose(np.linalg.norm(q[:, 3:7], axis=1), 1.0, atol=1e-12)
    return q, qd


def test_free_flight_conserves_momentum():
    """Tumbling without gravity, the arm driven by a torque (internal): the dynamics conserve
    the spatial momentum exactly (its rate along aba's accelerations is 0), and the
    semi-implicit Euler steps keep it to first order in dt."""
    m = floating((0.0, 0.0, 0.0))
    rng = np.random.default_rng(2)
    q, qd = random_state(m, rng)
    qdd = aba(m, q, qd, np.r_[np.zeros(6), 1.5])
    w, v = qd[:3], qd[3:6]
    qdot = np.r_[v, 0.5 * np.r_[-q[4:7] @ w, q[3] * w + np.cross(q[4:7], w)], qd[6]]
    h = 1e-6
    plus = world_momentum(m, (q + h * qdot)[None], (qd + h * qdd)[None])
    minus = world_momentum(m, (q - h * qdot)[None], (qd - h * qdd)[None])
    for a, b in zip(plus, minus):
        assert np.abs((a - b) / (2 * h)).max() < 1e-7
    drift = []
    for dt, T in ((1e-3, 250), (5e-4, 500)):
        qt, qdt = flight(m, q, qd, dt, T, 2.0)
        ang, lin = world_momentum(m, qt, qdt)
        drift.append(max(np.abs(lin - lin[0]).max() / np.abs(lin[0]).max(),
                         np.abs(ang - ang[0]).max() / np.abs(ang[0]).max()))
    assert drift[0] < 0.02 and 0.4 < drift[1] / drift[0] < 0.6, drift   # first order in dt


def test_free_flight_energy_drift_is_bounded():
    """Under gravity with no torque and no damping, the energy of the tumbling robot drifts by
    less than 1 % of its kinetic energy over 0.5 s at dt = 1 ms."""
    m = floating()
    q0, qd0 = random_state(m, np.random.default_rng(5))
    q, qd = flight(m, q0, qd0, 1e-3, 500, 0.0)
    E = energy(m, q, qd)
    kinetic = 0.5 * qd[0] @ crba(m, q[0]) @ qd[0]
    assert np.abs(E - E[0]).max() < 1e-2 * kinetic, (np.abs(E - E[0]).max(), kinetic)


def test_point_jacobian_of_the_free_joint_is_the_velocity_map():
    m = floating()
    rng = np.random.default_rng(3)
    q, qd = random_state(m, rng)
    J = point_jacobian(m, q, "arm", (0.05, 0.0, -0.2))
    h = 1e-6
    w, v = qd[:3], qd[3:6]

    def moved(s):   # the configuration after time s at velocity qd (to first order)
        qq = q.copy()
        qq[:3] += s * v
        a, b = q[3], q[4:7]
        dq = 0.5 * s * np.r_[-b @ w, a * w + np.cross(b, w)]
        qq[3:7] += dq
        qq[3:7] /= np.linalg.norm(qq[3:7])
        qq[7] += s * qd[6]
        return point_position(m, qq, "arm", (0.05, 0.0, -0.2))

    np.testing.assert_allclose((moved(h) - moved(-h)) / (2 * h), J @ qd, rtol=1e-6, atol=1e-8)


def test_a_dropped_box_comes_to_rest_on_the_ground():
    """A box with contact points at its 8 corners, dropped tilted and spinning, settles flat."""
    rb = RobotBuilder("box", floating_base=True)
    rb.add_link("box", mass=BOX_MASS, inertia=box_inertia(BOX_MASS, BOX))
    for x in (-0.2, 0.2):
        for y in (-0.15, 0.15):
            for z in (-0.1, 0.1):
                rb.add_contact_point("box", (x, y, z))
    m = rb.finalize()
    q0 = np.r_[0.0, 0.0, 0.4, np.cos(0.2), np.sin(0.2) * np.array([0.6, 0.8, 0.0])]
    system = ArticulatedSystem(m, dt=1e-3, contact=GroundContact(stiffness=3e4, damping=300.0, friction=0.8),
                               q0=q0, qd0=np.r_[0.5, -0.3, 0.2, 0.3, 0.0, 0.0])
    ro = Rollout(system, 2500)
    ro.forward()
    q, qd = ro.trajectory("q")[-1, 0], ro.trajectory("qd")[-1, 0]
    kinetic = 0.5 * qd @ crba(m, q) @ qd   # J; it fell from 0.4 m: m g h = 12 J
    assert kinetic < 1e-4, qd   # what is left is a slow yaw the smoothed friction damps
    R, p = body_poses(m, q)
    corners = np.array([[x, y, z] for x in (-0.2, 0.2) for y in (-0.15, 0.15) for z in (-0.1, 0.1)])
    heights = (corners @ R[0].T + p[0])[:, 2]
    low = np.sort(heights)[:4]
    assert np.all(low < 0) and np.all(low > -3e-3), heights   # four corners on the ground, the box flat
    assert np.sort(heights)[4] > 0.15


def test_gradient_through_the_free_joint():
    """Loss on the arm tip's final position and the base's speed, through 60 steps of tumbling
    flight under gravity: torques, initial velocity and the masses against central differences."""
    m = floating()
    rng = np.random.default_rng(4)
    q0, qd0 = random_state(m, rng)
    q0[:3] = 0.0
    cost = Cost(effort=0.01, ee_link="arm", ee_point=(0.0, 0.0, -0.3), ee_target=[0.2, 0.1, -0.3],
                ee_weight=1.0, ee_weight_final=10.0, qd_weight_final=0.1)
    system = ArticulatedSystem(m, dt=0.005, cost=cost, q0=q0, qd0=qd0, segment=25)
    ro = Rollout(system, 60)
    ro.set_controls(tau=rng.normal(size=(60, 1, m.nv)))
    obj = Objective(ro, ["tau", "qd", "mass"])
    x = obj.x0()
    report = gradcheck(obj, x, rtol=1e-6, entries=12, directions=2, seed=2)
    assert report.ok, str(report)
    _, g = obj(x)
    hinge = g[:60 * m.nv].reshape(60, m.nv)
    assert np.all(hinge[:, :6] == 0.0)   # the free joint is not actuated
    assert np.abs(hinge[:, 6]).min() > 1e-2 and np.abs(g[60 * m.nv:]).max() > 1e-1   # not vacuous
