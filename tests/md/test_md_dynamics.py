"""Integrators and rollouts: NVE conservation, Langevin temperature, bitwise recomputation,
rollout gradients against central differences."""

import numpy as np
import pytest

from diffsim import Binomial, Objective, Parameter, Rollout, StoreAll, gradcheck
from diffsim.errors import ConfigError
from diffsim.md import (
    RDF,
    ForceField,
    KineticEnergy,
    Langevin,
    LennardJones,
    MDSystem,
    Model,
    Morse,
    MSDMatch,
    PotentialEnergy,
    RDFMatch,
    brute_force_pairs,
    fcc_lattice,
    maxwell_boltzmann,
    rdf_smoothed,
)


def _lj_model(cells=(2, 2, 2), density=0.8442, temp=1.0, seed=0):
    pos, box = fcc_lattice(cells, density)
    rng = np.random.default_rng(seed)
    pos = pos + rng.normal(0, 0.03, pos.shape)
    return Model(pos, box=box, velocities=maxwell_boltzmann(np.ones(len(pos)), temp, seed=seed))


def _lj_system(model, rc=1.6, skin=0.2, **kw):
    ff = ForceField([LennardJones(cutoff=rc, shift="force")], model.types, model.box, skin=skin)
    return MDSystem(model, ff, **kw)


def test_nve_energy_conservation():
    model = _lj_model((2, 2, 2), temp=1.44)
    system = _lj_system(model, rc=1.6, skin=0.2, dt=0.005, observe=("energy",))
    run = system.simulate(1000, record_every=20)
    e, ke = run["total"], run["kinetic"]
    n = len(model.positions)
    # velocity Verlet: bounded O(dt^2) fluctuations and no secular drift over 1000 steps,
    # while the kinetic energy itself swings by far more
    assert np.ptp(e) / n < 2e-3, np.ptp(e)
    assert abs(e[-10:].mean() - e[:10].mean()) / n < 1e-3
    assert np.ptp(ke) > 20 * np.ptp(e)
    assert system.rebuilds > 10  # the list was rebuilt on the skin criterion during the run
    # halving dt cuts the fluctuation about 4x (second order)
    half = _lj_system(model, rc=1.6, skin=0.2, dt=0.0025, observe=("energy",)).simulate(200, record_every=2)
    full = system.simulate(100, record_every=1)
    assert np.ptp(half["total"]) < 0.4 * np.ptp(full["total"])


def test_langevin_reaches_target_temperature():
    model = _lj_model((2, 2, 2), temp=0.3)
    system = _lj_system(model, rc=1.6, skin=0.2, dt=0.005,
                        integrator=Langevin(temperature=1.5, friction=5.0, seed=3))
    run = system.simulate(1200, record_every=4)
    temps = run["temperature"][50:]  # after 1 tau (5 relaxation times)
    # BAOAB samples the kinetic temperature with 3n degrees of freedom; reported with 3n - 3
    assert temps.mean() == pytest.approx(1.5 * 96 / 93, rel=0.08)
    assert run["temperature"][0] == pytest.approx(0.3)


def test_langevin_recomputation_is_bitwise_identical():
    model = _lj_model()
    system = _lj_system(model, dt=0.005, segment=5, observe=("energy",),
                        integrator=Langevin(temperature=1.0, friction=1.0, seed=11), costs=[PotentialEnergy()])
    grads = []
    for schedule in (StoreAll(), Binomial(snapshots=2)):
        rollout = Rollout(system, 40, schedule)
        loss = rollout.forward()
        grads.append((loss, rollout.backward()))
    (l1, g1), (l2, g2) = grads
    assert l1 == l2
    for k in g1.params:
        assert np.array_equal(g1.params[k], g2.params[k]), k
    assert np.array_equal(g1.state0["x"], g2.state0["x"])
    assert np.array_equal(g1.state0["v"], g2.state0["v"])
    # a different seed gives a different trajectory
    system.set_integrator(Langevin(temperature=1.0, friction=1.0, seed=12))
    assert Rollout(system, 40).forward() != l1


def test_rollout_gradients_lj_parameters_and_initial_positions():
    model = _lj_model()
    system = _lj_system(model, dt=0.005, segment=10, observe=("energy",),
                        costs=[PotentialEnergy(1.0), KineticEnergy(0.1, running=True)])
    rollout = Rollout(system, 60, Binomial(snapshots=3))
    obj = Objective(rollout, ["epsilon", "sigma"])
    # a small step: the shifted-force cutoff leaves dF/dr discontinuous at rc, and a wide FD stencil
    # straddles pair crossings (the trajectory is only piecewise C^2 in the parameters)
    rep = gradcheck(obj, obj.x0(), rtol=2e-6, step=1e-6)
    assert rep.ok, str(rep)
    obj_x = Objective(Rollout(system, 30, StoreAll()), [Parameter("x", kind="state0")])
    rep = gradcheck(obj_x, obj_x.x0(), rtol=2e-6, entries=3, directions=1, step=1e-6)
    assert rep.ok, str(rep)
    assert system.rebuilds > 6  # forced per segment plus skin rebuilds, forward and backward


def test_rollout_gradients_morse_with_rebuilds_inside_segments():
    model = _lj_model(temp=2.0)
    ff = ForceField([Morse(D=1.0, alpha=3.0, r0=1.12, cutoff=1.6, shift="force")], model.types, model.box, skin=0.05)
    system = MDSystem(model, ff, dt=0.004, segment=25, observe=("energy",), costs=[PotentialEnergy()])
    rollout = Rollout(system, 50, StoreAll())
    obj = Objective(rollout, ["D", "alpha", "r0"])
    before = system.rebuilds
    rep = gradcheck(obj, obj.x0(), rtol=2e-6, step=1e-6)
    assert rep.ok, str(rep)
    assert system.rebuilds - before > 2 * 9  # skin 0.05: rebuilt inside segments


def test_recomputation_reuses_the_kept_lists_and_a_new_forward_sweep_builds_its_own():
    """A Binomial rollout's recomputations take the lists kept from the same positions instead of
    building them (fewer builds than with no room for lists, the same bits); a second forward sweep
    builds all its lists again (it may follow other parameters)."""
    model = _lj_model(temp=2.0)
    ff = ForceField([LennardJones(1.0, 1.0, cutoff=1.6, shift="force")], model.types, model.box, skin=0.05)
    system = MDSystem(model, ff, dt=0.004, segment=5, observe=("energy",), costs=[PotentialEnergy()])
    runs = []
    for room in (MDSystem.list_cache_bytes, 0):
        system.list_cache_bytes = room
        rollout = Rollout(system, 60, Binomial(snapshots=2))
        before = system.rebuilds
        loss = rollout.forward()
        forward_builds = system.rebuilds - before
        g = rollout.backward()
        runs.append((loss, g, forward_builds, system.rebuilds - before - forward_builds))
        assert rollout.stats.recomputed_steps > 0
        before = system.rebuilds
        assert rollout.forward() == loss
        assert system.rebuilds - before == forward_builds  # nothing reused across forward sweeps
    del system.list_cache_bytes
    (loss, g, fb, kept), (loss0, g0, fb0, none) = runs
    assert fb == fb0 and 0 < kept < none
    assert loss == loss0
    for k in g.params:
        assert np.array_equal(g.params[k], g0.params[k]), k
    assert np.array_equal(g.state0["x"], g0.state0["x"])


def test_adjoint_sweep_restores_the_forward_lists_or_rebuilds_them_alike():
    """The adjoint sweep restores the neighbour lists the forward sweep kept (MDSystem.list_cache_bytes)
    instead of rebuilding them; with no room (0) or room for two lists it rebuilds all or the older
    ones, and every way gives the same loss and gradients, under StoreAll and Binomial."""
    model = _lj_model(temp=2.0)
    ff = ForceField([Morse(D=1.0, alpha=3.0, r0=1.12, cutoff=1.6, shift="force")], model.types, model.box, skin=0.05)
    system = MDSystem(model, ff, dt=0.004, segment=10, observe=("energy",), costs=[PotentialEnergy()])
    one_list = system._entry_bytes()  # a kept list: its rows, their lengths and the positions it came from
    for schedule in (StoreAll(), Binomial(snapshots=2)):
        results, adjoint_builds = [], []
        for room in (MDSystem.list_cache_bytes, 0, 2 * one_list):
            system.list_cache_bytes = room
            rollout = Rollout(system, 50, schedule)
            loss = rollout.forward()
            before = system.rebuilds
            g = rollout.backward()
            adjoint_builds.append(system.rebuilds - before)
            results.append((loss, g))
        for loss, g in results[1:]:
            assert loss == results[0][0]
            for k in g.params:
                assert np.array_equal(g.params[k], results[0][1].params[k]), k
            assert np.array_equal(g.state0["x"], results[0][1].state0["x"])
        forward_builds = 5 + 9  # per segment, plus the skin-triggered ones (at least 9 at skin 0.05)
        if isinstance(schedule, StoreAll):
            assert adjoint_builds[0] == 0 and adjoint_builds[1] >= forward_builds
            assert 0 < adjoint_builds[2] < adjoint_builds[1]
        else:  # recomputation builds the lists again (counted here), their adjoints restore them
            assert adjoint_builds[0] < adjoint_builds[2] <= adjoint_builds[1]
    del system.list_cache_bytes


def test_rdf_and_msd_costs_gradients():
    model = _lj_model(temp=1.2)
    r = np.linspace(0.8, 1.4, 7)
    rdf = RDF(r, width=0.05, every=5)
    target = np.ones(7)
    system = _lj_system(model, dt=0.005, segment=10, rdf=rdf,
                        costs=[RDFMatch(target, 1.0), MSDMatch(0.01, 100.0)],
                        integrator=Langevin(1.2, 2.0, seed=1))
    rollout = Rollout(system, 40, Binomial(2))
    obj = Objective(rollout, ["sigma", "epsilon"])
    rep = gradcheck(obj, obj.x0(), rtol=2e-6, step=1e-6)
    assert rep.ok, str(rep)
    # the accumulated RDF equals the NumPy smoothed RDF of the sampled frames
    ro = Rollout(system, 10, StoreAll())
    ro.forward()
    traj = ro.trajectory("x")
    ref = (rdf_smoothed(traj[5], model.box, r, 0.05) + rdf_smoothed(traj[10], model.box, r, 0.05)) / 2
    np.testing.assert_allclose(RDF.mean(ro.final_state()["rdf"]), ref, rtol=1e-10)
    disp = ro.final_state()["disp"]
    np.testing.assert_allclose(disp, traj[10] - traj[0], atol=1e-12)


def test_bad_inputs():
    model = _lj_model()
    with pytest.raises(ConfigError, match="dt"):
        _lj_system(model, dt=-0.1)
    with pytest.raises(ConfigError, match="mass of atom 3"):
        Model(model.positions, masses=np.r_[1, 1, 1, -1.0, np.ones(28)], box=model.box)
    with pytest.raises(ConfigError, match=r"shape \(n, 3\)"):
        Model(np.zeros((5, 2)))
    with pytest.raises(ConfigError, match="velocities"):
        Model(model.positions, velocities=np.zeros((3, 3)))
    with pytest.raises(ConfigError, match="smaller than twice the cutoff"):
        ForceField([LennardJones(cutoff=2.5)], model.types, model.box)
    with pytest.raises(ConfigError, match="RDF reaches"):
        _lj_system(model, rdf=RDF(np.linspace(0.5, 1.6, 5)))
    with pytest.raises(ConfigError, match="observables"):
        _lj_system(model, observe=("stress",))
    system = _lj_system(model)
    with pytest.raises(ConfigError, match="shape"):
        system.simulate(1, positions=np.zeros((3, 3)))


def test_a_forward_sweep_builds_no_list_twice_from_the_same_positions():
    """A segment that starts where the previous one's last drift rebuilt the list keeps that list
    (the same step, the same positions) instead of building it again; the loss and gradients are
    those of a system that builds at every segment start (no list kept: the same lists, rebuilt)."""
    model = _lj_model(temp=4.0)
    ff = ForceField([LennardJones(1.0, 1.0, cutoff=1.6, shift="force")], model.types, model.box, skin=0.05)
    system = MDSystem(model, ff, dt=0.005, segment=3, observe=("energy",), costs=[PotentialEnergy()])
    built = []
    build = ff.build

    def recording_build(x, slot):
        built.append(x.to_numpy()[slot].tobytes())
        build(x, slot)

    ff.build = recording_build
    rollout = Rollout(system, 60, StoreAll())
    loss = rollout.forward()
    assert len(built) > 20 + 10  # every segment start, plus skin-triggered rebuilds
    assert len(set(built)) == len(built)  # ... none of them from positions already built from
    g = rollout.backward()
    # the adjoint sweep restored kept full twins (the fused steps read no half list); the list in
    # memory is then step 0's, the pairs within the list radius at the initial positions
    nl = ff.nlist
    assert not nl.half_current
    assert np.array_equal(nl.pairs(), brute_force_pairs(model.positions, model.box, nl.rl))
    # the same rollout where every segment start builds: keys never match (see MDSystem._current)
    system._current = lambda x, slot, key: False
    built.clear()
    rollout = Rollout(system, 60, StoreAll())
    assert rollout.forward() == loss
    assert len(set(built)) < len(built)  # segment starts after a skin rebuild built twice
    g0 = rollout.backward()
    for k in g.params:
        assert np.array_equal(g.params[k], g0.params[k]), k
    assert np.array_equal(g.state0["x"], g0.state0["x"])


def test_a_run_after_a_backward_builds_its_own_half_list():
    """After a Binomial backward the list in memory may be a restored full twin only (the half list
    out of date) for step 0 at the initial positions; a run on the tape's kernels from those positions
    must not take it for current: it gives the bits of a fresh system."""
    def make():
        model = _lj_model(temp=2.0)
        ff = ForceField([LennardJones(1.0, 1.0, cutoff=1.6, shift="force")], model.types, model.box, skin=0.05)
        return MDSystem(model, ff, dt=0.004, segment=5, observe=("energy",), costs=[PotentialEnergy()])

    system = make()
    rollout = Rollout(system, 30, Binomial(snapshots=2))
    rollout.forward()
    rollout.backward()
    run = system.simulate(10, fast=False)
    fresh = make().simulate(10, fast=False)
    assert np.array_equal(run["positions"], fresh["positions"])
    assert np.array_equal(run["velocities"], fresh["velocities"])
