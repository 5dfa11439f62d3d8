"""A chemist's trials of diffsim.md through its public API, each against an independent reference
(NumPy all-pairs sums, ASE's readers and calculators, conservation laws, finite differences)."""

import itertools

import numpy as np
import pytest

from diffsim.md import (
    ForceField,
    KineticEnergy,
    Langevin,
    LennardJones,
    MDSystem,
    Model,
    MSDMatch,
    PotentialEnergy,
    RDFMatch,
    fcc_lattice,
    write_extxyz,
)

ase = pytest.importorskip("ase")

VOIGT = [(0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)]


def _binary_mixture_in_a_skewed_cell(seed=3, n=61):
    """n atoms of two types (masses 1 and 3) at random, no two closer than 0.9, in a cell with large
    tilts, some of them whole cells out; per-pair epsilon, sigma and cutoff."""
    rng = np.random.default_rng(seed)
    box, tilt = np.array([7.0, 6.5, 7.5]), np.array([3.0, -2.5, 2.8])
    h = np.array([[box[0], 0, 0], [tilt[0], box[1], 0], [tilt[1], tilt[2], box[2]]])
    images = np.array(list(itertools.product((-1, 0, 1), repeat=3))) @ h
    pos = []
    while len(pos) < n:
        p = rng.random(3) @ h
        if all(np.linalg.norm(p - q + images, axis=1).min() > 0.9 for q in pos):
            pos.append(p)
    pos = np.array(pos) + rng.integers(-3, 4, size=(n, 1)) * h[0]
    types = rng.integers(0, 2, n)
    masses = np.where(types == 0, 1.0, 3.0)
    vel = rng.normal(size=(n, 3)) / np.sqrt(masses)[:, None]
    model = Model(pos, masses=masses, types=types, box=box, tilt=tilt, velocities=vel)
    pair = {"epsilon": np.array([[1.0, 1.5], [1.5, 0.5]]), "sigma": np.array([[1.0, 0.8], [0.8, 0.88]]),
            "cutoff": np.array([[2.5, 2.0], [2.0, 2.2]])}
    return model, h, pair


def _all_pairs(x, types, h, epsilon, sigma, cutoff):
    """Energy, forces and virial tensor (3, 3) of plain-cut LJ by summing every pair over the
    images of the cell h (rows a, b, c) within two cells."""
    frac = np.linalg.solve(h.T, x.T).T
    x = (frac - np.floor(frac)) @ h
    shifts = np.array(list(itertools.product(range(-2, 3), repeat=3))) @ h
    e, f, w = 0.0, np.zeros_like(x), np.zeros((3, 3))
    for i, j in itertools.combinations(range(len(x)), 2):
        a, b = types[i], types[j]
        d = x[i] - x[j] + shifts
        r2 = (d * d).sum(1)
        d, r2 = d[r2 < cutoff[a, b] ** 2], r2[r2 < cutoff[a, b] ** 2]
        sr6 = (sigma[a, b] ** 2 / r2) ** 3
        e += float((4 * epsilon[a, b] * (sr6 * sr6 - sr6)).sum())
        fd = (24 * epsilon[a, b] * (2 * sr6 * sr6 - sr6) / r2)[:, None] * d
        f[i] += fd.sum(0)
        f[j] -= fd.sum(0)
        w += d.T @ fd
    return e, f, w


def test_a_binary_mixture_streamed_from_a_skewed_cell_reads_back_in_ase_with_types_masses_and_stress(tmp_path):
    """Frames of a two-type LJ mixture (unnamed types, masses 1 and 3, per-pair cutoffs) in a cell
    with large tilts: energies and the pressure tensor of each frame equal an all-pairs NumPy sum,
    frame k equals a run of k * record_every steps, and the streamed extended XYZ file gives ASE
    the cell, positions, velocities, masses, the two types (not one anonymous "X") and the stress."""
    from ase.io import read

    model, h, pair = _binary_mixture_in_a_skewed_cell()
    system = MDSystem(model, ForceField([LennardJones(**pair)], model.types, model.box, tilt=model.tilt), dt=0.002)
    path = tmp_path / "mixture.extxyz"
    run = system.simulate(30, record_every=15, trajectory=path)
    frames, volume = run["frames"], np.linalg.det(h)
    m = model.masses
    for k in range(len(frames)):
        x, v = frames.positions[k], frames.velocities[k]
        e, _, w = _all_pairs(x, model.types, h, **pair)
        p = (np.einsum("i,ia,ib->ab", m, v, v) + w) / volume
        assert frames.potential[k] == pytest.approx(e, rel=1e-12)
        np.testing.assert_allclose(frames.pressure_tensor[k], [p[a, b] for a, b in VOIGT], rtol=1e-10, atol=1e-13)
    again = system.simulate(15)
    np.testing.assert_array_equal(again["positions"], frames.positions[1])
    back = read(path, index=":")
    assert len(back) == 3
    atoms = back[1]
    np.testing.assert_allclose(atoms.cell.array, h, atol=1e-12)
    np.testing.assert_allclose(atoms.get_positions(), frames.positions[1], atol=1e-7)
    np.testing.assert_allclose(atoms.get_velocities(), frames.velocities[1], atol=1e-7)
    np.testing.assert_allclose(atoms.get_masses(), m)
    np.testing.assert_array_equal(atoms.arrays["type"], model.types)
    _, _, w = _all_pairs(frames.positions[1], model.types, h, **pair)
    np.testing.assert_allclose(atoms.get_stress(include_ideal_gas=False), -w[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]] / volume,
                               rtol=1e-9, atol=1e-12)


def test_write_extxyz_of_unnamed_types_is_read_by_ase_with_types_and_masses(tmp_path):
    """write_extxyz of a two-type model without symbols: ASE reads it (it wrote species "X0",
    "X1", which ASE rejects with KeyError 'X0'), each atom keeps its type and its mass."""
    from ase.io import read

    pos, box = fcc_lattice((2, 2, 2), density=0.8)
    types = np.arange(len(pos)) % 2
    model = Model(pos, masses=np.where(types == 0, 1.0, 2.5), types=types, box=box)
    path = tmp_path / "two.extxyz"
    write_extxyz(path, [pos, pos + 0.01], model, energies=[1.0, 2.0])
    back = read(path, index=":")
    assert len(back) == 2
    np.testing.assert_allclose(back[1].get_positions(), pos + 0.01, atol=1e-9)
    np.testing.assert_array_equal(back[1].arrays["type"], types)
    np.testing.assert_allclose(back[1].get_masses(), model.masses)
    assert back[1].get_potential_energy() == pytest.approx(2.0)


def _two_element_setfl(path, rc=4.6, nr=250, nrho=250):
    """A made-up Ni-Al-like setfl file written by ASE's writer: Born-Mayer pair terms, Gaussian
    densities, an embedding -a sqrt(rho) + b rho^2 (all tapered to zero at rc)."""
    from ase.calculators.eam import EAM as AseEAM

    def taper(r):
        x = np.minimum((np.asarray(r, dtype=np.float64) - rc) / 0.9, 0.0)
        return x ** 4 / (1 + x ** 4)

    amp, width, a, b = [1.0, 0.7], [2.2, 2.6], [2.0, 1.5], [0.03, 0.02]
    density = [lambda r, k=k: amp[k] * np.exp(-(np.asarray(r) / width[k]) ** 2) * taper(r) for k in range(2)]
    embedding = [lambda rho, k=k: -a[k] * np.sqrt(np.asarray(rho) + 0.1) + b[k] * np.asarray(rho) ** 2
                 for k in range(2)]
    rep = [[60.0, 45.0], [45.0, 35.0]]
    phi = [[lambda r, i=i, j=j: rep[i][j] * np.exp(-2.0 * np.asarray(r)) * taper(r) for j in range(2)]
           for i in range(2)]
    calc = AseEAM(elements=["Ni", "Al"], embedded_energy=np.array(embedding), electron_density=np.array(density),
                  phi=np.array(phi), cutoff=rc, form="alloy", Z=[28, 13], nr=nr, nrho=nrho, dr=(rc + 0.2) / nr,
                  drho=8.0 / nrho, lattice=["fcc", "fcc"], mass=[58.693, 26.982], a=[3.52, 4.05],
                  header=["made up\n", "Ni Al\n", "setfl\n"])
    calc.Nelements = 2
    calc.write_potential(str(path))
    return str(path)


def _nial(first, seed):
    """A rattled 108-atom fcc Ni-Al cell whose first atom is ``first``: ASE's EAM results on it."""
    from ase.build import bulk

    atoms = bulk("Ni", "fcc", a=3.6, cubic=True).repeat((3, 3, 3))
    rng = np.random.default_rng(seed)
    symbols = np.where(rng.random(len(atoms)) < 0.4, "Al", "Ni")
    symbols[0] = first
    atoms.set_chemical_symbols(symbols.tolist())
    atoms.positions += rng.normal(0, 0.07, atoms.positions.shape)
    return atoms


def test_an_al_first_alloy_gets_the_eam_files_elements_not_its_order_of_appearance(tmp_path):
    """A Ni-Al cell whose first atom is Al, from ASE, on a Ni-Al setfl file: from_ase numbers
    types by first appearance (Al = 0), the file has Ni = 0, and MDSystem ran each element on the
    other's tables without a word (1721 eV for ASE's 493 eV on such a Cu-Ag cell). Now MDSystem
    says so, and from_ase(atoms, symbols=eam.elements) gives ASE's EAM energies and forces."""
    from ase.calculators.eam import EAM as AseEAM

    from diffsim.errors import ConfigError
    from diffsim.md import EAM, from_ase

    path = _two_element_setfl(tmp_path / "NiAl.eam.alloy")
    eam = EAM.from_setfl(path)
    atoms = _nial("Al", 0)
    wrong = from_ase(atoms)
    assert wrong.symbols == ["Al", "Ni"]
    with pytest.raises(ConfigError, match="symbols=eam.elements"):
        MDSystem(wrong, ForceField([eam], wrong.types, wrong.box), dt=1.0)
    model = from_ase(atoms, symbols=eam.elements)
    assert model.symbols == ["Ni", "Al"] and model.types[0] == 1
    system = MDSystem(model, ForceField([eam], model.types, model.box), dt=1.0)
    ev = system.ff.evaluate(model.positions)
    atoms.calc = AseEAM(potential=path)
    assert ev.energy == pytest.approx(atoms.get_potential_energy(), rel=1e-10)
    np.testing.assert_allclose(ev.forces, atoms.get_forces(), rtol=1e-8, atol=1e-10)
    stray = atoms.copy()
    stray[5].symbol = "Cu"
    with pytest.raises(ConfigError, match="'Cu'"):
        from_ase(stray, symbols=eam.elements)


def test_force_matching_types_the_elements_of_every_ase_configuration_alike(tmp_path):
    """Force matching on ASE configurations of a Ni-Al alloy, one Ni-first and one Al-first: each
    configuration was typed by its own first appearance, so one of them had Ni and Al swapped and
    the fit matched the wrong tables. At the file's own tables the loss is now zero to rounding
    (ASE's EAM made the reference), and a pair potential's per-type parameters act on the same
    element in both configurations (its predictions equal explicitly typed dict configurations)."""
    from ase.calculators.eam import EAM as AseEAM
    from ase.calculators.singlepoint import SinglePointCalculator

    from diffsim.errors import ConfigError
    from diffsim.md import EAM, ForceMatching

    path = _two_element_setfl(tmp_path / "NiAl.eam.alloy")
    configs = [_nial("Ni", 2), _nial("Al", 3)]
    for atoms in configs:
        atoms.calc = AseEAM(potential=path)
        atoms.get_forces()
    fm = ForceMatching([EAM.from_setfl(path)], configs)
    loss, _ = fm(fm.x0())
    assert loss < 1e-16
    stray = configs[1].copy()  # Cu where it had Al: Cu is not in the Ni-Al file, it ran on Ni's tables
    stray.set_chemical_symbols(["Cu" if s == "Al" else s for s in stray.get_chemical_symbols()])
    stray.calc = SinglePointCalculator(stray, energy=configs[1].get_potential_energy(), forces=configs[1].get_forces())
    with pytest.raises(ConfigError, match="type 0 is 'Cu'"):
        ForceMatching([EAM.from_setfl(path)], [stray])
    lj = dict(epsilon=np.array([[0.3, 0.2], [0.2, 0.1]]), sigma=np.array([[2.2, 2.4], [2.4, 2.6]]), cutoff=4.0)
    by_ase = ForceMatching([LennardJones(**lj)], configs)
    order = {"Ni": 0, "Al": 1}  # first appearance over the configurations: configs[0] starts with Ni
    dicts = [{"positions": a.get_positions(), "box": a.cell.lengths(), "energy": 0.0, "forces": a.get_forces(),
              "types": [order[s] for s in a.get_chemical_symbols()]} for a in configs]
    by_hand = ForceMatching([LennardJones(**lj)], dicts)
    e_ase, f_ase = by_ase.predict()
    e_hand, f_hand = by_hand.predict()
    np.testing.assert_allclose(e_ase, e_hand, rtol=1e-12)
    np.testing.assert_allclose(f_ase, f_hand, rtol=1e-12, atol=1e-12)


def test_kinetic_energy_cost_is_in_ev_in_metal_units_and_adds_to_the_potential_energy():
    """Argon in metal units: the costs PotentialEnergy + KineticEnergy after a short NVE rollout
    equal the total energy (eV) that simulate's frames report at that step, and KineticEnergy
    alone equals kinetic_energy(masses, v_T, "metal") (it gave amu A^2/fs^2: 0.0046 for 0.478 eV)."""
    from diffsim import Rollout, StoreAll
    from diffsim.md import kinetic_energy, maxwell_boltzmann

    pos, box = fcc_lattice((3, 3, 3), a=5.4)
    masses = np.full(len(pos), 39.948)
    model = Model(pos, masses=masses, box=box, units="metal", symbols=["Ar"],
                  velocities=maxwell_boltzmann(masses, 60.0, seed=4, units="metal"))
    lj = LennardJones(epsilon=0.0104, sigma=3.4, cutoff=8.0, shift=True)
    steps = 25
    frames = MDSystem(model, ForceField([lj], model.types, model.box), dt=4.0).simulate(steps, record_every=steps)["frames"]
    assert frames.kinetic[-1] > 0.05 * abs(frames.potential[-1])  # both terms matter
    for costs, expect in (([KineticEnergy()], frames.kinetic[-1]),
                          ([PotentialEnergy(), KineticEnergy()], frames.total[-1])):
        system = MDSystem(model, ForceField([lj], model.types, model.box), dt=4.0, observe=("energy",), costs=costs)
        rollout = Rollout(system, steps, StoreAll())
        assert rollout.forward() == pytest.approx(expect, rel=1e-9)
    v = rollout.trajectory("v")[-1]
    assert frames.kinetic[-1] == pytest.approx(kinetic_energy(masses, v, "metal"), rel=1e-9)


def test_rdf_thermo_and_pressure_cost_in_a_tilted_binary_mixture():
    """On the tape in the skewed two-type cell: the accumulated RDF equals a NumPy smoothed RDF
    over the images of the cell at the sampled steps; thermo's pressure tensor equals the all-pairs
    sum; the PressureMatch gradient in epsilon and sigma (per pair) equals central differences."""
    from diffsim import Objective, Rollout, StoreAll, gradcheck
    from diffsim.md import RDF, PressureMatch

    model, h, pair = _binary_mixture_in_a_skewed_cell()
    n, volume = model.n, np.linalg.det(h)
    r, width = np.linspace(0.8, 1.8, 11), 0.1

    def ff(**kw):
        return ForceField([LennardJones(**pair, **kw)], model.types, model.box, tilt=model.tilt)

    system = MDSystem(model, ff(), dt=0.002, segment=10, observe=("pressure",), rdf=RDF(r, width, every=5))
    rollout = Rollout(system, 20, StoreAll())
    rollout.forward()
    xs, vs = rollout.trajectory("x"), rollout.trajectory("v")
    shifts = np.array(list(itertools.product(range(-2, 3), repeat=3))) @ h

    def smoothed(x):
        frac = np.linalg.solve(h.T, x.T).T
        x = (frac - np.floor(frac)) @ h
        g = np.zeros_like(r)
        for i, j in itertools.combinations(range(n), 2):
            d = np.linalg.norm(x[i] - x[j] + shifts, axis=1)
            g += np.exp(-(r[None, :] - d[d < r.max() + 4 * width][:, None]) ** 2 / (2 * width ** 2)).sum(0)
        return g * volume / (n * (n - 1) / 2) / (np.sqrt(2 * np.pi) * width * 4 * np.pi * r ** 2)

    acc = rollout.trajectory("rdf")[-1]
    assert acc[-1] == 4  # after steps 5, 10, 15, 20
    np.testing.assert_allclose(RDF.mean(acc), np.mean([smoothed(xs[t]) for t in (5, 10, 15, 20)], 0),
                               rtol=1e-10, atol=1e-12)
    p = system.thermo(rollout)["pressure_tensor"][-1]
    _, _, w = _all_pairs(xs[-1], model.types, h, **pair)
    ref = (np.einsum("i,ia,ib->ab", model.masses, vs[-1], vs[-1]) + w) / volume
    np.testing.assert_allclose(p, [ref[a, b] for a, b in VOIGT], rtol=1e-10, atol=1e-13)
    cost = PressureMatch(p + np.array([0.1, -0.1, 0.2, 0.05, 0.02, -0.03]))
    obj = Objective(Rollout(MDSystem(model, ff(shift="force"), dt=0.002, costs=[cost]), 15, StoreAll()),
                    ["epsilon", "sigma"])
    rep = gradcheck(obj, obj.x0(), rtol=1e-6, step=1e-4)  # 1e-6 leaves epsilon[0,0] (-1.25e-4) at FD noise
    assert rep.ok, str(rep)


@pytest.mark.parametrize("make, message", [
    (lambda: RDFMatch([1.0, np.nan, 1.0]), "RDFMatch target"),
    (lambda: RDFMatch([1.0] * 3, weight=np.nan), "RDFMatch weight"),
    (lambda: MSDMatch(np.inf), "MSDMatch target"),
    (lambda: MSDMatch(1.0, weight=np.nan), "MSDMatch weight"),
    (lambda: KineticEnergy(np.nan), "KineticEnergy weight"),
    (lambda: PotentialEnergy(np.nan), "PotentialEnergy weight"),
    (lambda: Langevin(1.0, 1.0, seed=1.5), "Langevin seed"),
    (lambda: Langevin(1.0, 1.0, seed=-3), "Langevin seed"),
])
def test_nan_cost_settings_and_a_fractional_seed_are_named(make, message):
    """A NaN weight or target made the loss NaN without a word; Langevin(seed=1.5) ran as seed 1."""
    from diffsim.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        make()


def test_write_extxyz_names_misshaped_energies_and_forces_and_nan_positions(tmp_path):
    """Were an IndexError from inside the writer (energies shorter than the frames, forces of
    another shape) and a file of 'nan' positions."""
    from diffsim.errors import ConfigError

    pos, box = fcc_lattice((2, 2, 2), density=0.8)
    model = Model(pos, box=box)
    path = tmp_path / "t.extxyz"
    with pytest.raises(ConfigError, match=r"energies must have shape \(2,\)"):
        write_extxyz(path, [pos, pos], model, energies=[1.0])
    with pytest.raises(ConfigError, match=r"forces must have shape \(2, 32, 3\)"):
        write_extxyz(path, [pos, pos], model, forces=np.zeros((2, 3, 3)))
    bad = pos.copy()
    bad[4, 1] = np.nan
    with pytest.raises(ConfigError, match=r"frames\[1, 4, 1\] is nan"):
        write_extxyz(path, [pos, bad], model)


def test_rdf_smoothed_of_a_tilted_cell_equals_the_image_sum_and_open_boxes_are_refused():
    """rdf_smoothed failed on a (3, 3) cell (IndexError) and had no tilts, and gave g = 0 for a box
    with an open axis: now the cell, or box and tilts, give the NumPy image sum's RDF, and an open
    axis is a ConfigError."""
    from diffsim.errors import ConfigError
    from diffsim.md import rdf_smoothed

    model, h, _ = _binary_mixture_in_a_skewed_cell(n=40)
    r, width = np.linspace(0.9, 2.0, 6), 0.1
    frac = np.linalg.solve(h.T, model.positions.T).T
    x = (frac - np.floor(frac)) @ h
    shifts = np.array(list(itertools.product(range(-2, 3), repeat=3))) @ h
    g = np.zeros_like(r)
    for i, j in itertools.combinations(range(model.n), 2):
        d = np.linalg.norm(x[i] - x[j] + shifts, axis=1)
        g += np.exp(-(r[None, :] - d[d < r.max() + 4 * width][:, None]) ** 2 / (2 * width ** 2)).sum(0)
    g *= np.linalg.det(h) / (model.n * (model.n - 1) / 2) / (np.sqrt(2 * np.pi) * width * 4 * np.pi * r ** 2)
    np.testing.assert_allclose(rdf_smoothed(model.positions, model.cell, r, width), g, rtol=1e-12)
    np.testing.assert_allclose(rdf_smoothed(model.positions, model.box, r, width, tilt=model.tilt), g, rtol=1e-12)
    with pytest.raises(ConfigError, match="periodic on all three axes"):
        rdf_smoothed(model.positions, [7.0, 6.5, 0.0], r, width)


def test_brute_force_pairs_of_a_cell_matrix_is_the_tilted_cells_pairs():
    """brute_force_pairs(positions, model.cell, rc) read the (3, 3) cell as three configurations'
    boxes (row 0: periodic along x only) and returned another pair list without a word."""
    from diffsim.md import brute_force_pairs

    model, h, _ = _binary_mixture_in_a_skewed_cell(n=40)
    rc = 2.4
    frac = np.linalg.solve(h.T, model.positions.T).T
    x = (frac - np.floor(frac)) @ h
    shifts = np.array(list(itertools.product(range(-2, 3), repeat=3))) @ h
    expect = [(i, j) for i, j in itertools.combinations(range(model.n), 2)
              if np.linalg.norm(x[i] - x[j] + shifts, axis=1).min() < rc]
    np.testing.assert_array_equal(brute_force_pairs(model.positions, model.cell, rc), expect)
    np.testing.assert_array_equal(brute_force_pairs(model.positions, model.box, rc, tilt=model.tilt), expect)
    from diffsim.md import NeighborList

    nl = NeighborList(model.n, rc, 0.3, model.cell)  # it read the rows as three boxes, using the first only
    np.testing.assert_array_equal(nl.boxes_np, [model.box])
    np.testing.assert_array_equal(nl.tilts_np, [model.tilt])


def test_unnamed_types_survive_to_ase_and_a_written_trajectory_back_to_from_ase(tmp_path):
    """A two-type metal model without symbols: to_ase gave every atom "X", and from_ase made one
    type of them (a binary LJ mixture came back as a one-component fluid). The types now come back
    from to_ase and from a streamed extended XYZ frame, and the force field gives the same energy."""
    from ase.io import read

    from diffsim.md import from_ase, to_ase

    pos, box = fcc_lattice((3, 3, 3), a=5.6)
    types = np.arange(len(pos)) % 3 == 0
    model = Model(pos, masses=np.where(types, 83.8, 39.948), types=types.astype(int), box=box, units="metal")
    lj = dict(epsilon=np.array([[0.0104, 0.0125], [0.0125, 0.015]]), sigma=np.array([[3.4, 3.5], [3.5, 3.6]]),
              cutoff=8.0)
    energy = ForceField([LennardJones(**lj)], model.types, model.box).evaluate(pos).energy
    system = MDSystem(model, ForceField([LennardJones(**lj)], model.types, model.box), dt=2.0)
    system.simulate(0, record_every=1, trajectory=tmp_path / "f.extxyz")
    for atoms in (to_ase(model), read(tmp_path / "f.extxyz")):
        back = from_ase(atoms)
        np.testing.assert_array_equal(back.types, model.types)
        ev = ForceField([LennardJones(**lj)], back.types, back.box).evaluate(back.positions)
        assert ev.energy == pytest.approx(energy, rel=1e-9)
