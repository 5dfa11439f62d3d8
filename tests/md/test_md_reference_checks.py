"""Against ASE's LennardJones calculator, NVE drift of the in.lj fluid, and bad input."""

import numpy as np
import pytest

from diffsim.errors import ConfigError
from diffsim.md import (
    ForceField,
    LennardJones,
    MDSystem,
    Model,
    fcc_lattice,
    maxwell_boltzmann,
)


def test_lj_energy_forces_virial_equal_ases_calculator():
    ase = pytest.importorskip("ase")
    from ase.calculators.lj import LennardJones as AseLJ

    pos, box = fcc_lattice((4, 4, 4), 0.8442)
    pos = pos + np.random.default_rng(0).normal(0, 0.05, pos.shape)
    # ASE's LJ shifts the energy to zero at the cutoff (smooth=False keeps the forces plain)
    ev = ForceField([LennardJones(cutoff=2.5, shift="energy")], np.zeros(len(pos), int), box).evaluate(pos)
    atoms = ase.Atoms(f"Ar{len(pos)}", positions=pos, cell=np.diag(box), pbc=True)
    atoms.calc = AseLJ(sigma=1.0, epsilon=1.0, rc=2.5, smooth=False)
    assert ev.energy == pytest.approx(atoms.get_potential_energy(), rel=1e-10)
    np.testing.assert_allclose(ev.forces, atoms.get_forces(), rtol=1e-10, atol=1e-10 * np.abs(ev.forces).max())
    # ASE's stress is -W/V on the diagonal (trace over 3 axes)
    virial = -np.trace(atoms.get_stress(voigt=False)) * atoms.get_volume()
    assert ev.virial == pytest.approx(virial, rel=1e-10)


def test_nve_energy_drift_of_the_lj_benchmark_fluid():
    """LAMMPS bench/in.lj at N=500: fcc at density 0.8442, T=1.44, cutoff 2.5, skin 0.3, dt 0.005.
    With the energy shifted to zero at the cutoff, |E(1000) - E(0)| / |E(0)| < 1e-4 (3e-5
    measured). With the plain cut of in.lj the energy jumps whenever a pair crosses the cutoff
    (1.5e-3 over the same run), which is the potential's discontinuity, not the integrator."""
    pos, box = fcc_lattice((5, 5, 5), 0.8442)
    model = Model(pos, box=box, velocities=maxwell_boltzmann(np.ones(len(pos)), 1.44, seed=0))
    ff = ForceField([LennardJones(cutoff=2.5, shift="energy")], model.types, model.box, skin=0.3)
    run = MDSystem(model, ff, dt=0.005, observe=("energy",)).simulate(1000, record_every=10)
    e = run["total"]
    assert len(pos) == 500
    assert abs(e[-1] - e[0]) / abs(e[0]) < 1e-4


def test_bad_input_overlap_nan_unknown_type():
    pos, box = fcc_lattice((2, 2, 2), 0.8442)
    nan = pos.copy()
    nan[3, 1] = np.nan
    with pytest.raises(ConfigError, match=r"positions\[3, 1\] is nan"):
        Model(nan, box=box)
    overlap = pos.copy()
    overlap[7] = overlap[2] + [1e-5, 0.0, 0.0]
    with pytest.raises(ConfigError, match="atoms 2 and 7 overlap"):
        Model(overlap, box=box)
    image = pos.copy()
    image[5] = image[0] + box * [1, 0, 0]  # the same site one box over: an overlap through the image
    with pytest.raises(ConfigError, match="atoms 0 and 5 overlap"):
        Model(image, box=box)
    types = np.zeros(len(pos), int)
    types[4] = 2
    with pytest.raises(ConfigError, match="unknown atom type 2"):
        ForceField([LennardJones(epsilon=[[1.0, 0.8], [0.8, 1.2]], cutoff=1.6)], types, box)
    with pytest.raises(ConfigError, match="smaller than twice the cutoff"):
        ForceField([LennardJones(cutoff=2.5)], np.zeros(len(pos), int), box)
