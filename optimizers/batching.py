"""Objectives made of many cases (initial conditions, trajectories, data points).

A *case objective* is a callable ``(x, case) -> (loss, grad)``; these classes turn it into the
``x -> (loss, grad)`` objective that :func:`optimizers.minimize` expects.
"""

from collections.abc import Callable, Sequence

import numpy as np

from .errors import ConfigError


def _accumulate(case_objective, x, cases):
    """Sum of ``case_objective(x, c)`` over ``cases``, in order."""
    total, grad = 0.0, np.zeros_like(x, dtype=np.float64)
    for case in cases:
        loss, g = case_objective(x, case)
        total += float(loss)
        grad = grad + np.asarray(g, dtype=np.float64)
    return total, grad


class SumObjective:
    """``L(x) = sum_i f(x, case_i)`` over all cases, with its gradient."""

    def __init__(self, case_objective: Callable, cases: Sequence):
        if len(cases) == 0:
            raise ConfigError("no cases given")
        self.case_objective, self.cases = case_objective, cases

    def __call__(self, x):
        return _accumulate(self.case_objective, x, self.cases)


class MeanObjective(SumObjective):
    """``L(x) = (1/N) sum_i f(x, case_i)`` over all ``N`` cases, with its gradient."""

    def __call__(self, x):
        loss, grad = _accumulate(self.case_objective, x, self.cases)
        return loss / len(self.cases), grad / len(self.cases)


class MiniBatchObjective:
    """Mean of ``f(x, case)`` over a mini-batch of ``batch_size`` cases, a new batch per call.

    Batches are drawn by random reshuffling: each epoch walks a fresh random permutation of the
    cases in consecutive batches; the ``N mod batch_size`` cases left at the end of an epoch are
    skipped for that epoch, so every batch has the same size.

    The permutation comes from a ``numpy.random.Generator``: seeded with ``seed``, or, when
    ``seed`` is None, the one :func:`~optimizers.minimize` hands over through ``bind_rng``
    (seeded by its ``seed``). ``get_state``/``set_state`` capture the generator and the position
    in the epoch; ``minimize`` saves them in its checkpoints so a resumed run draws the same
    batches.

    Attributes:
        last_batch: indices of the cases in the latest batch, (batch_size,) int.
        epoch: number of permutations drawn so far.
    """

    def __init__(self, case_objective: Callable, cases: Sequence, batch_size: int,
                 seed: int | None = None):
        if not 1 <= batch_size <= len(cases):
            raise ConfigError(f"batch_size must be in [1, {len(cases)}] (the number of cases), "
                              f"got {batch_size}")
        self.case_objective, self.cases, self.batch_size = case_objective, cases, int(batch_size)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self._perm, self._cursor, self.epoch = None, 0, 0
        self.last_batch = None

    def bind_rng(self, rng: np.random.Generator):
        """Use ``rng`` (from ``minimize``) when no ``seed`` was given."""
        if self.seed is None:
            self.rng = rng

    def next_batch(self) -> np.ndarray:
        """Indices of the next mini-batch."""
        if self._perm is None or self._cursor + self.batch_size > len(self.cases):
            self._perm, self._cursor = self.rng.permutation(len(self.cases)), 0
            self.epoch += 1
        batch = self._perm[self._cursor:self._cursor + self.batch_size]
        self._cursor += self.batch_size
        return batch

    def __call__(self, x):
        self.last_batch = self.next_batch()
        loss, grad = _accumulate(self.case_objective, x, [self.cases[i] for i in self.last_batch])
        return loss / self.batch_size, grad / self.batch_size

    def get_state(self) -> dict:
        """Generator state and position in the epoch (a pickleable dict)."""
        return {"rng": self.rng.bit_generator.state,
                "perm": None if self._perm is None else self._perm.copy(),
                "cursor": self._cursor, "epoch": self.epoch}

    def set_state(self, state: dict):
        """Restore what :meth:`get_state` returned."""
        self.rng.bit_generator.state = state["rng"]
        self._perm = None if state["perm"] is None else np.array(state["perm"])
        self._cursor, self.epoch = state["cursor"], state["epoch"]
