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
    guess 40-70% off)."""
    from scenes import bounce_tuning

    out = bounce_tuning.demo(tmp_path)
    json.dumps(out)
    for k, v in out["hidden"].items():
        assert out["fitted"][k] == pytest.approx(v, rel=0.01), k
    assert (tmp_path / "bounce_tuning.gif").stat().st_size > 10000
    assert (tmp_path / "bounce_tuning_fit.png").stat().st_size > 1000


def test_bounce_identification_with_noise_within_five_percent():
    """With 2 mm position noise: restitution, friction and mass within 5 %. (Was 0.443 for the
    friction 0.40 while a box's corners on a plane shared the friction stability bound, m_t / 4
    each; they now count the spring force of the corners that press at once, see
    diffsim.rigid.kernels.penalty_contact_force.)"""
    from scenes import bounce_tuning

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


@pytest.mark.default_size
def test_game_physics_notebook_reaches_its_goals_at_default_size():
    """The notebook as a user runs it (DIFFSIM_SMALL unset): its cells assert the bounce fit's and
    the billiards shot's goals, so a miss fails here."""
    nb, text = execute_notebook("game_physics_tuning.ipynb", small=False)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert "full run" in text and text.count("PASS") == 3 and "fitted" in text and "distance to pocket" in text
    assert text.count("goal reached") == 3 and "MISSED" not in text  # bank shot, bounce fit, billiards


def test_billiards_default_start_aims_at_the_ghost_ball_along_clear_lanes():
    """The naive start aims the cue ball at the ghost ball (one diameter behind ball 1 on its line
    to the pocket), and the spread layout keeps both paths free of other balls."""
    from scenes import billiards

    pos = billiards.layout_positions("spread", 16)
    mouth = billiards.pockets()[5]
    ghost = billiards.ghost_ball(pos[1], mouth)
    assert np.linalg.norm(ghost - pos[1]) == pytest.approx(2 * billiards.RADIUS)
    u, w = mouth - pos[1], pos[1] - ghost
    assert u[0] * w[1] - u[1] * w[0] == pytest.approx(0.0, abs=1e-12)  # on the pocket line
    for p in pos[2:]:
        for a, b in ((pos[0], ghost), (pos[1], mouth)):
            assert billiards._segment_distance(p, a, b) > 5 * billiards.RADIUS
    speed, angle = billiards.naive_shot(pos[0], pos[1], mouth, 1.5)
    d = ghost - pos[0]
    assert angle == pytest.approx(np.arctan2(d[1], d[0]))
    assert 0.5 < speed < 3.0


def test_a_missed_goal_fails_loudly(tmp_path, capsys):
    """`diffsim run billiards` with too few iterations to pot the ball: exit status 1, one
    "GOAL MISSED" line with the distance and the goal, and a picture not titled "optimised"."""
    import diffsim_cli as cli
    from scenes import billiards

    code = cli.main(["run", "billiards", "--iters", "1", "--out", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 1
    line = err.strip().splitlines()[-1]
    assert line.startswith("GOAL MISSED: billiards: distance of the target ball") and "(goal <= 2 cm)" in line
    assert json.loads(out.strip().splitlines()[-1])["success"] is False
    problem = billiards.build()
    result = problem.solve(iters=1)
    assert not result.success and "MISSED" in result.message and result.figure > 0.02
    assert result.title("optimised shot: potted", "best shot found: goal MISSED") == "best shot found: goal MISSED"
    assert cli.main(["run", "no_such_scene"]) == 2
    assert "unknown scene 'no_such_scene'" in capsys.readouterr().err
