"""Composable gradient transformations, after optax.

A transformation is a pair of pure functions::

    state = t.init(x)
    step, state = t.update(grad, state, x)
    x = x + step

``x``, ``grad`` and ``step`` are 1-D float64 arrays of the same length. States are NamedTuples
of arrays and ints (tuples of those for :func:`chain`), so they pickle and can be checkpointed.
``update`` never modifies its arguments. Transformations that produce a descent step (the
optimisers in :mod:`optimizers.first_order`) end with :func:`scale_by_learning_rate`, which flips
the sign; the others only reshape the gradient and compose freely with :func:`chain`.
"""

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from .errors import ConfigError
from .schedules import (
    ScalarOrSchedule,
    as_schedule,
    learning_rate,
    learning_rate_schedule,
)


class GradientTransformation(NamedTuple):
    """``init(x) -> state`` and ``update(grad, state, x) -> (step, state)``."""

    init: Callable
    update: Callable


class EmptyState(NamedTuple):
    """State of a stateless transformation."""


class CountState(NamedTuple):
    """Number of updates applied so far (drives schedules)."""

    count: int


class TraceState(NamedTuple):
    """Momentum buffer."""

    trace: np.ndarray


class ScaleByAdamState(NamedTuple):
    """Update count and the first and second moment estimates."""

    count: int
    mu: np.ndarray
    nu: np.ndarray


class ScaleByRmsState(NamedTuple):
    """Running mean of the squared gradient."""

    nu: np.ndarray


def _stateless(fn):
    """A transformation whose step is ``fn(grad, x)``."""
    return GradientTransformation(lambda x: EmptyState(),
                                  lambda grad, state, x: (fn(grad, x), state))


def identity() -> GradientTransformation:
    """``step = grad``."""
    return _stateless(lambda g, x: g)


def scale(factor: float) -> GradientTransformation:
    """``step = factor * grad``."""
    factor = float(factor)
    return _stateless(lambda g, x: factor * g)


def scale_by_schedule(schedule: ScalarOrSchedule) -> GradientTransformation:
    """``step = schedule(t) * grad``, ``t`` the number of updates already applied (no sign flip)."""
    schedule = as_schedule(schedule)

    def update(grad, state, x):
        return schedule(state.count) * grad, CountState(state.count + 1)

    return GradientTransformation(lambda x: CountState(0), update)


def scale_by_learning_rate(lr: ScalarOrSchedule) -> GradientTransformation:
    """``step = -lr(t) * grad``: turns a direction into a descent step. ``lr`` is a positive
    float or a schedule whose values are >= 0; anything else is a
    :class:`~optimizers.errors.ConfigError` (see :mod:`optimizers.schedules`)."""
    schedule = learning_rate_schedule(lr)

    def update(grad, state, x):
        return -learning_rate(schedule, state.count) * grad, CountState(state.count + 1)

    return GradientTransformation(lambda x: CountState(0), update)


def trace(decay: float, nesterov: bool = False) -> GradientTransformation:
    """Polyak (heavy-ball) momentum as in PyTorch and optax: ``m = decay * m + grad``;
    ``step = m``, or ``grad + decay * m`` with Nesterov's correction (Sutskever et al. 2013)."""
    decay = float(decay)

    def update(grad, state, x):
        m = decay * state.trace + grad
        return (grad + decay * m if nesterov else m), TraceState(m)

    return GradientTransformation(lambda x: TraceState(np.zeros_like(x, dtype=np.float64)),
                                  update)


def scale_by_adam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> GradientTransformation:
    """Adam's direction with bias correction (Kingma & Ba 2015, Algorithm 1)::

        m = b1 m + (1 - b1) g,   v = b2 v + (1 - b2) g**2
        step = m_hat / (sqrt(v_hat) + eps),   m_hat = m / (1 - b1**t),   v_hat = v / (1 - b2**t)
    """
    b1, b2, eps = float(b1), float(b2), float(eps)

    def init(x):
        return ScaleByAdamState(0, np.zeros_like(x, dtype=np.float64),
                                np.zeros_like(x, dtype=np.float64))

    def update(grad, state, x):
        t = state.count + 1
        mu = b1 * state.mu + (1.0 - b1) * grad
        nu = b2 * state.nu + (1.0 - b2) * grad * grad
        mu_hat = mu / (1.0 - b1 ** t)
        nu_hat = nu / (1.0 - b2 ** t)
        return mu_hat / (np.sqrt(nu_hat) + eps), ScaleByAdamState(t, mu, nu)

    return GradientTransformation(init, update)


def scale_by_rms(decay: float = 0.9, eps: float = 1e-8) -> GradientTransformation:
    """RMSProp's direction (Hinton, Lecture 6e; PyTorch's form):
    ``v = decay * v + (1 - decay) * g**2``, ``step = g / (sqrt(v) + eps)``."""
    decay, eps = float(decay), float(eps)

    def update(grad, state, x):
        nu = decay * state.nu + (1.0 - decay) * grad * grad
        return grad / (np.sqrt(nu) + eps), ScaleByRmsState(nu)

    return GradientTransformation(lambda x: ScaleByRmsState(np.zeros_like(x, dtype=np.float64)),
                                  update)


def add_decayed_weights(weight_decay: float) -> GradientTransformation:
    """``step = grad + weight_decay * x`` (placed before the learning rate, this is decoupled
    weight decay, Loshchilov & Hutter 2019)."""
    weight_decay = float(weight_decay)
    return _stateless(lambda g, x: g + weight_decay * x)


def clip_by_global_norm(max_norm: float) -> GradientTransformation:
    """``step = grad * min(1, max_norm / ||grad||_2)``."""
    max_norm = float(max_norm)
    if max_norm <= 0:
        raise ConfigError(f"max_norm must be positive, got {max_norm}")

    def fn(g, x):
        norm = float(np.linalg.norm(g))
        return g * (max_norm / norm) if norm > max_norm else g

    return _stateless(fn)


def clip_by_value(lo: float, hi: float) -> GradientTransformation:
    """``step = clip(grad, lo, hi)`` elementwise."""
    if lo > hi:
        raise ConfigError(f"clip_by_value needs lo <= hi, got lo={lo}, hi={hi}")
    return _stateless(lambda g, x: np.clip(g, lo, hi))


def clip(max_abs: float) -> GradientTransformation:
    """``step = clip(grad, -max_abs, max_abs)`` elementwise."""
    if max_abs < 0:
        raise ConfigError(f"max_abs must be >= 0, got {max_abs}")
    return clip_by_value(-max_abs, max_abs)


def normalize() -> GradientTransformation:
    """``step = grad / ||grad||_2`` (unit norm; a zero gradient stays zero)."""

    def fn(g, x):
        norm = float(np.linalg.norm(g))
        return g / norm if norm > 0 else g

    return _stateless(fn)


def chain(*transforms: GradientTransformation) -> GradientTransformation:
    """Apply ``transforms`` in order, each to the previous one's output; the state is the tuple of
    their states."""

    def init(x):
        return tuple(t.init(x) for t in transforms)

    def update(grad, state, x):
        if len(state) != len(transforms):
            raise ValueError(f"chain of {len(transforms)} transforms got a state of {len(state)}")
        new_state = []
        for t, s in zip(transforms, state):
            grad, s = t.update(grad, s, x)
            new_state.append(s)
        return grad, tuple(new_state)

    return GradientTransformation(init, update)
