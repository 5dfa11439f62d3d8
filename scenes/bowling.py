"""Bowling: find the throw that knocks the most pins down. Goal: at most 3 pins left standing.

3D, penalty contacts: a 6.35 kg ball (radius 0.108 m) thrown along a lane (a plane with
friction 0.2) at ten pins (capsules of radius 6 cm and height 0.38 m, 1.5 kg) racked in the
regulation triangle, 0.3048 m apart. Ball-pin contacts are capsule-sphere, pin-pin
capsule-capsule, pins and ball on the lane capsule-plane and sphere-plane. The ball is
released sliding (no spin) 1.2 m before the head pin; the throw is its lateral offset y0 (m)
and heading angle a (rad) at a fixed speed, and the loss is ``sum_pins (axis . z)^2``, 1 per
pin still standing and 0 per pin lying flat, after 0.6 s (:class:`diffsim.rigid.Upright`).

Pin action is chaotic: the loss is a rough function of the throw and the gradient of one throw
says little about its neighbours (measured: |dL/dy0| from 15 to 5600 per m between throws
6 cm apart, with either sign). The fit therefore follows the gradient of the loss smoothed
over jittered throws (randomized smoothing, the average of the tape's gradients over a few
nearby throws) and keeps the best throw seen; ``demo`` writes the first and the best throw as
a GIF and the loss of every throw tried.
"""

import os
import pathlib
import time
from dataclasses import dataclass, field

import numpy as np

from diffsim import Objective, Parameter, Rollout, StoreAll
from diffsim.rigid import Capsule, ModelBuilder, RigidSystem, Sphere, Upright
from scenes._config import option, resolve, scene_config
from scenes._goal import Goal, SceneResult
from scenes._plots import save_figure

DEMO_ORDER = 42

PIN_RADIUS, PIN_HALF, PIN_MASS = 0.06, 0.13, 1.5  # m, m (core half length), kg
BALL_RADIUS, BALL_MASS = 0.108, 6.35
SPACING = 0.3048  # m between pin centres
STIFFNESS = 5e4  # N/m


def pin_spots():
    """(10, 2) positions of the pins (m); head pin at the origin, the rack towards +x."""
    out = []
    for k in range(4):
        for j in range(k + 1):
            out.append([k * SPACING * np.sqrt(3) / 2, (j - k / 2) * SPACING])
    return np.array(out)


GOAL = Goal("pins still standing after the best throw", 3, "pins")


@scene_config
class Config:
    """Options of the throw (``build``, ``run`` and ``diffsim run bowling``)."""

    steps: int = option(1400, "time steps of a throw")
    dt: float = option(5e-4, "time step", "s")
    speed: float = option(7.0, "speed of the ball", "m/s")
    y0: float = option(0.3, "initial guess of the ball's lateral offset", "m")
    angle: float = option(0.0, "initial guess of the ball's heading", "rad")
    fused: bool = option(True, "advance many steps per kernel launch")
    iters: int = option(15, "Adam steps on the smoothed loss")
    samples: int = option(12, "jittered throws averaged per step")


DEMO = Config(steps=1000, iters=4, samples=4)  # the demo's small size


@dataclass
class BowlingProblem:
    """``problem(p) -> (loss, grad)`` over the throw p = (y0 m, angle rad)."""

    system: RigidSystem
    rollout: Rollout
    objective: Objective
    speed: float
    start_x: float
    p0: np.ndarray
    history: list = field(default_factory=list)
    config: Config | None = None  # ``solve`` takes its ``iters`` and ``samples``

    def x0(self):
        return self.p0.copy()

    def _state(self, p):
        x = self.rollout.state0["x"].copy()
        v = np.zeros_like(self.rollout.state0["v"])
        x[0, :2] = [self.start_x, p[0]]
        v[0, :2] = self.speed * np.array([np.cos(p[1]), np.sin(p[1])])
        return x, v

    def __call__(self, p):
        p = np.asarray(p, dtype=np.float64)
        x, v = self._state(p)
        loss, g = self.objective(np.concatenate([x.ravel(), v.ravel()]))
        n3 = x.size
        gx, gv = g[:n3].reshape(x.shape), g[n3:].reshape(v.shape)
        c, s = np.cos(p[1]), np.sin(p[1])
        grad = np.array([gx[0, 1], self.speed * (-gv[0, 0] * s + gv[0, 1] * c)])
        self.history.append(float(loss))
        return loss, grad

    def standing(self, p=None, threshold=0.7) -> int:
        """Pins whose axis is within acos(threshold) of vertical after the throw p."""
        traj = self.trajectory(self.p0 if p is None else p)
        from diffsim.rotations import quat_rotate_np

        axes = quat_rotate_np(traj["q"][-1, 1:], np.array([1.0, 0.0, 0.0]))
        return int(np.sum(np.abs(axes[:, 2]) > threshold))

    def trajectory(self, p):
        x, v = self._state(np.asarray(p, float))
        self.rollout.forward(state0={"x": x, "v": v})
        return {"x": self.rollout.trajectory("x"), "q": self.rollout.trajectory("q")}

    def solve(self, iters=None, lr=0.02, samples=None, jitter=(0.03, 0.01), seed=0, standing=GOAL.tolerance) -> SceneResult:
        """Adam on the loss smoothed over the throw: each step averages value and gradient over
        ``samples`` throws jittered by ``jitter`` (m, rad) around the current one (randomized
        smoothing: pin action is chaotic, and the gradient of one throw says little about its
        neighbours). Returns a :class:`SceneResult` for the best throw seen (``x``: the throw,
        ``fun``: its loss): ``success`` when it leaves at most ``standing`` pins up. ``iters``
        and ``samples`` default to the config's."""
        from optimizers import minimize

        iters = self.config.iters if iters is None else iters
        samples = self.config.samples if samples is None else samples
        rng = np.random.default_rng(seed)
        best = {"loss": np.inf, "p": self.x0()}
        scale = np.asarray(jitter, dtype=np.float64)

        def smoothed(p):
            total, grad = 0.0, np.zeros(2)
            for e in rng.standard_normal((samples, 2)):
                q = p + scale * e
                loss, g = self(q)
                if loss < best["loss"]:
                    best.update(loss=loss, p=q.copy())
                total, grad = total + loss / samples, grad + g / samples
            return total, grad

        res = minimize(smoothed, self.x0(), method="adam", lr=lr, iters=iters,
                       bounds=[(-0.5, 0.5), (-0.3, 0.3)])
        up = self.standing(best["p"])
        return SceneResult.judge("bowling", Goal(GOAL.name, standing, GOAL.unit), up, res, x=best["p"],
                                 fun=best["loss"], pins_standing=up, throw_y0_m=float(best["p"][0]),
                                 throw_angle_rad=float(best["p"][1]))


def build(config: Config | None = None, **overrides) -> BowlingProblem:
    """The rack and a throw of ``speed`` m/s from 1.2 m before the head pin; ``steps`` of ``dt`` s.
    ``overrides``: fields of :class:`Config`."""
    c = resolve(Config, config, **overrides)
    steps, dt, speed, y0, angle = c.steps, c.dt, c.speed, c.y0, c.angle
    b = ModelBuilder(3)
    start_x = -1.2
    b.add_body(Sphere(BALL_RADIUS), mass=BALL_MASS, position=[start_x, y0, BALL_RADIUS - BALL_MASS * 9.81 / STIFFNESS],
               restitution=0.3, friction=0.2, name="ball")
    sink = PIN_MASS * 9.81 / STIFFNESS
    for k, (px, py) in enumerate(pin_spots()):
        b.add_body(Capsule(PIN_RADIUS, PIN_HALF), mass=PIN_MASS, position=[px, py, PIN_HALF + PIN_RADIUS - sink],
                   orientation=[0.0, 1.0, 0.0], angle=-np.pi / 2, restitution=0.5, friction=0.3, name=f"pin{k + 1}")
    b.add_plane([0, 0, 1], 0.0, restitution=0.3, friction=0.2)
    model = b.finalize()
    system = RigidSystem(model, dt=dt, stiffness=STIFFNESS, friction_smoothing=0.02, fused=c.fused, segment=100,
                         costs=[Upright(np.arange(1, 11), axis=(1.0, 0.0, 0.0), up=(0.0, 0.0, 1.0))])
    rollout = Rollout(system, steps, StoreAll())
    objective = Objective(rollout, [Parameter("x", kind="state0"), Parameter("v", kind="state0")])
    return BowlingProblem(system, rollout, objective, speed, start_x, np.array([y0, angle]), config=c)


def animate(path, runs, titles, every=40, fps=15):
    """GIF of throws seen from above and behind (3D): the ball (blue, with its path), standing
    pins red, fallen pins grey; each run holds "x" (T + 1, 11, 3) m and "q" (T + 1, 11, 4)."""
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter

    from diffsim.rotations import quat_rotate_np

    fig = plt.figure(figsize=(4.2 * len(runs), 3.8))
    axes = [fig.add_subplot(1, len(runs), k + 1, projection="3d") for k in range(len(runs))]

    def draw(k):
        for ax, run, title in zip(axes, runs, titles):
            ax.cla()
            ax.set_xlim(-0.6, 1.4)
            ax.set_ylim(-1.0, 1.0)
            ax.set_zlim(0, 2.0)
            ax.view_init(elev=25, azim=-150)
            ax.set_xlabel("x, down the lane (m)", fontsize=8)
            ax.set_ylabel("y (m)", fontsize=8)
            ax.set_zlabel("z (m)", fontsize=8)
            ax.set_title(title, fontsize=9)
            x, q = run["x"][k], run["q"][k]
            ax.plot(*run["x"][:k + 1, 0].T, color="C0", lw=0.8)
            ax.scatter(*x[0], s=120, color="C0")
            axis = quat_rotate_np(q[1:], np.array([1.0, 0.0, 0.0]))
            for c, a in zip(x[1:], axis):
                seg = np.stack([c - PIN_HALF * a, c + PIN_HALF * a])
                ax.plot(*seg.T, color="C3" if abs(a[2]) > 0.7 else "0.5", lw=5, solid_capstyle="round")
        return []

    anim = FuncAnimation(fig, draw, frames=range(0, runs[0]["x"].shape[0], every), blit=False)
    anim.save(str(path), writer=PillowWriter(fps=fps))
    plt.close(fig)


def plot_loss(path, history, title="bowling: throw (offset, angle) optimised"):
    """PNG of the smooth count of standing pins (the loss) of every throw tried."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot(history, marker=".")
    ax.set_xlabel("objective evaluation (throw tried)")
    ax.set_ylabel("pins standing, smooth count")
    ax.set_title(title, fontsize=9)
    save_figure(fig, path)


def demo(outdir: pathlib.Path) -> dict:
    """The throw search at small size (``DEMO``; ``DIFFSIM_SMALL=0``: the default size): a GIF of
    the first and the best throw and the loss of every throw tried. ``success`` when the best
    throw leaves at most 3 pins standing."""
    outdir = pathlib.Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    small = os.environ.get("DIFFSIM_SMALL", "1") == "1"
    config = DEMO if small else Config()
    problem = build(config)
    start = time.perf_counter()
    first = problem.trajectory(problem.x0())
    standing0 = problem.standing()
    result = problem.solve(iters=config.iters, samples=config.samples)
    p = result.x
    seconds = time.perf_counter() - start
    best = problem.trajectory(p)
    standing1 = result.details["pins_standing"]
    verdict = result.title("", ", goal MISSED")
    animate(outdir / "bowling.gif", [first, best], [f"first throw: {standing0} standing",
                                                    f"best throw: {standing1} standing{verdict}"],
            every=80 if small else 25)
    plot_loss(outdir / "bowling_loss.png", problem.history,
              result.title(f"bowling: throw optimised, {standing1} pins standing: goal reached",
                           f"bowling: throw optimised, {standing1} pins standing: goal MISSED"))
    return {**result.summary(), "initial_loss": problem.history[0], "final_loss": float(result.fun),
            "pins_standing_first": standing0, "pins_standing_best": standing1,
            "evaluations": len(problem.history), "seconds": seconds,
            "gif": str(outdir / "bowling.gif"), "plot": str(outdir / "bowling_loss.png")}


def run(config: Config, out: pathlib.Path) -> SceneResult:
    """``diffsim run bowling``: search the throw; ``success`` when the best throw leaves at most 3
    pins standing."""
    problem = build(config)
    result = problem.solve(iters=config.iters, samples=config.samples)
    result.details.update(loss=float(result.fun))
    return result
