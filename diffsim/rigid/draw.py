"""Drawing any rigid system with matplotlib: one frame, or an animation of a trajectory.

``draw_frame(model, state, ax=None)`` draws the bodies of a :class:`~diffsim.rigid.RigidModel`
at one state (a dict with ``x`` and ``theta`` (2D) or ``q`` (3D), as ``RigidSystem.simulate``
returns per time step) and its planes, on 2D or 3D axes labelled in metres; ``animate(model,
trajectory, path)`` writes a GIF of a whole trajectory ({field: (T + 1, ...) array}).

Shapes: spheres as discs (2D) or coarse meshed spheres (3D); boxes as rectangles (2D) or their
six faces (3D); capsules as stadiums (2D) or a segment drawn with end spheres (3D); planes as
lines (2D) or a translucent square under the bodies (3D). The module never chooses matplotlib's
backend: frames are drawn on a :class:`matplotlib.figure.Figure` with an Agg canvas.
"""

import numpy as np

from ..errors import ConfigError
from ..rotations import quat_rotate_np, quat_to_matrix_np
from .model import RigidModel
from .shapes import BOX, CAPSULE, SPHERE

COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink",
           "tab:olive", "tab:cyan", "tab:gray")


def _figure(dim):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(projection="3d" if dim == 3 else None)
    return fig, ax


def _check(model, state, t=None):
    if not isinstance(model, RigidModel):
        raise ConfigError(f"draw_frame needs a RigidModel, got {type(model).__name__}")
    orient = "q" if model.dim == 3 else "theta"
    for name in ("x", orient):
        if name not in state:
            raise ConfigError(f"the state to draw needs '{name}' (got fields {sorted(state)})")
    x = np.asarray(state["x"], dtype=np.float64)
    o = np.asarray(state[orient], dtype=np.float64)
    if t is not None:
        x, o = x[t], o[t]
    if x.shape != (model.n, model.dim):
        raise ConfigError(f"positions to draw must have shape {(model.n, model.dim)}, got {x.shape}")
    return x, o


def _bounds(model, xs):
    """(lo, hi) per axis (m): the bodies over all given positions, padded."""
    r = float(np.max(model.bounding_radius))
    lo = xs.reshape(-1, model.dim).min(axis=0) - 1.5 * r
    hi = xs.reshape(-1, model.dim).max(axis=0) + 1.5 * r
    span = float(np.max(hi - lo))
    mid = 0.5 * (lo + hi)
    return mid - 0.5 * span, mid + 0.5 * span


def _draw_2d(ax, model, x, theta, lo, hi):
    from matplotlib.patches import Circle, FancyBboxPatch, Polygon

    for i in range(model.n):
        c = COLOURS[i % len(COLOURS)]
        g = model.geometry[i]
        rot = np.array([[np.cos(theta[i]), -np.sin(theta[i])], [np.sin(theta[i]), np.cos(theta[i])]])
        if model.shape[i] == SPHERE:
            ax.add_patch(Circle(x[i], g[0], fc=c, ec="k", lw=0.6, alpha=0.85))
            ax.plot(*np.stack([x[i], x[i] + rot @ [g[0], 0.0]]).T, color="k", lw=0.6)  # shows the spin
        elif model.shape[i] == BOX:
            corners = np.array([[-g[0], -g[1]], [g[0], -g[1]], [g[0], g[1]], [-g[0], g[1]]]) @ rot.T + x[i]
            ax.add_patch(Polygon(corners, closed=True, fc=c, ec="k", lw=0.6, alpha=0.85))
        elif model.shape[i] == CAPSULE:
            r, h = g[0], g[1]
            patch = FancyBboxPatch((-h, -r), 2 * h, 2 * r, boxstyle=f"round,pad=0,rounding_size={r}", fc=c, ec="k",
                                   lw=0.6, alpha=0.85)
            import matplotlib.transforms as mtransforms

            patch.set_transform(mtransforms.Affine2D().rotate(theta[i]).translate(*x[i]) + ax.transData)
            ax.add_patch(patch)
    for p in model.planes:
        n, off = p[:2], p[3]
        t = np.array([-n[1], n[0]])
        base = n * off
        s = 4.0 * float(np.max(hi - lo))
        ax.plot(*np.stack([base - s * t, base + s * t]).T, color="k", lw=1.5)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")


def _sphere_mesh(centre, r, k=9):
    u, v = np.meshgrid(np.linspace(0, 2 * np.pi, k), np.linspace(0, np.pi, k))
    return (centre[0] + r * np.cos(u) * np.sin(v), centre[1] + r * np.sin(u) * np.sin(v),
            centre[2] + r * np.cos(v))


def _draw_3d(ax, model, x, q, lo, hi):
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    for i in range(model.n):
        c = COLOURS[i % len(COLOURS)]
        g = model.geometry[i]
        if model.shape[i] == SPHERE:
            ax.plot_surface(*_sphere_mesh(x[i], g[0]), color=c, alpha=0.8, linewidth=0)
        elif model.shape[i] == BOX:
            signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], float)
            corners = (signs * g) @ quat_to_matrix_np(q[i]).T + x[i]
            faces = [[0, 1, 3, 2], [4, 5, 7, 6], [0, 1, 5, 4], [2, 3, 7, 6], [0, 2, 6, 4], [1, 3, 7, 5]]
            ax.add_collection3d(Poly3DCollection([corners[f] for f in faces], facecolor=c, edgecolor="k",
                                                 linewidths=0.4, alpha=0.8))
        elif model.shape[i] == CAPSULE:
            a = quat_rotate_np(q[i], [g[1], 0.0, 0.0])
            ends = np.stack([x[i] - a, x[i] + a])
            ax.plot(*ends.T, color=c, lw=4)
            for e in ends:
                ax.plot_surface(*_sphere_mesh(e, g[0], 7), color=c, alpha=0.8, linewidth=0)
    for p in model.planes:
        n, off = p[:3], p[3]
        if abs(n[2]) < 0.9:  # walls are not drawn in 3D, only floors and ceilings
            continue
        z = off / n[2]
        sq = np.array([[lo[0], lo[1], z], [hi[0], lo[1], z], [hi[0], hi[1], z], [lo[0], hi[1], z]])
        ax.add_collection3d(Poly3DCollection([sq], facecolor="0.8", edgecolor="0.5", alpha=0.4))
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_zlim(lo[2], hi[2])
    ax.set_box_aspect((1, 1, 1))
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_zlabel("z (m)")


def draw_frame(model: RigidModel, state: dict, ax=None, title: str | None = None, limits=None):
    """Draw the bodies and planes of ``model`` at ``state`` ({"x": (n, dim) m, "theta": (n,) rad
    or "q": (n, 4)}) on ``ax`` (a new figure's axes when None; 3D axes for a 3D model) and return
    the axes. limits: ((lo,) * dim, (hi,) * dim) in m, default the bodies' extent."""
    x, o = _check(model, state)
    if ax is None:
        _fig, ax = _figure(model.dim)
    lo, hi = (np.asarray(limits[0], float), np.asarray(limits[1], float)) if limits is not None else \
        _bounds(model, x)
    (_draw_2d if model.dim == 2 else _draw_3d)(ax, model, x, o, lo, hi)
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def animate(model: RigidModel, trajectory: dict, path, every: int | None = None, fps: int = 20,
            title: str = "") -> str:
    """Write a GIF of ``trajectory`` ({"x": (T + 1, n, dim), "theta" or "q": (T + 1, ...)}, as
    ``RigidSystem.simulate`` returns) to ``path``, one frame every ``every`` steps (default: about
    60 frames), each titled with its time step index; returns the path."""
    from matplotlib.animation import FuncAnimation, PillowWriter

    xs = np.asarray(trajectory["x"], dtype=np.float64)
    if xs.ndim != 3:
        raise ConfigError(f"animate needs a trajectory, 'x' of shape (T + 1, n, dim); got {xs.shape}")
    steps = xs.shape[0]
    every = max(1, steps // 60) if every is None else int(every)
    if every < 1:
        raise ConfigError(f"every must be >= 1 step, got {every}")
    lo, hi = _bounds(model, xs)
    fig, ax = _figure(model.dim)
    frames = list(range(0, steps, every))

    def update(k):
        ax.clear()
        state = {name: np.asarray(trajectory[name])[k] for name in ("x", "q", "theta") if name in trajectory}
        draw_frame(model, state, ax=ax, limits=(lo, hi), title=f"{title} step {k}".strip())

    anim = FuncAnimation(fig, update, frames=frames)
    anim.save(str(path), writer=PillowWriter(fps=fps))
    return str(path)


__all__ = ["animate", "draw_frame"]
