"""Rigid bodies in 2D and 3D with contact, as Systems for the checkpointed tape.

``ModelBuilder(dim)`` -> ``add_body(Sphere(r) | Box(h) | Capsule(r, h), mass= or density=, ...)``,
``add_plane(normal, offset)`` -> ``finalize()`` -> :class:`RigidModel` ->
``RigidSystem(model, dt, contact="penalty" | "impulse", costs=[...])`` -> ``diffsim.Rollout``;
``draw_frame(model, state)`` and ``animate(model, trajectory, path)`` draw it (matplotlib).
"""

from .costs import BodyTarget, Cost, PoseMatch, Upright
from .draw import animate, draw_frame
from .model import ModelBuilder, RigidModel
from .shapes import BOX, CAPSULE, SPHERE, Box, Capsule, Plane, Sphere
from .system import PARAMETERS, RigidSystem

__all__ = [
           "BOX",
           "CAPSULE",
           "PARAMETERS",
           "SPHERE",
           "BodyTarget",
           "Box",
           "Capsule",
           "Cost",
           "ModelBuilder",
           "Plane",
           "PoseMatch",
           "RigidModel",
           "RigidSystem",
           "Sphere",
           "Upright",
           "animate",
           "draw_frame",
]
