"""ASE interop and extended-XYZ trajectories."""

import numpy as np
import pytest

from diffsim.errors import ConfigError
from diffsim.md import Model, fcc_lattice, from_ase, to_ase, write_extxyz

ase = pytest.importorskip("ase")


def test_ase_round_trip_and_emt_reference(tmp_path):
    from ase.build import bulk
    from ase.calculators.emt import EMT

    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
    atoms.rattle(0.05, seed=1)
    atoms.set_velocities(np.random.default_rng(0).normal(0, 0.01, (len(atoms), 3)))
    model = from_ase(atoms)
    assert model.units == "metal" and model.symbols == ["Cu"]
    np.testing.assert_allclose(model.box, [7.22, 7.22, 7.22])
    np.testing.assert_allclose(model.masses, atoms.get_masses())
    back = to_ase(model)
    np.testing.assert_allclose(back.get_positions(), atoms.get_positions())
    np.testing.assert_allclose(back.get_velocities(), atoms.get_velocities(), rtol=1e-12)
    assert back.get_chemical_symbols() == atoms.get_chemical_symbols()
    atoms.calc = EMT()
    assert np.isfinite(atoms.get_potential_energy())


def test_extxyz_is_read_by_ase(tmp_path):
    import ase.io

    pos, box = fcc_lattice((2, 2, 2), a=3.61)
    model = Model(pos, masses=63.546, box=box, units="metal", symbols=["Cu"])
    frames = np.stack([pos, pos + 0.1, pos + 8.0])
    forces = np.random.default_rng(0).normal(size=frames.shape)
    path = tmp_path / "traj.extxyz"
    write_extxyz(path, frames, model, energies=[1.0, 2.0, 3.0], forces=forces, wrap=True)
    read = ase.io.read(path, index=":")
    assert len(read) == 3
    assert read[2].get_chemical_symbols()[0] == "Cu"
    np.testing.assert_allclose(read[1].get_positions(), frames[1], atol=1e-9)
    assert np.all(read[2].get_positions() < 7.22 + 1e-9)  # wrapped
    np.testing.assert_allclose(read[0].get_cell().lengths(), box)
    assert read[1].get_potential_energy() == pytest.approx(2.0)
    np.testing.assert_allclose(read[1].get_forces(), forces[1], atol=1e-9)


def test_tilted_cell_is_rotated_or_rejected():
    from ase.build import bulk

    prim = bulk("Cu", "fcc", a=3.61)  # primitive cell: tilted, rotated into LAMMPS's orientation
    model = from_ase(prim)
    assert model.triclinic and model.volume == pytest.approx(prim.get_volume(), rel=1e-12)
    prim.pbc = (True, True, False)
    with pytest.raises(ConfigError, match="periodic on every axis"):
        from_ase(prim)
    with pytest.raises(ConfigError, match="frames"):
        write_extxyz("/tmp/x.xyz", np.zeros((2, 3, 3)), Model(np.arange(12.0).reshape(4, 3)))
