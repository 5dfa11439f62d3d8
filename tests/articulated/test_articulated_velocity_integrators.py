"""Velocity limits (each step's new velocity smoothly clamped, C^2) and the implicit-damping
integrator: the analytic motion of a lone joint, stability where the explicit step blows up,
the NumPy reference, URDF input, and float64 central-difference gradients."""

import numpy as np
import pytest

from diffsim import Objective, Rollout, StoreAll, gradcheck
from diffsim.articulated import ArticulatedSystem, Cost, Integrator, RobotBuilder, load_urdf, planar_arm
from diffsim.articulated import reference as ref
from diffsim.articulated.limits import VELOCITY_LIMIT_ONSET, velocity_clamp_np
from diffsim.errors import ConfigError

IZZ = 0.1


def turntable(damping=0.0, velocity=None):
    """One revolute joint about the vertical (gravity exerts no torque), a disc of inertia
    IZZ (kg m^2) about its axis."""
    rb = RobotBuilder("turntable")
    rb.add_link("base")
    rb.add_link("disc", mass=1.0, inertia=np.diag([0.05, 0.05, IZZ]))
    rb.add_joint("spin", "revolute", "base", "disc", axis=(0, 0, 1), damping=damping, velocity=velocity)
    return rb.finalize()


def spin(model, steps, dt, tau=0.0, qd0=1.0, integrator="semi_implicit_euler"):
    system = ArticulatedSystem(model, dt=dt, q0=[0.0], qd0=[qd0], integrator=integrator)
    ro = Rollout(system, steps)
    ro.set_controls(tau=np.full((steps, 1, 1), tau))
    ro.forward()
    return ro.trajectory("q")[:, 0, 0], ro.trajectory("qd")[:, 0, 0]


# ------------------------------------------------------------------ velocity limits

def test_velocity_limit_holds_a_driven_joint_below_the_limit():
    """A constant torque tau on a free disc: without a limit qd grows as tau t / I; with v_max
    each step's new velocity is clamped smoothly: y' = clamp(y + dt tau / I), the identity below
    v_max - w (w = 5 % of v_max), so the joint approaches v_max from below and never reaches it."""
    dt, vmax, tau = 0.01, 2.0, 8.0
    _, free = spin(turntable(), 100, dt, tau=tau, qd0=0.0)
    assert free[-1] == pytest.approx(tau * 1.0 / IZZ, rel=1e-12)    # 80 rad/s: far past the limit
    model = turntable(velocity=vmax)
    q, qd = spin(model, 100, dt, tau=tau, qd0=0.0)
    w = VELOCITY_LIMIT_ONSET * vmax
    y = [0.0]
    for _ in range(100):
        y.append(float(velocity_clamp_np(y[-1] + dt * tau / IZZ, vmax, w)))
    assert np.allclose(qd, y, rtol=1e-12, atol=0)
    assert np.allclose(q, np.r_[0.0, dt * np.cumsum(y[1:])], rtol=1e-12, atol=0)   # q' = q + dt qd'
    assert qd[:3].tolist() == pytest.approx(free[:3].tolist(), rel=1e-12)         # untouched below the band
    assert np.all(np.abs(qd) <= vmax) and qd[-1] > 0.999 * vmax
    _, back = spin(model, 100, dt, tau=-tau, qd0=0.0)
    assert np.allclose(back, -qd, rtol=1e-12, atol=0)                            # symmetric
    # a fast start is clamped at once; inside the band the clamp is a slow (cubic) drag towards
    # v_max - w, not the identity: a smooth clamp cannot be idempotent
    _, fast = spin(model, 5, dt, qd0=50.0)
    assert np.all(fast[1:] <= vmax) and fast[1] > 0.99 * vmax
    assert np.all(np.diff(fast[1:]) < 0) and np.all(fast[1:] > vmax - w)
    assert velocity_clamp_np(1.9, vmax, w) == 1.9 and velocity_clamp_np(-2.5, vmax, w) > -vmax


def test_velocity_limit_steps_like_the_reference():
    """One step of a 3-link arm with limits on two joints: qd' = clamp(qd + dt qdd), qdd from
    the NumPy ABA, q' = q + dt qd'."""
    model = planar_arm(3, damping=0.05)
    model.velocity_limit[:] = [1.0, 2.0, np.inf]
    rng = np.random.default_rng(1)
    q0, qd0, tau = rng.uniform(-1, 1, size=3), np.array([1.5, -1.98, 3.0]), rng.normal(size=3)
    dt = 0.01
    system = ArticulatedSystem(model, dt=dt, q0=q0, qd0=qd0)
    ro = Rollout(system, 1)
    ro.set_controls(tau=tau.reshape(1, 1, 3))
    ro.forward()
    qdd = ref.aba(model, q0, qd0, tau, limits=system.limits)
    vmax = model.velocity_limit
    expected = np.r_[velocity_clamp_np(qd0[:2] + dt * qdd[:2], vmax[:2], VELOCITY_LIMIT_ONSET * vmax[:2]),
                     qd0[2] + dt * qdd[2]]
    assert np.allclose(ro.trajectory("qd")[1, 0], expected, rtol=1e-12, atol=1e-14)
    assert np.allclose(ro.trajectory("q")[1, 0], q0 + dt * expected, rtol=1e-12, atol=1e-14)
    assert abs(expected[0]) < 1.0 and abs(expected[2] - 3.0) < 0.5


def test_velocity_limit_gradients_match_central_differences():
    """A 2-link arm (no gravity) driven into both joints' clamps (in and out of the band)."""
    rb = RobotBuilder("arm2", gravity=(0.0, 0.0, 0.0))
    rb.add_link("base")
    rb.add_link("l1", mass=1.0, inertia=np.diag([1e-3, 0.03, 0.03]), com=(0.15, 0, 0))
    rb.add_link("l2", mass=0.5, inertia=np.diag([1e-3, 0.01, 0.01]), com=(0.1, 0, 0))
    rb.add_joint("j1", "revolute", "base", "l1", axis=(0, 1, 0), velocity=2.0)
    rb.add_joint("j2", "revolute", "l1", "l2", xyz=(0.3, 0, 0), axis=(0, 1, 0), velocity=3.0)
    model = rb.finalize()
    cost = Cost(effort=0.01, q_weight_final=1.0, qd_weight_final=0.5, ee_link="l2", ee_point=(0.2, 0, 0),
                ee_target=[0.1, 0.0, 0.3], ee_weight=1.0)
    system = ArticulatedSystem(model, dt=0.01, cost=cost, q0=[0.2, -0.3], qd0=[1.8, -2.7], segment=20)
    ro = Rollout(system, 50, StoreAll())
    ro.set_controls(tau=np.random.default_rng(3).normal(loc=[0.5, -0.3], scale=0.3, size=(50, 1, 2)))
    ro.forward()
    qd = np.abs(ro.trajectory("qd")[:, 0])
    assert (qd[:, 0] > 0.95 * 2.0).sum() > 5 and (qd[:, 1] > 0.95 * 3.0).sum() > 5   # both clamps engaged
    assert qd[:, 0].max() < 2.0 and qd[:, 1].max() < 3.0
    obj = Objective(ro, ["tau", "q", "qd", "mass"])
    report = gradcheck(obj, obj.x0(), rtol=1e-6, entries=12, directions=2)
    assert report.ok, str(report)
    assert max(abs(r.reverse) for r in report.rows) > 1e-3


def test_velocity_limit_from_urdf_and_bad_values():
    text = """<robot name="r"><link name="a"/><link name="b"><inertial><mass value="1"/>
      <inertia ixx="0.1" iyy="0.1" izz="0.1" ixy="0" ixz="0" iyz="0"/></inertial></link>
      <joint name="j" type="continuous"><parent link="a"/><child link="b"/><axis xyz="0 0 1"/>
      <limit effort="5" velocity="{v}"/></joint></robot>"""
    m = load_urdf(text.format(v=3.5))
    assert m.velocity_limit.tolist() == [3.5] and m.effort.tolist() == [5.0]
    assert np.isinf(load_urdf(text.replace(' velocity="{v}"', "")).velocity_limit).all()
    with pytest.raises(ConfigError, match="velocity='0'.*must be > 0"):
        load_urdf(text.format(v=0))
    with pytest.raises(ConfigError, match="joint 'spin': velocity limit -1.0 must be > 0"):
        turntable(velocity=-1.0)


# ------------------------------------------------------------------ implicit-damping Euler

def test_stiff_damping_is_stable_and_decays_as_the_analytic_solution():
    """I qdd = -d qd: qd = qd0 exp(-d t / I), total travel qd0 I / d. At d dt / I = 3 the explicit
    step multiplies qd by -2 each step; the implicit one by 1 / (1 + d dt / I) (monotone decay)
    and its total travel is exactly the analytic qd0 I / d."""
    dt, d = 0.01, 30.0
    h = d * dt / IZZ
    model = turntable(damping=d)
    _, explicit = spin(model, 10, dt)
    assert explicit[-1] == pytest.approx((1 - h) ** 10, rel=1e-12)   # 1024: diverging
    q, qd = spin(model, 40, dt, integrator="implicit_euler_damping")
    assert np.allclose(qd, (1 + h) ** -np.arange(41), rtol=1e-12, atol=0)
    assert q[-1] == pytest.approx(IZZ / d, rel=1e-12)
    # at a mild rate it follows the continuous exponential to first order in d dt / I
    d = 0.2
    q, qd = spin(turntable(damping=d), 100, dt, integrator=Integrator.IMPLICIT_EULER_DAMPING)
    assert qd[-1] == pytest.approx(np.exp(-d * 1.0 / IZZ), rel=0.025)
    assert q[-1] == pytest.approx(IZZ / d * (1 - np.exp(-d / IZZ)), rel=0.025)


def test_implicit_damping_gradients_match_central_differences():
    model = planar_arm(3, lengths=[0.4, 0.3, 0.2], masses=[1.0, 0.7, 0.4], damping=2.0, armature=0.01)
    cost = Cost(effort=0.05, q_weight=0.1, q_weight_final=0.5, qd_weight_final=0.2, q_target=[0.2, -0.4, 0.3],
                ee_link="tip", ee_target=[0.3, 0.0, 0.2], ee_weight_final=5.0)
    system = ArticulatedSystem(model, dt=0.01, cost=cost, q0=[0.3, -0.5, 0.8], qd0=[1.0, -2.0, 0.5], segment=16,
                               integrator="implicit_euler_damping")
    ro = Rollout(system, 40, StoreAll())
    ro.set_controls(tau=np.random.default_rng(4).normal(scale=2.0, size=(40, 1, 3)))
    obj = Objective(ro, ["damping", "armature", "tau", "qd"])
    report = gradcheck(obj, obj.x0(), rtol=1e-6, entries=12, directions=2)
    assert report.ok, str(report)
    assert max(abs(r.reverse) for r in report.rows) > 1e-3


def test_unknown_integrator_is_named():
    with pytest.raises(ConfigError, match="integrator must be one of.*'semi_implicit_euler'.*got 'verlet'"):
        ArticulatedSystem(turntable(), integrator="verlet")
