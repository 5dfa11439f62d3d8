"""Ready-made recipe builders: many-case fits that shard well.

* :func:`chain_identification`: system identification of the reference chain
  (:class:`~diffsim.mass_spring.MassSpringChain`): fit stiffness and damping to many recorded
  trajectories, each from its own initial state under its own end force, with
  :class:`~diffsim.costs.TrajectoryMatch`.
* :func:`force_matching`: fit Lennard-Jones epsilon and sigma to reference energies and forces
  of many molecular configurations with :class:`~diffsim.md.ForceMatching`.

Both are recipes: ``Recipe("diffsim.distributed.examples:chain_identification", config)``. A case
is an index (a synthetic case, generated from ``(seed, index)`` with data made by the hidden
parameters, identically in every process) or a dict holding recorded data.
"""

from typing import ClassVar

import numpy as np

from ..errors import ConfigError

CHAIN_DEFAULTS = {"n": 4, "dt": 0.005, "steps": 200, "mass": 0.1, "kappa": 100.0, "rest_length": 0.1, "segment": 20,
                      "hidden": {"stiffness": 180.0, "damping": 0.35}, "guess": {"stiffness": 120.0, "damping": 0.6},
                      "weight": 1e4, "snapshots": None, "seed": 0, "force_amplitude": 0.5, "position_noise": 0.02,
                      "velocity_noise": 0.1}


def _merge(defaults: dict, config: dict, what: str) -> dict:
    unknown = sorted(set(config) - set(defaults))
    if unknown:
        raise ConfigError(f"{what}: unknown config keys {unknown}; known keys are {sorted(defaults)}")
    out = dict(defaults)
    out.update(config)
    return out


class ChainIdentification:
    """Per-case least-squares fit of the chain's log(stiffness), log(damping) (see module doc).

    Config (all optional): n nodes, dt (s), steps T, mass (kg), kappa (1/m^2), rest_length (m),
    segment (steps per fused launch), hidden {stiffness (N/m), damping (N s/m)} that made the
    synthetic data, guess {stiffness, damping} (x0), weight (on (q - q_obs)^2, 1/m^2),
    snapshots (None: StoreAll, k: Binomial(k) checkpointing), seed, force_amplitude (N),
    position_noise (m) and velocity_noise (m/s) of the synthetic initial states.

    A case is an int (synthetic) or a dict {q0 (n,) m, v0 (n,) m/s, force (T, 1) N,
    q_obs (T+1, n) m}.
    """

    names: ClassVar[list] = ["log stiffness", "log damping"]

    def __init__(self, config: dict | None = None):
        self.config = _merge(CHAIN_DEFAULTS, dict(config or {}), "chain_identification")
        self._reference = None
        self._cases = {}

    def _chain(self, stiffness, damping):
        from ..mass_spring import MassSpringChain

        c = self.config
        return MassSpringChain(n=c["n"], dt=c["dt"], stiffness=stiffness, damping=damping, mass=c["mass"],
                               kappa=c["kappa"], rest_length=c["rest_length"], segment=c["segment"])

    def _schedule(self):
        from ..checkpointing import Binomial, StoreAll

        return StoreAll() if self.config["snapshots"] is None else Binomial(self.config["snapshots"])

    def trajectory(self, case) -> dict:
        """The case's data: q0, v0, force and the observed q (synthetic for an int case)."""
        if isinstance(case, dict):
            missing = [k for k in ("q0", "v0", "force", "q_obs") if k not in case]
            if missing:
                raise ConfigError(f"a chain case dict needs q0, v0, force, q_obs; missing {missing}")
            return {k: np.asarray(case[k], dtype=np.float64) for k in ("q0", "v0", "force", "q_obs")}
        if not isinstance(case, (int, np.integer)) or isinstance(case, bool):
            raise ConfigError(f"a chain case is an int (synthetic) or a dict of data, got {type(case).__name__}")
        from ..tape import Rollout

        c = self.config
        rng = np.random.default_rng([int(c["seed"]), int(case)])
        n, T = c["n"], c["steps"]
        q0 = -c["rest_length"] * np.arange(1, n + 1) + c["position_noise"] * rng.standard_normal(n)
        v0 = c["velocity_noise"] * rng.standard_normal(n)
        omega, phase = rng.uniform(5.0, 30.0), rng.uniform(0, 2 * np.pi)
        force = c["force_amplitude"] * np.sin(omega * c["dt"] * np.arange(T) + phase)[:, None]
        if self._reference is None:
            from ..checkpointing import StoreAll

            self._reference = Rollout(self._chain(**c["hidden"]), T, StoreAll())
        ref = self._reference
        ref.set_state0(q=q0, v=v0)
        ref.set_controls(force=force)
        ref.forward()
        return {"q0": q0, "v0": v0, "force": force, "q_obs": np.array(ref.trajectory("q"))}

    def case_objective(self, case):
        """The :class:`~diffsim.Objective` of one case (built once per case and kept)."""
        key = case if isinstance(case, (int, np.integer)) else id(case)
        if key not in self._cases:
            from ..costs import TrajectoryMatch
            from ..objective import Objective, Parameter
            from ..tape import Rollout

            data = self.trajectory(case)
            steps = data["q_obs"].shape[0] - 1
            chain = self._chain(**self.config["guess"])
            rollout = Rollout(TrajectoryMatch(chain, {"q": data["q_obs"]}, weights={"q": self.config["weight"]}),
                              steps, self._schedule())
            rollout.set_controls(force=data["force"])
            rollout.set_state0(q=data["q0"], v=data["v0"])
            self._cases[key] = Objective(rollout, [Parameter("stiffness", transform="log"),
                                                   Parameter("damping", transform="log")])
        return self._cases[key]

    def __call__(self, x, case):
        return self.case_objective(case)(x)

    def shard(self, cases):
        """The sum over ``cases``, their rollouts built now (at the worker's start, not its first call)."""
        from .worker import _SumOverCases

        for case in cases:
            self.case_objective(case)
        return _SumOverCases(self, cases)

    def x0(self):
        g = self.config["guess"]
        return np.log([g["stiffness"], g["damping"]])

    @staticmethod
    def unpack(x) -> dict:
        """Physical values {stiffness (N/m), damping (N s/m)} from a packed vector."""
        return {"stiffness": float(np.exp(x[0])), "damping": float(np.exp(x[1]))}


def chain_identification(config: dict | None = None) -> ChainIdentification:
    """Recipe builder: ``Recipe("diffsim.distributed.examples:chain_identification", config)``."""
    return ChainIdentification(config)


FM_DEFAULTS = {"n_configs": None, "n_atoms": None, "cells": (2, 2, 2), "density": 0.8442, "jitter": 0.06, "cutoff": 1.6,
                   "hidden": {"epsilon": 1.0, "sigma": 1.0}, "guess": {"epsilon": 0.8, "sigma": 1.05},
                   "energy_weight": 1.0, "force_weight": 1.0, "seed": 0}


class _ForceMatchingShard:
    """``x -> (loss, grad)`` of one shard: a ForceMatching over its configurations, weighted so that
    the shards' losses add up to the loss over all configurations."""

    def __init__(self, fm):
        self.fm = fm
        self.names = fm.names

    def __call__(self, x):
        return self.fm(x)

    def x0(self):
        return self.fm.x0()


class ForceMatchingProblem:
    """Force matching of a Lennard-Jones pair potential (reduced LJ units) over many configurations.

    Config: n_configs (C, the number of configurations in the whole fit: the loss is normalised
    over all of them, see :mod:`diffsim.md.fitting`); for synthetic int cases, cells, density,
    jitter (Gaussian displacement of the fcc sites, length), seed and the hidden
    {epsilon, sigma} that produce the reference energies and forces; cutoff (length); guess
    {epsilon, sigma} (x0); energy_weight, force_weight. Dict cases ({positions, box, types,
    energy, forces}, as :class:`~diffsim.md.ForceMatching` takes them) also need n_atoms, the
    total atom count of the fit. Fitted: log(epsilon), log(sigma).
    """

    def __init__(self, config: dict):
        self.config = _merge(FM_DEFAULTS, dict(config or {}), "force_matching")
        if not self.config["n_configs"] or self.config["n_configs"] < 1:
            raise ConfigError("force_matching needs n_configs, the number of configurations of the whole fit "
                              "(the loss is normalised over all of them)")
        self._single = {}

    def _lj(self, values):
        from ..md import LennardJones

        return LennardJones(epsilon=values["epsilon"], sigma=values["sigma"], cutoff=self.config["cutoff"])

    def configurations(self, cases) -> list:
        """Configuration dicts (positions, box, types, energy, forces) of ``cases``."""
        from ..md import ForceMatching, fcc_lattice

        c = self.config
        out, synthetic = [], []
        for case in cases:
            if isinstance(case, dict):
                out.append(case)
                continue
            if not isinstance(case, (int, np.integer)) or not 0 <= case < c["n_configs"]:
                raise ConfigError(f"a force-matching case is a configuration index in [0, {c['n_configs']}) or a "
                                  f"dict, got {case!r}")
            pos, box = fcc_lattice(c["cells"], c["density"])
            rng = np.random.default_rng([int(c["seed"]), int(case)])
            pos = pos + rng.normal(0.0, c["jitter"], pos.shape)
            out.append({"positions": pos, "box": box, "energy": 0.0, "forces": np.zeros_like(pos)})
            synthetic.append(len(out) - 1)
        if synthetic:
            ref = ForceMatching([self._lj(c["hidden"])], [out[i] for i in synthetic])
            energies, forces = ref.predict()
            start = 0
            for k, i in enumerate(synthetic):
                n = len(out[i]["positions"])
                out[i] = dict(out[i], energy=float(energies[k]), forces=forces[start:start + n].copy())
                start += n
        return out

    def _total_atoms(self, configs, cases):
        c = self.config
        if c["n_atoms"] is not None:
            return float(c["n_atoms"])
        if any(isinstance(case, dict) for case in cases):
            raise ConfigError("force_matching with dict cases needs n_atoms, the total atom count of the whole fit")
        return float(c["n_configs"] * len(configs[0]["positions"]))

    def shard(self, cases):
        from ..md import ForceMatching

        c = self.config
        configs = self.configurations(cases)
        atoms = sum(len(cfg["positions"]) for cfg in configs)
        fm = ForceMatching([self._lj(c["guess"])], configs, params=["epsilon", "sigma"], log=("epsilon", "sigma"),
                           energy_weight=c["energy_weight"] * len(configs) / c["n_configs"],
                           force_weight=c["force_weight"] * atoms / self._total_atoms(configs, cases))
        return _ForceMatchingShard(fm)

    def __call__(self, x, case):
        key = case if isinstance(case, (int, np.integer)) else id(case)
        if key not in self._single:
            self._single[key] = self.shard([case])
        return self._single[key](x)

    def x0(self):
        g = self.config["guess"]
        return np.log([g["epsilon"], g["sigma"]])

    names: ClassVar[list] = ["epsilon[0]", "sigma[0]"]

    @staticmethod
    def unpack(x) -> dict:
        return {"epsilon": float(np.exp(x[0])), "sigma": float(np.exp(x[1]))}


def force_matching(config: dict) -> ForceMatchingProblem:
    """Recipe builder: ``Recipe("diffsim.distributed.examples:force_matching", {"n_configs": 64, ...})``."""
    return ForceMatchingProblem(config)
