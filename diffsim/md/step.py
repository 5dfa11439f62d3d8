"""One launch per MD step on the forward-only path, for a lone pair potential.

A Taichi launch costs about 0.1 ms on the CPU, and so does each parallel loop in it: the thread
pool's workers sleep between loops, and on these 2-core VMs waking one is a round trip through
the hypervisor (60-100 us; the second worker often joins a loop of a few hundred microseconds
late, or not at all). At N = 4,000 a step's work is about 0.6 ms, so the loops a step hands out
count. Two kernels:

- :func:`kick_drift_gather`: the kick-drift of every atom, then, unless the neighbour list must
  be rebuilt first, the gather forces at the new positions (two loops in one launch). Used where
  the forces are needed within the step (a thermostat, a frame, a barostat, the last step).
- :func:`gather_kick_drift`, the *lagged* step: one loop over the list's rows that gathers the
  forces at the current positions (left over from the previous launch), kicks and drifts the
  row's atom, and writes its new position to the other of the list's two position copies
  (``xg``/``xg_next``, so no row reads a position another row has moved). The forces at the
  new positions are left to the next launch; the runner gathers them itself before anything
  else needs them. The same sums as the first kernel, regrouped: trajectories are bitwise those
  of :func:`kick_drift_gather`. Used up to :data:`LAGGED_ATOMS`.
"""

import taichi as ti

from ..compat import launch_kernel
from .cells import serial_loops
from .gather import make_gather_row, refresh_atom
from .integrators import kick_drift_atom
from .potentials import _PAIR_FUNCS

_A1 = ti.types.ndarray(ndim=1)
_A2 = ti.types.ndarray(ndim=2)
_A3 = ti.types.ndarray(ndim=3)

#: the lagged step runs up to this many atoms. Side by side in one process (2 threads, 100-step
#: runs alternating, median M atom-steps/s): 4,000 atoms f64 4.63 lagged against 4.20, f32 4.58
#: against 4.26; 10,976 atoms 5.23 against 5.34; 32,000 atoms f32 5.34 against 5.38 (the lagged
#: loop reads and writes each row's atom out of the atoms' order, and keeps two position copies)
LAGGED_ATOMS = 8192


def _make_step_kernel(pair):
    gather_row = make_gather_row(pair)

    @ti.kernel
    def kick_drift_gather(x: _A3, v: _A3, f: _A3, ref: _A2, inv_m: _A1, cs: _A1, mode: ti.i32, seed: ti.i32,
                          t: ti.i32, src: ti.i32, dst: ti.i32, kicks: ti.i32, limit2: ti.f64, xg: _A2, gbase: _A1,
                          gcount: _A1, gcode: _A1, box: _A1, tilted: ti.template(), types: _A1, pidx: _A2,
                          multi: ti.template(), atoms: _A1, ent: _A1, cnt: _A1, table: _A2,
                          shift: ti.template(), row_of: _A1) -> ti.f64:
        most = 0.0
        for i in range(x.shape[1]):
            ti.atomic_max(most, kick_drift_atom(i, x, v, f, f, f, ref, inv_m, cs, mode, seed, t, src, dst, kicks, 0))
            refresh_atom(i, row_of[i], x, dst, xg, gbase, gcount, gcode, box, tilted)
        for row in range(x.shape[1]):
            if most < limit2:  # the force is assigned (so not zeroed above); f stands in for pe and vir
                gather_row(row, xg, dst, f, f, f, True, False, types, pidx, multi, atoms, ent, cnt, table, shift)
            else:  # the caller rebuilds and adds the forces
                for k in ti.static(range(3)):
                    f[dst, row, k] = 0.0
        return most

    return kick_drift_gather


def _make_lagged_kernel(pair):
    gather_row = make_gather_row(pair)

    @ti.kernel
    def gather_kick_drift(x: _A3, v: _A3, f: _A3, ref: _A2, inv_m: _A1, cs: _A1, mode: ti.i32, seed: ti.i32,
                          t: ti.i32, s: ti.i32, kicks: ti.i32, pending: ti.i32, xg: _A2, xg_next: _A2, gbase: _A1,
                          gcount: _A1, gcode: _A1, box: _A1, tilted: ti.template(), types: _A1, pidx: _A2,
                          multi: ti.template(), atoms: _A1, ent: _A1, cnt: _A1, table: _A2,
                          shift: ti.template()) -> ti.f64:
        most = 0.0
        for row in range(x.shape[1]):
            i = atoms[row]
            if pending:  # the forces at x[s] (in xg) are still to be gathered; f stands in for pe and vir
                gather_row(row, xg, s, f, f, f, True, False, types, pidx, multi, atoms, ent, cnt, table, shift)
            ti.atomic_max(most, kick_drift_atom(i, x, v, f, f, f, ref, inv_m, cs, mode, seed, t, s, s, kicks, 0))
            refresh_atom(i, row, x, s, xg_next, gbase, gcount, gcode, box, tilted)
        return most

    return gather_kick_drift


@ti.kernel
def refresh_positions(x: _A3, s: ti.i32, xg: _A2, gbase: _A1, gcount: _A1, gcode: _A1, box: _A1,
                      tilted: ti.template(), row_of: _A1, serial: ti.template()):
    """xg := x[s] in the list's order, ghost slots included (:func:`~diffsim.md.gather.refresh_atom`)."""
    ti.loop_config(serialize=serial)
    for i in range(x.shape[1]):
        refresh_atom(i, row_of[i], x, s, xg, gbase, gcount, gcode, box, tilted)


_KERNELS = {}
_LAGGED = {}


def kick_drift_gather(potential, ff, cells, x, v, f, inv_m, cs, mode, seed, t, src, dst, kicks, limit2) -> float:
    """Kick-drift from slot src to dst, then the forces of the one pair ``potential`` of force
    field ``ff`` into f[dst] if the largest squared displacement from the list's reference
    positions is below ``limit2``. Returns that squared displacement (inf if any is NaN); the
    forces were computed exactly when it is below ``limit2``."""
    if potential.kind not in _KERNELS:
        _KERNELS[potential.kind] = _make_step_kernel(_PAIR_FUNCS[potential.kind])
    # through compat.launch_kernel: Taichi's own call spends ~0.1 ms a step checking these 28 arguments
    return launch_kernel(_KERNELS[potential.kind], x, v, f, cells.ref, inv_m, cs, mode, seed, t, src, dst, kicks,
                         float(limit2), *potential.gather_args(ff, cells))


def gather_kick_drift(potential, ff, cells, x, v, f, inv_m, cs, mode, seed, t, s, kicks, pending) -> float:
    """The lagged step (see the module doc) of the one pair ``potential`` of force field ``ff``, in
    place in slot ``s``: if ``pending``, the forces at x[s] into f[s] from the list's position copy
    ``cells.xg``; then ``kicks`` half-kicks with f[s] and the drift, the new positions into x[s] and
    ``cells.xg_next``, which then becomes ``cells.xg``. Returns the largest squared displacement from
    the list's reference positions (inf if any is NaN); at or beyond the list's rebuild limit the
    caller rebuilds the list and then :func:`leave_pending` (f[s] still holds the forces before
    the drift, which the next launch overwrites)."""
    if potential.kind not in _LAGGED:
        _LAGGED[potential.kind] = _make_lagged_kernel(_PAIR_FUNCS[potential.kind])
    args = potential.gather_args(ff, cells)  # first: it remakes the list's gather form after a build
    xg, xg_next = cells.xg, cells.xg_next
    moved2 = launch_kernel(_LAGGED[potential.kind], x, v, f, cells.ref, inv_m, cs, mode, seed, t, s, kicks,
                           int(pending), xg, xg_next, *args[1:14])
    cells.xg, cells.xg_next = xg_next, xg
    return moved2


def leave_pending(potential, ff, cells, x, s):
    """After a build of ``cells`` from x[s]: copy x[s] into the list's ``xg`` (its new order and
    ghost slots), so that the next :func:`gather_kick_drift` gathers the forces at x[s] itself
    (``pending``) instead of a separate gather launch now."""
    args = potential.gather_args(ff, cells)  # remakes the list's gather form after the build
    launch_kernel(refresh_positions, x, s, *args[:6], args[14], serial_loops(cells.n))
