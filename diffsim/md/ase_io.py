"""ASE interop (optional extra ``md``: ``pip install ase``) and extended-XYZ trajectories.

ASE works in Angstrom, eV, amu and its own time unit; positions, masses and cells map onto a
``units="metal"`` :class:`~diffsim.md.model.Model` directly; velocities are converted from
ASE's (Angstrom / ase-time) to Angstrom/fs. A tilted cell, periodic on every axis, is rotated
into LAMMPS's lower-triangular orientation (a along x, b in the xy plane), positions and
velocities rotated alike; :func:`to_ase` gives that orientation back (the same crystal: lengths,
angles, fractional positions and distances, not the original axes).
"""

import numpy as np

from ..errors import ConfigError
from .model import Model

_FS = None


def _ase():
    try:
        import ase  # noqa: F401
        from ase import units
    except ImportError:  # pragma: no cover - exercised without the extra only
        raise ImportError("ASE is needed for diffsim.md ASE interop: pip install 'diffsim-toolkit[md]' "
                          "(or pip install ase)") from None
    return units


def lammps_cell(cell):
    """LAMMPS's lower-triangular form of a right-handed cell (3, 3) (rows a, b, c, length):
    returns (H, R) with H = cell @ R lower-triangular (a along x, b in the xy plane) and R the
    rotation (3, 3) to apply to row vectors (positions @ R, velocities @ R)."""
    cell = np.asarray(cell, dtype=np.float64)
    a, b, c = cell
    det = float(np.linalg.det(cell))
    if not det > 0:
        raise ConfigError(f"the cell {cell.tolist()} has determinant {det:.6g}: a triclinic cell must be "
                          "right-handed with a positive volume (reorder or negate a cell vector)")
    lx = float(np.linalg.norm(a))
    xy = float(b @ a) / lx
    ly = float(np.sqrt(b @ b - xy * xy))
    xz = float(c @ a) / lx
    yz = (float(b @ c) - xy * xz) / ly
    lz = float(np.sqrt(c @ c - xz * xz - yz * yz))
    h = np.array([[lx, 0.0, 0.0], [xy, ly, 0.0], [xz, yz, lz]])
    return h, np.linalg.solve(cell, h)


def from_ase(atoms, units: str = "metal", symbols=None) -> Model:
    """A Model from ASE ``Atoms``: types numbered by first appearance of each chemical symbol,
    or, with ``symbols`` (one chemical symbol per type, e.g. an EAM file's ``EAM.elements``), atoms
    of ``symbols[t]`` get type t (an element not listed is a ConfigError); box from an orthorhombic
    cell with non-periodic axes open, or a tilted cell (periodic on every axis) rotated into
    LAMMPS's orientation with positions and velocities (module doc; see :func:`lammps_cell`).
    Only ``units="metal"``. Pass ``symbols`` whenever types must mean the same elements across
    structures or match a potential's: by first appearance, Ag-first and Cu-first structures of
    one alloy number their elements differently. Atoms all of ASE's placeholder symbol "X" with a
    ``type`` array (what :func:`to_ase` and the trajectory writers give for unnamed types) keep
    those types (they came back as one type)."""
    u = _ase()
    if units != "metal":
        raise ConfigError("from_ase gives Angstrom/eV/amu/fs, i.e. units='metal'")
    cell = np.asarray(atoms.get_cell())
    pbc = np.asarray(atoms.get_pbc(), dtype=bool)
    pos = atoms.get_positions()
    vel = atoms.get_velocities()
    vel = np.zeros((len(atoms), 3)) if vel is None else vel * u.fs  # (A / ase-time) -> A/fs
    if np.any(np.abs(cell - np.diag(np.diag(cell))) > 1e-9):
        if not np.all(pbc):
            raise ConfigError(f"a tilted cell must be periodic on every axis, got pbc {pbc.tolist()} with cell "
                              f"{cell.tolist()}")
        box, rot = lammps_cell(cell)
        box[np.triu_indices(3, 1)] = 0.0
        pos, vel = pos @ rot, vel @ rot
    else:
        box = np.where(pbc, np.diag(cell), 0.0)
    present = atoms.get_chemical_symbols()
    if symbols is None and "type" in atoms.arrays and set(present) == {"X"}:
        # unnamed types (to_ase, frame_atoms and write_extxyz of a model without symbols): one "X"
        # symbol for every type would merge them into one
        return Model(pos, masses=atoms.get_masses(), types=atoms.arrays["type"], box=box, velocities=vel,
                     units="metal")
    order = list(dict.fromkeys(present)) if symbols is None else _symbol_order(symbols, present)
    types = np.array([order.index(s) for s in present], dtype=np.int32)
    return Model(pos, masses=atoms.get_masses(), types=types, box=box, velocities=vel,
                 units="metal", symbols=order)


def _symbol_order(symbols, present) -> list:
    """``symbols`` (one chemical symbol per type) as a list, checked: no repeats, and every
    element of ``present`` (the atoms' symbols) among them."""
    if isinstance(symbols, str):
        raise ConfigError(f"symbols must be a list of chemical symbols, one per type (e.g. ['Cu', 'Ag']), got "
                          f"the string {symbols!r}")
    order = [str(s) for s in symbols]
    if len(set(order)) != len(order):
        raise ConfigError(f"symbols {order} name an element twice: give each type its own element")
    missing = [s for s in dict.fromkeys(present) if s not in order]
    if missing:
        raise ConfigError(f"the atoms hold {missing}, which symbols {order} do not list: add them (a potential "
                          "file's elements, e.g. EAM.elements, list the elements it models)")
    return order


def _ase_cell(model: Model) -> np.ndarray:
    """The model's cell (3, 3) for ASE: open axes as zero rows."""
    return model.cell if model.triclinic else np.diag(np.where(model.box > 0, model.box, 0.0))


def to_ase(model: Model, positions=None, velocities=None, symbols=None):
    """ASE ``Atoms`` of ``model`` (optionally with other positions (n, 3), Angstrom, and
    velocities, Angstrom/fs). ``symbols``: one per type (default the model's, else 'X'); with more
    than one type, the types also in ``atoms.arrays["type"]``."""
    u = _ase()
    from ase import Atoms

    if model.units != "metal":
        raise ConfigError("to_ase needs a units='metal' model (ASE works in Angstrom, eV, amu)")
    syms = list(symbols or model.symbols or [])
    if len(syms) < model.ntypes:
        syms += ["X"] * (model.ntypes - len(syms))
    pos = model.positions if positions is None else np.asarray(positions, dtype=np.float64)
    atoms = Atoms([syms[t] for t in model.types], positions=pos, masses=model.masses,
                  cell=_ase_cell(model), pbc=model.box > 0)
    vel = model.velocities if velocities is None else np.asarray(velocities, dtype=np.float64)
    atoms.set_velocities(vel / u.fs)
    if model.ntypes > 1:  # as frame_atoms: types apart even when unnamed (all "X")
        atoms.arrays["type"] = np.asarray(model.types, dtype=np.int64)
    return atoms


def frame_atoms(model: Model, positions, velocities=None):
    """ASE ``Atoms`` of one frame of ``model`` in either unit system (for trajectory files):
    positions (n, 3) in the model's length unit, velocities (n, 3) converted from Angstrom/fs to
    ASE's unit for ``units="metal"``, passed unchanged (sigma/tau) in reduced units. Symbols: the
    model's, else 'X' (ASE's placeholder element); with more than one type, the types in
    ``atoms.arrays["type"]`` (extended XYZ writes it as a column)."""
    u = _ase()
    from ase import Atoms

    syms = list(model.symbols or [])
    syms += ["X"] * (model.ntypes - len(syms))
    atoms = Atoms([syms[t] for t in model.types], positions=np.asarray(positions, dtype=np.float64),
                  masses=model.masses, cell=_ase_cell(model), pbc=model.box > 0)
    if velocities is not None:
        scale = 1.0 / u.fs if model.units == "metal" else 1.0
        atoms.set_velocities(np.asarray(velocities, dtype=np.float64) * scale)
    if model.ntypes > 1:  # types apart even when unnamed (all "X"): the array ASE's LAMMPS readers fill
        atoms.arrays["type"] = np.asarray(model.types, dtype=np.int64)
    return atoms


def write_extxyz(path, frames, model: Model, symbols=None, energies=None, forces=None, wrap=False):
    """Write an extended-XYZ trajectory (plain text, no ASE needed; ASE and OVITO read it).

    frames: (T, n, 3) or a list of (n, 3) positions in the model's length unit; energies (T,)
    and forces (T, n, 3) optional; wrap: fold positions into the box (periodic axes). Each atom's
    line holds its species (``symbols`` per type, else the model's, else ASE's placeholder ``X``), its
    mass (``masses``, the model's unit) and, with more than one type, its type (``type``, an
    integer column: ASE reads it as ``atoms.arrays["type"]``).
    """
    frames = np.asarray(frames, dtype=np.float64)
    if frames.ndim == 2:
        frames = frames[None]
    if frames.ndim != 3 or frames.shape[1:] != (model.n, 3):
        raise ConfigError(f"frames must have shape (T, {model.n}, 3), got {frames.shape}")
    for name, value, shape in (("frames", frames, frames.shape), ("energies", energies, (len(frames),)),
                               ("forces", forces, frames.shape)):
        if value is None:
            continue
        a = np.asarray(value, dtype=np.float64)
        if a.shape != shape:
            raise ConfigError(f"{name} must have shape {shape} (one per frame), got {a.shape}")
        if not np.all(np.isfinite(a)):
            i = tuple(int(k) for k in np.argwhere(~np.isfinite(a))[0])
            raise ConfigError(f"{name}{list(i)} is {a[i]}: a trajectory holds finite numbers only")
    syms = list(symbols or model.symbols or [])
    syms += ["X"] * (model.ntypes - len(syms))  # ASE's placeholder element; "X0", "X1" are no element ASE reads
    typed = model.ntypes > 1  # the type of each atom in a column of its own, so unnamed types stay apart
    box = model.box
    lattice = " ".join(f"{v:.10g}" for v in _ase_cell(model).ravel())
    pbc = " ".join("T" if b > 0 else "F" for b in box)
    with open(path, "w") as fh:
        for k, pos in enumerate(frames):
            if wrap and model.triclinic:
                h = model.cell
                frac = np.linalg.solve(h.T, pos.T).T
                pos = (frac - np.floor(frac)) @ h
            elif wrap:
                per = box > 0
                pos = pos.copy()
                pos[:, per] -= box[per] * np.floor(pos[:, per] / box[per])
            props = ("species:S:1:pos:R:3:masses:R:1" + (":type:I:1" if typed else "")
                     + (":forces:R:3" if forces is not None else ""))
            head = f'Lattice="{lattice}" Properties={props} pbc="{pbc}"'
            if energies is not None:
                head += f" energy={float(energies[k]):.12g}"
            fh.write(f"{model.n}\n{head}\n")
            for i in range(model.n):
                line = (f"{syms[model.types[i]]} {pos[i, 0]:.10f} {pos[i, 1]:.10f} {pos[i, 2]:.10f} "
                        f"{model.masses[i]:.10g}" + (f" {model.types[i]}" if typed else ""))
                if forces is not None:
                    fi = forces[k][i]
                    line += f" {fi[0]:.10f} {fi[1]:.10f} {fi[2]:.10f}"
                fh.write(line + "\n")
