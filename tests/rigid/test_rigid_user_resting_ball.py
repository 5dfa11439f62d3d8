"""A game developer's balls in the impulse model, public API only: a ball resting on the floor, a
ball rolling down a ramp, and a stop shot (backspin that leaves the ball rolling at a chosen
speed) fitted by L-BFGS. Checked against the textbook. And a capsule placed on a ramp with an
end deep in it, which is warned of.

Regression: a sphere resting on a plane sank at a constant g dt / 2 (4.9 mm/s at dt = 1 ms, 1.6
mm/s with restitution 0.5): the impulse, taken at the impact's place in the step for accurate
bounces, removed only half of each step's gravity kick when the ball was already in contact, so
a ball on a table fell through it in tens of seconds, silently."""

import re
import warnings

import numpy as np
import pytest

from diffsim import Objective, Parameter, Rollout
from diffsim.costs import FinalDistance
from diffsim.errors import DeepStartWarning
from diffsim.rigid import Box, Capsule, ModelBuilder, RigidSystem, Sphere
from optimizers import minimize

G, R = 9.81, 0.1


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("restitution", [0.0, 0.5])
def test_a_ball_resting_on_the_floor_stays_on_it(dim, restitution):
    b = ModelBuilder(dim)
    up = [0.0] * (dim - 1) + [1.0]
    b.add_body(Sphere(R), mass=0.17, position=[0.0] * (dim - 1) + [R], restitution=restitution)
    b.add_plane(up, 0.0, restitution=restitution)
    height = RigidSystem(b.finalize(), dt=1e-3, contact="impulse").simulate(3000)["x"][:, 0, -1]
    assert np.abs(height - R).max() < 1e-12  # it sank 15 mm in these 3 s


@pytest.mark.parametrize("dim, factor", [(3, 5 / 7), (2, 2 / 3)])
def test_a_ball_rolls_down_a_ramp_at_the_rolling_acceleration(dim, factor):
    """A solid sphere (a disc in 2D) released on a 20 degree ramp with friction 0.5 (enough: rolling
    needs (2/7) tan 20 = 0.10) rolls without slipping: a = (5/7) g sin 20 (2D: 2/3). Semi-implicit
    Euler covers a (N + 1) / N times the distance of the exact motion after N steps."""
    th = np.deg2rad(20.0)
    down = np.array([np.cos(th), -np.sin(th)])  # along the ramp, downhill, in the x-z plane
    normal = np.array([np.sin(th), np.cos(th)])
    lift = lambda v: [v[0], 0.0, v[1]] if dim == 3 else list(v)  # noqa: E731
    b = ModelBuilder(dim)
    b.add_body(Sphere(R), mass=1.0, position=lift(R * normal), friction=0.5, restitution=0.0)
    b.add_plane(lift(normal), 0.0, friction=0.5, restitution=0.0)
    steps, dt = 1000, 1e-3
    out = RigidSystem(b.finalize(), dt=dt, contact="impulse").simulate(steps)
    x = out["x"][:, 0]
    along = (x[-1] - x[0]) @ np.array(lift(down))
    expected = 0.5 * factor * G * np.sin(th) * (steps * dt) ** 2 * (steps + 1) / steps
    assert along == pytest.approx(expected, rel=1e-6)
    assert np.abs((x - x[0]) @ np.array(lift(normal))).max() < 1e-12  # on the ramp's surface throughout
    spin = np.ravel(out["omega"][-1, 0])[1 if dim == 3 else 0]  # about y in 3D, about z in 2D
    assert np.linalg.norm(out["v"][-1, 0]) == pytest.approx(abs(spin) * R, rel=1e-9)  # rolling: v = omega R


def test_a_stop_shot_fit_finds_the_textbook_backspin():
    """A ball struck at 2 m/s with backspin omega slides (friction 0.2) until it rolls, at
    v_f = (5/7)(v0 + (2/5) R omega_y) (omega_y < 0 backspin: angular momentum about the contact
    point is kept). The fit asks for the spot where a ball rolling on at 0.5 m/s ends after 2 s:
    omega_y = -(v0 - 7/5 v_f) / (2/5 R) = -32.5 rad/s. The gradient agrees with central differences."""
    v0, vf, mu, T, dt = 2.0, 0.5, 0.2, 2.0, 1e-3
    slide = (v0 - vf) / (mu * G)
    spot = v0 * slide - 0.5 * mu * G * slide**2 + vf * (T - slide)
    b = ModelBuilder(3)
    b.add_body(Sphere(R), mass=0.17, position=[0, 0, R], velocity=[v0, 0, 0], angular_velocity=[0, -10.0, 0],
               friction=mu, restitution=0.0)
    b.add_plane([0, 0, 1], 0.0, friction=mu, restitution=0.0)
    system = RigidSystem(b.finalize(), dt=dt, contact="impulse", costs=[FinalDistance(0, [spot, 0.0, R])])
    rollout = Rollout(system, int(round(T / dt)))
    objective = Objective(rollout, [Parameter("omega", kind="state0", index=(0, 1))])
    x0 = objective.x0()
    _, grad = objective(x0)
    h = 1e-4
    central = (objective(x0 + h)[0] - objective(x0 - h)[0]) / (2 * h)
    assert grad[0] == pytest.approx(central, rel=1e-6)
    result = minimize(objective, x0, method="lbfgs", iters=40)
    assert result.success, result.message
    assert result.x[0] == pytest.approx(-(v0 - 1.4 * vf) / (0.4 * R), rel=1e-3)
    objective(result.x)
    final = rollout.final_state()["x"][0]
    assert final[0] == pytest.approx(spot, abs=1e-3) and final[2] == pytest.approx(R, abs=1e-12)


def test_a_body_placed_with_its_end_deep_in_a_ramp_is_warned_of():
    """A capsule laid level on a 15 degree ramp, its centre at one radius from the ramp, has one
    end 5.2 cm deep in it (its centre is outside, which the builder checked): the contact threw
    it about by a centimetre and it crept 16 mm down a ramp it should grip. Now a
    DeepStartWarning names the body, the plane and the depth; laid along the ramp, none."""
    th = np.deg2rad(15.0)
    normal = [np.sin(th), 0.0, np.cos(th)]
    level, along = [1.0, 0.0, 0.0, 0.0], [np.cos(th / 2), 0.0, np.sin(th / 2), 0.0]  # along: turned by 15 deg about y
    for orientation, deep in ((level, True), (along, False)):
        b = ModelBuilder(3)
        b.add_body(Capsule(0.05, 0.2), density=500.0, position=(0.05 * np.array(normal)).tolist(),
                   orientation=orientation)
        b.add_plane(normal, 0.0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            b.finalize()
        found = [w for w in caught if w.category is DeepStartWarning]
        if deep:
            assert len(found) == 1 and re.search(r"body 0 \(capsule0\) starts 0.0518 m deep in plane 0", str(found[0].message))
        else:
            assert not found
    b = ModelBuilder(2)
    b.add_body(Box([0.1, 0.1]), mass=1.0, position=[0.0, 0.1], angle=np.pi / 4)  # a corner 4.1 cm into the floor
    b.add_plane([0.0, 1.0], 0.0)
    with pytest.warns(DeepStartWarning, match=r"body 0 \(box0\) starts 0.0414 m deep"):
        b.finalize()
