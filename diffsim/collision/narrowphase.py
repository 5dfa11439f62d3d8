"""Narrow phase: contact geometry of shape pairs, as straight-line ``ti.func``s.

Every function works on 3-vectors (2D scenes embed the x-y plane with z = 0) and returns
``(normal, depth, point)``: the unit normal pointing from the second shape towards the first
(m/m), the penetration depth (m, > 0 when the shapes overlap) and a world contact point (m)
midway through the overlap. Shapes: sphere (centre c, radius r); box (centre, unit
quaternion (w, x, y, z), half extents h); capsule (centre, quaternion, radius, half length
along the body x axis); plane {p : n . p >= offset}.

Degenerate configurations (coincident centres, a point on a segment) go through
:func:`~diffsim.contact.safe_normalized`, which returns a zero normal with a finite gradient
instead of NaN: the contact then pushes with zero force until the bodies separate.
"""

import taichi as ti

from ..contact import safe_normalized
from ..rotations import quat_rotate, quat_rotate_inv

EPS_NORMAL = 1e-9  # m: length below which a normal is "zero" (safe_normalized)


@ti.func
def sphere_sphere(ca, ra, cb, rb):
    """Two spheres (or a sphere and a capsule's closest point): normal from b to a."""
    n, dist = safe_normalized(ca - cb, EPS_NORMAL)
    depth = ra + rb - dist
    point = cb + n * (rb - 0.5 * depth)
    return n, depth, point


@ti.func
def sphere_plane(c, r, pn, offset):
    """Sphere against the plane n . p >= offset: normal is the plane's, from plane to sphere."""
    dist = pn.dot(c) - offset
    depth = r - dist
    point = c - pn * (0.5 * (r + dist))
    return pn, depth, point


@ti.func
def box_corner(c, q, h, k: ti.template()):
    """World position of corner k (0..7; bit 0 -> x sign, bit 1 -> y, bit 2 -> z) of a box."""
    sx = ti.static(1.0 if k & 1 else -1.0)
    sy = ti.static(1.0 if k & 2 else -1.0)
    sz = ti.static(1.0 if k & 4 else -1.0)
    return c + quat_rotate(q, ti.Vector([sx * h[0], sy * h[1], sz * h[2]]))


@ti.func
def point_plane(p, pn, offset):
    """A point (box corner) against a plane: depth = offset - n . p; the point is the corner."""
    depth = offset - pn.dot(p)
    return pn, depth, p + pn * (0.5 * depth)


@ti.func
def sphere_box(c, r, cb, qb, h):
    """Sphere (centre c, radius r) against a box: normal from box to sphere.

    Outside the box, the closest point of the box decides; with the centre inside, the face
    nearest to the centre does (depth = r + distance to that face). A 2D box has h[2] = 0."""
    local = quat_rotate_inv(qb, c - cb)
    clamped = ti.Vector([ti.min(ti.max(local[0], -h[0]), h[0]), ti.min(ti.max(local[1], -h[1]), h[1]),
                         ti.min(ti.max(local[2], -h[2]), h[2])])
    d = local - clamped
    n_local, dist = safe_normalized(d, EPS_NORMAL)
    depth = r - dist
    p_local = clamped
    # a 2D box has h[2] = 0: its z extent never decides (the scene lives in z = 0)
    inside = ti.abs(local[0]) < h[0] and ti.abs(local[1]) < h[1] and (h[2] == 0.0 or ti.abs(local[2]) < h[2])
    if inside:
        gx, gy = h[0] - ti.abs(local[0]), h[1] - ti.abs(local[1])
        gz = h[2] - ti.abs(local[2])
        if h[2] == 0.0:
            gz = 1e30
        sx = 1.0 if local[0] >= 0.0 else -1.0
        sy = 1.0 if local[1] >= 0.0 else -1.0
        sz = 1.0 if local[2] >= 0.0 else -1.0
        n_local = ti.Vector([sx, 0.0, 0.0])
        depth = r + gx
        p_local = ti.Vector([sx * h[0], local[1], local[2]])
        if gy < gx and gy <= gz:
            n_local = ti.Vector([0.0, sy, 0.0])
            depth = r + gy
            p_local = ti.Vector([local[0], sy * h[1], local[2]])
        elif gz < gx and gz < gy:
            n_local = ti.Vector([0.0, 0.0, sz])
            depth = r + gz
            p_local = ti.Vector([local[0], local[1], sz * h[2]])
    n = quat_rotate(qb, n_local)
    point = cb + quat_rotate(qb, p_local) + n * (0.5 * depth)
    return n, depth, point


@ti.func
def capsule_segment(c, q, half_length):
    """End points (m) of a capsule's core segment, along the body x axis."""
    a = quat_rotate(q, ti.Vector([half_length, 0.0, 0.0]))
    return c - a, c + a


@ti.func
def closest_on_segment(p0, p1, x):
    """Closest point to x on the segment p0-p1 (clamped projection)."""
    d = p1 - p0
    s = ti.min(ti.max((x - p0).dot(d) / (d.dot(d) + 1e-300), 0.0), 1.0)
    return p0 + s * d


@ti.func
def capsule_sphere(cc, qc, rc, hc, cs, rs):
    """Sphere against a capsule: normal from capsule to sphere."""
    p0, p1 = capsule_segment(cc, qc, hc)
    return sphere_sphere(cs, rs, closest_on_segment(p0, p1, cs), rc)


@ti.func
def segment_segment(p1, q1, p2, q2):
    """Closest points (c1 on p1-q1, c2 on p2-q2) of two segments (Ericson, Real-Time Collision
    Detection, 5.1.9); parallel segments take s = 0 on the first."""
    d1 = q1 - p1
    d2 = q2 - p2
    r = p1 - p2
    a = d1.dot(d1)
    e = d2.dot(d2)
    f = d2.dot(r)
    c = d1.dot(r)
    b = d1.dot(d2)
    denom = a * e - b * b
    s = 0.0
    if denom > 1e-12 * a * e:
        s = ti.min(ti.max((b * f - c * e) / denom, 0.0), 1.0)
    t = (b * s + f) / e
    if t < 0.0:
        t = 0.0
        s = ti.min(ti.max(-c / a, 0.0), 1.0)
    elif t > 1.0:
        t = 1.0
        s = ti.min(ti.max((b - c) / a, 0.0), 1.0)
    return p1 + s * d1, p2 + t * d2


@ti.func
def capsule_capsule(ca, qa, ra, ha, cb, qb, rb, hb):
    """Two capsules: spheres of their radii at the closest points of their segments."""
    a0, a1 = capsule_segment(ca, qa, ha)
    b0, b1 = capsule_segment(cb, qb, hb)
    pa, pb = segment_segment(a0, a1, b0, b1)
    return sphere_sphere(pa, ra, pb, rb)


__all__ = [
    "EPS_NORMAL",
    "box_corner",
    "capsule_capsule",
    "capsule_segment",
    "capsule_sphere",
    "closest_on_segment",
    "point_plane",
    "segment_segment",
    "sphere_box",
    "sphere_plane",
    "sphere_sphere",
]
