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

Time-stepped contact (:func:`stepped_contact_normal_force`): a semi-implicit Euler step of dt
reproduces the exact motion when the force it applies is the average of the true force over the
neighbouring steps weighted by the hat 1 - |t|/dt; the stepped law is that average of the
clamped spring-damper for a contact entered and left at constant speed (first touch and release
weighted by the part of the step spent in contact, :func:`hat_step`, :func:`hat_relu`), so that
a bounce's restitution does not depend on where in a step the contact begins or ends, plus a
calibration of the damping to the step (:func:`discrete_damping_ratio`) and a cap that keeps
the explicit damping stable (:func:`stable_damping_ratio`). Rigid contact uses it;
articulated ground contact and joint limits use the plain law, whose onset width delta is fixed.

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
def hat_step(s):
    """The semi-implicit Euler step's average of a unit step switched on at s = 0, for s in steps
    (C^1): 0 for s <= -1, (1 + s)^2 / 2 on (-1, 0), 1 - (1 - s)^2 / 2 on (0, 1), 1 for s >= 1.

    A semi-implicit Euler rollout (v' = v + dt F / m, x' = x + dt v') has the positions of the
    exact motion at every step exactly when the force F_t it applies at step t is the average
    of the true force over (t - dt, t + dt) weighted by the hat 1 - |tau| / dt (that is the
    scheme's central second difference of positions). A force that switches on at a time
    falling inside a step is therefore represented by this ramp in the signed number of steps
    s since the switch, and its unit-period copies sum to 1 (the hat's do), whatever the phase
    of the switch within a step."""
    c = ti.min(ti.max(s, -1.0), 1.0)
    return ti.select(c < 0.0, 0.5 * (1.0 + c) * (1.0 + c), 1.0 - 0.5 * (1.0 - c) * (1.0 - c))


@ti.func
def hat_relu(s):
    """The step's hat average of a unit ramp max(s, 0) (C^2), s in steps: 0 for s <= -1,
    (1 + s)^3 / 6 on (-1, 0), s + (1 - s)^3 / 6 on (0, 1), s for s >= 1; the integral of
    :func:`hat_step`."""
    c = ti.min(ti.max(s, -1.0), 1.0)
    r = ti.select(c < 0.0, (1.0 + c) * (1.0 + c) * (1.0 + c) / 6.0, c + (1.0 - c) * (1.0 - c) * (1.0 - c) / 6.0)
    return ti.select(s > 1.0, s, r)


def hat_step_np(s):
    """NumPy twin of :func:`hat_step`."""
    import numpy as np

    c = np.clip(np.asarray(s, dtype=np.float64), -1.0, 1.0)
    return np.where(c < 0.0, 0.5 * (1.0 + c) ** 2, 1.0 - 0.5 * (1.0 - c) ** 2)


def hat_relu_np(s):
    """NumPy twin of :func:`hat_relu`."""
    import numpy as np

    s = np.asarray(s, dtype=np.float64)
    c = np.clip(s, -1.0, 1.0)
    return np.where(s > 1.0, s, np.where(c < 0.0, (1.0 + c) ** 3 / 6.0, c + (1.0 - c) ** 3 / 6.0))


@ti.func
def _stepped_widths(v_n, k_n, load, delta, dt):
    """(w, w_load): the depths (m) the contact and its load term cross in one step, floored."""
    vd = v_n * dt
    lk = load / k_n
    w = ti.sqrt(vd * vd + delta * delta)
    w_load = ti.sqrt(ti.sqrt(vd * vd * vd * vd + lk * lk * lk * lk + delta * delta * delta * delta))
    return w, w_load


@ti.func
def stepped_contact_normal_force(depth, v_n, k_n, c_n, load, delta, dt):
    """The shared contact law averaged over a semi-implicit Euler step of dt (s), so that the
    stepped contact has the exact motion's restitution whatever the phase of first touch and
    of release within a step; normal force (N) for depth (m, > 0 inside), normal velocity v_n
    (m/s, > 0 separating), stiffness k_n (N/m), damping c_n (N s/m), load (N, >= 0: a constant
    force pressing the body in, gravity, which the contact carries while it lasts so that the
    spring-damper resolves the impact alone), onset depth delta (m, a floor on the widths).

    With w = sqrt((v_n dt)^2 + delta^2), the depth crossed in one step, and s = depth / w:
        approaching (v_n < 0): f = k_n w hat_relu(s) - c_n v_n hat_step(s),
        separating (v_n >= 0): f = k_n w hat_relu((k_n depth - c_n v_n) / (k_n w)),
    plus load * hat_step(depth / w_load), w_load = ((v_n dt)^4 + (load/k_n)^4 + delta^4)^(1/4)
    (no stiffer than k_n at rest). Each is the hat average (:func:`hat_step`) of the
    continuous clamped spring-damper k_n depth - c_n v_n over the step, for a contact entered
    and left at constant speed: the spring and the damping switch on at first touch and the
    force switches off where it would pull. Deep inside it is k_n depth - c_n v_n exactly. It
    acts from depth -w (the step before first touch), is C^1 in depth and v_n everywhere (the
    two branches meet with equal value and slopes at v_n = 0) and zero below depth
    -:func:`stepped_contact_reach`. Time stepping leaves an error of order omega dt zeta in
    the restitution (the damping reads the velocity half a step late), which
    :func:`discrete_damping_ratio` calibrates out. Measured on a 1 kg ball at the default
    k_n = 1e4 N/m, dt = 1e-3 s: the restitution varies by <= 0.04 % with the phase of touch
    (0.15-0.3 % with the earlier depth-gated law), benchmarks/fit_discrete_damping.py."""
    w, w_load = _stepped_widths(v_n, k_n, load, delta, dt)
    s = depth / w
    approaching = k_n * w * hat_relu(s) - c_n * v_n * hat_step(s)
    separating = k_n * w * hat_relu((k_n * depth - c_n * v_n) / (k_n * w))
    return ti.select(v_n < 0.0, approaching, separating) + load * hat_step(depth / w_load)


@ti.func
def stepped_contact_reach(v_n, k_n, load, delta, dt):
    """Largest separation (m) at which :func:`stepped_contact_normal_force` is nonzero: a
    contact whose depth is below minus this needs no force evaluation."""
    w, w_load = _stepped_widths(v_n, k_n, load, delta, dt)
    return ti.max(w, w_load)


def stepped_contact_normal_force_np(depth, v_n, k_n, c_n, load, delta, dt):
    """NumPy twin of :func:`stepped_contact_normal_force` (used to fit
    :func:`discrete_damping_ratio`, benchmarks/fit_discrete_damping.py)."""
    import numpy as np

    depth, v_n = np.asarray(depth, dtype=np.float64), np.asarray(v_n, dtype=np.float64)
    vd, lk = v_n * dt, np.asarray(load, dtype=np.float64) / k_n
    w = np.sqrt(vd * vd + delta * delta)
    w_load = (vd ** 4 + lk ** 4 + delta ** 4) ** 0.25
    s = depth / w
    approaching = k_n * w * hat_relu_np(s) - c_n * v_n * hat_step_np(s)
    separating = k_n * w * hat_relu_np((k_n * depth - c_n * v_n) / (k_n * w))
    return np.where(v_n < 0.0, approaching, separating) + load * hat_step_np(depth / w_load)


# discrete_damping_ratio: rows p = 1..3 (powers of omega dt), columns q = 0..2 (powers of zeta),
# fitted by benchmarks/fit_discrete_damping.py
_DISCRETE_DAMPING = ((-0.0008383992654143768, -0.4988619476004259, 0.002911459577092018),
                     (0.0567198071565988, 0.0832627847725118, 0.09234025518035024),
                     (-0.1318412827514598, 0.12223071090199827, 0.01964538254653308))


@ti.func
def discrete_damping_ratio(zeta, omega_dt):
    """Damping ratio to give a contact stepped with semi-implicit Euler through
    :func:`stepped_contact_normal_force` (time step dt, contact frequency omega =
    sqrt(k_n/m_eff)) the restitution that ``zeta`` gives the continuous clamped spring-damper:
    zeta_dt = zeta (1 + sum_{p=1..3, q=0..2} C_pq (omega dt)^p zeta^q).

    The stepped contact loses more energy than the continuous one, mainly because its damping
    reads the velocity of the step before (half a step late): to first order C_11 = -1/2, a
    restitution error of 0.1-4 % of e at omega dt = 0.1, which no fixed stiffness removes.
    The coefficients C were fitted by benchmarks/fit_discrete_damping.py to the phase-averaged
    restitution of the stepped contact for omega dt in [0.02, 0.4] and zeta in [0.1, 1]
    (e >= 0.135); the fit leaves <= 5.4e-4 of zeta there (<= 0.05 % in e). Arguments are
    clamped to that range (omega dt <= 0.4, zeta <= 1)."""
    x = ti.min(omega_dt, 0.4)
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

    x = np.minimum(np.asarray(omega_dt, dtype=np.float64), 0.4)
    zeta = np.asarray(zeta, dtype=np.float64)
    z = np.minimum(zeta, 1.0)
    corr = sum(_DISCRETE_DAMPING[a][b] * x ** (a + 1) * z ** b for a in range(3) for b in range(3))
    return zeta * (1.0 + corr)


@ti.func
def stable_damping_ratio(zeta, omega_dt, points):
    """``zeta`` softly capped so that the explicit damping of ``points`` contacts pressing one
    body in parallel (a box face's corners: 4, 2 in 2D) stays stable in a semi-implicit Euler
    step: the damping per step, 2 zeta omega dt points, is kept below 1.5 (the step diverges
    beyond 2 - (omega dt)^2 points / 2). zeta_cap = 0.75 / (omega dt points); the cap is
    zeta / (1 + (zeta / zeta_cap)^16)^(1/16), C^infinity, within 3e-6 of zeta up to 0.53
    zeta_cap (the whole calibrated range zeta <= 1, omega dt <= 0.4, of one point) and never
    above zeta_cap. A low restitution (e -> 0 asks for zeta -> infinity) is then met as the
    lowest a stepped contact gives, e ~ 0.12-0.16 for omega dt 0.05-0.4 (the calibrated range
    ends at e = 0.135), instead of a contact that throws the body off (uncapped, a box arriving
    at 1 m/s on its four corners at omega dt = 0.1 left at 5.3 m/s)."""
    cap = 0.75 / (points * omega_dt)
    r = zeta / cap
    r2 = r * r
    r4 = r2 * r2
    r8 = r4 * r4
    return zeta / ti.sqrt(ti.sqrt(ti.sqrt(ti.sqrt(1.0 + r8 * r8))))


def stable_damping_ratio_np(zeta, omega_dt, points):
    """NumPy twin of :func:`stable_damping_ratio`."""
    import numpy as np

    zeta = np.asarray(zeta, dtype=np.float64)
    return zeta / (1.0 + (zeta * points * np.asarray(omega_dt) / 0.75) ** 16) ** (1.0 / 16.0)


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
def coulomb_slip_factor(vx, vy, f_n, mu, v_eps):
    """The scalar s of :func:`smoothed_coulomb_friction` for a tangential velocity (vx, vy) given
    as two scalars: the friction force is (s vx, s vy). For step code written on scalars: a
    ti.Vector built there from local scalars made Taichi 1.7.4's lean adjoint read garbage (the
    robots' small step kernel)."""
    return -mu * f_n / ti.sqrt(vx * vx + vy * vy + v_eps * v_eps)


@ti.func
def safe_normalized(d, eps):
    """d / |d| with a zero-length guard: returns (unit vector, length); a zero vector gives a
    zero direction and zero gradient instead of NaN."""
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
def damping_ratio_and_slope(e):
    """(zeta, dzeta/de) of a restitution e: zeta from
    :func:`damping_ratio_from_restitution`, its slope from the relation it
    inverts, G = -log(max(e, 1e-3)) = 2 zeta h(zeta): dzeta/de = -1 / (e (2 h + 2 zeta h'))
    (0 where e is clipped), the derivative of the converged Newton iteration."""
    zeta = damping_ratio_from_restitution(e)
    h, dh = _acos_ratio(zeta)
    return zeta, ti.select(e > 1e-3, -1.0 / (ti.max(e, 1e-3) * (2.0 * h + 2.0 * zeta * dh)), 0.0)


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
