"""Executors: where the shards of a :class:`~diffsim.distributed.ShardedObjective` run.

An executor is started once with a recipe and the shards (lists of cases), then evaluates every
shard at a parameter vector and returns the per-shard (loss, grad) in shard order:

* :class:`InProcessExecutor` (default): the shards live in this process and run one after the
  other; nothing to install.
* :class:`RayExecutor` (extra ``distributed``): one long-lived Ray actor per shard, each with its
  own Taichi runtime (started with the driver's ``diffsim.init`` settings) and its compiled
  kernels, built once from the recipe. A worker that dies is restarted by Ray, rebuilds its
  shard from the recipe and recomputes the evaluation that was lost.
"""

import contextlib
import itertools
import os
import socket

import numpy as np

from ..errors import ConfigError, DiffsimError
from .worker import ShardWorker, runtime_settings


class WorkerError(DiffsimError):
    """A worker failed: it could not start, could not build its shard, or its evaluation failed.

    Attributes: ``worker`` and ``shard`` (indices), ``cases`` (the shard's cases).
    """

    def __init__(self, message: str, worker: int | None = None, shard: int | None = None, cases=None):
        self.worker, self.shard, self.cases = worker, shard, cases
        super().__init__(message)


def describe_cases(cases) -> str:
    """'32 cases: 32..63' or '3 cases: 'a', 'b', 'c''."""
    cases = list(cases)
    n = len(cases)
    ints = all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in cases)
    if ints and n > 1 and all(int(b) - int(a) == 1 for a, b in itertools.pairwise(cases)):
        what = f"{int(cases[0])}..{int(cases[-1])}"
    else:
        shown = [repr(int(c)) if ints else (f"<{type(c).__name__}>" if not isinstance(c, (str, int, float))
                                            else repr(c)) for c in cases[:4]]
        what = ", ".join(shown) + (", ..." if n > 4 else "")
    return f"{n} case{'s' if n != 1 else ''}: {what}"


def where(worker: int, shard: int, cases) -> str:
    return f"worker {worker} (shard {shard}, {describe_cases(cases)})"


class Executor:
    """Interface: ``start(recipe, shards)``, ``evaluate(x)`` -> [(loss, grad)] per shard, ``info()``,
    ``close()``. ``workers`` is the number of shards it runs at once (the objective makes that
    many shards). After ``evaluate``: ``last_shard_s`` and ``last_shard_cpu_s`` (wall and CPU
    seconds each shard computed, measured in the worker), ``pids`` (the worker processes) and
    ``restarts`` (workers found restarted so far)."""

    workers = 1

    def start(self, recipe, shards):
        """Build one worker per shard from ``recipe`` (a :class:`Recipe`); ``shards``: a list of
        case lists. Raises :class:`WorkerError` naming the worker and its cases if a build fails."""
        raise NotImplementedError

    def evaluate(self, x):
        """Every shard's ``(loss, grad)`` at the float64 parameter vector ``x``, in shard order."""
        raise NotImplementedError

    def info(self) -> dict:
        """What the shards' problem reports about itself (``x0``, ``names``, ``bounds``, ...)."""
        raise NotImplementedError

    def close(self):
        """Stop the workers; the executor can be started again."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _build_error(report: dict, recipe, cases) -> WorkerError:
    tail = "\n".join(report["error"].rstrip().splitlines()[-6:])
    return WorkerError(f"{where(report['worker'], report['shard'], cases)} on {report['host']} (pid {report['pid']}) "
                       f"could not build recipe {recipe.target!r}: {report['summary']}\n"
                       f"Check the recipe's target and config; the worker's traceback ends with:\n{tail}",
                       worker=report["worker"], shard=report["shard"], cases=cases)


class InProcessExecutor(Executor):
    """Runs ``workers`` shards in this process, one after the other (the default executor).

    With the same number of workers as a :class:`RayExecutor` it sums the same shards in the
    same order, so both give bitwise the same loss and gradient under ``deterministic=True``.
    """

    def __init__(self, workers: int = 1, warmup: bool = False):
        if int(workers) < 1:
            raise ConfigError(f"workers must be >= 1, got {workers}")
        self.workers, self.warmup = int(workers), warmup
        self._shards = []
        self.last_shard_s, self.last_shard_cpu_s, self.pids, self.restarts = [], [], [], 0

    def start(self, recipe, shards):
        self.close()
        self.recipe, self.shard_cases = recipe, [list(s) for s in shards]
        self._shards = [ShardWorker(recipe, cases, w, w, None, self.warmup) for w, cases in enumerate(self.shard_cases)]
        for worker, cases in zip(self._shards, self.shard_cases):
            report = worker.ready()
            if report["error"] is not None:
                raise _build_error(report, recipe, cases)
        self.pids = [os.getpid()] * len(self._shards)

    def evaluate(self, x):
        out, self.last_shard_s, self.last_shard_cpu_s = [], [], []
        for w, (worker, cases) in enumerate(zip(self._shards, self.shard_cases)):
            try:
                loss, grad, _, seconds, cpu = worker.evaluate_timed(x)
            except Exception as err:
                raise WorkerError(f"{where(w, w, cases)} failed: {type(err).__name__}: {err}",
                                  worker=w, shard=w, cases=cases) from err
            out.append((loss, grad))
            self.last_shard_s.append(seconds)
            self.last_shard_cpu_s.append(cpu)
        return out

    def info(self) -> dict:
        return self._shards[0].info()

    def close(self):
        self._shards = []


def _probe_address(address: str, timeout: float = 3.0):
    """Raise OSError unless something listens at ``host:port`` (``ray://host:port`` too)."""
    target = address.split("://", 1)[-1]
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        raise OSError(f"{address!r} is not host:port")
    with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
        pass


class RayExecutor(Executor):
    """One Ray actor per shard. Needs ``pip install "diffsim-toolkit[distributed]"`` (Ray).

    workers: actors, one per shard.
    address: an existing cluster (``"host:6379"``, ``"ray://host:10001"``, ``"auto"``); default the
        ``RAY_ADDRESS`` environment variable, else a new local Ray instance
        (``ray.init(address="local")``, closed again by :meth:`close`; ``"auto"`` joins the
        cluster that ``ray start`` runs on this machine instead). A host:port address is checked to answer before anything
        else. When Ray is already initialised in this process (the user's own ``ray.init``),
        that connection is used as it is.
    cpus_per_worker: CPUs each actor reserves, and its Taichi threads when the driver runs on
        all cores (a deterministic driver gives every worker one thread, as it has).
    max_restarts: how often Ray restarts a worker that died; its lost evaluation is retried
        as often. The restarted worker rebuilds its shard from the recipe.
    timeout_s: seconds to wait for one evaluation of all shards (None: no limit); shards still
        running then are named in a :class:`WorkerError`.
    start_timeout_s: seconds to wait for the workers to be scheduled and built.
    runtime_env: Ray runtime environment for the actors (e.g. ``{"py_modules": [...]}`` or
        ``{"pip": ["diffsim-toolkit"]}`` on a cluster whose nodes lack diffsim).
    init_options: extra ``ray.init`` keywords for a local instance (``num_cpus=2``, ...).
    runtime: ``diffsim.init`` settings for the workers (default: the driver's).
    warmup: each worker evaluates its shard once at the problem's ``x0()`` while starting, so that
        kernels are compiled (or loaded from Taichi's cache) before the first timed call.
    """

    def __init__(self, workers: int = 2, address: str | None = None, cpus_per_worker: float = 1,
                 max_restarts: int = 3, timeout_s: float | None = None, start_timeout_s: float = 300.0,
                 runtime_env: dict | None = None, init_options: dict | None = None, runtime: dict | None = None,
                 warmup: bool = True):
        if int(workers) < 1:
            raise ConfigError(f"workers must be >= 1, got {workers}")
        if max_restarts < 0:
            raise ConfigError(f"max_restarts must be >= 0, got {max_restarts}")
        self.workers, self.address = int(workers), address
        self.cpus_per_worker, self.max_restarts = cpus_per_worker, int(max_restarts)
        self.timeout_s, self.start_timeout_s = timeout_s, start_timeout_s
        self.runtime_env, self.init_options, self.runtime = runtime_env, dict(init_options or {}), runtime
        self.warmup = warmup
        self.put_above_bytes = 1 << 20
        self._actors, self._owns_ray = [], False
        self.last_shard_s, self.last_shard_cpu_s, self.pids, self.restarts = [], [], [], 0

    # ------------------------------------------------------------------ start-up

    @staticmethod
    def _ray():
        try:
            import ray
        except ImportError as err:
            raise ConfigError("RayExecutor needs Ray: pip install 'diffsim-toolkit[distributed]' "
                              "(or pip install ray); the default InProcessExecutor needs nothing") from err
        return ray

    def _connect(self, shards):
        ray = self._ray()
        explicit = self.address
        address = explicit or os.environ.get("RAY_ADDRESS") or None
        source = "address" if explicit else "RAY_ADDRESS"
        first = where(0, 0, shards[0])
        if address and address not in ("auto", "local"):
            try:
                _probe_address(address)
            except OSError as err:
                raise WorkerError(
                    f"{first} could not start: no Ray cluster answers at {source}={address!r} ({err}). Start one "
                    "with `ray start --head` on the head node (it prints the address to use) and "
                    "`ray start --address=<head>:6379` on the others, or leave address and RAY_ADDRESS unset "
                    "for a local instance", worker=0, shard=0, cases=shards[0]) from err
        if ray.is_initialized():
            return ray  # the user's own ray.init(...) connection, used as it is
        options = dict(self.init_options)
        if address in (None, "local"):
            address = "local"  # always a new instance; "auto" joins one that `ray start` runs here
            options.setdefault("include_dashboard", False)
            # Ray starts workers at nice 15; on a machine shared with other work that starves them
            # against the driver (measured here: a third slower). Same priority as the driver.
            options.setdefault("_system_config", {"worker_niceness": 0})
        try:
            ray.init(address=address, **options)
        except Exception as err:
            root = err
            while root.__cause__ is not None:
                root = root.__cause__
            why = f"{type(err).__name__}: {err}"
            if root is not err:
                why += f" (because {type(root).__name__}: {str(root).splitlines()[0] if str(root) else ''})"
            hint = ""
            if "auth" in f"{type(root).__name__} {root}".lower():
                hint = ("; the cluster uses Ray's token authentication: run the driver with RAY_AUTH_MODE=token and "
                        "the cluster's token in ~/.ray/auth_token (or RAY_AUTH_TOKEN)")
            raise WorkerError(f"{first} could not start: ray.init(address={address!r}) failed: {why}{hint}",
                              worker=0, shard=0, cases=shards[0]) from err
        self._owns_ray = True
        return ray

    def start(self, recipe, shards):
        self.close()
        self.recipe, self.shard_cases = recipe, [list(s) for s in shards]
        ray = self._connect(self.shard_cases)
        settings = self.runtime or runtime_settings(max(1, int(self.cpus_per_worker)))
        options = {"num_cpus": self.cpus_per_worker, "max_restarts": self.max_restarts,
                   "max_task_retries": self.max_restarts}
        if self.runtime_env is not None:
            options["runtime_env"] = self.runtime_env
        remote_cls = ray.remote(ShardWorker)
        self._actors = [remote_cls.options(**options).remote(recipe, cases, w, w, settings, self.warmup)
                        for w, cases in enumerate(self.shard_cases)]
        refs = [a.ready.remote() for a in self._actors]
        done, _ = ray.wait(refs, num_returns=len(refs), timeout=self.start_timeout_s)
        done = set(done)
        reports = []
        for w, (ref, cases) in enumerate(zip(refs, self.shard_cases)):
            if ref not in done:
                self.close()
                cpus = ray.cluster_resources().get("CPU", 0)
                raise WorkerError(f"{where(w, w, cases)} did not start within {self.start_timeout_s} s: the cluster "
                                  f"has {cpus:g} CPUs and {len(refs)} workers ask for {self.cpus_per_worker:g} each; "
                                  "use fewer workers, lower cpus_per_worker or add nodes",
                                  worker=w, shard=w, cases=cases)
            try:
                reports.append(ray.get(ref))
            except Exception as err:
                self.close()
                raise WorkerError(f"{where(w, w, cases)} could not start: {type(err).__name__}: {err}",
                                  worker=w, shard=w, cases=cases) from err
        for report, cases in zip(reports, self.shard_cases):
            if report["error"] is not None:
                self.close()
                raise _build_error(report, recipe, cases)
        self.pids = [r["pid"] for r in reports]
        self.hosts = [r["host"] for r in reports]
        self.worker_runtime = [r["runtime"] for r in reports]
        self.build_s = [r["build_s"] for r in reports]

    # ------------------------------------------------------------------ evaluation

    def evaluate(self, x):
        ray = self._ray()
        if not self._actors:
            raise DiffsimError("the RayExecutor is not started (or was closed)")
        x = np.asarray(x, dtype=np.float64)
        # small vectors travel inline with each call (one round trip); large ones once, by reference
        arg = ray.put(x) if x.nbytes * len(self._actors) > self.put_above_bytes else x
        refs = [a.evaluate_timed.remote(arg) for a in self._actors]
        if self.timeout_s is not None:
            _, late = ray.wait(refs, num_returns=len(refs), timeout=self.timeout_s)
            if late:
                slow = [w for w, r in enumerate(refs) if r in set(late)]
                names = "; ".join(where(w, w, self.shard_cases[w]) for w in slow)
                raise WorkerError(f"no result within timeout_s={self.timeout_s} s from {names}",
                                  worker=slow[0], shard=slow[0], cases=self.shard_cases[slow[0]])
        try:
            results = ray.get(refs)
        except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError):
            results = [self._get_one(ray, w, ref) for w, ref in enumerate(refs)]  # raises for the first failure
        out, self.last_shard_s, self.last_shard_cpu_s = [], [], []
        for w, (loss, grad, pid, seconds, cpu) in enumerate(results):
            if pid != self.pids[w]:
                self.restarts += 1
                self.pids[w] = pid
            out.append((loss, grad))
            self.last_shard_s.append(seconds)
            self.last_shard_cpu_s.append(cpu)
        return out

    def _get_one(self, ray, w, ref):
        cases = self.shard_cases[w]
        try:
            return ray.get(ref)
        except ray.exceptions.RayActorError as err:
            raise WorkerError(f"{where(w, w, cases)} died and was not brought back after "
                              f"max_restarts={self.max_restarts} restarts: {err}",
                              worker=w, shard=w, cases=cases) from err
        except ray.exceptions.RayTaskError as err:
            cause = getattr(err, "cause", None) or err
            raise WorkerError(f"{where(w, w, cases)} failed: {type(cause).__name__}: {cause}",
                              worker=w, shard=w, cases=cases) from cause

    def info(self) -> dict:
        ray = self._ray()
        return ray.get(self._actors[0].info.remote())

    def actors(self) -> list:
        """The Ray actor handles, one per shard (for ``ray.kill`` in fault-injection tests)."""
        return list(self._actors)

    def close(self):
        if self._actors:
            ray = self._ray()
            for actor in self._actors:
                with contextlib.suppress(Exception):  # already gone
                    ray.kill(actor, no_restart=True)
            self._actors = []
        if self._owns_ray:
            self._ray().shutdown()
            self._owns_ray = False
