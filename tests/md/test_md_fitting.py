"""Force matching recovers hidden parameters; its gradient equals central differences."""

import numpy as np
import pytest

from diffsim import gradcheck
from diffsim.errors import ConfigError
from diffsim.md import ForceField, ForceMatching, LennardJones, Morse, fcc_lattice
from optimizers import minimize

TRUE = {"D": 0.3429, "alpha": 1.3588, "r0": 2.866}


def _data(nconf=5, offset=0.0, seed=0):
    pos, box = fcc_lattice((2, 2, 2), a=3.61)  # 32 Cu atoms, box 7.22 A
    ref = ForceField([Morse(**TRUE, cutoff=3.5, shift=True)], np.zeros(len(pos), int), box)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(nconf):
        p = pos + rng.normal(0, 0.1, pos.shape)
        ev = ref.evaluate(p)
        out.append({"positions": p, "box": box, "energy": ev.energy + offset * len(p), "forces": ev.forces})
    return out


def test_force_matching_recovers_hidden_morse_parameters():
    configs = _data(offset=0.25)
    fm = ForceMatching([Morse(D=0.25, alpha=1.1, r0=2.95, cutoff=3.5, shift=True)], configs,
                       energy_offset=True, log=("D", "alpha"))
    x0 = fm.x0()
    rep = gradcheck(fm, x0, rtol=1e-8)
    assert rep.ok, str(rep)
    res = minimize(fm, x0, method="lbfgs", iters=200)
    got = fm.unpack(res.x)
    for k, v in TRUE.items():
        assert got[k][0] == pytest.approx(v, rel=1e-5), (k, got[k])
    assert got["e0"][0] == pytest.approx(0.25, abs=1e-4)
    _e, f = fm.predict(res.x)
    np.testing.assert_allclose(f, fm.fref_np, atol=1e-4)


def test_minibatch_adam_decreases_the_loss():
    configs = _data(nconf=6, seed=1)
    fm = ForceMatching([Morse(D=0.3, alpha=1.2, r0=2.9, cutoff=3.5, shift=True)], configs, params=["D", "alpha", "r0"])
    x0 = fm.x0()
    full0 = fm(x0)[0]
    batch = fm.minibatch(2, seed=0)
    l_batch, _g_batch = batch(x0)
    assert len(batch.last_batch) == 2
    assert l_batch == pytest.approx(fm.evaluate(x0, batch.last_batch)[0])
    res = minimize(fm.minibatch(2, seed=0), x0, method="adam", lr=0.01, iters=150)
    assert fm(res.x)[0] < 0.05 * full0
    assert np.all(np.abs(fm.unpack(res.x)["r0"] - TRUE["r0"]) < 0.02)


def test_force_matching_lj_two_types_gradient_and_errors():
    rng = np.random.default_rng(2)
    pos, box = fcc_lattice((2, 2, 2), density=0.8)
    types = rng.integers(0, 2, len(pos))
    ref = ForceField([LennardJones([[1.0, 0.8], [0.8, 1.3]], [[1.0, 1.1], [1.1, 0.9]], cutoff=1.65, shift=True)],
                     types, box)
    configs = []
    for _ in range(3):
        p = pos + rng.normal(0, 0.05, pos.shape)
        ev = ref.evaluate(p)
        configs.append({"positions": p, "box": box, "types": types, "energy": ev.energy, "forces": ev.forces})
    fm = ForceMatching([LennardJones(1.1, 1.0, cutoff=1.65, shift=True, ntypes=2)], configs)
    assert fm.names == ["epsilon[0]", "epsilon[1]", "epsilon[2]", "sigma[0]", "sigma[1]", "sigma[2]"]
    rep = gradcheck(fm, fm.x0(), rtol=1e-7)
    assert rep.ok, str(rep)
    with pytest.raises(ConfigError, match="unknown parameter"):
        ForceMatching([LennardJones(cutoff=1.65, ntypes=2)], configs, params=["D"])
    with pytest.raises(ConfigError, match="keys"):
        ForceMatching([LennardJones(cutoff=1.65, ntypes=2)], [{"positions": pos}])


def test_sigma_recovered_from_the_final_pressure_tensor_of_a_run():
    """A chemist's check with the public API only: the final pressure tensor of a 60-step NVE run
    at a hidden sigma (the fast path's frames) is matched by L-BFGS through the tape's rollout
    (its hand-written pair adjoint); trial points that blow the fluid up are backed off from."""
    import diffsim
    from diffsim.md import MDSystem, Model, PressureMatch, maxwell_boltzmann

    pos, box = fcc_lattice((3, 3, 3), density=0.8)
    steps, v0 = 60, maxwell_boltzmann(np.ones(len(pos)), 1.2, seed=3)

    def system(sigma, costs=()):
        model = Model(pos, box=box, velocities=v0)
        lj = LennardJones(epsilon=1.0, sigma=sigma, cutoff=2.5, shift="force")
        return MDSystem(model, ForceField([lj], model.types, box), dt=0.004, costs=list(costs), observe=("pressure",))

    target = np.asarray(system(1.04).simulate(steps, record_every=steps)["frames"].pressure_tensor)[-1]
    rollout = diffsim.Rollout(system(1.0, [PressureMatch(target)]), steps, diffsim.Binomial(4))
    objective = diffsim.Objective(rollout, ["sigma"])
    result = minimize(objective, objective.x0(), method="lbfgs", iters=40, on_nonfinite="backoff", progress=False)
    assert result.success and float(np.ravel(result.x)[0]) == pytest.approx(1.04, abs=1e-6), result.message
