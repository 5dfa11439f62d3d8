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
        ramp[i] = contact.onset_ramp(u[i])


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


def test_onset_ramp_makes_the_onset_impulse_exact_for_every_phase():
    """sum_k ramp(phi + k) = phi + const: the ramped damping's impulse grows exactly with the
    time since first touch, whatever the phase phi of the touch within a step; and C^1."""
    phi = np.linspace(0.01, 1.0, 50)
    u = (phi[:, None] + np.arange(4)[None, :]).ravel()
    r = _run_helpers(np.full(u.size, 0.5), np.full(u.size, 0.1), u)[5].to_numpy().reshape(50, 4)
    total = r.sum(axis=1)
    np.testing.assert_allclose(total - phi, (total - phi)[0], atol=1e-14)
    g = np.linspace(-0.5, 2.5, 3001)
    rg = _run_helpers(np.full(g.size, 0.5), np.full(g.size, 0.1), g)[5].to_numpy()
    slope = np.diff(rg) / np.diff(g)
    assert rg[0] == 0.0 and rg[-1] == 1.0 and np.max(np.abs(np.diff(slope))) < 2e-3  # no kink


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
