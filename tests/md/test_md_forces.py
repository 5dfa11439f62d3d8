"""Forces are minus the energy gradient for every potential; LJ equals an all-pairs NumPy reference."""

import numpy as np
import pytest
import taichi as ti

from diffsim.errors import ConfigError
from diffsim.md import (
    ForceField,
    HarmonicAngle,
    HarmonicBond,
    LennardJones,
    Morse,
    Shift,
    SoftSphere,
    fcc_lattice,
)
from diffsim.md.forcefield import zero_forces


def _config(cells=(2, 2, 2), density=0.8442, jitter=0.06, seed=0):
    pos, box = fcc_lattice(cells, density)
    rng = np.random.default_rng(seed)
    return pos + rng.normal(0, jitter, pos.shape), box


def _fd_forces(ff, pos, atoms, h=1e-5):
    out = np.zeros((len(atoms), 3))
    for a, i in enumerate(atoms):
        for k in range(3):
            p = pos.copy()
            p[i, k] += h
            ep = ff.evaluate(p).energy
            p[i, k] -= 2 * h
            em = ff.evaluate(p).energy
            out[a, k] = -(ep - em) / (2 * h)
    return out


def _ad_gradient(ff, pos):
    """dE/dx by reverse mode through the force kernels (E = sum of per-atom energies)."""
    n = len(pos)
    x = ti.ndarray(ti.f64, (1, n, 3), needs_grad=True)
    f = ti.ndarray(ti.f64, (1, n, 3), needs_grad=True)
    pe = ti.ndarray(ti.f64, (1, n), needs_grad=True)
    vir = ti.ndarray(ti.f64, (1, n, 6), needs_grad=True)
    x.from_numpy(pos[None])
    ff.build(x, 0)
    zero_forces(f, 0, pe, vir, 0, 1)
    launches = ff.force_launches(x, 0, f, 0, pe, vir, 0, 1)
    for lc in launches:
        lc.forward()
    x.grad.fill(0)
    f.grad.fill(0)
    vir.grad.fill(0)
    pe.grad.fill(1.0)
    for lc in reversed(launches):
        lc.adjoint()
    return x.grad.to_numpy()[0]


POTENTIALS = {
    "lj_cut": lambda: LennardJones(cutoff=1.6),
    "lj_shift_2types": lambda: LennardJones(epsilon=[[1.0, 0.7], [0.7, 1.3]], sigma=[[1.0, 1.05], [1.05, 0.95]],
                                            cutoff=[[1.6, 1.5], [1.5, 1.4]], shift=True),
    "lj_shifted_force": lambda: LennardJones(cutoff=1.6, shift="force"),
    "morse": lambda: Morse(D=0.8, alpha=2.0, r0=1.1, cutoff=1.6, shift=True),
    "soft_sphere": lambda: SoftSphere(epsilon=1.2, sigma=0.9, exponent=9.0, cutoff=1.6, shift="force"),
}


@pytest.mark.parametrize("name", sorted(POTENTIALS))
def test_pair_forces_are_minus_energy_gradient(name):
    pos, box = _config()
    types = np.arange(len(pos)) % 2
    ff = ForceField([POTENTIALS[name]()], types, box, skin=0.2)
    ev = ff.evaluate(pos)
    atoms = [0, 5, 17, 30]
    fd = _fd_forces(ff, pos, atoms)
    scale = np.abs(ev.forces).max()
    assert scale > 0.1
    np.testing.assert_allclose(ev.forces[atoms], fd, atol=2e-7 * scale)
    np.testing.assert_allclose(-_ad_gradient(ff, pos), ev.forces, atol=1e-10 * scale)
    assert abs(ev.forces.sum(0)).max() < 1e-10 * scale  # Newton's third law: no net force


def test_bonded_forces_are_minus_energy_gradient():
    rng = np.random.default_rng(3)
    pos = rng.uniform(0, 3, (6, 3))
    bonds = HarmonicBond([[0, 1], [1, 2], [3, 4], [4, 5]], k=[50.0, 30.0], r0=[1.0, 1.2], bond_types=[0, 0, 1, 1])
    angles = HarmonicAngle([[0, 1, 2], [3, 4, 5]], k=[8.0, 5.0], theta0=[1.9, 2.1], angle_types=[0, 1])
    ff = ForceField([bonds, angles], np.zeros(6, int), None)
    ev = ff.evaluate(pos)
    fd = _fd_forces(ff, pos, range(6))
    scale = np.abs(ev.forces).max()
    np.testing.assert_allclose(ev.forces, fd, atol=1e-7 * scale)
    np.testing.assert_allclose(-_ad_gradient(ff, pos), ev.forces, atol=1e-10 * scale)
    # open boundaries, translation and rotation invariance: the virial tensor is sum_i x_i (x) F_i
    w = np.einsum("ia,ib->ab", pos, ev.forces)
    np.testing.assert_allclose(ev.virial_tensor, w[[0, 1, 2, 0, 0, 1], [0, 1, 2, 1, 2, 2]], atol=1e-10 * np.abs(w).max())
    # energy from the formulas
    def ang(i, j, k):
        a, b = pos[i] - pos[j], pos[k] - pos[j]
        return np.arccos(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    e_ref = (0.5 * 50 * (np.linalg.norm(pos[0] - pos[1]) - 1.0) ** 2 + 0.5 * 50 * (np.linalg.norm(pos[1] - pos[2]) - 1.0) ** 2
             + 0.5 * 30 * (np.linalg.norm(pos[3] - pos[4]) - 1.2) ** 2 + 0.5 * 30 * (np.linalg.norm(pos[4] - pos[5]) - 1.2) ** 2
             + 0.5 * 8 * (ang(0, 1, 2) - 1.9) ** 2 + 0.5 * 5 * (ang(3, 4, 5) - 2.1) ** 2)
    assert ev.energy == pytest.approx(e_ref, rel=1e-12)


def _lj_numpy(pos, box, types, eps, sig, rc, shift):
    """All-pairs minimum-image LJ: energy, forces, virial tensor sum r_ij (x) f_ij (3, 3)."""
    n = len(pos)
    e, f, w = 0.0, np.zeros((n, 3)), np.zeros((3, 3))
    for i in range(n):
        for j in range(i + 1, n):
            d = pos[i] - pos[j]
            d -= box * np.round(d / box)
            r2 = d @ d
            a, b = types[i], types[j]
            if r2 >= rc[a, b] ** 2:
                continue
            s6 = (sig[a, b] ** 2 / r2) ** 3
            e += 4 * eps[a, b] * (s6 * s6 - s6)
            if shift:
                c6 = (sig[a, b] / rc[a, b]) ** 6
                e -= 4 * eps[a, b] * (c6 * c6 - c6)
            fs = 24 * eps[a, b] * (2 * s6 * s6 - s6) / r2
            f[i] += fs * d
            f[j] -= fs * d
            w += fs * np.outer(d, d)
    return e, f, w


@pytest.mark.parametrize("cells,method", [((3, 3, 3), "brute"), ((4, 4, 4), "cells")])
def test_lj_matches_numpy_all_pairs(cells, method):
    pos, box = _config(cells, density=1.0, jitter=0.08, seed=4)
    rng = np.random.default_rng(1)
    types = rng.integers(0, 2, len(pos))
    pos[:5] += box  # some atoms outside the box: minimum image must still hold
    eps = np.array([[1.0, 0.8], [0.8, 1.2]])
    sig = np.array([[1.0, 1.1], [1.1, 0.9]])
    rc = np.array([[1.2, 1.3], [1.3, 1.15]])  # per-pair cutoffs; box edge >= 2 * 1.3
    ff = ForceField([LennardJones(eps, sig, cutoff=rc, shift=True)], types, box, skin=0.1,
                    method=method)
    assert ff.nlist.method == method
    ev = ff.evaluate(pos)
    e, f, w = _lj_numpy(pos, box, types, eps, sig, rc, True)
    assert ev.energy == pytest.approx(e, rel=1e-12)
    np.testing.assert_allclose(ev.forces, f, atol=1e-10 * np.abs(f).max())
    assert ev.virial == pytest.approx(np.trace(w), rel=1e-12)
    # the virial tensor, LAMMPS's order xx, yy, zz, xy, xz, yz, and the pressure tensor it gives
    voigt = w[[0, 1, 2, 0, 0, 1], [0, 1, 2, 1, 2, 2]]
    np.testing.assert_allclose(ev.virial_tensor, voigt, rtol=1e-12, atol=1e-12 * np.abs(w).max())
    np.testing.assert_allclose(ev.atom_virials.sum(0), voigt, rtol=1e-12, atol=1e-12 * np.abs(w).max())
    m = rng.uniform(1.0, 2.0, len(pos))
    v = rng.normal(size=(len(pos), 3))
    kin = np.einsum("i,ia,ib->ab", m, v, v)
    p_ref = ((kin + w) / np.prod(box))[[0, 1, 2, 0, 0, 1], [0, 1, 2, 1, 2, 2]]
    np.testing.assert_allclose(ev.pressure_tensor(m, v), p_ref, rtol=1e-12, atol=1e-14)
    assert ev.energies.sum() == pytest.approx(e, rel=1e-12)


def test_packed_parameters_and_bad_potentials():
    lj = LennardJones(epsilon=[[1.0, 0.5], [0.5, 2.0]], ntypes=2)
    np.testing.assert_allclose(lj.get("epsilon"), [1.0, 0.5, 2.0])
    with pytest.raises(ConfigError, match="symmetric"):
        LennardJones(epsilon=[[1.0, 0.5], [0.4, 2.0]], ntypes=2)
    with pytest.raises(ConfigError, match="sigma"):
        LennardJones(sigma=-1.0, ntypes=1)
    with pytest.raises(ConfigError, match="shape"):
        LennardJones(epsilon=[1.0, 2.0], ntypes=3)
    with pytest.raises(ConfigError, match="shift"):
        LennardJones(shift="both")
    assert LennardJones(shift="force").shift is Shift.FORCE and LennardJones(shift=True).shift is Shift.ENERGY
    assert Morse(shift=Shift.NONE).shift is Shift.NONE and LennardJones().shift is Shift.NONE
    with pytest.raises(ConfigError, match="repeats"):
        HarmonicBond([[0, 0]])
    pos, box = _config()
    with pytest.raises(ConfigError, match="prefix"):
        ForceField([LennardJones(cutoff=1.5), SoftSphere(cutoff=1.5)], np.zeros(len(pos), int), box)
