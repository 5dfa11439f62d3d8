"""A user's own law, fused by ParticleSystem, against the same law written as a per-step System.

The law: 16 discs on a table (a triangle rack and a cue ball at 6 m/s), a smooth repulsive
contact between every pair and linear drag, semi-implicit Euler at dt = 0.5 ms, T = 2,048 steps,
float64; the figure is forward + gradient of the final squared distance of one ball to a spot
with respect to the cue velocity (StoreAll). The built-in billiards scene (rigid discs, penalty
contact with friction, the same rack, T and dt) is timed beside them for reference. The per-step System launches two kernels a step
(pair forces, then the update: one kernel would lose gradients, TAICHI.md), as a user writing
``diffsim.System.step`` would. Prints one JSON line per figure (median of ``--repeats``).

    python benchmarks/particles.py [--steps 2048] [--repeats 5]
"""

import argparse
import json
import time

import numpy as np
import taichi as ti

import diffsim
from diffsim import Objective, Parameter, Rollout, StoreAll
from diffsim.costs import NumpyCost
from diffsim.particles import ParticleSystem
from diffsim.tape import System, adjoint_only, forward_only, launch

R, M, K, W, DRAG = 0.028575, 0.17, 5e3, 1e-3, 0.2  # m, kg, N/m, m (softening), N s/m


@ti.func
def contact(i, j, xi, vi, xj, vj, p: ti.template()):
    d = xi - xj
    r = ti.sqrt(d.dot(d) + 1e-12)
    w = p.width[None]
    return p.stiffness[None] * w * ti.log(1.0 + ti.exp((2.0 * p.radius[None] - r) / w)) * d / r


@ti.func
def drag(i, x, v, p: ti.template()):
    return -p.drag[None] * v


def rack(n=16):
    pos = [[0.0, 0.0]]
    row, k = 0, 1
    while len(pos) < n:
        for c in range(row + 1):
            if len(pos) < n:
                pos.append([1.0 + row * 2 * R * 0.87, (c - row / 2) * 2.02 * R])
        row += 1
        k += 1
    v = np.zeros((n, 2))
    v[0, 0] = 6.0
    return np.array(pos), v


class PerStepDiscs(System):
    """The same law as a user writes it without fusion: forces kernel, then update kernel, per step."""

    def __init__(self, x0, v0, dt):
        real = diffsim.runtime.config().real
        self.n, self.dt = len(x0), dt
        self.state_shapes = {"x": x0.shape, "v": x0.shape}
        self.x0, self.v0 = x0, v0
        self.k = ti.ndarray(real, 1, needs_grad=True)
        self.k.from_numpy(np.array([K]))
        self.f = None

    def parameters(self):
        return {"stiffness": self.k}

    def initial_state(self):
        return {"x": self.x0.copy(), "v": self.v0.copy()}

    def step(self, x, u, src, dst, t):
        if self.f is None or self.f.shape[0] != x.x.shape[0]:
            self.f = ti.ndarray(diffsim.runtime.config().real, x.x.shape, needs_grad=True)
        return [forward_only(_zero_slot, self.f, src), launch(_forces, x.x, x.v, self.f, self.k, src),
                launch(_update, x.x, x.v, self.f, src, dst, self.dt), adjoint_only(_zero_slot, self.f.grad, src)]


@ti.kernel
def _zero_slot(a: ti.types.ndarray(), s: ti.i32):
    for i, c in ti.ndrange(a.shape[1], a.shape[2]):
        a[s, i, c] = 0.0


@ti.kernel
def _forces(x: ti.types.ndarray(), v: ti.types.ndarray(), f: ti.types.ndarray(), k: ti.types.ndarray(), s: ti.i32):
    for i, j in ti.ndrange(x.shape[1], x.shape[1]):
        if j == 0:
            for c in ti.static(range(2)):
                f[s, i, c] += -DRAG * v[s, i, c]
        if i != j:
            dx, dy = x[s, i, 0] - x[s, j, 0], x[s, i, 1] - x[s, j, 1]
            r = ti.sqrt(dx * dx + dy * dy + 1e-12)
            push = k[0] * W * ti.log(1.0 + ti.exp((2.0 * R - r) / W))
            f[s, i, 0] += push * dx / r
            f[s, i, 1] += push * dy / r


@ti.kernel
def _update(x: ti.types.ndarray(), v: ti.types.ndarray(), f: ti.types.ndarray(), s: ti.i32, d: ti.i32, dt: ti.f64):
    for i, c in ti.ndrange(x.shape[1], 2):
        v[d, i, c] = v[s, i, c] + dt * f[s, i, c] / M
        x[d, i, c] = x[s, i, c] + dt * v[d, i, c]


def objective_for(system, steps):
    spot = np.array([1.5, 0.3])

    def miss(states, t):
        return float(np.sum((states["x"][-1, 5] - spot) ** 2))

    def miss_grad(states, t):
        g = np.zeros_like(states["x"])
        g[-1, 5] = 2.0 * (states["x"][-1, 5] - spot)
        return {"x": g}

    ro = Rollout(system, steps, StoreAll(), costs=[NumpyCost(miss, miss_grad, fields="x", steps=[steps])])
    return Objective(ro, [Parameter("v", kind="state0", index=0)])


def timed(objective, repeats):
    x = objective.x0()
    t = time.perf_counter()
    first = objective(x)
    first_s = time.perf_counter() - t
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        loss, grad = objective(x)
        times.append(time.perf_counter() - t)
    return first_s, float(np.median(times)), loss, grad, first


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    diffsim.init(arch="cpu", precision="f64", threads=1)
    x0, v0 = rack()
    dt = 5e-4
    fused = ParticleSystem(x0, v0, dt=dt, pair_force=contact, body_force=drag, segment=128,
                           parameters={"mass": M, "radius": R, "stiffness": K, "width": W, "drag": DRAG})
    newton = ParticleSystem(x0, v0, dt=dt, pair_force=contact, body_force=drag, segment=128, newton_third_law=True,
                            parameters={"mass": M, "radius": R, "stiffness": K, "width": W, "drag": DRAG})
    per_step = PerStepDiscs(x0, v0, dt)
    rows = {}
    for name, system in (("ParticleSystem (fused @ti.func)", fused),
                         ("ParticleSystem (fused, newton_third_law=True)", newton),
                         ("per-step System (2 launches/step)", per_step)):
        first_s, median_s, loss, grad, _ = timed(objective_for(system, args.steps), args.repeats)
        rows[name] = (median_s, loss, grad)
        print(json.dumps({"figure": "16 discs forward+gradient wrt the cue velocity", "system": name,
                          "steps": args.steps, "seconds": median_s, "first_call_incl_compile_s": first_s,
                          "loss": loss}), flush=True)
    from scenes import billiards  # the built-in rigid billiards (its own law: penalty discs with friction)

    built_in = billiards.build(balls=16, layout="rack", steps=args.steps, dt=dt, speed=6.0, angle=0.0, fused=True)
    first_s, median_s, *_ = timed(built_in, args.repeats)
    print(json.dumps({"figure": "16 discs forward+gradient wrt the cue velocity", "system": "built-in billiards scene",
                      "steps": args.steps, "seconds": median_s, "first_call_incl_compile_s": first_s}), flush=True)
    (a, la, ga), _, (b, lb, gb) = rows.values()
    print(json.dumps({"figure": "speed-up of the fused ParticleSystem over the per-step System", "ratio": b / a,
                      "loss_rel_diff": abs(la - lb) / abs(lb),
                      "grad_rel_diff": float(np.max(np.abs(ga - gb)) / np.max(np.abs(gb)))}))


if __name__ == "__main__":
    main()
