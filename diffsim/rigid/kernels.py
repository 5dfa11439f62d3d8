"""Kernels of the rigid-body step: per-item ``ti.func``s and the kernels that loop over them.

One step from slot s to slot d (semi-implicit Euler, world-frame angular velocity):

    penalty model                                impulse model (spheres and planes)
    F, tau = m g + u_F, u_tau      (init)        v*, w* = v, w advanced by forces (predict)
    F, tau += contact forces       (pairs,       dv, dx += impulses with TOI at the
              on pair and plane     planes)              predicted positions x + dt v*
    v' = (v + dt F/m) / (1 + dt c_v)             v' = v* + dv
    w' = (w + dt I^-1 (tau - w x I w)) / (1 + dt c_w)   w' = w*
    x' = x + dt v',  q' = normalize(q + dt/2 (0, w') q)  x' = x + dt v* + dx  (integrate)

In 2D (the x-y plane) every vector is a 3-vector with z = 0, the orientation is an angle
(theta' = theta + dt w'_z) and inertia is I_zz alone. The same ``ti.func``s serve the
per-step kernels (one parallel launch per phase) and the fused ``*_advance`` kernels, which
run many steps in one launch as one flat serial loop over (step, item): items of a step are
its bodies (init), its candidate pairs, its (body, plane) pairs and its bodies again
(integrate). Iterations feed later ones only through global memory, which reverse mode
handles (a flat loop, not sibling loops; TAICHI.md addendum). Scratch (forces, torques or
predicted velocities and impulses) is per time slot, written once per forward pass.

Argument order of every kernel: dim, shapes mask, states X Q V W, scratch S0..S4,
parameters mass restitution friction linear_damping angular_damping, controls uF uT, model
shape geometry unit_inertia planes consts, pair list pairs count, then the slots and times.
"""

import taichi as ti

from ..collision.impulse import coulomb_friction_impulse, impulse_at, normal_impulse, sphere_time_of_impact
from ..collision.narrowphase import (
    box_box_point,
    box_capsule_point,
    capsule_capsule,
    capsule_sphere,
    point_plane,
    sphere_box,
    sphere_plane,
    sphere_sphere,
)
from ..contact import (
    contact_normal_force,
    damping_ratio_from_restitution,
    discrete_damping_ratio,
    smoothed_coulomb_friction,
    stepped_contact_normal_force,
    stepped_contact_reach,
)
from ..rotations import (
    quat_from_angle_z,
    quat_integrate,
    quat_rotate,
    world_inertia_apply,
    world_inertia_inv_apply,
)
from .shapes import BOX, CAPSULE, SPHERE

# consts layout (an ndarray of reals)
DT, KN, VEPS, GX, GY, GZ, VMIN, ROLL, DELTA = range(9)
N_CONSTS = 9

M_SPHERE, M_BOX, M_CAPSULE = 1 << SPHERE, 1 << BOX, 1 << CAPSULE
# compile-time flags beside the shapes: the scene has box-box / box-capsule pairs that collide
M_BOX_BOX, M_BOX_CAPSULE = 1 << 3, 1 << 4

T = ti.template()

# ------------------------------------------------------------------------------- loads, stores


@ti.func
def load_vec(A: T, s, i, dim: T):
    """A[s, i] as a 3-vector (z = 0 in 2D)."""
    r = ti.Vector([A[s, i, 0], A[s, i, 1], 0.0])
    if ti.static(dim == 3):
        r = ti.Vector([A[s, i, 0], A[s, i, 1], A[s, i, 2]])
    return r


@ti.func
def load3(A: T, s, i):
    return ti.Vector([A[s, i, 0], A[s, i, 1], A[s, i, 2]])


@ti.func
def store3(A: T, s, i, r):
    for k in ti.static(range(3)):
        A[s, i, k] = r[k]


@ti.func
def load_quat(Q: T, s, i, dim: T):
    q = ti.Vector([1.0, 0.0, 0.0, 0.0])
    if ti.static(dim == 3):
        q = ti.Vector([Q[s, i, 0], Q[s, i, 1], Q[s, i, 2], Q[s, i, 3]])
    else:
        q = quat_from_angle_z(Q[s, i])
    return q


@ti.func
def load_axial(A: T, s, i, dim: T):
    """An axial 3-vector (angular velocity, torque) of body i at slot s: three components in
    3D, the z component alone in 2D."""
    w = ti.Vector([0.0, 0.0, 0.0])
    if ti.static(dim == 3):
        w = ti.Vector([A[s, i, 0], A[s, i, 1], A[s, i, 2]])
    else:
        w = ti.Vector([0.0, 0.0, A[s, i]])
    return w


@ti.func
def gravity(cs: T):
    return ti.Vector([cs[GX], cs[GY], cs[GZ]])


@ti.func
def body_force(V: T, mass: T, uF: T, cs: T, s, t, i, dim: T):
    """Gravity, the control force and (2D top-down tables) rolling resistance on body i (N)."""
    m = mass[i]
    f = m * gravity(cs) + load_vec(uF, t, i, dim)
    if cs[ROLL] > 0.0:
        f += smoothed_coulomb_friction(load_vec(V, s, i, dim), m * cs[ROLL], 1.0, cs[VEPS])
    return f


@ti.func
def angular_update(w, q, tau, m, iu, damp, dt, dim: T):
    """w' = (w + dt I^-1 (tau - w x I w)) / (1 + dt c_w), I = m * iu (principal, body frame)."""
    wn = ti.Vector([0.0, 0.0, (w[2] + dt * tau[2] / (m * iu[2])) / (1.0 + dt * damp)])
    if ti.static(dim == 3):
        inertia = m * iu
        gyro = w.cross(world_inertia_apply(q, inertia, w))
        wn = (w + dt * world_inertia_inv_apply(q, 1.0 / inertia, tau - gyro)) / (1.0 + dt * damp)
    return wn


@ti.func
def store_pose(X: T, Q: T, W: T, d, i, x, q, theta_rate, wn, dt, s, dim: T):
    for k in ti.static(range(dim)):
        X[d, i, k] = x[k]
    if ti.static(dim == 3):
        qn = quat_integrate(q, wn, dt)
        for k in ti.static(range(4)):
            Q[d, i, k] = qn[k]
        for k in ti.static(range(3)):
            W[d, i, k] = wn[k]
    else:
        Q[d, i] = Q[s, i] + dt * theta_rate
        W[d, i] = wn[2]


# ------------------------------------------------------------------------------- penalty model
# scratch: S0 = force (N), S1 = torque (N m), S4 = damping ratio zeta of each body (from its
# restitution); a pair's damping ratio is the mean of its two bodies' (a plane's is a constant)


@ti.func
def pen_force(n, depth, rel, zeta, mu, m_eff, m_t, load, k_explicit, c_explicit, cs: T):
    """Contact force on the first body (N): the shared contact law averaged over the time step
    (diffsim.contact.stepped_contact_normal_force) along n with stiffness k_n, onset depth
    delta and damping 2 zeta_dt sqrt(k_n m_eff), and smoothed Coulomb friction. m_eff:
    effective mass of the contact along n (kg, rotation included); zeta: the pair's
    continuous-time damping ratio, turned into zeta_dt for this time step
    (discrete_damping_ratio, omega dt = sqrt(k_n/m_eff) dt). The stepped law acts from the
    step before first touch (depth > -stepped_contact_reach) and weighs the onset and the
    release by the part of the step spent in contact, so that the restitution does not depend
    on when in a step a contact begins or ends.

    load (N, >= 0): the part of the constant applied load that presses the body into the
    contact (m_eff g_n against a static plane), carried by the contact while it touches.
    The spring-damper then resolves the impact alone, as in the restitution law, instead of
    also fighting gravity for the whole contact: without it a 1 kg ball at 2 m/s on
    k_n = 1e4 N/m bounced with e 0.46 instead of 0.5.

    m_t (kg): a lower bound on the contact's tangential effective mass. Regularised friction
    is a damper of rate mu f_n / (v_eps m_t) at small slip, stiff at an impact (f_n of tens of
    N): explicit steps of it diverged (gradients of 1e11 through a sphere-sphere impact at the
    defaults). The slip speed of the regularisation is raised to
    sqrt(v_eps^2 + (2 dt mu f_n / m_t)^2), which keeps that rate below 1/(2 dt) and leaves
    sliding friction (slip >> v_eps) Coulomb's. Points that press at once on one body act in
    parallel and their rates add: a box face resting on a plane or a box (face_points: 4, 2 in
    2D) shares the body's tangential mass among its corners, m_t / 4 each. Without that share
    the 3D tower of tests/rigid/test_rigid_boxes.py rocked at the Nyquist frequency
    (omega_x +-0.22 rad/s, slip +-0.02 m/s, sign flipping every step) and walked 0.6 mm/s.

    k_explicit (N/m), c_explicit (N s/m): a contact law the materials give directly (k > 0):
    then the normal force is contact_normal_force(depth, v_n, k, c, delta) exactly, with none
    of the calibration above (no restitution mapping, step averaging or load term)."""
    vn = rel.dot(n)
    vt = rel - vn * n
    kn = cs[KN]
    dt = cs[DT]
    c_n = 2.0 * discrete_damping_ratio(zeta, ti.sqrt(kn / m_eff) * dt) * ti.sqrt(kn * m_eff)
    fn = stepped_contact_normal_force(depth, vn, kn, c_n, load, cs[DELTA], dt)
    if k_explicit > 0.0:
        fn = contact_normal_force(depth, vn, k_explicit, c_explicit, cs[DELTA])
    v_slip = 2.0 * dt * mu * fn / m_t
    return fn * n + smoothed_coulomb_friction(vt, fn, mu, ti.sqrt(cs[VEPS] * cs[VEPS] + v_slip * v_slip))


@ti.func
def tangential_inverse_mass_bound(m, iu, r):
    """1/m + |r|^2 / (m min(iu)) (1/kg): an upper bound of a body's inverse effective mass at
    the point r (m) from its centre, along any direction."""
    return 1.0 / m + r.dot(r) / (m * ti.min(iu[0], ti.min(iu[1], iu[2])))


@ti.func
def inverse_mass_at(m, iu, q, r, n, dim: T):
    """1/m + (r x n) . I^-1 (r x n) (1/kg): inverse effective mass of a body along n at the
    point r (m) from its centre; I = m iu (principal, body frame)."""
    rn = r.cross(n)
    w = 1.0 / m + rn[2] * rn[2] / (m * iu[2])
    if ti.static(dim == 3):
        w = 1.0 / m + rn.dot(world_inertia_inv_apply(q, 1.0 / (m * iu), rn))
    return w


@ti.func
def pen_init(V: T, F: T, TQ: T, Z: T, mass: T, rest: T, uF: T, uT: T, cs: T, s, t, i, dim: T):
    store3(F, s, i, body_force(V, mass, uF, cs, s, t, i, dim))
    store3(TQ, s, i, load_axial(uT, t, i, dim))
    Z[s, i] = damping_ratio_from_restitution(rest[i])


def pair_points(mask, dim):
    """Contact points per candidate pair (compile time): box-box 8 incident corners (4 in 2D), box-capsule
    2 ends + 8 corners (4 in 2D), 1 for the other pairs."""
    if mask & M_BOX_BOX:
        return 4 if dim == 2 else 8
    if mask & M_BOX_CAPSULE:
        return 6 if dim == 2 else 10
    return 1


def box_corners(dim):
    return 4 if dim == 2 else 8


def face_points(dim):
    """Corners of a box face (compile time): the contact points a box resting on a face has at
    once, 4 (2 in 2D)."""
    return 2 if dim == 2 else 4


@ti.func
def pair_geometry(X: T, Q: T, shape: T, geom: T, s, a, b, c, dim: T, mask: T):
    """Contact point c of bodies a, b with shape[a] <= shape[b]: (normal from b to a, depth,
    point). Box-box and box-capsule pairs have several points (pair_points; a manifold of
    corners, :func:`~diffsim.collision.narrowphase.box_box_point`), the others one (c = 0);
    points a pair does not have, and pairs the scene lets pass through, give depth -1."""
    sa, sb = shape[a], shape[b]
    xa, xb = load_vec(X, s, a, dim), load_vec(X, s, b, dim)
    n = ti.Vector([0.0, 0.0, 0.0])
    depth = -1.0
    p = ti.Vector([0.0, 0.0, 0.0])
    if sa == SPHERE and sb == SPHERE and c == 0:
        n, depth, p = sphere_sphere(xa, geom[a, 0], xb, geom[b, 0])
    if ti.static(mask & M_BOX):  # noqa: SIM102 -- compile-time gate
        if sa == SPHERE and sb == BOX and c == 0:
            n, depth, p = sphere_box(xa, geom[a, 0], xb, load_quat(Q, s, b, dim),
                                     ti.Vector([geom[b, 0], geom[b, 1], geom[b, 2]]))
    if ti.static(mask & M_CAPSULE):
        if sa == SPHERE and sb == CAPSULE and c == 0:
            n, depth, p = capsule_sphere(xb, load_quat(Q, s, b, dim), geom[b, 0], geom[b, 1], xa, geom[a, 0])
        elif sa == CAPSULE and sb == CAPSULE and c == 0:
            n, depth, p = capsule_capsule(xa, load_quat(Q, s, a, dim), geom[a, 0], geom[a, 1],
                                          xb, load_quat(Q, s, b, dim), geom[b, 0], geom[b, 1])
    if ti.static(mask & M_BOX_BOX):  # noqa: SIM102 -- compile-time gate
        if sa == BOX and sb == BOX:
            n, depth, p = box_box_point(xa, load_quat(Q, s, a, dim), ti.Vector([geom[a, 0], geom[a, 1], geom[a, 2]]),
                                        xb, load_quat(Q, s, b, dim), ti.Vector([geom[b, 0], geom[b, 1], geom[b, 2]]),
                                        c, dim)
    if ti.static(mask & M_BOX_CAPSULE):  # noqa: SIM102 -- compile-time gate
        if sa == BOX and sb == CAPSULE:
            n, depth, p = box_capsule_point(xa, load_quat(Q, s, a, dim),
                                            ti.Vector([geom[a, 0], geom[a, 1], geom[a, 2]]),
                                            xb, load_quat(Q, s, b, dim), geom[b, 0], geom[b, 1], c,
                                            ti.static(box_corners(dim)))
    return n, depth, p


@ti.func
def series(a, b):
    """a b / (a + b): two springs (or dampers) in series; the other one alone when one is 0."""
    out = a + b
    if a > 0.0 and b > 0.0:
        out = a * b / (a + b)
    return out


@ti.func
def explicit_pair_law(ka, ca, kb, cb):
    """(k, c) of a contact between two materials that give their own stiffness k (N/m) and
    damping c (N s/m): in series when both do, the one that does alone, (0, 0) when neither."""
    return series(ka, kb), series(ca, cb)


@ti.func
def pen_pair(X: T, Q: T, V: T, W: T, F: T, TQ: T, Z: T, mass: T, fric: T, kc: T, cc: T, shape: T, geom: T, iu: T,
             cs: T, s, i, j, c, dim: T, mask: T):
    """Contact point c of candidate pair (i, j) and its penalty force on both bodies."""
    a, b = i, j
    if shape[i] > shape[j]:  # canonical order: the lower shape code first
        a, b = j, i
    n, depth, p = pair_geometry(X, Q, shape, geom, s, a, b, c, dim, mask)
    xa, xb = load_vec(X, s, a, dim), load_vec(X, s, b, dim)
    ra, rb = p - xa, p - xb
    rel = (load_vec(V, s, a, dim) + load_axial(W, s, a, dim).cross(ra)) - \
          (load_vec(V, s, b, dim) + load_axial(W, s, b, dim).cross(rb))
    if depth > -stepped_contact_reach(rel.dot(n), cs[KN], 0.0, cs[DELTA], cs[DT]):
        wa = inverse_mass_at(mass[a], ti.Vector([iu[a, 0], iu[a, 1], iu[a, 2]]), load_quat(Q, s, a, dim), ra, n, dim)
        wb = inverse_mass_at(mass[b], ti.Vector([iu[b, 0], iu[b, 1], iu[b, 2]]), load_quat(Q, s, b, dim), rb, n, dim)
        iua, iub = ti.Vector([iu[a, 0], iu[a, 1], iu[a, 2]]), ti.Vector([iu[b, 0], iu[b, 1], iu[b, 2]])
        m_t = 1.0 / (tangential_inverse_mass_bound(mass[a], iua, ra) + tangential_inverse_mass_bound(mass[b], iub, rb))
        if shape[a] == BOX and shape[b] == BOX:
            m_t = m_t / ti.static(face_points(dim))  # a face on a face presses at once on all its corners
        k_pair, c_pair = explicit_pair_law(kc[a], cc[a], kc[b], cc[b])
        fc = pen_force(n, depth, rel, 0.5 * (Z[s, a] + Z[s, b]), 0.5 * (fric[a] + fric[b]), 1.0 / (wa + wb), m_t,
                       0.0, k_pair, c_pair, cs)
        ta, tb = ra.cross(fc), rb.cross(fc)
        for k in ti.static(range(3)):
            F[s, a, k] += fc[k]
            TQ[s, a, k] += ta[k]
            F[s, b, k] -= fc[k]
            TQ[s, b, k] -= tb[k]


def plane_points(mask, dim):
    """Contact points per (body, plane) item (compile time): 8 box corners (4 in 2D), 2 capsule
    end spheres, 1 for spheres."""
    if mask & M_BOX:
        return 4 if dim == 2 else 8
    return 2 if mask & M_CAPSULE else 1


@ti.func
def plane_geometry(X: T, Q: T, shape: T, geom: T, planes: T, s, i, pl, c, dim: T, mask: T):
    """Contact point c of body i against plane pl: (normal, depth, point); depth -1 when body i
    has no point c (a sphere has 1, a capsule 2, a box 8 corners, 4 in 2D)."""
    pn = ti.Vector([planes[pl, 0], planes[pl, 1], planes[pl, 2]])
    off = planes[pl, 3]
    x = load_vec(X, s, i, dim)
    si = shape[i]
    n = pn
    depth = -1.0
    p = x
    if si == SPHERE and c == 0:
        n, depth, p = sphere_plane(x, geom[i, 0], pn, off)
    if ti.static(mask & M_CAPSULE):  # noqa: SIM102 -- compile-time gate
        if si == CAPSULE and c < 2:
            ax = quat_rotate(load_quat(Q, s, i, dim), ti.Vector([geom[i, 1], 0.0, 0.0]))
            n, depth, p = sphere_plane(x + (2.0 * c - 1.0) * ax, geom[i, 0], pn, off)
    if ti.static(mask & M_BOX):  # noqa: SIM102 -- compile-time gate
        if si == BOX:
            sx = 2.0 * (c & 1) - 1.0
            sy = 2.0 * ((c >> 1) & 1) - 1.0
            sz = 2.0 * ((c >> 2) & 1) - 1.0
            corner = x + quat_rotate(load_quat(Q, s, i, dim),
                                     ti.Vector([sx * geom[i, 0], sy * geom[i, 1], sz * geom[i, 2]]))
            n, depth, p = point_plane(corner, pn, off)
    return n, depth, p


@ti.func
def pen_plane(X: T, Q: T, V: T, W: T, F: T, TQ: T, Z: T, mass: T, fric: T, kc: T, cc: T, shape: T, geom: T, iu: T,
              planes: T, prest: T, pfric: T, cs: T, s, i, pl, c, dim: T, mask: T):
    """Contact point c of body i against plane pl and its penalty force."""
    n, depth, p = plane_geometry(X, Q, shape, geom, planes, s, i, pl, c, dim, mask)
    ra = p - load_vec(X, s, i, dim)
    rel = load_vec(V, s, i, dim) + load_axial(W, s, i, dim).cross(ra)
    w = inverse_mass_at(mass[i], ti.Vector([iu[i, 0], iu[i, 1], iu[i, 2]]), load_quat(Q, s, i, dim), ra, n, dim)
    m_eff = 1.0 / w
    load = m_eff * ti.max(-gravity(cs).dot(n), 0.0)  # gravity pressing the body onto the plane
    if depth > -stepped_contact_reach(rel.dot(n), cs[KN], load, cs[DELTA], cs[DT]):
        m_t = 1.0 / tangential_inverse_mass_bound(mass[i], ti.Vector([iu[i, 0], iu[i, 1], iu[i, 2]]), ra)
        if shape[i] == BOX:
            m_t = m_t / ti.static(face_points(dim))  # a face on the plane presses at once on all its corners
        zeta_plane = damping_ratio_from_restitution(prest[pl])
        fc = pen_force(n, depth, rel, 0.5 * (Z[s, i] + zeta_plane), 0.5 * (fric[i] + pfric[pl]), m_eff, m_t, load,
                       kc[i], cc[i], cs)
        ta = ra.cross(fc)
        for k in ti.static(range(3)):
            F[s, i, k] += fc[k]
            TQ[s, i, k] += ta[k]


@ti.func
def pen_integrate(X: T, Q: T, V: T, W: T, F: T, TQ: T, mass: T, lind: T, angd: T, iu: T, cs: T, s, d, i,
                  dim: T):
    dt = cs[DT]
    m = mass[i]
    vn = (load_vec(V, s, i, dim) + dt * load3(F, s, i) / m) / (1.0 + dt * lind[i])
    q = load_quat(Q, s, i, dim)
    iuv = ti.Vector([iu[i, 0], iu[i, 1], iu[i, 2]])
    wn = angular_update(load_axial(W, s, i, dim), q, load3(TQ, s, i), m, iuv, angd[i], dt, dim)
    for k in ti.static(range(dim)):
        V[d, i, k] = vn[k]
    store_pose(X, Q, W, d, i, load_vec(X, s, i, dim) + dt * vn, q, wn[2], wn, dt, s, dim)


# ------------------------------------------------------------------------------- impulse model
# scratch: S0 = predicted velocity v*, S1 = predicted angular velocity w*, S2 = dv, S3 = dx,
# DW = dw (angular velocity change of the friction impulses)


@ti.func
def imp_predict(X: T, Q: T, V: T, W: T, S0: T, S1: T, S2: T, S3: T, DW: T, mass: T, lind: T, angd: T, uF: T, uT: T,
                iu: T, cs: T, s, t, i, dim: T):
    dt = cs[DT]
    m = mass[i]
    f = body_force(V, mass, uF, cs, s, t, i, dim)
    store3(S0, s, i, (load_vec(V, s, i, dim) + dt * f / m) / (1.0 + dt * lind[i]))
    iuv = ti.Vector([iu[i, 0], iu[i, 1], iu[i, 2]])
    store3(S1, s, i, angular_update(load_axial(W, s, i, dim), load_quat(Q, s, i, dim),
                                    load_axial(uT, t, i, dim), m, iuv, angd[i], dt, dim))
    store3(S2, s, i, ti.Vector([0.0, 0.0, 0.0]))
    store3(S3, s, i, ti.Vector([0.0, 0.0, 0.0]))
    store3(DW, s, i, ti.Vector([0.0, 0.0, 0.0]))


@ti.func
def angular_kick(m, iu, q, r, impulse, dim: T):
    """Angular velocity change (rad/s) of a body (mass m, unit inertia iu, orientation q) from an
    impulse (N s) at the point r (m) from its centre: I^-1 (r x J)."""
    tq = r.cross(impulse)
    dw = ti.Vector([0.0, 0.0, tq[2] / (m * iu[2])])
    if ti.static(dim == 3):
        dw = world_inertia_inv_apply(q, 1.0 / (m * iu), tq)
    return dw


@ti.func
def imp_pair(X: T, Q: T, V: T, S0: T, S1: T, S2: T, S3: T, DW: T, mass: T, rest: T, fric: T, geom: T, iu: T, cs: T,
             s, a, b, dim: T):
    """Sphere-sphere impulse when the spheres drifting at v* meet within the step (a swept test:
    no tunnelling at any speed) or the predicted positions x + dt v* overlap, along the normal
    at the moment of impact (sphere_time_of_impact), with TOI; then Coulomb friction at the
    contact point (coulomb_friction_impulse) on the tangential slip after the normal impulse.
    The tangential inverse effective mass is tangential_inverse_mass_bound, which does not
    depend on the slip's direction (a direction taken from a vanishing slip made the gradient
    at rest wrong): exact for balls of isotropic inertia, an upper bound otherwise, so that
    the sticking impulse never overshoots (the slip then stops over a few steps)."""
    dt = cs[DT]
    va, vb = load3(S0, s, a), load3(S0, s, b)
    xa, xb = load_vec(X, s, a, dim), load_vec(X, s, b, dim)
    n, depth, _p = sphere_sphere(xa + dt * va, geom[a, 0], xb + dt * vb, geom[b, 0])
    ni, tau, ok = sphere_time_of_impact(xa - xb, va - vb, geom[a, 0] + geom[b, 0], dt)
    if depth > 0.0 or ok == 1:
        wa, wb = 1.0 / mass[a], 1.0 / mass[b]
        e = 0.5 * (rest[a] + rest[b])
        j = 0.0
        if ok == 1:
            n = ni
            v_n = (va - vb).dot(n)
            if v_n < 0.0:
                j = impulse_at(v_n, (load_vec(V, s, a, dim) - load_vec(V, s, b, dim)).dot(n), tau, wa, wb, e, dt)
        else:  # overlapping since the start of the step: resolve along the end-of-step normal
            j, tau = normal_impulse(-depth, (va - vb).dot(n), (load_vec(V, s, a, dim) - load_vec(V, s, b, dim)).dot(n),
                                    wa, wb, e, dt, cs[VMIN])
        ra, rb = -geom[a, 0] * n, geom[b, 0] * n
        qa, qb = load_quat(Q, s, a, dim), load_quat(Q, s, b, dim)
        iua, iub = ti.Vector([iu[a, 0], iu[a, 1], iu[a, 2]]), ti.Vector([iu[b, 0], iu[b, 1], iu[b, 2]])
        slip = (va + load3(S1, s, a).cross(ra)) - (vb + load3(S1, s, b).cross(rb))
        v_t = slip - slip.dot(n) * n
        w_t = tangential_inverse_mass_bound(mass[a], iua, ra) + tangential_inverse_mass_bound(mass[b], iub, rb)
        jt = ti.Vector([0.0, 0.0, 0.0])
        if j > 0.0:
            jt = coulomb_friction_impulse(v_t, w_t, j, 0.5 * (fric[a] + fric[b]))
        da, db = (j * wa) * n + wa * jt, (-j * wb) * n - wb * jt
        dwa = angular_kick(mass[a], iua, qa, ra, jt, dim)
        dwb = angular_kick(mass[b], iub, qb, rb, -jt, dim)
        for k in ti.static(range(3)):
            S2[s, a, k] += da[k]
            S3[s, a, k] += tau * da[k]
            S2[s, b, k] += db[k]
            S3[s, b, k] += tau * db[k]
            DW[s, a, k] += dwa[k]
            DW[s, b, k] += dwb[k]


@ti.func
def imp_plane(X: T, Q: T, V: T, S0: T, S1: T, S2: T, S3: T, DW: T, mass: T, rest: T, fric: T, geom: T, iu: T,
              planes: T, prest: T, pfric: T, cs: T, s, i, pl, dim: T):
    """Sphere-plane impulse with TOI (normal_impulse), then Coulomb friction at the contact point."""
    dt = cs[DT]
    pn = ti.Vector([planes[pl, 0], planes[pl, 1], planes[pl, 2]])
    v = load3(S0, s, i)
    m = mass[i]
    n, depth, _p = sphere_plane(load_vec(X, s, i, dim) + dt * v, geom[i, 0], pn, planes[pl, 3])
    j, tau = normal_impulse(-depth, v.dot(n), load_vec(V, s, i, dim).dot(n), 1.0 / m, 0.0,
                            0.5 * (rest[i] + prest[pl]), dt, cs[VMIN])
    r = -geom[i, 0] * n
    q = load_quat(Q, s, i, dim)
    iuv = ti.Vector([iu[i, 0], iu[i, 1], iu[i, 2]])
    slip = v + load3(S1, s, i).cross(r)
    v_t = slip - slip.dot(n) * n
    jt = ti.Vector([0.0, 0.0, 0.0])
    if j > 0.0:  # friction only in contact (exactly zero in flight)
        jt = coulomb_friction_impulse(v_t, tangential_inverse_mass_bound(m, iuv, r), j, 0.5 * (fric[i] + pfric[pl]))
    dv = (j / m) * n + jt / m
    dw = angular_kick(m, iuv, q, r, jt, dim)
    for k in ti.static(range(3)):
        S2[s, i, k] += dv[k]
        S3[s, i, k] += tau * dv[k]
        DW[s, i, k] += dw[k]


@ti.func
def velocity_dependent_acceleration(v, c_lin, cs: T):
    """Rolling resistance (2D top-down tables) and linear damping (m/s^2) at velocity v."""
    a = -c_lin * v
    if cs[ROLL] > 0.0:
        a += smoothed_coulomb_friction(v, cs[ROLL], 1.0, cs[VEPS])
    return a


@ti.func
def imp_integrate(X: T, Q: T, V: T, W: T, S0: T, S1: T, S2: T, S3: T, DW: T, lind: T, cs: T, s, d, i, dim: T):
    """v' = v* + dv, x' = x + dt v* + tau dv; the step's kick of the velocity-dependent forces
    (rolling resistance, linear damping) was taken at the velocity before the impact, so the
    part of the step after it (tau) gets the difference a(v* + dv) - a(v*): an impact at the end
    of a step and one at the start of the next then give the same state (tau from the summed
    tau dv, exact for one impact per body and step)."""
    dt = cs[DT]
    vs = load3(S0, s, i)
    dv = load3(S2, s, i)
    dx = load3(S3, s, i)
    vn = vs + dv
    xn = load_vec(X, s, i, dim) + dt * vs + dx
    dv2 = dv.dot(dv)
    if dv2 > 0.0:
        tau = dx.dot(dv) / dv2
        corr = tau * (velocity_dependent_acceleration(vn, lind[i], cs) - velocity_dependent_acceleration(vs, lind[i], cs))
        vn += corr
        xn += tau * corr
    wn = load3(S1, s, i) + load3(DW, s, i)
    for k in ti.static(range(dim)):
        V[d, i, k] = vn[k]
    store_pose(X, Q, W, d, i, xn, load_quat(Q, s, i, dim), wn[2], wn, dt, s, dim)


# ------------------------------------------------------------------------------- kernels

_A = ti.types.ndarray()


@ti.kernel
def penalty_init(dim: T, mask: T, X: _A, Q: _A, V: _A, W: _A, S0: _A, S1: _A, S2: _A, S3: _A, S4: _A, DW: _A, mass: _A,
                 rest: _A, fric: _A, lind: _A, angd: _A, kc: _A, cc: _A, uF: _A, uT: _A, shape: _A, geom: _A, iu: _A,
                 planes: _A, prest: _A, pfric: _A, cs: _A, pairs: _A, pcount: _A, ps: ti.i32, nplanes: ti.i32, s: ti.i32, d: ti.i32,
                 t: ti.i32):
    for i in range(X.shape[1]):
        pen_init(V, S0, S1, S4, mass, rest, uF, uT, cs, s, t, i, dim)


@ti.kernel
def penalty_pairs(dim: T, mask: T, X: _A, Q: _A, V: _A, W: _A, S0: _A, S1: _A, S2: _A, S3: _A, S4: _A, DW: _A, mass: _A,
                  rest: _A, fric: _A, lind: _A, angd: _A, kc: _A, cc: _A, uF: _A, uT: _A, shape: _A, geom: _A, iu: _A,
                  planes: _A, prest: _A, pfric: _A, cs: _A, pairs: _A, pcount: _A, ps: ti.i32, nplanes: ti.i32, s: ti.i32, d: ti.i32,
                  t: ti.i32):
    for k, c in ti.ndrange(pairs.shape[1], ti.static(pair_points(mask, dim))):
        if k < pcount[ps]:
            pen_pair(X, Q, V, W, S0, S1, S4, mass, fric, kc, cc, shape, geom, iu, cs, s, pairs[ps, k, 0], pairs[ps, k, 1],
                     c, dim, mask)


@ti.kernel
def penalty_planes(dim: T, mask: T, X: _A, Q: _A, V: _A, W: _A, S0: _A, S1: _A, S2: _A, S3: _A, S4: _A, DW: _A, mass: _A,
                   rest: _A, fric: _A, lind: _A, angd: _A, kc: _A, cc: _A, uF: _A, uT: _A, shape: _A, geom: _A, iu: _A,
                   planes: _A, prest: _A, pfric: _A, cs: _A, pairs: _A, pcount: _A, ps: ti.i32, nplanes: ti.i32, s: ti.i32, d: ti.i32,
                   t: ti.i32):
    for i, pl, c in ti.ndrange(X.shape[1], nplanes, ti.static(plane_points(mask, dim))):
        pen_plane(X, Q, V, W, S0, S1, S4, mass, fric, kc, cc, shape, geom, iu, planes, prest, pfric, cs, s, i, pl, c, dim, mask)


@ti.kernel
def penalty_integrate(dim: T, mask: T, X: _A, Q: _A, V: _A, W: _A, S0: _A, S1: _A, S2: _A, S3: _A, S4: _A, DW: _A, mass: _A,
                      rest: _A, fric: _A, lind: _A, angd: _A, kc: _A, cc: _A, uF: _A, uT: _A, shape: _A, geom: _A, iu: _A,
                      planes: _A, prest: _A, pfric: _A, cs: _A, pairs: _A, pcount: _A, ps: ti.i32, nplanes: ti.i32, s: ti.i32,
                      d: ti.i32, t: ti.i32):
    for i in range(X.shape[1]):
        pen_integrate(X, Q, V, W, S0, S1, mass, lind, angd, iu, cs, s, d, i, dim)


@ti.kernel
def penalty_advance(dim: T, mask: T, X: _A, Q: _A, V: _A, W: _A, S0: _A, S1: _A, S2: _A, S3: _A, S4: _A, DW: _A, mass: _A,
                    rest: _A, fric: _A, lind: _A, angd: _A, kc: _A, cc: _A, uF: _A, uT: _A, shape: _A, geom: _A, iu: _A,
                    planes: _A, prest: _A, pfric: _A, cs: _A, pairs: _A, pcount: _A, ps: ti.i32, nplanes: ti.i32, slot0: ti.i32,
                    t0: ti.i32, t1: ti.i32):
    """Steps t0..t1-1 in one launch (state t in slot slot0 + t - t0), one flat serial loop."""
    for _ in range(1):
        n = X.shape[1]
        cap = pairs.shape[1]
        npts = ti.static(plane_points(mask, dim))
        npp = ti.static(pair_points(mask, dim))
        npl = n * nplanes * npts
        ncp = cap * npp
        width = n + ncp + npl + n
        for it in range((t1 - t0) * width):
            k = it // width
            j = it % width
            s = slot0 + k
            if j < n:
                pen_init(V, S0, S1, S4, mass, rest, uF, uT, cs, s, t0 + k, j, dim)
            elif j < n + ncp:
                c = (j - n) // npp
                if c < pcount[ps]:
                    pen_pair(X, Q, V, W, S0, S1, S4, mass, fric, kc, cc, shape, geom, iu, cs, s, pairs[ps, c, 0],
                             pairs[ps, c, 1], (j - n) % npp, dim, mask)
            elif j < n + ncp + npl:
                c = j - n - ncp
                pen_plane(X, Q, V, W, S0, S1, S4, mass, fric, kc, cc, shape, geom, iu, planes, prest, pfric, cs, s, c // (nplanes * npts),
                          (c // npts) % nplanes, c % npts, dim, mask)
            else:
                pen_integrate(X, Q, V, W, S0, S1, mass, lind, angd, iu, cs, s, s + 1, j - n - ncp - npl, dim)


@ti.kernel
def impulse_predict(dim: T, mask: T, X: _A, Q: _A, V: _A, W: _A, S0: _A, S1: _A, S2: _A, S3: _A, S4: _A, DW: _A, mass: _A,
                    rest: _A, fric: _A, lind: _A, angd: _A, kc: _A, cc: _A, uF: _A, uT: _A, shape: _A, geom: _A, iu: _A,
                    planes: _A, prest: _A, pfric: _A, cs: _A, pairs: _A, pcount: _A, ps: ti.i32, nplanes: ti.i32, s: ti.i32, d: ti.i32,
                    t: ti.i32):
    for i in range(X.shape[1]):
        imp_predict(X, Q, V, W, S0, S1, S2, S3, DW, mass, lind, angd, uF, uT, iu, cs, s, t, i, dim)


@ti.kernel
def impulse_pairs(dim: T, mask: T, X: _A, Q: _A, V: _A, W: _A, S0: _A, S1: _A, S2: _A, S3: _A, S4: _A, DW: _A, mass: _A,
                  rest: _A, fric: _A, lind: _A, angd: _A, kc: _A, cc: _A, uF: _A, uT: _A, shape: _A, geom: _A, iu: _A,
                  planes: _A, prest: _A, pfric: _A, cs: _A, pairs: _A, pcount: _A, ps: ti.i32, nplanes: ti.i32, s: ti.i32, d: ti.i32,
                  t: ti.i32):
    for k in range(pairs.shape[1]):
        if k < pcount[ps]:
            imp_pair(X, Q, V, S0, S1, S2, S3, DW, mass, rest, fric, geom, iu, cs, s, pairs[ps, k, 0], pairs[ps, k, 1], dim)


@ti.kernel
def impulse_planes(dim: T, mask: T, X: _A, Q: _A, V: _A, W: _A, S0: _A, S1: _A, S2: _A, S3: _A, S4: _A, DW: _A, mass: _A,
                   rest: _A, fric: _A, lind: _A, angd: _A, kc: _A, cc: _A, uF: _A, uT: _A, shape: _A, geom: _A, iu: _A,
                   planes: _A, prest: _A, pfric: _A, cs: _A, pairs: _A, pcount: _A, ps: ti.i32, nplanes: ti.i32, s: ti.i32, d: ti.i32,
                   t: ti.i32):
    for i, pl in ti.ndrange(X.shape[1], nplanes):
        imp_plane(X, Q, V, S0, S1, S2, S3, DW, mass, rest, fric, geom, iu, planes, prest, pfric, cs, s, i, pl, dim)


@ti.kernel
def impulse_integrate(dim: T, mask: T, X: _A, Q: _A, V: _A, W: _A, S0: _A, S1: _A, S2: _A, S3: _A, S4: _A, DW: _A, mass: _A,
                      rest: _A, fric: _A, lind: _A, angd: _A, kc: _A, cc: _A, uF: _A, uT: _A, shape: _A, geom: _A, iu: _A,
                      planes: _A, prest: _A, pfric: _A, cs: _A, pairs: _A, pcount: _A, ps: ti.i32, nplanes: ti.i32, s: ti.i32,
                      d: ti.i32, t: ti.i32):
    for i in range(X.shape[1]):
        imp_integrate(X, Q, V, W, S0, S1, S2, S3, DW, lind, cs, s, d, i, dim)


@ti.kernel
def impulse_advance(dim: T, mask: T, X: _A, Q: _A, V: _A, W: _A, S0: _A, S1: _A, S2: _A, S3: _A, S4: _A, DW: _A, mass: _A,
                    rest: _A, fric: _A, lind: _A, angd: _A, kc: _A, cc: _A, uF: _A, uT: _A, shape: _A, geom: _A, iu: _A,
                    planes: _A, prest: _A, pfric: _A, cs: _A, pairs: _A, pcount: _A, ps: ti.i32, nplanes: ti.i32, slot0: ti.i32,
                    t0: ti.i32, t1: ti.i32):
    for _ in range(1):
        n = X.shape[1]
        cap = pairs.shape[1]
        npl = n * nplanes
        width = n + cap + npl + n
        for it in range((t1 - t0) * width):
            k = it // width
            j = it % width
            s = slot0 + k
            if j < n:
                imp_predict(X, Q, V, W, S0, S1, S2, S3, DW, mass, lind, angd, uF, uT, iu, cs, s, t0 + k, j, dim)
            elif j < n + cap:
                c = j - n
                if c < pcount[ps]:
                    imp_pair(X, Q, V, S0, S1, S2, S3, DW, mass, rest, fric, geom, iu, cs, s, pairs[ps, c, 0], pairs[ps, c, 1], dim)
            elif j < n + cap + npl:
                c = j - n - cap
                imp_plane(X, Q, V, S0, S1, S2, S3, DW, mass, rest, fric, geom, iu, planes, prest, pfric, cs, s, c // nplanes, c % nplanes, dim)
            else:
                imp_integrate(X, Q, V, W, S0, S1, S2, S3, DW, lind, cs, s, s + 1, j - n - cap - npl, dim)


@ti.kernel
def zero_scratch_grads(S0: _A, S1: _A, S2: _A, S3: _A, S4: _A, DW: _A, s0: ti.i32, s1: ti.i32):
    """Adjoint bookkeeping: scratch adjoints of slots [s0, s1) start from zero in a reverse sweep."""
    for s, i, k in ti.ndrange((s0, s1), S0.shape[1], 3):
        if k == 0:
            S4[s, i] = 0.0
        S0[s, i, k] = 0.0
        S1[s, i, k] = 0.0
        S2[s, i, k] = 0.0
        S3[s, i, k] = 0.0
        DW[s, i, k] = 0.0


@ti.kernel
def max_drift(X: _A, slot0: ti.i32, s1: ti.i32, dim: T) -> ti.f64:
    """Largest distance (m) any body moved from its position in slot0 over slots (slot0, s1]."""
    worst = 0.0
    for s, i in ti.ndrange((slot0 + 1, s1 + 1), X.shape[1]):
        d = load_vec(X, s, i, dim) - load_vec(X, slot0, i, dim)
        ti.atomic_max(worst, d.norm())
    return worst
