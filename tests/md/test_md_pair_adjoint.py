"""The hand-written adjoint of the pair forces (diffsim.md.pair_adjoint, gathered over the full
list) equals Taichi's autodiff of the Newton kernel for every pair function and cutoff
transform, and a rollout through it matches central differences."""

import numpy as np
import pytest
import taichi as ti

from diffsim import Objective, Parameter, Rollout, StoreAll, gradcheck
from diffsim.md import (
    ForceField,
    LennardJones,
    MDSystem,
    Model,
    Morse,
    PotentialEnergy,
    PressureMatch,
    SoftSphere,
    fcc_lattice,
    maxwell_boltzmann,
)
from diffsim.md.forcefield import zero_forces

TWO = np.arange(108) % 2  # two atom types, alternating

# (pair function, cutoff transform) -> the potential; every pair function with every transform
POTENTIALS = {
    "lj": lambda shift, multi: (
        LennardJones([[1.0, 0.7], [0.7, 1.3]], [[1.0, 0.9], [0.9, 1.1]], cutoff=[[1.6, 1.3], [1.3, 1.5]], shift=shift)
        if multi else LennardJones(1.1, 0.95, cutoff=1.6, shift=shift)),
    "morse": lambda shift, multi: (
        Morse([[0.8, 1.1], [1.1, 0.6]], [[2.0, 1.7], [1.7, 2.4]], [[1.1, 1.05], [1.05, 1.2]],
              cutoff=[[1.6, 1.5], [1.5, 1.4]], shift=shift)
        if multi else Morse(0.8, 2.0, 1.1, cutoff=1.6, shift=shift)),
    "soft": lambda shift, multi: (
        SoftSphere([[1.2, 0.9], [0.9, 1.0]], [[0.9, 1.0], [1.0, 0.85]], exponent=9.0, cutoff=[[1.6, 1.5], [1.5, 1.4]],
                   shift=shift)
        if multi else SoftSphere(1.2, 0.9, exponent=9.0, cutoff=1.6, shift=shift)),
}
SHIFTS = (False, "energy", "force")
# the other switches of the kernels, spread over the 9 cases so that each pair function meets
# one and two atom types, an orthorhombic and a tilted cell, and each virial form
CASES = [(kind, shift, k % 2 == 1, (k // 2) % 2 == 1, ("tensor", "trace", "off")[k % 3])
         for k, (kind, shift) in enumerate((kind, shift) for kind in POTENTIALS for shift in SHIFTS)]


def _array(values, grad=True):
    a = ti.ndarray(ti.f64, values.shape, needs_grad=grad)
    a.from_numpy(values)
    if grad:
        a.grad.fill(0.0)
    return a


def _adjoints(pot, ff, x, f, pe, vir, track, seeds, gathered):
    """x's and the parameters' adjoints of one force evaluation (row launch + pair launch) from the
    seeds (dL/df, dL/dpe, dL/dvir), through the Newton kernel's autodiff or the gathered adjoint."""
    zero_forces(f, 0, pe, vir, 0, 1)
    launches = ff.force_launches(x, 0, f, 0, pe, vir, 0, track, gathered=gathered)
    assert (type(launches[-1].kernel).__name__ == "GatheredPair") == gathered
    for lc in launches:
        lc.forward()
    x.grad.fill(0.0)
    for a in pot._arrays:
        a.grad.fill(0.0)
    for arr, seed in zip((f, pe, vir), seeds):
        arr.grad.from_numpy(seed)
    for lc in reversed(launches):
        lc.adjoint()
    return [x.grad.to_numpy()[0]] + [a.grad.to_numpy() for a in pot._arrays]


@pytest.mark.parametrize("kind,shift,multi,tilted,virial", CASES,
                         ids=[f"{c[0]}-{c[1] or 'cut'}-{'2types' if c[2] else '1type'}-{'tilted' if c[3] else 'ortho'}-"
                              f"virial-{c[4]}" for c in CASES])
def test_gathered_adjoint_equals_the_newton_kernels_autodiff(kind, shift, multi, tilted, virial):
    pos, box = fcc_lattice((3, 3, 3), 0.8442)
    rng = np.random.default_rng(1)
    pos = pos + rng.normal(0, 0.08, pos.shape) + 2.0 * box  # unwrapped: the minimum image does the work
    tilt = [0.9, -0.5, 0.4] if tilted else None
    pot = POTENTIALS[kind](shift, multi)
    ff = ForceField([pot], TWO if multi else np.zeros(108, int), box, skin=0.2, tilt=tilt)
    ff.nlist.keep_full = True
    n = len(pos)
    x = _array(pos[None])
    width = 1 if virial == "trace" else 6
    f, pe, vir = _array(np.zeros((1, n, 3))), _array(np.zeros((1, n))), _array(np.zeros((1, n, width)))
    ff.build(x, 0)
    seeds = (rng.normal(size=(1, n, 3)), rng.normal(size=(1, n)), rng.normal(size=(1, n, width)))
    track = int(virial != "off")
    newton = _adjoints(pot, ff, x, f, pe, vir, track, seeds, gathered=False)
    hand = _adjoints(pot, ff, x, f, pe, vir, track, seeds, gathered=True)
    scale = np.abs(newton[0]).max()
    assert scale > 1.0
    np.testing.assert_allclose(hand[0], newton[0], rtol=0, atol=1e-12 * scale)
    # every parameter the kernels read (a soft sphere's exponent and LJ's unused third included)
    for name, h, a in zip(pot.names + ("third",), hand[1:], newton[1:]):
        np.testing.assert_allclose(h, a, rtol=1e-12, atol=1e-12 * max(np.abs(a).max(), 1.0), err_msg=name)
        if name != "third" or kind != "lj":
            assert np.abs(a).max() > 1e-3, name  # the seeds reach it: the comparison is not 0 == 0
    if kind == "lj":
        assert np.all(hand[3] == 0.0)


def _two_type_fluid(tilt, temp=1.2):
    pos, box = fcc_lattice((3, 3, 3), 0.8442)
    rng = np.random.default_rng(0)
    pos = pos + rng.normal(0, 0.03, pos.shape)
    return Model(pos, box=box, tilt=tilt, types=TWO, velocities=maxwell_boltzmann(np.ones(len(pos)), temp, seed=0))


@pytest.mark.parametrize("tilt", [None, [0.6, -0.3, 0.2]], ids=["ortho", "tilted"])
def test_rollout_gradient_through_the_hand_adjoint_matches_central_differences(tilt):
    """dL/d(epsilon, sigma, x0) of a 30-step rollout of a two-type LJ fluid (shifted force), whose
    loss reads the energies and the pressure tensor: every adjoint of the pair kernel is used."""
    model = _two_type_fluid(tilt)
    lj = LennardJones([[1.0, 0.8], [0.8, 1.2]], [[1.0, 0.95], [0.95, 1.05]], cutoff=1.6, shift="force")
    ff = ForceField([lj], model.types, model.box, skin=0.2, tilt=tilt)
    system = MDSystem(model, ff, dt=0.004, segment=10,
                      costs=[PotentialEnergy(1.0 / 108, running=True), PressureMatch(0.5, weight=0.1)])
    assert system.ff.nlist.keep_full  # the tape runs GatheredPair
    obj = Objective(Rollout(system, 30, StoreAll()), ["epsilon", "sigma"])
    rep = gradcheck(obj, obj.x0(), rtol=2e-6, step=1e-6)
    assert rep.ok, str(rep)
    obj_x = Objective(Rollout(system, 30, StoreAll()), [Parameter("x", kind="state0")])
    rep = gradcheck(obj_x, obj_x.x0(), rtol=2e-6, entries=4, directions=1, step=1e-6)
    assert rep.ok, str(rep)
