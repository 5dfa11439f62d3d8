"""Batched rigid-body algorithms on Taichi: forward kinematics, Jacobians, RNEA, CRBA, ABA.

Each function takes a :class:`~diffsim.articulated.model.Model` and states of one robot (nb,)
or of a batch (B, nb), runs the Taichi kernels of :mod:`~diffsim.articulated.kernels` (the
same code the simulator steps with) and returns NumPy arrays with a leading batch axis when
the input had one. ``params`` overrides per-body parameters ({name: (nb, ...) or (B, nb, ...)},
names as in ``Model.PARAMETERS``); ``contact`` (a :class:`GroundContact`) is the ground the
model's contact points touch, and ``None`` means the default ``GroundContact()`` (the plane z = 0),
as in :class:`~diffsim.articulated.system.ArticulatedSystem`: a model with contact points always
has its ground (move it away with ``GroundContact(height=...)``); a model without contact points
feels none.

Equation of motion (see :mod:`~diffsim.articulated.reference`)::

    (M(q) + diag(armature)) qdd + h(q, qd) = tau - damping qd + tau_limit(q, qd) + J^T F_contact
"""

import dataclasses
from dataclasses import dataclass

import numpy as np
import taichi as ti

from ..errors import ConfigError
from ..runtime import config
from . import kernels as K
from . import limits as _limits
from .limits import LimitGains, contact_tangential_mass, soft_limit_gains
from .model import (
    BALL,
    FREE,
    NO_LIMIT,
    REVOLUTE,
    Model,
    check_inertia,
    finite_number,
    positive_int,
    positive_number,
    real_array,
)
from .spatial import inertia_matrix

DEFAULT_DT = 0.01
"""Time step (s) whose automatic soft-limit gains the stand-alone dynamics functions use."""


@dataclass
class GroundContact:
    """Ground plane z = ``height`` (m, normal +z) touched by the model's contact points, through
    the shared contact law (:func:`diffsim.contact.contact_normal_force`, C^1 at first touch):
    ``stiffness`` k_n (N/m, > 0), ``damping`` c_n (N s/m), ``onset_depth`` delta (m, > 0: the
    force fades in over the first delta of penetration; 1 mm by default, a tenth of the static
    depth m g / k_n of a 10 kg robot on the default stiffness, so that a resting foot sits on the
    linear part of the law, at depth m g / k_n + delta / 2), ``friction`` mu and the smoothing
    ``slip_speed`` v_eps (m/s) of Coulomb's law. Friction is stepped explicitly: at each point
    the slip speed is raised to sqrt(v_eps^2 + (2 dt mu f_n / m_t)^2) (m_t a lower bound on the
    point's tangential effective mass, :func:`~diffsim.articulated.limits.contact_tangential_mass`),
    which keeps its rate mu f_n / (v_eps m_t) below 1 / (2 dt), so that a sticking foot steps
    stably and gradients through it are right at any v_eps; sliding friction (slip >> v_eps)
    stays Coulomb's."""

    stiffness: float = 1e4
    damping: float = 100.0
    friction: float = 0.8
    slip_speed: float = 0.01
    height: float = 0.0
    onset_depth: float = 1e-3

    def __post_init__(self):
        for name in ("stiffness", "onset_depth", "slip_speed"):
            setattr(self, name, positive_number(getattr(self, name), f"GroundContact.{name}"))
        for name in ("damping", "friction"):
            v = finite_number(getattr(self, name), f"GroundContact.{name}")
            if not v >= 0:
                raise ConfigError(f"GroundContact.{name} must be finite and >= 0, got {v!r}")
            setattr(self, name, v)
        self.height = finite_number(self.height, "GroundContact.height (m)")

    def as_dict(self) -> dict:
        """The contact law's constants by their kernel names: kn (N/m), cn (N s/m), mu, v_eps (m/s), height (m), delta (m)."""
        return {"kn": self.stiffness, "cn": self.damping, "mu": self.friction,
                "v_eps": self.slip_speed, "height": self.height, "delta": self.onset_depth}


def _real():
    return config().numpy_real


def nd(value, needs_grad=False, dtype=None):
    """A Taichi ndarray holding ``value`` (float in the running precision unless dtype=ti.i32)."""
    value = np.asarray(value)
    if dtype == ti.i32:
        arr = ti.ndarray(ti.i32, value.shape)
        arr.from_numpy(value.astype(np.int32))
        return arr
    arr = ti.ndarray(config().real, value.shape, needs_grad=needs_grad)
    arr.from_numpy(value.astype(_real()))
    return arr


def batch_parameters(model: Model, batch: int, params=None) -> dict:
    """{name: (B, nb, ...) float64} from the model's values, overridden by ``params`` (each
    (nb, ...) for every robot or (B, nb, ...) per robot). Checks shapes and signs."""
    base = model.parameters()
    out = {}
    params = dict(params or {})
    for name in params:
        if name not in base:
            raise ConfigError(f"unknown parameter '{name}'; parameters are {list(base)}")
    for name, value in base.items():
        v = real_array(params.get(name, value), f"parameter '{name}'")
        shape = value.shape
        if v.shape == shape:
            v = np.broadcast_to(v, (batch, *shape))
        elif v.shape != (batch, *shape):
            raise ConfigError(f"parameter '{name}' must have shape {shape} or {(batch, *shape)}, got {v.shape}")
        if not np.all(np.isfinite(v)):
            raise ConfigError(f"parameter '{name}' has non-finite values")
        out[name] = np.ascontiguousarray(v)
    # a body that others hang from may be massless (an intermediate frame: a planar root's x and z
    # carriages); the joint-space inertia stays regular through what it carries
    carries = np.isin(np.arange(model.nb), model.parent)
    bad = (out["mass"] < 0) | ((out["mass"] == 0) & ~carries)
    if np.any(bad):
        b, i = np.argwhere(bad)[0]
        raise ConfigError(f"mass of body {i} ('{model.body_names[i]}') of robot {b} is {out['mass'][b, i]} kg; "
                          "masses must be > 0 (>= 0 for a body that carries others)")
    for b, i in _unique_body_rows(out["inertia"]):
        check_inertia(inertia_matrix(out["inertia"][b, i]),
                      f"parameter 'inertia' of body {i} ('{model.body_names[i]}') of robot {b}")
    for name in ("damping", "armature"):
        if np.any(out[name] < 0):
            b, i = np.argwhere(out[name] < 0)[0]
            raise ConfigError(f"{name} of joint {i} ('{model.joint_names[i]}') of robot {b} is "
                              f"{out[name][b, i]}; it must be >= 0")
    return out


def _limit_gains(model: Model, dt: float, values: dict, check: bool) -> LimitGains:
    """soft_limit_gains of the model; for a floating base, those of its 1-DOF joints on the
    fixed-base twin (a stop acts on its joint's subtree, whose inertia does not depend on how the
    base is held), with zeros for the free joint."""
    if not model.floating:
        return soft_limit_gains(model, dt, values, check=check)
    if model.nb == 1:
        z = np.zeros(1)
        return LimitGains(stiffness=z, damping=z, onset=float(model.limit_onset), dt=float(dt), inertia=np.ones(1),
                          omega_dt=z, max_dt=np.inf, limited=np.zeros(1, bool))
    g = soft_limit_gains(model.fixed_base(), dt, {k: v[:, 1:] for k, v in values.items()}, check=check)

    def pad(a, first):
        return np.concatenate([[first], a])

    return dataclasses.replace(g, stiffness=pad(g.stiffness, 0.0), damping=pad(g.damping, 0.0),
                               inertia=pad(g.inertia, np.inf), omega_dt=pad(g.omega_dt, 0.0),
                               limited=pad(g.limited, False).astype(bool))


def _unique_body_rows(inertia) -> list:
    """(robot, body) of each distinct inertia row of a (B, nb, 6) array (a batch usually
    repeats the model's values)."""
    B, nb, _ = inertia.shape
    _, first = np.unique(inertia.reshape(B * nb, 6), axis=0, return_index=True)
    return [divmod(int(k), nb) for k in sorted(first)]


class ModelArrays:
    """The ndarrays a kernel needs for a model and a batch: parameters (with gradients when
    ``needs_grad``) and the constants (topology, joint frames, limits, gravity, contact).
    ``limits``: the soft-limit gains (:class:`~diffsim.articulated.limits.LimitGains`); by
    default those :func:`~diffsim.articulated.limits.soft_limit_gains` gives for ``dt`` (with
    ``check_limits``, unstable given gains raise a ConfigError)."""

    PARAMS = Model.PARAMETERS

    def __init__(self, model: Model, batch: int, params=None, contact: GroundContact | None = None,
                 dt: float = DEFAULT_DT, needs_grad: bool = False, limits: LimitGains | None = None,
                 check_limits: bool = False):
        if not isinstance(model, Model):
            raise ConfigError(f"model must be a diffsim.articulated Model (RobotBuilder.finalize(), load_urdf, "
                              f"planar_arm, ...), got {type(model).__name__}")
        if contact is not None and not isinstance(contact, GroundContact):
            raise ConfigError(f"contact must be a GroundContact(...) or None, got {contact!r:.80}")
        self.model, self.batch = model, positive_int(batch, "batch (the number of robots)")
        nb = model.nb
        values = batch_parameters(model, self.batch, params)
        dt = positive_number(dt, "dt (s)")
        if limits is not None:
            dt = limits.dt  # a stop's added inertia depends on the step its gains were chosen for
        self.limits = limits if limits is not None else _limit_gains(model, dt, values, check_limits)
        self.params = {k: nd(values[k], needs_grad) for k in self.PARAMS}
        self.par = nd([p if p >= 0 else nb for p in model.parent], dtype=ti.i32)
        self.qix = nd(model.q_index, dtype=ti.i32)
        self.vix = nd(model.v_index, dtype=ti.i32)
        ncp = len(model.contact_body)
        self.ncp = ncp
        # compile-time switches of the step kernels (each combination compiles its own kernels)
        self.contacts = ncp > 0
        self.revolute_only = all(j == REVOLUTE for j in model.jtype if j not in (FREE, BALL))
        self.ball = model.has_ball
        self.data_size = K.data_size(self.ball)   # workspace entries per body
        self.cb = nd(list(model.contact_body) or [0], dtype=ti.i32)
        cp = np.ones((max(ncp, 1), K.CONTACT.size))
        if ncp:
            cp[:, K.CONTACT.point:K.CONTACT.point + 3] = model.contact_point
            cp[:, K.CONTACT.radius] = model.contact_radius
            cp[:, K.CONTACT.tangential_mass] = contact_tangential_mass(model, values)
        self.cp = nd(cp)
        bc = np.zeros((nb, K.BODY.size))
        bc[:, K.BODY.E_tree:K.BODY.E_tree + 9] = model.E_tree.reshape(nb, 9)
        bc[:, K.BODY.axis:K.BODY.axis + 3] = model.axis
        bc[:, K.BODY.lower] = np.maximum(model.lower, -NO_LIMIT)
        bc[:, K.BODY.upper] = np.minimum(model.upper, NO_LIMIT)
        bc[:, K.BODY.revolute] = [1.0 if j == REVOLUTE else 0.0 for j in model.jtype]
        bc[:, K.BODY.ball] = [1.0 if j == BALL else 0.0 for j in model.jtype]
        bc[:, K.BODY.actuated] = np.asarray(model.actuated, dtype=float)
        bc[:, K.BODY.limit_stiffness] = self.limits.stiffness
        bc[:, K.BODY.limit_damping] = self.limits.damping
        bc[:, K.BODY.velocity_limit] = np.minimum(model.velocity_limit, NO_LIMIT)
        bc[:, K.BODY.velocity_onset] = _limits.VELOCITY_LIMIT_ONSET * bc[:, K.BODY.velocity_limit]
        self.bc = nd(bc)
        # the kernels' ``limits`` switch: some joint has a finite position or velocity limit
        self.has_limits = bool(np.any(bc[:, K.BODY.lower] > -NO_LIMIT) or np.any(bc[:, K.BODY.upper] < NO_LIMIT)
                               or np.any(bc[:, K.BODY.velocity_limit] < NO_LIMIT))
        self.cs_values = np.zeros(K.CONST.size)
        self.cs = nd(self.cs_values)
        self.set_constants(dt=dt, contact=contact or GroundContact())

    def set_constants(self, dt=None, contact=None, effort=None, ee_weight=None, ee_weight_final=None,
                      ee_point=None, implicit_damping=None):
        """Update scalar constants (dt in s; contact a GroundContact; cost weights;
        implicit_damping: True to step joint damping implicitly)."""
        c = self.cs_values
        m = self.model
        c[K.CONST.gravity:K.CONST.gravity + 3] = m.gravity
        c[K.CONST.limit_onset] = self.limits.onset
        if dt is not None:
            if not dt > 0:
                raise ConfigError(f"dt must be > 0 s, got {dt}")
            c[K.CONST.dt] = dt
        if contact is not None:
            c[[K.CONST.contact_stiffness, K.CONST.contact_damping, K.CONST.friction, K.CONST.slip_speed, K.CONST.contact_onset]] = (contact.stiffness, contact.damping, contact.friction,
                                                     contact.slip_speed, contact.onset_depth)
            c[K.CONST.ground_height] = max(contact.height, -NO_LIMIT)
        if effort is not None:
            c[K.CONST.effort_weight] = effort
        if ee_weight is not None:
            c[K.CONST.ee_weight] = ee_weight
        if ee_weight_final is not None:
            c[K.CONST.ee_weight_final] = ee_weight_final
        if ee_point is not None:
            c[K.CONST.ee_point:K.CONST.ee_point + 3] = ee_point
        if implicit_damping is not None:
            c[K.CONST.implicit_damping] = 1.0 if implicit_damping else 0.0
        self.cs.from_numpy(c.astype(_real()))

    def param_args(self):
        p = self.params
        return (p["mass"], p["com"], p["inertia"], p["joint_offset"], p["damping"], p["armature"])

    def set_parameters(self, **values):
        """Write parameter values ((nb, ...) or (B, nb, ...))."""
        current = {k: a.to_numpy().astype(float) for k, a in self.params.items()}
        current.update(values)
        checked = batch_parameters(self.model, self.batch, current)
        for k in values:
            self.params[k].from_numpy(checked[k].astype(_real()))


def _as_batch(model: Model, x, name: str):
    """x as (B, n) (n = nq for "q", else nv), and whether it was one robot's (n,)."""
    x = real_array(x, name)
    n = model.nq if name == "q" else model.nv
    single = x.ndim == 1
    x2 = x[None] if single else x
    if x2.ndim != 2 or x2.shape[1] != n:
        raise ConfigError(f"{name} must have shape ({n},) or (B, {n}), got {x.shape}")
    if not np.all(np.isfinite(x2)):
        raise ConfigError(f"{name} must be finite")
    if name == "q":
        check_quaternions(model, x2, name)
    return x2, single


QUATERNION_TOL = 1e-6
"""Largest accepted | |quaternion| - 1 | of a free or ball joint's orientation."""


def check_quaternions(model: Model, q, name: str):
    """ConfigError when a free root's orientation q[..., 3:7] or a ball joint's quaternion is
    not a unit quaternion."""
    for joint, k in model.quaternion_slices():
        norm = np.linalg.norm(np.asarray(q)[..., k:k + 4], axis=-1)
        bad = np.flatnonzero(np.abs(norm - 1.0) > QUATERNION_TOL)
        if bad.size:
            which = "the free joint's" if model.floating and k == 3 else f"the ball joint '{joint}''s"
            raise ConfigError(f"{name}: {which} orientation q[{k}:{k + 4}] (w, x, y, z) of robot {int(bad[0])} has "
                              f"norm {norm.reshape(-1)[bad[0]]:.6g}; it must be a unit quaternion (divide it by its "
                              "norm)")


def _qdd_of(model: Model, data_qdd):
    """(B, nv) joint accelerations from the workspace's per-body qdd entries (B, nb, 6)."""
    B = data_qdd.shape[0]
    out = np.zeros((B, model.nv))
    for i, (v, n) in enumerate(zip(model.v_index, model.joint_dofs)):
        out[:, v:v + n] = data_qdd[:, i, :n]
    return out


def _out(x, single):
    return x[0] if single else x


def aba(model: Model, q, qd, tau, params=None, contact: GroundContact | None = None,
        limits: LimitGains | None = None):
    """Articulated-body algorithm (forward dynamics): joint accelerations qdd (rad/s^2 or
    m/s^2) for joint torques/forces tau (N m or N), (nb,) or (B, nb). Entries of tau on
    passive (unactuated) joints are ignored. ``limits``: soft-limit gains (an
    ``ArticulatedSystem``'s ``limits``); by default the model's, or when it leaves them
    automatic, those chosen for dt = DEFAULT_DT (0.01 s)."""
    q2, single = _as_batch(model, q, "q")
    qd2, _ = _as_batch(model, qd, "qd")
    tau2, _ = _as_batch(model, tau, "tau")
    B, nb = q2.shape[0], model.nb
    ma = ModelArrays(model, B, params, contact or GroundContact(), limits=limits)
    qs, qds = np.zeros((2, B, model.nq)), np.zeros((2, B, model.nv))
    qs[0], qds[0] = q2, qd2
    qs[1, :] = model.neutral_configuration()
    data = nd(np.zeros((B, 1, nb + 1, ma.data_size)))
    K.advance(nd(qs), nd(qds), nd(tau2[None]), *ma.param_args(), ma.par, ma.qix, ma.vix, ma.cb, ma.bc, ma.cp, ma.cs,
              nd(np.zeros((B, nb, K.COST.size))), nd(np.zeros((1, B, 3))), data, nd(np.zeros((B, 1, nb + 1))),
              -1, ma.ncp, 0, 0, 1, 1, model.floating, False, ma.revolute_only, ma.contacts, ma.ball, ma.contacts,
              ma.has_limits, False)
    qdd = data.to_numpy()[:, 0, :nb, K.DATA.qdd:K.DATA.qdd + 6].astype(float)
    return _out(_qdd_of(model, qdd), single)


def _inverse_dynamics(model, q, qd, qdd, params, contact, limits=None):
    q2, single = _as_batch(model, q, "q")
    qd2, _ = _as_batch(model, qd, "qd")
    qdd2, _ = _as_batch(model, qdd, "qdd")
    B, nb, nv = q2.shape[0], model.nb, model.nv
    ma = ModelArrays(model, B, params, contact or GroundContact(), limits=limits)
    tau, M = nd(np.zeros((B, nv))), nd(np.zeros((B, nv, nv)))
    K.inverse_dynamics(nd(q2[None]), nd(qd2[None]), nd(qdd2), *ma.param_args(), ma.par, ma.qix, ma.vix, ma.cb,
                       ma.bc, ma.cp, ma.cs, nd(np.zeros((B, 1, nb + 1, ma.data_size))), ma.ncp, tau, M,
                       model.floating, ma.revolute_only, ma.contacts, ma.ball)
    return tau.to_numpy().astype(float), M.to_numpy().astype(float), single


def rnea(model: Model, q, qd, qdd, params=None, contact: GroundContact | None = None,
         limits: LimitGains | None = None):
    """Recursive Newton-Euler (inverse dynamics): the torques tau giving accelerations qdd
    (soft-limit gains ``limits`` as in :func:`aba`)."""
    tau, _, single = _inverse_dynamics(model, q, qd, qdd, params, contact, limits)
    return _out(tau, single)


def crba(model: Model, q, params=None):
    """Composite-rigid-body algorithm: the joint-space inertia M(q) + diag(armature), (nb, nb)
    or (B, nb, nb) (kg m^2, kg)."""
    q2, single = _as_batch(model, q, "q")
    zero = np.zeros((q2.shape[0], model.nv))
    _, M, _ = _inverse_dynamics(model, q2, zero, zero, params, None)
    return _out(M, single)


def body_poses(model: Model, q, params=None):
    """Forward kinematics: world rotation R (B, nb, 3, 3; body axes in world coordinates) and
    origin p (B, nb, 3) (m) of every body ((nb, 3, 3), (nb, 3) for one robot)."""
    q2, single = _as_batch(model, q, "q")
    B, nb = q2.shape[0], model.nb
    ma = ModelArrays(model, B, params)
    data = nd(np.zeros((B, 1, nb + 1, ma.data_size)))
    K.terminal(nd(q2[None]), nd(np.zeros((1, B, model.nv))), ma.params["joint_offset"], ma.par, ma.qix, ma.vix, ma.bc,
               ma.cs, nd(np.zeros((B, nb, K.COST.size))), nd(np.zeros((1, B, 3))), data, -1, 0, 0, nd(np.zeros(1)),
               model.floating, ma.revolute_only, ma.ball)
    s = data.to_numpy()[:, 0, :nb].astype(float)
    R = s[..., K.DATA.R_world:K.DATA.R_world + 9].reshape(B, nb, 3, 3)
    p = s[..., K.DATA.p_world:K.DATA.p_world + 3]
    return (R[0], p[0]) if single else (R, p)


def link_pose(model: Model, q, link: str, params=None):
    """World rotation (3, 3) and origin (3,) (m) of any link, batched like q."""
    b, Rl, pl = _frame(model, link)
    R, p = body_poses(model, q, params)
    if b < 0:
        return (np.broadcast_to(Rl, R.shape[:-3] + (3, 3)).copy(), np.broadcast_to(pl, p.shape[:-2] + (3,)).copy())
    Rb, pb = R[..., b, :, :], p[..., b, :]
    return Rb @ Rl, np.einsum("...ij,j->...i", Rb, pl) + pb


def _skew_batch(d):
    """(B, 3, 3) cross-product matrices of (B, 3) vectors."""
    z = np.zeros(len(d))
    return np.stack([np.stack([z, -d[:, 2], d[:, 1]], -1), np.stack([d[:, 2], z, -d[:, 0]], -1),
                     np.stack([-d[:, 1], d[:, 0], z], -1)], 1)


def _frame(model, link):
    if link not in model.frames:
        raise ConfigError(f"unknown link '{link}'; links are {sorted(model.frames)}")
    return model.frames[link]


def point_position(model: Model, q, link: str, point=(0.0, 0.0, 0.0), params=None):
    """World position (m) of a point given in ``link``'s frame, (3,) or (B, 3)."""
    R, p = link_pose(model, q, link, params)
    return np.einsum("...ij,j->...i", R, np.asarray(point, float)) + p


def point_jacobian(model: Model, q, link: str, point=(0.0, 0.0, 0.0), params=None):
    """Jacobian J (3, nv) or (B, 3, nv) of the world position x of a point on ``link``, with
    dx/dt = J qd: column j is a_j x (x - o_j) for a revolute ancestor joint j (axis a_j, origin
    o_j in world coordinates), a_j for a prismatic one, 0 for joints that do not move the point;
    for a free root (angular velocity w in body coordinates, origin velocity v in world
    coordinates, rotation R, origin p) the six columns are -[x - p]x R and 1, for a ball joint
    (angular velocity in its child's coordinates, child rotation R, joint origin p) the three
    columns -[x - p]x R. (For a fixed base of 1-DOF joints, J = dx/dq.)"""
    q2, single = _as_batch(model, q, "q")
    R, p = body_poses(model, q2, params)
    x = point_position(model, q2, link, point, params)
    b = _frame(model, link)[0]
    J = np.zeros((q2.shape[0], 3, model.nv))
    for j in (model.ancestors(b) if b >= 0 else []):
        v = model.v_index[j]
        if model.jtype[j] in (FREE, BALL):  # x' = v + (R w) x (x - p): columns -[x - p]x R (then 1)
            d = x - p[:, j]
            J[:, :, v:v + 3] = -np.einsum("bij,bjk->bik", _skew_batch(d), R[:, j])
            if model.jtype[j] == FREE:
                J[:, :, v + 3:v + 6] = np.eye(3)
            continue
        a = R[:, j] @ model.axis[j]
        J[:, :, v] = np.cross(a, x - p[:, j]) if model.jtype[j] == REVOLUTE else a
    return _out(J, single)
