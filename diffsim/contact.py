"""The shared contact model: penalty spring-damper normal force and smoothed Coulomb friction.

Every simulator with contact (rigid bodies, robot feet) calls these ``ti.func``s, so that one
model, one set of parameters and one set of gradient checks serve them all. Units: SI.

Normal force (Hunt-Crossley-like spring-damper, never pulling):
    f_n = max(0, k_n * depth - c_n * v_n),   depth > 0 when penetrating, v_n > 0 when separating
Friction (Coulomb's law regularised at slip speed v_eps so that it is differentiable):
    f_t = -mu * f_n * v_t / sqrt(|v_t|^2 + v_eps^2)
"""

import taichi as ti


@ti.func
def penalty_normal_force(depth, v_n, k_n, c_n):
    """Normal contact force magnitude (N) for penetration depth (m, > 0 inside) and normal
    velocity v_n (m/s, > 0 separating); zero when not touching or when it would pull."""
    f = 0.0
    if depth > 0.0:
        f = ti.max(k_n * depth - c_n * v_n, 0.0)
    return f


@ti.func
def smoothed_coulomb_friction(v_t, f_n, mu, v_eps):
    """Friction force vector (N) opposing the tangential velocity v_t (m/s) with magnitude
    mu * f_n at slip speeds well above v_eps (m/s); finite and smooth at v_t = 0."""
    return -mu * f_n * v_t / ti.sqrt(v_t.dot(v_t) + v_eps * v_eps)


@ti.func
def safe_normalized(d, eps):
    """d / |d| with a zero-length guard: returns (unit vector, length); a zero vector gives a
    zero direction and zero gradient instead of NaN (TAICHI.md, section 5)."""
    r2 = d.dot(d)
    r = ti.sqrt(r2 + eps * eps)
    return d / r, r
