"""One launch per MD step on the forward-only path: the kick-drift of every atom, then, unless
the neighbour list must be rebuilt first, the gather forces at the new positions.

A Taichi launch costs about 0.1 ms on the CPU; at N = 4,000 the two kernels of a step
(:func:`~diffsim.md.integrators.md_kick_drift`, the pair gather) run for less than that each,
so a step paid mostly for launches. This kernel runs both loops in one launch; the second
loop is skipped when the largest displacement of the first reaches ``limit2`` (the list's
rebuild test, or a blow-up), and the caller then rebuilds and gathers separately.
"""

import taichi as ti

from ..compat import launch_kernel
from .gather import make_gather_row, refresh_atom
from .integrators import kick_drift_atom
from .potentials import _PAIR_FUNCS

_A1 = ti.types.ndarray(ndim=1)
_A2 = ti.types.ndarray(ndim=2)
_A3 = ti.types.ndarray(ndim=3)


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


_KERNELS = {}


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
