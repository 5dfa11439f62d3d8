"""NumPy reference algorithms for one robot, written with 6x6 matrices as in Featherstone's book.

They are slow and plain on purpose: the tests hold the Taichi kernels against them. All take a
:class:`~diffsim.articulated.model.Model` and optional per-body parameter overrides ``params``
(a dict like ``model.parameters()``, each (nb, ...)).

Equation of motion (with soft limits, damping and armature)::

    (M(q) + diag(armature + a(q))) qdd + h(q, qd) = tau + tau_passive(q, qd) + sum_k J_k^T F_k

``tau_passive = -damping qd + tau_limit``, a(q) the inertia a pressed stop adds to its joint
(:func:`limit_inertia`); F_k are the ground-contact forces of the contact
points; both through a NumPy transcription of the shared contact law of :mod:`diffsim.contact`
(:func:`diffsim.contact.contact_normal_force_np`). ``rnea`` returns the tau that produces a given qdd,
``aba`` the qdd that a given tau produces (ignoring tau on passive joints), ``crba``
M(q) + diag(armature).
"""

from __future__ import annotations

import numpy as np

from ..contact import contact_normal_force_np
from ..errors import ConfigError
from .model import REVOLUTE, Model
from .spatial import crf, crm, inertia_matrix, plucker, rotation_about, spatial_inertia


def _params(model: Model, params) -> dict:
    if model.floating:
        raise ConfigError(f"the NumPy reference algorithms cover fixed-base robots; '{model.name}' has a floating "
                          "base: use diffsim.articulated's aba, rnea, crba (or model.fixed_base())")
    p = model.parameters()
    if params:
        p.update({k: np.asarray(v, dtype=float) for k, v in params.items()})
    return p


def motion_subspace(model: Model, i: int) -> np.ndarray:
    """S_i, the 6-vector of joint i's motion in body i coordinates."""
    S = np.zeros(6)
    if model.jtype[i] == REVOLUTE:
        S[:3] = model.axis[i]
    else:
        S[3:] = model.axis[i]
    return S


def joint_transform(model: Model, i: int, qi: float, params=None) -> tuple:
    """(E, r) of the transform from body parent(i) to body i at joint position qi."""
    p = _params(model, params)
    a = model.axis[i]
    Et = model.E_tree[i]
    if model.jtype[i] == REVOLUTE:
        EJ, rJ = rotation_about(a, qi).T, np.zeros(3)
    else:
        EJ, rJ = np.eye(3), a * qi
    return EJ @ Et, p["joint_offset"][i] + Et.T @ rJ


def body_poses(model: Model, q, params=None) -> tuple:
    """World rotation R (nb, 3, 3; body axes in world coordinates) and origin p (nb, 3) (m)."""
    R = np.zeros((model.nb, 3, 3))
    P = np.zeros((model.nb, 3))
    for i in range(model.nb):
        E, r = joint_transform(model, i, q[i], params)
        lam = model.parent[i]
        if lam < 0:
            R[i], P[i] = E.T, r
        else:
            R[i], P[i] = R[lam] @ E.T, P[lam] + R[lam] @ r
    return R, P


def point_position(model: Model, q, body: int, point, params=None) -> np.ndarray:
    """World position (m) of a point given in body coordinates."""
    R, P = body_poses(model, q, params)
    return R[body] @ point + P[body]


def point_jacobian(model: Model, q, body: int, point, params=None) -> np.ndarray:
    """(3, nb) Jacobian of the world position of a body point w.r.t. q."""
    R, P = body_poses(model, q, params)
    x = R[body] @ point + P[body]
    J = np.zeros((3, model.nb))
    for j in model.ancestors(body):
        a = R[j] @ model.axis[j]
        J[:, j] = np.cross(a, x - P[j]) if model.jtype[j] == REVOLUTE else a
    return J


def body_inertia(model: Model, i: int, params=None) -> np.ndarray:
    p = _params(model, params)
    return spatial_inertia(p["mass"][i], p["com"][i], inertia_matrix(p["inertia"][i]))


def velocities(model: Model, q, qd, params=None) -> list:
    """Spatial velocities of the bodies, each in its own coordinates."""
    v = []
    for i in range(model.nb):
        E, r = joint_transform(model, i, q[i], params)
        lam = model.parent[i]
        vp = np.zeros(6) if lam < 0 else plucker(E, r) @ v[lam]
        v.append(vp + motion_subspace(model, i) * qd[i])
    return v


def _gains(model, limits):
    from .dynamics import DEFAULT_DT
    from .limits import soft_limit_gains

    return limits if limits is not None else soft_limit_gains(model, DEFAULT_DT, check=False)


def limit_inertia(model: Model, q, qd, limits=None) -> np.ndarray:
    """(nb,) the inertia a stop adds to its joint while the predicted position q + dt qd is
    pressed into it (diffsim.articulated.limits)."""
    g = _gains(model, limits)
    qp = np.asarray(q, float) + g.dt * np.asarray(qd, float)
    return g.added_inertia(model.lower - qp) + g.added_inertia(qp - model.upper)


def passive_torque(model: Model, q, qd, params=None, limits=None) -> np.ndarray:
    """-damping qd plus the soft-limit torques (shared law at both bounds, at the predicted
    position q + dt qd); ``limits`` a LimitGains, by default as
    :func:`diffsim.articulated.aba` takes them."""
    p = _params(model, params)
    g = _gains(model, limits)
    q, qd = np.asarray(q, float), np.asarray(qd, float)
    qp = q + g.dt * qd
    k, c = g.stiffness, g.damping
    lower = contact_normal_force_np(model.lower - qp, qd, k, c, g.onset)
    upper = contact_normal_force_np(qp - model.upper, -qd, k, c, g.onset)
    return -p["damping"] * qd + lower - upper


def contact_forces(model: Model, q, qd, contact: dict, params=None) -> list:
    """Spatial forces (body coordinates) of the ground contacts on each body (points, or spheres
    touching at their lowest point; shared model:
    the C^1 normal force of :func:`diffsim.contact.contact_normal_force_np` and smoothed Coulomb friction, ground plane
    z = contact['height'], as GroundContact.as_dict() gives it; with ``contact['dt']`` (s) and
    ``contact['m_t']`` (ncp,) (kg, limits.contact_tangential_mass), the slip speed raised to
    sqrt(v_eps^2 + (2 dt mu F / m_t)^2), F the sum of the normal forces on the point's body, as
    the simulator does)."""
    f = [np.zeros(6) for _ in range(model.nb)]
    if not model.contact_body:
        return f
    R, P = body_poses(model, q, params)
    v = velocities(model, q, qd, params)
    m_t = contact.get("m_t", np.full(len(model.contact_body), np.inf))
    points = []
    load = np.zeros(model.nb)
    for b, c, r in zip(model.contact_body, model.contact_point, model.contact_radius):
        pt = c - r * R[b][2]   # the lowest point of the sphere of radius r at c (body coordinates)
        x = R[b] @ pt + P[b]
        vel = R[b] @ (v[b][3:] + np.cross(v[b][:3], pt))
        depth = contact["height"] - x[2]
        fn = float(contact_normal_force_np(depth, vel[2], contact["kn"], contact["cn"], contact["delta"]))
        load[b] += fn
        points.append((b, pt, vel, fn))
    for (b, pt, vel, fn), mt in zip(points, m_t):
        vt = vel[:2]
        v_cap = 2.0 * contact.get("dt", 0.0) * contact["mu"] * load[b] / mt
        ft = -contact["mu"] * fn * vt / np.sqrt(vt @ vt + contact["v_eps"] ** 2 + v_cap ** 2)
        Fb = R[b].T @ np.array([ft[0], ft[1], fn])
        f[b] += np.concatenate([np.cross(pt, Fb), Fb])
    return f


def rnea(model: Model, q, qd, qdd, params=None, f_ext=None, gravity=None, limits=None) -> np.ndarray:
    """Recursive Newton-Euler: the joint torques giving accelerations qdd (see module doc)."""
    p = _params(model, params)
    g = model.gravity if gravity is None else np.asarray(gravity, float)
    a0 = np.concatenate([np.zeros(3), -g])
    v, a, f, X = [], [], [], []
    for i in range(model.nb):
        E, r = joint_transform(model, i, q[i], params)
        Xi = plucker(E, r)
        S = motion_subspace(model, i)
        lam = model.parent[i]
        vp = np.zeros(6) if lam < 0 else Xi @ v[lam]
        ap = Xi @ a0 if lam < 0 else Xi @ a[lam]
        vi = vp + S * qd[i]
        ai = ap + S * qdd[i] + crm(vi) @ (S * qd[i])
        I = body_inertia(model, i, params)
        fi = I @ ai + crf(vi) @ (I @ vi)
        if f_ext is not None:
            fi = fi - f_ext[i]
        v.append(vi), a.append(ai), f.append(fi), X.append(Xi)
    tau = np.zeros(model.nb)
    for i in reversed(range(model.nb)):
        tau[i] = motion_subspace(model, i) @ f[i]
        lam = model.parent[i]
        if lam >= 0:
            f[lam] = f[lam] + X[i].T @ f[i]
    return (tau + (p["armature"] + limit_inertia(model, q, qd, limits)) * np.asarray(qdd)
            - passive_torque(model, q, qd, params, limits))


def crba(model: Model, q, params=None) -> np.ndarray:
    """Composite-rigid-body algorithm: the joint-space inertia M(q) + diag(armature)."""
    p = _params(model, params)
    n = model.nb
    X = [plucker(*joint_transform(model, i, q[i], params)) for i in range(n)]
    Ic = [body_inertia(model, i, params) for i in range(n)]
    for i in reversed(range(n)):
        lam = model.parent[i]
        if lam >= 0:
            Ic[lam] = Ic[lam] + X[i].T @ Ic[i] @ X[i]
    H = np.zeros((n, n))
    for i in range(n):
        F = Ic[i] @ motion_subspace(model, i)
        H[i, i] = motion_subspace(model, i) @ F
        j = i
        while model.parent[j] >= 0:
            F = X[j].T @ F
            j = model.parent[j]
            H[i, j] = H[j, i] = F @ motion_subspace(model, j)
    return H + np.diag(p["armature"])


def aba(model: Model, q, qd, tau, params=None, f_ext=None, gravity=None, limits=None) -> np.ndarray:
    """Articulated-body algorithm: joint accelerations qdd for torques tau (see module doc)."""
    p = _params(model, params)
    g = model.gravity if gravity is None else np.asarray(gravity, float)
    n = model.nb
    tau = np.asarray(tau, float) * model.actuated + passive_torque(model, q, qd, params, limits)
    extra = limit_inertia(model, q, qd, limits)
    X, S, v, c, IA, pA = [], [], [], [], [], []
    for i in range(n):
        Xi = plucker(*joint_transform(model, i, q[i], params))
        Si = motion_subspace(model, i)
        lam = model.parent[i]
        vJ = Si * qd[i]
        vi = (np.zeros(6) if lam < 0 else Xi @ v[lam]) + vJ
        I = body_inertia(model, i, params)
        X.append(Xi), S.append(Si), v.append(vi), c.append(crm(vi) @ vJ), IA.append(I)
        pA.append(crf(vi) @ I @ vi - (0 if f_ext is None else f_ext[i]))
    U, D, u = [None] * n, np.zeros(n), np.zeros(n)
    for i in reversed(range(n)):
        U[i] = IA[i] @ S[i]
        D[i] = S[i] @ U[i] + p["armature"][i] + extra[i]
        u[i] = tau[i] - S[i] @ pA[i]
        lam = model.parent[i]
        if lam >= 0:
            Ia = IA[i] - np.outer(U[i], U[i]) / D[i]
            pa = pA[i] + Ia @ c[i] + U[i] * u[i] / D[i]
            IA[lam] = IA[lam] + X[i].T @ Ia @ X[i]
            pA[lam] = pA[lam] + X[i].T @ pa
    a0 = np.concatenate([np.zeros(3), -g])
    a, qdd = [None] * n, np.zeros(n)
    for i in range(n):
        lam = model.parent[i]
        ap = X[i] @ (a0 if lam < 0 else a[lam]) + c[i]
        qdd[i] = (u[i] - U[i] @ ap) / D[i]
        a[i] = ap + S[i] * qdd[i]
    return qdd


def energy(model: Model, q, qd, params=None) -> tuple:
    """(kinetic, potential) energy (J); potential relative to the world origin."""
    p = _params(model, params)
    v = velocities(model, q, qd, params)
    R, P = body_poses(model, q, params)
    T = sum(0.5 * v[i] @ body_inertia(model, i, params) @ v[i] for i in range(model.nb))
    V = -sum(p["mass"][i] * model.gravity @ (R[i] @ p["com"][i] + P[i]) for i in range(model.nb))
    return float(T), float(V)
