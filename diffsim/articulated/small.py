"""A step kernel for small fixed-base robots: the bodies unrolled at compile time, their
spatial quantities in locals, the robot's geometry compile-time constants.

``advance`` (:mod:`.kernels`) serves every robot with one compiled kernel: the body loop is a
dynamic loop over phases, every per-body quantity goes through the workspace ndarray, and the
joint axes and frames are read from memory. For a robot with few bodies (at most
:data:`MAX_BODIES`), fixed base, 1-DOF joints on coordinate axes and joint frames whose rotations
are signed permutations (:func:`small_tree`; contact points allowed), this module compiles one
kernel per tree: the parents, each joint's axis, frame rotation and kind (revolute or prismatic)
and each contact point's body are template values, each step is straight-line code over the
bodies, every intermediate a local assigned once per step (nothing but q, qd and the running
cost is stored; reverse mode needs no adstack), and the products with the axes' and frames'
zeros and ones fold away at compile time (:func:`~diffsim.articulated.spatial.fmul`).

The terminal cost of these robots is :func:`terminal_small`: their forward kinematics unrolled
the same way, on one thread (issue 16's chain: ~37 us a launch forward and backward, against
60-65 us for ``kernels.terminal``'s parallel loop over its workspace).

Measured (issue 16's 5-link chain, T = 1,000, the kernel alone, CPU ms): forward 1.79 -> 0.48,
gradient 4.64 -> 1.52 against ``advance``. The folding is what pays: the same unrolled kernel
with the axes read from memory ran the forward 1.41 -> 1.09 ms and its gradient no faster (3.1 ->
3.2 ms), and compiled its gradient for 53 s. Results equal ``advance``'s to ~1e-14 (not bitwise).

The dynamics are ``advance``'s (the same helpers of :mod:`.kernels` and :mod:`.spatial`, in the
same order: ABA with the joint's passive torque, implicit terms and velocity clamp, ground
contact through the shared law with friction, then semi-implicit Euler), minus what a static
tree makes unnecessary: the world's velocity is zero, the root's hand-over to the world is never
read, and world poses are computed only along the paths to the contact and end-effector bodies.
"""

import taichi as ti

from .. import contact as _contact
from ..compat import assign, subscript
from .kernels import (
    BODY,
    CONST,
    CONTACT,
    COST,
    contact_normal,
    implicit_inertia,
    limited_velocity,
    passive_torque,
    row3,
    row6,
)
from .model import REVOLUTE
from .spatial import (
    _scalar,
    congruence_symmetric,
    cross,
    cross_force,
    cross_motion,
    dot,
    fmul,
    fsub,
    fsum,
    inertia6,
    inertia_apply,
    local,
    madd,
    mm,
    mtm,
    mtv,
    mv,
    rigid_inertia,
    rotation_T,
    shift_inertia_symmetric,
    sub_outer,
    sub_outer_symmetric,
    vadd,
    vscale,
    vsub,
    xform_force_T,
    xform_motion,
)

_at = subscript
_A1 = ti.types.ndarray(ndim=1)
_A2 = ti.types.ndarray(ndim=2)
_A3 = ti.types.ndarray(ndim=3)

MAX_BODIES = 6
"""Robots with more bodies take the general kernel: compile time grows with the unrolled size
(cold cache, CPU s of the first forward + backward: a 3-D chain of x/y axes 7.7 s at 6 bodies,
12.8 s at 8; a planar arm 4.1 s at 6, 5.6 s at 8; the general kernel ~7.5 s at any size)."""


@_scalar
def locals_(*xs):
    return tuple(local(x) for x in xs)


@_scalar
def axis_rotation_T(a, c, s):
    """E = R(a, angle)^T (see spatial.rotation_T) for an axis a of plain numbers: the explicit
    entries (cos, sin, 0, 1) for a coordinate axis +-e_j, Rodrigues' formula otherwise."""
    j = coordinate_axis(a)
    if j is None:
        return rotation_T(a, c, s)
    if a[j] < 0:
        s = -s
    E = [[1.0 if r == k else 0.0 for k in range(3)] for r in range(3)]
    u, w = (j + 1) % 3, (j + 2) % 3
    E[u][u], E[u][w], E[w][u], E[w][w] = c, s, -s, c
    return tuple(E[r][k] for r in range(3) for k in range(3))


def coordinate_axis(a):
    """j where the axis a is exactly +-e_j, else None."""
    for j in range(3):
        if all(a[k] == 0.0 for k in range(3) if k != j) and abs(a[j]) == 1.0:
            return j
    return None


def simple_geometry(axis, E_tree) -> bool:
    """Whether a joint's axis is a coordinate axis and its frame's rotation a signed permutation
    (every entry exactly 0, 1 or -1): then nearly every product with them folds away at compile
    time. (Measured, cold cache: a 6-link chain of skew axes behind rpy frames compiled its small
    kernel in 4.6 + 11.9 CPU s, against 1.6 + 2.4 s for a planar 6-link arm.)"""
    return coordinate_axis(axis) is not None and all(x in (0.0, 1.0, -1.0) for x in E_tree)


@_scalar
def joint_frame(i, qi, b, joff, geometry):
    """(E, r), body i's joint transform X_J(q) X_tree at joint position qi (kernels.joint_transform's
    formulas with the axis and frame rotation compile-time constants): a rotation about the axis
    when revolute; a shift along it when prismatic, the rotation then the constant E_tree."""
    a, Et, rev = geometry[i]
    if rev:
        cq = local((ti.cos(qi), ti.sin(qi)))
        return local(mm(axis_rotation_T(a, cq[0], cq[1]), Et)), local(row3(joff, b, i))
    return Et, local(vadd(row3(joff, b, i), vscale(mtv(Et, a), qi)))


@_scalar
def world_pose(i, E, r, parents, memo):
    """(R_world, p_world) of body i (its rotation to world coordinates, row-major, and its
    origin, m) from the joint transforms E, r of it and its ancestors (kernels.store_pose's
    formulas, the world at the identity), computed once per step (``memo``)."""
    if i not in memo:
        Et = tuple(E[i][k] for k in (0, 3, 6, 1, 4, 7, 2, 5, 8))
        p = parents[i]
        if p < 0:
            memo[i] = (Et, r[i])
        else:
            Rp, pp = world_pose(p, E, r, parents, memo)
            memo[i] = (local(mm(Rp, Et)), local(vadd(pp, mv(Rp, r[i]))))
    return memo[i]


@_scalar
def ground_contacts(pA, E, r, w, v, poses, cp, cs, hdt, parents, contact_bodies):
    """Ground contact of each contact point k (on body contact_bodies[k]; kernels.contact_phase's
    law, shared with the general kernel): its normal force, the body's load (the normal forces of
    all its points) capping friction's stiffness, smoothed Coulomb friction; the spatial force
    subtracted from the body's bias force pA[i]."""
    kin, load = [], {}
    for k, i in enumerate(contact_bodies):
        R, pw = world_pose(i, E, r, parents, poses)
        rad = _at(cp, k, CONTACT.radius)
        pt = local(tuple(_at(cp, k, j) - rad * R[6 + j] for j in range(3)))
        x = vadd(mv(R, pt), pw)
        vel = local(mv(R, local(vadd(v[i], cross(w[i], pt)))))
        fn = local(contact_normal(x, vel, cs))
        load[i] = fn if i not in load else load[i] + fn
        kin.append((i, R, pt, vel, fn))
    mu = _at(cs, CONST.friction)
    v_eps = _at(cs, CONST.slip_speed)
    for k, (i, R, pt, vel, fn) in enumerate(kin):
        v_cap = 2.0 * hdt * mu * load[i] / _at(cp, k, CONTACT.tangential_mass)
        slip = local(_contact.coulomb_slip_factor(vel[0], vel[1], fn, mu, ti.sqrt(v_eps * v_eps + v_cap * v_cap)))
        Fb = local(mtv(R, (slip * vel[0], slip * vel[1], fn)))
        pA[i] = madd(pA[i], vscale(cross(pt, Fb), -1.0) + vscale(Fb, -1.0))


@_scalar
def accelerations_small(qs, qds, tau, mass, com, inert, joff, damp, arm, bc, cs, cp, b, t, parents, geometry,
                        contact_bodies, limits, joint_done=None, poses_done=None):
    """ABA of robot b at joint positions qs and velocities qds (lists of locals, one per body)
    under the torques tau[t, b]: (qdd, E, r, dt), the joint accelerations (a list), the joint
    transforms (for the poses of the end-effector term) and the time step (s). ``joint_done(i,
    qdd_i, dt)``, if given, is called as soon as joint i's acceleration is known (the Euler
    step's update goes there, so that its code is emitted in the order it always was)."""
    n = len(parents)
    E, r, w, v, c, IA, pA = [None] * n, [None] * n, [None] * n, [None] * n, [None] * n, [None] * n, [None] * n
    # root to leaves: transforms, velocities, rigid inertias, bias forces
    for i in range(n):
        a, _, rev = geometry[i]
        pri = 1.0 - rev
        Ei, ri = joint_frame(i, qs[i], b, joff, geometry)
        jw = tuple(fmul(x, fmul(qds[i], rev)) for x in a)
        jv = tuple(fmul(x, fmul(qds[i], pri)) for x in a)
        p = parents[i]
        if p < 0:
            wi, vi = jw, jv
        else:
            xw, xv = xform_motion(Ei, ri, w[p], v[p])
            wi, vi = vadd(xw, jw), vadd(xv, jv)
        wi, vi = local(wi), local(vi)
        cw, cv = cross_motion(wi, vi, jw, jv)
        A, Bm, C = rigid_inertia(_at(mass, b, i), row3(com, b, i), inertia6(row6(inert, b, i)))
        A, Bm, C = locals_(A, Bm, C)
        hn, hf = inertia_apply(A, Bm, C, wi, vi)
        bn, bf = cross_force(wi, vi, hn, hf)
        E[i], r[i], w[i], v[i], c[i] = Ei, ri, wi, vi, local(cw + cv)
        IA[i] = (A, Bm, C)
        pA[i] = bn + bf
    hdt = local(_at(cs, CONST.dt))
    if poses_done is not None:
        poses_done(E, r, hdt)
    if contact_bodies:
        ground_contacts(pA, E, r, w, v, {}, cp, cs, hdt, parents, contact_bodies)
    # leaves to root: articulated inertias and bias forces
    U, D, u = [None] * n, [None] * n, [None] * n
    for i in reversed(range(n)):
        a, _, rev = geometry[i]
        pri = 1.0 - rev
        A, Bm, C = locals_(*IA[i])
        pAi = local(pA[i])
        pn, pf = pAi[:3], pAi[3:]
        taui = _at(bc, i, BODY.actuated) * _at(tau, t, b, i) + passive_torque(i, qs[i], qds[i], damp, bc, cs, b, limits)
        Un, Uf = inertia_apply(A, Bm, C, vscale(a, rev), vscale(a, pri))
        Un, Uf = local(Un), local(Uf)
        Di = local(fsum(fmul(dot(a, Un), rev), fmul(dot(a, Uf), pri), _at(arm, b, i),
                        implicit_inertia(i, qs[i], qds[i], damp, bc, cs, b, limits)))
        ui = local(fsub(fsub(taui, fmul(dot(a, pn), rev)), fmul(dot(a, pf), pri)))
        U[i], D[i], u[i] = (Un, Uf), Di, ui
        p = parents[i]
        if p >= 0:
            iD = local(1.0 / Di)
            Vn = vscale(Un, iD)
            Vf = vscale(Uf, iD)
            Aa = local(sub_outer_symmetric(A, Un, Vn))
            Ba = local(sub_outer(Bm, Un, Vf))
            Ca = local(sub_outer_symmetric(C, Uf, Vf))
            g = ui * iD
            hn, hf = inertia_apply(Aa, Ba, Ca, c[i][:3], c[i][3:])
            Ar = congruence_symmetric(E[i], Aa)
            Br = local(mm(local(mtm(E[i], Ba)), E[i]))
            Cr = congruence_symmetric(E[i], Ca)
            An, Bn, Cn = shift_inertia_symmetric(r[i], local(Ar), Br, local(Cr))
            fn, ff = xform_force_T(E[i], r[i], vadd(vadd(pn, hn), vscale(Un, g)), vadd(vadd(pf, hf), vscale(Uf, g)))
            Ap, Bp, Cp = IA[p]
            IA[p] = (madd(Ap, An), madd(Bp, Bn), madd(Cp, Cn))
            pA[p] = madd(pA[p], fn + ff)
    # root to leaves: accelerations
    acc, qdd = [None] * n, [None] * n
    grav = tuple(-_at(cs, CONST.gravity + k) for k in range(3))
    for i in range(n):
        a, _, rev = geometry[i]
        pri = 1.0 - rev
        p = parents[i]
        if p < 0:
            xw, xv = xform_motion(E[i], r[i], (0.0, 0.0, 0.0), grav)
        else:
            xw, xv = xform_motion(E[i], r[i], acc[p][:3], acc[p][3:])
        aw = local(vadd(xw, c[i][:3]))
        av = local(vadd(xv, c[i][3:]))
        qdd[i] = local((u[i] - dot(U[i][0], aw) - dot(U[i][1], av)) / D[i])
        acc[i] = local(vadd(aw, vscale(a, fmul(qdd[i], rev))) + vadd(av, vscale(a, fmul(qdd[i], pri))))
        if joint_done is not None:
            joint_done(i, qdd[i], hdt)
    return qdd, E, r, hdt


@_scalar
def joint_running_term(i, qi, qdi, tau, qw, cs, bc, cst, hdt, s, b, t):
    """Joint i's running-cost term dt (wq (q - q*)^2 + wqd qd^2 + w_u tau^2) at step t (state
    qi, qdi) to cst[b, s, i]."""
    e = qi - _at(qw, b, i, COST.q_target)
    ti_ = _at(tau, t, b, i)
    assign(_at(cst, b, s, i), hdt * (_at(qw, b, i, COST.q_weight) * e * e
                                     + _at(qw, b, i, COST.qd_weight) * qdi * qdi
                                     + _at(cs, CONST.effort_weight) * _at(bc, i, BODY.actuated) * ti_ * ti_))


@_scalar
def ee_running_term(eet, cs, cst, E, r, hdt, s, b, t, parents, ee):
    """The end-effector's running-cost term dt w_ee |x_ee - x*(t)|^2 (E, r: the joint
    transforms at step t) to cst[b, s, nb]; 0 for ee < 0."""
    n = len(parents)
    if ee >= 0:
        # its own copy of the pose chain: reusing the contact phase's (the memo) gave a wrong
        # gradient (Taichi 1.7.4's autodiff, a robot with its contact point and the running
        # end-effector term on one body: tau gradient 7,000x off, the forward exact)
        Rw, pw = world_pose(ee, E, r, parents, {})
        pt = tuple(_at(cs, CONST.ee_point + k) for k in range(3))
        tt = ti.min(t, eet.shape[0] - 1)
        d = local(vsub(vadd(mv(Rw, pt), pw), tuple(_at(eet, tt, b, k) for k in range(3))))
        assign(_at(cst, b, s, n), hdt * _at(cs, CONST.ee_weight) * dot(d, d))
    else:
        assign(_at(cst, b, s, n), 0.0)


@_scalar
def step_small(q, qd, tau, mass, com, inert, joff, damp, arm, bc, cs, qw, eet, cp, cst, s, b, sl, t, parents, geometry, ee,
               contact_bodies, limits, running, rk4):
    """One step of robot b (slot sl -> sl + 1), bodies unrolled: semi-implicit Euler, or with
    ``rk4`` the classic Runge-Kutta step (module doc), its four ABA stages inlined."""
    n = len(parents)
    qs = [local(_at(q, sl, b, i)) for i in range(n)]
    qds = [local(_at(qd, sl, b, i)) for i in range(n)]
    model = (tau, mass, com, inert, joff, damp, arm, bc, cs, cp, b, t, parents, geometry, contact_bodies, limits)

    def euler_update(i, qdd, hdt):
        vn = local(limited_velocity(i, qds[i] + hdt * qdd, bc, limits))
        assign(_at(qd, sl + 1, b, i), vn)
        assign(_at(q, sl + 1, b, i), qs[i] + hdt * vn)
        if running:
            joint_running_term(i, qs[i], qds[i], tau, qw, cs, bc, cst, hdt, s, b, t)

    def ee_term(E, r, hdt):
        if running and ee >= 0:
            ee_running_term(eet, cs, cst, E, r, hdt, s, b, t, parents, ee)

    if not rk4:
        _, E, r, hdt = accelerations_small(qs, qds, *model, joint_done=euler_update, poses_done=ee_term)
    else:
        a1, E, r, hdt = accelerations_small(qs, qds, *model, poses_done=ee_term)
        half = local(0.5 * hdt)
        q2 = [local(qs[i] + half * qds[i]) for i in range(n)]
        qd2 = [local(qds[i] + half * a1[i]) for i in range(n)]
        a2 = accelerations_small(q2, qd2, *model)[0]
        q3 = [local(qs[i] + half * qd2[i]) for i in range(n)]
        qd3 = [local(qds[i] + half * a2[i]) for i in range(n)]
        a3 = accelerations_small(q3, qd3, *model)[0]
        q4 = [local(qs[i] + hdt * qd3[i]) for i in range(n)]
        qd4 = [local(qds[i] + hdt * a3[i]) for i in range(n)]
        a4 = accelerations_small(q4, qd4, *model)[0]
        sixth = local(hdt / 6.0)
        for i in range(n):
            vn = local(limited_velocity(i, qds[i] + sixth * (a1[i] + 2.0 * (a2[i] + a3[i]) + a4[i]), bc, limits))
            assign(_at(qd, sl + 1, b, i), vn)
            assign(_at(q, sl + 1, b, i), qs[i] + sixth * (qds[i] + 2.0 * (qd2[i] + qd3[i]) + qd4[i]))
            if running:
                joint_running_term(i, qs[i], qds[i], tau, qw, cs, bc, cst, hdt, s, b, t)
    if running and ee < 0:
        ee_running_term(eet, cs, cst, E, r, hdt, s, b, t, parents, ee)


@ti.kernel
def advance_small(q: _A3, qd: _A3, tau: _A3, mass: _A2, com: _A3, inert: _A3, joff: _A3, damp: _A2, arm: _A2,
                  bc: _A2, cs: _A1, qw: _A3, eet: _A3, cp: _A2, cst: _A3, slot0: ti.i32, t0: ti.i32, t1: ti.i32,
                  spread: ti.i32, parents: ti.template(), geometry: ti.template(), ee: ti.template(),
                  contact_bodies: ti.template(), spread_robots: ti.template(), limits: ti.template(),
                  running: ti.template(), rk4: ti.template()):
    """``kernels.advance`` for a small fixed-base robot of 1-DOF joints (module doc), with the
    same arguments' meaning; the tree is compile-time: ``parents`` (a tuple, -1 for a root),
    ``geometry`` (per body: the joint axis and the row-major E_tree, tuples of floats, and 1.0
    for a revolute joint, 0.0 for a prismatic one), ``ee`` (the body of the running
    end-effector term, -1 for none) and ``contact_bodies`` (the body of each contact point)."""
    if ti.static(spread_robots):
        for b, j in ti.ndrange(q.shape[1], spread):
            for s in range(ti.select(j == 0, t1 - t0, 0)):
                step_small(q, qd, tau, mass, com, inert, joff, damp, arm, bc, cs, qw, eet, cp, cst, s, b, slot0 + s,
                           t0 + s, parents, geometry, ee, contact_bodies, limits, running, rk4)
    else:
        for b in range(q.shape[1]):
            for s in range(t1 - t0):
                step_small(q, qd, tau, mass, com, inert, joff, damp, arm, bc, cs, qw, eet, cp, cst, s, b, slot0 + s,
                           t0 + s, parents, geometry, ee, contact_bodies, limits, running, rk4)



@_scalar
def terminal_robot(q, qd, joff, cs, qw, eet, slot, t, loss, b, parents, geometry, ee):
    """Robot b's terminal cost from the state in ``slot``: each joint's wqT (q - q*)^2 + wqdT
    qd^2, then w_eeT |x_ee - x*(t)|^2 (world poses along the path to body ``ee`` only; none
    for ee < 0), added to loss[0] in ``kernels.terminal``'s order."""
    n = len(parents)
    for i in range(n):
        e = _at(q, slot, b, i) - _at(qw, b, i, COST.q_target)
        qdi = _at(qd, slot, b, i)
        ti.atomic_add(_at(loss, 0), _at(qw, b, i, COST.q_weight_final) * e * e
                      + _at(qw, b, i, COST.qd_weight_final) * qdi * qdi)
    if ee >= 0:
        path, i = [], ee
        while i >= 0:
            path.append(i)
            i = parents[i]
        E, r = [None] * n, [None] * n
        for i in reversed(path):
            E[i], r[i] = joint_frame(i, local(_at(q, slot, b, i)), b, joff, geometry)
        Rw, pw = world_pose(ee, E, r, parents, {})
        pt = tuple(_at(cs, CONST.ee_point + k) for k in range(3))
        tt = ti.min(t, eet.shape[0] - 1)
        d = local(vsub(vadd(mv(Rw, pt), pw), tuple(_at(eet, tt, b, k) for k in range(3))))
        ti.atomic_add(_at(loss, 0), _at(cs, CONST.ee_weight_final) * dot(d, d))


@ti.kernel
def terminal_small(q: _A3, qd: _A3, joff: _A3, cs: _A1, qw: _A3, eet: _A3, slot: ti.i32, t: ti.i32, loss: _A1,
                   parents: ti.template(), geometry: ti.template(), ee: ti.template()):
    """``kernels.terminal`` for the robots of :func:`advance_small` (same cost, same order of
    additions; the end-effector's pose through :func:`joint_frame` and :func:`world_pose`, as
    the step's running term, so equal to ``terminal``'s to rounding): the tree compile-time,
    ``ee`` the end-effector's body (-1: no end-effector term). One thread: forward kinematics
    of a few bodies is far less work than the thread pool's hand-over (a parallel launch cost
    90 us forward and as much backward for one robot, against ~15 us serial)."""
    ti.loop_config(serialize=True)
    for b in range(q.shape[1]):
        terminal_robot(q, qd, joff, cs, qw, eet, slot, t, loss, b, parents, geometry, ee)


def small_tree(model, arrays, any_geometry: bool = False):
    """(parents, geometry, contact_bodies), the compile-time tree of :func:`advance_small`, where
    ``model`` is a small robot it serves: fixed base, 1-DOF joints only, at most
    :data:`MAX_BODIES` bodies, every joint's geometry simple (:func:`simple_geometry`; with
    ``any_geometry`` any: correct, but slow to compile); None otherwise (the general
    ``kernels.advance``)."""
    if model.floating or arrays.ball or model.nb > MAX_BODIES:
        return None
    parents = tuple(int(p) for p in model.parent)
    geometry = tuple((tuple(float(x) for x in model.axis[i]), tuple(float(x) for x in model.E_tree[i].reshape(9)),
                      1.0 if model.jtype[i] == REVOLUTE else 0.0) for i in range(model.nb))
    if not any_geometry and not all(simple_geometry(a, Et) for a, Et, _ in geometry):
        return None
    return parents, geometry, tuple(int(i) for i in model.contact_body)
