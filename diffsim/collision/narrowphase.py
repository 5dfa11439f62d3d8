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

from ..compat import compile_time, subscript
from ..contact import safe_normalized
from ..rotations import quat_rotate, quat_rotate_inv
from .logic import eq, ge, gt, lt
from .vector import dot3

_OTHER_AXES = ((1, 2), (0, 2), (0, 1))  # the two body axes beside each axis
# faces of a box pair, f = 0..5: a's x, y, z then b's; the axes (of the same box) beside face f's
# normal, as indices into the same six (the face's lateral directions and half extents)
_FACES = (0, 1, 2, 3, 4, 5)
_BESIDE_1 = tuple(3 * (f // 3) + _OTHER_AXES[f % 3][0] for f in range(6))
_BESIDE_2 = tuple(3 * (f // 3) + _OTHER_AXES[f % 3][1] for f in range(6))
_EDGE_PAIRS = tuple(range(9))  # edge pairs e = 3 i + j of a box pair: a's axis i crossed with b's axis j


@compile_time
def max_over(values, keys, k):
    """max(values[key] for key in keys[k:]) as one expression, built while the kernel compiles
    (plain Python: a ti.func per level was parsed again at every level, a third of the
    forward-only feature kernel's compile). values: a local vector (each entry read once)."""
    if k == len(keys) - 1:
        return subscript(values, keys[k])
    return ti.max(subscript(values, keys[k]), max_over(values, keys, k + 1))


@compile_time
def first_reaching(values, target, keys, k):
    """The first key of keys[k:] whose value equals target (the last key when none does), as
    nested selects built while the kernel compiles (as :func:`max_over`)."""
    if k == len(keys) - 1:
        return keys[k]
    return ti.select(eq(subscript(values, keys[k]), target), keys[k], first_reaching(values, target, keys, k + 1))


@ti.func
def pick(choice, values: ti.template(), index: ti.template(), keys: ti.template(), k: ti.template()):
    """values[index[choice]] for a runtime choice among keys[k:] (the last key's entry when the
    choice is none of them), as nested selects."""
    if ti.static(k == len(keys) - 1):
        return values[index[keys[k]]]
    else:
        return ti.select(choice == keys[k], values[index[keys[k]]], pick(choice, values, index, keys, k + 1))

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
    depth = offset - dot3(pn, p)
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
    n_out, dist = safe_normalized(d, EPS_NORMAL)
    # a 2D box has h[2] = 0: its z extent never decides (the scene lives in z = 0)
    inside = ti.abs(local[0]) < h[0] and ti.abs(local[1]) < h[1] and (h[2] == 0.0 or ti.abs(local[2]) < h[2])
    # centre inside: the nearest face (selects, not branches: no adstacks in gradient kernels)
    gx, gy = h[0] - ti.abs(local[0]), h[1] - ti.abs(local[1])
    gz = ti.select(h[2] == 0.0, 1e30, h[2] - ti.abs(local[2]))
    sx = ti.select(local[0] >= 0.0, 1.0, -1.0)
    sy = ti.select(local[1] >= 0.0, 1.0, -1.0)
    sz = ti.select(local[2] >= 0.0, 1.0, -1.0)
    face_y = gy < gx and gy <= gz
    face_z = not face_y and gz < gx and gz < gy
    gap = ti.select(face_y, gy, ti.select(face_z, gz, gx))
    n_in = ti.select(face_y, ti.Vector([0.0, sy, 0.0]), ti.select(face_z, ti.Vector([0.0, 0.0, sz]),
                                                                 ti.Vector([sx, 0.0, 0.0])))
    p_in = ti.select(face_y, ti.Vector([local[0], sy * h[1], local[2]]),
                     ti.select(face_z, ti.Vector([local[0], local[1], sz * h[2]]),
                               ti.Vector([sx * h[0], local[1], local[2]])))
    n_local = ti.select(inside, n_in, n_out)
    depth = ti.select(inside, r + gap, r - dist)
    p_local = ti.select(inside, p_in, clamped)
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
    Detection, 5.1.9); parallel segments take s = 0 on the first. A segment may have zero
    length (a point: a sphere seen as a capsule of half length 0)."""
    d1 = q1 - p1
    d2 = q2 - p2
    r = p1 - p2
    a = dot3(d1, d1)
    e = dot3(d2, d2)
    f = dot3(d2, r)
    c = dot3(d1, r)
    b = dot3(d1, d2)
    denom = a * e - b * b
    # branch-free (selects; the branch not taken divides by 1): locals assigned in runtime
    # branches become adstacks in gradient kernels
    skew = gt(denom, 1e-12 * a * e)
    s_free = ti.select(skew, ti.min(ti.max((b * f - c * e) / ti.select(skew, denom, 1.0), 0.0), 1.0), 0.0)
    # a segment of zero length (a sphere taken as a capsule) divides by 1: its point is its end
    t_free = (b * s_free + f) / ti.select(gt(e, 0.0), e, 1.0)
    below, above = lt(t_free, 0.0), gt(t_free, 1.0)
    t = ti.select(below, 0.0, ti.select(above, 1.0, t_free))
    a_safe = ti.select(gt(a, 0.0), a, 1.0)
    s = ti.select(below, ti.min(ti.max(-c / a_safe, 0.0), 1.0),
                  ti.select(above, ti.min(ti.max((b - c) / a_safe, 0.0), 1.0), s_free))
    return p1 + s * d1, p2 + t * d2


@ti.func
def capsule_capsule(ca, qa, ra, ha, cb, qb, rb, hb):
    """Two capsules: spheres of their radii at the closest points of their segments."""
    a0, a1 = capsule_segment(ca, qa, ha)
    b0, b1 = capsule_segment(cb, qb, hb)
    pa, pb = segment_segment(a0, a1, b0, b1)
    return sphere_sphere(pa, ra, pb, rb)


@ti.func
def box_corner_at(c, q, h, k):
    """World position of corner k (a runtime index 0..7; bit 0 -> x sign, bit 1 -> y, bit 2 -> z)
    of a box of centre c (m), orientation q and half extents h (m)."""
    sx = 2.0 * (k & 1) - 1.0
    sy = 2.0 * ((k >> 1) & 1) - 1.0
    sz = 2.0 * ((k >> 2) & 1) - 1.0
    return c + quat_rotate(q, ti.Vector([sx * h[0], sy * h[1], sz * h[2]]))


@ti.func
def box_axes(q):
    """The world directions of a box's body axes x, y, z (unit 3-vectors)."""
    return (quat_rotate(q, ti.Vector([1.0, 0.0, 0.0])), quat_rotate(q, ti.Vector([0.0, 1.0, 0.0])),
            quat_rotate(q, ti.Vector([0.0, 0.0, 1.0])))


@ti.func
def box_radius_along(axes_x, axes_y, axes_z, h, direction):
    """Half the width (m) of a box (axes, half extents h) projected on a unit direction."""
    return (h[0] * ti.abs(dot3(axes_x, direction)) + h[1] * ti.abs(dot3(axes_y, direction))
            + h[2] * ti.abs(dot3(axes_z, direction)))


TIE_DEPTH = 1e-12  # relative difference below which a corner's depth and the boxes' separation tie
EDGE_PARALLEL = 1e-6  # |e_a x e_b| (unit edge directions) below which two edges count as parallel


@ti.func
def edge_offset(axis, n, h, along):
    """h axis turned towards n (0 when ``along``: the edge runs along this axis)."""
    return ti.select(along, 0.0, ti.select(ge(dot3(axis, n), 0.0), h, -h)) * axis


@ti.func
def edge_axis_separation(r, t, ha, hb, i: ti.template(), j: ti.template()):
    """Separation (m) of two boxes along the edge-edge axis a_i x b_j, from their relative
    rotation r (R_ij = a_i . b_j, row-major 9-vector) and centre offset t (t_i = d . a_i, d from
    b to a); -1e30 for parallel edges (no axis). For right-handed orthonormal axes, with
    (i, i1, i2) and (j, j1, j2) cyclic (Gottschalk's OBB test): d . (a_i x b_j) = t_i2 R_i1j -
    t_i1 R_i2j, the boxes' half widths along it ha_i1 |R_i2j| + ha_i2 |R_i1j| and
    hb_j1 |R_ij2| + hb_j2 |R_ij1|, and |a_i x b_j|^2 = 1 - R_ij^2."""
    i1, i2, j1, j2 = ti.static((i + 1) % 3, (i + 2) % 3, (j + 1) % 3, (j + 2) % 3)
    length2 = 1.0 - r[3 * i + j] * r[3 * i + j]
    gap = ti.abs(t[i2] * r[3 * i1 + j] - t[i1] * r[3 * i2 + j]) \
        - (ha[i1] * ti.abs(r[3 * i2 + j]) + ha[i2] * ti.abs(r[3 * i1 + j])) \
        - (hb[j1] * ti.abs(r[3 * i + j2]) + hb[j2] * ti.abs(r[3 * i + j1]))
    return ti.select(gt(length2, EDGE_PARALLEL * EDGE_PARALLEL),
                     gap / ti.sqrt(ti.max(length2, EDGE_PARALLEL * EDGE_PARALLEL)), -1e30)


@ti.func
def edge_separations(d, xa, ya, za, ha, xb, yb, zb, hb):
    """Separations (m) of two boxes (centres d apart, body axes, half extents) along the nine
    edge-edge axes a_i x b_j, as a 9-vector (e = 3 i + j; :func:`edge_axis_separation`): 12 dot
    products in all, where projecting the boxes on each axis took 7 per axis (the forward-only
    feature kernel's compile 1.2-1.5 -> 0.7 CPU s)."""
    dirs_a = (xa, ya, za)
    dirs_b = (xb, yb, zb)
    r = ti.Vector([dot3(dirs_a[i], dirs_b[j]) for i in ti.static(range(3)) for j in ti.static(range(3))])
    t = ti.Vector([dot3(d, dirs_a[i]) for i in ti.static(range(3))])
    return ti.Vector([edge_axis_separation(r, t, ha, hb, e // 3, e % 3) for e in ti.static(range(9))])


@ti.func
def box_box_point(ca, qa, ha, cb, qb, hb, k, dim: ti.template()):
    """Contact point k (0..7; 0..3 in 2D, where h[2] = 0) of two boxes: (normal from b to a,
    depth, point).

    Separating-axis test over the face normals of both boxes (3 + 3; 2 + 2 in 2D) and, in 3D,
    the 9 edge-edge axes (:func:`box_box_feature`). When a face axis has the least overlap, it
    picks a reference face (on the box it belongs to) and the other box is the incident one. Point k is the incident box's corner
    k: its depth below the reference face's plane (a's faces are preferred: b's face is taken
    only if its overlap is smaller by 1 % of the smallest half extent, so that two faces of
    equal overlap, a box resting on another, do not swap from step to step), its contact point on the reference face with
    the lateral coordinates clamped to the face's rectangle (so a corner beyond the face edge
    contacts at the edge: for faces lying on faces the points span their overlap, as clipping
    would give), midway through the overlap. Corners above the face give depth <= 0 (no
    contact), so a face on a face has 4 points, an edge 2, a corner 1. Separated boxes give
    every corner its own depth below the reference face, capped at minus the separation
    (< 0 for every k, continuous at first touch): a law that acts just before touch (the
    stepped law) then sees only the corners about to touch, not all of them at once.

    An edge-edge axis wins only when its separation beats every face's by the same margin (two
    faces resting on each other give edge axes of equal separation: the faces keep them). Then
    the pair has one contact, point 0: midway between the closest points of the two edges,
    with depth minus the separation along the axis (negative while apart, as above); points
    1..7 get depth -1 (no contact). Crossed edges (a box turned 45 degrees about x lying across
    one turned about y) touch at that one point instead of a face contact deep in the wrong
    place.

    Written as two parts, :func:`box_box_feature` (the discrete choice) and
    :func:`box_box_point_of` (the chosen feature's geometry), which kernels call apart so that
    gradient kernels hold the second alone."""
    return box_box_point_of(box_box_feature(ca, qa, ha, cb, qb, hb, dim), ca, qa, ha, cb, qb, hb, k, dim)


# box_box_feature codes: 0..5 a reference face (a's x, y, z, then b's), FEATURE_EDGE + e an edge
# pair (e = 3 i + j: a's axis i crossed with b's axis j, 3D only)
FEATURE_EDGE = 6


@ti.func
def box_face_separations(d, xa, ya, za, ha, xb, yb, zb, hb, margin):
    """Separation (m) of two boxes along each face normal (a's x, y, z, then b's; b's reduced by
    the margin that makes a's faces preferred), as a 6-vector."""
    dirs = (xa, ya, za, xb, yb, zb)
    return ti.Vector([ti.abs(dot3(d, dirs[f])) - box_radius_along(xa, ya, za, ha, dirs[f])
                      - box_radius_along(xb, yb, zb, hb, dirs[f]) - ti.static(0.0 if f < 3 else 1.0) * margin
                      for f in ti.static(range(6))])


@ti.func
def box_margin(ha, hb):
    """1 % of the smallest half extent of two boxes (m): how much a b face or an edge-edge axis
    must beat a's faces by to be chosen (:func:`box_box_point`)."""
    return 0.01 * ti.min(ti.min(ha[0], ha[1]), ti.min(hb[0], hb[1]))


@ti.func
def box_box_feature(ca, qa, ha, cb, qb, hb, dim: ti.template()):
    """The separating-axis test's discrete choice for two boxes (an int): the reference face
    0..5 (a's x, y, z axes, then b's; 2D: 0, 1, 3, 4) of least overlap, or FEATURE_EDGE + e for
    the edge pair e = 3 i + j (a's axis i, b's axis j; 3D) when an edge-edge axis beats every
    face by the margin (:func:`box_box_point` gives the rules). Piecewise constant in the
    poses: computed apart (a forward-only launch, or an item of a fused kernel whose gradient
    does not need it), so that the differentiated geometry (:func:`box_box_point_of`) holds the
    chosen feature's formulas alone instead of selects over all 15 candidates."""
    xa, ya, za = box_axes(qa)
    xb, yb, zb = box_axes(qb)
    return box_box_feature_from_axes(ca - cb, xa, ya, za, ha, xb, yb, zb, hb, dim)


@ti.func
def box_box_feature_from_axes(d, xa, ya, za, ha, xb, yb, zb, hb, dim: ti.template()):
    """:func:`box_box_feature` from the centre offset d = ca - cb and the boxes' world axes
    (:func:`box_axes`; a caller holding them in memory reads them instead of rotating)."""
    margin = box_margin(ha, hb)
    faces = ti.static((0, 1, 3, 4) if dim == 2 else _FACES)
    sep = box_face_separations(d, xa, ya, za, ha, xb, yb, zb, hb, margin)
    best = max_over(sep, faces, 0)
    face = first_reaching(sep, best, faces, 0)
    if ti.static(dim == 3):
        sep_e = edge_separations(d, xa, ya, za, ha, xb, yb, zb, hb)
        best_e = max_over(sep_e, _EDGE_PAIRS, 0)
        edge = first_reaching(sep_e, best_e, _EDGE_PAIRS, 0)
        return ti.select(gt(best_e, best + margin), FEATURE_EDGE + edge, face)
    else:
        return face


@ti.func
def pick3(i, a, b, c):
    """(a, b, c)[i] for a runtime i in 0..2, as two selects."""
    return ti.select(eq(i, 0), a, ti.select(eq(i, 1), b, c))


@ti.func
def box_box_point_of(feature, ca, qa, ha, cb, qb, hb, k, dim: ti.template()):
    """Contact point k of two boxes, as :func:`box_box_point` gives it, for the feature that
    :func:`box_box_feature` chose (an int read from memory): only that face's or edge pair's
    formulas, picked with 3-way selects of the box axes. Equal to box_box_point bit for bit
    where the feature is the one it would choose (the same expressions on the chosen axis), and
    its gradient is box_box_point's wherever the choice is piecewise constant."""
    if ti.static(dim == 2):
        return box_box_point_of_2d(feature, ca, qa, ha, cb, qb, hb, k)
    else:
        return box_box_point_of_3d(feature, ca, qa, ha, cb, qb, hb, k)


@ti.func
def corner_below_face(ref_a, d, L, best, h_ref, c_ref, corner):
    """For the reference face on axis L (of box a if ref_a, else of b; half extent h_ref, its
    box's centre c_ref, separation best along L, d = ca - cb) and a corner of the other
    (incident) box: the face's outward normal towards the incident box, the corner relative to
    c_ref, and the corner's depth below the face (capped by the boxes' overlap along L when
    they are apart: min(below, -best)).

    The incident box's extreme corners have below = -best exactly, computed two ways; where the
    two agree to within rounding (TIE_DEPTH, relative) the corner's own depth is taken, so that
    its gradient does not depend on how the last bits fall: each tied corner's depth moves with
    its own slope when the pose moves (only their maximum, the separation, has a kink). With
    ti.min, two boxes on a floor, the upper landing on an edge (two corners equally low), gave
    d loss / d omega_y 13 % off central differences or right, depending on how Taichi compiled
    the arithmetic of an unchanged formula (split into two ti.funcs; the kernel compiled with
    other options).
    """
    sign = ti.select(ge(dot3(d, L), 0.0), 1.0, -1.0)  # L oriented from b to a
    n_ref = ti.select(ref_a, -sign, sign) * L  # reference face normal, towards the incident box
    rel = corner - c_ref
    below = h_ref - dot3(n_ref, rel)
    capped = ti.select(lt(-best, below - TIE_DEPTH * (h_ref + ti.abs(best))), -best, below)
    depth = ti.select(gt(best, 0.0), capped, below)
    return n_ref, rel, depth


@ti.func
def incident_corner(ref_a, d, L, best, h_ref, ca, qa, ha, cb, qb, hb, k):
    """:func:`corner_below_face` for corner k of the incident box (b if ref_a, else a), with
    the reference box's centre: (n_ref, c_ref, rel, depth)."""
    c_ref = ti.select(ref_a, ca, cb)
    corner = box_corner_at(ti.select(ref_a, cb, ca), ti.select(ref_a, qb, qa), ti.select(ref_a, hb, ha), k)
    n_ref, rel, depth = corner_below_face(ref_a, d, L, best, h_ref, c_ref, corner)
    return n_ref, c_ref, rel, depth


@ti.func
def box_box_point_of_2d(feature, ca, qa, ha, cb, qb, hb, k):
    """:func:`box_box_point_of` in 2D (turns about z, h[2] = 0): the same formulas without the
    terms that are exactly 0 there (the z axis's share of a box's width, the lateral coordinate
    along z), which the gradient kernel then need not carry."""
    xa, ya, _ = box_axes(qa)
    xb, yb, _ = box_axes(qb)
    d = ca - cb
    margin = box_margin(ha, hb)
    ref_a = feature < 3
    along_x = feature % 3 == 0  # the face's axis is its box's x (else y)
    L = ti.select(ref_a, ti.select(along_x, xa, ya), ti.select(along_x, xb, yb))
    u1 = ti.select(ref_a, ti.select(along_x, ya, xa), ti.select(along_x, yb, xb))
    h_ref = ti.select(ref_a, ti.select(along_x, ha[0], ha[1]), ti.select(along_x, hb[0], hb[1]))
    h1 = ti.select(ref_a, ti.select(along_x, ha[1], ha[0]), ti.select(along_x, hb[1], hb[0]))
    best = ti.abs(d.dot(L)) - (ha[0] * ti.abs(xa.dot(L)) + ha[1] * ti.abs(ya.dot(L))) \
        - (hb[0] * ti.abs(xb.dot(L)) + hb[1] * ti.abs(yb.dot(L))) - ti.select(ref_a, 0.0, 1.0) * margin
    n_ref, c_ref, rel, depth = incident_corner(ref_a, d, L, best, h_ref, ca, qa, ha, cb, qb, hb, k)
    lateral1 = ti.min(ti.max(rel.dot(u1), -h1), h1)
    point = c_ref + h_ref * n_ref + lateral1 * u1 - (0.5 * depth) * n_ref
    return ti.select(ref_a, -n_ref, n_ref), depth, point


@ti.func
def box_box_point_of_3d(feature, ca, qa, ha, cb, qb, hb, k):
    """:func:`box_box_point_of` in 3D: a face's or an edge pair's geometry, the chosen axes
    picked with 3-way selects of the boxes' axes (:func:`box_box_point_from_axes`)."""
    xa, ya, za = box_axes(qa)
    xb, yb, zb = box_axes(qb)
    ref_a = lt(feature, 3)
    f3 = feature % 3  # the face's axis within its box (faces only)
    b1 = ti.select(eq(f3, 0), 1, 0)  # _OTHER_AXES[f3]
    b2 = ti.select(eq(f3, 2), 1, 2)
    e = feature - FEATURE_EDGE
    i, j = e // 3, e % 3
    corner = box_corner_at(ti.select(ref_a, cb, ca), ti.select(ref_a, qb, qa), ti.select(ref_a, hb, ha), k)
    return box_box_point_from_axes(feature, ca, ha, cb, hb, k, corner, xa, ya, za, xb, yb, zb,
                                   ti.select(ref_a, pick3(f3, xa, ya, za), pick3(f3, xb, yb, zb)),
                                   ti.select(ref_a, pick3(b1, xa, ya, za), pick3(b1, xb, yb, zb)),
                                   ti.select(ref_a, pick3(b2, xa, ya, za), pick3(b2, xb, yb, zb)),
                                   pick3(i, xa, ya, za), pick3(j, xb, yb, zb))


@ti.func
def box_box_point_from_axes(feature, ca, ha, cb, hb, k, corner, xa, ya, za, xb, yb, zb, L, u1, u2, ea, eb):
    """:func:`box_box_point_of` in 3D from the boxes' world axes (xa, ya, za of a, xb, yb, zb
    of b, :func:`box_axes`) and the ones the feature picks: L, u1, u2 the reference face's axis
    and the two beside it (``_OTHER_AXES``, in that order), ea, eb the edge pair's (a's axis i,
    b's axis j for feature FEATURE_EDGE + 3 i + j); for a face feature ea and eb are unused
    (any finite vectors), likewise L, u1, u2 for an edge. A caller that holds the axes in
    memory reads the picked ones by index (:func:`box_box_point_on_axes`) instead of selecting
    them: the same formulas on the same values, and a smaller gradient kernel."""
    d = ca - cb
    margin = box_margin(ha, hb)
    ref_a = lt(feature, 3)
    f3 = feature % 3  # the face's axis within its box (faces only)
    # face geometry of the chosen face: its axis, the two beside it, and their half extents
    b1 = ti.select(eq(f3, 0), 1, 0)  # _OTHER_AXES[f3]
    b2 = ti.select(eq(f3, 2), 1, 2)
    h_ref = ti.select(ref_a, pick3(f3, ha[0], ha[1], ha[2]), pick3(f3, hb[0], hb[1], hb[2]))
    h1 = ti.select(ref_a, pick3(b1, ha[0], ha[1], ha[2]), pick3(b1, hb[0], hb[1], hb[2]))
    h2 = ti.select(ref_a, pick3(b2, ha[0], ha[1], ha[2]), pick3(b2, hb[0], hb[1], hb[2]))
    best = ti.abs(dot3(d, L)) - box_radius_along(xa, ya, za, ha, L) - box_radius_along(xb, yb, zb, hb, L) \
        - ti.select(ref_a, 0.0, 1.0) * margin
    c_ref = ti.select(ref_a, ca, cb)
    n_ref, rel, depth = corner_below_face(ref_a, d, L, best, h_ref, c_ref, corner)
    lateral1 = ti.min(ti.max(dot3(rel, u1), -h1), h1)
    lateral2 = ti.min(ti.max(dot3(rel, u2), -h2), h2)
    point = c_ref + h_ref * n_ref + lateral1 * u1 + lateral2 * u2 - (0.5 * depth) * n_ref
    n = ti.select(ref_a, -n_ref, n_ref)
    e = feature - FEATURE_EDGE
    i, j = e // 3, e % 3
    la, lb = pick3(i, ha[0], ha[1], ha[2]), pick3(j, hb[0], hb[1], hb[2])
    axis = ea.cross(eb)
    length2 = dot3(axis, axis)
    gap = ti.abs(dot3(d, axis)) - box_radius_along(xa, ya, za, ha, axis) - box_radius_along(xb, yb, zb, hb, axis)
    sep_edge = gap / ti.sqrt(ti.max(length2, EDGE_PARALLEL * EDGE_PARALLEL))
    unit = axis / ti.sqrt(ti.max(length2, EDGE_PARALLEL * EDGE_PARALLEL))
    n_e = ti.select(ge(dot3(d, unit), 0.0), unit, -unit)
    mid_a = ca - edge_offset(xa, n_e, ha[0], eq(i, 0)) - edge_offset(ya, n_e, ha[1], eq(i, 1)) - \
        edge_offset(za, n_e, ha[2], eq(i, 2))
    mid_b = cb + edge_offset(xb, n_e, hb[0], eq(j, 0)) + edge_offset(yb, n_e, hb[1], eq(j, 1)) + \
        edge_offset(zb, n_e, hb[2], eq(j, 2))
    pa, pb = segment_segment(mid_a - la * ea, mid_a + la * ea, mid_b - lb * eb, mid_b + lb * eb)
    edge = ge(feature, FEATURE_EDGE)
    return (ti.select(edge, n_e, n), ti.select(edge, ti.select(eq(k, 0), -sep_edge, -1.0), depth),
            ti.select(edge, 0.5 * (pa + pb), point))


@ti.func
def table_axis(axes: ti.template(), row, body, m):
    """World direction of body axis m (a runtime 0..2) of a body from a table of box axes:
    axes[row, body, 3 m + c] is its component c (the columns of the body's rotation matrix)."""
    return ti.Vector([axes[row, body, 3 * m + c] for c in ti.static(range(3))])


@ti.func
def box_box_point_on_axes(feature, ca, ha, cb, hb, k, axes: ti.template(), row, a, b):
    """:func:`box_box_point_of` in 3D for boxes a and b whose world axes are rows of a table
    (``axes[row, body, 3 m + c]``, :func:`table_axis`, the columns of their rotation matrices):
    the feature's axes are read by index rather than selected among the six, and the incident
    corner is built on the incident box's axes rather than rotated by its quaternion, which
    leaves the gradient kernel the formulas of one axis each. Equal to
    :func:`box_box_point_of_3d` to rounding (the box3d scene's loss to 5e-15 relative)."""
    ref_a = lt(feature, 3)
    f3 = feature % 3
    ref = ti.select(ref_a, a, b)
    inc = ti.select(ref_a, b, a)
    h = ti.select(ref_a, hb, ha)  # corner k of the incident box (bit 0 -> x sign, 1 -> y, 2 -> z)
    corner = ti.select(ref_a, cb, ca) + (2.0 * (k & 1) - 1.0) * h[0] * table_axis(axes, row, inc, 0) \
        + (2.0 * ((k >> 1) & 1) - 1.0) * h[1] * table_axis(axes, row, inc, 1) \
        + (2.0 * ((k >> 2) & 1) - 1.0) * h[2] * table_axis(axes, row, inc, 2)
    e = ti.max(feature - FEATURE_EDGE, 0)  # a face feature reads edge axes it does not use (in the table)
    return box_box_point_from_axes(feature, ca, ha, cb, hb, k, corner,
                                   table_axis(axes, row, a, 0), table_axis(axes, row, a, 1),
                                   table_axis(axes, row, a, 2), table_axis(axes, row, b, 0),
                                   table_axis(axes, row, b, 1), table_axis(axes, row, b, 2),
                                   table_axis(axes, row, ref, f3), table_axis(axes, row, ref, ti.select(eq(f3, 0), 1, 0)),
                                   table_axis(axes, row, ref, ti.select(eq(f3, 2), 1, 2)),
                                   table_axis(axes, row, a, e // 3), table_axis(axes, row, b, e % 3))


@ti.func
def box_capsule_point(ca, qa, ha, cc, qc, rc, hc, k, corners: ti.template()):
    """Contact point k of a box a and a capsule (normal from the capsule to the box, depth,
    point): k = 0, 1: the capsule's end spheres against the box; 2 <= k < 2 + corners: box
    corner k - 2 inside the capsule. A capsule lying on a face rests on its two ends; a box
    edge across the middle of a capsule with no corner inside it is not detected."""
    n = ti.Vector([0.0, 0.0, 0.0])
    depth = -1.0
    p = ca
    if k < 2:
        p0, p1 = capsule_segment(cc, qc, hc)
        end = p0 + k * (p1 - p0)
        nb, depth, p = sphere_box(end, rc, ca, qa, ha)
        n = -nb
    elif k < 2 + corners:
        n, depth, p = capsule_sphere(cc, qc, rc, hc, box_corner_at(ca, qa, ha, k - 2), 0.0)
    return n, depth, p


__all__ = [
    "EDGE_PARALLEL",
    "EPS_NORMAL",
    "box_axes",
    "box_box_point",
    "box_radius_along",
    "box_capsule_point",
    "box_corner",
    "box_corner_at",
    "box_box_feature",
    "box_box_feature_from_axes",
    "box_box_point_of",
    "box_box_point_on_axes",
    "table_axis",
    "FEATURE_EDGE",
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
