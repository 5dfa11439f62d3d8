"""Gradients through collisions: reverse mode against float64 central differences, schedules
against each other, and degenerate contacts.

Finite differences: diffsim.gradcheck's Richardson-extrapolated central difference with
relative step h = 1e-6 (h_i = 1e-6 max(1, |x_i|)) for the penalty model (at 1e-7 FD
round-off reaches 2e-5 of the smallest checked entries; at 1e-6 every entry agrees to
3e-6), and h = 1e-5 for the impulse model, whose time-of-impact correction makes
positions smooth in the inputs. Errors are relative to max(|AD|, |FD|, floor) with the floor
at 1e-3 of the largest gradient entry for the penalty scenes: the smallest entries (1e-6 of
the largest) are otherwise swamped by FD round-off at h = 1e-7.
"""

import numpy as np
import pytest

from diffsim import Binomial, Objective, Parameter, Rollout, StoreAll, gradcheck
from diffsim.errors import DiffsimError
from diffsim.rigid import (
    BodyTarget,
    Box,
    Capsule,
    ModelBuilder,
    PoseMatch,
    RigidSystem,
    Sphere,
)

T = 100
PARAMS = ["mass", "restitution", "friction", "linear_damping", "angular_damping"]


def mixed_scene():
    """A sphere, a tumbling box, a capsule and a second sphere colliding on a floor (3D)."""
    b = ModelBuilder(3)
    b.add_body(Sphere(0.1), mass=1.0, position=[0, 0, 0.12], velocity=[0.5, 0, -1], restitution=0.5, friction=0.4,
               linear_damping=0.1, angular_damping=0.2)
    b.add_body(Box((0.1, 0.08, 0.06)), mass=0.8, position=[0.3, 0.0, 0.1], orientation=[1, 1, 0], angle=0.3,
               velocity=[-0.5, 0, -0.5], angular_velocity=[1, 2, 0.5], linear_damping=0.1, angular_damping=0.2)
    b.add_body(Capsule(0.05, 0.1), mass=0.5, position=[0.05, 0.25, 0.2], orientation=[0, 1, 0.3], angle=0.7,
               velocity=[0, -1, 0], linear_damping=0.1, angular_damping=0.2)
    b.add_body(Sphere(0.08), mass=0.6, position=[0.02, 0.35, 0.1], velocity=[0, -0.5, 0], linear_damping=0.1,
               angular_damping=0.2)
    b.add_plane([0, 0, 1], 0.0)
    return b.finalize()


def mixed_costs():
    return [BodyTarget(0, [0.3, 0.1, 0.0]), BodyTarget(1, [0.0, 0.1, 0.3]), BodyTarget(2, [0.1, 0.1, 0.1])]


@pytest.fixture(scope="module")
def mixed_fused():
    return RigidSystem(mixed_scene(), dt=2e-3, stiffness=2e4, fused=True, segment=10, costs=mixed_costs(),
                       pass_through=("box-capsule",))


@pytest.fixture(scope="module")
def mixed_steps():
    return RigidSystem(mixed_scene(), dt=2e-3, stiffness=2e4, fused=False, costs=mixed_costs(),
                       pass_through=("box-capsule",))


def objective(system, schedule=None, names=None, steps=T):
    ro = Rollout(system, steps, schedule or StoreAll())
    return Objective(ro, names or PARAMS + [Parameter("v", kind="state0"), Parameter("omega", kind="state0")])


def test_penalty_gradients_match_central_differences(mixed_fused):
    obj = objective(mixed_fused)
    x0 = obj.x0()
    _, g = obj(x0)
    report = gradcheck(obj, x0, rtol=1e-5, step=1e-6, entries=12, directions=2, seed=1,
                       floor=1e-3 * np.abs(g).max())
    assert report.ok, str(report)
    assert max(abs(r.reverse) for r in report.rows) > 1e-3


def test_fused_and_per_step_paths_agree(mixed_fused, mixed_steps):
    """The fused advance (all pairs) and the per-step launches (grid broad phase each step)
    give the same loss and gradient to round-off, and the per-step gradient passes FD."""
    of, os_ = objective(mixed_fused, steps=60), objective(mixed_steps, steps=60)
    x0 = of.x0()
    lf, gf = of(x0)
    ls, gs = os_(x0)
    assert ls == pytest.approx(lf, rel=1e-12)
    np.testing.assert_allclose(gs, gf, rtol=1e-8, atol=1e-12 * np.abs(gf).max())
    report = gradcheck(os_, x0, rtol=1e-5, step=1e-7, entries=2, directions=1, seed=2, floor=1e-3 * np.abs(gs).max())
    assert report.ok, str(report)


@pytest.mark.parametrize("fused", [True, False])
def test_binomial_checkpointing_equals_store_all_bitwise(mixed_fused, mixed_steps, fused):
    system = mixed_fused if fused else mixed_steps
    ref, ckp = objective(system, StoreAll(), steps=60), objective(system, Binomial(3), steps=60)
    x0 = ref.x0()
    l1, g1 = ref(x0)
    l2, g2 = ckp(x0)
    assert l1 == l2
    np.testing.assert_array_equal(g1, g2)
    assert ckp.rollout.stats.recomputed_steps > 0


def billiard_scene(e=0.9):
    """2D: a cue ball hits two balls, one of which then hits a cushion (impulse model)."""
    b = ModelBuilder(2)
    b.add_body(Sphere(0.03), mass=0.17, position=[0.3, 0.5], velocity=[2.0, 0.15], restitution=e)
    b.add_body(Sphere(0.03), mass=0.16, position=[0.5, 0.52], restitution=e)
    b.add_body(Sphere(0.03), mass=0.17, position=[0.56, 0.47], restitution=e)
    b.add_plane([-1, 0], -0.9, restitution=0.8)
    b.add_plane([0, 1], 0.0, restitution=0.8)
    return b.finalize()


@pytest.mark.parametrize("fused", [True, False])
def test_impulse_gradients_match_central_differences(fused):
    model = billiard_scene()
    system = RigidSystem(model, dt=2e-3, contact="impulse", gravity=[0, 0], rolling_resistance=0.1, fused=fused,
                         segment=25, costs=[BodyTarget(1, [0.8, 0.9]), BodyTarget(2, [0.9, 0.0])])
    ro = Rollout(system, 200, StoreAll())
    obj = Objective(ro, ["mass", "restitution", "linear_damping", Parameter("v", kind="state0"),
                         Parameter("x", kind="state0")])
    x0 = obj.x0()
    speeds = system.simulate(200)["v"]
    assert np.linalg.norm(speeds[-1, 2]) > 0.1 and np.linalg.norm(speeds[-1, 1]) > 0.1  # both were hit
    # the per-step path is launch-bound (6 launches a step): check fewer entries there
    report = gradcheck(obj, x0, rtol=1e-6, step=1e-5, entries=20 if fused else 2, directions=2 if fused else 0,
                       seed=3)
    assert report.ok, str(report)


def test_time_of_impact_correction_is_exact_for_a_wall():
    """A ball at speed v towards a wall at distance d: after time t it is at the analytic
    position (reflection with restitution e at time d/v), and d x_T / d v is analytic too."""
    e, d, v, t_end, r = 0.6, 0.3137, 1.7, 0.5, 0.05
    b = ModelBuilder(2)
    b.add_body(Sphere(r), mass=1.0, position=[0.0, 0.0], velocity=[v, 0.0], restitution=e)
    b.add_plane([-1, 0], -(d + r), restitution=e)
    system = RigidSystem(b.finalize(), dt=1e-2, contact="impulse", gravity=[0, 0], costs=[BodyTarget(0, [0, 0])])
    ro = Rollout(system, 50, StoreAll())
    ro.forward()
    x_t = ro.final_state()["x"][0, 0]
    assert x_t == pytest.approx(d - e * v * (t_end - d / v), abs=1e-12)
    g = ro.backward().state0["v"][0, 0]
    dx_dv = -e * t_end  # x_T = d - e v (t - d/v) = d (1 + e) - e v t; the impact time d/v moves with v
    assert g == pytest.approx(2 * x_t * dx_dv, rel=1e-9)  # loss = x_T^2 (target 0)


def test_broad_phase_skin_matches_all_pairs_and_reports_misses():
    model = billiard_scene()
    kw = {"dt": 2e-3, "contact": "impulse", "gravity": [0, 0], "fused": True, "segment": 20,
              "costs": [BodyTarget(1, [0.8, 0.9])]}
    all_p = RigidSystem(model, **kw)
    skin = RigidSystem(model, skin=0.2, **kw)
    names = ["restitution", Parameter("v", kind="state0")]
    oa, os_ = Objective(Rollout(all_p, 200), names), Objective(Rollout(skin, 200), names)
    la, ga = oa(oa.x0())
    ls, gs = os_(os_.x0())
    assert ls == pytest.approx(la, rel=1e-12)
    np.testing.assert_allclose(gs, ga, rtol=1e-9, atol=1e-14)
    tight = RigidSystem(model, skin=0.02, **kw)
    with pytest.raises(DiffsimError, match="skin"):
        Rollout(tight, 200).forward()


def test_trajectory_match_gradient_2d():
    """The system-identification cost in 2D (positions and angles) against FD."""
    b = ModelBuilder(2)
    b.add_body(Box((0.1, 0.05)), mass=1.0, position=[0, 0.2], angle=0.3, velocity=[1.0, 0], angular_velocity=2.0,
               restitution=0.4, friction=0.5)
    b.add_plane([0, 1], 0.0)
    model = b.finalize()
    system = RigidSystem(model, dt=1e-3, stiffness=2e4, segment=50)
    obs = system.simulate(200)
    system.costs = [PoseMatch(obs["x"] + 0.01, obs["theta"] - 0.05, weight_rotation=0.3)]
    obj = Objective(Rollout(system, 200), ["mass", "restitution", "friction"])
    report = gradcheck(obj, obj.x0(), rtol=1e-5, step=1e-7)
    assert report.ok, str(report)


def test_fused_impulse_gradient_runs_the_acting_items_alone_and_equals_the_per_step_gradient():
    """The fused impulse step's forward lists the items that acted (every body item; pairs and
    planes within reach) and its gradient runs those alone: the per-step path, whose adjoint
    runs every pair and plane, gives the same loss and gradient to round-off."""
    def obj(fused):
        system = RigidSystem(billiard_scene(), dt=2e-3, contact="impulse", gravity=[0, 0], rolling_resistance=0.1,
                             fused=fused, segment=50, costs=[BodyTarget(1, [0.8, 0.9]), BodyTarget(2, [0.9, 0.0])])
        return system, Objective(Rollout(system, 200, StoreAll()), ["mass", "restitution", "friction",
                                                                    Parameter("v", kind="state0")])
    sf, of = obj(True)
    _, os_ = obj(False)
    x0 = of.x0()
    lf, gf = of(x0)
    ls, gs = os_(x0)
    assert ls == pytest.approx(lf, rel=1e-12)
    np.testing.assert_allclose(gf, gs, rtol=1e-9, atol=1e-12 * np.abs(gf).max())
    assert np.abs(gf).max() > 1e-2
    ws = next(iter(sf._workspace.values()))
    counts = ws.acting_count.to_numpy()[[0, 50, 100, 150]]
    n, width = 3, 2 * 3 + 3 + 3 * 2  # bodies, the 3 pairs, 3 x 2 (body, plane) pairs
    assert np.all(counts >= 2 * n * 50) and np.all(counts < width * 50)  # bodies always, most contacts skipped
    assert np.sum(counts) > 4 * 2 * n * 50  # the three impacts and the cushion were listed
    items = ws.acting_items.to_numpy()
    first = items[:counts[0]]
    assert np.all(np.diff(first) > 0) and first.max() < width * 50  # in order, within the segment
