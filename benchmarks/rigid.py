"""Rigid-body benchmark: the 16-ball break (forward and forward+backward steps/s, fused and
per-step), the cost of a full gradient through it against finite differences in MuJoCo, the
bounce-tuning box, and the grid broad phase for 5,000 bodies. One JSON line per figure.

    python benchmarks/rigid.py            # T = 1000 steps for the break
    python benchmarks/rigid.py --quick    # T = 200, fewer repeats

MuJoCo reference (quoted in the issue): about 18 ms per step for a finite-difference gradient,
i.e. a gradient through T steps costs about 18 ms * T there. Here the tape's reverse mode gives
the gradient with respect to every initial state, parameter and control in one backward sweep.
"""

import argparse
import json
import time

import numpy as np


def _best(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="T = 200 steps, fewer repeats")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    ap.add_argument("--precision", default="f64", choices=["f32", "f64"])
    args = ap.parse_args(argv)
    import diffsim
    from diffsim import Binomial, Rollout
    diffsim.init(arch="cpu", precision=args.precision, threads=args.threads)
    from diffsim.collision import GridBroadPhase, brute_force_pairs
    from scenes import billiards, bounce_tuning

    steps = args.steps or (200 if args.quick else 1000)
    repeats = 2 if args.quick else 5
    common = {"precision": args.precision, "threads": args.threads or "all"}

    # --- the 16-ball break: cue ball at 6 m/s into the rack, impulse contacts with TOI
    for fused in (True, False):
        problem = billiards.build(balls=16, layout="rack", steps=steps, speed=6.0, angle=0.0, fused=fused)
        ro = problem.rollout
        v0 = problem.velocity(problem.x0())
        ro.forward(state0={"v": v0})
        ro.backward()  # compiles
        reps = repeats if fused else 1
        tf = _best(lambda ro=ro, v0=v0: ro.forward(state0={"v": v0}), reps)
        tfb = _best(lambda ro=ro, v0=v0: (ro.forward(state0={"v": v0}), ro.backward()), reps)
        label = "fused" if fused else "per_step"
        print(json.dumps({"figure": f"break16_{label}", **common, "bodies": 16, "steps": steps,
                          "dt_s": problem.system.dt, "segment": ro.segment if fused else 1,
                          "forward_seconds": round(tf, 5), "forward_backward_seconds": round(tfb, 5),
                          "forward_steps_per_s": round(steps / tf), "forward_backward_steps_per_s": round(steps / tfb),
                          "gradient_ms_per_step": round(1e3 * tfb / steps, 4),
                          "mujoco_fd_gradient_seconds": round(0.018 * steps, 2),
                          "speedup_vs_mujoco_fd": round(0.018 * steps / tfb, 1)}))
        if fused:
            moved = np.linalg.norm(ro.trajectory("v")[-1], axis=1)
            broken = int(np.sum(moved[1:] > 0.05))

    # same gradient with Binomial checkpointing (memory for recomputation)
    problem = billiards.build(balls=16, layout="rack", steps=steps, speed=6.0, angle=0.0, fused=True)
    ro = Rollout(problem.system, steps, Binomial(4))
    v0 = problem.velocity(problem.x0())
    ro.forward(state0={"v": v0})
    ro.backward()
    tfb = _best(lambda: (ro.forward(state0={"v": v0}), ro.backward()), repeats)
    print(json.dumps({"figure": "break16_fused_binomial4", **common, "steps": steps,
                      "forward_backward_seconds": round(tfb, 5), "recomputed_steps": ro.stats.recomputed_steps,
                      "storage_bytes": ro.stats.storage_bytes, "object_balls_moving_at_end": broken}))

    # --- bounce tuning: one 3D box on the floor, penalty contacts at 8 corners
    problem = bounce_tuning.build(steps=700, segment=700)
    x = problem.x0()
    problem(x)
    t = _best(lambda: problem(x), repeats)
    print(json.dumps({"figure": "bounce_box_forward_backward", **common, "bodies": 1, "steps": 700,
                      "seconds": round(t, 5), "forward_backward_steps_per_s": round(700 / t)}))

    # --- broad phase for 5,000 bodies
    rng = np.random.default_rng(0)
    for dim in (2, 3):
        n = 5000
        side = n ** (1 / dim) * 0.6
        centres = rng.uniform(-side, side, (n, dim))
        radius = rng.uniform(0.02, 0.5, n)
        bp = GridBroadPhase(radius, dim, capacity=20 * n)
        xs = __import__("taichi").ndarray(diffsim.config().real, (1, n, dim))
        xs.from_numpy(centres[None].astype(diffsim.config().numpy_real))
        bp.find_pairs(centres)  # compiles, allocates
        _, pairs, count = bp._own
        t = _best(lambda bp=bp, xs=xs, pairs=pairs, count=count: bp.run(xs, 0, pairs, count, 0),
                  5 if args.quick else 20)
        t0 = time.perf_counter()
        ref = brute_force_pairs(centres, radius)
        tref = time.perf_counter() - t0
        print(json.dumps({"figure": f"broadphase_{dim}d", **common, "bodies": n, "pairs": len(ref),
                          "grid_ms": round(1e3 * t, 3), "numpy_brute_force_ms": round(1e3 * tref, 1)}))


if __name__ == "__main__":
    main()
