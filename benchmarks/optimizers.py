"""Overhead of optimizers.minimize per iteration, next to a bare NumPy Adam loop.

    python benchmarks/optimizers.py

The objective is a quadratic ``sum_i d_i x_i^2`` (condition number 1e4), so the numbers are the
optimisers' own costs, which a simulation-backed objective (milliseconds per call) should dwarf.
The checkpoint columns save every 10 iterations; L-BFGS's checkpoints hold its replay tape
(one gradient per evaluation), so their cost grows with the run's length.
"""

import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import optimizers as opt  # noqa: E402


def make_objective(n):
    d = np.logspace(0, 4, n)
    return lambda x: (float(d @ (x * x)), 2.0 * d * x)


def bare_adam(f, x, iters, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
    m, v = np.zeros_like(x), np.zeros_like(x)
    for t in range(1, iters + 1):
        _, g = f(x)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        x = x - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
    return x


def microseconds_per_iteration(fn):
    t0 = time.perf_counter()
    nit = fn()
    return (time.perf_counter() - t0) / max(nit, 1) * 1e6


def main():
    import scipy.optimize  # noqa: F401  (keep its import time out of the first measurement)
    print("microseconds per iteration")
    print(f"{'n':>8} {'bare adam':>10} {'adam':>10} {'adam+ckpt':>10} {'lbfgs':>10} "
          f"{'lbfgs+ckpt':>11} {'lbfgs nit':>10}")
    for n in (10, 10_000, 100_000):
        f, x0 = make_objective(n), np.ones(n)
        k = 2000 if n < 10**5 else 200
        bare = microseconds_per_iteration(lambda: (bare_adam(f, x0, k), k)[1])
        adam = microseconds_per_iteration(lambda: opt.minimize(f, x0, "adam", k).nit)
        lbfgs = microseconds_per_iteration(lambda: opt.minimize(f, x0, "lbfgs", 200).nit)
        with tempfile.TemporaryDirectory() as d:
            adam_ck = microseconds_per_iteration(lambda: opt.minimize(
                f, x0, "adam", k, checkpoint=os.path.join(d, "a.ckpt")).nit)
            res = opt.minimize(f, x0, "lbfgs", 200)
            lbfgs_ck = microseconds_per_iteration(lambda: opt.minimize(
                f, x0, "lbfgs", 200, checkpoint=os.path.join(d, "l.ckpt")).nit)
        print(f"{n:>8} {bare:>10.1f} {adam:>10.1f} {adam_ck:>10.1f} {lbfgs:>10.1f} "
              f"{lbfgs_ck:>11.1f} {res.nit:>10}")


if __name__ == "__main__":
    main()
