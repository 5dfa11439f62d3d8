"""Embedded-atom method (EAM) for metals, with its tabulated functions as fitted parameters.

    E = sum_i F_{a_i}(rho_i) + sum_{i<j} phi_{a_i a_j}(r_ij),    rho_i = sum_{j != i} f_{a_j}(r_ij)

(Daw & Baskes 1984), with a_i the element of atom i, F the embedding energy (energy) of the
electron density rho (arbitrary density unit), f the density an atom contributes at distance r,
phi the pair energy; all zero beyond the cutoff. Units: Angstrom and eV (``units="metal"``).

The functions are tables on uniform grids as in LAMMPS's ``setfl`` (``.eam.alloy``) files:
F at rho_k = k drho (k < nrho) per element, f at r_k = k dr (k < nr) per element, and phi per
pair of elements at r_k, k >= 1 (the file stores r phi, which is 0 at r = 0). Between grid points
each function is the cubic spline through the table with not-a-knot ends, the interpolation of
ASE's :class:`ase.calculators.eam.EAM` (scipy's interpolating spline), so that energies and
forces equal ASE's on the same file; beyond the table the end cubic continues.

Fitted parameters (``prefix`` + ``embedding`` (nel, nrho), ``density`` (nel, nr), ``phi``
(npairs, nr - 1), pairs packed (0,0), (0,1), ...): the table values. Each evaluation first
derives the spline slopes at the grid points, a linear map s = D y of the values (a banded
solve, :class:`SplineSlopes`, whose adjoint applies D^T), then evaluates cubic Hermite pieces
from values and slopes, which equal the spline exactly. :meth:`EAM.from_setfl` reads a file
through ASE and :meth:`EAM.write_setfl` writes the current (e.g. fitted) tables back;
:meth:`EAM.from_file` also reads ``funcfl`` (``.eam``, one element) and Finnis-Sinclair (``.eam.fs``)
files, whose density functions depend on the elements of both atoms (rho_i = sum_j f_{a_j a_i}(r_ij)).

Kernels (differentiable, half neighbour list, global accumulation as TAICHI.md rule 1 asks):
densities rho (Newton: each pair adds to both atoms), embedding F(rho) and F'(rho) per atom,
then pair forces -dE/dr = -(phi'(r) + F'(rho_i) f'_{a_j}(r) + F'(rho_j) f'_{a_i}(r)) along the
pair. rho and F' live in per-slot buffers beside the positions, so a recomputed step of the
tape finds its own.
"""

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import taichi as ti

from ..errors import ConfigError
from ..runtime import config
from ..tape import forward_only, launch
from .potentials import n_pairs, pair_index
from .space import displacement
from .terms import Potential, _add_pair, _ndarray, is_tensor

_A1 = ti.types.ndarray(ndim=1)
_A2 = ti.types.ndarray(ndim=2)
_A3 = ti.types.ndarray(ndim=3)


# ---------------------------------------------------------------------- spline slopes

class NotAKnotSlopes:
    """The slopes s = D y (y per unit x) of the not-a-knot cubic spline through y at ``m``
    uniform points ``h`` apart (m >= 4): A s = B y with A, B sparse (the spline's continuity of
    the second derivative inside, and of the third across the second and last-but-one points).
    :meth:`apply` gives D y and :meth:`adjoint` D^T g, for rows of a table at once."""

    def __init__(self, m, h):
        if m < 4:
            raise ConfigError(f"an EAM table needs at least 4 grid points, got {m}")
        a = sp.lil_matrix((m, m))
        b = sp.lil_matrix((m, m))
        a[0, 0], a[0, 1] = 1.0, 2.0
        b[0, 0], b[0, 1], b[0, 2] = -2.5, 2.0, 0.5
        for k in range(1, m - 1):
            a[k, k - 1], a[k, k], a[k, k + 1] = 1.0, 4.0, 1.0
            b[k, k - 1], b[k, k + 1] = -3.0, 3.0
        a[m - 1, m - 2], a[m - 1, m - 1] = 2.0, 1.0
        b[m - 1, m - 3], b[m - 1, m - 2], b[m - 1, m - 1] = -0.5, -2.0, 2.5
        self.lu = spla.splu(a.tocsc())
        self.b = (b / h).tocsr()

    def apply(self, y):
        """D y for y (m,) or (rows, m)."""
        y = np.asarray(y, dtype=np.float64)
        return self.lu.solve(np.ascontiguousarray((self.b @ y.T))).T if y.ndim == 2 else self.lu.solve(self.b @ y)

    def adjoint(self, g):
        """D^T g for g (m,) or (rows, m)."""
        g = np.asarray(g, dtype=np.float64)
        if g.ndim == 2:
            return (self.b.T @ self.lu.solve(np.ascontiguousarray(g.T), trans="T")).T
        return self.b.T @ self.lu.solve(g, trans="T")


class SplineSlopes:
    """A tape launch: ``slopes`` = D ``values`` row by row (:class:`NotAKnotSlopes`); its
    adjoint adds D^T slopes.grad into values.grad and clears slopes.grad (the forward clears
    it too, so an interrupted sweep leaves nothing behind). Runs in NumPy: the tables are small."""

    def __init__(self, values, h):
        self.values = values
        self.op = NotAKnotSlopes(values.shape[1], h)
        self.slopes = ti.ndarray(config().real, values.shape, needs_grad=True)
        self._zeros = np.zeros(values.shape, config().numpy_real)

    def __call__(self):
        self.slopes.from_numpy(self.op.apply(self.values.to_numpy()).astype(config().numpy_real))
        self.slopes.grad.from_numpy(self._zeros)

    def grad(self):
        g = self.op.adjoint(self.slopes.grad.to_numpy())
        self.values.grad.from_numpy((self.values.grad.to_numpy() + g).astype(config().numpy_real))
        self.slopes.grad.from_numpy(self._zeros)


@ti.func
def hermite(ys: ti.template(), ss: ti.template(), row, x, x0, h):
    """Value and derivative at x of the cubic through the table row ``row`` of values ys and
    slopes ss on the grid x0 + k h, the piece of the interval holding x (the end pieces continue
    beyond the table)."""
    u = (x - x0) / h
    k = ti.min(ti.max(ti.cast(ti.floor(u), ti.i32), 0), ys.shape[1] - 2)
    t = u - k
    y0 = ys[row, k]
    y1 = ys[row, k + 1]
    s0 = ss[row, k] * h
    s1 = ss[row, k + 1] * h
    t2 = t * t
    t3 = t2 * t
    value = (2.0 * t3 - 3.0 * t2 + 1.0) * y0 + (t3 - 2.0 * t2 + t) * s0 + (3.0 * t2 - 2.0 * t3) * y1 + (t3 - t2) * s1
    slope = ((6.0 * t2 - 6.0 * t) * (y0 - y1) + (3.0 * t2 - 4.0 * t + 1.0) * s0 + (3.0 * t2 - 2.0 * t) * s1) / h
    return value, slope


# ---------------------------------------------------------------------- kernels

@ti.kernel
def eam_zero(rho: _A2, rho_grad: _A2, fp_grad: _A2, s: ti.i32):
    for i in range(rho.shape[1]):
        rho[s, i] = 0.0
        rho_grad[s, i] = 0.0
        fp_grad[s, i] = 0.0


@ti.kernel
def eam_density(x: _A3, xs: ti.i32, types: _A1, cfg: _A1, boxes: _A2, tilted: ti.template(), nbr: _A2, nnb: _A1,
                drow: _A2, dens: _A2, dens_slope: _A2, dr: ti.f64, rc: ti.f64, rho: _A2):
    for i in range(x.shape[1]):
        for q in range(nnb[i]):
            j = nbr[i, q]
            c = cfg[i]
            _d0, _d1, _d2, r2 = displacement(x, xs, i, j, boxes, c, tilted)
            if r2 < rc * rc:
                r = ti.sqrt(r2)
                # drow[a, b]: the density table row of an atom of element a seen at one of element b
                fj, _gj = hermite(dens, dens_slope, drow[types[j], types[i]], r, 0.0, dr)
                fi, _gi = hermite(dens, dens_slope, drow[types[i], types[j]], r, 0.0, dr)
                rho[xs, i] += fj
                rho[xs, j] += fi


@ti.kernel
def eam_embed(rho: _A2, xs: ti.i32, types: _A1, emb: _A2, emb_slope: _A2, drho: ti.f64, pe: _A2, os: ti.i32,
              track: ti.i32, fp: _A2):
    for i in range(rho.shape[1]):
        e, g = hermite(emb, emb_slope, types[i], rho[xs, i], 0.0, drho)
        fp[xs, i] = ti.cast(g, float)  # the table's spacing drho is float64
        if track != 0:
            pe[os, i] += ti.cast(e, float)


@ti.kernel
def eam_forces(x: _A3, xs: ti.i32, types: _A1, cfg: _A1, boxes: _A2, tilted: ti.template(), nbr: _A2, nnb: _A1, pidx: _A2, fp: _A2,
               drow: _A2, dens: _A2, dens_slope: _A2, phi: _A2, phi_slope: _A2, dr: ti.f64, rc: ti.f64,
               f: _A3, fs: ti.i32, pe: _A2, vir: _A3, os: ti.i32, track: ti.i32, tensor: ti.template()):
    for i in range(x.shape[1]):
        for q in range(nnb[i]):
            j = nbr[i, q]
            c = cfg[i]
            d0, d1, d2, r2 = displacement(x, xs, i, j, boxes, c, tilted)
            if r2 < rc * rc:
                r = ti.sqrt(r2)
                ai = types[i]
                aj = types[j]
                _fj, gj = hermite(dens, dens_slope, drow[aj, ai], r, 0.0, dr)
                _fi, gi = hermite(dens, dens_slope, drow[ai, aj], r, 0.0, dr)
                e, ge = hermite(phi, phi_slope, pidx[ai, aj], r, dr, dr)
                dedr = ge + fp[xs, i] * gj + fp[xs, j] * gi
                _add_pair(f, fs, pe, vir, os, track, i, j, -dedr / r, d0, d1, d2, e, r2, tensor)


# ---------------------------------------------------------------------- the potential

class EAM(Potential):
    """Embedded-atom method (see the module doc for the energy, tables and parameters).

    embedding: (nel, nrho) F(k drho) (eV); density: (nel, nr) f(k dr), or (nel^2, nr) for the
    Finnis-Sinclair form (row a * nel + b: the density an atom of element a gives one of element b);
    phi: (npairs, nr - 1)
    phi(k dr) for k = 1..nr-1 (eV), pairs packed (0,0), (0,1), ..., (1,1), ...; drho, dr: grid
    steps (density unit, Angstrom); cutoff (Angstrom). elements: chemical symbols (atom type t
    is element t); meta: ASE's header/Z/mass/a/lattice for :meth:`write_setfl`.
    """

    needs_list = True

    def __init__(self, embedding, density, phi, drho, dr, cutoff, elements=None, prefix="", meta=None):
        emb = np.atleast_2d(np.asarray(embedding, dtype=np.float64))
        den = np.atleast_2d(np.asarray(density, dtype=np.float64))
        ph = np.atleast_2d(np.asarray(phi, dtype=np.float64))
        nel = emb.shape[0]
        if den.shape[0] not in (nel, nel * nel) or ph.shape != (n_pairs(nel), den.shape[1] - 1):
            raise ConfigError(f"EAM tables disagree: embedding {emb.shape}, density {den.shape} and phi {ph.shape} must "
                              f"be (nel, nrho), (nel, nr) or (nel^2, nr) (Finnis-Sinclair), (nel (nel + 1) / 2, nr - 1)")
        for name, v in (("embedding", emb), ("density", den), ("phi", ph)):
            if not np.all(np.isfinite(v)):
                raise ConfigError(f"EAM {name} table holds NaN or Inf")
        if not (np.isfinite(drho) and drho > 0 and np.isfinite(dr) and dr > 0 and np.isfinite(cutoff) and cutoff > 0):
            raise ConfigError(f"EAM needs positive finite drho, dr and cutoff, got drho={drho}, dr={dr}, cutoff={cutoff}")
        self.prefix = prefix
        self.nel, self.drho, self.dr, self.cutoff = nel, float(drho), float(dr), float(cutoff)
        self.elements = list(elements) if elements is not None else [f"X{k}" for k in range(nel)]
        self._named = elements is not None  # real chemical symbols, to check a model's types against
        self.meta = meta
        self._params = {"embedding": _ndarray(emb, True), "density": _ndarray(den, True), "phi": _ndarray(ph, True)}
        self._slopes = {"embedding": SplineSlopes(self._params["embedding"], self.drho),
                        "density": SplineSlopes(self._params["density"], self.dr),
                        "phi": SplineSlopes(self._params["phi"], self.dr)}
        self.pidx = ti.ndarray(ti.i32, (nel, nel))
        self.pidx.from_numpy(pair_index(nel))
        #: Finnis-Sinclair form (``.eam.fs``): one density function per ordered pair of elements
        self.finnis_sinclair = den.shape[0] == nel * nel and nel > 1
        rows = np.arange(nel)[:, None] * (nel if self.finnis_sinclair else 1) + np.arange(nel)[None, :] * \
            int(self.finnis_sinclair)
        self.drow = ti.ndarray(ti.i32, (nel, nel))  # drow[a, b]: density row of element a at element b
        self.drow.from_numpy(rows.astype(np.int32))
        self._buffers = {}

    @classmethod
    def from_setfl(cls, path, prefix=""):
        """Read a LAMMPS ``setfl`` file (``.eam.alloy``) through ASE; types are the file's elements
        in its order."""
        return cls.from_file(path, prefix, form="alloy")

    @classmethod
    def from_file(cls, path, prefix="", form=None):
        """Read any of LAMMPS's EAM table files through ASE: ``form`` "eam" (``funcfl``, one
        element: ``pair_style eam``; the pair term from its effective charges Z(r) as
        phi = 27.2 * 0.529 Z^2 / r eV), "alloy" (``setfl``, ``eam/alloy``) or "fs" (Finnis-Sinclair,
        ``eam/fs``: a density function per ordered pair of elements, ``density`` (nel^2, nr), row
        a * nel + b the density an atom of element a gives one of element b); None: from the name's
        ending (.eam, .alloy, .fs), as ASE decides. Types are the file's elements in its order."""
        from ase.calculators.eam import EAM as AseEAM

        if form not in (None, "eam", "alloy", "fs"):
            raise ConfigError(f"form must be None, 'eam' (funcfl), 'alloy' (setfl) or 'fs', got {form!r}")
        name = str(path)
        if form is None and not name.endswith((".eam", ".alloy", ".fs")):
            raise ConfigError(f"cannot tell the EAM format of {name!r} from its name: pass form='eam' (funcfl), "
                              "'alloy' (setfl) or 'fs' (Finnis-Sinclair)")
        try:
            calc = AseEAM(potential=name, form=form) if form else AseEAM(potential=name)
        except (OSError, ValueError, IndexError, KeyError, RuntimeError) as exc:
            kind = {"eam": "funcfl", "alloy": "setfl", "fs": "Finnis-Sinclair"}.get(form) or "EAM"
            raise ConfigError(f"cannot read the {kind} file {name!r} with ASE: {exc}") from None
        if calc.form not in ("eam", "alloy", "fs"):
            raise ConfigError(f"{name!r} is an EAM file of form {calc.form!r}; diffsim reads eam, alloy and fs")
        nel = len(calc.elements)
        phi = [calc.rphi_data[a, b][1:] / calc.r[1:] for a in range(nel) for b in range(a, nel)]
        header = list(calc.header) + ["(read by diffsim from a funcfl file)\n", "\n"][:max(0, 3 - len(calc.header))]
        meta = {"header": header, "Z": np.array(calc.Z), "mass": np.array(calc.mass),
                "a": np.array(calc.a), "lattice": list(calc.lattice)}
        density = calc.density_data.reshape(-1, calc.density_data.shape[-1])  # fs: (nel, nel, nr) -> (nel^2, nr)
        return cls(calc.embedded_data, density, np.array(phi), calc.drho, calc.dr, calc.cutoff,
                   elements=list(calc.elements), prefix=prefix, meta=meta)

    # ------------------------------------------------------------------ parameters and files

    def max_cutoff(self):
        """The tables' cutoff (length units of the model): the reach of every EAM pair term."""
        return self.cutoff

    def bind(self, ntypes):
        if ntypes > self.nel:
            raise ConfigError(f"the model has atom types 0..{ntypes - 1} but the EAM tables hold {self.nel} elements "
                              f"({self.elements})")

    def check_symbols(self, symbols):
        """A ConfigError when ``symbols`` (a model's chemical symbol per type) put another element
        on a type than these tables do (type t is ``elements[t]``): ASE structures typed by first
        appearance (:func:`~diffsim.md.ase_io.from_ase` without ``symbols=``) silently got the
        other element's tables, e.g. 1721 eV for ASE's 493 eV on an Ag-first Cu-Ag cell."""
        if not self._named:
            return
        wrong = [(t, s) for t, s in enumerate(list(symbols)[:self.nel]) if s != self.elements[t]]
        if wrong:
            t, s = wrong[0]
            raise ConfigError(f"the model's type {t} is {s!r} but the EAM tables' type {t} is {self.elements[t]!r} "
                              f"(model symbols {list(symbols)}, EAM elements {self.elements}): number the types as "
                              "the tables do, e.g. from_ase(atoms, symbols=eam.elements)")

    def _pack(self, name, value):
        return np.asarray(value, dtype=np.float64).reshape(self._params[name].shape)

    @property
    def masses(self):
        """Atomic masses (amu) per element from the file, or None."""
        return None if self.meta is None else np.asarray(self.meta["mass"], dtype=np.float64)

    def to_ase(self):
        """An ASE :class:`~ase.calculators.eam.EAM` calculator with the current tables (e.g. to
        compare, or to run ASE's dynamics on fitted parameters)."""
        from ase.calculators.eam import EAM as AseEAM

        meta = self.meta or {"header": ["diffsim EAM\n", "tables\n", "setfl\n"], "Z": np.zeros(self.nel, int),
                             "mass": np.ones(self.nel), "a": np.zeros(self.nel), "lattice": ["fcc"] * self.nel}
        emb, den, ph = (self.get(k) for k in ("embedding", "density", "phi"))
        nrho, nr = emb.shape[1], den.shape[1]
        fs = self.finnis_sinclair
        calc = AseEAM(form="fs" if fs else "alloy", elements=list(self.elements), cutoff=self.cutoff, drho=self.drho,
                      dr=self.dr,
                      nrho=nrho, nr=nr, Z=np.asarray(meta["Z"]), mass=np.asarray(meta["mass"]),
                      a=np.asarray(meta["a"]), lattice=list(meta["lattice"]), header=list(meta["header"]))
        calc.Nelements = self.nel
        calc.embedded_data, calc.density_data = emb, den.reshape(self.nel, self.nel, nr) if fs else den
        calc.r, calc.rho = np.arange(nr) * self.dr, np.arange(nrho) * self.drho
        calc.rphi_data = np.zeros((self.nel, self.nel, nr))
        p = 0
        for a in range(self.nel):
            for b in range(a, self.nel):
                calc.rphi_data[a, b, 1:] = calc.r[1:] * ph[p]
                calc.rphi_data[b, a] = calc.rphi_data[a, b]
                p += 1
        if fs:
            calc.set_fs_splines()
        else:
            calc.set_splines()
        return calc

    def write_setfl(self, path):
        """Write the current tables as a LAMMPS ``setfl`` file (through ASE's writer, full
        precision); what :meth:`from_setfl` and LAMMPS's ``pair_style eam/alloy`` read."""
        if self.finnis_sinclair:
            raise ConfigError("write_setfl writes eam/alloy files, whose density depends on the neighbour's element "
                              "only; these tables are Finnis-Sinclair (a density per pair of elements): use to_ase() "
                              "and ASE's writer for the fs form")
        calc = self.to_ase()
        nc = 5 if calc.nr % 5 == 0 and calc.nrho % 5 == 0 else 1
        calc.write_potential(str(path), nc=nc)

    # ------------------------------------------------------------------ launches

    def _scratch(self, nslots, n):
        key = (nslots, n)
        if key not in self._buffers:
            real = config().real
            self._buffers[key] = tuple(ti.ndarray(real, (nslots, n), needs_grad=True) for _ in range(2))
        return self._buffers[key]

    def force_launches(self, ff, x, xs, f, fs, pe, vir, os, track, a0=0, a1=None):
        """Tape launches for the EAM forces, energies and virials of all atoms (densities, embedding, pair terms)."""
        if a0 != 0 or (a1 is not None and a1 != ff.n):
            raise ConfigError("EAM evaluates all atoms at once (its densities need every pair)")
        nl = ff.nlist
        rho, fp = self._scratch(x.shape[0], ff.n)
        emb, den, ph = (self._params[k] for k in ("embedding", "density", "phi"))
        es, ds, ps = (self._slopes[k] for k in ("embedding", "density", "phi"))
        return [launch(es), launch(ds), launch(ps),
                forward_only(eam_zero, rho, rho.grad, fp.grad, xs),
                ff.lazy(eam_density, lambda: (x, xs, ff.types, nl.cfg, nl.boxes, nl.triclinic, nl.nbr, nl.nnb, self.drow,
                                              den, ds.slopes,
                                              self.dr, self.cutoff, rho)),
                launch(eam_embed, rho, xs, ff.types, emb, es.slopes, self.drho, pe, os, int(track), fp),
                ff.lazy(eam_forces, lambda: (x, xs, ff.types, nl.cfg, nl.boxes, nl.triclinic, nl.nbr, nl.nnb, self.pidx, fp,
                                             self.drow, den,
                                             ds.slopes, ph, ps.slopes, self.dr, self.cutoff, f, fs, pe, vir, os,
                                             int(track), is_tensor(vir)))]
