"""Atoms, boxes and initial conditions.

:class:`Model` is the fixed description of a set of atoms: positions (n, 3), masses (n,),
integer types (n,), an orthorhombic box (3,) whose zero entries are open axes (``box=None``:
open in every direction) or a triclinic cell (3, 3), optional velocities (n, 3), and the unit
system (``"lj"`` reduced units or ``"metal"``: Angstrom, eV, amu, fs; see :mod:`diffsim.md.units`).

A triclinic cell is LAMMPS's: rows a = (lx, 0, 0), b = (xy, ly, 0), c = (xz, yz, lz) of a
lower-triangular matrix (rotate other cells into it, as :func:`~diffsim.md.ase_io.from_ase`
does), periodic on every axis. The model keeps it as ``box`` = (lx, ly, lz) and ``tilt`` =
(xy, xz, yz); a diagonal (3, 3) cell is exactly the box of its diagonal.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from .units import get_units


def _as_array(name, value, shape, dtype=np.float64):
    if np.iscomplexobj(value):
        raise ConfigError(f"{name} must be real numbers, got a complex array (its imaginary part would be dropped)")
    try:
        arr = np.array(value, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be a numeric array of shape {shape}: {exc}") from None
    if arr.shape != shape:
        raise ConfigError(f"{name} must have shape {shape}, got {arr.shape}")
    if dtype is np.float64 and not np.all(np.isfinite(arr)):
        i = tuple(int(k) for k in np.argwhere(~np.isfinite(arr))[0])
        raise ConfigError(f"{name}{list(i)} is {arr[i]}: values must be finite")
    return arr


def atom_types(types, n=None, name="types") -> np.ndarray:
    """``types`` as an int32 array (n,) of atom types >= 0; a ConfigError for anything else,
    including a float that is not a whole number (2.7 is not silently type 2)."""
    try:
        raw = np.asarray(types)
        arr = np.array(raw, dtype=np.float64) if raw.dtype.kind not in "iu" else raw
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be an array of integer atom types: {exc}") from None
    if arr.ndim != 1 or arr.size < 1 or (n is not None and arr.shape != (n,)):
        raise ConfigError(f"{name} must have shape ({'n' if n is None else n},), got {arr.shape}")
    if arr.dtype.kind not in "iu":
        bad = ~(np.isfinite(arr) & (arr == np.round(arr)))
        if np.any(bad):
            i = int(np.argmax(bad))
            raise ConfigError(f"{name}[{i}] is {float(arr[i])}: atom types are whole numbers 0, 1, 2, ...; "
                              "pass integers (e.g. np.asarray(types, dtype=int) if they are whole)")
    if np.any(arr < 0) or np.any(arr >= 2 ** 31):
        i = int(np.argmax((arr < 0) | (arr >= 2 ** 31)))
        raise ConfigError(f"{name}[{i}] is {arr[i]}: atom types must be >= 0 (numbered 0, 1, 2, ...)")
    return arr.astype(np.int32)


def parse_cell(box, tilt):
    """(box (3,), tilt (3,)) from a box (3,) or scalar with optional tilts, or a (3, 3) cell."""
    if box is None:
        box = np.zeros(3)
    if np.ndim(box) == 2:
        cell = _as_array("box", box, (3, 3))
        if tilt is not None:
            raise ConfigError("give the tilts either in a (3, 3) cell or as tilt=(xy, xz, yz), not both")
        upper = cell[np.triu_indices(3, 1)]
        if np.any(upper != 0):
            raise ConfigError(f"a (3, 3) cell must be lower-triangular (LAMMPS: a = (lx, 0, 0), b = (xy, ly, 0), "
                              f"c = (xz, yz, lz)), got {cell.tolist()}; rotate it (diffsim.md.from_ase does)")
        box, tilt = np.diag(cell).copy(), np.array([cell[1, 0], cell[2, 0], cell[2, 1]])
    else:
        box = _as_array("box", np.broadcast_to(np.asarray(box, dtype=np.float64), (3,)) if np.ndim(box) == 0
                        else box, (3,))
        tilt = np.zeros(3) if tilt is None else _as_array("tilt", tilt, (3,))
    if np.any(box < 0):
        raise ConfigError(f"box edges must be >= 0 (0 = open axis), got {box}")
    if np.any(tilt != 0) and not np.all(box > 0):
        raise ConfigError(f"a triclinic cell must be periodic on every axis (positive lx, ly, lz), got lengths "
                          f"{box.tolist()} with tilts {tilt.tolist()}")
    return box, tilt + 0.0  # -0.0 tilts read as 0


def _check_overlaps_triclinic(pos, box, tilt, min_distance):
    """:func:`_check_overlaps` in a tilted cell: the 27 neighbouring images of the folded cloud."""
    from scipy.spatial import cKDTree

    from .space import cell_matrix, min_image_np

    h = cell_matrix(box, tilt)
    frac = np.linalg.solve(h.T, pos.T).T
    wrapped = (frac - np.floor(frac)) @ h
    shifts = np.stack(np.meshgrid(*[np.arange(-1, 2)] * 3, indexing="ij"), -1).reshape(-1, 3) @ h
    images = (wrapped[None] + shifts[:, None]).reshape(-1, 3)
    n = len(pos)
    for a, b in cKDTree(images).query_pairs(min_distance, output_type="ndarray"):
        i, j = sorted((int(a) % n, int(b) % n))
        if i != j and (a < 14 * n and a >= 13 * n or b < 14 * n and b >= 13 * n):
            d = min_image_np(pos[i] - pos[j], box, tilt)
            raise ConfigError(f"atoms {i} and {j} overlap: {np.linalg.norm(d):.3g} apart, closer than "
                              f"min_distance={min_distance}; remove one or move them apart")


def _check_overlaps(pos, box, min_distance):
    """ConfigError naming the first pair of atoms closer than ``min_distance`` (minimum image)."""
    from scipy.spatial import cKDTree

    periodic = box > 0
    lo = pos.min(axis=0)
    span = pos.max(axis=0) - lo
    # open axes get a period far larger than the cloud, so no image ever comes near
    size = np.where(periodic, box, 4.0 * span + 10.0 * min_distance + 1.0)
    wrapped = np.where(periodic, np.mod(pos, np.where(periodic, box, 1.0)), pos - lo)
    pairs = cKDTree(wrapped, boxsize=size).query_pairs(min_distance, output_type="ndarray")
    if len(pairs):
        i, j = sorted(int(k) for k in pairs[0])
        d = pos[i] - pos[j]
        d -= np.where(periodic, box * np.round(d / np.where(periodic, box, 1.0)), 0.0)
        raise ConfigError(f"atoms {i} and {j} overlap: {np.linalg.norm(d):.3g} apart, closer than "
                          f"min_distance={min_distance}; remove one or move them apart")


@dataclass
class Model:
    """A set of atoms. Units follow ``units`` ("lj" or "metal").

    positions: (n, 3) float (sigma or Angstrom). masses: (n,) or scalar, > 0 (m or amu).
    types: (n,) int in [0, ntypes) (default all 0). box: (3,) edge lengths, 0 = open axis,
    None = open everywhere, or a lower-triangular (3, 3) triclinic cell (rows a, b, c; module doc),
    kept as ``box`` (lx, ly, lz) and ``tilt`` (xy, xz, yz). tilt: (3,) tilts (length) with a (3,)
    box, default zero. velocities: (n, 3) (sigma/tau or Angstrom/fs), default zero.
    symbols: optional chemical symbol per type (for ASE and extxyz).
    """

    positions: np.ndarray
    masses: object = 1.0
    types: object = None
    box: object = None
    velocities: object = None
    units: str = "lj"
    symbols: list = field(default_factory=list)
    min_distance: float = 1e-3
    tilt: object = None

    def __post_init__(self):
        pos = np.asarray(self.positions)
        if pos.ndim != 2 or pos.shape[1] != 3 or pos.shape[0] < 1:
            raise ConfigError(f"positions must have shape (n, 3) with n >= 1, got {pos.shape}")
        n = pos.shape[0]
        self.positions = _as_array("positions", pos, (n, 3))
        self.masses = _as_array("masses", np.broadcast_to(np.asarray(self.masses, dtype=np.float64), (n,))
                                if np.ndim(self.masses) == 0 else self.masses, (n,))
        if np.any(self.masses <= 0):
            i = int(np.argmax(self.masses <= 0))
            raise ConfigError(f"mass of atom {i} is {self.masses[i]}: masses must be positive")
        self.types = np.zeros(n, dtype=np.int32) if self.types is None else atom_types(self.types, n)
        self.box, self.tilt = parse_cell(self.box, self.tilt)
        self.velocities = (np.zeros((n, 3)) if self.velocities is None
                           else _as_array("velocities", self.velocities, (n, 3)))
        self.units_info = get_units(self.units)
        self.units = self.units_info.name
        self.symbols = list(self.symbols)
        if self.min_distance > 0:
            if self.triclinic:
                _check_overlaps_triclinic(self.positions, self.box, self.tilt, self.min_distance)
            else:
                _check_overlaps(self.positions, self.box, self.min_distance)

    @property
    def n(self) -> int:
        """Number of atoms."""
        return self.positions.shape[0]

    @property
    def ntypes(self) -> int:
        """Number of atom types (types are numbered 0..ntypes-1)."""
        return int(self.types.max()) + 1

    @property
    def periodic(self) -> np.ndarray:
        """(3,) bool: which axes are periodic (box length > 0)."""
        return self.box > 0

    @property
    def triclinic(self) -> bool:
        """True when the cell is tilted (some tilt xy, xz, yz is not zero)."""
        return bool(np.any(self.tilt != 0))

    @property
    def cell(self) -> np.ndarray:
        """(3, 3) lower-triangular cell, rows a = (lx, 0, 0), b = (xy, ly, 0), c = (xz, yz, lz)
        (length; open axes have zero rows)."""
        from .space import cell_matrix

        return cell_matrix(self.box, self.tilt)

    @property
    def volume(self) -> float:
        """Box volume (length^3), lx ly lz = det(cell); NaN when an axis is open."""
        return float(np.prod(self.box)) if np.all(self.box > 0) else float("nan")

    def copy(self, **changes) -> Model:
        """A deep copy with the given fields (positions, masses, types, box, tilt, velocities, units,
        symbols) replaced; a (3, 3) ``box`` brings its own tilts."""
        kw = {"positions": self.positions.copy(), "masses": self.masses.copy(), "types": self.types.copy(),
                  "box": self.box.copy(), "velocities": self.velocities.copy(), "units": self.units,
                  "symbols": list(self.symbols), "tilt": self.tilt.copy()}
        if np.ndim(changes.get("box", 0)) == 2 and "tilt" not in changes:
            kw.pop("tilt")
        kw.update(changes)
        return Model(**kw)


def fcc_lattice(cells=(5, 5, 5), density: float | None = 0.8442, a: float | None = None):
    """Face-centred cubic lattice filling a periodic box.

    cells: unit cells per axis (int or 3 ints). Give either ``density`` (atoms per length^3;
    LAMMPS' reduced ``lattice fcc 0.8442`` gives a = (4 / density)^(1/3)) or the lattice
    constant ``a`` (length). Returns (positions (4 nx ny nz, 3), box (3,)).
    """
    cells = np.broadcast_to(np.asarray(cells, dtype=int), (3,))
    if np.any(cells < 1):
        raise ConfigError(f"cells must be >= 1 per axis, got {cells}")
    if a is None:
        if density is None or not (np.isfinite(density) and density > 0):
            raise ConfigError(f"give a positive density or a lattice constant a, got density={density}, a={a}")
        a = (4.0 / density) ** (1.0 / 3.0)
    elif not (np.isfinite(a) and a > 0):
        raise ConfigError(f"the lattice constant a must be a positive length, got a={a}")
    basis = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    grid = np.stack(np.meshgrid(*[np.arange(c) for c in cells], indexing="ij"), -1).reshape(-1, 3)
    pos = (grid[:, None, :] + basis[None]).reshape(-1, 3) * a
    return pos, cells * a


def maxwell_boltzmann(masses, temperature: float, seed: int = 0, units: str = "lj") -> np.ndarray:
    """Gaussian velocities (n, 3) with zero total momentum, scaled to exactly ``temperature``
    (epsilon/k_B or K) with 3n - 3 degrees of freedom. units: "lj", "metal", or the
    :class:`Model` or MDSystem whose units to use."""
    masses = np.asarray(masses, dtype=np.float64)
    if not (np.isfinite(temperature) and temperature >= 0):
        raise ConfigError(f"temperature must be finite and >= 0, got {temperature}")
    if masses.ndim > 1 or not np.all(np.isfinite(masses) & (masses > 0)):
        raise ConfigError(f"masses must be a 1-D array of positive finite masses, got {masses}")
    u = get_units(units)
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((masses.size, 3)) / np.sqrt(masses)[:, None]
    v -= (masses[:, None] * v).sum(0) / masses.sum()
    ke = 0.5 * np.sum(masses[:, None] * v * v) / u.ftm
    dof = max(3 * masses.size - 3, 1)
    if ke > 0:
        v *= np.sqrt(0.5 * dof * u.kB * temperature / ke)
    return v


def kinetic_energy(masses, velocities, units: str = "lj") -> float:
    """0.5 sum m v^2 in the energy unit (units: "lj", "metal", or a Model or MDSystem: its units)."""
    m = np.asarray(masses, dtype=np.float64)
    return float(0.5 * np.sum(m[:, None] * np.asarray(velocities) ** 2) / get_units(units).ftm)


def temperature(masses, velocities, units: str = "lj", dof: int | None = None) -> float:
    """2 KE / (dof k_B), dof = 3n - 3 by default (momentum conserved); units: "lj", "metal", or a
    Model or MDSystem (its units: a metal-units model's velocities read as reduced give a
    temperature ~100x off)."""
    n = np.asarray(masses).size
    dof = max(3 * n - 3, 1) if dof is None else dof
    return 2.0 * kinetic_energy(masses, velocities, units) / (dof * get_units(units).kB)
