"""The hand-written adjoint of the pair-force kernel, gathered over the full neighbour list.

The forward (:func:`~diffsim.md.potentials._make_pair_kernel` and its gathered twin) adds, for
every pair (i, j) with d = x_i - x_j (minimum image), u = |d|^2 < rc^2 and the shifted pair
function (E, S) of u and the parameters theta (force on i = S d):

    f_i += S d,   f_j -= S d,   pe_i, pe_j += E / 2,   vir_i, vir_j += (S / 2) q(d)

with q(d) = (d0^2, d1^2, d2^2, d0 d1, d0 d2, d1 d2) (or u alone for a virial trace). Given the
adjoints fb = dL/df, peb = dL/dpe, vb = dL/dvir, one pair contributes

    L_ij = S (g . d + W) + E P,    g = fb_i - fb_j,  P = (peb_i + peb_j) / 2,
                                   W = V . q(d),     V = (vb_i + vb_j) / 2,

and, since dE/du = -S / 2 for every pair function and cutoff transform,

    dL/dd = S (g + grad W) + 2 d (S' (g . d + W) - S P / 2),     S' = dS/du,
    dL/dtheta = S_theta (g . d + W) + E_theta P.

dL/dx_i = sum_j dL/dd(d_ij): the pair term is odd in (d, g), so every atom sums its own adjoint
over the full list (each pair at both atoms) and writes it once -- no atomics, and no reverse
pass of Taichi's autodiff, whose adjoint of the Newton kernel scatters into x.grad[j] and
reads the parameters per pair. Each atom adds half of each of its pairs' dL/dtheta into its
row of the parameter rows' gradients (:class:`~diffsim.md.rows.RowParameters` sums the rows);
the folding's floor has zero derivative, as in Taichi's autodiff.

A pair function's *jet* gives (e, s, ds, e_theta, s_theta) at u: the energy, the force factor,
dS/du and the derivatives in its three parameters (vectors of 3); :func:`shift_jet` applies the
cutoff transform (:class:`~diffsim.md.terms.Shift`) to a jet, from the jet at rc^2.
"""

import taichi as ti

from .cells import padded_length
from .space import fold, min_image_scaled
from .terms import Shift

_A1 = ti.types.ndarray(ndim=1)
_A2 = ti.types.ndarray(ndim=2)
_A3 = ti.types.ndarray(ndim=3)


# ---------------------------------------------------------------------- pair-function jets
# e(u), s(u) as in diffsim.md.potentials (u = r^2, force on i = s d); dE/du = -s / 2 always.

@ti.func
def lj_jet(u, eps, sig, unused):
    """Lennard-Jones: e = 4 eps (sr6^2 - sr6), s = 24 eps (2 sr6^2 - sr6) / u, sr6 = (sig^2 / u)^3."""
    ui = 1.0 / u
    sr2 = sig * sig * ui
    sr6 = sr2 * sr2 * sr2
    sr12 = sr6 * sr6
    e = 4.0 * eps * (sr12 - sr6)
    s = 24.0 * eps * (2.0 * sr12 - sr6) * ui
    ds = 24.0 * eps * (4.0 * sr6 - 14.0 * sr12) * ui * ui
    sig_i = 1.0 / sig
    e_t = ti.Vector([4.0 * (sr12 - sr6), 24.0 * eps * (2.0 * sr12 - sr6) * sig_i, 0.0])
    s_t = ti.Vector([24.0 * (2.0 * sr12 - sr6) * ui, 144.0 * eps * (4.0 * sr12 - sr6) * ui * sig_i, 0.0])
    return e, s, ds, e_t, s_t


@ti.func
def morse_jet(u, D, alpha, r0):
    """Morse: e = D (x^2 - 2 x), s = 2 alpha D (x^2 - x) / r, x = exp(-alpha (r - r0)), r = sqrt(u)."""
    r = ti.sqrt(u)
    ri = 1.0 / r
    ex = ti.exp(-alpha * (r - r0))
    a = ex * ex - ex
    b = 2.0 * ex * ex - ex
    e = D * (ex * ex - 2.0 * ex)
    s = 2.0 * alpha * D * a * ri
    ds = -alpha * D * (alpha * b * ri * ri + a * ri * ri * ri)
    e_t = ti.Vector([ex * ex - 2.0 * ex, -2.0 * D * (r - r0) * a, 2.0 * alpha * D * a])
    s_t = ti.Vector([2.0 * alpha * a * ri, 2.0 * D * ri * (a - alpha * (r - r0) * b), 2.0 * alpha * alpha * D * b * ri])
    return e, s, ds, e_t, s_t


@ti.func
def soft_jet(u, eps, sig, n):
    """Soft sphere: e = eps (sig / r)^n, s = n e / u (its exponent n is the third parameter)."""
    r = ti.sqrt(u)
    pw = ti.pow(sig / r, n)
    e = eps * pw
    ui = 1.0 / u
    s = n * e * ui
    ds = -n * (0.5 * n + 1.0) * e * ui * ui
    de_n = e * ti.log(sig / r)
    e_t = ti.Vector([pw, n * e / sig, de_n])
    s_t = ti.Vector([n * pw * ui, n * n * e / sig * ui, (e + n * de_n) * ui])
    return e, s, ds, e_t, s_t


JETS = {"lj": lj_jet, "morse": morse_jet, "soft": soft_jet}
#: how many of the three parameter slots each pair function reads: LJ's third derivatives are
#: zeros, which the adjoint does not sum (a product with a zero is not folded away under IEEE rules)
JET_PARAMETERS = {"lj": 2, "morse": 3, "soft": 3}


@ti.func
def shift_jet(e, s, ds, e_t, s_t, u, rc, ec, sc, ec_t, sc_t, shift: ti.template()):
    """A jet (see the module doc) under the cutoff transform ``shift`` (compile-time), with
    (ec, sc, ec_t, sc_t) the pair function's jet at rc^2 (rc is not differentiated):
    ENERGY subtracts e(rc); FORCE also adds (r - rc) rc sc to e and subtracts rc sc / r from s
    (:func:`~diffsim.md.terms.cutoff_shift`)."""
    if ti.static(shift != Shift.NONE):
        e -= ec
        e_t -= ec_t
    if ti.static(shift == Shift.FORCE):
        r = ti.sqrt(u)
        ri = 1.0 / r
        e += (r - rc) * rc * sc
        e_t += (r - rc) * rc * sc_t
        s -= rc * sc * ri
        s_t -= rc * ri * sc_t
        ds += 0.5 * rc * sc * ri * ri * ri
    return e, s, ds, e_t, s_t


def make_adjoint_row(jet, used=3):
    """The adjoint of one atom's row of the full list (see the module doc), for the pair adjoint
    kernel below and the fused step adjoint (:mod:`diffsim.md.pair_step`): a ``ti.func`` of (i, x,
    xs, fb, fs, peb, vb, os, track, virial, types, c, boxes, tilted, pidx, nbr, nnb, p0, p1, p2, rc,
    shift, multi, tensor, p0b, p1b, p2b) that adds half of each pair's dL/dtheta into atom i's rows of
    p0b, p1b, p2b (the first ``used`` of them, :data:`JET_PARAMETERS`) and returns dL/dx_i (a
    3-vector; the caller adds it). With ``track`` it reads the energy adjoints peb and, with
    ``virial`` too, the virial adjoints vb (without: they are known to be zeros, and the terms
    they enter add exact zeros)."""

    @ti.func
    def adjoint_row(i, x: ti.template(), xs, fb: ti.template(), fs, peb: ti.template(), vb: ti.template(), os,
                    track: ti.template(), virial: ti.template(), types: ti.template(), c, boxes: ti.template(),
                    tilted: ti.template(), pidx: ti.template(), nbr: ti.template(), nnb: ti.template(),
                    p0: ti.template(), p1: ti.template(), p2: ti.template(), rc: ti.template(),
                    shift: ti.template(), multi: ti.template(), tensor: ti.template(), p0b: ti.template(),
                    p1b: ti.template(), p2b: ti.template()):
        xi = ti.Vector([x[xs, i, 0], x[xs, i, 1], x[xs, i, 2]])
        fbi = ti.Vector([fb[fs, i, 0], fb[fs, i, 1], fb[fs, i, 2]])
        pbi = 0.0
        vbi = ti.Vector([0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
        if ti.static(track):  # the adjoints may be float64 in a float32 run: cast as the assignment would
            pbi = ti.cast(peb[os, i], float)
            if ti.static(virial and tensor):
                vbi = ti.cast(ti.Vector([vb[os, i, 0], vb[os, i, 1], vb[os, i, 2], vb[os, i, 3], vb[os, i, 4],
                                         vb[os, i, 5]]), float)
            elif ti.static(virial):
                vbi[0] = ti.cast(vb[os, i, 0], float)
        # type pair 0's parameters, cutoff and cutoff jet in registers (multi: per pair below)
        a0 = p0[i, 0]
        a1 = p1[i, 0]
        a2 = p2[i, 0]
        rcp = rc[0]
        ec, sc, _dc, ec_t, sc_t = jet(rcp * rcp, a0, a1, a2)
        l0 = boxes[c, 0]
        l1 = boxes[c, 1]
        l2 = boxes[c, 2]
        i0 = 1.0 / ti.max(l0, 1e-30)
        i1 = 1.0 / ti.max(l1, 1e-30)
        i2 = 1.0 / ti.max(l2, 1e-30)
        xbar = ti.Vector([0.0, 0.0, 0.0])
        tbar = ti.Vector([0.0, 0.0, 0.0])
        # the row with its pads (j = i, see diffsim.md.cells.ROW_PAD): whole vector iterations
        for q in range(padded_length(nnb[i], nbr.shape[1])):
            j = nbr[i, q]
            e0 = xi[0] - x[xs, j, 0]
            e1 = xi[1] - x[xs, j, 1]
            e2 = xi[2] - x[xs, j, 2]
            d0, d1, d2 = e0, e1, e2
            if ti.static(tilted):
                d0, d1, d2 = fold(e0, e1, e2, boxes, c, tilted)
            else:
                d0, d1, d2 = min_image_scaled(e0, e1, e2, l0, l1, l2, i0, i1, i2)
            d = ti.Vector([d0, d1, d2])
            u = d.dot(d)
            p = 0
            if ti.static(multi):
                p = pidx[types[i], types[j]]
                a0 = p0[i, p]
                a1 = p1[i, p]
                a2 = p2[i, p]
                rcp = rc[p]
                if ti.static(shift != Shift.NONE):
                    ec, sc, _dc, ec_t, sc_t = jet(rcp * rcp, a0, a1, a2)
            # a pad (j = i, d = 0) is evaluated beyond the cutoff, where every term is masked
            u = ti.select(j == i, 4.0 * rcp * rcp, u)
            # every listed pair is evaluated and those beyond the cutoff are masked (all
            # their terms exact zeros): no branch, which halved this kernel's time
            e, s, ds, e_t, s_t = jet(u, a0, a1, a2)
            e, s, ds, e_t, s_t = shift_jet(e, s, ds, e_t, s_t, u, rcp, ec, sc, ec_t, sc_t, shift)
            inside = u < rcp * rcp
            s = ti.select(inside, s, 0.0)
            ds = ti.select(inside, ds, 0.0)
            e_t = ti.select(inside, e_t, 0.0)
            s_t = ti.select(inside, s_t, 0.0)
            g = fbi - ti.Vector([fb[fs, j, 0], fb[fs, j, 1], fb[fs, j, 2]])
            gw = g.dot(d)  # g . d + W
            pb = 0.0
            if ti.static(track):
                pb = ti.cast(0.5 * (pbi + peb[os, j]), float)
                if ti.static(virial and tensor):
                    v0 = 0.5 * (vbi[0] + vb[os, j, 0])
                    v1 = 0.5 * (vbi[1] + vb[os, j, 1])
                    v2 = 0.5 * (vbi[2] + vb[os, j, 2])
                    v3 = 0.5 * (vbi[3] + vb[os, j, 3])
                    v4 = 0.5 * (vbi[4] + vb[os, j, 4])
                    v5 = 0.5 * (vbi[5] + vb[os, j, 5])
                    gw += v0 * d0 * d0 + v1 * d1 * d1 + v2 * d2 * d2 + v3 * d0 * d1 + v4 * d0 * d2 + v5 * d1 * d2
                    g += ti.Vector([2.0 * v0 * d0 + v3 * d1 + v4 * d2, 2.0 * v1 * d1 + v3 * d0 + v5 * d2,
                                    2.0 * v2 * d2 + v4 * d0 + v5 * d1])
                elif ti.static(virial):
                    v0 = 0.5 * (vbi[0] + vb[os, j, 0])
                    gw += v0 * u
                    g += 2.0 * v0 * d
            xbar += s * g + 2.0 * (ds * gw - 0.5 * s * pb) * d
            t = s_t * gw + e_t * pb
            if ti.static(multi):
                p0b[i, p] += 0.5 * t[0]
                p1b[i, p] += 0.5 * t[1]
                if ti.static(used > 2):
                    p2b[i, p] += 0.5 * t[2]
            else:
                for a in ti.static(range(used)):
                    tbar[a] += t[a]
        if ti.static(not multi):
            p0b[i, 0] += 0.5 * tbar[0]
            p1b[i, 0] += 0.5 * tbar[1]
            if ti.static(used > 2):
                p2b[i, 0] += 0.5 * tbar[2]
        return xbar

    return adjoint_row


def make_pair_adjoint(jet, used=3):
    """The adjoint kernel of one pair function (its jet, see :data:`JETS`, reading ``used``
    parameters, :data:`JET_PARAMETERS`)."""
    adjoint_row = make_adjoint_row(jet, used)

    @ti.kernel
    def pair_forces_adjoint(x: _A3, xs: ti.i32, fb: _A3, fs: ti.i32, peb: _A2, vb: _A3, os: ti.i32,
                            track: ti.template(), types: _A1, cfg: _A1, boxes: _A2, tilted: ti.template(), pidx: _A2,
                            nbr: _A2, nnb: _A1, p0: _A2, p1: _A2, p2: _A2, rc: _A1, shift: ti.template(),
                            multi: ti.template(), tensor: ti.template(), xb: _A3, p0b: _A2, p1b: _A2, p2b: _A2):
        """Adds dL/dx[xs] into xb and half of each pair's dL/dtheta into the rows p0b, p1b, p2b of
        atom i, from fb = dL/df[fs] (and with ``track`` peb = dL/dpe[os], vb = dL/dvir[os], the
        tensor or, without ``tensor``, the trace); (nbr, nnb) is the full list, the other
        arguments are the pair kernel's (:func:`~diffsim.md.potentials._make_pair_kernel`)."""
        for i in range(x.shape[1]):
            xbar = adjoint_row(i, x, xs, fb, fs, peb, vb, os, track, track, types, cfg[i], boxes, tilted, pidx, nbr, nnb,
                               p0, p1, p2, rc, shift, multi, tensor, p0b, p1b, p2b)
            for k in ti.static(range(3)):
                xb[xs, i, k] += xbar[k]

    return pair_forces_adjoint
