"""Impulse-based contact with restitution and time-of-impact (TOI) correction.

DiffTaichi's billiards idea (Hu et al., ICLR 2020): a collision found at the end of a step is
resolved as if it had happened at the moment of impact inside the step, so that positions
(and hence the loss) depend smoothly on when the collision happened, and gradients carry
d(collision time)/d(inputs). With predicted end-of-step gap g < 0 (m) and normal approach
speed v_n < 0 (m/s), contact began tau = g / v_n before the end of the step (clamped to
[0, dt]); the bodies move with their old velocity up to the impact and with the new one
after it, which adds tau * dv to the end-of-step position.

Normal impulse (frictionless, restitution e, inverse masses w_a, w_b in 1/kg):

    j = -(1 + e) v_n / (w_a + w_b),  dv_a = +j w_a n,  dv_b = -j w_b n

Equal and opposite impulses conserve linear momentum exactly; the outgoing normal velocity is
-e times the incoming one for an isolated collision.

Constant accelerations within the step (gravity, applied forces): the step's velocity goes
from v (start) to v* (end, after the step's kick a dt), and the impulse uses the approach
speed v_n* + (1/2 - tau/dt)(v_n* - v_n), the drift speed shifted by the kick the body gets
between the impact and the middle of the step. With v_n* alone the bounce carried an error
of (1 + e) tau a_n that jumps by (1 + e) a_n dt whenever the impact moves from one step to
the next (apex heights against restitution were jagged by 1-4 mm). With the shifted speed an
impact at the very end of a step and one at the very start of the next give the same state,
and the semi-implicit Euler flight's invariant v^2 - a dt v - 2 a z (apex height) after the
bounce is e^2 times the one before, to O((a dt)^2): the apex ratio is e^2 at every speed.
"""

import taichi as ti


@ti.func
def normal_impulse(gap, v_n, v_n_start, inv_ma, inv_mb, e, dt, v_min):
    """(j, tau): impulse magnitude (N s) along n and time (s) between impact and end of step.

    gap: predicted end-of-step distance between the surfaces (m, < 0 overlapping); v_n:
    relative normal velocity of a with respect to b at the end of the step (m/s, < 0
    approaching), v_n_start: the same at the start of the step (before the step's kick of
    gravity and applied forces); v_min (m/s, > 0) bounds 1/|v_n| in the TOI so that grazing
    contacts do not divide by zero. Zero when the shapes do not overlap or already separate."""
    j = 0.0
    tau = 0.0
    if gap < 0.0 and v_n < 0.0:
        tau = ti.min(gap / ti.min(v_n, -v_min), dt)
        v_impact = v_n + (0.5 - tau / dt) * (v_n - v_n_start)
        j = ti.max(-(1.0 + e) * v_impact / (inv_ma + inv_mb), 0.0)
    return j, tau


__all__ = ["normal_impulse"]
