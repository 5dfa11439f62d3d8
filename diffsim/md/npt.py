"""Constant pressure for equilibration: the Berendsen barostat (forward only).

Berendsen et al. (J. Chem. Phys. 81, 3684, 1984) relax the pressure P towards a target P0 as
dP/dt = (P0 - P) / tau_P by scaling the box and the positions with

    mu = [1 - kappa dt / tau_P (P0 - P)]^(1/3)            (isotropic)

where kappa is the isothermal compressibility (1/pressure; it sets only how fast the box
responds, the relaxation time is tau_P when kappa is the fluid's). :func:`equilibrate_npt`
applies the scaling every ``every`` steps with P averaged over those steps (as LAMMPS's
``fix press/berendsen`` with ``nevery``), running the steps in between with
:meth:`MDSystem.simulate <diffsim.md.system.MDSystem.simulate>` on a system rebuilt for the new
box (the force field keeps its potential objects and parameters). The Berendsen scheme reaches
the right mean density but not the right volume fluctuations: it is for equilibration, before an
NVE/NVT run or a differentiated window, not for sampling the NPT ensemble.
"""

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from .forcefield import ForceField
from .integrators import Berendsen
from .system import MDSystem, _count


@dataclass
class BerendsenBarostat:
    """Berendsen pressure coupling (see the module doc).

    pressure: target P0 (energy/length^3: epsilon/sigma^3 or eV/Angstrom^3; divide bar by
    ``UNITS["metal"].pressure_in_bar``). tau: coupling time (tau or fs). compressibility: kappa
    (length^3/energy; about 0.05-0.1 sigma^3/epsilon for a dense LJ liquid, 7e-3 A^3/eV for
    copper). every: steps between box rescalings. max_strain: the largest |mu - 1| per rescaling
    (a cap against a wild first pressure; the run warns nothing, the cap shows in ``scale``).
    """

    pressure: float
    tau: float = 1.0
    compressibility: float = 0.1
    every: int = 10
    max_strain: float = 0.01

    def __post_init__(self):
        vals = {"pressure": self.pressure, "tau": self.tau, "compressibility": self.compressibility,
                "max_strain": self.max_strain}
        for name, v in vals.items():
            real = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
            if not (real and np.isfinite(v)) or (name != "pressure" and v <= 0):
                raise ConfigError(f"BerendsenBarostat {name} must be a finite number{'' if name == 'pressure' else ' > 0'}"
                                  f", got {v!r}")
        if _count("every", self.every) < 1:
            raise ConfigError(f"BerendsenBarostat every must be >= 1 step, got {self.every}")

    def scale(self, pressure, dt) -> float:
        """mu for a measured ``pressure`` after ``every`` steps of ``dt``."""
        cube = 1.0 - self.compressibility * self.every * dt / self.tau * (self.pressure - pressure)
        mu = np.cbrt(max(cube, 1e-12))
        return float(np.clip(mu, 1.0 - self.max_strain, 1.0 + self.max_strain))


def _rebuilt(system, box, positions, velocities):
    """``system`` for a new box (same potentials, integrator and settings)."""
    model = system.model.copy(positions=positions, velocities=velocities, box=box)
    ff = ForceField(system.ff.potentials, system.ff.types_np, box, skin=system.ff.nlist.skin)
    return MDSystem(model, ff, integrator=system.integrator, dt=system.dt, segment=system.segment)


def equilibrate_npt(system: MDSystem, steps, barostat: BerendsenBarostat, thermostat: Berendsen | None = None):
    """Run ``steps`` steps (a multiple of ``barostat.every``) of ``system`` under ``barostat``
    (and ``thermostat``, or the system's own Langevin integrator, for the temperature).

    Returns a dict: ``model`` (a :class:`~diffsim.md.model.Model` with the final positions,
    velocities and box, ready for an :class:`MDSystem`), ``system`` (that MDSystem, same force
    field potentials), ``box`` (3,) (length), and per rescaling: ``step``, ``pressure`` (the mean
    over the preceding ``every`` steps, energy/length^3), ``volume`` (length^3, after the
    rescaling), ``density`` (atoms/length^3), ``scale`` (mu); ``units``. Needs a box periodic on
    all three axes.
    """
    if not isinstance(system, MDSystem):
        raise ConfigError(f"system must be an MDSystem, got {type(system).__name__}")
    if not isinstance(barostat, BerendsenBarostat):
        raise ConfigError(f"barostat must be a BerendsenBarostat, got {barostat!r}")
    steps = _count("steps", steps)
    if steps % barostat.every:
        raise ConfigError(f"steps={steps} must be a multiple of the barostat's every={barostat.every}")
    if system.model.triclinic:
        raise ConfigError("the Berendsen barostat scales orthorhombic boxes only; this model's cell is triclinic "
                          f"(tilts {system.model.tilt.tolist()})")
    if not np.all(system.model.box > 0):
        raise ConfigError(f"constant pressure needs a box periodic on all axes, got box {system.model.box}")
    sample = max(1, barostat.every // 5)
    rows = {k: [] for k in ("step", "pressure", "volume", "density", "scale")}
    cur, box = system, system.model.box.copy()
    x, v = system.model.positions, system.model.velocities
    for k in range(steps // barostat.every):
        # steps numbered on from the last chunk: Langevin noise keyed by step never repeats (a repeated
        # noise sequence, chunk after chunk, pumped energy in: measured 20 % too high a pressure)
        run = cur.simulate(barostat.every, positions=x, velocities=v, thermostat=thermostat, record_every=sample,
                           first_step=k * barostat.every)
        p = float(np.mean(run["pressure"][1:]))
        mu = barostat.scale(p, system.dt)
        box = box * mu
        x, v = run["positions"] * mu, run["velocities"]
        cur = _rebuilt(system, box, x, v)
        volume = float(np.prod(box))
        rows["step"].append((k + 1) * barostat.every)
        rows["pressure"].append(p)
        rows["volume"].append(volume)
        rows["density"].append(system.n / volume)
        rows["scale"].append(mu)
    out = {k: np.array(val) for k, val in rows.items()}
    out.update(model=cur.model, system=cur, box=box, units=system.units.describe())
    return out
