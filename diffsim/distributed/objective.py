"""``ShardedObjective``: a sum of independent losses, split into shards, as one ``x -> (loss, grad)``."""

import time

import numpy as np

from ..errors import ConfigError
from .executors import InProcessExecutor, WorkerError, where
from .recipe import as_recipe


def split_cases(cases, shards: int) -> list:
    """``cases`` cut into ``shards`` contiguous blocks whose sizes differ by at most one."""
    cases = list(cases)
    if isinstance(shards, bool) or not isinstance(shards, (int, np.integer)) or shards < 1:
        raise ConfigError(f"shards must be a whole number >= 1, got {shards!r}")
    shards = min(shards, len(cases))
    base, extra = divmod(len(cases), shards)
    out, start = [], 0
    for s in range(shards):
        stop = start + base + (1 if s < extra else 0)
        out.append(cases[start:stop])
        start = stop
    return out


class ShardedObjective:
    """``L(x) = sum_c f(x, c)`` over ``cases``, evaluated shard by shard on an executor.

    recipe: a :class:`~diffsim.distributed.Recipe` (or ``(target, config)``,
        ``(module, function, config)``) whose builder returns the per-case problem.
    cases: picklable case descriptions (indices, seeds, small dicts of NumPy arrays); each shard
        receives only its own.
    executor: :class:`InProcessExecutor` (default, one shard) or :class:`RayExecutor`; the
        objective cuts ``cases`` into ``executor.workers`` contiguous shards and starts them.

    The driver sums the shards' (loss, grad) in shard order, so the result depends only on the
    shards, not on where they ran. A plain callable: ``optimizers.minimize(objective, x0)``.
    ``x0()``, ``names`` and ``size`` come from the problem (shard 0); ``nfev``, ``last_wall_s``
    (driver seconds of the latest call) and ``executor.last_shard_s`` help find overheads.
    """

    def __init__(self, recipe, cases, executor=None):
        self.recipe = as_recipe(recipe)
        self.cases = list(cases)
        if not self.cases:
            raise ConfigError("a ShardedObjective needs at least one case")
        self.executor = InProcessExecutor() if executor is None else executor
        self.shards = split_cases(self.cases, self.executor.workers)
        self.executor.start(self.recipe, self.shards)
        self.nfev, self.last_wall_s = 0, None
        self._info = None

    def __call__(self, x):
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 1:
            raise ConfigError(f"the parameter vector must be 1-D, got shape {x.shape}")
        t0 = time.perf_counter()
        results = self.executor.evaluate(x)
        total, grad = 0.0, np.zeros(x.shape)
        for s, (loss, g) in enumerate(results):
            g = np.asarray(g, dtype=np.float64)
            if g.shape != x.shape:
                raise WorkerError(f"{where(s, s, self.shards[s])} returned a gradient of shape {g.shape} for a "
                                  f"parameter vector of shape {x.shape}", worker=s, shard=s, cases=self.shards[s])
            total += float(loss)
            grad = grad + g
        self.nfev += 1
        self.last_wall_s = time.perf_counter() - t0
        return total, grad

    def _problem_info(self) -> dict:
        if self._info is None:
            self._info = self.executor.info()
        return self._info

    def x0(self) -> np.ndarray:
        """The problem's initial guess (its ``x0()``), from shard 0."""
        info = self._problem_info()
        if "x0" not in info:
            raise ConfigError(f"the problem built by {self.recipe.target!r} has no x0(); pass an initial vector")
        return info["x0"].copy()

    @property
    def names(self):
        """Labels of the parameter entries, where the problem gives them (else None)."""
        return self._problem_info().get("names")

    @property
    def size(self) -> int:
        """Number of entries of the parameter vector."""
        return int(self.x0().size)

    def close(self):
        """Stop the workers (and a Ray instance the executor started itself)."""
        self.executor.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
