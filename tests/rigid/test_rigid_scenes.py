"""The game-physics scenes at small size: billiards shot gradient and fit, bounce identification,
bowling, their demos (GIF and loss plot) and the notebook."""

import json
import pathlib

import numpy as np
import pytest
from conftest import execute_notebook

from diffsim import gradcheck

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_billiards_shot_gradient_and_fit(tmp_path):
    """d(loss)/d(speed, angle) of the 16-ball shot against central differences (relative step
    1e-5, Richardson, as for every impulse-model check: at 1e-6 FD round-off reached 1.1e-6 of
    the speed entry, which is 1e4 times smaller than the angle entry), then the demo pots the
    ball (ends within 2 cm of the pocket's mouth)."""
    from scenes import billiards

    problem = billiards.build(steps=400)
    assert problem.system.n == 16
    report = gradcheck(problem, problem.x0(), rtol=1e-6, step=1e-5)
    assert report.ok, str(report)
    out = billiards.demo(tmp_path)
    json.dumps(out)
    assert out["distance_to_pocket_m"] < 0.02 < np.sqrt(out["initial_loss"])
    assert (tmp_path / "billiards.gif").stat().st_size > 10000
    assert (tmp_path / "billiards_loss.png").stat().st_size > 1000


def test_bounce_identification_recovers_hidden_values(tmp_path):
    """Noise-free clip: restitution, friction and mass within 1% of the hidden values (from a
    guess 40-70% off); with 2 mm position noise within 5%."""
    from scenes import bounce_tuning

    out = bounce_tuning.demo(tmp_path)
    json.dumps(out)
    for k, v in out["hidden"].items():
        assert out["fitted"][k] == pytest.approx(v, rel=0.01), k
    assert (tmp_path / "bounce_tuning.gif").stat().st_size > 10000
    assert (tmp_path / "bounce_tuning_fit.png").stat().st_size > 1000
    noisy = bounce_tuning.build(steps=700, noise=0.002, hidden={"restitution": 0.5, "friction": 0.4, "mass": 2.5})
    res = noisy.solve()
    fitted = noisy.values(res.x)
    for k, v in noisy.hidden.items():
        assert fitted[k] == pytest.approx(v, rel=0.05), (k, fitted)


def test_bowling_demo(tmp_path):
    from scenes import bowling

    out = bowling.demo(tmp_path)
    json.dumps(out)
    assert out["pins_standing_first"] == 7
    assert out["pins_standing_best"] < out["pins_standing_first"]
    assert out["final_loss"] < out["initial_loss"]
    assert (tmp_path / "bowling.gif").stat().st_size > 10000
    assert {bowling.DEMO_ORDER} != {40, 41}


def test_game_physics_notebook_runs_small():
    nb, text = execute_notebook("game_physics_tuning.ipynb")
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert text.count("PASS") == 2 and "fitted" in text and "distance to pocket" in text
