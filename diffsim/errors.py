"""Errors raised by diffsim. Every one says what was wrong, where, and what to do."""

from __future__ import annotations

import numpy as np


class DiffsimError(Exception):
    """Base class of every error diffsim raises on purpose."""


class ConfigError(DiffsimError, ValueError):
    """Bad input: a wrong shape, a negative mass, an impossible schedule, a second conflicting init."""


class DeepStartWarning(UserWarning):
    """A body or a robot's contact point starts deep inside what it touches (a plane, the
    ground): the contact would throw it out (see ArticulatedSystem.set_initial_state and
    diffsim.rigid.ModelBuilder.finalize)."""


class SimulationDiverged(DiffsimError, FloatingPointError):
    """A state became NaN or Inf during a rollout.

    Attributes: ``step`` (index of the first state that is not finite, 0 = initial state),
    ``field`` (name of the state field) and ``index`` (tuple index into that field's per-step array).
    """

    def __init__(self, step: int, field: str, index: tuple, value: float, hint: str = ""):
        self.step, self.field, self.index, self.value = step, field, tuple(index), value
        where = ", ".join(str(i) for i in self.index)
        msg = f"step {step}: state field '{field}'[{where}] is {value!r}"
        msg += f"; {hint}" if hint else "; reduce the time step or check parameters and controls"
        super().__init__(msg)


class GradientCheckError(DiffsimError, AssertionError):
    """Reverse-mode gradient disagrees with finite differences; ``report`` holds the full table."""

    def __init__(self, report):
        self.report = report
        super().__init__("gradient check failed:\n" + str(report))


def finite_number(value, what, allow_inf=False) -> float:
    """``value`` as a float; ConfigError naming ``what`` unless it is a real, finite number."""
    if isinstance(value, (bool, np.bool_, str, bytes)) or np.ndim(value) != 0:
        raise ConfigError(f"{what} must be a number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be a number, got {value!r}") from None
    if np.isnan(v) or (np.isinf(v) and not allow_inf):
        raise ConfigError(f"{what} must be finite, got {value!r}")
    return v
