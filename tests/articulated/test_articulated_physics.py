"""The simulator against independent physics: a pendulum's small-angle period, a double
pendulum's equations of motion derived with SymPy, and energy conservation without damping."""

import numpy as np
import sympy as sp

from diffsim import Rollout, StoreAll
from diffsim.articulated import ArticulatedSystem, RobotBuilder, aba, planar_arm
from diffsim.articulated import reference as ref

G = 9.81


def simulate(model, q0, qd0, dt, steps, tau=None, segment=500):
    system = ArticulatedSystem(model, batch=1, dt=dt, q0=q0, qd0=qd0, segment=segment)
    ro = Rollout(system, steps, StoreAll())
    if tau is not None:
        ro.set_controls(tau=tau)
    ro.forward()
    return ro.trajectory("q")[:, 0], ro.trajectory("qd")[:, 0]


def test_compound_pendulum_small_angle_period():
    # a rod of 0.6 m with a point mass at 0.45 m below the pivot: I and d are not those of a rod
    m_rod, L, m_bob, d_bob = 0.8, 0.6, 0.5, 0.45
    rb = RobotBuilder("pendulum", gravity=(0, 0, -G))
    rb.add_link("pivot")
    rb.add_link("rod", mass=m_rod, com=(0, 0, -L / 2), inertia=np.diag([m_rod * L ** 2 / 12] * 2 + [0.0]))
    rb.add_link("bob", mass=m_bob)
    rb.add_joint("hinge", "revolute", "pivot", "rod", axis=(0, 1, 0))
    rb.add_joint("weld", "fixed", "rod", "bob", xyz=(0, 0, -d_bob))
    model = rb.finalize()
    m = m_rod + m_bob
    d = (m_rod * L / 2 + m_bob * d_bob) / m
    I = m_rod * L ** 2 / 12 + m_rod * (L / 2) ** 2 + m_bob * d_bob ** 2
    period = 2 * np.pi * np.sqrt(I / (m * G * d))
    dt = 1e-3
    q, _ = simulate(model, [0.01], [0.0], dt, 4000)
    th = q[:, 0]
    i = np.nonzero((th[:-1] > 0) & (th[1:] <= 0))[0]  # downward zero crossings
    t_cross = (i + th[i] / (th[i] - th[i + 1])) * dt
    measured = np.mean(np.diff(t_cross))
    assert len(t_cross) >= 3
    assert abs(measured - period) / period < 0.005, (measured, period)


def double_pendulum_equations():
    """M(q) qdd = rhs(q, qd, tau) of two uniform rods hinged about y in the x-z plane
    (q = 0 along +x, gravity -z), by Lagrange's equations in SymPy."""
    q1, q2, w1, w2 = sp.symbols("q1 q2 w1 w2")
    m1, m2, L1, L2, g, c1, c2, t1, t2 = sp.symbols("m1 m2 L1 L2 g c1 c2 tau1 tau2")
    t = sp.symbols("t")
    a1, a2 = sp.Function("a1")(t), sp.Function("a2")(t)
    # a positive angle about +y turns +x towards -z: direction (cos a, -sin a) in (x, z)
    p1 = sp.Matrix([L1 / 2 * sp.cos(a1), -L1 / 2 * sp.sin(a1)])
    j2 = sp.Matrix([L1 * sp.cos(a1), -L1 * sp.sin(a1)])
    p2 = j2 + sp.Matrix([L2 / 2 * sp.cos(a1 + a2), -L2 / 2 * sp.sin(a1 + a2)])
    v1, v2 = p1.diff(t), p2.diff(t)
    T = (m1 * v1.dot(v1) + m2 * v2.dot(v2)) / 2 + (m1 * L1 ** 2 / 12 * a1.diff(t) ** 2
                                                   + m2 * L2 ** 2 / 12 * (a1.diff(t) + a2.diff(t)) ** 2) / 2
    V = g * (m1 * p1[1] + m2 * p2[1])
    Lag = T - V
    damping = {a1: -c1 * a1.diff(t), a2: -c2 * a2.diff(t)}
    torque = {a1: t1, a2: t2}
    eqs = [sp.diff(Lag.diff(a.diff(t)), t) - Lag.diff(a) - torque[a] - damping[a] for a in (a1, a2)]
    acc = [a1.diff(t, 2), a2.diff(t, 2)]
    subs = {a1.diff(t, 2): sp.Symbol("x1"), a2.diff(t, 2): sp.Symbol("x2")}
    eqs = [e.subs(subs) for e in eqs]
    x = [sp.Symbol("x1"), sp.Symbol("x2")]
    M = sp.Matrix([[sp.diff(e, xi) for xi in x] for e in eqs])
    rhs = -sp.Matrix([e.subs({x[0]: 0, x[1]: 0}) for e in eqs])
    plain = {a1.diff(t): w1, a2.diff(t): w2}
    plain_q = {a1: q1, a2: q2}
    M = M.subs(plain).subs(plain_q)
    rhs = rhs.subs(plain).subs(plain_q)
    energy = (T + V).subs(plain).subs(plain_q)
    args = (q1, q2, w1, w2, m1, m2, L1, L2, g, c1, c2, t1, t2)
    assert acc  # the accelerations were eliminated into x1, x2
    return (sp.lambdify(args, M, "numpy"), sp.lambdify(args, rhs, "numpy"),
            sp.lambdify(args, energy, "numpy"))


M_FN, RHS_FN, ENERGY_FN = double_pendulum_equations()


def sympy_qdd(q, qd, tau, m, L, c):
    args = (q[0], q[1], qd[0], qd[1], m[0], m[1], L[0], L[1], G, c[0], c[1], tau[0], tau[1])
    return np.linalg.solve(np.array(M_FN(*args), float), np.array(RHS_FN(*args), float).ravel())


def test_double_pendulum_matches_sympy_equations_of_motion():
    m, L, c = [1.3, 0.7], [0.5, 0.35], [0.05, 0.02]
    model = planar_arm(2, lengths=L, masses=m, damping=c)
    rng = np.random.default_rng(0)
    q = rng.uniform(-np.pi, np.pi, size=(8, 2))
    qd = rng.normal(scale=3.0, size=(8, 2))
    tau = rng.normal(size=(8, 2))
    qdd = aba(model, q, qd, tau)
    expected = np.array([sympy_qdd(q[b], qd[b], tau[b], m, L, c) for b in range(8)])
    assert np.allclose(qdd, expected, rtol=1e-11, atol=1e-11)
    # and a rollout: semi-implicit Euler on the SymPy equations gives the same trajectory
    dt, steps = 2e-3, 300
    torques = rng.normal(scale=0.5, size=(steps, 1, 2))
    qs, qds = simulate(model, [0.4, -0.3], [0.0, 1.0], dt, steps, torques, segment=64)
    x, v = np.array([0.4, -0.3]), np.array([0.0, 1.0])
    for k in range(steps):
        v = v + dt * sympy_qdd(x, v, torques[k, 0], m, L, c)
        x = x + dt * v
    assert np.allclose(qs[-1], x, atol=1e-9) and np.allclose(qds[-1], v, atol=1e-9)


def test_energy_is_conserved_without_damping():
    """Without damping, total energy is conserved up to the integrator's error. Semi-implicit
    Euler in (q, qd) is first order and, with a configuration-dependent mass matrix, not
    exactly symplectic: for a double pendulum swinging from (0.5, 0.5) rad for 3 s the energy
    error stays below 0.3 % of m g L at dt = 0.5 ms, and halves when dt halves (it is the
    integrator's O(dt) error, not a modelling error)."""
    m, L = [1.0, 0.8], [0.4, 0.3]
    model = planar_arm(2, lengths=L, masses=m, damping=0.0)
    scale = G * (m[0] * L[0] + m[1] * (L[0] + L[1]))
    worst = {}
    for dt in (1e-3, 5e-4):
        steps = round(3.0 / dt)
        qs, qds = simulate(model, [0.5, 0.5], [0.0, 0.0], dt, steps)
        E = np.array([ENERGY_FN(*qs[k], *qds[k], *m, *L, G, 0, 0, 0, 0) for k in range(0, steps + 1, 10)])
        worst[dt] = np.max(np.abs(E - E[0])) / scale
    assert worst[5e-4] < 3e-3, worst
    assert 0.4 < worst[5e-4] / worst[1e-3] < 0.6, worst
    # the reference energy agrees with SymPy's (independent check of both)
    Tk, Vk = ref.energy(model, qs[100], qds[100])
    assert np.isclose(Tk + Vk, ENERGY_FN(*qs[100], *qds[100], *m, *L, G, 0, 0, 0, 0), rtol=1e-12, atol=1e-12)


def test_single_pendulum_energy_has_no_secular_drift():
    """One joint: the mass matrix is constant and semi-implicit Euler is symplectic, so the
    energy error oscillates at O(dt) without growing (20 periods)."""
    model = planar_arm(1, lengths=0.5, masses=1.0, damping=0.0)
    dt, steps = 1e-3, 20000
    qs, qds = simulate(model, [0.0], [0.0], dt, steps)
    E = np.array([sum(ref.energy(model, qs[k], qds[k])) for k in range(0, steps + 1, 50)])
    err = np.abs(E - E[0]) / (1.0 * G * 0.25)
    n = len(err)
    assert err.max() < 1e-2
    assert err[3 * n // 4:].max() < 1.2 * err[: n // 4].max()
