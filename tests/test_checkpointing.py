"""The revolve planner, without Taichi: optimal counts, snapshot bounds, the budget helper."""

from functools import lru_cache
from math import comb

import pytest

from diffsim.checkpointing import (
    Binomial,
    repetition_number,
    revolve,
    revolve_cost,
    snapshots_for_budget,
)
from diffsim.errors import ConfigError


@lru_cache(None)
def brute_force(m, s):
    """Minimal advances to reverse m steps with s snapshots (x_0's included), by exhaustive search."""
    if m == 1:
        return 0
    if s == 0:
        return float("inf")
    return min(j + brute_force(m - j, s - 1) + brute_force(j, s) for j in range(1, m))


def simulate(m, s):
    """Follow a plan like the tape does; return (advanced steps, peak snapshots, reversed order)."""
    advanced, held, peak, reversed_units, current = 0, set(), 0, [], 0
    for a in revolve(m, s):
        if a.kind == "advance":
            assert current == a.a, "advance must start from the current state"
            advanced += a.b - a.a
            current = a.b
        elif a.kind == "snapshot":
            assert current == a.a
            held.add(a.a)
            peak = max(peak, len(held))
        elif a.kind == "restore":
            assert a.a in held, "restore of a state that was never stored"
            current = a.a
        elif a.kind == "free":
            held.remove(a.a)
        elif a.kind == "reverse":
            assert current == a.a
            reversed_units.append(a.a)
            current = None
    return advanced, peak, reversed_units


@pytest.mark.parametrize("s", range(1, 7))
def test_plan_is_optimal_and_bounded(s):
    for m in range(1, 80):
        advanced, peak, order = simulate(m, s)
        assert order == list(reversed(range(m)))
        assert advanced == revolve_cost(m, s) == brute_force(m, s), (m, s)
        assert peak <= s


def test_closed_form_at_known_points():
    assert [revolve_cost(m, 1) for m in (1, 2, 3, 10)] == [0, 1, 3, 45]  # m(m-1)/2
    for s in (2, 5, 32):
        for t in (1, 2, 3):
            m = comb(s + t, s)  # the most steps t repetitions can reverse
            assert repetition_number(m, s) == t
            assert repetition_number(m + 1, s) == t + 1
            assert revolve_cost(m, s) == t * m - comb(s + t, t - 1)


def test_large_plan_is_lazy_and_exact():
    advanced, peak, _ = simulate(20_000, 16)
    assert advanced == revolve_cost(20_000, 16)
    assert peak <= 16


def test_snapshots_for_budget():
    assert snapshots_for_budget(1000, 100, steps=10_000) == 10
    assert snapshots_for_budget(1000, 100, steps=10_000, work_bytes=350) == 6
    assert snapshots_for_budget(10**9, 100, steps=50) == 50  # more than steps is useless
    with pytest.raises(ConfigError, match="does not hold one snapshot"):
        snapshots_for_budget(99, 100, steps=10)
    with pytest.raises(ConfigError):
        revolve_cost(0, 3)
    with pytest.raises(ConfigError):
        Binomial(snapshots=0)


def test_a_thousand_snapshots_need_no_recursion():
    """revolve(2000, 1000) raised RecursionError when each split was a nested generator."""
    from diffsim.checkpointing import revolve

    actions = list(revolve(2000, 1000))
    assert sum(a.kind == "reverse" for a in actions) == 2000
    assert sum(a.kind == "snapshot" for a in actions) - sum(a.kind == "free" for a in actions) <= 1000
