"""Short-range pair potentials with differentiable parameters, and their differentiable kernel.

Pair potentials take per type-pair parameters: a scalar (one value for every pair), a
symmetric (ntypes, ntypes) matrix, or the packed vector over unordered pairs (a <= b) in the
order (0,0), (0,1), ..., (0,T-1), (1,1), ... (``pair_index``). Units: reduced LJ units or
(Angstrom, eV) as the model uses; the formulas below name the parameters.

- :class:`LennardJones`: ``e(r) = 4 eps ((sig/r)^12 - (sig/r)^6)`` for r < rc.
- :class:`Morse`: ``e(r) = D (exp(-2 a (r - r0)) - 2 exp(-a (r - r0)))`` for r < rc (minimum -D at r0).
- :class:`SoftSphere`: ``e(r) = eps (sig/r)^n`` for r < rc (n fixed, default 12).
  ``shift``: False (plain cut), True or "energy" (e - e(rc): energy continuous at rc), or
  "force" (shifted force, e - e(rc) - (r - rc) e'(rc): energy and force continuous, so that
  trajectories are differentiable in the parameters even when pairs cross the cutoff); see
  :class:`~diffsim.md.terms.Shift`.

The pieces live by job: what all terms share in :mod:`diffsim.md.terms`, the per-atom parameter
rows in :mod:`diffsim.md.rows`, the forward-only gather form in :mod:`diffsim.md.gather`, the
hand-written adjoint the tape runs on the CPU in :mod:`diffsim.md.pair_adjoint`, the
bonded terms in :mod:`diffsim.md.bonded`, the embedded-atom method in :mod:`diffsim.md.eam`. The
names they define are importable from here too (earlier code did).
"""

import numpy as np
import taichi as ti

from ..errors import ConfigError
from ..runtime import config
from ..tape import launch
from .bonded import HarmonicAngle, HarmonicBond, angle_forces, bond_forces  # noqa: F401 (names of this module before)
from .gather import T0, T1, T2, TEC, TRC, TSC, _make_gather_kernel, _make_table_kernel, make_gather_row  # noqa: F401
from .pair_adjoint import JET_PARAMETERS, JETS, make_pair_adjoint
from .rows import RowParameters
from .space import displacement, fold, min_image_scaled
from .terms import (  # noqa: F401 (names of this module before)
    VOIGT_A,
    VOIGT_B,
    Potential,
    Shift,
    _add_pair,
    _ndarray,
    add_virial,
    cutoff_shift,
    is_tensor,
)

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


def _make_pair_kernel(pair):
    @ti.kernel
    def pair_forces(x: _A3, xs: ti.i32, f: _A3, fs: ti.i32, pe: _A2, vir: _A3, os: ti.i32, track: ti.i32,
                    types: _A1, cfg: _A1, boxes: _A2, tilted: ti.template(), pidx: _A2, nbr: _A2, nnb: _A1,
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
                d0, d1, d2, r2 = displacement(x, xs, i, j, boxes, c, tilted)
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


def make_full_row(pair):
    """The force, energy and virial sums of one atom over a *full* list (each pair at both atoms:
    :meth:`~diffsim.md.neighbors.NeighborList.full_list`), in registers, for the forward-only
    gathers of the tape (:func:`_make_full_gather_kernel`, :mod:`diffsim.md.pair_step`): a
    ``ti.func`` of (i, x, xs, c, boxes, tilted, types, pidx, nbr, nnb, p0, p1, p2, rc, shift,
    multi) returning (f, e, w): the force on i (3-vector), the sum of its pair energies and the
    sum of its pair virials s d_a d_b (6-vector, xx, yy, zz, xy, xz, yz); the caller halves e and w."""

    @ti.func
    def full_row(i, x: ti.template(), xs, c, boxes: ti.template(), tilted: ti.template(), types: ti.template(),
                 pidx: ti.template(), nbr: ti.template(), nnb: ti.template(), p0: ti.template(), p1: ti.template(),
                 p2: ti.template(), rc: ti.template(), shift: ti.template(), multi: ti.template()):
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
        # the parameters of type pair 0 in registers (forward only: no reverse pass to break)
        a0_ = p0[i, 0]
        a1_ = p1[i, 0]
        a2_ = p2[i, 0]
        rcp = rc[0]
        ec = 0.0
        sc = 0.0
        if ti.static(shift != Shift.NONE and not multi):
            ec, sc = pair(rcp * rcp, a0_, a1_, a2_)
        xi0 = x[xs, i, 0]
        xi1 = x[xs, i, 1]
        xi2 = x[xs, i, 2]
        # an orthorhombic box's edges and their inverses in registers (0: an open axis)
        l0 = boxes[c, 0]
        l1 = boxes[c, 1]
        l2 = boxes[c, 2]
        i0 = 1.0 / ti.max(l0, 1e-30)
        i1 = 1.0 / ti.max(l1, 1e-30)
        i2 = 1.0 / ti.max(l2, 1e-30)
        for q in range(nnb[i]):
            j = nbr[i, q]
            e0 = xi0 - x[xs, j, 0]
            e1 = xi1 - x[xs, j, 1]
            e2 = xi2 - x[xs, j, 2]
            d0, d1, d2 = e0, e1, e2
            if ti.static(tilted):
                d0, d1, d2 = fold(e0, e1, e2, boxes, c, tilted)
            else:
                d0, d1, d2 = min_image_scaled(e0, e1, e2, l0, l1, l2, i0, i1, i2)
            r2 = d0 * d0 + d1 * d1 + d2 * d2
            if ti.static(multi):
                p = pidx[types[i], types[j]]
                a0_ = p0[i, p]
                a1_ = p1[i, p]
                a2_ = p2[i, p]
                rcp = rc[p]
                if ti.static(shift != Shift.NONE):
                    ec, sc = pair(rcp * rcp, a0_, a1_, a2_)
            # every listed pair is evaluated and those beyond the cutoff are masked (their terms
            # are exact zeros): no branch, as in the adjoint (diffsim.md.pair_adjoint)
            e, s = pair(r2, a0_, a1_, a2_)
            if ti.static(shift != Shift.NONE):
                e, s = cutoff_shift(e, s, r2, rcp, ec, sc, shift)
            inside = r2 < rcp * rcp
            s = ti.select(inside, s, 0.0)
            f0 += s * d0
            f1 += s * d1
            f2 += s * d2
            ei += ti.select(inside, e, 0.0)
            w0 += s * d0 * d0
            w1 += s * d1 * d1
            w2 += s * d2 * d2
            w3 += s * d0 * d1
            w4 += s * d0 * d2
            w5 += s * d1 * d2
        return ti.Vector([f0, f1, f2]), ei, ti.Vector([w0, w1, w2, w3, w4, w5])

    return full_row


def _make_full_gather_kernel(pair):
    full_row = make_full_row(pair)

    @ti.kernel
    def pair_forces_gathered(x: _A3, xs: ti.i32, f: _A3, fs: ti.i32, pe: _A2, vir: _A3, os: ti.i32, track: ti.i32,
                             types: _A1, cfg: _A1, boxes: _A2, tilted: ti.template(), pidx: _A2, nbr: _A2, nnb: _A1,
                             p0: _A2, p1: _A2, p2: _A2, rc: _A1, shift: ti.template(), multi: ti.template(),
                             a0: ti.i32, a1: ti.i32, tensor: ti.template()):
        """Forward only: the values of ``pair_forces`` (same arguments) from a *full* list (each
        pair at both atoms: :meth:`~diffsim.md.neighbors.NeighborList.full_list`), every atom
        summing its own force, half of each pair energy and virial in registers and adding them
        once (no atomics per pair); rows a0..a1 of the list."""
        for i in range(a0, a1):
            fi, ei, w = full_row(i, x, xs, cfg[i], boxes, tilted, types, pidx, nbr, nnb, p0, p1, p2, rc, shift, multi)
            for k in ti.static(range(3)):
                f[fs, i, k] += fi[k]
            if track != 0:
                pe[os, i] += 0.5 * ei
                if ti.static(tensor):
                    for q in ti.static(range(6)):
                        vir[os, i, q] += 0.5 * w[q]
                else:
                    vir[os, i, 0] += 0.5 * (w[0] + w[1] + w[2])

    return pair_forces_gathered


class GatheredPair:
    """A 'kernel' for :func:`diffsim.tape.launch` whose forward is ``gather`` over the full list
    and whose adjoint is ``adjoint`` (:func:`~diffsim.md.pair_adjoint.make_pair_adjoint`), the
    hand-written adjoint gathered over the same full list, on the Newton kernel's arguments
    (``args_fn(True)`` gives them when the launch runs): every atom sums its own force forward
    and its own position adjoint backward, with no atomic add per pair either way. The forward
    values equal the Newton kernel's to rounding (tests/md/test_md_fast_path.py), and so does the
    adjoint its autodiff's (tests/md/test_md_pair_adjoint.py); the adjoint needs no forward
    values, only the inputs."""

    def __init__(self, gather, adjoint, args_fn):
        self.gather, self.adjoint, self.args_fn = gather, adjoint, args_fn

    def __call__(self):
        self.gather(*self.args_fn(True))

    def grad(self):
        (x, xs, f, fs, pe, vir, os, track, types, cfg, boxes, tilted, pidx, nbr, nnb, p0, p1, p2, rc, shift, multi,
         _a0, _a1, tensor) = self.args_fn(True)
        track = bool(track)
        peb, vb = (pe.grad, vir.grad) if track else (pe, vir)  # not read without track
        self.adjoint(x, xs, f.grad, fs, peb, vb, os, track, types, cfg, boxes, tilted, pidx, nbr, nnb, p0, p1, p2,
                     rc, shift, multi, tensor, x.grad, p0.grad, p1.grad, p2.grad)


_PAIR_FUNCS = {"lj": _lj, "morse": _morse, "soft": _soft}
_KERNELS = {}


def _kernel(form, kind):
    """The kernel of one ``form`` ("newton", "gather", "table", "full" or "adjoint") for one potential ``kind``."""
    if (form, kind) not in _KERNELS:
        if form == "adjoint":
            _KERNELS[form, kind] = make_pair_adjoint(JETS[kind], JET_PARAMETERS[kind])
        else:
            make = {"newton": _make_pair_kernel, "gather": _make_gather_kernel, "table": _make_table_kernel,
                    "full": _make_full_gather_kernel}[form]
            _KERNELS[form, kind] = make(_PAIR_FUNCS[kind])
    return _KERNELS[form, kind]


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
        config()  # start the default runtime if nothing has yet: the tables are Taichi ndarrays
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

    def force_launches(self, ff, x, xs, f, fs, pe, vir, os, track, a0=0, a1=None, rows=True, gathered=False):
        """The launches adding this potential's forces (see :class:`~diffsim.md.terms.Potential`):
        the per-atom parameter rows (:meth:`row_launch`; left out with ``rows=False``, where the
        caller launches them once for many force evaluations), then the pair kernel. ``gathered``
        (all atoms only; the list must keep its full twin, ``nlist.keep_full``): the forward values
        and the adjoint gathered over the full list (:class:`GatheredPair`)."""
        a1 = ff.n if a1 is None else a1
        kernel = _kernel("newton", self.kind)
        nl = ff.nlist
        p0, p1, p2 = self._row_parameters(ff.n).rows

        def args(full=False):
            nbr, nnb = nl.full_list() if full else (nl.nbr, nl.nnb)
            return (x, xs, f, fs, pe, vir, os, int(track), ff.types, nl.cfg, nl.boxes, nl.triclinic, self.pidx, nbr,
                    nnb, p0, p1, p2, self.rc, self.shift, self.ntypes > 1, a0, a1, is_tensor(vir))

        if gathered and (a0, a1) == (0, ff.n) and nl.keep_full:
            out = launch(GatheredPair(_kernel("full", self.kind), _kernel("adjoint", self.kind), args))
        else:
            out = ff.lazy(kernel, args)
        return [self.row_launch(ff.n)] * bool(rows) + [out]

    def row_launch(self, n):
        """The launch copying the parameters into one row per atom (n atoms) for the pair kernel;
        its adjoint sums the rows' gradients into the parameters' (see :class:`~diffsim.md.rows.RowParameters`)."""
        return launch(self._row_parameters(n))

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
        """The gather kernels' arguments after ``track``: the ghost refresh's (xg through tilted,
        :func:`~diffsim.md.gather.refresh_atom`), then :func:`make_gather_row`'s (types through
        shift), then ``row_of`` (each atom's slot in xg, the list's sorted order).
        Makes the list's gather form (``ent``, ghosts) after each build of it."""
        if getattr(cells, "_ghosts_of", None) != cells.builds:
            cells._make_ghosts(ff.types)
            cells._ghosts_of = cells.builds
        return (cells.xg, cells.gbase, cells.gcount, cells.gcode, cells.box, cells.tilted, cells.gtypes, self.pidx,
                self.ntypes > 1, cells.atoms, cells.ent, cells.cnt, self.table, self.shift, cells.row_of)

    def gather(self, ff, cells, x, s, f, pe, vir, track):
        """Forward only: add forces on ``x[s]`` (listed and wrapped by ``cells``, a
        :class:`~diffsim.md.cells.FullNeighborList` or a triclinic
        :class:`~diffsim.md.tricells.TriclinicFullList`) into ``f[s]``, and pe/vir when ``track``."""
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
    ``sigma`` (length), per type pair. Reduced units: eps = sigma = 1. ``shift``, the cutoff
    transform (:class:`Shift`): False (plain cut), True or ``"energy"`` (subtract e(cutoff): the
    energy is continuous), ``"force"`` (also subtract (r - cutoff) e'(cutoff): energy and force
    continuous; use it to differentiate trajectories, whose pairs cross the cutoff)."""

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
