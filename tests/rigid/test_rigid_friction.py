"""Coulomb friction in the impulse model, material combine rules, fittable plane materials and
explicit contact laws (K, C), against analytic solutions and central differences."""

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from diffsim import Objective, Parameter, Rollout, StoreAll, gradcheck
from diffsim.errors import ConfigError
from diffsim.rigid import BodyTarget, Box, ModelBuilder, RigidSystem, Sphere

G = 9.81


def sliding_ball(dim, mu_body, mu_plane, v0=2.0, r=0.1, inertia=None, restitution=0.0):
    """A ball resting on the floor and launched sliding at v0 along x."""
    b = ModelBuilder(dim)
    pad = [0.0] * (dim - 2)
    b.add_body(Sphere(r), mass=1.0, inertia=inertia, position=[0.0, *pad, r], velocity=[v0, *pad, 0.0],
               restitution=restitution, friction=mu_body)
    b.add_plane([0.0, *pad, 1.0], 0.0, restitution=restitution, friction=mu_plane)
    return b.finalize()


@pytest.mark.parametrize("dim", [3, 2])
def test_impulse_friction_turns_sliding_into_rolling_at_the_analytic_point(dim):
    """A solid ball (disc in 2D) launched without spin slides under friction mu g until it rolls:
    at t = v0 / (mu g (1 + r^2/k^2)) (k^2 = I/m), having covered v0 t - mu g t^2 / 2, and then
    rolls on at v0 / (1 + k^2 / r^2) (5/7 v0 for a sphere, 2/3 for a disc) with v = w r."""
    mu, v0, r = 0.3, 2.0, 0.1
    out = RigidSystem(sliding_ball(dim, mu, mu, v0, r), dt=1e-3, contact="impulse", segment=100).simulate(400)
    k2 = (0.4 if dim == 3 else 0.5) * r * r
    t_roll = v0 / (mu * G * (1 + r * r / k2))
    x_roll = v0 * t_roll - 0.5 * mu * G * t_roll ** 2
    v_roll = v0 / (1 + k2 / (r * r))
    t = np.arange(401) * 1e-3
    assert np.interp(t_roll, t, out["x"][:, 0, 0]) == pytest.approx(x_roll, rel=1e-3)
    assert out["v"][-1, 0, 0] == pytest.approx(v_roll, rel=1e-6)
    spin = out["omega"][-1, 0, 1] if dim == 3 else -out["omega"][-1, 0]
    assert spin * r == pytest.approx(v_roll, rel=1e-6)  # rolling without slip: sticking friction holds it


@pytest.mark.parametrize("contact", ["impulse", "penalty"])
def test_a_sliding_puck_stops_at_v2_over_2_mu_g_with_the_mean_friction(contact):
    """A ball that cannot spin (huge inertia) slides to rest after v0^2 / (2 mu g), mu the mean
    of the body's (0.1) and the floor's (0.5) coefficients."""
    v0, mu = 2.0, 0.5 * (0.1 + 0.5)
    # penalty: restitution 0.2, as at e = 0 the contact's damping is too stiff for the step and the ball hops
    model = sliding_ball(3, 0.1, 0.5, v0, inertia=[1e6] * 3, restitution=0.2 if contact == "penalty" else 0.0)
    kw = {"stiffness": 2e4, "friction_smoothing": 0.005} if contact == "penalty" else {}
    if contact == "penalty":  # start at the static penetration
        model.x0[0, 2] -= G / 2e4
    out = RigidSystem(model, dt=1e-3, contact=contact, segment=100, **kw).simulate(800)
    assert abs(out["v"][-1, 0, 0]) < 1e-3
    assert out["x"][-1, 0, 0] == pytest.approx(v0 ** 2 / (2 * mu * G), rel=0.02)


def test_restitution_combines_by_the_mean_in_the_impulse_model():
    """Ball e = 0.2 against a wall e = 0.8 leaves at 0.5 of its speed; against a ball of e = 0.6
    (equal masses, head on) the relative speed reverses at 0.4."""
    b = ModelBuilder(2)
    b.add_body(Sphere(0.1), mass=1.0, position=[0.0, 0.0], velocity=[1.0, 0.0], restitution=0.2, friction=0.0)
    b.add_body(Sphere(0.1), mass=1.0, position=[-1.0, 0.0], velocity=[-1.0, 0.0], restitution=0.6, friction=0.0)
    b.add_plane([-1.0, 0.0], -0.5, restitution=0.8, friction=0.0)
    out = RigidSystem(b.finalize(), dt=1e-3, contact="impulse", gravity=[0, 0], segment=100).simulate(450)
    assert out["v"][-1, 0, 0] == pytest.approx(-0.5, abs=1e-9)
    b2 = ModelBuilder(2)
    b2.add_body(Sphere(0.1), mass=1.0, position=[0.0, 0.0], velocity=[1.0, 0.0], restitution=0.2, friction=0.0)
    b2.add_body(Sphere(0.1), mass=1.0, position=[0.5, 0.0], velocity=[-1.0, 0.0], restitution=0.6, friction=0.0)
    out = RigidSystem(b2.finalize(), dt=1e-3, contact="impulse", gravity=[0, 0], segment=100).simulate(300)
    v = out["v"][-1, :, 0]
    assert v[1] - v[0] == pytest.approx(0.4 * 2.0, abs=1e-9)


def test_plane_materials_are_fittable_and_checked():
    system = RigidSystem(sliding_ball(3, 0.2, 0.4), dt=1e-3, contact="impulse", segment=50)
    assert set(system.parameters()) >= {"plane_restitution", "plane_friction"}
    system.set_parameters(plane_friction=0.6)
    assert system.get_parameters()["plane_friction"] == pytest.approx([0.6])
    with pytest.raises(ConfigError, match="plane_restitution of plane 0 is 2.0"):
        system.set_parameters(plane_restitution=2.0)
    b = ModelBuilder(3)
    b.add_body(Sphere(0.1), mass=1.0)
    assert "plane_friction" not in RigidSystem(b.finalize()).parameters()


def frictional_scene():
    """A ball sliding and spinning on the floor hits a resting ball off-centre (3D): sphere-plane
    and sphere-sphere friction, sticking and sliding, within 150 steps."""
    b = ModelBuilder(3)
    b.add_body(Sphere(0.1), mass=1.0, position=[0.0, 0.0, 0.1], velocity=[2.0, 0.0, 0.0],
               angular_velocity=[0.0, -5.0, 3.0], restitution=0.5, friction=0.3)
    b.add_body(Sphere(0.1), mass=0.7, position=[0.35, 0.06, 0.1], restitution=0.7, friction=0.5)
    b.add_plane([0.0, 0.0, 1.0], 0.0, restitution=0.0, friction=0.4)
    return b.finalize()


def test_gradients_through_frictional_impulse_contacts_match_central_differences():
    system = RigidSystem(frictional_scene(), dt=2e-3, contact="impulse", segment=25,
                         costs=[BodyTarget(0, [0.5, -0.2, 0.1]), BodyTarget(1, [0.9, 0.3, 0.1])])
    out = system.simulate(150)
    assert np.linalg.norm(out["v"][-1, 1]) > 0.3  # the target was hit
    assert abs(out["omega"][-1, 1, 2]) > 0.1  # and set spinning by the sphere-sphere friction
    obj = Objective(Rollout(system, 150, StoreAll()),
                    ["friction", "plane_friction", "restitution", Parameter("v", kind="state0"),
                     Parameter("omega", kind="state0", index=0)])
    _, g = obj(obj.x0())
    # floor at 1e-3 of the largest entry: the resting ball's vertical speed moves the loss by 1e-4 of
    # that, where its resting-contact impulses leave FD noise of ~1e-9
    report = gradcheck(obj, obj.x0(), rtol=1e-5, step=1e-6, entries=14, directions=2, seed=1,
                       floor=1e-3 * np.abs(g).max())
    assert report.ok, str(report)


def test_an_explicit_contact_law_reproduces_the_linear_spring_damper_bounce():
    """A ball with contact_stiffness K and contact_damping C dropped at v0 onto a floor (no
    gravity): its exit speed is that of m x'' = -K x - C x' (solved here by scipy) leaving at the
    moment the force K x + C x' falls to zero."""
    m, K, C, v0 = 0.5, 2e4, 20.0, 1.5
    b = ModelBuilder(3)
    b.add_body(Sphere(0.1), mass=m, position=[0, 0, 0.1 + 1e-3], velocity=[0, 0, -v0], friction=0.0,
               contact_stiffness=K, contact_damping=C)
    b.add_plane([0, 0, 1], 0.0, friction=0.0, restitution=1.0)  # the plane's restitution plays no part
    out = RigidSystem(b.finalize(), dt=2e-5, stiffness=1e3, onset_depth=1e-7, gravity=[0, 0, 0],
                      segment=500).simulate(2000)

    def rhs(_t, y):
        return [y[1], (-K * y[0] - C * y[1]) / m]

    def leaves(_t, y):
        return K * y[0] + C * y[1]
    leaves.terminal, leaves.direction = True, -1
    sol = solve_ivp(rhs, (0, 1), [0.0, v0], events=leaves, rtol=1e-12, atol=1e-14)
    v_exit = -sol.y_events[0][0][1]
    e = out["v"][-1, 0, 2] / v0
    assert e == pytest.approx(v_exit / v0, rel=2e-3)
    assert e < 0.9  # the damping did act (undamped would be 1)
    with pytest.raises(ConfigError, match="explicit contact law"):
        RigidSystem(b.finalize(), contact="impulse")


@pytest.mark.parametrize("dim", [2, 3])
def test_a_box_of_restitution_zero_slides_to_rest_on_the_floor(dim):
    """A new user's box with restitution 0 (the penalty default contact) was thrown 0.2 m off the
    floor: e -> 0 asks for an unbounded damping ratio, and its four corners' explicit damping
    overshot every step. With the damping capped (diffsim.contact.stable_damping_ratio) it
    stays on the floor and stops where Coulomb's law says, like a box of e = 0.5."""
    from diffsim.rigid import Box, ModelBuilder, RigidSystem

    v0, mu, g = 1.5, 0.3, 9.81
    ends = []
    for e in (0.0, 0.5):
        b = ModelBuilder(dim)
        up = [0.0] * (dim - 1) + [0.1]
        b.add_body(Box((0.1,) * dim), mass=1.0, position=up, velocity=[v0] + [0.0] * (dim - 1), friction=mu,
                   restitution=e)
        b.add_plane([0.0] * (dim - 1) + [1.0], 0.0, friction=mu, restitution=e)
        out = RigidSystem(b.finalize(), dt=1e-3, stiffness=1e4).simulate(1200)
        height = out["x"][:, 0, -1]
        assert height.max() < 0.1 + 1e-4 and height.min() > 0.1 - 1e-3, (e, height.max(), height.min())
        assert np.abs(out["v"][-1]).max() < 1e-3
        ends.append(out["x"][-1, 0, 0])
    assert ends[0] == pytest.approx(v0**2 / (2 * mu * g), rel=0.01)
    assert ends[0] == pytest.approx(ends[1], abs=1e-3)


def test_gradients_through_a_box_sliding_into_a_wall_match_central_differences():
    """A spinning box slides on the floor into a wall whose normal is -x: its corners on the
    wall take the other branch of the tangent basis in the friction slip bound (normal along x)
    and count the corners pressing beside them; the per-step path's gradient with respect to
    the materials and the initial velocities agrees with float64 central differences (relative
    step 1e-6: d/dv_x, the speed into the wall, changes which corners strike it and when, and
    its central difference converged only below 1e-5: 4 % off at 1e-2, 6e-4 at 1e-4, 1e-7 at
    1e-5, 6e-12 at 1e-6; at that step round-off leaves 2e-5 on d/d omega_y, an entry 1e-4 of
    the largest, hence rtol 1e-4)."""
    b = ModelBuilder(3)
    b.add_body(Box((0.1, 0.08, 0.06)), mass=1.0, position=[0.0, 0.0, 0.062], orientation=[0, 0, 1], angle=0.3,
               velocity=[1.5, 0.3, 0.0], angular_velocity=[0.0, 0.0, 2.0], restitution=0.3, friction=0.5)
    b.add_plane([0.0, 0.0, 1.0], 0.0, restitution=0.3, friction=0.4)
    b.add_plane([-1.0, 0.0, 0.0], -0.2, restitution=0.5, friction=0.6)
    system = RigidSystem(b.finalize(), dt=1e-3, stiffness=2e4, fused=False,
                         costs=[BodyTarget(0, [0.0, 0.2, 0.1])])
    steps = 120
    out = system.simulate(steps)
    assert out["v"][-1, 0, 0] < 0.0  # it bounced off the wall
    obj = Objective(Rollout(system, steps, StoreAll()),
                    ["mass", "restitution", "friction", "plane_friction", Parameter("v", kind="state0"),
                     Parameter("omega", kind="state0")])
    report = gradcheck(obj, obj.x0(), rtol=1e-4, step=1e-6, entries=16, directions=1, seed=4)
    assert report.ok, str(report)
