"""Robot arm reach: a planar 5-link arm (joints about y, gravity -z) starts hanging straight down
and must bring its tip to a target with little effort. Goal: the tip ends within 1 cm of its
target.

Loss (single shooting over the joint torques tau[t], N m)::

    L = dt sum_t [ w_u |tau_t|^2 + w_ee |x_tip(t) - x*|^2 ] + W |x_tip(T) - x*|^2 + w_v |qd(T)|^2

``build()`` gives the problem (rollout through the tape, Objective over tau); ``solve()`` runs
L-BFGS (``optimizers.minimize``). ``track()`` runs model-predictive control with
``optimizers.mpc``: every few steps a short-horizon plan is optimised from the current state
towards a target moving on a circle, its first controls are applied to the plant, and the plan
is warm-started again. ``demo(outdir)`` runs both at small size and writes a GIF of the reach,
its loss curve, the joint trajectories and torques, and the MPC tracking plot.
"""

import pathlib
import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

import optimizers
from diffsim import Objective, Parameter, Rollout, StoreAll
from diffsim.articulated import ArticulatedSystem, Cost, planar_arm
from diffsim.articulated.plotting import animate_planar, plot_trajectories

from ._config import option, resolve, scene_config
from ._goal import Goal, SceneResult
from ._shooting import ShootingProblem

DEMO_ORDER = 10


@scene_config
class Config:
    """Options of the reach (``build``, ``run`` and ``diffsim run arm_reach``)."""

    n_links: int = option(5, "links of the planar arm")
    steps: int = option(100, "time steps of the reach")
    dt: float = option(0.02, "time step", "s")
    target: tuple = option((0.45, 0.0, 0.35), "tip target (x, y, z), the shoulder at the origin", "m")
    effort: float = option(1e-3, "weight of the running torque cost", "loss/(N^2 m^2 s)")
    tip_weight: float = option(0.1, "weight of the running tip distance", "loss/(m^2 s)")
    final_weight: float = option(100.0, "weight of the final tip distance", "loss/m^2")
    velocity_weight: float = option(1.0, "weight of the final joint speeds", "loss s^2/rad^2")
    torque_limit: float = option(15.0, "shoulder torque bound, shrinking to a fifth at the last joint", "N m")
    link_length: float = option(0.2, "length of each link", "m")
    link_mass: float = option(0.5, "mass of each link", "kg")
    iters: int = option(150, "L-BFGS iterations")
    mpc: bool = option(False, "also run MPC tracking of a target moving on a circle")


DEMO = Config(steps=60, dt=0.025, iters=120)  # the demo's small size


@dataclass
class ReachProblem(ShootingProblem):
    """A reach: the arm, its batch-of-one system, the rollout and the Objective over tau.
    Goal: the tip ends within 1 cm of the target."""

    SCENE: ClassVar[str] = "arm_reach"
    GOAL: ClassVar[Goal] = Goal("final distance of the tip to its target", 0.01, "mm", 1e3)
    torque_limit: float = 15.0


def build(config: Config | None = None, **overrides) -> ReachProblem:
    """An n-link arm of rods (link_length m, link_mass kg, armature 0.01 kg m^2 per joint)
    over ``steps`` steps of dt s; tip target (m, world; the shoulder is at the origin). Torque
    bounds: +-torque_limit N m at the shoulder, shrinking linearly to a fifth of it at the last
    joint (roughly what holding the arm out needs).

    The running tip weight is small against the final one: with ``tip_weight=1`` the path cost
    (about 2) outweighs a 1 cm final error (100 x 1e-4) and L-BFGS settles with the tip 1 cm
    off (measured); at 0.1 the tip ends within 0.4-4 mm of the target. ``overrides``: fields of
    :class:`Config` (``build(steps=60, dt=0.025)``)."""
    c = resolve(Config, config, **overrides)
    model = arm_model(c.n_links, c.link_length, c.link_mass, c.torque_limit)
    q0 = np.zeros(c.n_links)
    q0[0] = np.pi / 2  # hanging straight down
    target = np.asarray(c.target, dtype=float)
    cost = Cost(effort=c.effort, ee_link="tip", ee_target=target, ee_weight=c.tip_weight,
                ee_weight_final=c.final_weight, qd_weight_final=c.velocity_weight)
    system = ArticulatedSystem(model, batch=1, dt=c.dt, cost=cost, q0=q0)
    rollout = Rollout(system, c.steps, StoreAll())
    objective = Objective(rollout, [Parameter("tau", lower=-model.effort, upper=model.effort)])
    return ReachProblem(model, system, rollout, objective, target, c, c.torque_limit)


def arm_model(n_links=5, link_length=0.2, link_mass=0.5, torque_limit=15.0):
    """The planar arm used here, with effort limits from torque_limit (N m) at the shoulder
    down to torque_limit / 5 at the last joint."""
    model = planar_arm(n_links, lengths=link_length, masses=link_mass, damping=0.05, armature=0.01)
    model.effort = torque_limit * np.linspace(1.0, 0.2, n_links)
    return model


def circle_target(t, dt, center=(0.35, 0.0, 0.1), radius=0.2, period=4.0):
    """Target position (m) at steps t (array): a circle in the x-z plane."""
    phase = 2 * np.pi * np.asarray(t) * dt / period
    c = np.asarray(center, float)
    return c + radius * np.stack([np.cos(phase), np.zeros_like(phase), np.sin(phase)], axis=-1)


def track(n_links: int = 5, dt: float = 0.02, horizon: int = 15, n_apply: int = 3, n_total: int = 100,
          iters_per_solve: int = 12, effort: float = 1e-3, tip_weight: float = 200.0, torque_limit: float = 15.0,
          target_fn=circle_target) -> dict:
    """MPC tracking of a moving target with ``optimizers.mpc``: plans of ``horizon`` steps
    (L-BFGS, warm-started), ``n_apply`` steps applied per plan, ``n_total`` steps in all.
    Returns the applied controls, visited states, tip and target paths and tracking errors."""
    model = arm_model(n_links, torque_limit=torque_limit)
    q0 = np.zeros(n_links)
    q0[0] = np.pi / 2
    cost = Cost(effort=effort, ee_link="tip", ee_weight=tip_weight, ee_weight_final=tip_weight * 0.2,
                qd_weight_final=0.05)
    planner = ArticulatedSystem(model, batch=1, dt=dt, cost=cost, q0=q0)
    plan_rollout = Rollout(planner, horizon, StoreAll())
    plan_objective = Objective(plan_rollout, ["tau"])
    plant = ArticulatedSystem(model, batch=1, dt=dt, q0=q0)
    plant_rollout = Rollout(plant, 1, StoreAll())

    def plan(state, t, h):
        planner.set_ee_target(target_fn(np.arange(t, t + h + 1), dt)[:, None, :])
        plan_rollout.set_state0(**state)
        return plan_objective

    def simulate(state, u):
        plant_rollout.set_state0(**state)
        plant_rollout.set_controls(tau=u.reshape(1, 1, n_links))
        plant_rollout.forward()
        return plant_rollout.final_state()

    state0 = {"q": q0[None].copy(), "qd": np.zeros((1, n_links))}
    res = optimizers.mpc(plan, simulate, state0, horizon, n_apply, n_total, np.zeros((horizon, n_links)),
                         method="lbfgs", iters_per_solve=iters_per_solve, u_bounds=(-model.effort, model.effort))
    q = np.array([s["q"][0] for s in res.states])
    tip = planner.ee_positions(q[:, None])[:, 0]
    goal = target_fn(np.arange(n_total + 1), dt)
    err = np.linalg.norm(tip - goal, axis=1)
    return {"model": model, "q": q, "tau": res.controls, "tip": tip, "target": goal, "error": err,
            "solves": len(res.solves), "dt": dt}


def demo(outdir: pathlib.Path) -> dict:
    """Reach by single shooting and MPC tracking at small size; a few seconds."""
    outdir = pathlib.Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    problem = build(DEMO)
    res = problem.solve()
    traj = problem.trajectory(res.x)
    t = np.arange(problem.steps + 1) * problem.dt
    links = ["base"] + [f"link{i}" for i in range(1, problem.model.nb)] + ["tip"]
    gif = animate_planar(outdir / "arm_reach.gif", problem.model, traj["q"], links, problem.dt,
                         targets=problem.target, trail="tip", frames=20,
                         title=res.title("5-link arm reach (L-BFGS)", "5-link arm reach: goal MISSED"))
    plot = plot_trajectories(outdir / "arm_reach.png", t, traj["q"], traj["tau"], problem.model.joint_names,
                             "arm reach: joints, torques, loss", res.history["loss"])
    mpc = track(n_total=45, iters_per_solve=10)
    mpc_plot = _plot_tracking(outdir / "arm_reach_mpc.png", mpc)
    final_dist = res.figure
    return {**res.summary(), "initial_loss": float(res.history["loss"][0]), "final_loss": float(res.fun), "iterations": int(res.nit),
            "final_tip_distance_m": final_dist,
            "mpc_solves": mpc["solves"], "mpc_mean_error_m": float(mpc["error"][len(mpc["error"]) // 2:].mean()),
            "seconds": time.perf_counter() - start, "gif": gif, "plot": plot, "mpc_plot": mpc_plot}


def _plot_tracking(path, mpc):
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.6))
    a.plot(mpc["target"][:, 0], mpc["target"][:, 2], "--", color="tab:red", label="target")
    a.plot(mpc["tip"][:, 0], mpc["tip"][:, 2], color="tab:blue", label="tip (MPC)")
    a.set_aspect("equal")
    a.set_xlabel("x (m)")
    a.set_ylabel("z (m)")
    a.legend(fontsize=8)
    t = np.arange(len(mpc["error"])) * mpc["dt"]
    b.plot(t, mpc["error"])
    b.set_xlabel("time (s)")
    b.set_ylabel("tracking error (m)")
    fig.suptitle(f"MPC tracking, {mpc['solves']} re-plans")
    fig.tight_layout()
    fig.savefig(str(path), dpi=90)
    plt.close(fig)
    return str(path)


def run(config: Config, out: pathlib.Path) -> SceneResult:
    """``diffsim run arm_reach``: the reach by L-BFGS (and, with ``mpc``, MPC tracking of a moving
    target, its plot in ``out``). ``success`` when the tip ends within 1 cm of the target."""
    problem = build(config)
    res = problem.solve()
    res.details.update(initial_loss=float(res.history["loss"][0]), final_loss=float(res.fun))
    if config.mpc:
        mpc = track(n_links=config.n_links, dt=config.dt, torque_limit=config.torque_limit)
        pathlib.Path(out).mkdir(parents=True, exist_ok=True)
        res.details.update(mpc_mean_error_m=float(mpc["error"].mean()),
                           mpc_plot=_plot_tracking(pathlib.Path(out) / "arm_reach_mpc.png", mpc))
    return res
