"""MD benchmark: LJ fluid (LAMMPS bench/in.lj set-up) atom-steps/s, forward and forward+backward,
and the neighbour-list rebuild time. One JSON line per figure.

    python benchmarks/md.py            # N = 4000 (10^3 fcc cells), 100 steps
    python benchmarks/md.py --quick    # N = 500
    python benchmarks/md.py --cells 20 --precision f32   # N = 32,000 in float32

Reference (TAICHI.md, this kind of 2-core machine): LAMMPS 2.2-2.5 M atom-steps/s per core on
in.lj; Taichi forward 2.0 M and forward+checkpointed backward 0.35 M atom-steps/s at N = 4000.
"""

import argparse
import json
import time



def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="N = 500, fewer steps")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    ap.add_argument("--precision", default="f64", choices=["f32", "f64"])
    ap.add_argument("--cells", type=int, default=None,
                    help="fcc cells per edge, 4 cells^3 atoms (10: N = 4,000; 20: N = 32,000)")
    args = ap.parse_args(argv)
    import diffsim
    from diffsim import Binomial, Rollout, StoreAll
    diffsim.init(arch="cpu", precision=args.precision, threads=args.threads)
    from scenes.lj_fluid import build

    cells = args.cells or (5 if args.quick else 10)
    steps = args.steps or (100 if args.quick else 100)
    prob = build(cells=cells, steps=steps, snapshots=None, segment=20)
    n = prob.model.n
    system = prob.system
    common = {"atoms": n, "precision": args.precision, "threads": args.threads or "all"}

    # forward only (no tape): simulate() with two slots
    system.simulate(10)
    t0 = time.perf_counter()
    b0 = system.rebuilds
    system.simulate(steps)
    dt = time.perf_counter() - t0
    print(json.dumps({"figure": "lj_forward_simulate", **common, "steps": steps, "seconds": round(dt, 4),
                      "atom_steps_per_s": round(n * steps / dt), "rebuilds": system.rebuilds - b0}))

    # forward and forward+backward through the tape
    for name, schedule in (("storeall", StoreAll()), ("binomial8", Binomial(8))):
        ro = Rollout(system, steps, schedule, check_finite=False)
        ro.forward()
        ro.backward()  # warm-up (compiles)
        t0 = time.perf_counter()
        ro.forward()
        tf = time.perf_counter() - t0
        t0 = time.perf_counter()
        ro.backward()
        tb = time.perf_counter() - t0
        print(json.dumps({"figure": f"lj_tape_{name}", **common, "steps": steps,
                          "forward_seconds": round(tf, 4), "backward_seconds": round(tb, 4),
                          "forward_atom_steps_per_s": round(n * steps / tf),
                          "forward_backward_atom_steps_per_s": round(n * steps / (tf + tb)),
                          "recomputed_steps": ro.stats.recomputed_steps}))

    # neighbour-list rebuild
    import taichi as ti
    x = ti.ndarray(diffsim.config().real, (1, n, 3))
    x.from_numpy(prob.model.positions[None].astype(diffsim.config().numpy_real))
    nl = system.ff.nlist
    nl.build(x, 0)
    reps = 20
    t0 = time.perf_counter()
    for _ in range(reps):
        nl.build(x, 0)
    ti.sync()
    dt = (time.perf_counter() - t0) / reps
    print(json.dumps({"figure": "neighbour_list_rebuild", **common, "method": nl.method, "capacity": nl.capacity,
                      "max_neighbours": nl.max_count, "ms": round(dt * 1e3, 3)}))
    print(json.dumps({"figure": "reference", "lammps_atom_steps_per_s_per_core": "2.2e6-2.5e6",
                      "taichi_md_TAICHI_md_forward": 2.0e6, "taichi_md_TAICHI_md_forward_backward": 0.35e6}))


if __name__ == "__main__":
    main()
