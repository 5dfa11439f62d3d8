"""Checks of a rigid scene's inputs that the physics cannot survive silently (outside AD).

- Coincident centres: two bodies whose centres coincide have no contact normal (the narrow
  phase's :func:`~diffsim.contact.safe_normalized` gives a zero one), so they would stay merged
  forever. That is refused (a ConfigError naming both bodies) rather than resolved along an
  arbitrary axis: such a start is a scene-building mistake, any chosen axis would decide the
  outcome, and the impulse model has no positional correction that could separate them.
- Tunnelling in the penalty model: a body of half-thickness r (m) arriving at speed v (m/s)
  sinks about v sqrt(m / k_n) (m) into whatever it hits before the spring stops it; when that
  exceeds its own thickness it goes through (a 2000 m/s ball through another). Refused with
  the stiffness (and the time step it needs) that would stop it, or the impulse model, whose
  swept sphere test has no such limit.
- Passing through in one step: a body that travels further in a step than the contacts it can
  have are deep (its half-thickness plus the thinnest body's) can start a step before a body
  and end it past that body's middle, where the contact pushes it on through, or past the body
  altogether, untouched: a 50 m/s pellet through a 2 cm wall. Every contact that is not swept
  (the penalty model, and boxes and capsules in the impulse model) is checked on every state of
  the forward sweep; a run that breaks the bound stops with a DiffsimError naming the body, the
  step, its speed and the time step that would catch it, instead of returning a trajectory
  that went through a wall.

The first two run at the first step of every forward sweep (on the state the user set) and at
build.
"""

import numpy as np
import taichi as ti

from ..errors import ConfigError, DiffsimError

_A = ti.types.ndarray()

COINCIDENT_DISTANCE = 1e-8  # m: centres closer than this have no usable contact normal


@ti.kernel
def first_coincident_pair(positions: _A, slot: ti.i32, pairs: _A, pair_count: _A, pair_slot: ti.i32,
                          dim: ti.template(), tolerance: ti.f64) -> ti.i32:
    """Index k of the first candidate pair (pairs[pair_slot, k]) whose centres at ``slot`` lie
    within ``tolerance`` (m) of each other, or -1."""
    found = -1
    for _ in range(1):
        for k in range(pair_count[pair_slot]):
            i, j = pairs[pair_slot, k, 0], pairs[pair_slot, k, 1]
            d2 = 0.0
            for c in ti.static(range(dim)):
                d2 += (positions[slot, i, c] - positions[slot, j, c]) ** 2
            if found < 0 and d2 < tolerance * tolerance:
                found = k
    return found


@ti.kernel
def deepest_stopping_ratio(velocities: _A, slot: ti.i32, mass: _A, thickness: _A, stiffness: ti.f64,
                           dim: ti.template()) -> ti.i32:
    """Body i maximising |v_i| sqrt(m_i / k_n) / r_i (its penalty stopping depth over its
    half-thickness) when that ratio exceeds 1, else -1."""
    worst = -1
    for _ in range(1):
        best = 1.0
        for i in range(velocities.shape[1]):
            v2 = 0.0
            for c in ti.static(range(dim)):
                v2 += velocities[slot, i, c] ** 2
            ratio = ti.sqrt(v2 * mass[i] / stiffness) / thickness[i]
            if ratio > best:
                best = ratio
                worst = i
    return worst


@ti.kernel
def largest_travel_ratio(velocities: _A, slot0: ti.i32, slot1: ti.i32, reach: _A, dt: ti.f64,
                         dim: ti.template()) -> ti.f64:
    """max over the states in slots [slot0, slot1) and bodies i of |v_i| dt / reach_i: the
    distance a body travels in a step over the distance it may travel (m / m)."""
    worst = 0.0
    for s, i in ti.ndrange((slot0, slot1), velocities.shape[1]):
        v2 = 0.0
        for c in ti.static(range(dim)):
            v2 += velocities[s, i, c] ** 2
        ti.atomic_max(worst, ti.sqrt(v2) * dt / reach[i])
    return worst


def travel_reach(half_thickness) -> np.ndarray:
    """Per body, the distance (m) it may travel in one step and still meet every contact
    before the middle of what it hits: half of its own half-thickness plus the thinnest body's
    (two bodies closing on each other each take half; their contact is deep by the sum of
    their half-thicknesses when their middles meet)."""
    t = np.asarray(half_thickness, dtype=np.float64)
    return 0.5 * (t + t.min())


def passing_through_error(i, names, step, speed, reach, dt) -> DiffsimError:
    return DiffsimError(
        f"step {step}: body {i} ({names[i]}) moves at {speed:.4g} m/s, {speed * dt:.3g} m a step (dt {dt:g} s), "
        f"further than the {reach:.3g} m it may travel in a step and still meet a contact before the middle of "
        f"what it hits: it can pass through a body. Take dt <= {reach / speed:.3g} s, make the thin bodies "
        f"thicker, or slow the body down (contact='impulse' sweeps sphere-sphere and sphere-plane contact only)")


def coincident_pairs_np(x, names):
    """Raise ConfigError if two of the centres x (n, dim) in m coincide (within
    COINCIDENT_DISTANCE), naming the first such pair."""
    from scipy.spatial import cKDTree

    pairs = cKDTree(np.asarray(x, dtype=np.float64)).query_pairs(COINCIDENT_DISTANCE, output_type="ndarray")
    if len(pairs):
        i, j = sorted(int(v) for v in pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))][0])
        raise coincident_error(i, j, names, x[i])


def coincident_error(i, j, names, where) -> ConfigError:
    return ConfigError(f"bodies {i} ({names[i]}) and {j} ({names[j]}) start at the same centre "
                       f"{np.round(np.asarray(where, float), 9).tolist()} m: their contact has no normal and "
                       "they would stay merged; move one of them (e.g. by its radius plus the other's)")


def tunnelling_error(i, names, speed, mass, thickness, stiffness, dt) -> ConfigError:
    k_need = 4.0 * mass * speed ** 2 / thickness ** 2  # stopping depth <= thickness / 2
    return ConfigError(
        f"body {i} ({names[i]}) moves at {speed:.4g} m/s: with contact stiffness {stiffness:g} N/m it would sink "
        f"about {speed * np.sqrt(mass / stiffness):.3g} m into what it hits, more than its half-thickness "
        f"{thickness:g} m, and pass through (penalty contact). Use contact='impulse' for spheres (swept contact), "
        f"or stiffness >= {k_need:.3g} N/m with dt <= {0.2 / np.sqrt(k_need / (0.5 * mass)):.3g} s (now {dt:g} s)")


__all__ = ["COINCIDENT_DISTANCE", "coincident_error", "coincident_pairs_np", "deepest_stopping_ratio",
           "first_coincident_pair", "largest_travel_ratio", "passing_through_error", "travel_reach",
           "tunnelling_error"]
