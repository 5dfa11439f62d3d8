"""Featherstone's algorithms on Taichi against the NumPy reference and against each other:
RNEA(q, qd, ABA(q, qd, tau)) = tau, CRBA symmetric positive definite, kinematics and Jacobians."""

import numpy as np
import pytest

from diffsim.articulated import (
    GroundContact,
    RobotBuilder,
    aba,
    body_poses,
    cartpole,
    crba,
    link_pose,
    planar_arm,
    point_jacobian,
    point_position,
    rnea,
)
from diffsim.articulated import reference as ref
from diffsim.articulated import spatial as sp
from diffsim.articulated.dynamics import DEFAULT_DT
from diffsim.articulated.limits import contact_tangential_mass


def random_inertia(rng, mass):
    """A physical inertia (kg m^2): tr(S) 1 - S of a random second-moment tensor S = sum m r r^T,
    so the principal moments obey the triangle inequality."""
    A = rng.normal(size=(3, 3))
    S = mass * (0.01 * np.eye(3) + 0.02 * A @ A.T)
    return np.trace(S) * np.eye(3) - S


def branched_tree(seed=0, contact=False):
    """A 3-D tree mixing revolute, continuous, prismatic and fixed joints with arbitrary axes,
    offsets, rotations and inertias; a fixed joint in the middle merges two links."""
    rng = np.random.default_rng(seed)
    rb = RobotBuilder("tree", gravity=(0.3, -0.2, -9.81))
    rb.add_link("base")
    for i in range(1, 8):
        m = rng.uniform(0.5, 2.0)
        rb.add_link(f"l{i}", mass=m, com=rng.normal(scale=0.1, size=3), inertia=random_inertia(rng, m))
    joints = [("j1", "revolute", "base", "l1"), ("j2", "prismatic", "l1", "l2"), ("j3", "fixed", "l1", "l3"),
              ("j4", "revolute", "l3", "l4"), ("j5", "continuous", "l2", "l5"), ("j6", "revolute", "l4", "l6"),
              ("j7", "prismatic", "l4", "l7")]
    for name, kind, parent, child in joints:
        rb.add_joint(name, kind, parent, child, xyz=rng.normal(scale=0.3, size=3),
                     rpy=rng.uniform(-np.pi, np.pi, size=3), axis=rng.normal(size=3),
                     damping=rng.uniform(0, 0.2), armature=rng.uniform(0, 0.05),
                     lower=-0.5 if kind == "revolute" else None, upper=0.5 if kind == "revolute" else None)
    if contact:
        rb.add_contact_point("l6", (0.1, 0.0, 0.0))
        rb.add_contact_point("l5", (0.0, 0.05, 0.0))
        rb.add_contact_point("l3", (0.0, 0.0, 0.0))
        rb.add_contact_point("l6", (0.0, 0.0, 0.05), radius=0.08)   # a sphere: touches with its lowest point
    return rb.finalize(limit_stiffness=200.0, limit_damping=3.0)


TREES = {"arm4": lambda: planar_arm(4, lengths=[0.3, 0.25, 0.2, 0.15], masses=[1.0, 0.8, 0.6, 0.4],
                                    damping=0.1, armature=0.01, lower=-1.0, upper=1.0),
         "cartpole": lambda: cartpole(pole_damping=0.05, track=0.5, pole_actuated=True),
         "tree": branched_tree}


def random_state(model, rng, B):
    return (rng.uniform(-1.2, 1.2, size=(B, model.nb)), rng.normal(size=(B, model.nb)),
            rng.normal(size=(B, model.nb)))


@pytest.mark.parametrize("name", sorted(TREES))
def test_rnea_inverts_aba_and_crba_is_spd(name):
    model = TREES[name]()
    rng = np.random.default_rng(1)
    q, qd, tau = random_state(model, rng, 4)
    qdd = aba(model, q, qd, tau)
    back = rnea(model, q, qd, qdd)
    assert np.max(np.abs(back - tau)) <= 1e-10 * max(1.0, np.max(np.abs(tau)))
    M = crba(model, q)
    assert M.shape == (4, model.nb, model.nb)
    assert np.max(np.abs(M - np.swapaxes(M, 1, 2))) <= 1e-12
    assert np.min(np.linalg.eigvalsh(M)) > 0.0
    # M qdd + h = tau + passive: with h = RNEA(q, qd, 0), (M + diag(a)) qdd = tau - h, where a is
    # the inertia that stops pressed in add (the states here press some joints past their limits)
    h = rnea(model, q, qd, np.zeros_like(q))
    a = np.array([ref.limit_inertia(model, qb, qdb) for qb, qdb in zip(q, qd)])
    assert np.allclose(np.einsum("bij,bj->bi", M, qdd) + a * qdd, tau - h, rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", sorted(TREES))
def test_taichi_algorithms_match_numpy_reference(name):
    model = TREES[name]()
    rng = np.random.default_rng(2)
    q, qd, tau = random_state(model, rng, 3)
    qdd = aba(model, q, qd, tau)
    M = crba(model, q)
    for b in range(3):
        assert np.allclose(qdd[b], ref.aba(model, q[b], qd[b], tau[b]), rtol=1e-12, atol=1e-10)
        assert np.allclose(M[b], ref.crba(model, q[b]), rtol=1e-12, atol=1e-12)
        assert np.allclose(rnea(model, q[b], qd[b], qdd[b]), ref.rnea(model, q[b], qd[b], qdd[b]), atol=1e-10)
    R, p = body_poses(model, q)
    for b in range(3):
        Rr, pr = ref.body_poses(model, q[b])
        assert np.allclose(R[b], Rr, atol=1e-13) and np.allclose(p[b], pr, atol=1e-13)


def test_per_robot_parameters_in_one_batch():
    model = TREES["tree"]()
    rng = np.random.default_rng(3)
    q, qd, tau = random_state(model, rng, 3)
    params = {"mass": model.mass * rng.uniform(0.5, 2.0, size=(3, model.nb)),
              "joint_offset": model.joint_offset + rng.normal(scale=0.05, size=(3, model.nb, 3)),
              "damping": rng.uniform(0, 1, size=(3, model.nb))}
    qdd = aba(model, q, qd, tau, params=params)
    for b in range(3):
        pb = {k: v[b] for k, v in params.items()}
        assert np.allclose(qdd[b], ref.aba(model, q[b], qd[b], tau[b], params=pb), atol=1e-10)
        assert np.allclose(qdd[b], aba(model, q[b], qd[b], tau[b], params=pb), atol=1e-13)


def test_ground_contact_forces_enter_the_dynamics():
    model = branched_tree(seed=4, contact=True)
    gc = GroundContact(stiffness=2e3, damping=20.0, friction=0.7, slip_speed=0.05, height=0.1)
    rng = np.random.default_rng(5)
    q, qd, tau = random_state(model, rng, 6)
    # the simulator raises the slip speed to keep friction stable at its dt (DEFAULT_DT here)
    law = {**gc.as_dict(), "dt": DEFAULT_DT, "m_t": contact_tangential_mass(model)}
    f_ext = [ref.contact_forces(model, q[b], qd[b], law) for b in range(6)]
    touching = sum(np.any([np.any(f != 0) for f in fb]) for fb in f_ext)
    assert touching >= 2, "the test states should press some contact points into the ground"
    qdd = aba(model, q, qd, tau, contact=gc)
    for b in range(6):
        assert np.allclose(qdd[b], ref.aba(model, q[b], qd[b], tau[b], f_ext=f_ext[b]), atol=1e-9)
    assert np.allclose(rnea(model, q, qd, qdd, contact=gc), tau, atol=1e-9)
    free = aba(model, q, qd, tau)
    assert np.max(np.abs(free - qdd)) > 1e-3


def test_end_effector_jacobian_is_the_derivative_of_forward_kinematics():
    for model, link, point in ((TREES["tree"](), "l6", (0.1, -0.2, 0.05)), (TREES["arm4"](), "tip", (0, 0, 0)),
                               (TREES["cartpole"](), "tip", (0, 0, 0))):
        rng = np.random.default_rng(6)
        q = rng.uniform(-1, 1, size=model.nb)
        J = point_jacobian(model, q, link, point)
        h = 1e-6
        fd = np.zeros((3, model.nb))
        for j in range(model.nb):
            e = np.zeros(model.nb)
            e[j] = h
            fd[:, j] = (point_position(model, q + e, link, point) - point_position(model, q - e, link, point)) / (2 * h)
        assert np.allclose(J, fd, atol=1e-8), (J, fd)
        assert np.allclose(J, ref.point_jacobian(model, q, *model.point_on(link, point)), atol=1e-12)


def test_link_poses_of_a_planar_arm():
    model = planar_arm(3, lengths=[0.5, 0.4, 0.3])
    q = np.array([0.0, np.pi / 2, 0.0])
    R, p = link_pose(model, q, "tip")
    # link0 along +x; a positive angle about y turns +x towards -z
    assert np.allclose(p, [0.5, 0.0, -0.7], atol=1e-14)
    assert np.allclose(R @ [1.0, 0, 0], [0, 0, -1], atol=1e-14)
    x = point_position(model, np.zeros((2, 3)), "link1", (0.1, 0, 0))
    assert np.allclose(x, [[0.6, 0, 0], [0.6, 0, 0]], atol=1e-14)


def test_scalar_spatial_algebra_matches_6x6_matrices():
    rng = np.random.default_rng(7)
    E = sp.rotation_about(rng.normal(size=3) / 2, 0.7).T
    r = rng.normal(size=3)
    X = sp.plucker(E, r)
    m = rng.normal(size=6)
    f = rng.normal(size=6)
    assert np.allclose(np.concatenate(sp.xform_motion(tuple(E.ravel()), r, m[:3], m[3:])), X @ m)
    assert np.allclose(np.concatenate(sp.xform_force_T(tuple(E.ravel()), r, f[:3], f[3:])), X.T @ f)
    assert np.allclose(np.concatenate(sp.cross_motion(m[:3], m[3:], f[:3], f[3:])), sp.crm(m) @ f)
    assert np.allclose(np.concatenate(sp.cross_force(m[:3], m[3:], f[:3], f[3:])), sp.crf(m) @ f)
    Ic = random_inertia(rng, 1.3)
    c = rng.normal(size=3)
    I6 = sp.spatial_inertia(1.3, c, Ic)
    A, B, C = sp.rigid_inertia(1.3, c, tuple(Ic.ravel()))
    blocks = np.block([[np.reshape(A, (3, 3)), np.reshape(B, (3, 3))],
                       [np.reshape(B, (3, 3)).T, np.reshape(C, (3, 3))]])
    assert np.allclose(blocks, I6)
    An, Bn, Cn = sp.inertia_to_parent(tuple(E.ravel()), r, A, B, C)
    moved = np.block([[np.reshape(An, (3, 3)), np.reshape(Bn, (3, 3))],
                      [np.reshape(Bn, (3, 3)).T, np.reshape(Cn, (3, 3))]])
    assert np.allclose(moved, X.T @ I6 @ X)
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    assert np.allclose(np.reshape(sp.rotation_T(axis, np.cos(0.3), np.sin(0.3)), (3, 3)),
                       sp.rotation_about(axis, 0.3).T)


def test_symmetric_inertia_algebra_matches_6x6_matrices():
    """The symmetric shortcuts of ABA's articulated pass: Ia = IA - U U^T / D on the upper
    entries, and X^T Ia X with the A and C blocks rotated and shifted as symmetric matrices."""
    rng = np.random.default_rng(11)
    E = sp.rotation_about(rng.normal(size=3) / 2, 1.1).T
    r = rng.normal(size=3)
    X = sp.plucker(E, r)
    M = rng.normal(size=(6, 6))
    I6 = M @ M.T + 6.0 * np.eye(6)            # an articulated inertia: symmetric, not rigid
    A, B, C = (tuple(I6[:3, :3].ravel()), tuple(I6[:3, 3:].ravel()), tuple(I6[3:, 3:].ravel()))
    S = np.concatenate([rng.normal(size=3), np.zeros(3)])
    U = I6 @ S
    D = S @ U
    Ia = I6 - np.outer(U, U) / D
    Un, Uf = U[:3], U[3:]
    Aa = sp.sub_outer_symmetric(A, Un, Un / D)
    Ba = sp.sub_outer(B, Un, Uf / D)
    Ca = sp.sub_outer_symmetric(C, Uf, Uf / D)
    got = np.block([[np.reshape(Aa, (3, 3)), np.reshape(Ba, (3, 3))], [np.reshape(Ba, (3, 3)).T, np.reshape(Ca, (3, 3))]])
    assert np.allclose(got, Ia, rtol=0, atol=1e-12)
    Et = tuple(E.ravel())
    An, Bn, Cn = sp.shift_inertia_symmetric(r, sp.congruence_symmetric(Et, Aa), sp.mm(sp.mtm(Et, Ba), Et),
                                            sp.congruence_symmetric(Et, Ca))
    moved = np.block([[np.reshape(An, (3, 3)), np.reshape(Bn, (3, 3))], [np.reshape(Bn, (3, 3)).T, np.reshape(Cn, (3, 3))]])
    assert np.allclose(moved, X.T @ Ia @ X, rtol=0, atol=1e-11)
    full = sp.inertia_to_parent(Et, r, Aa, Ba, Ca)   # the general (unsymmetric) formula
    assert all(np.allclose(x, y, rtol=0, atol=1e-11) for x, y in zip((An, Bn, Cn), full))


def test_fixed_joints_are_merged_into_their_parent_body():
    model = TREES["tree"]()
    assert model.nb == 6 and "l3" not in model.body_names
    b, _R, _p = model.frames["l3"]
    assert model.body_names[b] == "l1"
    # the merged body weighs both links
    rb_mass = model.mass[b]
    assert rb_mass > 0.5 + 0.5


def test_passive_joints_ignore_their_control():
    model = cartpole(pole_damping=0.05)
    assert list(model.actuated) == [True, False]
    rng = np.random.default_rng(8)
    q, qd, tau = random_state(model, rng, 3)
    qdd = aba(model, q, qd, tau)
    assert np.array_equal(qdd, aba(model, q, qd, tau * [1.0, 0.0]))
    assert np.allclose(qdd, [ref.aba(model, q[b], qd[b], tau[b]) for b in range(3)], atol=1e-10)
    # inverse dynamics reports what the passive joint would need: zero, since ABA left it free
    assert np.allclose(rnea(model, q, qd, qdd)[:, 1], 0.0, atol=1e-10)


def test_bad_states_are_rejected():
    from diffsim.errors import ConfigError
    model = planar_arm(2)
    with pytest.raises(ConfigError, match="shape"):
        aba(model, np.zeros(3), np.zeros(3), np.zeros(3))
    with pytest.raises(ConfigError, match="finite"):
        aba(model, [np.nan, 0], [0, 0], [0, 0])
    with pytest.raises(ConfigError, match="mass"):
        aba(model, [0, 0], [0, 0], [0, 0], params={"mass": [1.0, -1.0]})


def test_float32_runtime(python_subprocess):
    """The same kernels in single precision (another process: one runtime per process)."""
    code = """
import numpy as np, diffsim
diffsim.init(arch="cpu", precision="f32")
from diffsim.articulated import aba, planar_arm, reference
m = planar_arm(3)
q, qd, tau = np.random.default_rng(0).normal(size=(3, 4, 3))
ref = np.array([reference.aba(m, q[b], qd[b], tau[b]) for b in range(4)])
err = np.abs(aba(m, q, qd, tau) - ref).max() / np.abs(ref).max()
print("relative error", err)
assert 1e-9 < err < 1e-4
"""
    proc = python_subprocess(code)
    assert proc.returncode == 0, proc.stdout + proc.stderr
