"""Periodic space: the minimum-image convention inside kernels, and its NumPy twin.

A box is three edge lengths (orthorhombic); an edge of 0 means that axis is open (not periodic).
A triclinic cell follows LAMMPS: cell vectors a = (lx, 0, 0), b = (xy, ly, 0), c = (xz, yz, lz)
(the rows of a lower-triangular 3x3 matrix), held as lengths (lx, ly, lz) and tilts
(xy, xz, yz). Kernels read one row per configuration, ``boxes[c] = (lx, ly, lz, xy, xz, yz)``.

The minimum image of a displacement d in a triclinic cell is LAMMPS's: fold along c first
(``n = floor(dz / lz + 1/2)``, ``d -= n c``), then along b, then along a. The result lies in the
orthorhombic region [-lx/2, lx/2) x [-ly/2, ly/2) x [-lz/2, lz/2), which is a fundamental domain
of the lattice; so it is the true minimum image of every displacement shorter than
min(lx, ly, lz) / 2, whatever the tilt (:func:`max_cutoff` is that bound, checked by the
neighbour lists). With zero tilts it is the orthorhombic fold, bitwise.

Positions are never wrapped by the integrators: they stay continuous (unwrapped), which keeps
mean squared displacements and gradients simple; distances always go through the minimum image.
"""

import numpy as np
import taichi as ti

from ..errors import ConfigError


@ti.func
def min_image(d, length):
    """Minimum image of one displacement component ``d`` in a box edge ``length`` (0: open axis).

    Uses floor, whose gradient is zero, never round (not differentiable in Taichi 1.7.4)."""
    # branch-free (a select, no mutated local): mutable locals inside dynamic loops need Taichi's
    # AD stack, which overflows (segfault) at ~32 iterations
    safe = ti.max(length, 1e-30)
    return ti.select(length > 0, d - length * ti.floor(d / safe + 0.5), d)


@ti.func
def min_image_scaled(e0, e1, e2, l0, l1, l2, i0, i1, i2):
    """Orthorhombic minimum image of (e0, e1, e2) with the box edges (l0, l1, l2) (0: an open
    axis) and their inverses i_k = 1 / max(l_k, 1e-30) held in registers by the caller: a
    multiplication per component where :func:`min_image` divides (for loops over many pairs
    of one atom; not for differentiated kernels' inner loops, see min_image)."""
    return (ti.select(l0 > 0, e0 - l0 * ti.floor(e0 * i0 + 0.5), e0),
            ti.select(l1 > 0, e1 - l1 * ti.floor(e1 * i1 + 0.5), e1),
            ti.select(l2 > 0, e2 - l2 * ti.floor(e2 * i2 + 0.5), e2))


@ti.func
def _images(d, length):
    """Whole periods to take off ``d`` along an edge ``length`` (0: open axis, no image)."""
    safe = ti.max(length, 1e-30)
    return ti.select(length > 0, ti.floor(d / safe + 0.5), 0.0)


@ti.func
def _fold_orthorhombic(e0, e1, e2, boxes: ti.template(), c):
    return min_image(e0, boxes[c, 0]), min_image(e1, boxes[c, 1]), min_image(e2, boxes[c, 2])


@ti.func
def _fold_triclinic(e0, e1, e2, boxes: ti.template(), c):
    # straight-line, no mutated locals (they would need the AD stack inside the pair loops)
    n2 = _images(e2, boxes[c, 2])
    f1 = e1 - n2 * boxes[c, 5]
    n1 = _images(f1, boxes[c, 1])
    f0 = e0 - n2 * boxes[c, 4] - n1 * boxes[c, 3]
    return f0 - _images(f0, boxes[c, 0]) * boxes[c, 0], f1 - n1 * boxes[c, 1], e2 - n2 * boxes[c, 2]


@ti.func
def fold(e0, e1, e2, boxes: ti.template(), c, tilted: ti.template()):
    """Minimum image (d0, d1, d2) of the displacement (e0, e1, e2) in configuration c's cell
    (``boxes[c] = (lx, ly, lz, xy, xz, yz)``; see the module doc). ``tilted`` is compile-time:
    False compiles the orthorhombic fold of each component (tilts not read), True the triclinic
    fold (with zero tilts it gives the orthorhombic result bitwise)."""
    return ti.static(_fold_triclinic if tilted else _fold_orthorhombic)(e0, e1, e2, boxes, c)


@ti.func
def displacement(x: ti.template(), s, i, j, boxes: ti.template(), c, tilted: ti.template()):
    """Minimum-image components of x[s, i] - x[s, j] in configuration c's cell (``tilted``:
    compile-time, see :func:`fold`), and their square length (d0, d1, d2, r2)."""
    d0, d1, d2 = fold(x[s, i, 0] - x[s, j, 0], x[s, i, 1] - x[s, j, 1], x[s, i, 2] - x[s, j, 2], boxes, c, tilted)
    return d0, d1, d2, d0 * d0 + d1 * d1 + d2 * d2


def cell_rows(box, tilt=None) -> np.ndarray:
    """Kernel rows (nconf, 6) = (lx, ly, lz, xy, xz, yz) from ``box`` (3,) or (nconf, 3) and
    ``tilt`` (xy, xz, yz), (3,) or (nconf, 3) (default zero)."""
    box = np.atleast_2d(np.asarray(box, dtype=np.float64))
    tilt = np.zeros_like(box) if tilt is None else np.broadcast_to(np.asarray(tilt, dtype=np.float64), box.shape)
    return np.concatenate([box, tilt], axis=1)


def cell_matrix(box, tilt=None) -> np.ndarray:
    """The lower-triangular cell (3, 3), rows a, b, c, from lengths (3,) and tilts (xy, xz, yz)."""
    lx, ly, lz = np.asarray(box, dtype=np.float64)
    xy, xz, yz = np.zeros(3) if tilt is None else np.asarray(tilt, dtype=np.float64)
    return np.array([[lx, 0.0, 0.0], [xy, ly, 0.0], [xz, yz, lz]])


def max_cutoff(box) -> float:
    """Largest cutoff (length) the minimum image serves exactly in a cell of lengths ``box``
    (3,), any tilts: half the smallest periodic length (inf when every axis is open)."""
    box = np.asarray(box, dtype=np.float64)
    per = box[box > 0]
    return 0.5 * float(per.min()) if per.size else float("inf")


def check_cutoff(cutoff, box, tilt=None, what="configuration 0", skin=0.0):
    """ConfigError when the list radius ``cutoff + skin`` is beyond :func:`max_cutoff` of the
    cell (lengths ``box``)."""
    limit = max_cutoff(box)
    if cutoff + skin > limit:
        shape = "triclinic cell" if tilt is not None and np.any(np.asarray(tilt) != 0) else "box"
        radius = f"cutoff {cutoff:.6g}" + (f" + skin {skin:.6g} = {cutoff + skin:.6g}" if skin else "")
        raise ConfigError(
            f"{what}: {radius} is beyond the largest the minimum image serves in this {shape} "
            f"(lengths {np.asarray(box).tolist()}), {limit:.6g} = half the smallest length; use a larger cell "
            f"(replicate it), a shorter cutoff or a smaller skin")


def min_image_np(d, box, tilt=None):
    """NumPy minimum image of displacements ``d`` (..., 3) in ``box`` (3,) (0 entries: open) with
    optional tilts (xy, xz, yz) (the same fold as the kernels)."""
    d = np.asarray(d, dtype=np.float64)
    box = np.asarray(box, dtype=np.float64)
    if tilt is not None and np.any(np.asarray(tilt) != 0):
        xy, xz, yz = np.asarray(tilt, dtype=np.float64)
        out = d.copy()
        n2 = np.floor(out[..., 2] / box[2] + 0.5) if box[2] > 0 else 0.0
        out[..., 2] -= n2 * box[2]
        out[..., 1] -= n2 * yz
        out[..., 0] -= n2 * xz
        n1 = np.floor(out[..., 1] / box[1] + 0.5) if box[1] > 0 else 0.0
        out[..., 1] -= n1 * box[1]
        out[..., 0] -= n1 * xy
        if box[0] > 0:
            out[..., 0] -= box[0] * np.floor(out[..., 0] / box[0] + 0.5)
        return out
    per = box > 0
    out = d.copy()
    out[..., per] -= box[per] * np.floor(d[..., per] / box[per] + 0.5)
    return out
