"""The tape System: its loss against a NumPy recomputation, ground contact at rest, and clear
errors for bad configuration."""

import json

import numpy as np
import pytest

from diffsim import Rollout, StoreAll
from diffsim.articulated import (
    ArticulatedSystem,
    Cost,
    GroundContact,
    RobotBuilder,
    planar_arm,
    point_position,
)
from diffsim.errors import ConfigError, SimulationDiverged


def test_loss_equals_numpy_recomputation_with_a_moving_target():
    model = planar_arm(3, lengths=[0.3, 0.2, 0.1], masses=[1.0, 0.5, 0.3])
    B, T, dt = 2, 25, 0.005  # joint damping dt / inertia of the light last link stays below 2
    rng = np.random.default_rng(0)
    target = rng.normal(scale=0.2, size=(T + 1, B, 3))
    cost = Cost(effort=0.3, q_target=[0.1, -0.2, 0.3], q_weight=[1.0, 2.0, 0.5], qd_weight=0.2,
                q_weight_final=[3.0, 0.0, 1.0], qd_weight_final=0.7, ee_link="link2", ee_point=(0.05, 0, 0.01),
                ee_target=target, ee_weight=4.0, ee_weight_final=9.0)
    system = ArticulatedSystem(model, batch=B, dt=dt, cost=cost, segment=7,
                               q0=rng.normal(size=(B, 3)), qd0=rng.normal(size=(B, 3)))
    ro = Rollout(system, T, StoreAll())
    tau = rng.normal(size=(T, B, 3))
    loss = ro.forward(controls={"tau": tau})
    q, qd = ro.trajectory("q"), ro.trajectory("qd")
    x = point_position(model, q.reshape(-1, 3), "link2", (0.05, 0, 0.01)).reshape(T + 1, B, 3)
    qt = np.array([0.1, -0.2, 0.3])
    run = dt * (0.3 * (tau ** 2).sum() + ((q[:T] - qt) ** 2 * [1.0, 2.0, 0.5]).sum() + 0.2 * (qd[:T] ** 2).sum()
                + 4.0 * ((x[:T] - target[:T]) ** 2).sum())
    final = (((q[T] - qt) ** 2 * [3.0, 0.0, 1.0]).sum() + 0.7 * (qd[T] ** 2).sum()
             + 9.0 * ((x[T] - target[T]) ** 2).sum())
    assert np.isclose(loss, run + final, rtol=1e-12)


def test_a_dropped_foot_settles_at_the_penalty_depth():
    """A 2 kg foot on a vertical slider falls onto the ground and comes to rest where the
    contact law carries its weight: past the onset depth delta the law is k_n (d - delta / 2),
    so depth = m g / k_n + delta / 2 (here 0.98 mm + 0.5 mm, beyond delta = 1 mm as assumed)."""
    rb = RobotBuilder("drop")
    rb.add_link("world")
    rb.add_link("foot", mass=2.0, inertia=np.eye(3) * 1e-3)
    rb.add_joint("z", "prismatic", "world", "foot", axis=(0, 0, 1))
    rb.add_contact_point("foot")
    model = rb.finalize()
    k = 2e4
    system = ArticulatedSystem(model, dt=1e-3, contact=GroundContact(stiffness=k, damping=200.0), q0=[0.1])
    ro = Rollout(system, 1500)
    ro.forward()
    z = ro.trajectory("q")[:, 0, 0]
    assert z.min() < 0  # it hit the ground
    depth = 2.0 * 9.81 / k + system.contact.onset_depth / 2
    assert depth > system.contact.onset_depth
    assert np.isclose(z[-1], -depth, rtol=1e-3)
    assert abs(ro.trajectory("qd")[-1, 0, 0]) < 1e-4


def test_configuration_errors_are_clear():
    model = planar_arm(2)
    with pytest.raises(ConfigError, match="q0"):
        ArticulatedSystem(model, q0=[0.0, 0.0, 0.0])
    with pytest.raises(ConfigError, match="unknown link"):
        ArticulatedSystem(model, cost=Cost(ee_link="hand"))
    with pytest.raises(ConfigError, match="unknown parameter"):
        ArticulatedSystem(model, params={"length": [1.0, 1.0]})
    with pytest.raises(ConfigError, match="dt"):
        ArticulatedSystem(model, dt=0.0)
    system = ArticulatedSystem(model, batch=2, cost=Cost(ee_link="tip", ee_target=np.zeros((5, 2, 3))))
    with pytest.raises(ConfigError, match="rows"):
        Rollout(system, 10)
    with pytest.raises(ConfigError, match="ee_target"):
        system.set_ee_target(np.zeros((5, 3)))


def test_divergence_is_reported_with_advice():
    system = ArticulatedSystem(planar_arm(2, damping=0.0), dt=0.5)
    ro = Rollout(system, 200)
    ro.set_controls(tau=np.full((200, 1, 2), 50.0))
    with pytest.raises(SimulationDiverged, match="reduce dt"):
        ro.forward()


def test_articulated_cost_is_the_protocol_cost_and_sums_with_python_costs():
    """Cost is a diffsim.costs.Cost: cost= is shorthand for costs=[...], both give the same loss
    bitwise; a NumPy cost on the trajectory adds to it, and the sum's gradient (torques and
    initial state) matches central differences."""
    import diffsim.costs
    from diffsim import Objective, gradcheck

    model = planar_arm(2, lengths=[0.3, 0.2], masses=[1.0, 0.5], damping=0.05)
    T = 12
    rng = np.random.default_rng(2)
    tau = rng.normal(size=(T, 1, 2))

    def reach():
        return Cost(effort=0.1, q_weight=0.2, q_weight_final=1.0, q_target=[0.3, -0.2], ee_link="tip",
                    ee_target=[0.3, 0.0, 0.2], ee_weight_final=3.0)

    assert isinstance(reach(), diffsim.costs.Cost)
    losses = []
    for kwargs in ({"cost": reach()}, {"costs": [reach()]}):
        system = ArticulatedSystem(model, dt=0.01, q0=[0.2, 0.4], **kwargs)
        assert len(system.costs) == 1 and system.costs[0] is system.cost
        losses.append(Rollout(system, T).forward(controls={"tau": tau}))
    assert losses[0] == losses[1]

    # a Python cost on the trajectory: 5 (sum of final q)^2, beside the articulated Cost
    spread = diffsim.costs.NumpyCost(lambda s, t: 5.0 * s["q"][-1].sum() ** 2,
                                     lambda s, t: {"q": np.full_like(s["q"], 10.0 * s["q"][-1].sum())},
                                     "q", steps="last")
    system = ArticulatedSystem(model, dt=0.01, q0=[0.2, 0.4], cost=reach(), costs=[spread])
    ro = Rollout(system, T)
    total = ro.forward(controls={"tau": tau})
    q_final = ro.trajectory("q")[-1, 0]
    assert np.isclose(total, losses[0] + 5.0 * q_final.sum() ** 2, rtol=1e-13)
    obj = Objective(ro, ["tau", "q"])
    report = gradcheck(obj, obj.x0(), rtol=1e-6, entries=8, directions=2)
    assert report.ok, str(report)
    assert max(abs(r.reverse) for r in report.rows) > 1e-2


def test_articulated_cost_misuse_is_clear():
    model = planar_arm(2)
    with pytest.raises(ConfigError, match="at most one articulated Cost"):
        ArticulatedSystem(model, cost=Cost(effort=1.0), costs=[Cost(q_weight=1.0)])
    system = ArticulatedSystem(model)
    assert system.costs == [] and system.cost is None
    with pytest.raises(ConfigError, match="must be given to the ArticulatedSystem"):
        Rollout(system, 5, costs=[Cost(effort=1.0)]).forward()
    cost = Cost(effort=1.0)
    system.set_cost(cost)
    assert len(system.costs) == 1 and system.costs[0] is cost
    system.set_cost(None)
    assert system.costs == [] and Rollout(system, 5).forward() == 0.0


def test_robot_spread_gives_every_thread_robots_and_counts_each_once():
    from diffsim.articulated.kernels import robot_spread

    for threads in (1, 2, 4):
        for batch in (1, 2, 3, 16, 100, 511, 512, 600, 1000, 1024, 3000, 5000):
            spread = robot_spread(batch, threads)
            if batch == 1 or threads == 1:
                assert spread == 1
                continue
            # Taichi's adaptive CPU tasks: blocks of 512..1024 iterations; robot b is iteration b * spread
            iterations = batch * spread
            block = min(1024, max(512, iterations // (threads * 32)))
            robots_per_task = np.bincount(np.arange(batch) * spread // block)
            assert robots_per_task.sum() == batch and len(robots_per_task) >= threads
            assert robots_per_task.max() <= -(-batch // threads)


@pytest.mark.parametrize("kernel", ["small", "general"])
def test_a_spread_batch_steps_each_robot_as_it_steps_alone(kernel):
    """With two threads, a batch of 3 robots (limits, damping, a tip touching the ground) runs
    the spread loop of either step kernel (robot b at iteration b * spread, so that both threads
    get robots); each robot's loss, trajectory and gradients equal those of a run of that robot
    alone (the plain loop), to round-off. In a subprocess: the test session runs one thread."""
    from conftest import run_python

    code = f"""
import json
import numpy as np
import diffsim
diffsim.init(arch="cpu", precision="f64", threads=2)
from diffsim import Rollout, StoreAll
from diffsim.articulated import ArticulatedSystem, Cost, GroundContact, planar_arm
model = planar_arm(3, lengths=[0.3, 0.2, 0.1], masses=[1.0, 0.5, 0.3], damping=0.1, lower=-1.0, upper=1.0,
                   tip_contact=True)
B, T = 3, 40
rng = np.random.default_rng(2)
q0, tau = rng.normal(scale=0.5, size=(B, 3)), rng.normal(scale=2.0, size=(T, B, 3))
cost = dict(effort=0.1, q_weight=0.3, ee_link="tip", ee_target=[0.3, 0.0, 0.1], ee_weight=1.0, ee_weight_final=2.0)
ground = GroundContact(stiffness=1000.0, damping=10.0)


def robots(batch, q0):
    system = ArticulatedSystem(model, batch=batch, dt=0.002, contact=ground, cost=Cost(**cost), q0=q0, segment=15)
    assert system.step_kernel == "small"
    if "{kernel}" == "general":
        system._small = None
    return system


system = robots(B, q0)
ro = Rollout(system, T, StoreAll())
loss = ro.forward(controls={{"tau": tau}})
g = ro.backward()
out = {{"spread": system._spread, "loss": loss, "alone": 0.0, "spreads_alone": [], "dev": {{}}}}
def dev(name, a, b):
    out["dev"][name] = max(out["dev"].get(name, 0.0), float(np.max(np.abs(a - b)) / np.max(np.abs(b))))
for b in range(B):
    one = robots(1, q0[b])
    out["spreads_alone"].append(one._spread)
    r1 = Rollout(one, T, StoreAll())
    out["alone"] += r1.forward(controls={{"tau": tau[:, b:b + 1]}})
    g1 = r1.backward()
    dev("q", ro.trajectory("q")[:, b], r1.trajectory("q")[:, 0])
    dev("tau", g.controls["tau"][:, b], g1.controls["tau"][:, 0])
    for name, value in g1.params.items():
        dev(name, g.params[name][b], value[0])
print(json.dumps(out))
"""
    proc = run_python(code, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["spread"] > 1 and out["spreads_alone"] == [1, 1, 1]
    assert np.isclose(out["loss"], out["alone"], rtol=1e-13)
    assert set(out["dev"]) == {"q", "tau", "mass", "com", "inertia", "joint_offset", "damping", "armature"}
    for name, d in out["dev"].items():
        assert d < 1e-12, (name, d)


KERNELS = pytest.mark.parametrize("kernel", ["small", "general"])
"""The switch tests run both step kernels (their small robots take the small one by default)."""


def _rollout(system, T, tau, kernel="small"):
    """(loss, q and qd trajectories, gradients) of T steps of ``system`` under torques ``tau``,
    through the ``kernel`` ("small" or "general") step kernel."""
    assert system.step_kernel == "small"
    if kernel == "general":
        system._small = None
    ro = Rollout(system, T, StoreAll())
    loss = ro.forward(controls={"tau": tau})
    g = ro.backward()
    return loss, ro.trajectory("q"), ro.trajectory("qd"), g


@KERNELS
def test_world_poses_are_left_out_only_where_nothing_reads_them(kernel):
    """Without contact points and without a running end-effector term the step kernel stores no
    world poses (the ``poses`` switch); the dynamics must not depend on it. A vanishing running
    weight (1e-300) switches the poses on: states bitwise equal, loss and gradients equal to
    rounding, and the terminal end-effector gradient present in both."""
    model = planar_arm(4, damping=0.05)
    rng = np.random.default_rng(3)
    T = 30
    tau = rng.normal(scale=0.5, size=(T, 1, 4))
    results = []
    for running in (0.0, 1e-300):
        cost = Cost(effort=1e-3, ee_link="tip", ee_target=[0.5, 0.0, 0.4], ee_weight=running, ee_weight_final=1.0)
        loss, q, qd, g = _rollout(ArticulatedSystem(model, dt=0.002, cost=cost, q0=[0.3, -0.2, 0.1, 0.2], segment=11),
                                  T, tau, kernel)
        results.append((loss, q, qd, g.controls["tau"], g.params["mass"]))
    (l0, q0, qd0, gt0, gm0), (l1, q1, qd1, gt1, gm1) = results
    assert np.array_equal(q0, q1) and np.array_equal(qd0, qd1)
    assert np.isclose(l0, l1, rtol=1e-15, atol=0)
    assert np.abs(gt0).max() > 1e-3
    np.testing.assert_allclose(gt1, gt0, rtol=1e-13, atol=1e-15 * np.abs(gt0).max())
    np.testing.assert_allclose(gm1, gm0, rtol=1e-13, atol=1e-15 * np.abs(gm0).max())


@KERNELS
def test_robots_without_limits_step_as_with_limits_far_away(kernel):
    """A robot with no finite joint limit compiles its step without the soft-limit law and the
    velocity clamp (the ``limits`` switch); the law is exactly 0 and the clamp the identity far
    from the bounds, so a twin with limits at +-1e6 rad (switch on) steps the same, states, loss
    and gradients equal to rounding (not bitwise: the compiler contracts the remaining arithmetic
    into fused multiply-adds differently)."""
    rng = np.random.default_rng(5)
    T = 40
    tau = rng.normal(scale=0.5, size=(T, 1, 3))
    results = []
    for bounds in ({}, {"lower": -1e6, "upper": 1e6}):
        model = planar_arm(3, damping=0.05, **bounds)
        system = ArticulatedSystem(model, dt=0.002, q0=[0.3, -0.2, 0.1], qd0=[0.5, -1.0, 2.0],
                                   cost=Cost(effort=1e-3, qd_weight=0.1, ee_link="tip", ee_target=[0.3, 0.0, 0.2],
                                             ee_weight_final=1.0))
        assert system.arrays.has_limits == bool(bounds)
        loss, q, qd, g = _rollout(system, T, tau, kernel)
        results.append((loss, q, qd, g.controls["tau"], g.state0["qd"], g.params["damping"]))
    (l0, *a), (l1, *b) = results
    np.testing.assert_allclose(b[0], a[0], rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(b[1], a[1], rtol=1e-13, atol=1e-14)
    assert np.isclose(l0, l1, rtol=1e-14, atol=0)
    for x, y in zip(a[2:], b[2:]):
        assert np.abs(x).max() > 1e-4
        np.testing.assert_allclose(y, x, rtol=1e-12, atol=1e-14 * np.abs(x).max())


@KERNELS
def test_a_cost_without_running_terms_writes_and_sums_none(kernel):
    """A Cost with terminal terms only compiles its step without the running-cost writes (the
    ``running`` switch) and launches no running_sum; a vanishing effort weight (1e-300) switches
    them on: states bitwise, loss and gradients equal to rounding."""
    model = planar_arm(3, damping=0.05)
    rng = np.random.default_rng(8)
    T = 25
    tau = rng.normal(scale=0.5, size=(T, 1, 3))
    results = []
    for effort in (0.0, 1e-300):
        cost = Cost(effort=effort, ee_link="tip", ee_target=[0.4, 0.0, 0.3], ee_weight_final=1.0,
                    qd_weight_final=0.5)
        system = ArticulatedSystem(model, dt=0.002, cost=cost, q0=[0.3, -0.2, 0.1], segment=9)
        assert system._running == (effort != 0)
        loss, q, qd, g = _rollout(system, T, tau, kernel)
        results.append((loss, q, qd, g.controls["tau"], g.params["inertia"]))
    (l0, q0, qd0, *g0), (l1, q1, qd1, *g1) = results
    assert np.array_equal(q0, q1) and np.array_equal(qd0, qd1)
    assert np.isclose(l0, l1, rtol=1e-15, atol=0)
    for x, y in zip(g0, g1):
        assert np.abs(x).max() > 1e-6
        np.testing.assert_allclose(y, x, rtol=1e-12, atol=1e-14 * np.abs(x).max())
