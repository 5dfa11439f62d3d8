"""Rigid-body benchmark: the 16-ball break (forward and forward+backward steps/s, fused and
per-step), the cost of a full gradient through it against finite differences in MuJoCo, the
bounce-tuning box, the grid broad phase for 5,000 bodies, stacks at rest (a tower of 10
boxes and a pyramid of 15, penalty and impulse box-box contact: largest drift and turn over 2 s), and
10,000 boxes falling into a bin (body-steps/s forward and with gradient). One JSON line per
figure.

    python benchmarks/rigid.py            # T = 1000 steps for the break
    python benchmarks/rigid.py --quick    # T = 200, fewer repeats
    python benchmarks/rigid.py --only break --steps 2048   # the 16-ball break alone
    python benchmarks/rigid.py --only stacks
    python benchmarks/rigid.py --only bin [--bin-bodies 10000 --bin-steps 100]
    python benchmarks/rigid.py --only cold  # each rigid scene's (and a user's 3D box scene's) first
                                            # forward+gradient, empty cache

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
    ap.add_argument("--only", choices=["break", "stacks", "bin", "cold"], default=None, help="run one group of figures")
    ap.add_argument("--bin-bodies", type=int, default=10_000, help="boxes falling into the bin")
    ap.add_argument("--bin-steps", type=int, default=100, help="steps of the bin rollout (dt 1e-3 s)")
    args = ap.parse_args(argv)
    if args.only == "cold":
        cold_compile({"precision": args.precision, "threads": args.threads or "all"}, args.precision, args.threads)
        return
    import diffsim
    from diffsim import Binomial, Rollout
    diffsim.init(arch="cpu", precision=args.precision, threads=args.threads)
    from diffsim.collision import GridBroadPhase, brute_force_pairs
    from scenes import billiards, bounce_tuning

    steps = args.steps or (200 if args.quick else 1000)
    repeats = 2 if args.quick else 5
    common = {"precision": args.precision, "threads": args.threads or "all"}
    if args.only == "stacks":
        stacks(common)
        return
    if args.only == "bin":
        boxes_bin(common, args.bin_bodies, args.bin_steps, repeats=2)
        return

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
        # the figure: the gradient with respect to the cue velocity alone (what an
        # Objective fitting it asks for: backward(only=...) leaves the other adjoints alone)
        tcue = _best(lambda ro=ro, v0=v0: (ro.forward(state0={"v": v0}), ro.backward(only=("v",))), reps)
        label = "fused" if fused else "per_step"
        print(json.dumps({"figure": f"break16_{label}", **common, "bodies": 16, "steps": steps,
                          "dt_s": problem.system.dt, "segment": ro.segment if fused else 1,
                          "forward_seconds": round(tf, 5), "forward_backward_seconds": round(tfb, 5),
                          "forward_cue_velocity_gradient_seconds": round(tcue, 5),
                          "forward_steps_per_s": round(steps / tf), "forward_backward_steps_per_s": round(steps / tfb),
                          "gradient_ms_per_step": round(1e3 * tfb / steps, 4),
                          "mujoco_fd_gradient_seconds": round(0.018 * steps, 2),
                          "speedup_vs_mujoco_fd": round(0.018 * steps / tfb, 1)}))
        if fused:
            moved = np.linalg.norm(ro.trajectory("v")[-1], axis=1)
            broken = int(np.sum(moved[1:] > 0.05))
    if args.only == "break":
        return

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
    stacks(common)
    boxes_bin(common, args.bin_bodies, args.bin_steps, repeats=1 if args.quick else 2)


def bin_model(bodies: int, seed: int = 0):
    """``bodies`` boxes (10 cm cubes, 0.5 kg, each turned up to 0.2 rad about a random axis) on a
    lattice of pitch 15 cm (no two touch), four layers deep, above the floor of a square bin (four
    walls); the lowest layer starts 1 to 3 cm above the floor. 3D, penalty contact: box-box (8 corners per pair)
    and box-plane."""
    from diffsim.rigid import Box, ModelBuilder

    half, pitch = 0.05, 0.15
    side = max(2, int(np.ceil(np.sqrt(bodies / 4))))
    rng = np.random.default_rng(seed)
    b = ModelBuilder(3)
    for k in range(bodies):
        i, j, layer = k % side, (k // side) % side, k // (side * side)
        tilt = rng.uniform(-0.2, 0.2)
        b.add_body(Box((half, half, half)), mass=0.5,
                   position=[pitch * (i + 0.5), pitch * (j + 0.5), 0.08 + pitch * layer],
                   orientation=rng.normal(size=3), angle=tilt, restitution=0.3, friction=0.5)
    width = pitch * side
    for normal, offset in (([0, 0, 1], 0.0), ([1, 0, 0], 0.0), ([-1, 0, 0], -width), ([0, 1, 0], 0.0),
                           ([0, -1, 0], -width)):
        b.add_plane(normal, offset, restitution=0.3, friction=0.5)
    return b.finalize()


def boxes_bin(common, bodies, steps, repeats=2):
    """Boxes falling into a bin (:func:`bin_model`; dt 1e-3 s, stiffness 1e4 N/m, per-step grid
    broad phase): body-steps/s of the forward rollout, and of forward + backward (gradient of
    a cost on one box's final position with respect to every parameter and initial state;
    every state stored). Compile time is measured on the same kernels first (8 boxes)."""
    import diffsim
    from diffsim.rigid import BodyTarget, RigidSystem

    def rollout(model, t):
        system = RigidSystem(model, dt=1e-3, stiffness=1e4, fused=False, max_pairs=16 * model.n + 64,
                             costs=[BodyTarget(0, [0.0, 0.0, 0.0])])
        return diffsim.Rollout(system, t, diffsim.StoreAll())

    t0 = time.perf_counter()
    small = rollout(bin_model(8), 4)
    small.forward()
    small.backward()
    compile_s = time.perf_counter() - t0
    model = bin_model(bodies)
    ro = rollout(model, steps)
    ro.forward()  # allocations at this size
    tf = _best(ro.forward, repeats)
    z0 = model.initial_state()["x"][:, 2]
    z = ro.final_state()["x"][:, 2]
    tfb = _best(lambda: (ro.forward(), ro.backward()), repeats)
    print(json.dumps({"figure": "bin_boxes_forward", **common, "bodies": model.n, "steps": steps, "dt_s": 1e-3,
                      "seconds": round(tf, 3), "body_steps_per_s": round(model.n * steps / tf),
                      "mean_drop_m": round(float(np.mean(z0 - z)), 5),
                      "compile_s": round(compile_s, 1)}))
    print(json.dumps({"figure": "bin_boxes_forward_backward", **common, "bodies": model.n, "steps": steps,
                      "dt_s": 1e-3, "seconds": round(tfb, 3), "body_steps_per_s": round(model.n * steps / tfb)}))


def stacks(common):
    """A 10-box tower and a 15-box pyramid (10 cm cubes, 3D, stiffness 1e5 N/m, dt 5e-4 s): after
    0.5 s of settling, the largest distance (mm) and turn (rad) of any box over the next 2 s,
    against the goal of 1 mm and 0.01 rad, and the seconds the rollout took (forward only)."""
    from diffsim.rigid import RigidSystem
    from diffsim.rotations import quat_angle_between_np
    from scenes.stacking import pyramid, tower

    dt, settle, hold = 5e-4, 1000, 4000
    for name, builder in (("tower10", tower(10, dim=3, stiffness=1e5)), ("pyramid15", pyramid(5, dim=3))):
        model = builder.finalize()
        system = RigidSystem(model, dt=dt, stiffness=1e5, segment=250)
        t0 = time.perf_counter()
        out = system.simulate(settle + hold)
        seconds = time.perf_counter() - t0
        x, q = out["x"][settle:], out["q"][settle:]
        drift = float(np.abs(x - x[0]).max())
        turn = max(quat_angle_between_np(q[t, i], q[0, i]) for t in range(0, hold + 1, 100) for i in range(model.n))
        print(json.dumps({"figure": f"stack_{name}_at_rest", **common, "bodies": model.n, "dt_s": dt,
                          "settle_s": settle * dt, "hold_s": hold * dt, "max_drift_mm": round(1e3 * drift, 4),
                          "max_turn_rad": round(float(turn), 6),
                          "at_rest": bool(drift <= 1e-3 and turn <= 0.01),
                          "seconds_incl_compile": round(seconds, 2)}))
    # the impulse model (diffsim/rigid/manifold.py): from the first step (no settling), dt 1e-3 s,
    # the tower's boxes shifted sideways by up to 5 mm (tests/rigid/test_rigid_impulse_boxes.py)
    dt, hold = 1e-3, 2000
    for iterations in (16, 32):
        for name, builder in (("tower10", _shifted_tower(10)), ("pyramid15", pyramid(5, dim=3))):
            model = builder.finalize()
            system = RigidSystem(model, dt=dt, contact="impulse", iterations=iterations)
            t0, c0 = time.perf_counter(), time.process_time()
            out = system.simulate(hold)
            seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
            x, q = out["x"], out["q"]
            drift = float(np.abs(x - x[0]).max())
            turn = max(quat_angle_between_np(q[t, i], q[0, i]) for t in range(0, hold + 1, 20)
                       for i in range(model.n))
            print(json.dumps({"figure": f"stack_{name}_at_rest_impulse", **common, "bodies": model.n,
                              "iterations": iterations, "dt_s": dt, "hold_s": hold * dt,
                              "max_drift_mm": round(1e3 * drift, 4), "max_turn_rad": round(float(turn), 6),
                              "at_rest": bool(drift <= 1e-3 and turn <= 0.01),
                              "seconds_incl_compile": round(seconds, 2), "cpu_s_incl_compile": round(cpu, 2)}))


def _shifted_tower(levels, half=0.05, jitter=5e-3):
    """A builder of ``levels`` touching 1 kg cubes of half side ``half`` on a floor, each shifted
    sideways by up to ``jitter`` m (3D)."""
    from diffsim.rigid import Box, ModelBuilder

    rng = np.random.default_rng(0)
    b = ModelBuilder(3)
    for i in range(levels):
        b.add_body(Box((half,) * 3), mass=1.0, position=[*rng.uniform(-jitter, jitter, 2), half + 2 * half * i],
                   restitution=0.2, friction=0.5)
    b.add_plane([0.0, 0.0, 1.0], 0.0, restitution=0.2, friction=0.5)
    return b


COLD_SCENES = ("billiards", "bounce_tuning", "bowling", "stacking")

# A user's own 3D scene in the impulse model (issue 15), public API only: a box dropped tilted onto
# another that rests on the floor, 200 steps, gradient with respect to the initial velocities
_BOX3D_IMPULSE = """
import numpy as np
from diffsim import Objective, Parameter, Rollout
from diffsim.costs import FinalDistance
from diffsim.rigid import Box, ModelBuilder, RigidSystem
b = ModelBuilder(3)
b.add_body(Box([0.1, 0.1, 0.1]), mass=1.0, position=[0, 0, 0.1])
b.add_body(Box([0.08, 0.08, 0.08]), mass=0.5, position=[0.03, 0, 0.35], orientation=[np.cos(0.2), np.sin(0.2), 0, 0])
b.add_plane([0, 0, 1], 0.0)
system = RigidSystem(b.finalize(), dt=2e-3, contact="impulse", costs=[FinalDistance(1, [0.05, 0.0, 0.3])])
problem = Objective(Rollout(system, 200), [Parameter("v", kind="state0")])
"""
COLD_USER_SCENES = {"box3d_impulse": _BOX3D_IMPULSE}

_COLD_RUN = """
import json, sys, tempfile, time
cpu0, wall0 = time.process_time(), time.perf_counter()
import diffsim
diffsim.init(arch="cpu", precision=sys.argv[2], threads=None if sys.argv[3] == "all" else int(sys.argv[3]),
             offline_cache_file_path=tempfile.mkdtemp(prefix="diffsim_cold_"))
if sys.argv[1].startswith("scenes."):
    import importlib
    problem = importlib.import_module(sys.argv[1]).build()
else:
    exec(sys.argv[1])
x0 = problem.x0()
cpu1, wall1 = time.process_time(), time.perf_counter()
problem(x0)
cpu2, wall2 = time.process_time(), time.perf_counter()
problem(x0)
wall3 = time.perf_counter()
print(json.dumps({"build_s": round(wall1 - wall0, 2), "first_forward_gradient_s": round(wall2 - wall1, 2),
                  "first_forward_gradient_cpu_s": round(cpu2 - cpu1, 2), "warm_forward_gradient_s": round(wall3 - wall2, 4)}))
"""


def cold_compile(common, precision, threads):
    """Each rigid scene at its default size, and a user's 3D box scene in the impulse model
    (``box3d_impulse``), in a fresh process with an empty offline cache: the
    seconds (wall and CPU) of its first forward+gradient, which compiles its kernels (goal: 10 s),
    and of the second, warm one. The CPU seconds are the figure to compare on a loaded machine:
    compiling is single-threaded, and the wall clock also counts other processes' turns."""
    import pathlib
    import subprocess
    import sys

    root = pathlib.Path(__file__).resolve().parents[1]
    runs = {**{name: "scenes." + name for name in COLD_SCENES}, **COLD_USER_SCENES}
    for name, scene in runs.items():
        out = subprocess.run([sys.executable, "-c", _COLD_RUN, scene, precision, str(threads or "all")], cwd=root,
                             capture_output=True, text=True, check=True)
        figures = json.loads(out.stdout.strip().splitlines()[-1])
        print(json.dumps({"figure": f"cold_compile_{name}", **common, **figures, "goal_s": 10.0}))


if __name__ == "__main__":
    main()
