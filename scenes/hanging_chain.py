"""The reference system: a hanging chain of masses on nonlinear springs, driven at its free end.

``build()`` gives a Rollout through a checkpointed tape and an Objective over the end force
u[t] (N) and the physical parameters; ``demo(outdir)`` runs a short rollout, its gradient,
a gradient-check table against central differences and a plot of the tip and of dL/du(t).

Goal (this scene fits nothing; it shows the gradient): the reverse-mode gradient agrees with
central differences within 1e-6 (relative), for the parameters and for sampled forces.
"""

import pathlib
import time
from dataclasses import dataclass

import numpy as np

from diffsim import Binomial, Objective, Rollout, StoreAll, gradcheck
from diffsim.mass_spring import MassSpringChain
from scenes._config import option, resolve, scene_config
from scenes._goal import Goal, SceneResult
from scenes._plots import save_figure

DEMO_ORDER = 0


GOAL = Goal("largest relative error of the gradient against central differences", 1e-6)


@scene_config
class Config:
    """Options of the hanging chain (``build``, ``run`` and ``diffsim run hanging_chain``)."""

    n: int = option(8, "nodes of the chain")
    steps: int = option(300, "time steps of the rollout")
    dt: float = option(0.005, "time step", "s")
    snapshots: int = option(8, "Binomial checkpointing snapshots (0: StoreAll, every state kept)")
    segment: int = option(25, "steps fused into one kernel launch")
    fit: tuple = option(("stiffness", "damping", "mass"),
                        "what the Objective packs: force (the end force sequence), stiffness, damping, mass, q, v")
    seed: int = option(0, "seed of the random end force")


@dataclass
class Problem:
    system: MassSpringChain
    rollout: Rollout
    objective: Objective

    def x0(self):
        return self.objective.x0()

    def check(self, rtol=GOAL.tolerance) -> SceneResult:
        """Gradient check of the packed objective and of the end forces against central
        differences; ``success`` when every checked entry agrees within ``rtol``. The reports
        are in ``details["reports"]`` (text)."""
        params = gradcheck(self.objective, self.x0(), rtol=rtol)
        controls = Objective(self.rollout, ["force"])
        forces = gradcheck(controls, controls.x0(), rtol=rtol, entries=4, directions=2)
        worst = max(params.max_rel_error, forces.max_rel_error)
        figure = worst if params.ok and forces.ok else max(worst, 2 * rtol)
        return SceneResult.judge("hanging_chain", Goal(GOAL.name, rtol), figure, x=self.x0(),
                                 fun=self.rollout.forward(), reports=f"{params}\n\n{forces}\n")


def build(config: Config | None = None, **overrides) -> Problem:
    """A chain of ``n`` nodes over ``steps`` steps of ``dt`` seconds; Binomial(snapshots)
    checkpointing (0: StoreAll). ``fit`` names what the Objective packs: "force" (the end
    force sequence), "stiffness", "damping", "mass", or initial-state fields "q", "v".
    ``overrides``: fields of :class:`Config` (``build(n=3, steps=10)``)."""
    c = resolve(Config, config, **overrides)
    n, steps, snapshots = c.n, c.steps, c.snapshots or None
    system = MassSpringChain(n=n, dt=c.dt, stiffness=150.0, damping=0.2, mass=0.1, kappa=100.0,
                             target=-(n + 2) * 0.1, segment=c.segment)
    schedule = StoreAll() if snapshots is None else Binomial(snapshots)
    rollout = Rollout(system, steps, schedule)
    rng = np.random.default_rng(c.seed)
    rollout.set_controls(force=0.2 * rng.standard_normal((steps, 1)))
    return Problem(system, rollout, Objective(rollout, list(c.fit)))


def _plot(path, t, tip, dldu, target):
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
    problem = build()
    ro = problem.rollout
    loss = ro.forward()
    grads = ro.backward()
    stats = ro.stats
    result = problem.check()
    text = result.details.pop("reports")
    (outdir / "hanging_chain_gradcheck.txt").write_text(text)
    print(text)
    # The plot needs every state: the same rollout under StoreAll (same loss, bitwise).
    full = Rollout(problem.system, ro.steps, StoreAll())
    full.set_controls(**ro.controls())
    assert full.forward() == loss
    q = full.trajectory("q")
    t = np.arange(ro.steps + 1) * problem.system.dt
    _plot(outdir / "hanging_chain.png", t, q[:, -1], grads.controls["force"][:, 0],
          problem.system.target)
    return {**result.summary(), "loss": loss, "dL/dstiffness": float(grads.params["stiffness"][0]),
            "gradcheck_max_rel_error": result.figure, "gradcheck_ok": bool(result.success),
            "forward_steps": stats.forward_steps, "recomputed_steps": stats.recomputed_steps,
            "snapshots_peak": stats.snapshots_peak, "plot": str(outdir / "hanging_chain.png")}


def run(config: Config, out: pathlib.Path) -> SceneResult:
    """``diffsim run hanging_chain``: rollout, gradient (stiffness, damping, mass) and its check
    against central differences; the check's report goes to ``out/hanging_chain_gradcheck.txt``."""
    problem = build(config)
    start = time.perf_counter()
    loss = problem.rollout.forward()
    problem.rollout.backward()
    seconds = time.perf_counter() - start
    result = problem.check()
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "hanging_chain_gradcheck.txt").write_text(result.details.pop("reports"))
    result.details.update(loss=loss, gradient_seconds=round(seconds, 3),
                          forward_steps=problem.rollout.stats.forward_steps,
                          report=str(out / "hanging_chain_gradcheck.txt"))
    return result
