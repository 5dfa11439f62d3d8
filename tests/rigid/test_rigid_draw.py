"""The drawing helper: frames in 2D and 3D with labelled metre axes, and a GIF of a trajectory."""

import numpy as np
import pytest
from PIL import Image

from diffsim.errors import ConfigError
from diffsim.rigid import Box, Capsule, ModelBuilder, Sphere, animate, draw_frame


def scene(dim):
    b = ModelBuilder(dim)
    pad = [0.0] if dim == 3 else []
    b.add_body(Sphere(0.1), mass=1.0, position=[0.0, *pad, 0.1])
    b.add_body(Box((0.1, 0.2, 0.1)[:dim]), mass=1.0, position=[0.4, *pad, 0.1 if dim == 3 else 0.23], angle=0.3)
    b.add_body(Capsule(0.05, 0.15), mass=1.0, position=[0.8, *pad, 0.05])
    b.add_plane([0.0, *pad, 1.0], 0.0)
    return b.finalize()


@pytest.mark.parametrize("dim", [2, 3])
def test_a_frame_shows_every_body_on_axes_in_metres(dim):
    model = scene(dim)
    ax = draw_frame(model, model.initial_state(), title="start")
    assert ax.get_xlabel() == "x (m)" and ax.get_ylabel() == "y (m)"
    if dim == 3:
        assert ax.get_zlabel() == "z (m)"
        assert len(ax.collections) >= 5  # sphere mesh, box faces, capsule end meshes, floor
    else:
        assert len(ax.patches) == 3 and len(ax.lines) >= 2  # three bodies; floor line and the disc's spin mark
        lo, hi = ax.get_xlim()
        assert lo < -0.1 and hi > 0.95  # every body is in view
    assert ax.get_title() == "start"
    with pytest.raises(ConfigError, match="needs 'x'"):
        draw_frame(model, {"v": np.zeros((3, dim))})


def test_animation_writes_one_frame_per_sampled_step(tmp_path):
    model = scene(2)
    T = 10
    traj = {"x": model.x0[None] + np.linspace(0, 0.3, T + 1)[:, None, None],
            "theta": model.orientation0[None] + np.linspace(0, 1.0, T + 1)[:, None]}
    path = animate(model, traj, tmp_path / "run.gif", every=2, title="slide")
    with Image.open(path) as gif:
        assert gif.n_frames == 6
