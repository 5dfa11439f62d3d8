"""Reference figures: NVIDIA Warp's tape gradient through the rollout of ``python benchmarks/md.py
--gradient --grid 10``, on the machine at hand. One JSON line per figure.

Warp is not a diffsim dependency. Install it beside, in its own environment (its CPU backend
needs no network once installed):

    python -m venv /tmp/warpvenv && /tmp/warpvenv/bin/pip install warp-lang numpy
    /tmp/warpvenv/bin/python benchmarks/warp_lj.py              # N = 1,000, T = 1,000, float64
    /tmp/warpvenv/bin/python benchmarks/warp_lj.py --check      # + a central difference in epsilon

The system and loss are md.py's ``_grid_system``: N = k^3 atoms (k = 10) on a simple cubic grid of
a periodic cube at density 0.8442, unit masses, velocities as ``diffsim.md.maxwell_boltzmann(
np.ones(N), 1.44, seed=0)`` (the same NumPy draw, below), LJ epsilon = sigma = 1 cut at 2.5
without shift, skin 0.3, dt 0.005, velocity Verlet; the loss is the mean potential energy per atom
over steps 0..T-1, L = sum_{t<T} U(x_t) / (N T); the gradient is dL/d(epsilon, sigma, x0).

The Warp program is written the way Warp's own examples differentiate a rollout: every step
writes new arrays (x, v, f of each step are kept: the tape's memory grows with T, as diffsim's
StoreAll), forces come from a half Verlet list (each pair once, Newton's third law with
``wp.atomic_add``/``atomic_sub``, which Warp differentiates), the list is rebuilt outside the tape
from Warp's ``HashGrid`` (cells hashed modulo the grid, so periodic; float32 candidates, float64
minimum-image test) whenever an atom moved more than skin/2, tested on the host every step, as
diffsim's default rule does. ``--check`` also compares that list with a brute-force one.
Warp's CPU backend runs each kernel on one thread.

Figures: ``warp_lj_gradient`` with ``forward_s`` (the rollout without a tape), ``forward_backward_s``
(the rollout recorded on a wp.Tape plus ``tape.backward``; ``forward_backward_cpu_s`` the process's
CPU time for it), their ratio, the gradient (to compare
with md.py's ``lj_gradient`` line), the list builds; ``warp_lj_check`` (``--check``): dL/depsilon
against a central difference of the loss over a shorter rollout.
"""

import argparse
import json
import time

import numpy as np
import warp as wp


def initial_state(k, temperature=1.44, seed=0, density=0.8442):
    """Positions (N, 3), velocities (N, 3) and the cube edge of md.py's ``_grid_system``."""
    n = k ** 3
    edge = (n / density) ** (1 / 3)
    g = (np.arange(k) + 0.5) * edge / k
    pos = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    # diffsim.md.maxwell_boltzmann for unit masses: Gaussian, zero momentum, exactly T with 3N - 3 dof
    v = np.random.default_rng(seed).standard_normal((n, 3))
    v -= v.mean(0)
    v *= np.sqrt(0.5 * (3 * n - 3) * temperature / (0.5 * np.sum(v * v)))
    return pos, v, edge


@wp.func
def min_image(d: wp.vec3d, box: wp.float64):
    half = wp.float64(0.5)
    return wp.vec3d(d[0] - box * wp.floor(d[0] / box + half), d[1] - box * wp.floor(d[1] / box + half),
                    d[2] - box * wp.floor(d[2] / box + half))


@wp.kernel
def single_precision(x: wp.array(dtype=wp.vec3d), x32: wp.array(dtype=wp.vec3)):
    i = wp.tid()
    x32[i] = wp.vec3(wp.float32(x[i][0]), wp.float32(x[i][1]), wp.float32(x[i][2]))


@wp.kernel
def build_half_list(grid: wp.uint64, x32: wp.array(dtype=wp.vec3), x: wp.array(dtype=wp.vec3d), box: wp.float64,
                    rl: wp.float32, rl2: wp.float64, nbr: wp.array2d(dtype=wp.int32), nnb: wp.array(dtype=wp.int32)):
    """Half list from Warp's hash grid: its cells (box / dim, at least rl) are hashed modulo the
    grid's dimensions, so a query near a face visits the cells across it (periodic candidates);
    the exact test is the float64 minimum image."""
    i = wp.tid()
    query = wp.hash_grid_query(grid, x32[i], rl)
    j = int(0)
    while wp.hash_grid_query_next(query, j):
        if j > i:
            d = min_image(x[i] - x[j], box)
            if wp.dot(d, d) < rl2:
                slot = wp.atomic_add(nnb, i, 1)
                if slot < nbr.shape[1]:
                    nbr[i, slot] = j


@wp.kernel
def build_half_list_brute(x: wp.array(dtype=wp.vec3d), box: wp.float64, rl2: wp.float64,
                          nbr: wp.array2d(dtype=wp.int32), nnb: wp.array(dtype=wp.int32)):
    """The same list by testing every pair (the check of the hash-grid build)."""
    i = wp.tid()
    for j in range(i + 1, x.shape[0]):
        d = min_image(x[i] - x[j], box)
        if wp.dot(d, d) < rl2:
            slot = wp.atomic_add(nnb, i, 1)
            if slot < nbr.shape[1]:
                nbr[i, slot] = j


@wp.kernel
def lj_forces(x: wp.array(dtype=wp.vec3d), nbr: wp.array2d(dtype=wp.int32), nnb: wp.array(dtype=wp.int32),
              epsilon: wp.array(dtype=wp.float64), sigma: wp.array(dtype=wp.float64), box: wp.float64,
              rc2: wp.float64, weight: wp.float64, f: wp.array(dtype=wp.vec3d), loss: wp.array(dtype=wp.float64)):
    """Forces into f (zeroed), weight * the potential energy into loss[0]."""
    i = wp.tid()
    eps = epsilon[0]
    sig2 = sigma[0] * sigma[0]
    for k in range(nnb[i]):
        j = nbr[i, k]
        d = min_image(x[i] - x[j], box)
        r2 = wp.dot(d, d)
        if r2 < rc2:
            s2 = sig2 / r2
            s6 = s2 * s2 * s2
            e = wp.float64(4.0) * eps * (s6 * s6 - s6)
            g = wp.float64(24.0) * eps * (wp.float64(2.0) * s6 * s6 - s6) / r2
            wp.atomic_add(f, i, g * d)
            wp.atomic_sub(f, j, g * d)
            wp.atomic_add(loss, 0, weight * e)


@wp.kernel
def kick_drift(x: wp.array(dtype=wp.vec3d), v: wp.array(dtype=wp.vec3d), f: wp.array(dtype=wp.vec3d),
               dt: wp.float64, x_new: wp.array(dtype=wp.vec3d), v_half: wp.array(dtype=wp.vec3d)):
    i = wp.tid()
    vh = v[i] + wp.float64(0.5) * dt * f[i]  # unit masses
    v_half[i] = vh
    x_new[i] = x[i] + dt * vh


@wp.kernel
def kick(v_half: wp.array(dtype=wp.vec3d), f: wp.array(dtype=wp.vec3d), dt: wp.float64,
         v_new: wp.array(dtype=wp.vec3d)):
    i = wp.tid()
    v_new[i] = v_half[i] + wp.float64(0.5) * dt * f[i]


class Rollout:
    """The velocity-Verlet rollout on Warp arrays, optionally recorded on a wp.Tape."""

    def __init__(self, k, steps, dt=0.005, cutoff=2.5, skin=0.3, device="cpu"):
        self.pos, self.vel, self.box = initial_state(k)
        self.n, self.steps, self.dt, self.device = k ** 3, steps, dt, device
        self.rc2, self.rl = cutoff * cutoff, cutoff + skin
        self.skin = skin
        density = self.n / self.box ** 3
        self.capacity = int(1.5 * density * 2.0 / 3.0 * np.pi * self.rl ** 3) + 16  # half list
        self.dim = int(self.box // self.rl)  # hash-grid cells per edge, each at least the list radius
        if self.dim < 3:
            raise SystemExit(f"the box {self.box:.3f} holds fewer than 3 list radii {self.rl}: use a larger --grid")
        self.grid = wp.HashGrid(self.dim, self.dim, self.dim, device=device)
        self.x32 = wp.empty(self.n, dtype=wp.vec3, device=device)

    def build(self, x, brute=False):
        """A half list of x (a Warp array), regrown on overflow; returns (nbr, nnb, reference positions)."""
        while True:
            nbr = wp.zeros((self.n, self.capacity), dtype=wp.int32, device=self.device)
            nnb = wp.zeros(self.n, dtype=wp.int32, device=self.device)
            if brute:
                wp.launch(build_half_list_brute, dim=self.n, inputs=[x, self.box, self.rl * self.rl],
                          outputs=[nbr, nnb], device=self.device)
            else:
                wp.launch(single_precision, dim=self.n, inputs=[x], outputs=[self.x32], device=self.device)
                self.grid.build(self.x32, self.box / self.dim)
                wp.launch(build_half_list, dim=self.n, inputs=[self.grid.id, self.x32, x, self.box, self.rl,
                                                                self.rl * self.rl], outputs=[nbr, nnb],
                          device=self.device)
            most = int(nnb.numpy().max())
            if most <= self.capacity:
                return nbr, nnb, x.numpy().copy()
            self.capacity = int(1.2 * most) + 8

    def run(self, epsilon, sigma, x0_grad=False, tape=None):
        """The loss (a 1-element Warp array) after ``steps`` steps; with ``tape`` every launch that
        carries the gradient is recorded on it. Returns (loss, x0, list builds)."""
        dev = self.device
        grad = tape is not None
        x = wp.array(self.pos, dtype=wp.vec3d, device=dev, requires_grad=grad or x0_grad)
        x0 = x
        v = wp.array(self.vel, dtype=wp.vec3d, device=dev, requires_grad=grad)
        loss = wp.zeros(1, dtype=wp.float64, device=dev, requires_grad=grad)
        weight = 1.0 / (self.n * self.steps)
        lists = [self.build(x)]
        builds = 1
        keep = []  # every array the tape's launches read stays alive until backward
        half2 = (0.5 * self.skin) ** 2

        def forces(x, w):
            nbr, nnb, _ = lists[-1]
            f = wp.zeros(self.n, dtype=wp.vec3d, device=dev, requires_grad=grad)
            wp.launch(lj_forces, dim=self.n, inputs=[x, nbr, nnb, epsilon, sigma, self.box, self.rc2, w],
                      outputs=[f, loss], device=dev)
            return f

        with tape if grad else _NoTape():
            f = forces(x, weight)
        for t in range(self.steps):
            x_new = wp.empty(self.n, dtype=wp.vec3d, device=dev, requires_grad=grad)
            v_half = wp.empty(self.n, dtype=wp.vec3d, device=dev, requires_grad=grad)
            with tape if grad else _NoTape():
                wp.launch(kick_drift, dim=self.n, inputs=[x, v, f, self.dt], outputs=[x_new, v_half], device=dev)
            moved = x_new.numpy() - lists[-1][2]  # the rebuild test, outside the tape
            if np.max(np.einsum("ij,ij->i", moved, moved)) > half2:
                lists.append(self.build(x_new))
                builds += 1
            v_new = wp.empty(self.n, dtype=wp.vec3d, device=dev, requires_grad=grad)
            with tape if grad else _NoTape():
                f_new = forces(x_new, weight if t + 1 < self.steps else 0.0)  # U(x_T) is not in the loss
                wp.launch(kick, dim=self.n, inputs=[v_half, f_new, self.dt], outputs=[v_new], device=dev)
            keep.append((x, v, f))
            x, v, f = x_new, v_new, f_new
        self._keep = (keep, lists)
        return loss, x0, builds


class _NoTape:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def parameters(grad, device="cpu"):
    eps = wp.array([1.0], dtype=wp.float64, device=device, requires_grad=grad)
    sig = wp.array([1.0], dtype=wp.float64, device=device, requires_grad=grad)
    return eps, sig


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", type=int, default=10, help="atoms per edge of the grid (10: N = 1,000)")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=1, help="timed runs of each (the best is reported too)")
    ap.add_argument("--check", action="store_true", help="also dL/depsilon against a central difference (T = 100)")
    args = ap.parse_args(argv)
    wp.config.quiet = True
    wp.init()
    ro = Rollout(args.grid, args.steps)
    eps, sig = parameters(False)
    ro.run(eps, sig)  # compile (Warp caches kernels on disk)
    fwd, both, both_cpu = [], [], []
    for _ in range(args.repeats):
        eps, sig = parameters(False)
        t0 = time.perf_counter()
        loss, _, builds = ro.run(eps, sig)
        value = float(loss.numpy()[0])
        fwd.append(time.perf_counter() - t0)
        eps, sig = parameters(True)
        t0, c0 = time.perf_counter(), time.process_time()
        tape = wp.Tape()
        loss, x0, builds_g = ro.run(eps, sig, tape=tape)
        tape.backward(loss=loss)
        g_eps, g_sig, g_x0 = float(eps.grad.numpy()[0]), float(sig.grad.numpy()[0]), x0.grad.numpy().copy()
        both.append(time.perf_counter() - t0)
        both_cpu.append(time.process_time() - c0)
        tape.reset()
        ro._keep = None
    print(json.dumps({"figure": "warp_lj_gradient", "warp": wp.__version__, "device": "cpu (one thread)",
                      "atoms": ro.n, "precision": "f64", "steps": args.steps, "forward_s": round(min(fwd), 3),
                      "forward_backward_s": round(min(both), 3), "ratio": round(min(both) / min(fwd), 2),
                      "forward_backward_cpu_s": round(min(both_cpu), 3),
                      "runs": args.repeats, "forward_s_all": [round(t, 3) for t in fwd],
                      "forward_backward_s_all": [round(t, 3) for t in both], "list_builds": builds,
                      "list_builds_gradient_run": builds_g, "loss": value, "dL_depsilon": g_eps, "dL_dsigma": g_sig,
                      "dL_dx0_norm": float(np.sqrt(np.sum(g_x0 ** 2)))}), flush=True)
    if args.check:
        x = wp.array(ro.pos + np.random.default_rng(1).normal(0, 0.3, ro.pos.shape), dtype=wp.vec3d)
        lists = [ro.build(x, brute) for brute in (False, True)]
        pairs = [{(i, int(j)) for i in range(ro.n) for j in nbr.numpy()[i, :nnb.numpy()[i]]} for nbr, nnb, _ in lists]
        print(json.dumps({"figure": "warp_lj_list_check", "pairs_hash_grid": len(pairs[0]),
                          "pairs_brute_force": len(pairs[1]), "same": pairs[0] == pairs[1]}), flush=True)
        short = Rollout(args.grid, 100)
        eps, sig = parameters(True)
        tape = wp.Tape()
        loss, _, _ = short.run(eps, sig, tape=tape)
        tape.backward(loss=loss)
        ad = float(eps.grad.numpy()[0])
        h = 1e-6
        vals = []
        for e in (1.0 + h, 1.0 - h):
            pe, ps = parameters(False)
            pe.assign([e])
            vals.append(float(short.run(pe, ps)[0].numpy()[0]))
        fd = (vals[0] - vals[1]) / (2 * h)
        print(json.dumps({"figure": "warp_lj_check", "steps": 100, "dL_depsilon_tape": ad, "dL_depsilon_fd": fd,
                          "relative_difference": abs(ad - fd) / abs(fd)}), flush=True)


if __name__ == "__main__":
    main()
