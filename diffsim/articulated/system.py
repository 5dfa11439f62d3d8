"""A batch of robots as a tape System: fused Euler steps of ABA forward dynamics.

State per step: joint positions ``q`` and velocities ``qd``, (B, nb) (rad or m, rad/s or m/s).
Control per step: joint torques/forces ``tau``, (B, nb) (N m or N). Parameters (fitted through
the tape, one value per robot): ``mass`` (B, nb), ``com`` (B, nb, 3), ``inertia`` (B, nb, 6),
``joint_offset`` (B, nb, 3), ``damping`` (B, nb), ``armature`` (B, nb) (see
:mod:`~diffsim.articulated.model`). Step (dt in s)::

    qdd_t   = ABA(q_t, qd_t, tau_t)                  (with damping, soft limits, ground contact)
    qd_t+1  = qd_t + dt qdd_t
    q_t+1   = q_t + dt qd_t+1

``integrator`` (:class:`Integrator`): ``"semi_implicit_euler"`` (the default) as above;
``"implicit_euler_damping"`` the same with the joint damping D stepped implicitly,
(M + diag(armature) + dt D) qdd_t = tau - D qd_t - h(q_t, qd_t) + ..., i.e. backward Euler in the
damping (qd_t+1 = qd_t / (1 + dt d / m) for a lone joint), stable at any damping where the
explicit step needs dt d / m < 2. Soft limits and velocity limits are stepped implicitly in
both (:mod:`~diffsim.articulated.limits`).

Both Euler steps take the velocity products (Coriolis, centrifugal, gyroscopic) explicitly, so
fast motion gains energy: a free double pendulum whirling at 5 / 10 / 20 rad/s, its elbow bent,
gains 3 / 12.5 / 55 % in 5 s at dt = 1 ms. ``"rk4"`` is the classic Runge-Kutta step on
(q, qd), ABA at each of its four stages with the torque tau_t held over the step::

    k1 = (qd, ABA(q, qd)),  k2 = f(x + dt/2 k1),  k3 = f(x + dt/2 k2),  k4 = f(x + dt k3)
    (q, qd)_t+1 = (q, qd)_t + dt/6 (k1 + 2 k2 + 2 k3 + k4)      (qd_t+1 through the velocity clamp)

fourth order, its energy error O(dt^4) (the same pendulum: 1e-9 relative in 5 s), and
differentiable like the others (its adjoint recomputes the four stages). It costs four ABAs a
step and compiles its own kernels when chosen (cold, a 3-link arm: ~4 s forward, ~9 s with
the gradient). The damping, soft limits and contact forces are evaluated at each stage with
the Euler steps' laws (the stops keep their added inertia, which makes them stable at any dt).
It serves the robots of the small kernel (below); the general kernel has no RK4 step yet (a
ConfigError says so).

Loss: the sum of the system's ``costs`` (the :mod:`diffsim.costs` protocol). The robots' own
:class:`Cost` (at most one; ``cost=`` is shorthand for it), summed over the robots::

    L = sum_t dt [ w_u |tau_t|^2 + sum_i wq_i (q_i - q*_i)^2 + wqd_i qd_i^2 + w_ee |x_ee(t) - x*(t)|^2 ]
        + sum_i wqT_i (q_i(T) - q*_i)^2 + wqdT_i qd_i(T)^2 + w_eeT |x_ee(T) - x*(T)|^2

x_ee is a point on a chosen link (m, world), x*(t) its target (a fixed point, one per robot, or
a trajectory of T+1 points for tracking). Its running terms are computed inside the step
kernel (the weights live in the system's arrays); other costs, e.g. a ``NumpyCost`` on "q",
add to it through the tape.

All B robots advance in one kernel launch per segment of steps (parallel over robots, serial
over time and bodies). Per-step intermediates live in a workspace of one segment (``data``,
Pinocchio's name; layout ``kernels.DATA``); the adjoint of a segment recomputes that segment's forward pass first when the workspace holds
another one (one extra forward per segment), so the workspace memory is O(segment), not O(T).

Small robots (fixed base, 1-DOF joints on coordinate axes in unrotated or axis-permuted joint
frames, at most ``small.MAX_BODIES`` bodies; contact points allowed) step through :mod:`~diffsim.articulated.small` instead (``step_kernel == "small"``): one
kernel compiled per tree, its bodies unrolled, joint axes and frames compile-time constants, no
workspace; the same dynamics to ~1e-14, measured 3-9x faster (issue-16 chain gradient, B = 1,024).
"""

import warnings
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from .. import costs as costs_module
from ..compat import launch_kernel
from ..errors import ConfigError, DeepStartWarning
from ..runtime import info as runtime_info
from ..tape import Launch, LeanAdjoint, System, adjoint_only, launch
from . import kernels as K
from . import small as S
from .dynamics import GroundContact, ModelArrays, check_quaternions, nd, point_position
from .limits import contact_effective_mass
from .model import BALL, Model, finite_number, positive_int, positive_number, real_array

_BIG = 2 ** 30
PLAUSIBLE_Q = 1e6
"""Largest plausible |q| (rad or m); beyond it the state is a divergence."""
PLAUSIBLE_QD = 1e4
"""Largest plausible |qd| (rad/s or m/s); beyond it the state is a divergence."""


@dataclass(eq=False)
class Cost(costs_module.Cost):
    """The robots' tracking and effort cost (see the module doc), a :class:`diffsim.costs.Cost`:
    give it to ``ArticulatedSystem(cost=...)`` or among its ``costs=[...]`` (at most one per
    system: its terms are computed inside the fused step kernel, with the weights the system
    installs). Per-joint entries are scalars or (nb,) arrays; ``q_target`` may also be (B, nb);
    ``ee_target`` (3,), (B, 3) or (T+1, B, 3) (indexed by time, the last row repeating). Units:
    effort 1/(N^2 m^2 s) (joint torques), q weights 1/(rad^2 s) running and 1/rad^2 terminal,
    end-effector weights 1/(m^2 s) and 1/m^2. Weights must be >= 0.

    ``running``: adds the running terms the step kernel wrote for steps t0..t1-1;
    ``terminal``: forward kinematics of the last state and the terminal terms.
    """

    effort: float = 0.0
    q_target: object = 0.0
    q_weight: object = 0.0
    qd_weight: object = 0.0
    q_weight_final: object = 0.0
    qd_weight_final: object = 0.0
    ee_link: str | None = None
    ee_point: tuple = (0.0, 0.0, 0.0)
    ee_target: object = field(default_factory=lambda: np.zeros(3))
    ee_weight: float = 0.0
    ee_weight_final: float = 0.0

    def _system(self, system):
        if not isinstance(system, ArticulatedSystem) or system.cost is not self:
            raise ConfigError("an articulated Cost must be given to the ArticulatedSystem it measures "
                              "(ArticulatedSystem(cost=...) or costs=[...], or system.set_cost(...)), not to a "
                              "Rollout or another system: its terms are computed inside the step kernel with the "
                              "weights the system installs")
        return system

    def running(self, system, x, u, slot0, t0, t1, loss):
        """sum_{t0 <= t < t1} of the running terms, written by the step kernel (one launch; none
        when the cost has no running terms)."""
        system = self._system(system)
        if not system._running:
            return []
        _, cst = system._workspace(t1 - t0)
        return [launch(K.running_sum, cst, t1 - t0, loss)]

    def terminal(self, system, x, slot, loss):
        """Forward kinematics of the state in ``slot`` and the terminal terms (one launch)."""
        system = self._system(system)
        a = system.arrays
        if system._small:
            parents, geometry, _ = system._small
            ee = system.ee_body if a.cs_values[K.CONST.ee_weight_final] != 0.0 else -1
            args = (x.q, x.qd, a.params["joint_offset"], a.cs, system._qw, system._eet, slot, _BIG, loss, parents,
                    geometry, ee)
            return [Launch(LeanAdjoint(S.terminal_small), args)]
        args = (x.q, x.qd, a.params["joint_offset"], a.par, a.qix, a.vix, a.bc, a.cs, system._qw, system._eet,
                system._terminal_data, system.ee_body, slot, _BIG, loss, system.model.floating, a.revolute_only,
                a.ball)
        return [Launch(LeanAdjoint(K.terminal, _lean(system)), args)]


def _cost_list(cost, costs) -> list:
    """The system's cost terms: ``cost`` (the shorthand) first, then ``costs``; each a
    diffsim.costs.Cost, at most one articulated Cost."""
    if costs is None or isinstance(costs, (str, bytes)) or not hasattr(costs, "__iter__"):
        costs = [costs]
    out = ([] if cost is None else [cost]) + list(costs)
    for c in out:
        if not isinstance(c, costs_module.Cost):
            raise ConfigError(f"{c!r:.80} is not a cost: give a diffsim.articulated.Cost(...) or the ready and Python "
                              "costs of diffsim.costs (NumpyCost, TorchCost, ApexHeight, ...)")
    if sum(isinstance(c, Cost) for c in out) > 1:
        raise ConfigError("at most one articulated Cost per ArticulatedSystem (cost= and costs= together gave "
                          f"{sum(isinstance(c, Cost) for c in out)}): merge their weights into one Cost")
    return out


class Integrator(str, Enum):
    """Time stepping of :class:`ArticulatedSystem` (see the module doc); a string of the same
    value is accepted. ``SEMI_IMPLICIT_EULER``: qd' = qd + dt qdd, q' = q + dt qd' with every
    joint force explicit but the stops and velocity limits. ``IMPLICIT_EULER_DAMPING``: the same
    with the joint damping implicit, (M + dt D) qdd = tau - D qd - ... (stable at any damping).
    ``RK4``: classic Runge-Kutta on (q, qd), fourth order, for fast motion whose energy the Euler
    steps gain (small fixed-base robots only, ``step_kernel == "small"``)."""

    SEMI_IMPLICIT_EULER = "semi_implicit_euler"
    IMPLICIT_EULER_DAMPING = "implicit_euler_damping"
    RK4 = "rk4"


def _contact_heights(model: Model, q) -> np.ndarray:
    """World z (m) of each contact point's centre at configuration q (nq,), by NumPy forward
    kinematics (no kernel to compile): the fixed-base reference's body poses, carried by the
    free root's pose for a floating base."""
    from ..rotations import quat_to_matrix_np
    from .reference import body_poses

    body = np.asarray(model.contact_body, dtype=int)
    if not model.floating:
        R, P = body_poses(model, q)
    else:
        R0, p0 = quat_to_matrix_np(q[3:7]), q[:3]
        Rf, Pf = body_poses(model.fixed_base(), q[7:]) if model.nb > 1 else (np.zeros((0, 3, 3)), np.zeros((0, 3)))
        R = np.concatenate([R0[None], R0 @ Rf])
        P = np.concatenate([p0[None], p0 + Pf @ R0.T])
    return np.einsum("kj,kj->k", R[body, 2], model.contact_point) + P[body, 2]


def _integrator(value) -> Integrator:
    try:
        return Integrator(value)
    except ValueError:
        raise ConfigError(f"integrator must be one of {[i.value for i in Integrator]} (or diffsim.articulated."
                          f"Integrator), got {value!r}") from None


def _lean(system) -> bool:
    """Whether the step's and the terminal cost's adjoints compile lean
    (:class:`diffsim.tape.LeanAdjoint`): for robots with ground contact, whose gradient kernels
    are the large ones (the hopper's first gradient: 13.4 -> 7.1 CPU s cold); robots without
    keep Taichi's defaults, since they compile within 10 s anyway (arm_reach 9.2, cartpole 9.5
    CPU s) and their gradients may run a little faster with them (the issue-16 chain: min 6.6-8.4
    against 7.5-7.9 ms lean, within this machine's noise)."""
    return bool(system.arrays.contacts)


class _Advance(LeanAdjoint):
    """K.advance as a launchable that records which segment the workspace holds; its adjoint
    compiles lean for robots with ground contact (:func:`_lean`)."""

    def __init__(self, system, key):
        super().__init__(K.advance, _lean(system))
        self.system, self.key = system, key

    def __call__(self, *args):
        super().__call__(*args)
        self.system._holds = self.key

    def grad(self, *args):
        super().grad(*args)
        if self.key[2] == 0:   # the sweep's last segment: every workspace adjoint is zero again
            self.system._adjoint_clean = True


class _SmallAdvance(LeanAdjoint):
    """small.advance_small as a launchable (its adjoint always compiles lean: 4.7 CPU s for the
    issue-16 chain's, against 53 s with Taichi's control-flow passes); its gradient leaves every
    adjoint it reads clean, as K.advance's does."""

    def __init__(self, system):
        super().__init__(S.advance_small, True)
        self.system = system

    def grad(self, *args):
        super().grad(*args)
        if args[16] == 0:   # t0 == 0: the sweep's last segment
            self.system._adjoint_clean = True


class ArticulatedSystem(System):
    """B robots of one :class:`~diffsim.articulated.model.Model` for :class:`diffsim.Rollout`.

    model: the robot. batch: B, the number of robots stepped together. dt: time step (s).
    contact: :class:`GroundContact` for the model's contact points. cost: the robots'
    :class:`Cost` (shorthand for putting it first in ``costs``). costs: cost terms of
    :mod:`diffsim.costs` whose sum is the loss: at most one articulated :class:`Cost`, plus
    ready and Python costs on the trajectory (``NumpyCost`` on "q" or "qd", ...).
    params: per-body parameter overrides ({name: (nb, ...) or (B, nb, ...)}).
    q0, qd0: initial state, (nq,) or (B, nq) and (nv,) or (B, nv) (default: the model's
    :meth:`~diffsim.articulated.model.Model.initial_configuration`, at rest; a contact point
    starting deep below the ground is a DeepStartWarning). segment: steps per fused launch (default: as
    many as fit a 32 MB workspace, at most 100). integrator: an :class:`Integrator` or its
    value, "semi_implicit_euler" (default), "implicit_euler_damping" (joint damping stepped
    implicitly, stable at any damping) or "rk4" (fourth order, keeps the energy of fast motion;
    small fixed-base robots).

    ``limits``: the soft-limit gains the robots step with (chosen per joint from its inertia
    and dt unless the model gives them; given gains that are unstable at dt raise a
    ConfigError here, naming the joint and the largest stable dt: see
    :mod:`~diffsim.articulated.limits`).
    """

    def __init__(self, model: Model, batch: int = 1, dt: float = 0.01, contact: GroundContact | None = None,
                 cost: Cost | None = None, params=None, q0=None, qd0=None, segment: int | None = None,
                 costs=(), integrator: Integrator | str = Integrator.SEMI_IMPLICIT_EULER):
        if not isinstance(model, Model):
            raise ConfigError(f"model must be a diffsim.articulated Model (RobotBuilder.finalize(), load_urdf, "
                              f"planar_arm, ...), got {type(model).__name__}")
        self.model, self.dt = model, positive_number(dt, "dt (s)")
        if contact is not None and not isinstance(contact, GroundContact):
            raise ConfigError(f"contact must be a GroundContact(...) or None, got {contact!r:.80}")
        self.contact = contact or GroundContact()
        self.integrator = _integrator(integrator)
        self.arrays = ModelArrays(model, batch, params, self.contact, dt, needs_grad=True, check_limits=True)
        self.arrays.set_constants(implicit_damping=self.integrator is Integrator.IMPLICIT_EULER_DAMPING)
        self.limits = self.arrays.limits
        self.batch = B = self.arrays.batch
        nb = model.nb
        self.state_shapes = {"q": (B, model.nq), "qd": (B, model.nv)}
        self.control_shapes = {"tau": (B, model.nv)}
        self._small = S.small_tree(model, self.arrays)
        if self.integrator is Integrator.RK4 and self._small is None:
            raise ConfigError("integrator='rk4' steps the small fixed-base robots only (at most "
                              f"{S.MAX_BODIES} bodies, 1-DOF joints on coordinate axes: ArticulatedSystem.step_kernel "
                              f"'small'); '{model.name}' takes the general kernel, which has no RK4 step yet: use "
                              "'semi_implicit_euler' with a smaller dt for fast motion")
        per_slot = B * (nb + 1) * (1 if self._small else self.arrays.data_size)
        self.segment = (positive_int(segment, "segment (steps per fused launch)") if segment is not None
                        else max(1, min(100, (1 << 22) // per_slot)))
        self._data = self._cst = None
        cfg = runtime_info()
        self._spread = K.robot_spread(B, cfg["threads"]) if cfg["arch"] == "cpu" else 1
        self._terminal_data = nd(np.zeros((B, 1, nb + 1, self.arrays.data_size)), needs_grad=True)
        self._holds = None
        self._adjoint_clean = False   # the workspace adjoints are known to be zero
        self.q0 = np.zeros((B, model.nq))
        self.qd0 = np.zeros((B, model.nv))
        self.set_initial_state(q=model.initial_configuration() if q0 is None else q0,
                               qd=np.zeros(model.nv) if qd0 is None else qd0)
        self.costs = _cost_list(cost, costs)
        self.cost = None
        self.set_cost(next((c for c in self.costs if isinstance(c, Cost)), None))

    # ------------------------------------------------------------------ configuration

    def _per_robot(self, value, name, shape_tail=None):
        tail = shape_tail
        v = real_array(value, name)
        if v.shape in ((), tail):
            v = np.broadcast_to(v, (self.batch, *tail))
        if v.shape != (self.batch, *tail):
            raise ConfigError(f"{name} must be a scalar, {tail} or {(self.batch, *tail)}, got {np.shape(value)}")
        if not np.all(np.isfinite(v)):
            raise ConfigError(f"{name} must be finite")
        return np.ascontiguousarray(v)

    def set_initial_state(self, q=None, qd=None):
        """Initial joint positions (nq,) or (B, nq) and velocities (nv,) or (B, nv) (a free
        root: position, unit quaternion (w, x, y, z); angular velocity in body coordinates,
        velocity of its origin in world coordinates)."""
        m = self.model
        if q is not None:
            q = self._per_robot(q, "q0", (m.nq,))
            check_quaternions(m, q, "q0")
            self.q0 = q
            self._warn_deep_start()
        if qd is not None:
            self.qd0 = self._per_robot(qd, "qd0", (m.nv,))

    def initial_state(self):
        return {"q": self.q0.copy(), "qd": self.qd0.copy()}

    def _warn_deep_start(self):
        """Warn (DeepStartWarning) where a contact point starts far below the ground: deeper
        than 2 cm and than five times the depth at which the ground would carry the whole robot's
        weight. The spring then throws the robot off (a quadruped started at the origin with its
        feet 0.3 m underground left at 20 m/s), which is never what was meant."""
        m, c = self.model, self.contact
        if not m.contact_body:
            return
        weight = float(np.sum(m.mass)) * float(np.linalg.norm(m.gravity))
        allowed = max(0.02, 5.0 * weight / c.stiffness)
        for b, q in enumerate(self.q0):
            if b and np.array_equal(q, self.q0[b - 1]):
                continue
            low = _contact_heights(m, q) - m.contact_radius
            k = int(np.argmin(low))
            depth = c.height - low[k]
            if depth > allowed:
                body = m.body_names[m.contact_body[k]]
                hint = (" (a floating base's height is q[2]; the robot file's pose is model.home)"
                        if m.floating else "")
                warnings.warn(f"robot {b}: a contact point of body '{body}' starts {depth:.3g} m below the ground "
                              f"(z = {c.height:g} m), where the contact spring ({c.stiffness:g} N/m) pushes with "
                              f"{c.stiffness * depth:.3g} N against the robot's weight of {weight:.3g} N and will "
                              f"throw it off; start it above the ground: q0=... or set_initial_state(q=...){hint}",
                              DeepStartWarning, stacklevel=3)
                return

    def set_cost(self, cost: Cost | None):
        """Install the weights and targets of the articulated ``cost`` (it replaces the one in
        ``self.costs``; None removes it)."""
        if cost is not None and not isinstance(cost, Cost):
            raise ConfigError(f"cost must be a diffsim.articulated.Cost(...) or None, got {cost!r:.80}")
        self._install(cost or Cost())
        self.costs = [c for c in self.costs if not isinstance(c, Cost)]
        if cost is not None:
            self.costs.insert(0, cost)
        self.cost = cost

    def _install(self, cost: Cost):
        m = self.model
        qw = np.zeros((self.batch, m.nb, K.COST.size))
        joints = slice(1, None) if m.floating else slice(None)   # 1-DOF joints: no weights on a free root
        nj = m.nb - 1 if m.floating else m.nb
        qw[:, joints, K.COST.q_target] = self._per_robot(cost.q_target, "Cost.q_target", (nj,))
        for col, name in ((K.COST.q_weight, "q_weight"), (K.COST.qd_weight, "qd_weight"),
                          (K.COST.q_weight_final, "q_weight_final"), (K.COST.qd_weight_final, "qd_weight_final")):
            qw[:, joints, col] = self._per_robot(getattr(cost, name), f"Cost.{name}", (nj,))
            if np.any(qw[..., col] < 0):
                raise ConfigError(f"Cost.{name} must be >= 0 (a negative weight makes the loss unbounded below), "
                                  f"got {getattr(cost, name)!r}")
        for i in (i for i, j in enumerate(m.jtype) if j == BALL):
            for name in ("q_weight", "q_weight_final"):
                if np.any(qw[:, i, getattr(K.COST, name)] != 0):
                    raise ConfigError(f"Cost.{name} of the ball joint '{m.joint_names[i]}' must be 0: a ball joint's "
                                      "q is a quaternion, which this cost does not track (its qd_weight acts on "
                                      "|w|^2); give 0 for it, or an end-effector target (ee_link, ee_target)")
        for name in ("effort", "ee_weight", "ee_weight_final"):
            if finite_number(getattr(cost, name), f"Cost.{name}") < 0:
                raise ConfigError(f"Cost.{name} must be >= 0 (a negative weight makes the loss unbounded below), "
                                  f"got {getattr(cost, name)!r}")
        self._qw = nd(qw)
        # running terms: effort, q or qd weights, a running end-effector weight (else the step
        # kernel writes no running cost and running_sum is not launched)
        self._running = bool(cost.effort != 0 or cost.ee_weight != 0
                             or np.any(qw[..., [K.COST.q_weight, K.COST.qd_weight]] != 0))
        if cost.ee_link is not None:
            self.ee_body, point = m.point_on(cost.ee_link, cost.ee_point)
        else:
            self.ee_body, point = -1, np.zeros(3)
        self.arrays.set_constants(effort=cost.effort, ee_weight=cost.ee_weight,
                                  ee_weight_final=cost.ee_weight_final, ee_point=point)
        self.set_ee_target(cost.ee_target)

    def set_ee_target(self, target):
        """End-effector target (m, world): (3,), (B, 3), or a trajectory (T+1, B, 3)."""
        t = np.asarray(target, dtype=float)
        if t.shape == (3,):
            t = np.broadcast_to(t, (1, self.batch, 3))
        elif t.shape == (self.batch, 3):
            t = t[None]
        if t.ndim != 3 or t.shape[1:] != (self.batch, 3) or not np.all(np.isfinite(t)):
            raise ConfigError(f"ee_target must be finite with shape (3,), ({self.batch}, 3) or "
                              f"(T+1, {self.batch}, 3), got {np.shape(target)}")
        self._eet = nd(np.ascontiguousarray(t))

    def set_parameters(self, **values):
        """Write per-body parameters ((nb, ...) or (B, nb, ...))."""
        self.arrays.set_parameters(**values)

    def get_parameters(self) -> dict:
        """{name: float64 array (nb, ...) or (B, nb, ...)} of the per-body parameters now in use (mass kg, inertia kg m^2, ...)."""
        return {k: a.to_numpy().astype(float) for k, a in self.arrays.params.items()}

    def parameters(self):
        return dict(self.arrays.params)

    @property
    def step_kernel(self) -> str:
        """Which step kernel this system launches: "small" (a fixed-base robot of at most
        ``small.MAX_BODIES`` bodies and 1-DOF joints on coordinate axes, see
        :func:`~diffsim.articulated.small.small_tree`: its bodies unrolled at
        compile time, several times faster; :mod:`~diffsim.articulated.small`) or "general"
        (every other robot; :func:`~diffsim.articulated.kernels.advance`)."""
        return "small" if self._small else "general"

    # ------------------------------------------------------------------ the tape's launches

    def _workspace(self, n):
        """The workspace (None for the small robots' kernel, which keeps its per-step quantities in
        registers) and the running-cost terms of n steps."""
        if self._cst is None or self._cst.shape[1] < n:
            B, nb = self.batch, self.model.nb
            if not self._small:
                self._data = nd(np.zeros((B, n, nb + 1, self.arrays.data_size)), needs_grad=True)
                K.zero4(self._data.grad)
            self._cst = nd(np.zeros((B, n, nb + 1)), needs_grad=True)
            K.zero3(self._cst.grad)
            self._holds = None
        return self._data, self._cst

    def _prepare_adjoint(self, key, *args):
        """Before a segment's adjoint: recompute its workspace if another segment's forward pass
        overwrote it. (The workspace adjoints are zero here: Taichi's adjoint of a store clears
        the stored element's adjoint after using it, and every workspace element is stored.)"""
        if self._holds != key:
            launch_kernel(K.advance, *args)
            self._holds = key

    def _begin_adjoint(self):
        """First launch of every adjoint sweep (before the terminal cost's): clear all workspace
        adjoints, unless the last sweep ran to its end (Taichi's adjoint of a store clears the
        stored element's adjoint, and every workspace element is stored, so a completed sweep
        leaves them zero; an interrupted one may not). Skipping it saved 0.9 of 16 ms per
        gradient of the benchmark's T = 1,000 single arm."""
        if not self._adjoint_clean:
            K.zero4(self._terminal_data.grad)
            if self._data is not None:
                K.zero4(self._data.grad)
            if self._cst is not None:
                K.zero3(self._cst.grad)
        self._adjoint_clean = False

    def advance(self, x, u, slot0, t0, t1):
        """Launches that run steps t0..t1-1 from slot slot0 in one fused kernel (see :class:`diffsim.System`)."""
        n = t1 - t0
        data, cst = self._workspace(n)
        a = self.arrays
        # no running end-effector term without its weight: the kernel then skips that phase's work
        ee = self.ee_body if a.cs_values[K.CONST.ee_weight] != 0.0 else -1
        if self._small:
            parents, geometry, contact_bodies = self._small
            args = (x.q, x.qd, u.tau, *a.param_args(), a.bc, a.cs, self._qw, self._eet, a.cp, cst, slot0, t0, t1,
                    self._spread, parents, geometry, ee if self._running else -1, contact_bodies, self._spread > 1,
                    a.has_limits, self._running, self.integrator is Integrator.RK4)
            return [Launch(_SmallAdvance(self), args)]
        args = (x.q, x.qd, u.tau, *a.param_args(), a.par, a.qix, a.vix, a.cb, a.bc, a.cp, a.cs, self._qw, self._eet,
                data, cst, ee, a.ncp, slot0, t0, t1, self._spread, self.model.floating, self._spread > 1,
                a.revolute_only, a.contacts, a.ball, a.contacts or ee >= 0, a.has_limits, self._running)
        key = (id(x.q), slot0, t0, t1, id(data))
        # reversed by the adjoint sweep: recompute the workspace if needed, then advance.grad
        return [Launch(_Advance(self, key), args), adjoint_only(self._prepare_adjoint, key, *args)]

    def running_cost(self, x, u, slot0, t0, t1, loss):
        return [lc for c in self.costs for lc in c.running(self, x, u, slot0, t0, t1, loss)]

    def terminal_cost(self, x, slot, loss):
        # the adjoint sweep runs these in reverse: _begin_adjoint first
        return [*(lc for c in self.costs for lc in c.terminal(self, x, slot, loss)), adjoint_only(self._begin_adjoint)]

    def check_state(self, state: dict) -> None:
        """A free root's orientation q[..., 3:7] must be a unit quaternion (also when the tape's
        initial state is set or fitted, not only through ``set_initial_state``)."""
        if "q" in state:
            check_quaternions(self.model, state["q"], "initial state 'q'")

    def validate(self, steps):
        rows = self._eet.shape[0]
        if rows not in (1,) and rows < steps + 1:
            raise ConfigError(f"the end-effector target trajectory has {rows} rows but a rollout of {steps} "
                              f"steps needs {steps + 1} (one per state) or a single fixed target")

    def divergence_hint(self):
        """Advice naming the stiff terms this robot really has: its soft joint limits (each
        stop's omega*dt, stepped implicitly, and the largest step at which the stops are
        stable), its ground contact (stepped explicitly: omega*dt on the lightest contact point,
        which should stay below about 0.8), strong joint damping, and fast motion (the velocity
        products are explicit)."""
        m, g = self.model, self.limits
        terms = []
        if np.any(g.limited):
            worst = np.flatnonzero(g.limited)[np.argsort(-g.omega_dt[g.limited])][:3]
            stops = ", ".join(f"'{m.joint_names[j]}' {g.omega_dt[j]:.2g}" for j in worst)
            chosen = "chosen" if m.limit_stiffness is None else "given"
            terms.append(f"soft joint limits (gains {chosen}; omega*dt {stops}, stepped implicitly; stable with "
                         f"every stop pressed in up to dt = {g.max_dt:.3g} s)")
        if m.contact_body:
            mass = float(np.min(contact_effective_mass(m, self.get_parameters())))
            c = self.contact
            terms.append(f"ground contact of {len(m.contact_body)} point(s) (stiffness {c.stiffness:g} N/m, damping "
                         f"{c.damping:g} N s/m: omega*dt {np.sqrt(c.stiffness / mass) * self.dt:.2g} on the lightest "
                         f"point, {mass:.3g} kg, stepped explicitly, so keep it below about 0.8: a softer "
                         "GroundContact(stiffness=...) or a smaller dt)")
        gamma_dt = self.get_parameters()["damping"].max(axis=0) / g.inertia * self.dt
        if self.integrator is Integrator.SEMI_IMPLICIT_EULER:
            for j in np.flatnonzero(gamma_dt > 1.0):
                terms.append(f"joint damping of '{m.joint_names[j]}' (damping dt / inertia = {gamma_dt[j]:.2g}; "
                             "unstable above 2: ArticulatedSystem(integrator='implicit_euler_damping') steps it "
                             "stably)")
        stiff = ("; ".join(terms) if terms else
                 "none found (no soft limits, no ground contact, no strong damping): look at the torques and at "
                 "light links")
        if self.integrator is Integrator.RK4:
            fast = (f"Fast motion: RK4 keeps the energy of rates well below 1/dt = {1.0 / self.dt:.3g} rad/s; "
                    "rates near it are beyond any step of this size")
        else:
            fast = (f"Fast motion also gains energy at this step: Coriolis, centrifugal and gyroscopic terms are "
                    f"stepped explicitly, so joint or base rates near 1/dt = {1.0 / self.dt:.3g} rad/s (a spinning "
                    "floating base, a whirling arm) are beyond it" + ("; ArticulatedSystem(integrator='rk4') keeps "
                                                                      "the energy of fast motion" if self._small else ""))
        return (f"reduce dt (now {self.dt} s) or the torques. Stiff terms: {stiff}. {fast}. Check that the masses "
                "and inertias are physical")

    def plausible_magnitudes(self):
        """Bounds beyond which a state is a divergence, not motion: |q| <= 1e6 (rad or m:
        a continuous joint may wind up, but not that far) and |qd| <= 1e4 rad/s or m/s
        (about 10^5 rpm at a joint, far beyond any robot's actuators)."""
        return {"q": PLAUSIBLE_Q, "qd": PLAUSIBLE_QD}

    def control_limits(self):
        """{"tau": (lower, upper)}, each (B, nv) (N m or N): +-the joints' effort limits
        (URDF ``<limit effort=...>``, inf where unset); 0 on passive joints (and a free root),
        whose control is ignored. For ``Parameter("tau", bounds="effort")``."""
        m = self.model
        effort = np.zeros(m.nv)
        for v, n, e, act in zip(m.v_index, m.joint_dofs, m.effort, m.actuated):
            effort[v:v + n] = e if act else 0.0
        upper = np.broadcast_to(effort, (self.batch, m.nv)).copy()
        return {"tau": (-upper, upper)}

    # ------------------------------------------------------------------ helpers

    def ee_positions(self, q_traj):
        """End-effector positions (m, world) along joint trajectories (T, B, nq) -> (T, B, 3),
        with each robot's current parameters."""
        if self.cost is None or self.cost.ee_link is None:
            raise ConfigError("the cost has no ee_link: set Cost(ee_link=...)")
        q_traj = np.asarray(q_traj, dtype=float)
        T, B, nb = q_traj.shape
        params = {k: np.broadcast_to(v[None], (T, *v.shape)).reshape(T * B, *v.shape[1:])
                  for k, v in self.get_parameters().items()}
        pts = point_position(self.model, q_traj.reshape(T * B, nb), self.cost.ee_link, self.cost.ee_point,
                             params)
        return pts.reshape(T, B, 3)
