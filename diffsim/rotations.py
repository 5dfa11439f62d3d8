"""Rotations shared by the simulators: unit quaternions, rotation matrices, planar angles.

Convention: a quaternion is ``(w, x, y, z)``, scalar first, as a 4-vector; it rotates body-frame
vectors into the world frame, ``v_world = R(q) v_body``. Angular velocities ``omega`` are in the
world frame (rad/s). Every ``ti.func`` here is straight-line code (no dynamic loops, no
loop-carried locals), so it is safe inside differentiated kernels and fused time loops (Taichi
1.7.4's reverse mode mishandles locals that a dynamic loop mutates). NumPy twins (suffix ``_np``)
serve builders and tests.

Kinematics (semi-implicit step of length dt, then renormalisation):

    q(t + dt) = normalize(q + dt/2 * (0, omega) (x) q)
"""

import numpy as np
import taichi as ti

# ---------------------------------------------------------------------------- Taichi functions


@ti.func
def quat_mul(a, b):
    """Hamilton product a (x) b of two (w, x, y, z) quaternions."""
    return ti.Vector([
        a[0] * b[0] - a[1] * b[1] - a[2] * b[2] - a[3] * b[3],
        a[0] * b[1] + a[1] * b[0] + a[2] * b[3] - a[3] * b[2],
        a[0] * b[2] - a[1] * b[3] + a[2] * b[0] + a[3] * b[1],
        a[0] * b[3] + a[1] * b[2] - a[2] * b[1] + a[3] * b[0],
    ])


@ti.func
def quat_conj(q):
    """Conjugate (the inverse of a unit quaternion)."""
    return ti.Vector([q[0], -q[1], -q[2], -q[3]])


@ti.func
def quat_normalized(q):
    """q / |q|. The tiny floor keeps a zero quaternion finite (it never occurs for a rotation)."""
    return q / ti.sqrt(q.dot(q) + 1e-300)


@ti.func
def quat_to_matrix(q):
    """3x3 rotation matrix R(q) of a unit quaternion (body -> world)."""
    w, x, y, z = q[0], q[1], q[2], q[3]
    return ti.Matrix([
        [1.0 - 2.0 * (y * y + z * z), 2.0 * (x * y - w * z), 2.0 * (x * z + w * y)],
        [2.0 * (x * y + w * z), 1.0 - 2.0 * (x * x + z * z), 2.0 * (y * z - w * x)],
        [2.0 * (x * z - w * y), 2.0 * (y * z + w * x), 1.0 - 2.0 * (x * x + y * y)],
    ])


@ti.func
def quat_rotate(q, v):
    """R(q) v for a unit quaternion q and a 3-vector v."""
    u = ti.Vector([q[1], q[2], q[3]])
    t = 2.0 * u.cross(v)
    return v + q[0] * t + u.cross(t)


@ti.func
def quat_rotate_inv(q, v):
    """R(q)^T v: a world vector in body coordinates."""
    u = ti.Vector([-q[1], -q[2], -q[3]])
    t = 2.0 * u.cross(v)
    return v + q[0] * t + u.cross(t)


@ti.func
def quat_integrate(q, omega, dt):
    """One explicit step of dq/dt = 1/2 (0, omega) (x) q (omega in the world frame, rad/s),
    followed by renormalisation onto the unit sphere."""
    wq = ti.Vector([0.0, omega[0], omega[1], omega[2]])
    return quat_normalized(q + 0.5 * dt * quat_mul(wq, q))


@ti.func
def quat_from_angle_z(theta):
    """Rotation by theta (rad) about +z: the planar (2D) orientation as a quaternion."""
    return ti.Vector([ti.cos(0.5 * theta), 0.0, 0.0, ti.sin(0.5 * theta)])


@ti.func
def world_inertia_inv_apply(q, inv_inertia_body, v):
    """I_world^{-1} v = R diag(1/I_body) R^T v, for a body with principal axes along its frame.
    inv_inertia_body: 3-vector of 1/I (1/(kg m^2))."""
    return quat_rotate(q, inv_inertia_body * quat_rotate_inv(q, v))


@ti.func
def world_inertia_apply(q, inertia_body, v):
    """I_world v = R diag(I_body) R^T v (kg m^2 times v)."""
    return quat_rotate(q, inertia_body * quat_rotate_inv(q, v))


@ti.func
def rot2(theta, v):
    """Rotate the 2-vector v by theta (rad), counter-clockwise."""
    c, s = ti.cos(theta), ti.sin(theta)
    return ti.Vector([c * v[0] - s * v[1], s * v[0] + c * v[1]])


# ---------------------------------------------------------------------------- NumPy twins


def quat_mul_np(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    w1, x1, y1, z1 = np.moveaxis(a, -1, 0)
    w2, x2, y2, z2 = np.moveaxis(b, -1, 0)
    return np.stack([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
                     w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                     w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
                     w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2], axis=-1)


def quat_from_axis_angle_np(axis, angle):
    """Unit quaternion (w, x, y, z) for a rotation by ``angle`` (rad) about ``axis``."""
    axis = np.asarray(axis, float)
    n = np.linalg.norm(axis, axis=-1, keepdims=True)
    if np.any(n == 0):
        raise ValueError("rotation axis must be non-zero")
    half = 0.5 * np.asarray(angle, float)[..., None]
    return np.concatenate([np.cos(half), np.sin(half) * axis / n], axis=-1)


def quat_to_matrix_np(q):
    """Rotation matrices (..., 3, 3) of unit quaternions (..., 4)."""
    q = np.asarray(q, float)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def quat_from_matrix_np(R):
    """Unit quaternion (w, x, y, z), w >= 0, of a rotation matrix (3, 3). Each case divides by
    the largest of 4w^2, 4x^2, 4y^2, 4z^2 (at least 1), so turns near 180 degrees come out as
    accurately as small ones."""
    R = np.asarray(R, float)
    t = np.trace(R)
    d = np.diag(R)
    k = int(np.argmax([t, *d]))
    if k == 0:
        s = 2.0 * np.sqrt(1.0 + t)
        q = np.array([s / 4, (R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s])
    else:
        i, j, m = k - 1, k % 3, (k + 1) % 3
        s = 2.0 * np.sqrt(1.0 + d[i] - d[j] - d[m])
        q = np.empty(4)
        q[0] = (R[m, j] - R[j, m]) / s
        q[1 + i] = s / 4
        q[1 + j] = (R[j, i] + R[i, j]) / s
        q[1 + m] = (R[m, i] + R[i, m]) / s
    q /= np.linalg.norm(q)
    return -q if q[0] < 0 else q


def quat_rotate_np(q, v):
    """R(q) v, broadcasting over leading axes."""
    return np.einsum("...ij,...j->...i", quat_to_matrix_np(q), np.asarray(v, float))


def quat_angle_between_np(a, b):
    """Rotation angle (rad, in [0, pi]) of a^-1 b: how far apart two orientations are."""
    d = np.abs(np.sum(np.asarray(a, float) * np.asarray(b, float), axis=-1))
    return 2.0 * np.arccos(np.clip(d, 0.0, 1.0))


__all__ = [
    "quat_angle_between_np",
    "quat_conj",
    "quat_from_angle_z",
    "quat_from_axis_angle_np",
    "quat_from_matrix_np",
    "quat_integrate",
    "quat_mul",
    "quat_mul_np",
    "quat_normalized",
    "quat_rotate",
    "quat_rotate_inv",
    "quat_rotate_np",
    "quat_to_matrix",
    "quat_to_matrix_np",
    "rot2",
    "world_inertia_apply",
    "world_inertia_inv_apply",
]
