"""Costs written in Python on the trajectory: gradients against central differences, every
schedule bitwise equal, NumPy and torch forms agree, bad input named."""

import numpy as np
import pytest

from diffsim import (
    Binomial,
    ConfigError,
    DiffsimError,
    Objective,
    Periodic,
    Rollout,
    StoreAll,
    gradcheck,
)
from diffsim.costs import NumpyCost, TorchCost
from diffsim.mass_spring import MassSpringChain

T = 60


def forcing(T):
    return {"force": 0.3 * np.sin(0.37 * np.arange(T))[:, None]}


def tip_energy(states, steps):
    """sum over the read steps of q_tip^2 * v_tip^2 + 0.1 * step * q_0 (uses the step index)."""
    q, v = states["q"], states["v"]
    return float(np.sum(q[:, -1] ** 2 * v[:, -1] ** 2) + 0.1 * np.dot(steps, q[:, 0]))


def tip_energy_grad(states, steps):
    q, v = states["q"], states["v"]
    gq, gv = np.zeros_like(q), np.zeros_like(v)
    gq[:, -1] = 2 * q[:, -1] * v[:, -1] ** 2
    gq[:, 0] = 0.1 * steps
    gv[:, -1] = 2 * q[:, -1] ** 2 * v[:, -1]
    return {"q": gq, "v": gv}


def tip_energy_torch(states, steps):
    q, v = states["q"], states["v"]
    return (q[:, -1] ** 2 * v[:, -1] ** 2).sum() + 0.1 * (steps.double() * q[:, 0]).sum()


@pytest.fixture(scope="module")
def chain():
    # no own loss: the Python cost is the whole loss
    return MassSpringChain(n=5, dt=0.01, segment=10, effort=0.0, tracking=0.0, velocity_weight=0.0,
                           target=0.0)


@pytest.fixture(scope="module")
def chain_per_step():
    return MassSpringChain(n=5, dt=0.01, fused=False, effort=0.0, tracking=0.0, velocity_weight=0.0, target=0.0)


def run(system, schedule, cost, segment=None, T=T):
    ro = Rollout(system, T, schedule, segment=segment, costs=[cost])
    loss = ro.forward(controls=forcing(T))
    return ro, loss, ro.backward()


@pytest.mark.parametrize("steps", ["all", slice(7, 43, 3), "last", [0, 5, 59, 60]])
def test_numpy_cost_gradient_matches_central_differences(chain, steps):
    cost = NumpyCost(tip_energy, tip_energy_grad, fields=("q", "v"), steps=steps)
    ro = Rollout(chain, T, Binomial(2), costs=[cost])
    ro.set_controls(**forcing(T))
    obj = Objective(ro, ["stiffness", "damping", "mass", "force"])
    x0 = obj.x0()
    loss, g = obj(x0)
    assert loss != 0.0 and np.any(g != 0.0)
    report = gradcheck(obj, x0, rtol=1e-6, entries=12, directions=3)
    assert report.ok, str(report)


def test_state0_gradient_of_a_window_cost(chain):
    """A cost on steps 10..30 only: dC/dx_0 arrives through the simulator's adjoint."""
    cost = NumpyCost(tip_energy, tip_energy_grad, fields=("q", "v"), window=(0.1, 0.3))
    ro = Rollout(chain, T, Periodic(every=20), segment=10, costs=[cost])
    ro.set_controls(**forcing(T))
    ro.set_state0(v=0.05 * np.arange(5))
    obj = Objective(ro, ["q", "v"])
    report = gradcheck(obj, obj.x0(), rtol=1e-6, directions=2)
    assert report.ok, str(report)


@pytest.mark.parametrize("per_step", [False, True])
def test_every_schedule_gives_bitwise_the_same_loss_and_gradient(chain, chain_per_step, per_step):
    system, segment = (chain_per_step, 1) if per_step else (chain, 10)
    cost = NumpyCost(tip_energy, tip_energy_grad, fields=("q", "v"), steps=slice(3, None, 4))
    _, l_ref, g_ref = run(system, StoreAll(), cost, segment)
    for sch in (Periodic(every=10), Periodic(every=30), Binomial(1), Binomial(2), Binomial(5)):
        _, loss, g = run(system, sch, cost, segment)
        assert loss == l_ref, sch
        for kind in ("params", "controls", "state0"):
            for k, v in getattr(g_ref, kind).items():
                assert np.array_equal(getattr(g, kind)[k], v), (sch, kind, k)


def test_a_python_cost_adds_to_the_systems_own_loss():
    own = MassSpringChain(n=5, dt=0.01, segment=10)  # effort, tracking and terminal terms of its own
    cost = NumpyCost(tip_energy, tip_energy_grad, fields=("q", "v"), steps=slice(None, None, 5))
    ro_own = Rollout(own, T, StoreAll())
    l_own = ro_own.forward(controls=forcing(T))
    sel = np.arange(T + 1)[::5]
    expected = tip_energy({"q": ro_own.trajectory("q")[sel], "v": ro_own.trajectory("v")[sel]}, sel)
    ro = Rollout(own, T, Binomial(2), costs=[cost])
    loss = ro.forward(controls=forcing(T))
    assert ro.cost_values[cost] == expected  # the states it read are the trajectory's, bit for bit
    assert loss == pytest.approx(l_own + expected, rel=1e-14)


def test_torch_cost_equals_the_numpy_cost(chain):
    pytest.importorskip("torch")
    steps = slice(2, 50, 2)
    _, l_np, g_np = run(chain, Binomial(3), NumpyCost(tip_energy, tip_energy_grad, ("q", "v"), steps=steps))
    _, l_t, g_t = run(chain, Binomial(3), TorchCost(tip_energy_torch, ("q", "v"), steps=steps))
    assert l_t == pytest.approx(l_np, rel=1e-13)
    for k in g_np.params:
        np.testing.assert_allclose(g_t.params[k], g_np.params[k], rtol=1e-11)
    np.testing.assert_allclose(g_t.controls["force"], g_np.controls["force"], rtol=1e-11, atol=1e-15)


def test_bad_python_costs_are_named(chain):
    def f(s, t):
        return 0.0

    def g(s, t):
        return {"q": np.zeros_like(s["q"])}

    with pytest.raises(ConfigError, match="'w'"):
        Rollout(chain, 10, costs=[NumpyCost(f, g, fields="w")])
    with pytest.raises(ConfigError, match="beyond the last state"):
        Rollout(chain, 10, costs=[NumpyCost(f, g, fields="q", steps=[3, 11])])
    with pytest.raises(ConfigError, match="select no state"):
        Rollout(chain, 10, costs=[NumpyCost(f, g, fields="q", window=(5.0, 6.0))])
    with pytest.raises(ConfigError, match="not both"):
        NumpyCost(f, g, fields="q", steps="all", window=(0, 1))
    with pytest.raises(ConfigError, match="gradient"):
        NumpyCost(f, None, fields="q")
    with pytest.raises(ConfigError, match="not a cost"):
        Rollout(chain, 10, costs=[object()])
    bad_shape = NumpyCost(f, lambda s, t: {"q": np.zeros(3)}, fields="q")
    with pytest.raises(ConfigError, match="shape"):
        Rollout(chain, 10, costs=[bad_shape]).forward()
    nan = NumpyCost(lambda s, t: float("nan"), g, fields="q")
    with pytest.raises(Exception, match="returned nan"):
        Rollout(chain, 10, costs=[nan]).forward()
    # a user's slips that used to pass: the loss as an array (a bare TypeError), and a NaN in the
    # gradient of a finite trajectory (it flowed silently into the parameters' gradient)
    per_state = NumpyCost(lambda s, t: s["q"][-1], g, fields="q")
    with pytest.raises(ConfigError, match=r"one real number \(the loss\), got ndarray of shape \(5,\)"):
        Rollout(chain, 10, costs=[per_state]).forward()
    nan_grad = NumpyCost(f, lambda s, t: {"q": np.where(np.arange(5) == 3, np.nan, 0.0) * np.ones_like(s["q"])},
                         fields="q", steps="last")
    with pytest.raises(DiffsimError, match=r"gradient of 'q' is nan at index \(0, 3\)"):
        Rollout(chain, 10, costs=[nan_grad]).forward()


def test_a_python_cost_on_a_molecular_system():
    """The same protocol on MD (no simulator change): a NumPy cost on pair distances and speeds
    at every 5th step, gradients with respect to the LJ parameters against central differences,
    and a ready cost on the same rollout."""
    from diffsim.costs import MinimumDistance
    from diffsim.md import (
        ForceField,
        LennardJones,
        MDSystem,
        Model,
        fcc_lattice,
        maxwell_boltzmann,
    )

    pos, box = fcc_lattice((2, 2, 2), 0.8442)
    pos = pos + np.random.default_rng(0).normal(0, 0.03, pos.shape)
    model = Model(pos, box=box, velocities=maxwell_boltzmann(np.ones(len(pos)), 1.0, seed=0))
    ff = ForceField([LennardJones(cutoff=1.6, shift="force")], model.types, model.box, skin=0.2)
    system = MDSystem(model, ff, dt=0.005, segment=10)

    def spread(states, steps):
        d = states["x"][:, 0] - states["x"][:, 1]
        return float(np.sum(d * d) + 0.1 * np.sum(states["v"][:, 2] ** 2))

    def spread_grad(states, steps):
        gx, gv = np.zeros_like(states["x"]), np.zeros_like(states["v"])
        d = states["x"][:, 0] - states["x"][:, 1]
        gx[:, 0], gx[:, 1] = 2 * d, -2 * d
        gv[:, 2] = 0.2 * states["v"][:, 2]
        return {"x": gx, "v": gv}

    cost = NumpyCost(spread, spread_grad, fields=("x", "v"), steps=slice(None, None, 5))
    near = MinimumDistance(0, 1, temperature=0.01, steps=slice(10, 40))
    rollout = Rollout(system, 40, Binomial(2), costs=[cost, near])
    obj = Objective(rollout, ["epsilon", "sigma"])
    rep = gradcheck(obj, obj.x0(), rtol=2e-6, step=1e-6)
    assert rep.ok, str(rep)
    assert rollout.cost_values[cost] > 0 and near.measured > 0


def test_trajectory_match_delegates_to_the_wrapped_system(chain):
    from diffsim import SimulationDiverged
    from diffsim.costs import TrajectoryMatch

    class Limited(MassSpringChain):
        def control_limits(self):
            return {"force": (-2.0, 2.0)}

    wrapped = Limited(n=5, dt=0.01, segment=10)
    ref = Rollout(wrapped, 20, StoreAll())
    ref.forward()
    match = TrajectoryMatch(wrapped, {"q": ref.trajectory("q")})
    assert match.plausible_magnitudes() == wrapped.plausible_magnitudes()
    assert match.divergence_hint() == wrapped.divergence_hint()
    assert match.control_limits() == {"force": (-2.0, 2.0)} and match.dt == wrapped.dt
    assert TrajectoryMatch(chain, {"q": ref.trajectory("q")}).control_limits() == {}  # declares none
    force = np.zeros((20, 1))
    force[5, 0] = 1e99
    with pytest.raises(SimulationDiverged, match="plausible magnitude"):
        Rollout(match, 20, Binomial(2)).forward(controls={"force": force})


def test_ready_costs_on_an_articulated_rollout():
    """The same costs on a robot, through Rollout(costs=...) with no change to the simulator: the
    smooth peak of joint 1's angle in a window and the final joint speeds' distance to a goal."""
    from diffsim.articulated import ArticulatedSystem, planar_arm
    from diffsim.costs import ApexHeight, FinalDistance

    system = ArticulatedSystem(planar_arm(2), batch=1, dt=0.01, q0=[0.3, -0.2])
    apex = ApexHeight(0, field="q", axis=1, window=(0.1, 0.3), temperature=1e-2, target=0.0)
    final = FinalDistance(0, [0.1, 0.4], field="qd")
    rollout = Rollout(system, 40, Binomial(2), costs=[apex, final])
    rollout.set_controls(tau=0.3 * np.ones((40, 1, 2)))
    obj = Objective(rollout, ["tau", "q"])
    loss, _ = obj(obj.x0())
    assert loss == pytest.approx(apex.weight * (apex.measured - 0.0) ** 2 + final.measured ** 2, rel=1e-12)
    rep = gradcheck(obj, obj.x0(), rtol=1e-6, entries=6, directions=2)
    assert rep.ok, str(rep)


def test_torch_cost_without_torch_says_how_to_get_it(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    with pytest.raises(ConfigError, match="pip install torch"):
        TorchCost(tip_energy_torch, ("q",))
