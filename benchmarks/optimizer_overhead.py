"""Benchmark of optimizers/. One JSON line per figure.

    python benchmarks/optimizer_overhead.py            # overhead at 10^6 parameters; end-to-end chain fit
    python benchmarks/optimizer_overhead.py --quick    # 10^5 parameters, fewer iterations

"overhead": NumPy time minimize spends per iteration outside the objective (target: under 20 ms
at 10^6 parameters, so that the simulator dominates), for a quadratic objective
sum_i d_i x_i^2 with condition number 1e4; with and without checkpoints every 10 iterations.
"fit": the end-to-end identification of the reference chain's stiffness and damping from an
observed trajectory (tests/test_fitting.py): iterations, objective evaluations, wall time and
relative error of the recovered values per method.
"""

import argparse
import json
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import optimizers as opt


def quadratic(n):
    d = np.logspace(0, 4, n)
    return lambda x: (float(d @ (x * x)), 2.0 * d * x)


def overhead(n, iters):
    f, x0 = quadratic(n), np.ones(n)
    for method in ("sgd", "adam", "adamw", "rmsprop", "lbfgs"):
        for ckpt in (False, True):
            with tempfile.TemporaryDirectory() as d:
                res = opt.minimize(f, x0, method, iters, progress=False,
                                   checkpoint=os.path.join(d, "fit.ckpt") if ckpt else None)
            t = res.timings
            per_iter = (t["total_s"] - t["objective_s"]) / max(res.nit, 1)
            yield {"figure": "overhead", "method": method, "parameters": n, "checkpoint_every": 10 if ckpt else None,
                   "iterations": res.nit, "overhead_ms_per_iteration": round(per_iter * 1e3, 3),
                   "objective_ms_per_call": round(t["objective_s"] / max(res.nfev, 1) * 1e3, 3)}


def chain_fit(quick):
    import diffsim
    from diffsim import Binomial, Objective, Parameter, Rollout
    from diffsim.costs import TrajectoryMatch
    from diffsim.mass_spring import MassSpringChain

    diffsim.init(arch="cpu", precision="f64", deterministic=True)
    T, hidden = 200, {"stiffness": 180.0, "damping": 0.35}
    kw = {"n": 4, "dt": 0.005, "mass": 0.1, "kappa": 100.0, "segment": 20}
    u = 0.5 * np.sin(0.05 * np.arange(T))[:, None]
    ref = Rollout(MassSpringChain(**hidden, **kw), T)
    ref.set_controls(force=u)
    ref.forward()
    ro = Rollout(TrajectoryMatch(MassSpringChain(stiffness=120.0, damping=0.6, **kw), {"q": ref.trajectory("q")},
                                 weights={"q": 1e4}), T, Binomial(4))
    ro.set_controls(force=u)
    obj = Objective(ro, [Parameter("stiffness", transform="log"), Parameter("damping", transform="log")],
                    on_diverged="nan")
    x0 = obj.x0()
    runs = {"lbfgs": {"method": opt.LBFGS(gtol=1e-14, ftol=1e-16), "iters": 200},
            "adam": {"method": "adam", "lr": 0.05, "iters": 100 if quick else 200},
            "sgd_nesterov": {"method": opt.SGD(lr=2e-4, momentum=0.9, nesterov=True), "iters": 100 if quick else 200,
                                 "on_nonfinite": "backoff"},
            "rmsprop": {"method": "rmsprop", "lr": 0.01, "iters": 100 if quick else 200, "on_nonfinite": "backoff"}}
    for name, kwargs in runs.items():
        res = opt.minimize(obj, x0, progress=False, **kwargs)
        values = obj.unpack(res.x)
        err = max(abs(values[k][0] / v - 1) for k, v in hidden.items())
        yield {"figure": "fit", "problem": "chain stiffness+damping from a 200-step trajectory", "method": name,
               "iterations": res.nit, "evaluations": res.nfev, "backoffs": res.nbackoff,
               "wall_s": round(res.timings["total_s"], 3),
               "max_rel_error": float(err), "loss": res.fun}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    n, iters = (10**5, 20) if args.quick else (10**6, 30)
    for row in overhead(n, iters):
        print(json.dumps(row), flush=True)
    for row in chain_fit(args.quick):
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
