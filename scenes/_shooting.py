"""What the robot scenes share: a single-shooting problem over one robot's torque sequence."""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

import optimizers
from diffsim import Objective, Rollout
from diffsim.articulated import ArticulatedSystem

from ._goal import Goal, SceneResult


@dataclass
class ShootingProblem:
    """A robot (batch of one), its rollout and the Objective over the controls ``tau``.

    The goal (``GOAL``, set by each scene): the tip ends within ``GOAL.tolerance`` m of
    ``target``."""

    SCENE: ClassVar[str] = "robot"
    GOAL: ClassVar[Goal] = Goal("final distance of the tip to its target", 0.01, "mm", 1e3)

    model: object
    system: ArticulatedSystem
    rollout: Rollout
    objective: Objective
    target: np.ndarray
    config: object = None  # the scene's Config; ``solve`` takes its ``iters``

    @property
    def steps(self):
        return self.rollout.steps

    @property
    def dt(self):
        return self.system.dt

    def x0(self):
        """Initial guess: zero torques."""
        return np.zeros(self.objective.size)

    def solve(self, iters: int | None = None, method: str = "lbfgs", x0=None, **kwargs) -> SceneResult:
        """Optimise the control sequence within the objective's bounds, ``iters`` iterations
        (default: the scene config's ``iters``). Returns a :class:`SceneResult` whose ``success``
        says whether the tip ended within the goal."""
        iters = self.config.iters if iters is None else iters
        res = optimizers.minimize(self.objective, self.x0() if x0 is None else x0, method, iters,
                                  bounds=self.objective.bounds, **kwargs)
        traj = self.trajectory(res.x)
        tip_speed = float(np.linalg.norm(traj["tip"][-1] - traj["tip"][-2]) / self.dt)
        return SceneResult.judge(self.SCENE, self.GOAL, self.tip_distance(traj), res,
                                 final_tip_speed_m_s=tip_speed)

    def tip_distance(self, traj) -> float:
        """Distance (m) of the tip from the target at the last step of ``traj``."""
        return float(np.linalg.norm(traj["tip"][-1] - self.target))

    def trajectory(self, x) -> dict:
        """Joint positions q (T+1, nb), velocities, torques (T, nb), tip positions (T+1, 3)."""
        self.objective.set(x)
        loss = self.rollout.forward()
        q = self.rollout.trajectory("q")[:, 0]
        return {"loss": loss, "q": q, "qd": self.rollout.trajectory("qd")[:, 0],
                "tau": self.rollout.controls()["tau"][:, 0],
                "tip": self.system.ee_positions(q[:, None])[:, 0]}
