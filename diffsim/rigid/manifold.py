"""The impulse model's contact solver for boxes and capsules: contact manifolds resolved by a
fixed number of projected Jacobi sweeps with warm starting.

Spheres and planes alone keep the closed-form impulses with time of impact of
:mod:`diffsim.rigid.kernels` (``impulse_*``). A scene with boxes or capsules has contacts of
several points at once (a box face on the floor touches at 4 corners, a box on a box at up to
8 incident corners, :func:`diffsim.collision.narrowphase.box_box_point`), whose impulses
depend on each other; they are solved here, one step from slot s to slot d:

1. predict (per body, :func:`manifold_predict`): v*, w* advanced by gravity, controls and
   damping; the pose x + dt v*, q advanced by w*, and the world-frame I^-1 there;
2. contact points (per item: a pair's point c, or a body's point c against a plane;
   :func:`manifold_pair_contacts`, :func:`manifold_plane_contacts`): the narrow phase of the
   penalty model (``kernels.pair_geometry``, ``kernels.plane_geometry``) at the predicted
   poses; a point is active when its predicted depth exceeds -``speculative_distance`` (1 mm).
   Each active point aims at a normal separation speed (:func:`point_target`)

       biased:  max(-e v_n (a new contact approaching faster than v_bounce), rest)
       relaxed: -e v_n (the same new contact), else min(d0, 0) / dt
       rest = beta max(d0 - slop, 0) / dt if d0 > 0 else d0 / dt

   with v_n its approach speed before the solve, d0 = depth + dt v_n its depth at the start
   of the step (beta: Baumgarte's bias, 0.01; slop 1e-5 m; v_bounce = 2 |g| dt + 1 mm/s; a
   contact is new when it had no impulse in the last step), e and mu the means of the two
   materials'. :func:`manifold_point_setup` then gives each point its tangents, inverse
   masses and angular responses I^-1 (r x e), and :func:`manifold_warm_start` counts the points
   on each body and applies the accumulated impulses of the previous step (the state field
   ``contact_impulse``, one row per item: warm starting). Two kernels, not one: the one
   kernel's gradient came out wrong under Taichi's default options (two boxes and a floor:
   d loss / d omega_y of the falling box 24 % off central differences at 100 steps, 13 % at
   200; ``tests/rigid/test_rigid_user_box_drop.py``), and compiled for longer;
3. ``iterations`` projected Jacobi sweeps (:func:`manifold_sweeps`,
   :func:`diffsim.collision.impulse.projected_contact_impulse`): every active point reads the
   velocities of the previous sweep and updates its accumulated normal impulse (>= 0) and
   tangential impulse (in Coulomb's disk). Jacobi rather than Gauss-Seidel because every sweep
   then writes each velocity once (reverse mode needs each stored element written once,
   TAICHI.md); a body with c active points counts its inverse mass c times, its rotational
   part (c + 1) / 2 times, in each point's update (:func:`split_inverse_mass`), so that the c
   simultaneous updates do not overshoot; warm starting carries the solution from step to
   step, so resting stacks converge over steps rather than within one. The last quarter of
   the sweeps use the relaxed targets;
4. integrate (per body, :func:`manifold_integrate`): x' = x + dt v and q' advanced by w with
   the velocities of the last biased sweep; v', w' of the last sweep.

Each phase is a small serial kernel over its items (one kernel for all phases and steps
compiled its gradient several times longer: compile time grows with the square of a kernel's
size). The workspace has one slot (``ws`` = 0) that every step overwrites; the system re-runs a
step forward in the adjoint sweep before its gradient kernels (``RigidSystem._manifold_steps``).
Layout: per body and sweep (``MANIFOLD_BODY_WORKSPACE``) and per item and sweep
(``MANIFOLD_ITEM_WORKSPACE``). All choices are selects and one runtime branch per item (active
or not) around global writes only.
"""

import taichi as ti

from ..collision.impulse import projected_contact_impulse, tangent_basis
from ..collision.logic import both, eq, ge, gt, lt
from ..collision.narrowphase import box_box_point_on_axes
from ..collision.vector import dot3
from ..compat import compile_time, subscript
from ..rotations import quat_from_angle_z, quat_integrate
from .kernels import (
    BAUMGARTE,
    BOUNCE,
    DT,
    M_BOX_BOX,
    M_PAIRS,
    SLOP,
    SPECULATIVE,
    angular_update,
    body_force,
    choose_pair_feature,
    choose_pair_feature_on_axes,
    load3,
    load_axial,
    load_quat,
    load_vec,
    pair_geometry,
    pair_points,
    plane_geometry,
    plane_points,
    row3,
    store3,
)

T = ti.template()
_A = ti.types.ndarray()

# per-slot workspace: name -> shape after (slots, n) for bodies, (slots, items) for contact points;
# "sweeps" stands for iterations + 1
MANIFOLD_BODY_WORKSPACE = {
    "predicted_velocity": (3,),             # m/s: v*
    "predicted_angular_velocity": (3,),     # rad/s: w*
    "predicted_orientation": (4,),          # quaternion (w, x, y, z) advanced by w*
    "predicted_axes": (9,),                 # world directions of the body axes x, y, z there (3D box pairs)
    "contact_count": (),                    # active contact points on the body (mass splitting)
    "inverse_inertia": (6,),                # 1/(kg m^2): world-frame I^-1 at the predicted pose, xx yy zz xy xz yz
    "velocity_iterate": ("sweeps", 3),      # m/s: v after each sweep (0: after the warm start)
    "angular_velocity_iterate": ("sweeps", 3),  # rad/s: w likewise
}
MANIFOLD_ITEM_WORKSPACE = {
    "contact_frame": (9,),         # unit normal n from the second body (or plane) to the first, tangents t1, t2
    "lever_a": (3,),               # m: contact point minus the first body's predicted centre
    "lever_b": (3,),               # m: likewise for the second body (0 for a plane)
    "inverse_mass": (8,),          # 1/kg: of a and b along n, along t1, along t2 (tangent_basis(n)); 1/m_a, 1/m_b
    "angular_response": (18,),     # rad/(s N s): I^-1 (r x e) of a, then of b, for e = n, t1, t2 (world frame)
    "target_speed": (2,),          # m/s: normal separation speed aimed at, with and without the bias
    "friction_coefficient": (),    # mu of the point
    "active": (),                  # 1 when the point is in contact this step, else 0
    "impulse_iterate": ("sweeps", 4),  # N s: accumulated (normal, tangential x, y, z) after each sweep
}


def item_count(mask, dim, pair_capacity, n, n_planes):
    """Contact items of a scene: pair_capacity pairs of pair_points each, then n bodies times
    n_planes planes times plane_points."""
    return pair_capacity * pair_points(mask, dim) + n * n_planes * (plane_points(mask, dim) if n_planes else 0)


@ti.func
def predicted_quat(dim: T, orientation: T, s, i, w, dt):
    """Body i's orientation at slot s advanced by the angular velocity w over dt."""
    if ti.static(dim == 3):
        return quat_integrate(load_quat(orientation, s, i, dim), w, dt)
    else:
        return quat_from_angle_z(orientation[s, i] + dt * w[2])


@ti.func
def manifold_predict_body(dim: T, mask: T, orientation: T, velocity: T, angular_velocity: T, mass: T,
                          linear_damping: T, angular_damping: T, force_control: T, torque_control: T,
                          unit_inertia: T, consts: T, s, t, i, ws, predicted_velocity: T, predicted_angular_velocity: T,
                          predicted_orientation: T, predicted_axes: T, contact_count: T, inverse_inertia: T,
                          velocity_iterate: T, angular_velocity_iterate: T):
    """Body i's v*, w* (forces of step t), its predicted orientation (and in 3D scenes with box
    pairs its axes there, which the pairs' geometry reads: :func:`manifold_pair_point`), sweep
    0's velocities (the warm start adds to them) and its contact count cleared."""
    dt = consts[DT]
    m = mass[i]
    f = body_force(dim, mask, velocity, mass, force_control, consts, s, t, i)
    v = (load_vec(velocity, s, i, dim) + dt * f / m) / (1.0 + dt * linear_damping[i])
    w = angular_update(load_axial(angular_velocity, s, i, dim), load_quat(orientation, s, i, dim),
                       load_axial(torque_control, t, i, dim), m, row3(unit_inertia, i), angular_damping[i], dt, dim)
    store3(predicted_velocity, ws, i, v)
    store3(predicted_angular_velocity, ws, i, w)
    q = predicted_quat(dim, orientation, s, i, w, dt)
    for k in ti.static(range(4)):
        predicted_orientation[ws, i, k] = q[k]
    r = rotation_rows(dim, q)
    if ti.static(uses_axes(dim, mask)):  # the columns of R: the body axes in the world
        for c in ti.static(range(3)):
            for k in ti.static(range(3)):
                predicted_axes[ws, i, 3 * c + k] = r[k][c]
    inv_i = world_inverse_inertia(dim, m, row3(unit_inertia, i), r)
    for k in ti.static(range(6)):
        inverse_inertia[ws, i, k] = inv_i[k]
    for k in ti.static(range(3)):
        velocity_iterate[ws, i, 0, k] = v[k]
        angular_velocity_iterate[ws, i, 0, k] = w[k]
    contact_count[ws, i] = 0.0


def uses_axes(dim, mask):
    """Whether a scene's pair geometry reads the bodies' predicted axes (compile time): 3D with
    box-box pairs alone (:func:`manifold_pair_point`)."""
    return dim == 3 and (mask & M_PAIRS) == M_BOX_BOX


@ti.func
def load_quat4(Q: T, s, i):
    return ti.Vector([Q[s, i, 0], Q[s, i, 1], Q[s, i, 2], Q[s, i, 3]])


@ti.func
def point_target(consts: T, v_n, depth, e, touching):
    """Normal separation speed (m/s) a contact point aims at: restitution -e v_n for a new
    contact (not ``touching`` in the last step) approaching faster than the bounce threshold,
    else 0, raised to the Baumgarte bias that recovers the depth beyond the slop at the start
    of the step (module docstring). A point that was already pushing does not bounce: with
    bounces of resting points a 10-box tower kept hopping (its top box at +-0.05 m/s)."""
    dt = consts[DT]
    d0 = depth + dt * v_n  # signed depth at the start of the step (< 0: a gap the point may close)
    rest = ti.select(gt(d0, 0.0), consts[BAUMGARTE] * ti.max(d0 - consts[SLOP], 0.0), d0) / dt
    relaxed = ti.min(d0, 0.0) / dt
    bounce = both(lt(v_n, -consts[BOUNCE]), not touching)
    return ti.Vector([ti.select(bounce, ti.max(-e * v_n, rest), rest), ti.select(bounce, -e * v_n, relaxed)])


@ti.func
def store_geometry(k, ws, on, n, ra, rb, target, mu, contact_frame: T, lever_a: T, lever_b: T, target_speed: T,
                   friction_coefficient: T, active: T):
    """Item k's contact point at slot s: normal, levers, target speeds, friction, activity."""
    for c in ti.static(range(3)):
        contact_frame[ws, k, c] = n[c]
    store3(lever_a, ws, k, ra)
    store3(lever_b, ws, k, rb)
    target_speed[ws, k, 0] = target[0]
    target_speed[ws, k, 1] = target[1]
    friction_coefficient[ws, k] = mu
    active[ws, k] = ti.select(on, 1.0, 0.0)


@ti.func
def frame_of(n, t1, t2):
    return ti.Vector([n[0], n[1], n[2], t1[0], t1[1], t1[2], t2[0], t2[1], t2[2]])


@compile_time
def rotation_rows(dim, q):
    """R(q) (body -> world) of a unit quaternion q as three rows of three scalar expressions
    (3D; None in 2D), built while the kernel compiles: the prediction's inverse inertia and the
    body axes (R's columns) share them, with no ti.Matrix or function call in the kernel."""
    if dim != 3:
        return None
    w, x, y, z = (subscript(q, k) for k in range(4))
    return [[1.0 - 2.0 * (y * y + z * z), 2.0 * (x * y - w * z), 2.0 * (x * z + w * y)],
            [2.0 * (x * y + w * z), 1.0 - 2.0 * (x * x + z * z), 2.0 * (y * z - w * x)],
            [2.0 * (x * z - w * y), 2.0 * (y * z + w * x), 1.0 - 2.0 * (x * x + y * y)]]


@compile_time
def world_inverse_inertia(dim, m, iu, r):
    """I^-1 = R diag(1 / (m iu)) R^T (1/(kg m^2)) of a body at rotation R (rows r,
    :func:`rotation_rows`), as its six entries (xx, yy, zz, xy, xz, yz), in scalars (ti.Matrix
    products compile slowly in gradient kernels); 2D: only zz, the others 0."""
    if dim == 3:
        d = [1.0 / (m * subscript(iu, k)) for k in range(3)]
        return ti.Vector([r[i][0] * r[j][0] * d[0] + r[i][1] * r[j][1] * d[1] + r[i][2] * r[j][2] * d[2]
                          for i, j in ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))])
    return ti.Vector([0.0, 0.0, 1.0 / (m * subscript(iu, 2)), 0.0, 0.0, 0.0])


@ti.func
def inverse_inertia_times(dim: T, inverse_inertia: T, ws, i, u, v, w):
    """I^-1 u, I^-1 v, I^-1 w for body i (I^-1: the predict phase's world-frame inverse inertia;
    2D: its zz entry alone)."""
    if ti.static(dim == 3):  # a return per static branch: no local assigned twice
        xx, yy, zz = inverse_inertia[ws, i, 0], inverse_inertia[ws, i, 1], inverse_inertia[ws, i, 2]
        xy, xz, yz = inverse_inertia[ws, i, 3], inverse_inertia[ws, i, 4], inverse_inertia[ws, i, 5]
        return (ti.Vector([xx * u[0] + xy * u[1] + xz * u[2], xy * u[0] + yy * u[1] + yz * u[2],
                           xz * u[0] + yz * u[1] + zz * u[2]]),
                ti.Vector([xx * v[0] + xy * v[1] + xz * v[2], xy * v[0] + yy * v[1] + yz * v[2],
                           xz * v[0] + yz * v[1] + zz * v[2]]),
                ti.Vector([xx * w[0] + xy * w[1] + xz * w[2], xy * w[0] + yy * w[1] + yz * w[2],
                           xz * w[0] + yz * w[1] + zz * w[2]]))
    else:
        zz = inverse_inertia[ws, i, 2]
        return ti.Vector([0.0, 0.0, zz * u[2]]), ti.Vector([0.0, 0.0, zz * v[2]]), ti.Vector([0.0, 0.0, zz * w[2]])


@ti.func
def body_responses(dim: T, inverse_inertia: T, ws, i, r, n, t1, t2):
    """I^-1 (r x e) (rad/s per N s, world frame) of body i at lever r for e = n, t1, t2: the
    angular velocity changes per unit impulse that the sweeps apply, so that they rotate
    nothing; then (r x e) . I^-1 (r x e), the rotational parts of the inverse masses along n, t1,
    t2 (each cross product computed once: the lean gradient kernels do not merge repeats)."""
    u, v, w = r.cross(n), r.cross(t1), r.cross(t2)
    x, y, z = inverse_inertia_times(dim, inverse_inertia, ws, i, u, v, w)
    return x, y, z, dot3(u, x), dot3(v, y), dot3(w, z)


@ti.func
def joined(xa, ya, za, xb, yb, zb):
    """Six 3-vectors as one 18-vector (the layout of ``angular_response``)."""
    return ti.Vector([v[c] for v in ti.static((xa, ya, za, xb, yb, zb)) for c in ti.static(range(3))])


@ti.func
def warm_impulse(on, n, contact_impulse: T, s, k):
    """(normal, tangential x, y, z) impulses of item k carried from the last step (N s), the
    tangential part projected onto the current contact plane; zero when the point is not active."""
    lam = contact_impulse[s, k, 0]
    carried = ti.Vector([contact_impulse[s, k, 1], contact_impulse[s, k, 2], contact_impulse[s, k, 3]])
    jt = carried - dot3(carried, n) * n  # a new name: a local assigned twice is an adstack in the lean adjoint
    return ti.select(on, ti.Vector([lam, jt[0], jt[1], jt[2]]), ti.Vector([0.0, 0.0, 0.0, 0.0]))


@ti.func
def add_velocity(ws, i, sweep, dv, dw, velocity_iterate: T, angular_velocity_iterate: T):
    """Add dv (m/s) and dw (rad/s) to body i's velocities of a sweep."""
    for c in ti.static(range(3)):
        velocity_iterate[ws, i, sweep, c] += dv[c]
        angular_velocity_iterate[ws, i, sweep, c] += dw[c]




@ti.func
def manifold_pair_point(dim: T, mask: T, shape: T, geometry: T, restitution: T, friction: T, position: T, consts: T,
                        contact_impulse: T, predicted_velocity: T, predicted_angular_velocity: T,
                        predicted_orientation: T, predicted_axes: T, s, ws, i, j, c, k, feature, contact_frame: T,
                        lever_a: T, lever_b: T, target_speed: T, friction_coefficient: T, active: T):
    """Point c of the candidate pair (i, j), item k: its geometry at the predicted poses (for the
    pair's feature, :func:`manifold_pair_features`) and its target speeds (the solver's masses:
    :func:`manifold_point_masses`). 3D box pairs read the boxes' axes that the prediction
    stored (:func:`~diffsim.collision.narrowphase.box_box_point_on_axes`: the pair kernel's
    gradient compiled in 1.8 CPU s against 2.3-2.5 rotating the quaternions and selecting the
    axes in it; 1.4-1.6 with the comparisons of :mod:`diffsim.collision.logic`)."""
    swap = gt(shape[i], shape[j])  # canonical order: the lower shape code first (as the narrow phase wants)
    a, b = ti.select(swap, j, i), ti.select(swap, i, j)
    dt = consts[DT]
    va, vb = load3(predicted_velocity, ws, a), load3(predicted_velocity, ws, b)
    xa = load_vec(position, s, a, dim) + dt * va
    xb = load_vec(position, s, b, dim) + dt * vb
    n, depth, p = geometry_of_pair(dim, mask, shape, geometry, predicted_orientation, predicted_axes, ws, a, b, xa,
                                   xb, c, feature)
    ra, rb = p - xa, p - xb
    v_n = dot3((va + load3(predicted_angular_velocity, ws, a).cross(ra))
               - (vb + load3(predicted_angular_velocity, ws, b).cross(rb)), n)
    store_geometry(k, ws, gt(depth, -consts[SPECULATIVE]), n, ra, rb,
                   point_target(consts, v_n, depth, 0.5 * (restitution[a] + restitution[b]),
                                gt(contact_impulse[s, k, 0], 0.0)),
                   0.5 * (friction[a] + friction[b]), contact_frame, lever_a, lever_b, target_speed,
                   friction_coefficient, active)


@ti.func
def geometry_of_pair(dim: T, mask: T, shape: T, geometry: T, predicted_orientation: T, predicted_axes: T, ws, a, b,
                     xa, xb, c, feature):
    """Point c of bodies a, b (canonical order) at their predicted centres xa, xb and
    orientations: (normal from b to a, depth, point) of :func:`~diffsim.rigid.kernels.pair_geometry`,
    box pairs from the predicted axes where the prediction stored them (:func:`uses_axes`)."""
    if ti.static(uses_axes(dim, mask)):
        return box_box_point_on_axes(feature, xa, row3(geometry, a), xb, row3(geometry, b), c, predicted_axes, ws, a,
                                     b)
    else:
        return pair_geometry(dim, mask, shape[a], shape[b], xa, load_quat4(predicted_orientation, ws, a),
                             row3(geometry, a), xb, load_quat4(predicted_orientation, ws, b), row3(geometry, b), c,
                             feature)


@ti.func
def manifold_plane_point(dim: T, mask: T, shape: T, geometry: T, planes: T, restitution: T, friction: T,
                         plane_restitution: T, plane_friction: T, position: T, consts: T, contact_impulse: T,
                         predicted_velocity: T, predicted_angular_velocity: T, predicted_orientation: T, s, ws, i, pl, c,
                         k, contact_frame: T, lever_a: T, lever_b: T, target_speed: T, friction_coefficient: T,
                         active: T):
    """Point c of body i against plane pl, item k (as :func:`manifold_pair_point`, the plane static)."""
    dt = consts[DT]
    v = load3(predicted_velocity, ws, i)
    x = load_vec(position, s, i, dim) + dt * v
    pn = ti.Vector([planes[pl, 0], planes[pl, 1], planes[pl, 2]])
    n, depth, p = plane_geometry(dim, mask, shape[i], x, load_quat4(predicted_orientation, ws, i), row3(geometry, i),
                                 pn, planes[pl, 3], c)
    r = p - x
    v_n = dot3(v + load3(predicted_angular_velocity, ws, i).cross(r), n)
    store_geometry(k, ws, gt(depth, -consts[SPECULATIVE]), n, r, ti.Vector([0.0, 0.0, 0.0]),
                   point_target(consts, v_n, depth, 0.5 * (restitution[i] + plane_restitution[pl]),
                                gt(contact_impulse[s, k, 0], 0.0)),
                   0.5 * (friction[i] + plane_friction[pl]), contact_frame, lever_a, lever_b, target_speed,
                   friction_coefficient, active)


@ti.func
def manifold_point_masses(dim: T, mass: T, inverse_inertia: T, contact_frame: T, lever_a: T, lever_b: T, ws, a, b,
                          k, inverse_mass: T, angular_response: T):
    """Item k between bodies a and b (b < 0: a plane), once its geometry is known: the
    tangents t1, t2, the inverse masses along n, t1, t2 and the angular responses
    (:func:`body_responses`)."""
    plane = lt(b, 0)
    bb = ti.max(b, 0)
    n = ti.Vector([contact_frame[ws, k, 0], contact_frame[ws, k, 1], contact_frame[ws, k, 2]])
    t1, t2 = tangent_basis(n)
    for c in ti.static(range(3)):
        contact_frame[ws, k, 3 + c] = t1[c]
        contact_frame[ws, k, 6 + c] = t2[c]
    ra, rb = load3(lever_a, ws, k), load3(lever_b, ws, k)
    ma, mb = mass[a], mass[bb]
    xa, ya, za, na, t1a, t2a = body_responses(dim, inverse_inertia, ws, a, ra, n, t1, t2)
    xb, yb, zb, nb, t1b, t2b = body_responses(dim, inverse_inertia, ws, bb, rb, n, t1, t2)
    resp = joined(xa, ya, za, xb, yb, zb)
    wb = ti.select(plane, 0.0, 1.0)  # a plane's responses (lever 0) vanish; its inverse mass too
    inv = ti.Vector([1.0 / ma + na, wb * (1.0 / mb + nb), 1.0 / ma + t1a, wb * (1.0 / mb + t1b),
                     1.0 / ma + t2a, wb * (1.0 / mb + t2b), 1.0 / ma, wb / mb])
    for c in ti.static(range(18)):
        angular_response[ws, k, c] = resp[c]
    for c in ti.static(range(8)):
        inverse_mass[ws, k, c] = inv[c]


@ti.func
def manifold_point_warm_start(contact_impulse: T, contact_frame: T, active: T, inverse_mass: T, angular_response: T,
                              s, ws, a, b, k, contact_count: T, velocity_iterate: T, angular_velocity_iterate: T,
                              impulse_iterate: T):
    """Item k between bodies a and b (b < 0: a plane), once its masses are known
    (:func:`manifold_point_masses`): the bodies' contact counts, and the warm start (the
    impulses of the last step, applied to sweep 0)."""
    on = gt(active[ws, k], 0.0)
    plane = lt(b, 0)
    bb = ti.max(b, 0)
    n = ti.Vector([contact_frame[ws, k, 0], contact_frame[ws, k, 1], contact_frame[ws, k, 2]])
    t1 = ti.Vector([contact_frame[ws, k, 3], contact_frame[ws, k, 4], contact_frame[ws, k, 5]])
    t2 = ti.Vector([contact_frame[ws, k, 6], contact_frame[ws, k, 7], contact_frame[ws, k, 8]])
    warm = warm_impulse(on, n, contact_impulse, s, k)
    for c in ti.static(range(4)):
        impulse_iterate[ws, k, 0, c] = warm[c]
    if on:
        contact_count[ws, a] += 1.0
        jt = ti.Vector([warm[1], warm[2], warm[3]])
        d1, d2 = dot3(jt, t1), dot3(jt, t2)
        J = warm[0] * n + jt
        response = ti.Vector([warm[0] * angular_response[ws, k, c] + d1 * angular_response[ws, k, 3 + c]
                              + d2 * angular_response[ws, k, 6 + c] for c in ti.static(range(3))])
        add_velocity(ws, a, 0, J * inverse_mass[ws, k, 6], response, velocity_iterate, angular_velocity_iterate)
        if not plane:
            contact_count[ws, bb] += 1.0
            response_b = ti.Vector([warm[0] * angular_response[ws, k, 9 + c] + d1 * angular_response[ws, k, 12 + c]
                                    + d2 * angular_response[ws, k, 15 + c] for c in ti.static(range(3))])
            add_velocity(ws, bb, 0, -J * inverse_mass[ws, k, 7], -response_b, velocity_iterate,
                         angular_velocity_iterate)


@ti.func
def split_inverse_mass(count, w, w_linear):
    """A body's inverse effective mass (1/kg) at one of its count simultaneous contact points,
    as a Jacobi sweep weighs it: the translational part 1/m counted count times (the points'
    pushes on the centre add up) and the rotational part w - 1/m (count + 1) / 2 times (points
    around the centre turn the body opposite ways, and their turns largely cancel). Plain mass
    splitting (both parts counted count times) converged too slowly: two cubes meeting face on
    left e = 0.3 at 0.57 e after 8 sweeps."""
    return count * w_linear + 0.5 * (count + 1.0) * (w - w_linear)


@ti.func
def manifold_sweep_point(contact_count: T, contact_frame: T, lever_a: T, lever_b: T, inverse_mass: T,
                         angular_response: T, target_speed: T, friction_coefficient: T, active: T, ws, d, a, b, k,
                         sweep, relax, last,
                         velocity_iterate: T, angular_velocity_iterate: T, impulse_iterate: T, contact_impulse: T):
    """Sweep ``sweep`` of item k between bodies a and b (b < 0: a plane): its accumulated
    impulses from the velocities of this sweep (projected_contact_impulse, inverse masses
    split by the bodies' contact counts), the change applied to the next sweep's velocities.
    last: this is the last sweep, whose impulses are also the state ``contact_impulse`` at
    slot d (the next step's warm start)."""
    if gt(active[ws, k], 0.0):
        bb = ti.max(b, 0)
        plane = lt(b, 0)
        n = ti.Vector([contact_frame[ws, k, 0], contact_frame[ws, k, 1], contact_frame[ws, k, 2]])
        t1 = ti.Vector([contact_frame[ws, k, 3], contact_frame[ws, k, 4], contact_frame[ws, k, 5]])
        t2 = ti.Vector([contact_frame[ws, k, 6], contact_frame[ws, k, 7], contact_frame[ws, k, 8]])
        ra, rb = load3(lever_a, ws, k), load3(lever_b, ws, k)
        zero = ti.Vector([0.0, 0.0, 0.0])
        vb = ti.select(plane, zero, ti.Vector([velocity_iterate[ws, bb, sweep, c] for c in ti.static(range(3))]))
        wb = ti.select(plane, zero, ti.Vector([angular_velocity_iterate[ws, bb, sweep, c]
                                               for c in ti.static(range(3))]))
        va = ti.Vector([velocity_iterate[ws, a, sweep, c] for c in ti.static(range(3))])
        wa = ti.Vector([angular_velocity_iterate[ws, a, sweep, c] for c in ti.static(range(3))])
        rel = (va + wa.cross(ra)) - (vb + wb.cross(rb))
        ca = ti.max(contact_count[ws, a], 1.0)
        cb = ti.max(contact_count[ws, bb], 1.0)
        w = ti.Vector([split_inverse_mass(ca, inverse_mass[ws, k, 2 * e], inverse_mass[ws, k, 6])
                       + split_inverse_mass(cb, inverse_mass[ws, k, 2 * e + 1], inverse_mass[ws, k, 7])
                       for e in ti.static(range(3))])
        lam0 = impulse_iterate[ws, k, sweep, 0]
        jt0 = ti.Vector([impulse_iterate[ws, k, sweep, 1], impulse_iterate[ws, k, sweep, 2],
                         impulse_iterate[ws, k, sweep, 3]])
        lam, jt = projected_contact_impulse(rel, n, t1, t2, lam0, jt0, target_speed[ws, k, ti.select(relax, 1, 0)],
                                            w[0], w[1], w[2], friction_coefficient[ws, k])
        djt = jt - jt0
        dn, d1, d2 = lam - lam0, dot3(djt, t1), dot3(djt, t2)
        J = dn * n + d1 * t1 + d2 * t2
        out = ti.Vector([lam, jt[0], jt[1], jt[2]])
        for c in ti.static(range(4)):
            impulse_iterate[ws, k, sweep + 1, c] = out[c]
        if last:
            for c in ti.static(range(4)):
                contact_impulse[d, k, c] = out[c]
        dwa = ti.Vector([dn * angular_response[ws, k, c] + d1 * angular_response[ws, k, 3 + c]
                         + d2 * angular_response[ws, k, 6 + c] for c in ti.static(range(3))])
        add_velocity(ws, a, sweep + 1, inverse_mass[ws, k, 6] * J, dwa, velocity_iterate, angular_velocity_iterate)
        if not plane:
            dwb = ti.Vector([dn * angular_response[ws, k, 9 + c] + d1 * angular_response[ws, k, 12 + c]
                             + d2 * angular_response[ws, k, 15 + c] for c in ti.static(range(3))])
            add_velocity(ws, bb, sweep + 1, -inverse_mass[ws, k, 7] * J, -dwb, velocity_iterate,
                         angular_velocity_iterate)
    else:
        for c in ti.static(range(4)):
            impulse_iterate[ws, k, sweep + 1, c] = 0.0
        if last:
            for c in ti.static(range(4)):
                contact_impulse[d, k, c] = 0.0


@ti.func
def manifold_integrate_body(dim: T, consts: T, velocity_iterate: T, angular_velocity_iterate: T, s, d, ws, i, biased,
                            sweeps, position: T, orientation: T, velocity: T, angular_velocity: T):
    """x' = x + dt v and the orientation advanced by w, with v, w of the last sweep with the
    penetration bias (sweep ``biased``); v' and w' of the last sweep (relaxed: the bias's push
    moves the bodies apart but does not stay in their velocities, so resting stacks do not
    hop)."""
    dt = consts[DT]
    vp = ti.Vector([velocity_iterate[ws, i, biased, c] for c in ti.static(range(3))])
    wp = ti.Vector([angular_velocity_iterate[ws, i, biased, c] for c in ti.static(range(3))])
    v = ti.Vector([velocity_iterate[ws, i, sweeps, c] for c in ti.static(range(3))])
    w = ti.Vector([angular_velocity_iterate[ws, i, sweeps, c] for c in ti.static(range(3))])
    for c in ti.static(range(dim)):
        velocity[d, i, c] = v[c]
    if ti.static(dim == 3):
        qn = quat_integrate(load_quat(orientation, s, i, dim), wp, dt)
        for c in ti.static(range(4)):
            orientation[d, i, c] = qn[c]
        for c in ti.static(range(3)):
            angular_velocity[d, i, c] = w[c]
    else:
        orientation[d, i] = orientation[s, i] + dt * wp[2]
        angular_velocity[d, i] = w[2]
    for c in ti.static(range(dim)):
        position[d, i, c] = position[s, i, c] + dt * vp[c]


@ti.func
def pair_bodies(shape: T, pairs: T, pair_row, p):
    """The bodies (a, b) of candidate pair p in canonical order (lower shape code first)."""
    i, j = pairs[pair_row, p, 0], pairs[pair_row, p, 1]
    swap = gt(shape[i], shape[j])
    return ti.select(swap, j, i), ti.select(swap, i, j)


@ti.kernel
def manifold_predict(dim: T, mask: T, mass: _A, linear_damping: _A, angular_damping: _A, force_control: _A,
                     torque_control: _A, unit_inertia: _A, consts: _A, orientation: _A, velocity: _A,
                     angular_velocity: _A, s: ti.i32, t: ti.i32, ws: ti.i32, predicted_velocity: _A,
                     predicted_angular_velocity: _A, predicted_orientation: _A, predicted_axes: _A, contact_count: _A,
                     inverse_inertia: _A, velocity_iterate: _A, angular_velocity_iterate: _A):
    """Phase 1 of step t from slot s (module docstring): every body's prediction (serial loop)."""
    for _ in range(1):
        for i in range(velocity.shape[1]):
            manifold_predict_body(dim, mask, orientation, velocity, angular_velocity, mass, linear_damping,
                                  angular_damping, force_control, torque_control, unit_inertia, consts, s, t, i, ws,
                                  predicted_velocity, predicted_angular_velocity, predicted_orientation,
                                  predicted_axes, contact_count, inverse_inertia, velocity_iterate,
                                  angular_velocity_iterate)


@ti.func
def item_bodies(shape: T, pairs: T, pair_row, n_planes, npp: T, npts: T, k):
    """The bodies (a, b) of item k: a candidate pair's in canonical order, or (body, -1) for a
    point against a plane (items: pair_points per candidate pair, then plane_points per body and
    plane)."""
    ncp = pairs.shape[1] * npp
    pa, pb = pair_bodies(shape, pairs, pair_row, ti.min(k // ti.static(max(npp, 1)), pairs.shape[1] - 1))
    pair = lt(k, ncp)
    return ti.select(pair, pa, (k - ncp) // ti.max(n_planes * npts, 1)), ti.select(pair, pb, -1)


@ti.kernel
def manifold_pair_contacts(dim: T, mask: T, shape: _A, geometry: _A, restitution: _A, friction: _A, consts: _A,
                           pairs: _A, pair_count: _A, pair_row: ti.i32, position: _A, contact_impulse: _A, s: ti.i32,
                           ws: ti.i32, pair_feature: _A,
                           predicted_velocity: _A, predicted_angular_velocity: _A, predicted_orientation: _A,
                           predicted_axes: _A, contact_frame: _A, lever_a: _A, lever_b: _A, target_speed: _A,
                           friction_coefficient: _A, active: _A):
    """Phase 2 of the step from slot s, body pairs (module docstring): the geometry and target
    speeds of every candidate pair's points (serial loop; its own kernel, so that its gradient
    compiles apart from the planes')."""
    for _ in range(1):
        npp = ti.static(pair_points(mask, dim))
        for k in range(pairs.shape[1] * npp):
            p = k // npp
            if lt(p, pair_count[pair_row]):
                manifold_pair_point(dim, mask, shape, geometry, restitution, friction, position, consts,
                                    contact_impulse, predicted_velocity, predicted_angular_velocity,
                                    predicted_orientation, predicted_axes, s, ws, pairs[pair_row, p, 0],
                                    pairs[pair_row, p, 1], k % npp,
                                    k, pair_feature[ws, p], contact_frame, lever_a, lever_b, target_speed,
                                    friction_coefficient, active)
            else:
                active[ws, k] = 0.0


@ti.kernel
def manifold_pair_features(dim: T, mask: T, shape: _A, geometry: _A, consts: _A, pairs: _A, pair_count: _A,
                           pair_row: ti.i32, position: _A, s: ti.i32, ws: ti.i32, predicted_velocity: _A,
                           predicted_orientation: _A, predicted_axes: _A, pair_feature: _A):
    """Forward only, before :func:`manifold_pair_contacts`: every candidate pair's contact feature
    (:func:`~diffsim.rigid.kernels.choose_pair_feature`, an int) at the predicted poses of the
    step from slot s, into pair_feature[ws, pair]."""
    for _ in range(1):
        for p in range(pairs.shape[1]):
            if lt(p, pair_count[pair_row]):
                i, j = pairs[pair_row, p, 0], pairs[pair_row, p, 1]
                a, b = i, j
                if shape[i] > shape[j]:  # the canonical order of manifold_pair_point
                    a, b = j, i
                dt = consts[DT]
                xa = load_vec(position, s, a, dim) + dt * load3(predicted_velocity, ws, a)
                xb = load_vec(position, s, b, dim) + dt * load3(predicted_velocity, ws, b)
                if ti.static(uses_axes(dim, mask)):
                    pair_feature[ws, p] = choose_pair_feature_on_axes(dim, mask, shape[a], shape[b], xa,
                                                                      row3(geometry, a), xb, row3(geometry, b),
                                                                      predicted_axes, ws, a, b)
                else:
                    pair_feature[ws, p] = choose_pair_feature(dim, mask, shape[a], shape[b], xa,
                                                              load_quat4(predicted_orientation, ws, a),
                                                              row3(geometry, a), xb,
                                                              load_quat4(predicted_orientation, ws, b),
                                                              row3(geometry, b))


@ti.kernel
def manifold_plane_contacts(dim: T, mask: T, shape: _A, geometry: _A, planes: _A, restitution: _A, friction: _A,
                            plane_restitution: _A, plane_friction: _A, consts: _A, n_planes: ti.i32,
                            first_item: ti.i32, position: _A, contact_impulse: _A, s: ti.i32, ws: ti.i32,
                            predicted_velocity: _A,
                            predicted_angular_velocity: _A, predicted_orientation: _A, contact_frame: _A,
                            lever_a: _A, lever_b: _A, target_speed: _A, friction_coefficient: _A, active: _A):
    """Phase 2 of the step from slot s, planes: the geometry and target speeds of every body's
    points against every plane (items from first_item on; serial loop)."""
    for _ in range(1):
        npts = ti.static(plane_points(mask, dim))
        for c in range(position.shape[1] * n_planes * npts):
            manifold_plane_point(dim, mask, shape, geometry, planes, restitution, friction, plane_restitution,
                                 plane_friction, position, consts, contact_impulse, predicted_velocity,
                                 predicted_angular_velocity, predicted_orientation, s, ws, c // (n_planes * npts),
                                 (c // npts) % n_planes, c % npts, first_item + c, contact_frame, lever_a, lever_b,
                                 target_speed, friction_coefficient, active)


@ti.kernel
def manifold_point_setup(dim: T, mask: T, shape: _A, mass: _A, pairs: _A, pair_row: ti.i32, n_planes: ti.i32,
                         inverse_inertia: _A, lever_a: _A, lever_b: _A, ws: ti.i32, contact_frame: _A,
                         inverse_mass: _A, angular_response: _A):
    """Phase 2 of a step, every point's tangents and masses (:func:`manifold_point_masses`;
    serial loop)."""
    for _ in range(1):
        npp = ti.static(pair_points(mask, dim))
        npts = ti.static(plane_points(mask, dim))
        for k in range(contact_frame.shape[1]):
            a, b = item_bodies(shape, pairs, pair_row, n_planes, npp, npts, k)
            manifold_point_masses(dim, mass, inverse_inertia, contact_frame, lever_a, lever_b, ws, a, b, k,
                                  inverse_mass, angular_response)


@ti.kernel
def manifold_warm_start(dim: T, mask: T, shape: _A, pairs: _A, pair_row: ti.i32, n_planes: ti.i32,
                        contact_impulse: _A, contact_frame: _A, active: _A, inverse_mass: _A, angular_response: _A,
                        s: ti.i32, ws: ti.i32, contact_count: _A, velocity_iterate: _A,
                        angular_velocity_iterate: _A, impulse_iterate: _A):
    """Phase 2 of the step from slot s, every point's warm start and its bodies' contact counts
    (:func:`manifold_point_warm_start`; serial loop)."""
    for _ in range(1):
        npp = ti.static(pair_points(mask, dim))
        npts = ti.static(plane_points(mask, dim))
        for k in range(active.shape[1]):
            a, b = item_bodies(shape, pairs, pair_row, n_planes, npp, npts, k)
            manifold_point_warm_start(contact_impulse, contact_frame, active, inverse_mass, angular_response, s, ws,
                                      a, b, k, contact_count, velocity_iterate, angular_velocity_iterate,
                                      impulse_iterate)


@ti.kernel
def manifold_sweeps(dim: T, mask: T, shape: _A, pairs: _A, pair_row: ti.i32, n_planes: ti.i32, contact_count: _A,
                    contact_frame: _A, lever_a: _A, lever_b: _A, inverse_mass: _A, angular_response: _A,
                    target_speed: _A, friction_coefficient: _A, active: _A, ws: ti.i32, d: ti.i32,
                    velocity_iterate: _A, angular_velocity_iterate: _A, impulse_iterate: _A, contact_impulse: _A):
    """Phase 3 of the step from slot s to slot d: the sweeps, each the bodies' copies then the
    points, in one serial loop; the last sweep's impulses are also the state
    ``contact_impulse`` at slot d."""
    for _ in range(1):
        n = velocity_iterate.shape[1]
        npp = ti.static(pair_points(mask, dim))
        npts = ti.static(plane_points(mask, dim))
        ncp = pairs.shape[1] * npp
        items = ncp + n * n_planes * npts
        sweeps = velocity_iterate.shape[2] - 1
        for r in range(sweeps * (n + items)):
            sweep = r // (n + items)
            jj = r % (n + items)
            if lt(jj, n):
                for c in ti.static(range(3)):
                    velocity_iterate[ws, jj, sweep + 1, c] = velocity_iterate[ws, jj, sweep, c]
                    angular_velocity_iterate[ws, jj, sweep + 1, c] = angular_velocity_iterate[ws, jj, sweep, c]
            else:
                k = jj - n
                a, b = item_bodies(shape, pairs, pair_row, n_planes, npp, npts, k)
                manifold_sweep_point(contact_count, contact_frame, lever_a, lever_b, inverse_mass, angular_response,
                                     target_speed, friction_coefficient, active, ws, d, a, b, k, sweep,
                                     ge(sweep, sweeps - sweeps // 4), eq(sweep, sweeps - 1), velocity_iterate,
                                     angular_velocity_iterate, impulse_iterate, contact_impulse)


@ti.kernel
def manifold_integrate(dim: T, consts: _A, velocity_iterate: _A, angular_velocity_iterate: _A, s: ti.i32, d: ti.i32,
                       ws: ti.i32,
                       position: _A, orientation: _A, velocity: _A, angular_velocity: _A):
    """Phase 4 of the step from slot s to slot d: every body's new state (serial loop)."""
    for _ in range(1):
        sweeps = velocity_iterate.shape[2] - 1
        for i in range(position.shape[1]):
            manifold_integrate_body(dim, consts, velocity_iterate, angular_velocity_iterate, s, d, ws, i,
                                    sweeps - sweeps // 4, sweeps, position, orientation, velocity, angular_velocity)


@ti.kernel
def zero_manifold_adjoints(predicted_velocity: _A, predicted_angular_velocity: _A, predicted_orientation: _A,
                           predicted_axes: _A, contact_count: _A, inverse_inertia: _A, velocity_iterate: _A, angular_velocity_iterate: _A,
                           contact_frame: _A, lever_a: _A, lever_b: _A, inverse_mass: _A, angular_response: _A,
                           target_speed: _A, friction_coefficient: _A, active: _A, impulse_iterate: _A, s0: ti.i32, s1: ti.i32):
    """Adjoint bookkeeping: the solver workspace's adjoints (pass the ``.grad`` arrays) of slots
    [s0, s1) start from zero in a reverse sweep."""
    for ws, i in ti.ndrange((s0, s1), predicted_velocity.shape[1]):
        contact_count[ws, i] = 0.0
        for c in ti.static(range(3)):
            predicted_velocity[ws, i, c] = 0.0
            predicted_angular_velocity[ws, i, c] = 0.0
        for c in ti.static(range(4)):
            predicted_orientation[ws, i, c] = 0.0
        for c in ti.static(range(9)):
            predicted_axes[ws, i, c] = 0.0
        for c in ti.static(range(6)):
            inverse_inertia[ws, i, c] = 0.0
        for sw in range(velocity_iterate.shape[2]):
            for c in ti.static(range(3)):
                velocity_iterate[ws, i, sw, c] = 0.0
                angular_velocity_iterate[ws, i, sw, c] = 0.0
    for ws, k in ti.ndrange((s0, s1), contact_frame.shape[1]):
        target_speed[ws, k, 0] = 0.0
        target_speed[ws, k, 1] = 0.0
        friction_coefficient[ws, k] = 0.0
        active[ws, k] = 0.0
        for c in ti.static(range(9)):
            contact_frame[ws, k, c] = 0.0
        for c in ti.static(range(18)):
            angular_response[ws, k, c] = 0.0
        for c in ti.static(range(3)):
            lever_a[ws, k, c] = 0.0
            lever_b[ws, k, c] = 0.0
        for c in ti.static(range(8)):
            inverse_mass[ws, k, c] = 0.0
        for sw in range(impulse_iterate.shape[2]):
            for c in ti.static(range(4)):
                impulse_iterate[ws, k, sw, c] = 0.0


__all__ = ["MANIFOLD_BODY_WORKSPACE", "MANIFOLD_ITEM_WORKSPACE", "item_count", "manifold_integrate",
           "manifold_pair_contacts", "manifold_plane_contacts", "manifold_point_setup", "manifold_predict",
           "manifold_sweeps", "manifold_warm_start", "zero_manifold_adjoints"]
