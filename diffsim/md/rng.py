"""Counter-based Gaussian noise for Taichi kernels.

``gauss(seed, step, index)`` is a pure function of three integers: an integer hash
(Chris Wellons' "lowbias32" finaliser, applied in a Philox-like cascade over the keys)
gives two 24-bit uniforms that Box-Muller turns into one standard normal. Recomputing a
step during the adjoint sweep therefore draws bit-identical noise, with no RNG state.
"""

import taichi as ti


@ti.func
def hash32(x):
    """lowbias32 integer hash of a u32 (bias ~0.17 in Wellons' avalanche test)."""
    y = ti.cast(x, ti.u32)
    y ^= y >> 16
    y *= ti.u32(0x7FEB352D)
    y ^= y >> 15
    y *= ti.u32(0x846CA68B)
    y ^= y >> 16
    return y


@ti.func
def uniform2(seed, step, index):
    """Two uniforms (u1 in (0, 1], u2 in [0, 1)) keyed by (seed, step, index)."""
    k = hash32(ti.cast(seed, ti.u32) * ti.u32(0x9E3779B1)
               + hash32(ti.cast(step, ti.u32) * ti.u32(0x85EBCA77) + hash32(ti.cast(index, ti.u32))))
    h1 = hash32(k ^ ti.u32(0x68E31DA4))
    h2 = hash32(k ^ ti.u32(0xB5297A4D))
    u1 = (ti.cast(h1 >> 8, ti.f64) + 1.0) / 16777216.0
    u2 = ti.cast(h2 >> 8, ti.f64) / 16777216.0
    return u1, u2


@ti.func
def gauss(seed, step, index):
    """Standard normal keyed by (seed, step, index) (|value| <= 5.8 by construction)."""
    u1, u2 = uniform2(seed, step, index)
    return ti.sqrt(-2.0 * ti.log(u1)) * ti.cos(6.283185307179586 * u2)
