"""Articulated-robot benchmark: a 5-link planar arm (ABA forward dynamics, semi-implicit Euler).

Prints one JSON line per figure:
- forward steps/s and forward+backward steps/s at B=1 and B=1024 robots (robot-steps per second);
- the time of the gradient of the tip position (terminal cost |x_tip(T) - x*|^2) with respect to
  all T x 5 torques of a T=1,000 rollout at B=1 (forward + backward), for the planar arm and for
  issue 16's chain (5 links of 1 kg and 0.2 m, axes alternating x/y, dt = 1 ms);
- B = 64 (fewer robots than Taichi's CPU tasks of 512: spread over both threads);
- one Adam iteration (loss, gradient, update) of a 5-link pendulum's T = 500 torques, from zero
  torques, over 100 iterations.
Reference points measured elsewhere on this kind of machine: MuJoCo steps a comparable arm at
230-370k steps/s forward; Pinocchio's NumPy-driven adjoint takes 14-26 ms for the gradient.
Compile time (first call) is reported separately: with the offline cache as found, or with
``--cold`` an empty one (a fresh TI_OFFLINE_CACHE_FILE_PATH). ``--no-cfg-optimization`` starts
Taichi with ``cfg_optimization=False`` (its control-flow-graph passes took most of the gradient
kernels' compile time; see the closing note of issue 16 for the trade-off). ``--scene NAME``
(arm_reach, cartpole, hopper) times instead that robot scene's start up to its first gradient:
``build()`` at its default size, its initial guess, one loss and gradient (wall and CPU seconds;
with ``--cold`` every kernel compiles), and exits. ``--only chain`` prints only issue 16's chain
gradient line (min and median of ``--repeats`` gradients, wall and CPU ms), for A/B runs.

    python benchmarks/articulated.py [--quick] [--cold] [--no-cfg-optimization] [--scene NAME]
    python benchmarks/articulated.py --only chain [--repeats 200] [--threads 1]
"""

import argparse
import importlib
import json
import os
import tempfile
import time

import numpy as np

import diffsim
import optimizers
from diffsim import Objective, Rollout, StoreAll
from diffsim.articulated import ArticulatedSystem, Cost, RobotBuilder, planar_arm, rod_inertia


def _median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def _times(fn, repeats):
    """(wall, CPU) seconds of each of ``repeats`` calls of fn."""
    wall, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return np.array(wall), np.array(cpu)


def rollout_for(batch, steps, segment=None):
    model = planar_arm(5, damping=0.05)
    cost = Cost(effort=1e-3, ee_link="tip", ee_target=[0.8, 0.0, 0.5], ee_weight_final=1.0)
    system = ArticulatedSystem(model, batch=batch, dt=0.002, cost=cost, q0=[0.3, -0.2, 0.1, 0.2, -0.1],
                               segment=segment)
    ro = Rollout(system, steps, StoreAll())
    rng = np.random.default_rng(0)
    ro.set_controls(tau=rng.normal(scale=0.5, size=(steps, batch, model.nb)))
    return ro


def alternating_chain(n=5, length=0.2, mass=1.0):
    """Issue 16's chain: n rods of ``mass`` kg and ``length`` m hanging along -z, joint axes
    alternating x and y, a tip link at the end of the last rod."""
    rb = RobotBuilder("chain")
    rb.add_link("base")
    prev = "base"
    for i in range(n):
        rb.add_link(f"link{i}", mass=mass, com=(0.0, 0.0, -length / 2), inertia=rod_inertia(mass, length, "z"))
        rb.add_joint(f"joint{i}", "revolute", prev, f"link{i}", xyz=(0.0, 0.0, 0.0 if i == 0 else -length),
                     axis=(1.0, 0.0, 0.0) if i % 2 == 0 else (0.0, 1.0, 0.0))
        prev = f"link{i}"
    rb.add_link("tip")
    rb.add_joint("tip_weld", "fixed", prev, "tip", xyz=(0.0, 0.0, -length))
    return rb.finalize()


def chain_rollout(steps):
    model = alternating_chain()
    cost = Cost(ee_link="tip", ee_target=[0.3, 0.2, -0.7], ee_weight_final=1.0)
    system = ArticulatedSystem(model, batch=1, dt=1e-3, cost=cost, q0=[0.3, -0.2, 0.1, 0.2, -0.1], segment=steps)
    ro = Rollout(system, steps, StoreAll())
    ro.set_controls(tau=np.random.default_rng(1).normal(scale=0.5, size=(steps, 1, model.nb)))
    return ro


def scene_start(name):
    """A robot scene's start up to its first gradient: {step: [wall s, CPU s]}."""
    out = {}

    def clock(step, fn):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        out[step] = [time.perf_counter() - wall, time.process_time() - cpu]
        return result

    scene = clock("import", lambda: importlib.import_module(f"scenes.{name}"))
    problem = clock("build", scene.build)
    x0 = clock("initial guess", problem.x0 if hasattr(problem, "x0") else problem.objective.x0)
    clock("loss and gradient", lambda: problem.objective(x0))
    out["total"] = [sum(v[0] for v in out.values()), sum(v[1] for v in out.values())]
    return out


def gradient_line(robot, ro, steps, repeats):
    """Print the time of the gradient w.r.t. all torques (forward + backward, what an Objective
    fitting tau asks for): median wall s ("seconds", "ms"), and min / median wall and CPU ms."""

    def grad():
        ro.forward()
        return ro.backward(only=("tau",)).controls["tau"]

    g = grad()
    grad()
    wall, cpu = _times(grad, repeats)
    print(json.dumps({"figure": "gradient of tip position w.r.t. all torques", "robot": robot, "T": steps,
                      "B": 1, "n_torques": int(g.size), "seconds": float(np.median(wall)),
                      "ms": 1e3 * float(np.median(wall)), "repeats": repeats,
                      "wall_ms_min_median": [round(1e3 * wall.min(), 3), round(1e3 * float(np.median(wall)), 3)],
                      "cpu_ms_min_median": [round(1e3 * cpu.min(), 3), round(1e3 * float(np.median(cpu)), 3)],
                      "load": os.getloadavg()[0], "reference": "Pinocchio NumPy adjoint 14-26 ms", "target_ms": 3.0}))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a few seconds")
    parser.add_argument("--cold", action="store_true", help="compile into an empty Taichi offline cache")
    parser.add_argument("--no-cfg-optimization", action="store_true", help="Taichi's cfg_optimization=False")
    parser.add_argument("--scene", choices=("arm_reach", "cartpole", "hopper"),
                        help="time this robot scene's start up to its first gradient instead")
    parser.add_argument("--only", choices=("chain",), help="print only this figure: chain, issue 16's chain gradient")
    parser.add_argument("--repeats", type=int, default=None, help="gradients timed (default 5; --only chain 200)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: Taichi's)")
    args = parser.parse_args(argv)
    if args.cold:  # read by ti.init
        os.environ["TI_OFFLINE_CACHE_FILE_PATH"] = tempfile.mkdtemp(prefix="diffsim_cold_cache_")
    options = {"cfg_optimization": False} if args.no_cfg_optimization else {}
    diffsim.init(arch="cpu", precision="f64", threads=args.threads, **options)
    if args.scene:
        times = scene_start(args.scene)
        print(json.dumps({"figure": "scene start to first gradient", "scene": args.scene,
                          "offline_cache": "empty" if args.cold else "as found", "load": os.getloadavg()[0],
                          **{f"{k} (wall s, CPU s)": [round(v, 2) for v in t] for k, t in times.items()}}))
        return
    steps = 200 if args.quick else 1000
    big = 64 if args.quick else 1024
    repeats = args.repeats or (3 if args.quick else 5)
    if args.only == "chain":
        gradient_line("5-link chain, axes x/y, dt 1 ms", chain_rollout(steps), steps, args.repeats or 200)
        return

    t = time.perf_counter()
    ro = rollout_for(1, 10)
    ro.forward()
    ro.backward()
    print(json.dumps({"figure": "first call incl. compile (fwd + bwd kernels)", "seconds": time.perf_counter() - t,
                      "offline_cache": "empty" if args.cold else "as found"}))

    for batch, segment in ((1, steps), (1, 100), (64, None), (big, None)):
        ro = rollout_for(batch, steps, segment)
        ro.forward()
        fwd = _median_time(ro.forward, repeats)

        def fb(ro=ro):
            ro.forward()
            ro.backward()

        fb()
        both = _median_time(fb, repeats)
        common = {"robot": "5-link planar arm", "B": batch, "T": steps, "segment": ro.segment,
                  "kernel": ro.system.step_kernel, "precision": "f64", "threads": diffsim.info()["threads"]}
        print(json.dumps({"figure": "forward steps/s", **common, "seconds": fwd,
                          "robot_steps_per_s": batch * steps / fwd}))
        print(json.dumps({"figure": "forward+backward steps/s", **common, "seconds": both,
                          "robot_steps_per_s": batch * steps / both}))

    for robot, ro in (("5-link planar arm", rollout_for(1, steps, steps)),
                      ("5-link chain, axes x/y, dt 1 ms", chain_rollout(steps))):
        gradient_line(robot, ro, steps, repeats)

    ro = rollout_for(1, steps // 2, steps // 2)
    objective = Objective(ro, ["tau"])
    x0 = np.zeros(ro.steps * 5)
    optimizers.minimize(objective, x0, "adam", 2)
    iters = 20 if args.quick else 100
    seconds = min(_median_time(lambda: optimizers.minimize(objective, x0, "adam", iters), 1) for _ in range(repeats))
    print(json.dumps({"figure": "Adam iteration (loss, gradient, update)", "robot": "5-link planar arm", "T": ro.steps,
                      "B": 1, "iterations": iters, "ms_per_iteration": 1e3 * seconds / iters, "target_ms": 2.3}))


if __name__ == "__main__":
    main()
