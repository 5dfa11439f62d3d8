"""Force-field fitting: force matching, and fitting a trajectory observable (the RDF).

(a) Force matching: perturbed fcc copper configurations labelled by a reference (ASE's EMT
calculator with ``reference="emt"``, or by default a Morse potential with hidden parameters,
so that the answer is known); a Morse potential (D, alpha, r0) and an energy offset per atom
are fitted by least squares (L-BFGS, or mini-batch Adam). Units: Angstrom, eV, amu.

(b) Trajectory fitting: a small Lennard-Jones fluid under Langevin dynamics (fixed noise
seed), its smoothed RDF averaged over the rollout matched to the RDF of a reference run with
a hidden sigma, backpropagating through a Binomial-checkpointed rollout. Reduced LJ units.
"""

import argparse
import json
import pathlib
import time
from dataclasses import dataclass

import numpy as np

import diffsim
from diffsim import Binomial, Objective, Parameter, Rollout
from diffsim.md import (
    RDF,
    ForceField,
    ForceMatching,
    Langevin,
    LennardJones,
    MDSystem,
    Model,
    Morse,
    RDFMatch,
    fcc_lattice,
    maxwell_boltzmann,
)
from optimizers import minimize
from scenes._plots import save_figure

DEMO_ORDER = 41

GIRIFALCO_WEIZER = {"D": 0.3429, "alpha": 1.3588, "r0": 2.866}  # copper, eV, 1/Angstrom, Angstrom


def copper_configurations(count=8, cells=3, rattle=0.1, strain=0.02, reference="morse", seed=0, cutoff=5.0):
    """Perturbed fcc Cu (a = 3.61 Angstrom): random isotropic strain and Gaussian displacements
    (``rattle`` Angstrom). Labels from ``reference``: "emt" (ASE) or "morse" (Girifalco-Weizer
    Morse with a +0.1 eV/atom offset). Returns a list of dicts for :class:`ForceMatching`."""
    rng = np.random.default_rng(seed)
    out = []
    if reference == "emt":
        from ase.build import bulk
        from ase.calculators.emt import EMT
    else:
        pos0, box0 = fcc_lattice((cells,) * 3, a=3.61)
        ref = None
    for _ in range(count):
        s = 1.0 + rng.uniform(-strain, strain)
        if reference == "emt":
            atoms = bulk("Cu", "fcc", a=3.61 * s, cubic=True).repeat((cells,) * 3)
            atoms.rattle(rattle, seed=int(rng.integers(1 << 30)))
            atoms.calc = EMT()
            out.append({"positions": atoms.get_positions(), "box": np.diag(atoms.get_cell()).copy(),
                            "energy": float(atoms.get_potential_energy()), "forces": atoms.get_forces()})
        else:
            pos = pos0 * s + rng.normal(0, rattle, pos0.shape)
            box = box0 * s
            if ref is None or not np.allclose(ref.boxes_np[0], box):
                ref = ForceField([Morse(**GIRIFALCO_WEIZER, cutoff=cutoff, shift=True)], np.zeros(len(pos), int), box)
            ev = ref.evaluate(pos)
            out.append({"positions": pos, "box": box, "energy": ev.energy + 0.1 * len(pos), "forces": ev.forces})
    return out


def build_force_matching(count=8, cells=3, reference="morse", cutoff=5.0, seed=0, guess=(0.25, 1.1, 2.95)):
    """A :class:`ForceMatching` objective for Morse (D, alpha, r0; log-transformed D, alpha) + e0."""
    configs = copper_configurations(count, cells, reference=reference, seed=seed, cutoff=cutoff)
    morse = Morse(D=guess[0], alpha=guess[1], r0=guess[2], cutoff=cutoff, shift=True)
    return ForceMatching([morse], configs, energy_offset=True, log=("D", "alpha"))


@dataclass
class RDFProblem:
    system: MDSystem
    rollout: Rollout
    objective: Objective
    target: np.ndarray
    r: np.ndarray
    true_sigma: float

    def rdf_at(self, x):
        """(loss, rollout-averaged RDF) at packed parameters x (forward only: after a backward
        under Binomial the tape's working slots hold the first unit, not the final state)."""
        self.objective.set(x)
        loss = self.rollout.forward()
        return loss, RDF.mean(self.rollout.final_state()["rdf"])


def build_rdf_fit(cells=2, steps=300, sigma_true=1.0, sigma_guess=0.93, temperature=1.5, cutoff=1.6, dt=0.004,
                  snapshots=6, segment=20, bins=12, every=5, seed=5) -> RDFProblem:
    """LJ fluid (4 cells^3 atoms, density 0.8442) under Langevin dynamics at ``temperature``;
    target: the rollout-averaged smoothed RDF at ``sigma_true``; objective over sigma (log)."""
    pos, box = fcc_lattice((cells,) * 3, 0.8442)
    n = len(pos)
    model = Model(pos, box=box, velocities=maxwell_boltzmann(np.ones(n), temperature, seed=seed))
    r = np.linspace(0.75, cutoff - 4 * 0.06, bins)
    lj = LennardJones(1.0, sigma_true, cutoff=cutoff, shift="force")
    ff = ForceField([lj], model.types, box, skin=0.3)
    langevin = Langevin(temperature, friction=2.0, seed=seed)
    ref_system = MDSystem(model, ff, langevin, dt=dt, segment=segment, rdf=RDF(r, 0.06, every))
    ref = Rollout(ref_system, steps, Binomial(snapshots))
    ref.forward()
    target = RDF.mean(ref.final_state()["rdf"])
    lj.set(sigma=sigma_guess)
    system = MDSystem(model, ff, langevin, dt=dt, segment=segment, rdf=RDF(r, 0.06, every),
                      costs=[RDFMatch(target, 1.0)])
    rollout = Rollout(system, steps, Binomial(snapshots))
    objective = Objective(rollout, [Parameter("sigma", transform="log", lower=0.7, upper=1.3)])
    return RDFProblem(system, rollout, objective, target, r, sigma_true)


def build(**config):
    """``build(kind="forces", ...)`` -> ForceMatching; ``build(kind="rdf", ...)`` -> RDFProblem."""
    kind = config.pop("kind", "forces")
    return build_force_matching(**config) if kind == "forces" else build_rdf_fit(**config)


def _plot(path, fm, x, hist_fm, prob, hist_rdf, g0, g1):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _, f = fm.predict(x)
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(13, 3.8))
    a.scatter(fm.fref_np.ravel(), f.ravel(), s=3)
    lim = np.abs(fm.fref_np).max() * 1.1
    a.plot([-lim, lim], [-lim, lim], "k--", lw=0.7)
    a.set_xlabel("reference force (eV/A)")
    a.set_ylabel("Morse force (eV/A)")
    a.set_title("force matching parity")
    b.semilogy(hist_fm, label="force matching")
    b.semilogy(hist_rdf, label="RDF matching")
    b.set_xlabel("iteration")
    b.set_ylabel("loss")
    b.legend()
    c.plot(prob.r, prob.target, "k-", label=f"target (sigma={prob.true_sigma})")
    c.plot(prob.r, g0, "C1--", label="initial guess")
    c.plot(prob.r, g1, "C2:", lw=2, label="fitted")
    c.set_xlabel("r (sigma)")
    c.set_ylabel("g(r), smoothed")
    c.legend(fontsize=8)
    save_figure(fig, path)


def demo(outdir: pathlib.Path) -> dict:
    """Force matching on 4 synthetic 32-atom Cu configurations (L-BFGS), then an RDF fit of sigma
    through a 150-step Langevin rollout of 32 LJ atoms (a few L-BFGS iterations)."""
    outdir = pathlib.Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    fm = build_force_matching(count=4, cells=2, cutoff=3.5)
    res = minimize(fm, fm.x0(), method="lbfgs", iters=60)
    fitted = {k: float(v[0]) for k, v in fm.unpack(res.x).items()}
    t_fm = time.perf_counter() - t0
    t0 = time.perf_counter()
    prob = build_rdf_fit(steps=150, snapshots=5)
    x0 = prob.objective.x0()
    loss0, g0 = prob.rdf_at(x0)
    res2 = minimize(prob.objective, x0, method="lbfgs", iters=4, bounds=prob.objective.bounds)
    loss1, g1 = prob.rdf_at(res2.x)
    sigma = float(prob.objective.unpack(res2.x)["sigma"][0])
    _plot(outdir / "forcefield_fit.png", fm, res.x, res.history["loss"], prob, res2.history["loss"], g0, g1)
    return {"force_matching": {"fitted": fitted, "true": {**GIRIFALCO_WEIZER, "e0": 0.1},
                               "initial_loss": float(res.history["loss"][0]), "final_loss": float(res.fun),
                               "seconds": round(t_fm, 3)},
            "rdf_fit": {"sigma_true": prob.true_sigma, "sigma_initial": 0.93, "sigma_fitted": sigma,
                        "initial_loss": float(loss0), "final_loss": float(loss1),
                        "seconds": round(time.perf_counter() - t0, 3)},
            "plots": ["forcefield_fit.png"]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kind", choices=["forces", "rdf"], default="forces")
    ap.add_argument("--reference", choices=["morse", "emt"], default="morse")
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--steps", type=int, default=1000, help="rollout steps of the RDF fit")
    ap.add_argument("--outdir", default="out/forcefield_fit")
    ap.add_argument("--demo", action="store_true")
    args = ap.parse_args(argv)
    diffsim.init()
    if args.demo:
        print(json.dumps(demo(pathlib.Path(args.outdir))))
        return 0
    if args.kind == "forces":
        fm = build_force_matching(reference=args.reference)
        res = minimize(fm, fm.x0(), method="lbfgs", iters=args.iters)
        print(json.dumps({k: float(v[0]) for k, v in fm.unpack(res.x).items()} | {"loss": float(res.fun)}))
    else:
        prob = build_rdf_fit(cells=3, cutoff=2.5, steps=args.steps, snapshots=10)
        res = minimize(prob.objective, prob.objective.x0(), method="lbfgs", iters=args.iters,
                       bounds=prob.objective.bounds)
        print(json.dumps({"sigma": float(prob.objective.unpack(res.x)["sigma"][0]), "loss": float(res.fun)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
