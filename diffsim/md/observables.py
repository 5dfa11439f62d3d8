"""Observables and the costs built on them.

NumPy functions (post-processing, references): :func:`pressure`, :func:`rdf_smoothed`,
:func:`msd`. Taichi side: the smoothed radial distribution function accumulated during a
rollout (:class:`RDF`, the ``rdf`` state field), and cost terms for :class:`~diffsim.md.system.MDSystem`:
:class:`PotentialEnergy`, :class:`KineticEnergy` (terminal or running), :class:`RDFMatch`,
:class:`MSDMatch` (terminal). They follow the one cost protocol of :mod:`diffsim.costs`
(:class:`~diffsim.costs.Cost`: ``running(system, x, u, slot0, t0, t1, loss)``,
``terminal(system, x, slot, loss)``, ``requires``: the state fields a cost needs recorded), and
an MDSystem also takes the ready and Python costs of :mod:`diffsim.costs`.

The smoothed RDF at bin centres r_b (Gaussian broadening of width w):

    g(r_b) = V / (N (N - 1) / 2) * sum_{i<j} exp(-(r_b - r_ij)^2 / (2 w^2)) / (sqrt(2 pi) w 4 pi r_b^2)

summed over pairs closer than r_max + 4 w (which must not exceed the force field's cutoff,
so that every such pair is in the neighbour list); it tends to 1 for an ideal gas and is smooth in the
positions, hence differentiable.
"""

import numpy as np
import taichi as ti

from ..costs import Cost
from ..errors import ConfigError, finite_number
from ..runtime import config
from ..tape import forward_only, launch
from .space import displacement, min_image_np

_A1 = ti.types.ndarray(ndim=1)
_A2 = ti.types.ndarray(ndim=2)
_A3 = ti.types.ndarray(ndim=3)


# ---------------------------------------------------------------------- NumPy observables

def pressure(kinetic, virial, volume):
    """P = (2 KE + W) / (3 V): kinetic energy and virial W = sum_pairs r_ij . f_ij (energy),
    volume (length^3). Reduced units: epsilon / sigma^3; metal: eV / Angstrom^3."""
    return (2.0 * kinetic + virial) / (3.0 * volume)


#: the six components of a symmetric tensor, LAMMPS's order: xx, yy, zz, xy, xz, yz
VOIGT = ("xx", "yy", "zz", "xy", "xz", "yz")
_VOIGT_AXES = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))


def kinetic_tensor(masses, velocities, units="lj"):
    """K_ab = sum_i m_i v_ia v_ib (energy; twice the kinetic energy on the diagonal) of velocities
    (..., n, 3) and masses (n,), as (..., 6) in the order xx, yy, zz, xy, xz, yz. units: "lj",
    "metal", or a Model or MDSystem (its units)."""
    from .units import get_units

    v = np.asarray(velocities, dtype=np.float64)
    m = np.asarray(masses, dtype=np.float64)
    return np.stack([np.einsum("i,...i,...i->...", m, v[..., a], v[..., b]) for a, b in _VOIGT_AXES], -1) \
        / get_units(units).ftm


def pressure_tensor(virial_tensor, volume, masses=None, velocities=None, units="lj"):
    """P_ab = (K_ab + W_ab) / V (LAMMPS's ``compute pressure``: kinetic plus virial part):
    virial_tensor W (..., 6) (energy, order xx, yy, zz, xy, xz, yz), volume (length^3), and
    optionally masses (n,) with velocities (..., n, 3) for the kinetic part K
    (:func:`kinetic_tensor`; units "lj", "metal", or the Model or MDSystem they belong to).
    Returns (..., 6) in energy/length^3 (reduced: epsilon/sigma^3; metal: eV/Angstrom^3). The scalar pressure is the mean of the first three components."""
    w = np.asarray(virial_tensor, dtype=np.float64)
    if velocities is not None:
        w = w + kinetic_tensor(masses, velocities, units)
    return w / float(volume)


def rdf_smoothed(positions, box, r, width, reach=None, tilt=None):
    """Smoothed RDF g(r) of one configuration (NumPy reference; formula in the module doc).
    positions (n, 3), box (3,) all periodic (with optional ``tilt`` (xy, xz, yz)) or a
    lower-triangular (3, 3) cell (``Model.cell``), r: bin centres (length), width: Gaussian sigma.
    A box with an open axis is a ConfigError (the RDF needs a volume)."""
    from .model import parse_cell

    x = np.asarray(positions, dtype=np.float64)
    box, tilt = parse_cell(box, tilt)
    if not np.all(box > 0):
        raise ConfigError(f"rdf_smoothed needs a cell periodic on all three axes (a volume), got box {box.tolist()}")
    r = np.asarray(r, dtype=np.float64)
    n = len(x)
    vol = float(np.prod(box))
    reach = r.max() + 4 * width if reach is None else reach
    g = np.zeros_like(r)
    for i in range(n - 1):
        d = min_image_np(x[i] - x[i + 1:], box, tilt)
        rij = np.sqrt(np.sum(d * d, axis=1))
        rij = rij[rij < reach]
        diff = r[None, :] - rij[:, None]
        g += np.sum(np.exp(-diff ** 2 / (2 * width ** 2)), axis=0)
    return g * vol / (n * (n - 1) / 2) / (np.sqrt(2 * np.pi) * width * 4 * np.pi * r ** 2)


def msd(positions, reference):
    """Mean squared displacement mean_i |x_i - x_ref_i|^2 (length^2) of unwrapped positions."""
    d = np.asarray(positions, dtype=np.float64) - np.asarray(reference, dtype=np.float64)
    return float(np.mean(np.sum(d * d, axis=-1)))


# ---------------------------------------------------------------------- the RDF state field

@ti.kernel
def rdf_count_frame(rdf: _A2, os: ti.i32):
    for _ in range(1):
        rdf[os, rdf.shape[1] - 1] += 1.0


@ti.kernel
def rdf_accumulate(x: _A3, xs: ti.i32, rdf: _A2, os: ti.i32, cfg: _A1, boxes: _A2, tilted: ti.template(), nbr: _A2, nnb: _A1,
                   rb: _A1, pref: _A1, width: ti.f64, rcut: ti.f64):
    for i, b in ti.ndrange(x.shape[1], rb.shape[0]):
        for q in range(nnb[i]):
            j = nbr[i, q]
            c = cfg[i]
            _d0, _d1, _d2, r2 = displacement(x, xs, i, j, boxes, c, tilted)
            r = ti.sqrt(r2)
            if r < rcut:  # pairs beyond the last bin + 4 width: not all listed, so none counted
                dr = rb[b] - r
                rdf[os, b] += pref[b] * ti.exp(-dr * dr / (2.0 * width * width))


class RDF:
    """Smoothed RDF accumulated over a rollout: bins centred at ``r`` (length), Gaussian
    ``width`` (length), sampled every ``every`` steps (after steps t with (t + 1) % every == 0).

    Adds the state field ``rdf`` (nbins + 1,): the sum of g(r_b) over sampled frames, and the
    number of frames in the last entry. ``r.max() + 4 width`` must not exceed the force
    field's cutoff (the neighbour list guarantees pairs within the cutoff only).
    """

    def __init__(self, r, width=0.05, every=10):
        self.r = np.asarray(r, dtype=np.float64)
        if self.r.ndim != 1 or self.r.size < 1 or not np.all(np.isfinite(self.r) & (self.r > 0)):
            raise ConfigError(f"RDF bin centres must be a positive finite 1-D array (length), got {self.r}")
        whole = isinstance(every, (int, np.integer)) and not isinstance(every, bool)
        if not (np.isfinite(width) and width > 0 and whole and every >= 1):
            raise ConfigError(f"RDF needs a finite width > 0 (length) and a whole number every >= 1 (steps), "
                              f"got width={width!r}, every={every!r}")
        self.width, self.every = float(width), int(every)

    @property
    def nbins(self):
        """Number of histogram bins (the radii r at which g(r) is sampled)."""
        return self.r.size

    def bind(self, ff, n, volume):
        """Attach to force field ``ff`` for ``n`` atoms in ``volume`` (box volume, length^3); a ConfigError if the RDF reaches past the cutoff."""
        reach = float(self.r.max() + 4 * self.width)
        self.reach = reach
        if reach > ff.cutoff + 1e-12:
            raise ConfigError(f"RDF reaches r = {reach:.4g} (last bin + 4 width) beyond the force-field cutoff "
                              f"{ff.cutoff:.4g}; pairs beyond the cutoff are not listed: use fewer bins")
        if not np.isfinite(volume):
            raise ConfigError("the RDF needs a periodic box in all three axes")
        pref = volume / (n * (n - 1) / 2) / (np.sqrt(2 * np.pi) * self.width * 4 * np.pi * self.r ** 2)
        self.rb = ti.ndarray(config().real, self.nbins)
        self.rb.from_numpy(self.r.astype(config().numpy_real))
        self.pref = ti.ndarray(config().real, self.nbins)
        self.pref.from_numpy(pref.astype(config().numpy_real))

    def launches(self, ff, x, xs, rdf, os):
        """Tape launches that add this state's smoothed pair histogram to ``rdf`` (slot ``xs`` of positions ``x``)."""
        nl = ff.nlist
        # The frame count is a constant: counted forward-only. (Counting it inside rdf_accumulate,
        # under `if i == 0 and b == 0` before the pair loop, made Taichi 1.7.4's reverse mode
        # return wrong position gradients, silently.)
        return [forward_only(rdf_count_frame, rdf, os),
                ff.lazy(rdf_accumulate, lambda: (x, xs, rdf, os, nl.cfg, nl.boxes, nl.triclinic, nl.nbr, nl.nnb, self.rb,
                                                 self.pref, self.width, self.reach))]

    @staticmethod
    def mean(acc):
        """g(r) averaged over the frames of an accumulated ``rdf`` state (nbins + 1,)."""
        acc = np.asarray(acc, dtype=np.float64)
        return acc[:-1] / max(acc[-1], 1.0)


# ---------------------------------------------------------------------- costs

@ti.kernel
def _pe_cost(pe: _A2, s0: ti.i32, s1: ti.i32, w: ti.f64, loss: _A1):
    for s, i in ti.ndrange((s0, s1), pe.shape[1]):
        loss[0] += w * pe[s, i]


@ti.kernel
def _ke_cost(v: _A3, s0: ti.i32, s1: ti.i32, mass: _A1, w: ti.f64, loss: _A1):
    for s, i in ti.ndrange((s0, s1), v.shape[1]):
        loss[0] += w * 0.5 * mass[i] * (v[s, i, 0] ** 2 + v[s, i, 1] ** 2 + v[s, i, 2] ** 2)


@ti.kernel
def _rdf_cost(rdf: _A2, s: ti.i32, target: _A1, w: ti.f64, loss: _A1):
    for b in range(target.shape[0]):
        g = rdf[s, b] / ti.max(rdf[s, target.shape[0]], 1.0)
        loss[0] += w * (g - target[b]) ** 2


@ti.kernel
def _msd_sum(disp: _A3, s: ti.i32, acc: _A1):
    for i in range(disp.shape[1]):
        acc[0] += (disp[s, i, 0] ** 2 + disp[s, i, 1] ** 2 + disp[s, i, 2] ** 2) / disp.shape[1]


@ti.kernel
def _msd_cost(acc: _A1, target: ti.f64, w: ti.f64, loss: _A1):
    for _ in range(1):
        loss[0] += w * (acc[0] - target) ** 2


@ti.kernel
def _zero1(a: _A1):
    for i in range(a.shape[0]):
        a[i] = 0.0


@ti.kernel
def _pressure_sum(v: _A3, vir: _A3, s: ti.i32, mass: _A1, inv_vftm: ti.f64, inv_v: ti.f64, acc: _A1):
    for i in range(v.shape[1]):
        for q in ti.static(range(6)):
            a, b = ti.static(_VOIGT_AXES[q][0], _VOIGT_AXES[q][1])
            acc[q] += mass[i] * v[s, i, a] * v[s, i, b] * inv_vftm + vir[s, i, q] * inv_v


@ti.kernel
def _tensor_cost(acc: _A1, target: _A1, weights: _A1, loss: _A1):
    for q in range(6):
        loss[0] += weights[q] * (acc[q] - target[q]) ** 2


class PressureMatch(Cost):
    """weight * sum_c (P_c(T) - target_c)^2 over the pressure tensor components c of the final
    state, P = (K + W) / V as in :func:`pressure_tensor` (energy/length^3). ``target``: a number,
    to which each of the three diagonal components xx, yy, zz is driven separately (three squares,
    the off-diagonal ones left free; the optimum is where their mean, the hydrostatic pressure,
    meets it, when the three respond alike to the parameters), or six components (xx, yy, zz,
    xy, xz, yz) with NaN for a free one. One frame's pressure fluctuates: to match a mean
    pressure, average frames in a :class:`~diffsim.costs.NumpyCost` on the ``"vir"`` field or
    match over several windows. Needs
    the per-atom virial tensors (``requires`` "pressure": the system observes them) and a
    periodic box."""

    requires = ("pressure",)

    def __init__(self, target, weight=1.0):
        t = np.asarray(target, dtype=np.float64)
        if t.ndim == 0:
            t = np.array([float(t)] * 3 + [np.nan] * 3)
        if t.shape != (6,) or not np.all(np.isfinite(t) | np.isnan(t)) or np.all(np.isnan(t)):
            raise ConfigError(f"PressureMatch target must be a number or 6 components (xx, yy, zz, xy, xz, yz; NaN: "
                              f"free), got {target!r}")
        self.target_np, self.weight = t, finite_number(weight, "PressureMatch weight")
        self._arrays = None

    def terminal(self, system, x, slot, loss):
        volume = system.model.volume
        if not np.isfinite(volume):
            raise ConfigError("PressureMatch needs a periodic box in all three axes (the pressure needs a volume)")
        if self._arrays is None:
            real, npr = config().real, config().numpy_real
            acc = ti.ndarray(real, 6, needs_grad=True)
            target = ti.ndarray(real, 6)
            target.from_numpy(np.nan_to_num(self.target_np).astype(npr))
            weights = ti.ndarray(real, 6)
            weights.from_numpy((self.weight * np.isfinite(self.target_np)).astype(npr))
            self._arrays = acc, target, weights
        acc, target, weights = self._arrays

        def reset():
            _zero1(acc)
            _zero1(acc.grad)

        return [forward_only(reset),
                launch(_pressure_sum, x.v, x.vir, slot, system.mass, 1.0 / (volume * system.units.ftm), 1.0 / volume,
                       acc),
                launch(_tensor_cost, acc, target, weights, loss)]


class PotentialEnergy(Cost):
    """weight * U(x_T) (terminal), or weight * (sum of U(x_t) over t < T) with ``running=True``;
    energy unit. Linear in U: to drive U (or its mean) to a target value, write the squared
    difference as a :class:`~diffsim.costs.NumpyCost` on the ``"pe"`` field (per-atom energies,
    observed with ``MDSystem(observe=("energy",))``)."""

    requires = ("energy",)

    def __init__(self, weight=1.0, running=False):
        self.weight, self.is_running = finite_number(weight, "PotentialEnergy weight"), bool(running)

    def running(self, system, x, u, slot0, t0, t1, loss):
        return [launch(_pe_cost, x.pe, slot0, slot0 + t1 - t0, self.weight, loss)] if self.is_running else []

    def terminal(self, system, x, slot, loss):
        return [] if self.is_running else [launch(_pe_cost, x.pe, slot, slot + 1, self.weight, loss)]


class KineticEnergy(Cost):
    """weight * K(v_T) (terminal) or weight * sum_{t < T} K(v_t) (running), K = sum m v^2 / 2 in the
    model's energy unit (epsilon, or eV in metal units: :func:`~diffsim.md.model.kinetic_energy`'s
    and the frames' kinetic energy, so that it adds to :class:`PotentialEnergy`)."""

    def __init__(self, weight=1.0, running=False):
        self.weight, self.is_running = finite_number(weight, "KineticEnergy weight"), bool(running)

    def running(self, system, x, u, slot0, t0, t1, loss):
        if not self.is_running:
            return []
        return [launch(_ke_cost, x.v, slot0, slot0 + t1 - t0, system.mass, self.weight / system.units.ftm, loss)]

    def terminal(self, system, x, slot, loss):
        return [] if self.is_running else [launch(_ke_cost, x.v, slot, slot + 1, system.mass,
                                                  self.weight / system.units.ftm, loss)]


class RDFMatch(Cost):
    """weight * sum_b (gbar(r_b) - target_b)^2 with gbar the RDF averaged over the rollout's
    sampled frames (needs ``MDSystem(rdf=RDF(...))``); target (nbins,)."""

    requires = ("rdf",)

    def __init__(self, target, weight=1.0):
        try:
            self.target_np = np.asarray(target, dtype=np.float64)
        except (TypeError, ValueError):
            self.target_np = np.array(np.nan)
        if self.target_np.ndim != 1 or not np.all(np.isfinite(self.target_np)):
            raise ConfigError(f"RDFMatch target must be a 1-D array of finite g(r) values, one per RDF bin, got "
                              f"{target!r}")
        self.weight = finite_number(weight, "RDFMatch weight")
        self._target = None

    def terminal(self, system, x, slot, loss):
        if system.rdf is None or self.target_np.shape != (system.rdf.nbins,):
            raise ConfigError(f"RDFMatch target must have shape ({getattr(system.rdf, 'nbins', '?')},) "
                              f"(the RDF bins), got {self.target_np.shape}")
        if self._target is None:
            self._target = ti.ndarray(config().real, self.target_np.size)
            self._target.from_numpy(self.target_np.astype(config().numpy_real))
        return [launch(_rdf_cost, x.rdf, slot, self._target, self.weight, loss)]


class MSDMatch(Cost):
    """weight * (MSD(T) - target)^2, MSD(T) = mean_i |x_i(T) - x_i(0)|^2 (length^2)."""

    requires = ("msd",)

    def __init__(self, target, weight=1.0):
        self.target = finite_number(target, "MSDMatch target")
        self.weight = finite_number(weight, "MSDMatch weight")
        self._acc = None

    def terminal(self, system, x, slot, loss):
        if self._acc is None:
            self._acc = ti.ndarray(config().real, 1, needs_grad=True)
        acc = self._acc

        def reset():
            _zero1(acc)
            _zero1(acc.grad)

        return [forward_only(reset), launch(_msd_sum, x.disp, slot, acc),
                launch(_msd_cost, acc, self.target, self.weight, loss)]
