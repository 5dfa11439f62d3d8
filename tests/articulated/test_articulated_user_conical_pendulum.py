"""A user's conical pendulum on an MJCF ball joint (public API): a bob 0.5 m below the joint,
tilted 30 degrees and spun about the vertical at Omega = sqrt(g / (L cos theta)), the textbook
steady precession, keeps its tilt and comes back to its start after one period 2 pi / Omega."""

import numpy as np

from diffsim import Rollout, StoreAll
from diffsim.articulated import ArticulatedSystem, load_mjcf

L, THETA, G, DT = 0.5, np.deg2rad(30.0), 9.81, 5e-4


def _bob(q):
    """The bob's position (m) for the joint's unit quaternion (w, x, y, z)."""
    w, x, y, z = q
    r = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                  [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                  [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])
    return r @ np.array([0.0, 0.0, -L])


def test_a_conical_pendulum_on_a_ball_joint_keeps_its_tilt_and_period():
    xml = f"""<mujoco><option gravity="0 0 -{G}" timestep="{DT}"/>
    <worldbody><body name="bob"><joint name="ball" type="ball"/>
    <geom type="sphere" size="0.005" pos="0 0 -{L}" mass="1.0"/></body></worldbody></mujoco>"""
    model, _ = load_mjcf(xml)
    assert (model.nq, model.nv) == (4, 3)
    omega = np.sqrt(G / (L * np.cos(THETA)))
    q0 = np.array([np.cos(THETA / 2), np.sin(THETA / 2), 0.0, 0.0])  # tilted about x
    turn = np.array([[1, 0, 0], [0, np.cos(THETA), -np.sin(THETA)], [0, np.sin(THETA), np.cos(THETA)]])
    steps = int(round(2 * np.pi / omega / DT))
    rollout = Rollout(ArticulatedSystem(model, dt=DT, q0=q0, qd0=turn.T @ [0.0, 0.0, omega]), steps, StoreAll())
    rollout.forward()
    bob = np.array([_bob(q) for q in rollout.trajectory("q")[:, 0]])
    tilt = np.degrees(np.arccos(-bob[:, 2] / L))
    np.testing.assert_allclose(tilt, 30.0, atol=1e-9)
    azimuth = np.unwrap(np.arctan2(bob[:, 1], bob[:, 0]))
    period_steps = 2 * np.pi / omega / DT  # not a whole number of steps: compare the angle turned
    turned = np.degrees(azimuth[-1] - azimuth[0])
    assert abs(turned - 360.0 * steps / period_steps) < 1e-3  # measured: 1.7e-4 degrees
