"""Collision detection: a grid broad phase (outside AD) and narrow-phase contact geometry.

- :mod:`.broadphase`: ``GridBroadPhase`` (uniform-grid spatial hash, deterministic pair lists,
  overflow reported), ``brute_force_pairs`` (the O(n^2) reference), ``all_pairs``.
- :mod:`.narrowphase`: ``ti.func``s returning (normal, depth, point) for sphere-sphere,
  sphere-plane, sphere-box, box corner-plane, capsule-plane (through its end spheres),
  capsule-sphere and capsule-capsule.
- :mod:`.impulse`: the impulse contact model with restitution and time-of-impact correction.
  The penalty model lives in :mod:`diffsim.contact`, shared with the other simulators.
"""

from .broadphase import GridBroadPhase, all_pairs, brute_force_pairs

__all__ = ["GridBroadPhase", "all_pairs", "brute_force_pairs"]
