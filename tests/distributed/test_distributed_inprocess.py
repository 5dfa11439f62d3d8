"""Sharded objectives on the in-process executor: recipes, shards, sums, gradients and fits (no Ray)."""

import numpy as np
import pytest
import taichi as ti

from diffsim import gradcheck
from diffsim.distributed import (
    InProcessExecutor,
    Recipe,
    ShardedObjective,
    WorkerError,
    as_recipe,
    describe_cases,
    split_cases,
)
from diffsim.distributed.examples import ChainIdentification, ForceMatchingProblem
from diffsim.errors import ConfigError
from optimizers import LBFGS, minimize

CHAIN = {"steps": 60, "segment": 20}
CHAIN_RECIPE = Recipe("diffsim.distributed.examples:chain_identification", CHAIN)
FM = {"n_configs": 6}
FM_RECIPE = Recipe("diffsim.distributed.examples:force_matching", FM)


def test_recipe_checks_its_config_and_target():
    arr = ti.ndarray(ti.f64, 3)
    with pytest.raises(ConfigError, match=r"config\['data'\]\[1\] is a Taichi object"):
        Recipe("diffsim.distributed.examples:chain_identification", {"data": [np.zeros(2), arr]})
    with pytest.raises(ConfigError, match="cannot be pickled"):
        Recipe("diffsim.distributed.examples:chain_identification", {"f": lambda: 0})
    with pytest.raises(ConfigError, match="package.module:function"):
        Recipe(":build")
    with pytest.raises(ConfigError, match="has no function 'nope'"):
        Recipe("diffsim.distributed.examples:nope").build()
    assert Recipe("scenes.hanging_chain").function == "build"
    assert as_recipe(("scenes.hanging_chain", "build", {"n": 2})) == Recipe("scenes.hanging_chain:build", {"n": 2})
    assert as_recipe(("a.b:c", {})).target == "a.b:c"
    problem = Recipe("scenes.hanging_chain:build", {"n": 3, "steps": 10}, unpack=True).build()
    assert problem.system.n == 3


def test_split_cases_makes_contiguous_balanced_shards():
    shards = split_cases(range(10), 3)
    assert shards == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert split_cases([1, 2], 5) == [[1], [2]]
    assert describe_cases([4, 5, 6]) == "3 cases: 4..6"
    assert describe_cases(["a"]) == "1 case: 'a'"
    for shards in (0, 2.5, "2"):
        with pytest.raises(ConfigError, match="shards must be a whole number >= 1"):
            split_cases(range(3), shards)


@pytest.fixture(scope="module")
def chain_problem():
    return ChainIdentification(CHAIN)


def test_sharded_sum_equals_sum_of_cases_for_any_sharding(chain_problem):
    x = np.log([150.0, 0.5])
    ref_loss, ref_grad = 0.0, np.zeros(2)
    for c in range(6):
        loss, grad = chain_problem.case_objective(c)(x)
        ref_loss, ref_grad = ref_loss + loss, ref_grad + grad
    for workers in (1, 2, 4):
        with ShardedObjective(CHAIN_RECIPE, range(6), InProcessExecutor(workers)) as obj:
            assert len(obj.shards) == workers
            loss, grad = obj(x)
            assert loss == pytest.approx(ref_loss, rel=1e-12)
            np.testing.assert_allclose(grad, ref_grad, rtol=1e-12)
            assert obj.names == ["log stiffness", "log damping"]


def test_sharded_gradient_matches_central_differences_and_vanishes_at_the_truth():
    obj = ShardedObjective(CHAIN_RECIPE, range(4), InProcessExecutor(2))
    report = gradcheck(obj, np.log([150.0, 0.5]), rtol=1e-6)
    assert report.ok, str(report)
    # synthetic data were made with the hidden values: the loss is zero there, to round-off
    loss, grad = obj(np.log([180.0, 0.35]))
    assert loss < 1e-20 and np.abs(grad).max() < 1e-8


def test_recorded_trajectories_as_dict_cases_give_the_same_loss(chain_problem):
    data = [chain_problem.trajectory(c) for c in (2, 3)]
    assert data[0]["q_obs"].shape == (61, 4)
    x = np.log([150.0, 0.5])
    a = ShardedObjective(CHAIN_RECIPE, [2, 3], InProcessExecutor(2))(x)
    b = ShardedObjective(CHAIN_RECIPE, data, InProcessExecutor(2))(x)
    assert a[0] == b[0] and np.array_equal(a[1], b[1])


def test_identification_over_many_trajectories_recovers_stiffness_and_damping():
    with ShardedObjective(CHAIN_RECIPE, range(6), InProcessExecutor(2)) as obj:
        res = minimize(obj, obj.x0(), method=LBFGS(gtol=1e-12, ftol=1e-16), iters=100)
    fitted = ChainIdentification.unpack(res.x)
    assert fitted["stiffness"] == pytest.approx(180.0, rel=1e-6)
    assert fitted["damping"] == pytest.approx(0.35, rel=1e-6)


def test_force_matching_shards_add_up_to_the_whole_fit():
    """Per-shard weights keep the global normalisation: two shards sum to one ForceMatching."""
    from diffsim.md import ForceMatching, LennardJones

    problem = ForceMatchingProblem(FM)
    configs = problem.configurations(range(6))
    whole = ForceMatching([LennardJones(epsilon=0.8, sigma=1.05, cutoff=1.6)], configs,
                          params=["epsilon", "sigma"], log=("epsilon", "sigma"))
    x = np.log([0.9, 1.02])
    ref = whole(x)
    obj = ShardedObjective(FM_RECIPE, range(6), InProcessExecutor(2))
    loss, grad = obj(x)
    assert loss == pytest.approx(ref[0], rel=1e-12)
    np.testing.assert_allclose(grad, ref[1], rtol=1e-12)
    assert gradcheck(obj, x, rtol=1e-6).ok
    res = minimize(obj, obj.x0(), method=LBFGS(gtol=1e-12, ftol=1e-16), iters=100)
    assert ForceMatchingProblem.unpack(res.x) == pytest.approx({"epsilon": 1.0, "sigma": 1.0}, rel=1e-6)


def test_bad_recipe_and_failing_shard_name_worker_and_shard():
    with pytest.raises(WorkerError, match=r"worker 0 \(shard 0, 2 cases: 0..1\).*unknown config keys") as err:
        ShardedObjective(Recipe("diffsim.distributed.examples:chain_identification", {"bogus": 1}),
                         range(4), InProcessExecutor(2))
    assert err.value.worker == 0 and err.value.shard == 0 and err.value.cases == [0, 1]
    with pytest.raises(WorkerError, match=r"worker 1 \(shard 1, 2 cases: 2, 7\).*could not build.*index in \[0, 6\)"):
        ShardedObjective(FM_RECIPE, [0, 1, 2, 7], InProcessExecutor(2))
    obj = ShardedObjective(FM_RECIPE, [0, 1, 2], InProcessExecutor(2))
    with pytest.raises(WorkerError, match=r"worker 0 \(shard 0, 2 cases: 0..1\) failed: ConfigError: .*shape \(2,\)"):
        obj(np.zeros(3))
