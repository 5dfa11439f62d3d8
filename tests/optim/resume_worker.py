"""Resume scenarios for test_optim_resume.py, run in a subprocess that the test kills.

    python resume_worker.py SCENARIO CHECKPOINT OUT SLEEP

runs ``minimize`` for SCENARIO with ``checkpoint=CHECKPOINT`` (each objective evaluation sleeping
SLEEP seconds, so the parent has time to kill it) and pickles the outcome to OUT.
"""

import pickle
import sys
import time

import numpy as np

import optimizers as opt


def extended_rosenbrock(x):
    """sum_i 100 (x[i+1] - x[i]^2)^2 + (1 - x[i])^2; minimum at (1, ..., 1)."""
    r = x[1:] - x[:-1] ** 2
    loss = float(np.sum(100.0 * r ** 2 + (1.0 - x[:-1]) ** 2))
    g = np.zeros_like(x)
    g[:-1] = -400.0 * x[:-1] * r - 2.0 * (1.0 - x[:-1])
    g[1:] += 200.0 * r
    return loss, g


def rosenbrock_that_blows_up(x):
    """extended_rosenbrock, but NaN wherever the loss would exceed 5, its value at x = 0, as a
    simulation that diverges away from its data: L-BFGS from 0 meets a few NaN trials."""
    loss, g = extended_rosenbrock(x)
    return (np.nan, np.full_like(x, np.nan)) if loss > 5.0 else (loss, g)


def hyperbolas_behind_a_wall(x):
    """sum_i a_i sqrt(1 + (x_i - 3)^2), a = (1, 2, 3): nearly linear far from the minimum at
    x = 3, so L-BFGS-B extrapolates; NaN beyond x_i = 3.5. With max_backoffs=0 every non-finite
    trial restarts L-BFGS-B from the best point found."""
    if x.max() > 3.5:
        return np.nan, np.full_like(x, np.nan)
    a = np.array([1.0, 2.0, 3.0])
    r = np.sqrt(1.0 + (x - 3.0) ** 2)
    return float(a @ r), a * (x - 3.0) / r


def regression_cases(n=40, seed=1):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, 3))
    return [(a[i], float(a[i] @ [1.5, -2.0, 0.5])) for i in range(n)]


def squared_error(x, case):
    a, y = case
    r = a @ x - y
    return 0.5 * r * r, r * a


class NoisyBowl:
    """|x|^2 with Gaussian noise on the gradient, drawn from the generator ``minimize`` binds.
    It has no get_state/set_state: only minimize's own RNG checkpointing makes it resumable."""

    def bind_rng(self, rng):
        self.rng = rng

    def __call__(self, x):
        return float(x @ x), 2.0 * x + 0.1 * self.rng.normal(size=x.shape)


def problem(scenario):
    """``(objective, x0, minimize keyword arguments)`` for a scenario."""
    if scenario == "adam":
        method = opt.chain(opt.clip_by_global_norm(10.0),
                           opt.adam(opt.warmup(5, opt.cosine_decay(0.05, 100))))
        return extended_rosenbrock, np.full(5, -0.5), {
            "method": method, "iters": 100, "checkpoint_every": 7, "bounds": (-2.0, 2.0)}
    if scenario == "minibatch":  # the batches come from minimize's generator (seed=11)
        objective = opt.MiniBatchObjective(squared_error, regression_cases(), batch_size=6)
        return objective, np.zeros(3), {"method": opt.SGD(lr=0.05, momentum=0.5), "iters": 100,
                                            "checkpoint_every": 5, "seed": 11}
    if scenario == "minibatch_own_seed":
        objective = opt.MiniBatchObjective(squared_error, regression_cases(), 7, seed=3)
        return objective, np.zeros(3), {"method": "adam", "lr": 0.05, "iters": 100,
                                            "checkpoint_every": 10}
    if scenario == "noisy":
        return NoisyBowl(), np.ones(4), {"method": "sgd", "lr": 0.1, "iters": 60, "checkpoint_every": 10,
                                             "seed": 7}
    if scenario == "lbfgs":
        return extended_rosenbrock, np.full(6, -1.0), {"method": opt.LBFGS(maxcor=5),
                                                           "iters": 60, "checkpoint_every": 4}
    if scenario == "lbfgs_nan":
        return rosenbrock_that_blows_up, np.zeros(6), {"method": opt.LBFGS(maxcor=5),
                                                       "iters": 60, "checkpoint_every": 4,
                                                       "on_nonfinite": "backoff"}
    if scenario == "lbfgs_restart":
        return hyperbolas_behind_a_wall, np.zeros(3), {"method": opt.LBFGS(maxcor=5),
                                                       "iters": 60, "checkpoint_every": 2,
                                                       "on_nonfinite": "backoff",
                                                       "max_backoffs": 0}
    raise ValueError(scenario)


def run(scenario, checkpoint=None, sleep=0.0):
    objective, x0, kwargs = problem(scenario)
    calls = [0]

    def slow(x):
        calls[0] += 1
        time.sleep(sleep)
        return objective(x)

    for hook in ("get_state", "set_state", "bind_rng"):  # keep the objective's protocol
        if hasattr(objective, hook):
            setattr(slow, hook, getattr(objective, hook))
    res = opt.minimize(slow, x0, checkpoint=checkpoint, **kwargs)
    return res, calls[0]


if __name__ == "__main__":
    scenario, checkpoint, out, sleep = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    res, calls = run(scenario, checkpoint, sleep)
    with open(out, "wb") as f:
        pickle.dump({"result": res, "calls": calls}, f)
