"""Reference system: a hanging chain of point masses joined by nonlinear springs.

Node 0 hangs from a fixed anchor at height 0; node i from node i-1. Heights q (m, up is +),
velocities v (m/s). The spring between nodes i-1 and i, with extension e = q[i-1] - q[i] - l0,
pulls with k (e + kappa e^3) and damps with c (v[i-1] - v[i]). Gravity g acts on every node
and the control force u[t] (N, up is +) on the free end. Semi-implicit Euler:

    v[t+1, i] = v[t, i] + dt F_i(q[t], v[t], u[t]) / m_i
    q[t+1, i] = q[t, i] + dt v[t+1, i]

Parameters fitted through the tape: ``stiffness`` k (N/m), ``damping`` c (N s/m), ``mass``
m_i (kg, one per node). Loss: ``dt * sum_t [effort u_t^2 + tracking (q_tip(t) - target)^2]
+ (q_tip(T) - target)^2 + velocity_weight * sum_i v_i(T)^2``. Offers both a per-step ``step`` and a fused ``advance``.
"""

from typing import ClassVar

import numpy as np
import taichi as ti

from .errors import ConfigError
from .runtime import config
from .tape import System, launch

_A1 = ti.types.ndarray(ndim=1)
_A2 = ti.types.ndarray(ndim=2)

# consts layout: dt, g, rest length l0, kappa, effort weight, target height, terminal velocity
# weight, running tracking weight
DT, G, L0, KAPPA, EFFORT, TARGET, WV, TRACK = range(8)


@ti.func
def _spring(e, k, kappa):
    return k * (e + kappa * e * e * e)


@ti.func
def _chain_update(q: ti.template(), v: ti.template(), k: ti.template(), c: ti.template(),
                  mass: ti.template(), u: ti.template(), cs: ti.template(), src, dst, t, i):
    """One node's semi-implicit Euler update from slot src to slot dst.

    Straight-line code, every local assigned once: neighbours are read at clamped indices and
    masked (node 0's upper neighbour is the anchor at height 0, the tip has none below), which
    keeps Taichi's reverse mode off its adstack (several times faster in fused loops).
    """
    n = q.shape[1]
    up = ti.max(i - 1, 0)
    down = ti.min(i + 1, n - 1)
    has_up = ti.select(i > 0, 1.0, 0.0)
    has_down = ti.select(i < n - 1, 1.0, 0.0)
    q_up = has_up * q[src, up]
    v_up = has_up * v[src, up]
    e_up = q_up - q[src, i] - cs[L0]
    e_down = q[src, i] - q[src, down] - cs[L0]
    f_up = _spring(e_up, k[0], cs[KAPPA]) + c[0] * (v_up - v[src, i])
    f_down = has_down * (_spring(e_down, k[0], cs[KAPPA]) + c[0] * (v[src, i] - v[src, down]))
    f = f_up - f_down - mass[i] * cs[G] + (1.0 - has_down) * u[t, 0]
    vn = v[src, i] + cs[DT] * f / mass[i]
    v[dst, i] = vn
    q[dst, i] = q[src, i] + cs[DT] * vn


@ti.kernel
def chain_step(q: _A2, v: _A2, k: _A1, c: _A1, mass: _A1, u: _A2, cs: _A1,
               src: ti.i32, dst: ti.i32, t: ti.i32):
    for i in range(q.shape[1]):
        _chain_update(q, v, k, c, mass, u, cs, src, dst, t, i)


@ti.kernel
def chain_advance(q: _A2, v: _A2, k: _A1, c: _A1, mass: _A1, u: _A2, cs: _A1,
                  slot0: ti.i32, t0: ti.i32, t1: ti.i32):
    for _ in range(1):  # one serial time loop; the node loop inside is serial too
        for t in range(t0, t1):
            for i in range(q.shape[1]):
                _chain_update(q, v, k, c, mass, u, cs, slot0 + t - t0, slot0 + t - t0 + 1, t, i)


@ti.kernel
def chain_running_cost(q: _A2, u: _A2, cs: _A1, slot0: ti.i32, t0: ti.i32, t1: ti.i32, loss: _A1):
    for t in range(t0, t1):
        d = q[slot0 + t - t0, q.shape[1] - 1] - cs[TARGET]
        loss[0] += cs[DT] * (cs[EFFORT] * u[t, 0] * u[t, 0] + cs[TRACK] * d * d)


@ti.kernel
def chain_terminal(q: _A2, v: _A2, cs: _A1, slot: ti.i32, loss: _A1):
    for i in range(q.shape[1]):
        if i == q.shape[1] - 1:
            d = q[slot, i] - cs[TARGET]
            loss[0] += d * d
        loss[0] += cs[WV] * v[slot, i] * v[slot, i]


class MassSpringChain(System):
    """n masses on nonlinear springs under gravity, driven at the free end (see module doc).

    n: nodes; dt: time step (s); stiffness (N/m), damping (N s/m), mass (kg, scalar or (n,)),
    rest_length l0 (m), kappa (1/m^2, cubic stiffening), gravity g (m/s^2, downward),
    effort (loss weight on u^2, 1/(N^2 s)), tracking (weight on the tip's distance to the target,
    1/(m^2 s)), target (tip height, m; default n*l0 below the anchor), velocity_weight (terminal
    weight on sum v^2, s^2/m^2), segment (steps per fused launch), fused (offer ``advance``).
    """

    control_shapes: ClassVar[dict] = {"force": (1,)}

    def __init__(self, n=8, dt=0.01, stiffness=200.0, damping=0.5, mass=0.1, rest_length=0.1,
                 kappa=50.0, gravity=9.81, effort=1e-3, target=None, velocity_weight=0.01,
                 tracking=1.0, segment=50, fused=True):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ConfigError(f"a chain needs a whole number n >= 1 of nodes, got n={n!r}")
        n = int(n)
        mass = np.broadcast_to(np.asarray(mass, dtype=np.float64), (n,)).copy()
        if np.any(mass <= 0) or not np.all(np.isfinite(mass)):
            i = int(np.argmax(~(mass > 0)))
            raise ConfigError(f"mass of node {i} is {mass[i]} kg: masses must be positive and finite")
        if not (dt > 0 and stiffness >= 0 and damping >= 0 and np.isfinite([dt, stiffness, damping]).all()):
            raise ConfigError(f"need dt > 0, stiffness >= 0, damping >= 0; got dt={dt}, "
                              f"stiffness={stiffness}, damping={damping}")
        self.n, self.dt = n, dt
        self.state_shapes = {"q": (n,), "v": (n,)}
        self.segment = segment
        if not fused:
            self.advance = None
        real = config().real
        self.k = ti.ndarray(real, 1, needs_grad=True)
        self.c = ti.ndarray(real, 1, needs_grad=True)
        self.mass = ti.ndarray(real, n, needs_grad=True)
        self.consts = ti.ndarray(real, 8)
        self.rest_length = rest_length
        self.set_parameters(stiffness=stiffness, damping=damping, mass=mass)
        if target is None:
            target = -n * rest_length
        self.target = target
        consts = np.zeros(8)
        consts[[DT, G, L0, KAPPA, EFFORT, TARGET, WV, TRACK]] = [
            dt, gravity, rest_length, kappa, effort, target, velocity_weight, tracking]
        self.consts.from_numpy(consts.astype(config().numpy_real))

    def set_parameters(self, stiffness=None, damping=None, mass=None):
        """Write parameter values (N/m, N s/m, kg)."""
        dtype = config().numpy_real
        if stiffness is not None:
            self.k.from_numpy(np.array([stiffness], dtype=dtype))
        if damping is not None:
            self.c.from_numpy(np.array([damping], dtype=dtype))
        if mass is not None:
            self.mass.from_numpy(np.broadcast_to(np.asarray(mass, dtype=dtype), (self.n,)).copy())

    def parameters(self):
        return {"stiffness": self.k, "damping": self.c, "mass": self.mass}

    def initial_state(self):
        """At rest with springs at rest length: nodes at -l0, -2 l0, ... (m)."""
        return {"q": -self.rest_length * np.arange(1, self.n + 1, dtype=np.float64),
                "v": np.zeros(self.n)}

    def _args(self, x, u):
        return (x.q, x.v, self.k, self.c, self.mass, u.force, self.consts)

    def step(self, x, u, src, dst, t):
        return [launch(chain_step, *self._args(x, u), src, dst, t)]

    def advance(self, x, u, slot0, t0, t1):
        """Steps t0..t1-1 in one fused launch (see :class:`diffsim.System`)."""
        return [launch(chain_advance, *self._args(x, u), slot0, t0, t1)]

    def running_cost(self, x, u, slot0, t0, t1, loss):
        return [launch(chain_running_cost, x.q, u.force, self.consts, slot0, t0, t1, loss)]

    def terminal_cost(self, x, slot, loss):
        return [launch(chain_terminal, x.q, x.v, self.consts, slot, loss)]

    def plausible_magnitudes(self):
        """A chain of length L = n l0 whose nodes are farther than 1000 L from the anchor (m), or
        move faster than 1000 L per step (m/s), has diverged, however finite the numbers."""
        reach = 1e3 * max(self.n * self.rest_length, 1e-3)
        return {"q": reach, "v": reach / self.dt}

    def divergence_hint(self):
        return (f"reduce dt (now {self.dt} s) or the stiffness; explicit integration of a spring of "
                f"stiffness k and mass m needs dt < 2 sqrt(m/k)")


__all__ = ["MassSpringChain"]
