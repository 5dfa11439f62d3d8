"""A chemist's second round of trials of diffsim.md through its public API, each against an
independent reference: ASE's Lennard-Jones calculator (stress with the ideal-gas part, the static
equation of state) for metal units and constant pressure."""

import numpy as np
import pytest

from diffsim.errors import ConfigError
from diffsim.md import (
    BerendsenBarostat,
    ForceField,
    Langevin,
    LennardJones,
    MDSystem,
    Model,
    StochasticCellRescaling,
    equilibrate_npt,
    fcc_lattice,
    kinetic_tensor,
    maxwell_boltzmann,
    pressure_tensor,
    temperature,
)
from diffsim.md.units import UNITS

ase = pytest.importorskip("ase")
from ase.build import bulk  # noqa: E402
from ase.calculators.lj import LennardJones as AseLJ  # noqa: E402
from ase.units import fs as ASE_FS  # noqa: E402

# argon (Rowley, Nicholson & Parsonage 1975 parameters, as in many LAMMPS examples)
EPS, SIG, RC, M_AR = 0.0104, 3.40, 8.5, 39.948


def _argon(a, cells, T, seed):
    pos, box = fcc_lattice((cells,) * 3, a=a)
    m = np.full(len(pos), M_AR)
    rng = np.random.default_rng(seed)
    pos = pos + rng.normal(0, 0.05, pos.shape)
    model = Model(pos, box=box, masses=m, units="metal")
    model = model.copy(velocities=maxwell_boltzmann(m, T, seed=seed, units="metal"))
    ff = ForceField([LennardJones(EPS, SIG, cutoff=RC)], model.types, box, skin=0.5)
    return model, ff


def test_a_metal_units_model_or_system_names_the_units_of_temperature_and_the_pressure_tensor():
    """units=model / units=system (before: a ConfigError; the only way was to repeat "metal", and
    leaving it out gave reduced-unit results ~100x off, silently). Reference: ASE's kinetic energy
    and its stress with the ideal-gas part, on the same argon configuration."""
    model, ff = _argon(5.3, 4, 300.0, seed=4)
    system = MDSystem(model, ff, dt=2.0)
    m, v = model.masses, model.velocities
    assert temperature(m, v, units=model) == pytest.approx(300.0, rel=1e-12)
    assert temperature(m, v, units=system) == temperature(m, v, units="metal")
    atoms = bulk("Ar", "fcc", a=5.3, cubic=True).repeat((4, 4, 4))
    atoms.positions = model.positions
    atoms.set_masses(m)
    atoms.set_velocities(v / ASE_FS)  # Angstrom/fs -> ASE's velocity unit
    atoms.calc = AseLJ(sigma=SIG, epsilon=EPS, rc=RC, smooth=False)
    ke = 0.5 * kinetic_tensor(m, v, units=model)[:3].sum()
    # ASE's fs and amu are CODATA 2014 by default, diffsim's 2018: the kinetic parts differ by 8e-9
    assert ke == pytest.approx(atoms.get_kinetic_energy(), rel=1e-7)
    s = -atoms.get_stress(voigt=False, include_ideal_gas=True)
    ref = np.array([s[0, 0], s[1, 1], s[2, 2], s[0, 1], s[0, 2], s[1, 2]])
    ev = ff.evaluate(model.positions)
    for units in (system, model, "metal"):
        np.testing.assert_allclose(ev.pressure_tensor(m, v, units=units), ref, rtol=1e-7, atol=1e-12 * np.abs(ref).max())
        np.testing.assert_allclose(pressure_tensor(ev.virial_tensor, ev.volume, m, v, units=units), ref, rtol=1e-7,
                                   atol=1e-12 * np.abs(ref).max())
    # the trap the units= argument exists for: the kinetic part read in reduced units
    kin = kinetic_tensor(m, v, units="lj")[:3].sum() / kinetic_tensor(m, v, units=model)[:3].sum()
    assert kin == pytest.approx(UNITS["metal"].ftm, rel=1e-12)
    with pytest.raises(ConfigError, match="units"):
        temperature(m, v, units=object())


def test_berendsen_barostat_in_metal_units_finds_argons_lattice_constant_under_pressure():
    """Argon at 4 K under 5000 bar (the target divided by ``pressure_in_bar``), started 6 % too
    large: the lattice constant comes within 0.3 % of the one at which ASE's static LJ stress is
    5000 bar (5.0803 A; at 4 K thermal expansion and the kinetic pressure add about 0.07 %)."""
    from scipy.optimize import brentq

    p0 = 5000.0 / UNITS["metal"].pressure_in_bar

    def static_pressure(a):
        atoms = bulk("Ar", "fcc", a=a, cubic=True).repeat((3, 3, 3))
        atoms.calc = AseLJ(sigma=SIG, epsilon=EPS, rc=RC, smooth=False)
        return -np.trace(atoms.get_stress(voigt=False)) / 3

    a_ref = brentq(lambda a: static_pressure(a) - p0, 5.0, 5.6, xtol=1e-8)
    model, ff = _argon(5.4, 4, 4.0, seed=1)
    system = MDSystem(model, ff, dt=5.0, integrator=Langevin(4.0, 0.01, seed=1))
    # compressibility: argon's bulk modulus is ~2-3 GPa, so kappa ~ 60 A^3/eV
    out = equilibrate_npt(system, 2000, BerendsenBarostat(p0, tau=500.0, compressibility=60.0, every=20))
    a = out["box"][0] / 4
    assert out["density"][0] < out["density"][-1]  # it had to shrink
    assert a == pytest.approx(a_ref, rel=3e-3)
    assert np.mean(out["pressure"][-20:]) == pytest.approx(p0, rel=0.02)


@pytest.mark.parametrize("cls", [BerendsenBarostat, StochasticCellRescaling])
def test_a_max_strain_of_a_whole_box_length_or_more_is_refused(cls):
    """max_strain = 1.5 let the Berendsen box shrink to 1e-4 of itself in one rescaling."""
    with pytest.raises(ConfigError, match="max_strain"):
        cls(1.0, max_strain=1.5)
    with pytest.raises(ConfigError, match="max_strain"):
        cls(1.0, max_strain=1.0)
    cls(1.0, max_strain=0.5)
