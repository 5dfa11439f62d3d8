"""A user's problem, public API only: a two-link arm written in MJCF (motors with ctrlrange)
swings its tip to a point and stops there, within the motors' effort limits; the tip is checked
with kinematics written here by hand. Two shoulders: a hinge (a point above the shoulder, in the
arm's plane) and a ball joint (a motor on it drives its three torque components; a point out of
the plane the arm starts in, the shoulder's quaternion turned into a rotation matrix by hand)."""

import numpy as np
import pytest

from diffsim import Objective, Parameter, Rollout
from diffsim.articulated import ArticulatedSystem, Cost, load_mjcf, point_position
from optimizers import minimize

MJCF = """<mujoco model="two_link">
  <option gravity="0 0 -9.81" timestep="0.01"/>
  <worldbody>
    <body name="upper" pos="0 0 0.5">
      {shoulder}
      <geom type="capsule" fromto="0 0 0 0.3 0 0" size="0.03" mass="1.0"/>
      <body name="fore" pos="0.3 0 0">
        <joint name="elbow" type="hinge" axis="0 1 0" damping="0.05"/>
        <geom type="capsule" fromto="0 0 0 0.25 0 0" size="0.025" mass="0.6"/>
      </body>
    </body>
  </worldbody>
  <actuator>
    <motor joint="shoulder" gear="1" ctrlrange="-8 8"/>
    <motor joint="elbow" gear="1" ctrlrange="-4 4"/>
  </actuator>
</mujoco>"""


def tip_of_hinges(q):
    """Hinges about +y: a link along x at angle a points to (cos a, -sin a) in the x-z plane."""
    a1, a12 = q[0], q[0] + q[1]
    return np.array([0.3 * np.cos(a1) + 0.25 * np.cos(a12), 0.0, 0.5 - 0.3 * np.sin(a1) - 0.25 * np.sin(a12)])


def tip_of_ball(q):
    """Shoulder at (0, 0, 0.5) turned by the unit quaternion q[0:4]; the elbow (about the upper
    arm's y) turns the forearm's (0.25, 0, 0) to (0.25 cos a, 0, -0.25 sin a)."""
    w, x, y, z = q[:4]
    R = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                  [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                  [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])
    a = q[4]
    return np.array([0.0, 0.0, 0.5]) + R @ (np.array([0.3, 0.0, 0.0]) + 0.25 * np.array([np.cos(a), 0.0, -np.sin(a)]))


HINGE = dict(shoulder='<joint name="shoulder" type="hinge" axis="0 1 0" damping="0.05"/>', dofs=(2, 2),
             target=(0.2, 0.0, 0.85), iters=200, tip=tip_of_hinges, qd_tol=1e-2, shoulder_dofs=1)
BALL = dict(shoulder='<joint name="shoulder" type="ball" damping="0.05"/>', dofs=(5, 4),
            target=(0.1, 0.3, 0.75), iters=300, tip=tip_of_ball, qd_tol=2e-2, shoulder_dofs=3)


@pytest.mark.parametrize("arm", [HINGE, BALL], ids=["hinge_shoulder", "ball_shoulder"])
def test_an_mjcf_arm_reaches_a_point_and_stops_within_its_effort_limits(arm):
    model, options = load_mjcf(MJCF.format(shoulder=arm["shoulder"]))
    assert (model.nq, model.nv) == arm["dofs"]
    target = np.array(arm["target"])
    cost = Cost(effort=1e-4, ee_link="fore", ee_point=(0.25, 0.0, 0.0), ee_target=target,
                ee_weight_final=100.0, qd_weight_final=1.0)
    rollout = Rollout(ArticulatedSystem(model, dt=options["timestep"], cost=cost), 150)
    objective = Objective(rollout, [Parameter("tau", bounds="effort")])
    result = minimize(objective, objective.x0(), method="lbfgs", iters=arm["iters"], bounds=objective.bounds,
                      gtol=1e-7)
    assert result.success, result

    rollout.forward()
    q, qd = rollout.trajectory("q")[-1, 0], rollout.trajectory("qd")[-1, 0]
    tip = arm["tip"](q)
    np.testing.assert_allclose(point_position(model, q, "fore", (0.25, 0.0, 0.0)), tip, atol=1e-12)
    assert np.linalg.norm(tip - target) < 5e-3, tip
    assert np.abs(qd).max() < arm["qd_tol"], qd
    tau = objective.unpack(result.x)["tau"]
    n = arm["shoulder_dofs"]
    assert np.all(np.abs(tau[..., :n]) <= 8.0 + 1e-12) and np.all(np.abs(tau[..., n]) <= 4.0 + 1e-12)
    # it starts at rest, stretched out along x in the x-z plane, more than 0.4 m from the target
    start = arm["tip"](rollout.trajectory("q")[0, 0])
    np.testing.assert_allclose(start, [0.55, 0.0, 0.5], atol=1e-12)
    assert np.linalg.norm(start - target) > 0.4
