"""Forward-only pair forces gathered over a full neighbour list (:mod:`diffsim.md.cells`), for
:meth:`MDSystem.simulate <diffsim.md.system.MDSystem.simulate>`: each atom sums its own force in
registers and writes it once (no atomics; not differentiable, TAICHI.md rule 1), with the pair
function and cutoff transform of the differentiable kernel and the shift constants of each type
pair precomputed in a table."""

import taichi as ti

from .cells import gather_length
from .terms import cutoff_shift

_A1 = ti.types.ndarray(ndim=1)
_A2 = ti.types.ndarray(ndim=2)
_A3 = ti.types.ndarray(ndim=3)


# columns of the gather table (one row per type pair): the parameters, the cutoff, and the
# energy and force factor at the cutoff (the shift constants)
T0, T1, T2, TRC, TEC, TSC = range(6)


def _make_table_kernel(pair):
    @ti.kernel
    def gather_table(p0: _A1, p1: _A1, p2: _A1, rc: _A1, table: _A2):
        for p in range(rc.shape[0]):
            e, g = pair(rc[p] * rc[p], p0[p], p1[p], p2[p])
            table[p, T0] = p0[p]
            table[p, T1] = p1[p]
            table[p, T2] = p2[p]
            table[p, TRC] = rc[p]
            table[p, TEC] = e
            table[p, TSC] = g

    return gather_table


@ti.func
def refresh_atom(i, q, x: ti.template(), s, xg: ti.template(), gbase: ti.template(), gcount: ti.template(),
                 gcode: ti.template(), box: ti.template(), tilted: ti.template()):
    """xg[q] = x[s, i] for atom i, the list's q-th in sorted order (xg is in that order, so that
    a row's neighbours lie close together in xg whatever the atoms' numbering), and its ghost slots
    (:meth:`~diffsim.md.cells.ImageCodedList._make_ghosts`): that position plus the lattice vector
    of each slot's image code, whole box edges (b0, b1, b2) or with ``tilted`` n0 a + n1 b + n2 c
    of the cell a = (b0, 0, 0), b = (xy, b1, 0), c = (xz, yz, b2)."""
    x0 = x[s, i, 0]
    x1 = x[s, i, 1]
    x2 = x[s, i, 2]
    xg[q, 0] = x0
    xg[q, 1] = x1
    xg[q, 2] = x2
    n = x.shape[1]
    for g in range(gbase[q], gbase[q] + gcount[q]):
        c = gcode[g]
        n0 = (c & 3) - 1
        n1 = ((c >> 2) & 3) - 1
        n2 = ((c >> 4) & 3) - 1
        if ti.static(tilted):
            xg[n + g, 0] = x0 + (n0 * box[0] + n1 * box[3] + n2 * box[4])
            xg[n + g, 1] = x1 + (n1 * box[1] + n2 * box[5])
            xg[n + g, 2] = x2 + n2 * box[2]
        else:
            xg[n + g, 0] = x0 + n0 * box[0]
            xg[n + g, 1] = x1 + n1 * box[1]
            xg[n + g, 2] = x2 + n2 * box[2]


def make_gather_row(pair):
    """Forward-only force on one atom from a full list (:mod:`diffsim.md.cells`): the atom sums
    its own force in registers and writes it once, so no atomics; not differentiable (TAICHI.md
    rule 1). The same pair function and shift arithmetic as the differentiable kernel above.
    A ``ti.func`` of (row, xg, s, f, pe, vir, assign, track, types, pidx, multi, atoms, ent, cnt,
    table, shift) that adds the force into f (assigns it with ``assign``), shared by the gather
    kernel and the one-launch step (:mod:`diffsim.md.step`). ``ent`` holds flat rows (row p from
    p * (ent.shape[0] // n)) of plain indices into ``xg`` (atoms, then ghost slots: periodic
    images, refreshed by :func:`refresh_atom`), so the loop has no image shifts and LLVM
    vectorises all of it (the loop is bound by fetching each neighbour's coordinates lane by
    lane; a separate loop over image entries ran scalar). Each row is read up to its padded
    length (:func:`~diffsim.md.cells.gather_length`): the pads point to the far slot, the last
    of ``xg``, farther than any cutoff from every atom, so they are masked like any pair beyond
    the cutoff (and add exact zeros)."""

    @ti.func
    def gather_row(row, xg: ti.template(), s, f: ti.template(), pe: ti.template(), vir: ti.template(),
                   assign: ti.template(), track: ti.template(), types: ti.template(), pidx: ti.template(),
                   multi: ti.template(), atoms: ti.template(), ent: ti.template(), cnt: ti.template(),
                   table: ti.template(), shift: ti.template()):
        # track, multi (several atom types) and shift are compile-time: each variant is its own
        # loop with the parameters in registers (per-pair ndarray loads and branches cost ~3x)
        i = atoms[row]  # rows in cell order (see FullNeighborList), as are xg and types
        ti_ = types[row]
        xi0 = xg[row, 0]
        xi1 = xg[row, 1]
        xi2 = xg[row, 2]
        f0 = 0.0
        f1 = 0.0
        f2 = 0.0
        ei = 0.0
        w0 = 0.0
        w1 = 0.0
        w2 = 0.0
        w3 = 0.0
        w4 = 0.0
        w5 = 0.0
        a0 = table[0, T0]
        a1 = table[0, T1]
        a2 = table[0, T2]
        rcp = table[0, TRC]
        ecp = table[0, TEC]
        scp = table[0, TSC]
        cap = ent.shape[0] // atoms.shape[0]
        # the entry's index is the loop counter itself, so LLVM loads 8 entries at once
        for q in range(row * cap, row * cap + gather_length(cnt[row], cap)):
            j = ent[q]
            d0 = xi0 - xg[j, 0]
            d1 = xi1 - xg[j, 1]
            d2 = xi2 - xg[j, 2]
            r2 = d0 * d0 + d1 * d1 + d2 * d2
            if ti.static(multi):
                p = pidx[ti_, types[j]]
                a0 = table[p, T0]
                a1 = table[p, T1]
                a2 = table[p, T2]
                rcp = table[p, TRC]
                ecp = table[p, TEC]
                scp = table[p, TSC]
            # every listed pair is evaluated and those beyond the cutoff (the pads among them)
            # are masked: no branch, so LLVM vectorises the loop (about 10 % faster than
            # skipping them; a mask on j = i for pads instead cost 40 %: LLVM then unrolled
            # the loop 4 times and spilled registers)
            e, g = pair(r2, a0, a1, a2)
            e, g = cutoff_shift(e, g, r2, rcp, ecp, scp, shift)  # e is only used with track
            inside = r2 < rcp * rcp
            g = ti.select(inside, g, 0.0)
            f0 += g * d0
            f1 += g * d1
            f2 += g * d2
            if ti.static(track):
                ei += ti.select(inside, e, 0.0)
                w0 += g * d0 * d0
                w1 += g * d1 * d1
                w2 += g * d2 * d2
                w3 += g * d0 * d1
                w4 += g * d0 * d2
                w5 += g * d1 * d2
        # atom i is this row's alone, so its sums are added with plain read-modify-writes (a
        # `+=` on an ndarray is atomic: a compare-and-swap loop per value, 2-5 % of the gather)
        if ti.static(assign):
            f[s, i, 0] = f0
            f[s, i, 1] = f1
            f[s, i, 2] = f2
        else:
            f[s, i, 0] = f[s, i, 0] + f0
            f[s, i, 1] = f[s, i, 1] + f1
            f[s, i, 2] = f[s, i, 2] + f2
        if ti.static(track):
            pe[s, i] = pe[s, i] + 0.5 * ei
            if vir.shape[2] == 6:
                vir[s, i, 0] = vir[s, i, 0] + 0.5 * w0
                vir[s, i, 1] = vir[s, i, 1] + 0.5 * w1
                vir[s, i, 2] = vir[s, i, 2] + 0.5 * w2
                vir[s, i, 3] = vir[s, i, 3] + 0.5 * w3
                vir[s, i, 4] = vir[s, i, 4] + 0.5 * w4
                vir[s, i, 5] = vir[s, i, 5] + 0.5 * w5
            else:  # the trace only (see add_virial)
                vir[s, i, 0] = vir[s, i, 0] + 0.5 * (w0 + w1 + w2)

    return gather_row


def _make_gather_kernel(pair):
    gather_row = make_gather_row(pair)

    @ti.kernel
    def pair_gather(x: _A3, s: ti.i32, f: _A3, pe: _A2, vir: _A3, track: ti.template(), xg: _A2, gbase: _A1,
                    gcount: _A1, gcode: _A1, box: _A1, tilted: ti.template(), types: _A1, pidx: _A2,
                    multi: ti.template(), atoms: _A1, ent: _A1, cnt: _A1, table: _A2, shift: ti.template(),
                    row_of: _A1):
        for i in range(x.shape[1]):
            refresh_atom(i, row_of[i], x, s, xg, gbase, gcount, gcode, box, tilted)
        for row in range(x.shape[1]):
            gather_row(row, xg, s, f, pe, vir, False, track, types, pidx, multi, atoms, ent, cnt, table, shift)

    return pair_gather
