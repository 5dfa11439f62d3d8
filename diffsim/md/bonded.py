"""Bonded terms over listed atoms: :class:`HarmonicBond` ``e = k/2 (r - r0)^2`` over bonds (i, j)
and :class:`HarmonicAngle` ``e = k/2 (theta - theta0)^2`` over angles (i, j, k), j the vertex,
theta in radians; parameters one per bond or angle type (see :mod:`diffsim.md.terms` for what
the launches add).

Pair potentials in the same force field act on bonded atoms too: there are no exclusions (as
LAMMPS's ``special_bonds lj 1 1 1``, not its default ``0 0 0``, which drops 1-2, 1-3 and 1-4
pairs). A model written for excluded pairs (most molecular force fields) needs its pair terms
switched off between bonded atoms another way, e.g. by atom types whose pair epsilon is zero."""

import numpy as np
import taichi as ti

from ..errors import ConfigError
from ..tape import launch
from .space import displacement, fold
from .terms import VOIGT_A, VOIGT_B, Potential, _add_pair, _ndarray, is_tensor

_A1 = ti.types.ndarray(ndim=1)
_A2 = ti.types.ndarray(ndim=2)
_A3 = ti.types.ndarray(ndim=3)


@ti.kernel
def bond_forces(x: _A3, xs: ti.i32, f: _A3, fs: ti.i32, pe: _A2, vir: _A3, os: ti.i32, track: ti.i32,
                cfg: _A1, boxes: _A2, tilted: ti.template(), bonds: _A2, btype: _A1, k: _A1, r0: _A1, tensor: ti.template()):
    for b in range(bonds.shape[0]):
        i = bonds[b, 0]
        j = bonds[b, 1]
        c = cfg[i]
        t = btype[b]
        d0, d1, d2, r2 = displacement(x, xs, i, j, boxes, c, tilted)
        r = ti.sqrt(r2)
        dr = r - r0[t]
        s = -k[t] * dr / r
        _add_pair(f, fs, pe, vir, os, track, i, j, s, d0, d1, d2, 0.5 * k[t] * dr * dr, r2, tensor)


@ti.kernel
def angle_forces(x: _A3, xs: ti.i32, f: _A3, fs: ti.i32, pe: _A2, vir: _A3, os: ti.i32, track: ti.i32,
                 cfg: _A1, boxes: _A2, tilted: ti.template(), angles: _A2, atype: _A1, k: _A1, theta0: _A1, tensor: ti.template()):
    for b in range(angles.shape[0]):
        i = angles[b, 0]
        j = angles[b, 1]
        m = angles[b, 2]
        c = cfg[j]
        t = atype[b]
        a0, a1, a2 = fold(x[xs, i, 0] - x[xs, j, 0], x[xs, i, 1] - x[xs, j, 1], x[xs, i, 2] - x[xs, j, 2], boxes, c, tilted)
        b0, b1, b2 = fold(x[xs, m, 0] - x[xs, j, 0], x[xs, m, 1] - x[xs, j, 1], x[xs, m, 2] - x[xs, j, 2], boxes, c, tilted)
        a = ti.Vector([a0, a1, a2])
        bb = ti.Vector([b0, b1, b2])
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
        """Tape launches adding the harmonic bond forces, energies and virials to ``f``, ``pe`` and ``vir``."""
        p = self._params
        return [launch(bond_forces, x, xs, f, fs, pe, vir, os, track, ff.nlist.cfg, ff.nlist.boxes, ff.nlist.triclinic,
                       self.index, self.tidx, p["bond_k"], p["bond_r0"], is_tensor(vir))]


class HarmonicAngle(_Bonded):
    """``e = k/2 (theta - theta0)^2`` per angle (i, j, k), j the vertex: ``angles`` (m, 3) ints;
    parameters ``angle_k`` (energy/rad^2) and ``angle_theta0`` (rad), one per angle type.
    The force is singular at theta = 0 or pi (sin theta = 0); cos theta is clamped to 1 - 1e-12."""

    def __init__(self, angles, k=1.0, theta0=np.pi, angle_types=None, prefix=""):
        super().__init__(angles, angle_types, 3, (k, theta0), ("angle_k", "angle_theta0"), prefix, "angles")

    def force_launches(self, ff, x, xs, f, fs, pe, vir, os, track, a0=0, a1=None):
        """Tape launches adding the harmonic angle forces, energies and virials to ``f``, ``pe`` and ``vir``."""
        p = self._params
        return [launch(angle_forces, x, xs, f, fs, pe, vir, os, track, ff.nlist.cfg, ff.nlist.boxes, ff.nlist.triclinic,
                       self.index, self.tidx, p["angle_k"], p["angle_theta0"], is_tensor(vir))]
