"""The shared contact law of diffsim.contact: zero apart, C^1 at onset and at the no-pull
clamp, the clamped spring-damper in the bulk, and reverse mode equal to central differences."""

import numpy as np
import pytest
import taichi as ti

from diffsim import contact

K_N, C_N, DELTA = 1.0e4, 30.0, 1.0e-3


@ti.kernel
def _law(depth: ti.types.ndarray(), v_n: ti.types.ndarray(), out: ti.types.ndarray()):
    for i in range(depth.shape[0]):
        out[i] = contact.contact_normal_force(depth[i], v_n[i], K_N, C_N, DELTA)


@ti.kernel
def _limit(q: ti.types.ndarray(), qd: ti.types.ndarray(), out: ti.types.ndarray()):
    for i in range(q.shape[0]):
        out[i] = contact.limit_force(q[i], qd[i], -0.5, 0.5, K_N, C_N, DELTA)


def law(fn, a, b):
    a = np.ascontiguousarray(a, float)
    b = np.broadcast_to(np.asarray(b, float), a.shape).copy()
    out = np.zeros_like(a)
    fn(a, b, out)
    return out


def reference(depth, v_n):
    """The documented formula, in NumPy."""
    r = np.clip(depth / DELTA, 0.0, 1.0)
    f = K_N * depth - C_N * v_n * r * r * (3 - 2 * r)
    w = K_N * DELTA
    x = np.maximum(f, 0.0)
    return np.where(x < w, 0.5 * x * x / w, x - 0.5 * w)


def test_matches_formula_and_is_zero_apart():
    d = np.linspace(-2e-3, 5e-3, 701)
    for v in (-0.5, 0.0, 0.2):
        f = law(_law, d, v)
        np.testing.assert_allclose(f, reference(d, v), rtol=1e-12, atol=1e-12)
        assert np.all(f[d <= 0] == 0.0) and np.all(f >= 0.0)
    # deep inside and approaching: the spring-damper k d - c v shifted by k delta / 2
    assert law(_law, [4e-3], [-0.5])[0] == pytest.approx(K_N * 4e-3 + C_N * 0.5 - 0.5 * K_N * DELTA, rel=1e-12)


@pytest.mark.parametrize("v", [-0.5, 0.0, 0.3, 2.0])
def test_force_and_slope_continuous_everywhere(v):
    """A fine scan across onset and the no-pull clamp: no jump in f, none in df/ddepth."""
    d = np.linspace(-1e-3, 4e-3, 50001)
    f = law(_law, d, v)
    h = d[1] - d[0]
    slope = np.diff(f) / h
    assert np.max(np.abs(np.diff(f))) < 2.0 * K_N * h + 3 * C_N * abs(v) / DELTA * h
    # slope changes by at most its curvature bound per sample: no kink
    curv = 1.0 / DELTA + 6.0 * C_N * abs(v) / (K_N * DELTA**2)
    assert np.max(np.abs(np.diff(slope))) < 4.0 * K_N * curv * h


def test_reverse_mode_equals_central_differences():
    rng = np.random.default_rng(0)
    depth = np.concatenate([rng.uniform(-5e-4, 3e-3, 64), [1e-4, 9e-4, 1.1e-3]])
    v_n = np.concatenate([rng.uniform(-1.0, 1.0, 64), [0.2, -0.1, 0.4]])
    d_nd = ti.ndarray(ti.f64, len(depth), needs_grad=True)
    v_nd = ti.ndarray(ti.f64, len(depth), needs_grad=True)
    out = ti.ndarray(ti.f64, len(depth), needs_grad=True)
    d_nd.from_numpy(depth)
    v_nd.from_numpy(v_n)
    _law(d_nd, v_nd, out)
    d_nd.grad.fill(0.0)
    v_nd.grad.fill(0.0)
    out.grad.fill(1.0)
    _law.grad(d_nd, v_nd, out)
    h = 1e-9
    fd_d = (law(_law, depth + h, v_n) - law(_law, depth - h, v_n)) / (2 * h)
    fd_v = (law(_law, depth, v_n + h) - law(_law, depth, v_n - h)) / (2 * h)
    scale = K_N
    np.testing.assert_allclose(d_nd.grad.to_numpy(), fd_d, rtol=1e-6, atol=1e-6 * scale)
    np.testing.assert_allclose(v_nd.grad.to_numpy(), fd_v, rtol=1e-6, atol=1e-6 * C_N)


def test_limit_pushes_back_from_both_stops_and_is_zero_inside():
    q = np.array([-0.6, -0.5, 0.0, 0.5, 0.6])
    tau = law(_limit, q, 0.0)
    assert tau[0] > 0 and tau[4] < 0
    assert tau[1] == tau[2] == tau[3] == 0.0
    assert tau[0] == pytest.approx(-tau[4], rel=1e-12)


@ti.kernel
def _helpers(e: ti.types.ndarray(), x: ti.types.ndarray(), u: ti.types.ndarray(), zeta: ti.types.ndarray(),
             zeta_dt: ti.types.ndarray(), ramp: ti.types.ndarray()):
    for i in range(e.shape[0]):
        zeta[i] = contact.damping_ratio_from_restitution(e[i])
        zeta_dt[i] = contact.discrete_damping_ratio(zeta[i], x[i])
        ramp[i] = contact.hat_step(u[i])


def _run_helpers(e, x, u, grad=False):
    arrs = [ti.ndarray(ti.f64, len(e), needs_grad=True) for _ in range(6)]
    for a, v in zip(arrs[:3], (e, x, u)):
        a.from_numpy(np.asarray(v, float))
    _helpers(*arrs)
    if grad:
        for a in arrs:
            a.grad.fill(0.0)
        arrs[4].grad.fill(1.0)
        arrs[5].grad.fill(1.0)
        _helpers.grad(*arrs)
    return arrs


def test_hat_ramps_make_onset_impulses_exact_for_every_phase():
    """A switch at phase phi of a step (s_k = phi - 1 + k steps since it at step k): the stepped
    impulses of a unit step and of a unit ramp, sum_k hat_step(s_k) and sum_k hat_relu(s_k),
    differ from those of a switch on the step grid by exactly the continuous impulse of the
    shift (phi, and the trapezoid sum of the ramp), whatever phi; both ramps are C^1 and the
    kernel equals its NumPy twin."""
    phi = np.linspace(0.01, 1.0, 50)
    s = (phi[:, None] - 1.0 + np.arange(5)[None, :])
    q = _run_helpers(np.full(s.size, 0.5), np.full(s.size, 0.1), s.ravel())[5].to_numpy().reshape(s.shape)
    np.testing.assert_allclose(q, contact.hat_step_np(s), rtol=0, atol=1e-15)
    np.testing.assert_allclose(q.sum(axis=1) - phi, 3.5, atol=1e-13)
    end = s[:, -1]
    np.testing.assert_allclose(contact.hat_relu_np(s).sum(axis=1) - 0.5 * (end * end + end), 1.0 / 6.0, atol=1e-12)
    g = np.linspace(-1.5, 1.5, 3001)
    rg = _run_helpers(np.full(g.size, 0.5), np.full(g.size, 0.1), g)[5].to_numpy()
    slope = np.diff(rg) / np.diff(g)
    assert rg[0] == 0.0 and rg[-1] == 1.0 and np.max(np.abs(np.diff(slope))) < 2e-3  # no kink
    r = contact.hat_relu_np(g)
    np.testing.assert_allclose(np.diff(r) / np.diff(g), 0.5 * (rg[1:] + rg[:-1]), atol=1e-6)  # hat_relu' = hat_step
    assert r[0] == 0.0 and r[-1] == g[-1]


def test_damping_maps_match_numpy_and_keep_their_gradient_at_e_one():
    e = np.array([1.0, 0.99, 0.8, 0.5, 0.2, 0.1])
    x = np.array([0.1, 0.05, 0.2, 0.1, 0.3, 0.5])
    arrs = _run_helpers(e, x, np.zeros(6), grad=True)
    np.testing.assert_allclose(arrs[3].to_numpy(), contact.damping_ratio_from_restitution_np(e), rtol=1e-12,
                               atol=1e-15)
    np.testing.assert_allclose(arrs[4].to_numpy(), contact.discrete_damping_ratio_np(
        contact.damping_ratio_from_restitution_np(e), x), rtol=1e-12, atol=1e-15)
    assert arrs[3].to_numpy()[0] == 0.0
    de = arrs[0].grad.to_numpy()  # d zeta_dt / d e
    h = 1e-7
    fd = (contact.discrete_damping_ratio_np(contact.damping_ratio_from_restitution_np(e + h), x)
          - contact.discrete_damping_ratio_np(contact.damping_ratio_from_restitution_np(e - h), x)) / (2 * h)
    fd[0] = (contact.discrete_damping_ratio_np(contact.damping_ratio_from_restitution_np(1.0), x[0])
             - contact.discrete_damping_ratio_np(contact.damping_ratio_from_restitution_np(1.0 - h), x[0])) / h
    np.testing.assert_allclose(de, fd, rtol=1e-5)
    assert de[0] < -0.3  # at e = 1: d zeta/de = -1/pi (times the discrete factor), not 0


@ti.kernel
def _ratio_and_slope(e: ti.types.ndarray(), zeta: ti.types.ndarray(), slope: ti.types.ndarray()):
    for i in range(e.shape[0]):
        zeta[i], slope[i] = contact.damping_ratio_and_slope(e[i])


def test_damping_ratio_slope_equals_central_differences_of_the_numpy_map():
    """The slope a rigid scene's hand-written adjoint uses (dzeta/de from the relation the
    Newton iteration inverts) against central differences of the NumPy twin, across the
    underdamped, critical (e = e^-2) and overdamped ranges; zero where e is clipped."""
    e = np.array([1.0, 0.999, 0.9, 0.6, 0.3, np.exp(-2.0), 0.1, 0.02, 0.002, 5e-4])
    zeta, slope = np.zeros_like(e), np.zeros_like(e)
    _ratio_and_slope(e, zeta, slope)
    np.testing.assert_allclose(zeta, contact.damping_ratio_from_restitution_np(e), rtol=1e-12, atol=1e-15)
    h = 1e-7 * e
    fd = (contact.damping_ratio_from_restitution_np(e + h) - contact.damping_ratio_from_restitution_np(e - h)) / (2 * h)
    np.testing.assert_allclose(slope[:-1], fd[:-1], rtol=2e-6)
    assert slope[-1] == 0.0 and slope[0] == pytest.approx(-1.0 / np.pi, rel=1e-9)


# ------------------------------------------------------------------ the law averaged over a step

DT_S, DELTA_S, LOAD = 1.0e-3, 1.0e-5, 9.81  # the rigid defaults: dt, onset depth; 1 kg under gravity


@ti.kernel
def _stepped(depth: ti.types.ndarray(), v_n: ti.types.ndarray(), c_n: ti.types.ndarray(), load: ti.types.ndarray(),
             force: ti.types.ndarray(), reach: ti.types.ndarray()):
    for i in range(depth.shape[0]):
        force[i] = contact.stepped_contact_normal_force(depth[i], v_n[i], K_N, c_n[i], load[i], DELTA_S, DT_S)
        reach[i] = contact.stepped_contact_reach(v_n[i], K_N, load[i], DELTA_S, DT_S)


def stepped(depth, v_n, c_n=C_N, load=0.0):
    depth = np.ascontiguousarray(depth, float)
    args = [np.broadcast_to(np.asarray(a, float), depth.shape).copy() for a in (v_n, c_n, load)]
    force, reach = np.zeros_like(depth), np.zeros_like(depth)
    _stepped(depth, *args, force, reach)
    return force, reach


def test_stepped_law_matches_numpy_is_the_spring_damper_inside_and_zero_beyond_reach():
    rng = np.random.default_rng(1)
    d = rng.uniform(-4e-3, 6e-3, 400)
    v = rng.uniform(-3.0, 3.0, 400)
    load = np.where(np.arange(400) % 2 == 0, 0.0, LOAD)
    f, reach = stepped(d, v, C_N, load)
    np.testing.assert_allclose(f, contact.stepped_contact_normal_force_np(d, v, K_N, C_N, load, DELTA_S, DT_S),
                               rtol=1e-12, atol=1e-9)
    assert np.all(f[d <= -reach] == 0.0) and np.all(f >= 0.0)
    inside = d > reach + C_N * np.abs(v) / K_N
    np.testing.assert_allclose(f[inside], K_N * d[inside] - C_N * v[inside] + load[inside], rtol=1e-12)
    # the step before first touch already feels the contact (its step average)
    assert stepped([-0.5e-3], [-1.0])[0][0] > 0.0


@pytest.mark.parametrize("v", [-2.0, -1e-3, 0.0, 1e-3, 0.5, 2.0])
def test_stepped_law_is_c1_in_depth(v):
    """Fine scans across first touch, the release where the force would pull and the load's
    ramp: no jump in f, none in df/ddepth (with and without load)."""
    d = np.linspace(-4e-3, 4e-3, 40001)
    h = d[1] - d[0]
    for load in (0.0, LOAD):
        f = stepped(d, v, C_N, load)[0]
        slope = np.diff(f) / h
        w = np.hypot(v * DT_S, DELTA_S)
        assert np.max(np.abs(np.diff(f))) < 2.0 * (K_N + C_N * abs(v) / w + load / DELTA_S) * h
        curv = K_N / w + 2.0 * C_N * abs(v) / w**2 + 2.0 * load / max(w, (LOAD / K_N) if load else w) ** 2
        assert np.max(np.abs(np.diff(slope))) < 2.0 * curv * h, load


@pytest.mark.parametrize("depth", [-1e-4, -5e-6, 0.0, 5e-6, 2e-4, 1e-3])
def test_stepped_law_is_c1_in_velocity_through_zero(depth):
    """The approaching and separating branches meet at v_n = 0 with equal value and slope."""
    v = np.linspace(-0.3, 0.3, 60001)
    h = v[1] - v[0]
    f = stepped(np.full(v.size, depth), v)[0]
    slope = np.diff(f) / h
    jump = np.max(np.abs(np.diff(f)))
    assert jump < 2.0 * (C_N + K_N * DT_S) * h, jump
    k = np.argmin(np.abs(v[:-1]))
    assert abs(slope[k + 1] - slope[k - 1]) < 0.01 * (C_N + K_N * DT_S), (slope[k - 1], slope[k + 1])


def test_stepped_law_reverse_mode_equals_central_differences():
    """f64 reverse mode against central differences in depth, v_n, c_n and load, at points
    before first touch, inside, at the release and approaching/separating slowly."""
    rng = np.random.default_rng(3)
    n = 96
    depth = np.concatenate([rng.uniform(-2.5e-3, 4e-3, n), [-1e-3, -3e-4, 2e-4, 1.5e-3, 9e-4, 3e-6]])
    v_n = np.concatenate([rng.uniform(-2.5, 2.5, n), [-2.0, -0.5, 0.6, 0.3, 1.2, -1e-3]])
    m = depth.size
    c_n = np.full(m, C_N)
    load = np.where(np.arange(m) % 3 == 0, LOAD, 0.0)
    arrs = [ti.ndarray(ti.f64, m, needs_grad=True) for _ in range(6)]
    for a, x in zip(arrs[:4], (depth, v_n, c_n, load)):
        a.from_numpy(x)
    _stepped(*arrs)
    for a in arrs:
        a.grad.fill(0.0)
    arrs[4].grad.fill(1.0)
    _stepped.grad(*arrs)
    base = [depth, v_n, c_n, load]
    for j, h in enumerate((1e-8, 1e-7, 1e-5, 1e-5)):
        plus, minus = [x.copy() for x in base], [x.copy() for x in base]
        plus[j] += h
        minus[j] -= h
        fd = (stepped(*plus)[0] - stepped(*minus)[0]) / (2 * h)
        scale = (K_N, C_N + K_N * DT_S, 3e-3, 1.0)[j]
        np.testing.assert_allclose(arrs[j].grad.to_numpy(), fd, rtol=1e-6, atol=1e-6 * scale, err_msg=str(j))


@pytest.mark.parametrize("omega_dt", [0.1, 0.3])
def test_stepped_bounce_meets_restitution_at_every_phase(omega_dt):
    """A body stepped into a plane with semi-implicit Euler through the stepped law (NumPy twin)
    and the calibrated damping, at 16 phases of first touch within a step, entry 2 m/s, no
    gravity: exit / entry speed is exp(-2 zeta h(zeta)) within 0.1 % at omega dt = 0.1 (0.6 %
    at 0.3), with a spread over the phases below 0.05 % (0.6 %)."""
    e = np.array([0.2, 0.5, 0.8, 0.95, 1.0])[:, None]
    zeta = contact.damping_ratio_from_restitution_np(e)
    mass = K_N * DT_S**2 / omega_dt**2
    c_n = 2.0 * contact.discrete_damping_ratio_np(zeta, omega_dt) * np.sqrt(K_N * mass)
    depth = -2e-3 - 2.0 * DT_S * np.arange(16)[None, :] / 16 + 0.0 * e
    v_n = np.full_like(depth, -2.0)
    for _ in range(int(3 * np.pi / omega_dt) + 10):
        f = contact.stepped_contact_normal_force_np(depth, v_n, K_N, c_n, 0.0, DELTA_S, DT_S)
        v_n = v_n + DT_S * f / mass
        depth = depth - DT_S * v_n
    err = v_n / 2.0 / e - 1.0
    tol, spread = (1e-3, 5e-4) if omega_dt < 0.2 else (6e-3, 6e-3)
    assert np.abs(err).max() < tol, np.abs(err).max(axis=1)
    assert np.ptp(err, axis=1).max() < spread, np.ptp(err, axis=1)


def test_the_damping_cap_keeps_a_zero_restitution_contact_stable_and_leaves_calibrated_ones_alone():
    """e = 0 asks for an infinite damping ratio (clipped at e = 1e-3: zeta ~ 12); on a box's four
    corners at omega dt = 0.1 the explicit damping overshoots every step and the body leaves at
    5.3 m/s after arriving at 1 m/s (a resting box was thrown 0.2 m up). Capped, it leaves at
    0.13 m/s, the least a stepped contact gives; zeta of the calibrated range (<= 1, omega dt
    <= 0.4 for one point, <= 0.1 for four) is unchanged to 3e-6."""
    omega_dt, points = 0.1, 4
    zeta0 = float(contact.damping_ratio_from_restitution_np(0.0))
    assert zeta0 > 10
    for zeta, stable in ((zeta0, False), (float(contact.stable_damping_ratio_np(zeta0, omega_dt, points)), True)):
        mass = K_N * DT_S**2 / omega_dt**2  # one body's mass; `points` springs act on it in parallel
        c_n = 2.0 * zeta * np.sqrt(K_N * mass)
        depth, v_n, peak = -1e-3, -1.0, 0.0
        for _ in range(400):
            f = points * contact.stepped_contact_normal_force_np(depth, v_n, K_N, c_n, 0.0, DELTA_S, DT_S)
            v_n = v_n + DT_S * f / mass
            depth = depth - DT_S * v_n
            peak = max(peak, abs(v_n))
        if stable:
            assert peak <= 1.0 + 1e-12 and 0.0 <= v_n < 0.15, (peak, v_n)
        else:
            assert v_n > 5.0  # what a user met: the box thrown off the floor
    zeta = np.linspace(0.0, 1.0, 11)
    for x in (0.02, 0.1, 0.4):
        np.testing.assert_allclose(contact.stable_damping_ratio_np(zeta, x, 1), zeta, rtol=3e-6)
    np.testing.assert_allclose(contact.stable_damping_ratio_np(zeta, 0.1, 4), zeta, rtol=3e-6)
    big = contact.stable_damping_ratio_np(np.array([10.0, 1e3, 1e6]), 0.1, 4)
    assert np.all(big <= 1.875 + 1e-12) and big[-1] == pytest.approx(1.875, rel=1e-9)
    # the Taichi function is its twin, with a gradient
    zs = ti.ndarray(ti.f64, 5, needs_grad=True)
    out = ti.ndarray(ti.f64, 5, needs_grad=True)
    values = np.array([0.1, 0.5, 1.0, 2.0, 12.0])

    @ti.kernel
    def cap(z: ti.types.ndarray(), o: ti.types.ndarray()):
        for i in range(5):
            o[i] = contact.stable_damping_ratio(z[i], 0.1, 4.0)

    zs.from_numpy(values)
    cap(zs, out)
    np.testing.assert_allclose(out.to_numpy(), contact.stable_damping_ratio_np(values, 0.1, 4), rtol=1e-14)
    out.grad.from_numpy(np.ones(5))
    cap.grad(zs, out)
    h = 1e-6
    fd = (contact.stable_damping_ratio_np(values + h, 0.1, 4) - contact.stable_damping_ratio_np(values - h, 0.1, 4)) / (2 * h)
    np.testing.assert_allclose(zs.grad.to_numpy(), fd, rtol=1e-7, atol=1e-10)
