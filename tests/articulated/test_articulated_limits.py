"""Joint limits and ground contact as a user meets them: a 3-joint arm of their own written as
URDF (limits and efforts in the file), fitted with L-BFGS from zero torques; gradients through
limit and contact onsets; a fine scan with no jumps; stable defaults for a light link pressed
into its stop; torque bounds from the URDF's efforts; divergence advice that names the stiff
terms the robot really has. Public API only."""

import numpy as np
import pytest

import optimizers
from diffsim import Objective, Parameter, Rollout, StoreAll, gradcheck
from diffsim.articulated import (
    ArticulatedSystem,
    Cost,
    GroundContact,
    RobotBuilder,
    load_urdf,
    planar_arm,
    point_position,
)
from diffsim.errors import ConfigError

# (link, length m, mass kg) and (lower rad, upper rad, effort N m): an arm that swings about y
# in the x-z plane; the elbow bends one way only (like a human elbow), and starts on its stop
LINKS = [("upper", 0.30, 1.0), ("fore", 0.25, 0.6), ("hand", 0.20, 0.3)]
LIMITS = [(-1.0, 2.5, 20.0), (0.0, 2.0, 10.0), (-1.0, 1.0, 5.0)]
HANGING = [np.pi / 2, 0.0, 0.0]  # straight down


def arm_urdf(efforts=tuple(e for _, _, e in LIMITS)):
    parts = ['<robot name="my_arm">', '<link name="base"/>']
    for name, length, mass in LINKS:
        i = mass * length ** 2 / 12
        parts.append(f'<link name="{name}"><inertial><origin xyz="{length / 2} 0 0"/><mass value="{mass}"/>'
                     f'<inertia ixx="1e-5" iyy="{i}" izz="{i}" ixy="0" ixz="0" iyz="0"/></inertial></link>')
    parts.append('<link name="tip"/>')
    parent, offset = "base", 0.0
    for k, ((name, length, _), (lo, hi, _), effort) in enumerate(zip(LINKS, LIMITS, efforts)):
        eff = "" if effort is None else f' effort="{effort}"'
        parts.append(f'<joint name="j{k}" type="revolute"><parent link="{parent}"/><child link="{name}"/>'
                     f'<origin xyz="{offset} 0 0"/><axis xyz="0 1 0"/>'
                     f'<limit lower="{lo}" upper="{hi}"{eff} velocity="5"/><dynamics damping="0.05"/></joint>')
        parent, offset = name, length
    parts.append(f'<joint name="tip_weld" type="fixed"><parent link="hand"/><child link="tip"/>'
                 f'<origin xyz="{offset} 0 0"/></joint></robot>')
    return "\n".join(parts)


@pytest.fixture(scope="module")
def arm():
    return load_urdf(arm_urdf())


@pytest.fixture(scope="module")
def arm_on_ground():
    """The same arm with its tip touching a floor 0.7 m below the shoulder (it hangs 0.75 m)."""
    return load_urdf(arm_urdf(), contact_points=[("tip", (0.0, 0.0, 0.0))])


# the tip presents about 0.09 kg to the floor: 300 N/m gives omega*dt = 0.29 at dt = 5 ms, critically damped
FLOOR = GroundContact(stiffness=300.0, damping=10.0, friction=0.5, slip_speed=0.05, height=-0.7)
DT = 0.005


def test_urdf_efforts_are_torque_bounds(arm):
    system = ArticulatedSystem(arm, batch=2, dt=0.02)
    lower, upper = system.control_limits()["tau"]
    assert np.array_equal(upper, np.tile([20.0, 10.0, 5.0], (2, 1)))
    assert np.array_equal(lower, -upper)
    # a joint whose <limit> gives no effort is unbounded
    free = ArticulatedSystem(load_urdf(arm_urdf(efforts=(20.0, None, 5.0))), dt=0.02)
    assert free.control_limits()["tau"][1][0].tolist() == [20.0, np.inf, 5.0]
    obj = Objective(Rollout(system, 4), [Parameter("tau", lower=lower, upper=upper)])
    assert obj.bounds[:3] == [(-20.0, 20.0), (-10.0, 10.0), (-5.0, 5.0)]
    # a continuous joint's <limit> carries an effort (and no position limits)
    wheel = load_urdf(arm_urdf().replace('type="revolute"', 'type="continuous"', 1))
    assert wheel.effort[0] == 20.0 and wheel.lower[0] < -1e29
    with pytest.raises(ConfigError, match="unknown link 'hand2'"):
        load_urdf(arm_urdf(), contact_points=[("hand2", (0, 0, 0))])


@pytest.mark.parametrize("finalize", [{}, {"limit_damping": 0.5}])
def test_urdf_arm_reaches_its_target_with_lbfgs_from_zero_torques(arm, finalize):
    """The target lies where the unconstrained optimum would bend the hand past its limit and
    where the elbow, which starts on its stop, must press into it on the way: the fitted
    motion crosses limit onsets, and still ends within 1 cm of the target, at rest. With the
    default gains and with limit_damping=0.5 (where the step-like damping of the old law
    stopped L-BFGS at loss 50 with the tip 15 cm off)."""
    arm = load_urdf(arm_urdf(), **finalize) if finalize else arm
    target = np.array([0.0716, 0.0, -0.6842])
    T, dt = 60, 0.02
    cost = Cost(effort=1e-3, ee_link="tip", ee_target=target, ee_weight=1.0, ee_weight_final=100.0,
                qd_weight_final=1.0)
    system = ArticulatedSystem(arm, dt=dt, cost=cost, q0=HANGING)
    rollout = Rollout(system, T, StoreAll())
    lower, upper = system.control_limits()["tau"]
    objective = Objective(rollout, [Parameter("tau", lower=lower, upper=upper)])
    res = optimizers.minimize(objective, np.zeros(objective.size), "lbfgs", 80, bounds=objective.bounds,
                              progress=False)
    objective.set(res.x)
    rollout.forward()
    q, qd = rollout.trajectory("q")[:, 0], rollout.trajectory("qd")[:, 0]
    tip = point_position(arm, q[-1], "tip")
    assert np.linalg.norm(tip - target) < 0.01, (tip, res.message)
    assert np.abs(qd[-1]).max() < 0.05, qd[-1]  # at rest
    assert res.fun < 0.02 * res.history["loss"][0]
    lo = np.array([lim[0] for lim in LIMITS])
    assert np.any(q < lo - 0.1 * system.limits.onset), "the fitted motion should press a joint into its stop"
    assert np.all(np.abs(res.x) <= np.tile(upper[0], T) + 1e-12)


def ground_and_limit_rollout(model, batch=1, qd0=(1.0, 0.0, 0.0), steps=100, floor=FLOOR):
    """The arm swung down onto the floor under small random torques: the tip lands (contact
    onset) and the elbow is pressed through its stop's onset."""
    cost = Cost(effort=0.01, q_weight_final=1.0, qd_weight_final=0.1, q_target=[1.0, 0.5, 0.0], ee_link="tip",
                ee_target=[0.4, 0.0, -0.5], ee_weight=1.0, ee_weight_final=10.0)
    system = ArticulatedSystem(model, batch=batch, dt=DT, contact=floor, cost=cost, q0=[0.6, 0.1, 0.3],
                               qd0=qd0, segment=25)
    ro = Rollout(system, steps, StoreAll())
    tau = np.random.default_rng(0).normal(scale=0.3, size=(steps, 1, 3))
    ro.set_controls(tau=np.broadcast_to(tau, (steps, batch, 3)).copy())
    return ro


def test_gradients_through_limit_and_contact_onsets(arm_on_ground):
    ro = ground_and_limit_rollout(arm_on_ground)
    ro.forward()
    q = ro.trajectory("q")[:, 0]
    z = ro.system.ee_positions(q[:, None])[:, 0, 2]
    lo = np.array([lim[0] for lim in LIMITS])
    hi = np.array([lim[1] for lim in LIMITS])
    onset = ro.system.limits.onset
    assert np.any(z < FLOOR.height - FLOOR.onset_depth) and z[0] > FLOOR.height, "the tip must land"
    assert np.any((q < lo - 0.1 * onset) | (q > hi + 0.1 * onset)), "a joint must go into a stop's onset"
    obj = Objective(ro, ["tau", "q", "qd", "mass", "damping"])
    report = gradcheck(obj, obj.x0(), rtol=1e-6, entries=16, directions=3, seed=2)
    assert report.ok, str(report)
    assert max(abs(r.reverse) for r in report.rows) > 1e-3


def _scan(model, rates, floor=FLOOR):
    """Final joint angles and tip heights of len(rates) arms (one batch) whose shoulder starts
    at the given rates (rad/s), through the floor and the stops."""
    B = len(rates)
    qd0 = np.zeros((B, 3))
    qd0[:, 0] = rates
    ro = ground_and_limit_rollout(model, batch=B, qd0=qd0, floor=floor)
    ro.forward()
    q = ro.trajectory("q")
    return q[-1], ro.system.ee_positions(q)[:, :, 2]


def _jumpiness(values):
    """Largest adjacent difference over the median one, per column."""
    d = np.abs(np.diff(values, axis=0))
    return d.max(axis=0) / np.maximum(np.median(d, axis=0), 1e-15)


def test_fine_scan_of_the_initial_rate_has_no_jumps(arm_on_ground):
    """120 initial shoulder rates 1 mrad/s apart: the final joint angles vary smoothly (largest
    step under 8x the median one; measured 4.5), though along the way the tip lands on the
    floor and the elbow enters its stop at steps that move with the rate. With the onsets made
    sharp (1e-9), the same scan jumps (measured 411x): the check can fail."""
    rates = 1.0 + 1e-3 * np.arange(120)
    q_final, z = _scan(arm_on_ground, rates)
    assert np.any(z < FLOOR.height - FLOOR.onset_depth)
    assert np.all(_jumpiness(q_final) < 8.0), _jumpiness(q_final)
    sharp = load_urdf(arm_urdf(), contact_points=[("tip", (0.0, 0.0, 0.0))], limit_onset=1e-9)
    q_sharp, _ = _scan(sharp, rates, GroundContact(**{**FLOOR.__dict__, "onset_depth": 1e-9}))
    assert np.max(_jumpiness(q_sharp)) > 50.0, _jumpiness(q_sharp)


def light_link(**finalize):
    """A 0.1 kg, 0.1 m rod on a hinge limited to +-0.5 rad, no gravity."""
    rb = RobotBuilder("light", gravity=(0.0, 0.0, 0.0))
    rb.add_link("base")
    rb.add_link("rod", mass=0.1, com=(0.05, 0, 0), inertia=np.diag([1e-6, 0.1 * 0.01 / 12, 0.1 * 0.01 / 12]))
    rb.add_joint("hinge", "revolute", "base", "rod", axis=(0, 1, 0), lower=-0.5, upper=0.5)
    return rb.finalize(**finalize)


def test_a_light_link_pushed_into_its_limit_is_stable_with_default_gains():
    """1 N m on a 3.3e-4 kg m^2 link at dt = 0.01 s: it reaches the stop and rests where the
    stop's law balances the torque, k (d - delta / 2) = 1 N m (the old fixed gains diverged
    here). The former gains (1e3, 10) are stable too, now that stops are linearly implicit."""
    T = 300
    for finalize in ({}, {"limit_stiffness": 1e3, "limit_damping": 10.0}):
        system = ArticulatedSystem(light_link(**finalize), dt=0.01)
        ro = Rollout(system, T)
        ro.set_controls(tau=np.ones((T, 1, 1)))
        ro.forward()
        q, qd = ro.trajectory("q")[:, 0, 0], ro.trajectory("qd")[:, 0, 0]
        k, delta = system.limits.stiffness[0], system.limits.onset
        # the law's static depth: k d^2 / (2 delta) = 1 N m within the onset, k (d - delta / 2) past it
        depth = 1.0 / k + delta / 2 if 1.0 / k >= delta / 2 else np.sqrt(2 * delta / k)
        assert np.isclose(q[-1], 0.5 + depth, rtol=0, atol=1e-6 + 1e-3 * depth), (q[-1], 0.5 + depth)
        assert abs(qd[-1]) < 1e-3 and np.all(np.isfinite(q))


def test_gains_that_cannot_be_stepped_are_refused_at_build_time():
    """A stop so stiff that even the implicit step rattles at its onset: a ConfigError that
    names the joint limit and the largest stable dt, at which the system then builds."""
    model = light_link(limit_stiffness=1e7)
    with pytest.raises(ConfigError, match=r"joint 'hinge'.*largest stable dt with these joint limits is") as err:
        ArticulatedSystem(model, dt=0.01)
    max_dt = float(str(err.value).split("limits is ")[1].split(" s")[0])
    assert 0 < max_dt < 0.01
    assert ArticulatedSystem(model, dt=0.5 * max_dt).limits.max_dt >= 0.5 * max_dt
    with pytest.raises(ConfigError, match="limit_stiffness"):
        light_link(limit_stiffness=-1.0)
    with pytest.raises(ConfigError, match="limit_onset"):
        light_link(limit_onset=0.0)
    with pytest.raises(ConfigError, match="onset_depth"):
        GroundContact(onset_depth=0.0)


def test_divergence_hint_names_the_stiff_terms_the_robot_has(arm, arm_on_ground):
    bare = ArticulatedSystem(planar_arm(2), dt=0.01).divergence_hint()
    assert "reduce dt (now 0.01 s)" in bare
    assert "none found" in bare and "soft joint limits" not in bare and "ground contact of" not in bare
    limited = ArticulatedSystem(arm, dt=0.01).divergence_hint()
    assert "soft joint limits" in limited and "'j1'" in limited and "omega*dt" in limited
    assert "ground contact of" not in limited
    both = ArticulatedSystem(arm_on_ground, dt=0.01, contact=FLOOR).divergence_hint()
    assert "soft joint limits" in both and "ground contact of 1 point" in both and "300 N/m" in both


def test_plausible_magnitudes_bound_every_state_field(arm):
    system = ArticulatedSystem(arm, dt=0.01)
    bounds = system.plausible_magnitudes()
    assert set(bounds) == set(system.state_shapes)
    assert all(np.isfinite(v) and v > 0 for v in bounds.values())
    assert bounds["qd"] >= 1e3  # far beyond the joint speeds a motor gives, so never a false alarm
