"""MD benchmark: the LJ fluid of LAMMPS bench/in.lj (fcc at density 0.8442, T = 1.44, cutoff 2.5,
skin 0.3, dt 0.005, NVE). One JSON line per figure.

    python benchmarks/md.py                      # N = 4,000: forward throughput and kernel times
    python benchmarks/md.py --cells 20           # N = 32,000 (the issue's target size)
    python benchmarks/md.py --precision f32
    python benchmarks/md.py --gradient           # T = 1,000 at N = 4,000: StoreAll and Binomial(32),
                                                 # each in its own process (peak memory)
    python benchmarks/md.py --gradient --grid 10 # the same at N = 1,000 from a simple cubic grid
    python benchmarks/md.py --arch cuda --cells 63 --all             # N = 10^6 on a GPU
    python benchmarks/md.py --arch cuda --cells 63 --gradient --schedules Binomial=32

Gradient figures: wall seconds of a forward and of a forward plus backward, and the process's CPU
seconds for each (all threads; on a shared, loaded machine the CPU time of a one-thread run,
``--threads 1``, is the steadier measure of the work done).

Forward figures (atom-steps per second, median of --repeats runs of --steps steps from the lattice;
``atom_steps_per_cpu_s`` per CPU second of the process, all threads, and the 1-minute load beside):
- ``lj_forward``: MDSystem.simulate(), the fast path (full list, gather forces), rebuilding
  the list whenever an atom moved more than skin/2 (checked every step: no pair is ever missed);
- ``lj_forward_inlj_neighbor``: the same with in.lj's own neighbour settings, a rebuild every 20
  steps unchecked (``neigh_modify every 20 check no``), with the count of late rebuilds;
- ``lj_forward_tape_kernels``: simulate(fast=False), the differentiable kernels (half list, Newton).
Reference on this kind of 2-core machine (issue 4): LAMMPS 4.2-4.3 M atom-steps/s with 2 OpenMP
threads, OpenMM CPU 1.3 M. The speed of these virtual machines drifts by +-30 % within minutes:
compare with LAMMPS run just before or after (benchmarks/lammps_inlj.py). benchmarks/md_peers.py
runs the peers (LAMMPS for the forward, Warp's tape, benchmarks/warp_lj.py, for the gradient) and
this script in alternating rounds and prints the ratios.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _ms(fn, reps=10):
    import taichi as ti

    fn()
    ti.sync()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ti.sync()
        times.append(time.perf_counter() - t0)
    return round(1e3 * statistics.median(times), 3)


def forward(args, common):
    from scenes.lj_fluid import build

    prob = build(cells=args.cells, steps=10, snapshots=None, cut="plain")
    system, n = prob.system, prob.model.n
    runs = (("lj_forward", {}), ("lj_forward_inlj_neighbor", {"rebuild_every": 20}),
            ("lj_forward_tape_kernels", {"fast": False}))
    for name, kw in runs:
        if name == "lj_forward_tape_kernels" and n > 10_000 and not args.all:
            continue  # about 0.5 M atom-steps/s: a minute at N = 32,000; --all includes it
        system.simulate(25, **kw)  # compile every kernel the run uses (a rebuild step included)
        rates, cpu_rates, rebuilds, late = [], [], [], []
        for _ in range(args.repeats if name != "lj_forward_tape_kernels" else 1):
            b0 = system.rebuilds
            t0, c0 = time.perf_counter(), time.process_time()
            with warnings.catch_warnings():  # late rebuilds of the in.lj settings are counted, not warned
                warnings.simplefilter("ignore", RuntimeWarning)
                out = system.simulate(args.steps, **kw)
            rates.append(n * args.steps / (time.perf_counter() - t0))
            cpu_rates.append(n * args.steps / (time.process_time() - c0))
            rebuilds.append(system.rebuilds - b0)
            late.append(out.get("late_rebuilds", 0))
        fig = {"figure": name, **common, "steps": args.steps, "atom_steps_per_s": round(statistics.median(rates)),
               "best_atom_steps_per_s": round(max(rates)), "atom_steps_per_cpu_s": round(statistics.median(cpu_rates)),
               "runs": len(rates), "rebuilds": rebuilds[0], "load": os.getloadavg()[0]}
        if "rebuild_every" in kw:
            fig["late_rebuilds"] = late[0]
        print(json.dumps(fig), flush=True)

    # kernel times of the fast path (median ms), on the state after the runs above
    xs, cells, ff = system.forward_runner.slots, system.forward_runner.cells, system.ff
    cells.build(xs.x, 0)
    ff.prepare_gather()
    print(json.dumps({"figure": "lj_kernels_ms", **common,
                      "gather_forces": _ms(lambda: ff.gather_forces(cells, xs.x, 0, xs.f, xs.pe, xs.vir, 0)),
                      "gather_forces_energy_virial": _ms(lambda: ff.gather_forces(cells, xs.x, 0, xs.f, xs.pe,
                                                                                  xs.vir, 1)),
                      "full_list_build": _ms(lambda: cells.build(xs.x, 0), 5),
                      "half_list_build_tape": _ms(lambda: ff.build(xs.x, 0), 5),
                      "neighbours_per_atom": round(float((cells.nhome.to_numpy() + cells.nimage.to_numpy()).mean()), 1),
                      "through_image": round(float(cells.nimage.to_numpy().sum() / (cells.nhome.to_numpy() + cells.nimage.to_numpy()).sum()), 3),
                      "list_method": cells.method,
                      "capacity": cells.capacity}), flush=True)


def _grid_system(k, steps):
    """The in.lj fluid (density 0.8442, T = 1.44, cutoff 2.5, skin 0.3, dt 0.005, plain cut) started
    from a simple cubic k x k x k grid (k = 10: N = 1,000, the size of the comparison with Warp's
    tape), the loss the lj_fluid scene's: the mean potential energy per atom over the steps."""
    import numpy as np

    from diffsim.md import ForceField, LennardJones, MDSystem, Model, PotentialEnergy, maxwell_boltzmann

    n = k ** 3
    edge = (n / 0.8442) ** (1 / 3)
    g = (np.arange(k) + 0.5) * edge / k
    pos = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    model = Model(pos, masses=1.0, box=np.full(3, edge), velocities=maxwell_boltzmann(np.ones(n), 1.44, seed=0))
    ff = ForceField([LennardJones(1.0, 1.0, cutoff=2.5, shift=False)], model.types, model.box, skin=0.3)
    return MDSystem(model, ff, dt=0.005, segment=20, observe=("energy",),
                    costs=[PotentialEnergy(1.0 / (n * steps), running=True)])


def gradient_one(cfg):
    """One schedule in this process: forward, forward+backward, peak resident memory."""
    import diffsim
    from diffsim import Binomial, Rollout, StoreAll

    diffsim.init(arch=cfg.get("arch", "cpu"), precision=cfg["precision"], threads=cfg["threads"])
    from scenes.lj_fluid import build

    if cfg.get("grid"):
        system = _grid_system(cfg["grid"], cfg["steps"])
    else:
        system = build(cells=cfg["cells"], steps=cfg["steps"], snapshots=None, cut="plain", segment=20).system
    n = system.n
    schedule = StoreAll() if cfg["schedule"] == "StoreAll" else Binomial(int(cfg["schedule"].split("=")[1]))
    warm = Rollout(system, 40, schedule if cfg["schedule"] == "StoreAll" else Binomial(2))
    warm.forward()
    warm.backward()  # compiles
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ro = Rollout(system, cfg["steps"], schedule, check_finite=False)
    t0, c0 = time.perf_counter(), time.process_time()
    ro.forward()
    tf, cf = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    ro.forward()
    g = ro.backward()
    tb, cb = time.perf_counter() - t0, time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"figure": "lj_gradient", "atoms": n, "precision": cfg["precision"], "steps": cfg["steps"],
            "schedule": str(ro.schedule), "forward_s": round(tf, 3), "forward_backward_s": round(tb, 3),
            "ratio": round(tb / tf, 2), "forward_cpu_s": round(cf, 3), "forward_backward_cpu_s": round(cb, 3),
            "threads": cfg["threads"], "recomputed_steps": ro.stats.recomputed_steps,
            "tape_storage_mb": round(ro.stats.storage_bytes / 2**20, 1), "peak_rss_mb": round(peak, 1),
            "added_rss_mb": round(peak - base, 1), "dL_depsilon": float(g.params["epsilon"][0]),
            "dL_dsigma": float(g.params["sigma"][0]), "dL_dx0_norm": float((g.state0["x"] ** 2).sum() ** 0.5)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=10,
                    help="fcc cells per edge, 4 cells^3 atoms (10: N = 4,000; 20: N = 32,000)")
    ap.add_argument("--steps", type=int, default=None, help="steps per run (forward: 200; --gradient: 1000)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    ap.add_argument("--arch", default="cpu", choices=["cpu", "cuda"],
                    help="cuda: the GPU check (--cells 63 gives N = 1,000,188)")
    ap.add_argument("--precision", default="f64", choices=["f32", "f64"])
    ap.add_argument("--gradient", action="store_true", help="gradient figures instead of forward ones")
    ap.add_argument("--grid", type=int, default=0,
                    help="--gradient from a simple cubic grid of GRID^3 atoms instead of fcc cells (10: N = 1,000)")
    ap.add_argument("--schedules", default="StoreAll,Binomial=32")
    ap.add_argument("--all", action="store_true", help="also the tape kernels' forward at N > 10,000")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(gradient_one(json.loads(args.one))))
        return
    if args.gradient:
        for name in args.schedules.split(","):
            cfg = {"cells": args.cells, "steps": args.steps or 1000, "schedule": name, "precision": args.precision,
                   "threads": args.threads, "arch": args.arch, "grid": args.grid}
            out = subprocess.run([sys.executable, __file__, "--one", json.dumps(cfg)], capture_output=True,
                                 text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), check=False)
            lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
            print(lines[-1] if lines else json.dumps({"figure": "lj_gradient", "schedule": name,
                                                      "error": out.stderr[-800:]}), flush=True)
        return
    import diffsim

    diffsim.init(arch=args.arch, precision=args.precision, threads=args.threads)
    args.steps = args.steps or 200
    common = {"atoms": 4 * args.cells ** 3, "precision": args.precision, "arch": args.arch}
    if args.arch == "cpu":
        common["threads"] = args.threads or os.cpu_count()
    forward(args, common)


if __name__ == "__main__":
    main()
