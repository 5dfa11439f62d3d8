"""Scenes several rigid test files build (imported by them; pytest puts this folder on sys.path)."""

from diffsim.rigid import BodyTarget, Box, Capsule, ModelBuilder, RigidSystem


def boxes_and_capsule(model, **system):
    """3D, no gravity: ``model``'s two boxes (geometry, mass, x0, orientation0, v0, omega0 of its
    first two bodies) meeting while spinning, and a capsule tumbling onto the second box; a body
    target on each. ``system``: RigidSystem's keywords (dt 1e-3 unless given)."""
    b = ModelBuilder(3)
    for i in range(2):
        b.add_body(Box(tuple(model.geometry[i])), mass=model.mass[i], position=model.x0[i],
                   orientation=model.orientation0[i], velocity=model.v0[i], angular_velocity=model.omega0[i],
                   restitution=0.5, friction=0.4)
    b.add_body(Capsule(0.04, 0.1), mass=0.5, position=[0.02, 0.0, 0.13], orientation=[0.2, 1, 0], angle=0.3,
               velocity=[0.0, 0, -1.0], angular_velocity=[0, 1.0, 0.5], restitution=0.4, friction=0.5)
    return RigidSystem(b.finalize(), **{"dt": 1e-3, **system}, gravity=[0, 0, 0],
                       costs=[BodyTarget(0, [0.0, 0.3, 0.1]), BodyTarget(1, [0.3, -0.1, 0.0]),
                              BodyTarget(2, [0.1, 0.1, 0.3])])
