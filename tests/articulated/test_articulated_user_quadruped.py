"""A user's problem, public API only: a small quadruped written in MJCF (a free torso box, four
legs of hinge hips and knees, sphere feet; MuJoCo's sizes: one radius for a sphere or a fromto
capsule), loaded with its geoms as ground contact. Dropped from where the file puts it, it lands
and rests on its four straight legs at the height the contact law gives: the feet sink by
M g / (4 k) + delta / 2, the linear part of the law shifted by half its onset depth. Started at
the origin instead (its feet 0.3 m underground), the user is warned before the spring throws it.
Then a fit through the feet's contact and the free joint: the torques (within the motors'
ctrlrange) that make it crouch and hold its torso at 0.26 m."""
import warnings

import numpy as np
import pytest

from diffsim import Objective, Parameter, Rollout
from diffsim.articulated import ArticulatedSystem, DeepStartWarning, GroundContact, load_mjcf
from diffsim.costs import NumpyCost
from optimizers import minimize

LEG = """
      <body name="{n}_thigh" pos="{x} {y} 0">
        <joint name="{n}_hip" type="hinge" axis="0 1 0" range="-60 60" damping="0.5"/>
        <geom type="capsule" fromto="0 0 0 0 0 -0.15" size="0.02" mass="0.3"/>
        <body name="{n}_shin" pos="0 0 -0.15">
          <joint name="{n}_knee" type="hinge" axis="0 1 0" range="-120 0" damping="0.5"/>
          <geom type="capsule" fromto="0 0 0 0 0 -0.15" size="0.02" mass="0.2"/>
          <geom type="sphere" pos="0 0 -0.15" size="0.025" mass="0.05"/>
        </body>
      </body>"""
CORNERS = [("fl", 0.15, 0.1), ("fr", 0.15, -0.1), ("hl", -0.15, 0.1), ("hr", -0.15, -0.1)]
MJCF = f"""<mujoco model="quad"><option timestep="0.001" gravity="0 0 -9.81"/>
<worldbody><geom type="plane" size="5 5 0.1"/>
  <body name="torso" pos="0 0 0.40"><freejoint/>
    <geom type="box" size="0.2 0.12 0.04" mass="3.0"/>{"".join(LEG.format(n=n, x=x, y=y) for n, x, y in CORNERS)}
  </body></worldbody>
<actuator>{"".join(f'<motor joint="{n}_{j}" ctrlrange="-8 8"/>' for n, _, _ in CORNERS for j in ("hip", "knee"))}
</actuator></mujoco>"""


def test_a_dropped_quadruped_rests_on_its_feet_at_the_contact_laws_depth():
    model, options = load_mjcf(MJCF, collisions=True)
    assert model.floating and (model.nq, model.nv) == (15, 14) and options["timestep"] == 1e-3
    mass = 3.0 + 4 * (0.3 + 0.2 + 0.05)
    assert np.sum(model.mass) == pytest.approx(mass, rel=1e-12)
    ground = GroundContact()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeepStartWarning)   # it starts 7.5 cm above the floor
        system = ArticulatedSystem(model, dt=options["timestep"], contact=ground)
    q = system.simulate(1500)["q"][:, 0]
    np.testing.assert_allclose(q[0, :7], [0, 0, 0.4, 1, 0, 0, 0])   # where the file puts the torso
    assert q[:100, 2].min() > 0.35   # falling, not thrown
    sink = mass * 9.81 / (4 * ground.stiffness) + ground.onset_depth / 2
    rest = 0.15 + 0.15 + 0.025 - sink   # hip at the torso's centre, two straight links and the foot
    np.testing.assert_allclose(q[-300:, 2], rest, atol=2e-7)
    np.testing.assert_allclose(q[-1, 3:7], [1, 0, 0, 0], atol=1e-9)   # level
    assert np.abs(q[-1, 7:]).max() < 1e-9   # legs straight, as they fell


def test_a_quadruped_started_underground_is_warned_about():
    model, _ = load_mjcf(MJCF, collisions=True)
    q0 = model.neutral_configuration()   # the torso at the origin: feet 0.325 m below the floor
    with pytest.warns(DeepStartWarning, match=r"robot 0: a contact point of body '\w+_shin' starts 0.325 m below "
                      r"the ground \(z = 0 m\), where the contact spring \(10000 N/m\) pushes with 3.25e\+03 N "
                      r"against the robot's weight of 51 N and will throw it off") as caught:
        ArticulatedSystem(model, dt=1e-3, q0=q0)
    assert len([w for w in caught if w.category is DeepStartWarning]) == 1   # once, for robot 0


def test_a_quadruped_learns_to_crouch_and_hold_its_torso_at_a_height():
    """L-BFGS over all 600 x 8 motor torques (the free joint's six are bounded to 0): the torso's
    height over the last 0.15 s of 0.6 s must hold 0.26 m (from 0.323 standing), with a small
    weight on speed. From zero torques the gradient is exactly 0 (straight legs: height is
    stationary in every joint), which the optimizer reports; a slight knee bend starts it."""
    model, options = load_mjcf(MJCF, collisions=True)
    target, weight_speed = 0.26, 0.01

    def loss(states, steps):
        q, qd = states["q"][:, 0], states["qd"][:, 0]
        return float(100.0 * np.mean((q[:, 2] - target) ** 2) + weight_speed * np.mean(qd ** 2))

    def grad(states, steps):
        q, qd = states["q"][:, 0], states["qd"][:, 0]
        gq, gqd = np.zeros_like(states["q"]), np.zeros_like(states["qd"])
        gq[:, 0, 2] = 200.0 * (q[:, 2] - target) / len(q)
        gqd[:, 0] = 2.0 * weight_speed * qd / qd.size
        return {"q": gq, "qd": gqd}

    system = ArticulatedSystem(model, dt=options["timestep"], costs=[NumpyCost(loss, grad, fields=("q", "qd"),
                                                                               window=(0.45, 0.6))])
    rollout = Rollout(system, 600)
    objective = Objective(rollout, [Parameter("tau", bounds="effort")])
    stuck = minimize(objective, objective.x0(), method="lbfgs", iters=10, bounds=objective.bounds)
    assert not stuck.success and stuck.reason == "zero_gradient"

    tau = objective.unpack(objective.x0())["tau"]
    knees = [model.v_index[model.joint_names.index(f"{n}_knee")] for n, _, _ in CORNERS]
    tau[..., knees] = -1.0
    x0 = tau.ravel()
    value, g = objective(x0)
    rng = np.random.default_rng(0)
    for i in rng.choice(np.flatnonzero(g), 3, replace=False):   # through the feet's contact and the free joint
        h = 1e-4
        up, down = x0.copy(), x0.copy()
        up[i] += h
        down[i] -= h
        fd = (objective.forward_loss(up) - objective.forward_loss(down)) / (2 * h)
        assert fd == pytest.approx(g[i], rel=1e-5, abs=1e-9 * np.abs(g).max()), (i, fd, g[i])

    result = minimize(objective, x0, method="lbfgs", iters=300, bounds=objective.bounds)
    assert result.success, result.message
    objective(result.x)
    q = rollout.trajectory("q")[:, 0]
    held = q[450:, 2]
    assert np.abs(held - target).max() < 2e-3, (held.min(), held.max())
    assert np.all(np.abs(objective.unpack(result.x)["tau"][..., 6:]) <= 8.0 + 1e-12)
