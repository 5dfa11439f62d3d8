"""What every scene promises: a goal (a figure with a tolerance) and a result that says whether
the run reached it.

A scene's ``solve()`` returns a :class:`SceneResult`: the optimizer's result (``x``, ``fun``,
``history``, ...) whose ``success`` and ``message`` say whether the *scene's goal* was reached
("distance to pocket 0.8 cm <= 2 cm: goal reached"), with the optimizer's own verdict kept in
``optimizer_success`` and ``optimizer_message``. ``diffsim run`` and ``diffsim demo`` exit
non-zero when a goal is missed (:class:`GoalMissed`), and pictures are titled from the result,
never "optimised" when the goal was missed.
"""

from dataclasses import dataclass, field, fields

import numpy as np

from diffsim.errors import DiffsimError
from optimizers.result import OptimizeResult


class GoalMissed(DiffsimError):
    """A scene ran to the end but did not reach its goal; the message has the figure and the goal."""


@dataclass(frozen=True)
class Goal:
    """``figure <= tolerance`` (or ``>=`` with ``at_least=True``), in ``unit``.

    name: what is measured ("distance of the target ball to the pocket"); unit: its unit as
    printed ("cm"); scale: the factor from the scene's SI value to the printed unit (100 for m
    -> cm)."""

    name: str
    tolerance: float
    unit: str = ""
    scale: float = 1.0
    at_least: bool = False

    def reached(self, figure: float) -> bool:
        """True when ``figure`` (SI units of the scene) is finite and within the tolerance."""
        if not np.isfinite(figure):
            return False
        return figure >= self.tolerance if self.at_least else figure <= self.tolerance

    def describe(self, figure: float) -> str:
        """One line: ``"<name> 0.81 cm (goal <= 2 cm): reached"`` or ``"... MISSED"``."""
        op = ">=" if self.at_least else "<="
        u = f" {self.unit}" if self.unit else ""
        verdict = "reached" if self.reached(figure) else "MISSED"
        return (f"{self.name} {figure * self.scale:.4g}{u} (goal {op} {self.tolerance * self.scale:.4g}{u}): "
                f"goal {verdict}")


@dataclass(repr=False)
class SceneResult(OptimizeResult):
    """An :class:`optimizers.OptimizeResult` judged against the scene's goal.

    success: the goal was reached (not merely "the optimizer stopped cleanly");
    message: the figure, the goal and the verdict, one line;
    figure: the measured value (SI units of the scene); goal: the :class:`Goal`;
    optimizer_success, optimizer_message: what the optimizer itself reported;
    details: other figures of the run (JSON-serialisable)."""

    scene: str = ""
    figure: float = float("nan")
    goal: Goal | None = None
    optimizer_success: bool = False
    optimizer_message: str = ""
    details: dict = field(default_factory=dict)

    @classmethod
    def judge(cls, scene: str, goal: Goal, figure: float, result: OptimizeResult | None = None,
              x=None, fun=None, **details) -> "SceneResult":
        """Wrap ``result`` (or, for a scene that does not optimise, just ``x`` / ``fun``)."""
        figure = float(figure)
        if result is None:
            x = np.atleast_1d(np.asarray([] if x is None else x, dtype=np.float64))
            fun = float("nan") if fun is None else float(fun)
            result = OptimizeResult(x=x, fun=fun, jac=np.zeros_like(x), nit=0, nfev=0, success=True,
                                    message="no optimisation", history={"loss": np.array([fun])},
                                    timings={}, method="none")
        base = {f.name: getattr(result, f.name) for f in fields(OptimizeResult) if f.init}
        base.pop("success"), base.pop("message")
        if x is not None:
            base["x"] = np.asarray(x, dtype=np.float64)
        if fun is not None:
            base["fun"] = float(fun)
        return cls(**base, success=goal.reached(figure), message=f"{scene}: {goal.describe(figure)}",
                   scene=scene, figure=figure, goal=goal, optimizer_success=bool(result.success),
                   optimizer_message=str(result.message), details=details)

    def title(self, reached: str, missed: str) -> str:
        """A picture title that does not lie: ``reached`` or ``missed`` by the verdict."""
        return reached if self.success else missed

    def summary(self) -> dict:
        """JSON-ready: goal verdict, figure, message, optimizer verdict and the details."""
        return {"success": bool(self.success), "message": self.message, "figure": self.figure,
                "goal": None if self.goal is None else {"name": self.goal.name, "tolerance": self.goal.tolerance,
                                                         "at_least": self.goal.at_least},
                "optimizer_success": self.optimizer_success, "optimizer_message": self.optimizer_message,
                **self.details}

    def __repr__(self):
        return (f"SceneResult(success={self.success}, message={self.message!r}, fun={self.fun:.6g}, "
                f"nit={self.nit}, optimizer_message={self.optimizer_message!r})")


def report(result: SceneResult) -> int:
    """Print the verdict line (stderr when missed) and return the exit code: 0 reached, 1 missed."""
    import sys

    if result.success:
        print(result.message)
        return 0
    print(f"GOAL MISSED: {result.message}", file=sys.stderr)
    return 1
