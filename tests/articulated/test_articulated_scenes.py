"""The robot scenes at small size: arm reach (single shooting, MPC tracking), cart-pole
swing-up, their demos (GIF, plots) and the trajectory-optimisation notebook."""

import json
import pathlib

import numpy as np
import pytest
from conftest import execute_notebook

from diffsim import gradcheck

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_arm_reach_gradient_and_fit():
    from scenes import arm_reach

    problem = arm_reach.build(steps=30, dt=0.03)
    x = np.random.default_rng(0).normal(scale=0.5, size=problem.objective.size)
    report = gradcheck(problem.objective, x, rtol=1e-6, entries=6, directions=2)
    assert report.ok, str(report)
    res = problem.solve(iters=40)
    assert res.fun < 0.2 * res.history["loss"][0]
    lo, hi = np.array(problem.objective.bounds).T
    assert np.all(res.x >= lo) and np.all(res.x <= hi)


def test_arm_reach_mpc_follows_a_moving_target():
    from scenes import arm_reach

    out = arm_reach.track(n_total=30, horizon=10, n_apply=3, iters_per_solve=8)
    assert out["q"].shape == (31, 5) and out["tau"].shape == (30, 5)
    assert out["solves"] == 10
    assert out["error"][-10:].mean() < 0.5 * out["error"][0]


def test_arm_reach_demo(tmp_path):
    from scenes import arm_reach

    out = arm_reach.demo(tmp_path)
    json.dumps(out)
    assert out["final_loss"] < 0.05 * out["initial_loss"]
    assert out["final_tip_distance_m"] < 0.03
    assert out["mpc_mean_error_m"] < 0.15
    for name in ("arm_reach.gif", "arm_reach.png", "arm_reach_mpc.png"):
        assert (tmp_path / name).stat().st_size > 5000, name
    assert isinstance(arm_reach.DEMO_ORDER, int)


def test_cartpole_demo_swings_up(tmp_path):
    from scenes import cartpole

    out = cartpole.demo(tmp_path)
    json.dumps(out)
    assert out["final_loss"] < 0.05 * out["initial_loss"]
    assert out["final_tip_distance_m"] < 0.05  # the pole tip ends at the top
    assert out["max_force_N"] <= 15.0 + 1e-9
    for name in ("cartpole.gif", "cartpole.png"):
        assert (tmp_path / name).stat().st_size > 5000, name


@pytest.mark.default_size
def test_robot_trajectory_optimization_notebook_reaches_its_goals_at_default_size():
    """The notebook as a user runs it (DIFFSIM_SMALL unset): its cells assert the reach, MPC
    tracking, swing-up and jump goals, so a miss fails here."""
    _nb, text = execute_notebook("robot_trajectory_optimization.ipynb", small=False)
    assert "RNEA(ABA(tau)) - tau" in text and "swing-up" in text and "jump" in text
    assert text.count("goal reached") == 4 and "MISSED" not in text  # reach, MPC tracking, swing-up, jump
