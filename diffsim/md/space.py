"""Periodic space: the minimum-image convention inside kernels, and its NumPy twin.

A box is three edge lengths (orthorhombic); an edge of 0 means that axis is open (not periodic).
Positions are never wrapped by the integrators: they stay continuous (unwrapped), which keeps
mean squared displacements and gradients simple; distances always go through the minimum image.
"""

import numpy as np
import taichi as ti


@ti.func
def min_image(d, length):
    """Minimum image of one displacement component ``d`` in a box edge ``length`` (0: open axis).

    Uses floor, whose gradient is zero, never round (not differentiable in Taichi 1.7.4)."""
    # branch-free (a select, no mutated local): mutable locals inside dynamic loops need Taichi's
    # AD stack, which overflows (segfault) at ~32 iterations
    safe = ti.max(length, 1e-30)
    return ti.select(length > 0, d - length * ti.floor(d / safe + 0.5), d)


@ti.func
def displacement(x: ti.template(), s, i, j, boxes: ti.template(), c):
    """Minimum-image components of x[s, i] - x[s, j] in configuration c's box, and their square
    length (d0, d1, d2, r2)."""
    d0 = min_image(x[s, i, 0] - x[s, j, 0], boxes[c, 0])
    d1 = min_image(x[s, i, 1] - x[s, j, 1], boxes[c, 1])
    d2 = min_image(x[s, i, 2] - x[s, j, 2], boxes[c, 2])
    return d0, d1, d2, d0 * d0 + d1 * d1 + d2 * d2


def min_image_np(d, box):
    """NumPy minimum image of displacements ``d`` (..., 3) in ``box`` (3,) (0 entries: open)."""
    d = np.asarray(d, dtype=np.float64)
    box = np.asarray(box, dtype=np.float64)
    per = box > 0
    out = d.copy()
    out[..., per] -= box[per] * np.floor(d[..., per] / box[per] + 0.5)
    return out
