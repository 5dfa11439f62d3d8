"""Pictures of robots moving in the x-z plane (matplotlib; files only, any backend): skeleton animations and plots
of joint trajectories and torques. Used by the robot scenes and the notebook."""

import numpy as np

from .dynamics import link_pose
from .model import Model


def skeleton(model: Model, q, links) -> np.ndarray:
    """World positions (m) of the origins of ``links`` (in order) for joint trajectories q
    (T, nb): (T, len(links), 3)."""
    q = np.atleast_2d(np.asarray(q, dtype=float))
    return np.stack([link_pose(model, q, name)[1] for name in links], axis=1)


def animate_planar(path, model: Model, q, links, dt: float, targets=None, title: str = "", frames: int = 30,
                   trail: str | None = None, fps: int = 12, ground: float | None = None):
    """Write a GIF of the skeleton through ``links`` (x-z plane), subsampled to ``frames``.

    q: (T, nb) joint trajectory; targets: None, (3,) or (T, 3) target points drawn as a star;
    trail: a link whose path is drawn; ground: None, or the height (m) of a ground line drawn.
    """
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter

    pts = skeleton(model, q, links)
    T = len(pts)
    idx = np.unique(np.linspace(0, T - 1, min(frames, T)).round().astype(int))
    tgt = None if targets is None else np.broadcast_to(np.asarray(targets, float), (T, 3))
    trail_pts = None if trail is None else skeleton(model, q, [trail])[:, 0]
    allx = np.concatenate([pts[..., 0].ravel()] + ([tgt[:, 0]] if tgt is not None else []))
    allz = np.concatenate([pts[..., 2].ravel()] + ([tgt[:, 2]] if tgt is not None else [])
                          + ([[ground]] if ground is not None else []))
    pad = 0.1 * max(np.ptp(allx), np.ptp(allz), 0.2)
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    ax.set_xlim(allx.min() - pad, allx.max() + pad)
    ax.set_ylim(allz.min() - pad, allz.max() + pad)
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("z (m)")
    if ground is not None:
        ax.axhline(ground, color="k", lw=1.5, label="ground")
    (line,) = ax.plot([], [], "o-", lw=3, color="tab:blue", ms=5, label="links")
    (path_line,) = ax.plot([], [], "-", lw=1, color="tab:gray", label=f"{trail} path" if trail else None)
    (star,) = ax.plot([], [], "*", ms=14, color="tab:red", label="target" if targets is not None else None)
    ax.legend(loc="lower right", fontsize=7)
    label = ax.text(0.02, 0.95, "", transform=ax.transAxes)
    ax.set_title(title)

    def draw(k):
        line.set_data(pts[k, :, 0], pts[k, :, 2])
        if trail_pts is not None:
            path_line.set_data(trail_pts[:k + 1, 0], trail_pts[:k + 1, 2])
        if tgt is not None:
            star.set_data([tgt[k, 0]], [tgt[k, 2]])
        label.set_text(f"t = {k * dt:.2f} s")
        return line, path_line, star, label

    fig.tight_layout()  # keeps the axis labels inside the frame
    anim = FuncAnimation(fig, draw, frames=list(idx), blit=False)
    anim.save(str(path), writer=PillowWriter(fps=fps))
    plt.close(fig)
    return str(path)


def plot_trajectories(path, t, q, tau, joint_names, title: str = "", loss_history=None):
    """PNG with joint positions q (T+1, nb) and controls tau (T, nb) over time t (T+1,),
    and optionally the optimiser's loss history."""
    import matplotlib.pyplot as plt

    n = 3 if loss_history is not None else 2
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.4))
    for j, name in enumerate(joint_names):
        axes[0].plot(t, q[:, j], label=name)
        axes[1].step(t[:-1], tau[:, j], where="post", label=name)
    axes[0].set_xlabel("time (s)")
    axes[0].set_ylabel("joint position (rad or m)")
    axes[1].set_xlabel("time (s)")
    axes[1].set_ylabel("torque / force (N m or N)")
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=7)
    if loss_history is not None:
        axes[2].semilogy(np.asarray(loss_history))
        axes[2].set_xlabel("iteration")
        axes[2].set_ylabel("loss")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(str(path), dpi=90)
    plt.close(fig)
    return str(path)
