"""Narrow-phase contact geometry against NumPy references written here, and a sphere resting on
a box resting on the floor (sphere-box and box-plane together)."""

import numpy as np
import pytest
import taichi as ti

from diffsim.collision.narrowphase import (
    capsule_capsule,
    capsule_sphere,
    sphere_box,
    sphere_sphere,
)
from diffsim.rigid import Box, Capsule, ModelBuilder, RigidSystem, Sphere
from diffsim.rotations import quat_from_axis_angle_np, quat_rotate_np

_A = ti.types.ndarray()


@ti.kernel
def _geometry(a: _A, out: _A):
    """Row k of a: 14 numbers describing one query; out[k] = (normal, depth, point)."""
    for k in range(a.shape[0]):
        kind = ti.cast(a[k, 0], ti.i32)
        c1 = ti.Vector([a[k, 1], a[k, 2], a[k, 3]])
        q = ti.Vector([a[k, 4], a[k, 5], a[k, 6], a[k, 7]])
        c2 = ti.Vector([a[k, 8], a[k, 9], a[k, 10]])
        n = ti.Vector([0.0, 0.0, 0.0])
        depth = 0.0
        p = ti.Vector([0.0, 0.0, 0.0])
        if kind == 0:  # sphere (c2, r = a11) against box (c1, q, h = a12, a13, a14 -> see below)
            n, depth, p = sphere_box(c2, a[k, 11], c1, q, ti.Vector([a[k, 12], a[k, 13], a[k, 14]]))
        elif kind == 1:  # sphere (c2, r = a11) against capsule (c1, q, r = a12, half length a13)
            n, depth, p = capsule_sphere(c1, q, a[k, 12], a[k, 13], c2, a[k, 11])
        elif kind == 2:  # two capsules: (c1, q, r a12, h a13) and (c2, q rotated by 90 deg about z, r a11, h a14)
            q2 = ti.Vector([ti.cos(0.25 * ti.math.pi), 0.0, 0.0, ti.sin(0.25 * ti.math.pi)])
            n, depth, p = capsule_capsule(c2, q2, a[k, 11], a[k, 14], c1, q, a[k, 12], a[k, 13])
        else:
            n, depth, p = sphere_sphere(c2, a[k, 11], c1, a[k, 12])
        for i in ti.static(range(3)):
            out[k, i] = n[i]
            out[k, 4 + i] = p[i]
        out[k, 3] = depth


def _run(rows):
    a = np.array(rows, dtype=np.float64)
    arr, out = ti.ndarray(ti.f64, a.shape), ti.ndarray(ti.f64, (a.shape[0], 7))
    arr.from_numpy(a)
    _geometry(arr, out)
    res = out.to_numpy()
    return res[:, :3], res[:, 3], res[:, 4:]


def _closest_on_box(p_local, h):
    return np.clip(p_local, -h, h)


def test_sphere_box_outside_and_inside():
    rng = np.random.default_rng(0)
    h = np.array([0.3, 0.2, 0.1])
    rows, want = [], []
    for _ in range(40):
        q = quat_from_axis_angle_np(rng.normal(size=3), rng.uniform(-3, 3))
        cb, local = rng.normal(size=3), rng.uniform(-0.5, 0.5, 3)
        r = 0.15
        cs = cb + quat_rotate_np(q, local)
        rows.append([0, *cb, *q, *cs, r, *h])
        if np.all(np.abs(local) < h):  # inside: nearest face
            gaps = h - np.abs(local)
            k = int(np.argmin(gaps))
            n_local = np.zeros(3)
            n_local[k] = np.sign(local[k])
            want.append((quat_rotate_np(q, n_local), r + gaps[k]))
        else:
            d = local - _closest_on_box(local, h)
            want.append((quat_rotate_np(q, d / np.linalg.norm(d)), r - np.linalg.norm(d)))
    n, depth, _ = _run(rows)
    for (wn, wd), gn, gd in zip(want, n, depth):
        np.testing.assert_allclose(gn, wn, atol=1e-9)
        assert gd == pytest.approx(wd, abs=1e-12)


def test_capsules_against_spheres_and_capsules():
    rng = np.random.default_rng(1)
    rows, want = [], []
    for _ in range(30):
        q = quat_from_axis_angle_np(rng.normal(size=3), rng.uniform(-3, 3))
        cc, cs = rng.normal(size=3) * 0.2, rng.normal(size=3) * 0.3
        rc, hc, rs = 0.05, 0.2, 0.07
        rows.append([1, *cc, *q, *cs, rs, rc, hc, 0.0])
        axis = quat_rotate_np(q, [1.0, 0, 0])
        s = np.clip((cs - cc) @ axis, -hc, hc)
        d = cs - (cc + s * axis)
        want.append((d / np.linalg.norm(d), rc + rs - np.linalg.norm(d)))
    # crossed capsules: a along x at the origin (after the 90 degree turn of the second, along y)
    rows.append([2, 0.0, 0.0, 0.0, 1.0, 0, 0, 0, 0.0, 0.0, 0.12, 0.05, 0.06, 0.3, 0.3])
    want.append((np.array([0.0, 0.0, 1.0]), 0.11 - 0.12))
    rows.append([2, 0.0, 0.0, 0.0, 1.0, 0, 0, 0, 0.5, 0.1, 0.08, 0.05, 0.06, 0.3, 0.3])
    d = np.array([0.5, 0.1, 0.08]) + np.array([0.0, -0.1, 0.0]) - np.array([0.3, 0.0, 0.0])
    want.append((d / np.linalg.norm(d), 0.11 - np.linalg.norm(d)))
    n, depth, _ = _run(rows)
    for (wn, wd), gn, gd in zip(want, n, depth):
        np.testing.assert_allclose(gn, wn, atol=1e-9)
        assert gd == pytest.approx(wd, abs=1e-12)


def test_coincident_spheres_give_a_zero_normal():
    n, depth, p = _run([[3, 0.0, 0.0, 0.0, 1, 0, 0, 0, 0.0, 0.0, 0.0, 0.1, 0.2, 0, 0]])
    assert np.all(n == 0.0) and np.isfinite(depth[0]) and np.all(np.isfinite(p))
    assert depth[0] == pytest.approx(0.3, abs=1e-8)


def test_sphere_rests_on_box_on_floor_and_capsule_on_sphere():
    """Stacked: a box on the floor, a sphere on the box; separately a capsule lying across a
    sphere fixed... by its weight on the floor. Heights stay at the static penetrations."""
    k, g = 5e4, 9.81
    b = ModelBuilder(3)
    b.add_body(Box((0.2, 0.2, 0.1)), mass=2.0, position=[0, 0, 0.1], restitution=0.2, friction=0.5)
    b.add_body(Sphere(0.1), mass=0.5, position=[0.02, -0.03, 0.3], restitution=0.2, friction=0.5)
    b.add_body(Sphere(0.1), mass=3.0, position=[2.0, 0.0, 0.1], restitution=0.2, friction=0.5)
    b.add_body(Capsule(0.05, 0.3), mass=0.2, position=[2.0, 0.0, 0.25], restitution=0.2, friction=0.5)
    b.add_plane([0, 0, 1], 0.0, restitution=0.2, friction=0.5)
    system = RigidSystem(b.finalize(), dt=5e-4, stiffness=k, segment=200, pass_through=("box-capsule",))
    out = system.simulate(2000)
    x = out["x"][-1]
    assert x[0, 2] == pytest.approx(0.1 - 2.5 * g / (4 * k), abs=1e-4)  # four corners carry box + sphere
    assert x[1, 2] == pytest.approx(x[0, 2] + 0.1 + 0.1 - 0.5 * g / k, abs=1e-4)
    assert x[3, 2] == pytest.approx(x[2, 2] + 0.15 - 0.2 * g / k, abs=2e-4)  # capsule balanced on the sphere
    assert np.abs(out["v"][-1]).max() < 1e-3
