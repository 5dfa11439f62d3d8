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
from ..rotations import quat_to_matrix_np
from .model import BALL, REVOLUTE, Model
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
    """S_i, the 6-vector of joint i's motion in body i coordinates ((6, 3) for a ball joint:
    its angular velocity in body coordinates)."""
    if model.jtype[i] == BALL:
        return np.vstack([np.eye(3), np.zeros((3, 3))])
    S = np.zeros(6)
    if model.jtype[i] == REVOLUTE:
        S[:3] = model.axis[i]
    else:
        S[3:] = model.axis[i]
    return S


def joint_q(model: Model, q, i: int):
    """Joint i's coordinates in q: a number, or a ball joint's unit quaternion (4,)."""
    k = model.q_index[i]
    return np.asarray(q[k:k + 4], float) if model.jtype[i] == BALL else q[k]


def joint_v(model: Model, x, i: int):
    """Joint i's entries of a velocity-sized vector x (qd, qdd, tau): a number, or (3,) for a ball joint."""
    k = model.v_index[i]
    return np.asarray(x[k:k + 3], float) if model.jtype[i] == BALL else x[k]


def joint_transform(model: Model, i: int, qi, params=None) -> tuple:
    """(E, r) of the transform from body parent(i) to body i at joint position qi (a ball
    joint: its unit quaternion, the child's rotation in the joint frame)."""
    p = _params(model, params)
    a = model.axis[i]
    Et = model.E_tree[i]
    if model.jtype[i] == BALL:
        EJ, rJ = quat_to_matrix_np(qi).T, np.zeros(3)
    elif model.jtype[i] == REVOLUTE:
        EJ, rJ = rotation_about(a, qi).T, np.zeros(3)
    else:
        EJ, rJ = np.eye(3), a * qi
    return EJ @ Et, p["joint_offset"][i] + Et.T @ rJ


def body_poses(model: Model, q, params=None) -> tuple:
    """World rotation R (nb, 3, 3; body axes in world coordinates) and origin p (nb, 3) (m)."""
    R = np.zeros((model.nb, 3, 3))
    P = np.zeros((model.nb, 3))
    for i in range(model.nb):
        E, r = joint_transform(model, i, joint_q(model, q, i), params)
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
    """(3, nv) Jacobian of the world position of a body point w.r.t. qd (w.r.t. q for 1-DOF
    joints; a ball joint's 3 columns: the point's velocity per unit angular velocity about each
    body axis of its child, -[x - o]x R)."""
    R, P = body_poses(model, q, params)
    x = R[body] @ point + P[body]
    J = np.zeros((3, model.nv))
    for j in model.ancestors(body):
        v = model.v_index[j]
        if model.jtype[j] == BALL:
            J[:, v:v + 3] = np.cross(R[j].T, x - P[j]).T   # column k: (R e_k) x (x - o)
            continue
        a = R[j] @ model.axis[j]
        J[:, v] = np.cross(a, x - P[j]) if model.jtype[j] == REVOLUTE else a
    return J


def body_inertia(model: Model, i: int, params=None) -> np.ndarray:
    p = _params(model, params)
    return spatial_inertia(p["mass"][i], p["com"][i], inertia_matrix(p["inertia"][i]))


def velocities(model: Model, q, qd, params=None) -> list:
    """Spatial velocities of the bodies, each in its own coordinates."""
    v = []
    for i in range(model.nb):
        E, r = joint_transform(model, i, joint_q(model, q, i), params)
        lam = model.parent[i]
        vp = np.zeros(6) if lam < 0 else plucker(E, r) @ v[lam]
        v.append(vp + _joint_motion(model, i, qd))
    return v


def _joint_motion(model: Model, i: int, x):
    """S_i x_i: joint i's spatial motion for its entries of the velocity-sized x."""
    S = motion_subspace(model, i)
    return S @ joint_v(model, x, i) if model.jtype[i] == BALL else S * x[model.v_index[i]]


def _per_dof(model: Model, values) -> np.ndarray:
    """(nv,) from per-body values (nb,): each body's value on each of its joint's dofs."""
    return np.repeat(np.asarray(values, float), model.joint_dofs)


def _one_dof(model: Model, x) -> np.ndarray:
    """(nb,) the entries of the velocity-sized x at each body's first dof (what the 1-DOF
    soft-limit law reads; a ball joint has no limit)."""
    return np.asarray(x, float)[list(model.v_index)]


def _gains(model, limits):
    from .dynamics import DEFAULT_DT
    from .limits import soft_limit_gains

    return limits if limits is not None else soft_limit_gains(model, DEFAULT_DT, check=False)


def limit_inertia(model: Model, q, qd, limits=None) -> np.ndarray:
    """(nv,) the inertia a stop adds to its joint while the predicted position q + dt qd is
    pressed into it (diffsim.articulated.limits; 0 on a ball joint, which has no limits)."""
    g = _gains(model, limits)
    qp = _one_q(model, q) + g.dt * _one_dof(model, qd)
    return _on_first_dof(model, g.added_inertia(model.lower - qp) + g.added_inertia(qp - model.upper))


def passive_torque(model: Model, q, qd, params=None, limits=None) -> np.ndarray:
    """(nv,) -damping qd plus the soft-limit torques (shared law at both bounds, at the
    predicted position q + dt qd; none on a ball joint); ``limits`` a LimitGains, by default as
    :func:`diffsim.articulated.aba` takes them."""
    p = _params(model, params)
    g = _gains(model, limits)
    q1, qd1 = _one_q(model, q), _one_dof(model, qd)
    qp = q1 + g.dt * qd1
    k, c = g.stiffness, g.damping
    lower = contact_normal_force_np(model.lower - qp, qd1, k, c, g.onset)
    upper = contact_normal_force_np(qp - model.upper, -qd1, k, c, g.onset)
    return -_per_dof(model, p["damping"]) * np.asarray(qd, float) + _on_first_dof(model, lower - upper)


def _one_q(model: Model, q) -> np.ndarray:
    """(nb,) q at each body's first coordinate (a ball joint's quaternion w: never limited)."""
    return np.asarray(q, float)[list(model.q_index)]


def _on_first_dof(model: Model, values) -> np.ndarray:
    """(nv,) per-body values (nb,) on each body's first dof, 0 on a ball joint's dofs (for 1-DOF
    robots, values itself)."""
    out = np.zeros(model.nv)
    out[list(model.v_index)] = values
    out[np.repeat(np.asarray(model.jtype) == BALL, model.joint_dofs)] = 0.0
    return out


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
        E, r = joint_transform(model, i, joint_q(model, q, i), params)
        Xi = plucker(E, r)
        lam = model.parent[i]
        vp = np.zeros(6) if lam < 0 else Xi @ v[lam]
        ap = Xi @ a0 if lam < 0 else Xi @ a[lam]
        vJ = _joint_motion(model, i, qd)
        vi = vp + vJ
        ai = ap + _joint_motion(model, i, qdd) + crm(vi) @ vJ
        I = body_inertia(model, i, params)
        fi = I @ ai + crf(vi) @ (I @ vi)
        if f_ext is not None:
            fi = fi - f_ext[i]
        v.append(vi), a.append(ai), f.append(fi), X.append(Xi)
    tau = np.zeros(model.nv)
    for i in reversed(range(model.nb)):
        k = model.v_index[i]
        tau[k:k + model.joint_dofs[i]] = motion_subspace(model, i).T @ f[i]
        lam = model.parent[i]
        if lam >= 0:
            f[lam] = f[lam] + X[i].T @ f[i]
    return (tau + (_per_dof(model, p["armature"]) + limit_inertia(model, q, qd, limits)) * np.asarray(qdd)
            - passive_torque(model, q, qd, params, limits))


def crba(model: Model, q, params=None) -> np.ndarray:
    """Composite-rigid-body algorithm: the joint-space inertia M(q) + diag(armature), (nv, nv)."""
    p = _params(model, params)
    n = model.nb
    X = [plucker(*joint_transform(model, i, joint_q(model, q, i), params)) for i in range(n)]
    Ic = [body_inertia(model, i, params) for i in range(n)]
    for i in reversed(range(n)):
        lam = model.parent[i]
        if lam >= 0:
            Ic[lam] = Ic[lam] + X[i].T @ Ic[i] @ X[i]
    H = np.zeros((model.nv, model.nv))
    vix, dofs = model.v_index, model.joint_dofs
    for i in range(n):
        Si = motion_subspace(model, i)
        F = Ic[i] @ Si
        bi = slice(vix[i], vix[i] + dofs[i])
        H[bi, bi] = Si.T @ F
        j = i
        while model.parent[j] >= 0:
            F = X[j].T @ F
            j = model.parent[j]
            bj = slice(vix[j], vix[j] + dofs[j])
            Hij = (F.T @ motion_subspace(model, j)).reshape(dofs[i], dofs[j])
            H[bi, bj] = Hij
            H[bj, bi] = Hij.T
    return H + np.diag(_per_dof(model, p["armature"]))


def aba(model: Model, q, qd, tau, params=None, f_ext=None, gravity=None, limits=None) -> np.ndarray:
    """Articulated-body algorithm: joint accelerations qdd for torques tau (see module doc).
    A ball joint's D = S^T IA S is 3x3 (solved), a 1-DOF joint's a number."""
    p = _params(model, params)
    g = model.gravity if gravity is None else np.asarray(gravity, float)
    n = model.nb
    tau = np.asarray(tau, float) * _per_dof(model, model.actuated) + passive_torque(model, q, qd, params, limits)
    extra = limit_inertia(model, q, qd, limits)
    arm = _per_dof(model, p["armature"])
    X, S, v, c, IA, pA = [], [], [], [], [], []
    for i in range(n):
        Xi = plucker(*joint_transform(model, i, joint_q(model, q, i), params))
        Si = motion_subspace(model, i)
        lam = model.parent[i]
        vJ = _joint_motion(model, i, qd)
        vi = (np.zeros(6) if lam < 0 else Xi @ v[lam]) + vJ
        I = body_inertia(model, i, params)
        X.append(Xi), S.append(Si), v.append(vi), c.append(crm(vi) @ vJ), IA.append(I)
        pA.append(crf(vi) @ I @ vi - (0 if f_ext is None else f_ext[i]))
    U, D, u = [None] * n, [None] * n, [None] * n
    for i in reversed(range(n)):
        ball = model.jtype[i] == BALL
        U[i] = IA[i] @ S[i]
        if ball:
            k = model.v_index[i]
            D[i] = S[i].T @ U[i] + np.diag(arm[k:k + 3] + extra[k:k + 3])
            u[i] = joint_v(model, tau, i) - S[i].T @ pA[i]
        else:
            D[i] = S[i] @ U[i] + arm[model.v_index[i]] + extra[model.v_index[i]]
            u[i] = tau[model.v_index[i]] - S[i] @ pA[i]
        lam = model.parent[i]
        if lam >= 0:
            if ball:
                UDi = U[i] @ np.linalg.inv(D[i])
                Ia = IA[i] - UDi @ U[i].T
                pa = pA[i] + Ia @ c[i] + UDi @ u[i]
            else:
                Ia = IA[i] - np.outer(U[i], U[i]) / D[i]
                pa = pA[i] + Ia @ c[i] + U[i] * u[i] / D[i]
            IA[lam] = IA[lam] + X[i].T @ Ia @ X[i]
            pA[lam] = pA[lam] + X[i].T @ pa
    a0 = np.concatenate([np.zeros(3), -g])
    a, qdd = [None] * n, np.zeros(model.nv)
    for i in range(n):
        lam = model.parent[i]
        ap = X[i] @ (a0 if lam < 0 else a[lam]) + c[i]
        k = model.v_index[i]
        if model.jtype[i] == BALL:
            qdd[k:k + 3] = np.linalg.solve(D[i], u[i] - U[i].T @ ap)
            a[i] = ap + S[i] @ qdd[k:k + 3]
        else:
            qdd[k] = (u[i] - U[i] @ ap) / D[i]
            a[i] = ap + S[i] * qdd[k]
    return qdd


def energy(model: Model, q, qd, params=None) -> tuple:
    """(kinetic, potential) energy (J); potential relative to the world origin."""
    p = _params(model, params)
    v = velocities(model, q, qd, params)
    R, P = body_poses(model, q, params)
    T = sum(0.5 * v[i] @ body_inertia(model, i, params) @ v[i] for i in range(model.nb))
    V = -sum(p["mass"][i] * model.gravity @ (R[i] @ p["com"][i] + P[i]) for i in range(model.nb))
    return float(T), float(V)
