"""Model building, bad input, inertia formulas and the quaternion helpers."""

import numpy as np
import pytest
import taichi as ti

from diffsim import Rollout
from diffsim.errors import ConfigError
from diffsim.rigid import Box, Capsule, ModelBuilder, RigidSystem, Sphere
from diffsim.rotations import (
    quat_from_axis_angle_np,
    quat_integrate,
    quat_mul,
    quat_mul_np,
    quat_rotate,
    quat_rotate_inv,
    quat_rotate_np,
    quat_to_matrix,
    quat_to_matrix_np,
)


def test_bad_input_is_refused_with_a_clear_message():
    b = ModelBuilder(3)
    with pytest.raises(ConfigError, match="mass must be positive"):
        b.add_body(Sphere(0.1), mass=-1.0)
    with pytest.raises(ConfigError, match="exactly one of mass"):
        b.add_body(Sphere(0.1), mass=1.0, density=10.0)
    with pytest.raises(ConfigError, match="restitution must be"):
        b.add_body(Sphere(0.1), mass=1.0, restitution=1.5)
    with pytest.raises(ConfigError, match="friction must be"):
        b.add_body(Sphere(0.1), mass=1.0, friction=-0.1)
    with pytest.raises(ConfigError, match="positive length"):
        Sphere(-0.1)
    with pytest.raises(ConfigError, match="3 half extents"):
        b.add_body(Box((0.1, 0.2)), mass=1.0)
    with pytest.raises(ConfigError, match="position"):
        b.add_body(Sphere(0.1), mass=1.0, position=[0, 0])
    with pytest.raises(ConfigError, match="inertia must be positive"):
        b.add_body(Sphere(0.1), mass=1.0, inertia=[1, 0, 1])
    with pytest.raises(ConfigError, match="normal"):
        b.add_plane([0, 0, 0])
    with pytest.raises(ConfigError, match="no bodies"):
        ModelBuilder(2).finalize()
    with pytest.raises(ConfigError, match="dim"):
        ModelBuilder(4)
    b.add_body(Box((0.1, 0.1, 0.1)), mass=1.0)
    model = b.finalize()
    with pytest.raises(ConfigError, match="skin=0.1: the impulse model's box and capsule contacts"):
        RigidSystem(model, contact="impulse", skin=0.1)
    with pytest.raises(ConfigError, match="iterations must be a whole number >= 1"):
        RigidSystem(model, contact="impulse", iterations=0)
    with pytest.raises(ConfigError, match="too long"):
        RigidSystem(model, dt=0.05, stiffness=1e6)
    with pytest.raises(ConfigError, match="contact must be"):
        RigidSystem(model, contact="soft")
    system = RigidSystem(model)
    with pytest.raises(ConfigError, match="mass of body 0"):
        system.set_parameters(mass=-2.0)
    with pytest.raises(ConfigError, match="unknown rigid-body parameter"):
        system.set_parameters(stiffness=3.0)
    with pytest.raises(ConfigError, match="shape"):
        Rollout(system, 5).set_state0(x=np.zeros((2, 3)))


def test_mass_and_inertia_from_density():
    b = ModelBuilder(3)
    b.add_body(Sphere(0.5), density=1000.0)
    b.add_body(Box((0.5, 1.0, 1.5)), density=2.0)
    b.add_body(Capsule(0.1, 0.3), density=1.0)
    m = b.finalize()
    assert m.mass[0] == pytest.approx(1000 * 4 / 3 * np.pi * 0.125)
    assert m.mass[1] == pytest.approx(2.0 * 1 * 2 * 3)
    np.testing.assert_allclose(m.inertia()[0], 0.4 * m.mass[0] * 0.25)
    np.testing.assert_allclose(m.inertia()[1], m.mass[1] / 12 * np.array([2 ** 2 + 3 ** 2, 1 + 9, 1 + 4]))
    # capsule: Monte-Carlo check of the closed form
    rng = np.random.default_rng(0)
    pts = rng.uniform([-0.4, -0.1, -0.1], [0.4, 0.1, 0.1], (400000, 3))
    seg = np.clip(pts[:, 0], -0.3, 0.3)
    inside = (pts[:, 0] - seg) ** 2 + pts[:, 1] ** 2 + pts[:, 2] ** 2 < 0.01
    p = pts[inside]
    mc = np.array([np.mean(p[:, 1] ** 2 + p[:, 2] ** 2), np.mean(p[:, 0] ** 2 + p[:, 2] ** 2)])
    np.testing.assert_allclose(m.unit_inertia[2][:2], mc, rtol=0.01)
    vol = inside.mean() * 0.8 * 0.2 * 0.2
    assert m.mass[2] == pytest.approx(vol, rel=0.01)
    b2 = ModelBuilder(2)
    b2.add_body(Capsule(0.1, 0.3), mass=1.0)
    pts2 = rng.uniform([-0.4, -0.1], [0.4, 0.1], (400000, 2))
    s2 = np.clip(pts2[:, 0], -0.3, 0.3)
    p2 = pts2[(pts2[:, 0] - s2) ** 2 + pts2[:, 1] ** 2 < 0.01]
    assert b2.finalize().unit_inertia[0, 2] == pytest.approx(np.mean(np.sum(p2 ** 2, axis=1)), rel=0.01)


@ti.kernel
def _quat_ops(q: ti.types.ndarray(), v: ti.types.ndarray(), w: ti.types.ndarray(), out: ti.types.ndarray()):
    for i in range(q.shape[0]):
        qi = ti.Vector([q[i, 0], q[i, 1], q[i, 2], q[i, 3]])
        vi = ti.Vector([v[i, 0], v[i, 1], v[i, 2]])
        wi = ti.Vector([w[i, 0], w[i, 1], w[i, 2]])
        r = quat_rotate(qi, vi)
        back = quat_rotate_inv(qi, r)
        m = quat_to_matrix(qi) @ vi
        qq = quat_mul(qi, qi)
        qn = quat_integrate(qi, wi, 1e-3)
        for k in ti.static(range(3)):
            out[i, k] = r[k]
            out[i, 3 + k] = back[k]
            out[i, 6 + k] = m[k]
        for k in ti.static(range(4)):
            out[i, 9 + k] = qq[k]
            out[i, 13 + k] = qn[k]


def test_quaternion_functions_match_numpy():
    rng = np.random.default_rng(5)
    q = quat_from_axis_angle_np(rng.normal(size=(6, 3)), rng.uniform(-3, 3, 6))
    v, w = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    arrs = [ti.ndarray(ti.f64, a.shape) for a in (q, v, w)] + [ti.ndarray(ti.f64, (6, 17))]
    for arr, a in zip(arrs, (q, v, w)):
        arr.from_numpy(a)
    _quat_ops(*arrs)
    out = arrs[3].to_numpy()
    np.testing.assert_allclose(out[:, 0:3], quat_rotate_np(q, v), atol=1e-14)
    np.testing.assert_allclose(out[:, 3:6], v, atol=1e-14)
    np.testing.assert_allclose(out[:, 6:9], np.einsum("nij,nj->ni", quat_to_matrix_np(q), v), atol=1e-14)
    np.testing.assert_allclose(out[:, 9:13], quat_mul_np(q, q), atol=1e-14)
    np.testing.assert_allclose(np.linalg.norm(out[:, 13:17], axis=1), 1.0, atol=1e-15)
    # a small step about w: q' = exp(dt w / 2) q to second order
    dq = quat_from_axis_angle_np(w, 1e-3 * np.linalg.norm(w, axis=1))
    np.testing.assert_allclose(out[:, 13:17], quat_mul_np(dq, q), atol=1e-6)


def test_box_pairs_have_contact_unless_the_scene_turns_it_off():
    """Box-box and box-capsule pairs have contact (test_rigid_boxes.py); a scene whose boxes
    never meet may turn it off, and a misspelt pair is refused."""
    b = ModelBuilder(3)
    b.add_body(Box((0.1, 0.1, 0.1)), mass=1.0, position=[0, 0, 0.1])
    b.add_body(Capsule(0.05, 0.1), mass=1.0, position=[3.0, 0, 0.1])
    assert RigidSystem(b.finalize()).unsupported == []
    assert RigidSystem(b.finalize(), pass_through=("box-capsule",)).unsupported == ["box-capsule"]
    with pytest.raises(ConfigError, match="pass_through takes"):
        RigidSystem(b.finalize(), pass_through=("box-sphere",))
    impulse = RigidSystem(b.finalize(), contact="impulse")  # boxes and capsules: the manifold solver
    assert impulse.manifold and impulse.state_shapes["contact_impulse"] == (10, 4)  # one pair of 10 points
