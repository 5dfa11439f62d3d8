"""Non-finite losses, gradients and parameters: clear errors, and recovery by step halving."""

import pickle

import numpy as np
import pytest

import optimizers as opt
from optimizers import NonFiniteError

NAMES = {"eps": 3, "mass": ()}  # -> eps[0], eps[1], eps[2], mass


def nan_gradient_at_call(n_call, index):
    calls = []

    def objective(x):
        calls.append(1)
        g = 2.0 * x
        if len(calls) == n_call:
            g[index] = np.nan
        return float(x @ x), g

    return objective


def test_error_names_iteration_and_parameter():
    with pytest.raises(NonFiniteError) as info:
        # plain SGD evaluates x_k at call k + 1, so call 18 is iteration 17
        opt.minimize(nan_gradient_at_call(18, 2), np.ones(4), "sgd", 50, lr=0.01,
                     param_names=NAMES)
    err = info.value
    assert str(err).startswith("iteration 17: gradient of parameter 'eps[2]' is NaN")
    assert "on_nonfinite='backoff'" in str(err)  # says what to do
    assert (err.iteration, err.quantity, err.index, err.name) == (17, "gradient", 2, "eps[2]")

    with pytest.raises(NonFiniteError, match="^iteration 3: gradient of parameter 3 is NaN"):
        opt.minimize(nan_gradient_at_call(4, 3), np.ones(4), "adam", 50)


def test_error_for_a_non_finite_loss_and_at_x0():
    def objective(x):
        return (np.inf if x[0] < 0.5 else float(x @ x)), 2.0 * x

    with pytest.raises(NonFiniteError, match=r"^iteration 0: loss is \+inf; the objective is "
                                             r"non-finite at x0"):
        opt.minimize(objective, np.zeros(2), "adam", 10)
    with pytest.raises(NonFiniteError, match=r"^iteration 2: loss is \+inf") as info:
        opt.minimize(objective, np.ones(2), "sgd", 10, lr=0.15)  # x_k = 0.7^k: 0.49 at k = 2
    assert info.value.quantity == "loss" and info.value.index is None


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
def test_error_for_a_parameter_that_overflowed():
    with pytest.raises(NonFiniteError, match="^iteration 1: parameter 'mass' is -inf") as info:
        opt.minimize(lambda x: (0.0, np.array([0.0, 0.0, 0.0, 1e308])), np.zeros(4), "sgd", 10,
                     lr=10.0, param_names=NAMES)
    assert (info.value.quantity, info.value.index, info.value.name) == ("parameter", 3, "mass")
    assert "entries are non-finite" not in str(info.value)  # only one is


def test_lbfgs_raises_too():
    with pytest.raises(NonFiniteError, match=r"gradient of parameter 'eps\[1\]' is NaN") as info:
        opt.minimize(nan_gradient_at_call(3, 1), np.ones(4), "lbfgs", 50, param_names=NAMES)
    assert info.value.iteration >= 1


def exploding(x):
    """|x - 3|^2, but the "simulation" blows up (NaN) once |x| > 4."""
    if np.any(np.abs(x) > 4.0):
        return np.nan, np.full_like(x, np.nan)
    return float(np.sum((x - 3.0) ** 2)), 2.0 * (x - 3.0)


def test_backoff_halves_the_step_and_recovers():
    # lr 0.9 overshoots to 5.4 > 4 at the first step; half of it (2.7) is fine and converges
    with pytest.raises(NonFiniteError, match="^iteration 1: loss is NaN"):
        opt.minimize(exploding, np.zeros(2), "sgd", 100, lr=0.9)
    res = opt.minimize(exploding, np.zeros(2), "sgd", 100, lr=0.9, on_nonfinite="backoff")
    np.testing.assert_allclose(res.x, [3.0, 3.0], atol=1e-12)
    assert res.nbackoff == 1 and res.success
    assert res.nfev == res.nit + 1 + res.nbackoff  # the rejected evaluation is counted
    assert np.all(np.isfinite(res.history["loss"]))
    assert res.history["loss"][1] == pytest.approx(2 * 0.3 ** 2)  # x_1 = 2.7, from x_0 = 0


def test_backoff_gives_up_after_max_backoffs():
    calls = []

    def nan_after_three(x):
        calls.append(x.copy())
        return (np.nan if len(calls) > 3 else float(x @ x)), 2.0 * x

    res = opt.minimize(nan_after_three, np.ones(2), "adam", 100, on_nonfinite="backoff",
                       max_backoffs=4)
    assert len(calls) == 3 + 1 + 4  # three good, the first NaN, then four retries
    # the run ends at the last finite iterate (iteration 2), honestly
    assert not res.success and res.reason == opt.Reason.DIVERGED
    assert res.message.startswith("iteration 3: loss is NaN, still after halving the step 4 times "
                                  "(step scale now 0.0625); ended at iteration 2")
    assert res.nit == 2 and res.nbackoff == 4 and res.nfev == len(calls)
    np.testing.assert_array_equal(res.x, calls[2])
    assert res.fun == float(calls[2] @ calls[2]) and len(res.history["loss"]) == 3
    np.testing.assert_array_equal(res.jac, 2.0 * calls[2])


def wall(x):
    """An anisotropic bowl, lowest at (3.3, -1), whose "simulation" blows up (NaN) for x[0] > 3.5.
    From (2.9, -1) the gradient points along x[0] and L-BFGS-B's first trial step has unit
    length: it lands at x[0] = 3.9, in the NaN region."""
    if x[0] > 3.5:
        return np.nan, np.full_like(x, np.nan)
    d = x - np.array([3.3, -1.0])
    return float(d[0] ** 2 + 10.0 * d[1] ** 2), np.array([2.0 * d[0], 20.0 * d[1]])


def test_an_objective_that_raises_floating_point_error_is_backed_off_from():
    # diffsim.SimulationDiverged is a FloatingPointError: a rollout that diverges need not be
    # turned into NaN by the objective for minimize to back off from it
    def raising_wall(x):
        if x[0] > 3.5:
            raise FloatingPointError("step 12: state field 'v'[0] is 1e+99")
        return wall(x)

    with pytest.raises(FloatingPointError, match="step 12"):  # "raise": the error propagates
        opt.minimize(raising_wall, [2.9, -1.0], "lbfgs", 50)
    res = opt.minimize(raising_wall, [2.9, -1.0], "lbfgs", 50, on_nonfinite="backoff")
    assert res.success and res.nbackoff == 1 and np.allclose(res.x, [3.3, -1.0])
    res = opt.minimize(raising_wall, [2.9, -1.0], "sgd", 50, lr=2.0, on_nonfinite="backoff",
                       max_backoffs=0)
    assert not res.success and res.reason == "diverged" and res.nit == 0
    assert res.message == ("iteration 1: loss is NaN (the objective reports: step 12: state "
                           "field 'v'[0] is 1e+99), with max_backoffs=0; ended at iteration 0, "
                           "the last finite iterate: lower the learning rate, add "
                           "clip_by_global_norm, or bound the parameters")


def test_lbfgs_backs_off_from_a_non_finite_trial_and_converges():
    import scipy.optimize

    x0 = np.array([2.9, -1.0])
    plain = scipy.optimize.minimize(wall, x0, jac=True, method="L-BFGS-B")
    assert not plain.success and np.isnan(plain.fun)  # scipy alone dies on the first trial
    with pytest.raises(NonFiniteError, match="^iteration 1: loss is NaN; .*on_nonfinite='backoff'"):
        opt.minimize(wall, x0, "lbfgs", 100)

    seen = []

    def recorded(x):
        seen.append(x.copy())
        return wall(x)

    res = opt.minimize(recorded, x0, "lbfgs", 100, on_nonfinite="backoff")
    assert seen[1][0] == pytest.approx(3.9)  # the first trial was in the NaN region
    assert seen[2][0] == pytest.approx(3.4, abs=1e-3)  # then half the step
    assert res.success and res.reason == "converged" and res.nbackoff == 1
    np.testing.assert_allclose(res.x, [3.3, -1.0], atol=1e-10)
    assert np.all(np.isfinite(res.history["loss"])) and res.nfev == len(seen)


def test_lbfgs_backoff_keeps_bounds_and_halves_again_as_needed():
    # the wall nearer (x[0] > 3.35): trials at 3.9 and 3.4 both fail; with x[1] <= -1.2 active
    def nearer(x):
        return (np.nan, np.full_like(x, np.nan)) if x[0] > 3.35 else wall(x)

    res = opt.minimize(nearer, [2.9, -1.5], opt.LBFGS(bounds=[(None, None), (None, -1.2)]), 100,
                       on_nonfinite="backoff")
    assert res.success and res.nbackoff >= 2
    np.testing.assert_allclose(res.x, [3.3, -1.2], atol=1e-8)
    assert res.x[1] == -1.2


def test_lbfgs_restarts_from_the_best_trial_when_a_line_search_is_defeated():
    seen = []

    def hyperbola(x):
        """sqrt(1 + (x0 - 3)^2) + (x1 - 1)^2: nearly linear in x0 far from 3, so after a first
        trial at x0 = 1 the line search extrapolates, to x0 = 5: NaN (beyond 3.5)."""
        seen.append(x.copy())
        if x[0] > 3.5:
            return np.nan, np.full(2, np.nan)
        r = np.sqrt(1.0 + (x[0] - 3.0) ** 2)
        return float(r + (x[1] - 1.0) ** 2), np.array([(x[0] - 3.0) / r, 2.0 * (x[1] - 1.0)])

    res = opt.minimize(hyperbola, np.array([0.0, 1.0]), "lbfgs", 100, on_nonfinite="backoff",
                       max_backoffs=0)
    np.testing.assert_allclose(np.array(seen[:4]), [[0, 1], [1, 1], [5, 1], [2, 1]], atol=1e-12)
    # with no back-off allowed, the NaN at x0 = 5 restarted L-BFGS-B from the lower trial x0 = 1
    # (taken as iteration 1), whose fresh steepest-descent step of unit length goes to x0 = 2
    assert res.history["loss"][1] == hyperbola(np.array([1.0, 1.0]))[0]
    assert res.success and res.reason == "converged" and res.nbackoff == 2
    np.testing.assert_allclose(res.x, [3.0, 1.0], atol=1e-6)


def test_lbfgs_that_cannot_get_past_non_finite_trials_ends_honestly():
    calls = []

    def only_x0_is_finite(x):
        calls.append(1)
        if len(calls) > 1:
            return np.nan, np.full_like(x, np.nan)
        return float(x @ x), 2.0 * x

    res = opt.minimize(only_x0_is_finite, np.ones(3), "lbfgs", 100, on_nonfinite="backoff",
                       max_backoffs=5)
    assert not res.success and res.reason == "diverged"
    assert res.message.startswith("the line search from iteration 0 could not get past non-finite "
                                  "values (6 trial steps in a row failed, along a steepest-descent "
                                  "step with the quasi-Newton memory empty; last: iteration 1: "
                                  "loss is NaN)")
    np.testing.assert_array_equal(res.x, np.ones(3))
    assert res.fun == 3.0 and res.nit == 0 and res.nbackoff == 6 and len(calls) == 7


def test_error_pickles_with_its_attributes():
    err = NonFiniteError("iteration 3: loss is NaN", iteration=3, quantity="loss")
    back = pickle.loads(pickle.dumps(err))
    assert str(back) == str(err) and back.iteration == 3 and back.quantity == "loss"
