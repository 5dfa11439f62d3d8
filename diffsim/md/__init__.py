"""Differentiable molecular dynamics on the checkpointed tape.

Units: reduced Lennard-Jones units ("lj") or Angstrom, eV, amu, fs ("metal"), chosen per
:class:`Model`; see :mod:`diffsim.md.units`.

    from diffsim.md import Model, fcc_lattice, maxwell_boltzmann, LennardJones, ForceField, MDSystem
    pos, box = fcc_lattice((3, 3, 3), density=0.8442)
    model = Model(pos, box=box, velocities=maxwell_boltzmann(np.ones(len(pos)), 1.44))
    system = MDSystem(model, ForceField([LennardJones(cutoff=2.5)], model.types, box), dt=0.005)
    rollout = diffsim.Rollout(system, 1000, diffsim.Binomial(8))
"""

from .ase_io import frame_atoms, from_ase, to_ase, write_extxyz
from .eam import EAM
from .fitting import ForceMatching
from .forcefield import Evaluation, ForceField
from .integrators import Berendsen, Langevin, VelocityVerlet
from .model import Model, fcc_lattice, kinetic_energy, maxwell_boltzmann, temperature
from .neighbors import NeighborList, brute_force_pairs
from .npt import BerendsenBarostat, StochasticCellRescaling, equilibrate_npt, simulate_npt
from .observables import (
                          RDF,
                          Cost,
                          KineticEnergy,
                          MSDMatch,
                          PotentialEnergy,
                          PressureMatch,
                          RDFMatch,
                          kinetic_tensor,
                          msd,
                          pressure,
                          pressure_tensor,
                          rdf_smoothed,
)
from .potentials import HarmonicAngle, HarmonicBond, LennardJones, Morse, Shift, SoftSphere
from .system import MDSystem
from .trajectory import Frames
from .units import UNITS, Units

__all__ = [
                          "RDF",
                          "UNITS",
                          "Berendsen",
                          "BerendsenBarostat",
                          "Cost",
                          "EAM",
                          "Evaluation",
                          "ForceField",
                          "ForceMatching",
                          "Frames",
                          "HarmonicAngle",
                          "HarmonicBond",
                          "KineticEnergy",
                          "Langevin",
                          "LennardJones",
                          "MDSystem",
                          "MSDMatch",
                          "Model",
                          "Morse",
                          "NeighborList",
                          "PotentialEnergy",
                          "PressureMatch",
                          "RDFMatch",
                          "Shift",
                          "StochasticCellRescaling",
                          "SoftSphere",
                          "Units",
                          "VelocityVerlet",
                          "brute_force_pairs",
                          "equilibrate_npt",
                          "fcc_lattice",
                          "frame_atoms",
                          "from_ase",
                          "kinetic_energy",
                          "kinetic_tensor",
                          "maxwell_boltzmann",
                          "msd",
                          "pressure",
                          "pressure_tensor",
                          "rdf_smoothed",
                          "simulate_npt",
                          "temperature",
                          "to_ase",
                          "write_extxyz",
]
