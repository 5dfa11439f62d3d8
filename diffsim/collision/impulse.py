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

Resting contact: the impulse is at least -v_n / (w_a + w_b), which stops the approach at the end
of the step (v_n, below). A body resting on a plane gets each step's kick a dt back and stays
put; the bounce formula alone gives (1 + e) a dt / 2 there, and a resting sphere sank at
(1 - e) a dt / 2 per step. The floor acts only where it exceeds the bounce, at approach speeds
below about (1 + e) a dt / (2 e) (a few mm/s at dt = 1 ms): the restitution of bounces is
unchanged.

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

from ..contact import smooth_relu
from .logic import gt
from .vector import dot3


@ti.func
def impulse_at(v_n, v_n_start, tau, inv_ma, inv_mb, e, dt):
    """Impulse magnitude (N s) along n of an impact a time tau (s) before the end of the step:
    v_n, v_n_start: relative normal velocity of a with respect to b (m/s, < 0 approaching) at
    the end and at the start of the step (module docstring: the approach speed is taken at
    the impact's place in the step); never pulls."""
    v_impact = v_n + (0.5 - tau / dt) * (v_n - v_n_start)
    w = inv_ma + inv_mb
    # at least what stops the approach at the end of the step: for a resting contact (v_n the
    # step's kick a dt, tau = dt) the impact-speed impulse alone removes half of it, and a
    # sphere resting on a plane sank at a dt / 2
    return ti.max(ti.max(-(1.0 + e) * v_impact / w, -v_n / w), 0.0)


@ti.func
def normal_impulse(gap, v_n, v_n_start, inv_ma, inv_mb, e, dt, v_min):
    """(j, tau): impulse magnitude (N s) along n and time (s) between impact and end of step,
    for a contact whose normal n does not turn within the step (a sphere on a plane).

    gap: predicted end-of-step distance between the surfaces (m, < 0 overlapping); v_n:
    relative normal velocity of a with respect to b at the end of the step (m/s, < 0
    approaching), v_n_start: the same at the start of the step (before the step's kick of
    gravity and applied forces); v_min (m/s, > 0) bounds 1/|v_n| in the TOI so that grazing
    contacts do not divide by zero. Zero when the shapes do not overlap or already separate."""
    hit = gap < 0.0 and v_n < 0.0
    tau = ti.min(gap / ti.min(v_n, -v_min), dt)  # branch-free (no adstacks in gradient kernels)
    return ti.select(hit, impulse_at(v_n, v_n_start, tau, inv_ma, inv_mb, e, dt), 0.0), ti.select(hit, tau, 0.0)


@ti.func
def sphere_time_of_impact(p, u, radius_sum, dt):
    """Impact of two spheres moving apart by p + s u (p: centre a minus centre b at the start
    of the step, m; u: relative drift velocity, m/s) for s in [0, dt]: returns (n, tau, ok),
    the unit normal from b to a at the moment of impact (not at the overlapping end-of-step
    positions, whose normal turns with the tangential motion: taking that one made the result
    jump when an impact moved from the end of one step to the start of the next), the time tau
    (s) from impact to the end of the step, and whether they meet within the step (ok = 1:
    apart at the start and touching at some s <= dt). This is a swept test: spheres that pass
    through each other within one step (a 2000 m/s ball against another) meet here although
    their end-of-step positions do not overlap. ok = 0 also when they already overlapped at the
    start; the caller then falls back to the end-of-step normal.
    s solves |p + s u| = R, the smaller root, in the cancellation-free form C / (-B + sqrt(D))."""
    a = u.dot(u)
    b = p.dot(u)
    c = p.dot(p) - radius_sum * radius_sum
    disc = b * b - a * c
    # branch-free (no adstacks in gradient kernels); the branch not taken takes a square root
    # of 1 and divides by 1, so that its adjoint (multiplied by zero) stays finite
    meet = c > 0.0 and b < 0.0 and disc > 0.0
    s = c / ti.select(meet, -b + ti.sqrt(ti.select(meet, disc, 1.0)), 1.0)
    hit = meet and s <= dt
    tau = ti.select(hit, ti.min(ti.max(dt - s, 0.0), dt), dt)
    n = ti.select(hit, (p + s * u) / radius_sum, ti.Vector([0.0, 0.0, 0.0]))
    return n, tau, ti.select(hit, 1, 0)


@ti.func
def coulomb_friction_impulse(v_t, inv_mass_t, j_n, mu):
    """Tangential impulse (N s, a vector) that Coulomb friction applies with a normal impulse
    j_n (N s, >= 0) to a contact sliding at v_t (m/s, tangential relative velocity of the
    contact points): the impulse that stops the slip (tangential restitution zero) when it lies
    in the friction cone |j_t| <= mu j_n (sticking), else mu j_n against the slip (sliding).
    inv_mass_t: the contact's inverse effective mass along v_t (1/kg, rotation included).

    The switch between the two is a C^1 minimum of width 0.1 mu j_n (it never exceeds either
    branch and never pushes), so that a fit may cross it with a continuous gradient."""
    speed = ti.sqrt(v_t.dot(v_t) + 1e-24)
    stick = speed / inv_mass_t
    cap = mu * j_n
    width = 0.1 * cap + 1e-15
    jt = stick - smooth_relu(stick - (cap - 0.5 * width), width)
    return -jt * v_t / speed


@ti.func
def tangent_basis(n):
    """Two unit vectors (t1, t2) spanning the plane normal to the unit vector n (t2 = n x t1;
    2D: n in the x-y plane gives t1 in it and t2 = +-z)."""
    a = ti.select(gt(ti.abs(n[0]), 0.6), ti.Vector([0.0, 1.0, 0.0]), ti.Vector([1.0, 0.0, 0.0]))
    u = a - dot3(a, n) * n
    t1 = (1.0 / ti.sqrt(dot3(u, u))) * u  # u.normalized() without its nested calls
    return t1, n.cross(t1)


@ti.func
def projected_contact_impulse(rel, n, t1, t2, lam_n, j_t, target, w_n, w_t1, w_t2, mu):
    """One projected Jacobi (or Gauss-Seidel) update of a contact point's accumulated impulses,
    as in the sequential-impulse solvers of games (Catto's Box2D), branch-free: returns
    (lam_n', j_t'), the new accumulated normal impulse (N s, >= 0) and tangential impulse
    (N s, a vector in the contact plane, |j_t'| <= mu lam_n').

    rel: relative velocity of the contact points (m/s, first body minus second) under the
    impulses accumulated so far; n: unit normal from the second body to the first, t1, t2 the
    tangents (:func:`tangent_basis`); target: the normal separation speed the contact aims at
    (m/s: restitution or penetration recovery); w_n, w_t1, w_t2: inverse effective masses
    (1/kg) along n, t1, t2. The normal impulse drives rel . n to target and is clamped to push
    only (lam_n' = max(lam_n + (target - v_n) / w_n, 0)); the tangential one stops the slip
    (each tangent on its own) and is clamped to Coulomb's disk: it sticks while the trial
    impulse lies in the disk |j| <= mu lam_n', else slides with |j_t'| = mu lam_n'."""
    lam = ti.max(lam_n + (target - dot3(rel, n)) / w_n, 0.0)
    trial = j_t - (dot3(rel, t1) / w_t1) * t1 - (dot3(rel, t2) / w_t2) * t2
    size = ti.sqrt(dot3(trial, trial) + 1e-30)
    cap = mu * lam
    return lam, trial * (cap / ti.max(size, cap))


__all__ = ["coulomb_friction_impulse", "impulse_at", "normal_impulse", "projected_contact_impulse",
           "sphere_time_of_impact", "tangent_basis"]
