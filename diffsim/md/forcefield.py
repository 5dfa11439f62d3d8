"""A force field: potentials + atom types + neighbour list, evaluated on positions.

:class:`ForceField` is what the MD system, force matching and the observables share. It
owns the neighbour list (built outside differentiation) and hands out the force launches of
all its potentials; :meth:`ForceField.evaluate` is the forward-only convenience that returns
energy, forces and virial of one configuration as NumPy arrays.
"""

from dataclasses import dataclass

import numpy as np
import taichi as ti

from ..errors import ConfigError
from ..runtime import config
from ..tape import launch
from .model import atom_types, parse_cell
from .neighbors import NeighborList
from .potentials import PairPotential, Potential

_A1 = ti.types.ndarray(ndim=1)
_A2 = ti.types.ndarray(ndim=2)
_A3 = ti.types.ndarray(ndim=3)


class LazyKernel:
    """A 'kernel' for :func:`diffsim.tape.launch` whose arguments are read when it runs.

    The neighbour list may be regrown (new arrays) between the moment a System hands out its
    launches and the moment the tape runs them; resolving the arguments late keeps them current.
    """

    def __init__(self, kernel, args_fn):
        self.kernel, self.args_fn = kernel, args_fn

    def __call__(self):
        self.kernel(*self.args_fn())

    def grad(self):
        self.kernel.grad(*self.args_fn())


MAX_TYPES = 4096  # per-pair tables of 4096^2 entries: 134 MB per parameter in float64


@ti.kernel
def zero_forces(f: _A3, fs: ti.i32, pe: _A2, vir: _A3, os: ti.i32, track: ti.i32):
    for i in range(f.shape[1]):
        for k in ti.static(range(3)):
            f[fs, i, k] = 0.0
        if track != 0:
            pe[os, i] = 0.0
            for q in ti.static(range(6)):
                if q < vir.shape[2]:
                    vir[os, i, q] = 0.0


@dataclass
class Evaluation:
    """One configuration's energy (energy unit), forces (n, 3, energy/length), virial
    W = sum_pairs r_ij . f_ij (energy), per-atom energies (n,) and per-atom virials (n,) (their
    traces), the virial tensor ``virial_tensor`` (6,) W_ab = sum_pairs (r_ij)_a (f_ij)_b in
    LAMMPS's order xx, yy, zz, xy, xz, yz (energy), its per-atom parts ``atom_virials`` (n, 6),
    and the box ``volume`` (length^3; NaN if an axis is open)."""

    energy: float
    forces: np.ndarray
    virial: float
    energies: np.ndarray
    virials: np.ndarray
    virial_tensor: np.ndarray = None
    atom_virials: np.ndarray = None
    volume: float = float("nan")

    def pressure_tensor(self, masses=None, velocities=None, units="lj") -> np.ndarray:
        """Pressure tensor (6,) P_ab = (sum_i m_i v_ia v_ib + W_ab) / V in the order xx, yy, zz, xy,
        xz, yz (LAMMPS's ``compute pressure``), energy/length^3 (reduced: epsilon/sigma^3; metal:
        eV/Angstrom^3, times ``UNITS["metal"].pressure_in_bar`` for bar). Without velocities, the
        virial part only (the kinetic part of atoms at rest). masses (n,), velocities (n, 3);
        units: "lj", "metal", or the Model or MDSystem they come from (the force field does not
        know its units: say them, or the kinetic part is read in reduced units)."""
        from .observables import pressure_tensor

        return pressure_tensor(self.virial_tensor, self.volume, masses, velocities, units)


class ForceField:
    """Potentials acting on ``n`` atoms of given ``types`` in a box.

    potentials: list of :class:`~diffsim.md.potentials.Potential`.
    types: (n,) ints; box: (3,) edges (0 = open), a lower-triangular (3, 3) cell as
    :attr:`Model.cell <diffsim.md.model.Model.cell>` gives it (a triclinic model's force field:
    ``ForceField(potentials, model.types, model.cell)``), or ``boxes`` (nconf, 3) with ``cfg``
    (n,) for several stacked configurations (force matching). tilt: optional triclinic tilts
    (xy, xz, yz) (length), (3,) or (nconf, 3), LAMMPS's cell a = (lx, 0, 0), b = (xy, ly, 0),
    c = (xz, yz, lz) with ``box`` = (lx, ly, lz) (see :mod:`diffsim.md.space`; the volume is
    lx ly lz, the cell's determinant). skin: Verlet skin (length) added to the largest cutoff; capacity/grow:
    see :class:`~diffsim.md.neighbors.NeighborList`.
    """

    def __init__(self, potentials, types, box=None, skin=0.3, cfg=None, capacity=None, grow=True,
                 method="auto", tilt=None):
        if isinstance(potentials, Potential):
            potentials = [potentials]
        potentials = list(potentials)
        if not potentials:
            raise ConfigError("a ForceField needs at least one potential")
        for p in potentials:
            if not isinstance(p, Potential):
                raise ConfigError(f"{p!r} is not a diffsim.md potential")
        types = atom_types(types)
        self.n = int(types.size)
        self.ntypes = int(types.max()) + 1
        if self.ntypes > MAX_TYPES:
            raise ConfigError(f"atom type {self.ntypes - 1} is beyond the {MAX_TYPES} types a force field holds (its "
                              "pair tables are ntypes x ntypes): number the types 0, 1, 2, ... without gaps, e.g. "
                              "np.unique(types, return_inverse=True)[1]")
        self.potentials = potentials
        config()  # start the default runtime if nothing has yet, as building a system does
        names = {}
        for p in potentials:
            p.bind(self.ntypes)
            if hasattr(p, "check_atoms"):
                p.check_atoms(self.n)
            for name in p.parameters():
                if name in names:
                    raise ConfigError(f"two potentials define parameter {name!r} ({type(names[name]).__name__} and "
                                      f"{type(p).__name__}): give one a prefix, e.g. prefix='b_'")
                names[name] = p
        self.types_np = types.astype(np.int32)
        self.types = ti.ndarray(ti.i32, self.n)
        self.types.from_numpy(self.types_np)
        cut = max(p.max_cutoff() for p in potentials)
        self.cutoff = cut
        self.has_pairs = any(p.needs_list for p in potentials)  # pair or many-body terms: a neighbour list
        # the forward-only gather path (full list) serves pair potentials only
        self.gathers = all(isinstance(p, PairPotential) or not p.needs_list for p in potentials)
        if cfg is None and np.shape(box) == (3, 3):  # one configuration's cell, not three boxes
            box, tilt = parse_cell(box, tilt)
        boxes = np.zeros((1, 3)) if box is None else np.atleast_2d(np.asarray(box, dtype=np.float64))
        self.nlist = NeighborList(self.n, cut if cut > 0 else 1.0, skin, boxes, cfg, capacity, grow, method,
                                  tilts=tilt)
        self.boxes_np = self.nlist.boxes_np
        self.tilts_np = self.nlist.tilts_np
        self._scratch = None

    # ------------------------------------------------------------------ launches

    def lazy(self, kernel, args_fn):
        """A launch of ``kernel`` whose arguments ``args_fn()`` gives when it runs (arrays that are rebuilt between steps)."""
        return launch(LazyKernel(kernel, args_fn))

    def parameters(self) -> dict:
        """{name: ndarray} of every potential's fittable parameters (the pair tables, with gradients)."""
        out = {}
        for p in self.potentials:
            out.update(p.parameters())
        return out

    def force_launches(self, x, xs, f, fs, pe, vir, os, track, a0=0, a1=None, rows=True, gathered=False):
        """Launches adding forces on ``x[xs]`` into ``f[fs]`` (and pe/vir into slot ``os`` when
        ``track``) for every potential; the caller zeroes the buffers. Differentiable.
        rows=False leaves out the pair potentials' parameter rows (:meth:`row_launches`): a
        caller evaluating forces many times with the same parameters launches those once before."""
        out = []
        for p in self.potentials:
            if isinstance(p, PairPotential):
                out.extend(p.force_launches(self, x, xs, f, fs, pe, vir, os, track, a0, a1, rows=rows,
                                            gathered=gathered))
            else:
                out.extend(p.force_launches(self, x, xs, f, fs, pe, vir, os, track, a0, a1))
        return out

    def row_launches(self):
        """The pair potentials' parameter-row launches (see :meth:`force_launches`' ``rows``): on
        the tape, before every force launch that was made with rows=False, and after the parameters
        last changed; their adjoints must run after those launches' adjoints."""
        return [p.row_launch(self.n) for p in self.potentials if isinstance(p, PairPotential)]

    def gather_forces(self, cells, x, s, f, pe, vir, track):
        """Forward only: add the forces on ``x[s]`` into ``f[s]`` (pe/vir when ``track``), pair
        potentials through the full list ``cells`` (:mod:`diffsim.md.cells`), bonded ones as on
        the tape. Call :meth:`prepare_gather` first."""
        for p in self.potentials:
            if isinstance(p, PairPotential):
                p.gather(self, cells, x, s, f, pe, vir, track)
            else:
                for lc in p.force_launches(self, x, s, f, s, pe, vir, s, track):
                    lc.forward()

    def prepare_gather(self):
        """Shift constants of the pair potentials at their cutoffs, for :meth:`gather_forces`."""
        for p in self.potentials:
            if isinstance(p, PairPotential):
                p.prepare_gather()

    def build(self, x, slot=0):
        """(Re)build the neighbour list from ``x[slot]`` (forward only)."""
        if self.has_pairs:
            self.nlist.build(x, slot)

    # ------------------------------------------------------------------ forward-only evaluation

    def _buffers(self):
        if self._scratch is None:
            real = config().real
            self._scratch = {k: ti.ndarray(real, s) for k, s in
                             (("x", (1, self.n, 3)), ("f", (1, self.n, 3)), ("pe", (1, self.n)), ("vir", (1, self.n, 6)))}
        return self._scratch

    def evaluate(self, positions, rebuild=True) -> Evaluation:
        """Energy, forces and virial of one configuration ``positions`` (n, 3) (NumPy, float64).
        Atoms closer than 1e-3 (length) to another, or results that are not finite, are a
        ConfigError naming the atoms."""
        try:
            pos = np.array(positions, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"positions must be a real array of shape ({self.n}, 3): {exc}") from None
        if pos.shape != (self.n, 3):
            raise ConfigError(f"positions must have shape ({self.n}, 3), got {pos.shape}")
        if not np.all(np.isfinite(pos)):
            i, k = (int(q) for q in np.argwhere(~np.isfinite(pos))[0])
            raise ConfigError(f"positions[{i}, {k}] is {pos[i, k]}: positions must be finite")
        self._check_overlaps(pos)
        b = self._buffers()
        b["x"].from_numpy(pos[None].astype(config().numpy_real))
        if rebuild:
            self.build(b["x"], 0)
        zero_forces(b["f"], 0, b["pe"], b["vir"], 0, 1)
        for lc in self.force_launches(b["x"], 0, b["f"], 0, b["pe"], b["vir"], 0, 1):
            lc.forward()
        pe = b["pe"].to_numpy()[0].astype(np.float64)
        vir = b["vir"].to_numpy()[0].astype(np.float64)
        forces = b["f"].to_numpy()[0].astype(np.float64)
        if not (np.all(np.isfinite(pe)) and np.all(np.isfinite(forces))):
            self._raise_nonfinite(pos, pe, forces)
        trace = vir[:, :3].sum(1)
        box = self.boxes_np[0]
        volume = float(np.prod(box)) if len(self.boxes_np) == 1 and np.all(box > 0) else float("nan")
        return Evaluation(float(pe.sum()), forces, float(trace.sum()), pe, trace, vir.sum(0), vir, volume)

    def _check_overlaps(self, pos, min_distance=1e-3):
        """A ConfigError naming two atoms closer than ``min_distance`` (length; minimum image), as
        :class:`~diffsim.md.model.Model` checks: on top of each other (through an image, a
        rounding error apart) they would come back with NaN or astronomically large forces."""
        from .model import _check_overlaps, _check_overlaps_triclinic

        box, tilt = self.boxes_np[0], self.tilts_np[0]
        if np.any(tilt):
            _check_overlaps_triclinic(pos, box, tilt, min_distance)
        else:
            _check_overlaps(pos, box, min_distance)

    def _raise_nonfinite(self, pos, pe, forces):
        """A ConfigError for an evaluation whose energy or forces came out NaN or Inf: the first
        atom concerned and what to check."""
        i = int(np.argmax(~np.isfinite(pe) | ~np.all(np.isfinite(forces), axis=1)))
        raise ConfigError(f"the force field gives atom {i} a non-finite {'energy' if not np.isfinite(pe[i]) else 'force'}"
                          f" (energy {pe[i]:.6g}, force {forces[i].tolist()}) at these positions: check the "
                          "potentials' parameters and the distances they are evaluated at (an atom nearly on top "
                          "of another, or a table's range)")
