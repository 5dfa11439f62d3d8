"""The shared contact law: one normal force for rigid contact, robot feet and joint limits,
and smoothed Coulomb friction.

Every simulator with contact (rigid bodies, robot feet, soft joint limits) calls these
``ti.func``s, so that one law, one set of parameters and one set of gradient checks serve them
all. Units: SI (for a joint limit read metres as radians and newtons as newton metres).

Normal force (:func:`contact_normal_force`), a spring-damper that never pulls, made C^1 over an
onset depth delta:
    f_n = relu_delta(k_n * depth - c_n * v_n * s(depth / delta)),
    relu_delta(x) = 0 (x <= 0), x^2 / (2 k_n delta) (0 < x < k_n delta), x - k_n delta / 2,
    s(r) = 0 (r <= 0), 3 r^2 - 2 r^3 (0 < r < 1), 1 (r >= 1),
with depth > 0 when penetrating and v_n > 0 when separating. The force and its first
derivatives in depth and v_n are continuous everywhere: at first touch (the damping fades in
with s, the spring with relu_delta) and where the damping would pull (relu_delta again). A
time-stepped rollout whose inputs move a contact or limit onset from one step to the next then
has a continuous loss with a continuous gradient, which a plain max(0, k d - c v) does not give
(its jump of -c v at touch makes losses step-like). As delta -> 0 it is the clamped linear
spring-damper whose restitution :func:`damping_ratio_from_restitution` inverts exactly.

Friction (Coulomb's law regularised at slip speed v_eps so that it is differentiable):
    f_t = -mu * f_n * v_t / sqrt(|v_t|^2 + v_eps^2)
"""

import taichi as ti


@ti.func
def smooth_relu(x, w):
    """C^1 ramp of width w > 0: 0 for x <= 0, x^2 / (2 w) below w, x - w / 2 above."""
    r = ti.max(x, 0.0)
    return ti.select(r < w, 0.5 * r * r / w, r - 0.5 * w)


@ti.func
def smoothstep(r):
    """C^1 step: 0 for r <= 0, 3 r^2 - 2 r^3 on (0, 1), 1 for r >= 1."""
    c = ti.min(ti.max(r, 0.0), 1.0)
    return c * c * (3.0 - 2.0 * c)


@ti.func
def contact_normal_force(depth, v_n, k_n, c_n, delta):
    """The shared contact law (module docstring): normal force (N) for penetration depth (m,
    > 0 inside), normal velocity v_n (m/s, > 0 separating), stiffness k_n (N/m), damping c_n
    (N s/m) and onset depth delta (m, > 0); C^1 in depth and v_n, zero when apart."""
    f = k_n * depth - c_n * v_n * smoothstep(depth / delta)
    return smooth_relu(f, k_n * delta)


def smoothstep_np(r):
    """NumPy twin of :func:`smoothstep`."""
    import numpy as np

    c = np.clip(np.asarray(r, dtype=np.float64), 0.0, 1.0)
    return c * c * (3.0 - 2.0 * c)


def contact_normal_force_np(depth, v_n, k_n, c_n, delta):
    """NumPy twin of :func:`contact_normal_force`, for reference oracles and tests."""
    import numpy as np

    depth, v_n = np.asarray(depth, dtype=np.float64), np.asarray(v_n, dtype=np.float64)
    f = np.maximum(k_n * depth - c_n * v_n * smoothstep_np(depth / delta), 0.0)
    w = k_n * delta
    return np.where(f < w, 0.5 * f * f / w, f - 0.5 * w)


@ti.func
def onset_ramp(u):
    """C^1 ramp over two time steps, in u = depth / (|v_n| dt) (steps since first touch at a
    constant approach speed): 0 for u <= 0, u^2/2 on (0, 1), 1 - (2 - u)^2/2 on (1, 2), 1 above.

    Its slope is the hat function on [0, 2], whose unit-period copies sum to 1, so that
    sum_k ramp(phi + k) = phi + const for every phase phi in (0, 1]: a damping term faded in
    with this ramp puts into the time-stepped contact an impulse that grows exactly with the
    time since first touch, whatever fraction of a step the body was inside when the step
    began. The restitution then does not depend on when in a step a contact begins (measured:
    spread <= 0.2 % over the phase at omega dt = 0.1), which a smoothstep over one step or a
    fixed onset depth does not give (spread 3-15 %)."""
    c = ti.min(ti.max(u, 0.0), 2.0)
    return ti.select(c < 1.0, 0.5 * c * c, 1.0 - 0.5 * (2.0 - c) * (2.0 - c))


# discrete_damping_ratio: rows a = 1..3 (powers of omega dt), columns b = 0..2 (powers of zeta)
_DISCRETE_DAMPING = ((0.6216670376660354, 0.2841345336680104, 0.0982537019303475),
                     (0.4025621733150117, 0.5954477798708514, -0.8545470094622931),
                     (0.2129507848355366, -0.5252167884342699, 3.2776764422347298))


@ti.func
def discrete_damping_ratio(zeta, omega_dt):
    """Damping ratio to give a contact stepped with semi-implicit Euler (time step dt, contact
    frequency omega = sqrt(k_n/m_eff), damping faded in by :func:`onset_ramp`) the restitution
    that ``zeta`` gives the continuous clamped spring-damper:
    zeta_dt = zeta (1 + sum_{a=1..3, b=0..2} C_ab (omega dt)^a zeta^b).

    The time-stepped contact loses less energy than the continuous one (it is shorter by the
    integrator's frequency error and lacks the damping of the steps before the ramp), by
    3-10 % of e at omega dt = 0.1: a first-order error in dt that no fixed stiffness removes.
    The coefficients C were fitted to the measured restitution of the stepped contact (phase
    averaged) for omega dt in [0.01, 0.3] and zeta in [0, 0.8] (e >= 0.2); the fit leaves
    <= 0.11 % in e there. Arguments are clamped to that range (omega dt <= 0.3, zeta <= 1)."""
    x = ti.min(omega_dt, 0.3)
    z = ti.min(zeta, 1.0)
    corr = 0.0
    xa = 1.0
    for a in ti.static(range(3)):
        xa = xa * x
        zb = 1.0
        for b in ti.static(range(3)):
            corr += ti.static(_DISCRETE_DAMPING[a][b]) * xa * zb
            zb = zb * z
    return zeta * (1.0 + corr)


def discrete_damping_ratio_np(zeta, omega_dt):
    """NumPy twin of :func:`discrete_damping_ratio`."""
    import numpy as np

    x = np.minimum(np.asarray(omega_dt, dtype=np.float64), 0.3)
    zeta = np.asarray(zeta, dtype=np.float64)
    z = np.minimum(zeta, 1.0)
    corr = sum(_DISCRETE_DAMPING[a][b] * x ** (a + 1) * z ** b for a in range(3) for b in range(3))
    return zeta * (1.0 + corr)


@ti.func
def limit_force(q, qd, lower, upper, k, c, delta):
    """Soft limit of a coordinate q (m or rad) with rate qd to [lower, upper] through the shared
    contact law: the lower stop pushes up, the upper stop pushes down (N or N m); zero inside."""
    return (contact_normal_force(lower - q, qd, k, c, delta)
            - contact_normal_force(q - upper, -qd, k, c, delta))


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


@ti.func
def _acos_ratio(z):
    """h(z) = acos(z)/sqrt(1-z^2) (z < 1), acosh(z)/sqrt(z^2-1) (z > 1), and dh/dz; a series
    around z = 1, where both forms are 0/0, keeps it smooth."""
    x = 1.0 - z
    h = 1.0 + x / 3.0 + 2.0 * x * x / 15.0
    dh = -(1.0 / 3.0 + 4.0 * x / 15.0)
    if x > 1e-3:
        h = ti.acos(z) / ti.sqrt(1.0 - z * z)
        dh = (z * h - 1.0) / (1.0 - z * z)
    elif x < -1e-3:
        h = ti.log(z + ti.sqrt(z * z - 1.0)) / ti.sqrt(z * z - 1.0)
        dh = (z * h - 1.0) / (1.0 - z * z)
    return h, dh


@ti.func
def damping_ratio_from_restitution(e):
    """Damping ratio zeta of the *clamped* spring-damper (:func:`contact_normal_force` as delta -> 0) whose
    coefficient of restitution is e (clipped below at 1e-3; e = 1 gives zeta = 0 with a
    nonzero derivative dzeta/de = -1/pi, so that a fit at e = 1 keeps its gradient).

    With the force never pulling, a linear contact k x + c x' (c = 2 zeta sqrt(k m)) ends when
    the force reaches zero, and the exit/entry speed ratio is exactly
    ``e = exp(-2 zeta h(zeta))``, h(z) = acos(z)/sqrt(1 - z^2) (acosh form for z > 1): e = 1 at
    zeta = 0, e^-2 at critical damping (Schwager & Poeschel 2007). Inverted here by six
    Newton steps, which converge to round-off for e in [1e-3, 1] and differentiate correctly
    (no clamp at e = 1, where G = 0 and zeta = 0 exactly: the derivative stays that of the
    smooth map, and e slightly above 1 gives a slightly negative zeta).
    """
    G = -ti.log(ti.max(e, 1e-3))
    z = G / (ti.math.pi - (ti.math.pi - 2.0) * ti.min(0.5 * G, 1.0))
    for _ in ti.static(range(6)):
        h, dh = _acos_ratio(z)
        z = z - (2.0 * z * h - G) / (2.0 * h + 2.0 * z * dh)
    return z


@ti.func
def damping_from_restitution(e, k_n, m_eff):
    """Damping c_n (N s/m) that gives the clamped penalty contact of stiffness k_n (N/m) between
    bodies of effective mass m_eff (kg) the restitution e (exact in continuous time; time
    stepping adds an error of order sqrt(k_n/m_eff) dt)."""
    return 2.0 * damping_ratio_from_restitution(e) * ti.sqrt(k_n * m_eff)


def damping_ratio_from_restitution_np(e):
    """NumPy twin of :func:`damping_ratio_from_restitution` (same Newton iteration), for
    constants such as a static plane's material."""
    import numpy as np

    e = np.maximum(np.asarray(e, dtype=np.float64), 1e-3)
    G = -np.log(e)
    z = G / (np.pi - (np.pi - 2.0) * np.minimum(0.5 * G, 1.0))
    for _ in range(6):
        x = 1.0 - z
        with np.errstate(invalid="ignore", divide="ignore"):
            h = np.where(x > 1e-3, np.arccos(np.minimum(z, 1.0)) / np.sqrt(np.maximum(1.0 - z * z, 1e-300)),
                         np.where(x < -1e-3, np.arccosh(np.maximum(z, 1.0)) / np.sqrt(np.maximum(z * z - 1.0, 1e-300)),
                                  1.0 + x / 3.0 + 2.0 * x * x / 15.0))
            dh = np.where(np.abs(x) > 1e-3, (z * h - 1.0) / np.where(np.abs(x) > 1e-3, 1.0 - z * z, 1.0),
                          -(1.0 / 3.0 + 4.0 * x / 15.0))
        z = z - (2.0 * z * h - G) / (2.0 * h + 2.0 * z * dh)
    return z


def restitution_from_damping_ratio_np(zeta):
    """Exact restitution exp(-2 zeta h(zeta)) of the clamped spring-damper (NumPy)."""
    import numpy as np

    z = np.asarray(zeta, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        h = np.where(z < 1.0 - 1e-9, np.arccos(np.minimum(z, 1.0)) / np.sqrt(np.maximum(1.0 - z * z, 1e-300)),
                     np.where(z > 1.0 + 1e-9, np.arccosh(np.maximum(z, 1.0)) / np.sqrt(np.maximum(z * z - 1.0, 1e-300)),
                              1.0))
    return np.exp(-2.0 * z * h)
