"""Billiards: find the cue shot (speed and angle) that sends a chosen ball into a pocket.

A 2D pool table, 2.54 m x 1.27 m, with 16 balls (radius 28.6 mm, 170 g): the cue ball and
15 object balls, either racked for the break (``layout="rack"``) or spread over the table as
in the middle of a game (``layout="spread"``, the default). Balls collide with impulses
(restitution 0.95) whose time-of-impact correction makes the outcome a smooth function of the
shot (DiffTaichi's billiards, Hu et al. 2020); cushions are planes (restitution 0.8); the cloth
decelerates rolling balls by 0.15 m/s^2 (smoothed Coulomb, rolling resistance).

The shot is the cue ball's initial velocity s (cos a, sin a): speed s (m/s) and angle a (rad).
The loss is the squared distance (m^2) of the target ball from the pocket's mouth at the end of
the rollout, minimised over (s, a) through the tape (the gradient of the initial velocity,
chained through (s, a)). ``demo`` writes the shot before and after as a GIF and the loss.
"""

import argparse
import json
import os
import pathlib
import time
from dataclasses import dataclass, field

import numpy as np

import diffsim
from diffsim import Objective, Parameter, Rollout, StoreAll
from diffsim.rigid import BodyTarget, ModelBuilder, RigidSystem, Sphere
from scenes._plots import save_figure

DEMO_ORDER = 40

LENGTH, WIDTH = 2.54, 1.27  # m, playing surface
RADIUS, MASS = 0.028575, 0.17  # m, kg


def pockets(length=LENGTH, width=WIDTH, inset=1.5 * RADIUS):
    """Centres (6, 2) of the pocket mouths (m): four corners, two middles of the long sides,
    moved ``inset`` into the table (where a ball centre can reach)."""
    c = inset
    return np.array([[c, c], [length / 2, c], [length - c, c],
                     [c, width - c], [length / 2, width - c], [length - c, width - c]])


def rack(apex, rows=5, gap=1e-4):
    """Positions of a triangular rack of rows*(rows+1)/2 balls pointing at -x from ``apex`` (m)."""
    out = []
    d = 2 * RADIUS * (1 + gap)
    for k in range(rows):
        for j in range(k + 1):
            out.append([apex[0] + k * d * np.sqrt(3) / 2, apex[1] + (j - k / 2) * d])
    return np.array(out)


def layout_positions(layout: str, balls: int, seed: int = 4):
    """Cue ball first, then the object balls (m)."""
    cue = np.array([0.25 * LENGTH, 0.5 * WIDTH])
    if layout == "rack":
        rows = 1
        while rows * (rows + 1) // 2 < balls - 1:
            rows += 1
        objs = rack([0.75 * LENGTH, 0.5 * WIDTH], rows)[:balls - 1]
    elif layout == "spread":
        rng = np.random.default_rng(seed)
        objs = []
        while len(objs) < balls - 1:
            p = rng.uniform([0.45 * LENGTH, 0.12], [LENGTH - 0.12, WIDTH - 0.12])
            if all(np.linalg.norm(p - q) > 5 * RADIUS for q in objs + [cue]):
                objs.append(p)
        objs = np.array(objs)
        objs[0] = [0.62 * LENGTH, 0.62 * WIDTH]  # the ball to pot, clear of the others
        others = objs[1:]
        keep = np.linalg.norm(others - objs[0], axis=1) > 6 * RADIUS
        objs = np.concatenate([objs[:1], others[keep]])
        while len(objs) < balls - 1:  # refill what the clearance removed, away from the target
            p = rng.uniform([0.45 * LENGTH, 0.12], [LENGTH - 0.12, WIDTH - 0.12])
            if all(np.linalg.norm(p - q) > 6 * RADIUS for q in list(objs) + [cue]):
                objs = np.concatenate([objs, p[None]])
    else:
        raise diffsim.ConfigError(f"layout must be 'rack' or 'spread', got {layout!r}")
    return np.concatenate([cue[None], objs])


@dataclass
class BilliardsProblem:
    """The shot as an objective over p = (speed m/s, angle rad): ``problem(p) -> (loss, grad)``."""

    system: RigidSystem
    rollout: Rollout
    objective: Objective
    target_ball: int
    pocket: np.ndarray
    p0: np.ndarray
    history: list = field(default_factory=list)

    def x0(self):
        return self.p0.copy()

    def velocity(self, p):
        """Initial velocities (n, 2) for the shot p."""
        v = np.zeros((self.system.n, 2))
        v[0] = p[0] * np.array([np.cos(p[1]), np.sin(p[1])])
        return v

    def __call__(self, p):
        p = np.asarray(p, dtype=np.float64)
        loss, g = self.objective(self.velocity(p).ravel())
        g0 = g.reshape(-1, 2)[0]  # dL/dv of the cue ball
        c, s = np.cos(p[1]), np.sin(p[1])
        grad = np.array([g0[0] * c + g0[1] * s, p[0] * (-g0[0] * s + g0[1] * c)])
        self.history.append(float(loss))
        return loss, grad

    def trajectory(self, p):
        """Positions (T + 1, n, 2) of the shot p (m)."""
        self.rollout.forward(state0={"v": self.velocity(p)})
        return self.rollout.trajectory("x")

    def solve(self, iters=30, aim_window=0.05, potted=0.02):
        """L-BFGS-B on (speed, angle), speed in [0.3, 8] m/s and the angle within ``aim_window``
        rad of the initial aim (outside it the cue ball misses the target ball, where the
        gradient is zero). Stops once the ball ends within ``potted`` m of the pocket's mouth
        (a pocket is about 6 cm wide). Returns the optimizers' result."""
        from optimizers import minimize

        a = self.p0[1]
        return minimize(self, self.x0(), method="lbfgs", iters=iters, progress=False,
                        bounds=[(0.3, 8.0), (a - aim_window, a + aim_window)],
                        callback=lambda it, p, loss, grad: loss < potted ** 2)


def build(balls: int = 16, layout: str = "spread", steps: int = 500, dt: float = 2.5e-3, target_ball: int = 1,
          pocket: int = 5, speed: float = 2.5, angle: float | None = None, fused: bool = True) -> BilliardsProblem:
    """A table of ``balls`` balls (2 to 16) and a shot of ``steps`` steps of ``dt`` s.

    target_ball: index of the ball to pot (1..balls-1; 0 is the cue ball); pocket: 0..5 (see
    :func:`pockets`); speed (m/s) and angle (rad) of the initial guess; angle None aims the cue
    ball straight at the target ball."""
    if not 2 <= balls <= 16:
        raise diffsim.ConfigError(f"balls must be between 2 and 16, got {balls}")
    if not 1 <= target_ball < balls:
        raise diffsim.ConfigError(f"target_ball must be an object ball, 1..{balls - 1}, got {target_ball}")
    pos = layout_positions(layout, balls)
    b = ModelBuilder(2)
    for i, x in enumerate(pos):
        b.add_body(Sphere(RADIUS), mass=MASS, position=x, restitution=0.95, friction=0.0,
                   name="cue" if i == 0 else f"ball{i}")
    for normal, offset in (([1, 0], 0.0), ([-1, 0], -LENGTH), ([0, 1], 0.0), ([0, -1], -WIDTH)):
        b.add_plane(normal, offset, restitution=0.8, friction=0.0)
    target = pockets()[pocket]
    system = RigidSystem(b.finalize(), dt=dt, contact="impulse", gravity=[0.0, 0.0], rolling_resistance=0.15,
                         friction_smoothing=0.02, fused=fused, segment=50, costs=[BodyTarget(target_ball, target)])
    rollout = Rollout(system, steps, StoreAll())
    objective = Objective(rollout, [Parameter("v", kind="state0")])
    if angle is None:
        d = pos[target_ball] - pos[0]
        angle = float(np.arctan2(d[1], d[0]))
    return BilliardsProblem(system, rollout, objective, target_ball, target, np.array([speed, angle]))


# ------------------------------------------------------------------------------------ pictures


def _table(ax):
    from matplotlib.patches import Circle, Rectangle

    ax.add_patch(Rectangle((0, 0), LENGTH, WIDTH, color="#1f6b3a"))
    for c in pockets(inset=0.0):
        ax.add_patch(Circle(c, 2.2 * RADIUS, color="k"))
    ax.set_xlim(-0.08, LENGTH + 0.08)
    ax.set_ylim(-0.08, WIDTH + 0.08)
    ax.set_aspect("equal")
    ax.axis("off")


def animate(path, trajectories, titles, target_ball, pocket, every=10, fps=20):
    """GIF of one or more shots side by side (positions (T + 1, n, 2) each)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter

    fig, axes = plt.subplots(1, len(trajectories), figsize=(4.2 * len(trajectories), 2.6))
    axes = np.atleast_1d(axes)
    dots = []
    for ax, traj, title in zip(axes, trajectories, titles):
        _table(ax)
        ax.plot(*pocket, marker="x", color="yellow", ms=8, mew=2)
        ax.set_title(title, fontsize=9)
        colors = ["white"] + ["#d62728" if i == target_ball else "#f2c14e" for i in range(1, traj.shape[1])]
        dots.append(ax.scatter(traj[0, :, 0], traj[0, :, 1], s=28, c=colors, edgecolors="k", linewidths=0.4,
                               zorder=3))
        ax.plot(traj[:, target_ball, 0], traj[:, target_ball, 1], color="#d62728", lw=0.6, alpha=0.6)
    frames = range(0, trajectories[0].shape[0], every)

    def update(k):
        for dot, traj in zip(dots, trajectories):
            dot.set_offsets(traj[k])
        return dots

    anim = FuncAnimation(fig, update, frames=frames, blit=False)
    anim.save(str(path), writer=PillowWriter(fps=fps))
    plt.close(fig)


def plot_loss(path, history, title="billiards: distance of the target ball to the pocket"):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.semilogy(np.sqrt(np.maximum(history, 1e-16)), marker=".")
    ax.set_xlabel("objective evaluation")
    ax.set_ylabel("distance to pocket (m)")
    ax.set_title(title, fontsize=9)
    save_figure(fig, path)


def demo(outdir: pathlib.Path) -> dict:
    """Optimise a shot on the 16-ball table at small size; GIF of the first and last shot and
    the loss curve."""
    outdir = pathlib.Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    small = os.environ.get("DIFFSIM_SMALL", "1") == "1"
    problem = build(steps=400 if small else 600)
    start = time.perf_counter()
    before = problem.trajectory(problem.x0())
    result = problem.solve(iters=15 if small else 40)
    after = problem.trajectory(result.x)
    seconds = time.perf_counter() - start
    animate(outdir / "billiards.gif", [before, after], ["initial guess", "optimised shot"],
            problem.target_ball, problem.pocket)
    plot_loss(outdir / "billiards_loss.png", problem.history)
    return {"initial_loss": problem.history[0], "final_loss": float(result.fun),
            "distance_to_pocket_m": float(np.linalg.norm(after[-1, problem.target_ball] - problem.pocket)),
            "shot_speed_m_s": float(result.x[0]), "shot_angle_rad": float(result.x[1]),
            "evaluations": len(problem.history), "seconds": seconds,
            "gif": str(outdir / "billiards.gif"), "plot": str(outdir / "billiards_loss.png")}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="diffsim run billiards", description=__doc__)
    parser.add_argument("--balls", type=int, default=16)
    parser.add_argument("--layout", choices=["spread", "rack"], default="spread")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--iters", type=int, default=40)
    parser.add_argument("--target-ball", type=int, default=1)
    parser.add_argument("--pocket", type=int, default=5)
    parser.add_argument("--out", default="diffsim-out")
    args = parser.parse_args(argv)
    diffsim.init()
    problem = build(balls=args.balls, layout=args.layout, steps=args.steps, target_ball=args.target_ball,
                    pocket=args.pocket)
    result = problem.solve(iters=args.iters)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    animate(out / "billiards.gif", [problem.trajectory(result.x)], ["optimised shot"], problem.target_ball,
            problem.pocket)
    print(json.dumps({"final_loss": float(result.fun), "speed": float(result.x[0]), "angle": float(result.x[1])}))


if __name__ == "__main__":
    main()
