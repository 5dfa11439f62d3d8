"""Recorded frames of a forward-only run, kept as arrays and optionally streamed to a file.

:class:`Recorder` collects what :meth:`MDSystem.simulate(record_every=k)
<diffsim.md.system.MDSystem.simulate>` samples every k steps: positions (unwrapped) and
velocities, potential, kinetic and total energy, temperature, and the pressure tensor in the
convention of LAMMPS's ``compute pressure`` (kinetic plus virial part, components xx, yy, zz,
xy, xz, yz). With ``trajectory=path`` each frame is also written as it is taken, through ASE's
writers: extended XYZ (``.xyz``/``.extxyz``) or an ASE trajectory (``.traj``), so a long run
need not keep its frames in memory (``keep_frames=False``).

In a written frame, the ASE ``Atoms`` carry positions (the model's length unit), velocities
(Angstrom per ASE time unit for ``units="metal"``; sigma/tau unchanged in reduced units), the
potential energy and ASE's stress ``-W / V`` (virial part only; ASE's
``get_stress(include_ideal_gas=True)`` adds the kinetic part from the momenta) through a
single-point calculator, and in ``info``: step, time, kinetic energy, temperature, pressure
and the six pressure components ``pxx`` ... ``pyz``, each in the units listed in
:attr:`Frames.units`.
"""

import pathlib
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from .observables import VOIGT, kinetic_tensor


@dataclass
class Frames:
    """Frames sampled every ``every`` steps (step 0 included), as arrays over the T frames.

    step (T,) int; time (T,) (tau or fs); positions, velocities (T, n, 3) (length, length/time;
    None when not kept); potential, kinetic, total (T,) (energy); temperature (T,) (epsilon/k_B
    or K); pressure (T,) and pressure_tensor (T, 6) (energy/length^3, order xx, yy, zz, xy, xz,
    yz; NaN without a periodic box); units: the unit of each quantity, by name.
    """

    step: np.ndarray
    time: np.ndarray
    positions: np.ndarray | None
    velocities: np.ndarray | None
    potential: np.ndarray
    kinetic: np.ndarray
    total: np.ndarray
    temperature: np.ndarray
    pressure: np.ndarray
    pressure_tensor: np.ndarray
    units: dict = field(default_factory=dict)
    every: int = 1

    def __len__(self):
        return len(self.step)


FORMATS = {".xyz": "extxyz", ".extxyz": "extxyz", ".traj": "traj"}


def _writer(path, model):
    """An open (format, handle) for ``path``; a ConfigError for an unknown suffix."""
    path = pathlib.Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(f"trajectory={str(path)!r}: the file name must end in one of {sorted(FORMATS)} "
                          "(extended XYZ or an ASE trajectory)")
    from .ase_io import _ase

    _ase()
    try:
        if fmt == "traj":
            from ase.io import Trajectory

            return fmt, Trajectory(str(path), "w")
        return fmt, open(path, "w")
    except OSError as e:  # before the run: nothing is lost
        raise ConfigError(f"trajectory={str(path)!r} cannot be written ({e.strerror or e}): give a path in a "
                          "directory that exists and that you may write to") from e


class Recorder:
    """Collects frames for :meth:`MDSystem.simulate`; see the module doc.

    model: the :class:`~diffsim.md.model.Model` (masses, types, box, units); dt: time step;
    every: steps between frames; path: optional file to stream to; keep: keep positions and
    velocities in memory.
    """

    def __init__(self, model, dt, every, path=None, keep=True):
        self.model, self.dt, self.every, self.keep = model, float(dt), int(every), bool(keep)
        self.units = model.units_info
        self.dof = max(3 * model.n - 3, 1)
        self.volume = model.volume
        self.rows = {k: [] for k in ("step", "potential", "kinetic", "temperature", "pressure_tensor")}
        self.positions, self.velocities = [], []
        self.fmt, self.handle = _writer(path, model) if path is not None else (None, None)

    def record(self, step, positions, velocities, potential, virial_tensor):
        """Add the frame after ``step`` steps: positions, velocities (n, 3), potential energy,
        virial tensor (6,) (energy)."""
        kt = kinetic_tensor(self.model.masses, velocities, self.units)
        ke = 0.5 * float(kt[:3].sum())
        p = (kt + np.asarray(virial_tensor, dtype=np.float64)) / self.volume
        self.rows["step"].append(int(step))
        self.rows["potential"].append(float(potential))
        self.rows["kinetic"].append(ke)
        self.rows["temperature"].append(2.0 * ke / (self.dof * self.units.kB))
        self.rows["pressure_tensor"].append(p)
        if self.keep:
            self.positions.append(np.array(positions, dtype=np.float64))
            self.velocities.append(np.array(velocities, dtype=np.float64))
        if self.handle is not None:
            self._write(step, positions, velocities, potential, virial_tensor, ke, p)

    def _write(self, step, positions, velocities, potential, virial_tensor, ke, p):
        from ase.calculators.singlepoint import SinglePointCalculator
        from ase.io import write

        from .ase_io import frame_atoms

        atoms = frame_atoms(self.model, positions, velocities)
        stress = None
        if np.isfinite(self.volume):  # ASE's Voigt order is xx, yy, zz, yz, xz, xy
            w = -np.asarray(virial_tensor, dtype=np.float64) / self.volume
            stress = np.array([w[0], w[1], w[2], w[5], w[4], w[3]])
        atoms.calc = SinglePointCalculator(atoms, energy=float(potential), stress=stress)
        atoms.info.update(step=int(step), time=step * self.dt, kinetic_energy=ke,
                          temperature=self.rows["temperature"][-1], pressure=float(np.mean(p[:3])))
        atoms.info.update({f"p{c}": float(v) for c, v in zip(VOIGT, p)})
        if self.fmt == "traj":
            self.handle.write(atoms)
        else:
            write(self.handle, atoms, format="extxyz")
            self.handle.flush()

    def close(self):
        if self.handle is not None:
            self.handle.close()
            self.handle = None

    def frames(self) -> Frames:
        r = self.rows
        step = np.array(r["step"], dtype=np.int64)
        pot = np.array(r["potential"], dtype=np.float64)
        kin = np.array(r["kinetic"], dtype=np.float64)
        ptens = np.array(r["pressure_tensor"], dtype=np.float64).reshape(-1, 6)
        keep = self.keep and len(self.positions) > 0
        return Frames(step, step * self.dt, np.array(self.positions) if keep else None,
                      np.array(self.velocities) if keep else None, pot, kin, pot + kin,
                      np.array(r["temperature"], dtype=np.float64), ptens[:, :3].mean(1), ptens,
                      self.units.describe(), self.every)
