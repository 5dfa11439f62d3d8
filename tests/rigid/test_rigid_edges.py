"""Box-box contact along the 9 edge-edge axes (3D): the separating-axis test against a NumPy
reference over all 15 axes, two cubes resting crossed edge on edge at the height their edges'
distance gives, and gradients through an edge-edge impact against central differences."""

import numpy as np
import pytest
import taichi as ti

from diffsim import Objective, Parameter, Rollout, StoreAll, gradcheck
from diffsim.collision.narrowphase import FEATURE_EDGE, box_box_feature, box_box_point
from diffsim.rigid import BodyTarget, Box, ModelBuilder, RigidSystem
from diffsim.rotations import quat_from_axis_angle_np, quat_to_matrix_np

G = 9.81
_A = ti.types.ndarray()


@ti.kernel
def _box_box(poses: _A, out: _A):
    """poses[r] = (c_a, q_a, h_a, c_b, q_b, h_b); out[r, k] = (normal, depth, point) of point k."""
    for r, k in ti.ndrange(poses.shape[0], 8):
        ca = ti.Vector([poses[r, 0], poses[r, 1], poses[r, 2]])
        qa = ti.Vector([poses[r, 3], poses[r, 4], poses[r, 5], poses[r, 6]])
        ha = ti.Vector([poses[r, 7], poses[r, 8], poses[r, 9]])
        cb = ti.Vector([poses[r, 10], poses[r, 11], poses[r, 12]])
        qb = ti.Vector([poses[r, 13], poses[r, 14], poses[r, 15], poses[r, 16]])
        hb = ti.Vector([poses[r, 17], poses[r, 18], poses[r, 19]])
        n, depth, p = box_box_point(ca, qa, ha, cb, qb, hb, k, 3)
        for i in ti.static(range(3)):
            out[r, k, i] = n[i]
            out[r, k, 4 + i] = p[i]
        out[r, k, 3] = depth
        out[r, k, 7] = box_box_feature(ca, qa, ha, cb, qb, hb, 3)


def box_box_np(poses, feature=False):
    """(normal, depth, point) of the 8 points of each pose row, computed by _box_box (and the
    pair's box_box_feature with ``feature``)."""
    a = np.asarray(poses, dtype=np.float64)
    arr, out = ti.ndarray(ti.f64, a.shape), ti.ndarray(ti.f64, (a.shape[0], 8, 8))
    arr.from_numpy(a)
    _box_box(arr, out)
    res = out.to_numpy()
    return (res[..., :3], res[..., 3], res[..., 4:7]) + ((res[:, 0, 7].astype(int),) if feature else ())


def closest_points_np(p, u, lu, q, v, lv):
    """Closest points of the segments p + s u (|s| <= lu) and q + t v (|t| <= lv), u and v unit,
    by alternating clamped projections (a fixed point of the two projections is the minimum of
    the convex distance; not the closed form the narrow phase uses)."""
    s = t = 0.0
    for _ in range(2000):
        s = np.clip((q + t * v - p) @ u, -lu, lu)
        t = np.clip((p + s * u - q) @ v, -lv, lv)
    return p + s * u, q + t * v


def sat_reference(ca, qa, ha, cb, qb, hb):
    """The separating-axis test over 15 axes in NumPy, with the narrow phase's preferences (a's
    faces, then b's faces unless one is 1 % of the smallest half extent less separated, then the
    edges only when one beats every face by that margin). Returns ("face", normal from b to a,
    depths of the incident box's 8 corners, feature) or ("edge", normal, depth, point, feature),
    feature as narrowphase.box_box_feature codes it (face f, or FEATURE_EDGE + 3 i + j)."""
    Ra, Rb = quat_to_matrix_np(qa), quat_to_matrix_np(qb)
    A, B = Ra.T, Rb.T  # rows: body axes in the world
    d = ca - cb
    margin = 0.01 * min(ha[0], ha[1], hb[0], hb[1])

    def separation(axis):
        return abs(d @ axis) - np.abs(A @ axis) @ ha - np.abs(B @ axis) @ hb

    faces = [separation(axis) for axis in A] + [separation(axis) - margin for axis in B]
    f = int(np.argmax(faces))
    best_face = faces[f]
    edges = []
    for i in range(3):
        for j in range(3):
            axis = np.cross(A[i], B[j])
            norm = np.linalg.norm(axis)
            edges.append((separation(axis / norm) if norm > 1e-6 else -np.inf, i, j, axis / max(norm, 1e-300)))
    sep_e, i, j, axis = max(edges, key=lambda e: e[0])
    if sep_e > best_face + margin:
        n = axis if d @ axis >= 0 else -axis
        mid_a = ca - sum(np.sign(A[k] @ n) * ha[k] * A[k] for k in range(3) if k != i)
        mid_b = cb + sum(np.sign(B[k] @ n) * hb[k] * B[k] for k in range(3) if k != j)
        pa, pb = closest_points_np(mid_a, A[i], ha[i], mid_b, B[j], hb[j])
        return "edge", n, -sep_e, 0.5 * (pa + pb), FEATURE_EDGE + 3 * i + j
    ref_a = f < 3
    axis = (A if ref_a else B)[f % 3]
    n = axis if d @ axis >= 0 else -axis  # from b to a
    c_ref, h_ref = (ca, ha[f % 3]) if ref_a else (cb, hb[f % 3])
    c_inc, R_inc, h_inc = (cb, Rb, hb) if ref_a else (ca, Ra, ha)
    n_ref = -n if ref_a else n  # the reference face's outward normal, towards the incident box
    corners = [
        c_inc + R_inc @ (np.array([(k & 1) * 2 - 1, (k >> 1 & 1) * 2 - 1, (k >> 2 & 1) * 2 - 1]) * h_inc)
        for k in range(8)
    ]
    depths = np.array([h_ref - n_ref @ (c - c_ref) for c in corners])
    if best_face > 0:
        depths = np.minimum(depths, -best_face)
    return "face", n, depths, f


def random_unit(rng):
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


def test_separating_axes_match_a_numpy_reference_for_random_poses():
    """200 random pairs of boxes near touch: the axis kind, the normal and every point's depth
    (and the edge point) as the NumPy reference gives them."""
    rng = np.random.default_rng(5)
    rows = []
    for _ in range(200):
        ha, hb = rng.uniform(0.05, 0.2, 3), rng.uniform(0.05, 0.2, 3)
        qa = quat_from_axis_angle_np(rng.normal(size=3), rng.uniform(-3, 3))
        qb = quat_from_axis_angle_np(rng.normal(size=3), rng.uniform(-3, 3))
        cb = rng.normal(size=3) * 0.1
        ca = cb + random_unit(rng) * rng.uniform(0.6, 1.1) * (np.linalg.norm(ha) + np.linalg.norm(hb)) * 0.8
        rows.append([*ca, *qa, *ha, *cb, *qb, *hb])
    n, depth, point, feature = box_box_np(rows, feature=True)
    kinds = {"face": 0, "edge": 0}
    for r, row in enumerate(rows):
        row = np.array(row)
        ref = sat_reference(row[0:3], row[3:7], row[7:10], row[10:13], row[13:17], row[17:20])
        kinds[ref[0]] += 1
        assert feature[r] == ref[-1]  # the separating-axis choice made apart (box_box_feature)
        if ref[0] == "edge":
            _, wn, wd, wp, _ = ref
            np.testing.assert_allclose(n[r, 0], wn, atol=1e-9)
            assert depth[r, 0] == pytest.approx(wd, abs=1e-9)
            np.testing.assert_allclose(point[r, 0], wp, atol=1e-7)
            assert np.all(depth[r, 1:] == -1.0)  # the other 7 points are not in contact
        else:
            _, wn, wd, _ = ref
            for k in range(8):
                np.testing.assert_allclose(n[r, k], wn, atol=1e-9)
            np.testing.assert_allclose(depth[r], wd, atol=1e-9)
    assert kinds["edge"] >= 20 and kinds["face"] >= 20, kinds  # both kinds of axis were exercised


def crossed_cubes(h=0.1, gap=0.0, velocity=(0.0, 0.0, 0.0), angular_velocity=(0.0, 0.0, 0.0), shift=(0.0, 0.0)):
    """Cube b (1 kg, half side h) turned 45 deg about y and lying in a V-groove (planes z = |x|)
    with an edge up along y; cube a (1 kg) turned 45 deg about x above it, an edge down along x:
    the two edges cross (a shifted by ``shift`` in x, y) ``gap`` m apart."""
    b = ModelBuilder(3)
    r = np.sqrt(2.0) * h  # centre to edge of a cube turned 45 deg
    b.add_body(
        Box((h, h, h)),
        mass=1.0,
        position=[shift[0], shift[1], 2 * r + gap + r],
        orientation=[1, 0, 0],
        angle=np.pi / 4,
        velocity=velocity,
        angular_velocity=angular_velocity,
        restitution=0.5,
        friction=0.4,
    )
    b.add_body(
        Box((h, h, h)),
        mass=1.0,
        position=[0.0, 0.0, r],
        orientation=[0, 1, 0],
        angle=np.pi / 4,
        restitution=0.5,
        friction=0.4,
    )
    for nx in (1.0, -1.0):
        b.add_plane([nx, 0.0, 1.0], 0.0, restitution=0.2, friction=0.6)
    return b.finalize()


def test_crossed_edges_rest_at_the_height_of_their_distance():
    """Cube a rests on the edge of cube b with its own edge across it: a's centre stays
    2 sqrt(2) h above b's less the static depth m g / k of one contact point (the two edges touch
    at one point), it neither turns nor slides. With face axes alone the boxes overlap 0.7 h
    along a face normal and a is thrown off."""
    k, h = 1e5, 0.1
    out = RigidSystem(crossed_cubes(h), dt=5e-4, stiffness=k, segment=250).simulate(2000)
    x = out["x"][-1]
    assert x[0, 2] - x[1, 2] == pytest.approx(2 * np.sqrt(2.0) * h - 1.0 * G / k, abs=2e-6)
    np.testing.assert_allclose(x[:, :2], 0.0, atol=1e-6)
    assert np.abs(out["v"][-1]).max() < 1e-4
    q_a = out["q"][-1, 0]
    np.testing.assert_allclose(q_a, quat_from_axis_angle_np([1.0, 0, 0], np.pi / 4), atol=1e-6)
    _, depth, point = box_box_np([[*x[0], *q_a, h, h, h, *x[1], *out["q"][-1, 1], h, h, h]])
    assert depth[0, 0] == pytest.approx(G / k, rel=1e-3) and np.all(depth[0, 1:] == -1.0)
    np.testing.assert_allclose(point[0, 0], [0.0, 0.0, 0.5 * (x[0, 2] + x[1, 2])], atol=1e-6)


def test_gradients_through_an_edge_edge_impact_match_central_differences():
    """Cube a falls edge first, off centre and spinning, onto the crossed edge of cube b in its
    groove (no gravity): the per-step path's gradient with respect to the materials and a's
    initial velocities agrees with float64 central differences (relative step 1e-4 with
    Richardson: at 1e-6 round-off in the loss reached 9e-6 of the smallest entry, d/d omega_z,
    which agrees to 8e-9 at a plain step of 1e-3)."""
    model = crossed_cubes(gap=0.01, velocity=(0.2, -0.1, -1.0), angular_velocity=(0.5, -0.3, 0.2), shift=(0.03, -0.02))
    system = RigidSystem(
        model,
        dt=1e-3,
        stiffness=2e4,
        gravity=[0, 0, 0],
        fused=False,
        costs=[BodyTarget(0, [0.1, 0.0, 0.6]), BodyTarget(1, [0.0, 0.1, 0.1])],
    )
    steps = 60
    out = system.simulate(steps)
    assert out["v"][-1, 0, 2] > 0.2  # a bounced off b's edge
    # the impact was an edge-edge one: at the deepest step only point 0 is in contact
    rows = [
        [*out["x"][t, 0], *out["q"][t, 0], 0.1, 0.1, 0.1, *out["x"][t, 1], *out["q"][t, 1], 0.1, 0.1, 0.1]
        for t in range(steps + 1)
    ]
    _, depth, _ = box_box_np(rows)
    deepest = int(np.argmax(depth[:, 0]))
    assert depth[deepest, 0] > 1e-3 and np.all(depth[deepest, 1:] == -1.0)
    obj = Objective(
        Rollout(system, steps, StoreAll()),
        [
            "mass",
            "restitution",
            "friction",
            Parameter("v", kind="state0", index=0),
            Parameter("omega", kind="state0", index=0),
        ],
    )
    report = gradcheck(obj, obj.x0(), rtol=1e-5, step=1e-4, entries=12, directions=1, seed=3)
    assert report.ok, str(report)
