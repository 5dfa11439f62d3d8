"""Collision shapes of rigid bodies: geometry, volume, inertia per unit mass, bounding radius.

Every shape is centred on its body's centre of mass with its principal axes along the body
frame. Lengths in metres. In 2D (the x-y plane) a sphere is a disc, a box a rectangle and a
capsule a stadium; their "volume" is an area (m^2) and density is then kg/m^2.

Shape codes used by the kernels: SPHERE = 0, BOX = 1, CAPSULE = 2. Planes are static and
are not bodies (see :class:`Plane`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError

SPHERE, BOX, CAPSULE = 0, 1, 2
SHAPE_NAMES = {SPHERE: "sphere", BOX: "box", CAPSULE: "capsule"}


def _positive(name, value):
    value = float(value)
    if not np.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a positive length in metres, got {value}")
    return value


@dataclass(frozen=True)
class Sphere:
    """Sphere (3D) or disc (2D) of radius ``radius`` (m)."""

    radius: float

    code = SPHERE

    def __post_init__(self):
        _positive("Sphere radius", self.radius)

    def geometry(self):
        """(radius m, 0, 0): the shape's row of the kernels' geometry table."""
        return (float(self.radius), 0.0, 0.0)

    def volume(self, dim):
        """Volume (m^3; in 2D the disc's area, m^2)."""
        r = self.radius
        return np.pi * r * r if dim == 2 else 4.0 / 3.0 * np.pi * r ** 3

    def unit_inertia(self, dim):
        """Principal moments of inertia per unit mass (m^2), (Ixx, Iyy, Izz)."""
        r2 = self.radius ** 2
        k = 0.5 * r2 if dim == 2 else 0.4 * r2
        return np.array([k, k, k])

    def bounding_radius(self, dim):
        """Radius (m) of the smallest sphere about the centre that holds the shape (broad phase)."""
        return float(self.radius)

    def reach(self, direction, dim):
        """How far (m) the shape reaches from its centre along the unit ``direction`` (body frame)."""
        return float(self.radius)

    def thickness(self, dim):
        """The smallest reach (m) over all directions: half the shape's thinnest width."""
        return float(self.radius)


@dataclass(frozen=True)
class Box:
    """Box of half extents (hx, hy, hz) (m); in 2D a rectangle (hx, hy) and hz is ignored."""

    half_extents: tuple

    code = BOX

    def __post_init__(self):
        try:
            h = tuple(float(v) for v in self.half_extents)
        except TypeError:
            raise ConfigError(f"Box needs its half extents as 2 (2D) or 3 (3D) numbers in m, e.g. Box((0.05, 0.05, "
                              f"0.05)) for a 10 cm cube; got {self.half_extents!r}") from None
        if len(h) not in (2, 3):
            raise ConfigError(f"Box half_extents must have 2 (2D) or 3 (3D) entries, got {self.half_extents!r}")
        for v in h:
            _positive("Box half extent", v)
        object.__setattr__(self, "half_extents", h)

    def _h(self, dim):
        h = self.half_extents
        if dim == 3 and len(h) != 3:
            raise ConfigError(f"a 3D box needs 3 half extents, got {h}")
        return (h[0], h[1], h[2] if dim == 3 else 0.0)

    def geometry(self, dim=3):
        """(hx, hy, hz) m: the half extents, the shape's row of the kernels' geometry table (hz = 0 in 2D)."""
        return self._h(dim)

    def volume(self, dim):
        """Volume (m^3; in 2D the rectangle's area, m^2)."""
        hx, hy, hz = self._h(dim)
        return 4.0 * hx * hy if dim == 2 else 8.0 * hx * hy * hz

    def unit_inertia(self, dim):
        """Principal moments of inertia per unit mass (m^2) about the body axes; in 2D only the z moment is used."""
        hx, hy, hz = self._h(dim)
        if dim == 2:
            izz = (hx * hx + hy * hy) / 3.0
            return np.array([izz, izz, izz])
        return np.array([hy * hy + hz * hz, hx * hx + hz * hz, hx * hx + hy * hy]) / 3.0

    def bounding_radius(self, dim):
        """Radius (m) of the sphere about the centre through the box's corners (broad phase)."""
        return float(np.linalg.norm(self._h(dim)))

    def reach(self, direction, dim):
        """How far (m) the box reaches from its centre along the unit ``direction`` (body frame): its
        support, sum |n_i| h_i."""
        return float(np.abs(np.asarray(direction)[:dim]) @ np.asarray(self._h(dim))[:dim])

    def thickness(self, dim):
        """The smallest half extent (m)."""
        return float(min(self._h(dim)[:dim]))


@dataclass(frozen=True)
class Capsule:
    """Capsule: the points within ``radius`` (m) of the segment from -half_length to
    +half_length (m) along the body's x axis (a stadium in 2D)."""

    radius: float
    half_length: float

    code = CAPSULE

    def __post_init__(self):
        _positive("Capsule radius", self.radius)
        _positive("Capsule half_length", self.half_length)

    def geometry(self, dim=3):
        """(radius m, half_length m, 0): the shape's row of the kernels' geometry table."""
        return (float(self.radius), float(self.half_length), 0.0)

    def volume(self, dim):
        """Volume (m^3; in 2D the stadium's area, m^2)."""
        r, h = self.radius, self.half_length
        if dim == 2:
            return 4.0 * r * h + np.pi * r * r
        return 2.0 * np.pi * r * r * h + 4.0 / 3.0 * np.pi * r ** 3

    def unit_inertia(self, dim):
        """Solid capsule: cylinder plus two hemispherical caps (parallel-axis theorem)."""
        r, h = self.radius, self.half_length
        if dim == 2:  # stadium: rectangle 2h x 2r plus a disc split at both ends
            a_rect, a_disc = 4.0 * r * h, np.pi * r * r
            i_rect = a_rect * ((2 * h) ** 2 + (2 * r) ** 2) / 12.0
            d = 4.0 * r / (3.0 * np.pi)  # centroid of a half disc from its flat side
            i_half = 0.5 * a_disc / 2 * r * r - a_disc / 2 * d * d + a_disc / 2 * (h + d) ** 2
            izz = (i_rect + 2 * i_half) / (a_rect + a_disc)
            return np.array([izz, izz, izz])
        v_cyl, v_sph = 2.0 * np.pi * r * r * h, 4.0 / 3.0 * np.pi * r ** 3
        i_axis = (v_cyl * 0.5 * r * r + v_sph * 0.4 * r * r)
        d = 3.0 * r / 8.0  # centroid of a hemisphere from its flat side
        i_cyl_perp = v_cyl * (3 * r * r + (2 * h) ** 2) / 12.0
        i_hemi_perp = 0.5 * v_sph * (0.4 * r * r - d * d) + 0.5 * v_sph * (h + d) ** 2
        i_perp = i_cyl_perp + 2 * i_hemi_perp
        vol = v_cyl + v_sph
        return np.array([i_axis, i_perp, i_perp]) / vol

    def bounding_radius(self, dim):
        """radius + half_length (m): the sphere about the centre that holds the capsule (broad phase)."""
        return float(self.radius + self.half_length)

    def reach(self, direction, dim):
        """How far (m) the capsule reaches from its centre along the unit ``direction`` (body frame):
        |n_x| half_length + radius (its axis is the body's x)."""
        return float(abs(direction[0]) * self.half_length + self.radius)

    def thickness(self, dim):
        """The radius (m)."""
        return float(self.radius)


@dataclass(frozen=True)
class Plane:
    """Static half-space boundary {p : normal . p >= offset}: points with normal . p < offset
    are inside the wall. normal: 2 (2D) or 3 (3D) components, normalised here; offset in m;
    restitution and friction are its material, combined with a body's by the mean."""

    normal: tuple
    offset: float = 0.0
    restitution: float = 0.5
    friction: float = 0.5

    def __post_init__(self):
        n = np.asarray(self.normal, dtype=float)
        if n.ndim != 1 or n.size not in (2, 3) or not np.all(np.isfinite(n)) or np.linalg.norm(n) == 0:
            raise ConfigError(f"Plane normal must be a non-zero finite 2- or 3-vector, got {self.normal!r}")
        object.__setattr__(self, "normal", tuple(n / np.linalg.norm(n)))
        if not 0.0 <= float(self.restitution) <= 1.0:
            raise ConfigError(f"Plane restitution must lie in [0, 1], got {self.restitution}")
        if not float(self.friction) >= 0.0:
            raise ConfigError(f"Plane friction must be >= 0, got {self.friction}")


SHAPES = (Sphere, Box, Capsule)
