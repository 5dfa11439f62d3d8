"""Rigid contact that used to be silently wrong (issue 14, item 7): coincident bodies, a body
fast enough to tunnel, and physical parameters an optimizer pushed out of range."""

import numpy as np
import pytest

from diffsim import Objective, Parameter, Rollout, StoreAll
from diffsim.errors import ConfigError
from diffsim.rigid import BodyTarget, ModelBuilder, RigidSystem, Sphere


def two_balls(gap_x=1.0, speed=0.0, dim=3, restitution=1.0):
    b = ModelBuilder(dim)
    pad = [0.0] * (dim - 1)
    b.add_body(Sphere(0.1), mass=1.0, position=[-gap_x] + pad, velocity=[speed] + pad, restitution=restitution,
               name="cue")
    b.add_body(Sphere(0.1), mass=1.0, position=[0.0] + pad, restitution=restitution, name="target")
    return b.finalize()


def test_coincident_centres_are_refused_at_build_and_at_forward():
    b = ModelBuilder(3)
    b.add_body(Sphere(0.1), mass=1.0, position=[0, 0, 0.5], name="a")
    b.add_body(Sphere(0.2), mass=1.0, position=[1, 0, 0.5], name="b")
    b.add_body(Sphere(0.1), mass=2.0, position=[0, 0, 0.5], name="c")
    with pytest.raises(ConfigError, match=r"bodies 0 \(a\) and 2 \(c\).*same centre"):
        RigidSystem(b.finalize(), gravity=[0, 0, 0])
    for contact, fused in (("penalty", True), ("impulse", False)):
        system = RigidSystem(two_balls(), contact=contact, fused=fused, gravity=[0, 0, 0], segment=10)
        ro = Rollout(system, 20, StoreAll())
        ro.forward()
        ro.set_state0(x=np.zeros((2, 3)))
        with pytest.raises(ConfigError, match=r"bodies 0 \(cue\) and 1 \(target\).*same centre"):
            ro.forward()


@pytest.mark.parametrize("fused", [True, False])
def test_a_2000_m_per_s_ball_does_not_tunnel_in_the_impulse_model(fused):
    """The cue moves 2 m per step; its end-of-step position never overlaps the target (1 m
    away), yet the swept test finds the impact: equal masses, e = 1, so the cue stops where it
    touches and the target leaves at 2000 m/s (momentum and energy conserved)."""
    system = RigidSystem(two_balls(speed=2000.0), dt=1e-3, contact="impulse", gravity=[0, 0, 0], fused=fused,
                         segment=5)
    out = system.simulate(5)
    v = out["v"][-1]
    np.testing.assert_allclose(v[:, 0], [0.0, 2000.0], atol=1e-9)
    np.testing.assert_allclose(v[:, 1:], 0.0, atol=1e-12)
    assert out["x"][-1, 0, 0] == pytest.approx(-0.2, abs=1e-9)  # stopped at contact: centres 2 r apart
    assert out["x"][-1, 1, 0] == pytest.approx(2000.0 * (5e-3 - 0.8 / 2000.0), abs=1e-9)


def test_a_2000_m_per_s_ball_is_refused_by_the_penalty_model():
    with pytest.raises(ConfigError, match=r"body 0 \(cue\) moves at 2000 m/s.*contact='impulse'.*stiffness >="):
        RigidSystem(two_balls(speed=2000.0), dt=1e-3, gravity=[0, 0, 0])
    system = RigidSystem(two_balls(), dt=1e-3, gravity=[0, 0, 0], segment=5)
    ro = Rollout(system, 5, StoreAll())
    ro.set_state0(v=np.array([[500.0, 0, 0], [0, 0, 0]]))  # within the plausible speeds
    with pytest.raises(ConfigError, match=r"body 0 \(cue\) moves at 500 m/s.*dt <="):
        ro.forward()


def test_an_optimizer_step_to_negative_mass_is_a_clear_error():
    system = RigidSystem(two_balls(speed=1.0), dt=1e-3, gravity=[0, 0, 0], segment=10,
                         costs=[BodyTarget(1, [0.5, 0, 0])])
    obj = Objective(Rollout(system, 20, StoreAll()), ["mass"])
    with pytest.raises(ConfigError, match=r"mass of body 1 \(target\) is -1.0.*transform='log'"):
        obj(np.array([1.0, -1.0]))
    logged = Objective(Rollout(system, 20, StoreAll()), [Parameter("mass", transform="log")])
    loss, grad = logged(np.log([1.0, 1e-3]))  # any real vector is a positive mass
    assert np.isfinite(loss) and np.all(np.isfinite(grad))


def test_a_body_inside_a_wall_and_an_impossible_inertia_are_refused_at_build():
    """A ball placed 0.5 m under the floor used to be thrown out by its contact to 3.6 m in 0.1 s
    (penalty); principal moments (1, 0.1, 0.1) kg m^2 belong to no body (I1 <= I2 + I3)."""
    b = ModelBuilder(3)
    b.add_body(Sphere(0.1), mass=1.0, position=[0, 0, 1.0], name="above")
    b.add_body(Sphere(0.1), mass=1.0, position=[0, 0, -0.5], name="buried")
    b.add_plane([0, 0, 2.0], 0.0)
    with pytest.raises(ConfigError, match=r"body 1 \(buried\).*0.5 m behind plane 0 \(normal \[0.0, 0.0, 1.0\]"):
        b.finalize()
    b = ModelBuilder(3)
    with pytest.raises(ConfigError, match=r"principal inertia \[1.  0.1 0.1\].*I1 <= I2 \+ I3"):
        b.add_body(Sphere(0.1), mass=1.0, inertia=[1.0, 0.1, 0.1])
    b.add_body(Sphere(0.1), mass=1.0, inertia=[0.2, 0.1, 0.1])  # a flat disc's moments: allowed
    b.add_body(Sphere(0.1), mass=1.0, position=[1, 0, 0.1], inertia=[0.004, 0.004, 0.004])
    b.add_plane([0, 0, 1.0], -0.1)  # a centre on the plane is in front of it
    assert b.finalize().n == 2
