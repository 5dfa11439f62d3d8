"""Cart-pole swing-up: a cart on a rail (force-driven, |F| <= force limit) carries a passive
pole hanging straight down; find the force sequence that swings the pole up and balances it.
Goal: the pole's tip ends within 5 cm of upright.

Loss (single shooting over the cart force F[t], N; the hinge has no actuator)::

    L = dt sum_t [ w_u F_t^2 + w_tip |x_tip(t) - x*|^2 ] + W |x_tip(T) - x*|^2
        + w_x x_cart(T)^2 + w_v |qd(T)|^2,      x* = (0, 0, pole length) (upright above the origin)

``build()`` gives the problem; ``solve()`` runs bounded L-BFGS-B (``optimizers.minimize``) from
a small sinusoidal push. ``demo(outdir)`` solves it at small size and writes a GIF of the
swing-up, the loss curve, and the joint trajectories and forces.
"""

import pathlib
import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from diffsim import Objective, Parameter, Rollout, StoreAll
from diffsim.articulated import ArticulatedSystem, Cost, cartpole
from diffsim.articulated.plotting import animate_planar, plot_trajectories

from ._config import option, resolve, scene_config
from ._goal import Goal, SceneResult
from ._shooting import ShootingProblem

DEMO_ORDER = 11


@scene_config
class Config:
    """Options of the swing-up (``build``, ``run`` and ``diffsim run cartpole``)."""

    steps: int = option(120, "time steps of the swing-up")
    dt: float = option(0.025, "time step", "s")
    cart_mass: float = option(1.0, "mass of the cart", "kg")
    pole_mass: float = option(0.3, "mass of the uniform pole", "kg")
    pole_length: float = option(0.6, "length of the pole", "m")
    force_limit: float = option(15.0, "bound on the cart force", "N")
    track: float = option(1.0, "half-length of the rail (soft limit)", "m")
    effort: float = option(1e-3, "weight of the running force cost", "loss/(N^2 s)")
    tip_weight: float = option(1.0, "weight of the running tip distance to upright", "loss/(m^2 s)")
    final_weight: float = option(100.0, "weight of the final tip distance to upright", "loss/m^2")
    cart_weight: float = option(10.0, "weight of the final cart position", "loss/m^2")
    velocity_weight: float = option(2.0, "weight of the final joint speeds", "loss s^2/(m^2 or rad^2)")
    iters: int = option(200, "L-BFGS iterations")


DEMO = Config(iters=80)  # the demo's small size


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


def build(config: Config | None = None, **overrides) -> SwingUpProblem:
    """Cart (kg) and uniform pole (kg, m) over ``steps`` steps of dt s; rail of half-length
    ``track`` m (soft limit); |force| <= force_limit N. ``overrides``: fields of :class:`Config`."""
    c = resolve(Config, config, **overrides)
    model = cartpole(c.cart_mass, c.pole_mass, c.pole_length, cart_damping=0.1, pole_damping=0.005, track=c.track,
                     force_limit=c.force_limit)
    target = np.array([0.0, 0.0, c.pole_length])
    cost = Cost(effort=c.effort, ee_link="tip", ee_target=target, ee_weight=c.tip_weight,
                ee_weight_final=c.final_weight, q_weight_final=[c.cart_weight, 0.0],
                qd_weight_final=c.velocity_weight)
    system = ArticulatedSystem(model, batch=1, dt=c.dt, cost=cost)
    rollout = Rollout(system, c.steps, StoreAll())
    lo = np.array([-c.force_limit, 0.0])
    objective = Objective(rollout, [Parameter("tau", lower=lo, upper=-lo)])
    return SwingUpProblem(model, system, rollout, objective, target, c, c.force_limit)


def demo(outdir: pathlib.Path) -> dict:
    """Swing-up by single shooting at small size; GIF, loss curve, trajectories. A few seconds."""
    outdir = pathlib.Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    problem = build(DEMO)
    res = problem.solve()
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


def run(config: Config, out: pathlib.Path) -> SceneResult:
    """``diffsim run cartpole``: the swing-up by L-BFGS; ``success`` when the pole's tip ends
    within 5 cm of upright."""
    res = build(config).solve()
    res.details.update(initial_loss=float(res.history["loss"][0]), final_loss=float(res.fun))
    return res
