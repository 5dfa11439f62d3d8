"""The shard worker: builds one shard of an objective from a recipe and evaluates it.

The same class runs in the driver (in-process executor) and inside a Ray actor. A build
failure is caught and kept, not raised, so that the driver can report it with the worker's
and the shard's numbers (a Ray actor whose constructor raises just dies with a generic error).
"""

import os
import socket
import time
import traceback

import numpy as np

from ..errors import ConfigError, DiffsimError


def runtime_settings(threads_per_worker: int | None = None) -> dict:
    """The driver's ``diffsim.init`` settings, for workers to start the same runtime.

    A driver that runs on all cores (``threads=None``) gives each worker
    ``threads_per_worker`` threads instead, so that workers sharing a node do not oversubscribe it.
    """
    from ..runtime import config

    cfg = config()
    threads = cfg.threads
    if threads is None and not cfg.deterministic:
        threads = threads_per_worker
    return {"arch": cfg.requested_arch, "precision": cfg.precision, "threads": threads,
            "deterministic": cfg.deterministic, "debug": cfg.debug}


def start_runtime(settings: dict):
    """``diffsim.init(**settings)`` unless this process already runs exactly those settings."""
    from .. import runtime

    return runtime.init(**settings)


class _SumOverCases:
    """``x -> (loss, grad)``: the sum of ``problem(x, case)`` over ``cases``, in order."""

    def __init__(self, problem, cases):
        self.problem, self.cases = problem, list(cases)

    def __call__(self, x):
        total, grad = 0.0, None
        for case in self.cases:
            loss, g = self.problem(x, case)
            total += float(loss)
            g = np.asarray(g, dtype=np.float64)
            grad = g.copy() if grad is None else grad + g
        return total, grad


def shard_objective(problem, cases):
    """The objective of one shard: ``problem.shard(cases)`` if it has one, else a sum over cases."""
    if hasattr(problem, "shard"):
        return problem.shard(list(cases))
    if callable(problem):
        return _SumOverCases(problem, cases)
    raise ConfigError(f"a recipe must build a case objective problem(x, case) -> (loss, grad) or an object "
                      f"with shard(cases); got a {type(problem).__name__}")


class ShardWorker:
    """Holds one shard: ``cases`` of the problem that ``recipe`` builds, built once.

    worker, shard: numbers used in messages. runtime: ``diffsim.init`` settings to start in
    this process (None: use the running one, as the in-process executor does). warmup: evaluate
    once at the problem's ``x0()`` while building (compiles the kernels; errors surface at start).
    """

    def __init__(self, recipe, cases, worker: int, shard: int, runtime: dict | None = None, warmup: bool = False):
        self.worker, self.shard, self.cases = worker, shard, list(cases)
        self.recipe = recipe
        self.pid, self.host = os.getpid(), socket.gethostname()
        self.error = None
        self.nfev = 0
        t0 = time.perf_counter()
        try:
            if runtime is not None:
                start_runtime(runtime)
            self.problem = recipe.build()
            self.objective = shard_objective(self.problem, self.cases)
            if warmup:
                x0 = self.info().get("x0")
                if x0 is not None:
                    self.objective(x0)
        except Exception as err:  # noqa: BLE001 -- kept for ready(); the driver raises it with worker and shard
            self.error = "".join(traceback.format_exception(type(err), err, err.__traceback__))
            self.error_summary = f"{type(err).__name__}: {err}"
        self.build_s = time.perf_counter() - t0

    def ready(self) -> dict:
        """Who and where this worker is, its Taichi runtime (``diffsim.info()``) and its build error
        (None when it built)."""
        from .. import runtime

        return {"pid": self.pid, "host": self.host, "worker": self.worker, "shard": self.shard,
                "runtime": runtime.info() if runtime.is_initialized() else None,
                "error": self.error, "summary": getattr(self, "error_summary", None), "build_s": self.build_s}

    def _check(self):
        if getattr(self, "error", None) is not None:
            raise DiffsimError(f"the recipe {self.recipe.target!r} failed to build: {self.error_summary}")

    def evaluate(self, x):
        """(loss, grad) of this shard at ``x`` (float, float64 vector)."""
        self._check()
        loss, grad = self.objective(np.asarray(x, dtype=np.float64))
        self.nfev += 1
        return float(loss), np.asarray(grad, dtype=np.float64)

    def evaluate_timed(self, x):
        """(loss, grad, pid, seconds, cpu_seconds): :meth:`evaluate` with the process id, its wall
        time and the CPU time this process spent on it."""
        t0, c0 = time.perf_counter(), time.process_time()
        loss, grad = self.evaluate(x)
        return loss, grad, self.pid, time.perf_counter() - t0, time.process_time() - c0

    def info(self) -> dict:
        """``x0`` and ``names`` of the problem, where it offers them."""
        self._check()
        out = {}
        for source in (self.objective, self.problem):
            if "x0" not in out and callable(getattr(source, "x0", None)):
                out["x0"] = np.asarray(source.x0(), dtype=np.float64)
            if "names" not in out and getattr(source, "names", None) is not None:
                out["names"] = list(source.names)
        return out

