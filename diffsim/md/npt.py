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

Sampling the isothermal-isobaric ensemble: stochastic cell rescaling
--------------------------------------------------------------------
Bernetti & Bussi (J. Chem. Phys. 153, 114107, 2020) add to Berendsen's first-order relaxation
the noise that makes the volume fluctuate as it should. With eps = ln V, isotropically,

    d eps = -(kappa / tau_P) (P0 - P) dt + sqrt(2 k_B T kappa / (V tau_P)) dW

(P: the instantaneous pressure, kinetic plus virial), positions and the box scaled by
mu = exp(d eps / 3) and velocities by 1/mu. The stationary distribution of V is
exp(-(P0 V + A(V)) / k_B T) (A: the Helmholtz free energy), for any kappa and tau_P, which set only
how fast the volume relaxes (tau_P, when kappa is the fluid's isothermal compressibility): the mean
density *and* the volume fluctuations <dV^2> = k_B T V kappa_T come out right (tested against the
NVT equation of state in tests/md/test_md_npt.py). :func:`simulate_npt` applies it every ``every``
steps in the Euler form (the "E" integrator of the authors' SimpleMD and the GROMACS ``C-rescale``
form: the kinetic energy in P, velocities scaled), with a Langevin thermostat (the system's
:class:`~diffsim.md.integrators.Langevin` integrator) for the temperature. Forward only: there is
no gradient through a changing box.

Both barostats scale a triclinic cell isotropically: its lengths and tilts by mu, so its shape is
kept and only its volume samples the ensemble (ln V is the only cell variable above). Anisotropic
and fully flexible cells (the shape relaxing under the pressure tensor) are not offered.
"""

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from .forcefield import ForceField
from .integrators import Berendsen, Langevin
from .system import MDSystem, _count


def _check_coupling(barostat):
    """A barostat's pressure (finite), tau, compressibility and max_strain (finite, > 0; max_strain
    < 1) and every (a whole number >= 1), each named in a ConfigError."""
    kind = type(barostat).__name__
    for name in ("pressure", "tau", "compressibility", "max_strain"):
        v = getattr(barostat, name)
        real = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
        if not (real and np.isfinite(v)) or (name != "pressure" and v <= 0) or (name == "max_strain" and v >= 1):
            raise ConfigError(f"{kind} {name} must be a finite number{'' if name == 'pressure' else ' > 0'}"
                              f"{' and < 1 (a fraction of the box length)' if name == 'max_strain' else ''}, "
                              f"got {v!r}")
    if _count("every", barostat.every) < 1:
        raise ConfigError(f"{kind} every must be >= 1 step, got {barostat.every}")


@dataclass
class BerendsenBarostat:
    """Berendsen pressure coupling (see the module doc).

    pressure: target P0 (energy/length^3: epsilon/sigma^3 or eV/Angstrom^3; divide bar by
    ``UNITS["metal"].pressure_in_bar``). tau: coupling time (tau or fs). compressibility: kappa
    (length^3/energy; about 0.05-0.1 sigma^3/epsilon for a dense LJ liquid, about 1.1 A^3/eV for
    copper, whose bulk modulus is 140 GPa = 0.87 eV/A^3). every: steps between box rescalings.
    max_strain: the largest |mu - 1| per rescaling, below 1 (a cap against a wild first pressure;
    the run warns nothing, the cap shows in ``scale``).
    """

    pressure: float
    tau: float = 1.0
    compressibility: float = 0.1
    every: int = 10
    max_strain: float = 0.01

    def __post_init__(self):
        _check_coupling(self)

    def scale(self, pressure, dt) -> float:
        """mu for a measured ``pressure`` after ``every`` steps of ``dt``."""
        cube = 1.0 - self.compressibility * self.every * dt / self.tau * (self.pressure - pressure)
        mu = np.cbrt(max(cube, 1e-12))
        return float(np.clip(mu, 1.0 - self.max_strain, 1.0 + self.max_strain))


def _rebuilt(system, box, tilt, positions, velocities):
    """``system`` for a new cell, lengths ``box`` and tilts ``tilt`` (same potentials, integrator
    and settings)."""
    model = system.model.copy(positions=positions, velocities=velocities, box=box, tilt=tilt)
    ff = ForceField(system.ff.potentials, system.ff.types_np, box, skin=system.ff.nlist.skin,
                    tilt=tilt if model.triclinic else None)
    return MDSystem(model, ff, integrator=system.integrator, dt=system.dt, segment=system.segment)


def equilibrate_npt(system: MDSystem, steps, barostat: BerendsenBarostat, thermostat: Berendsen | None = None):
    """Run ``steps`` steps (a multiple of ``barostat.every``) of ``system`` under ``barostat``
    (and ``thermostat``, or the system's own Langevin integrator, for the temperature).

    Returns a dict: ``model`` (a :class:`~diffsim.md.model.Model` with the final positions,
    velocities and box, ready for an :class:`MDSystem`), ``system`` (that MDSystem, same force
    field potentials), ``box`` (3,) (length), and per rescaling: ``step``, ``pressure`` (the mean
    over the preceding ``every`` steps, energy/length^3), ``volume`` (length^3, after the
    rescaling), ``density`` (atoms/length^3), ``scale`` (mu); ``units``; ``tilt`` (3,) (length;
    zero for an orthorhombic box). Needs a cell periodic on all three axes; a triclinic cell is
    scaled isotropically (lengths and tilts by mu: its shape is kept).
    """
    if not isinstance(system, MDSystem):
        raise ConfigError(f"system must be an MDSystem, got {type(system).__name__}")
    if not isinstance(barostat, BerendsenBarostat):
        raise ConfigError(f"barostat must be a BerendsenBarostat, got {barostat!r}")
    steps = _count("steps", steps)
    if steps % barostat.every:
        raise ConfigError(f"steps={steps} must be a multiple of the barostat's every={barostat.every}")
    if not np.all(system.model.box > 0):
        raise ConfigError(f"constant pressure needs a box periodic on all axes, got box {system.model.box}")
    sample = max(1, barostat.every // 5)
    rows = {k: [] for k in ("step", "pressure", "volume", "density", "scale")}
    cur, box, tilt = system, system.model.box.copy(), system.model.tilt.copy()
    x, v = system.model.positions, system.model.velocities
    for k in range(steps // barostat.every):
        # steps numbered on from the last chunk: Langevin noise keyed by step never repeats (a repeated
        # noise sequence, chunk after chunk, pumped energy in: measured 20 % too high a pressure)
        run = cur.simulate(barostat.every, positions=x, velocities=v, thermostat=thermostat, record_every=sample,
                           first_step=k * barostat.every)
        p = float(np.mean(run["pressure"][1:]))
        mu = barostat.scale(p, system.dt)
        box, tilt = box * mu, tilt * mu
        x, v = run["positions"] * mu, run["velocities"]
        cur = _rebuilt(system, box, tilt, x, v)
        volume = float(np.prod(box))
        rows["step"].append((k + 1) * barostat.every)
        rows["pressure"].append(p)
        rows["volume"].append(volume)
        rows["density"].append(system.n / volume)
        rows["scale"].append(mu)
    out = {k: np.array(val) for k, val in rows.items()}
    out.update(model=cur.model, system=cur, box=box, tilt=tilt, units=system.units.describe())
    return out


@dataclass
class StochasticCellRescaling:
    """Stochastic cell rescaling (Bernetti & Bussi 2020; see the module doc): isotropic NPT
    sampling with the right volume fluctuations, for :func:`simulate_npt`.

    pressure: target P0 (energy/length^3: epsilon/sigma^3 or eV/Angstrom^3). tau: relaxation
    time of the volume (tau or fs; some hundred steps or more). compressibility: kappa
    (length^3/energy; an estimate: it scales the relaxation time, not the distribution). every:
    steps between rescalings (every * dt well below tau). seed: the noise key; the noise of a
    rescaling is drawn from (seed, step), so a continued run draws new noise and a repeated one
    the same. max_strain: the largest |mu - 1| one rescaling may apply before the run stops
    with a ConfigError (a box that jumps is a setting, not physics, to fix).
    """

    pressure: float
    tau: float = 1.0
    compressibility: float = 0.1
    every: int = 5
    seed: int = 0
    max_strain: float = 0.02

    def __post_init__(self):
        _check_coupling(self)
        _count("seed", self.seed)

    def log_volume_step(self, pressure, volume, kT, dt, noise) -> float:
        """d eps = d ln V over ``every`` steps of ``dt`` (time) for the instantaneous ``pressure``
        (energy/length^3) at ``volume`` (length^3), temperature ``kT`` (energy) and a standard
        normal ``noise``."""
        h = self.every * dt
        return float(-self.compressibility / self.tau * h * (self.pressure - pressure)
                     + np.sqrt(2.0 * kT * self.compressibility * h / (volume * self.tau)) * noise)


class _Coupling:
    """The runner's barostat hook for one :func:`simulate_npt` run: draws the noise, applies
    :meth:`StochasticCellRescaling.log_volume_step` and keeps a row per rescaling."""

    def __init__(self, barostat, dt, kT):
        self.b, self.dt, self.kT, self.every = barostat, dt, kT, barostat.every
        self.rows = {k: [] for k in ("step", "pressure", "volume", "scale")}

    def __call__(self, step, pressure, volume):
        noise = np.random.default_rng([self.b.seed, step]).standard_normal()
        mu = float(np.exp(self.b.log_volume_step(pressure, volume, self.kT, self.dt, noise) / 3.0))
        if not abs(mu - 1.0) <= self.b.max_strain:
            raise ConfigError(f"step {step}: the barostat would scale the box by {mu:.6g} (pressure {pressure:.6g}, "
                              f"target {self.b.pressure:.6g}), more than max_strain={self.b.max_strain}: raise tau "
                              f"(now {self.b.tau}), lower every (now {self.every}) or the compressibility (now "
                              f"{self.b.compressibility}), or equilibrate first")
        self.rows["step"].append(step)
        self.rows["pressure"].append(pressure)
        self.rows["volume"].append(volume * mu ** 3)
        self.rows["scale"].append(mu)
        return mu


def simulate_npt(system: MDSystem, steps, barostat: StochasticCellRescaling, positions=None, velocities=None,
                 first_step=0, progress=None) -> dict:
    """Sample the isothermal-isobaric ensemble: ``steps`` steps of ``system`` (its Langevin
    integrator holds the temperature) under ``barostat`` (forward only).

    Runs on :meth:`MDSystem.simulate <diffsim.md.system.MDSystem.simulate>`'s fast path, so it
    needs pair potentials and a cell periodic on all axes, at least three list radii (cutoff +
    skin) across (every perpendicular width of a triclinic cell). The scaling is isotropic: a
    triclinic cell keeps its shape (lengths and tilts scale together); shape fluctuations
    (anisotropic or fully flexible cells) are not sampled. positions, velocities: the start
    ((n, 3) arrays; default the model's). first_step: the number of the first step (Langevin and
    barostat noise are keyed by step).

    Returns a dict: ``positions`` and ``velocities`` (n, 3) at the end (unwrapped by the final
    cell), ``box`` (3,) and ``tilt`` (3,) (length; tilts zero for an orthorhombic box), ``model``
    and ``system`` (a :class:`~diffsim.md.model.Model` and an :class:`MDSystem` with the final
    state and cell), and per rescaling (every
    ``barostat.every`` steps): ``step``, ``pressure`` (the instantaneous pressure the rescaling
    used, energy/length^3), ``volume`` (after the rescaling, length^3), ``density``
    (atoms/length^3) and ``scale`` (mu); ``units``.
    """
    if not isinstance(system, MDSystem):
        raise ConfigError(f"system must be an MDSystem, got {type(system).__name__}")
    if not isinstance(barostat, StochasticCellRescaling):
        raise ConfigError(f"barostat must be a StochasticCellRescaling, got {barostat!r} (BerendsenBarostat: use "
                          "equilibrate_npt)")
    if not isinstance(system.integrator, Langevin):
        raise ConfigError("simulate_npt samples at constant temperature: build the system with integrator="
                          f"Langevin(T, friction), got {system.integrator!r}")
    if not np.all(system.model.box > 0):
        raise ConfigError(f"constant pressure needs a box periodic on all axes, got box {system.model.box}")
    steps = _count("steps", steps)
    coupling = _Coupling(barostat, system.dt, system.units.kB * system.integrator.temperature)
    run = system.forward_runner.run(steps, positions, velocities, None, 0, True, 0, None, True, first_step, progress,
                                    barostat=coupling)
    box, tilt = run["box"], run["tilt"]
    out = {k: np.array(v, dtype=np.int64 if k == "step" else np.float64) for k, v in coupling.rows.items()}
    out["density"] = system.n / out["volume"]
    cur = _rebuilt(system, box, tilt, run["positions"], run["velocities"])
    out.update(positions=run["positions"], velocities=run["velocities"], box=box, tilt=tilt, model=cur.model,
               system=cur, units=system.units.describe())
    return out
