"""The tape's MD steps fused with their pair forces: a few steps per launch forward and backward.

Where the force field is one pair potential gathered over the full list (the CPU tape, see
:class:`~diffsim.md.potentials.GatheredPair`), a step's work is per atom once the positions of
every atom are known: atom i gathers its force f_s,i at x_s, takes the closing half-kick of the
step that ended at s, v_s,i += a f_s,i (a = dt/2 ftm / m_i), and drifts to slot s + 1 as
:func:`~diffsim.md.integrators.md_close_drift` does. A segment of m steps from slot 0 is then the
m + 1 sub-steps

    F_0 = drift(0 -> 1)                     (f_0 is part of the state at the segment start)
    F_k = gather(k); kick(k); drift(k -> k+1)    k = 1 .. m-1
    F_m = gather(m); kick(m)

each one parallel loop over atoms, :data:`STEPS_PER_LAUNCH` of them per launch (a launch with
~30 arguments costs ~0.2 ms here, the separate kernels took 2 launches per step): a loop also
reduces the largest squared displacement from the list's reference positions, and a launch ends
after a sub-step that needs the list rebuilt (:meth:`MDSystem._check
<diffsim.md.system.MDSystem._check>` runs after every drift, on those displacements).

The adjoint of a gather is a gather over the same full list (:mod:`diffsim.md.pair_adjoint`),
which reads the force adjoints fb_s,j of every neighbour; the drift adjoint writes fb_s,i. So the
adjoint sub-steps are shifted by half a step: A_k (k < m) is the pair adjoint at slot k + 1
(reading fb_k+1, complete once A_k+1 ran) followed, per atom, by the adjoint of the kick and
drift of F_k (reading the xb_k+1,i the pair adjoint just added); A_m is the kick's alone,
fb_m,i += a vb_m,i. They run in the order A_m .. A_0, several per launch where their pair
adjoints use one list (that of the gather in F_k+1, restored by :meth:`MDSystem._ensure
<diffsim.md.system.MDSystem._ensure>` before the group). The adjoints of the slot s + 1 elements
a step writes are not cleared (nothing reads them: the tape zeroes a unit's slots before its
adjoint sweep), unlike Taichi's autodiff of a store; every value read is the separate kernels'
(tests/md/test_md_pair_step.py: the same bits).
"""

import taichi as ti

from ..compat import launch_kernel
from .integrators import C1, C2, DT, FTM, KT, _drift
from .pair_adjoint import JET_PARAMETERS, JETS, make_adjoint_row
from .potentials import _PAIR_FUNCS, make_full_row

_A1 = ti.types.ndarray(ndim=1)
_A2 = ti.types.ndarray(ndim=2)
_A3 = ti.types.ndarray(ndim=3)


#: sub-steps per launch (compile-time): a launch with ~20 array arguments costs ~0.2 ms here, and
#: the list is rebuilt every ~5-7 steps in a dense fluid, where a launch must end
STEPS_PER_LAUNCH = 4


def _make_steps(pair, K):
    full_row = make_full_row(pair)

    @ti.func
    def step_atom(i, x: ti.template(), v: ti.template(), f: ti.template(), pe: ti.template(), vir: ti.template(),
                  disp: ti.template(), inv_m: ti.template(), cs: ti.template(), mode, seed, t, s, gather, kick, drift,
                  track: ti.template(), tensor: ti.template(), tdisp, types: ti.template(), boxes: ti.template(),
                  tilted: ti.template(), pidx: ti.template(), nbr: ti.template(), nnb: ti.template(),
                  p0: ti.template(), p1: ti.template(), p2: ti.template(), rc: ti.template(), shift: ti.template(),
                  multi: ti.template(), ref: ti.template()):
        """Sub-step F of atom i at slot s (see the module doc); returns its squared displacement
        from ``ref`` after the drift (inf for NaN; 0 without ``drift``)."""
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
        d2 = 0.0
        if drift != 0:
            sv = ti.sqrt(cs[KT] * cs[FTM] * inv_m[i])
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
        return d2

    @ti.kernel
    def pair_steps(x: _A3, v: _A3, f: _A3, pe: _A2, vir: _A3, disp: _A3, inv_m: _A1, cs: _A1, mode: ti.i32,
                   seed: ti.i32, t0: ti.i32, s0: ti.i32, j0: ti.i32, count: ti.i32, m: ti.i32, limit2: ti.f64,
                   track: ti.template(), tensor: ti.template(), tdisp: ti.i32, types: _A1, boxes: _A2,
                   tilted: ti.template(), pidx: _A2, nbr: _A2, nnb: _A1, p0: _A2, p1: _A2, p2: _A2, rc: _A1,
                   shift: ti.template(), multi: ti.template(), ref: _A2) -> ti.types.vector(K, ti.f64):
        """Sub-steps j0 .. j0 + count - 1 (count <= K) of the segment of m steps from slot s0 and step
        t0 (sub-step j at slot s0 + j: forces unless j = 0, kick unless j = 0, drift unless j = m),
        one parallel loop each; a sub-step whose largest squared displacement reaches ``limit2``
        (the list must be rebuilt, or the run diverged) is the last one run. Returns each
        sub-step's largest squared displacement (-1: not run)."""
        out = ti.Vector([-1.0] * K)
        go = 1
        for jj in ti.static(range(K)):
            most = 0.0
            j = j0 + jj
            for i in range(x.shape[1]):
                if go != 0 and jj < count:
                    ti.atomic_max(most, step_atom(i, x, v, f, pe, vir, disp, inv_m, cs, mode, seed, t0 + j, s0 + j,
                                                  j > 0, j > 0, j < m, track, tensor, tdisp, types,
                                                  boxes, tilted, pidx, nbr, nnb, p0, p1, p2, rc, shift, multi, ref))
            if go != 0 and jj < count:
                out[jj] = most
                if not most < limit2:
                    go = 0
        return out

    return pair_steps


def _make_steps_adjoint(jet, used, K):
    adjoint_row = make_adjoint_row(jet, used)

    @ti.func
    def step_atom_adjoint(i, x: ti.template(), s, pair, drift, close, inv_m: ti.template(), cs: ti.template(), mode,
                          track: ti.template(), virial: ti.template(), tensor: ti.template(), tdisp,
                          types: ti.template(), boxes: ti.template(), tilted: ti.template(), pidx: ti.template(),
                          nbr: ti.template(), nnb: ti.template(), p0: ti.template(), p1: ti.template(),
                          p2: ti.template(), rc: ti.template(), shift: ti.template(), multi: ti.template(),
                          xb: ti.template(),
                          vb: ti.template(), fb: ti.template(), peb: ti.template(), virb: ti.template(),
                          dispb: ti.template(), p0b: ti.template(), p1b: ti.template(), p2b: ti.template()):
        """The adjoint launch A of atom i (see the module doc): with ``pair`` the pair adjoint at slot
        s (into xb[s] and the parameter rows); then with ``drift`` the adjoint of the drift from
        slot s - 1 to s (``close``: preceded by the kick v[s - 1] += a f[s - 1]), as
        :func:`md_close_drift_adjoint` without its clears, or without ``drift`` the adjoint of the
        kick v[s] += a f[s]: fb[s] += a vb[s]."""
        dt = cs[DT]
        a = 0.5 * dt * cs[FTM] * inv_m[i]
        xbar = ti.Vector([0.0, 0.0, 0.0])
        if pair != 0:
            xbar = adjoint_row(i, x, s, fb, s, peb, virb, s, track, virial, types, 0, boxes, tilted, pidx, nbr, nnb,
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

    @ti.kernel
    def pair_steps_adjoint(x: _A3, s0: ti.i32, j1: ti.i32, count: ti.i32, m: ti.i32, inv_m: _A1, cs: _A1,
                           mode: ti.i32, track: ti.template(), virial: ti.template(), tensor: ti.template(),
                           tdisp: ti.i32, types: _A1, boxes: _A2, tilted: ti.template(), pidx: _A2, nbr: _A2,
                           nnb: _A1, p0: _A2, p1: _A2, p2: _A2, rc: _A1, shift: ti.template(), multi: ti.template(),
                           xb: _A3, vb: _A3, fb: _A3, peb: _A2, virb: _A3, dispb: _A3, p0b: _A2, p1b: _A2,
                           p2b: _A2):
        """The adjoint launches of sub-steps j1, j1 - 1, .., j1 - count + 1 (count <= K) of the
        segment of m steps from slot s0, one parallel loop each (their pair adjoints use one list:
        the caller makes it current). ``virial``: whether the virial adjoints virb are read (else
        they are zeros: see :func:`_seeded`)."""
        for jj in ti.static(range(K)):
            j = j1 - jj
            for i in range(x.shape[1]):
                if jj < count:
                    drift = ti.cast(j < m, ti.i32)
                    step_atom_adjoint(i, x, s0 + j + drift, drift, drift, j > 0, inv_m, cs, mode, track, virial,
                                      tensor, tdisp, types, boxes, tilted, pidx, nbr, nnb, p0, p1, p2, rc, shift,
                                      multi, xb, vb, fb, peb, virb, dispb, p0b, p1b, p2b)

    return pair_steps_adjoint


@ti.kernel
def _seeded(a: _A3, s0: ti.i32, s1: ti.i32) -> ti.i32:
    """Whether any element of slots s0 .. s1 of ``a`` is other than zero (a NaN is), serially on
    the calling thread (microseconds of work at 10^3 atoms)."""
    out = 0
    ti.loop_config(serialize=True)
    for s in range(s0, s1 + 1):
        for i in range(a.shape[1]):
            for k in range(a.shape[2]):
                if a[s, i, k] != 0.0:
                    out = 1
    return out


_KERNELS = {}


def _kernels(kind):
    """The forward and adjoint kernels of one pair function for :data:`STEPS_PER_LAUNCH` sub-steps."""
    key = (kind, STEPS_PER_LAUNCH)
    if key not in _KERNELS:
        _KERNELS[key] = (_make_steps(_PAIR_FUNCS[kind], STEPS_PER_LAUNCH),
                         _make_steps_adjoint(JETS[kind], JET_PARAMETERS[kind], STEPS_PER_LAUNCH))
    return _KERNELS[key]


class SegmentSteps:
    """A 'kernel' for :func:`diffsim.tape.launch`: the m steps of one tape segment from slot ``s0``
    and step ``t0`` (:meth:`MDSystem.advance <diffsim.md.system.MDSystem.advance>`), as the m + 1
    sub-steps F_0 .. F_m of the module doc, up to :data:`STEPS_PER_LAUNCH` per launch: a launch
    ends after a sub-step that moved an atom far enough that the list must be rebuilt, and the
    system's check (:meth:`MDSystem._check`) runs after every sub-step with a drift. The adjoint
    runs the adjoint launches A_m .. A_0 in reverse, grouped by the list their pair adjoints use,
    each group after the system's list restore (:meth:`MDSystem._ensure`)."""

    def __init__(self, system, x, s0, t0, t1):
        self.system, self.x, self.s0, self.t0, self.m = system, x, s0, t0, t1 - t0

    def _pair_args(self):
        sysm = self.system
        pot = sysm.ff.potentials[0]
        nl = sysm.ff.nlist
        nbr, nnb = nl.full_list()
        p0, p1, p2 = pot._row_parameters(sysm.n).rows
        return pot, (sysm.ff.types, nl.boxes, nl.triclinic, pot.pidx, nbr, nnb, p0, p1, p2, pot.rc, pot.shift,
                     pot.ntypes > 1)

    def __call__(self):
        sysm, x, s0, t0, m = self.system, self.x, self.s0, self.t0, self.m
        pe, vir, disp, _ = sysm._fields(x)
        seed = int(getattr(sysm.integrator, "seed", 0)) & 0x7FFFFFFF
        # a sub-step whose displacement reaches skin/2 is followed by a rebuild: the launch ends there
        limit2 = (0.5 * sysm.ff.nlist.skin) ** 2
        j = 0
        while j <= m:
            pot, pargs = self._pair_args()
            count = min(STEPS_PER_LAUNCH, m + 1 - j)
            moved = launch_kernel(_kernels(pot.kind)[0],
                x.x, x.v, x.f, pe, vir, disp, sysm.inv_m, sysm.cs, sysm.integrator.mode, seed, t0, s0, j, count, m,
                limit2, bool(sysm.track), sysm.virial_width == 6, int(sysm.tdisp), *pargs, sysm.ff.nlist.ref)
            ran = 0
            for jj in range(count):
                d2 = float(moved[jj])
                if d2 < 0:  # not run: the sub-step before it needs a rebuild first
                    break
                ran += 1
                if j + jj < m:  # the check of x at slot s0 + j + jj + 1 (a rebuild, or a divergence)
                    sysm._check(x, s0 + j + jj + 1, t0 + j + jj, s0 + j + jj, [d2])
            j += ran

    def grad(self):
        sysm, x, s0, t0, m = self.system, self.x, self.s0, self.t0, self.m
        pe, vir, disp, _ = sysm._fields(x)
        track = bool(sysm.track)
        peb, virb = (pe.grad, vir.grad) if track else (pe, vir)  # not read without track
        # the virial's adjoints are read only where some cost seeded them (the energy costs do not;
        # the pair adjoint never writes them, and the segment's running costs have run backward)
        virial = track and bool(_seeded(virb, s0 + 1, s0 + m))
        j = m  # A_m (the kick's adjoint) needs no list; A_j (j < m) the list of step t0 + j's check
        while j >= 0:
            if j < m:
                sysm._ensure(x, s0, t0, t0 + j)
            key = sysm._used.get(t0 + j) if j < m else None
            count = 1
            while (count < STEPS_PER_LAUNCH and j - count >= 0
                   and (key is None or sysm._used.get(t0 + j - count) == key)):
                if key is None:  # the group began with A_m: it takes the list of A_{m-1}
                    sysm._ensure(x, s0, t0, t0 + j - count)
                    key = sysm._used.get(t0 + j - count)
                count += 1
            pot, pargs = self._pair_args()
            p0, p1, p2 = pargs[6:9]
            launch_kernel(_kernels(pot.kind)[1], x.x, s0, j, count, m, sysm.inv_m, sysm.cs, sysm.integrator.mode,
                          track, virial, sysm.virial_width == 6, int(sysm.tdisp), *pargs, x.x.grad, x.v.grad, x.f.grad,
                          peb, virb, disp.grad, p0.grad, p1.grad, p2.grad)
            j -= count
