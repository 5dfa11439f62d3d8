"""Berendsen barostat: started away from it, the box finds the density at which a long NVT run
at fixed density measured the target pressure (the equation of state of this fluid, measured
independently of the barostat)."""

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
    equilibrate_npt,
    fcc_lattice,
    maxwell_boltzmann,
)

T, RHO = 1.5, 0.8


def _system(density, seed):
    pos, box = fcc_lattice((4, 4, 4), density)
    model = Model(pos, box=box, velocities=maxwell_boltzmann(np.ones(len(pos)), T, seed=seed))
    ff = ForceField([LennardJones(cutoff=1.6, shift="force")], model.types, box, skin=0.2)
    return MDSystem(model, ff, dt=0.005, integrator=Langevin(T, 2.0, seed=seed))


def test_berendsen_barostat_reaches_the_density_of_the_nvt_equation_of_state():
    nvt = _system(RHO, seed=0)
    eq = nvt.simulate(400)
    run = nvt.simulate(3000, positions=eq["positions"], velocities=eq["velocities"], record_every=10)
    p_ref = float(run["pressure"][1:].mean())
    blocks = run["pressure"][1:].reshape(6, -1).mean(1)
    assert blocks.std() / np.sqrt(6) < 0.1  # the reference pressure's statistical error (about 0.05)
    out = equilibrate_npt(_system(0.72, seed=1), 2000, BerendsenBarostat(p_ref, tau=0.5, compressibility=0.1, every=20))
    half = len(out["density"]) // 2
    assert out["density"][0] < 0.75  # the box starts too large: it has to shrink
    assert np.mean(out["density"][half:]) == pytest.approx(RHO, rel=0.015)
    assert np.mean(out["pressure"][half:]) == pytest.approx(p_ref, abs=0.25)
    assert out["model"].box == pytest.approx(out["box"]) and out["system"].model is out["model"]
    np.testing.assert_allclose(out["density"] * out["volume"], 256)
    np.testing.assert_array_equal(out["step"], 20 * np.arange(1, 101))
    assert out["units"]["pressure"] == "epsilon/sigma^3"


def test_barostat_bad_input():
    with pytest.raises(ConfigError, match="tau"):
        BerendsenBarostat(1.0, tau=0.0)
    with pytest.raises(ConfigError, match="every"):
        BerendsenBarostat(1.0, every=2.5)
    with pytest.raises(ConfigError, match="pressure"):
        BerendsenBarostat(float("nan"))
    with pytest.raises(ConfigError, match="multiple"):
        equilibrate_npt(_system(RHO, 0), 15, BerendsenBarostat(1.0, every=10))
