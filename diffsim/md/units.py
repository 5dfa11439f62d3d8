"""Unit systems of the MD package.

Two systems are supported, chosen per :class:`~diffsim.md.model.Model` (``units=``):

- ``"lj"``: reduced Lennard-Jones units. Lengths in sigma, energies in epsilon, masses in m,
  time in tau = sigma sqrt(m / epsilon), temperature in epsilon / k_B (so k_B = 1).
- ``"metal"``: Angstrom, eV, amu, fs, kelvin (as ASE; LAMMPS' "metal" uses ps instead of fs).
  An acceleration is F / m * 9.648533e-3 Angstrom/fs^2 per eV/(Angstrom amu); k_B = 8.617333e-5 eV/K.
"""

from dataclasses import dataclass

from ..errors import ConfigError


@dataclass(frozen=True)
class Units:
    """name; ``ftm``: force/mass -> acceleration factor; ``kB``: Boltzmann constant in energy/temperature.

    Kinetic energy is ``0.5 m v^2 / ftm`` in the energy unit.
    """

    name: str
    ftm: float
    kB: float
    length: str
    energy: str
    mass: str
    time: str
    temperature: str = "epsilon/k_B"
    #: one pressure unit (energy/length^3) in bar (LAMMPS "metal" reports bar); NaN in reduced units
    pressure_in_bar: float = float("nan")

    @property
    def velocity(self) -> str:
        """The unit of velocities, e.g. "Angstrom/fs"."""
        return f"{self.length}/{self.time}"

    @property
    def pressure(self) -> str:
        """The unit of pressures and of the pressure tensor, e.g. "eV/Angstrom^3" (LJ: epsilon/sigma^3)."""
        return f"{self.energy}/{self.length}^3"

    def describe(self) -> dict:
        """The unit of every recorded quantity, by name (the metadata of trajectories)."""
        return {"system": self.name, "time": self.time, "positions": self.length, "velocities": self.velocity,
                "energy": self.energy, "temperature": self.temperature, "pressure": self.pressure,
                "mass": self.mass}


UNITS = {
    "lj": Units("lj", 1.0, 1.0, "sigma", "epsilon", "m", "tau"),
    # 1 eV / (Angstrom amu) = 1.602176634e-19 J / (1e-10 m * 1.66053906660e-27 kg) = 9.648533212e-3 A/fs^2
    # 1 eV/Angstrom^3 = 1.602176634e-19 J / 1e-30 m^3 = 1.602176634e11 Pa = 1.602176634e6 bar
    "metal": Units("metal", 9.6485332123310018e-3, 8.617333262e-5, "Angstrom", "eV", "amu", "fs", "K",
                   1.602176634e6),
}


def get_units(name) -> Units:
    """The :class:`Units` named ``name`` ("lj" or "metal"), a :class:`Units` itself, or the units
    of anything that carries them: a :class:`~diffsim.md.model.Model` or an
    :class:`~diffsim.md.system.MDSystem` (so ``temperature(m, v, units=model)`` cannot disagree
    with the model's units)."""
    if isinstance(name, Units):
        return name
    carried = getattr(name, "units_info", None) or getattr(name, "units", None)
    if isinstance(carried, Units):
        return carried
    if name not in UNITS:
        raise ConfigError(f"units={name!r} is not one of {list(UNITS)}: use 'lj' (reduced Lennard-Jones units) "
                          "or 'metal' (Angstrom, eV, amu, fs)")
    return UNITS[name]
