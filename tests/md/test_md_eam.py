"""Embedded-atom method: a two-element setfl file generated here with ASE, read back; energies,
forces and the virial equal ASE's EAM calculator on the same file; gradients of the tables
(force matching and a rollout) against central differences; fitted tables written back."""

import numpy as np
import pytest

from diffsim import Objective, Parameter, Rollout, StoreAll, gradcheck
from diffsim.errors import ConfigError
from diffsim.md import EAM, ForceField, ForceMatching, MDSystem, Model, PotentialEnergy, fcc_lattice, maxwell_boltzmann
from diffsim.md.eam import NotAKnotSlopes

ase = pytest.importorskip("ase")
from ase.build import bulk  # noqa: E402
from ase.calculators.eam import EAM as AseEAM  # noqa: E402

RC = 4.5  # Angstrom


def _taper(r):
    """Smooth to zero at RC with all derivatives continuous enough for a spline: x^4 / (1 + x^4)."""
    x = np.minimum((r - RC) / 0.8, 0.0)
    return x ** 4 / (1 + x ** 4)


def _write_setfl(path, nr=300, nrho=300):
    """An artificial Cu-Ag-like two-element EAM (Morse pairs, exponential densities,
    sqrt-like embedding) written with ASE's own setfl writer."""
    elements, r0, depth, alpha, beta, e0 = ["Cu", "Ag"], [2.55, 2.89], [0.25, 0.2], [1.4, 1.3], [3.0, 2.8], [1.4, 1.2]

    def density(k):
        return lambda r: np.exp(-beta[k] * (np.asarray(r) - r0[k])) * _taper(np.asarray(r))

    def embedding(k):
        return lambda rho: -e0[k] * np.sqrt(np.asarray(rho) + 0.5) + 0.05 * np.asarray(rho) ** 2

    def pair(a, b):
        rm, d, al = 0.5 * (r0[a] + r0[b]), np.sqrt(depth[a] * depth[b]), 0.5 * (alpha[a] + alpha[b])

        def phi(r):
            r = np.asarray(r, dtype=np.float64)
            ex = np.exp(-al * (r - rm))
            return d * (ex * ex - 2 * ex) * _taper(r)

        return phi

    calc = AseEAM(elements=elements, embedded_energy=np.array([embedding(0), embedding(1)]),
                  electron_density=np.array([density(0), density(1)]),
                  phi=np.array([[pair(0, 0), pair(0, 1)], [pair(1, 0), pair(1, 1)]]), cutoff=RC, form="alloy",
                  Z=[29, 47], nr=nr, nrho=nrho, dr=(RC + 0.3) / nr, drho=30.0 / nrho, lattice=["fcc", "fcc"],
                  mass=[63.546, 107.8682], a=[3.61, 4.09], header=["test\n", "two elements\n", "setfl\n"])
    calc.Nelements = 2
    calc.write_potential(str(path))
    return path


@pytest.fixture(scope="module")
def setfl(tmp_path_factory):
    return _write_setfl(tmp_path_factory.mktemp("eam") / "CuAg.eam.alloy")


def _alloy(seed=0, cells=3):
    atoms = bulk("Cu", "fcc", a=3.7, cubic=True).repeat((cells, cells, cells))
    rng = np.random.default_rng(seed)
    symbols = np.where(rng.random(len(atoms)) < 0.3, "Ag", "Cu")
    atoms.set_chemical_symbols(symbols.tolist())
    atoms.positions += rng.normal(0, 0.08, atoms.positions.shape)
    return atoms


def test_not_a_knot_slopes_are_scipys_spline_and_adjoint():
    from scipy.interpolate import InterpolatedUnivariateSpline

    x = 0.3 + 0.1 * np.arange(12)
    y = np.random.default_rng(0).normal(size=(2, 12))
    op = NotAKnotSlopes(12, 0.1)
    for row in range(2):
        ref = InterpolatedUnivariateSpline(x, y[row], k=3).derivative()(x)
        np.testing.assert_allclose(op.apply(y)[row], ref, rtol=1e-11, atol=1e-11)
    g = np.random.default_rng(1).normal(size=(2, 12))
    assert np.sum(op.adjoint(g) * y) == pytest.approx(np.sum(g * op.apply(y)), rel=1e-12)


def test_energies_forces_virial_equal_ases_eam_calculator(setfl, tmp_path):
    eam = EAM.from_setfl(setfl)
    assert eam.elements == ["Cu", "Ag"] and eam.cutoff == RC
    for seed in (0, 1):
        atoms = _alloy(seed)
        types = np.array([eam.elements.index(s) for s in atoms.get_chemical_symbols()])
        box = np.diag(atoms.cell.array)
        ff = ForceField([eam], types, box, skin=0.3)
        ev = ff.evaluate(atoms.positions)
        atoms.calc = AseEAM(potential=str(setfl))
        e_ase = atoms.get_potential_energy()
        f_ase = atoms.get_forces()
        assert ev.energy == pytest.approx(e_ase, rel=1e-11, abs=1e-10)
        np.testing.assert_allclose(ev.forces, f_ase, rtol=0, atol=1e-10 * np.abs(f_ase).max())
        assert np.abs(ev.forces).max() > 0.1
        # ASE's stress (virial part) is -W / V, in ASE's Voigt order xx, yy, zz, yz, xz, xy
        w = ev.virial_tensor[[0, 1, 2, 5, 4, 3]]
        np.testing.assert_allclose(-w / atoms.get_volume(), atoms.get_stress(), rtol=1e-9, atol=1e-12)
    # forces are minus the energy gradient (central differences, a few coordinates)
    pos = atoms.positions.copy()
    h = 1e-5
    for i, k in ((0, 0), (5, 2), (17, 1)):
        p = pos.copy()
        p[i, k] += h
        ep = ff.evaluate(p).energy
        p[i, k] -= 2 * h
        em = ff.evaluate(p).energy
        assert ev.forces[i, k] == pytest.approx(-(ep - em) / (2 * h), rel=1e-6, abs=1e-8)


def test_table_gradients_fitting_and_writing_back(setfl, tmp_path):
    eam = EAM.from_setfl(setfl)
    configs = []
    for seed in (2, 3):
        atoms = _alloy(seed, cells=3)
        atoms.calc = AseEAM(potential=str(setfl))
        configs.append({"positions": atoms.positions, "box": np.diag(atoms.cell.array),
                        "types": [eam.elements.index(s) for s in atoms.get_chemical_symbols()],
                        "energy": atoms.get_potential_energy() + 0.3, "forces": atoms.get_forces() * 1.02})
    fm = ForceMatching([eam], configs, energy_weight=1.0, force_weight=1.0)
    x0 = fm.x0()
    loss, g = fm(x0)
    assert loss > 0
    # entries that matter: densities and pair energies near the first neighbour shell (r ~ 2.6 A),
    # embedding near the densities the atoms see; entries no pair or density reaches have zero gradient
    names = fm.names
    picks = [names.index(f"density[{k}]") for k in (int(2.6 / eam.dr), 300 + int(2.9 / eam.dr))]
    picks += [names.index(f"phi[{k}]") for k in (int(2.5 / eam.dr), 299 + int(2.7 / eam.dr), 598 + int(3.1 / eam.dr))]
    big = np.argsort(-np.abs(g))[:4]
    picks += [int(k) for k in big]
    for k in dict.fromkeys(picks):
        h = 1e-5 * max(1.0, abs(x0[k]))
        e = np.zeros_like(x0)
        e[k] = h
        fd = (fm(x0 + e)[0] - fm(x0 - e)[0]) / (2 * h)
        assert g[k] == pytest.approx(fd, rel=1e-5, abs=1e-9 * np.abs(g).max()), names[k]
    assert np.abs(g[big[0]]) > 1e-3
    # rho = 30: no atom is that dense; only the spline's global slope solve reaches it (decaying ~3.7x per point)
    far = names.index(f"embedding[{eam.get('embedding').shape[1] - 1}]")
    assert abs(g[far]) < 1e-20 * np.abs(g).max()
    # a random direction through every table at once
    d = np.random.default_rng(0).normal(size=x0.size)
    d /= np.linalg.norm(d)
    h = 1e-6
    fd = (fm(x0 + h * d)[0] - fm(x0 - h * d)[0]) / (2 * h)
    assert g @ d == pytest.approx(fd, rel=1e-5)
    # fitted (here: moved) tables written back as a setfl file and read by ASE and by EAM again
    fm.set(x0 - 1e-3 * g / np.abs(g).max())
    out = tmp_path / "fitted.eam.alloy"
    eam.write_setfl(out)
    again = EAM.from_setfl(out)
    for k in ("embedding", "density", "phi"):
        np.testing.assert_allclose(again.get(k), eam.get(k), rtol=1e-14, atol=1e-15)
    atoms = _alloy(4)
    types = np.array([eam.elements.index(s) for s in atoms.get_chemical_symbols()])
    ev = ForceField([eam], types, np.diag(atoms.cell.array), skin=0.3).evaluate(atoms.positions)
    atoms.calc = AseEAM(potential=str(out))
    assert ev.energy == pytest.approx(atoms.get_potential_energy(), rel=1e-11)


def test_eam_dynamics_conserve_energy_and_rollout_gradient(setfl):
    eam = EAM.from_setfl(setfl)
    pos, box = fcc_lattice((3, 3, 3), a=3.62)
    rng = np.random.default_rng(5)
    types = (rng.random(len(pos)) < 0.25).astype(int)
    masses = eam.masses[types]
    model = Model(pos + rng.normal(0, 0.03, pos.shape), masses=masses, types=types, box=box, units="metal",
                  velocities=maxwell_boltzmann(masses, 300.0, seed=1, units="metal"))
    ff = ForceField([eam], types, box, skin=0.4)
    # velocity Verlet on EAM forces: the energy error is second order in dt (the lattice is far from
    # this made-up potential's minimum, so the potential energy swings by ~28 eV in 200 fs)
    runs = [MDSystem(model, ff, dt=dt).simulate(int(200 / dt), record_every=int(20 / dt)) for dt in (2.0, 1.0)]
    errors = [np.ptp(r["total"]) for r in runs]
    assert errors[1] < 0.3 * errors[0] and errors[1] < 0.01 * np.ptp(runs[1]["potential"])
    # a rollout's gradient with respect to a few table entries, through the tape
    cost_system = MDSystem(model, ff, dt=2.0, segment=5, costs=[PotentialEnergy()])
    index = np.zeros(eam.get("phi").shape, bool)
    index[0, [int(2.5 / eam.dr), int(2.6 / eam.dr)]] = True
    dens = np.zeros(eam.get("density").shape, bool)
    dens[0, int(2.55 / eam.dr)] = True
    obj = Objective(Rollout(cost_system, 15, StoreAll()), [Parameter("phi", index=index),
                                                            Parameter("density", index=dens)])
    rep = gradcheck(obj, obj.x0(), rtol=1e-6, step=1e-5)
    assert rep.ok, str(rep)


def _values(v):
    v = np.asarray(v, dtype=np.float64).ravel()
    return "".join(" ".join(f"{x:.16e}" for x in v[k:k + 5]) + "\n" for k in range(0, len(v), 5))


def _write_funcfl(path, nr=300, nrho=300):
    """A one-element funcfl file (LAMMPS ``pair_style eam``: F(rho), the effective charge Z(r),
    rho(r)), written by hand in the format ASE reads."""
    dr, drho = (RC + 0.3) / nr, 30.0 / nrho
    r, rho = np.arange(nr) * dr, np.arange(nrho) * drho
    emb = -1.4 * np.sqrt(rho + 0.5) + 0.05 * rho ** 2
    charge = 0.9 * np.exp(-0.8 * (r - 2.0)) * _taper(r)
    dens = np.exp(-3.0 * (r - 2.55)) * _taper(r)
    path.write_text("a made-up Cu funcfl\n29 63.546 3.61 fcc\n"
                    f"{nrho} {drho!r} {nr} {dr!r} {RC!r}\n" + _values(emb) + _values(charge) + _values(dens))
    return path


def _write_fs(path, nr=300, nrho=300):
    """A two-element Finnis-Sinclair file (``pair_style eam/fs``: a density per ordered pair of
    elements), written by hand in the format ASE reads: per element F, then its nel densities;
    then r phi for the pairs (0,0), (0,1), (1,1)."""
    dr, drho = (RC + 0.3) / nr, 30.0 / nrho
    r, rho = np.arange(nr) * dr, np.arange(nrho) * drho
    beta = np.array([[3.0, 2.6], [2.2, 2.8]])  # density of element a at element b: unequal across the diagonal
    out = "made-up\nFinnis-Sinclair\nCu Ag\n2 Cu Ag\n" + f"{nrho} {drho!r} {nr} {dr!r} {RC!r}\n"
    for a, (z, m, lat) in enumerate(((29, 63.546, 3.61), (47, 107.8682, 4.09))):
        out += f"{z} {m} {lat} fcc\n" + _values((-1.4 + 0.2 * a) * np.sqrt(rho + 0.5) + 0.05 * rho ** 2)
        for b in range(2):
            out += _values(np.exp(-beta[a, b] * (r - 2.6)) * _taper(r))
    for a in range(2):
        for b in range(a + 1):
            ex = np.exp(-1.35 * (r - 2.6 - 0.15 * (a + b)))
            out += _values(r * 0.22 * (ex * ex - 2 * ex) * _taper(r))
    path.write_text(out)
    return path


@pytest.mark.parametrize("form", ["eam", "fs"])
def test_funcfl_and_finnis_sinclair_files_give_ases_energies_and_forces(form, tmp_path):
    path = _write_funcfl(tmp_path / "Cu.eam") if form == "eam" else _write_fs(tmp_path / "CuAg.eam.fs")
    eam = EAM.from_file(path)
    assert eam.finnis_sinclair == (form == "fs")
    atoms = _alloy(seed=6) if form == "fs" else bulk("Cu", "fcc", a=3.7, cubic=True).repeat((3, 3, 3))
    atoms.positions += np.random.default_rng(7).normal(0, 0.08, atoms.positions.shape)
    types = np.array([eam.elements.index(s) for s in atoms.get_chemical_symbols()])
    ev = ForceField([eam], types, np.diag(atoms.cell.array), skin=0.3).evaluate(atoms.positions)
    atoms.calc = AseEAM(potential=str(path))
    f_ase = atoms.get_forces()
    assert ev.energy == pytest.approx(atoms.get_potential_energy(), rel=1e-11, abs=1e-10)
    np.testing.assert_allclose(ev.forces, f_ase, rtol=0, atol=1e-10 * np.abs(f_ase).max())
    assert np.abs(f_ase).max() > 0.1
    w = ev.virial_tensor[[0, 1, 2, 5, 4, 3]]
    np.testing.assert_allclose(-w / atoms.get_volume(), atoms.get_stress(), rtol=1e-9, atol=1e-12)
    if form == "fs":  # the cross densities differ, and each is used the way round ASE uses it
        swapped = EAM.from_file(path)
        den = swapped.get("density")
        swapped.set(density=den[[0, 2, 1, 3]])
        ev2 = ForceField([swapped], types, np.diag(atoms.cell.array), skin=0.3).evaluate(atoms.positions)
        assert abs(ev2.energy - ev.energy) > 1e-3
        # gradients of a force-matching loss with respect to the cross densities (rows 1: Cu at Ag,
        # 2: Ag at Cu) near the first neighbour shell, against central differences
        cfg = {"positions": atoms.positions, "box": np.diag(atoms.cell.array), "types": types,
               "energy": atoms.get_potential_energy() + 0.2, "forces": f_ase * 1.03}
        fm = ForceMatching([eam], [cfg], energy_weight=1.0, force_weight=1.0)
        x0 = fm.x0()
        _loss, g = fm(x0)
        k0 = int(2.6 / eam.dr)
        for k in (fm.names.index(f"density[{300 + k0}]"), fm.names.index(f"density[{600 + k0 + 3}]")):
            h = 1e-5 * max(1.0, abs(x0[k]))
            e = np.zeros_like(x0)
            e[k] = h
            fd = (fm(x0 + e)[0] - fm(x0 - e)[0]) / (2 * h)
            assert g[k] == pytest.approx(fd, rel=1e-5) and abs(fd) > 1e-6, fm.names[k]
        with pytest.raises(ConfigError, match="Finnis-Sinclair"):
            eam.write_setfl(tmp_path / "out.eam.alloy")
    else:  # one element: also written back and read as a setfl file
        eam.write_setfl(tmp_path / "Cu.eam.alloy")
        again = EAM.from_setfl(tmp_path / "Cu.eam.alloy")
        np.testing.assert_allclose(again.get("phi"), eam.get("phi"), rtol=1e-13, atol=1e-15)
    with pytest.raises(ConfigError, match="form"):
        EAM.from_file(tmp_path / "x.table")


def test_eam_bad_input(setfl, tmp_path):
    bad = tmp_path / "bad.eam.alloy"
    bad.write_text("not\na\nsetfl\n2 Cu\n")
    with pytest.raises(ConfigError, match="setfl"):
        EAM.from_setfl(bad)
    with pytest.raises(ConfigError, match="tables disagree"):
        EAM(np.zeros((1, 10)), np.zeros((1, 10)), np.zeros((1, 10)), 0.1, 0.1, 0.5)
    eam = EAM.from_setfl(setfl)
    with pytest.raises(ConfigError, match="elements"):
        ForceField([eam], [0, 1, 2], None)
