"""Every public name has a docstring: each package's ``__all__`` (classes with their public
methods and properties, inherited docstrings count) and, for the scenes, each scene module's
``Config``, ``build``, ``run`` and ``demo``. The reference (``pdoc``, see README) is built from
these docstrings.

Covered: every public package (PACKAGES)."""

import importlib
import inspect

import pytest

import scenes

PACKAGES = ["diffsim", "diffsim.articulated", "diffsim.collision", "diffsim.costs", "diffsim.distributed", "diffsim.md",
            "diffsim.mass_spring", "diffsim.particles", "diffsim.rigid", "diffsim.torch", "optimizers", "scenes", "diffsim_cli"]
SCENE_NAMES = ("Config", "build", "run")


def undocumented(obj, name: str) -> list:
    """``name`` and ``name.member`` for ``obj`` and its public members without a docstring."""
    if inspect.ismodule(obj) or not (inspect.isclass(obj) or callable(obj)):
        return []  # constants and submodules: documented where they are defined
    missing = [] if inspect.getdoc(obj) else [name]
    if inspect.isclass(obj):
        for attr, value in vars(obj).items():
            if attr.startswith("_"):
                continue
            if isinstance(value, property):
                target = value
            elif isinstance(value, (staticmethod, classmethod)) or inspect.isfunction(value):
                target = getattr(obj, attr)
            else:
                continue
            if not inspect.getdoc(target):
                missing.append(f"{name}.{attr}")
    return missing


@pytest.mark.parametrize("package", PACKAGES)
def test_public_names_have_docstrings(package):
    module = importlib.import_module(package)
    assert inspect.getdoc(module), f"{package} has no module docstring"
    missing = [m for n in module.__all__ for m in undocumented(getattr(module, n), f"{package}.{n}")]
    assert not missing, f"public names without a docstring: {missing}"


@pytest.mark.parametrize("name", scenes.available())
def test_scene_modules_document_their_interface(name):
    module = scenes.load(name)
    assert inspect.getdoc(module)
    names = SCENE_NAMES + (("demo",) if hasattr(module, "demo") else ())
    missing = [m for n in names for m in undocumented(getattr(module, n), f"scenes.{name}.{n}")]
    assert not missing, f"scene interface without a docstring: {missing}"


def test_the_readme_reference_command_names_every_public_module():
    """pdoc shows only what a package's ``__all__`` lists: a module missing from the README's
    command gets no page in the reference."""
    import pathlib
    import re

    readme = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    command = re.search(r"```bash\n(pdoc -o docs/api .*?)```", readme, flags=re.S).group(1)
    named = set(command.replace("\\\n", " ").split()[3:])
    wanted = set(PACKAGES) | {f"scenes.{name}" for name in scenes.available()}
    assert not wanted - named, f"add to the README's pdoc command: {sorted(wanted - named)}"


def test_the_check_finds_a_gap():
    class Bare:
        def method(self):
            pass

    assert undocumented(Bare, "Bare") == ["Bare", "Bare.method"]
