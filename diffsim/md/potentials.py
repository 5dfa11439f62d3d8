"""Potentials with differentiable parameters, and their force/energy/virial kernels.

Every potential holds its parameters in ``ti.ndarray(needs_grad=True)`` vectors (listed by
``parameters()``) and returns launches that ADD, for positions ``x[xs]`` (ndarray
(slots, n, 3)), forces into ``f[fs]`` (slots, n, 3) and, when ``track`` is on, per-atom
potential energy into ``pe[os]`` (slots, n) and the per-atom virial tensor
``W_i,ab = sum_j d_a f_b / 2`` (d = x_i - x_j, f the pair force on i; components xx, yy, zz, xy,
xz, yz in LAMMPS's order, energy unit) into ``vir[os]`` (slots, n, 6), or its trace alone
(the scalar virial ``sum_j r_ij . f_ij / 2``) into an array of width 1 (slots, n, 1). Forces accumulate into global arrays (TAICHI.md rule 1), with Newton's
third law over the half neighbour list (``f[i] += f_ij; f[j] -= f_ij``).

Pair potentials take per type-pair parameters: a scalar (one value for every pair), a
symmetric (ntypes, ntypes) matrix, or the packed vector over unordered pairs (a <= b) in the
order (0,0), (0,1), ..., (0,T-1), (1,1), ... (``pair_index``). Units: reduced LJ units or
(Angstrom, eV) as the model uses; the formulas below name the parameters.

- :class:`LennardJones`: ``e(r) = 4 eps ((sig/r)^12 - (sig/r)^6)`` for r < rc.
- :class:`Morse`: ``e(r) = D (exp(-2 a (r - r0)) - 2 exp(-a (r - r0)))`` for r < rc (minimum -D at r0).
- :class:`SoftSphere`: ``e(r) = eps (sig/r)^n`` for r < rc (n fixed, default 12).
  ``shift``: False (plain cut), True or "energy" (e - e(rc): energy continuous at rc), or
  "force" (shifted force, e - e(rc) - (r - rc) e'(rc): energy and force continuous, so that
  trajectories are differentiable in the parameters even when pairs cross the cutoff).
- :class:`HarmonicBond`: ``e = k/2 (r - r0)^2`` over listed bonds (i, j).
- :class:`HarmonicAngle`: ``e = k/2 (theta - theta0)^2`` over listed angles (i, j, k), j the
  vertex, theta in radians.
"""

import enum

import numpy as np
import taichi as ti

from ..errors import ConfigError
from ..runtime import config
from ..tape import launch
from .cells import CODE_BITS
from .space import displacement, min_image

_A1 = ti.types.ndarray(ndim=1)
_A2 = ti.types.ndarray(ndim=2)
_A3 = ti.types.ndarray(ndim=3)


# ---------------------------------------------------------------------- pair functions
# Each returns (e, s) with the force on i equal to s * d, d = x_i - x_j (minimum image), r2 = |d|^2.

@ti.func
def _lj(r2, eps, sig, unused):
    r2i = 1.0 / r2
    sr2 = sig * sig * r2i
    sr6 = sr2 * sr2 * sr2
    return 4.0 * eps * (sr6 * sr6 - sr6), 24.0 * eps * (2.0 * sr6 * sr6 - sr6) * r2i


@ti.func
def _morse(r2, D, alpha, r0):
    r = ti.sqrt(r2)
    ex = ti.exp(-alpha * (r - r0))
    return D * (ex * ex - 2.0 * ex), 2.0 * alpha * D * (ex * ex - ex) / r


@ti.func
def _soft(r2, eps, sig, n):
    r = ti.sqrt(r2)
    e = eps * ti.pow(sig / r, n)
    return e, n * e / r2


class Shift(enum.IntEnum):
    """The cutoff transform of a pair potential e(r) at r = rc (JAX MD's energy -> cutoff -> neighbour
    map, in one place: :func:`cutoff_shift`). NONE: plain cut; ENERGY: e - e(rc), energy continuous;
    FORCE: e - e(rc) - (r - rc) e'(rc), energy and force continuous (trajectories stay
    differentiable in the parameters when pairs cross the cutoff)."""

    NONE = 0
    ENERGY = 1
    FORCE = 2

    @classmethod
    def of(cls, value) -> "Shift":
        """From a constructor's ``shift=``: False/None, True/"energy", "force", or a Shift."""
        if isinstance(value, Shift):
            return value
        table = {False: cls.NONE, None: cls.NONE, True: cls.ENERGY, "energy": cls.ENERGY, "force": cls.FORCE}
        if isinstance(value, (bool, str, type(None))) and value in table:
            return table[value]
        raise ConfigError(f"shift must be False, True/'energy' or 'force' (or a Shift), got {value!r}")


@ti.func
def cutoff_shift(e, s, r2, rc, ec, sc, shift: ti.template()):
    """(e, s) of a pair function (energy, and force factor: f_i = s d) at r^2 = r2, shifted as
    ``shift`` (a :class:`Shift`, compile-time) says, with (ec, sc) the pair function at rc.
    e'(rc) = -rc sc, so the force shift subtracts rc sc / r from s."""
    if ti.static(shift != Shift.NONE):
        e -= ec
    if ti.static(shift == Shift.FORCE):
        r = ti.sqrt(r2)
        e += (r - rc) * rc * sc
        s -= rc * sc / r
    return e, s


@ti.func
def _add_pair(f: ti.template(), fs, pe: ti.template(), vir: ti.template(), os, track, i, j, s, d0, d1, d2, e, r2,
              tensor: ti.template()):
    """Newton's third law: force s * d on i and -s * d on j; with ``track``, half the pair
    energy e and half the pair virial tensor s d_a d_b to each atom."""
    f[fs, i, 0] += s * d0
    f[fs, i, 1] += s * d1
    f[fs, i, 2] += s * d2
    f[fs, j, 0] -= s * d0
    f[fs, j, 1] -= s * d1
    f[fs, j, 2] -= s * d2
    if track != 0:
        pe[os, i] += 0.5 * e
        pe[os, j] += 0.5 * e
        add_virial(vir, os, i, j, 0.5 * s, d0, d1, d2, r2, tensor)


VOIGT_A = (0, 1, 2, 0, 0, 1)  # the axes a, b of the components xx, yy, zz, xy, xz, yz
VOIGT_B = (0, 1, 2, 1, 2, 2)


@ti.func
def add_virial(vir: ti.template(), os, i, j, w, d0, d1, d2, r2, tensor: ti.template()):
    """vir[os, i] and vir[os, j] += w d d^T in the order xx, yy, zz, xy, xz, yz (a pair's force
    on i is f = s d, so w = s / 2 gives each atom half the pair's virial; r2 = |d|^2). Without ``tensor``
    (compile-time; a virial array of width 1, (slots, n, 1)) the trace only, the scalar virial:
    2 atomic adds, not 12."""
    if ti.static(tensor):
        t0 = w * d0 * d0
        t1 = w * d1 * d1
        t2 = w * d2 * d2
        t3 = w * d0 * d1
        t4 = w * d0 * d2
        t5 = w * d1 * d2
        vir[os, i, 0] += t0
        vir[os, i, 1] += t1
        vir[os, i, 2] += t2
        vir[os, i, 3] += t3
        vir[os, i, 4] += t4
        vir[os, i, 5] += t5
        vir[os, j, 0] += t0
        vir[os, j, 1] += t1
        vir[os, j, 2] += t2
        vir[os, j, 3] += t3
        vir[os, j, 4] += t4
        vir[os, j, 5] += t5
    else:
        t = w * r2
        vir[os, i, 0] += t
        vir[os, j, 0] += t


def is_tensor(vir) -> bool:
    """Whether a virial array (slots, n, 6 or 1) holds the tensor (else the trace): the
    compile-time ``tensor`` switch of the force kernels."""
    return vir.shape[-1] == 6


def _make_pair_kernel(pair):
    @ti.kernel
    def pair_forces(x: _A3, xs: ti.i32, f: _A3, fs: ti.i32, pe: _A2, vir: _A3, os: ti.i32, track: ti.i32,
                    types: _A1, cfg: _A1, boxes: _A2, pidx: _A2, nbr: _A2, nnb: _A1,
                    p0: _A2, p1: _A2, p2: _A2, rc: _A1, shift: ti.template(), multi: ti.template(),
                    a0: ti.i32, a1: ti.i32, tensor: ti.template()):
        # p0, p1, p2: the parameters copied per atom row (see RowParameters). shift and multi
        # (several atom types) are compile-time: no per-pair branches or type lookups where they
        # are not needed (the reverse pass is about 30 % faster). The parameters are not hoisted
        # out of the pair loop: a local read before a dynamic loop and used inside it crashes
        # Taichi 1.7.4's reverse pass (segfault)
        for i in range(a0, a1):
            for q in range(nnb[i]):
                j = nbr[i, q]
                c = cfg[i]
                d0, d1, d2, r2 = displacement(x, xs, i, j, boxes, c)
                p = 0
                if ti.static(multi):
                    p = pidx[types[i], types[j]]
                rcp = rc[p]
                if r2 < rcp * rcp:
                    e, s = pair(r2, p0[i, p], p1[i, p], p2[i, p])
                    if ti.static(shift != Shift.NONE):
                        ec, sc = pair(rcp * rcp, p0[i, p], p1[i, p], p2[i, p])
                        e, s = cutoff_shift(e, s, r2, rcp, ec, sc, shift)
                    _add_pair(f, fs, pe, vir, os, track, i, j, s, d0, d1, d2, e, r2, tensor)

    return pair_forces


# columns of the gather table (one row per type pair): the parameters, the cutoff, and the
# energy and force factor at the cutoff (the shift constants)
T0, T1, T2, TRC, TEC, TSC = range(6)


@ti.kernel
def _spread_rows(p0: _A1, p1: _A1, p2: _A1, r0: _A2, r1: _A2, r2: _A2, g0: _A2, g1: _A2, g2: _A2):
    for i, p in ti.ndrange(r0.shape[0], r0.shape[1]):
        r0[i, p] = p0[p]
        r1[i, p] = p1[p]
        r2[i, p] = p2[p]
        g0[i, p] = 0.0
        g1[i, p] = 0.0
        g2[i, p] = 0.0


@ti.kernel
def _collect_rows(g0: _A2, g1: _A2, g2: _A2, pg0: _A1, pg1: _A1, pg2: _A1, p: ti.i32):
    s0 = 0.0  # kernel-level sums: per-thread partial sums, one atomic add per thread
    s1 = 0.0
    s2 = 0.0
    for i in range(g0.shape[0]):
        s0 += g0[i, p]
        s1 += g1[i, p]
        s2 += g2[i, p]
        g0[i, p] = 0.0
        g1[i, p] = 0.0
        g2[i, p] = 0.0
    pg0[p] += s0
    pg1[p] += s1
    pg2[p] += s2


class RowParameters:
    """A tape launch that copies a pair potential's parameters (packed per type pair) into one
    row per atom, for the differentiable pair kernel to read.

    Why: the reverse pass adds every pair's parameter gradient into the parameter it read. Read
    from one shared element, that is an atomic add on one address from every pair, and two
    threads fighting over it made the whole reverse pass 2x slower (13-15 against 7.2-7.6 ms
    at N = 4,000). Read from the row of atom i, each thread adds into its own rows. The adjoint
    of this launch sums the rows into the parameters' gradients and zeroes them (the forward
    zeroes them too, so an interrupted sweep leaves nothing behind)."""

    def __init__(self, arrays, n):
        self.arrays = arrays
        real, npair = config().real, arrays[0].shape[0]
        self.rows = [ti.ndarray(real, (n, npair), needs_grad=True) for _ in arrays]

    def __call__(self):
        _spread_rows(*self.arrays, *self.rows, *(r.grad for r in self.rows))

    def grad(self):
        for p in range(self.arrays[0].shape[0]):
            _collect_rows(*(r.grad for r in self.rows), *(a.grad for a in self.arrays), p)


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


def make_gather_row(pair):
    """Forward-only force on one atom from a full list (:mod:`diffsim.md.cells`): the atom sums
    its own force in registers and writes it once, so no atomics; not differentiable (TAICHI.md
    rule 1). The same pair function and shift arithmetic as the differentiable kernel above.
    A ``ti.func`` of (row, x, s, f, pe, vir, assign, track, types, box, pidx, multi, atoms, nbr,
    nhome, nimage, table, shift) that adds the force into f (assigns it with ``assign``), shared
    by the gather kernel and the one-launch step (:mod:`diffsim.md.step`)."""

    @ti.func
    def partner(x: ti.template(), s, c, xi0, xi1, xi2, b0, b1, b2, image: ti.template()):
        """Atom j of list entry c and d = x_i - x_j, shifted by the entry's image code."""
        j = c >> CODE_BITS
        d0 = xi0 - x[s, j, 0]
        d1 = xi1 - x[s, j, 1]
        d2 = xi2 - x[s, j, 2]
        if ti.static(image):
            d0 -= ((c & 3) - 1) * b0
            d1 -= (((c >> 2) & 3) - 1) * b1
            d2 -= (((c >> 4) & 3) - 1) * b2
        return j, d0, d1, d2

    @ti.func
    def gather_row(row, x: ti.template(), s, f: ti.template(), pe: ti.template(), vir: ti.template(),
                   assign: ti.template(), track: ti.template(), types: ti.template(), box: ti.template(),
                   pidx: ti.template(), multi: ti.template(), atoms: ti.template(), nbr: ti.template(),
                   nhome: ti.template(), nimage: ti.template(), table: ti.template(), shift: ti.template()):
        # track, multi (several atom types) and shift are compile-time: each variant is its own
        # loop with the parameters in registers (per-pair ndarray loads and branches cost ~3x)
        cap = nbr.shape[1]
        i = atoms[row]  # rows in cell order (see FullNeighborList)
        ti_ = types[i]
        b0 = box[0]
        b1 = box[1]
        b2 = box[2]
        xi0 = x[s, i, 0]
        xi1 = x[s, i, 1]
        xi2 = x[s, i, 2]
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
        # neighbours in the home box (front of the row), then those through an image (back)
        for image in ti.static(range(2)):
            q0 = 0 if ti.static(image == 0) else cap - nimage[row]
            q1 = nhome[row] if ti.static(image == 0) else cap
            for q in range(q0, q1):
                j, d0, d1, d2 = partner(x, s, nbr[row, q], xi0, xi1, xi2, b0, b1, b2, image)
                r2 = d0 * d0 + d1 * d1 + d2 * d2
                if ti.static(multi):
                    p = pidx[ti_, types[j]]
                    a0 = table[p, T0]
                    a1 = table[p, T1]
                    a2 = table[p, T2]
                    rcp = table[p, TRC]
                    ecp = table[p, TEC]
                    scp = table[p, TSC]
                # every listed pair is evaluated and those beyond the cutoff are masked: no
                # branch, so LLVM vectorises the loop (about 10 % faster than skipping them)
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
        if ti.static(assign):
            f[s, i, 0] = f0
            f[s, i, 1] = f1
            f[s, i, 2] = f2
        else:
            f[s, i, 0] += f0
            f[s, i, 1] += f1
            f[s, i, 2] += f2
        if ti.static(track):
            pe[s, i] += 0.5 * ei
            if vir.shape[2] == 6:
                vir[s, i, 0] += 0.5 * w0
                vir[s, i, 1] += 0.5 * w1
                vir[s, i, 2] += 0.5 * w2
                vir[s, i, 3] += 0.5 * w3
                vir[s, i, 4] += 0.5 * w4
                vir[s, i, 5] += 0.5 * w5
            else:  # the trace only (see add_virial)
                vir[s, i, 0] += 0.5 * (w0 + w1 + w2)

    return gather_row


def _make_gather_kernel(pair):
    gather_row = make_gather_row(pair)

    @ti.kernel
    def pair_gather(x: _A3, s: ti.i32, f: _A3, pe: _A2, vir: _A3, track: ti.template(), types: _A1, box: _A1,
                    pidx: _A2, multi: ti.template(), atoms: _A1, nbr: _A2, nhome: _A1, nimage: _A1, table: _A2,
                    shift: ti.template()):
        for row in range(x.shape[1]):
            gather_row(row, x, s, f, pe, vir, False, track, types, box, pidx, multi, atoms, nbr, nhome, nimage, table,
                       shift)

    return pair_gather


_PAIR_FUNCS = {"lj": _lj, "morse": _morse, "soft": _soft}
_KERNELS = {}


def _kernel(form, kind):
    """The kernel of one ``form`` ("newton", "gather" or "table") for one potential ``kind``."""
    if (form, kind) not in _KERNELS:
        make = {"newton": _make_pair_kernel, "gather": _make_gather_kernel, "table": _make_table_kernel}[form]
        _KERNELS[form, kind] = make(_PAIR_FUNCS[kind])
    return _KERNELS[form, kind]


@ti.kernel
def bond_forces(x: _A3, xs: ti.i32, f: _A3, fs: ti.i32, pe: _A2, vir: _A3, os: ti.i32, track: ti.i32,
                cfg: _A1, boxes: _A2, bonds: _A2, btype: _A1, k: _A1, r0: _A1, tensor: ti.template()):
    for b in range(bonds.shape[0]):
        i = bonds[b, 0]
        j = bonds[b, 1]
        c = cfg[i]
        t = btype[b]
        d0, d1, d2, r2 = displacement(x, xs, i, j, boxes, c)
        r = ti.sqrt(r2)
        dr = r - r0[t]
        s = -k[t] * dr / r
        _add_pair(f, fs, pe, vir, os, track, i, j, s, d0, d1, d2, 0.5 * k[t] * dr * dr, r2, tensor)


@ti.kernel
def angle_forces(x: _A3, xs: ti.i32, f: _A3, fs: ti.i32, pe: _A2, vir: _A3, os: ti.i32, track: ti.i32,
                 cfg: _A1, boxes: _A2, angles: _A2, atype: _A1, k: _A1, theta0: _A1, tensor: ti.template()):
    for b in range(angles.shape[0]):
        i = angles[b, 0]
        j = angles[b, 1]
        m = angles[b, 2]
        c = cfg[j]
        t = atype[b]
        a = ti.Vector([min_image(x[xs, i, q] - x[xs, j, q], boxes[c, q]) for q in ti.static(range(3))])
        bb = ti.Vector([min_image(x[xs, m, q] - x[xs, j, q], boxes[c, q]) for q in ti.static(range(3))])
        ra = a.norm()
        rb = bb.norm()
        cos = a.dot(bb) / (ra * rb)
        cos = ti.min(ti.max(cos, -1.0 + 1e-12), 1.0 - 1e-12)
        theta = ti.acos(cos)
        sin = ti.sqrt(1.0 - cos * cos)
        g = k[t] * (theta - theta0[t]) / sin  # -dE/dtheta * (-1/sin) * ... folded: f_i = g * dcos/da
        fi = g * (bb / (ra * rb) - cos * a / (ra * ra))
        fm = g * (a / (ra * rb) - cos * bb / (rb * rb))
        for q in ti.static(range(3)):
            f[fs, i, q] += fi[q]
            f[fs, m, q] += fm[q]
            f[fs, j, q] -= fi[q] + fm[q]
        if track != 0:
            e = 0.5 * k[t] * (theta - theta0[t]) ** 2
            pe[os, i] += e / 3.0
            pe[os, j] += e / 3.0
            pe[os, m] += e / 3.0
            # W_ab = a_a fi_b + b_a fm_b (positions relative to the vertex), a third to each atom
            if ti.static(tensor):
                for q in ti.static(range(6)):
                    u, w = ti.static(VOIGT_A[q], VOIGT_B[q])
                    wq = (a[u] * fi[w] + bb[u] * fm[w]) / 3.0
                    vir[os, i, q] += wq
                    vir[os, j, q] += wq
                    vir[os, m, q] += wq
            else:  # the trace only (see add_virial)
                wt = (a.dot(fi) + bb.dot(fm)) / 3.0
                vir[os, i, 0] += wt
                vir[os, j, 0] += wt
                vir[os, m, 0] += wt


# ---------------------------------------------------------------------- helpers

def n_pairs(ntypes: int) -> int:
    return ntypes * (ntypes + 1) // 2


def pair_index(ntypes: int) -> np.ndarray:
    """(ntypes, ntypes) int32 table: packed index of the unordered type pair (a, b)."""
    idx = np.zeros((ntypes, ntypes), dtype=np.int32)
    p = 0
    for a in range(ntypes):
        for b in range(a, ntypes):
            idx[a, b] = idx[b, a] = p
            p += 1
    return idx


def pack_pairs(name: str, value, ntypes: int) -> np.ndarray:
    """A scalar, a symmetric (ntypes, ntypes) matrix or a packed vector -> packed (npairs,) vector."""
    try:
        v = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be a number or an array of numbers: {exc}") from None
    if not np.all(np.isfinite(v)):
        raise ConfigError(f"{name} = {v.tolist()} holds NaN or Inf: potential parameters and cutoffs must be finite")
    npair = n_pairs(ntypes)
    if v.ndim == 0:
        return np.full(npair, float(v))
    if v.shape == (ntypes, ntypes):
        if not np.allclose(v, v.T):
            raise ConfigError(f"{name} matrix must be symmetric, got {v.tolist()}")
        iu = np.triu_indices(ntypes)
        return v[iu].copy()
    if v.shape == (npair,):
        return v.copy()
    known = v.shape[0] if v.ndim == 2 and v.shape[0] == v.shape[1] else next(
        (k for k in range(1, ntypes) if v.shape == (n_pairs(k),)), None)
    if known is not None and known < ntypes:
        raise ConfigError(f"unknown atom type {ntypes - 1}: {name} covers types 0..{known - 1} only; give "
                          f"values for all {ntypes} types present in the model")
    raise ConfigError(f"{name} must be a scalar, a ({ntypes}, {ntypes}) matrix or a packed vector of "
                      f"{npair} type pairs, got shape {v.shape}")


def _ndarray(values, needs_grad):
    arr = ti.ndarray(config().real, np.shape(values), needs_grad=needs_grad)
    arr.from_numpy(np.asarray(values, dtype=config().numpy_real))
    if needs_grad:
        arr.grad.fill(0)
    return arr


class Potential:
    """Base class. ``parameters()`` -> {name: ndarray}; ``force_launches(ctx, ...)`` -> launches."""

    prefix = ""
    #: whether the potential reads the force field's neighbour list (pair and many-body terms)
    needs_list = False

    def parameters(self) -> dict:
        return {self.prefix + k: v for k, v in self._params.items()}

    def get(self, name):
        """Current value of a parameter (numpy array), by its name without prefix."""
        return self._params[name].to_numpy().astype(np.float64)

    def set(self, **values):
        """Write parameter values (by name without prefix; same packing as the constructor)."""
        for k, v in values.items():
            if k not in self._params:
                raise ConfigError(f"{type(self).__name__} has no parameter {k!r}; it has {list(self._params)}")
            self._params[k].from_numpy(self._pack(k, v).astype(config().numpy_real))

    def _pack(self, name, value):
        return np.asarray(value, dtype=np.float64).reshape(self._params[name].shape)

    def max_cutoff(self) -> float:
        return 0.0

    def bind(self, ntypes: int):
        """Called by the ForceField with the number of atom types."""


class PairPotential(Potential):
    """Shared machinery of the short-range pair potentials (see module doc)."""

    kind = ""
    names = ()
    needs_list = True

    def __init__(self, values: dict, cutoff, shift, ntypes: int | None, prefix: str, extra=None):
        self.prefix = prefix
        self.shift = Shift.of(shift)
        self._values, self._cutoff_value = values, cutoff
        self._extra = extra
        self.ntypes = None
        if ntypes is not None:
            self.bind(ntypes)

    def bind(self, ntypes):
        if self.ntypes == ntypes:
            return
        if self.ntypes is not None:
            raise ConfigError(f"{type(self).__name__} was set up for {self.ntypes} atom types, the model has {ntypes}")
        self.ntypes = ntypes
        self.pidx_np = pair_index(ntypes)
        self.pidx = ti.ndarray(ti.i32, (ntypes, ntypes))
        self.pidx.from_numpy(self.pidx_np)
        self._params = {}
        packed = []
        for name in self.names:
            v = pack_pairs(name, self._values[name], ntypes)
            packed.append(v)
            self._params[name] = _ndarray(v, True)
        self.cutoffs = pack_pairs("cutoff", self._cutoff_value, ntypes)
        if np.any(self.cutoffs <= 0):
            raise ConfigError(f"{type(self).__name__} cutoff must be > 0, got {self.cutoffs}")
        self.rc = _ndarray(self.cutoffs, False)
        arrays = [self._params[nm] for nm in self.names]
        if len(arrays) < 3:
            extra = np.full(n_pairs(ntypes), float(self._extra if self._extra is not None else 0.0))
            self._p2 = _ndarray(extra, True)
            arrays.append(self._p2)
        self._arrays = arrays
        self._validate()

    def _pack(self, name, value):
        return pack_pairs(name, value, self.ntypes)

    def _validate(self):
        pass

    def max_cutoff(self):
        return float(np.max(self.cutoffs))

    def force_launches(self, ff, x, xs, f, fs, pe, vir, os, track, a0=0, a1=None):
        a1 = ff.n if a1 is None else a1
        kernel = _kernel("newton", self.kind)
        nl = ff.nlist
        rows = self._row_parameters(ff.n)
        p0, p1, p2 = rows.rows
        return [launch(rows),
                ff.lazy(kernel, lambda: (x, xs, f, fs, pe, vir, os, int(track), ff.types, nl.cfg, nl.boxes,
                                         self.pidx, nl.nbr, nl.nnb, p0, p1, p2, self.rc, self.shift, self.ntypes > 1,
                                         a0, a1, is_tensor(vir)))]

    def _row_parameters(self, n):
        """The :class:`RowParameters` launch of this potential for n atoms (one per n)."""
        cache = self.__dict__.setdefault("_rows", {})
        if n not in cache:
            cache[n] = RowParameters(self._arrays, n)
        return cache[n]

    def prepare_gather(self):
        """Fill the gather table: per type pair the parameters, the cutoff and the energy and
        force factor at the cutoff (the shift constants of :meth:`gather`); call after the
        parameters change."""
        if getattr(self, "table", None) is None:
            self.table = ti.ndarray(config().real, (len(self.cutoffs), 6))
        p0, p1, p2 = self._arrays
        _kernel("table", self.kind)(p0, p1, p2, self.rc, self.table)

    def gather_args(self, ff, cells):
        """The arguments of :func:`make_gather_row` after ``track``: types through ``shift``."""
        return (ff.types, cells.box, self.pidx, self.ntypes > 1, cells.atoms, cells.nbr, cells.nhome, cells.nimage,
                self.table, self.shift)

    def gather(self, ff, cells, x, s, f, pe, vir, track):
        """Forward only: add forces on ``x[s]`` (listed and wrapped by ``cells``, a
        :class:`~diffsim.md.cells.FullNeighborList`) into ``f[s]``, and pe/vir when ``track``."""
        _kernel("gather", self.kind)(x, s, f, pe, vir, bool(track), *self.gather_args(ff, cells))

    def pair_energy_np(self, r, a, b):
        """NumPy pair energy e(r) (shift included) of types a, b (for tests and plots)."""
        p = self.pidx_np[a, b]
        vals = [self.get(nm)[p] for nm in self.names]
        if len(vals) < 3:
            vals.append(self._p2.to_numpy()[p])
        r = np.asarray(r, dtype=np.float64)
        e = self._e_np(r, *vals)
        rc = self.cutoffs[p]
        if self.shift != Shift.NONE:
            e = e - self._e_np(rc, *vals)
        if self.shift == Shift.FORCE:
            h = 1e-6 * rc
            de = (self._e_np(rc + h, *vals) - self._e_np(rc - h, *vals)) / (2 * h)
            e = e - (r - rc) * de
        return np.where(r < self.cutoffs[p], e, 0.0)


class LennardJones(PairPotential):
    """``e(r) = 4 eps ((sig/r)^12 - (sig/r)^6)``, r < cutoff; parameters ``epsilon`` (energy),
    ``sigma`` (length), per type pair. ``shift``: subtract e(cutoff). Reduced units: eps = sigma = 1."""

    kind = "lj"
    names = ("epsilon", "sigma")

    def __init__(self, epsilon=1.0, sigma=1.0, cutoff=2.5, shift=False, ntypes=None, prefix=""):
        super().__init__({"epsilon": epsilon, "sigma": sigma}, cutoff, shift, ntypes, prefix)

    def _validate(self):
        if np.any(self.get("sigma") <= 0):
            raise ConfigError(f"LennardJones sigma must be > 0, got {self.get('sigma')}")

    @staticmethod
    def _e_np(r, eps, sig, _):
        sr6 = (sig / r) ** 6
        return 4 * eps * (sr6 * sr6 - sr6)


class Morse(PairPotential):
    """``e(r) = D (exp(-2 alpha (r - r0)) - 2 exp(-alpha (r - r0)))``, r < cutoff; parameters ``D``
    (energy, well depth), ``alpha`` (1/length), ``r0`` (length), per type pair.
    Copper (Girifalco & Weizer 1959): D = 0.3429 eV, alpha = 1.3588 1/Angstrom, r0 = 2.866 Angstrom."""

    kind = "morse"
    names = ("D", "alpha", "r0")

    def __init__(self, D=1.0, alpha=1.0, r0=1.0, cutoff=2.5, shift=False, ntypes=None, prefix=""):
        super().__init__({"D": D, "alpha": alpha, "r0": r0}, cutoff, shift, ntypes, prefix)

    @staticmethod
    def _e_np(r, D, alpha, r0):
        ex = np.exp(-alpha * (r - r0))
        return D * (ex * ex - 2 * ex)


class SoftSphere(PairPotential):
    """``e(r) = eps (sig/r)^n``, r < cutoff; parameters ``epsilon`` (energy) and ``sigma``
    (length) per type pair; the exponent n (default 12) is fixed."""

    kind = "soft"
    names = ("epsilon", "sigma")

    def __init__(self, epsilon=1.0, sigma=1.0, exponent=12.0, cutoff=2.5, shift=False, ntypes=None, prefix=""):
        if exponent <= 0:
            raise ConfigError(f"SoftSphere exponent must be > 0, got {exponent}")
        self.exponent = float(exponent)
        super().__init__({"epsilon": epsilon, "sigma": sigma}, cutoff, shift, ntypes, prefix, extra=exponent)

    def _validate(self):
        if np.any(self.get("sigma") <= 0):
            raise ConfigError(f"SoftSphere sigma must be > 0, got {self.get('sigma')}")

    @staticmethod
    def _e_np(r, eps, sig, n):
        return eps * (sig / r) ** n


class _Bonded(Potential):
    def __init__(self, index, types, nidx, values, names, prefix, what):
        idx = np.asarray(index, dtype=np.int64)
        if idx.ndim != 2 or idx.shape[1] != nidx or idx.shape[0] < 1:
            raise ConfigError(f"{what} must have shape (m, {nidx}) with m >= 1, got {idx.shape}")
        if np.any(idx < 0):
            raise ConfigError(f"{what} contain a negative atom index")
        for row in idx:
            if len(set(row.tolist())) != nidx:
                raise ConfigError(f"{what} entry {row.tolist()} repeats an atom")
        types = np.zeros(len(idx), np.int64) if types is None else np.asarray(types, dtype=np.int64)
        if types.shape != (len(idx),) or np.any(types < 0):
            raise ConfigError(f"{what} types must be ({len(idx)},) ints >= 0, got shape {types.shape}")
        ntype = int(types.max()) + 1
        self.prefix = prefix
        self.index_np, self.types_np = idx, types
        self.index = ti.ndarray(ti.i32, idx.shape)
        self.index.from_numpy(idx.astype(np.int32))
        self.tidx = ti.ndarray(ti.i32, len(idx))
        self.tidx.from_numpy(types.astype(np.int32))
        self._params = {}
        for nm, v in zip(names, values):
            arr = np.broadcast_to(np.asarray(v, dtype=np.float64), (ntype,)).copy() if np.ndim(v) == 0 \
                else np.asarray(v, dtype=np.float64)
            if arr.shape != (ntype,):
                raise ConfigError(f"{what} parameter {nm} must be a scalar or ({ntype},) per type, got {arr.shape}")
            if not np.all(np.isfinite(arr)):
                raise ConfigError(f"{what} parameter {nm} = {arr.tolist()} holds NaN or Inf: it must be finite")
            self._params[nm] = _ndarray(arr, True)
        self._names = names

    def check_atoms(self, n):
        if self.index_np.max() >= n:
            raise ConfigError(f"{type(self).__name__} refers to atom {int(self.index_np.max())} but there are {n}")


class HarmonicBond(_Bonded):
    """``e = k/2 (r - r0)^2`` per bond (i, j): ``bonds`` (m, 2) ints, ``bond_types`` (m,) ints;
    parameters ``bond_k`` (energy/length^2) and ``bond_r0`` (length), one per bond type."""

    def __init__(self, bonds, k=1.0, r0=1.0, bond_types=None, prefix=""):
        super().__init__(bonds, bond_types, 2, (k, r0), ("bond_k", "bond_r0"), prefix, "bonds")

    def force_launches(self, ff, x, xs, f, fs, pe, vir, os, track, a0=0, a1=None):
        p = self._params
        return [launch(bond_forces, x, xs, f, fs, pe, vir, os, track, ff.nlist.cfg, ff.nlist.boxes,
                       self.index, self.tidx, p["bond_k"], p["bond_r0"], is_tensor(vir))]


class HarmonicAngle(_Bonded):
    """``e = k/2 (theta - theta0)^2`` per angle (i, j, k), j the vertex: ``angles`` (m, 3) ints;
    parameters ``angle_k`` (energy/rad^2) and ``angle_theta0`` (rad), one per angle type.
    The force is singular at theta = 0 or pi (sin theta = 0); cos theta is clamped to 1 - 1e-12."""

    def __init__(self, angles, k=1.0, theta0=np.pi, angle_types=None, prefix=""):
        super().__init__(angles, angle_types, 3, (k, theta0), ("angle_k", "angle_theta0"), prefix, "angles")

    def force_launches(self, ff, x, xs, f, fs, pe, vir, os, track, a0=0, a1=None):
        p = self._params
        return [launch(angle_forces, x, xs, f, fs, pe, vir, os, track, ff.nlist.cfg, ff.nlist.boxes,
                       self.index, self.tidx, p["angle_k"], p["angle_theta0"], is_tensor(vir))]
