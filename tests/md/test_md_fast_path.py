"""The forward-only fast path of MDSystem.simulate: full neighbour list with image codes
(diffsim.md.cells) and gather force kernels, checked against brute force, the differentiable
kernels and the tape-kernel path."""

import numpy as np
import pytest

import diffsim.md.cells as cells_module
import diffsim.md.runner as runner_module
from diffsim import storage
from diffsim.errors import ConfigError, SimulationDiverged
from diffsim.md import (
    Berendsen,
    ForceField,
    HarmonicBond,
    Langevin,
    LennardJones,
    MDSystem,
    Model,
    Morse,
    SoftSphere,
    brute_force_pairs,
    fcc_lattice,
    maxwell_boltzmann,
)
from diffsim.md.cells import CODE_BITS, GATHER_PAD, HOME, FullNeighborList
from diffsim.md.forcefield import zero_forces

RC, SKIN = 1.6, 0.2


def _fluid(cells=4, jitter=0.05, temp=1.2, seed=0, types=None):
    pos, box = fcc_lattice((cells,) * 3, 0.8442)
    rng = np.random.default_rng(seed)
    pos = pos + rng.normal(0, jitter, pos.shape)
    return Model(pos, box=box, types=types, velocities=maxwell_boltzmann(np.ones(len(pos)), temp, seed=seed))


def _slots(arr):
    a = storage.slots(arr.shape, 1, False)
    a.from_numpy(arr[None])
    return a


@pytest.mark.parametrize("method,tasks,serial", [("full", 1, True), ("half", 1, True), ("half", 2, True),
                                                 ("half", 2, False)])
def test_full_list_equals_brute_force_with_image_codes(method, tasks, serial, monkeypatch):
    # serial: the bookkeeping loops (binning, scan, sort, row ends) on the launching thread, as up
    # to cells.SERIAL_ATOMS atoms; else in Taichi's parallel loops, as for larger systems
    monkeypatch.setattr(cells_module, "SERIAL_ATOMS", 10 ** 9 if serial else 0)
    model = _fluid(cells=5)  # 9 cell columns along x: room for two slabs of the half build
    n, box = model.n, model.box
    rng = np.random.default_rng(1)
    # unwrapped positions several boxes away, as after a long run
    shifts = rng.integers(-3, 4, (n, 3))
    pos = model.positions + shifts * box
    x = _slots(pos)
    cl = FullNeighborList(n, RC, SKIN, box, method=method, tasks=tasks)
    assert cl.method == method and cl.tasks == tasks
    cl.build(x, 0)
    assert np.array_equal(cl.pairs(), brute_force_pairs(pos, box, RC + SKIN))
    rows = cl.rows()
    assert sum(len(r) for r in rows.values()) == 2 * len(cl.pairs())  # full list: every pair at both atoms
    wrapped = x.to_numpy()[0]
    assert np.all((wrapped >= 0) & (wrapped <= box))
    for i in range(0, n, 7):
        assert len(set(rows[i].tolist())) == len(rows[i])  # no entry twice
        for c in rows[i]:
            j, code = int(c) >> CODE_BITS, int(c) & 63
            image = np.array([(code >> (2 * k)) & 3 for k in range(3)]) - 1
            d = wrapped[i] - wrapped[j] - image * box
            d_min = pos[i] - pos[j] - box * np.round((pos[i] - pos[j]) / box)
            np.testing.assert_allclose(d, d_min, atol=1e-12)
    nhome, nimage, atoms = (a.to_numpy() for a in (cl.nhome, cl.nimage, cl.atoms))
    assert 0 < nimage.sum() < nhome.sum()
    if cl.direct:
        # the gather's rows, written by the build ("half"): a neighbour in the home box as its
        # atom index, one through an image as a ghost slot n + g of a code other than home
        # (rows() decoded them above, so each slot is that of the right atom and code), then
        # pads (the far slot, the last of xg) up to a multiple of GATHER_PAD where the width allows
        rows_ = cl.ent.to_numpy().reshape(n, cl.capacity)
        ent = np.concatenate([rows_[p, :nhome[p] + nimage[p]] for p in range(n)])
        assert (ent < n).sum() == nhome.sum() and (ent >= n).sum() == nimage.sum()
        assert np.all(cl.gcode.to_numpy()[ent[ent >= n] - n] != HOME)
        for p in range(n):
            m = nhome[p] + nimage[p]
            end = min(-(-m // GATHER_PAD) * GATHER_PAD, cl.capacity)
            assert np.all(rows_[p, m:end] == cl.far_slot())
    else:
        nbr = cl.nbr.to_numpy()
        # home-box neighbours at the front of each row, those through an image at the back
        codes_of = {int(atoms[p]): (nbr[p, :nhome[p]] & 63, nbr[p, cl.capacity - nimage[p]:] & 63) for p in range(n)}
        assert all(np.all(front == HOME) and np.all(back != HOME) for front, back in codes_of.values())
    cl.unwrap(x, 0)
    np.testing.assert_allclose(x.to_numpy()[0], pos, rtol=0, atol=1e-12)


def test_half_build_ghost_slots_hold_atoms_on_the_faces():
    # the half build places ghost slots from positions (an image per axis within a list radius of
    # a face): atoms on a face and a list radius from one must each get the slot their neighbours
    # use, and the gather's forces must equal the tape's
    rl = RC + SKIN
    box = np.array([2.6, 2.8, 3.1]) * rl
    # pairs across each face at just under rl: atom a a list radius (less 1e-6) inside, atom b on
    # the opposite face, so that b sees a through the image one box up (down)
    frac = [(0.2, 0.25), (0.2, 0.75), (0.5, 0.25), (0.5, 0.75), (0.8, 0.25), (0.8, 0.75)]  # the other two axes
    edge = []
    for k in range(3):
        o1, o2 = [m for m in range(3) if m != k]
        for q, (ua, ub) in enumerate([(rl * (1 - 1e-6), np.nextafter(box[k], 0.0)), (box[k] - rl * (1 - 1e-6), 0.0)]):
            for u in (ua, ub):
                p = np.zeros(3)
                p[k], p[o1], p[o2] = u, frac[2 * k + q][0] * box[o1], frac[2 * k + q][1] * box[o2]
                edge.append(p)
    rng = np.random.default_rng(4)
    pos = np.concatenate([np.array(edge), rng.uniform(0, 1, (300, 3)) * box])
    # remove pairs closer than 0.7 (the LJ forces would be huge) by dropping the later atom
    keep = []
    for i in range(len(pos)):
        d = pos[keep] - pos[i]
        d -= box * np.round(d / box)
        if not keep or np.min(np.sum(d * d, 1)) > 0.49:
            keep.append(i)
    assert keep[:12] == list(range(12))
    pos = pos[keep]
    n = len(pos)
    x = _slots(pos)
    cl = FullNeighborList(n, RC, SKIN, box, method="half", tasks=2)
    cl.build(x, 0)
    assert cl.direct
    assert np.array_equal(cl.pairs(), brute_force_pairs(pos, box, rl))
    wrapped, rows = x.to_numpy()[0], cl.rows()
    for i in range(n):
        for c in rows[i]:
            j, code = int(c) >> CODE_BITS, int(c) & 63
            image = np.array([(code >> (2 * k)) & 3 for k in range(3)]) - 1
            d = wrapped[i] - wrapped[j] - image * box
            assert np.sum(d * d) < rl * rl * (1 + 1e-9)
    model = Model(pos, box=box)
    ff = ForceField([LennardJones(1.0, 1.0, cutoff=RC)], model.types, model.box, skin=SKIN)
    f, pe, vir = _slots(np.zeros((n, 3))), _slots(np.zeros(n)), _slots(np.zeros((n, 6)))
    ff.prepare_gather()
    zero_forces(f, 0, pe, vir, 0, 1)
    ff.gather_forces(cl, x, 0, f, pe, vir, 1)
    ref = ff.evaluate(wrapped)
    np.testing.assert_allclose(f.to_numpy()[0], ref.forces, rtol=0, atol=1e-11 * np.abs(ref.forces).max())


@pytest.mark.parametrize("method", ["full", "half"])
def test_full_list_grows_and_rejects_small_boxes(method):
    model = _fluid(cells=5)
    cl = FullNeighborList(model.n, RC, SKIN, model.box, capacity=4, method=method, tasks=2)
    cl.build(_slots(model.positions), 0)
    assert cl.capacity >= cl.max_count > 4
    assert np.array_equal(cl.pairs(), brute_force_pairs(model.positions, model.box, RC + SKIN))
    with pytest.raises(ConfigError, match="at least 2.5"):
        FullNeighborList(10, 2.5, 0.3, np.array([6.0, 10.0, 10.0]))


@pytest.mark.parametrize("make", [
    lambda: LennardJones(1.0, 1.0, cutoff=RC),
    lambda: LennardJones([[1.0, 0.7], [0.7, 1.3]], [[1.0, 0.9], [0.9, 1.1]], cutoff=RC, shift=True),
    lambda: LennardJones(1.0, 1.0, cutoff=[[RC, 1.3], [1.3, 1.5]], shift="force"),
    lambda: Morse(0.8, 2.0, 1.1, cutoff=RC, shift="force"),
    lambda: SoftSphere(1.0, 0.9, exponent=9.0, cutoff=RC),
], ids=["lj", "lj-2types-energy-shift", "lj-2types-force-shift", "morse", "soft"])
def test_gather_forces_equal_the_differentiable_kernels(make):
    types = np.arange(256) % 2
    model = _fluid(types=types)
    ff = ForceField([make()], model.types, model.box, skin=SKIN)
    ref = ff.evaluate(model.positions)
    x, f = _slots(model.positions), _slots(np.zeros((model.n, 3)))
    pe, vir = _slots(np.zeros(model.n)), _slots(np.zeros((model.n, 6)))
    cl = FullNeighborList(model.n, ff.cutoff, SKIN, model.box)
    cl.build(x, 0)
    ff.prepare_gather()
    zero_forces(f, 0, pe, vir, 0, 1)
    ff.gather_forces(cl, x, 0, f, pe, vir, 1)
    scale = np.abs(ref.forces).max()
    np.testing.assert_allclose(f.to_numpy()[0], ref.forces, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(pe.to_numpy()[0], ref.energies, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(vir.to_numpy()[0], ref.atom_virials, rtol=1e-11, atol=1e-13)


def _system(model, integrator=None, potentials=None, observe=("energy",)):
    pots = potentials or [LennardJones(cutoff=RC, shift="force")]
    ff = ForceField(pots, model.types, model.box, skin=SKIN)
    return MDSystem(model, ff, integrator=integrator, dt=0.005, observe=observe)


def test_fast_simulate_gives_each_atom_its_path_whatever_the_numbering():
    # the gather keeps positions in the list's sorted order (xg, refreshed through row_of): the
    # same binary fluid with its atoms numbered at random gives every atom the same path
    model = _fluid(types=np.arange(256) % 2)
    perm = np.random.default_rng(3).permutation(model.n)
    shuffled = Model(model.positions[perm], box=model.box, types=model.types[perm],
                     velocities=model.velocities[perm])
    pots = [LennardJones([[1.0, 0.7], [0.7, 1.3]], [[1.0, 0.9], [0.9, 1.1]], cutoff=RC, shift="force")]
    a = _system(model, potentials=pots).simulate(200, record_every=100)
    b = _system(shuffled, potentials=pots).simulate(200, record_every=100)
    assert np.abs(a["positions"] - model.positions).max() > 0.1
    np.testing.assert_allclose(b["positions"], a["positions"][perm], rtol=0, atol=1e-9)
    np.testing.assert_allclose(b["velocities"], a["velocities"][perm], rtol=0, atol=1e-8)
    np.testing.assert_allclose(b["potential"], a["potential"], rtol=1e-10)


@pytest.mark.parametrize("integrator,thermostat", [
    (None, None), (Langevin(temperature=1.0, friction=2.0, seed=5), None), (None, Berendsen(0.8, 0.05)),
], ids=["nve", "langevin", "berendsen"])
def test_fast_simulate_follows_the_tape_kernels(integrator, thermostat):
    model = _fluid()
    system = _system(model, integrator)
    # atoms cross the periodic boundary during the run: unwrapping must give continuous paths
    fast = system.simulate(300, record_every=50, thermostat=thermostat)
    assert system.forward_runner.cells is not None and system.forward_runner.cells.builds > 5
    slow = system.simulate(300, record_every=50, thermostat=thermostat, fast=False)
    np.testing.assert_allclose(fast["positions"], slow["positions"], rtol=0, atol=1e-8)
    np.testing.assert_allclose(fast["velocities"], slow["velocities"], rtol=0, atol=1e-7)
    for k in ("potential", "kinetic", "pressure", "temperature", "pressure_tensor"):
        np.testing.assert_allclose(fast[k], slow[k], rtol=1e-9, atol=1e-12, err_msg=k)
    moved = np.abs(fast["positions"] - model.positions).max()
    assert moved > 0.3  # far enough to have crossed cell and box faces


def test_lagged_steps_and_serial_bookkeeping_give_the_same_bits(monkeypatch):
    """Up to LAGGED_ATOMS a step is one loop that gathers the forces at the current positions and
    then kicks and drifts (diffsim.md.step); above, two loops (kick-drift, then the gather at the
    new positions). The same sums regrouped: the same bits, through rebuilds, frames and a
    binary mixture's table lookups; and the same with the list's bookkeeping loops parallel."""
    model = _fluid(types=np.arange(256) % 2)
    pots = [LennardJones([[1.0, 0.7], [0.7, 1.3]], [[1.0, 0.9], [0.9, 1.1]], cutoff=RC, shift="force")]
    runs = {}
    for lagged, serial in ((True, True), (False, True), (True, False)):
        monkeypatch.setattr(runner_module, "LAGGED_ATOMS", 10 ** 9 if lagged else 0)
        monkeypatch.setattr(cells_module, "SERIAL_ATOMS", 10 ** 9 if serial else 0)
        system = _system(model, potentials=pots)
        out = system.simulate(250, record_every=100)
        assert system.forward_runner.cells.builds > 5
        runs[lagged, serial] = out
    assert np.abs(runs[True, True]["positions"] - model.positions).max() > 0.3
    for key in ((False, True), (True, False)):
        for k in ("positions", "velocities", "potential", "pressure_tensor"):
            assert np.array_equal(runs[key][k], runs[True, True][k]), (key, k)


def test_fast_simulate_of_a_binary_mixture_follows_the_tape_kernels():
    """Two atom types with their own LJ parameters and cutoffs (per-pair table lookups in the
    one-launch step), energy-shifted, crossing the box: the same trajectory as the tape kernels."""
    model = _fluid(types=np.arange(256) % 2, temp=1.5)
    lj = LennardJones([[1.0, 1.5], [1.5, 0.5]], [[1.0, 0.8], [0.8, 0.88]], cutoff=[[RC, 1.4], [1.4, 1.5]],
                      shift=True)
    system = _system(model, potentials=[lj])
    fast = system.simulate(200, record_every=100)
    slow = system.simulate(200, record_every=100, fast=False)
    assert system.forward_runner.cells.builds > 3
    np.testing.assert_allclose(fast["positions"], slow["positions"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(fast["potential"], slow["potential"], rtol=1e-10)


def test_fast_simulate_with_bonds_and_without_energy_observation():
    model = _fluid()
    bonds = np.array([[i, i + 1] for i in range(0, 40, 2)])
    system = _system(model, potentials=[LennardJones(cutoff=RC, shift="force"), HarmonicBond(bonds, 5.0, 1.0)],
                     observe=())
    fast = system.simulate(100, record_every=25)
    slow = system.simulate(100, record_every=25, fast=False)
    np.testing.assert_allclose(fast["positions"], slow["positions"], rtol=0, atol=1e-9)
    # energies and pressures are recorded on both paths though the tape does not observe them
    for k in ("potential", "pressure_tensor"):
        assert len(fast[k]) == 5
        np.testing.assert_allclose(fast[k], slow[k], rtol=1e-9, atol=1e-9, err_msg=k)
    assert np.all(np.isfinite(fast["pressure"]))


def test_fast_simulate_reports_a_blow_up_with_step_and_field():
    model = _fluid()
    system = _system(model)
    pos = model.positions.copy()
    pos[1] = pos[0] + [0.05, 0.0, 0.0]  # a pair deep inside the repulsive core
    with pytest.raises(SimulationDiverged) as info:
        system.simulate(50, positions=pos)
    assert info.value.field in ("x", "v", "f") and 1 <= info.value.step <= 50
    with pytest.raises(ConfigError, match=r"positions\[0, 0\] is nan: the initial positions must be finite"):
        system.simulate(5, positions=np.full((model.n, 3), np.nan))


def test_fixed_rebuild_interval_like_lammps_and_its_warning():
    model = _fluid()
    system = _system(model)
    safe = system.simulate(120)
    every = system.simulate(120, rebuild_every=4)  # often enough: no atom moves skin/2 in 4 steps
    assert every["late_rebuilds"] == 0
    np.testing.assert_allclose(every["positions"], safe["positions"], rtol=0, atol=1e-9)
    with pytest.warns(RuntimeWarning, match="pairs may have been missed"):
        rare = system.simulate(120, rebuild_every=60)
    assert rare["late_rebuilds"] >= 1
    with pytest.raises(ConfigError, match="rebuild_every"):
        system.simulate(5, rebuild_every=-1)
    with pytest.raises(ConfigError, match="rebuild_every"):
        system.simulate(5, rebuild_every=10, fast=False)


def test_fast_simulate_is_bitwise_reproducible_across_thread_counts(python_subprocess):
    """The half build runs one serial task per slab and the gather sums in list order: no
    atomics decide any order, so 1 and 2 threads give the same bits."""
    code = """
import sys, numpy as np, diffsim
diffsim.init(arch="cpu", precision="f64", threads=int(sys.argv[1]) if len(sys.argv) > 1 else {threads})
from diffsim.md import ForceField, LennardJones, MDSystem, Model, fcc_lattice, maxwell_boltzmann
pos, box = fcc_lattice((5, 5, 5), 0.8442)
pos = pos + np.random.default_rng(0).normal(0, 0.05, pos.shape)
model = Model(pos, box=box, velocities=maxwell_boltzmann(np.ones(len(pos)), 1.2, seed=0))
system = MDSystem(model, ForceField([LennardJones(cutoff=1.6, shift="force")], model.types, box, skin=0.2), dt=0.005)
out = [system.simulate(150, record_every=50) for _ in range(2)]
assert system.forward_runner.cells.method == "half" and system.forward_runner.cells.tasks == 2
print(out[0]["positions"].tobytes().hex()[:64], out[0]["positions"].sum().hex(), out[1]["positions"].sum().hex(),
      out[0]["potential"][-1].hex())
"""
    runs = {}
    for threads in (1, 2):
        res = python_subprocess(code.format(threads=threads))
        assert res.returncode == 0, res.stderr[-2000:]
        runs[threads] = res.stdout.split()[-4:]
    assert runs[1][1] == runs[1][2] and runs[2][1] == runs[2][2]  # run to run
    assert runs[1] == runs[2]  # thread count


@pytest.mark.parametrize("make,tilt", [
    (lambda: LennardJones(1.0, 1.0, cutoff=RC), None),
    (lambda: LennardJones([[1.0, 0.7], [0.7, 1.3]], [[1.0, 0.9], [0.9, 1.1]], cutoff=[[RC, 1.3], [1.3, 1.5]],
                          shift="force"), None),
    (lambda: Morse(0.8, 2.0, 1.1, cutoff=RC, shift=True), [1.5, -0.8, 0.6]),
], ids=["lj", "lj-2types-force-shift", "morse-tilted"])
def test_tape_forward_gathers_the_values_of_the_newton_kernel(make, tilt):
    """On the tape the pair forces, energies and virials are gathered over the list's full twin
    (GatheredPair); they equal the Newton kernel's."""
    model = _fluid(types=np.arange(256) % 2)
    pos = model.positions + 2.0 * model.box  # unwrapped: the minimum image does the work
    if tilt is not None:
        model = Model(pos, box=model.box, tilt=tilt, types=model.types)
    ff = ForceField([make()], model.types, model.box, skin=SKIN, tilt=tilt)
    ff.nlist.keep_full = True
    x = _slots(pos)
    ff.build(x, 0)
    out = []
    for gathered in (False, True):
        f, pe, vir = _slots(np.zeros((model.n, 3))), _slots(np.zeros(model.n)), _slots(np.zeros((model.n, 6)))
        zero_forces(f, 0, pe, vir, 0, 1)
        launches = ff.force_launches(x, 0, f, 0, pe, vir, 0, 1, gathered=gathered)
        assert (type(launches[-1].kernel).__name__ == "GatheredPair") == gathered
        for lc in launches:
            lc.forward()
        out.append([a.to_numpy()[0] for a in (f, pe, vir)])
    nbr, nnb = ff.nlist.full_list()
    assert nnb.to_numpy().sum() == 2 * ff.nlist.nnb.to_numpy().sum()
    scale = np.abs(out[0][0]).max()
    assert scale > 1.0
    np.testing.assert_allclose(out[1][0], out[0][0], rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(out[1][1], out[0][1], rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(out[1][2], out[0][2], rtol=1e-11, atol=1e-13)
