"""A chemist's primitive fcc copper cell from ASE (60 degree angles), its force field built from
the model's cell: energies and forces against a brute-force NumPy sum over lattice images."""

import itertools

import numpy as np
import pytest

from diffsim.errors import ConfigError
from diffsim.md import ForceField, LennardJones, from_ase

pytest.importorskip("ase")


def _brute_force_lj(positions, cell, epsilon, sigma, cutoff):
    """Energy and forces of a plain-cut LJ in a periodic cell, every image within two cells."""
    shifts = np.array(list(itertools.product(range(-2, 3), repeat=3))) @ cell
    energy, forces = 0.0, np.zeros_like(positions)
    for i, xi in enumerate(positions):
        d = (positions[None, :, :] + shifts[:, None, :] - xi).reshape(-1, 3)
        r = np.linalg.norm(d, axis=1)
        keep = (r > 1e-9) & (r < cutoff)
        d, r = d[keep], r[keep]
        sr6 = (sigma / r) ** 6
        energy += 0.5 * np.sum(4 * epsilon * (sr6 * sr6 - sr6))
        dudr = 4 * epsilon * (-12 * sr6 * sr6 + 6 * sr6) / r
        forces[i] = np.sum((dudr / r)[:, None] * d, axis=0)  # -dU/dx_i, d = x_j - x_i
    return energy, forces


def test_a_primitive_fcc_cell_from_ase_gives_the_brute_force_energy_and_forces():
    from ase.build import bulk

    atoms = bulk("Cu", "fcc", a=3.61).repeat((6, 6, 6))  # 216 atoms, cell angles 60 degrees
    atoms.positions += np.random.default_rng(1).normal(0.0, 0.05, atoms.positions.shape)
    model = from_ase(atoms)
    assert model.triclinic
    energy, forces = _brute_force_lj(model.positions, model.cell, 0.4, 2.3, 5.0)
    lj = LennardJones(0.4, 2.3, cutoff=5.0, shift=False)
    for ff in (ForceField([lj], model.types, model.cell), ForceField([lj], model.types, model.box, tilt=model.tilt)):
        ev = ff.evaluate(model.positions)
        assert ev.energy == pytest.approx(energy, rel=1e-12)
        np.testing.assert_allclose(ev.forces, forces, rtol=0, atol=1e-11)


def test_a_cell_that_is_not_lower_triangular_is_refused_with_the_fix():
    from ase.build import bulk

    atoms = bulk("Cu", "fcc", a=3.61).repeat((6, 6, 6))
    with pytest.raises(ConfigError, match="lower-triangular.*from_ase"):
        ForceField([LennardJones(0.4, 2.3, cutoff=5.0)], np.zeros(len(atoms), int), atoms.cell.array)


def test_force_matching_on_tilted_ase_configurations_recovers_the_potential():
    """Three rattled primitive fcc cells (60 degree angles) and one orthorhombic cell, labelled by
    ASE's own Lennard-Jones calculator (energy-shifted at rc); the fit from a guess recovers its
    epsilon and sigma."""
    from ase.build import bulk
    from ase.calculators.lj import LennardJones as AseLJ

    from diffsim.md import ForceMatching
    from optimizers import minimize

    rng = np.random.default_rng(4)
    configs = []
    for cell in ("primitive", "primitive", "primitive", "orthorhombic"):
        atoms = (bulk("Ar", "fcc", a=5.26).repeat((4, 4, 4)) if cell == "primitive"
                 else bulk("Ar", "fcc", a=5.26, orthorhombic=True).repeat((4, 4, 3)))
        atoms.positions += rng.normal(0.0, 0.12, atoms.positions.shape)
        atoms.calc = AseLJ(epsilon=0.0104, sigma=3.40, rc=6.0)
        configs.append(atoms)
    guess = LennardJones(0.008, 3.55, cutoff=6.0, shift=True)
    fit = ForceMatching([guess], configs, log=("epsilon", "sigma"))
    assert fit(fit.x0())[0] > 1e-6
    result = minimize(fit, fit.x0(), method="lbfgs", iters=80)
    fitted = fit.unpack(result.x)
    assert result.success, result.message
    assert float(fitted["epsilon"][0]) == pytest.approx(0.0104, rel=1e-6)
    assert float(fitted["sigma"][0]) == pytest.approx(3.40, rel=1e-7)


def _write_toy_copper_setfl(path):
    """An analytic EAM for copper-like atoms, tabulated and written by ASE's own setfl writer."""
    from ase.calculators.eam import EAM as AseEAM
    from scipy.interpolate import InterpolatedUnivariateSpline as Spline

    nr, dr, nrho, drho, cut = 2000, 0.003, 2000, 0.01, 5.0
    r, rho = np.arange(nr) * dr, np.arange(nrho) * drho
    density = np.where(r < cut, np.exp(-1.5 * (r - 2.55)) * (1 - r / cut) ** 3, 0.0)
    embedding = -1.3 * np.sqrt(rho + 1e-12) + 0.02 * rho
    phi = np.where(r < cut, 0.4 * (np.exp(-2.6 * (r - 2.6)) - 2 * np.exp(-1.3 * (r - 2.6))) * (1 - r / cut) ** 3, 0.0)
    phi[0] = phi[1]
    calc = AseEAM(elements=["Cu"], embedded_energy=np.array([Spline(rho, embedding)]),
                  electron_density=np.array([Spline(r, density)]), phi=np.array([[Spline(r, phi)]]), cutoff=cut,
                  form="alloy", Z=[29], nr=nr, nrho=nrho, dr=dr, drho=drho, lattice=["fcc"], mass=[63.546], a=[3.61])
    calc.Nelements = 1  # ASE's writer reads it; set when a file is read
    calc.write_potential(str(path))


def test_an_eam_run_in_a_tilted_cell_streams_frames_that_ase_recomputes(tmp_path):
    """EAM copper in a primitive fcc cell, Langevin at 300 K, frames streamed to extxyz: ASE's EAM
    calculator on each written frame gives its potential energy, and its stress plus the kinetic
    tensor of the written momenta gives the frame's pressure tensor (xx, yy, zz, xy, xz, yz)."""
    import ase.io
    from ase.build import bulk
    from ase.calculators.eam import EAM as AseEAM

    from diffsim.md import EAM, Langevin, MDSystem

    setfl = tmp_path / "cu_toy.eam.alloy"
    _write_toy_copper_setfl(setfl)
    atoms = bulk("Cu", "fcc", a=3.61).repeat((6, 6, 6))
    atoms.positions += np.random.default_rng(1).normal(0.0, 0.05, atoms.positions.shape)
    model = from_ase(atoms)
    system = MDSystem(model, ForceField([EAM.from_file(setfl)], model.types, model.cell),
                      integrator=Langevin(temperature=300.0, friction=0.01), dt=1.0)
    out = system.simulate(100, record_every=50, trajectory=str(tmp_path / "run.extxyz"))
    frames = ase.io.read(tmp_path / "run.extxyz", ":")
    assert len(frames) == 3 and list(out["step"]) == [0, 50, 100]
    assert out["temperature"][-1] > 50.0  # the thermostat and the released energy have heated it
    for k, frame in enumerate(frames):
        frame.calc = AseEAM(potential=str(setfl))
        assert out["potential"][k] == pytest.approx(frame.get_potential_energy(), abs=1e-6)
        stress = frame.get_stress(voigt=False, include_ideal_gas=False)
        p, m = frame.get_momenta(), frame.get_masses()
        tensor = -stress + (p[:, :, None] * p[:, None, :] / m[:, None, None]).sum(0) / frame.get_volume()
        expected = tensor[[0, 1, 2, 0, 0, 1], [0, 1, 2, 1, 2, 2]]
        np.testing.assert_allclose(out["pressure_tensor"][k], expected, rtol=0, atol=1e-8)
