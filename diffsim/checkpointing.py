"""Checkpoint schedules and the Griewank-Walther binomial (revolve) reversal plan.

Pure Python, no Taichi: a schedule turns a rollout of ``m`` units (a unit is a run of
steps that is recomputed and reversed as a whole) into actions that the tape executes.

Conventions (as in Griewank & Walther, "Algorithm 799: revolve", ACM TOMS 2000):
- ``s`` snapshots include the one holding the initial state x_0.
- The state the simulator currently holds is not a snapshot.
- With ``t`` the repetition number, the smallest t with C(s+t, s) >= m, reversing m units
  costs exactly ``p(m, s) = t*m - C(s+t, t-1)`` extra forward units (:func:`revolve_cost`),
  on top of the m units of the recording sweep. This plan attains it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from math import comb
from numbers import Integral
from typing import NamedTuple

from .errors import ConfigError


class Action(NamedTuple):
    """One instruction of a reversal plan, over unit boundaries.

    kind: "advance" (current state from unit a to b, intermediates discarded),
    "snapshot" (store the current state, which is at boundary a),
    "restore" (current state = snapshot of boundary a),
    "free" (drop the snapshot of boundary a),
    "reverse" (recompute unit a from the current state x_a and run its adjoint).
    """

    kind: str
    a: int
    b: int = -1


def repetition_number(m: int, s: int) -> int:
    """Smallest t with C(s+t, s) >= m: how often the worst step is run forward."""
    t = 0
    while comb(s + t, s) < m:
        t += 1
    return t


def revolve_cost(m: int, s: int) -> int:
    """Griewank's minimal number of extra forward units to reverse m units with s snapshots."""
    if m < 1 or s < 1:
        raise ConfigError(f"revolve needs m >= 1 units and s >= 1 snapshots, got m={m}, s={s}")
    t = repetition_number(m, s)
    return t * m - comb(s + t, t - 1) if t > 0 else 0


def _split(m: int, s: int) -> int:
    """Length of the first advance when reversing m > 1 units with s >= 1 snapshots.

    Advancing j units, then reversing the right part (m - j units, s - 1 snapshots) and the
    left part (j units, s snapshots) costs g(j) = j + p(j, s) + p(m - j, s - 1). Since
    p(k, s) - p(k - 1, s) = t(k, s) (the repetition number), g is convex with
    g(j + 1) - g(j) = 1 + t(j + 1, s) - t(m - j, s - 1); the smallest j where that is
    non-negative is optimal (found by bisection).
    """
    if s == 1:
        return m - 1

    def rising(j: int) -> bool:
        return 1 + repetition_number(j + 1, s) >= repetition_number(m - j, s - 1)

    lo, hi = 1, m - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if rising(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def revolve(m: int, s: int) -> Iterator[Action]:
    """Binomial reversal plan for m units with s snapshots (x_0 is held in snapshot 0).

    The first actions, up to the first "reverse", are the recording sweep; the tape runs them
    during ``forward()`` (which also runs the last unit, reversed first without recomputing).
    Never holds more than s snapshots at once.
    """
    if m < 1 or s < 1:
        raise ConfigError(f"revolve needs m >= 1 units and s >= 1 snapshots, got m={m}, s={s}")
    if m > 1:
        yield Action("snapshot", 0)
    yield from _reverse(0, m, s, True)


def _reverse(a: int, b: int, s: int, at_a: bool) -> Iterator[Action]:
    """Reverse units [a, b) with s snapshots; x_a is in a snapshot (or b - a == 1), or the current
    state is x_a (at_a). Split at c, reverse [c, b) with one snapshot fewer, then [a, c). An
    explicit stack of frames [a, b, s, at_a, (c, keep) of the child being reversed], so that
    thousands of snapshots need no recursion."""
    stack = [[a, b, s, at_a, None]]
    while stack:
        frame = stack[-1]
        a, b, s, at_a, child = frame
        if child is not None:  # [c, b) is reversed: free its snapshot, go on with [a, c)
            c, keep = child
            if keep:
                yield Action("free", c)
            frame[1], frame[3], frame[4] = c, False, None
            continue
        if b - a == 1:
            if not at_a:
                yield Action("restore", a)
            yield Action("reverse", a)
            stack.pop()
            continue
        c = a + _split(b - a, s)
        if not at_a:
            yield Action("restore", a)
        yield Action("advance", a, c)
        keep = b - c > 1
        if keep:
            yield Action("snapshot", c)
        frame[4] = (c, keep)
        stack.append([c, b, s - 1, True, None])


# ---------------------------------------------------------------- schedules the user picks


def _whole_number(where: str, name: str, value, example: str) -> None:
    """A schedule's count must be an int >= 1: 2.5 snapshots or "8" would otherwise be truncated
    or fail deep inside the revolve plan."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ConfigError(f"{where}: {name} must be a whole number >= 1, got {value!r}; e.g. {example}")


@dataclass(frozen=True)
class StoreAll:
    """Keep every state: no recomputation, O(T) memory (states and their adjoints)."""

    def units(self, steps: int, segment: int) -> tuple[int, int]:
        """(steps per unit, units the schedule stores) for a rollout of ``steps`` steps fused ``segment`` per launch."""
        return steps, 1

    def __str__(self):
        return "StoreAll()"


@dataclass(frozen=True)
class Periodic:
    """Snapshot every ``every`` steps; each stretch is recomputed once during backward.

    Memory: T/every snapshots plus every+1 working states; ``every`` near sqrt(T) balances them.
    ``every`` must be a multiple of the rollout's segment length.
    """

    every: int

    def __post_init__(self):
        _whole_number("Periodic(every=...)", "every", self.every, "Periodic(every=100)")

    def units(self, steps: int, segment: int) -> tuple[int, int]:
        """(steps per unit, units the schedule stores) for a rollout of ``steps`` steps fused ``segment`` per launch."""
        if self.every % segment:
            raise ConfigError(f"Periodic(every={self.every}) must be a multiple of the segment "
                              f"length {segment} (steps fused per launch)")
        unit = min(self.every, steps)
        return unit, -(-steps // unit)

    def __str__(self):
        return f"Periodic(every={self.every})"


@dataclass(frozen=True)
class Binomial:
    """Griewank-Walther revolve with ``snapshots`` stored states (x_0's snapshot included).

    Reverses T steps (in units of one segment) with the minimal number of recomputed steps,
    :func:`revolve_cost`; with t recomputations per step it reaches C(s+t, s) steps.
    """

    snapshots: int

    def __post_init__(self):
        _whole_number("Binomial(snapshots=...)", "snapshots", self.snapshots, "Binomial(snapshots=32)")

    def units(self, steps: int, segment: int) -> tuple[int, int]:
        """(steps per unit, units the schedule stores) for a rollout of ``steps`` steps fused ``segment`` per launch."""
        return segment, self.snapshots

    def __str__(self):
        return f"Binomial(snapshots={self.snapshots})"


def recompute_sweeps(m: int, s: int) -> float:
    """Forward units run by a binomial reversal of m units with s snapshots, per unit: 1 for the
    recording sweep plus Griewank's minimal recomputation (``revolve_cost(m, s) / m``)."""
    return 1.0 + revolve_cost(m, s) / m


def snapshots_for_budget(budget_bytes: int, state_bytes: int, steps: int,
                         work_bytes: int = 0, max_sweeps: float = 30.0) -> int:
    """Largest useful snapshot count ``s`` whose snapshots fit in ``budget_bytes``.

    state_bytes: bytes of one state (all fields, no gradient); work_bytes: the fixed cost of
    the working slots, taken off the budget first; steps: the units to reverse. Raises
    ConfigError if not even one snapshot fits, or if the snapshots that fit would make the
    reversal cost more than ``max_sweeps`` forward sweeps (Binomial(1) over 10^6 units is 5 x
    10^11 unit steps: it never finishes); the message gives the estimate and the budget that
    brings it to about 10 sweeps.
    """
    if state_bytes <= 0:
        raise ConfigError(f"state_bytes must be positive, got {state_bytes}")
    s = (budget_bytes - work_bytes) // state_bytes
    if s < 1:
        raise ConfigError(f"a memory budget of {budget_bytes} bytes does not hold one snapshot "
                          f"of {state_bytes} bytes plus {work_bytes} bytes of working states")
    m = max(1, int(steps))
    s = int(min(s, m))
    sweeps = recompute_sweeps(m, s)
    if sweeps > max_sweeps:
        enough = s
        while enough < m and recompute_sweeps(m, enough) > 10.0:
            enough = min(m, 2 * enough)
        need = work_bytes + enough * state_bytes
        raise ConfigError(f"a memory budget of {budget_bytes} bytes holds {s} snapshot(s) of {state_bytes} "
                          f"bytes: reversing {m} units would run about {sweeps:.3g} forward sweeps "
                          f"({revolve_cost(m, s) + m:.3g} unit steps), more than max_sweeps={max_sweeps:g}; "
                          f"give at least {need} bytes ({enough} snapshots, about "
                          f"{recompute_sweeps(m, enough):.3g} sweeps), a longer segment or a shorter rollout")
    return s
