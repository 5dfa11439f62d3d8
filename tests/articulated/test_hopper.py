"""The hopper scene's physics at small size: the ground carries the standing robot through its
foot, and the gradient through the foot's touchdown matches central differences."""

import json

import numpy as np
import pytest

from diffsim import Objective, gradcheck
from diffsim.articulated import aba, point_position, rnea


def test_the_foot_carries_the_standing_hopper():
    """In the standing pose the contact force on the foot is the robot's weight, under its
    centre of mass: the passive rows (x, z, pitch) of RNEA at rest vanish with the ground, while
    without it the z row is the whole weight; held by the standing torques the robot stays put."""
    from scenes import hopper

    problem = hopper.build(steps=100)
    model, contact, q0 = problem.model, problem.system.contact, problem.q0
    weight = model.mass[1:].sum() * 9.81          # what the z slider carries
    zero = np.zeros(model.nv)
    lifted = q0.copy()
    lifted[1] += 0.5
    assert rnea(model, lifted, zero, zero, contact=contact)[1] == pytest.approx(weight, rel=1e-12)
    tau = hopper.standing_torques(model, q0, contact)
    assert abs(tau[0]) < 1e-9 and abs(tau[1]) < 1e-6 * weight and abs(tau[2]) < 1e-2
    assert abs(tau[4]) > 1.0                                    # the knee holds the weight
    assert point_position(model, q0, "foot")[2] < model.contact_radius[0]   # pressed in
    qdd = aba(model, q0, zero, tau * model.actuated, contact=contact)
    assert np.abs(qdd).max() < 0.2
    traj = problem.trajectory(problem.x0())
    q = traj["q"]
    assert np.abs(q[:, 1] - q0[1]).max() < 1e-4                 # 0.2 s standing: the hip stays
    assert np.abs(q[:, 2:] - q0[2:]).max() < 5e-3
    assert np.all(traj["foot_clearance"] < 0)                   # the foot stays on the ground


def test_gradient_through_the_foot_touchdown():
    """Dropped from 1 cm with torques near the standing ones: the foot lands within the 40
    steps, and the loss's gradient w.r.t. torques and the initial velocity matches FD."""
    from scenes import hopper

    problem = hopper.build(steps=40, window_start=0.02)
    q0 = problem.q0.copy()
    q0[1] += 0.01
    problem.rollout.set_state0(q=q0[None], qd=np.array([[0.1, -0.2, 0.3, 0.0, 0.5]]))
    rng = np.random.default_rng(0)
    x = problem.x0() + rng.normal(scale=2.0, size=problem.objective.size) * np.tile(problem.model.actuated, 40)
    traj = problem.trajectory(x)
    clearance = traj["foot_clearance"]
    assert clearance[0] > 0.005 and clearance.min() < -0.002     # it touched down
    for names, entries in ((["qd"], 5), (["tau", "qd"], 12)):   # the initial velocity (all of it), then both
        objective = Objective(problem.rollout, names)
        x = objective.x0()
        report = gradcheck(objective, x, rtol=1e-5, entries=entries, directions=2, seed=1)
        assert report.ok, str(report)
        _, g = objective(x)
        assert np.abs(g).max() > 1e-4   # not vacuous

def test_hopper_demo_jumps(tmp_path):
    from scenes import hopper

    out = hopper.demo(tmp_path)
    json.dumps(out)
    assert out["success"], out["message"]
    assert out["figure"] >= 0.70 and out["foot_clearance_at_apex_m"] > 0.0
    assert out["max_torque_Nm"] <= 30.0 + 1e-9
    for name in ("hopper.gif", "hopper.png"):
        assert (tmp_path / name).stat().st_size > 5000, name
