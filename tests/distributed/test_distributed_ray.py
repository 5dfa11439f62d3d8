"""The Ray executor on one local 2-CPU cluster: same numbers as in-process, survives killed workers,
clear errors. One Ray instance for the whole module (starting one costs ~10 s on these machines)."""

import os
import signal

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from diffsim.distributed import (
    InProcessExecutor,
    RayExecutor,
    Recipe,
    ShardedObjective,
    WorkerError,
)
from optimizers import LBFGS, minimize

TARGET = "diffsim.distributed.examples:chain_identification"
CHAIN = {"steps": 60, "segment": 20}
RECIPE = Recipe(TARGET, CHAIN)
CASES = range(8)


@pytest.fixture(scope="module", autouse=True)
def local_cluster():
    # worker_niceness 0: Ray starts workers at nice 15, slow on a machine shared with other work
    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=80 * 2**20,
             log_to_driver=False, _system_config={"worker_niceness": 0})
    yield
    ray.shutdown()


def fit(objective, callback=None):
    return minimize(objective, objective.x0(), method=LBFGS(gtol=1e-10, ftol=1e-16), iters=40, callback=callback)


@pytest.fixture(scope="module")
def in_process_fit():
    with ShardedObjective(RECIPE, CASES, InProcessExecutor(2)) as objective:
        at = [objective(x) for x in (np.log([150.0, 0.5]), np.log([100.0, 1.0]))]
        return at, fit(objective)


def test_ray_workers_give_the_in_process_loss_gradient_and_fit(in_process_fit):
    at, reference = in_process_fit
    executor = RayExecutor(workers=2)
    with ShardedObjective(RECIPE, CASES, executor) as objective:
        assert len(set(executor.pids)) == 2 and os.getpid() not in executor.pids
        for runtime in executor.worker_runtime:  # each actor started Taichi with the driver's settings
            assert (runtime["arch"], runtime["precision"], runtime["deterministic"], runtime["threads"]) == \
                ("cpu", "f64", True, 1)
        for (loss, grad), x in zip(at, (np.log([150.0, 0.5]), np.log([100.0, 1.0]))):
            ray_loss, ray_grad = objective(x)
            assert ray_loss == pytest.approx(loss, rel=1e-12, abs=0)
            np.testing.assert_allclose(ray_grad, grad, rtol=1e-12)
            assert ray_loss == loss and np.array_equal(ray_grad, grad)  # deterministic: bitwise
        result = fit(objective)
        with pytest.raises(WorkerError, match=r"worker 0 \(shard 0, 4 cases: 0..3\) failed: ConfigError: .*shape \(2,\)"):
            objective(np.zeros(3))
    assert result.success and result.fun < 1e-12
    np.testing.assert_array_equal(result.x, reference.x)
    assert result.nit == reference.nit


def test_killed_workers_are_restarted_and_the_fit_is_unchanged(in_process_fit, tmp_path):
    """Shard 1 SIGKILLs itself in the middle of an evaluation; worker 0 is killed from outside
    between two iterations. Both come back, rebuild from the recipe and recompute."""
    _, reference = in_process_fit
    marker = tmp_path / "crashed"
    crashing = Recipe("diffsim.distributed.testing:crash_once",
                      {"recipe": (TARGET, CHAIN), "case": 5, "at_call": 3, "marker": str(marker)})
    executor = RayExecutor(workers=2, max_restarts=2)
    killed = []

    def kill_worker_0(iteration, x, loss, grad):
        if iteration == 3 and not killed:
            killed.append(executor.pids[0])
            os.kill(executor.pids[0], signal.SIGKILL)

    with ShardedObjective(crashing, CASES, executor) as objective:
        first_pids = list(executor.pids)
        result = fit(objective, callback=kill_worker_0)
        assert marker.exists() and int(marker.read_text()) == first_pids[1]
        assert killed == [first_pids[0]]
        assert executor.restarts == 2 and set(executor.pids).isdisjoint(first_pids)
    np.testing.assert_array_equal(result.x, reference.x)
    assert result.fun == reference.fun and result.nit == reference.nit


def test_bad_recipe_and_bad_address_name_the_worker_and_shard(monkeypatch):
    with pytest.raises(WorkerError, match=r"worker 0 \(shard 0, 4 cases: 0..3\) on .* could not build recipe "
                                          r"'diffsim.distributed.examples:no_such_builder'.*has no function") as err:
        ShardedObjective(Recipe("diffsim.distributed.examples:no_such_builder", {}), CASES, RayExecutor(workers=2))
    assert (err.value.worker, err.value.shard) == (0, 0)
    with pytest.raises(WorkerError, match=r"worker 0 \(shard 0, 4 cases: 0..3\) could not start: no Ray cluster "
                                          r"answers at address='127.0.0.1:1'.*ray start --head"):
        ShardedObjective(RECIPE, CASES, RayExecutor(workers=2, address="127.0.0.1:1"))
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    with pytest.raises(WorkerError, match=r"RAY_ADDRESS='127.0.0.1:1'"):
        ShardedObjective(RECIPE, CASES, RayExecutor(workers=2))
