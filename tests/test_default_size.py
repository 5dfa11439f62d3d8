"""Every scene (and, through the tests listed in NOTEBOOK_TESTS, every notebook) at its DEFAULT size, as a user runs it (``diffsim run SCENE``
with no options; a notebook opened and run): each must reach its goal. Marked ``default_size``;
the plain ``pytest`` run (``.ci/run``) includes them, ``-m 'not default_size'`` leaves them out.

A scene's ``main`` returns its exit status (0: goal reached, 1: missed, with a "GOAL MISSED"
line on stderr); a notebook asserts its own goal in a cell, so a miss raises here."""

import json
import pathlib

import pytest

import diffsim_cli as cli
import scenes

pytestmark = pytest.mark.default_size

SCENES = ["arm_reach", "billiards", "bounce_tuning", "bowling", "cartpole", "forcefield_fit", "hanging_chain",
          "hopper", "lj_fluid", "policy_cartpole"]
# scenes whose default-size run (``run(Config(), out)``, what ``diffsim run SCENE`` calls) is a test of
# their own folder, with more physics checked on the result
SCENES_ELSEWHERE = {"stacking": "rigid/test_rigid_stacking.py"}


def test_every_scene_is_listed():
    assert sorted([*SCENES, *SCENES_ELSEWHERE]) == scenes.available()
    tests = pathlib.Path(__file__).parent
    for name, path in SCENES_ELSEWHERE.items():
        source = (tests / path).read_text()
        assert f"{name}.run({name}.Config(), " in source and "@pytest.mark.default_size" in source


@pytest.mark.parametrize("name", SCENES)
def test_scene_reaches_its_goal_at_default_size(name, tmp_path, capsys):
    if name == "policy_cartpole":
        pytest.importorskip("torch")
    argv = ["run", name, "--out", str(tmp_path)]  # --out only moves the pictures out of the working directory
    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert code == 0, f"{name} missed its goal at its default size: {err.strip()}"
    printed = [json.loads(line) for line in out.splitlines() if line.startswith("{")][-1]
    assert printed["success"] is True
    assert out.strip().splitlines()[-1].endswith("goal reached")


# Each notebook's default-size run lives beside the small-size tests of its scenes; this list
# makes sure none is forgotten.
NOTEBOOK_TESTS = {"force_field_fitting.ipynb": "md/test_md_notebook_scenes.py",
                  "game_physics_tuning.ipynb": "rigid/test_rigid_scenes.py",
                  "robot_trajectory_optimization.ipynb": "articulated/test_articulated_scenes.py",
                  "ad_vs_finite_differences.ipynb": "test_notebook_ad.py"}


def test_every_notebook_has_a_default_size_run():
    tests = pathlib.Path(__file__).parent
    assert sorted(NOTEBOOK_TESTS) == sorted(p.name for p in (tests.parent / "notebooks").glob("*.ipynb"))
    for name, path in NOTEBOOK_TESTS.items():
        source = (tests / path).read_text()
        assert f'execute_notebook("{name}", small=False)' in source and "@pytest.mark.default_size" in source
