"""Data-parallel fitting: a sum of independent losses, sharded across workers.

Force-field fitting over thousands of configurations, identification over many recorded
trajectories, robust trajectory optimisation over many initial conditions: each loss is a sum
over cases, so its gradient is a sum of shard gradients. A :class:`ShardedObjective` cuts the
cases into shards, has an executor evaluate every shard's (loss, grad) and sums them; it is a
plain ``x -> (loss, grad)`` for ``optimizers.minimize``::

    from diffsim.distributed import Recipe, RayExecutor, ShardedObjective
    recipe = Recipe("diffsim.distributed.examples:chain_identification", {"steps": 200})
    with ShardedObjective(recipe, cases=range(64), executor=RayExecutor(workers=2)) as objective:
        result = optimizers.minimize(objective, objective.x0(), method="lbfgs")

Workers build their shard from the picklable :class:`Recipe` (a builder's dotted name and a
config dict), once, inside their own Taichi runtime; no Taichi data ever travels.
"""

from .executors import (
    Executor,
    InProcessExecutor,
    RayExecutor,
    WorkerError,
    describe_cases,
)
from .objective import ShardedObjective, split_cases
from .recipe import Recipe, as_recipe
from .worker import ShardWorker, runtime_settings, shard_objective

__all__ = [
    "Executor",
    "InProcessExecutor",
    "RayExecutor",
    "Recipe",
    "ShardWorker",
    "ShardedObjective",
    "WorkerError",
    "as_recipe",
    "describe_cases",
    "runtime_settings",
    "shard_objective",
    "split_cases",
]
