"""Load a robot from MJCF (MuJoCo's XML, the common subset) into a :class:`~diffsim.articulated.model.Model`.

Read past as changing nothing in the dynamics: ``<visual>``, ``<asset>``, ``<statistic>``, ``<size>``,
``<sensor>``, ``<keyframe>``, ``<custom>``, ``<contact><exclude>`` (robot geoms touch only the ground
here), sites, cameras and lights. Supported: ``<mujoco>`` with ``<default>`` classes (nested, chosen by ``class`` and a body's
``childclass`` as MuJoCo chooses them, written into the elements before anything is read),
``<compiler angle eulerseq>`` (angles in degrees unless
``angle="radian"``, as MuJoCo reads them), ``<option gravity timestep>``, one tree of ``<body
name pos quat|euler>`` under ``<worldbody>``, with joints ``<joint type="hinge"|
"slide"|"ball" axis pos range damping armature ref>`` (``ref``: the joint's coordinate in the file's
pose, MuJoCo's qpos0, which becomes ``model.home``) or ``<freejoint/>`` / ``type="free"`` on the top
body (a floating base); several hinges and slides in one body act in order, as MuJoCo composes
them (a planar root's x, z and pitch: each but the last moves a massless frame); a ball joint (spherical, about its ``pos``; no ``range``: MuJoCo's cone
limit is not supported and raises a ConfigError) takes a unit quaternion in q, as MuJoCo's qpos, ``<geom type="sphere"|"capsule"|"box"|"cylinder" size pos quat|euler fromto
mass density>`` (mass and inertia from the geometry, density 1000 kg/m^3 by default, unless the
body has an ``<inertial pos mass diaginertia|fullinertia quat>``; geoms also become contact
geometry with ``collisions=True``, except those with ``contype="0" conaffinity="0"``, which
MuJoCo pairs with nothing), and ``<actuator><motor joint gear ctrlrange>`` (the joint's
effort limit is gear * max|ctrlrange|; joints without a motor are passive; a ``<motor>`` on a ball
joint makes all three of its torque components controls, each within gear * max|ctrlrange|,
where MuJoCo's motor would drive the one axis its 3-number gear names). Anything else
(``<tendon>``, ``<equality>``, a ``<contact><pair>``, meshes, a ball joint beside others in one body...) raises a :class:`~diffsim.errors.ConfigError` naming it, and so does an attribute
this loader does not read (a joint's ``stiffness``, ``springref`` or ``frictionloss`` other than
0, a body's ``gravcomp``...), except names, looks and MuJoCo's solver and contact parameters
(``solref``, ``solimp``, ``friction``, ``condim``, ``margin``...): the ground contact and the
joint limits follow diffsim's own laws (:mod:`diffsim.contact`). MJCF has no joint velocity
limit (MuJoCo bounds actuator forces, not joint speeds), so ``Model.velocity_limit`` stays unset
(set it on the model, or use URDF's ``<limit velocity>``). Units: SI. Only ``xml.etree``
is used (the ``mujoco`` package would compile the full format, but version 4.0.0 pulls in
mujoco-core, mujoco-studio, glfw and pyopengl for what this subset needs).

Returns ``(model, options)``: ``options`` holds ``timestep`` (s) when the file gives one, ``ground``
(``{"height": m, "friction": mu}`` of the ``<worldbody>``'s horizontal plane geom, the floor: pass
it as ``GroundContact(**options["ground"])``; with ``collisions=True`` other static geoms the robot
could touch are a ConfigError, since the ground contact knows one floor) and, for a
floating base, ``root_pose`` (7,): the top body's position and quaternion in the file, which is
also ``model.home[:7]``, so that a system starts the robot where the file puts it (MuJoCo's
qpos0; ``ArticulatedSystem(q0=...)`` or ``set_initial_state`` to start elsewhere).
"""

import xml.etree.ElementTree as ET

import numpy as np

from ..errors import ConfigError
from ..rotations import quat_from_matrix_np, quat_to_matrix_np
from .model import RobotBuilder
from .spatial import rotation_about
from .urdf import collision_points, read_robot_file

_TOP = {"compiler", "option", "worldbody", "actuator", "size", "visual", "statistic", "asset", "default", "sensor",
        "keyframe", "custom", "contact"}
_BODY = {"body", "joint", "freejoint", "geom", "inertial", "site", "camera", "light"}
_GEOMS = {"sphere", "capsule", "box", "cylinder"}
# Attributes of each element: read, or read past because they change nothing this model holds
# (names, looks, MuJoCo's solver and contact parameters: the ground contact and the joint limits
# follow diffsim's own laws, diffsim.contact). Any other attribute is a ConfigError naming it:
# read past, a joint spring or friction loss would leave other dynamics than MuJoCo's, silently.
_LOOKS = {"name", "rgba", "material", "group", "user"}
_ATTRIBUTES = {
    "body": {"pos", "quat", "euler", "axisangle", "xyaxes", "zaxis"} | _LOOKS,
    "joint": {"type", "axis", "pos", "range", "limited", "damping", "armature", "ref", "margin", "solreflimit",
              "solimplimit"} | _LOOKS,
    "freejoint": _LOOKS,
    "geom": {"type", "size", "pos", "quat", "euler", "axisangle", "xyaxes", "zaxis", "fromto", "mass", "density",
             "contype", "conaffinity", "condim", "friction", "solref", "solimp", "solmix", "margin", "gap",
             "priority"} | _LOOKS,
    "inertial": {"pos", "quat", "euler", "axisangle", "xyaxes", "zaxis", "mass", "diaginertia", "fullinertia"},
    # MuJoCo's solver settings (diffsim has its own), and what only sensors or rendering see
    "option": {"timestep", "gravity", "integrator", "iterations", "tolerance", "ls_iterations", "ls_tolerance",
               "solver", "cone", "jacobian", "impratio", "noslip_iterations", "noslip_tolerance", "mpr_iterations",
               "mpr_tolerance", "sdf_iterations", "sdf_initpoints", "ccd_iterations", "ccd_tolerance", "apirate",
               "o_margin", "o_solref", "o_solimp", "o_friction", "magnetic", "actuatorgroupdisable"},
    "compiler": {"angle", "eulerseq", "autolimits", "inertiafromgeom", "coordinate", "balanceinertia", "meshdir",
                 "texturedir", "assetdir", "discardvisual", "strippath", "fitaabb", "usethread", "convexhull",
                 "fusestatic", "inertiagrouprange", "exactmeshinertia", "alignfree", "saveinertial"},
}
# attributes MuJoCo reads whose default (every number of the value given) changes nothing here
_NEUTRAL = {("joint", "stiffness"): 0.0, ("joint", "springref"): 0.0, ("joint", "frictionloss"): 0.0,
            ("body", "gravcomp"): 0.0, ("option", "density"): 0.0, ("option", "viscosity"): 0.0,
            ("option", "wind"): 0.0, ("compiler", "boundmass"): 0.0, ("compiler", "boundinertia"): 0.0,
            ("compiler", "settotalmass"): -1.0}
_WHAT = {"stiffness": "a joint spring", "springref": "a joint spring's rest position", "frictionloss": "dry joint "
         "friction", "gravcomp": "gravity compensation", "density": "the medium's density (fluid forces)",
         "viscosity": "the medium's viscosity (fluid forces)", "wind": "wind (fluid forces)", "boundmass": "a "
         "lower bound on every body's mass", "boundinertia": "a lower bound on every body's inertia",
         "settotalmass": "masses rescaled to a total"}
# values of read-past attributes that would make MuJoCo's model another one than this loader's
_REFUSED = {("compiler", "inertiafromgeom", "true"): "geoms' inertia replacing every <inertial>",
            ("compiler", "coordinate", "global"): "global coordinates (MuJoCo 2.0 and older)",
            ("compiler", "balanceinertia", "true"): "inertias moved to satisfy the triangle inequality"}


def _check_attributes(el, where):
    """A ConfigError for an attribute of ``el`` that this loader neither reads nor may read past."""
    known = _ATTRIBUTES.get(el.tag, set())
    at = f"MJCF {where} <{el.tag}>" if where else f"MJCF <{el.tag}>"
    for attr, text in el.attrib.items():
        refused = _REFUSED.get((el.tag, attr, text.strip()))
        if refused is not None:
            raise ConfigError(f"{at}: {attr}=\"{text}\" ({refused}) is not supported; remove it")
        if attr in known:
            continue
        neutral = _NEUTRAL.get((el.tag, attr))
        if neutral is not None:
            try:
                if all(float(x) == neutral for x in text.split()):
                    continue
            except ValueError:
                pass
            raise ConfigError(f"{at}: {attr}=\"{text}\" ({_WHAT[attr]}) is not supported; remove "
                              f"it (or set it to {neutral:g}) and model it otherwise, or leave this model to MuJoCo")
        raise ConfigError(f"{at}: attribute {attr}=\"{text}\" is not read by this loader "
                          f"(it reads {sorted(known)}); remove it if it changes nothing you need")


def _vec(el, attr, n, default, where):
    text = el.get(attr)
    if text is None:
        return None if default is None else np.array(default, dtype=float)
    try:
        v = np.array([float(x) for x in text.split()])
    except ValueError:
        raise ConfigError(f"MJCF {where}: {attr}='{text}' is not a list of numbers") from None
    if v.shape != (n,) or not np.all(np.isfinite(v)):
        raise ConfigError(f"MJCF {where}: {attr}='{text}' needs {n} finite numbers")
    return v


def _quat_matrix(q, where):
    n = np.linalg.norm(q)
    if not n > 0:
        raise ConfigError(f"MJCF {where}: quat='0 0 0 0' is not a rotation; the identity is quat='1 0 0 0'")
    return quat_to_matrix_np(q / n)


def _orientation(el, where, deg, seq):
    """Rotation (3x3) of an element's quat or euler attribute (identity if neither)."""
    if el.get("quat") is not None and el.get("euler") is not None:
        raise ConfigError(f"MJCF {where}: give quat or euler, not both")
    if el.get("quat") is not None:
        return _quat_matrix(_vec(el, "quat", 4, None, where), where)
    if el.get("euler") is not None:
        angles = _vec(el, "euler", 3, None, where) * (np.pi / 180 if deg else 1.0)
        R = np.eye(3)
        for axis, a in zip(seq, angles):   # lower case: axes of the rotating frame (intrinsic)
            e = np.eye(3)["xyzXYZ".index(axis) % 3]
            R = R @ rotation_about(e, a) if axis.islower() else rotation_about(e, a) @ R
        return R
    for attr in ("axisangle", "xyaxes", "zaxis"):
        if el.get(attr) is not None:
            raise ConfigError(f"MJCF {where}: orientation '{attr}' is not supported; use quat or euler")
    return np.eye(3)


_GEOM_SIZES = {"sphere": ("radius",), "capsule": ("radius", "half-length"), "cylinder": ("radius", "half-length"),
               "box": ("half-x", "half-y", "half-z")}


def _geom_size(g, kind, where) -> np.ndarray:
    """A geom's ``size`` as MuJoCo reads it for ``kind``: the values it needs (a capsule or
    cylinder given by ``fromto`` needs only its radius; extra values are ignored, as MuJoCo does),
    each finite and > 0, else a ConfigError naming the geom and what its size must hold."""
    names = _GEOM_SIZES[kind]
    need = 1 if g.get("fromto") is not None else len(names)
    if g.get("fromto") is not None and kind not in ("capsule", "cylinder"):
        raise ConfigError(f"MJCF {where}: fromto is for capsules and cylinders, not a {kind}")
    label = f"MJCF {where}: a {kind} geom{' with fromto' if need < len(names) else ''}"
    try:
        size = np.array([float(x) for x in g.get("size", "").split()], dtype=np.float64)
    except ValueError:
        raise ConfigError(f"{label} has size=\"{g.get('size')}\", which is not numbers") from None
    if len(size) < need:
        raise ConfigError(f"{label} needs size=\"{' '.join(names[:need])}\" (m), got "
                          f"{g.get('size') or 'no size'}")
    size = size[:need]
    if not (np.all(np.isfinite(size)) and np.all(size > 0)):
        raise ConfigError(f"{label}: size {size.tolist()} must be finite and > 0 ({', '.join(names[:need])}, m)")
    return size


def _geom_mass(kind, size, density):
    """(mass, 3x3 inertia about the centre, axes of the geom frame) of a solid primitive."""
    if kind == "sphere":
        r = size[0]
        m = density * 4 / 3 * np.pi * r ** 3
        return m, np.eye(3) * 0.4 * m * r * r
    if kind == "box":
        a, b, c = 2 * size[:3]
        m = density * a * b * c
        return m, np.diag([b * b + c * c, a * a + c * c, a * a + b * b]) * m / 12
    r, h = size[0], 2 * size[1]   # cylinder and capsule: half-length size[1] along z
    mc = density * np.pi * r * r * h
    ixx = mc * (3 * r * r + h * h) / 12
    izz = mc * r * r / 2
    if kind == "cylinder":
        return mc, np.diag([ixx, ixx, izz])
    ms = density * 4 / 3 * np.pi * r ** 3   # two hemispheres, each centroid 3r/8 beyond its end
    d = h / 2 + 3 * r / 8
    hemi = 83 / 320 * ms * r * r   # each hemisphere about its own centroid (transverse), both together
    ixx += hemi + ms * d * d
    izz += 0.4 * ms * r * r
    return mc + ms, np.diag([ixx, ixx, izz])


_ACTUATORS = {"general", "motor", "position", "velocity", "intvelocity", "damper", "cylinder", "muscle", "adhesion"}


def _default_classes(root) -> dict:
    """{class: {element tag: {attribute: value}}} of the file's ``<default>`` tree: the top one is
    class "main"; a nested class starts from its parent's settings. Every actuator shortcut in a
    default sets the one set of actuator defaults (key "actuator"), as in MuJoCo."""
    classes = {}

    def walk(d, inherited, name, where):
        own = {tag: dict(attrs) for tag, attrs in inherited.items()}
        for child in d:
            if isinstance(child.tag, str) and child.tag != "default":
                own.setdefault("actuator" if child.tag in _ACTUATORS else child.tag, {}).update(child.attrib)
        classes[name] = own
        for child in d.findall("default"):
            if not child.get("class"):
                raise ConfigError(f"MJCF {where}: a nested <default> needs class=\"...\"")
            walk(child, own, child.get("class"), f"<default class='{child.get('class')}'>")

    for top in root.findall("default"):
        walk(top, classes.get("main", {}), "main", "<default>")
    return classes


def _apply_defaults(root) -> None:
    """Write the ``<default>`` classes into the elements they govern (an attribute the element
    gives wins), so that the rest of the loader reads explicit attributes: an element takes its
    ``class``, else the ``childclass`` of its nearest body that has one, else "main" (MuJoCo's
    rule); actuators their ``class`` or "main"."""
    classes = _default_classes(root)

    def settle(el, cls, where):
        cls = el.attrib.pop("class", cls)
        if cls not in classes and cls != "main":
            raise ConfigError(f"MJCF {where}: class '{cls}' is not a <default> class of this file "
                              f"({sorted(classes) or 'it has none'})")
        key = "actuator" if el.tag in _ACTUATORS else el.tag
        for attr, value in classes.get(cls, {}).get(key, {}).items():
            el.attrib.setdefault(attr, value)

    def walk(body, cls):
        for child in body:
            if not isinstance(child.tag, str):
                continue
            where = f"body '{body.get('name')}'" if body.tag == "body" else "<worldbody>"
            if child.tag == "body":
                walk(child, child.attrib.pop("childclass", cls))
            elif child.tag not in ("freejoint", "inertial"):  # MuJoCo gives these no defaults
                settle(child, cls, where)

    for world in root.findall("worldbody"):
        walk(world, "main")
    for actuators in root.findall("actuator"):
        for act in actuators:
            if isinstance(act.tag, str):
                settle(act, "main", f"<actuator> <{act.tag}>")
    for d in root.findall("default"):
        root.remove(d)


def load_mjcf(source, ignore=(), collisions: bool = False, **finalize_kwargs):
    """Parse MJCF text (str) or a path (str or os.PathLike); returns ``(Model, options)`` (see
    the module doc). ``ignore``: extra tag names to read past; ``collisions``: geoms become
    ground-contact geometry; finalize_kwargs: passed to :meth:`RobotBuilder.finalize`."""
    ignore = {ignore} if isinstance(ignore, str) else set(ignore)
    try:
        root = ET.fromstring(read_robot_file(source, "MJCF"))
    except ET.ParseError as exc:
        raise ConfigError(f"MJCF is not well-formed XML: {exc}") from None
    if root.tag != "mujoco":
        raise ConfigError(f"MJCF root element must be <mujoco>, got <{root.tag}>")
    for child in root:
        if isinstance(child.tag, str) and child.tag not in _TOP and child.tag not in ignore:
            raise ConfigError(f"MJCF: <{child.tag}> is not supported (supported: {sorted(_TOP)}); remove it or "
                              f"pass ignore=('{child.tag}',)")
    _apply_defaults(root)
    for contact in root.findall("contact"):  # <exclude> only removes pairs of robot geoms, which never touch here
        for pair in contact:
            if isinstance(pair.tag, str) and pair.tag != "exclude" and pair.tag not in ignore:
                raise ConfigError(f"MJCF <contact>: <{pair.tag}> is not supported (only <exclude>, read past: the "
                                  "robot's geoms touch the ground only); remove it or pass "
                                  f"ignore=('{pair.tag}',)")
    for settings in root.findall("compiler") + root.findall("option"):
        _check_attributes(settings, "")
    compiler = root.find("compiler")
    deg = compiler is None or compiler.get("angle", "degree") == "degree"
    seq = "xyz" if compiler is None else compiler.get("eulerseq", "xyz")
    option = root.find("option")
    gravity = (0.0, 0.0, -9.81) if option is None else _vec(option, "gravity", 3, (0, 0, -9.81), "<option>")
    options = {}
    if option is not None and option.get("timestep") is not None:
        options["timestep"] = float(_vec(option, "timestep", 1, None, "<option>")[0])
        if not options["timestep"] > 0:
            raise ConfigError(f"MJCF <option>: timestep={options['timestep']} s must be > 0")
    world = root.find("worldbody")
    tops = [] if world is None else world.findall("body")
    if len(tops) != 1:
        raise ConfigError(f"MJCF: <worldbody> must hold exactly one <body> tree, found {len(tops)}")
    ground = _ground(world, tops[0], deg, seq, collisions)
    if ground is not None:
        options["ground"] = ground
    free = tops[0].find("freejoint") is not None or any(j.get("type") == "free" for j in tops[0].findall("joint"))
    rb = RobotBuilder(root.get("model", "robot"), gravity, floating_base=free)
    effort = {}
    for motor in ([] if root.find("actuator") is None else root.find("actuator")):
        if not isinstance(motor.tag, str):
            continue
        if motor.tag != "motor" and motor.tag not in ignore:
            raise ConfigError(f"MJCF <actuator>: <{motor.tag}> is not supported (only <motor>)")
        where = f"<motor joint='{motor.get('joint')}'>"
        text = motor.get("gear")
        gear = 1.0 if text is None else _vec(motor, "gear", max(1, len(text.split())), None, where)[0]
        rng = _vec(motor, "ctrlrange", 2, (-np.inf, np.inf), where)
        if not rng[0] < rng[1]:
            raise ConfigError(f"MJCF {where}: ctrlrange='{motor.get('ctrlrange')}' needs lower < upper")
        effort[motor.get("joint")] = abs(gear) * float(np.max(np.abs(rng)))
    rb.add_link("world")
    frames = {"world": (np.eye(3), np.zeros(3), np.zeros(3))}
    homes = {}  # joint: its coordinate in the file's pose (MuJoCo's ref), where not 0
    _body(rb, tops[0], "world", frames, deg, seq, effort, collisions, ignore, homes, top=True)
    if free:   # the world link only held the tree: the top body is the floating root
        del rb.links["world"]
        R, p, _ = frames[tops[0].get("name")]
        options["root_pose"] = np.r_[p, quat_from_matrix_np(R)]
    unknown = set(effort) - {j for j in rb.joints}
    if unknown:
        raise ConfigError(f"MJCF <motor> on unknown joint(s) {sorted(unknown)}; joints are {sorted(rb.joints)}")
    model = rb.finalize(**finalize_kwargs)
    if free or homes:   # MuJoCo's qpos0: the floating base where the file puts it, every joint at its ref
        model.home = model.neutral_configuration()
        if free:
            model.home[:7] = options["root_pose"]
        for jname, ref in homes.items():
            model.home[model.q_index[model.joint_names.index(jname)]] = ref
    return model, options


def _ground(world, robot, deg, seq, collisions):
    """``{"height": z, "friction": mu}`` of the floor, the ``<worldbody>``'s horizontal plane geom
    (for :class:`~diffsim.articulated.dynamics.GroundContact`), or None without one; mu is MuJoCo's
    for a contact, the larger of the two geoms' (sliding) frictions, taken as the largest over the
    ``robot``'s geoms that touch (GroundContact has one friction for every point). With
    ``collisions=True`` any other world geom the robot could touch (a tilted plane, a box, a
    second floor) is a ConfigError: the ground contact knows one horizontal floor, and an obstacle
    read past would be one the robot passes through."""
    floors, others = [], []
    for g in world.findall("geom"):
        name = g.get("name") or g.get("type", "sphere")
        where = f"<worldbody> geom '{name}'"
        if g.get("type") == "plane":
            normal = _orientation(g, where, deg, seq)[:, 2]
            if np.allclose(normal, [0.0, 0.0, 1.0], rtol=0, atol=1e-12):
                floors.append((g, where))
                continue
        if _touches(g):
            others.append(name)
    if collisions and (others or len(floors) > 1):
        names = others + [f"a second floor '{w}'" for _, w in floors[1:]]
        raise ConfigError(f"MJCF <worldbody>: static geometry {names} besides one horizontal floor is not supported "
                          "as contact geometry (the ground contact knows one floor, z = height); give those geoms "
                          "contype=\"0\" conaffinity=\"0\", remove them, or load with collisions=False")
    if not floors:
        return None
    g, where = floors[0]
    friction = _sliding_friction(g, where)
    for rg in robot.iter("geom"):
        if _touches(rg):
            friction = max(friction, _sliding_friction(rg, "a robot geom"))
    return {"height": float(_vec(g, "pos", 3, (0, 0, 0), where)[2]), "friction": friction}


def _sliding_friction(g, where) -> float:
    """The first of a geom's ``friction`` numbers (sliding, rolling, torsional; MuJoCo's default 1)."""
    text = g.get("friction")
    return 1.0 if text is None else float(_vec(g, "friction", len(text.split()), None, where)[0])


def _touches(g) -> bool:
    """Whether MuJoCo pairs geom ``g`` with anything: a pair forms when contype of one meets
    conaffinity of the other, so a geom with both 0 (a visual geom) touches nothing."""
    return int(g.get("contype", "1")) != 0 or int(g.get("conaffinity", "1")) != 0


def _body(rb, el, parent, frames, deg, seq, effort, collisions, ignore, homes, top=False):
    """Add body ``el`` (and its subtree) under link ``parent``; frames[link] = (R, p) in the world
    at the zero configuration (each link's frame sits at its joint), and the body's origin."""
    R, _, pos = frames[parent]
    name = el.get("name")
    if not name:
        raise ConfigError(f"MJCF: a <body> under '{parent}' has no name")
    where = f"body '{name}'"
    for child in el:
        if isinstance(child.tag, str) and child.tag not in _BODY and child.tag not in ignore:
            raise ConfigError(f"MJCF {where}: <{child.tag}> is not supported (supported: {sorted(_BODY)})")
    for item in [el, *el.findall("joint"), *el.findall("freejoint"), *el.findall("geom"), *el.findall("inertial")]:
        _check_attributes(item, where)
    p = pos + R @ _vec(el, "pos", 3, (0, 0, 0), where)
    Rb = R @ _orientation(el, where, deg, seq)
    joints = [j for j in el.findall("joint")] + el.findall("freejoint")
    kinds = ["free" if j.tag == "freejoint" else j.get("type", "hinge") for j in joints]
    for kind in kinds:
        if kind == "free" and not top:
            raise ConfigError(f"MJCF {where}: a free joint is supported only on the top body (a floating base)")
        if kind not in ("free", "hinge", "slide", "ball"):
            raise ConfigError(f"MJCF {where}: joint type '{kind}' is not supported (hinge, slide, ball, free)")
    if len(joints) > 1 and not set(kinds) <= {"hinge", "slide"}:
        raise ConfigError(f"MJCF {where}: {len(joints)} joints in one body ({', '.join(kinds)}) are supported as "
                          "hinges and slides only (a planar root's x, z and pitch, say)")
    jel = joints[-1] if joints else None
    kind = kinds[-1] if joints else None
    # the link frame sits at the joint (MuJoCo's joint pos is in the body frame)
    jpos = np.zeros(3) if jel is None or kind == "free" else _vec(jel, "pos", 3, (0, 0, 0), where)
    mass, first, second = 0.0, np.zeros(3), np.zeros((3, 3))
    inertial = el.find("inertial")
    if inertial is not None:
        m = float(inertial.get("mass", "0"))
        c = _vec(inertial, "pos", 3, (0, 0, 0), where) - jpos
        Ri = _orientation(inertial, where + " <inertial>", deg, seq)
        if inertial.get("diaginertia") is not None:
            I = np.diag(_vec(inertial, "diaginertia", 3, None, where))
        else:
            f = _vec(inertial, "fullinertia", 6, None, where)
            if f is None:
                raise ConfigError(f"MJCF {where} <inertial>: needs diaginertia or fullinertia")
            I = np.array([[f[0], f[3], f[4]], [f[3], f[1], f[5]], [f[4], f[5], f[2]]])
        I = Ri @ I @ Ri.T
        mass, first, second = m, m * c, I + m * (c @ c * np.eye(3) - np.outer(c, c))
    contacts = []
    for g in el.findall("geom"):
        gk = g.get("type", "sphere")
        if gk not in _GEOMS:
            raise ConfigError(f"MJCF {where}: geom type '{gk}' is not supported ({sorted(_GEOMS)})")
        size = _geom_size(g, gk, where)
        Rg = _orientation(g, where + " <geom>", deg, seq)
        c = _vec(g, "pos", 3, (0, 0, 0), where)
        if g.get("fromto") is not None:
            a, b = np.split(_vec(g, "fromto", 6, None, where), 2)
            c, d = (a + b) / 2, b - a
            if not np.linalg.norm(d) > 0:
                raise ConfigError(f"MJCF {where}: a {gk} geom's fromto has equal ends {a.tolist()}; give two "
                                  "different points (or size=\"radius half-length\" without fromto)")
            size = np.array([size[0], np.linalg.norm(d) / 2])
            z = d / np.linalg.norm(d)
            k = np.cross([0, 0, 1.0], z)
            Rg = rotation_about(k / np.linalg.norm(k), np.arccos(np.clip(z[2], -1, 1))) if k @ k > 1e-24 else \
                np.diag([1.0, 1.0, np.sign(z[2])]) if z[2] < 0 else np.eye(3)
        c = c - jpos
        if inertial is None:
            m, I = _geom_mass(gk, size, float(g.get("density", "1000")))
            if g.get("mass") is not None:
                scale = float(g.get("mass")) / m if m > 0 else 0.0
                m, I = m * scale, I * scale
            I = Rg @ I @ Rg.T
            mass += m
            first += m * c
            second += I + m * (c @ c * np.eye(3) - np.outer(c, c))
        if collisions and _touches(g):  # a visual geom keeps its mass and touches nothing
            shape = {"radius": size[0]} if gk == "sphere" else {"size": 2 * size} if gk == "box" else \
                {"radius": size[0], "length": 2 * size[1]}
            contacts += [(Rg @ pt + c, r) for pt, r in collision_points(gk, shape, where)]
    com = first / mass if mass > 0 else np.zeros(3)
    Ic = second - mass * (com @ com * np.eye(3) - np.outer(com, com))
    rb.add_link(name, mass=mass, com=com, inertia=0.5 * (Ic + Ic.T))
    for pt, r in contacts:
        rb.add_contact_point(name, pt, r)
    jp = p + Rb @ jpos
    above, (Ra, pa, _) = parent, frames[parent]
    if jel is None:
        rb.add_joint(f"{name}_weld", "fixed", parent, name, xyz=Ra.T @ (jp - pa), rpy=_rpy(Ra.T @ Rb))
    elif kind != "free":
        # several joints in one body act in order, MuJoCo's composition: each but the last moves a
        # massless link whose frame sits at the next joint, oriented as the body
        for k, (j, jk) in enumerate(zip(joints, kinds)):
            jname = j.get("name") or f"{name}_joint{k if len(joints) > 1 else ''}"
            link = name if k == len(joints) - 1 else f"{name}__{jname}"
            at = p + Rb @ _vec(j, "pos", 3, (0, 0, 0), where)
            if link != name:
                rb.add_link(link)
            _joint(rb, j, jk, jname, above, link, Ra.T @ (at - pa), Ra.T @ Rb, deg, effort, homes, where)
            above, Ra, pa = link, Rb, at
    frames[name] = (Rb, jp, p)
    for child in el.findall("body"):
        _body(rb, child, name, frames, deg, seq, effort, collisions, ignore, homes)


def _joint(rb, jel, kind, jname, parent, child, xyz, R, deg, effort, homes, where):
    """Add the hinge, slide or ball joint ``jel`` from link ``parent`` to ``child``: its frame at
    ``xyz`` turned by ``R`` in the parent's frame, in the file's pose; MuJoCo's ``ref`` (the
    joint's coordinate in that pose, qpos0) goes to ``homes``."""
    axis = _vec(jel, "axis", 3, (0, 0, 1), where)
    ref = 0.0 if kind == "ball" else float(_vec(jel, "ref", 1, (0.0,), where)[0])
    if ref != 0.0:
        # the link frame at q = 0 is the file's turned (slid) back by ref about (along) the axis
        unit = axis / np.linalg.norm(axis) if np.linalg.norm(axis) > 0 else axis  # a zero axis: add_joint names it
        if kind == "hinge":
            ref = ref * np.pi / 180 if deg else ref
            R = R @ rotation_about(unit, -ref)
        else:
            xyz = xyz - ref * (R @ unit)
        homes[jname] = ref
    rng = _vec(jel, "range", 2, None, where)
    limited = rng is not None and jel.get("limited", "auto") != "false"
    if limited and kind == "ball":
        raise ConfigError(f"MJCF {where}: the ball joint '{jname}' has a range (a cone limit), which is not "
                          "supported: remove range (or set limited=\"false\"), or build the joint from three "
                          "hinges with ranges")
    if limited and kind == "hinge" and deg:
        rng = rng * np.pi / 180
    rb.add_joint(jname, {"hinge": "revolute", "slide": "prismatic", "ball": "ball"}[kind], parent, child, xyz=xyz,
                 rpy=_rpy(R), axis=axis, damping=float(jel.get("damping", "0")),
                 armature=float(jel.get("armature", "0")), lower=rng[0] if limited else None,
                 upper=rng[1] if limited else None, effort=effort.get(jname), actuated=jname in effort)


def _rpy(R):
    """URDF roll-pitch-yaw of a rotation R = Rz(y) Ry(p) Rx(r)."""
    pitch = -np.arcsin(np.clip(R[2, 0], -1, 1))
    return np.array([np.arctan2(R[2, 1], R[2, 2]), pitch, np.arctan2(R[1, 0], R[0, 0])])

