"""Ready costs (diffsim.costs): gradients against central differences, the documented biases of
the smooth maximum, and the costs on a rigid rollout (gradcheck through the tape)."""

import numpy as np
import pytest

from diffsim import ConfigError, Objective, Parameter, Rollout, StoreAll, gradcheck
from diffsim.costs import (
    ApexHeight,
    FinalDistance,
    FirstContactTime,
    MinimumDistance,
    SmoothMax,
    smooth_max,
)
from diffsim.rigid import ModelBuilder, RigidSystem, Sphere

DT = 1e-3


class _Sys:
    """The little a ready cost asks of a system: state shapes and dt."""

    def __init__(self, shapes, dt=DT):
        self.state_shapes, self.dt = shapes, dt


def central_check(cost, shapes, states, steps, h=1e-6, rtol=1e-6):
    """Every entry of dC/dstates against a central difference (float64)."""
    cost.reads(_Sys(shapes), int(steps[-1]))
    value, grads = cost.evaluate(states, steps)
    assert np.isfinite(value)
    scale = max(max(np.abs(g).max() for g in grads.values()), 1e-12)
    for f, a in states.items():
        num = np.zeros_like(a)
        for idx in np.ndindex(*a.shape):
            up, dn = {k: v.copy() for k, v in states.items()}, {k: v.copy() for k, v in states.items()}
            up[f][idx] += h
            dn[f][idx] -= h
            num[idx] = (cost.evaluate(up, steps)[0] - cost.evaluate(dn, steps)[0]) / (2 * h)
        np.testing.assert_allclose(grads[f], num, rtol=rtol, atol=rtol * scale, err_msg=f"{cost!r} {f}")
    cost.evaluate(states, steps)  # leave cost.measured at the unperturbed states
    return value


def ballistic(k=40, n=3, dim=3, seed=0):
    """(k, n, dim) positions of n bodies on parabolas sampled every DT s, plus steps."""
    rng = np.random.default_rng(seed)
    t = np.arange(k) * 0.01
    x0 = rng.uniform(-0.5, 0.5, (n, dim)) + np.r_[np.zeros(dim - 1), 1.0]
    v0 = rng.uniform(-1, 1, (n, dim))
    x = x0[None] + v0[None] * t[:, None, None]
    x[..., -1] -= 0.5 * 9.81 * t[:, None] ** 2
    return x, np.arange(0, 10 * k, 10)


@pytest.mark.parametrize("smooth", list(SmoothMax))
@pytest.mark.parametrize("target", [None, 0.9])
def test_apex_height_gradient(smooth, target):
    x, steps = ballistic()
    cost = ApexHeight(1, temperature=0.01, smooth=smooth, target=target, weight=2.0, steps=list(steps))
    central_check(cost, {"x": (3, 3)}, {"x": x}, steps)
    assert cost.measured == pytest.approx(x[:, 1, 2].max(), abs=0.01 * np.log(len(steps)))


def test_apex_height_of_a_one_value_per_body_field():
    q = np.random.default_rng(1).normal(size=(30, 4))
    steps = np.arange(30)
    cost = ApexHeight(2, field="q", axis=None, temperature=0.3, steps="all")
    central_check(cost, {"q": (4,)}, {"q": q}, steps)


@pytest.mark.parametrize("b", [2, (0.1, -0.2, 0.5)])
def test_minimum_distance_gradient(b):
    x, steps = ballistic(seed=3)
    cost = MinimumDistance(0, b, temperature=0.02, target=0.3, steps=list(steps))
    central_check(cost, {"x": (3, 3)}, {"x": x}, steps)
    pb = x[:, 2] if isinstance(b, int) else np.asarray(b)
    d = np.linalg.norm(x[:, 0] - pb, axis=-1)
    assert d.min() - 0.02 * np.log(len(d)) <= cost.measured <= d.min()  # log-sum-exp: below the min


@pytest.mark.parametrize("b,distance", [(None, 0.4), (1, 0.8), ((0.0, 0.0, 0.0), 1.0)])
def test_first_contact_time_gradient(b, distance):
    x, steps = ballistic(k=60, seed=5)
    cost = FirstContactTime(0, b, distance=distance, temperature=0.02, target=0.2, steps=list(steps))
    central_check(cost, {"x": (3, 3)}, {"x": x}, steps)


def test_first_contact_time_tends_to_the_first_crossing():
    """A drop from 1 m onto a height of 0.2 m crosses at sqrt(2 * 0.8 / g) = 0.40386 s."""
    t = np.arange(0, 601) * DT
    z = (1.0 - 0.5 * 9.81 * t ** 2)[:, None, None] * np.array([0.0, 0.0, 1.0])
    exact = np.sqrt(2 * 0.8 / 9.81)
    first = t[np.argmax(z[:, 0, 2] < 0.2)]
    for tau, tol in ((1e-5, DT), (1e-3, 3 * DT)):
        cost = FirstContactTime(0, None, distance=0.2, temperature=tau)
        cost.reads(_Sys({"x": (1, 3)}), 600)
        cost.evaluate({"x": z}, np.arange(601))
        assert abs(cost.measured - exact) < tol and abs(cost.measured - first) <= tol
    never = FirstContactTime(0, None, distance=-5.0, temperature=1e-3)
    never.reads(_Sys({"x": (1, 3)}), 600)
    never.evaluate({"x": z}, np.arange(601))
    assert never.measured == pytest.approx(0.601)  # the window's end plus one spacing


@pytest.mark.parametrize("target", [0.0, None, 0.25])
def test_final_distance_gradient(target):
    x, _ = ballistic(k=1, seed=7)
    cost = FinalDistance(2, (0.3, 0.1, 0.2), target=target, weight=3.0, steps="last")
    value = central_check(cost, {"x": (3, 3)}, {"x": x}, np.array([0]))
    d = np.linalg.norm(x[0, 2] - [0.3, 0.1, 0.2])
    assert cost.measured == pytest.approx(d, rel=1e-14)
    assert value == pytest.approx(3.0 * (d if target is None else (d - target) ** 2), rel=1e-14)


@pytest.mark.parametrize("tau", [1e-4, 1e-3])
def test_smooth_max_biases_are_as_documented(tau):
    """A ballistic apex H sampled every 1 ms: log-sum-exp sits ~tau ln(sqrt(pi tau / c) / dt)
    above it (c = g / 2), the Boltzmann mean tau / 2 below it."""
    g, H = 9.81, 0.2
    t = np.arange(-0.3, 0.3, DT) + 0.00037
    h = H - 0.5 * g * t ** 2
    lse, _ = smooth_max(h, tau, SmoothMax.LOG_SUM_EXP)
    boltz, _ = smooth_max(h, tau, SmoothMax.BOLTZMANN)
    predicted = tau * np.log(np.sqrt(np.pi * tau / (g / 2)) / DT)
    assert lse - H == pytest.approx(predicted, rel=0.02)
    assert boltz - H == pytest.approx(-tau / 2, rel=0.01)
    assert h.max() <= lse <= h.max() + tau * np.log(len(h))


def test_ready_costs_refuse_bad_input():
    shapes = {"x": (2, 3)}
    with pytest.raises(ConfigError, match="temperature"):
        ApexHeight(0, temperature=0.0)
    with pytest.raises(ConfigError, match="SmoothMax"):
        ApexHeight(0, smooth="lse")
    with pytest.raises(ConfigError, match="body 5"):
        ApexHeight(5).reads(_Sys(shapes), 10)
    with pytest.raises(ConfigError, match="axis 3"):
        ApexHeight(0, axis=3).reads(_Sys(shapes), 10)
    with pytest.raises(ConfigError, match="same body"):
        MinimumDistance(1, 1).reads(_Sys(shapes), 10)
    with pytest.raises(ConfigError, match="3 finite numbers"):
        FinalDistance(0, (1.0, 2.0)).reads(_Sys(shapes), 10)
    with pytest.raises(ConfigError, match="dt"):
        ApexHeight(0, window=(0.0, 1.0)).reads(_Sys(shapes, dt=None), 10)
    with pytest.raises(ConfigError, match="window"):
        ApexHeight(0, window=(1.0, 0.5))
    with pytest.raises(ConfigError, match="every"):
        ApexHeight(0, every=0)


# ---------------------------------------------------------------------- through a rigid rollout

def two_balls():
    b = ModelBuilder(3)
    b.add_body(Sphere(0.05), mass=0.2, position=[0.0, 0.0, 0.6], velocity=[0.5, 0.1, 1.5])
    b.add_body(Sphere(0.05), mass=0.3, position=[0.6, 0.05, 0.8], velocity=[-0.4, 0.0, 0.5])
    return b.finalize()


def test_ready_costs_on_a_rigid_rollout_match_central_differences():
    """Two balls in flight (no contact): the gradients of every ready cost, summed, with respect to
    the initial velocities and positions, through the rigid simulator's adjoint."""
    costs = [ApexHeight(0, window=(0.05, 0.25), temperature=1e-3, target=0.75),
             MinimumDistance(0, 1, window=(0.0, 0.3), temperature=1e-3, target=0.1),
             FirstContactTime(1, None, distance=0.65, window=(0.1, 0.3), temperature=2e-3, target=0.2),
             FinalDistance(1, (0.4, 0.0, 0.7))]
    system = RigidSystem(two_balls(), dt=DT, segment=50, costs=costs[:2])
    ro = Rollout(system, 300, StoreAll(), costs=costs[2:])  # system costs and rollout costs add up
    obj = Objective(ro, [Parameter("v", kind="state0"), Parameter("x", kind="state0", index=(0, 2))])
    loss, g = obj(obj.x0())
    assert loss > 0 and all(c.measured is not None for c in costs) and np.all(np.isfinite(g)) and np.any(g != 0)
    report = gradcheck(obj, obj.x0(), rtol=1e-6, step=1e-5, directions=2)
    assert report.ok, str(report)
    # the measures are what they say, on the stored trajectory
    x = ro.trajectory("x")
    t = np.arange(301) * DT
    win = (t >= 0.05 - 1e-9) & (t <= 0.25 + 1e-9)
    assert abs(costs[0].measured - x[win, 0, 2].max()) < 1e-3 * np.log(win.sum())
    d = np.linalg.norm(x[:, 0] - x[:, 1], axis=-1)
    assert d.min() - 1e-3 * np.log(301) <= costs[1].measured <= d.min()
    assert costs[3].measured == pytest.approx(np.linalg.norm(x[-1, 1] - [0.4, 0.0, 0.7]), rel=1e-12)
