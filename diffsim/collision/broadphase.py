"""Broad phase: candidate pairs of bodies whose bounding spheres overlap, on a uniform grid.

Computed OUTSIDE every differentiated kernel (TAICHI.md, rule 2): integer cell ids and pair
lists come from these non-AD kernels, and the differentiated narrow phase only reads them.

Criterion: bodies i < j are a candidate pair when |c_i - c_j| < r_i + r_j + margin (c: centres
in m, r: bounding radii in m, margin in m). Cells have side 2 max(r) + margin, so every such
pair lies in neighbouring cells (3x3 in 2D, 3x3x3 in 3D); cells are hashed into a table of
2^k buckets, and a body found in a bucket counts only if its own cell is the cell scanned, so
hash collisions never duplicate a pair. Each bucket is sorted by body index and every body
writes its pairs at an offset from a prefix sum, so the pair list (not only the set) is the
same run after run and with any number of threads.

A full pair list reports its overflow: ``run`` returns the number of pairs found, and the
callers raise when it exceeds the capacity (JAX MD's honest neighbour lists).
"""

import numpy as np
import taichi as ti

from ..compat import launch_kernel
from ..errors import ConfigError
from ..runtime import config

_I1 = ti.types.ndarray(dtype=ti.i32, ndim=1)
_I2 = ti.types.ndarray(dtype=ti.i32, ndim=2)
_I3 = ti.types.ndarray(dtype=ti.i32, ndim=3)


@ti.func
def _hash(cx, cy, cz, mask):
    return ((cx * 73856093) ^ (cy * 19349663) ^ (cz * 83492791)) & mask


@ti.func
def _center(x: ti.template(), v: ti.template(), h, s, i, dim: ti.template()):
    c = ti.Vector([0.0, 0.0, 0.0])
    for k in ti.static(range(dim)):
        c[k] = x[s, i, k] + h * v[s, i, k]
    return c


@ti.func
def _candidate(x: ti.template(), v: ti.template(), h: ti.template(), s, dim: ti.template(), cell: ti.template(),
               radius: ti.template(), margin, ci, i, j, ox, oy, oz):
    """Body j (> i) sits in cell (ox, oy, oz) and its bounding sphere overlaps body i's."""
    hit = False
    if j > i and cell[j, 0] == ox and cell[j, 1] == oy and cell[j, 2] == oz:
        d = ci - _center(x, v, h, s, j, dim)
        rr = radius[i] + radius[j] + margin
        hit = d.dot(d) < rr * rr
    return hit


@ti.kernel
def grid_pairs(x: ti.types.ndarray(), v: ti.types.ndarray(), h: ti.f64, s: ti.i32, dim: ti.template(),
               radius: ti.types.ndarray(ndim=1), margin: ti.f64, cell_size: ti.f64,
               cell: _I2, bucket: _I1, start: _I1, fill: _I1, items: _I1, pcount: _I1, offset: _I1,
               pairs: _I3, count: _I1, ps: ti.i32, serial: ti.template()) -> ti.i32:
    """Fill pairs[ps, :count[ps]] with the candidate pairs of the centres x[s] + h v[s] (m).
    Returns the number of pairs found, which may exceed the capacity pairs.shape[1].
    ``serial`` (few bodies): every loop on the calling thread; each of the kernel's ten loops
    otherwise wakes the thread pool (16 bodies: ~0.6 ms a call, most of a per-step step).
    The same pairs in the same order either way."""
    n = x.shape[1]
    nb = fill.shape[0]
    mask = nb - 1
    if ti.static(serial):
        ti.loop_config(serialize=True)
    for b in range(nb + 1):
        start[b] = 0
    if ti.static(serial):
        ti.loop_config(serialize=True)
    for i in range(n):
        c = _center(x, v, h, s, i, dim)
        cx = ti.cast(ti.floor(c[0] / cell_size), ti.i32)
        cy = ti.cast(ti.floor(c[1] / cell_size), ti.i32)
        cz = ti.cast(ti.floor(c[2] / cell_size), ti.i32)
        cell[i, 0] = cx
        cell[i, 1] = cy
        cell[i, 2] = cz
        b = _hash(cx, cy, cz, mask)
        bucket[i] = b
        ti.atomic_add(start[b + 1], 1)
    if ti.static(serial):
        ti.loop_config(serialize=True)
    for _ in range(1):  # serial prefix sum over buckets
        for b in range(nb):
            start[b + 1] += start[b]
            fill[b] = 0
    if ti.static(serial):
        ti.loop_config(serialize=True)
    for i in range(n):
        b = bucket[i]
        items[start[b] + ti.atomic_add(fill[b], 1)] = i
    if ti.static(serial):
        ti.loop_config(serialize=True)
    for b in range(nb):  # insertion sort of each bucket by body index: a deterministic order
        for k in range(start[b] + 1, start[b + 1]):
            key = items[k]
            m = k - 1
            while m >= start[b] and items[m] > key:
                items[m + 1] = items[m]
                m -= 1
            items[m + 1] = key
    if ti.static(serial):
        ti.loop_config(serialize=True)
    for i in range(n):
        ci = _center(x, v, h, s, i, dim)
        cnt = 0
        for dx, dy, dz in ti.static(ti.ndrange((-1, 2), (-1, 2), (-1, 2) if dim == 3 else (0, 1))):
            ox, oy, oz = cell[i, 0] + dx, cell[i, 1] + dy, cell[i, 2] + dz
            b = _hash(ox, oy, oz, mask)
            for k in range(start[b], start[b + 1]):
                j = items[k]
                if _candidate(x, v, h, s, dim, cell, radius, margin, ci, i, j, ox, oy, oz):
                    cnt += 1
        pcount[i] = cnt
    total = 0
    if ti.static(serial):
        ti.loop_config(serialize=True)
    for _ in range(1):  # serial prefix sum over bodies
        acc = 0
        for i in range(n):
            offset[i] = acc
            acc += pcount[i]
        total = acc
    cap = pairs.shape[1]
    if ti.static(serial):
        ti.loop_config(serialize=True)
    for i in range(n):
        ci = _center(x, v, h, s, i, dim)
        k_out = offset[i]
        for dx, dy, dz in ti.static(ti.ndrange((-1, 2), (-1, 2), (-1, 2) if dim == 3 else (0, 1))):
            ox, oy, oz = cell[i, 0] + dx, cell[i, 1] + dy, cell[i, 2] + dz
            b = _hash(ox, oy, oz, mask)
            for k in range(start[b], start[b + 1]):
                j = items[k]
                if _candidate(x, v, h, s, dim, cell, radius, margin, ci, i, j, ox, oy, oz):
                    if k_out < cap:
                        pairs[ps, k_out, 0] = i
                        pairs[ps, k_out, 1] = j
                    k_out += 1
    if ti.static(serial):
        ti.loop_config(serialize=True)
    for _ in range(1):
        count[ps] = ti.min(total, cap)
    return total


@ti.kernel
def fastest_speed(velocities: ti.types.ndarray(), slot: ti.i32, serial: ti.template()) -> ti.f64:
    """max_i |velocities[slot, i]| (m/s), for a swept broad phase."""
    worst = 0.0
    if ti.static(serial):
        ti.loop_config(serialize=True)
    for i in range(velocities.shape[1]):
        v2 = 0.0
        for c in range(velocities.shape[2]):
            v2 += velocities[slot, i, c] ** 2
        ti.atomic_max(worst, ti.sqrt(v2))
    return worst


SERIAL_BODIES = 64
"""Up to this many bodies the broad phase runs serially (no thread-pool wake per loop)."""


class GridBroadPhase:
    """Uniform-grid (spatial hash) broad phase for n bodies with bounding radii ``radius`` (m).

    ``run(x, s, pairs, count, ps)`` reads the centres x[s] (an ndarray (slots, n, dim), m),
    optionally shifted by ``h * v[s]`` (predicted positions), and fills ``pairs[ps, :k]`` (int,
    (slots, capacity, 2)) and ``count[ps] = k``; it returns the number of pairs found and raises
    ConfigError when that exceeds the capacity. ``find_pairs(centres)`` is the same for a NumPy
    array, returning an (k, 2) int array (for tests and tools).
    """

    def __init__(self, radius, dim: int, margin: float = 0.0, capacity: int | None = None):
        radius = np.asarray(radius, dtype=np.float64).reshape(-1)
        if dim not in (2, 3):
            raise ConfigError(f"broad phase dim must be 2 or 3, got {dim}")
        if radius.size == 0 or np.any(~np.isfinite(radius)) or np.any(radius < 0):
            raise ConfigError("broad phase needs at least one body and finite radii >= 0")
        if margin < 0:
            raise ConfigError(f"broad-phase margin must be >= 0 m, got {margin}")
        self.n, self.dim, self.margin = radius.size, dim, float(margin)
        self.capacity = int(capacity if capacity is not None else max(64, 8 * self.n))
        self.rmax = float(radius.max())
        self.serial = self.n <= SERIAL_BODIES  # run the kernels' loops on one thread
        nb = 16
        while nb < 2 * self.n:
            nb *= 2
        self.radius = ti.ndarray(config().real, self.n)
        self.radius.from_numpy(radius.astype(config().numpy_real))
        self._cell = ti.ndarray(ti.i32, (self.n, 3))
        self._bucket = ti.ndarray(ti.i32, self.n)
        self._start = ti.ndarray(ti.i32, nb + 1)
        self._fill = ti.ndarray(ti.i32, nb)
        self._items = ti.ndarray(ti.i32, self.n)
        self._pcount = ti.ndarray(ti.i32, self.n)
        self._offset = ti.ndarray(ti.i32, self.n)
        self._own = None

    def cell_size(self, margin=None) -> float:
        """Edge (m) of the grid's cells: twice the largest bounding radius plus the margin."""
        m = self.margin if margin is None else margin
        return max(2.0 * self.rmax + m, 1e-6)

    def run(self, x, s: int, pairs, count, ps: int, v=None, h: float = 0.0, margin: float | None = None) -> int:
        """Write the candidate pairs of slot ``s`` of positions ``x`` into row ``ps`` of ``pairs`` (count into ``count``); swept over a step of ``h`` s when velocities ``v`` are given. Returns the number of pairs; raises when they overflow."""
        m = self.margin if margin is None else float(margin)
        # the fast launch (diffsim.compat): the per-step path runs this every step, and Taichi's
        # own call of an 18-argument kernel costs ~0.2 ms
        total = launch_kernel(grid_pairs, x, x if v is None else v, float(h), int(s), self.dim, self.radius, m,
                              self.cell_size(m), self._cell, self._bucket, self._start, self._fill, self._items,
                              self._pcount, self._offset, pairs, count, int(ps), self.serial)
        if total > pairs.shape[1]:
            raise ConfigError(f"broad phase found {total} candidate pairs but the pair list holds "
                              f"{pairs.shape[1]}: raise max_pairs (now {pairs.shape[1]}) or reduce the margin "
                              f"(now {m} m)")
        return int(total)

    def run_swept(self, x, s: int, pairs, count, ps: int, v, dt: float) -> int:
        """Candidate pairs of bodies that may touch while moving from x[s] with velocity v[s]
        over one step dt (s): bounding spheres around the mid-step centres x + dt/2 v, widened
        by dt max|v| (each body sweeps at most dt max|v| / 2 either way). No fast pair is
        missed, whatever the speed; the cells grow with the fastest body."""
        margin = float(dt) * float(launch_kernel(fastest_speed, v, int(s), self.serial))
        return self.run(x, s, pairs, count, ps, v, 0.5 * float(dt), self.margin + margin)

    def find_pairs(self, centres) -> np.ndarray:
        """Candidate pairs (k, 2), i < j, of NumPy centres (n, dim) in m."""
        c = np.asarray(centres, dtype=np.float64)
        if c.shape != (self.n, self.dim):
            raise ConfigError(f"centres must have shape {(self.n, self.dim)}, got {c.shape}")
        if self._own is None:
            self._own = (ti.ndarray(config().real, (1, self.n, self.dim)),
                         ti.ndarray(ti.i32, (1, self.capacity, 2)), ti.ndarray(ti.i32, 1))
        xs, pairs, count = self._own
        xs.from_numpy(c[None].astype(config().numpy_real))
        total = self.run(xs, 0, pairs, count, 0)
        return pairs.to_numpy()[0, :total].astype(np.int64)


def brute_force_pairs(centres, radius, margin: float = 0.0, block: int = 512) -> np.ndarray:
    """Reference O(n^2) candidate pairs (k, 2), i < j, sorted: |c_i - c_j| < r_i + r_j + margin."""
    c = np.asarray(centres, dtype=np.float64)
    r = np.asarray(radius, dtype=np.float64).reshape(-1)
    out = []
    for a in range(0, len(c), block):
        d = c[a:a + block, None, :] - c[None, :, :]
        d2 = np.einsum("ijk,ijk->ij", d, d)
        rr = r[a:a + block, None] + r[None, :] + margin
        i, j = np.nonzero(d2 < rr * rr)
        i = i + a
        keep = j > i
        out.append(np.stack([i[keep], j[keep]], axis=1))
    pairs = np.concatenate(out) if out else np.zeros((0, 2), int)
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


def all_pairs(n: int) -> np.ndarray:
    """Every pair (i, j), i < j, of n bodies: (n(n-1)/2, 2) int32."""
    i, j = np.triu_indices(n, k=1)
    return np.stack([i, j], axis=1).astype(np.int32)


__all__ = ["GridBroadPhase", "all_pairs", "brute_force_pairs", "fastest_speed", "grid_pairs"]
