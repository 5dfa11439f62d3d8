"""The reference system: a hanging chain of masses on nonlinear springs, driven at its free end.

``build()`` gives a Rollout through a checkpointed tape and an Objective over the end force
u[t] (N) and the physical parameters; ``demo(outdir)`` runs a short rollout, its gradient,
a gradient-check table against central differences and a plot of the tip and of dL/du(t).
"""

import argparse
import json
import pathlib
import time
from dataclasses import dataclass

import numpy as np

import diffsim
from diffsim import Binomial, Objective, Rollout, StoreAll, gradcheck
from diffsim.mass_spring import MassSpringChain
from scenes._plots import save_figure

DEMO_ORDER = 0


@dataclass
class Problem:
    system: MassSpringChain
    rollout: Rollout
    objective: Objective

    def x0(self):
        return self.objective.x0()


def build(n: int = 8, steps: int = 300, dt: float = 0.005, snapshots: int | None = 8, segment: int = 25,
          fit=("force",), seed: int = 0) -> Problem:
    """A chain of ``n`` nodes over ``steps`` steps of ``dt`` seconds; Binomial(snapshots)
    checkpointing (None: StoreAll). ``fit`` names what the Objective packs: "force" (the end
    force sequence), "stiffness", "damping", "mass", or initial-state fields "q", "v"."""
    system = MassSpringChain(n=n, dt=dt, stiffness=150.0, damping=0.2, mass=0.1, kappa=100.0,
                             target=-(n + 2) * 0.1, segment=segment)
    schedule = StoreAll() if snapshots is None else Binomial(snapshots)
    rollout = Rollout(system, steps, schedule)
    rng = np.random.default_rng(seed)
    rollout.set_controls(force=0.2 * rng.standard_normal((steps, 1)))
    return Problem(system, rollout, Objective(rollout, list(fit)))


def _plot(path, t, tip, dldu, target):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
    a.plot(t, tip, label="tip height")
    a.axhline(target, color="k", ls="--", lw=0.8, label="target")
    a.set_ylabel("height (m)")
    a.legend(loc="best")
    b.plot(t[:-1], dldu, color="C3")
    b.set_ylabel("dL/du(t) (per N)")
    b.set_xlabel("time (s)")
    fig.suptitle("hanging chain: rollout and reverse-mode gradient")
    save_figure(fig, path)


def demo(outdir: pathlib.Path) -> dict:
    """Rollout, gradient (Binomial checkpointing), gradient check and plot; a few seconds."""
    outdir = pathlib.Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    problem = build(fit=("stiffness", "damping", "mass"))
    ro = problem.rollout
    loss = ro.forward()
    grads = ro.backward()
    stats = ro.stats
    params = gradcheck(problem.objective, problem.x0())
    controls = Objective(ro, ["force"])
    forces = gradcheck(controls, controls.x0(), entries=4, directions=2)
    text = f"{params}\n\n{forces}\n"
    (outdir / "hanging_chain_gradcheck.txt").write_text(text)
    print(text)
    check = max(params, forces, key=lambda r: r.max_rel_error)
    # The plot needs every state: the same rollout under StoreAll (same loss, bitwise).
    full = Rollout(problem.system, ro.steps, StoreAll())
    full.set_controls(**ro.controls())
    assert full.forward() == loss
    q = full.trajectory("q")
    t = np.arange(ro.steps + 1) * problem.system.dt
    _plot(outdir / "hanging_chain.png", t, q[:, -1], grads.controls["force"][:, 0],
          problem.system.target)
    return {"loss": loss, "dL/dstiffness": float(grads.params["stiffness"][0]),
            "gradcheck_max_rel_error": check.max_rel_error, "gradcheck_ok": params.ok and forces.ok,
            "forward_steps": stats.forward_steps, "recomputed_steps": stats.recomputed_steps,
            "snapshots_peak": stats.snapshots_peak, "plot": str(outdir / "hanging_chain.png")}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="diffsim run hanging_chain", description=__doc__)
    parser.add_argument("--nodes", type=int, default=8)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--snapshots", type=int, default=8, help="Binomial snapshots (0: StoreAll)")
    parser.add_argument("--out", default="diffsim-out")
    args = parser.parse_args(argv)
    diffsim.init()
    problem = build(n=args.nodes, steps=args.steps, snapshots=args.snapshots or None)
    start = time.perf_counter()
    loss = problem.rollout.forward()
    problem.rollout.backward()
    print(json.dumps({"loss": loss, "seconds": time.perf_counter() - start,
                      "forward_steps": problem.rollout.stats.forward_steps}))


if __name__ == "__main__":
    main()
