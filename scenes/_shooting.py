"""What the robot scenes share: a single-shooting problem over one robot's torque sequence."""

from dataclasses import dataclass

import numpy as np

import optimizers
from diffsim import Objective, Rollout
from diffsim.articulated import ArticulatedSystem


@dataclass
class ShootingProblem:
    """A robot (batch of one), its rollout and the Objective over the controls ``tau``."""

    model: object
    system: ArticulatedSystem
    rollout: Rollout
    objective: Objective
    target: np.ndarray

    @property
    def steps(self):
        return self.rollout.steps

    @property
    def dt(self):
        return self.system.dt

    def x0(self):
        """Initial guess: zero torques."""
        return np.zeros(self.objective.size)

    def solve(self, iters: int = 150, method: str = "lbfgs", x0=None, **kwargs):
        """Optimise the control sequence within the objective's bounds; optimizers' OptimizeResult."""
        return optimizers.minimize(self.objective, self.x0() if x0 is None else x0, method, iters,
                                   bounds=self.objective.bounds, progress=False, **kwargs)

    def trajectory(self, x) -> dict:
        """Joint positions q (T+1, nb), velocities, torques (T, nb), tip positions (T+1, 3)."""
        self.objective.set(x)
        loss = self.rollout.forward()
        q = self.rollout.trajectory("q")[:, 0]
        return {"loss": loss, "q": q, "qd": self.rollout.trajectory("qd")[:, 0],
                "tau": self.rollout.controls()["tau"][:, 0],
                "tip": self.system.ee_positions(q[:, None])[:, 0]}
