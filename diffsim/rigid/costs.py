"""Cost terms of rigid-body rollouts; a RigidSystem's loss is the sum of its ``costs``.

Every term follows the one protocol of :mod:`diffsim.costs` (:class:`diffsim.costs.Cost`):
launches for its running part (sum over steps t0 <= t < t1, state t in slot slot0 + t - t0,
controls u_t) and its terminal part (state T). The ready costs of :mod:`diffsim.costs`
(``ApexHeight``, ``MinimumDistance``, ``FirstContactTime``, ``FinalDistance``, ``NumpyCost``)
go in the same list. Positions in m, orientations as quaternions (3D) or angles (2D).

- :class:`BodyTarget`: w |x_T[b] - target|^2 (m^2), e.g. a billiard ball into a pocket.
- :class:`PoseMatch`: (w_x |x_t - x_obs,t|^2 + w_r r(q_t, q_obs,t)) averaged over the
  T + 1 states and summed over bodies, with r = 1 - (q . q_obs)^2 in 3D (sign-blind, 0 when
  equal) and 1 - cos(theta - theta_obs) in 2D: system identification from observed poses.
  Unlike the generic :class:`diffsim.costs.TrajectoryMatch` (least squares on any state field),
  it measures rotations, so quaternions recorded elsewhere (q and -q are the same
  orientation) and angles that wrapped by 2 pi match.
- :class:`Upright`: w sum_b (R(q_b) a . up)^2: how upright bodies with axis a still stand
  (bowling pins: minimise it to knock them over).
"""


import numpy as np
import taichi as ti

from ..costs import Cost
from ..errors import ConfigError
from ..rotations import quat_rotate
from ..runtime import config
from ..tape import launch
from .kernels import load_quat, load_vec

_A = ti.types.ndarray()
T = ti.template()


@ti.kernel
def body_target_cost(X: _A, slot: ti.i32, body: ti.i32, target: _A, w: float, loss: _A, dim: T):
    for _ in range(1):
        goal = ti.Vector([target[0], target[1], 0.0])
        if ti.static(dim == 3):
            goal = ti.Vector([target[0], target[1], target[2]])
        d = load_vec(X, slot, body, dim) - goal
        loss[0] += w * d.dot(d)


@ti.func
def _match_term(X: T, Q: T, obs_x: T, obs_q: T, wx, wr, s, t, i, dim: T):
    d = load_vec(X, s, i, dim) - load_vec(obs_x, t, i, dim)
    r = 0.0
    if ti.static(dim == 3):
        q = load_quat(Q, s, i, dim)
        qo = load_quat(obs_q, t, i, dim)
        c = q.dot(qo)
        r = 1.0 - c * c
    else:
        r = 1.0 - ti.cos(Q[s, i] - obs_q[t, i])
    return wx * d.dot(d) + wr * r


@ti.kernel
def match_running(X: _A, Q: _A, obs_x: _A, obs_q: _A, wx: float, wr: float, slot0: ti.i32, t0: ti.i32,
                  t1: ti.i32, loss: _A, dim: T):
    for t, i in ti.ndrange((t0, t1), X.shape[1]):
        loss[0] += _match_term(X, Q, obs_x, obs_q, wx, wr, slot0 + t - t0, t, i, dim)


@ti.kernel
def match_terminal(X: _A, Q: _A, obs_x: _A, obs_q: _A, wx: float, wr: float, slot: ti.i32, t: ti.i32,
                   loss: _A, dim: T):
    for i in range(X.shape[1]):
        loss[0] += _match_term(X, Q, obs_x, obs_q, wx, wr, slot, t, i, dim)


@ti.kernel
def upright_cost(Q: _A, slot: ti.i32, bodies: _A, axis: _A, up: _A, w: float, loss: _A):
    for k in range(bodies.shape[0]):
        q = load_quat(Q, slot, bodies[k], 3)
        a = quat_rotate(q, ti.Vector([axis[0], axis[1], axis[2]]))
        c = a.dot(ti.Vector([up[0], up[1], up[2]]))
        loss[0] += w * c * c


def _real_array(values):
    values = np.asarray(values, dtype=np.float64)
    arr = ti.ndarray(config().real, values.shape)
    arr.from_numpy(values.astype(config().numpy_real))
    return arr


class BodyTarget(Cost):
    """Terminal w |x_T[body] - target|^2 (m^2 times weight)."""

    def __init__(self, body: int, target, weight: float = 1.0):
        self.body, self.weight = int(body), float(weight)
        self.target_np = np.asarray(target, dtype=np.float64).reshape(-1)
        self.target = _real_array(self.target_np)

    def terminal(self, system, x, slot, loss):
        if self.target_np.size != system.dim or not 0 <= self.body < system.n:
            raise ConfigError(f"BodyTarget: body {self.body} / target {self.target_np} do not fit a "
                              f"{system.dim}D scene of {system.n} bodies")
        return [launch(body_target_cost, x.x, slot, self.body, self.target, self.weight, loss, system.dim)]


class PoseMatch(Cost):
    """Mean over the T + 1 states of sum_b (w_x |x - x_obs|^2 + w_r r(q, q_obs)).

    positions: observed (T + 1, n, dim) m; orientations: observed (T + 1, n, 4) quaternions (3D)
    or (T + 1, n) angles (2D), or None with weight_rotation 0.
    """

    def __init__(self, positions, orientations=None, weight_position: float = 1.0, weight_rotation: float = 0.0):
        pos = np.asarray(positions, dtype=np.float64)
        if pos.ndim != 3:
            raise ConfigError(f"PoseMatch positions must be (T + 1, n, dim), got {pos.shape}")
        self.steps = pos.shape[0] - 1
        if orientations is None:
            if weight_rotation:
                raise ConfigError("PoseMatch: weight_rotation needs observed orientations")
            orientations = (np.tile([1.0, 0, 0, 0], pos.shape[:2] + (1,)) if pos.shape[2] == 3
                            else np.zeros(pos.shape[:2]))
        ori = np.asarray(orientations, dtype=np.float64)
        if ori.shape[:2] != pos.shape[:2]:
            raise ConfigError(f"orientations {ori.shape} do not match positions {pos.shape}")
        scale = 1.0 / (self.steps + 1)
        self.wx, self.wr = float(weight_position) * scale, float(weight_rotation) * scale
        self.shape = pos.shape
        self.obs_x, self.obs_q = _real_array(pos), _real_array(ori)

    def _check(self, system, t1):
        if self.shape[1:] != (system.n, system.dim) or t1 > self.steps:
            raise ConfigError(f"PoseMatch holds {self.steps} steps of {self.shape[1]} bodies in "
                              f"{self.shape[2]}D; the rollout has {system.n} bodies in {system.dim}D and reaches "
                              f"step {t1}")

    def running(self, system, x, u, slot0, t0, t1, loss):
        self._check(system, t1)
        return [launch(match_running, x.x, x[system.orientation], self.obs_x, self.obs_q, self.wx, self.wr,
                       slot0, t0, t1, loss, system.dim)]

    def terminal(self, system, x, slot, loss):
        return [launch(match_terminal, x.x, x[system.orientation], self.obs_x, self.obs_q, self.wx, self.wr,
                       slot, self.steps, loss, system.dim)]


class Upright(Cost):
    """Terminal w sum_b (R(q_b) axis . up)^2 over ``bodies`` (3D): 1 per standing body along
    ``axis`` (body frame), 0 when lying flat."""

    def __init__(self, bodies, axis=(1.0, 0.0, 0.0), up=(0.0, 0.0, 1.0), weight: float = 1.0):
        b = np.asarray(bodies, dtype=np.int32).reshape(-1)
        self.bodies = ti.ndarray(ti.i32, b.size)
        self.bodies.from_numpy(b)
        self.axis, self.up = _real_array(axis), _real_array(up)
        self.weight = float(weight)

    def terminal(self, system, x, slot, loss):
        if system.dim != 3:
            raise ConfigError("Upright is a 3D cost")
        return [launch(upright_cost, x.q, slot, self.bodies, self.axis, self.up, self.weight, loss)]


__all__ = ["BodyTarget", "Cost", "PoseMatch", "Upright"]
