"""GPU check: one command that proves every simulator on a device and measures its throughput.

    python benchmarks/gpu_check.py --out DIR --arch cuda      # full sizes (H100: a few minutes)
    python benchmarks/gpu_check.py --out DIR --arch cpu --small   # the test suite's run, seconds
    python benchmarks/gpu_check.py --out DIR --only lj,md_forward_f32

Writes DIR/gpu_check.jsonl (one JSON object a line, one line per figure, printed as they come)
and DIR/gpu_check.md (a short table); ``--keep-arrays`` also keeps the compared arrays. Lines, by ``check``:

- ``runtime``: Taichi version, the arch Taichi really started on (``--arch cuda`` that fell back
  to the CPU is a failure, said in capitals), device name (nvidia-smi, else the CPU model),
  precision, offline-cache state.
- ``agreement`` (one per simulator: ``chain``, ``lj``, ``billiards``, ``robot``, ``box_stack``):
  loss and gradient (every parameter, control and initial state) on the target arch in float64
  against the same rollout on the CPU in float64, run in another process (Taichi has one runtime
  per process) and compared from saved .npz files. Error of a quantity: max|a - b| / max|b|
  (normwise, so that entries near zero do not blow up); passes at <= 1e-9.
- ``schedules`` (one per simulator): Periodic and Binomial against StoreAll on the target arch
  in deterministic mode. The CPU is deterministic with one thread (bitwise equality required);
  CUDA sums atomic adds in a run-dependent order and Taichi 1.7.4 has no switch to stop it, so
  there the line gives the largest relative difference (passes at <= 1e-9).
- ``throughput``: ``md_forward_f32``/``md_forward_f64`` (LAMMPS in.lj, 10^6 atoms, atom-steps/s),
  ``md_gradient`` (T = 1,000 at 10^5 atoms, Binomial(32): seconds, memory), ``robot_batch``
  (65,536 five-link arms, env-steps/s forward and with gradient), ``rigid_bin`` (10^5 spheres
  falling into a bin, body-steps/s); each with its compile time (a tiny run of the same kernels
  first) and the first call at full size.

A check that fails or raises gives one line with ``status: "error"``, the error's type and
message, and the command goes on; a check process that dies or overruns its time gives one such
line for each figure it still owed. Exit code 0 when every line passed or was skipped, else 1.
``--small`` shrinks every size so that the whole command runs in seconds on a CPU; ``--budget``
(default 480 s) bounds the whole command. Without ``--arch`` it takes CUDA where nvidia-smi lists
a GPU, else the CPU at the small sizes (so ``diffsim bench`` stays quick on a CPU machine).
"""

import argparse
import json
import os
import platform
import resource
import select
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.dirname(os.path.abspath(__file__))


def sibling(name: str):
    """benchmarks/<name>.py as a module, loaded from its file under a private name, so that a
    benchmark module never stands in for a package of the same name."""
    import importlib.util

    key = f"_diffsim_benchmark_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, os.path.join(HERE, f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]
TOLERANCE = 1e-9
AGREEMENT = ("chain", "lj", "billiards", "robot", "box_stack")
THROUGHPUT = ("md_forward_f32", "md_forward_f64", "md_gradient", "robot_batch", "rigid_bin")
CHECKS = ("runtime", *AGREEMENT, *THROUGHPUT)

# Sizes: full (the issue's) and --small (seconds on a 2-core CPU). Steps T, the rest per check.
SIZES = {
    False: {"chain": {"n": 16, "steps": 1000}, "lj": {"cells": 4, "steps": 100, "segment": 20},
            "billiards": {"steps": 500}, "robot": {"steps": 1000}, "box_stack": {"boxes": 3, "steps": 500},
            "md_forward": {"cells": 63, "steps": 200, "repeats": 2},
            "md_gradient": {"cells": 29, "steps": 1000, "schedule": "Binomial=32"},
            "robot_batch": {"batch": 65_536, "steps": 100, "repeats": 3},
            "rigid_bin": {"bodies": 100_000, "steps": 100, "repeats": 2}},
    True: {"chain": {"n": 8, "steps": 200}, "lj": {"cells": 4, "steps": 30, "segment": 10},
           "billiards": {"steps": 100}, "robot": {"steps": 200}, "box_stack": {"boxes": 3, "steps": 100},
           "md_forward": {"cells": 6, "steps": 20, "repeats": 2},
           "md_gradient": {"cells": 4, "steps": 40, "schedule": "Binomial=4"},
           "robot_batch": {"batch": 64, "steps": 20, "repeats": 2},
           "rigid_bin": {"bodies": 512, "steps": 20, "repeats": 2}},
}
# Seconds each check process may run before its missing lines are reported as errors.
TIMEOUTS = {False: {"agreement": 240, "md_forward": 120, "md_gradient": 150, "robot_batch": 120, "rigid_bin": 90},
            True: {"agreement": 900, "md_forward": 200, "md_gradient": 200, "robot_batch": 200, "rigid_bin": 200}}
# The whole command's default --budget: the device's 8 minutes; --small: time for an empty Taichi
# cache on a loaded 2-core machine, where the box stack's gradient kernel alone compiles for minutes
# (warm, the whole command needs about a minute).
BUDGET = {False: 480.0, True: 1500.0}


# ----------------------------------------------------------------------------- machine facts


def _nvidia_smi(*query) -> list[str]:
    """Rows of ``nvidia-smi --query-...`` (empty where there is no nvidia-smi or it fails)."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", *query, "--format=csv,noheader,nounits"], capture_output=True,
                             text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    return [r.strip() for r in out.stdout.splitlines() if r.strip()] if out.returncode == 0 else []


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_memory_mb() -> dict:
    """GPU memory now: this process's (nvidia-smi compute apps; absent under some sandboxes)
    and the whole device's used MiB. Empty without nvidia-smi."""
    def number(text):
        try:
            return float(text)
        except ValueError:  # "[N/A]" in some containers
            return text

    out = {}
    for row in _nvidia_smi("--query-compute-apps=pid,used_memory"):
        cells = [c.strip() for c in row.split(",")]
        if len(cells) == 2 and cells[0] == str(os.getpid()):
            out["process_mb"] = number(cells[1])
    used = _nvidia_smi("--query-gpu=memory.used")
    if used:
        out["device_used_mb"] = number(used[0].split(",")[0])
    return out


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


# ----------------------------------------------------------------------------- check processes


class FellBack(Exception):
    """The arch asked for is not available: Taichi would run on the CPU instead."""


def start(arch: str, precision: str = "f64", deterministic: bool = False, threads: int | None = None):
    """diffsim.init on ``arch``; raises FellBack (after noting why) when Taichi cannot start it."""
    import diffsim

    try:
        return diffsim.init(arch=arch, precision=precision, deterministic=deterministic, threads=threads)
    except diffsim.ConfigError as exc:
        if arch == "cpu" or "was asked for but Taichi started on" not in str(exc):
            raise
        raise FellBack(str(exc)) from exc


def runtime_line(arch: str) -> dict:
    """The runtime figure; starts Taichi on ``arch`` (or, where it falls back, on the CPU)."""
    import taichi as ti

    import diffsim

    fell_back = None
    try:
        start(arch, "f64", deterministic=True)
    except FellBack as exc:
        fell_back = str(exc)
        diffsim.init(arch="cpu", precision="f64", deterministic=True)
    info = diffsim.info()
    gpus = _nvidia_smi("--query-gpu=name,driver_version,memory.total")
    used = info["arch"]
    line = {"check": "runtime", "name": "runtime", "taichi": ".".join(map(str, ti.__version__)),
            "arch_requested": arch, "arch_used": used,
            "device": gpus[0].split(",")[0] if used == "cuda" and gpus else cpu_model(),
            "gpus_seen": gpus, "cpu": cpu_model(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "precision": "f64 (agreement, schedules); throughput lines give their own",
            "offline_cache": os.environ.get("TI_OFFLINE_CACHE_FILE_PATH", "~/.cache/taichi (default)"),
            "status": "pass"}
    if fell_back:
        line.update(status="fail", fell_back=True,
                    warning=f"{arch.upper()} WAS REQUESTED BUT TAICHI RAN ON THE CPU: {fell_back}")
    return line


def _flatten(loss: float, grads) -> dict:
    out = {"loss": np.array([loss])}
    for group in ("params", "controls", "state0"):
        for name, value in getattr(grads, group).items():
            out[f"{group}.{name}"] = np.asarray(value, dtype=np.float64)
    return out


def _run_rollout(case, schedule) -> tuple[dict, int]:
    """Loss and gradients of one rollout under ``schedule``, flattened; and its segment."""
    import diffsim

    ro = diffsim.Rollout(case["system"], case["steps"], schedule)
    loss = ro.forward(state0=case.get("state0"), controls=case.get("controls"))
    return _flatten(loss, ro.backward()), ro.segment


def build_case(name: str, size: dict) -> dict:
    """The rollout of an agreement check: {system, steps, state0, controls}, or {skipped: reason}."""
    steps = size["steps"]
    if name == "chain":
        from diffsim.mass_spring import MassSpringChain

        system = MassSpringChain(n=size["n"], dt=0.002, segment=50)
        return {"system": system, "steps": steps,
                "controls": {"force": 0.1 * np.sin(0.01 * np.arange(steps))[:, None]}}
    if name == "lj":
        from scenes.lj_fluid import build

        prob = build(cells=size["cells"], steps=steps, snapshots=None, cut="plain", segment=size["segment"])
        return {"system": prob.system, "steps": steps}
    if name == "billiards":
        from scenes import billiards

        prob = billiards.build(balls=16, layout="rack", steps=steps, speed=6.0, angle=0.0, fused=True)
        return {"system": prob.system, "steps": steps, "state0": {"v": prob.velocity(prob.x0())}}
    if name == "robot":
        rollout_for = sibling("articulated").rollout_for  # benchmarks/articulated.py's 5-link arm

        ro = rollout_for(1, steps)
        return {"system": ro.system, "steps": steps, "controls": ro.controls()}
    if name == "box_stack":
        from diffsim.errors import ConfigError
        from diffsim.rigid import BodyTarget, Box, ModelBuilder, RigidSystem

        b = ModelBuilder(3)
        b.add_plane([0.0, 0.0, 1.0], 0.0, restitution=0.2, friction=0.5)
        for k in range(size["boxes"]):
            b.add_body(Box((0.1, 0.1, 0.1)), mass=1.0, position=[0.01 * k, 0.0, 0.1 + 0.2 * k + 0.005 * k],
                       restitution=0.2, friction=0.5)
        top = size["boxes"] - 1
        try:
            system = RigidSystem(b.finalize(), dt=1e-3, contact="penalty", stiffness=1e4, fused=True, segment=50,
                                 costs=[BodyTarget(top, [0.0, 0.0, 0.2 * size["boxes"]])])
        except ConfigError as err:
            if "box-box" not in str(err):
                raise
            return {"skipped": "box-box contact is not supported yet (issue 15): RigidSystem refuses the stack "
                               "(the boxes would fall through each other)"}
        return {"system": system, "steps": steps}
    raise ValueError(f"unknown agreement check {name!r}")


def schedules_for(steps: int, segment: int) -> list:
    import diffsim

    units = max(1, steps // segment)
    return [diffsim.Periodic(every=segment * max(1, units // 3)), diffsim.Binomial(2)]


def child_agreement(cfg: dict, emit):
    """Target or reference process: StoreAll loss and gradient of each case to an .npz; on the
    target, also every schedule against StoreAll."""
    import diffsim

    role, arch = cfg["role"], cfg["arch"]
    if role == "target":
        line = runtime_line(arch)
        emit(line)  # always: the parent waits for it before it starts the reference
        if line.get("fell_back"):
            raise FellBack(line["warning"])
    else:
        diffsim.init(arch="cpu", precision="f64", deterministic=True)
    used = diffsim.info()["arch"]
    for name in cfg["cases"]:
        try:
            t0 = time.perf_counter()
            case = build_case(name, cfg["sizes"][name])
            if "skipped" in case:
                if role == "target":
                    emit({"check": "agreement", "name": name, "status": "skipped", "reason": case["skipped"]})
                    emit({"check": "schedules", "name": name, "status": "skipped", "reason": case["skipped"]})
                continue
            ref, segment = _run_rollout(case, diffsim.StoreAll())
            seconds = time.perf_counter() - t0
            np.savez(os.path.join(cfg["out"], f"agree_{role}_{name}.npz"), **ref)
            emit({"check": "saved", "name": name, "role": role, "arch": used, "seconds": round(seconds, 2)})
            if role != "target":
                continue
            deterministic = used == "cpu"
            result = {}
            for schedule in schedules_for(case["steps"], segment):
                got, _ = _run_rollout(case, schedule)
                same = all(np.array_equal(got[k], ref[k]) for k in ref)
                worst = max(_rel(got[k], ref[k]) for k in ref)
                result[str(schedule)] = {"bitwise": bool(same), "max_rel_diff": worst}
            ok = (all(r["bitwise"] for r in result.values()) if deterministic
                  else all(r["max_rel_diff"] <= TOLERANCE for r in result.values()))
            line = {"check": "schedules", "name": name, "arch": used, "steps": case["steps"], "segment": segment,
                    "against": "StoreAll()", "schedules": result, "status": "pass" if ok else "fail"}
            if not deterministic:
                line["note"] = (f"bitwise equality is not required on {used}: atomic adds are summed in a "
                                "run-dependent order and Taichi 1.7.4 cannot make them deterministic; passes "
                                f"when the max relative difference is <= {TOLERANCE:g}")
            emit(line)
        except Exception as exc:  # noqa: BLE001 -- one failing simulator must not stop the others
            emit(_error("agreement" if role == "reference" else "schedules", name, exc))
            if role == "target":
                emit(_error("agreement", name, exc))


def child_md_forward(cfg: dict, emit):
    """LAMMPS in.lj forward through MDSystem.simulate (the path benchmarks/md.py times)."""
    import warnings

    start(cfg["arch"], cfg["precision"], threads=cfg["threads"])
    from scenes.lj_fluid import build

    size = cfg["size"]
    t0 = time.perf_counter()
    warm = build(cells=6, steps=10, snapshots=None, cut="plain").system  # the smallest box in.lj's neighbour settings allow
    warm.simulate(25)  # compiles every kernel the runs below use
    warm.simulate(25, rebuild_every=20)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    prob = build(cells=size["cells"], steps=10, snapshots=None, cut="plain")
    build_s = time.perf_counter() - t0
    system, n = prob.system, prob.model.n
    t0 = time.perf_counter()
    system.simulate(25)
    first_s = time.perf_counter() - t0
    # as many steps as the size asks, but no more than about 4 s a run at the first call's rate
    steps = int(min(size["steps"], max(20, 4.0 * 25 / first_s)))
    rates = {}
    for label, kw in (("atom_steps_per_s", {}), ("atom_steps_per_s_inlj_neighbor", {"rebuild_every": 20})):
        best = []
        for _ in range(size["repeats"]):
            t0 = time.perf_counter()
            with warnings.catch_warnings():  # late rebuilds of the in.lj settings are counted by md.py
                warnings.simplefilter("ignore", RuntimeWarning)
                system.simulate(steps, **kw)
            best.append(n * steps / (time.perf_counter() - t0))
        rates[label] = round(float(np.median(best)))
    line = {"check": "throughput", "name": cfg["name"], **_where(), "precision": cfg["precision"],
            "atoms": n, "steps": steps, **rates, "compile_s": round(compile_s, 2),
            "build_s": round(build_s, 2), "first_call_25_steps_s": round(first_s, 2),
            "reference": "HOOMD-blue class: 300 M atom-steps/s and more on an H100; LAMMPS 4.2 M on 2 CPU cores",
            "status": "pass"}
    emit(line)


def child_md_gradient(cfg: dict, emit):
    """Gradient through T steps with Binomial checkpointing: benchmarks/md.py's gradient_one."""
    import diffsim

    start(cfg["arch"], "f64", threads=cfg["threads"])
    gradient_one = sibling("md").gradient_one  # benchmarks/md.py

    from scenes.lj_fluid import build

    before = gpu_memory_mb()
    t0 = time.perf_counter()
    prob = build(cells=4, steps=40, snapshots=None, cut="plain", segment=20)
    ro = diffsim.Rollout(prob.system, 40, diffsim.Binomial(2))
    ro.forward()
    ro.backward()
    compile_s = time.perf_counter() - t0
    size = cfg["size"]
    t0 = time.perf_counter()
    fig = gradient_one({"cells": size["cells"], "steps": size["steps"], "schedule": size["schedule"],
                        "precision": "f64", "threads": cfg["threads"], "arch": cfg["arch"]})
    total_s = time.perf_counter() - t0
    fig.pop("figure", None)
    fig["atom_steps_per_s_with_gradient"] = round(fig["atoms"] * fig["steps"] / fig["forward_backward_s"])
    line = {"check": "throughput", "name": "md_gradient", **_where(), **fig, "compile_s": round(compile_s, 2),
            "call_s": round(total_s, 2), "gpu_memory_before_mb": before, "gpu_memory_after_mb": gpu_memory_mb(),
            "status": "pass" if np.isfinite(fig["dL_depsilon"]) else "fail"}
    emit(line)


def child_robot_batch(cfg: dict, emit):
    """B five-link arms (benchmarks/articulated.py's rollout), forward and forward + backward."""
    start(cfg["arch"], "f64", threads=cfg["threads"])
    rollout_for = sibling("articulated").rollout_for

    t0 = time.perf_counter()
    ro = rollout_for(1, 10)
    ro.forward()
    ro.backward()
    compile_s = time.perf_counter() - t0
    size = cfg["size"]
    B, T = size["batch"], size["steps"]
    t0 = time.perf_counter()
    ro = rollout_for(B, T)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ro.forward()
    g = ro.backward()
    first_s = time.perf_counter() - t0
    fwd, both = [], []
    for _ in range(size["repeats"]):
        t0 = time.perf_counter()
        ro.forward()
        fwd.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ro.forward()
        g = ro.backward()
        both.append(time.perf_counter() - t0)
    tf, tb = float(np.median(fwd)), float(np.median(both))
    finite = bool(np.all(np.isfinite(g.controls["tau"])))
    emit({"check": "throughput", "name": "robot_batch", **_where(), "precision": "f64", "robots": B, "steps": T,
          "segment": ro.segment, "forward_s": round(tf, 4), "forward_backward_s": round(tb, 4),
          "env_steps_per_s_forward": round(B * T / tf), "env_steps_per_s_with_gradient": round(B * T / tb),
          "compile_s": round(compile_s, 2), "build_s": round(build_s, 2), "first_call_s": round(first_s, 2),
          "gpu_memory_mb": gpu_memory_mb(), "peak_rss_mb": peak_rss_mb(),
          "status": "pass" if finite else "fail"})


def bin_model(bodies: int, seed: int = 0):
    """``bodies`` spheres (r = 5 cm, 0.5 kg) on a jittered lattice above the floor of a square
    bin (four walls), the lowest layer resting on the floor."""
    from diffsim.rigid import ModelBuilder, Sphere

    r, gap = 0.05, 0.11
    side = max(2, int(np.ceil((bodies / 4) ** (1 / 2))))  # a layer of side^2, about 4 layers deep
    rng = np.random.default_rng(seed)
    b = ModelBuilder(3)
    for k in range(bodies):
        i, j, layer = k % side, (k // side) % side, k // (side * side)
        jitter = rng.uniform(-0.005, 0.005, 3)
        b.add_body(Sphere(r), mass=0.5, position=[r + gap * i + jitter[0], r + gap * j + jitter[1],
                                                   r + gap * layer + abs(jitter[2])], restitution=0.3, friction=0.4)
    width = r + gap * side
    for normal, offset in (([0, 0, 1], 0.0), ([1, 0, 0], 0.0), ([-1, 0, 0], -width), ([0, 1, 0], 0.0),
                           ([0, -1, 0], -width)):
        b.add_plane(normal, offset, restitution=0.3, friction=0.4)
    return b.finalize()


def child_rigid_bin(cfg: dict, emit):
    """Spheres falling into a bin: penalty contact, per-step grid broad phase, forward only."""
    import diffsim
    from diffsim.rigid import RigidSystem

    start(cfg["arch"], "f64", threads=cfg["threads"])

    def rollout(model, steps):
        system = RigidSystem(model, dt=1e-3, contact="penalty", stiffness=1e4, fused=False,
                             max_pairs=16 * model.n + 64)
        return diffsim.Rollout(system, steps, diffsim.Periodic(every=min(10, steps)), check_finite=False)

    t0 = time.perf_counter()
    rollout(bin_model(8), 4).forward()
    compile_s = time.perf_counter() - t0
    size = cfg["size"]
    t0 = time.perf_counter()
    model = bin_model(size["bodies"])
    ro = rollout(model, size["steps"])
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ro.forward()
    first_s = time.perf_counter() - t0
    times = []
    for _ in range(size["repeats"]):
        t0 = time.perf_counter()
        ro.forward()
        times.append(time.perf_counter() - t0)
    t = float(np.median(times))
    z = ro.final_state()["x"][:, 2]
    fell = float(np.mean(model.initial_state()["x"][:, 2] - z))
    emit({"check": "throughput", "name": "rigid_bin", **_where(), "precision": "f64", "bodies": model.n,
          "steps": size["steps"], "forward_s": round(t, 4), "body_steps_per_s": round(model.n * size["steps"] / t),
          "mean_drop_m": round(fell, 5), "compile_s": round(compile_s, 2), "build_s": round(build_s, 2),
          "first_call_s": round(first_s, 2), "gpu_memory_mb": gpu_memory_mb(),
          "status": "pass" if np.all(np.isfinite(z)) and fell > 0 else "fail"})


def _where() -> dict:
    """The arch a figure was measured on, and on a CPU its thread count."""
    import diffsim

    info = diffsim.info()
    return {"arch": info["arch"], **({"threads": info["threads"]} if info["arch"] == "cpu" else {})}


def _error(check: str, name: str, exc: BaseException) -> dict:
    return {"check": check, "name": name, "status": "error", "error_type": type(exc).__name__,
            "error": str(exc)[:2000], "where": traceback.format_exc(limit=-3)[-1500:]}


CHILDREN = {"agreement": child_agreement, "md_forward": child_md_forward, "md_gradient": child_md_gradient,
            "robot_batch": child_robot_batch, "rigid_bin": child_rigid_bin}


def child_main(cfg: dict):
    """Entry of a check process: JSON lines on stdout, each flushed at once."""

    def emit(line):
        print("@@ " + json.dumps(line, default=float), flush=True)

    try:
        CHILDREN[cfg["kind"]](cfg, emit)
    except Exception as exc:  # noqa: BLE001 -- reported as a line; the parent fills in what is missing
        emit(_error("process", cfg.get("name", cfg["kind"]), exc))


# ----------------------------------------------------------------------------- parent


def _rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return float("inf")
    if a.size == 0:
        return 0.0
    scale = float(np.max(np.abs(b)))
    diff = float(np.max(np.abs(a - b)))
    if not np.isfinite(diff):
        return float("inf")
    return diff / scale if scale > 0 else diff


def compare(target: dict, reference: dict) -> dict:
    """The agreement figures of two {quantity: array} dicts (a quantity missing on one side, or
    of another shape, counts as an infinite error)."""
    keys = sorted(set(target) | set(reference))
    errs = {k: (_rel(target[k], reference[k]) if k in target and k in reference else float("inf")) for k in keys}
    worst = max(errs.values())
    return {"loss": float(target["loss"][0]), "loss_reference": float(reference["loss"][0]), "rel_err": errs,
            "max_rel_err": worst, "tolerance": TOLERANCE, "status": "pass" if worst <= TOLERANCE else "fail"}


class Runner:
    """Starts check processes, collects and writes their lines, fills in missing ones."""

    def __init__(self, out: str, budget: float, keep_arrays: bool):
        self.out, self.budget = out, budget
        # the agreement .npz files: DIR/arrays with --keep-arrays, else a temporary folder (a
        # device's $OUT brings back only a few files)
        self.arrays = os.path.join(out, "arrays") if keep_arrays else tempfile.mkdtemp(prefix="gpu_check_")
        os.makedirs(self.arrays, exist_ok=True)
        self.keep_arrays = keep_arrays
        self.deadline = time.time() + budget
        self.lines: list[dict] = []
        self.log = open(os.path.join(out, "gpu_check.jsonl"), "w")  # noqa: SIM115 -- closed in finish()

    def add(self, line: dict):
        self.lines.append(line)
        text = json.dumps(line, default=float)
        self.log.write(text + "\n")
        self.log.flush()
        print(text, flush=True)

    def spawn(self, cfg: dict) -> subprocess.Popen:
        env = {k: v for k, v in os.environ.items() if k not in ("DIFFSIM_ARCH", "DIFFSIM_PRECISION")}
        env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
        env.setdefault("OPENBLAS_NUM_THREADS", "1")
        env["PYTHONUNBUFFERED"] = "1"
        cfg = dict(cfg, started=time.time())
        proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child", json.dumps(cfg)], cwd=ROOT,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        proc.cfg = cfg
        return proc

    @staticmethod
    def wait_first_line(proc: subprocess.Popen, timeout: float):
        """Read ``proc``'s first line (kept for collect), waiting at most ``timeout`` s."""
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        proc.early = proc.stdout.readline() if ready else ""

    def collect(self, proc: subprocess.Popen, expected: list[tuple[str, str]], timeout: float,
                keep: bool = True) -> list[dict]:
        """Wait for ``proc``; its lines, plus an error line for each (check, name) in
        ``expected`` it did not give. ``keep``: add its lines to the output."""
        left = max(1.0, min(timeout - (time.time() - proc.cfg["started"]), self.deadline - time.time()))
        reason = None
        try:
            stdout, stderr = proc.communicate(timeout=left)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
            reason = (f"the check process ran past its {timeout:.0f} s limit and was stopped"
                      if time.time() < self.deadline - 1 else
                      f"the check process was stopped when the --budget of {self.budget:.0f} s was spent")
        stdout = getattr(proc, "early", "") + stdout
        wall = round(time.time() - proc.cfg["started"], 1)
        lines = [json.loads(t[3:]) for t in stdout.splitlines() if t.startswith("@@ ")]
        for ln in lines:
            if ln["check"] == "throughput":
                ln["process_wall_s"] = wall  # the whole check process: start, compile, build, runs
        if reason is None and proc.returncode != 0:
            reason = f"the check process exited with code {proc.returncode}"
        died = next((ln for ln in lines if ln["check"] == "process"), None)
        lines = [ln for ln in lines if ln["check"] != "process"]
        for check, name in expected:
            if any(ln["check"] == check and ln["name"] == name for ln in lines):
                continue
            if died is not None:
                lines.append({**died, "check": check, "name": name})
            else:
                lines.append({"check": check, "name": name, "status": "error", "error_type": "ProcessFailed",
                              "error": reason or "the check process gave no line for it",
                              "stderr_tail": stderr[-1500:]})
        if keep:
            for ln in lines:
                self.add(ln)
        return lines

    def agreement(self, args, sizes, cases, checks):
        """Target process (runtime, schedules) beside the CPU reference process, then compare."""
        base = {"kind": "agreement", "out": self.arrays, "sizes": sizes, "cases": cases, "checks": checks}
        target = self.spawn({**base, "role": "target", "arch": args.arch})
        limit = TIMEOUTS[args.small]["agreement"]
        want = ([("runtime", "runtime")] if "runtime" in checks else []) + \
               [(c, n) for n in cases for c in ("saved", "schedules")]
        if args.arch == "cpu":
            # The same kernels as the target's: start the reference once the target has exited and
            # written them to Taichi's offline cache (a process writes it only at exit), so that they
            # are compiled once, not twice side by side.
            got = self.collect(target, want, limit, keep=False)
            ref = self.spawn({**base, "role": "reference", "arch": "cpu"}) if cases else None
        else:
            # Start the reference once the target has started Taichi: two processes opening the offline
            # cache at once contend for its lock, and the loser compiles every kernel afresh.
            self.wait_first_line(target, 120)
            ref = self.spawn({**base, "role": "reference", "arch": "cpu"}) if cases else None
            got = self.collect(target, want, limit, keep=False)
        ref_got = self.collect(ref, [("saved", n) for n in cases], limit, keep=False) if ref else []
        for ln in got:
            if ln["check"] != "saved" and (ln["check"] != "runtime" or "runtime" in checks):
                self.add(ln)
        for name in cases:
            mine = next(ln for ln in got if ln["name"] == name and ln["check"] in ("saved", "agreement"))
            theirs = next(ln for ln in ref_got if ln["name"] == name)
            if mine["check"] == "agreement":  # already reported (skipped or error)
                continue
            if mine.get("status") == "error" or theirs.get("status") == "error":
                bad = mine if mine.get("status") == "error" else theirs
                self.add({**bad, "check": "agreement", "name": name,
                          "side": "target" if bad is mine else "cpu reference"})
                continue
            try:
                a = dict(np.load(os.path.join(self.arrays, f"agree_target_{name}.npz")))
                b = dict(np.load(os.path.join(self.arrays, f"agree_reference_{name}.npz")))
                self.add({"check": "agreement", "name": name, "arch": mine["arch"], "reference": "cpu f64",
                          **compare(a, b), "seconds_target": mine["seconds"], "seconds_reference": theirs["seconds"]})
            except Exception as exc:  # noqa: BLE001
                self.add(_error("agreement", name, exc))

    def finish(self, args, wall: float) -> int:
        self.log.close()
        if not self.keep_arrays:
            shutil.rmtree(self.arrays, ignore_errors=True)
        failed = [ln for ln in self.lines if ln.get("status") not in ("pass", "skipped")]
        write_table(os.path.join(self.out, "gpu_check.md"), self.lines, args, wall)
        print(f"gpu_check: {len(self.lines)} lines, {len(failed)} not passed, {wall:.1f} s; "
              f"{os.path.join(self.out, 'gpu_check.md')}", flush=True)
        return 1 if failed else 0


def _fmt(x) -> str:
    if isinstance(x, float):
        return f"{x:.3g}"
    if isinstance(x, int) and abs(x) >= 10_000:
        return f"{x:.3g}"
    return str(x)


def summary(ln: dict) -> str:
    """One table cell that says what a line measured."""
    if ln.get("status") == "error":
        return f"{ln.get('error_type')}: {str(ln.get('error', ''))[:160]}".replace("|", "/").replace("\n", " ")
    if ln.get("status") == "skipped":
        return ln.get("reason", "")
    c = ln["check"]
    if c == "runtime":
        s = f"taichi {ln['taichi']}, {ln['arch_used']} ({ln['device']})"
        return (f"**{ln['warning']}**; " + s) if ln.get("fell_back") else s
    if c == "agreement":
        return f"max rel err {_fmt(ln['max_rel_err'])} over {len(ln['rel_err'])} quantities (loss {_fmt(ln['loss'])})"
    if c == "schedules":
        parts = [f"{k}: {'bitwise' if v['bitwise'] else 'max rel diff ' + _fmt(v['max_rel_diff'])}"
                 for k, v in ln["schedules"].items()]
        return "; ".join(parts)
    keys = [k for k in ln if "per_s" in k or k in ("forward_backward_s", "compile_s", "process_wall_s")]
    size = next((f"{k} {_fmt(ln[k])}" for k in ("atoms", "robots", "bodies") if k in ln), "")
    return ", ".join([size, *(f"{k} {_fmt(ln[k])}" for k in keys)])


def write_table(path: str, lines: list[dict], args, wall: float):
    rows = ["| check | name | status | result |", "|---|---|---|---|"]
    order = ("runtime", "agreement", "schedules", "throughput")
    for ln in sorted(lines, key=lambda ln: order.index(ln["check"]) if ln["check"] in order else len(order)):
        status = ln.get("status", "")
        rows.append(f"| {ln['check']} | {ln['name']} | {status.upper() if status != 'pass' else status} | "
                    f"{summary(ln)} |")
    head = (f"# gpu_check: --arch {args.arch}{' --small' if args.small else ''}, {wall:.1f} s\n\n")
    with open(path, "w") as f:
        f.write(head + "\n".join(rows) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="gpu-check-out",
                    help="folder for gpu_check.jsonl, gpu_check.md and the agreement .npz files")
    ap.add_argument("--arch", default=None, choices=["cuda", "cpu"],
                    help="target arch; default: cuda where nvidia-smi lists a GPU, else cpu at the --small sizes")
    ap.add_argument("--small", "--quick", action="store_true",
                    help="tiny sizes: seconds on a CPU (the test suite's run; --quick for `diffsim bench --quick`)")
    ap.add_argument("--budget", type=float, default=None,
                    help="seconds for the whole command (default 480, 8 min; --small: 1500): a check still running "
                         "then is stopped and reported, the rest are reported as not run")
    ap.add_argument("--only", default=None, help=f"comma-separated subset of {','.join(CHECKS)}")
    ap.add_argument("--keep-arrays", action="store_true",
                    help="keep the agreement checks' loss and gradient arrays in DIR/arrays/*.npz")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child_main(json.loads(args.child))
        return 0
    if args.arch is None:  # a plain run (e.g. `diffsim bench`): the GPU if there is one, else a CPU smoke test
        args.arch = "cuda" if _nvidia_smi("--query-gpu=name") else "cpu"
        args.small = args.small or args.arch == "cpu"
    checks = list(CHECKS) if args.only is None else [c.strip() for c in args.only.split(",") if c.strip()]
    args.budget = BUDGET[args.small] if args.budget is None else args.budget
    unknown = [c for c in checks if c not in CHECKS]
    if unknown:
        ap.error(f"--only: unknown check(s) {unknown}; choose from {','.join(CHECKS)}")
    os.makedirs(args.out, exist_ok=True)
    t_start = time.time()
    runner = Runner(args.out, args.budget, args.keep_arrays)
    sizes = SIZES[args.small]
    cases = [c for c in AGREEMENT if c in checks]
    if cases or "runtime" in checks:
        runner.agreement(args, {c: sizes[c] for c in cases}, cases, checks)
    for name in THROUGHPUT:
        if name not in checks:
            continue
        kind = "md_forward" if name.startswith("md_forward") else name
        # One CPU thread (as the agreement checks and the test suite have) wherever the thread
        # count does not matter, on CUDA and at --small on the CPU: Taichi's offline cache keys on
        # it, so the kernels those compiled serve here too. Full sizes on the CPU: every core.
        cfg = {"kind": kind, "name": name, "arch": args.arch, "size": sizes[kind],
               "threads": None if args.arch == "cpu" and not args.small else 1}
        if kind == "md_forward":
            cfg["precision"] = name[-3:]
        if time.time() > runner.deadline - 5:
            runner.add({"check": "throughput", "name": name, "status": "error", "error_type": "BudgetSpent",
                        "error": f"not run: the --budget of {args.budget:.0f} s was spent"})
            continue
        runner.collect(runner.spawn(cfg), [("throughput", name)], TIMEOUTS[args.small][kind])
    return runner.finish(args, time.time() - t_start)


if __name__ == "__main__":
    sys.exit(main())
