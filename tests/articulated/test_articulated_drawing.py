"""A user draws their own robot with the public API: simulate, then animate and plot it."""

import numpy as np

from diffsim.articulated import ArticulatedSystem, animate_planar, planar_arm, plot_trajectories, skeleton


def test_a_simulated_arm_is_drawn_from_the_public_api(tmp_path):
    model = planar_arm(2, lengths=0.3)
    system = ArticulatedSystem(model, dt=0.01, q0=[0.3, 0.0])
    steps = 40
    q = system.simulate(steps)["q"][:, 0]  # (steps + 1, 2): robot 0 of the batch
    links = list(model.body_names)
    pts = skeleton(model, q, links)
    assert pts.shape == (steps + 1, len(links), 3)
    # the last link's origin is one rod (0.3 m) from the base at every step, in the x-z plane
    np.testing.assert_allclose(np.linalg.norm(pts[:, -1] - pts[:, 0], axis=1), 0.3, rtol=1e-12)
    np.testing.assert_allclose(pts[..., 1], 0.0, atol=1e-12)
    gif = animate_planar(tmp_path / "arm.gif", model, q, links, dt=0.01, title="a falling arm", frames=5)
    png = plot_trajectories(tmp_path / "arm.png", np.arange(steps + 1) * 0.01, q, np.zeros((steps, 2)),
                            model.joint_names, title="a falling arm")
    assert (tmp_path / "arm.gif").stat().st_size > 1000 and gif.endswith("arm.gif")
    assert (tmp_path / "arm.png").stat().st_size > 1000 and png.endswith("arm.png")
