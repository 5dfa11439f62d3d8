"""Benchmark of data-parallel fitting on Ray. One JSON line per figure.

    python benchmarks/distributed.py                    # force matching over 64 LJ configurations
    python benchmarks/distributed.py --problem chain    # chain identification over 64 trajectories
    python benchmarks/distributed.py --quick            # small sizes, well under a minute

Three objectives over the same cases are kept alive side by side: in-process (1 shard), Ray with
1 worker and Ray with 2 workers (a local Ray instance of 3 logical CPUs on this 2-core machine;
only one objective computes at a time). Rounds alternate between them, each round a short Adam
fit of ``--iters`` iterations, and the median per-iteration wall time over rounds is reported,
which keeps slow drifts of the shared machine's load out of the ratios. Deterministic runtime
(one Taichi thread per process), float64.

Figures: start-up (Ray instance, workers with their recipe build and warm-up), wall time per
iteration per mode, speed-up of 2 workers over 1 (and over in-process), the overhead Ray adds
per iteration (Ray 1 worker minus in-process; and driver wall minus the slowest shard's compute
time as measured inside the workers), and whether the fits agree. The machine is shared: the
workers' CPU time and "core_share_while_computing" (CPU seconds / wall seconds of the slowest
shard) show how much of a core each worker really got, and a second speed-up figure estimates
what two free cores would give (worker CPU time plus the measured overhead).
"""

import argparse
import json
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def emit(**fields):
    print(json.dumps(fields), flush=True)


def recipe_for(args):
    from diffsim.distributed import Recipe

    if args.problem == "force_matching":
        if args.quick:
            config = {"n_configs": args.cases, "cells": (2, 2, 2), "cutoff": 1.6}
        else:
            config = {"n_configs": args.cases, "cells": (3, 3, 3), "cutoff": 2.5}
        return Recipe("diffsim.distributed.examples:force_matching", config), config
    config = {"steps": 60 if args.quick else 200}
    return Recipe("diffsim.distributed.examples:chain_identification", config), config


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problem", choices=("force_matching", "chain"), default="force_matching")
    parser.add_argument("--cases", type=int, default=None, help="configurations or trajectories (default 64)")
    parser.add_argument("--iters", type=int, default=None, help="Adam iterations per round")
    parser.add_argument("--rounds", type=int, default=None, help="rounds over the three modes")
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--worker-niceness", type=int, default=0, help="nice value of Ray workers (Ray's default: 15)")
    args = parser.parse_args(argv)
    args.cases = args.cases or (16 if args.quick else 64)
    args.iters = args.iters or (5 if args.quick else 10)
    args.rounds = args.rounds or (2 if args.quick else 5)

    import diffsim
    from diffsim.distributed import InProcessExecutor, RayExecutor, ShardedObjective
    from optimizers import minimize

    diffsim.init(arch="cpu", precision="f64", deterministic=True)
    import ray

    recipe, config = recipe_for(args)
    what = {"problem": args.problem, "cases": args.cases, "config": config, "iters_per_round": args.iters,
            "rounds": args.rounds, "cpus": os.cpu_count(), "ray": ray.__version__,
            "worker_niceness": args.worker_niceness}
    emit(figure="setup", **what)

    t0 = time.perf_counter()
    # worker_niceness 0: Ray starts workers at nice 15, which on this shared machine hands their CPU
    # to other users' processes and would compare nice-15 workers with a nice-0 in-process run
    ray.init(address="local", num_cpus=3, include_dashboard=False, log_to_driver=False,
             object_store_memory=100 * 2**20, _system_config={"worker_niceness": args.worker_niceness})
    emit(figure="startup", what="ray.init, local instance", seconds=round(time.perf_counter() - t0, 2))

    objectives = {}
    for mode, make in (("in_process", lambda: InProcessExecutor(1, warmup=True)),
                       ("ray_1_worker", lambda: RayExecutor(workers=1)),
                       ("ray_2_workers", lambda: RayExecutor(workers=2))):
        t0 = time.perf_counter()
        objectives[mode] = ShardedObjective(recipe, range(args.cases), make())
        emit(figure="startup", what=f"{mode}: start workers, build recipe, warm-up evaluation",
             seconds=round(time.perf_counter() - t0, 2))

    x0 = objectives["in_process"].x0()
    per_iter = {m: [] for m in objectives}
    samples = {m: {"overhead": [], "cpu_sum": [], "cpu_max": [], "core_share": []} for m in objectives}
    results = {}
    lr = 0.02
    load_before = os.getloadavg()

    for _r in range(args.rounds):
        for mode, objective in objectives.items():
            calls = []

            def timed(x, objective=objective, calls=calls):
                out = objective(x)
                ex = objective.executor
                calls.append((objective.last_wall_s, max(ex.last_shard_s), sum(ex.last_shard_cpu_s),
                              max(ex.last_shard_cpu_s), min(c / w for c, w in zip(ex.last_shard_cpu_s, ex.last_shard_s))))
                return out

            t0 = time.perf_counter()
            res = minimize(timed, x0, method="adam", lr=lr, iters=args.iters)
            per_iter[mode].append((time.perf_counter() - t0) / len(calls))
            c = np.array(calls)
            for key, v in (("overhead", c[:, 0] - c[:, 1]), ("cpu_sum", c[:, 2]), ("cpu_max", c[:, 3]),
                           ("core_share", c[:, 4])):
                samples[mode][key].extend(v.tolist())
            results[mode] = res

    med = {m: float(np.median(v)) for m, v in per_iter.items()}
    stat = {m: {k: float(np.median(v)) for k, v in d.items()} for m, d in samples.items()}
    for mode in objectives:
        emit(figure="wall_per_iteration", mode=mode, ms=round(1e3 * med[mode], 2),
             ms_rounds=[round(1e3 * v, 2) for v in per_iter[mode]],
             shard_cpu_ms_total=round(1e3 * stat[mode]["cpu_sum"], 2),
             shard_cpu_ms_slowest=round(1e3 * stat[mode]["cpu_max"], 2),
             driver_minus_slowest_shard_ms=round(1e3 * stat[mode]["overhead"], 3),
             core_share_while_computing=round(stat[mode]["core_share"], 3))
    emit(figure="speedup", what="Ray 2 workers vs Ray 1 worker, measured wall time", target=1.6,
         value=round(med["ray_1_worker"] / med["ray_2_workers"], 3))
    emit(figure="speedup", what="Ray 2 workers vs in-process, measured wall time",
         value=round(med["in_process"] / med["ray_2_workers"], 3))
    one, two = stat["ray_1_worker"], stat["ray_2_workers"]
    emit(figure="speedup", what="Ray 2 workers vs 1 on two free cores, from worker CPU time plus measured overhead",
         value=round((one["cpu_sum"] + one["overhead"]) / (two["cpu_max"] + two["overhead"]), 3))
    emit(figure="ray_overhead", what="Ray 1 worker minus in-process, wall per iteration",
         ms=round(1e3 * (med["ray_1_worker"] - med["in_process"]), 3),
         percent=round(100 * (med["ray_1_worker"] / med["in_process"] - 1), 2))
    emit(figure="ray_overhead", what="driver wall minus slowest shard wall, per evaluation (round trip, (de)serialisation)",
         ray_1_worker_ms=round(1e3 * one["overhead"], 3), ray_2_workers_ms=round(1e3 * two["overhead"], 3),
         in_process_ms=round(1e3 * stat["in_process"]["overhead"], 3))
    xs = {m: r.x for m, r in results.items()}
    emit(figure="agreement", ray_1_equals_in_process_bitwise=bool(np.array_equal(xs["ray_1_worker"], xs["in_process"])),
         ray_2_vs_in_process_max_rel=float(np.max(np.abs(xs["ray_2_workers"] / xs["in_process"] - 1))),
         load_average_before=[round(v, 2) for v in load_before],
         load_average_after=[round(v, 2) for v in os.getloadavg()])
    for objective in objectives.values():
        objective.close()
    ray.shutdown()


if __name__ == "__main__":
    main()
