"""Rigid-body scenes: ``ModelBuilder`` collects bodies and planes, ``finalize()`` freezes them
into a :class:`RigidModel` (NumPy arrays the System uploads once).

A body has a shape (:mod:`.shapes`), a mass (kg) given directly or from a density (kg/m^3 in
3D, kg/m^2 in 2D), principal inertia from the shape (or given, kg m^2), material
(restitution in [0, 1], Coulomb friction >= 0), damping rates (1/s) and an initial pose and
velocity. In 2D the state is (x, y), an angle theta (rad), (vx, vy) and omega (rad/s); in 3D
(x, y, z), a unit quaternion (w, x, y, z), (vx, vy, vz) and omega (world frame, rad/s).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError, DeepStartWarning
from ..rotations import quat_from_axis_angle_np, quat_to_matrix_np
from .shapes import BOX, CAPSULE, SHAPE_NAMES, SHAPES, SPHERE, Plane


def _vec(name, value, n, where):
    v = np.asarray(value, dtype=float).reshape(-1)
    if v.size != n or not np.all(np.isfinite(v)):
        raise ConfigError(f"{where}: {name} must be {n} finite numbers, got {value!r}")
    return v


@dataclass
class RigidModel:
    """A frozen scene. Arrays have one row per body (n) or per plane (P).

    dim: 2 or 3. shape: (n,) int codes; geometry: (n, 3) shape sizes (sphere (r, 0, 0), box
    (hx, hy, hz), capsule (r, half_length, 0)); bounding_radius: (n,) m; unit_inertia: (n, 3)
    principal inertia per unit mass (m^2); mass (kg), restitution, friction, linear_damping
    and angular_damping (1/s): (n,); contact_stiffness (N/m) and contact_damping (N s/m): (n,)
    explicit contact laws (0: none, the system's stiffness and the restitution decide); planes:
    (P, 6) rows (normal (3), offset m, restitution, friction); the initial state: x (n, dim) m, orientation ((n, 4) quaternion or (n,) angle),
    v (n, dim) m/s, omega ((n, 3) or (n,)) rad/s; names: (n,) labels.
    """

    dim: int
    shape: np.ndarray
    geometry: np.ndarray
    bounding_radius: np.ndarray
    unit_inertia: np.ndarray
    mass: np.ndarray
    restitution: np.ndarray
    friction: np.ndarray
    linear_damping: np.ndarray
    angular_damping: np.ndarray
    contact_stiffness: np.ndarray
    contact_damping: np.ndarray
    planes: np.ndarray
    x0: np.ndarray
    orientation0: np.ndarray
    v0: np.ndarray
    omega0: np.ndarray
    names: list = field(default_factory=list)

    @property
    def n(self) -> int:
        """Number of bodies."""
        return int(self.shape.size)

    @property
    def n_planes(self) -> int:
        """Number of static planes."""
        return int(self.planes.shape[0])

    @property
    def plane_restitution(self) -> np.ndarray:
        """(P,) restitution of each plane's material."""
        return self.planes[:, 4].copy()

    @property
    def plane_friction(self) -> np.ndarray:
        """(P,) Coulomb friction coefficient of each plane's material."""
        return self.planes[:, 5].copy()

    @property
    def orientation_name(self) -> str:
        """The orientation's state field: "q" (unit quaternions, 3D) or "theta" (angles in rad, 2D)."""
        return "q" if self.dim == 3 else "theta"

    def shapes_present(self) -> set:
        """The shape codes (SPHERE, BOX, CAPSULE) of the bodies in the scene."""
        return {int(s) for s in np.unique(self.shape)}

    def inertia(self) -> np.ndarray:
        """Principal moments of inertia (n, 3), kg m^2."""
        return self.mass[:, None] * self.unit_inertia

    def initial_state(self) -> dict:
        """The state at t = 0: {"x", "q" or "theta", "v", "omega"} as float64 copies, SI units."""
        return {"x": self.x0.copy(), self.orientation_name: self.orientation0.copy(),
                "v": self.v0.copy(), "omega": self.omega0.copy()}

    def index(self, name: str) -> int:
        """The index of the body called ``name``; a ConfigError listing the names if there is none."""
        if name not in self.names:
            raise ConfigError(f"no body named {name!r}; bodies are {self.names}")
        return self.names.index(name)


DEEP_START = 2e-3  # m: a start this deep in a plane (and a tenth of the body's thickness) is warned of


def _reach(body, normal, dim) -> float:
    """How far (m) a body as added reaches from its centre against a plane's ``normal``."""
    n = np.zeros(3)
    n[:dim] = normal
    if dim == 3:
        n = quat_to_matrix_np(body["q"]).T @ n
    else:  # the angle turns the body in the plane
        c, s = np.cos(body["q"]), np.sin(body["q"])
        n[:2] = [c * n[0] + s * n[1], -s * n[0] + c * n[1]]
    return body["shape"].reach(-n, dim)


class ModelBuilder:
    """Collects bodies and static planes; ``finalize()`` returns a :class:`RigidModel`.

    ``ModelBuilder(dim=3)``; ``add_body(shape, ...)`` returns the body index;
    ``add_plane(normal, offset, ...)`` adds a static wall or floor.
    """

    def __init__(self, dim: int = 3):
        if dim not in (2, 3):
            raise ConfigError(f"dim must be 2 or 3, got {dim!r}")
        self.dim = dim
        self._bodies: list[dict] = []
        self._planes: list[Plane] = []

    def add_body(self, shape, *, mass=None, density=None, inertia=None, position=None, orientation=None,
                 angle=None, velocity=None, angular_velocity=None, restitution=0.5, friction=0.5,
                 linear_damping=0.0, angular_damping=0.0, contact_stiffness=None, contact_damping=None,
                 name=None) -> int:
        """Add a dynamic body; returns its index.

        shape: Sphere, Box or Capsule. mass (kg) or density (kg/m^3; kg/m^2 in 2D): exactly one.
        inertia: principal moments (3,) in kg m^2, default from the shape (it then scales with
        mass when mass is fitted). position: (dim,) m. orientation: 3D unit quaternion (w, x, y, z)
        (normalised here); angle: 2D angle in rad (or, in 3D, with ``orientation`` an axis (3,)
        it rotates about). velocity (dim,) m/s; angular_velocity: 3D (3,) rad/s, 2D a number.
        restitution in [0, 1]; friction >= 0; linear/angular damping >= 0 (1/s).
        contact_stiffness (N/m, > 0) and contact_damping (N s/m, >= 0): an explicit contact law
        (penalty model) instead of the system's stiffness and this restitution: the normal force
        is then :func:`diffsim.contact.contact_normal_force` with exactly this k and c. Against a
        plane the body's law acts alone; two such bodies combine in series (k_a k_b / (k_a + k_b),
        likewise c); a body with a law against one without uses its own law.
        """
        where = f"body {len(self._bodies)}" + (f" ({name})" if name else "")
        if not isinstance(shape, SHAPES):
            raise ConfigError(f"{where}: shape must be Sphere, Box or Capsule, got {shape!r}; "
                              "planes are added with add_plane()")
        d = self.dim
        if (mass is None) == (density is None):
            raise ConfigError(f"{where}: give exactly one of mass (kg) or density")
        if mass is None:
            density = float(density)
            if not np.isfinite(density) or density <= 0:
                raise ConfigError(f"{where}: density must be positive, got {density}")
            mass = density * shape.volume(d)
        mass = float(mass)
        if not np.isfinite(mass) or mass <= 0:
            raise ConfigError(f"{where}: mass must be positive and finite, got {mass} kg")
        if inertia is None:
            unit_inertia = shape.unit_inertia(d)
        else:
            inertia = _vec("inertia", inertia, 3, where)
            if np.any(inertia <= 0):
                raise ConfigError(f"{where}: principal inertia must be positive, got {inertia} kg m^2")
            if d == 3 and 2.0 * inertia.max() > inertia.sum() * (1.0 + 1e-12):
                raise ConfigError(f"{where}: principal inertia {inertia} kg m^2 is no body's: the largest moment "
                                  "must not exceed the sum of the other two (the triangle inequality I1 <= I2 + I3, equal only for a "
                                  "flat body); check the values and their order")
            unit_inertia = inertia / mass
        for label, value, hi in (("restitution", restitution, 1.0), ("friction", friction, np.inf),
                                 ("linear_damping", linear_damping, np.inf),
                                 ("angular_damping", angular_damping, np.inf)):
            value = float(value)
            if not (0.0 <= value <= hi):
                rng = "[0, 1]" if hi == 1.0 else ">= 0"
                raise ConfigError(f"{where}: {label} must be {rng}, got {value}")
        if contact_stiffness is None:
            if contact_damping is not None:
                raise ConfigError(f"{where}: contact_damping needs contact_stiffness (N/m) as well")
            k_c, c_c = 0.0, 0.0
        else:
            k_c, c_c = float(contact_stiffness), float(0.0 if contact_damping is None else contact_damping)
            if not (np.isfinite(k_c) and k_c > 0 and np.isfinite(c_c) and c_c >= 0):
                raise ConfigError(f"{where}: contact_stiffness must be > 0 N/m and contact_damping >= 0 N s/m, "
                                  f"got {contact_stiffness!r} and {contact_damping!r}")
        pos = _vec("position", np.zeros(d) if position is None else position, d, where)
        vel = _vec("velocity", np.zeros(d) if velocity is None else velocity, d, where)
        if d == 3:
            if orientation is None:
                q = np.array([1.0, 0.0, 0.0, 0.0]) if angle is None else quat_from_axis_angle_np([0, 0, 1], angle)
            elif angle is not None:
                q = quat_from_axis_angle_np(_vec("orientation axis", orientation, 3, where), angle)
            else:
                q = _vec("orientation", orientation, 4, where)
                if np.linalg.norm(q) == 0:
                    raise ConfigError(f"{where}: orientation quaternion is zero")
                q = q / np.linalg.norm(q)
            orient = q
            w = _vec("angular_velocity", np.zeros(3) if angular_velocity is None else angular_velocity, 3, where)
        else:
            if orientation is not None:
                raise ConfigError(f"{where}: 2D bodies take angle= (rad), not orientation=")
            orient = float(0.0 if angle is None else angle)
            w = float(0.0 if angular_velocity is None else angular_velocity)
            if not (np.isfinite(orient) and np.isfinite(w)):
                raise ConfigError(f"{where}: angle and angular_velocity must be finite")
        self._bodies.append({"shape": shape, "mass": mass, "unit_inertia": unit_inertia, "x": pos, "q": orient, "v": vel, "w": w,
                                 "restitution": float(restitution), "friction": float(friction),
                                 "linear_damping": float(linear_damping), "angular_damping": float(angular_damping),
                                 "contact_stiffness": k_c, "contact_damping": c_c,
                                 "name": name or f"{SHAPE_NAMES[shape.code]}{len(self._bodies)}"})
        return len(self._bodies) - 1

    def add_plane(self, normal, offset=0.0, restitution=0.5, friction=0.5) -> int:
        """Add a static plane {p : normal . p >= offset} (a line in 2D); returns its index.
        restitution in [0, 1] and friction >= 0 are its material (fittable: the system
        parameters ``plane_restitution`` and ``plane_friction``); a contact takes the mean of
        the body's and the plane's."""
        plane = Plane(tuple(np.asarray(normal, float).reshape(-1)), float(offset), restitution, friction)
        if len(plane.normal) != self.dim:
            raise ConfigError(f"plane {len(self._planes)}: normal needs {self.dim} components in {self.dim}D, "
                              f"got {len(plane.normal)}")
        self._planes.append(plane)
        return len(self._planes) - 1

    def finalize(self) -> RigidModel:
        """Freeze the bodies and planes added so far into a :class:`RigidModel` (checks the scene)."""
        if not self._bodies:
            raise ConfigError("the scene has no bodies: call add_body() first")
        d = self.dim
        b = self._bodies
        geometry = np.array([s["shape"].geometry(d) if s["shape"].code != SPHERE else s["shape"].geometry()
                             for s in b])
        planes = np.zeros((len(self._planes), 6))
        for k, p in enumerate(self._planes):
            planes[k, :d] = p.normal
            planes[k, 3:] = (p.offset, p.restitution, p.friction)
            behind = np.array([s["x"] for s in b]) @ np.asarray(p.normal) - p.offset
            if np.any(behind < 0):  # inside the wall: its contact would throw the body out at any speed
                i = int(np.argmin(behind))
                raise ConfigError(f"body {i} ({b[i]['name']}) starts with its centre {-behind[i]:.4g} m behind "
                                  f"plane {k} (normal {np.round(p.normal, 6).tolist()}, offset {p.offset:g} m), "
                                  "inside the wall it bounds: move the body to the plane's side, normal . x >= "
                                  "offset, or flip the plane's normal")
            for i, s in enumerate(b):  # a body's edge, end or corner deep in the wall (its centre is out)
                depth = _reach(s, p.normal, d) - behind[i]
                if depth > max(DEEP_START, 0.1 * s["shape"].thickness(d)):
                    warnings.warn(f"body {i} ({s['name']}) starts {depth:.3g} m deep in plane {k} (normal "
                                  f"{np.round(p.normal, 6).tolist()}, offset {p.offset:g} m): its contact will throw "
                                  "it out; move it to touch the plane (the shape's lowest point on it) or turn it "
                                  "to lie along the plane", DeepStartWarning, stacklevel=2)
        return RigidModel(
            dim=d,
            shape=np.array([s["shape"].code for s in b], dtype=np.int32),
            geometry=geometry,
            bounding_radius=np.array([s["shape"].bounding_radius(d) for s in b]),
            unit_inertia=np.array([s["unit_inertia"] for s in b]),
            mass=np.array([s["mass"] for s in b]),
            restitution=np.array([s["restitution"] for s in b]),
            friction=np.array([s["friction"] for s in b]),
            linear_damping=np.array([s["linear_damping"] for s in b]),
            angular_damping=np.array([s["angular_damping"] for s in b]),
            contact_stiffness=np.array([s["contact_stiffness"] for s in b]),
            contact_damping=np.array([s["contact_damping"] for s in b]),
            planes=planes,
            x0=np.array([s["x"] for s in b]),
            orientation0=np.array([s["q"] for s in b]),
            v0=np.array([s["v"] for s in b]),
            omega0=np.array([s["w"] for s in b]),
            names=[s["name"] for s in b],
        )


__all__ = ["BOX", "CAPSULE", "SPHERE", "ModelBuilder", "RigidModel"]
