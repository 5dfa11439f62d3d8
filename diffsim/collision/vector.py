"""Small vector helpers for the differentiated contact kernels.

``ti.Vector.dot`` in Taichi 1.7.4 is three nested function calls (``dot``, ``sum``, a reduce)
that copy their arguments and sum into a local assigned three times; in a gradient kernel compiled
without Taichi's control-flow optimisation (``LeanAdjoint``) every such local inside the kernel's
loop becomes an adstack (the impulse model's box-pair contact kernel held 32). :func:`dot3` is
one call and one expression, summed in the same order ((a0 b0 + a1 b1) + a2 b2)."""

import taichi as ti


@ti.func
def dot3(a, b):
    """a . b of two 3-vectors."""
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


__all__ = ["dot3"]
