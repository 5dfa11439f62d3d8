"""A chemist's trials of diffsim.md through its public API, each against an independent reference
(NumPy all-pairs sums, ASE's readers and calculators, conservation laws, finite differences)."""

import itertools

import numpy as np
import pytest

from diffsim.md import ForceField, LennardJones, MDSystem, Model, fcc_lattice, write_extxyz

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
