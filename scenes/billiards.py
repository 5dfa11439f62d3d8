"""Billiards: find the cue shot (speed and angle) that sends a chosen ball into a pocket.

A 2D pool table, 2.54 m x 1.27 m, with 16 balls (radius 28.6 mm, 170 g): the cue ball and
15 object balls, either racked for the break (``layout="rack"``) or spread over the table as
in the middle of a game (``layout="spread"``, the default). Balls collide with impulses
(restitution 0.95) whose time-of-impact correction makes the outcome a smooth function of the
shot (DiffTaichi's billiards, Hu et al. 2020); cushions are planes (restitution 0.8); the cloth
decelerates rolling balls by 0.15 m/s^2 (smoothed Coulomb, rolling resistance).

The shot is the cue ball's initial velocity s (cos a, sin a): speed s (m/s) and angle a (rad);
only the cue ball's velocity is a parameter (``Parameter("v", kind="state0", index=0)``).
The loss is the squared distance (m^2) of the target ball from the pocket's mouth at the end of
the rollout, minimised over (s, a) by L-BFGS-B through the tape, from the shot a player would
try first (:func:`naive_shot`: aim at the ghost ball, hard enough for the target ball to arrive
at the end). Goal: the target ball ends within 2 cm of the pocket's mouth. ``solve`` returns a
:class:`~scenes._goal.SceneResult` that says whether it did, and ``diffsim run billiards`` exits
with status 1 when it did not. ``demo`` writes the shot before and after as a GIF and the loss.

Time step: 1 ms. Impulses act along the normal at the moment of impact, so the outcome is
continuous when a change of the shot moves an impact into another step (measured: 0.28 mm per
2e-4 m/s of speed, the same across a step change as elsewhere). Before that fix the target
ball's final position jumped by 5 mm (dt = 1 ms) to 14 mm (2.5 ms) at each step change, and
L-BFGS stalled 2.7-6.8 cm from the pocket; ``solve`` keeps a restart from the best shot for
any such stall (see :meth:`BilliardsProblem.solve`).
"""

import os
import pathlib
import time
from dataclasses import dataclass, field

import numpy as np

import diffsim
from diffsim import Objective, Parameter, Rollout, StoreAll
from diffsim.rigid import BodyTarget, ModelBuilder, RigidSystem, Sphere
from scenes._config import option, resolve, scene_config
from scenes._goal import Goal, SceneResult
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


def ghost_ball(target, pocket):
    """Where the cue ball's centre must be at impact (m) to send a ball at ``target`` straight
    towards ``pocket``: one ball diameter behind it on the pocket line."""
    u = (pocket - target) / np.linalg.norm(pocket - target)
    return target - 2 * RADIUS * u


def _segment_distance(p, a, b):
    """Distance (m) of the point p from the segment a-b."""
    t = np.clip(np.dot(p - a, b - a) / np.dot(b - a, b - a), 0.0, 1.0)
    return float(np.linalg.norm(p - (a + t * (b - a))))


def layout_positions(layout: str, balls: int, seed: int = 4, pocket: int = 5):
    """Cue ball first, then the object balls (m). In the "spread" layout ball 1 is the ball to
    pot and the shot is makeable: no other ball within 5 radii of the cue ball's path to the
    ghost ball, nor of ball 1's path to ``pocket``, nor within 6 radii of ball 1."""
    cue = np.array([0.25 * LENGTH, 0.5 * WIDTH])
    if layout == "rack":
        rows = 1
        while rows * (rows + 1) // 2 < balls - 1:
            rows += 1
        objs = rack([0.75 * LENGTH, 0.5 * WIDTH], rows)[:balls - 1]
        return np.concatenate([cue[None], objs])
    if layout != "spread":
        raise diffsim.ConfigError(f"layout must be 'rack' or 'spread', got {layout!r}")
    rng = np.random.default_rng(seed)
    target = np.array([0.62 * LENGTH, 0.62 * WIDTH])  # the ball to pot
    mouth = pockets()[pocket]
    lanes = [(cue, ghost_ball(target, mouth)), (target, mouth)]
    objs = [target]
    while len(objs) < balls - 1:
        p = rng.uniform([0.45 * LENGTH, 0.12], [LENGTH - 0.12, WIDTH - 0.12])
        if (all(np.linalg.norm(p - q) > 5 * RADIUS for q in objs + [cue])
                and np.linalg.norm(p - target) > 6 * RADIUS
                and all(_segment_distance(p, a, b) > 5 * RADIUS for a, b in lanes)):
            objs.append(p)
    return np.concatenate([cue[None], np.array(objs)])


GOAL = Goal("distance of the target ball to the pocket's mouth", 0.02, "cm", 100.0)


@scene_config
class Config:
    """Options of the shot (``build``, ``run`` and ``diffsim run billiards``)."""

    balls: int = option(16, "balls on the table, the cue ball included (2 to 16)")
    layout: str = option("spread", "spread: a game in progress; rack: the break", choices=("spread", "rack"))
    steps: int = option(1500, "time steps of the shot")
    dt: float = option(1e-3, "time step", "s")
    target_ball: int = option(1, "the ball to pot (1..balls-1; 0 is the cue ball)")
    pocket: int = option(5, "the pocket: 0, 1, 2 along the near long side (y = 0) from x = 0 (corner, "
                                "middle, corner), 3, 4, 5 along the far side likewise")
    speed: float = option(float("nan"), "initial guess of the cue ball's speed (nan: the naive shot)", "m/s")
    angle: float = option(float("nan"), "initial guess of the shot's angle (nan: aim at the ghost ball)", "rad")
    fused: bool = option(True, "advance many steps per kernel launch")
    iters: int = option(40, "L-BFGS iterations, restarts included")


DEMO = Config(steps=1000)  # the demo's small size (1 s of play)


@dataclass
class BilliardsProblem:
    """The shot as an objective over p = (speed m/s, angle rad): ``problem(p) -> (loss, grad)``.

    Only the cue ball's initial velocity is a parameter (``Parameter("v", kind="state0",
    index=0)``); the loss is the squared distance (m^2) of the target ball from the pocket's
    mouth at the end of the rollout."""

    system: RigidSystem
    rollout: Rollout
    objective: Objective
    target_ball: int
    pocket: np.ndarray
    p0: np.ndarray
    history: list = field(default_factory=list)
    config: Config | None = None  # ``solve`` takes its ``iters``

    def x0(self):
        return self.p0.copy()

    def velocity(self, p):
        """Initial velocities (n, 2) for the shot p."""
        v = np.zeros((self.system.n, 2))
        v[0] = p[0] * np.array([np.cos(p[1]), np.sin(p[1])])
        return v

    def __call__(self, p):
        p = np.asarray(p, dtype=np.float64)
        c, s = np.cos(p[1]), np.sin(p[1])
        loss, g0 = self.objective(p[0] * np.array([c, s]))  # dL/dv of the cue ball
        grad = np.array([g0[0] * c + g0[1] * s, p[0] * (-g0[0] * s + g0[1] * c)])
        self.history.append(float(loss))
        return loss, grad

    def trajectory(self, p):
        """Positions (T + 1, n, 2) of the shot p (m)."""
        self.rollout.forward(state0={"v": self.velocity(p)})
        return self.rollout.trajectory("x")

    def distance(self, p) -> float:
        """Distance (m) of the target ball from the pocket's mouth at the end of the shot p."""
        return float(np.linalg.norm(self.trajectory(p)[-1, self.target_ball] - self.pocket))

    def solve(self, iters=None, aim_window=0.05, potted=GOAL.tolerance, restarts=3) -> SceneResult:
        """L-BFGS-B on (speed, angle), speed in [0.3, 8] m/s and the angle within ``aim_window``
        rad of the initial aim (outside it the cue ball misses the target ball, where the
        gradient is zero). Stops once the ball ends within ``potted`` m of the pocket's mouth
        (a pocket is about 6 cm wide). When L-BFGS stops short of that, it starts again from the
        best shot so far with the speed moved by 1 % (up to ``restarts`` times, within ``iters``
        iterations in all; default: the config's ``iters``), should a rough patch of the outcome
        stall the line search. Returns a :class:`SceneResult`: ``success`` when the ball ended
        within ``potted`` m."""
        iters = self.config.iters if iters is None else iters
        from optimizers import minimize

        a = self.p0[1]
        bounds = [(0.3, 8.0), (a - aim_window, a + aim_window)]
        x, left, runs = self.x0(), iters, []
        for attempt in range(restarts + 1):
            res = minimize(self, x, method="lbfgs", iters=left, bounds=bounds,
                           callback=lambda it, p, loss, grad: loss < potted ** 2)
            runs.append(res)
            left -= max(res.nit, 1)
            if res.fun < potted ** 2 or left <= 0:
                break
            best = min(runs, key=lambda r: r.fun)
            x = np.clip(best.x * [1.0 + 0.01 * (-1) ** attempt, 1.0], *np.array(bounds).T)
        best = min(runs, key=lambda r: r.fun)
        goal = Goal(GOAL.name, potted, GOAL.unit, GOAL.scale)
        return SceneResult.judge("billiards", goal, self.distance(best.x), best, speed_m_s=float(best.x[0]),
                                 angle_rad=float(best.x[1]), starts=len(runs),
                                 iterations=int(sum(r.nit for r in runs)))


def naive_shot(cue, target, pocket, seconds, restitution=0.95):
    """The shot a player would try first (speed m/s, angle rad): aim at the ghost ball, and hit
    so hard that the target ball reaches the pocket after ``seconds`` (the cue ball hands on
    (1 + e)/2 cos(cut) of its speed; friction neglected)."""
    ghost = ghost_ball(target, pocket)
    d1, d2 = ghost - cue, pocket - target
    cut = np.cos(np.arctan2(d2[1], d2[0]) - np.arctan2(d1[1], d1[0]))
    speed = (np.linalg.norm(d1) + np.linalg.norm(d2) / (0.5 * (1 + restitution) * max(cut, 0.2))) / seconds
    return float(speed), float(np.arctan2(d1[1], d1[0]))


def build(config: Config | None = None, **overrides) -> BilliardsProblem:
    """A table of ``balls`` balls (2 to 16) and a shot of ``steps`` steps of ``dt`` s.

    target_ball: index of the ball to pot (1..balls-1; 0 is the cue ball); pocket: 0..5 (see
    :func:`pockets`); speed (m/s) and angle (rad) of the initial guess; None or nan takes them
    from :func:`naive_shot` (aim at the ghost ball; the target ball reaches the pocket at the
    end). ``overrides``: fields of :class:`Config` (``build(steps=400)``)."""
    c = resolve(Config, config, **overrides)
    balls, steps, dt, target_ball, pocket = c.balls, c.steps, c.dt, c.target_ball, c.pocket
    if not 2 <= balls <= 16:
        raise diffsim.ConfigError(f"balls must be between 2 and 16, got {balls}")
    if not 1 <= target_ball < balls:
        raise diffsim.ConfigError(f"target_ball must be an object ball, 1..{balls - 1}, got {target_ball}")
    if not 0 <= pocket < 6:
        raise diffsim.ConfigError(f"pocket must be 0..5 (see billiards.pockets), got {pocket}")
    if steps < 1:
        raise diffsim.ConfigError(f"steps must be at least 1, got {steps}")
    pos = layout_positions(c.layout, balls, pocket=pocket)
    b = ModelBuilder(2)
    for i, x in enumerate(pos):
        b.add_body(Sphere(RADIUS), mass=MASS, position=x, restitution=0.95, friction=0.0,
                   name="cue" if i == 0 else f"ball{i}")
    for normal, offset in (([1, 0], 0.0), ([-1, 0], -LENGTH), ([0, 1], 0.0), ([0, -1], -WIDTH)):
        b.add_plane(normal, offset, restitution=0.8, friction=0.0)
    target = pockets()[pocket]
    system = RigidSystem(b.finalize(), dt=dt, contact="impulse", gravity=[0.0, 0.0], rolling_resistance=0.15,
                         friction_smoothing=0.02, fused=c.fused, segment=256,  # launches cost ~0.3 ms each
                         costs=[BodyTarget(target_ball, target)])
    rollout = Rollout(system, steps, StoreAll())
    objective = Objective(rollout, [Parameter("v", kind="state0", index=0)])
    s0, a0 = naive_shot(pos[0], pos[target_ball], target, steps * dt)
    speed = s0 if c.speed is None or np.isnan(c.speed) else c.speed
    angle = a0 if c.angle is None or np.isnan(c.angle) else c.angle
    return BilliardsProblem(system, rollout, objective, target_ball, target, np.array([speed, angle]), config=c)


# ------------------------------------------------------------------------------------ pictures


def draw_table(ax):
    """Draw the cloth (green) and the six pockets (black) on the matplotlib axes ``ax``, in metres."""
    from matplotlib.patches import Circle, Rectangle

    ax.add_patch(Rectangle((0, 0), LENGTH, WIDTH, color="#1f6b3a"))
    for c in pockets(inset=0.0):
        ax.add_patch(Circle(c, 2.2 * RADIUS, color="k"))
    ax.set_xlim(-0.08, LENGTH + 0.08)
    ax.set_ylim(-0.08, WIDTH + 0.08)
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)", fontsize=8)
    ax.set_ylabel("y (m)", fontsize=8)
    ax.tick_params(labelsize=7)


def animate(path, trajectories, titles, target_ball, pocket, every=None, fps=20):
    """GIF of one or more shots side by side (positions (T + 1, n, 2) each, m); a frame every
    ``every`` steps (default: about 50 frames). ``pocket``: (2,) the aimed pocket mouth (m)."""
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter
    from matplotlib.lines import Line2D

    fig, axes = plt.subplots(1, len(trajectories), figsize=(4.6 * len(trajectories), 3.4), squeeze=False)
    axes = axes[0]
    dots = []
    for ax, traj, title in zip(axes, trajectories, titles):
        draw_table(ax)
        ax.plot(*pocket, marker="x", color="yellow", ms=8, mew=2)
        ax.set_title(title, fontsize=9)
        colors = ["white"] + ["#d62728" if i == target_ball else "#f2c14e" for i in range(1, traj.shape[1])]
        dots.append(ax.scatter(traj[0, :, 0], traj[0, :, 1], s=28, c=colors, edgecolors="k", linewidths=0.4,
                               zorder=3))
        ax.plot(traj[:, target_ball, 0], traj[:, target_ball, 1], color="#d62728", lw=0.6, alpha=0.6)
    ball = {"marker": "o", "ls": "", "mec": "k", "mew": 0.4, "ms": 6}
    handles = [Line2D([], [], mfc="white", label="cue ball", **ball),
               Line2D([], [], mfc="#d62728", label=f"ball {target_ball} (to pot) and its path", **ball),
               Line2D([], [], mfc="#f2c14e", label="other balls", **ball),
               Line2D([], [], marker="x", ls="", color="yellow", mec="k", ms=7, label="pocket aimed at")]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    every = every or max(1, trajectories[0].shape[0] // 50)
    frames = range(0, trajectories[0].shape[0], every)

    def update(k):
        for dot, traj in zip(dots, trajectories):
            dot.set_offsets(traj[k])
        return dots

    anim = FuncAnimation(fig, update, frames=frames, blit=False)
    anim.save(str(path), writer=PillowWriter(fps=fps))
    plt.close(fig)


def plot_loss(path, history, title="billiards: distance of the target ball to the pocket", goal=GOAL.tolerance):
    """PNG of the target ball's final distance to the pocket (m, the square root of each loss in
    ``history``) per objective evaluation, with the goal as a dashed line."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.semilogy(np.sqrt(np.maximum(history, 1e-16)), marker=".", label="shot tried")
    ax.axhline(goal, color="k", ls="--", lw=0.8, label=f"goal: within {goal * 100:.0f} cm")
    ax.set_xlabel("objective evaluation")
    ax.set_ylabel("distance to pocket (m)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def demo(outdir: pathlib.Path) -> dict:
    """Optimise a shot on the 16-ball table at small size (1 s of play); GIF of the first and
    last shot and the loss curve. ``success`` says whether the ball was potted."""
    outdir = pathlib.Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    small = os.environ.get("DIFFSIM_SMALL", "1") == "1"
    config = DEMO if small else Config()
    problem = build(config)
    start = time.perf_counter()
    before = problem.trajectory(problem.x0())
    result = problem.solve(iters=config.iters)
    after = problem.trajectory(result.x)
    seconds = time.perf_counter() - start
    animate(outdir / "billiards.gif", [before, after],
            ["initial guess", result.title("optimised shot: potted", "best shot found: goal MISSED")],
            problem.target_ball, problem.pocket)
    plot_loss(outdir / "billiards_loss.png", problem.history,
              result.title("billiards: shot (speed, angle) optimised, ball potted",
                           "billiards: shot (speed, angle) optimised, goal MISSED"))
    return {**result.summary(), "initial_loss": problem.history[0], "final_loss": float(result.fun),
            "distance_to_pocket_m": result.figure, "evaluations": len(problem.history), "seconds": seconds,
            "gif": str(outdir / "billiards.gif"), "plot": str(outdir / "billiards_loss.png")}


def run(config: Config, out: pathlib.Path) -> SceneResult:
    """``diffsim run billiards``: optimise the shot and write its GIF to ``out/billiards.gif``;
    ``success`` when the ball ends within 2 cm of the pocket's mouth."""
    problem = build(config)
    result = problem.solve(iters=config.iters)
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    animate(out / "billiards.gif", [problem.trajectory(result.x)],
            [result.title("optimised shot: potted", "best shot found: goal MISSED")], problem.target_ball,
            problem.pocket)
    result.details.update(final_loss=float(result.fun), gif=str(out / "billiards.gif"))
    return result
