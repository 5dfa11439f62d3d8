"""Load a robot from URDF (the common subset) into a :class:`~diffsim.articulated.model.Model`.

Supported: ``<robot>`` with ``<link>`` (``<inertial>``: ``<origin xyz rpy>``, ``<mass value>``,
``<inertia ixx ixy ixz iyy iyz izz>``) and ``<joint>`` of type revolute, continuous, prismatic
or fixed (``<origin>``, ``<parent link>``, ``<child link>``, ``<axis xyz>``, ``<limit lower upper
effort velocity>``, ``<dynamics damping friction>``). ``<visual>``, ``<collision>`` and
``<material>`` are geometry and colour: read past. Anything else (``<transmission>``,
``<gazebo>``, ``<mimic>``, floating or planar joints, a non-zero Coulomb ``friction``...) raises a
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

_ROBOT_TAGS = {"link", "joint", "material"}
_LINK_TAGS = {"inertial", "visual", "collision"}
_INERTIAL_TAGS = {"origin", "mass", "inertia"}
_JOINT_TAGS = {"origin", "parent", "child", "axis", "limit", "dynamics"}
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


def load_urdf(source, gravity=(0.0, 0.0, -9.81), ignore=(), contact_points=(), **finalize_kwargs) -> Model:
    """Parse URDF text (str) or a path to a .urdf file (str or os.PathLike); returns the
    finalized Model.

    gravity: m/s^2 in the root link's frame. ignore: extra tag names to read past.
    contact_points: ``[(link, (x, y, z)), ...]`` points (m, link frame) that touch the ground
    (URDF has no tag for them; see :meth:`RobotBuilder.add_contact_point`).
    finalize_kwargs: passed to :meth:`RobotBuilder.finalize` (soft-limit stiffness, damping,
    onset; by default the gains are chosen from each joint's inertia and the system's dt).
    ``<limit effort>`` becomes the joint's effort limit (``ArticulatedSystem.control_limits()``).
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
    rb = RobotBuilder(name, gravity)
    for link in root.findall("link"):
        lname = link.get("name")
        if not lname:
            raise ConfigError("URDF: a <link> has no name")
        where = f"link '{lname}'"
        _check_children(link, _LINK_TAGS, where, ignore)
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
                              f"{sorted(_JOINT_TYPES)} (no floating base, planar joints or mimic)")
        _check_children(joint, _JOINT_TAGS, where, ignore)
        parent, child = joint.find("parent"), joint.find("child")
        if parent is None or child is None or not parent.get("link") or not child.get("link"):
            raise ConfigError(f"URDF {where}: needs <parent link=...> and <child link=...>")
        origin = joint.find("origin")
        lower = upper = effort = None
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
                     damping=damping, lower=lower, upper=upper, effort=effort)
    for entry in contact_points:
        try:
            link, point = entry
        except (TypeError, ValueError):
            raise ConfigError(f"contact_points entries must be (link, (x, y, z)), got {entry!r}") from None
        if link not in rb.links:
            raise ConfigError(f"contact point on unknown link '{link}'; links are {sorted(rb.links)}")
        rb.add_contact_point(link, point)
    return rb.finalize(**finalize_kwargs)
