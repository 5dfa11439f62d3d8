"""A box pair's incident corners that tie for lowest (a box turned about x above another: its
two lowest corners are equally deep, and so is the separation that caps them): each corner's
depth is its own smooth function of the pose, and its gradient must be that function's, whatever
the last bits of the two ways of computing the tie. With ti.min(below, -best) the adjoint went
to the separation (the mean of the corners' slopes) or to the corner depending on rounding:
two boxes on a floor gave d loss / d omega_y 13 % off central differences after a refactor that
left the formulas unchanged (narrowphase.corner_below_face)."""

import numpy as np
import taichi as ti

from diffsim.collision.narrowphase import box_box_point_of

_A = ti.types.ndarray()


@ti.kernel
def _corner_depths(qb: _A, depth: _A):
    """depth[k]: corner k of box b (turned by qb, centre 0.4 m above box a) below a's top face."""
    for _ in range(1):
        ca = ti.Vector([0.0, 0.0, 0.0])
        qa = ti.Vector([1.0, 0.0, 0.0, 0.0])
        ha = ti.Vector([0.1, 0.1, 0.1])
        cb = ti.Vector([0.03, 0.0, 0.4])
        q = ti.Vector([qb[0], qb[1], qb[2], qb[3]])
        hb = ti.Vector([0.08, 0.08, 0.08])
        for k in ti.static(range(8)):
            depth[k] = box_box_point_of(2, ca, qa, ha, cb, q, hb, k, 3)[1]  # feature 2: a's z face


def test_tied_lowest_corners_have_their_own_depth_gradients():
    q0 = np.array([np.cos(0.2), np.sin(0.2), 0.0, 0.0])  # 0.4 rad about x: corners 0 and 1 lowest
    qb = ti.ndarray(ti.f64, 4, needs_grad=True)
    depth = ti.ndarray(ti.f64, 8, needs_grad=True)
    qb.from_numpy(q0)
    _corner_depths(qb, depth)
    d = depth.to_numpy()
    assert d[0] == d[1] and np.all(d[2:] < d[0]) and d[0] < 0.0  # apart, two corners tie for lowest

    def depths(q):
        qb.from_numpy(q)
        _corner_depths(qb, depth)
        return depth.to_numpy()

    h = 1e-6
    for k in (0, 1):
        qb.from_numpy(q0)
        qb.grad.fill(0.0)
        seed = np.zeros(8)
        seed[k] = 1.0
        depth.grad.from_numpy(seed)
        _corner_depths.grad(qb, depth)
        ad = qb.grad.to_numpy()
        fd = np.array([(depths(q0 + h * e)[k] - depths(q0 - h * e)[k]) / (2 * h) for e in np.eye(4)])
        assert abs(fd[2]) > 0.01  # turning about y lowers one tied corner and lifts the other
        np.testing.assert_allclose(ad, fd, rtol=1e-6, atol=1e-8)
