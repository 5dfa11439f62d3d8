"""The tape's MD step fused with its pair forces: one launch per step forward and one backward.

Where the force field is one pair potential gathered over the full list (the CPU tape, see
:class:`~diffsim.md.potentials.GatheredPair`), a step's work is per atom once the positions of
every atom are known: atom i gathers its force f_s,i at x_s, takes the closing half-kick of the
step that ended at s, v_s,i += a f_s,i (a = dt/2 ftm / m_i), and drifts to slot s + 1 as
:func:`~diffsim.md.integrators.md_close_drift` does. A segment of m steps from slot 0 is then

    F_0 = drift(0 -> 1)                     (f_0 is part of the state at the segment start)
    F_k = gather(k); kick(k); drift(k -> k+1)    k = 1 .. m-1
    F_m = gather(m); kick(m)

with the neighbour-list check between launches (the drift also returns the largest squared
displacement from the list's reference positions: :meth:`MDSystem._check`), m + 1 launches where
the separate kernels take 2 m + 1 (a launch with ~20 array arguments costs ~0.15 ms here).

The adjoint of a gather is a gather over the same full list (:mod:`diffsim.md.pair_adjoint`),
which reads the force adjoints fb_s,j of every neighbour; the drift adjoint writes fb_s,i. So the
adjoint launches are shifted by one half step: the adjoint launch of F_k is the pair adjoint at
slot k + 1 (reading fb_k+1, complete since the adjoint of F_k+1 ran) followed, per atom, by the
adjoint of the kick and drift of F_k (reading the xb_k+1,i the pair adjoint just added);
F_m's is the kick's alone, fb_m,i += a vb_m,i. The neighbour list the adjoint of F_k needs is
the one of the gather in F_k+1, which the system's adjoint-only list restore placed between F_k
and F_k+1 makes current. The adjoints of the slot s + 1 elements a step writes are not cleared
(nothing reads them: the tape zeroes a unit's slots before its adjoint sweep), unlike Taichi's
autodiff of a store; every value read is the same as the separate kernels' (tests/md/test_md_pair_step.py).
"""

import taichi as ti

from .integrators import C1, C2, DT, FTM, KT, _drift
from .pair_adjoint import JETS, make_adjoint_row
from .potentials import _PAIR_FUNCS, make_full_row

_A1 = ti.types.ndarray(ndim=1)
_A2 = ti.types.ndarray(ndim=2)
_A3 = ti.types.ndarray(ndim=3)


def _make_step(pair):
    full_row = make_full_row(pair)

    @ti.kernel
    def pair_step(x: _A3, v: _A3, f: _A3, pe: _A2, vir: _A3, disp: _A3, inv_m: _A1, cs: _A1, mode: ti.i32,
                  seed: ti.i32, t: ti.i32, s: ti.i32, gather: ti.i32, kick: ti.i32, drift: ti.i32,
                  track: ti.template(), tensor: ti.template(), tdisp: ti.i32, types: _A1, boxes: _A2,
                  tilted: ti.template(), pidx: _A2, nbr: _A2, nnb: _A1, p0: _A2, p1: _A2, p2: _A2, rc: _A1,
                  shift: ti.template(), multi: ti.template(), ref: _A2) -> ti.f64:
        """With ``gather``, f[s] (and with ``track`` pe[s], vir[s]) assigned from the full list; with
        ``kick`` v[s] += a f[s]; with ``drift`` the drift of :func:`md_close_drift` from slot s to
        s + 1. Returns the largest squared displacement of x[s + 1] from ``ref`` (inf for NaN; 0
        without ``drift``)."""
        most = 0.0
        for i in range(x.shape[1]):
            dt = cs[DT]
            a = 0.5 * dt * cs[FTM] * inv_m[i]
            fi = ti.Vector([f[s, i, 0], f[s, i, 1], f[s, i, 2]])
            if gather != 0:
                fg, ei, w = full_row(i, x, s, 0, boxes, tilted, types, pidx, nbr, nnb, p0, p1, p2, rc, shift, multi)
                fi = fg
                for k in ti.static(range(3)):
                    f[s, i, k] = fg[k]
                if ti.static(track):
                    pe[s, i] = 0.5 * ei
                    if ti.static(tensor):
                        for q in ti.static(range(6)):
                            vir[s, i, q] = 0.5 * w[q]
                    else:
                        vir[s, i, 0] = 0.5 * (w[0] + w[1] + w[2])
            if kick != 0:
                for k in ti.static(range(3)):
                    v[s, i, k] += a * fi[k]
            if drift != 0:
                sv = ti.sqrt(cs[KT] * cs[FTM] * inv_m[i])
                d2 = 0.0
                for k in ti.static(range(3)):
                    dx, vn = _drift(v[s, i, k] + a * fi[k], dt, mode, cs[C1], cs[C2] * sv, seed, t, 3 * i + k)
                    xn = x[s, i, k] + dx
                    x[s + 1, i, k] = xn
                    v[s + 1, i, k] = vn
                    if tdisp != 0:
                        disp[s + 1, i, k] = disp[s, i, k] + dx
                    d = xn - ref[i, k]
                    d2 += d * d
                if not d2 < 1e300:  # NaN compares false
                    d2 = ti.math.inf
                ti.atomic_max(most, d2)
        return most

    return pair_step


def _make_step_adjoint(jet):
    adjoint_row = make_adjoint_row(jet)

    @ti.kernel
    def pair_step_adjoint(x: _A3, s: ti.i32, pair: ti.i32, drift: ti.i32, close: ti.i32, inv_m: _A1, cs: _A1,
                          mode: ti.i32, track: ti.template(), tensor: ti.template(), tdisp: ti.i32, types: _A1,
                          boxes: _A2, tilted: ti.template(), pidx: _A2, nbr: _A2, nnb: _A1, p0: _A2, p1: _A2,
                          p2: _A2, rc: _A1, shift: ti.template(), multi: ti.template(), xb: _A3, vb: _A3,
                          fb: _A3, peb: _A2, virb: _A3, dispb: _A3, p0b: _A2, p1b: _A2, p2b: _A2):
        """Per atom: with ``pair`` the pair adjoint at slot s (into xb[s] and the parameter rows);
        then with ``drift`` the adjoint of the drift from slot s - 1 to s (``close``: preceded by
        the kick v[s - 1] += a f[s - 1]), as :func:`md_close_drift_adjoint` without its clears, or
        without ``drift`` the adjoint of the kick v[s] += a f[s]: fb[s] += a vb[s]."""
        for i in range(x.shape[1]):
            dt = cs[DT]
            a = 0.5 * dt * cs[FTM] * inv_m[i]
            xbar = ti.Vector([0.0, 0.0, 0.0])
            if pair != 0:
                xbar = adjoint_row(i, x, s, fb, s, peb, virb, s, track, types, 0, boxes, tilted, pidx, nbr, nnb,
                                   p0, p1, p2, rc, shift, multi, tensor, p0b, p1b, p2b)
            if drift != 0:
                c1 = cs[C1]
                for k in ti.static(range(3)):
                    dxb = xb[s, i, k] + xbar[k]
                    xb[s, i, k] = dxb
                    xb[s - 1, i, k] += dxb
                    if tdisp != 0:
                        db = dispb[s, i, k]
                        dxb += db
                        dispb[s - 1, i, k] += db
                    vnb = vb[s, i, k]
                    vhb = dt * dxb + vnb
                    if mode == 1:
                        vhb = 0.5 * dt * dxb + c1 * (vnb + 0.5 * dt * dxb)
                    vsb = vb[s - 1, i, k] + vhb
                    vb[s - 1, i, k] = vsb
                    fk = a * vhb
                    if close != 0:
                        fk += a * vsb
                    fb[s - 1, i, k] += fk
            else:
                for k in ti.static(range(3)):
                    xb[s, i, k] += xbar[k]
                    fb[s, i, k] += a * vb[s, i, k]

    return pair_step_adjoint


_KERNELS = {}


def _kernels(kind):
    if kind not in _KERNELS:
        _KERNELS[kind] = (_make_step(_PAIR_FUNCS[kind]), _make_step_adjoint(JETS[kind]))
    return _KERNELS[kind]


class PairStep:
    """A 'kernel' for :func:`diffsim.tape.launch`: one launch F_k of the module doc forward (slot
    ``s``: ``gather`` the forces, ``kick``, ``drift`` to s + 1) and, as its adjoint, the shifted
    adjoint launch (the pair adjoint at s + 1 when ``pair_after``, then the drift's adjoint; or,
    without ``drift``, the kick's). ``system``: the :class:`~diffsim.md.system.MDSystem` (its
    arrays and its one pair potential); ``x``: the tape's state slots. The forward stores the
    largest squared displacement in ``moved[0]`` (a Python list read by the list check)."""

    def __init__(self, system, x, s, t, gather, kick, drift, pair_after, moved):
        self.system, self.x, self.s, self.t = system, x, s, t
        self.gather, self.kick, self.drift, self.pair_after, self.moved = gather, kick, drift, pair_after, moved

    def _pair_args(self):
        sysm = self.system
        pot = sysm.ff.potentials[0]
        nl = sysm.ff.nlist
        nbr, nnb = nl.full_list()
        p0, p1, p2 = pot._row_parameters(sysm.n).rows
        return pot, (sysm.ff.types, nl.boxes, nl.triclinic, pot.pidx, nbr, nnb, p0, p1, p2, pot.rc, pot.shift,
                     pot.ntypes > 1)

    def __call__(self):
        sysm, x = self.system, self.x
        pot, pargs = self._pair_args()
        pe, vir, disp, _ = sysm._fields(x)
        types, boxes, tilted, pidx, nbr, nnb, p0, p1, p2, rc, shift, multi = pargs
        step = _kernels(pot.kind)[0]
        self.moved[0] = step(x.x, x.v, x.f, pe, vir, disp, sysm.inv_m, sysm.cs, sysm.integrator.mode,
                             int(getattr(sysm.integrator, "seed", 0)) & 0x7FFFFFFF, self.t, self.s, int(self.gather),
                             int(self.kick), int(self.drift), bool(sysm.track), sysm.virial_width == 6,
                             int(sysm.tdisp), types, boxes, tilted, pidx, nbr, nnb, p0, p1, p2, rc, shift, multi,
                             sysm.ff.nlist.ref)

    def grad(self):
        sysm, x = self.system, self.x
        pot, pargs = self._pair_args()
        types, boxes, tilted, pidx, nbr, nnb, p0, p1, p2, rc, shift, multi = pargs
        pe, vir, disp, _ = sysm._fields(x)
        track = bool(sysm.track)
        peb, virb = (pe.grad, vir.grad) if track else (pe, vir)  # not read without track
        dispb = disp.grad
        s = self.s + 1 if self.drift else self.s
        _kernels(pot.kind)[1](x.x, s, int(self.pair_after), int(self.drift), int(self.kick), sysm.inv_m, sysm.cs,
                              sysm.integrator.mode, track, sysm.virial_width == 6, int(sysm.tdisp), types, boxes,
                              tilted, pidx, nbr, nnb, p0, p1, p2, rc, shift, multi, x.x.grad, x.v.grad, x.f.grad,
                              peb, virb, dispb, p0.grad, p1.grad, p2.grad)
