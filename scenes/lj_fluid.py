"""Lennard-Jones fluid, the LAMMPS ``bench/in.lj`` set-up, differentiable.

fcc lattice at reduced density 0.8442, velocities for T = 1.44, LJ cutoff 2.5 (force-shifted by
default; plain as in LAMMPS with cut="plain"), Verlet skin 0.3, dt = 0.005 tau, velocity Verlet (NVE). ``build()`` returns the
system and a Binomial-checkpointed rollout whose loss is the time-averaged potential energy
per atom, so that its gradient is d<U>/d(epsilon, sigma): the sensitivity of the fluid's
energy to the force field. Reduced LJ units throughout.

Goal (this scene fits nothing; it shows the gradient): d<U>/d(epsilon, sigma) agrees with
central differences within 1e-6 (relative). The default cutoff treatment is therefore
force-shifted (``cut="force-shifted"``): with LAMMPS' plain cut (``cut="plain"``, what the
benchmarks use) the averaged energy jumps whenever a pair crosses the cutoff,
reverse mode does not see the jumps, and it differs from central differences by 0.27 % (measured:
108 atoms, 100 steps); force-shifted, they agree to 1.5e-7.
"""

import pathlib
import time
from dataclasses import dataclass

import numpy as np

from diffsim import Binomial, Objective, Rollout, StoreAll, gradcheck
from diffsim.md import (
    RDF,
    ForceField,
    LennardJones,
    MDSystem,
    Model,
    PotentialEnergy,
    fcc_lattice,
    maxwell_boltzmann,
)
from scenes._config import option, resolve, scene_config
from scenes._goal import Goal, SceneResult
from scenes._plots import save_figure

DEMO_ORDER = 40


GOAL = Goal("largest relative error of d<U>/d(epsilon, sigma) against central differences", 1e-6)


@scene_config
class Config:
    """Options of the fluid (``build``, ``run`` and ``diffsim run lj_fluid``). Reduced LJ units."""

    cells: int = option(3, "fcc cells per axis (4 cells^3 atoms: 3 -> 108, 20 -> LAMMPS' 32000)")
    density: float = option(0.8442, "number density", "sigma^-3")
    temperature: float = option(1.44, "initial temperature (Maxwell-Boltzmann velocities)", "epsilon/k_B")
    cutoff: float = option(2.5, "LJ cutoff radius", "sigma")
    cut: str = option("force-shifted", "cutoff treatment: force-shifted (the gradient check needs it) or plain "
                      "(LAMMPS' in.lj)", choices=("force-shifted", "plain"))
    skin: float = option(0.3, "Verlet list skin", "sigma")
    dt: float = option(0.005, "time step", "tau")
    steps: int = option(100, "time steps of the rollout")
    snapshots: int = option(4, "Binomial checkpointing snapshots (0: StoreAll)")
    segment: int = option(20, "steps fused into one kernel launch")
    seed: int = option(87287, "seed of the initial velocities")
    rdf_bins: int = option(0, "also accumulate a smoothed RDF with this many bins up to cutoff - 0.2 (0: none)")


DEMO = Config(steps=50, rdf_bins=40)  # the demo's small size


@dataclass
class Problem:
    model: Model
    system: MDSystem
    rollout: Rollout
    objective: Objective

    def x0(self):
        return self.objective.x0()

    def check(self, rtol=GOAL.tolerance) -> SceneResult:
        """The gradient and its check against central differences (relative step 1e-4,
        Richardson); ``success`` when both entries agree within ``rtol``."""
        loss, grad = self.objective(self.x0())
        rep = gradcheck(self.objective, self.x0(), rtol=rtol, directions=0)
        figure = rep.max_rel_error if rep.ok else max(rep.max_rel_error, 2 * rtol)
        return SceneResult.judge("lj_fluid", Goal(GOAL.name, rtol), figure, x=self.x0(), fun=loss,
                                 dU_deps=float(grad[0]), dU_dsigma=float(grad[1]), report=str(rep))


def build(config: Config | None = None, **overrides) -> Problem:
    """``cells`` fcc cells per axis (4 cells^3 atoms; 3 -> 108, 10 -> 4000, 20 -> LAMMPS' 32000).
    Loss: (1 / (n steps)) sum_t U(x_t). ``snapshots=None``: StoreAll. ``rdf_bins``: also
    accumulate a smoothed RDF with that many bins up to cutoff - 0.2. ``overrides``: fields of
    :class:`Config` (``build(cells=4, cut="plain")``)."""
    c = resolve(Config, config, **overrides)
    cells, density, temperature, cutoff, skin, dt, steps = c.cells, c.density, c.temperature, c.cutoff, c.skin, c.dt, c.steps
    snapshots, segment, seed, rdf_bins = c.snapshots or None, c.segment, c.seed, c.rdf_bins
    shift = "force" if c.cut == "force-shifted" else False
    pos, box = fcc_lattice((cells,) * 3, density)
    n = len(pos)
    model = Model(pos, masses=1.0, box=box, velocities=maxwell_boltzmann(np.ones(n), temperature, seed=seed))
    ff = ForceField([LennardJones(1.0, 1.0, cutoff=cutoff, shift=shift)], model.types, box, skin=skin)
    rdf = RDF(np.linspace(0.7, cutoff - 0.2, rdf_bins), width=0.05, every=5) if rdf_bins else None
    system = MDSystem(model, ff, dt=dt, segment=segment, observe=("energy",), rdf=rdf,
                      costs=[PotentialEnergy(1.0 / (n * steps), running=True)])
    rollout = Rollout(system, steps, StoreAll() if snapshots is None else Binomial(snapshots))
    return Problem(model, system, rollout, Objective(rollout, ["epsilon", "sigma"]))


def _plot(path, thermo, r, g, title=""):
    import matplotlib.pyplot as plt

    fig, (a, b, c) = plt.subplots(1, 3, figsize=(13, 3.6))
    t = thermo["time"]
    a.plot(t, thermo["potential"], label="potential")
    a.plot(t, thermo["total"], label="total")
    a.set_xlabel("time (tau)")
    a.set_ylabel("energy per atom (epsilon)")
    a.legend()
    b.plot(t, thermo["temperature"], color="C3")
    b.set_xlabel("time (tau)")
    b.set_ylabel("temperature (epsilon/k_B)")
    c.plot(r, g)
    c.axhline(1.0, color="k", lw=0.6, ls="--")
    c.set_xlabel("r (sigma)")
    c.set_ylabel("g(r), smoothed")
    fig.suptitle(f"Lennard-Jones fluid, NVE (reduced units): energy, temperature, RDF; {title}", fontsize=10)
    save_figure(fig, path)


def demo(outdir: pathlib.Path) -> dict:
    """108 atoms: 200 NVE steps (energy, temperature), the RDF, and d<U>/d(eps, sigma) through
    a 50-step checkpointed rollout."""
    outdir = pathlib.Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    prob = build(DEMO)
    n = prob.model.n
    t0 = time.perf_counter()
    run = prob.system.simulate(200, record_every=10)
    t_sim = time.perf_counter() - t0
    thermo = {"time": run["step"] * prob.system.dt, "potential": run["potential"] / n,
              "total": run["total"] / n, "temperature": run["temperature"]}
    t0 = time.perf_counter()
    loss, grad = prob.objective(prob.x0())
    t_grad = time.perf_counter() - t0
    result = prob.check()
    prob.rollout.forward()  # final_state() is only valid after a forward (backward recomputes units)
    g = RDF.mean(prob.rollout.final_state()["rdf"])
    _plot(outdir / "lj_fluid.png", thermo, prob.system.rdf.r, g,
          result.title("d<U>/d(eps, sigma) matches central differences", "gradient check FAILED"))
    drift = float(abs(thermo["total"][-1] - thermo["total"][0]))
    return {**result.summary(), "atoms": n, "nve_steps": 200, "nve_seconds": round(t_sim, 3),
            "energy_drift_per_atom": drift, "final_temperature": float(thermo["temperature"][-1]),
            "mean_potential_per_atom": loss, "dU_deps": float(grad[0]), "dU_dsigma": float(grad[1]),
            "gradient_seconds": round(t_grad, 3), "rdf_peak_r": float(prob.system.rdf.r[np.argmax(g)]),
            "plots": ["lj_fluid.png"]}


def run(config: Config, out: pathlib.Path) -> SceneResult:
    """``diffsim run lj_fluid``: d<U>/d(epsilon, sigma) and its check against central differences."""
    prob = build(config)
    t0 = time.perf_counter()
    prob.objective(prob.x0())
    seconds = time.perf_counter() - t0
    result = prob.check()
    result.details.pop("report")
    result.details.update(atoms=prob.model.n, steps=config.steps, mean_potential_per_atom=float(result.fun),
                          gradient_seconds=round(seconds, 3))
    return result
