"""Kinematic trees of links and joints: ``RobotBuilder`` assembles them, ``Model`` freezes them.

A robot is a tree of *links* (rigid bodies with mass, centre of mass and inertia) joined by
*joints* (revolute, continuous, prismatic or fixed). The one link that is no joint's child, the
root, is welded to the world (a fixed base), or with ``RobotBuilder(floating_base=True)`` moves
freely on a *free joint*: body 0, configuration (position (m), unit quaternion (w, x, y, z)) in
q[0:7], velocity in qd[0:6]: its angular velocity (rad/s) in body coordinates, then the velocity
of its origin (m/s) in world coordinates (MuJoCo's convention: a spinning body then translates
exactly under the explicit step); the other joints follow (``Model.q_index``,
``Model.v_index``). The free joint is not actuated (its 6 entries of tau are ignored). A *ball*
joint (spherical, 3 DOF, anywhere in the tree) rotates its child about the joint origin: its
unit quaternion (w, x, y, z) takes 4 entries of q (the child frame's rotation relative to the
joint frame), its angular velocity (rad/s, child body coordinates) 3 entries of qd and its
torque (N m, body coordinates) 3 entries of tau; it steps like the free joint's rotation
(quaternion advanced by the new angular velocity, renormalised). Ball joints take no position
or velocity limits (a ConfigError says so). Units: SI (m, kg, s, rad, N, N m).

``finalize()`` turns the tree into Featherstone's form:
- *bodies* are the links with a moving joint, numbered so that a parent comes before its
  children (``parent[i] < i``, -1 for the world); body i's one degree of freedom is q[i];
- a link welded to its parent by a fixed joint is merged into that parent's body (its mass and
  inertia added, its frame kept as an offset), so fixed joints cost nothing at run time;
- joint i's placement in its parent body is ``X_tree = (E_tree[i], joint_offset[i])``
  (coordinate rotation, and the joint origin in parent-body coordinates, m); the joint moves
  body i about (revolute) or along (prismatic) the unit ``axis[i]``, given in body i's frame
  (the URDF convention: the axis in the joint frame, which is the child link frame).

Per-body values that may be fitted (they become the ``Parameter`` ndarrays of a
:class:`~diffsim.articulated.system.ArticulatedSystem`): ``mass`` (kg), ``com`` (m, body
frame), ``inertia`` (kg m^2 about the centre of mass, body axes, as ixx, iyy, izz, ixy, ixz, iyz),
``joint_offset`` (m: for a serial chain, the length of the previous link), ``damping``
(N m s/rad or N s/m, viscous), ``armature`` (kg m^2 or kg, reflected rotor inertia added to the
joint's diagonal of the mass matrix).

Soft joint limits: beyond [lower, upper] a spring-damper pushes back through the shared contact
law (:func:`diffsim.contact.limit_force`): at depth d past the bound and rate v (> 0 leaving it)
the torque is ``relu_delta(k_lim d - c_lim v s(d / delta))``, continuous with a continuous
derivative at the bound (delta = ``limit_onset``, 0.05 rad or m by default: about the distance
a joint moving at 5 rad/s covers in one 0.01 s step, so that the stop's onset is resolved by
the time steps and a rollout's loss varies smoothly at the scale an optimizer probes; with
0.01 rad a scan of the initial rate through stops was 30-100x rougher). The gains are chosen per joint from its
effective inertia and the system's dt unless given (:mod:`~diffsim.articulated.limits`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError, finite_number
from .spatial import inertia_matrix, inertia_six, rpy_matrix

REVOLUTE, PRISMATIC, FREE, BALL = 0, 1, 2, 3
JOINT_KINDS = {"revolute": REVOLUTE, "continuous": REVOLUTE, "prismatic": PRISMATIC, "ball": BALL, "fixed": None}
NQ = {REVOLUTE: 1, PRISMATIC: 1, FREE: 7, BALL: 4}
"""Configuration coordinates of each joint kind (a ball joint: its unit quaternion)."""
NV = {REVOLUTE: 1, PRISMATIC: 1, FREE: 6, BALL: 3}
"""Velocity coordinates (and torques) of each joint kind (a ball joint: its angular velocity)."""
NO_LIMIT = 1e30
DEFAULT_LIMIT_ONSET = 0.05
"""Onset depth (rad or m) of a soft joint limit: the stop's force fades in over it."""


def _gain(value, nb, name, floating=False):
    """None, or a scalar/(nj,) soft-limit gain (nj 1-DOF joints) as an (nb,) array (0 for a
    free root, which has no limit)."""
    if value is None:
        return None
    nj = nb - 1 if floating else nb
    v = np.asarray(value, dtype=float)
    if v.shape not in ((), (nj,)):
        raise ConfigError(f"{name} must be a scalar or one value per moving joint ({nj}), got shape {v.shape}")
    v = np.broadcast_to(v, (nj,))
    return np.concatenate([[0.0], v]) if floating else v.copy()


@dataclass
class LinkSpec:
    name: str
    mass: float
    com: np.ndarray
    inertia: np.ndarray  # 3x3 about the centre of mass, link axes


@dataclass
class JointSpec:
    name: str
    kind: str
    parent: str
    child: str
    xyz: np.ndarray
    rpy: np.ndarray
    axis: np.ndarray
    damping: float = 0.0
    armature: float = 0.0
    lower: float = -NO_LIMIT
    upper: float = NO_LIMIT
    effort: float = np.inf
    actuated: bool = True
    velocity: float = np.inf


INERTIA_RTOL = 1e-9
"""Relative tolerance (of the largest principal moment) of the inertia checks."""


def inertia_violation(I) -> str | None:
    """Why the 3x3 inertia ``I`` (kg m^2, about the centre of mass) is not a rigid body's, or
    None. A body's principal moments are >= 0 and obey the triangle inequality (each at most
    the sum of the other two: I_xx = int (y^2 + z^2) dm, and so on). A point mass (all zero)
    and a thin rod (one zero, the other two equal) are the degenerate limits and pass."""
    lam = np.linalg.eigvalsh(0.5 * (I + I.T))
    tol = INERTIA_RTOL * max(float(np.abs(lam).max()), 1e-300)
    if lam[0] < -tol:
        return f"has a negative principal moment {lam[0]:.6g} kg m^2 (principal moments {_fmt(lam)})"
    if lam[2] > lam[0] + lam[1] + tol:
        return (f"violates the triangle inequality: its largest principal moment {lam[2]:.6g} kg m^2 exceeds "
                f"the sum of the other two, {lam[0] + lam[1]:.6g} (principal moments {_fmt(lam)}), which no "
                "mass distribution can have")
    return None


def _fmt(lam):
    return "(" + ", ".join(f"{x:.6g}" for x in lam) + ")"


def check_inertia(I, where: str):
    """ConfigError naming ``where`` when :func:`inertia_violation` finds ``I`` unphysical."""
    why = inertia_violation(np.asarray(I, dtype=float))
    if why is not None:
        raise ConfigError(f"{where}: the inertia {why}; give the inertia about the centre of mass in the "
                          "link frame (for a solid: I_xx = m (b^2 + c^2) / 12 for a box of sides a, b, c)")


def real_array(value, what) -> np.ndarray:
    """``value`` as a float64 array; ConfigError naming ``what`` for complex or non-numeric input
    (NumPy would drop an imaginary part with only a warning)."""
    if np.iscomplexobj(value):
        raise ConfigError(f"{what} must be real numbers, got complex values")
    try:
        return np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be numbers, got {value!r:.80}") from None


def positive_int(value, what) -> int:
    """``value`` as an int >= 1; ConfigError naming ``what`` otherwise (bools and 2.5 included)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{what} must be a whole number >= 1, got {value!r}")
    return int(value)


def positive_number(value, what) -> float:
    """``value`` as a finite float > 0; ConfigError naming ``what`` otherwise."""
    v = finite_number(value, what)
    if not v > 0:
        raise ConfigError(f"{what} must be > 0, got {value!r}")
    return v


def _vec3(value, what):
    try:
        v = np.asarray(value, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be 3 finite numbers, got {value!r}") from None
    if v.shape != (3,) or not np.all(np.isfinite(v)):
        raise ConfigError(f"{what} must be 3 finite numbers, got {value!r}")
    return v


class RobotBuilder:
    """Assemble a robot link by link, joint by joint, then ``finalize()`` into a :class:`Model`.

    ``floating_base``: the root link moves freely (a free joint, see the module doc) instead of
    being welded to the world.

    Example: a two-link planar arm swinging about y in the x-z plane, gravity along -z::

        rb = RobotBuilder("arm")
        rb.add_link("base")
        rb.add_link("upper", mass=1.0, com=(0.25, 0, 0), inertia=rod_inertia(1.0, 0.5, "x"))
        rb.add_link("fore", mass=1.0, com=(0.25, 0, 0), inertia=rod_inertia(1.0, 0.5, "x"))
        rb.add_joint("shoulder", "revolute", "base", "upper", axis=(0, 1, 0))
        rb.add_joint("elbow", "revolute", "upper", "fore", xyz=(0.5, 0, 0), axis=(0, 1, 0))
        model = rb.finalize()
    """

    def __init__(self, name: str = "robot", gravity=(0.0, 0.0, -9.81), floating_base: bool = False):
        self.name = name
        self.gravity = _vec3(gravity, "gravity")
        if not isinstance(floating_base, (bool, np.bool_)):
            raise ConfigError(f"floating_base must be True or False, got {floating_base!r}")
        self.floating_base = bool(floating_base)
        self.links: dict[str, LinkSpec] = {}
        self.joints: dict[str, JointSpec] = {}
        self.contacts: list[tuple[str, np.ndarray, float]] = []

    def add_link(self, name: str, mass: float = 0.0, com=(0.0, 0.0, 0.0), inertia=None) -> str:
        """A link: mass (kg), centre of mass (m, link frame), inertia about the centre of mass
        (kg m^2; a 3x3 matrix, 6 numbers ixx, iyy, izz, ixy, ixz, iyz, or None for a point mass)."""
        if name in self.links:
            raise ConfigError(f"link '{name}' is defined twice")
        mass = finite_number(mass, f"link '{name}' mass (kg)")
        if mass < 0:
            raise ConfigError(f"link '{name}': mass {mass} kg must be finite and >= 0")
        try:
            I = np.zeros((3, 3)) if inertia is None else np.asarray(inertia, dtype=float)
        except (TypeError, ValueError):
            raise ConfigError(f"link '{name}': inertia must be a symmetric 3x3 matrix or 6 numbers "
                              f"(ixx, iyy, izz, ixy, ixz, iyz), got {inertia!r}") from None
        if I.shape == (6,):
            I = inertia_matrix(I)
        if I.shape != (3, 3) or not np.allclose(I, I.T) or not np.all(np.isfinite(I)):
            raise ConfigError(f"link '{name}': inertia must be a symmetric 3x3 matrix or 6 numbers "
                              f"(ixx, iyy, izz, ixy, ixz, iyz), got {inertia!r}")
        check_inertia(I, f"link '{name}'")
        self.links[name] = LinkSpec(name, float(mass), _vec3(com, f"link '{name}' com"), I)
        return name

    def add_joint(self, name: str, kind: str, parent: str, child: str, xyz=(0.0, 0.0, 0.0),
                  rpy=(0.0, 0.0, 0.0), axis=(1.0, 0.0, 0.0), damping: float = 0.0,
                  armature: float = 0.0, lower: float | None = None, upper: float | None = None,
                  effort: float | None = None, actuated: bool = True, velocity: float | None = None) -> str:
        """A joint of ``kind`` revolute, continuous, prismatic, ball or fixed, placing ``child``'s frame
        at ``xyz`` (m) and roll-pitch-yaw ``rpy`` (rad) in ``parent``'s frame; ``axis`` (unit
        after normalising) in the child frame; damping, armature, position limits (rad or m;
        None for none), the actuator's effort limit (N m or N; informative, e.g. for optimizer
        bounds), whether the joint is ``actuated`` (a passive joint ignores its control) and its
        ``velocity`` limit (rad/s or m/s, > 0; None for none: each step smoothly clamps the new velocity to it, see
        ``Model.velocity_limit``)."""
        if name in self.joints:
            raise ConfigError(f"joint '{name}' is defined twice")
        if kind not in JOINT_KINDS:
            raise ConfigError(f"joint '{name}': type '{kind}' is not supported; use one of "
                              f"{sorted(JOINT_KINDS)} (for a floating base: RobotBuilder(floating_base=True))")
        a = _vec3(axis, f"joint '{name}' axis")
        if kind == "ball":
            for what, value in (("lower", lower), ("upper", upper), ("velocity", velocity)):
                if value is not None:
                    raise ConfigError(f"joint '{name}': a ball joint takes no {what} limit (got {what}={value!r}): "
                                      "limits of a spherical joint (cones, twist) are not supported; leave it None, "
                                      "or build the joint from three revolute joints with limits")
            a = np.zeros(3)   # a ball joint has no axis
        elif JOINT_KINDS[kind] is not None:
            norm = np.linalg.norm(a)
            if norm < 1e-12:
                raise ConfigError(f"joint '{name}': axis {axis!r} has zero length")
            a = a / norm
        damping = finite_number(damping, f"joint '{name}' damping (N m s/rad or N s/m)")
        armature = finite_number(armature, f"joint '{name}' armature (kg m^2 or kg)")
        if damping < 0 or armature < 0:
            raise ConfigError(f"joint '{name}': damping ({damping}) and armature ({armature}) must be >= 0")
        lo = -NO_LIMIT if lower is None or kind == "continuous" else finite_number(lower, f"joint '{name}' lower limit")
        hi = NO_LIMIT if upper is None or kind == "continuous" else finite_number(upper, f"joint '{name}' upper limit")
        if effort is not None:
            effort = finite_number(effort, f"joint '{name}' effort limit (N m or N)", allow_inf=True)
            if not effort > 0:
                raise ConfigError(f"joint '{name}': effort limit {effort} must be > 0 (N m or N), or None for none")
        if lo > hi:
            raise ConfigError(f"joint '{name}': lower limit {lo} is above upper limit {hi}")
        if velocity is not None:
            velocity = finite_number(velocity, f"joint '{name}' velocity limit (rad/s or m/s)", allow_inf=True)
            if not velocity > 0:
                raise ConfigError(f"joint '{name}': velocity limit {velocity} must be > 0 (rad/s or m/s), or None "
                                  "for none")
        self.joints[name] = JointSpec(name, kind, parent, child, _vec3(xyz, f"joint '{name}' xyz"),
                                      _vec3(rpy, f"joint '{name}' rpy"), a, float(damping),
                                      float(armature), lo, hi,
                                      np.inf if effort is None else float(effort), bool(actuated),
                                      np.inf if velocity is None else float(velocity))
        return name

    def add_contact_point(self, link: str, point=(0.0, 0.0, 0.0), radius: float = 0.0):
        """A point (m, in ``link``'s frame) that touches the ground plane z = ground height
        through the shared penalty contact model (diffsim.contact); with a ``radius`` (m) > 0,
        a sphere centred there (it touches with its lowest point, where friction acts)."""
        r = finite_number(radius, f"contact point on '{link}': radius (m)")
        if r < 0:
            raise ConfigError(f"contact point on '{link}': radius {r} m must be >= 0")
        self.contacts.append((link, _vec3(point, f"contact point on '{link}'"), r))

    def finalize(self, limit_stiffness=None, limit_damping=None, limit_onset: float = DEFAULT_LIMIT_ONSET) -> Model:
        """Check the tree, merge fixed joints, order bodies parent-first; return the Model.

        Soft limits: ``limit_stiffness`` (N m/rad or N/m) and ``limit_damping`` (N m s/rad or
        N s/m), scalars or one per moving joint; None (the default) chooses them per joint from
        its effective inertia and the system's dt (omega dt = 0.4, critically damped; given
        gains are checked against dt when a system is built: see
        :mod:`~diffsim.articulated.limits`). ``limit_onset`` (rad or m, > 0): the depth over
        which a stop's force fades in (the shared contact law's delta)."""
        for name, value in (("limit_stiffness", limit_stiffness), ("limit_damping", limit_damping)):
            if value is not None:
                v = np.asarray(value, dtype=float)
                if not np.all(np.isfinite(v)) or np.any(v < 0) or (name == "limit_stiffness" and np.any(v <= 0)):
                    raise ConfigError(f"{name} must be finite and {'> 0' if name == 'limit_stiffness' else '>= 0'} "
                                      f"(or None to choose it from the joint's inertia and dt), got {value!r}")
        if not (np.isfinite(limit_onset) and limit_onset > 0):
            raise ConfigError(f"limit_onset must be a finite depth > 0 (rad or m), got {limit_onset!r}")
        if not self.links:
            raise ConfigError(f"robot '{self.name}' has no links")
        children_of: dict[str, list[JointSpec]] = {n: [] for n in self.links}
        parent_joint: dict[str, JointSpec] = {}
        for j in self.joints.values():
            for end in (j.parent, j.child):
                if end not in self.links:
                    raise ConfigError(f"joint '{j.name}' refers to link '{end}', which is not defined; "
                                      f"links are {sorted(self.links)}")
            if j.child in parent_joint:
                raise ConfigError(f"link '{j.child}' is the child of two joints "
                                  f"('{parent_joint[j.child].name}' and '{j.name}'): not a tree")
            parent_joint[j.child] = j
            children_of[j.parent].append(j)
        roots = [n for n in self.links if n not in parent_joint]
        if len(roots) != 1:
            raise ConfigError(f"robot '{self.name}' must have exactly one root link (a link that is no "
                              f"joint's child), found {roots or 'none (a cycle)'}")
        root = roots[0]

        # frames[link] = (body index or -1 for the world, R (link axes in body coords), p (m))
        frames: dict[str, tuple[int, np.ndarray, np.ndarray]] = {root: (-1, np.eye(3), np.zeros(3))}
        bodies: list[dict] = []
        if self.floating_base:  # body 0: the root link on a free joint (position + unit quaternion)
            free = JointSpec(f"{root}_free", "free", "world", root, np.zeros(3), np.zeros(3), np.zeros(3),
                             actuated=False)
            bodies.append({"joint": free, "parent": -1, "E_tree": np.eye(3), "offset": np.zeros(3)})
            frames[root] = (0, np.eye(3), np.zeros(3))
        order = [root]
        k = 0
        while k < len(order):
            link = order[k]
            k += 1
            body, Rl, pl = frames[link]
            for j in children_of[link]:
                Rj = Rl @ rpy_matrix(j.rpy)
                pj = pl + Rl @ j.xyz
                if JOINT_KINDS.get(j.kind) is None:
                    frames[j.child] = (body, Rj, pj)
                else:
                    bodies.append({"joint": j, "parent": body, "E_tree": Rj.T, "offset": pj})
                    frames[j.child] = (len(bodies) - 1, np.eye(3), np.zeros(3))
                order.append(j.child)
        if len(order) != len(self.links):
            missing = sorted(set(self.links) - set(order))
            raise ConfigError(f"links {missing} are not connected to the root '{root}' (a cycle?)")
        # bodies were appended breadth-first, so parent[i] < i.
        nb = len(bodies)
        if nb == 0:
            raise ConfigError(f"robot '{self.name}' has no moving joint")
        mass = np.zeros(nb)
        first = np.zeros((nb, 3))   # sum m c
        second = np.zeros((nb, 3, 3))  # sum of inertias about the body origin
        for name, (b, R, p) in frames.items():
            if b < 0:
                continue
            L = self.links[name]
            c = R @ L.com + p
            Ic = R @ L.inertia @ R.T
            mass[b] += L.mass
            first[b] += L.mass * c
            second[b] += Ic + L.mass * (np.dot(c, c) * np.eye(3) - np.outer(c, c))
        com = np.zeros((nb, 3))
        inertia = np.zeros((nb, 6))
        carries = {bd["parent"] for bd in bodies}  # bodies that other bodies hang from
        for b in range(nb):
            name = bodies[b]["joint"].child
            if mass[b] <= 0 and b not in carries:
                raise ConfigError(f"body '{name}' (with the links welded to it) has no mass: every link "
                                  "moved by a joint needs mass > 0, or a body moved through it, for the dynamics "
                                  "to be defined")
            # a massless body that carries others (a planar root's x and z carriages, the links
            # between MJCF joints of one body) is an intermediate frame; the joint-space inertia
            # check below still refuses a joint that moves no inertia
            com[b] = first[b] / mass[b] if mass[b] > 0 else 0.0
            c = com[b]
            Ic = second[b] - mass[b] * (np.dot(c, c) * np.eye(3) - np.outer(c, c))
            inertia[b] = inertia_six(0.5 * (Ic + Ic.T))
        joints = [bd["joint"] for bd in bodies]
        contacts = []
        for link, point, radius in self.contacts:
            if link not in frames:
                raise ConfigError(f"contact point on unknown link '{link}'; links are {sorted(self.links)}")
            b, R, p = frames[link]
            if b < 0:
                raise ConfigError(f"contact point on link '{link}', which is welded to the world: "
                                  "it can never move; put it on a moving link")
            contacts.append((b, R @ point + p, radius))
        model = Model(
            name=self.name, gravity=self.gravity.copy(), root=root,
            body_names=tuple(j.child for j in joints), joint_names=tuple(j.name for j in joints),
            parent=tuple(int(bd["parent"]) for bd in bodies),
            jtype=tuple(FREE if j.kind == "free" else JOINT_KINDS[j.kind] for j in joints),
            axis=np.array([j.axis for j in joints]), E_tree=np.array([bd["E_tree"] for bd in bodies]),
            joint_offset=np.array([bd["offset"] for bd in bodies]), mass=mass, com=com, inertia=inertia,
            damping=np.array([j.damping for j in joints]), armature=np.array([j.armature for j in joints]),
            lower=np.array([j.lower for j in joints]), upper=np.array([j.upper for j in joints]),
            effort=np.array([j.effort for j in joints]), actuated=np.array([j.actuated for j in joints]),
            velocity_limit=np.array([getattr(j, "velocity", np.inf) for j in joints], dtype=float),
            limit_stiffness=_gain(limit_stiffness, nb, "limit_stiffness", self.floating_base),
            limit_damping=_gain(limit_damping, nb, "limit_damping", self.floating_base),
            limit_onset=float(limit_onset),
            frames={n: (b, R.copy(), p.copy()) for n, (b, R, p) in frames.items()},
            contact_body=tuple(int(c[0]) for c in contacts),
            contact_point=np.array([c[1] for c in contacts]).reshape(-1, 3),
            contact_radius=np.array([c[2] for c in contacts], dtype=float), floating=self.floating_base)
        if model.floating:
            lam = np.linalg.eigvalsh(inertia_matrix(model.inertia[0]))
            if lam[0] <= INERTIA_RTOL * max(lam[-1], 1e-300):
                raise ConfigError(f"root link '{root}' of the floating robot '{self.name}' (with the links welded to "
                                  f"it) has no rotational inertia about some axis (principal moments {_fmt(lam)}), "
                                  "so its free joint's acceleration is undefined: give it an inertia")
        if model.nv > (6 if model.floating else 0):
            check_joint_inertia(model.fixed_base() if model.floating else model)
        return model


def check_joint_inertia(model: Model, params=None, poses=None):
    """ConfigError when the joint-space inertia M(q) + diag(armature) is singular at one of
    ``poses`` (default: the zero pose clipped into the limits and 16 fixed sample poses), e.g.
    a point mass on its joint's axis: zero inertia about the axis, so forward dynamics divides
    by zero. Names the joint that moves without inertia and the two fixes."""
    from .limits import sample_configurations
    from .reference import crba

    for q in (sample_configurations(model) if poses is None else poses):
        M = crba(model, q, params)
        lam, vec = np.linalg.eigh(0.5 * (M + M.T))
        if lam[0] > INERTIA_RTOL * max(float(lam[-1]), 1e-300) and np.all(np.isfinite(lam)):
            continue
        dof = int(np.argmax(np.abs(vec[:, 0])))
        j = int(np.searchsorted(model.v_index, dof, side="right")) - 1   # the body whose joint has that dof
        kind = {REVOLUTE: "moment of inertia about its axis", BALL: "moment of inertia about some axis through "
                "the ball joint"}.get(model.jtype[j], "mass along its axis")
        raise ConfigError(
            f"robot '{model.name}': joint '{model.joint_names[j]}' (moving link '{model.body_names[j]}' and "
            f"what it carries) has no {kind} at q = {np.round(q, 4).tolist()} (smallest eigenvalue of the "
            f"joint-space inertia {lam[0]:.3g}), so its acceleration is undefined (a point mass on the joint "
            f"axis, say); give link '{model.body_names[j]}' an inertia about the axis, or the joint an "
            "armature > 0 (kg m^2 or kg, the reflected rotor inertia)")


@dataclass
class Model:
    """A finalized robot (see the module doc): static topology plus nominal parameter values.

    Shapes: nb bodies = degrees of freedom; ``axis``, ``joint_offset``, ``com`` (nb, 3);
    ``E_tree`` (nb, 3, 3); ``inertia`` (nb, 6); ``mass``, ``damping``, ``armature``, ``lower``,
    ``upper``, ``effort`` (nb,), ``actuated`` (nb,) bool; ``velocity_limit`` (nb,) (rad/s or m/s,
    inf for none: each step's new joint velocity is smoothly clamped to (-v_max, v_max), the
    identity up to v_max - w (w = 5 % of v_max) and C^2, so that |qd| <= v_max always; within the
    band above v_max - w it is also a slow drag towards v_max - w (a smooth clamp cannot be
    idempotent); URDF ``<limit velocity>``); ``limit_stiffness``, ``limit_damping``
    None (chosen per joint from its inertia and dt) or (nb,); ``limit_onset`` (rad or m). ``frames[link] = (body, R, p)``
    places every link (including those merged by fixed joints) in its body's frame; body -1 is
    the world.
    """

    name: str
    gravity: np.ndarray
    root: str
    body_names: tuple
    joint_names: tuple
    parent: tuple
    jtype: tuple
    axis: np.ndarray
    E_tree: np.ndarray
    joint_offset: np.ndarray
    mass: np.ndarray
    com: np.ndarray
    inertia: np.ndarray
    damping: np.ndarray
    armature: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    effort: np.ndarray
    actuated: np.ndarray
    limit_stiffness: object  # None (chosen from inertia and dt), or (nb,) N m/rad | N/m
    limit_damping: object  # None (critical), or (nb,) N m s/rad | N s/m
    frames: dict = field(repr=False)
    contact_body: tuple = ()
    contact_point: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    contact_radius: np.ndarray = field(default_factory=lambda: np.zeros(0))
    limit_onset: float = DEFAULT_LIMIT_ONSET
    floating: bool = False
    velocity_limit: object = None  # (nb,) rad/s | m/s, inf for none (None: no limits)
    home: object = None  # (nq,) the configuration the robot file places it in (MuJoCo's qpos0), None: neutral

    def __post_init__(self):
        v = np.full(len(self.parent), np.inf) if self.velocity_limit is None else self.velocity_limit
        self.velocity_limit = np.asarray(v, dtype=float)

    PARAMETERS = ("mass", "com", "inertia", "joint_offset", "damping", "armature")

    @property
    def nb(self) -> int:
        """Number of moving bodies (= degrees of freedom)."""
        return len(self.parent)

    @property
    def ndof(self) -> int:
        """Degrees of freedom (= nv)."""
        return self.nv

    @property
    def nq(self) -> int:
        """Length of the configuration q: one per 1-DOF joint, 7 for a free joint (position
        (m) and unit quaternion (w, x, y, z) of the root body in the world), 4 per ball joint
        (its unit quaternion)."""
        return sum(NQ[j] for j in self.jtype)

    @property
    def nv(self) -> int:
        """Length of the velocity qd (and of the torques tau): one per 1-DOF joint, 6 for a
        free joint (the root body's angular velocity (rad/s) in body coordinates and the velocity
        of its origin (m/s) in world coordinates), 3 per ball joint (angular velocity, rad/s, in
        its child's body coordinates)."""
        return sum(NV[j] for j in self.jtype)

    @property
    def has_ball(self) -> bool:
        """Whether the robot has a ball (spherical) joint."""
        return BALL in self.jtype

    @property
    def q_index(self) -> tuple:
        """Index in q of each body's first joint coordinate."""
        return tuple(int(x) for x in np.cumsum([0] + [NQ[j] for j in self.jtype])[:-1])

    @property
    def v_index(self) -> tuple:
        """Index in qd (and tau) of each body's first joint velocity."""
        return tuple(int(x) for x in np.cumsum([0] + [NV[j] for j in self.jtype])[:-1])

    @property
    def joint_dofs(self) -> tuple:
        """Velocity coordinates of each body's joint (1, 3 for a ball joint, 6 for a free root)."""
        return tuple(NV[j] for j in self.jtype)

    def neutral_configuration(self) -> np.ndarray:
        """q (nq,) with every joint at 0, a free root at the origin, unrotated, and every ball
        joint unrotated (quaternion (1, 0, 0, 0))."""
        q = np.zeros(self.nq)
        for i, j in enumerate(self.jtype):
            if j == FREE:
                q[self.q_index[i] + 3] = 1.0
            elif j == BALL:
                q[self.q_index[i]] = 1.0
        return q

    def initial_configuration(self) -> np.ndarray:
        """q (nq,) a system starts from unless told otherwise: :attr:`home` where the robot file
        gives one (an MJCF floating base at its ``<body pos quat>``, as MuJoCo's qpos0), else
        :meth:`neutral_configuration`."""
        return self.neutral_configuration() if self.home is None else np.array(self.home, dtype=np.float64)

    def quaternion_slices(self) -> list:
        """(joint name, start index in q) of every unit quaternion in q (free and ball joints;
        the free joint's at q[3:7])."""
        out = []
        for i, j in enumerate(self.jtype):
            if j in (FREE, BALL):
                out.append((self.joint_names[i], self.q_index[i] + (3 if j == FREE else 0)))
        return out

    def fixed_base(self) -> Model:
        """The same robot with its root welded to the world: a floating model's 1-DOF joints
        alone (bodies 1.. renumbered from 0; contact points on the root dropped). Used for what
        concerns those joints only (soft-limit gains, their inertia checks)."""
        if not self.floating:
            return self
        keep = [k for k, b in enumerate(self.contact_body) if b > 0]
        return Model(
            name=self.name, gravity=self.gravity, root=self.root, body_names=self.body_names[1:],
            joint_names=self.joint_names[1:], parent=tuple(p - 1 for p in self.parent[1:]), jtype=self.jtype[1:],
            axis=self.axis[1:], E_tree=self.E_tree[1:], joint_offset=self.joint_offset[1:], mass=self.mass[1:],
            com=self.com[1:], inertia=self.inertia[1:], damping=self.damping[1:], armature=self.armature[1:],
            lower=self.lower[1:], upper=self.upper[1:], effort=self.effort[1:], actuated=self.actuated[1:],
            limit_stiffness=None if self.limit_stiffness is None else self.limit_stiffness[1:],
            limit_damping=None if self.limit_damping is None else self.limit_damping[1:],
            frames={n: (b - 1, R, p) for n, (b, R, p) in self.frames.items()},
            contact_body=tuple(self.contact_body[k] - 1 for k in keep),
            contact_point=self.contact_point[keep].reshape(-1, 3), contact_radius=self.contact_radius[keep],
            limit_onset=self.limit_onset, velocity_limit=self.velocity_limit[1:])

    @property
    def topology(self) -> tuple:
        """What the compiled kernels depend on: parents, joint types, contact bodies."""
        return (self.parent, self.jtype, self.contact_body)

    def parameters(self) -> dict:
        """Nominal values of the fittable per-body parameters, {name: (nb, ...) array}."""
        return {k: np.array(getattr(self, k), dtype=float) for k in self.PARAMETERS}

    def body_of(self, link: str) -> int:
        """Index of the body carrying ``link`` (-1 for links welded to the world)."""
        if link not in self.frames:
            raise ConfigError(f"unknown link '{link}'; links are {sorted(self.frames)}")
        return self.frames[link][0]

    def point_on(self, link: str, point=(0.0, 0.0, 0.0)) -> tuple:
        """(body, point in body coordinates) of a point given in ``link``'s frame (m)."""
        b, R, p = self.frames.get(link, (None, None, None))
        if b is None:
            raise ConfigError(f"unknown link '{link}'; links are {sorted(self.frames)}")
        if b < 0:
            raise ConfigError(f"link '{link}' is welded to the world; pick a link that moves")
        return b, R @ _vec3(point, "point") + p

    def ancestors(self, body: int) -> list:
        """Bodies from ``body`` up to the root, ``body`` first."""
        out = []
        while body >= 0:
            out.append(body)
            body = self.parent[body]
        return out

    def children(self, body: int) -> list:
        """Indices of the bodies whose parent is ``body``."""
        return [i for i, p in enumerate(self.parent) if p == body]


# ---------------------------------------------------------------------------- ready-made robots


def rod_inertia(mass: float, length: float, along: str = "x") -> np.ndarray:
    """Inertia (kg m^2) of a thin uniform rod about its centre, its length along ``along``."""
    i = mass * length ** 2 / 12.0
    d = {"x": (0.0, i, i), "y": (i, 0.0, i), "z": (i, i, 0.0)}[along]
    return np.diag(d)


def _per_link(value, n, what) -> np.ndarray:
    v = real_array(value, what)
    if v.shape not in ((), (n,)) or not np.all(np.isfinite(v)):
        raise ConfigError(f"{what} must be one finite number or {n} (one per link), got {value!r}")
    return np.broadcast_to(v, (n,))


def planar_arm(n: int = 5, lengths=0.3, masses=1.0, damping=0.05, armature=0.0,
               lower=None, upper=None, gravity=(0.0, 0.0, -9.81), base_height: float = 0.0,
               name: str = "arm", tip_contact: bool = False) -> Model:
    """An n-link serial arm of uniform rods moving in the x-z plane (joints about y).

    With q = 0 every link points along +x; a positive joint angle turns its link from +x toward
    -z (right-handed about +y: with gravity along -z, q = pi/2 at the first joint hangs the arm
    straight down). The tip link ``tip`` sits at the end of the last rod.
    lengths (m), masses (kg), damping (N m s/rad), armature (kg m^2): scalars or n values.
    """
    if isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n < 1:
        raise ConfigError(f"an arm needs at least one link, got n={n}")
    n = positive_int(n, "planar_arm n (the number of links)")
    L, M, C, Ar = (_per_link(v, n, name) for v, name in ((lengths, "lengths (m)"), (masses, "masses (kg)"),
                                                         (damping, "damping (N m s/rad)"),
                                                         (armature, "armature (kg m^2)")))
    if np.any(L <= 0):
        raise ConfigError(f"planar_arm lengths must be > 0 m, got {lengths!r}")
    rb = RobotBuilder(name, gravity)
    rb.add_link("base")
    prev = "base"
    for i in range(n):
        link = f"link{i}"
        rb.add_link(link, mass=M[i], com=(L[i] / 2, 0, 0), inertia=rod_inertia(M[i], L[i], "x"))
        xyz = (0.0, 0.0, base_height) if i == 0 else (L[i - 1], 0.0, 0.0)
        rb.add_joint(f"joint{i}", "revolute", prev, link, xyz=xyz, axis=(0, 1, 0), damping=C[i],
                     armature=Ar[i], lower=lower, upper=upper)
        prev = link
    rb.add_link("tip")
    rb.add_joint("tip_weld", "fixed", prev, "tip", xyz=(L[-1], 0.0, 0.0))
    if tip_contact:
        rb.add_contact_point("tip")
    return rb.finalize()


def cartpole(cart_mass: float = 1.0, pole_mass: float = 0.1, pole_length: float = 1.0,
             cart_damping: float = 0.0, pole_damping: float = 0.0, track: float | None = None,
             gravity=(0.0, 0.0, -9.81), pole_actuated: bool = False, force_limit: float | None = None) -> Model:
    """Cart on a rail along x (prismatic, q[0] in m) carrying a pole hinged about y (q[1] in rad).

    q[1] = 0 hangs the pole straight down (-z), q[1] = pi points it up. The pole is a uniform
    rod; its tip is the link ``tip``. ``track``: half-length (m) of the rail, a soft limit.
    The hinge is passive unless ``pole_actuated``; ``force_limit`` (N) is the cart's effort limit.
    """
    rb = RobotBuilder("cartpole", gravity)
    rb.add_link("rail")
    rb.add_link("cart", mass=cart_mass, inertia=np.diag([1e-3, 1e-3, 1e-3]) * cart_mass)
    rb.add_link("pole", mass=pole_mass, com=(0, 0, -pole_length / 2),
                inertia=rod_inertia(pole_mass, pole_length, "z"))
    rb.add_link("tip")
    rb.add_joint("slider", "prismatic", "rail", "cart", axis=(1, 0, 0), damping=cart_damping,
                 lower=None if track is None else -track, upper=track, effort=force_limit)
    rb.add_joint("hinge", "revolute", "cart", "pole", axis=(0, 1, 0), damping=pole_damping,
                 actuated=pole_actuated)
    rb.add_joint("tip_weld", "fixed", "pole", "tip", xyz=(0, 0, -pole_length))
    return rb.finalize()
