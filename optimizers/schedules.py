"""Learning-rate schedules: callables ``step -> lr``.

``step`` counts the updates already applied (0 for the first update). Each schedule is a small
frozen dataclass, so it pickles and has a readable ``repr``; any other callable ``int -> float``
can be used wherever a schedule is accepted.

A learning rate must be positive and finite: a negative one climbs the loss, zero never moves.
A fixed rate that is not is a :class:`~optimizers.errors.ConfigError` when the optimiser is
built; a schedule may pass through 0 (a warmup from 0, a cosine decay to 0) but a negative or
non-finite value is a ``ConfigError`` at the step that yields it (:func:`learning_rate`).
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

from .errors import ConfigError

Schedule = Callable[[int], float]
ScalarOrSchedule = float | Schedule


@dataclass(frozen=True)
class Constant:
    """``lr(t) = value``."""

    value: float

    def __post_init__(self):
        _check_positive("constant(value)", self.value)

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
        _check_positive("exponential_decay(init)", self.init)
        _check_positive("exponential_decay(decay_rate)", self.decay_rate, fix="e.g. 0.5 halves "
                        "the rate every decay_steps")
        if self.decay_steps <= 0:
            raise ConfigError(f"decay_steps must be positive, got {self.decay_steps}")

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
        _check_positive("cosine_decay(init)", self.init)
        if not (math.isfinite(self.alpha) and self.alpha >= 0):
            raise ConfigError(f"cosine_decay(alpha={self.alpha}): alpha, the final fraction of the "
                              "initial rate, must be >= 0 (0 decays to zero)")
        if self.decay_steps <= 0:
            raise ConfigError(f"decay_steps must be positive, got {self.decay_steps}")

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
            raise ConfigError(f"warmup steps must be >= 0, got {self.steps}")
        if not (math.isfinite(self.init) and self.init >= 0):
            raise ConfigError(f"warmup(init={self.init}): the rate to warm up from must be >= 0 "
                              "(usually 0)")

    def __call__(self, step):
        if step < self.steps:
            peak = self.after(0)
            return float(self.init + (peak - self.init) * step / self.steps)
        return float(self.after(step - self.steps))


def _check_positive(what, value, fix="e.g. 1e-3 for Adam, 1e-2 for SGD"):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be a positive number, got {value!r}") from None
    if not math.isfinite(v):
        raise ConfigError(f"{what} = {v} is not finite; pass a positive number ({fix})")
    if v <= 0:
        why = "never moves" if v == 0 else "climbs the loss instead of descending"
        raise ConfigError(f"{what} = {v:g} must be positive: a learning rate of {v:g} {why}; "
                          f"pass a positive number ({fix})")


def as_schedule(value: ScalarOrSchedule) -> Schedule:
    """A schedule from a float (constant) or a schedule (returned unchanged). No checks: see
    :func:`learning_rate_schedule` for learning rates."""
    return value if callable(value) else _Scalar(float(value))


@dataclass(frozen=True)
class _Scalar:
    """A constant of any sign, for :func:`optimizers.transforms.scale_by_schedule`."""

    value: float

    def __call__(self, step):
        return self.value


def learning_rate_schedule(lr: ScalarOrSchedule, what: str = "lr") -> Schedule:
    """A learning-rate schedule from a float or a schedule, checked: a float must be positive and
    finite; a schedule's value at step 0 must be finite and >= 0 (each later value is checked by
    :func:`learning_rate` when it is used). Raises :class:`~optimizers.errors.ConfigError` naming
    ``what``."""
    if not callable(lr):
        _check_positive(what, lr)
        return Constant(float(lr))
    learning_rate(lr, 0, what)
    return lr


def learning_rate(schedule: Schedule, step: int, what: str = "lr") -> float:
    """``schedule(step)``, checked to be finite and >= 0 (a :class:`~optimizers.errors.ConfigError`
    naming the schedule and the step otherwise)."""
    v = float(schedule(step))
    if not (math.isfinite(v) and v >= 0):
        raise ConfigError(f"the learning-rate schedule {what} = {schedule!r} gives {v:g} at step "
                          f"{step}; a schedule's rates must be finite and >= 0 (a negative rate "
                          "climbs the loss): fix its arguments")
    return v


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
