"""Kernels of the rigid-body step: per-item ``ti.func``s and the kernels that loop over them.

One step from slot s to slot d (semi-implicit Euler, world-frame angular velocity):

    penalty model                                impulse model (spheres and planes)
    F, tau = m g + u_F, u_tau  (body loads)      v*, w* = v, w advanced by forces (predict)
    F, tau += contact forces   (pair and         dv, dx += impulses with TOI at the
              on pair and plane  plane contacts)         predicted positions x + dt v*
    v' = (v + dt F/m) / (1 + dt c_v)             v' = v* + dv
    w' = (w + dw) / (1 + dt c_w)                 w' = w* + dw
      (I + dt/2 J) dw = dt (tau - w x I w), J = d(w x I w)/dw  (linearly implicit midpoint)
    x' = x + dt v',  q' = normalize(q + dt/2 (0, w') q)  x' = x + dt v* + dx  (integrate)

In 2D (the x-y plane) every vector is a 3-vector with z = 0, the orientation is an angle
(theta' = theta + dt w'_z) and inertia is I_zz alone. The same ``ti.func``s serve the
per-step kernels (one parallel launch per phase) and the fused ``*_advance`` kernels, which
run many steps in one launch as one flat serial loop over (step, item): items of a step are
its bodies (body loads or predict), its candidate pairs, its (body, plane) pairs and its
bodies again (integrate). Iterations feed later ones only through global memory, which
reverse mode handles (a flat loop, not sibling loops; TAICHI.md addendum). The impulse
model's fused forward (never differentiated) runs the same items as four loops a step and
lists the items that acted; its gradient runs the flat loop over that list alone
(:func:`impulse_advance`).

Each contact model has its own per-slot workspace, written once per forward pass
(:data:`PENALTY_WORKSPACE`, :data:`IMPULSE_WORKSPACE`: name -> per-body shape). The penalty
model's damping ratios zeta(e) are a function of the parameters alone: :func:`damping_ratios`
computes them once before the steps that read them (with a hand-written adjoint).

Compile time. The gradient of a fused kernel is one large Taichi function, and Taichi 1.7.4's
IR passes (store-to-load forwarding over the control-flow graph) took time that grew about
with the square of its size: without plane contacts the bowling scene's gradient compiled in
12 s, without pair contacts in 9 s, with both in 30 s. So the kernels here compile only what
the scene has (``mask``: its shapes, its kinds of pairs, rolling resistance, explicit contact
laws; a scene of one kind of pair or one shape tests none at run time), choose with
``ti.select`` rather than runtime branches (a local assigned in a runtime branch becomes an
adstack and splits the graph), give each ``ti.func`` one ``return`` per compile-time branch
(no local assigned twice), and rotate vectors into a body's frame once per contact.
Discrete choices with no derivative are made apart from the differentiated code: a box-box
pair's separating-axis feature (:func:`choose_pair_feature`, an int per pair and slot) comes
from a forward-only launch or from the fused kernel's forward (:func:`penalty_advance` with
``choose``), and the gradient kernels read it and hold the chosen feature's formulas alone
(the 3D box-box pair kernel's gradient 55 -> 10 CPU s cold, the stacking scene's fused one
17.7 -> 10.5 with the 2D form of the geometry).

Arguments, in the order of Warp's ``integrate_bodies``: the compile-time switches (``dim``,
``mask``), then what the kernel reads (state ``position orientation velocity
angular_velocity`` at slot s; the model's ``shape geometry unit_inertia planes``; the
parameters, controls and workspace it uses; ``consts``; a pair list), then the slot and time
indices, and last what it writes (workspace entries, or the state arrays at slot d). Names
are the physics: ``force`` (N), ``torque`` (N m), ``damping_ratio``, ``predicted_velocity``
(m/s) and so on; the states are read at slot s and written at slot d of the same arrays.
"""

import taichi as ti

from ..collision.impulse import coulomb_friction_impulse, impulse_at, normal_impulse, sphere_time_of_impact
from ..collision.narrowphase import (
    box_box_feature,
    box_box_feature_from_axes,
    box_box_point_of,
    box_capsule_point,
    capsule_capsule,
    capsule_sphere,
    point_plane,
    sphere_box,
    sphere_plane,
    sphere_sphere,
    table_axis,
)
from ..collision.vector import dot3
from ..contact import (
    contact_normal_force,
    damping_ratio_and_slope,
    discrete_damping_ratio,
    smooth_relu,
    smoothed_coulomb_friction,
    stable_damping_ratio,
    stepped_contact_normal_force,
    stepped_contact_reach,
)
from ..rotations import (
    quat_from_angle_z,
    quat_integrate,
    quat_rotate,
    quat_rotate_inv,
    world_inertia_inv_apply,
)
from .shapes import BOX, CAPSULE, SPHERE

# consts: an ndarray of reals with these entries (names of the system's scalar settings)
CONSTS = ("dt", "stiffness", "friction_smoothing", "gravity_x", "gravity_y", "gravity_z", "toi_min_speed",
          "rolling_resistance", "onset_depth", "baumgarte", "slop", "bounce_threshold", "speculative_distance")
DT, KN, VEPS, GX, GY, GZ, VMIN, ROLL, DELTA, BAUMGARTE, SLOP, BOUNCE, SPECULATIVE = range(len(CONSTS))
N_CONSTS = len(CONSTS)

# Per-slot workspace of each contact model: name -> per-body shape (after (slots, n))
PENALTY_WORKSPACE = {
    "force": (3,),          # N: gravity, controls and contact forces on each body
    "torque": (3,),         # N m: about the centre of mass, world frame
}
IMPULSE_WORKSPACE = {
    "predicted_velocity": (3,),          # m/s: v* before impulses
    "predicted_angular_velocity": (3,),  # rad/s: w* before impulses
    "velocity_change": (3,),             # m/s: dv, the impulses' sum
    "position_correction": (3,),         # m: dx, sum of tau dv (the part of the step after each impact)
    "angular_velocity_change": (3,),     # rad/s: dw of the friction impulses
}

M_SPHERE, M_BOX, M_CAPSULE = 1 << SPHERE, 1 << BOX, 1 << CAPSULE
# compile-time flags beside the shapes: the kinds of body pairs the scene has (and lets collide);
# the fused step compiles the narrow phase of these kinds alone
M_BOX_BOX, M_BOX_CAPSULE = 1 << 3, 1 << 4
M_SPHERE_SPHERE, M_SPHERE_BOX, M_SPHERE_CAPSULE, M_CAPSULE_CAPSULE = 1 << 5, 1 << 6, 1 << 7, 1 << 8
M_PAIRS = M_BOX_BOX | M_BOX_CAPSULE | M_SPHERE_SPHERE | M_SPHERE_BOX | M_SPHERE_CAPSULE | M_CAPSULE_CAPSULE
PAIR_KINDS = {(SPHERE, SPHERE): M_SPHERE_SPHERE, (SPHERE, BOX): M_SPHERE_BOX, (SPHERE, CAPSULE): M_SPHERE_CAPSULE,
              (CAPSULE, CAPSULE): M_CAPSULE_CAPSULE, (BOX, BOX): M_BOX_BOX, (BOX, CAPSULE): M_BOX_CAPSULE}
M_SHAPES = M_SPHERE | M_BOX | M_CAPSULE
M_ROLLING = 1 << 9  # the scene has rolling resistance (2D top-down tables): compiled only then
M_EXPLICIT = 1 << 10  # a body gives its own contact law (contact_stiffness > 0): compiled only then

T = ti.template()

# ------------------------------------------------------------------------------- loads, stores


@ti.func
def load_vec(A: T, s, i, dim: T):
    """A[s, i] as a 3-vector (z = 0 in 2D)."""
    if ti.static(dim == 3):  # a return per static branch: no local assigned twice (module docstring)
        return ti.Vector([A[s, i, 0], A[s, i, 1], A[s, i, 2]])
    else:
        return ti.Vector([A[s, i, 0], A[s, i, 1], 0.0])


@ti.func
def load3(A: T, s, i):
    return ti.Vector([A[s, i, 0], A[s, i, 1], A[s, i, 2]])


@ti.func
def store3(A: T, s, i, r):
    for k in ti.static(range(3)):
        A[s, i, k] = r[k]


@ti.func
def row3(A: T, i):
    """Row i of an (n, 3) table (a body's unit inertia) as a 3-vector."""
    return ti.Vector([A[i, 0], A[i, 1], A[i, 2]])


@ti.func
def load_quat(Q: T, s, i, dim: T):
    if ti.static(dim == 3):
        return ti.Vector([Q[s, i, 0], Q[s, i, 1], Q[s, i, 2], Q[s, i, 3]])
    else:
        return quat_from_angle_z(Q[s, i])


@ti.func
def load_axial(A: T, s, i, dim: T):
    """An axial 3-vector (angular velocity, torque) of body i at slot s: three components in
    3D, the z component alone in 2D."""
    if ti.static(dim == 3):
        return ti.Vector([A[s, i, 0], A[s, i, 1], A[s, i, 2]])
    else:
        return ti.Vector([0.0, 0.0, A[s, i]])


@ti.func
def gravity(consts: T):
    return ti.Vector([consts[GX], consts[GY], consts[GZ]])


@ti.func
def body_force(dim: T, mask: T, velocity: T, mass: T, force_control: T, consts: T, s, t, i):
    """Gravity, the control force and (2D top-down tables) rolling resistance on body i (N)."""
    m = mass[i]
    applied = m * gravity(consts) + load_vec(force_control, t, i, dim)
    if ti.static(mask & M_ROLLING):
        return applied + smoothed_coulomb_friction(load_vec(velocity, s, i, dim), m * consts[ROLL], 1.0, consts[VEPS])
    else:
        return applied


@ti.func
def angular_update(w, q, tau, m, iu, damp, dt, dim: T):
    """w' = (w + dw) / (1 + dt c_w) with Euler's equations I dw/dt = tau - w x I w stepped by the
    linearly implicit midpoint rule in the body frame (I = m * iu, principal):

        (I + dt/2 J) dw = dt (tau - w x I w),   J = d(w x I w)/dw = [w]x I - [I w]x,

    one Newton step of the implicit midpoint rule from w. The explicit step (J = 0) gains
    energy whenever a body spins (its amplification factor |1 + i Omega dt| > 1 for a precession
    rate Omega): a plank spinning at 30 rad/s about its long axis quadrupled |L| in 5 s at
    dt = 1 ms and diverged within 100 steps at 60 Hz. This one keeps the kinetic energy and |L|
    of a free body within 1e-7 over 60 s at 1 ms and within a few percent at 60 Hz, with no drift
    (``tests/rigid/test_rigid_user_spinning_plank.py``)."""
    if ti.static(dim == 3):  # in the body frame: R^T (w x I w) = w_b x (I_b w_b)
        inertia = m * iu
        wb = quat_rotate_inv(q, w)
        lb = inertia * wb
        rhs = quat_rotate_inv(q, tau) - wb.cross(lb)
        half = 0.5 * dt  # the rows of I + dt/2 J, solved by Cramer's rule (its columns' adjugate)
        r0 = ti.Vector([inertia[0], half * (lb[2] - wb[2] * inertia[1]), half * (wb[1] * inertia[2] - lb[1])])
        r1 = ti.Vector([half * (wb[2] * inertia[0] - lb[2]), inertia[1], half * (lb[0] - wb[0] * inertia[2])])
        r2 = ti.Vector([half * (lb[1] - wb[1] * inertia[0]), half * (wb[0] * inertia[1] - lb[0]), inertia[2]])
        c0 = r1.cross(r2)
        dwb = (c0 * rhs[0] + r2.cross(r0) * rhs[1] + r0.cross(r1) * rhs[2]) / dot3(r0, c0)
        return (w + dt * quat_rotate(q, dwb)) / (1.0 + dt * damp)
    else:
        return ti.Vector([0.0, 0.0, (w[2] + dt * tau[2] / (m * iu[2])) / (1.0 + dt * damp)])


@ti.func
def store_pose(dim: T, x, q, theta_rate, wn, dt, s, d, i, position: T, orientation: T, angular_velocity: T):
    """Write body i's new position x, orientation (q integrated over dt with wn in 3D; the angle
    at slot s advanced by dt theta_rate in 2D) and angular velocity wn into slot d."""
    for k in ti.static(range(dim)):
        position[d, i, k] = x[k]
    if ti.static(dim == 3):
        qn = quat_integrate(q, wn, dt)
        for k in ti.static(range(4)):
            orientation[d, i, k] = qn[k]
        for k in ti.static(range(3)):
            angular_velocity[d, i, k] = wn[k]
    else:
        orientation[d, i] = orientation[s, i] + dt * theta_rate
        angular_velocity[d, i] = wn[2]


# ------------------------------------------------------------------------------- penalty model


@ti.func
def normal_force(mask: T, consts: T, depth, vn, c_n, load, k_explicit, c_explicit):
    """The stepped contact law's normal force (N), or a body's explicit law where it gives one
    (k_explicit > 0; compiled only when the scene has one, M_EXPLICIT). The explicit law is
    evaluated with the system's stiffness when the body has none (k = 0 would divide by zero
    in the branch not taken, and its NaN adjoint would leak through the select)."""
    stepped = stepped_contact_normal_force(depth, vn, consts[KN], c_n, load, consts[DELTA], consts[DT])
    if ti.static(mask & M_EXPLICIT):
        explicit = k_explicit > 0.0
        return ti.select(explicit, contact_normal_force(depth, vn, ti.select(explicit, k_explicit, consts[KN]),
                                                        ti.select(explicit, c_explicit, 0.0), consts[DELTA]),
                         stepped)
    else:
        return stepped


@ti.func
def penalty_contact_force(mask: T, consts: T, n, depth, rel, zeta, mu, m_eff, m_t, points, load, k_explicit, c_explicit,
                          f_beside=0.0):
    """Contact force on the first body (N): the shared contact law averaged over the time step
    (diffsim.contact.stepped_contact_normal_force) along n with stiffness k_n, onset depth
    delta and damping 2 zeta_dt sqrt(k_n m_eff), and smoothed Coulomb friction. m_eff:
    effective mass of the contact along n (kg, rotation included); zeta: the pair's
    continuous-time damping ratio, turned into zeta_dt for this time step
    (discrete_damping_ratio, omega dt = sqrt(k_n/m_eff) dt). The stepped law acts from the
    step before first touch (depth > -stepped_contact_reach) and weighs the onset and the
    release by the part of the step spent in contact, so that the restitution does not depend
    on when in a step a contact begins or ends. points: how many such points press on the body
    at once (a box face: face_points, 4 in 3D, 2 in 2D; else 1): their damping acts in
    parallel, and zeta_dt is capped so that it stays stable (diffsim.contact.stable_damping_ratio;
    a restitution of 0 on a box threw it off the floor without the cap).

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
    parallel and their rates add. Against a plane they are counted: f_beside (N, >= 0) is the
    spring force of the body's other corners pressing on the same plane, f_n + f_beside
    replaces f_n in the slip speed, so the combined rate of all of them stays below 1/(2 dt)
    while a box landing on one corner keeps the single-point bound, and m_t is the exact
    largest tangential effective mass at the point (:func:`tangential_inverse_mass`). A box
    face on a box shares the tangential mass among its corners instead (m_t / face_points).
    Without counting them the 3D tower of tests/rigid/test_rigid_boxes.py rocked at the
    Nyquist frequency (omega_x +-0.22 rad/s, slip +-0.02 m/s, sign flipping every step) and
    walked 0.6 mm/s; with the fixed share m_t / 4 for box-plane corners too, the noisy
    friction fit of scenes/bounce_tuning.py came out 0.443 for 0.40.

    k_explicit (N/m), c_explicit (N s/m): a contact law the materials give directly (k > 0):
    then the normal force is contact_normal_force(depth, v_n, k, c, delta) exactly, with none
    of the calibration above (no restitution mapping, step averaging or load term)."""
    vn = rel.dot(n)
    vt = rel - vn * n
    kn = consts[KN]
    dt = consts[DT]
    omega_dt = ti.sqrt(kn / m_eff) * dt
    c_n = 2.0 * stable_damping_ratio(discrete_damping_ratio(zeta, omega_dt), omega_dt, points) * ti.sqrt(kn * m_eff)
    fn = normal_force(mask, consts, depth, vn, c_n, load, k_explicit, c_explicit)
    v_slip = 2.0 * dt * mu * (fn + f_beside) / m_t
    return fn * n + smoothed_coulomb_friction(vt, fn, mu, ti.sqrt(consts[VEPS] * consts[VEPS] + v_slip * v_slip))


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
    if ti.static(dim == 3):  # in the body frame: one rotation
        rb = quat_rotate_inv(q, rn)
        return 1.0 / m + (rb * rb).dot(1.0 / (m * iu))
    else:
        return 1.0 / m + rn[2] * rn[2] / (m * iu[2])


@ti.func
def to_body(q, v, dim: T):
    """A world vector in the body frame (3D; 2D keeps world vectors: the formulas below need
    only the z component of r x n, which a turn about z leaves alone)."""
    if ti.static(dim == 3):
        return quat_rotate_inv(q, v)
    else:
        return v


@ti.func
def inverse_mass_local(m, iu, r, n, dim: T):
    """1/m + (r x n) . I^-1 (r x n) (1/kg) with r (m) and n in the body frame (:func:`to_body`);
    I = m iu (principal, body frame)."""
    rn = r.cross(n)
    if ti.static(dim == 3):
        return 1.0 / m + (rn * rn).dot(1.0 / (m * iu))
    else:
        return 1.0 / m + rn[2] * rn[2] / (m * iu[2])


@ti.func
def tangential_inverse_mass(m, iu, r, n, dim: T):
    """Largest inverse effective mass (1/kg) of a body at the point r (m) from its centre over
    the directions tangent to n: lambda_max of the tangential block of 1/m + [r]x^T I^-1 [r]x
    (exact; 2D: the one tangent). I = m iu (principal, body frame); r and n in the body frame
    (:func:`to_body`), where I is diagonal: no rotation here."""
    if ti.static(dim == 3):
        a = ti.select(ti.abs(n[0]) > 0.6, ti.Vector([0.0, 1.0, 0.0]), ti.Vector([1.0, 0.0, 0.0]))
        t1 = (a - a.dot(n) * n).normalized()
        t2 = n.cross(t1)
        inv_i = 1.0 / (m * iu)
        b1, b2 = r.cross(t1), r.cross(t2)
        k1 = inv_i * b1
        a11 = 1.0 / m + b1.dot(k1)
        a22 = 1.0 / m + b2.dot(inv_i * b2)
        a12 = b2.dot(k1)
        h = 0.5 * (a11 - a22)
        return 0.5 * (a11 + a22) + ti.sqrt(h * h + a12 * a12 + (1e-9 / m) ** 2)
    else:
        return inverse_mass_local(m, iu, r, ti.Vector([-n[1], n[0], 0.0]), dim)


@ti.func
def penalty_body_load(dim: T, mask: T, velocity: T, mass: T, force_control: T, torque_control: T, consts: T, s, t, i,
                      force: T, torque: T):
    """Body i's loads before contact (gravity, controls, rolling resistance)."""
    store3(force, s, i, body_force(dim, mask, velocity, mass, force_control, consts, s, t, i))
    store3(torque, s, i, load_axial(torque_control, t, i, dim))


def pair_points(mask, dim):
    """Contact points per candidate pair (compile time): box-box 8 incident corners (4 in 2D), box-capsule
    2 ends + 8 corners (4 in 2D), 1 for the other pairs; 0 when the scene has no pairs that collide.
    A scene with several kinds gives every pair the most of them (a pair's points beyond its own
    have depth -1): box-box and box-capsule pairs together used to get 8 (3D), and a capsule
    resting on a box edge, on box corners 6 and 7 alone, fell through the box."""
    if not mask & M_PAIRS:
        return 0
    if mask & M_BOX_CAPSULE:  # the most of any kind present (a box-box pair has box_corners(dim))
        return 6 if dim == 2 else 10
    if mask & M_BOX_BOX:
        return 4 if dim == 2 else 8
    return 1


def box_corners(dim):
    return 4 if dim == 2 else 8


def face_points(dim):
    """Corners of a box face (compile time): the contact points a box resting on a face has at
    once, 4 (2 in 2D)."""
    return 2 if dim == 2 else 4


@ti.func
def choose_pair_feature(dim: T, mask: T, sa, sb, xa, qa, ga, xb, qb, gb):
    """The discrete choice of a pair's contact geometry that :func:`pair_geometry` reads
    (an int): a box-box pair's separating-axis feature
    (:func:`~diffsim.collision.narrowphase.box_box_feature`), 0 for other pairs. Computed
    by a forward-only launch (or a fused kernel's item whose gradient drops it) before the
    pair's points: the gradient kernels then hold the chosen feature's formulas alone (the 3D
    box-box geometry with all 15 candidate axes in its gradient compiled for about a minute)."""
    if ti.static(mask & M_BOX_BOX):
        return ti.select(sa == BOX and sb == BOX, box_box_feature(xa, qa, ga, xb, qb, gb, dim), 0)
    else:
        return 0


@ti.func
def choose_pair_feature_on_axes(dim: T, mask: T, sa, sb, xa, ga, xb, gb, axes: T, row, a, b):
    """:func:`choose_pair_feature` of bodies a, b whose world axes are rows of a table
    (``axes[row, body, 3 m + c]``, :func:`~diffsim.collision.narrowphase.table_axis`), read
    instead of rotating by their orientations (3D)."""
    if ti.static(mask & M_BOX_BOX):
        return ti.select(sa == BOX and sb == BOX, box_box_feature_from_axes(
            xa - xb, table_axis(axes, row, a, 0), table_axis(axes, row, a, 1), table_axis(axes, row, a, 2), ga,
            table_axis(axes, row, b, 0), table_axis(axes, row, b, 1), table_axis(axes, row, b, 2), gb, dim), 0)
    else:
        return 0


@ti.func
def pair_geometry(dim: T, mask: T, sa, sb, xa, qa, ga, xb, qb, gb, c, feature):
    """Contact point c of bodies a, b with shapes sa <= sb (centres x, orientations q, geometry
    rows g): (normal from b to a, depth, point). Box-box and box-capsule pairs have several
    points (pair_points; a manifold of corners,
    :func:`~diffsim.collision.narrowphase.box_box_point_of`, for the separating-axis feature
    that :func:`choose_pair_feature` chose), the others one (c = 0); points a pair
    does not have, and pairs the scene lets pass through, give depth -1. Only the pair kinds
    of the scene (mask) are compiled; a scene of one kind tests none."""
    kind = ti.static(mask & M_PAIRS)  # one kind of pair: no runtime test of the kind
    if ti.static(kind == M_SPHERE_SPHERE):
        return sphere_sphere(xa, ga[0], xb, gb[0])
    elif ti.static(kind == M_SPHERE_BOX):
        return sphere_box(xa, ga[0], xb, qb, gb)
    elif ti.static(kind == M_SPHERE_CAPSULE):
        return capsule_sphere(xb, qb, gb[0], gb[1], xa, ga[0])
    elif ti.static(kind == M_CAPSULE_CAPSULE):
        return capsule_capsule(xa, qa, ga[0], ga[1], xb, qb, gb[0], gb[1])
    elif ti.static(kind == M_BOX_BOX):
        return box_box_point_of(feature, xa, qa, ga, xb, qb, gb, c, dim)
    elif ti.static(kind == M_BOX_CAPSULE):
        return box_capsule_point(xa, qa, ga, xb, qb, gb[0], gb[1], c, ti.static(box_corners(dim)))
    elif ti.static((kind & (M_SPHERE_SPHERE | M_SPHERE_CAPSULE | M_CAPSULE_CAPSULE)) == kind):
        # round shapes alone: a sphere is a capsule of half length 0 (geometry (r, 0, 0)), and
        # the capsule-capsule test gives its sphere-sphere and sphere-capsule results exactly
        return capsule_capsule(xa, qa, ga[0], ga[1], xb, qb, gb[0], gb[1])
    else:
        n = ti.Vector([0.0, 0.0, 0.0])
        depth = -1.0
        p = ti.Vector([0.0, 0.0, 0.0])
        if ti.static(mask & M_SPHERE_SPHERE):  # noqa: SIM102 -- compile-time gate
            if sa == SPHERE and sb == SPHERE and c == 0:
                n, depth, p = sphere_sphere(xa, ga[0], xb, gb[0])
        if ti.static(mask & M_SPHERE_BOX):  # noqa: SIM102 -- compile-time gate
            if sa == SPHERE and sb == BOX and c == 0:
                n, depth, p = sphere_box(xa, ga[0], xb, qb, gb)
        if ti.static(mask & M_SPHERE_CAPSULE):  # noqa: SIM102 -- compile-time gate
            if sa == SPHERE and sb == CAPSULE and c == 0:
                n, depth, p = capsule_sphere(xb, qb, gb[0], gb[1], xa, ga[0])
        if ti.static(mask & M_CAPSULE_CAPSULE):  # noqa: SIM102 -- compile-time gate
            if sa == CAPSULE and sb == CAPSULE and c == 0:
                n, depth, p = capsule_capsule(xa, qa, ga[0], ga[1], xb, qb, gb[0], gb[1])
        if ti.static(mask & M_BOX_BOX):  # noqa: SIM102 -- compile-time gate
            if sa == BOX and sb == BOX and c < ti.static(box_corners(dim)):
                n, depth, p = box_box_point_of(feature, xa, qa, ga, xb, qb, gb, c, dim)
        if ti.static(mask & M_BOX_CAPSULE):  # noqa: SIM102 -- compile-time gate
            if sa == BOX and sb == CAPSULE:
                n, depth, p = box_capsule_point(xa, qa, ga, xb, qb, gb[0], gb[1], c, ti.static(box_corners(dim)))
        return n, depth, p


@ti.func
def series(a, b):
    """a b / (a + b): two springs (or dampers) in series; the other one alone when one is 0."""
    both = a > 0.0 and b > 0.0
    return ti.select(both, a * b / ti.select(both, a + b, 1.0), a + b)


@ti.func
def explicit_pair_law(ka, ca, kb, cb):
    """(k, c) of a contact between two materials that give their own stiffness k (N/m) and
    damping c (N s/m): in series when both do, the one that does alone, (0, 0) when neither."""
    return series(ka, kb), series(ca, cb)


@ti.func
def penalty_pair_contact(dim: T, mask: T, position: T, orientation: T, velocity: T, angular_velocity: T, shape: T,
                         geometry: T, unit_inertia: T, mass: T, friction: T, contact_stiffness: T,
                         contact_damping: T, damping_ratio: T, consts: T, s, i, j, c, feature, force: T,
                         torque: T):
    """Contact point c of candidate pair (i, j) and its penalty force, added to both bodies'
    force and torque (a pair's damping ratio is the mean of its bodies', likewise friction;
    feature: the pair's :func:`choose_pair_feature` at slot s).
    Each body's state is read once into locals (every read of a differentiated array is an
    atomic add in the gradient kernel)."""
    a, b = i, j
    if shape[i] > shape[j]:  # canonical order: the lower shape code first
        a, b = j, i
    xa, xb = load_vec(position, s, a, dim), load_vec(position, s, b, dim)
    qa, qb = load_quat(orientation, s, a, dim), load_quat(orientation, s, b, dim)
    n, depth, p = pair_geometry(dim, mask, shape[a], shape[b], xa, qa, row3(geometry, a), xb, qb, row3(geometry, b),
                                c, feature)
    ra, rb = p - xa, p - xb
    rel = (load_vec(velocity, s, a, dim) + load_axial(angular_velocity, s, a, dim).cross(ra)) - \
          (load_vec(velocity, s, b, dim) + load_axial(angular_velocity, s, b, dim).cross(rb))
    if depth > -stepped_contact_reach(rel.dot(n), consts[KN], 0.0, consts[DELTA], consts[DT]):
        ma, mb = mass[a], mass[b]
        iua, iub = row3(unit_inertia, a), row3(unit_inertia, b)
        wa = inverse_mass_at(ma, iua, qa, ra, n, dim)
        wb = inverse_mass_at(mb, iub, qb, rb, n, dim)
        m_t = 1.0 / (tangential_inverse_mass_bound(ma, iua, ra) + tangential_inverse_mass_bound(mb, iub, rb))
        # a face on a face presses at once on all its corners
        points = ti.select(shape[a] == BOX and shape[b] == BOX,
                           ti.static(float(face_points(dim)) if mask & M_BOX_BOX else 1.0), 1.0)
        k_pair, c_pair = explicit_pair_law(contact_stiffness[a], contact_damping[a], contact_stiffness[b],
                                           contact_damping[b])
        fc = penalty_contact_force(mask, consts, n, depth, rel, 0.5 * (damping_ratio[a] + damping_ratio[b]),
                                   0.5 * (friction[a] + friction[b]), 1.0 / (wa + wb), m_t / points, points, 0.0,
                                   k_pair, c_pair)
        ta, tb = ra.cross(fc), rb.cross(fc)
        for k in ti.static(range(3)):
            force[s, a, k] += fc[k]
            torque[s, a, k] += ta[k]
            force[s, b, k] -= fc[k]
            torque[s, b, k] -= tb[k]


@ti.func
def penalty_pair_feature(dim: T, mask: T, position: T, orientation: T, shape: T, geometry: T, s, i, j, k,
                         pair_feature: T):
    """Store candidate pair k = (i, j)'s :func:`choose_pair_feature` at slot s (in the pair's canonical
    order, as :func:`penalty_pair_contact` takes it)."""
    a, b = i, j
    if shape[i] > shape[j]:
        a, b = j, i
    pair_feature[s, k] = choose_pair_feature(dim, mask, shape[a], shape[b], load_vec(position, s, a, dim),
                                             load_quat(orientation, s, a, dim), row3(geometry, a),
                                             load_vec(position, s, b, dim), load_quat(orientation, s, b, dim),
                                             row3(geometry, b))


def plane_points(mask, dim):
    """Contact points per (body, plane) item (compile time): 8 box corners (4 in 2D), 2 capsule
    end spheres, 1 for spheres."""
    if mask & M_BOX:
        return 4 if dim == 2 else 8
    return 2 if mask & M_CAPSULE else 1


@ti.func
def plane_geometry(dim: T, mask: T, si, x, q, g, pn, off, c):
    """Contact point c of a body (shape si, centre x, orientation q, geometry row g) against
    the plane pn . p >= off: (normal, depth, point); depth -1 when the body has no point c (a
    sphere has 1, a capsule 2, a box 8 corners, 4 in 2D)."""
    if ti.static((mask & M_SHAPES) == M_SPHERE):  # bodies of one shape: every point c exists, no runtime test
        return sphere_plane(x, g[0], pn, off)
    elif ti.static((mask & M_SHAPES) == M_CAPSULE):
        return capsule_end_plane(x, q, g, pn, off, c)
    elif ti.static((mask & M_SHAPES) == M_BOX):
        return box_corner_plane(x, q, g, pn, off, c)
    elif ti.static((mask & M_SHAPES) == (M_SPHERE | M_CAPSULE)):
        # spheres are capsules of half length 0 whose second end does not exist
        n, depth, p = capsule_end_plane(x, q, g, pn, off, c)
        return n, ti.select(si == CAPSULE or c == 0, depth, -1.0), p
    else:
        n = pn
        depth = -1.0
        p = x
        if ti.static(mask & M_SPHERE):  # noqa: SIM102 -- compile-time gate
            if si == SPHERE and c == 0:
                n, depth, p = sphere_plane(x, g[0], pn, off)
        if ti.static(mask & M_CAPSULE):  # noqa: SIM102 -- compile-time gate
            if si == CAPSULE and c < 2:
                n, depth, p = capsule_end_plane(x, q, g, pn, off, c)
        if ti.static(mask & M_BOX):  # noqa: SIM102 -- compile-time gate
            if si == BOX:
                n, depth, p = box_corner_plane(x, q, g, pn, off, c)
        return n, depth, p


@ti.func
def capsule_end_plane(x, q, g, pn, off, c):
    """End sphere c (0, 1) of a capsule (centre x, orientation q, radius g[0], half length g[1])
    against a plane: (normal, depth, point)."""
    ax = quat_rotate(q, ti.Vector([g[1], 0.0, 0.0]))
    return sphere_plane(x + (2.0 * c - 1.0) * ax, g[0], pn, off)


@ti.func
def box_corner_plane(x, q, h, pn, off, c):
    """Corner c of a box (centre x, orientation q, half extents h) against a plane: (normal,
    depth, point)."""
    sx = 2.0 * (c & 1) - 1.0
    sy = 2.0 * ((c >> 1) & 1) - 1.0
    sz = 2.0 * ((c >> 2) & 1) - 1.0
    return point_plane(x + quat_rotate(q, ti.Vector([sx * h[0], sy * h[1], sz * h[2]])), pn, off)


@ti.func
def plane_normal_in_body(q, pn, n_body, dim: T):
    """A plane's normal pn in the body frame: n_body as :func:`to_body` gave it in 3D, rotated
    here in 2D (where to_body keeps world vectors)."""
    if ti.static(dim == 3):
        return n_body
    else:
        return quat_rotate_inv(q, pn)


@ti.func
def corner_springs_beside(dim: T, mask: T, is_box, q, n_body, x, h, pn, off, c, consts: T):
    """Spring force (N) of a box's corners other than c on the plane pn . p >= off (C^1 in
    their depths; 0 for other shapes): corner c2 = x + R (s h) lies at depth
    off - n . x - sum_k s_k h_k (R^T n)_k, so the plane's normal goes to the body frame once,
    not once per corner (n_body: the plane's normal in the body frame, :func:`to_body`)."""
    if ti.static(mask & M_BOX):
        nb = plane_normal_in_body(q, pn, n_body, dim)
        base = off - pn.dot(x)
        kn = consts[KN]
        springs = ti.Vector([ti.select(c2 == c, 0.0, smooth_relu(
            kn * (base - ti.static(2.0 * (c2 & 1) - 1.0) * h[0] * nb[0]
                  - ti.static(2.0 * ((c2 >> 1) & 1) - 1.0) * h[1] * nb[1]
                  - ti.static(2.0 * ((c2 >> 2) & 1) - 1.0) * h[2] * nb[2]), kn * consts[DELTA]))
            for c2 in ti.static(range(box_corners(dim)))])
        return ti.select(is_box, springs.sum(), 0.0)
    else:
        return 0.0


@ti.func
def penalty_plane_contact(dim: T, mask: T, position: T, orientation: T, velocity: T, angular_velocity: T,
                          shape: T, geometry: T, unit_inertia: T, planes: T, mass: T, friction: T,
                          contact_stiffness: T, contact_damping: T, damping_ratio: T, plane_damping_ratio: T,
                          plane_friction: T, consts: T, s, i, pl, c, force: T, torque: T):
    """Contact point c of body i against plane pl and its penalty force, added to the body's
    force and torque (damping ratios zeta(e) of the bodies and planes: :func:`damping_ratios`).
    The body's state is read once into locals."""
    pn = ti.Vector([planes[pl, 0], planes[pl, 1], planes[pl, 2]])
    off = planes[pl, 3]
    x = load_vec(position, s, i, dim)
    q = load_quat(orientation, s, i, dim)
    g = row3(geometry, i)
    n, depth, p = plane_geometry(dim, mask, shape[i], x, q, g, pn, off, c)
    ra = p - x
    rel = load_vec(velocity, s, i, dim) + load_axial(angular_velocity, s, i, dim).cross(ra)
    m = mass[i]
    iu = row3(unit_inertia, i)
    r_body, n_body = to_body(q, ra, dim), to_body(q, n, dim)  # the inertia's frame: two rotations for all below
    m_eff = 1.0 / inverse_mass_local(m, iu, r_body, n_body, dim)
    load = m_eff * ti.max(-gravity(consts).dot(n), 0.0)  # gravity pressing the body onto the plane
    if depth > -stepped_contact_reach(rel.dot(n), consts[KN], load, consts[DELTA], consts[DT]):
        m_t = 1.0 / tangential_inverse_mass(m, iu, r_body, n_body, dim)
        is_box = shape[i] == BOX
        # a face on the plane presses at once on all its corners
        points = ti.select(is_box, ti.static(float(face_points(dim)) if mask & M_BOX else 1.0), 1.0)
        # the plane's normal in the body frame: n_body in 3D (n is pn), rotated for the corners in 2D
        f_beside = corner_springs_beside(dim, mask, is_box, q, n_body, x, g, pn, off, c, consts)
        fc = penalty_contact_force(mask, consts, n, depth, rel, 0.5 * (damping_ratio[i] + plane_damping_ratio[pl]),
                                   0.5 * (friction[i] + plane_friction[pl]), m_eff, m_t, points, load,
                                   contact_stiffness[i], contact_damping[i], f_beside)
        ta = ra.cross(fc)
        for k in ti.static(range(3)):
            force[s, i, k] += fc[k]
            torque[s, i, k] += ta[k]


@ti.func
def penalty_integrate_body(dim: T, mass: T, linear_damping: T, angular_damping: T, unit_inertia: T, consts: T,
                           force: T, torque: T, s, d, i, position: T, orientation: T, velocity: T,
                           angular_velocity: T):
    """Semi-implicit Euler for body i from slot s to slot d under its summed force and torque."""
    dt = consts[DT]
    m = mass[i]
    vn = (load_vec(velocity, s, i, dim) + dt * load3(force, s, i) / m) / (1.0 + dt * linear_damping[i])
    q = load_quat(orientation, s, i, dim)
    iu = row3(unit_inertia, i)
    wn = angular_update(load_axial(angular_velocity, s, i, dim), q, load3(torque, s, i), m, iu, angular_damping[i], dt,
                        dim)
    for k in ti.static(range(dim)):
        velocity[d, i, k] = vn[k]
    store_pose(dim, load_vec(position, s, i, dim) + dt * vn, q, wn[2], wn, dt, s, d, i, position, orientation,
               angular_velocity)


# ------------------------------------------------------------------------------- impulse model


@ti.func
def impulse_predict_body(dim: T, mask: T, orientation: T, velocity: T, angular_velocity: T, mass: T, linear_damping: T,
                         angular_damping: T, force_control: T, torque_control: T, unit_inertia: T, consts: T, s, t,
                         i, predicted_velocity: T, predicted_angular_velocity: T, velocity_change: T,
                         position_correction: T, angular_velocity_change: T):
    """Body i's velocities v*, w* advanced by the step's forces alone, and its impulse sums
    (dv, dx, dw) cleared."""
    dt = consts[DT]
    m = mass[i]
    f = body_force(dim, mask, velocity, mass, force_control, consts, s, t, i)
    store3(predicted_velocity, s, i, (load_vec(velocity, s, i, dim) + dt * f / m) / (1.0 + dt * linear_damping[i]))
    iu = row3(unit_inertia, i)
    store3(predicted_angular_velocity, s, i,
           angular_update(load_axial(angular_velocity, s, i, dim), load_quat(orientation, s, i, dim),
                          load_axial(torque_control, t, i, dim), m, iu, angular_damping[i], dt, dim))
    store3(velocity_change, s, i, ti.Vector([0.0, 0.0, 0.0]))
    store3(position_correction, s, i, ti.Vector([0.0, 0.0, 0.0]))
    store3(angular_velocity_change, s, i, ti.Vector([0.0, 0.0, 0.0]))


@ti.func
def angular_kick(m, iu, q, r, impulse, dim: T):
    """Angular velocity change (rad/s) of a body (mass m, unit inertia iu, orientation q) from an
    impulse (N s) at the point r (m) from its centre: I^-1 (r x J)."""
    tq = r.cross(impulse)
    if ti.static(dim == 3):
        return world_inertia_inv_apply(q, 1.0 / (m * iu), tq)
    else:
        return ti.Vector([0.0, 0.0, tq[2] / (m * iu[2])])


@ti.func
def sphere_pair_impulse(dim: T, orientation: T, velocity: T, predicted_angular_velocity: T, geometry: T,
                        unit_inertia: T, mass: T, restitution: T, friction: T, consts: T, s, a, b, va, vb, n_end,
                        depth, ni, tau_toi, ok, velocity_change: T, position_correction: T,
                        angular_velocity_change: T):
    """The impulse of spheres a and b that touch within the step (:func:`impulse_pair_contact`:
    drifting at va, vb; end-of-step normal and depth n_end, depth; normal ni, time tau_toi and
    flag ok of the swept test), added into their impulse sums at slot s."""
    dt = consts[DT]
    wa, wb = 1.0 / mass[a], 1.0 / mass[b]
    e = 0.5 * (restitution[a] + restitution[b])
    # branch-free from here (selects; no adstacks in the gradient kernel): an impact
    # within the step (toi) along the normal at impact, else (overlapping since the
    # start of the step) along the end-of-step normal
    toi = ok == 1
    n = ti.select(toi, ni, n_end)
    v_n = (va - vb).dot(n)
    v_n_start = (load_vec(velocity, s, a, dim) - load_vec(velocity, s, b, dim)).dot(n)
    j_toi = ti.select(v_n < 0.0, impulse_at(v_n, v_n_start, tau_toi, wa, wb, e, dt), 0.0)
    j_end, tau_end = normal_impulse(-depth, v_n, v_n_start, wa, wb, e, dt, consts[VMIN])
    j = ti.select(toi, j_toi, j_end)
    tau = ti.select(toi, tau_toi, tau_end)
    ra, rb = -geometry[a, 0] * n, geometry[b, 0] * n
    qa, qb = load_quat(orientation, s, a, dim), load_quat(orientation, s, b, dim)
    iua, iub = row3(unit_inertia, a), row3(unit_inertia, b)
    slip = (va + load3(predicted_angular_velocity, s, a).cross(ra)) - \
           (vb + load3(predicted_angular_velocity, s, b).cross(rb))
    v_t = slip - slip.dot(n) * n
    w_t = tangential_inverse_mass_bound(mass[a], iua, ra) + tangential_inverse_mass_bound(mass[b], iub, rb)
    jt = ti.select(j > 0.0, coulomb_friction_impulse(v_t, w_t, j, 0.5 * (friction[a] + friction[b])),
                   ti.Vector([0.0, 0.0, 0.0]))
    da, db = (j * wa) * n + wa * jt, (-j * wb) * n - wb * jt
    dwa = angular_kick(mass[a], iua, qa, ra, jt, dim)
    dwb = angular_kick(mass[b], iub, qb, rb, -jt, dim)
    for k in ti.static(range(3)):
        velocity_change[s, a, k] += da[k]
        position_correction[s, a, k] += tau * da[k]
        velocity_change[s, b, k] += db[k]
        position_correction[s, b, k] += tau * db[k]
        angular_velocity_change[s, a, k] += dwa[k]
        angular_velocity_change[s, b, k] += dwb[k]


@ti.func
def impulse_pair_contact(dim: T, position: T, orientation: T, velocity: T, predicted_velocity: T,
                         predicted_angular_velocity: T, geometry: T, unit_inertia: T, mass: T, restitution: T,
                         friction: T, consts: T, s, a, b, velocity_change: T, position_correction: T,
                         angular_velocity_change: T, gated: T):
    """Sphere-sphere impulse when the spheres drifting at v* meet within the step (a swept test:
    no tunnelling at any speed) or the predicted positions x + dt v* overlap, along the normal
    at the moment of impact (sphere_time_of_impact), with TOI; then Coulomb friction at the
    contact point (coulomb_friction_impulse) on the tangential slip after the normal impulse.
    The tangential inverse effective mass is tangential_inverse_mass_bound, which does not
    depend on the slip's direction (a direction taken from a vanishing slip made the gradient
    at rest wrong): exact for balls of isotropic inertia, an upper bound otherwise, so that
    the sticking impulse never overshoots (the slip then stops over a few steps).

    Returns 1 when the spheres touch within the step (the impulse was computed and added),
    else 0: the pair then added nothing, and its adjoint adds nothing either
    (:func:`impulse_advance` leaves such items out of its gradient)."""
    dt = consts[DT]
    acted = 0
    if ti.static(not gated):  # a pair known to touch (the gradient of a listed item): no tests
        va, vb = load3(predicted_velocity, s, a), load3(predicted_velocity, s, b)
        xa, xb = load_vec(position, s, a, dim), load_vec(position, s, b, dim)
        n_end, depth, _p = sphere_sphere(xa + dt * va, geometry[a, 0], xb + dt * vb, geometry[b, 0])
        ni, tau_toi, ok = sphere_time_of_impact(xa - xb, va - vb, geometry[a, 0] + geometry[b, 0], dt)
        sphere_pair_impulse(dim, orientation, velocity, predicted_angular_velocity, geometry, unit_inertia, mass,
                            restitution, friction, consts, s, a, b, va, vb, n_end, depth, ni, tau_toi, ok,
                            velocity_change, position_correction, angular_velocity_change)
        acted = 1
    else:
        # swept reach: centres farther apart than the radii plus the step's relative drift neither
        # overlap at the end of the step nor meet within it (skips the rest, forward and adjoint)
        # (a looser test without square roots: gap <= r + d implies gap^2 <= 2 r^2 + 2 d^2; the pairs it
        # lets through beyond the reach add nothing below, forward or in reverse)
        dv = load3(predicted_velocity, s, a) - load3(predicted_velocity, s, b)
        gap = load_vec(position, s, a, dim) - load_vec(position, s, b, dim)
        reach = 1.01 * (geometry[a, 0] + geometry[b, 0]) + 1e-9
        if gap.dot(gap) <= 2.0 * (reach * reach + (1.01 * dt) * (1.01 * dt) * dv.dot(dv)):
            va, vb = load3(predicted_velocity, s, a), load3(predicted_velocity, s, b)
            xa, xb = load_vec(position, s, a, dim), load_vec(position, s, b, dim)
            n_end, depth, _p = sphere_sphere(xa + dt * va, geometry[a, 0], xb + dt * vb, geometry[b, 0])
            ni, tau_toi, ok = sphere_time_of_impact(xa - xb, va - vb, geometry[a, 0] + geometry[b, 0], dt)
            if depth > 0.0 or ok == 1:
                acted = 1
                sphere_pair_impulse(dim, orientation, velocity, predicted_angular_velocity, geometry, unit_inertia, mass,
                                    restitution, friction, consts, s, a, b, va, vb, n_end, depth, ni, tau_toi, ok,
                                    velocity_change, position_correction, angular_velocity_change)
    return acted


@ti.func
def sphere_plane_impulse(dim: T, position: T, orientation: T, velocity: T, predicted_angular_velocity: T,
                         geometry: T, unit_inertia: T, planes: T, mass: T, restitution: T, friction: T,
                         plane_restitution: T, plane_friction: T, consts: T, s, i, pl, pn, v, m,
                         velocity_change: T, position_correction: T, angular_velocity_change: T):
    """The impulse of sphere i within reach of plane pl (:func:`impulse_plane_contact`; normal
    pn, predicted velocity v, mass m), added into its impulse sums at slot s."""
    dt = consts[DT]
    n, depth, _p = sphere_plane(load_vec(position, s, i, dim) + dt * v, geometry[i, 0], pn, planes[pl, 3])
    j, tau = normal_impulse(-depth, v.dot(n), load_vec(velocity, s, i, dim).dot(n), 1.0 / m, 0.0,
                            0.5 * (restitution[i] + plane_restitution[pl]), dt, consts[VMIN])
    r = -geometry[i, 0] * n
    q = load_quat(orientation, s, i, dim)
    iu = row3(unit_inertia, i)
    slip = v + load3(predicted_angular_velocity, s, i).cross(r)
    v_t = slip - slip.dot(n) * n
    # friction only in contact (exactly zero in flight); a select, not a branch
    jt = ti.select(j > 0.0, coulomb_friction_impulse(v_t, tangential_inverse_mass_bound(m, iu, r), j,
                                                     0.5 * (friction[i] + plane_friction[pl])),
                   ti.Vector([0.0, 0.0, 0.0]))
    dv = (j / m) * n + jt / m
    dw = angular_kick(m, iu, q, r, jt, dim)
    for k in ti.static(range(3)):
        velocity_change[s, i, k] += dv[k]
        position_correction[s, i, k] += tau * dv[k]
        angular_velocity_change[s, i, k] += dw[k]


@ti.func
def impulse_plane_contact(dim: T, position: T, orientation: T, velocity: T, predicted_velocity: T,
                          predicted_angular_velocity: T, geometry: T, unit_inertia: T, planes: T, mass: T,
                          restitution: T, friction: T, plane_restitution: T, plane_friction: T, consts: T, s, i, pl,
                          velocity_change: T, position_correction: T, angular_velocity_change: T, gated: T):
    """Sphere-plane impulse with TOI (normal_impulse), then Coulomb friction at the contact point.
    Returns 1 when the sphere is within reach of the plane (the impulse, possibly zero, was
    added), else 0 (nothing added, forward or in reverse)."""
    dt = consts[DT]
    acted = 0
    pn = ti.Vector([planes[pl, 0], planes[pl, 1], planes[pl, 2]])
    v = load3(predicted_velocity, s, i)
    m = mass[i]
    if ti.static(not gated):  # a sphere known to be within reach (the gradient of a listed item): no test
        sphere_plane_impulse(dim, position, orientation, velocity, predicted_angular_velocity, geometry, unit_inertia,
                             planes, mass, restitution, friction, plane_restitution, plane_friction, consts, s, i, pl,
                             pn, v, m, velocity_change, position_correction, angular_velocity_change)
        acted = 1
    else:
        # out of reach: the sphere ends the step apart from the plane, whatever its direction
        # (skips the rest, forward and adjoint; an impulse needs an end-of-step overlap)
        clearance = load_vec(position, s, i, dim).dot(pn) - planes[pl, 3] - geometry[i, 0]
        if clearance <= 1.01 * dt * ti.sqrt(v.dot(v)) + 1e-9:
            acted = 1
            sphere_plane_impulse(dim, position, orientation, velocity, predicted_angular_velocity, geometry, unit_inertia,
                                 planes, mass, restitution, friction, plane_restitution, plane_friction, consts, s, i, pl,
                                 pn, v, m, velocity_change, position_correction, angular_velocity_change)
    return acted


@ti.func
def velocity_dependent_acceleration(mask: T, v, c_lin, consts: T):
    """Rolling resistance (2D top-down tables) and linear damping (m/s^2) at velocity v."""
    if ti.static(mask & M_ROLLING):
        return -c_lin * v + smoothed_coulomb_friction(v, consts[ROLL], 1.0, consts[VEPS])
    else:
        return -c_lin * v


@ti.func
def impulse_integrate_body(dim: T, mask: T, linear_damping: T, consts: T, predicted_velocity: T,
                           predicted_angular_velocity: T, velocity_change: T, position_correction: T,
                           angular_velocity_change: T, s, d, i, position: T, orientation: T, velocity: T,
                           angular_velocity: T):
    """v' = v* + dv, x' = x + dt v* + tau dv; the step's kick of the velocity-dependent forces
    (rolling resistance, linear damping) was taken at the velocity before the impact, so the
    part of the step after it (tau) gets the difference a(v* + dv) - a(v*): an impact at the end
    of a step and one at the start of the next then give the same state (tau from the summed
    tau dv, exact for one impact per body and step)."""
    dt = consts[DT]
    vs = load3(predicted_velocity, s, i)
    dv = load3(velocity_change, s, i)
    dx = load3(position_correction, s, i)
    vn = vs + dv
    xn = load_vec(position, s, i, dim) + dt * vs + dx
    dv2 = dv.dot(dv)
    kicked = dv2 > 0.0  # selects, not a branch (no adstacks in the gradient kernel); 1 divides when not
    tau = dx.dot(dv) / ti.select(kicked, dv2, 1.0)
    corr = ti.select(kicked, tau * (velocity_dependent_acceleration(mask, vn, linear_damping[i], consts)
                                    - velocity_dependent_acceleration(mask, vs, linear_damping[i], consts)),
                     ti.Vector([0.0, 0.0, 0.0]))
    vn += corr
    xn += tau * corr
    wn = load3(predicted_angular_velocity, s, i) + load3(angular_velocity_change, s, i)
    for k in ti.static(range(dim)):
        velocity[d, i, k] = vn[k]
    store_pose(dim, xn, load_quat(orientation, s, i, dim), wn[2], wn, dt, s, d, i, position, orientation,
               angular_velocity)


# ------------------------------------------------------------------------------- kernels

_A = ti.types.ndarray()


@ti.kernel
def penalty_body_loads(dim: T, mask: T, velocity: _A, mass: _A, force_control: _A, torque_control: _A, consts: _A,
                       s: ti.i32, t: ti.i32, force: _A, torque: _A):
    """Every body's force and torque before contact (slot s, controls of step t)."""
    for i in range(velocity.shape[1]):
        penalty_body_load(dim, mask, velocity, mass, force_control, torque_control, consts, s, t, i, force, torque)


@ti.kernel
def damping_ratios(serial: T, restitution: _A, plane_restitution: _A, n_planes: ti.i32, damping_ratio: _A,
                   plane_damping_ratio: _A, slope: _A, plane_slope: _A):
    """The damping ratio zeta(e) (diffsim.contact.damping_ratio_from_restitution) of every
    body's restitution and of the first n_planes planes', and its slope dzeta/de: a function
    of the parameters alone, launched once before the steps that read it (its Newton
    iteration inlined in every step kernel made their gradients compile for a minute), with
    :func:`damping_ratios_adjoint` as its hand-written adjoint (reverse mode through the
    iteration compiled for 1.4 s). serial: one thread (small scenes, where waking the
    thread pool costs more than the loop)."""
    ti.loop_config(serialize=serial)
    for k in range(restitution.shape[0] + n_planes):
        n = restitution.shape[0]
        if k < n:
            damping_ratio[k], slope[k] = damping_ratio_and_slope(restitution[k])
        else:
            plane_damping_ratio[k - n], plane_slope[k - n] = damping_ratio_and_slope(plane_restitution[k - n])


@ti.kernel
def damping_ratios_adjoint(serial: T, slope: _A, plane_slope: _A, n_planes: ti.i32, damping_ratio: _A,
                           plane_damping_ratio: _A, restitution: _A, plane_restitution: _A):
    """Adjoint of :func:`damping_ratios` (pass the ``.grad`` arrays of the ratios and the
    restitutions): dL/de += dzeta/de dL/dzeta."""
    ti.loop_config(serialize=serial)
    for k in range(slope.shape[0] + n_planes):
        n = slope.shape[0]
        if k < n:
            restitution[k] += slope[k] * damping_ratio[k]
        else:
            plane_restitution[k - n] += plane_slope[k - n] * plane_damping_ratio[k - n]


@ti.kernel
def penalty_pair_contacts(dim: T, mask: T, position: _A, orientation: _A, velocity: _A, angular_velocity: _A,
                          shape: _A, geometry: _A, unit_inertia: _A, mass: _A, friction: _A, contact_stiffness: _A,
                          contact_damping: _A, damping_ratio: _A, consts: _A, pairs: _A, pair_count: _A,
                          pair_feature: _A, pair_row: ti.i32, s: ti.i32, force: _A, torque: _A):
    """Penalty forces of the candidate pairs in row pair_row of the pair list (pair_count of
    them; their features at slot s from :func:`penalty_pair_features`), added into force and
    torque at slot s."""
    for k, c in ti.ndrange(pairs.shape[1], ti.static(pair_points(mask, dim))):
        if k < pair_count[pair_row]:
            penalty_pair_contact(dim, mask, position, orientation, velocity, angular_velocity, shape, geometry,
                                 unit_inertia, mass, friction, contact_stiffness, contact_damping, damping_ratio,
                                 consts, s, pairs[pair_row, k, 0], pairs[pair_row, k, 1], c, pair_feature[s, k],
                                 force, torque)


@ti.kernel
def penalty_pair_features(dim: T, mask: T, position: _A, orientation: _A, shape: _A, geometry: _A, pairs: _A,
                          pair_count: _A, pair_row: ti.i32, s: ti.i32, pair_feature: _A):
    """Forward only: the :func:`choose_pair_feature` of every candidate pair in row pair_row at
    slot s (one thread: a few pairs)."""
    ti.loop_config(serialize=True)
    for k in range(pairs.shape[1]):
        if k < pair_count[pair_row]:
            penalty_pair_feature(dim, mask, position, orientation, shape, geometry, s, pairs[pair_row, k, 0],
                                 pairs[pair_row, k, 1], k, pair_feature)


@ti.kernel
def penalty_plane_contacts(dim: T, mask: T, position: _A, orientation: _A, velocity: _A, angular_velocity: _A,
                           shape: _A, geometry: _A, unit_inertia: _A, planes: _A, mass: _A, friction: _A,
                           contact_stiffness: _A, contact_damping: _A, damping_ratio: _A, plane_damping_ratio: _A,
                           plane_friction: _A, consts: _A, n_planes: ti.i32, s: ti.i32, force: _A, torque: _A):
    """Penalty forces of every body against the first n_planes planes, added into force and
    torque at slot s."""
    for i, pl, c in ti.ndrange(position.shape[1], n_planes, ti.static(plane_points(mask, dim))):
        penalty_plane_contact(dim, mask, position, orientation, velocity, angular_velocity, shape, geometry,
                              unit_inertia, planes, mass, friction, contact_stiffness, contact_damping,
                              damping_ratio, plane_damping_ratio, plane_friction, consts, s, i, pl, c, force, torque)


@ti.kernel
def penalty_integrate(dim: T, mass: _A, linear_damping: _A, angular_damping: _A, unit_inertia: _A, consts: _A,
                      force: _A, torque: _A, s: ti.i32, d: ti.i32, position: _A, orientation: _A, velocity: _A,
                      angular_velocity: _A):
    """Every body from slot s to slot d (semi-implicit Euler)."""
    for i in range(position.shape[1]):
        penalty_integrate_body(dim, mass, linear_damping, angular_damping, unit_inertia, consts, force, torque, s, d,
                               i, position, orientation, velocity, angular_velocity)


@ti.kernel
def penalty_advance(dim: T, mask: T, choose: T, shape: _A, geometry: _A, unit_inertia: _A, planes: _A, mass: _A,
                    damping_ratio: _A, friction: _A, linear_damping: _A, angular_damping: _A, contact_stiffness: _A,
                    contact_damping: _A, plane_damping_ratio: _A, plane_friction: _A, force_control: _A,
                    torque_control: _A, consts: _A, pairs: _A, pair_count: _A, pair_row: ti.i32, n_planes: ti.i32,
                    slot0: ti.i32, t0: ti.i32, t1: ti.i32, pair_feature: _A, force: _A, torque: _A, position: _A,
                    orientation: _A, velocity: _A, angular_velocity: _A):
    """Steps t0..t1-1 in one launch (state t in slot slot0 + t - t0), one flat serial loop over
    (step, item): body loads, pair features (scenes with box-box pairs; compiled when
    ``choose``), pair contacts, plane contacts, integration. The forward launch chooses the
    features and stores them per slot; the gradient kernel is this kernel's with ``choose``
    False, which reads them (the choice has no derivative, and its code in the gradient
    kernel, even unused, made it compile longer).

    Each item's work sits in a loop of one iteration (``once``, a runtime 1): Taichi then keeps
    the item's adjoint variables in that loop instead of at the top of the flat loop, and the
    gradient's compile time (store-to-load forwarding, about quadratic in the distance from a
    variable's definition to its uses) drops from ~ (sum of the items)^2 towards the sum of
    the items' squares: the bowling scene's gradient kernel 27.8 -> 23.9 CPU s, stacking's
    13.8 -> 12.6 (measured side by side, cold cache, load ~4.8)."""
    for _ in range(1):
        n = position.shape[1]
        cap = pairs.shape[1]
        npts = ti.static(plane_points(mask, dim))
        npp = ti.static(pair_points(mask, dim))
        npl = n * n_planes * npts
        ncp = cap * npp
        ncf = cap * ti.static(1 if choose and mask & M_BOX_BOX else 0)
        width = n + ncf + ncp + npl + n
        once = ti.min(t1 - t0, 1)  # 1, unknown at compile time (a constant 1 would be unrolled away)
        for it in range((t1 - t0) * width):
            k = it // width
            j = it % width
            s = slot0 + k
            if j < n:
                for _r in range(once):
                    penalty_body_load(dim, mask, velocity, mass, force_control, torque_control, consts, s, t0 + k, j,
                                      force, torque)
            elif j < n + ncf:
                if ti.static(choose and mask & M_BOX_BOX):
                    c = j - n
                    if c < pair_count[pair_row]:
                        penalty_pair_feature(dim, mask, position, orientation, shape, geometry, s,
                                             pairs[pair_row, c, 0], pairs[pair_row, c, 1], c, pair_feature)
            elif j < n + ncf + ncp:
                for _r in range(once):
                    if ti.static(npp > 0):  # the scene has pairs that collide
                        c = (j - n - ncf) // npp
                        if c < pair_count[pair_row]:
                            penalty_pair_contact(dim, mask, position, orientation, velocity, angular_velocity, shape,
                                                 geometry, unit_inertia, mass, friction, contact_stiffness,
                                                 contact_damping, damping_ratio, consts, s, pairs[pair_row, c, 0],
                                                 pairs[pair_row, c, 1], (j - n - ncf) % npp, pair_feature[s, c],
                                                 force, torque)
            elif j < n + ncf + ncp + npl:
                for _r in range(once):
                    c = j - n - ncf - ncp
                    penalty_plane_contact(dim, mask, position, orientation, velocity, angular_velocity, shape,
                                          geometry, unit_inertia, planes, mass, friction, contact_stiffness,
                                          contact_damping, damping_ratio, plane_damping_ratio, plane_friction, consts,
                                          s, c // (n_planes * npts), (c // npts) % n_planes, c % npts, force, torque)
            else:
                for _r in range(once):
                    penalty_integrate_body(dim, mass, linear_damping, angular_damping, unit_inertia, consts, force,
                                           torque, s, s + 1, j - n - ncf - ncp - npl, position, orientation,
                                           velocity, angular_velocity)


@ti.kernel
def impulse_predict(dim: T, mask: T, orientation: _A, velocity: _A, angular_velocity: _A, mass: _A, linear_damping: _A,
                    angular_damping: _A, force_control: _A, torque_control: _A, unit_inertia: _A, consts: _A,
                    s: ti.i32, t: ti.i32, predicted_velocity: _A, predicted_angular_velocity: _A,
                    velocity_change: _A, position_correction: _A, angular_velocity_change: _A):
    """Every body's v*, w* (slot s, controls of step t); the impulse sums cleared."""
    for i in range(velocity.shape[1]):
        impulse_predict_body(dim, mask, orientation, velocity, angular_velocity, mass, linear_damping,
                             angular_damping,
                             force_control, torque_control, unit_inertia, consts, s, t, i, predicted_velocity,
                             predicted_angular_velocity, velocity_change, position_correction,
                             angular_velocity_change)


@ti.kernel
def impulse_pair_contacts(dim: T, position: _A, orientation: _A, velocity: _A, predicted_velocity: _A,
                          predicted_angular_velocity: _A, geometry: _A, unit_inertia: _A, mass: _A, restitution: _A,
                          friction: _A, consts: _A, pairs: _A, pair_count: _A, pair_row: ti.i32, s: ti.i32,
                          velocity_change: _A, position_correction: _A, angular_velocity_change: _A):
    """Sphere-sphere impulses of the candidate pairs in row pair_row, added into the impulse
    sums at slot s."""
    for k in range(pairs.shape[1]):
        if k < pair_count[pair_row]:
            impulse_pair_contact(dim, position, orientation, velocity, predicted_velocity, predicted_angular_velocity,
                                 geometry, unit_inertia, mass, restitution, friction, consts, s, pairs[pair_row, k, 0],
                                 pairs[pair_row, k, 1], velocity_change, position_correction,
                                 angular_velocity_change, True)


@ti.kernel
def impulse_plane_contacts(dim: T, position: _A, orientation: _A, velocity: _A, predicted_velocity: _A,
                           predicted_angular_velocity: _A, geometry: _A, unit_inertia: _A, planes: _A, mass: _A,
                           restitution: _A, friction: _A, plane_restitution: _A, plane_friction: _A, consts: _A,
                           n_planes: ti.i32, s: ti.i32, velocity_change: _A, position_correction: _A,
                           angular_velocity_change: _A):
    """Sphere-plane impulses of every body against the first n_planes planes, added into the
    impulse sums at slot s."""
    for i, pl in ti.ndrange(position.shape[1], n_planes):
        impulse_plane_contact(dim, position, orientation, velocity, predicted_velocity, predicted_angular_velocity,
                              geometry, unit_inertia, planes, mass, restitution, friction, plane_restitution,
                              plane_friction, consts, s, i, pl, velocity_change, position_correction,
                              angular_velocity_change, True)


@ti.kernel
def impulse_integrate(dim: T, mask: T, linear_damping: _A, consts: _A, predicted_velocity: _A,
                      predicted_angular_velocity: _A, velocity_change: _A, position_correction: _A,
                      angular_velocity_change: _A, s: ti.i32, d: ti.i32, position: _A, orientation: _A,
                      velocity: _A, angular_velocity: _A):
    """Every body from slot s to slot d: predicted velocities plus the impulses' changes."""
    for i in range(position.shape[1]):
        impulse_integrate_body(dim, mask, linear_damping, consts, predicted_velocity, predicted_angular_velocity,
                               velocity_change, position_correction, angular_velocity_change, s, d, i, position,
                               orientation, velocity, angular_velocity)


@ti.func
def impulse_advance_item(dim: T, mask: T, geometry: T, unit_inertia: T, planes: T, mass: T, restitution: T,
                         friction: T, linear_damping: T, angular_damping: T, plane_restitution: T, plane_friction: T,
                         force_control: T, torque_control: T, consts: T, pairs: T, pair_count: T, pair_row,
                         n_planes, slot0, t0, width, it, predicted_velocity: T, predicted_angular_velocity: T,
                         velocity_change: T, position_correction: T, angular_velocity_change: T, position: T,
                         orientation: T, velocity: T, angular_velocity: T):
    """Item ``it`` of a fused segment (step it // width from slot slot0, item it % width of the
    step: predict, pair impulse, plane impulse or integration, see :func:`impulse_advance`).
    Returns 1 when the item may have changed something (every body item; a pair or plane
    that came within reach), else 0."""
    n = position.shape[1]
    cap = pairs.shape[1]
    npl = n * n_planes
    k = it // width
    j = it % width
    s = slot0 + k
    acted = 1
    if j < n:
        impulse_predict_body(dim, mask, orientation, velocity, angular_velocity, mass, linear_damping,
                             angular_damping, force_control, torque_control, unit_inertia, consts, s, t0 + k,
                             j, predicted_velocity, predicted_angular_velocity, velocity_change,
                             position_correction, angular_velocity_change)
    elif j < n + cap:
        c = j - n
        acted = 0
        if c < pair_count[pair_row]:
            acted = impulse_pair_contact(dim, position, orientation, velocity, predicted_velocity,
                                         predicted_angular_velocity, geometry, unit_inertia, mass, restitution,
                                         friction, consts, s, pairs[pair_row, c, 0], pairs[pair_row, c, 1],
                                         velocity_change, position_correction, angular_velocity_change, False)
    elif j < n + cap + npl:
        c = j - n - cap
        acted = impulse_plane_contact(dim, position, orientation, velocity, predicted_velocity,
                                      predicted_angular_velocity, geometry, unit_inertia, planes, mass, restitution,
                                      friction, plane_restitution, plane_friction, consts, s, c // n_planes,
                                      c % n_planes, velocity_change, position_correction, angular_velocity_change, False)
    else:
        impulse_integrate_body(dim, mask, linear_damping, consts, predicted_velocity,
                               predicted_angular_velocity,
                               velocity_change, position_correction, angular_velocity_change, s, s + 1,
                               j - n - cap - npl, position, orientation, velocity, angular_velocity)
    return acted


def impulse_items_per_step(n: int, pair_capacity: int, n_planes: int) -> int:
    """Items of one step of :func:`impulse_advance`: n bodies (predict), the pair list's
    capacity, n * n_planes (body, plane) pairs, n bodies (integrate)."""
    return 2 * n + pair_capacity + n * n_planes


@ti.kernel
def impulse_advance(dim: T, mask: T, record: T, geometry: _A, unit_inertia: _A, planes: _A, mass: _A,
                    restitution: _A, friction: _A, linear_damping: _A, angular_damping: _A, plane_restitution: _A,
                    plane_friction: _A, force_control: _A, torque_control: _A, consts: _A, pairs: _A,
                    pair_count: _A, pair_row: ti.i32, n_planes: ti.i32, slot0: ti.i32, t0: ti.i32, t1: ti.i32,
                    acting_items: _A, acting_count: _A, predicted_velocity: _A, predicted_angular_velocity: _A,
                    velocity_change: _A, position_correction: _A, angular_velocity_change: _A, position: _A,
                    orientation: _A, velocity: _A, angular_velocity: _A):
    """Steps t0..t1-1 in one launch (state t in slot slot0 + t - t0): per step, predict, pair
    impulses, plane impulses, integration (items of the flat numbering it = step * width +
    item, width = :func:`impulse_items_per_step`; :func:`impulse_advance_item` runs one).

    With ``record`` (the forward launch) every item runs, and the items that acted (body
    items, pairs and planes within reach: the item functions return 1) are listed in order in
    ``acting_items`` from entry slot0 * width on (as it = step * width + item, width =
    :func:`impulse_items_per_step`), their number in ``acting_count[slot0]``. That forward is
    never differentiated, so it runs each step as four loops (bodies, pairs, planes, bodies:
    sibling loops that feed each other, which reverse mode would get wrong; TAICHI.md
    addendum) in the flat loop's order, without its division per item: the same
    arithmetic in the same order, bitwise the same states (16-ball break, 8 segments of 256
    steps: 9.4 -> 5.5 ms CPU). The gradient is this kernel's with ``record`` False, which
    runs the listed items alone through :func:`impulse_advance_item`: the others added
    nothing forward and add nothing in reverse, so the gradient is the same (bitwise on the
    billiards scenes), and the break's backward skips the ~180 of its 216 items a step that
    are pairs and cushions out of reach (18.9 -> 6.7 ms CPU)."""
    if ti.static(record):
        ti.loop_config(serialize=True)  # one iteration: no thread pool to wake (a launch ~14 instead of ~75 us)
    for _ in range(1):
        n = position.shape[1]
        cap = pairs.shape[1]
        width = 2 * n + cap + n * n_planes
        base = slot0 * width
        if ti.static(record):
            m = 0
            listed = pair_count[pair_row]
            for k in range(t1 - t0):
                s = slot0 + k
                first = k * width  # the step's first item
                for i in range(n):
                    impulse_predict_body(dim, mask, orientation, velocity, angular_velocity, mass, linear_damping,
                                         angular_damping, force_control, torque_control, unit_inertia, consts, s,
                                         t0 + k, i, predicted_velocity, predicted_angular_velocity, velocity_change,
                                         position_correction, angular_velocity_change)
                    acting_items[base + m] = first + i
                    m += 1
                for c in range(listed):
                    if impulse_pair_contact(dim, position, orientation, velocity, predicted_velocity,
                                            predicted_angular_velocity, geometry, unit_inertia, mass, restitution,
                                            friction, consts, s, pairs[pair_row, c, 0], pairs[pair_row, c, 1],
                                            velocity_change, position_correction, angular_velocity_change, True):
                        acting_items[base + m] = first + n + c
                        m += 1
                for i in range(n):
                    for pl in range(n_planes):
                        if impulse_plane_contact(dim, position, orientation, velocity, predicted_velocity,
                                                 predicted_angular_velocity, geometry, unit_inertia, planes, mass,
                                                 restitution, friction, plane_restitution, plane_friction, consts,
                                                 s, i, pl, velocity_change, position_correction,
                                                 angular_velocity_change, True):
                            acting_items[base + m] = first + n + cap + i * n_planes + pl
                            m += 1
                for i in range(n):
                    impulse_integrate_body(dim, mask, linear_damping, consts, predicted_velocity,
                                           predicted_angular_velocity, velocity_change, position_correction,
                                           angular_velocity_change, s, s + 1, i, position, orientation, velocity,
                                           angular_velocity)
                    acting_items[base + m] = first + n + cap + n * n_planes + i
                    m += 1
            acting_count[slot0] = m
        else:
            for p in range(acting_count[slot0]):
                impulse_advance_item(dim, mask, geometry, unit_inertia, planes, mass, restitution, friction,
                                     linear_damping, angular_damping, plane_restitution, plane_friction,
                                     force_control, torque_control, consts, pairs, pair_count, pair_row, n_planes,
                                     slot0, t0, width, acting_items[base + p], predicted_velocity,
                                     predicted_angular_velocity, velocity_change, position_correction,
                                     angular_velocity_change, position, orientation, velocity, angular_velocity)


@ti.kernel
def zero_penalty_adjoints(force: _A, torque: _A, damping_ratio: _A, plane_damping_ratio: _A, s0: ti.i32,
                          s1: ti.i32):
    """Adjoint bookkeeping: the penalty workspace's adjoints (pass the ``.grad`` arrays) of
    slots [s0, s1), and those of the damping ratios (:func:`damping_ratios`), start from zero
    in a reverse sweep."""
    for s in range(s0, s1):  # a parallel loop over slots, plain loops inside (see zero_impulse_adjoints)
        for i in range(force.shape[1]):
            if s == s0:
                damping_ratio[i] = 0.0
            for k in ti.static(range(3)):
                force[s, i, k] = 0.0
                torque[s, i, k] = 0.0
    for p in range(plane_damping_ratio.shape[0]):
        plane_damping_ratio[p] = 0.0


@ti.kernel
def zero_impulse_adjoints(predicted_velocity: _A, predicted_angular_velocity: _A, velocity_change: _A,
                          position_correction: _A, angular_velocity_change: _A, s0: ti.i32, s1: ti.i32):
    """Adjoint bookkeeping: the impulse workspace's adjoints (pass the ``.grad`` arrays) of
    slots [s0, s1) start from zero in a reverse sweep. A parallel loop over the slots with plain
    loops inside: an ndrange over (slot, body, axis) divides out three indices per entry (the
    16-ball break's 256-step segments: ~250 us a launch that way)."""
    for s in range(s0, s1):
        for i in range(predicted_velocity.shape[1]):
            for k in ti.static(range(3)):
                predicted_velocity[s, i, k] = 0.0
                predicted_angular_velocity[s, i, k] = 0.0
                velocity_change[s, i, k] = 0.0
                position_correction[s, i, k] = 0.0
                angular_velocity_change[s, i, k] = 0.0


@ti.kernel
def max_drift(dim: T, position: _A, slot0: ti.i32, s1: ti.i32) -> ti.f64:
    """Largest distance (m) any body moved from its position in slot0 over slots (slot0, s1]."""
    worst = 0.0
    for s, i in ti.ndrange((slot0 + 1, s1 + 1), position.shape[1]):
        d = load_vec(position, s, i, dim) - load_vec(position, slot0, i, dim)
        ti.atomic_max(worst, d.norm())
    return worst
