"""Recipes: how a worker builds its part of an objective, as picklable data.

A worker never receives Taichi fields or ndarrays (they live in one process's runtime and
cannot travel); it receives a :class:`Recipe`, a dotted name of a builder function and a
configuration dict of plain Python and NumPy values, and builds everything itself, inside its
own Taichi runtime, once.

The builder contract (``build(config) -> problem``) is deliberately small. ``problem`` is

* a *case objective*: ``problem(x, case) -> (loss, grad)`` for one case (an initial state, a
  control sequence, a recorded trajectory, a molecular configuration), and/or
* a *shard builder*: ``problem.shard(cases) -> f`` with ``f(x) -> (loss, grad)`` summed over
  ``cases`` (use this when cases are cheaper together: one launch over stacked
  configurations, or losses with global normalisations).

Optional: ``x0()`` (initial guess, float64 vector) and ``names`` (one label per entry) on the
problem or on the shard objective; :class:`~diffsim.distributed.ShardedObjective` exposes them.
"""

import importlib
import pickle
from dataclasses import dataclass, field

from ..errors import ConfigError


@dataclass(frozen=True)
class Recipe:
    """``Recipe("package.module:function", config)``: ``function(config)`` builds the problem.

    target: ``"module:function"``; ``"module"`` alone means ``module:build``.
    config: a dict of picklable values (numbers, strings, lists, NumPy arrays); never Taichi
        fields or ndarrays.
    unpack: call ``function(**config)`` instead of ``function(config)`` (for builders written
        with keyword arguments, like the ``scenes`` modules' ``build``).
    """

    target: str
    config: dict = field(default_factory=dict)
    unpack: bool = False

    def __post_init__(self):
        if not isinstance(self.target, str) or not self.target or self.target.startswith(":"):
            raise ConfigError(f"a recipe target is 'package.module:function', got {self.target!r}")
        if not isinstance(self.config, dict):
            raise ConfigError(f"recipe {self.target!r}: config must be a dict, got {type(self.config).__name__}")
        for key, value in _walk(self.config, "config"):
            if type(value).__module__.split(".")[0] == "taichi":
                raise ConfigError(f"recipe {self.target!r}: {key} is a Taichi object ({type(value).__name__}); "
                                  "Taichi data cannot travel between processes. Put NumPy arrays or the "
                                  "numbers that describe it in the config and allocate it in the builder")
        try:
            pickle.dumps(self.config)
        except Exception as err:
            raise ConfigError(f"recipe {self.target!r}: config cannot be pickled ({err}); workers receive it "
                              "over the network, so use plain Python and NumPy values") from err

    @property
    def module(self) -> str:
        """The dotted module of ``target`` (before the colon)."""
        return self.target.partition(":")[0]

    @property
    def function(self) -> str:
        """The builder's name in that module (after the colon; ``build`` when none is given)."""
        return self.target.partition(":")[2] or "build"

    def resolve(self):
        """The builder function (imports its module)."""
        module = importlib.import_module(self.module)
        try:
            fn = getattr(module, self.function)
        except AttributeError:
            raise ConfigError(f"module {self.module!r} has no function {self.function!r} "
                              f"(recipe {self.target!r})") from None
        if not callable(fn):
            raise ConfigError(f"{self.target!r} is a {type(fn).__name__}, not a function")
        return fn

    def build(self):
        """Import the builder and call it with the config: the problem (see module doc)."""
        fn = self.resolve()
        config = dict(self.config)
        return fn(**config) if self.unpack else fn(config)

    def __str__(self):
        return self.target


def _walk(value, path):
    """(path, value) for ``value`` and everything inside its dicts, lists and tuples."""
    yield path, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, f"{path}[{k!r}]")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _walk(v, f"{path}[{i}]")


def as_recipe(recipe) -> Recipe:
    """A :class:`Recipe` from a Recipe, ``(target, config)`` or ``(module, function, config)``."""
    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, str):
        return Recipe(recipe)
    if isinstance(recipe, (tuple, list)):
        if len(recipe) == 2:
            return Recipe(recipe[0], recipe[1])
        if len(recipe) == 3:
            return Recipe(f"{recipe[0]}:{recipe[1]}", recipe[2])
    raise ConfigError(f"a recipe is Recipe(target, config), (target, config) or (module, function, config); "
                      f"got {recipe!r}")
