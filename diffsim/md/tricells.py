"""Cell list of a triclinic cell, binned in fractional coordinates (neighbour-list builds only,
never differentiated).

An atom at x (row vector) has fractional coordinates s = x H^-1 (H the lower-triangular cell,
rows a, b, c), folded into [0, 1). Axis k is cut into ``nb_k = floor(w_k / rl)`` bins, w_k the
perpendicular width of the cell across axis k (w_a = V / |b x c|, ...): a bin is at least rl
thick in space, so two atoms closer than rl lie in the same or neighbouring bins, and the 27
bins around an atom's own hold every candidate (with nb_k >= 3 no bin is visited twice). A
neighbouring bin across the cell's face is seen through the lattice vector crossed, so pairs
are tested on folded positions without a minimum image; with rl <= min(lx, ly, lz) / 2 (checked
by the neighbour list) a pair has one image within rl, so each pair is listed once. Atoms are
placed in their bins by a serial loop (positions stored in bin order), so the list (and the
force sums over it) is the same at any thread count.
"""

import numpy as np
import taichi as ti

from ..runtime import config
from .space import cell_matrix

_A1 = ti.types.ndarray(ndim=1)
_A2 = ti.types.ndarray(ndim=2)
_A3 = ti.types.ndarray(ndim=3)


def bins_per_axis(box, tilt, rl) -> np.ndarray:
    """Bins (3,) int per cell axis for list radius ``rl``: floor(perpendicular width / rl)."""
    h = cell_matrix(box, tilt)
    a, b, c = h
    vol = abs(float(np.linalg.det(h)))
    widths = vol / np.array([np.linalg.norm(np.cross(b, c)), np.linalg.norm(np.cross(c, a)),
                             np.linalg.norm(np.cross(a, b))])
    return np.floor(widths / rl).astype(np.int64)


@ti.func
def _folded(x: ti.template(), s, i, hinv: ti.template(), k):
    """Fractional coordinate k of atom i, folded into [0, 1)."""
    fk = x[s, i, 0] * hinv[0, k] + x[s, i, 1] * hinv[1, k] + x[s, i, 2] * hinv[2, k]
    return fk - ti.floor(fk)


@ti.func
def _bin_of(f, n):
    return ti.min(ti.max(ti.cast(f * n, ti.i32), 0), n - 1)


@ti.kernel
def _bin_fractional(x: _A3, s: ti.i32, h: _A2, hinv: _A2, nb: _A1, cell_of: _A1, count: _A1, xw: _A2):
    for c in range(count.shape[0]):
        count[c] = 0
    for i in range(x.shape[1]):
        f0 = _folded(x, s, i, hinv, 0)
        f1 = _folded(x, s, i, hinv, 1)
        f2 = _folded(x, s, i, hinv, 2)
        cid = (_bin_of(f0, nb[0]) * nb[1] + _bin_of(f1, nb[1])) * nb[2] + _bin_of(f2, nb[2])
        for k in ti.static(range(3)):  # the folded position, inside the cell
            xw[i, k] = f0 * h[0, k] + f1 * h[1, k] + f2 * h[2, k]
        cell_of[i] = cid
        ti.atomic_add(count[cid], 1)


@ti.kernel
def _sort_into_bins(cell_of: _A1, count: _A1, start: _A1, atoms: _A1, xw: _A2, xs: _A2):
    start[0] = 0
    ti.loop_config(serialize=True)
    for c in range(1, count.shape[0]):
        start[c] = start[c - 1] + count[c - 1]
    for c in range(count.shape[0]):
        count[c] = 0
    ti.loop_config(serialize=True)
    for i in range(cell_of.shape[0]):
        c = cell_of[i]
        q = start[c] + count[c]
        atoms[q] = i
        for k in ti.static(range(3)):
            xs[q, k] = xw[i, k]
        count[c] += 1


@ti.func
def _wrap_bin(raw, n):
    """(bin, whole cells crossed) of an unwrapped bin index ``raw`` in [-1, n]."""
    w = ti.select(raw < 0, -1, ti.select(raw >= n, 1, 0))
    return raw - w * n, w


@ti.kernel
def _half_rows(h: _A2, nb: _A1, cell_of: _A1, start: _A1, count: _A1, atoms: _A1, xw: _A2, xs: _A2,
               rl2: ti.f64, nbr: _A2, nnb: _A1) -> ti.i32:
    most = 0
    for i in range(cell_of.shape[0]):
        cid = cell_of[i]
        c2 = cid % nb[2]
        c1 = (cid // nb[2]) % nb[1]
        c0 = cid // (nb[1] * nb[2])
        cnt = 0
        for o in range(27):
            b0, w0 = _wrap_bin(c0 + o // 9 - 1, nb[0])
            b1, w1 = _wrap_bin(c1 + (o // 3) % 3 - 1, nb[1])
            b2, w2 = _wrap_bin(c2 + o % 3 - 1, nb[2])
            cc = (b0 * nb[1] + b1) * nb[2] + b2
            # the atoms of bin cc seen across w0 a + w1 b + w2 c: x_i - x_j - shift
            e0 = xw[i, 0] - (w0 * h[0, 0] + w1 * h[1, 0] + w2 * h[2, 0])
            e1 = xw[i, 1] - (w1 * h[1, 1] + w2 * h[2, 1])
            e2 = xw[i, 2] - w2 * h[2, 2]
            for q in range(start[cc], start[cc] + count[cc]):
                j = atoms[q]
                d0 = e0 - xs[q, 0]
                d1 = e1 - xs[q, 1]
                d2 = e2 - xs[q, 2]
                if j > i and d0 * d0 + d1 * d1 + d2 * d2 < rl2:
                    if cnt < nbr.shape[1]:
                        nbr[i, cnt] = j
                    cnt += 1
        nnb[i] = cnt
        ti.atomic_max(most, cnt)
    return most


class TriclinicCells:
    """Half-list builder for one triclinic cell (module doc): ``n`` atoms, lengths ``box`` (3,),
    tilts ``tilt`` (3,), list radius ``rl`` (length); needs :func:`bins_per_axis` >= 3 per axis."""

    def __init__(self, n, box, tilt, rl):
        self.nb_np = bins_per_axis(box, tilt, rl)
        if np.any(self.nb_np < 3):
            raise ValueError(f"a triclinic cell list needs >= 3 bins per axis, got {self.nb_np}")
        ncells = int(np.prod(self.nb_np))
        real = config().real
        h = cell_matrix(box, tilt)
        self.h = ti.ndarray(real, (3, 3))
        self.h.from_numpy(h.astype(config().numpy_real))
        self.hinv = ti.ndarray(real, (3, 3))
        self.hinv.from_numpy(np.linalg.inv(h).astype(config().numpy_real))
        self.xw = ti.ndarray(real, (n, 3))
        self.xs = ti.ndarray(real, (n, 3))
        self.nb = ti.ndarray(ti.i32, 3)
        self.nb.from_numpy(self.nb_np.astype(np.int32))
        self.cell_of = ti.ndarray(ti.i32, n)
        self.atoms = ti.ndarray(ti.i32, n)
        self.count = ti.ndarray(ti.i32, ncells)
        self.start = ti.ndarray(ti.i32, ncells)

    def half_list(self, x, slot, boxes, rl2, nbr, nnb) -> int:
        """Fill ``nbr``/``nnb`` with the pairs j > i within sqrt(rl2) of ``x[slot]``; returns the
        largest count (which may exceed nbr's capacity: then the caller grows and rebuilds)."""
        _bin_fractional(x, slot, self.h, self.hinv, self.nb, self.cell_of, self.count, self.xw)
        _sort_into_bins(self.cell_of, self.count, self.start, self.atoms, self.xw, self.xs)
        return int(_half_rows(self.h, self.nb, self.cell_of, self.start, self.count, self.atoms, self.xw, self.xs,
                              rl2, nbr, nnb))
