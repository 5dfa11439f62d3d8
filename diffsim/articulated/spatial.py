"""Spatial (6-D) vector algebra in Featherstone's notation: 6x6 NumPy matrices and scalar tuples.

Conventions (R. Featherstone, *Rigid Body Dynamics Algorithms*, 2008, chapter 2):
- A motion vector is ``m = (w, v)``: angular velocity w (rad/s) and the linear velocity v (m/s)
  of the body point that coincides with the frame origin. A force vector is ``f = (n, f)``:
  moment n (N m) about the origin and force f (N).
- A Plucker transform ``X = (E, r)`` from frame A to frame B holds the 3x3 coordinate rotation
  E (A coordinates -> B coordinates, i.e. the transpose of the rotation that carries A's axes
  onto B's) and the position r (m) of B's origin in A coordinates. As a 6x6 matrix acting on
  motion vectors, ``X = [[E, 0], [-E r^, E]]`` with ``r^`` the cross-product matrix of r.
- ``crm(v)`` is the motion cross product ``v x``, ``crf(v) = -crm(v)^T`` the force one ``v x*``.
- A spatial inertia (rigid or articulated) is a symmetric 6x6 ``[[A, B], [B^T, C]]``; a rigid
  body of mass m, centre of mass c and rotational inertia Ic about c has
  ``A = Ic - m c^ c^``, ``B = m c^``, ``C = m 1``.

The NumPy functions (6x6 matrices, readable) serve the reference algorithms and the tests; the
scalar functions (3x3 blocks and pairs of 3-vectors as tuples of scalars) are what the Taichi
kernels are written with (see the note above ``vadd``).
"""

import numbers

import numpy as np
import taichi as ti

from ..compat import compile_time

# ---------------------------------------------------------------------------- NumPy


def skew(v) -> np.ndarray:
    """Cross-product matrix: ``skew(a) @ b == np.cross(a, b)``."""
    x, y, z = v
    return np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])


def rotation_about(axis, angle) -> np.ndarray:
    """Rotation matrix (Rodrigues) turning vectors by ``angle`` (rad) about unit ``axis``."""
    a = np.asarray(axis, dtype=float)
    k = skew(a)
    return np.eye(3) + np.sin(angle) * k + (1.0 - np.cos(angle)) * (k @ k)


def rpy_matrix(rpy) -> np.ndarray:
    """URDF roll-pitch-yaw (fixed axes X, then Y, then Z): ``R = Rz(yaw) Ry(pitch) Rx(roll)``."""
    r, p, y = rpy
    return (rotation_about([0, 0, 1], y) @ rotation_about([0, 1, 0], p)
            @ rotation_about([1, 0, 0], r))


def plucker(E, r) -> np.ndarray:
    """6x6 motion transform of ``X = (E, r)``."""
    X = np.zeros((6, 6))
    X[:3, :3] = E
    X[3:, 3:] = E
    X[3:, :3] = -E @ skew(r)
    return X


def plucker_force(E, r) -> np.ndarray:
    """6x6 force transform ``X* = X^{-T}`` of ``X = (E, r)``."""
    return np.linalg.inv(plucker(E, r)).T


def crm(v) -> np.ndarray:
    """Motion cross-product matrix ``v x`` (6x6) of the motion vector v = (w, v)."""
    w, u = v[:3], v[3:]
    M = np.zeros((6, 6))
    M[:3, :3] = skew(w)
    M[3:, 3:] = skew(w)
    M[3:, :3] = skew(u)
    return M


def crf(v) -> np.ndarray:
    """Force cross-product matrix ``v x*`` = -crm(v)^T."""
    return -crm(v).T


def spatial_inertia(mass, com, inertia_com) -> np.ndarray:
    """6x6 spatial inertia of a rigid body: mass (kg), centre of mass (m, in the body frame),
    rotational inertia about the centre of mass (kg m^2, 3x3, body axes)."""
    C = skew(com)
    I = np.zeros((6, 6))
    I[:3, :3] = np.asarray(inertia_com) + mass * C @ C.T
    I[:3, 3:] = mass * C
    I[3:, :3] = mass * C.T
    I[3:, 3:] = mass * np.eye(3)
    return I


def inertia_matrix(six) -> np.ndarray:
    """3x3 inertia from (ixx, iyy, izz, ixy, ixz, iyz)."""
    ixx, iyy, izz, ixy, ixz, iyz = six
    return np.array([[ixx, ixy, ixz], [ixy, iyy, iyz], [ixz, iyz, izz]], dtype=float)


def inertia_six(I) -> np.ndarray:
    """(ixx, iyy, izz, ixy, ixz, iyz) of a symmetric 3x3 inertia."""
    I = np.asarray(I, dtype=float)
    return np.array([I[0, 0], I[1, 1], I[2, 2], I[0, 1], I[0, 2], I[1, 2]])


# ---------------------------------------------------------------------------- scalar algebra
# Plain Python on tuples: a 3-vector is a tuple of 3 scalars, a 3x3 matrix a row-major tuple
# of 9. Called from Taichi functions, the scalars are Taichi expressions and these functions
# run at compile time, emitting scalar code. Taichi's own ti.Matrix arithmetic is avoided on
# purpose: its reverse mode took 2 s to compile per 3x3 product and grew faster than
# linearly (6.4 s for two), where the same products written on scalars took 0.2 s. The same
# functions run on floats, so they are tested against the 6x6 NumPy versions above.
# Motion and force vectors are pairs of 3-vectors; a transform (E, r) is a 3x3 and a 3-vector;
# an inertia [[A, B], [B^T, C]] is three 3x3 blocks.


_scalar = compile_time
"""Marks a plain-Python helper as meant to run inside Taichi scope at compile time (Taichi
otherwise warns about calling a non-Taichi function)."""


@ti.func
def _assigned(x: ti.template()):
    y = x
    return y


@_scalar
def local(x):
    """x (a scalar or a tuple of them) with its Taichi-expression entries assigned to local
    variables; plain numbers (compile-time constants, e.g. the zeros of a coordinate axis) stay
    numbers, so that :func:`fmul` and :func:`fsum` fold them away. An intermediate that a helper
    uses several times (the vector in ``mv(E, vsub(v, cross(r, w)))`` enters all three rows) is
    otherwise emitted again at every use, its loads and arithmetic with it, which Taichi's passes
    must then merge (and which made the gradient kernels slower to compile)."""
    items = x if isinstance(x, tuple) else (x,)
    exprs = [v for v in items if not isinstance(v, numbers.Number)]
    if not exprs:
        return x
    if len(exprs) == len(items):
        return _assigned(x)
    assigned = iter(_assigned(tuple(exprs)) if len(exprs) > 1 else (_assigned(exprs[0]),))
    out = tuple(v if isinstance(v, numbers.Number) else next(assigned) for v in items)
    return out if isinstance(x, tuple) else out[0]


def _zero(x):
    return isinstance(x, numbers.Number) and x == 0


def _one(x):
    return isinstance(x, numbers.Number) and x == 1


@_scalar
def fmul(x, y):
    """x y, folded at compile time where either is the number 0 or 1 (the scalar helpers below
    are written with it: a robot's compile-time constants, e.g. a coordinate joint axis, then
    leave no multiplications by 0 and 1 in the kernel for Taichi to simplify)."""
    if _zero(x) or _zero(y):
        return 0.0
    if _one(x):
        return y
    if _one(y):
        return x
    return x * y


@_scalar
def fsum(*xs):
    """The sum of xs (left to right), the numbers 0 left out."""
    terms = [x for x in xs if not _zero(x)]
    if not terms:
        return 0.0
    out = terms[0]
    for x in terms[1:]:
        out = out + x
    return out


@_scalar
def fsub(x, y):
    """x - y, folded where either is the number 0."""
    if _zero(y):
        return x
    if _zero(x):
        return -y
    return x - y


@_scalar
def vadd(a, b):
    return (fsum(a[0], b[0]), fsum(a[1], b[1]), fsum(a[2], b[2]))


@_scalar
def vsub(a, b):
    return (fsub(a[0], b[0]), fsub(a[1], b[1]), fsub(a[2], b[2]))


@_scalar
def vscale(a, s):
    return (fmul(a[0], s), fmul(a[1], s), fmul(a[2], s))


@_scalar
def dot(a, b):
    return fsum(fmul(a[0], b[0]), fmul(a[1], b[1]), fmul(a[2], b[2]))


@_scalar
def cross(a, b):
    return (fsub(fmul(a[1], b[2]), fmul(a[2], b[1])), fsub(fmul(a[2], b[0]), fmul(a[0], b[2])),
            fsub(fmul(a[0], b[1]), fmul(a[1], b[0])))


@_scalar
def mv(M, x):
    """M x."""
    return tuple(fsum(fmul(M[3 * r], x[0]), fmul(M[3 * r + 1], x[1]), fmul(M[3 * r + 2], x[2])) for r in range(3))


@_scalar
def mtv(M, x):
    """M^T x."""
    return tuple(fsum(fmul(M[c], x[0]), fmul(M[3 + c], x[1]), fmul(M[6 + c], x[2])) for c in range(3))


@_scalar
def mm(A, B):
    """A B."""
    return tuple(fsum(fmul(A[3 * r], B[c]), fmul(A[3 * r + 1], B[3 + c]), fmul(A[3 * r + 2], B[6 + c]))
                 for r in range(3) for c in range(3))


@_scalar
def mtm(A, B):
    """A^T B."""
    return tuple(fsum(fmul(A[r], B[c]), fmul(A[3 + r], B[3 + c]), fmul(A[6 + r], B[6 + c]))
                 for r in range(3) for c in range(3))


@_scalar
def transpose(M):
    return (M[0], M[3], M[6], M[1], M[4], M[7], M[2], M[5], M[8])


@_scalar
def madd(A, B):
    return tuple(fsum(a, b) for a, b in zip(A, B))


@_scalar
def msub(A, B):
    return tuple(fsub(a, b) for a, b in zip(A, B))


@_scalar
def outer(a, b):
    return tuple(fmul(a[r], b[c]) for r in range(3) for c in range(3))


@_scalar
def skew3(v):
    """Cross-product matrix of a 3-vector (row-major)."""
    return (0.0, -v[2], v[1], v[2], 0.0, -v[0], -v[1], v[0], 0.0)


@_scalar
def rotation_T(a, c, s):
    """Coordinate rotation E = R(a, angle)^T (Rodrigues) from c = cos(angle), s = sin(angle),
    for a unit axis a: E = c 1 - s a^ + (1 - c) a a^T."""
    k = 1.0 - c
    return (c + k * a[0] * a[0], s * a[2] + k * a[0] * a[1], -s * a[1] + k * a[0] * a[2],
            -s * a[2] + k * a[1] * a[0], c + k * a[1] * a[1], s * a[0] + k * a[1] * a[2],
            s * a[1] + k * a[2] * a[0], -s * a[0] + k * a[2] * a[1], c + k * a[2] * a[2])


@_scalar
def xform_motion(E, r, w, v):
    """X m for X = (E, r) and m = (w, v): (E w, E (v - r x w))."""
    return mv(E, w), mv(E, local(vsub(v, cross(r, w))))


@_scalar
def xform_force_T(E, r, n, f):
    """X^T f, a force in B coordinates carried back to A: (E^T n + r x E^T f, E^T f)."""
    ft = local(mtv(E, f))
    return vadd(mtv(E, n), cross(r, ft)), ft


@_scalar
def cross_motion(w, v, mw, mv_):
    """(w, v) x (mw, mv) for motion vectors."""
    return cross(w, mw), vadd(cross(w, mv_), cross(v, mw))


@_scalar
def cross_force(w, v, n, f):
    """(w, v) x* (n, f): a motion vector acting on a force vector."""
    return vadd(cross(w, n), cross(v, f)), cross(w, f)


@_scalar
def inertia6(I):
    """(ixx, iyy, izz, ixy, ixz, iyz) as a row-major symmetric 3x3."""
    return (I[0], I[3], I[4], I[3], I[1], I[5], I[4], I[5], I[2])


@_scalar
def rigid_inertia(m, c, Ic):
    """Blocks (A, B, C) of a rigid body's spatial inertia: A = Ic - m c^ c^ (that is
    Ic + m (|c|^2 1 - c c^T)), B = m c^, C = m 1."""
    cc = dot(c, c)
    A = tuple(fsum(Ic[3 * r + k], fmul(m, fsub(cc if r == k else 0.0, fmul(c[r], c[k]))))
              for r in range(3) for k in range(3))
    return A, tuple(fmul(m, x) for x in skew3(c)), (m, 0.0, 0.0, 0.0, m, 0.0, 0.0, 0.0, m)


@_scalar
def inertia_apply(A, B, C, w, v):
    """I m for I = [[A, B], [B^T, C]]: (A w + B v, B^T w + C v)."""
    return vadd(mv(A, w), mv(B, v)), vadd(mtv(B, w), mv(C, v))


@_scalar
def shift_inertia(R, Ar, Br, Cr):
    """The translation part of X^T I X: with R = r^ (see ``inertia_to_parent``),
    B' = Br + R Cr and A' = Ar + R Br^T - B' R; C is unchanged."""
    Bn = madd(Br, mm(R, Cr))
    return msub(madd(Ar, mm(R, transpose(Br))), mm(Bn, R)), Bn, Cr


@_scalar
def symmetric(upper):
    """The row-major 3x3 of a symmetric matrix from its upper entries {(r, c): value, r <= c}."""
    return tuple(upper[min(r, c), max(r, c)] for r in range(3) for c in range(3))


@_scalar
def sub_outer(M, u, v):
    """M - u v^T."""
    return tuple(fsub(M[3 * r + c], fmul(u[r], v[c])) for r in range(3) for c in range(3))


@_scalar
def sub_outer_symmetric(S, u, v):
    """S - u v^T where the result is symmetric (v parallel to u: U U^T / D in ABA), from the six
    upper entries."""
    return symmetric({(r, c): fsub(S[3 * r + c], fmul(u[r], v[c])) for r in range(3) for c in range(r, 3)})


@_scalar
def congruence_symmetric(E, S):
    """E^T S E for a symmetric S: six entries computed, the rest mirrored (45 products, not 54)."""
    T = local(mm(S, E))
    return symmetric({(r, c): fsum(fmul(E[r], T[c]), fmul(E[3 + r], T[3 + c]), fmul(E[6 + r], T[6 + c]))
                      for r in range(3) for c in range(r, 3)})


@_scalar
def shift_inertia_symmetric(r, Ar, Br, Cr):
    """``shift_inertia(skew3(r), Ar, Br, Cr)`` for symmetric Ar and Cr, with cross products (no
    products with the zeros of r^) and A' from its six upper entries: B' = Br + r^ Cr (columns
    r x Cr[:, j]) and A' = Ar + r^ Br^T - B' r^, where (r^ Br^T)_ij = (r x Br[j, :])_i and
    (B' r^)_ij = -(r x B'[i, :])_j."""
    rc = [cross(r, (Cr[j], Cr[3 + j], Cr[6 + j])) for j in range(3)]
    Bn = tuple(fsum(Br[3 * i + j], rc[j][i]) for i in range(3) for j in range(3))

    def cross_k(a, M, row, k):   # component k of a x M[row, :]
        b = (M[3 * row], M[3 * row + 1], M[3 * row + 2])
        return fsub(fmul(a[(k + 1) % 3], b[(k + 2) % 3]), fmul(a[(k + 2) % 3], b[(k + 1) % 3]))

    An = symmetric({(i, j): fsum(Ar[3 * i + j], cross_k(r, Br, j, i), cross_k(r, Bn, i, j))
                    for i in range(3) for j in range(i, 3)})
    return An, Bn, Cr


@_scalar
def inertia_to_parent(E, r, A, B, C):
    """X^T I X for X = (E, r): an inertia given in B coordinates, in A coordinates."""
    return shift_inertia(skew3(r), mm(mtm(E, A), E), mm(mtm(E, B), E), mm(mtm(E, C), E))


# ---------------------------------------------------------------------------- free joint


@_scalar
def quat_matrix(qw, qx, qy, qz):
    """Rotation matrix (row-major) of the unit quaternion (w, x, y, z): body axes in world
    coordinates."""
    return (1.0 - 2.0 * (qy * qy + qz * qz), 2.0 * (qx * qy - qw * qz), 2.0 * (qx * qz + qw * qy),
            2.0 * (qx * qy + qw * qz), 1.0 - 2.0 * (qx * qx + qz * qz), 2.0 * (qy * qz - qw * qx),
            2.0 * (qx * qz - qw * qy), 2.0 * (qy * qz + qw * qx), 1.0 - 2.0 * (qx * qx + qy * qy))


@_scalar
def quat_step(quat, w, h):
    """quat (w, x, y, z) advanced by the body angular velocity w (rad/s) over h (s): the first
    order update quat + h/2 quat (x) (0, w), renormalised (smooth, exact to O(h^2))."""
    a, b, c, d = quat
    n = (a - 0.5 * h * (b * w[0] + c * w[1] + d * w[2]),
         b + 0.5 * h * (a * w[0] + c * w[2] - d * w[1]),
         c + 0.5 * h * (a * w[1] + d * w[0] - b * w[2]),
         d + 0.5 * h * (a * w[2] + b * w[1] - c * w[0]))
    s = 1.0 / (n[0] * n[0] + n[1] * n[1] + n[2] * n[2] + n[3] * n[3]) ** 0.5
    return (n[0] * s, n[1] * s, n[2] * s, n[3] * s)


@_scalar
def inverse3(M):
    """Inverse of a 3x3 (row-major) by cofactors."""
    c00 = M[4] * M[8] - M[5] * M[7]
    c01 = M[5] * M[6] - M[3] * M[8]
    c02 = M[3] * M[7] - M[4] * M[6]
    inv_det = 1.0 / (M[0] * c00 + M[1] * c01 + M[2] * c02)
    return (c00 * inv_det, (M[2] * M[7] - M[1] * M[8]) * inv_det, (M[1] * M[5] - M[2] * M[4]) * inv_det,
            c01 * inv_det, (M[0] * M[8] - M[2] * M[6]) * inv_det, (M[2] * M[3] - M[0] * M[5]) * inv_det,
            c02 * inv_det, (M[1] * M[6] - M[0] * M[7]) * inv_det, (M[0] * M[4] - M[1] * M[3]) * inv_det)
