"""The ``diffsim`` command as a user meets it: help that lists every scene and every option with its
unit and default, the same runtime options on every scene, one clear line and exit status 2 for
bad input, and no Taichi banner unless ``--verbose``.

In-process calls share the test session's runtime (cpu, f64, deterministic); the two subprocess
runs start their own."""

import json
import sys

import pytest
from conftest import run_python

import diffsim
import diffsim_cli as cli
import scenes
from scenes._config import options

RUNTIME_OPTIONS = ("--out", "--arch", "--precision", "--threads", "--deterministic", "--verbose")


def test_run_help_lists_every_scene_with_a_sentence(capsys):
    assert cli.main(["run", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    for name in scenes.available():
        module = scenes.load(name)
        assert f"{name} {cli._one_line(module)}" in out, name
        assert cli._one_line(module).endswith(".") and "cannot be loaded" not in out


@pytest.mark.parametrize("name", scenes.available())
def test_scene_help_shows_each_option_with_its_default(name, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # no wrapping inside "force-shifted"
    assert cli.main(["run", name, "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    for spec in options(scenes.load(name).Config):
        flag = "--" + spec.name.replace("_", "-")
        assert flag in out, (name, flag)
        assert spec.help and f"(default: {spec.default})" in out, (name, spec.name)
        if spec.unit:
            assert f"[{spec.unit}]" in out, (name, spec.name)
    for flag in RUNTIME_OPTIONS:
        assert flag in out, (name, flag)


def test_options_after_the_scene_name_reach_the_runtime_and_taichi_stays_quiet(tmp_path):
    """Runtime options after the scene name start the runtime with them (this used to be an
    "unrecognized arguments" error); the banner and driver warnings are hidden; the result is a
    JSON line and a verdict line."""
    argv = ["run", "hanging_chain", "--n", "3", "--steps", "20", "--arch", "cpu", "--precision", "f64",
            "--threads", "1", "--out", str(tmp_path)]
    out = run_python(f"import sys, diffsim, diffsim_cli; code = diffsim_cli.main({argv!r}); "
                     "print('CFG', diffsim.config().arch, diffsim.config().threads); sys.exit(code)")
    assert out.returncode == 0, out.stderr
    assert "[Taichi]" not in out.stdout + out.stderr and "libcuda" not in out.stdout + out.stderr
    lines = out.stdout.strip().splitlines()
    result = json.loads(next(line for line in lines if line.startswith("{")))
    assert result["success"] is True and result["forward_steps"] == 20
    assert result["report"] == "hanging_chain_gradcheck.txt" and (tmp_path / result["report"]).exists()
    assert lines[-2].endswith("goal reached") and lines[-1] == "CFG cpu 1"


def test_bad_input_is_one_line_and_status_2():
    """A ConfigError from the runtime (threads=0) prints one line naming the input, no traceback."""
    out = run_python("import sys, diffsim_cli; sys.exit(diffsim_cli.main(['info', '--arch', 'cpu', "
                     "'--threads', '0']))")
    assert out.returncode == 2
    assert out.stderr.strip() == ("diffsim info: ConfigError: threads=0 (int) must be a whole number >= 1, or None "
                                  "for all cores; e.g. threads=2")
    assert "Traceback" not in out.stderr and "[Taichi]" not in out.stdout


def test_environment_override_is_named(monkeypatch, capsys):
    monkeypatch.setenv("DIFFSIM_PRECISION", "f16")
    assert cli.main(["info"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("diffsim info: ConfigError: environment variable DIFFSIM_PRECISION='f16'")
    assert len(err.strip().splitlines()) == 1


def test_options_that_conflict_with_the_running_runtime(capsys):
    """Called from Python after the runtime started: options that agree are fine, options that
    do not are a ConfigError saying what runs and how to change it."""
    assert cli.main(["info", "--arch", "cpu", "--deterministic"]) == 0
    assert "precision: f64" in capsys.readouterr().out
    assert cli.main(["info", "--precision", "f32"]) == 2
    err = capsys.readouterr().err
    assert "already started by diffsim.init" in err and "precision='f32'" in err and "new Python process" in err


def test_unknown_scene_and_bad_option_values(capsys):
    assert cli.main(["run", "no_such_scene"]) == 2
    assert "unknown scene 'no_such_scene'; scenes are arm_reach" in capsys.readouterr().err
    assert cli.main(["run", "bilards"]) == 2
    assert "unknown scene 'bilards' (did you mean 'billiards'?)" in capsys.readouterr().err
    assert cli.main(["run", "hanging_chain", "--threads", "1.5"]) == 2
    assert "invalid int value: '1.5'" in capsys.readouterr().err
    assert cli.main(["run", "billiards", "--layout", "square"]) == 2
    assert "invalid choice: 'square'" in capsys.readouterr().err


def test_scene_config_errors_are_one_line(tmp_path, capsys):
    """A scene's own ConfigError (billiards: 1 ball) is one line too."""
    assert cli.main(["run", "billiards", "--balls", "1", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "diffsim run billiards: ConfigError: balls must be between 2 and 16, got 1"


def test_a_time_step_of_zero_or_a_number_that_is_not_finite_is_one_line(tmp_path, capsys):
    """--dt 0 raised a ZeroDivisionError with a traceback (stacking divides seconds by dt), and a
    NaN stiffness was named as a box's NaN position: every scene's options are checked where
    the config is made, naming the option and its unit."""
    from scenes import hanging_chain, stacking

    assert cli.main(["run", "stacking", "--dt", "0", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "diffsim run stacking: ConfigError: option dt (time step) must be a positive number (s), got 0.0"
    assert cli.main(["run", "stacking", "--stiffness", "nan", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("diffsim run stacking: ConfigError: option stiffness (contact stiffness) must be a finite number "
                   "(N/m), got nan")
    with pytest.raises(diffsim.ConfigError, match=r"option dt .* positive number \(s\), got -0.001"):
        stacking.build(dt=-1e-3)
    with pytest.raises(diffsim.ConfigError, match="option seconds .* finite number"):
        stacking.Config(seconds=float("inf"))
    assert hanging_chain.build(n=3, steps=10).rollout.steps == 10


def test_a_missing_optional_package_names_its_extra(monkeypatch, tmp_path, capsys):
    """policy_cartpole without torch: one line naming the package and the extra to install."""
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ModuleNotFoundError
    assert cli.main(["run", "policy_cartpole", "--iters", "1", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "diffsim run policy_cartpole: needs the Python package 'torch': pip install -e \".[torch]\" " \
                  "(or pip install torch)"


def test_build_rejects_unknown_options():
    from diffsim.errors import ConfigError
    from scenes import hanging_chain

    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['node'\]; the options are \[.*'n'"):
        hanging_chain.build(node=3)
    problem = hanging_chain.build(n=3, steps=10)
    assert problem.system.n == 3 and problem.rollout.steps == 10


def test_engine_imports_no_scene_and_no_cli():
    out = run_python("import sys, diffsim, diffsim.rigid, diffsim.md, diffsim.articulated, diffsim.costs\n"
                     "print(sorted(m for m in sys.modules if m.split('.')[0] in ('scenes', 'diffsim_cli', 'optimizers')))")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))


def test_a_misspelt_option_is_named_with_the_scenes_options_and_never_abbreviated(capsys):
    assert cli.main(["run", "billiards", "--bals", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("diffsim run billiards: unknown argument '--bals' (did you mean '--balls'?); "
                   "see diffsim run billiards --help")
    assert cli.main(["run", "billiards", "--ball", "3"]) == 2  # a prefix is not taken for --balls
    assert "unknown argument '--ball'" in capsys.readouterr().err
    assert cli.main(["info", "--arhc", "cpu"]) == 2
    assert "(did you mean '--arch'?)" in capsys.readouterr().err


@pytest.mark.parametrize("name", scenes.available())
def test_every_scene_states_its_goal_in_its_help(name, capsys):
    assert cli.main(["run", name, "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "Goal: " in out and ":class:" not in out, out[:400]


def test_a_config_names_an_unknown_option_and_documents_its_units():
    from diffsim.errors import ConfigError
    from scenes import billiards

    with pytest.raises(ConfigError, match=r"unknown option 'ballz' \(did you mean 'balls'\?\); the options are"):
        billiards.Config(ballz=6)
    assert billiards.Config(balls=6).balls == 6
    assert "``dt`` = 0.001: time step [s]" in billiards.Config.__doc__
