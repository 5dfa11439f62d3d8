"""Taichi kernels of the articulated-body algorithms: one compiled set serves every robot.

(Small fixed-base robots with coordinate joint axes step through :mod:`.small` instead: one
kernel per tree, its bodies unrolled; the rest of this note is about these general kernels.)

The topology (parents, joint types, contact points) is data, not code: the body loop is a
dynamic loop over a phase counter, so each kernel compiles once for all trees and sizes.
Measured on the 2-core CPU machines (f64, cold offline cache): ``advance`` 1.8 s, its gradient
with the cost kernels' 17 s, ``inverse_dynamics`` 2.6 s; from the offline cache, 0.5 s for
the forward and 0.7 s for the backward kernels in a new process. Unrolling the bodies with
``ti.static`` instead took 60 s for a 3-link arm's forward dynamics alone and grew faster than
linearly with the links; Taichi's ``ti.Matrix`` arithmetic made every gradient kernel 10-50x
slower to compile than the same arithmetic on scalars (hence :mod:`.spatial`'s tuples).
With the shared C^1 contact law for limits and ground and the stops' added inertia, measured
side by side with the kernels before them (cold cache, both runs on a 2-core machine at load
6-7, so only the comparison counts): forward kernels 3.3 and 7.1 s (before: 4.5, 6.5 s), their
gradients 27 and 42 s (36, 37 s), ``inverse_dynamics`` 5.4 and 4.5 s (7.4, 6.6 s).
Later, with each phase in a loop of its own (its own block for Taichi's autodiff; see
``advance_robot``), forward kinematics only in ``terminal`` and the symmetric inertia blocks
of the articulated pass, and the symmetric blocks stored once: a 5-link arm's forward and
gradient kernels compiled in 12.2-12.6 s against 22.4-22.5 s for the kernels before (cold
cache, alternating runs, load 2.4; forward 3.4-3.6 s against 3.0-3.1 s, backward 8.6-9.2 s
against 19.3-19.5 s). What remains is mostly Taichi's control-flow-graph passes
(store-to-load forwarding, dead stores), whose cost grows faster than linearly with the size
of the whole kernel: cutting a third of the articulated pass halved the gradient's compile,
while splitting that pass into two phases made it slower; fewer workspace accesses (stores
above all) helped more than fewer arithmetic operations.

Joint limits: ``passive_torque`` applies the shared law at the predicted position q + dt qd
and ``limit_inertia`` adds dt c + dt^2 k (faded in with the force) to a pressed joint's D,
which together make each stop a linearised backward-Euler step, stable at any stiffness
(:mod:`~diffsim.articulated.limits`). Ground contact stays explicit.

One step of robot b (its own thread; robots run in parallel) is one serial loop over phases:

- phase 0: the world slot (body index nb) gets velocity 0, pose identity and acceleration
  -gravity (Featherstone's trick: gravity enters as an upward acceleration of the base);
- phases 1..nb (root to leaves): ``pass_velocities``, forward kinematics and velocities;
- next 2 ncp phases (``contact_phase``): each contact point's normal force added to its body's
  load, then the contact force of each contact point through diffsim.contact;
- next nb phases (leaves to root): ``pass_articulated``, ABA's articulated inertias;
- last nb phases (root to leaves): ``pass_accelerations``, ABA's qdd, and the semi-implicit
  Euler update of body i's joint.

Everything a phase hands to a later one goes through the workspace ndarray ``data[b, s, i, k]``
(robot b, step slot s, body i, component k; layout ``DATA`` below, Pinocchio's name; robot-major, so that each robot's
thread walks its own contiguous block: twice as fast at B = 1024 as step-major). Each element
is stored once per step, may then receive atomic adds (a child's contribution to its parent),
and is read after that: no element is overwritten after being read (Taichi's global data
access rule), and no local variable is assigned twice, so reverse mode needs no adstack
(TAICHI.md, section 0). All the passes live in one loop because sibling dynamic loops that
feed each other lose their gradient in Taichi 1.7.4 (TAICHI.md, addendum). The world slot is
body index nb, so root bodies need no branch. Taichi's adjoint of a store clears the stored
element's adjoint after use, so the workspace adjoints are zero again after each ``advance.grad``.

Spatial quantities of a body are in its own coordinates (R. Featherstone, *Rigid Body Dynamics
Algorithms*, 2008, chapters 5-7); joint i has the motion subspace S_i = (a_i, 0) when revolute
and (0, a_i) when prismatic, written branch-free as (rev_i a_i, (1 - rev_i) a_i).
"""

import taichi as ti

from .. import contact as _contact
from ..compat import assign, subscript
from .spatial import (
    _scalar,
    congruence_symmetric,
    cross,
    cross_force,
    cross_motion,
    dot,
    inertia6,
    inertia_apply,
    inverse3,
    local,
    mm,
    msub,
    mtm,
    mtv,
    mv,
    quat_matrix,
    quat_step,
    rigid_inertia,
    rotation_T,
    shift_inertia,
    shift_inertia_symmetric,
    skew3,
    sub_outer,
    sub_outer_symmetric,
    symmetric,
    transpose,
    vadd,
    vscale,
    vsub,
    xform_force_T,
    xform_motion,
)

_A1 = ti.types.ndarray(ndim=1)
_A2 = ti.types.ndarray(ndim=2)
_A3 = ti.types.ndarray(ndim=3)
_A4 = ti.types.ndarray(ndim=4)
_I1 = ti.types.ndarray(dtype=ti.i32, ndim=1)


class Layout:
    """Offsets of consecutive named blocks in the last axis of an array, derived from a declared
    name-to-size table: ``Layout(E=9, r=3).r == 9``; ``size`` is the total. Inside kernels the
    offsets are compile-time constants (``data[b, s, i, DATA.v + k]``)."""

    def __init__(self, start=0, **sizes):
        self.sizes = dict(sizes)
        offset = start
        for name, size in sizes.items():
            setattr(self, name, offset)
            offset += size
        self.size = offset

    def __repr__(self):
        return "Layout(" + ", ".join(f"{k}={v}" for k, v in self.sizes.items()) + ")"


DATA = Layout(E=9, r=3, v=6, c=6, IA=27, pA=6, U=6, D=1, u=1, a=6, R_world=9, p_world=3, qdd=6, load=1)
"""The workspace ``data[b, s, i, :]`` of body i of robot b at step slot s (Pinocchio's ``Data``:
what the algorithms compute, as opposed to the Model): joint transform (E, r) from the parent,
spatial velocity v, velocity-product acceleration c, (articulated) inertia IA = A|B|C (three
row-major 3x3 blocks; of the symmetric A and C only the upper entries are used, see
:func:`st_inertia`), bias force pA, ABA's U, D and u, spatial acceleration a, world rotation
R_world (row-major) and origin p_world (m), joint acceleration qdd (1 entry; 6 for a free
joint), load: the sum of the normal forces of the body's contact points (N)."""

BALL_DATA = Layout(DATA.size, Dinv=9, u=3)
"""What a ball joint's body adds to the workspace after ``DATA`` (robots with ball joints only,
:func:`data_size`): ABA's D^-1 (row-major 3x3; D = S^T IA S + armature + the implicit damping,
S = [1; 0]) and u = tau - S^T pA (3). Its U = IA S = [A; B^T] is read from IA, not stored."""


def data_size(has_ball: bool) -> int:
    """Entries per body of the workspace: ``DATA``, and ``BALL_DATA`` after it for a robot with
    ball joints (a robot without them keeps the smaller workspace)."""
    return BALL_DATA.size if has_ball else DATA.size


BODY = Layout(E_tree=9, axis=3, lower=1, upper=1, revolute=1, actuated=1, limit_stiffness=1, limit_damping=1,
              velocity_limit=1, velocity_onset=1, ball=1)
"""Per-body constants ``bc[i, :]``: E_tree (row-major 3x3), joint axis, lower and upper limit,
revolute (1.0) or prismatic (0.0), actuated (1.0) or passive (0.0: the joint's control is
ignored), soft-limit stiffness and damping, velocity limit v_max (rad/s or m/s) and the width
w of its smooth clamp (rad/s or m/s, > 0; :func:`velocity_clamp`), ball (1.0: a ball joint,
read only by the kernels compiled with the ``ball`` switch)."""

CONST = Layout(gravity=3, dt=1, contact_stiffness=1, contact_damping=1, friction=1, slip_speed=1, ground_height=1,
               contact_onset=1, limit_onset=1, effort_weight=1, ee_weight=1, ee_weight_final=1, ee_point=3,
               implicit_damping=1)
"""Global constants ``cs[:]``: gravity (m/s^2), dt (s), ground contact stiffness, damping,
friction, slip speed, height and onset depth, soft-limit onset, the cost's effort weight,
running and terminal end-effector weights, end-effector point (3, body coordinates, m),
implicit_damping (1.0: joint damping stepped implicitly, dt * damping added to the joint's
inertia; 0.0: explicitly)."""

CONTACT = Layout(point=3, radius=1, tangential_mass=1)
"""Per contact point ``cp[k, :]``: point (body coordinates, m), sphere radius (m), the lower
bound on its tangential effective mass that caps friction's stiffness (kg;
limits.contact_tangential_mass)."""

COST = Layout(q_target=1, q_weight=1, qd_weight=1, q_weight_final=1, qd_weight_final=1)
"""Per-robot, per-joint cost data ``qw[b, i, :]``: q target, running q and qd weights, terminal
q and qd weights."""

LIMIT_INERTIA_RISE = 1.0
"""A stop's added inertia fades in over 1 / LIMIT_INERTIA_RISE of the limit's onset depth, with
the force (limit_inertia). (Faster, 4.0, made a scan of rollouts through stops rougher.)"""

ZERO3 = (0.0, 0.0, 0.0)
ZERO33 = (0.0,) * 9
EYE33 = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


# Element access. These run at compile time inside kernels, like the scalar algebra of
# .spatial: plain Python is not re-parsed by Taichi's AST transformer at every call (which, for
# small @ti.func accessors called hundreds of times, dominated the time to load a cached
# kernel). ``_at`` is what Taichi itself emits for ``a[i, j, ...]`` in a kernel
# (:func:`diffsim.compat.subscript`: no public API serves).
_at = subscript


@_scalar
def ld3(a, s, b, i, o):
    """data[b, s, i, o:o+3] as a 3-tuple."""
    return (_at(a, b, s, i, o), _at(a, b, s, i, o + 1), _at(a, b, s, i, o + 2))


@_scalar
def ld33(a, s, b, i, o):
    """data[b, s, i, o:o+9] as a row-major 3x3."""
    return tuple(_at(a, b, s, i, o + k) for k in range(9))


@_scalar
def ld_symmetric(a, s, b, i, o):
    """data[b, s, i, o:o+9], a symmetric row-major 3x3 (an inertia block), from its upper entries."""
    return symmetric({(r, c): _at(a, b, s, i, o + 3 * r + c) for r in range(3) for c in range(r, 3)})


UPPER = tuple(3 * r + c for r in range(3) for c in range(r, 3))
"""Row-major indices of the upper entries of a symmetric 3x3."""


@_scalar
def ld_inertia(a, s, b, i):
    """Blocks (A, B, C) of the inertia data[b, s, i, DATA.IA:] (A and C from their upper
    entries, see :func:`st_inertia`)."""
    return ld_symmetric(a, s, b, i, DATA.IA), ld33(a, s, b, i, DATA.IA + 9), ld_symmetric(a, s, b, i, DATA.IA + 18)


@_scalar
def st_inertia(a, s, b, i, A, Bm, C):
    """Stores the inertia [[A, B], [B^T, C]] (A and C symmetric) to data[b, s, i, DATA.IA:]:
    the upper entries of A and C and all of B; their lower entries are never written nor read
    (fewer workspace accesses made the gradient kernel faster to compile)."""
    for k in UPPER:
        assign(_at(a, b, s, i, DATA.IA + k), A[k])
        assign(_at(a, b, s, i, DATA.IA + 18 + k), C[k])
    st(a, s, b, i, DATA.IA + 9, Bm)


@_scalar
def add_inertia(a, s, b, i, A, Bm, C):
    """Atomic adds of a symmetric-block inertia into data[b, s, i, DATA.IA:] (as
    :func:`st_inertia` stores it)."""
    for k in UPPER:
        ti.atomic_add(_at(a, b, s, i, DATA.IA + k), A[k])
        ti.atomic_add(_at(a, b, s, i, DATA.IA + 18 + k), C[k])
    add(a, s, b, i, DATA.IA + 9, Bm)


@_scalar
def st(a, s, b, i, o, v):
    """data[b, s, i, o:o+len(v)] = v (a tuple of scalars)."""
    for k, x in enumerate(v):
        assign(_at(a, b, s, i, o + k), x)


@_scalar
def add(a, s, b, i, o, v):
    """data[b, s, i, o:o+len(v)] += v (atomic adds)."""
    for k, x in enumerate(v):
        ti.atomic_add(_at(a, b, s, i, o + k), x)


@_scalar
def row3(a, b, i):
    """a[b, i, 0:3] of a (B, nb, 3) ndarray."""
    return (_at(a, b, i, 0), _at(a, b, i, 1), _at(a, b, i, 2))


@_scalar
def row6(a, b, i):
    return tuple(_at(a, b, i, k) for k in range(6))


@_scalar
def body_axis(bc, i):
    return (_at(bc, i, BODY.axis), _at(bc, i, BODY.axis + 1), _at(bc, i, BODY.axis + 2))


@_scalar
def tree_rotation(bc, i):
    return tuple(_at(bc, i, BODY.E_tree + k) for k in range(9))


@ti.func
def passive_torque(i, qi, qdi, damp: ti.template(), bc: ti.template(), cs: ti.template(), b, limits: ti.template()):
    """-damping qd + the soft-limit torque of joint i: the shared law (C^1 at the bounds)
    evaluated at the predicted position q + dt qd, which with :func:`limit_inertia` makes the
    stop a linearised backward-Euler step (diffsim.articulated.limits). Without ``limits`` (a
    compile-time switch: no joint of the robot has a finite limit, where the law gives exactly 0)
    the damping alone."""
    if ti.static(limits):
        qp = qi + cs[CONST.dt] * qdi
        return (-damp[b, i] * qdi
                + _contact.limit_force(qp, qdi, bc[i, BODY.lower], bc[i, BODY.upper], bc[i, BODY.limit_stiffness],
                                       bc[i, BODY.limit_damping], cs[CONST.limit_onset]))
    else:
        return -damp[b, i] * qdi


@ti.func
def limit_inertia(i, qi, qdi, bc: ti.template(), cs: ti.template()):
    """Added inertia s(d / delta) (dt c + dt^2 k) of joint i while its predicted position
    q + dt qd is a depth d into a stop: makes the stop linearly implicit, stable at any stiffness
    and dt; it fades in with the limit force (the law's smoothstep), so the step stays C^1."""
    h = cs[CONST.dt]
    qp = qi + h * qdi
    rise = LIMIT_INERTIA_RISE / cs[CONST.limit_onset]
    s = _contact.smoothstep((bc[i, BODY.lower] - qp) * rise) + _contact.smoothstep((qp - bc[i, BODY.upper]) * rise)
    return s * (h * bc[i, BODY.limit_damping] + h * h * bc[i, BODY.limit_stiffness])


@ti.func
def implicit_inertia(i, qi, qdi, damp: ti.template(), bc: ti.template(), cs: ti.template(), b, limits: ti.template()):
    """What joint i's diagonal of the inertia gains so that its stiff passive terms step
    implicitly: a pressed stop's :func:`limit_inertia`, and dt * damping with the
    implicit-damping integrator (then (M + dt D) qdd = tau - D qd - ...: backward Euler in the
    joint damping, stable at any damping). Without ``limits`` (see :func:`passive_torque`) the
    damping term alone."""
    if ti.static(limits):
        return limit_inertia(i, qi, qdi, bc, cs) + cs[CONST.implicit_damping] * cs[CONST.dt] * damp[b, i]
    else:
        return cs[CONST.implicit_damping] * cs[CONST.dt] * damp[b, i]


@ti.func
def velocity_clamp(x, vmax, w):
    """Joint velocity x (rad/s or m/s) smoothly clamped to (-vmax, vmax): x itself while
    |x| <= vmax - w, then (vmax - w) + w g((|x| - vmax + w) / w) with x's sign, g(u) =
    u / sqrt(1 + u^2) (a sqrt is cheaper than a tanh in every step of every joint) (C^2, slope
    in (0, 1], never reaching vmax)."""
    a = vmax - w
    ax = ti.abs(x)
    u = (ax - a) / w
    return ti.select(ax > a, ti.math.sign(x) * (a + w * u / ti.sqrt(1.0 + u * u)), x)


@ti.func
def limited_velocity(i, x, bc: ti.template(), limits: ti.template()):
    """Joint i's new velocity x through its :func:`velocity_clamp`; x itself without ``limits``."""
    if ti.static(limits):
        return velocity_clamp(x, bc[i, BODY.velocity_limit], bc[i, BODY.velocity_onset])
    else:
        return x


@ti.func
def world_slot(data: ti.template(), cs: ti.template(), s, b, w, poses: ti.template()):
    """The world (body index w = nb): at rest, identity pose (with ``poses``), acceleration
    -gravity; its accumulators are zeroed (the root bodies add into them; nothing reads them)."""
    st(data, s, b, w, DATA.v, ZERO3 + ZERO3)
    if ti.static(poses):
        st(data, s, b, w, DATA.R_world, EYE33)
        st(data, s, b, w, DATA.p_world, ZERO3)
    st(data, s, b, w, DATA.a, ZERO3)
    st(data, s, b, w, DATA.a + 3, (-cs[CONST.gravity], -cs[CONST.gravity + 1], -cs[CONST.gravity + 2]))
    st_inertia(data, s, b, w, ZERO33, ZERO33, ZERO33)
    st(data, s, b, w, DATA.pA, ZERO3 + ZERO3)
    st(data, s, b, w, DATA.U, ZERO3 + ZERO3)


@_scalar
def joint_kind(bc, i, revolute_only):
    """(rev, pri) of 1-DOF joint i, its motion subspace being S = (rev a, pri a): (1, 0) when
    revolute, (0, 1) when prismatic, read from bc; the Python constants (1.0, 0.0) when every
    1-DOF joint of the robot is revolute (``revolute_only``, a compile-time switch): Taichi then
    folds the prismatic terms away (x * 0.0 and x * 1.0 are simplified under its default
    fast_math), which shrinks the kernels and their gradients."""
    if revolute_only:
        return 1.0, 0.0
    rev = _at(bc, i, BODY.revolute)
    return rev, 1.0 - rev


@_scalar
def joint_transform(i, qi, b, joff, bc, revolute_only):
    """(E, r) of joint i at position qi: X = X_J(q) X_tree (a rotation about the axis by qi
    when revolute, a shift along it when prismatic), the axis a and the tree rotation Et."""
    rev, pri = joint_kind(bc, i, revolute_only)
    a = local(body_axis(bc, i))
    Et = local(tree_rotation(bc, i))
    angle = qi * rev
    cs = local((ti.cos(angle), ti.sin(angle)))
    E = mm(rotation_T(a, cs[0], cs[1]), Et)
    r = row3(joff, b, i) if revolute_only else vadd(row3(joff, b, i), vscale(mtv(Et, a), qi * pri))
    return E, r


@_scalar
def store_pose(i, p, E, r, s, b, data):
    """Body i's joint transform (E, r) and world pose (from its parent p's) to the workspace."""
    Rp = local(ld33(data, s, b, p, DATA.R_world))
    st(data, s, b, i, DATA.E, E)
    st(data, s, b, i, DATA.r, r)
    st(data, s, b, i, DATA.R_world, mm(Rp, transpose(E)))
    st(data, s, b, i, DATA.p_world, vadd(ld3(data, s, b, p, DATA.p_world), mv(Rp, r)))


@ti.func
def pass_velocities(i, qi, qdi, s, b, par: ti.template(), mass: ti.template(), com: ti.template(),
                    inert: ti.template(), joff: ti.template(), bc: ti.template(), data: ti.template(),
                    revolute_only: ti.template(), contacts: ti.template(), poses: ti.template()):
    """Body i: joint transform X = X_J(q) X_tree, velocity v = X v_parent + S qd,
    c = v x (S qd), rigid inertia I, bias force v x* I v, world pose (with ``poses``); all to
    the workspace (its contact load zeroed only where the robot has contact points)."""
    rev, pri = joint_kind(bc, i, revolute_only)
    a = body_axis(bc, i)
    E, r = joint_transform(i, qi, b, joff, bc, revolute_only)
    jw = vscale(a, qdi * rev)
    jv = vscale(a, qdi * pri)
    body_velocities(i, par[i], E, r, jw, jv, s, b, mass, com, inert, data, contacts, poses)


@ti.func
def body_velocities(i, p, E, r, jw, jv, s, b, mass: ti.template(), com: ti.template(), inert: ti.template(),
                    data: ti.template(), contacts: ti.template(), poses: ti.template()):
    """Body i (parent p) with joint transform (E, r) and joint velocity (jw, jv) = S qd:
    v = X v_parent + S qd, c = v x (S qd), rigid inertia I, bias force v x* I v, world pose;
    all to the workspace (shared by the 1-DOF and the ball joints). Without ``poses`` (a
    compile-time switch: nothing in the kernel reads world poses, no contact points and no
    running end-effector term) only the joint transform is stored, not the world pose."""
    # inputs used several times are assigned first (see :func:`local`)
    vp = ld3(data, s, b, p, DATA.v)
    vpl = ld3(data, s, b, p, DATA.v + 3)
    xw, xv = xform_motion(E, r, vp, vpl)
    w = vadd(xw, jw)
    v = vadd(xv, jv)
    cw, cv = cross_motion(w, v, jw, jv)
    m = mass[b, i]
    cm = row3(com, b, i)
    I6 = row6(inert, b, i)
    A, Bm, C = rigid_inertia(m, cm, inertia6(I6))
    hn, hf = inertia_apply(A, Bm, C, w, v)
    bn, bf = cross_force(w, v, hn, hf)
    if ti.static(poses):
        store_pose(i, p, E, r, s, b, data)
    else:
        st(data, s, b, i, DATA.E, E)
        st(data, s, b, i, DATA.r, r)
    st(data, s, b, i, DATA.v, w + v)
    st(data, s, b, i, DATA.c, cw + cv)
    st_inertia(data, s, b, i, A, Bm, C)
    st(data, s, b, i, DATA.pA, bn + bf)
    if ti.static(contacts):
        st(data, s, b, i, DATA.load, (0.0,))


@_scalar
def ball_quaternion(q, sl, b, k):
    """The unit quaternion (w, x, y, z) at q[sl, b, k:k+4]."""
    return (_at(q, sl, b, k), _at(q, sl, b, k + 1), _at(q, sl, b, k + 2), _at(q, sl, b, k + 3))


@_scalar
def ball_transform(i, quat, b, joff, bc):
    """(E, r) of ball joint i at its unit quaternion quat: X = X_J X_tree with X_J a pure
    rotation, E = R(quat)^T E_tree, r = joint_offset (the joint origin in the parent)."""
    return mtm(quat_matrix(*quat), local(tree_rotation(bc, i))), row3(joff, b, i)


@ti.func
def ball_pose(i, s, b, slot, q: ti.template(), qix: ti.template(), par: ti.template(), joff: ti.template(),
              bc: ti.template(), data: ti.template()):
    """Ball joint i's transform and world pose only (forward kinematics, as :func:`pass_pose`)."""
    E, r = ball_transform(i, ball_quaternion(q, slot, b, qix[i]), b, joff, bc)
    store_pose(i, par[i], E, r, s, b, data)


@ti.func
def pass_pose(i, qi, s, b, par: ti.template(), joff: ti.template(), bc: ti.template(), data: ti.template(),
              revolute_only: ti.template()):
    """Body i's joint transform and world pose only (forward kinematics: what the terminal cost
    reads; no velocities, inertias or forces, which made its gradient kernel slow to compile)."""
    E, r = joint_transform(i, qi, b, joff, bc, revolute_only)
    store_pose(i, par[i], E, r, s, b, data)


@_scalar
def contact_kinematics(k, s, b, cb, cp, data):
    """(i, Rw, pt, x, vel) of contact point k: its body i = cb[k], the body's world rotation Rw,
    the touching point pt (the lowest point of the sphere; body coordinates), its world position
    x and velocity vel (m, m/s)."""
    i = _at(cb, k)
    Rw = local(ld33(data, s, b, i, DATA.R_world))
    rad = _at(cp, k, CONTACT.radius)
    pt = local((_at(cp, k, 0) - rad * Rw[6], _at(cp, k, 1) - rad * Rw[7], _at(cp, k, 2) - rad * Rw[8]))
    x = vadd(mv(Rw, pt), ld3(data, s, b, i, DATA.p_world))
    vel = mv(Rw, local(vadd(ld3(data, s, b, i, DATA.v + 3), cross(ld3(data, s, b, i, DATA.v), pt))))
    return i, Rw, pt, x, vel


@ti.func
def contact_normal(x, vel, cs: ti.template()):
    """Normal force (N) of the shared contact law at world position x and velocity vel."""
    return _contact.contact_normal_force(cs[CONST.ground_height] - x[2], vel[2], cs[CONST.contact_stiffness],
                                         cs[CONST.contact_damping], cs[CONST.contact_onset])


@ti.func
def contact_phase(j, ncp, s, b, cb: ti.template(), cp: ti.template(), cs: ti.template(), data: ti.template()):
    """Contact phase j of 2 ncp: for j < ncp, adds point k = j's normal force to its body's
    load (DATA.load), which shares the friction cap among the body's pressing points; then, for
    j >= ncp, the ground contact force of point k = j - ncp.

    Both passes share one copy of the point's kinematics and normal force (two phases of their
    own held two, and the gradient kernel compiled slower).

    Ground contact of point k (on body cb[k]; layout CONTACT: a point in body coordinates and
    a radius: a sphere touching with its lowest point, where the force acts) through the shared
    contact law (C^1 at first touch) and smoothed Coulomb friction; the spatial force is
    subtracted from the body's bias force.

    Friction regularised at slip speed v_eps is a damper of rate mu f_n / (v_eps m_t) at small
    slip (m_t the point's tangential effective mass), stepped explicitly, unstable above 2 / dt:
    at the default v_eps = 0.01 m/s and dt = 2 ms a 1.5 kg foot pressed with 40 N chattered at
    +-0.02 m/s instead of sticking (issue 16 reports gradients 67-100 % off in such cases, hence
    the hopper's former v_eps = 0.3 m/s). As in rigid contact, the slip speed is raised to
    sqrt(v_eps^2 + (2 dt mu F / m_t)^2) with m_t the lower bound cp[k, CONTACT.tangential_mass]
    and F the body's load (the normal forces of all its points, the first pass), which
    keeps the rates of the body's points, which act in parallel and add, below 1 / (2 dt) in
    sum, and leaves sliding friction (slip >> v_eps) Coulomb's. (Sharing by load rather than by
    the number of points: a URDF box has 8 corner points, of which 4 press.)"""
    k = ti.select(j < ncp, j, j - ncp)
    i, Rw, pt, x, vel = contact_kinematics(k, s, b, cb, cp, data)
    fn = contact_normal(x, vel, cs)
    if j < ncp:
        add(data, s, b, i, DATA.load, (fn,))
    else:
        mu = cs[CONST.friction]
        v_cap = 2.0 * cs[CONST.dt] * mu * data[b, s, i, DATA.load] / cp[k, CONTACT.tangential_mass]
        v_eps = cs[CONST.slip_speed]
        slip = _contact.coulomb_slip_factor(vel[0], vel[1], fn, mu, ti.sqrt(v_eps * v_eps + v_cap * v_cap))
        Fb = mtv(Rw, (slip * vel[0], slip * vel[1], fn))
        add(data, s, b, i, DATA.pA, vscale(cross(pt, Fb), -1.0) + vscale(Fb, -1.0))


@ti.func
def pass_articulated(i, taui, extra, s, b, par: ti.template(), arm: ti.template(), bc: ti.template(),
                     data: ti.template(), revolute_only: ti.template(), ball: ti.template(), ball_tau, ball_d):
    """Body i, leaves to root: U = IA S, D = S^T U + armature + extra (a stop's added
    inertia), u = tau - S^T pA; hands
    X^T (IA - U U^T / D) X and X^T (pA + Ia c + U u / D) to the parent. With ``ball`` (a
    compile-time switch), body i may be on a ball joint (torque ``ball_tau``, diagonal
    ``ball_d``): both joints' blocks are computed and the body's are picked
    (:func:`ball_to_parent`), so that the hand-over to the parent, the bulk of the pass, is
    compiled once (with a branch per joint kind, the gradient kernel compiled twice as long)."""
    rev, pri = joint_kind(bc, i, revolute_only)
    a = body_axis(bc, i)
    A, Bm, C = ld_inertia(data, s, b, i)
    pn = ld3(data, s, b, i, DATA.pA)
    pf = ld3(data, s, b, i, DATA.pA + 3)
    Un, Uf = inertia_apply(A, Bm, C, vscale(a, rev), vscale(a, pri))
    D = dot(a, Un) * rev + dot(a, Uf) * pri + arm[b, i] + extra
    u = taui - dot(a, pn) * rev - dot(a, pf) * pri
    st(data, s, b, i, DATA.U, Un + Uf + (D, u))
    iD = 1.0 / ball_guard(D, bc, i, ball)
    # Ia = IA - U U^T / D: its blocks A and C are symmetric, and so are their images in X^T Ia X
    Vn = vscale(Un, iD)
    Vf = vscale(Uf, iD)
    Aa = sub_outer_symmetric(A, Un, Vn)
    Ba = sub_outer(Bm, Un, Vf)
    Ca = sub_outer_symmetric(C, Uf, Vf)
    ui = u * iD
    if ti.static(ball):
        ball_to_parent(i, A, Bm, C, pn, pf, Aa, Ba, Ca, vscale(Un, ui), vscale(Uf, ui), ball_tau, ball_d, s, b, par,
                       bc, data)
    else:
        articulated_to_parent(i, Aa, Ba, Ca, pn, pf, vscale(Un, ui), vscale(Uf, ui), s, b, par, data)


@_scalar
def is_ball(bc, i):
    """Whether body i is on a ball joint (bc's flag; kernels compiled with ``ball`` only)."""
    return _at(bc, i, BODY.ball) > 0.5


@_scalar
def ball_guard(D, bc, i, ball):
    """D; with ``ball``, 1 on a ball joint's body (whose 1-DOF blocks, computed and dropped,
    must stay finite, gradients included)."""
    return ti.select(is_ball(bc, i), 1.0, D) if ball else D


@_scalar
def pick(cond, x, y):
    """x where cond holds, else y, entry by entry (tuples)."""
    return tuple(ti.select(cond, a, c) for a, c in zip(x, y))


@ti.func
def articulated_to_parent(i, Aa, Ba, Ca, pn, pf, gn, gf, s, b, par: ti.template(), data: ti.template()):
    """Body i's hand-over to its parent, leaves to root: X^T Ia X and X^T (pA + Ia c + g), with
    Ia = (Aa, Ba, Ca) (symmetric Aa, Ca) and g = U D^-1 u (shared by the 1-DOF and ball joints)."""
    E = ld33(data, s, b, i, DATA.E)
    r = ld3(data, s, b, i, DATA.r)
    hn, hf = inertia_apply(Aa, Ba, Ca, ld3(data, s, b, i, DATA.c), ld3(data, s, b, i, DATA.c + 3))
    # each intermediate assigned: Taichi keeps it as a local instead of re-expanding its expression at every use
    Ar = congruence_symmetric(E, Aa)
    EtB = mtm(E, Ba)
    Br = mm(EtB, E)
    Cr = congruence_symmetric(E, Ca)
    An, Bn, Cn = shift_inertia_symmetric(r, Ar, Br, Cr)
    fn, ff = xform_force_T(E, r, vadd(vadd(pn, hn), gn), vadd(vadd(pf, hf), gf))
    p = par[i]
    add_inertia(data, s, b, p, An, Bn, Cn)
    add(data, s, b, p, DATA.pA, fn + ff)


@_scalar
def add_diagonal(A, d):
    """A + d 1 of a row-major 3x3."""
    return tuple(A[k] + d if k in (0, 4, 8) else A[k] for k in range(9))


@_scalar
def tuple_scale(M, s):
    """Every entry of the tuple M (a 3x3, ...) times s."""
    return tuple(x * s for x in M)


@_scalar
def ball_aa(Di, d):
    """d 1 - d^2 D^-1 (symmetric, from its upper entries): a ball joint's articulated A block."""
    return symmetric({(r, c): (d if r == c else 0.0) - d * d * Di[3 * r + c] for r in range(3) for c in range(r, 3)})


@_scalar
def symmetric_sub_mtm(C, B, G):
    """C - B^T G where the result is symmetric (G = D^-1 B), from its six upper entries."""
    return symmetric({(r, c): C[3 * r + c] - (B[r] * G[c] + B[3 + r] * G[3 + c] + B[6 + r] * G[6 + c])
                      for r in range(3) for c in range(r, 3)})


@_scalar
def clamped_row(a, t, b, v, n):
    """a[t, b, v:v+n] with indices past the last clamped (read for every body by the kernels
    that serve 1-DOF and ball joints alike; dropped where body i is not on a ball joint)."""
    last = a.shape[2] - 1
    return tuple(_at(a, t, b, ti.min(v + k, last)) for k in range(n))


@ti.func
def ball_to_parent(i, A, Bm, C, pn, pf, Aa1, Ba1, Ca1, g1n, g1f, tau3, d, s, b, par: ti.template(),
                   bc: ti.template(), data: ti.template()):
    """Body i's hand-over to its parent where it may be on a ball joint (ABA with S = [1; 0], 3
    columns): torque tau3 (the control if actuated - damping w), U = IA S = [A; B^T],
    D = A + d 1 (d = armature + the implicit damping), u = tau3 - pA_n; D^-1 and u stored
    (BALL_DATA); Ia = IA - U D^-1 U^T and U D^-1 u. Since A D^-1 = 1 - d D^-1, the blocks
    are Ia = [[d 1 - d^2 D^-1, d D^-1 B], [., C - B^T D^-1 B]] and U D^-1 u = (u - d D^-1 u,
    B^T D^-1 u): exactly 0 and (u, B^T D^-1 u) without armature. On a 1-DOF joint's body the
    1-DOF blocks (Aa1, ..., g1f) are handed over instead (and D = 1 keeps the dropped ball
    blocks finite)."""
    ball = is_ball(bc, i)
    Di = local(inverse3(pick(ball, add_diagonal(A, d), EYE33)))
    u = local(vsub(tau3, pn))
    st(data, s, b, i, BALL_DATA.Dinv, Di)
    st(data, s, b, i, BALL_DATA.u, u)
    DiB = local(mm(Di, Bm))
    Diu = local(mv(Di, u))
    articulated_to_parent(i, pick(ball, ball_aa(Di, d), Aa1), pick(ball, tuple_scale(DiB, d), Ba1),
                          pick(ball, symmetric_sub_mtm(C, Bm, DiB), Ca1), pn, pf,
                          pick(ball, vsub(u, vscale(Diu, d)), g1n), pick(ball, mtv(Bm, Diu), g1f), s, b, par, data)


@_scalar
def ball_torque(ball, i, sl, t, b, v, qd, tau, damp, arm, bc, cs):
    """(tau3, d) of body i where it may be on a ball joint (``ball``): the control (if actuated)
    minus damping w, and armature + the implicit damping; (0, 0) without ``ball``. Indices
    past the last velocity are clamped (on a 1-DOF joint's body these are computed and dropped)."""
    if not ball:
        return ZERO3, 0.0
    c = _at(damp, b, i)
    tau3 = vsub(vscale(clamped_row(tau, t, b, v, 3), _at(bc, i, BODY.actuated)), vscale(clamped_row(qd, sl, b, v, 3), c))
    return local(tau3), _at(arm, b, i) + _at(cs, CONST.implicit_damping) * _at(cs, CONST.dt) * c


@ti.func
def ball_update(i, s, b, sl, t, q: ti.template(), qd: ti.template(), tau: ti.template(), qix: ti.template(),
                vix: ti.template(), bc: ti.template(), cs: ti.template(), qw: ti.template(), data: ti.template(),
                cst: ti.template(), running: ti.template()):
    """Ball joint i's semi-implicit Euler update, as the free joint's rotation: w' = w + dt qdd
    (qdd stored by :func:`ball_accelerations`) and the quaternion advanced by w'
    (:func:`step_quaternion`); with ``running``, its running cost dt (wqd |w|^2 + w_u |tau|^2) to
    cst[b, s, i]."""
    qdd = ld3(data, s, b, i, DATA.qdd)
    h = cs[CONST.dt]
    v = vix[i]
    w = (qd[sl, b, v], qd[sl, b, v + 1], qd[sl, b, v + 2])
    vn = (w[0] + h * qdd[0], w[1] + h * qdd[1], w[2] + h * qdd[2])
    for k in ti.static(range(3)):
        qd[sl + 1, b, v + k] = vn[k]
    step_quaternion(q, sl, b, qix[i], vn, h)
    if ti.static(running):
        act = bc[i, BODY.actuated]
        tq = (tau[t, b, v], tau[t, b, v + 1], tau[t, b, v + 2])
        cst[b, s, i] = h * (qw[b, i, COST.qd_weight] * dot(w, w) + cs[CONST.effort_weight] * act * dot(tq, tq))


@ti.func
def ball_terminal(i, b, slot, qd: ti.template(), vix: ti.template(), qw: ti.template(), loss: ti.template()):
    """A ball joint's terminal cost wqdT |w|^2."""
    v = vix[i]
    w = (qd[slot, b, v], qd[slot, b, v + 1], qd[slot, b, v + 2])
    loss[0] += qw[b, i, COST.qd_weight_final] * dot(w, w)


@ti.func
def pass_accelerations(i, s, b, par: ti.template(), bc: ti.template(), data: ti.template(),
                       revolute_only: ti.template(), ball: ti.template()):
    """Body i, root to leaves: a' = X a_parent + c, qdd = (u - U^T a') / D, a = a' + S qdd
    (with ``ball``, body i may be on a ball joint: :func:`ball_accelerations` picks and stores
    its a and qdd; the returned 1-DOF qdd is then meaningless on a ball joint's body)."""
    rev, pri = joint_kind(bc, i, revolute_only)
    a = body_axis(bc, i)
    p = par[i]
    E = ld33(data, s, b, i, DATA.E)
    ap = ld3(data, s, b, p, DATA.a)
    apl = ld3(data, s, b, p, DATA.a + 3)
    xw, xv = xform_motion(E, ld3(data, s, b, i, DATA.r), ap, apl)
    aw = vadd(xw, ld3(data, s, b, i, DATA.c))
    av = vadd(xv, ld3(data, s, b, i, DATA.c + 3))
    qdd = ((data[b, s, i, DATA.u] - dot(ld3(data, s, b, i, DATA.U), aw) - dot(ld3(data, s, b, i, DATA.U + 3), av))
           / ball_guard(data[b, s, i, DATA.D], bc, i, ball))
    if ti.static(ball):
        ball_accelerations(i, s, b, aw, av, vadd(aw, vscale(a, qdd * rev)) + vadd(av, vscale(a, qdd * pri)), qdd, bc,
                           data)
    else:
        st(data, s, b, i, DATA.a, vadd(aw, vscale(a, qdd * rev)) + vadd(av, vscale(a, qdd * pri)))
        data[b, s, i, DATA.qdd] = qdd
    return qdd


@ti.func
def ball_accelerations(i, s, b, aw, av, a1, qdd1, bc: ti.template(), data: ti.template()):
    """Where body i is on a ball joint: qdd = D^-1 (u - U^T a') (U^T a' = A a'_w + B a'_v),
    a = a' + (qdd, 0); else a1 and qdd1 (the 1-DOF joint's); both stored."""
    on_ball = is_ball(bc, i)
    A, Bm, _ = ld_inertia(data, s, b, i)
    qdd3 = local(mv(ld33(data, s, b, i, BALL_DATA.Dinv),
                    vsub(ld3(data, s, b, i, BALL_DATA.u), vadd(mv(A, aw), mv(Bm, av)))))
    st(data, s, b, i, DATA.a, pick(on_ball, vadd(aw, qdd3) + av, a1))
    st(data, s, b, i, DATA.qdd, pick(on_ball, qdd3, (qdd1, 0.0, 0.0)))


@ti.func
def free_velocities(s, b, sl, q: ti.template(), qd: ti.template(), mass: ti.template(), com: ti.template(),
                    inert: ti.template(), data: ti.template(), contacts: ti.template()):
    """The free root (body 0 of a floating robot), parent the world: X = (E, p), E = R^T, from
    its position p = q[0:3] and unit quaternion q[3:7]; qd[0:3] is its angular velocity w in
    body coordinates, qd[3:6] the world velocity of its origin, so S = diag(1, E), its spatial
    velocity (w, E qd[3:6]) and c = S' qd = (0, -w x v); rigid inertia, bias force, world pose;
    all to the workspace."""
    R = free_pose(s, b, sl, q, data)
    w = (qd[sl, b, 0], qd[sl, b, 1], qd[sl, b, 2])
    v = mtv(R, (qd[sl, b, 3], qd[sl, b, 4], qd[sl, b, 5]))
    m = mass[b, 0]
    cm = row3(com, b, 0)
    I6 = row6(inert, b, 0)
    A, Bm, C = rigid_inertia(m, cm, inertia6(I6))
    hn, hf = inertia_apply(A, Bm, C, w, v)
    bn, bf = cross_force(w, v, hn, hf)
    st(data, s, b, 0, DATA.v, w + v)
    st(data, s, b, 0, DATA.c, ZERO3 + vscale(cross(w, v), -1.0))
    st_inertia(data, s, b, 0, A, Bm, C)
    st(data, s, b, 0, DATA.pA, bn + bf)
    if ti.static(contacts):
        st(data, s, b, 0, DATA.load, (0.0,))


@_scalar
def free_pose(s, b, sl, q, data):
    """The free root's transform X = (E, p) = (R^T, q[0:3]) and world pose (R, p) to the
    workspace; returns R (the rotation of the unit quaternion q[3:7])."""
    R = quat_matrix(_at(q, sl, b, 3), _at(q, sl, b, 4), _at(q, sl, b, 5), _at(q, sl, b, 6))
    p = (_at(q, sl, b, 0), _at(q, sl, b, 1), _at(q, sl, b, 2))
    st(data, s, b, 0, DATA.E, transpose(R))
    st(data, s, b, 0, DATA.r, p)
    st(data, s, b, 0, DATA.R_world, R)
    st(data, s, b, 0, DATA.p_world, p)
    return R


@ti.func
def free_accelerations(s, b, sl, t, q: ti.template(), qd: ti.template(), tau: ti.template(), bc: ti.template(),
                       cs: ti.template(), data: ti.template()):
    """The free root, after the articulated pass: S^T (IA a + pA) = tau gives a = IA^-1 (S^-T
    tau - pA) (its whole articulated inertia; gravity is in the world's acceleration -g), and
    qdd = S^-1 (a - X a_world - c) = (a_w, R (a_v + w x v) + g); then semi-implicit Euler:
    qd' = qd + dt qdd, p' = p + dt qd'[3:6], the quaternion advanced by w' = qd'[0:3]. (With the
    linear velocity in world coordinates a spinning body translates exactly; in body
    coordinates the explicit step rotated it outward, a rolling ball gained 9 % speed per
    second at 15 rad/s.)"""
    act = bc[0, BODY.actuated]
    E = ld33(data, s, b, 0, DATA.E)
    pn = ld3(data, s, b, 0, DATA.pA)
    pf = ld3(data, s, b, 0, DATA.pA + 3)
    tl = mv(E, (act * tau[t, b, 3], act * tau[t, b, 4], act * tau[t, b, 5]))
    fn = (act * tau[t, b, 0] - pn[0], act * tau[t, b, 1] - pn[1], act * tau[t, b, 2] - pn[2])
    ff = vsub(tl, pf)
    # a = IA^-1 (fn, ff) by the Schur complement of C (IA = [[A, B], [B^T, C]], symmetric positive
    # definite); each intermediate is assigned, so Taichi keeps it as a local and does not
    # re-expand the nested expressions (the unassigned form did not compile in 15 min)
    A, Bm, C = ld_inertia(data, s, b, 0)
    Ci = inverse3(C)
    BCi = mm(Bm, Ci)
    Sc = msub(A, mm(BCi, transpose(Bm)))   # the Schur complement, assigned (see above)
    Si = inverse3(Sc)
    aw = mv(Si, vsub(fn, mv(BCi, ff)))
    av = mv(Ci, vsub(ff, mtv(Bm, aw)))
    st(data, s, b, 0, DATA.a, aw + av)
    w = ld3(data, s, b, 0, DATA.v)
    lin = vadd(mtv(E, vadd(av, cross(w, ld3(data, s, b, 0, DATA.v + 3)))),
               (cs[CONST.gravity], cs[CONST.gravity + 1], cs[CONST.gravity + 2]))
    qdd = aw + lin
    st(data, s, b, 0, DATA.qdd, qdd)
    h = cs[CONST.dt]
    vn = (qd[sl, b, 0] + h * qdd[0], qd[sl, b, 1] + h * qdd[1], qd[sl, b, 2] + h * qdd[2],
          qd[sl, b, 3] + h * qdd[3], qd[sl, b, 4] + h * qdd[4], qd[sl, b, 5] + h * qdd[5])
    for k in ti.static(range(6)):
        qd[sl + 1, b, k] = vn[k]
    for k in ti.static(range(3)):
        q[sl + 1, b, k] = q[sl, b, k] + h * vn[3 + k]
    step_quaternion(q, sl, b, 3, (vn[0], vn[1], vn[2]), h)


@_scalar
def step_quaternion(q, sl, b, k, w, h):
    """q[sl + 1, b, k:k+4] = the unit quaternion q[sl, b, k:k+4] advanced by the body angular
    velocity w over h (:func:`quat_step`; the free joint's and the ball joints' rotation)."""
    quat = local(quat_step(ball_quaternion(q, sl, b, k), w, h))   # assigned, as the free joint's step was
    for c in range(4):
        assign(_at(q, sl + 1, b, k + c), quat[c])


@ti.func
def ee_error(ee, t, s, b, eet: ti.template(), cs: ti.template(), data: ti.template()):
    """World position of the end-effector point (cs[CONST.ee_point:], body ee) minus its target at t."""
    pt = (cs[CONST.ee_point], cs[CONST.ee_point + 1], cs[CONST.ee_point + 2])
    tt = ti.min(t, eet.shape[0] - 1)
    x = vadd(mv(ld33(data, s, b, ee, DATA.R_world), pt), ld3(data, s, b, ee, DATA.p_world))
    return vsub(x, (eet[tt, b, 0], eet[tt, b, 1], eet[tt, b, 2]))


@_scalar
def joint_index(table, i, floating):
    """Where body i's joint coordinates start in q or qd: table[i] (qix or vix) for a floating
    robot, i itself otherwise (no indirection in the fixed-base kernels: it cost them 2x)."""
    return subscript(table, i) if floating else i


@ti.func
def joint_step(i, s, b, sl, t, q: ti.template(), qd: ti.template(), tau: ti.template(), qix: ti.template(),
               vix: ti.template(), par: ti.template(), bc: ti.template(), cs: ti.template(), qw: ti.template(),
               data: ti.template(), cst: ti.template(), floating: ti.template(), revolute_only: ti.template(),
               limits: ti.template(), running: ti.template()):
    """1-DOF joint i, root to leaves: ABA's qdd, the semi-implicit Euler update of its q and qd
    (the new qd smoothly clamped to the joint's velocity limit, :func:`velocity_clamp`), and
    with ``running`` (a compile-time switch: the robot's cost has running terms) its running-cost
    term dt (wq (q - q*)^2 + wqd qd^2 + w_u tau^2) to cst[b, s, i]."""
    joint_update(i, pass_accelerations(i, s, b, par, bc, data, revolute_only, False), s, b, sl, t, q, qd, tau, qix,
                 vix, bc, cs, qw, cst, floating, limits, running)


@ti.func
def joint_update(i, qdd, s, b, sl, t, q: ti.template(), qd: ti.template(), tau: ti.template(), qix: ti.template(),
                 vix: ti.template(), bc: ti.template(), cs: ti.template(), qw: ti.template(), cst: ti.template(),
                 floating: ti.template(), limits: ti.template(), running: ti.template()):
    """1-DOF joint i's semi-implicit Euler update with acceleration qdd and its running cost
    (see :func:`joint_step`; without ``limits``, no velocity limit either: the clamp is then the
    identity)."""
    qi = joint_index(qix, i, floating)
    vi = joint_index(vix, i, floating)
    vn = limited_velocity(i, qd[sl, b, vi] + cs[CONST.dt] * qdd, bc, limits)
    qd[sl + 1, b, vi] = vn
    q[sl + 1, b, qi] = q[sl, b, qi] + cs[CONST.dt] * vn
    if ti.static(running):
        e = q[sl, b, qi] - qw[b, i, COST.q_target]
        cst[b, s, i] = cs[CONST.dt] * (qw[b, i, COST.q_weight] * e * e + qw[b, i, COST.qd_weight] * qd[sl, b, vi]
                                       * qd[sl, b, vi] + cs[CONST.effort_weight] * bc[i, BODY.actuated]
                                       * tau[t, b, vi] * tau[t, b, vi])


@ti.func
def joint_articulated(i, s, b, sl, t, q: ti.template(), qd: ti.template(), tau: ti.template(), qix: ti.template(),
                      vix: ti.template(), damp: ti.template(), arm: ti.template(), par: ti.template(),
                      bc: ti.template(), cs: ti.template(), data: ti.template(), floating: ti.template(),
                      revolute_only: ti.template(), ball: ti.template(), limits: ti.template()):
    """1-DOF joint i (or, with ``ball``, a ball joint), leaves to root: its torque (control if
    actuated, damping, soft limit) and ABA's articulated inertia handed to the parent."""
    vi = joint_index(vix, i, floating)
    qi, qdi = q[sl, b, joint_index(qix, i, floating)], qd[sl, b, vi]
    taui = bc[i, BODY.actuated] * tau[t, b, vi] + passive_torque(i, qi, qdi, damp, bc, cs, b, limits)
    tau3, d = ball_torque(ball, i, sl, t, b, vi, qd, tau, damp, arm, bc, cs)
    pass_articulated(i, taui, implicit_inertia(i, qi, qdi, damp, bc, cs, b, limits), s, b, par, arm, bc, data,
                     revolute_only, ball, tau3, d)


@ti.kernel
def advance(q: _A3, qd: _A3, tau: _A3, mass: _A2, com: _A3, inert: _A3, joff: _A3, damp: _A2, arm: _A2,
            par: _I1, qix: _I1, vix: _I1, cb: _I1, bc: _A2, cp: _A2, cs: _A1, qw: _A3, eet: _A3, data: _A4,
            cst: _A3, ee: ti.i32, ncp: ti.i32, slot0: ti.i32, t0: ti.i32, t1: ti.i32, spread: ti.i32,
            floating: ti.template(), spread_robots: ti.template(), revolute_only: ti.template(),
            contacts: ti.template(), ball: ti.template(), poses: ti.template(), limits: ti.template(),
            running: ti.template()):
    """Semi-implicit Euler steps t0..t1-1 of every robot b (ABA forward dynamics):

        qd[t+1] = clamp(qd[t] + dt qdd(q[t], qd[t], tau[t])),   q[t+1] = q[t] + dt qd[t+1]

    (clamp: the smooth velocity limit of each 1-DOF joint, the identity where it has none;
    with cs[CONST.implicit_damping] = 1, qdd has the joint damping implicit, see
    :func:`implicit_inertia`)

    (a free root: its quaternion advanced by the new angular velocity, its position by the new
    velocity in world coordinates). State t in slot slot0 + t - t0 of q (slots, B, nq) and qd
    (slots, B, nv); torques tau (T, B, nv); body i's joint coordinates start at q index qix[i]
    and velocity index vix[i]; ``floating``: body 0 is on a free joint (compiled separately).
    Compile-time switches that leave out what a robot lacks (ModelArrays sets them; each
    combination compiles its own kernels): ``revolute_only``, every 1-DOF joint is revolute
    (:func:`joint_kind`); ``contacts``, the robot has contact points (ncp > 0); ``ball``, the
    robot has ball joints (bc[i, BODY.ball]; the workspace then has ``BALL_DATA`` after
    ``DATA``: :func:`data_size`), without which no ball-joint code is compiled; ``poses``,
    the world poses of the bodies are stored (DATA.R_world, DATA.p_world): where contact points
    or a running end-effector term (ee >= 0) read them; ``limits``, some joint has a finite
    position or velocity limit (without, the soft-limit law and the velocity clamp, exactly 0 and
    the identity at the NO_LIMIT bounds, are left out); ``running``, the running-cost terms are
    written to cst (without, cst is not touched: a cost with no running terms, whose
    ``running_sum`` is then not launched either). A 5-link arm's
    forward and gradient kernels compiled in 9.1-9.2 s of CPU time instead of 12.6-13.2 s (cold
    cache, alternating runs, load 3.4-4.0), states and gradients within 2e-15 relative.
    Workspace slot t - t0. Writes the running-cost terms of step t to cst[b, t - t0, :] (one
    per body: dt (wq (q - q*)^2 + wqd qd^2 + w_u tau^2), tau of actuated joints only, 0 for a
    free root; the last: dt w_ee |x_ee - x*(t)|^2, 0 if ee < 0). Controls of passive joints are
    ignored.

    ``spread_robots`` (compiled separately): robot b is iteration b * spread of the parallel
    loop (:func:`robot_spread`), so that a batch of fewer than 1024 robots per CPU thread uses
    every thread. Not the default: the robot index is then no longer the loop index, and Taichi
    keeps every atomic add to the workspace (and every one of its adjoints) atomic, which it
    demotes to plain adds when each thread provably owns its elements (measured: 1e6 adds 2.0 ms
    against 3.1-3.4 ms), so a single robot runs the plain loop.
    """
    if ti.static(spread_robots):
        for b, j in ti.ndrange(q.shape[1], spread):
            advance_robot(q, qd, tau, mass, com, inert, joff, damp, arm, par, qix, vix, cb, bc, cp, cs, qw, eet,
                          data, cst, ee, ncp, slot0, t0, ti.select(j == 0, t1 - t0, 0), b, floating,
                          revolute_only, contacts, ball, poses, limits, running)
    else:
        for b in range(q.shape[1]):
            advance_robot(q, qd, tau, mass, com, inert, joff, damp, arm, par, qix, vix, cb, bc, cp, cs, qw, eet,
                          data, cst, ee, ncp, slot0, t0, t1 - t0, b, floating, revolute_only, contacts, ball,
                          poses, limits, running)


def robot_spread(batch: int, threads: int) -> int:
    """Iterations of ``advance``'s parallel loop per robot that give every CPU thread robots:
    Taichi's CPU range-for hands its threads tasks of 512 to 1024 iterations (its adaptive
    block size, on by default), so up to 512 robots of one iteration each ran on one thread.
    Spread over 1024 iterations per thread, they fall into at least ``threads`` tasks (the
    iterations between them do nothing). 1 (no spreading) for one robot or one thread, and
    where the plain loop's tasks of 512 already share the robots out evenly: B a multiple of 512
    with at least one task per thread, or at least 8 tasks per thread."""
    if batch == 1 or threads == 1 or (batch % 512 == 0 and batch >= 512 * threads) or batch >= 8 * 512 * threads:
        return 1
    return -(-1024 * threads // batch)


@ti.func
def joint_velocities(i, s, b, sl, q: ti.template(), qd: ti.template(), qix: ti.template(), vix: ti.template(),
                     par: ti.template(), mass: ti.template(), com: ti.template(), inert: ti.template(),
                     joff: ti.template(), bc: ti.template(), data: ti.template(), revolute_only: ti.template(),
                     contacts: ti.template(), ball: ti.template(), poses: ti.template()):
    """Body i's velocity pass, its joint coordinates found through qix, vix: a 1-DOF joint's,
    or with ``ball`` one that serves both kinds: the joint transform and motion of both are
    computed and the body's picked, so that :func:`body_velocities` is compiled once."""
    if ti.static(ball):
        qi, qdi = q[sl, b, qix[i]], qd[sl, b, vix[i]]
        rev, pri = joint_kind(bc, i, revolute_only)
        a = body_axis(bc, i)
        E1, r1 = joint_transform(i, qi, b, joff, bc, revolute_only)
        Eb, rb = ball_transform(i, clamped_row(q, sl, b, qix[i], 4), b, joff, bc)
        on_ball = is_ball(bc, i)
        body_velocities(i, par[i], pick(on_ball, Eb, E1), pick(on_ball, rb, r1),
                        pick(on_ball, clamped_row(qd, sl, b, vix[i], 3), vscale(a, qdi * rev)),
                        pick(on_ball, ZERO3, vscale(a, qdi * pri)), s, b, mass, com, inert, data, contacts,
                        poses)
    else:
        pass_velocities(i, q[sl, b, qix[i]], qd[sl, b, vix[i]], s, b, par, mass, com, inert, joff, bc, data,
                        revolute_only, contacts, poses)


@ti.func
def joint_or_ball_articulated(i, s, b, sl, t, q: ti.template(), qd: ti.template(), tau: ti.template(),
                              qix: ti.template(), vix: ti.template(), damp: ti.template(), arm: ti.template(),
                              par: ti.template(), bc: ti.template(), cs: ti.template(), data: ti.template(),
                              revolute_only: ti.template(), ball: ti.template(), limits: ti.template()):
    """Body i's articulated pass (coordinates through qix, vix): a ball joint's or a 1-DOF joint's
    (with ``ball``, one pass that serves both, :func:`pass_articulated`)."""
    joint_articulated(i, s, b, sl, t, q, qd, tau, qix, vix, damp, arm, par, bc, cs, data, True, revolute_only, ball,
                      limits)


@ti.func
def joint_or_ball_step(i, s, b, sl, t, q: ti.template(), qd: ti.template(), tau: ti.template(), qix: ti.template(),
                       vix: ti.template(), par: ti.template(), bc: ti.template(), cs: ti.template(),
                       qw: ti.template(), data: ti.template(), cst: ti.template(), revolute_only: ti.template(),
                       ball: ti.template(), limits: ti.template(), running: ti.template()):
    """Body i's acceleration pass and step (coordinates through qix, vix): a 1-DOF joint's, or
    with ``ball`` one acceleration pass for both kinds, then the joint's own update."""
    if ti.static(ball):
        qdd = pass_accelerations(i, s, b, par, bc, data, revolute_only, True)
        if is_ball(bc, i):
            ball_update(i, s, b, sl, t, q, qd, tau, qix, vix, bc, cs, qw, data, cst, running)
        else:
            joint_update(i, qdd, s, b, sl, t, q, qd, tau, qix, vix, bc, cs, qw, cst, True, limits, running)
    else:
        joint_step(i, s, b, sl, t, q, qd, tau, qix, vix, par, bc, cs, qw, data, cst, True, revolute_only, limits,
                   running)


@ti.func
def advance_robot(q: ti.template(), qd: ti.template(), tau: ti.template(), mass: ti.template(), com: ti.template(),
                  inert: ti.template(), joff: ti.template(), damp: ti.template(), arm: ti.template(),
                  par: ti.template(), qix: ti.template(), vix: ti.template(), cb: ti.template(), bc: ti.template(),
                  cp: ti.template(), cs: ti.template(), qw: ti.template(), eet: ti.template(), data: ti.template(),
                  cst: ti.template(), ee, ncp, slot0, t0, steps, b, floating: ti.template(),
                  revolute_only: ti.template(), contacts: ti.template(), ball: ti.template(), poses: ti.template(),
                  limits: ti.template(), running: ti.template()):
    """Steps t0..t0+steps-1 of robot b (see ``advance``): one serial loop over the phases of each step."""
    nb = mass.shape[1]
    nph = 3 * nb + 2 * ncp + 2
    for m in range(steps * nph):
        s = m // nph
        k = m - s * nph
        t = t0 + s
        sl = slot0 + s
        # every phase's work sits in a loop of one iteration: Taichi's autodiff then makes each
        # phase an independent block of its own (its adjoint locals declared and zeroed there,
        # not all at the top of the phase loop), and the gradient kernel compiled in 9.2 s of
        # CPU time instead of 22 s (cold cache, 5-link arm), gradients within 4e-15.
        # (Splitting a phase in two, through the workspace, did not help: 10.9 s. The cost
        # follows the size of the whole kernel, not of its largest phase.)
        if k == 0:
            for _ in range(1):
                world_slot(data, cs, s, b, nb, poses)
        elif k <= nb:
            for _ in range(1):
                i = k - 1
                if ti.static(floating):
                    if i == 0:
                        free_velocities(s, b, sl, q, qd, mass, com, inert, data, contacts)
                    else:
                        joint_velocities(i, s, b, sl, q, qd, qix, vix, par, mass, com, inert, joff, bc, data,
                                         revolute_only, contacts, ball, poses)
                elif ti.static(ball):
                    joint_velocities(i, s, b, sl, q, qd, qix, vix, par, mass, com, inert, joff, bc, data,
                                     revolute_only, contacts, ball, poses)
                else:
                    pass_velocities(i, q[sl, b, i], qd[sl, b, i], s, b, par, mass, com, inert, joff, bc, data,
                                    revolute_only, contacts, poses)
        elif k <= nb + 2 * ncp:
            if ti.static(contacts):
                for _ in range(1):
                    contact_phase(k - nb - 1, ncp, s, b, cb, cp, cs, data)
        elif k <= 2 * nb + 2 * ncp:
            for _ in range(1):
                i = 2 * nb + 2 * ncp - k
                if ti.static(floating):
                    if i > 0:
                        joint_or_ball_articulated(i, s, b, sl, t, q, qd, tau, qix, vix, damp, arm, par, bc, cs, data,
                                                  revolute_only, ball, limits)
                elif ti.static(ball):
                    joint_or_ball_articulated(i, s, b, sl, t, q, qd, tau, qix, vix, damp, arm, par, bc, cs, data,
                                              revolute_only, ball, limits)
                else:
                    joint_articulated(i, s, b, sl, t, q, qd, tau, qix, vix, damp, arm, par, bc, cs, data, floating,
                                      revolute_only, False, limits)
        elif k <= 3 * nb + 2 * ncp:
            for _ in range(1):
                i = k - 2 * nb - 2 * ncp - 1
                if ti.static(floating):
                    if i == 0:
                        free_accelerations(s, b, sl, t, q, qd, tau, bc, cs, data)
                        if ti.static(running):
                            cst[b, s, 0] = 0.0
                    else:
                        joint_or_ball_step(i, s, b, sl, t, q, qd, tau, qix, vix, par, bc, cs, qw, data, cst,
                                           revolute_only, ball, limits, running)
                elif ti.static(ball):
                    joint_or_ball_step(i, s, b, sl, t, q, qd, tau, qix, vix, par, bc, cs, qw, data, cst,
                                       revolute_only, ball, limits, running)
                else:
                    joint_step(i, s, b, sl, t, q, qd, tau, qix, vix, par, bc, cs, qw, data, cst, floating,
                               revolute_only, limits, running)
        elif ti.static(running):
            if ee >= 0:
                for _ in range(1):
                    d = ee_error(ee, t, s, b, eet, cs, data)
                    cst[b, s, nb] = cs[CONST.dt] * cs[CONST.ee_weight] * dot(d, d)
            else:
                for _ in range(1):
                    cst[b, s, nb] = 0.0


@ti.func
def joint_terminal(i, b, slot, q: ti.template(), qd: ti.template(), qix: ti.template(), vix: ti.template(),
                   qw: ti.template(), loss: ti.template(), floating: ti.template()):
    e = q[slot, b, joint_index(qix, i, floating)] - qw[b, i, COST.q_target]
    qdi = qd[slot, b, joint_index(vix, i, floating)]
    loss[0] += qw[b, i, COST.q_weight_final] * e * e + qw[b, i, COST.qd_weight_final] * qdi * qdi


@ti.func
def joint_pose_terminal(i, b, slot, q: ti.template(), qd: ti.template(), qix: ti.template(), vix: ti.template(),
                        par: ti.template(), joff: ti.template(), bc: ti.template(), qw: ti.template(),
                        data: ti.template(), loss: ti.template(), revolute_only: ti.template(), ball: ti.template()):
    """Body i's pose and terminal cost term (coordinates through qix, vix): a ball joint's or a 1-DOF joint's."""
    if ti.static(ball):
        if bc[i, BODY.ball] > 0.5:
            ball_pose(i, 0, b, slot, q, qix, par, joff, bc, data)
            ball_terminal(i, b, slot, qd, vix, qw, loss)
        else:
            pass_pose(i, q[slot, b, qix[i]], 0, b, par, joff, bc, data, revolute_only)
            joint_terminal(i, b, slot, q, qd, qix, vix, qw, loss, True)
    else:
        pass_pose(i, q[slot, b, qix[i]], 0, b, par, joff, bc, data, revolute_only)
        joint_terminal(i, b, slot, q, qd, qix, vix, qw, loss, True)


@ti.kernel
def terminal(q: _A3, qd: _A3, joff: _A3, par: _I1, qix: _I1, vix: _I1, bc: _A2, cs: _A1, qw: _A3, eet: _A3,
             data: _A4, ee: ti.i32, slot: ti.i32, t: ti.i32, loss: _A1, floating: ti.template(),
             revolute_only: ti.template(), ball: ti.template()):
    """Forward kinematics of the state in ``slot`` (world poses to workspace slot 0) and the
    terminal cost sum_i (wqT (q_i - q*_i)^2 + wqdT qd_i^2) (1-DOF joints) + w_eeT |x_ee - x*(t)|^2
    into loss[0]."""
    for b in range(q.shape[1]):
        nb = joff.shape[1]
        for k in range(nb + 2):
            # each phase in a loop of one iteration, as in advance_robot (its own block for autodiff)
            if k == 0:
                for _ in range(1):
                    world_slot(data, cs, 0, b, nb, True)
            elif k <= nb:
                for _ in range(1):
                    i = k - 1
                    if ti.static(floating):
                        if i == 0:
                            free_pose(0, b, slot, q, data)
                        else:
                            joint_pose_terminal(i, b, slot, q, qd, qix, vix, par, joff, bc, qw, data, loss,
                                                revolute_only, ball)
                    elif ti.static(ball):
                        joint_pose_terminal(i, b, slot, q, qd, qix, vix, par, joff, bc, qw, data, loss,
                                            revolute_only, ball)
                    else:
                        pass_pose(i, q[slot, b, i], 0, b, par, joff, bc, data, revolute_only)
                        joint_terminal(i, b, slot, q, qd, qix, vix, qw, loss, floating)
            elif ee >= 0:
                for _ in range(1):
                    d = ee_error(ee, t, 0, b, eet, cs, data)
                    loss[0] += cs[CONST.ee_weight_final] * dot(d, d)


@ti.kernel
def running_sum(cst: _A3, n: ti.i32, loss: _A1):
    """loss[0] += the running-cost terms of the first n steps of a segment. One thread: a
    parallel loop's threads contended for loss[0] (66-120 us a launch forward and backward for
    one robot's 1,000 steps, measured with Taichi's kernel profiler), and a serial kernel
    launches in a fifth of the time (TAICHI.md, addendum)."""
    ti.loop_config(serialize=True)
    for b in range(cst.shape[0]):
        for s in range(n):
            for k in range(cst.shape[2]):
                loss[0] += cst[b, s, k]


@ti.kernel
def zero4(a: _A4):
    """a = 0 (a workspace adjoint); one thread, which beats a parallel ndrange here."""
    ti.loop_config(serialize=True)
    for x in range(a.shape[0]):
        for y in range(a.shape[1]):
            for i in range(a.shape[2]):
                for k in range(a.shape[3]):
                    a[x, y, i, k] = 0.0


@ti.kernel
def zero3(a: _A3):
    ti.loop_config(serialize=True)
    for x in range(a.shape[0]):
        for y in range(a.shape[1]):
            for k in range(a.shape[2]):
                a[x, y, k] = 0.0


@ti.kernel
def inverse_dynamics(q: _A3, qd: _A3, qdd: _A2, mass: _A2, com: _A3, inert: _A3, joff: _A3, damp: _A2,
                     arm: _A2, par: _I1, qix: _I1, vix: _I1, cb: _I1, bc: _A2, cp: _A2, cs: _A1, data: _A4,
                     ncp: ti.i32, tau: _A2, M: _A3, floating: ti.template(), revolute_only: ti.template(),
                     contacts: ti.template(), ball: ti.template()):
    """RNEA and CRBA of every robot (not differentiated): tau[b] (nv,) = the torques giving qdd
    (with damping, limits and their added inertia, armature and ground contact as in
    ``advance``; for a passive joint, what an actuator there would have to supply; for a free
    root, the wrench (moment, force; body coordinates) that would have to act on it) and
    M[b] (nv, nv) = M(q) + diag(armature). State in slot 0 of q, qd. Compile-time switches as in
    ``advance``: ``floating`` (body 0 is on a free joint, handled before or after the loops
    over the 1-DOF joints, which then start at body 1), ``revolute_only``, ``contacts``,
    ``ball`` (ball joints: S = [1; 0], 3 columns, tau and qdd 3 entries each); a
    fixed-base robot's kernel holds none of the free joint's code (the hopper's compiled in
    a third of the CPU time of the kernel with runtime switches)."""
    for b in range(q.shape[1]):
        nb = mass.shape[1]
        first = ti.static(1 if floating else 0)   # the first 1-DOF joint
        world_slot(data, cs, 0, b, nb, True)
        if ti.static(floating):
            free_velocities(0, b, 0, q, qd, mass, com, inert, data, contacts)
        for i in range(first, nb):
            joint_velocities(i, 0, b, 0, q, qd, qix, vix, par, mass, com, inert, joff, bc, data, revolute_only,
                             contacts, ball, contacts)
        if ti.static(contacts):
            for j in range(2 * ncp):
                contact_phase(j, ncp, 0, b, cb, cp, cs, data)
        # RNEA, root to leaves: a_i = X a_parent + S qdd + c, f_i = I a_i + v x* I v - f_ext
        if ti.static(floating):   # a = X a_world + S qdd + c, S = diag(1, E)
            xw, xv = xform_motion(ld33(data, 0, b, 0, DATA.E), ld3(data, 0, b, 0, DATA.r),
                                  ld3(data, 0, b, nb, DATA.a), ld3(data, 0, b, nb, DATA.a + 3))
            lin = mv(ld33(data, 0, b, 0, DATA.E), (qdd[b, 3], qdd[b, 4], qdd[b, 5]))
            st(data, 0, b, 0, DATA.a, vadd(xw, (qdd[b, 0], qdd[b, 1], qdd[b, 2]))
               + vadd(vadd(xv, lin), ld3(data, 0, b, 0, DATA.c + 3)))
            rnea_force(0, b, data)
        for i in range(first, nb):
            p = par[i]
            xw, xv = xform_motion(ld33(data, 0, b, i, DATA.E), ld3(data, 0, b, i, DATA.r), ld3(data, 0, b, p, DATA.a),
                                  ld3(data, 0, b, p, DATA.a + 3))
            if ti.static(ball):
                if bc[i, BODY.ball] > 0.5:
                    v3 = vix[i]
                    st(data, 0, b, i, DATA.a, vadd(vadd(xw, (qdd[b, v3], qdd[b, v3 + 1], qdd[b, v3 + 2])),
                                                   ld3(data, 0, b, i, DATA.c)) + vadd(xv, ld3(data, 0, b, i, DATA.c + 3)))
                else:
                    rnea_joint_acceleration(i, b, xw, xv, qdd, vix, bc, data, revolute_only)
            else:
                rnea_joint_acceleration(i, b, xw, xv, qdd, vix, bc, data, revolute_only)
            rnea_force(i, b, data)
        # RNEA, leaves to root: tau_i = S^T f_i, f_parent += X^T f_i
        for k in range(nb - first):
            i = nb - 1 - k
            fn = ld3(data, 0, b, i, DATA.U)
            ff = ld3(data, 0, b, i, DATA.U + 3)
            if ti.static(ball):
                if bc[i, BODY.ball] > 0.5:   # tau = f_n + (armature + implicit damping) qdd + damping w
                    v3 = vix[i]
                    c = damp[b, i]
                    diag = arm[b, i] + cs[CONST.implicit_damping] * cs[CONST.dt] * c
                    for j in ti.static(range(3)):
                        tau[b, v3 + j] = fn[j] + diag * qdd[b, v3 + j] + c * qd[0, b, v3 + j]
                else:
                    rnea_joint_torque(i, b, fn, ff, q, qd, qdd, qix, vix, damp, arm, bc, cs, tau, revolute_only)
            else:
                rnea_joint_torque(i, b, fn, ff, q, qd, qdd, qix, vix, damp, arm, bc, cs, tau, revolute_only)
            pn, pf = xform_force_T(ld33(data, 0, b, i, DATA.E), ld3(data, 0, b, i, DATA.r), fn, ff)
            add(data, 0, b, par[i], DATA.U, pn + pf)
        if ti.static(floating):   # tau = S^T f: the moment (body) and the force (world)
            fn = ld3(data, 0, b, 0, DATA.U)
            fw = mtv(ld33(data, 0, b, 0, DATA.E), ld3(data, 0, b, 0, DATA.U + 3))
            for c in ti.static(range(3)):
                tau[b, c] = fn[c]
                tau[b, 3 + c] = fw[c]
        # CRBA: composite inertias, leaves to root
        for k in range(nb):
            i = nb - 1 - k
            E = ld33(data, 0, b, i, DATA.E)
            Ai, Bi, Ci = ld_inertia(data, 0, b, i)
            Ar = mm(mtm(E, Ai), E)
            Br = mm(mtm(E, Bi), E)
            Cr = mm(mtm(E, Ci), E)
            An, Bn, Cn = shift_inertia(skew3(ld3(data, 0, b, i, DATA.r)), Ar, Br, Cr)
            add_inertia(data, 0, b, par[i], An, Bn, Cn)
        # CRBA: F = Ic_i S_i carried up the chain, M_ij = S_j^T F (S = 1 for a free root)
        if ti.static(floating):   # S^T Ic S = [[A, B E], [E^T B^T, E^T C E]]
            E0 = ld33(data, 0, b, 0, DATA.E)
            A, Bc, Cc = ld_inertia(data, 0, b, 0)
            Bm = mm(Bc, E0)
            C = mtm(E0, mm(Cc, E0))
            for r in ti.static(range(3)):
                for c in ti.static(range(3)):
                    M[b, r, c] = A[3 * r + c]
                    M[b, r, 3 + c] = Bm[3 * r + c]
                    M[b, 3 + c, r] = Bm[3 * r + c]
                    M[b, 3 + r, 3 + c] = C[3 * r + c]
        for i in range(first, nb):
            if ti.static(ball):
                if bc[i, BODY.ball] > 0.5:   # three columns F = Ic S e_c, S = [1; 0]
                    vi = vix[i]
                    for col in range(3):
                        e = (ti.select(col == 0, 1.0, 0.0), ti.select(col == 1, 1.0, 0.0),
                             ti.select(col == 2, 1.0, 0.0))
                        Fn, Ff = inertia_apply(*ld_inertia(data, 0, b, i), e, ZERO3)
                        for c in ti.static(range(3)):
                            M[b, vi + col, vi + c] = Fn[c] + e[c] * arm[b, i]
                        crba_carry(i, vi + col, Fn, Ff, b, nb, par, vix, bc, data, M, floating, revolute_only, ball)
                else:
                    crba_joint(i, b, nb, par, vix, arm, bc, data, M, floating, revolute_only, ball)
            else:
                crba_joint(i, b, nb, par, vix, arm, bc, data, M, floating, revolute_only, ball)


@ti.func
def rnea_joint_acceleration(i, b, xw, xv, qdd: ti.template(), vix: ti.template(), bc: ti.template(),
                            data: ti.template(), revolute_only: ti.template()):
    """RNEA's a_i = X a_parent + S qdd + c of 1-DOF joint i, (xw, xv) = X a_parent."""
    rev, pri = joint_kind(bc, i, revolute_only)
    ax = body_axis(bc, i)
    qddi = qdd[b, vix[i]]
    st(data, 0, b, i, DATA.a, vadd(vadd(xw, vscale(ax, qddi * rev)), ld3(data, 0, b, i, DATA.c))
       + vadd(vadd(xv, vscale(ax, qddi * pri)), ld3(data, 0, b, i, DATA.c + 3)))


@ti.func
def rnea_joint_torque(i, b, fn, ff, q: ti.template(), qd: ti.template(), qdd: ti.template(), qix: ti.template(),
                      vix: ti.template(), damp: ti.template(), arm: ti.template(), bc: ti.template(),
                      cs: ti.template(), tau: ti.template(), revolute_only: ti.template()):
    """RNEA's tau_i = S^T f_i + (armature + added inertia) qdd - passive torque of 1-DOF joint i."""
    rev, pri = joint_kind(bc, i, revolute_only)
    ax = body_axis(bc, i)
    qi, vi = q[0, b, qix[i]], qd[0, b, vix[i]]
    tau[b, vix[i]] = (dot(ax, fn) * rev + dot(ax, ff) * pri
                      + (arm[b, i] + implicit_inertia(i, qi, vi, damp, bc, cs, b, True)) * qdd[b, vix[i]]
                      - passive_torque(i, qi, vi, damp, bc, cs, b, True))


@ti.func
def crba_joint(i, b, nb, par: ti.template(), vix: ti.template(), arm: ti.template(), bc: ti.template(),
               data: ti.template(), M: ti.template(), floating: ti.template(), revolute_only: ti.template(),
               ball: ti.template()):
    """CRBA of 1-DOF joint i: M_ii = S^T Ic S + armature, then F = Ic S carried up the chain."""
    rev, pri = joint_kind(bc, i, revolute_only)
    ax = body_axis(bc, i)
    vi = vix[i]
    Fn, Ff = inertia_apply(*ld_inertia(data, 0, b, i), vscale(ax, rev), vscale(ax, pri))
    M[b, vi, vi] = dot(ax, Fn) * rev + dot(ax, Ff) * pri + arm[b, i]
    crba_carry(i, vi, Fn, Ff, b, nb, par, vix, bc, data, M, floating, revolute_only, ball)


@ti.func
def crba_carry(i, vi, Fn, Ff, b, nb, par: ti.template(), vix: ti.template(), bc: ti.template(), data: ti.template(),
               M: ti.template(), floating: ti.template(), revolute_only: ti.template(), ball: ti.template()):
    """CRBA: body i's F = (Fn, Ff) (the column of dof vi) carried up the chain, X^T F at each
    ancestor j, giving M[vi, j's dofs] and its mirror."""
    st(data, 0, b, i, DATA.U, Fn + Ff)  # F, carried up the chain in place (no AD here)
    j = i
    while par[j] < nb:
        Gn, Gf = xform_force_T(ld33(data, 0, b, j, DATA.E), ld3(data, 0, b, j, DATA.r),
                               ld3(data, 0, b, i, DATA.U), ld3(data, 0, b, i, DATA.U + 3))
        st(data, 0, b, i, DATA.U, Gn + Gf)
        j = par[j]
        if ti.static(floating):
            if j == 0:
                Gw = mtv(ld33(data, 0, b, 0, DATA.E), Gf)
                for c in ti.static(range(3)):
                    M[b, vi, c] = Gn[c]
                    M[b, c, vi] = Gn[c]
                    M[b, vi, 3 + c] = Gw[c]
                    M[b, 3 + c, vi] = Gw[c]
            else:
                crba_ancestor(vi, j, Gn, Gf, b, vix, bc, M, revolute_only, ball)
        else:
            crba_ancestor(vi, j, Gn, Gf, b, vix, bc, M, revolute_only, ball)


@ti.func
def crba_ancestor(vi, j, Gn, Gf, b, vix: ti.template(), bc: ti.template(), M: ti.template(),
                  revolute_only: ti.template(), ball: ti.template()):
    """CRBA's entries of dof vi with ancestor j's dofs: S_j^T F (3 of them for a ball joint)."""
    if ti.static(ball):
        if bc[j, BODY.ball] > 0.5:
            vj = vix[j]
            for c in ti.static(range(3)):
                M[b, vi, vj + c] = Gn[c]
                M[b, vj + c, vi] = Gn[c]
        else:
            crba_entry(vi, j, Gn, Gf, b, vix, bc, M, revolute_only)
    else:
        crba_entry(vi, j, Gn, Gf, b, vix, bc, M, revolute_only)


@ti.func
def rnea_force(i, b, data: ti.template()):
    """RNEA's f_i = I a_i + (v x* I v - f_ext) of body i (the bias pA), to DATA.U."""
    fn, ff = inertia_apply(*ld_inertia(data, 0, b, i), ld3(data, 0, b, i, DATA.a), ld3(data, 0, b, i, DATA.a + 3))
    st(data, 0, b, i, DATA.U, vadd(fn, ld3(data, 0, b, i, DATA.pA)) + vadd(ff, ld3(data, 0, b, i, DATA.pA + 3)))


@ti.func
def crba_entry(vi, j, Gn, Gf, b, vix: ti.template(), bc: ti.template(), M: ti.template(),
               revolute_only: ti.template()):
    """CRBA's M_ij = M_ji = S_j^T F for the F = (Gn, Gf) of dof vi carried to 1-DOF joint j."""
    rj, pj = joint_kind(bc, j, revolute_only)
    aj = body_axis(bc, j)
    Mij = dot(aj, Gn) * rj + dot(aj, Gf) * pj
    M[b, vi, vix[j]] = Mij
    M[b, vix[j], vi] = Mij
