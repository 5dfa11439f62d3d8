"""Learning-rate schedules: callables ``step -> lr``.

``step`` counts the updates already applied (0 for the first update). Each schedule is a small
frozen dataclass, so it pickles and has a readable ``repr``; any other callable ``int -> float``
can be used wherever a schedule is accepted.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

Schedule = Callable[[int], float]
ScalarOrSchedule = float | Schedule


@dataclass(frozen=True)
class Constant:
    """``lr(t) = value``."""

    value: float

    def __call__(self, step):
        return float(self.value)


@dataclass(frozen=True)
class ExponentialDecay:
    """``lr(t) = init * decay_rate ** (t / decay_steps)``; with ``staircase`` the exponent is
    ``floor(t / decay_steps)``."""

    init: float
    decay_rate: float
    decay_steps: int
    staircase: bool = False

    def __post_init__(self):
        if self.decay_steps <= 0:
            raise ValueError(f"decay_steps must be positive, got {self.decay_steps}")

    def __call__(self, step):
        p = step / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return float(self.init * self.decay_rate ** p)


@dataclass(frozen=True)
class CosineDecay:
    """Cosine annealing (Loshchilov & Hutter 2017, without restarts), ``T = decay_steps``::

        lr(t) = init * ((1 - alpha) * (1 + cos(pi * min(t, T) / T)) / 2 + alpha)

    Reaches ``alpha * init`` at ``t = T`` and stays there."""

    init: float
    decay_steps: int
    alpha: float = 0.0

    def __post_init__(self):
        if self.decay_steps <= 0:
            raise ValueError(f"decay_steps must be positive, got {self.decay_steps}")

    def __call__(self, step):
        t = min(step, self.decay_steps) / self.decay_steps
        return float(self.init * ((1.0 - self.alpha) * 0.5 * (1.0 + math.cos(math.pi * t))
                                  + self.alpha))


@dataclass(frozen=True)
class Warmup:
    """Linear warmup from ``init`` to ``after(0)`` over ``steps`` updates, then
    ``after(t - steps)``."""

    steps: int
    after: Schedule
    init: float = 0.0

    def __post_init__(self):
        if self.steps < 0:
            raise ValueError(f"warmup steps must be >= 0, got {self.steps}")

    def __call__(self, step):
        if step < self.steps:
            peak = self.after(0)
            return float(self.init + (peak - self.init) * step / self.steps)
        return float(self.after(step - self.steps))


def as_schedule(value: ScalarOrSchedule) -> Schedule:
    """A schedule from a float (constant) or a schedule (returned unchanged)."""
    return value if callable(value) else Constant(float(value))


def constant(value: float) -> Schedule:
    """``lr(t) = value``."""
    return Constant(float(value))


def exponential_decay(init: float, decay_rate: float, decay_steps: int,
                      staircase: bool = False) -> Schedule:
    """``lr(t) = init * decay_rate ** (t / decay_steps)`` (floored exponent with ``staircase``)."""
    return ExponentialDecay(float(init), float(decay_rate), int(decay_steps), bool(staircase))


def cosine_decay(init: float, decay_steps: int, alpha: float = 0.0) -> Schedule:
    """Cosine decay from ``init`` to ``alpha * init`` over ``decay_steps`` updates."""
    return CosineDecay(float(init), int(decay_steps), float(alpha))


def warmup(steps: int, after: ScalarOrSchedule, init: float = 0.0) -> Schedule:
    """Linear warmup from ``init`` to ``after``'s first value over ``steps`` updates, then the
    schedule ``after`` (a float means constant), started afresh at 0."""
    return Warmup(int(steps), as_schedule(after), float(init))
