"""Cart-pole swing-up: a cart on a rail (force-driven, |F| <= force limit) carries a passive
pole hanging straight down; find the force sequence that swings the pole up and balances it.

Loss (single shooting over the cart force F[t], N; the hinge has no actuator)::

    L = dt sum_t [ w_u F_t^2 + w_tip |x_tip(t) - x*|^2 ] + W |x_tip(T) - x*|^2
        + w_x x_cart(T)^2 + w_v |qd(T)|^2,      x* = (0, 0, pole length) (upright above the origin)

``build()`` gives the problem; ``solve()`` runs bounded L-BFGS-B (``optimizers.minimize``) from
a small sinusoidal push. ``demo(outdir)`` solves it at small size and writes a GIF of the
swing-up, the loss curve, and the joint trajectories and forces.
"""

import argparse
import json
import pathlib
import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

import diffsim
from diffsim import Objective, Parameter, Rollout, StoreAll
from diffsim.articulated import ArticulatedSystem, Cost, cartpole
from diffsim.articulated.plotting import animate_planar, plot_trajectories

from ._goal import Goal, SceneResult, report
from ._shooting import ShootingProblem

DEMO_ORDER = 11


@dataclass
class SwingUpProblem(ShootingProblem):
    """Goal: the pole's tip ends within 5 cm of the upright position."""

    SCENE: ClassVar[str] = "cartpole"
    GOAL: ClassVar[Goal] = Goal("final distance of the pole tip to upright", 0.05, "cm", 100.0)
    force_limit: float = 15.0

    def x0(self, amplitude: float = 2.0, seed: int = 0):
        """Initial guess: a gentle push back and forth (N) on the cart, zero on the hinge."""
        t = np.arange(self.steps) * self.dt
        tau = np.zeros((self.steps, 1, 2))
        tau[:, 0, 0] = amplitude * np.sin(2 * np.pi * t / 1.0)
        return tau.ravel()

    def solve(self, iters: int = 200, method: str = "lbfgs", x0=None, **kwargs) -> SceneResult:
        return super().solve(iters, method, x0, **kwargs)


def build(steps: int = 120, dt: float = 0.025, cart_mass: float = 1.0, pole_mass: float = 0.3,
          pole_length: float = 0.6, force_limit: float = 15.0, track: float = 1.0, effort: float = 1e-3,
          tip_weight: float = 1.0, final_weight: float = 100.0, cart_weight: float = 10.0,
          velocity_weight: float = 2.0) -> SwingUpProblem:
    """Cart (kg) and uniform pole (kg, m) over ``steps`` steps of dt s; rail of half-length
    ``track`` m (soft limit); |force| <= force_limit N."""
    model = cartpole(cart_mass, pole_mass, pole_length, cart_damping=0.1, pole_damping=0.005, track=track,
                     force_limit=force_limit)
    target = np.array([0.0, 0.0, pole_length])
    cost = Cost(effort=effort, ee_link="tip", ee_target=target, ee_weight=tip_weight,
                ee_weight_final=final_weight, q_weight_final=[cart_weight, 0.0],
                qd_weight_final=velocity_weight)
    system = ArticulatedSystem(model, batch=1, dt=dt, cost=cost)
    rollout = Rollout(system, steps, StoreAll())
    lo = np.array([-force_limit, 0.0])
    objective = Objective(rollout, [Parameter("tau", lower=lo, upper=-lo)])
    return SwingUpProblem(model, system, rollout, objective, target, force_limit)


def demo(outdir: pathlib.Path) -> dict:
    """Swing-up by single shooting at small size; GIF, loss curve, trajectories. A few seconds."""
    outdir = pathlib.Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    problem = build()
    res = problem.solve(iters=80)
    traj = problem.trajectory(res.x)
    t = np.arange(problem.steps + 1) * problem.dt
    gif = animate_planar(outdir / "cartpole.gif", problem.model, traj["q"], ["cart", "tip"], problem.dt,
                         targets=problem.target, trail="tip", frames=20,
                         title=res.title("cart-pole swing-up (L-BFGS)", "cart-pole swing-up: goal MISSED"))
    plot = plot_trajectories(outdir / "cartpole.png", t, traj["q"], traj["tau"], ["cart x (m)", "pole (rad)"],
                             "cart-pole: joints, force, loss", res.history["loss"])
    angle = traj["q"][-1, 1]
    return {**res.summary(), "initial_loss": float(res.history["loss"][0]), "final_loss": float(res.fun),
            "iterations": int(res.nit), "final_pole_angle_rad": float(angle),
            "upright_error_rad": float(abs((angle - np.pi + np.pi) % (2 * np.pi) - np.pi)),
            "final_tip_distance_m": float(np.linalg.norm(traj["tip"][-1] - problem.target)),
            "max_force_N": float(np.abs(traj["tau"][:, 0]).max()),
            "seconds": time.perf_counter() - start, "gif": gif, "plot": plot}


def main(argv=None) -> int:
    """``diffsim run cartpole``: exit status 0 when the pole ends upright (tip within 5 cm)."""
    parser = argparse.ArgumentParser(prog="diffsim run cartpole", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--dt", type=float, default=0.025)
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--force-limit", type=float, default=15.0)
    args = parser.parse_args(argv)
    if not diffsim.is_initialized():
        diffsim.init()
    problem = build(steps=args.steps, dt=args.dt, force_limit=args.force_limit)
    res = problem.solve(iters=args.iters)
    print(json.dumps({"initial_loss": float(res.history["loss"][0]), "final_loss": float(res.fun),
                      "final_tip_distance_m": res.figure, "success": bool(res.success)}))
    return report(res)


if __name__ == "__main__":
    raise SystemExit(main())
