"""Load a robot from URDF (the common subset) into a :class:`~diffsim.articulated.model.Model`.

Supported: ``<robot>`` with ``<link>`` (``<inertial>``: ``<origin xyz rpy>``, ``<mass value>``,
``<inertia ixx ixy ixz iyy iyz izz>``) and ``<joint>`` of type revolute, continuous, prismatic
or fixed (``<origin>``, ``<parent link>``, ``<child link>``, ``<axis xyz>``, ``<limit lower upper
effort velocity>``, ``<dynamics damping friction>``). ``<visual>`` and ``<material>`` are read
past; ``<collision>`` too, unless ``collisions=True``: then each ``<collision>`` shape becomes
ground-contact geometry of its link (:func:`collision_points`). So are the tags ROS files carry for
other programs, which change nothing in the rigid-body dynamics: ``<transmission>`` (ros_control's
actuator-to-joint map; the joint's own ``<limit effort>`` is its torque bound), ``<gazebo>``
(Gazebo's settings), a joint's ``<calibration>`` and ``<safety_controller>`` (a controller's soft
limits). Anything else (``<mimic>``, floating or planar joints (a floating base is
``floating_base=True``), a non-zero Coulomb ``friction``...) raises a
:class:`~diffsim.errors.ConfigError` that names the tag and where it is, unless it is listed in
``ignore``. Only ``xml.etree`` is used. Units: SI, as URDF specifies.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

import numpy as np

from ..errors import ConfigError
from .model import Model, RobotBuilder
from .spatial import rpy_matrix

_ROBOT_TAGS = {"link", "joint", "material", "transmission", "gazebo"}
_LINK_TAGS = {"inertial", "visual", "collision"}
_INERTIAL_TAGS = {"origin", "mass", "inertia"}
_JOINT_TAGS = {"origin", "parent", "child", "axis", "limit", "dynamics", "calibration", "safety_controller"}
_JOINT_TYPES = {"revolute", "continuous", "prismatic", "fixed"}


def _floats(el, attr, n, default, where):
    text = el.get(attr) if el is not None else None
    if text is None:
        return np.array(default, dtype=float)
    try:
        vals = [float(v) for v in text.split()]
    except ValueError:
        raise ConfigError(f"URDF {where}: attribute {attr}='{text}' is not a list of numbers") from None
    if len(vals) != n:
        raise ConfigError(f"URDF {where}: attribute {attr}='{text}' needs {n} numbers, has {len(vals)}")
    return np.array(vals)


def _float(el, attr, where, default=None):
    text = el.get(attr)
    if text is None:
        if default is None:
            raise ConfigError(f"URDF {where}: <{el.tag}> needs the attribute '{attr}'")
        return default
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"URDF {where}: {attr}='{text}' is not a number") from None


def _check_children(el, allowed, where, ignore):
    for child in el:
        if not isinstance(child.tag, str):  # comments
            continue
        if child.tag not in allowed and child.tag not in ignore:
            raise ConfigError(f"URDF {where}: tag <{child.tag}> is not supported (supported here: "
                              f"{sorted(allowed)}); remove it or pass ignore=('{child.tag}',)")


def read_robot_file(source, kind: str) -> str:
    """The XML text of ``source``: XML text itself (a str starting with '<'), or a path to a
    file (str or os.PathLike). ConfigError for anything else, naming what was given."""
    if isinstance(source, os.PathLike):
        path = os.fspath(source)
    elif isinstance(source, str):
        if source.lstrip().startswith("<"):
            return source
        path = source
    else:
        raise ConfigError(f"{kind} source must be XML text (str) or a path (str or pathlib.Path), got "
                          f"{type(source).__name__} {source!r:.80}")
    if not os.path.isfile(path):
        raise ConfigError(f"{kind} '{path}' is neither XML text nor an existing file")
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{kind} file '{path}' cannot be read as UTF-8 text: {exc}") from None


CYLINDER_RIM_POINTS = 8
"""Points on each rim circle of a cylinder's collision shape."""


def collision_points(shape: str, size: dict, where: str) -> list:
    """Contact geometry of a collision primitive, in its own frame: [(point (3,), radius), ...].

    sphere (radius r): its centre with radius r; capsule (radius r, length l along z): the two
    end spheres at z = +-l/2; box (size a b c): its 8 corners; cylinder (radius r, length l along
    z): CYLINDER_RIM_POINTS points on each rim circle. Against a plane these are exact for the
    sphere, capsule and box (their lowest point is one of them), and within r (1 - cos(pi / 8))
    (8 % of r) for the cylinder."""
    if shape == "sphere":
        return [(np.zeros(3), size["radius"])]
    if shape == "capsule":
        return [(np.array([0.0, 0.0, s * size["length"] / 2]), size["radius"]) for s in (-1.0, 1.0)]
    if shape == "box":
        a, b, c = size["size"] / 2
        return [(np.array([x, y, z]), 0.0) for x in (-a, a) for y in (-b, b) for z in (-c, c)]
    if shape == "cylinder":
        ang = 2 * np.pi * np.arange(CYLINDER_RIM_POINTS) / CYLINDER_RIM_POINTS
        r, h = size["radius"], size["length"] / 2
        return [(np.array([r * np.cos(t), r * np.sin(t), z]), 0.0) for z in (-h, h) for t in ang]
    raise ConfigError(f"URDF {where}: collision geometry <{shape}> is not supported as contact geometry "
                      "(spheres, capsules, boxes, cylinders are); replace it by primitives, or load with "
                      "collisions=False and add contact points yourself (contact_points=...)")


def _collisions(link, where) -> list:
    """[(point in the link frame, radius), ...] of every <collision> of ``link``."""
    out = []
    for col in link.findall("collision"):
        origin = col.find("origin")
        R = rpy_matrix(_floats(origin, "rpy", 3, (0, 0, 0), where))
        o = _floats(origin, "xyz", 3, (0, 0, 0), where)
        geom = col.find("geometry")
        shapes = [g for g in (geom if geom is not None else []) if isinstance(g.tag, str)]
        if len(shapes) != 1:
            raise ConfigError(f"URDF {where}: a <collision> needs one shape inside <geometry>, found "
                              f"{[g.tag for g in shapes]}")
        g = shapes[0]
        size = {}
        if g.tag in ("sphere", "capsule", "cylinder"):
            size["radius"] = _float(g, "radius", where)
        if g.tag in ("capsule", "cylinder"):
            size["length"] = _float(g, "length", where)
        if g.tag == "box":
            size["size"] = _floats(g, "size", 3, None, where) if g.get("size") else None
            if size["size"] is None:
                raise ConfigError(f"URDF {where}: <box> needs the attribute 'size'")
        if any(np.any(np.asarray(v) < 0) or not np.all(np.isfinite(v)) for v in size.values()):
            raise ConfigError(f"URDF {where}: collision <{g.tag}> sizes must be finite and >= 0, got {size}")
        out += [(R @ p + o, r) for p, r in collision_points(g.tag, size, where)]
    return out


def _welded_to_world(rb) -> set:
    """Links of a fixed-base robot that cannot move: the root and links fixed to it."""
    child = {j.child for j in rb.joints.values()}
    static = {n for n in rb.links if n not in child}
    grew = True
    while grew:
        grew = False
        for j in rb.joints.values():
            if j.kind == "fixed" and j.parent in static and j.child not in static:
                static.add(j.child)
                grew = True
    return static


def load_urdf(source, gravity=(0.0, 0.0, -9.81), ignore=(), contact_points=(), floating_base: bool = False,
              collisions: bool = False, **finalize_kwargs) -> Model:
    """Parse URDF text (str) or a path to a .urdf file (str or os.PathLike); returns the
    finalized Model.

    gravity: m/s^2 in the root link's frame. ignore: extra tag names to read past.
    contact_points: ``[(link, (x, y, z)), ...]`` points (m, link frame) that touch the ground
    (URDF has no tag for them; see :meth:`RobotBuilder.add_contact_point`).
    finalize_kwargs: passed to :meth:`RobotBuilder.finalize` (soft-limit stiffness, damping,
    onset; by default the gains are chosen from each joint's inertia and the system's dt).
    ``<limit effort>`` becomes the joint's effort limit (``ArticulatedSystem.control_limits()``),
    ``<limit velocity>`` its velocity limit (``Model.velocity_limit``: a smooth clamp).
    floating_base: the root link moves freely on a free joint (legged robots, humanoids).
    collisions: turn every ``<collision>`` sphere, capsule, box and cylinder into contact points
    (spheres with radii) against the ground (:func:`collision_points`; then give the system a
    :class:`~diffsim.articulated.dynamics.GroundContact`); a mesh is a ConfigError naming the link.
    """
    ignore = {ignore} if isinstance(ignore, str) else set(ignore)
    text = read_robot_file(source, "URDF")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ConfigError(f"URDF is not well-formed XML: {exc}") from None
    if root.tag != "robot":
        raise ConfigError(f"URDF root element must be <robot>, got <{root.tag}>")
    name = root.get("name", "robot")
    _check_children(root, _ROBOT_TAGS, f"robot '{name}'", ignore)
    rb = RobotBuilder(name, gravity, floating_base=floating_base)
    contacts = []
    for link in root.findall("link"):
        lname = link.get("name")
        if not lname:
            raise ConfigError("URDF: a <link> has no name")
        where = f"link '{lname}'"
        _check_children(link, _LINK_TAGS, where, ignore)
        if collisions:
            contacts += [(lname, p, r) for p, r in _collisions(link, where)]
        inertial = link.find("inertial")
        if inertial is None:
            rb.add_link(lname)
            continue
        _check_children(inertial, _INERTIAL_TAGS, where + " <inertial>", ignore)
        origin = inertial.find("origin")
        xyz = _floats(origin, "xyz", 3, (0, 0, 0), where)
        R = rpy_matrix(_floats(origin, "rpy", 3, (0, 0, 0), where))
        mass_el = inertial.find("mass")
        mass = 0.0 if mass_el is None else _float(mass_el, "value", where)
        I = np.zeros((3, 3))
        inertia_el = inertial.find("inertia")
        if inertia_el is not None:
            v = {k: _float(inertia_el, k, where, 0.0) for k in ("ixx", "ixy", "ixz", "iyy", "iyz", "izz")}
            I = np.array([[v["ixx"], v["ixy"], v["ixz"]], [v["ixy"], v["iyy"], v["iyz"]],
                          [v["ixz"], v["iyz"], v["izz"]]])
        rb.add_link(lname, mass=mass, com=xyz, inertia=R @ I @ R.T)
    for joint in root.findall("joint"):
        jname = joint.get("name")
        if not jname:
            raise ConfigError("URDF: a <joint> has no name")
        where = f"joint '{jname}'"
        kind = joint.get("type")
        if kind not in _JOINT_TYPES:
            raise ConfigError(f"URDF {where}: type '{kind}' is not supported; supported types are "
                              f"{sorted(_JOINT_TYPES)} (no planar joints or mimic; for a floating base pass "
                              "floating_base=True and leave out the world link and its joint)")
        _check_children(joint, _JOINT_TAGS, where, ignore)
        parent, child = joint.find("parent"), joint.find("child")
        if parent is None or child is None or not parent.get("link") or not child.get("link"):
            raise ConfigError(f"URDF {where}: needs <parent link=...> and <child link=...>")
        origin = joint.find("origin")
        lower = upper = effort = velocity = None
        limit = joint.find("limit")
        if limit is not None and kind in ("revolute", "prismatic"):
            lower = _float(limit, "lower", where, 0.0)
            upper = _float(limit, "upper", where, 0.0)
            if lower == upper == 0.0:
                lower = upper = None  # URDF's "no limit given"
        if limit is not None and kind != "fixed":
            effort = _float(limit, "effort", where, np.inf)
            if not effort > 0:
                raise ConfigError(f"URDF {where}: <limit effort='{limit.get('effort')}'> must be > 0 (N m or N)")
            velocity = _float(limit, "velocity", where, np.inf)
            if not velocity > 0:
                raise ConfigError(f"URDF {where}: <limit velocity='{limit.get('velocity')}'> must be > 0 (rad/s or "
                                  "m/s)")
        damping = 0.0
        dyn = joint.find("dynamics")
        if dyn is not None:
            damping = _float(dyn, "damping", where, 0.0)
            if _float(dyn, "friction", where, 0.0) != 0.0:
                raise ConfigError(f"URDF {where}: <dynamics friction> (Coulomb joint friction) is not "
                                  "supported; set it to 0 or drop it (viscous damping is)")
        rb.add_joint(jname, kind, parent.get("link"), child.get("link"),
                     xyz=_floats(origin, "xyz", 3, (0, 0, 0), where),
                     rpy=_floats(origin, "rpy", 3, (0, 0, 0), where),
                     axis=_floats(joint.find("axis"), "xyz", 3, (1, 0, 0), where),
                     damping=damping, lower=lower, upper=upper, effort=effort, velocity=velocity)
    static = set() if floating_base else _welded_to_world(rb)
    for lname, point, radius in contacts:
        if lname not in static:   # a fixed base's own collision shapes never move: no contact
            rb.add_contact_point(lname, point, radius)
    for entry in contact_points:
        try:
            link, point = entry
        except (TypeError, ValueError):
            raise ConfigError(f"contact_points entries must be (link, (x, y, z)), got {entry!r}") from None
        if link not in rb.links:
            raise ConfigError(f"contact point on unknown link '{link}'; links are {sorted(rb.links)}")
        rb.add_contact_point(link, point)
    return rb.finalize(**finalize_kwargs)
