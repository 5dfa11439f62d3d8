"""Costs that any System can be given: trajectory matching for system identification.

``TrajectoryMatch(system, observed={"q": q_obs})`` is the same system with the loss

    L = sum_{t=0..T} sum_f w_f ||x_t[f] - observed_f[t]||^2

(plus the system's own costs with ``keep_own_cost=True``): the classic least-squares fit of
physical parameters to a recorded trajectory (masses, stiffnesses, restitution, friction).
"""

import numpy as np
import taichi as ti

from .errors import ConfigError
from .runtime import config
from .tape import System, launch

_A1 = ti.types.ndarray(ndim=1)


@ti.kernel
def _match2(x: ti.types.ndarray(ndim=2), obs: ti.types.ndarray(ndim=2), w: _A1,
            slot0: ti.i32, t0: ti.i32, t1: ti.i32, loss: _A1):
    for t, i in ti.ndrange((t0, t1), x.shape[1]):
        d = x[slot0 + t - t0, i] - obs[t, i]
        loss[0] += w[0] * d * d


@ti.kernel
def _match3(x: ti.types.ndarray(ndim=3), obs: ti.types.ndarray(ndim=3), w: _A1,
            slot0: ti.i32, t0: ti.i32, t1: ti.i32, loss: _A1):
    for t, i, k in ti.ndrange((t0, t1), x.shape[1], x.shape[2]):
        d = x[slot0 + t - t0, i, k] - obs[t, i, k]
        loss[0] += w[0] * d * d


class TrajectoryMatch(System):
    """``system`` with a least-squares trajectory-matching loss on the observed fields.

    observed: {field: array (T+1, *shape)}, the states x_0..x_T that were recorded (NaN-free).
    weights: {field: weight} (default 1 per field), in 1/(unit of the field)^2.
    keep_own_cost: also keep the wrapped system's running and terminal costs.
    """

    def __init__(self, system: System, observed: dict, weights: dict | None = None,
                 keep_own_cost: bool = False):
        self.system = system
        self.state_shapes = dict(system.state_shapes)
        self.control_shapes = dict(system.control_shapes)
        self.segment = system.segment
        self.advance = system.advance  # None, or the bound fused method
        self.keep_own_cost = keep_own_cost
        dtype = config().numpy_real
        self.observed, self.weights, self.steps = {}, {}, None
        for name, value in observed.items():
            if name not in self.state_shapes:
                raise ConfigError(f"observed field '{name}' is not a state field of {type(system).__name__}; "
                                  f"fields are {list(self.state_shapes)}")
            value = np.asarray(value, dtype=np.float64)
            shape = self.state_shapes[name]
            if value.ndim != len(shape) + 1 or value.shape[1:] != shape:
                raise ConfigError(f"observed '{name}' must have shape (T+1, *{shape}), got {value.shape}")
            if self.steps is not None and value.shape[0] - 1 != self.steps:
                raise ConfigError("every observed field must cover the same T+1 states")
            if not np.all(np.isfinite(value)):
                raise ConfigError(f"observed '{name}' holds NaN or Inf")
            self.steps = value.shape[0] - 1
            arr = ti.ndarray(config().real, value.shape)
            arr.from_numpy(value.astype(dtype))
            w = ti.ndarray(config().real, 1)
            w.from_numpy(np.array([(weights or {}).get(name, 1.0)], dtype=dtype))
            self.observed[name], self.weights[name] = arr, w
        if not self.observed:
            raise ConfigError("TrajectoryMatch needs at least one observed field")

    def parameters(self):
        return self.system.parameters()

    def initial_state(self):
        return self.system.initial_state()

    def step(self, x, u, src, dst, t):
        return self.system.step(x, u, src, dst, t)

    def divergence_hint(self):
        return self.system.divergence_hint()

    def plausible_magnitudes(self):
        return self.system.plausible_magnitudes()

    def trajectory_costs(self):
        return self.system.trajectory_costs() if self.keep_own_cost else []

    def __getattr__(self, name):
        # anything else the wrapped system offers (control_limits(), dt, n, dim, ...) is its own
        if name == "system":
            raise AttributeError(name)
        return getattr(self.system, name)

    def validate(self, steps):
        if steps != self.steps:
            raise ConfigError(f"the observed trajectory has {self.steps} steps (T+1 = {self.steps + 1} states); "
                              f"a rollout of {steps} steps cannot be matched to it")
        self.system.validate(steps)

    def _match(self, x, slot0, t0, t1, loss):
        out = []
        for name, obs in self.observed.items():
            kernel = _match2 if len(self.state_shapes[name]) == 1 else _match3
            out.append(launch(kernel, x[name], obs, self.weights[name], slot0, t0, t1, loss))
        return out

    def running_cost(self, x, u, slot0, t0, t1, loss):
        own = list(self.system.running_cost(x, u, slot0, t0, t1, loss)) if self.keep_own_cost else []
        return own + self._match(x, slot0, t0, t1, loss)

    def terminal_cost(self, x, slot, loss):
        own = list(self.system.terminal_cost(x, slot, loss)) if self.keep_own_cost else []
        return own + self._match(x, slot, self.steps, self.steps + 1, loss)
