"""The fused steps (diffsim.md.pair_step: a step's pair forces, kick and drift per atom, several
steps per launch, and the shifted adjoint) give the loss and gradients of the separate launches
(close-drift kernel, gathered pair forces and their adjoints) in every mode they serve, under
StoreAll and Binomial, whatever the number of steps per launch."""

import numpy as np
import pytest

from diffsim import Binomial, Rollout, StoreAll
from diffsim.md import (
    ForceField,
    Langevin,
    LennardJones,
    MDSystem,
    Model,
    PotentialEnergy,
    PressureMatch,
    fcc_lattice,
    maxwell_boltzmann,
)
from diffsim.md import pair_step as pair_step_module


def _system(case):
    pos, box = fcc_lattice((3, 3, 3), 0.8442)
    pos = pos + np.random.default_rng(0).normal(0, 0.03, pos.shape)
    n = len(pos)
    if case == "nve":
        model = Model(pos, box=box, velocities=maxwell_boltzmann(np.ones(n), 1.2, seed=0))
        ff = ForceField([LennardJones(1.0, 1.0, cutoff=1.6)], model.types, model.box, skin=0.2)
        return MDSystem(model, ff, dt=0.004, segment=7, costs=[PotentialEnergy(1.0 / n, running=True)])
    # two types, two masses, a tilted cell, Langevin, the pressure tensor and displacements on the tape
    types = np.arange(n) % 2
    tilt = [0.5, -0.2, 0.3]
    model = Model(pos, masses=1.0 + 0.5 * types, types=types, box=box, tilt=tilt,
                  velocities=maxwell_boltzmann(1.0 + 0.5 * types, 1.2, seed=0))
    lj = LennardJones([[1.0, 0.8], [0.8, 1.2]], [[1.0, 0.95], [0.95, 1.05]], cutoff=1.6, shift="force")
    ff = ForceField([lj], model.types, model.box, skin=0.2, tilt=tilt)
    return MDSystem(model, ff, integrator=Langevin(1.1, 2.0, seed=5), dt=0.004, segment=7, observe=("msd",),
                    costs=[PotentialEnergy(1.0 / n, running=True), PressureMatch(0.5, weight=0.1)])


def _gradient(system, schedule, fused, monkeypatch):
    calls = []
    step = pair_step_module.SegmentSteps.__call__

    def counted(self):
        calls.append(1)
        step(self)

    with monkeypatch.context() as m:
        m.setattr(pair_step_module.SegmentSteps, "__call__", counted)
        if not fused:
            m.setattr(MDSystem, "_fuses", lambda self: False)
        ro = Rollout(system, 24, schedule)
        loss = ro.forward()
        g = ro.backward()
    assert bool(calls) == fused  # the path asked for ran
    return loss, g


@pytest.mark.parametrize("case", ["nve", "langevin_tilted_two_types"])
def test_fused_step_gives_the_separate_launches_loss_and_gradients(case, monkeypatch):
    system = _system(case)
    assert system._fuses()
    ref_loss, ref = _gradient(system, StoreAll(), False, monkeypatch)
    for schedule in (StoreAll(), Binomial(2)):
        loss, g = _gradient(system, schedule, True, monkeypatch)
        assert loss == pytest.approx(ref_loss, rel=1e-13, abs=0.0)
        for name in ("epsilon", "sigma"):
            scale = np.abs(ref.params[name]).max()
            assert scale > 0
            np.testing.assert_allclose(g.params[name], ref.params[name], rtol=0, atol=1e-12 * scale)
        for name in ("x", "v"):
            scale = np.abs(ref.state0[name]).max()
            assert scale > 0
            np.testing.assert_allclose(g.state0[name], ref.state0[name], rtol=0, atol=1e-12 * scale)


def test_steps_per_launch_do_not_change_the_result(monkeypatch):
    """One step per launch (the kernels compiled for it) gives the bits of several per launch."""
    system = _system("nve")
    loss, g = _gradient(system, StoreAll(), True, monkeypatch)
    with monkeypatch.context() as m:
        m.setattr(pair_step_module, "STEPS_PER_LAUNCH", 1)
        m.setattr(pair_step_module, "_KERNELS", {})
        one_loss, one = _gradient(system, StoreAll(), True, monkeypatch)
    assert one_loss == loss
    for name in ("epsilon", "sigma"):
        assert np.array_equal(one.params[name], g.params[name])
    assert np.array_equal(one.state0["x"], g.state0["x"])


def test_fused_step_schedules_agree_bitwise(monkeypatch):
    """StoreAll and Binomial launch the same fused segments: the same loss and gradient bits."""
    system = _system("nve")
    a_loss, a = _gradient(system, StoreAll(), True, monkeypatch)
    b_loss, b = _gradient(system, Binomial(2), True, monkeypatch)
    assert a_loss == b_loss
    for name in ("epsilon", "sigma"):
        assert np.array_equal(a.params[name], b.params[name])
    assert np.array_equal(a.state0["x"], b.state0["x"])


def test_virial_adjoints_are_read_in_the_segments_a_cost_seeds(monkeypatch):
    """The fused adjoint skips the virial's adjoints in a segment where nothing seeded them
    (pair_step._seeded); a Python cost reading the virial at one step inside the second segment
    seeds them there only, and the gradient stays the separate launches' (which always read them)."""
    from diffsim.costs import NumpyCost

    system = _system("nve")
    system = MDSystem(system.model, system.ff, dt=system.dt, segment=7, observe=("energy",), costs=system.costs)

    def total(s, t):
        return float(s["vir"].sum())

    def total_grad(s, t):
        return {"vir": np.ones_like(s["vir"])}

    seeded = []
    check = pair_step_module._seeded

    def counted(*args):
        seeded.append(int(check(*args)))
        return seeded[-1]

    def run(fused):
        with monkeypatch.context() as m:
            m.setattr(pair_step_module, "_seeded", counted)
            if not fused:
                m.setattr(MDSystem, "_fuses", lambda self: False)
            ro = Rollout(system, 24, StoreAll(), costs=[NumpyCost(total, total_grad, fields="vir", steps=10)])
            return ro.forward(), ro.backward()

    ref_loss, ref = run(False)
    assert not seeded
    loss, g = run(True)
    assert sorted(seeded) == [0, 0, 0, 1]  # four segments of 7, 7, 7 and 3 steps: the second is seeded
    assert loss == pytest.approx(ref_loss, rel=1e-13, abs=0.0)
    for name in ("epsilon", "sigma"):
        scale = np.abs(ref.params[name]).max()
        np.testing.assert_allclose(g.params[name], ref.params[name], rtol=0, atol=1e-12 * scale)
    for name in ("x", "v"):
        scale = np.abs(ref.state0[name]).max()
        np.testing.assert_allclose(g.state0[name], ref.state0[name], rtol=0, atol=1e-12 * scale)
    # and the virial's seed matters: without it the gradient differs
    _, plain = _gradient(system, StoreAll(), True, monkeypatch)
    assert not np.allclose(plain.params["sigma"], g.params["sigma"], rtol=1e-6)
