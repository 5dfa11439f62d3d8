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
"""

import taichi as ti


@ti.func
def normal_impulse(gap, v_n, inv_ma, inv_mb, e, dt, v_min):
    """(j, tau): impulse magnitude (N s) along n and time (s) between impact and end of step.

    gap: predicted end-of-step distance between the surfaces (m, < 0 overlapping); v_n:
    relative normal velocity of a with respect to b (m/s, < 0 approaching); v_min (m/s, > 0)
    bounds 1/|v_n| in the TOI so that grazing contacts do not divide by zero. Zero when the
    shapes do not overlap or already separate."""
    j = 0.0
    tau = 0.0
    if gap < 0.0 and v_n < 0.0:
        j = -(1.0 + e) * v_n / (inv_ma + inv_mb)
        tau = ti.min(gap / ti.min(v_n, -v_min), dt)
    return j, tau


__all__ = ["normal_impulse"]
