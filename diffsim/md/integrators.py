"""Integrators: velocity Verlet (NVE), Langevin BAOAB (NVT), Berendsen (equilibration only).

All act on positions x (n, 3), velocities v and forces f with accelerations f / m * ftm
(see :mod:`diffsim.md.units`). A step t -> t+1 is split into three launches around the force
evaluation at the new positions, so that forces are part of the state (f_t is stored with x_t):

- drift (differentiable): v' = v_t + dt/2 f_t / m (B); then
  * velocity Verlet: x_{t+1} = x_t + dt v';
  * BAOAB: x' = x_t + dt/2 v' (A), v'' = c1 v' + c2 sqrt(kT/m) xi_(seed,t,i,k) (O),
    x_{t+1} = x' + dt/2 v'' (A), with c1 = exp(-gamma dt), c2 = sqrt(1 - c1^2);
  and zeroes f_{t+1};
- forces f_{t+1} = F(x_{t+1}) (the potentials' kernels);
- kick (differentiable): v_{t+1} = v'' + dt/2 f_{t+1} / m (B).

The tape's step kernel (:func:`md_close_drift`: the closing kick of step t-1 with the drift of
step t) runs its hand-written adjoint (:class:`CloseDrift`), equal to Taichi's autodiff of it.
"""

from dataclasses import dataclass

import numpy as np
import taichi as ti

from ..errors import ConfigError
from .rng import gauss

_A1 = ti.types.ndarray(ndim=1)
_A2 = ti.types.ndarray(ndim=2)
_A3 = ti.types.ndarray(ndim=3)

# consts layout
DT, FTM, C1, C2, KT = range(5)
NCONST = 5


@dataclass
class VelocityVerlet:
    """Velocity Verlet, NVE. Energy drift is O(dt^2) and bounded (symplectic)."""

    mode = 0

    def consts(self, dt, units):
        """The step kernel's constants [dt, force-to-acceleration factor, c1, c2, kT]: no friction or noise."""
        return [dt, units.ftm, 1.0, 0.0, 0.0]


@dataclass
class Langevin:
    """Langevin dynamics by BAOAB (Leimkuhler & Matthews 2013), NVT.

    temperature: epsilon/k_B or K; friction gamma: 1/time (1/tau or 1/fs); seed: noise key.
    The noise is counter-based (seed, step, atom, axis): recomputed steps are bit-identical.
    """

    temperature: float = 1.0
    friction: float = 1.0
    seed: int = 0
    mode = 1

    def __post_init__(self):
        if not (np.isfinite(self.temperature) and self.temperature >= 0
                and np.isfinite(self.friction) and self.friction >= 0):
            raise ConfigError(f"Langevin needs finite temperature >= 0 and friction >= 0, got temperature="
                              f"{self.temperature}, friction={self.friction}")
        whole = isinstance(self.seed, (int, np.integer)) and not isinstance(self.seed, bool)
        if not (whole and 0 <= self.seed < 2 ** 31):  # the kernels take it as an i32: 1.5 ran as seed 1
            raise ConfigError(f"Langevin seed must be an integer in [0, 2^31), got {self.seed!r}")

    def consts(self, dt, units):
        """The step kernel's constants [dt, force-to-acceleration factor, c1 = exp(-gamma dt), sqrt(1 - c1^2), kB T] of the Langevin step."""
        c1 = float(np.exp(-self.friction * dt))
        return [dt, units.ftm, c1, float(np.sqrt(max(1.0 - c1 * c1, 0.0))), units.kB * self.temperature]


@dataclass
class Berendsen:
    """Berendsen weak coupling for equilibration (forward only, not on the tape): after each
    step v *= sqrt(1 + dt/tau (T0/T - 1)). temperature T0 (epsilon/k_B or K), tau (time)."""

    temperature: float = 1.0
    tau: float = 0.1

    def __post_init__(self):
        if not (np.isfinite(self.temperature) and self.temperature >= 0 and np.isfinite(self.tau) and self.tau > 0):
            raise ConfigError(f"Berendsen needs finite temperature >= 0 and tau > 0, got temperature="
                              f"{self.temperature}, tau={self.tau}")


@ti.func
def _drift(vh, dt, mode, c1, c2sv, seed, t, idx):
    """From the half-kicked velocity vh: the position increment and the new velocity of one
    coordinate; A (velocity Verlet) or A O A with counter-based noise (BAOAB)."""
    dx = dt * vh
    vn = vh
    if mode == 1:
        # the noise is drawn in float64; cast to the run's precision (as the assignment would, but without
        # Taichi's 'may lose precision' warning in float32 runs)
        vn = ti.cast(c1 * vh + c2sv * gauss(seed, t, idx), float)
        dx = 0.5 * dt * (vh + vn)
    return dx, vn


@ti.kernel
def md_drift(x: _A3, v: _A3, f: _A3, pe: _A2, vir: _A3, disp: _A3, rdf: _A2, inv_m: _A1, cs: _A1,
             mode: ti.i32, seed: ti.i32, t: ti.i32, src: ti.i32, dst: ti.i32, track: ti.i32, tdisp: ti.i32,
             nrdf: ti.i32):
    for i in range(ti.max(x.shape[1], nrdf)):
        if i < x.shape[1]:
            dt = cs[DT]
            a = 0.5 * dt * cs[FTM] * inv_m[i]
            sv = ti.sqrt(cs[KT] * cs[FTM] * inv_m[i])
            for k in ti.static(range(3)):
                dx, vn = _drift(v[src, i, k] + a * f[src, i, k], dt, mode, cs[C1], cs[C2] * sv, seed, t, 3 * i + k)
                x[dst, i, k] = x[src, i, k] + dx
                v[dst, i, k] = vn
                f[dst, i, k] = 0.0
                if tdisp != 0:
                    disp[dst, i, k] = disp[src, i, k] + dx
            if track != 0:
                pe[dst, i] = 0.0
                for q in ti.static(range(6)):
                    if q < vir.shape[2]:  # the tensor (6) or the trace (1)
                        vir[dst, i, q] = 0.0
        if i < nrdf:
            rdf[dst, i] = rdf[src, i]


@ti.kernel
def md_close_drift(x: _A3, v: _A3, f: _A3, pe: _A2, vir: _A3, disp: _A3, rdf: _A2, inv_m: _A1, cs: _A1,
                   mode: ti.i32, seed: ti.i32, t: ti.i32, src: ti.i32, dst: ti.i32, track: ti.i32, tdisp: ti.i32,
                   nrdf: ti.i32, close: ti.i32, ref: _A2, moved: _A1):
    """The tape's step kernel: with ``close`` = 1 the closing half-kick of the previous step first,
    v[src] += dt/2 f[src] / m (state src complete), then :func:`md_drift` from slot src to dst, in
    one launch (differentiable: the kick is an atomic add, whose adjoint needs no stored value,
    and the drift reads v[src] after it). Also raises moved[0] to the largest squared
    displacement of x[dst] from ``ref`` (inf for NaN): the neighbour-list test, read by the caller
    (moved needs a gradient array, kept zero: the max takes no part in the derivatives)."""
    for i in range(ti.max(x.shape[1], nrdf)):
        if i < x.shape[1]:
            dt = cs[DT]
            a = 0.5 * dt * cs[FTM] * inv_m[i]
            sv = ti.sqrt(cs[KT] * cs[FTM] * inv_m[i])
            d2 = 0.0
            for k in ti.static(range(3)):
                if close != 0:
                    v[src, i, k] += a * f[src, i, k]
                dx, vn = _drift(v[src, i, k] + a * f[src, i, k], dt, mode, cs[C1], cs[C2] * sv, seed, t, 3 * i + k)
                xn = x[src, i, k] + dx
                x[dst, i, k] = xn
                v[dst, i, k] = vn
                f[dst, i, k] = 0.0
                if tdisp != 0:
                    disp[dst, i, k] = disp[src, i, k] + dx
                d = xn - ref[i, k]
                d2 += d * d
            if track != 0:
                pe[dst, i] = 0.0
                for q in ti.static(range(6)):
                    if q < vir.shape[2]:  # the tensor (6) or the trace (1)
                        vir[dst, i, q] = 0.0
            if not d2 < 1e300:  # NaN compares false
                d2 = ti.math.inf
            ti.atomic_max(moved[0], d2)
        if i < nrdf:
            rdf[dst, i] = rdf[src, i]


@ti.kernel
def md_close_drift_adjoint(inv_m: _A1, cs: _A1, mode: ti.i32, src: ti.i32, dst: ti.i32, track: ti.i32, tdisp: ti.i32,
                           nrdf: ti.i32, close: ti.i32, xb: _A3, vb: _A3, fb: _A3, peb: _A2, virb: _A3, dispb: _A3,
                           rdfb: _A2):
    """The adjoint of :func:`md_close_drift` written out (the values of Taichi's autodiff of it,
    tests/md/test_md_drift_adjoint.py), on the adjoints xb = dL/dx, vb, fb, peb, virb, dispb,
    rdfb of the same arrays: per coordinate, with vh the half-kicked velocity,

        dL/dvh = dt xb[dst] + vb[dst]                              (velocity Verlet)
               = dt/2 xb[dst] + c1 (vb[dst] + dt/2 xb[dst])          (BAOAB; the noise is fixed)
        xb[src] += xb[dst],  vb[src] += dL/dvh,  fb[src] += a dL/dvh  (a = dt/2 ftm / m)
        close: fb[src] += a vb[src]  (the closing kick v[src] += a f[src], after the line above)

    (xb[dst] takes dispb[dst] too when displacements are tracked), and the adjoints of every
    element the step writes in slot dst are cleared, as Taichi's adjoint of a store does. The
    step is linear in the state: no primal array is read, and the launch takes 9 arrays where
    Taichi's adjoint takes the step's 11 and their adjoints."""
    for i in range(ti.max(xb.shape[1], nrdf)):
        if i < xb.shape[1]:
            dt = cs[DT]
            a = 0.5 * dt * cs[FTM] * inv_m[i]
            c1 = cs[C1]
            for k in ti.static(range(3)):
                dxb = xb[dst, i, k]
                xb[src, i, k] += dxb
                xb[dst, i, k] = 0.0
                if tdisp != 0:
                    db = dispb[dst, i, k]
                    dxb += db
                    dispb[src, i, k] += db
                    dispb[dst, i, k] = 0.0
                vnb = vb[dst, i, k]
                vb[dst, i, k] = 0.0
                vhb = dt * dxb + vnb
                if mode == 1:
                    vhb = 0.5 * dt * dxb + c1 * (vnb + 0.5 * dt * dxb)
                vsb = vb[src, i, k] + vhb
                vb[src, i, k] = vsb
                fk = a * vhb
                if close != 0:
                    fk += a * vsb
                fb[src, i, k] += fk
                fb[dst, i, k] = 0.0
            if track != 0:
                peb[dst, i] = 0.0
                for q in ti.static(range(6)):
                    if q < virb.shape[2]:
                        virb[dst, i, q] = 0.0
        if i < nrdf:
            rdfb[src, i] += rdfb[dst, i]
            rdfb[dst, i] = 0.0


class CloseDrift:
    """A 'kernel' for :func:`diffsim.tape.launch`: :func:`md_close_drift` forward, and its
    hand-written adjoint :func:`md_close_drift_adjoint` (Taichi's autodiff of the step passes
    every primal array and its adjoint, and adds through its generic reverse pass)."""

    def __call__(self, x, v, f, pe, vir, disp, rdf, inv_m, cs, mode, seed, t, src, dst, track, tdisp, nrdf, close, ref,
                 moved):
        md_close_drift(x, v, f, pe, vir, disp, rdf, inv_m, cs, mode, seed, t, src, dst, track, tdisp, nrdf, close,
                       ref, moved)

    def grad(self, x, v, f, pe, vir, disp, rdf, inv_m, cs, mode, seed, t, src, dst, track, tdisp, nrdf, close, ref,
             moved):
        md_close_drift_adjoint(inv_m, cs, mode, src, dst, track, tdisp, nrdf, close, x.grad, v.grad, f.grad, pe.grad,
                               vir.grad, disp.grad, rdf.grad)


close_drift = CloseDrift()


@ti.func
def kick_drift_atom(i, x: ti.template(), v: ti.template(), f: ti.template(), pe: ti.template(), vir: ti.template(),
                    ref: ti.template(), inv_m: ti.template(), cs: ti.template(), mode, seed, t, src, dst, kicks,
                    clear: ti.template()):
    """Forward only: md_drift of atom i from slot src to dst (may be the same) after ``kicks``
    half-kicks with f[src] (2 folds in the closing kick of the previous step), zeroing f[dst]
    when ``clear`` >= 1 and pe, vir when it is 2; returns the squared displacement of x[dst] from ``ref`` (inf if NaN),
    the neighbour-list rebuild test, in the same pass."""
    dt = cs[DT]
    a = kicks * 0.5 * dt * cs[FTM] * inv_m[i]
    sv = ti.sqrt(cs[KT] * cs[FTM] * inv_m[i])
    d2 = 0.0
    for k in ti.static(range(3)):
        dx, vn = _drift(v[src, i, k] + a * f[src, i, k], dt, mode, cs[C1], cs[C2] * sv, seed, t, 3 * i + k)
        xn = x[src, i, k] + dx
        x[dst, i, k] = xn
        v[dst, i, k] = vn
        if ti.static(clear >= 1):
            f[dst, i, k] = 0.0
        d = xn - ref[i, k]
        d2 += d * d
    if ti.static(clear == 2):
        pe[dst, i] = 0.0
        for q in ti.static(range(6)):
            if q < vir.shape[2]:
                vir[dst, i, q] = 0.0
    if not d2 < 1e300:  # NaN compares false
        d2 = ti.math.inf
    return d2


@ti.kernel
def md_kick_drift(x: _A3, v: _A3, f: _A3, pe: _A2, vir: _A3, ref: _A2, inv_m: _A1, cs: _A1, mode: ti.i32,
                  seed: ti.i32, t: ti.i32, src: ti.i32, dst: ti.i32, kicks: ti.i32, track: ti.template()) -> ti.f64:
    """:func:`kick_drift_atom` for every atom, zeroing f[dst] (and pe, vir with ``track``);
    returns the largest squared displacement."""
    most = 0.0
    for i in range(x.shape[1]):
        ti.atomic_max(most, kick_drift_atom(i, x, v, f, pe, vir, ref, inv_m, cs, mode, seed, t, src, dst, kicks,
                                            2 if ti.static(track) else 1))
    return most


@ti.kernel
def md_kick(v: _A3, f: _A3, inv_m: _A1, cs: _A1, dst: ti.i32):
    for i in range(v.shape[1]):
        a = 0.5 * cs[DT] * cs[FTM] * inv_m[i]
        for k in ti.static(range(3)):
            v[dst, i, k] += a * f[dst, i, k]


@ti.kernel
def kinetic_sum(v: _A3, s: ti.i32, mass: _A1) -> ti.f64:
    e = 0.0
    for i in range(v.shape[1]):
        e += 0.5 * mass[i] * (v[s, i, 0] ** 2 + v[s, i, 1] ** 2 + v[s, i, 2] ** 2)
    return e


@ti.kernel
def scale_velocities(v: _A3, s: ti.i32, lam: ti.f64):
    for i, k in ti.ndrange(v.shape[1], 3):
        v[s, i, k] *= lam


@ti.kernel
def scale_state(x: _A3, v: _A3, ref: _A2, s: ti.i32, mu: ti.f64):
    """Positions x[s] and reference positions ref times mu, velocities v[s] divided by mu (a box
    rescaled by mu)."""
    for i, k in ti.ndrange(x.shape[1], 3):
        # in float64, stored in the run's precision (no 'may lose precision' warning in float32)
        x[s, i, k] = ti.cast(x[s, i, k] * mu, float)
        ref[i, k] = ti.cast(ref[i, k] * mu, float)
        v[s, i, k] = ti.cast(v[s, i, k] / mu, float)


@ti.kernel
def virial_trace(vir: _A3, s: ti.i32) -> ti.f64:
    """Sum over atoms of vir[s, i, 0] + vir[s, i, 1] + vir[s, i, 2] (energy): the virial W of P = (2 K + W) / (3 V)."""
    w = 0.0
    for i in range(vir.shape[1]):
        w += vir[s, i, 0] + vir[s, i, 1] + vir[s, i, 2]
    return w
