"""A user's problem, public API only: a two-link arm written in MJCF (motors with ctrlrange)
swings its tip to a point above the shoulder and stops there, within the motors' effort limits.
The tip is checked with planar kinematics written here by hand."""

import numpy as np

from diffsim import Objective, Parameter, Rollout
from diffsim.articulated import ArticulatedSystem, Cost, load_mjcf, point_position
from optimizers import minimize

MJCF = """<mujoco model="two_link">
  <option gravity="0 0 -9.81" timestep="0.01"/>
  <worldbody>
    <body name="upper" pos="0 0 0.5">
      <joint name="shoulder" type="hinge" axis="0 1 0" damping="0.05"/>
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


def tip_by_hand(q):
    """Hinges about +y: a link along x at angle a points to (cos a, -sin a) in the x-z plane."""
    a1, a12 = q[0], q[0] + q[1]
    return np.array([0.3 * np.cos(a1) + 0.25 * np.cos(a12), 0.0, 0.5 - 0.3 * np.sin(a1) - 0.25 * np.sin(a12)])


def test_an_mjcf_arm_reaches_a_point_and_stops_within_its_effort_limits():
    model, options = load_mjcf(MJCF)
    target = np.array([0.2, 0.0, 0.85])
    cost = Cost(effort=1e-4, ee_link="fore", ee_point=(0.25, 0.0, 0.0), ee_target=target,
                ee_weight_final=100.0, qd_weight_final=1.0)
    rollout = Rollout(ArticulatedSystem(model, dt=options["timestep"], cost=cost), 150)
    objective = Objective(rollout, [Parameter("tau", bounds="effort")])
    result = minimize(objective, objective.x0(), method="lbfgs", iters=200, bounds=objective.bounds, gtol=1e-7)
    assert result.success, result

    rollout.forward()
    q, qd = rollout.trajectory("q")[-1, 0], rollout.trajectory("qd")[-1, 0]
    tip = tip_by_hand(q)
    np.testing.assert_allclose(point_position(model, q, "fore", (0.25, 0.0, 0.0)), tip, atol=1e-12)
    assert np.linalg.norm(tip - target) < 5e-3, tip
    assert np.abs(qd).max() < 1e-2, qd
    tau = objective.unpack(result.x)["tau"]
    assert np.all(np.abs(tau[..., 0]) <= 8.0 + 1e-12) and np.all(np.abs(tau[..., 1]) <= 4.0 + 1e-12)
    # it starts at rest, stretched out horizontally, 0.49 m from the target
    assert np.linalg.norm(tip_by_hand(rollout.trajectory("q")[0, 0]) - target) > 0.45
