"""Fast neighbour search for forward-only runs: a full Verlet list from a sorted cell grid.

:class:`FullNeighborList` serves :meth:`MDSystem.simulate` (no gradients), where every atom
gathers its own force from a *full* list (each pair stored at both atoms), so the force kernel
needs no atomics (TAICHI.md: the gather form is the fastest forward form on the CPU). The tape
keeps :class:`~diffsim.md.neighbors.NeighborList` (half list, differentiable Newton kernels).

How it stays cheap:

- At each build the positions are wrapped into the box ``[0, L)`` and the whole lattice shift is
  counted in an integer image array (``image``), so unwrapped positions are ``x + image * L``.
  Between builds an atom moves less than skin/2, so every listed neighbour lies in one of
  the 27 adjacent images; that image is stored in the low 6 bits of the entry
  (``entry = j << 6 | code``, 2 bits per axis: 0 is -L, 1 is 0, 2 is +L). The force kernel
  then needs no minimum-image floor or division (``d = x_i - x_j - shift``), and each row keeps
  its home-box neighbours apart from those through an image, so most pairs need no shift. For
  the gather kernels each (atom, image code) seen through an image becomes a ghost slot
  (:meth:`ImageCodedList._make_ghosts`) whose position they refresh, so that every entry is a
  plain index and one vectorised loop serves the whole row. The CPU build ("half") places the
  ghost slots before its search, from each atom's position (an image per axis when the atom is
  within a list radius of a face), and writes those gather rows itself.
- Cells are columns at least half the list radius (``cutoff + skin``) wide in x and y, and
  an eighth of it tall in z. Atoms are counting-sorted by cell (within a cell by atom index).
  Cells along z are contiguous in that order, so each of the 5x5 columns around an atom is
  scanned as one run of sorted positions over the exact z window ``|z - z_i| < sqrt(rl^2 -
  g^2)`` (g: the distance to the column in x and y): about 160 candidates per atom for 75
  neighbours, against 500 for the classic 27 cells of one list radius.
- On the CPU each pair is tested once (the forward half of the block) and written to both
  rows, by one serial task per slab of columns; two launches keep tasks off each other's rows.
  No atomics decide any order, so the list and every force sum are the same from run to run
  and for any thread count.
- Capacity is never exceeded silently: the build counts every neighbour and regrows.

Needs one periodic box at least 2.5 list radii wide on every axis (the
:class:`~diffsim.md.neighbors.NeighborList` "cells" method asks for 3).
"""

import numpy as np
import taichi as ti

from ..compat import launch_kernel
from ..errors import ConfigError
from ..runtime import config

_A1 = ti.types.ndarray(ndim=1)
_A2 = ti.types.ndarray(ndim=2)
_A3 = ti.types.ndarray(ndim=3)

CODE_BITS = 6

#: up to this many atoms the CPU runs the list's bookkeeping loops (binning, the scan, the sort,
#: the row ends) on the launching thread (:func:`serial_loops`): handing a loop to Taichi's
#: thread pool costs 60-100 us on these 2-core VMs (its workers sleep between loops, and waking
#: one is a round trip through the hypervisor), more than such a loop's work over a few thousand
#: atoms. A whole build, serial against parallel bookkeeping (2 threads, min/median of 8 rounds):
#: 4,000 atoms 2.87/3.21 ms against 3.15/3.97; 8,788 atoms about even; 16,384 atoms 13.7/16.2
#: against 11.8/15.2
SERIAL_ATOMS = 8192


def serial_loops(n) -> bool:
    """Whether the bookkeeping loops over ``n`` atoms run serially (:data:`SERIAL_ATOMS`; on the CPU only:
    a GPU runs a serial loop on one thread)."""
    return config().arch == "cpu" and n <= SERIAL_ATOMS


def binnable_boxes() -> float:
    """How many box lengths from the box an atom may be (with its recorded crossings) and still
    be binned: below 2^31 for the int32 crossing counter ``image``, and small enough that the
    wrapped position keeps some accuracy (2^20 in float32, 2^30 in float64)."""
    return float(2 ** 30 if config().precision == "f64" else 2 ** 20)


class UnbinnableAtom(ConfigError):
    """An atom's position is not finite or too far from the box to bin (``atom``, ``position``)."""

    def __init__(self, atom, position, box):
        self.atom, self.position = int(atom), np.asarray(position, dtype=np.float64)
        edges = [float(e) for e in np.asarray(box)]
        super().__init__(
            f"atom {atom} at {[float(v) for v in self.position]} is not finite or at least 2^"
            f"{int(np.log2(binnable_boxes()))} box lengths ({edges}) from the box, so the neighbour list cannot "
            "bin it: wrap the positions into the box, and if they come from a run, the run diverged (reduce dt "
            "or check the parameters)")
HOME = 0b010101  # the image code of a neighbour in the home box (no shift on any axis)


@ti.func
def _wrapped(v, length):
    """v wrapped into [0, length) and the number of box lengths removed (rounding can leave
    v - m * length equal to length or just below 0; both are moved inside)."""
    m = ti.floor(v / length)
    u = v - m * length
    if u >= length:
        u -= length
        m += 1.0
    elif u < 0.0:
        u += length
        m -= 1.0
    return u, m


@ti.kernel
def _wrap_and_bin(x: _A3, s: ti.i32, image: _A2, box: _A1, nc: _A1, cell_of: _A1, count: _A1, limit: ti.f64,
                  wrap: ti.template(), serial: ti.template()) -> ti.i32:
    """Cell of each atom from its position wrapped into the box; with ``wrap`` the positions
    are wrapped in place and the crossings counted in ``image``. Returns the lowest index of an
    atom that cannot be binned (a coordinate not finite, or ``limit`` or more box lengths from
    the box counting its recorded crossings), else n; such an atom is left as it is, in cell 0."""
    first = x.shape[1]
    ti.loop_config(serialize=serial)
    for i in range(x.shape[1]):
        ok = True
        for k in ti.static(range(3)):
            boxes_out = x[s, i, k] / box[k]
            if ti.static(wrap):
                boxes_out += image[i, k]
            if not ti.abs(boxes_out) < limit:  # NaN compares false
                ok = False
        cid = 0
        if ok:
            for k in ti.static(range(3)):
                u, m = _wrapped(x[s, i, k], box[k])
                if ti.static(wrap):
                    x[s, i, k] = u
                    image[i, k] += ti.cast(m, ti.i32)
                ck = ti.min(ti.max(ti.cast(u / box[k] * nc[k], ti.i32), 0), nc[k] - 1)
                cid = cid * nc[k] + ck
        else:
            ti.atomic_min(first, i)
        cell_of[i] = cid
        ti.atomic_add(count[cid], 1)
    return first


@ti.kernel
def _zero(a: _A1, serial: ti.template()):
    ti.loop_config(serialize=serial)
    for i in range(a.shape[0]):
        a[i] = 0


SCAN_BLOCK = 1024  # cells per block of the two-level prefix sum (10^6 atoms: ~1.7 M cells)


@ti.kernel
def _block_sums(count: _A1, total: _A1, serial: ti.template()):
    ti.loop_config(serialize=serial)
    for b in range(total.shape[0]):
        acc = 0
        for c in range(b * SCAN_BLOCK, ti.min((b + 1) * SCAN_BLOCK, count.shape[0])):
            acc += count[c]
        total[b] = acc


@ti.kernel
def _block_offsets(total: _A1, offset: _A1):
    ti.loop_config(serialize=True)
    for b in range(total.shape[0]):
        if b == 0:
            offset[0] = 0
        else:
            offset[b] = offset[b - 1] + total[b - 1]


@ti.kernel
def _block_scan(count: _A1, offset: _A1, start: _A1, fill: _A1, serial: ti.template()):
    ti.loop_config(serialize=serial)
    for b in range(offset.shape[0]):
        run = offset[b]
        for c in range(b * SCAN_BLOCK, ti.min((b + 1) * SCAN_BLOCK, count.shape[0])):
            start[c] = run
            fill[c] = run
            run += count[c]


def _exclusive_scan(count, start, fill, total, offset, serial):
    """start[c] = fill[c] = sum of count[:c]; blocks in parallel (a serial loop over ~10^6
    cells would run on one GPU thread) unless ``serial``, then a serial pass over the few block totals."""
    launch_kernel(_block_sums, count, total, serial)
    launch_kernel(_block_offsets, total, offset)
    launch_kernel(_block_scan, count, offset, start, fill, serial)


@ti.kernel
def _scatter(cell_of: _A1, fill: _A1, atoms: _A1, serial: ti.template()):
    ti.loop_config(serialize=serial)
    for i in range(cell_of.shape[0]):
        atoms[ti.atomic_add(fill[cell_of[i]], 1)] = i


@ti.func
def _image_mask(u0, u1, u2, box: ti.template(), rl):
    """Bit _code27(c) for every image code c through which an atom at wrapped position (u0, u1,
    u2) can be within ``rl`` of a point in the box: per axis the home box, the image one box up
    when u < rl, one box down when u > L - rl (with a margin of 1e-4 rl for rounding); the home
    code (bit 13) excluded."""
    lo = ti.Vector([u0 < 1.0001 * rl, u1 < 1.0001 * rl, u2 < 1.0001 * rl])
    hi = ti.Vector([u0 > box[0] - 1.0001 * rl, u1 > box[1] - 1.0001 * rl, u2 > box[2] - 1.0001 * rl])
    mask = 0
    for b in ti.static(range(27)):
        ok = True
        for k in ti.static(range(3)):  # code digit k of b: 0 one box down, 1 home, 2 one box up
            if ti.static((b // 3 ** k) % 3 == 0):
                ok = ok and hi[k]
            elif ti.static((b // 3 ** k) % 3 == 2):
                ok = ok and lo[k]
        if ti.static(b != 13):
            mask |= ti.select(ok, 1 << b, 0)
    return mask


@ti.kernel
def _sort_cells(x: _A3, s: ti.i32, start: _A1, count: _A1, atoms: _A1, xs: _A2, box: _A1, rl: ti.f64, gmask: _A1,
                row_of: _A1, serial: ti.template()):
    """Insertion-sort each cell's few atoms by index (a deterministic order), then gather
    their positions, wrapped into the box, contiguously into xs, and each atom's image codes
    (:func:`_image_mask`) into gmask (by sorted index, the gather's order); row_of[atoms[p]] = p."""
    ti.loop_config(serialize=serial)
    for c in range(count.shape[0]):
        a0 = start[c]
        for p in range(a0 + 1, a0 + count[c]):
            key = atoms[p]
            q = p
            while q > a0 and atoms[q - 1] > key:
                atoms[q] = atoms[q - 1]
                q -= 1
            atoms[q] = key
        for p in range(a0, a0 + count[c]):
            for k in ti.static(range(3)):
                u, _m = _wrapped(x[s, atoms[p], k], box[k])
                xs[p, k] = u
            gmask[p] = _image_mask(xs[p, 0], xs[p, 1], xs[p, 2], box, rl)
            row_of[atoms[p]] = p


@ti.func
def _wrap_cell(o, n):
    """Cell index o in [-2, n + 1] wrapped into [0, n), with its image code (0: -L, 1: 0, 2: +L)."""
    code = 1
    if o < 0:
        o += n
        code = 0
    elif o >= n:
        o -= n
        code = 2
    return o, code


@ti.func
def _gap(u, a, h):
    """Distance along one axis from offset u (0 <= u < h in its cell) to the cell a columns away."""
    return ti.max(ti.max(a * h - u, u - (a + 1) * h), 0.0)


@ti.func
def _note(p, q, xi0, xi1, xi2, sx, sy, sz, rl2, xs: ti.template(), atoms: ti.template(), nbr: ti.template(), code,
          home, nh, ni):
    """Test candidate q (sorted index, image shift (sx, sy, sz)) of sorted atom p and write it to
    row p, home hits from the front (count nh), others from the back (count ni); returns the counts.
    Branch-free: about half the candidates are hits, and a branch on it is mispredicted half the
    time. The candidate is written where a hit goes (a miss is overwritten by the next hit or lies
    past the row's count) and the count advances by the hit: the rows are those of the branch."""
    d0 = xi0 - xs[q, 0] - sx
    d1 = xi1 - xs[q, 1] - sy
    d2 = xi2 - xs[q, 2] - sz
    hit = d0 * d0 + d1 * d1 + d2 * d2 < rl2 and q != p
    cap = nbr.shape[1]
    if nh + ni < cap:
        nbr[p, nh if home else cap - 1 - ni] = (atoms[q] << CODE_BITS) | code
    if home:
        nh += ti.cast(hit, ti.i32)
    else:
        ni += ti.cast(hit, ti.i32)
    return nh, ni


@ti.func
def _columns(p, ab0, ab1, qmin, xs: ti.template(), atoms: ti.template(), cell_of: ti.template(), box: ti.template(),
             nc: ti.template(), start: ti.template(), count: ti.template(), rl2, nbr: ti.template(),
             nhome: ti.template(), nimage: ti.template(), mirror: ti.template(), runs: ti.template(),
             hits: ti.template(), task, gmask: ti.template(), gbase: ti.template(), column: ti.template() = False,
             pcx=0, pcy=0, crow=0, ccode=0):
    """Scan columns ab0 <= ab < ab1 of the 5x5 block around sorted atom p (ab = (a + 2) * 5 + b + 2
    for column offsets a, b in x, y), each along its exact z window, for atoms q >= qmin of the
    own column (ab = 12). Hits in the home image go to row p from the front (count nhome[p]),
    hits through a periodic image from the back (count nimage[p]); with ``mirror`` also p to
    row q, the same way: the search notes its hits (sorted index and code) in row ``task`` of
    ``hits``, then each hit is written to both rows, in the order of the search, so the rows
    are those of writing each candidate to both rows as it is tested (what this did before; the
    mirrored read-modify-writes of row q now happen for hits only, about half the candidates).
    With ``mirror`` the rows are the gather's (see FullNeighborList): every hit from the front,
    as its sorted index q, or through an image as its ghost slot n + gbase[q] + (rank of the
    code in gmask[q]). With ``runs`` (always with ``mirror``; for the CPU: 39 run bounds per atom in
    locals) the runs are collected first and scanned afterwards, else scanned as they are
    found. Counts run past the row capacity (entries are then dropped). With ``column`` the
    caller gives what is the same for every atom of its column of cells (:func:`_column_block`):
    the column (pcx, pcy), and for columns 12 + j of the block the first cell ``crow[j]`` and
    image code in x and y ``ccode[j]``. With ``mirror``, ``nbr`` is the gather's flat rows
    (``ent``: row p from p * cap)."""
    cap = 0
    if ti.static(mirror):
        cap = nbr.shape[0] // nhome.shape[0]
    else:
        cap = nbr.shape[1]
    hx = box[0] / nc[0]
    hy = box[1] / nc[1]
    ihz = nc[2] / box[2]
    nz = nc[2]
    cx = pcx
    cy = pcy
    if ti.static(not column):
        cid = cell_of[atoms[p]]
        cy = (cid // nz) % nc[1]
        cx = cid // (nc[1] * nz)
    xi0 = xs[p, 0]
    xi1 = xs[p, 1]
    xi2 = xs[p, 2]
    ux = xi0 - cx * hx
    uy = xi1 - cy * hy
    nh = 0
    ni = 0
    nhit = 0  # with mirror: hits noted in hits[task]
    # with runs: the runs (first and past-last sorted index, image code) are found first and
    # scanned afterwards, so that the scan is a tight loop (a run's bounds no longer start from
    # scratch after each mispredicted run exit); at most 13 columns x 3 parts
    nrun = 0
    run_lo = ti.Vector([0] * (39 if ti.static(runs) else 1))
    run_hi = ti.Vector([0] * (39 if ti.static(runs) else 1))
    run_code = ti.Vector([0] * (39 if ti.static(runs) else 1))
    if ti.static(mirror):  # earlier atoms may have written to this row already
        ni = nimage[p]
        nh = nhome[p] - ni  # with mirror, nhome holds each row's whole count (see below)
    for ab in range(ab0, ab1):
        a = ab // 5 - 2
        b = ab % 5 - 2
        gx = _gap(ux, a, hx)
        gy = _gap(uy, b, hy)
        g2 = gx * gx + gy * gy
        if g2 < rl2:
            ca = 0
            cb = 0
            row = 0
            if ti.static(column):
                ca = ccode[ab - 12] & 3
                cb = ccode[ab - 12] >> 2
                row = crow[ab - 12]
            else:
                ox, ca_ = _wrap_cell(cx + a, nc[0])
                oy, cb_ = _wrap_cell(cy + b, nc[1])
                ca = ca_
                cb = cb_
                row = (ox * nc[1] + oy) * nz
            sx = (ca - 1) * box[0]
            sy = (cb - 1) * box[1]
            # the z window |z - z_i| < sqrt(rl^2 - g^2) as up to three runs of cells: wrapped
            # below the box (image code 0), inside (1), wrapped above (2)
            zr = ti.sqrt(rl2 - g2)
            # clamped to [-nz, 2 nz - 1] so that no position can index outside the cell arrays
            # (positions are binned only when finite and in range; this is the second guard)
            klo = ti.cast(ti.floor(ti.min(ti.max((xi2 - zr) * ihz, -nz), 2 * nz - 1)), ti.i32)
            khi = ti.cast(ti.floor(ti.min(ti.max((xi2 + zr) * ihz, -nz), 2 * nz - 1)), ti.i32)
            q0 = qmin if ab == 12 else 0
            for part in range(3):
                lo = ti.max(klo, 0)
                hi = ti.min(khi, nz - 1)
                cc = 1
                if part == 0:
                    lo = klo + nz
                    hi = nz - 1
                    cc = 0
                elif part == 2:
                    lo = 0
                    hi = khi - nz
                    cc = 2
                if ti.static(runs):
                    if lo <= hi:
                        run_lo[nrun] = ti.max(start[row + lo], q0)
                        run_hi[nrun] = start[row + hi] + count[row + hi]
                        run_code[nrun] = ca | (cb << 2) | (cc << 4)
                        nrun += 1
                elif lo <= hi:
                    sz = (cc - 1) * box[2]
                    code = ca | (cb << 2) | (cc << 4)
                    home = code == HOME
                    for q in range(ti.max(start[row + lo], q0), start[row + hi] + count[row + hi]):
                        nh, ni = _note(p, q, xi0, xi1, xi2, sx, sy, sz, rl2, xs, atoms, nbr, code, home, nh, ni)
    if ti.static(runs and not mirror):
        for r in range(nrun):
            code = run_code[r]
            home = code == HOME
            sx = ((code & 3) - 1) * box[0]
            sy = (((code >> 2) & 3) - 1) * box[1]
            sz = (((code >> 4) & 3) - 1) * box[2]
            for q in range(run_lo[r], run_hi[r]):
                nh, ni = _note(p, q, xi0, xi1, xi2, sx, sy, sz, rl2, xs, atoms, nbr, code, home, nh, ni)
    if ti.static(mirror):
        for r in range(nrun):
            code = run_code[r]
            sx = ((code & 3) - 1) * box[0]
            sy = (((code >> 2) & 3) - 1) * box[1]
            sz = (((code >> 4) & 3) - 1) * box[2]
            for q in range(run_lo[r], run_hi[r]):
                d0 = xi0 - xs[q, 0] - sx
                d1 = xi1 - xs[q, 1] - sy
                d2 = xi2 - xs[q, 2] - sz
                hit = d0 * d0 + d1 * d1 + d2 * d2 < rl2 and q != p
                # branch-free as above: the candidate (sorted index, code) goes to the task's hit
                # row, and the count advances by the hit
                if nhit < hits.shape[1]:
                    hits[task, nhit] = (q << CODE_BITS) | code
                nhit += ti.cast(hit, ti.i32)
        # each hit to row p and (mirrored) to row q, which sees p through the opposite image;
        # plain (not atomic) read-modify-writes: no other task writes row q now
        n = xs.shape[0]
        kept = ti.min(nhit, hits.shape[1])
        for k in range(kept):
            e = hits[task, k]
            q = e >> CODE_BITS
            code = e & ((1 << CODE_BITS) - 1)
            home = code == HOME
            eq = q  # row p's entry for q, and row q's for p (seen through the opposite image)
            ep = p
            if not home:
                eq = n + gbase[q] + ti.math.popcnt(gmask[q] & ((1 << _code27(code)) - 1))
                ep = n + gbase[p] + ti.math.popcnt(gmask[p] & ((1 << _code27(42 - code)) - 1))
            if nh + ni < cap:
                nbr[p * cap + nh + ni] = eq
            # row q's whole count is kept in nhome[q] while the list is filled (FullNeighborList._fill
            # splits it afterwards), so that a home hit, nine in ten, reads and writes one count
            m = nhome[q]
            if m < cap:
                nbr[q * cap + m] = ep
            nhome[q] = m + 1
            if home:
                nh += 1
            else:
                ni += 1
                nimage[q] = nimage[q] + 1  # not `+=`, which is atomic (a locked add)
        nh += nhit - kept  # hits past the hit row's width: counted (the row outgrew the list; it regrows)
    nhome[p] = nh + ni if ti.static(mirror) else nh
    nimage[p] = ni


@ti.kernel
def _build_full(xs: _A2, box: _A1, nc: _A1, cell_of: _A1, start: _A1, count: _A1, atoms: _A1, rl2: ti.f64,
                nbr: _A2, nhome: _A1, nimage: _A1):
    """Every atom scans all 25 columns (each pair is tested twice); fully parallel (GPU)."""
    for p in range(xs.shape[0]):
        _columns(p, 0, 25, 0, xs, atoms, cell_of, box, nc, start, count, rl2, nbr, nhome, nimage, False, False, nbr,
                 0, nhome, nhome)


@ti.func
def _column_block(cx, cy, nc: ti.template()):
    """For columns 12 + j (j < 13) of the 5x5 block around column (cx, cy): the first cell of the
    column, wrapped into the box, and its image code in x and y (2 bits each); the same for every
    atom of the column, so :func:`_columns` need not work them out (nor the column from the atom's
    cell: three integer divisions) for each atom."""
    crow = ti.Vector([0] * 13)
    ccode = ti.Vector([0] * 13)
    for j in ti.static(range(13)):
        ox, ca = _wrap_cell(cx + (12 + j) // 5 - 2, nc[0])
        oy, cb = _wrap_cell(cy + (12 + j) % 5 - 2, nc[1])
        crow[j] = (ox * nc[1] + oy) * nc[2]
        ccode[j] = ca | (cb << 2)
    return crow, ccode


GRAIN = 512  # Taichi's CPU range-for hands out at least 512 iterations per thread


@ti.kernel
def _build_half(xs: _A2, box: _A1, nc: _A1, cell_of: _A1, start: _A1, count: _A1, atoms: _A1, rl2: ti.f64,
                ent: _A1, nhome: _A1, nimage: _A1, cells0: _A1, cells1: _A1, hits: _A2, gmask: _A1, gbase: _A1):
    """Each pair tested once (forward half of the block), written to both rows of the gather's
    flat rows ``ent`` (row p from p * (ent.shape[0] // n), see FullNeighborList). One serial task
    per slab of cells [cells0[t], cells1[t]) (x-major, so a contiguous range of sorted atoms);
    the slabs of one launch must not write to each other's rows (see FullNeighborList.build).
    hits: (tasks, width) scratch, a row per task (see _columns); gmask, gbase: the ghost slots
    the rows point to (FullNeighborList._ghost_slots). nhome counts each row's entries, home and
    image, until :func:`_row_split` takes nimage off."""
    for g in range(cells0.shape[0] * GRAIN):
        if g % GRAIN == 0:
            t = g // GRAIN
            nz = nc[2]
            # the slab's columns of cells (cells0, cells1 are whole columns), atoms column by column
            for col in range(cells0[t] // nz, cells1[t] // nz):
                cx = col // nc[1]
                cy = col % nc[1]
                crow, ccode = _column_block(cx, cy, nc)
                last = col * nz + nz - 1
                for p in range(start[col * nz], start[last] + count[last]):
                    # columns 12 (own, later atoms only) to 24: the forward half of the 5x5 block
                    _columns(p, 12, 25, p + 1, xs, atoms, cell_of, box, nc, start, count, rl2, ent, nhome, nimage,
                             True, True, hits, t, gmask, gbase, True, cx, cy, crow, ccode)


@ti.func
def _half_row(p, xs: ti.template(), box: ti.template(), nc: ti.template(), cell_of: ti.template(),
              start: ti.template(), count: ti.template(), atoms: ti.template(), rl2, scratch: ti.template(),
              nhome: ti.template(), nimage: ti.template(), nbr: ti.template(), nnb: ti.template(),
              runs: ti.template()):
    """Row atoms[p] of the tape's half list (the forward half of the 5x5 column block around the
    atom, plain atom indices) from the column search; returns the row's full length (it may
    exceed the list's width, which the caller checks)."""
    _columns(p, 12, 25, p + 1, xs, atoms, cell_of, box, nc, start, count, rl2, scratch, nhome, nimage, False, runs,
             scratch, 0, nhome, nhome)
    cap = scratch.shape[1]
    nh = nhome[p]
    cnt = nh + nimage[p]
    i = atoms[p]
    for k in range(ti.min(cnt, nbr.shape[1], cap)):
        c = scratch[p, k] if k < nh else scratch[p, cap - 1 - (k - nh)]
        nbr[i, k] = c >> CODE_BITS
    nnb[i] = cnt
    return cnt


#: the full rows of the tape's lists are padded with the atom's own index up to a multiple of this
#: (:func:`padded_length`) for the hand-written adjoint (:mod:`diffsim.md.pair_adjoint`): LLVM
#: vectorises its loop over a row 4 pairs wide and 4 times interleaved (16 pairs an iteration in
#: 256-bit vectors on these AMD EPYC CPUs) and runs what is left of a row (up to 15 pairs of ~76
#: at the in.lj density) one pair at a time; padded, the adjoint of N = 1,000 took 0.59-0.62 ms
#: against 0.68-0.77 ms, though it evaluates ~4 more pairs an atom. The forward gathers read the
#: rows' own lengths, never the pads: their sums, whose order LLVM's vector plan fixes, keep their
#: bits.
ROW_PAD = 16


@ti.func
def padded_length(m, width):
    """Row length ``m`` rounded up to a multiple of :data:`ROW_PAD`, at most ``width``."""
    return ti.min((m + ROW_PAD - 1) // ROW_PAD * ROW_PAD, width)


@ti.func
def pad_row(full: ti.template(), i, m):
    """Entries m .. padded_length(m) - 1 of row i of ``full`` := i (the pads, see :data:`ROW_PAD`)."""
    for k in range(m, padded_length(m, full.shape[1])):
        full[i, k] = i


#: the gather's rows (``ent`` of :class:`FullNeighborList` and the triclinic list) are padded
#: up to a multiple of this (:func:`gather_length`) with the far slot (the last of ``xg``, see
#: :meth:`ImageCodedList._make_ghosts`), which the gather kernels mask as a pair beyond the
#: cutoff: LLVM vectorises their loop over a row 8 pairs wide in float32 (4 in float64; 256-bit
#: vectors on these AMD EPYC CPUs) and ran what was left of a row (up to 7 of ~75 pairs at the
#: in.lj density) one pair at a time, each with a scalar division
GATHER_PAD = 8


@ti.func
def gather_length(m, width):
    """Gather row length ``m`` rounded up to a multiple of :data:`GATHER_PAD`, at most ``width``."""
    return ti.min((m + GATHER_PAD - 1) // GATHER_PAD * GATHER_PAD, width)


@ti.func
def _pad_gather_row(ent: ti.template(), p, m, far, cap):
    """Entries m .. gather_length(m) - 1 of row p of the flat rows ``ent`` := far (the far slot)."""
    for k in range(m, gather_length(m, cap)):
        ent[p * cap + k] = far


@ti.func
def mirror_rows(nbr: ti.template(), nnb: ti.template(), full: ti.template(), nfull: ti.template()):
    """The full list of a half list: each pair (i, j) of row i also as (j, i) in row j, rows in
    the half list's order (so sums over them are the same at any thread count), each padded
    with i up to a multiple of :data:`ROW_PAD` where the width allows. Serial loops: call it
    from a serialized scope. Returns the longest full row (it may exceed the width)."""
    most = 0
    cap = full.shape[1]
    for i in range(nnb.shape[0]):
        nfull[i] = 0
    for i in range(nnb.shape[0]):
        for q in range(nnb[i]):
            j = nbr[i, q]
            a = nfull[i]
            b = nfull[j]
            if a < cap:
                full[i, a] = j
            if b < cap:
                full[j, b] = i
            nfull[i] = a + 1
            nfull[j] = b + 1
    for i in range(nnb.shape[0]):
        most = ti.max(most, nfull[i])
        pad_row(full, i, nfull[i])
    return most


@ti.kernel
def _half_rows(xs: _A2, box: _A1, nc: _A1, cell_of: _A1, start: _A1, count: _A1, atoms: _A1, rl2: ti.f64,
               scratch: _A2, nhome: _A1, nimage: _A1, nbr: _A2, nnb: _A1) -> ti.i32:
    """The tape's half list: each pair once (the forward half of the block), row i holding plain
    atom indices; in parallel over atoms (no row is written by two)."""
    most = 0
    for p in range(xs.shape[0]):
        ti.atomic_max(most, _half_row(p, xs, box, nc, cell_of, start, count, atoms, rl2, scratch, nhome, nimage, nbr,
                                      nnb, False))
    return most


@ti.kernel
def _tape_lists(x: _A3, s: ti.i32, box: _A1, nc: _A1, limit: ti.f64, cell_of: _A1, count: _A1, start: _A1,
                fill: _A1, atoms: _A1, xs: _A2, ref: _A2, rl2: ti.f64, scratch: _A2, nhome: _A1, nimage: _A1,
                nbr: _A2, nnb: _A1, full: _A2, nfull: _A1) -> ti.types.vector(3, ti.i32):
    """The tape's half list (as :func:`_half_rows`, from ``x[s]`` left unwrapped) and its full twin
    (as :func:`~diffsim.md.neighbors._mirror`), and ref = x[s], in one launch: the counting sort
    serially (atoms of a cell in index order, the order :func:`_sort_cells` gives), the search in
    parallel over atoms, the mirror serially. Returns (longest half row, longest full row, the
    lowest index of an atom that cannot be binned or n); the rows are the separate kernels' bit
    for bit. For the CPU (serial loops over every atom: microseconds at 10^3-10^4 atoms)."""
    n = x.shape[1]
    out = ti.Vector([0, 0, n])
    ti.loop_config(serialize=True)
    for _ in range(1):
        for c in range(count.shape[0]):
            count[c] = 0
        for i in range(n):
            ok = True
            for k in ti.static(range(3)):
                ref[i, k] = x[s, i, k]
                if not ti.abs(x[s, i, k] / box[k]) < limit:  # NaN compares false
                    ok = False
            cid = 0
            if ok:
                for k in ti.static(range(3)):
                    u, _m = _wrapped(x[s, i, k], box[k])
                    ck = ti.min(ti.max(ti.cast(u / box[k] * nc[k], ti.i32), 0), nc[k] - 1)
                    cid = cid * nc[k] + ck
            elif out[2] == n:
                out[2] = i
            cell_of[i] = cid
            count[cid] += 1
        run = 0
        for c in range(count.shape[0]):
            start[c] = run
            fill[c] = run
            run += count[c]
        for i in range(n):
            p = fill[cell_of[i]]
            fill[cell_of[i]] = p + 1
            atoms[p] = i
            for k in ti.static(range(3)):
                u, _m = _wrapped(x[s, i, k], box[k])
                xs[p, k] = u
    most = 0
    for p in range(n):
        ti.atomic_max(most, _half_row(p, xs, box, nc, cell_of, start, count, atoms, rl2, scratch, nhome, nimage, nbr,
                                      nnb, True))
    ti.loop_config(serialize=True)
    for _ in range(1):
        out[0] = most
        if most <= ti.min(nbr.shape[1], scratch.shape[1]):  # else the caller grows the list and builds again
            out[1] = mirror_rows(nbr, nnb, full, nfull)
    return out


@ti.kernel
def _row_max(nhome: _A1, nimage: _A1, cnt: _A1) -> ti.i32:
    """The longest row; cnt[p] = nhome[p] + nimage[p]."""
    most = 0
    for p in range(nhome.shape[0]):
        cnt[p] = nhome[p] + nimage[p]
        ti.atomic_max(most, cnt[p])
    return most


@ti.kernel
def _row_split(nhome: _A1, nimage: _A1, cnt: _A1, ent: _A1, far: ti.i32, serial: ti.template()) -> ti.i32:
    """After _build_half, which counts each row's entries in nhome: cnt[p] = that count, nhome[p] =
    the home ones, the row of ``ent`` padded with ``far`` (:data:`GATHER_PAD`); returns the
    longest row."""
    most = 0
    cap = ent.shape[0] // nhome.shape[0]
    ti.loop_config(serialize=serial)
    for p in range(nhome.shape[0]):
        m = nhome[p]
        cnt[p] = m
        nhome[p] -= nimage[p]
        ti.atomic_max(most, m)
        _pad_gather_row(ent, p, m, far, cap)
    return most


@ti.kernel
def copy_positions(x: _A3, s: ti.i32, ref: _A2, serial: ti.template()):
    """ref = x[s] (the positions a neighbour list was built from)."""
    ti.loop_config(serialize=serial)
    for i, k in ti.ndrange(x.shape[1], 3):
        ref[i, k] = ti.cast(x[s, i, k], float)  # the run's precision, as the assignment would


@ti.kernel
def max_displacement_sq(x: _A3, s: ti.i32, ref: _A2) -> ti.f64:
    """Largest squared distance of x[s] from ref over atoms; inf if any is NaN or Inf."""
    most = 0.0
    for i in range(x.shape[1]):
        d2 = 0.0
        for k in ti.static(range(3)):
            d = x[s, i, k] - ref[i, k]
            d2 += d * d
        if not d2 < 1e300:  # NaN compares false
            d2 = ti.math.inf
        ti.atomic_max(most, d2)
    return most


@ti.kernel
def _unwrap(x: _A3, s: ti.i32, image: _A2, box: _A1):
    for i, k in ti.ndrange(x.shape[1], 3):
        x[s, i, k] += image[i, k] * box[k]
        image[i, k] = 0


@ti.func
def _code27(code):
    """An image code (2 bits per axis, each 0, 1 or 2) as a number 0..26."""
    return (code & 3) + 3 * ((code >> 2) & 3) + 9 * ((code >> 4) & 3)


@ti.kernel
def _ghost_masks(nbr: _A2, nimage: _A1, atoms: _A1, row_of: _A1, mask: _A1):
    """row_of[atoms[p]] = p; mask[p]: bit _code27(c) set for every image code c through which
    some row sees atom atoms[p]."""
    for p in range(mask.shape[0]):
        mask[p] = 0
        row_of[atoms[p]] = p
    for p in range(nbr.shape[0]):
        cap = nbr.shape[1]
        for k in range(ti.min(nimage[p], cap)):
            c = nbr[p, cap - 1 - k]
            ti.atomic_or(mask[row_of[c >> CODE_BITS]], 1 << _code27(c & ((1 << CODE_BITS) - 1)))


@ti.kernel
def _ghost_index(mask: _A1, gbase: _A1, gcount: _A1, gcode: _A1) -> ti.i32:
    """Ghost slots in sorted order (the gather's), each atom's in the order of its codes:
    gbase[q], gcount[q] and the code of each slot (gcode). Returns the number of slots (they are written only as far as
    gcode holds)."""
    n = mask.shape[0]
    out = ti.Vector([0])
    ti.loop_config(serialize=True)
    for _ in range(1):
        total = 0
        for j in range(n):
            gbase[j] = total
            m = mask[j]
            if m != 0:  # about half the atoms have no ghost at N = 32,000
                for b in range(27):
                    if (m >> b) & 1:
                        if total < gcode.shape[0]:
                            gcode[total] = (b % 3) | (((b // 3) % 3) << 2) | ((b // 9) << 4)
                        total += 1
            gcount[j] = total - gbase[j]
        out[0] = total
    return out[0]


@ti.kernel
def _ghost_types(types: _A1, atoms: _A1, gbase: _A1, gcount: _A1, gtypes: _A1, xg: _A2, xg_next: _A2, far: ti.f64,
                 serial: ti.template()):
    """gtypes: the types of the atoms in sorted order, then of the ghost slots (their atoms');
    the far slot (the last of xg and of its twin xg_next) at (far, far, far), type 0."""
    n = types.shape[0]
    last = xg.shape[0] - 1
    for k in ti.static(range(3)):  # float: the run's precision (no "may lose precision" warning in float32)
        xg[last, k] = ti.cast(far, float)
        xg_next[last, k] = ti.cast(far, float)
    gtypes[last] = 0
    ti.loop_config(serialize=serial)
    for q in range(n):
        t = types[atoms[q]]
        gtypes[q] = t
        for g in range(gbase[q], gbase[q] + gcount[q]):
            gtypes[n + g] = t


@ti.kernel
def _ghost_rows(nbr: _A2, nhome: _A1, nimage: _A1, mask: _A1, gbase: _A1, row_of: _A1, far: ti.i32, ent: _A1,
                cnt: _A1):
    """Row p of the flat rows ``ent`` (from p * cap, cap = nbr.shape[1]): its home neighbours'
    sorted indices q (row_of[j] of atom j), then its image neighbours as ghost slots
    n + gbase[q] + (rank of the code among q's), cnt[p] entries, padded with ``far``
    (:data:`GATHER_PAD`)."""
    n = mask.shape[0]
    for p in range(nbr.shape[0]):
        cap = nbr.shape[1]
        nh = nhome[p]
        ni = nimage[p]
        for k in range(nh):
            ent[p * cap + k] = row_of[nbr[p, k] >> CODE_BITS]
        for k in range(ni):
            c = nbr[p, cap - ni + k]
            j = row_of[c >> CODE_BITS]
            b = _code27(c & ((1 << CODE_BITS) - 1))
            below = mask[j] & ((1 << b) - 1)  # the codes of j (sorted) before this one
            rank = 0
            while below != 0:
                below &= below - 1
                rank += 1
            ent[p * cap + nh + k] = n + gbase[j] + rank
        cnt[p] = nh + ni
        _pad_gather_row(ent, p, nh + ni, far, cap)


class ImageCodedList:
    """What the full lists of the fast path share (:class:`FullNeighborList` here, the triclinic
    :class:`~diffsim.md.tricells.TriclinicFullList`): row p of ``nbr`` holds the entries
    ``j << 6 | image code`` of atom ``atoms[p]``, ``nhome[p]`` from the front (code ``HOME``),
    ``nimage[p]`` through a periodic image from the back; ``tilted`` (a class constant) says how
    the gather kernels turn a code into a shift (lattice vectors a, b, c, or box edges)."""

    tilted = False
    direct = False  # the build writes the gather's rows itself (see FullNeighborList)

    @property
    def serial(self) -> bool:
        """Whether the bookkeeping loops run on the launching thread (:func:`serial_loops`)."""
        return serial_loops(self.n)

    def rows(self):
        """{atom i: its list entries ``j << 6 | image code`` (int array)} (for tests and inspection)."""
        atoms = self.atoms.to_numpy()
        nh, ni, cap = self.nhome.to_numpy(), self.nimage.to_numpy(), self.capacity
        if not self.direct:
            nbr = self.nbr.to_numpy()
            return {int(atoms[p]): np.concatenate([nbr[p, :nh[p]], nbr[p, cap - ni[p]:]]) for p in range(self.n)}
        n = self.n
        nbr = self.ent.to_numpy().reshape(n, cap)  # the gather's rows, written by the build
        # entries are sorted indices q (atom atoms[q]) and ghost slots, which are in sorted order too
        owner = atoms[np.repeat(np.arange(n), self.gcount.to_numpy())].astype(np.int64)  # each slot's atom
        gcode = self.gcode.to_numpy()
        out = {}
        for p in range(n):
            e = nbr[p, :nh[p] + ni[p]].astype(np.int64)
            g = np.maximum(e - n, 0)
            home = atoms[np.minimum(e, n - 1)].astype(np.int64)
            out[int(atoms[p])] = np.where(e < n, (home << CODE_BITS) | HOME, (owner[g] << CODE_BITS) | gcode[g])
        return out

    def pairs(self) -> np.ndarray:
        """Listed pairs (m, 2), i < j, sorted, each once (for tests)."""
        out = {(min(i, int(c) >> CODE_BITS), max(i, int(c) >> CODE_BITS)) for i, row in self.rows().items()
               for c in row}
        return np.array(sorted(out), dtype=np.int64).reshape(-1, 2)

    def _make_ghosts(self, types):
        """The gather's form of the list (after each build): ``ent`` (n * capacity,) flat rows of
        plain indices into ``xg`` (row p from p * capacity: n atoms, then one ghost slot per atom
        and image code some row sees it through; with ``direct`` the build has written them and
        placed the slots from positions), ``cnt`` entries each, then pads (:data:`GATHER_PAD`);
        ``gbase``, ``gcount``, ``gcode`` place each atom's ghosts, ``gtypes`` the types of atoms
        and ghosts. A flat row, read by an index that is the loop's own counter, lets LLVM load
        eight entries at once (a 2-D row p, q is read at p * capacity + q in int32, which it
        cannot prove free of overflow, so it read each entry alone: 10-12 % of the gather). The gather kernels refresh ``xg`` from the positions
        (:func:`~diffsim.md.gather.refresh_atom`), so every neighbour is a plain index and the
        image ones join the vectorised loop (they used to run in its scalar remainder: 9 % of the
        pairs, a quarter of the time at N = 32,000)."""
        n, cap = self.n, self.capacity
        if not self.direct:  # else the build has placed the slots (_ghost_slots) and written the rows
            if getattr(self, "ent", None) is None or self.ent.shape != (n * cap,):
                self.ent = ti.ndarray(ti.i32, n * cap)
                self.cnt = ti.ndarray(ti.i32, n)
                self.gmask = ti.ndarray(ti.i32, n)
                self.gbase = ti.ndarray(ti.i32, n)
                self.gcount = ti.ndarray(ti.i32, n)
            if getattr(self, "row_of", None) is None:  # the triclinic list's (the others' sort makes it)
                self.row_of = ti.ndarray(ti.i32, n)
            _ghost_masks(self.nbr, self.nimage, self.atoms, self.row_of, self.gmask)
            self._ghost_slots()
        room = self.gcode.shape[0]
        if getattr(self, "xg", None) is None or self.xg.shape[0] != n + room + 1:
            self.gtypes = ti.ndarray(ti.i32, n + room + 1)
            # the lagged step kernel (diffsim.md.step) gathers from xg and refreshes xg_next
            self.xg, self.xg_next = (ti.ndarray(config().real, (n + room + 1, 3)) for _ in range(2))
        # the far slot, the pads' (GATHER_PAD): farther than 3 sqrt(3) times the cell's edges and
        # tilts plus a list radius from every point within a list radius of the cell
        reach = float(np.abs(self.box_np).sum()) + self.rl
        if self.tilted:
            reach += float(np.abs(self.tilt_np).sum())
        launch_kernel(_ghost_types, types, self.atoms, self.gbase, self.gcount, self.gtypes, self.xg, self.xg_next,
                      -4.0 * reach, self.serial)
        if not self.direct:
            _ghost_rows(self.nbr, self.nhome, self.nimage, self.gmask, self.gbase, self.row_of, self.far_slot(),
                        self.ent, self.cnt)

    def far_slot(self) -> int:
        """Index in ``xg`` of the far slot, the last (after n atoms and the ghost slots' room),
        which pads the gather's rows (:data:`GATHER_PAD`)."""
        return self.n + self.gcode.shape[0]

    def _ghost_slots(self):
        """Number the ghost slots of the codes in ``gmask`` (gbase, gcount, gcode; ``ghosts``: how
        many), growing gcode as needed."""
        while True:
            room = 0 if getattr(self, "gcode", None) is None else self.gcode.shape[0]
            if room:
                total = int(launch_kernel(_ghost_index, self.gmask, self.gbase, self.gcount, self.gcode))
                if total <= room:
                    break
            else:
                total = self.n // 2 + 16
            self.gcode = ti.ndarray(ti.i32, int(total * 1.2) + 16)
        self.ghosts = total

    def max_displacement(self, x, slot) -> float:
        """Largest distance an atom of ``x[slot]`` moved since the last build (inf if any is
        NaN or Inf); the list holds every pair within the cutoff while this is <= skin/2."""
        return float(np.sqrt(max_displacement_sq(x, slot, self.ref)))

    def volume(self) -> float:
        """Volume of the cell (length^3): lx ly lz, tilted or not."""
        return float(np.prod(self.box_np))


class FullNeighborList(ImageCodedList):
    """Full Verlet list (both (i, j) and (j, i)) of pairs within ``cutoff + skin`` for one
    periodic orthorhombic ``box`` (3,) (length unit of the model); wraps positions in place.

    After :meth:`build`: row p of ``nbr`` (n, capacity) int32 holds the neighbours of atom
    ``atoms[p]`` (the p-th in cell order, so rows are written and read in sequence), ``nhome[p]``
    in the home box and ``nimage[p]`` seen through a periodic image (about a tenth at N =
    32,000). With method "full" the entries are ``j << 6 | image code``, the home ones (code
    ``HOME``) from the front, the others from the back. With "half" (``direct``) the build
    writes the gather's rows instead, into ``ent`` (n * capacity,) (row p from p * capacity;
    ``nbr`` is then only the scratch of :meth:`half_list` and :meth:`tape_lists`, made when
    first used): ``cnt[p]`` entries from the front in search order, a home neighbour as its atom
    index j, one through an image as its ghost slot ``n + gbase[j] + k`` (k: the rank of the
    code among the bits of ``gmask[j]``, the codes through which atom j can be seen, set from its
    position before the search), then pads (:data:`GATHER_PAD`); :meth:`rows` decodes either form. ``image`` (n, 3) int32 counts
    box crossings since the last :meth:`unwrap`.

    method: "half" tests each pair once and writes it to both rows, in one serial task per slab
    of cells along x (two launches, so that no two tasks write one row); about 1.6x faster on the
    CPU, where there are few threads. "full" lets every atom test all its candidates, in
    parallel over atoms (GPUs). "auto": "full" on a GPU, else "half". tasks: slabs per "half"
    launch, at most a quarter of the cell columns along x (default: an even number up to 16,
    independent of the thread count, so results are bitwise the same with any thread count).
    """

    def __init__(self, n, cutoff, skin, box, capacity=None, method="auto", tasks=None):
        self.n, self.cutoff, self.skin = int(n), float(cutoff), float(skin)
        box = np.asarray(box, dtype=np.float64).reshape(-1)
        self.rl = self.cutoff + self.skin
        if box.shape != (3,) or not np.all(box >= 2.5 * self.rl):
            raise ConfigError(f"FullNeighborList needs a periodic box of at least 2.5 x {self.rl:.4g} per axis, "
                              f"got {box}")
        if self.n >= 1 << (31 - CODE_BITS):
            raise ConfigError(f"FullNeighborList holds at most {1 << (31 - CODE_BITS)} atoms, got {self.n}")
        if method == "auto":
            method = "full" if config().arch in ("cuda", "vulkan", "metal") else "half"
        if method not in ("full", "half"):
            raise ConfigError(f"method must be 'auto', 'full' or 'half', got {method!r}")
        self.method = method
        # "half" writes the gather's rows itself: home neighbours as atom indices, those through an
        # image as ghost slots placed beforehand from each atom's position (_image_mask)
        self.direct = method == "half"
        real = config().real
        self.box = ti.ndarray(real, 3)
        self.nc = ti.ndarray(ti.i32, 3)
        self.nc_np = None
        self._tasks_asked = tasks
        self._grid(box)
        self.cell_of = ti.ndarray(ti.i32, self.n)
        self.atoms = ti.ndarray(ti.i32, self.n)
        self.xs = ti.ndarray(real, (self.n, 3))
        self.ref = ti.ndarray(real, (self.n, 3))
        self.image = ti.ndarray(ti.i32, (self.n, 3))
        self.nhome = ti.ndarray(ti.i32, self.n)
        self.nimage = ti.ndarray(ti.i32, self.n)
        self.cnt = ti.ndarray(ti.i32, self.n)
        self.gmask = ti.ndarray(ti.i32, self.n)
        self.gbase = ti.ndarray(ti.i32, self.n)
        self.gcount = ti.ndarray(ti.i32, self.n)
        self.row_of = ti.ndarray(ti.i32, self.n)
        if capacity is None:
            density = self.n / float(np.prod(box))
            capacity = int(1.2 * density * 4.0 / 3.0 * np.pi * self.rl ** 3) + 16
        self._alloc(min(int(capacity), max(self.n - 1, 1)))
        self.builds = 0
        self.max_count = 0

    def _grid(self, box):
        """Set the box and the cell grid for it (the cell arrays are reallocated when the number of
        cells changes)."""
        self.box_np = box
        self.box.from_numpy(box.astype(config().numpy_real))
        # columns of half the list radius in x and y; thin cells (an eighth) along z, scanned as
        # one contiguous window per column
        nc = np.floor(box / (self.rl * np.array([0.5, 0.5, 0.125]))).astype(np.int32)
        if self.nc_np is not None and np.array_equal(nc, self.nc_np):
            return
        self.nc_np = nc
        self.nc.from_numpy(nc)
        ncell = int(np.prod(nc))
        self.count = ti.ndarray(ti.i32, ncell)
        self.start = ti.ndarray(ti.i32, ncell)
        self.fill = ti.ndarray(ti.i32, ncell)
        nblock = -(-ncell // SCAN_BLOCK)
        self._block_total = ti.ndarray(ti.i32, nblock)
        self._block_offset = ti.ndarray(ti.i32, nblock)
        self._slabs = self._slab_tasks(self._tasks_asked)

    def rebox(self, box):
        """Change the box to ``box`` (3,) (length; a barostat's rescaling) and the cell grid with
        it; positions are not touched. Call :meth:`build` before the next force evaluation."""
        box = np.asarray(box, dtype=np.float64).reshape(-1)
        if box.shape != (3,) or not np.all(box >= 2.5 * self.rl):
            raise ConfigError(f"the box shrank to {box}, below 2.5 list radii ({2.5 * self.rl:.4g}) per axis: the "
                              "fast neighbour list cannot hold it; simulate more atoms or use a shorter cutoff")
        self._grid(box)

    def _slab_tasks(self, tasks):
        """Cell ranges of the two "half" launches: slab interiors, then the two columns at each
        slab's upper end, whose atoms also write rows of the next slab's first two columns.
        An atom in column c writes rows in columns c..c+2, so with slabs at least four columns
        wide no two tasks of one launch share a row."""
        ncx = int(self.nc_np[0])
        if tasks is None:
            # an even number up to 16, whatever the thread count, so that row order (and hence
            # every force sum) is the same on any machine
            tasks = max(1, min(ncx // 4, 16) // 2 * 2)
        k = max(1, min(int(tasks), ncx // 4))
        self.tasks = k
        per_column = int(self.nc_np[1] * self.nc_np[2])
        edges = [i * ncx // k for i in range(k + 1)]
        interior = [(edges[i] * per_column, (edges[i + 1] - 2) * per_column) for i in range(k)]
        strips = [((edges[i + 1] - 2) * per_column, edges[i + 1] * per_column) for i in range(k)]
        out = []
        for ranges in (interior, strips):
            lo, hi = (ti.ndarray(ti.i32, k) for _ in range(2))
            lo.from_numpy(np.array([r[0] for r in ranges], dtype=np.int32))
            hi.from_numpy(np.array([r[1] for r in ranges], dtype=np.int32))
            out.append((lo, hi))
        return out

    def _alloc(self, capacity):
        if self.n * capacity >= 2 ** 31:  # Taichi 1.7.4 counts ndarray elements in int32
            raise ConfigError(f"a neighbour list of {self.n} atoms x {capacity} neighbours is beyond 2^31 entries: "
                              "use a shorter cutoff or skin, or fewer atoms")
        self.capacity = capacity
        self._nbr = None  # made when first used (the nbr property)
        self.ent = None  # the gather's rows: made by the next build ("half") or _make_ghosts ("full")

    @property
    def nbr(self):
        """(n, capacity) int32: the rows of method "full", or the scratch of :meth:`half_list`
        and :meth:`tape_lists` (with "half" the build writes ``ent``; see the class doc)."""
        if self._nbr is None:
            self._nbr = ti.ndarray(ti.i32, (self.n, self.capacity))
        return self._nbr

    def build(self, x, slot):
        """Wrap ``x[slot]`` into the box (counting crossings in ``image``) and rebuild the list."""
        if x.shape[1] != self.n:
            raise ConfigError(f"neighbour list is for {self.n} atoms, positions have {x.shape[1]}")
        self._sort(x, slot, wrap=True)
        if self.direct:
            self._ghost_slots()
        most = self._fill()
        if most > self.capacity:
            self._alloc(int(most * 1.2) + 8)
            most = self._fill()
        self.max_count = most
        launch_kernel(copy_positions, x, slot, self.ref, self.serial)
        self.builds += 1

    def _sort(self, x, slot, wrap):
        serial = self.serial
        launch_kernel(_zero, self.count, serial)
        bad = int(launch_kernel(_wrap_and_bin, x, slot, self.image, self.box, self.nc, self.cell_of, self.count,
                                binnable_boxes(), wrap, serial))
        if bad < self.n:
            xi = x.to_numpy()[slot, bad].astype(np.float64)
            raise UnbinnableAtom(bad, xi, self.box_np)
        _exclusive_scan(self.count, self.start, self.fill, self._block_total, self._block_offset, serial)
        launch_kernel(_scatter, self.cell_of, self.fill, self.atoms, serial)
        launch_kernel(_sort_cells, x, slot, self.start, self.count, self.atoms, self.xs, self.box, self.rl, self.gmask,
                      self.row_of, serial)

    def half_list(self, x, slot, nbr, nnb) -> int:
        """The tape's list from ``x[slot]``, left unwrapped: each pair within the list radius
        once, row i of ``nbr`` holding ``nnb[i]`` plain atom indices (any order of i and j).
        Returns the largest row length; rows longer than ``nbr`` holds are cut (call again
        with a larger ``nbr``). Uses (and overwrites) this list's own rows as scratch: build
        again before gathering over it."""
        self._sort(x, slot, wrap=False)
        while True:
            most = int(_half_rows(self.xs, self.box, self.nc, self.cell_of, self.start, self.count, self.atoms,
                                  self.rl * self.rl, self.nbr, self.nhome, self.nimage, nbr, nnb))
            if most <= self.capacity:
                return most
            self._alloc(int(most * 1.2) + 8)

    def tape_lists(self, x, slot, ref, nbr, nnb, full, nfull):
        """:meth:`half_list` into (``nbr``, ``nnb``) and its full twin into (``full``, ``nfull``)
        (:func:`~diffsim.md.neighbors._mirror`'s rows), ``ref`` = x[slot], in one launch
        (:func:`_tape_lists`); returns (longest half row, longest full row). The half list is cut
        where a row outgrows ``nbr`` (call again with larger arrays), the full one not made then."""
        while True:
            most, most_full, bad = (int(v) for v in launch_kernel(_tape_lists,
                x, slot, self.box, self.nc, binnable_boxes(), self.cell_of, self.count, self.start, self.fill,
                self.atoms, self.xs, ref, self.rl * self.rl, self.nbr, self.nhome, self.nimage, nbr, nnb, full,
                nfull))
            if bad < self.n:
                raise UnbinnableAtom(bad, x.to_numpy()[slot, bad].astype(np.float64), self.box_np)
            if most <= self.capacity:
                return most, most_full
            self._alloc(int(most * 1.2) + 8)

    def _fill(self) -> int:
        cells = (self.xs, self.box, self.nc, self.cell_of, self.start, self.count, self.atoms, self.rl * self.rl)
        if self.method == "full":
            _build_full(*cells, self.nbr, self.nhome, self.nimage)
        else:
            launch_kernel(_zero, self.nhome, self.serial)
            launch_kernel(_zero, self.nimage, self.serial)
            if getattr(self, "_hits", None) is None or self._hits.shape != (self.tasks, self.capacity):
                self._hits = ti.ndarray(ti.i32, (self.tasks, self.capacity))
            if self.ent is None:
                self.ent = ti.ndarray(ti.i32, self.n * self.capacity)
            for lo, hi in self._slabs:
                launch_kernel(_build_half, *cells, self.ent, self.nhome, self.nimage, lo, hi, self._hits, self.gmask,
                              self.gbase)
            return int(launch_kernel(_row_split, self.nhome, self.nimage, self.cnt, self.ent, self.far_slot(),
                                     self.serial))
        return int(_row_max(self.nhome, self.nimage, self.cnt))

    def unwrap(self, x, slot):
        """Add the counted box crossings back: ``x[slot]`` becomes continuous (unwrapped) again."""
        _unwrap(x, slot, self.image, self.box)

    def offsets_np(self) -> np.ndarray:
        """(n, 3) what :meth:`unwrap` would add: the counted box crossings times the box."""
        return self.image.to_numpy() * self.box_np

    def whole_cells_np(self, x) -> np.ndarray:
        """(n, 3) the whole boxes to take off positions ``x`` (n, 3) to bring them into the box."""
        return np.floor(x / self.box_np) * self.box_np

    def rescale(self, mu):
        """Scale the box by ``mu`` (a barostat; :meth:`rebox`)."""
        self.rebox(self.box_np * mu)
