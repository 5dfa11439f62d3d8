"""Benchmark of the checkpointed tape. One JSON line per figure.

    python benchmarks/tape.py            # chain of 1,000 masses, T = 1e3, 1e4, 1e5; 5-mass launch test
    python benchmarks/tape.py --long     # adds T = 1e6
    python benchmarks/tape.py --quick    # small sizes, a few seconds

Each configuration runs in its own process, so that its peak resident memory (ru_maxrss) is its
own; "added_mb" is that peak minus the resident memory just before the rollout was built (after
Taichi started and the kernels compiled on a tiny warm-up rollout).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_schedule(name, steps, segment):
    import diffsim

    if name == "StoreAll":
        return diffsim.StoreAll()
    if name.startswith("Periodic"):
        every = max(segment, round(steps ** 0.5 / segment) * segment)
        return diffsim.Periodic(every=every)
    return diffsim.Binomial(int(name.split("=")[1]))


def one(cfg: dict) -> dict:
    """Run one configuration in this process and return its figures."""
    import numpy as np

    import diffsim
    from diffsim.mass_spring import MassSpringChain

    diffsim.init(arch=cfg.get("arch", "cpu"), precision="f64", threads=cfg.get("threads"))
    n, steps, segment = cfg["n"], cfg["steps"], cfg["segment"]
    system = MassSpringChain(n=n, dt=0.002, segment=segment, fused=cfg["fused"])
    warm = diffsim.Rollout(system, 2 * segment, make_schedule(cfg["schedule"], 2 * segment, segment),
                           segment=segment)
    warm.forward()
    warm.backward()
    base = rss_mb()
    ro = diffsim.Rollout(system, steps, make_schedule(cfg["schedule"], steps, segment), segment=segment)
    ro.set_controls(force=0.1 * np.sin(0.01 * np.arange(steps))[:, None])
    t0 = time.perf_counter()
    loss = ro.forward()
    t_fwd = time.perf_counter() - t0
    forward_only_steps = ro.stats.forward_steps
    t0 = time.perf_counter()
    ro.forward()
    grads = ro.backward()
    t_both = time.perf_counter() - t0
    return {"figure": "tape", "n": n, "steps": steps, "schedule": str(ro.schedule), "segment": segment,
            "fused": cfg["fused"], "forward_s": round(t_fwd, 4), "forward_backward_s": round(t_both, 4),
            "ratio": round(t_both / t_fwd, 2), "forward_steps": ro.stats.forward_steps,
            "forward_steps_in_forward": forward_only_steps, "recomputed_steps": ro.stats.recomputed_steps,
            "snapshots_peak": ro.stats.snapshots_peak, "storage_mb": round(ro.stats.storage_bytes / 2**20, 2),
            "baseline_mb": round(base, 1), "peak_mb": round(peak_mb(), 1), "added_mb": round(peak_mb() - base, 1),
            "loss": loss, "dL_dstiffness": float(grads.params["stiffness"][0])}


def run_child(cfg: dict) -> dict:
    out = subprocess.run([sys.executable, __file__, "--one", json.dumps(cfg)], capture_output=True, text=True,
                         cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), check=False)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        return {"figure": "tape", **cfg, "error": out.stderr.strip().splitlines()[-1:] or out.returncode}
    return json.loads(lines[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--long", action="store_true")
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--memory-limit-gb", type=float, default=12.0,
                   help="skip StoreAll where its states and adjoints would exceed this")
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(one(json.loads(args.one))), flush=True)
        return
    n, steps_list, segment = (100, [1000, 10_000], 50) if args.quick else (1000, [1000, 10_000, 100_000], 100)
    if args.long:
        steps_list.append(1_000_000)
    # The 1,000-mass chain is compute-bound: one parallel launch per step (segment = steps per
    # running-cost launch). The fused form is shown beside it at T = 10^4.
    for steps in steps_list:
        for schedule in ("StoreAll", "Periodic", "Binomial=32"):
            storeall_gb = 2 * 2 * n * 8 * (steps + 1) / 2**30
            if schedule == "StoreAll" and storeall_gb > args.memory_limit_gb:
                print(json.dumps({"figure": "tape", "n": n, "steps": steps, "schedule": "StoreAll()",
                                  "skipped": f"needs {storeall_gb:.1f} GB of states and adjoints"}), flush=True)
                continue
            print(json.dumps(run_child({"n": n, "steps": steps, "segment": segment, "fused": False,
                                        "schedule": schedule})), flush=True)
    for schedule in ("StoreAll", "Binomial=32"):
        print(json.dumps(run_child({"n": n, "steps": steps_list[1], "segment": segment, "fused": True,
                                    "schedule": schedule})), flush=True)
    # Launch-bound case: 5 masses, one parallel launch per step against one fused launch per segment.
    steps = 1000 if args.quick else 10_000
    for fused in (False, True):
        r = run_child({"n": 5, "steps": steps, "segment": 100 if fused else 1, "fused": fused,
                       "schedule": "StoreAll"})
        r["figure"] = "launch_bound"
        print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
