"""Reverse-mode gradients of robot rollouts against float64 central differences; checkpointed
schedules bitwise equal to StoreAll; a batch of B robots equal to B single runs."""

import numpy as np
import pytest

from diffsim import Binomial, Objective, Periodic, Rollout, StoreAll, gradcheck
from diffsim.articulated import (
    ArticulatedSystem,
    Cost,
    GroundContact,
    RobotBuilder,
    cartpole,
    planar_arm,
)

T = 40


def arm_rollout(batch=2, schedule=None, segment=16, seed=0, steps=T):
    rng = np.random.default_rng(seed)
    model = planar_arm(3, lengths=[0.4, 0.3, 0.2], masses=[1.0, 0.7, 0.4], damping=0.05, armature=0.01,
                       lower=-1.5, upper=1.5)
    cost = Cost(effort=0.05, q_weight=0.1, qd_weight=0.01, q_weight_final=0.5, qd_weight_final=0.2,
                q_target=[0.2, -0.4, 0.3], ee_link="tip", ee_point=(0.02, 0, 0),
                ee_target=rng.normal(scale=0.3, size=(batch, 3)), ee_weight=2.0, ee_weight_final=5.0)
    params = {"mass": model.mass * rng.uniform(0.8, 1.2, size=(batch, 3)),
              "joint_offset": model.joint_offset + rng.normal(scale=0.02, size=(batch, 3, 3))}
    system = ArticulatedSystem(model, batch=batch, dt=0.01, cost=cost, params=params, segment=segment,
                               q0=rng.uniform(-1, 1, size=(batch, 3)), qd0=rng.normal(size=(batch, 3)))
    ro = Rollout(system, steps, schedule or StoreAll())
    ro.set_controls(tau=rng.normal(scale=2.0, size=(steps, batch, 3)))
    return ro


@pytest.mark.parametrize("names", [["mass", "com"], ["inertia", "armature"], ["joint_offset", "damping"],
                                   ["tau"], ["q", "qd"]])
def test_arm_gradients_match_central_differences(names):
    """Every parameter family, the torques and the initial state, on two robots with different
    parameters, over three fused segments (the middle ones recomputed in the adjoint)."""
    ro = arm_rollout()
    obj = Objective(ro, names)
    report = gradcheck(obj, obj.x0(), rtol=1e-6, entries=8, directions=2, seed=1)
    assert report.ok, str(report)
    assert max(abs(r.reverse) for r in report.rows) > 1e-3  # not vacuous


def test_link_length_and_damping_gradients_exactly():
    ro = arm_rollout(batch=1, seed=3)
    obj = Objective(ro, ["joint_offset", "damping", "mass"])
    report = gradcheck(obj, obj.x0(), rtol=1e-6, entries=64, directions=1)
    assert report.ok, str(report)


def sliding_foot():
    """A foot (point mass on two prismatic joints, x and z) pressed into the ground and sliding:
    contact normal force and smoothed friction act for the whole rollout."""
    rb = RobotBuilder("foot")
    rb.add_link("world")
    rb.add_link("carriage", mass=0.5, inertia=np.eye(3) * 1e-3)
    rb.add_link("foot", mass=1.0, inertia=np.eye(3) * 1e-3)
    rb.add_joint("slide_x", "prismatic", "world", "carriage", axis=(1, 0, 0), damping=0.1)
    rb.add_joint("slide_z", "prismatic", "carriage", "foot", axis=(0, 0, 1), damping=0.5)
    rb.add_contact_point("foot", (0, 0, -0.05))
    return rb.finalize()


def test_ground_contact_gradients_match_central_differences():
    model = sliding_foot()
    contact = GroundContact(stiffness=5e3, damping=30.0, friction=0.6, slip_speed=0.05)
    cost = Cost(effort=0.01, q_weight_final=1.0, qd_weight_final=0.5, q_target=[0.5, 0.0],
                ee_link="foot", ee_target=[0.3, 0.0, 0.1], ee_weight=1.0)
    system = ArticulatedSystem(model, batch=1, dt=0.002, contact=contact, cost=cost, segment=25,
                               q0=[0.0, 0.045], qd0=[0.8, 0.0])
    ro = Rollout(system, 60, StoreAll())
    rng = np.random.default_rng(0)
    ro.set_controls(tau=np.stack([rng.normal(size=60), -14.0 + rng.normal(size=60)], axis=1)[:, None, :])
    ro.forward()
    z = ro.trajectory("q")[:, 0, 1] - 0.05
    assert np.all(z < 0), "the foot must stay in contact for the check to cover the contact model"
    obj = Objective(ro, ["mass", "damping", "tau", "q", "qd"])
    report = gradcheck(obj, obj.x0(), rtol=1e-6, entries=20, directions=2)
    assert report.ok, str(report)


def test_cartpole_prismatic_gradients():
    model = cartpole(pole_damping=0.02, track=0.4)
    cost = Cost(effort=0.01, ee_link="tip", ee_target=[0, 0, 1.0], ee_weight=1.0, ee_weight_final=10.0,
                q_weight_final=[1.0, 0.0])
    system = ArticulatedSystem(model, dt=0.02, cost=cost, q0=[0.3, 0.5], qd0=[0.5, -1.0], segment=10)
    ro = Rollout(system, 30)
    ro.set_controls(tau=np.random.default_rng(2).normal(scale=3.0, size=(30, 1, 2)) * [1, 0])
    obj = Objective(ro, ["mass", "joint_offset", "tau", "q", "qd"])
    report = gradcheck(obj, obj.x0(), rtol=1e-6, entries=16, directions=2)
    assert report.ok, str(report)


def _all(ro):
    loss = ro.forward()
    g = ro.backward()
    return loss, g


@pytest.mark.parametrize("schedule", [Binomial(snapshots=3), Periodic(every=16)])
def test_checkpointed_schedules_equal_store_all_bitwise(schedule):
    steps = 96
    ref_loss, ref_g = _all(arm_rollout(schedule=StoreAll(), steps=steps))
    loss, g = _all(arm_rollout(schedule=schedule, steps=steps))
    assert loss == ref_loss
    for table in ("params", "controls", "state0"):
        for name, value in getattr(ref_g, table).items():
            assert np.array_equal(getattr(g, table)[name], value), (table, name)


def test_checkpointed_rollout_recomputes():
    ro = arm_rollout(schedule=Binomial(snapshots=2), steps=96)
    _all(ro)
    assert ro.stats.recomputed_steps > 0 and ro.stats.snapshots_peak <= 2


def test_batch_equals_single_runs():
    B = 3
    big = arm_rollout(batch=B, seed=5)
    loss, g = _all(big)
    system = big.system
    params = system.get_parameters()
    tau = big.controls()["tau"]
    total = 0.0
    for b in range(B):
        single = ArticulatedSystem(system.model, batch=1, dt=system.dt, cost=system.cost.__class__(
            **{**system.cost.__dict__, "ee_target": system.cost.ee_target[b]}),
            params={k: v[b:b + 1] for k, v in params.items()}, segment=system.segment,
            q0=system.q0[b], qd0=system.qd0[b])
        ro = Rollout(single, T)
        ro.set_controls(tau=tau[:, b:b + 1])
        lb, gb = _all(ro)
        total += lb
        for name, value in gb.params.items():
            assert np.array_equal(value[0], g.params[name][b]), name
        assert np.array_equal(gb.controls["tau"][:, 0], g.controls["tau"][:, b])
        assert np.array_equal(ro.final_state()["q"][0], big.final_state()["q"][b])
        for name in ("q", "qd"):
            assert np.array_equal(gb.state0[name][0], g.state0[name][b])
    assert np.isclose(total, loss, rtol=1e-13)


@pytest.mark.parametrize("small", [True, False], ids=["small_kernel", "general_kernel"])
def test_repeated_and_interrupted_sweeps_give_the_same_gradient(small):
    """The workspace adjoints are zero after a completed adjoint sweep (what lets the next sweep
    skip clearing them); a sweep that was interrupted is cleared before the next one. For the
    small robots' kernel (no workspace: the running-cost terms' adjoints) and the general one."""
    ro = arm_rollout(steps=T)
    s = ro.system
    assert s._small is not None
    if not small:
        s._small = None
    loss, g = _all(ro)
    held = [a for a in (s._data, s._cst, s._terminal_data) if a is not None]
    assert len(held) == (2 if small else 3)
    for a in held:
        assert not np.any(a.grad.to_numpy())
    loss2, g2 = _all(ro)
    held[0].grad.fill(1.0)            # as an interrupted sweep may leave them
    s._adjoint_clean = False
    loss3, g3 = _all(ro)
    for other in (g2, g3):
        for table in ("params", "controls", "state0"):
            for name, value in getattr(g, table).items():
                assert np.array_equal(getattr(other, table)[name], value), (table, name)
    assert loss == loss2 == loss3
