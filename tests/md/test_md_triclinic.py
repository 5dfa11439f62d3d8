"""Triclinic (LAMMPS-oriented, lower-triangular) periodic cells: pair energies, forces and
virial against ASE and an all-pairs sum over periodic images, NVE, rollout gradients, ASE
round trip, the cutoff limit of the minimum image; the forward-only fast path of simulate()
(full list in fractional bins with lattice image codes) against brute force, ASE and the tape."""

import numpy as np
import pytest

from diffsim import Objective, Parameter, Rollout, StoreAll, gradcheck, storage
from diffsim.errors import ConfigError
from diffsim.md import ForceField, LennardJones, MDSystem, Model, Morse, maxwell_boltzmann
from diffsim.md.cells import CODE_BITS, HOME
from diffsim.md.forcefield import zero_forces
from diffsim.md.neighbors import brute_force_pairs
from diffsim.md.space import min_image_np
from diffsim.md.tricells import TriclinicFullList

# strongly tilted: every tilt beyond half its length (LAMMPS would refuse to run it without flipping)
CELL = np.array([[6.4, 0.0, 0.0], [3.6, 6.2, 0.0], [-3.4, 3.3, 6.6]])
TILT = [CELL[1, 0], CELL[2, 0], CELL[2, 1]]  # xy, xz, yz


def _positions(seed=0, cell=CELL, grid=4, jitter=0.05):
    g = (np.stack(np.meshgrid(*[np.arange(grid)] * 3, indexing="ij"), -1).reshape(-1, 3) + 0.5) / grid
    frac = g + np.random.default_rng(seed).normal(0, jitter / grid, g.shape)
    return frac @ cell + np.array([3.0, -2.0, 1.0])  # not folded into the cell


def _image_sum(pos, cell, e_np, rc, shift_energy):
    """Energy, forces and virial tensor (xx, yy, zz, xy, xz, yz) summed over every periodic image
    within rc (NumPy, float64)."""
    n = len(pos)
    k = np.arange(-3, 4)
    shifts = np.stack(np.meshgrid(k, k, k, indexing="ij"), -1).reshape(-1, 3) @ cell
    energy, forces, w = 0.0, np.zeros((n, 3)), np.zeros((3, 3))
    ec = e_np(rc) if shift_energy else 0.0
    h = 1e-6
    for i in range(n):
        d = (pos[i] - pos)[:, None, :] - shifts[None]  # (n, images, 3)
        r = np.linalg.norm(d, axis=-1)
        m = (r < rc) & (r > 1e-9)
        rr, dd = r[m], d[m]
        energy += 0.5 * np.sum(e_np(rr) - ec)
        de = (e_np(rr + h) - e_np(rr - h)) / (2 * h)
        fij = -(de / rr)[:, None] * dd
        forces[i] += fij.sum(0)
        w += 0.5 * dd.T @ fij
    return energy, forces, np.array([w[0, 0], w[1, 1], w[2, 2], w[0, 1], w[0, 2], w[1, 2]])


def test_lj_energy_forces_virial_match_ase_on_a_tilted_cell():
    from ase import Atoms
    from ase.calculators.lj import LennardJones as AseLJ

    pos = _positions()
    model = Model(pos, box=CELL)
    assert model.triclinic and model.volume == pytest.approx(np.linalg.det(CELL))
    ff = ForceField([LennardJones(sigma=1.3, cutoff=3.0, shift=True)], model.types, model.box, skin=0.1,
                    tilt=model.tilt)
    assert ff.nlist.method == "brute"
    ev = ff.evaluate(pos)
    atoms = Atoms("Ar64", positions=pos, cell=CELL, pbc=True)
    atoms.calc = AseLJ(sigma=1.3, epsilon=1.0, rc=3.0, smooth=False)  # energy-shifted, plain force cut
    assert ev.energy == pytest.approx(atoms.get_potential_energy(), rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(ev.forces, atoms.get_forces(), rtol=1e-10, atol=1e-11)
    # ASE's stress (xx, yy, zz, yz, xz, xy) is minus the virial part of the pressure tensor
    s = atoms.get_stress(voigt=True)
    np.testing.assert_allclose(ev.pressure_tensor(), -s[[0, 1, 2, 5, 4, 3]], rtol=1e-10, atol=1e-12)
    # the list (built by evaluate) holds exactly the pairs an independent fold finds
    np.testing.assert_array_equal(ff.nlist.pairs(), brute_force_pairs(pos, model.box, ff.nlist.rl, tilt=model.tilt))


def test_morse_against_a_sum_over_periodic_images():
    pos = _positions(seed=1)
    pot = Morse(D=0.7, alpha=2.1, r0=1.7, cutoff=2.8, shift=True)
    ff = ForceField([pot], np.zeros(len(pos), int), CELL.diagonal(), tilt=TILT)
    ev = ff.evaluate(pos)
    e_ref, f_ref, w_ref = _image_sum(pos, CELL, lambda r: Morse._e_np(r, 0.7, 2.1, 1.7), 2.8, True)
    assert ev.energy == pytest.approx(e_ref, rel=1e-12)
    np.testing.assert_allclose(ev.forces, f_ref, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(ev.virial_tensor, w_ref, rtol=1e-7, atol=1e-8)


def test_diagonal_cell_is_bitwise_the_box():
    pos = _positions(cell=np.diag([6.4, 6.2, 6.6]))
    a, b = Model(pos, box=[6.4, 6.2, 6.6]), Model(pos, box=np.diag([6.4, 6.2, 6.6]))
    assert not b.triclinic and np.array_equal(a.box, b.box)
    runs = []
    for m in (a, b):
        m.velocities = maxwell_boltzmann(m.masses, 1.0, seed=2)
        sysm = MDSystem(m, [LennardJones(cutoff=2.5, shift="force")], dt=0.005, observe=("energy",))
        ev = sysm.ff.evaluate(pos)
        run = sysm.simulate(20, record_every=10)
        runs.append((ev.energy, ev.forces, ev.virial_tensor, run["total"], run["positions"]))
    for u, v in zip(*runs, strict=True):
        assert np.array_equal(u, v)


def _tilted_lj(temp=1.0, **kw):
    pos = _positions(seed=3)
    model = Model(pos, box=CELL, velocities=maxwell_boltzmann(np.ones(len(pos)), temp, seed=4))
    return model, MDSystem(model, [LennardJones(sigma=1.3, cutoff=2.8, shift="force")], skin=0.3, **kw)


def test_nve_conserves_energy_in_a_tilted_cell():
    spread = []
    for dt, steps in ((0.004, 200), (0.002, 400)):
        model, system = _tilted_lj(dt=dt, observe=("energy",))
        run = system.simulate(steps, record_every=steps // 40)
        spread.append(np.ptp(run["total"]))
        assert np.ptp(run["kinetic"]) > 200 * spread[-1]  # the jittered grid relaxes: KE swings by ~25
        assert system.rebuilds > 10
    # bounded, second-order error of velocity Verlet (a force that is not -dE/dx would drift at O(1))
    assert spread[1] / model.n < 5e-4, spread
    assert spread[1] < 0.3 * spread[0], spread


def test_rollout_gradient_through_a_tilted_cell():
    from diffsim.md import PotentialEnergy

    _, system = _tilted_lj(dt=0.004, segment=10, observe=("energy",), costs=[PotentialEnergy()])
    obj = Objective(Rollout(system, 30, StoreAll()), ["epsilon", "sigma", Parameter("x", kind="state0")])
    rep = gradcheck(obj, obj.x0(), rtol=2e-6, entries=4, directions=1, step=1e-6)
    assert rep.ok, str(rep)


def test_ase_round_trip_of_a_tilted_cell(tmp_path):
    from ase import Atoms

    rng = np.random.default_rng(5)
    rot = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    rot *= np.sign(np.linalg.det(rot))  # a proper rotation
    from diffsim.md import from_ase, to_ase

    cell = CELL @ rot
    atoms = Atoms("Cu32Ag32", positions=_positions(seed=6) @ rot, cell=cell, pbc=True)
    atoms.set_velocities(rng.normal(0, 0.01, (64, 3)))
    model = from_ase(atoms)
    assert model.triclinic and np.allclose(model.cell, CELL) and model.symbols == ["Cu", "Ag"]
    np.testing.assert_allclose(model.positions, atoms.get_positions() @ rot.T, atol=1e-12)
    back = to_ase(model)
    np.testing.assert_allclose(back.cell.cellpar(), atoms.cell.cellpar(), rtol=1e-12)
    np.testing.assert_allclose(back.get_scaled_positions(), atoms.get_scaled_positions(), atol=1e-12)
    np.testing.assert_allclose(back.get_velocities() @ rot, atoms.get_velocities(), atol=1e-14)
    np.testing.assert_allclose(back.get_all_distances(mic=True), atoms.get_all_distances(mic=True), atol=1e-10)
    assert back.get_chemical_symbols() == atoms.get_chemical_symbols()
    # an extxyz frame folded into the tilted cell: the same fractional positions modulo 1
    import ase.io

    from diffsim.md import write_extxyz

    write_extxyz(tmp_path / "tri.extxyz", model.positions, model, wrap=True)
    read = ase.io.read(tmp_path / "tri.extxyz")
    np.testing.assert_allclose(read.cell[:], model.cell, atol=1e-9)
    frac = read.cell.scaled_positions(read.get_positions())
    assert np.all((frac > -1e-9) & (frac < 1 + 1e-9))
    dfrac = frac - back.get_scaled_positions()
    np.testing.assert_allclose(dfrac - np.round(dfrac), 0.0, atol=1e-8)


def test_cutoff_beyond_the_minimum_image_and_bad_cells():
    pos = _positions()
    with pytest.raises(ConfigError, match=r"cutoff 3\.5 \+ skin 0\.3 = 3\.8 is beyond .* 3\.1 = half the smallest length"):
        ForceField([LennardJones(cutoff=3.5)], np.zeros(64, int), CELL.diagonal(),
                   tilt=TILT)
    with pytest.raises(ConfigError, match="lower-triangular"):
        Model(pos, box=CELL.T)
    with pytest.raises(ConfigError, match="periodic on every axis"):
        Model(pos, box=[6.4, 6.2, 0.0], tilt=[1.0, 0.0, 0.0])
    with pytest.raises(ConfigError, match="overlap"):
        Model(np.array([[0.0, 0.0, 0.0], [6.4 + 3.6 - 3.4 + 1e-4, 6.2 + 3.3, 6.6]]), box=CELL)
    with pytest.raises(ConfigError, match="triclinic cell list needs"):
        ForceField([LennardJones(cutoff=2.5)], np.zeros(64, int), CELL.diagonal(), tilt=TILT, method="cells")


def test_fractional_cell_list_equals_brute_force():
    pos = _positions(seed=8, grid=6)
    pos[::7] += np.array([1, -2, 1]) @ CELL  # some atoms several cells away (positions are never wrapped)
    lists = [ForceField([LennardJones(cutoff=1.1)], np.zeros(len(pos), int), CELL.diagonal(), skin=0.3, tilt=TILT,
                        method=m) for m in ("auto", "brute")]
    assert lists[0].nlist.method == "cells"
    ev = [ff.evaluate(pos) for ff in lists]
    np.testing.assert_array_equal(lists[0].nlist.pairs(), lists[1].nlist.pairs())
    np.testing.assert_array_equal(lists[0].nlist.pairs(), brute_force_pairs(pos, CELL.diagonal(), 1.4, tilt=TILT))
    assert ev[0].energy == pytest.approx(ev[1].energy, rel=1e-13)
    np.testing.assert_allclose(ev[0].forces, ev[1].forces, rtol=1e-12, atol=1e-12 * np.abs(ev[1].forces).max())
    # a run with rebuilds on moving (unwrapped) atoms: the same trajectory from either list
    model = Model(pos, box=CELL, velocities=maxwell_boltzmann(np.ones(len(pos)), 1.0, seed=9))
    finals = []
    for m in ("auto", "brute"):
        ff = ForceField([LennardJones(cutoff=1.1, shift="force")], model.types, model.box, skin=0.3, tilt=TILT,
                        method=m)
        system = MDSystem(model, ff, dt=0.002)
        finals.append(system.simulate(60)["positions"])
        assert system.rebuilds > 2
    np.testing.assert_allclose(finals[0], finals[1], atol=1e-9)


def test_bonds_and_angles_across_tilted_boundaries_equal_the_unwrapped_molecule():
    from diffsim.md import HarmonicAngle, HarmonicBond

    rng = np.random.default_rng(7)
    mol = np.cumsum(rng.normal(0, 0.7, (6, 3)), axis=0)  # a compact chain, bonds ~1.2 long
    scattered = mol + rng.integers(-2, 3, (6, 3)) @ CELL  # each atom moved by a lattice vector

    def terms():
        return [HarmonicBond([[0, 1], [1, 2], [2, 3], [3, 4], [4, 5]], k=40.0, r0=1.1),
                HarmonicAngle([[0, 1, 2], [1, 2, 3], [3, 4, 5]], k=6.0, theta0=1.9)]

    tilted = ForceField(terms(), np.zeros(6, int), CELL.diagonal(), tilt=TILT)
    ev = tilted.evaluate(scattered)
    ref = ForceField(terms(), np.zeros(6, int), None).evaluate(mol)  # open boundaries, no images
    assert ev.energy == pytest.approx(ref.energy, rel=1e-12)
    np.testing.assert_allclose(ev.forces, ref.forces, atol=1e-10 * np.abs(ref.forces).max())
    np.testing.assert_allclose(ev.virial_tensor, ref.virial_tensor, atol=1e-10 * np.abs(ref.virial_tensor).max())


# ------------------------------------------------------------------ the fast path of simulate()

BIG = 2.0 * CELL  # the same strongly tilted shape, >= 3 bins of cutoff + skin = 2.3 per axis
BIG_TILT = [BIG[1, 0], BIG[2, 0], BIG[2, 1]]


def _slots(arr):
    a = storage.slots(arr.shape, 1, False)
    a.from_numpy(arr[None])
    return a


def _sheared_fluid(seed, temp=1.0, **kw):
    """343 atoms on a jittered grid of the tilted cell BIG (not folded into it), LJ sigma 1.5
    (nearest neighbours near the minimum), cutoff 2.0, skin 0.3."""
    pos = _positions(seed=seed, cell=BIG, grid=7)
    model = Model(pos, box=BIG, velocities=maxwell_boltzmann(np.ones(len(pos)), temp, seed=seed + 1))
    return model, MDSystem(model, [LennardJones(sigma=1.5, cutoff=2.0, shift=kw.pop("shift", "force"))], skin=0.3,
                           dt=0.004, **kw)


def test_fast_list_of_a_tilted_cell_equals_brute_force_with_lattice_image_codes():
    pos = _positions(seed=12, cell=BIG, grid=7)
    pos += np.random.default_rng(13).integers(-3, 4, (len(pos), 3)) @ BIG  # unwrapped, cells away
    n, box = len(pos), BIG.diagonal()
    x = _slots(pos)
    cl = TriclinicFullList(n, 2.0, 0.3, box, BIG_TILT)
    cl.build(x, 0)
    assert np.array_equal(cl.pairs(), brute_force_pairs(pos, box, 2.3, tilt=BIG_TILT))
    rows = cl.rows()
    assert sum(len(r) for r in rows.values()) == 2 * len(cl.pairs())  # every pair at both atoms
    wrapped = x.to_numpy()[0]
    frac = wrapped @ np.linalg.inv(BIG)
    assert np.all((frac > -1e-12) & (frac < 1 + 1e-12))  # folded into the cell in place
    for i in range(0, n, 5):
        assert len(set(rows[i].tolist())) == len(rows[i])
        for c in rows[i]:
            j, code = int(c) >> CODE_BITS, int(c) & 63
            w = np.array([(code >> (2 * k)) & 3 for k in range(3)]) - 1  # lattice vector w @ BIG
            d = wrapped[i] - wrapped[j] - w @ BIG
            np.testing.assert_allclose(d, min_image_np(pos[i] - pos[j], box, BIG_TILT), atol=1e-11)
    nbr, nhome, nimage = (a.to_numpy() for a in (cl.nbr, cl.nhome, cl.nimage))
    assert all(np.all(nbr[p, :nhome[p]] & 63 == HOME) and np.all(nbr[p, cl.capacity - nimage[p]:] & 63 != HOME)
               for p in range(n))
    assert 0 < nimage.sum() < nhome.sum()
    cl.unwrap(x, 0)
    np.testing.assert_allclose(x.to_numpy()[0], pos, rtol=0, atol=1e-11)
    with pytest.raises(ConfigError, match="3 bins"):
        TriclinicFullList(n, 2.5, 0.3, CELL.diagonal(), TILT)


def test_fast_path_forces_and_pressure_tensor_equal_ase_on_a_sheared_cell():
    from ase import Atoms
    from ase.calculators.lj import LennardJones as AseLJ

    model, system = _sheared_fluid(seed=14, shift=True)  # energy-shifted, plain force cut: ASE's smooth=False
    pos = model.positions
    cl = system.forward_runner.full_list()
    assert isinstance(cl, TriclinicFullList)
    x, f = _slots(pos), _slots(np.zeros_like(pos))
    pe, vir = _slots(np.zeros(model.n)), _slots(np.zeros((model.n, 6)))
    cl.build(x, 0)
    system.ff.prepare_gather()
    zero_forces(f, 0, pe, vir, 0, 1)
    system.ff.gather_forces(cl, x, 0, f, pe, vir, 1)  # the fast path's kernels
    atoms = Atoms(f"Ar{model.n}", positions=pos, cell=BIG, pbc=True, masses=np.ones(model.n))
    atoms.set_velocities(model.velocities)  # reduced units: m v^2 in epsilon, as ASE's in eV
    atoms.calc = AseLJ(sigma=1.5, epsilon=1.0, rc=2.0, smooth=False)
    forces = atoms.get_forces()
    assert np.abs(forces).max() > 1.0
    np.testing.assert_allclose(f.to_numpy()[0], forces, rtol=0, atol=1e-11 * np.abs(forces).max())
    assert pe.to_numpy()[0].sum() == pytest.approx(atoms.get_potential_energy(), rel=1e-12)
    # ASE's stress (xx, yy, zz, yz, xz, xy) is minus the virial part of the pressure tensor
    w = vir.to_numpy()[0].sum(0) / model.volume
    np.testing.assert_allclose(w, -atoms.get_stress(voigt=True)[[0, 1, 2, 5, 4, 3]], rtol=1e-10, atol=1e-12)
    # a frame of simulate(): the pressure tensor with its kinetic part, ASE's with the ideal gas
    run = system.simulate(0, record_every=1)
    p_ase = -atoms.get_stress(voigt=True, include_ideal_gas=True)[[0, 1, 2, 5, 4, 3]]
    assert np.abs(p_ase[3:]).max() > 0.01  # the shear components are not zero
    np.testing.assert_allclose(run["pressure_tensor"][0], p_ase, rtol=1e-10, atol=1e-12)
    assert run["potential"][0] == pytest.approx(atoms.get_potential_energy(), rel=1e-12)


def test_fast_simulate_in_a_tilted_cell_follows_the_tape():
    """simulate() on the fast path against the differentiable path (a StoreAll rollout of the tape's
    kernels and its thermo) on the same tilted cell: positions, velocities, energies and the
    pressure tensor of every 10th step, while atoms cross the cell's faces and the lists rebuild."""
    model, system = _sheared_fluid(seed=16, temp=1.5, observe=("pressure",))
    steps = 120
    run = system.simulate(steps, record_every=10)
    cells = system.forward_runner.cells
    assert isinstance(cells, TriclinicFullList) and cells.builds >= 3
    rollout = Rollout(system, steps, StoreAll())
    rollout.forward()
    xs, vs = rollout.trajectory("x")[::10], rollout.trajectory("v")[::10]
    th = system.thermo(rollout)
    frames = run["frames"]
    np.testing.assert_allclose(frames.positions, xs, rtol=0, atol=1e-10)
    np.testing.assert_allclose(frames.velocities, vs, rtol=0, atol=1e-10)
    np.testing.assert_allclose(run["positions"], xs[-1], rtol=0, atol=1e-10)
    for k in ("potential", "kinetic", "pressure", "pressure_tensor"):
        np.testing.assert_allclose(run[k], th[k][::10], rtol=1e-10, atol=1e-11, err_msg=k)
    assert np.abs(run["pressure_tensor"][:, 3:]).max() > 0.01
    # continuous (unwrapped) paths: some atoms crossed a face of the cell (their fractional
    # coordinates passed an integer), none jumped by a lattice vector
    frac = frames.positions @ np.linalg.inv(BIG)
    assert np.any(np.floor(frac[-1]) != np.floor(frac[0]))
    assert np.abs(np.diff(frames.positions, axis=0)).max() < 1.0
    # the tape's kernels on the forward-only path (fast=False) take the same steps
    slow = system.simulate(steps, record_every=60, fast=False)
    np.testing.assert_allclose(slow["positions"], run["positions"], rtol=0, atol=1e-10)


def test_fcc_argon_in_its_primitive_cell_has_the_cubic_cells_energy_and_pressure_and_conserves_energy():
    """One crystal, two cells: fcc argon as 4x4x4 cubic cells (orthorhombic) and as 6x6x6 primitive
    rhombohedral cells (triclinic, through ASE) must have the same energy per atom and the same
    (isotropic) pressure on the fast path; a thermal NVE run in the tilted cell conserves energy."""
    pytest.importorskip("ase")
    from ase.build import bulk
    from ase.units import fs

    from diffsim.md import from_ase

    def frames(atoms, steps):
        model = from_ase(atoms)
        lj = LennardJones(epsilon=0.0104, sigma=3.40, cutoff=8.5, shift="energy")  # eV, Angstrom
        system = MDSystem(model, ForceField([lj], model.types, model.box, tilt=model.tilt), dt=2.0)
        return system.simulate(steps, record_every=max(steps // 10, 1))["frames"]

    cubic = bulk("Ar", "fcc", a=5.26, cubic=True).repeat((4, 4, 4))
    prim = bulk("Ar", "fcc", a=5.26).repeat((6, 6, 6))
    assert not np.allclose(prim.cell.array, np.diag(np.diag(prim.cell.array)))  # a tilted cell
    fc, fp = frames(cubic, 0), frames(prim, 0)
    assert fp.potential[0] / len(prim) == pytest.approx(fc.potential[0] / len(cubic), rel=1e-12)
    assert fp.pressure[0] == pytest.approx(fc.pressure[0], rel=1e-9)
    np.testing.assert_allclose(fp.pressure_tensor[0][:3], fc.pressure[0], rtol=1e-9)
    np.testing.assert_allclose(fp.pressure_tensor[0][3:], 0.0, atol=1e-12 * abs(fc.pressure[0]) + 1e-15)

    v = maxwell_boltzmann(prim.get_masses(), 80.0, seed=0, units="metal")  # K -> Angstrom/fs
    prim.set_velocities(v / fs)  # ASE's own velocity unit
    f = frames(prim, 1000)  # 2 ps
    assert f.temperature.mean() > 20.0  # the atoms do move
    assert (f.total.max() - f.total.min()) / len(prim) < 2e-6  # eV per atom
