"""What every interaction term of :mod:`diffsim.md` shares: the :class:`Potential` base class,
the pair cutoff transform (:class:`Shift`, :func:`cutoff_shift`), and how a pair's force,
energy and virial are added to the per-atom arrays (:func:`add_virial`).

Every potential holds its parameters in ``ti.ndarray(needs_grad=True)`` vectors (listed by
``parameters()``) and returns launches that ADD, for positions ``x[xs]`` (ndarray
(slots, n, 3)), forces into ``f[fs]`` (slots, n, 3) and, when ``track`` is on, per-atom
potential energy into ``pe[os]`` (slots, n) and the per-atom virial tensor
``W_i,ab = sum_j d_a f_b / 2`` (d = x_i - x_j, f the pair force on i; components xx, yy, zz, xy,
xz, yz in LAMMPS's order, energy unit) into ``vir[os]`` (slots, n, 6), or its trace alone (the
scalar virial ``sum_j r_ij . f_ij / 2``) into an array of width 1 (slots, n, 1). Forces
accumulate into global arrays (TAICHI.md rule 1), with Newton's third law over the half
neighbour list (``f[i] += f_ij; f[j] -= f_ij``).
"""

import enum

import numpy as np
import taichi as ti

from ..errors import ConfigError
from ..runtime import config


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
