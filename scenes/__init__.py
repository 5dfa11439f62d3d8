"""Ready-made problems, one module each, on the public API of ``diffsim`` and ``optimizers``.

Every scene module has

* ``Config``: a frozen dataclass of its options, each with help text, unit and default
  (written once: ``build``, ``run``, ``demo`` and ``diffsim run SCENE --help`` read it);
* ``build(config=None, **overrides)``: the problem (system, rollout, objective), e.g.
  ``billiards.build(steps=400)``;
* ``run(config, out) -> SceneResult``: what ``diffsim run SCENE`` does (pictures into ``out``);
  the result's ``success`` says whether the scene's goal was reached;
* optionally ``demo(outdir) -> dict`` and an integer ``DEMO_ORDER`` for ``diffsim demo``.
"""

import importlib
import pkgutil

from ._goal import Goal, GoalMissed, SceneResult

__all__ = ["HEADLINE", "Goal", "GoalMissed", "SceneResult", "available", "demos", "load"]

# What ``diffsim demo`` runs by default: the reference system and one headline scene per field
# (robotics, game physics, molecular). ``diffsim demo --all`` runs every scene with a demo.
HEADLINE = ("hanging_chain", "arm_reach", "billiards", "forcefield_fit")


def available() -> list:
    """Names of the scene modules in this package (sorted)."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def load(name: str):
    """Import ``scenes.<name>``; a clear error for an unknown name."""
    if name not in available():
        raise ValueError(f"unknown scene {name!r}; scenes are {available()}")
    return importlib.import_module(f"{__name__}.{name}")


def demos(names=None) -> list:
    """(name, module) of the scenes with a ``demo`` among ``names`` (default: all), in
    ``DEMO_ORDER``. A scene that fails to import is returned with the exception in its place."""
    found = []
    for name in available():
        if names is not None and name not in names:
            continue
        try:
            module = load(name)
        except Exception as exc:  # noqa: BLE001 -- reported by the CLI, never hidden
            found.append((name, exc, 10**6))
            continue
        if hasattr(module, "demo"):
            found.append((name, module, getattr(module, "DEMO_ORDER", 1000)))
    return [(n, m) for n, m, _ in sorted(found, key=lambda item: (item[2], item[0]))]
