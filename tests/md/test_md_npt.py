"""Constant pressure against the equation of state of the same fluid measured at fixed density
(NVT, independently of any barostat): the Berendsen barostat, started away from it, finds the
density at which NVT runs measured the target pressure; stochastic cell rescaling samples that
density and the volume fluctuations the NVT isothermal compressibility implies."""

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
    maxwell_boltzmann,
    simulate_npt,
)
from diffsim.md.tricells import TriclinicFullList

T, RHO = 1.5, 0.8


def _system(density, seed):
    pos, box = fcc_lattice((4, 4, 4), density)
    model = Model(pos, box=box, velocities=maxwell_boltzmann(np.ones(len(pos)), T, seed=seed))
    ff = ForceField([LennardJones(cutoff=1.6, shift="force")], model.types, box, skin=0.2)
    return MDSystem(model, ff, dt=0.005, integrator=Langevin(T, 2.0, seed=seed))


@pytest.fixture(scope="module")
def eos():
    """The NVT equation of state near RHO: {density: mean pressure} at 0.76, RHO and 0.84 (2,000
    steps each after 300 from the same melted liquid, scaled), and that liquid ("liquid": the
    result of its 1,000-step melt from the lattice)."""
    liquid = _system(RHO, seed=2)
    eq = liquid.simulate(1000)  # melt the lattice: 300 steps leave P(0.80) about 0.15 too low
    out = {"liquid": eq, "liquid_box": liquid.model.box}
    for rho in (0.76, RHO, 0.84):
        x = eq["positions"] * (RHO / rho) ** (1 / 3)
        nvt = _system(rho, seed=3)
        start = nvt.simulate(300, positions=x, velocities=eq["velocities"])
        run = nvt.simulate(2000, positions=start["positions"], velocities=start["velocities"], record_every=10,
                           first_step=300)
        p = run["pressure"][1:]
        blocks = p.reshape(5, -1).mean(1)
        assert blocks.std() / np.sqrt(5) < 0.12  # the statistical error of each pressure (about 0.06)
        out[rho] = float(p.mean())
    return out


def test_berendsen_barostat_reaches_the_density_of_the_nvt_equation_of_state(eos):
    p_ref = eos[RHO]
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


def test_stochastic_cell_rescaling_samples_the_density_and_volume_fluctuations_of_the_nvt_equation_of_state(eos):
    """NPT by stochastic cell rescaling (Bernetti & Bussi 2020) against the NVT equation of state
    P(rho) of the same fluid, measured here at fixed density: at P0 = P(0.80) the mean density is
    0.80, and the volume fluctuates as <dV^2> = k_B T V kappa_T with kappa_T = 1 / (rho dP/drho)
    from P at 0.76 and 0.84 (central difference; its curvature error is below 1 %).

    Statistics (measured with other seeds and runs 5x longer, benchmarks/md_npt.py): P at each
    density is known to about 0.06 (2,000 steps), which puts rho(P0) within 0.002 and kappa_T
    within 6 %; the NPT run (10,000 steps, volume correlation time about 100 steps) gives the mean
    density within 0.0015 and <dV^2> within 12 % (1 sigma). Tolerances: 1 % on the density, 40 % on
    the variance (about 3 sigma each). The long version (benchmarks/md_npt.py, 60,000 steps) measured
    a mean density of 0.7986 +- 0.0006 and <dV^2> / (kT V kappa_T) = 1.05 +- 0.03; the Berendsen
    barostat there: 0.7982 +- 0.0008, but 0.28 +- 0.02, volume fluctuations 3.5 times too small."""
    eq = eos["liquid"]
    kappa = 1.0 / (RHO * (eos[0.84] - eos[0.76]) / 0.08)
    assert 0.02 < kappa < 0.07  # a dense LJ liquid at T = 1.5 (about 0.04)
    liquid = _system(RHO, seed=4)
    npt = MDSystem(liquid.model.copy(positions=eq["positions"], velocities=eq["velocities"]), liquid.ff,
                   dt=0.005, integrator=Langevin(T, 2.0, seed=4))
    out = simulate_npt(npt, 10000, StochasticCellRescaling(eos[RHO], tau=0.25, compressibility=kappa, every=5, seed=5))
    keep = out["step"] > 1000
    volume = out["volume"][keep]
    assert np.mean(out["density"][keep]) == pytest.approx(RHO, rel=0.01)
    assert np.mean(out["pressure"][keep]) == pytest.approx(eos[RHO], abs=0.3)
    assert volume.var() == pytest.approx(T * volume.mean() * kappa, rel=0.4)
    # the result is a state to continue from: the box, model and system agree
    assert out["model"].box == pytest.approx(out["box"]) and out["system"].model is out["model"]
    assert np.prod(out["box"]) == pytest.approx(out["volume"][-1])
    np.testing.assert_array_equal(out["step"], 5 * np.arange(1, 2001))
    # the system's own runs afterwards keep its fixed box
    assert npt.forward_runner.cells is None


def test_stochastic_cell_rescaling_is_repeatable_and_rejects_bad_input():
    a = simulate_npt(_system(RHO, 0), 40, StochasticCellRescaling(5.0, tau=0.25, compressibility=0.04, every=4))
    b = simulate_npt(_system(RHO, 0), 40, StochasticCellRescaling(5.0, tau=0.25, compressibility=0.04, every=4))
    np.testing.assert_array_equal(a["volume"], b["volume"])
    assert len(set(a["scale"])) == 10  # the box moved at each rescaling
    with pytest.raises(ConfigError, match="tau"):
        StochasticCellRescaling(1.0, tau=-1.0)
    with pytest.raises(ConfigError, match="every"):
        StochasticCellRescaling(1.0, every=0)
    pos, box = fcc_lattice((4, 4, 4), RHO)
    model = Model(pos, box=box)
    nve = MDSystem(model, ForceField([LennardJones(cutoff=1.6)], model.types, box, skin=0.2), dt=0.005)
    with pytest.raises(ConfigError, match="Langevin"):
        simulate_npt(nve, 10, StochasticCellRescaling(1.0))
    with pytest.raises(ConfigError, match="StochasticCellRescaling"):
        simulate_npt(_system(RHO, 0), 10, BerendsenBarostat(1.0))
    with pytest.raises(ConfigError, match="max_strain"):  # a far too soft box: the first rescaling is refused
        simulate_npt(_system(RHO, 0), 10, StochasticCellRescaling(0.0, tau=0.01, compressibility=1.0, every=5))


def test_stochastic_cell_rescaling_of_a_triclinic_cell_keeps_its_shape_and_samples_the_density(eos):
    """The liquid of the test above in a sheared cell of the same volume (tilts 0.3, -0.2 and 0.25 of
    the edge: the affine shear is relaxed by the 1,000 steps left out), at the same target pressure:
    the same mean density (1 %, as above), the cell scaled isotropically (tilts over lengths kept
    to rounding), the final cell and model triclinic."""
    eq = eos["liquid"]
    edge = float(eos["liquid_box"][0])
    cell = edge * np.array([[1.0, 0.0, 0.0], [0.3, 1.0, 0.0], [-0.2, 0.25, 1.0]])
    frac = eq["positions"] / edge
    model = Model(frac @ cell, box=cell, velocities=eq["velocities"])
    ff = ForceField([LennardJones(cutoff=1.6, shift="force")], model.types, model.box, skin=0.2, tilt=model.tilt)
    npt = MDSystem(model, ff, dt=0.005, integrator=Langevin(T, 2.0, seed=6))
    assert isinstance(npt.forward_runner.full_list(), TriclinicFullList)  # the fast path runs the tilted cell
    out = simulate_npt(npt, 8000, StochasticCellRescaling(eos[RHO], tau=0.25, compressibility=0.04, every=5, seed=7))
    keep = out["step"] > 1000
    assert np.mean(out["density"][keep]) == pytest.approx(RHO, rel=0.01)
    assert np.mean(out["pressure"][keep]) == pytest.approx(eos[RHO], abs=0.3)
    assert out["volume"][keep].std() > 2.0  # the volume fluctuates (about 5 at this size)
    np.testing.assert_allclose(out["tilt"] / out["box"][0], model.tilt / edge, rtol=1e-12)
    np.testing.assert_allclose(out["box"] / out["box"][0], [1.0, 1.0, 1.0], rtol=1e-12)
    assert np.prod(out["box"]) == pytest.approx(out["volume"][-1], rel=1e-12)
    assert out["model"].triclinic and np.allclose(out["model"].tilt, out["tilt"])
    assert out["system"].ff.nlist.triclinic


def test_berendsen_barostat_scales_a_triclinic_cell_isotropically():
    pos, box = fcc_lattice((4, 4, 4), 0.72)
    cell = box[0] * np.array([[1.0, 0.0, 0.0], [0.3, 1.0, 0.0], [-0.2, 0.25, 1.0]])
    model = Model(pos / box[0] @ cell, box=cell, velocities=maxwell_boltzmann(np.ones(len(pos)), T, seed=8))
    ff = ForceField([LennardJones(cutoff=1.6, shift="force")], model.types, model.box, skin=0.2, tilt=model.tilt)
    system = MDSystem(model, ff, dt=0.005, integrator=Langevin(T, 2.0, seed=8))
    out = equilibrate_npt(system, 200, BerendsenBarostat(0.0, tau=0.5, compressibility=0.1, every=20))
    assert out["density"][-1] < 0.71  # the hot liquid (P > 2) expands towards zero pressure
    np.testing.assert_allclose(out["tilt"], model.tilt * out["box"][0] / box[0], rtol=1e-12)
    assert out["model"].triclinic and np.allclose(out["model"].tilt, out["tilt"])


def test_constant_pressure_names_what_it_cannot_run():
    """A cell too small for the fast list (here a tilted one with fewer than 3 bins of cutoff + skin
    across a perpendicular width) or a many-body potential cannot take a barostat: a named error."""
    cell = np.array([[6.4, 0.0, 0.0], [3.6, 6.2, 0.0], [-3.4, 3.3, 6.6]])
    g = (np.stack(np.meshgrid(*[np.arange(4)] * 3, indexing="ij"), -1).reshape(-1, 3) + 0.5) / 4
    model = Model(g @ cell, box=cell)
    system = MDSystem(model, [LennardJones(cutoff=2.5, shift="force")], dt=0.005, integrator=Langevin(T, 2.0))
    assert system.forward_runner.full_list() is None  # the tape's kernels run it at constant volume
    with pytest.raises(ConfigError, match="fast path only.*perpendicular width of a triclinic cell"):
        simulate_npt(system, 10, StochasticCellRescaling(1.0))
