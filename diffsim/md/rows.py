"""Pair parameters copied into one row per atom for the differentiable pair kernel
(:class:`RowParameters`): why, and the adjoint that sums them back."""

import taichi as ti

from ..runtime import config

_A1 = ti.types.ndarray(ndim=1)
_A2 = ti.types.ndarray(ndim=2)
_A3 = ti.types.ndarray(ndim=3)


@ti.kernel
def _spread_rows(p0: _A1, p1: _A1, p2: _A1, r0: _A2, r1: _A2, r2: _A2, g0: _A2, g1: _A2, g2: _A2):
    for i, p in ti.ndrange(r0.shape[0], r0.shape[1]):
        r0[i, p] = p0[p]
        r1[i, p] = p1[p]
        r2[i, p] = p2[p]
        g0[i, p] = 0.0
        g1[i, p] = 0.0
        g2[i, p] = 0.0


@ti.kernel
def _collect_rows(g0: _A2, g1: _A2, g2: _A2, pg0: _A1, pg1: _A1, pg2: _A1, p: ti.i32):
    s0 = 0.0  # kernel-level sums: per-thread partial sums, one atomic add per thread
    s1 = 0.0
    s2 = 0.0
    for i in range(g0.shape[0]):
        s0 += g0[i, p]
        s1 += g1[i, p]
        s2 += g2[i, p]
        g0[i, p] = 0.0
        g1[i, p] = 0.0
        g2[i, p] = 0.0
    pg0[p] += s0
    pg1[p] += s1
    pg2[p] += s2


class RowParameters:
    """A tape launch that copies a pair potential's parameters (packed per type pair) into one
    row per atom, for the differentiable pair kernel to read.

    Why: the reverse pass adds every pair's parameter gradient into the parameter it read. Read
    from one shared element, that is an atomic add on one address from every pair, and two
    threads fighting over it made the whole reverse pass 2x slower (13-15 against 7.2-7.6 ms
    at N = 4,000). Read from the row of atom i, each thread adds into its own rows. The adjoint
    of this launch sums the rows into the parameters' gradients and zeroes them (the forward
    zeroes them too, so an interrupted sweep leaves nothing behind)."""

    def __init__(self, arrays, n):
        self.arrays = arrays
        real, npair = config().real, arrays[0].shape[0]
        self.rows = [ti.ndarray(real, (n, npair), needs_grad=True) for _ in arrays]

    def __call__(self):
        _spread_rows(*self.arrays, *self.rows, *(r.grad for r in self.rows))

    def grad(self):
        for p in range(self.arrays[0].shape[0]):
            _collect_rows(*(r.grad for r in self.rows), *(a.grad for a in self.arrays), p)
