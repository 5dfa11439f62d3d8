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

:class:`TriclinicFullList` is the forward-only fast path's list on the same bins (used by
:meth:`MDSystem.simulate <diffsim.md.system.MDSystem.simulate>` and the barostats): positions
wrapped into the cell in place, every pair at both atoms with the code of the lattice vector it
is seen through, the rows and methods of :class:`~diffsim.md.cells.FullNeighborList`.
"""

import numpy as np
import taichi as ti

from ..errors import ConfigError
from ..runtime import config
from .cells import CODE_BITS, HOME, ImageCodedList, UnbinnableAtom, binnable_boxes, copy_positions, serial_loops
from .space import cell_matrix, check_cutoff

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
def _bin_fractional(x: _A3, s: ti.i32, h: _A2, hinv: _A2, nb: _A1, cell_of: _A1, count: _A1, xw: _A3):
    for c in range(count.shape[0]):
        count[c] = 0
    for i in range(x.shape[1]):
        f0 = _folded(x, s, i, hinv, 0)
        f1 = _folded(x, s, i, hinv, 1)
        f2 = _folded(x, s, i, hinv, 2)
        cid = (_bin_of(f0, nb[0]) * nb[1] + _bin_of(f1, nb[1])) * nb[2] + _bin_of(f2, nb[2])
        for k in ti.static(range(3)):  # the folded position, inside the cell
            xw[0, i, k] = f0 * h[0, k] + f1 * h[1, k] + f2 * h[2, k]
        cell_of[i] = cid
        ti.atomic_add(count[cid], 1)


@ti.func
def _wrap_bin(raw, n):
    """(bin, whole cells crossed) of an unwrapped bin index ``raw`` in [-1, n]."""
    w = ti.select(raw < 0, -1, ti.select(raw >= n, 1, 0))
    return raw - w * n, w


@ti.kernel
def _half_rows(h: _A2, nb: _A1, cell_of: _A1, start: _A1, count: _A1, atoms: _A1, xw: _A3, xs: _A2,
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
            e0 = xw[0, i, 0] - (w0 * h[0, 0] + w1 * h[1, 0] + w2 * h[2, 0])
            e1 = xw[0, i, 1] - (w1 * h[1, 1] + w2 * h[2, 1])
            e2 = xw[0, i, 2] - w2 * h[2, 2]
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
        self.xw = ti.ndarray(real, (1, n, 3))  # one slot: the folded positions, sorted by _sort_by_bin
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
        _sort_by_bin(self.xw, 0, self.cell_of, self.count, self.start, self.atoms, self.xs)
        return int(_half_rows(self.h, self.nb, self.cell_of, self.start, self.count, self.atoms, self.xw, self.xs,
                              rl2, nbr, nnb))


# ---------------------------------------------------------------------------------------------
# The full list of the forward-only fast path (MDSystem.simulate) in a triclinic cell: the same
# rows and image codes as diffsim.md.cells.FullNeighborList, the code of an entry naming the
# lattice vector w0 a + w1 b + w2 c (w in {-1, 0, 1}) through which atom j is seen.


@ti.kernel
def _wrap_fractional(x: _A3, s: ti.i32, image: _A2, h: _A2, hinv: _A2, nb: _A1, cell_of: _A1, count: _A1,
                     limit: ti.f64) -> ti.i32:
    """Each atom's bin from its fractional coordinates; positions wrapped into the cell in place
    (the whole lattice vectors m a + m' b + m'' c taken off, counted in ``image``). Returns the
    lowest index of an atom that cannot be binned (not finite, or ``limit`` or more cells out
    counting its recorded crossings), else n; such an atom is left as it is, in bin 0."""
    for c in range(count.shape[0]):
        count[c] = 0
    first = x.shape[1]
    for i in range(x.shape[1]):
        f0 = x[s, i, 0] * hinv[0, 0] + x[s, i, 1] * hinv[1, 0] + x[s, i, 2] * hinv[2, 0]
        f1 = x[s, i, 0] * hinv[0, 1] + x[s, i, 1] * hinv[1, 1] + x[s, i, 2] * hinv[2, 1]
        f2 = x[s, i, 0] * hinv[0, 2] + x[s, i, 1] * hinv[1, 2] + x[s, i, 2] * hinv[2, 2]
        cid = 0
        # NaN compares false
        if ti.abs(f0 + image[i, 0]) < limit and ti.abs(f1 + image[i, 1]) < limit and ti.abs(f2 + image[i, 2]) < limit:
            m0 = ti.floor(f0)
            m1 = ti.floor(f1)
            m2 = ti.floor(f2)
            x[s, i, 0] -= m0 * h[0, 0] + m1 * h[1, 0] + m2 * h[2, 0]
            x[s, i, 1] -= m1 * h[1, 1] + m2 * h[2, 1]
            x[s, i, 2] -= m2 * h[2, 2]
            image[i, 0] += ti.cast(m0, ti.i32)
            image[i, 1] += ti.cast(m1, ti.i32)
            image[i, 2] += ti.cast(m2, ti.i32)
            cid = (_bin_of(f0 - m0, nb[0]) * nb[1] + _bin_of(f1 - m1, nb[1])) * nb[2] + _bin_of(f2 - m2, nb[2])
        else:
            ti.atomic_min(first, i)
        cell_of[i] = cid
        ti.atomic_add(count[cid], 1)
    return first


@ti.kernel
def _sort_by_bin(x: _A3, s: ti.i32, cell_of: _A1, count: _A1, start: _A1, atoms: _A1, xs: _A2):
    """Counting sort of the atoms by bin (serial: within a bin by atom index, the same order at any
    thread count), their positions gathered contiguously into xs."""
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
            xs[q, k] = x[s, i, k]
        count[c] += 1


@ti.kernel
def _full_rows(h: _A2, nb: _A1, cell_of: _A1, start: _A1, count: _A1, atoms: _A1, xs: _A2, rl2: ti.f64, nbr: _A2,
               nhome: _A1, nimage: _A1) -> ti.i32:
    """Row p (sorted atom atoms[p]): every atom of the 27 bins around its own within the list
    radius, with the image code of the lattice vector it is seen through; in parallel over rows
    (each written by its own task, entries in bin order: deterministic). Returns the longest row."""
    most = 0
    cap = nbr.shape[1]
    for p in range(xs.shape[0]):
        cid = cell_of[atoms[p]]
        c2 = cid % nb[2]
        c1 = (cid // nb[2]) % nb[1]
        c0 = cid // (nb[1] * nb[2])
        nh = 0
        ni = 0
        for o in range(27):
            b0, w0 = _wrap_bin(c0 + o // 9 - 1, nb[0])
            b1, w1 = _wrap_bin(c1 + (o // 3) % 3 - 1, nb[1])
            b2, w2 = _wrap_bin(c2 + o % 3 - 1, nb[2])
            cc = (b0 * nb[1] + b1) * nb[2] + b2
            code = (w0 + 1) | ((w1 + 1) << 2) | ((w2 + 1) << 4)
            home = code == HOME
            e0 = xs[p, 0] - (w0 * h[0, 0] + w1 * h[1, 0] + w2 * h[2, 0])
            e1 = xs[p, 1] - (w1 * h[1, 1] + w2 * h[2, 1])
            e2 = xs[p, 2] - w2 * h[2, 2]
            for q in range(start[cc], start[cc] + count[cc]):
                d0 = e0 - xs[q, 0]
                d1 = e1 - xs[q, 1]
                d2 = e2 - xs[q, 2]
                if d0 * d0 + d1 * d1 + d2 * d2 < rl2 and q != p:
                    if nh + ni < cap:
                        nbr[p, nh if home else cap - 1 - ni] = (atoms[q] << CODE_BITS) | code
                    if home:
                        nh += 1
                    else:
                        ni += 1
        nhome[p] = nh
        nimage[p] = ni
        ti.atomic_max(most, nh + ni)
    return most


@ti.kernel
def _unwrap_lattice(x: _A3, s: ti.i32, image: _A2, h: _A2):
    for i in range(x.shape[1]):
        for k in ti.static(range(3)):
            x[s, i, k] += image[i, 0] * h[0, k] + image[i, 1] * h[1, k] + image[i, 2] * h[2, k]
        for k in ti.static(range(3)):
            image[i, k] = 0


class TriclinicFullList(ImageCodedList):
    """The full Verlet list of :class:`~diffsim.md.cells.FullNeighborList` (same rows, image codes
    and methods) for one triclinic cell: lengths ``box`` (3,) and tilts ``tilt`` (xy, xz, yz)
    (length). Positions are wrapped into the cell in fractional coordinates, ``image`` (n, 3)
    int32 counting the lattice vectors a, b, c taken off; a code names the lattice vector
    w0 a + w1 b + w2 c (w in {-1, 0, 1}) through which a neighbour is seen, and the gather
    kernels' cell row ``box`` is (lx, ly, lz, xy, xz, yz). Candidates come from the 27 bins of the
    module doc's fractional grid (pairs within ``cutoff + skin``, each pair at both atoms); needs
    :func:`bins_per_axis` >= 3 on every axis and the list radius within half the smallest length
    (:func:`~diffsim.md.space.check_cutoff`: one image per pair)."""

    tilted = True

    def __init__(self, n, cutoff, skin, box, tilt, capacity=None):
        self.n, self.cutoff, self.skin = int(n), float(cutoff), float(skin)
        self.rl = self.cutoff + self.skin
        if self.n >= 1 << (31 - CODE_BITS):
            raise ConfigError(f"TriclinicFullList holds at most {1 << (31 - CODE_BITS)} atoms, got {self.n}")
        real = config().real
        self.box = ti.ndarray(real, 6)
        self.h = ti.ndarray(real, (3, 3))
        self.hinv = ti.ndarray(real, (3, 3))
        self.nb = ti.ndarray(ti.i32, 3)
        self.nb_np = None
        self._cell(np.asarray(box, dtype=np.float64).reshape(-1), np.asarray(tilt, dtype=np.float64).reshape(-1))
        self.cell_of = ti.ndarray(ti.i32, self.n)
        self.atoms = ti.ndarray(ti.i32, self.n)
        self.xs = ti.ndarray(real, (self.n, 3))
        self.ref = ti.ndarray(real, (self.n, 3))
        self.image = ti.ndarray(ti.i32, (self.n, 3))
        self.nhome = ti.ndarray(ti.i32, self.n)
        self.nimage = ti.ndarray(ti.i32, self.n)
        if capacity is None:
            capacity = int(1.2 * self.n / self.volume() * 4.0 / 3.0 * np.pi * self.rl ** 3) + 16
        self._alloc(min(int(capacity), max(self.n - 1, 1)))
        self.builds = 0
        self.max_count = 0

    def _cell(self, box, tilt):
        """Set the cell and its bins (the bin arrays are reallocated when their number changes)."""
        nb = bins_per_axis(box, tilt, self.rl)
        if box.shape != (3,) or tilt.shape != (3,) or np.any(nb < 3):
            raise ConfigError(f"the triclinic fast list needs >= 3 bins of the list radius {self.rl:.4g} across each "
                              f"perpendicular width of the cell (lengths {box.tolist()}, tilts {tilt.tolist()}: bins "
                              f"{nb.tolist()}); simulate more atoms (replicate the cell) or use a shorter cutoff")
        check_cutoff(self.cutoff, box, tilt, "the triclinic fast list", skin=self.skin)
        self.box_np, self.tilt_np = box, tilt
        self.h_np = cell_matrix(box, tilt)
        self.box.from_numpy(np.concatenate([box, tilt]).astype(config().numpy_real))
        self.h.from_numpy(self.h_np.astype(config().numpy_real))
        self.hinv.from_numpy(np.linalg.inv(self.h_np).astype(config().numpy_real))
        if self.nb_np is not None and np.array_equal(nb, self.nb_np):
            return
        self.nb_np = nb
        self.nb.from_numpy(nb.astype(np.int32))
        self.count = ti.ndarray(ti.i32, int(np.prod(nb)))
        self.start = ti.ndarray(ti.i32, int(np.prod(nb)))

    def _alloc(self, capacity):
        self.capacity = capacity
        self.nbr = ti.ndarray(ti.i32, (self.n, capacity))

    def build(self, x, slot):
        """Wrap ``x[slot]`` into the cell (counting lattice crossings in ``image``) and rebuild."""
        if x.shape[1] != self.n:
            raise ConfigError(f"neighbour list is for {self.n} atoms, positions have {x.shape[1]}")
        bad = int(_wrap_fractional(x, slot, self.image, self.h, self.hinv, self.nb, self.cell_of, self.count,
                                   binnable_boxes()))
        if bad < self.n:
            raise UnbinnableAtom(bad, x.to_numpy()[slot, bad].astype(np.float64), self.box_np)
        _sort_by_bin(x, slot, self.cell_of, self.count, self.start, self.atoms, self.xs)
        most = self._fill()
        if most > self.capacity:
            self._alloc(int(most * 1.2) + 8)
            most = self._fill()
        self.max_count = most
        copy_positions(x, slot, self.ref, serial_loops(x.shape[1]))
        self.builds += 1

    def _fill(self) -> int:
        return int(_full_rows(self.h, self.nb, self.cell_of, self.start, self.count, self.atoms, self.xs,
                              self.rl * self.rl, self.nbr, self.nhome, self.nimage))

    def unwrap(self, x, slot):
        """Add the counted lattice crossings back: ``x[slot]`` becomes continuous (unwrapped)."""
        _unwrap_lattice(x, slot, self.image, self.h)

    def offsets_np(self) -> np.ndarray:
        """(n, 3) what :meth:`unwrap` would add: the counted crossings times the lattice vectors."""
        return self.image.to_numpy() @ self.h_np

    def whole_cells_np(self, x) -> np.ndarray:
        """(n, 3) the whole lattice vectors to take off positions ``x`` (n, 3) to bring them into the cell."""
        return np.floor(x @ np.linalg.inv(self.h_np)) @ self.h_np

    def rescale(self, mu):
        """Scale the cell by ``mu`` (lengths and tilts: the shape is kept; a barostat). Positions
        are not touched; call :meth:`build` before the next force evaluation."""
        box, tilt = self.box_np * mu, self.tilt_np * mu
        if np.any(bins_per_axis(box, tilt, self.rl) < 3):
            raise ConfigError(f"the cell shrank to lengths {box.tolist()} (tilts {tilt.tolist()}), below 3 list radii "
                              f"({self.rl:.4g}) across a perpendicular width: the fast neighbour list cannot hold it; "
                              "simulate more atoms or use a shorter cutoff")
        self._cell(box, tilt)
