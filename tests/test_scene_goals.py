"""The scenes' goal verdicts: a figure against a tolerance, one line with both, and a result that
keeps what the optimizer said beside the verdict."""

import numpy as np
import pytest

from optimizers import OptimizeResult
from scenes._goal import Goal, SceneResult, report


def _run(success=True, message="reached iters = 3"):
    return OptimizeResult(x=np.array([1.0, 2.0]), fun=0.5, jac=np.zeros(2), nit=3, nfev=4, success=success,
                          message=message, history={"loss": np.array([2.0, 1.0, 0.5])}, timings={}, method="lbfgs")


def test_goal_verdicts_and_lines():
    goal = Goal("distance to the pocket", 0.02, "cm", 100.0)
    assert goal.reached(0.0199) and not goal.reached(0.0201) and not goal.reached(float("nan"))
    assert goal.describe(0.562) == "distance to the pocket 56.2 cm (goal <= 2 cm): goal MISSED"
    assert goal.describe(0.005).endswith("goal reached")
    at_least = Goal("pins down", 7, at_least=True)
    assert at_least.reached(7) and not at_least.reached(6)


def test_scene_result_judges_the_goal_not_the_optimizer(capsys):
    goal = Goal("tip error", 0.01, "mm", 1e3)
    missed = SceneResult.judge("arm", goal, 0.05, _run(success=True), speed=1.0)
    assert not missed.success and missed.optimizer_success
    assert missed.message == "arm: tip error 50 mm (goal <= 10 mm): goal MISSED"
    assert missed.optimizer_message == "reached iters = 3" and missed.details == {"speed": 1.0}
    assert missed.nit == 3 and missed.fun == 0.5 and np.array_equal(missed.x, [1.0, 2.0])
    assert missed.title("optimised", "goal MISSED") == "goal MISSED"
    assert report(missed) == 1 and "GOAL MISSED: arm: tip error 50 mm" in capsys.readouterr().err
    reached = SceneResult.judge("arm", goal, 0.004, _run(success=False, message="ABNORMAL"))
    assert reached.success and not reached.optimizer_success
    assert report(reached) == 0 and capsys.readouterr().out.strip().endswith("goal reached")
    summary = reached.summary()
    assert summary["success"] is True and summary["goal"]["tolerance"] == 0.01
    plain = SceneResult.judge("chain", Goal("gradient error", 1e-6), 3e-8, x=[1.0], fun=2.0)
    assert plain.success and plain.method == "none" and plain.fun == pytest.approx(2.0)


def test_demo_exits_non_zero_when_a_scene_misses_its_goal(tmp_path, monkeypatch, capsys):
    """`diffsim demo`: a scene whose demo reports success=False makes the run exit 1, with its
    message on a GOAL MISSED line, in the closing count and in summary.json."""
    import json
    import types

    import diffsim_cli as cli
    import scenes

    fake = types.SimpleNamespace(demo=lambda out: {"success": False, "message": "fake: figure 5 (goal <= 1): goal MISSED"})
    good = types.SimpleNamespace(demo=lambda out: {"success": True, "message": "good: goal reached"})
    monkeypatch.setattr(scenes, "demos", lambda names=None: [("good", good), ("fake", fake)])
    code = cli.main(["demo", "--arch", "cpu", "--deterministic", "--only", "hanging_chain", "--out", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 1
    assert "GOAL MISSED: fake: figure 5 (goal <= 1): goal MISSED" in err
    assert "1 scenes reached their goal, 1 missed it (fake), 0 failed" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["fake"]["success"] is False and summary["good"]["success"] is True
