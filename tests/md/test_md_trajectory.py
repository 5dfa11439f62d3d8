"""Trajectories and the pressure tensor: frames of simulate(record_every=k) against stepping by
hand and against the force field evaluated on each frame, files written through ASE and read
back, thermo() on the tape, and the differentiable pressure cost against central differences."""

import numpy as np
import pytest

from diffsim import Objective, Rollout, StoreAll, gradcheck
from diffsim.errors import ConfigError
from diffsim.md import (
    UNITS,
    ForceField,
    Frames,
    Langevin,
    LennardJones,
    MDSystem,
    Model,
    PressureMatch,
    fcc_lattice,
    maxwell_boltzmann,
)

RC, SKIN = 1.6, 0.2


def _system(cells, seed=0, **kw):
    pos, box = fcc_lattice((cells,) * 3, 0.8442)
    rng = np.random.default_rng(seed)
    pos = pos + rng.normal(0, 0.04, pos.shape)
    masses = rng.uniform(1.0, 2.0, len(pos))
    model = Model(pos, masses=masses, box=box, velocities=maxwell_boltzmann(masses, 1.2, seed=seed))
    ff = ForceField([LennardJones(cutoff=RC, shift="force")], model.types, box, skin=SKIN)
    return MDSystem(model, ff, dt=0.005, **kw)


def _check_frames_against_the_force_field(system, frames):
    model = system.model
    for k in range(len(frames)):
        ev = system.ff.evaluate(frames.positions[k])
        assert frames.potential[k] == pytest.approx(ev.energy, rel=1e-11)
        p = ev.pressure_tensor(model.masses, frames.velocities[k])
        np.testing.assert_allclose(frames.pressure_tensor[k], p, rtol=1e-10, atol=1e-12)
        assert frames.pressure[k] == pytest.approx(p[:3].mean(), rel=1e-10)
        ke = 0.5 * np.sum(model.masses[:, None] * frames.velocities[k] ** 2)
        assert frames.kinetic[k] == pytest.approx(ke, rel=1e-12)
        assert frames.total[k] == pytest.approx(ke + ev.energy, rel=1e-11)


@pytest.mark.parametrize("cells,suffix", [(4, ".extxyz"), (2, ".traj")], ids=["fast-extxyz", "tape-kernels-traj"])
def test_frames_equal_stepping_by_hand_and_the_written_file(cells, suffix, tmp_path):
    """4^3 cells run the fast path (full list, deferred kicks, wrapped positions), 2^3 the
    tape's kernels; both without observe=. Stepping by hand: simulate(10) three times, each
    from the state the last returned."""
    ase_io = pytest.importorskip("ase.io")
    system = _system(cells)
    path = tmp_path / f"run{suffix}"
    run = system.simulate(30, record_every=10, trajectory=path)
    frames = run["frames"]
    assert isinstance(frames, Frames) and frames.positions.shape == (4, system.n, 3)
    np.testing.assert_array_equal(frames.step, [0, 10, 20, 30])
    np.testing.assert_allclose(frames.time, frames.step * 0.005)
    assert run["units"] == frames.units and frames.units["pressure"] == "epsilon/sigma^3"
    np.testing.assert_array_equal(run["pressure_tensor"], frames.pressure_tensor)
    state = {"x": system.model.positions, "v": system.model.velocities}
    np.testing.assert_allclose(frames.positions[0], state["x"], rtol=0, atol=1e-14)  # wrapped and unwrapped
    for k in range(3):
        hand = system.simulate(10, positions=state["x"], velocities=state["v"])
        state = {"x": hand["positions"], "v": hand["velocities"]}
        # the same dynamics; the fast path's neighbour rows differ (rebuilt at each call), so
        # sums may differ in the last bits
        np.testing.assert_allclose(frames.positions[k + 1], state["x"], rtol=0, atol=1e-11)
        np.testing.assert_allclose(frames.velocities[k + 1], state["v"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(run["positions"], frames.positions[-1], rtol=0, atol=1e-14)
    assert np.abs(frames.positions[-1] - frames.positions[0]).max() > 0.05
    _check_frames_against_the_force_field(system, frames)
    # the file, read back by ASE
    back = ase_io.read(path, ":")
    assert len(back) == 4
    digits = 1e-8 if suffix == ".extxyz" else 1e-13  # ASE's extxyz writer keeps 8 decimals; .traj is binary
    for k, atoms in enumerate(back):
        np.testing.assert_allclose(atoms.get_positions(), frames.positions[k], rtol=0, atol=digits)
        np.testing.assert_allclose(atoms.get_velocities(), frames.velocities[k], rtol=0, atol=3 * digits)  # p / m
        assert atoms.get_potential_energy() == pytest.approx(frames.potential[k], rel=1e-9)
        assert atoms.info["pxy"] == pytest.approx(frames.pressure_tensor[k, 3], rel=1e-9)
        # ASE's stress with the ideal-gas part is minus the pressure tensor (ASE order yz, xz, xy)
        stress = atoms.get_stress(include_ideal_gas=True)
        np.testing.assert_allclose(-stress, frames.pressure_tensor[k][[0, 1, 2, 5, 4, 3]], rtol=1e-7, atol=1e-7)
    # a streamed run need not keep its frames
    lean = system.simulate(20, record_every=10, trajectory=tmp_path / f"lean{suffix}", keep_frames=False)
    assert lean["frames"].positions is None and len(lean["frames"]) == 3
    assert len(ase_io.read(tmp_path / f"lean{suffix}", ":")) == 3


def test_langevin_run_continued_with_first_step_equals_one_run():
    """Langevin noise is keyed by (seed, step, atom): a run continued in pieces numbers its steps
    on (first_step) and follows the single run; restarting the count repeats the noise."""
    system = _system(2, integrator=Langevin(1.2, 2.0, seed=4))
    run = system.simulate(20, record_every=10)
    a = system.simulate(10)
    b = system.simulate(10, positions=a["positions"], velocities=a["velocities"], first_step=10, record_every=10)
    np.testing.assert_allclose(b["positions"], run["positions"], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(b["step"], [10, 20])
    np.testing.assert_allclose(b["frames"].pressure_tensor[-1], run["frames"].pressure_tensor[-1], rtol=1e-10)
    repeated = system.simulate(10, positions=a["positions"], velocities=a["velocities"])
    assert np.abs(repeated["positions"] - run["positions"]).max() > 1e-3


def test_thermo_pressure_tensor_on_the_tape_and_its_cost_gradient():
    scalar = _system(2, observe=("energy",))
    system = _system(2, observe=("pressure",))
    rollout = Rollout(system, 20, StoreAll())
    rollout.forward()
    th = system.thermo(rollout)
    xs, vs = rollout.trajectory("x"), rollout.trajectory("v")
    for t in (0, 7, 20):
        p = system.ff.evaluate(xs[t]).pressure_tensor(system.model.masses, vs[t])
        np.testing.assert_allclose(th["pressure_tensor"][t], p, rtol=1e-10, atol=1e-12)
    assert th["units"]["pressure"] == "epsilon/sigma^3"
    np.testing.assert_allclose(th["pressure"], th["pressure_tensor"][:, :3].mean(1), rtol=1e-12)
    # observe=("energy",) keeps the scalar virial only (2 atomic adds per pair, not 12): same pressure
    light = Rollout(scalar, 20, StoreAll())
    light.forward()
    th1 = scalar.thermo(light)
    assert "pressure_tensor" not in th1 and light.trajectory("vir").shape[-1] == 1
    np.testing.assert_allclose(th1["pressure"], th["pressure"], rtol=1e-10, atol=1e-12)
    # matching the whole tensor (off-diagonal targets too) differentiates through forces and virials
    target = th["pressure_tensor"][-1] + np.array([0.3, -0.2, 0.1, 0.05, -0.05, 0.02])
    cost_system = _system(2, costs=[PressureMatch(target, weight=2.0)])
    assert "pressure" in cost_system.observe
    obj = Objective(Rollout(cost_system, 20, StoreAll()), ["epsilon", "sigma"])
    loss, _ = obj(obj.x0())
    assert loss == pytest.approx(2.0 * np.sum((target - th["pressure_tensor"][-1]) ** 2), rel=1e-10)
    rep = gradcheck(obj, obj.x0(), rtol=1e-6, step=1e-6)
    assert rep.ok, str(rep)


def test_trajectory_and_pressure_bad_input(tmp_path):
    system = _system(2)
    with pytest.raises(ConfigError, match="record_every"):
        system.simulate(5, trajectory=tmp_path / "a.extxyz")
    with pytest.raises(ConfigError, match=r"\.traj"):
        system.simulate(5, record_every=1, trajectory=tmp_path / "a.pdb")
    for suffix in (".extxyz", ".traj"):  # refused before the first step, nothing is run
        with pytest.raises(ConfigError, match=r"trajectory=.*missing.*cannot be written.*directory that exists"):
            system.simulate(5, record_every=1, trajectory=tmp_path / "missing" / f"a{suffix}")
    with pytest.raises(ConfigError, match="PressureMatch target"):
        PressureMatch([1.0, 2.0])
    with pytest.raises(ConfigError, match=r"observe=\('energy',\)\) or \('pressure',\)"):
        system.thermo(Rollout(system, 2, StoreAll()))
    assert UNITS["metal"].pressure_in_bar == pytest.approx(1.602176634e6)
